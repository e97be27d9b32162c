/* refloop.c: the user side of the reference-loop probe set (bpf/refloop.bpf.c).
 *
 * A backend of the agent (agent.h): loads one copy of the probe set per traced
 * process, attaches it to the loop's USDT probes, turns the kernel's per-thread
 * aggregates into ls_loop_snapshot, and delivers episodes: finished ones from the
 * ring buffer, and ones still in progress from the loop's live state, which it reads
 * straight from the target's memory (the record whose address poll_start handed
 * over) with process_vm_readv. That read costs the target nothing.
 *
 * Stacks: a cpu-clock sampler on every CPU (sampler.h, rl_sample) sends the loop
 * thread's stack while a phase run has lasted a quarter of the stall threshold;
 * each run's samples are counted per stack (named by unwind.h: the loop's C
 * functions, libc, the kernel) and a finished episode gets its run's stacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "calib.h"
#include "elf.h"
#include "image.h"
#include "links.h"
#include "proc.h"
#include "refloop.h"
#include "stack_raw.h"	/* struct ls_leaf, in the skeleton's .bss */
#include "refloop.skel.h"
#include "sampler.h"
#include "stacktab.h"
#include "unwind.h"

_Static_assert(REFLOOP_EP_STALL == LS_EP_STALL, "episode kinds");
_Static_assert(REFLOOP_EP_TICK_STARVATION == LS_EP_TICK_STARVATION, "episode kinds");
_Static_assert(REFLOOP_EP_MICROTASK_STARVATION == LS_EP_MICROTASK_STARVATION, "episode kinds");
_Static_assert((int)LSL_PROBE_NPHASES == (int)LS_NPHASES, "phase numbering");
_Static_assert((int)LSL_PROBE_NONE == (int)LS_PHASE_NONE, "phase numbering");
_Static_assert((int)LSL_DRAIN_TICKS == (int)LS_DRAIN_TICKS, "drain numbering");
_Static_assert((int)LSL_DRAIN_MICROTASKS == (int)LS_DRAIN_MICROTASKS, "drain numbering");

/* Attach order. poll_start goes LAST: loopdemo --wait-attach starts its workload when
 * poll_start's semaphore rises, and by then every other probe must be live. The
 * program names equal the probe names. */
static const char *const attach_table[] = {
	"timer_fired", "tick_drain_end", "microtask_drain_end", "poll_start",
};
#define NATTACH (sizeof(attach_table) / sizeof(attach_table[0]))

/* The start of the latest episode seen (announced or finished) per loop thread and
 * kind: an episode is announced once, and not again when the record still shows its
 * drain for a moment after the ring buffer said it ended. */
#define MAX_LIVE (REFLOOP_MAX_LOOPS * 3)

struct live_ep {
	uint32_t tid, kind;
	uint64_t start_ns;
};

/* Stack sampling: the rate while the sampler runs (always: rl_sample returns at once
 * outside a long phase run, so a loop that does not stall pays only the ticks that
 * land on it); past a quarter of the threshold, a 100 ms stall gets ~37 samples. */
#define SAMPLE_HZ 499
#define MAX_SPANS 8		/* phase runs whose samples are kept until they end */
#define MAX_FRAMES (LS_RAW_DEPTH + LS_RAW_KDEPTH + 1)
#define EPISODE_STACKS 5	/* stacks kept per episode */

/* The samples of one long phase run (tid, its start), until it ends or not. */
struct run_samples {
	struct ls_stack_span sp;	/* first: the slot as core/stacktab.h sees it */
	char where[192];		/* its latest sample's function (live_where) */
	uint64_t where_ns;
};

struct refloop_priv {
	struct refloop *skel;
	struct bpf_link *links[NATTACH];
	struct ring_buffer *rb;		/* the samples ring, then the episodes ring */
	struct ls_sampler sampler;
	struct ls_stacktab *tab;
	struct ls_unwinder *unw;
	struct ls_frame *fbuf;		/* MAX_FRAMES scratch */
	struct run_samples runs[MAX_SPANS];
	int profile;			/* LS_PROFILE_* */
	void (*on_stack)(void *arg, int32_t pid, uint32_t tid, const struct ls_frame *f, uint32_t n);
	void *stack_arg;
	char sample_why[160];		/* why there are no stacks, or "" */
	const char *provider;		/* the probe sites attached: LSL_PROBE_PROVIDER or _NOP5 */
	char site_why[160];		/* which, and the figures that chose it */
	char exe[256];			/* the loop's binary: its frames say where a run is */
	struct refloop_loop *val;	/* scratch for one map value (too big for the stack) */
	pid_t pid;
	uint64_t threshold_ns;
	uint64_t attach_ns;		/* the probe set's attach_ns (rodata) */
	/* Set only while consume() runs: where episodes go. */
	ls_episode_fn fn;
	void *fn_arg;
	struct live_ep live[MAX_LIVE];
	unsigned nlive;
	/* Thread names seen while the threads lived: a loop thread that ends before the
	 * next snapshot keeps its name. With each, its record's address (refreshed by
	 * every collect, checked before an announcement), and the busy and idle time
	 * it was last reported with (see report_monotonic). */
	struct {
		uint32_t tid;
		char name[16];
		uint64_t record;
		uint64_t busy_ns, idle_ns;
	} names[REFLOOP_MAX_LOOPS];
	unsigned nnames;
	/* probe_hits and drops summed over the loops by the latest collect (which has
	 * read every value anyway): the agent asks right after it, and a second and third
	 * pass over ~70 KB values per loop was most of an idle exporter's CPU. */
	uint64_t sum_hits, sum_drops;
	int sums_valid;
};

