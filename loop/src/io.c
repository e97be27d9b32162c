/* io.c: readiness watchers on the loop's epoll set and the wait of the poll phase. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "lsl_internal.h"

#define MAX_EVENTS 256

static uint32_t to_epoll(uint32_t ev)
{
	return ((ev & LSL_READABLE) ? EPOLLIN : 0) | ((ev & LSL_WRITABLE) ? EPOLLOUT : 0);
}

void lsl__io_init_internal(lsl_loop_t *loop, lsl_io_t *io, int fd, lsl_handle_t *owner)
{
	io->h.loop = loop;
	io->h.data = owner;	/* the tcp handle an embedded watcher belongs to, else NULL */
	io->h.magic = 0;	/* internal watchers are not handles: the public API refuses them */
	io->fd = fd;
	io->cb = NULL;
	io->events = 0;
	io->registered = 0;
}

/* Drop events of io from the batch being dispatched: its callback must not run
 * after a stop or close done by an earlier callback of the same batch. */
static void invalidate(lsl_io_t *io)
{
	lsl_loop_t *loop = io->h.loop;
	int i;

	for (i = loop->event_index; i < loop->nevents; i++)
		if (loop->events[i].data.ptr == io)
			loop->events[i].data.ptr = NULL;
}

/* Watch events (0 = leave the epoll set) with cb. 0 or -errno from epoll_ctl. */
int lsl__io_set(lsl_io_t *io, uint32_t events, lsl_io_cb cb)
{
	lsl_loop_t *loop = io->h.loop;
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	io->cb = cb;
	if (!events) {
		if (io->registered) {
			epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, &ev);
			io->registered = 0;
			loop->nfds--;
		}
		io->events = 0;
		invalidate(io);
		return 0;
	}
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (epoll_ctl(loop->epfd, io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, io->fd, &ev) < 0)
		return -errno;
	if (!io->registered) {
		io->registered = 1;
		loop->nfds++;
	}
	io->events = events;
	return 0;
}

void lsl__io_forget(lsl_io_t *io)
{
	lsl__io_set(io, 0, NULL);
}

int lsl_io_init(lsl_loop_t *loop, lsl_io_t *io, int fd)
{
	if (!loop || !io)
		return -EINVAL;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	lsl__io_init_internal(loop, io, fd, NULL);
	lsl__handle_init(loop, &io->h, LSL__IO);
	return 0;
}

int lsl_io_start(lsl_io_t *io, int events, lsl_io_cb cb)
{
	int err = lsl__handle_check(io ? &io->h : NULL, LSL__IO);

	if (err)
		return err;
	if (!cb || events <= 0 || (events & ~(LSL_READABLE | LSL_WRITABLE)))
		return -EINVAL;
	err = lsl__io_set(io, (uint32_t)events, cb);
	if (err)
		return err;
	lsl__handle_start(&io->h);
	return 0;
}

int lsl_io_stop(lsl_io_t *io)
{
	int err = lsl__handle_check(io ? &io->h : NULL, LSL__IO);

	if (err)
		return err;
	lsl__io_forget(io);
	lsl__handle_stop(&io->h);
	return 0;
}

/*
 * The poll phase's wait and dispatch. Sets *wait_ns to the time blocked in
 * epoll_wait (when the record is on), *nev to the events returned, and counts the
 * I/O callbacks in *ncb. With nothing in the epoll set and a zero timeout the
 * syscall is skipped, as libuv does. Returns 0 or -errno from epoll_wait.
 */
int lsl__io_poll(lsl_loop_t *loop, int timeout_ms, uint32_t *ncb, uint64_t *wait_ns, int *nev)
{
	uint64_t t0 = 0, t1;
	int n, i;

	*nev = 0;
	if (loop->nfds == 0 && timeout_ms == 0) {
		if (loop->rec_on)
			loop->rec.poll_return_ns = loop->last_poll_return_ns = loop->rec.live_phase_since_ns;
		else if (LSL_PROBE_ON(poll_start))	/* a tracer came during this iteration */
			loop->rec.poll_return_ns = lsl_hrtime_ns();
		if (LSL_PROBE_ON(poll_end))
			LSL_PROBE2(poll_end, loop, 0);
		return 0;
	}
	if (!loop->events) {
		loop->events = calloc(MAX_EVENTS, sizeof(*loop->events));
		if (!loop->events)
			return -ENOMEM;
	}
	if (loop->rec_on)
		t0 = lsl_hrtime_ns();
	do
		n = epoll_wait(loop->epfd, loop->events, MAX_EVENTS, timeout_ms);
	while (n < 0 && errno == EINTR && timeout_ms == 0);
	if (n < 0 && errno == EINTR)
		n = 0;		/* a signal woke us: a normal, empty iteration */
	if (n < 0)
		return -errno;
	if (loop->rec_on) {
		t1 = lsl_hrtime_ns();
		*wait_ns = t1 - t0;
		loop->rec.poll_return_ns = loop->last_poll_return_ns = t1;
		if (timeout_ms != 0)
			loop->now_ns = t1;
	} else if (timeout_ms != 0) {
		/* We slept: timers started by I/O callbacks count from the wake-up. A
		 * tracer that attached during the wait learns its end from the record. */
		loop->rec.poll_return_ns = loop->now_ns = lsl_hrtime_ns();
	} else if (LSL_PROBE_ON(poll_start)) {
		loop->rec.poll_return_ns = lsl_hrtime_ns();
	}
	*nev = n;
	if (LSL_PROBE_ON(poll_end))
		LSL_PROBE2(poll_end, loop, n);

	loop->nevents = n;
	for (i = 0; i < n; i++) {
		struct epoll_event *e = &loop->events[i];
		lsl_io_t *io = e->data.ptr;
		int ev = 0;

		loop->event_index = i + 1;
		if (!io || !io->cb)
			continue;	/* stopped or closed by an earlier callback */
		if (e->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			ev |= LSL_READABLE;
		if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			ev |= LSL_WRITABLE;
		ev &= (int)io->events;
		if (!ev)
			continue;
		(*ncb)++;
		LSL__CALLBACK(loop, LSL_PROBE_POLL, io->cb, io->cb(io, ev));
	}
	loop->nevents = 0;
	loop->event_index = 0;
	return 0;
}
