/* http.c: a bounded, single-threaded HTTP/1.1 server (see http.h for the contract; the
 * bytes of each connection, through TLS or not, are http_tls.c's: http_int.h). */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "http_int.h"
#include "webconfig.h"


/* ---------------------------------------------------------------- server */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ls_http__conn_close(struct ls_http_conn *c)
{
	struct ls_http_server *srv = c->srv;

	if (c->fd < 0)
		return;
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
	if (c->stream)
		srv->nstreams--;
	if (c->busy)
		srv->nbusy--;
	else if (c->lingering)
		srv->nlinger--;
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
	if (c->out.len || c->tls_want_write)
		want |= EPOLLOUT;
	if (c->ssl && !c->tls_ready)
		want = EPOLLIN | EPOLLRDHUP | (c->tls_want_write ? EPOLLOUT : 0);
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
	else
		ls_http__conn_close(c);
}

/* Write what the socket takes. Closes the connection when done and close_after. */
static void conn_flush(struct ls_http_conn *c)
{
	if (c->ssl && !c->tls_ready) {
		int r = ls_http__tls_handshake(c);

		if (r <= 0 && r != -2) {
			if (c->fd >= 0)
				update_events(c);
			return;
		}
	}
	while (c->fd >= 0 && c->out.len) {
		ssize_t n = ls_http__conn_send(c, c->out.p, c->out.len);
		if (n > 0) {
			ls_buf_consume(&c->out, (size_t)n);
			c->last_io_ns = now_ns();
			continue;
		}
		if (n == -EAGAIN)
			break;
		if (n == -EINTR)
			continue;
		ls_http__conn_close(c);
		return;
	}
	if (c->fd >= 0 && !c->out.len && c->close_after && !c->stream && !c->lingering) {
		/* Lingering close: closing with unread input (a request body we refused,
		 * pipelined requests after an error) would send a reset that can destroy the
		 * response before the client reads it. So shut down writing and discard what
		 * arrives until the client closes, for at most the write timeout. */
		if (c->ssl)
			SSL_shutdown(c->ssl);	/* close_notify, best effort: never waited for */
		shutdown(c->fd, SHUT_WR);
		c->lingering = 1;
		if (!c->busy)
			c->srv->nlinger++;
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
		ls_http__conn_close(c);
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
		if (srv->auth && !(req.auth_ok && ls_web_auth_check(srv->auth, req.auth))) {
			srv->st.unauthorized++;
			ls_http_respond(c, 401, "text/plain; charset=utf-8",
					"WWW-Authenticate: Basic realm=\"loopscope\", charset=\"UTF-8\"\r\n",
					"401 Unauthorized\n", 17, 0);
		} else {
			srv->fn(c, &req, srv->arg);
		}
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
		n = ls_http__conn_recv(c, tmp, sizeof(tmp));
		if (n == 0) {
			ls_http__conn_close(c);	/* peer closed; anything queued has nowhere to go */
			return;
		}
		if (n < 0) {
			if (n == -EINTR)
				continue;
			if (n == -EAGAIN)
				break;
			ls_http__conn_close(c);
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
			ls_http__conn_close(c);
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

/* Connections that count against max_conns: not the ones delivering a 503, not the
 * ones that are answered and only wait for the client to close (lingering). */
static int active_conns(const struct ls_http_server *srv)
{
	return srv->nconns - srv->nbusy - srv->nlinger;
}

/* A connection idle for less than this is never evicted: it may have just been
 * accepted with its request still on the way, and closing it would reset it. */
#define LS_HTTP_EVICT_GRACE_NS 100000000ull

/* At the connection limit, the connection that may make room: one that has not sent a
 * complete request yet (idle since connect, or a head still arriving), else an idle
 * keep-alive one, the longest idle of either kind first, idle for at least the grace.
 * Streams and connections with a response queued are never evicted. Candidates'
 * sockets are read first: a request that has arrived is answered, not evicted.
 * NULL when there is none. */
static struct ls_http_conn *evict_candidate(struct ls_http_server *srv)
{
	struct ls_http_conn *c, *next, *best = NULL;
	uint64_t now = now_ns();
	int best_rank = 0;

	for (c = srv->conns; c; c = next) {
		int rank;

		next = c->next;
		if (c->stream || c->lingering || c->close_after || c->out.len || c->busy)
			continue;
		if (now - c->last_io_ns < LS_HTTP_EVICT_GRACE_NS)
			continue;
		rank = !c->served ? 2 : !c->in.len ? 1 : 0;	/* a served one mid-head: not a candidate */
		if (!rank)
			continue;
		if (!best || rank > best_rank || (rank == best_rank && c->last_io_ns <= best->last_io_ns)) {
			best = c;
			best_rank = rank;
		}
	}
	if (best) {
		uint64_t before = best->last_io_ns;

		conn_read(best);
		if (best->fd < 0 || best->last_io_ns != before || best->out.len || best->lingering)
			return NULL;	/* it spoke (or left): it is not idle, and may free a slot */
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
	if (srv->tls && ls_http__tls_new(c, srv->tls, fd)) {
		close(fd);
		free(c);
		return NULL;
	}
	c->fd = fd;
	c->srv = srv;
	c->last_io_ns = now_ns();
	c->events = EPOLLIN | EPOLLRDHUP;
	ev.events = c->events;
	ev.data.ptr = c;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		SSL_free(c->ssl);
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

static void set_accepting(struct ls_http_server *srv, int on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.ptr = NULL };

	if (srv->accepting == on)
		return;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd, &ev) == 0)
		srv->accepting = on;
}

/* Room for one more socket of any kind (busy 503s are bounded by max_conns too)? When
 * there is none, new connections wait in the listen backlog, not reset. */
static int have_room(const struct ls_http_server *srv)
{
	return srv->nconns < srv->max_fds && srv->nbusy < srv->o.max_conns;
}

/* Turn c into a busy connection: it only delivers a 503 with Retry-After (or, with
 * timeout set, a 408 for a head that came too slowly), then closes lingering, so a
 * request that arrives meanwhile reads the answer, not a reset. */
static void make_busy_as(struct ls_http_conn *c, int timeout)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
				   "503 too many clients";
	static const char late[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 20\r\nConnection: close\r\n\r\n"
				   "408 request too slow";

	c->busy = 1;
	c->srv->nbusy++;
	c->responded = 1;
	c->close_after = 1;
	ls_buf_reset(&c->in);
	c->head_start_ns = 0;
	if (timeout)
		ls_buf_append(&c->out, late, sizeof(late) - 1);
	else
		ls_buf_append(&c->out, busy, sizeof(busy) - 1);
	conn_flush(c);
}

static void make_busy(struct ls_http_conn *c)
{
	make_busy_as(c, 0);
}

/* Make room for a newcomer at the limit: a never-served connection is told 503 (it
 * asked nothing yet; if it does, it reads the 503), an idle keep-alive one is closed
 * (nothing is unread: it was read first). 1 if a slot was freed. */
static int evict(struct ls_http_server *srv)
{
	struct ls_http_conn *v = evict_candidate(srv);

	if (!v)
		return active_conns(srv) < srv->o.max_conns;
	srv->st.evicted++;
	if (v->served)
		ls_http__conn_close(v);
	else
		make_busy(v);
	return 1;
}

static void accept_all(struct ls_http_server *srv)
{
	for (int k = 0; k < 256; k++) {
		struct ls_http_conn *c;
		int fd;

		if (!have_room(srv)) {
			set_accepting(srv, 0);
			return;
		}
		fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: leave newcomers in the backlog a while. */
				srv->pause_until_ns = now_ns() + 100000000ull;
				set_accepting(srv, 0);
			}
			return;		/* EAGAIN, or a transient error (ECONNABORTED) */
		}
		/* Make room: a connection that has not asked for anything (or the longest
		 * idle keep-alive one) goes, so idle sockets can never lock a scraper out. */
		if (active_conns(srv) >= srv->o.max_conns)
			evict(srv);
		if (active_conns(srv) >= srv->o.max_conns) {
			/* Everyone is busy (streams, responses in flight, requests arriving). */
			srv->st.rejected_busy++;
			if ((c = conn_add(srv, fd)))
				make_busy(c);
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
	/* Lingering: at most the header timeout, however much the client keeps sending
	 * (reads do not move last_io_ns); long enough for a client that was told 503
	 * before it sent its request to send it and read the answer. */
	if (c->lingering)
		return c->last_io_ns + o->header_timeout_ms * 1000000ull;
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
		if (!d || now < d)
			continue;
		if (!c->lingering)
			srv->st.timed_out++;
		/* A connection that never got an answer is told why before it goes (its
		 * request may be on the way: a bare close would reset it): 503 if it sent
		 * nothing (we could not wait longer), 408 if its head came too slowly. A
		 * keep-alive one that was answered closes quietly, as HTTP expects. */
		if (!c->lingering && !c->busy && !c->stream && !c->out.len && !c->close_after && !c->served)
			make_busy_as(c, c->in.len > 0);
		else
			ls_http__conn_close(c);
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
			ls_http__conn_close(c);
			continue;
		}
		if (evs[i].events & EPOLLOUT) {
			conn_flush(c);
			if (c->fd >= 0 && !c->out.len && c->in.len)
				conn_process(c);	/* pipelined requests held back by output */
			if (c->fd >= 0)
				conn_flush(c);
		}
		if (c->fd >= 0 && ((evs[i].events & (EPOLLIN | EPOLLRDHUP)) || (c->ssl && (evs[i].events & EPOLLOUT))))
			conn_read(c);
	}
	sweep(srv);
	srv->in_poll = 0;
	reap(srv);
	if (!srv->accepting && have_room(srv) && now_ns() >= srv->pause_until_ns)
		set_accepting(srv, 1);
	return 0;
}

