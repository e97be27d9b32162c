/* webconfig.c: the exporter-toolkit web config: parsing and basic auth (webconfig.h). */
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "webconfig.h"

#define WEB_CONFIG_MAX (1u << 20)
#define AUTH_CACHE 16

/* A scalar node's text, or NULL when n is not a scalar. */
static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int join_path(const char *base, const char *name, char *out, size_t cap)
{
	int n = name[0] == '/' || !base || !*base ? snprintf(out, cap, "%s", name)
						   : snprintf(out, cap, "%s/%s", base, name);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int tls_version(const char *v)
{
	static const struct { const char *name; int ver; } names[] = {
		{ "TLS10", TLS1_VERSION }, { "TLS11", TLS1_1_VERSION },
		{ "TLS12", TLS1_2_VERSION }, { "TLS13", TLS1_3_VERSION },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(v, names[i].name))
			return names[i].ver;
	return -1;
}

static int client_auth_type(const char *v)
{
	static const char *const names[] = {
		[LS_CLIENT_NONE] = "NoClientCert",
		[LS_CLIENT_REQUEST] = "RequestClientCert",
		[LS_CLIENT_REQUIRE_ANY] = "RequireAnyClientCert",
		[LS_CLIENT_VERIFY_IF_GIVEN] = "VerifyClientCertIfGiven",
		[LS_CLIENT_REQUIRE_VERIFY] = "RequireAndVerifyClientCert",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(v, names[i]))
			return (int)i;
	return -1;
}

static int parse_tls(yaml_document_t *doc, yaml_node_t *map, const char *base, struct ls_webconfig *wc, char *err,
		     size_t errlen)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = scalar(yaml_document_get_node(doc, p->key));
		const char *v = scalar(yaml_document_get_node(doc, p->value));

		if (!k) {
			snprintf(err, errlen, "tls_server_config: a key that is not a string");
			return -EINVAL;
		}
		if (!strcmp(k, "prefer_server_cipher_suites"))
			continue;
		if (!strcmp(k, "cipher_suites") || !strcmp(k, "curve_preferences") ||
		    !strcmp(k, "client_allowed_sans")) {
			snprintf(err, errlen, "tls_server_config.%s is not supported by loopscope; remove it", k);
			return -EINVAL;
		}
		if (!v) {
			snprintf(err, errlen, "tls_server_config.%s: give a single value", k);
			return -EINVAL;
		}
		if (!strcmp(k, "cert_file") || !strcmp(k, "key_file") || !strcmp(k, "client_ca_file")) {
			char *dst = k[0] == 'c' && k[1] == 'e' ? wc->cert_file : k[0] == 'k' ? wc->key_file
											   : wc->client_ca_file;
			if (*v && join_path(base, v, dst, PATH_MAX)) {
				snprintf(err, errlen, "tls_server_config.%s: path too long", k);
				return -EINVAL;
			}
		} else if (!strcmp(k, "client_auth_type")) {
			if ((wc->client_auth = client_auth_type(v)) < 0) {
				snprintf(err, errlen, "tls_server_config.client_auth_type '%.64s': give NoClientCert, "
					 "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or "
					 "RequireAndVerifyClientCert", v);
				return -EINVAL;
			}
		} else if (!strcmp(k, "min_version") || !strcmp(k, "max_version")) {
			int ver = tls_version(v);

			if (ver < 0) {
				snprintf(err, errlen, "tls_server_config.%s '%.32s': give TLS10, TLS11, TLS12 or TLS13", k, v);
				return -EINVAL;
			}
			*(k[1] == 'i' ? &wc->min_version : &wc->max_version) = ver;
		} else {
			snprintf(err, errlen, "tls_server_config: unknown key '%.64s'", k);
			return -EINVAL;
		}
	}
	if (!wc->cert_file[0] || !wc->key_file[0]) {
		snprintf(err, errlen, "tls_server_config needs both cert_file and key_file");
		return -EINVAL;
	}
	if (wc->client_auth >= LS_CLIENT_VERIFY_IF_GIVEN && !wc->client_ca_file[0]) {
		snprintf(err, errlen, "tls_server_config: client_auth_type %s needs client_ca_file",
			 wc->client_auth == LS_CLIENT_VERIFY_IF_GIVEN ? "VerifyClientCertIfGiven"
								       : "RequireAndVerifyClientCert");
		return -EINVAL;
	}
	if (wc->min_version && wc->max_version && wc->min_version > wc->max_version) {
		snprintf(err, errlen, "tls_server_config: min_version is above max_version");
		return -EINVAL;
	}
	wc->tls = 1;
	return 0;
}

