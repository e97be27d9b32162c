/* recstacks.h: an episode's stacks (core/stacks.h) as a recording's LS_REC_STACKS
 * record, and back. The record is one JSON object:
 *
 *   {"type":"stacks","v":1,"pid":P,"tid":T,"start_ns":"N","samples":S,"total":"N",
 *    "stacks":[{"count":"N","frames":[{"kind":"js","function":"f","file":"a.js",
 *               "line":3,"column":7,"module":null},...]},...]}
 *
 * frames[0] is the leaf, stacks most frequent first (as the agent hands them over).
 * The recorder writes it just before the end record of the episode it belongs to,
 * which (pid, tid, start_ns) names: an episode's kind may change at its end (a stall
 * that was a drain is a starvation), its start does not.
 */
#ifndef LS_RECSTACKS_H
#define LS_RECSTACKS_H

#include <stddef.h>
#include <stdint.h>

#include "recfile.h"
#include "snapshot.h"
#include "stacktab.h"

#define LS_REC_MAX_STACKS 64	/* stacks a reader keeps of one episode */
#define LS_REC_MAX_FRAMES 512	/* frames of one stack */

/* Append ep's stacks record to w (nothing when ep has none). 0 or -errno as ls_rec_put(). */
int ls_rec_put_stacks(struct ls_rec_writer *w, const struct ls_episode *ep, uint64_t t_ns, char *err,
		      size_t errlen);

/* A stacks record read back: the set belongs to the table given. */
struct ls_rec_stacks {
	int32_t pid;
	uint32_t tid;
	uint64_t start_ns;
	uint32_t samples;
	const struct ls_stack_set *set;
};
/* Parse one; 0, -EINVAL (not a stacks record of version 1, a bad field) or -ENOMEM. */
int ls_rec_stacks_parse(const char *val, size_t len, struct ls_stacktab *tab, struct ls_rec_stacks *out);

#endif /* LS_RECSTACKS_H */
