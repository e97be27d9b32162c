/* stats.c: the loop's ground-truth accounting. Every sample is kept, so quantiles
 * are exact; this is what the eBPF side is checked against. */
#include <stdlib.h>
#include <string.h>

#include "lsl_internal.h"

/* xorshift64*: the reservoirs need cheap, not strong, randomness. */
static uint64_t next_random(struct lsl__acct *a)
{
	uint64_t x = a->rng ? a->rng : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	a->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

void lsl__series_add(lsl_loop_t *loop, struct lsl__series *s, uint64_t v)
{
	s->count++;
	s->total += v;
	if (v > s->max)
		s->max = v;
	if (s->n == s->cap && s->cap < LSL_STATS_MAX_SAMPLES) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *nv;

		if (cap > LSL_STATS_MAX_SAMPLES)
			cap = LSL_STATS_MAX_SAMPLES;
		nv = realloc(s->v, cap * sizeof(*nv));
		if (nv) {
			s->v = nv;
			s->cap = cap;
		}
	}
	if (s->n < s->cap) {
		s->v[s->n++] = v;
		return;
	}
	/* Full (or out of memory): sample i replaces a kept one with probability n/i,
	 * so the kept ones stay a uniform sample of everything seen. */
	loop->acct.dropped++;
	if (s->n) {
		uint64_t j = next_random(&loop->acct) % s->count;
		if (j < s->n)
			s->v[j] = v;
	}
}

