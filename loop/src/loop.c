/* loop.c: lsl_run, one named function per phase (libuv's uv_run shape), the
 * nextTick/microtask drain, and the per-iteration probe record. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lsl_internal.h"

#ifndef LSL_NO_PROBES
/* The USDT semaphores: a tracer increments one when it attaches that probe. */
#define LSL__SEM_DEF(name) \
	__extension__ volatile unsigned short loopscope_##name##_semaphore \
		__attribute__((unused, section(".probes"))) = 0;
LSL__PROBES(LSL__SEM_DEF)
#endif

_Static_assert((int)LSL_DRAIN_TICKS == (int)LSL_EPISODE_TICK_STARVATION &&
	       (int)LSL_DRAIN_MICROTASKS == (int)LSL_EPISODE_MICROTASK_STARVATION, "drain = episode kind");

const char *const lsl_phase_names[LSL_NPHASES] = {
	"timers", "pending", "idle", "prepare", "poll", "check", "close",
};

uint64_t lsl_hrtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lsl_loop_new(lsl_loop_t **loopp)
{
	lsl_loop_t *loop;
	int err;

	if (!loopp)
		return -EINVAL;
	*loopp = NULL;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		err = -errno;
		free(loop);
		return err;
	}
	lsl__queue_init(&loop->handles);
	lsl__queue_init(&loop->idle_q);
	lsl__queue_init(&loop->prepare_q);
	lsl__queue_init(&loop->check_q);
	loop->starvation_threshold_ns = 100 * 1000000ull;
	loop->rec.abi = LSL_PROBE_ABI;
	loop->rec.size = sizeof(loop->rec);
	loop->rec.live_phase = LSL_PROBE_NONE;
	loop->now_ns = lsl_hrtime_ns();
	*loopp = loop;
	return 0;
}

static void task_list_free(struct lsl__task_list *l)
{
	struct lsl__task *t, *n;

	for (t = l->head; t; t = n) {
		n = t->next;
		free(t);
	}
	l->head = l->tail = NULL;
	l->n = 0;
}

int lsl_loop_close(lsl_loop_t *loop)
{
	struct lsl__task *t, *n;

	if (!loop)
		return -EINVAL;
	if (loop->running || loop->open_handles || loop->active_reqs || loop->ticks.head ||
	    loop->microtasks.head || loop->immediates.head || loop->pending.head)
		return -EBUSY;
	lsl__pool_destroy(loop);
	for (t = loop->task_free; t; t = n) {
		n = t->next;
		free(t);
	}
	task_list_free(&loop->ticks);
	task_list_free(&loop->microtasks);
	free(loop->heap);
	free(loop->events);
	free(loop->read_buf);
	lsl__acct_free(&loop->acct);
	close(loop->epfd);
	free(loop);
	return 0;
}

uint64_t lsl_now_ns(const lsl_loop_t *loop) { return loop ? loop->now_ns : 0; }
uint64_t lsl_now_ms(const lsl_loop_t *loop) { return loop ? loop->now_ns / 1000000u : 0; }
void lsl_update_time(lsl_loop_t *loop) { if (loop) loop->now_ns = lsl_hrtime_ns(); }
uint64_t lsl_iterations(const lsl_loop_t *loop) { return loop ? loop->iteration : 0; }
void lsl_stop(lsl_loop_t *loop) { if (loop) loop->stop_flag = 1; }

const struct lsl_probe_record *lsl_probe_record(const lsl_loop_t *loop)
{
	return loop ? &loop->rec : NULL;
}

