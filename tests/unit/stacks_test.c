/* stacks_test.c: stack tables and aggregation (core/stacktab.c), their text
 * (core/stacktext.c), the maps parser (lib/proc.c) and C++ demangling
 * (backends/nativesym.c). No BPF, no process: frames are built by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/sysmacros.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "nativesym.h"
#include "proc.h"
#include "stacktab.h"

static struct ls_frame js(struct ls_stacktab *t, const char *fn, const char *file, uint32_t line)
{
	return (struct ls_frame){ .kind = LS_FRAME_JS, .function = ls_stacktab_str(t, fn),
				  .file = ls_stacktab_str(t, file), .line = line };
}

static struct ls_frame native(struct ls_stacktab *t, const char *fn)
{
	return (struct ls_frame){ .kind = LS_FRAME_NATIVE, .function = ls_stacktab_str(t, fn),
				  .module = ls_stacktab_str(t, "/usr/bin/node") };
}

static void test_intern(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	char buf[16] = "settle";

	(void)state;
	assert_non_null(t);
	const char *a = ls_stacktab_str(t, buf);
	strcpy(buf, "other");
	assert_string_equal(a, "settle");	/* a copy, not the caller's buffer */
	assert_ptr_equal(ls_stacktab_str(t, "settle"), a);
	assert_ptr_not_equal(ls_stacktab_str(t, "other"), a);
	assert_null(ls_stacktab_str(t, NULL));
	ls_stacktab_free(t);
}

/* Identical stacks merge, the most frequent comes first, max cuts the list but
 * not the total, and the set outlives the aggregator. */
static void test_aggregate(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame s1[3], s2[2], s3[1];
	const struct ls_stack_set *set;

	(void)state;
	s1[0] = native(t, "node::crypto::PBKDF2Traits::DeriveBits");
	s1[1] = js(t, "pbkdf2Sync", "node:internal/crypto/pbkdf2", 68);
	s1[2] = js(t, "settle", "/srv/app/billing.js", 31);
	s2[0] = js(t, "validateCoupon", "/srv/app/coupons.js", 14);
	s2[1] = js(t, "(anonymous)", "/srv/app/routes.js", 12);
	s3[0] = native(t, "[vdso]");
	for (int i = 0; i < 7; i++)
		assert_int_equal(ls_stack_agg_add(a, s2, 2, 1), 0);
	assert_int_equal(ls_stack_agg_add(a, s1, 3, 2), 0);
	assert_int_equal(ls_stack_agg_add(a, s1, 3, 1), 0);
	assert_int_equal(ls_stack_agg_add(a, s3, 1, 1), 0);
	/* a stack that differs only in a line is another stack, in a column the same */
	s2[0].line = 15;
	assert_int_equal(ls_stack_agg_add(a, s2, 2, 1), 0);
	s2[0].line = 14;
	s2[0].column = 9;
	assert_int_equal(ls_stack_agg_add(a, s2, 2, 1), 0);
	assert_int_equal(ls_stack_agg_total(a), 13);
	set = ls_stack_agg_finish(a, t, 2);
	ls_stack_agg_free(a);
	assert_non_null(set);
	assert_int_equal(set->total, 13);
	assert_int_equal(set->nstacks, 2);
	assert_int_equal(set->stacks[0].count, 8);
	assert_int_equal(set->stacks[0].frames[0].column, 0);	/* the first sample's */
	assert_int_equal(set->stacks[0].nframes, 2);
	assert_string_equal(set->stacks[0].frames[0].function, "validateCoupon");
	assert_int_equal(set->stacks[0].frames[0].line, 14);
	assert_int_equal(set->stacks[1].count, 3);
	assert_string_equal(ls_stack_top_js(&set->stacks[1])->function, "pbkdf2Sync");
	assert_null(ls_stack_top_js(&(struct ls_stack_sample){ .frames = s3, .nframes = 1 }));
	ls_stacktab_free(t);
}

/* group(): the frame named "cb", else none */
static int32_t cut_at_cb(const struct ls_frame *f, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(f[i].function, "cb") || !strcmp(f[i].function, "other"))
			return (int32_t)i;
	return -1;
}

