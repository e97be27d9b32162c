/* topdraw.c: the widgets of `loopscope top` (see topdraw.h). Only reads the model. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "topdraw.h"

/* ---------------------------------------------------------------- styles */

enum style {
	ST_NORMAL, ST_TITLE, ST_HEAD, ST_ALERT, ST_RECENT, ST_EXITED, ST_OK, ST_WARN, ST_BAD,
	ST_BAR, ST_SELECTED, ST_DIM, ST_NSTYLES,
};

/* pair 0 means "no colour pair"; mono is the attribute without colour. */
static const struct {
	short fg, bg;
	attr_t color, mono;
} styles[ST_NSTYLES] = {
	[ST_NORMAL] = { .fg = -1, .bg = -1, .color = A_NORMAL, .mono = A_NORMAL },
	[ST_TITLE] = { .fg = COLOR_BLACK, .bg = COLOR_CYAN, .color = A_NORMAL, .mono = A_REVERSE },
	[ST_HEAD] = { .fg = COLOR_CYAN, .bg = -1, .color = A_BOLD, .mono = A_BOLD },
	[ST_ALERT] = { .fg = COLOR_WHITE, .bg = COLOR_RED, .color = A_BOLD, .mono = A_REVERSE | A_BOLD },
	[ST_RECENT] = { .fg = COLOR_YELLOW, .bg = -1, .color = A_BOLD, .mono = A_BOLD },
	[ST_EXITED] = { .fg = COLOR_BLACK, .bg = COLOR_YELLOW, .color = A_NORMAL, .mono = A_REVERSE },
	[ST_OK] = { .fg = COLOR_GREEN, .bg = -1, .color = A_NORMAL, .mono = A_NORMAL },
	[ST_WARN] = { .fg = COLOR_YELLOW, .bg = -1, .color = A_BOLD, .mono = A_BOLD },
	[ST_BAD] = { .fg = COLOR_RED, .bg = -1, .color = A_BOLD, .mono = A_BOLD | A_UNDERLINE },
	[ST_BAR] = { .fg = COLOR_GREEN, .bg = -1, .color = A_NORMAL, .mono = A_NORMAL },
	[ST_SELECTED] = { .fg = COLOR_BLACK, .bg = COLOR_WHITE, .color = A_NORMAL, .mono = A_REVERSE },
	[ST_DIM] = { .fg = -1, .bg = -1, .color = A_DIM, .mono = A_DIM },
};

static int use_color;

void top_draw_init(struct top_draw_ctx *ctx)
{
	use_color = 0;
	if (!ctx->color || !has_colors() || start_color() != OK) {
		ctx->color = 0;
		return;
	}
	use_default_colors();
	for (int i = 1; i < ST_NSTYLES; i++)
		init_pair((short)i, styles[i].fg, styles[i].bg);
	use_color = 1;
}

static attr_t style(int st)
{
	if (!use_color)
		return styles[st].mono;
	return styles[st].color | (st ? COLOR_PAIR(st) : 0);
}

/* ---------------------------------------------------------------- helpers */

