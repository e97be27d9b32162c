/* snapjson.c: snapshots and episodes to and from one line of JSON (see snapjson.h).
 *
 * Encoding is hand-written into a byte buffer (it runs once per tick for every
 * stream, and the sparse histograms make cJSON trees needlessly large); decoding
 * uses cJSON, with the integer rule of snapjson.h keeping 64-bit values exact. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "snapjson.h"
#include "stacktab.h"

#define EXACT_MAX (1ull << 53)	/* largest integer every double holds exactly */

static const char *const state_names[] = { [LS_TARGET_ATTACHED] = "attached",
					   [LS_TARGET_EXITED] = "exited",
					   [LS_TARGET_DETACHED] = "detached" };
static const char *const live_names[] = { [LS_LIVE_UNKNOWN] = "unknown", [LS_LIVE_POLLING] = "polling",
					  [LS_LIVE_RUNNING] = "running" };
static const char *const drain_names[] = { "none", "ticks", "microtasks" };

#define NAME_OF(tab, i) ((i) < sizeof(tab) / sizeof((tab)[0]) ? (tab)[i] : "?")

/* ---------------------------------------------------------------- encoding */

static void put_u64(struct ls_buf *b, uint64_t v)
{
	if (v <= EXACT_MAX) {
		ls_buf_u64(b, v);
	} else {
		ls_buf_puts(b, "\"");
		ls_buf_u64(b, v);
		ls_buf_puts(b, "\"");
	}
}

/* ,"key":value */
static void kv_u64(struct ls_buf *b, const char *key, uint64_t v)
{
	ls_buf_printf(b, ",\"%s\":", key);
	put_u64(b, v);
}

static void put_str(struct ls_buf *b, const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strnlen(s, max);

	ls_buf_puts(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };

		if (c == '"' || c == '\\') {
			char two[2] = { '\\', (char)c };
			ls_buf_append(b, two, 2);
		} else if (c < 0x20 || c == 0x7f) {
			ls_buf_append(b, esc, 6);
		} else {
			ls_buf_append(b, &s[i], 1);
		}
	}
	ls_buf_puts(b, "\"");
}

static void kv_str(struct ls_buf *b, const char *key, const char *s, size_t max)
{
	ls_buf_printf(b, ",\"%s\":", key);
	put_str(b, s, max);
}

static void put_hist(struct ls_buf *b, const struct ls_hist *h)
{
	int first = 1;

	ls_buf_puts(b, "{\"count\":");
	put_u64(b, h->count);
	kv_u64(b, "sum", h->sum);
	kv_u64(b, "max", h->max);
	ls_buf_puts(b, ",\"buckets\":[");
	for (uint32_t i = 0; i < LS_HIST_BUCKETS; i++) {
		if (!h->bucket[i])
			continue;
		ls_buf_printf(b, "%s[%u,", first ? "" : ",", i);
		put_u64(b, h->bucket[i]);
		ls_buf_puts(b, "]");
		first = 0;
	}
	ls_buf_puts(b, "]}");
}

static void kv_hist(struct ls_buf *b, const char *key, const struct ls_hist *h)
{
	ls_buf_printf(b, ",\"%s\":", key);
	put_hist(b, h);
}

static void put_drain(struct ls_buf *b, const char *key, const struct ls_drain_stats *d)
{
	ls_buf_printf(b, ",\"%s\":{\"drains\":", key);
	put_u64(b, d->drains);
	kv_u64(b, "callbacks", d->callbacks);
	kv_u64(b, "starvation_episodes", d->starvation_episodes);
	kv_hist(b, "duration", &d->duration);
	kv_hist(b, "per_drain", &d->per_drain);
	ls_buf_puts(b, "}");
}

