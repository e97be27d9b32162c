// SPDX-License-Identifier: GPL-2.0
/* refloop.bpf.c: the default probe set for the loopscope reference loop (USDT
 * provider "loopscope", ABI in loop/include/lsl_probes.h).
 *
 * One hit per iteration carries everything: poll_start hands over the loop's
 * per-iteration record (every phase run since the previous poll entry, and when the
 * previous poll wait returned, which closes that blocked span). timer_fired and the
 * two *_drain_end probes fire only when there is a timer callback or a non-empty
 * drain. Aggregation stays in the kernel,
 * one struct refloop_loop per loop thread; finished episodes go out through a ring
 * buffer. Live state (the phase running right now) is not probed at all: the agent
 * reads it from the same record in the target's memory when it wants it.
 *
 * Clock: bpf_ktime_get_ns() is CLOCK_MONOTONIC, the clock the loop stamps the record
 * with, so the loop's timestamps and ours compare directly.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "refloop.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load (rodata). */
const volatile __u32 targ_tgid = 0;
const volatile __u64 stall_threshold_ns = 100000000ull;
const volatile __u64 attach_ns = 0;	/* CLOCK_MONOTONIC when the agent began attaching */
const volatile __u64 text_lo = 0, text_hi = 0;	/* the loop binary's code (stack scans) */

/* Written by user space at any time (bss): raw_on, it reads the samples ring;
 * raw_all, it wants every sample of a loop thread (a profile), not only those of a
 * phase run past a quarter of the stall threshold. */
__u32 raw_on = 0;
__u32 raw_all = 0;

/* Never written: the zeroed initial value of a new loop (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct refloop_loop);
} zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REFLOOP_MAX_LOOPS);
	__type(key, __u32);		/* loop thread id */
	__type(value, struct refloop_loop);
} loops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, REFLOOP_RINGBUF_BYTES);
} episodes SEC(".maps");

#include "stack_sample.bpf.h"

/* Loop threads that could not get a slot (more than REFLOOP_MAX_LOOPS). */
__u64 untracked_hits = 0;

static __always_inline void hist_add(struct ls_hist *h, __u64 v)
{
	/* 64-bit on purpose: a 32-bit index is zero-extended into a fresh register and
	 * the verifier loses the bound checked below. */
	__u64 idx = ls_hist_index(v);

	/* ls_hist_index() already bounds idx; the verifier cannot see that. */
	barrier_var(idx);
	if (idx >= LS_HIST_BUCKETS)
		idx = LS_HIST_BUCKETS - 1;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	h->bucket[idx]++;
}

/* This thread's loop, or NULL when the process is not ours or it has no slot yet. */
static __always_inline struct refloop_loop *this_loop(__u32 *tid)
{
	__u64 id = bpf_get_current_pid_tgid();

	if ((__u32)(id >> 32) != targ_tgid)
		return NULL;
	*tid = (__u32)id;
	return bpf_map_lookup_elem(&loops, tid);
}

static __always_inline void emit(struct refloop_loop *l, __u32 tid, __u32 kind, __u32 phase,
				 __u64 start, __u64 end, __u64 callbacks)
{
	struct refloop_episode *e = bpf_ringbuf_reserve(&episodes, sizeof(*e), 0);

	if (!e) {
		l->drops++;	/* counted, never silent */
		return;
	}
	e->tid = tid;
	e->kind = kind;
	e->phase = phase;
	e->_pad = 0;
	e->start_ns = start;
	e->end_ns = end;
	e->callbacks = callbacks;
	bpf_ringbuf_submit(e, 0);	/* rare: the wake-up is worth it */
	l->episodes++;
}

/* Account every phase run of the record that finished since the previous poll entry
 * (prev): poll, check, close of the last iteration and timers..prepare of this one.
 * first: this is the first poll entry seen (prev = 0); then runs that started at or
 * after attach_ns are accounted, and a stall that was already running at the attach
 * (ended after it) is still an episode: the agent may have announced it live, and the
 * ring buffer must finish it. */
