// SPDX-License-Identifier: GPL-2.0
/* nodeuv.bpf.c: event-loop probes for unmodified Node.js and libuv programs.
 *
 * Two tiers share this object (the loader picks programs with set_autoload; the
 * plans and their costs: userspace/backends/probe-plans.md):
 *  - light: the poll timed by the epoll_wait / epoll_pwait syscall tracepoints of the
 *    target's threads, or by `nu_poll` (one uprobe per iteration reading libuv's own
 *    idle-time counter), or by `nu_epoll`; timer lateness from `nu_timer_fire`, a
 *    uprobe that runs only for a timer that fires (or uv__run_timers' entry);
 *  - phases: light's tracepoints plus `nu_boundary` at instruction-exact sites inside
 *    uv_run (chosen with Capstone in user space); the attach cookie says which
 *    boundary fired, the span between two boundaries is a phase.
 * In both tiers: sites in Heap::CollectGarbage bracket GC pauses, and a
 * ~99 Hz cpu-clock perf event on every CPU samples a loop thread's user stack only
 * while that loop has not polled for half the stall threshold, to tell microtask starvation,
 * nextTick starvation and one long synchronous callback apart by address range.
 *
 * Every loop thread owns one struct nu_loop (key: tid) and only that thread writes
 * it: tracepoint, uprobe and perf_event programs exclude each other on a CPU
 * (bpf_prog_active), so plain read-modify-write is safe. Finished and starting
 * episodes go out through a ring buffer; everything else stays in the map.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "nodeuv.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load (rodata). */
const volatile __u32 targ_tgid = 0;
const volatile __u64 stall_ns = 100000000ull;
const volatile __u32 metrics_idle_time = 0;	/* Node: each poll first calls epoll with timeout 0 */
const volatile __u32 read_loop = 0;		/* the offsets below are known and checked */
const volatile __u32 off_heap_min = 520;	/* uv_loop_t.timer_heap.min */
const volatile __u32 off_time = 544;		/* uv_loop_t.time (ms) */
const volatile __u32 off_node_timeout = 24;	/* uv_timer_t.timeout - uv_timer_t.heap node */
/* [lo, hi) code ranges of MicrotaskQueue::RunMicrotasks and InternalCallbackScope::Close,
 * with the parts the compiler split off (lu_code_ranges); unused slots are empty */
const volatile __u64 micro_lo[NU_NRANGES] = {}, micro_hi[NU_NRANGES] = {};
const volatile __u64 tick_lo[NU_NRANGES] = {}, tick_hi[NU_NRANGES] = {};
const volatile __u32 off_timer_loop = 8;	/* uv_timer_t.loop */
const volatile __u32 off_timer_timeout = 128;	/* uv_timer_t.timeout (ms) */
/* poll-entry plan: libuv's metrics (libuv.h, struct lu_offsets mx_*), checked live */
const volatile __u32 poll_by_metrics = 0;
const volatile __u32 off_fields = 40;		/* uv_loop_t.internal_fields */
const volatile __u32 off_mx_idle = 144;		/* provider_idle_time inside them */
const volatile __u32 off_mx_entry = 136;	/* provider_entry_time */
const volatile __u64 text_lo = 0, text_hi = 0;		/* the runtime binary's code, in the target */

/* Written by the loader once everything is attached (bss): counting starts here. */
__u64 start_ns = 0;
/* Written by user space at any time (bss): raw_on, it reads the samples ring;
 * raw_all, it wants every sample of a loop thread (a profile), not only those of a
 * span that has not polled for a quarter of the stall threshold. */
__u32 raw_on = 0;
__u32 raw_all = 0;
/* Counters tier (bss, written by user space): the loop thread whose clock has not
 * moved for a quarter of the stall threshold, and that clock's value (the span);
 * 0: none. nu_ct_sample takes that thread's stacks and nothing else. */
__u32 ct_tid = 0;
__u64 ct_span = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nu_loop);
} zero SEC(".maps");	/* never written: the initial value of a new loop */

