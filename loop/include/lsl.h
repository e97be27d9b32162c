/* lsl.h: the loopscope reference event loop ("lsl"), a small C event loop with
 * Node.js semantics and USDT probes (lsl_probes.h), built to be measured.
 *
 * One iteration runs these phases, in Node's order (numbering = enum lsl_probe_phase):
 *
 *   timers   every timer whose due time <= the loop's cached "now", earliest first,
 *            equal deadlines in start order
 *   pending  deferred I/O completions (write callbacks that completed synchronously,
 *            connect errors), queued during the previous iteration
 *   idle     active idle handles
 *   prepare  active prepare handles
 *   poll     epoll_wait, then the I/O callbacks it returned (thread-pool completions
 *            arrive here through an eventfd). The wait is 0 when immediates, idle
 *            handles, pending callbacks or closing handles exist, else until the
 *            nearest timer, else infinite. With no fd watched and a 0 wait the
 *            syscall is skipped.
 *   check    active check handles, then the immediates (lsl_set_immediate) queued
 *            before the phase started; ones queued during it run next iteration
 *   close    close callbacks (lsl_close), in close order
 *
 * After EVERY callback of every phase (and once when lsl_run starts, standing in for
 * the main script) the loop drains the nextTick queue, then the microtask queue, and
 * repeats until both are empty, as Node's processTicksAndRejections does: ticks queued
 * by a microtask run after the microtask queue is empty; a tick or microtask that keeps
 * queueing more starves the loop (it never reaches poll), on purpose.
 *
 * The loop exits when no referenced handle is active and no request (write, connect,
 * thread-pool work, immediate, closing handle) is outstanding; lsl_unref() takes an
 * active handle out of that count, as in libuv.
 *
 * Errors: functions return 0 or a negative errno, never crash on bad input:
 *   -EINVAL   NULL argument, negative delay/repeat, unknown flags, uninitialized handle
 *   -EBADF    the fd is negative or not open
 *   -EBADFD   the handle is closing or closed (use after close; detectable while its
 *             memory is still yours, i.e. not freed in or after the close callback)
 *   -EALREADY lsl_close on a handle already closing or closed (double close)
 *   -ENOTCONN / -EISCONN  a tcp handle not connected yet / already in use
 *   -EAGAIN   lsl_tcp_accept with no connection waiting
 *   -EBUSY    lsl_loop_close while handles are still open or requests outstanding;
 *             lsl_run called from inside lsl_run
 *   -ENOMEM   allocation failed
 *   other     what the underlying syscall said (socket, bind, connect, ...)
 *
 * Threads: a loop and its handles belong to one thread. The only thread-safe entry is
 * the work function of lsl_queue_work, which runs on a pool thread.
 *
 * Ground truth: lsl_accounting_start() makes the loop measure itself exactly (every
 * phase run, poll wait, timer lateness, drain, with all samples kept so quantiles are
 * exact); lsl_stats_get() reads it. See "Accounting" below.
 *
 * Struct fields are marked public (read/write), read-only, or private (do not touch).
 */
#ifndef LSL_H
#define LSL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "lsl_probes.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LSL_NPHASES LSL_PROBE_NPHASES
#define LSL_EOF (-4095)		/* read callback: the peer closed its side */

typedef struct lsl_loop lsl_loop_t;
typedef struct lsl_handle lsl_handle_t;
typedef struct lsl_timer lsl_timer_t;
typedef struct lsl_idle lsl_idle_t;
typedef struct lsl_prepare lsl_prepare_t;
typedef struct lsl_check lsl_check_t;
typedef struct lsl_io lsl_io_t;
typedef struct lsl_tcp lsl_tcp_t;
typedef struct lsl_work lsl_work_t;

