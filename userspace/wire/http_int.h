/* http_int.h: inside the HTTP server, shared by its two files and by nothing else (the
 * server's interface is http.h):
 *
 *   http.c      the server: listening, accepting, the connection limit and eviction,
 *               deadlines, requests in, responses and streams out
 *   http_tls.c  the transport under it: a connection's bytes through recv/send, or
 *               through TLS when the web config asks for it (the SSL_CTX made from
 *               that config, each connection's SSL, the handshake step, plain HTTP
 *               on the TLS port)
 *
 * The cut is at bytes: http_tls.c moves them and answers nothing but the plain-HTTP
 * 400, so all it takes from http.c is the structs, ls_http__conn_close and (for that
 * 400) ls_http_respond. One struct ls_http_server per server and one struct
 * ls_http_conn per connection, both owned by http.c, which frees a connection's SSL
 * with the connection and the SSL_CTX with the server.
 * Functions here carry a double-underscore prefix (ls_http__): internal, non-static.
 */
#ifndef LS_HTTP_INT_H
#define LS_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "http.h"

struct ls_web_auth;

struct ls_http_conn {
	int fd;				/* -1 once closed (memory freed at the end of the round) */
	struct ls_http_server *srv;
	struct ls_buf in, out;
	const struct ls_http_req *req;	/* the request being handled, else NULL */
	int responded;
	int close_after;		/* close once out is flushed; read nothing more */
	int lingering;			/* answered and shut down for writing: discarding input until EOF */
	int stream;			/* an endless response fed by ls_http_broadcast() */
	int served;			/* answered at least one request */
	int busy;			/* over the limit: only delivers a 503 */
	uint32_t events;		/* registered epoll mask */
	uint64_t head_start_ns;		/* first byte of the pending request head, or 0 */
	uint64_t last_io_ns;		/* last read or write progress */
	SSL *ssl;			/* TLS (web config), else NULL */
	int tls_ready;			/* handshake done */
	int tls_sniffed;		/* its first byte was looked at: a TLS record */
	int tls_want_write;		/* an SSL call waits for the socket to take bytes */
	struct ls_http_conn *prev, *next;
};

struct ls_http_server {
	int epfd, lfd, port;
	int loopback;			/* bound to a loopback address */
	struct ls_http_opts o;
	ls_http_handler fn;
	void *arg;
	struct ls_http_conn *conns;	/* open connections */
	struct ls_http_conn *dead;	/* closed, freed when no event can point at them */
	int nconns, nstreams, in_poll;
	int nbusy;			/* connections delivering the over-limit 503 */
	int nlinger;			/* answered, waiting for the client's FIN (not busy ones) */
	int max_fds;			/* connections of any kind: below RLIMIT_NOFILE */
	int accepting;			/* the listening socket is in the epoll set for EPOLLIN */
	uint64_t pause_until_ns;	/* accept paused (EMFILE) until then */
	SSL_CTX *tls;			/* web config: TLS */
	struct ls_web_auth *auth;	/* web config: basic auth users */
	struct ls_http_stats st;
};

/* ---------------------------------------------------------------- http.c */

/* Close c's socket (and free its SSL) now; its memory is freed at the end of the
 * round, so an event still pointing at it finds fd -1. Closing twice is a no-op. */
void ls_http__conn_close(struct ls_http_conn *c);

/* ---------------------------------------------------------------- http_tls.c */

/* The SSL_CTX of a web config's tls_server_config. NULL with err on failure. */
SSL_CTX *ls_http__tls_context(const struct ls_webconfig *wc, char *err, size_t errlen);

/* c->ssl for the accepted socket fd, in server (accept) state. 0, or -1 with c->ssl
 * NULL and OpenSSL's error queue cleared (the caller closes fd). */
int ls_http__tls_new(struct ls_http_conn *c, SSL_CTX *ctx, int fd);

/* One step of the server handshake: 1 done, 0 in progress (wants the socket), -1
 * failed (the connection is closed: no certificate when one is required, not TLS),
 * -2 not TLS but plain HTTP (answered without TLS: tls_sniff). */
int ls_http__tls_handshake(struct ls_http_conn *c);

/* recv() / send() through TLS when there is some: > 0 bytes, 0 EOF (recv), -EAGAIN,
 * or -errno / -EPROTO. SSL_read may need to write and SSL_write to read (TLS 1.3 key
 * updates): tls_want_write asks for EPOLLOUT; a wanted read comes with EPOLLIN. */
ssize_t ls_http__conn_recv(struct ls_http_conn *c, void *buf, size_t len);
ssize_t ls_http__conn_send(struct ls_http_conn *c, const void *buf, size_t len);

#endif /* LS_HTTP_INT_H */
