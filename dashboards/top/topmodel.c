/* topmodel.c: the pure model of `loopscope top` (see topmodel.h). No curses, no clock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"
#include "topmodel.h"
#include "view.h"

const char *top_sort_name(int sort)
{
	static const char *const names[TOP_NSORTS] = {
		[TOP_SORT_PID] = "pid", [TOP_SORT_DELAY] = "delay", [TOP_SORT_UTIL] = "util",
		[TOP_SORT_RATE] = "iter/s",
	};
	return sort >= 0 && sort < TOP_NSORTS ? names[sort] : "?";
}

void top_fmt_ns(char *buf, size_t len, uint64_t ns)
{
	double v = (double)ns;

	if (ns < 1000)
		snprintf(buf, len, "%uns", (unsigned)ns);
	else if (ns < 10 * 1000)
		snprintf(buf, len, "%.2fus", v / 1e3);
	else if (ns < 1000 * 1000)
		snprintf(buf, len, "%.0fus", v / 1e3);
	else if (ns < 10ull * 1000 * 1000)
		snprintf(buf, len, "%.2fms", v / 1e6);
	else if (ns < 1000ull * 1000 * 1000)
		snprintf(buf, len, "%.0fms", v / 1e6);
	else if (ns < 100ull * 1000 * 1000 * 1000)
		snprintf(buf, len, "%.2fs", v / 1e9);
	else
		snprintf(buf, len, "%.0fs", v / 1e9);
}

/* One histogram between two cumulative snapshots of it. */
static void quant(const struct ls_hist *cur, const struct ls_hist *prev, struct ls_quant *q)
{
	struct ls_hist d;

	ls_hist_delta(cur, prev, &d);
	q->count = d.count;
	q->total_ns = d.sum;
	q->p50_ns = ls_hist_quantile(&d, 0.50);
	q->p99_ns = ls_hist_quantile(&d, 0.99);
	q->max_ns = d.count ? d.max : 0;
}

void top_model_init(struct top_model *m, const struct top_opts *opts)
{
	memset(m, 0, sizeof(*m));
	m->opts = *opts;
	m->refresh_s = 0.5;
	snprintf(m->source_name, sizeof(m->source_name), "?");
}

static void row_free(struct top_row *r)
{
	free(r->prev);
	free(r->base);
	free(r->rate_old);
	free(r->rate_new);
	free(r->wring);
	r->prev = r->base = r->rate_old = r->rate_new = NULL;
	r->wring = NULL;
}

void top_model_free(struct top_model *m)
{
	for (uint32_t i = 0; i < m->nrows; i++)
		row_free(&m->rows[i]);
	free(m->rows);
	m->rows = NULL;
	m->nrows = m->rows_cap = 0;
}

static struct top_row *find_row(struct top_model *m, int32_t pid, uint32_t tid)
{
	for (uint32_t i = 0; i < m->nrows; i++)
		if (m->rows[i].pid == pid && m->rows[i].tid == tid)
			return &m->rows[i];
	return NULL;
}

static struct top_row *add_row(struct top_model *m, int32_t pid, uint32_t tid)
{
	if (m->nrows == m->rows_cap) {
		uint32_t cap = m->rows_cap ? m->rows_cap * 2 : 8;
		struct top_row *rows = realloc(m->rows, cap * sizeof(*rows));

		if (!rows)
			return NULL;
		m->rows = rows;
		m->rows_cap = cap;
	}
	struct top_row *r = &m->rows[m->nrows++];
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->tid = tid;
	r->live_phase = LS_PHASE_NONE;
	return r;
}

/* r starts afresh (a new program in its process: counters from zero). */
static void row_reset(struct top_row *r)
{
	int32_t pid = r->pid;
	uint32_t tid = r->tid;

	row_free(r);
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->tid = tid;
	r->live_phase = LS_PHASE_NONE;
}

/* A process that exec'd and was attached again is a new target with the same pid: the
 * old program's entry (exited) no longer feeds the rows. */