static int seed_from_registry(struct refloop_priv *p, const struct ls_target_info *ti);

static int refloop_match(const struct ls_target_info *ti)
{
	return (ti->found & LS_FOUND_LSL_USDT) != 0;
}

/* Record (tid, kind)'s latest episode start; 1 if it was already the latest. */
static int seen_episode(struct refloop_priv *p, uint32_t tid, uint32_t kind, uint64_t start)
{
	for (unsigned i = 0; i < p->nlive; i++) {
		if (p->live[i].tid == tid && p->live[i].kind == kind) {
			if (p->live[i].start_ns == start)
				return 1;
			p->live[i].start_ns = start;
			return 0;
		}
	}
	if (p->nlive == MAX_LIVE)	/* more threads than slots: forget the oldest */
		memmove(&p->live[0], &p->live[1], sizeof(p->live[0]) * --p->nlive);
	p->live[p->nlive++] = (struct live_ep){ .tid = tid, .kind = kind, .start_ns = start };
	return 0;
}

/* When the loop's latest poll wait returned: the record says it first (the kernel
 * side learns it at the next poll entry). */
static uint64_t poll_returned(const struct refloop_loop *v, const struct lsl_probe_record *rec)
{
	return rec && rec->poll_return_ns > v->poll_end_ns ? rec->poll_return_ns : v->poll_end_ns;
}

/* Run (tid, start)'s samples; create: make it, dropping the oldest run when full. */
static struct run_samples *run_get(struct refloop_priv *p, uint32_t tid, uint64_t start, int create)
{
	return (struct run_samples *)ls_stack_span_get(p->runs, MAX_SPANS, sizeof(p->runs[0]), tid, start, create);
}

static void run_drop(struct run_samples *r)
{
	ls_stack_span_drop(&r->sp, sizeof(*r));
}

/* "[native] fn" for the leaf-most frame of the loop's own binary (its callback, past
 * libc's and the vDSO's leaves), else the leaf's. */
static void describe_where(const struct refloop_priv *p, const struct ls_frame *f, uint32_t n, char *out,
			   size_t len)
{
	out[0] = 0;
	for (uint32_t i = 0; i < n; i++)
		if (f[i].kind == LS_FRAME_NATIVE && f[i].module && !strcmp(f[i].module, p->exe)) {
			snprintf(out, len, "[native] %s", f[i].function);
			return;
		}
	if (n)
		snprintf(out, len, "[native] %s", f[0].function);
}

static int on_sample(void *ctx, void *data, size_t len)
{
	struct refloop_priv *p = ctx;
	const struct ls_raw *r = data;
	struct run_samples *run;
	uint32_t n;

	if (len < offsetof(struct ls_raw, pc) || r->type != LS_RAW_SAMPLE || !p->unw)
		return 0;
	n = ls_unwind(p->unw, r, len, p->fbuf, MAX_FRAMES);
	if (!n)
		return 0;
	if (p->profile == LS_PROFILE_ALL && p->on_stack)
		p->on_stack(p->stack_arg, p->pid, r->tid, p->fbuf, n);
	if (!r->span_start || r->time < r->span_start || r->time - r->span_start < p->threshold_ns / 4)
		return 0;	/* a profile's sample outside a long run */
	run = run_get(p, r->tid, r->span_start, 1);
	if (!run)
		return 0;
	ls_stack_agg_add(run->sp.agg, p->fbuf, n, 1);
	describe_where(p, p->fbuf, n, run->where, sizeof(run->where));
	run->where_ns = r->time;
	return 0;
}

/* A finished episode gets the stacks of its run: a stall, the run it is (the same
 * start); a starvation, the run its drain ran inside (it ends first: the run's
 * stall, if any, takes the stacks again at the next poll entry). */
