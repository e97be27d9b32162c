/* snapjson_fuzz.c: libFuzzer harness for the /events JSON reader (wire/snapjson.c),
 * what `top --connect` runs on bytes from the network. A line that decodes must encode
 * and decode again (the writer and the reader agree on everything the reader accepts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "snapjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1);
	struct ls_snapshot s, s2;
	struct ls_episode ep, ep2;
	struct ls_buf b = { 0 };
	int type;

	if (!line)
		return 0;
	memcpy(line, data, size);
	type = ls_json_type(line, size);
	if (ls_snapshot_from_json(line, size, &s) == 0) {
		ls_snapshot_json_append(&s, &b);
		if (!b.oom && ls_snapshot_from_json(b.p, b.len, &s2) == 0)
			ls_snapjson_free(&s2);
		else if (!b.oom)
			abort();	/* what we wrote, we cannot read */
		ls_snapjson_free(&s);
	}
	ls_buf_reset(&b);
	if (ls_episode_from_json(line, size, &ep) == 0) {
		ls_episode_json_append(&ep, &b);
		if (!b.oom && ls_episode_from_json(b.p, b.len, &ep2) != 0)
			abort();
	}
	(void)type;
	ls_buf_free(&b);
	free(line);
	return 0;
}
