/* loop_order_test.c: the reference loop runs callbacks in Node.js's order.
 * Every test ends by closing its loop (lsl_loop_close == 0 means nothing leaked;
 * ASan's leak checker covers the rest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lsl.h"

/* ------------------------------------------------------------ helpers */

static char out[4096];

static void say(const char *s)
{
	if (out[0])
		strncat(out, ",", sizeof(out) - strlen(out) - 1);
	strncat(out, s, sizeof(out) - strlen(out) - 1);
}

static void say_task(lsl_loop_t *loop, void *arg) { say(arg); }

/* setTimeout(fn, ms) with a heap timer that closes (and frees) itself after firing. */
struct timeout {
	lsl_timer_t t;
	lsl_task_cb fn;
	void *arg;
};

static void timeout_free(lsl_handle_t *h) { free(h); }

static void timeout_fire(lsl_timer_t *t)
{
	struct timeout *to = (struct timeout *)t;

	to->fn(t->h.loop, to->arg);
	assert_int_equal(lsl_close(&t->h, timeout_free), 0);
}

static struct timeout *set_timeout(lsl_loop_t *loop, int64_t ms, lsl_task_cb fn, void *arg)
{
	struct timeout *to = calloc(1, sizeof(*to));

	assert_non_null(to);
	to->fn = fn;
	to->arg = arg;
	assert_int_equal(lsl_timer_init(loop, &to->t), 0);
	assert_int_equal(lsl_timer_start(&to->t, timeout_fire, ms, 0), 0);
	return to;
}

static lsl_loop_t *new_loop(void)
{
	lsl_loop_t *loop = NULL;

	out[0] = 0;
	assert_int_equal(lsl_loop_new(&loop), 0);
	return loop;
}

static void finish(lsl_loop_t *loop)
{
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* ------------------------------------------------------------ seed examples */

/* console.log('foo'); setTimeout(() => console.log('bar'), 0); console.log('baz') */
static void test_seed_timeout_after_sync(void **state)
{
	lsl_loop_t *loop = new_loop();

	say("foo");
	set_timeout(loop, 0, say_task, "bar");
	say("baz");
	finish(loop);
	assert_string_equal(out, "foo,baz,bar");
}

/* ... plus Promise.resolve('result').then(console.log) after the setTimeout */
static void test_seed_promise_before_timer(void **state)
{
	lsl_loop_t *loop = new_loop();

	say("foo");
	set_timeout(loop, 0, say_task, "bar");
	assert_int_equal(lsl_queue_microtask(loop, say_task, "result"), 0);
	say("baz");
	finish(loop);
	assert_string_equal(out, "foo,baz,result,bar");
}

/* Promise.resolve().then(m); process.nextTick(t): the tick runs first. */
static void test_seed_tick_before_microtask(void **state)
{
	lsl_loop_t *loop = new_loop();

	assert_int_equal(lsl_queue_microtask(loop, say_task, "microtask"), 0);
	assert_int_equal(lsl_next_tick(loop, say_task, "tick"), 0);
	finish(loop);
	assert_string_equal(out, "tick,microtask");
}

/* processTicksAndRejections: all ticks (also ones queued meanwhile), then all
 * microtasks (also ones queued meanwhile), then ticks queued by microtasks. */
static void micro2_task(lsl_loop_t *loop, void *arg)
{
	say("micro1");
	lsl_next_tick(loop, say_task, "tick3");
	lsl_queue_microtask(loop, say_task, "micro2");
}

static void tick1_task(lsl_loop_t *loop, void *arg)
{
	say("tick1");
	lsl_queue_microtask(loop, micro2_task, NULL);
	lsl_next_tick(loop, say_task, "tick2");
}

static void test_drain_algorithm(void **state)
{
	lsl_loop_t *loop = new_loop();

	assert_int_equal(lsl_next_tick(loop, tick1_task, NULL), 0);
	finish(loop);
	assert_string_equal(out, "tick1,tick2,micro1,micro2,tick3");
}

/* ------------------------------------------------------------ phases */

/* fs.readFile(cb): in cb, setTimeout(0) and setImmediate(): immediate first. */
struct io_case {
	lsl_io_t io;
	int fds[2];
};

static void io_close_cb(lsl_handle_t *h) { say("io-closed"); }

static void io_ready(lsl_io_t *io, int events)
{
	struct io_case *c = (struct io_case *)io;
	char b;

	assert_int_equal(read(c->fds[0], &b, 1), 1);
	set_timeout(io->h.loop, 0, say_task, "timeout");
	assert_int_equal(lsl_set_immediate(io->h.loop, say_task, "immediate"), 0);
	assert_int_equal(lsl_close(&io->h, io_close_cb), 0);
}

static void test_immediate_before_timeout_from_io(void **state)
{
	lsl_loop_t *loop = new_loop();
	struct io_case c;
	int i;

	/* Many rounds: the order must not depend on how fast the machine is. */
	for (i = 0; i < 20; i++) {
		out[0] = 0;
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c.fds), 0);
		assert_int_equal(write(c.fds[1], "x", 1), 1);
		assert_int_equal(lsl_io_init(loop, &c.io, c.fds[0]), 0);
		assert_int_equal(lsl_io_start(&c.io, LSL_READABLE, io_ready), 0);
		assert_int_equal(lsl_run(loop), 0);
		assert_string_equal(out, "immediate,io-closed,timeout");
		close(c.fds[0]);
		close(c.fds[1]);
	}
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* In one iteration: timer -> check (immediate) -> close callback. */
static lsl_timer_t victim;