static void attach_stacks(struct refloop_priv *p, struct ls_episode *ep)
{
	struct run_samples *run = NULL;

	if (ep->kind == LS_EP_STALL) {
		run = run_get(p, ep->tid, ep->start_ns, 0);
	} else {
		for (size_t i = 0; i < MAX_SPANS; i++)
			if (p->runs[i].sp.agg && p->runs[i].sp.tid == ep->tid && p->runs[i].sp.start <= ep->start_ns &&
			    (!run || p->runs[i].sp.start > run->sp.start))
				run = &p->runs[i];
	}
	if (!run)
		return;
	ep->samples = (uint32_t)ls_stack_agg_total(run->sp.agg);
	if (p->tab)
		ep->stacks = ls_stack_agg_finish(run->sp.agg, p->tab,
						 p->profile == LS_PROFILE_STALLS ? UINT32_MAX : EPISODE_STACKS);
	if (ep->kind != LS_EP_STALL)
		return;
	run_drop(run);
	/* older runs of this loop ended without becoming episodes */
	for (size_t i = 0; i < MAX_SPANS; i++)
		if (p->runs[i].sp.agg && p->runs[i].sp.tid == ep->tid && p->runs[i].sp.start < ep->start_ns)
			run_drop(&p->runs[i]);
}

static int on_ringbuf(void *ctx, void *data, size_t len)
{
	struct refloop_priv *p = ctx;
	const struct refloop_episode *e = data;
	struct ls_episode ep;

	if (len < sizeof(*e))
		return 0;
	seen_episode(p, e->tid, e->kind, e->start_ns);
	memset(&ep, 0, sizeof(ep));
	ep.pid = p->pid;
	ep.tid = e->tid;
	ep.kind = e->kind;
	ep.phase = e->phase;
	ep.start_ns = e->start_ns;
	ep.end_ns = e->end_ns;
	ep.callbacks = e->callbacks;
	attach_stacks(p, &ep);	/* the samples ring comes first in rb: its samples are in */
	if (p->fn)
		p->fn(&ep, p->fn_arg);
	return 0;
}

static void refloop_detach(struct ls_target *t)
{
	struct refloop_priv *p = t->priv;

	if (!p)
		return;
	ls_sampler_close(&p->sampler);
	ls_links_destroy(p->links, NATTACH, NULL, 0);	/* any order: each probe checks the state it needs */
	ring_buffer__free(p->rb);
	for (size_t i = 0; i < MAX_SPANS; i++)
		ls_stack_agg_free(p->runs[i].sp.agg);
	ls_unwinder_free(p->unw);
	free(p->fbuf);
	refloop__destroy(p->skel);
	free(p->val);
	free(p);
	t->priv = NULL;
}

/* The stack sampler and what names its samples. Without them the loop is measured
 * all the same: the reason goes into the target's note. */
static void add_stacks(struct refloop_priv *p, const struct ls_target_info *ti, const struct ls_agent_opts *opts)
{
	int r;

	/* as its mapping names it: the resolved path, not /proc/PID/exe */
	snprintf(p->exe, sizeof(p->exe), "%s", ti->lib[0] && strcmp(ti->lib, ti->exe_proc) ? ti->lib : ti->exe);
	p->profile = opts->profile;
	p->on_stack = opts->on_stack;
	p->stack_arg = opts->stack_arg;
	p->tab = ls_stacks_table();
	p->fbuf = calloc(MAX_FRAMES, sizeof(*p->fbuf));
	if (!p->tab || !p->fbuf) {
		snprintf(p->sample_why, sizeof(p->sample_why), "no stack samples: out of memory");
		return;
	}
	r = ls_unwinder_new(ti->pid, NULL, 0, p->tab, &p->unw);
	if (r) {
		snprintf(p->sample_why, sizeof(p->sample_why), "no stack samples: %s", strerror(-r));
		return;
	}
	ls_unwinder_set_leaves(p->unw, p->skel->bss->leaves);
	p->skel->bss->raw_all = opts->profile == LS_PROFILE_ALL;
	p->skel->bss->raw_on = 1;
	r = ls_sampler_open(&p->sampler, p->skel->progs.rl_sample, SAMPLE_HZ, 0);
	if (r) {
		p->skel->bss->raw_on = 0;
		snprintf(p->sample_why, sizeof(p->sample_why), "no stack samples (perf event: %s)", strerror(-r));
	}
}

/* Which of the loop's two sites per probe to attach (lsl_internal.h): the 5-byte nop
 * where `loopscope calibrate` measured a hit there cheaper than on the 1-byte one,
 * else the 1-byte nop. LOOPSCOPE_USDT=nop1|nop5 forces one. A loop built before the
 * 5-byte sites has only the 1-byte ones. */