/* printf at (y, x), clipped to the window's width. Returns the columns written. */
static int put(WINDOW *w, int y, int x, int st, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int put(WINDOW *w, int y, int x, int st, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int room = getmaxx(w) - x, n;

	if (room <= 0 || y < 0 || y >= getmaxy(w))
		return 0;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	if (n > room)
		n = room;
	wattrset(w, style(st));
	mvwaddnstr(w, y, x, buf, n);
	wattrset(w, A_NORMAL);
	return n;
}

/* Fill the rest of row y from x with spaces in a style (for bands). */
static void band(WINDOW *w, int y, int x, int st)
{
	int cols = getmaxx(w);

	wattrset(w, style(st));
	for (int i = x; i < cols; i++)
		mvwaddch(w, y, i, ' ');
	wattrset(w, A_NORMAL);
}

static const char *ns(char *buf, size_t len, uint64_t v)
{
	top_fmt_ns(buf, len, v);
	return buf;
}

static const char *rate(char *buf, size_t len, double r)
{
	if (r < 1000)
		snprintf(buf, len, "%.1f", r);
	else if (r < 1e6)
		snprintf(buf, len, "%.1fk", r / 1e3);
	else
		snprintf(buf, len, "%.2fM", r / 1e6);
	return buf;
}

static const char *span(char *buf, size_t len, double s)
{
	if (s < 60)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
	return buf;
}

static double per_s(uint64_t n, double interval_s)
{
	return interval_s > 0 ? (double)n / interval_s : 0;
}

/* Draw `cells` cells of a horizontal bar filled to frac (eighths with UTF-8). */
static void bar(WINDOW *w, int y, int x, int cells, double frac, int st, const struct top_draw_ctx *c)
{
	static const char *const eighths[] = { "", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589" };
	int cols = getmaxx(w), units, full, part;

	if (cells <= 0 || x >= cols)
		return;
	if (x + cells > cols)
		cells = cols - x;
	if (frac < 0)
		frac = 0;
	if (frac > 1)
		frac = 1;
	units = (int)lround(frac * cells * 8);
	full = units / 8;
	part = c->utf8 ? units % 8 : 0;
	wattrset(w, style(st));
	wmove(w, y, x);
	for (int i = 0; i < full; i++)
		waddstr(w, c->utf8 ? "\u2588" : "#");
	if (part && full < cells) {
		waddstr(w, eighths[part]);
		full++;
	}
	wattrset(w, style(ST_DIM));
	for (int i = full; i < cells; i++)
		waddstr(w, c->utf8 ? "\u00b7" : ".");
	wattrset(w, A_NORMAL);
}

static void row_state(const struct top_model *m, const struct top_row *r, char *buf, size_t len, int *st)
{
	char d[16];

	*st = ST_NORMAL;
	if (r->target_state == LS_TARGET_EXITED) {
		snprintf(buf, len, "exited");
		*st = ST_WARN;
		return;
	}
	if (r->target_state == LS_TARGET_DETACHED || !r->present) {
		snprintf(buf, len, r->present ? "detached" : "gone");
		*st = ST_WARN;
		return;
	}
	for (uint32_t i = 0; i < m->nalerts; i++) {
		const struct top_alert *a = &m->alerts[i];

		if (a->level != TOP_ALERT_ACTIVE || a->pid != r->pid || a->tid != r->tid)
			continue;
		top_fmt_ns(d, sizeof(d), a->duration_ns);
		if (a->kind == LS_EP_STALL)
			snprintf(buf, len, "STALL %s %s", a->phase < LS_NPHASES ? ls_phase_name(a->phase) : "", d);
		else if (a->kind == LS_EP_TICK_STARVATION)
			snprintf(buf, len, "TICK STARVED %s", d);
		else if (a->kind == LS_EP_MICROTASK_STARVATION)
			snprintf(buf, len, "MICROTASKS %s", d);
		else
			snprintf(buf, len, "GC %s", d);
		*st = ST_BAD;
		return;
	}
	switch (r->live_state) {
	case LS_LIVE_POLLING:
		snprintf(buf, len, "polling");
		*st = ST_OK;
		break;
	case LS_LIVE_RUNNING:
		snprintf(buf, len, "running %s", r->live_phase < LS_NPHASES ? ls_phase_name(r->live_phase) : "");
		break;
	default:
		snprintf(buf, len, "attached");
	}
}

/* ---------------------------------------------------------------- widgets */

struct area {
	int y, h, cols;
};

struct widget {
	const char *name;
	/* Rows wanted at this width; 0 hides the widget. */
	int (*want)(const struct top_model *m, int cols);
	int min;		/* fewest rows it can be drawn in */
	int shrink;		/* 0 rigid; else shrinks towards min, lowest rank first */
	int keep;		/* higher = dropped later when the screen is short */
	void (*draw)(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a);
};

static int want_one(const struct top_model *m, int cols) { return 1; }

static void draw_title(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	char clock[16] = "", win[16] = "";
	const struct top_row *r = top_model_selected(m);
	time_t t = time(NULL);
	struct tm tm;
	int x;

	band(w, a.y, 0, ST_TITLE);
	x = put(w, a.y, 0, ST_TITLE, " loopscope top");
	x += put(w, a.y, x, ST_TITLE, "  %u loop%s  source %s  refresh %.0fms", m->nrows, m->nrows == 1 ? "" : "s",
		 m->source_name, m->refresh_s * 1000);
	if (r && r->window.interval_s > 0)
		x += put(w, a.y, x, ST_TITLE, "  window %s", span(win, sizeof(win), r->window.interval_s));
	x += put(w, a.y, x, ST_TITLE, "  sort %s", top_sort_name(m->sort));
	if (m->paused)
		x += put(w, a.y, x + 2, ST_ALERT, "PAUSED") + 2;
	if (localtime_r(&t, &tm) && strftime(clock, sizeof(clock), "%H:%M:%S", &tm) && a.cols - x > 10)
		put(w, a.y, a.cols - 9, ST_TITLE, "%s", clock);
}

static int want_alerts(const struct top_model *m, int cols)
{
	int n = (int)m->nalerts;

	return n == 0 ? 1 : n > 3 ? 3 : n;
}

static void draw_alerts(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	char thr[16];

	if (m->nalerts == 0) {
		put(w, a.y, 0, ST_OK, " no stalls or starvation past %s", ns(thr, sizeof(thr), m->opts.stall_ns));
		return;
	}
	for (int i = 0; i < a.h && i < (int)m->nalerts; i++) {
		const struct top_alert *al = &m->alerts[i];
		int st = al->level == TOP_ALERT_ACTIVE ? ST_ALERT : al->level == TOP_ALERT_EXITED ? ST_EXITED : ST_RECENT;
		int x, more = (int)m->nalerts + (int)m->alerts_dropped - a.h;

		if (st != ST_RECENT)
			band(w, a.y + i, 0, st);
		const char *comm = "";

		/* With one process the pid says enough; the width goes to the text. */
		for (uint32_t j = 0; j < m->nrows && m->nrows > 1; j++)
			if (m->rows[j].pid == al->pid)
				comm = m->rows[j].comm;
		x = put(w, a.y + i, 0, st, " %s %d%s%s: %s", al->level == TOP_ALERT_ACTIVE ? "!!" : "  ",
			al->pid, comm[0] ? " " : "", comm, al->text);
		if (i == a.h - 1 && more > 0)
			put(w, a.y + i, x, st, "  (+%d more)", more);
	}
}

static int want_procs(const struct top_model *m, int cols) { return 1 + (int)(m->nrows ? m->nrows : 1); }

static void draw_procs(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	char r1[16], d1[16], state[48];
	int rows = a.h - 1, first = 0;

	put(w, a.y, 0, ST_HEAD, "%7s %-15s %-9s %8s %6s %9s  %s", "PID", "COMM", "RUNTIME", "ITER/S", "UTIL",
	    "DELAY p99", "STATE");
	if (m->nrows == 0) {
		put(w, a.y + 1, 0, ST_DIM, "%7s waiting for the first snapshot...", "");
		return;
	}
	/* Scroll so the selected row is visible. */
	if ((int)m->selected >= rows)
		first = (int)m->selected - rows + 1;
	for (int i = 0; i < rows && first + i < (int)m->nrows; i++) {
		const struct top_row *r = &m->rows[first + i];
		int sel = first + i == (int)m->selected, st, x;

		row_state(m, r, state, sizeof(state), &st);
		if (sel)
			band(w, a.y + 1 + i, 0, ST_SELECTED);
		x = put(w, a.y + 1 + i, 0, sel ? ST_SELECTED : ST_NORMAL, "%7d %-15.15s %-9.9s %8s %5.1f%% %9s  ",
			r->pid, r->comm, ls_runtime_name(r->runtime),
			r->last.interval_s > 0 ? rate(r1, sizeof(r1), per_s(r->last.iterations, r->last.interval_s)) : "-",
			r->last.utilization * 100,
			r->last.delay.count ? ns(d1, sizeof(d1), r->last.delay.p99_ns) : "-");
		put(w, a.y + 1 + i, x, sel && st == ST_NORMAL ? ST_SELECTED : st, "%s", state);
	}
}

/* Phase columns: name, bar, share, p50, p99, max. The bar takes what is left. */
#define PH_NAME 9
#define PH_NUMS 31	/* " 100.0%" + 3 x " %7s" */

static int want_phases(const struct top_model *m, int cols)
{
	const struct top_row *r = top_model_selected(m);

	if (!r)
		return 0;
	return 1 + (r->has & LS_HAS_PHASES ? LS_NPHASES : 1) + (r->note[0] ? 1 : 0);
}

static void draw_phases(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	const struct top_row *r = top_model_selected(m);
	const struct ls_loop_summary *s = &r->window;
	char b1[16], b2[16], b3[16], win[16];
	int barw = a.cols - PH_NAME - PH_NUMS - 1, x;
	double wall = s->interval_s * 1e9;

	x = put(w, a.y, 0, ST_HEAD, "%d %s", r->pid, r->comm);
	x += put(w, a.y, x, ST_NORMAL, "  %s%s%s", ls_runtime_name(r->runtime), r->tier[0] ? "/" : "", r->tier);
	x += put(w, a.y, x, ST_NORMAL, "  window %s", span(win, sizeof(win), s->interval_s));
	if (r->has & LS_HAS_PHASES && a.cols >= PH_NAME + PH_NUMS + 10)
		put(w, a.y, a.cols - 24 > x ? a.cols - 24 : x + 1, ST_HEAD, "%7s %7s %7s", "p50", "p99", "max");
	if (r->note[0] && a.h > 1)
		put(w, a.y + a.h - 1, 2, ST_DIM, "note: %s", r->note);
	if (!(r->has & LS_HAS_PHASES)) {
		if (a.h > 1)
			put(w, a.y + 1, 2, ST_DIM, "per-phase times not measured at probe tier '%s'%s", r->tier,
			    r->runtime == LS_RT_NODE ? " (top --probes phases measures them)" : "");
		return;
	}
	if (barw < 4)
		barw = 0;
	for (int i = 0; i < LS_NPHASES && i + 1 < a.h; i++) {
		const struct ls_quant *q = &s->phase[i];
		double share = wall > 0 ? (double)q->total_ns / wall : 0;
		int y = a.y + 1 + i, hot = r->live_state == LS_LIVE_RUNNING && r->live_phase == (uint32_t)i;

		put(w, y, 0, hot ? ST_WARN : ST_NORMAL, "%s%-*s", hot ? ">" : " ", PH_NAME - 1, ls_phase_names[i]);
		bar(w, y, PH_NAME, barw, share, i == LS_PHASE_POLL ? ST_OK : ST_BAR, c);
		put(w, y, PH_NAME + (barw ? barw + 1 : 0), ST_NORMAL, "%6.1f%% %7s %7s %7s", share * 100,
		    q->count ? ns(b1, sizeof(b1), q->p50_ns) : "-", q->count ? ns(b2, sizeof(b2), q->p99_ns) : "-",
		    q->count ? ns(b3, sizeof(b3), q->max_ns) : "-");
	}
}

static int want_delay(const struct top_model *m, int cols)
{
	const struct top_row *r = top_model_selected(m);

	return r ? (r->has & LS_HAS_DELAY ? 2 : 1) : 0;
}

/* Log scale from 10 us to 1 s: a lag of 100 us and one of 300 ms both show. */
static int spark_level(uint64_t v, int levels)
{
	double lo = log10(1e4), hi = log10(1e9), x;
	int l;

	if (v == 0)
		return 0;
	x = (log10((double)v) - lo) / (hi - lo);
	l = 1 + (int)(x * (levels - 1));
	return l < 1 ? 1 : l >= levels ? levels - 1 : l;
}

static void draw_delay(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	static const char *const blocks[] = { " ", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588" };
	static const char ascii[] = " _.-~=+*#";
	const struct top_row *r = top_model_selected(m);
	const struct ls_loop_summary *s = &r->window;
	char b1[16], b2[16], b3[16], b4[16];
	int x, cells, n = (int)r->hist_len, per;

	if (!(r->has & LS_HAS_DELAY)) {
		put(w, a.y, 0, ST_DIM, " delay not measured");
		return;
	}
	/* Delay over the last ~2 minutes (the strip's span), the rest over the window. */
	x = put(w, a.y, 0, ST_HEAD, "delay");
	x += put(w, a.y, x, ST_DIM, " %s", span(b4, sizeof(b4), r->recent_s));
	x += put(w, a.y, x, ST_NORMAL, " p50 %s  p99 %s  max %s", ns(b1, sizeof(b1), r->recent_delay.p50_ns),
		 ns(b2, sizeof(b2), r->recent_delay.p99_ns), ns(b3, sizeof(b3), r->recent_delay.max_ns));
	x += put(w, a.y, x, ST_NORMAL, "  util %.1f%%", s->utilization * 100);
	if (r->has & LS_HAS_TIMERS && s->timer_lateness.count)
		x += put(w, a.y, x, ST_NORMAL, "  timers late p99 %s", ns(b4, sizeof(b4), s->timer_lateness.p99_ns));
	if (a.h < 2)
		return;
	/* The whole history squeezed into the width: each cell shows the worst interval it covers. */
	cells = a.cols - 14;
	if (cells < 8)
		return;
	per = n > cells ? (n + cells - 1) / cells : 1;
	put(w, a.y + 1, 0, ST_DIM, "%-13s", n ? "last " : "");
	if (n)
		put(w, a.y + 1, 5, ST_DIM, "%s", span(b1, sizeof(b1), n * m->refresh_s));
	wmove(w, a.y + 1, 13);
	waddch(w, c->utf8 ? ' ' : '|');
	for (int i = 0, cell = 0; i < n && cell < cells; i += per, cell++) {
		uint64_t worst = 0;
		int lv, st;

		for (int j = i; j < i + per && j < n; j++) {
			const struct top_point *p = &r->history[(r->hist_head + (uint32_t)j) % TOP_HISTORY];
			if (p->max_ns > worst)
				worst = p->max_ns;
		}
		lv = spark_level(worst, 9);
		st = worst >= m->opts.stall_ns ? ST_BAD : worst >= m->opts.stall_ns / 10 ? ST_WARN : ST_OK;
		wattrset(w, style(st));
		if (c->utf8)
			waddstr(w, blocks[lv]);
		else
			waddch(w, (chtype)(unsigned char)ascii[lv]);
		wattrset(w, A_NORMAL);
	}
}

static int want_drains(const struct top_model *m, int cols)
{
	const struct top_row *r = top_model_selected(m);

	return r && r->has & LS_HAS_DRAINS ? 2 : 0;
}

static void draw_drains(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	const struct top_row *r = top_model_selected(m);
	const struct ls_loop_summary *s = &r->window;
	const struct {
		const char *name;
		const struct ls_drain_summary *d;
		uint32_t live;
	} rows[] = {
		{ "nextTick", &s->ticks, 1 },
		{ "microtask", &s->microtasks, 2 },
	};

	for (int i = 0; i < 2 && i < a.h; i++) {
		const struct ls_drain_summary *d = rows[i].d;
		char b1[16], b2[16], b3[16];
		int x;

		x = put(w, a.y + i, 0, ST_HEAD, "%-10s", rows[i].name);
		x += put(w, a.y + i, x, ST_NORMAL, "%8s drains/s %8s cb/s  max %7s", rate(b1, sizeof(b1), per_s(d->drains, s->interval_s)),
			 rate(b2, sizeof(b2), per_s(d->callbacks, s->interval_s)),
			 d->drains ? ns(b3, sizeof(b3), d->max_drain_ns) : "-");
		x += put(w, a.y + i, x, d->starvation_episodes ? ST_WARN : ST_NORMAL, "  starved %llu",
			 (unsigned long long)d->starvation_episodes);
		if (r->live_drain == rows[i].live)
			put(w, a.y + i, x, ST_WARN, "  draining now");
	}
}

static int want_gc(const struct top_model *m, int cols)
{
	const struct top_row *r = top_model_selected(m);

	return r && r->has & LS_HAS_GC ? 1 : 0;
}

static void draw_gc(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	const struct top_row *r = top_model_selected(m);
	const struct ls_quant *g = &r->window.gc;
	char b1[16], b2[16], b3[16];

	put(w, a.y, 0, ST_HEAD, "%-10s", "GC");
	put(w, a.y, 10, ST_NORMAL, "%llu pauses  total %s  p99 %s  max %s", (unsigned long long)g->count,
	    ns(b1, sizeof(b1), g->total_ns), g->count ? ns(b2, sizeof(b2), g->p99_ns) : "-",
	    g->count ? ns(b3, sizeof(b3), g->max_ns) : "-");
}

static int want_episodes(const struct top_model *m, int cols) { return 1 + (m->log_len ? (int)m->log_len : 1); }

static void draw_episodes(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	put(w, a.y, 0, ST_HEAD, "%-12s %7s %-15s %-20s %-8s %s", "EPISODES", "PID", "COMM", "KIND", "PHASE", "DURATION");
	if (!m->log_len && a.h > 1)
		put(w, a.y + 1, 0, ST_DIM, "%-12s none yet", "");
	for (int i = 0; i + 1 < a.h; i++) {
		const struct top_log_entry *e = top_model_log(m, (uint32_t)i);
		char when[16] = "", dur[24], d[16];
		time_t secs;
		struct tm tm;
		uint64_t wall;
		int st = ST_NORMAL;

		if (!e)
			break;
		wall = m->wall_minus_mono ? e->ep.start_ns + m->wall_minus_mono : 0;
		secs = (time_t)(wall / 1000000000ull);
		if (wall && localtime_r(&secs, &tm)) {
			size_t n = strftime(when, sizeof(when), "%H:%M:%S", &tm);
			snprintf(when + n, sizeof(when) - n, ".%03u", (unsigned)(wall / 1000000 % 1000));
		}
		if (e->ep.kind == LS_EP_TARGET_EXIT)
			snprintf(dur, sizeof(dur), "-");
		else if (e->ep.end_ns)
			snprintf(dur, sizeof(dur), "%s", ns(d, sizeof(d), e->ep.end_ns - e->ep.start_ns));
		else if (e->over)
			snprintf(dur, sizeof(dur), "? (end lost)");
		else {
			snprintf(dur, sizeof(dur), "%s+ now",
				 ns(d, sizeof(d), m->now_ns > e->ep.start_ns ? m->now_ns - e->ep.start_ns : 0));
			st = ST_BAD;
		}
		put(w, a.y + 1 + i, 0, st, "%-12s %7d %-15.15s %-20s %-8s %s", when, e->ep.pid, e->comm,
		    ls_episode_kind_name(e->ep.kind), e->ep.phase < LS_NPHASES ? ls_phase_name(e->ep.phase) : "-", dur);
	}
}

static void draw_footer(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	int x;

	band(w, a.y, 0, ST_TITLE);
	x = put(w, a.y, 0, ST_TITLE, " q quit  p pause  %s select  s sort  r reset  h help", c->utf8 ? "\u2191\u2193/jk" : "j/k");
	if ((m->self.attached_targets || m->self.probe_hits) && a.cols - x >= 30)
		put(w, a.y, x, ST_TITLE, "   agent %.2fs cpu  %llu drops", m->self.cpu_s,
		    (unsigned long long)m->self.ringbuf_drops);
}

/* The screen, top to bottom. Flexible widgets (min < want) shrink first, then the
 * lowest `keep` ones are left out. */
static const struct widget widgets[] = {
	{ .name = "title", .want = want_one, .min = 1, .keep = 10, .draw = draw_title },
	{ .name = "alerts", .want = want_alerts, .min = 1, .shrink = 3, .keep = 10, .draw = draw_alerts },
	{ .name = "processes", .want = want_procs, .min = 2, .shrink = 2, .keep = 8, .draw = draw_procs },
	{ .name = "phases", .want = want_phases, .min = 1 + LS_NPHASES, .keep = 7, .draw = draw_phases },
	{ .name = "delay", .want = want_delay, .min = 1, .shrink = 4, .keep = 6, .draw = draw_delay },
	{ .name = "drains", .want = want_drains, .min = 2, .keep = 5, .draw = draw_drains },
	{ .name = "gc", .want = want_gc, .min = 1, .keep = 3, .draw = draw_gc },
	{ .name = "episodes", .want = want_episodes, .min = 2, .shrink = 1, .keep = 4, .draw = draw_episodes },
	{ .name = "footer", .want = want_one, .min = 1, .keep = 9, .draw = draw_footer },
};
#define NWIDGETS (int)(sizeof(widgets) / sizeof(widgets[0]))

static void draw_help(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c)
{
	static const char *const lines[] = {
		"loopscope top: keys",
		"",
		"q, Ctrl-C    quit (detaches everything)",
		"p            pause / resume the numbers",
		"Up/Down, k/j select a loop",
		"s            sort: pid, delay, util, iter/s",
		"r            reset the window (numbers since now)",
		"h, ?         this help (any key closes it)",
		"",
		"Alerts: a phase or not-polling span past the",
		"stall threshold, a nextTick or microtask drain",
		"past the starvation threshold, a target exit.",
		"Delay strip: worst delay per refresh, log scale",
		"10us..1s; red past the stall threshold.",
	};
	int n = (int)(sizeof(lines) / sizeof(lines[0])), width = 52, rows = getmaxy(w), cols = getmaxx(w);
	int h = n + 2, y0 = (rows - h) / 2, x0 = (cols - width) / 2;

	if (y0 < 0)
		y0 = 0;
	if (x0 < 0)
		x0 = 0;
	for (int i = 0; i < h && y0 + i < rows; i++) {
		wattrset(w, style(ST_SELECTED));
		for (int j = 0; j < width && x0 + j < cols; j++)
			mvwaddch(w, y0 + i, x0 + j, ' ');
		if (i > 0 && i <= n)
			put(w, y0 + i, x0 + 2, ST_SELECTED, "%s", lines[i - 1]);
	}
	wattrset(w, A_NORMAL);
}

void top_draw(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c)
{
	int rows = getmaxy(w), cols = getmaxx(w), want[NWIDGETS], h[NWIDGETS], total = 0, y = 0;

	werase(w);
	for (int i = 0; i < NWIDGETS; i++) {
		want[i] = widgets[i].want(m, cols);
		h[i] = want[i];
		total += h[i];
	}
	/* Shrink the flexible ones in rank order (episodes, processes, alerts, delay). */
	for (int rank = 1; rank < 10 && total > rows; rank++)
		for (int i = 0; i < NWIDGETS && total > rows; i++) {
			int cut = h[i] - (widgets[i].min < want[i] ? widgets[i].min : want[i]);

			if (widgets[i].shrink != rank || cut <= 0)
				continue;
			if (cut > total - rows)
				cut = total - rows;
			h[i] -= cut;
			total -= cut;
		}
	/* Still too short: leave out the least important widgets. */
	for (int keep = 0; keep <= 10 && total > rows; keep++)
		for (int i = NWIDGETS - 1; i >= 0 && total > rows; i--)
			if (widgets[i].keep == keep && h[i]) {
				total -= h[i];
				h[i] = 0;
			}
	/* Room to spare goes to the episode log, then to the process list. */
	for (int i = 0; i < NWIDGETS && total < rows; i++)
		if (!strcmp(widgets[i].name, "episodes") && h[i]) {
			h[i] += rows - total;
			total = rows;
		}
	for (int i = 0; i < NWIDGETS; i++) {
		/* The footer sits on the last line whatever is above it. */
		if (!strcmp(widgets[i].name, "footer") && h[i])
			y = rows - 1;
		if (h[i] <= 0 || y >= rows)
			continue;
		if (y + h[i] > rows)
			h[i] = rows - y;
		widgets[i].draw(w, m, c, (struct area){ .y = y, .h = h[i], .cols = cols });
		y += h[i];
	}
	if (m->help)
		draw_help(w, m, c);
}