static void victim_closed(lsl_handle_t *h) { say("close"); }

static void closer_task(lsl_loop_t *loop, void *arg)
{
	say("timer");
	assert_int_equal(lsl_close(&victim.h, victim_closed), 0);
	assert_int_equal(lsl_set_immediate(loop, say_task, "check"), 0);
}

static void noop_timer(lsl_timer_t *t) { fail_msg("victim must never fire"); }

static void test_close_after_check(void **state)
{
	lsl_loop_t *loop = new_loop();

	assert_int_equal(lsl_timer_init(loop, &victim), 0);
	assert_int_equal(lsl_timer_start(&victim, noop_timer, 10000, 0), 0);
	set_timeout(loop, 1, closer_task, NULL);
	finish(loop);
	assert_string_equal(out, "timer,check,close");
}

/* Every phase once, in Node's order, with one handle of each kind. */
static lsl_idle_t idle_h;
static lsl_prepare_t prep_h;
static lsl_check_t check_h;
static int rounds;

static void check_closed(lsl_handle_t *h) { say("close"); }
static void idle_cb(lsl_idle_t *h) { say("idle"); }
static void prep_cb(lsl_prepare_t *h) { say("prepare"); }
static void check_cb(lsl_check_t *h)
{
	say("check");
	if (++rounds == 2) {
		lsl_close(&idle_h.h, NULL);
		lsl_close(&prep_h.h, NULL);
		lsl_close(&check_h.h, check_closed);
	}
}
static void test_phase_order(void **state)
{
	lsl_loop_t *loop = new_loop();

	rounds = 0;
	assert_int_equal(lsl_idle_init(loop, &idle_h), 0);
	assert_int_equal(lsl_prepare_init(loop, &prep_h), 0);
	assert_int_equal(lsl_check_init(loop, &check_h), 0);
	assert_int_equal(lsl_idle_start(&idle_h, idle_cb), 0);
	assert_int_equal(lsl_prepare_start(&prep_h, prep_cb), 0);
	assert_int_equal(lsl_check_start(&check_h, check_cb), 0);
	set_timeout(loop, 1, say_task, "timers");
	usleep(3000);	/* due when the first iteration starts */
	finish(loop);
	assert_string_equal(out, "timers,idle,prepare,check,idle,prepare,check,close");
}

