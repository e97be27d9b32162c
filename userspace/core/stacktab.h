/* stacktab.h: the owner of symbolized stacks (stacks.h) and their aggregation.
 *
 * A table interns every string and keeps every stack set it built until it is
 * freed, so frames handed out (in episodes, to profile's writers) stay valid for
 * the agent's life. An aggregator counts identical stacks of one span and turns
 * them into an ls_stack_set, most frequent first.
 */
#ifndef LS_STACKTAB_H
#define LS_STACKTAB_H

#include <stddef.h>
#include <stdint.h>

#include "stacks.h"

struct ls_stacktab;
struct ls_stack_agg;

struct ls_stacktab *ls_stacktab_new(void);
void ls_stacktab_free(struct ls_stacktab *t);
/* The agent's table, made on first use (NULL on ENOMEM): what episodes point into. */
struct ls_stacktab *ls_stacks_table(void);
/* The table's copy of s (NULL for NULL; NULL also on ENOMEM). */
const char *ls_stacktab_str(struct ls_stacktab *t, const char *s);

struct ls_stack_agg *ls_stack_agg_new(void);
void ls_stack_agg_free(struct ls_stack_agg *a);
/* Count one sample (frames[0] the leaf); its strings must already belong to a
 * table. Stacks that differ only in a frame's column count as one (the column is
 * that of the first). 0 or -ENOMEM. */
int ls_stack_agg_add(struct ls_stack_agg *a, const struct ls_frame *frames, uint32_t n, uint64_t count);
uint64_t ls_stack_agg_total(const struct ls_stack_agg *a);
/* The stacks counted so far as a set owned by t, most frequent first, at most
 * max stacks (the rest dropped from stacks[], still counted in total). NULL on
 * ENOMEM or when nothing was counted. */
const struct ls_stack_set *ls_stack_agg_finish(struct ls_stack_agg *a, struct ls_stacktab *t, uint32_t max);

/* Where group() cuts a stack (frames[0] the leaf): the index of the frame that
 * names its group, or -1 when it belongs to none. */
typedef int32_t (*ls_stack_group_fn)(const struct ls_frame *frames, uint32_t n);
/* As ls_stack_agg_finish, but stacks that group() cuts at the same frame with the
 * same callers (the cut frame compared without its line) count as one stack: the
 * frames all of them share from the root, so at least down to the cut frame, with
 * the lines of the group's most frequent stack, and on leafward while 9/10 of its
 * samples agree on the function. Grouped stacks come first, most frequent first, then the others.
 * A starvation episode's samples run many short callbacks, each with its own
 * leaves, among the drain's own work (a promise job, a GC it set off): grouped at
 * the callback, they say which callback the drain kept running. */
const struct ls_stack_set *ls_stack_agg_finish_grouped(struct ls_stack_agg *a, struct ls_stacktab *t,
						       uint32_t max, ls_stack_group_fn group);

/* The samples of one span of one loop thread (a phase run or a not-polling span that
 * may become an episode), keyed by (tid, start). A backend's slot struct begins with
 * one, followed by what else it keeps per span. */
struct ls_stack_span {
	uint32_t tid;
	uint64_t start;			/* the span's start: its episode's start_ns */
	struct ls_stack_agg *agg;	/* NULL: the slot is free */
};
/* The span (tid, start) among n slots stride bytes apart (each beginning with a
 * struct ls_stack_span); create: make it in a free slot, or in the oldest span's
 * (dropping its samples), zeroed whole. NULL when absent (or on ENOMEM). */
struct ls_stack_span *ls_stack_span_get(void *slots, size_t n, size_t stride, uint32_t tid, uint64_t start,
					int create);
/* Free the span's samples and zero its whole slot (size bytes). */
void ls_stack_span_drop(struct ls_stack_span *s, size_t size);

/* The first JS frame of a stack (its leaf-most), or NULL. */
const struct ls_frame *ls_stack_top_js(const struct ls_stack_sample *s);

/* The first max_stacks stacks of set as text, one frame a line, leaf first:
 * "  88%  pbkdf2Sync  node:internal/crypto/pbkdf2:68" for a stack's first frame,
 * indented frames after it, "[native] fn  (node)" for native ones; long native runs
 * between JS frames are shown as a count. Returns the lines written (<= max_lines). */
#define LS_STACK_LINE 320
size_t ls_stack_text(const struct ls_stack_set *set, uint32_t max_stacks, uint32_t max_lines_per_stack,
		     char (*lines)[LS_STACK_LINE], size_t max_lines);

#endif /* LS_STACKTAB_H */
