/* snapjson.h: the JSON form of snapshots and episodes, as streamed by
 * `loopscope serve` on GET /events and read back by `loopscope top --connect`.
 *
 * Wire format of /events: newline-delimited JSON (NDJSON, one object per line,
 * "\n"-terminated, UTF-8), Content-Type application/x-ndjson, sent as a plain HTTP/1.1
 * body delimited by connection close (no chunked encoding, no Content-Length), so a
 * client reads lines from the socket after the blank line ending the response head.
 * Every line has a "type":
 *
 *   {"type":"snapshot","v":1,"hist":"loglin4-40",...}  the full cumulative struct
 *        ls_snapshot (one when the client connects, then one per --interval);
 *   {"type":"episode","v":1,...}                       one struct ls_episode, sent as
 *        it starts (end_ns 0) and again as it ends.
 *
 * Clients skip lines whose type they do not know. Encoding rules:
 *  - integers are exact: a JSON number when <= 2^53, else a decimal string (so a
 *    double-based parser such as cJSON loses nothing); decoders accept both;
 *  - nanoseconds stay nanoseconds (fields end in _ns); names of enums are strings
 *    ("timers", "reference", "attached", "stall", ...);
 *  - a histogram is {"count":N,"sum":NS,"max":NS,"buckets":[[index,count],...]} with
 *    only non-empty buckets, index being the bpf/hist.h bucket index (layout named by
 *    the snapshot's "hist" field: 4 sub-bucket bits, 2^40 ns top; a decoder rejects a
 *    layout it does not know).
 * The field names of a snapshot line mirror struct ls_snapshot (snapshot.h);
 * events.md beside this file shows a full example.
 */
#ifndef LS_SNAPJSON_H
#define LS_SNAPJSON_H

#include <stddef.h>

#include "snapshot.h"

struct ls_buf;

#define LS_JSON_VERSION 1
#define LS_JSON_HIST_LAYOUT "loglin4-40"

/* One line (no trailing newline) into a malloc'd, NUL-terminated *out; *len its
 * length. 0 or -ENOMEM. The caller frees *out. */
int ls_snapshot_to_json(const struct ls_snapshot *s, char **out, size_t *len);
int ls_episode_to_json(const struct ls_episode *ep, char **out, size_t *len);
/* The same, appended to a buffer (the server encodes once per tick for all streams). */
void ls_snapshot_json_append(const struct ls_snapshot *s, struct ls_buf *b);
void ls_episode_json_append(const struct ls_episode *ep, struct ls_buf *b);

/* Parse one line (a trailing "\n" or "\r\n" is fine). On success *out owns freshly
 * allocated targets/loops (release with ls_snapshot_free()); on failure *out is left
 * zeroed. 0, -EINVAL (not a snapshot line, wrong version or histogram layout, bad
 * field) or -ENOMEM. */
int ls_snapshot_from_json(const char *line, size_t len, struct ls_snapshot *out);
int ls_episode_from_json(const char *line, size_t len, struct ls_episode *out);

enum ls_json_type { LS_JSON_UNKNOWN, LS_JSON_SNAPSHOT, LS_JSON_EPISODE };
/* Which kind of line this is (cheap: looks only at "type"). -EINVAL if not a JSON object. */
int ls_json_type(const char *line, size_t len);

/* Frees what ls_snapshot_from_json() allocated; the same contract as
 * ls_snapshot_free() (snapshot.h), usable without the agent core linked in. */
void ls_snapjson_free(struct ls_snapshot *s);

#endif /* LS_SNAPJSON_H */
