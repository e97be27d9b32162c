/* timer.c: timers on a binary min-heap ordered by (due time, start sequence), so
 * equal deadlines fire in start order (libuv's timer.c). The heap is an array of
 * pointers; each timer knows its index, so stop is O(log n). */
#include <stdlib.h>

#include "lsl_internal.h"

#define NS_PER_MS 1000000ull

static inline int timer_less(const lsl_timer_t *a, const lsl_timer_t *b)
{
	if (a->due_ns != b->due_ns)
		return a->due_ns < b->due_ns;
	return a->seq < b->seq;
}

static inline void heap_set(lsl_loop_t *loop, size_t i, lsl_timer_t *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

static void sift_up(lsl_loop_t *loop, size_t i)
{
	lsl_timer_t *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_less(t, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void sift_down(lsl_loop_t *loop, size_t i)
{
	lsl_timer_t *t = loop->heap[i];
	size_t n = loop->heap_n;

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		lsl_timer_t *best = t;

		if (l < n && timer_less(loop->heap[l], best)) {
			m = l;
			best = loop->heap[l];
		}
		if (r < n && timer_less(loop->heap[r], best))
			m = r;
		if (m == i)
			break;
		heap_set(loop, i, loop->heap[m]);
		i = m;
	}
	heap_set(loop, i, t);
}

static int heap_insert(lsl_loop_t *loop, lsl_timer_t *t)
{
	if (loop->heap_n == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
		lsl_timer_t **h = realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->heap_cap = cap;
	}
	heap_set(loop, loop->heap_n++, t);
	sift_up(loop, t->heap_index);
	return 0;
}

static void heap_remove(lsl_loop_t *loop, lsl_timer_t *t)
{
	size_t i = t->heap_index;
	lsl_timer_t *last = loop->heap[--loop->heap_n];

	if (i != loop->heap_n) {
		heap_set(loop, i, last);
		if (i > 0 && timer_less(last, loop->heap[(i - 1) / 2]))
			sift_up(loop, i);
		else
			sift_down(loop, i);
	}
	t->heap_index = SIZE_MAX;
}

int lsl_timer_init(lsl_loop_t *loop, lsl_timer_t *t)
{
	if (!loop || !t)
		return -EINVAL;
	lsl__handle_init(loop, &t->h, LSL__TIMER);
	t->h.data = NULL;
	t->cb = NULL;
	t->due_ns = 0;
	t->repeat_ns = 0;
	t->seq = 0;
	t->heap_index = SIZE_MAX;
	return 0;
}

void lsl__timer_stop_internal(lsl_timer_t *t)
{
	if (t->heap_index != SIZE_MAX)
		heap_remove(t->h.loop, t);
	t->due_ns = 0;
	lsl__handle_stop(&t->h);
}

static int timer_arm(lsl_timer_t *t, uint64_t due)
{
	lsl_loop_t *loop = t->h.loop;
	int err;

	t->due_ns = due;
	t->seq = loop->timer_seq++;
	err = heap_insert(loop, t);
	if (err) {
		t->due_ns = 0;
		return err;
	}
	lsl__handle_start(&t->h);
	return 0;
}

int lsl_timer_start(lsl_timer_t *t, lsl_timer_cb cb, int64_t delay_ms, int64_t repeat_ms)
{
	int err = lsl__handle_check(t ? &t->h : NULL, LSL__TIMER);

	if (err)
		return err;
	if (!cb || delay_ms < 0 || repeat_ms < 0)
		return -EINVAL;
	/* Node: setTimeout(fn, 0) waits 1 ms. */
	if (delay_ms < 1)
		delay_ms = 1;
	if (delay_ms > INT64_MAX / (int64_t)NS_PER_MS / 2)
		return -EINVAL;
	if (repeat_ms > INT64_MAX / (int64_t)NS_PER_MS / 2)
		return -EINVAL;
	lsl__timer_stop_internal(t);
	t->cb = cb;
	t->repeat_ns = repeat_ms ? (uint64_t)repeat_ms * NS_PER_MS : 0;
	return timer_arm(t, t->h.loop->now_ns + (uint64_t)delay_ms * NS_PER_MS);
}

int lsl_timer_stop(lsl_timer_t *t)
{
	int err = lsl__handle_check(t ? &t->h : NULL, LSL__TIMER);

	if (err)
		return err;
	lsl__timer_stop_internal(t);
	return 0;
}

uint64_t lsl_timer_due_ns(const lsl_timer_t *t)
{
	return t && t->heap_index != SIZE_MAX ? t->due_ns : 0;
}

uint64_t lsl__next_timer_ns(const lsl_loop_t *loop)
{
	return loop->heap_n ? loop->heap[0]->due_ns : 0;
}

/*
 * Run every timer due at the loop's cached now. A repeating timer is re-armed before
 * its callback (repeat after the time it fired at, like libuv), and a timer started
 * by a callback is due at least 1 ms later, so the phase always ends.
 */
void lsl__run_timers(lsl_loop_t *loop, uint32_t *ncb)
{
	while (loop->heap_n) {
		lsl_timer_t *t = loop->heap[0];
		uint64_t due = t->due_ns, fired;
		lsl_timer_cb cb = t->cb;

		if (due > loop->now_ns)
			break;
		heap_remove(loop, t);
		t->due_ns = 0;
		lsl__handle_stop(&t->h);
		if (t->repeat_ns && timer_arm(t, loop->now_ns + t->repeat_ns) != 0)
			t->repeat_ns = 0;	/* out of memory: degrade to one-shot */
		if (loop->rec_on || LSL_PROBE_ON(timer_fired)) {
			fired = lsl_hrtime_ns();
			if (LSL_PROBE_ON(timer_fired))
				LSL_PROBE3(timer_fired, loop, due, fired);
			if (loop->acct.on)
				lsl__series_add(loop, &loop->acct.lateness, fired - due);
		}
		(*ncb)++;
		LSL__CALLBACK(loop, LSL_PROBE_TIMERS, cb, cb(t));
	}
}
