/* summary_test.c: interval summaries (summary.c), their JSON, and snapshot ownership
 * (snapshot.c). No BPF: snapshots are built by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "snapshot.h"
#include "view.h"

static struct ls_loop_snapshot *new_loop(uint32_t tid)
{
	struct ls_loop_snapshot *l = calloc(1, sizeof(*l));

	assert_non_null(l);
	l->tid = tid;
	snprintf(l->name, sizeof(l->name), "loop%u", tid);
	l->has = LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_TIMERS | LS_HAS_DRAINS | LS_HAS_EPISODES;
	return l;
}

/* prev NULL summarizes everything; with prev only what happened since. */
static void test_summarize_delta(void **state)
{
	struct ls_loop_snapshot *a = new_loop(7), *b;
	struct ls_loop_summary s;

	(void)state;
	for (int i = 0; i < 100; i++)
		ls_hist_add(&a->delay, 1000000);	/* 1 ms */
	a->iterations = 100;
	a->busy_ns = 300;
	a->idle_ns = 700;
	a->ticks.drains = 3;
	a->ticks.callbacks = 30;
	ls_hist_add(&a->ticks.duration, 5000);
	a->stall_episodes = 1;

	b = malloc(sizeof(*b));
	assert_non_null(b);
	memcpy(b, a, sizeof(*b));
	for (int i = 0; i < 10; i++)
		ls_hist_add(&b->delay, 50000000);	/* 50 ms */
	ls_hist_add(&b->phase[LS_PHASE_TIMERS], 2000000);
	b->iterations = 110;
	b->busy_ns = 300 + 900;
	b->idle_ns = 700 + 100;
	b->stall_episodes = 3;

	ls_summarize(a, NULL, 1.0, &s);
	assert_int_equal(s.tid, 7);
	assert_string_equal(s.comm, "loop7");
	assert_int_equal(s.iterations, 100);
	assert_true(s.utilization > 0.299 && s.utilization < 0.301);
	assert_int_equal(s.delay.count, 100);
	assert_int_equal(s.delay.max_ns, 1000000);
	assert_int_equal(s.ticks.drains, 3);
	assert_int_equal(s.ticks.max_drain_ns, 5000);

	ls_summarize(b, a, 2.0, &s);
	assert_int_equal(s.iterations, 10);
	assert_true(s.utilization > 0.899 && s.utilization < 0.901);
	assert_int_equal(s.delay.count, 10);
	assert_int_equal(s.delay.max_ns, 50000000);
	/* Every interval sample is 50 ms: the quantile is within the bucket's 6.25%. */
	assert_true(s.delay.p50_ns > 47000000 && s.delay.p50_ns <= 50000000);
	assert_int_equal(s.phase[LS_PHASE_TIMERS].count, 1);
	assert_int_equal(s.phase[LS_PHASE_TIMERS].total_ns, 2000000);
	assert_int_equal(s.ticks.drains, 0);
	assert_int_equal(s.ticks.max_drain_ns, 0);
	assert_int_equal(s.stall_episodes, 2);
	assert_int_equal(s.poll_wait_ns, 100);
	free(a);
	free(b);
}

