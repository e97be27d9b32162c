/* http_parse.c: the HTTP/1.1 request-head parser; pure functions over bytes (see http.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* ---------------------------------------------------------------- parsing */

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Case-insensitive compare of [s, s+n) with a NUL-terminated lower-case word. */
static int word_eq(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && !strncasecmp(s, w, n);
}

/* 1 if the q parameter text (after "q=") means zero. */
static int q_is_zero(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '0')
		i++;
	else
		return 0;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] == '0'; i++)
			;
	return i == n;
}

int ls_http_accepts_gzip(const char *v)
{
	int gz = -1, star = -1;

	while (*v) {
		const char *name, *params, *end;
		size_t nlen;
		int allowed = 1;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (!*v)
			break;
		name = v;
		while (*v && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
			v++;
		nlen = (size_t)(v - name);
		params = v;
		while (*v && *v != ',')
			v++;
		end = v;
		/* Look for ;q=... among the parameters. */
		for (const char *p = params; p < end; p++) {
			if (*p != ';')
				continue;
			p++;
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p + 1 < end && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
				const char *q = p + 2, *qe = q;
				while (qe < end && *qe != ';' && *qe != ' ' && *qe != '\t')
					qe++;
				allowed = !q_is_zero(q, (size_t)(qe - q));
			}
		}
		if (word_eq(name, nlen, "gzip") || word_eq(name, nlen, "x-gzip"))
			gz = allowed;
		else if (word_eq(name, nlen, "*"))
			star = allowed;
	}
	return gz >= 0 ? gz : star > 0;
}

/* Does a comma-separated header value hold token w? */
static int has_token(const char *v, size_t n, const char *w)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (word_eq(v + s, e - s, w))
			return 1;
	}
	return 0;
}

/* Standard base64 (RFC 4648, padding optional) of in[0..len) into out, then split at the
 * first ':' into user (out) and password (after it, in the same buffer). *ok = 1 when
 * the decoded text had a ':' and fitted. Returns the decoded length or -1. */
int ls_base64_decode(const char *in, size_t len, char *out, size_t cap, int *ok)
{
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	*ok = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		int v = ch >= 'A' && ch <= 'Z' ? ch - 'A' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26 :
			ch >= '0' && ch <= '9' ? ch - '0' + 52 : ch == '+' ? 62 : ch == '/' ? 63 : -1;

		if (ch == '=') {
			for (size_t k = i; k < len; k++)
				if (in[k] != '=')
					return -1;
			break;
		}
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)(acc >> bits & 0xff);
		}
	}
	out[n] = 0;
	if (memchr(out, 0, n))
		return -1;	/* a NUL inside: not text */
	*ok = strchr(out, ':') != NULL;
	return (int)n;
}

/* What the header fields say, gathered while reading them and judged once the head is read. */
struct head_fields {
	int nhost, conn_close, conn_keep, have_cl, have_te;
	uint64_t cl;
};

/* One header field line: its name and its value without the blanks around it. */
struct field {
	const char *name, *val;
	size_t nlen, vlen;
};

/* Where the head that begins at start ends. Returns 1 with *head_end just past its
 * blank line, 0 when more bytes are needed, or -414/-431 when it exceeds max_head. */
static int find_head_end(const char *buf, size_t len, size_t start, size_t max_head, size_t *head_end)
{
	size_t scan;

	*head_end = 0;
	/* Find the blank line ending the head; a lone LF is accepted as a line end. */
	scan = len < max_head + 4 ? len : max_head + 4;
	for (size_t k = start; k < scan; k++) {
		if (buf[k] != '\n')
			continue;
		if (k + 1 < scan && buf[k + 1] == '\n') {
			*head_end = k + 2;
			break;
		}
		if (k + 2 < scan && buf[k + 1] == '\r' && buf[k + 2] == '\n') {
			*head_end = k + 3;
			break;
		}
	}
	if (!*head_end && len <= max_head)
		return 0;
	if (!*head_end || *head_end - start > max_head) {
		/* Too large: a request line that alone does not fit is a target too long
		 * (414), anything else too many header bytes (431). */
		const char *nl = memchr(buf + start, '\n', scan - start);
		return nl ? -431 : -414;
	}
	return 1;
}

