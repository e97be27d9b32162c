/* snapjson_test.c: the /events JSON codec (userspace/wire/snapjson.c) round-trips every
 * field exactly, 64-bit values included, and rejects what it must. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "histogram.h"
#include "snapjson.h"
#include "stacktab.h"

/* A snapshot with every field set to something distinct, including values that a
 * double cannot hold, names that need escaping, and empty histograms. */
static void make_snapshot(struct ls_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->mono_ns = 123456789012345ull;
	s->wall_ns = 1763800000123456789ull;	/* > 2^53: travels as a string */
	s->self.attached_targets = 2;
	s->self.probe_hits = (1ull << 53) + 1;
	s->self.ringbuf_drops = 7;
	s->self.episodes = 42;
	s->self.cpu_s = 0.1 + 0.2;		/* not exactly representable in decimal */
	s->self.rss_bytes = 12345678;
	s->ntargets = 2;
	s->targets = calloc(2, sizeof(*s->targets));
	assert_non_null(s->targets);
	for (uint32_t i = 0; i < 2; i++) {
		struct ls_target_snapshot *t = &s->targets[i];

		t->pid = 1000 + (int32_t)i;
		snprintf(t->comm, sizeof(t->comm), i ? "we\"ird\\na\x01me" : "loopdemo");
		snprintf(t->exe, sizeof(t->exe), "/opt/tab\there/\xc3\xa9t\xc3\xa9/loopdemo");
		t->runtime = i ? LS_RT_NODE : LS_RT_REFERENCE;
		t->state = i ? LS_TARGET_EXITED : LS_TARGET_ATTACHED;
		snprintf(t->tier, sizeof(t->tier), "usdt");
		snprintf(t->note, sizeof(t->note), i ? "no GC probes: \"v8\" symbols missing" : "");
		snprintf(t->version, sizeof(t->version), i ? "18.20.8" : "");
		snprintf(t->libuv_version, sizeof(t->libuv_version), i ? "1.44.2" : "");
		t->attached_ns = 1000 + i;
		t->exited_ns = i ? 99999 : 0;
		t->nloops = i ? 0 : 2;	/* a target with no loop yet encodes as [] */
		if (!t->nloops)
			continue;
		t->loops = calloc(t->nloops, sizeof(*t->loops));
		assert_non_null(t->loops);
		for (uint32_t j = 0; j < t->nloops; j++) {
			struct ls_loop_snapshot *l = &t->loops[j];
			uint64_t v = 1;

			l->tid = 1000 + j;
			snprintf(l->name, sizeof(l->name), "loop-%u", j);
			snprintf(l->label, sizeof(l->label), j ? "worker %u" : "main", j);
			l->has = LS_HAS_PHASES | LS_HAS_DELAY | (j ? LS_HAS_GC : 0);
			l->iterations = 5000 + j;
			l->busy_ns = (1ull << 60) + 3;
			l->idle_ns = 77;
			for (int p = 0; p < LS_NPHASES; p++)
				for (int k = 0; k < 50 * (p + 1); k++, v = v * 3 + 7)
					ls_hist_add(&l->phase[p], v % (1ull << 42));
			for (uint64_t x = 1; x < (1ull << 41); x = x * 7 / 4 + 1) {
				ls_hist_add(&l->iteration, x);
				ls_hist_add(&l->delay, x / 2);
			}
			ls_hist_add(&l->poll_wait, 0);		/* bucket 0 is a real bucket */
			ls_hist_add(&l->timer_lateness, 1ull << 45);	/* the last bucket */
			l->ticks.drains = 3;
			l->ticks.callbacks = 300;
			l->ticks.starvation_episodes = 1;
			ls_hist_add(&l->ticks.duration, 150000000);
			ls_hist_add(&l->ticks.per_drain, 100);
			l->microtasks.drains = 9;
			ls_hist_add(&l->microtasks.duration, 5);
			l->stall_episodes = 4;
			if (j) {
				ls_hist_add(&l->gc, 2500000);
				l->has |= LS_HAS_NOT_POLLING;
				ls_hist_add(&l->not_polling, 123456);
				ls_hist_add(&l->not_polling, 7);
			}
			for (int p = 0; p <= LS_NPHASES; p++)
				l->gc_phase_ns[p] = (uint64_t)p * 1000 + (p == LS_NPHASES ? (1ull << 62) : 0);
			l->live_state = j ? LS_LIVE_RUNNING : LS_LIVE_POLLING;
			l->live_phase = j ? LS_PHASE_CHECK : LS_PHASE_NONE;
			l->live_drain = j ? 2 : 0;
			l->live_since_ns = 11;
			l->live_phase_since_ns = 12;
			l->live_drain_since_ns = 13;
			l->live_drain_callbacks = 14;
		}
	}
}

