/* prom_render_test.c: the Prometheus exposition (userspace/wire/prom.c) of synthetic
 * snapshots: exact cumulative le buckets, format structure, escaping, has-bits and
 * the prom-client compatibility series. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "histogram.h"
#include "http.h"
#include "prom.h"
#include "stacktab.h"
#include "view.h"

/* "12.000004095" -> 12000004095 ns, exactly (no floating point on the way). */
static uint64_t parse_seconds_ns(const char *s)
{
	uint64_t whole = 0, frac = 0;
	int digits = 0;

	while (*s >= '0' && *s <= '9')
		whole = whole * 10 + (uint64_t)(*s++ - '0');
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++, digits++)
			frac = frac * 10 + (uint64_t)(*s - '0');
	assert_true(digits <= 9);
	while (digits++ < 9)
		frac *= 10;
	return whole * 1000000000ull + frac;
}

static void test_le_edges(void **state)
{
	static const struct {
		uint64_t first;
		double worst;	/* the largest ratio of two neighbouring edges */
		unsigned count;
	} want[LS_PROM_NSETS] = {
		[LS_PROM_FINE] = { 16384, 1.25, 20 * 4 + 1 },
		[LS_PROM_COARSE] = { 4096, 1.5, 22 * 2 + 1 },
		[LS_PROM_OCTAVE] = { 4096, 2.0, 22 + 1 },
	};

	(void)state;
	for (int set = 0; set < LS_PROM_NSETS; set++) {
		unsigned n = ls_prom_le_count(set);

		assert_int_equal(n, want[set].count);
		assert_int_equal(ls_prom_le_edge_ns(set, 0), want[set].first);
		assert_int_equal(ls_prom_le_edge_ns(set, n - 1), 1ull << 34);
		for (unsigned i = 0; i < n; i++) {
			uint64_t e = ls_prom_le_edge_ns(set, i);
			/* Every edge starts a bucket of bpf/hist.h: le = edge - 1 ns is exact. */
			assert_int_equal(ls_hist_bucket_lo(ls_hist_index(e)), e);
			assert_int_equal(ls_hist_index(e - 1) + 1, ls_hist_index(e));
			if (i) {
				uint64_t p = ls_prom_le_edge_ns(set, i - 1);
				assert_true(e > p);
				assert_true((double)e / (double)p <= want[set].worst + 1e-9);
			}
		}
	}
}

