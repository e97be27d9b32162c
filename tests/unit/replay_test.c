/* replay_test.c: the front ends on recordings, without root or BPF: `stat --replay`
 * (text and JSON), `report` (the HTML page) and top's model and drawing fed by a paced
 * replay source, over a synthetic recording of a Node-like loop (drains, GC) and a
 * reference loop, with a stall and a GC pause in it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <curses.h>
#include <cjson/cJSON.h>

#include "commands.h"
#include "histogram.h"
#include "recfile.h"
#include "recstacks.h"
#include "replay.h"
#include "stacktab.h"
#include "topdraw.h"
#include "topmodel.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (7000 * S)
#define NSNAP 8

static char dir[] = "/tmp/replay_test.XXXXXX";
static char rec[300], out[300], errf[300];

/* Snapshot i: node pid 300 (one loop) and reference pid 400, i seconds after T0. The
 * node loop runs 500 iterations a second at 40% utilization; a 250 ms stall in timers
 * starts at 3.2 s, a 120 ms GC pause at 5.5 s. */
static void make_snapshot(struct ls_snapshot *s, int i)
{
	memset(s, 0, sizeof(*s));
	s->mono_ns = T0 + (uint64_t)i * S;
	s->wall_ns = 1750000000ull * S + (uint64_t)i * S;
	s->ntargets = 2;
	s->targets = calloc(2, sizeof(*s->targets));
	assert_non_null(s->targets);
	for (int k = 0; k < 2; k++) {
		struct ls_target_snapshot *t = &s->targets[k];
		struct ls_loop_snapshot *l = calloc(1, sizeof(*l));

		assert_non_null(l);
		t->pid = k ? 400 : 300;
		snprintf(t->comm, sizeof(t->comm), k ? "loopdemo" : "node");
		snprintf(t->exe, sizeof(t->exe), k ? "/opt/loopdemo" : "/usr/bin/node");
		snprintf(t->tier, sizeof(t->tier), k ? "usdt" : "phases");
		t->runtime = k ? LS_RT_REFERENCE : LS_RT_NODE;
		t->attached_ns = T0;
		t->nloops = 1;
		t->loops = l;
		l->tid = (uint32_t)t->pid;
		snprintf(l->name, sizeof(l->name), "%s", t->comm);
		l->has = LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_DRAINS | LS_HAS_EPISODES | (k ? 0 : LS_HAS_GC);
		l->iterations = (uint64_t)i * 500;
		l->busy_ns = (uint64_t)i * 400 * MS;
		l->idle_ns = (uint64_t)i * 600 * MS;
		l->live_phase = LS_PHASE_NONE;
		for (int n = 0; n < i * 500; n++) {
			ls_hist_add(&l->delay, 200000 + (uint64_t)(n % 5) * 10000);
			ls_hist_add(&l->phase[LS_PHASE_POLL], 1200000);
			ls_hist_add(&l->phase[LS_PHASE_TIMERS], 800000);
		}
		l->ticks.drains = (uint64_t)i * 100;
		l->ticks.callbacks = (uint64_t)i * 300;
		if (i >= 4 && !k) {
			ls_hist_add(&l->phase[LS_PHASE_TIMERS], 250 * MS);
			ls_hist_add(&l->delay, 250 * MS);
			l->stall_episodes = 1;
		}
		if (i >= 6 && !k)
			ls_hist_add(&l->gc, 120 * MS);
	}
}

/* The stall's stacks, as the agent hands them over: 30 samples in validate() under
 * handle(), 10 in a native memcpy under validate(); names that need escaping. */
static struct ls_stacktab *tab;

static const struct ls_stack_set *stall_stacks(void)
{
	struct ls_stack_agg *agg = ls_stack_agg_new();
	const struct ls_stack_set *set;
	struct ls_frame js[2] = {
		{ .kind = LS_FRAME_JS, .function = ls_stacktab_str(tab, "validate<T>"),
		  .file = ls_stacktab_str(tab, "/srv/app/\"coupons\".js"), .line = 14, .column = 3 },
		{ .kind = LS_FRAME_JS, .function = ls_stacktab_str(tab, "handle"), .file = ls_stacktab_str(tab, "/srv/app/main.js"),
		  .line = 2 },
	};
	struct ls_frame nat[3] = {
		{ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(tab, "__memcpy_avx"),
		  .module = ls_stacktab_str(tab, "/lib/x86_64-linux-gnu/libc.so.6") },
		js[0], js[1],
	};

	assert_non_null(agg);
	assert_int_equal(ls_stack_agg_add(agg, js, 2, 30), 0);
	assert_int_equal(ls_stack_agg_add(agg, nat, 3, 10), 0);
	set = ls_stack_agg_finish(agg, tab, 5);
	ls_stack_agg_free(agg);
	assert_non_null(set);
	return set;
}

