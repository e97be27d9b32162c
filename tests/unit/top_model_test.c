/* top_model_test.c: the model of `loopscope top` (dashboards/top/topmodel.c), driven through
 * a synthetic ls_source with scripted snapshots, episodes and time. No root, no curses. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "histogram.h"
#include "snapshot.h"
#include "topmodel.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (1000 * S)	/* source clock at attach */

/* ---------------------------------------------------------------- a synthetic source */

/* One loop per target; the test edits the loops and queues episodes, then the model
 * reads them through the ls_source interface, the way top.c does. */
struct synth {
	struct ls_source src;
	struct ls_snapshot snap;		/* the state the next snapshot() copies */
	struct ls_episode queue[16];
	int nqueued, polls, ended;
};

static int synth_poll(struct ls_source *s, int timeout_ms)
{
	struct synth *y = (struct synth *)s;

	y->polls++;
	for (int i = 0; i < y->nqueued; i++)
		if (s->on_episode)
			s->on_episode(&y->queue[i], s->episode_arg);
	y->nqueued = 0;
	return y->ended ? -ENODATA : 0;
}

static int synth_snapshot(struct ls_source *s, struct ls_snapshot *out)
{
	return ls_snapshot_copy(out, &((struct synth *)s)->snap);
}

static int synth_fd(struct ls_source *s) { return -1; }
static void synth_destroy(struct ls_source *s) { ls_snapshot_free(&((struct synth *)s)->snap); }

static const struct ls_source_ops synth_ops = {
	.name = "synthetic", .poll = synth_poll, .snapshot = synth_snapshot, .fd = synth_fd,
	.destroy = synth_destroy,
};

static void synth_init(struct synth *y, int ntargets)
{
	memset(y, 0, sizeof(*y));
	y->src.ops = &synth_ops;
	y->snap.ntargets = (uint32_t)ntargets;
	y->snap.targets = calloc((size_t)ntargets, sizeof(*y->snap.targets));
	assert_non_null(y->snap.targets);
	for (int i = 0; i < ntargets; i++) {
		struct ls_target_snapshot *t = &y->snap.targets[i];

		t->pid = 100 + i;
		snprintf(t->comm, sizeof(t->comm), "demo%d", i);
		t->runtime = LS_RT_REFERENCE;
		t->state = LS_TARGET_ATTACHED;
		snprintf(t->tier, sizeof(t->tier), "usdt");
		t->attached_ns = T0;
		t->nloops = 1;
		t->loops = calloc(1, sizeof(*t->loops));
		assert_non_null(t->loops);
		t->loops[0].tid = (uint32_t)t->pid;
		t->loops[0].has = LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_DRAINS | LS_HAS_EPISODES;
		t->loops[0].live_phase = LS_PHASE_NONE;
	}
	y->snap.mono_ns = T0;
	y->snap.wall_ns = 1700000000 * S;
}

static struct ls_loop_snapshot *loop_of(struct synth *y, int i) { return &y->snap.targets[i].loops[0]; }

/* Let `secs` of loop run: n iterations, each with the given timers-phase time, a poll
 * wait of the rest, and a delay sample equal to the busy part. */
static void run_loop(struct synth *y, int i, uint64_t n, uint64_t timers_ns, uint64_t iter_ns)
{
	struct ls_loop_snapshot *l = loop_of(y, i);

	for (uint64_t k = 0; k < n; k++) {
		ls_hist_add(&l->phase[LS_PHASE_TIMERS], timers_ns);
		ls_hist_add(&l->phase[LS_PHASE_POLL], iter_ns - timers_ns);
		ls_hist_add(&l->delay, timers_ns);
		ls_hist_add(&l->iteration, iter_ns);
		l->busy_ns += timers_ns;
		l->idle_ns += iter_ns - timers_ns;
	}
	l->iterations += n;
}

/* Advance the source clock; local clock = source clock + 5 s (they differ on purpose). */
#define LOCAL(t) ((t) + 5 * S)

static void apply(struct top_model *m, struct synth *y)
{
	struct ls_snapshot s = { 0 };

	assert_int_equal(ls_source_poll(&y->src, 0), 0);
	assert_int_equal(ls_source_snapshot(&y->src, &s), 0);
	assert_int_equal(top_model_update(m, &s, LOCAL(s.mono_ns)), 0);
	ls_snapshot_free(&s);
}

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct top_model *m = arg;

	top_model_episode(m, ep, LOCAL(m->now_ns));
}

