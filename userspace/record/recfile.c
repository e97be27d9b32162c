/* recfile.c: writing and reading loopscope recordings (recfile.h, README.md). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "buf.h"
#include "recfile.h"
#include "snapjson.h"

static const unsigned char file_magic[8] = { 0x89, 'L', 'S', 'R', '\r', '\n', 0x1a, '\n' };
static const unsigned char block_magic[4] = { 'L', 'S', 'B', 'K' };

#define FILE_HEAD 20	/* magic, format, info length, crc */
#define BLOCK_HEAD 36	/* magic, clen, rlen, records, first, last, crc */
#define REC_HEAD 16	/* length, type, flags, time */
#define BLOCK_TARGET (1u << 20)	/* raw bytes that make a block full before its 5 s */

/* The fuzzer (tests/fuzz/record_fuzz.c) gets past the CRCs to the layers below them;
 * FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION is the usual libFuzzer/OSS-Fuzz switch. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define crc_ok(a, b) ((void)(a), (void)(b), 1)
#else
#define crc_ok(a, b) ((a) == (b))
#endif

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---------------------------------------------------------------- writer */

struct ls_rec_writer {
	int fd;
	char path[256];
	uint64_t good;			/* bytes on disk that end a complete block */
	struct ls_buf raw;		/* pending records */
	uint32_t nrec;
	uint64_t first_t, last_t;
	uint64_t pending_local;		/* local mono time the first pending record came, or 0 */
	unsigned char *z;		/* compression buffer */
	size_t zcap;
};

/* Write all of buf at the end; on failure cut the file back to its last complete block,
 * so what a reader finds is exactly the blocks written before. */
static int write_all(struct ls_rec_writer *w, const void *buf, size_t len, char *err, size_t errlen)
{
	const char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(w->fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : ENOSPC;

			if (ftruncate(w->fd, (off_t)w->good) == 0)
				(void)!lseek(w->fd, (off_t)w->good, SEEK_SET);
			if (w->good)
				snprintf(err, errlen, "writing %s failed: %s; the recording keeps its first %llu bytes "
					 "(every block before)", w->path, strerror(e), (unsigned long long)w->good);
			else
				snprintf(err, errlen, "writing %s failed: %s", w->path, strerror(e));
			return -e;
		}
		done += (size_t)n;
	}
	/* Each block reaches the disk before the next is built (README: fsync policy). */
	if (fdatasync(w->fd) && errno != EINVAL && errno != EROFS) {
		int e = errno;

		snprintf(err, errlen, "writing %s failed: %s; the recording keeps its first %llu bytes", w->path,
			 strerror(e), (unsigned long long)w->good);
		return -e;
	}
	w->good += len;
	return 0;
}

static char *info_json(const struct ls_rec_info *in)
{
	cJSON *o = cJSON_CreateObject(), *clk;
	char num[24], *s = NULL;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "format", LS_REC_FORMAT);
	cJSON_AddStringToObject(o, "loopscope", in->version);
	cJSON_AddStringToObject(o, "host", in->host);
	cJSON_AddStringToObject(o, "kernel", in->kernel);
	clk = cJSON_AddObjectToObject(o, "clock");
	/* 64-bit values as decimal strings: exact whatever parses them. */
	snprintf(num, sizeof(num), "%llu", (unsigned long long)in->mono_ns);
	cJSON_AddStringToObject(clk, "mono_ns", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)in->wall_ns);
	cJSON_AddStringToObject(clk, "wall_ns", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)in->interval_ns);
	cJSON_AddStringToObject(o, "interval_ns", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)in->threshold_ns);
	cJSON_AddStringToObject(o, "threshold_ns", num);
	cJSON_AddStringToObject(o, "probes", in->probes);
	cJSON_AddStringToObject(o, "command", in->command);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int ls_rec_create(const char *path, const struct ls_rec_info *info, struct ls_rec_writer **out, char *err,
		  size_t errlen)
{
	struct ls_rec_writer *w = NULL;
	unsigned char head[FILE_HEAD];
	char *js = NULL;
	size_t jl;
	uLong crc;
	int rc = 0;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	js = info_json(info);
	if (!w || !js) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto cleanup;
	}
	snprintf(w->path, sizeof(w->path), "%s", path);
	w->fd = -1;
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		goto cleanup;
	}
	jl = strlen(js);
	memcpy(head, file_magic, 8);
	put32(head + 8, LS_REC_FORMAT);
	put32(head + 12, (uint32_t)jl);
	crc = crc32(0, head, 16);
	crc = crc32(crc, (const Bytef *)js, (uInt)jl);
	put32(head + 16, (uint32_t)crc);
	{
		struct ls_buf b = { 0 };

		ls_buf_append(&b, head, sizeof(head));
		ls_buf_append(&b, js, jl);
		rc = b.oom ? -ENOMEM : write_all(w, b.p, b.len, err, errlen);
		ls_buf_free(&b);
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
	}
