/* lib_test.c: the shared low-level modules (userspace/lib/): options, /proc, ELF and
 * link teardown, checked against this very process. */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "elf.h"
#include "links.h"
#include "options.h"
#include "proc.h"

/* A symbol of this executable the tests look for; noinline so it has a body. */
int lib_test_marker(int x);
__attribute__((noinline, used)) int lib_test_marker(int x)
{
	return x * 3 + 1;
}

static void test_options(void **state)
{
	double d = -1;
	long l = -1;
	pid_t p = -1;
	pid_t pids[2];
	int n = 0;

	(void)state;
	assert_int_equal(ls_opt_number("0.5", 0.1, 1, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(ls_opt_number("2", 0.1, 1, &d), -EINVAL);
	assert_int_equal(ls_opt_number("nan", 0, 1, &d), -EINVAL);
	assert_int_equal(ls_opt_number("inf", 0, 1e300, &d), -EINVAL);
	assert_int_equal(ls_opt_number("1x", 0, 10, &d), -EINVAL);
	assert_int_equal(ls_opt_number("", 0, 10, &d), -EINVAL);
	assert_int_equal(ls_opt_integer("50", 50, 60000, &l), 0);
	assert_int_equal(l, 50);
	assert_int_equal(ls_opt_integer("49", 50, 60000, &l), -EINVAL);
	assert_int_equal(ls_opt_integer("1.5", 0, 10, &l), -EINVAL);
	assert_int_equal(ls_opt_integer("99999999999999999999", 0, 10, &l), -EINVAL);
	assert_int_equal(ls_parse_pid("42", &p), 0);
	assert_int_equal(p, 42);
	assert_int_equal(ls_parse_pid("0", &p), -EINVAL);
	assert_int_equal(ls_parse_pid("-3", &p), -EINVAL);
	assert_int_equal(ls_parse_pid("abc", &p), -EINVAL);
	/* -p: a repeat is kept once, a third distinct PID is one too many */
	assert_int_equal(ls_opt_pid("test", "7", pids, &n, 2, NULL), 0);
	assert_int_equal(ls_opt_pid("test", "7", pids, &n, 2, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ls_opt_pid("test", "8", pids, &n, 2, NULL), 0);
	assert_int_equal(ls_opt_pid("test", "7", pids, &n, 2, NULL), 0);
	assert_int_equal(ls_opt_pid("test", "9", pids, &n, 2, "; hint"), 2);
	assert_int_equal(ls_opt_pid("test", "x", pids, &n, 2, NULL), 2);
	assert_int_equal(n, 2);
	assert_int_equal(pids[0], 7);
	assert_int_equal(pids[1], 8);
}

static FILE *usage_to;
static void record_usage(FILE *f)
{
	usage_to = f;
}

/* The ends of a getopt loop: -h is usage on stdout and exit 0, a refused option usage
 * on stderr and 2; an operand left over is 2. */
static void test_option_loop_ends(void **state)
{
	char *argv[] = { "cmd", "-v", "extra", NULL };
	int saved = optind;

	(void)state;
	assert_int_equal(ls_opt_usage('h', record_usage), 0);
	assert_ptr_equal(usage_to, stdout);
	assert_int_equal(ls_opt_usage('?', record_usage), 2);
	assert_ptr_equal(usage_to, stderr);
	optind = 2;
	assert_int_equal(ls_opt_no_operands("test", 3, argv, 1), 2);
	optind = 3;
	assert_int_equal(ls_opt_no_operands("test", 3, argv, 0), 0);
	optind = saved;
}

/* The mapping that holds code address a, from ls_proc_maps_list. */
static const struct ls_proc_map *map_of(const struct ls_proc_map *m, size_t n, uint64_t a)
{
	for (size_t i = 0; i < n; i++)
		if (a >= m[i].start && a < m[i].end)
			return &m[i];
	return NULL;
}

static void test_proc_maps(void **state)
{
	uint64_t fn = (uint64_t)(uintptr_t)&lib_test_marker, addr = 0;
	struct ls_proc_map *maps = NULL;
	const struct ls_proc_map *m;
	char exe[PATH_MAX];
	struct stat st;
	size_t n = 0;
	ssize_t len;

	(void)state;
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(len > 0);
	exe[len] = '\0';
	assert_int_equal(ls_proc_maps_list(getpid(), &maps, &n), 0);
	assert_true(n > 2);
	for (size_t i = 1; i < n; i++)
		assert_true(maps[i].start >= maps[i - 1].end);
	m = map_of(maps, n, fn);
	assert_non_null(m);
	assert_string_equal(m->path, exe);
	assert_int_equal(m->perms[2], 'x');
	assert_int_equal(stat(exe, &st), 0);
	assert_true(m->ino == st.st_ino);
	assert_true(m->dev == st.st_dev);

	/* the same address found back from its file offset, by path and by inode */
	assert_int_equal(ls_proc_file_addr(getpid(), &(struct ls_proc_file){ .path = exe },
					   m->offset + (fn - m->start), &addr), 0);
	assert_true(addr == fn);
	addr = 0;
	assert_int_equal(ls_proc_file_addr(getpid(), &(struct ls_proc_file){ .dev = st.st_dev, .ino = st.st_ino },
					   m->offset + (fn - m->start), &addr), 0);
	assert_true(addr == fn);
	assert_int_equal(ls_proc_file_addr(getpid(), &(struct ls_proc_file){ .path = "/no/such/file" }, 0, &addr),
			 -ENOENT);
	ls_proc_maps_free(maps, n);
	assert_true(ls_proc_maps(0x3fffffff, NULL, NULL) < 0);
}

static void test_proc_small(void **state)
{
	char name[16] = "untouched";

	(void)state;
	assert_int_equal(ls_proc_thread_comm(getpid(), (uint32_t)getpid(), name, sizeof(name)), 0);
	assert_string_equal(name, "lib_test");
	strcpy(name, "untouched");
	assert_true(ls_proc_thread_comm(getpid(), 0x3ffffffe, name, sizeof(name)) < 0);
	assert_string_equal(name, "untouched");
	assert_int_equal(ls_proc_tgid(getpid()), getpid());
	assert_int_equal(ls_proc_tgid(0x3ffffffe), -1);
	assert_true(ls_proc_self_rss() > 0);
}

/* /proc/PID/stat past the command name: this thread runs (R), is not stopped. */
static void test_proc_stat(void **state)
{
	char buf[512];
	const char *f = NULL;

	(void)state;
	assert_int_equal(ls_proc_stat(getpid(), 0, buf, sizeof(buf), &f), 0);
	assert_int_equal(f[0], 'R');
	assert_int_equal(atoi(f + 2), (int)getppid());	/* field 4 */
	assert_int_equal(ls_proc_stat(getpid(), (uint32_t)getpid(), buf, sizeof(buf), &f), 0);
	assert_int_equal(f[0], 'R');
	assert_int_equal(ls_proc_stat(0x3ffffffe, 0, buf, sizeof(buf), &f), -ESRCH);
	assert_int_equal(ls_proc_thread_stopped(getpid(), (uint32_t)getpid()), 0);
	assert_int_equal(ls_proc_thread_stopped(getpid(), 0x3ffffffe), 0);
	/* a child stopped by SIGSTOP is */
	pid_t child = fork();

	if (!child) {
		pause();
		_exit(0);
	}
	assert_true(child > 0);
	kill(child, SIGSTOP);
	for (int i = 0; i < 200 && !ls_proc_thread_stopped(child, (uint32_t)child); i++)
		usleep(10000);
	assert_int_equal(ls_proc_thread_stopped(child, (uint32_t)child), 1);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

struct count {
	uint64_t marker;
	size_t symtab, dynsym;
};

static int count_sym(const struct ls_elf_symbol *s, void *ctx)
{
	struct count *c = ctx;

	if (s->from_dynsym)
		c->dynsym++;
	else
		c->symtab++;
	if (!strcmp(s->name, "lib_test_marker"))
		c->marker = s->addr;
	return 0;
}

static int stop_at_third(const struct ls_elf_symbol *s, void *ctx)
{
	(void)s;
	return ++*(int *)ctx == 3 ? 42 : 0;
}

/* The walk every lookup used to be: the first function, object or untyped symbol in
 * .symtab then .dynsym order named so (or, for "prefix*", starting so). */
struct walk_ref {
	const char *name;
	struct ls_elf_sym out;
	int found;
};

static int walk_ref_one(const struct ls_elf_symbol *s, void *ctx)
{
	struct walk_ref *w = ctx;
	size_t n = strlen(w->name);
	int hit;

	if (s->type != STT_FUNC && s->type != STT_OBJECT && s->type != STT_NOTYPE)
		return 0;
	hit = n && w->name[n - 1] == '*' ? !strncmp(w->name, s->name, n - 1) : !strcmp(w->name, s->name);
	if (!hit)
		return 0;
	w->out = (struct ls_elf_sym){ .addr = s->addr, .size = s->size, .from_dynsym = s->from_dynsym };
	w->found = 1;
	return 1;
}

struct func_ref {
	uint64_t addr;
	struct ls_elf_sym out;
	char name[256];
};

static int func_ref_one(const struct ls_elf_symbol *s, void *ctx)
{
	struct func_ref *f = ctx;

	if (s->type != STT_FUNC || f->addr < s->addr || f->addr >= s->addr + s->size)
		return 0;
	f->out = (struct ls_elf_sym){ .addr = s->addr, .size = s->size, .from_dynsym = s->from_dynsym };
	snprintf(f->name, sizeof(f->name), "%s", s->name);
	return 1;
}

struct sample {
	char names[64][256];
	uint64_t addrs[64];
	size_t n, seen, stride;
};

static int sample_one(const struct ls_elf_symbol *s, void *ctx)
{
	struct sample *sm = ctx;

	if (!sm->stride) {
		sm->seen++;
		return 0;
	}
	if (sm->seen++ % sm->stride || sm->n == 64)
		return 0;
	snprintf(sm->names[sm->n], sizeof(sm->names[0]), "%s", s->name);
	sm->addrs[sm->n++] = s->addr + s->size / 2;
	return 0;
}

/* ls_elf_lookup and ls_elf_func_at (a hashed index) agree with a plain walk of the
 * tables on 64 symbols spread over a binary: exact names, prefixes of them of every
 * length, and addresses inside them. */
static void check_index_against_walk(const char *path)
{
	struct ls_elf *e = NULL;
	struct sample *sm = calloc(1, sizeof(*sm));

	assert_non_null(sm);
	if (ls_elf_open(path, &e)) {
		free(sm);
		return;
	}
	ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, sample_one, sm);	/* count them */
	sm->stride = sm->seen / 64 + 1;
	sm->n = sm->seen = 0;
	ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, sample_one, sm);
	assert_true(sm->n > 10);
	for (size_t i = 0; i < 3; i++) {	/* names no binary has */
		static const char *const none[] = { "no_such_symbol_xyz", "no_such*",
						    "no_such_prefix_long_enough_to_be_hashed*" };
		struct ls_elf_sym got;
		struct ls_elf_want want = { .name = none[i], .out = &got };

		assert_int_equal(ls_elf_lookup(e, &want, 1), 0);
		assert_int_equal(got.addr, 0);
	}
	for (size_t i = 0; i < sm->n; i++) {
		size_t len = strlen(sm->names[i]);

		for (size_t cut = 1; cut <= len + 1; cut += cut < 30 ? 1 : 7) {
			char name[260];
			struct walk_ref w = { .name = name };
			struct ls_elf_sym got;
			struct ls_elf_want want = { .name = name, .out = &got };

			if (cut <= len)
				snprintf(name, sizeof(name), "%.*s*", (int)cut, sm->names[i]);
			else
				snprintf(name, sizeof(name), "%s", sm->names[i]);
			ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, walk_ref_one, &w);
			assert_int_equal(ls_elf_lookup(e, &want, 1), w.found);
			assert_int_equal(got.addr, w.out.addr);
			assert_int_equal(got.size, w.out.size);
			assert_int_equal(got.from_dynsym, w.out.from_dynsym);
		}
		{
			struct func_ref f = { .addr = sm->addrs[i] };
			struct ls_elf_sym got;
			char name[256];
			int rc = ls_elf_func_at(e, sm->addrs[i], &got, name, sizeof(name));
			int want_rc = ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, func_ref_one, &f) == 1 ? 0 : -ENOENT;

			assert_int_equal(rc, want_rc);
			if (!rc) {
				assert_int_equal(got.addr, f.out.addr);
				assert_int_equal(got.size, f.out.size);
				assert_string_equal(name, f.name);
			}
		}
	}
	ls_elf_close(e);
	free(sm);
}