static void model_init(struct top_model *m, struct synth *y, int ntargets)
{
	synth_init(y, ntargets);
	top_model_init(m, &(struct top_opts){ .stall_ns = 100 * MS, .starve_ns = 100 * MS, .hold_ns = 3 * S });
	y->src.on_episode = on_episode;
	y->src.episode_arg = m;
}

static void model_done(struct top_model *m, struct synth *y)
{
	top_model_free(m);
	ls_source_destroy(&y->src);
}

static int has_alert(const struct top_model *m, int level, const char *text)
{
	for (uint32_t i = 0; i < m->nalerts; i++)
		if (m->alerts[i].level == level && strstr(m->alerts[i].text, text))
			return 1;
	return 0;
}

static void print_alerts(const struct top_model *m)
{
	for (uint32_t i = 0; i < m->nalerts; i++)
		print_message("alert %u: level %d '%s'\n", i, m->alerts[i].level, m->alerts[i].text);
}

/* ---------------------------------------------------------------- tests */

static void test_fmt_ns(void **state)
{
	static const struct { uint64_t ns; const char *want; } cases[] = {
		{ 0, "0ns" }, { 999, "999ns" }, { 1500, "1.50us" }, { 48000, "48us" }, { 2500000, "2.50ms" },
		{ 312000000, "312ms" }, { 1250000000, "1.25s" }, { 3600 * S, "3600s" },
	};
	char buf[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		top_fmt_ns(buf, sizeof(buf), cases[i].ns);
		assert_string_equal(buf, cases[i].want);
		assert_true(strlen(buf) <= 7);
	}
}

/* Two snapshots 1 s apart: the interval view has the rate, utilization, and phase
 * quantiles of that second only; the window covers everything since attach. */
static void test_interval_and_window(void **state)
{
	struct top_model m;
	struct synth y;
	const struct top_row *r;

	model_init(&m, &y, 1);
	run_loop(&y, 0, 1000, 100000, 1 * MS);		/* 1 s: 10% busy, timers 100 us */
	y.snap.mono_ns = T0 + 1 * S;
	apply(&m, &y);
	assert_int_equal(m.nrows, 1);
	r = top_model_selected(&m);
	assert_non_null(r);
	assert_int_equal(r->pid, 100);
	assert_string_equal(r->comm, "demo0");
	/* The first interval is "since attach". */
	assert_true(r->last.interval_s > 0.99 && r->last.interval_s < 1.01);
	assert_int_equal(r->last.iterations, 1000);

	run_loop(&y, 0, 500, 1500000, 2 * MS);		/* next 1 s: 500 iterations, 75% busy */
	y.snap.mono_ns = T0 + 2 * S;
	apply(&m, &y);
	r = top_model_selected(&m);
	assert_int_equal(r->last.iterations, 500);
	assert_true(r->last.utilization > 0.74 && r->last.utilization < 0.76);
	assert_int_equal(r->last.phase[LS_PHASE_TIMERS].count, 500);
	/* Quantiles within the histogram's 10% promise. */
	assert_true(r->last.phase[LS_PHASE_TIMERS].p99_ns > 1350000 && r->last.phase[LS_PHASE_TIMERS].p99_ns < 1650000);
	assert_int_equal(r->last.phase[LS_PHASE_TIMERS].max_ns, 1500000);
	/* The window: both seconds. */
	assert_true(r->window.interval_s > 1.99 && r->window.interval_s < 2.01);
	assert_int_equal(r->window.iterations, 1500);
	assert_int_equal(r->window.phase[LS_PHASE_TIMERS].total_ns, 1000 * 100000ull + 500 * 1500000ull);
	assert_true(r->window.delay.p50_ns > 90000 && r->window.delay.p50_ns < 110000);
	/* One history point per refresh after the first, holding its worst delay. */
	assert_int_equal(r->hist_len, 1);
	assert_int_equal(r->history[r->hist_head].max_ns, 1500000);

	/* Half a second later `last` still spans more than a second (no flicker). */
	run_loop(&y, 0, 100, 1500000, 2 * MS);
	y.snap.mono_ns = T0 + 2 * S + 500 * MS;
	apply(&m, &y);
	r = top_model_selected(&m);
	assert_true(r->last.interval_s > 1.49 && r->last.interval_s < 1.51);
	assert_int_equal(r->last.iterations, 600);
	assert_int_equal(r->hist_len, 2);
	model_done(&m, &y);
}

