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
		h = (h ^ ((uint64_t)f[i].line << 32 | f[i].column)) * 1099511628211ull;
		h = (h ^ (uint64_t)(uintptr_t)f[i].module ^ (uint64_t)f[i].kind) * 1099511628211ull;
	}
	return h;
}

static int same(const struct ls_frame *a, const struct ls_frame *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (a[i].kind != b[i].kind || a[i].function != b[i].function || a[i].file != b[i].file ||
		    a[i].line != b[i].line || a[i].column != b[i].column || a[i].module != b[i].module)
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

const struct ls_stack_set *ls_stack_agg_finish(struct ls_stack_agg *a, struct ls_stacktab *t, uint32_t max)
{
	struct agg_stack **all;
	struct set_node *sn = NULL;
	uint32_t k = 0, keep;
	size_t nframes = 0, fi = 0;

	if (!a->nstacks)
		return NULL;
	all = malloc(a->nstacks * sizeof(*all));
	if (!all)
		return NULL;
	for (size_t i = 0; i < AGG_BUCKETS; i++)
		for (struct agg_stack *s = a->b[i]; s; s = s->next)
			all[k++] = s;
	qsort(all, k, sizeof(*all), by_count);
	keep = k < max ? k : max;
	for (uint32_t i = 0; i < keep; i++)
		nframes += all[i]->n;
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
		memcpy(&sn->frames[fi], all[i]->frames, all[i]->n * sizeof(*sn->frames));
		sn->stacks[i] = (struct ls_stack_sample){ .frames = &sn->frames[fi], .nframes = all[i]->n,
							  .count = all[i]->count };
		fi += all[i]->n;
	}
	sn->set = (struct ls_stack_set){ .stacks = sn->stacks, .nstacks = keep, .total = a->total };
	sn->next = t->sets;
	t->sets = sn;
cleanup:
	free(all);
	return sn ? &sn->set : NULL;
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
