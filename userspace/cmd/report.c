/* report.c: `loopscope report FILE -o report.html`, a recording as one self-contained
 * HTML page for a ticket: no script, no font, no stylesheet from anywhere else; the
 * plots are inline SVG, their tooltips SVG <title>s.
 *
 * It replays the file through the same ls_source as stat and top (unpaced), keeps one
 * point per recorded interval per loop (utilization, delay p50/p99/max, GC), the first
 * and last cumulative snapshot of each loop (the whole-recording summary) and every
 * episode, then writes the page in one pass. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "buf.h"
#include "options.h"
#include "profile_out.h"
#include "replay.h"
#include "stacktab.h"
#include "topmodel.h"

#define WORST_DEFAULT 10
#define CHART_W 920
#define CHART_H 170
#define PAD_L 84
#define PAD_R 12
#define PAD_T 12
#define PAD_B 24

struct point {
	uint64_t t;			/* end of the interval (recording clock) */
	double util;
	uint64_t p50, p99, max;		/* delay */
	double gc_share;		/* of the interval, in GC pauses */
	double iter_rate;
};

struct loop_rec {
	int32_t pid;
	uint32_t tid;
	char name[16];
	struct ls_loop_snapshot first, last;
	uint64_t first_ns, last_ns;
	struct point *pts;
	size_t npts, cap;
};

struct rep {
	struct ls_snapshot final;	/* the last snapshot: targets as they ended */
	struct ls_snapshot prev;
	int have_prev;
	struct loop_rec *loops;
	size_t nloops;
	struct ls_episode *eps;
	size_t neps, epcap;
	uint64_t t0, t1;		/* first and last snapshot */
	uint64_t nsnap;
	int oom;
};

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct rep *r = arg;

	/* An end replaces its start (its kind may have changed: a stall that was a drain
	 * ends as a starvation); starts without an end stay (in progress when cut). */
	for (size_t i = 0; i < r->neps; i++) {
		struct ls_episode *e = &r->eps[i];

		if (e->pid == ep->pid && e->tid == ep->tid && e->start_ns == ep->start_ns) {
			if (ep->end_ns)
				*e = *ep;
			return;
		}
	}
	if (r->neps == r->epcap) {
		size_t cap = r->epcap ? r->epcap * 2 : 64;
		struct ls_episode *n = realloc(r->eps, cap * sizeof(*n));

		if (!n) {
			r->oom = 1;
			return;
		}
		r->eps = n;
		r->epcap = cap;
	}
	r->eps[r->neps++] = *ep;
}

static struct loop_rec *find_loop(struct rep *r, int32_t pid, uint32_t tid)
{
	struct loop_rec *n;

	for (size_t i = 0; i < r->nloops; i++)
		if (r->loops[i].pid == pid && r->loops[i].tid == tid)
			return &r->loops[i];
	if (!(n = realloc(r->loops, (r->nloops + 1) * sizeof(*n))))
		return NULL;
	r->loops = n;
	n = &r->loops[r->nloops++];
	memset(n, 0, sizeof(*n));
	n->pid = pid;
	n->tid = tid;
	return n;
}

static const struct ls_loop_snapshot *prev_loop(const struct ls_snapshot *s, int32_t pid, uint32_t tid)
{
	const struct ls_target_snapshot *t = ls_snapshot_find(s, pid);

	for (uint32_t i = 0; t && i < t->nloops; i++)
		if (t->loops[i].tid == tid)
			return &t->loops[i];
	return NULL;
}