/* Not preallocated: ~57 KB a loop, and most processes have one or two loops, not
 * NU_MAX_LOOPS (preallocated, every attached process would pin 3.7 MB). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NU_MAX_LOOPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);	/* loop thread id */
	__type(value, struct nu_loop);
} loops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} episodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NU_NCNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#include "stack_sample.bpf.h"

struct stack_buf {
	__u64 ip[NU_STACK_DEPTH];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_buf);
} stack_scratch SEC(".maps");

/* The phase each boundary starts (a switch: a table index loses its bound in clang). */
static __always_inline __u32 boundary_phase(__u32 b)
{
	switch (b) {
	case NU_B_IDLE: return NU_PHASE_IDLE;
	case NU_B_PREPARE: return NU_PHASE_PREPARE;
	case NU_B_POLL_IN: return NU_PHASE_POLL;
	case NU_B_POLL_OUT: return NU_PHASE_PENDING;
	case NU_B_CHECK_IN: return NU_PHASE_CHECK;
	case NU_B_CHECK_OUT: return NU_PHASE_CLOSE;
	case NU_B_TIMERS_IN: return NU_PHASE_TIMERS;
	case NU_B_TIMERS_OUT: return NU_PHASE_PENDING;
	}
	return NU_PHASE_NONE;
}

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		(*c)++;
}

static __always_inline void hist_add(struct ls_hist *h, __u64 v)
{
	/* 64-bit, hidden from the optimizer: the verifier must see the bound checked */
	__u64 i = ls_hist_index(v);

	barrier_var(i);
	if (i >= LS_HIST_BUCKETS)
		i = LS_HIST_BUCKETS - 1;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	h->bucket[i]++;
}

/* 1 (and the thread id) if the calling thread belongs to the target. */
static __always_inline int is_target(__u32 *tidp)
{
	__u64 id = bpf_get_current_pid_tgid();

	if ((__u32)(id >> 32) != targ_tgid)
		return 0;
	*tidp = (__u32)id;
	count(NU_CNT_HITS);
	return 1;
}

/* is_target() for uprobe programs: the hit is also a trap. */
static __always_inline int is_target_trap(__u32 *tidp)
{
	if (!is_target(tidp))
		return 0;
	count(NU_CNT_TRAPS);
	return 1;
}

/* The record of loop thread tid, created on first sight (a libuv loop runs there).
 * User space makes Node's main-loop record the same way at attach
 * (userspace/backends/nodeuv.c, seed_main_loop()): change both together. */
static __always_inline struct nu_loop *new_loop(__u32 tid, __u64 now)
{
	__u32 z = 0;
	struct nu_loop *l = bpf_map_lookup_elem(&loops, &tid), *init;

	if (l)
		return l;
	init = bpf_map_lookup_elem(&zero, &z);
	if (!init)
		return NULL;
	bpf_map_update_elem(&loops, &tid, init, BPF_NOEXIST);	/* -EEXIST is fine */
	l = bpf_map_lookup_elem(&loops, &tid);
	if (!l) {
		count(NU_CNT_NEWLOOP_FAIL);	/* more loop threads than NU_MAX_LOOPS */
		return NULL;
	}
	if (!l->first_ns) {
		l->first_ns = now;
		/* First seen outside epoll (an enter, or a uprobe): it has not been inside
		 * epoll since the probes went live, or its exit would have come first. */
		l->busy_mark_ns = start_ns && start_ns < now ? start_ns : now;
		l->last_b = NU_NB;
		l->live_phase = NU_PHASE_NONE;
		bpf_get_current_comm(l->comm, sizeof(l->comm));
	}
	return l;
}

