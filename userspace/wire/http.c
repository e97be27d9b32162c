/* http.c: a bounded, single-threaded HTTP/1.1 server (see http.h for the contract). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "http.h"

/* ---------------------------------------------------------------- byte buffer */

int ls_buf_reserve(struct ls_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return -ENOMEM;
	need = b->len + extra + 1;	/* room for the terminating NUL */
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void ls_buf_append(struct ls_buf *b, const void *data, size_t len)
{
	if (ls_buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = 0;
}

void ls_buf_puts(struct ls_buf *b, const char *s)
{
	ls_buf_append(b, s, strlen(s));
}

void ls_buf_vprintf(struct ls_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	if (ls_buf_reserve(b, 64))
		return;
	va_copy(ap2, ap);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		if (ls_buf_reserve(b, (size_t)n))
			return;
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void ls_buf_printf(struct ls_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ls_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *ls_fmt_u64(char *w, uint64_t v)
{
	char tmp[20];	/* UINT64_MAX has 20 digits */
	int i = (int)sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(w, tmp + i, sizeof(tmp) - (size_t)i);
	return w + sizeof(tmp) - i;
}

void ls_buf_u64(struct ls_buf *b, uint64_t v)
{
	if (ls_buf_reserve(b, 20))
		return;
	b->len = (size_t)(ls_fmt_u64(b->p + b->len, v) - b->p);
	b->p[b->len] = 0;
}

void ls_buf_consume(struct ls_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p)
		b->p[b->len] = 0;
}

void ls_buf_reset(struct ls_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = 0;
}

void ls_buf_free(struct ls_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int ls_gzip(const void *in, size_t len, struct ls_buf *out)
{
	z_stream zs;
	int rc, err = 0;

	memset(&zs, 0, sizeof(zs));
	/* windowBits 15 + 16 = gzip wrapper; level 1: exposition text compresses ~10x
	 * even at the fastest level, and the scrape latency matters more. */
	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	if (ls_buf_reserve(out, deflateBound(&zs, (uLong)len))) {
		err = -ENOMEM;
		goto cleanup;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out->p + out->len;
	zs.avail_out = (uInt)(out->cap - out->len - 1);
	rc = deflate(&zs, Z_FINISH);
	if (rc != Z_STREAM_END) {
		err = -EIO;
		goto cleanup;
	}
	out->len += zs.total_out;
	out->p[out->len] = 0;
cleanup:
	deflateEnd(&zs);
	return err;
}

/* ---------------------------------------------------------------- parsing */

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Case-insensitive compare of [s, s+n) with a NUL-terminated lower-case word. */
static int word_eq(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && !strncasecmp(s, w, n);
}

/* 1 if the q parameter text (after "q=") means zero. */
static int q_is_zero(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '0')
		i++;
	else
		return 0;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] == '0'; i++)
			;
	return i == n;
}

int ls_http_accepts_gzip(const char *v)
{
	int gz = -1, star = -1;

	while (*v) {
		const char *name, *params, *end;
		size_t nlen;
		int allowed = 1;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (!*v)
			break;
		name = v;
		while (*v && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
			v++;
		nlen = (size_t)(v - name);
		params = v;
		while (*v && *v != ',')
			v++;
		end = v;
		/* Look for ;q=... among the parameters. */
		for (const char *p = params; p < end; p++) {
			if (*p != ';')
				continue;
			p++;
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p + 1 < end && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
				const char *q = p + 2, *qe = q;
				while (qe < end && *qe != ';' && *qe != ' ' && *qe != '\t')
					qe++;
				allowed = !q_is_zero(q, (size_t)(qe - q));
			}
		}
		if (word_eq(name, nlen, "gzip") || word_eq(name, nlen, "x-gzip"))
			gz = allowed;
		else if (word_eq(name, nlen, "*"))
			star = allowed;
	}
	return gz >= 0 ? gz : star > 0;
}

/* Does a comma-separated header value hold token w? */
static int has_token(const char *v, size_t n, const char *w)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (word_eq(v + s, e - s, w))
			return 1;
	}
	return 0;
}