static void test_seconds_format(void **state)
{
	static const struct { uint64_t ns; const char *text; } cases[] = {
		{ 0, "0" }, { 1, "0.000000001" }, { 4095, "0.000004095" }, { 1000000000, "1" },
		{ 1500000000, "1.5" }, { 17179869183ull, "17.179869183" }, { 100000, "0.0001" },
		{ UINT64_MAX, "18446744073.709551615" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ls_buf b = { 0 };
		ls_prom_seconds(&b, cases[i].ns);
		assert_string_equal(b.p, cases[i].text);
		assert_int_equal(parse_seconds_ns(b.p), cases[i].ns);
		ls_buf_free(&b);
	}
}

/* One target with one loop of the given has-bits, owned by the caller's statics. */
struct fixture {
	struct ls_snapshot s;
	struct ls_target_snapshot t;
	struct ls_loop_snapshot l;
};

static void fixture_init(struct fixture *f, uint32_t has, const char *comm)
{
	memset(f, 0, sizeof(*f));
	f->t.pid = 4321;
	snprintf(f->t.comm, sizeof(f->t.comm), "%s", comm);
	snprintf(f->t.exe, sizeof(f->t.exe), "/usr/bin/loopdemo");
	snprintf(f->t.tier, sizeof(f->t.tier), "usdt");
	f->t.runtime = LS_RT_REFERENCE;
	f->t.state = LS_TARGET_ATTACHED;
	f->t.nloops = 1;
	f->t.loops = &f->l;
	f->l.tid = 4322;
	f->l.has = has;
	f->s.ntargets = 1;
	f->s.targets = &f->t;
	f->s.self.attached_targets = 1;
	f->s.self.cpu_s = 0.25;
}

static char *render(const struct ls_snapshot *s, const struct ls_prom_ctx *ctx)
{
	struct ls_buf b = { 0 };
	struct ls_prom_ctx zero = { 0 };

	ls_prom_render(s, ctx ? ctx : &zero, &b);
	assert_false(b.oom);
	assert_non_null(b.p);
	return b.p;
}

/* The value of the first sample line that starts with prefix (name{labels} ). */
static const char *find_sample(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while (p && *p) {
		if (!strncmp(p, prefix, n))
			return p + n;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* le buckets count exactly the samples <= le, whatever the sample values. */
static void test_histogram_exact(void **state)
{
	enum { N = 30000 };
	static uint64_t v[N];
	static struct fixture f;
	uint64_t x = 88172645463325252ull, sum = 0;
	char *text, *p;
	int nle = 0;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "demo");
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (i % 3 == 0)	/* right on an edge, or one below: where off-by-ones live */
			v[i] = ls_prom_le_edge_ns(LS_PROM_FINE, (unsigned)(x % 81)) - (x >> 60 & 1);
		else
			v[i] = x % (1ull << (8 + x % 29));
		ls_hist_add(&f.l.delay, v[i]);
		sum += v[i];
	}
	text = render(&f.s, NULL);
	for (p = strstr(text, "loopscope_eventloop_delay_seconds_bucket{"); p;
	     p = strstr(p + 1, "loopscope_eventloop_delay_seconds_bucket{")) {
		const char *le = strstr(p, "le=\"") + 4;
		uint64_t got = strtoull(strchr(le, '}') + 2, NULL, 10), want = 0;

		if (!strncmp(le, "+Inf", 4)) {
			assert_int_equal(got, N);
			continue;
		}
		for (int i = 0; i < N; i++)
			want += v[i] <= parse_seconds_ns(le);
		if (got != want)
			fail_msg("le=%.20s: %llu in bucket, %llu samples <= le", le, (unsigned long long)got,
				 (unsigned long long)want);
		nle++;
	}
	assert_int_equal(nle, 81);
	p = (char *)find_sample(text, "loopscope_eventloop_delay_seconds_count{");
	assert_non_null(p);
	assert_int_equal(strtoull(strchr(p, ' ') + 1, NULL, 10), N);
	p = (char *)find_sample(text, "loopscope_eventloop_delay_seconds_sum{");
	assert_non_null(p);
	assert_int_equal(parse_seconds_ns(strchr(p, ' ') + 1), sum);
	free(text);
}

/* Structure of the text format: HELP and TYPE once per family, before its samples;
 * samples of a family together; counters end in _total; no series twice. */
static int ends_with(const char *s, size_t n, const char *sfx)
{
	size_t k = strlen(sfx);
	return n >= k && !memcmp(s + n - k, sfx, k);
}

static void check_structure(const char *text)
{
	char fam[128] = "", type[16] = "";
	char seen_fams[64][128];
	int nfams = 0, nsamples = 0;
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len;

		assert_non_null(end);	/* every line ends in \n, the last one too */
		len = (size_t)(end - line);
		if (!strncmp(line, "# HELP ", 7)) {
			assert_true(sscanf(line, "# HELP %127s", fam) == 1);
			for (int i = 0; i < nfams; i++)
				if (!strcmp(seen_fams[i], fam))
					fail_msg("family %s twice", fam);
			assert_true(nfams < 64);
			strcpy(seen_fams[nfams++], fam);
			type[0] = 0;
		} else if (!strncmp(line, "# TYPE ", 7)) {
			char f2[128];
			assert_true(sscanf(line, "# TYPE %127s %15s", f2, type) == 2);
			assert_string_equal(f2, fam);
			if (!strcmp(type, "counter"))
				assert_true(ends_with(fam, strlen(fam), "_total"));
		} else {
			size_t nl = strcspn(line, "{ ");
			int ok;

			assert_true(type[0]);
			ok = nl == strlen(fam) && !strncmp(line, fam, nl);
			if (!ok && (!strcmp(type, "histogram") || !strcmp(type, "summary")))
				ok = !strncmp(line, fam, strlen(fam)) &&
				     (ends_with(line, nl, "_bucket") || ends_with(line, nl, "_sum") ||
				      ends_with(line, nl, "_count"));
			if (!ok)
				fail_msg("sample '%.*s' outside its family %s", (int)len, line, fam);
			/* Same series twice (name and labels identical) is a scrape error. */
			{
				const char *val = memchr(line, '}', len);
				size_t key = val ? (size_t)(val - line) + 1 : nl;
				for (const char *q = strstr(text, "\n"); q && q + 1 < line; q = strchr(q + 1, '\n'))
					if (!strncmp(q + 1, line, key) && (q[1 + key] == ' '))
						fail_msg("series twice: %.*s", (int)key, line);
			}
			nsamples++;
		}
		line = end + 1;
	}
	assert_true(nsamples > 0);
}

