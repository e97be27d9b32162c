/* nodeuv.c: the Node.js / libuv backend (node.h, probes in bpf/nodeuv.bpf.c).
 *
 * attach() takes the plan nodeuv_plan.c makes from the target's ELF alone (libuv.h:
 * symbols, version, offsets, Capstone-chosen sites) and checks on the live default
 * loop, then loads one copy of the probe set per process and attaches it in a fixed
 * order: tracepoints, uprobes, per-CPU perf events. Anything that fails on the way is
 * torn down by detach(), so a failed attach leaves nothing. The ops table is at the end.
 *
 * Beside it (nodeuv_int.h): nodeuv_snapshot.c turns the loops map into snapshots,
 * nodeuv_counters.c reads libuv's own counters (and is the whole counters tier),
 * nodeuv_stacks.c turns stack samples into frames and episode stacks.
 *
 * What is measured where, and what each tier costs: nodeuv.md beside this file, and
 * probe-plans.md (the poll plans, the counters tier).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "calib.h"
#include "libuv.h"
#include "links.h"
#include "node.h"
#include "nodeuv.h"
#include "stack_raw.h"	/* struct ls_leaf, in the skeleton's .bss */
#include "nodeuv.skel.h"
#include "nodeuv_int.h"
#include "proc.h"
#include "unwind.h"

_Static_assert(NU_NPHASES == LS_NPHASES, "phase numbering");
_Static_assert(NU_PHASE_POLL == LS_PHASE_POLL && NU_PHASE_CLOSE == LS_PHASE_CLOSE, "phase numbering");
_Static_assert(NU_PHASE_NONE == LS_PHASE_NONE, "phase numbering");
_Static_assert(NU_EP_STALL == LS_EP_STALL && NU_EP_TICK == LS_EP_TICK_STARVATION, "episode kinds");
_Static_assert(NU_EP_MICRO == LS_EP_MICROTASK_STARVATION && NU_EP_GC == LS_EP_GC, "episode kinds");

#define DEFAULT_STALL_NS 100000000ull

static int node_match(const struct ls_target_info *ti)
{
	return ti->runtime == LS_RT_NODE || ti->runtime == LS_RT_LIBUV;
}

/* ---- attach / detach ---- */

static void node_detach(struct ls_target *t)
{
	struct node_priv *p = t->priv;

	if (!p)
		return;
	nu__samples_close(p);
	ls_links_destroy(p->links, p->nlinks, p->multi, p->nmulti);
	p->nmulti = 0;
	p->nlinks = 0;
	ring_buffer__free(p->rb);
	nodeuv__destroy(p->skel);
	nu__counters_free(p);
	free(p->uvc);
	free(p->val);
	free(p);
	t->priv = NULL;
}

static int on_ringbuf(void *ctx, void *data, size_t len)
{
	struct node_priv *p = ctx;
	const struct nu_event *e = data;
	struct ls_episode ep;

	if (len < sizeof(*e) || !p->fn)
		return 0;
	ep = (struct ls_episode){
		.pid = p->pid, .tid = e->tid, .kind = e->kind, .phase = e->phase,
		.start_ns = e->start_ns, .end_ns = e->end_ns, .callbacks = 0,
	};
	if (ep.end_ns && ep.kind != LS_EP_GC) {
		/* its samples were sent before it ended: take them all first */
		nu__samples_consume(p);
		nu__episode_stacks(p, &ep);
	}
	p->fn(&ep, p->fn_arg);
	return 0;
}

static int add_uprobe(struct node_priv *p, struct bpf_program *prog, const struct lu_site *s, const char *what,
		      char *err, size_t errlen)
{
	struct bpf_link *link;
	int r;
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .bpf_cookie = s->cookie);

	if (p->nlinks >= MAX_LINKS) {
		snprintf(err, errlen, "%s: too many probes", what);
		return -E2BIG;
	}
	link = bpf_program__attach_uprobe_opts(prog, p->pid, p->plan.path, (size_t)s->file_off, &uo);
	if (!link) {
		r = -errno;
		snprintf(err, errlen, "attaching the %s uprobe (%s at %#llx) failed: %s", what, s->insn,
			 (unsigned long long)s->vaddr, strerror(-r));
		return r;
	}
	p->links[p->nlinks++] = link;
	return 0;
}

