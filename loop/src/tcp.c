/* tcp.c: IPv4 TCP handles on top of the loop's readiness watchers: enough for a
 * 127.0.0.1 echo or HTTP-like server and its clients. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lsl_internal.h"

#define READ_BUF 65536

enum {
	TCP_LISTENING = 1 << 0,
	TCP_CONNECTING = 1 << 1,
	TCP_CONNECTED = 1 << 2,
	TCP_READING = 1 << 3,
	TCP_CONNECT_DEFERRED = 1 << 4,	/* connect result waits in the pending queue */
};

struct lsl__write_req {
	struct lsl__write_req *next;
	lsl_tcp_t *tcp;
	lsl_write_cb cb;
	void *arg;
	size_t len, off;
	int status;
	char buf[];
};

static void tcp_io_cb(lsl_io_t *io, int events);

int lsl_tcp_init(lsl_loop_t *loop, lsl_tcp_t *tcp)
{
	if (!loop || !tcp)
		return -EINVAL;
	lsl__handle_init(loop, &tcp->h, LSL__TCP);
	tcp->h.data = NULL;
	tcp->fd = -1;
	lsl__io_init_internal(loop, &tcp->io, -1, &tcp->h);
	tcp->on_connection = NULL;
	tcp->on_connect = NULL;
	tcp->on_read = NULL;
	tcp->wq_head = tcp->wq_tail = NULL;
	tcp->accepted_fd = -1;
	tcp->connect_status = 0;
	tcp->tflags = 0;
	return 0;
}

/* The events the watcher needs now, from the handle's state. */
static int tcp_update_io(lsl_tcp_t *tcp)
{
	uint32_t ev = 0;
	int err;

	if (tcp->fd < 0)
		return 0;
	if (tcp->tflags & (TCP_LISTENING | TCP_READING))
		ev |= LSL_READABLE;
	if ((tcp->tflags & TCP_CONNECTING) || tcp->wq_head)
		ev |= LSL_WRITABLE;
	if (ev == tcp->io.events)
		return 0;
	tcp->io.fd = tcp->fd;
	err = lsl__io_set(&tcp->io, ev, ev ? tcp_io_cb : NULL);
	if (ev)
		lsl__handle_start(&tcp->h);
	else
		lsl__handle_stop(&tcp->h);
	return err;
}

