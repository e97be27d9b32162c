/* profile_out_test.c: the profile writers (userspace/wire/profile_out.c, flamegraph.c,
 * pprof.c) on synthetic stacks: shared prefixes, deep stacks, odd and invalid names,
 * an empty profile and counts near 2^64. The pprof output is read back with zlib and a
 * small protobuf reader of our own; go tool pprof and Chromium read the files in
 * tests/integration/65-profile-readers.sh.
 *
 * With LS_PROFILE_FIXTURES=DIR the test also writes its profiles there (demo, odd,
 * empty, deep in every format) for the integration test to open with those readers. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "profile_out.h"

#define JS(fn, file, line) { LS_FRAME_JS, fn, file, line, 0, NULL }
#define NAT(fn, mod) { LS_FRAME_NATIVE, fn, NULL, 0, 0, mod }
#define KERN(fn) { LS_FRAME_KERNEL, fn, NULL, 0, 0, NULL }

/* A server blocking in three ways, leaf first, sharing the loop's frames at the root. */
static const struct ls_frame st_pbkdf2[] = {
	NAT("node::crypto::PBKDF2Traits::DeriveBits", "/usr/bin/node"),
	JS("pbkdf2Sync", "node:internal/crypto/pbkdf2", 68),
	JS("settle", "/srv/app/billing.js", 31),
	JS("(anonymous)", "/srv/app/routes.js", 12),
	JS("handle", "/srv/app/node_modules/express/lib/router/layer.js", 152),
	NAT("uv__io_poll", "/usr/bin/node"),
	NAT("uv_run", "/usr/bin/node"),
	NAT("main", "/usr/bin/node"),
};
static const struct ls_frame st_read[] = {
	KERN("copy_user_enhanced_fast_string"),
	KERN("ksys_read"),
	NAT("read", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
	JS("readFileSync", "node:fs", 441),
	JS("loadConfig", "/srv/app/config.js", 9),
	JS("handle", "/srv/app/node_modules/express/lib/router/layer.js", 152),
	NAT("uv__io_poll", "/usr/bin/node"),
	NAT("uv_run", "/usr/bin/node"),
	NAT("main", "/usr/bin/node"),
};
static const struct ls_frame st_json[] = {
	NAT("v8::internal::JsonStringifier::Serialize_", "/usr/bin/node"),
	JS("stringify", NULL, 0),
	JS("report", "/srv/app/report.js", 77),
	NAT("uv__run_timers", "/usr/bin/node"),
	NAT("uv_run", "/usr/bin/node"),
	NAT("main", "/usr/bin/node"),
};
#define N(a) (uint32_t)(sizeof(a) / sizeof(a[0]))
static const struct ls_stack_sample demo[] = {
	{ st_pbkdf2, N(st_pbkdf2), 360 },
	{ st_read, N(st_read), 90 },
	{ st_json, N(st_json), 50 },
};
static const struct ls_profile_meta demo_meta = {
	.period_ns = 1000000, .start_ns = 1764800000000000000ull, .duration_ns = 10000000000ull,
	.pid = 4093, .comm = "node",
};

/* Names a format could choke on: separators, markup, quotes, controls, every kind of
 * invalid UTF-8, U+FFFF, and valid multi-byte text that must survive. */
static const char odd_name[] =
	"a;b c\n<script>alert(\"x&y\")</script> 'q' ]]> \xff\xfe \xed\xa0\x80 \xef\xbf\xbf \xc0\xaf \xc2\x85 \xe2\x82";
static const char odd_file[] = "/srv/we ird;dir/<x>&\"\x01.js";
static const char utf8_name[] = "\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80";
static const struct ls_frame st_odd[] = {
	JS(odd_name, odd_file, 3),
	NAT(utf8_name, "lib<&>.so"),
	KERN("\"kernel\"&<thing>"),
	JS(NULL, NULL, 0),
	NAT("", NULL),
};
static const struct ls_frame st_odd2[] = {
	JS("'single' \"double\" `back`", "/a.js", 1),
	NAT(utf8_name, "lib<&>.so"),
	KERN("\"kernel\"&<thing>"),
	JS(NULL, NULL, 0),
	NAT("", NULL),
};
static const struct ls_stack_sample odd[] = {
	{ st_odd, N(st_odd), 7 },
	{ st_odd2, N(st_odd2), 3 },
	{ NULL, 0, 2 },		/* a sample whose stack could not be walked */
	{ st_odd2, N(st_odd2), 0 },	/* count 0: left out */
};
static const struct ls_profile_meta odd_meta = { .period_ns = 1000000, .pid = 7, .comm = "<we&ird>\xff" };

static char *render(int fmt, const struct ls_stack_sample *s, size_t n, const struct ls_profile_meta *m,
		    size_t *len)
{
	struct ls_buf b = { 0 };

	assert_int_equal(ls_profile_render(fmt, s, n, m, &b), 0);
	assert_false(b.oom);
	*len = b.len;
	return b.p ? b.p : calloc(1, 1);
}

static int valid_utf8(const unsigned char *s, size_t len)
{
	/* Only what the writers' cleaning allows: no controls but \n, no bad sequences. */
	for (size_t i = 0; i < len;) {
		unsigned c = s[i], n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 :
			     c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		uint32_t cp;

		if (!n || i + n > len)
			return 0;
		if (n == 1 && ((c < 0x20 && c != '\n') || c == 0x7f))
			return 0;
		cp = n == 1 ? c : c & (0x7f >> n);
		for (unsigned k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff || (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += n;
	}
	return 1;
}

/* ---------------------------------------------------------------- a protobuf reader */

struct pb {
	const unsigned char *p, *end;
};

static uint64_t pb_varint(struct pb *r)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		assert_true(r->p < r->end);
		v |= (uint64_t)(*r->p & 0x7f) << shift;
		if (!(*r->p++ & 0x80))
			return v;
	}
	fail_msg("varint longer than 10 bytes");
	return 0;
}

/* The next field: its number, and either its varint or its bytes in *sub. */
static int pb_next(struct pb *r, uint64_t *v, struct pb *sub)
{
	uint64_t key;

	if (r->p == r->end)
		return 0;
	key = pb_varint(r);
	if ((key & 7) == 0) {
		*v = pb_varint(r);
	} else {
		assert_int_equal(key & 7, 2);
		*v = pb_varint(r);
		assert_true(*v <= (uint64_t)(r->end - r->p));
		sub->p = r->p;
		sub->end = r->p + *v;
		r->p += *v;
	}
	return (int)(key >> 3);
}

#define MAXN 4096
struct decoded {
	char *strings[MAXN];
	size_t nstrings;
	uint64_t fn_name[MAXN], fn_file[MAXN], fn_sysname[MAXN];	/* by id */
	uint64_t loc_fn[MAXN], loc_line[MAXN], loc_map[MAXN];		/* by id */
	uint64_t map_file[MAXN], map_hasfn[MAXN];
	uint64_t sample_locs[64][MAXN], sample_nlocs[64], sample_val[64][2];
	size_t nsamples, nsample_types;
	uint64_t sample_type[2][2], period_type[2], period, duration, time, comment;
};

static void decode_packed(struct pb *sub, uint64_t *out, uint64_t *n, size_t max)
{
	*n = 0;
	while (sub->p < sub->end) {
		assert_true(*n < max);
		out[(*n)++] = pb_varint(sub);
	}
}

static void decode_profile(const char *gz, size_t len, struct decoded *d)
{
	static unsigned char raw[1 << 22];
	z_stream zs = { 0 };
	struct pb r, sub, sub2, sub3;
	uint64_t v, v2;
	int f;

	memset(d, 0, sizeof(*d));
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);	/* gzip only */
	zs.next_in = (Bytef *)gz;
	zs.avail_in = (uInt)len;
	zs.next_out = raw;
	zs.avail_out = sizeof(raw);
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	r.p = raw;
	r.end = raw + zs.total_out;
	inflateEnd(&zs);
	while ((f = pb_next(&r, &v, &sub))) {
		switch (f) {
		case 1:
			assert_true(d->nsample_types < 2);
			while ((f = pb_next(&sub, &v, &sub2)))
				d->sample_type[d->nsample_types][f - 1] = v;
			d->nsample_types++;
			break;
		case 2:
			assert_true(d->nsamples < 64);
			while ((f = pb_next(&sub, &v, &sub2))) {
				if (f == 1)
					decode_packed(&sub2, d->sample_locs[d->nsamples], &d->sample_nlocs[d->nsamples], MAXN);
				else if (f == 2) {
					uint64_t n;
					decode_packed(&sub2, d->sample_val[d->nsamples], &n, 2);
					assert_int_equal(n, 2);
				}
			}
			d->nsamples++;
			break;
		case 3: {
			uint64_t id = 0, file = 0, hasfn = 0;
			while ((f = pb_next(&sub, &v, &sub2)))
				f == 1 ? (id = v) : f == 5 ? (file = v) : f == 7 ? (hasfn = v) : 0;
			assert_true(id > 0 && id < MAXN && !d->map_file[id]);
			d->map_file[id] = file;
			d->map_hasfn[id] = hasfn;
			break;
		}
		case 4: {
			uint64_t id = 0, map = 0, fn = 0, line = 0, nlines = 0;
			while ((f = pb_next(&sub, &v, &sub2))) {
				if (f == 1)
					id = v;
				else if (f == 2)
					map = v;
				else if (f == 4) {
					nlines++;
					while ((f = pb_next(&sub2, &v2, &sub3)))
						f == 1 ? (fn = v2) : f == 2 ? (line = v2) : 0;
				}
			}
			assert_true(id > 0 && id < MAXN && !d->loc_fn[id]);
			assert_int_equal(nlines, 1);
			d->loc_fn[id] = fn;
			d->loc_line[id] = line;
			d->loc_map[id] = map;
			break;
		}
		case 5: {
			uint64_t id = 0, name = 0, file = 0, sys = 0;
			while ((f = pb_next(&sub, &v, &sub2)))
				f == 1 ? (id = v) : f == 2 ? (name = v) : f == 3 ? (sys = v) : f == 4 ? (file = v) : 0;
			assert_true(id > 0 && id < MAXN && !d->fn_name[id]);
			d->fn_name[id] = name;
			d->fn_file[id] = file;
			d->fn_sysname[id] = sys;
			break;
		}
		case 6:
			assert_true(d->nstrings < MAXN);
			d->strings[d->nstrings] = strndup((const char *)sub.p, (size_t)v);
			assert_non_null(d->strings[d->nstrings]);
			d->nstrings++;
			break;
		case 9: d->time = v; break;
		case 10: d->duration = v; break;
		case 11:
			while ((f = pb_next(&sub, &v, &sub2)))
				d->period_type[f - 1] = v;
			break;
		case 12: d->period = v; break;
		case 13: {
			uint64_t n;
			decode_packed(&sub, &d->comment, &n, 1);
			break;
		}
		default:
			fail_msg("unexpected Profile field %d", f);
		}
	}
}

