/* libuv.h: what the Node.js / libuv backend learns about a target's libuv without
 * running it, from its ELF (lib/elf.h): the libuv version, uv_loop_t / uv_timer_t
 * field offsets (DWARF via libdw, else a table per version), and uprobe sites inside
 * uv_run and around V8 functions chosen with a real x86-64 decoder (Capstone).
 *
 * Addresses are link-time virtual addresses of the ELF (add the load bias for the
 * running process); uprobes take file offsets (ls_elf_file_offset()).
 * Errors: negative errno; functions that can explain themselves take why/whylen.
 */
#ifndef LS_LIBUV_H
#define LS_LIBUV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "elf.h"

/* libuv version as UV_VERSION_HEX ((major << 16) | (minor << 8) | patch), decoded
 * from the `mov $imm, %eax` that uv_version() returns. */
int lu_version(const struct ls_elf *e, const struct ls_elf_sym *uv_version, uint32_t *hex);

/* The loop struct fields the probes read. */
struct lu_offsets {
	uint32_t heap_min;	/* uv_loop_t.timer_heap.min */
	uint32_t heap_nelts;	/* uv_loop_t.timer_heap.nelts */
	uint32_t time;		/* uv_loop_t.time (ms) */
	uint32_t backend_fd;	/* uv_loop_t.backend_fd */
	uint32_t loop_size;	/* sizeof(uv_loop_t) */
	uint32_t timer_loop;	/* uv_timer_t.loop */
	uint32_t timer_node;	/* uv_timer_t.heap_node / .node (where heap pointers point) */
	uint32_t timer_timeout;	/* uv_timer_t.timeout (ms) */
	/* libuv's own loop metrics (the counters Node's eventLoopUtilization() and
	 * uv_metrics_info() read): internal_fields is a pointer in uv_loop_t, the rest
	 * are offsets inside the struct it points to; 0 when absent (mx_count: before
	 * libuv 1.45, no loop_count / events). have_metrics: mx_* are valid. */
	uint32_t have_metrics;
	uint32_t internal_fields;	/* uv_loop_t.internal_fields */
	uint32_t mx_flags;		/* .flags (bit UV_METRICS_IDLE_TIME) */
	uint32_t mx_count;		/* .loop_metrics.metrics.loop_count, then events */
	uint32_t mx_entry;		/* .loop_metrics.provider_entry_time (ns, 0: not idle) */
	uint32_t mx_idle;		/* .loop_metrics.provider_idle_time (ns) */
	char source[48];	/* "DWARF" or "table for libuv 1.44-1.49" */
};
/* From the DWARF of path (struct uv_loop_s and uv_timer_s), -ENOENT without it. */
int lu_offsets_dwarf(const char *path, struct lu_offsets *o);
/* From the per-version table; -ENOTSUP for a version it does not cover. */
int lu_offsets_table(uint32_t version_hex, struct lu_offsets *o);
/* Read the uv_loop_t at addr in pid with process_vm_readv and check the offsets
 * give plausible values (clock, heap, fd, the heap minimum's timer points back at
 * the loop). 0 if plausible, else -EINVAL / -errno with the reason in why. */
int lu_loop_check(pid_t pid, uint64_t addr, const struct lu_offsets *o, char *why, size_t whylen);

/* Node's own version ("20.20.2", process.versions.node) from the running process:
 * node::per_process::metadata at addr starts with versions.node, a libstdc++
 * std::string. -EINVAL if what is there is not a version. */
int lu_node_version(pid_t pid, uint64_t metadata, char *out, size_t len);
/* libuv's loop metrics, read from outside (process_vm_readv, never written). */
#define LU_METRICS_IDLE_TIME 1u	/* internal flags bit: the loop keeps idle time */
struct lu_metrics {
	uint64_t fields;	/* where internal_fields points (0: not read yet) */
	uint32_t flags;
	uint64_t loop_count;	/* iterations (libuv >= 1.45, else 0) */
	uint64_t events;	/* events delivered by the poll (>= 1.45, else 0) */
	uint64_t entry_ns;	/* poll entered at (CLOCK_MONOTONIC), 0 when not idle */
	uint64_t idle_ns;	/* idle time so far, not counting the poll in progress */
	uint64_t time_ms;	/* loop->time: refreshed at least once an iteration */
};
/* Read loop's metrics into m. m->fields is reused when set (one read then). Two
 * reads must agree on the idle pair (the loop thread updates it under a lock we
 * cannot take), up to 4 tries: -EAGAIN if they never did. -EINVAL if the fields are
 * implausible (entry time in the future), -errno if the memory cannot be read. */
int lu_metrics_read(pid_t pid, uint64_t loop, const struct lu_offsets *o, struct lu_metrics *m);
/* Idle time as libuv's uv_metrics_idle_time() gives it at now: with the poll in
 * progress. */
static inline uint64_t lu_metrics_idle_at(const struct lu_metrics *m, uint64_t now)
{
	return m->idle_ns + (m->entry_ns && now > m->entry_ns ? now - m->entry_ns : 0);
}