static void choose_sites(struct refloop_priv *p, const char *path)
{
	const char *force = getenv("LOOPSCOPE_USDT");
	struct ls_elf *e = NULL;
	struct ls_calib c;
	char err[256];
	int have5, nop5;

	p->provider = LSL_PROBE_PROVIDER;
	have5 = ls_elf_open(path, &e) == 0 && ls_elf_has_usdt_provider(e, LSL_PROBE_PROVIDER_NOP5);
	ls_elf_close(e);
	if (!have5) {
		snprintf(p->site_why, sizeof(p->site_why), "probes on 1-byte nops (the loop has no 5-byte sites)");
		return;
	}
	if (force && (!strcmp(force, "nop1") || !strcmp(force, "nop5"))) {
		if (!strcmp(force, "nop5"))
			p->provider = LSL_PROBE_PROVIDER_NOP5;
		snprintf(p->site_why, sizeof(p->site_why), "probes on %s-byte nops (LOOPSCOPE_USDT)", force + 3);
		return;
	}
	if (ls_calib_get(&c, 0, err, sizeof(err))) {
		snprintf(p->site_why, sizeof(p->site_why), "probes on 1-byte nops (no calibration: %.100s)", err);
		return;
	}
	nop5 = c.usdt_nop5_hit_ns > 0 && c.usdt_nop5_hit_ns < c.usdt_hit_ns;
	if (nop5)
		p->provider = LSL_PROBE_PROVIDER_NOP5;
	snprintf(p->site_why, sizeof(p->site_why), "probes on %s-byte nops (calibrated: a hit %.2f us on a 5-byte nop, "
		 "%.2f us on a 1-byte nop)", nop5 ? "5" : "1", c.usdt_nop5_hit_ns / 1e3,
		 c.usdt_hit_ns / 1e3);
}

static int refloop_attach(struct ls_target *t, const struct ls_target_info *ti,
			  const struct ls_agent_opts *opts, char *err, size_t errlen)
{
	struct refloop_priv *p;
	const char *path = ti->lib[0] ? ti->lib : ti->exe_proc;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->priv = p;
	p->pid = ti->pid;
	p->threshold_ns = opts->stall_threshold_ns;
	p->val = malloc(sizeof(*p->val));
	if (!p->val) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto cleanup;
	}
	p->skel = refloop__open();
	if (!p->skel) {
		r = -errno;
		snprintf(err, errlen, "cannot open the reference-loop BPF object: %s", strerror(-r));
		goto cleanup;
	}
	bpf_map__set_max_entries(p->skel->maps.samples, ls_samples_ring_bytes(opts->profile));
	p->skel->rodata->targ_tgid = (__u32)ti->pid;
	p->skel->rodata->stall_threshold_ns = opts->stall_threshold_ns;
	{
		uint64_t lo, hi;

		/* the loop's code: where a stack scan may accept a return address */
		if (!ls_proc_code_range(ti->pid, path, &lo, &hi)) {
			p->skel->rodata->text_lo = lo;
			p->skel->rodata->text_hi = hi;
		}
	}
	p->attach_ns = p->skel->rodata->attach_ns = ls_now_mono_ns();
	r = refloop__load(p->skel);
	if (r) {
		if (r == -EPERM)	/* -EACCES is the verifier saying no */
			snprintf(err, errlen, "not permitted to load BPF programs: %s", ls_perm_advice());
		else
			snprintf(err, errlen, "loading the reference-loop BPF programs failed: %s "
				 "(run with -v for the verifier log)", strerror(-r));
		goto cleanup;
	}
	/* Before the probes (poll_start may start a --wait-attach workload): the sampler
	 * finds no loop until a poll entry gives it the record. */
	add_stacks(p, ti, opts);
	choose_sites(p, path);
	/* Before the probes: a poll_start then finds the entry and keeps its record. */
	r = seed_from_registry(p, ti);
	if (r < 0 && opts->verbose)
		fprintf(stderr, "loopscope: process %d: no loop registry (%s); loops appear at their "
			"next poll entry\n", (int)ti->pid, strerror(-r));
	for (size_t i = 0; i < NATTACH; i++) {
		struct bpf_program *prog = bpf_object__find_program_by_name(p->skel->obj, attach_table[i]);

		if (!prog) {
			r = -ENOENT;
			snprintf(err, errlen, "internal: no BPF program %s", attach_table[i]);
			goto cleanup;
		}
		p->links[i] = bpf_program__attach_usdt(prog, ti->pid, path, p->provider, attach_table[i], NULL);
		if (!p->links[i]) {
			r = -errno;
			if (r == -EPERM || r == -EACCES)
				snprintf(err, errlen, "not permitted to attach uprobes to process %d: %s",
					 (int)ti->pid, ls_perm_advice());
			else if (r == -ESRCH)
				snprintf(err, errlen, "process %d exited while attaching", (int)ti->pid);
			else
				snprintf(err, errlen, "attaching USDT probe %s:%s in %s failed: %s",
					 p->provider, attach_table[i], ti->exe, strerror(-r));
			goto cleanup;
		}
	}
	/* samples first: consume() then names an episode's samples before the episode */
	p->rb = ring_buffer__new(bpf_map__fd(p->skel->maps.samples), on_sample, p, NULL);
	if (!p->rb || ring_buffer__add(p->rb, bpf_map__fd(p->skel->maps.episodes), on_ringbuf, p)) {
		r = -errno;
		snprintf(err, errlen, "cannot open the episode ring buffer: %s", strerror(-r));
		goto cleanup;
	}
	return 0;
