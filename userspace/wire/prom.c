/* prom.c: the Prometheus text exposition of a snapshot (see prom.h for the le sets).
 *
 * Metric families are written one at a time (the format wants every sample of a
 * name together under one HELP/TYPE), each walking all targets and loops. The label
 * set of every loop is formatted once per render and reused by every family. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "prom.h"

#define LE_HI_LOG2 34	/* last edge of every set: 2^34 ns (17.2 s) */
#define FINE_LO_LOG2 14
#define FINE_PER_OCTAVE 4
#define NLE_MAX ((LE_HI_LOG2 - FINE_LO_LOG2) * FINE_PER_OCTAVE + 1)	/* the largest set, the fine one */

/* First edge 2^lo ns, then per_octave edges per power of two up to 2^LE_HI_LOG2. */
static const struct {
	unsigned lo_log2, per_octave;
} set_def[LS_PROM_NSETS] = {
	[LS_PROM_FINE] = { FINE_LO_LOG2, FINE_PER_OCTAVE },	/* delay: 16.4 us .. 17.2 s, steps <= 25% */
	[LS_PROM_COARSE] = { 12, 2 },	/* 4.1 us .. 17.2 s, steps of 50% and 33% */
	[LS_PROM_OCTAVE] = { 12, 1 },	/* 4.1 us .. 17.2 s, doubling */
};

unsigned ls_prom_le_count(int set)
{
	return (LE_HI_LOG2 - set_def[set].lo_log2) * set_def[set].per_octave + 1;
}

/* Edges are bucket lower bounds of bpf/hist.h: (16 + sub) << (e - 4) for the
 * sub-buckets picked by the set, so every le falls exactly between two buckets. */
uint64_t ls_prom_le_edge_ns(int set, unsigned i)
{
	unsigned per = set_def[set].per_octave;
	unsigned e = set_def[set].lo_log2 + i / per, sub = (i % per) * (LS_HIST_SUB / per);

	return (uint64_t)(LS_HIST_SUB + sub) << (e - LS_HIST_SUB_BITS);
}

/* Bucket index of each edge, and the le label text, computed once. */
static struct leset {
	unsigned n;
	uint32_t idx[NLE_MAX];
	char text[NLE_MAX][24];
	uint8_t len[NLE_MAX];
} lesets[LS_PROM_NSETS];

static void leset_init(void)
{
	static int done;

	if (done)
		return;
	for (int s = 0; s < LS_PROM_NSETS; s++) {
		struct leset *ls = &lesets[s];
		ls->n = ls_prom_le_count(s);
		for (unsigned i = 0; i < ls->n; i++) {
			uint64_t edge = ls_prom_le_edge_ns(s, i);
			struct ls_buf b = { 0 };

			ls->idx[i] = ls_hist_index(edge);
			ls_prom_seconds(&b, edge - 1);
			snprintf(ls->text[i], sizeof(ls->text[i]), "%s", b.p ? b.p : "0");
			ls->len[i] = (uint8_t)strlen(ls->text[i]);
			ls_buf_free(&b);
		}
	}
	done = 1;
}

void ls_prom_seconds(struct ls_buf *b, uint64_t ns)
{
	char frac[10];
	int n = 9;

	ls_buf_u64(b, ns / 1000000000ull);
	ns %= 1000000000ull;
	if (!ns)
		return;
	for (int i = 8; i >= 0; i--, ns /= 10)
		frac[i] = (char)('0' + ns % 10);
	while (n > 0 && frac[n - 1] == '0')
		n--;
	ls_buf_append(b, ".", 1);
	ls_buf_append(b, frac, (size_t)n);
}

