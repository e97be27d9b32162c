/* proc.c: the agent's one reader of /proc (proc.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proc.h"

/* One maps line: "start-end perms offset major:minor inode   path". 0 or -EINVAL. */
static int parse_map(char *line, struct ls_proc_map *m)
{
	unsigned long long start, end, off, ino;
	unsigned maj, min;
	char *path;
	int pos = 0;

	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu%n", &start, &end, m->perms, &off, &maj, &min, &ino,
		   &pos) != 7 || start >= end)
		return -EINVAL;
	path = line + pos;
	path += strspn(path, " \t");
	path[strcspn(path, "\n")] = '\0';
	m->start = start;
	m->end = end;
	m->offset = off;
	m->dev = makedev(maj, min);
	m->ino = (ino_t)ino;
	m->path = path;
	return 0;
}

/* Descriptors of /proc/PID/maps and /proc/PID/mem opened by ls_proc_hold(): the kernel
 * checks the right to read them when they are opened, so they still read after the
 * agent gave up its capabilities; and they belong to that process for good (a reused
 * PID does not inherit them: they read nothing once it exited). */
#define MAX_HELD 256
static struct held {
	pid_t pid;
	int maps_fd, mem_fd;
} held[MAX_HELD];
static int nheld;

static struct held *held_find(pid_t pid)
{
	for (int i = 0; i < nheld; i++)
		if (held[i].pid == pid)
			return &held[i];
	return NULL;
}

