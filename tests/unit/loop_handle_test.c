/* loop_handle_test.c: timers (repeat, cancel, restart, the 1 ms rule), ref/unref,
 * and bad input answered with the documented negative errno, never a crash. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lsl.h"

static lsl_loop_t *new_loop(void)
{
	lsl_loop_t *loop = NULL;

	assert_int_equal(lsl_loop_new(&loop), 0);
	return loop;
}

static int fired;
static void count_cb(lsl_timer_t *t) { fired++; }
static void never_cb(lsl_timer_t *t) { fail_msg("a stopped timer fired"); }

static void io_noop(lsl_io_t *io, int events) { fired++; }
static void noop_task(lsl_loop_t *loop, void *arg) { fired++; }

/* ------------------------------------------------------------ timers */

static void stop_at_five(lsl_timer_t *t)
{
	if (++fired == 5)
		assert_int_equal(lsl_timer_stop(t), 0);
}

static void test_timer_repeat_then_stop(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t t;
	uint64_t t0 = lsl_hrtime_ns();

	fired = 0;
	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, stop_at_five, 2, 2), 0);
	assert_int_equal(lsl_run(loop), 0);	/* ends: the stopped timer is inactive */
	assert_int_equal(fired, 5);
	assert_true(lsl_hrtime_ns() - t0 >= 10 * 1000000ull);	/* 2 ms + 4 x 2 ms */
	assert_false(lsl_is_active(&t.h));
	assert_int_equal(lsl_close(&t.h, NULL), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

static void test_timer_cancel_and_restart(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t a, b;

	fired = 0;
	assert_int_equal(lsl_timer_init(loop, &a), 0);
	assert_int_equal(lsl_timer_init(loop, &b), 0);
	assert_int_equal(lsl_timer_start(&a, never_cb, 5, 0), 0);
	assert_true(lsl_is_active(&a.h));
	assert_int_equal(lsl_timer_stop(&a), 0);
	assert_int_equal(lsl_timer_stop(&a), 0);	/* stopping twice is fine */
	assert_int_equal(lsl_timer_due_ns(&a), 0);
	/* Restarting a started timer replaces the first start: it fires once. */
	assert_int_equal(lsl_timer_start(&b, count_cb, 50, 0), 0);
	assert_int_equal(lsl_timer_start(&b, count_cb, 1, 0), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(fired, 1);
	lsl_close(&a.h, NULL);
	lsl_close(&b.h, NULL);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

static void test_timer_zero_delay_is_one_ms(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t t;

	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, count_cb, 0, 0), 0);
	assert_int_equal(lsl_timer_due_ns(&t) - lsl_now_ns(loop), 1000000u);
	assert_int_equal(lsl_timer_start(&t, count_cb, 7, 0), 0);
	assert_int_equal(lsl_timer_due_ns(&t) - lsl_now_ns(loop), 7000000u);
	lsl_close(&t.h, NULL);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* A timer that stops and closes another one due in the same phase. */
static lsl_timer_t t_first, t_second;

static void first_closes_second(lsl_timer_t *t)
{
	fired++;
	assert_int_equal(lsl_close(&t_second.h, NULL), 0);
	assert_int_equal(lsl_close(&t->h, NULL), 0);
}

static void test_timer_closed_by_sibling(void **state)
{
	lsl_loop_t *loop = new_loop();

	fired = 0;
	assert_int_equal(lsl_timer_init(loop, &t_first), 0);
	assert_int_equal(lsl_timer_init(loop, &t_second), 0);
	assert_int_equal(lsl_timer_start(&t_first, first_closes_second, 1, 0), 0);
	assert_int_equal(lsl_timer_start(&t_second, never_cb, 1, 0), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(fired, 1);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Heap stress: 400 timers with random delays, a quarter stopped and some restarted;
 * they fire in (due time, start order) order and stopped ones never fire. */
#define NSTRESS 400
static lsl_timer_t stress[NSTRESS];
static uint64_t stress_due[NSTRESS], stress_seq[NSTRESS];
static int stress_order[NSTRESS], nfired_stress;

static void stress_cb(lsl_timer_t *t)
{
	stress_order[nfired_stress++] = (int)(t - stress);
}

static void test_timer_heap_order(void **state)
{
	lsl_loop_t *loop = new_loop();
	uint64_t rnd = 88172645463325252ull, seq = 0;
	int i, stopped = 0;

	nfired_stress = 0;
	for (i = 0; i < NSTRESS; i++) {
		rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
		assert_int_equal(lsl_timer_init(loop, &stress[i]), 0);
		assert_int_equal(lsl_timer_start(&stress[i], stress_cb, (int64_t)(rnd % 8), 0), 0);
		stress_due[i] = lsl_timer_due_ns(&stress[i]);
		stress_seq[i] = seq++;
	}
	for (i = 0; i < NSTRESS; i += 4) {
		assert_int_equal(lsl_timer_stop(&stress[i]), 0);
		stress_due[i] = 0;
		stopped++;
	}
	for (i = 2; i < NSTRESS; i += 8) {	/* restart: a later start-order position */
		assert_int_equal(lsl_timer_start(&stress[i], stress_cb, 3, 0), 0);
		stress_due[i] = lsl_timer_due_ns(&stress[i]);
		stress_seq[i] = seq++;
	}
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(nfired_stress, NSTRESS - stopped);
	for (i = 0; i < nfired_stress; i++) {
		int k = stress_order[i];
		assert_int_not_equal(stress_due[k], 0);	/* a stopped timer never fires */
		if (i) {
			int j = stress_order[i - 1];
			assert_true(stress_due[j] < stress_due[k] ||
				    (stress_due[j] == stress_due[k] && stress_seq[j] < stress_seq[k]));
		}
	}
	for (i = 0; i < NSTRESS; i++)
		lsl_close(&stress[i].h, NULL);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* ------------------------------------------------------------ ref / unref */

static void test_unref_does_not_keep_loop_alive(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t bg, fg;
	uint64_t t0 = lsl_hrtime_ns();

	fired = 0;
	assert_int_equal(lsl_timer_init(loop, &bg), 0);
	assert_int_equal(lsl_timer_start(&bg, never_cb, 10000, 0), 0);
	assert_true(lsl_has_ref(&bg.h));
	assert_int_equal(lsl_unref(&bg.h), 0);
	assert_int_equal(lsl_unref(&bg.h), 0);	/* idempotent */
	assert_false(lsl_has_ref(&bg.h));
	assert_false(lsl_loop_alive(loop));
	assert_int_equal(lsl_run(loop), 0);	/* returns at once */
	assert_true(lsl_hrtime_ns() - t0 < 1000000000ull);

	/* Referenced again, with a short foreground timer: ends when fg is done
	 * only if bg is unref'd. */
	assert_int_equal(lsl_ref(&bg.h), 0);
	assert_true(lsl_loop_alive(loop));
	assert_int_equal(lsl_unref(&bg.h), 0);
	assert_int_equal(lsl_timer_init(loop, &fg), 0);
	assert_int_equal(lsl_timer_start(&fg, count_cb, 3, 0), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(fired, 1);
	assert_true(lsl_is_active(&bg.h));
	lsl_close(&bg.h, NULL);
	lsl_close(&fg.h, NULL);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* ------------------------------------------------------------ bad input */

static void test_bad_input(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t t, zeroed;
	lsl_io_t io;
	int fds[2];

	assert_int_equal(lsl_loop_new(NULL), -EINVAL);
	assert_int_equal(lsl_run(NULL), -EINVAL);
	assert_int_equal(lsl_loop_close(NULL), -EINVAL);
	assert_int_equal(lsl_timer_init(NULL, &t), -EINVAL);
	assert_int_equal(lsl_timer_start(NULL, count_cb, 1, 0), -EINVAL);
	assert_int_equal(lsl_next_tick(loop, NULL, NULL), -EINVAL);
	assert_int_equal(lsl_queue_microtask(NULL, noop_task, NULL), -EINVAL);
	assert_int_equal(lsl_set_immediate(loop, NULL, NULL), -EINVAL);
	assert_int_equal(lsl_close(NULL, NULL), -EINVAL);

	/* An uninitialized (zeroed) handle is not a handle. */
	memset(&zeroed, 0, sizeof(zeroed));
	assert_int_equal(lsl_timer_start(&zeroed, count_cb, 1, 0), -EINVAL);
	assert_int_equal(lsl_close(&zeroed.h, NULL), -EINVAL);
	assert_int_equal(lsl_ref(&zeroed.h), -EINVAL);

	/* Negative delay or repeat. */
	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, count_cb, -1, 0), -EINVAL);
	assert_int_equal(lsl_timer_start(&t, count_cb, 5, -2), -EINVAL);
	assert_int_equal(lsl_timer_start(&t, NULL, 5, 0), -EINVAL);
	assert_false(lsl_is_active(&t.h));

	/* Bad fds. */
	assert_int_equal(lsl_io_init(loop, &io, -1), -EBADF);
	assert_int_equal(pipe(fds), 0);
	close(fds[1]);
	assert_int_equal(lsl_io_init(loop, &io, fds[1]), -EBADF);	/* closed */
	assert_int_equal(lsl_io_init(loop, &io, fds[0]), 0);
	assert_int_equal(lsl_io_start(&io, 0, io_noop), -EINVAL);
	assert_int_equal(lsl_io_start(&io, 8, io_noop), -EINVAL);

	/* A loop with open handles refuses to close. */
	assert_int_equal(lsl_loop_close(loop), -EBUSY);

	/* Double close, then use after close: before and after the close callback. */
	assert_int_equal(lsl_close(&t.h, NULL), 0);
	assert_int_equal(lsl_close(&t.h, NULL), -EALREADY);
	assert_int_equal(lsl_timer_start(&t, count_cb, 1, 0), -EBADFD);
	assert_int_equal(lsl_ref(&t.h), -EBADFD);
	assert_true(lsl_is_closing(&t.h));
	assert_int_equal(lsl_close(&io.h, NULL), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_close(&t.h, NULL), -EALREADY);
	assert_int_equal(lsl_timer_start(&t, count_cb, 1, 0), -EBADFD);
	assert_int_equal(lsl_timer_stop(&t), -EBADFD);
	assert_int_equal(lsl_unref(&t.h), -EBADFD);
	assert_int_equal(lsl_io_start(&io, LSL_READABLE, io_noop), -EBADFD);
	assert_int_equal(lsl_io_stop(&io), -EBADFD);
	assert_true(lsl_is_closing(&t.h));
	close(fds[0]);

	/* Type confusion: a timer is not an io watcher. */
	{
		lsl_timer_t t2;
		assert_int_equal(lsl_timer_init(loop, &t2), 0);
		assert_int_equal(lsl_io_start((lsl_io_t *)&t2, LSL_READABLE, io_noop), -EINVAL);
		lsl_close(&t2.h, NULL);
		assert_int_equal(lsl_run(loop), 0);
	}
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* lsl_run inside lsl_run is refused. */
static void reenter_cb(lsl_timer_t *t)
{
	assert_int_equal(lsl_run(t->h.loop), -EBUSY);
	assert_int_equal(lsl_loop_close(t->h.loop), -EBUSY);
	lsl_close(&t->h, NULL);
}

static void test_reentrant_run(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t t;

	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, reenter_cb, 1, 0), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Queued ticks keep a loop from closing until a run drains them. */
static void test_close_with_queued_tasks(void **state)
{
	lsl_loop_t *loop = new_loop();

	fired = 0;
	assert_int_equal(lsl_next_tick(loop, noop_task, NULL), 0);
	assert_int_equal(lsl_set_immediate(loop, noop_task, NULL), 0);
	assert_int_equal(lsl_loop_close(loop), -EBUSY);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(fired, 2);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* lsl_stop ends the run after the current iteration; a second run continues. */
static void stopper(lsl_timer_t *t)
{
	if (++fired == 2)
		lsl_stop(t->h.loop);
	if (fired == 4)
		lsl_close(&t->h, NULL);
}

static void test_stop(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_timer_t t;

	fired = 0;
	assert_int_equal(lsl_timer_init(loop, &t), 0);
	assert_int_equal(lsl_timer_start(&t, stopper, 1, 1), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(fired, 2);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(fired, 4);
	assert_int_equal(lsl_loop_close(loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_repeat_then_stop),
		cmocka_unit_test(test_timer_cancel_and_restart),
		cmocka_unit_test(test_timer_zero_delay_is_one_ms),
		cmocka_unit_test(test_timer_closed_by_sibling),
		cmocka_unit_test(test_timer_heap_order),
		cmocka_unit_test(test_unref_does_not_keep_loop_alive),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_reentrant_run),
		cmocka_unit_test(test_close_with_queued_tasks),
		cmocka_unit_test(test_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