/* A float sample value, locale-proof, with the format's spellings of the specials. */
static void put_double(struct ls_buf *b, double v)
{
	char tmp[40];

	if (isnan(v)) {
		ls_buf_puts(b, "NaN");
		return;
	}
	if (isinf(v)) {
		ls_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.17g", v);
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.';
	ls_buf_puts(b, tmp);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 :
		     (s[0] & 0xf8) == 0xf0 ? 4 : 0;

	if (!len || len > n || (len == 2 && s[0] < 0xc2))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* A label value with \ " and newline escaped, as the text format requires; bytes
 * that are not UTF-8 (a comm can hold anything) become '?', since Prometheus
 * rejects the whole scrape otherwise. */
static void put_label_value(struct ls_buf *b, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	for (size_t i = 0; i < n;) {
		size_t k = utf8_len((const unsigned char *)s + i, n - i);
		if (!k) {
			ls_buf_puts(b, "?");
			i++;
			continue;
		}
		if (s[i] == '\\')
			ls_buf_puts(b, "\\\\");
		else if (s[i] == '"')
			ls_buf_puts(b, "\\\"");
		else if (s[i] == '\n')
			ls_buf_puts(b, "\\n");
		else
			ls_buf_append(b, &s[i], k);
		i += k;
	}
}

static void family(struct ls_buf *b, const char *name, const char *type, const char *help)
{
	ls_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{labels[,extra]} */
static void sample_start(struct ls_buf *b, const char *name, const char *labels, const char *extra)
{
	ls_buf_puts(b, name);
	if (!*labels && !(extra && *extra)) {
		ls_buf_puts(b, " ");
		return;
	}
	ls_buf_puts(b, "{");
	ls_buf_puts(b, labels);
	if (extra && *extra) {
		if (*labels)
			ls_buf_puts(b, ",");
		ls_buf_puts(b, extra);
	}
	ls_buf_puts(b, "} ");
}

static void sample_u64(struct ls_buf *b, const char *name, const char *labels, const char *extra, uint64_t v)
{
	sample_start(b, name, labels, extra);
	ls_buf_u64(b, v);
	ls_buf_puts(b, "\n");
}

static void sample_ns(struct ls_buf *b, const char *name, const char *labels, const char *extra, uint64_t ns)
{
	sample_start(b, name, labels, extra);
	ls_prom_seconds(b, ns);
	ls_buf_puts(b, "\n");
}

static void sample_double(struct ls_buf *b, const char *name, const char *labels, const char *extra, double v)
{
	sample_start(b, name, labels, extra);
	put_double(b, v);
	ls_buf_puts(b, "\n");
}

/* The _bucket/_sum/_count series of one histogram. _count is the sum of the buckets,
 * not h->count: a torn read of a live map can leave them a sample apart, and the
 * format requires +Inf == _count. A histogram with no sample is left out (a phase
 * the runtime never runs, a queue never drained): it would be ~50 series of zeros;
 * it appears with its first sample. */
static void histogram(struct ls_buf *b, const char *name, const char *labels, const char *extra,
		      const struct ls_hist *h, int set)
{
	const struct leset *ls = &lesets[set];
	uint64_t cum = 0;
	uint32_t k = 0;
	char pre[1024], sfx[128], *w;
	int np, any = 0;

	for (uint32_t i = 0; i < LS_HIST_BUCKETS && !any; i++)
		any = h->bucket[i] != 0;
	if (!any)
		return;

	/* The part before the le value is the same on every bucket line: format it once
	 * (this loop writes most of the exposition, so no printf per line). */
	np = snprintf(pre, sizeof(pre), "%s_bucket{%s%s%s%sle=\"", name, labels, *labels ? "," : "",
		      extra ? extra : "", extra && *extra ? "," : "");
	if (np < 0 || (size_t)np >= sizeof(pre)) {
		b->oom = 1;	/* labels are bounded (comm 16 bytes): cannot happen */
		return;
	}
	/* One reservation for every bucket line, then plain stores: this loop writes
	 * most of the exposition. A line is the prefix, the le text, '"} ', a u64
	 * (<= 20 digits) and '\n'. */
	if (ls_buf_reserve(b, (ls->n + 1) * ((size_t)np + sizeof(ls->text[0]) + 3 + 20 + 1)))
		return;
	w = b->p + b->len;
	for (unsigned i = 0; i <= ls->n; i++) {
		uint32_t upto = i < ls->n ? ls->idx[i] : LS_HIST_BUCKETS;
		for (; k < upto; k++)
			cum += h->bucket[k];
		memcpy(w, pre, (size_t)np);
		w += np;
		if (i < ls->n) {
			memcpy(w, ls->text[i], ls->len[i]);
			w += ls->len[i];
		} else {
			memcpy(w, "+Inf", 4);
			w += 4;
		}
		memcpy(w, "\"} ", 3);
		w += 3;
		w = ls_fmt_u64(w, cum);
		*w++ = '\n';
	}
	b->len = (size_t)(w - b->p);
	b->p[b->len] = 0;
	snprintf(sfx, sizeof(sfx), "%s_sum", name);
	sample_ns(b, sfx, labels, extra, h->sum);
	snprintf(sfx, sizeof(sfx), "%s_count", name);
	sample_u64(b, sfx, labels, extra, cum);
}

/* ---------------------------------------------------------------- per-loop families */

struct loopref {
	const struct ls_target_snapshot *t;
	const struct ls_loop_snapshot *l;
	const struct ls_loop_interval *st;
	char *labels;	/* pid="..",comm="..",runtime="..",loop=".." */
};

#define HIST_AT(off) ((const struct ls_hist *)((const char *)l + (off)))
#define U64_AT(off) (*(const uint64_t *)((const char *)l + (off)))

/* Histograms with no label beyond the loop's: one table instead of copied blocks. */
static const struct {
	const char *name, *help;
	size_t off;
	uint32_t need;	/* LS_HAS_* bits, any of which is enough */
	int set;
} loop_hists[] = {
	{ "loopscope_iteration_duration_seconds", "Duration of whole loop iterations.",
	  offsetof(struct ls_loop_snapshot, iteration), LS_HAS_PHASES | LS_HAS_DELAY, LS_PROM_COARSE },
	{ "loopscope_eventloop_delay_seconds",
	  "Event-loop delay: per iteration, the not-polling span from poll return to the next poll entry "
	  "(the longest an event arriving then could wait); Node's adds how late that poll returned.",
	  offsetof(struct ls_loop_snapshot, delay), LS_HAS_DELAY, LS_PROM_FINE },
	{ "loopscope_not_polling_seconds",
	  "Not-polling spans, poll return to the next poll entry, per iteration. For the reference loop this is "
	  "the delay measurement itself; Node's delay also adds how late the poll returned.",
	  (size_t)-1, LS_HAS_DELAY, LS_PROM_COARSE },
	{ "loopscope_poll_wait_seconds", "Time blocked in the poll wait, per poll phase.",
	  offsetof(struct ls_loop_snapshot, poll_wait), LS_HAS_DELAY, LS_PROM_OCTAVE },
	{ "loopscope_timer_lateness_seconds", "Timer callback start minus its due time, per timer callback.",
	  offsetof(struct ls_loop_snapshot, timer_lateness), LS_HAS_TIMERS, LS_PROM_COARSE },
	{ "loopscope_gc_pause_seconds", "Main-thread garbage-collection pauses (Node).",
	  offsetof(struct ls_loop_snapshot, gc), LS_HAS_GC, LS_PROM_COARSE },
};

static const struct {
	const char *name, *help;
	size_t off;
	uint32_t need;
	int seconds;	/* the field is ns, exposed in seconds */
} loop_counters[] = {
	{ "loopscope_iterations_total", "Loop iterations.", offsetof(struct ls_loop_snapshot, iterations),
	  LS_HAS_DELAY | LS_HAS_PHASES | LS_HAS_COUNTERS, 0 },
	{ "loopscope_busy_seconds_total", "Time out of the poll wait (running callbacks and loop work).",
	  offsetof(struct ls_loop_snapshot, busy_ns), LS_HAS_DELAY | LS_HAS_COUNTERS, 1 },
	{ "loopscope_idle_seconds_total", "Time blocked in the poll wait.", offsetof(struct ls_loop_snapshot, idle_ns),
	  LS_HAS_DELAY | LS_HAS_COUNTERS, 1 },
	{ "loopscope_stall_episodes_total", "Phases or not-polling spans that ran past the stall threshold.",
	  offsetof(struct ls_loop_snapshot, stall_episodes), LS_HAS_EPISODES | LS_HAS_PHASES, 0 },
};

static const char *const queue_names[2] = { "nexttick", "microtask" };

static const struct ls_drain_stats *drain_of(const struct ls_loop_snapshot *l, int q)
{
	return q ? &l->microtasks : &l->ticks;
}

static double utilization_of(const struct loopref *r)
{
	uint64_t tot = r->l->busy_ns + r->l->idle_ns;

	if (r->st && r->st->utilization >= 0)
		return r->st->utilization;
	return tot ? (double)r->l->busy_ns / (double)tot : 0;
}

static void render_loop_counters(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	for (size_t f = 0; f < sizeof(loop_counters) / sizeof(loop_counters[0]); f++) {
		family(b, loop_counters[f].name, "counter", loop_counters[f].help);
		for (size_t i = 0; i < n; i++) {
			const struct ls_loop_snapshot *l = refs[i].l;
			if (!(l->has & loop_counters[f].need))
				continue;
			if (loop_counters[f].seconds)
				sample_ns(b, loop_counters[f].name, refs[i].labels, NULL, U64_AT(loop_counters[f].off));
			else
				sample_u64(b, loop_counters[f].name, refs[i].labels, NULL, U64_AT(loop_counters[f].off));
		}
	}
}

/* Utilization and, for the counters tier, busy time per iteration. */
static void render_loop_gauges(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	family(b, "loopscope_eventloop_utilization", "gauge",
	       "Share of time out of the poll wait, busy / (busy + idle), over the last sampling interval (1 s).");
	for (size_t i = 0; i < n; i++)
		if (refs[i].l->has & (LS_HAS_DELAY | LS_HAS_COUNTERS))
			sample_double(b, "loopscope_eventloop_utilization", refs[i].labels, NULL, utilization_of(&refs[i]));
	family(b, "loopscope_busy_per_iteration_seconds", "gauge",
	       "Counters tier (no probe) only, its one delay figure: busy time per loop iteration over the last "
	       "sampling interval (a mean, not a distribution).");
	for (size_t i = 0; i < n; i++)
		if ((refs[i].l->has & LS_HAS_COUNTERS) && refs[i].st && refs[i].st->busy_per_iteration_s >= 0)
			sample_double(b, "loopscope_busy_per_iteration_seconds", refs[i].labels, NULL,
				      refs[i].st->busy_per_iteration_s);
}

/* Phase durations, then the loop_hists table. */
static void render_loop_hists(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	char extra[64];

	family(b, "loopscope_phase_duration_seconds", "histogram", "Duration of each loop phase, per phase run.");
	for (size_t i = 0; i < n; i++) {
		if (!(refs[i].l->has & LS_HAS_PHASES))
			continue;
		for (int p = 0; p < LS_NPHASES; p++) {
			snprintf(extra, sizeof(extra), "phase=\"%s\"", ls_phase_names[p]);
			histogram(b, "loopscope_phase_duration_seconds", refs[i].labels, extra, &refs[i].l->phase[p],
				  LS_PROM_OCTAVE);
		}
	}

	for (size_t f = 0; f < sizeof(loop_hists) / sizeof(loop_hists[0]); f++) {
		family(b, loop_hists[f].name, "histogram", loop_hists[f].help);
		for (size_t i = 0; i < n; i++) {
			const struct ls_loop_snapshot *l = refs[i].l;
			const struct ls_hist *h;
			if (!(l->has & loop_hists[f].need))
				continue;
			if (loop_hists[f].off == (size_t)-1)	/* not_polling: delay unless it differs */
				h = l->has & LS_HAS_NOT_POLLING ? &l->not_polling : &l->delay;
			else
				h = HIST_AT(loop_hists[f].off);
			histogram(b, loop_hists[f].name, refs[i].labels, NULL, h, loop_hists[f].set);
		}
	}
}

/* nextTick / microtask queue drains: durations, callbacks, starvation episodes. */
static void render_drains(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	char extra[64];

	family(b, "loopscope_drain_duration_seconds", "histogram",
	       "Duration of non-empty nextTick / microtask queue drains.");
	for (size_t i = 0; i < n; i++)
		for (int q = 0; q < 2 && (refs[i].l->has & LS_HAS_DRAINS); q++) {
			snprintf(extra, sizeof(extra), "queue=\"%s\"", queue_names[q]);
			histogram(b, "loopscope_drain_duration_seconds", refs[i].labels, extra,
				  &drain_of(refs[i].l, q)->duration, LS_PROM_OCTAVE);
		}
	family(b, "loopscope_drain_callbacks_total", "counter", "Callbacks run by nextTick / microtask queue drains.");
	for (size_t i = 0; i < n; i++)
		for (int q = 0; q < 2 && (refs[i].l->has & LS_HAS_DRAINS); q++) {
			snprintf(extra, sizeof(extra), "queue=\"%s\"", queue_names[q]);
			sample_u64(b, "loopscope_drain_callbacks_total", refs[i].labels, extra,
				   drain_of(refs[i].l, q)->callbacks);
		}
	family(b, "loopscope_starvation_episodes_total", "counter",
	       "nextTick / microtask drains that ran past the starvation threshold.");
	/* Node counts starvation by stack sampling without measuring drains: either bit. */
	for (size_t i = 0; i < n; i++)
		for (int q = 0; q < 2 && (refs[i].l->has & (LS_HAS_DRAINS | LS_HAS_EPISODES)); q++) {
			snprintf(extra, sizeof(extra), "queue=\"%s\"", queue_names[q]);
			sample_u64(b, "loopscope_starvation_episodes_total", refs[i].labels, extra,
				   drain_of(refs[i].l, q)->starvation_episodes);
		}
}

static void render_gc_phases(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	char extra[64];

	family(b, "loopscope_gc_phase_seconds_total", "counter",
	       "Main-thread GC pause time by the loop phase it interrupted (Node).");
	for (size_t i = 0; i < n; i++) {
		if (!(refs[i].l->has & LS_HAS_GC))
			continue;
		for (int p = 0; p <= LS_NPHASES; p++) {
			snprintf(extra, sizeof(extra), "phase=\"%s\"", p < LS_NPHASES ? ls_phase_names[p] : "unknown");
			sample_ns(b, "loopscope_gc_phase_seconds_total", refs[i].labels, extra, refs[i].l->gc_phase_ns[p]);
		}
	}
}

static void render_blocked(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	family(b, "loopscope_blocked_seconds_total", "counter",
	       "Stall and starvation time by the leaf-most JS function of the episode's stacks, "
	       "or without JS the program's own leaf-most function (the first 10 per loop, then function=\"other\").");
	for (size_t i = 0; i < n; i++) {
		const struct ls_loop_interval *st = refs[i].st;

		if (!st || (!st->nblocked && !st->blocked_other.ns))
			continue;
		for (uint32_t k = 0; k <= st->nblocked && k <= LS_BLOCKED_TOP; k++) {
			const struct ls_blocked *e = k < st->nblocked ? &st->blocked[k] : &st->blocked_other;
			struct ls_buf lb = { 0 };

			ls_buf_puts(&lb, "function=\"");
			put_label_value(&lb, k < st->nblocked ? e->function : "other", sizeof(e->function));
			ls_buf_puts(&lb, "\",file=\"");
			put_label_value(&lb, k < st->nblocked ? e->file : "", sizeof(e->file));
			ls_buf_puts(&lb, "\"");
			if (!lb.oom && lb.p)
				sample_ns(b, "loopscope_blocked_seconds_total", refs[i].labels, lb.p, e->ns);
			ls_buf_free(&lb);
		}
	}
}

static void render_in_progress(struct ls_buf *b, const struct loopref *refs, size_t n)
{
	char extra[64];

	family(b, "loopscope_episodes_in_progress", "gauge",
	       "Stall / starvation / GC episodes that have started and not yet ended.");
	for (size_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < LS_EP_NKINDS; k++) {
			if (k == LS_EP_TARGET_EXIT)
				continue;
			snprintf(extra, sizeof(extra), "kind=\"%s\"", ls_episode_kind_name(k));
			sample_u64(b, "loopscope_episodes_in_progress", refs[i].labels, extra,
				   refs[i].st ? refs[i].st->in_progress[k] : 0);
		}
}

static void render_loops(struct ls_buf *b, const struct loopref *refs, size_t n, const struct ls_prom_ctx *ctx)
{
	render_loop_counters(b, refs, n);
	render_loop_gauges(b, refs, n);
	render_loop_hists(b, refs, n);
	render_drains(b, refs, n);
	render_gc_phases(b, refs, n);
	render_blocked(b, refs, n);
	render_in_progress(b, refs, n);
	(void)ctx;
}

/* ---------------------------------------------------------------- --compat prom-client */

/* Mean and standard deviation from bucket midpoints (the exact sum gives the mean). */
static void hist_moments(const struct ls_hist *h, double *mean, double *stddev)
{
	double n = 0, m, var = 0;

	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++)
		n += (double)h->bucket[i];
	if (n == 0) {
		*mean = *stddev = 0;
		return;
	}
	m = (double)h->sum / n;
	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++) {
		uint64_t lo = ls_hist_bucket_lo(i), hi = ls_hist_bucket_hi(i);
		double mid = hi == UINT64_MAX ? (double)lo : ((double)lo + (double)(hi - 1)) / 2;
		if (h->bucket[i])
			var += (double)h->bucket[i] * (mid - m) * (mid - m);
	}
	*mean = m;
	*stddev = sqrt(var / n);
}

static uint64_t hist_min(const struct ls_hist *h)
{
	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++)
		if (h->bucket[i])
			return ls_hist_bucket_lo(i);
	return 0;
}

