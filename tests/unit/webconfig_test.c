/* webconfig_test.c: serve's web config (wire/webconfig.c), Basic credentials in the
 * HTTP parser, and the shared "is this episode over?" rule (core/view.c). */
#include <crypt.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"
#include "view.h"
#include "webconfig.h"

static struct ls_webconfig wc;

static int parse(const char *text, char *err, size_t errlen)
{
	return ls_webconfig_parse(text, strlen(text), "/etc/ls", &wc, err, errlen);
}

static void test_good_config(void **state)
{
	char err[512] = "";

	(void)state;
	assert_int_equal(parse("tls_server_config:\n  cert_file: s.crt\n  key_file: /k/s.key\n"
			       "  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
			       "  min_version: TLS13\n"
			       "http_server_config:\n  http2: false\n"
			       "basic_auth_users:\n  alice: $2y$10$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0\n",
			       err, sizeof(err)), 0);
	assert_true(wc.tls);
	assert_string_equal(wc.cert_file, "/etc/ls/s.crt");	/* relative to the file */
	assert_string_equal(wc.key_file, "/k/s.key");
	assert_int_equal(wc.client_auth, LS_CLIENT_REQUIRE_VERIFY);
	assert_int_equal(wc.min_version, 0x0304);
	assert_int_equal(wc.nusers, 1);
	assert_string_equal(wc.users[0].name, "alice");
	assert_int_equal(parse("", err, sizeof(err)), 0);	/* empty: plain HTTP */
	assert_false(wc.tls);
}

static void test_bad_configs(void **state)
{
	static const char *const bad[][2] = {
		{ "tls_server_config:\n  cert_file: a\n", "key_file" },
		{ "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
		  "client_ca_file" },
		{ "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n", "TLS13" },
		{ "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [X]\n", "not supported" },
		{ "basic_auth_users:\n  bob: plain\n", "bcrypt" },
		{ "basic_auth_users:\n  'a:b': $2y$10$x\n", "':'" },
		{ "tls_server_confg: {}\n", "unknown key" },
		{ "- a\n- b\n", "mapping" },
		{ "a: [\n", "YAML" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_not_equal(parse(bad[i][0], err, sizeof(err)), 0);
		if (!strstr(err, bad[i][1]))
			fail_msg("config %zu: '%s' does not say '%s'", i, err, bad[i][1]);
	}
}

static void test_auth(void **state)
{
	struct crypt_data cd;
	struct ls_web_auth *a;
	const char *h;
	char err[512];

	(void)state;
	memset(&cd, 0, sizeof(cd));
	/* A cheap cost for the test; serve takes whatever cost the file has. */
	h = crypt_r("s3cret", "$2b$04$abcdefghijklmnopqrstuu", &cd);
	assert_non_null(h);
	assert_int_equal(strncmp(h, "$2b$04$", 7), 0);
	memset(&wc, 0, sizeof(wc));
	snprintf(wc.users[0].name, sizeof(wc.users[0].name), "alice");
	snprintf(wc.users[0].hash, sizeof(wc.users[0].hash), "$2y$%s", h + 4);	/* $2y$ too */
	wc.nusers = 1;
	a = ls_web_auth_new(&wc);
	assert_non_null(a);
	assert_true(ls_web_auth_check(a, "alice:s3cret"));
	assert_true(ls_web_auth_check(a, "alice:s3cret"));	/* cached */
	assert_false(ls_web_auth_check(a, "alice:s3cre"));
	assert_false(ls_web_auth_check(a, "mallory:s3cret"));
	assert_false(ls_web_auth_check(a, "alice"));
	ls_web_auth_free(a);
	(void)err;
}

static void test_basic_header(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n";
	static const char two[] = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n"
				  "Authorization: Basic Ym9iOng=\r\n\r\n";
	static const char bearer[] = "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n";
	struct ls_http_req r;
	char out[64];
	int ok;

	(void)state;
	assert_true(ls_http_parse(req, sizeof(req) - 1, 8192, &r) > 0);
	assert_true(r.auth_ok);
	assert_string_equal(r.auth, "alice:s3cret");
	assert_true(ls_http_parse(two, sizeof(two) - 1, 8192, &r) > 0);
	assert_false(r.auth_ok);	/* two credentials: neither */
	assert_true(ls_http_parse(bearer, sizeof(bearer) - 1, 8192, &r) > 0);
	assert_false(r.auth_ok);
	assert_int_equal(ls_base64_decode("Ym9iOng=", 8, out, sizeof(out), &ok), 5);
	assert_true(ok);
	assert_int_equal(ls_base64_decode("Ym9i*ng=", 8, out, sizeof(out), &ok), -1);
	assert_int_equal(ls_base64_decode("AAAA", 4, out, sizeof(out), &ok), -1);	/* NULs */
	assert_int_equal(ls_base64_decode("YWxpY2U6czNjcmV0", 16, out, 4, &ok), -1);	/* too long */
}

static void test_episode_over(void **state)
{
	struct ls_loop_snapshot l;

	(void)state;
	memset(&l, 0, sizeof(l));
	l.live_state = LS_LIVE_POLLING;
	l.live_since_ns = 200;
	assert_true(ls_episode_over(LS_EP_STALL, 100, &l, 300));	/* back in the poll wait since */
	assert_false(ls_episode_over(LS_EP_STALL, 250, &l, 300));	/* polling began before it */
	assert_false(ls_episode_over(LS_EP_STALL, 100, &l, 100));	/* live state predates the start */
	l.live_state = LS_LIVE_RUNNING;
	assert_false(ls_episode_over(LS_EP_STALL, 100, &l, 300));
	l.live_drain = 1;
	l.live_drain_since_ns = 50;
	assert_false(ls_episode_over(LS_EP_TICK_STARVATION, 100, &l, 300));	/* still draining ticks */
	assert_true(ls_episode_over(LS_EP_MICROTASK_STARVATION, 100, &l, 300));	/* not in microtasks */
	l.live_drain_since_ns = 150;
	assert_true(ls_episode_over(LS_EP_TICK_STARVATION, 100, &l, 300));	/* a later drain */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_config),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_basic_header),
		cmocka_unit_test(test_episode_over),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
