/* calib.c: this machine's probe-hit floor (calib.h; method in calib.md).
 *
 * The measured thread is this one, pinned to one CPU. It calls five tiny functions
 * of this binary in loops: a plain one (the untraced loop), two holding a USDT probe
 * point (on a 1-byte and on a 5-byte nop), one whose first instruction is a `push`
 * (a uprobe there is emulated by the
 * kernel, never single-stepped) and one with a uprobe on a `mov` (single-stepped: the
 * kernel cannot emulate it); and getppid() for the syscall figures. Each loop
 * is timed with the thread's own CPU clock, so time a neighbour holds the CPU does
 * not count, while the traps (handled in this thread's context) do. Every figure is
 * the median over rounds of (traced loop - untraced loop of the same round) / calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sdt.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <cjson/cJSON.h>

#include "calib.h"
#include "calib.skel.h"
#include "proc.h"

#define ROUNDS 7
#define MEASURE_NS 1000000ull	/* CPU time of one timed loop: calls sized to take it */
#define PLAIN_CALLS 10000	/* the untraced loop (a few ns a call) */
#define WARMUP_CALLS 50
/* A field added later (sstep_hit_ns, usdt_nop5_hit_ns) keeps the version: a cache
 * without it is measured over, and a binary from before it reads one with it as
 * before, so two builds sharing the cache do not take turns measuring. */
#define CACHE_VERSION 1

/* The uprobe site and its untraced twin: push, pop, ret. A uprobe on the push (offset
 * 0) is emulated by the kernel (arch/x86/kernel/uprobes.c, push_setup_xol_ops); the
 * byte is checked before attaching. The single-step site has one instruction more, a
 * `mov %rsp, %rbp` at offset 1 (48 89 e5, also checked), which the kernel has no
 * emulation for: a uprobe there runs the instruction out of line and takes a second
 * trap (the single step) to come back; the extra mov itself costs well under a ns of
 * what the twin does not subtract. Global, typed symbols: libbpf finds them by name. */
__asm__(".text\n"
	".globl ls_calib_uprobe_site\n"
	".type ls_calib_uprobe_site, @function\n"
	"ls_calib_uprobe_site:\n"
	"	push %rbp\n"
	"	pop %rbp\n"
	"	ret\n"
	".size ls_calib_uprobe_site, .-ls_calib_uprobe_site\n"
	".globl ls_calib_plain_site\n"
	".type ls_calib_plain_site, @function\n"
	"ls_calib_plain_site:\n"
	"	push %rbp\n"
	"	pop %rbp\n"
	"	ret\n"
	".size ls_calib_plain_site, .-ls_calib_plain_site\n"
	".globl ls_calib_sstep_site\n"
	".type ls_calib_sstep_site, @function\n"
	"ls_calib_sstep_site:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	pop %rbp\n"
	"	ret\n"
	".size ls_calib_sstep_site, .-ls_calib_sstep_site\n");
#define SSTEP_OFFSET 1		/* the mov */

void ls_calib_uprobe_site(void);
void ls_calib_plain_site(void);
void ls_calib_sstep_site(void);
void ls_calib_usdt_site(void);
void ls_calib_usdt_nop5_site(void);

/* The USDT probe point: a 1-byte nop and a .note.stapsdt entry, no semaphore. */
__attribute__((noinline)) void ls_calib_usdt_site(void)
{
	STAP_PROBE(loopscope_calib, hit);
	__asm__ volatile("");
}

/* The same on a 5-byte nop, as the reference loop's "loopscope_nop5" sites are: from
 * Linux 6.18 the kernel turns a probed one into a call of a trampoline that enters it
 * by syscall (cheaper than the trap); older kernels emulate or single-step it. The
 * call pushes below %rsp: this function keeps nothing there (no locals, no calls). */