static void render_compat(struct ls_buf *b, const struct loopref *refs, size_t n, const struct ls_prom_ctx *ctx)
{
	static const struct {
		const char *name, *help;
		int what;	/* 0 min 1 max 2 mean 3 stddev, else the percentile */
	} lag[] = {
		{ "nodejs_eventloop_lag_min_seconds", "The minimum recorded event loop delay.", 0 },
		{ "nodejs_eventloop_lag_max_seconds", "The maximum recorded event loop delay.", 1 },
		{ "nodejs_eventloop_lag_mean_seconds", "The mean of the recorded event loop delays.", 2 },
		{ "nodejs_eventloop_lag_stddev_seconds", "The standard deviation of the recorded event loop delays.", 3 },
		{ "nodejs_eventloop_lag_p50_seconds", "The 50th percentile of the recorded event loop delays.", 50 },
		{ "nodejs_eventloop_lag_p90_seconds", "The 90th percentile of the recorded event loop delays.", 90 },
		{ "nodejs_eventloop_lag_p99_seconds", "The 99th percentile of the recorded event loop delays.", 99 },
	};

	/* prom-client times a setImmediate from the scrape; the nearest thing we see from
	 * outside is how long the loop has been out of its poll wait right now. */
	family(b, "nodejs_eventloop_lag_seconds", "gauge", "Lag of event loop in seconds.");
	for (size_t i = 0; i < n; i++) {
		const struct ls_loop_snapshot *l = refs[i].l;
		uint64_t lagns = 0;
		if (!(l->has & LS_HAS_DELAY))
			continue;
		if (l->live_state == LS_LIVE_RUNNING && ctx->now_ns > l->live_since_ns && l->live_since_ns)
			lagns = ctx->now_ns - l->live_since_ns;
		sample_ns(b, "nodejs_eventloop_lag_seconds", refs[i].labels, NULL, lagns);
	}
	for (size_t f = 0; f < sizeof(lag) / sizeof(lag[0]); f++) {
		family(b, lag[f].name, "gauge", lag[f].help);
		for (size_t i = 0; i < n; i++) {
			const struct ls_hist *h;
			double mean, sd, v;

			if (!(refs[i].l->has & LS_HAS_DELAY))
				continue;
			h = refs[i].st && refs[i].st->lag_window_valid ? &refs[i].st->lag_window : &refs[i].l->delay;
			switch (lag[f].what) {
			case 0: v = ls_ns_to_s(hist_min(h)); break;
			case 1: v = ls_ns_to_s(h->max); break;
			case 2: hist_moments(h, &mean, &sd); v = mean / 1e9; break;
			case 3: hist_moments(h, &mean, &sd); v = sd / 1e9; break;
			default: v = ls_ns_to_s(ls_hist_quantile(h, lag[f].what / 100.0)); break;
			}
			sample_double(b, lag[f].name, refs[i].labels, NULL, v);
		}
	}
}

