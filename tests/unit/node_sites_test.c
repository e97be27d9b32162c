/* node_sites_test.c: what the Node.js / libuv backend learns from an ELF alone
 * (userspace/backends/libuv_elf.c, libuv_sites.c): which instructions the kernel emulates,
 * the per-version uv_loop_t table, and, on the machine's /usr/bin/node and Debian's
 * libuv1, symbols, version, DWARF offsets and the uprobe sites chosen with Capstone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "libuv.h"
#include "node.h"
#include "nodeuv.h"

#define NODE "/usr/bin/node"
#define LIBUV1 "/usr/lib/x86_64-linux-gnu/libuv.so.1"

static void test_emulated(void **state)
{
	static const struct {
		uint8_t b[10];
		size_t len;
		int want;
		const char *what;
	} cases[] = {
		{ { 0xe8, 1, 2, 3, 4 }, 5, 1, "call rel32" },
		{ { 0xe9, 1, 2, 3, 4 }, 5, 1, "jmp rel32" },
		{ { 0xeb, 0x10 }, 2, 1, "jmp rel8" },
		{ { 0x74, 0x10 }, 2, 1, "je rel8" },
		{ { 0x0f, 0x84, 1, 2, 3, 4 }, 6, 1, "je rel32" },
		{ { 0x55 }, 1, 1, "push %rbp" },
		{ { 0x41, 0x54 }, 2, 1, "push %r12" },
		{ { 0x90 }, 1, 1, "nop" },
		{ { 0x66, 0x90 }, 2, 1, "xchg %ax,%ax" },
		{ { 0x0f, 0x1f, 0x44, 0, 0 }, 5, 0, "nopl 0(%rax,%rax) (5 bytes: may become a call)" },
		{ { 0x66, 0x66, 0x66, 0x66, 0x90 }, 5, 0, "data16 nop (5 bytes: may become a call)" },
		{ { 0x0f, 0x1f, 0x40, 0 }, 4, 1, "nopl 0(%rax) (4 bytes)" },
		{ { 0x0f, 0x1f, 0x80, 0, 0, 0, 0 }, 7, 1, "nopl 0(%rax)" },
		{ { 0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0 }, 9, 0, "nopw 0(%rax,%rax) (9 bytes)" },
		{ { 0x48, 0x89, 0xe5 }, 3, 0, "mov %rsp,%rbp" },
		{ { 0xc3 }, 1, 0, "ret" },
		{ { 0xf3, 0x0f, 0x1e, 0xfa }, 4, 0, "endbr64" },
		{ { 0xff, 0xd0 }, 2, 0, "call *%rax" },
		{ { 0x66, 0xe8, 1, 2 }, 4, 0, "callw (16-bit)" },
		{ { 0x49, 0x90 }, 2, 0, "xchg %rax,%r8" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = lu_insn_emulated(cases[i].b, cases[i].len);

		if (got != cases[i].want)
			fail_msg("%s: emulated %d, want %d", cases[i].what, got, cases[i].want);
	}
}

static void test_offsets_table(void **state)
{
	struct lu_offsets o;

	(void)state;
	for (uint32_t minor = 44; minor <= 49; minor++) {
		assert_int_equal(lu_offsets_table(0x010000 | minor << 8 | 2, &o), 0);
		assert_int_equal(o.heap_min, 520);
		assert_int_equal(o.time, 544);
		assert_int_equal(o.timer_timeout - o.timer_node, 24);
		/* libuv's loop metrics: 1.44 has no uv_metrics_t (loop_count) before them */
		assert_int_equal(o.have_metrics, 1);
		assert_int_equal(o.internal_fields, 40);
		assert_int_equal(o.mx_count, minor == 44 ? 0 : 8);
		assert_int_equal(o.mx_entry, minor == 44 ? 8 : 136);
		assert_int_equal(o.mx_idle, minor == 44 ? 16 : 144);
	}
	assert_int_equal(lu_offsets_table(0x012b00, &o), -ENOTSUP);	/* 1.43 */
	assert_int_equal(lu_offsets_table(0x013200, &o), -ENOTSUP);	/* 1.50 */
	assert_int_equal(lu_offsets_table(0x020000, &o), -ENOTSUP);
}