#undef _SDT_NOP
#define _SDT_NOP .nops 5
__attribute__((noinline)) void ls_calib_usdt_nop5_site(void)
{
	STAP_PROBE(loopscope_calib, hit_nop5);
	__asm__ volatile("");
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU ns per call of fn over n calls. The pointer is volatile so the compiler keeps
 * every call. */
static double time_calls(void (*volatile fn)(void), int n)
{
	uint64_t t0 = thread_cpu_ns();

	for (int i = 0; i < n; i++)
		fn();
	return (double)(thread_cpu_ns() - t0) / n;
}

/* How many calls of fn (warm) take about MEASURE_NS: the same CPU time per figure
 * on a machine whatever its trap costs, so the whole measurement stays well under
 * 100 ms (issue 18) where fixed counts took 400 ms on a slow-trap guest. */
static int calls_for(void (*fn)(void))
{
	double per = time_calls(fn, WARMUP_CALLS);
	double n = per > 0 ? (double)MEASURE_NS / per : (double)(1 << 20);

	return n < WARMUP_CALLS ? WARMUP_CALLS : n > (1 << 20) ? 1 << 20 : (int)n;
}

static void call_getppid(void)
{
	getppid();
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void read_machine(struct ls_calib *c)
{
	char line[512];
	struct utsname u;
	FILE *f;

	snprintf(c->cpu_model, sizeof(c->cpu_model), "unknown CPU");
	c->cpu_family = -1;
	f = fopen("/proc/cpuinfo", "re");
	if (f) {
		int have_model = 0, have_family = 0;

		while ((!have_model || !have_family) && fgets(line, sizeof(line), f)) {
			char *v = strchr(line, ':');

			if (!v)
				continue;
			for (v++; *v == ' ' || *v == '\t'; v++)
				;
			v[strcspn(v, "\n")] = '\0';
			if (!have_model && !strncmp(line, "model name", 10) && *v) {
				snprintf(c->cpu_model, sizeof(c->cpu_model), "%s", v);
				have_model = 1;
			} else if (!have_family && !strncmp(line, "cpu family", 10)) {
				c->cpu_family = atoi(v);
				have_family = 1;
			}
		}
		fclose(f);
	}
	if (uname(&u) == 0)
		snprintf(c->kernel, sizeof(c->kernel), "%s", u.release);
	c->boot_id[0] = '\0';
	ls_proc_read_text("/proc/sys/kernel/random/boot_id", c->boot_id, sizeof(c->boot_id));
}

static int pin_to(int cpu, cpu_set_t *saved)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(*saved), saved))
		return -errno;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* Attach the tracepoint pair (a syscall tracepoint taxes every syscall in the system:
 * attached last, for the traced rounds only). */
static int attach_tp(struct calib *skel, struct bpf_link **enter, struct bpf_link **exit_)
{
	*enter = bpf_program__attach(skel->progs.calib_sys_enter);
	if (!*enter)
		return -errno;
	*exit_ = bpf_program__attach(skel->progs.calib_sys_exit);
	if (!*exit_) {
		int r = -errno;

		bpf_link__destroy(*enter);
		*enter = NULL;
		return r;
	}
	return 0;
}

static void detach(struct bpf_link **l)
{
	bpf_link__destroy(*l);
	*l = NULL;
}

/* The empty USDT program on this binary's probe loopscope_calib:name (what: how the
 * error names the site). 0 or -errno with err set. */
static int attach_usdt(struct calib *skel, const char *exe, const char *name, const char *what,
		       struct bpf_link **l, char *err, size_t errlen)
{
	int r;

	*l = bpf_program__attach_usdt(skel->progs.calib_usdt, getpid(), exe, "loopscope_calib", name, NULL);
	if (*l)
		return 0;
	r = -errno;
	snprintf(err, errlen, "attaching the calibration USDT probe%s in %s failed: %s", what, exe, strerror(-r));
	return r;
}

