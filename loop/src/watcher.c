/* watcher.c: idle, prepare and check handles, generated from one macro (libuv's
 * loop-watcher.c), and the immediates of the check phase. */
#include <string.h>

#include "lsl_internal.h"

/* Each pass first moves the queue aside, so a callback may start or stop any
 * watcher (itself included) safely: stopped ones leave the aside queue, started
 * ones join the live queue and run from the next iteration. */
#define LSL__WATCHER_DEFINE(name, TYPE, PHASE, counter)                          \
	int lsl_##name##_init(lsl_loop_t *loop, lsl_##name##_t *w)               \
	{                                                                        \
		if (!loop || !w)                                                 \
			return -EINVAL;                                          \
		lsl__handle_init(loop, &w->h, TYPE);                             \
		w->h.data = NULL;                                                \
		w->cb = NULL;                                                    \
		lsl__queue_init(&w->wnode);                                      \
		return 0;                                                        \
	}                                                                        \
	int lsl_##name##_start(lsl_##name##_t *w, lsl_##name##_cb cb)            \
	{                                                                        \
		int err = lsl__handle_check(w ? &w->h : NULL, TYPE);             \
		if (err)                                                         \
			return err;                                              \
		if (!cb)                                                         \
			return -EINVAL;                                          \
		w->cb = cb;                                                      \
		if (w->h.flags & LSL__ACTIVE)                                    \
			return 0;                                                \
		lsl__queue_insert_tail(&w->h.loop->name##_q, &w->wnode);         \
		counter(w->h.loop, 1);                                           \
		lsl__handle_start(&w->h);                                        \
		return 0;                                                        \
	}                                                                        \
	static void name##_stop_internal(lsl_##name##_t *w)                      \
	{                                                                        \
		if (!(w->h.flags & LSL__ACTIVE))                                 \
			return;                                                  \
		lsl__queue_remove(&w->wnode);                                    \
		counter(w->h.loop, -1);                                          \
		lsl__handle_stop(&w->h);                                         \
	}                                                                        \
	int lsl_##name##_stop(lsl_##name##_t *w)                                 \
	{                                                                        \
		int err = lsl__handle_check(w ? &w->h : NULL, TYPE);             \
		if (err)                                                         \
			return err;                                              \
		name##_stop_internal(w);                                         \
		return 0;                                                        \
	}                                                                        \
	void lsl__run_##name(lsl_loop_t *loop, uint32_t *ncb)                    \
	{                                                                        \
		struct lsl__queue aside, *q;                                     \
		lsl__queue_move(&loop->name##_q, &aside);                        \
		while (!lsl__queue_empty(&aside)) {                              \
			lsl_##name##_t *w;                                       \
			q = aside.next;                                          \
			w = container_of(q, lsl_##name##_t, wnode);              \
			lsl__queue_remove(q);                                    \
			lsl__queue_insert_tail(&loop->name##_q, q);              \
			(*ncb)++;                                                \
			LSL__CALLBACK(loop, PHASE, w->cb, w->cb(w));             \
		}                                                                \
	}

#define COUNT_IDLE(loop, d) ((loop)->nidle += (uint32_t)(d))
#define COUNT_NONE(loop, d) ((void)(loop), (void)(d))

LSL__WATCHER_DEFINE(idle, LSL__IDLE, LSL_PROBE_IDLE, COUNT_IDLE)
LSL__WATCHER_DEFINE(prepare, LSL__PREPARE, LSL_PROBE_PREPARE, COUNT_NONE)
/* The check phase's handles; lsl__run_check below adds the immediates. */
void lsl__run_check_handles(lsl_loop_t *loop, uint32_t *ncb);
#define lsl__run_check lsl__run_check_handles
LSL__WATCHER_DEFINE(check, LSL__CHECK, LSL_PROBE_CHECK, COUNT_NONE)
#undef lsl__run_check

void lsl__watcher_stop_any(lsl_handle_t *h)
{
	switch (h->type) {
	case LSL__IDLE:
		idle_stop_internal((lsl_idle_t *)h);
		break;
	case LSL__PREPARE:
		prepare_stop_internal((lsl_prepare_t *)h);
		break;
	case LSL__CHECK:
		check_stop_internal((lsl_check_t *)h);
		break;
	}
}

/* Check handles, then the immediates queued before this phase began (Node's
 * processImmediate: ones queued meanwhile wait for the next iteration). */
void lsl__run_check(lsl_loop_t *loop, uint32_t *ncb)
{
	struct lsl__task_list l;

	if (!lsl__queue_empty(&loop->check_q))
		lsl__run_check_handles(loop, ncb);
	if (!loop->immediates.head)
		return;
	l = loop->immediates;
	memset(&loop->immediates, 0, sizeof(loop->immediates));
	while (l.head) {
		struct lsl__task *t = l.head;
		lsl_task_cb cb = t->cb;
		void *arg = t->arg;

		l.head = t->next;
		lsl__task_recycle(loop, t);
		loop->active_reqs--;
		(*ncb)++;
		LSL__CALLBACK(loop, LSL_PROBE_CHECK, cb, cb(loop, arg));
	}
}