/* Decode the rel32 target of the 5-byte call at vaddr. */
static uint64_t call_target(const struct ls_elf *e, uint64_t vaddr)
{
	uint8_t b[5];
	int32_t rel;

	assert_int_equal(ls_elf_read(e, vaddr, b, sizeof(b)), 0);
	assert_int_equal(b[0], 0xe8);
	memcpy(&rel, b + 1, 4);
	return vaddr + 5 + (int64_t)rel;
}

static void test_node_binary(void **state)
{
	enum { RUN, VER, TIMERS, IDLE, PREPARE, POLL, CHECK, GC, GC_START, GC_STOP, NS };
	static const char *const names[NS] = {
		"uv_run", "uv_version", "uv__run_timers", "uv__run_idle", "uv__run_prepare", "uv__io_poll",
		"uv__run_check", "_ZN2v88internal4Heap14CollectGarbageENS0_15AllocationSpace*",
		"_ZN2v88internal8GCTracer20StartObservablePauseE*", "_ZN2v88internal8GCTracer19StopObservablePauseE*",
	};
	struct ls_elf_sym sym[NS];
	struct ls_elf_want want[NS];
	struct ls_elf *e = NULL;
	struct lu_offsets dw, tab;
	struct lu_site sites[32], entry;
	char missing[96];
	uint32_t ver;
	int n, seen[NU_NB] = { 0 };

	(void)state;
	if (access(NODE, R_OK))
		skip();
	assert_int_equal(ls_elf_open(NODE, &e), 0);
	for (int i = 0; i < NS; i++)
		want[i] = (struct ls_elf_want){ names[i], &sym[i] };
	assert_int_equal(ls_elf_lookup(e, want, NS), NS);
	assert_true(ls_elf_has_symtab(e));
	assert_int_equal(lu_version(e, &sym[VER], &ver), 0);
	assert_int_equal(ver >> 16, 1);
	assert_true(((ver >> 8) & 0xff) >= 44);

	/* DWARF, where present, agrees with the table */
	assert_int_equal(lu_offsets_dwarf(NODE, &dw), 0);
	assert_int_equal(lu_offsets_table(ver, &tab), 0);
	assert_int_equal(dw.heap_min, tab.heap_min);
	assert_int_equal(dw.heap_nelts, tab.heap_nelts);
	assert_int_equal(dw.time, tab.time);
	assert_int_equal(dw.backend_fd, tab.backend_fd);
	assert_int_equal(dw.loop_size, tab.loop_size);
	assert_int_equal(dw.timer_node, tab.timer_node);
	assert_int_equal(dw.timer_timeout, tab.timer_timeout);
	assert_int_equal(dw.timer_loop, tab.timer_loop);
	assert_int_equal(dw.have_metrics, 1);
	assert_int_equal(dw.internal_fields, tab.internal_fields);
	assert_int_equal(dw.mx_flags, tab.mx_flags);
	assert_int_equal(dw.mx_count, tab.mx_count);
	assert_int_equal(dw.mx_entry, tab.mx_entry);
	assert_int_equal(dw.mx_idle, tab.mx_idle);

	struct lu_uv_callees c = {
		.run_idle = sym[IDLE].addr, .run_prepare = sym[PREPARE].addr, .io_poll = sym[POLL].addr,
		.run_check = sym[CHECK].addr, .run_timers = sym[TIMERS].addr,
	};
	n = lu_uv_run_sites(e, &sym[RUN], &c, sites, 32, missing, sizeof(missing));
	assert_true(n >= NU_NB);
	assert_string_equal(missing, "");
	for (int i = 0; i < n; i++) {
		uint8_t b[16];
		uint64_t callee = 0;

		assert_true(sites[i].cookie < NU_NB);
		seen[sites[i].cookie]++;
		assert_true(sites[i].vaddr >= sym[RUN].addr && sites[i].vaddr < sym[RUN].addr + sym[RUN].size);
		assert_int_equal(ls_elf_read(e, sites[i].vaddr, b, sizeof(b)), 0);
		/* every site is an emulated instruction (~0.6 us, not ~11 us) */
		assert_true(sites[i].len > 0 && sites[i].len <= sizeof(b));
		if (!lu_insn_emulated(b, sites[i].len))
			fail_msg("site %s at %#llx is not emulated", sites[i].insn, (unsigned long long)sites[i].vaddr);
		switch (sites[i].cookie) {
		case NU_B_IDLE: callee = c.run_idle; break;
		case NU_B_PREPARE: callee = c.run_prepare; break;
		case NU_B_POLL_IN: callee = c.io_poll; break;
		case NU_B_CHECK_IN: callee = c.run_check; break;
		case NU_B_TIMERS_IN: callee = c.run_timers; break;
		}
		if (callee)	/* call-site boundaries really call the phase function */
			assert_true(call_target(e, sites[i].vaddr) == callee);
	}
	for (int b = 0; b < NU_NB; b++)
		if (!seen[b])
			fail_msg("no site for boundary %d", b);

	/* light tier: the entry of uv__run_timers, past any endbr64 */
	assert_int_equal(lu_entry_site(e, &sym[TIMERS], &entry), 0);
	assert_true(entry.vaddr >= sym[TIMERS].addr && entry.vaddr < sym[TIMERS].addr + 8);

	/* GC: returns are ret or a jump out of the function */
	n = lu_return_sites(e, &sym[GC], sites, 32);
	assert_true(n >= 1);
	for (int i = 0; i < n; i++)
		assert_true(!strncmp(sites[i].insn, "ret", 3) || !strncmp(sites[i].insn, "jmp", 3));

	/* GC, first choice: CollectGarbage's calls of the tracer's observable pause, each
	 * a real call of that function, at least one of each, as many starts as stops */
	int nstart = lu_direct_call_sites(e, &sym[GC], sym[GC_START].addr, 0, sites, 32);
	assert_true(nstart >= 1);
	for (int i = 0; i < nstart; i++) {
		assert_int_equal(sites[i].cookie, 0);
		assert_true(call_target(e, sites[i].vaddr) == sym[GC_START].addr);
	}
	assert_int_equal(lu_direct_call_sites(e, &sym[GC], sym[GC_STOP].addr, 1, sites, 32), nstart);
	for (int i = 0; i < nstart; i++)
		assert_true(call_target(e, sites[i].vaddr) == sym[GC_STOP].addr);
	assert_int_equal(lu_direct_call_sites(e, &sym[GC], sym[GC_STOP].addr, 1, sites, 1),
			 nstart > 1 ? -E2BIG : 1);
	assert_int_equal(lu_direct_call_sites(e, &sym[GC], sym[RUN].addr, 1, sites, 32), -ENOENT);
	ls_elf_close(e);
}