int ls_calib_measure(struct ls_calib *c, int cpu, char *err, size_t errlen)
{
	double usdt[ROUNDS], nop5[ROUNDS], uprobe[ROUNDS], sstep[ROUNDS], sys[ROUNDS], tp[ROUNDS], loop[ROUNDS];
	struct bpf_link *l_usdt = NULL, *l_nop5 = NULL, *l_uprobe = NULL, *l_sstep = NULL, *l_enter = NULL, *l_exit = NULL;
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = "ls_calib_uprobe_site");
	LIBBPF_OPTS(bpf_uprobe_opts, so, .func_name = "ls_calib_sstep_site");
	static const unsigned char mov_rsp_rbp[3] = { 0x48, 0x89, 0xe5 };
	struct calib *skel = NULL;
	char exe[4096];
	cpu_set_t saved;
	int pinned = 0, err_ = 0, n_usdt, n_nop5, n_uprobe, n_sstep, n_sys;
	uint64_t t0 = mono_ns();
	ssize_t n;

	memset(c, 0, sizeof(*c));
	read_machine(c);
	if (cpu < 0)
		cpu = sched_getcpu();
	err_ = cpu < 0 || cpu >= CPU_SETSIZE ? -EINVAL : pin_to(cpu, &saved);
	if (err_) {
		snprintf(err, errlen, "cannot run on CPU %d: %s (this machine has %ld online CPUs, "
			 "numbered from 0)", cpu, strerror(-err_), sysconf(_SC_NPROCESSORS_ONLN));
		goto cleanup;
	}
	pinned = 1;
	c->cpu = cpu;
	c->rounds = ROUNDS;
	if (*(const volatile unsigned char *)(void *)ls_calib_uprobe_site != 0x55) {
		err_ = -EINVAL;
		snprintf(err, errlen, "internal: the uprobe calibration site does not start with push %%rbp");
		goto cleanup;
	}
	if (memcmp((const char *)(void *)ls_calib_sstep_site + SSTEP_OFFSET, mov_rsp_rbp, sizeof(mov_rsp_rbp))) {
		err_ = -EINVAL;
		snprintf(err, errlen, "internal: the single-step calibration site has no mov %%rsp, %%rbp at +%d",
			 SSTEP_OFFSET);
		goto cleanup;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		err_ = -errno;
		snprintf(err, errlen, "cannot read /proc/self/exe: %s", strerror(errno));
		goto cleanup;
	}
	exe[n] = '\0';

	skel = calib__open_and_load();
	if (!skel) {
		err_ = -errno;
		if (err_ == -EPERM || err_ == -EACCES)
			snprintf(err, errlen, "not permitted to load BPF programs: run loopscope calibrate "
				 "as root (it needs CAP_BPF and CAP_PERFMON)");
		else
			snprintf(err, errlen, "loading the calibration BPF programs failed: %s", strerror(-err_));
		goto cleanup;
	}
	err_ = attach_usdt(skel, exe, "hit", "", &l_usdt, err, errlen);
	if (!err_)
		err_ = attach_usdt(skel, exe, "hit_nop5", " on a 5-byte nop", &l_nop5, err, errlen);
	if (err_)
		goto cleanup;
	l_uprobe = bpf_program__attach_uprobe_opts(skel->progs.calib_uprobe, getpid(), exe, 0, &uo);
	if (!l_uprobe) {
		err_ = -errno;
		snprintf(err, errlen, "attaching the calibration uprobe at ls_calib_uprobe_site in %s failed: "
			 "%s (a stripped binary has no such symbol)", exe, strerror(-err_));
		goto cleanup;
	}
	/* with func_name, the offset is from the function's start */
	l_sstep = bpf_program__attach_uprobe_opts(skel->progs.calib_uprobe, getpid(), exe, SSTEP_OFFSET, &so);
	if (!l_sstep) {
		err_ = -errno;
		snprintf(err, errlen, "attaching the calibration uprobe at ls_calib_sstep_site+%d in %s failed: "
			 "%s (a stripped binary has no such symbol)", SSTEP_OFFSET, exe, strerror(-err_));
		goto cleanup;
	}

	/* Warm up: the first hits fault in the probed pages and the kernel's uprobe state. */
	time_calls(ls_calib_usdt_site, WARMUP_CALLS);
	time_calls(ls_calib_usdt_nop5_site, WARMUP_CALLS);	/* the first hit is a trap that rewrites it */
	time_calls(ls_calib_uprobe_site, WARMUP_CALLS);
	time_calls(ls_calib_sstep_site, WARMUP_CALLS);
	time_calls(ls_calib_plain_site, WARMUP_CALLS);
	time_calls(call_getppid, WARMUP_CALLS);
	n_usdt = calls_for(ls_calib_usdt_site);
	n_nop5 = calls_for(ls_calib_usdt_nop5_site);
	n_uprobe = calls_for(ls_calib_uprobe_site);
	n_sstep = calls_for(ls_calib_sstep_site);
	n_sys = calls_for(call_getppid);
	for (int r = 0; r < ROUNDS; r++) {
		loop[r] = time_calls(ls_calib_plain_site, PLAIN_CALLS);
		usdt[r] = time_calls(ls_calib_usdt_site, n_usdt) - loop[r];
		nop5[r] = time_calls(ls_calib_usdt_nop5_site, n_nop5) - loop[r];
		uprobe[r] = time_calls(ls_calib_uprobe_site, n_uprobe) - loop[r];
		sstep[r] = time_calls(ls_calib_sstep_site, n_sstep) - loop[r];
		sys[r] = time_calls(call_getppid, n_sys) - loop[r];
	}
	/* The tracepoint rounds come after the untraced ones: detaching a syscall
	 * tracepoint waits for an RCU grace period, too slow to do per round. */
	err_ = attach_tp(skel, &l_enter, &l_exit);
	if (err_) {
		snprintf(err, errlen, "attaching the syscalls:sys_enter_getppid/sys_exit_getppid "
			 "tracepoints failed: %s (tracefs or CONFIG_FTRACE_SYSCALLS missing?)",
			 strerror(-err_));
		goto cleanup;
	}
	time_calls(call_getppid, WARMUP_CALLS);
	n_sys = calls_for(call_getppid);
	for (int r = 0; r < ROUNDS; r++)
		tp[r] = time_calls(call_getppid, n_sys) - time_calls(ls_calib_plain_site, PLAIN_CALLS);
	c->usdt_hit_ns = median(usdt, ROUNDS);	/* median() sorts: per-round pairing ends here */
	c->usdt_nop5_hit_ns = median(nop5, ROUNDS);
	c->uprobe_hit_ns = median(uprobe, ROUNDS);
	c->sstep_hit_ns = median(sstep, ROUNDS);
	c->syscall_ns = median(sys, ROUNDS);
	c->tp_pair_ns = median(tp, ROUNDS) - c->syscall_ns;
	c->loop_ns = median(loop, ROUNDS);
	c->measured_at = (int64_t)time(NULL);
	/* Detaching below is not counted: each kind of probe waits for an RCU grace
	 * period as it goes, which costs the caller time but not accuracy. */
	c->took_ms = (double)(mono_ns() - t0) / 1e6;
	err_ = 0;
