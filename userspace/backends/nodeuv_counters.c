/* nodeuv_counters.c: libuv's own counters of a loop, read from outside the target
 * (nodeuv_int.h).
 *
 * Two users: a loop that keeps libuv's idle time (Node turns UV_METRICS_IDLE_TIME on)
 * takes its utilization from the counters rather than from the probes, in every
 * tier; and the counters tier (`--probes counters`, probe-plans.md) has nothing else:
 * no probe at all, the main loop's counters read at each tick of a timerfd by a few
 * process_vm_readv calls, stalls told from a loop clock that stops.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "nodeuv_int.h"
#include "proc.h"

/* Counters tier: the main loop, read from outside at each tick of a timerfd. */
struct counters_tier {
	int tfd;
	uint64_t last_time_ms;		/* loop->time at the previous tick */
	uint64_t stall_start_ns;	/* an open stall episode started then, or 0 */
	uint64_t stall_episodes;
	uint64_t longest_ns;		/* longest stall seen */
	uint64_t armed;			/* the stopped clock (ns) the sampler is on for, or 0 */
};

struct libuv_counters *nu__libuv_counters(struct node_priv *p, uint32_t tid, uint64_t loop, int create)
{
	struct libuv_counters *free_slot = NULL;

	for (int i = 0; i < NU_MAX_LOOPS; i++) {
		if (p->uvc[i].tid == tid) {
			/* Its loop's address came after it was made (a worker's loop is known
			 * once its timers have run): the counters are read from now on. */
			if (!p->uvc[i].loop && loop && create)
				p->uvc[i].loop = loop;
			return &p->uvc[i];
		}
		if (!p->uvc[i].tid && !free_slot)
			free_slot = &p->uvc[i];
	}
	if (!free_slot || !create)
		return NULL;
	free_slot->tid = tid;
	free_slot->loop = loop;
	return free_slot;
}

int nu__libuv_counters_read(struct node_priv *p, struct libuv_counters *x, uint64_t now)
{
	uint64_t idle, busy;
	int r;

	if (!x)
		return -ENOENT;
	if (!x->loop)
		return -ENOENT;	/* not known yet: no base taken */
	if (x->base_ns && !x->usable)
		return -ENOTSUP;
	r = lu_metrics_read(p->pid, x->loop, &p->plan.off, &x->m);
	if (!r && !(x->m.flags & LU_METRICS_IDLE_TIME))
		r = -ENOTSUP;
	if (!x->base_ns) {
		x->base_ns = now;
		x->usable = !r;
		x->base_idle = r ? 0 : lu_metrics_idle_at(&x->m, now);
		x->base_count = x->m.loop_count;
	}
	if (r)
		return r;
	idle = lu_metrics_idle_at(&x->m, now) - x->base_idle;
	if (idle > now - x->base_ns)
		idle = now - x->base_ns;
	busy = now - x->base_ns - idle;
	/* cumulative: never backwards, whatever the clocks of two reads did */
	if (idle > x->idle_ns)
		x->idle_ns = idle;
	if (busy > x->busy_ns)
		x->busy_ns = busy;
	return 0;
}

/* A timerfd (the fd the agent waits on for episodes) ticks four times per stall
 * threshold, 10-250 ms apart, and each tick reads the main loop's counters (a few
 * process_vm_readv calls by the agent; nothing in the target). A stall shorter than
 * the threshold plus one tick can fall between two ticks. */
int nu__counters_start(struct node_priv *p, char *err, size_t errlen)
{
	uint64_t tick = p->stall_ns / 4 < 10000000ull ? 10000000ull : p->stall_ns / 4 > 250000000ull ? 250000000ull
												     : p->stall_ns / 4;
	struct itimerspec its = {
		.it_interval = { .tv_nsec = (long)tick }, .it_value = { .tv_nsec = (long)tick },
	};
	struct libuv_counters *x;

	p->ct = calloc(1, sizeof(*p->ct));
	if (!p->ct) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->ct->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->ct->tfd < 0 || timerfd_settime(p->ct->tfd, 0, &its, NULL)) {
		int r = -errno;

		snprintf(err, errlen, "creating the counters timer failed: %s", strerror(-r));
		return r;
	}
	x = nu__libuv_counters(p, (uint32_t)p->pid, p->plan.default_loop, 1);
	if (nu__libuv_counters_read(p, x, ls_now_mono_ns())) {
		snprintf(err, errlen, "--probes counters: reading the loop's counters failed; use --probes light");
		return -EIO;
	}
	p->ct->last_time_ms = x->m.time_ms;
	return 0;
}

void nu__counters_free(struct node_priv *p)
{
	if (p->ct && p->ct->tfd >= 0)
		close(p->ct->tfd);
	free(p->ct);
	p->ct = NULL;
}