/* Equal deadlines fire in start order, whatever the heap does. */
static void test_equal_deadlines_start_order(void **state)
{
	static const char *names[] = { "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9" };
	lsl_loop_t *loop = new_loop();
	int i;

	/* Other timers around them shuffle the heap. */
	set_timeout(loop, 3, say_task, "early");
	for (i = 0; i < 10; i++)
		set_timeout(loop, 5, say_task, (void *)names[i]);
	set_timeout(loop, 7, say_task, "late");
	set_timeout(loop, 4, say_task, "mid");
	finish(loop);
	assert_string_equal(out, "early,mid,t0,t1,t2,t3,t4,t5,t6,t7,t8,t9,late");
}

/* Ticks and microtasks queued by a timer callback run before the next timer
 * callback of the same iteration. */
static uint64_t iter_a;

static void timer_a(lsl_loop_t *loop, void *arg)
{
	iter_a = lsl_iterations(loop);
	say("A");
	lsl_queue_microtask(loop, say_task, "microA");
	lsl_next_tick(loop, say_task, "tickA");
}

static void timer_b(lsl_loop_t *loop, void *arg)
{
	assert_int_equal(lsl_iterations(loop), iter_a);	/* same iteration */
	say("B");
}

static void test_drain_between_timers(void **state)
{
	lsl_loop_t *loop = new_loop();

	set_timeout(loop, 2, timer_a, NULL);
	set_timeout(loop, 2, timer_b, NULL);
	finish(loop);
	assert_string_equal(out, "A,tickA,microA,B");
}

/* Recursive nextTick keeps the loop from reaching poll: a readable socket is not
 * served until the recursion stops, then it is. */
static struct {
	int fds[2];
	lsl_io_t io;
	uint64_t iteration, deadline;
	int ticks, served, served_ticks;
} st;

static void starving_tick(lsl_loop_t *loop, void *arg)
{
	st.ticks++;
	assert_int_equal(st.served, 0);
	assert_int_equal(lsl_iterations(loop), st.iteration);	/* never left the phase */
	if (lsl_hrtime_ns() < st.deadline)
		lsl_next_tick(loop, starving_tick, NULL);
}

static void sock_ready(lsl_io_t *io, int events)
{
	char b;

	assert_int_equal(read(st.fds[0], &b, 1), 1);
	st.served = 1;
	st.served_ticks = st.ticks;
	/* Served in the poll phase of the iteration the recursion starved. */
	assert_int_equal(lsl_iterations(io->h.loop), st.iteration);
	lsl_close(&io->h, NULL);
}

static void start_starving(lsl_loop_t *loop, void *arg)
{
	st.iteration = lsl_iterations(loop);
	st.deadline = lsl_hrtime_ns() + 50 * 1000000ull;
	assert_int_equal(write(st.fds[1], "x", 1), 1);	/* readable from now on */
	lsl_next_tick(loop, starving_tick, NULL);
}

static void test_recursive_tick_starves_poll(void **state)
{
	lsl_loop_t *loop = new_loop();

	memset(&st, 0, sizeof(st));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, st.fds), 0);
	assert_int_equal(lsl_io_init(loop, &st.io, st.fds[0]), 0);
	assert_int_equal(lsl_io_start(&st.io, LSL_READABLE, sock_ready), 0);
	/* The timer fires in the timers phase, before this iteration's poll. */
	set_timeout(loop, 1, start_starving, NULL);
	finish(loop);
	assert_int_equal(st.served, 1);
	assert_true(st.ticks > 100);
	assert_int_equal(st.served_ticks, st.ticks);	/* only after the last tick */
	close(st.fds[0]);
	close(st.fds[1]);
}

/* The same with a recursive microtask chain. */
static void starving_micro(lsl_loop_t *loop, void *arg)
{
	st.ticks++;
	assert_int_equal(st.served, 0);
	if (lsl_hrtime_ns() < st.deadline)
		lsl_queue_microtask(loop, starving_micro, NULL);
}

static void start_starving_micro(lsl_loop_t *loop, void *arg)
{
	st.iteration = lsl_iterations(loop);
	st.deadline = lsl_hrtime_ns() + 30 * 1000000ull;
	assert_int_equal(write(st.fds[1], "x", 1), 1);
	lsl_queue_microtask(loop, starving_micro, NULL);
}