cleanup:
	refloop_detach(t);
	return r < 0 ? r : -EINVAL;
}

/* File offset of symbol name's bytes in the ELF at path (in initialized data). 0 or
 * -errno (-ENOENT: no such symbol, e.g. a liblsl older than the registry). */
static int symbol_file_offset(const char *path, const char *name, uint64_t *off)
{
	struct ls_elf_sym sym;
	const struct ls_elf_want want = { name, &sym };
	struct ls_elf *e = NULL;
	int r;

	r = ls_elf_open(path, &e);
	if (r)
		return r;
	r = ls_elf_lookup(e, &want, 1) == 1 ? ls_elf_file_offset(e, sym.addr, off) : -ENOENT;
	ls_elf_close(e);
	return r;
}

/*
 * The loops running in the target right now, from liblsl's registry (ABI in
 * lsl_probes.h): each gets its `loops` entry with the record address before any
 * probe fires, so a stall already in progress at the attach is seen live. Best
 * effort: a target without the registry is learned at poll_start as before.
 * Returns how many loops were registered, or -errno.
 */
static int seed_from_registry(struct refloop_priv *p, const struct ls_target_info *ti)
{
	const char *elf = ti->lib[0] ? ti->lib : ti->exe_proc;
	const char *mapped = !ti->lib[0] || !strcmp(ti->lib, ti->exe_proc) ? ti->exe : ti->lib;
	struct lsl_probe_registry reg;
	uint64_t off = 0, addr = 0;
	int fd = bpf_map__fd(p->skel->maps.loops), r, n = 0;

	r = symbol_file_offset(elf, LSL_PROBE_REGISTRY_SYMBOL, &off);
	if (r)
		return r;
	r = ls_proc_file_addr(p->pid, &(struct ls_proc_file){ .path = mapped }, off, &addr);
	if (r)
		return r;
	if (ls_proc_read_mem(p->pid, addr, &reg, sizeof(reg)))
		return -EIO;
	if (reg.abi != LSL_PROBE_ABI || reg.max != LSL_PROBE_REGISTRY_MAX)
		return -EPROTO;
	for (int i = 0; i < LSL_PROBE_REGISTRY_MAX; i++) {
		uint32_t tid = reg.slot[i].tid;

		if (!tid || !reg.slot[i].record)
			continue;
		memset(p->val, 0, sizeof(*p->val));
		p->val->record = reg.slot[i].record;
		/* NOEXIST: a poll_start that got there first holds the same record. */
		if (bpf_map_update_elem(fd, &tid, p->val, BPF_NOEXIST) == 0 || errno == EEXIST)
			n++;
	}
	return n;
}

/* The loop's live record, read from the target (never written; ls_proc_read_mem()
 * goes through the /proc/PID/mem the agent holds from attach, so it still reads after
 * a privilege drop). 0 or -errno. */
static int read_record(const struct refloop_priv *p, uint64_t addr, struct lsl_probe_record *rec)
{
	int r;

	if (!addr)
		return -ENOENT;
	r = ls_proc_read_mem(p->pid, addr, rec, sizeof(*rec));
	if (r)
		return r;
	if (rec->abi != LSL_PROBE_ABI)
		return -EPROTO;
	return 0;
}

static void fill_drain(struct ls_drain_stats *d, const struct refloop_drain *s)
{
	d->drains = s->drains;
	d->callbacks = s->callbacks;
	d->starvation_episodes = s->starvation_episodes;
	d->duration = s->duration;
	d->per_drain = s->per_drain;
}

/* tid's slot in names, or REFLOOP_MAX_LOOPS if it has none. */
static unsigned name_slot(const struct refloop_priv *p, uint32_t tid)
{
	for (unsigned i = 0; i < p->nnames; i++)
		if (p->names[i].tid == tid)
			return i;
	return REFLOOP_MAX_LOOPS;
}

/* prev_name: what the thread was called at the last collect (NULL if new), kept
 * when the thread is gone (the final collect after an exit). */
/* Where the phase run in progress is, from its latest sample (the run the sampler
 * keys its samples by: the phase's start, or for poll the wait's return). */