int nu__counters_fd(const struct node_priv *p)
{
	return p->ct ? p->ct->tfd : -1;
}

/* One tick: the loop is stalled while, out of its poll wait, it has not refreshed
 * its clock (loop->time, at least once an iteration) for the stall threshold; it
 * started then. It ends when the clock moves or the loop polls again. From a
 * quarter of the threshold on, the sampler takes the loop thread's stacks (the only
 * time anything interrupts it); an episode that ends gets them. */
static void counters_tick(struct node_priv *p)
{
	struct counters_tier *ct = p->ct;
	struct libuv_counters *x = nu__libuv_counters(p, (uint32_t)p->pid, 0, 0);
	uint64_t now = ls_now_mono_ns(), t_ns, end, stopped;
	int moved;

	if (!x || nu__libuv_counters_read(p, x, now))
		return;
	t_ns = x->m.time_ms * 1000000ull;
	moved = x->m.time_ms != ct->last_time_ms || x->m.entry_ns;
	ct->last_time_ms = x->m.time_ms;
	stopped = !moved && now > t_ns ? now - t_ns : 0;	/* how long its clock has not moved */
	if (!ct->armed && stopped && stopped >= p->stall_ns / 4) {
		ct->armed = t_ns;
		nu__ct_arm(p, x->tid, t_ns);
	}
	/* a thread stopped by a debugger or SIGSTOP: its loop is not stalled */
	if (!ct->stall_start_ns && stopped && stopped >= p->stall_ns &&
	    !ls_proc_thread_stopped(p->pid, (uint32_t)p->pid)) {
		struct ls_episode ep = {
			.pid = p->pid, .tid = (uint32_t)p->pid, .kind = LS_EP_STALL, .phase = LS_PHASE_NONE,
			.start_ns = t_ns,
		};

		ct->stall_start_ns = t_ns;
		ct->stall_episodes++;
		if (p->fn)
			p->fn(&ep, p->fn_arg);
	} else if (moved && ct->stall_start_ns) {
		struct ls_episode ep = {
			.pid = p->pid, .tid = (uint32_t)p->pid, .kind = LS_EP_STALL, .phase = LS_PHASE_NONE,
			.start_ns = ct->stall_start_ns,
		};

		end = x->m.entry_ns > ct->stall_start_ns ? x->m.entry_ns
		      : t_ns > ct->stall_start_ns	  ? t_ns
							  : now;
		ep.end_ns = end;
		if (end - ct->stall_start_ns > ct->longest_ns)
			ct->longest_ns = end - ct->stall_start_ns;
		ct->stall_start_ns = 0;
		nu__episode_stacks(p, &ep);
		if (p->fn)
			p->fn(&ep, p->fn_arg);
	}
	if (moved && ct->armed) {
		ct->armed = 0;
		nu__ct_arm(p, x->tid, 0);
	}
}

void nu__counters_consume(struct node_priv *p)
{
	uint64_t ticks;

	if (read(p->ct->tfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
		counters_tick(p);
}

int nu__counters_collect(struct node_priv *p, uint64_t now, struct ls_target_snapshot *out)
{
	struct libuv_counters *x = nu__libuv_counters(p, (uint32_t)p->pid, 0, 0);
	struct ls_loop_snapshot *o;

	if (!x)
		return 0;
	nu__libuv_counters_read(p, x, now);
	if (!out->loops) {
		out->loops = calloc(1, sizeof(*out->loops));
		if (!out->loops)
			return -ENOMEM;
		out->nloops = 1;
		ls_proc_thread_comm(p->pid, x->tid, out->loops[0].name, sizeof(out->loops[0].name));
		/* the tier reads the default loop alone: the main thread's */
		snprintf(out->loops[0].label, sizeof(out->loops[0].label), "main");
	}
	o = &out->loops[0];
	o->tid = x->tid;
	o->has = LS_HAS_COUNTERS | LS_HAS_EPISODES;
	o->iterations = x->m.loop_count - x->base_count;
	o->busy_ns = x->busy_ns;
	o->idle_ns = x->idle_ns;
	/* out is the target's last snapshot, filled again: the tier's own counts first
	 * (it sees no starvation but what the samples show) */
	o->stall_episodes = p->ct->stall_episodes;
	o->ticks.starvation_episodes = 0;
	o->microtasks.starvation_episodes = 0;
	nu__sampled_fill(p, x->tid, p->ct->armed, o);
	o->live_state = x->m.entry_ns ? LS_LIVE_POLLING : LS_LIVE_RUNNING;
	o->live_since_ns = x->m.entry_ns ? x->m.entry_ns : x->m.time_ms * 1000000ull;
	o->live_phase = x->m.entry_ns ? LS_PHASE_POLL : LS_PHASE_NONE;
	return 0;
}