int ls_http_parse(const char *buf, size_t len, size_t max_head, struct ls_http_req *req)
{
	size_t i = 0, head_end = 0, scan, line_end;
	int nhost = 0, conn_close = 0, conn_keep = 0, have_cl = 0, have_te = 0;
	uint64_t cl = 0;

	memset(req, 0, sizeof(*req));
	/* RFC 9112 2.2: ignore empty lines before the request line (bounded). */
	while (i < len && i < 8 && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	/* Find the blank line ending the head; a lone LF is accepted as a line end. */
	scan = len < max_head + 4 ? len : max_head + 4;
	for (size_t k = i; k < scan; k++) {
		if (buf[k] != '\n')
			continue;
		if (k + 1 < scan && buf[k + 1] == '\n') {
			head_end = k + 2;
			break;
		}
		if (k + 2 < scan && buf[k + 1] == '\r' && buf[k + 2] == '\n') {
			head_end = k + 3;
			break;
		}
	}
	if (!head_end && len <= max_head)
		return 0;
	if (!head_end || head_end - i > max_head) {
		/* Too large: a request line that alone does not fit is a target too long
		 * (414), anything else too many header bytes (431). */
		const char *nl = memchr(buf + i, '\n', scan - i);
		return nl ? -431 : -414;
	}

	/* Request line: METHOD SP target SP HTTP/1.d */
	{
		size_t m = i, t, te, v;
		while (i < head_end && is_tchar((unsigned char)buf[i]))
			i++;
		if (i == m || i - m >= sizeof(req->method_name) || buf[i] != ' ')
			return -400;
		memcpy(req->method_name, buf + m, i - m);
		req->method = !strcmp(req->method_name, "GET") ? LS_HTTP_GET :
			      !strcmp(req->method_name, "HEAD") ? LS_HTTP_HEAD : LS_HTTP_OTHER;
		t = ++i;
		while (i < head_end && (unsigned char)buf[i] > ' ' && buf[i] != 0x7f)
			i++;
		te = i;
		if (te == t || buf[i] != ' ')
			return -400;
		if (buf[t] != '/' && !(te - t == 1 && buf[t] == '*'))
			return -400;	/* only origin-form (and "*") */
		{
			size_t q = t;
			while (q < te && buf[q] != '?')
				q++;
			if (q - t >= sizeof(req->path) || (q < te && te - q - 1 >= sizeof(req->query)))
				return -414;
			memcpy(req->path, buf + t, q - t);
			if (q < te)
				memcpy(req->query, buf + q + 1, te - q - 1);
		}
		v = ++i;
		if (head_end - v < 8 || memcmp(buf + v, "HTTP/", 5))
			return -400;
		if (buf[v + 5] < '0' || buf[v + 5] > '9' || buf[v + 6] != '.' || buf[v + 7] < '0' || buf[v + 7] > '9')
			return -400;
		i = v + 8;
		if (buf[i] == '\r')
			i++;
		if (buf[i] != '\n')
			return -400;
		i++;
		if (buf[v + 5] != '1')
			return -505;
		req->minor = buf[v + 7] - '0';
	}

	/* Header fields until the blank line. */
	for (; i < head_end; i = line_end + 1) {
		size_t n0 = i, ne, v0, ve;

		line_end = i;
		while (buf[line_end] != '\n')
			line_end++;
		ve = line_end;
		if (ve > i && buf[ve - 1] == '\r')
			ve--;
		if (ve == i)
			break;		/* the blank line */
		if (buf[i] == ' ' || buf[i] == '\t')
			return -400;	/* obsolete line folding */
		while (i < ve && is_tchar((unsigned char)buf[i]))
			i++;
		ne = i;
		if (ne == n0 || i >= ve || buf[i] != ':')
			return -400;	/* empty name, or whitespace before the colon */
		i++;
		for (size_t k = i; k < ve; k++)
			if (((unsigned char)buf[k] < ' ' && buf[k] != '\t') || buf[k] == 0x7f)
				return -400;
		while (i < ve && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		v0 = i;
		while (ve > v0 && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
			ve--;

		if (word_eq(buf + n0, ne - n0, "host")) {
			nhost++;
		} else if (word_eq(buf + n0, ne - n0, "connection")) {
			conn_close |= has_token(buf + v0, ve - v0, "close");
			conn_keep |= has_token(buf + v0, ve - v0, "keep-alive");
		} else if (word_eq(buf + n0, ne - n0, "content-length")) {
			uint64_t x = 0;
			if (ve == v0 || ve - v0 > 15)
				return -400;
			for (size_t k = v0; k < ve; k++) {
				if (buf[k] < '0' || buf[k] > '9')
					return -400;
				x = x * 10 + (uint64_t)(buf[k] - '0');
			}
			if (have_cl && x != cl)
				return -400;
			have_cl = 1;
			cl = x;
		} else if (word_eq(buf + n0, ne - n0, "transfer-encoding")) {
			have_te = 1;
		} else if (word_eq(buf + n0, ne - n0, "accept-encoding")) {
			char tmp[256];
			size_t n = ve - v0 < sizeof(tmp) - 1 ? ve - v0 : sizeof(tmp) - 1;
			memcpy(tmp, buf + v0, n);
			tmp[n] = 0;
			req->accept_gzip |= ls_http_accepts_gzip(tmp);
		}
	}
	/* RFC 9112 3.2: a 1.1 request without exactly one Host is a 400; a message with
	 * both Content-Length and Transfer-Encoding is a smuggling attempt. */
	if ((req->minor >= 1 && nhost != 1) || nhost > 1)
		return -400;
	if (have_cl && have_te)
		return -400;
	req->has_body = have_te || cl > 0;
	req->keep_alive = req->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
	return (int)head_end;
}

const char *ls_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* ---------------------------------------------------------------- server */

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
	struct ls_http_conn *prev, *next;
};

struct ls_http_server {
	int epfd, lfd, port;
	struct ls_http_opts o;
	ls_http_handler fn;
	void *arg;
	struct ls_http_conn *conns;	/* open connections */
	struct ls_http_conn *dead;	/* closed, freed when no event can point at them */
	int nconns, nstreams, in_poll;
	int nbusy;			/* connections delivering the over-limit 503 */
	struct ls_http_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void conn_close(struct ls_http_conn *c)
{
	struct ls_http_server *srv = c->srv;

	if (c->fd < 0)
		return;
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->stream)
		srv->nstreams--;
	if (c->busy)
		srv->nbusy--;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	c->prev = NULL;
	c->next = srv->dead;
	srv->dead = c;
}

static void reap(struct ls_http_server *srv)
{
	while (srv->dead) {
		struct ls_http_conn *c = srv->dead;
		srv->dead = c->next;
		ls_buf_free(&c->in);
		ls_buf_free(&c->out);
		free(c);
	}
}

static void update_events(struct ls_http_conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev;

	if (c->fd < 0)
		return;
	/* Stop reading while output is backed up: a client that pipelines requests
	 * but never reads the answers cannot make us buffer without bound. */
	if (c->stream || c->lingering || (!c->close_after && c->out.len < c->srv->o.max_out))
		want |= EPOLLIN | EPOLLRDHUP;
	if (c->out.len)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
	else
		conn_close(c);
}

/* Write what the socket takes. Closes the connection when done and close_after. */
static void conn_flush(struct ls_http_conn *c)
{
	while (c->fd >= 0 && c->out.len) {
		ssize_t n = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			ls_buf_consume(&c->out, (size_t)n);
			c->last_io_ns = now_ns();
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		conn_close(c);
		return;
	}
	if (c->fd >= 0 && !c->out.len && c->close_after && !c->stream && !c->lingering) {
		/* Lingering close: closing with unread input (a request body we refused,
		 * pipelined requests after an error) would send a reset that can destroy the
		 * response before the client reads it. So shut down writing and discard what
		 * arrives until the client closes, for at most the write timeout. */
		shutdown(c->fd, SHUT_WR);
		c->lingering = 1;
		c->last_io_ns = now_ns();
	}
	update_events(c);
}

static void append_head(struct ls_http_conn *c, int status, const char *ctype, const char *extra,
			int has_len, size_t len, const char *encoding, int keep)
{
	struct ls_buf *o = &c->out;

	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	/* RFC 9110 6.6.1: an origin server with a clock sends Date. */
	if (gmtime_r(&now, &tm) && strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
		ls_buf_printf(o, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, ls_http_reason(status), date);
	else
		ls_buf_printf(o, "HTTP/1.1 %d %s\r\n", status, ls_http_reason(status));
	if (ctype)
		ls_buf_printf(o, "Content-Type: %s\r\n", ctype);
	if (has_len)
		ls_buf_printf(o, "Content-Length: %zu\r\n", len);
	if (encoding)
		ls_buf_printf(o, "Content-Encoding: %s\r\n", encoding);
	if (extra)
		ls_buf_puts(o, extra);
	ls_buf_puts(o, keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
}

void ls_http_respond_encoded(struct ls_http_conn *c, int status, const char *ctype, const char *extra,
			     const void *body, size_t len, const char *encoding)
{
	const struct ls_http_req *r = c->req;
	int keep, head = r && r->method == LS_HTTP_HEAD;

	if (c->responded || c->fd < 0)
		return;
	c->responded = 1;
	keep = r && r->keep_alive && !r->has_body && status < 400;
	if (status == 404 || status == 405)
		keep = r && r->keep_alive && !r->has_body;	/* well-formed: the connection is fine */
	if (!keep)
		c->close_after = 1;
	append_head(c, status, ctype, extra, 1, len, encoding, keep);
	if (!head && len)
		ls_buf_append(&c->out, body, len);
	if (c->out.oom)
		conn_close(c);
}

void ls_http_respond(struct ls_http_conn *c, int status, const char *ctype, const char *extra,
		     const void *body, size_t len, int gzip)
{
	const struct ls_http_req *r = c->req;
	struct ls_buf z = { 0 };
	const char *enc = NULL;

	if (c->responded || c->fd < 0)
		return;
	if (gzip && r && r->accept_gzip && len > 0 && ls_gzip(body, len, &z) == 0 && !z.oom) {
		body = z.p;
		len = z.len;
		enc = "gzip";
	}
	ls_http_respond_encoded(c, status, ctype, extra, body, len, enc);
	ls_buf_free(&z);
}

void ls_http_stream(struct ls_http_conn *c, const char *ctype)
{
	const struct ls_http_req *r = c->req;

	if (c->responded || c->fd < 0)
		return;
	c->responded = 1;
	c->close_after = 1;
	append_head(c, 200, ctype, "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n", 0, 0, NULL, 0);
	if (r && r->method == LS_HTTP_HEAD)
		return;
	c->stream = 1;
	c->srv->nstreams++;
}

static void respond_error(struct ls_http_conn *c, int status)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, ls_http_reason(status));

	c->srv->st.bad_requests++;
	c->req = NULL;
	ls_http_respond(c, status, "text/plain; charset=utf-8", NULL, body, (size_t)n, 0);
	c->close_after = 1;
}

/* Handle every complete request head in c->in. */
static void conn_process(struct ls_http_conn *c)
{
	struct ls_http_server *srv = c->srv;

	while (c->fd >= 0 && !c->close_after && !c->stream && c->in.len && c->out.len < srv->o.max_out) {
		struct ls_http_req req;
		int n = ls_http_parse(c->in.p, c->in.len, srv->o.max_head, &req);

		if (n == 0)
			return;
		if (n < 0) {
			c->responded = 0;
			respond_error(c, -n);
			return;
		}
		ls_buf_consume(&c->in, (size_t)n);
		c->head_start_ns = c->in.len ? now_ns() : 0;
		srv->st.requests++;
		c->req = &req;
		c->responded = 0;
		srv->fn(c, &req, srv->arg);
		if (!c->responded)
			ls_http_respond(c, 500, "text/plain; charset=utf-8", NULL, "500 Internal Server Error\n", 26, 0);
		c->req = NULL;
		c->served = 1;
	}
}

static void conn_read(struct ls_http_conn *c)
{
	struct ls_http_server *srv = c->srv;
	char tmp[4096];
	size_t budget = 64 * 1024;	/* per round: a client that never stops sending cannot hold us */

	for (;;) {
		ssize_t n;

		if (budget < sizeof(tmp))
			break;
		n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n == 0) {
			conn_close(c);	/* peer closed; anything queued has nowhere to go */
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c);
			return;
		}
		budget -= (size_t)n;
		if (c->stream || c->close_after)
			continue;	/* nothing more is read from a stream or a closing connection */
		c->last_io_ns = now_ns();
		if (!c->in.len && !c->head_start_ns)
			c->head_start_ns = c->last_io_ns;
		ls_buf_append(&c->in, tmp, (size_t)n);
		if (c->in.oom) {
			conn_close(c);
			return;
		}
		/* Bound the input: a head larger than max_head is answered now. */
		if (c->in.len > srv->o.max_head + 4)
			break;
		if ((size_t)n < sizeof(tmp))
			break;
	}
	conn_process(c);
	if (c->fd >= 0)
		conn_flush(c);
}