/* ---- uprobe sites (libuv_sites.c, Capstone) ---- */

/* 1 if the kernel emulates a uprobe on this instruction (direct call, jmp, jcc,
 * push reg, 0x90 nop, or a 0f 1f nop of at most 8 bytes without a 0x66 prefix);
 * 0 if it single-steps it (far dearer: bpf/README.md, "What a probe costs"), and 0
 * for any 5-byte nop, which a kernel may turn into a call that writes below %rsp. */
int lu_insn_emulated(const uint8_t *bytes, size_t len);

struct lu_site {
	uint64_t vaddr;
	uint64_t file_off;	/* filled by the caller (ls_elf_file_offset) for attaching */
	uint32_t cookie;	/* enum nu_boundary, or 0 entry / 1 return for brackets */
	uint32_t len;		/* instruction length */
	char insn[40];		/* "call 0x18b4450" (for -v and tests) */
};

/* The callees of uv_run whose call sites mark phase boundaries (0 when unknown). */
struct lu_uv_callees {
	uint64_t run_idle, run_prepare, io_poll, run_check, run_timers;
};

/* Boundary sites inside uv_run: every direct call of a phase function, and for
 * uv__io_poll, uv__run_check and uv__run_timers the first emulated instruction on
 * the straight-line path after the call (rejected if a branch from outside the
 * region up to the next phase call can land between the call and it). Returns the
 * number of sites (<= max) or -errno; missing lists boundaries that found no site
 * (comma-separated names, "" when complete). */
int lu_uv_run_sites(const struct ls_elf *e, const struct ls_elf_sym *uv_run, const struct lu_uv_callees *c,
		    struct lu_site *out, size_t max, char *missing, size_t missinglen);
/* The calls of an imported function inside fn (here: epoll_wait/epoll_pwait in
 * uv__io_poll), each as two sites: the direct call of the function's PLT stub (cookie
 * 0) and the first emulated instruction on the straight-line path after it (cookie
 * 1), where %rax still holds the call's return value (nothing in between writes it)
 * and no branch from elsewhere lands in between. slots: the GOT slots the stubs jump
 * through (ls_elf_import_slots). Returns the number of sites (2 per call, <= max), or
 * -ENOENT when there is no such call or one call has no exit site (then none is
 * used: a call that is not seen would leave the loop's state wrong). */
int lu_import_call_sites(const struct ls_elf *e, const struct ls_elf_sym *fn, const uint64_t *slots, size_t nslots,
			 struct lu_site *out, size_t max);
/* Every direct call inside fn of the function at target, each a site with cookie
 * (a direct call is emulated). Returns their number (<= max), -ENOENT when fn never
 * calls target directly, -ENOTSUP when fn also jumps to target (a tail call: its
 * return would not come back here), -E2BIG past max, or a decode error. */
int lu_direct_call_sites(const struct ls_elf *e, const struct ls_elf_sym *fn, uint64_t target, uint32_t cookie,
			 struct lu_site *out, size_t max);
/* The first emulated instruction at a function's entry (past endbr64), before any
 * branch; -ENOENT if there is none. */
int lu_entry_site(const struct ls_elf *e, const struct ls_elf_sym *fn, struct lu_site *out);
/* Every way out of fn: ret instructions and direct jumps leaving it (tail calls).
 * -ENOTSUP if fn has an indirect jump (a tail call we could not see) or a conditional
 * jump out of it (no site fires only when it is taken). */
int lu_return_sites(const struct ls_elf *e, const struct ls_elf_sym *fn, struct lu_site *out, size_t max);

/* Where fn stores the return value of its direct call of target: the displacement of
 * the first `mov %rax, disp(%reg)` after the call, with nothing in between writing
 * %rax or branching (Node's Worker constructor stores AllocateEnvironmentThreadId()
 * into its thread_id_ so). -ENOENT if there is no such store. */
int lu_call_result_store(const struct ls_elf *e, const struct ls_elf_sym *fn, uint64_t target, uint32_t *disp);

/* Where a function's code lies however the compiler split it. GCC outlines parts of a
 * function into local symbols named after it ("fn.part.N", "fn.cold", "fn.isra.N",
 * "fn.constprop.N") and leaves fn a thunk that jumps or calls there (V8's
 * MicrotaskQueue::RunMicrotasks in Node 18 is a 0x1d-byte jump to its .part.50).
 * From fn, every direct jmp, jcc or call leaving the code decoded so far is followed
 * when its target lies in such a part of fn, and that part is decoded in turn.
 * Targets of another name are not followed: a function of its own is reached from
 * other callers too, and its time is not fn's. out[0] is fn itself. Returns the number
 * of ranges (<= max; parts past max are left out) or -errno. */
struct lu_range {
	uint64_t lo, hi;	/* [lo, hi), link-time addresses */
};
int lu_code_ranges(const struct ls_elf *e, const char *name, const struct ls_elf_sym *fn, struct lu_range *out,
		   size_t max);

#endif /* LS_LIBUV_H */
