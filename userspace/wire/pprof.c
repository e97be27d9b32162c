/* pprof.c: sampled stacks as a gzipped perftools.profiles.Profile (google/pprof's
 * proto/profile.proto), what `go tool pprof`, Pyroscope and Grafana read.
 *
 * A hand-written encoder for the few message types we need: every field is a varint,
 * a packed varint list or a length-delimited string/message. Nested messages are
 * built in a scratch buffer and copied behind their length.
 *
 * Each distinct (name, file) is one Function, each distinct (function, line, module)
 * one Location, each module one Mapping (no addresses: frames arrive symbolized, so
 * every mapping says has_functions and readers do not try to symbolize again).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profile_out.h"

/* profile.proto field numbers */
enum {
	PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE = 2, PROFILE_MAPPING = 3, PROFILE_LOCATION = 4,
	PROFILE_FUNCTION = 5, PROFILE_STRING_TABLE = 6, PROFILE_TIME_NANOS = 9,
	PROFILE_DURATION_NANOS = 10, PROFILE_PERIOD_TYPE = 11, PROFILE_PERIOD = 12,
	PROFILE_COMMENT = 13,
	VALUETYPE_TYPE = 1, VALUETYPE_UNIT = 2,
	SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE = 2,
	MAPPING_ID = 1, MAPPING_FILENAME = 5, MAPPING_HAS_FUNCTIONS = 7, MAPPING_HAS_FILENAMES = 8,
	MAPPING_HAS_LINE_NUMBERS = 9,
	LOCATION_ID = 1, LOCATION_MAPPING_ID = 2, LOCATION_LINE = 4,
	LINE_FUNCTION_ID = 1, LINE_LINE = 2,
	FUNCTION_ID = 1, FUNCTION_NAME = 2, FUNCTION_SYSTEM_NAME = 3, FUNCTION_FILENAME = 4,
};

enum { WT_VARINT = 0, WT_LEN = 2 };

static void pb_varint(struct ls_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (unsigned char)v;
	ls_buf_append(b, tmp, n);
}

/* A varint field; proto3 leaves zeros out. */
static void pb_uint(struct ls_buf *b, int field, uint64_t v)
{
	if (!v)
		return;
	pb_varint(b, (uint64_t)field << 3 | WT_VARINT);
	pb_varint(b, v);
}

static void pb_bytes(struct ls_buf *b, int field, const void *p, size_t len)
{
	pb_varint(b, (uint64_t)field << 3 | WT_LEN);
	pb_varint(b, len);
	ls_buf_append(b, p, len);
}

/* Append msg as field of b, and empty msg for the next one. */
static void pb_msg(struct ls_buf *b, int field, struct ls_buf *msg)
{
	pb_bytes(b, field, msg->p, msg->len);
	b->oom |= msg->oom;
	ls_buf_reset(msg);
}

static void pb_packed(struct ls_buf *b, int field, const uint64_t *v, size_t n, struct ls_buf *tmp)
{
	for (size_t i = 0; i < n; i++)
		pb_varint(tmp, v[i]);
	pb_msg(b, field, tmp);
}

static uint64_t int64_sat(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : v;
}

struct pprof {
	struct __ls_intern strings, functions, locations, mappings;
	uint8_t *map_flags;	/* per mapping: 1 some file known, 2 some line known */
	size_t map_cap;
	uint64_t *locs;		/* every sample's location ids, back to back */
	size_t nlocs, locs_cap;
	struct ls_buf scratch;
};

/* The id (index) of a string; cleaned, so every entry is valid UTF-8. */
static long str_id(struct pprof *p, const char *s)
{
	int added;

	ls_buf_reset(&p->scratch);
	ls_buf_append(&p->scratch, "", 0);
	__ls_prof_clean(&p->scratch, s, __LS_CLEAN_TEXT);
	if (p->scratch.oom)
		return -ENOMEM;
	return __ls_intern(&p->strings, p->scratch.p ? p->scratch.p : "", p->scratch.len, &added);
}