static int superseded(const struct ls_snapshot *s, const struct ls_target_snapshot *t)
{
	for (uint32_t i = 0; i < s->ntargets; i++)
		if (s->targets[i].pid == t->pid && s->targets[i].state == LS_TARGET_ATTACHED &&
		    s->targets[i].attached_ns > t->attached_ns)
			return 1;
	return 0;
}

static int row_key_cmp(const struct top_row *a, const struct top_row *b)
{
	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	return a->tid < b->tid ? -1 : a->tid > b->tid;
}

/* Sort keys: the busiest first, pid as the tie-break so the order is stable. */
static int sort_mode;
static int row_cmp(const void *pa, const void *pb)
{
	const struct top_row *a = pa, *b = pb;
	double x = 0, y = 0;

	switch (sort_mode) {
	case TOP_SORT_DELAY:
		x = (double)a->last.delay.p99_ns, y = (double)b->last.delay.p99_ns;
		break;
	case TOP_SORT_UTIL:
		x = a->last.utilization, y = b->last.utilization;
		break;
	case TOP_SORT_RATE:
		x = a->last.interval_s > 0 ? (double)a->last.iterations / a->last.interval_s : 0;
		y = b->last.interval_s > 0 ? (double)b->last.iterations / b->last.interval_s : 0;
		break;
	}
	if (x != y)
		return x > y ? -1 : 1;
	return row_key_cmp(a, b);
}

/* Re-sort, keeping the same loop selected. */
static void resort(struct top_model *m)
{
	int32_t pid = 0;
	uint32_t tid = 0;
	int had = m->selected < m->nrows;

	if (had) {
		pid = m->rows[m->selected].pid;
		tid = m->rows[m->selected].tid;
	}
	sort_mode = m->sort;	/* qsort has no context argument; the model is single-threaded */
	qsort(m->rows, m->nrows, sizeof(*m->rows), row_cmp);
	m->selected = 0;
	if (had)
		for (uint32_t i = 0; i < m->nrows; i++)
			if (m->rows[i].pid == pid && m->rows[i].tid == tid)
				m->selected = i;
}

static void push_point(struct top_row *r, const struct ls_quant *q)
{
	struct top_point *p;

	if (r->hist_len < TOP_HISTORY)
		p = &r->history[(r->hist_head + r->hist_len++) % TOP_HISTORY];
	else {
		p = &r->history[r->hist_head];
		r->hist_head = (r->hist_head + 1) % TOP_HISTORY;
	}
	p->p99_ns = q->p99_ns;
	p->max_ns = q->max_ns;
	p->count = q->count;
}

/* Checkpoint the cumulative loop snapshot every TOP_RECENT_STEP_NS; the window is since
 * the oldest checkpoint: "the last 2 minutes" (2m-2m10s) for the price of 13 snapshots. */
static void ring_push(struct top_row *r, const struct ls_loop_snapshot *l, uint64_t ns)
{
	uint32_t n = TOP_RECENT_STEPS + 1, i;

	if (r->wring_len < n)
		i = (r->wring_head + r->wring_len++) % n;
	else {
		i = r->wring_head;
		r->wring_head = (r->wring_head + 1) % n;
	}
	if (l)
		memcpy(&r->wring[i], l, sizeof(*l));
	else
		memset(&r->wring[i], 0, sizeof(r->wring[i]));
	r->wring_ns[i] = ns;
}

/* The rolling window: from the oldest checkpoint (at first the window's start: attach,
 * or the snapshot r reset it at; the first snapshot when the attach time is unknown) to l. */
static void window_update(struct top_row *r, const struct ls_loop_snapshot *l, uint64_t mono)
{
	uint32_t n = TOP_RECENT_STEPS + 1, newest;
	uint64_t start;

	if (!r->wring_len) {
		if (r->window_start_ns)
			ring_push(r, r->base, r->window_start_ns);
		else	/* attach time unknown: the window starts at this snapshot */
			ring_push(r, l, mono);
	}
	newest = (r->wring_head + r->wring_len - 1) % n;
	if (mono >= r->wring_ns[newest] + TOP_RECENT_STEP_NS)
		ring_push(r, l, mono);
	start = r->wring_ns[r->wring_head];
	ls_summarize(l, &r->wring[r->wring_head], start && mono > start ? (double)(mono - start) / 1e9 : 0,
		     &r->window);
	r->recent_delay = r->window.delay;
	r->recent_s = r->window.interval_s;
}

