/* stack_sample.bpf.h: the stack sampler's capture, shared by the probe sets that
 * sample a loop thread's stack (nodeuv.bpf.c, refloop.bpf.c): the interrupted
 * thread's user stack walked by frame pointer and its kernel stack, sent as one
 * struct ls_raw (stack_raw.h) through the `samples` ring buffer defined here.
 *
 * The including program declares, before including this file:
 *   const volatile __u64 text_lo, text_hi;  the target's main code range (a return
 *                                           address must land there for a stack
 *                                           scan to accept a frame record)
 */
#ifndef LS_STACK_SAMPLE_BPF_H
#define LS_STACK_SAMPLE_BPF_H

#include "stack_raw.h"

/* Raw stack samples (struct ls_raw, variable length; the Node set also sends its
 * HOT/COOL notices here). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ls_raw);
} raw_scratch SEC(".maps");

/* The top of a user stack, searched for a frame record when %rbp is not one. */
#define SCAN_WORDS 512
struct scan_buf {
	__u64 w[SCAN_WORDS];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_buf);
} scan_scratch SEC(".maps");

struct scan_ctx {
	struct scan_buf *sb;
	__u64 sp;
	__u64 found;
};

/* bpf_loop body: is word i of the stack top a frame record? */
static long scan_word(__u32 i, void *arg)
{
	struct scan_ctx *c = arg;
	__u64 w, a, ret, up, w2, k = i;

	barrier_var(k);
	if (k >= SCAN_WORDS - 1)
		return 1;
	w = c->sb->w[k];
	ret = c->sb->w[k + 1];
	a = c->sp + 8ull * k;
	if (!(w > a && w - a < (1u << 20) && !(w & 7) && ret >= text_lo && ret < text_hi))
		return 0;
	/* the record it points to must go on up too, when it is in view */
	up = (w - c->sp) / 8;
	if (up < SCAN_WORDS) {
		up &= SCAN_WORDS - 1;
		barrier_var(up);
		if (up >= SCAN_WORDS)
			return 0;
		w2 = c->sb->w[up];
		if (!(w2 > w && w2 - w < (1u << 20)))
			return 0;
	}
	c->found = a;
	return 1;
}

/* Copy the interrupted thread's user stack by frame pointer (ls_raw's layout) and
 * its kernel stack, and send them; -1 when the ring was full (the caller counts it). The user registers come from the task, not the
 * perf context: the tick may have landed in a syscall. */
static __always_inline int raw_sample(void *ctx, __u32 tid, __u64 span, __u64 now, __u32 flags)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u32 z = 0, i, n = 0;
	__u64 fp = 0, sp = 0, size;
	struct ls_raw *r = bpf_map_lookup_elem(&raw_scratch, &z);
	long k;

	if (!r || !regs)
		return 0;
	r->type = LS_RAW_SAMPLE;
	r->tid = tid;
	r->span_start = span;
	r->time = now;
	r->flags = flags;
	r->pc = 0;
	bpf_probe_read_kernel(&r->pc, sizeof(r->pc), &regs->ip);
	bpf_probe_read_kernel(&fp, sizeof(fp), &regs->bp);
	bpf_probe_read_kernel(&sp, sizeof(sp), &regs->sp);
	/* A leaf without a frame pointer (hand-written assembly, say) leaves %rbp
	 * holding data: then start from the first word near the stack top that looks
	 * like a frame record (a saved fp just above it, a code address after it).
	 * User space checks each return address it then finds (LS_RAW_F_SCANNED). */
	if (!(fp > sp && fp - sp < (8u << 20)) && sp) {
		struct scan_buf *sb = bpf_map_lookup_elem(&scan_scratch, &z);

		fp = 0;
		if (sb && !bpf_probe_read_user(sb->w, sizeof(sb->w), (void *)sp)) {
			struct scan_ctx sc = { .sb = sb, .sp = sp };

			bpf_loop(SCAN_WORDS - 1, scan_word, &sc, 0);
			fp = sc.found;
		}
		flags |= LS_RAW_F_SCANNED;
		r->flags = flags;
	}
	r->fp = fp;
	for (i = 0; i < LS_RAW_DEPTH; i++) {
		__u64 next;

		if (!fp || (fp & 7) || fp < LS_RAW_BELOW)
			break;
		if (bpf_probe_read_user(&r->frames[i], sizeof(r->frames[i]), (void *)(fp - LS_RAW_BELOW)))
			break;
		n = i + 1;
		next = r->frames[i].slot[LS_RAW_FP_SLOT];
		if (next <= fp)	/* stacks grow down: a caller's frame is above */
			break;
		fp = next;
	}
	k = bpf_get_stack(ctx, r->kip, sizeof(r->kip), 0);
	r->nkframes = k > 0 ? (__u16)(k / sizeof(__u64)) : 0;
	if (r->nkframes)
		r->flags |= LS_RAW_F_KERNEL;
	r->nframes = (__u16)n;
	barrier_var(n);
	if (n > LS_RAW_DEPTH)
		n = LS_RAW_DEPTH;
	size = offsetof(struct ls_raw, frames) + (__u64)n * sizeof(struct ls_raw_frame);
	return bpf_ringbuf_output(&samples, r, size, 0) ? -1 : 0;
}

#endif /* LS_STACK_SAMPLE_BPF_H */
