/* recfile_test.c: the recording format (userspace/record/recfile.c) and the replay
 * source (replay.c): round trips, every cut length, damage, future versions, hostile
 * sizes, unknown record types. No root: recordings are made from synthetic snapshots.
 * With LS_FUZZ_SEEDS=DIR it leaves its recordings there as the fuzzer's seeds. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "histogram.h"
#include "recfile.h"
#include "replay.h"
#include "snapjson.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (5000 * S)

static char dir[] = "/tmp/recfile_test.XXXXXX";

static const char *tmp(const char *name)
{
	static char path[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
	return path[k];
}

/* One reference target, one loop; snapshot i has i * 1000 iterations and delays. */
static void make_snapshot(struct ls_snapshot *s, int i)
{
	struct ls_target_snapshot *t = calloc(1, sizeof(*t));
	struct ls_loop_snapshot *l = calloc(1, sizeof(*l));

	assert_non_null(t);
	assert_non_null(l);
	memset(s, 0, sizeof(*s));
	s->mono_ns = T0 + (uint64_t)i * S;
	s->wall_ns = 1700000000ull * S + (uint64_t)i * S;
	s->ntargets = 1;
	s->targets = t;
	t->pid = 4242;
	snprintf(t->comm, sizeof(t->comm), "demo");
	snprintf(t->exe, sizeof(t->exe), "/usr/bin/demo <&>");
	snprintf(t->tier, sizeof(t->tier), "usdt");
	t->runtime = LS_RT_REFERENCE;
	t->attached_ns = T0;
	t->nloops = 1;
	t->loops = l;
	l->tid = 4242;
	snprintf(l->name, sizeof(l->name), "demo");
	l->has = LS_HAS_PHASES | LS_HAS_DELAY | LS_HAS_DRAINS | LS_HAS_EPISODES;
	l->iterations = (uint64_t)i * 1000;
	l->busy_ns = (uint64_t)i * 250 * MS;
	l->idle_ns = (uint64_t)i * 750 * MS;
	l->live_phase = LS_PHASE_NONE;
	for (int k = 0; k < i * 1000; k++) {
		ls_hist_add(&l->delay, 50000 + (uint64_t)(k % 7) * 1000);
		ls_hist_add(&l->phase[LS_PHASE_POLL], 700000);
	}
	if (i >= 3) {
		ls_hist_add(&l->phase[LS_PHASE_TIMERS], 150 * MS);
		l->stall_episodes = 1;
	}
}

static struct ls_episode stall(int end)
{
	return (struct ls_episode){ .pid = 4242, .tid = 4242, .kind = LS_EP_STALL, .phase = LS_PHASE_TIMERS,
				    .start_ns = T0 + 2 * S + 500 * MS, .end_ns = end ? T0 + 2 * S + 650 * MS : 0 };
}

/* A recording of nsnap snapshots, a block every per_block records, the stall's start
 * and end between snapshots 2 and 3, and (clean) an end mark. */
static void write_recording(const char *path, int nsnap, int per_block, int clean)
{
	struct ls_rec_info info = { .interval_ns = S, .threshold_ns = 100 * MS, .mono_ns = T0 - 10 * MS,
				    .wall_ns = 1700000000ull * S - 10 * MS };
	struct ls_rec_writer *w;
	char err[512];
	int n = 0;

	snprintf(info.version, sizeof(info.version), "test");
	snprintf(info.host, sizeof(info.host), "host\"with<quotes>");
	snprintf(info.kernel, sizeof(info.kernel), "Linux 6.1 x86_64");
	snprintf(info.command, sizeof(info.command), "loopscope record -p 4242 -o x");
	assert_int_equal(ls_rec_create(path, &info, &w, err, sizeof(err)), 0);
	for (int i = 0; i < nsnap; i++) {
		struct ls_snapshot s;

		make_snapshot(&s, i);
		assert_int_equal(ls_rec_put_snapshot(w, &s, err, sizeof(err)), 0);
		ls_snapshot_free(&s);
		if (i == 2) {
			struct ls_episode a = stall(0), b = stall(1);

			assert_int_equal(ls_rec_put_episode(w, &a, T0 + 2 * S + 600 * MS, err, sizeof(err)), 0);
			assert_int_equal(ls_rec_put_episode(w, &b, T0 + 2 * S + 700 * MS, err, sizeof(err)), 0);
			n += 2;
		}
		if (++n % per_block == 0)
			assert_int_equal(ls_rec_flush(w, 0, 1, err, sizeof(err)), 0);
	}
	if (clean) {
		assert_int_equal(ls_rec_close(w, "test", err, sizeof(err)), 0);
	} else {
		assert_int_equal(ls_rec_flush(w, 0, 1, err, sizeof(err)), 0);
		ls_rec_abandon(w);
	}
}