cleanup:
	detach(&l_enter);
	detach(&l_exit);
	detach(&l_sstep);
	detach(&l_uprobe);
	detach(&l_nop5);
	detach(&l_usdt);
	calib__destroy(skel);
	if (pinned)
		sched_setaffinity(0, sizeof(saved), &saved);
	return err_;
}

char *ls_calib_json(const struct ls_calib *c)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;

	if (!o)
		return NULL;
	if (cJSON_AddNumberToObject(o, "version", CACHE_VERSION) &&
	    cJSON_AddStringToObject(o, "cpu_model", c->cpu_model) &&
	    cJSON_AddNumberToObject(o, "cpu_family", c->cpu_family) &&
	    cJSON_AddStringToObject(o, "kernel", c->kernel) &&
	    cJSON_AddStringToObject(o, "boot_id", c->boot_id) &&
	    cJSON_AddNumberToObject(o, "cpu", c->cpu) &&
	    cJSON_AddNumberToObject(o, "rounds", c->rounds) &&
	    cJSON_AddNumberToObject(o, "usdt_hit_ns", c->usdt_hit_ns) &&
	    cJSON_AddNumberToObject(o, "usdt_nop5_hit_ns", c->usdt_nop5_hit_ns) &&
	    cJSON_AddNumberToObject(o, "uprobe_hit_ns", c->uprobe_hit_ns) &&
	    cJSON_AddNumberToObject(o, "sstep_hit_ns", c->sstep_hit_ns) &&
	    cJSON_AddNumberToObject(o, "syscall_ns", c->syscall_ns) &&
	    cJSON_AddNumberToObject(o, "tp_pair_ns", c->tp_pair_ns) &&
	    cJSON_AddNumberToObject(o, "loop_ns", c->loop_ns) &&
	    cJSON_AddNumberToObject(o, "took_ms", c->took_ms) &&
	    cJSON_AddNumberToObject(o, "measured_at", (double)c->measured_at) &&
	    cJSON_AddBoolToObject(o, "cached", c->cached))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int num(const cJSON *o, const char *key, double *v)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(it))
		return -EINVAL;
	*v = it->valuedouble;
	return 0;
}

static int str(const cJSON *o, const char *key, char *buf, size_t len)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(it))
		return -EINVAL;
	snprintf(buf, len, "%s", it->valuestring);
	return 0;
}

/* The cached figures if the cache belongs to this boot and this layout; -ENOENT if
 * there is none that does. */