static int take(struct rep *r, const struct ls_snapshot *s)
{
	if (!r->nsnap++)
		r->t0 = s->mono_ns;
	r->t1 = s->mono_ns;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];

		for (uint32_t j = 0; j < t->nloops; j++) {
			const struct ls_loop_snapshot *l = &t->loops[j];
			const struct ls_loop_snapshot *p = r->have_prev ? prev_loop(&r->prev, t->pid, l->tid) : NULL;
			struct loop_rec *lr = find_loop(r, t->pid, l->tid);
			struct ls_loop_summary sum;
			double span;

			if (!lr)
				return -ENOMEM;
			if (!lr->first_ns) {
				lr->first = *l;
				lr->first_ns = s->mono_ns;
			}
			lr->last = *l;
			lr->last_ns = s->mono_ns;
			memcpy(lr->name, l->name, sizeof(lr->name));
			if (!p)
				continue;
			span = (double)(s->mono_ns - r->prev.mono_ns) / 1e9;
			ls_summarize(l, p, span, &sum);
			if (lr->npts == lr->cap) {
				size_t cap = lr->cap ? lr->cap * 2 : 256;
				struct point *n = realloc(lr->pts, cap * sizeof(*n));

				if (!n)
					return -ENOMEM;
				lr->pts = n;
				lr->cap = cap;
			}
			lr->pts[lr->npts++] = (struct point){
				.t = s->mono_ns, .util = sum.utilization, .p50 = sum.delay.p50_ns, .p99 = sum.delay.p99_ns,
				.max = sum.delay.max_ns, .gc_share = span > 0 ? (double)sum.gc.total_ns / 1e9 / span : 0,
				.iter_rate = span > 0 ? (double)sum.iterations / span : 0,
			};
		}
	}
	if (r->have_prev)
		ls_snapshot_free(&r->prev);
	r->have_prev = ls_snapshot_copy(&r->prev, s) == 0;
	ls_snapshot_free(&r->final);
	return ls_snapshot_copy(&r->final, s);
}

/* ---------------------------------------------------------------- HTML pieces */

static void esc(struct ls_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': ls_buf_puts(b, "&lt;"); break;
		case '>': ls_buf_puts(b, "&gt;"); break;
		case '&': ls_buf_puts(b, "&amp;"); break;
		case '"': ls_buf_puts(b, "&quot;"); break;
		case '\'': ls_buf_puts(b, "&#39;"); break;
		default:
			if ((unsigned char)*s < 0x20)
				ls_buf_puts(b, " ");
			else
				ls_buf_append(b, s, 1);
		}
	}
}

static const char *ns_str(char *buf, size_t len, uint64_t ns)
{
	top_fmt_ns(buf, len, ns);
	return buf;
}

/* Wall-clock text (UTC) of a recording-clock time. */
static const char *wall_str(char *buf, size_t len, const struct ls_rec_info *in, uint64_t mono)
{
	time_t t = (time_t)((in->wall_ns + (mono - in->mono_ns)) / 1000000000ull);
	struct tm tm;

	if (!in->wall_ns || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "+%.1f s", (double)(mono - in->mono_ns) / 1e9);
	return buf;
}

static const char *const kind_color[LS_EP_NKINDS] = { "#d62728", "#9467bd", "#8c564b", "#2ca02c", "#7f7f7f" };
static const char *const phase_color[LS_NPHASES + 1] = { "#1f77b4", "#ff7f0e", "#bcbd22", "#17becf",
							  "#aec7e8", "#98df8a", "#c5b0d5", "#dddddd" };

struct series {
	const char *label, *color;
	double *y;
};

static double ymap(double v, double lo, double hi, int logy)
{
	double f;

	if (logy) {
		v = v < lo ? lo : v;
		f = (log10(v) - log10(lo)) / (log10(hi) - log10(lo));
	} else {
		f = hi > lo ? (v - lo) / (hi - lo) : 0;
	}
	return PAD_T + (1 - f) * (CHART_H - PAD_T - PAD_B);
}