static void free_decoded(struct decoded *d)
{
	for (size_t i = 0; i < d->nstrings; i++)
		free(d->strings[i]);
}

static const char *str(const struct decoded *d, uint64_t i)
{
	assert_true(i < d->nstrings);
	return d->strings[i];
}

/* ---------------------------------------------------------------- tests */

static void test_format_of(void **state)
{
	(void)state;
	assert_int_equal(ls_profile_format_of("out.folded"), LS_PROFILE_FOLDED);
	assert_int_equal(ls_profile_format_of("/tmp/a.b/flame.svg"), LS_PROFILE_SVG);
	assert_int_equal(ls_profile_format_of("cpu.pb.gz"), LS_PROFILE_PPROF);
	assert_int_equal(ls_profile_format_of("cpu.gz"), -EINVAL);
	assert_int_equal(ls_profile_format_of("cpu.pb"), -EINVAL);
	assert_int_equal(ls_profile_format_of("flame.SVG.txt"), -EINVAL);
	assert_int_equal(ls_profile_format_of(".svg"), -EINVAL);
	assert_int_equal(ls_profile_format_of("dir/.svg"), -EINVAL);
	assert_int_equal(ls_profile_format_of(""), -EINVAL);
	assert_int_equal(ls_profile_format_of(NULL), -EINVAL);
	assert_int_equal(ls_profile_render(42, demo, 3, NULL, &(struct ls_buf){ 0 }), -EINVAL);
}

