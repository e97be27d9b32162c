/* stacks.h: symbolized stacks, the one shape every stack consumer reads.
 *
 * The stall sampler's raw addresses become frames in backends/ (native
 * symbols, V8's JS frames); episodes, `loopscope profile` and its writers
 * (folded, SVG, pprof) only ever see these types.
 *
 * Ownership: every string a frame points to belongs to the stack table that
 * produced it and lives as long as that table; a writer copies nothing and frees
 * nothing. Unknown fields are NULL (strings) or 0 (line, column).
 */
#ifndef LS_STACKS_H
#define LS_STACKS_H

#include <stdint.h>

enum ls_frame_kind {
	LS_FRAME_JS,		/* a V8 frame: interpreted, baseline, optimised, builtin */
	LS_FRAME_NATIVE,	/* machine code of a mapped object (node, libc, ...) */
	LS_FRAME_KERNEL,	/* kernel stack of the sampled thread */
};

struct ls_frame {
	enum ls_frame_kind kind;
	const char *function;	/* never NULL: "[JS unknown 0x...]" when nothing better is true */
	const char *file;	/* JS: script name or URL; native: source file from DWARF */
	uint32_t line, column;	/* 1-based; 0 when unknown */
	const char *module;	/* native/kernel: object's path ("[kernel]"); JS: NULL */
};

/* One distinct stack and how many samples had it. frames[0] is the leaf. */
struct ls_stack_sample {
	const struct ls_frame *frames;
	uint32_t nframes;
	uint64_t count;
};

/* A set of stacks from one thread over one span (a profile or an episode). */
struct ls_stack_set {
	const struct ls_stack_sample *stacks;
	uint32_t nstacks;
	uint64_t total;			/* sum of counts */
	uint64_t period_ns;		/* sampling period, 0 when it varied */
	uint64_t duration_ns;		/* span the samples cover */
};

const char *ls_frame_kind_name(enum ls_frame_kind kind);	/* "js", "native", "kernel" */

#endif /* LS_STACKS_H */