/* BPF_LINK_CREATE for BPF_TRACE_UPROBE_MULTI (kernel >= 6.6), written out because
 * libbpf 1.1.2 and the installed uapi headers predate it. One link holds every site
 * of a program, and detaching it waits for one RCU grace period instead of one per
 * site (~0.1-0.2 s each here). */
#define NU_BPF_TRACE_UPROBE_MULTI 48
struct nu_uprobe_multi_attr {
	__u32 prog_fd, target_fd, attach_type, flags;
	__u64 path, offsets, ref_ctr_offsets, cookies;
	__u32 cnt, multi_flags, pid;
};

static int add_uprobe_multi(struct node_priv *p, struct bpf_program *prog, const struct lu_site *sites, int n,
			    const char *what, char *err, size_t errlen)
{
	union {
		struct nu_uprobe_multi_attr a;
		union bpf_attr pad;	/* the kernel wants the unused tail zeroed */
	} u;
	unsigned long offs[MAX_LINKS];
	__u64 cookies[MAX_LINKS];
	int fd;

	if (n <= 0 || n > MAX_LINKS || p->nmulti >= MAX_MULTI) {
		snprintf(err, errlen, "%s: bad number of probe sites (%d)", what, n);
		return -E2BIG;
	}
	for (int i = 0; i < n; i++) {
		offs[i] = (unsigned long)sites[i].file_off;
		cookies[i] = sites[i].cookie;
	}
	memset(&u, 0, sizeof(u));
	u.a.prog_fd = (__u32)bpf_program__fd(prog);
	u.a.attach_type = NU_BPF_TRACE_UPROBE_MULTI;
	u.a.path = (__u64)(uintptr_t)p->plan.path;
	u.a.offsets = (__u64)(uintptr_t)offs;
	u.a.cookies = (__u64)(uintptr_t)cookies;
	u.a.cnt = (__u32)n;
	u.a.pid = (__u32)p->pid;
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &u, sizeof(u));
	if (fd < 0) {
		int r = -errno;

		snprintf(err, errlen, "attaching the %s uprobes (%d sites) failed: %s", what, n, strerror(-r));
		return r;
	}
	p->multi[p->nmulti++] = fd;
	return 0;
}

/* The uprobe programs this plan uses, with their sites. */
struct uprobe_set {
	struct bpf_program *prog;
	const struct lu_site *sites;
	int n;
	const char *what;
};

static int uprobe_sets(struct node_priv *p, struct uprobe_set *out)
{
	const struct node_plan *pl = &p->plan;
	int n = 0;

	if (pl->counters)
		return 0;
	/* GC first: returns never miss a pause whose entry was seen */
	if (pl->have_gc)
		out[n++] = (struct uprobe_set){ p->skel->progs.nu_gc, pl->gc_sites, pl->ngc_sites, "GC" };
	/* epoll before the sites whose programs assume its state is live */
	if (pl->have_epoll)
		out[n++] = (struct uprobe_set){ p->skel->progs.nu_epoll, pl->epsites, pl->nep, "uv__io_poll epoll call" };
	if (pl->phases) {
		out[n++] = (struct uprobe_set){ p->skel->progs.nu_boundary, pl->bsites, pl->nb, "uv_run boundary" };
		return n;
	}
	if (pl->poll_mode == POLL_ENTRY)
		out[n++] = (struct uprobe_set){ p->skel->progs.nu_poll, pl->psites, pl->npoll, "uv__io_poll call" };
	if (pl->ntf)
		out[n++] = (struct uprobe_set){ p->skel->progs.nu_timer_fire, pl->tfire, pl->ntf, "uv_timer_stop call" };
	else if (pl->have_timers)
		out[n++] = (struct uprobe_set){ p->skel->progs.nu_timers, &pl->timers, 1, "uv__run_timers" };
	return n;
}

/* Syscall tracepoints need tracefs for their ids. Mount it where libbpf looks when
 * no one has (a minimal VM or container host), once, as perf tools do. */
static void ensure_tracefs(void)
{
	struct stat st;

	if (!stat("/sys/kernel/tracing/events", &st) || !stat("/sys/kernel/debug/tracing/events", &st))
		return;
	if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) && errno != EBUSY)
		return;	/* attach then says which tracepoint it could not find */
}


/* Open and load the probe set for the plan; multi: uprobe programs load for
 * uprobe_multi links (they cannot then attach one site at a time). */
