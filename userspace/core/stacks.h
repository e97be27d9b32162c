/* stacks.h: sampled call stacks of a loop thread, as the symbolizer names them and
 * every profile writer and front end reads them. */
#ifndef LS_STACKS_H
#define LS_STACKS_H

#include <stdint.h>

enum ls_frame_kind { LS_FRAME_JS, LS_FRAME_NATIVE, LS_FRAME_KERNEL };

/* One named frame. file/module NULL and line/column 0 where unknown. */
struct ls_frame {
	enum ls_frame_kind kind;
	const char *function;
	const char *file;
	uint32_t line, column;
	const char *module;
};

/* One distinct stack and how many samples saw it. */
struct ls_stack_sample {
	const struct ls_frame *frames;
	uint32_t nframes;	/* frames[0] is the leaf */
	uint64_t count;
};

#endif /* LS_STACKS_H */