/* A line chart over the recording's span; logy plots nanoseconds on a log scale. */
static void chart(struct ls_buf *b, const char *title, const struct point *pts, size_t n, const struct series *sv,
		  int ns, uint64_t t0, uint64_t t1, int logy, double ymax_fixed)
{
	double lo = logy ? 1e4 : 0, hi = ymax_fixed, span = t1 > t0 ? (double)(t1 - t0) : 1;
	double plot_w = CHART_W - PAD_L - PAD_R;
	char a[32];

	for (int s = 0; s < ns && !ymax_fixed; s++)
		for (size_t i = 0; i < n; i++)
			if (sv[s].y[i] > hi)
				hi = sv[s].y[i];
	if (logy) {
		double top = 1e5;

		while (top < hi * 1.01)
			top *= 10;
		hi = top;
	} else if (hi <= 0) {
		hi = 1;
	}
	ls_buf_printf(b, "<figure><figcaption>%s", title);
	for (int s = 0; s < ns; s++)
		ls_buf_printf(b, " <span class=\"key\" style=\"background:%s\"></span>%s", sv[s].color, sv[s].label);
	ls_buf_printf(b, "</figcaption><svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
		      "role=\"img\" aria-label=\"%s\">", CHART_W, CHART_H, CHART_W, CHART_H, title);
	/* Grid and y labels: decades on a log scale, quarters on a linear one. */
	for (int g = 0; g <= 4; g++) {
		double v = logy ? 0 : hi * g / 4;
		double y;

		if (logy) {
			v = lo * pow(10, g);
			if (v > hi)
				break;
		}
		y = ymap(v, lo, hi, logy);
		ls_buf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>", PAD_L, y,
			      CHART_W - PAD_R, y);
		if (logy || ymax_fixed == 0)
			ls_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%s</text>", PAD_L - 4, y + 4,
				      ns_str(a, sizeof(a), (uint64_t)v));
		else
			ls_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%.0f%%</text>", PAD_L - 4, y + 4,
				      v * 100);
	}
	for (int g = 0; g <= 4; g++) {
		double x = PAD_L + plot_w * g / 4;
		uint64_t sec = (uint64_t)(span * g / 4 / 1e9);

		ls_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%lu:%02lu</text>", x, CHART_H - 6,
			      (unsigned long)(sec / 60), (unsigned long)(sec % 60));
	}
	for (int s = 0; s < ns; s++) {
		ls_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", sv[s].color);
		for (size_t i = 0; i < n; i++)
			ls_buf_printf(b, "%.1f,%.1f ", PAD_L + plot_w * (double)(pts[i].t - t0) / span,
				      ymap(sv[s].y[i], lo, hi, logy));
		ls_buf_puts(b, "\"/>");
	}
	ls_buf_puts(b, "</svg></figure>\n");
}

static void loop_charts(struct ls_buf *b, const struct loop_rec *l, uint64_t t0, uint64_t t1)
{
	double *y = calloc(l->npts * 5 + 1, sizeof(double));

	if (!y) {
		b->oom = 1;
		return;
	}
	for (size_t i = 0; i < l->npts; i++) {
		y[i] = l->pts[i].util;
		y[l->npts + i] = (double)l->pts[i].p50;
		y[2 * l->npts + i] = (double)l->pts[i].p99;
		y[3 * l->npts + i] = (double)l->pts[i].max;
		y[4 * l->npts + i] = l->pts[i].gc_share;
	}
	{
		struct series u[] = { { "utilization", "#1f77b4", y }, { "time in GC", "#2ca02c", y + 4 * l->npts } };
		struct series d[] = { { "p50", "#2ca02c", y + l->npts },
				      { "p99", "#ff7f0e", y + 2 * l->npts },
				      { "max", "#d62728", y + 3 * l->npts } };

		chart(b, "Utilization per interval", l->pts, l->npts, u, l->last.has & LS_HAS_GC ? 2 : 1, t0, t1, 0, 1.0);
		chart(b, "Event-loop delay per interval (log scale)", l->pts, l->npts, d, 3, t0, t1, 1, 0);
	}
	free(y);
}

static void quant_row(struct ls_buf *b, const char *name, const struct ls_quant *q, double span_ns)
{
	char a[32], c[32], d[32];

	ls_buf_printf(b, "<tr><td>%s</td><td>%.1f%%</td><td>%lu</td><td>%s</td><td>%s</td><td>%s</td></tr>", name,
		      span_ns > 0 ? 100.0 * (double)q->total_ns / span_ns : 0.0, (unsigned long)q->count,
		      ns_str(a, sizeof(a), q->p50_ns), ns_str(c, sizeof(c), q->p99_ns), ns_str(d, sizeof(d), q->max_ns));
}