static int load_skel(struct node_priv *p, int multi, char *err, size_t errlen)
{
	const struct node_plan *pl = &p->plan;
	struct uprobe_set sets[5];
	int n, r;

	p->skel = nodeuv__open();
	if (!p->skel) {
		snprintf(err, errlen, "opening the node probe set failed");
		return -ENOMEM;
	}
	bpf_map__set_max_entries(p->skel->maps.samples, ls_samples_ring_bytes(p->profile));
	p->skel->rodata->targ_tgid = (uint32_t)p->pid;
	p->skel->rodata->stall_ns = p->stall_ns;
	p->skel->rodata->metrics_idle_time = pl->runtime == LS_RT_NODE;
	if (pl->have_off) {
		p->skel->rodata->read_loop = 1;
		p->skel->rodata->off_heap_min = pl->off.heap_min;
		p->skel->rodata->off_time = pl->off.time;
		p->skel->rodata->off_node_timeout = pl->off.timer_timeout - pl->off.timer_node;
		p->skel->rodata->off_timer_loop = pl->off.timer_loop;
		p->skel->rodata->off_timer_timeout = pl->off.timer_timeout;
	}
	if (pl->poll_mode == POLL_ENTRY) {
		p->skel->rodata->poll_by_metrics = 1;
		p->skel->rodata->off_fields = pl->off.internal_fields;
		p->skel->rodata->off_mx_idle = pl->off.mx_idle;
		p->skel->rodata->off_mx_entry = pl->off.mx_entry;
	}
	for (int i = 0; i < pl->nmicro; i++) {
		p->skel->rodata->micro_lo[i] = pl->micro[i].lo + pl->bias;
		p->skel->rodata->micro_hi[i] = pl->micro[i].hi + pl->bias;
	}
	for (int i = 0; i < pl->ntick; i++) {
		p->skel->rodata->tick_lo[i] = pl->tick[i].lo + pl->bias;
		p->skel->rodata->tick_hi[i] = pl->tick[i].hi + pl->bias;
	}
	{
		uint64_t lo, hi;

		/* the code of the binary the stack scan accepts return addresses into */
		if (!ls_proc_code_range(p->pid, pl->path, &lo, &hi)) {
			p->skel->rodata->text_lo = lo;
			p->skel->rodata->text_hi = hi;
		}
	}
	bpf_program__set_autoload(p->skel->progs.nu_timers, pl->have_timers && !pl->ntf && !pl->phases);
	bpf_program__set_autoload(p->skel->progs.nu_timer_fire, pl->ntf && !pl->phases);
	bpf_program__set_autoload(p->skel->progs.nu_poll, pl->poll_mode == POLL_ENTRY && !pl->phases);
	bpf_program__set_autoload(p->skel->progs.nu_boundary, pl->phases);
	bpf_program__set_autoload(p->skel->progs.nu_gc, pl->have_gc);
	/* libuv >= 1.45 polls with epoll_pwait only; 1.44 uses epoll_wait unless it
	 * blocks signals. Fewer tracepoints, faster detach. */
	bpf_program__set_autoload(p->skel->progs.nu_epoll, pl->have_epoll);
	if (pl->version >= 0x012d00 || pl->have_epoll) {
		bpf_program__set_autoload(p->skel->progs.nu_enter_epoll_wait, false);
		bpf_program__set_autoload(p->skel->progs.nu_exit_epoll_wait, false);
	}
	if (pl->poll_mode != POLL_TRACEPOINTS) {
		bpf_program__set_autoload(p->skel->progs.nu_enter_epoll_wait, false);
		bpf_program__set_autoload(p->skel->progs.nu_exit_epoll_wait, false);
		bpf_program__set_autoload(p->skel->progs.nu_enter_epoll_pwait, false);
		bpf_program__set_autoload(p->skel->progs.nu_exit_epoll_pwait, false);
	}
	if (pl->counters) {
		struct bpf_program *prog;

		/* the counters tier's sampler and nothing else */
		bpf_object__for_each_program(prog, p->skel->obj)
			bpf_program__set_autoload(prog, prog == p->skel->progs.nu_ct_sample);
	} else {
		bpf_program__set_autoload(p->skel->progs.nu_ct_sample, false);
	}
	n = uprobe_sets(p, sets);
	for (int i = 0; multi && i < n; i++)
		bpf_program__set_expected_attach_type(sets[i].prog, (enum bpf_attach_type)NU_BPF_TRACE_UPROBE_MULTI);
	r = nodeuv__load(p->skel);
	if (r)
		snprintf(err, errlen, "loading the node probe set failed (%s): is the kernel's BTF present?",
			 strerror(-r));
	return r;
}