static void test_structure_all_bits(void **state)
{
	static struct fixture f;
	struct ls_loop_interval st = { .pid = 4321, .tid = 4322, .utilization = 0.5 };
	struct ls_http_stats hs = { .open = 3, .rejected_busy = 1 };
	struct ls_prom_ctx ctx = { .compat_prom_client = 1, .http = &hs };
	char *text;

	(void)state;
	fixture_init(&f, LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_TIMERS | LS_HAS_DRAINS | LS_HAS_GC | LS_HAS_EPISODES,
		     "demo");
	for (int p = 0; p < LS_NPHASES; p++)
		ls_hist_add(&f.l.phase[p], 1000u * (p + 1));
	ls_hist_add(&f.l.delay, 20000000);
	ls_hist_add(&f.l.gc, 3000000);
	(void)st;
	text = render(&f.s, &ctx);
	check_structure(text);
	/* Every family userspace/wire/metrics.md lists is there. */
	static const char *const fams[] = {
		"loopscope_target_info", "loopscope_target_up", "loopscope_iterations_total",
		"loopscope_busy_seconds_total", "loopscope_idle_seconds_total", "loopscope_eventloop_utilization",
		"loopscope_phase_duration_seconds", "loopscope_iteration_duration_seconds",
		"loopscope_eventloop_delay_seconds", "loopscope_not_polling_seconds", "loopscope_poll_wait_seconds", "loopscope_timer_lateness_seconds",
		"loopscope_gc_pause_seconds", "loopscope_drain_duration_seconds", "loopscope_drain_callbacks_total",
		"loopscope_starvation_episodes_total", "loopscope_stall_episodes_total",
		"loopscope_gc_phase_seconds_total", "loopscope_episodes_in_progress", "loopscope_attached_targets",
		"loopscope_probe_hits_total", "loopscope_ringbuf_drops_total", "loopscope_agent_cpu_seconds_total",
		"loopscope_scrape_duration_seconds", "loopscope_renders_total", "loopscope_http_rejected_total", "nodejs_eventloop_lag_seconds",
		"nodejs_eventloop_lag_p99_seconds", "loopscope_build_info",
	};
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		char want[160];
		snprintf(want, sizeof(want), "# TYPE %s ", fams[i]);
		if (!strstr(text, want))
			fail_msg("no family %s", fams[i]);
	}
	assert_non_null(strstr(text, "loopscope_phase_duration_seconds_count{pid=\"4321\",comm=\"demo\","
				     "runtime=\"reference\",loop=\"4322\",phase=\"check\"} 1\n"));
	assert_non_null(strstr(text, "loopscope_http_rejected_total{reason=\"busy\"} 1\n"));
	assert_non_null(strstr(text, "loopscope_agent_cpu_seconds_total 0.25\n"));
	free(text);
}

/* Cardinality: a histogram with no sample is not written (a phase never run, a queue
 * never drained), and an exited target shows only target_info and target_up 0 once
 * its final numbers had exited_loops_ns to be scraped. */
