/* proc.c: /proc/PID/maps and process memory. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* process_vm_readv */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proc.h"

static int parse_line(const char *line, size_t len, struct ls_map *m)
{
	char buf[4096 + 256];
	unsigned long long start, end, off, ino;
	unsigned maj, min;
	int pos = 0;

	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, line, len);
	buf[len] = 0;
	memset(m, 0, sizeof(*m));
	if (sscanf(buf, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, m->perms, &off, &maj, &min, &ino,
		   &pos) < 7 || start >= end)
		return -EINVAL;
	m->start = start;
	m->end = end;
	m->offset = off;
	m->dev_major = maj;
	m->dev_minor = min;
	m->inode = ino;
	m->path = strdup(pos > 0 && (size_t)pos <= len ? buf + pos : "");
	return m->path ? 0 : -ENOMEM;
}

int ls_maps_parse(const char *text, size_t len, struct ls_maps *out)
{
	size_t cap = 0, i = 0;
	int err = 0;

	out->map = NULL;
	out->n = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - (text + i)) : len - i;
		struct ls_map m;

		if (ll && !parse_line(text + i, ll, &m)) {
			if (out->n == cap) {
				struct ls_map *g = realloc(out->map, (cap ? cap * 2 : 64) * sizeof(*g));

				if (!g) {
					free(m.path);
					err = -ENOMEM;
					goto cleanup;
				}
				out->map = g;
				cap = cap ? cap * 2 : 64;
			}
			out->map[out->n++] = m;
		}
		i += ll + 1;
	}
	return 0;
cleanup:
	ls_maps_free(out);
	return err;
}

int ls_maps_read(pid_t pid, struct ls_maps *out)
{
	char path[64], *text = NULL;
	size_t len = 0, cap = 0;
	int fd, err;

	out->map = NULL;
	out->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	for (;;) {
		ssize_t r;

		if (cap - len < 4096) {
			char *g = realloc(text, cap ? cap * 2 : 65536);

			if (!g) {
				err = -ENOMEM;
				goto cleanup;
			}
			text = g;
			cap = cap ? cap * 2 : 65536;
		}
		r = read(fd, text + len, cap - len);
		if (r < 0) {
			err = errno == ENOENT ? -ESRCH : -errno;
			goto cleanup;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	err = ls_maps_parse(text, len, out);
cleanup:
	free(text);
	close(fd);
	return err;
}

const struct ls_map *ls_maps_find(const struct ls_maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < m->map[mid].start)
			hi = mid;
		else if (addr >= m->map[mid].end)
			lo = mid + 1;
		else
			return &m->map[mid];
	}
	return NULL;
}

void ls_maps_free(struct ls_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->map[i].path);
	free(m->map);
	m->map = NULL;
	m->n = 0;
}

int ls_proc_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t n;

	if (!len)
		return 0;
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}