static void live_where(const struct refloop_priv *p, uint32_t tid, const struct refloop_loop *v,
		       const struct lsl_probe_record *rec, struct ls_loop_snapshot *o)
{
	uint64_t since = rec->live_phase_since_ns;

	if (rec->live_phase >= LS_NPHASES || !since)
		return;
	if (rec->live_phase == LS_PHASE_POLL && poll_returned(v, rec) >= since)
		since = poll_returned(v, rec);
	for (size_t i = 0; i < MAX_SPANS; i++)
		if (p->runs[i].sp.agg && p->runs[i].sp.tid == tid && p->runs[i].sp.start == since && p->runs[i].where[0]) {
			snprintf(o->live_where, sizeof(o->live_where), "%s", p->runs[i].where);
			o->live_where_ns = p->runs[i].where_ns;
		}
}

/* busy and idle time never go backwards between two snapshots of a loop. The span
 * in progress that fill_loop adds is normally added by the kernel at the next poll
 * entry, at least as long; but a loop that ends in a wait, or a thread that starts
 * another loop (a new record), never has that entry. Reporting less than last time
 * would read as a restarted counter, and an interval would count the whole total
 * again (seen: poll wait summed over -i 1 intervals at twice the loop's own). The
 * time reported was true up to its snapshot, so it stays. */
static void report_monotonic(struct refloop_priv *p, unsigned slot, struct ls_loop_snapshot *o)
{
	if (o->busy_ns < p->names[slot].busy_ns)
		o->busy_ns = p->names[slot].busy_ns;
	if (o->idle_ns < p->names[slot].idle_ns)
		o->idle_ns = p->names[slot].idle_ns;
	p->names[slot].busy_ns = o->busy_ns;
	p->names[slot].idle_ns = o->idle_ns;
}

static void fill_loop(struct refloop_priv *p, uint32_t tid, const struct refloop_loop *v,
		      const char *prev_name, struct ls_loop_snapshot *o)
{
	struct lsl_probe_record rec;
	uint64_t now = ls_now_mono_ns(), ret;
	int alive, have_rec;

	memset(o, 0, sizeof(*o));
	o->tid = tid;
	alive = ls_proc_thread_comm(p->pid, tid, o->name, sizeof(o->name)) == 0;
	if (!alive) {
		unsigned slot = name_slot(p, tid);
		const char *cached = slot < REFLOOP_MAX_LOOPS ? p->names[slot].name : NULL;

		if (!cached)
			cached = prev_name;
		if (cached)
			memcpy(o->name, cached, sizeof(o->name));
		else
			snprintf(o->name, sizeof(o->name), "%u", tid);
	}
	o->has = LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_TIMERS | LS_HAS_DRAINS | LS_HAS_EPISODES;
	o->iterations = v->iterations;
	o->busy_ns = v->busy_ns;
	o->idle_ns = v->idle_ns;
	for (int i = 0; i < LS_NPHASES; i++)
		o->phase[i] = v->phase[i];
	o->iteration = v->iteration;
	o->delay = v->delay;
	o->poll_wait = v->poll_wait;
	o->timer_lateness = v->timer_lateness;
	fill_drain(&o->ticks, &v->ticks);
	fill_drain(&o->microtasks, &v->microtasks);
	o->stall_episodes = v->stall_episodes;

	o->live_phase = LS_PHASE_NONE;
	have_rec = read_record(p, v->record, &rec) == 0;
	ret = poll_returned(v, have_rec ? &rec : NULL);
	if (!v->poll_start_ns) {
		o->live_state = LS_LIVE_UNKNOWN;
	} else if (v->poll_start_ns > ret) {
		o->live_state = LS_LIVE_POLLING;
		o->live_since_ns = v->poll_start_ns;
	} else {
		o->live_state = LS_LIVE_RUNNING;
		o->live_since_ns = ret;
	}
	if (have_rec) {
		o->live_phase = rec.live_phase < LS_NPHASES ? rec.live_phase : LS_PHASE_NONE;
		/* Known from the registry, no poll entry yet: the record says what runs. */
		if (o->live_state == LS_LIVE_UNKNOWN && o->live_phase != LS_PHASE_NONE &&
		    o->live_phase != LS_PHASE_POLL) {
			o->live_state = LS_LIVE_RUNNING;
			o->live_since_ns = rec.live_phase_since_ns;
		}
		o->live_phase_since_ns = rec.live_phase_since_ns;
		live_where(p, tid, v, &rec, o);
		if (rec.live_drain == LSL_DRAIN_TICKS || rec.live_drain == LSL_DRAIN_MICROTASKS) {
			o->live_drain = rec.live_drain;
			o->live_drain_since_ns = rec.live_drain_since_ns;
			o->live_drain_callbacks = rec.live_drain_callbacks;
		}
		/* busy/idle as of now, not as of the last poll entry: a loop blocked for
		 * seconds shows as busy while it blocks. The kernel adds the wait and the
		 * span since it at the next poll entry, which is at least this much, so
		 * the counters stay monotonic. Only for a live thread (a dead one's span
		 * never ends). */
		if (alive && v->poll_start_ns && o->live_state == LS_LIVE_RUNNING && now > ret) {
			o->busy_ns += now - ret;
			if (ret > v->poll_start_ns)	/* the wait the kernel has not added yet */
				o->idle_ns += ret - v->poll_start_ns;
		} else if (alive && !v->poll_start_ns && o->live_state == LS_LIVE_RUNNING) {
			/* From the registry, no poll entry yet: what the kernel will add at
			 * the first one (busy since the attach, or since the return of a wait in progress then). */
			uint64_t from = ret > p->attach_ns ? ret : p->attach_ns;

			if (now > from)
				o->busy_ns += now - from;
		} else if (alive && o->live_state == LS_LIVE_POLLING && now > v->poll_start_ns) {
			o->idle_ns += now - v->poll_start_ns;
		}
	}
}