/* At the connection limit, the connection that may go: one that has not sent a
 * complete request yet (idle since connect, or a head still arriving), else an idle
 * keep-alive one, the longest idle of either kind first. Streams and connections
 * with a response still queued are never evicted. NULL when there is none. */
static struct ls_http_conn *evict_candidate(struct ls_http_server *srv)
{
	struct ls_http_conn *c, *best = NULL;
	int best_rank = 0;

	for (c = srv->conns; c; c = c->next) {
		int rank;
		if (c->stream || c->lingering || c->close_after || c->out.len)
			continue;
		rank = !c->served ? 2 : !c->in.len ? 1 : 0;	/* a served one mid-head: not a candidate */
		if (!rank)
			continue;
		if (!best || rank > best_rank || (rank == best_rank && c->last_io_ns <= best->last_io_ns)) {
			best = c;
			best_rank = rank;
		}
	}
	return best;
}

static struct ls_http_conn *conn_add(struct ls_http_server *srv, int fd)
{
	struct ls_http_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	int one = 1;

	if (!c) {
		close(fd);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->srv = srv;
	c->last_io_ns = now_ns();
	c->events = EPOLLIN | EPOLLRDHUP;
	ev.events = c->events;
	ev.data.ptr = c;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		free(c);
		return NULL;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	return c;
}

/* Connections above max_conns that exist only to deliver a 503 (lingering close, so
 * the client reads it rather than a reset); beyond this many more, new ones are
 * closed at once. */
#define LS_HTTP_BUSY_EXTRA 16

static void accept_all(struct ls_http_server *srv)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
				   "503 too many clients";