static int parse_users(yaml_document_t *doc, yaml_node_t *map, struct ls_webconfig *wc, char *err, size_t errlen)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = scalar(yaml_document_get_node(doc, p->key));
		const char *v = scalar(yaml_document_get_node(doc, p->value));
		struct ls_web_user *u;

		if (!k || !v || !*k) {
			snprintf(err, errlen, "basic_auth_users: give 'name: bcrypt-hash' pairs");
			return -EINVAL;
		}
		if (strchr(k, ':')) {
			snprintf(err, errlen, "basic_auth_users: user '%.64s' has a ':' (basic auth cannot carry it)", k);
			return -EINVAL;
		}
		if (strncmp(v, "$2a$", 4) && strncmp(v, "$2b$", 4) && strncmp(v, "$2y$", 4)) {
			snprintf(err, errlen, "basic_auth_users: the password of '%.64s' is not a bcrypt hash "
				 "($2a$, $2b$ or $2y$); make one with htpasswd -nBC 10 USER", k);
			return -EINVAL;
		}
		if (wc->nusers == LS_WEB_MAX_USERS || strlen(k) >= sizeof(u->name) || strlen(v) >= sizeof(u->hash)) {
			snprintf(err, errlen, "basic_auth_users: at most %d users, names and hashes under 128 bytes",
				 LS_WEB_MAX_USERS);
			return -EINVAL;
		}
		for (int i = 0; i < wc->nusers; i++)
			if (!strcmp(wc->users[i].name, k)) {
				snprintf(err, errlen, "basic_auth_users: '%.64s' given twice", k);
				return -EINVAL;
			}
		u = &wc->users[wc->nusers++];
		snprintf(u->name, sizeof(u->name), "%s", k);
		snprintf(u->hash, sizeof(u->hash), "%s", v);
	}
	return 0;
}

int ls_webconfig_parse(const char *text, size_t len, const char *base_dir, struct ls_webconfig *wc, char *err,
		       size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int r = 0, have_doc = 0;

	memset(wc, 0, sizeof(*wc));
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "not YAML: %s at line %zu", parser.problem ? parser.problem : "error",
			 parser.problem_mark.line + 1);
		r = -EINVAL;
		goto cleanup;
	}
	have_doc = 1;
	root = yaml_document_get_root_node(&doc);
	if (!root)
		goto cleanup;	/* an empty file: plain HTTP, no auth */
	if (root->type != YAML_MAPPING_NODE) {
		snprintf(err, errlen, "the top level must be a mapping (tls_server_config:, basic_auth_users:)");
		r = -EINVAL;
		goto cleanup;
	}
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && !r; p++) {
		const char *k = scalar(yaml_document_get_node(&doc, p->key));
		yaml_node_t *v = yaml_document_get_node(&doc, p->value);

		if (!k) {
			snprintf(err, errlen, "a top-level key that is not a string");
			r = -EINVAL;
		} else if (v && v->type == YAML_SCALAR_NODE && (!strcmp(scalar(v), "") || !strcmp(scalar(v), "~") ||
								!strcmp(scalar(v), "null"))) {
			continue;	/* "key:" with nothing under it */
		} else if (!v || v->type != YAML_MAPPING_NODE) {
			snprintf(err, errlen, "%.64s: expected a mapping", k);
			r = -EINVAL;
		} else if (!strcmp(k, "tls_server_config")) {
			r = parse_tls(&doc, v, base_dir, wc, err, errlen);
		} else if (!strcmp(k, "basic_auth_users")) {
			r = parse_users(&doc, v, wc, err, errlen);
		} else if (!strcmp(k, "http_server_config")) {
			for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top && !r; q++) {
				const char *hk = scalar(yaml_document_get_node(&doc, q->key));

				if (!hk || strcmp(hk, "http2")) {
					snprintf(err, errlen, "http_server_config.%.64s is not supported by loopscope",
						 hk ? hk : "?");
					r = -EINVAL;
				}
			}
		} else {
			snprintf(err, errlen, "unknown key '%.64s' (known: tls_server_config, http_server_config, "
				 "basic_auth_users)", k);
			r = -EINVAL;
		}
	}