static void put_loop(struct ls_buf *b, const struct ls_loop_snapshot *l)
{
	ls_buf_puts(b, "{\"tid\":");
	put_u64(b, l->tid);
	kv_str(b, "name", l->name, sizeof(l->name));
	kv_str(b, "label", l->label, sizeof(l->label));
	kv_u64(b, "has", l->has);
	kv_u64(b, "iterations", l->iterations);
	kv_u64(b, "busy_ns", l->busy_ns);
	kv_u64(b, "idle_ns", l->idle_ns);
	ls_buf_puts(b, ",\"phase\":{");
	for (int p = 0; p < LS_NPHASES; p++) {
		ls_buf_printf(b, "%s\"%s\":", p ? "," : "", ls_phase_names[p]);
		put_hist(b, &l->phase[p]);
	}
	ls_buf_puts(b, "}");
	kv_hist(b, "iteration", &l->iteration);
	kv_hist(b, "delay", &l->delay);
	kv_hist(b, "poll_wait", &l->poll_wait);
	kv_hist(b, "timer_lateness", &l->timer_lateness);
	put_drain(b, "ticks", &l->ticks);
	put_drain(b, "microtasks", &l->microtasks);
	kv_u64(b, "stall_episodes", l->stall_episodes);
	kv_hist(b, "gc", &l->gc);
	ls_buf_puts(b, ",\"gc_phase_ns\":[");
	for (int p = 0; p <= LS_NPHASES; p++) {
		if (p)
			ls_buf_puts(b, ",");
		put_u64(b, l->gc_phase_ns[p]);
	}
	ls_buf_puts(b, "],\"live\":{\"state\":");
	put_str(b, NAME_OF(live_names, l->live_state), 16);
	kv_str(b, "phase", ls_phase_name(l->live_phase), 16);
	kv_str(b, "drain", NAME_OF(drain_names, l->live_drain), 16);
	kv_u64(b, "since_ns", l->live_since_ns);
	kv_u64(b, "phase_since_ns", l->live_phase_since_ns);
	kv_u64(b, "drain_since_ns", l->live_drain_since_ns);
	kv_u64(b, "drain_callbacks", l->live_drain_callbacks);
	if (l->live_where[0])
		kv_str(b, "where", l->live_where, sizeof(l->live_where));
	ls_buf_puts(b, "}");
	if (l->has & LS_HAS_NOT_POLLING)
		kv_hist(b, "not_polling", &l->not_polling);
	ls_buf_puts(b, "}");
}

/* A double without the locale's decimal comma (top calls setlocale). */
static void put_double(struct ls_buf *b, double v)
{
	char tmp[40];

	if (!isfinite(v))
		v = 0;
	snprintf(tmp, sizeof(tmp), "%.17g", v);
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.';
	ls_buf_puts(b, tmp);
}

void ls_snapshot_json_append(const struct ls_snapshot *s, struct ls_buf *b)
{
	ls_buf_printf(b, "{\"type\":\"snapshot\",\"v\":%d,\"hist\":\"%s\"", LS_JSON_VERSION, LS_JSON_HIST_LAYOUT);
	kv_u64(b, "mono_ns", s->mono_ns);
	kv_u64(b, "wall_ns", s->wall_ns);
	ls_buf_puts(b, ",\"self\":{\"attached_targets\":");
	put_u64(b, s->self.attached_targets);
	kv_u64(b, "probe_hits", s->self.probe_hits);
	kv_u64(b, "ringbuf_drops", s->self.ringbuf_drops);
	kv_u64(b, "episodes", s->self.episodes);
	ls_buf_puts(b, ",\"cpu_s\":");
	put_double(b, s->self.cpu_s);
	kv_u64(b, "rss_bytes", s->self.rss_bytes);
	ls_buf_puts(b, "},\"targets\":[");
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];

		ls_buf_printf(b, "%s{\"pid\":%d", i ? "," : "", t->pid);
		kv_str(b, "comm", t->comm, sizeof(t->comm));
		kv_str(b, "exe", t->exe, sizeof(t->exe));
		kv_str(b, "runtime", ls_runtime_name(t->runtime), 16);
		kv_str(b, "state", NAME_OF(state_names, t->state), 16);
		kv_str(b, "tier", t->tier, sizeof(t->tier));
		kv_str(b, "note", t->note, sizeof(t->note));
		kv_str(b, "version", t->version, sizeof(t->version));
		kv_str(b, "libuv_version", t->libuv_version, sizeof(t->libuv_version));
		kv_u64(b, "attached_ns", t->attached_ns);
		kv_u64(b, "exited_ns", t->exited_ns);
		ls_buf_puts(b, ",\"loops\":[");
		for (uint32_t j = 0; j < t->nloops && t->loops; j++) {
			if (j)
				ls_buf_puts(b, ",");
			put_loop(b, &t->loops[j]);
		}
		ls_buf_puts(b, "]}");
	}
	ls_buf_puts(b, "]}");
}

