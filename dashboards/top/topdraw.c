/* topdraw.c: the widgets of `loopscope top` (see topdraw.h). Only reads the model. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "topdraw.h"
#include "stacktab.h"

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

/* Like put(), but a text longer than the room is cut at a word boundary (never mid-word;
 * nothing at all if its first word does not fit). */
static int put_words(WINDOW *w, int y, int x, int st, const char *text)
{
	int room = getmaxx(w) - x, n = (int)strlen(text);

	if (room <= 0)
		return 0;
	if (n > room) {
		n = room;
		while (n > 0 && text[n] != ' ')
			n--;
		while (n > 0 && text[n - 1] == ' ')
			n--;
	}
	return n ? put(w, y, x, st, "%.*s", n, text) : 0;
}

/* A line made of pieces, each kept whole: when they do not fit in the width, the ones with
 * the lowest `keep` are left out first; the rest are drawn in their order. */
struct piece {
	char text[96];
	int keep, st;
};

static int draw_pieces(WINDOW *w, int y, int x, int cols, struct piece *p, int n)
{
	int on[16], total = 0;

	for (int i = 0; i < n && i < 16; i++) {
		on[i] = p[i].text[0] != '\0';
		total += on[i] ? (int)strlen(p[i].text) : 0;
	}
	for (int keep = 0; keep <= 10 && total > cols - x; keep++)
		for (int i = n - 1; i >= 0 && total > cols - x; i--)
			if (on[i] && p[i].keep == keep) {
				on[i] = 0;
				total -= (int)strlen(p[i].text);
			}
	for (int i = 0; i < n; i++)
		if (on[i])
			x += put_words(w, y, x, p[i].st, p[i].text);
	return x;
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
	char win[16] = "";
	const struct top_row *r = top_model_selected(m);
	time_t t = time(NULL);
	struct tm tm;
	/* Left out first when narrow: refresh, source, loops, sort; the spans stay (the
	 * clock only where 70 columns leave room for it). */
	struct piece p[8] = {
		{ " loopscope top", 10, ST_TITLE },
		{ "", 4, ST_TITLE },
		{ "", 3, ST_TITLE },
		{ "", 1, ST_TITLE },
		{ "", 9, ST_TITLE },
		{ "", 8, ST_TITLE },
		{ "", 9, ST_ALERT },
		{ "", 5, ST_TITLE },
	};
	int x, clock_w = 0;

	band(w, a.y, 0, ST_TITLE);
	snprintf(p[1].text, sizeof(p[1].text), "  %u loop%s", m->nrows, m->nrows == 1 ? "" : "s");
	snprintf(p[2].text, sizeof(p[2].text), "  source %s", m->source_name);
	if (m->replay.on) {
		/* A replay: of when and where, its state, and the recording's clock. */
		time_t st = (time_t)(m->replay.start_wall_ns / 1000000000ull);
		char when[32] = "?";

		if (localtime_r(&st, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		snprintf(p[0].text, sizeof(p[0].text), " loopscope top REPLAY of %s", when);
		snprintf(p[2].text, sizeof(p[2].text), "  %s", m->replay.host);
		snprintf(p[6].text, sizeof(p[6].text), "  %s %gx +%.1fs", m->replay.ended ? "END" : m->replay.playing ?
			 "PLAY" : "PAUSED", m->replay.speed,
			 m->now_ns > m->replay.start_ns ? (double)(m->now_ns - m->replay.start_ns) / 1e9 : 0.0);
		p[4].keep = 2;	/* narrow: the playback state stays, the spans go */
		if (m->wall_minus_mono)
			t = (time_t)((m->now_ns + m->wall_minus_mono) / 1000000000ull);
	}
	if (!m->replay.on)
		snprintf(p[3].text, sizeof(p[3].text), "  refresh %.0fms", m->refresh_s * 1000);
	/* The two spans on screen: rows (header lines) and the selected loop's detail. */
	if (r && r->window.interval_s > 0)
		snprintf(p[4].text, sizeof(p[4].text), "  rows last 1s, detail last %s",
			 span(win, sizeof(win), r->window.interval_s));
	snprintf(p[5].text, sizeof(p[5].text), "  sort %s", top_sort_name(m->sort));
	if (m->paused)
		snprintf(p[6].text, sizeof(p[6].text), "  PAUSED");
	if (a.cols >= 70 && localtime_r(&t, &tm) && strftime(p[7].text, sizeof(p[7].text), "  %H:%M:%S ", &tm))
		clock_w = (int)strlen(p[7].text);
	/* The clock sits at the right end when it fits; the rest goes left. */
	x = draw_pieces(w, a.y, 0, a.cols - clock_w, p, 7);
	if (clock_w && a.cols - x >= clock_w)
		put(w, a.y, a.cols - clock_w, ST_TITLE, "%s", p[7].text);
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
		char line[160];

		snprintf(line, sizeof(line), " %s %d%s%s: %s", al->level == TOP_ALERT_ACTIVE ? "!!" : "  ",
			 al->pid, comm[0] ? " " : "", comm, al->text);
		x = put_words(w, a.y + i, 0, st, line);
		if (i == a.h - 1 && more > 0)
			put(w, a.y + i, x, st, "  (+%d more)", more);
	}
}

static int want_procs(const struct top_model *m, int cols) { return 1 + (int)(m->nrows ? m->nrows : 1); }

/* Header-line columns by width: below 80 RUNTIME goes, below 72 COMM shrinks to 8,
 * below 64 ITER/S goes, below 50 UTIL goes; STATE takes the rest (cut between words). */
struct proc_cols {
	int comm, runtime, rate, util;
};

static struct proc_cols proc_cols(int cols)
{
	return (struct proc_cols){ .comm = cols < 72 ? 8 : 15, .runtime = cols >= 80, .rate = cols >= 64,
				   .util = cols >= 50 };
}

/* A row's name in the process list: the process's comm for its main loop (and for
 * every reference loop); for a libuv program's other loops their own name ("worker 3")
 * or, unnamed, their thread's comm: all threads of a Node 18-22 process are "node". */
static const char *row_name(const struct top_row *r)
{
	if (r->runtime == LS_RT_REFERENCE || !strcmp(r->last.label, "main"))
		return r->comm;
	if (r->last.label[0])
		return r->last.label;
	return r->last.comm[0] ? r->last.comm : r->comm;
}

static void draw_procs(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	char r1[16], d1[16], u1[16], state[48], line[160];
	int rows = a.h - 1, first = 0, n;
	struct proc_cols pc = proc_cols(a.cols);

	n = snprintf(line, sizeof(line), "%7s %-*s ", "PID", pc.comm, "COMM");
	if (pc.runtime)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%-9s ", "RUNTIME");
	if (pc.rate)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%8s ", "ITER/S");
	if (pc.util)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%6s ", "UTIL");
	snprintf(line + n, sizeof(line) - (size_t)n, "%9s  STATE", "DELAY p99");
	put_words(w, a.y, 0, ST_HEAD, line);
	if (m->nrows == 0) {
		put_words(w, a.y + 1, 0, ST_DIM, "        waiting for the first snapshot...");
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
		n = snprintf(line, sizeof(line), "%7d %-*.*s ", r->pid, pc.comm, pc.comm, row_name(r));
		if (pc.runtime)
			n += snprintf(line + n, sizeof(line) - (size_t)n, "%-9.9s ", ls_runtime_name(r->runtime));
		if (pc.rate)
			n += snprintf(line + n, sizeof(line) - (size_t)n, "%8s ", r->last.interval_s > 0 ?
				      rate(r1, sizeof(r1), per_s(r->last.iterations, r->last.interval_s)) : "-");
		if (pc.util) {
			snprintf(u1, sizeof(u1), "%.1f%%", r->last.utilization * 100);
			n += snprintf(line + n, sizeof(line) - (size_t)n, "%6s ", u1);
		}
		snprintf(line + n, sizeof(line) - (size_t)n, "%9s  ",
			 r->last.delay.count ? ns(d1, sizeof(d1), r->last.delay.p99_ns) : "-");
		x = put(w, a.y + 1 + i, 0, sel ? ST_SELECTED : ST_NORMAL, "%s", line);
		put_words(w, a.y + 1 + i, x, sel && st == ST_NORMAL ? ST_SELECTED : st, state);
	}
}

/* Phase table columns: name, bar, share, p50, p99, max; the bar takes what is left. By
 * width: the bar goes below PH_NAME + 31 + 5 columns, then p50, then max. The headings
 * are printed at the same x as their columns. One more row, "other", is the part of the
 * window's wall time in no phase (between phases, or a phase still running at the
 * snapshot), so the shares add up to 100%. */
#define PH_NAME 9

struct ph_cols {
	int barw, p50, max, numx;
};

static struct ph_cols ph_cols(int cols)
{
	struct ph_cols pc = { .p50 = 1, .max = 1 };
	int nums = 7 + 8 * 3;

	if (cols < PH_NAME + nums) {
		pc.p50 = 0;
		nums -= 8;
	}
	if (cols < PH_NAME + nums) {
		pc.max = 0;
		nums -= 8;
	}
	pc.barw = cols - PH_NAME - nums - 1;
	if (pc.barw < 4)
		pc.barw = 0;
	pc.numx = PH_NAME + (pc.barw ? pc.barw + 1 : 0);
	return pc;
}

static int want_phases(const struct top_model *m, int cols)
{
	const struct top_row *r = top_model_selected(m);

	if (!r)
		return 0;
	return 1 + (r->has & LS_HAS_PHASES ? LS_NPHASES + 1 : 1) + (r->note[0] ? 1 : 0);
}

static void ph_row(WINDOW *w, int y, const struct ph_cols *pc, int st, const char *share, const char *p50,
		   const char *p99, const char *max)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%7s", share);

	if (pc->p50)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %7s", p50);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %7s", p99);
	if (pc->max)
		snprintf(line + n, sizeof(line) - (size_t)n, " %7s", max);
	put(w, y, pc->numx, st, "%s", line);
}