static void loop_summary(struct ls_buf *b, const struct loop_rec *l, const struct ls_target_snapshot *t)
{
	struct ls_loop_summary s;
	double span = (double)(l->last_ns - l->first_ns);
	double other = span;
	char a[32], c[32], d[32];

	ls_summarize(&l->last, &l->first, span / 1e9, &s);
	ls_buf_printf(b, "<table class=\"kv\"><tr><th>span</th><td>%.1f s</td><th>iterations</th><td>%.1f/s</td>"
		      "<th>utilization</th><td>%.1f%%</td></tr>", span / 1e9,
		      span > 0 ? (double)s.iterations * 1e9 / span : 0.0, s.utilization * 100);
	ls_buf_printf(b, "<tr><th>delay p50</th><td>%s</td><th>delay p99</th><td>%s</td><th>delay max</th><td>%s</td></tr>",
		      ns_str(a, sizeof(a), s.delay.p50_ns), ns_str(c, sizeof(c), s.delay.p99_ns),
		      ns_str(d, sizeof(d), s.delay.max_ns));
	if (s.has & LS_HAS_DRAINS) {
		ls_buf_printf(b, "<tr><th>nextTick</th><td>%lu drains, longest %s</td><th>microtasks</th>"
			      "<td>%lu drains, longest %s</td><th>starvation</th><td>%lu nextTick, %lu microtask</td></tr>",
			      (unsigned long)s.ticks.drains, ns_str(a, sizeof(a), s.ticks.max_drain_ns),
			      (unsigned long)s.microtasks.drains, ns_str(c, sizeof(c), s.microtasks.max_drain_ns),
			      (unsigned long)s.ticks.starvation_episodes, (unsigned long)s.microtasks.starvation_episodes);
	}
	if (s.has & LS_HAS_GC)
		ls_buf_printf(b, "<tr><th>GC pauses</th><td>%lu, %s in all</td><th>GC p99</th><td>%s</td><th>GC max</th>"
			      "<td>%s</td></tr>", (unsigned long)s.gc.count, ns_str(a, sizeof(a), s.gc.total_ns),
			      ns_str(c, sizeof(c), s.gc.p99_ns), ns_str(d, sizeof(d), s.gc.max_ns));
	ls_buf_printf(b, "<tr><th>stalls</th><td>%lu</td><th>tier</th><td>", (unsigned long)s.stall_episodes);
	esc(b, t ? t->tier : "");
	ls_buf_puts(b, "</td><th></th><td></td></tr></table>\n");
	if (!(s.has & LS_HAS_PHASES) || span <= 0) {
		ls_buf_puts(b, "<p class=\"note\">No per-phase times in this recording (the probe tier measures "
			       "delay and utilization only; record with --probes phases for them).</p>\n");
		return;
	}
	/* Per-phase shares: one stacked bar, then the table. */
	ls_buf_printf(b, "<svg class=\"bar\" viewBox=\"0 0 %d 22\" width=\"%d\" height=\"22\" role=\"img\" "
		      "aria-label=\"phase shares\">", CHART_W, CHART_W);
	{
		double x = 0;

		for (int p = 0; p <= LS_NPHASES; p++) {
			double share = p < LS_NPHASES ? (double)s.phase[p].total_ns / span : other / span;
			double w = share * CHART_W;

			if (p < LS_NPHASES)
				other -= (double)s.phase[p].total_ns;
			if (share <= 0)
				continue;
			ls_buf_printf(b, "<rect x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"22\" fill=\"%s\"><title>%s %.1f%%"
				      "</title></rect>", x, w, phase_color[p], p < LS_NPHASES ? ls_phase_names[p] : "other",
				      share * 100);
			x += w;
		}
	}
	ls_buf_puts(b, "</svg>\n<p>");
	for (int p = 0; p <= LS_NPHASES; p++)
		ls_buf_printf(b, "<span class=\"key\" style=\"background:%s\"></span>%s ", phase_color[p],
			      p < LS_NPHASES ? ls_phase_names[p] : "other (in no phase)");
	ls_buf_puts(b, "</p>\n<table><tr><th>phase</th><th>share</th><th>count</th><th>p50</th><th>p99</th>"
		       "<th>max</th></tr>");
	for (int p = 0; p < LS_NPHASES; p++)
		quant_row(b, ls_phase_names[p], &s.phase[p], span);
	ls_buf_puts(b, "</table>\n");
}

static int ep_longer(const void *a, const void *b)
{
	const struct ls_episode *x = a, *y = b;
	uint64_t dx = x->end_ns ? x->end_ns - x->start_ns : 0, dy = y->end_ns ? y->end_ns - y->start_ns : 0;

	return dx < dy ? 1 : dx > dy ? -1 : 0;
}