/* Grouped: the stacks cut at the same frame with the same callers count as one,
 * shown from the root down to the cut, and further leafward only while 9/10 of the
 * group's samples go the same way; lines at the cut do not split a group; other
 * groups stay apart, and stacks with no cut stay whole, after the groups. */
static void test_grouped(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame drain = js(t, "processTicksAndRejections", "node:internal/process/task_queues", 95);
	struct ls_frame cb = js(t, "cb", "/srv/app/tick.js", 3), cb4 = js(t, "cb", "/srv/app/tick.js", 4);
	struct ls_frame s1[] = { native(t, "[vdso]"), cb, drain };
	struct ls_frame s2[] = { js(t, "nextTick", "node:internal/process/task_queues", 125), cb4, drain };
	struct ls_frame s3[] = { cb, drain };
	struct ls_frame s4[] = { native(t, "v8::internal::Heap::Scavenge"), drain };	/* no cut */
	struct ls_frame s5[] = { js(t, "other", "/srv/app/tick.js", 9), drain };
	/* one callback whose samples nearly all run the same native code */
	struct ls_frame j1[] = { native(t, "JsonStringifier::Serialize"), native(t, "JsonStringify"),
				 js(t, "cb", "/srv/app/report.js", 11) };
	struct ls_frame j2[] = { native(t, "JsonStringifier::Result"), native(t, "JsonStringify"),
				 js(t, "cb", "/srv/app/report.js", 11) };
	struct ls_frame j3[] = { js(t, "cb", "/srv/app/report.js", 12) };
	/* a generator resumed by a builtin, its loop over two lines */
	struct ls_frame g1[] = { js(t, "batches", "/srv/app/shapes.js", 16), js(t, "next", NULL, 0),
				 js(t, "cb", "/srv/app/server.js", 9) };
	struct ls_frame g2[] = { native(t, "[vdso]"), js(t, "batches", "/srv/app/shapes.js", 15),
				 js(t, "next", NULL, 0), js(t, "cb", "/srv/app/server.js", 9) };
	const struct ls_stack_set *set;

	(void)state;
	assert_int_equal(ls_stack_agg_add(a, s1, 3, 4), 0);
	assert_int_equal(ls_stack_agg_add(a, s2, 3, 5), 0);
	assert_int_equal(ls_stack_agg_add(a, s3, 2, 3), 0);
	assert_int_equal(ls_stack_agg_add(a, s4, 2, 16), 0);	/* more, but after the groups */
	assert_int_equal(ls_stack_agg_add(a, s5, 2, 1), 0);
	set = ls_stack_agg_finish_grouped(a, t, 5, cut_at_cb);
	ls_stack_agg_free(a);
	assert_non_null(set);
	assert_int_equal(set->total, 29);
	assert_int_equal(set->nstacks, 3);
	/* 12 samples under cb, shown from cb (the most frequent member's line) */
	assert_int_equal(set->stacks[0].count, 12);
	assert_int_equal(set->stacks[0].nframes, 2);
	assert_string_equal(set->stacks[0].frames[0].function, "cb");
	assert_int_equal(set->stacks[0].frames[0].line, 4);
	assert_string_equal(set->stacks[0].frames[1].function, "processTicksAndRejections");
	assert_int_equal(set->stacks[1].count, 1);
	assert_string_equal(set->stacks[1].frames[0].function, "other");
	assert_int_equal(set->stacks[2].count, 16);
	assert_int_equal(set->stacks[2].nframes, 2);
	assert_string_equal(set->stacks[2].frames[0].function, "v8::internal::Heap::Scavenge");

	/* 19 of 20 in JsonStringify: the stack goes on to it, then splits */
	a = ls_stack_agg_new();
	assert_int_equal(ls_stack_agg_add(a, j1, 3, 10), 0);
	assert_int_equal(ls_stack_agg_add(a, j2, 3, 9), 0);
	assert_int_equal(ls_stack_agg_add(a, j3, 1, 1), 0);
	set = ls_stack_agg_finish_grouped(a, t, 5, cut_at_cb);
	ls_stack_agg_free(a);
	assert_int_equal(set->nstacks, 1);
	assert_int_equal(set->stacks[0].count, 19);
	assert_int_equal(set->stacks[0].nframes, 2);
	assert_string_equal(set->stacks[0].frames[0].function, "JsonStringify");
	assert_int_equal(set->stacks[0].frames[1].line, 11);

	/* on through the builtin to the generator, at its most frequent stack's line */
	a = ls_stack_agg_new();
	assert_int_equal(ls_stack_agg_add(a, g1, 3, 6), 0);
	assert_int_equal(ls_stack_agg_add(a, g2, 4, 5), 0);
	set = ls_stack_agg_finish_grouped(a, t, 5, cut_at_cb);
	ls_stack_agg_free(a);
	assert_int_equal(set->nstacks, 1);
	assert_int_equal(set->stacks[0].count, 11);
	assert_int_equal(set->stacks[0].nframes, 3);
	assert_string_equal(set->stacks[0].frames[0].function, "batches");
	assert_int_equal(set->stacks[0].frames[0].line, 16);
	ls_stacktab_free(t);
}

