/* http_tls.c: the HTTP server's transport (see http_int.h): a connection's bytes
 * through recv/send, or through TLS when the web config asks for it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_int.h"
#include "webconfig.h"


/* ---------------------------------------------------------------- the context */

static int accept_any_cert(int preverify, X509_STORE_CTX *x)
{
	(void)preverify;
	(void)x;
	return 1;
}

SSL_CTX *ls_http__tls_context(const struct ls_webconfig *wc, char *err, size_t errlen)
{
	static const unsigned char sid[] = "loopscope";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *what = "TLS";
	int mode = SSL_VERIFY_NONE;

	if (!ctx)
		goto fail;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_min_proto_version(ctx, wc->min_version ? wc->min_version : TLS1_2_VERSION) ||
	    (wc->max_version && !SSL_CTX_set_max_proto_version(ctx, wc->max_version))) {
		what = "min_version/max_version";
		goto fail;
	}
	what = wc->cert_file;
	if (SSL_CTX_use_certificate_chain_file(ctx, wc->cert_file) != 1)
		goto fail;
	what = wc->key_file;
	if (SSL_CTX_use_PrivateKey_file(ctx, wc->key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	if (wc->client_ca_file[0]) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(wc->client_ca_file);

		what = wc->client_ca_file;
		if (!names || SSL_CTX_load_verify_locations(ctx, wc->client_ca_file, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	switch (wc->client_auth) {
	case LS_CLIENT_REQUEST:
	case LS_CLIENT_REQUIRE_ANY:
		/* Asked for (or required) but not verified: any certificate will do. */
		mode = SSL_VERIFY_PEER | (wc->client_auth == LS_CLIENT_REQUIRE_ANY ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
		SSL_CTX_set_verify(ctx, mode, accept_any_cert);
		break;
	case LS_CLIENT_VERIFY_IF_GIVEN:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		break;
	case LS_CLIENT_REQUIRE_VERIFY:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		break;
	default:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	return ctx;
fail:
	snprintf(err, errlen, "web config: %s: %s", what, ERR_reason_error_string(ERR_peek_last_error())
			 ? ERR_reason_error_string(ERR_peek_last_error()) : "cannot be used");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int ls_http__tls_new(struct ls_http_conn *c, SSL_CTX *ctx, int fd)
{
	c->ssl = SSL_new(ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
		return -1;
	}
	SSL_set_accept_state(c->ssl);
	return 0;
}

/* ---------------------------------------------------------------- a connection's bytes */

/* Plain HTTP on the TLS port (a client with http:// for https://): answered in plain
 * text, as Go's net/http does, then closed lingering (the request is read and dropped,
 * never served: it went past TLS and its client certificates). */
static void plain_on_tls(struct ls_http_conn *c)
{
	static const char body[] = "Client sent an HTTP request to an HTTPS server.\n";

	SSL_free(c->ssl);
	c->ssl = NULL;
	c->srv->st.tls_failures++;
	if (c->responded)
		return;		/* a 503 is queued already: it goes out in plain text */
	c->srv->st.bad_requests++;
	c->req = NULL;
	ls_http_respond(c, 400, "text/plain; charset=utf-8", NULL, body, sizeof(body) - 1, 0);
	c->close_after = 1;
}

/* Before the handshake, a look at the first byte: a TLS client's first record is a
 * handshake (0x16); an upper-case letter is the method of a plain HTTP request. 1 TLS
 * (or not HTTP either: the handshake says no), 0 nothing yet, -1 plain HTTP (c has
 * no TLS any more and its 400 is queued). */
static int tls_sniff(struct ls_http_conn *c)
{
	unsigned char b;
	ssize_t n;

	if (c->tls_sniffed)
		return 1;
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	c->tls_sniffed = 1;
	if (n == 1 && b >= 'A' && b <= 'Z') {
		plain_on_tls(c);
		return -1;
	}
	return 1;
}

int ls_http__tls_handshake(struct ls_http_conn *c)
{
	int r, e;

	if ((r = tls_sniff(c)) <= 0)
		return r < 0 ? -2 : 0;
	r = SSL_do_handshake(c->ssl);
	c->tls_want_write = 0;
	if (r == 1) {
		c->tls_ready = 1;
		return 1;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = 1;
		return 0;
	}
	ERR_clear_error();
	c->srv->st.tls_failures++;
	ls_http__conn_close(c);
	return -1;
}

ssize_t ls_http__conn_recv(struct ls_http_conn *c, void *buf, size_t len)
{
	ssize_t n;
	int r, e;

	if (!c->ssl) {
		n = recv(c->fd, buf, len, MSG_DONTWAIT);
		return n >= 0 ? n : -errno;
	}
	if (!c->tls_ready && (r = ls_http__tls_handshake(c)) <= 0)
		return r == 0 || r == -2 ? -EAGAIN : -EPROTO;	/* -2: the 400 goes out next */
	r = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (r > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return -EAGAIN;
	if (e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = 1;
		return -EAGAIN;
	}
	ERR_clear_error();
	return e == SSL_ERROR_ZERO_RETURN ? 0 : e == SSL_ERROR_SYSCALL && r == 0 ? 0 : -EPROTO;
}

ssize_t ls_http__conn_send(struct ls_http_conn *c, const void *buf, size_t len)
{
	ssize_t n;
	int r, e;

	if (!c->ssl) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		return n >= 0 ? n : -errno;
	}
	c->tls_want_write = 0;
	r = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (r > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		return -EAGAIN;
	}
	ERR_clear_error();
	return -EPIPE;
}