/* A phase running past the threshold (live state) is an active alert; below it, none. */
static void test_live_stall_alert(void **state)
{
	struct top_model m;
	struct synth y;
	struct ls_loop_snapshot *l;

	model_init(&m, &y, 1);
	l = loop_of(&y, 0);
	y.snap.mono_ns = T0 + 10 * S;
	l->live_state = LS_LIVE_RUNNING;
	l->live_phase = LS_PHASE_TIMERS;
	l->live_since_ns = l->live_phase_since_ns = y.snap.mono_ns - 40 * MS;
	apply(&m, &y);
	assert_int_equal(m.nalerts, 0);

	y.snap.mono_ns += 200 * MS;	/* same phase, now 240 ms in */
	apply(&m, &y);
	print_alerts(&m);
	assert_int_equal(m.nalerts, 1);
	assert_int_equal(m.alerts[0].level, TOP_ALERT_ACTIVE);
	assert_int_equal(m.alerts[0].kind, LS_EP_STALL);
	assert_string_equal(m.alerts[0].text, "stalled in timers for 240ms");

	/* The stall's latest stack sample names where the loop thread is. */
	snprintf(l->live_where, sizeof(l->live_where), "validateCoupon (/srv/app/coupons.js:14)");
	y.snap.mono_ns += 10 * MS;
	apply(&m, &y);
	assert_int_equal(m.nalerts, 1);
	assert_string_equal(m.alerts[0].text, "stalled in timers for 250ms in validateCoupon (/srv/app/coupons.js:14)");
	l->live_where[0] = 0;

	/* Back in the poll wait: no more alert. */
	l->live_state = LS_LIVE_POLLING;
	l->live_phase = LS_PHASE_POLL;
	l->live_since_ns = y.snap.mono_ns + 10 * MS;
	y.snap.mono_ns += 50 * MS;
	apply(&m, &y);
	assert_int_equal(m.nalerts, 0);
	model_done(&m, &y);
}

/* A nextTick drain in progress shows its length and callbacks; the threshold is its own. */
static void test_live_tick_starvation(void **state)
{
	struct top_model m;
	struct synth y;
	struct ls_loop_snapshot *l;

	model_init(&m, &y, 1);
	m.opts.starve_ns = 50 * MS;
	m.opts.stall_ns = 1 * S;	/* the stall alert must not fire for the same 200 ms */
	l = loop_of(&y, 0);
	y.snap.mono_ns = T0 + 10 * S;
	l->live_state = LS_LIVE_RUNNING;
	l->live_phase = LS_PHASE_CHECK;
	l->live_since_ns = l->live_phase_since_ns = y.snap.mono_ns - 200 * MS;
	l->live_drain = 1;
	l->live_drain_since_ns = y.snap.mono_ns - 200 * MS;
	l->live_drain_callbacks = 51234;
	apply(&m, &y);
	print_alerts(&m);
	assert_int_equal(m.nalerts, 1);
	assert_string_equal(m.alerts[0].text, "process.nextTick starvation for 200ms (51234 callbacks)");

	l->live_drain = 2;
	apply(&m, &y);
	assert_int_equal(m.nalerts, 1);
	assert_string_equal(m.alerts[0].text, "microtask starvation for 200ms (51234 callbacks)");

	/* a tier that does not count the drain's callbacks: no count, not "0 callbacks" */
	l->live_drain_callbacks = 0;
	apply(&m, &y);
	assert_int_equal(m.nalerts, 1);
	assert_string_equal(m.alerts[0].text, "microtask starvation for 200ms");
	model_done(&m, &y);
}

/* An episode's start makes an active alert that counts up with time; its end turns it
 * into a "recent" alert for hold_ns, and the log keeps one entry for both. */