/* Stacks as frequent as each other: the one whose top JS function ran most comes
 * first (a deep recursion's samples are each a stack of their own). */
static void test_recursion_first(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame fib = js(t, "fib", "/srv/app/misc.js", 29), h = js(t, "handle", "/srv/app/app.js", 3);
	struct ls_frame d2[] = { fib, fib, h }, d3[] = { fib, fib, fib, h }, d4[] = { fib, fib, fib, fib, h };
	struct ls_frame other[] = { js(t, "destroy", "node:internal/streams/destroy", 49), h };
	const struct ls_stack_set *set;

	(void)state;
	assert_int_equal(ls_stack_agg_add(a, other, 2, 1), 0);
	assert_int_equal(ls_stack_agg_add(a, d2, 3, 1), 0);
	assert_int_equal(ls_stack_agg_add(a, d3, 4, 1), 0);
	assert_int_equal(ls_stack_agg_add(a, d4, 5, 1), 0);
	set = ls_stack_agg_finish(a, t, 5);
	ls_stack_agg_free(a);
	assert_int_equal(set->nstacks, 4);
	assert_string_equal(set->stacks[0].frames[0].function, "fib");
	assert_int_equal(set->stacks[0].nframes, 3);	/* then the shorter first */
	assert_string_equal(set->stacks[3].frames[0].function, "destroy");
	ls_stacktab_free(t);
}

static void test_empty_agg(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();

	(void)state;
	assert_null(ls_stack_agg_finish(a, t, 5));
	ls_stack_agg_free(a);
	ls_stacktab_free(t);
}

/* The text stat prints: share on the first line, JS names aligned, long native
 * runs between JS frames counted, not listed. */
static void test_text(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame f[9];
	char lines[20][LS_STACK_LINE];
	const struct ls_stack_set *set;
	size_t n;

	(void)state;
	f[0] = native(t, "sha512_block_data_order_avx2");
	f[1] = native(t, "SHA512_Update");
	f[2] = native(t, "HMAC_Update");
	f[3] = native(t, "PKCS5_PBKDF2_HMAC");
	f[4] = native(t, "node::crypto::PBKDF2Traits::DeriveBits");
	f[5] = native(t, "Builtins_CEntry");
	f[6] = js(t, "pbkdf2Sync", "node:internal/crypto/pbkdf2", 68);
	f[7] = js(t, "settle", "/srv/app/billing.js", 31);
	f[8] = (struct ls_frame){ .kind = LS_FRAME_KERNEL, .function = ls_stacktab_str(t, "schedule"),
				  .module = ls_stacktab_str(t, "[kernel]") };
	assert_int_equal(ls_stack_agg_add(a, f, 8, 88), 0);
	assert_int_equal(ls_stack_agg_add(a, f + 8, 1, 12), 0);
	set = ls_stack_agg_finish(a, t, 5);
	ls_stack_agg_free(a);
	n = ls_stack_text(set, 5, 20, lines, 20);
	assert_int_equal(n, 7);
	assert_string_equal(lines[0], "  88%  [native] sha512_block_data_order_avx2  (node)");
	assert_string_equal(lines[1], "       [native] SHA512_Update  (node)");
	assert_string_equal(lines[2], "       ... 3 native frames");
	assert_string_equal(lines[3], "       [native] Builtins_CEntry  (node)");
	assert_string_equal(lines[4], "       pbkdf2Sync  node:internal/crypto/pbkdf2:68");
	assert_string_equal(lines[5], "       settle      /srv/app/billing.js:31");
	assert_string_equal(lines[6], "  12%  [kernel] schedule  ([kernel])");
	/* bounded by max_lines, and by stacks */
	assert_int_equal(ls_stack_text(set, 1, 20, lines, 3), 3);
	assert_int_equal(ls_stack_text(set, 5, 20, lines, 0), 0);
	assert_int_equal(ls_stack_text(NULL, 5, 20, lines, 20), 0);
	ls_stacktab_free(t);
}

