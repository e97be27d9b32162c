/* hist_test.c: the shared log-linear histogram (bpf/hist.h, userspace/core/histogram.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "histogram.h"

/* Every value lands in a bucket whose bounds hold it, and buckets tile the range. */
static void test_bucket_bounds(void **state)
{
	(void)state;
	for (uint32_t i = 0; i + 1 < LS_HIST_BUCKETS; i++)
		assert_int_equal(ls_hist_bucket_hi(i), ls_hist_bucket_lo(i + 1));
	for (uint64_t v = 0; v < (1ull << 41); v = v * 5 / 4 + 1) {
		uint32_t idx = ls_hist_index(v);
		assert_true(idx < LS_HIST_BUCKETS);
		if (v < (1ull << LS_HIST_MAX_LOG2)) {
			assert_true(ls_hist_bucket_lo(idx) <= v);
			assert_true(v < ls_hist_bucket_hi(idx));
		}
	}
	assert_int_equal(ls_hist_index(UINT64_MAX), LS_HIST_BUCKETS - 1);
}

/* Quantiles are within 10% (by design ~3%) of the exact ones, on a skewed sample. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_quantile_accuracy(void **state)
{
	enum { N = 20000 };
	static uint64_t v[N];
	static struct ls_hist h;
	const double qs[] = { 0.5, 0.9, 0.99, 0.999 };

	(void)state;
	memset(&h, 0, sizeof(h));
	srand(7);
	for (int i = 0; i < N; i++) {
		/* log-uniform from 1 us to 1 s */
		double e = 3 + 6.0 * rand() / RAND_MAX;
		double x = 1;
		for (int k = 0; k < 60; k++) x *= 1.0 + (e * 2.302585 / 60);	/* ~exp(e ln 10) */
		v[i] = (uint64_t)x;
		ls_hist_add(&h, v[i]);
	}
	qsort(v, N, sizeof(v[0]), cmp_u64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		uint64_t exact = v[(size_t)(qs[k] * N)];
		uint64_t got = ls_hist_quantile(&h, qs[k]);
		double err = ((double)got - (double)exact) / (double)exact;
		if (err < 0) err = -err;
		if (err > 0.10)
			fail_msg("q%.3f: exact %lu, histogram %lu (%.1f%% off)", qs[k], (unsigned long)exact,
				 (unsigned long)got, err * 100);
	}
	assert_int_equal(ls_hist_quantile(&h, 1.0), v[N - 1]);
	assert_int_equal(h.count, N);
}

static void test_delta(void **state)
{
	static struct ls_hist a, b, d;

	(void)state;
	memset(&a, 0, sizeof(a));
	ls_hist_add(&a, 1000);
	ls_hist_add(&a, 5000000);
	b = a;
	ls_hist_add(&b, 2000);
	ls_hist_add(&b, 3000);
	ls_hist_delta(&b, &a, &d);
	assert_int_equal(d.count, 2);
	assert_int_equal(d.sum, 5000);
	/* the all-time max (5 ms) is not in the interval: the interval max is bounded by its bucket */
	assert_true(d.max >= 3000 && d.max < 3000 * 1.07);
	/* before + interval = after, bucket by bucket */
	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++)
		assert_int_equal(a.bucket[i] + d.bucket[i], b.bucket[i]);
	assert_int_equal(a.count + d.count, b.count);
	assert_int_equal(a.sum + d.sum, b.sum);
	assert_int_equal(ls_hist_quantile(&d, 0), ls_hist_quantile(&d, 0));
	memset(&d, 0, sizeof(d));
	assert_int_equal(ls_hist_quantile(&d, 0.5), 0);
}

/* Nearest rank, like the loop's ground truth: p99 of 100 samples is the 99th, not the
 * 100th; p50 of two samples is the lower one. */
static void test_nearest_rank(void **state)
{
	static struct ls_hist h;

	(void)state;
	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 98; i++)
		ls_hist_add(&h, 1000);
	ls_hist_add(&h, 5000);
	ls_hist_add(&h, 100000);
	uint64_t p99 = ls_hist_quantile(&h, 0.99);
	if (p99 < 4700 || p99 > 5300)
		fail_msg("p99 of 98 x 1us, 5us, 100us: got %lu ns, want ~5000", (unsigned long)p99);
	memset(&h, 0, sizeof(h));
	ls_hist_add(&h, 1000);
	ls_hist_add(&h, 9000);
	uint64_t p50 = ls_hist_quantile(&h, 0.5);
	if (p50 < 950 || p50 > 1050)
		fail_msg("p50 of {1us, 9us}: got %lu ns, want ~1000", (unsigned long)p50);
	assert_true(ls_hist_quantile(&h, 0.0) < 1050);
	assert_int_equal(ls_hist_quantile(&h, 1.0), 9000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_bounds),
		cmocka_unit_test(test_quantile_accuracy),
		cmocka_unit_test(test_delta),
		cmocka_unit_test(test_nearest_rank),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
