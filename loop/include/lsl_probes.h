/* lsl_probes.h: the probe ABI of the reference loop (USDT provider "loopscope").
 *
 * Shared by the loop (loop/src), the BPF programs (bpf/refloop.bpf.c) and the agent.
 * Fixed-width types only, so gcc and clang -target bpf lay the structs out alike.
 *
 * Cost model (bpf/README.md, "What a probe costs"): one USDT hit costs from well under
 * a microsecond to several, machine by machine, so the default probe set must stay at
 * ~2-3 hits per loop iteration. The loop therefore
 * keeps a per-iteration record (struct lsl_probe_record) in its own memory, filled
 * only while accounting is on or a tracer has raised a semaphore, and hands its
 * address to the tracer at poll entry: one hit carries every phase of the last
 * iteration. Per-phase probes exist for a finer (dearer) tier and for humans.
 *
 * Probes (provider "loopscope"; every probe has a semaphore, so an untraced probe
 * costs one predictable load and branch). Times are CLOCK_MONOTONIC nanoseconds,
 * the clock bpf_ktime_get_ns() reads.
 *
 * | probe                | arguments                                              | fires            |
 * |----------------------|--------------------------------------------------------|------------------|
 * | iter_start           | loop*, iteration                                       | every iteration  |
 * | iter_end             | loop*, iteration                                       | every iteration  |
 * | phase_start          | loop*, phase (enum lsl_probe_phase)                    | every phase      |
 * | phase_end            | loop*, phase, callbacks run                            | every phase      |
 * | poll_start           | loop*, timeout_ms (-1 = infinite), record*             | every iteration  |
 * | poll_end             | loop*, events returned                                 | every iteration  |
 * | timer_fired          | loop*, due_ns, now_ns                                  | per timer cb     |
 * | tick_drain_start     | loop*, queued                                          | non-empty drains |
 * | tick_drain_end       | loop*, start_ns, callbacks run, queued during the drain| non-empty drains |
 * | microtask_drain_start| loop*, queued                                          | non-empty drains |
 * | microtask_drain_end  | loop*, start_ns, callbacks run, queued during the drain| non-empty drains |
 * | callback_start       | loop*, phase, callback address                         | per callback     |
 * | callback_end         | loop*, phase                                           | per callback     |
 *
 * The default BPF tier attaches poll_start, timer_fired and the two *_drain_end
 * probes: 1 hit per iteration (the record carries the previous poll's return) plus
 * one per timer callback and per non-empty drain. Live state (which phase or drain is running, since when) is read
 * from the record by a low-rate sampler, not by per-phase probes.
 */
#ifndef LSL_PROBES_H
#define LSL_PROBES_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define LSL_PROBE_PROVIDER "loopscope"
/* The same probes, each on a 5-byte nop right after the 1-byte one (same arguments,
 * same semaphore): cheaper to probe where the kernel optimises such a uprobe into a
 * call (Linux 6.18+). A tracer attaches to one provider or the other, never both. */
#define LSL_PROBE_PROVIDER_NOP5 "loopscope_nop5"
#define LSL_PROBE_ABI 2

/* Phases in Node.js order. The numbering is ABI: the BPF side indexes by it. */
enum lsl_probe_phase {
	LSL_PROBE_TIMERS = 0,
	LSL_PROBE_PENDING = 1,
	LSL_PROBE_IDLE = 2,
	LSL_PROBE_PREPARE = 3,
	LSL_PROBE_POLL = 4,	/* epoll wait plus the I/O callbacks it returned */
	LSL_PROBE_CHECK = 5,
	LSL_PROBE_CLOSE = 6,
	LSL_PROBE_NPHASES = 7,
	LSL_PROBE_NONE = 0xff,	/* between phases, or the loop is not running */
};