static int parse_addr(const char *ip, uint16_t port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	if (!ip || inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

static int tcp_check_unused(lsl_tcp_t *tcp)
{
	int err = lsl__handle_check(tcp ? &tcp->h : NULL, LSL__TCP);

	if (err)
		return err;
	return tcp->fd >= 0 ? -EISCONN : 0;
}

int lsl_tcp_listen(lsl_tcp_t *tcp, const char *ip, uint16_t port, int backlog, lsl_connection_cb cb)
{
	struct sockaddr_in sa;
	int fd = -1, one = 1, err;

	err = tcp_check_unused(tcp);
	if (err)
		return err;
	if (!cb || backlog <= 0)
		return -EINVAL;
	err = parse_addr(ip, port, &sa);
	if (err)
		return err;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0) {
		err = -errno;
		goto cleanup;
	}
	tcp->fd = fd;
	tcp->on_connection = cb;
	tcp->tflags |= TCP_LISTENING;
	err = tcp_update_io(tcp);
	if (err) {
		tcp->fd = -1;
		tcp->tflags = 0;
		goto cleanup;
	}
	return 0;
cleanup:
	close(fd);
	return err;
}

int lsl_tcp_port(const lsl_tcp_t *tcp)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int err = lsl__handle_check(tcp ? &tcp->h : NULL, LSL__TCP);

	if (err)
		return err;
	if (tcp->fd < 0)
		return -ENOTCONN;
	if (getsockname(tcp->fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	return ntohs(sa.sin_port);
}

int lsl_tcp_accept(lsl_tcp_t *server, lsl_tcp_t *client)
{
	int err = lsl__handle_check(server ? &server->h : NULL, LSL__TCP), one = 1;

	if (err)
		return err;
	err = tcp_check_unused(client);
	if (err)
		return err;
	if (!(server->tflags & TCP_LISTENING))
		return -EINVAL;
	if (server->accepted_fd < 0)
		return -EAGAIN;
	client->fd = server->accepted_fd;
	server->accepted_fd = -1;
	client->tflags |= TCP_CONNECTED;
	setsockopt(client->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* The server was paused while a connection waited: listen again. */
	return tcp_update_io(server);
}

static void connect_done_task(lsl_loop_t *loop, void *arg)
{
	lsl_tcp_t *tcp = arg;
	lsl_connect_cb cb = tcp->on_connect;

	tcp->tflags &= ~TCP_CONNECT_DEFERRED;
	tcp->on_connect = NULL;
	loop->active_reqs--;
	if (cb)
		cb(tcp, tcp->connect_status);
}

int lsl_tcp_connect(lsl_tcp_t *tcp, const char *ip, uint16_t port, lsl_connect_cb cb)
{
	struct sockaddr_in sa;
	int fd, err, rc, one = 1;

	err = tcp_check_unused(tcp);
	if (err)
		return err;
	if (!cb)
		return -EINVAL;
	err = parse_addr(ip, port, &sa);
	if (err)
		return err;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	tcp->fd = fd;
	tcp->on_connect = cb;
	tcp->h.loop->active_reqs++;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (rc == 0 || errno != EINPROGRESS) {
		/* Done (or failed) at once: report it from the pending phase, never
		 * from inside this call. */
		tcp->connect_status = rc == 0 ? 0 : -errno;
		if (tcp->connect_status == 0)
			tcp->tflags |= TCP_CONNECTED;
		err = lsl__task_push(tcp->h.loop, &tcp->h.loop->pending, connect_done_task, tcp);
		if (err)
			goto fail;
		tcp->tflags |= TCP_CONNECT_DEFERRED;
		return 0;
	}
	tcp->tflags |= TCP_CONNECTING;
	err = tcp_update_io(tcp);
	if (err)
		goto fail;
	return 0;
fail:
	tcp->h.loop->active_reqs--;
	tcp->on_connect = NULL;
	tcp->tflags = 0;
	tcp->fd = -1;
	close(fd);
	return err;
}

int lsl_tcp_read_start(lsl_tcp_t *tcp, lsl_read_cb cb)
{
	int err = lsl__handle_check(tcp ? &tcp->h : NULL, LSL__TCP);

	if (err)
		return err;
	if (!cb)
		return -EINVAL;
	if (!(tcp->tflags & TCP_CONNECTED))
		return -ENOTCONN;
	if (!tcp->h.loop->read_buf && !(tcp->h.loop->read_buf = malloc(READ_BUF)))
		return -ENOMEM;
	tcp->on_read = cb;
	tcp->tflags |= TCP_READING;
	return tcp_update_io(tcp);
}

int lsl_tcp_read_stop(lsl_tcp_t *tcp)
{
	int err = lsl__handle_check(tcp ? &tcp->h : NULL, LSL__TCP);

	if (err)
		return err;
	tcp->tflags &= ~TCP_READING;
	return tcp_update_io(tcp);
}

static void write_done_task(lsl_loop_t *loop, void *arg)
{
	struct lsl__write_req *r = arg;

	loop->active_reqs--;
	if (r->cb)
		r->cb(r->tcp, r->status, r->arg);
	free(r);
}

/* Write what the socket takes from the head of the queue. Completed requests run
 * their callbacks here (poll phase). Returns 0 or -errno for a broken connection. */
static int flush_writes(lsl_tcp_t *tcp, int from_poll)
{
	lsl_loop_t *loop = tcp->h.loop;

	while (tcp->wq_head) {
		struct lsl__write_req *r = tcp->wq_head;
		ssize_t n = send(tcp->fd, r->buf + r->off, r->len - r->off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -errno;
		}
		r->off += (size_t)n;
		if (r->off < r->len)
			return 0;
		tcp->wq_head = r->next;
		if (!tcp->wq_head)
			tcp->wq_tail = NULL;
		if (from_poll) {
			loop->active_reqs--;
			if (r->cb)
				r->cb(tcp, 0, r->arg);
			free(r);
			LSL__DRAIN(loop);
			if (tcp->fd < 0)
				return 0;	/* the callback closed the handle */
		} else if (lsl__task_push(loop, &loop->pending, write_done_task, r) != 0) {
			loop->active_reqs--;	/* no memory to defer: drop the callback */
			free(r);
		}
	}
	return 0;
}

/* Fail every queued write with status (callbacks run now, in queue order). */
static void fail_writes(lsl_tcp_t *tcp, int status)
{
	lsl_loop_t *loop = tcp->h.loop;

	while (tcp->wq_head) {
		struct lsl__write_req *r = tcp->wq_head;

		tcp->wq_head = r->next;
		if (!tcp->wq_head)
			tcp->wq_tail = NULL;
		loop->active_reqs--;
		if (r->cb)
			r->cb(tcp, status, r->arg);
		free(r);
		LSL__DRAIN(loop);
	}
}

int lsl_tcp_write(lsl_tcp_t *tcp, const void *buf, size_t len, lsl_write_cb cb, void *arg)
{
	struct lsl__write_req *r;
	int err = lsl__handle_check(tcp ? &tcp->h : NULL, LSL__TCP);

	if (err)
		return err;
	if (!buf && len)
		return -EINVAL;
	if (!(tcp->tflags & TCP_CONNECTED))
		return -ENOTCONN;
	r = malloc(sizeof(*r) + len);
	if (!r)
		return -ENOMEM;
	r->next = NULL;
	r->tcp = tcp;
	r->cb = cb;
	r->arg = arg;
	r->len = len;
	r->off = 0;
	r->status = 0;
	if (len)
		memcpy(r->buf, buf, len);
	tcp->h.loop->active_reqs++;
	if (tcp->wq_tail)
		tcp->wq_tail->next = r;
	else
		tcp->wq_head = r;
	tcp->wq_tail = r;
	if (tcp->wq_head == r) {
		err = flush_writes(tcp, 0);
		if (err) {
			/* Report the error like a completion: deferred, never re-entrant. */
			tcp->wq_head = r->next;
			if (!tcp->wq_head)
				tcp->wq_tail = NULL;
			r->status = err;
			if (lsl__task_push(tcp->h.loop, &tcp->h.loop->pending, write_done_task, r)) {
				tcp->h.loop->active_reqs--;
				free(r);
				return -ENOMEM;
			}
		}
	}
	return tcp_update_io(tcp);
}

size_t lsl_tcp_write_queue_size(const lsl_tcp_t *tcp)
{
	const struct lsl__write_req *r;
	size_t n = 0;

	if (lsl__handle_check(tcp ? &tcp->h : NULL, LSL__TCP))
		return 0;
	for (r = tcp->wq_head; r; r = r->next)
		n += r->len - r->off;
	return n;
}

static void on_listen_ready(lsl_tcp_t *tcp)
{
	lsl_loop_t *loop = tcp->h.loop;
	int i;

	/* Up to 32 connections per wake-up, each announced to its own callback. */
	for (i = 0; i < 32 && tcp->fd >= 0; i++) {
		if (tcp->accepted_fd < 0) {
			int fd = accept4(tcp->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
					tcp->on_connection(tcp, -errno);
				return;
			}
			tcp->accepted_fd = fd;
		}
		tcp->on_connection(tcp, 0);
		LSL__DRAIN(loop);
		if (tcp->fd >= 0 && tcp->accepted_fd >= 0) {
			/* Not taken: stop listening until lsl_tcp_accept (libuv does too). */
			tcp->tflags &= ~TCP_LISTENING;
			tcp_update_io(tcp);
			tcp->tflags |= TCP_LISTENING;
			return;
		}
	}
}

static void on_readable(lsl_tcp_t *tcp)
{
	lsl_loop_t *loop = tcp->h.loop;
	ssize_t n = read(tcp->fd, loop->read_buf, READ_BUF);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		tcp->tflags &= ~TCP_READING;
		tcp_update_io(tcp);
		tcp->on_read(tcp, n == 0 ? LSL_EOF : -errno, NULL);
	} else {
		tcp->on_read(tcp, n, loop->read_buf);
	}
	LSL__DRAIN(loop);
}

static void on_connected(lsl_tcp_t *tcp)
{
	lsl_connect_cb cb = tcp->on_connect;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	getsockopt(tcp->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	tcp->tflags &= ~TCP_CONNECTING;
	if (!soerr)
		tcp->tflags |= TCP_CONNECTED;
	tcp->on_connect = NULL;
	tcp->h.loop->active_reqs--;
	tcp_update_io(tcp);
	cb(tcp, -soerr);
	LSL__DRAIN(tcp->h.loop);
}

/* The embedded watcher's dispatcher: the user callbacks it calls are each followed
 * by their own tick/microtask drain, as Node runs each 'data' handler. */
static void tcp_io_cb(lsl_io_t *io, int events)
{
	lsl_tcp_t *tcp = (lsl_tcp_t *)io->h.data;
	int err;

	if (tcp->tflags & TCP_LISTENING) {
		on_listen_ready(tcp);
		return;
	}
	if ((events & LSL_WRITABLE) && (tcp->tflags & TCP_CONNECTING)) {
		on_connected(tcp);
		return;
	}
	if ((events & LSL_READABLE) && (tcp->tflags & TCP_READING)) {
		on_readable(tcp);
		if (tcp->fd < 0)
			return;		/* closed by the read callback */
	}
	if ((events & LSL_WRITABLE) && tcp->wq_head) {
		err = flush_writes(tcp, 1);
		if (tcp->fd < 0)
			return;
		if (err)
			fail_writes(tcp, err);
		if (tcp->fd >= 0)
			tcp_update_io(tcp);
	}
}

/* lsl_close, first half: stop watching and close the socket now. */
void lsl__tcp_close(lsl_tcp_t *tcp)
{
	lsl__io_forget(&tcp->io);
	if (tcp->fd >= 0)
		close(tcp->fd);
	tcp->fd = -1;
	tcp->io.fd = -1;
	if (tcp->accepted_fd >= 0)
		close(tcp->accepted_fd);
	tcp->accepted_fd = -1;
	tcp->tflags &= ~(TCP_LISTENING | TCP_READING);
}

/* lsl_close, second half (close phase, before the close callback): every request of
 * the handle ends, so none can reach it after its memory is gone. */
void lsl__tcp_finish_close(lsl_tcp_t *tcp)
{
	lsl_loop_t *loop = tcp->h.loop;
	struct lsl__task **pp = &loop->pending.head, *t, *prev = NULL;

	if (tcp->tflags & TCP_CONNECTING) {
		lsl_connect_cb cb = tcp->on_connect;

		tcp->tflags &= ~TCP_CONNECTING;
		tcp->on_connect = NULL;
		loop->active_reqs--;
		if (cb)
			cb(tcp, -ECANCELED);
	}
	fail_writes(tcp, -ECANCELED);
	/* Completions of this handle still waiting in the pending queue run now. */
	while ((t = *pp)) {
		int mine = (t->cb == write_done_task && ((struct lsl__write_req *)t->arg)->tcp == tcp) ||
			   (t->cb == connect_done_task && t->arg == tcp);
		if (!mine) {
			prev = t;
			pp = &t->next;
			continue;
		}
		*pp = t->next;
		if (loop->pending.tail == t)
			loop->pending.tail = prev;
		loop->pending.n--;
		if (t->cb == connect_done_task)
			tcp->connect_status = -ECANCELED;
		t->cb(loop, t->arg);
		lsl__task_recycle(loop, t);
	}
	tcp->tflags = 0;
}