/* An idle interval (no samples at all) gives zeros, not garbage or a division by 0. */
static void test_summarize_empty(void **state)
{
	struct ls_loop_snapshot *a = new_loop(1);
	struct ls_loop_summary s;

	(void)state;
	ls_summarize(a, a, 1.0, &s);
	assert_int_equal(s.iterations, 0);
	assert_true(s.utilization == 0.0);
	assert_int_equal(s.delay.p99_ns, 0);
	free(a);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_non_null(v);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

/* The JSON carries the ground-truth schema with seconds, and the episodes list. */
static void test_json_schema(void **state)
{
	struct ls_loop_snapshot *a = new_loop(42);
	struct ls_loop_summary s;
	struct ls_episode ep = { .pid = 9, .tid = 42, .kind = LS_EP_TICK_STARVATION, .phase = LS_PHASE_CHECK,
				 .start_ns = 1000000000, .end_ns = 1150000000, .callbacks = 77 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	cJSON *o, *ph, *t, *eps;

	(void)state;
	ls_hist_add(&a->phase[LS_PHASE_POLL], 3000000000ull);
	ls_hist_add(&a->delay, 250000);
	a->iterations = 1;
	a->busy_ns = 1;
	a->idle_ns = 3;
	a->idle_ns = 3000000000ull;
	ls_summarize(a, NULL, 2.5, &s);
	s.pid = 9;
	s.runtime = LS_RT_REFERENCE;

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(ls_summary_write_json(&s, &ep, 1, f), 0);
	fclose(f);
	o = cJSON_Parse(buf);
	assert_non_null(o);
	assert_true(num(o, "pid") == 9);
	assert_true(num(o, "tid") == 42);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "runtime")->valuestring, "reference");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "comm")->valuestring, "loop42");
	assert_true(num(o, "interval_s") == 2.5);
	assert_true(num(o, "iterations") == 1);
	ph = cJSON_GetObjectItemCaseSensitive(o, "phases");
	assert_non_null(ph);
	for (int i = 0; i < LS_NPHASES; i++)
		assert_non_null(cJSON_GetObjectItemCaseSensitive(ph, ls_phase_names[i]));
	t = cJSON_GetObjectItemCaseSensitive(ph, "poll");
	assert_true(num(t, "total_s") == 3.0);
	assert_true(num(t, "count") == 1);
	assert_true(num(t, "max_s") == 3.0);
	assert_true(num(cJSON_GetObjectItemCaseSensitive(o, "delay"), "max_s") == 0.00025);
	assert_true(num(o, "poll_wait_s") == 3.0);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "timer_lateness"));
	assert_true(num(cJSON_GetObjectItemCaseSensitive(o, "ticks"), "drains") == 0);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "microtasks"),
							 "starvation_episodes"));
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "gc"));	/* not a Node loop */
	eps = cJSON_GetObjectItemCaseSensitive(o, "episodes");
	assert_int_equal(cJSON_GetArraySize(eps), 1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(eps, 0), "kind")->valuestring,
			    "tick_starvation");
	assert_true(num(cJSON_GetArrayItem(eps, 0), "duration_s") > 0.1499 &&
		    num(cJSON_GetArrayItem(eps, 0), "duration_s") < 0.1501);
	assert_true(num(cJSON_GetArrayItem(eps, 0), "callbacks") == 77);
	cJSON_Delete(o);
	free(buf);

	/* Without episodes: no "episodes" key. */
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(ls_summary_write_json(&s, NULL, 0, f), 0);
	fclose(f);
	o = cJSON_Parse(buf);
	assert_non_null(o);
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "episodes"));
	cJSON_Delete(o);
	free(buf);
	free(a);
}

/* A Node loop: starvation is counted (stack sampling) but drains are not measured,
 * so ticks/microtasks carry starvation_episodes and null for the rest; gc is there. */
static void test_json_node_schema(void **state)
{
	struct ls_loop_snapshot *a = calloc(1, sizeof(*a));
	struct ls_loop_summary s;
	cJSON *o, *t, *m, *g;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(a);
	a->has = LS_HAS_DELAY | LS_HAS_EPISODES | LS_HAS_GC;
	a->ticks.starvation_episodes = 2;
	a->microtasks.starvation_episodes = 1;
	ls_hist_add(&a->gc, 4000000);
	ls_hist_add(&a->gc, 6000000);
	ls_summarize(a, NULL, 1.0, &s);
	s.runtime = LS_RT_NODE;
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(ls_summary_write_json(&s, NULL, 0, f), 0);
	fclose(f);
	o = cJSON_Parse(buf);
	assert_non_null(o);
	t = cJSON_GetObjectItemCaseSensitive(o, "ticks");
	m = cJSON_GetObjectItemCaseSensitive(o, "microtasks");
	assert_true(num(t, "starvation_episodes") == 2);
	assert_true(num(m, "starvation_episodes") == 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t, "drains")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "max_drain_s")));
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "phases"));	/* light tier */
	g = cJSON_GetObjectItemCaseSensitive(o, "gc");
	assert_non_null(g);
	assert_true(num(g, "count") == 2);
	assert_true(num(g, "total_s") > 0.00999 && num(g, "total_s") < 0.01001);
	assert_true(num(g, "max_s") == 0.006);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(g, "p99_s"));
	cJSON_Delete(o);
	free(buf);
	free(a);
}

