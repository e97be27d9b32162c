/* v8pos_fuzz.c: libFuzzer harness for V8's source position tables and inlining
 * positions (userspace/backends/v8pos.c): bytes the unwinder copies out of a
 * running node (a BytecodeArray's or a Code object's table, a DeoptimizationData's
 * InliningPositions). Input: 4 bytes code offset, 4 bytes code length, the table.
 * A position found must unpack to an offset and inlining id in their fields' ranges. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "v8pos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t off, limit;
	uint64_t raw, site;
	int32_t fn;
	struct ls_v8_pos p;

	if (size < 8)
		return 0;
	memcpy(&off, data, 4);
	memcpy(&limit, data + 4, 4);
	for (int fmt = LS_V8_POS_SIGN; fmt <= LS_V8_POS_FLAGBIT; fmt++) {
		if (ls_v8_pos_find(data + 8, size - 8, (enum ls_v8_pos_format)fmt, off, limit, &raw))
			continue;
		if (off >= limit)
			abort();	/* an offset past the code has no position */
		ls_v8_pos_unpack(raw, &p);
		if (p.script_offset < -1 || p.script_offset >= (1 << 30) - 1 || p.inlining_id < -1 ||
		    p.inlining_id > 0xfffe)
			abort();
		if (!ls_v8_inlining(data + 8, size - 8, p.inlining_id, &site, &fn) &&
		    (size_t)p.inlining_id >= (size - 8) / 16)
			abort();	/* a record past the array */
	}
	return 0;
}