void ls_episode_json_append(const struct ls_episode *ep, struct ls_buf *b)
{
	ls_buf_printf(b, "{\"type\":\"episode\",\"v\":%d,\"pid\":%d", LS_JSON_VERSION, ep->pid);
	kv_u64(b, "tid", ep->tid);
	kv_str(b, "kind", ls_episode_kind_name(ep->kind), 32);
	kv_str(b, "phase", ls_phase_name(ep->phase), 16);
	kv_u64(b, "start_ns", ep->start_ns);
	kv_u64(b, "end_ns", ep->end_ns);
	kv_u64(b, "callbacks", ep->callbacks);
	if (ep->samples) {
		const struct ls_stack_set *set = ep->stacks;

		kv_u64(b, "samples", ep->samples);
		ls_buf_puts(b, ",\"stacks\":[");
		for (uint32_t i = 0; set && i < set->nstacks; i++) {
			const struct ls_stack_sample *st = &set->stacks[i];

			ls_buf_printf(b, "%s{\"share\":%.3f,\"count\":%llu,\"frames\":[", i ? "," : "",
				      set->total ? (double)st->count / (double)set->total : 0.0,
				      (unsigned long long)st->count);
			for (uint32_t k = 0; k < st->nframes; k++) {
				const struct ls_frame *f = &st->frames[k];

				ls_buf_printf(b, "%s{\"kind\":", k ? "," : "");
				put_str(b, ls_frame_kind_name(f->kind), 16);
				kv_str(b, "function", f->function ? f->function : "", 1024);
				if (f->file)
					kv_str(b, "file", f->file, 1024);
				if (f->line)
					kv_u64(b, "line", f->line);
				if (f->column)
					kv_u64(b, "column", f->column);
				if (f->module)
					kv_str(b, "module", f->module, 1024);
				ls_buf_puts(b, "}");
			}
			ls_buf_puts(b, "]}");
		}
		ls_buf_puts(b, "]");
	}
	ls_buf_puts(b, "}");
}

static int finish(struct ls_buf *b, char **out, size_t *len)
{
	if (b->oom || !b->p) {
		ls_buf_free(b);
		*out = NULL;
		*len = 0;
		return -ENOMEM;
	}
	*out = b->p;
	*len = b->len;
	return 0;
}

int ls_snapshot_to_json(const struct ls_snapshot *s, char **out, size_t *len)
{
	struct ls_buf b = { 0 };

	ls_snapshot_json_append(s, &b);
	return finish(&b, out, len);
}

int ls_episode_to_json(const struct ls_episode *ep, char **out, size_t *len)
{
	struct ls_buf b = { 0 };

	ls_episode_json_append(ep, &b);
	return finish(&b, out, len);
}

/* ---------------------------------------------------------------- decoding */

/* An exact unsigned integer: a JSON number that is integral and <= 2^53, or a
 * string of decimal digits. */
static int item_u64(const cJSON *it, uint64_t *v)
{
	if (cJSON_IsNumber(it)) {
		double d = it->valuedouble;
		if (!(d >= 0) || d > (double)EXACT_MAX || d != floor(d))
			return -EINVAL;
		*v = (uint64_t)d;
		return 0;
	}
	if (cJSON_IsString(it)) {
		const char *s = it->valuestring;
		uint64_t x = 0;
		if (!*s || strlen(s) > 20)
			return -EINVAL;
		for (; *s; s++) {
			if (*s < '0' || *s > '9' || x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
				return -EINVAL;
			x = x * 10 + (uint64_t)(*s - '0');
		}
		*v = x;
		return 0;
	}
	return -EINVAL;
}

/* A missing item leaves *v alone (fields added later decode as zero). */
static int get_u64(const cJSON *obj, const char *key, uint64_t *v)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	return it ? item_u64(it, v) : 0;
}

