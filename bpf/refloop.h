/* refloop.h: what the reference-loop probe set (refloop.bpf.c) shares with its user
 * side (userspace/backends/refloop.c). Fixed-width types only: clang -target bpf and gcc must
 * lay these out alike.
 *
 * One struct refloop_loop per loop thread (key: the thread id) in the `loops` hash
 * map. Only the loop thread writes its own value, so the BPF side updates it with
 * plain stores; user space reads whole values (a torn read is a sample or two off,
 * never garbage, and the histogram reader tolerates it).
 */
#ifndef LS_REFLOOP_H
#define LS_REFLOOP_H

#include "hist.h"
#include "lsl_probes.h"

#define REFLOOP_MAX_LOOPS 16		/* loop threads per traced process */
#define REFLOOP_RINGBUF_BYTES (256 * 1024)

/* Episode kinds: same numbers as enum ls_episode_kind (snapshot.h). */
#define REFLOOP_EP_STALL 0
#define REFLOOP_EP_TICK_STARVATION 1
#define REFLOOP_EP_MICROTASK_STARVATION 2

struct refloop_drain {
	__u64 drains;			/* non-empty drains seen */
	__u64 callbacks;		/* callbacks they ran */
	__u64 starvation_episodes;	/* drains longer than the threshold */
	struct ls_hist duration;	/* ns per drain: loop's start_ns -> the end probe */
	struct ls_hist per_drain;	/* callbacks per drain */
};

struct refloop_loop {
	/* Tracking state, written by the probes (read-only for user space). */
	__u64 record;			/* address of the loop's struct lsl_probe_record */
	__u64 first_poll_start_ns;	/* first poll entry seen: counting starts here */
	__u64 poll_start_ns;		/* latest poll entry */
	__u64 poll_end_ns;		/* latest poll return seen (from the record, at poll_start) */
	__u64 last_event_ns;		/* latest probe hit of any kind */

	/* Cumulative since the first poll entry seen. */
	__u64 iterations;		/* complete not-polling spans (= delay samples) */
	__u64 busy_ns;			/* poll return -> next poll entry */
	__u64 idle_ns;			/* poll entry -> poll return */
	__u64 stall_episodes;
	__u64 probe_hits;		/* BPF program runs for this thread */
	__u64 drops;			/* episodes lost: ring buffer full */
	__u64 episodes;			/* episodes submitted */
	__u64 sample_drops;		/* stack samples lost: samples ring full */
	struct ls_hist phase[LSL_PROBE_NPHASES];
	struct ls_hist iteration;	/* record's last_iter_end - last_iter_start */
	struct ls_hist delay;		/* poll return -> next poll entry */
	struct ls_hist poll_wait;	/* poll entry -> poll return */
	struct ls_hist timer_lateness;	/* timer_fired now_ns - due_ns */
	struct refloop_drain ticks;
	struct refloop_drain microtasks;
};

/* One record per finished episode (stall or starvation), through the ring buffer. */
struct refloop_episode {
	__u32 tid;
	__u32 kind;		/* REFLOOP_EP_* */
	__u32 phase;		/* enum lsl_probe_phase, LSL_PROBE_NONE if unknown */
	__u32 _pad;
	__u64 start_ns;		/* CLOCK_MONOTONIC */
	__u64 end_ns;
	__u64 callbacks;	/* starvation: callbacks the drain ran; stall: 0 */
};

#endif /* LS_REFLOOP_H */