static void test_recursive_microtask_starves_poll(void **state)
{
	lsl_loop_t *loop = new_loop();

	memset(&st, 0, sizeof(st));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, st.fds), 0);
	assert_int_equal(lsl_io_init(loop, &st.io, st.fds[0]), 0);
	assert_int_equal(lsl_io_start(&st.io, LSL_READABLE, sock_ready), 0);
	set_timeout(loop, 1, start_starving_micro, NULL);
	finish(loop);
	assert_int_equal(st.served, 1);
	assert_int_equal(st.served_ticks, st.ticks);
	close(st.fds[0]);
	close(st.fds[1]);
}

/* Immediates queued by an immediate run in the next iteration (Node). */
static uint64_t imm_iter;

static void imm_second(lsl_loop_t *loop, void *arg)
{
	assert_int_equal(lsl_iterations(loop), imm_iter + 1);
	say("second");
}

static void imm_first(lsl_loop_t *loop, void *arg)
{
	imm_iter = lsl_iterations(loop);
	say("first");
	lsl_set_immediate(loop, imm_second, NULL);
}

static void test_immediate_from_immediate_next_iteration(void **state)
{
	lsl_loop_t *loop = new_loop();

	assert_int_equal(lsl_set_immediate(loop, imm_first, NULL), 0);
	assert_int_equal(lsl_set_immediate(loop, say_task, "sibling"), 0);
	finish(loop);
	assert_string_equal(out, "first,sibling,second");
}

/* The poll wait: 0 with an idle handle or an immediate pending, else until the
 * nearest timer (one blocking wait, not a spin). */
static int idle_runs;
static lsl_idle_t spin_idle;

static void count_idle(lsl_idle_t *h) { idle_runs++; }

static void stop_idle(lsl_loop_t *loop, void *arg)
{
	lsl_close(&spin_idle.h, NULL);
}

static void test_poll_timeout_rules(void **state)
{
	lsl_loop_t *loop = new_loop();
	struct lsl_stats stats;
	uint64_t it0;

	/* A 30 ms timer alone: the loop sleeps in epoll until it is due. */
	assert_int_equal(lsl_accounting_start(loop), 0);
	set_timeout(loop, 30, say_task, "t");
	it0 = lsl_iterations(loop);
	assert_int_equal(lsl_run(loop), 0);
	assert_true(lsl_iterations(loop) - it0 <= 3);
	assert_int_equal(lsl_stats_get(loop, &stats), 0);
	assert_true(stats.poll_wait_ns >= 25000000u);

	/* With an idle handle active the wait is 0: many iterations before the timer. */
	idle_runs = 0;
	assert_int_equal(lsl_stats_reset(loop), 0);
	assert_int_equal(lsl_idle_init(loop, &spin_idle), 0);
	assert_int_equal(lsl_idle_start(&spin_idle, count_idle), 0);
	set_timeout(loop, 20, stop_idle, NULL);
	assert_int_equal(lsl_run(loop), 0);
	assert_true(idle_runs > 50);
	assert_int_equal(lsl_stats_get(loop, &stats), 0);
	assert_true(stats.poll_wait_ns < 5000000u);	/* it never blocked for long */
	assert_int_equal(lsl_loop_close(loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_timeout_after_sync),
		cmocka_unit_test(test_seed_promise_before_timer),
		cmocka_unit_test(test_seed_tick_before_microtask),
		cmocka_unit_test(test_drain_algorithm),
		cmocka_unit_test(test_immediate_before_timeout_from_io),
		cmocka_unit_test(test_close_after_check),
		cmocka_unit_test(test_phase_order),
		cmocka_unit_test(test_equal_deadlines_start_order),
		cmocka_unit_test(test_drain_between_timers),
		cmocka_unit_test(test_recursive_tick_starves_poll),
		cmocka_unit_test(test_recursive_microtask_starves_poll),
		cmocka_unit_test(test_immediate_from_immediate_next_iteration),
		cmocka_unit_test(test_poll_timeout_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
