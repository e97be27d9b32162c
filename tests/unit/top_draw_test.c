/* top_draw_test.c: drawing the `loopscope top` model (dashboards/top/topdraw.c) into a
 * curses screen that writes to /dev/null, then reading the screen back: what must be on
 * it at 80x24 and larger, that small sizes still give a whole screen, monochrome too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "histogram.h"
#include "snapshot.h"
#include "stacktab.h"
#include "topdraw.h"
#include "topmodel.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (1000 * S)

static SCREEN *scr;
static FILE *out, *in;

static int setup(void **state)
{
	out = fopen("/dev/null", "w");
	in = fopen("/dev/null", "r");
	assert_non_null(out);
	assert_non_null(in);
	scr = newterm("xterm", out, in);
	assert_non_null(scr);
	return 0;
}

static int teardown(void **state)
{
	endwin();
	delscreen(scr);
	fclose(out);
	fclose(in);
	return 0;
}

/* A model with two reference loops, one of them stalled right now, and a few episodes. */
static void build(struct top_model *m)
{
	struct ls_snapshot s = { 0 };
	struct ls_target_snapshot t[2] = { 0 };
	struct ls_loop_snapshot *l = calloc(2, sizeof(*l));

	assert_non_null(l);
	top_model_init(m, &(struct top_opts){ .stall_ns = 100 * MS, .starve_ns = 100 * MS, .hold_ns = 3 * S });
	snprintf(m->source_name, sizeof(m->source_name), "agent");
	for (int i = 0; i < 2; i++) {
		t[i].pid = 4242 + i;
		snprintf(t[i].comm, sizeof(t[i].comm), "loopdemo");
		snprintf(t[i].tier, sizeof(t[i].tier), "usdt");
		t[i].attached_ns = T0;
		t[i].nloops = 1;
		t[i].loops = &l[i];
		l[i].tid = (uint32_t)t[i].pid;
		l[i].has = LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_TIMERS | LS_HAS_DRAINS | LS_HAS_EPISODES;
		for (int k = 0; k < 1000; k++) {
			for (int p = 0; p < LS_NPHASES; p++)
				ls_hist_add(&l[i].phase[p], (uint64_t)(p + 1) * 20000);
			ls_hist_add(&l[i].delay, 50000 + (uint64_t)k * 100);
			ls_hist_add(&l[i].ticks.duration, 3000);
		}
		l[i].ticks.drains = 1000;
		l[i].ticks.callbacks = 5000;
		l[i].iterations = 1000;
		l[i].busy_ns = 300 * MS;
		l[i].idle_ns = 700 * MS;
	}
	l[0].live_state = LS_LIVE_RUNNING;
	l[0].live_phase = LS_PHASE_TIMERS;
	l[0].live_since_ns = l[0].live_phase_since_ns = T0 + 2 * S - 250 * MS;
	s.mono_ns = T0 + 2 * S;
	s.wall_ns = 1700000000 * S;
	s.ntargets = 2;
	s.targets = t;
	assert_int_equal(top_model_update(m, &s, s.mono_ns), 0);
	for (int k = 0; k < 3; k++) {
		struct ls_episode ep = { .pid = 4243, .tid = 4243, .kind = LS_EP_TICK_STARVATION,
					 .phase = LS_PHASE_CHECK, .start_ns = T0 + (uint64_t)k * 100 * MS,
					 .end_ns = T0 + (uint64_t)k * 100 * MS + 150 * MS, .callbacks = 7 };
		top_model_episode(m, &ep, s.mono_ns);
	}
	free(l);
}

static char screen[80][512];

/* Draw at rows x cols and copy the screen into `screen`. */
static void draw_at(const struct top_model *m, int rows, int cols, int color, int utf8)
{
	struct top_draw_ctx ctx = { .color = color, .utf8 = utf8 };

	assert_int_equal(resizeterm(rows, cols), OK);
	top_draw_init(&ctx);
	top_draw(stdscr, m, &ctx);
	memset(screen, 0, sizeof(screen));
	for (int y = 0; y < rows && y < 80; y++) {
		int n = mvwinnstr(stdscr, y, 0, screen[y], cols < 511 ? cols : 511);
		assert_true(n >= 0);
	}
}