static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *p;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static void spit(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

/* Offsets of the blocks of a recording (from its header and block lengths). */
static int block_offsets(const unsigned char *p, size_t len, size_t *off, int max)
{
	size_t o = 20 + (p[12] | p[13] << 8 | (size_t)p[14] << 16 | (size_t)p[15] << 24);
	int n = 0;

	while (o + 36 <= len && n < max) {
		off[n++] = o;
		o += 36 + (p[o + 4] | p[o + 5] << 8 | (size_t)p[o + 6] << 16 | (size_t)p[o + 7] << 24);
	}
	return n;
}

struct counts {
	int snapshots, episodes, ends, other;
	uint64_t last_t;
	int rc;
	char err[512];
};

/* Read a recording (file or memory) record by record. */
static struct counts read_all(const void *mem, size_t len, const char *path)
{
	struct counts c = { 0 };
	struct ls_rec_reader *r;
	uint16_t type;
	uint64_t t;
	const char *v;
	size_t l;

	c.rc = mem ? ls_rec_open_mem(mem, len, "mem", &r, c.err, sizeof(c.err)) :
		     ls_rec_open(path, &r, c.err, sizeof(c.err));
	if (c.rc)
		return c;
	while ((c.rc = ls_rec_next(r, &type, &t, &v, &l)) == 1) {
		c.snapshots += type == LS_REC_SNAPSHOT;
		c.episodes += type == LS_REC_EPISODE;
		c.ends += type == LS_REC_END;
		c.other += type > LS_REC_END;
		c.last_t = t;
	}
	snprintf(c.err, sizeof(c.err), "%s", ls_rec_error(r));
	/* An error sticks. */
	if (c.rc)
		assert_int_equal(ls_rec_next(r, &type, &t, &v, &l), c.rc);
	ls_rec_close_reader(r);
	return c;
}

/* ---------------------------------------------------------------- tests */

static void test_round_trip(void **state)
{
	const char *path = tmp("rt.lsr");
	struct ls_rec_reader *r;
	const struct ls_rec_info *in;
	struct counts c;
	char err[512];

	write_recording(path, 6, 3, 1);
	assert_int_equal(ls_rec_open(path, &r, err, sizeof(err)), 0);
	in = ls_rec_info(r);
	assert_int_equal(in->format, LS_REC_FORMAT);
	assert_string_equal(in->host, "host\"with<quotes>");
	assert_string_equal(in->kernel, "Linux 6.1 x86_64");
	assert_string_equal(in->version, "test");
	assert_true(in->mono_ns == T0 - 10 * MS);
	assert_true(in->wall_ns == 1700000000ull * S - 10 * MS);
	assert_true(in->interval_ns == S);
	assert_true(in->threshold_ns == 100 * MS);
	ls_rec_close_reader(r);
	c = read_all(NULL, 0, path);
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.snapshots, 6);
	assert_int_equal(c.episodes, 2);
	assert_int_equal(c.ends, 1);
}

/* The replay source delivers episodes before the snapshot that follows them, the
 * snapshots intact, and -ENODATA at the end. */
