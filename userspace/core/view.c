/* view.c: per-loop interval state and the filtered view of snapshots (see view.h). */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "stacktab.h"
#include "view.h"

#define LAG_WINDOW_NS 10000000000ull	/* compat lag window: the last 10-20 s */

struct ls_view_loop {
	struct ls_loop_interval p;		/* what the renderer reads */
	uint64_t since[LS_EP_NKINDS];		/* start of the episode in progress */
	uint64_t busy_eff, idle_eff;		/* for the interval utilization */
	uint64_t busy_raw, iters;		/* for busy per iteration (counters tier) */
	int have_eff, seen;
	struct ls_hist base_old, base_new;	/* compat lag window bases */
	uint64_t base_new_ns;
	int nbases;
};

struct ls_view_gone {
	int32_t pid;
	uint64_t at_ns;		/* when we first saw it not attached */
};

int ls_episode_over(uint32_t kind, uint64_t start_ns, const struct ls_loop_snapshot *l, uint64_t mono_ns)
{
	if (mono_ns <= start_ns)
		return 0;
	switch (kind) {
	case LS_EP_STALL:
		return l->live_state == LS_LIVE_POLLING && l->live_since_ns > start_ns;
	case LS_EP_TICK_STARVATION:
	case LS_EP_MICROTASK_STARVATION:
		return ls_drain_starvation_kind(l->live_drain) != kind || l->live_drain_since_ns > start_ns;
	default:
		return 0;
	}
}

int ls_snapshot_pid_attached(const struct ls_snapshot *s, int32_t pid)
{
	for (uint32_t i = 0; i < s->ntargets; i++)
		if (s->targets[i].pid == pid && s->targets[i].state == LS_TARGET_ATTACHED)
			return 1;
	return 0;
}

/* Room for one more element in *arr (n used of *cap, size bytes each). 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? *cap * 2 : 16;
	void *p;

	if (n < *cap)
		return 0;
	p = realloc(*arr, c * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static struct ls_view_loop *loop_find(struct ls_view *v, int32_t pid, uint32_t tid, int create)
{
	struct ls_view_loop *st;

	for (size_t i = 0; i < v->nloops; i++)
		if (v->loops[i].p.pid == pid && v->loops[i].p.tid == tid)
			return &v->loops[i];
	if (!create)
		return NULL;
	if (grow((void **)&v->loops, &v->caploops, v->nloops, sizeof(*v->loops)))
		return NULL;
	st = &v->loops[v->nloops++];
	memset(st, 0, sizeof(*st));
	st->p.pid = pid;
	st->p.tid = tid;
	st->p.utilization = -1;
	st->p.busy_per_iteration_s = -1;
	return st;
}

const struct ls_loop_interval *ls_view_loop(struct ls_view *v, int32_t pid, uint32_t tid)
{
	struct ls_view_loop *st = loop_find(v, pid, tid, 0);
	return st ? &st->p : NULL;
}

void ls_blocked_add(struct ls_loop_interval *p, const char *function, const char *file, uint64_t ns)
{
	for (uint32_t i = 0; i < p->nblocked; i++)
		if (!strncmp(p->blocked[i].function, function, sizeof(p->blocked[i].function) - 1) &&
		    !strncmp(p->blocked[i].file, file, sizeof(p->blocked[i].file) - 1)) {
			p->blocked[i].ns += ns;
			return;
		}
	if (p->nblocked < LS_BLOCKED_TOP) {
		struct ls_blocked *b = &p->blocked[p->nblocked++];

		snprintf(b->function, sizeof(b->function), "%s", function);
		snprintf(b->file, sizeof(b->file), "%s", file);
		b->ns = ns;
		return;
	}
	p->blocked_other.ns += ns;
}

/* The leaf-most native frame of a program's own code: not the kernel's, the vDSO's
 * or a shared library's (libc's clock_gettime is not what blocked a C loop), or NULL. */
static const struct ls_frame *top_own_native(const struct ls_stack_sample *s)
{
	for (uint32_t i = 0; i < s->nframes; i++) {
		const struct ls_frame *f = &s->frames[i];
		const char *m = f->module, *b = m ? strrchr(m, '/') : NULL;

		if (f->kind == LS_FRAME_NATIVE && m && m[0] == '/' && !strstr(b ? b : m, ".so") &&
		    f->function[0] != '[' && strncmp(f->function, "0x", 2))
			return f;
	}
	return NULL;
}

