/* v8pos.c: V8's source position tables, decoded (v8pos.h). */
#include <string.h>

#include "v8pos.h"

#define INLINING_RECORD 16	/* sizeof(InliningPosition): SourcePosition, int32, padding */

void ls_v8_pos_unpack(uint64_t raw, struct ls_v8_pos *p)
{
	/* bit 0: external; bits 1-30: script offset + 1; bits 31-46: inlining id + 1 */
	if (raw & 1) {
		p->script_offset = -1;
		p->inlining_id = -1;
		return;
	}
	p->script_offset = (int32_t)((raw >> 1) & ((1u << 30) - 1)) - 1;
	p->inlining_id = (int32_t)((raw >> 31) & 0xffff) - 1;
}

/* The VLQ value back from its zig-zag form. */
static uint64_t zigzag_undo(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* One VLQ number (7 bits a byte, low first, bit 7 says more follow), zig-zag
 * decoded after dropping `drop` low bits. */
static int vlq(const uint8_t *tab, size_t len, size_t *i, unsigned drop, int64_t *out)
{
	uint64_t u = 0;
	unsigned shift = 0;
	uint8_t c;

	do {
		if (*i >= len || shift > 63)
			return -1;
		c = tab[(*i)++];
		u |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	} while (c & 0x80);
	u >>= drop;
	*out = (int64_t)((u >> 1) ^ (0 - (u & 1)));
	return 0;
}

/* Walk the table: the raw position at code offset off, checking that every
 * entry's code offset is below limit. *flagbit_ok (when not NULL) is cleared when
 * some entry's code field, read whole, has bit 1 clear: V8 14 writes its delta as
 * (zigzag(-delta - 1) << 1) | is_statement, and zigzag(-delta - 1) is odd. */
static int walk(const uint8_t *tab, size_t len, unsigned flagbit, uint32_t off, uint32_t limit, uint64_t *raw,
		int *flagbit_ok)
{
	int64_t code = -1, pos = 0, d, p, whole;	/* -1: V8's entry for the function's entry */
	size_t i = 0, at;
	int found = 0;

	/* entries are deltas: code offset (its sign, or from V8 14 a low bit, says
	 * whether the position starts a statement), then source position */
	while (i < len) {
		at = i;
		if (flagbit_ok && !vlq(tab, len, &at, 0, &whole) && !(zigzag_undo(whole) & 2))
			*flagbit_ok = 0;
		if (vlq(tab, len, &i, flagbit, &d) || vlq(tab, len, &i, 0, &p))
			return -1;
		if (d < 0)
			d = -(d + 1);	/* no overflow, even for INT64_MIN */
		if (d >= (int64_t)limit - code)
			return -1;	/* past the code: not a table of this code */
		code += d;
		pos = (int64_t)((uint64_t)pos + (uint64_t)p);
		if (code <= (int64_t)off) {
			*raw = (uint64_t)pos;
			found = 1;
		}
	}
	return found ? 0 : -1;
}

int ls_v8_pos_find(const uint8_t *tab, size_t len, enum ls_v8_pos_format fmt, uint32_t off, uint32_t limit,
		   uint64_t *raw)
{
	uint64_t r = 0;
	int flagbit_ok = 1;

	if (off >= limit)
		return -1;
	if (fmt == LS_V8_POS_SIGN)
		return walk(tab, len, 0, off, limit, raw, NULL);
	/* a V8 14 that still writes the sign form has code fields with bit 1 clear */
	if (walk(tab, len, 1, off, limit, &r, &flagbit_ok) && flagbit_ok)
		return -1;
	if (flagbit_ok) {
		*raw = r;
		return 0;
	}
	return walk(tab, len, 0, off, limit, raw, NULL);
}

int ls_v8_inlining(const uint8_t *arr, size_t len, int32_t id, uint64_t *call_site, int32_t *function)
{
	if (id < 0 || (size_t)id >= len / INLINING_RECORD)
		return -1;
	memcpy(call_site, arr + (size_t)id * INLINING_RECORD, 8);
	memcpy(function, arr + (size_t)id * INLINING_RECORD + 8, 4);
	return 0;
}