static void test_debian_libuv1(void **state)
{
	struct ls_elf_sym run, poll, ver;
	struct ls_elf_want want[] = { { "uv_run", &run }, { "uv__io_poll", &poll }, { "uv_version", &ver } };
	struct ls_elf *e = NULL;
	uint32_t v;

	(void)state;
	if (access(LIBUV1, R_OK))
		skip();
	assert_int_equal(ls_elf_open(LIBUV1, &e), 0);
	assert_false(ls_elf_has_symtab(e));	/* stripped */
	assert_int_equal(ls_elf_lookup(e, want, 3), 2);
	assert_true(run.addr && run.from_dynsym);
	assert_int_equal(poll.addr, 0);	/* internal: not exported */
	assert_int_equal(lu_version(e, &ver, &v), 0);
	assert_int_equal(v >> 8, 0x012c);	/* 1.44.x */
	assert_true(ls_elf_is_pie(e));
	ls_elf_close(e);
}

/* The whole plan for /usr/bin/node as the backend makes it at attach (no process
 * needed: node is not PIE, so no load bias is looked up). */
static void test_node_plan(void **state)
{
	struct ls_target_info ti = { .pid = 1, .runtime = LS_RT_NODE };
	char *text = NULL, err[256];
	size_t len = 0;
	FILE *f;

	(void)state;
	if (access(NODE, R_OK))
		skip();
	/* the poll plan fixed, not chosen by this machine's calibration (which would
	 * measure, with BPF, when nothing is cached) */
	setenv("LOOPSCOPE_EPOLL", "tracepoints", 1);
	snprintf(ti.exe, sizeof(ti.exe), NODE);
	snprintf(ti.exe_proc, sizeof(ti.exe_proc), NODE);
	snprintf(ti.lib, sizeof(ti.lib), NODE);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, "phases", f, err, sizeof(err)), 0);
	fclose(f);
	assert_non_null(strstr(text, "runtime node libuv 1."));
	assert_non_null(strstr(text, "tier phases"));
	assert_non_null(strstr(text, "offsets DWARF"));
	assert_non_null(strstr(text, "offsets uv_loop_t: timer_heap.min +"));
	assert_non_null(strstr(text, "boundary poll_in uv_run+"));
	assert_non_null(strstr(text, "boundary poll_out uv_run+"));
	assert_non_null(strstr(text, "gc_start +"));
	assert_non_null(strstr(text, "gc_stop +"));
	assert_null(strstr(text, "gc_return"));	/* no single-stepped ret */
	free(text);

	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, NULL, f, err, sizeof(err)), 0);	/* default tier */
	fclose(f);
	assert_non_null(strstr(text, "tier " LS_NODE_DEFAULT_TIER));
	/* timer lateness where a timer fires: one call of uv_timer_stop, not the entry */
	assert_non_null(strstr(text, "timer_fire uv__run_timers+"));
	assert_null(strstr(strstr(text, "timer_fire") + 1, "timer_fire"));
	assert_null(strstr(text, "timers uv__run_timers+"));
	assert_null(strstr(text, "boundary "));
	assert_non_null(strstr(text, "\npoll tracepoints"));
	free(text);

	/* LOOPSCOPE_EPOLL picks the poll plan where it is available: the epoll uprobes
	 * (two around uv__io_poll's call); the poll-entry plan needs a live loop keeping
	 * idle time (pid 1 is not node), so the tracepoints are used instead. */
	setenv("LOOPSCOPE_EPOLL", "uprobes", 1);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, NULL, f, err, sizeof(err)), 0);
	fclose(f);
	assert_non_null(strstr(text, "poll epoll-uprobes"));
	assert_non_null(strstr(text, "epoll enter uv__io_poll+"));
	assert_non_null(strstr(text, "epoll exit uv__io_poll+"));
	free(text);
	setenv("LOOPSCOPE_EPOLL", "entry", 1);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, NULL, f, err, sizeof(err)), 0);
	fclose(f);
	unsetenv("LOOPSCOPE_EPOLL");
	assert_non_null(strstr(text, "poll tracepoints"));
	assert_null(strstr(text, "poll_entry "));
	free(text);

	/* LOOPSCOPE_EPOLL_TRACEPOINTS=1: the tracepoints, and the note naming them */
	setenv("LOOPSCOPE_EPOLL_TRACEPOINTS", "1", 1);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, NULL, f, err, sizeof(err)), 0);
	fclose(f);
	unsetenv("LOOPSCOPE_EPOLL_TRACEPOINTS");
	assert_non_null(strstr(text, "poll tracepoints"));
	assert_non_null(strstr(text, "poll by tracepoints"));
	assert_null(strstr(text, "epoll enter"));
	free(text);

	/* counters: needs the live loop's idle-time counter */
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, "counters", f, err, sizeof(err)), -ENOTSUP);
	fclose(f);
	assert_non_null(strstr(err, "--probes counters needs libuv's idle-time counter"));
	free(text);

	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(ls_node_plan(&ti, "heavy", f, err, sizeof(err)), -EINVAL);
	fclose(f);
	assert_non_null(strstr(err, "--probes light, phases or counters"));
	free(text);
}