/* Split the request target [t, te) at '?' into req->path and req->query; -414 when
 * either does not fit, else 0. */
static int split_target(const char *buf, size_t t, size_t te, struct ls_http_req *req)
{
	size_t q = t;

	while (q < te && buf[q] != '?')
		q++;
	if (q - t >= sizeof(req->path) || (q < te && te - q - 1 >= sizeof(req->query)))
		return -414;
	memcpy(req->path, buf + t, q - t);
	if (q < te)
		memcpy(req->query, buf + q + 1, te - q - 1);
	return 0;
}

/* Request line: METHOD SP target SP HTTP/1.d, read from *pos into req; *pos moves past
 * its line end. Returns 0, or -400, -414 or -505. */
static int parse_request_line(const char *buf, size_t *pos, size_t head_end, struct ls_http_req *req)
{
	size_t i = *pos, m = i, t, te, v;
	int r;

	while (i < head_end && is_tchar((unsigned char)buf[i]))
		i++;
	if (i == m || i - m >= sizeof(req->method_name) || buf[i] != ' ')
		return -400;
	memcpy(req->method_name, buf + m, i - m);
	req->method = !strcmp(req->method_name, "GET") ? LS_HTTP_GET :
		      !strcmp(req->method_name, "HEAD") ? LS_HTTP_HEAD : LS_HTTP_OTHER;
	t = ++i;
	while (i < head_end && (unsigned char)buf[i] > ' ' && buf[i] != 0x7f)
		i++;
	te = i;
	if (te == t || buf[i] != ' ')
		return -400;
	if (buf[t] != '/' && !(te - t == 1 && buf[t] == '*'))
		return -400;	/* only origin-form (and "*") */
	r = split_target(buf, t, te, req);
	if (r)
		return r;
	v = ++i;
	if (head_end - v < 8 || memcmp(buf + v, "HTTP/", 5))
		return -400;
	if (buf[v + 5] < '0' || buf[v + 5] > '9' || buf[v + 6] != '.' || buf[v + 7] < '0' || buf[v + 7] > '9')
		return -400;
	i = v + 8;
	if (buf[i] == '\r')
		i++;
	if (buf[i] != '\n')
		return -400;
	i++;
	if (buf[v + 5] != '1')
		return -505;
	req->minor = buf[v + 7] - '0';
	*pos = i;
	return 0;
}

/* Read the header line starting at i into *f, with *line_end at its '\n'. Returns 0 for
 * a field, 1 for the blank line ending the head, -400 for a malformed line. */