static __always_inline void emit(__u32 tid, __u32 kind, __u32 phase, __u64 start, __u64 end)
{
	struct nu_event *e = bpf_ringbuf_reserve(&episodes, sizeof(*e), 0);

	if (!e) {
		count(NU_CNT_DROPS);
		return;
	}
	e->tid = tid;
	e->kind = kind;
	e->phase = phase;
	e->pad = 0;
	e->start_ns = start;
	e->end_ns = end;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void raw_notice(__u32 tid, __u32 type, __u64 span)
{
	struct ls_raw *r = bpf_ringbuf_reserve(&samples, offsetof(struct ls_raw, pc), 0);

	if (!r) {
		count(NU_CNT_SAMPLE_DROPS);
		return;
	}
	r->type = type;
	r->tid = tid;
	r->span_start = span;
	r->time = bpf_ktime_get_ns();
	r->flags = 0;
	r->nframes = 0;
	r->nkframes = 0;
	bpf_ringbuf_submit(r, 0);
}

/* What the stack samples of the stall so far say it is (NU_EP_*). GC samples do not
 * vote: a pause inside a stall is reported as GC separately. */
static __always_inline __u32 stall_kind(const struct nu_loop *l)
{
	__u64 m = l->cat_samples[NU_CAT_MICRO], t = l->cat_samples[NU_CAT_TICK];
	__u64 s = l->cat_samples[NU_CAT_SYNC];

	if (m && m >= t && m >= s)
		return NU_EP_MICRO;
	if (t && t >= s)
		return NU_EP_TICK;
	return NU_EP_STALL;
}

static __always_inline void count_episode(struct nu_loop *l, __u32 kind)
{
	if (kind == NU_EP_MICRO)
		l->micro_episodes++;
	else if (kind == NU_EP_TICK)
		l->tick_episodes++;
	else
		l->stall_episodes++;
}

/* A not-polling span [ep_exit_ns, now) just ended: report it if it was a stall. */
static __always_inline void close_span(struct nu_loop *l, __u32 tid, __u64 now)
{
	__u64 span = now - l->ep_exit_ns;

	if (span >= stall_ns) {
		__u32 kind = l->stall_open ? l->stall_open - 1 : stall_kind(l);

		if (!l->stall_open)
			count_episode(l, kind);
		/* by now the loop is in poll again: the phase was noted while it stalled */
		emit(tid, kind, l->stall_phase ? l->stall_phase - 1 : NU_PHASE_NONE, l->ep_exit_ns, now);
	}
	if (l->hot_span) {
		raw_notice(tid, LS_RAW_COOL, l->hot_span);
		l->hot_span = 0;
	}
	l->stall_open = 0;
	l->stall_phase = 0;
	l->cat_samples[NU_CAT_SYNC] = 0;
	l->cat_samples[NU_CAT_TICK] = 0;
	l->cat_samples[NU_CAT_MICRO] = 0;
	l->cat_samples[NU_CAT_GC] = 0;
}

static __always_inline int epoll_enter(__s64 timeout)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid;
	struct nu_loop *l;

	if (!is_target(&tid))
		return 0;
	l = new_loop(tid, now);
	if (!l)
		return 0;
	/* Node (UV_METRICS_IDLE_TIME) polls with timeout 0 first and, when that finds
	 * nothing, again with the real timeout: the second call continues the iteration. */
	if (!(metrics_idle_time && l->ep_prev_nb_empty && timeout != 0)) {
		if (l->ep_exit_ns) {
			/* The loop ran late by the span it did not poll plus how late the
			 * poll that let it go returned: a thread the CPU was busy elsewhere
			 * for is late too, as a timer inside the process would see. */
			hist_add(&l->delay, now - l->ep_exit_ns + l->oversleep_ns);
			hist_add(&l->not_polling, now - l->ep_exit_ns);
			l->oversleep_ns = 0;
			l->iterations++;
			close_span(l, tid, now);
		}
		if (l->iter_start_ns) {
			hist_add(&l->iteration, now - l->iter_start_ns);
			hist_add(&l->poll_wait, l->iter_wait_ns);
		}
		l->iter_start_ns = now;
		l->iter_wait_ns = 0;
	}
	if (timeout != 0) {
		l->busy_ns += now - l->busy_mark_ns;
		l->idle_mark_ns = now;
	}
	l->ep_enter_ns = now;
	l->ep_timeout = timeout;
	return 0;
}

#define SIGNAL_GROUP_EXIT 0x00000004	/* include/linux/sched/signal.h */

/* The whole process is going: it exits, or it execs and its other threads are being
 * killed. Their epoll calls come back then (with -EINTR) without being iterations. */