int ls_proc_hold(pid_t pid)
{
	char path[64];
	struct held *h = held_find(pid);

	if (h)
		return 0;
	if (nheld == MAX_HELD)
		return -ENOSPC;
	h = &held[nheld];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	h->maps_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (h->maps_fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	h->mem_fd = open(path, O_RDONLY | O_CLOEXEC);	/* -1: process_vm_readv instead */
	h->pid = pid;
	nheld++;
	return 0;
}

void ls_proc_release(pid_t pid)
{
	struct held *h = held_find(pid);

	if (!h)
		return;
	close(h->maps_fd);
	if (h->mem_fd >= 0)
		close(h->mem_fd);
	*h = held[--nheld];
}

int ls_proc_maps(pid_t pid, int (*fn)(const struct ls_proc_map *m, void *ctx), void *ctx)
{
	char path[64], line[PATH_MAX + 128];
	struct held *h = held_find(pid);
	FILE *f;
	int r = 0;

	if (h) {
		int fd = dup(h->maps_fd);

		/* the same open file: read it again from the start */
		if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0 || !(f = fdopen(fd, "re"))) {
			r = -errno;
			if (fd >= 0)
				close(fd);
			return r;
		}
	} else {
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
		f = fopen(path, "re");
		if (!f)
			return -errno;
	}
	while (!r && fgets(line, sizeof(line), f)) {
		struct ls_proc_map m;
		size_t len = strlen(line);

		if (len && line[len - 1] != '\n' && !feof(f)) {
			int c;

			/* longer than any path: skip the rest of the line */
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		if (parse_map(line, &m))
			continue;
		r = fn(&m, ctx);
	}
	fclose(f);
	return r;
}

struct map_list {
	struct ls_proc_map *v;
	size_t n, cap;
};

static int list_add(const struct ls_proc_map *m, void *ctx)
{
	struct map_list *l = ctx;
	char *path;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct ls_proc_map *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	path = strdup(m->path);
	if (!path)
		return -ENOMEM;
	l->v[l->n] = *m;
	l->v[l->n++].path = path;
	return 0;
}

int ls_proc_maps_list(pid_t pid, struct ls_proc_map **out, size_t *n)
{
	struct map_list l = { 0 };
	int r = ls_proc_maps(pid, list_add, &l);

	if (r) {
		ls_proc_maps_free(l.v, l.n);
		*out = NULL;
		*n = 0;
		return r;
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

void ls_proc_maps_free(struct ls_proc_map *maps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)maps[i].path);
	free(maps);
}

struct file_addr {
	const struct ls_proc_file *f;
	uint64_t off;
	uint64_t addr;
};

static int match_file(const struct ls_proc_map *m, void *ctx)
{
	struct file_addr *fa = ctx;
	const struct ls_proc_file *f = fa->f;

	if (f->path ? strcmp(m->path, f->path) : (m->ino != f->ino || m->dev != f->dev))
		return 0;
	if (fa->off < m->offset || fa->off >= m->offset + (m->end - m->start))
		return 0;
	fa->addr = m->start + (fa->off - m->offset);
	return 1;
}

int ls_proc_file_addr(pid_t pid, const struct ls_proc_file *f, uint64_t off, uint64_t *addr)
{
	struct file_addr fa = { .f = f, .off = off };
	int r = ls_proc_maps(pid, match_file, &fa);

	if (r < 0)
		return r;
	if (!r)
		return -ENOENT;
	*addr = fa.addr;
	return 0;
}

int ls_proc_read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

int ls_proc_thread_comm(pid_t pid, uint32_t tid, char *out, size_t len)
{
	char path[64], buf[32];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/task/%u/comm", (int)pid, tid);
	r = ls_proc_read_text(path, buf, sizeof(buf));
	if (r)
		return r;
	if (!buf[0])
		return -ESRCH;
	snprintf(out, len, "%.15s", buf);
	return 0;
}

int ls_proc_stat(pid_t pid, uint32_t tid, char *buf, size_t len, const char **fields)
{
	char path[64], *p;
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%u/stat", (int)pid, tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = 0;
	/* the name ends at the last ')': it may hold any character */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EINVAL;
	*fields = p + 2;
	return 0;
}

int ls_proc_thread_stopped(pid_t pid, uint32_t tid)
{
	char buf[512];
	const char *f;

	return !ls_proc_stat(pid, tid, buf, sizeof(buf), &f) && (f[0] == 'T' || f[0] == 't');
}

pid_t ls_proc_tgid(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

uint64_t ls_proc_self_rss(void)
{
	unsigned long size, rss;
	char buf[128];

	if (ls_proc_read_text("/proc/self/statm", buf, sizeof(buf)) ||
	    sscanf(buf, "%lu %lu", &size, &rss) != 2)
		return 0;
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

int ls_proc_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	struct held *h = held_find(pid);
	ssize_t n;

	if (!len)
		return 0;
	if (h && h->mem_fd >= 0) {
		if (addr > (uint64_t)INT64_MAX)
			return -EFAULT;
		n = pread(h->mem_fd, buf, len, (off_t)addr);
		if (n < 0)
			return errno == EIO ? -EFAULT : -errno;
		return (size_t)n == len ? 0 : -EIO;
	}
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int ls_maps_parse(const char *text, size_t len, struct ls_maps *out)
{
	struct map_list l = { 0 };
	char line[PATH_MAX + 128];
	size_t i = 0;
	int err = 0;

	out->map = NULL;
	out->n = 0;
	while (i < len && !err) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - (text + i)) : len - i;
		struct ls_proc_map m;

		if (ll && ll < sizeof(line)) {
			memcpy(line, text + i, ll);
			line[ll] = '\0';
			if (!parse_map(line, &m))
				err = list_add(&m, &l);
		}
		i += ll + 1;
	}
	if (err) {
		ls_proc_maps_free(l.v, l.n);
		return err;
	}
	out->map = l.v;
	out->n = l.n;
	return 0;
}

int ls_maps_read(pid_t pid, struct ls_maps *out)
{
	int r = ls_proc_maps_list(pid, &out->map, &out->n);

	return r == -ENOENT ? -ESRCH : r;
}

const struct ls_proc_map *ls_maps_code(const struct ls_maps *m, const char *path)
{
	const struct ls_proc_map *best = NULL;
	struct stat st;

	if (stat(path, &st))
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->map[i].perms[2] == 'x' && m->map[i].ino == st.st_ino && m->map[i].dev == st.st_dev &&
		    (!best || m->map[i].end - m->map[i].start > best->end - best->start))
			best = &m->map[i];
	return best;
}

int ls_proc_code_range(pid_t pid, const char *path, uint64_t *lo, uint64_t *hi)
{
	const struct ls_proc_map *c;
	struct ls_maps maps;
	int r;

	*lo = *hi = 0;
	if ((r = ls_maps_read(pid, &maps)))
		return r;
	if ((c = ls_maps_code(&maps, path))) {
		*lo = c->start;
		*hi = c->end;
	}
	ls_maps_free(&maps);
	return *hi ? 0 : -ENOENT;
}

const struct ls_proc_map *ls_maps_find(const struct ls_maps *m, uint64_t addr)
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
	ls_proc_maps_free(m->map, m->n);
	m->map = NULL;
	m->n = 0;
}