enum lsl_probe_drain {
	LSL_DRAIN_NONE = 0,
	LSL_DRAIN_TICKS = 1,		/* process.nextTick queue */
	LSL_DRAIN_MICROTASKS = 2,	/* promise microtask queue */
};

/* One run of one phase. start_ns == 0 means "never ran since the record was armed". */
struct lsl_probe_phase_run {
	__u64 start_ns;
	__u64 end_ns;
	__u32 callbacks;	/* callbacks the phase ran (for poll: I/O callbacks) */
	__u32 _pad;
};

/*
 * The record a loop fills while accounting is on or a tracer is attached. Its
 * address is poll_start's third argument and it lives as long as the loop.
 *
 * At poll_start of iteration N, phase[] holds exactly one fresh run of every phase
 * since the previous poll_start: poll, check and close of iteration N-1 and timers,
 * pending, idle, prepare of N. A reader keeps only runs whose start_ns is at or after
 * the previous poll_start it saw (older runs predate the attach).
 */
struct lsl_probe_record {
	__u32 abi;		/* LSL_PROBE_ABI */
	__u32 size;		/* sizeof(struct lsl_probe_record) */
	__u64 iteration;	/* iterations started so far */

	/* Live state, written at every phase and drain boundary. */
	__u32 live_phase;	/* enum lsl_probe_phase, LSL_PROBE_NONE outside */
	__u32 live_drain;	/* enum lsl_probe_drain */
	__u64 live_phase_since_ns;
	__u64 live_drain_since_ns;
	__u64 live_drain_callbacks;	/* callbacks run so far in the drain in progress */

	/* The last completed iteration (timers start to close end). */
	__u64 last_iter_start_ns;
	__u64 last_iter_end_ns;

	struct lsl_probe_phase_run phase[LSL_PROBE_NPHASES];

	/* When the latest poll wait returned (the loop's clock right after epoll_wait;
	 * the poll phase's start when it skipped the syscall). At poll_start it is the
	 * previous iteration's: with the previous poll_start it gives that wait and the
	 * not-polling span since, so one probe hit per iteration times both. Set only
	 * while the record is on; older than the previous poll_start = not timed. */
	__u64 poll_return_ns;
};

/*
 * The registry: how a tracer finds the records of loops that are running right now,
 * without waiting for a probe to fire (a loop stuck in a long callback fires none,
 * and that is exactly the stall a tracer attaching now wants to see).
 *
 * liblsl defines one global `struct lsl_probe_registry` under the symbol
 * LSL_PROBE_REGISTRY_SYMBOL, in initialized data (.data, so it has file bytes and a
 * file-backed mapping). lsl_run() claims a free slot for its loop on entry (record
 * address first, then tid; both with release stores) and frees it on return (tid
 * first). A reader (userspace/backends/refloop.c) resolves the symbol with libelf in the ELF
 * that holds the probes, adds the load bias read from /proc/PID/maps, reads the whole
 * struct with process_vm_readv, and keeps slots with both tid and record non-zero.
 * A slot read mid-update is either skipped (tid 0) or names a record that is still
 * valid (records live as long as their loop). Loops beyond LSL_PROBE_REGISTRY_MAX
 * running at once are not listed; the tracer still learns them at poll_start.
 */
#define LSL_PROBE_REGISTRY_SYMBOL "lsl_probe_registry"
#define LSL_PROBE_REGISTRY_MAX 16

struct lsl_probe_registry_slot {
	__u64 record;		/* address of the loop's struct lsl_probe_record, 0 = free */
	__u32 tid;		/* thread running lsl_run() on it, 0 = not (yet) running */
	__u32 _pad;
};

struct lsl_probe_registry {
	__u32 abi;		/* LSL_PROBE_ABI (non-zero: keeps the struct in .data) */
	__u32 max;		/* LSL_PROBE_REGISTRY_MAX */
	struct lsl_probe_registry_slot slot[LSL_PROBE_REGISTRY_MAX];
};

#endif /* LSL_PROBES_H */