/* Span slots: found by (tid, start), made in a free slot, the oldest span's slot
 * reused (and zeroed whole) when all are taken, dropped and freed. */
struct test_slot {
	struct ls_stack_span sp;
	int extra;
};

static void test_span_slots(void **state)
{
	struct test_slot slots[2];
	struct ls_stack_span *a, *b, *c;

	(void)state;
	memset(slots, 0, sizeof(slots));
	assert_null(ls_stack_span_get(slots, 2, sizeof(slots[0]), 1, 100, 0));
	a = ls_stack_span_get(slots, 2, sizeof(slots[0]), 1, 100, 1);
	assert_ptr_equal(a, &slots[0].sp);
	slots[0].extra = 7;
	b = ls_stack_span_get(slots, 2, sizeof(slots[0]), 2, 50, 1);
	assert_ptr_equal(b, &slots[1].sp);
	assert_ptr_equal(ls_stack_span_get(slots, 2, sizeof(slots[0]), 1, 100, 0), a);
	/* full: the oldest span (start 50) gives its slot */
	c = ls_stack_span_get(slots, 2, sizeof(slots[0]), 1, 200, 1);
	assert_ptr_equal(c, &slots[1].sp);
	assert_int_equal(c->start, 200);
	assert_null(ls_stack_span_get(slots, 2, sizeof(slots[0]), 2, 50, 0));
	ls_stack_span_drop(a, sizeof(slots[0]));
	assert_null(slots[0].sp.agg);
	assert_int_equal(slots[0].extra, 0);
	ls_stack_span_drop(c, sizeof(slots[1]));
}

/* A stack with no JS frame (a C loop's) shows its first user frames, past the libc
 * and vDSO leaves, before the rest is counted. */
static void test_text_native_only(void **state)
{
	struct ls_stacktab *t = ls_stacktab_new();
	struct ls_stack_agg *a = ls_stack_agg_new();
	struct ls_frame f[7];
	char lines[20][LS_STACK_LINE];
	const struct ls_stack_set *set;

	(void)state;
	f[0] = (struct ls_frame){ .kind = LS_FRAME_KERNEL, .function = ls_stacktab_str(t, "hrtimer_interrupt"),
				  .module = ls_stacktab_str(t, "[kernel]") };
	f[1] = native(t, "__vdso_clock_gettime");
	f[2] = native(t, "__clock_gettime");
	f[3] = native(t, "block_cb");
	f[4] = native(t, "lsl__run_timers");
	f[5] = native(t, "lsl_run");
	f[6] = native(t, "main");
	assert_int_equal(ls_stack_agg_add(a, f, 7, 10), 0);
	set = ls_stack_agg_finish(a, t, 5);
	ls_stack_agg_free(a);
	assert_int_equal(ls_stack_text(set, 5, 20, lines, 20), 6);
	assert_string_equal(lines[0], " 100%  [kernel] hrtimer_interrupt  ([kernel])");
	assert_string_equal(lines[1], "       [native] __vdso_clock_gettime  (node)");
	assert_string_equal(lines[3], "       [native] block_cb  (node)");
	assert_string_equal(lines[4], "       [native] lsl__run_timers  (node)");
	assert_string_equal(lines[5], "       ... 2 native frames");
	ls_stacktab_free(t);
}

