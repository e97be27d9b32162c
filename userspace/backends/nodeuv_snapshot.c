/* nodeuv_snapshot.c: the probe set's loops map into loop snapshots (nodeuv_int.h).
 *
 * One record per loop thread in the kernel (struct nu_loop, bpf/nodeuv.h) becomes an
 * ls_loop_snapshot: its histograms and counters as they are, the span in progress
 * counted up to now, utilization from libuv's own counters where the loop keeps idle
 * time (nodeuv_counters.c), episodes moved between kinds by their stack samples
 * (nodeuv_stacks.c), the live state, and the loop's name ("main", "worker N").
 */
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "stack_raw.h"	/* struct ls_leaf, in the skeleton's .bss */
#include "nodeuv.skel.h"
#include "nodeuv_int.h"
#include "proc.h"

/* What the program calls the loop at addr: "main" for the default loop, "worker N"
 * for a worker_thread's, N its threadId (Node hands them out from 1, never twice).
 * A worker's loop is the member of node::worker::WorkerThreadData that follows its
 * Worker* (src/node_worker.cc, the same in Node 18 to 26), so the Worker is the
 * pointer just below the loop, and its thread_id_ offset comes from the code of the
 * Worker constructor (make_plan). The id must lie below Node's counter of ids handed
 * out; "" when anything does not hold (the front ends show the comm). */
/* Is loop the one Node's platform runs its delayed tasks on? That loop is a
 * member of WorkerThreadsTaskRunner::DelayedTaskScheduler, and the uv_async_t
 * that wakes it (flush_tasks_, whose callback is FlushTasks) follows it: an
 * async handle within PLATFORM_SCAN bytes past the loop whose loop field points
 * back to it and whose async_cb is FlushTasks. */
#define PLATFORM_SCAN 1024
#define ASYNC_LOOP 8		/* uv_async_t: its loop (UV_HANDLE_FIELDS, x86-64) */
#define ASYNC_CB 96		/* its async_cb, right after the handle fields */
static int is_platform_loop(struct node_priv *p, uint64_t loop)
{
	const struct node_plan *pl = &p->plan;
	uint64_t w[(PLATFORM_SCAN + ASYNC_CB + 8) / 8];

	if (!pl->sym[S_PLATFORM_FLUSH].addr || ls_proc_read_mem(p->pid, loop, w, sizeof(w)))
		return 0;
	for (size_t i = 1; i * 8 <= PLATFORM_SCAN; i++)
		if (w[i + ASYNC_LOOP / 8] == loop && w[i + ASYNC_CB / 8] == pl->sym[S_PLATFORM_FLUSH].addr + pl->bias)
			return 1;
	return 0;
}

static void name_loop(struct node_priv *p, uint64_t loop, char *out, size_t len)
{
	const struct node_plan *pl = &p->plan;
	uint64_t worker, id, next;

	out[0] = 0;
	if (!loop)
		return;
	if (pl->sym[S_DEFAULT_LOOP].addr && loop == pl->sym[S_DEFAULT_LOOP].addr + pl->bias) {
		snprintf(out, len, "main");
		return;
	}
	if (is_platform_loop(p, loop)) {
		snprintf(out, len, "platform");
		return;
	}
	if (!pl->have_worker_ids || ls_proc_read_mem(p->pid, loop - 8, &worker, 8) ||
	    ls_proc_read_mem(p->pid, worker + pl->worker_thread_id, &id, 8) ||
	    ls_proc_read_mem(p->pid, pl->sym[S_NEXT_THREAD_ID].addr + pl->bias, &next, 8) || !id || id >= next)
		return;
	snprintf(out, len, "worker %llu", (unsigned long long)id);
}

/* The thread Node's platform names DelayedTaskScheduler's (22 on; "node" before). */
#define PLATFORM_THREAD "DelayedTaskSche"

/* The label of the loop on tid, named once per (thread, loop). A loop seen by the
 * epoll tracepoints only has no address yet: the platform's thread name still says
 * what it is. */
static const char *loop_label(struct node_priv *p, uint32_t tid, uint64_t loop, const char *comm)
{
	struct loop_label *l = NULL;

	for (size_t i = 0; i < p->nlabels && !l; i++)
		if (p->labels[i].tid == tid)
			l = &p->labels[i];
	/* full (threads come and go): take over a slot, it is named again */
	if (!l)
		l = &p->labels[p->nlabels < NU_MAX_LOOPS ? p->nlabels++ : tid % NU_MAX_LOOPS];
	if (l->tid != tid || l->loop != loop || !l->label[0]) {
		l->tid = tid;
		l->loop = loop;
		name_loop(p, loop, l->label, sizeof(l->label));
		if (!loop && !strcmp(comm, PLATFORM_THREAD))
			snprintf(l->label, sizeof(l->label), "platform");
	}
	return l->label;
}

/* A thread seen only leaving a wait that began before the attach, which ran no
 * iteration and ended before it was ever reported: nothing of it reads as a loop. It
 * is how the platform's loop on Node 18 and 20 (its thread named "node") shows when
 * Node wakes it to stop at exit; from 22 on its thread name labels it (loop_label). */
static int woke_only_to_end(const struct nu_loop *v, const char *prev_name)
{
	return !prev_name && !v->loop_addr && !v->iterations && !v->stall_episodes && !v->tick_episodes &&
	       !v->micro_episodes;
}

