/* profile_out.c: choosing a profile format, cleaning names, and folded stacks.
 * The flame graph is in flamegraph.c, pprof in pprof.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile_out.h"

static const struct {
	const char *ext;
	int fmt;
} exts[] = {
	{ ".folded", LS_PROFILE_FOLDED },
	{ ".svg", LS_PROFILE_SVG },
	{ ".pb.gz", LS_PROFILE_PPROF },
};

int ls_profile_format_of(const char *path)
{
	size_t len = path ? strlen(path) : 0;

	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t el = strlen(exts[i].ext);
		/* A bare ".svg" names no file. */
		if (len > el && path[len - el - 1] != '/' && !strcmp(path + len - el, exts[i].ext))
			return exts[i].fmt;
	}
	return -EINVAL;
}

const char *ls_profile_format_exts(void)
{
	return ".folded, .svg or .pb.gz";
}

uint64_t __ls_sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

int __ls_prof_grow(void *arr, size_t *cap, size_t n, size_t size)
{
	size_t nc = *cap ? *cap : 64;
	char *old, *q;

	if (n <= *cap)
		return 0;
	while (nc < n)
		nc *= 2;
	/* arr points to some T *; memcpy reads and writes it without type punning. */
	memcpy(&old, arr, sizeof(old));
	q = realloc(old, nc * size);
	if (!q)
		return -ENOMEM;
	memset(q + *cap * size, 0, (nc - *cap) * size);
	memcpy(arr, &q, sizeof(q));
	*cap = nc;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not one
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static int utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	int n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)	/* the NUL terminator stops here too */
			return 0;
	return n;
}

void __ls_prof_clean(struct ls_buf *b, const char *str, int mode)
{
	const unsigned char *s = (const unsigned char *)str;

	if (!s)
		return;
	while (*s) {
		int n = utf8_len(s);

		if (n == 0) {
			ls_buf_append(b, "\xef\xbf\xbd", 3);
			s++;
			continue;
		}
		if (n == 1) {
			char c = (char)*s;
			if (*s < 0x20 || *s == 0x7f)
				c = '?';
			else if (c == ';' && mode == __LS_CLEAN_FOLDED)
				c = ':';
			ls_buf_append(b, &c, 1);
		} else if ((n == 2 && s[0] == 0xc2 && s[1] < 0xa0) ||			/* C1 controls */
			   (n == 3 && s[0] == 0xef && s[1] == 0xbf && s[2] >= 0xbe)) {	/* U+FFFE/F */
			ls_buf_append(b, "?", 1);
		} else {
			ls_buf_append(b, s, (size_t)n);
		}
		s += n;
	}
}

void __ls_prof_label(struct ls_buf *b, const struct ls_frame *f, int mode)
{
	if (f->function && *f->function)
		__ls_prof_clean(b, f->function, mode);
	else
		ls_buf_puts(b, "[unknown]");
	if (f->kind == LS_FRAME_JS && f->file && *f->file) {
		ls_buf_puts(b, " ");
		__ls_prof_clean(b, f->file, mode);
		if (f->line)
			ls_buf_printf(b, ":%u", f->line);
	}
	/* flamegraph.pl's palettes colour "_[k]" frames as kernel ones. */
	if (f->kind == LS_FRAME_KERNEL && mode == __LS_CLEAN_FOLDED)
		ls_buf_puts(b, "_[k]");
}

/* ---------------------------------------------------------------- interning */

uint32_t __ls_prof_hash(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t h = 2166136261u;

	while (len--)
		h = (h ^ *s++) * 16777619u;
	return h;
}

const char *__ls_intern_key(const struct __ls_intern *t, size_t id, size_t *len)
{
	*len = t->off[id + 1] - t->off[id];
	return t->keys.p + t->off[id];
}