static void test_empty_and_exited(void **state)
{
	static struct fixture f;
	struct ls_prom_ctx ctx = { 0 };
	char *text;
	int nbucket = 0;

	(void)state;
	fixture_init(&f, LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_DRAINS, "demo");
	ls_hist_add(&f.l.phase[0], 5000);	/* timers ran; no other phase did */
	ls_hist_add(&f.l.delay, 50000);
	text = render(&f.s, NULL);
	check_structure(text);
	assert_non_null(strstr(text, "loopscope_phase_duration_seconds_count{pid=\"4321\",comm=\"demo\","
				     "runtime=\"reference\",loop=\"4322\",phase=\"timers\"} 1\n"));
	assert_null(strstr(text, "phase=\"check\""));
	assert_null(strstr(text, "loopscope_drain_duration_seconds_bucket"));
	assert_null(strstr(text, "loopscope_iteration_duration_seconds_bucket"));
	assert_non_null(strstr(text, "loopscope_eventloop_delay_seconds_count{"));
	for (const char *p = text; (p = strstr(p, "_bucket{")); p++)
		nbucket++;
	assert_int_equal(nbucket, 24 + 46 + 82);	/* timers (octave), not_polling (= delay), delay */
	free(text);

	f.t.state = LS_TARGET_EXITED;
	f.t.exited_ns = 1000000000;
	ctx.exited_loops_ns = 30000000000ull;
	ctx.now_ns = f.t.exited_ns + 29000000000ull;	/* final numbers still shown */
	text = render(&f.s, &ctx);
	assert_non_null(strstr(text, "loopscope_eventloop_delay_seconds_count{"));
	free(text);
	ctx.now_ns = f.t.exited_ns + 31000000000ull;
	text = render(&f.s, &ctx);
	check_structure(text);
	assert_non_null(strstr(text, "loopscope_target_up{pid=\"4321\",comm=\"demo\",runtime=\"reference\"} 0\n"));
	assert_non_null(strstr(text, "loopscope_target_info{pid=\"4321\""));
	assert_null(strstr(text, "loop=\""));	/* no per-loop series at all */
	assert_null(strstr(text, "loopscope_loops{"));
	free(text);
}

/* loopscope_not_polling_seconds: the delay histogram for a backend where the two are one
 * measurement, the not_polling field when LS_HAS_NOT_POLLING says it differs (Node). */
static void test_not_polling(void **state)
{
	static struct fixture f;
	char *text;
	const char *p;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "demo");
	ls_hist_add(&f.l.delay, 30000000);
	ls_hist_add(&f.l.delay, 30000000);
	text = render(&f.s, NULL);
	check_structure(text);
	p = find_sample(text, "loopscope_not_polling_seconds_sum{");
	assert_non_null(p);
	assert_int_equal(parse_seconds_ns(strchr(p, ' ') + 1), 60000000);
	free(text);

	f.l.has |= LS_HAS_NOT_POLLING;
	ls_hist_add(&f.l.not_polling, 25000000);
	text = render(&f.s, NULL);
	check_structure(text);
	p = find_sample(text, "loopscope_not_polling_seconds_sum{");
	assert_non_null(p);
	assert_int_equal(parse_seconds_ns(strchr(p, ' ') + 1), 25000000);
	p = find_sample(text, "loopscope_not_polling_seconds_count{");
	assert_non_null(p);
	assert_int_equal(strtoull(strchr(p, ' ') + 1, NULL, 10), 1);
	p = find_sample(text, "loopscope_eventloop_delay_seconds_count{");
	assert_non_null(p);
	assert_int_equal(strtoull(strchr(p, ' ') + 1, NULL, 10), 2);
	free(text);
}

/* A loop that only measures delay gets no phase, drain or GC series. */
static void test_has_bits(void **state)
{
	static struct fixture f;
	char *text;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "demo");
	ls_hist_add(&f.l.delay, 50000);
	text = render(&f.s, NULL);
	check_structure(text);
	assert_null(strstr(text, "loopscope_phase_duration_seconds_bucket"));
	assert_null(strstr(text, "loopscope_gc_pause_seconds_bucket"));
	assert_null(strstr(text, "loopscope_drain_duration_seconds_bucket"));
	assert_non_null(strstr(text, "loopscope_eventloop_delay_seconds_bucket"));
	assert_null(strstr(text, "nodejs_eventloop"));	/* compat only when asked */
	free(text);
}

static void test_label_escaping(void **state)
{
	static struct fixture f;
	char *text;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "a\"b\\c\nd\xff\xc3\xa9");
	text = render(&f.s, NULL);
	check_structure(text);
	assert_non_null(strstr(text, "comm=\"a\\\"b\\\\c\\nd?\xc3\xa9\""));
	free(text);
}