static void test_episode_lifecycle(void **state)
{
	struct top_model m;
	struct synth y;
	struct ls_episode ep = { .pid = 100, .tid = 100, .kind = LS_EP_STALL, .phase = LS_PHASE_TIMERS };
	const struct top_log_entry *e;

	model_init(&m, &y, 1);
	y.snap.mono_ns = T0 + 10 * S;
	apply(&m, &y);
	ep.start_ns = T0 + 10 * S - 120 * MS;
	y.queue[y.nqueued++] = ep;
	assert_int_equal(ls_source_poll(&y.src, 0), 0);
	assert_int_equal(m.nalerts, 1);
	assert_int_equal(m.alerts[0].level, TOP_ALERT_ACTIVE);
	assert_string_equal(m.alerts[0].text, "stalled in timers for 120ms");
	top_model_tick(&m, LOCAL(T0 + 10 * S + 180 * MS));	/* no snapshot: time alone moves it */
	assert_string_equal(m.alerts[0].text, "stalled in timers for 300ms");

	ep.end_ns = ep.start_ns + 301 * MS;
	y.queue[y.nqueued++] = ep;
	assert_int_equal(ls_source_poll(&y.src, 0), 0);
	assert_int_equal(m.log_len, 1);
	e = top_model_log(&m, 0);
	assert_non_null(e);
	assert_int_equal(e->ep.end_ns, ep.end_ns);
	assert_string_equal(e->comm, "demo0");
	top_model_tick(&m, LOCAL(ep.end_ns + 1 * S));
	print_alerts(&m);
	assert_int_equal(m.nalerts, 1);
	assert_int_equal(m.alerts[0].level, TOP_ALERT_RECENT);
	assert_string_equal(m.alerts[0].text, "stall in timers for 301ms, 1.00s ago");
	top_model_tick(&m, LOCAL(ep.end_ns + 4 * S));
	assert_int_equal(m.nalerts, 0);
	assert_null(top_model_log(&m, 1));
	model_done(&m, &y);
}

/* An episode whose end never arrives is closed by a later snapshot showing the loop
 * back in the poll wait, so it does not alarm forever. */
static void test_lost_end_inferred(void **state)
{
	struct top_model m;
	struct synth y;
	struct ls_loop_snapshot *l;
	struct ls_episode ep = { .pid = 100, .tid = 100, .kind = LS_EP_STALL, .phase = LS_PHASE_TIMERS };

	model_init(&m, &y, 1);
	l = loop_of(&y, 0);
	y.snap.mono_ns = T0 + 10 * S;
	apply(&m, &y);
	ep.start_ns = T0 + 10 * S;
	top_model_episode(&m, &ep, LOCAL(T0 + 10 * S + 150 * MS));
	assert_int_equal(m.nalerts, 1);
	l->live_state = LS_LIVE_POLLING;
	l->live_phase = LS_PHASE_POLL;
	l->live_since_ns = T0 + 10 * S + 200 * MS;
	y.snap.mono_ns = T0 + 10 * S + 500 * MS;
	apply(&m, &y);
	assert_int_equal(m.nalerts, 0);
	assert_true(top_model_log(&m, 0)->over);
	model_done(&m, &y);
}

/* A target that exits: the exit episode marks it at once, and a snapshot that says
 * EXITED for every target sets all_exited. */
static void test_target_exit(void **state)
{
	struct top_model m;
	struct synth y;
	struct ls_episode ep = { .pid = 101, .tid = 0, .kind = LS_EP_TARGET_EXIT, .phase = LS_PHASE_NONE };

	model_init(&m, &y, 2);
	y.snap.mono_ns = T0 + 1 * S;
	apply(&m, &y);
	assert_int_equal(m.nrows, 2);
	assert_false(m.all_exited);
	ep.start_ns = T0 + 1 * S + 10 * MS;
	top_model_episode(&m, &ep, LOCAL(ep.start_ns));
	assert_true(has_alert(&m, TOP_ALERT_EXITED, "target exited"));
	assert_int_equal(m.alerts[0].pid, 101);
	/* The agent's next snapshot may still call it attached: the exit sticks. */
	y.snap.mono_ns = T0 + 2 * S;
	apply(&m, &y);
	assert_true(has_alert(&m, TOP_ALERT_EXITED, "target exited"));
	assert_false(m.all_exited);
	y.snap.targets[0].state = LS_TARGET_EXITED;
	y.snap.targets[1].state = LS_TARGET_EXITED;
	y.snap.mono_ns = T0 + 3 * S;
	apply(&m, &y);
	assert_true(m.all_exited);
	assert_int_equal(m.nalerts, 2);
	/* The source ends for good once every target is gone. */
	y.ended = 1;
	assert_int_equal(ls_source_poll(&y.src, 0), -ENODATA);
	model_done(&m, &y);
}

