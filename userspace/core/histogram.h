/* histogram.h: reading the shared log-linear histogram (bpf/hist.h).
 * All values are nanoseconds; conversion to seconds happens only in ls_ns_to_s(). */
#ifndef LS_HISTOGRAM_H
#define LS_HISTOGRAM_H

#include <stdint.h>
#include "hist.h"

/* Smallest and one-past-largest value that lands in bucket idx. */
uint64_t ls_hist_bucket_lo(uint32_t idx);
uint64_t ls_hist_bucket_hi(uint32_t idx);

void ls_hist_add(struct ls_hist *h, uint64_t v);
/* out = cur - prev, bucket by bucket (for interval views); max is cur's max when
 * cur gained samples, recomputed from the highest non-empty bucket otherwise. */
void ls_hist_delta(const struct ls_hist *cur, const struct ls_hist *prev, struct ls_hist *out);

/* Quantile q in [0,1] in ns: the midpoint of the bucket holding the nearest-rank
 * sample (the smallest with at least q of all samples at or below it), clamped to the
 * exact max. 0 for an empty histogram. */
uint64_t ls_hist_quantile(const struct ls_hist *h, double q);

static inline double ls_ns_to_s(uint64_t ns) { return (double)ns / 1e9; }

#endif