	for (int k = 0; k < 256; k++) {
		struct ls_http_conn *c;
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;		/* EAGAIN, or a transient error (EMFILE, ECONNABORTED) */
		if (srv->nconns - srv->nbusy >= srv->o.max_conns) {
			/* Make room: a connection that has not asked for anything (or the
			 * longest idle keep-alive one) goes, so idle sockets can never lock a
			 * scraper out. */
			struct ls_http_conn *v = evict_candidate(srv);
			if (v) {
				srv->st.evicted++;
				conn_close(v);
			}
		}
		if (srv->nconns - srv->nbusy >= srv->o.max_conns) {
			/* Everyone is busy (streams, responses in flight): tell the client why,
			 * through a lingering close so it reads the 503 instead of a reset. */
			srv->st.rejected_busy++;
			if (srv->nbusy >= LS_HTTP_BUSY_EXTRA) {
				close(fd);
				continue;
			}
			c = conn_add(srv, fd);
			if (!c)
				continue;
			c->busy = 1;
			srv->nbusy++;
			c->responded = 1;
			c->close_after = 1;
			ls_buf_append(&c->out, busy, sizeof(busy) - 1);
			conn_flush(c);
			continue;
		}
		if (conn_add(srv, fd))
			srv->st.accepted++;
	}
}

