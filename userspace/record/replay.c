/* replay.c: a recording as an ls_source (replay.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recstacks.h"
#include "replay.h"
#include "snapjson.h"

#define PENDING_STACKS 16	/* stacks records waiting for their episode's end */

struct replay {
	struct ls_source src;		/* first: the ls_source pointer is the struct's */
	struct ls_rec_reader *rd;
	char name[256];
	int paced, paused;
	double speed;
	uint64_t pos;			/* playback position (recording clock) */
	uint64_t anchor_local, anchor_pos;	/* pos = anchor_pos + (local - anchor_local) * speed */
	uint64_t first_ns;
	uint64_t max_ep_start;		/* newest episode start delivered (what "next episode" skips) */
	/* The record read but not yet delivered (its value lives in the reader until the
	 * next ls_rec_next()). */
	int have_next;
	uint16_t ntype;
	uint64_t nt;
	const char *nval;
	size_t nlen;
	struct ls_snapshot latest;
	int have_latest;
	/* Episode stacks: the table owns every set handed out in an episode (valid for the
	 * source's life, as the agent's are); a stacks record waits here for its end. */
	struct ls_stacktab *tab;
	struct ls_rec_stacks pending[PENDING_STACKS];
	uint32_t npending;
	int done;			/* the reader said end (0) or failed (err) */
	int err;
	char msg[448];
};

static const struct ls_source_ops replay_ops;

static struct replay *as_replay(const struct ls_source *src)
{
	return (struct replay *)src;
}

/* Read the next record into the look-ahead. 1 there is one, 0 end, or the error. */
static int peek(struct replay *p)
{
	int rc;

	if (p->have_next)
		return 1;
	if (p->done)
		return p->err;
	rc = ls_rec_next(p->rd, &p->ntype, &p->nt, &p->nval, &p->nlen);
	if (rc <= 0) {
		p->done = 1;
		p->err = rc;
		if (rc)
			snprintf(p->msg, sizeof(p->msg), "%s", ls_rec_error(p->rd));
		return rc;
	}
	p->have_next = 1;
	return 1;
}

static int bad_record(struct replay *p, const char *what)
{
	snprintf(p->msg, sizeof(p->msg), "%s: block %u: a %s record that does not parse (damaged, or written by a "
		 "newer loopscope)", p->name, ls_rec_blocks_read(p->rd), what);
	p->done = 1;
	p->have_next = 0;
	p->err = -EBADMSG;
	return p->err;
}

/* An episode's end takes the stacks recorded for it (same pid, tid and start). */
static void attach_stacks(struct replay *p, struct ls_episode *ep)
{
	for (uint32_t i = 0; ep->end_ns && i < p->npending; i++) {
		const struct ls_rec_stacks *st = &p->pending[i];

		if (st->pid == ep->pid && st->tid == ep->tid && st->start_ns == ep->start_ns) {
			ep->stacks = st->set;
			ep->samples = st->samples;
			memmove(&p->pending[i], &p->pending[i + 1], (--p->npending - i) * sizeof(p->pending[0]));
			return;
		}
	}
}

/* Deliver the look-ahead record. Its type, or the error. */
static int deliver(struct replay *p, struct ls_episode *ep_out)
{
	uint16_t type = p->ntype;

	p->have_next = 0;
	if (p->nt > p->pos && !p->paced)
		p->pos = p->nt;
	if (type == LS_REC_SNAPSHOT) {
		struct ls_snapshot s;

		if (ls_snapshot_from_json(p->nval, p->nlen, &s))
			return bad_record(p, "snapshot");
		if (p->have_latest)
			ls_snapjson_free(&p->latest);
		p->latest = s;
		p->have_latest = 1;
	} else if (type == LS_REC_EPISODE) {
		struct ls_episode ep;

		if (ls_episode_from_json(p->nval, p->nlen, &ep))
			return bad_record(p, "episode");
		attach_stacks(p, &ep);
		if (ep.start_ns > p->max_ep_start)
			p->max_ep_start = ep.start_ns;
		if (ep_out)
			*ep_out = ep;
		if (p->src.on_episode)
			p->src.on_episode(&ep, p->src.episode_arg);
	} else if (type == LS_REC_STACKS) {
		struct ls_rec_stacks st;
		int rc;

		if (!p->tab && !(p->tab = ls_stacktab_new()))
			return -ENOMEM;
		if ((rc = ls_rec_stacks_parse(p->nval, p->nlen, p->tab, &st)) == -ENOMEM)
			return rc;
		if (rc)
			return bad_record(p, "stacks");
		if (p->npending == PENDING_STACKS)	/* their episodes never ended: the oldest goes */
			memmove(p->pending, p->pending + 1, --p->npending * sizeof(p->pending[0]));
		p->pending[p->npending++] = st;
	}
	/* LS_REC_END is noted by the reader; other types are for newer readers. */
	return type;
}