/* The syscall tracepoints, attached first (a uprobe hit then implies epoll is seen);
 * programs load_skel() left out are skipped. */
static int attach_tracepoints(struct node_priv *p, char *err, size_t errlen)
{
	static const struct {
		size_t prog;	/* offsetof in struct nodeuv */
		const char *category, *name;
	} tracepoints[] = {
		{ offsetof(struct nodeuv, progs.nu_enter_epoll_pwait), "syscalls", "sys_enter_epoll_pwait" },
		{ offsetof(struct nodeuv, progs.nu_exit_epoll_pwait), "syscalls", "sys_exit_epoll_pwait" },
		{ offsetof(struct nodeuv, progs.nu_enter_epoll_wait), "syscalls", "sys_enter_epoll_wait" },
		{ offsetof(struct nodeuv, progs.nu_exit_epoll_wait), "syscalls", "sys_exit_epoll_wait" },
	};

	ensure_tracefs();
	for (size_t i = 0; i < sizeof(tracepoints) / sizeof(tracepoints[0]); i++) {
		struct bpf_program *prog = *(struct bpf_program **)((char *)p->skel + tracepoints[i].prog);
		struct bpf_link *link;
		int r;

		if (!bpf_program__autoload(prog))
			continue;
		link = bpf_program__attach_tracepoint(prog, tracepoints[i].category, tracepoints[i].name);
		if (!link) {
			r = -errno;
			snprintf(err, errlen, "attaching tracepoint %s:%s failed: %s (is tracefs mounted at "
				 "/sys/kernel/tracing?)", tracepoints[i].category, tracepoints[i].name, strerror(-r));
			return r;
		}
		p->links[p->nlinks++] = link;
	}
	return 0;
}

/* Drop the loaded probe set and its links (before a retry). */
static void release_probes(struct node_priv *p)
{
	ls_links_destroy(p->links, p->nlinks, p->multi, p->nmulti);
	p->nmulti = 0;
	p->nlinks = 0;
	nodeuv__destroy(p->skel);
	p->skel = NULL;
}

/* Load, then attach tracepoints and uprobes in that order. With multi, -EOPNOTSUPP
 * means the kernel refused the first uprobe_multi link (retry without). */
static int load_and_attach(struct node_priv *p, int multi, char *err, size_t errlen)
{
	struct uprobe_set sets[5];
	int r, n;

	r = load_skel(p, multi, err, errlen);
	if (r)
		return r;
	r = attach_tracepoints(p, err, errlen);
	if (r)
		return r;
	n = uprobe_sets(p, sets);
	for (int i = 0; i < n; i++) {
		if (multi) {
			r = add_uprobe_multi(p, sets[i].prog, sets[i].sites, sets[i].n, sets[i].what, err, errlen);
			if (r && i == 0 && (r == -EINVAL || r == -EOPNOTSUPP || r == -ENOSYS))
				return -EOPNOTSUPP;
			if (r)
				return r;
			continue;
		}
		for (int k = 0; k < sets[i].n; k++)
			if ((r = add_uprobe(p, sets[i].prog, &sets[i].sites[k], sets[i].what, err, errlen)))
				return r;
	}
	return 0;
}

/* Node's main thread runs the default loop, and where that loop keeps idle time it is
 * running: its record is made now rather than at its first probe hit, so an idle
 * loop (blocked in epoll for longer than an interval) is reported from the first
 * interval, from libuv's counters (nodeuv_snapshot.c), instead of not at all. The
 * probes fill the record in on their first hit as on one they made (new_loop()). */
static void seed_main_loop(struct node_priv *p)
{
	uint32_t tid = (uint32_t)p->pid;

	if (p->plan.runtime != LS_RT_NODE || !p->plan.metrics_ok)
		return;
	/* as new_loop() makes one, seen first outside epoll at the start of counting */
	memset(p->val, 0, sizeof(*p->val));
	p->val->first_ns = p->skel->bss->start_ns;
	p->val->busy_mark_ns = p->skel->bss->start_ns;
	p->val->last_b = NU_NB;
	p->val->live_phase = NU_PHASE_NONE;
	ls_proc_thread_comm(p->pid, tid, p->val->comm, sizeof(p->val->comm));
	p->val->loop_addr = p->plan.default_loop;
	/* -EEXIST: a probe got there first */
	bpf_map_update_elem(bpf_map__fd(p->skel->maps.loops), &tid, p->val, BPF_NOEXIST);
}