static void test_maps_parse(void **state)
{
	static const char text[] =
		"00400000-05200000 r-xp 00000000 fe:01 1234                               /usr/bin/node\n"
		"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
		"7ffd1000-7ffd3000 r-xp 00000000 00:00 0                                  [vdso]\n"
		"garbage line\n"
		"7f10-7f00 r-xp 00000000 00:00 0 /backwards\n"
		"7f2000000000-7f2000010000 r-xp 00002000 08:02 99 /lib/with space/libc.so.6";
	struct ls_maps m;
	const struct ls_proc_map *x;

	(void)state;
	assert_int_equal(ls_maps_parse(text, sizeof(text) - 1, &m), 0);
	assert_int_equal(m.n, 4);
	assert_string_equal(m.map[0].path, "/usr/bin/node");
	assert_int_equal(m.map[0].ino, 1234);
	assert_int_equal(major(m.map[0].dev), 0xfe);
	assert_string_equal(m.map[0].perms, "r-xp");
	assert_string_equal(m.map[1].path, "");
	assert_string_equal(m.map[3].path, "/lib/with space/libc.so.6");
	assert_int_equal(m.map[3].offset, 0x2000);
	x = ls_maps_find(&m, 0x400000);
	assert_ptr_equal(x, &m.map[0]);
	assert_null(ls_maps_find(&m, 0x5200000));	/* end is exclusive */
	assert_ptr_equal(ls_maps_find(&m, 0x7ffd2fff), &m.map[2]);
	assert_null(ls_maps_find(&m, 1));
	ls_maps_free(&m);
	ls_maps_free(&m);
	assert_int_equal(ls_maps_parse("", 0, &m), 0);
	assert_int_equal(m.n, 0);
	ls_maps_free(&m);
}

/* Our own maps and memory: the parser against the kernel's text, and a read. */
static void test_self(void **state)
{
	struct ls_maps m;
	static const char here[] = "readable";
	char buf[sizeof(here)];

	(void)state;
	assert_int_equal(ls_maps_read(getpid(), &m), 0);
	assert_non_null(ls_maps_find(&m, (uint64_t)(uintptr_t)here));
	ls_maps_free(&m);
	assert_int_equal(ls_proc_read_mem(getpid(), (uint64_t)(uintptr_t)here, buf, sizeof(buf)), 0);
	assert_string_equal(buf, here);
	assert_int_not_equal(ls_proc_read_mem(getpid(), 8, buf, 4), 0);	/* unmapped */
	assert_int_not_equal(ls_maps_read(0x3fffffff, &m), 0);
}

static void test_demangle(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "_ZN4node6crypto12PBKDF2Traits10DeriveBitsEPNS_11EnvironmentERKNS0_12PBKDF2ConfigEPNS0_10ByteSourceE",
		  "node::crypto::PBKDF2Traits::DeriveBits" },
		{ "_ZN2v88internal14MicrotaskQueue13RunMicrotasksEPNS0_7IsolateE", "v8::internal::MicrotaskQueue::RunMicrotasks" },
		{ "_ZN12_GLOBAL__N_13fooEv", "(anonymous namespace)::foo" },
		{ "sha512_block_data_order_avx2", "sha512_block_data_order_avx2" },
		{ "_Znot a real name", "_Znot a real name" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *d = ls_demangle(cases[i].in);

		assert_non_null(d);
		assert_string_equal(d, cases[i].out);
		free(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intern), cmocka_unit_test(test_aggregate), cmocka_unit_test(test_grouped),
		cmocka_unit_test(test_recursion_first),
		cmocka_unit_test(test_empty_agg),
		cmocka_unit_test(test_text),   cmocka_unit_test(test_maps_parse), cmocka_unit_test(test_self),
		cmocka_unit_test(test_demangle), cmocka_unit_test(test_text_native_only), cmocka_unit_test(test_span_slots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