int lsl_probe_enabled(const char *probe)
{
	if (!probe)
		return -EINVAL;
#ifndef LSL_NO_PROBES
#define LSL__SEM_CMP(name) \
	if (!strcmp(probe, #name)) \
		return loopscope_##name##_semaphore != 0;
	LSL__PROBES(LSL__SEM_CMP)
	return -EINVAL;
#else
	return -ENOTSUP;
#endif
}

int lsl_loop_alive(const lsl_loop_t *loop)
{
	return loop && (loop->active_handles || loop->active_reqs || loop->closing_head ||
			loop->pending.head);
}

/* ---------------------------------------------------------------- tasks */

int lsl__task_push(lsl_loop_t *loop, struct lsl__task_list *l, lsl_task_cb cb, void *arg)
{
	struct lsl__task *t = loop->task_free;

	if (t) {
		loop->task_free = t->next;
		loop->task_free_n--;
	} else {
		t = malloc(sizeof(*t));
		if (!t)
			return -ENOMEM;
	}
	t->next = NULL;
	t->cb = cb;
	t->arg = arg;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
	return 0;
}

/* Pop the head, recycle its node, and hand back what to call. */
static inline void task_pop(lsl_loop_t *loop, struct lsl__task_list *l, lsl_task_cb *cb, void **arg)
{
	struct lsl__task *t = l->head;

	l->head = t->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	*cb = t->cb;
	*arg = t->arg;
	lsl__task_recycle(loop, t);
}

int lsl_next_tick(lsl_loop_t *loop, lsl_task_cb cb, void *arg)
{
	if (!loop || !cb)
		return -EINVAL;
	loop->ticks_queued_total++;
	return lsl__task_push(loop, &loop->ticks, cb, arg);
}

int lsl_queue_microtask(lsl_loop_t *loop, lsl_task_cb cb, void *arg)
{
	if (!loop || !cb)
		return -EINVAL;
	loop->microtasks_queued_total++;
	return lsl__task_push(loop, &loop->microtasks, cb, arg);
}

int lsl_set_immediate(lsl_loop_t *loop, lsl_task_cb cb, void *arg)
{
	int err;

	if (!loop || !cb)
		return -EINVAL;
	err = lsl__task_push(loop, &loop->immediates, cb, arg);
	if (!err)
		loop->active_reqs++;
	return err;
}

/*
 * One drain: run the queue until it is empty, including what the callbacks add.
 * kind is LSL_DRAIN_TICKS or LSL_DRAIN_MICROTASKS. Timestamps are taken only when
 * the record, accounting or a drain probe needs them.
 */
static void drain(lsl_loop_t *loop, int kind)
{
	struct lsl__task_list *l = kind == LSL_DRAIN_TICKS ? &loop->ticks : &loop->microtasks;
	uint64_t *queued_total = kind == LSL_DRAIN_TICKS ? &loop->ticks_queued_total
							 : &loop->microtasks_queued_total;
	uint64_t queued0 = *queued_total, ran = 0, t0 = 0, t1, d;
	int probe_start = kind == LSL_DRAIN_TICKS ? LSL_PROBE_ON(tick_drain_start)
						  : LSL_PROBE_ON(microtask_drain_start);
	int probe_end = kind == LSL_DRAIN_TICKS ? LSL_PROBE_ON(tick_drain_end)
						: LSL_PROBE_ON(microtask_drain_end);
	int timed = loop->rec_on || probe_end;
	lsl_task_cb cb;
	void *arg;

	if (timed)
		t0 = lsl_hrtime_ns();
	if (probe_start) {
		size_t n = l->n;
		if (kind == LSL_DRAIN_TICKS)
			LSL_PROBE2(tick_drain_start, loop, n);
		else
			LSL_PROBE2(microtask_drain_start, loop, n);
	}
	if (loop->rec_on) {
		loop->rec.live_drain = kind;
		loop->rec.live_drain_since_ns = t0;
		loop->rec.live_drain_callbacks = 0;
	}
	while (l->head) {
		task_pop(loop, l, &cb, &arg);
		cb(loop, arg);
		ran++;
		loop->rec.live_drain_callbacks = ran;
	}
	if (timed) {
		uint64_t queued = *queued_total - queued0;
		t1 = lsl_hrtime_ns();
		d = t1 - t0;
		if (probe_end) {
			if (kind == LSL_DRAIN_TICKS)
				LSL_PROBE4(tick_drain_end, loop, t0, ran, queued);
			else
				LSL_PROBE4(microtask_drain_end, loop, t0, ran, queued);
		}
		if (loop->acct.on) {
			struct lsl_drain_stats *s = kind == LSL_DRAIN_TICKS ? &loop->acct.ticks
									    : &loop->acct.microtasks;
			s->drains++;
			s->callbacks += ran;
			s->total_ns += d;
			if (d > s->max_drain_ns)
				s->max_drain_ns = d;
			if (d > loop->starvation_threshold_ns) {
				uint32_t ph = loop->rec.live_phase;

				s->starvation_episodes++;
				/* Same numbers: LSL_DRAIN_TICKS/MICROTASKS = the *_STARVATION kinds. */
				lsl__episode_add(loop, (uint32_t)kind, ph < LSL_NPHASES ? ph : LSL_NPHASES, t0, d,
						 ran);
			}
		}
	}
	loop->rec.live_drain = LSL_DRAIN_NONE;
}

/* Node's processTicksAndRejections: every tick, then every microtask, until both are
 * empty. Ticks queued by microtasks therefore wait for the microtask queue. */
void lsl__after_callback(lsl_loop_t *loop)
{
	if (loop->in_drain)
		return;		/* never nested: the running drain picks up what was queued */
	loop->in_drain = 1;
	do {
		if (loop->ticks.head)
			drain(loop, LSL_DRAIN_TICKS);
		if (loop->microtasks.head)
			drain(loop, LSL_DRAIN_MICROTASKS);
	} while (loop->ticks.head);
	loop->in_drain = 0;
}

void lsl__callback_probe_start(lsl_loop_t *loop, int phase, const void *fn)
{
	LSL_PROBE3(callback_start, loop, phase, fn);
}

void lsl__callback_probe_end(lsl_loop_t *loop, int phase)
{
	LSL_PROBE2(callback_end, loop, phase);
}

/* ---------------------------------------------------------------- phases */

static void run_pending(lsl_loop_t *loop, uint32_t *ncb)
{
	struct lsl__task_list l = loop->pending;
	lsl_task_cb cb;
	void *arg;

	/* Completions deferred by this phase's callbacks wait for the next iteration. */
	memset(&loop->pending, 0, sizeof(loop->pending));
	while (l.head) {
		task_pop(loop, &l, &cb, &arg);
		(*ncb)++;
		LSL__CALLBACK(loop, LSL_PROBE_PENDING, cb, cb(loop, arg));
	}
}

/* The epoll timeout for this iteration, in ms (-1 = infinite). */
static int backend_timeout(const lsl_loop_t *loop)
{
	uint64_t next, diff;

	if (loop->stop_flag || loop->immediates.head || loop->nidle || loop->pending.head ||
	    loop->closing_head || !lsl_loop_alive(loop))
		return 0;
	next = lsl__next_timer_ns(loop);
	if (!next)
		return -1;
	if (next <= loop->now_ns)
		return 0;
	diff = next - loop->now_ns;
	/* Round up: waking before the due time would only spin another iteration. */
	diff = (diff + 999999u) / 1000000u;
	return diff > INT_MAX ? INT_MAX : (int)diff;
}

/* Phase bracket. *t is the previous boundary's timestamp (valid while rec_on): one
 * clock read per boundary serves as this phase's end and the next one's start.
 * traced is a constant in each inlined copy (see run_phase): 0 leaves nothing behind. */
static inline __attribute__((always_inline)) void phase_enter(lsl_loop_t *loop, int ph, uint64_t t,
							      const int traced)
{
	if (!traced)
		return;
	if (loop->rec_on) {
		loop->rec.live_phase = ph;
		loop->rec.live_phase_since_ns = t;
		if (ph != LSL_PROBE_POLL)	/* poll's run is updated after poll_start */
			loop->rec.phase[ph].start_ns = t;
	}
	if (LSL_PROBE_ON(phase_start))
		LSL_PROBE2(phase_start, loop, ph);
}

static inline __attribute__((always_inline)) void phase_leave(lsl_loop_t *loop, int ph, uint32_t ncb,
							      uint64_t *t, uint64_t wait_ns,
							      const int traced)
{
	if (!traced)
		return;
	if (loop->rec_on) {
		/* A phase that ran no callback ends where it began, without a clock read:
		 * the few ns it spent looking at an empty queue go to the next phase. */
		uint64_t now = ncb || ph == LSL_PROBE_POLL ? lsl_hrtime_ns() : *t, d = now - *t;
		loop->rec.phase[ph].end_ns = now;
		loop->rec.phase[ph].callbacks = ncb;
		loop->rec.live_phase = LSL_PROBE_NONE;
		loop->rec.live_phase_since_ns = now;
		if (loop->acct.on) {
			lsl__series_add(loop, &loop->acct.phase[ph], d);
			if (d - wait_ns > loop->starvation_threshold_ns) {
				loop->acct.stall_episodes++;
				lsl__episode_add(loop, LSL_EPISODE_STALL, ph, now - (d - wait_ns), d - wait_ns,
						 ncb);
			}
		}
		*t = now;
	}
	if (LSL_PROBE_ON(phase_end))
		LSL_PROBE3(phase_end, loop, ph, ncb);
}

static inline __attribute__((always_inline)) int run_poll(lsl_loop_t *loop, uint64_t *t,
							  const int traced)
{
	uint32_t ncb = 0;
	uint64_t wait_ns = 0;
	int timeout, nev = 0, err;

	phase_enter(loop, LSL_PROBE_POLL, *t, traced);
	timeout = backend_timeout(loop);
	if (timeout > 0) {
		/* About to sleep: callbacks may have run long since the iteration began,
		 * and a wait computed from that stale time would wake the timer late. */
		loop->now_ns = lsl_hrtime_ns();
		timeout = backend_timeout(loop);
	}
	if (traced) {
		if (loop->acct.on && loop->last_poll_return_ns)
			lsl__series_add(loop, &loop->acct.delay, *t - loop->last_poll_return_ns);
		if (LSL_PROBE_ON(poll_start))
			LSL_PROBE3(poll_start, loop, timeout, &loop->rec);
		if (loop->rec_on)
			loop->rec.phase[LSL_PROBE_POLL].start_ns = *t;
	}
	err = lsl__io_poll(loop, timeout, &ncb, &wait_ns, &nev);
	if (traced && loop->acct.on)
		loop->acct.poll_wait_ns += wait_ns;
	phase_leave(loop, LSL_PROBE_POLL, ncb, t, wait_ns, traced);
	return err;
}

#ifndef LSL_NO_PROBES
/* Branch-free: any iteration-level probe enabled. */
#define ITER_PROBES_ANY()                                                                  \
	((loopscope_iter_start_semaphore | loopscope_iter_end_semaphore |                  \
	  loopscope_phase_start_semaphore | loopscope_phase_end_semaphore |                \
	  loopscope_poll_start_semaphore | loopscope_poll_end_semaphore) != 0)
#define RECORD_PROBES_ANY() \
	((loopscope_poll_start_semaphore | loopscope_poll_end_semaphore) != 0)
#else
#define ITER_PROBES_ANY() 0
#define RECORD_PROBES_ANY() 0
#endif

/*
 * One iteration is lsl_run's list of phase calls, as in libuv's uv_run. Each phase
 * call runs its phase in one of two inlined copies, chosen by it->traced: untraced,
 * with no probe site, timestamp or record write at phase level, or traced, while
 * accounting is on or any iteration-level probe (iter_*, phase_*, poll_*) is enabled.
 * So an untraced iteration pays for a few semaphore loads and one predictable branch
 * per phase, not for a check at every probe site. An untraced iteration looks at the
 * semaphores again after timers, before the poll and after the poll wait, so an
 * iteration running (or blocked in epoll) when a tracer attaches is traced from there.
 */
struct iter {
	uint64_t t;		/* the last phase boundary (kept while traced and rec_on) */
	uint64_t t_iter;	/* when the iteration began; 0 if traced only from the middle */
	int traced;
};

/* A tracer appeared in the middle of an untraced iteration: trace the rest of it.
 * Returns the boundary time to go on from. it is not passed in, so that it never
 * escapes lsl_run and stays in registers. */
static __attribute__((noinline, cold)) uint64_t trace_from_here(lsl_loop_t *loop)
{
	loop->rec_on = loop->acct.on | RECORD_PROBES_ANY();
	loop->rec.iteration = loop->iteration;
	loop->last_poll_return_ns = 0;	/* this iteration's poll return was not timed */
	return lsl_hrtime_ns();
}

static inline __attribute__((always_inline)) void iter_start(lsl_loop_t *loop, struct iter *it)
{
	loop->iteration++;
	it->t = it->t_iter = loop->now_ns = lsl_hrtime_ns();
	if (unlikely(loop->acct.want != loop->acct.on))
		lsl__acct_apply(loop, it->t);
	/* The record is filled while accounting or a record reader is attached. */
	loop->rec_on = loop->acct.on | RECORD_PROBES_ANY();
	it->traced = loop->rec_on | ITER_PROBES_ANY();
	if (likely(!it->traced))
		return;
	if (loop->rec_on)
		loop->rec.iteration = loop->iteration;
	if (loop->acct.on)
		loop->acct.iterations++;
	if (LSL_PROBE_ON(iter_start))
		LSL_PROBE2(iter_start, loop, loop->iteration);
}

/* fn is a constant at every call, so each copy calls it directly. */
static inline __attribute__((always_inline)) void run_phase(lsl_loop_t *loop, struct iter *it, int ph,
							    void (*fn)(lsl_loop_t *, uint32_t *))
{
	uint32_t ncb = 0;

	if (likely(!it->traced)) {
		fn(loop, &ncb);
		return;
	}
	phase_enter(loop, ph, it->t, 1);
	fn(loop, &ncb);
	phase_leave(loop, ph, ncb, &it->t, 0, 1);
}

static inline __attribute__((always_inline)) void run_timers(lsl_loop_t *loop, struct iter *it)
{
	uint32_t ncb = 0;

	if (it->traced) {
		run_phase(loop, it, LSL_PROBE_TIMERS, lsl__run_timers);
		return;
	}
	/* Untraced, the record still says "timers since t" (two stores): a tracer
	 * attaching during a long timer callback, the commonest stall, sees it live,
	 * and the check below lets it count it. */
	loop->rec.live_phase = LSL_PROBE_TIMERS;
	loop->rec.live_phase_since_ns = it->t;
	lsl__run_timers(loop, &ncb);
	loop->rec.live_phase = LSL_PROBE_NONE;
	if (unlikely(ITER_PROBES_ANY())) {
		it->t = trace_from_here(loop);
		it->traced = 1;
		if (loop->rec_on) {
			loop->rec.phase[LSL_PROBE_TIMERS].start_ns = it->t_iter;
			loop->rec.phase[LSL_PROBE_TIMERS].end_ns = it->t;
			loop->rec.phase[LSL_PROBE_TIMERS].callbacks = ncb;
			loop->rec.live_phase_since_ns = it->t;
		}
	}
}

static inline __attribute__((always_inline)) int io_poll(lsl_loop_t *loop, struct iter *it)
{
	int err;

	if (!it->traced && unlikely(ITER_PROBES_ANY())) {
		it->t = trace_from_here(loop);
		it->traced = 1;
		it->t_iter = 0;
	}
	if (it->traced)
		return run_poll(loop, &it->t, 1);
	err = run_poll(loop, &it->t, 0);
	if (!err && unlikely(ITER_PROBES_ANY())) {	/* attached while we waited */
		it->t = trace_from_here(loop);
		it->traced = 1;
		it->t_iter = 0;
	}
	return err;
}

static inline __attribute__((always_inline)) void iter_end(lsl_loop_t *loop, const struct iter *it)
{
	if (likely(!it->traced))
		return;
	if (loop->rec_on && it->t_iter) {
		loop->rec.last_iter_start_ns = it->t_iter;
		loop->rec.last_iter_end_ns = it->t;
	}
	if (LSL_PROBE_ON(iter_end))
		LSL_PROBE2(iter_end, loop, loop->iteration);
}

/* The exported registry (ABI: lsl_probes.h). Initialized, so it sits in .data. */
__attribute__((visibility("default"), used)) struct lsl_probe_registry lsl_probe_registry = {
	.abi = LSL_PROBE_ABI,
	.max = LSL_PROBE_REGISTRY_MAX,
};

/* Claim a registry slot for a running loop; -1 when all are taken. */
static int registry_add(lsl_loop_t *loop)
{
	for (int i = 0; i < LSL_PROBE_REGISTRY_MAX; i++) {
		struct lsl_probe_registry_slot *s = &lsl_probe_registry.slot[i];
		__u64 expect = 0;

		if (__atomic_compare_exchange_n(&s->record, &expect, (__u64)(uintptr_t)&loop->rec, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			__atomic_store_n(&s->tid, (__u32)gettid(), __ATOMIC_RELEASE);
			return i;
		}
	}
	return -1;
}

static void registry_del(int i)
{
	if (i < 0)
		return;
	__atomic_store_n(&lsl_probe_registry.slot[i].tid, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&lsl_probe_registry.slot[i].record, 0, __ATOMIC_RELEASE);
}

int lsl_run(lsl_loop_t *loop)
{
	int err = 0, slot;

	if (!loop)
		return -EINVAL;
	if (loop->running)
		return -EBUSY;
	loop->running = 1;
	loop->stop_flag = 0;
	/* What the "main script" queued runs before the first iteration, as in Node. */
	lsl__after_callback(loop);

	slot = registry_add(loop);
	while (!loop->stop_flag && lsl_loop_alive(loop)) {
		struct iter it;

		iter_start(loop, &it);
		run_timers(loop, &it);
		run_phase(loop, &it, LSL_PROBE_PENDING, run_pending);
		run_phase(loop, &it, LSL_PROBE_IDLE, lsl__run_idle);
		run_phase(loop, &it, LSL_PROBE_PREPARE, lsl__run_prepare);
		err = io_poll(loop, &it);
		if (err)
			break;
		run_phase(loop, &it, LSL_PROBE_CHECK, lsl__run_check);
		run_phase(loop, &it, LSL_PROBE_CLOSE, lsl__run_closing);
		iter_end(loop, &it);
	}
	registry_del(slot);
	loop->rec_on = 0;
	loop->rec.live_phase = LSL_PROBE_NONE;
	loop->running = 0;
	if (loop->acct.want != loop->acct.on)
		lsl__acct_apply(loop, lsl_hrtime_ns());
	return err;
}
