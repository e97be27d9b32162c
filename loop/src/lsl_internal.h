/* lsl_internal.h: what the loop's source files share. Not installed. */
#ifndef LSL_INTERNAL_H
#define LSL_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "lsl.h"

#define LSL__MAGIC 0x6c736c68u		/* "lslh": initialized, open */
#define LSL__MAGIC_CLOSED 0x6c736c63u	/* close callback has run */

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* ---------------------------------------------------------------- probes */
#ifndef LSL_NO_PROBES
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#define LSL__PROBES(X) \
	X(iter_start) X(iter_end) X(phase_start) X(phase_end) X(poll_start) X(poll_end) \
	X(timer_fired) X(tick_drain_start) X(tick_drain_end) X(microtask_drain_start) \
	X(microtask_drain_end) X(callback_start) X(callback_end)

#define LSL__SEM_DECL(name) extern volatile unsigned short loopscope_##name##_semaphore;
LSL__PROBES(LSL__SEM_DECL)

/* An untraced probe costs this load and a not-taken branch. */
#define LSL_PROBE_ON(name) unlikely(loopscope_##name##_semaphore)

/* Every probe point is two USDT sites back to back, made by one asm statement so both
 * describe their arguments with the same operands: a 1-byte nop under the provider
 * "loopscope" and a 5-byte nop under "loopscope_nop5", sharing the one semaphore. A
 * uprobe on either is one trap where the kernel emulates the nop; from Linux 6.18 the
 * kernel rewrites a probed 5-byte nop into a call of a trampoline that enters it by
 * syscall, about a syscall's cost instead of a trap's (measured here: 1.4 us vs 6 us).
 * The agent attaches to whichever `loopscope calibrate` measured cheaper on this
 * machine (a kernel that single-steps the long nop makes it the dearer one), so the
 * other site is a nop that runs. The trampoline call pushes onto the stack below %rsp,
 * which is why the Makefile builds loop/ with -mno-red-zone: no function of the loop
 * keeps data there. The note layout is sys/sdt.h's (its macros make it); only the nop
 * differs. */
#define LSL__NOTE(provider, name, n)								\
	_SDT_ASM_3(.pushsection .note.stapsdt, _SDT_ASM_AUTOGROUP, "note")			\
	_SDT_ASM_1(.balign 4)									\
	_SDT_ASM_3(.4byte 992f-991f, 994f-993f, _SDT_NOTE_TYPE)					\
	_SDT_ASM_1(991: .asciz _SDT_NOTE_NAME)							\
	_SDT_ASM_1(992: .balign 4)								\
	_SDT_ASM_1(993: _SDT_ASM_ADDR 990b)							\
	_SDT_ASM_1(_SDT_ASM_ADDR _.stapsdt.base)						\
	_SDT_SEMAPHORE(loopscope, name)								\
	_SDT_ASM_STRING(provider)								\
	_SDT_ASM_STRING(name)									\
	_SDT_ASM_ARGS(n)									\
	_SDT_ASM_SUBSTR(\x00)									\
	_SDT_ASM_1(994: .balign 4)								\
	_SDT_ASM_1(.popsection)