static void test_elf_index(void **state)
{
	(void)state;
	check_index_against_walk("/proc/self/exe");
	check_index_against_walk("/usr/bin/node");	/* ~200k symbols, where it is */
	check_index_against_walk("/lib/x86_64-linux-gnu/libc.so.6");	/* .dynsym only */
}

static void test_elf(void **state)
{
	struct ls_elf_sym marker, main_sym, missing;
	const struct ls_elf_want want[] = {
		{ "lib_test_marker", &marker },
		{ "mai*", &main_sym },
		{ "no_such_symbol_here", &missing },
	};
	struct ls_elf *e = NULL;
	struct count c = { 0 };
	uint64_t off = 0, vaddr = 0;
	unsigned char bytes[8];
	int calls = 0;

	(void)state;
	assert_int_equal(ls_elf_open("/no/such/file", &e), -ENOENT);
	assert_null(e);
	assert_int_equal(ls_elf_open("/proc/self/status", &e), -ENOEXEC);
	assert_int_equal(ls_elf_open("/proc/self/exe", &e), 0);
	assert_true(ls_elf_has_symtab(e));
	assert_int_equal(ls_elf_lookup(e, want, 3), 2);
	assert_true(marker.addr != 0);
	assert_false(marker.from_dynsym);
	assert_true(main_sym.addr != 0);
	assert_true(missing.addr == 0);

	assert_int_equal(ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, count_sym, &c), 0);
	assert_true(c.symtab > 10);
	assert_true(c.marker == marker.addr);
	assert_int_equal(ls_elf_symbols(e, LS_ELF_SYMTAB, stop_at_third, &calls), 42);
	assert_int_equal(calls, 3);

	/* vaddr -> file offset -> vaddr, and the bytes there are the function's */
	assert_int_equal(ls_elf_file_offset(e, marker.addr, &off), 0);
	assert_int_equal(ls_elf_vaddr(e, off, &vaddr), 0);
	assert_true(vaddr == marker.addr);
	assert_int_equal(ls_elf_read(e, marker.addr, bytes, sizeof(bytes)), 0);
	if (ls_elf_is_pie(e)) {
		uint64_t bias = (uint64_t)(uintptr_t)&lib_test_marker - marker.addr;

		assert_memory_equal(bytes, (const void *)(uintptr_t)(marker.addr + bias), sizeof(bytes));
	}
	assert_int_equal(ls_elf_file_offset(e, UINT64_MAX - 16, &off), -ENOENT);
	assert_int_equal(ls_elf_vaddr(e, UINT64_MAX - 16, &vaddr), -ENOENT);
	assert_int_equal(ls_elf_has_usdt_provider(e, "loopscope"), 0);
	ls_elf_close(e);
}

static void test_links_destroy(void **state)
{
	int fds[4] = { -1, -1, -1, -1 };
	struct bpf_link *links[2] = { NULL, NULL };

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(pipe(fds + 2), 0);
	ls_links_destroy(links, 2, fds, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fds[i], -1);
	ls_links_destroy(NULL, 0, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_option_loop_ends),
		cmocka_unit_test(test_proc_maps),
		cmocka_unit_test(test_proc_small),
		cmocka_unit_test(test_proc_stat),
		cmocka_unit_test(test_elf),
		cmocka_unit_test(test_elf_index),
		cmocka_unit_test(test_links_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