static void timeline(struct ls_buf *b, const struct rep *r, const struct ls_rec_info *in)
{
	double span = r->t1 > r->t0 ? (double)(r->t1 - r->t0) : 1, plot_w = CHART_W - PAD_L - PAD_R;
	int lane_h = 22, h = PAD_T + PAD_B + lane_h * (int)(r->nloops ? r->nloops : 1);
	char a[32], w[48];

	ls_buf_printf(b, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
		      "aria-label=\"episode timeline\">", CHART_W, h, CHART_W, h);
	for (size_t i = 0; i < r->nloops; i++) {
		int y = PAD_T + lane_h * (int)i;

		ls_buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
			      "<text x=\"%d\" y=\"%d\" class=\"yl\">", PAD_L, y + lane_h / 2, CHART_W - PAD_R,
			      y + lane_h / 2, PAD_L - 4, y + lane_h / 2 + 4);
		/* The main thread's loop by its pid; other loops pid/tid. */
		if ((uint32_t)r->loops[i].pid == r->loops[i].tid)
			ls_buf_printf(b, "pid %d</text>", r->loops[i].pid);
		else
			ls_buf_printf(b, "%d/%u</text>", r->loops[i].pid, r->loops[i].tid);
	}
	for (int g = 0; g <= 4; g++) {
		uint64_t sec = (uint64_t)(span * g / 4 / 1e9);

		ls_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%lu:%02lu</text>", PAD_L + plot_w * g / 4,
			      h - 6, (unsigned long)(sec / 60), (unsigned long)(sec % 60));
	}
	for (size_t e = 0; e < r->neps; e++) {
		const struct ls_episode *ep = &r->eps[e];
		uint64_t end = ep->end_ns ? ep->end_ns : r->t1;
		size_t lane = 0;
		double x0, x1;

		if (ep->kind >= LS_EP_NKINDS)
			continue;
		for (size_t i = 0; i < r->nloops; i++)
			if (r->loops[i].pid == ep->pid && (r->loops[i].tid == ep->tid || ep->kind == LS_EP_TARGET_EXIT))
				lane = i;
		x0 = PAD_L + plot_w * (double)(ep->start_ns > r->t0 ? ep->start_ns - r->t0 : 0) / span;
		x1 = PAD_L + plot_w * (double)(end > r->t0 ? end - r->t0 : 0) / span;
		if (x1 - x0 < 2)
			x1 = x0 + 2;
		ls_buf_printf(b, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s in %s, %s%s"
			      " at %s</title></rect>", x0, PAD_T + lane_h * (int)lane + 4, x1 - x0, lane_h - 8,
			      kind_color[ep->kind], ls_episode_kind_name(ep->kind), ls_phase_name(ep->phase),
			      ns_str(a, sizeof(a), end - ep->start_ns), ep->end_ns ? "" : " (no end recorded)",
			      wall_str(w, sizeof(w), in, ep->start_ns));
	}
	ls_buf_puts(b, "</svg>\n<p>");
	for (int k = 0; k < LS_EP_NKINDS; k++)
		ls_buf_printf(b, "<span class=\"key\" style=\"background:%s\"></span>%s ", kind_color[k],
			      ls_episode_kind_name(k));
	ls_buf_puts(b, "</p>\n");
}

static void base64(struct ls_buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		char q[4] = { tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
			      i + 2 < n ? tab[v & 63] : '=' };

		ls_buf_append(b, q, 4);
	}
}

/* An episode's stacks: the flame graph (wire/flamegraph.c) as an image, so its own
 * script and ids stay out of the page, and the dominant stacks as text to paste. */
static void episode_stacks(struct ls_buf *b, size_t rank, const struct ls_episode *e, const struct ls_rec_info *in,
			   const struct ls_snapshot *final)
{
	static char lines[64][LS_STACK_LINE];
	const struct ls_target_snapshot *t = ls_snapshot_find(final, e->pid);
	struct ls_profile_meta meta = {
		.start_ns = in->wall_ns ? in->wall_ns + (e->start_ns - in->mono_ns) : 0,
		.duration_ns = e->end_ns - e->start_ns, .pid = e->pid, .comm = t ? t->comm : NULL,
	};
	struct ls_buf svg = { 0 };
	size_t n;
	char a[32];

	ls_buf_printf(b, "<h3 id=\"ep%zu\">#%zu %s in %s, %s: %u samples</h3>\n", rank, rank,
		      ls_episode_kind_name(e->kind), ls_phase_name(e->phase), ns_str(a, sizeof(a), e->end_ns - e->start_ns),
		      e->samples);
	if (ls_profile_svg(e->stacks->stacks, e->stacks->nstacks, &meta, &svg) == 0 && !svg.oom) {
		ls_buf_printf(b, "<img class=\"flame\" alt=\"flame graph of episode %zu\" src=\"data:image/svg+xml;base64,", rank);
		base64(b, (const unsigned char *)svg.p, svg.len);
		ls_buf_puts(b, "\">\n");
	}
	ls_buf_free(&svg);
	n = ls_stack_text(e->stacks, 3, 14, lines, sizeof(lines) / sizeof(lines[0]));
	ls_buf_puts(b, "<pre>");
	for (size_t i = 0; i < n; i++) {
		esc(b, lines[i]);
		ls_buf_puts(b, "\n");
	}
	ls_buf_puts(b, "</pre>\n");
}