typedef void (*lsl_task_cb)(lsl_loop_t *loop, void *arg);
typedef void (*lsl_close_cb)(lsl_handle_t *h);
typedef void (*lsl_timer_cb)(lsl_timer_t *t);
typedef void (*lsl_idle_cb)(lsl_idle_t *h);
typedef void (*lsl_prepare_cb)(lsl_prepare_t *h);
typedef void (*lsl_check_cb)(lsl_check_t *h);
typedef void (*lsl_io_cb)(lsl_io_t *io, int events);	/* events: LSL_READABLE | LSL_WRITABLE */
typedef void (*lsl_connection_cb)(lsl_tcp_t *server, int status);
typedef void (*lsl_connect_cb)(lsl_tcp_t *tcp, int status);
/* nread > 0: bytes in buf (valid only during the call); LSL_EOF; or -errno. */
typedef void (*lsl_read_cb)(lsl_tcp_t *tcp, ssize_t nread, const char *buf);
typedef void (*lsl_write_cb)(lsl_tcp_t *tcp, int status, void *arg);
typedef void (*lsl_work_cb)(lsl_work_t *w);			/* pool thread */
typedef void (*lsl_after_work_cb)(lsl_work_t *w, int status);	/* loop thread, poll phase */

enum { LSL_READABLE = 1, LSL_WRITABLE = 2 };

/* Intrusive doubly linked list node (private). */
struct lsl__queue {
	struct lsl__queue *next, *prev;
};

/* Every handle starts with this. */
struct lsl_handle {
	void *data;			/* public: yours */
	lsl_loop_t *loop;		/* read-only */
	/* private */
	lsl_close_cb close_cb;
	struct lsl__queue node;		/* loop's handle list */
	lsl_handle_t *next_closing;
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
};

struct lsl_timer {
	lsl_handle_t h;
	/* private */
	lsl_timer_cb cb;
	uint64_t due_ns;
	uint64_t repeat_ns;
	uint64_t seq;			/* start order: the heap's tie-break */
	size_t heap_index;
};

/* idle, prepare and check handles share one layout. */
#define LSL__WATCHER_FIELDS(cbtype) \
	lsl_handle_t h;             \
	cbtype cb;                  \
	struct lsl__queue wnode;
struct lsl_idle { LSL__WATCHER_FIELDS(lsl_idle_cb) };
struct lsl_prepare { LSL__WATCHER_FIELDS(lsl_prepare_cb) };
struct lsl_check { LSL__WATCHER_FIELDS(lsl_check_cb) };

struct lsl_io {
	lsl_handle_t h;
	int fd;				/* read-only */
	/* private */
	lsl_io_cb cb;
	uint32_t events;		/* LSL_READABLE | LSL_WRITABLE being watched */
	uint32_t registered;		/* in the epoll set */
};

struct lsl__write_req;
struct lsl_tcp {
	lsl_handle_t h;
	int fd;				/* read-only, -1 until listen/connect/accept */
	/* private */
	struct lsl_io io;
	lsl_connection_cb on_connection;
	lsl_connect_cb on_connect;
	lsl_read_cb on_read;
	struct lsl__write_req *wq_head, *wq_tail;
	int accepted_fd;		/* one connection waiting for lsl_tcp_accept */
	int connect_status;
	uint32_t tflags;
};

struct lsl_work {
	void *data;			/* public: yours */
	lsl_loop_t *loop;		/* read-only */
	/* private */
	lsl_work_cb work;
	lsl_after_work_cb after;
	struct lsl_work *next;
	int state;
};

/* ------------------------------------------------------------------ loop */

/* Create a loop (epoll fd, cached clock). 0 or -errno; *loopp set on success. */
int lsl_loop_new(lsl_loop_t **loopp);

/* Free a loop. -EBUSY (and nothing freed) while any handle is not fully closed or any
 * request is outstanding; close them and run the loop until their callbacks ran. */
int lsl_loop_close(lsl_loop_t *loop);

/* Run until no referenced handle or request remains, or lsl_stop. 0, -EINVAL,
 * -EBUSY (called re-entrantly), or -errno from epoll_wait. */
int lsl_run(lsl_loop_t *loop);

/* Make lsl_run return after the current iteration. */
void lsl_stop(lsl_loop_t *loop);

