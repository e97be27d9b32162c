/* remote.h: an ls_source that reads a running `loopscope serve`'s GET /events stream
 * (NDJSON, see snapjson.h), so `loopscope top --connect` needs no privileges.
 *
 * The constructor connects and checks the response head (a few seconds at most, before
 * the dashboard starts); after that every read is non-blocking: poll() takes whatever
 * bytes the socket has, hands each complete episode line to the callback and keeps the
 * newest snapshot line, so a slow or stalled stream never blocks the caller. */
#ifndef LS_REMOTE_H
#define LS_REMOTE_H

#include <stddef.h>

#include "snapshot.h"

/* TLS client settings for an https:// address (all may be NULL). */
struct ls_remote_opts {
	const char *ca_file;	/* trust these CAs (default: the system's) */
	const char *cert_file;	/* client certificate, when the server asks for one */
	const char *key_file;	/* its key (default: in cert_file) */
};

/* url: "HOST:PORT", "[V6ADDR]:PORT", or with a scheme and credentials,
 * "https://USER:PASS@HOST:PORT" (TLS, the server's certificate checked against the
 * host; basic auth). 0, or -errno with a one-line message in err (bad address, refused,
 * TLS refused or untrusted, 401, not a loopscope serve, timeout). *out is destroyed with
 * ls_source_destroy(). snapshot() returns -EAGAIN until the first snapshot line came;
 * poll() returns -ENODATA once the server closed the stream. */
/* url without its credentials, for display. Returns buf. */
const char *ls_remote_display(const char *url, char *buf, size_t len);

int ls_remote_source_new(const char *url, const struct ls_remote_opts *opts, struct ls_source **out, char *err,
			 size_t errlen);

#endif