static int find(int rows, const char *what)
{
	for (int y = 0; y < rows; y++)
		if (strstr(screen[y], what))
			return y;
	return -1;
}

static void dump(int rows)
{
	for (int y = 0; y < rows; y++)
		print_message("|%s|\n", screen[y]);
}

/* At 80x24 every part is there: title, alert, header lines, all seven phases, the delay
 * line and strip, drains, the episode log and the key line at the bottom. */
static void test_80x24_whole(void **state)
{
	struct top_model m;

	build(&m);
	draw_at(&m, 24, 80, 1, 0);
	dump(24);
	assert_int_equal(find(24, "loopscope top"), 0);
	assert_true(find(24, "!! 4242 loopdemo: stalled in timers for 250ms") > 0);
	assert_true(find(24, "PID COMM") > 0);
	assert_true(find(24, "4242 loopdemo") > 0);
	assert_true(find(24, "4243 loopdemo") > 0);
	assert_true(find(24, "STALL timers 250ms") > 0);
	for (int p = 0; p < LS_NPHASES; p++) {
		char want[16];

		snprintf(want, sizeof(want), " %s ", ls_phase_names[p]);
		if (find(24, want) < 0)
			fail_msg("phase '%s' missing at 80x24", ls_phase_names[p]);
	}
	assert_true(find(24, "delay 2s p50 ") > 0);
	assert_true(find(24, "nextTick") > 0);
	assert_true(find(24, "EPISODES") > 0);
	assert_true(find(24, "tick_starvation") > 0);
	assert_int_equal(find(24, "q quit"), 23);
	/* The timers phase: 20 us each, 1000 runs over a 2 s window = 1.0% of wall time. */
	assert_true(find(24, "1.0%") > 0);
	top_model_free(&m);
}

/* The selected process is what the detail shows; moving the selection moves it. */
static void test_selection_drives_detail(void **state)
{
	struct top_model m;
	int y;

	build(&m);
	top_model_select(&m, 1);
	draw_at(&m, 30, 100, 0, 0);
	y = find(30, "4243 loopdemo  reference/usdt");
	if (y < 0) {
		dump(30);
		fail_msg("detail header of the selected pid 4243 missing");
	}
	top_model_free(&m);
}

/* Small and odd sizes: no crash, title first and keys last, nothing written past the
 * width (mvwinnstr never returns more than cols). */
static void test_small_and_large(void **state)
{
	static const int sizes[][2] = { { 24, 80 }, { 10, 40 }, { 5, 30 }, { 2, 20 }, { 60, 200 }, { 24, 81 } };
	struct top_model m;

	build(&m);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int rows = sizes[i][0], cols = sizes[i][1];

		draw_at(&m, rows, cols, (int)(i & 1), (int)(i & 2));
		assert_true(strstr(screen[0], "loopscope top") != NULL);
		if (rows > 3)
			assert_true(strstr(screen[rows - 1], "q quit") != NULL);
		for (int y = 0; y < rows; y++)
			assert_true((int)strlen(screen[y]) <= cols);
	}
	/* Larger screens get more of the log. */
	draw_at(&m, 60, 200, 1, 0);
	assert_true(find(60, "EPISODES") > 0);
	top_model_free(&m);
}

/* The help overlay lists the keys; an empty model says it is waiting. */
static void test_help_and_empty(void **state)
{
	struct top_model m;

	build(&m);
	m.help = 1;
	draw_at(&m, 24, 80, 1, 0);
	assert_true(find(24, "pause / resume") > 0);
	assert_true(find(24, "reset the window") > 0);
	top_model_free(&m);

	top_model_init(&m, &(struct top_opts){ .stall_ns = 100 * MS, .starve_ns = 100 * MS, .hold_ns = S });
	draw_at(&m, 24, 80, 0, 0);
	assert_true(find(24, "waiting for the first snapshot") > 0);
	top_model_free(&m);
}

/* 'e' opens a pane on the newest finished episode with stacks: its head line and its
 * stacks, leaf first; '[' steps to an older one; an episode without stacks is passed. */