/* A process that exec'd and was attached again: the agent lists the old program
 * (exited) and the new one (attached, later attached_ns) under the same pid. The row
 * follows the new one, afresh, whatever their order, and not every target is gone. */
static void test_exec_reattached(void **state)
{
	struct top_model m;
	struct synth y;

	for (int order = 0; order < 2; order++) {
		struct ls_target_snapshot *old, *new;

		model_init(&m, &y, 2);
		run_loop(&y, 0, 1000, 200000, MS);
		y.snap.targets[1].pid = 100;
		y.snap.targets[1].loops[0].tid = 100;
		y.snap.targets[1].nloops = 0;	/* not in the first snapshot */
		y.snap.ntargets = 1;
		y.snap.mono_ns = T0 + 1 * S;
		apply(&m, &y);
		assert_int_equal(m.nrows, 1);
		assert_int_equal(m.rows[0].last.iterations, 1000);
		old = &y.snap.targets[order];
		new = &y.snap.targets[1 - order];
		if (order) {	/* the new program listed first */
			struct ls_target_snapshot t = y.snap.targets[0];

			y.snap.targets[0] = y.snap.targets[1];
			y.snap.targets[1] = t;
		}
		y.snap.ntargets = 2;
		old->state = LS_TARGET_EXITED;
		new->state = LS_TARGET_ATTACHED;
		new->attached_ns = T0 + 1 * S + 500 * MS;
		new->nloops = 1;
		snprintf(new->comm, sizeof(new->comm), "next");
		new->loops[0].iterations = 40;
		y.snap.mono_ns = T0 + 2 * S;
		apply(&m, &y);
		assert_false(m.all_exited);
		assert_int_equal(m.nrows, 1);
		assert_int_equal(m.rows[0].target_state, LS_TARGET_ATTACHED);
		assert_string_equal(m.rows[0].comm, "next");
		assert_int_equal(m.rows[0].attached_ns, new->attached_ns);
		assert_int_equal(m.rows[0].last.iterations, 40);	/* its own, from zero */
		model_done(&m, &y);
	}
}

/* Sorting keeps the same loop selected; selection clamps at both ends. */
static void test_sort_and_select(void **state)
{
	struct top_model m;
	struct synth y;

	model_init(&m, &y, 3);
	run_loop(&y, 0, 100, 10000, 1 * MS);		/* pid 100: low delay, fast */
	run_loop(&y, 1, 10, 500000, 10 * MS);		/* pid 101: high delay */
	run_loop(&y, 2, 50, 900000, 1 * MS);		/* pid 102: busiest */
	y.snap.mono_ns = T0 + 1 * S;
	apply(&m, &y);
	assert_int_equal(m.sort, TOP_SORT_PID);
	assert_int_equal(m.rows[0].pid, 100);
	assert_int_equal(m.rows[2].pid, 102);
	top_model_select(&m, 1);
	assert_int_equal(top_model_selected(&m)->pid, 101);
	top_model_cycle_sort(&m);
	assert_int_equal(m.sort, TOP_SORT_DELAY);
	assert_string_equal(top_sort_name(m.sort), "delay");
	assert_int_equal(m.rows[0].pid, 102);	/* 900 us delay */
	assert_int_equal(m.rows[1].pid, 101);
	assert_int_equal(top_model_selected(&m)->pid, 101);
	top_model_cycle_sort(&m);
	assert_int_equal(m.rows[0].pid, 102);	/* utilization 90% */
	top_model_cycle_sort(&m);
	assert_int_equal(m.rows[0].pid, 100);	/* 100 iterations/s */
	top_model_select(&m, -10);
	assert_int_equal(m.selected, 0);
	top_model_select(&m, 10);
	assert_int_equal(m.selected, 2);
	model_done(&m, &y);
}

