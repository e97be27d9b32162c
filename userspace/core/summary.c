/* summary.c: interval views of cumulative loop snapshots (ls_summarize) and their
 * JSON form, the schema loopdemo's ground truth uses too. Seconds appear only here,
 * through ls_ns_to_s(). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "snapshot.h"

static uint64_t delta_u64(uint64_t cur, uint64_t prev)
{
	return cur >= prev ? cur - prev : cur;	/* went backwards: the source restarted */
}

/* Interval quantities of one histogram (prev NULL: all of cur). */
static void quant(const struct ls_hist *cur, const struct ls_hist *prev, struct ls_quant *q)
{
	struct ls_hist d;
	const struct ls_hist *h = cur;

	if (prev) {
		ls_hist_delta(cur, prev, &d);
		h = &d;
	}
	q->count = h->count;
	q->total_ns = h->sum;
	q->p50_ns = ls_hist_quantile(h, 0.50);
	q->p99_ns = ls_hist_quantile(h, 0.99);
	q->max_ns = h->count ? h->max : 0;
}

static void drain(const struct ls_drain_stats *cur, const struct ls_drain_stats *prev,
		  struct ls_drain_summary *o)
{
	struct ls_quant q;

	quant(&cur->duration, prev ? &prev->duration : NULL, &q);
	o->drains = delta_u64(cur->drains, prev ? prev->drains : 0);
	o->callbacks = delta_u64(cur->callbacks, prev ? prev->callbacks : 0);
	o->starvation_episodes = delta_u64(cur->starvation_episodes, prev ? prev->starvation_episodes : 0);
	o->max_drain_ns = q.max_ns;
}

void ls_summarize(const struct ls_loop_snapshot *cur, const struct ls_loop_snapshot *prev,
		  double interval_s, struct ls_loop_summary *out)
{
	uint64_t busy, idle;

	memset(out, 0, sizeof(*out));
	out->tid = cur->tid;
	memcpy(out->comm, cur->name, sizeof(out->comm));
	out->comm[sizeof(out->comm) - 1] = '\0';
	memcpy(out->label, cur->label, sizeof(out->label));
	out->label[sizeof(out->label) - 1] = '\0';
	out->has = cur->has;
	out->interval_s = interval_s;
	out->iterations = delta_u64(cur->iterations, prev ? prev->iterations : 0);
	busy = delta_u64(cur->busy_ns, prev ? prev->busy_ns : 0);
	idle = delta_u64(cur->idle_ns, prev ? prev->idle_ns : 0);
	out->utilization = busy + idle ? (double)busy / (double)(busy + idle) : 0.0;
	for (int i = 0; i < LS_NPHASES; i++)
		quant(&cur->phase[i], prev ? &prev->phase[i] : NULL, &out->phase[i]);
	quant(&cur->iteration, prev ? &prev->iteration : NULL, &out->iteration);
	quant(&cur->delay, prev ? &prev->delay : NULL, &out->delay);
	quant(&cur->timer_lateness, prev ? &prev->timer_lateness : NULL, &out->timer_lateness);
	quant(&cur->gc, prev ? &prev->gc : NULL, &out->gc);
	drain(&cur->ticks, prev ? &prev->ticks : NULL, &out->ticks);
	drain(&cur->microtasks, prev ? &prev->microtasks : NULL, &out->microtasks);
	out->poll_wait_ns = idle;
	out->stall_episodes = delta_u64(cur->stall_episodes, prev ? prev->stall_episodes : 0);
	out->busy_per_iteration_ns = out->iterations ? busy / out->iterations : 0;
}

void ls_target_cost(const struct ls_target_snapshot *cur, const struct ls_target_snapshot *prev,
		    double *hits_per_iteration, double *traps_per_iteration)
{
	uint64_t it = 0;

	for (uint32_t i = 0; i < cur->nloops; i++) {
		const struct ls_loop_snapshot *p = NULL;

		for (uint32_t j = 0; prev && j < prev->nloops; j++)
			if (prev->loops[j].tid == cur->loops[i].tid)
				p = &prev->loops[j];
		it += delta_u64(cur->loops[i].iterations, p ? p->iterations : 0);
	}
	*hits_per_iteration = *traps_per_iteration = -1;
	if (!it)
		return;
	*hits_per_iteration = (double)delta_u64(cur->probe_hits, prev ? prev->probe_hits : 0) / (double)it;
	*traps_per_iteration = (double)delta_u64(cur->traps, prev ? prev->traps : 0) / (double)it;
}

static cJSON *quant_json(const struct ls_quant *q, int with_total)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	if (with_total)
		cJSON_AddNumberToObject(o, "total_s", ls_ns_to_s(q->total_ns));
	cJSON_AddNumberToObject(o, "count", (double)q->count);
	cJSON_AddNumberToObject(o, "p50_s", ls_ns_to_s(q->p50_ns));
	cJSON_AddNumberToObject(o, "p99_s", ls_ns_to_s(q->p99_ns));
	cJSON_AddNumberToObject(o, "max_s", ls_ns_to_s(q->max_ns));
	return o;
}

/* A queue's drains. measured = 0 (Node: drains are not probed, starvation is found
 * by stack sampling) gives null for what was not measured, never a made-up 0. */
static cJSON *drain_json(const struct ls_drain_summary *d, int measured)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	if (measured) {
		cJSON_AddNumberToObject(o, "drains", (double)d->drains);
		cJSON_AddNumberToObject(o, "callbacks", (double)d->callbacks);
		cJSON_AddNumberToObject(o, "max_drain_s", ls_ns_to_s(d->max_drain_ns));
	} else {
		cJSON_AddNullToObject(o, "drains");
		cJSON_AddNullToObject(o, "callbacks");
		cJSON_AddNullToObject(o, "max_drain_s");
	}
	cJSON_AddNumberToObject(o, "starvation_episodes", (double)d->starvation_episodes);
	return o;
}