static void fill_identity(struct top_row *r, const struct ls_target_snapshot *t)
{
	memcpy(r->comm, t->comm, sizeof(r->comm));
	r->comm[sizeof(r->comm) - 1] = '\0';
	r->runtime = t->runtime;
	/* An exit seen through an episode sticks even if a snapshot lags behind it. */
	if (!(r->target_state == LS_TARGET_EXITED && t->state == LS_TARGET_ATTACHED))
		r->target_state = t->state;
	snprintf(r->tier, sizeof(r->tier), "%.*s", (int)sizeof(t->tier) - 1, t->tier);
	snprintf(r->note, sizeof(r->note), "%.*s", (int)sizeof(t->note) - 1, t->note);
	snprintf(r->version, sizeof(r->version), "%.*s", (int)sizeof(t->version) - 1, t->version);
	snprintf(r->libuv_version, sizeof(r->libuv_version), "%.*s", (int)sizeof(t->libuv_version) - 1,
		 t->libuv_version);
	r->attached_ns = t->attached_ns;
	if (t->exited_ns)
		r->exited_ns = t->exited_ns;
}

static int apply_loop(struct top_row *r, const struct ls_loop_snapshot *l, uint64_t mono)
{
	if (!r->prev && !(r->prev = malloc(sizeof(*r->prev))))
		return -ENOMEM;
	if (!r->rate_new && !(r->rate_new = malloc(sizeof(*r->rate_new))))
		return -ENOMEM;
	if (!r->rate_old && !(r->rate_old = malloc(sizeof(*r->rate_old))))
		return -ENOMEM;
	if (!r->wring && !(r->wring = calloc(TOP_RECENT_STEPS + 1, sizeof(*r->wring))))
		return -ENOMEM;
	/* The sparkline: this refresh's worst delay. */
	if (r->prev_mono_ns && mono > r->prev_mono_ns) {
		struct ls_quant q;

		quant(&l->delay, &r->prev->delay, &q);
		push_point(r, &q);
	}
	/* `last` is since rate_old, 1 to 2 s back (since attach until one exists). */
	if (!r->rate_new_ns) {
		memcpy(r->rate_new, l, sizeof(*l));
		r->rate_new_ns = mono;
	} else if (mono - r->rate_new_ns >= TOP_RATE_NS) {
		struct ls_loop_snapshot *t = r->rate_old;

		r->rate_old = r->rate_new;
		r->rate_old_ns = r->rate_new_ns;
		r->rate_new = t;
		memcpy(r->rate_new, l, sizeof(*l));
		r->rate_new_ns = mono;
	}
	if (r->rate_old_ns)
		ls_summarize(l, r->rate_old, (double)(mono - r->rate_old_ns) / 1e9, &r->last);
	else
		ls_summarize(l, NULL, r->attached_ns && mono > r->attached_ns ?
			      (double)(mono - r->attached_ns) / 1e9 : 0, &r->last);
	if (!r->base)
		r->window_start_ns = r->attached_ns;
	window_update(r, l, mono);
	r->last.pid = r->window.pid = r->pid;
	r->last.runtime = r->window.runtime = r->runtime;
	memcpy(r->prev, l, sizeof(*l));
	r->prev_mono_ns = mono;
	r->has = l->has;
	r->live_state = l->live_state;
	r->live_phase = l->live_phase;
	r->live_drain = l->live_drain;
	r->live_since_ns = l->live_since_ns;
	r->live_phase_since_ns = l->live_phase_since_ns;
	r->live_drain_since_ns = l->live_drain_since_ns;
	r->live_drain_callbacks = l->live_drain_callbacks;
	snprintf(r->live_where, sizeof(r->live_where), "%s", l->live_where);
	return 0;
}

