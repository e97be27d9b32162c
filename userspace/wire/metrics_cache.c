/* metrics_cache.c: the /metrics body, rendered once per generation (see metrics_cache.h). */
#include <errno.h>

#include "metrics_cache.h"
#include "snapshot.h"

#define BODY_KEEP_MAX (64u << 20)
#define GZ_KEEP_MAX (16u << 20)

int ls_metrics_cache_stale(const struct ls_metrics_cache *mc)
{
	return !mc->body_ok || mc->body_gen != mc->gen;
}

int ls_metrics_cache_render(struct ls_metrics_cache *mc, const struct ls_snapshot *view, struct ls_prom_ctx *ctx)
{
	uint64_t r0 = ls_now_mono_ns();

	mc->body_ok = mc->gz_ok = 0;
	ctx->last_scrape_s = mc->last_scrape_s;
	ctx->scrapes = mc->scrapes;
	ctx->renders = ++mc->renders;
	ctx->last_render_s = mc->cur_render_s;
	if (mc->body.cap > BODY_KEEP_MAX)
		ls_buf_free(&mc->body);
	ls_buf_reset(&mc->body);
	ls_prom_render(view, ctx, &mc->body);
	if (mc->body.oom) {
		ls_buf_free(&mc->body);
		return -ENOMEM;
	}
	mc->body_gen = mc->gen;
	mc->body_ok = 1;
	mc->cur_render_s = (double)(ls_now_mono_ns() - r0) / 1e9;
	return 0;
}

int ls_metrics_cache_get(struct ls_metrics_cache *mc, int gzip, const void **p, size_t *len,
			 const char **encoding)
{
	if (!mc->body_ok)
		return -ENODATA;
	if (gzip && !mc->gz_ok && mc->body.len) {
		uint64_t z0 = ls_now_mono_ns();

		if (mc->gz.cap > GZ_KEEP_MAX)
			ls_buf_free(&mc->gz);
		ls_buf_reset(&mc->gz);
		mc->gz_ok = ls_gzip(mc->body.p, mc->body.len, &mc->gz) == 0 && !mc->gz.oom;
		if (!mc->gz_ok)
			ls_buf_free(&mc->gz);
		mc->cur_render_s += (double)(ls_now_mono_ns() - z0) / 1e9;
	}
	if (gzip && mc->gz_ok) {
		*p = mc->gz.p;
		*len = mc->gz.len;
		*encoding = "gzip";
	} else {
		*p = mc->body.p;
		*len = mc->body.len;
		*encoding = NULL;
	}
	return 0;
}

void ls_metrics_cache_scraped(struct ls_metrics_cache *mc, double seconds)
{
	mc->scrapes++;
	mc->last_scrape_s = seconds;
}

void ls_metrics_cache_free(struct ls_metrics_cache *mc)
{
	ls_buf_free(&mc->body);
	ls_buf_free(&mc->gz);
	mc->body_ok = mc->gz_ok = 0;
}
