/* remote.c: the `loopscope serve` /events stream as an ls_source (see remote.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "remote.h"
#include "snapjson.h"

#define REMOTE_CONNECT_MS 3000
#define REMOTE_MAX_LINE (64u << 20)	/* a snapshot of many targets is big, but not this big */
#define REMOTE_READ_BUDGET (4u << 20)	/* bytes per poll() call, so the UI keeps its pace */

struct remote {
	struct ls_source src;		/* first: the ls_source pointer is the struct's */
	int fd;
	SSL_CTX *tls_ctx;		/* https:// */
	SSL *tls;
	char *buf;			/* unparsed bytes */
	size_t len, cap;
	struct ls_snapshot latest;
	int have_latest;
	int eof;
	char where[320];
};

static int64_t now_ms(void)
{
	return (int64_t)(ls_now_mono_ns() / 1000000);
}

/* Wait until fd is ready for events, up to the deadline. 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int buf_reserve(struct remote *r, size_t extra)
{
	size_t cap = r->cap ? r->cap : 65536;
	char *b;

	if (r->len + extra <= r->cap)
		return 0;
	while (cap < r->len + extra)
		cap *= 2;
	if (!(b = realloc(r->buf, cap)))
		return -ENOMEM;
	r->buf = b;
	r->cap = cap;
	return 0;
}

/* Read what is there without blocking: bytes read, 0 nothing, -ENODATA EOF, -errno. */
static int read_some(struct remote *r)
{
	ssize_t n;
	int err;

	if ((err = buf_reserve(r, 65536)))
		return err;
	if (r->tls) {
		int k = SSL_read(r->tls, r->buf + r->len, (int)(r->cap - r->len > INT32_MAX ? INT32_MAX : r->cap - r->len));
		int e = k > 0 ? SSL_ERROR_NONE : SSL_get_error(r->tls, k);

		if (k > 0) {
			r->len += (size_t)k;
			return k;
		}
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		return e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && k == 0) ? -ENODATA : -EPROTO;
	}
	n = recv(r->fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT);
	if (n > 0) {
		r->len += (size_t)n;
		return n > 0x7fffffff ? 0x7fffffff : (int)n;
	}
	if (n == 0)
		return -ENODATA;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -errno;
}

static int handle_line(struct remote *r, const char *line, size_t len)
{
	int type = ls_json_type(line, len), err = 0;

	if (type == LS_JSON_SNAPSHOT) {
		struct ls_snapshot s;

		err = ls_snapshot_from_json(line, len, &s);
		if (err)
			return err;
		if (r->have_latest)
			ls_snapjson_free(&r->latest);
		r->latest = s;
		r->have_latest = 1;
	} else if (type == LS_JSON_EPISODE) {
		struct ls_episode ep;

		err = ls_episode_from_json(line, len, &ep);
		if (err)
			return err;
		if (r->src.on_episode)
			r->src.on_episode(&ep, r->src.episode_arg);
	}
	/* Unknown types are skipped, as the format asks. */
	return 0;
}

/* Parse every complete line in the buffer; keep the partial tail. */
static int parse_lines(struct remote *r)
{
	size_t off = 0;
	int err = 0;

	while (off < r->len) {
		char *nl = memchr(r->buf + off, '\n', r->len - off);
		size_t n;

		if (!nl)
			break;
		n = (size_t)(nl - (r->buf + off));
		if (n && (err = handle_line(r, r->buf + off, n)))
			break;
		off += n + 1;
	}
	memmove(r->buf, r->buf + off, r->len - off);
	r->len -= off;
	if (!err && r->len > REMOTE_MAX_LINE)
		err = -EMSGSIZE;
	return err;
}