/* An in-progress episode whose end never came (ring-buffer drop, stream joined late)
 * must not alarm forever: a snapshot taken after it began that shows the loop out of
 * that state ends it. */
static void infer_over(struct top_model *m, const struct top_row *r, const struct ls_loop_snapshot *l,
		       uint64_t mono)
{
	for (uint32_t i = 0; i < m->log_len; i++) {
		struct top_log_entry *e = &m->log[(m->log_head + i) % TOP_LOG];
		const struct ls_episode *ep = &e->ep;

		if (ep->end_ns || e->over || ep->pid != r->pid || ep->tid != r->tid)
			continue;
		if (ls_episode_over(ep->kind, ep->start_ns, l, mono))
			e->over = 1;
	}
}

/* The source's clock (a remote agent's, maybe another host's) as an offset from ours.
 * Every source time we are handed (a snapshot's mono_ns, an episode's start or end) is
 * at or before the source's "now", so each gives a lower bound of the offset; the
 * largest one seen is the best. Taking the latest instead would let a snapshot that
 * sat in a buffer for half a second make every running stall look that much younger. */
static void learn_clock(struct top_model *m, uint64_t source_ns, uint64_t local_now)
{
	int64_t off = (int64_t)(source_ns - local_now);

	if (!m->clock_known || off > m->clock_offset)
		m->clock_offset = off;
	m->clock_known = 1;
}

int top_model_update(struct top_model *m, const struct ls_snapshot *s, uint64_t local_now)
{
	int err = 0;

	learn_clock(m, s->mono_ns, local_now);
	m->now_ns = s->mono_ns;
	if (s->wall_ns)
		m->wall_minus_mono = s->wall_ns - s->mono_ns;
	if (m->paused)
		return 0;
	m->self = s->self;
	m->gen++;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];
		uint32_t n = t->nloops ? t->nloops : 1;

		if (superseded(s, t))
			continue;
		for (uint32_t j = 0; j < n; j++) {
			const struct ls_loop_snapshot *l = t->nloops ? &t->loops[j] : NULL;
			uint32_t tid = l ? l->tid : 0;
			struct top_row *r = find_row(m, t->pid, tid);

			/* A loop showed up: its placeholder row (tid 0) goes. */
			if (!r && l && (r = find_row(m, t->pid, 0)))
				r->tid = tid;
			if (!r && !(r = add_row(m, t->pid, tid)))
				return -ENOMEM;
			if (r->attached_ns && t->attached_ns > r->attached_ns)
				row_reset(r);	/* the program the process exec'd */
			fill_identity(r, t);
			if (l) {
				if ((err = apply_loop(r, l, s->mono_ns)))
					return err;
				infer_over(m, r, l, s->mono_ns);
			}
			r->present = 1;
			r->seen_gen = m->gen;
		}
	}
	m->all_exited = m->nrows > 0;
	for (uint32_t i = 0; i < m->nrows; i++) {
		struct top_row *r = &m->rows[i];

		if (r->seen_gen != m->gen)
			r->present = 0;
		if (r->present && r->target_state == LS_TARGET_ATTACHED)
			m->all_exited = 0;
	}
	m->updates++;
	resort(m);
	top_model_tick(m, local_now);
	return 0;
}

static struct top_log_entry *log_push(struct top_model *m)
{
	struct top_log_entry *e;

	if (m->log_len < TOP_LOG)
		e = &m->log[(m->log_head + m->log_len++) % TOP_LOG];
	else {
		e = &m->log[m->log_head];
		m->log_head = (m->log_head + 1) % TOP_LOG;
	}
	memset(e, 0, sizeof(*e));
	return e;
}

