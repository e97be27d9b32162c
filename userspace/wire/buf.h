/* buf.h: the growable byte buffer every wire format renders into, and gzip of one.
 * No I/O: prom.c, snapjson.c, remote.c and the HTTP server share it. */
#ifndef LS_BUF_H
#define LS_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. Zero-initialise; p is NUL-terminated whenever len > 0
 * or after any successful append. On allocation failure the buffer is marked
 * failed (oom = 1), further appends are ignored, and the owner checks oom once at
 * the end instead of after every append. */
struct ls_buf {
	char *p;	/* public, read-only */
	size_t len;	/* public, read-only */
	size_t cap;	/* private */
	int oom;	/* public: set once an allocation failed */
};

int ls_buf_reserve(struct ls_buf *b, size_t extra);	/* 0 or -ENOMEM */
void ls_buf_append(struct ls_buf *b, const void *data, size_t len);
void ls_buf_puts(struct ls_buf *b, const char *s);
void ls_buf_printf(struct ls_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ls_buf_u64(struct ls_buf *b, uint64_t v);		/* decimal, no locale */
char *ls_fmt_u64(char *w, uint64_t v);		/* the same at w (room for 20): returns the end */
void ls_buf_consume(struct ls_buf *b, size_t n);	/* drop n bytes from the front */
void ls_buf_reset(struct ls_buf *b);			/* len = 0, keeps the memory */
void ls_buf_free(struct ls_buf *b);

/* gzip (RFC 1952) of in into out (appended). 0 or -ENOMEM / -EIO. */
int ls_gzip(const void *in, size_t len, struct ls_buf *out);

#endif /* LS_BUF_H */
