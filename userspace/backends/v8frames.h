/* v8frames.h: JS frames of a running Node.js, named from outside.
 *
 * V8's own objects are read from the target's memory (process_vm_readv) with the
 * layout its binary publishes in the v8dbg_* post-mortem symbols (.symtab; local
 * symbols from Node 24.11 on). Every object is checked (tag, map, instance type)
 * before use; a check that fails leaves the frame unknown, never misnamed.
 * v8frames.md says what is read and how each field is validated.
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
	uint32_t line, column;	/* the function's start, 1-based; 0 when unknown */
	int builtin;		/* a V8 builtin function (no script) */
};

/* Read the layout from the node binary e (mapped in pid with load bias bias).
 * 0, or -errno with why saying, in one phrase, why JS frames are unavailable. */
int ls_v8_open(pid_t pid, struct ls_elf *e, uint64_t bias, struct ls_v8 **out, char *why, size_t whylen);
void ls_v8_close(struct ls_v8 *v);
/* The frame whose fp-48..fp+16 words are slot[0..7] (bpf/nodeuv.h, ls_raw_frame):
 * 1 and *out when the slots hold a JS function's frame (named, or
 * "[JS unknown 0x...]" when its objects fail a check), 0 when they do not. Strings
 * live as long as v. */
int ls_v8_frame(struct ls_v8 *v, const uint64_t slot[8], struct ls_v8_frame *out);
/* "[V8 IrregexpFrame]" when the slots are those of one of V8's typed frames (a
 * frame-type marker where a JS frame keeps its context), else NULL. */
const char *ls_v8_typed_frame(struct ls_v8 *v, const uint64_t slot[8]);

#endif /* LS_V8FRAMES_H */
