/* snapshot.h: what every front end (stat, serve, top, a recording) reads.
 *
 * Data flows one way: probe -> kernel map -> agent core -> struct ls_snapshot ->
 * front ends. A snapshot is CUMULATIVE since attach (like Prometheus counters);
 * interval views come from two snapshots through ls_summarize(). Front ends never
 * touch BPF maps: they read an ls_source, which may be the live agent, a remote
 * `loopscope serve` stream, or a recording, so each can be tested without root.
 *
 * All durations are nanoseconds (CLOCK_MONOTONIC); seconds appear only in output.
 */
#ifndef LS_SNAPSHOT_H
#define LS_SNAPSHOT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "histogram.h"
#include "stacks.h"

/* Phases in Node.js order; numbering matches enum lsl_probe_phase. */
enum ls_phase {
	LS_PHASE_TIMERS,
	LS_PHASE_PENDING,
	LS_PHASE_IDLE,
	LS_PHASE_PREPARE,
	LS_PHASE_POLL,
	LS_PHASE_CHECK,
	LS_PHASE_CLOSE,
	LS_NPHASES,
	LS_PHASE_NONE = 0xff,
};
extern const char *const ls_phase_names[LS_NPHASES];	/* "timers", "pending", ... */
const char *ls_phase_name(uint32_t phase);		/* "none" / "?" outside range */

enum ls_runtime { LS_RT_REFERENCE, LS_RT_NODE, LS_RT_LIBUV };
const char *ls_runtime_name(uint32_t rt);		/* "reference", "node", "libuv" */

/* What a loop's backend measures (bits of ls_loop_snapshot.has). */
enum {
	LS_HAS_PHASES = 1u << 0,	/* phase[] histograms */
	LS_HAS_DELAY = 1u << 1,		/* delay, poll_wait, busy/idle, iterations */
	LS_HAS_TIMERS = 1u << 2,	/* timer_lateness */
	LS_HAS_DRAINS = 1u << 3,	/* ticks / microtasks drain histograms */
	LS_HAS_GC = 1u << 4,		/* gc pauses (Node) */
	LS_HAS_EPISODES = 1u << 5,	/* stall / starvation detection */
	LS_HAS_NOT_POLLING = 1u << 6,	/* not_polling differs from delay (Node: delay adds poll lateness) */
	LS_HAS_COUNTERS = 1u << 7,	/* counters only (no probe): busy/idle and iterations, no
					 * histograms; delay is the interval's busy time per iteration */
};

enum ls_live_state {
	LS_LIVE_UNKNOWN,	/* nothing seen yet */
	LS_LIVE_POLLING,	/* blocked in (or inside) the poll wait */
	LS_LIVE_RUNNING,	/* out of the poll wait: running callbacks */
};

/* Which callback queue a loop is draining right now (live_drain). */
enum ls_drain {
	LS_DRAIN_NONE,
	LS_DRAIN_TICKS,		/* process.nextTick queue */
	LS_DRAIN_MICROTASKS,	/* promise microtask queue */
	LS_NDRAINS,
};

struct ls_drain_stats {
	uint64_t drains;		/* non-empty drains */
	uint64_t callbacks;		/* callbacks run by them */
	uint64_t starvation_episodes;	/* drains that ran past the threshold */
	struct ls_hist duration;	/* ns per drain */
	struct ls_hist per_drain;	/* callbacks per drain (a count, not ns) */
};

struct ls_loop_snapshot {
	uint32_t tid;		/* the loop's thread */
	char name[16];		/* the thread's comm */
	char label[32];		/* the loop as its program names it: "main", "worker 3" (a Node
				 * worker by its threadId), or "" when not known */
	uint32_t has;		/* LS_HAS_* */

	uint64_t iterations;
	uint64_t busy_ns;	/* out of the poll wait */
	uint64_t idle_ns;	/* blocked in the poll wait */
	/* (both up to the collect, the span in progress included: not to be added again
	 * from live_since_ns) */
	struct ls_hist phase[LS_NPHASES];
	struct ls_hist iteration;
	struct ls_hist delay;		/* not-polling span: poll return -> next poll entry */
	struct ls_hist poll_wait;	/* blocked part of each poll phase */
	struct ls_hist timer_lateness;	/* callback start - due time, per timer callback */
	struct ls_drain_stats ticks, microtasks;
	uint64_t stall_episodes;	/* phases (or not-polling spans) past the threshold */
	struct ls_hist gc;		/* main-thread GC pauses */
	uint64_t gc_phase_ns[LS_NPHASES + 1];	/* GC time by the phase it fell in; [LS_NPHASES] = unknown */