/* Deep copies own their loops; free zeroes; find returns the latest run of a PID. */
static void test_snapshot_copy_find(void **state)
{
	struct ls_snapshot s = { 0 }, c = { 0 };

	(void)state;
	s.ntargets = 3;
	s.targets = calloc(3, sizeof(*s.targets));
	assert_non_null(s.targets);
	s.targets[0].pid = 10;
	s.targets[0].nloops = 2;
	s.targets[0].loops = calloc(2, sizeof(struct ls_loop_snapshot));
	s.targets[0].loops[1].iterations = 5;
	s.targets[1].pid = 11;
	s.targets[2].pid = 10;
	s.targets[2].state = LS_TARGET_ATTACHED;
	s.targets[0].state = LS_TARGET_EXITED;

	assert_int_equal(ls_snapshot_copy(&c, &s), 0);
	assert_int_equal(c.ntargets, 3);
	assert_ptr_not_equal(c.targets[0].loops, s.targets[0].loops);
	assert_int_equal(c.targets[0].loops[1].iterations, 5);
	assert_null(c.targets[1].loops);
	assert_ptr_equal(ls_snapshot_find(&c, 10), &c.targets[2]);
	assert_ptr_equal(ls_snapshot_find(&c, 11), &c.targets[1]);
	assert_null(ls_snapshot_find(&c, 12));
	ls_snapshot_free(&s);
	assert_int_equal(s.ntargets, 0);
	assert_null(s.targets);
	assert_int_equal(c.targets[0].loops[1].iterations, 5);	/* independent of s */
	ls_snapshot_free(&c);
	ls_snapshot_free(&c);	/* idempotent */
}

/* serve's interval utilization (core/view.c) from two snapshots of a Node loop as
 * nodeuv.c fills them: busy_ns/idle_ns already run to the collect, the span in
 * progress included. Over [1 s, 2 s] the loop polled until 1.5 s and ran since:
 * utilization 0.5, not more (the span since live_since_ns must not count twice). */
static void test_view_utilization_span_in_progress(void **state)
{
	static struct ls_loop_snapshot l;
	struct ls_target_snapshot t;
	struct ls_snapshot s;
	struct ls_view v = { .keep_exited_ns = 30000000000ull };
	const struct ls_loop_interval *p;
	const uint64_t ms = 1000000;

	(void)state;
	memset(&t, 0, sizeof(t));
	memset(&s, 0, sizeof(s));
	t.pid = 4321;
	t.runtime = LS_RT_NODE;
	t.state = LS_TARGET_ATTACHED;
	t.nloops = 1;
	t.loops = &l;
	s.ntargets = 1;
	s.targets = &t;
	l.tid = 4321;
	l.has = LS_HAS_DELAY | LS_HAS_EPISODES | LS_HAS_NOT_POLLING;

	/* 1 s: ran [0, 0.5), polling since 0.5 s (counted in idle_ns up to now) */
	s.mono_ns = 1000 * ms;
	l.busy_ns = 500 * ms;
	l.idle_ns = 500 * ms;
	l.live_state = LS_LIVE_POLLING;
	l.live_since_ns = 500 * ms;
	ls_view_update(&v, &s);
	/* 2 s: polled until 1.5 s, running since (counted in busy_ns up to now) */
	s.mono_ns = 2000 * ms;
	l.busy_ns = 1000 * ms;
	l.idle_ns = 1000 * ms;
	l.live_state = LS_LIVE_RUNNING;
	l.live_since_ns = 1500 * ms;
	ls_view_update(&v, &s);
	p = ls_view_loop(&v, 4321, 4321);
	assert_non_null(p);
	if (p->utilization < 0.499 || p->utilization > 0.501)
		fail_msg("utilization %.3f over [1 s, 2 s], want 0.500", p->utilization);

	/* 3 s: the callback started at 1.5 s still runs: the whole interval is busy */
	s.mono_ns = 3000 * ms;
	l.busy_ns = 2000 * ms;
	ls_view_update(&v, &s);
	p = ls_view_loop(&v, 4321, 4321);
	assert_true(p->utilization > 0.999);

	/* 4 s: back in the poll wait since 3.25 s */
	s.mono_ns = 4000 * ms;
	l.busy_ns = 2250 * ms;
	l.idle_ns = 1750 * ms;
	l.live_state = LS_LIVE_POLLING;
	l.live_since_ns = 3250 * ms;
	ls_view_update(&v, &s);
	p = ls_view_loop(&v, 4321, 4321);
	if (p->utilization < 0.249 || p->utilization > 0.251)
		fail_msg("utilization %.3f over [3 s, 4 s], want 0.250", p->utilization);
	ls_view_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summarize_delta),
		cmocka_unit_test(test_summarize_empty),
		cmocka_unit_test(test_json_schema),
		cmocka_unit_test(test_json_node_schema),
		cmocka_unit_test(test_snapshot_copy_find),
		cmocka_unit_test(test_view_utilization_span_in_progress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