/* A finished episode's time, shared out among its stacks' leaf-most JS functions (a
 * stack without JS, a C loop's: its leaf-most function of the program's own code,
 * with the program as its file). */
static void count_blocked(struct ls_loop_interval *p, const struct ls_episode *ep)
{
	const struct ls_stack_set *set = ep->stacks;
	uint64_t d = ep->end_ns - ep->start_ns, given = 0;

	if (!set->total)
		return;
	for (uint32_t i = 0; i < set->nstacks; i++) {
		const struct ls_frame *f = ls_stack_top_js(&set->stacks[i]);
		uint64_t ns = (uint64_t)((double)d * (double)set->stacks[i].count / (double)set->total);

		if (f)
			ls_blocked_add(p, f->function, f->file ? f->file : "", ns);
		else if ((f = top_own_native(&set->stacks[i])))
			ls_blocked_add(p, f->function, f->module, ns);
		else
			ls_blocked_add(p, "[native]", "", ns);
		given += ns;
	}
	if (d > given && set->nstacks)	/* the stacks past the dominant few */
		p->blocked_other.ns += d - given;
}

void ls_view_episode(struct ls_view *v, const struct ls_episode *ep)
{
	if (ep->kind == LS_EP_TARGET_EXIT) {
		for (size_t i = 0; i < v->nloops; i++)
			if (v->loops[i].p.pid == ep->pid)
				memset(v->loops[i].p.in_progress, 0, sizeof(v->loops[i].p.in_progress));
	} else if (ep->kind < LS_EP_NKINDS) {
		struct ls_view_loop *st = loop_find(v, ep->pid, ep->tid, 1);
		/* Keyed by loop and kind: the end of an episode may carry a start time a little
		 * different from the one announced while it was in progress. */
		if (st) {
			st->p.in_progress[ep->kind] = ep->end_ns == 0;
			st->since[ep->kind] = ep->end_ns == 0 ? ep->start_ns : 0;
			if (ep->end_ns > ep->start_ns && ep->kind != LS_EP_GC && ep->stacks)
				count_blocked(&st->p, ep);
		}
	}
}

/* Busy / idle time up to the snapshot, the span in progress included: every backend
 * counts it up to its collect (refloop adds the span since the last poll boundary,
 * Node's counters run to the read, the probes' marks too; snapshot.h), so a loop stuck
 * in one callback for the whole interval already reads as busy. Adding the span since
 * live_since_ns again counted it twice (utilization read high). */
static void effective_busy_idle(const struct ls_loop_snapshot *l, uint64_t *busy, uint64_t *idle)
{
	*busy = l->busy_ns;
	*idle = l->idle_ns;
}

static void update_utilization(struct ls_view_loop *st, const struct ls_loop_snapshot *l)
{
	uint64_t busy, idle;

	effective_busy_idle(l, &busy, &idle);
	if (st->have_eff && busy >= st->busy_eff && idle >= st->idle_eff &&
	    (busy - st->busy_eff) + (idle - st->idle_eff) > 0) {
		double db = (double)(busy - st->busy_eff), di = (double)(idle - st->idle_eff);
		double u = db / (db + di);
		st->p.utilization = u < 0 ? 0 : u > 1 ? 1 : u;
	}
	if (st->have_eff && l->iterations > st->iters && l->busy_ns >= st->busy_raw)
		st->p.busy_per_iteration_s =
			(double)(l->busy_ns - st->busy_raw) / 1e9 / (double)(l->iterations - st->iters);
	st->busy_raw = l->busy_ns;
	st->iters = l->iterations;
	st->busy_eff = busy;
	st->idle_eff = idle;
	st->have_eff = 1;
}

