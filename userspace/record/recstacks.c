/* recstacks.c: episode stacks in recordings (recstacks.h). cJSON both ways: these
 * records are rare (one per episode with samples), and it escapes whatever a symbol
 * name holds. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "recstacks.h"

static void add_u64(cJSON *o, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	cJSON_AddStringToObject(o, key, num);
}

static cJSON *frame_json(const struct ls_frame *f)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "kind", ls_frame_kind_name(f->kind));
	cJSON_AddStringToObject(o, "function", f->function ? f->function : "");
	if (f->file)
		cJSON_AddStringToObject(o, "file", f->file);
	cJSON_AddNumberToObject(o, "line", f->line);
	cJSON_AddNumberToObject(o, "column", f->column);
	if (f->module)
		cJSON_AddStringToObject(o, "module", f->module);
	return o;
}

int ls_rec_put_stacks(struct ls_rec_writer *w, const struct ls_episode *ep, uint64_t t_ns, char *err,
		      size_t errlen)
{
	const struct ls_stack_set *set = ep->stacks;
	cJSON *o, *arr;
	char *text = NULL;
	int rc = -ENOMEM;

	if (!set || !set->nstacks)
		return 0;
	o = cJSON_CreateObject();
	if (!o)
		goto cleanup;
	cJSON_AddStringToObject(o, "type", "stacks");
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddNumberToObject(o, "pid", ep->pid);
	cJSON_AddNumberToObject(o, "tid", ep->tid);
	add_u64(o, "start_ns", ep->start_ns);
	cJSON_AddNumberToObject(o, "samples", ep->samples);
	add_u64(o, "total", set->total);
	arr = cJSON_AddArrayToObject(o, "stacks");
	for (uint32_t i = 0; arr && i < set->nstacks; i++) {
		const struct ls_stack_sample *s = &set->stacks[i];
		cJSON *so = cJSON_CreateObject(), *fr;

		if (!so || !cJSON_AddItemToArray(arr, so))
			goto cleanup;
		add_u64(so, "count", s->count);
		fr = cJSON_AddArrayToObject(so, "frames");
		for (uint32_t k = 0; fr && k < s->nframes; k++)
			cJSON_AddItemToArray(fr, frame_json(&s->frames[k]));
	}
	text = cJSON_PrintUnformatted(o);
	if (!text)
		goto cleanup;
	rc = ls_rec_put(w, LS_REC_STACKS, t_ns, text, strlen(text), err, errlen);
cleanup:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	cJSON_free(text);
	cJSON_Delete(o);
	return rc;
}

/* An unsigned integer: a number or a decimal string (64-bit values are strings). */
static int get_u64(const cJSON *o, const char *key, uint64_t max, uint64_t *v)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	char *end;

	if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble <= (double)max &&
	    it->valuedouble == floor(it->valuedouble)) {
		*v = (uint64_t)it->valuedouble;
		return 0;
	}
	if (cJSON_IsString(it) && it->valuestring[0] >= '0' && it->valuestring[0] <= '9') {
		errno = 0;
		*v = strtoull(it->valuestring, &end, 10);
		return errno || *end || *v > max ? -EINVAL : 0;
	}
	return -EINVAL;
}

static const char *get_str(struct ls_stacktab *tab, const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(it) ? ls_stacktab_str(tab, it->valuestring) : NULL;
}

static int get_frame(struct ls_stacktab *tab, const cJSON *o, struct ls_frame *f)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
	uint64_t line = 0, col = 0;

	if (!cJSON_IsObject(o) || !cJSON_IsString(k))
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	if (!strcmp(k->valuestring, "js"))
		f->kind = LS_FRAME_JS;
	else if (!strcmp(k->valuestring, "native"))
		f->kind = LS_FRAME_NATIVE;
	else if (!strcmp(k->valuestring, "kernel"))
		f->kind = LS_FRAME_KERNEL;
	else
		return -EINVAL;
	if (get_u64(o, "line", UINT32_MAX, &line) || get_u64(o, "column", UINT32_MAX, &col))
		return -EINVAL;
	f->line = (uint32_t)line;
	f->column = (uint32_t)col;
	f->function = get_str(tab, o, "function");
	f->file = get_str(tab, o, "file");
	f->module = get_str(tab, o, "module");
	return f->function ? 0 : -ENOMEM;	/* a function name is always there */
}

int ls_rec_stacks_parse(const char *val, size_t len, struct ls_stacktab *tab, struct ls_rec_stacks *out)
{
	cJSON *o = cJSON_ParseWithLength(val, len);
	const cJSON *t, *v, *arr, *s;
	struct ls_stack_agg *agg = NULL;
	struct ls_frame *frames = NULL;
	uint64_t pid, tid, samples, total;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	t = cJSON_GetObjectItemCaseSensitive(o, "type");
	v = cJSON_GetObjectItemCaseSensitive(o, "v");
	arr = cJSON_GetObjectItemCaseSensitive(o, "stacks");
	if (!cJSON_IsObject(o) || !cJSON_IsString(t) || strcmp(t->valuestring, "stacks") || !cJSON_IsNumber(v) ||
	    v->valuedouble != 1 || !cJSON_IsArray(arr) || get_u64(o, "pid", INT32_MAX, &pid) ||
	    get_u64(o, "tid", UINT32_MAX, &tid) || get_u64(o, "start_ns", UINT64_MAX, &out->start_ns) ||
	    get_u64(o, "samples", UINT32_MAX, &samples) || get_u64(o, "total", UINT64_MAX, &total))
		goto cleanup;
	out->pid = (int32_t)pid;
	out->tid = (uint32_t)tid;
	out->samples = (uint32_t)samples;
	rc = -ENOMEM;
	if (!(agg = ls_stack_agg_new()) || !(frames = calloc(LS_REC_MAX_FRAMES, sizeof(*frames))))
		goto cleanup;
	cJSON_ArrayForEach(s, arr) {
		const cJSON *fr = cJSON_GetObjectItemCaseSensitive(s, "frames"), *f;
		uint64_t count;
		uint32_t n = 0;

		rc = -EINVAL;
		if (!cJSON_IsObject(s) || !cJSON_IsArray(fr) || get_u64(s, "count", UINT64_MAX, &count))
			goto cleanup;
		cJSON_ArrayForEach(f, fr) {
			if (n == LS_REC_MAX_FRAMES)
				break;
			if ((rc = get_frame(tab, f, &frames[n++])))
				goto cleanup;
		}
		if (n && count && (rc = ls_stack_agg_add(agg, frames, n, count)))
			goto cleanup;
	}
	rc = 0;
	out->set = ls_stack_agg_finish(agg, tab, LS_REC_MAX_STACKS);
	if (out->set && total > out->set->total)
		/* The agent kept its top stacks and counted the rest in total: so does the
		 * copy (the table made the set, writable; the const is for its readers). */
		((struct ls_stack_set *)out->set)->total = total;
cleanup:
	ls_stack_agg_free(agg);
	free(frames);
	cJSON_Delete(o);
	return rc;
}
