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

/* addr: "HOST:PORT" or "[V6ADDR]:PORT". 0, or -errno with a one-line message in err
 * (bad address, refused, not a loopscope serve, timeout). *out is destroyed with
 * ls_source_destroy(). snapshot() returns -EAGAIN until the first snapshot line came;
 * poll() returns -ENODATA once the server closed the stream. */
int ls_remote_source_new(const char *addr, struct ls_source **out, char *err, size_t errlen);

#endif