static int refloop_fill(void *ctx, uint32_t tid, const void *val, const char *prev_name,
			struct ls_loop_snapshot *o)
{
	struct refloop_priv *p = ctx;
	const struct refloop_loop *v = val;
	unsigned slot = name_slot(p, tid);

	fill_loop(p, tid, v, prev_name, o);
	if (slot < REFLOOP_MAX_LOOPS) {
		p->names[slot].record = v->record;
		report_monotonic(p, slot, o);
	}
	p->sum_hits += v->probe_hits;
	p->sum_drops += v->drops;
	return 0;
}

static int refloop_collect(struct ls_target *t, struct ls_target_snapshot *out)
{
	struct refloop_priv *p = t->priv;
	int r;

	snprintf(out->tier, sizeof(out->tier), "usdt");
	snprintf(out->note, sizeof(out->note), "%.150s%s%.160s", p->sample_why, p->sample_why[0] ? "; " : "",
		 p->site_why);
	out->untracked_hits = p->skel->bss->untracked_hits;
	if (out->untracked_hits)
		snprintf(out->note, sizeof(out->note), "loop threads beyond the first %d are not measured "
			 "(%llu probe hits dropped)", REFLOOP_MAX_LOOPS, (unsigned long long)out->untracked_hits);
	p->sum_hits = p->sum_drops = 0;
	r = ls_collect_loops(bpf_map__fd(p->skel->maps.loops), p->val, REFLOOP_MAX_LOOPS, refloop_fill, p, out);
	p->sums_valid = r == 0;
	/* every program here runs from a USDT hit: each is a trap */
	out->probe_hits = out->traps = p->sum_hits + p->skel->bss->untracked_hits;
	return r;
}

static int refloop_episode_fd(struct ls_target *t)
{
	struct refloop_priv *p = t->priv;

	return p && p->rb ? ring_buffer__epoll_fd(p->rb) : -1;
}

/* Announce an episode in progress once (end_ns = 0); the ring buffer finishes it. */
static void announce(struct refloop_priv *p, uint32_t tid, uint32_t kind, uint32_t phase,
		     uint64_t start, uint64_t callbacks)
{
	struct ls_episode ep;

	if (seen_episode(p, tid, kind, start))
		return;
	memset(&ep, 0, sizeof(ep));
	ep.pid = p->pid;
	ep.tid = tid;
	ep.kind = kind;
	ep.phase = phase;
	ep.start_ns = start;
	ep.callbacks = callbacks;
	if (p->fn)
		p->fn(&ep, p->fn_arg);
}

/* Remember a loop thread's name the first time it is seen (O(loops), at most 16).
 * Returns its slot in names, or REFLOOP_MAX_LOOPS when it has none. */
static unsigned learn_name(struct refloop_priv *p, uint32_t tid)
{
	unsigned slot = name_slot(p, tid);

	if (slot < REFLOOP_MAX_LOOPS || p->nnames == REFLOOP_MAX_LOOPS)
		return slot;
	if (ls_proc_thread_comm(p->pid, tid, p->names[p->nnames].name, sizeof(p->names[0].name)))
		return REFLOOP_MAX_LOOPS;
	p->names[p->nnames].record = 0;
	p->names[p->nnames].busy_ns = p->names[p->nnames].idle_ns = 0;
	p->names[p->nnames].tid = tid;
	return p->nnames++;
}

/* Stalls and starvation still in progress, from each loop's live record. Runs every
 * agent poll for every target: the loop's map value (~70 KB) is read only when the
 * record shows a phase running longer than the threshold (its poll state decides). */