/* ---------------------------------------------------------------- render */

static const char *const state_names[] = { "attached", "exited", "detached" };

static char *loop_labels(const struct ls_target_snapshot *t, const struct ls_loop_snapshot *l)
{
	struct ls_buf b = { 0 };

	ls_buf_printf(&b, "pid=\"%d\",comm=\"", t->pid);
	put_label_value(&b, t->comm, sizeof(t->comm));
	ls_buf_printf(&b, "\",runtime=\"%s\",loop=\"%u\"", ls_runtime_name(t->runtime), l->tid);
	/* the loop as its program names it ("main", "worker 3"), where known */
	if (l->label[0]) {
		ls_buf_puts(&b, ",thread=\"");
		put_label_value(&b, l->label, sizeof(l->label));
		ls_buf_puts(&b, "\"");
	}
	if (b.oom) {
		ls_buf_free(&b);
		return NULL;
	}
	return b.p;
}

static void target_labels(struct ls_buf *b, const struct ls_target_snapshot *t)
{
	ls_buf_printf(b, "pid=\"%d\",comm=\"", t->pid);
	put_label_value(b, t->comm, sizeof(t->comm));
	ls_buf_printf(b, "\",runtime=\"%s\"", ls_runtime_name(t->runtime));
}

/* An exited (or detached) target kept for --keep-exited shows only target_info and
 * target_up 0 once its final numbers had their chance to be scraped: its frozen loop
 * series would be hundreds of series of noise per target. */