static void on_ep(const struct ls_episode *ep, void *arg)
{
	struct ls_episode *log = arg;

	for (int i = 0; i < 8; i++)
		if (!log[i].pid) {
			log[i] = *ep;
			return;
		}
}

static void test_replay_unpaced(void **state)
{
	const char *path = tmp("un.lsr");
	struct ls_episode log[8] = { { 0 } };
	struct ls_source *src;
	char err[512];
	int n = 0, rc;

	write_recording(path, 6, 4, 1);
	assert_int_equal(ls_replay_open(path, 0, &src, err, sizeof(err)), 0);
	assert_true(ls_is_replay(src));
	src->on_episode = on_ep;
	src->episode_arg = log;
	while ((rc = ls_source_poll(src, 0)) == 0) {
		struct ls_snapshot s, want;

		assert_int_equal(ls_source_snapshot(src, &s), 0);
		make_snapshot(&want, n);
		assert_true(s.mono_ns == want.mono_ns);
		assert_int_equal(s.ntargets, 1);
		assert_string_equal(s.targets[0].exe, "/usr/bin/demo <&>");
		assert_memory_equal(&s.targets[0].loops[0].delay, &want.targets[0].loops[0].delay, sizeof(struct ls_hist));
		assert_true(ls_source_now(src) == want.mono_ns);
		/* The stall came between snapshots 2 and 3. */
		assert_int_equal(log[0].pid != 0, n >= 3);
		ls_snapshot_free(&s);
		ls_snapshot_free(&want);
		n++;
	}
	assert_int_equal(rc, -ENODATA);
	assert_int_equal(n, 6);
	assert_int_equal(log[0].end_ns, 0);
	assert_true(log[1].end_ns == T0 + 2 * S + 650 * MS);
	assert_true(ls_replay_ended_cleanly(src));
	assert_string_equal(ls_replay_error(src), "");
	ls_source_destroy(src);
}

/* Paced: step goes snapshot by snapshot, next_episode jumps to the stall, and the
 * clock is the recording's. */
static void test_replay_paced(void **state)
{
	const char *path = tmp("pa.lsr");
	struct ls_episode log[8] = { { 0 } };
	struct ls_source *src;
	struct ls_snapshot s;
	char err[512];

	write_recording(path, 6, 2, 1);
	assert_int_equal(ls_replay_open(path, 1, &src, err, sizeof(err)), 0);
	src->on_episode = on_ep;
	src->episode_arg = log;
	ls_replay_set_paused(src, 1, ls_now_mono_ns());
	assert_int_equal(ls_replay_step(src, ls_now_mono_ns()), 0);
	assert_int_equal(ls_source_snapshot(src, &s), 0);
	assert_true(s.mono_ns == T0);
	ls_snapshot_free(&s);
	/* Paused: time passing delivers nothing. */
	assert_int_equal(ls_replay_advance(src, ls_now_mono_ns() + 100 * S), 0);
	assert_int_equal(ls_replay_next_episode(src, ls_now_mono_ns()), 0);
	assert_int_equal(log[0].kind, LS_EP_STALL);
	assert_int_equal(log[0].end_ns, 0);
	assert_true(ls_source_now(src) == T0 + 2 * S + 600 * MS);
	assert_int_equal(ls_source_snapshot(src, &s), 0);
	assert_true(s.mono_ns == T0 + 2 * S);
	ls_snapshot_free(&s);
	/* Its end is not a new episode: the next jump runs to the end. */
	assert_int_equal(ls_replay_next_episode(src, ls_now_mono_ns()), -ENODATA);
	assert_true(log[1].end_ns != 0);
	ls_replay_set_speed(src, 1000, 0);
	assert_true(ls_replay_speed(src) == LS_REPLAY_MAX_SPEED);
	ls_replay_set_speed(src, 0.1, 0);
	assert_true(ls_replay_speed(src) == 1);
	ls_source_destroy(src);
}