	/* Live state, as of the snapshot's mono_ns. */
	uint32_t live_state;		/* enum ls_live_state */
	uint32_t live_phase;		/* enum ls_phase or LS_PHASE_NONE */
	uint32_t live_drain;		/* enum ls_drain */
	uint64_t live_since_ns;		/* entered live_state at */
	uint64_t live_phase_since_ns;
	uint64_t live_drain_since_ns;
	uint64_t live_drain_callbacks;

	/* The pure not-polling span, poll return -> next poll entry, when the backend's
	 * delay is something more (Node's adds how late the poll returned); without
	 * LS_HAS_NOT_POLLING the two are one measurement and this is empty: use delay. */
	struct ls_hist not_polling;

	/* Where the loop thread is in the stall in progress, from its latest stack
	 * sample ("validateCoupon (/srv/app/coupons.js:14)"), or "". */
	char live_where[192];
	uint64_t live_where_ns;		/* when that sample was taken */
};

enum ls_target_state { LS_TARGET_ATTACHED, LS_TARGET_EXITED, LS_TARGET_DETACHED };

struct ls_target_snapshot {
	int32_t pid;
	char comm[16];
	char exe[256];
	uint32_t runtime;		/* enum ls_runtime */
	uint32_t state;			/* enum ls_target_state */
	char tier[16];			/* probe tier in use: "usdt", "light", "phases" */
	char note[320];			/* what is unavailable and why, or "" */
	char tier_why[200];		/* why tier is lighter than the one asked for, or "" */
	uint64_t untracked_hits;	/* probe hits of loops beyond what the backend measures */
	char version[24];		/* the runtime's own version (Node: process.versions.node) or "" */
	char libuv_version[16];		/* the libuv it runs on ("1.46.0") or "" */
	uint64_t probe_hits;		/* BPF program runs in the target's threads (any kind) */
	uint64_t traps;			/* of them, uprobe / USDT hits (a trap into the kernel each) */
	uint64_t attached_ns;		/* mono time the probes went live */
	uint64_t exited_ns;		/* mono time it exited, or 0 */
	uint32_t nloops;
	struct ls_loop_snapshot *loops;	/* owned by the snapshot */
};

struct ls_self_stats {
	uint32_t attached_targets;
	uint64_t probe_hits;		/* BPF program runs, all targets */
	uint64_t ringbuf_drops;		/* episodes lost because the ring buffer was full */
	uint64_t episodes;		/* episodes delivered */
	double cpu_s;			/* agent user+system CPU */
	uint64_t rss_bytes;
};

struct ls_snapshot {
	uint64_t mono_ns;		/* CLOCK_MONOTONIC when taken */
	uint64_t wall_ns;		/* CLOCK_REALTIME when taken */
	uint32_t ntargets;
	struct ls_target_snapshot *targets;	/* owned by the snapshot */
	struct ls_self_stats self;
};

void ls_snapshot_free(struct ls_snapshot *s);	/* frees contents, zeroes *s */
int ls_snapshot_copy(struct ls_snapshot *dst, const struct ls_snapshot *src);	/* deep; -ENOMEM */
const struct ls_target_snapshot *ls_snapshot_find(const struct ls_snapshot *s, int32_t pid);
/* The item of a target's note ("; "-separated) that starts with prefix, copied into
 * buf (len bytes); NULL when the note has none. */
const char *ls_note_item(const char *note, const char *prefix, char *buf, size_t len);

/* Episodes: rare events, delivered as they start and as they end. */
enum ls_episode_kind {
	LS_EP_STALL,			/* a phase ran past the threshold */
	LS_EP_TICK_STARVATION,		/* a nextTick drain ran past the threshold */
	LS_EP_MICROTASK_STARVATION,	/* a microtask drain ran past the threshold */
	LS_EP_GC,			/* a GC pause past the threshold (Node) */
	LS_EP_TARGET_EXIT,		/* the target process exited */
	LS_EP_NKINDS,
};
const char *ls_episode_kind_name(uint32_t kind);	/* "stall", "tick_starvation", ... */
/* The starvation episode kind of a drain: LS_EP_TICK_STARVATION for LS_DRAIN_TICKS,
 * LS_EP_MICROTASK_STARVATION for LS_DRAIN_MICROTASKS, else LS_EP_NKINDS. */
uint32_t ls_drain_starvation_kind(uint32_t drain);

struct ls_episode {
	int32_t pid;
	uint32_t tid;
	uint32_t kind;		/* enum ls_episode_kind */
	uint32_t phase;		/* enum ls_phase or LS_PHASE_NONE */
	uint64_t start_ns;	/* mono */
	uint64_t end_ns;	/* mono; 0 while in progress */
	uint64_t callbacks;	/* callbacks run in the drain (starvation), else 0 */
	uint32_t samples;	/* stack samples taken in it (0: none, stacks NULL) */
	/* Its dominant stacks, most frequent first (stacks.h); owned by the agent's
	 * stack table (ls_stacks_table()), valid for the agent's life. */
	const struct ls_stack_set *stacks;
};