/* r: the window restarts at the latest snapshot; p: snapshots are ignored meanwhile. */
static void test_reset_and_pause(void **state)
{
	struct top_model m;
	struct synth y;
	const struct top_row *r;

	model_init(&m, &y, 1);
	run_loop(&y, 0, 1000, 100000, 1 * MS);
	y.snap.mono_ns = T0 + 1 * S;
	apply(&m, &y);
	top_model_reset_window(&m);
	r = top_model_selected(&m);
	assert_int_equal(r->window.iterations, 0);
	assert_int_equal(r->hist_len, 0);
	run_loop(&y, 0, 200, 100000, 1 * MS);
	y.snap.mono_ns = T0 + 2 * S;
	apply(&m, &y);
	r = top_model_selected(&m);
	assert_int_equal(r->window.iterations, 200);
	assert_true(r->window.interval_s > 0.99 && r->window.interval_s < 1.01);

	m.paused = 1;
	run_loop(&y, 0, 300, 100000, 1 * MS);
	y.snap.mono_ns = T0 + 3 * S;
	apply(&m, &y);
	assert_int_equal(top_model_selected(&m)->window.iterations, 200);
	m.paused = 0;
	y.snap.mono_ns = T0 + 4 * S;
	apply(&m, &y);
	r = top_model_selected(&m);
	assert_int_equal(r->window.iterations, 500);
	assert_int_equal(r->last.iterations, 300);	/* the interval spans the pause */
	model_done(&m, &y);
}

/* The log is a bounded ring: the newest TOP_LOG entries survive, newest first. */
static void test_log_ring(void **state)
{
	struct top_model m;
	struct synth y;

	model_init(&m, &y, 1);
	for (int i = 0; i < TOP_LOG + 10; i++) {
		struct ls_episode ep = { .pid = 100, .tid = 100, .kind = LS_EP_GC, .phase = LS_PHASE_NONE,
					 .start_ns = T0 + (uint64_t)i * S, .end_ns = T0 + (uint64_t)i * S + MS };
		top_model_episode(&m, &ep, LOCAL(T0));
	}
	assert_int_equal(m.log_len, TOP_LOG);
	assert_int_equal(top_model_log(&m, 0)->ep.start_ns, T0 + (uint64_t)(TOP_LOG + 9) * S);
	assert_int_equal(top_model_log(&m, TOP_LOG - 1)->ep.start_ns, T0 + 10 * S);
	assert_null(top_model_log(&m, TOP_LOG));
	model_done(&m, &y);
}

/* A target that appears later gets its own row; one without loops yet has a placeholder
 * that the loop then takes over. */
static void test_rows_follow_targets(void **state)
{
	struct top_model m;
	struct synth y;

	model_init(&m, &y, 1);
	y.snap.targets[0].nloops = 0;
	y.snap.mono_ns = T0 + 1 * S;
	apply(&m, &y);
	assert_int_equal(m.nrows, 1);
	assert_int_equal(m.rows[0].tid, 0);
	y.snap.targets[0].nloops = 1;
	y.snap.mono_ns = T0 + 2 * S;
	apply(&m, &y);
	assert_int_equal(m.nrows, 1);
	assert_int_equal(m.rows[0].tid, 100);
	assert_true(m.rows[0].present);
	model_done(&m, &y);
}

/* The latest snapshot saw a stall in progress; its episode's end arrives before the
 * next snapshot: the alert turns "recent" at once instead of lingering as active. */
static void test_end_beats_stale_live_state(void **state)
{
	struct top_model m;
	struct synth y;
	struct ls_loop_snapshot *l;
	struct ls_episode ep = { .pid = 100, .tid = 100, .kind = LS_EP_STALL, .phase = LS_PHASE_TIMERS };

	model_init(&m, &y, 1);
	l = loop_of(&y, 0);
	y.snap.mono_ns = T0 + 10 * S;
	l->live_state = LS_LIVE_RUNNING;
	l->live_phase = LS_PHASE_TIMERS;
	l->live_since_ns = l->live_phase_since_ns = T0 + 10 * S - 250 * MS;
	apply(&m, &y);
	assert_true(has_alert(&m, TOP_ALERT_ACTIVE, "stalled in timers for 250ms"));
	ep.start_ns = l->live_phase_since_ns;
	ep.end_ns = ep.start_ns + 300 * MS;
	top_model_episode(&m, &ep, LOCAL(ep.end_ns + 1 * MS));
	print_alerts(&m);
	assert_int_equal(m.nalerts, 1);
	assert_true(has_alert(&m, TOP_ALERT_RECENT, "stall in timers for 300ms, just now"));
	model_done(&m, &y);
}