void top_model_episode(struct top_model *m, const struct ls_episode *ep, uint64_t local_now)
{
	struct top_log_entry *e = NULL;
	struct top_row *r;

	m->episodes_seen++;
	if (m->clock_known)
		learn_clock(m, ep->end_ns > ep->start_ns ? ep->end_ns : ep->start_ns, local_now);
	/* The end of an episode whose start we logged updates that entry. */
	for (uint32_t i = 0; ep->end_ns && i < m->log_len; i++) {
		struct top_log_entry *c = &m->log[(m->log_head + i) % TOP_LOG];

		if (!c->ep.end_ns && c->ep.pid == ep->pid && c->ep.tid == ep->tid &&
		    c->ep.kind == ep->kind && c->ep.start_ns == ep->start_ns)
			e = c;
	}
	if (!e)
		e = log_push(m);
	e->ep = *ep;
	e->over = 0;
	r = NULL;
	for (uint32_t i = 0; i < m->nrows; i++)
		if (m->rows[i].pid == ep->pid && (!r || m->rows[i].tid == ep->tid))
			r = &m->rows[i];
	if (r)
		memcpy(e->comm, r->comm, sizeof(e->comm));
	if (ep->kind == LS_EP_TARGET_EXIT)
		for (uint32_t i = 0; i < m->nrows; i++)
			if (m->rows[i].pid == ep->pid) {
				m->rows[i].target_state = LS_TARGET_EXITED;
				m->rows[i].exited_ns = ep->start_ns;
			}
	top_model_tick(m, local_now);
}

static struct top_alert *alert_add(struct top_model *m)
{
	if (m->nalerts == TOP_MAX_ALERTS) {
		m->alerts_dropped++;
		return NULL;
	}
	struct top_alert *a = &m->alerts[m->nalerts++];
	memset(a, 0, sizeof(*a));
	return a;
}

static void alert_text(struct top_alert *a)
{
	char d[16], ago[24];

	top_fmt_ns(d, sizeof(d), a->duration_ns);
	if (a->ago_ns < 100 * 1000000ull)
		snprintf(ago, sizeof(ago), "just now");
	else {
		top_fmt_ns(ago, sizeof(ago), a->ago_ns);
		strcat(ago, " ago");
	}
	switch (a->kind) {
	case LS_EP_STALL:
		if (a->phase < LS_NPHASES)
			snprintf(a->text, sizeof(a->text), "%s in %s for %s", a->level == TOP_ALERT_ACTIVE ?
				 "stalled" : "stall", ls_phase_name(a->phase), d);
		else
			snprintf(a->text, sizeof(a->text), "%s for %s", a->level == TOP_ALERT_ACTIVE ?
				 "not polling" : "stall", d);
		break;
	case LS_EP_TICK_STARVATION:
	case LS_EP_MICROTASK_STARVATION:
		/* the callbacks where the drains are counted (a tier that classifies from
		 * stack samples does not count them: no count, rather than 0) */
		snprintf(a->text, sizeof(a->text), "%s starvation for %s", a->kind == LS_EP_TICK_STARVATION ?
			 "process.nextTick" : "microtask", d);
		if (a->callbacks) {
			size_t n = strlen(a->text);

			snprintf(a->text + n, sizeof(a->text) - n, " (%llu callbacks)", (unsigned long long)a->callbacks);
		}
		break;
	case LS_EP_GC:
		snprintf(a->text, sizeof(a->text), "GC pause for %s", d);
		break;
	case LS_EP_TARGET_EXIT:
		snprintf(a->text, sizeof(a->text), "target exited");
		return;
	}
	if (a->level == TOP_ALERT_RECENT) {
		size_t n = strlen(a->text);
		snprintf(a->text + n, sizeof(a->text) - n, ", %s", ago);
	}
}

/* The active alert of one kind for one loop: the longer of what the live state says
 * (as of the latest snapshot) and what an in-progress episode says (as of now). */
struct live_cand {
	uint64_t dur, callbacks;
	uint32_t phase;
};

static void cand_take(struct live_cand *c, uint64_t dur, uint32_t phase, uint64_t callbacks)
{
	if (dur > c->dur) {
		c->dur = dur;
		c->phase = phase;
	}
	if (callbacks > c->callbacks)
		c->callbacks = callbacks;
}

/* Whether an episode of this kind ended after `since`: then the span the latest
 * snapshot saw running since then is over (spans of one kind never overlap in a loop),
 * even if no newer snapshot says so yet. */