static void test_stacks_pane(void **state)
{
	struct top_model m;
	struct ls_stacktab *t = ls_stacks_table();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame f[2] = {
		{ .kind = LS_FRAME_JS, .function = ls_stacktab_str(t, "validateCoupon"),
		  .file = ls_stacktab_str(t, "/srv/app/coupons.js"), .line = 14 },
		{ .kind = LS_FRAME_JS, .function = ls_stacktab_str(t, "handle"),
		  .file = ls_stacktab_str(t, "/srv/app/routes.js"), .line = 3 },
	};
	struct ls_episode ep = { .pid = 4242, .tid = 4242, .kind = LS_EP_STALL, .phase = LS_PHASE_POLL,
				 .start_ns = T0 + S, .end_ns = T0 + S + 412 * MS, .samples = 41 };

	(void)state;
	build(&m);
	assert_int_equal(top_model_stacks_open(&m), 0);	/* nothing to show yet */
	assert_int_equal(m.stacks, 0);
	assert_int_equal(ls_stack_agg_add(a, f, 2, 36), 0);
	assert_int_equal(ls_stack_agg_add(a, f + 1, 1, 5), 0);
	ep.stacks = ls_stack_agg_finish(a, t, 5);
	ls_stack_agg_free(a);
	top_model_episode(&m, &ep, T0 + 2 * S);
	ep.stacks = NULL;	/* a newer one without stacks */
	ep.samples = 0;
	ep.start_ns += 500 * MS;
	ep.end_ns += 500 * MS;
	top_model_episode(&m, &ep, T0 + 2 * S);
	assert_int_equal(top_model_stacks_open(&m), 1);
	assert_int_equal(m.stacks_at, 1);
	draw_at(&m, 24, 80, 1, 0);
	assert_true(find(24, "stall in poll 412ms (41 samples)  pid 4242") >= 0);
	assert_true(find(24, "  88%  validateCoupon  /srv/app/coupons.js:14") >= 0);
	assert_true(find(24, "       handle          /srv/app/routes.js:3") >= 0);
	assert_true(find(24, "  12%  handle  /srv/app/routes.js:3") >= 0);
	top_model_stacks_step(&m, 1);	/* nothing older: stays */
	assert_int_equal(m.stacks_at, 1);
	top_model_free(&m);
}

/* Columns that end where their heading ends: every row from y0 to y1 has a non-blank
 * character at the heading's last column and a blank (or the edge) right after it. */
static void assert_aligned(int rows, int cols, int head, const char *word, int y0, int y1)
{
	const char *h = strstr(screen[head], word);
	int e;

	if (!h) {
		dump(rows);
		fail_msg("heading '%s' missing on row %d", word, head);
	}
	e = (int)(h - screen[head]) + (int)strlen(word) - 1;
	for (int y = y0; y <= y1; y++)
		if (screen[y][e] == ' ' || (e + 1 < cols && screen[y][e + 1] && screen[y][e + 1] != ' ')) {
			dump(rows);
			fail_msg("row %d is not aligned under '%s' (column %d)", y, word, e);
		}
}

/* Narrow: columns are left out in a defined order, headings stay over their columns, and
 * nothing is cut mid-word (each line ends with a whole word of what it would say). */