static int loops_shown(const struct ls_target_snapshot *t, const struct ls_prom_ctx *ctx)
{
	if (t->state == LS_TARGET_ATTACHED)
		return 1;
	return t->exited_ns && ctx->now_ns >= t->exited_ns && ctx->now_ns - t->exited_ns < ctx->exited_loops_ns;
}

static void free_loops(struct loopref *refs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(refs[i].labels);
	free(refs);
}

/* The loops whose series are shown, each with its interval state and label set, into
 * *refs_out (*n_out of them; the caller frees them with free_loops()). Returns 0 or
 * -ENOMEM, with nothing left to free. */
static int collect_loops(const struct ls_snapshot *s, const struct ls_prom_ctx *ctx, struct loopref **refs_out,
			 size_t *n_out)
{
	struct loopref *refs = NULL;
	size_t n = 0, cap = 0;

	for (uint32_t i = 0; i < s->ntargets; i++)
		cap += s->targets[i].nloops;
	if (cap) {
		refs = calloc(cap, sizeof(*refs));
		if (!refs)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];
		if (!loops_shown(t, ctx))
			continue;
		for (uint32_t j = 0; j < t->nloops && t->loops; j++) {
			struct loopref *r = &refs[n];
			r->t = t;
			r->l = &t->loops[j];
			r->st = ctx->loop_state ? ctx->loop_state(ctx->arg, t->pid, r->l->tid) : NULL;
			r->labels = loop_labels(t, r->l);
			if (!r->labels) {
				free_loops(refs, n);
				return -ENOMEM;
			}
			n++;
		}
	}
	*refs_out = refs;
	*n_out = n;
	return 0;
}

