/* histogram.c: quantiles, deltas and merges of the shared log-linear histogram. */
#include <math.h>
#include <string.h>

#include "histogram.h"

uint64_t ls_hist_bucket_lo(uint32_t idx)
{
	uint32_t e, sub;

	if (idx < LS_HIST_SUB)
		return idx;
	e = (idx - LS_HIST_SUB) / LS_HIST_SUB + LS_HIST_SUB_BITS;
	sub = (idx - LS_HIST_SUB) % LS_HIST_SUB;
	return (uint64_t)(LS_HIST_SUB + sub) << (e - LS_HIST_SUB_BITS);
}

uint64_t ls_hist_bucket_hi(uint32_t idx)
{
	if (idx + 1 >= LS_HIST_BUCKETS)
		return UINT64_MAX;
	return ls_hist_bucket_lo(idx + 1);
}

void ls_hist_add(struct ls_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	h->bucket[ls_hist_index(v)]++;
}

void ls_hist_delta(const struct ls_hist *cur, const struct ls_hist *prev, struct ls_hist *out)
{
	int top = -1;

	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++) {
		/* A counter that went backwards means the source restarted: keep cur. */
		out->bucket[i] = cur->bucket[i] >= prev->bucket[i] ? cur->bucket[i] - prev->bucket[i] : cur->bucket[i];
		if (out->bucket[i])
			top = (int)i;
	}
	out->count = cur->count >= prev->count ? cur->count - prev->count : cur->count;
	out->sum = cur->sum >= prev->sum ? cur->sum - prev->sum : cur->sum;
	if (top < 0)
		out->max = 0;
	else if (cur->max > prev->max || (uint32_t)top == ls_hist_index(cur->max))
		out->max = cur->max;	/* the interval holds the all-time max */
	else
		/* The exact interval max is lost; its bucket bounds it within 6.25%. */
		out->max = ls_hist_bucket_hi((uint32_t)top) - 1;
}

uint64_t ls_hist_quantile(const struct ls_hist *h, double q)
{
	uint64_t total = 0, rank, seen = 0;

	/* Sum the buckets rather than trusting count: a torn read of a live map can
	 * leave them a sample or two apart. */
	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++)
		total += h->bucket[i];
	if (total == 0)
		return 0;
	if (q <= 0)
		q = 0;
	if (q >= 1)
		return h->max;
	/* Nearest rank, as the loop's ground truth defines it: the smallest sample with at
	 * least q of all samples at or below it, i.e. 0-based rank ceil(q * total) - 1. */
	rank = (uint64_t)ceil(q * (double)total);
	rank = rank ? rank - 1 : 0;
	if (rank >= total)
		rank = total - 1;
	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen > rank) {
			uint64_t lo = ls_hist_bucket_lo(i), hi = ls_hist_bucket_hi(i);
			uint64_t mid = hi == UINT64_MAX ? lo : lo + (hi - 1 - lo) / 2;
			return h->max && mid > h->max ? h->max : mid;
		}
	}
	return h->max;
}
