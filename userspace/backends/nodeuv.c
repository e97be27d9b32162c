/* nodeuv.c: the Node.js / libuv backend (node.h, probes in bpf/nodeuv.bpf.c).
 *
 * attach() first makes a plan from the target's ELF alone (libuv.h: symbols,
 * version, offsets, Capstone-chosen sites), checks the loop offsets against the
 * live default loop, then loads one copy of the probe set per process and attaches
 * it in a fixed order: tracepoints, uprobes, per-CPU perf events. Anything that
 * fails on the way is torn down by detach(), so a failed attach leaves nothing.
 * The ops table is at the end.
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

/* The symbols of the plan (nodeuv_int.h: S_*). */
static const char *const sym_names[S_NSYMS] = {
	[S_UV_RUN] = "uv_run",
	[S_UV_VERSION] = "uv_version",
	[S_RUN_TIMERS] = "uv__run_timers",
	[S_RUN_IDLE] = "uv__run_idle",
	[S_RUN_PREPARE] = "uv__run_prepare",
	[S_IO_POLL] = "uv__io_poll",
	[S_RUN_CHECK] = "uv__run_check",
	[S_DEFAULT_LOOP] = "default_loop_struct",
	[S_MICROTASKS] = "_ZN2v88internal14MicrotaskQueue13RunMicrotasksEPNS0_7IsolateE",
	[S_CB_CLOSE] = "_ZN4node21InternalCallbackScope5CloseEv",
	/* the argument types changed across V8 versions: match the prefix */
	[S_COLLECT_GARBAGE] = "_ZN2v88internal4Heap14CollectGarbageENS0_15AllocationSpace*",
	[S_GC_PAUSE_START] = "_ZN2v88internal8GCTracer20StartObservablePauseE*",
	[S_GC_PAUSE_STOP] = "_ZN2v88internal8GCTracer19StopObservablePauseE*",
	/* naming loops and the runtime: node::per_process::metadata (versions.node first),
	 * node::AllocateEnvironmentThreadId(), its counter, and Worker's constructor */
	[S_METADATA] = "_ZN4node11per_process8metadataE",
	[S_ALLOC_THREAD_ID] = "_ZN4node27AllocateEnvironmentThreadIdEv",
	[S_NEXT_THREAD_ID] = "_ZN4nodeL14next_thread_idE",
	[S_WORKER_CTOR] = "_ZN4node6worker6WorkerC1E*",
	[S_TIMER_STOP] = "uv_timer_stop",
};

/* Names of enum poll_mode, as the plan and its note print them. */
static const char *const poll_mode_names[] = {
	[POLL_TRACEPOINTS] = "tracepoints",
	[POLL_EPOLL_UPROBES] = "epoll-uprobes",
	[POLL_ENTRY] = "poll-entry",
	[POLL_NONE] = "none",
};

static int node_match(const struct ls_target_info *ti)
{
	return ti->runtime == LS_RT_NODE || ti->runtime == LS_RT_LIBUV;
}

static void note_add(struct node_plan *pl, const char *text)
{
	size_t n = strlen(pl->note);

	snprintf(pl->note + n, sizeof(pl->note) - n, "%s%s", n ? "; " : "", text);
}

static const char *tier_or_default(const char *tier)
{
	return tier && *tier ? tier : LS_NODE_DEFAULT_TIER;
}

/* Where uv__io_poll calls epoll_pwait/epoll_wait: two emulated uprobes per call
 * instead of the syscall tracepoints. A tracepoint costs the loop less per poll, but
 * while one is attached every syscall of every process on the host goes through the
 * kernel's syscall-work path (bpf/README.md, "What a probe costs"; on a loopback HTTP
 * benchmark that was most of the light tier's cost). LOOPSCOPE_EPOLL_TRACEPOINTS=1 keeps the tracepoints
 * (and keeps that path testable). */