/* loopscope_target_info: one series per target; tl is scratch space. */
static void render_target_info(struct ls_buf *b, const struct ls_snapshot *s, struct ls_buf *tl)
{
	family(b, "loopscope_target_info", "gauge",
	       "One series per traced process: its executable, probe tier, state, where known its runtime's "
	       "and libuv's versions (value 1).");
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];
		ls_buf_reset(tl);
		target_labels(tl, t);
		ls_buf_puts(tl, ",exe=\"");
		put_label_value(tl, t->exe, sizeof(t->exe));
		ls_buf_puts(tl, "\",tier=\"");
		put_label_value(tl, t->tier, sizeof(t->tier));
		ls_buf_printf(tl, "\",state=\"%s\"", t->state < 3 ? state_names[t->state] : "?");
		if (t->version[0]) {
			ls_buf_printf(tl, ",%s_version=\"", ls_runtime_name(t->runtime));
			put_label_value(tl, t->version, sizeof(t->version));
			ls_buf_puts(tl, "\"");
		}
		if (t->libuv_version[0]) {
			ls_buf_puts(tl, ",libuv_version=\"");
			put_label_value(tl, t->libuv_version, sizeof(t->libuv_version));
			ls_buf_puts(tl, "\"");
		}
		sample_u64(b, "loopscope_target_info", tl->p ? tl->p : "", NULL, 1);
	}
}