static void test_folded_demo(void **state)
{
	size_t len;
	char *out = render(LS_PROFILE_FOLDED, demo, 3, &demo_meta, &len);

	(void)state;
	/* Root first, sorted, one line per stack. */
	assert_string_equal(out,
		"main;uv_run;uv__io_poll;handle /srv/app/node_modules/express/lib/router/layer.js:152;"
		"(anonymous) /srv/app/routes.js:12;settle /srv/app/billing.js:31;"
		"pbkdf2Sync node:internal/crypto/pbkdf2:68;node::crypto::PBKDF2Traits::DeriveBits 360\n"
		"main;uv_run;uv__io_poll;handle /srv/app/node_modules/express/lib/router/layer.js:152;"
		"loadConfig /srv/app/config.js:9;readFileSync node:fs:441;read;ksys_read_[k];"
		"copy_user_enhanced_fast_string_[k] 90\n"
		"main;uv_run;uv__run_timers;report /srv/app/report.js:77;stringify;"
		"v8::internal::JsonStringifier::Serialize_ 50\n");
	free(out);
}

static void test_folded_cleaning(void **state)
{
	size_t len;
	char *out = render(LS_PROFILE_FOLDED, odd, 4, &odd_meta, &len);
	char *line, *save = NULL;
	int lines = 0;
	uint64_t total = 0;

	(void)state;
	assert_true(valid_utf8((const unsigned char *)out, len));
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strrchr(line, ' '), *end;
		int semis = 0;

		lines++;
		assert_non_null(sp);
		total += strtoull(sp + 1, &end, 10);
		assert_int_equal(*end, 0);
		for (char *c = line; c < sp; c++)
			semis += *c == ';';
		/* The five frames stay five: the ';' inside names became ':'. */
		assert_true(semis == 4 || (semis == 0 && !strcmp(line, "[no frames] 2")));
	}
	assert_int_equal(lines, 3);
	assert_int_equal(total, 12);
	free(out);

	out = render(LS_PROFILE_FOLDED, odd, 1, NULL, &len);
	assert_string_equal(out,
		"[unknown];[unknown];\"kernel\"&<thing>_[k];" "\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80;"
		"a:b c?<script>alert(\"x&y\")</script> 'q' ]]> \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd ? "
		"\xef\xbf\xbd\xef\xbf\xbd ? \xef\xbf\xbd\xef\xbf\xbd /srv/we ird:dir/<x>&\"?.js:3 7\n");
	free(out);
}