static const struct ls_loop_interval *one_state(void *arg, int32_t pid, uint32_t tid)
{
	const struct ls_loop_interval *st = arg;
	return st->pid == pid && st->tid == tid ? st : NULL;
}

/* A Node worker's loop carries its name as the thread label, and target_info the
 * runtime's and libuv's versions; a loop with no name gets no thread label. */
static void test_node_names(void **state)
{
	static struct fixture f;
	char *text;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "node");
	f.t.runtime = LS_RT_NODE;
	snprintf(f.t.tier, sizeof(f.t.tier), "light");
	snprintf(f.t.version, sizeof(f.t.version), "22.23.5");
	snprintf(f.t.libuv_version, sizeof(f.t.libuv_version), "1.51.0");
	snprintf(f.l.label, sizeof(f.l.label), "worker 2");
	text = render(&f.s, NULL);
	assert_non_null(strstr(text, "loopscope_target_info{pid=\"4321\",comm=\"node\",runtime=\"node\","
				     "exe=\"/usr/bin/loopdemo\",tier=\"light\",state=\"attached\","
				     "node_version=\"22.23.5\",libuv_version=\"1.51.0\"} 1\n"));
	assert_non_null(strstr(text, "loopscope_busy_seconds_total{pid=\"4321\",comm=\"node\",runtime=\"node\","
				     "loop=\"4322\",thread=\"worker 2\"} 0\n"));
	free(text);
	f.l.label[0] = 0;
	text = render(&f.s, NULL);
	assert_null(strstr(text, "thread=\""));
	free(text);
}

/* Utilization comes from the exporter's last interval when it has one, else it spans
 * since attach; the in-progress gauge follows the state. */
static void test_utilization_and_in_progress(void **state)
{
	static struct fixture f;
	static struct ls_loop_interval st;
	struct ls_prom_ctx ctx = { .loop_state = one_state, .arg = &st };
	char *text;
	const char *v;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY | LS_HAS_EPISODES, "demo");
	f.l.busy_ns = 1000000000;
	f.l.idle_ns = 3000000000ull;
	text = render(&f.s, NULL);
	v = find_sample(text, "loopscope_eventloop_utilization{pid=\"4321\",comm=\"demo\",runtime=\"reference\",loop=\"4322\"} ");
	assert_non_null(v);
	assert_true(!strncmp(v, "0.25\n", 5));
	assert_non_null(strstr(text, "loopscope_busy_seconds_total{pid=\"4321\",comm=\"demo\",runtime=\"reference\",loop=\"4322\"} 1\n"));
	free(text);

	st.pid = 4321;
	st.tid = 4322;
	st.utilization = 0.75;
	st.in_progress[LS_EP_STALL] = 1;
	text = render(&f.s, &ctx);
	v = find_sample(text, "loopscope_eventloop_utilization{pid=\"4321\",comm=\"demo\",runtime=\"reference\",loop=\"4322\"} ");
	assert_true(!strncmp(v, "0.75\n", 5));
	assert_non_null(strstr(text, "loopscope_episodes_in_progress{pid=\"4321\",comm=\"demo\",runtime=\"reference\","
				     "loop=\"4322\",kind=\"stall\"} 1\n"));
	assert_non_null(strstr(text, "kind=\"tick_starvation\"} 0\n"));
	free(text);
}

/* Blocked time by JS function: bounded to the first LS_BLOCKED_TOP pairs of a
 * loop plus "other", label values escaped, counters that only grow. */