static void worst(struct ls_buf *b, struct rep *r, const struct ls_rec_info *in, size_t nworst)
{
	struct ls_episode *sorted;
	size_t n = 0;
	char a[32], w[48];

	if (!r->neps) {
		ls_buf_puts(b, "<p>No episodes: no phase, drain or GC pause ran past the threshold.</p>\n");
		return;
	}
	if (!(sorted = malloc(r->neps * sizeof(*sorted)))) {
		b->oom = 1;
		return;
	}
	for (size_t i = 0; i < r->neps; i++)
		if (r->eps[i].kind != LS_EP_TARGET_EXIT)
			sorted[n++] = r->eps[i];
	qsort(sorted, n, sizeof(*sorted), ep_longer);
	if (n > nworst)
		n = nworst;
	ls_buf_puts(b, "<table><tr><th>#</th><th>when</th><th>pid/tid</th><th>kind</th><th>phase</th><th>duration</th>"
		       "<th>callbacks</th><th>stacks</th></tr>");
	for (size_t i = 0; i < n; i++) {
		const struct ls_episode *e = &sorted[i];

		ls_buf_printf(b, "<tr><td>%zu</td><td>%s</td><td>%d/%u</td><td><span class=\"key\" style=\"background:%s\">"
			      "</span>%s</td><td>%s</td><td>%s</td><td>%lu</td>", i + 1,
			      wall_str(w, sizeof(w), in, e->start_ns), e->pid, e->tid,
			      e->kind < LS_EP_NKINDS ? kind_color[e->kind] : "#000", ls_episode_kind_name(e->kind),
			      ls_phase_name(e->phase), e->end_ns ? ns_str(a, sizeof(a), e->end_ns - e->start_ns) : "no end",
			      (unsigned long)e->callbacks);
		if (e->stacks && e->stacks->nstacks)
			ls_buf_printf(b, "<td><a href=\"#ep%zu\">%u samples</a></td></tr>", i + 1, e->samples);
		else
			ls_buf_puts(b, "<td>-</td></tr>");
	}
	ls_buf_puts(b, "</table>\n");
	{
		size_t with = 0;

		for (size_t i = 0; i < n; i++)
			if (sorted[i].stacks && sorted[i].stacks->nstacks) {
				if (!with++)
					ls_buf_puts(b, "<h2>Where the worst episodes were</h2>\n<p class=\"note\">Stacks "
						       "sampled while each ran, leaf at the top of the text, root at the bottom "
						       "of the flame graph; width is the share of samples.</p>\n");
				episode_stacks(b, i + 1, &sorted[i], in, &r->final);
			}
		if (!with)
			ls_buf_puts(b, "<p class=\"note\">Stacks: none of these episodes has stack samples in the "
				       "recording (the probe tier in use takes none, or they were too short to be "
				       "sampled), so no flame graphs.</p>\n");
	}
	free(sorted);
}

static const char style[] =
	"body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:960px;"
	"color:#222;background:#fff}h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;"
	"border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;"
	"margin:6px 0}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee;font-variant-numeric:"
	"tabular-nums}th{color:#555;font-weight:600}.meta td{border:0}.note{color:#666}.warn{background:#fff3cd;"
	"border:1px solid #e0c36a;padding:6px 10px}figure{margin:8px 0}figcaption{font-size:13px;color:#444}"
	".key{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}"
	"svg text{font:11px sans-serif;fill:#555}.yl{text-anchor:end}.xl{text-anchor:middle}"
	".grid{stroke:#e4e4e4;stroke-width:1}.chart,.bar,.flame{display:block;max-width:100%;height:auto}"
	"pre{font-size:12px;background:#f7f7f7;padding:6px 8px;overflow-x:auto}";