static int get_u32(const cJSON *obj, const char *key, uint32_t *v)
{
	uint64_t x = *v;
	int err = get_u64(obj, key, &x);

	if (err || x > UINT32_MAX)
		return -EINVAL;
	*v = (uint32_t)x;
	return 0;
}

static int get_str(const cJSON *obj, const char *key, char *dst, size_t size)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		return 0;
	if (!cJSON_IsString(it))
		return -EINVAL;
	snprintf(dst, size, "%s", it->valuestring);
	return 0;
}

/* A name from a table into its index; "?" or unknown is -EINVAL. */
static int get_enum(const cJSON *obj, const char *key, const char *const *names, uint32_t n, uint32_t *v)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		return 0;
	if (!cJSON_IsString(it))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], it->valuestring)) {
			*v = i;
			return 0;
		}
	return -EINVAL;
}

static int get_phase(const cJSON *obj, const char *key, uint32_t *v)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (it && cJSON_IsString(it) && !strcmp(it->valuestring, "none")) {
		*v = LS_PHASE_NONE;
		return 0;
	}
	return get_enum(obj, key, ls_phase_names, LS_NPHASES, v);
}

static int get_hist(const cJSON *obj, const char *key, struct ls_hist *h)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key), *bk, *pair;
	int err = 0;

	if (!o)
		return 0;
	if (!cJSON_IsObject(o))
		return -EINVAL;
	{
		/* struct ls_hist holds __u64 (unsigned long long): go through uint64_t. */
		uint64_t count = 0, sum = 0, max = 0;
		err |= get_u64(o, "count", &count);
		err |= get_u64(o, "sum", &sum);
		err |= get_u64(o, "max", &max);
		if (err)
			return -EINVAL;
		h->count = count;
		h->sum = sum;
		h->max = max;
	}
	bk = cJSON_GetObjectItemCaseSensitive(o, "buckets");
	if (!bk)
		return 0;
	if (!cJSON_IsArray(bk))
		return -EINVAL;
	cJSON_ArrayForEach(pair, bk) {
		const cJSON *ix = cJSON_GetArrayItem(pair, 0), *cn = cJSON_GetArrayItem(pair, 1);
		uint64_t c = 0;

		if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsNumber(ix) ||
		    ix->valuedouble < 0 || ix->valuedouble >= LS_HIST_BUCKETS || ix->valuedouble != floor(ix->valuedouble) ||
		    item_u64(cn, &c))
			return -EINVAL;
		h->bucket[(uint32_t)ix->valuedouble] = c;
	}
	return 0;
}

static int get_drain(const cJSON *obj, const char *key, struct ls_drain_stats *d)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
	int err = 0;

	if (!o)
		return 0;
	if (!cJSON_IsObject(o))
		return -EINVAL;
	err |= get_u64(o, "drains", &d->drains);
	err |= get_u64(o, "callbacks", &d->callbacks);
	err |= get_u64(o, "starvation_episodes", &d->starvation_episodes);
	err |= get_hist(o, "duration", &d->duration);
	err |= get_hist(o, "per_drain", &d->per_drain);
	return err ? -EINVAL : 0;
}