/* Stacks that clean to the same text are one line, their counts added (saturating). */
static void test_folded_merge_and_huge(void **state)
{
	static const struct ls_frame a[] = { NAT("f;g", NULL), NAT("main", NULL) };
	static const struct ls_frame b[] = { NAT("f:g", NULL), NAT("main", NULL) };
	static const struct ls_frame c[] = { NAT("h", NULL), NAT("main", NULL) };
	const struct ls_stack_sample s[] = {
		{ a, 2, UINT64_MAX - 1 }, { b, 2, 5 }, { c, 2, UINT64_MAX }, { c, 2, 0 },
	};
	size_t len;
	char *out = render(LS_PROFILE_FOLDED, s, 4, NULL, &len);

	(void)state;
	assert_string_equal(out, "main;f:g 18446744073709551615\nmain;h 18446744073709551615\n");
	free(out);
}

static void test_empty(void **state)
{
	size_t len;
	char *out;
	struct decoded *d = calloc(1, sizeof(*d));

	(void)state;
	assert_non_null(d);
	out = render(LS_PROFILE_FOLDED, NULL, 0, NULL, &len);
	assert_int_equal(len, 0);
	free(out);
	out = render(LS_PROFILE_SVG, NULL, 0, &demo_meta, &len);
	assert_non_null(strstr(out, ">No samples</text>"));
	assert_non_null(strstr(out, "</svg>\n"));
	assert_null(strstr(out, "class=\"f\""));
	free(out);
	out = render(LS_PROFILE_PPROF, NULL, 0, &demo_meta, &len);
	decode_profile(out, len, d);
	assert_int_equal(d->nsamples, 0);
	assert_string_equal(str(d, 0), "");
	assert_int_equal(d->nsample_types, 2);
	free_decoded(d);
	free(d);
	free(out);
}

