/* exe_watch.c: the /proc scan behind `serve --exe` (see exe_watch.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exe_watch.h"

int ls_exe_watch_add(struct ls_exe_watch *w, const char *path, char *err, size_t errlen)
{
	struct ls_exe_path *e;
	struct stat st;

	if (w->nexes == LS_EXE_WATCH_MAX) {
		snprintf(err, errlen, "at most %d --exe options", LS_EXE_WATCH_MAX);
		return -E2BIG;
	}
	e = &w->exes[w->nexes];
	memset(e, 0, sizeof(*e));
	e->path = path;
	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "--exe %s: not a regular file", path);
			return -EINVAL;
		}
		if (!realpath(path, e->real))
			e->real[0] = 0;
	} else if (path[0] != '/') {
		int r = -errno;

		snprintf(err, errlen, "--exe %s: %s", path, strerror(-r));
		return r;
	}
	w->nexes++;
	return 0;
}

static int refused(const struct ls_exe_watch *w, int32_t pid)
{
	for (size_t i = 0; i < w->nfailed; i++)
		if (w->failed[i] == pid)
			return 1;
	return 0;
}

static void push_pid(int32_t **arr, size_t *n, size_t *cap, int32_t pid)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		int32_t *p = realloc(*arr, c * sizeof(*p));
		if (!p)
			return;
		*arr = p;
		*cap = c;
	}
	(*arr)[(*n)++] = pid;
}

/* Which watched binary /proc/PID/exe is: index + 1, or 0. */
static int match_exe(const struct ls_exe_watch *w, long pid)
{
	char path[64], link[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
	if (stat(path, &st))
		return 0;	/* a kernel thread, gone, or not ours to look at */
	for (int i = 0; i < w->nexes; i++)
		if (w->exes[i].ok && st.st_dev == w->exes[i].dev && st.st_ino == w->exes[i].ino)
			return i + 1;
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = 0;
	for (int i = 0; i < w->nexes; i++)
		if (!strcmp(link, w->exes[i].path) || (w->exes[i].real[0] && !strcmp(link, w->exes[i].real)))
			return i + 1;
	return 0;
}

int ls_exe_watch_scan(struct ls_exe_watch *w, ls_exe_found_fn fn, void *arg)
{
	pid_t self = getpid();
	int32_t *still = NULL;
	size_t nstill = 0, capstill = 0;
	struct dirent *de;
	DIR *d;

	for (int i = 0; i < w->nexes; i++) {
		struct stat st;
		/* Re-stat each time: an upgraded binary is a new inode. */
		w->exes[i].ok = stat(w->exes[i].path, &st) == 0;
		if (w->exes[i].ok) {
			w->exes[i].dev = st.st_dev;
			w->exes[i].ino = st.st_ino;
		}
	}
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		int match, r;

		if (*end || pid <= 0 || pid == self || !(match = match_exe(w, pid)))
			continue;
		if (refused(w, (int32_t)pid)) {
			push_pid(&still, &nstill, &capstill, (int32_t)pid);
			continue;
		}
		r = fn((pid_t)pid, w->exes[match - 1].path, arg);
		if (r && r != -EEXIST)
			push_pid(&still, &nstill, &capstill, (int32_t)pid);
	}
	closedir(d);
	/* Refused PIDs no longer running are forgotten (the PID may be reused). */
	free(w->failed);
	w->failed = still;
	w->nfailed = nstill;
	w->capfailed = capstill;
	return 0;
}

void ls_exe_watch_free(struct ls_exe_watch *w)
{
	free(w->failed);
	w->failed = NULL;
	w->nfailed = w->capfailed = 0;
}