static int get_loop(const cJSON *o, struct ls_loop_snapshot *l)
{
	const cJSON *ph, *gp, *live;
	int err = 0;

	if (!cJSON_IsObject(o))
		return -EINVAL;
	l->live_phase = LS_PHASE_NONE;
	err |= get_u32(o, "tid", &l->tid);
	err |= get_str(o, "name", l->name, sizeof(l->name));
	err |= get_str(o, "label", l->label, sizeof(l->label));
	err |= get_u32(o, "has", &l->has);
	err |= get_u64(o, "iterations", &l->iterations);
	err |= get_u64(o, "busy_ns", &l->busy_ns);
	err |= get_u64(o, "idle_ns", &l->idle_ns);
	ph = cJSON_GetObjectItemCaseSensitive(o, "phase");
	if (ph) {
		if (!cJSON_IsObject(ph))
			return -EINVAL;
		for (int p = 0; p < LS_NPHASES; p++)
			err |= get_hist(ph, ls_phase_names[p], &l->phase[p]);
	}
	err |= get_hist(o, "iteration", &l->iteration);
	err |= get_hist(o, "delay", &l->delay);
	err |= get_hist(o, "poll_wait", &l->poll_wait);
	err |= get_hist(o, "timer_lateness", &l->timer_lateness);
	err |= get_drain(o, "ticks", &l->ticks);
	err |= get_drain(o, "microtasks", &l->microtasks);
	err |= get_u64(o, "stall_episodes", &l->stall_episodes);
	err |= get_hist(o, "gc", &l->gc);
	err |= get_hist(o, "not_polling", &l->not_polling);
	gp = cJSON_GetObjectItemCaseSensitive(o, "gc_phase_ns");
	if (gp) {
		const cJSON *it;
		int p = 0;
		if (!cJSON_IsArray(gp) || cJSON_GetArraySize(gp) > LS_NPHASES + 1)
			return -EINVAL;
		cJSON_ArrayForEach(it, gp) {
			if (item_u64(it, &l->gc_phase_ns[p++]))
				return -EINVAL;
		}
	}
	live = cJSON_GetObjectItemCaseSensitive(o, "live");
	if (live) {
		if (!cJSON_IsObject(live))
			return -EINVAL;
		err |= get_enum(live, "state", live_names, 3, &l->live_state);
		err |= get_phase(live, "phase", &l->live_phase);
		err |= get_enum(live, "drain", drain_names, 3, &l->live_drain);
		err |= get_u64(live, "since_ns", &l->live_since_ns);
		err |= get_u64(live, "phase_since_ns", &l->live_phase_since_ns);
		err |= get_u64(live, "drain_since_ns", &l->live_drain_since_ns);
		err |= get_u64(live, "drain_callbacks", &l->live_drain_callbacks);
		err |= get_str(live, "where", l->live_where, sizeof(l->live_where));
	}
	return err ? -EINVAL : 0;
}

static int get_target(const cJSON *o, struct ls_target_snapshot *t)
{
	static const char *const rt_names[] = { [LS_RT_REFERENCE] = "reference", [LS_RT_NODE] = "node",
						[LS_RT_LIBUV] = "libuv" };
	const cJSON *pid, *loops, *it;
	int err = 0, n;

	if (!cJSON_IsObject(o))
		return -EINVAL;
	pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
	if (!cJSON_IsNumber(pid) || pid->valuedouble != floor(pid->valuedouble) || pid->valuedouble < INT32_MIN ||
	    pid->valuedouble > INT32_MAX)
		return -EINVAL;
	t->pid = (int32_t)pid->valuedouble;
	err |= get_str(o, "comm", t->comm, sizeof(t->comm));
	err |= get_str(o, "exe", t->exe, sizeof(t->exe));
	err |= get_enum(o, "runtime", rt_names, 3, &t->runtime);
	err |= get_enum(o, "state", state_names, 3, &t->state);
	err |= get_str(o, "tier", t->tier, sizeof(t->tier));
	err |= get_str(o, "note", t->note, sizeof(t->note));
	err |= get_str(o, "version", t->version, sizeof(t->version));
	err |= get_str(o, "libuv_version", t->libuv_version, sizeof(t->libuv_version));
	err |= get_u64(o, "attached_ns", &t->attached_ns);
	err |= get_u64(o, "exited_ns", &t->exited_ns);
	if (err)
		return -EINVAL;
	loops = cJSON_GetObjectItemCaseSensitive(o, "loops");
	if (!loops)
		return 0;
	if (!cJSON_IsArray(loops))
		return -EINVAL;
	n = cJSON_GetArraySize(loops);
	if (n <= 0)
		return 0;
	t->loops = calloc((size_t)n, sizeof(*t->loops));
	if (!t->loops)
		return -ENOMEM;
	t->nloops = (uint32_t)n;
	n = 0;
	cJSON_ArrayForEach(it, loops) {
		err = get_loop(it, &t->loops[n++]);
		if (err)
			return err;
	}
	return 0;
}

void ls_snapjson_free(struct ls_snapshot *s)
{
	for (uint32_t i = 0; s->targets && i < s->ntargets; i++)
		free(s->targets[i].loops);
	free(s->targets);
	memset(s, 0, sizeof(*s));
}

