/* http.h: the small HTTP/1.1 server behind `loopscope serve` (http.c) and its
 * request parser (http_parse.c).
 *
 * The server is part of the attack surface, so it is deliberately narrow: one
 * thread, one epoll set, non-blocking sockets, GET and HEAD only, no request
 * bodies, bounded input and output per connection, a connection limit, and a
 * deadline on every connection (a client sending one byte per second is dropped
 * when its header deadline passes; nobody else waits for it). Responses are
 * queued into a per-connection buffer and written as the socket allows.
 *
 * The owner drives it: put ls_http_fd() in its own epoll set (or call
 * ls_http_poll() with a timeout) and call ls_http_poll(srv, 0) when it is readable.
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---------------------------------------------------------------- requests */

enum ls_http_method { LS_HTTP_OTHER, LS_HTTP_GET, LS_HTTP_HEAD };

struct ls_http_req {
	int method;		/* enum ls_http_method */
	char method_name[16];
	char path[256];		/* the target up to '?', percent-escapes left as sent */
	char query[256];	/* after '?', or "" */
	int minor;		/* HTTP/1.<minor> */
	int keep_alive;		/* the connection may be reused after this response */
	int accept_gzip;	/* Accept-Encoding allows gzip (q > 0) */
	int has_body;		/* Content-Length > 0 or Transfer-Encoding: we close after replying */
	/* Authorization: Basic, decoded */
	int auth_given;		/* Authorization headers seen */
	int auth_ok;		/* auth holds "user:password" */
	char auth[512];
};

/* Base64 of "user:password" into out (cap bytes); *ok when it has a ':'. Length or -1.
 * (Exposed for the fuzz harness and the unit tests.) */
int ls_base64_decode(const char *in, size_t len, char *out, size_t cap, int *ok);

/* Parse one request head (request line + headers + empty line) from buf[0..len).
 * Returns the number of bytes the head used (> 0), 0 when more bytes are needed,
 * or a negative HTTP status to answer with: -400 malformed, -414 target too long,
 * -431 headers too large (len > max_head without an end), -505 not HTTP/1.x.
 * Pure function: the unit tests feed it byte strings. */
int ls_http_parse(const char *buf, size_t len, size_t max_head, struct ls_http_req *req);

/* 1 if an Accept-Encoding value allows gzip (token "gzip" or "*" with q != 0). */
int ls_http_accepts_gzip(const char *value);

/* ---------------------------------------------------------------- server */

struct ls_http_server;
struct ls_http_conn;

struct ls_http_opts {
	int max_conns;			/* active connections (default 1024); answered ones that only
					 * wait for the client to close do not count. At the limit the
					 * longest idle connection that has not sent a request (else the
					 * longest idle keep-alive one), idle for at least 0.5 s and with
					 * nothing in its socket, is closed for the newcomer; else the
					 * newcomer gets a 503 with Retry-After (lingering close, never a
					 * reset). Beyond max_conns such 503s, or out of descriptors,
					 * newcomers wait in the listen backlog. */
	unsigned header_timeout_ms;	/* first byte of a request head -> complete head (default 5000) */
	unsigned idle_timeout_ms;	/* keep-alive connection with nothing to do (default 60000) */
	unsigned write_timeout_ms;	/* pending output that makes no progress (default 10000) */
	size_t max_head;		/* request head bytes (default 8192) */
	size_t max_out;			/* queued output per connection before a stream is cut (default 8 MiB) */
	const struct ls_webconfig *web;	/* TLS and basic auth (webconfig.h), or NULL; must
					 * outlive the server */
};
struct ls_webconfig;

/* Called once per complete, well-formed request. The handler answers with
 * ls_http_respond() or turns the connection into a stream with ls_http_stream(). */
typedef void (*ls_http_handler)(struct ls_http_conn *c, const struct ls_http_req *req, void *arg);

/* Listen on addr ("127.0.0.1:9752", "[::1]:9752", "0.0.0.0:9752"; port 0 picks a
 * free one). 0 or -errno with a one-line message in err. */
int ls_http_new(const char *addr, const struct ls_http_opts *opts, ls_http_handler fn, void *arg,
		struct ls_http_server **out, char *err, size_t errlen);
void ls_http_free(struct ls_http_server *srv);	/* closes every connection */
int ls_http_fd(const struct ls_http_server *srv);	/* epoll fd: readable when there is work */
int ls_http_port(const struct ls_http_server *srv);	/* the bound port */
int ls_http_loopback(const struct ls_http_server *srv);	/* 1 if bound to a loopback address */
/* Wait up to timeout_ms (0: do not wait) for socket events and handle them, then
 * drop connections whose deadline has passed. Returns 0 or -errno. */
int ls_http_poll(struct ls_http_server *srv, int timeout_ms);

/* Queue a complete response. body may be NULL for len 0; for HEAD the body is not
 * sent but Content-Length still says its size. extra_headers: "Name: v\r\n"... or NULL.
 * With gzip set the body is compressed when the request accepted gzip. */
void ls_http_respond(struct ls_http_conn *c, int status, const char *content_type,
		     const char *extra_headers, const void *body, size_t len, int gzip);

/* As ls_http_respond(), with body already encoded: encoding (e.g. "gzip") is sent as
 * Content-Encoding, or NULL for identity. The caller checks req->accept_gzip. */
void ls_http_respond_encoded(struct ls_http_conn *c, int status, const char *content_type,
			     const char *extra_headers, const void *body, size_t len, const char *encoding);

/* Answer 200 with no Content-Length and Connection: close, and keep the connection
 * as a stream: the owner then pushes bytes with ls_http_broadcast(). HEAD gets the
 * head only. */
void ls_http_stream(struct ls_http_conn *c, const char *content_type);
/* Queue data on one stream connection (e.g. the latest snapshot for a new client). */
void ls_http_stream_write(struct ls_http_conn *c, const void *data, size_t len);
/* Queue data on every stream connection. A stream whose queued output is above
 * soft bytes skips this message when droppable (a later cumulative snapshot makes
 * up for it); one above opts.max_out is closed. Returns the number of streams reached. */
int ls_http_broadcast(struct ls_http_server *srv, const void *data, size_t len, int droppable, size_t soft);
int ls_http_nstreams(const struct ls_http_server *srv);

struct ls_http_stats {
	uint64_t accepted, rejected_busy, timed_out, bad_requests, requests, stream_drops;
	uint64_t evicted;	/* idle connections closed at the limit to let a new one in */
	uint64_t unauthorized;	/* requests answered 401 (web config basic auth) */
	uint64_t tls_failures;	/* TLS handshakes refused or broken */
	int open;		/* connections, lingering ones included, busy 503s not */
	int lingering;		/* answered, waiting for the client to close */
};
void ls_http_get_stats(const struct ls_http_server *srv, struct ls_http_stats *st);

const char *ls_http_reason(int status);

#endif /* LS_HTTP_H */