/* The drain functions starvation is classified by, however the compiler split them.
 * A drain loop takes hundreds of bytes of code:
 * the ranges together must hold that much, wherever the symbol itself is a thunk
 * (Node 18's RunMicrotasks is a 0x1d-byte jump to its .part.50). */
static void check_drain_ranges(const char *path)
{
	static const char *const names[] = {
		"_ZN2v88internal14MicrotaskQueue13RunMicrotasksEPNS0_7IsolateE",
		"_ZN4node21InternalCallbackScope5CloseEv",
	};
	struct ls_elf *e = NULL;

	assert_int_equal(ls_elf_open(path, &e), 0);
	for (size_t k = 0; k < 2; k++) {
		struct ls_elf_sym fn;
		struct ls_elf_want want = { names[k], &fn };
		struct lu_range r[NU_NRANGES];
		uint64_t total = 0;
		int n;

		assert_int_equal(ls_elf_lookup(e, &want, 1), 1);
		n = lu_code_ranges(e, names[k], &fn, r, NU_NRANGES);
		if (n < 1)
			fail_msg("%s: %s: no code ranges (%d)", path, names[k], n);
		assert_int_equal(r[0].lo, fn.addr);
		for (int i = 0; i < n; i++) {
			struct ls_elf_sym part;
			char pname[512];

			total += r[i].hi - r[i].lo;
			assert_int_equal(ls_elf_func_at(e, r[i].lo, &part, pname, sizeof(pname)), 0);
			if (strncmp(pname, names[k], strlen(names[k])))
				fail_msg("%s: range %d of %s is %s", path, i, names[k], pname);
		}
		if (total < 0x100)
			fail_msg("%s: %s: %d ranges of %#llx bytes in all: the drain is elsewhere", path, names[k], n,
				 (unsigned long long)total);
		if (fn.size < 0x40 && n < 2)
			fail_msg("%s: %s is a %#llx-byte thunk and nothing was followed", path, names[k],
				 (unsigned long long)fn.size);
	}
	ls_elf_close(e);
}