static __always_inline void account_record(struct refloop_loop *l, __u32 tid, __u64 rec, __u64 prev,
					   int first)
{
	struct lsl_probe_record r;
	__u64 thr = stall_threshold_ns;

	if (bpf_probe_read_user(&r, sizeof(r), (const void *)rec) || r.abi != LSL_PROBE_ABI)
		return;
#pragma unroll
	for (int p = 0; p < LSL_PROBE_NPHASES; p++) {
		__u64 s = r.phase[p].start_ns, e = r.phase[p].end_ns;

		if (!s || e < s || e < prev)
			continue;
		if (first && e < attach_ns)
			continue;
		if (!first || s >= attach_ns)
			hist_add(&l->phase[p], e - s);
		/* The poll phase's wait is idle time, not a stall: only its callbacks count. */
		if (p == LSL_PROBE_POLL && l->poll_end_ns >= s && l->poll_end_ns <= e)
			s = l->poll_end_ns;
		else if (p == LSL_PROBE_POLL && first)
			continue;	/* its wait's end unseen: wait and callbacks cannot be told apart */
		if (e - s > thr) {
			l->stall_episodes++;
			emit(l, tid, REFLOOP_EP_STALL, p, s, e, 0);
		}
	}
	if (r.last_iter_start_ns && r.last_iter_end_ns >= r.last_iter_start_ns && r.last_iter_end_ns >= prev &&
	    (!first || r.last_iter_start_ns >= attach_ns))
		hist_add(&l->iteration, r.last_iter_end_ns - r.last_iter_start_ns);
}

/* poll_start(loop*, timeout_ms, record*) */
SEC("usdt")
int poll_start(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns(), prev, ret = 0;
	struct refloop_loop *l;
	__u32 tid = 0;
	long rec = 0;
	int seeded;

	l = this_loop(&tid);
	seeded = l != NULL;
	if (!l) {
		void *z;
		__u32 k = 0;

		if ((__u32)(bpf_get_current_pid_tgid() >> 32) != targ_tgid)
			return 0;
		z = bpf_map_lookup_elem(&zero, &k);
		if (!z)
			return 0;
		bpf_map_update_elem(&loops, &tid, z, BPF_NOEXIST);
		l = bpf_map_lookup_elem(&loops, &tid);
		if (!l) {
			__sync_fetch_and_add(&untracked_hits, 1);
			return 0;
		}
	}
	l->probe_hits++;
	l->last_event_ns = now;
	bpf_usdt_arg(ctx, 2, &rec);
	if (rec)
		bpf_probe_read_user(&ret, sizeof(ret),
				    (const void *)(rec + __builtin_offsetof(struct lsl_probe_record, poll_return_ns)));

	prev = l->poll_start_ns;
	/* The previous wait's return, as the loop stamped it right after epoll_wait. */
	if (prev && ret >= prev && ret <= now && l->record == (__u64)rec) {
		l->idle_ns += ret - prev;
		hist_add(&l->poll_wait, ret - prev);
		l->poll_end_ns = ret;
	} else if (!prev && ret > l->poll_end_ns && ret <= now) {
		/* A return before our first entry (a wait in progress at the attach, or
		 * earlier): not idle time we measured, but where that poll phase's
		 * callbacks began. */
		l->poll_end_ns = ret;
	}
	/* A complete not-polling span needs the previous entry and its return, in the
	 * same loop (a thread may run one loop after another: a new record restarts). */
	if (prev && l->poll_end_ns >= prev && l->record == (__u64)rec) {
		__u64 span = now - l->poll_end_ns;

		l->iterations++;
		l->busy_ns += span;
		hist_add(&l->delay, span);
		if (rec)
			account_record(l, tid, (__u64)rec, prev, 0);
	} else if (!prev && rec) {
		/* The first entry: what the record holds since the attach counts too. */
		account_record(l, tid, (__u64)rec, 0, 1);
		/* Known from the registry (the agent seeded the entry before attaching),
		 * so from the attach to here the loop was running, or waiting until the
		 * return the record gave: that running span is busy time (no delay sample).
		 * A wait in progress at the attach is not idle time we measured. */
		if (seeded && now > attach_ns)
			l->busy_ns += now - (l->poll_end_ns > attach_ns && l->poll_end_ns <= now
					     ? l->poll_end_ns : attach_ns);
	}
	if (!l->first_poll_start_ns)
		l->first_poll_start_ns = now;
	l->record = (__u64)rec;
	l->poll_start_ns = now;
	return 0;
}