/* Interval summary of one loop: what `stat` prints and `top` draws. */
struct ls_quant {
	uint64_t count, total_ns, p50_ns, p99_ns, max_ns;
};
struct ls_drain_summary {
	uint64_t drains, callbacks, max_drain_ns, starvation_episodes;
};
struct ls_loop_summary {
	int32_t pid;
	uint32_t tid;
	char comm[16];
	char label[32];			/* ls_loop_snapshot.label */
	char version[24], libuv_version[16];	/* the target's, set by the caller */
	uint32_t runtime;
	uint32_t has;
	double interval_s;
	uint64_t iterations;
	double utilization;		/* busy / (busy + idle) in the interval */
	struct ls_quant phase[LS_NPHASES];
	struct ls_quant iteration, delay, timer_lateness, gc;
	struct ls_drain_summary ticks, microtasks;
	uint64_t poll_wait_ns;
	uint64_t stall_episodes;
	uint64_t busy_per_iteration_ns;	/* busy time / iterations in the interval: the counters
					 * tier's only delay figure (a mean, not a distribution) */
};

/* Probe cost of target cur since prev (NULL: since attach), measured: program runs
 * and traps (uprobe / USDT hits) per loop iteration, each -1 when no loop iterated. */
void ls_target_cost(const struct ls_target_snapshot *cur, const struct ls_target_snapshot *prev,
		    double *hits_per_iteration, double *traps_per_iteration);

/* Summary of cur since prev (prev NULL: since attach). interval_s is the wall span. */
void ls_summarize(const struct ls_loop_snapshot *cur, const struct ls_loop_snapshot *prev,
		  double interval_s, struct ls_loop_summary *out);

/* One JSON object (no newline) in the schema shared with loopdemo's ground truth:
 * {"pid","tid","comm","runtime","interval_s","iterations","utilization",
 *  "phases":{"timers":{"total_s","count","p50_s","p99_s","max_s"},...},
 *  "delay":{"count","p50_s","p99_s","max_s"},"timer_lateness":{...},
 *  "ticks":{"drains","callbacks","max_drain_s","starvation_episodes"},"microtasks":{...},
 *  "poll_wait_s", "stall_episodes", and for Node "gc":{"count","total_s","p99_s","max_s"}},
 * and where known "loop" ("main", "worker 3"), "version", "libuv_version"; plus
 * "episodes":[{"kind","phase","start_s","duration_s","callbacks"}] for the neps
 * finished episodes given (eps NULL: no "episodes" key at all). Returns 0 or -errno. */
struct ls_episode;
int ls_summary_write_json(const struct ls_loop_summary *s, const struct ls_episode *eps, size_t neps,
			     FILE *out);

/*
 * A source of snapshots and episodes (htop's Platform idea): the live agent, a remote
 * `loopscope serve` stream, or a recording (record/replay.h). Front ends only ever see this.
 */
struct ls_source;
typedef void (*ls_episode_fn)(const struct ls_episode *ep, void *arg);

struct ls_source_ops {
	const char *name;
	/* Wait up to timeout_ms for new data, delivering episodes through the callback
	 * (the live agent takes timeout_ms < 0 as: until something was delivered or a
	 * signal arrived).
	 * 0 on success (also on timeout); -ENODATA when the source has ended for good
	 * (every target gone, stream closed, recording over); other -errno on failure. */
	int (*poll)(struct ls_source *src, int timeout_ms);
	/* Fill *out with a deep copy of the latest state (the caller frees it). */
	int (*snapshot)(struct ls_source *src, struct ls_snapshot *out);
	/* A file descriptor that becomes readable when poll() has work, or -1. */
	int (*fd)(struct ls_source *src);
	void (*destroy)(struct ls_source *src);
	/* The source's CLOCK_MONOTONIC "now" in the clock of its snapshots and episodes
	 * (a replay: the playback position); NULL: the local clock. */
	uint64_t (*now)(struct ls_source *src);
};

struct ls_source {
	const struct ls_source_ops *ops;
	ls_episode_fn on_episode;	/* may be NULL */
	void *episode_arg;
};

static inline int ls_source_poll(struct ls_source *s, int timeout_ms) { return s->ops->poll(s, timeout_ms); }
static inline int ls_source_snapshot(struct ls_source *s, struct ls_snapshot *o) { return s->ops->snapshot(s, o); }
static inline void ls_source_destroy(struct ls_source *s) { if (s) s->ops->destroy(s); }

uint64_t ls_now_mono_ns(void);
static inline uint64_t ls_source_now(struct ls_source *s) { return s->ops->now ? s->ops->now(s) : ls_now_mono_ns(); }
uint64_t ls_now_wall_ns(void);

#endif /* LS_SNAPSHOT_H */