static int render(struct ls_buf *b, struct rep *r, const struct ls_rec_info *in, const char *path,
		  const char *warning, int clean, size_t nworst)
{
	char a[48], c[48];

	ls_buf_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		      "<meta name=\"generator\" content=\"loopscope %s\"><title>loopscope report: ", LOOPSCOPE_VERSION);
	esc(b, in->host);
	ls_buf_printf(b, " %s</title><style>%s</style></head><body>\n", wall_str(a, sizeof(a), in, r->t0), style);
	ls_buf_puts(b, "<h1>loopscope report</h1>\n<table class=\"meta\"><tr><td>recording</td><td>");
	esc(b, path);
	ls_buf_printf(b, "</td></tr><tr><td>from</td><td>%s</td></tr><tr><td>to</td><td>%s (%.1f s, %lu snapshots)"
		      "</td></tr><tr><td>host</td><td>", wall_str(a, sizeof(a), in, r->t0),
		      wall_str(c, sizeof(c), in, r->t1), (double)(r->t1 - r->t0) / 1e9, (unsigned long)r->nsnap);
	esc(b, in->host);
	ls_buf_puts(b, " (");
	esc(b, in->kernel);
	ls_buf_puts(b, ")</td></tr><tr><td>command</td><td><code>");
	esc(b, in->command);
	ls_buf_printf(b, "</code></td></tr><tr><td>recorded by</td><td>loopscope ");
	esc(b, in->version);
	ls_buf_printf(b, ", interval %s, threshold %s</td></tr></table>\n", ns_str(a, sizeof(a), in->interval_ns),
		      ns_str(c, sizeof(c), in->threshold_ns));
	if (warning[0]) {
		ls_buf_puts(b, "<p class=\"warn\">");
		esc(b, warning);
		ls_buf_puts(b, "</p>\n");
	} else if (!clean) {
		ls_buf_puts(b, "<p class=\"warn\">The recording has no end mark: the recorder was stopped abruptly "
			       "(killed, power loss); everything up to its last block is here.</p>\n");
	}

	ls_buf_puts(b, "<h2>Targets</h2>\n<table><tr><th>pid</th><th>command</th><th>runtime</th><th>probes</th>"
		       "<th>loops</th><th>state</th><th>executable</th></tr>");
	for (uint32_t i = 0; i < r->final.ntargets; i++) {
		const struct ls_target_snapshot *t = &r->final.targets[i];

		ls_buf_printf(b, "<tr><td>%d</td><td>", t->pid);
		esc(b, t->comm);
		ls_buf_printf(b, "</td><td>%s</td><td>", ls_runtime_name(t->runtime));
		esc(b, t->tier);
		ls_buf_printf(b, "</td><td>%u</td><td>%s</td><td>", t->nloops,
			      t->state == LS_TARGET_ATTACHED ? "attached" : t->state == LS_TARGET_EXITED ? "exited"
											: "detached");
		esc(b, t->exe);
		ls_buf_puts(b, "</td></tr>");
		if (t->note[0]) {
			ls_buf_puts(b, "<tr><td></td><td colspan=\"6\" class=\"note\">");
			esc(b, t->note);
			ls_buf_puts(b, "</td></tr>");
		}
	}
	ls_buf_puts(b, "</table>\n<h2>Episode timeline</h2>\n");
	timeline(b, r, in);
	ls_buf_printf(b, "<h2>Worst episodes</h2>\n");
	worst(b, r, in, nworst);
	for (size_t i = 0; i < r->nloops; i++) {
		const struct loop_rec *l = &r->loops[i];
		const struct ls_target_snapshot *t = ls_snapshot_find(&r->final, l->pid);

		ls_buf_printf(b, "<h2>Loop %d/%u (", l->pid, l->tid);
		esc(b, l->name);
		ls_buf_printf(b, ")%s%s</h2>\n", t ? ", " : "", t ? ls_runtime_name(t->runtime) : "");
		loop_summary(b, l, t);
		if (l->npts)
			loop_charts(b, l, r->t0, r->t1);
	}
	ls_buf_printf(b, "<p class=\"note\">Written by loopscope %s from %s. Times are UTC; delay is the time the "
		      "loop was not polling for I/O between two polls.</p>\n</body></html>\n", LOOPSCOPE_VERSION,
		      clean ? "a complete recording" : "a recording cut short");
	return b->oom ? -ENOMEM : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: loopscope report FILE -o OUTPUT.html [--worst N]\n\n"
		   "Turn a recording ('loopscope record') into one self-contained HTML page: the\n"
		   "targets and runtimes, utilization and delay p50/p99/max over time, per-phase\n"
		   "shares, starvation and GC, an episode timeline and the worst episodes. The page\n"
		   "loads nothing from anywhere: attach it to a ticket.\n\n"
		   "  -o, --output FILE   the HTML file to write (\"-\" for stdout)\n"
		   "      --worst N       how many of the longest episodes to list (default %d)\n"
		   "  -h, --help          this help\n\n"
		   "Exit status: 0 written (also for a recording cut short, which the page says),\n"
		   "1 the recording is unreadable or damaged (the page covers what came before the\n"
		   "damage) or OUTPUT cannot be written, 2 bad usage. See loopscope(1).\n",
		WORST_DEFAULT);
}