/* timer_fired(loop*, due_ns, now_ns): lateness as the loop saw it. */
SEC("usdt")
int timer_fired(struct pt_regs *ctx)
{
	struct refloop_loop *l;
	__u32 tid = 0;
	long due = 0, now = 0;

	l = this_loop(&tid);
	if (!l)
		return 0;
	l->probe_hits++;
	bpf_usdt_arg(ctx, 1, &due);
	bpf_usdt_arg(ctx, 2, &now);
	hist_add(&l->timer_lateness, (__u64)now > (__u64)due ? (__u64)now - (__u64)due : 0);
	return 0;
}

/* *_drain_end(loop*, start_ns, callbacks, queued_during) */
static __always_inline int drain_end(struct pt_regs *ctx, int ticks)
{
	__u64 now = bpf_ktime_get_ns(), d;
	struct refloop_drain *dr;
	struct refloop_loop *l;
	__u32 tid = 0;
	long start = 0, cbs = 0;

	l = this_loop(&tid);
	if (!l)
		return 0;
	l->probe_hits++;
	l->last_event_ns = now;
	bpf_usdt_arg(ctx, 1, &start);
	bpf_usdt_arg(ctx, 2, &cbs);
	dr = ticks ? &l->ticks : &l->microtasks;
	d = now > (__u64)start ? now - (__u64)start : 0;
	dr->drains++;
	dr->callbacks += (__u64)cbs;
	hist_add(&dr->duration, d);
	hist_add(&dr->per_drain, (__u64)cbs);
	if (d > stall_threshold_ns) {
		__u32 phase = LSL_PROBE_NONE;

		dr->starvation_episodes++;
		if (l->record)
			bpf_probe_read_user(&phase, sizeof(phase),
					    (const void *)(l->record + __builtin_offsetof(struct lsl_probe_record, live_phase)));
		emit(l, tid, ticks ? REFLOOP_EP_TICK_STARVATION : REFLOOP_EP_MICROTASK_STARVATION, phase,
		     (__u64)start, now, (__u64)cbs);
	}
	return 0;
}

SEC("usdt")
int tick_drain_end(struct pt_regs *ctx)
{
	return drain_end(ctx, 1);
}

SEC("usdt")
int microtask_drain_end(struct pt_regs *ctx)
{
	return drain_end(ctx, 0);
}

/* The stack sampler (a cpu-clock event on every CPU, userspace/backends/sampler.h).
 * Returns at once unless the interrupted thread is one of the target's loops inside
 * a phase run that has lasted a quarter of the stall threshold (or, for a profile,
 * any of its samples); then the stack goes to user space under the run's start, the
 * start_ns its stall episode will have (for poll: the wait's return). The phase in
 * progress comes from the loop's own record, so this costs the loop no probe. */
SEC("perf_event")
int rl_sample(struct bpf_perf_event_data *ctx)
{
	__u64 now = bpf_ktime_get_ns(), since = 0, ret = 0;
	__u32 tid = 0, phase = LSL_PROBE_NONE;
	struct refloop_loop *l;
	const void *rec;

	if (!raw_on)
		return 0;
	l = this_loop(&tid);
	if (!l || !l->record)
		return 0;
	rec = (const void *)l->record;
	if (bpf_probe_read_user(&phase, sizeof(phase), rec + __builtin_offsetof(struct lsl_probe_record, live_phase)) ||
	    bpf_probe_read_user(&since, sizeof(since),
				rec + __builtin_offsetof(struct lsl_probe_record, live_phase_since_ns)))
		return 0;
	if (phase >= LSL_PROBE_NPHASES)
		since = 0;
	else if (phase == LSL_PROBE_POLL &&
		 !bpf_probe_read_user(&ret, sizeof(ret), rec + __builtin_offsetof(struct lsl_probe_record, poll_return_ns)) &&
		 ret >= since)
		since = ret;	/* the wait is idle: the run is its callbacks */
	if (!raw_all && (!since || now < since || now - since < stall_threshold_ns / 4))
		return 0;
	if (raw_sample(ctx, tid, since, now, 0))
		l->sample_drops++;
	return 0;
}