/* Two bases LAG_WINDOW_NS apart: the window runs from the older. */
static void update_lag_window(struct ls_view_loop *st, const struct ls_loop_snapshot *l, uint64_t mono)
{
	if (!st->nbases) {
		st->base_old = st->base_new = l->delay;
		st->base_new_ns = mono;
		st->nbases = 1;
	} else if (mono - st->base_new_ns >= LAG_WINDOW_NS) {
		st->base_old = st->base_new;
		st->base_new = l->delay;
		st->base_new_ns = mono;
		st->nbases = 2;
	}
	ls_hist_delta(&l->delay, st->nbases == 2 ? &st->base_old : &st->base_new, &st->p.lag_window);
	st->p.lag_window_valid = 1;
}

void ls_view_update(struct ls_view *v, const struct ls_snapshot *s)
{
	for (size_t i = 0; i < v->nloops; i++)
		v->loops[i].seen = 0;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];

		for (uint32_t j = 0; j < t->nloops; j++) {
			const struct ls_loop_snapshot *l = &t->loops[j];
			struct ls_view_loop *st;

			if (t->state != LS_TARGET_ATTACHED && t->exited_ns && s->mono_ns > t->exited_ns &&
			    s->mono_ns - t->exited_ns > v->keep_exited_ns)
				continue;	/* out of the view: its state goes below */
			st = loop_find(v, t->pid, l->tid, 1);
			if (!st)
				continue;
			st->seen = 1;
			if (t->state != LS_TARGET_ATTACHED) {
				/* (Unless the PID came back: the new process owns the state now.) */
				if (!ls_snapshot_pid_attached(s, t->pid))
					memset(st->p.in_progress, 0, sizeof(st->p.in_progress));
				continue;	/* numbers are frozen: keep the last utilization */
			}
			update_utilization(st, l);
			/* Safety net for a lost end-of-episode record (ring buffer full). */
			for (uint32_t k = 0; k < LS_EP_NKINDS; k++)
				if (st->p.in_progress[k] && ls_episode_over(k, st->since[k], l, s->mono_ns))
					st->p.in_progress[k] = 0;
			if (v->compat)
				update_lag_window(st, l, s->mono_ns);
		}
	}
	/* Forget loops that left the view. */
	for (size_t i = 0; i < v->nloops;) {
		if (!v->loops[i].seen)
			v->loops[i] = v->loops[--v->nloops];
		else
			i++;
	}
}

static uint64_t gone_since(struct ls_view *v, int32_t pid, uint64_t now)
{
	for (size_t i = 0; i < v->ngone; i++)
		if (v->gone[i].pid == pid)
			return v->gone[i].at_ns;
	if (grow((void **)&v->gone, &v->capgone, v->ngone, sizeof(*v->gone)))
		return now;
	v->gone[v->ngone].pid = pid;
	v->gone[v->ngone].at_ns = now;
	v->ngone++;
	return now;
}

void ls_view_forget_gone(struct ls_view *v, int32_t pid)
{
	for (size_t i = 0; i < v->ngone; i++)
		if (v->gone[i].pid == pid) {
			v->gone[i] = v->gone[--v->ngone];
			return;
		}
}

int ls_view_make(struct ls_view *v, const struct ls_snapshot *s, struct ls_snapshot *view)
{
	uint64_t now = s->mono_ns;

	*view = *s;
	view->ntargets = 0;
	view->targets = NULL;
	if (!s->ntargets)
		return 0;
	view->targets = malloc(sizeof(*view->targets) * s->ntargets);
	if (!view->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];
		int dup = 0;

		if (t->state != LS_TARGET_ATTACHED) {
			uint64_t at = t->exited_ns ? t->exited_ns : gone_since(v, t->pid, now);
			if (now > at && now - at > v->keep_exited_ns)
				continue;
		}
		/* A later entry for the same PID wins unless the earlier one is attached. */
		for (uint32_t k = 0; k < view->ntargets; k++) {
			if (view->targets[k].pid != t->pid)
				continue;
			dup = 1;
			if (view->targets[k].state != LS_TARGET_ATTACHED || t->state == LS_TARGET_ATTACHED)
				view->targets[k] = *t;
		}
		if (!dup)
			view->targets[view->ntargets++] = *t;
	}
	return 0;
}

void ls_view_free(struct ls_view *v)
{
	free(v->loops);
	free(v->gone);
	v->loops = NULL;
	v->gone = NULL;
	v->nloops = v->caploops = v->ngone = v->capgone = 0;
}