static __always_inline int process_dying(void)
{
	struct signal_struct *sig = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), signal);

	if (!sig)
		return 0;
	if (BPF_CORE_READ(sig, flags) & SIGNAL_GROUP_EXIT)
		return 1;
	return bpf_core_field_exists(sig->group_exec_task) && BPF_CORE_READ(sig, group_exec_task);
}

static __always_inline int epoll_exit(long ret)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid;
	struct nu_loop *l;

	if (!is_target(&tid))
		return 0;
	l = bpf_map_lookup_elem(&loops, &tid);
	if (!l) {
		/* A thread blocked in epoll since before the attach, woken because the
		 * process is exiting or exec'ing: not a loop seen iterating (it showed as a
		 * nameless loop in the target's last report). */
		if (ret < 0 && process_dying())
			return 0;
		/* Attached while this thread was blocked in epoll: idle since then. */
		l = new_loop(tid, now);
		if (!l)
			return 0;
		l->ep_missed_enter = 1;
		l->idle_ns += start_ns && now > start_ns ? now - start_ns : 0;
		l->busy_mark_ns = now;
		l->ep_exit_ns = now;
		return 0;
	}
	if (!l->ep_enter_ns)
		return 0;
	l->iter_wait_ns += now - l->ep_enter_ns;
	/* due back timeout ms after it went in (at once for 0), events or not: any later
	 * is time the thread waited for a CPU; summed over the iteration's polls */
	if (l->ep_timeout >= 0 && now - l->ep_enter_ns > (__u64)l->ep_timeout * 1000000ull)
		l->oversleep_ns += now - l->ep_enter_ns - (__u64)l->ep_timeout * 1000000ull;
	if (l->ep_timeout != 0 && l->idle_mark_ns) {
		l->idle_ns += now - l->idle_mark_ns;
		l->idle_mark_ns = 0;
		l->busy_mark_ns = now;
	}
	l->ep_prev_nb_empty = l->ep_timeout == 0 && ret == 0;
	l->ep_exit_ns = now;
	l->ep_enter_ns = 0;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait")