static void put_ep(struct ls_rec_writer *w, uint32_t kind, uint32_t phase, uint64_t start, uint64_t dur,
		   uint64_t at)
{
	struct ls_episode a = { .pid = 300, .tid = 300, .kind = kind, .phase = phase, .start_ns = start };
	struct ls_episode b = a;
	char err[256];

	b.end_ns = start + dur;
	if (kind == LS_EP_STALL) {
		b.stacks = stall_stacks();
		b.samples = 40;
	}
	assert_int_equal(ls_rec_put_episode(w, &a, at, err, sizeof(err)), 0);
	/* as record.c does: the stacks, then the end they belong to */
	assert_int_equal(ls_rec_put_stacks(w, &b, at + dur, err, sizeof(err)), 0);
	assert_int_equal(ls_rec_put_episode(w, &b, at + dur, err, sizeof(err)), 0);
}

static void write_recording(const char *path, int clean)
{
	struct ls_rec_info info = { .interval_ns = S, .threshold_ns = 100 * MS, .mono_ns = T0,
				    .wall_ns = 1750000000ull * S };
	struct ls_rec_writer *w;
	char err[256];

	snprintf(info.version, sizeof(info.version), "test");
	snprintf(info.host, sizeof(info.host), "host\"<x>");
	snprintf(info.command, sizeof(info.command), "loopscope record -p 300 -p 400 -o t.lsr");
	assert_int_equal(ls_rec_create(path, &info, &w, err, sizeof(err)), 0);
	for (int i = 0; i < NSNAP; i++) {
		struct ls_snapshot s;

		make_snapshot(&s, i);
		assert_int_equal(ls_rec_put_snapshot(w, &s, err, sizeof(err)), 0);
		ls_snapshot_free(&s);
		if (i == 3)
			put_ep(w, LS_EP_STALL, LS_PHASE_TIMERS, T0 + 3200 * MS, 250 * MS, T0 + 3300 * MS);
		if (i == 5)
			put_ep(w, LS_EP_GC, LS_PHASE_POLL, T0 + 5500 * MS, 120 * MS, T0 + 5600 * MS);
		if (i % 3 == 2)
			assert_int_equal(ls_rec_flush(w, 0, 1, err, sizeof(err)), 0);
	}
	if (clean)
		assert_int_equal(ls_rec_close(w, "test", err, sizeof(err)), 0);
	else
		ls_rec_abandon(w);
}

/* Run a command with stdout and stderr into files; its exit status. */
static int run_cmd(int (*cmd)(int, char **), int argc, char **argv)
{
	int o = dup(1), e = dup(2), fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644),
	    fe = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc;

	assert_true(o >= 0 && e >= 0 && fo >= 0 && fe >= 0);
	fflush(stdout);
	fflush(stderr);
	dup2(fo, 1);
	dup2(fe, 2);
	rc = cmd(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(o, 1);
	dup2(e, 2);
	close(o);
	close(e);
	close(fo);
	close(fe);
	return rc;
}