static void series_free(struct lsl__series *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

void lsl__acct_free(struct lsl__acct *a)
{
	int i;

	for (i = 0; i < LSL_NPHASES; i++)
		series_free(&a->phase[i]);
	series_free(&a->delay);
	series_free(&a->lateness);
	free(a->eps);
	a->eps = NULL;
	a->neps = a->eps_cap = 0;
}

void lsl__episode_add(lsl_loop_t *loop, uint32_t kind, uint32_t phase, uint64_t start_ns,
		      uint64_t duration_ns, uint64_t callbacks)
{
	struct lsl__acct *a = &loop->acct;

	if (a->neps == a->eps_cap && a->eps_cap < LSL_STATS_MAX_EPISODES) {
		size_t cap = a->eps_cap ? a->eps_cap * 2 : 16;
		struct lsl_episode *n = realloc(a->eps, cap * sizeof(*n));

		if (n) {
			a->eps = n;
			a->eps_cap = cap;
		}
	}
	if (a->neps == a->eps_cap) {
		a->eps_dropped++;	/* the counts still hold it */
		return;
	}
	a->eps[a->neps++] = (struct lsl_episode){ .start_ns = start_ns, .duration_ns = duration_ns,
						  .kind = kind, .phase = phase, .callbacks = callbacks };
}

/* Clear every counter and sample; the window starts at t. Keeps on/want. */
static void acct_clear(struct lsl__acct *a, uint64_t t)
{
	int on = a->on, want = a->want;

	lsl__acct_free(a);
	memset(a, 0, sizeof(*a));
	a->on = on;
	a->want = want;
	a->window_start_ns = t;
}

/* Called at an iteration start when lsl_accounting_start/stop changed the wish. */
void lsl__acct_apply(lsl_loop_t *loop, uint64_t t)
{
	struct lsl__acct *a = &loop->acct;

	if (a->want && !a->on) {
		acct_clear(a, t);
		a->on = 1;
		/* One delay sample per iteration of the window: the first one's span began
		 * at the previous poll return, known if that iteration filled the record
		 * (a tracer attached: its first counted span is this one too). */
		if (!loop->rec_on)
			loop->last_poll_return_ns = 0;
	} else if (!a->want && a->on) {
		a->on = 0;
		a->window_end_ns = t;
	}
}

int lsl_accounting_start(lsl_loop_t *loop)
{
	if (!loop)
		return -EINVAL;
	if (loop->acct.want)
		return 0;
	loop->acct.want = 1;
	if (!loop->running)
		lsl__acct_apply(loop, lsl_hrtime_ns());
	return 0;
}

int lsl_accounting_stop(lsl_loop_t *loop)
{
	if (!loop)
		return -EINVAL;
	loop->acct.want = 0;
	if (!loop->running)
		lsl__acct_apply(loop, lsl_hrtime_ns());
	return 0;
}

int lsl_accounting_enabled(const lsl_loop_t *loop)
{
	return loop && (loop->acct.on || loop->acct.want);
}

int lsl_stats_reset(lsl_loop_t *loop)
{
	if (!loop)
		return -EINVAL;
	acct_clear(&loop->acct, lsl_hrtime_ns());
	return 0;
}

int lsl_set_starvation_threshold(lsl_loop_t *loop, uint64_t ns)
{
	if (!loop || ns == 0)
		return -EINVAL;
	loop->starvation_threshold_ns = ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least q of all samples at or below it. */
static uint64_t rank(const uint64_t *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)(q * (double)n + 0.999999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static int quantiles(const struct lsl__series *s, struct lsl_quantiles *q)
{
	uint64_t *v;

	memset(q, 0, sizeof(*q));
	q->count = s->count;
	q->total_ns = s->total;
	q->max_ns = s->max;
	if (!s->n)
		return 0;
	v = malloc(s->n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, s->v, s->n * sizeof(*v));
	qsort(v, s->n, sizeof(*v), cmp_u64);
	q->p50_ns = rank(v, s->n, 0.50);
	q->p99_ns = rank(v, s->n, 0.99);
	if (q->p99_ns > q->max_ns)
		q->p99_ns = q->max_ns;
	if (q->p50_ns > q->max_ns)
		q->p50_ns = q->max_ns;
	free(v);
	return 0;
}

int lsl_stats_get(lsl_loop_t *loop, struct lsl_stats *out)
{
	const struct lsl__acct *a;
	uint64_t end;
	int i, err = 0;

	if (!loop || !out)
		return -EINVAL;
	a = &loop->acct;
	memset(out, 0, sizeof(*out));
	end = a->on ? lsl_hrtime_ns() : a->window_end_ns;
	if (a->window_start_ns && end > a->window_start_ns)
		out->window_ns = end - a->window_start_ns;
	out->iterations = a->iterations;
	for (i = 0; i < LSL_NPHASES && !err; i++)
		err = quantiles(&a->phase[i], &out->phase[i]);
	if (!err)
		err = quantiles(&a->delay, &out->delay);
	if (!err)
		err = quantiles(&a->lateness, &out->timer_lateness);
	if (err)
		return err;
	out->ticks = a->ticks;
	out->microtasks = a->microtasks;
	out->poll_wait_ns = a->poll_wait_ns;
	out->stall_episodes = a->stall_episodes;
	out->samples_dropped = a->dropped;
	out->episodes = a->eps;
	out->nepisodes = a->neps;
	out->episodes_dropped = a->eps_dropped;
	out->starvation_threshold_ns = loop->starvation_threshold_ns;
	if (out->window_ns)
		out->utilization = out->poll_wait_ns >= out->window_ns ? 0.0 :
			(double)(out->window_ns - out->poll_wait_ns) / (double)out->window_ns;
	return 0;
}

/* The one place ns become seconds in this file's output. */
static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_quant(FILE *f, const struct lsl_quantiles *q, int with_total)
{
	fputc('{', f);
	if (with_total)
		fprintf(f, "\"total_s\":%.9f,", secs(q->total_ns));
	fprintf(f, "\"count\":%llu,\"p50_s\":%.9f,\"p99_s\":%.9f,\"max_s\":%.9f}",
		(unsigned long long)q->count, secs(q->p50_ns), secs(q->p99_ns), secs(q->max_ns));
}

static void json_drain(FILE *f, const struct lsl_drain_stats *d)
{
	fprintf(f, "{\"drains\":%llu,\"callbacks\":%llu,\"max_drain_s\":%.9f,\"starvation_episodes\":%llu}",
		(unsigned long long)d->drains, (unsigned long long)d->callbacks, secs(d->max_drain_ns),
		(unsigned long long)d->starvation_episodes);
}

int lsl_stats_write_json(const struct lsl_stats *st, FILE *f, int pid, int tid, const char *comm)
{
	int i;

	if (!st || !f)
		return -EINVAL;
	fprintf(f, "{\"pid\":%d,\"tid\":%d,\"comm\":", pid, tid);
	json_str(f, comm ? comm : "");
	fprintf(f, ",\"runtime\":\"reference\",\"interval_s\":%.9f,\"iterations\":%llu,\"utilization\":%.6f,\"phases\":{",
		secs(st->window_ns), (unsigned long long)st->iterations, st->utilization);
	for (i = 0; i < LSL_NPHASES; i++) {
		fprintf(f, "%s\"%s\":", i ? "," : "", lsl_phase_names[i]);
		json_quant(f, &st->phase[i], 1);
	}
	fputs("},\"delay\":", f);
	json_quant(f, &st->delay, 0);
	fputs(",\"timer_lateness\":", f);
	json_quant(f, &st->timer_lateness, 0);
	fputs(",\"ticks\":", f);
	json_drain(f, &st->ticks);
	fputs(",\"microtasks\":", f);
	json_drain(f, &st->microtasks);
	fprintf(f, ",\"poll_wait_s\":%.9f,\"stall_episodes\":%llu,\"samples_dropped\":%llu,\"episodes\":[",
		secs(st->poll_wait_ns), (unsigned long long)st->stall_episodes,
		(unsigned long long)st->samples_dropped);
	for (size_t k = 0; k < st->nepisodes; k++) {
		const struct lsl_episode *e = &st->episodes[k];
		static const char *const kinds[] = { "stall", "tick_starvation", "microtask_starvation" };

		fprintf(f, "%s{\"kind\":\"%s\",\"phase\":\"%s\",\"start_s\":%.9f,\"duration_s\":%.9f,"
			"\"callbacks\":%llu}", k ? "," : "", e->kind < 3 ? kinds[e->kind] : "unknown",
			e->phase < LSL_NPHASES ? lsl_phase_names[e->phase] : "none", secs(e->start_ns),
			secs(e->duration_ns), (unsigned long long)e->callbacks);
	}
	fprintf(f, "],\"episodes_dropped\":%llu}\n", (unsigned long long)st->episodes_dropped);
	fflush(f);
	return ferror(f) ? -EIO : 0;
}
