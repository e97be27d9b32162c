/* maps_fuzz.c: libFuzzer harness for the /proc/PID/maps parser (userspace/lib/proc.c),
 * the text the stack unwinder reads from every target. Every entry it accepts must be
 * a non-empty range with a path it owns, found again by ls_maps_find(). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_maps m;

	if (ls_maps_parse((const char *)data, size, &m))
		return 0;
	for (size_t i = 0; i < m.n; i++) {
		if (m.map[i].start >= m.map[i].end || !m.map[i].path)
			abort();
		(void)strlen(m.map[i].path);
		(void)ls_maps_find(&m, m.map[i].start);
		(void)ls_maps_find(&m, m.map[i].end - 1);
	}
	ls_maps_free(&m);
	return 0;
}