/* Parse and check "type" and "v". */
static cJSON *parse_line(const char *line, size_t len, const char *type)
{
	cJSON *root = cJSON_ParseWithLength(line, len);
	const cJSON *t, *v;

	if (!root)
		return NULL;
	t = cJSON_GetObjectItemCaseSensitive(root, "type");
	v = cJSON_GetObjectItemCaseSensitive(root, "v");
	if (!cJSON_IsObject(root) || !cJSON_IsString(t) || strcmp(t->valuestring, type) ||
	    !cJSON_IsNumber(v) || v->valuedouble != LS_JSON_VERSION) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int ls_snapshot_from_json(const char *line, size_t len, struct ls_snapshot *out)
{
	cJSON *root;
	const cJSON *hl, *self, *targets, *it;
	int err = 0, n;

	memset(out, 0, sizeof(*out));
	root = parse_line(line, len, "snapshot");
	if (!root)
		return -EINVAL;
	hl = cJSON_GetObjectItemCaseSensitive(root, "hist");
	if (!cJSON_IsString(hl) || strcmp(hl->valuestring, LS_JSON_HIST_LAYOUT)) {
		err = -EINVAL;
		goto cleanup;
	}
	if (get_u64(root, "mono_ns", &out->mono_ns) || get_u64(root, "wall_ns", &out->wall_ns)) {
		err = -EINVAL;
		goto cleanup;
	}
	self = cJSON_GetObjectItemCaseSensitive(root, "self");
	if (self) {
		const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(self, "cpu_s");
		if (!cJSON_IsObject(self) || get_u32(self, "attached_targets", &out->self.attached_targets) ||
		    get_u64(self, "probe_hits", &out->self.probe_hits) ||
		    get_u64(self, "ringbuf_drops", &out->self.ringbuf_drops) ||
		    get_u64(self, "episodes", &out->self.episodes) ||
		    get_u64(self, "rss_bytes", &out->self.rss_bytes) || (cpu && !cJSON_IsNumber(cpu))) {
			err = -EINVAL;
			goto cleanup;
		}
		if (cpu)
			out->self.cpu_s = cpu->valuedouble;
	}
	targets = cJSON_GetObjectItemCaseSensitive(root, "targets");
	if (!targets)
		goto cleanup;
	if (!cJSON_IsArray(targets)) {
		err = -EINVAL;
		goto cleanup;
	}
	n = cJSON_GetArraySize(targets);
	if (n <= 0)
		goto cleanup;
	out->targets = calloc((size_t)n, sizeof(*out->targets));
	if (!out->targets) {
		err = -ENOMEM;
		goto cleanup;
	}
	out->ntargets = (uint32_t)n;
	n = 0;
	cJSON_ArrayForEach(it, targets) {
		err = get_target(it, &out->targets[n++]);
		if (err)
			goto cleanup;
	}
cleanup:
	cJSON_Delete(root);
	if (err)
		ls_snapjson_free(out);
	return err;
}

#define MAX_JSON_FRAMES 256

/* "stacks" of an episode line into a set owned by the agent's stack table. */
static int get_stacks(const cJSON *root, struct ls_episode *out)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "stacks"), *st;
	struct ls_stacktab *tab;
	struct ls_stack_agg *agg;
	struct ls_frame *fr;
	uint64_t samples = 0;
	int err = 0;

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr) || get_u64(root, "samples", &samples) || samples > UINT32_MAX)
		return -EINVAL;
	tab = ls_stacks_table();
	agg = ls_stack_agg_new();
	fr = calloc(MAX_JSON_FRAMES, sizeof(*fr));
	if (!tab || !agg || !fr) {
		err = -ENOMEM;
		goto cleanup;
	}
	cJSON_ArrayForEach(st, arr) {
		const cJSON *frames = cJSON_GetObjectItemCaseSensitive(st, "frames"), *f;
		uint64_t count = 0;
		uint32_t n = 0;

		if (!cJSON_IsObject(st) || get_u64(st, "count", &count) || !cJSON_IsArray(frames)) {
			err = -EINVAL;
			goto cleanup;
		}
		cJSON_ArrayForEach(f, frames) {
			static const char *const kinds[] = { [LS_FRAME_JS] = "js", [LS_FRAME_NATIVE] = "native",
							     [LS_FRAME_KERNEL] = "kernel" };
			const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "function");
			const cJSON *file = cJSON_GetObjectItemCaseSensitive(f, "file");
			const cJSON *mod = cJSON_GetObjectItemCaseSensitive(f, "module");
			uint32_t kind = 0, line = 0, col = 0;

			if (n == MAX_JSON_FRAMES || !cJSON_IsObject(f) || !cJSON_IsString(fn) ||
			    get_enum(f, "kind", kinds, 3, &kind) || get_u32(f, "line", &line) || get_u32(f, "column", &col) ||
			    (file && !cJSON_IsString(file)) || (mod && !cJSON_IsString(mod))) {
				err = -EINVAL;
				goto cleanup;
			}
			fr[n++] = (struct ls_frame){
				.kind = (enum ls_frame_kind)kind, .function = ls_stacktab_str(tab, fn->valuestring),
				.file = file ? ls_stacktab_str(tab, file->valuestring) : NULL, .line = line, .column = col,
				.module = mod ? ls_stacktab_str(tab, mod->valuestring) : NULL,
			};
		}
		if (count && (err = ls_stack_agg_add(agg, fr, n, count)))
			goto cleanup;
	}
	out->samples = (uint32_t)samples;
	out->stacks = ls_stack_agg_total(agg) ? ls_stack_agg_finish(agg, tab, UINT32_MAX) : NULL;