static void test_60_columns(void **state)
{
	struct top_model m;
	int head, y, x;

	build(&m);
	for (int rows = 15; rows <= 24; rows += 9) {
		draw_at(&m, rows, 60, 1, 0);
		dump(rows);
		/* Title: the two spans on screen are named, and the line ends with a whole word. */
		assert_true(strstr(screen[0], "rows last 1s, detail last 2s  sort pid") != NULL);
		/* Header lines: STATE over the state, whole. */
		head = find(rows, "PID COMM");
		assert_true(head > 0);
		x = (int)(strstr(screen[head], "STATE") - screen[head]);
		y = find(rows, "STALL timers 250ms");
		assert_true(y == head + 1);
		assert_int_equal((int)(strstr(screen[y], "STALL timers 250ms") - screen[y]), x);
		/* At 60x15 the list shrinks to the selected loop. */
		assert_aligned(rows, 60, head, "DELAY p99", head + 1, rows == 24 ? head + 2 : head + 1);
		assert_aligned(rows, 60, head, "UTIL", head + 1, rows == 24 ? head + 2 : head + 1);
		assert_true(strstr(screen[head], "RUNTIME") == NULL);	/* the first to go */
		/* Phase table: share, p50, p99, max over their numbers, other included. */
		head = find(rows, "share");
		assert_true(head > 0);
		assert_true(strstr(screen[head], "last 2s") != NULL);
		assert_true(strstr(screen[head + 1], "timers") != NULL);
		assert_true(strstr(screen[head + LS_NPHASES + 1], "other") != NULL);
		assert_aligned(rows, 60, head, "share", head + 1, head + LS_NPHASES + 1);
		assert_aligned(rows, 60, head, "p50", head + 1, head + LS_NPHASES);
		assert_aligned(rows, 60, head, "p99", head + 1, head + LS_NPHASES);
		assert_aligned(rows, 60, head, "max", head + 1, head + LS_NPHASES);
		/* The alert is cut between words. */
		y = find(rows, "4243: process.nextTick");
		if (y > 0)
			assert_true(strstr(screen[y], "starvation for 150ms") != NULL);
	}
	/* At 60x24 the drains and the log are there, whole. */
	for (y = 0; y < 24 && strncmp(screen[y], "nextTick ", 9); y++)
		;
	assert_true(y < 24);
	assert_true(strstr(screen[y], "starved 0") != NULL);
	head = find(24, "EPISODES");
	assert_true(head > 0);
	assert_aligned(24, 60, head, "PID", head + 1, head + 3);
	assert_true(strstr(screen[head + 1], "tick_starvation      check    150ms") != NULL);
	top_model_free(&m);
}

/* The shares of the seven phases and "other" add up to 100%. */
static void test_shares_add_up(void **state)
{
	struct top_model m;
	double sum = 0;
	int head;

	build(&m);
	draw_at(&m, 24, 80, 0, 1);
	head = find(24, "share");
	assert_true(head > 0);
	for (int y = head + 1; y <= head + LS_NPHASES + 1; y++) {
		char *pct = strchr(screen[y], '%');

		assert_non_null(pct);
		while (pct > screen[y] && pct[-1] != ' ')
			pct--;
		sum += atof(pct);
	}
	if (sum < 99.8 || sum > 100.2) {
		dump(24);
		fail_msg("shares add up to %.1f%%", sum);
	}
	top_model_free(&m);
}

/* The help overlay is a clean box: the rows it covers show nothing of what is below (a
 * bar's '#' or a run of its '.' cells; the help text itself has only "10us..1s"). */
static void test_help_box_clean(void **state)
{
	struct top_model m;
	int y0, x0;

	build(&m);
	m.help = 1;
	draw_at(&m, 24, 80, 1, 0);
	y0 = find(24, "loopscope top: keys");
	assert_true(y0 > 0);
	x0 = (int)(strstr(screen[y0], "loopscope top: keys") - screen[y0]) - 2;
	for (int y = y0 - 1; y < y0 + 19 && y < 24; y++) {
		char box[53];
		int n;

		snprintf(box, sizeof(box), "%s", screen[y] + x0);
		n = (int)strlen(box);
		while (n > 0 && box[n - 1] == ' ')
			box[--n] = '\0';
		if (strchr(box, '#') || strstr(box, ".. ") || (n >= 2 && !strcmp(box + n - 2, ".."))) {
			dump(24);
			fail_msg("help box row %d shows what is below it: '%s'", y, box);
		}
	}
	top_model_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_80x24_whole),
		cmocka_unit_test(test_selection_drives_detail),
		cmocka_unit_test(test_small_and_large),
		cmocka_unit_test(test_help_and_empty),
		cmocka_unit_test(test_stacks_pane),
		cmocka_unit_test(test_60_columns),
		cmocka_unit_test(test_shares_add_up),
		cmocka_unit_test(test_help_box_clean),
	};
	setenv("TERM", "xterm", 1);
	return cmocka_run_group_tests(tests, setup, teardown);
}