static char *slurp(const char *path)
{
	struct stat st;
	char *p;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	return p;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---------------------------------------------------------------- stat */

static void test_stat_text(void **state)
{
	char *argv[] = { "stat", "--replay", rec, NULL }, *o;

	write_recording(rec, 1);
	assert_int_equal(run_cmd(ls_cmd_stat, 3, argv), 0);
	o = slurp(out);
	/* One block per loop per interval, the numbers of the interval. */
	assert_int_equal(count(o, "pid 300 (node) tid 300 node, node loop, 1.00 s"), NSNAP - 1);
	assert_int_equal(count(o, "pid 400 (loopdemo) tid 400 loopdemo, reference loop, 1.00 s"), NSNAP - 1);
	assert_int_equal(count(o, "iterations      500.0/s   utilization  40.0%"), 2 * (NSNAP - 1));
	/* The stall's start while it ran, its end in the next block. */
	assert_non_null(strstr(o, "! pid 300 tid 300: stall in timers, running for 100.00 ms"));
	assert_int_equal(count(o, "    stall in timers: 250.00 ms (40 samples)"), 1);
	assert_non_null(strstr(o, "validate<T>"));	/* and its stacks, as live stat prints them */
	assert_int_equal(count(o, "    gc in poll: 120.00 ms\n"), 1);
	free(o);
	o = slurp(errf);
	assert_non_null(strstr(o, "replaying"));
	free(o);
}

static void test_stat_json_interval(void **state)
{
	char *argv[] = { "stat", "--replay", rec, "--json", "-i", "2", NULL }, *o, *line, *save = NULL;
	int lines = 0, eps = 0;

	write_recording(rec, 1);
	assert_int_equal(run_cmd(ls_cmd_stat, 6, argv), 0);
	o = slurp(out);
	for (line = strtok_r(o, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *j = cJSON_Parse(line), *e;

		assert_non_null(j);
		assert_true(cJSON_GetObjectItem(j, "interval_s")->valuedouble == 2.0);
		assert_true(cJSON_GetObjectItem(j, "iterations")->valuedouble == 1000);
		e = cJSON_GetObjectItem(j, "episodes");
		assert_true(cJSON_IsArray(e));
		eps += cJSON_GetArraySize(e);
		cJSON_Delete(j);
		lines++;
	}
	/* 7 s of recording in 2 s steps: 3 intervals, 2 loops. */
	assert_int_equal(lines, 6);
	assert_int_equal(eps, 2);
	free(o);
}

/* A recording cut short (the recorder killed): what is there, one line, status 0. A
 * damaged one: what comes before the damage, one line, status 1. */
static void test_stat_cut_and_damaged(void **state)
{
	char *argv[] = { "stat", "--replay", rec, NULL }, *o, *data;
	struct stat st;
	int fd;

	write_recording(rec, 0);
	assert_int_equal(stat(rec, &st), 0);
	assert_int_equal(truncate(rec, st.st_size - 10), 0);
	assert_int_equal(run_cmd(ls_cmd_stat, 3, argv), 0);
	o = slurp(errf);
	/* Blocks: snapshots 0-2, then 3-5 with the episodes; 6-7 were never written. */
	if (!strstr(o, "stops inside block 2 at byte") || !strstr(o, "1 complete block before it"))
		fail_msg("stderr: %s", o);
	assert_int_equal(count(o, "\n"), 2);	/* "replaying" and the one line */
	free(o);
	o = slurp(out);
	assert_int_equal(count(o, "pid 300 (node)"), 2);
	free(o);

	write_recording(rec, 1);
	data = slurp(rec);
	fd = open(rec, O_WRONLY);
	assert_true(fd >= 0);
	/* A byte inside block 1's data: the header is 20 bytes and the info. */
	assert_int_equal(pwrite(fd, "\xff", 1, (off_t)(20 + (unsigned char)data[12] + 256 * (unsigned char)data[13] + 50)),
			 1);
	close(fd);
	free(data);
	assert_int_equal(run_cmd(ls_cmd_stat, 3, argv), 1);
	o = slurp(errf);
	assert_non_null(strstr(o, "block 1 at byte"));
	free(o);
}

static void test_stat_usage(void **state)
{
	char *both[] = { "stat", "--replay", rec, "-p", "1", NULL };
	char *missing[] = { "stat", "--replay", "/nonexistent/x.lsr", NULL };
	char *tier[] = { "stat", "--replay", rec, "--probes", "phases", NULL };
	char *o;

	assert_int_equal(run_cmd(ls_cmd_stat, 5, both), 2);
	assert_int_equal(run_cmd(ls_cmd_stat, 5, tier), 2);
	o = slurp(errf);
	assert_non_null(strstr(o, "fixed when the recording was made"));
	free(o);
	assert_int_equal(run_cmd(ls_cmd_stat, 3, missing), 1);
	o = slurp(errf);
	assert_string_equal(o, "loopscope stat: cannot open /nonexistent/x.lsr: No such file or directory\n");
	free(o);
}

/* The stall's end comes back with its stacks: frames, counts and order as recorded. */
static void keep_end(const struct ls_episode *ep, void *arg)
{
	if (ep->end_ns && ep->kind == LS_EP_STALL)
		*(struct ls_episode *)arg = *ep;
}

static void test_stacks_replayed(void **state)
{
	struct ls_episode got = { 0 };
	const struct ls_stack_set *want;
	struct ls_source *src;
	char err[256];

	write_recording(rec, 1);
	if (getenv("LS_FUZZ_SEEDS")) {
		/* A seed for tests/fuzz/record_fuzz.c with every record type in it. */
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s/stacks.lsr'", rec, getenv("LS_FUZZ_SEEDS"));
		assert_int_equal(system(cmd), 0);
	}
	want = stall_stacks();
	assert_int_equal(ls_replay_open(rec, 0, &src, err, sizeof(err)), 0);
	src->on_episode = keep_end;
	src->episode_arg = &got;
	while (ls_source_poll(src, 0) == 0)
		;
	assert_non_null(got.stacks);
	assert_int_equal(got.samples, 40);
	assert_int_equal(got.stacks->nstacks, want->nstacks);
	assert_true(got.stacks->total == want->total);
	for (uint32_t i = 0; i < want->nstacks; i++) {
		const struct ls_stack_sample *a = &got.stacks->stacks[i], *b = &want->stacks[i];

		assert_true(a->count == b->count);
		assert_int_equal(a->nframes, b->nframes);
		for (uint32_t k = 0; k < a->nframes; k++) {
			assert_int_equal(a->frames[k].kind, b->frames[k].kind);
			assert_string_equal(a->frames[k].function, b->frames[k].function);
			assert_int_equal(a->frames[k].line, b->frames[k].line);
			assert_true(!a->frames[k].file == !b->frames[k].file);
			if (a->frames[k].file)
				assert_string_equal(a->frames[k].file, b->frames[k].file);
			assert_true(!a->frames[k].module == !b->frames[k].module);
		}
	}
	ls_source_destroy(src);
}

/* ---------------------------------------------------------------- report */

static void test_report(void **state)
{
	char *argv[] = { "report", rec, "-o", out, NULL }, *h;
	char html[300];

	write_recording(rec, 1);
	snprintf(html, sizeof(html), "%s/r.html", dir);
	argv[3] = html;
	assert_int_equal(run_cmd(ls_cmd_report, 4, argv), 0);
	h = slurp(html);
	assert_true(!strncmp(h, "<!DOCTYPE html>", 15));
	assert_non_null(strstr(h, "</html>"));
	/* Self-contained: nothing fetched, nothing run. */
	assert_null(strstr(h, "http:"));
	assert_null(strstr(h, "https:"));
	assert_null(strstr(h, "<script"));
	assert_null(strstr(h, "<link"));
	assert_null(strstr(h, "url("));
	/* The only source is the stall's flame graph, inline. */
	assert_int_equal(count(h, "src="), 1);
	assert_int_equal(count(h, "<img class=\"flame\" alt=\"flame graph of episode 1\" src=\"data:image/svg+xml;base64,"), 1);
	assert_non_null(strstr(h, "<td><a href=\"#ep1\">40 samples</a></td>"));
	assert_non_null(strstr(h, "<h3 id=\"ep1\">#1 stall in timers, 250ms: 40 samples</h3>"));
	/* The stack text, escaped; the flame graph's names are inside its base64. */
	assert_non_null(strstr(h, "validate&lt;T&gt;"));
	assert_non_null(strstr(h, "/srv/app/&quot;coupons&quot;.js:14"));
	assert_non_null(strstr(h, "[native] __memcpy_avx"));
	/* The host escaped, both targets, plots, phase table, both episodes ranked. */
	assert_non_null(strstr(h, "host&quot;&lt;x&gt;"));
	assert_null(strstr(h, "host\"<x>"));
	assert_non_null(strstr(h, "/usr/bin/node"));
	assert_non_null(strstr(h, "/opt/loopdemo"));
	assert_int_equal(count(h, "aria-label=\"Utilization per interval\""), 2);
	assert_int_equal(count(h, "aria-label=\"Event-loop delay per interval (log scale)\""), 2);
	assert_non_null(strstr(h, "<td>1</td><td>2025-06-15 15:06:43 UTC</td><td>300/300</td>"));
	assert_non_null(strstr(h, "</span>stall</td><td>timers</td><td>250ms</td>"));
	assert_non_null(strstr(h, "</span>gc</td><td>poll</td><td>120ms</td>"));
	assert_non_null(strstr(h, "GC pauses</th><td>1, 120ms in all"));
	assert_int_equal(count(h, "</span>time in GC"), 1);	/* the node loop's, not the reference one's */
	assert_non_null(strstr(h, "<tr><td>poll</td><td>60.0%</td>"));
	assert_null(strstr(h, "no end mark"));
	free(h);

	/* Cut short: still a page, and it says so; status 0. */
	write_recording(rec, 0);
	assert_int_equal(run_cmd(ls_cmd_report, 4, argv), 0);
	h = slurp(html);
	assert_non_null(strstr(h, "no end mark"));
	free(h);
}

static void test_report_errors(void **state)
{
	char *noout[] = { "report", rec, NULL };
	char *bad[] = { "report", rec, "-o", "/nonexistent/dir/r.html", NULL };
	char *o;

	write_recording(rec, 1);
	assert_int_equal(run_cmd(ls_cmd_report, 2, noout), 2);
	assert_int_equal(run_cmd(ls_cmd_report, 4, bad), 1);
	o = slurp(errf);
	assert_string_equal(o, "loopscope report: cannot create /nonexistent/dir/r.html: No such file or directory\n");
	free(o);
}

/* ---------------------------------------------------------------- top */

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct ls_source **src = arg;

	top_model_episode((struct top_model *)src[1], ep, ls_source_now(src[0]));
}

static void feed(struct ls_source *src, struct top_model *m)
{
	struct ls_snapshot s;

	assert_int_equal(ls_source_snapshot(src, &s), 0);
	assert_int_equal(top_model_update(m, &s, ls_source_now(src)), 0);
	ls_snapshot_free(&s);
}

/* top --replay as top.c runs it: paused, step, jump to the next episode; the alert is
 * up at the stall's start, the title says replay, of when, and paused. */
static void test_top_replay(void **state)
{
	struct top_model m;
	struct top_draw_ctx ctx = { 0 };
	struct ls_source *src, *pair[2];
	char err[256], line[256];
	FILE *fo = fopen("/dev/null", "w"), *fi = fopen("/dev/null", "r");
	SCREEN *scr;
	int found = 0;

	write_recording(rec, 1);
	assert_int_equal(ls_replay_open(rec, 1, &src, err, sizeof(err)), 0);
	top_model_init(&m, &(struct top_opts){ .stall_ns = 100 * MS, .starve_ns = 100 * MS, .hold_ns = 2 * S });
	m.replay.on = 1;
	m.replay.speed = 1;
	m.replay.start_wall_ns = 1750000000ull * S;
	m.replay.start_ns = T0;
	snprintf(m.replay.host, sizeof(m.replay.host), "rechost");
	pair[0] = src;
	pair[1] = (struct ls_source *)&m;
	src->on_episode = on_episode;
	src->episode_arg = pair;
	ls_replay_set_paused(src, 1, ls_now_mono_ns());
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ls_replay_step(src, ls_now_mono_ns()), 0);
		feed(src, &m);
	}
	assert_int_equal(m.nrows, 2);
	assert_int_equal(ls_replay_next_episode(src, ls_now_mono_ns()), 0);
	feed(src, &m);
	top_model_tick(&m, ls_source_now(src));
	assert_int_equal(m.nalerts, 1);
	assert_int_equal(m.alerts[0].level, TOP_ALERT_ACTIVE);
	if (m.alerts[0].duration_ns != 100 * MS)
		fail_msg("alert duration %llu", (unsigned long long)m.alerts[0].duration_ns);

	assert_non_null(fo);
	assert_non_null(fi);
	scr = newterm("xterm", fo, fi);
	assert_non_null(scr);
	assert_int_equal(resizeterm(24, 80), OK);	/* the narrowest: the state still shows */
	top_draw_init(&ctx);
	top_draw(stdscr, &m, &ctx);
	for (int y = 0; y < 24; y++) {
		assert_true(mvwinnstr(stdscr, y, 0, line, 80) >= 0);
		if (y == 0) {
			assert_non_null(strstr(line, "loopscope top REPLAY of 2025-"));
			assert_non_null(strstr(line, "PAUSED 1x +3.3s"));	/* at the stall's start record */
		}
		found |= strstr(line, "stalled in timers for 100ms") ? 1 : 0;
		found |= strstr(line, "n next episode") ? 2 : 0;
	}
	assert_int_equal(found, 3);
	endwin();
	delscreen(scr);
	fclose(fo);
	fclose(fi);
	/* The rest plays to the end. */
	while (ls_replay_step(src, ls_now_mono_ns()) == 0)
		feed(src, &m);
	assert_int_equal(ls_replay_step(src, ls_now_mono_ns()), -ENODATA);
	assert_true(m.now_ns == T0 + (NSNAP - 1) * S);
	top_model_free(&m);
	ls_source_destroy(src);
}

static int setup(void **state)
{
	if (!mkdtemp(dir) || !(tab = ls_stacktab_new()))
		return -1;
	snprintf(rec, sizeof(rec), "%s/t.lsr", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(errf, sizeof(errf), "%s/err", dir);
	setenv("TZ", "UTC", 1);
	setenv("TERM", "xterm", 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	ls_stacktab_free(tab);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_text),
		cmocka_unit_test(test_stat_json_interval),
		cmocka_unit_test(test_stat_cut_and_damaged),
		cmocka_unit_test(test_stat_usage),
		cmocka_unit_test(test_stacks_replayed),
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_report_errors),
		cmocka_unit_test(test_top_replay),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