int nu_enter_epoll_pwait(struct trace_event_raw_sys_enter *ctx)
{
	return epoll_enter((int)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait")
int nu_exit_epoll_pwait(struct trace_event_raw_sys_exit *ctx)
{
	return epoll_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int nu_enter_epoll_wait(struct trace_event_raw_sys_enter *ctx)
{
	return epoll_enter((int)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int nu_exit_epoll_wait(struct trace_event_raw_sys_exit *ctx)
{
	return epoll_exit(ctx->ret);
}

/* A uprobe hit on a target thread: count the trap, and that thread's loop record
 * (created on first sight), or NULL. */
static __always_inline struct nu_loop *trap_loop(__u32 *tidp, __u64 now)
{
	if (!is_target_trap(tidp))
		return NULL;
	return new_loop(*tidp, now);
}

/* libuv's idle-time counter of loop (and, with entry, the poll-in-progress start:
 * 0 when the loop is not idle). 0, or -1 when it cannot be read. */
static __always_inline int mx_read(struct nu_loop *l, __u64 loop, __u64 *idle, __u64 *entry)
{
	if (!l->mx_fields &&
	    (!loop || bpf_probe_read_user(&l->mx_fields, sizeof(l->mx_fields), (void *)(loop + off_fields))))
		return -1;
	if (!l->mx_fields ||
	    bpf_probe_read_user(idle, sizeof(*idle), (void *)(l->mx_fields + off_mx_idle)))
		return -1;
	if (entry && bpf_probe_read_user(entry, sizeof(*entry), (void *)(l->mx_fields + off_mx_entry)))
		return -1;
	return 0;
}

/* uv_run is about to call uv__io_poll(loop, timeout): the one hit per iteration of
 * the poll-entry plan. Since the previous entry libuv counted d ns idle (the poll
 * wait, as Node's ELU counts it), so that entry's poll ended no earlier than
 * prev + d, and the loop has not polled since: the not-polling span. */
static __always_inline void poll_entry(struct nu_loop *l, __u32 tid, __u64 loop, __s64 timeout, __u64 now)
{
	__u64 idle = 0, d, span, over = 0, tmo;

	l->loop_addr = loop;
	if (mx_read(l, loop, &idle, NULL))
		return;
	if (l->poll_entry_ns && now > l->poll_entry_ns) {
		span = now - l->poll_entry_ns;
		d = idle > l->mx_idle ? idle - l->mx_idle : 0;
		if (d > span)
			d = span;
		/* a poll that came back later than its timeout: time the thread waited
		 * for a CPU, late as a timer inside the process would see it */
		tmo = (__u64)l->poll_timeout * 1000000ull;
		if (l->poll_timeout >= 0 && d > tmo)
			over = d - tmo;
		l->ep_exit_ns = l->poll_entry_ns + d;
		hist_add(&l->delay, span - d + over);
		hist_add(&l->not_polling, span - d);
		hist_add(&l->iteration, span);
		hist_add(&l->poll_wait, d);
		l->iterations++;
		l->busy_ns += span - d;
		l->idle_ns += d;
		close_span(l, tid, now);
	}
	l->mx_idle = idle;
	l->poll_entry_ns = now;
	l->poll_timeout = timeout;
	l->busy_mark_ns = now;
	l->ep_exit_ns = now;
	l->ep_enter_ns = 0;
}

/* Poll-entry plan, for the sampler: whether the loop is in its poll wait now
 * (ep_enter_ns) or since when it has been out of it (ep_exit_ns), from libuv's
 * counters (no probe marks the poll's exit in this plan). */
static __always_inline void mx_refresh(struct nu_loop *l)
{
	__u64 idle = 0, entry = 0;

	if (!poll_by_metrics || !l->poll_entry_ns || mx_read(l, l->loop_addr, &idle, &entry))
		return;
	if (entry) {
		l->ep_enter_ns = entry;
		return;
	}
	l->ep_enter_ns = 0;
	l->ep_exit_ns = l->poll_entry_ns + (idle > l->mx_idle ? idle - l->mx_idle : 0);
}

/* poll-entry plan: the call of uv__io_poll(loop, timeout) in uv_run */
SEC("uprobe")
int nu_poll(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid;
	struct nu_loop *l = trap_loop(&tid, now);

	if (!l)
		return 0;
	poll_entry(l, tid, PT_REGS_PARM1(ctx), (int)PT_REGS_PARM2(ctx), now);
	return 0;
}

/* The same two events from uprobes inside uv__io_poll, where the plan found them
 * (attached instead of the tracepoints: a syscall tracepoint puts every syscall of
 * every process on the host on the kernel's slow path while it is attached, which
 * under load costs more than these two hits per poll). Cookie 0: the call of
 * epoll_pwait/epoll_wait, timeout in the 4th argument register; 1: the first
 * instruction after it, %rax still holding the result. */
SEC("uprobe")
int nu_epoll(struct pt_regs *ctx)
{
	count(NU_CNT_TRAPS);
	if (bpf_get_attach_cookie(ctx) == 0)
		return epoll_enter((int)PT_REGS_PARM4(ctx));
	return epoll_exit((int)PT_REGS_RC(ctx));
}

/* At uv__run_timers (loop->time was refreshed just before): if the heap minimum is
 * due, it fires in this pass, and now - its due time is how late it runs. The due
 * time is in whole ms of the loop clock, so the result is quantized to ~1 ms. */
static __always_inline void timer_lateness(struct nu_loop *l, __u64 loop, __u64 now)
{
	__u64 min = 0, due = 0, lt = 0, due_ns;

	if (!read_loop || !loop || bpf_probe_read_user(&min, sizeof(min), (void *)(loop + off_heap_min)) || !min)
		return;
	if (bpf_probe_read_user(&lt, sizeof(lt), (void *)(loop + off_time)) ||
	    bpf_probe_read_user(&due, sizeof(due), (void *)(min + off_node_timeout)))
		return;
	if (due > lt)
		return;
	due_ns = due * 1000000ull;
	hist_add(&l->timer_lateness, now > due_ns ? now - due_ns : 0);
	l->timers_due++;
}

/* light tier: uv__run_timers calls uv_timer_stop(timer) for each timer it is about
 * to run, so this costs a hit only when a timer fires; now - its due time is how
 * late it runs (quantized to ~1 ms, as above). */
SEC("uprobe")
int nu_timer_fire(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns(), timer = PT_REGS_PARM1(ctx), due = 0, loop = 0, due_ns;
	__u32 tid;
	struct nu_loop *l = trap_loop(&tid, now);

	if (!l || !read_loop)
		return 0;
	if (bpf_probe_read_user(&due, sizeof(due), (void *)(timer + off_timer_timeout)) ||
	    bpf_probe_read_user(&loop, sizeof(loop), (void *)(timer + off_timer_loop)))
		return 0;
	l->loop_addr = loop;
	due_ns = due * 1000000ull;
	hist_add(&l->timer_lateness, now > due_ns ? now - due_ns : 0);
	l->timers_due++;
	return 0;
}

/* light tier where uv__run_timers has no uv_timer_stop call to probe: its entry
 * (a hit every iteration) */
SEC("uprobe")
int nu_timers(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid;
	struct nu_loop *l = trap_loop(&tid, now);

	if (!l)
		return 0;
	l->loop_addr = PT_REGS_PARM1(ctx);
	timer_lateness(l, l->loop_addr, now);
	return 0;
}

/* phases tier: one boundary inside uv_run; the cookie is enum nu_boundary. */
SEC("uprobe")
int nu_boundary(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid, b = (__u32)bpf_get_attach_cookie(ctx), p;
	struct nu_loop *l;

	if (!is_target_trap(&tid))
		return 0;
	l = new_loop(tid, now);
	if (!l || b >= NU_NB)
		return 0;
	/* An after-call site may sit inside a short loop (the post-poll pending rounds):
	 * only its first hit is the boundary. */
	if (b == l->last_b)
		return 0;
	if (l->last_b < NU_NB) {
		p = boundary_phase(l->last_b);
		barrier_var(p);
		if (p < NU_NPHASES)
			hist_add(&l->phase[p], now - l->last_b_ns);
		/* a stall ends at the next epoll entry; remember which phase held it */
		if (p != NU_PHASE_POLL && now - l->last_b_ns >= stall_ns && !l->stall_phase)
			l->stall_phase = p + 1;
	}
	/* At the call sites the loop is the first argument. */
	if (b == NU_B_POLL_IN || b == NU_B_TIMERS_IN)
		l->loop_addr = PT_REGS_PARM1(ctx);
	if (b == NU_B_TIMERS_IN)
		timer_lateness(l, l->loop_addr, now);
	if (b == NU_B_POLL_IN && poll_by_metrics)
		poll_entry(l, tid, l->loop_addr, (int)PT_REGS_PARM2(ctx), now);
	l->last_b = b;
	l->last_b_ns = now;
	l->live_phase = boundary_phase(b);
	return 0;
}

/* A GC pause starts (cookie 0) and ends (cookie 1): Heap::CollectGarbage's calls of
 * GCTracer::Start/StopObservablePause, or its entry and every return site. */
SEC("uprobe")
int nu_gc(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns(), d;
	__u32 tid, ph;
	struct nu_loop *l;

	if (!is_target_trap(&tid))
		return 0;
	l = bpf_map_lookup_elem(&loops, &tid);
	if (!l)
		return 0;
	if (bpf_get_attach_cookie(ctx) == 0) {
		/* a return we could not see (a longjmp-like exit) must not hide every later
		 * pause: no GC runs for a minute */
		if (l->gc_depth && now - l->gc_start_ns > 60000000000ull)
			l->gc_depth = 0;
		if (l->gc_depth++ == 0)
			l->gc_start_ns = now;
		return 0;
	}
	if (!l->gc_depth || --l->gc_depth)
		return 0;
	d = now - l->gc_start_ns;
	hist_add(&l->gc, d);
	ph = l->live_phase < NU_NPHASES ? l->live_phase : NU_NPHASES;
	barrier_var(ph);
	if (ph <= NU_NPHASES)
		l->gc_phase_ns[ph] += d;
	if (d >= stall_ns) {
		l->gc_episodes++;
		emit(tid, NU_EP_GC, l->live_phase, l->gc_start_ns, now);
	}
	return 0;
}

static __always_inline int in_code(__u64 ip, const volatile __u64 *lo, const volatile __u64 *hi)
{
	for (int k = 0; k < NU_NRANGES; k++)
		if (ip >= lo[k] && ip < hi[k])
			return 1;
	return 0;
}

/* A CPU's cpu-clock tick: ~99 Hz always, and ~997 Hz while user space has been told
 * (LS_RAW_HOT, from an eighth of the stall threshold) that a loop is in a long span.
 * Returns at once unless it interrupted a target loop thread. From a quarter of the
 * threshold on, the raw stack goes to user space (raw_on); from half of it, the stack
 * is also classified here. */
SEC("perf_event")
int nu_sample(struct bpf_perf_event_data *ctx)
{
	__u64 now = bpf_ktime_get_ns(), span;
	__u32 tid, z = 0, i, cat = NU_CAT_SYNC, tick = 0, micro = 0;
	struct nu_loop *l;
	struct stack_buf *sb;
	long n;

	if (!is_target(&tid))
		return 0;
	l = bpf_map_lookup_elem(&loops, &tid);
	if (!l)
		return 0;
	mx_refresh(l);
	if (raw_on && raw_all &&
	    raw_sample(ctx, tid, l->ep_enter_ns ? 0 : l->ep_exit_ns, now, l->gc_depth ? LS_RAW_F_GC : 0))
		count(NU_CNT_SAMPLE_DROPS);
	if (l->ep_enter_ns || !l->ep_exit_ns)
		return 0;
	span = now - l->ep_exit_ns;
	if (span < stall_ns / 8)
		return 0;
	/* the fast set goes on an eighth of the way in, so it runs by the time samples
	 * are kept (a quarter of the way) even when the first tick lands late */
	if (raw_on && l->hot_span != l->ep_exit_ns) {
		l->hot_span = l->ep_exit_ns;
		raw_notice(tid, LS_RAW_HOT, l->ep_exit_ns);
	}
	if (span < stall_ns / 4)
		return 0;
	if (raw_on && !raw_all && raw_sample(ctx, tid, l->ep_exit_ns, now, l->gc_depth ? LS_RAW_F_GC : 0))
		count(NU_CNT_SAMPLE_DROPS);
	if (span < stall_ns / 2)
		return 0;
	if (l->gc_depth) {
		cat = NU_CAT_GC;
	} else {
		sb = bpf_map_lookup_elem(&stack_scratch, &z);
		if (!sb)
			return 0;
		n = bpf_get_stack(ctx, sb->ip, sizeof(sb->ip), BPF_F_USER_STACK);
		if (n <= 0)
			return 0;
		n /= sizeof(__u64);
		for (i = 0; i < NU_STACK_DEPTH; i++) {
			__u64 ip;

			if (i >= n)
				break;
			ip = sb->ip[i];
			if (in_code(ip, micro_lo, micro_hi))
				micro = 1;
			else if (in_code(ip, tick_lo, tick_hi))
				tick = 1;
		}
		cat = micro ? NU_CAT_MICRO : tick ? NU_CAT_TICK : NU_CAT_SYNC;
	}
	if (cat < NU_NCATS)
		l->cat_samples[cat]++;
	l->samples_total++;
	if (!l->stall_open && span >= stall_ns) {
		__u32 kind = stall_kind(l);

		l->stall_open = kind + 1;
		if (l->live_phase < NU_NPHASES)
			l->stall_phase = l->live_phase + 1;
		count_episode(l, kind);
		emit(tid, kind, l->live_phase, l->ep_exit_ns, 0);
	}
	return 0;
}

/* Counters tier: the only program loaded. Its cpu-clock events are enabled only while
 * user space has armed ct_span (a loop whose clock stopped), so a loop that polls
 * is never interrupted; no probe hit is counted (there is none). */
SEC("perf_event")
int nu_ct_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), span = ct_span;

	if ((__u32)(id >> 32) != targ_tgid || (__u32)id != ct_tid || !span)
		return 0;
	if (raw_sample(ctx, (__u32)id, span, bpf_ktime_get_ns(), 0))
		count(NU_CNT_SAMPLE_DROPS);
	return 0;
}