/* Playing: the clock runs at the speed; records come when their time has come. */
static void test_replay_speed(void **state)
{
	const char *path = tmp("sp.lsr");
	struct ls_source *src;
	struct ls_snapshot s;
	uint64_t t;
	char err[512];

	write_recording(path, 6, 6, 1);
	assert_int_equal(ls_replay_open(path, 1, &src, err, sizeof(err)), 0);
	t = ls_now_mono_ns();
	ls_replay_set_speed(src, 10, t);
	assert_int_equal(ls_replay_advance(src, t), 1);	/* the first, due at once */
	assert_int_equal(ls_replay_advance(src, t), 0);
	/* 250 ms of local time at 10x: 2.5 s of recording, snapshots 1 and 2 are due. */
	assert_int_equal(ls_replay_advance(src, t + 250 * MS), 1);
	assert_int_equal(ls_replay_advance(src, t + 250 * MS), 1);
	assert_int_equal(ls_replay_advance(src, t + 250 * MS), 0);
	assert_int_equal(ls_source_snapshot(src, &s), 0);
	assert_true(s.mono_ns == T0 + 2 * S);
	ls_snapshot_free(&s);
	ls_source_destroy(src);
}

/* Every cut length: the reader ends with a clean error (or a clean end on a block
 * boundary), never reads past what is there, and keeps every complete block. */
static void test_every_cut(void **state)
{
	const char *path = tmp("cut.lsr");
	size_t len, off[32];
	unsigned char *p;
	int nb;

	write_recording(path, 5, 2, 0);
	p = slurp(path, &len);
	nb = block_offsets(p, len, off, 32);
	assert_true(nb >= 3);
	for (size_t cut = 0; cut < len; cut++) {
		unsigned char *q = malloc(cut ? cut : 1);	/* exact size: ASan sees any overread */
		struct counts c;
		int whole = 0;

		assert_non_null(q);
		memcpy(q, p, cut);
		c = read_all(q, cut, NULL);
		if (cut >= off[0] && c.rc != 0 && c.rc != -EPIPE)
			fail_msg("cut at %zu: %d (%s)", cut, c.rc, c.err);
		for (int b = 1; b < nb; b++)
			whole += off[b] <= cut;
		if (cut < 20 + 2) {
			assert_true(c.rc < 0);
		} else if (cut >= off[0] && c.rc != 0) {
			/* Cut inside a block: says so, with the block and byte. */
			assert_int_equal(c.rc, -EPIPE);
			assert_non_null(strstr(c.err, "stops inside block"));
			assert_non_null(strstr(c.err, "at byte"));
		}
		if (cut >= off[0] && c.snapshots + c.episodes < 2 * whole)
			fail_msg("cut at %zu: %d records read, %d whole blocks", cut, c.snapshots + c.episodes, whole);
		free(q);
	}
	free(p);
}

static void test_damage(void **state)
{
	const char *path = tmp("dmg.lsr");
	size_t len, off[32];
	unsigned char *p;
	struct counts c;
	char want[64];

	write_recording(path, 6, 2, 1);
	p = slurp(path, &len);
	assert_true(block_offsets(p, len, off, 32) >= 3);
	/* A flipped bit in block 2's data. */
	p[off[1] + 40] ^= 0x10;
	c = read_all(p, len, NULL);
	assert_int_equal(c.rc, -EBADMSG);
	snprintf(want, sizeof(want), "block 2 at byte %zu: CRC mismatch", off[1]);
	assert_non_null(strstr(c.err, want));
	assert_int_equal(c.snapshots, 2);	/* block 1 is intact */
	p[off[1] + 40] ^= 0x10;
	/* A block mark gone. */
	p[off[2]] = 'X';
	c = read_all(p, len, NULL);
	assert_int_equal(c.rc, -EBADMSG);
	assert_non_null(strstr(c.err, "block 3"));
	assert_non_null(strstr(c.err, "no block mark"));
	p[off[2]] = 'L';
	/* Hostile sizes: 4 GiB of compressed data. */
	memset(p + off[0] + 4, 0xff, 4);
	c = read_all(p, len, NULL);
	assert_int_equal(c.rc, -EBADMSG);
	assert_non_null(strstr(c.err, "impossible sizes"));
	free(p);
}