#define LSL__PROBE(name, n, arglist)								\
	do {											\
		__asm__ __volatile__(_SDT_DEF_MACROS						\
				     _SDT_ASM_1(990: nop) LSL__NOTE(loopscope, name, n)		\
				     _SDT_ASM_1(990: .nops 5) LSL__NOTE(loopscope_nop5, name, n)	\
				     _SDT_UNDEF_MACROS						\
				     :: _SDT_ASM_OPERANDS_##n arglist);				\
		__asm__ __volatile__(_SDT_ASM_BASE);						\
	} while (0)
#define LSL_PROBE1(name, a) LSL__PROBE(name, 1, (a))
#define LSL_PROBE2(name, a, b) LSL__PROBE(name, 2, (a, b))
#define LSL_PROBE3(name, a, b, c) LSL__PROBE(name, 3, (a, b, c))
#define LSL_PROBE4(name, a, b, c, d) LSL__PROBE(name, 4, (a, b, c, d))
#else
#define LSL_PROBE_ON(name) 0
#define LSL_PROBE1(name, a) do { } while (0)
#define LSL_PROBE2(name, a, b) do { } while (0)
#define LSL_PROBE3(name, a, b, c) do { } while (0)
#define LSL_PROBE4(name, a, b, c, d) do { } while (0)
#endif

/* ---------------------------------------------------------------- queues */
static inline void lsl__queue_init(struct lsl__queue *q) { q->next = q->prev = q; }
static inline int lsl__queue_empty(const struct lsl__queue *q) { return q->next == q; }
static inline void lsl__queue_insert_tail(struct lsl__queue *h, struct lsl__queue *n)
{
	n->next = h;
	n->prev = h->prev;
	h->prev->next = n;
	h->prev = n;
}
static inline void lsl__queue_remove(struct lsl__queue *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}
/* Move every node of h to n (n is overwritten); h becomes empty. */
static inline void lsl__queue_move(struct lsl__queue *h, struct lsl__queue *n)
{
	if (lsl__queue_empty(h)) {
		lsl__queue_init(n);
		return;
	}
	n->next = h->next;
	n->prev = h->prev;
	n->next->prev = n;
	n->prev->next = n;
	lsl__queue_init(h);
}

/* ---------------------------------------------------------------- handles */
enum lsl__handle_type {
	LSL__TIMER = 1, LSL__IDLE, LSL__PREPARE, LSL__CHECK, LSL__IO, LSL__TCP,
};
enum {
	LSL__ACTIVE = 1 << 0,
	LSL__REF = 1 << 1,
	LSL__CLOSING = 1 << 2,
	LSL__CLOSED = 1 << 3,
};

/* A one-shot task: tick, microtask, immediate, or a deferred (pending) callback. */
struct lsl__task {
	struct lsl__task *next;
	lsl_task_cb cb;
	void *arg;
};
struct lsl__task_list {
	struct lsl__task *head, *tail;
	size_t n;
};

/* ---------------------------------------------------------------- accounting */
struct lsl__series {
	uint64_t *v;		/* samples in ns */
	size_t n, cap;
	uint64_t count, total, max;
};

struct lsl__acct {
	int on;			/* counting this iteration */
	int want;		/* lsl_accounting_start/stop: applied at the next iteration */
	uint64_t window_start_ns;
	uint64_t window_end_ns;	/* 0 while on */
	uint64_t iterations;
	struct lsl__series phase[LSL_NPHASES];
	struct lsl__series delay, lateness;
	struct lsl_drain_stats ticks, microtasks;
	uint64_t poll_wait_ns;
	uint64_t stall_episodes;
	uint64_t dropped;
	struct lsl_episode *eps;	/* every episode, in order, up to LSL_STATS_MAX_EPISODES */
	size_t neps, eps_cap;
	uint64_t eps_dropped;
	uint64_t rng;		/* xorshift64* state for the reservoirs */
};

struct lsl__pool;

struct lsl_loop {
	int epfd;
	int running;
	int stop_flag;
	uint64_t now_ns;
	uint64_t iteration;

	/* Liveness: referenced active handles plus outstanding requests. */
	uint64_t active_handles;	/* active and referenced */
	uint64_t active_reqs;		/* writes, connects, work, immediates */
	uint64_t open_handles;		/* initialized and not fully closed */
	struct lsl__queue handles;

	/* timers: a binary min-heap of pointers, (due_ns, seq) order */
	lsl_timer_t **heap;
	size_t heap_n, heap_cap;
	uint64_t timer_seq;

	struct lsl__queue idle_q, prepare_q, check_q;
	uint32_t nidle;

	struct lsl__task_list ticks, microtasks, immediates, pending;
	struct lsl__task *task_free;	/* free list: immediate chains cost no malloc */
	size_t task_free_n;
	uint64_t ticks_queued_total, microtasks_queued_total;
	int in_drain;

	lsl_handle_t *closing_head, *closing_tail;

	/* epoll */
	uint32_t nfds;			/* fds in the epoll set */
	struct epoll_event *events;	/* the batch being dispatched */
	int nevents, event_index;
	char *read_buf;			/* shared tcp read buffer */

	struct lsl__pool *pool;

	/* record + accounting */
	int rec_on;			/* this iteration fills the record */
	uint64_t last_poll_return_ns;
	uint64_t starvation_threshold_ns;
	struct lsl_probe_record rec;
	struct lsl__acct acct;
};

/* handle.c */
void lsl__handle_init(lsl_loop_t *loop, lsl_handle_t *h, int type);
int lsl__handle_check(const lsl_handle_t *h, int type);
void lsl__handle_start(lsl_handle_t *h);
void lsl__handle_stop(lsl_handle_t *h);
void lsl__run_closing(lsl_loop_t *loop, uint32_t *ncb);

/* loop.c */
int lsl__task_push(lsl_loop_t *loop, struct lsl__task_list *l, lsl_task_cb cb, void *arg);
void lsl__after_callback(lsl_loop_t *loop);
void lsl__callback_probe_start(lsl_loop_t *loop, int phase, const void *fn);
void lsl__callback_probe_end(lsl_loop_t *loop, int phase);

/* Bracket one callback: probes (when attached) and the tick/microtask drain after it. */
#define LSL__CALLBACK(loop, phase, fn, call)                                   \
	do {                                                                   \
		if (LSL_PROBE_ON(callback_start))                              \
			lsl__callback_probe_start((loop), (phase), (const void *)(fn)); \
		call;                                                          \
		if (LSL_PROBE_ON(callback_end))                                \
			lsl__callback_probe_end((loop), (phase));              \
		if ((loop)->ticks.head || (loop)->microtasks.head)             \
			lsl__after_callback(loop);                             \
	} while (0)

/* Run the nextTick/microtask drain if anything is queued (after a user callback
 * called from inside an internal one). */
#define LSL__DRAIN(loop)                                            \
	do {                                                        \
		if ((loop)->ticks.head || (loop)->microtasks.head)  \
			lsl__after_callback(loop);                  \
	} while (0)

/* Put a task node back on the loop's free list. */
static inline void lsl__task_recycle(lsl_loop_t *loop, struct lsl__task *t)
{
	if (loop->task_free_n < 4096) {
		t->next = loop->task_free;
		loop->task_free = t;
		loop->task_free_n++;
	} else {
		free(t);
	}
}

/* timer.c */
void lsl__run_timers(lsl_loop_t *loop, uint32_t *ncb);
uint64_t lsl__next_timer_ns(const lsl_loop_t *loop);	/* 0 = none */
void lsl__timer_stop_internal(lsl_timer_t *t);

/* watcher.c */
void lsl__run_idle(lsl_loop_t *loop, uint32_t *ncb);
void lsl__run_prepare(lsl_loop_t *loop, uint32_t *ncb);
void lsl__run_check(lsl_loop_t *loop, uint32_t *ncb);
void lsl__watcher_stop_any(lsl_handle_t *h);

/* io.c */
int lsl__io_poll(lsl_loop_t *loop, int timeout_ms, uint32_t *ncb, uint64_t *wait_ns, int *nev);
void lsl__io_init_internal(lsl_loop_t *loop, lsl_io_t *io, int fd, lsl_handle_t *owner);
int lsl__io_set(lsl_io_t *io, uint32_t events, lsl_io_cb cb);
void lsl__io_forget(lsl_io_t *io);	/* leave the epoll set, drop pending events */

/* tcp.c */
void lsl__tcp_close(lsl_tcp_t *tcp);
void lsl__tcp_finish_close(lsl_tcp_t *tcp);

/* pool.c */
void lsl__pool_destroy(lsl_loop_t *loop);

/* stats.c */
void lsl__series_add(lsl_loop_t *loop, struct lsl__series *s, uint64_t v);
void lsl__acct_free(struct lsl__acct *a);
/* Count an episode (stall or starvation) into the ground truth's list. */
void lsl__episode_add(lsl_loop_t *loop, uint32_t kind, uint32_t phase, uint64_t start_ns,
		      uint64_t duration_ns, uint64_t callbacks);
void lsl__acct_apply(lsl_loop_t *loop, uint64_t t);

#endif /* LSL_INTERNAL_H */