cleanup:
	free(js);
	if (rc) {
		struct stat st;

		/* Not even the header: leave no empty file behind (not /dev/full's node). */
		if (w && w->fd >= 0 && fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode))
			unlink(path);
		if (w && w->fd >= 0)
			close(w->fd);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static int write_block(struct ls_rec_writer *w, char *err, size_t errlen)
{
	uLongf zlen;
	uLong crc;
	int rc;

	if (!w->nrec)
		return 0;
	if (w->raw.oom) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	zlen = compressBound((uLong)w->raw.len);
	if (w->zcap < BLOCK_HEAD + zlen) {
		unsigned char *z = realloc(w->z, BLOCK_HEAD + zlen);

		if (!z) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		w->z = z;
		w->zcap = BLOCK_HEAD + zlen;
	}
	if (compress2(w->z + BLOCK_HEAD, &zlen, (const Bytef *)w->raw.p, (uLong)w->raw.len, 6) != Z_OK) {
		snprintf(err, errlen, "compressing a block failed");
		return -EIO;
	}
	memcpy(w->z, block_magic, 4);
	put32(w->z + 4, (uint32_t)zlen);
	put32(w->z + 8, (uint32_t)w->raw.len);
	put32(w->z + 12, w->nrec);
	put64(w->z + 16, w->first_t);
	put64(w->z + 24, w->last_t);
	crc = crc32(0, w->z, 32);
	crc = crc32(crc, w->z + BLOCK_HEAD, (uInt)zlen);
	put32(w->z + 32, (uint32_t)crc);
	rc = write_all(w, w->z, BLOCK_HEAD + zlen, err, errlen);
	ls_buf_reset(&w->raw);
	w->nrec = 0;
	w->pending_local = 0;
	return rc;
}

int ls_rec_put(struct ls_rec_writer *w, uint16_t type, uint64_t t_ns, const void *val, size_t len, char *err,
	       size_t errlen)
{
	unsigned char h[REC_HEAD];

	if (len > LS_REC_MAX_BLOCK / 2) {
		snprintf(err, errlen, "a record of %zu bytes is too large for a block", len);
		return -EMSGSIZE;
	}
	if (w->raw.len + REC_HEAD + len > LS_REC_MAX_BLOCK) {
		int rc = write_block(w, err, errlen);

		if (rc)
			return rc;
	}
	put32(h, (uint32_t)len);
	h[4] = (unsigned char)type;
	h[5] = (unsigned char)(type >> 8);
	h[6] = h[7] = 0;
	put64(h + 8, t_ns);
	ls_buf_append(&w->raw, h, sizeof(h));
	ls_buf_append(&w->raw, val, len);
	if (!w->nrec++) {
		w->first_t = t_ns;
		w->pending_local = ls_now_mono_ns();
	}
	w->last_t = t_ns;
	return w->raw.len >= BLOCK_TARGET ? write_block(w, err, errlen) : 0;
}

int ls_rec_put_snapshot(struct ls_rec_writer *w, const struct ls_snapshot *s, char *err, size_t errlen)
{
	char *line;
	size_t len;
	int rc = ls_snapshot_to_json(s, &line, &len);

	if (rc) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	rc = ls_rec_put(w, LS_REC_SNAPSHOT, s->mono_ns, line, len, err, errlen);
	free(line);
	return rc;
}

int ls_rec_put_episode(struct ls_rec_writer *w, const struct ls_episode *ep, uint64_t t_ns, char *err,
		       size_t errlen)
{
	char *line;
	size_t len;
	int rc = ls_episode_to_json(ep, &line, &len);

	if (rc) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	rc = ls_rec_put(w, LS_REC_EPISODE, t_ns, line, len, err, errlen);
	free(line);
	return rc;
}

int ls_rec_flush(struct ls_rec_writer *w, uint64_t now_ns, int force, char *err, size_t errlen)
{
	if (!w->nrec)
		return 0;
	/* now_ns may predate the first pending record (read before it was put). */
	if (!force && (now_ns < w->pending_local || now_ns - w->pending_local < LS_REC_FLUSH_NS))
		return 0;
	return write_block(w, err, errlen);
}