static int intern_grow(struct __ls_intern *t)
{
	size_t ns = t->nslots ? t->nslots * 2 : 64;
	uint32_t *slots = calloc(ns, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t id = 0; id < t->n; id++) {
		size_t len;
		const char *k = __ls_intern_key(t, id, &len);
		size_t i = __ls_prof_hash(k, len) & (ns - 1);

		while (slots[i])
			i = (i + 1) & (ns - 1);
		slots[i] = (uint32_t)id + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = ns;
	return 0;
}

long __ls_intern(struct __ls_intern *t, const void *key, size_t len, int *added)
{
	size_t i;

	*added = 0;
	if (t->n + 1 >= UINT32_MAX)
		return -ENOMEM;
	/* Load factor at most 1/2. */
	if ((t->n + 1) * 2 > t->nslots && intern_grow(t))
		return -ENOMEM;
	for (i = __ls_prof_hash(key, len) & (t->nslots - 1); t->slots[i]; i = (i + 1) & (t->nslots - 1)) {
		size_t kl;
		const char *k = __ls_intern_key(t, t->slots[i] - 1, &kl);

		if (kl == len && !memcmp(k, key, len))
			return (long)t->slots[i] - 1;
	}
	if (__ls_prof_grow(&t->off, &t->cap_ids, t->n + 2, sizeof(*t->off)))
		return -ENOMEM;
	if (t->n == 0)
		t->off[0] = 0;
	ls_buf_append(&t->keys, key, len);
	if (t->keys.oom)
		return -ENOMEM;
	t->off[t->n + 1] = t->keys.len;
	t->slots[i] = (uint32_t)t->n + 1;
	*added = 1;
	return (long)t->n++;
}

void __ls_intern_free(struct __ls_intern *t)
{
	ls_buf_free(&t->keys);
	free(t->off);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* ---------------------------------------------------------------- folded */

static const struct __ls_intern *sort_tab;

static int cmp_key(const void *a, const void *b)
{
	size_t la, lb;
	const char *ka = __ls_intern_key(sort_tab, *(const size_t *)a, &la);
	const char *kb = __ls_intern_key(sort_tab, *(const size_t *)b, &lb);
	int c = memcmp(ka, kb, la < lb ? la : lb);

	return c ? c : (la > lb) - (la < lb);
}

/* One line per distinct cleaned stack (two stacks may clean to the same text), sorted,
 * so the output does not depend on the order of the input. */
static int profile_folded(const struct ls_stack_sample *s, size_t n, struct ls_buf *out)
{
	struct __ls_intern lines = { 0 };
	struct ls_buf line = { 0 };
	uint64_t *counts = NULL;
	size_t *order = NULL, cap = 0;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		int added;
		long id;

		if (!s[i].count)
			continue;
		ls_buf_reset(&line);
		for (uint32_t k = s[i].nframes; k-- > 0;) {
			__ls_prof_label(&line, &s[i].frames[k], __LS_CLEAN_FOLDED);
			if (k)
				ls_buf_puts(&line, ";");
		}
		if (!s[i].nframes)
			ls_buf_puts(&line, "[no frames]");
		if (line.oom) {
			err = -ENOMEM;
			goto cleanup;
		}
		id = __ls_intern(&lines, line.p, line.len, &added);
		if (id < 0) {
			err = (int)id;
			goto cleanup;
		}
		if (__ls_prof_grow(&counts, &cap, (size_t)id + 1, sizeof(*counts))) {
			err = -ENOMEM;
			goto cleanup;
		}
		counts[id] = added ? s[i].count : __ls_sat_add(counts[id], s[i].count);
	}
	if (!lines.n)
		goto cleanup;
	order = malloc(lines.n * sizeof(*order));
	if (!order) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < lines.n; i++)
		order[i] = i;
	sort_tab = &lines;
	qsort(order, lines.n, sizeof(*order), cmp_key);
	for (size_t i = 0; i < lines.n; i++) {
		size_t len;
		const char *k = __ls_intern_key(&lines, order[i], &len);

		ls_buf_append(out, k, len);
		ls_buf_puts(out, " ");
		ls_buf_u64(out, counts[order[i]]);
		ls_buf_puts(out, "\n");
	}
	if (out->oom)
		err = -ENOMEM;
cleanup:
	free(order);
	free(counts);
	ls_buf_free(&line);
	__ls_intern_free(&lines);
	return err;
}

