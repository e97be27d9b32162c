/* nodeuv.h: shared between nodeuv.bpf.c and the Node.js / libuv backend (userspace/backends/nodeuv.c).
 *
 * One record per event-loop thread (key: tid) holds everything the kernel side
 * measures for that loop; user space copies it out on collect(). Fixed-width types
 * only (clang -target bpf and gcc must agree on the layout).
 */
#ifndef LS_NODEUV_H
#define LS_NODEUV_H

#include "hist.h"
#include "stack_raw.h"

/* Same numbering as enum ls_phase (snapshot.h); nodeuv.c checks this at compile time. */
#define NU_PHASE_TIMERS 0
#define NU_PHASE_PENDING 1
#define NU_PHASE_IDLE 2
#define NU_PHASE_PREPARE 3
#define NU_PHASE_POLL 4
#define NU_PHASE_CHECK 5
#define NU_PHASE_CLOSE 6
#define NU_NPHASES 7
#define NU_PHASE_NONE 0xff

/* Boundaries inside uv_run (the attach cookie of the `nu_boundary` program). Each
 * starts one phase (nu_boundary_phase[] in the BPF program); the span from one
 * boundary to the next is that phase's duration. */
enum nu_boundary {
	NU_B_IDLE,		/* call uv__run_idle */
	NU_B_PREPARE,		/* call uv__run_prepare */
	NU_B_POLL_IN,		/* call uv__io_poll */
	NU_B_POLL_OUT,		/* first cheap instruction after it: pending (post-poll) starts */
	NU_B_CHECK_IN,		/* call uv__run_check */
	NU_B_CHECK_OUT,		/* after it: closing handles start */
	NU_B_TIMERS_IN,		/* call uv__run_timers (loop->time was just refreshed) */
	NU_B_TIMERS_OUT,	/* after it: pending (loop top) starts */
	NU_NB,
};

/* Stack-sample categories while a stall is in progress. */
enum nu_sample_cat {
	NU_CAT_SYNC,		/* neither range on the stack: one long synchronous callback */
	NU_CAT_TICK,		/* node::InternalCallbackScope::Close, not RunMicrotasks */
	NU_CAT_MICRO,		/* v8::internal::MicrotaskQueue::RunMicrotasks */
	NU_CAT_GC,		/* inside Heap::CollectGarbage (bracketed by uprobes) */
	NU_NCATS,
};

/* Episode kinds: the same numbers as enum ls_episode_kind. */
#define NU_EP_STALL 0
#define NU_EP_TICK 1
#define NU_EP_MICRO 2
#define NU_EP_GC 3

/* One ring-buffer record: an episode that started (end_ns == 0) or ended. */
struct nu_event {
	__u32 tid;
	__u32 kind;		/* NU_EP_* */
	__u32 phase;		/* NU_PHASE_* or NU_PHASE_NONE */
	__u32 pad;
	__u64 start_ns;
	__u64 end_ns;
};

/* Per-loop-thread state and statistics. CLOCK_MONOTONIC ns unless noted. */
struct nu_loop {
	__u64 loop_addr;	/* uv_loop_t* seen by a uprobe (0: tracepoints only so far) */
	__u64 first_ns;		/* first event seen on this thread */
	__u64 iterations;	/* first epoll call of each iteration */

	/* utilization: idle = blocked in an epoll call with timeout != 0 (what libuv's
	 * UV_METRICS_IDLE_TIME counts), busy = the rest */
	__u64 busy_ns, idle_ns;
	__u64 busy_mark_ns;	/* busy since (valid when idle_mark_ns == 0) */
	__u64 idle_mark_ns;	/* inside a blocking epoll call since, or 0 */

	/* the epoll call in progress / last finished */
	__u64 ep_enter_ns;	/* 0 when not inside epoll */
	__u64 ep_exit_ns;	/* last exit: start of the current not-polling span */
	__s64 ep_timeout;	/* ms argument of the call in progress */
	__u32 ep_prev_nb_empty;	/* last call had timeout 0 and returned no events */
	__u32 ep_missed_enter;	/* saw an exit without its enter (attached mid-call) */
	__u64 oversleep_ns;	/* the polls since the last delay sample returned this late */
	__u64 iter_start_ns;	/* first epoll entry of the current iteration */
	__u64 iter_wait_ns;	/* time blocked in epoll in the current iteration */

	/* phases tier: the boundary / phase in progress */
	__u32 last_b;		/* enum nu_boundary or NU_NB */
	__u32 live_phase;	/* NU_PHASE_* or NU_PHASE_NONE */
	__u64 last_b_ns;

	/* stall in progress: stack samples by category, episode open? */
	__u64 cat_samples[NU_NCATS];
	__u32 stall_open;	/* 1 + kind once the start was reported, else 0 */
	__u32 stall_phase;	/* 1 + the phase the stall is in (phases tier), else 0 */
	__u64 samples_total;	/* stack samples taken (all stalls) */
	__u64 hot_span;		/* span (its start) announced NU_RAW_HOT, or 0 */

	__u64 stall_episodes, tick_episodes, micro_episodes, gc_episodes;
	__u64 timers_due;	/* uv__run_timers entries with a due timer */

	/* GC: Heap::CollectGarbage entry to return, on this thread */
	__u64 gc_depth;
	__u64 gc_start_ns;
	__u64 gc_phase_ns[NU_NPHASES + 1];	/* [NU_NPHASES] = phase unknown */

	struct ls_hist phase[NU_NPHASES];
	struct ls_hist iteration;	/* first epoll entry to the next */
	struct ls_hist delay;		/* not-polling span (epoll exit -> next iteration's entry)
					 * plus how late the poll before it returned */
	struct ls_hist poll_wait;	/* time blocked in epoll per iteration */
	struct ls_hist timer_lateness;	/* now - heap-min due time, at uv__run_timers */
	struct ls_hist gc;		/* GC pauses */
	struct ls_hist not_polling;	/* the pure not-polling span (delay without the poll lateness) */

	/* poll-entry plan (one uprobe per iteration, at uv_run's call of uv__io_poll):
	 * libuv's own idle-time counter says how much of the span between two entries
	 * the poll was idle (what Node's eventLoopUtilization() counts) */
	__u64 mx_fields;	/* where loop->internal_fields points (0: not read yet) */
	__u64 mx_idle;		/* libuv's provider_idle_time at the last poll entry */
	__u64 poll_entry_ns;	/* the last poll entry (0: none yet) */
	__s64 poll_timeout;	/* uv__io_poll's timeout argument there (ms, -1 infinite) */

	/* the thread's name when first seen: the name of a loop thread that ended
	 * before the agent could read /proc (one woken only to exit, a short worker) */
	char comm[16];
};

/* Global counters (per-CPU array, one slot each). */
enum {
	NU_CNT_HITS,		/* program runs in the target's threads (any kind) */
	NU_CNT_DROPS,
	NU_CNT_NEWLOOP_FAIL,
	NU_CNT_TRAPS,		/* of the hits, uprobe hits (a trap into the kernel each) */
	NU_CNT_SAMPLE_DROPS,	/* raw stack samples the ring buffer had no room for */
	NU_NCNT,
};

#define NU_MAX_LOOPS 64
#define NU_STACK_DEPTH 64
#define NU_NRANGES 4		/* code ranges per classified function */

#endif /* LS_NODEUV_H */
