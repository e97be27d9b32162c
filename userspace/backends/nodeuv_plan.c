/* nodeuv_plan.c: the Node.js / libuv backend's plan (nodeuv_int.h: struct node_plan):
 * everything decided from the target's ELF before anything is loaded, the symbols,
 * libuv's version and uv_loop_t offsets, the probe sites Capstone picks (libuv.h),
 * the poll mechanism chosen by this machine's calibration, and the note that says
 * what the tier measures and what it lacks. Reads the target only to check the plan
 * against its live default loop (libuv's counters, the loop's layout); attaches
 * nothing. nodeuv.c attaches what the plan says; ls_node_plan() prints it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "calib.h"
#include "libuv.h"
#include "node.h"
#include "nodeuv_int.h"
#include "proc.h"

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
	/* the callback of the async handle that wakes the platform's delayed-task loop */
	[S_PLATFORM_FLUSH] = "_ZN4node23WorkerThreadsTaskRunner20DelayedTaskScheduler10FlushTasksEP10uv_async_s",
};

/* Names of enum poll_mode, as the plan and its note print them. */
static const char *const poll_mode_names[] = {
	[POLL_TRACEPOINTS] = "tracepoints",
	[POLL_EPOLL_UPROBES] = "epoll-uprobes",
	[POLL_ENTRY] = "poll-entry",
	[POLL_NONE] = "none",
};

void nu__note_add(struct node_plan *pl, const char *text)
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

/* Each of the n sites' file offset (uprobes are attached by it); -1 when one has none. */
static int file_offsets(const struct ls_elf *e, struct lu_site *sites, int n)
{
	for (int i = 0; i < n; i++)
		if (ls_elf_file_offset(e, sites[i].vaddr, &sites[i].file_off))
			return -1;
	return 0;
}

/* The note's last item: how the poll is timed and why. */
static void poll_note(struct node_plan *pl)
{
	char buf[240];

	snprintf(buf, sizeof(buf), "poll by %s (%s)", poll_mode_names[pl->poll_mode], pl->poll_why);
	nu__note_add(pl, buf);
}

/* The plan's symbols (uv_run at least) from e; what names the file in err. 0, or a
 * negative errno with err. */
static int lookup_symbols(const struct ls_elf *e, struct node_plan *pl, const char *what, char *err, size_t errlen)
{
	struct ls_elf_want want[S_NSYMS];
	int r;

	for (int i = 0; i < S_NSYMS; i++) {
		want[i].name = sym_names[i];
		want[i].out = &pl->sym[i];
	}
	r = ls_elf_lookup(e, want, S_NSYMS);
	if (r < 0 || !pl->sym[S_UV_RUN].addr) {
		snprintf(err, errlen, "no uv_run symbol in %s: not a libuv program", what);
		return r < 0 ? r : -ENOTSUP;
	}
	return 0;
}

/* pl->bias, where a PIE (or the library) is loaded in the target; 0 when not known. */
static void load_bias(const struct ls_elf *e, const struct ls_target_info *ti, struct node_plan *pl, int in_exe)
{
	struct stat st;
	uint64_t base;

	if (!ls_elf_is_pie(e))
		return;
	if (!in_exe)
		pl->bias = ti->lib_base - ls_elf_first_vaddr(e);
	else if (!stat(pl->path, &st) &&
		 !ls_proc_file_addr(ti->pid, &(struct ls_proc_file){ .dev = st.st_dev, .ino = st.st_ino }, 0,
				    &base))
		pl->bias = base - ls_elf_first_vaddr(e);
}

static void find_loop_offsets(struct node_plan *pl)
{
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
}

/* The counters tier: no probe, only libuv's counters of the default loop, which must be
 * readable now. 0, or -ENOTSUP with err. */