static void test_header_errors(void **state)
{
	const char *path = tmp("hdr.lsr");
	size_t len;
	unsigned char *p;
	struct counts c;

	write_recording(path, 2, 2, 1);
	p = slurp(path, &len);
	p[8] = 2;	/* format 2 */
	c = read_all(p, len, NULL);
	assert_int_equal(c.rc, -EPROTONOSUPPORT);
	assert_non_null(strstr(c.err, "format 2 is newer"));
	p[8] = 1;
	p[25] ^= 1;	/* inside the info */
	c = read_all(p, len, NULL);
	assert_int_equal(c.rc, -EBADMSG);
	assert_non_null(strstr(c.err, "CRC mismatch"));
	c = read_all("{\"type\":\"snapshot\"}\n", 20, NULL);
	assert_int_equal(c.rc, -EINVAL);
	assert_non_null(strstr(c.err, "not a loopscope recording"));
	c = read_all(NULL, 0, tmp("missing.lsr"));
	assert_int_equal(c.rc, -ENOENT);
	assert_non_null(strstr(c.err, "cannot open"));
	free(p);
}

/* Record types a reader does not know (newer writers) are skipped; a value that is not
 * the JSON it claims stops the replay with one line. */
static void test_unknown_and_bad_records(void **state)
{
	const char *path = tmp("unk.lsr");
	struct ls_rec_info info = { .mono_ns = T0 };
	struct ls_rec_writer *w;
	struct ls_source *src;
	struct ls_snapshot s;
	char err[512];
	int n = 0, rc;

	assert_int_equal(ls_rec_create(path, &info, &w, err, sizeof(err)), 0);
	make_snapshot(&s, 1);
	assert_int_equal(ls_rec_put(w, 99, T0, "whatever", 8, err, sizeof(err)), 0);
	assert_int_equal(ls_rec_put(w, 77, T0, "{\"type\":\"new\"}", 14, err, sizeof(err)), 0);
	assert_int_equal(ls_rec_put_snapshot(w, &s, err, sizeof(err)), 0);
	assert_int_equal(ls_rec_put(w, LS_REC_SNAPSHOT, T0 + S, "{\"type\":\"snapshot\",\"v\":9}", 25, err,
				    sizeof(err)), 0);
	ls_snapshot_free(&s);
	assert_int_equal(ls_rec_close(w, "test", err, sizeof(err)), 0);
	assert_int_equal(ls_replay_open(path, 0, &src, err, sizeof(err)), 0);
	while ((rc = ls_source_poll(src, 0)) == 0)
		n++;
	assert_int_equal(n, 1);
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(ls_replay_error(src), "block 1: a snapshot record that does not parse"));
	assert_null(strchr(ls_replay_error(src), '\n'));
	ls_source_destroy(src);
}

/* A block is written when its first record is 5 s old, not before. */
static void test_flush_policy(void **state)
{
	const char *path = tmp("fl.lsr");
	struct ls_rec_info info = { .mono_ns = T0 };
	struct ls_rec_writer *w;
	uint64_t head, since;
	char err[512];

	assert_int_equal(ls_rec_create(path, &info, &w, err, sizeof(err)), 0);
	head = ls_rec_bytes(w);
	assert_int_equal(ls_rec_put(w, 99, T0, "x", 1, err, sizeof(err)), 0);
	since = ls_rec_pending_since(w);
	assert_true(since != 0);
	assert_int_equal(ls_rec_flush(w, since - 1, 0, err, sizeof(err)), 0);
	assert_int_equal(ls_rec_flush(w, since + LS_REC_FLUSH_NS - 1, 0, err, sizeof(err)), 0);
	assert_true(ls_rec_bytes(w) == head);
	assert_int_equal(ls_rec_flush(w, since + LS_REC_FLUSH_NS, 0, err, sizeof(err)), 0);
	assert_true(ls_rec_bytes(w) > head);
	assert_true(ls_rec_pending_since(w) == 0);
	ls_rec_abandon(w);
}