static void test_blocked_by_function(void **state)
{
	static struct fixture f;
	static struct ls_loop_interval st;
	struct ls_prom_ctx ctx = { .loop_state = one_state, .arg = &st };
	char *text, name[32];
	int series = 0;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY | LS_HAS_EPISODES, "demo");
	st.pid = 4321;
	st.tid = 4322;
	text = render(&f.s, &ctx);
	assert_null(strstr(text, "loopscope_blocked_seconds_total{"));	/* nothing blocked yet */
	free(text);
	ls_blocked_add(&st, "validateCoupon", "/srv/app/coupons.js",
			    1500000000ull);
	ls_blocked_add(&st, "say \"hi\"", "/srv/a.js", 1000000);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ls_blocked_add(&st, name, "/srv/many.js", 1000000);
	}
	ls_blocked_add(&st, "validateCoupon", "/srv/app/coupons.js",
			    500000000ull);
	assert_int_equal(st.nblocked, LS_BLOCKED_TOP);
	text = render(&f.s, &ctx);
	assert_non_null(strstr(text, "# TYPE loopscope_blocked_seconds_total counter\n"));
	assert_non_null(strstr(text, "loopscope_blocked_seconds_total{pid=\"4321\",comm=\"demo\",runtime=\"reference\","
				     "loop=\"4322\",function=\"validateCoupon\",file=\"/srv/app/coupons.js\"} 2\n"));
	assert_non_null(strstr(text, "function=\"say \\\"hi\\\"\",file=\"/srv/a.js\"} 0.001\n"));
	/* f0..f7 got series of their own, f8..f19 went to "other" */
	assert_non_null(strstr(text, "function=\"f7\",file=\"/srv/many.js\"} 0.001\n"));
	assert_null(strstr(text, "function=\"f8\""));
	assert_non_null(strstr(text, "function=\"other\",file=\"\"} 0.012\n"));
	for (const char *p = text; (p = strstr(p, "\nloopscope_blocked_seconds_total{")); p++)
		series++;
	assert_int_equal(series, LS_BLOCKED_TOP + 1);
	free(text);
}

/* A C loop's episode (no JS frame): its time goes to the leaf-most function of the
 * program's own code, with the program as the file, not to libc's or the vDSO's leaf;
 * a JS stack still goes to its JS function. */
static void test_blocked_native(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_view v = { 0 };
	struct ls_frame f[4];
	struct ls_episode ep = { .pid = 77, .tid = 77, .kind = LS_EP_STALL, .start_ns = 1000000000ull,
				 .end_ns = 1200000000ull };
	const struct ls_loop_interval *li;

	(void)state;
	f[0] = (struct ls_frame){ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(t, "[vdso]"),
				  .module = ls_stacktab_str(t, "[vdso]") };
	f[1] = (struct ls_frame){ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(t, "__clock_gettime"),
				  .module = ls_stacktab_str(t, "/usr/lib/x86_64-linux-gnu/libc.so.6") };
	f[2] = (struct ls_frame){ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(t, "block_cb"),
				  .module = ls_stacktab_str(t, "/srv/bin/loopdemo") };
	f[3] = (struct ls_frame){ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(t, "main"),
				  .module = ls_stacktab_str(t, "/srv/bin/loopdemo") };
	assert_int_equal(ls_stack_agg_add(a, f, 4, 3), 0);
	assert_int_equal(ls_stack_agg_add(a, f + 1, 1, 1), 0);	/* libc alone: nothing of its own */
	ep.stacks = ls_stack_agg_finish(a, t, 5);
	ls_stack_agg_free(a);
	ls_view_episode(&v, &ep);
	li = ls_view_loop(&v, 77, 77);
	assert_non_null(li);
	assert_int_equal(li->nblocked, 2);
	assert_string_equal(li->blocked[0].function, "block_cb");
	assert_string_equal(li->blocked[0].file, "/srv/bin/loopdemo");
	assert_int_equal(li->blocked[0].ns, 150000000ull);
	assert_string_equal(li->blocked[1].function, "[native]");
	ls_view_free(&v);
	ls_stacktab_free(t);
}

/* prom-client's series: exactly the eight nodejs_eventloop_lag* gauges its
 * collectDefaultMetrics() emits (no ELU: prom-client has none), from the delay window. */