static int plan_counters(const struct ls_target_info *ti, struct node_plan *pl, char *err, size_t errlen)
{
	check_metrics(ti, pl);
	if (!pl->metrics_ok) {
		snprintf(err, errlen, "--probes counters needs libuv's idle-time counter on the default loop "
			 "(Node.js, or UV_METRICS_IDLE_TIME) and its offsets: %s; use --probes light",
			 !pl->default_loop ? "no default_loop_struct symbol"
			 : !pl->have_off || !pl->off.have_metrics ? "offsets unknown for this libuv"
			 : pl->runtime == LS_RT_NODE ? "the loop does not keep idle time yet (Node turns it on as its "
						      "loop starts: attach again once it runs)"
								 : "the loop does not keep idle time");
		return -ENOTSUP;
	}
	snprintf(pl->tier, sizeof(pl->tier), "counters");
	choose_poll(pl, 0);
	nu__note_add(pl, "counters: no probe in the loop; utilization and iterations from libuv's own "
		     "counters, delay only as busy time per iteration over each interval, stalls (main "
		     "loop) from counters that stop, named by stack samples taken only then");
	return 0;
}

static void find_timer_sites(const struct ls_elf *e, struct node_plan *pl)
{
	int r;

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
}

/* uv_run's calls of uv__io_poll. */
static void find_poll_sites(const struct ls_elf *e, struct node_plan *pl)
{
	int r;

	if (pl->sym[S_IO_POLL].addr) {
		r = lu_direct_call_sites(e, &pl->sym[S_UV_RUN], pl->sym[S_IO_POLL].addr, 0, pl->psites, MAX_PSITES);
		pl->npoll = r > 0 ? r : 0;
	}
}

/* The phases tier's boundary sites in uv_run; without them the light tier, said in the
 * note and in pl->tier_why. */
static void plan_phases(const struct ls_elf *e, struct node_plan *pl)
{
	struct lu_uv_callees callees;
	char missing[96], buf[160];
	int r;

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
			nu__note_add(pl, buf);
		}
	} else {
		snprintf(buf, sizeof(buf), "phases unavailable (%s): light tier used",
			 !callees.io_poll ? "uv__io_poll has no symbol" : "no uprobe sites in uv_run");
		nu__note_add(pl, buf);
		snprintf(pl->tier_why, sizeof(pl->tier_why), "%s", buf);
	}
}

static void find_gc_sites(const struct ls_elf *e, struct node_plan *pl)
{
	int r;

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
}

/* The code of V8's microtask run and of node's callback-scope close (nextTick drains),
 * for classifying starvation from stack samples: both, or neither. */
static void find_drain_ranges(const struct ls_elf *e, struct node_plan *pl)
{
	if (pl->sym[S_MICROTASKS].addr && pl->sym[S_CB_CLOSE].addr) {
		pl->nmicro = lu_code_ranges(e, sym_names[S_MICROTASKS], &pl->sym[S_MICROTASKS], pl->micro, NU_NRANGES);
		pl->ntick = lu_code_ranges(e, sym_names[S_CB_CLOSE], &pl->sym[S_CB_CLOSE], pl->tick, NU_NRANGES);
		if (pl->nmicro <= 0 || pl->ntick <= 0)
			pl->nmicro = pl->ntick = 0;
	}
}

/* Where Worker's constructor stores the thread id it allocated, to name worker loops. */
static void find_worker_ids(const struct ls_elf *e, struct node_plan *pl)
{
	if (pl->sym[S_WORKER_CTOR].addr && pl->sym[S_ALLOC_THREAD_ID].addr && pl->sym[S_NEXT_THREAD_ID].addr &&
	    pl->sym[S_DEFAULT_LOOP].addr &&
	    !lu_call_result_store(e, &pl->sym[S_WORKER_CTOR], pl->sym[S_ALLOC_THREAD_ID].addr, &pl->worker_thread_id))
		pl->have_worker_ids = 1;
}

static void drop_sites_without_offsets(const struct ls_elf *e, struct node_plan *pl)
{
	/* uprobes are attached by file offset: a set with a site that has none is dropped */
	if (pl->have_timers && !pl->ntf && file_offsets(e, &pl->timers, 1))
		pl->have_timers = 0;
	if (file_offsets(e, pl->tfire, pl->ntf))
		pl->ntf = pl->have_timers = 0;
	if (file_offsets(e, pl->psites, pl->npoll))
		pl->npoll = 0;
	if (file_offsets(e, pl->bsites, pl->nb))
		pl->phases = 0;
	if (file_offsets(e, pl->gc_sites, pl->ngc_sites))
		pl->have_gc = 0;
	if (file_offsets(e, pl->epsites, pl->nep))
		pl->nep = 0;
}