static uint64_t position(struct replay *p, uint64_t local_now)
{
	if (p->paced && !p->paused && local_now > p->anchor_local) {
		uint64_t pos = p->anchor_pos + (uint64_t)((double)(local_now - p->anchor_local) * p->speed);

		if (pos > p->pos)
			p->pos = pos;
	}
	return p->pos;
}

static void anchor(struct replay *p, uint64_t local_now)
{
	p->anchor_local = local_now;
	p->anchor_pos = p->pos;
}

/* 0 on data, -ENODATA at the end, or the error (after everything before it). */
static int end_status(struct replay *p)
{
	return p->err ? p->err : -ENODATA;
}

static int replay_poll(struct ls_source *src, int timeout_ms)
{
	struct replay *p = as_replay(src);
	int rc;

	if (!p->paced) {
		for (;;) {
			if ((rc = peek(p)) <= 0)
				return end_status(p);
			if ((rc = deliver(p, NULL)) < 0)
				return rc;
			if (rc == LS_REC_SNAPSHOT)
				return 0;
		}
	}
	for (;;) {
		uint64_t now = ls_now_mono_ns(), pos;

		while ((rc = ls_replay_advance(src, now)) == 1)
			;
		if (rc < 0)
			return rc;
		pos = position(p, now);
		if (timeout_ms <= 0 || p->paused || peek(p) <= 0)
			return 0;
		{
			/* Sleep until the record is due or the timeout, whichever is first. */
			uint64_t wait_ns = (uint64_t)((double)(p->nt - pos) / p->speed) + 1;
			uint64_t cap = (uint64_t)timeout_ms * 1000000;
			struct timespec ts;

			if (wait_ns > cap)
				wait_ns = cap;
			ts.tv_sec = (time_t)(wait_ns / 1000000000);
			ts.tv_nsec = (long)(wait_ns % 1000000000);
			nanosleep(&ts, NULL);
			timeout_ms = 0;
		}
	}
}

int ls_replay_advance(struct ls_source *src, uint64_t local_now)
{
	struct replay *p = as_replay(src);
	uint64_t pos = position(p, local_now);
	int rc;

	for (;;) {
		if ((rc = peek(p)) <= 0)
			return end_status(p);
		if (p->nt > pos)
			return 0;
		if ((rc = deliver(p, NULL)) < 0)
			return rc;
		if (rc == LS_REC_SNAPSHOT)
			return 1;
	}
}

static int replay_snapshot(struct ls_source *src, struct ls_snapshot *out)
{
	struct replay *p = as_replay(src);

	if (!p->have_latest)
		return p->done ? end_status(p) : -EAGAIN;
	return ls_snapshot_copy(out, &p->latest);
}

static int replay_fd(struct ls_source *src)
{
	return -1;
}

static uint64_t replay_now(struct ls_source *src)
{
	struct replay *p = as_replay(src);

	return position(p, ls_now_mono_ns());
}

static void replay_destroy(struct ls_source *src)
{
	struct replay *p = as_replay(src);

	if (!p)
		return;
	if (p->have_latest)
		ls_snapjson_free(&p->latest);
	ls_rec_close_reader(p->rd);
	ls_stacktab_free(p->tab);
	free(p);
}