/* The cached time of the current iteration, CLOCK_MONOTONIC ns / ms. */
uint64_t lsl_now_ns(const lsl_loop_t *loop);
uint64_t lsl_now_ms(const lsl_loop_t *loop);
/* Refresh the cached time (a callback that blocked may want it). */
void lsl_update_time(lsl_loop_t *loop);
/* CLOCK_MONOTONIC now, in ns: the clock of every timestamp here and of bpf_ktime_get_ns. */
uint64_t lsl_hrtime_ns(void);

/* Iterations started so far. */
uint64_t lsl_iterations(const lsl_loop_t *loop);
/* 1 while any referenced handle or request keeps the loop alive. */
int lsl_loop_alive(const lsl_loop_t *loop);
/* The probe record (lsl_probes.h) this loop fills while accounting or tracing. */
const struct lsl_probe_record *lsl_probe_record(const lsl_loop_t *loop);

/* Probes (lsl_probes.h has the table). callback_start/callback_end bracket every
 * phase-level callback: timers, pending, idle, prepare, the I/O dispatch of one fd,
 * check handles, immediates, close callbacks. Single ticks and microtasks are not
 * bracketed: the *_drain_start/end probes cover them as a run. */

/* 1 if a tracer raised the named probe's semaphore (e.g. "poll_start"), else 0;
 * -EINVAL for an unknown name, -ENOTSUP when built with -DLSL_NO_PROBES. */
int lsl_probe_enabled(const char *probe);

/* ------------------------------------------------------------------ tasks */

/* process.nextTick / queueMicrotask / setImmediate. The callback runs once with arg.
 * Ticks and microtasks run in the drain after the current callback (see top);
 * immediates in the next check phase and keep the loop alive until then.
 * 0, -EINVAL (NULL loop or cb) or -ENOMEM. */
int lsl_next_tick(lsl_loop_t *loop, lsl_task_cb cb, void *arg);
int lsl_queue_microtask(lsl_loop_t *loop, lsl_task_cb cb, void *arg);
int lsl_set_immediate(lsl_loop_t *loop, lsl_task_cb cb, void *arg);

/* ------------------------------------------------------------------ handles */

/* Close any handle: stop it, (for tcp) close its fd, and run cb (may be NULL) in the
 * close phase. The memory must stay valid until cb ran. 0, -EINVAL, -EALREADY. */
int lsl_close(lsl_handle_t *h, lsl_close_cb cb);
/* 1 between lsl_close and the end of its close callback, and after it; else 0. */
int lsl_is_closing(const lsl_handle_t *h);
/* 1 while the handle is started (timer pending, watcher started, ...). */
int lsl_is_active(const lsl_handle_t *h);
/* An unreferenced active handle does not keep the loop alive. Handles start referenced.
 * 0, -EINVAL, -EBADFD. */
int lsl_ref(lsl_handle_t *h);
int lsl_unref(lsl_handle_t *h);
int lsl_has_ref(const lsl_handle_t *h);

/* Timers. Delays and repeats in ms; a delay below 1 ms becomes 1 ms (Node's rule);
 * negative values give -EINVAL. repeat 0 = one-shot, else the timer restarts
 * repeat ms after the time it fired at. Starting a started timer restarts it. */
int lsl_timer_init(lsl_loop_t *loop, lsl_timer_t *t);
int lsl_timer_start(lsl_timer_t *t, lsl_timer_cb cb, int64_t delay_ms, int64_t repeat_ms);
int lsl_timer_stop(lsl_timer_t *t);	/* 0 also when not started */
/* The due time in loop ns, or 0 when not started. */
uint64_t lsl_timer_due_ns(const lsl_timer_t *t);

/* idle / prepare / check watchers: cb runs once per iteration in their phase. */
int lsl_idle_init(lsl_loop_t *loop, lsl_idle_t *h);
int lsl_idle_start(lsl_idle_t *h, lsl_idle_cb cb);
int lsl_idle_stop(lsl_idle_t *h);
int lsl_prepare_init(lsl_loop_t *loop, lsl_prepare_t *h);
int lsl_prepare_start(lsl_prepare_t *h, lsl_prepare_cb cb);
int lsl_prepare_stop(lsl_prepare_t *h);
int lsl_check_init(lsl_loop_t *loop, lsl_check_t *h);
int lsl_check_start(lsl_check_t *h, lsl_check_cb cb);
int lsl_check_stop(lsl_check_t *h);