/* Traps and BPF program runs per loop iteration, per target; tl is scratch space. */
static void render_probe_cost(struct ls_buf *b, const struct ls_snapshot *s, const struct ls_prom_ctx *ctx,
			      struct ls_buf *tl)
{
	/* The probe cost per iteration changes as the loop runs: a value of its own, not a
	 * target_info label (a label that changes is a new series each time). */
	for (int k = 0; k < 2; k++) {
		const char *name = k ? "loopscope_probe_runs_per_iteration" : "loopscope_probe_traps_per_iteration";

		family(b, name, "gauge", k ? "BPF program runs (traps, syscall tracepoints, stack samples) in the "
					     "process's threads per loop iteration, measured since attach."
					   : "Traps (uprobe/USDT hits) per loop iteration in the process, measured since "
					     "attach, not assumed from the probe plan.");
		for (uint32_t i = 0; i < s->ntargets; i++) {
			const struct ls_target_snapshot *t = &s->targets[i];
			double hits, traps;

			if (!loops_shown(t, ctx))
				continue;
			ls_target_cost(t, NULL, &hits, &traps);	/* < 0: no iteration yet */
			if (traps < 0)
				continue;
			ls_buf_reset(tl);
			target_labels(tl, t);
			sample_double(b, name, tl->p ? tl->p : "", NULL, k ? hits : traps);
		}
	}
}

/* Targets. */
static void render_targets(struct ls_buf *b, const struct ls_snapshot *s, const struct ls_prom_ctx *ctx)
{
	struct ls_buf tl = { 0 };

	render_target_info(b, s, &tl);
	render_probe_cost(b, s, ctx, &tl);
	family(b, "loopscope_target_up", "gauge",
	       "1 while the process is traced, 0 once it exited or was detached (kept for a while after).");
	for (uint32_t i = 0; i < s->ntargets; i++) {
		ls_buf_reset(&tl);
		target_labels(&tl, &s->targets[i]);
		sample_u64(b, "loopscope_target_up", tl.p ? tl.p : "", NULL, s->targets[i].state == LS_TARGET_ATTACHED);
	}
	family(b, "loopscope_loops", "gauge", "Event loops (threads) measured in the process.");
	for (uint32_t i = 0; i < s->ntargets; i++) {
		if (!loops_shown(&s->targets[i], ctx))
			continue;
		ls_buf_reset(&tl);
		target_labels(&tl, &s->targets[i]);
		sample_u64(b, "loopscope_loops", tl.p ? tl.p : "", NULL, s->targets[i].nloops);
	}
	ls_buf_free(&tl);
}