/* A write that fails says so in one line; /dev/full fails at the header. */
static void test_unwritable(void **state)
{
	struct ls_rec_info info = { .mono_ns = T0 };
	struct ls_rec_writer *w = NULL;
	char err[512] = "";

	assert_int_equal(ls_rec_create("/dev/full", &info, &w, err, sizeof(err)), -ENOSPC);
	assert_null(w);
	assert_non_null(strstr(err, "No space left on device"));
	assert_int_equal(ls_rec_create(tmp("no/such/dir.lsr"), &info, &w, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot create"));
}

/* Seeds for tests/fuzz/record_fuzz.c: the recordings above, one with zlib level 0 (its
 * JSON stays visible to the fuzzer's mutations), cut and damaged ones. */
static void test_fuzz_seeds(void **state)
{
	const char *seeds = getenv("LS_FUZZ_SEEDS");
	const char *names[] = { "rt.lsr", "un.lsr", "pa.lsr", "cut.lsr", "dmg.lsr", "unk.lsr" };
	char out[512];

	if (!seeds)
		seeds = dir;	/* still made and checked */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t len;
		unsigned char *p = slurp(tmp(names[i]), &len);

		snprintf(out, sizeof(out), "%s/%s", seeds, names[i]);
		spit(out, p, len);
		if (i == 3) {
			snprintf(out, sizeof(out), "%s/cut-half.lsr", seeds);
			spit(out, p, len / 2);
		}
		free(p);
	}
	{
		/* Block 1 of rt.lsr recompressed at level 0, CRC fixed. */
		size_t len, off[32];
		unsigned char *p = slurp(tmp("rt.lsr"), &len), *raw, *z;
		uLongf rl, zl;
		uLong crc;
		int nb = block_offsets(p, len, off, 32);

		assert_true(nb >= 1);
		rl = p[off[0] + 8] | p[off[0] + 9] << 8 | (uLongf)p[off[0] + 10] << 16;
		raw = malloc(rl);
		z = malloc(36 + compressBound(rl));
		assert_non_null(raw);
		assert_non_null(z);
		assert_int_equal(uncompress(raw, &rl, p + off[0] + 36, nb > 1 ? off[1] - off[0] - 36 : len - off[0] - 36),
				 Z_OK);
		zl = compressBound(rl);
		assert_int_equal(compress2(z + 36, &zl, raw, rl, 0), Z_OK);
		memcpy(z, p + off[0], 36);
		z[4] = (unsigned char)zl;
		z[5] = (unsigned char)(zl >> 8);
		z[6] = (unsigned char)(zl >> 16);
		z[7] = 0;
		crc = crc32(crc32(0, z, 32), z + 36, (uInt)zl);
		for (int k = 0; k < 4; k++)
			z[32 + k] = (unsigned char)(crc >> (8 * k));
		snprintf(out, sizeof(out), "%s/stored.lsr", seeds);
		{
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			assert_true(fd >= 0);
			assert_int_equal(write(fd, p, off[0]), (ssize_t)off[0]);
			assert_int_equal(write(fd, z, 36 + zl), (ssize_t)(36 + zl));
			close(fd);
		}
		/* It reads. */
		assert_int_equal(read_all(NULL, 0, out).rc, 0);
		free(raw);
		free(z);
		free(p);
	}
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_replay_unpaced),
		cmocka_unit_test(test_replay_paced),
		cmocka_unit_test(test_replay_speed),
		cmocka_unit_test(test_every_cut),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_unknown_and_bad_records),
		cmocka_unit_test(test_flush_policy),
		cmocka_unit_test(test_unwritable),
		cmocka_unit_test(test_fuzz_seeds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