/* The note of a probing tier: what it lacks, then how the poll is timed. */
static void plan_notes(const struct ls_elf *e, struct node_plan *pl)
{
	char buf[160];

	if (pl->runtime == LS_RT_NODE) {
		if (!pl->have_gc)
			nu__note_add(pl, "no GC pauses (Heap::CollectGarbage not found or not bracketable)");
		if (!pl->nmicro)
			nu__note_add(pl, "starvation not classified (V8/node symbols missing)");
		nu__note_add(pl, "drains not counted: starvation is classified from stack samples during stalls");
	} else {
		nu__note_add(pl, "libuv without Node: no GC, ticks or microtasks");
	}
	if (!pl->have_timers) {
		snprintf(buf, sizeof(buf), "no timer lateness or phases: %s",
			 !pl->sym[S_RUN_TIMERS].addr ? (ls_elf_has_symtab(e) ? "uv__run_timers not in the symbol table"
						       : "libuv is stripped (exported symbols only), "
							 "uv__run_timers/uv__io_poll are internal")
			 : !pl->have_off ? "unknown libuv version, no DWARF for uv_loop_t"
					 : "no cheap uprobe site at uv__run_timers");
		nu__note_add(pl, buf);
	}
	/* last: the notes above say what is missing, this one what it costs */
	poll_note(pl);
}

/* Everything decided from the target's ELF before anything is loaded. */
int nu__plan_make(const struct ls_target_info *ti, const char *tier, struct node_plan *pl, char *err,
		  size_t errlen)
{
	struct ls_elf *e = NULL;
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
	r = lookup_symbols(e, pl, in_exe ? ti->exe : ti->lib, err, errlen);
	if (r)
		goto cleanup;
	load_bias(e, ti, pl, in_exe);
	if (lu_version(e, &pl->sym[S_UV_VERSION], &pl->version))
		pl->version = 0;
	find_loop_offsets(pl);

	if (pl->sym[S_DEFAULT_LOOP].addr)
		pl->default_loop = pl->sym[S_DEFAULT_LOOP].addr + pl->bias;
	if (pl->counters) {
		r = plan_counters(ti, pl, err, errlen);
		goto cleanup;
	}
	find_timer_sites(e, pl);
	find_epoll_sites(e, pl);
	find_poll_sites(e, pl);
	check_metrics(ti, pl);

	if (!strcmp(tier, "phases"))
		plan_phases(e, pl);
	find_gc_sites(e, pl);
	find_drain_ranges(e, pl);
	find_worker_ids(e, pl);
	drop_sites_without_offsets(e, pl);
	choose_poll(pl, pl->phases);

	snprintf(pl->tier, sizeof(pl->tier), "%s", pl->phases ? "phases" : "light");
	plan_notes(e, pl);
	r = 0;
cleanup:
	ls_elf_close(e);
	return r;
}

/* The offsets must describe this process's loop before any probe reads it: checked on
 * the live default loop. A layout that reads off costs the tier what needs it (the
 * light tier's plain poll timing stays), said in the note; the counters tier, which is
 * nothing but those reads, fails. */
int nu__plan_check_loop(const struct ls_target_info *ti, struct node_plan *pl, char *err, size_t errlen)
{
	char why[160] = "", buf[200];
	int bad_off = 0;

	if (pl->have_off && pl->off_guessed && !pl->sym[S_DEFAULT_LOOP].addr) {
		snprintf(why, sizeof(why), "libuv version unknown and no default loop to check its layout on");
		bad_off = 1;
	} else if (pl->have_off && pl->sym[S_DEFAULT_LOOP].addr) {
		bad_off = lu_loop_check(ti->pid, pl->sym[S_DEFAULT_LOOP].addr + pl->bias, &pl->off, why,
					sizeof(why)) != 0;
	}
	if (!bad_off)
		return 0;
	snprintf(buf, sizeof(buf), "loop struct reads off (%s)", why);
	if (pl->counters) {
		snprintf(err, errlen, "--probes counters cannot read this loop: %s; use --probes light", buf);
		return -ENOTSUP;
	}
	nu__note_add(pl, buf);
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
	return 0;
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
	r = nu__plan_make(ti, tier, pl, err, errlen);
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
