/* hist.h: the log-linear histogram shared by every BPF program and the agent.
 *
 * HDR-style buckets over nanoseconds: values 0..15 get a bucket each; above that
 * every power of two is split into 16 equal sub-buckets, so a bucket is at most
 * 1/16 = 6.25% wide and a quantile reported at the bucket midpoint is within ~3.1%
 * of the exact value (the agent promises 10%). count, sum and max are exact.
 * Values of 2^40 ns (~18 min) and above share the last bucket (max stays exact).
 *
 * Fixed-width types only (included by clang -target bpf and by gcc).
 */
#ifndef LS_HIST_H
#define LS_HIST_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define LS_HIST_SUB_BITS 4
#define LS_HIST_SUB (1u << LS_HIST_SUB_BITS)	/* sub-buckets per power of two */
#define LS_HIST_MAX_LOG2 40			/* first value past the range: 2^40 ns */
#define LS_HIST_BUCKETS (LS_HIST_SUB + (LS_HIST_MAX_LOG2 - LS_HIST_SUB_BITS) * LS_HIST_SUB)

struct ls_hist {
	__u64 count;
	__u64 sum;	/* ns */
	__u64 max;	/* ns */
	__u64 bucket[LS_HIST_BUCKETS];
};

/* floor(log2(v)) for v > 0, without loops (the BPF verifier likes it that way). */
static inline __u32 ls_log2_u64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

/* Bucket index of a value; always < LS_HIST_BUCKETS. */
static inline __u32 ls_hist_index(__u64 v)
{
	__u32 e, idx;

	if (v < LS_HIST_SUB)
		return (__u32)v;
	e = ls_log2_u64(v);
	if (e >= LS_HIST_MAX_LOG2)
		return LS_HIST_BUCKETS - 1;
	idx = LS_HIST_SUB + (e - LS_HIST_SUB_BITS) * LS_HIST_SUB +
	      (__u32)((v >> (e - LS_HIST_SUB_BITS)) - LS_HIST_SUB);
	return idx < LS_HIST_BUCKETS ? idx : LS_HIST_BUCKETS - 1;
}

#endif /* LS_HIST_H */