static int remote_poll(struct ls_source *src, int timeout_ms)
{
	struct remote *r = (struct remote *)src;
	size_t budget = REMOTE_READ_BUDGET;
	int err;

	if (r->eof)
		return -ENODATA;
	if (timeout_ms > 0) {
		err = wait_fd(r->fd, POLLIN, now_ms() + timeout_ms);
		if (err == -ETIMEDOUT)
			return 0;
		if (err)
			return err;
	}
	for (;;) {
		int got = read_some(r);

		if (got == -ENODATA)
			r->eof = 1;
		else if (got < 0)
			return got;
		if ((err = parse_lines(r)))
			return err;
		if (r->eof)
			return -ENODATA;
		if (got == 0)
			break;	/* nothing more right now */
		if ((size_t)got >= budget)
			break;
		budget -= (size_t)got;
	}
	return 0;
}

static int remote_snapshot(struct ls_source *src, struct ls_snapshot *out)
{
	struct remote *r = (struct remote *)src;

	if (!r->have_latest)
		return r->eof ? -ENODATA : -EAGAIN;
	return ls_snapshot_copy(out, &r->latest);
}

static int remote_fd(struct ls_source *src)
{
	return ((struct remote *)src)->fd;
}

static void remote_destroy(struct ls_source *src)
{
	struct remote *r = (struct remote *)src;

	SSL_free(r->tls);
	SSL_CTX_free(r->tls_ctx);
	if (r->fd >= 0)
		close(r->fd);
	if (r->have_latest)
		ls_snapjson_free(&r->latest);
	free(r->buf);
	free(r);
}

static const struct ls_source_ops remote_ops = {
	.name = "remote",
	.poll = remote_poll,
	.snapshot = remote_snapshot,
	.fd = remote_fd,
	.destroy = remote_destroy,
};

/* Split "host:port" / "[v6]:port" into host and port strings. */
static int split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	size_t hl;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - addr - 1);
		addr++;
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostlen || !colon[1] || strlen(colon + 1) >= portlen)
		return -EINVAL;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return 0;
}

