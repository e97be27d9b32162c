/* proc.h: the one reader of /proc for the agent: a process's mappings
 * (/proc/PID/maps), thread names, thread groups and small text files.
 * Errors are negative errno (-ENOENT / -ESRCH for a process that is gone, -EACCES
 * or -EPERM when not permitted).
 */
#ifndef LS_PROC_H
#define LS_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One line of /proc/PID/maps. */
struct ls_proc_map {
	uint64_t start, end;	/* [start, end) in the process */
	uint64_t offset;	/* file offset mapped at start */
	dev_t dev;
	ino_t ino;		/* 0 for anonymous mappings */
	char perms[5];		/* "r-xp" */
	const char *path;	/* "" when anonymous; "[heap]", "/usr/bin/node (deleted)", ... */
};

/* Calls fn for each mapping of pid in address order; path lives only during the call.
 * A non-zero return from fn stops the walk and is returned; 0 when all were seen,
 * -errno when the maps file cannot be read. */
int ls_proc_maps(pid_t pid, int (*fn)(const struct ls_proc_map *m, void *ctx), void *ctx);

/* Every mapping of pid, in an array the caller frees with ls_proc_maps_free() (each
 * path is a copy owned by the array). 0 or -errno. */
int ls_proc_maps_list(pid_t pid, struct ls_proc_map **out, size_t *n);
void ls_proc_maps_free(struct ls_proc_map *maps, size_t n);

/* A mapped file: by its path as the maps file prints it when path is non-NULL, else
 * by device and inode (what stat() of /proc/PID/exe gives, even for a deleted file). */
struct ls_proc_file {
	const char *path;
	dev_t dev;
	ino_t ino;
};
/* Where file offset off of file f is mapped in pid. 0, -ENOENT when it is not, or
 * -errno. */
int ls_proc_file_addr(pid_t pid, const struct ls_proc_file *f, uint64_t off, uint64_t *addr);

/* Every mapping of a process, sorted by address (the kernel's order), for lookups by
 * address (symbolizing stack samples). */
struct ls_maps {
	struct ls_proc_map *map;	/* paths owned by the list */
	size_t n;
};
/* Parse the text of a maps file (fuzzed: tests/fuzz). 0 or -errno. */
int ls_maps_parse(const char *text, size_t len, struct ls_maps *out);
/* Read /proc/PID/maps. 0 or -errno (-ESRCH: gone). */
int ls_maps_read(pid_t pid, struct ls_maps *out);
/* The mapping holding addr, or NULL. */
const struct ls_proc_map *ls_maps_find(const struct ls_maps *m, uint64_t addr);
void ls_maps_free(struct ls_maps *m);
/* The largest executable mapping in m of the file at path (matched by device and
 * inode, as stat() gives them), or NULL. */
const struct ls_proc_map *ls_maps_code(const struct ls_maps *m, const char *path);
/* The largest executable mapping of the file at path in pid: [lo, hi). 0, -ENOENT
 * when the file is not mapped executable there, or -errno. */
int ls_proc_code_range(pid_t pid, const char *path, uint64_t *lo, uint64_t *hi);

/* A small text file (a /proc entry) into buf, the trailing newline removed. 0 or -errno. */
int ls_proc_read_text(const char *path, char *buf, size_t len);
/* The thread's name (/proc/PID/task/TID/comm, at most 15 characters). 0, or -errno
 * when the thread is gone (out untouched). open/read, no stdio: backends call it for
 * every loop at every snapshot. */
int ls_proc_thread_comm(pid_t pid, uint32_t tid, char *out, size_t len);
/* /proc/PID/stat (tid 0) or /proc/PID/task/TID/stat into buf; *fields points into buf
 * at field 3 (state), past the command name, which may hold spaces and ')'. 0, -ESRCH
 * when the process or thread is gone, -EINVAL when the line is malformed, or -errno.
 * open/read, no stdio. */
int ls_proc_stat(pid_t pid, uint32_t tid, char *buf, size_t len, const char **fields);
/* 1 if thread tid of pid is stopped (state T: a stop signal, t: a tracer), else 0 (a
 * thread that is gone included). */
int ls_proc_thread_stopped(pid_t pid, uint32_t tid);
/* The process (Tgid) thread tid belongs to, from /proc/TID/status; -1 if unknown. */
pid_t ls_proc_tgid(pid_t tid);
/* Keep /proc/PID/maps and /proc/PID/mem open (call it while the agent may still read
 * them: at attach), so ls_proc_maps(), ls_maps_read() and ls_proc_read_mem() of pid go
 * on working after the agent drops its capabilities. 0 or -errno. ls_proc_release()
 * closes them (the process exited or was detached). Not thread-safe: the agent's
 * thread only. */
int ls_proc_hold(pid_t pid);
void ls_proc_release(pid_t pid);
/* Copy len bytes at addr in pid's memory (process_vm_readv: nothing is ever written to
 * the target). 0, -EIO on a short read, or -errno (-ESRCH: gone, -EFAULT: unmapped). */
int ls_proc_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len);
/* This process's resident set in bytes (/proc/self/statm), 0 if unknown. */
uint64_t ls_proc_self_rss(void);

#endif /* LS_PROC_H */