static int cache_read(struct ls_calib *c, const char *boot_id)
{
	char buf[4096];
	double version = 0, family = 0, cpu = 0, rounds = 0, at = 0;
	cJSON *o = NULL;
	ssize_t n;
	int fd, err = -ENOENT;

	fd = open(LS_CALIB_CACHE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = '\0';
	o = cJSON_Parse(buf);
	if (!o)
		return -ENOENT;
	memset(c, 0, sizeof(*c));
	if (num(o, "version", &version) || version != CACHE_VERSION ||
	    str(o, "boot_id", c->boot_id, sizeof(c->boot_id)) || strcmp(c->boot_id, boot_id) ||
	    str(o, "cpu_model", c->cpu_model, sizeof(c->cpu_model)) ||
	    str(o, "kernel", c->kernel, sizeof(c->kernel)) || num(o, "cpu_family", &family) ||
	    num(o, "cpu", &cpu) || num(o, "rounds", &rounds) ||
	    num(o, "usdt_hit_ns", &c->usdt_hit_ns) || num(o, "usdt_nop5_hit_ns", &c->usdt_nop5_hit_ns) ||
	    num(o, "uprobe_hit_ns", &c->uprobe_hit_ns) ||
	    num(o, "sstep_hit_ns", &c->sstep_hit_ns) ||
	    num(o, "syscall_ns", &c->syscall_ns) || num(o, "tp_pair_ns", &c->tp_pair_ns) ||
	    num(o, "loop_ns", &c->loop_ns) || num(o, "took_ms", &c->took_ms) ||
	    num(o, "measured_at", &at))
		goto cleanup;
	c->cpu_family = (int)family;
	c->cpu = (int)cpu;
	c->rounds = (int)rounds;
	c->measured_at = (int64_t)at;
	c->cached = 1;
	err = 0;
cleanup:
	cJSON_Delete(o);
	return err;
}

/* Replace the cache atomically (write a temporary file, rename it over). */
static int cache_write(const struct ls_calib *c)
{
	char tmp[sizeof(LS_CALIB_CACHE) + 32], *s = NULL, *dir = NULL, *slash;
	int fd = -1, err = 0;
	size_t len;

	dir = strdup(LS_CALIB_CACHE);
	s = ls_calib_json(c);
	if (!dir || !s) {
		err = -ENOMEM;
		goto cleanup;
	}
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (mkdir(dir, 0755) && errno != EEXIST) {
		err = -errno;
		goto cleanup;
	}
	snprintf(tmp, sizeof(tmp), "%s.%d", LS_CALIB_CACHE, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		goto cleanup;
	}
	len = strlen(s);
	s[len++] = '\n';	/* overwrites the terminator: write() takes the length */
	if (write(fd, s, len) != (ssize_t)len || close(fd)) {
		err = errno ? -errno : -EIO;
		fd = -1;
		unlink(tmp);
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, LS_CALIB_CACHE)) {
		err = -errno;
		unlink(tmp);
	}
cleanup:
	if (fd >= 0)
		close(fd);
	free(s);
	free(dir);
	return err;
}

int ls_calib_get(struct ls_calib *c, int refresh, char *err, size_t errlen)
{
	struct ls_calib now;
	int r;

	memset(&now, 0, sizeof(now));
	read_machine(&now);
	if (!refresh && now.boot_id[0] && cache_read(c, now.boot_id) == 0)
		return 0;
	r = ls_calib_measure(c, -1, err, errlen);
	if (r)
		return r;
	cache_write(c);
	return 0;
}

static void fmt_us(char *buf, size_t len, double ns)
{
	snprintf(buf, len, ns >= 2000 ? "%.1f us" : "%.2f us", ns / 1e3);
}

void ls_calib_line(const struct ls_calib *c, char *buf, size_t len)
{
	char family[32] = "", usdt[32], uprobe[32], sys[32], tp[32];

	if (c->cpu_family >= 0)
		snprintf(family, sizeof(family), " (family %d)", c->cpu_family);
	fmt_us(usdt, sizeof(usdt), c->usdt_hit_ns);
	fmt_us(uprobe, sizeof(uprobe), c->uprobe_hit_ns);
	fmt_us(sys, sizeof(sys), c->syscall_ns);
	fmt_us(tp, sizeof(tp), c->tp_pair_ns);
	snprintf(buf, len, "machine: %s%s, kernel %s, usdt hit %s, uprobe hit %s, syscall %s, "
		 "tracepoint pair %s", c->cpu_model, family, c->kernel, usdt, uprobe, sys, tp);
}

void ls_calib_sstep_line(const struct ls_calib *c, char *buf, size_t len)
{
	char sstep[32], nop5[32];

	fmt_us(sstep, sizeof(sstep), c->sstep_hit_ns);
	fmt_us(nop5, sizeof(nop5), c->usdt_nop5_hit_ns);
	snprintf(buf, len, "single-stepped uprobe hit %s (on a mov; the uprobe hit above is on an emulated push); "
		 "usdt hit on a 5-byte nop %s (the usdt hit above is on a 1-byte nop)", sstep, nop5);
}