/* Readiness watcher on a caller-owned fd (level-triggered; lsl_close does not close
 * the fd). -EBADF for a bad fd. Starting again changes the event set. */
int lsl_io_init(lsl_loop_t *loop, lsl_io_t *io, int fd);
int lsl_io_start(lsl_io_t *io, int events, lsl_io_cb cb);
int lsl_io_stop(lsl_io_t *io);

/* TCP over IPv4 (the loop's own tests and demo use 127.0.0.1). The handle owns its
 * socket; lsl_close closes it. Read callbacks run in the poll phase; write callbacks
 * in the poll phase, or in the pending phase of the next iteration when the write
 * completed at once (libuv's deferred completion). */
int lsl_tcp_init(lsl_loop_t *loop, lsl_tcp_t *tcp);
/* Bind ip:port (port 0 = any), listen; cb runs per incoming connection, and must call
 * lsl_tcp_accept to take it. */
int lsl_tcp_listen(lsl_tcp_t *tcp, const char *ip, uint16_t port, int backlog,
		   lsl_connection_cb cb);
/* The bound local port (host order), or -errno. */
int lsl_tcp_port(const lsl_tcp_t *tcp);
/* Take the connection announced to the connection callback into an initialized,
 * unused client handle. -EAGAIN when none is waiting. */
int lsl_tcp_accept(lsl_tcp_t *server, lsl_tcp_t *client);
/* Non-blocking connect; cb(tcp, 0 or -errno) runs once. */
int lsl_tcp_connect(lsl_tcp_t *tcp, const char *ip, uint16_t port, lsl_connect_cb cb);
int lsl_tcp_read_start(lsl_tcp_t *tcp, lsl_read_cb cb);
int lsl_tcp_read_stop(lsl_tcp_t *tcp);
/* Queue len bytes (copied); cb (may be NULL) runs once all are written or on error.
 * The loop stays alive until it ran. */
int lsl_tcp_write(lsl_tcp_t *tcp, const void *buf, size_t len, lsl_write_cb cb, void *arg);
/* Bytes queued but not yet written. */
size_t lsl_tcp_write_queue_size(const lsl_tcp_t *tcp);

/* Thread pool (4 threads, started on first use). work runs on a pool thread, then
 * after(w, 0) runs on the loop thread in the poll phase. The request keeps the loop
 * alive until after ran. w must stay valid until then; zero it before its first use
 * (a request still queued or running gives -EBUSY). */
int lsl_queue_work(lsl_loop_t *loop, lsl_work_t *w, lsl_work_cb work, lsl_after_work_cb after);

/* ------------------------------------------------------------------ accounting */

struct lsl_quantiles {
	uint64_t count;
	uint64_t total_ns;
	uint64_t p50_ns, p99_ns, max_ns;	/* exact (nearest rank over every sample) */
};

struct lsl_drain_stats {
	uint64_t drains;		/* non-empty drains (one per tick_/microtask_drain_end probe) */
	uint64_t callbacks;		/* callbacks they ran */
	uint64_t total_ns;
	uint64_t max_drain_ns;
	uint64_t starvation_episodes;	/* drains longer than the threshold */
};

