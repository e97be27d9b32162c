/* view.h: what a front end shows of a stream of snapshots over time.
 *
 * A snapshot is cumulative and the agent keeps a target that left (for ever, or for
 * keep_gone_ns: agent.h); a front end that serves them over time (serve's /metrics and /events, top) wants more:
 *  - per-loop interval state: utilization over the last interval (including the span
 *    in progress), the episodes in progress and the prom-client compat lag window;
 *  - a filtered view: attached targets, plus exited or detached ones for keep_exited_ns
 *    after they left, one entry per PID (a PID may come back);
 *  - whether an episode announced as started is still running (ls_episode_over()),
 *    the safety net for a lost end-of-episode record.
 * No I/O: fed snapshots and episodes, unit-testable with synthetic ones.
 */
#ifndef LS_VIEW_H
#define LS_VIEW_H

#include <stdint.h>

#include "histogram.h"
#include "snapshot.h"

/* loopscope_blocked_seconds_total: stall and starvation time by the leaf-most JS
 * function of each episode stack (without JS: the program's own leaf-most function,
 * the program as its file). The first LS_BLOCKED_TOP distinct (function, file)
 * pairs of a loop keep a series of their own for the exporter's life (a counter never
 * moves between series); later ones add to function="other". */
#define LS_BLOCKED_TOP 10
struct ls_blocked {
	char function[128];
	char file[192];
	uint64_t ns;
};

/* One loop's interval state: what the Prometheus renderer reads. */
struct ls_loop_interval {
	int32_t pid;
	uint32_t tid;
	double utilization;			/* busy share over the last interval; < 0 unknown */
	double busy_per_iteration_s;		/* busy / iterations over it (counters tier); < 0 unknown */
	uint32_t in_progress[LS_EP_NKINDS];	/* episodes started and not yet ended */
	/* --compat prom-client */
	struct ls_hist lag_window;		/* delay samples of the last 10-20 s */
	int lag_window_valid;
	struct ls_blocked blocked[LS_BLOCKED_TOP];
	uint32_t nblocked;
	struct ls_blocked blocked_other;	/* function="other" */
};

/* Add ns of blocked time to (function, file) of loop p: its own series while fewer
 * than LS_BLOCKED_TOP pairs are known, else function="other". */
void ls_blocked_add(struct ls_loop_interval *p, const char *function, const char *file, uint64_t ns);

struct ls_view_loop;	/* private */
struct ls_view_gone;	/* private */

struct ls_view {
	uint64_t keep_exited_ns;	/* public: how long a gone target stays in the view */
	int compat;			/* public: keep the prom-client lag window */
	/* private */
	struct ls_view_loop *loops;
	size_t nloops, caploops;
	struct ls_view_gone *gone;
	size_t ngone, capgone;
};

/* Interval bookkeeping for every loop of a new interval snapshot s. */
void ls_view_update(struct ls_view *v, const struct ls_snapshot *s);
/* An episode started or ended (or a target exited). */
void ls_view_episode(struct ls_view *v, const struct ls_episode *ep);
/* The interval state of a loop, or NULL before its first interval. */
const struct ls_loop_interval *ls_view_loop(struct ls_view *v, int32_t pid, uint32_t tid);
/* The filtered view of s (see above). Shallow: out->targets is malloc'd (free() it), its
 * loops point into s. 0 or -ENOMEM. */
int ls_view_make(struct ls_view *v, const struct ls_snapshot *s, struct ls_snapshot *out);
/* pid was attached anew: when it leaves again, its keep_exited_ns clock starts then. */
void ls_view_forget_gone(struct ls_view *v, int32_t pid);
void ls_view_free(struct ls_view *v);

/* 1 if an episode of kind that started at start_ns cannot still be running given the
 * loop's live state l as of mono_ns (the snapshot's clock): a stall is over once the
 * loop is back in its poll wait after it started; a starvation once the drain it was
 * in has ended. 0 if it may still run, or if the live state predates the start. */
int ls_episode_over(uint32_t kind, uint64_t start_ns, const struct ls_loop_snapshot *l, uint64_t mono_ns);

/* 1 if pid has an attached entry in s. */
int ls_snapshot_pid_attached(const struct ls_snapshot *s, int32_t pid);

#endif /* LS_VIEW_H */
