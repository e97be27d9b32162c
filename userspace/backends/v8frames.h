/* v8frames.h: JS frames of a running Node.js, named from outside.
 *
 * V8's own objects are read from the target's memory (process_vm_readv) with the
 * layout its binary publishes in the v8dbg_* post-mortem symbols (.symtab; local
 * symbols from Node 24.11 on). Every object is checked (tag, map, instance type)
 * before use; a check that fails leaves the frame unknown, never misnamed.
 * stacks.md says what is read and how each field is validated.
 */
#ifndef LS_V8FRAMES_H
#define LS_V8FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ls_elf;
struct ls_v8;

struct ls_v8_frame {
	const char *function;	/* "validateCoupon", "(anonymous)", "[JS unknown 0x...]" */
	const char *file;	/* script name or URL, NULL for V8's builtins */
	uint32_t line, column;	/* where it runs, else the function's start; 1-based, 0: unknown */
	int builtin;		/* a V8 builtin function (no script) */
};

/* Read the layout from the node binary e (mapped in pid with load bias bias).
 * 0, or -errno with why saying, in one phrase, why JS frames are unavailable. */
int ls_v8_open(pid_t pid, struct ls_elf *e, uint64_t bias, struct ls_v8 **out, char *why, size_t whylen);
void ls_v8_close(struct ls_v8 *v);
/* pc is a return address (the frame runs the call just before it) */
#define LS_V8_PC_RETURN 1u
/* pc is in V8's builtins: an interpreter's frame runs there */
#define LS_V8_PC_BUILTIN 2u

/* The frame whose fp-48..fp+16 words are slot[0..7] (bpf/stack_raw.h,
 * ls_raw_frame), running at pc: 0 when the slots do not hold a JS function's
 * frame; else the number of frames put in out[0..max-1], innermost first. That is
 * more than one where optimised code runs a function inlined into the frame's own
 * (each named, at its line); a frame whose objects fail a check is one
 * "[JS unknown 0x...]". Strings live as long as v. */
int ls_v8_frames(struct ls_v8 *v, const uint64_t slot[8], uint64_t pc, unsigned flags, struct ls_v8_frame *out,
		 int max);
/* "[V8 IrregexpFrame]" when the slots are those of one of V8's typed frames (a
 * frame-type marker where a JS frame keeps its context), else NULL. */
const char *ls_v8_typed_frame(struct ls_v8 *v, const uint64_t slot[8]);

#endif /* LS_V8FRAMES_H */
