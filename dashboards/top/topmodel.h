/* topmodel.h: the model behind `loopscope top`, with no curses in it.
 *
 * htop's Meter split: top.c feeds cumulative snapshots and episodes from an ls_source
 * into top_model_update() / top_model_episode(); topdraw.c only reads the model. The
 * model never looks at a clock itself: every call gets the caller's CLOCK_MONOTONIC
 * "now", so unit tests drive it with synthetic snapshots and synthetic time.
 *
 * Views:
 * - last (the latest 1 to 2 seconds, so a loop that iterates twice a second does not
 *   flicker between 0 and 4/s): iterations/s, utilization, delay p99 in the header lines;
 * - window (the last 2 minutes, rolling in 10 s steps; shorter since attach or since the
 *   user pressed r): phase shares and p50/p99/max, the time in no phase, utilization,
 *   delay p50/p99/max, drains, GC, all over the same span (window.interval_s);
 * - history: one point per snapshot (the interval's delay p99 and max) for the sparkline;
 * - episodes: a log of the most recent ones, in-progress ones updated when they end;
 * - alerts: what is going wrong right now, recomputed by top_model_tick().
 */
#ifndef LS_TOPMODEL_H
#define LS_TOPMODEL_H

#include <stdint.h>

#include "snapshot.h"

#define TOP_HISTORY 240		/* sparkline points (one per refresh: 2 min at 500 ms) */
#define TOP_LOG 64		/* episodes kept in the log */
#define TOP_MAX_ALERTS 16

enum top_sort { TOP_SORT_PID, TOP_SORT_DELAY, TOP_SORT_UTIL, TOP_SORT_RATE, TOP_NSORTS };
const char *top_sort_name(int sort);

struct top_opts {
	uint64_t stall_ns;	/* a phase / not-polling span this long is a stall alert */
	uint64_t starve_ns;	/* a nextTick / microtask drain this long is a starvation alert */
	uint64_t hold_ns;	/* an alert stays visible this long after its problem ended */
};

/* One point of a loop's delay history: the interval between two snapshots. */
#define TOP_RATE_NS 1000000000ull	/* `last` spans at least this */
#define TOP_RECENT_STEP_NS 10000000000ull	/* window: one checkpoint per 10 s, */
#define TOP_RECENT_STEPS 12			/* 12 of them back: the last 2-2m10s */
struct top_point {
	uint64_t p99_ns, max_ns, count;
};

/* One event loop (a process usually has one). public, read-only for the drawing code. */
struct top_row {
	int32_t pid;
	uint32_t tid;
	char comm[16];
	uint32_t runtime;		/* enum ls_runtime */
	uint32_t target_state;		/* enum ls_target_state */
	uint32_t has;			/* LS_HAS_* */
	char tier[16];
	char note[320];
	char version[24], libuv_version[16];	/* the target's runtime and libuv, or "" */
	uint64_t attached_ns, exited_ns;
	int present;			/* in the latest snapshot */

	struct ls_loop_summary last;	/* the latest 1-2 s (since attach at first) */
	struct ls_loop_summary window;	/* the last ~2 minutes (since base at first) */
	uint64_t window_start_ns;	/* mono (source clock) of base: attach or r */

	/* Live state as of the latest snapshot (source clock). */
	uint32_t live_state, live_phase, live_drain;
	uint64_t live_since_ns, live_phase_since_ns, live_drain_since_ns, live_drain_callbacks;
	char live_where[192];		/* the running JS function of a stall in progress, or "" */

	struct top_point history[TOP_HISTORY];	/* ring, oldest first from hist_head */
	uint32_t hist_len, hist_head;
	/* = window.delay and window.interval_s (kept for the drawing code). */
	struct ls_quant recent_delay;
	double recent_s;