static void assert_targets_equal(const struct ls_snapshot *a, const struct ls_snapshot *b)
{
	assert_int_equal(a->ntargets, b->ntargets);
	for (uint32_t i = 0; i < a->ntargets; i++) {
		const struct ls_target_snapshot *x = &a->targets[i], *y = &b->targets[i];

		assert_int_equal(x->pid, y->pid);
		assert_string_equal(x->comm, y->comm);
		assert_string_equal(x->exe, y->exe);
		assert_int_equal(x->runtime, y->runtime);
		assert_int_equal(x->state, y->state);
		assert_string_equal(x->tier, y->tier);
		assert_string_equal(x->note, y->note);
		assert_string_equal(x->version, y->version);
		assert_string_equal(x->libuv_version, y->libuv_version);
		assert_int_equal(x->attached_ns, y->attached_ns);
		assert_int_equal(x->exited_ns, y->exited_ns);
		assert_int_equal(x->nloops, y->nloops);
		/* Loops are plain data (calloc'd on both sides, so padding is zero too). */
		for (uint32_t j = 0; j < x->nloops; j++)
			assert_memory_equal(&x->loops[j], &y->loops[j], sizeof(x->loops[j]));
	}
}

static void test_snapshot_round_trip(void **state)
{
	struct ls_snapshot s, d;
	char *json = NULL, *json2 = NULL;
	size_t len = 0, len2 = 0;

	(void)state;
	make_snapshot(&s);
	assert_int_equal(ls_snapshot_to_json(&s, &json, &len), 0);
	assert_int_equal(strlen(json), len);
	assert_null(memchr(json, '\n', len));	/* one line, whatever the names hold */
	assert_int_equal(ls_json_type(json, len), LS_JSON_SNAPSHOT);
	assert_int_equal(ls_snapshot_from_json(json, len, &d), 0);

	assert_int_equal(d.mono_ns, s.mono_ns);
	assert_int_equal(d.wall_ns, s.wall_ns);
	assert_memory_equal(&d.self, &s.self, sizeof(s.self));
	assert_targets_equal(&s, &d);

	/* Encoding the decoded snapshot gives the same bytes. */
	assert_int_equal(ls_snapshot_to_json(&d, &json2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(json, json2, len);

	/* A trailing newline (as read off the stream) is accepted. */
	ls_snapjson_free(&d);
	json = realloc(json, len + 2);
	memcpy(json + len, "\r\n", 2);
	assert_int_equal(ls_snapshot_from_json(json, len + 2, &d), 0);
	assert_int_equal(d.wall_ns, s.wall_ns);

	free(json);
	free(json2);
	ls_snapjson_free(&d);
	ls_snapjson_free(&s);
}

/* Sparse: an empty histogram costs a few bytes, a bucket appears only if non-empty. */
static void test_sparse_histograms(void **state)
{
	struct ls_snapshot s = { 0 };
	struct ls_target_snapshot t = { .pid = 1, .nloops = 1 };
	struct ls_loop_snapshot *l = calloc(1, sizeof(*l));
	char *json;
	size_t len;

	(void)state;
	assert_non_null(l);
	t.loops = l;
	s.ntargets = 1;
	s.targets = &t;
	ls_hist_add(&l->delay, 1000);
	ls_hist_add(&l->delay, 1000);
	assert_int_equal(ls_snapshot_to_json(&s, &json, &len), 0);
	assert_non_null(strstr(json, "\"delay\":{\"count\":2,\"sum\":2000,\"max\":1000,\"buckets\":[[" ));
	{
		char want[64];
		snprintf(want, sizeof(want), "\"buckets\":[[%u,2]]", ls_hist_index(1000));
		assert_non_null(strstr(json, want));
	}
	assert_non_null(strstr(json, "\"iteration\":{\"count\":0,\"sum\":0,\"max\":0,\"buckets\":[]}"));
	/* A whole idle loop stays small: 14 empty histograms and the counters. */
	assert_true(len < 2400);
	free(json);
	free(l);
}

static void test_episode_round_trip(void **state)
{
	struct ls_episode e = { .pid = 4242, .tid = 4243, .kind = LS_EP_MICROTASK_STARVATION,
				.phase = LS_PHASE_TIMERS, .start_ns = (1ull << 63) + 5, .end_ns = 0,
				.callbacks = 100000 }, d;
	char *json;
	size_t len;

	(void)state;
	assert_int_equal(ls_episode_to_json(&e, &json, &len), 0);
	assert_string_equal(json, "{\"type\":\"episode\",\"v\":1,\"pid\":4242,\"tid\":4243,"
				  "\"kind\":\"microtask_starvation\",\"phase\":\"timers\","
				  "\"start_ns\":\"9223372036854775813\",\"end_ns\":0,\"callbacks\":100000}");
	assert_int_equal(ls_json_type(json, len), LS_JSON_EPISODE);
	assert_int_equal(ls_episode_from_json(json, len, &d), 0);
	assert_memory_equal(&d, &e, sizeof(e));
	free(json);

	for (uint32_t k = 0; k < LS_EP_NKINDS; k++) {
		e.kind = k;
		e.phase = k == LS_EP_TARGET_EXIT ? LS_PHASE_NONE : LS_PHASE_POLL;
		assert_int_equal(ls_episode_to_json(&e, &json, &len), 0);
		assert_int_equal(ls_episode_from_json(json, len, &d), 0);
		assert_memory_equal(&d, &e, sizeof(e));
		free(json);
	}
}

/* An episode's stacks (what /events carries) survive the trip with every field. */
static void test_episode_stacks_round_trip(void **state)
{
	struct ls_stacktab *t = ls_stacks_table();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame f[3] = {
		{ .kind = LS_FRAME_KERNEL, .function = ls_stacktab_str(t, "schedule"), .module = ls_stacktab_str(t, "[kernel]") },
		{ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(t, "node::crypto::PBKDF2Traits::DeriveBits"),
		  .module = ls_stacktab_str(t, "/usr/bin/node"), .file = ls_stacktab_str(t, "crypto_pbkdf2.cc"), .line = 9 },
		{ .kind = LS_FRAME_JS, .function = ls_stacktab_str(t, "validate \"coupon\""),
		  .file = ls_stacktab_str(t, "/srv/app/coupons.js"), .line = 14, .column = 3 },
	};
	struct ls_episode e = { .pid = 7, .tid = 8, .kind = LS_EP_STALL, .phase = LS_PHASE_POLL, .start_ns = 10,
				.end_ns = 20 }, d;
	char *json, *json2;
	size_t len, len2;

	(void)state;
	assert_int_equal(ls_stack_agg_add(a, f, 3, 30), 0);
	assert_int_equal(ls_stack_agg_add(a, f + 2, 1, 10), 0);
	e.stacks = ls_stack_agg_finish(a, t, 8);
	e.samples = 40;
	ls_stack_agg_free(a);
	assert_int_equal(ls_episode_to_json(&e, &json, &len), 0);
	assert_non_null(strstr(json, "\"samples\":40,\"stacks\":[{\"share\":0.750,\"count\":30,\"frames\":"
				     "[{\"kind\":\"kernel\",\"function\":\"schedule\",\"module\":\"[kernel]\"}"));
	assert_int_equal(ls_episode_from_json(json, len, &d), 0);
	assert_int_equal(d.samples, 40);
	assert_non_null(d.stacks);
	assert_int_equal(d.stacks->nstacks, 2);
	assert_int_equal(d.stacks->stacks[0].count, 30);
	assert_int_equal(d.stacks->stacks[0].nframes, 3);
	assert_string_equal(d.stacks->stacks[0].frames[2].function, "validate \"coupon\"");
	assert_int_equal(d.stacks->stacks[0].frames[2].column, 3);
	assert_int_equal(d.stacks->stacks[0].frames[1].kind, LS_FRAME_NATIVE);
	assert_string_equal(d.stacks->stacks[0].frames[1].file, "crypto_pbkdf2.cc");
	assert_null(d.stacks->stacks[1].frames[0].module);
	/* and back out, byte for byte */
	assert_int_equal(ls_episode_to_json(&d, &json2, &len2), 0);
	assert_string_equal(json, json2);
	free(json);
	free(json2);
	/* damaged stacks are refused */
	{
		static const char *const bad[] = {
			"{\"type\":\"episode\",\"v\":1,\"pid\":1,\"kind\":\"stall\",\"samples\":1,\"stacks\":{}}",
			"{\"type\":\"episode\",\"v\":1,\"pid\":1,\"kind\":\"stall\",\"samples\":1,\"stacks\":[{\"count\":1,"
			"\"frames\":[{\"kind\":\"martian\",\"function\":\"f\"}]}]}",
			"{\"type\":\"episode\",\"v\":1,\"pid\":1,\"kind\":\"stall\",\"samples\":1,\"stacks\":[{\"count\":1,"
			"\"frames\":[{\"kind\":\"js\"}]}]}",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			assert_int_equal(ls_episode_from_json(bad[i], strlen(bad[i]), &d), -EINVAL);
	}
}

/* Lines that are not ours, or are damaged, are refused without leaks or partial output. */
static void test_rejects(void **state)
{
	static const char *const bad_snap[] = {
		"",
		"not json",
		"[1,2]",
		"{\"type\":\"episode\",\"v\":1,\"pid\":1,\"kind\":\"stall\"}",
		"{\"type\":\"snapshot\",\"v\":2,\"hist\":\"loglin4-40\"}",	/* a future version */
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin5-40\"}",	/* another layout */
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"mono_ns\":-1}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"mono_ns\":1.5}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"wall_ns\":\"18446744073709551616\"}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":{}}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":[{\"pid\":1,\"runtime\":\"java\"}]}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":[{\"pid\":1,\"loops\":[{\"tid\":1},"
		"{\"delay\":{\"count\":1,\"buckets\":[[9999,1]]}}]}]}",	/* bucket index out of range */
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":[{\"pid\":1,\"loops\":[{\"tid\":1,"
		"\"delay\":{\"count\":1,\"buckets\":[[3]]}}]}]}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":[{\"pid\":1,\"loops\":[{\"tid\":1,"
		"\"live\":{\"phase\":\"lunch\"}}]}]}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":[{\"pid\":1,\"loops\":[{\"tid\":1,"
		"\"gc_phase_ns\":[1,2,3,4,5,6,7,8,9]}]}]}",
		"{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":[{\"pid\":1}",	/* truncated */
	};
	static const char *const bad_ep[] = {
		"{\"type\":\"episode\",\"v\":1,\"pid\":1}",			/* no kind */
		"{\"type\":\"episode\",\"v\":1,\"pid\":1,\"kind\":\"nap\"}",
		"{\"type\":\"episode\",\"v\":1,\"kind\":\"stall\"}",			/* no pid */
		"{\"type\":\"episode\",\"v\":1,\"pid\":1,\"kind\":\"stall\",\"tid\":4294967296}",
		"{\"type\":\"snapshot\",\"v\":1,\"pid\":1,\"kind\":\"stall\"}",
	};
	struct ls_snapshot s;
	struct ls_episode e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_snap) / sizeof(bad_snap[0]); i++) {
		memset(&s, 0x5a, sizeof(s));
		if (ls_snapshot_from_json(bad_snap[i], strlen(bad_snap[i]), &s) != -EINVAL)
			fail_msg("accepted bad snapshot line %zu: %s", i, bad_snap[i]);
		assert_null(s.targets);
		assert_int_equal(s.ntargets, 0);
	}
	for (size_t i = 0; i < sizeof(bad_ep) / sizeof(bad_ep[0]); i++)
		if (ls_episode_from_json(bad_ep[i], strlen(bad_ep[i]), &e) != -EINVAL)
			fail_msg("accepted bad episode line %zu: %s", i, bad_ep[i]);
	assert_int_equal(ls_json_type("{\"type\":\"hello\"}", 16), LS_JSON_UNKNOWN);
	assert_int_equal(ls_json_type("{\"v\":1, \"type\":\"episode\"}", 25), LS_JSON_EPISODE);
	assert_int_equal(ls_json_type("garbage", 7), -EINVAL);
}

/* Older or newer encoders may omit fields: missing ones decode as zero/none. */
static void test_minimal_lines(void **state)
{
	static const char line[] = "{\"type\":\"snapshot\",\"v\":1,\"hist\":\"loglin4-40\",\"targets\":"
				   "[{\"pid\":7,\"loops\":[{\"tid\":8}]}]}";
	struct ls_snapshot s;

	(void)state;
	assert_int_equal(ls_snapshot_from_json(line, sizeof(line) - 1, &s), 0);
	assert_int_equal(s.ntargets, 1);
	assert_int_equal(s.targets[0].pid, 7);
	assert_int_equal(s.targets[0].nloops, 1);
	assert_int_equal(s.targets[0].loops[0].tid, 8);
	assert_int_equal(s.targets[0].loops[0].live_phase, LS_PHASE_NONE);
	assert_int_equal(s.targets[0].loops[0].delay.count, 0);
	ls_snapjson_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot_round_trip),
		cmocka_unit_test(test_sparse_histograms),
		cmocka_unit_test(test_episode_round_trip),
		cmocka_unit_test(test_episode_stacks_round_trip),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_minimal_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