uint64_t ls_rec_bytes(const struct ls_rec_writer *w)
{
	return w->good;
}

uint64_t ls_rec_pending_since(const struct ls_rec_writer *w)
{
	return w->nrec ? w->pending_local : 0;
}

static void writer_free(struct ls_rec_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	ls_buf_free(&w->raw);
	free(w->z);
	free(w);
}

int ls_rec_close(struct ls_rec_writer *w, const char *reason, char *err, size_t errlen)
{
	char line[200];
	uint64_t now = ls_now_mono_ns();
	int n = snprintf(line, sizeof(line), "{\"type\":\"end\",\"reason\":\"%.120s\"}", reason);
	int rc = ls_rec_put(w, LS_REC_END, now, line, (size_t)n, err, errlen);

	if (!rc)
		rc = write_block(w, err, errlen);
	if (!rc && close(w->fd)) {
		rc = -errno;
		snprintf(err, errlen, "closing %s failed: %s", w->path, strerror(errno));
	}
	w->fd = -1;
	writer_free(w);
	return rc;
}

void ls_rec_abandon(struct ls_rec_writer *w)
{
	if (w)
		writer_free(w);
}

/* ---------------------------------------------------------------- reader */

struct ls_rec_reader {
	int fd;				/* -1 for memory */
	const unsigned char *mem;
	size_t memlen;
	char name[256];
	struct ls_rec_info info;
	uint64_t off;			/* of the next block */
	uint32_t block;			/* blocks read */
	unsigned char *z, *raw;		/* current block: compressed and inflated */
	size_t zcap, rawcap, rawlen, rawoff;
	uint32_t nrec, recno;		/* records in the current block, next one */
	int err;
	int ended;			/* an end record was seen */
	char msg[400];
};