static int ended_since(const struct top_model *m, const struct top_row *r, uint32_t kind, uint64_t since)
{
	for (uint32_t j = 0; j < m->log_len; j++) {
		const struct ls_episode *ep = &m->log[(m->log_head + j) % TOP_LOG].ep;

		if (ep->end_ns > since && ep->kind == kind && ep->pid == r->pid && ep->tid == r->tid)
			return 1;
	}
	return 0;
}

void top_model_tick(struct top_model *m, uint64_t local_now)
{
	uint64_t now = (uint64_t)((int64_t)local_now + m->clock_offset);

	m->now_ns = now;
	m->nalerts = m->alerts_dropped = 0;
	for (uint32_t i = 0; i < m->nrows; i++) {
		const struct top_row *r = &m->rows[i];
		struct live_cand c[LS_EP_NKINDS];
		uint64_t snap = r->prev_mono_ns;

		memset(c, 0, sizeof(c));
		for (int k = 0; k < LS_EP_NKINDS; k++)
			c[k].phase = LS_PHASE_NONE;
		if (r->target_state == LS_TARGET_EXITED) {
			struct top_alert *a = alert_add(m);

			if (a) {
				a->level = TOP_ALERT_EXITED;
				a->pid = r->pid;
				a->tid = r->tid;
				a->kind = LS_EP_TARGET_EXIT;
				a->phase = LS_PHASE_NONE;
				alert_text(a);
				if (!r->attached_ns && r->note[0])	/* never attached: the agent says why */
					snprintf(a->text, sizeof(a->text), "%.*s", (int)sizeof(a->text) - 1, r->note);
			}
			continue;
		}
		if (r->present && snap && r->live_state == LS_LIVE_RUNNING) {
			if (r->live_phase < LS_NPHASES && r->live_phase_since_ns && snap > r->live_phase_since_ns) {
				if (!ended_since(m, r, LS_EP_STALL, r->live_phase_since_ns))
					cand_take(&c[LS_EP_STALL], snap - r->live_phase_since_ns, r->live_phase, 0);
			} else if (r->live_since_ns && snap > r->live_since_ns &&
				   !ended_since(m, r, LS_EP_STALL, r->live_since_ns))
				cand_take(&c[LS_EP_STALL], snap - r->live_since_ns, LS_PHASE_NONE, 0);
		}
		if (r->present && snap && r->live_drain && r->live_drain_since_ns && snap > r->live_drain_since_ns) {
			uint32_t k = ls_drain_starvation_kind(r->live_drain);

			if (k < LS_EP_NKINDS && !ended_since(m, r, k, r->live_drain_since_ns))
				cand_take(&c[k], snap - r->live_drain_since_ns, r->live_phase, r->live_drain_callbacks);
		}
		for (uint32_t j = 0; j < m->log_len; j++) {
			const struct top_log_entry *e = &m->log[(m->log_head + j) % TOP_LOG];

			if (e->ep.end_ns || e->over || e->ep.pid != r->pid || e->ep.tid != r->tid ||
			    e->ep.kind >= LS_EP_NKINDS || e->ep.kind == LS_EP_TARGET_EXIT)
				continue;
			cand_take(&c[e->ep.kind], now > e->ep.start_ns ? now - e->ep.start_ns : 0, e->ep.phase,
				  e->ep.callbacks);
		}
		int active[LS_EP_NKINDS] = { 0 }, shown[LS_EP_NKINDS] = { 0 };

		for (int k = 0; k < LS_EP_NKINDS; k++) {
			uint64_t thr = k == LS_EP_STALL ? m->opts.stall_ns : m->opts.starve_ns;
			struct top_alert *a;

			if (k == LS_EP_GC ? !c[k].dur : c[k].dur < thr)
				continue;
			active[k] = 1;
			if (!(a = alert_add(m)))
				continue;
			a->level = TOP_ALERT_ACTIVE;
			a->pid = r->pid;
			a->tid = r->tid;
			a->kind = (uint32_t)k;
			a->phase = c[k].phase;
			a->duration_ns = c[k].dur;
			a->callbacks = c[k].callbacks;
			alert_text(a);
			/* where the loop thread is, from the stall's latest stack sample */
			if (k != LS_EP_GC && r->live_where[0]) {
				size_t n = strlen(a->text);

				snprintf(a->text + n, sizeof(a->text) - n, " in %s", r->live_where);
			}
		}
		/* Episodes that ended a moment ago stay on screen for hold_ns, marked as over,
		 * so a stall shorter than the refresh interval is still seen. Newest first. */
		for (uint32_t j = m->log_len; j-- > 0;) {
			const struct top_log_entry *e = &m->log[(m->log_head + j) % TOP_LOG];
			struct top_alert *a;

			if (!e->ep.end_ns || e->ep.pid != r->pid || e->ep.tid != r->tid ||
			    e->ep.kind >= LS_EP_NKINDS || e->ep.kind == LS_EP_TARGET_EXIT ||
			    now < e->ep.end_ns || now - e->ep.end_ns > m->opts.hold_ns ||
			    active[e->ep.kind] || shown[e->ep.kind])
				continue;
			shown[e->ep.kind] = 1;	/* the newest of each kind is enough */
			if (!(a = alert_add(m)))
				continue;
			a->level = TOP_ALERT_RECENT;
			a->pid = r->pid;
			a->tid = r->tid;
			a->kind = e->ep.kind;
			a->phase = e->ep.phase;
			a->duration_ns = e->ep.end_ns - e->ep.start_ns;
			a->callbacks = e->ep.callbacks;
			a->ago_ns = now - e->ep.end_ns;
			alert_text(a);
		}
	}
}