static const struct ls_source_ops replay_ops = {
	.name = "replay",
	.poll = replay_poll,
	.snapshot = replay_snapshot,
	.fd = replay_fd,
	.destroy = replay_destroy,
	.now = replay_now,
};

static int setup(struct replay *p, const char *name, int paced, struct ls_source **out, char *err, size_t errlen)
{
	int rc;

	p->src.ops = &replay_ops;
	p->paced = paced;
	p->speed = 1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	rc = peek(p);
	if (rc < 0) {
		snprintf(err, errlen, "%s", p->msg);
		replay_destroy(&p->src);
		return rc;
	}
	p->first_ns = rc ? p->nt : ls_rec_info(p->rd)->mono_ns;
	p->pos = p->first_ns;
	anchor(p, ls_now_mono_ns());
	*out = &p->src;
	return 0;
}

int ls_replay_open(const char *path, int paced, struct ls_source **out, char *err, size_t errlen)
{
	struct replay *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = ls_rec_open(path, &p->rd, err, errlen))) {
		free(p);
		return rc;
	}
	return setup(p, path, paced, out, err, errlen);
}

int ls_replay_open_mem(const void *data, size_t len, const char *name, int paced, struct ls_source **out,
		       char *err, size_t errlen)
{
	struct replay *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = ls_rec_open_mem(data, len, name, &p->rd, err, errlen))) {
		free(p);
		return rc;
	}
	return setup(p, name, paced, out, err, errlen);
}

int ls_is_replay(const struct ls_source *src)
{
	return src && src->ops == &replay_ops;
}

const struct ls_rec_info *ls_replay_info(const struct ls_source *src)
{
	return ls_rec_info(as_replay(src)->rd);
}

const char *ls_replay_error(const struct ls_source *src)
{
	const struct replay *p = as_replay(src);

	return p->err ? p->msg : "";
}

int ls_replay_ended_cleanly(const struct ls_source *src)
{
	return ls_rec_ended_cleanly(as_replay(src)->rd);
}

uint64_t ls_replay_first_ns(const struct ls_source *src)
{
	return as_replay(src)->first_ns;
}

void ls_replay_set_paused(struct ls_source *src, int paused, uint64_t local_now)
{
	struct replay *p = as_replay(src);

	position(p, local_now);
	p->paused = paused;
	anchor(p, local_now);
}

int ls_replay_paused(const struct ls_source *src)
{
	return as_replay(src)->paused;
}

void ls_replay_set_speed(struct ls_source *src, double speed, uint64_t local_now)
{
	struct replay *p = as_replay(src);

	position(p, local_now);
	p->speed = speed < 1 ? 1 : speed > LS_REPLAY_MAX_SPEED ? LS_REPLAY_MAX_SPEED : speed;
	anchor(p, local_now);
}

double ls_replay_speed(const struct ls_source *src)
{
	return as_replay(src)->speed;
}

/* Deliver records until one matches (1: snapshot, 2: new episode); move the clock to it. */
static int advance_to(struct replay *p, int want, uint64_t local_now)
{
	position(p, local_now);
	for (;;) {
		struct ls_episode ep = { 0 };
		uint64_t seen = p->max_ep_start, t;
		int rc = peek(p);

		if (rc <= 0)
			return end_status(p);
		/* The clock first: the episode callback reads it. */
		t = p->nt;
		if (t > p->pos)
			p->pos = t;
		if ((rc = deliver(p, &ep)) < 0)
			return rc;
		if ((want == 1 && rc == LS_REC_SNAPSHOT) ||
		    (want == 2 && rc == LS_REC_EPISODE && ep.start_ns > seen)) {
			anchor(p, local_now);
			return 0;
		}
	}
}

int ls_replay_step(struct ls_source *src, uint64_t local_now)
{
	return advance_to(as_replay(src), 1, local_now);
}

int ls_replay_next_episode(struct ls_source *src, uint64_t local_now)
{
	return advance_to(as_replay(src), 2, local_now);
}
