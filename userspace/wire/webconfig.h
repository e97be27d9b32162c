/* webconfig.h: `serve --web.config.file`, in the Prometheus exporter-toolkit format.
 *
 *   tls_server_config:
 *     cert_file: server.crt          # PEM; relative paths are relative to the config file
 *     key_file: server.key
 *     client_ca_file: ca.crt         # to verify client certificates
 *     client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default),
 *                                    # RequestClientCert, RequireAnyClientCert,
 *                                    # VerifyClientCertIfGiven, RequireAndVerifyClientCert
 *     min_version: TLS12             # TLS10, TLS11, TLS12 (default), TLS13
 *     max_version: TLS13
 *   basic_auth_users:
 *     alice: $2y$10$...              # bcrypt hashes ($2a$, $2b$, $2y$), checked with crypt(3)
 *
 * Keys of the format that loopscope does not implement (cipher_suites,
 * curve_preferences, client_allowed_sans, http_server_config.headers) are refused by
 * name rather than ignored; prefer_server_cipher_suites and http2 are accepted and
 * have no effect (TLS 1.3 and OpenSSL's defaults; no HTTP/2). Parsing is a pure
 * function of the text (fuzzed by tests/fuzz/webconfig_fuzz.c).
 */
#ifndef LS_WEBCONFIG_H
#define LS_WEBCONFIG_H

#include <limits.h>
#include <stddef.h>

#define LS_WEB_MAX_USERS 64

enum ls_client_auth {
	LS_CLIENT_NONE,			/* NoClientCert */
	LS_CLIENT_REQUEST,		/* RequestClientCert: asked for, not verified */
	LS_CLIENT_REQUIRE_ANY,		/* RequireAnyClientCert: required, not verified */
	LS_CLIENT_VERIFY_IF_GIVEN,	/* VerifyClientCertIfGiven */
	LS_CLIENT_REQUIRE_VERIFY,	/* RequireAndVerifyClientCert */
};

struct ls_web_user {
	char name[128];
	char hash[128];
};

struct ls_webconfig {
	int tls;			/* tls_server_config with a certificate */
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	char client_ca_file[PATH_MAX];
	int client_auth;		/* enum ls_client_auth */
	int min_version, max_version;	/* TLS1_x_VERSION values; 0 = default / none */
	struct ls_web_user users[LS_WEB_MAX_USERS];
	int nusers;
};

/* Parse text (len bytes) into wc; relative file names are joined to base_dir (may be
 * NULL). 0 or -EINVAL with a one-line message in err. */
int ls_webconfig_parse(const char *text, size_t len, const char *base_dir, struct ls_webconfig *wc, char *err,
		       size_t errlen);
/* Read and parse the file at path. 0 or -errno with err. */
int ls_webconfig_load(const char *path, struct ls_webconfig *wc, char *err, size_t errlen);

/* Check "user:password" against the users. 1 when it matches, 0 when not. Every
 * check costs one bcrypt (unknown users too, so timing does not tell who exists);
 * a small cache keeps recent good credentials so a scraper pays it once. */
struct ls_web_auth;
struct ls_web_auth *ls_web_auth_new(const struct ls_webconfig *wc);
int ls_web_auth_check(struct ls_web_auth *a, const char *user_colon_pass);
void ls_web_auth_free(struct ls_web_auth *a);

#endif /* LS_WEBCONFIG_H */