	/* private */
	struct ls_loop_snapshot *prev;	/* latest snapshot */
	struct ls_loop_snapshot *base;	/* window start */
	struct ls_loop_snapshot *rate_old, *rate_new;	/* 1-2 s and 0-1 s ago: what `last` is since */
	struct ls_loop_snapshot *wring;	/* TOP_RECENT_STEPS + 1 cumulative snapshots, 10 s apart */
	uint64_t wring_ns[TOP_RECENT_STEPS + 1];
	uint32_t wring_len, wring_head;
	uint64_t prev_mono_ns, rate_old_ns, rate_new_ns;
	uint32_t seen_gen;
};

struct top_log_entry {
	struct ls_episode ep;	/* end_ns 0 while in progress */
	int over;		/* in progress, but a later snapshot shows it is over (its end was lost) */
	char comm[16];
};

enum top_alert_level { TOP_ALERT_ACTIVE, TOP_ALERT_RECENT, TOP_ALERT_EXITED };

struct top_alert {
	int level;		/* enum top_alert_level */
	int32_t pid;
	uint32_t tid;
	uint32_t kind;		/* enum ls_episode_kind */
	uint32_t phase;		/* enum ls_phase or LS_PHASE_NONE */
	uint64_t duration_ns;	/* so far (active) or in total (recent) */
	uint64_t callbacks;
	uint64_t ago_ns;	/* recent: since it ended */
	char text[288];		/* "stalled in timers for 312 ms in validateCoupon (/srv/app/coupons.js:14)" */
};

struct top_model {
	/* public, read-only */
	struct top_opts opts;
	struct top_row *rows;		/* in display order (sorted) */
	uint32_t nrows;
	uint32_t selected;		/* index into rows; 0 when empty */
	int sort;			/* enum top_sort */
	int paused, help;		/* UI state the drawing shows */
	uint64_t updates;		/* snapshots applied */
	uint64_t now_ns;		/* source clock as of the last call */
	uint64_t wall_minus_mono;	/* source wall - mono, for timestamps (0 unknown) */
	struct ls_self_stats self;
	char source_name[32];
	double refresh_s;

	struct top_log_entry log[TOP_LOG];	/* ring; newest at (log_head + log_len - 1) % TOP_LOG */
	uint32_t log_len, log_head;
	uint64_t episodes_seen;

	struct top_alert alerts[TOP_MAX_ALERTS];
	uint32_t nalerts, alerts_dropped;
	int all_exited;			/* every target has exited (or been detached) */

	/* private */
	int64_t clock_offset;		/* source mono - local mono (the largest seen, see learn_clock) */
	int clock_known;
	uint32_t gen;
	uint32_t rows_cap;
};

void top_model_init(struct top_model *m, const struct top_opts *opts);
void top_model_free(struct top_model *m);

/* Apply a cumulative snapshot taken when the local CLOCK_MONOTONIC read local_now.
 * Ignored (but remembered for the clock) while paused. 0 or -ENOMEM. */
int top_model_update(struct top_model *m, const struct ls_snapshot *s, uint64_t local_now);
/* Record an episode (a start with end_ns 0, or an end); works while paused too. */
void top_model_episode(struct top_model *m, const struct ls_episode *ep, uint64_t local_now);
/* Recompute alerts for local_now (call before each draw). */
void top_model_tick(struct top_model *m, uint64_t local_now);

/* UI actions. */
void top_model_select(struct top_model *m, int delta);	/* +1 down, -1 up; clamps */
void top_model_cycle_sort(struct top_model *m);
void top_model_reset_window(struct top_model *m);	/* window starts at the latest snapshot */
const struct top_row *top_model_selected(const struct top_model *m);	/* NULL if none */

/* i-th most recent log entry (0 = newest), NULL past the end. */
const struct top_log_entry *top_model_log(const struct top_model *m, uint32_t i);

/* "312ms", "1.25s", "48.0us": at most 7 characters. */
void top_fmt_ns(char *buf, size_t len, uint64_t ns);

#endif /* LS_TOPMODEL_H */
