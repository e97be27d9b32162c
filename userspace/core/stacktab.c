/* stacktab.c: interned strings and stack sets; stack aggregation (stacktab.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stacktab.h"

#define STR_BUCKETS 4096
#define AGG_BUCKETS 256

struct str_node {
	struct str_node *next;
	char s[];
};

struct set_node {
	struct set_node *next;
	struct ls_stack_set set;
	struct ls_stack_sample *stacks;
	struct ls_frame *frames;
};

struct ls_stacktab {
	struct str_node *str[STR_BUCKETS];
	struct set_node *sets;
};

struct agg_stack {
	struct agg_stack *next;
	uint64_t hash, count;
	uint32_t n;
	struct ls_frame frames[];
};

struct ls_stack_agg {
	struct agg_stack *b[AGG_BUCKETS];
	uint64_t total;
	uint32_t nstacks;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

struct ls_stacktab *ls_stacktab_new(void) { return calloc(1, sizeof(struct ls_stacktab)); }

void ls_stacktab_free(struct ls_stacktab *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < STR_BUCKETS; i++)
		while (t->str[i]) {
			struct str_node *n = t->str[i]->next;

			free(t->str[i]);
			t->str[i] = n;
		}
	while (t->sets) {
		struct set_node *n = t->sets->next;

		free(t->sets->stacks);
		free(t->sets->frames);
		free(t->sets);
		t->sets = n;
	}
	free(t);
}

const char *ls_stacktab_str(struct ls_stacktab *t, const char *s)
{
	size_t b, len;
	struct str_node *n;

	if (!s)
		return NULL;
	b = hash_str(s) % STR_BUCKETS;
	for (n = t->str[b]; n; n = n->next)
		if (!strcmp(n->s, s))
			return n->s;
	len = strlen(s) + 1;
	n = malloc(sizeof(*n) + len);
	if (!n)
		return NULL;
	memcpy(n->s, s, len);
	n->next = t->str[b];
	t->str[b] = n;
	return n->s;
}

struct ls_stack_agg *ls_stack_agg_new(void) { return calloc(1, sizeof(struct ls_stack_agg)); }

void ls_stack_agg_free(struct ls_stack_agg *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < AGG_BUCKETS; i++)
		while (a->b[i]) {
			struct agg_stack *n = a->b[i]->next;

			free(a->b[i]);
			a->b[i] = n;
		}
	free(a);
}

/* Strings are interned, so pointers compare. */
static uint64_t hash_frames(const struct ls_frame *f, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < n; i++) {
		h = (h ^ (uint64_t)(uintptr_t)f[i].function) * 1099511628211ull;
		h = (h ^ (uint64_t)(uintptr_t)f[i].file) * 1099511628211ull;
		h = (h ^ (uint64_t)f[i].line) * 1099511628211ull;
		h = (h ^ (uint64_t)(uintptr_t)f[i].module ^ (uint64_t)f[i].kind) * 1099511628211ull;
	}
	return h;
}

/* Columns do not tell stacks apart: the same lines are one stack to a reader (its
 * column is its first sample's). */
static int frame_eq(const struct ls_frame *a, const struct ls_frame *b, int with_line)
{
	return a->kind == b->kind && a->function == b->function && a->file == b->file && a->module == b->module &&
	       (!with_line || a->line == b->line);
}

static int same(const struct ls_frame *a, const struct ls_frame *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (!frame_eq(&a[i], &b[i], 1))
			return 0;
	return 1;
}

int ls_stack_agg_add(struct ls_stack_agg *a, const struct ls_frame *frames, uint32_t n, uint64_t count)
{
	uint64_t h = hash_frames(frames, n);
	struct agg_stack *s;

	for (s = a->b[h % AGG_BUCKETS]; s; s = s->next)
		if (s->hash == h && s->n == n && same(s->frames, frames, n)) {
			s->count += count;
			a->total += count;
			return 0;
		}
	s = malloc(sizeof(*s) + n * sizeof(*frames));
	if (!s)
		return -ENOMEM;
	s->hash = h;
	s->count = count;
	s->n = n;
	memcpy(s->frames, frames, n * sizeof(*frames));
	s->next = a->b[h % AGG_BUCKETS];
	a->b[h % AGG_BUCKETS] = s;
	a->total += count;
	a->nstacks++;
	return 0;
}