cleanup:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return r;
}

int ls_webconfig_load(const char *path, struct ls_webconfig *wc, char *err, size_t errlen)
{
	char base[PATH_MAX], msg[512], *text = NULL, *slash;
	size_t len = 0;
	FILE *f = NULL;
	int r;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "--web.config.file %s: %s", path, strerror(errno));
		return r;
	}
	text = malloc(WEB_CONFIG_MAX + 1);
	if (!text) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto cleanup;
	}
	len = fread(text, 1, WEB_CONFIG_MAX + 1, f);
	if (len > WEB_CONFIG_MAX || ferror(f)) {
		r = -EFBIG;
		snprintf(err, errlen, "--web.config.file %s: %s", path, len > WEB_CONFIG_MAX ? "over 1 MiB" : "read error");
		goto cleanup;
	}
	snprintf(base, sizeof(base), "%s", path);
	slash = strrchr(base, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(base, sizeof(base), ".");
	r = ls_webconfig_parse(text, len, base, wc, msg, sizeof(msg));
	if (r)
		snprintf(err, errlen, "--web.config.file %s: %s", path, msg);
cleanup:
	free(text);
	fclose(f);
	return r;
}

/* ---------------------------------------------------------------- basic auth */

struct ls_web_auth {
	const struct ls_webconfig *wc;
	unsigned char good[AUTH_CACHE][32], bad[AUTH_CACHE][32];
	unsigned ngood, nbad;		/* ring positions */
	struct crypt_data cd;
};

struct ls_web_auth *ls_web_auth_new(const struct ls_webconfig *wc)
{
	struct ls_web_auth *a = calloc(1, sizeof(*a));

	if (a)
		a->wc = wc;
	return a;
}

void ls_web_auth_free(struct ls_web_auth *a)
{
	free(a);
}

static int cached(unsigned char (*set)[32], const unsigned char *d)
{
	for (int i = 0; i < AUTH_CACHE; i++)
		if (!CRYPTO_memcmp(set[i], d, 32))
			return 1;
	return 0;
}

int ls_web_auth_check(struct ls_web_auth *a, const char *cred)
{
	unsigned char d[32];
	unsigned int dl = 0;
	const char *colon = strchr(cred, ':'), *hash, *out;
	size_t ulen;
	int ok = 0;

	if (!colon)
		return 0;
	if (!EVP_Digest(cred, strlen(cred), d, &dl, EVP_sha256(), NULL) || dl != 32)
		return 0;
	if (cached(a->good, d))
		return 1;
	if (cached(a->bad, d))
		return 0;
	ulen = (size_t)(colon - cred);
	if (!a->wc->nusers)
		return 0;
	/* An unknown user is checked against the first user's hash (and refused): it
	 * costs the same bcrypt, so timing does not tell which users exist. */
	hash = a->wc->users[0].hash;
	for (int i = 0; i < a->wc->nusers; i++)
		if (strlen(a->wc->users[i].name) == ulen && !memcmp(a->wc->users[i].name, cred, ulen)) {
			hash = a->wc->users[i].hash;
			ok = 1;
		}
	memset(&a->cd, 0, sizeof(a->cd));
	out = crypt_r(colon + 1, hash, &a->cd);
	ok = ok && out && out[0] != '*' && strlen(out) == strlen(hash) && !CRYPTO_memcmp(out, hash, strlen(hash));
	memcpy(ok ? a->good[a->ngood++ % AUTH_CACHE] : a->bad[a->nbad++ % AUTH_CACHE], d, 32);
	return ok;
}