static void draw_phases(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	const struct top_row *r = top_model_selected(m);
	const struct ls_loop_summary *s = &r->window;
	char b1[16], b2[16], b3[16], win[16], pct[16];
	struct ph_cols pc = ph_cols(a.cols);
	double wall = s->interval_s * 1e9, inphase = 0, share;
	/* Left of the column headings: the detail's span first, then pid/comm and the loop's
	 * name, then tier, then the versions. */
	struct piece p[4] = { { "", 2, ST_HEAD }, { "", 1, ST_NORMAL }, { "", 3, ST_NORMAL }, { "", 0, ST_DIM } };
	int phases = r->has & LS_HAS_PHASES;

	snprintf(p[0].text, sizeof(p[0].text), "%d %s%s%s", r->pid, r->comm, s->label[0] ? " " : "", s->label);
	snprintf(p[1].text, sizeof(p[1].text), "  %s%s%s", ls_runtime_name(r->runtime), r->tier[0] ? "/" : "", r->tier);
	snprintf(p[2].text, sizeof(p[2].text), "  last %s", span(win, sizeof(win), s->interval_s));
	if (r->version[0] || r->libuv_version[0])
		snprintf(p[3].text, sizeof(p[3].text), "  %s%s%s%s%s", r->version[0] ? ls_runtime_name(r->runtime) : "",
			 r->version[0] ? " " : "", r->version, r->libuv_version[0] ? ", libuv " : "", r->libuv_version);
	draw_pieces(w, a.y, 0, phases ? pc.numx : a.cols, p, 4);
	if (phases)
		ph_row(w, a.y, &pc, ST_HEAD, "share", "p50", "p99", "max");
	if (r->note[0] && a.h > 1)
		put_words(w, a.y + a.h - 1, 2, ST_DIM, r->note);
	if (!phases) {
		char msg[160];

		snprintf(msg, sizeof(msg), "per-phase times not measured at probe tier '%s'%s", r->tier,
			 r->runtime == LS_RT_NODE ? " (top --probes phases measures them)" : "");
		if (a.h > 1)
			put_words(w, a.y + 1, 2, ST_DIM, msg);
		return;
	}
	for (int i = 0; i < LS_NPHASES && i + 1 < a.h; i++) {
		const struct ls_quant *q = &s->phase[i];
		int y = a.y + 1 + i, hot = r->live_state == LS_LIVE_RUNNING && r->live_phase == (uint32_t)i;

		share = wall > 0 ? (double)q->total_ns / wall : 0;
		inphase += (double)q->total_ns;
		put(w, y, 0, hot ? ST_WARN : ST_NORMAL, "%s%-*s", hot ? ">" : " ", PH_NAME - 1, ls_phase_names[i]);
		bar(w, y, PH_NAME, pc.barw, share, i == LS_PHASE_POLL ? ST_OK : ST_BAR, c);
		snprintf(pct, sizeof(pct), "%.1f%%", share * 100);
		ph_row(w, y, &pc, ST_NORMAL, pct, q->count ? ns(b1, sizeof(b1), q->p50_ns) : "-",
		       q->count ? ns(b2, sizeof(b2), q->p99_ns) : "-", q->count ? ns(b3, sizeof(b3), q->max_ns) : "-");
	}
	if (LS_NPHASES + 1 < a.h) {
		int y = a.y + 1 + LS_NPHASES;

		share = wall > 0 && wall > inphase ? (wall - inphase) / wall : 0;
		put(w, y, 0, ST_DIM, " %-*s", PH_NAME - 1, "other");
		bar(w, y, PH_NAME, pc.barw, share, ST_DIM, c);
		snprintf(pct, sizeof(pct), "%.1f%%", share * 100);
		ph_row(w, y, &pc, ST_DIM, pct, "", "", "");
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
	int cells, n = (int)r->hist_len, per;

	if (r->has & LS_HAS_COUNTERS) {
		char line[96];

		snprintf(line, sizeof(line), " delay %s: mean busy per iteration %s (counters tier, no distribution)",
			 span(b4, sizeof(b4), s->interval_s), ns(b1, sizeof(b1), s->busy_per_iteration_ns));
		put(w, a.y, 0, ST_NORMAL, line);
		return;
	}
	if (!(r->has & LS_HAS_DELAY)) {
		put(w, a.y, 0, ST_DIM, " delay not measured");
		return;
	}
	/* Delay over the detail's window (the last ~2 minutes, its span printed after "delay").
	 * Utilization is not repeated here: the header lines have it, over their 1 s. */
	{
		struct piece p[5] = { { "", 10, ST_HEAD }, { "", 5, ST_NORMAL }, { "", 8, ST_NORMAL },
				      { "", 6, ST_NORMAL }, { "", 1, ST_NORMAL } };

		snprintf(p[0].text, sizeof(p[0].text), "delay %s", span(b4, sizeof(b4), s->interval_s));
		snprintf(p[1].text, sizeof(p[1].text), " p50 %s", ns(b1, sizeof(b1), r->recent_delay.p50_ns));
		snprintf(p[2].text, sizeof(p[2].text), "  p99 %s", ns(b2, sizeof(b2), r->recent_delay.p99_ns));
		snprintf(p[3].text, sizeof(p[3].text), "  max %s", ns(b3, sizeof(b3), r->recent_delay.max_ns));
		if (r->has & LS_HAS_TIMERS && s->timer_lateness.count)
			snprintf(p[4].text, sizeof(p[4].text), "  timers late p99 %s",
				 ns(b4, sizeof(b4), s->timer_lateness.p99_ns));
		draw_pieces(w, a.y, 0, a.cols, p, 5);
	}
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

		/* Narrow: cb/s goes first, then the longest drain, then drains/s. */
		struct piece p[6] = { { "", 10, ST_HEAD }, { "", 5, ST_NORMAL }, { "", 3, ST_NORMAL },
				      { "", 4, ST_NORMAL }, { "", 6, d->starvation_episodes ? ST_WARN : ST_NORMAL },
				      { "", 7, ST_WARN } };

		snprintf(p[0].text, sizeof(p[0].text), "%-10s", rows[i].name);
		snprintf(p[1].text, sizeof(p[1].text), "%8s drains/s", rate(b1, sizeof(b1), per_s(d->drains, s->interval_s)));
		snprintf(p[2].text, sizeof(p[2].text), " %8s cb/s", rate(b2, sizeof(b2), per_s(d->callbacks, s->interval_s)));
		snprintf(p[3].text, sizeof(p[3].text), "  max %7s", d->drains ? ns(b3, sizeof(b3), d->max_drain_ns) : "-");
		snprintf(p[4].text, sizeof(p[4].text), "  starved %llu", (unsigned long long)d->starvation_episodes);
		if (r->live_drain == rows[i].live)
			snprintf(p[5].text, sizeof(p[5].text), "  draining now");
		draw_pieces(w, a.y + i, 0, a.cols, p, 6);
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

/* Episode log columns by width: below 80 COMM goes, below 64 the time loses its ms. */
static void draw_episodes(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	int comm = a.cols >= 80, ms = a.cols >= 64, tw = ms ? 12 : 8;
	char line[160];

	if (comm)
		snprintf(line, sizeof(line), "%-*s %7s %-15s %-20s %-8s DURATION", tw, "EPISODES", "PID", "COMM", "KIND", "PHASE");
	else
		snprintf(line, sizeof(line), "%-*s %7s %-20s %-8s DURATION", tw, "EPISODES", "PID", "KIND", "PHASE");
	put_words(w, a.y, 0, ST_HEAD, line);
	if (!m->log_len && a.h > 1)
		put(w, a.y + 1, 0, ST_DIM, "%-*s none yet", tw, "");
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
			if (ms)
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
		if (comm)
			snprintf(line, sizeof(line), "%-*s %7d %-15.15s %-20s %-8s %s", tw, when, e->ep.pid, e->comm,
				 ls_episode_kind_name(e->ep.kind), e->ep.phase < LS_NPHASES ? ls_phase_name(e->ep.phase) : "-", dur);
		else
			snprintf(line, sizeof(line), "%-*s %7d %-20s %-8s %s", tw, when, e->ep.pid,
				 ls_episode_kind_name(e->ep.kind), e->ep.phase < LS_NPHASES ? ls_phase_name(e->ep.phase) : "-", dur);
		put_words(w, a.y + 1 + i, 0, st, line);
	}
}

static void draw_footer(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c, struct area a)
{
	int x;

	band(w, a.y, 0, ST_TITLE);
	{
		char keys[96];

		if (m->replay.on)
			snprintf(keys, sizeof(keys), " q quit  p play/pause  . step  +/- speed  n next episode  h help");
		else
			snprintf(keys, sizeof(keys), " q quit  p pause  %s select  s sort  r reset  h help",
				 c->utf8 ? "\u2191\u2193/jk" : "j/k");
		x = put_words(w, a.y, 0, ST_TITLE, keys);
	}
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
	{ .name = "phases", .want = want_phases, .min = 2 + LS_NPHASES, .keep = 7, .draw = draw_phases },
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
		"q, Ctrl-C    quit (status 0; Ctrl-C 130)",
		"p            pause / resume the numbers",
		"Up/Down, k/j select a loop",
		"s            sort: pid, delay, util, iter/s",
		"r            reset the window (numbers since now)",
		"e            stacks of the latest episode ([ ] step)",
		"h, ?         this help (any key closes it)",
		"replay: p or space play/pause, . or Right step,",
		"+/- speed 1x..60x, n or Tab next episode",
		"",
		"Alerts: a phase or not-polling span past the",
		"stall threshold, a nextTick or microtask drain",
		"past the starvation threshold, a target exit.",
		"Delay strip: worst delay per refresh, log scale",
		"10us..1s; red past the stall threshold.",
		"Spans: header lines over the last 1-2 s; the",
		"detail (phases, delay, drains, GC) over the last",
		"2 min (since attach or r if later). other: time",
		"in no phase (between phases, one still running).",
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

/* The stacks pane: where the loop was during one finished episode, leaf first. */
static void draw_stacks(WINDOW *w, const struct top_model *m, const struct top_draw_ctx *c)
{
	static char lines[64][LS_STACK_LINE];
	const struct top_log_entry *e = top_model_log(m, m->stacks_at);
	int rows = getmaxy(w), cols = getmaxx(w), n = 0;
	char d[16], head[200];

	(void)c;
	if (!e || !e->ep.stacks)
		return;
	snprintf(head, sizeof(head), "%s in %s %s (%u samples)  pid %d tid %u", ls_episode_kind_name(e->ep.kind),
		 e->ep.phase < LS_NPHASES ? ls_phase_name(e->ep.phase) : "-", ns(d, sizeof(d), e->ep.end_ns - e->ep.start_ns),
		 e->ep.samples, e->ep.pid, e->ep.tid);
	if (rows > 4)
		n = (int)ls_stack_text(e->ep.stacks, 5, 16, lines, rows - 4 < 64 ? (size_t)(rows - 4) : 64);
	for (int y = 0; y < rows; y++) {
		wattrset(w, style(ST_SELECTED));
		for (int x = 0; x < cols; x++)
			mvwaddch(w, y, x, ' ');
	}
	put(w, 0, 1, ST_SELECTED, "%s", head);
	for (int i = 0; i < n && i + 2 < rows - 1; i++)
		put(w, i + 2, 1, ST_SELECTED, "%.*s", cols - 2, lines[i]);
	put(w, rows - 1, 1, ST_SELECTED, "%s", "[ older  ] newer  any other key closes");
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
	if (m->stacks)
		draw_stacks(w, m, c);
	if (m->help)
		draw_help(w, m, c);
}