uint64_t ls_stack_agg_total(const struct ls_stack_agg *a) { return a->total; }

static int by_count(const void *x, const void *y)
{
	const struct agg_stack *a = *(struct agg_stack *const *)x, *b = *(struct agg_stack *const *)y;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return a->n < b->n ? -1 : a->n > b->n;
}

/* One stack of a finished set: a run of some agg_stack's frames and its count. */
struct out_stack {
	const struct agg_stack *rep;	/* whose frames it shows */
	uint32_t from;			/* rep->frames[from..rep->n) */
	int32_t cut;			/* group(): rep's cut, -1 for none */
	uint64_t count;
	uint64_t js_weight;		/* samples of the set whose top JS function is its own */
	const struct ls_frame *js;	/* its top JS frame, or NULL */
};

#define HOT_PATH 9	/* a group's stack goes on leafward while >= 9/10 of its samples do */

/* Frame d of s counted from the root (0: the root). */
static const struct ls_frame *at_depth(const struct agg_stack *s, uint32_t d) { return &s->frames[s->n - 1 - d]; }

/* Whether a and b share their frames from the root through depth d (the frame at
 * cut_depth compared without its line). */
static int same_path(const struct agg_stack *a, const struct agg_stack *b, uint32_t d, uint32_t cut_depth)
{
	if (a->n <= d || b->n <= d)
		return 0;
	for (uint32_t i = 0; i <= d; i++)
		if (!frame_eq(at_depth(a, i), at_depth(b, i), i != cut_depth))
			return 0;
	return 1;
}

/* Group o (its members: the stacks m[i] with grp[i] == g) as one stack: from the cut
 * leafward while one frame holds HOT_PATH/10 of the group's samples, each step
 * taking the heaviest frame (frames compared without their lines: a loop over two
 * lines is one function; the lines shown are the most frequent stack's on the
 * path); the count is that of the samples on the path. on[] is scratch, k long. */
static void hot_path(struct out_stack *o, struct agg_stack **m, const uint32_t *grp, uint32_t k, uint32_t g,
		     uint8_t *on)
{
	uint32_t d = o->rep->n - 1 - (uint32_t)o->cut;
	const struct agg_stack *path = o->rep;
	uint64_t total = o->count;

	for (uint32_t i = 0; i < k; i++)
		on[i] = grp[i] == g;	/* on the path so far: all through the cut */
	for (;;) {
		const struct agg_stack *best = NULL;
		uint64_t best_w = 0;

		/* the heaviest frame one step deeper among those on the path */
		for (uint32_t i = 0; i < k; i++) {
			uint64_t w = 0;
			int seen = 0;

			if (!on[i] || m[i]->n <= d + 1)
				continue;
			for (uint32_t j = 0; j < i && !seen; j++)
				seen = on[j] && m[j]->n > d + 1 && frame_eq(at_depth(m[j], d + 1), at_depth(m[i], d + 1), 0);
			for (uint32_t j = i; j < k && !seen; j++)
				if (on[j] && m[j]->n > d + 1 && frame_eq(at_depth(m[j], d + 1), at_depth(m[i], d + 1), 0))
					w += m[j]->count;
			if (w > best_w) {
				best_w = w;
				best = m[i];
			}
		}
		if (!best || best_w * 10 < total * HOT_PATH)
			break;
		for (uint32_t i = 0; i < k; i++)
			on[i] = on[i] && m[i]->n > d + 1 && frame_eq(at_depth(m[i], d + 1), at_depth(best, d + 1), 0);
		path = best;
		d++;
		o->count = best_w;
	}
	o->rep = path;
	o->from = path->n - 1 - d;
}

