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

/* Leaves whose return address a scan looks for (struct ls_leaf; unwind.c fills
 * them through the skeleton's .bss). */
struct ls_leaf leaves[LS_LEAF_MAX];

struct scan_ctx {
	struct scan_buf *sb;
	__u64 sp;
	__u64 found;
	__u32 start;		/* first word looked at */
};

/* Is word k of the stack top a frame record: a saved fp above it (whose own record,
 * when in view, goes on up too) and a return address into the target's code? */
static __always_inline int is_record(const struct scan_buf *sb, __u64 sp, __u64 k)
{
	__u64 w, a, ret, up, w2;

	if (k >= SCAN_WORDS - 1)
		return 0;
	barrier_var(k);
	if (k >= SCAN_WORDS - 1)
		return 0;
	w = sb->w[k];
	ret = sb->w[k + 1];
	a = sp + 8ull * k;
	if (!(w > a && w - a < (1u << 20) && !(w & 7) && ret >= text_lo && ret < text_hi))
		return 0;
	up = (w - sp) / 8;
	if (up < SCAN_WORDS) {
		up &= SCAN_WORDS - 1;
		barrier_var(up);
		if (up >= SCAN_WORDS)
			return 0;
		w2 = sb->w[up];
		if (!(w2 > w && w2 - w < (1u << 20)))
			return 0;
	}
	return 1;
}

/* bpf_loop body: is word start + i of the stack top a frame record? */
static long scan_word(__u32 i, void *arg)
{
	struct scan_ctx *c = arg;
	__u64 k = (__u64)i + c->start;

	if (k >= SCAN_WORDS - 1)
		return 1;
	if (!is_record(c->sb, c->sp, k))
		return 0;
	c->found = c->sp + 8ull * k;
	return 1;
}

struct ret_ctx {
	struct scan_buf *sb;
	__u64 target[LS_LEAF_TARGETS];
	__s64 found;		/* word index, -1: none */
};

/* bpf_loop body, from the top of the window down: is word SCAN_WORDS-1-i a return
 * address following a direct call (e8 rel32) of one of the leaf's entries? The
 * highest one is taken: frames above the leaf's are live callers (a leaf calls
 * nothing, so none of them called it), while the leaf's own frame may hold stale
 * return addresses of earlier calls. */
static long scan_ret(__u32 i, void *arg)
{
	struct ret_ctx *c = arg;
	__u64 k = SCAN_WORDS - 1 - (__u64)i, w, t;
	__u8 b[5];
	__s32 rel;

	if (k >= SCAN_WORDS)
		return 1;
	barrier_var(k);
	if (k >= SCAN_WORDS)
		return 1;
	w = c->sb->w[k];
	if (w < text_lo || w >= text_hi || bpf_probe_read_user(b, sizeof(b), (void *)(w - 5)) || b[0] != 0xe8)
		return 0;
	__builtin_memcpy(&rel, b + 1, sizeof(rel));
	t = w + (__s64)rel;
	for (int j = 0; j < LS_LEAF_TARGETS; j++) {
		if (c->target[j] && t == c->target[j]) {
			c->found = (__s64)k;
			return 1;
		}
	}
	return 0;
}

/* The scan, for a leaf user space has registered (leaves[]): its return address R
 * in the window, then the caller's frame record: the saved %rbp among the six words
 * the leaf pushed below R when it is a record in view, else the first record above R.
 * Sets *ret0 and returns the record's address (0: none); *ret0 = 0 when R is not in
 * view or pc is in no registered leaf. */
static __always_inline __u64 scan_leaf(struct scan_buf *sb, __u64 sp, __u64 pc, __u64 *ret0)
{
	struct ret_ctx rc = { .sb = sb, .found = -1 };
	struct scan_ctx sc = { .sb = sb, .sp = sp };
	__u64 q, v, vk;
	int i, hit = -1;

	*ret0 = 0;
	for (i = 0; i < LS_LEAF_MAX; i++) {
		if (!leaves[i].lo)
			break;
		if (pc >= leaves[i].lo && pc < leaves[i].hi) {
			hit = i;
			break;
		}
	}
	if (hit < 0 || hit >= LS_LEAF_MAX)
		return 0;
	for (i = 0; i < LS_LEAF_TARGETS; i++)
		rc.target[i] = leaves[hit].target[i];
	bpf_loop(SCAN_WORDS, scan_ret, &rc, 0);
	if (rc.found < 0 || rc.found >= SCAN_WORDS)
		return 0;
	q = (__u64)rc.found & (SCAN_WORDS - 1);
	*ret0 = sb->w[q];
	for (i = 1; i <= 6; i++) {
		if (q < (__u64)i)
			break;
		v = sb->w[(q - i) & (SCAN_WORDS - 1)];
		if (v <= sp + 8 * q || (v & 7))
			continue;
		vk = (v - sp) / 8;
		if (is_record(sb, sp, vk))
			return v;
	}
	sc.start = (__u32)q + 1;
	bpf_loop(SCAN_WORDS - 1, scan_word, &sc, 0);
	return sc.found;
}

/* Copy the interrupted thread's user stack by frame pointer (ls_raw's layout) and
 * its kernel stack, and send them; -1 when the ring was full (the caller counts it). The user registers come from the task, not the
 * perf context: the tick may have landed in a syscall. */
static __always_inline int raw_sample(void *ctx, __u32 tid, __u64 span, __u64 now, __u32 flags)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u32 z = 0, i, n = 0;
	__u64 fp = 0, sp = 0, ret0 = 0, size;
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

			fp = scan_leaf(sb, sp, r->pc, &ret0);
			if (ret0) {
				flags |= LS_RAW_F_LEAFRET;
			} else {
				bpf_loop(SCAN_WORDS - 1, scan_word, &sc, 0);
				fp = sc.found;
			}
		}
		flags |= LS_RAW_F_SCANNED;
		r->flags = flags;
	}
	r->fp = fp;
	r->ret0 = ret0;
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