/*
 * Accounting covers whole iterations: lsl_accounting_start() takes effect at the start
 * of the next iteration, which is also where the window (window_ns) begins.
 *   phase[p]        one sample per run of phase p (every iteration runs every phase);
 *                   poll's run includes its wait and its I/O callbacks. A phase that
 *                   ran no callback is recorded as 0 ns (no clock read for it; its few
 *                   ns of bookkeeping count toward the next phase)
 *   poll_wait_ns    time blocked inside epoll_wait
 *   delay           one sample per iteration: previous poll return -> this poll entry
 *   timer_lateness  one sample per timer callback: callback start - due time
 *   ticks/microtasks  one drain = one uninterrupted run of the queue (the loop of
 *                   processTicksAndRejections alternates them)
 *   stall_episodes  phase runs longer than the threshold (poll counted without its
 *                   wait: only its callbacks can stall)
 *   utilization     (window - poll_wait) / window
 * Samples are kept in memory (8 bytes each, full range), so quantiles are exact up to
 * LSL_STATS_MAX_SAMPLES samples per series (8 MiB each).
 * Past that a series keeps a uniform random reservoir of that size (Vitter's algorithm
 * R): count/total/max stay exact, quantiles become estimates, and samples_dropped
 * counts the samples not kept. Quantiles are exact while samples_dropped is 0.
 */
#define LSL_STATS_MAX_SAMPLES (1u << 20)

/* One episode of the ground truth: a phase run or a drain longer than the threshold. */
enum lsl_episode_kind {
	LSL_EPISODE_STALL = 0,			/* a phase run (poll: its callbacks, not its wait) */
	LSL_EPISODE_TICK_STARVATION = 1,	/* a nextTick drain */
	LSL_EPISODE_MICROTASK_STARVATION = 2,	/* a microtask drain */
};

struct lsl_episode {
	uint64_t start_ns;	/* CLOCK_MONOTONIC (poll stall: the wait's return) */
	uint64_t duration_ns;
	uint32_t kind;		/* enum lsl_episode_kind */
	uint32_t phase;		/* enum lsl_probe_phase it ran in (a drain: the phase it followed a
				 * callback of; LSL_NPHASES when outside any, e.g. before the
				 * first iteration) */
	uint64_t callbacks;	/* starvation: callbacks the drain ran; stall: the phase's */
};

#define LSL_STATS_MAX_EPISODES 4096

struct lsl_stats {
	uint64_t window_ns;		/* accounting start (or reset) -> now */
	uint64_t iterations;
	double utilization;
	struct lsl_quantiles phase[LSL_NPHASES];
	struct lsl_quantiles delay;
	struct lsl_quantiles timer_lateness;
	struct lsl_drain_stats ticks, microtasks;
	uint64_t poll_wait_ns;
	uint64_t stall_episodes;
	uint64_t samples_dropped;	/* 0: every quantile above is exact */
	uint64_t starvation_threshold_ns;
	/* Every episode of the window in order (stall_episodes + both starvation_episodes
	 * of them, up to LSL_STATS_MAX_EPISODES; episodes_dropped counts the rest). Points
	 * into the loop: valid until the next lsl_stats_reset, accounting restart or
	 * lsl_loop_close. */
	const struct lsl_episode *episodes;
	size_t nepisodes;
	uint64_t episodes_dropped;
};

/* Start/stop ground-truth accounting. Start while on: no-op. 0, -EINVAL, -ENOMEM. */
int lsl_accounting_start(lsl_loop_t *loop);
int lsl_accounting_stop(lsl_loop_t *loop);
int lsl_accounting_enabled(const lsl_loop_t *loop);
/* Forget every sample; the window restarts now. */
int lsl_stats_reset(lsl_loop_t *loop);
/* Drain / phase length past which an episode is counted (default 100 ms, > 0). */
int lsl_set_starvation_threshold(lsl_loop_t *loop, uint64_t ns);
/* Compute the stats of the window so far (sorts copies of the samples). 0, -EINVAL, -ENOMEM. */
int lsl_stats_get(lsl_loop_t *loop, struct lsl_stats *out);
/* The stats as one JSON object + newline, the schema of `loopscope stat --json`
 * (userspace/core/snapshot.h): pid, tid, comm, runtime "reference", interval_s, ...
 * 0 or -errno. */
int lsl_stats_write_json(const struct lsl_stats *st, FILE *out, int pid, int tid,
			 const char *comm);

/* Phase names in order: "timers", "pending", "idle", "prepare", "poll", "check", "close". */
extern const char *const lsl_phase_names[LSL_NPHASES];

#ifdef __cplusplus
}
#endif
#endif /* LSL_H */