/* Where the Worker constructor keeps AllocateEnvironmentThreadId()'s result: a field
 * of node::worker::Worker, past its AsyncWrap base (+0xf8 in 18 and 20, +0x110 in 22,
 * +0x108 in 24 and 26). */
static void check_worker_thread_id(const char *path)
{
	struct ls_elf_sym ctor, alloc;
	struct ls_elf_want want[] = { { "_ZN4node6worker6WorkerC1E*", &ctor },
				  { "_ZN4node27AllocateEnvironmentThreadIdEv", &alloc } };
	struct ls_elf *e = NULL;
	uint32_t off = 0;

	assert_int_equal(ls_elf_open(path, &e), 0);
	assert_int_equal(ls_elf_lookup(e, want, 2), 2);
	assert_int_equal(lu_call_result_store(e, &ctor, alloc.addr, &off), 0);
	if (off < 0x40 || off > 0x400 || off % 8)
		fail_msg("%s: Worker::thread_id_ at %#x", path, off);
	assert_int_equal(lu_call_result_store(e, &ctor, ctor.addr, &off), -ENOENT);	/* no such call */
	ls_elf_close(e);
}

/* Both on every Node.js build of the test matrix that is installed
 * (tests/node/versions in $LS_NODE_CACHE) and on /usr/bin/node. */
static void test_matrix_binaries(void **state)
{
	const char *cache = getenv("LS_NODE_CACHE");
	char path[4096], line[64];
	FILE *f;
	int seen = 0;

	(void)state;
	if (!access(NODE, R_OK)) {
		check_drain_ranges(NODE);
		check_worker_thread_id(NODE);
		seen++;
	}
	f = fopen("tests/node/versions", "re");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (line[0] < '0' || line[0] > '9')
			continue;
		snprintf(path, sizeof(path), "%s/%s/bin/node", cache && *cache ? cache : "/var/cache/loopscope/node",
			 line);
		if (access(path, R_OK))
			continue;
		check_drain_ranges(path);
		check_worker_thread_id(path);
		seen++;
	}
	if (f)
		fclose(f);
	if (!seen)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_emulated),
		cmocka_unit_test(test_offsets_table),
		cmocka_unit_test(test_node_binary),
		cmocka_unit_test(test_debian_libuv1),
		cmocka_unit_test(test_node_plan),
		cmocka_unit_test(test_matrix_binaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
