/* replay.h: a recording (recfile.h) as an ls_source, so stat, top and report read a
 * file exactly as they read the live agent.
 *
 * Two ways to play:
 * - unpaced (stat, report): each poll() delivers the episodes recorded before the next
 *   snapshot, then makes that snapshot the latest, as fast as the file reads;
 * - paced (top): a playback clock runs over the recording's CLOCK_MONOTONIC at a speed
 *   (1x..60x) and may be paused; poll() delivers every record whose time has come.
 *   step and next_episode move the clock forward to a record, delivering what lies
 *   before it, so the front end sees every episode even when it skips ahead.
 * ls_source_now() is the playback position in both. poll() returns -ENODATA at the end
 * of the recording, and a damaged or cut file's error (recfile.h) once the good part
 * has been delivered; ls_replay_error() then says what and where in one line.
 */
#ifndef LS_REPLAY_H
#define LS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "recfile.h"
#include "snapshot.h"

#define LS_REPLAY_MAX_SPEED 60.0

int ls_replay_open(const char *path, int paced, struct ls_source **out, char *err, size_t errlen);
/* The same over bytes in memory (tests, the fuzzer); data must outlive the source. */
int ls_replay_open_mem(const void *data, size_t len, const char *name, int paced, struct ls_source **out,
		       char *err, size_t errlen);

int ls_is_replay(const struct ls_source *src);
const struct ls_rec_info *ls_replay_info(const struct ls_source *src);
const char *ls_replay_error(const struct ls_source *src);	/* "" when none */
int ls_replay_ended_cleanly(const struct ls_source *src);	/* the recorder wrote its end mark */
uint64_t ls_replay_first_ns(const struct ls_source *src);	/* time of the first record */

/* Paced playback controls; local_now is the caller's CLOCK_MONOTONIC. */
void ls_replay_set_paused(struct ls_source *src, int paused, uint64_t local_now);
int ls_replay_paused(const struct ls_source *src);
void ls_replay_set_speed(struct ls_source *src, double speed, uint64_t local_now);	/* clamped to 1..60 */
double ls_replay_speed(const struct ls_source *src);
/* Paced: deliver the records that are due at local_now, stopping after a snapshot (so
 * a front end can take every one). 1 a snapshot was delivered, 0 nothing more is due
 * yet, -ENODATA at the end, or the reader's error. */
int ls_replay_advance(struct ls_source *src, uint64_t local_now);
/* Deliver through the next snapshot / the next episode not seen before, and move the
 * clock there. 0, -ENODATA at the end, or the reader's error. */
int ls_replay_step(struct ls_source *src, uint64_t local_now);
int ls_replay_next_episode(struct ls_source *src, uint64_t local_now);

#endif /* LS_REPLAY_H */