static int fill_loop(struct node_priv *p, uint32_t tid, const struct nu_loop *v, const char *prev_name,
		     uint64_t now, struct ls_loop_snapshot *o)
{
	const struct node_plan *pl = &p->plan;

	memset(o, 0, sizeof(*o));
	o->tid = tid;
	if (prev_name && prev_name[0]) {
		snprintf(o->name, sizeof(o->name), "%s", prev_name);
	} else if (ls_proc_thread_comm(p->pid, tid, o->name, sizeof(o->name))) {
		if (woke_only_to_end(v, prev_name))	/* and gone already */
			return 1;
		snprintf(o->name, sizeof(o->name), "%.*s", (int)sizeof(v->comm), v->comm);
	}
	snprintf(o->label, sizeof(o->label), "%s", loop_label(p, tid, v->loop_addr, o->name));
	o->has = LS_HAS_DELAY | LS_HAS_EPISODES | LS_HAS_NOT_POLLING;
	if (pl->phases)
		o->has |= LS_HAS_PHASES;
	if (pl->have_timers)
		o->has |= LS_HAS_TIMERS;
	if (pl->have_gc)
		o->has |= LS_HAS_GC;
	o->iterations = v->iterations;
	o->busy_ns = v->busy_ns;
	o->idle_ns = v->idle_ns;
	/* the span in progress counts up to now */
	if (v->idle_mark_ns && now > v->idle_mark_ns)
		o->idle_ns += now - v->idle_mark_ns;
	else if (!v->idle_mark_ns && v->busy_mark_ns && now > v->busy_mark_ns)
		o->busy_ns += now - v->busy_mark_ns;
	/* Where libuv keeps the loop's idle time, utilization is what Node's
	 * eventLoopUtilization() computes from it: its idle span runs from just before
	 * the blocking epoll call to just before the first callback (or to after the
	 * post-poll pending queue), a little longer than the syscall the probes time. */
	if (pl->metrics_ok) {
		struct libuv_counters *x = nu__libuv_counters(p, tid, v->loop_addr ? v->loop_addr
								  : tid == (uint32_t)p->pid ? pl->default_loop : 0, 1);
		int fresh = x && !x->base_ns;

		if (x && !nu__libuv_counters_read(p, x, now)) {
			/* The counters count from their base; a loop whose address came later
			 * (a worker's, at its first poll) was counted by the probes till then,
			 * and its figures go on from there instead of going back to 0. */
			if (fresh) {
				x->off_busy = o->busy_ns;
				x->off_idle = o->idle_ns;
			}
			o->busy_ns = x->off_busy + x->busy_ns;
			o->idle_ns = x->off_idle + x->idle_ns;
		}
	}
	for (int i = 0; i < LS_NPHASES; i++)
		o->phase[i] = v->phase[i];
	o->iteration = v->iteration;
	o->delay = v->delay;
	o->not_polling = v->not_polling;
	o->poll_wait = v->poll_wait;
	o->timer_lateness = v->timer_lateness;
	o->gc = v->gc;
	for (int i = 0; i <= LS_NPHASES; i++)
		o->gc_phase_ns[i] = v->gc_phase_ns[i];
	o->stall_episodes = v->stall_episodes;
	o->ticks.starvation_episodes = v->tick_episodes;
	o->microtasks.starvation_episodes = v->micro_episodes;
	nu__sampled_fill(p, tid, !v->ep_enter_ns ? v->ep_exit_ns : 0, o);
	if (pl->poll_mode == POLL_ENTRY) {
		struct libuv_counters *x = nu__libuv_counters(p, tid, 0, 0);

		if (x && x->usable && x->m.entry_ns) {
			o->live_state = LS_LIVE_POLLING;
			o->live_since_ns = x->m.entry_ns;
			o->live_phase = LS_PHASE_POLL;
		} else {
			o->live_state = v->poll_entry_ns ? LS_LIVE_RUNNING : LS_LIVE_UNKNOWN;
			o->live_since_ns = v->poll_entry_ns;
			if (x && x->usable && x->m.idle_ns > v->mx_idle)
				o->live_since_ns += x->m.idle_ns - v->mx_idle;
			o->live_phase = pl->phases ? v->live_phase : LS_PHASE_NONE;
		}
	} else if (v->ep_enter_ns && v->ep_timeout != 0) {
		o->live_state = LS_LIVE_POLLING;
		o->live_since_ns = v->ep_enter_ns;
		o->live_phase = LS_PHASE_POLL;
	} else {
		o->live_state = v->ep_exit_ns ? LS_LIVE_RUNNING : LS_LIVE_UNKNOWN;
		o->live_since_ns = v->ep_exit_ns;
		o->live_phase = pl->phases ? v->live_phase : LS_PHASE_NONE;
	}
	o->live_phase_since_ns = pl->phases ? v->last_b_ns : 0;
	return 0;
}

struct node_fill_ctx {
	struct node_priv *p;
	uint64_t now;
};

static int node_fill(void *ctx, uint32_t tid, const void *val, const char *prev_name,
		     struct ls_loop_snapshot *o)
{
	struct node_fill_ctx *c = ctx;

	return fill_loop(c->p, tid, val, prev_name, c->now, o);
}

int nu__loops_collect(struct node_priv *p, uint64_t now, struct ls_target_snapshot *out)
{
	struct node_fill_ctx c = { .p = p, .now = now };

	return ls_collect_loops(bpf_map__fd(p->skel->maps.loops), p->val, NU_MAX_LOOPS, node_fill, &c, out);
}