static int by_out_count(const void *x, const void *y)
{
	const struct out_stack *a = x, *b = y;

	if ((a->cut >= 0) != (b->cut >= 0))
		return a->cut >= 0 ? -1 : 1;	/* grouped stacks first */
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	/* as frequent: the one whose top JS function ran more (a deep recursion's
	 * samples are each a stack of its own) */
	if (a->js_weight != b->js_weight)
		return a->js_weight > b->js_weight ? -1 : 1;
	return (a->rep->n - a->from) < (b->rep->n - b->from) ? -1 : (a->rep->n - a->from) > (b->rep->n - b->from);
}

static int by_js(const void *x, const void *y)
{
	const struct out_stack *a = *(struct out_stack *const *)x, *b = *(struct out_stack *const *)y;
	uintptr_t fa = a->js ? (uintptr_t)a->js->function : 0, fb = b->js ? (uintptr_t)b->js->function : 0;
	uintptr_t ga = a->js ? (uintptr_t)a->js->file : 0, gb = b->js ? (uintptr_t)b->js->file : 0;

	if (fa != fb)
		return fa < fb ? -1 : 1;
	return ga < gb ? -1 : ga > gb;
}

/* Each stack's js_weight: the samples of all stacks whose top JS frame names the
 * same function in the same file (strings are interned: pointers compare). by is
 * scratch, n long. */
static void js_weights(struct out_stack *out, uint32_t n, struct out_stack **by)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct agg_stack *r = out[i].rep;

		out[i].js = NULL;
		for (uint32_t k = out[i].from; k < r->n && !out[i].js; k++)
			if (r->frames[k].kind == LS_FRAME_JS)
				out[i].js = &r->frames[k];
		by[i] = &out[i];
	}
	qsort(by, n, sizeof(*by), by_js);
	for (uint32_t i = 0, j; i < n; i = j) {
		uint64_t w = 0;

		for (j = i; j < n && !by_js(&by[i], &by[j]); j++)
			w += by[j]->count;
		for (uint32_t k = i; k < j; k++)
			by[k]->js_weight = by[i]->js ? w : 0;
	}
}

