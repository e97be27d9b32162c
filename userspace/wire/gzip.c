/* gzip.c: one-shot gzip of a rendered body (see buf.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"

int ls_gzip(const void *in, size_t len, struct ls_buf *out)
{
	z_stream zs;
	int rc, err = 0;

	memset(&zs, 0, sizeof(zs));
	/* windowBits 15 + 16 = gzip wrapper; level 1: exposition text compresses ~10x
	 * even at the fastest level, and the scrape latency matters more. */
	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	if (ls_buf_reserve(out, deflateBound(&zs, (uLong)len))) {
		err = -ENOMEM;
		goto cleanup;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out->p + out->len;
	zs.avail_out = (uInt)(out->cap - out->len - 1);
	rc = deflate(&zs, Z_FINISH);
	if (rc != Z_STREAM_END) {
		err = -EIO;
		goto cleanup;
	}
	out->len += zs.total_out;
	out->p[out->len] = 0;
cleanup:
	deflateEnd(&zs);
	return err;
}

