/* prom.h: Prometheus text exposition (format 0.0.4) of a snapshot.
 *
 * Rendering is a pure function of its inputs (a snapshot copy plus the exporter's
 * per-loop state), so it never touches the agent and the unit tests feed it
 * synthetic snapshots.
 *
 * Histograms: the agent's log-linear buckets (bpf/hist.h) are summed into a fixed,
 * documented set of cumulative `le` buckets. Each `le` sits on an edge of the agent's
 * buckets, at edge - 1 ns: a bucket holds integers [lo, hi), so "value <= hi - 1 ns"
 * is exact and `le` means "less than or equal" with no sample split or guessed.
 *  - fine set (event-loop delay only): 4 edges per power of two, (16, 20, 24, 28) << k,
 *    from 2^14 ns (16.4 us) to 2^34 ns (17.2 s): 81 le + "+Inf". histogram_quantile()
 *    interpolates linearly inside the bucket holding the wanted rank, so its answer and
 *    the true quantile lie in the same bucket (lo, hi]: the error is at most hi/lo - 1,
 *    i.e. 25% (16->20), 20%, 16.7%, 14.3% by position in the octave, whatever the data;
 *  - coarse set (every other histogram in seconds): edges 16*2^k and 24*2^k ns from
 *    2^12 ns to 2^34 ns, steps of 50% and 33% (45 le + "+Inf").
 * Histograms with no sample are not written; exited targets only get target_info and
 * target_up once ctx->exited_loops_ns has passed since their exit.
 */
#ifndef LS_PROM_H
#define LS_PROM_H

#include <stdint.h>

#include "http.h"
#include "snapshot.h"

/* loopscope_blocked_seconds_total: stall and starvation time by the leaf-most JS
 * function of each episode stack. The first LS_PROM_BLOCKED_TOP distinct (function,
 * file) pairs of a loop keep a series of their own for the exporter's life (a
 * counter never moves between series); later ones add to function="other". */
#define LS_PROM_BLOCKED_TOP 10
struct ls_prom_blocked {
	char function[128];
	char file[192];
	uint64_t ns;
};
void ls_prom_blocked_add(struct ls_prom_blocked *b, uint32_t *n, struct ls_prom_blocked *other, const char *function,
			 const char *file, uint64_t ns);

/* What the exporter tracks per loop between snapshots (owned by serve.c). */
struct ls_prom_loop_state {
	int32_t pid;
	uint32_t tid;
	double utilization;			/* busy share over the last sampling interval; < 0 unknown */
	uint32_t in_progress[LS_EP_NKINDS];	/* episodes started and not yet ended */
	/* --compat prom-client */
	struct ls_hist lag_window;		/* delay samples of the last 10-20 s */
	int lag_window_valid;
	struct ls_prom_blocked blocked[LS_PROM_BLOCKED_TOP];
	uint32_t nblocked;
	struct ls_prom_blocked blocked_other;	/* function="other" */
};

struct ls_prom_ctx {
	uint64_t now_ns;			/* CLOCK_MONOTONIC at render */
	int compat_prom_client;			/* also emit prom-client's nodejs_eventloop_* series */
	/* Per-loop state, or NULL when none is kept (utilization then spans since attach). */
	const struct ls_prom_loop_state *(*loop_state)(void *arg, int32_t pid, uint32_t tid);
	void *arg;
	double last_scrape_s;			/* duration of the previous /metrics response */
	uint64_t scrapes;			/* /metrics responses so far */
	uint64_t renders;			/* renders so far, this one included */
	double last_render_s;			/* the previous render + its gzip took */
	/* An exited target's loop series stay this long after its exit (so its final
	 * numbers reach a scrape), then only target_info and target_up 0 remain. */
	uint64_t exited_loops_ns;
	const struct ls_http_stats *http;	/* the server's counters, or NULL */
};

/* Append the exposition of s to out (check out->oom afterwards). */
void ls_prom_render(const struct ls_snapshot *s, const struct ls_prom_ctx *ctx, struct ls_buf *out);

/* Nanoseconds as an exact decimal number of seconds ("0.000004095", "17", "0"). */
void ls_prom_seconds(struct ls_buf *b, uint64_t ns);

/* The le sets: number of finite edges, and edge i in ns (le = edge - 1 ns). */
enum ls_prom_leset { LS_PROM_FINE, LS_PROM_COARSE, LS_PROM_OCTAVE, LS_PROM_NSETS };
unsigned ls_prom_le_count(int set);
uint64_t ls_prom_le_edge_ns(int set, unsigned i);

#endif /* LS_PROM_H */