/* Each run of a phase is timed from one boundary probe to the next, so it holds what
 * is left of one trap after the first's clock read and the start of the next's: about
 * one hit. An empty phase (idle, prepare, close on most iterations) reads as that. */
static void note_boundary_cost(struct node_plan *pl)
{
	struct ls_calib c;
	char err[256], buf[160];

	if (ls_calib_get(&c, 0, err, sizeof(err)))
		return;
	snprintf(buf, sizeof(buf), "each phase run includes about one probe hit (%.1f us calibrated): "
		 "an empty phase reads as that", c.uprobe_hit_ns / 1e3);
	nu__note_add(pl, buf);
}

/* A Node target whose stacks will have no JS frames says why in its note. */
static void note_js_frames(struct node_priv *p)
{
	const char *why = ls_unwinder_js_why(p->unw);
	char buf[240];

	if (why && p->plan.runtime == LS_RT_NODE) {
		snprintf(buf, sizeof(buf), "JS frames unavailable: %s", why);
		nu__note_add(&p->plan, buf);
	}
}

/* Counters tier: the stack sampler alone (nu_ct_sample), its events opened stopped
 * and turned on only while the main loop's clock has stopped (nodeuv_counters.c).
 * Without it (no BPF or perf events here) stalls are still seen, as the note says:
 * unclassified and unnamed. */
static void counters_stacks(struct node_priv *p)
{
	char why[160] = "", buf[240];
	int r;

	r = load_skel(p, 0, why, sizeof(why));
	if (!r && (r = nu__ct_sampler_open(p)))
		snprintf(why, sizeof(why), "perf event: %s", strerror(-r));
	if (!r && (r = nu__samples_open(p)))
		snprintf(why, sizeof(why), "%s", strerror(-r));
	if (r) {
		nu__samples_close(p);
		release_probes(p);
		snprintf(buf, sizeof(buf), "no stack samples (%s): stalls unclassified and unnamed", why);
		nu__note_add(&p->plan, buf);
		return;
	}
	note_js_frames(p);
}

static int node_attach(struct ls_target *t, const struct ls_target_info *ti, const struct ls_agent_opts *opts,
		       char *err, size_t errlen)
{
	struct node_priv *p;
	struct node_plan *pl;
	const char *no_multi = getenv("LOOPSCOPE_NO_UPROBE_MULTI");
	int r, multi;

	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->priv = p;
	p->pid = ti->pid;
	p->wake_fd = -1;
	if (opts) {
		p->profile = opts->profile;
		p->on_stack = opts->on_stack;
		p->stack_arg = opts->stack_arg;
	}
	p->stall_ns = opts && opts->stall_threshold_ns ? opts->stall_threshold_ns : DEFAULT_STALL_NS;
	pl = &p->plan;
	r = nu__plan_make(ti, opts ? opts->tier : NULL, pl, err, errlen);
	if (r)
		goto fail;
	if (pl->sym[S_METADATA].addr)
		lu_node_version(p->pid, pl->sym[S_METADATA].addr + pl->bias, p->version, sizeof(p->version));
	r = nu__plan_check_loop(ti, pl, err, errlen);
	if (r)
		goto fail;
	p->val = malloc(sizeof(*p->val));
	p->uvc = calloc(NU_MAX_LOOPS, sizeof(*p->uvc));
	if (!p->val || !p->uvc) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pl->counters) {
		r = nu__counters_start(p, err, errlen);
		if (r)
			goto fail;
		counters_stacks(p);
		return 0;
	}
	/* uprobe_multi unless told otherwise (the per-site path stays testable) */
	multi = !(no_multi && *no_multi && strcmp(no_multi, "0"));
	r = load_and_attach(p, multi, err, errlen);
	if (r == -EOPNOTSUPP && multi) {
		/* A kernel without uprobe_multi: start over with one uprobe per site. */
		release_probes(p);
		r = load_and_attach(p, 0, err, errlen);
	}
	if (r)
		goto fail;
	/* Counting starts now, with everything live: the first snapshot is taken just
	 * after, and what a loop did before (while attaching) must not enter its ratios. */
	p->skel->bss->start_ns = ls_now_mono_ns();
	if (pl->metrics_ok)
		nu__libuv_counters_read(p, nu__libuv_counters(p, (uint32_t)p->pid, pl->default_loop, 1),
					p->skel->bss->start_ns);
	seed_main_loop(p);
	if (pl->phases)
		note_boundary_cost(pl);
	r = nu__sampler_open(p);
	if (r) {
		char buf[120];

		/* stalls are still seen when they end, just not classified or announced */
		snprintf(buf, sizeof(buf), "no stack samples (perf event: %s): stalls unclassified", strerror(-r));
		nu__note_add(pl, buf);
	}
	p->rb = ring_buffer__new(bpf_map__fd(p->skel->maps.episodes), on_ringbuf, p, NULL);
	if (!p->rb) {
		r = -errno;
		snprintf(err, errlen, "creating the episode ring buffer failed: %s", strerror(-r));
		goto fail;
	}
	r = nu__samples_open(p);
	if (r) {
		snprintf(err, errlen, "setting up stack samples failed: %s", strerror(-r));
		goto fail;
	}
	note_js_frames(p);
	return 0;