/* [{"share","frames":[{"kind","function","file","line","column","module"}]}], leaf
 * first; file/line/column/module only where known. */
static cJSON *stacks_json(const struct ls_stack_set *set)
{
	cJSON *arr = cJSON_CreateArray();

	for (uint32_t i = 0; arr && set && i < set->nstacks; i++) {
		const struct ls_stack_sample *st = &set->stacks[i];
		cJSON *o = cJSON_CreateObject(), *fr;

		if (!o)
			break;
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "share", set->total ? round(1000.0 * (double)st->count / (double)set->total) / 1000.0 : 0);
		fr = cJSON_AddArrayToObject(o, "frames");
		for (uint32_t k = 0; fr && k < st->nframes; k++) {
			const struct ls_frame *f = &st->frames[k];
			cJSON *j = cJSON_CreateObject();

			if (!j)
				break;
			cJSON_AddItemToArray(fr, j);
			cJSON_AddStringToObject(j, "kind", ls_frame_kind_name(f->kind));
			cJSON_AddStringToObject(j, "function", f->function ? f->function : "");
			if (f->file)
				cJSON_AddStringToObject(j, "file", f->file);
			if (f->line)
				cJSON_AddNumberToObject(j, "line", f->line);
			if (f->column)
				cJSON_AddNumberToObject(j, "column", f->column);
			if (f->module)
				cJSON_AddStringToObject(j, "module", f->module);
		}
	}
	return arr;
}

int ls_summary_write_json(const struct ls_loop_summary *s, const struct ls_episode *eps, size_t neps,
			     FILE *out)
{
	cJSON *o = NULL, *phases, *arr;
	char *text = NULL;
	int r = -ENOMEM;

	o = cJSON_CreateObject();
	if (!o)
		goto cleanup;
	cJSON_AddNumberToObject(o, "pid", s->pid);
	cJSON_AddNumberToObject(o, "tid", s->tid);
	cJSON_AddStringToObject(o, "comm", s->comm);
	cJSON_AddStringToObject(o, "runtime", ls_runtime_name(s->runtime));
	/* known only for some targets: absent otherwise */
	if (s->label[0])
		cJSON_AddStringToObject(o, "loop", s->label);
	if (s->version[0])
		cJSON_AddStringToObject(o, "version", s->version);
	if (s->libuv_version[0])
		cJSON_AddStringToObject(o, "libuv_version", s->libuv_version);
	cJSON_AddNumberToObject(o, "interval_s", s->interval_s);
	cJSON_AddNumberToObject(o, "iterations", (double)s->iterations);
	cJSON_AddNumberToObject(o, "utilization", s->utilization);
	if (s->has & LS_HAS_PHASES) {
		phases = cJSON_AddObjectToObject(o, "phases");
		if (!phases)
			goto cleanup;
		for (int i = 0; i < LS_NPHASES; i++)
			cJSON_AddItemToObject(phases, ls_phase_names[i], quant_json(&s->phase[i], 1));
	}
	cJSON_AddItemToObject(o, "delay", quant_json(&s->delay, 0));
	if (s->has & LS_HAS_TIMERS)
		cJSON_AddItemToObject(o, "timer_lateness", quant_json(&s->timer_lateness, 0));
	if (s->has & (LS_HAS_DRAINS | LS_HAS_EPISODES)) {
		int measured = !!(s->has & LS_HAS_DRAINS);

		cJSON_AddItemToObject(o, "ticks", drain_json(&s->ticks, measured));
		cJSON_AddItemToObject(o, "microtasks", drain_json(&s->microtasks, measured));
	}
	cJSON_AddNumberToObject(o, "poll_wait_s", ls_ns_to_s(s->poll_wait_ns));
	cJSON_AddNumberToObject(o, "stall_episodes", (double)s->stall_episodes);
	if (s->has & LS_HAS_COUNTERS)
		cJSON_AddNumberToObject(o, "busy_per_iteration_s", ls_ns_to_s(s->busy_per_iteration_ns));
	if (s->has & LS_HAS_GC)
		cJSON_AddItemToObject(o, "gc", quant_json(&s->gc, 1));
	if (eps) {
		arr = cJSON_AddArrayToObject(o, "episodes");
		if (!arr)
			goto cleanup;
		for (size_t i = 0; i < neps; i++) {
			cJSON *e = cJSON_CreateObject();

			if (!e)
				goto cleanup;
			cJSON_AddItemToArray(arr, e);
			cJSON_AddStringToObject(e, "kind", ls_episode_kind_name(eps[i].kind));
			cJSON_AddStringToObject(e, "phase", ls_phase_name(eps[i].phase));
			cJSON_AddNumberToObject(e, "start_s", ls_ns_to_s(eps[i].start_ns));
			cJSON_AddNumberToObject(e, "duration_s",
						eps[i].end_ns > eps[i].start_ns
							? ls_ns_to_s(eps[i].end_ns - eps[i].start_ns) : 0.0);
			cJSON_AddNumberToObject(e, "callbacks", (double)eps[i].callbacks);
			cJSON_AddNumberToObject(e, "samples", eps[i].samples);
			cJSON_AddItemToObject(e, "stacks", stacks_json(eps[i].stacks));
		}
	}
	text = cJSON_PrintUnformatted(o);
	if (!text)
		goto cleanup;
	r = fputs(text, out) < 0 ? -EIO : 0;
cleanup:
	free(text);
	cJSON_Delete(o);
	return r;
}