cleanup:
	free(fr);
	ls_stack_agg_free(agg);
	return err;
}

int ls_episode_from_json(const char *line, size_t len, struct ls_episode *out)
{
	cJSON *root;
	const cJSON *pid;
	int err = 0;

	memset(out, 0, sizeof(*out));
	root = parse_line(line, len, "episode");
	if (!root)
		return -EINVAL;
	pid = cJSON_GetObjectItemCaseSensitive(root, "pid");
	out->phase = LS_PHASE_NONE;
	if (!cJSON_IsNumber(pid) || pid->valuedouble != floor(pid->valuedouble) || pid->valuedouble < INT32_MIN ||
	    pid->valuedouble > INT32_MAX) {
		err = -EINVAL;
		goto cleanup;
	}
	out->pid = (int32_t)pid->valuedouble;
	{
		const char *kinds[LS_EP_NKINDS];
		for (uint32_t k = 0; k < LS_EP_NKINDS; k++)
			kinds[k] = ls_episode_kind_name(k);
		if (!cJSON_GetObjectItemCaseSensitive(root, "kind"))
			err = -EINVAL;
		err |= get_enum(root, "kind", kinds, LS_EP_NKINDS, &out->kind);
	}
	err |= get_u32(root, "tid", &out->tid);
	err |= get_phase(root, "phase", &out->phase);
	err |= get_u64(root, "start_ns", &out->start_ns);
	err |= get_u64(root, "end_ns", &out->end_ns);
	err |= get_u64(root, "callbacks", &out->callbacks);
	if (!err)
		err = get_stacks(root, out);
	if (err)
		err = err == -ENOMEM ? err : -EINVAL;
cleanup:
	cJSON_Delete(root);
	if (err)
		memset(out, 0, sizeof(*out));
	return err;
}

int ls_json_type(const char *line, size_t len)
{
	static const char snap[] = "{\"type\":\"snapshot\"", ep[] = "{\"type\":\"episode\"";
	cJSON *root;
	const cJSON *t;
	int type;

	/* Our own encoder puts "type" first: answer without parsing the rest. */
	if (len >= sizeof(snap) - 1 && !memcmp(line, snap, sizeof(snap) - 1))
		return LS_JSON_SNAPSHOT;
	if (len >= sizeof(ep) - 1 && !memcmp(line, ep, sizeof(ep) - 1))
		return LS_JSON_EPISODE;
	root = cJSON_ParseWithLength(line, len);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	t = cJSON_GetObjectItemCaseSensitive(root, "type");
	type = !cJSON_IsString(t) ? LS_JSON_UNKNOWN :
	       !strcmp(t->valuestring, "snapshot") ? LS_JSON_SNAPSHOT :
	       !strcmp(t->valuestring, "episode") ? LS_JSON_EPISODE : LS_JSON_UNKNOWN;
	cJSON_Delete(root);
	return type;
}