fail:
	node_detach(t);
	return r ? r : -EINVAL;
}

/* ---- collect ---- */

/* The probe set's per-CPU counter idx (NU_CNT_*), summed over the CPUs; 0 if unreadable. */
static uint64_t probe_counter(struct node_priv *p, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v, sum = 0;

	if (!p || !p->skel || ncpu <= 0)
		return 0;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return 0;
	if (bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.counters), &idx, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

static int node_collect(struct ls_target *t, struct ls_target_snapshot *out)
{
	struct node_priv *p = t->priv;
	uint64_t now = ls_now_mono_ns();

	if (!p)
		return -EINVAL;
	out->runtime = p->plan.runtime;
	snprintf(out->tier, sizeof(out->tier), "%s", p->plan.tier);
	snprintf(out->note, sizeof(out->note), "%s", p->plan.note);
	snprintf(out->tier_why, sizeof(out->tier_why), "%s", p->plan.tier_why);
	snprintf(out->version, sizeof(out->version), "%s", p->version);
	if (p->plan.version)
		snprintf(out->libuv_version, sizeof(out->libuv_version), "%u.%u.%u", p->plan.version >> 16,
			 (p->plan.version >> 8) & 0xff, p->plan.version & 0xff);
	out->probe_hits = probe_counter(p, NU_CNT_HITS);
	out->traps = probe_counter(p, NU_CNT_TRAPS);
	if (p->ct)
		return nu__counters_collect(p, now, out);
	return nu__loops_collect(p, now, out);
}

static int node_episode_fd(struct ls_target *t)
{
	struct node_priv *p = t->priv;

	if (p && p->ct)
		return nu__counters_fd(p);
	return p && p->wake_fd >= 0 ? p->wake_fd : p && p->rb ? ring_buffer__epoll_fd(p->rb) : -1;
}

static int node_consume(struct ls_target *t, ls_episode_fn fn, void *arg)
{
	struct node_priv *p = t->priv;
	int r = 0;

	if (!p || (!p->rb && !p->ct))
		return 0;
	p->fn = fn;
	p->fn_arg = arg;
	if (p->ct) {
		nu__samples_consume(p);		/* before a tick ends an episode */
		nu__counters_consume(p);
	} else {
		nu__samples_consume(p);
		r = ring_buffer__consume(p->rb);
	}
	p->fn = NULL;
	p->fn_arg = NULL;
	return r < 0 ? r : 0;
}

static uint64_t node_probe_hits(struct ls_target *t) { return probe_counter(t->priv, NU_CNT_HITS); }
static uint64_t node_drops(struct ls_target *t) { return probe_counter(t->priv, NU_CNT_DROPS); }

const struct ls_backend_ops ls_backend_node = {
	.name = "node",
	.match = node_match,
	.attach = node_attach,
	.collect = node_collect,
	.episode_fd = node_episode_fd,
	.consume = node_consume,
	.probe_hits = node_probe_hits,
	.drops = node_drops,
	.detach = node_detach,
};