static void find_epoll_sites(const struct ls_elf *e, struct node_plan *pl)
{
	static const char *const imports[] = { "epoll_pwait", "epoll_wait", "epoll_pwait2" };
	uint64_t slots[3];
	int r;

	if (!pl->sym[S_IO_POLL].addr || ls_elf_import_slots(e, imports, 3, slots) <= 0)
		return;
	r = lu_import_call_sites(e, &pl->sym[S_IO_POLL], slots, 3, pl->epsites, MAX_EPSITES);
	if (r > 0)
		pl->nep = r;
}

/* The poll plan, where several mechanisms give the same numbers: the cheapest on
 * this machine by its calibration (calib.h, measured once per boot). The default
 * tier allows at most one trap per iteration, so the epoll uprobes (two a call)
 * are a candidate only in the phases tier, which pays eight anyway. Node polls
 * twice per idle iteration (timeout 0 first, UV_METRICS_IDLE_TIME), so a
 * tracepoint pair counts twice there. LOOPSCOPE_EPOLL=tracepoints|uprobes|entry
 * forces a mechanism where it is available (LOOPSCOPE_EPOLL_TRACEPOINTS=1 too). */
static void choose_poll(struct node_plan *pl, int phases)
{
	const char *force = getenv("LOOPSCOPE_EPOLL"), *tp = getenv("LOOPSCOPE_EPOLL_TRACEPOINTS");
	int entry_ok = pl->metrics_ok && (phases || pl->npoll > 0), up_ok = pl->nep > 0;
	double calls = pl->runtime == LS_RT_NODE ? 2 : 1, c_tp, c_entry, c_up;
	struct ls_calib c;
	char err[160];

	pl->have_epoll = 0;
	pl->poll_why[0] = 0;
	if (pl->counters) {
		pl->poll_mode = POLL_NONE;
		return;
	}
	if (tp && *tp && strcmp(tp, "0"))
		force = "tracepoints";
	if (force && *force) {
		if (!strcmp(force, "entry") && entry_ok)
			pl->poll_mode = POLL_ENTRY;
		else if (!strcmp(force, "uprobes") && up_ok)
			pl->poll_mode = POLL_EPOLL_UPROBES;
		else
			pl->poll_mode = POLL_TRACEPOINTS;
		snprintf(pl->poll_why, sizeof(pl->poll_why), "chosen by LOOPSCOPE_EPOLL");
		goto out;
	}
	/* In the phases tier the poll-entry boundary is probed anyway: reading libuv's
	 * counter there costs no extra hit. */
	if (phases && entry_ok) {
		pl->poll_mode = POLL_ENTRY;
		snprintf(pl->poll_why, sizeof(pl->poll_why), "at the poll_in boundary, no extra hit");
		goto out;
	}
	if (ls_calib_get(&c, 0, err, sizeof(err))) {
		/* no figures: one trap and no host-wide tax, or the tracepoints */
		pl->poll_mode = entry_ok && !phases ? POLL_ENTRY : POLL_TRACEPOINTS;
		snprintf(pl->poll_why, sizeof(pl->poll_why), "no calibration: %.100s", err);
		goto out;
	}
	c_tp = c.tp_pair_ns * calls;
	c_entry = c.uprobe_hit_ns;
	c_up = 2 * c.uprobe_hit_ns * calls;
	pl->poll_mode = POLL_TRACEPOINTS;
	if (!phases && entry_ok && c_entry < c_tp)
		pl->poll_mode = POLL_ENTRY;
	else if (phases && up_ok && c_up < c_tp)
		pl->poll_mode = POLL_EPOLL_UPROBES;
	if (!phases ? entry_ok : up_ok)
		snprintf(pl->poll_why, sizeof(pl->poll_why), "calibrated: tracepoints %.2f us/iteration, %s %.2f us",
			 c_tp / 1e3, !phases ? "poll-entry" : "epoll-uprobes", (!phases ? c_entry : c_up) / 1e3);
	else
		snprintf(pl->poll_why, sizeof(pl->poll_why), "the only one available");
out:
	pl->have_epoll = pl->poll_mode == POLL_EPOLL_UPROBES;
}

