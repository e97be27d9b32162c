/* profile_out.h: what `loopscope profile` writes: folded stacks, a self-contained SVG
 * flame graph and pprof, from an array of sampled stacks (core/stacks.h).
 *
 * Pure writers: they render into an ls_buf (wire/http.h) and touch nothing else, so
 * the unit tests feed them synthetic stacks. Every name is cleaned on the way out:
 * invalid UTF-8 becomes U+FFFD, control characters '?', and each format escapes what
 * it cannot carry (';' in folded stacks, markup in the SVG). See profile_out.md.
 */
#ifndef LS_PROFILE_OUT_H
#define LS_PROFILE_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "http.h"
#include "stacks.h"

enum ls_profile_format {
	LS_PROFILE_FOLDED,	/* .folded: "root;...;leaf count" lines (flamegraph.pl, speedscope) */
	LS_PROFILE_SVG,		/* .svg: flame graph, inline script only */
	LS_PROFILE_PPROF,	/* .pb.gz: gzipped perftools.profiles.Profile */
};

/* What the profile is of; every field may be 0/NULL when unknown. */
struct ls_profile_meta {
	uint64_t period_ns;	/* time between two samples of the sampled thread */
	uint64_t start_ns;	/* CLOCK_REALTIME at the start, ns since the epoch */
	uint64_t duration_ns;
	int pid;
	const char *comm;
};

extern const struct ls_profile_meta ls_profile_meta_none;	/* all unknown */

/* The format an output file name asks for by its extension (.folded, .svg, .pb.gz),
 * or -EINVAL. */
int ls_profile_format_of(const char *path);
const char *ls_profile_format_exts(void);	/* ".folded, .svg or .pb.gz", for messages */

/* Render n samples (count 0 ones are ignored) in fmt, appended to out; meta may be NULL.
 * 0, -EINVAL for an unknown fmt, -ENOMEM. Output depends on nothing but the arguments. */
int ls_profile_render(int fmt, const struct ls_stack_sample *s, size_t n,
		      const struct ls_profile_meta *meta, struct ls_buf *out);
int ls_profile_svg(const struct ls_stack_sample *s, size_t n, const struct ls_profile_meta *meta,
		   struct ls_buf *out);
int ls_profile_pprof(const struct ls_stack_sample *s, size_t n, const struct ls_profile_meta *meta,
		     struct ls_buf *out);

/* Render and write to f, then flush. 0 or -errno. */
int ls_profile_write(FILE *f, int fmt, const struct ls_stack_sample *s, size_t n,
		     const struct ls_profile_meta *meta);

/* An output file that is checked before anything is attached and appears complete or
 * not at all: open() refuses an unknown extension and creates a temporary file beside
 * the target (so an unwritable place fails at once), commit() writes and renames it
 * into place, abort() removes it. Zero-initialise. */
struct ls_profile_file {
	int fmt;	/* public, read-only: enum ls_profile_format */
	char *path;	/* private */
	char *tmp;	/* private */
	FILE *f;	/* private */
};
/* 0 or -errno, with a one-line message in err ("what is true; what to do"). */
int ls_profile_file_open(struct ls_profile_file *pf, const char *path, char *err, size_t errlen);
int ls_profile_file_commit(struct ls_profile_file *pf, const struct ls_stack_sample *s, size_t n,
			   const struct ls_profile_meta *meta, char *err, size_t errlen);
void ls_profile_file_abort(struct ls_profile_file *pf);	/* safe after commit and twice */

/* ---------------------------------------------------------------- between the writers */

enum { __LS_CLEAN_TEXT, __LS_CLEAN_FOLDED };

/* Append s, cleaned: valid UTF-8 only (U+FFFD for each bad byte), control characters
 * and U+FFFE/U+FFFF as '?', and in FOLDED mode ';' as ':'. NULL appends nothing. */
void __ls_prof_clean(struct ls_buf *b, const char *s, int mode);
/* A frame's one-line name: "function file:line" for JS (what is known of it),
 * "function" otherwise; "[unknown]" when the function is unnamed. Cleaned. */
void __ls_prof_label(struct ls_buf *b, const struct ls_frame *f, int mode);
uint64_t __ls_sat_add(uint64_t a, uint64_t b);
uint32_t __ls_prof_hash(const void *p, size_t len);	/* FNV-1a */
/* Make the array at *arr (of *cap elements of size bytes) hold at least n, doubling;
 * new elements are zeroed. 0 or -ENOMEM (the array is left as it was). */
int __ls_prof_grow(void *arr, size_t *cap, size_t n, size_t size);

/* A set of byte strings, each given a dense id (0, 1, ...) in insertion order. */
struct __ls_intern {
	struct ls_buf keys;	/* the keys, back to back */
	size_t *off;		/* key id starts at keys.p + off[id], ends at off[id + 1] */
	size_t n, cap_ids;
	uint32_t *slots;	/* open addressing: id + 1, 0 = empty */
	size_t nslots;
};
/* The id of key, added if new (*added = 1). -ENOMEM on allocation failure. */
long __ls_intern(struct __ls_intern *t, const void *key, size_t len, int *added);
const char *__ls_intern_key(const struct __ls_intern *t, size_t id, size_t *len);
void __ls_intern_free(struct __ls_intern *t);

#endif /* LS_PROFILE_OUT_H */