static const struct ls_stack_set *finish(struct ls_stack_agg *a, struct ls_stacktab *t, uint32_t max,
					 ls_stack_group_fn group)
{
	struct agg_stack **all;
	struct out_stack *out = NULL, **by = NULL;
	uint32_t *grp = NULL;
	uint8_t *on = NULL;
	struct set_node *sn = NULL;
	uint32_t k = 0, nout = 0, keep;
	size_t nframes = 0, fi = 0;

	if (!a->nstacks)
		return NULL;
	all = malloc(a->nstacks * sizeof(*all));
	out = malloc(a->nstacks * sizeof(*out));
	grp = malloc(a->nstacks * sizeof(*grp));
	on = malloc(a->nstacks);
	by = malloc(a->nstacks * sizeof(*by));
	if (!all || !out || !grp || !on || !by)
		goto cleanup;
	for (size_t i = 0; i < AGG_BUCKETS; i++)
		for (struct agg_stack *s = a->b[i]; s; s = s->next)
			all[k++] = s;
	qsort(all, k, sizeof(*all), by_count);
	/* most frequent first, so a group's first member is its most frequent */
	for (uint32_t i = 0; i < k; i++) {
		const struct agg_stack *s = all[i];
		int32_t cut = group ? group(s->frames, s->n) : -1;
		uint32_t j = 0;

		if (cut >= (int32_t)s->n)
			cut = -1;
		for (; cut >= 0 && j < nout; j++) {
			struct out_stack *o = &out[j];
			uint32_t cd = o->rep->n - 1 - (uint32_t)o->cut;

			if (o->cut >= 0 && s->n - 1 - (uint32_t)cut == cd && same_path(o->rep, s, cd, cd))
				break;
		}
		if (cut < 0 || j == nout) {
			j = nout++;
			out[j] = (struct out_stack){ .rep = s, .from = 0, .cut = cut, .count = 0 };
		}
		grp[i] = j;
		out[j].count += s->count;
	}
	for (uint32_t j = 0; j < nout; j++)
		if (out[j].cut >= 0)
			hot_path(&out[j], all, grp, k, j, on);
	js_weights(out, nout, by);
	qsort(out, nout, sizeof(*out), by_out_count);
	keep = nout < max ? nout : max;
	for (uint32_t i = 0; i < keep; i++)
		nframes += out[i].rep->n - out[i].from;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		goto cleanup;
	sn->stacks = calloc(keep ? keep : 1, sizeof(*sn->stacks));
	sn->frames = calloc(nframes ? nframes : 1, sizeof(*sn->frames));
	if (!sn->stacks || !sn->frames) {
		free(sn->stacks);
		free(sn->frames);
		free(sn);
		sn = NULL;
		goto cleanup;
	}
	for (uint32_t i = 0; i < keep; i++) {
		uint32_t n = out[i].rep->n - out[i].from;

		memcpy(&sn->frames[fi], &out[i].rep->frames[out[i].from], n * sizeof(*sn->frames));
		sn->stacks[i] = (struct ls_stack_sample){ .frames = &sn->frames[fi], .nframes = n, .count = out[i].count };
		fi += n;
	}
	sn->set = (struct ls_stack_set){ .stacks = sn->stacks, .nstacks = keep, .total = a->total };
	sn->next = t->sets;
	t->sets = sn;
cleanup:
	free(all);
	free(out);
	free(grp);
	free(on);
	free(by);
	return sn ? &sn->set : NULL;
}

const struct ls_stack_set *ls_stack_agg_finish(struct ls_stack_agg *a, struct ls_stacktab *t, uint32_t max)
{
	return finish(a, t, max, NULL);
}

const struct ls_stack_set *ls_stack_agg_finish_grouped(struct ls_stack_agg *a, struct ls_stacktab *t,
						       uint32_t max, ls_stack_group_fn group)
{
	return finish(a, t, max, group);
}

const struct ls_frame *ls_stack_top_js(const struct ls_stack_sample *s)
{
	for (uint32_t i = 0; i < s->nframes; i++)
		if (s->frames[i].kind == LS_FRAME_JS)
			return &s->frames[i];
	return NULL;
}

struct ls_stacktab *ls_stacks_table(void)
{
	static struct ls_stacktab *t;

	if (!t)
		t = ls_stacktab_new();
	return t;
}

struct ls_stack_span *ls_stack_span_get(void *slots, size_t n, size_t stride, uint32_t tid, uint64_t start,
					int create)
{
	struct ls_stack_span *free_slot = NULL, *oldest = NULL;

	for (size_t i = 0; i < n; i++) {
		struct ls_stack_span *s = (struct ls_stack_span *)((char *)slots + i * stride);

		if (s->agg && s->tid == tid && s->start == start)
			return s;
		if (!s->agg && !free_slot)
			free_slot = s;
		if (s->agg && (!oldest || s->start < oldest->start))
			oldest = s;
	}
	if (!create || (!free_slot && !oldest))
		return NULL;
	if (!free_slot) {	/* spans that never ended as episodes: drop the oldest */
		ls_stack_agg_free(oldest->agg);
		free_slot = oldest;
	}
	memset(free_slot, 0, stride);
	free_slot->agg = ls_stack_agg_new();
	if (!free_slot->agg)
		return NULL;
	free_slot->tid = tid;
	free_slot->start = start;
	return free_slot;
}

void ls_stack_span_drop(struct ls_stack_span *s, size_t size)
{
	ls_stack_agg_free(s->agg);
	memset(s, 0, size);
}