/* libuv's counters of the default loop read live: usable for the poll-entry plan
 * and for utilization when the loop keeps idle time (Node turns it on). */
static void check_metrics(const struct ls_target_info *ti, struct node_plan *pl)
{
	struct lu_metrics m = { 0 };

	pl->metrics_ok = 0;
	if (!pl->have_off || !pl->off.have_metrics || !pl->default_loop)
		return;
	if (!lu_metrics_read(ti->pid, pl->default_loop, &pl->off, &m) && (m.flags & LU_METRICS_IDLE_TIME))
		pl->metrics_ok = 1;
}

/* The note's last item: how the poll is timed and why. */
static void poll_note(struct node_plan *pl)
{
	char buf[240];

	snprintf(buf, sizeof(buf), "poll by %s (%s)", poll_mode_names[pl->poll_mode], pl->poll_why);
	note_add(pl, buf);
}

/* Everything decided from the target's ELF before anything is loaded. */
static int make_plan(const struct ls_target_info *ti, const char *tier, struct node_plan *pl, char *err,
		     size_t errlen)
{
	struct ls_elf_want want[S_NSYMS];
	struct ls_elf *e = NULL;
	struct lu_uv_callees callees;
	char missing[96], buf[160];
	int r, in_exe;

	memset(pl, 0, sizeof(*pl));
	tier = tier_or_default(tier);
	if (!ls_probe_tier_valid(tier)) {
		snprintf(err, errlen, "unknown probe tier '%s': use --probes light, phases or counters", tier);
		return -EINVAL;
	}
	pl->counters = !strcmp(tier, "counters");
	pl->runtime = ti->runtime == LS_RT_NODE ? LS_RT_NODE : LS_RT_LIBUV;
	in_exe = !ti->lib[0] || !strcmp(ti->lib, ti->exe_proc);
	snprintf(pl->path, sizeof(pl->path), "%s", in_exe ? ti->exe_proc : ti->lib);
	r = ls_elf_open(pl->path, &e);
	if (r) {
		snprintf(err, errlen, "cannot read %s (%s): %s", in_exe ? ti->exe : ti->lib, pl->path,
			 strerror(-r));
		return r;
	}
	for (int i = 0; i < S_NSYMS; i++) {
		want[i].name = sym_names[i];
		want[i].out = &pl->sym[i];
	}
	r = ls_elf_lookup(e, want, S_NSYMS);
	if (r < 0 || !pl->sym[S_UV_RUN].addr) {
		snprintf(err, errlen, "no uv_run symbol in %s: not a libuv program", in_exe ? ti->exe : ti->lib);
		r = r < 0 ? r : -ENOTSUP;
		goto cleanup;
	}
	if (ls_elf_is_pie(e)) {
		struct stat st;
		uint64_t base;

		if (!in_exe)
			pl->bias = ti->lib_base - ls_elf_first_vaddr(e);
		else if (!stat(pl->path, &st) &&
			 !ls_proc_file_addr(ti->pid, &(struct ls_proc_file){ .dev = st.st_dev, .ino = st.st_ino }, 0,
					    &base))
			pl->bias = base - ls_elf_first_vaddr(e);
	}
	if (lu_version(e, &pl->sym[S_UV_VERSION], &pl->version))
		pl->version = 0;

	/* uv_loop_t offsets: DWARF when the binary has it, else the version table; with
	 * no version at all (a static link that left uv_version out) the one layout
	 * 1.44-1.49 share, used only if the live default loop confirms it at attach. */
	if (!lu_offsets_dwarf(pl->path, &pl->off) || !lu_offsets_table(pl->version, &pl->off)) {
		pl->have_off = 1;
	} else if (!pl->version && !lu_offsets_table(0x012c00, &pl->off)) {
		pl->have_off = 1;
		pl->off_guessed = 1;
		snprintf(pl->off.source, sizeof(pl->off.source), "1.44-1.49 layout, version unknown");
	}

	if (pl->sym[S_DEFAULT_LOOP].addr)
		pl->default_loop = pl->sym[S_DEFAULT_LOOP].addr + pl->bias;
	if (pl->counters) {
		r = 0;
		check_metrics(ti, pl);
		if (!pl->metrics_ok) {
			snprintf(err, errlen, "--probes counters needs libuv's idle-time counter on the default loop "
				 "(Node.js, or UV_METRICS_IDLE_TIME) and its offsets: %s; use --probes light",
				 !pl->default_loop ? "no default_loop_struct symbol"
				 : !pl->have_off || !pl->off.have_metrics ? "offsets unknown for this libuv"
				 : pl->runtime == LS_RT_NODE ? "the loop does not keep idle time yet (Node turns it on as its "
							      "loop starts: attach again once it runs)"
									 : "the loop does not keep idle time");
			r = -ENOTSUP;
			goto cleanup;
		}
		snprintf(pl->tier, sizeof(pl->tier), "counters");
		choose_poll(pl, 0);
		note_add(pl, "counters: no probe in the loop; utilization and iterations from libuv's own "
			     "counters, delay only as busy time per iteration over each interval, stalls (main "
			     "loop) from counters that stop, named by stack samples taken only then");
		goto cleanup;
	}
	/* Timer lateness where a timer fires: uv__run_timers' first call of uv_timer_stop,
	 * once per timer it runs, right after the due check (a later call is
	 * uv_timer_again's, inlined, for repeating timers only: a second hit for the same
	 * timer). Its entry, a hit every iteration, only if there is no such call. */
	if (pl->sym[S_RUN_TIMERS].addr && pl->have_off && pl->sym[S_TIMER_STOP].addr) {
		r = lu_direct_call_sites(e, &pl->sym[S_RUN_TIMERS], pl->sym[S_TIMER_STOP].addr, 0, pl->tfire,
					 MAX_PSITES);
		pl->ntf = r > 0 ? 1 : 0;
		for (int i = 1; i < r && r <= MAX_PSITES; i++)
			if (pl->tfire[i].vaddr < pl->tfire[0].vaddr)
				pl->tfire[0] = pl->tfire[i];
	}
	if (!pl->ntf && pl->sym[S_RUN_TIMERS].addr && pl->have_off &&
	    !lu_entry_site(e, &pl->sym[S_RUN_TIMERS], &pl->timers))
		pl->have_timers = 1;
	if (pl->ntf)
		pl->have_timers = 1;
	find_epoll_sites(e, pl);
	if (pl->sym[S_IO_POLL].addr) {
		r = lu_direct_call_sites(e, &pl->sym[S_UV_RUN], pl->sym[S_IO_POLL].addr, 0, pl->psites, MAX_PSITES);
		pl->npoll = r > 0 ? r : 0;
	}
	check_metrics(ti, pl);

	if (!strcmp(tier, "phases")) {
		callees = (struct lu_uv_callees){
			.run_idle = pl->sym[S_RUN_IDLE].addr, .run_prepare = pl->sym[S_RUN_PREPARE].addr,
			.io_poll = pl->sym[S_IO_POLL].addr, .run_check = pl->sym[S_RUN_CHECK].addr,
			.run_timers = pl->sym[S_RUN_TIMERS].addr,
		};
		r = lu_uv_run_sites(e, &pl->sym[S_UV_RUN], &callees, pl->bsites, MAX_BSITES, missing,
				    sizeof(missing));
		/* Without the poll and timers boundaries the phases would be meaningless. */
		if (r > 0 && callees.io_poll && callees.run_timers) {
			pl->nb = r;
			pl->phases = 1;
			if (missing[0]) {
				snprintf(buf, sizeof(buf), "no cheap site for %s: merged into the next phase", missing);
				note_add(pl, buf);
			}
		} else {
			snprintf(buf, sizeof(buf), "phases unavailable (%s): light tier used",
				 !callees.io_poll ? "uv__io_poll has no symbol" : "no uprobe sites in uv_run");
			note_add(pl, buf);
			snprintf(pl->tier_why, sizeof(pl->tier_why), "%s", buf);
		}
	}
	/* A GC pause is V8's observable pause inside Heap::CollectGarbage, between its
	 * calls of GCTracer::Start/StopObservablePause (what --trace-gc prints): two
	 * emulated call sites. Else entry to return of CollectGarbage, whose ret is
	 * single-stepped (bpf/README.md, "What a probe costs"). Stops first, as for returns. */
	if (pl->sym[S_COLLECT_GARBAGE].addr && pl->sym[S_GC_PAUSE_START].addr && pl->sym[S_GC_PAUSE_STOP].addr) {
		const struct ls_elf_sym *cg = &pl->sym[S_COLLECT_GARBAGE];
		int nstop = lu_direct_call_sites(e, cg, pl->sym[S_GC_PAUSE_STOP].addr, 1, pl->gc_sites, MAX_RET_SITES);
		int nstart = nstop > 0 ? lu_direct_call_sites(e, cg, pl->sym[S_GC_PAUSE_START].addr, 0,
							     pl->gc_sites + nstop, MAX_RET_SITES + 1 - (size_t)nstop)
				       : nstop;

		if (nstop > 0 && nstart > 0) {
			pl->ngc_sites = nstop + nstart;
			pl->have_gc = pl->gc_tracer = 1;
		}
	}
	if (!pl->have_gc && pl->sym[S_COLLECT_GARBAGE].addr) {
		r = lu_return_sites(e, &pl->sym[S_COLLECT_GARBAGE], pl->gc_sites, MAX_RET_SITES);
		if (r > 0 && !lu_entry_site(e, &pl->sym[S_COLLECT_GARBAGE], &pl->gc_sites[r])) {
			pl->gc_sites[r].cookie = 0;
			pl->ngc_sites = r + 1;
			pl->have_gc = 1;
		}
	}
	if (pl->sym[S_MICROTASKS].addr && pl->sym[S_CB_CLOSE].addr) {
		pl->nmicro = lu_code_ranges(e, sym_names[S_MICROTASKS], &pl->sym[S_MICROTASKS], pl->micro, NU_NRANGES);
		pl->ntick = lu_code_ranges(e, sym_names[S_CB_CLOSE], &pl->sym[S_CB_CLOSE], pl->tick, NU_NRANGES);
		if (pl->nmicro <= 0 || pl->ntick <= 0)
			pl->nmicro = pl->ntick = 0;
	}
	if (pl->sym[S_WORKER_CTOR].addr && pl->sym[S_ALLOC_THREAD_ID].addr && pl->sym[S_NEXT_THREAD_ID].addr &&
	    pl->sym[S_DEFAULT_LOOP].addr &&
	    !lu_call_result_store(e, &pl->sym[S_WORKER_CTOR], pl->sym[S_ALLOC_THREAD_ID].addr, &pl->worker_thread_id))
		pl->have_worker_ids = 1;
	/* uprobes are attached by file offset */
	if (pl->have_timers && !pl->ntf && ls_elf_file_offset(e, pl->timers.vaddr, &pl->timers.file_off))
		pl->have_timers = 0;
	for (int i = 0; i < pl->ntf; i++)
		if (ls_elf_file_offset(e, pl->tfire[i].vaddr, &pl->tfire[i].file_off))
			pl->ntf = pl->have_timers = 0;
	for (int i = 0; i < pl->npoll; i++)
		if (ls_elf_file_offset(e, pl->psites[i].vaddr, &pl->psites[i].file_off))
			pl->npoll = 0;
	for (int i = 0; i < pl->nb; i++)
		if (ls_elf_file_offset(e, pl->bsites[i].vaddr, &pl->bsites[i].file_off))
			pl->phases = 0;
	for (int i = 0; i < pl->ngc_sites; i++)
		if (ls_elf_file_offset(e, pl->gc_sites[i].vaddr, &pl->gc_sites[i].file_off))
			pl->have_gc = 0;
	for (int i = 0; i < pl->nep; i++)
		if (ls_elf_file_offset(e, pl->epsites[i].vaddr, &pl->epsites[i].file_off))
			pl->nep = 0;
	choose_poll(pl, pl->phases);

	snprintf(pl->tier, sizeof(pl->tier), "%s", pl->phases ? "phases" : "light");
	if (pl->runtime == LS_RT_NODE) {
		if (!pl->have_gc)
			note_add(pl, "no GC pauses (Heap::CollectGarbage not found or not bracketable)");
		if (!pl->nmicro)
			note_add(pl, "starvation not classified (V8/node symbols missing)");
		note_add(pl, "drains not counted: starvation is classified from stack samples during stalls");
	} else {
		note_add(pl, "libuv without Node: no GC, ticks or microtasks");
	}
	if (!pl->have_timers) {
		snprintf(buf, sizeof(buf), "no timer lateness or phases: %s",
			 !pl->sym[S_RUN_TIMERS].addr ? (ls_elf_has_symtab(e) ? "uv__run_timers not in the symbol table"
						       : "libuv is stripped (exported symbols only), "
							 "uv__run_timers/uv__io_poll are internal")
			 : !pl->have_off ? "unknown libuv version, no DWARF for uv_loop_t"
					 : "no cheap uprobe site at uv__run_timers");
		note_add(pl, buf);
	}
	/* last: the notes above say what is missing, this one what it costs */
	poll_note(pl);
	r = 0;
cleanup:
	ls_elf_close(e);
	return r;
}

