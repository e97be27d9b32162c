/* http_parse_test.c: the request-head parser and Accept-Encoding rules of
 * userspace/wire/http.c, fed byte strings (no sockets). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <zlib.h>

#include "http.h"

static int parse(const char *s, struct ls_http_req *r)
{
	return ls_http_parse(s, strlen(s), 8192, r);
}

static void test_good_requests(void **state)
{
	struct ls_http_req r;
	const char *s;

	(void)state;
	s = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate\r\n\r\n";
	assert_int_equal(parse(s, &r), (int)strlen(s));
	assert_int_equal(r.method, LS_HTTP_GET);
	assert_string_equal(r.path, "/metrics");
	assert_string_equal(r.query, "");
	assert_int_equal(r.minor, 1);
	assert_true(r.keep_alive);
	assert_true(r.accept_gzip);
	assert_false(r.has_body);

	/* Bare LF line ends, a query, HEAD, Connection: close. */
	s = "HEAD /events?x=1 HTTP/1.1\nhost: y\nConnection: Close\n\n";
	assert_int_equal(parse(s, &r), (int)strlen(s));
	assert_int_equal(r.method, LS_HTTP_HEAD);
	assert_string_equal(r.path, "/events");
	assert_string_equal(r.query, "x=1");
	assert_false(r.keep_alive);
	assert_false(r.accept_gzip);

	/* HTTP/1.0: no Host needed, keep-alive only when asked. */
	assert_true(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0);
	assert_false(r.keep_alive);
	assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
	assert_true(r.keep_alive);

	/* Other methods parse (the handler answers 405); a body means close after. */
	assert_true(parse("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", &r) > 0);
	assert_int_equal(r.method, LS_HTTP_OTHER);
	assert_string_equal(r.method_name, "POST");
	assert_true(r.has_body);

	/* Leading empty lines are skipped; the head ends at the first blank line and
	 * pipelined bytes after it are left for the next call. */
	s = "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n";
	assert_int_equal(parse(s, &r), (int)(strstr(s, "GET /b") - s));
	assert_string_equal(r.path, "/a");
}

static void test_incomplete(void **state)
{
	static const char full[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct ls_http_req r;

	(void)state;
	/* Every strict prefix asks for more bytes: a slow client is never misparsed. */
	for (size_t n = 0; n < sizeof(full) - 1; n++)
		assert_int_equal(ls_http_parse(full, n, 8192, &r), 0);
	assert_int_equal(ls_http_parse(full, sizeof(full) - 1, 8192, &r), (int)sizeof(full) - 1);
}

static void test_bad_requests(void **state)
{
	static const struct { const char *req; int status; } cases[] = {
		{ "garbage\r\n\r\n", -400 },
		{ "GET\r\n\r\n", -400 },
		{ "GET /metrics\r\n\r\n", -400 },			/* HTTP/0.9 style */
		{ "GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", -400 },	/* two spaces */
		{ "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", -400 },	/* not origin-form */
		{ "GET http://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\n\r\n", -400 },		/* 1.1 without Host */
		{ "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", -400 },	/* space before colon */
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", -400 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", -400 },
		{ "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", -505 },
		{ "GET /metrics HTTP/1.x\r\nHost: x\r\n\r\n", -400 },
		{ "G\x01T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
		{ "VERYLONGMETHODNAME /metrics HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
	};
	struct ls_http_req r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = parse(cases[i].req, &r);
		if (got != cases[i].status)
			fail_msg("case %zu: got %d, want %d for %s", i, got, cases[i].status, cases[i].req);
	}
}

static void test_limits(void **state)
{
	char buf[12000];
	struct ls_http_req r;
	size_t n;

	(void)state;
	/* A target longer than the path buffer: 414. */
	n = (size_t)snprintf(buf, sizeof(buf), "GET /%0300d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
	assert_int_equal(ls_http_parse(buf, n, 8192, &r), -414);
	/* Headers past max_head with no end in sight: 431 at once, not "need more". */
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: x\r\nX: ");
	memset(buf + n, 'a', sizeof(buf) - n);
	assert_int_equal(ls_http_parse(buf, sizeof(buf), 8192, &r), -431);
	assert_int_equal(ls_http_parse(buf, 8000, 8192, &r), 0);
	/* A complete head that is too large is refused as well. */
	memcpy(buf + 9000, "\r\n\r\n", 4);
	assert_int_equal(ls_http_parse(buf, 9004, 8192, &r), -431);
	/* A request line longer than max_head (a 10 kB URI): 414, not 431. */
	n = (size_t)snprintf(buf, sizeof(buf), "GET /");
	memset(buf + n, 'u', sizeof(buf) - n);
	assert_int_equal(ls_http_parse(buf, sizeof(buf), 8192, &r), -414);
	memcpy(buf + 10000, " HTTP/1.1\r\n\r\n", 13);
	assert_int_equal(ls_http_parse(buf, 10013, 8192, &r), -414);
}

static void test_accept_gzip(void **state)
{
	static const struct { const char *v; int want; } cases[] = {
		{ "gzip", 1 }, { "GZIP", 1 }, { "deflate, gzip;q=0.5", 1 }, { "x-gzip", 1 },
		{ "*", 1 }, { "br, *;q=0.1", 1 }, { "gzip;q=0", 0 }, { "gzip; q=0.000", 0 },
		{ "*;q=0", 0 }, { "identity", 0 }, { "", 0 }, { "gzip;q=0, *", 0 },
		{ "deflate", 0 }, { "gzipx", 0 }, { "gzip;q=0.001", 1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ls_http_accepts_gzip(cases[i].v) != cases[i].want)
			fail_msg("Accept-Encoding '%s': want %d", cases[i].v, cases[i].want);
}

/* ls_gzip output inflates back to the input (zlib's own decoder, gzip wrapper). */
static void test_gzip_round_trip(void **state)
{
	struct ls_buf in = { 0 }, out = { 0 };
	unsigned char *back;
	z_stream zs;

	(void)state;
	for (int i = 0; i < 20000; i++)
		ls_buf_printf(&in, "loopscope_x_bucket{le=\"%d\"} %d\n", i, i * 7);
	assert_int_equal(ls_gzip(in.p, in.len, &out), 0);
	assert_true(out.len < in.len / 4);
	assert_int_equal((unsigned char)out.p[0], 0x1f);	/* gzip magic */
	assert_int_equal((unsigned char)out.p[1], 0x8b);
	back = malloc(in.len + 16);
	assert_non_null(back);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (unsigned char *)out.p;
	zs.avail_in = (uInt)out.len;
	zs.next_out = back;
	zs.avail_out = (uInt)in.len + 16;
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	assert_int_equal(zs.total_out, in.len);
	assert_memory_equal(back, in.p, in.len);
	inflateEnd(&zs);
	free(back);
	ls_buf_free(&in);
	ls_buf_free(&out);
}

static void test_buf(void **state)
{
	struct ls_buf b = { 0 };

	(void)state;
	ls_buf_u64(&b, 0);
	ls_buf_puts(&b, " ");
	ls_buf_u64(&b, UINT64_MAX);
	ls_buf_printf(&b, " %s", "x");
	assert_string_equal(b.p, "0 18446744073709551615 x");
	ls_buf_consume(&b, 2);
	assert_string_equal(b.p, "18446744073709551615 x");
	ls_buf_reset(&b);
	assert_int_equal(b.len, 0);
	ls_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_requests),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_accept_gzip),
		cmocka_unit_test(test_gzip_round_trip),
		cmocka_unit_test(test_buf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