static int lex_field(const char *buf, size_t i, size_t *line_end, struct field *f)
{
	size_t n0 = i, ne, v0, ve;

	*line_end = i;
	while (buf[*line_end] != '\n')
		(*line_end)++;
	ve = *line_end;
	if (ve > i && buf[ve - 1] == '\r')
		ve--;
	if (ve == i)
		return 1;	/* the blank line */
	if (buf[i] == ' ' || buf[i] == '\t')
		return -400;	/* obsolete line folding */
	while (i < ve && is_tchar((unsigned char)buf[i]))
		i++;
	ne = i;
	if (ne == n0 || i >= ve || buf[i] != ':')
		return -400;	/* empty name, or whitespace before the colon */
	i++;
	for (size_t k = i; k < ve; k++)
		if (((unsigned char)buf[k] < ' ' && buf[k] != '\t') || buf[k] == 0x7f)
			return -400;
	while (i < ve && (buf[i] == ' ' || buf[i] == '\t'))
		i++;
	v0 = i;
	while (ve > v0 && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
		ve--;
	f->name = buf + n0;
	f->nlen = ne - n0;
	f->val = buf + v0;
	f->vlen = ve - v0;
	return 0;
}

/* Content-Length: decimal digits only, at most 15, and equal to any earlier one. */
static int take_content_length(const struct field *f, struct head_fields *h)
{
	uint64_t x = 0;

	if (f->vlen == 0 || f->vlen > 15)
		return -400;
	for (size_t k = 0; k < f->vlen; k++) {
		if (f->val[k] < '0' || f->val[k] > '9')
			return -400;
		x = x * 10 + (uint64_t)(f->val[k] - '0');
	}
	if (h->have_cl && x != h->cl)
		return -400;
	h->have_cl = 1;
	h->cl = x;
	return 0;
}

static void take_authorization(const struct field *f, struct ls_http_req *req)
{
	const char *v = f->val;
	size_t n = f->vlen;

	/* "Basic <base64 user:password>"; anything else is no credentials. */
	if (req->auth_given++ || n < 6 || strncasecmp(v, "basic ", 6))
		return;
	v += 6;
	n -= 6;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	if (ls_base64_decode(v, n, req->auth, sizeof(req->auth), &req->auth_ok) < 0)
		req->auth_ok = 0;
}

static void take_accept_encoding(const struct field *f, struct ls_http_req *req)
{
	char tmp[256];
	size_t n = f->vlen < sizeof(tmp) - 1 ? f->vlen : sizeof(tmp) - 1;

	memcpy(tmp, f->val, n);
	tmp[n] = 0;
	req->accept_gzip |= ls_http_accepts_gzip(tmp);
}

/* Note what one header field says, in h or req. Returns 0 or -400. */
static int take_field(const struct field *f, struct head_fields *h, struct ls_http_req *req)
{
	if (word_eq(f->name, f->nlen, "host")) {
		h->nhost++;
	} else if (word_eq(f->name, f->nlen, "connection")) {
		h->conn_close |= has_token(f->val, f->vlen, "close");
		h->conn_keep |= has_token(f->val, f->vlen, "keep-alive");
	} else if (word_eq(f->name, f->nlen, "content-length")) {
		return take_content_length(f, h);
	} else if (word_eq(f->name, f->nlen, "transfer-encoding")) {
		h->have_te = 1;
	} else if (word_eq(f->name, f->nlen, "authorization")) {
		take_authorization(f, req);
	} else if (word_eq(f->name, f->nlen, "accept-encoding")) {
		take_accept_encoding(f, req);
	}
	return 0;
}

int ls_http_parse(const char *buf, size_t len, size_t max_head, struct ls_http_req *req)
{
	struct head_fields h = { 0 };
	struct field f;
	size_t i = 0, head_end, line_end;
	int r;

	memset(req, 0, sizeof(*req));
	/* RFC 9112 2.2: ignore empty lines before the request line (bounded). */
	while (i < len && i < 8 && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	r = find_head_end(buf, len, i, max_head, &head_end);
	if (r <= 0)
		return r;
	r = parse_request_line(buf, &i, head_end, req);
	if (r)
		return r;

	/* Header fields until the blank line. */
	for (; i < head_end; i = line_end + 1) {
		r = lex_field(buf, i, &line_end, &f);
		if (r < 0)
			return r;
		if (r)
			break;		/* the blank line */
		r = take_field(&f, &h, req);
		if (r)
			return r;
	}
	/* RFC 9112 3.2: a 1.1 request without exactly one Host is a 400; a message with
	 * both Content-Length and Transfer-Encoding is a smuggling attempt. */
	if ((req->minor >= 1 && h.nhost != 1) || h.nhost > 1)
		return -400;
	if (h.have_cl && h.have_te)
		return -400;
	if (req->auth_given > 1)
		req->auth_ok = 0;	/* two credentials: neither is taken */
	req->has_body = h.have_te || h.cl > 0;
	req->keep_alive = req->minor >= 1 ? !h.conn_close : (h.conn_keep && !h.conn_close);
	return (int)head_end;
}

const char *ls_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