int ls_node_plan(const struct ls_target_info *ti, const char *tier, FILE *out, char *err, size_t errlen)
{
	static const char *const bnames[NU_NB] = {
		"idle", "prepare", "poll_in", "poll_out", "check_in", "check_out", "timers_in", "timers_out",
	};
	struct node_plan *pl = calloc(1, sizeof(*pl));
	int r;

	if (!pl)
		return -ENOMEM;
	r = make_plan(ti, tier, pl, err, errlen);
	if (r)
		goto cleanup;
	fprintf(out, "runtime %s libuv %u.%u.%u tier %s bias %#llx offsets %s\n", ls_runtime_name(pl->runtime),
		pl->version >> 16, (pl->version >> 8) & 0xff, pl->version & 0xff, pl->tier,
		(unsigned long long)pl->bias, pl->have_off ? pl->off.source : "none");
	if (pl->have_off)
		fprintf(out, "offsets uv_loop_t: timer_heap.min +%u nelts +%u time +%u backend_fd +%u size %u; "
			"uv_timer_t: loop +%u heap_node +%u timeout +%u\n", pl->off.heap_min, pl->off.heap_nelts,
			pl->off.time, pl->off.backend_fd, pl->off.loop_size, pl->off.timer_loop, pl->off.timer_node,
			pl->off.timer_timeout);
	fprintf(out, "poll %s\n", poll_mode_names[pl->poll_mode]);
	for (int i = 0; pl->have_epoll && i < pl->nep; i++)
		fprintf(out, "epoll %s uv__io_poll+%#llx %s\n", pl->epsites[i].cookie ? "exit" : "enter",
			(unsigned long long)(pl->epsites[i].vaddr - pl->sym[S_IO_POLL].addr), pl->epsites[i].insn);
	for (int i = 0; pl->poll_mode == POLL_ENTRY && !pl->phases && i < pl->npoll; i++)
		fprintf(out, "poll_entry uv_run+%#llx %s\n",
			(unsigned long long)(pl->psites[i].vaddr - pl->sym[S_UV_RUN].addr), pl->psites[i].insn);
	for (int i = 0; !pl->phases && i < pl->ntf; i++)
		fprintf(out, "timer_fire uv__run_timers+%#llx %s\n",
			(unsigned long long)(pl->tfire[i].vaddr - pl->sym[S_RUN_TIMERS].addr), pl->tfire[i].insn);
	if (pl->have_timers && !pl->ntf && !pl->counters)
		fprintf(out, "timers uv__run_timers+%#llx %s\n",
			(unsigned long long)(pl->timers.vaddr - pl->sym[S_RUN_TIMERS].addr), pl->timers.insn);
	for (int i = 0; i < pl->nb; i++)
		fprintf(out, "boundary %s uv_run+%#llx %s\n", bnames[pl->bsites[i].cookie],
			(unsigned long long)(pl->bsites[i].vaddr - pl->sym[S_UV_RUN].addr), pl->bsites[i].insn);
	for (int i = 0; pl->have_gc && i < pl->ngc_sites; i++)
		fprintf(out, "gc_%s +%#llx %s\n",
			pl->gc_tracer ? (pl->gc_sites[i].cookie ? "stop" : "start")
				      : (pl->gc_sites[i].cookie ? "return" : "entry"),
			(unsigned long long)(pl->gc_sites[i].vaddr - pl->sym[S_COLLECT_GARBAGE].addr),
			pl->gc_sites[i].insn);
	if (pl->have_worker_ids)
		fprintf(out, "worker thread_id +%#x\n", pl->worker_thread_id);
	for (int i = 0; i < pl->nmicro; i++)
		fprintf(out, "microtasks %#llx-%#llx\n", (unsigned long long)pl->micro[i].lo,
			(unsigned long long)pl->micro[i].hi);
	for (int i = 0; i < pl->ntick; i++)
		fprintf(out, "ticks %#llx-%#llx\n", (unsigned long long)pl->tick[i].lo,
			(unsigned long long)pl->tick[i].hi);
	fprintf(out, "note %s\n", pl->note);
cleanup:
	free(pl);
	return r;
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

/* A Node target whose stacks will have no JS frames says why in its note. */
static void note_js_frames(struct node_priv *p)
{
	const char *why = ls_unwinder_js_why(p->unw);
	char buf[240];

	if (why && p->plan.runtime == LS_RT_NODE) {
		snprintf(buf, sizeof(buf), "JS frames unavailable: %s", why);
		note_add(&p->plan, buf);
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
		note_add(&p->plan, buf);
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
	char why[160] = "";
	int r, multi, bad_off = 0;

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
	r = make_plan(ti, opts ? opts->tier : NULL, pl, err, errlen);
	if (r)
		goto fail;
	if (pl->sym[S_METADATA].addr)
		lu_node_version(p->pid, pl->sym[S_METADATA].addr + pl->bias, p->version, sizeof(p->version));
	/* The offsets must describe this process's loop before any probe reads it. */
	if (pl->have_off && pl->off_guessed && !pl->sym[S_DEFAULT_LOOP].addr) {
		snprintf(why, sizeof(why), "libuv version unknown and no default loop to check its layout on");
		bad_off = 1;
	} else if (pl->have_off && pl->sym[S_DEFAULT_LOOP].addr) {
		bad_off = lu_loop_check(ti->pid, pl->sym[S_DEFAULT_LOOP].addr + pl->bias, &pl->off, why,
					sizeof(why)) != 0;
	}
	if (bad_off) {
		char buf[200];

		snprintf(buf, sizeof(buf), "loop struct reads off (%s)", why);
		if (pl->counters) {
			snprintf(err, errlen, "--probes counters cannot read this loop: %s; use --probes light", buf);
			r = -ENOTSUP;
			goto fail;
		}
		note_add(pl, buf);
		if (!pl->tier_why[0])
			snprintf(pl->tier_why, sizeof(pl->tier_why), "%s", buf);
		pl->have_off = 0;
		pl->have_timers = 0;
		pl->ntf = 0;
		pl->phases = 0;
		pl->metrics_ok = 0;
		snprintf(pl->tier, sizeof(pl->tier), "light");
		if (pl->poll_mode == POLL_ENTRY || pl->poll_mode == POLL_NONE) {
			choose_poll(pl, 0);
			poll_note(pl);
		}
	}
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
	r = nu__sampler_open(p);
	if (r) {
		char buf[120];

		/* stalls are still seen when they end, just not classified or announced */
		snprintf(buf, sizeof(buf), "no stack samples (perf event: %s): stalls unclassified", strerror(-r));
		note_add(pl, buf);
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