/* ---------------------------------------------------------------- dispatch */

const struct ls_profile_meta ls_profile_meta_none;

int ls_profile_render(int fmt, const struct ls_stack_sample *s, size_t n,
		      const struct ls_profile_meta *meta, struct ls_buf *out)
{
	switch (fmt) {
	case LS_PROFILE_FOLDED:
		return profile_folded(s, n, out);
	case LS_PROFILE_SVG:
		return ls_profile_svg(s, n, meta, out);
	case LS_PROFILE_PPROF:
		return ls_profile_pprof(s, n, meta, out);
	}
	return -EINVAL;
}

int ls_profile_write(FILE *f, int fmt, const struct ls_stack_sample *s, size_t n,
		     const struct ls_profile_meta *meta)
{
	struct ls_buf b = { 0 };
	int err;

	err = ls_profile_render(fmt, s, n, meta, &b);
	if (err)
		goto cleanup;
	errno = 0;
	if ((b.len && fwrite(b.p, 1, b.len, f) != b.len) || fflush(f)) {
		err = errno ? -errno : -EIO;
		goto cleanup;
	}
cleanup:
	ls_buf_free(&b);
	return err;
}

/* ---------------------------------------------------------------- files */

void ls_profile_file_abort(struct ls_profile_file *pf)
{
	if (pf->f)
		fclose(pf->f);
	if (pf->tmp)
		unlink(pf->tmp);
	free(pf->tmp);
	free(pf->path);
	pf->f = NULL;
	pf->tmp = pf->path = NULL;
}

int ls_profile_file_open(struct ls_profile_file *pf, const char *path, char *err, size_t errlen)
{
	int fd = -1, e;

	memset(pf, 0, sizeof(*pf));
	pf->fmt = ls_profile_format_of(path);
	if (pf->fmt < 0) {
		snprintf(err, errlen, "-o %s: the format is taken from the extension; name the file %s",
			 path ? path : "", ls_profile_format_exts());
		return -EINVAL;
	}
	pf->path = strdup(path);
	if (!pf->path || asprintf(&pf->tmp, "%s.tmp%d", path, (int)getpid()) < 0) {
		pf->tmp = NULL;
		e = -ENOMEM;
		goto fail;
	}
	/* Our own name rather than mkstemp's, whose 0600 would ignore the umask. */
	fd = open(pf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0) {
		e = -errno;
		free(pf->tmp);
		pf->tmp = NULL;
		goto fail;
	}
	pf->f = fdopen(fd, "w");
	if (!pf->f) {
		e = -errno;
		close(fd);
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot write %s: %s; choose a writable place for -o", path, strerror(-e));
	ls_profile_file_abort(pf);
	return e;
}

int ls_profile_file_commit(struct ls_profile_file *pf, const struct ls_stack_sample *s, size_t n,
			   const struct ls_profile_meta *meta, char *err, size_t errlen)
{
	int e;

	if (!pf->f) {
		snprintf(err, errlen, "internal error: profile file not open");
		return -EBADF;
	}
	e = ls_profile_write(pf->f, pf->fmt, s, n, meta);
	if (!e && fsync(fileno(pf->f)) && errno != EINVAL)
		e = -errno;
	if (fclose(pf->f) && !e)
		e = errno ? -errno : -EIO;
	pf->f = NULL;
	if (!e && rename(pf->tmp, pf->path))
		e = -errno;
	if (e) {
		snprintf(err, errlen, "writing %s failed: %s; nothing was written", pf->path, strerror(-e));
		ls_profile_file_abort(pf);
		return e;
	}
	free(pf->tmp);
	pf->tmp = NULL;
	ls_profile_file_abort(pf);
	return 0;
}