static void check_live(struct refloop_priv *p)
{
	int fd = bpf_map__fd(p->skel->maps.loops);
	uint64_t now = ls_now_mono_ns();
	uint32_t key, next;
	int r;

	r = bpf_map_get_next_key(fd, NULL, &next);
	while (r == 0) {
		struct lsl_probe_record rec;
		const struct refloop_loop *v = NULL;
		unsigned slot;
		uint64_t record, s;

		key = next;
		r = bpf_map_get_next_key(fd, &key, &next);
		slot = learn_name(p, key);
		record = slot < REFLOOP_MAX_LOOPS ? p->names[slot].record : 0;
		if (!record) {
			if (bpf_map_lookup_elem(fd, &key, p->val))
				continue;
			v = p->val;
			record = v->record;
			if (slot < REFLOOP_MAX_LOOPS)
				p->names[slot].record = record;
		}
		if (read_record(p, record, &rec))
			continue;
		s = rec.live_phase_since_ns;
		if (!v && ((rec.live_phase < LS_NPHASES && s && now > s && now - s > p->threshold_ns) ||
			   (rec.live_drain != LSL_DRAIN_NONE && rec.live_drain_since_ns &&
			    now > rec.live_drain_since_ns && now - rec.live_drain_since_ns > p->threshold_ns))) {
			/* a candidate: the value says whether it is the poll wait, and that
			 * the cached record is still this thread's */
			if (bpf_map_lookup_elem(fd, &key, p->val))
				continue;
			v = p->val;
			if (v->record != record) {
				if (slot < REFLOOP_MAX_LOOPS)
					p->names[slot].record = v->record;
				continue;	/* a new loop on this thread: next poll */
			}
		}
		/* Before the first poll entry a poll phase cannot be told from its wait. */
		if (v && rec.live_phase < LS_NPHASES && s && !(rec.live_phase == LS_PHASE_POLL && !v->poll_start_ns)) {
			uint64_t ret = poll_returned(v, &rec);
			int polling = v->poll_start_ns > ret;

			/* The poll wait is idle, not a stall: only its callbacks count. */
			if (rec.live_phase == LS_PHASE_POLL && ret > s)
				s = ret;
			if (!(rec.live_phase == LS_PHASE_POLL && polling) && now > s && now - s > p->threshold_ns)
				announce(p, key, LS_EP_STALL, rec.live_phase, s, 0);
		}
		s = rec.live_drain_since_ns;
		if ((rec.live_drain == LSL_DRAIN_TICKS || rec.live_drain == LSL_DRAIN_MICROTASKS) && s && now > s &&
		    now - s > p->threshold_ns)
			announce(p, key,
				 ls_drain_starvation_kind(rec.live_drain),
				 rec.live_phase < LS_NPHASES ? rec.live_phase : LS_PHASE_NONE, s, rec.live_drain_callbacks);
	}
}

static int refloop_consume(struct ls_target *t, ls_episode_fn fn, void *arg)
{
	struct refloop_priv *p = t->priv;
	int r;

	p->fn = fn;
	p->fn_arg = arg;
	r = ring_buffer__consume(p->rb);
	if (r >= 0)
		check_live(p);
	p->fn = NULL;
	p->fn_arg = NULL;
	return r < 0 ? r : 0;
}

/* Sum one counter over every loop of the target. */
static uint64_t sum_loops(struct refloop_priv *p, size_t off)
{
	int fd = bpf_map__fd(p->skel->maps.loops);
	uint32_t key, next;
	uint64_t sum = 0;
	int r;

	r = bpf_map_get_next_key(fd, NULL, &next);
	while (r == 0) {
		key = next;
		if (bpf_map_lookup_elem(fd, &key, p->val) == 0)
			sum += *(const uint64_t *)((const char *)p->val + off);
		r = bpf_map_get_next_key(fd, &key, &next);
	}
	return sum;
}

/* BPF program runs, those of loop threads without a slot included (they cost the
 * target as much); those are reported on their own in the target's note. */
static uint64_t refloop_probe_hits(struct ls_target *t)
{
	struct refloop_priv *p = t->priv;

	return (p->sums_valid ? p->sum_hits : sum_loops(p, offsetof(struct refloop_loop, probe_hits))) +
	       p->skel->bss->untracked_hits;
}

static uint64_t refloop_drops(struct ls_target *t)
{
	struct refloop_priv *p = t->priv;

	return p->sums_valid ? p->sum_drops : sum_loops(p, offsetof(struct refloop_loop, drops));
}

const struct ls_backend_ops ls_backend_refloop = {
	.name = "refloop",
	.match = refloop_match,
	.attach = refloop_attach,
	.collect = refloop_collect,
	.episode_fd = refloop_episode_fd,
	.consume = refloop_consume,
	.probe_hits = refloop_probe_hits,
	.drops = refloop_drops,
	.detach = refloop_detach,
};
