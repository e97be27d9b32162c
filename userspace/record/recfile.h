/* recfile.h: the loopscope recording format (`loopscope record`), writer and reader.
 * The byte layout is specified in userspace/record/README.md; in short:
 *
 *   header  "\x89LSR\r\n\x1a\n", u32 format version, u32 info length, u32 CRC32,
 *           then the info as one JSON object (host, kernel, clock base, ...);
 *   blocks  "LSBK", u32 compressed length, u32 raw length, u32 records,
 *           u64 first and last record time, u32 CRC32, then a zlib stream of records;
 *   record  u32 length, u16 type, u16 flags (0), u64 time (CLOCK_MONOTONIC ns of the
 *           recording host), then the value: one snapjson line (snapjson.h) for
 *           snapshots and episodes, so fields added to those carry over unchanged.
 *
 * All integers are little-endian. A reader skips record types it does not know. Every
 * block is written with one write() and fdatasync()'d within 5 s of its first record
 * (the recorder must call ls_rec_flush() in time), so a recording cut by SIGKILL,
 * a full disk or a power loss reads up to its last complete block.
 */
#ifndef LS_RECFILE_H
#define LS_RECFILE_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

#define LS_REC_FORMAT 1
/* A block is written once its first record is this old, so no record waits 5 s. */
#define LS_REC_FLUSH_NS 4000000000ull
#define LS_REC_MAX_BLOCK (64u << 20)	/* raw or compressed bytes in one block: a reader's bound */
#define LS_REC_MAX_INFO (64u << 10)

enum ls_rec_type {
	LS_REC_SNAPSHOT = 1,	/* snapjson snapshot line; time = its mono_ns */
	LS_REC_EPISODE = 2,	/* snapjson episode line (a start, end_ns 0, or an end); time = when it arrived */
	LS_REC_END = 3,		/* {"type":"end","reason":...}: the recorder stopped cleanly */
	LS_REC_STACKS = 4,	/* reserved: episode stacks (JSON), once the agent delivers them */
};

/* What the header says about the recording. */
struct ls_rec_info {
	uint32_t format;		/* LS_REC_FORMAT of the writer */
	char version[32];		/* loopscope version that wrote it */
	char host[256];
	char kernel[256];		/* uname -srm */
	uint64_t mono_ns, wall_ns;	/* the clock base: CLOCK_MONOTONIC and CLOCK_REALTIME read together at start */
	uint64_t interval_ns;		/* snapshot interval */
	uint64_t threshold_ns;		/* stall / starvation threshold the agent used */
	char probes[16];		/* Node probe tier asked for, or "" (default) */
	char command[512];		/* the command line that recorded it */
};

/* ---------------------------------------------------------------- writer */

struct ls_rec_writer;

/* Create (or truncate, as tcpdump -w does) path and write the header. 0, or -errno
 * with a one-line message in err. */
int ls_rec_create(const char *path, const struct ls_rec_info *info, struct ls_rec_writer **out, char *err,
		  size_t errlen);
/* Append a record to the pending block; writes the block when it is full. 0 or -errno
 * (the block could not be written: err says why; the file keeps its complete blocks). */
int ls_rec_put(struct ls_rec_writer *w, uint16_t type, uint64_t t_ns, const void *val, size_t len, char *err,
	       size_t errlen);
int ls_rec_put_snapshot(struct ls_rec_writer *w, const struct ls_snapshot *s, char *err, size_t errlen);
int ls_rec_put_episode(struct ls_rec_writer *w, const struct ls_episode *ep, uint64_t t_ns, char *err,
		       size_t errlen);
/* Write the pending block if it is older than LS_REC_FLUSH_NS at now_ns (force: any
 * pending records). 0 or -errno as ls_rec_put(). */
int ls_rec_flush(struct ls_rec_writer *w, uint64_t now_ns, int force, char *err, size_t errlen);
uint64_t ls_rec_bytes(const struct ls_rec_writer *w);	/* bytes on disk */
uint64_t ls_rec_pending_since(const struct ls_rec_writer *w);	/* time of the oldest unwritten record, or 0 */
/* Write an end record with reason, flush and close. 0 or -errno; frees w either way. */
int ls_rec_close(struct ls_rec_writer *w, const char *reason, char *err, size_t errlen);
/* Close without writing anything more (after a write error). */
void ls_rec_abandon(struct ls_rec_writer *w);

/* ---------------------------------------------------------------- reader */

struct ls_rec_reader;

/* Open a recording (a file, or bytes in memory that must outlive the reader) and
 * read its header. 0, or -errno with a one-line message in err: not a recording
 * (-EINVAL), a newer format (-EPROTONOSUPPORT), a damaged header (-EBADMSG). */
int ls_rec_open(const char *path, struct ls_rec_reader **out, char *err, size_t errlen);
int ls_rec_open_mem(const void *data, size_t len, const char *name, struct ls_rec_reader **out, char *err,
		    size_t errlen);
const struct ls_rec_info *ls_rec_info(const struct ls_rec_reader *r);

/* The next record: 1 with its type, time and value (valid until the next call), 0 at
 * the end of the file, or a negative errno with a one-line message (what and where:
 * byte offset and block number) in ls_rec_error():
 *   -EPIPE    the file stops inside a block (the recorder was killed or the disk filled);
 *   -EBADMSG  a damaged block (bad magic, CRC mismatch, a stream that does not inflate);
 *   -ENOMEM   out of memory; other -errno: reading failed.
 * After an error every call returns the same error. */
int ls_rec_next(struct ls_rec_reader *r, uint16_t *type, uint64_t *t_ns, const char **val, size_t *len);
const char *ls_rec_error(const struct ls_rec_reader *r);
uint32_t ls_rec_blocks_read(const struct ls_rec_reader *r);
int ls_rec_ended_cleanly(const struct ls_rec_reader *r);	/* an end record was seen */
void ls_rec_close_reader(struct ls_rec_reader *r);

#endif /* LS_RECFILE_H */