/* Intern a key of n uint64s; returns its 1-based id (what pprof's ids are). */
static long key_id(struct __ls_intern *t, const uint64_t *k, size_t n, int *added)
{
	long id = __ls_intern(t, k, n * sizeof(*k), added);

	return id < 0 ? id : id + 1;
}

static int push_loc(struct pprof *p, uint64_t id)
{
	if (__ls_prof_grow(&p->locs, &p->locs_cap, p->nlocs + 1, sizeof(*p->locs)))
		return -ENOMEM;
	p->locs[p->nlocs++] = id;
	return 0;
}

/* The location id of one frame (f NULL: the "[no frames]" stand-in). */
static long frame_loc(struct pprof *p, const struct ls_frame *f)
{
	uint64_t fkey[2], lkey[3] = { 0 };
	long name, file = 0, fn, map = 0;
	int added;

	if (!f)
		name = str_id(p, "[no frames]");
	else
		name = str_id(p, f->function && *f->function ? f->function : "[unknown]");
	if (name < 0)
		return name;
	if (f && f->file && *f->file && (file = str_id(p, f->file)) < 0)
		return file;
	fkey[0] = (uint64_t)name;
	fkey[1] = (uint64_t)file;
	if ((fn = key_id(&p->functions, fkey, 2, &added)) < 0)
		return fn;
	if (f && f->module && *f->module) {
		long mod = str_id(p, f->module);
		uint64_t mkey;

		if (mod < 0)
			return mod;
		mkey = (uint64_t)mod;
		if ((map = key_id(&p->mappings, &mkey, 1, &added)) < 0)
			return map;
		if (__ls_prof_grow(&p->map_flags, &p->map_cap, (size_t)map + 1, 1))
			return -ENOMEM;
		p->map_flags[map] |= (file ? 1 : 0) | (f->line ? 2 : 0);
	}
	lkey[0] = (uint64_t)fn;
	lkey[1] = f ? f->line : 0;
	lkey[2] = (uint64_t)map;
	return key_id(&p->locations, lkey, 3, &added);
}

static void put_value_type(struct ls_buf *b, int field, long type, long unit, struct ls_buf *tmp)
{
	pb_uint(tmp, VALUETYPE_TYPE, (uint64_t)type);
	pb_uint(tmp, VALUETYPE_UNIT, (uint64_t)unit);
	pb_msg(b, field, tmp);
}

static void put_tables(struct ls_buf *b, struct pprof *p, struct ls_buf *msg, struct ls_buf *sub)
{
	size_t len;

	for (size_t i = 0; i < p->mappings.n; i++) {
		const uint64_t *k = (const void *)__ls_intern_key(&p->mappings, i, &len);
		uint8_t fl = p->map_flags[i + 1];

		pb_uint(msg, MAPPING_ID, i + 1);
		pb_uint(msg, MAPPING_FILENAME, k[0]);
		pb_uint(msg, MAPPING_HAS_FUNCTIONS, 1);
		pb_uint(msg, MAPPING_HAS_FILENAMES, fl & 1);
		pb_uint(msg, MAPPING_HAS_LINE_NUMBERS, !!(fl & 2));
		pb_msg(b, PROFILE_MAPPING, msg);
	}
	for (size_t i = 0; i < p->locations.n; i++) {
		const uint64_t *k = (const void *)__ls_intern_key(&p->locations, i, &len);

		pb_uint(msg, LOCATION_ID, i + 1);
		pb_uint(msg, LOCATION_MAPPING_ID, k[2]);
		pb_uint(sub, LINE_FUNCTION_ID, k[0]);
		pb_uint(sub, LINE_LINE, k[1]);
		pb_msg(msg, LOCATION_LINE, sub);
		pb_msg(b, PROFILE_LOCATION, msg);
	}
	for (size_t i = 0; i < p->functions.n; i++) {
		const uint64_t *k = (const void *)__ls_intern_key(&p->functions, i, &len);

		pb_uint(msg, FUNCTION_ID, i + 1);
		pb_uint(msg, FUNCTION_NAME, k[0]);
		pb_uint(msg, FUNCTION_SYSTEM_NAME, k[0]);
		pb_uint(msg, FUNCTION_FILENAME, k[1]);
		pb_msg(b, PROFILE_FUNCTION, msg);
	}
	for (size_t i = 0; i < p->strings.n; i++) {
		const char *s = __ls_intern_key(&p->strings, i, &len);

		pb_bytes(b, PROFILE_STRING_TABLE, s, len);
	}
}