static int has_stacks(const struct top_log_entry *e)
{
	return e && e->ep.end_ns && e->ep.stacks && e->ep.stacks->nstacks;
}

int top_model_stacks_open(struct top_model *m)
{
	for (uint32_t i = 0; i < m->log_len; i++)
		if (has_stacks(top_model_log(m, i))) {
			m->stacks = 1;
			m->stacks_at = i;
			return 1;
		}
	m->stacks = 0;
	return 0;
}

void top_model_stacks_step(struct top_model *m, int delta)
{
	for (int64_t i = (int64_t)m->stacks_at + delta; i >= 0 && i < (int64_t)m->log_len; i += delta)
		if (has_stacks(top_model_log(m, (uint32_t)i))) {
			m->stacks_at = (uint32_t)i;
			return;
		}
}

void top_model_select(struct top_model *m, int delta)
{
	int64_t s = (int64_t)m->selected + delta;

	if (s >= (int64_t)m->nrows)
		s = (int64_t)m->nrows - 1;
	if (s < 0)
		s = 0;
	m->selected = (uint32_t)s;
}

void top_model_cycle_sort(struct top_model *m)
{
	m->sort = (m->sort + 1) % TOP_NSORTS;
	resort(m);
}

void top_model_reset_window(struct top_model *m)
{
	for (uint32_t i = 0; i < m->nrows; i++) {
		struct top_row *r = &m->rows[i];

		if (!r->prev_mono_ns)
			continue;
		if (!r->base && !(r->base = malloc(sizeof(*r->base))))
			continue;	/* out of memory: the window stays as it was */
		memcpy(r->base, r->prev, sizeof(*r->base));
		r->window_start_ns = r->prev_mono_ns;
		ls_summarize(r->prev, r->base, 0, &r->window);
		r->window.pid = r->pid;
		r->window.runtime = r->runtime;
		r->hist_len = r->hist_head = 0;
		r->wring_len = r->wring_head = 0;	/* the next snapshot restarts it at base */
		memset(&r->recent_delay, 0, sizeof(r->recent_delay));
		r->recent_s = 0;
	}
}

const struct top_row *top_model_selected(const struct top_model *m)
{
	return m->selected < m->nrows ? &m->rows[m->selected] : NULL;
}

const struct top_log_entry *top_model_log(const struct top_model *m, uint32_t i)
{
	if (i >= m->log_len)
		return NULL;
	return &m->log[(m->log_head + m->log_len - 1 - i) % TOP_LOG];
}