static void test_svg_demo(void **state)
{
	size_t len, len2;
	char *out = render(LS_PROFILE_SVG, demo, 3, &demo_meta, &len), *again;
	const struct ls_stack_sample shuffled[] = { demo[2], demo[0], demo[1] };

	(void)state;
	assert_true(valid_utf8((const unsigned char *)out, len));
	assert_int_equal(strncmp(out, "<?xml version=\"1.0\"", 19), 0);
	assert_non_null(strstr(out, ">Flame graph of PID 4093 (node)</text>"));
	assert_non_null(strstr(out, ">500 samples, one every 1 ms, over 10 s</text>"));
	/* The root spans the graph; the pbkdf2 path has 72% of it: 849.60 of 1180 px. */
	assert_non_null(strstr(out, "<g class=\"f\" data-x=\"0.00\" data-w=\"1180.00\" data-d=\"0\"><title>all\n500 samples (100.00%)</title>"));
	assert_non_null(strstr(out, "data-w=\"849.60\" data-d=\"8\"><title>node::crypto::PBKDF2Traits::DeriveBits\nnative frame in /usr/bin/node\n360 samples (72.00%)</title>"));
	assert_non_null(strstr(out, "<title>pbkdf2Sync node:internal/crypto/pbkdf2:68\nJS frame\n360 samples (72.00%)</title>"));
	assert_non_null(strstr(out, "<title>ksys_read\nkernel frame\n90 samples (18.00%)</title>"));
	/* Shared prefix merged: main once with everything, handle with 450. */
	assert_non_null(strstr(out, "data-w=\"1180.00\" data-d=\"1\"><title>main\nnative frame in /usr/bin/node\n500 samples (100.00%)"));
	assert_non_null(strstr(out, "<title>handle /srv/app/node_modules/express/lib/router/layer.js:152\nJS frame\n450 samples (90.00%)"));
	/* Narrow frames: label cut to fit, with "..". */
	assert_non_null(strstr(out, ">v8::internal:..</text>"));
	assert_non_null(strstr(out, ">copy_user_enhanced_fast_str..</text>"));
	assert_non_null(strstr(out, ">main</text>"));
	/* Nothing external: the namespace is the only URL. */
	assert_null(strstr(out, "href"));
	assert_null(strstr(out, "url("));
	assert_null(strstr(strstr(out, "http://www.w3.org/2000/svg") + 1, "http"));
	/* Same input, any order: same bytes. */
	again = render(LS_PROFILE_SVG, shuffled, 3, &demo_meta, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(out, again, len);
	free(again);
	free(out);
}

static void test_svg_odd(void **state)
{
	size_t len;
	char *out = render(LS_PROFILE_SVG, odd, 4, &odd_meta, &len);
	const char *script = strstr(out, "<script");

	(void)state;
	assert_true(valid_utf8((const unsigned char *)out, len));
	assert_non_null(script);
	/* Our script is the only one and the only CDATA; no markup from a name got in. */
	assert_null(strstr(script + 1, "<script"));
	assert_ptr_equal(strstr(out, "<![CDATA["), strstr(script, "<![CDATA["));
	assert_ptr_equal(strstr(out, "]]>"), strstr(script, "]]>"));
	assert_null(strstr(out, "<x>"));
	assert_non_null(strstr(out, ">Flame graph of PID 7 (&lt;we&amp;ird&gt;\xef\xbf\xbd)</text>"));
	assert_non_null(strstr(out, "<title>a;b c?&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; &#39;q&#39; ]]&gt; "));
	assert_non_null(strstr(out, "/srv/we ird;dir/&lt;x&gt;&amp;&quot;?.js:3\nJS frame\n7 samples (58.33%)</title>"));
	assert_non_null(strstr(out, "<title>&quot;kernel&quot;&amp;&lt;thing&gt;\nkernel frame\n10 samples"));
	assert_non_null(strstr(out, "\nnative frame in lib&lt;&amp;&gt;.so\n10 samples"));
	assert_non_null(strstr(out, "<title>[no frames]\nnative frame\n2 samples (16.67%)</title>"));
	assert_non_null(strstr(out, "<title>[unknown]\nJS frame\n10 samples"));
	/* Every '&' starts an entity. */
	for (const char *a = strchr(out, '&'); a && a < script; a = strchr(a + 1, '&'))
		assert_true(!strncmp(a, "&amp;", 5) || !strncmp(a, "&lt;", 4) || !strncmp(a, "&gt;", 4) ||
			    !strncmp(a, "&quot;", 6) || !strncmp(a, "&#39;", 5));
	free(out);
}

/* A label cut to fit never splits a multi-byte character. */
static void test_svg_cut_utf8(void **state)
{
	static char name[601];
	struct ls_frame fr[2] = { NAT(name, NULL), NAT("main", NULL) };
	const struct ls_stack_sample s[] = { { fr, 2, 1 }, { fr + 1, 1, 2 } };
	size_t len;
	char *out;

	(void)state;
	for (int i = 0; i < 150; i++)
		memcpy(name + i * 4, "\xf0\x9f\x98\x80", 4);	/* 150 emoji, 600 bytes */
	out = render(LS_PROFILE_SVG, s, 2, NULL, &len);
	assert_true(valid_utf8((const unsigned char *)out, len));
	/* 1/3 of 1180 px at 7.08 px a glyph: 54 fit, 52 and "..". */
	assert_non_null(strstr(out, "\xf0\x9f\x98\x80..</text>"));
	free(out);
}

static void test_deep(void **state)
{
	enum { DEPTH = 3000 };
	struct ls_frame *fr = calloc(DEPTH, sizeof(*fr));
	char (*names)[16] = calloc(DEPTH, 16);
	struct ls_stack_sample s[2];
	size_t len;
	char *out;
	int semis = 0;
	struct decoded *d = calloc(1, sizeof(*d));

	(void)state;
	assert_non_null(fr);
	assert_non_null(names);
	assert_non_null(d);
	for (int i = 0; i < DEPTH; i++) {
		snprintf(names[i], 16, "recurse%d", DEPTH - 1 - i);
		fr[i] = (struct ls_frame)JS(names[i], "/srv/deep.js", (uint32_t)i + 1);
	}
	s[0] = (struct ls_stack_sample){ fr, DEPTH, 3 };
	s[1] = (struct ls_stack_sample){ fr + DEPTH / 2, DEPTH / 2, 1 };
	out = render(LS_PROFILE_FOLDED, s, 2, NULL, &len);
	for (size_t i = 0; i < len; i++)
		semis += out[i] == ';';
	assert_int_equal(semis, DEPTH - 1 + DEPTH / 2 - 1);
	assert_int_equal(strncmp(out, "recurse0 /srv/deep.js:3000;recurse1 /srv/deep.js:2999;", 54), 0);
	free(out);
	out = render(LS_PROFILE_SVG, s, 2, NULL, &len);
	assert_non_null(strstr(out, "data-d=\"3000\"><title>recurse2999 /srv/deep.js:1\nJS frame\n3 samples (75.00%)"));
	assert_non_null(strstr(out, "height=\"48120\""));	/* 56 + 3001 rows of 16 + 48 */
	free(out);
	out = render(LS_PROFILE_PPROF, s, 2, NULL, &len);
	decode_profile(out, len, d);
	assert_int_equal(d->nsamples, 2);
	assert_int_equal(d->sample_nlocs[0], DEPTH);
	assert_int_equal(d->sample_nlocs[1], DEPTH / 2);
	/* The second stack is the first one's root half: the same locations. */
	assert_memory_equal(d->sample_locs[1], d->sample_locs[0] + DEPTH / 2, DEPTH / 2 * sizeof(uint64_t));
	assert_string_equal(str(d, d->fn_name[d->loc_fn[d->sample_locs[0][0]]]), "recurse2999");
	assert_int_equal(d->loc_line[d->sample_locs[0][0]], 1);
	free_decoded(d);
	free(d);
	free(out);
	free(names);
	free(fr);
}

static void test_pprof_demo(void **state)
{
	size_t len;
	char *out = render(LS_PROFILE_PPROF, demo, 3, &demo_meta, &len);
	struct decoded *d = calloc(1, sizeof(*d));

	(void)state;
	assert_non_null(d);
	assert_true(len > 18 && (unsigned char)out[0] == 0x1f && (unsigned char)out[1] == 0x8b);
	decode_profile(out, len, d);
	assert_string_equal(str(d, 0), "");
	assert_int_equal(d->nsample_types, 2);
	assert_string_equal(str(d, d->sample_type[0][0]), "samples");
	assert_string_equal(str(d, d->sample_type[0][1]), "count");
	assert_string_equal(str(d, d->sample_type[1][0]), "cpu");
	assert_string_equal(str(d, d->sample_type[1][1]), "nanoseconds");
	assert_string_equal(str(d, d->period_type[0]), "cpu");
	assert_string_equal(str(d, d->period_type[1]), "nanoseconds");
	assert_int_equal(d->period, 1000000);
	assert_int_equal(d->duration, 10000000000ull);
	assert_int_equal(d->time, 1764800000000000000ull);
	assert_string_equal(str(d, d->comment), "loopscope profile of PID 4093 (node)");
	assert_int_equal(d->nsamples, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(d->sample_nlocs[i], demo[i].nframes);
		assert_int_equal(d->sample_val[i][0], demo[i].count);
		assert_int_equal(d->sample_val[i][1], demo[i].count * 1000000);
		/* Leaf first, each location naming its frame. */
		for (uint32_t k = 0; k < demo[i].nframes; k++) {
			const struct ls_frame *f = &demo[i].frames[k];
			uint64_t loc = d->sample_locs[i][k], fn = d->loc_fn[loc];

			assert_string_equal(str(d, d->fn_name[fn]), f->function);
			assert_int_equal(d->fn_sysname[fn], d->fn_name[fn]);
			assert_string_equal(str(d, d->fn_file[fn]), f->file ? f->file : "");
			assert_int_equal(d->loc_line[loc], f->line);
			if (f->module) {
				assert_string_equal(str(d, d->map_file[d->loc_map[loc]]), f->module);
				assert_int_equal(d->map_hasfn[d->loc_map[loc]], 1);
			} else {
				assert_int_equal(d->loc_map[loc], 0);
			}
		}
	}
	/* Shared frames share one location: main is the same id in all three. */
	assert_int_equal(d->sample_locs[0][7], d->sample_locs[1][8]);
	assert_int_equal(d->sample_locs[0][7], d->sample_locs[2][5]);
	free_decoded(d);
	free(d);
	free(out);
}

static void test_pprof_odd_and_huge(void **state)
{
	static const struct ls_frame f[] = { NAT("spin", "a.out") };
	const struct ls_stack_sample s[] = { { f, 1, UINT64_MAX }, { f, 1, (uint64_t)INT64_MAX / 1000 + 1 }, { f, 1, 9 } };
	const struct ls_profile_meta m = { .period_ns = 1000, .duration_ns = UINT64_MAX };
	size_t len;
	char *out = render(LS_PROFILE_PPROF, odd, 4, &odd_meta, &len);
	struct decoded *d = calloc(1, sizeof(*d));

	(void)state;
	assert_non_null(d);
	decode_profile(out, len, d);
	for (size_t i = 0; i < d->nstrings; i++)
		assert_true(valid_utf8((const unsigned char *)d->strings[i], strlen(d->strings[i])));
	assert_int_equal(d->nsamples, 3);
	assert_string_equal(str(d, d->fn_name[d->loc_fn[d->sample_locs[2][0]]]), "[no frames]");
	assert_string_equal(str(d, d->fn_name[d->loc_fn[d->sample_locs[0][3]]]), "[unknown]");
	assert_string_equal(str(d, d->fn_name[d->loc_fn[d->sample_locs[0][4]]]), "[unknown]");
	assert_string_equal(str(d, d->fn_file[d->loc_fn[d->sample_locs[0][0]]]), "/srv/we ird;dir/<x>&\"?.js");
	assert_string_equal(str(d, d->comment), "loopscope profile of PID 7 (<we&ird>\xef\xbf\xbd)");
	free_decoded(d);
	free(out);

	out = render(LS_PROFILE_PPROF, s, 3, &m, &len);
	decode_profile(out, len, d);
	assert_int_equal(d->sample_val[0][0], INT64_MAX);
	assert_int_equal(d->sample_val[0][1], INT64_MAX);
	assert_int_equal(d->sample_val[1][0], (uint64_t)INT64_MAX / 1000 + 1);
	assert_int_equal(d->sample_val[1][1], INT64_MAX);
	assert_int_equal(d->sample_val[2][1], 9000);
	assert_int_equal(d->duration, INT64_MAX);
	free_decoded(d);
	free(d);
	free(out);

	/* Huge counts in a flame graph: the total saturates, nothing overflows. */
	out = render(LS_PROFILE_SVG, s, 3, &m, &len);
	assert_non_null(strstr(out, ">18446744073709551615 samples, one every 1 us, over 1.84e+10 s</text>"));
	free(out);
}

static void test_write_file(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	size_t rlen;
	char *want = render(LS_PROFILE_FOLDED, demo, 3, NULL, &rlen);

	(void)state;
	assert_non_null(f);
	assert_int_equal(ls_profile_write(f, LS_PROFILE_FOLDED, demo, 3, NULL), 0);
	assert_int_equal(len, rlen);
	assert_memory_equal(buf, want, len);
	fclose(f);
	free(buf);
	free(want);
	f = fopen("/dev/full", "w");
	if (f) {
		assert_int_equal(ls_profile_write(f, LS_PROFILE_SVG, demo, 3, NULL), -ENOSPC);
		fclose(f);
	}
}

/* The output file: refused before anything happens for a bad name or place; appears
 * whole at commit, never half; abort leaves nothing behind. */
static void test_profile_file(void **state)
{
	char dir[] = "/tmp/profile_out_test.XXXXXX", path[256], err[256] = "";
	struct ls_profile_file pf = { 0 };
	size_t len;
	char *want, *got = NULL;
	FILE *f;
	long n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ls_profile_file_open(&pf, "out.txt", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "-o out.txt: the format is taken from the extension; name the file .folded, .svg or .pb.gz");
	assert_int_equal(ls_profile_file_open(&pf, "/nonexistent-dir/out.svg", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "cannot write /nonexistent-dir/out.svg: No such file or directory; choose a writable place for -o");
	assert_null(pf.f);

	snprintf(path, sizeof(path), "%s/flame.svg", dir);
	assert_int_equal(ls_profile_file_open(&pf, path, err, sizeof(err)), 0);
	assert_int_equal(pf.fmt, LS_PROFILE_SVG);
	assert_int_equal(access(path, F_OK), -1);	/* not there until commit */
	assert_int_equal(ls_profile_file_commit(&pf, demo, 3, &demo_meta, err, sizeof(err)), 0);
	want = render(LS_PROFILE_SVG, demo, 3, &demo_meta, &len);
	f = fopen(path, "re");
	assert_non_null(f);
	got = malloc(len + 1);
	n = (long)fread(got, 1, len + 1, f);
	fclose(f);
	assert_int_equal(n, len);
	assert_memory_equal(got, want, len);
	free(got);
	free(want);
	ls_profile_file_abort(&pf);	/* after commit: harmless */
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(unlink(path), 0);

	snprintf(path, sizeof(path), "%s/cpu.pb.gz", dir);
	assert_int_equal(ls_profile_file_open(&pf, path, err, sizeof(err)), 0);
	ls_profile_file_abort(&pf);
	ls_profile_file_abort(&pf);
	assert_int_equal(rmdir(dir), 0);	/* empty: the temporary file is gone */
}

/* LS_PROFILE_FIXTURES=DIR: the profiles of these tests as files, for real readers. */
static int write_fixtures(const char *dir)
{
	static const struct {
		const char *name;
		const struct ls_stack_sample *s;
		size_t n;
		const struct ls_profile_meta *m;
	} sets[] = {
		{ "demo", demo, 3, &demo_meta },
		{ "odd", odd, 4, &odd_meta },
		{ "empty", NULL, 0, &demo_meta },
	};
	static const char *const ext[] = { ".folded", ".svg", ".pb.gz" };
	char path[4096];

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		for (int e = 0; e < 3; e++) {
			FILE *f;
			int err;

			snprintf(path, sizeof(path), "%s/%s%s", dir, sets[i].name, ext[e]);
			f = fopen(path, "we");
			if (!f) {
				fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
				return 1;
			}
			err = ls_profile_write(f, ls_profile_format_of(path), sets[i].s, sets[i].n, sets[i].m);
			if (fclose(f) || err) {
				fprintf(stderr, "writing %s failed: %s\n", path, strerror(err ? -err : errno));
				return 1;
			}
		}
	}
	return 0;
}

/* LS_PROFILE_CPUPROFILE=FILE (with LS_PROFILE_FIXTURES=DIR): a real Node process's
 * stacks, from `node --cpu-prof`'s .cpuprofile (V8's nodes with call frames, the
 * sampled node ids and the time between samples), as DIR/node.{folded,svg,pb.gz}.
 * Frames with a script URL are JS (1-based line), the others native; (root) is left
 * out. */
static int write_cpuprofile(const char *in, const char *dir)
{
	enum { MAXNODES = 1 << 16, MAXDEPTH = 1024 };
	static int parent[MAXNODES];
	static uint64_t hits[MAXNODES];
	static const cJSON *frame_of[MAXNODES];
	struct ls_stack_sample *st = NULL;
	struct ls_frame *frames = NULL;
	struct ls_profile_meta m = { .pid = 0, .comm = "node" };
	cJSON *root = NULL;
	const cJSON *node, *x;
	char *text = NULL, path[4096];
	size_t len = 0, nst = 0, nfr = 0;
	uint64_t ndeltas = 0, sum = 0;
	FILE *f = fopen(in, "re");
	int err = 1;

	if (!f || getdelim(&text, &len, 0, f) < 0 || !(root = cJSON_Parse(text))) {
		fprintf(stderr, "cannot read %s as JSON\n", in);
		goto cleanup;
	}
	memset(parent, -1, sizeof(parent));
	cJSON_ArrayForEach(node, cJSON_GetObjectItem(root, "nodes")) {
		int id = cJSON_GetObjectItem(node, "id")->valueint;

		if (id <= 0 || id >= MAXNODES)
			goto cleanup;
		frame_of[id] = cJSON_GetObjectItem(node, "callFrame");
		cJSON_ArrayForEach(x, cJSON_GetObjectItem(node, "children"))
			if (x->valueint > 0 && x->valueint < MAXNODES)
				parent[x->valueint] = id;
	}
	cJSON_ArrayForEach(x, cJSON_GetObjectItem(root, "samples"))
		if (x->valueint > 0 && x->valueint < MAXNODES)
			hits[x->valueint]++;
	cJSON_ArrayForEach(x, cJSON_GetObjectItem(root, "timeDeltas"))
		if (x->valuedouble > 0)
			sum += (uint64_t)x->valuedouble, ndeltas++;
	if (ndeltas)
		m.period_ns = sum * 1000 / ndeltas;	/* microseconds apart, on average */
	m.duration_ns = sum * 1000;
	st = calloc(MAXNODES, sizeof(*st));
	frames = calloc((size_t)MAXNODES * 16, sizeof(*frames));
	if (!st || !frames)
		goto cleanup;
	for (int id = 1; id < MAXNODES; id++) {
		struct ls_stack_sample *s = &st[nst];

		if (!hits[id])
			continue;
		s->frames = frames + nfr;
		s->count = hits[id];
		for (int n = id; n > 0 && frame_of[n] && s->nframes < MAXDEPTH; n = parent[n]) {
			const cJSON *cf = frame_of[n];
			const char *fn = cJSON_GetStringValue(cJSON_GetObjectItem(cf, "functionName"));
			const char *url = cJSON_GetStringValue(cJSON_GetObjectItem(cf, "url"));
			struct ls_frame *fr;

			if (fn && !strcmp(fn, "(root)"))
				break;
			if (nfr >= (size_t)MAXNODES * 16)
				goto cleanup;
			fr = &frames[nfr++];
			fr->function = fn && *fn ? fn : "(anonymous)";
			fr->kind = url && *url ? LS_FRAME_JS : LS_FRAME_NATIVE;
			if (fr->kind == LS_FRAME_JS) {
				fr->file = url;
				fr->line = (uint32_t)cJSON_GetObjectItem(cf, "lineNumber")->valueint + 1;
				fr->column = (uint32_t)cJSON_GetObjectItem(cf, "columnNumber")->valueint + 1;
			}
			s->nframes++;
		}
		nst++;
	}
	for (int e = 0; e < 3; e++) {
		static const char *const ext[] = { ".folded", ".svg", ".pb.gz" };
		FILE *out;
		int werr;

		snprintf(path, sizeof(path), "%s/node%s", dir, ext[e]);
		out = fopen(path, "we");
		if (!out)
			goto cleanup;
		werr = ls_profile_write(out, ls_profile_format_of(path), st, nst, &m);
		if (fclose(out) || werr) {
			fprintf(stderr, "writing %s failed\n", path);
			goto cleanup;
		}
	}
	err = 0;
cleanup:
	if (f)
		fclose(f);
	free(text);
	free(frames);
	free(st);
	cJSON_Delete(root);
	return err;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_of),
		cmocka_unit_test(test_folded_demo),
		cmocka_unit_test(test_folded_cleaning),
		cmocka_unit_test(test_folded_merge_and_huge),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_svg_demo),
		cmocka_unit_test(test_svg_odd),
		cmocka_unit_test(test_svg_cut_utf8),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_pprof_demo),
		cmocka_unit_test(test_pprof_odd_and_huge),
		cmocka_unit_test(test_write_file),
		cmocka_unit_test(test_profile_file),
	};
	const char *dir = getenv("LS_PROFILE_FIXTURES"), *cpuprofile = getenv("LS_PROFILE_CPUPROFILE");
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	if (!failed && dir && *dir)
		failed = write_fixtures(dir);
	if (!failed && dir && *dir && cpuprofile && *cpuprofile)
		failed = write_cpuprofile(cpuprofile, dir);
	return failed;
}