int ls_profile_pprof(const struct ls_stack_sample *s, size_t n, const struct ls_profile_meta *meta,
		     struct ls_buf *out)
{
	struct pprof p = { 0 };
	struct ls_buf raw = { 0 }, msg = { 0 }, sub = { 0 };
	long st_empty, st_samples, st_count, st_cpu, st_ns, st_comment = 0;
	size_t at = 0;
	int err = 0;

	if (!meta)
		meta = &ls_profile_meta_none;

	/* string_table[0] must be "". */
	st_empty = str_id(&p, "");
	st_samples = str_id(&p, "samples");
	st_count = str_id(&p, "count");
	st_cpu = str_id(&p, "cpu");
	st_ns = str_id(&p, "nanoseconds");
	if (meta->pid) {
		ls_buf_reset(&sub);
		ls_buf_printf(&sub, "loopscope profile of PID %d", meta->pid);
		if (meta->comm && *meta->comm)
			ls_buf_printf(&sub, " (%s)", meta->comm);
		st_comment = sub.oom ? -ENOMEM : str_id(&p, sub.p);
		ls_buf_reset(&sub);
	}
	if (st_empty || st_samples < 0 || st_count < 0 || st_cpu < 0 || st_ns < 0 || st_comment < 0) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++) {
		if (!s[i].count)
			continue;
		for (uint32_t k = 0; k < s[i].nframes || (k == 0 && !s[i].nframes); k++) {
			long loc = frame_loc(&p, s[i].nframes ? &s[i].frames[k] : NULL);

			if (loc < 0 || push_loc(&p, (uint64_t)loc)) {
				err = -ENOMEM;
				goto cleanup;
			}
		}
	}

	put_value_type(&raw, PROFILE_SAMPLE_TYPE, st_samples, st_count, &msg);
	put_value_type(&raw, PROFILE_SAMPLE_TYPE, st_cpu, st_ns, &msg);
	for (size_t i = 0; i < n; i++) {
		size_t nl = s[i].nframes ? s[i].nframes : 1;
		uint64_t v[2];

		if (!s[i].count)
			continue;
		/* Both values saturate at INT64_MAX: they are int64 in the proto. */
		v[0] = int64_sat(s[i].count);
		v[1] = meta->period_ns && s[i].count > INT64_MAX / meta->period_ns ?
			       INT64_MAX : s[i].count * meta->period_ns;
		pb_packed(&msg, SAMPLE_LOCATION_ID, p.locs + at, nl, &sub);
		pb_packed(&msg, SAMPLE_VALUE, v, 2, &sub);
		pb_msg(&raw, PROFILE_SAMPLE, &msg);
		at += nl;
	}
	put_tables(&raw, &p, &msg, &sub);
	pb_uint(&raw, PROFILE_TIME_NANOS, int64_sat(meta->start_ns));
	pb_uint(&raw, PROFILE_DURATION_NANOS, int64_sat(meta->duration_ns));
	put_value_type(&raw, PROFILE_PERIOD_TYPE, st_cpu, st_ns, &msg);
	pb_uint(&raw, PROFILE_PERIOD, int64_sat(meta->period_ns));
	if (st_comment) {
		uint64_t c = (uint64_t)st_comment;
		pb_packed(&raw, PROFILE_COMMENT, &c, 1, &sub);
	}
	if (raw.oom || msg.oom || sub.oom) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = ls_gzip(raw.p ? raw.p : "", raw.len, out);
	if (!err && out->oom)
		err = -ENOMEM;
cleanup:
	ls_buf_free(&raw);
	ls_buf_free(&msg);
	ls_buf_free(&sub);
	ls_buf_free(&p.scratch);
	free(p.locs);
	free(p.map_flags);
	__ls_intern_free(&p.strings);
	__ls_intern_free(&p.functions);
	__ls_intern_free(&p.locations);
	__ls_intern_free(&p.mappings);
	return err;
}
