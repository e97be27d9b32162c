/* record_fuzz.c: libFuzzer over the recording reader (userspace/record/): the header,
 * block framing, CRCs, inflate, record framing and the snapjson values inside, through
 * the replay ls_source both unpaced (stat, report) and paced with step and next-episode
 * (top). Whatever the bytes, it must end in a clean error, never a crash or a leak.
 *
 * Built by `make test` as build/fuzz/record_fuzz (clang-14, ASan + UBSan + libFuzzer);
 * tests/integration/64-record-fuzz.sh runs it for a bounded time on seeds the unit
 * test writes; `make fuzz FUZZ_TIME=600` runs it longer. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "replay.h"

static void drain(struct ls_source *src, int paced)
{
	for (int i = 0; i < 100000; i++) {
		struct ls_snapshot s = { 0 };
		int rc = paced ? (i % 2 ? ls_replay_step(src, 0) : ls_replay_next_episode(src, 0)) : ls_source_poll(src, 0);

		if (ls_source_snapshot(src, &s) == 0)
			ls_snapshot_free(&s);
		if (rc < 0) {
			/* An error always comes with its one line. */
			if (rc != -ENODATA && !ls_replay_error(src)[0])
				__builtin_trap();
			return;
		}
	}
}

static void on_episode(const struct ls_episode *ep, void *arg)
{
	(*(uint64_t *)arg) += ep->end_ns - ep->start_ns;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int paced = 0; paced < 2; paced++) {
		struct ls_source *src = NULL;
		uint64_t sum = 0;
		char err[512];

		if (ls_replay_open_mem(data, size, "fuzz", paced, &src, err, sizeof(err))) {
			if (!err[0] || memchr(err, '\n', strlen(err)))
				__builtin_trap();	/* one line, always */
			continue;
		}
		src->on_episode = on_episode;
		src->episode_arg = &sum;
		drain(src, paced);
		ls_source_destroy(src);
	}
	return 0;
}