/* Connect with a deadline; the socket stays non-blocking. */
static int dial(const char *host, const char *port, int64_t deadline, int *out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	int err = -ECONNREFUSED, fd = -1;

	if (getaddrinfo(host, port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		socklen_t sl = sizeof(err);
		int soerr = 0;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno != EINPROGRESS) {
			err = -errno;
			goto next;
		}
		if ((err = wait_fd(fd, POLLOUT, deadline)))
			goto next;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			err = -errno;
		else if (soerr)
			err = -soerr;
		else
			break;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err;
	*out = fd;
	return 0;
}

const char *ls_remote_display(const char *url, char *buf, size_t len)
{
	const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");
	size_t keep = scheme ? (size_t)(scheme + 3 - url) : 0;

	if (!at)
		snprintf(buf, len, "%s", url);
	else
		snprintf(buf, len, "%.*s%s", (int)keep, url, at + 1);
	return buf;
}

/* "[http[s]://][user:pass@]host:port[/]" into its parts. */
static int parse_url(const char *url, int *tls, char *cred, size_t credlen, char *hostport, size_t hplen)
{
	const char *at, *rest = url;
	size_t n;

	*tls = 0;
	cred[0] = 0;
	if (!strncmp(rest, "https://", 8)) {
		*tls = 1;
		rest += 8;
	} else if (!strncmp(rest, "http://", 7)) {
		rest += 7;
	}
	at = strrchr(rest, '@');
	if (at) {
		if ((size_t)(at - rest) >= credlen || !memchr(rest, ':', (size_t)(at - rest)))
			return -EINVAL;
		memcpy(cred, rest, (size_t)(at - rest));
		cred[at - rest] = 0;
		rest = at + 1;
	}
	n = strlen(rest);
	if (n && rest[n - 1] == '/')
		n--;
	if (n >= hplen)
		return -EINVAL;
	memcpy(hostport, rest, n);
	hostport[n] = 0;
	return 0;
}

/* The client side of TLS on r->fd, finished before the deadline. 0 or -errno with err. */
static int tls_connect(struct remote *r, const char *host, const struct ls_remote_opts *o, int64_t deadline,
		       char *err, size_t errlen)
{
	const char *what = "TLS";
	long vr;
	int rc;

	r->tls_ctx = SSL_CTX_new(TLS_client_method());
	if (!r->tls_ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(r->tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(r->tls_ctx, SSL_VERIFY_PEER, NULL);
	what = o && o->ca_file ? o->ca_file : "the system's CA certificates";
	if (o && o->ca_file ? SSL_CTX_load_verify_locations(r->tls_ctx, o->ca_file, NULL) != 1
			    : SSL_CTX_set_default_verify_paths(r->tls_ctx) != 1)
		goto fail;
	if (o && o->cert_file) {
		what = o->cert_file;
		if (SSL_CTX_use_certificate_chain_file(r->tls_ctx, o->cert_file) != 1)
			goto fail;
		what = o->key_file ? o->key_file : o->cert_file;
		if (SSL_CTX_use_PrivateKey_file(r->tls_ctx, what, SSL_FILETYPE_PEM) != 1)
			goto fail;
	}
	r->tls = SSL_new(r->tls_ctx);
	what = host;
	if (!r->tls || !SSL_set_fd(r->tls, r->fd))
		goto fail;
	/* The certificate must name the host we dialled (a DNS name or an IP address). */
	if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->tls), host)) {
		if (!SSL_set1_host(r->tls, host) || !SSL_set_tlsext_host_name(r->tls, host))
			goto fail;
	}
	ERR_clear_error();
	for (;;) {
		int e;

		rc = SSL_connect(r->tls);
		if (rc == 1)
			return 0;
		e = SSL_get_error(r->tls, rc);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			break;
		if ((rc = wait_fd(r->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))) {
			snprintf(err, errlen, "TLS handshake with %s: %s", r->where, strerror(-rc));
			return rc;
		}
	}
	vr = SSL_get_verify_result(r->tls);
	if (vr != X509_V_OK)
		snprintf(err, errlen, "TLS handshake with %s: its certificate is not trusted: %s%s", r->where,
			 X509_verify_cert_error_string(vr), o && o->ca_file ? "" : " (give --tls-ca FILE)");
	else
		snprintf(err, errlen, "TLS handshake with %s failed: %s%s", r->where,
			 ERR_peek_last_error() ? ERR_reason_error_string(ERR_peek_last_error()) : "the server closed it",
			 o && o->cert_file ? "" : " (does it want a client certificate? --tls-cert, --tls-key)");
	ERR_clear_error();
	return -EPROTO;
fail:
	snprintf(err, errlen, "TLS setup: %s: %s", what,
		 ERR_peek_last_error() ? ERR_reason_error_string(ERR_peek_last_error()) : "failed");
	ERR_clear_error();
	return -EINVAL;
}

static ssize_t send_some(struct remote *r, const char *p, size_t n)
{
	if (r->tls) {
		int k = SSL_write(r->tls, p, (int)n);

		if (k > 0)
			return k;
		k = SSL_get_error(r->tls, k);
		ERR_clear_error();
		errno = k == SSL_ERROR_WANT_READ || k == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
		return -1;
	}
	return send(r->fd, p, n, MSG_NOSIGNAL);
}

