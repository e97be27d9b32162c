/* v8pos.h: V8's source position tables and inlining positions, decoded from bytes.
 *
 * The bytes come from the target's memory (a BytecodeArray's or a Code object's
 * source position table, a DeoptimizationData's InliningPositions), so every
 * function here takes a length and fails on anything malformed rather than reading
 * past it. stacks.md says where the bytes come from and how they are checked.
 */
#ifndef LS_V8POS_H
#define LS_V8POS_H

#include <stddef.h>
#include <stdint.h>

/* A SourcePosition (V8's 64-bit encoding) unpacked. */
struct ls_v8_pos {
	int32_t script_offset;	/* character offset in the script, -1: none */
	int32_t inlining_id;	/* index in the code's InliningPositions, -1: not inlined */
};

/* Unpack raw; an external position (a line of WebAssembly) gives script_offset -1. */
void ls_v8_pos_unpack(uint64_t raw, struct ls_v8_pos *p);

/* How a table encodes an entry's code offset delta: its sign says whether the entry
 * starts a statement (V8 10-13), or (V8 14) that flag is a low bit of its own. */
enum ls_v8_pos_format { LS_V8_POS_SIGN, LS_V8_POS_FLAGBIT };

/* The position recorded for code offset off in a source position table of code
 * (bytecode or instructions) limit bytes long: that of the last entry whose code
 * offset is <= off. 0 and *raw; -1 when no entry is at or before off, or the table
 * is malformed (a truncated number, an entry past limit). fmt LS_V8_POS_FLAGBIT is
 * a guess (a V8 14 release may still write the sign form, whose code fields do
 * not all have bit 1 set, and is then read so); LS_V8_POS_SIGN is not. */
int ls_v8_pos_find(const uint8_t *tab, size_t len, enum ls_v8_pos_format fmt, uint32_t off, uint32_t limit,
		   uint64_t *raw);

/* Record id of an InliningPositions array (16 bytes each: the call site's
 * SourcePosition, then the inlined function's index in the literal array). 0, or
 * -1 when id is outside the array. */
int ls_v8_inlining(const uint8_t *arr, size_t len, int32_t id, uint64_t *call_site, int32_t *function);

#endif /* LS_V8POS_H */