int ls_cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "worst", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ls_source *src = NULL;
	struct rep r = { 0 };
	struct ls_buf b = { 0 };
	const char *out = NULL, *in;
	char err[512] = "", warning[512] = "";
	size_t nworst = WORST_DEFAULT;
	int c, rc, ret = 1, damaged = 0;
	FILE *f = NULL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'w': {
			long v;

			if (ls_opt_integer(optarg, 1, 1000, &v)) {
				fprintf(stderr, "loopscope report: --worst '%s' out of range; give 1..1000\n", optarg);
				return 2;
			}
			nworst = (size_t)v;
			break;
		}
		default:	/* -h, or an option getopt refused */
			return ls_opt_usage(c, usage);
		}
	}
	if (optind + 1 != argc || !out) {
		fprintf(stderr, "loopscope report: give one recording and -o OUTPUT.html; try 'loopscope report --help'\n");
		return 2;
	}
	in = argv[optind];
	rc = ls_replay_open(in, 0, &src, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "loopscope report: %s\n", err);
		return 1;
	}
	src->on_episode = on_episode;
	src->episode_arg = &r;
	for (;;) {
		struct ls_snapshot s = { 0 };

		rc = ls_source_poll(src, 0);
		if (rc == -ENODATA)
			break;
		if (rc) {
			snprintf(warning, sizeof(warning), "%s", rc == -ENOMEM ? "out of memory" : ls_replay_error(src));
			damaged = rc != -EPIPE;
			break;
		}
		if ((rc = ls_source_snapshot(src, &s)) || (rc = take(&r, &s)) || r.oom) {
			ls_snapshot_free(&s);
			fprintf(stderr, "loopscope report: out of memory\n");
			goto cleanup;
		}
		ls_snapshot_free(&s);
	}
	if (!r.nsnap) {
		fprintf(stderr, "loopscope report: %s\n", warning[0] ? warning : "the recording holds no snapshot");
		goto cleanup;
	}
	if (warning[0])
		fprintf(stderr, "loopscope report: %s\n", warning);
	if (render(&b, &r, ls_replay_info(src), in, warning, ls_replay_ended_cleanly(src), nworst)) {
		fprintf(stderr, "loopscope report: out of memory\n");
		goto cleanup;
	}
	f = strcmp(out, "-") ? fopen(out, "w") : stdout;
	if (!f) {
		fprintf(stderr, "loopscope report: cannot create %s: %s\n", out, strerror(errno));
		goto cleanup;
	}
	if (fwrite(b.p, 1, b.len, f) != b.len || fflush(f) || (f != stdout && fclose(f))) {
		fprintf(stderr, "loopscope report: writing %s failed: %s\n", out, strerror(errno));
		if (f != stdout)
			f = NULL;
		goto cleanup;
	}
	f = NULL;
	ret = damaged;
cleanup:
	if (f && f != stdout)
		fclose(f);
	ls_buf_free(&b);
	ls_source_destroy(src);
	ls_snapshot_free(&r.final);
	if (r.have_prev)
		ls_snapshot_free(&r.prev);
	for (size_t i = 0; i < r.nloops; i++)
		free(r.loops[i].pts);
	free(r.loops);
	free(r.eps);
	return ret;
}
