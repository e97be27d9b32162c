/* loop_stats_test.c: the loop's ground-truth accounting and the probe record a
 * tracer reads. A tracer is simulated by raising the USDT semaphore variable, which
 * is what the kernel does when a uprobe with a reference counter attaches. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "lsl.h"
#include "../../loop/src/lsl_internal.h"	/* the sample store, for exact-quantile tests */

extern volatile unsigned short loopscope_poll_start_semaphore;

#define MS 1000000ull

static lsl_loop_t *new_loop(void)
{
	lsl_loop_t *loop = NULL;

	assert_int_equal(lsl_loop_new(&loop), 0);
	return loop;
}

static void spin(uint64_t ns)
{
	uint64_t end = lsl_hrtime_ns() + ns;

	while (lsl_hrtime_ns() < end) {
	}
}

static int fired;

/* Timed cases measure wall-clock spans: a run during which this thread was
 * preempted (an involuntary context switch: a neighbour took the CPU) is measured
 * again, up to TIMED_TRIES runs; the bounds never change. */
#define TIMED_TRIES 8

static long involuntary_switches(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

/* Three timer callbacks of 20 ms, 30 ms apart. */
static void busy_timer(lsl_timer_t *t)
{
	spin(20 * MS);
	if (++fired == 3)
		lsl_close(&t->h, NULL);
}

static void test_accounting_sanity(void **state)
{
	lsl_loop_t *loop = NULL;
	struct lsl_stats st;
	lsl_timer_t t;
	uint64_t sum = 0;
	int i;

	for (int try = 0; try < TIMED_TRIES; try++) {
		long before = involuntary_switches();

		if (loop)
			assert_int_equal(lsl_loop_close(loop), 0);
		loop = new_loop();
		fired = 0;
		assert_int_equal(lsl_accounting_start(loop), 0);
		assert_true(lsl_accounting_enabled(loop));
		assert_int_equal(lsl_timer_init(loop, &t), 0);
		assert_int_equal(lsl_timer_start(&t, busy_timer, 30, 30), 0);
		assert_int_equal(lsl_run(loop), 0);
		assert_int_equal(lsl_stats_get(loop, &st), 0);
		if (involuntary_switches() == before)
			break;
		print_message("# run %d was preempted: measured again\n", try + 1);
	}

	assert_true(st.iterations >= 3);
	for (i = 0; i < LSL_NPHASES; i++) {
		/* Every iteration runs every phase once. */
		assert_int_equal(st.phase[i].count, st.iterations);
		assert_true(st.phase[i].p50_ns <= st.phase[i].p99_ns);
		assert_true(st.phase[i].p99_ns <= st.phase[i].max_ns);
		sum += st.phase[i].total_ns;
	}
	/* Phases are back to back: their totals add up to the window, minus the
	 * bookkeeping between iterations. */
	assert_true(sum <= st.window_ns);
	assert_true(sum >= st.window_ns - st.window_ns / 50);
	assert_true(st.phase[LSL_PROBE_TIMERS].max_ns >= 20 * MS);
	assert_true(st.phase[LSL_PROBE_TIMERS].max_ns < 30 * MS);
	assert_int_equal(st.timer_lateness.count, 3);
	assert_true(st.timer_lateness.max_ns < 25 * MS);
	assert_true(st.poll_wait_ns <= st.phase[LSL_PROBE_POLL].total_ns);
	assert_true(st.poll_wait_ns >= 20 * MS);	/* 3 x ~10 ms sleeps, at least */
	assert_true(st.utilization > 0.3 && st.utilization < 0.97);	/* 60 of ~90 ms */
	/* One delay sample per iteration but the first (no earlier poll return). */
	assert_int_equal(st.delay.count, st.iterations - 1);
	assert_true(st.delay.max_ns >= 20 * MS);
	assert_int_equal(st.stall_episodes, 0);
	assert_int_equal(st.samples_dropped, 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Exact quantiles, nearest rank: 1000 samples 1..1000 us fed in a scrambled order
 * through the loop's own sample store. p50 is the 500th, p99 the 990th. */
static void test_exact_quantiles(void **state)
{
	lsl_loop_t *loop = new_loop();
	struct lsl_stats st;
	uint64_t i;

	assert_int_equal(lsl_accounting_start(loop), 0);
	for (i = 0; i < 1000; i++)
		lsl__series_add(loop, &loop->acct.delay, ((i * 7919) % 1000 + 1) * 1000);
	lsl__series_add(loop, &loop->acct.lateness, 5000000000ull);	/* past 32 bits */
	assert_int_equal(lsl_stats_get(loop, &st), 0);
	assert_int_equal(st.delay.count, 1000);
	assert_int_equal(st.delay.p50_ns, 500000);
	assert_int_equal(st.delay.p99_ns, 990000);
	assert_int_equal(st.delay.max_ns, 1000000);
	assert_int_equal(st.delay.total_ns, 500500000);
	/* A sample past 4.29 s (32 bits): kept whole, the quantiles too. */
	assert_int_equal(st.timer_lateness.max_ns, 5000000000ull);
	assert_int_equal(st.timer_lateness.total_ns, 5000000000ull);
	assert_int_equal(st.timer_lateness.p99_ns, 5000000000ull);
	assert_int_equal(st.timer_lateness.p50_ns, 5000000000ull);
	assert_int_equal(st.samples_dropped, 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Past LSL_STATS_MAX_SAMPLES a series keeps a uniform reservoir: quantiles stay
 * close, count/total/max exact, and samples_dropped says they are estimates. */
static void test_reservoir_past_the_cap(void **state)
{
	lsl_loop_t *loop = new_loop();
	struct lsl_stats st;
	uint64_t i, n = 3ull * LSL_STATS_MAX_SAMPLES;

	assert_int_equal(lsl_accounting_start(loop), 0);
	for (i = 0; i < n; i++)
		lsl__series_add(loop, &loop->acct.delay, ((i * 7919) % 1000 + 1) * 1000);
	assert_int_equal(lsl_stats_get(loop, &st), 0);
	assert_int_equal(st.delay.count, n);
	assert_int_equal(st.samples_dropped, n - LSL_STATS_MAX_SAMPLES);
	assert_int_equal(st.delay.max_ns, 1000000);
	assert_true(st.delay.p50_ns >= 490000 && st.delay.p50_ns <= 510000);
	assert_true(st.delay.p99_ns >= 985000 && st.delay.p99_ns <= 995000);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* A nextTick drain past the threshold counts as one starvation episode. */
static void tick_chain(lsl_loop_t *loop, void *arg)
{
	uint64_t *deadline = arg;

	spin(10000);
	if (lsl_hrtime_ns() < *deadline)
		lsl_next_tick(loop, tick_chain, arg);
}

static uint64_t chain_deadline;
static void start_chain(lsl_timer_t *t)
{
	chain_deadline = lsl_hrtime_ns() + 15 * MS;
	lsl_next_tick(t->h.loop, tick_chain, &chain_deadline);
	lsl_queue_microtask(t->h.loop, tick_chain, &chain_deadline);	/* short: deadline passed */
	lsl_close(&t->h, NULL);
}

static void test_starvation_threshold(void **state)
{
	lsl_loop_t *loop = NULL;
	struct lsl_stats st;
	lsl_timer_t t;

	for (int try = 0; try < TIMED_TRIES; try++) {
		long before = involuntary_switches();

		if (loop)
			assert_int_equal(lsl_loop_close(loop), 0);
		loop = new_loop();
		assert_int_equal(lsl_set_starvation_threshold(loop, 0), -EINVAL);
		assert_int_equal(lsl_set_starvation_threshold(loop, 10 * MS), 0);
		assert_int_equal(lsl_accounting_start(loop), 0);
		assert_int_equal(lsl_timer_init(loop, &t), 0);
		assert_int_equal(lsl_timer_start(&t, start_chain, 1, 0), 0);
		assert_int_equal(lsl_run(loop), 0);
		assert_int_equal(lsl_stats_get(loop, &st), 0);
		if (involuntary_switches() == before)
			break;
		print_message("# run %d was preempted: measured again\n", try + 1);
	}
	assert_int_equal(st.starvation_threshold_ns, 10 * MS);
	assert_int_equal(st.ticks.drains, 1);
	assert_true(st.ticks.callbacks > 100);
	assert_true(st.ticks.max_drain_ns >= 14 * MS);	/* the deadline was set just before */
	assert_int_equal(st.ticks.starvation_episodes, 1);
	assert_int_equal(st.microtasks.drains, 1);
	assert_int_equal(st.microtasks.callbacks, 1);
	assert_int_equal(st.microtasks.starvation_episodes, 0);
	assert_int_equal(st.stall_episodes, 1);		/* the timers phase ran > 10 ms */
	/* The list holds both, in order: the drain ends (inside the timer's callback)
	 * before the timers phase does. */
	assert_int_equal(st.nepisodes, 2);
	assert_int_equal(st.episodes_dropped, 0);
	assert_int_equal(st.episodes[0].kind, LSL_EPISODE_TICK_STARVATION);
	assert_int_equal(st.episodes[0].phase, LSL_PROBE_TIMERS);
	assert_int_equal(st.episodes[0].duration_ns, st.ticks.max_drain_ns);
	assert_int_equal(st.episodes[0].callbacks, st.ticks.callbacks);
	assert_int_equal(st.episodes[1].kind, LSL_EPISODE_STALL);
	assert_int_equal(st.episodes[1].phase, LSL_PROBE_TIMERS);
	assert_true(st.episodes[1].duration_ns >= st.episodes[0].duration_ns);
	assert_true(st.episodes[1].start_ns <= st.episodes[0].start_ns);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Accounting off: nothing counted, and the record stays untouched. */
static void quick(lsl_timer_t *t)
{
	if (++fired == 5)
		lsl_close(&t->h, NULL);
}

static void test_off_means_off(void **state)
{
	lsl_loop_t *loop = new_loop();
	struct lsl_stats st;
	const struct lsl_probe_record *rec = lsl_probe_record(loop);
	lsl_timer_t t;

	fired = 0;
	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, quick, 1, 1), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_stats_get(loop, &st), 0);
	assert_int_equal(st.iterations, 0);
	assert_int_equal(st.window_ns, 0);
	assert_int_equal(rec->abi, LSL_PROBE_ABI);
	assert_int_equal(rec->size, sizeof(*rec));
	assert_int_equal(rec->iteration, 0);
	assert_int_equal(rec->phase[LSL_PROBE_TIMERS].start_ns, 0);
	assert_true(lsl_iterations(loop) >= 5);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* A tracer on poll_start alone (no accounting) makes the loop fill the record. */
static uint64_t seen_iteration;
static void check_record(lsl_timer_t *t)
{
	const struct lsl_probe_record *rec = lsl_probe_record(t->h.loop);
	int i;

	if (++fired < 3)
		return;
	/* In the timers phase of iteration N: the record shows N, live phase timers,
	 * and the runs of the previous iteration's phases, in order, back to back. */
	assert_int_equal(rec->iteration, lsl_iterations(t->h.loop));
	assert_int_equal(rec->live_phase, LSL_PROBE_TIMERS);
	assert_true(rec->live_phase_since_ns > 0);
	for (i = LSL_PROBE_PENDING; i < LSL_PROBE_NPHASES; i++) {
		assert_true(rec->phase[i].start_ns > 0);
		assert_true(rec->phase[i].end_ns >= rec->phase[i].start_ns);
	}
	for (i = LSL_PROBE_PENDING + 1; i < LSL_PROBE_NPHASES; i++)
		assert_int_equal(rec->phase[i].start_ns, rec->phase[i - 1].end_ns);
	assert_true(rec->phase[LSL_PROBE_POLL].end_ns - rec->phase[LSL_PROBE_POLL].start_ns >= 500000u);
	assert_int_equal(rec->last_iter_end_ns, rec->phase[LSL_PROBE_CLOSE].end_ns);
	assert_true(rec->last_iter_start_ns <= rec->phase[LSL_PROBE_PENDING].start_ns);
	seen_iteration = rec->iteration;
	lsl_close(&t->h, NULL);
}

static void test_record_filled_when_traced(void **state)
{
	lsl_loop_t *loop = new_loop();
	struct lsl_stats st;
	lsl_timer_t t;

	fired = 0;
	assert_int_equal(lsl_probe_enabled("poll_start"), 0);
	assert_int_equal(lsl_probe_enabled("no_such_probe"), -EINVAL);
	loopscope_poll_start_semaphore++;
	assert_int_equal(lsl_probe_enabled("poll_start"), 1);
	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, check_record, 1, 1), 0);
	assert_int_equal(lsl_run(loop), 0);
	loopscope_poll_start_semaphore--;
	assert_true(seen_iteration >= 3);
	assert_int_equal(lsl_stats_get(loop, &st), 0);
	assert_int_equal(st.iterations, 0);	/* tracing alone does not account */
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* The JSON carries the schema's keys and the numbers in seconds. */
static void test_json(void **state)
{
	struct lsl_stats st;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *keys[] = {
		"\"pid\":42,", "\"tid\":43,", "\"comm\":\"we\\\"ird\"", "\"runtime\":\"reference\"",
		"\"interval_s\":2.000000000", "\"iterations\":7,", "\"utilization\":0.250000",
		"\"phases\":{\"timers\":{\"total_s\":0.001500000,\"count\":7,\"p50_s\":0.000100000,\"p99_s\":0.001000000,\"max_s\":0.001000000}",
		"\"pending\":{", "\"idle\":{", "\"prepare\":{", "\"poll\":{", "\"check\":{", "\"close\":{",
		"\"delay\":{\"count\":6,\"p50_s\":0.000002000,\"p99_s\":0.000003000,\"max_s\":0.000004000}",
		"\"timer_lateness\":{\"count\":0,",
		"\"ticks\":{\"drains\":3,\"callbacks\":9,\"max_drain_s\":0.150000000,\"starvation_episodes\":1}",
		"\"microtasks\":{\"drains\":0,",
		"\"poll_wait_s\":1.500000000", "\"stall_episodes\":2,", "\"samples_dropped\":3,",
		"\"episodes\":[{\"kind\":\"stall\",\"phase\":\"check\",\"start_s\":5.000000000,"
		"\"duration_s\":0.200000000,\"callbacks\":1},{\"kind\":\"microtask_starvation\","
		"\"phase\":\"none\",\"start_s\":6.000000000,\"duration_s\":0.150000000,\"callbacks\":9}],"
		"\"episodes_dropped\":0}",
	};
	const struct lsl_episode eps[] = {
		{ .start_ns = 5000 * MS, .duration_ns = 200 * MS, .kind = LSL_EPISODE_STALL,
		  .phase = LSL_PROBE_CHECK, .callbacks = 1 },
		{ .start_ns = 6000 * MS, .duration_ns = 150 * MS, .kind = LSL_EPISODE_MICROTASK_STARVATION,
		  .phase = LSL_NPHASES, .callbacks = 9 },
	};
	size_t i;

	assert_non_null(f);
	memset(&st, 0, sizeof(st));
	st.window_ns = 2000 * MS;
	st.iterations = 7;
	st.utilization = 0.25;
	st.phase[0] = (struct lsl_quantiles){ 7, 1500000, 100000, 1000000, 1000000 };
	st.delay = (struct lsl_quantiles){ 6, 0, 2000, 3000, 4000 };
	st.ticks = (struct lsl_drain_stats){ 3, 9, 0, 150 * MS, 1 };
	st.poll_wait_ns = 1500 * MS;
	st.stall_episodes = 2;
	st.samples_dropped = 3;
	st.episodes = eps;
	st.nepisodes = 2;
	assert_int_equal(lsl_stats_write_json(&st, f, 42, 43, "we\"ird"), 0);
	fclose(f);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strstr(buf, keys[i]))
			fail_msg("missing %s in %s", keys[i], buf);
	assert_int_equal(buf[len - 1], '\n');
	assert_int_equal(lsl_stats_write_json(NULL, stdout, 1, 1, ""), -EINVAL);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accounting_sanity),
		cmocka_unit_test(test_exact_quantiles),
		cmocka_unit_test(test_reservoir_past_the_cap),
		cmocka_unit_test(test_starvation_threshold),
		cmocka_unit_test(test_off_means_off),
		cmocka_unit_test(test_record_filled_when_traced),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