/* The window is "the last 2 minutes" (rolling in 10 s steps): a 300 ms lag counts while
 * it is less than ~2 min old and drops out after, and so do its phase time and drains:
 * phase shares, utilization and delay all cover the same span. */
static void test_recent_delay(void **state)
{
	struct top_model m;
	struct synth y;
	const struct top_row *r;

	model_init(&m, &y, 1);
	run_loop(&y, 0, 1, 300 * MS, 301 * MS);		/* one 300 ms lag at the start */
	for (int t = 1; t <= 200; t++) {
		run_loop(&y, 0, 100, 1 * MS, 10 * MS);	/* then 1 ms, 100 a second */
		y.snap.mono_ns = T0 + (uint64_t)t * S;
		apply(&m, &y);
		r = top_model_selected(&m);
		if (t == 60) {
			assert_int_equal(r->recent_delay.max_ns, 300 * MS);
			assert_true(r->recent_s > 59.9 && r->recent_s < 60.1);
		}
	}
	r = top_model_selected(&m);
	assert_true(r->recent_s >= 120 && r->recent_s <= 131);
	/* The exact max is gone with the 300 ms one: its bucket bounds it within 6.25%. */
	assert_true(r->recent_delay.max_ns >= 1 * MS && r->recent_delay.max_ns < 1070000);
	assert_true(r->recent_delay.count >= 12000 && r->recent_delay.count <= 13100);
	/* The phase shares, iterations and utilization roll with it (one window for all). */
	assert_true(r->window.interval_s == r->recent_s);
	assert_true(r->window.iterations >= 12000 && r->window.iterations <= 13100);
	assert_int_equal(r->window.phase[LS_PHASE_TIMERS].max_ns, r->recent_delay.max_ns);
	assert_true(r->window.phase[LS_PHASE_TIMERS].total_ns >= 12000 * MS &&
		    r->window.phase[LS_PHASE_TIMERS].total_ns <= 13100 * MS);
	assert_true(r->window.utilization > 0.09 && r->window.utilization < 0.11);
	/* r still restarts it. */
	top_model_reset_window(&m);
	run_loop(&y, 0, 100, 1 * MS, 10 * MS);
	y.snap.mono_ns = T0 + 201 * S;
	apply(&m, &y);
	r = top_model_selected(&m);
	assert_int_equal(r->window.iterations, 100);
	assert_true(r->window.interval_s > 0.99 && r->window.interval_s < 1.01);
	model_done(&m, &y);
}

/* A source that does not say when it attached (attached_ns 0): the window starts at the
 * first snapshot instead of staying empty for two minutes. */
static void test_window_without_attach_time(void **state)
{
	struct top_model m;
	struct synth y;
	const struct top_row *r;

	model_init(&m, &y, 1);
	y.snap.targets[0].attached_ns = 0;
	run_loop(&y, 0, 100, 1 * MS, 10 * MS);
	y.snap.mono_ns = T0 + 1 * S;
	apply(&m, &y);
	run_loop(&y, 0, 300, 1 * MS, 10 * MS);
	y.snap.mono_ns = T0 + 4 * S;
	apply(&m, &y);
	r = top_model_selected(&m);
	assert_true(r->window.interval_s > 2.99 && r->window.interval_s < 3.01);
	assert_int_equal(r->window.iterations, 300);
	assert_int_equal(r->window.phase[LS_PHASE_TIMERS].total_ns, 300 * MS);
	model_done(&m, &y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_ns),
		cmocka_unit_test(test_interval_and_window),
		cmocka_unit_test(test_live_stall_alert),
		cmocka_unit_test(test_live_tick_starvation),
		cmocka_unit_test(test_episode_lifecycle),
		cmocka_unit_test(test_lost_end_inferred),
		cmocka_unit_test(test_end_beats_stale_live_state),
		cmocka_unit_test(test_target_exit),
		cmocka_unit_test(test_exec_reattached),
		cmocka_unit_test(test_sort_and_select),
		cmocka_unit_test(test_reset_and_pause),
		cmocka_unit_test(test_log_ring),
		cmocka_unit_test(test_recent_delay),
		cmocka_unit_test(test_window_without_attach_time),
		cmocka_unit_test(test_rows_follow_targets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