static void render_http_stats(struct ls_buf *b, const struct ls_http_stats *http)
{
	family(b, "loopscope_http_connections", "gauge", "Open HTTP connections (scrapes and /events streams).");
	sample_u64(b, "loopscope_http_connections", "", NULL, (uint64_t)http->open);
	family(b, "loopscope_http_rejected_total", "counter",
	       "HTTP connections refused or dropped: busy (connection limit, every connection busy), "
	       "evicted (idle, closed at the limit for a newcomer), timeout, bad_request.");
	sample_u64(b, "loopscope_http_rejected_total", "", "reason=\"busy\"", http->rejected_busy);
	sample_u64(b, "loopscope_http_rejected_total", "", "reason=\"evicted\"", http->evicted);
	sample_u64(b, "loopscope_http_rejected_total", "", "reason=\"timeout\"", http->timed_out);
	sample_u64(b, "loopscope_http_rejected_total", "", "reason=\"bad_request\"", http->bad_requests);
	family(b, "loopscope_events_dropped_total", "counter",
	       "/events messages not sent to a client that was not reading fast enough.");
	sample_u64(b, "loopscope_events_dropped_total", "", NULL, http->stream_drops);
}

/* The agent itself. */
static void render_agent(struct ls_buf *b, const struct ls_snapshot *s, const struct ls_prom_ctx *ctx)
{
	family(b, "loopscope_attached_targets", "gauge", "Processes the agent is attached to.");
	sample_u64(b, "loopscope_attached_targets", "", NULL, s->self.attached_targets);
	family(b, "loopscope_probe_hits_total", "counter", "BPF program runs, all targets.");
	sample_u64(b, "loopscope_probe_hits_total", "", NULL, s->self.probe_hits);
	family(b, "loopscope_ringbuf_drops_total", "counter", "Episodes lost because the ring buffer was full.");
	sample_u64(b, "loopscope_ringbuf_drops_total", "", NULL, s->self.ringbuf_drops);
	family(b, "loopscope_episodes_total", "counter", "Episodes delivered by the kernel side.");
	sample_u64(b, "loopscope_episodes_total", "", NULL, s->self.episodes);
	family(b, "loopscope_agent_cpu_seconds_total", "counter", "CPU time (user + system) of the agent process.");
	sample_double(b, "loopscope_agent_cpu_seconds_total", "", NULL, s->self.cpu_s);
	family(b, "loopscope_agent_resident_memory_bytes", "gauge", "Resident memory of the agent process.");
	sample_u64(b, "loopscope_agent_resident_memory_bytes", "", NULL, s->self.rss_bytes);
	family(b, "loopscope_scrape_duration_seconds", "gauge",
	       "Time the previous /metrics response took to build (snapshot, render, compress).");
	sample_double(b, "loopscope_scrape_duration_seconds", "", NULL, ctx->last_scrape_s);
	family(b, "loopscope_scrapes_total", "counter", "/metrics responses served before this body was rendered.");
	sample_u64(b, "loopscope_scrapes_total", "", NULL, ctx->scrapes);
	family(b, "loopscope_render_duration_seconds", "gauge",
	       "Time the previous render of this exposition took, plus its gzip when one was asked for.");
	sample_double(b, "loopscope_render_duration_seconds", "", NULL, ctx->last_render_s);
	family(b, "loopscope_renders_total", "counter",
	       "Times the exposition was rendered, this one included (one per snapshot; scrapes in between get the cached body).");
	sample_u64(b, "loopscope_renders_total", "", NULL, ctx->renders);
	if (ctx->http)
		render_http_stats(b, ctx->http);
	family(b, "loopscope_build_info", "gauge", "The loopscope version serving these metrics (value 1).");
	sample_u64(b, "loopscope_build_info", "", "version=\"" LOOPSCOPE_VERSION "\"", 1);
}

void ls_prom_render(const struct ls_snapshot *s, const struct ls_prom_ctx *ctx, struct ls_buf *b)
{
	struct loopref *refs = NULL;
	size_t n = 0;

	leset_init();
	if (collect_loops(s, ctx, &refs, &n)) {
		b->oom = 1;
		return;
	}
	render_targets(b, s, ctx);
	render_loops(b, refs, n, ctx);
	if (ctx->compat_prom_client)
		render_compat(b, refs, n, ctx);
	render_agent(b, s, ctx);
	free_loops(refs, n);
}