void ls_http_stream_write(struct ls_http_conn *c, const void *data, size_t len)
{
	if (c->fd < 0 || !c->stream)
		return;
	if (c->out.len + len > c->srv->o.max_out) {
		c->srv->st.stream_drops++;
		ls_http__conn_close(c);
		return;
	}
	ls_buf_append(&c->out, data, len);
	if (c->out.oom)
		ls_http__conn_close(c);
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
			ls_http__conn_close(c);	/* a reader this far behind is not reading */
			continue;
		}
		ls_buf_append(&c->out, data, len);
		if (c->out.oom) {
			ls_http__conn_close(c);
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
int ls_http_loopback(const struct ls_http_server *srv) { return srv->loopback; }

void ls_http_get_stats(const struct ls_http_server *srv, struct ls_http_stats *st)
{
	*st = srv->st;
	st->open = srv->nconns - srv->nbusy;
	st->lingering = srv->nlinger;
}

#define LS_HTTP_BACKLOG 4096
#define LS_HTTP_FD_RESERVE 128	/* descriptors left for the rest of the process (BPF, /proc) */

/* How many connections the descriptor limit allows: the soft RLIMIT_NOFILE is raised
 * to the hard one first (a 1024 default would make accept() fail at ~1000 clients). */
static int fd_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024 - LS_HTTP_FD_RESERVE;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
		struct rlimit nl = { want, rl.rlim_max };

		if (want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nl) == 0)
			rl.rlim_cur = want;
	}
	if (rl.rlim_cur <= 2 * LS_HTTP_FD_RESERVE)
		return (int)(rl.rlim_cur / 2);
	return rl.rlim_cur - LS_HTTP_FD_RESERVE > 1000000 ? 1000000 : (int)(rl.rlim_cur - LS_HTTP_FD_RESERVE);
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
		srv->o.max_conns = 1024;
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

	if (srv->o.web && srv->o.web->tls && !(srv->tls = ls_http__tls_context(srv->o.web, err, errlen))) {
		rc = -EINVAL;
		goto cleanup;
	}
	if (srv->o.web && srv->o.web->nusers && !(srv->auth = ls_web_auth_new(srv->o.web))) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto cleanup;
	}
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->epfd < 0 || srv->lfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
		goto cleanup;
	}
	setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* The backlog is where newcomers wait while every socket we allow is in use
	 * (the kernel caps it at net.core.somaxconn). */
	if (bind(srv->lfd, (struct sockaddr *)&ss, sl) || listen(srv->lfd, LS_HTTP_BACKLOG)) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s%s", addr, strerror(errno),
			 errno == EADDRINUSE ? "; pick another port with --listen" : "");
		goto cleanup;
	}
	{
		struct sockaddr_storage b;
		socklen_t bl = sizeof(b);
		getsockname(srv->lfd, (struct sockaddr *)&b, &bl);
		srv->loopback = b.ss_family == AF_INET6
			? IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&b)->sin6_addr)
			: (ntohl(((struct sockaddr_in *)&b)->sin_addr.s_addr) >> 24) == 127;
		srv->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
							 : ((struct sockaddr_in *)&b)->sin_port);
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	srv->accepting = 1;
	srv->max_fds = fd_budget();
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
		ls_http__conn_close(srv->conns);
	reap(srv);
	if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->epfd >= 0)
		close(srv->epfd);
	SSL_CTX_free(srv->tls);
	ls_web_auth_free(srv->auth);
	free(srv);
}