/* When does c expire? 0 = never (a stream that keeps draining). */
static uint64_t conn_deadline(const struct ls_http_conn *c)
{
	const struct ls_http_opts *o = &c->srv->o;

	if (c->out.len)
		return c->last_io_ns + o->write_timeout_ms * 1000000ull;
	if (c->lingering)	/* at most 1 s, however much the client keeps sending */
		return c->last_io_ns + (o->write_timeout_ms < 1000 ? o->write_timeout_ms : 1000) * 1000000ull;
	if (c->stream)
		return 0;
	if (c->head_start_ns)
		return c->head_start_ns + o->header_timeout_ms * 1000000ull;
	/* A connection that never sent a request gets the header timeout, not the idle one,
	 * so silent connections cannot hold the connection limit for long. */
	return c->last_io_ns + (c->served ? o->idle_timeout_ms : o->header_timeout_ms) * 1000000ull;
}

static void sweep(struct ls_http_server *srv)
{
	uint64_t now = now_ns();
	struct ls_http_conn *c = srv->conns, *next;

	/* O(connections) per round; there are at most max_conns of them. */
	for (; c; c = next) {
		uint64_t d = conn_deadline(c);
		next = c->next;
		if (d && now >= d) {
			srv->st.timed_out++;
			conn_close(c);
		}
	}
}

int ls_http_poll(struct ls_http_server *srv, int timeout_ms)
{
	struct epoll_event evs[64];
	int n;

	n = epoll_wait(srv->epfd, evs, 64, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	srv->in_poll = 1;
	for (int i = 0; i < n; i++) {
		struct ls_http_conn *c = evs[i].data.ptr;

		if (!c) {
			accept_all(srv);
			continue;
		}
		if (c->fd < 0)
			continue;
		if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
			conn_close(c);
			continue;
		}
		if (evs[i].events & EPOLLOUT) {
			conn_flush(c);
			if (c->fd >= 0 && !c->out.len && c->in.len)
				conn_process(c);	/* pipelined requests held back by output */
			if (c->fd >= 0)
				conn_flush(c);
		}
		if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP)))
			conn_read(c);
	}
	sweep(srv);
	srv->in_poll = 0;
	reap(srv);
	return 0;
}

