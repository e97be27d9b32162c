/* exe_watch.h: find every process running a given binary (`serve --exe`).
 *
 * Each scan stat()s /proc/PID/exe of every process and compares device and inode with
 * the named binary (so symlinks, bind mounts and relative paths all match, and a binary
 * replaced on disk is followed: it is re-stat()ed each scan); failing that, the link
 * text of /proc/PID/exe is compared with the path, which is what matches a process in
 * another container (another mount namespace) running "/usr/local/bin/node" when our
 * own filesystem has a different file there, or none. A /proc scan rather than a
 * sched_process_exec tracepoint: one stat() per process per scan instead of a BPF
 * program on every exec in the system, nothing beyond what attaching already needs,
 * and processes that were running before we started take the same path.
 */
#ifndef LS_EXE_WATCH_H
#define LS_EXE_WATCH_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LS_EXE_WATCH_MAX 16

struct ls_exe_path {
	const char *path;	/* as given (must outlive the watch) */
	char real[PATH_MAX];	/* realpath() of it, or "" */
	dev_t dev;
	ino_t ino;
	int ok;			/* the path could be stat()ed at the last scan */
};

struct ls_exe_watch {
	struct ls_exe_path exes[LS_EXE_WATCH_MAX];	/* public, read-only */
	int nexes;					/* public, read-only */
	int32_t *failed;	/* private: matches the callback refused (not retried) */
	size_t nfailed, capfailed;
};

/* Add a binary to watch: a regular file we can see, or an absolute path that may only
 * exist in another container. 0, or -E2BIG / -EINVAL / -errno with a one-line err. */
int ls_exe_watch_add(struct ls_exe_watch *w, const char *path, char *err, size_t errlen);

/* Called for every matching process not refused before: 0 (taken), -EEXIST (already
 * known: asked again next scan), anything else (refused: not asked again while that
 * PID lives). */
typedef int (*ls_exe_found_fn)(pid_t pid, const char *path, void *arg);

/* Scan /proc once. 0 or -errno (the scan could not be made). */
int ls_exe_watch_scan(struct ls_exe_watch *w, ls_exe_found_fn fn, void *arg);
void ls_exe_watch_free(struct ls_exe_watch *w);

#endif /* LS_EXE_WATCH_H */