int ls_remote_source_new(const char *url, const struct ls_remote_opts *o, struct ls_source **out, char *errbuf,
			 size_t errlen)
{
	char host[256], port[16], req[1024], addr[300], cred[256], auth[400] = "";
	int64_t deadline = now_ms() + REMOTE_CONNECT_MS;
	struct remote *r = NULL;
	size_t sent = 0, reqlen;
	int err, tls;
	char *eoh;

	*out = NULL;
	if (parse_url(url, &tls, cred, sizeof(cred), addr, sizeof(addr)) ||
	    split_addr(addr, host, sizeof(host), port, sizeof(port))) {
		snprintf(errbuf, errlen, "bad address '%s'; give HOST:PORT or https://USER:PASS@HOST:PORT, "
			 "e.g. 127.0.0.1:9464", url);
		return -EINVAL;
	}
	if (cred[0]) {
		unsigned char b64[360];

		EVP_EncodeBlock(b64, (const unsigned char *)cred, (int)strlen(cred));
		snprintf(auth, sizeof(auth), "Authorization: Basic %s\r\n", b64);
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	r->src.ops = &remote_ops;
	r->fd = -1;
	snprintf(r->where, sizeof(r->where), "%s", addr);
	if ((err = dial(host, port, deadline, &r->fd))) {
		snprintf(errbuf, errlen, "cannot connect to %s: %s; is 'loopscope serve' listening there?", addr,
			 strerror(-err));
		goto cleanup;
	}
	if (tls && (err = tls_connect(r, host, o, deadline, errbuf, errlen)))
		goto cleanup;
	reqlen = (size_t)snprintf(req, sizeof(req),
				  "GET /events HTTP/1.1\r\nHost: %s\r\nAccept: application/x-ndjson\r\n%s"
				  "User-Agent: loopscope-top/" LOOPSCOPE_VERSION "\r\n\r\n", addr, auth);
	explicit_bzero(auth, sizeof(auth));
	while (sent < reqlen) {
		ssize_t n = send_some(r, req + sent, reqlen - sent);

		if (n > 0) {
			sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			err = -errno;
			snprintf(errbuf, errlen, "sending to %s: %s", addr, strerror(errno));
			goto cleanup;
		}
		if ((err = wait_fd(r->fd, POLLOUT, deadline)))
			goto timeout;
	}
	explicit_bzero(req, sizeof(req));
	/* The response head, then the body starts in the same buffer. */
	for (;;) {
		if (!(r->tls && SSL_pending(r->tls)) && (err = wait_fd(r->fd, POLLIN, deadline)))
			goto timeout;
		err = read_some(r);
		if (err < 0 && err != -ENODATA) {
			snprintf(errbuf, errlen, "reading from %s: %s", addr, strerror(-err));
			goto cleanup;
		}
		if ((eoh = memmem(r->buf, r->len, "\r\n\r\n", 4))) {
			r->eof = err == -ENODATA;
			break;
		}
		if (err == -ENODATA || r->len > 16384) {
			err = -EPROTO;
			snprintf(errbuf, errlen, "%s closed the connection or sent no HTTP response; "
				 "is it a 'loopscope serve'%s?", addr, tls ? "" : " (over https://?)");
			goto cleanup;
		}
	}
	if (r->len >= 12 && !memcmp(r->buf, "HTTP/1.", 7) && !memcmp(r->buf + 8, " 401", 4)) {
		err = -EACCES;
		snprintf(errbuf, errlen, "%s answered 401 Unauthorized: %s", addr,
			 cred[0] ? "wrong user or password" : "give them as https://USER:PASS@HOST:PORT");
		goto cleanup;
	}
	if (r->len < 12 || memcmp(r->buf, "HTTP/1.", 7) || memcmp(r->buf + 8, " 200", 4)) {
		char *eol = memchr(r->buf, '\r', r->len);

		err = -EPROTO;
		snprintf(errbuf, errlen, "%s answered '%.*s' to GET /events; is it a 'loopscope serve'?", addr,
			 eol ? (int)(eol - r->buf) : 0, r->buf);
		goto cleanup;
	}
	{
		size_t head = (size_t)(eoh + 4 - r->buf);

		memmove(r->buf, r->buf + head, r->len - head);
		r->len -= head;
	}
	if ((err = parse_lines(r))) {
		snprintf(errbuf, errlen, "bad line in the stream from %s: %s", addr, strerror(-err));
		goto cleanup;
	}
	*out = &r->src;
	return 0;

timeout:
	snprintf(errbuf, errlen, "%s did not answer GET /events within %d ms (%s); is it a 'loopscope serve'?",
		 addr, REMOTE_CONNECT_MS, strerror(-err));
cleanup:
	remote_destroy(&r->src);
	return err;
}