static void test_compat(void **state)
{
	static struct fixture f;
	static struct ls_loop_interval st = { .pid = 4321, .tid = 4322, .utilization = -1 };
	struct ls_prom_ctx ctx = { .compat_prom_client = 1, .loop_state = one_state, .arg = &st,
				   .now_ns = 5000000000ull };
	char *text;
	const char *v;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "demo");
	for (int i = 0; i < 1000; i++)
		ls_hist_add(&st.lag_window, i < 989 ? 1000000 : 50000000);	/* 1 ms, 1.1% at 50 ms: p99 is in the tail */
	st.lag_window_valid = 1;
	ls_hist_add(&f.l.delay, 1);	/* the cumulative one must not be used */
	f.l.live_state = LS_LIVE_RUNNING;
	f.l.live_since_ns = 4750000000ull;
	text = render(&f.s, &ctx);
	check_structure(text);
	v = find_sample(text, "nodejs_eventloop_lag_seconds{pid=\"4321\",comm=\"demo\",runtime=\"reference\",loop=\"4322\"} ");
	assert_non_null(v);
	assert_true(!strncmp(v, "0.25\n", 5));	/* out of poll for 250 ms now */
	v = find_sample(text, "nodejs_eventloop_lag_p99_seconds{");
	assert_non_null(v);
	{
		double p99 = strtod(strchr(v, ' ') + 1, NULL);
		assert_true(p99 > 0.047 && p99 < 0.053);
	}
	v = find_sample(text, "nodejs_eventloop_lag_p50_seconds{");
	{
		double p50 = strtod(strchr(v, ' ') + 1, NULL);
		assert_true(p50 > 0.00095 && p50 < 0.00105);
	}
	{
		int nfam = 0;
		for (const char *q = text; (q = strstr(q, "# TYPE nodejs_")); q++)
			nfam++;
		assert_int_equal(nfam, 8);
	}
	assert_null(strstr(text, "nodejs_eventloop_utilization"));
	free(text);
}

/* An empty snapshot still renders the agent's own series. */
static void test_empty(void **state)
{
	struct ls_snapshot s = { 0 };
	char *text;

	(void)state;
	text = render(&s, NULL);
	check_structure(text);
	assert_non_null(strstr(text, "loopscope_attached_targets 0\n"));
	free(text);
}

/* The probe cost per iteration moves as the loop runs: its own gauges, while
 * target_info's labels (its series) stay the same from one scrape to the next. */
static void test_probe_cost_gauges(void **state)
{
	static struct fixture f;
	char *text, info[2][512];
	const char *v, *e;

	(void)state;
	fixture_init(&f, LS_HAS_DELAY, "node");
	f.t.runtime = LS_RT_NODE;
	snprintf(f.t.tier, sizeof(f.t.tier), "light");
	text = render(&f.s, NULL);	/* no iteration yet: no cost */
	check_structure(text);
	assert_null(find_sample(text, "loopscope_probe_traps_per_iteration{"));
	free(text);
	for (int k = 0; k < 2; k++) {
		f.l.iterations = 1000;
		f.t.traps = k ? 2500 : 1000;
		f.t.probe_hits = k ? 4000 : 3000;
		text = render(&f.s, NULL);
		check_structure(text);
		v = strstr(text, "\nloopscope_target_info{");
		assert_non_null(v);
		e = strchr(v + 1, '\n');
		snprintf(info[k], sizeof(info[k]), "%.*s", (int)(e - v - 1), v + 1);
		assert_null(strstr(info[k], "per_iteration"));
		v = find_sample(text, "loopscope_probe_traps_per_iteration{pid=\"4321\",comm=\"node\",runtime=\"node\"} ");
		assert_non_null(v);
		assert_true(!strncmp(v, k ? "2.5\n" : "1\n", k ? 4 : 2));
		v = find_sample(text, "loopscope_probe_runs_per_iteration{pid=\"4321\",comm=\"node\",runtime=\"node\"} ");
		assert_non_null(v);
		assert_true(!strncmp(v, k ? "4\n" : "3\n", 2));
		free(text);
	}
	assert_string_equal(info[0], info[1]);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_le_edges),
		cmocka_unit_test(test_empty_and_exited),
		cmocka_unit_test(test_not_polling),
		cmocka_unit_test(test_seconds_format),
		cmocka_unit_test(test_histogram_exact),
		cmocka_unit_test(test_structure_all_bits),
		cmocka_unit_test(test_has_bits),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_utilization_and_in_progress),
		cmocka_unit_test(test_blocked_by_function),
		cmocka_unit_test(test_blocked_native),
		cmocka_unit_test(test_node_names),
		cmocka_unit_test(test_compat),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_probe_cost_gauges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