/* Up to n bytes at off: bytes read, or -errno. */
static ssize_t read_at(struct ls_rec_reader *r, uint64_t off, void *buf, size_t n)
{
	size_t got = 0;

	if (r->fd < 0) {
		if (off >= r->memlen)
			return 0;
		got = r->memlen - off < n ? (size_t)(r->memlen - off) : n;
		memcpy(buf, r->mem + off, got);
		return (ssize_t)got;
	}
	while (got < n) {
		ssize_t k = pread(r->fd, (char *)buf + got, n - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* Bytes in the recording now (a file may still be growing: a reader follows it). */
static uint64_t file_size(const struct ls_rec_reader *r)
{
	struct stat st;

	if (r->fd < 0)
		return r->memlen;
	return fstat(r->fd, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static int fail(struct ls_rec_reader *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ls_rec_reader *r, int err, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(r->msg, sizeof(r->msg), "%s: ", r->name);

	va_start(ap, fmt);
	vsnprintf(r->msg + n, sizeof(r->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	r->err = err;
	return err;
}

static int grow(unsigned char **p, size_t *cap, size_t n)
{
	unsigned char *q;

	if (*cap >= n)
		return 0;
	if (!(q = realloc(*p, n)))
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static void info_str(const cJSON *o, const char *key, char *dst, size_t size)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsString(it))
		snprintf(dst, size, "%s", it->valuestring);
}

static void info_u64(const cJSON *o, const char *key, uint64_t *v)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsString(it))
		*v = strtoull(it->valuestring, NULL, 10);
	else if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < 1.8e19)
		*v = (uint64_t)it->valuedouble;
}

static int read_header(struct ls_rec_reader *r)
{
	unsigned char head[FILE_HEAD];
	char *js = NULL;
	cJSON *o = NULL;
	ssize_t n = read_at(r, 0, head, sizeof(head));
	uint32_t fmt, len;
	uLong crc;
	int rc = 0;

	if (n < 0)
		return fail(r, (int)n, "cannot read: %s", strerror((int)-n));
	if (n < 12 || memcmp(head, file_magic, 8))
		return fail(r, -EINVAL, "not a loopscope recording (no recording header at byte 0)");
	fmt = get32(head + 8);
	if (fmt > LS_REC_FORMAT)
		return fail(r, -EPROTONOSUPPORT,
			    "recording format %u is newer than this loopscope %s reads (%d); use a newer loopscope", fmt,
			    LOOPSCOPE_VERSION, LS_REC_FORMAT);
	if (fmt == 0)
		return fail(r, -EBADMSG, "bad header at byte 8: format version 0");
	if (n < FILE_HEAD)
		return fail(r, -EPIPE, "the file ends inside its header (%zd of %d bytes)", n, FILE_HEAD);
	len = get32(head + 12);
	if (len > LS_REC_MAX_INFO)
		return fail(r, -EBADMSG, "bad header at byte 12: info length %u is over %u", len, LS_REC_MAX_INFO);
	if (!(js = malloc((size_t)len + 1)))
		return fail(r, -ENOMEM, "out of memory");
	n = read_at(r, FILE_HEAD, js, len);
	if (n < 0) {
		rc = fail(r, (int)n, "cannot read: %s", strerror((int)-n));
		goto cleanup;
	}
	if ((size_t)n < len) {
		rc = fail(r, -EPIPE, "the file ends inside its header (at byte %zd of %u)", FILE_HEAD + n,
			  FILE_HEAD + len);
		goto cleanup;
	}
	js[len] = 0;
	crc = crc32(0, head, 16);
	crc = crc32(crc, (const Bytef *)js, len);
	if (!crc_ok((uint32_t)crc, get32(head + 16))) {
		rc = fail(r, -EBADMSG, "damaged header (bytes 0-%u): CRC mismatch", FILE_HEAD + len - 1);
		goto cleanup;
	}
	o = cJSON_ParseWithLength(js, len);
	if (!cJSON_IsObject(o)) {
		rc = fail(r, -EBADMSG, "bad header at byte %d: the info is not a JSON object", FILE_HEAD);
		goto cleanup;
	}
	r->info.format = fmt;
	info_str(o, "loopscope", r->info.version, sizeof(r->info.version));
	info_str(o, "host", r->info.host, sizeof(r->info.host));
	info_str(o, "kernel", r->info.kernel, sizeof(r->info.kernel));
	info_str(o, "probes", r->info.probes, sizeof(r->info.probes));
	info_str(o, "command", r->info.command, sizeof(r->info.command));
	info_u64(o, "interval_ns", &r->info.interval_ns);
	info_u64(o, "threshold_ns", &r->info.threshold_ns);
	{
		const cJSON *clk = cJSON_GetObjectItemCaseSensitive(o, "clock");

		if (cJSON_IsObject(clk)) {
			info_u64(clk, "mono_ns", &r->info.mono_ns);
			info_u64(clk, "wall_ns", &r->info.wall_ns);
		}
	}
	r->off = FILE_HEAD + (uint64_t)len;
cleanup:
	cJSON_Delete(o);
	free(js);
	return rc;
}

static int open_common(struct ls_rec_reader *r, struct ls_rec_reader **out, char *err, size_t errlen)
{
	int rc = read_header(r);

	if (rc) {
		snprintf(err, errlen, "%s", r->msg);
		ls_rec_close_reader(r);
		return rc;
	}
	*out = r;
	return 0;
}

int ls_rec_open(const char *path, struct ls_rec_reader **out, char *err, size_t errlen)
{
	struct ls_rec_reader *r = calloc(1, sizeof(*r));
	struct stat st;

	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(r->name, sizeof(r->name), "%s", path);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		free(r);
		return -e;
	}
	if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is a directory; give a recording file", path);
		close(r->fd);
		free(r);
		return -EISDIR;
	}
	return open_common(r, out, err, errlen);
}

int ls_rec_open_mem(const void *data, size_t len, const char *name, struct ls_rec_reader **out, char *err,
		    size_t errlen)
{
	struct ls_rec_reader *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->fd = -1;
	r->mem = data;
	r->memlen = len;
	return open_common(r, out, err, errlen);
}

/* Read, check and inflate the block at r->off. 1 loaded, 0 clean end, or the error. */
static int load_block(struct ls_rec_reader *r)
{
	unsigned char h[BLOCK_HEAD];
	uint64_t at = r->off;
	uint32_t no = r->block + 1, clen, rlen, nrec;
	ssize_t n = read_at(r, at, h, sizeof(h));
	uLongf dlen;
	uLong crc;
	size_t off;

	if (n < 0)
		return fail(r, (int)n, "block %u at byte %llu: %s", no, (unsigned long long)at, strerror((int)-n));
	if (n == 0)
		return 0;
	if (memcmp(h, block_magic, (size_t)n < 4 ? (size_t)n : 4))
		return fail(r, -EBADMSG, "block %u at byte %llu: no block mark (damaged or not a recording)", no,
			    (unsigned long long)at);
	if (n < BLOCK_HEAD)	/* also a cut inside the mark itself */
		return fail(r, -EPIPE, "the file stops inside block %u at byte %llu (cut short while recording); "
			    "%u complete block%s before it", no, (unsigned long long)at, r->block, r->block == 1 ? "" : "s");
	clen = get32(h + 4);
	rlen = get32(h + 8);
	nrec = get32(h + 12);
	/* deflate never shrinks more than 1032:1, so a claim past that is a lie. */
	if (clen > LS_REC_MAX_BLOCK || rlen > LS_REC_MAX_BLOCK || nrec > rlen / REC_HEAD ||
	    (uint64_t)rlen > (uint64_t)clen * 1032 + 64)
		return fail(r, -EBADMSG, "block %u at byte %llu: impossible sizes (%u compressed, %u raw, %u records)",
			    no, (unsigned long long)at, clen, rlen, nrec);
	if (at + BLOCK_HEAD + clen > file_size(r))
		return fail(r, -EPIPE, "the file stops inside block %u at byte %llu (cut short while recording); "
			    "%u complete block%s before it", no, (unsigned long long)at, r->block, r->block == 1 ? "" : "s");
	if (grow(&r->z, &r->zcap, clen ? clen : 1) || grow(&r->raw, &r->rawcap, rlen ? rlen : 1))
		return fail(r, -ENOMEM, "block %u at byte %llu: out of memory", no, (unsigned long long)at);
	n = read_at(r, at + BLOCK_HEAD, r->z, clen);
	if (n < 0)
		return fail(r, (int)n, "block %u at byte %llu: %s", no, (unsigned long long)at, strerror((int)-n));
	if ((size_t)n < clen)
		return fail(r, -EPIPE, "the file stops inside block %u at byte %llu (cut short while recording); "
			    "%u complete block%s before it", no, (unsigned long long)at, r->block, r->block == 1 ? "" : "s");
	crc = crc32(0, h, 32);
	crc = crc32(crc, r->z, clen);
	if (!crc_ok((uint32_t)crc, get32(h + 32)))
		return fail(r, -EBADMSG, "block %u at byte %llu: CRC mismatch (the block is damaged); "
			    "%u blocks before it are good", no, (unsigned long long)at, r->block);
	dlen = rlen;
	if (uncompress(r->raw, &dlen, r->z, clen) != Z_OK || dlen != rlen)
		return fail(r, -EBADMSG, "block %u at byte %llu: the compressed data does not inflate to %u bytes", no,
			    (unsigned long long)at, rlen);
	/* Check the record framing once, so ls_rec_next() can trust it. */
	off = 0;
	for (uint32_t i = 0; i < nrec; i++) {
		uint32_t len;

		if (rlen - off < REC_HEAD || (len = get32(r->raw + off)) > rlen - off - REC_HEAD)
			return fail(r, -EBADMSG, "block %u at byte %llu: record %u overruns the block", no,
				    (unsigned long long)at, i + 1);
		off += REC_HEAD + len;
	}
	if (off != rlen)
		return fail(r, -EBADMSG, "block %u at byte %llu: %u bytes after its %u records", no,
			    (unsigned long long)at, (unsigned)(rlen - off), nrec);
	r->rawlen = rlen;
	r->rawoff = 0;
	r->nrec = nrec;
	r->recno = 0;
	r->block = no;
	r->off = at + BLOCK_HEAD + clen;
	return 1;
}

int ls_rec_next(struct ls_rec_reader *r, uint16_t *type, uint64_t *t_ns, const char **val, size_t *len)
{
	const unsigned char *p;
	uint32_t l;

	if (r->err)
		return r->err;
	while (r->recno == r->nrec) {
		int rc = load_block(r);

		if (rc <= 0)
			return rc;
	}
	p = r->raw + r->rawoff;
	l = get32(p);
	*type = (uint16_t)(p[4] | p[5] << 8);
	*t_ns = get64(p + 8);
	*val = (const char *)p + REC_HEAD;
	*len = l;
	r->rawoff += REC_HEAD + l;
	r->recno++;
	if (*type == LS_REC_END)
		r->ended = 1;
	return 1;
}

const char *ls_rec_error(const struct ls_rec_reader *r)
{
	return r->err ? r->msg : "";
}

uint32_t ls_rec_blocks_read(const struct ls_rec_reader *r)
{
	return r->block;
}

int ls_rec_ended_cleanly(const struct ls_rec_reader *r)
{
	return r->ended;
}

const struct ls_rec_info *ls_rec_info(const struct ls_rec_reader *r)
{
	return &r->info;
}

void ls_rec_close_reader(struct ls_rec_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->z);
	free(r->raw);
	free(r);
}