void ls_http_stream_write(struct ls_http_conn *c, const void *data, size_t len)
{
	if (c->fd < 0 || !c->stream)
		return;
	if (c->out.len + len > c->srv->o.max_out) {
		c->srv->st.stream_drops++;
		conn_close(c);
		return;
	}
	ls_buf_append(&c->out, data, len);
	if (c->out.oom)
		conn_close(c);
	/* Flushed by the caller's round (inside a handler) or right here otherwise. */
	else if (!c->req)
		conn_flush(c);
}

int ls_http_broadcast(struct ls_http_server *srv, const void *data, size_t len, int droppable, size_t soft)
{
	struct ls_http_conn *c, *next;
	int reached = 0;

	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (!c->stream)
			continue;
		if (droppable && c->out.len > soft) {
			srv->st.stream_drops++;
			continue;
		}
		if (c->out.len + len > srv->o.max_out) {
			srv->st.stream_drops++;
			conn_close(c);	/* a reader this far behind is not reading */
			continue;
		}
		ls_buf_append(&c->out, data, len);
		if (c->out.oom) {
			conn_close(c);
			continue;
		}
		reached++;
		conn_flush(c);
	}
	if (!srv->in_poll)
		reap(srv);
	return reached;
}

int ls_http_nstreams(const struct ls_http_server *srv) { return srv->nstreams; }
int ls_http_fd(const struct ls_http_server *srv) { return srv->epfd; }
int ls_http_port(const struct ls_http_server *srv) { return srv->port; }

void ls_http_get_stats(const struct ls_http_server *srv, struct ls_http_stats *st)
{
	*st = srv->st;
	st->open = srv->nconns - srv->nbusy;
}

/* "host:port", "[v6]:port" or ":port" into a sockaddr. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[128];
	const char *colon, *hs = addr, *he;
	char *end;
	long port;

	if (addr[0] == '[') {
		hs = addr + 1;
		he = strchr(hs, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		he = colon;
	}
	if ((size_t)(he - hs) >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (!host[0] || strchr(host, ':') == NULL) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (!host[0])
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (!strcmp(host, "localhost"))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -EINVAL;
		*sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return -EINVAL;
		*sl = sizeof(*in6);
	}
	return 0;
}

int ls_http_new(const char *addr, const struct ls_http_opts *opts, ls_http_handler fn, void *arg,
		struct ls_http_server **out, char *err, size_t errlen)
{
	struct ls_http_server *srv = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct epoll_event ev;
	int one = 1, rc;

	*out = NULL;
	if (parse_addr(addr, &ss, &sl)) {
		snprintf(err, errlen, "bad listen address '%s'; use HOST:PORT, e.g. 127.0.0.1:9752 or [::1]:9752", addr);
		return -EINVAL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	srv->epfd = srv->lfd = -1;
	srv->fn = fn;
	srv->arg = arg;
	if (opts)
		srv->o = *opts;
	if (srv->o.max_conns <= 0)
		srv->o.max_conns = 256;
	if (!srv->o.header_timeout_ms)
		srv->o.header_timeout_ms = 5000;
	if (!srv->o.idle_timeout_ms)
		srv->o.idle_timeout_ms = 60000;
	if (!srv->o.write_timeout_ms)
		srv->o.write_timeout_ms = 10000;
	if (!srv->o.max_head)
		srv->o.max_head = 8192;
	if (!srv->o.max_out)
		srv->o.max_out = 8u << 20;

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->epfd < 0 || srv->lfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
		goto cleanup;
	}
	setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(srv->lfd, (struct sockaddr *)&ss, sl) || listen(srv->lfd, 1024)) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s%s", addr, strerror(errno),
			 errno == EADDRINUSE ? "; pick another port with --listen" : "");
		goto cleanup;
	}
	{
		struct sockaddr_storage b;
		socklen_t bl = sizeof(b);
		getsockname(srv->lfd, (struct sockaddr *)&b, &bl);
		srv->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
							 : ((struct sockaddr_in *)&b)->sin_port);
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd, &ev)) {
		rc = -errno;
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto cleanup;
	}
	*out = srv;
	return 0;
cleanup:
	ls_http_free(srv);
	return rc;
}

void ls_http_free(struct ls_http_server *srv)
{
	if (!srv)
		return;
	while (srv->conns)
		conn_close(srv->conns);
	reap(srv);
	if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->epfd >= 0)
		close(srv->epfd);
	free(srv);
}
