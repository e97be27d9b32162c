/* buf.c: the growable byte buffer every wire format renders into (see buf.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int ls_buf_reserve(struct ls_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return -ENOMEM;
	need = b->len + extra + 1;	/* room for the terminating NUL */
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void ls_buf_append(struct ls_buf *b, const void *data, size_t len)
{
	if (ls_buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = 0;
}

void ls_buf_puts(struct ls_buf *b, const char *s)
{
	ls_buf_append(b, s, strlen(s));
}

static void buf_vprintf(struct ls_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	if (ls_buf_reserve(b, 64))
		return;
	va_copy(ap2, ap);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		if (ls_buf_reserve(b, (size_t)n))
			return;
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void ls_buf_printf(struct ls_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *ls_fmt_u64(char *w, uint64_t v)
{
	char tmp[20];	/* UINT64_MAX has 20 digits */
	int i = (int)sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(w, tmp + i, sizeof(tmp) - (size_t)i);
	return w + sizeof(tmp) - i;
}

void ls_buf_u64(struct ls_buf *b, uint64_t v)
{
	if (ls_buf_reserve(b, 20))
		return;
	b->len = (size_t)(ls_fmt_u64(b->p + b->len, v) - b->p);
	b->p[b->len] = 0;
}

void ls_buf_consume(struct ls_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p)
		b->p[b->len] = 0;
}

void ls_buf_reset(struct ls_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = 0;
}

void ls_buf_free(struct ls_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
