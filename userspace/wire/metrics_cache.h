/* metrics_cache.h: the /metrics body, rendered once per generation.
 *
 * A generation changes when what the exposition shows changes (a new snapshot, an
 * episode starting or ending); N scrapes in between cost one render and at most one
 * gzip (made on the first request that accepts it), then a memcpy each. The buffers
 * are reused across renders (regrowing 5 MB per render costs page faults); only an
 * unusually large one is given back.
 */
#ifndef LS_METRICS_CACHE_H
#define LS_METRICS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "prom.h"

struct ls_metrics_cache {
	uint64_t gen;		/* public: bump (ls_metrics_cache_invalidate) when the view changes */
	/* private */
	uint64_t body_gen;
	struct ls_buf body, gz;
	int body_ok, gz_ok;
	uint64_t renders, scrapes;
	double cur_render_s;	/* render + gzip time of the current body */
	double last_scrape_s;
};

static inline void ls_metrics_cache_invalidate(struct ls_metrics_cache *mc)
{
	mc->gen++;
}

/* 1 if the body must be rendered (again) before it is served. */
int ls_metrics_cache_stale(const struct ls_metrics_cache *mc);

/* Render view into the cache; ctx's counters (scrapes, renders, last render and
 * scrape times) are filled in here. 0 or -ENOMEM. */
int ls_metrics_cache_render(struct ls_metrics_cache *mc, const struct ls_snapshot *view, struct ls_prom_ctx *ctx);

/* The body to send: gzipped when gzip is set and compression works (*encoding
 * "gzip"), else identity (*encoding NULL). 0, or -ENODATA when nothing is rendered. */
int ls_metrics_cache_get(struct ls_metrics_cache *mc, int gzip, const void **p, size_t *len,
			 const char **encoding);

/* A scrape was answered in seconds (shown by the next render). */
void ls_metrics_cache_scraped(struct ls_metrics_cache *mc, double seconds);

void ls_metrics_cache_free(struct ls_metrics_cache *mc);

#endif /* LS_METRICS_CACHE_H */
