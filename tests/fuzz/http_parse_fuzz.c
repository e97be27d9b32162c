/* http_parse_fuzz.c: libFuzzer harness for the HTTP request-head parser
 * (wire/http_parse.c): ls_http_parse at two head limits, the Basic credentials
 * decoder and the Accept-Encoding reader. The input is copied to a buffer of its exact
 * size, so a read past the end is an ASan report. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_http_req req;
	char *buf = malloc(size ? size : 1), out[512];
	int r, ok;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = ls_http_parse(buf, size, 8192, &req);
	if (r > 0 && ((size_t)r > size || !req.method_name[0] || req.path[sizeof(req.path) - 1]))
		abort();	/* a head longer than the input, or fields not terminated */
	if (r > 0 && req.auth_ok && !strchr(req.auth, ':'))
		abort();
	ls_http_parse(buf, size, 64, &req);
	ls_base64_decode(buf, size, out, sizeof(out), &ok);
	if (size < 300) {
		char s[300];

		memcpy(s, data, size);
		s[size] = 0;
		ls_http_accepts_gzip(s);
	}
	free(buf);
	return 0;
}
