/* proc.h: what /proc says about a process (its mappings, its memory). */
#ifndef LS_PROC_H
#define LS_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ls_map {
	uint64_t start, end;	/* [start, end) in the process */
	uint64_t offset;	/* file offset of start */
	uint64_t inode;
	uint32_t dev_major, dev_minor;
	char perms[5];		/* "r-xp" */
	char *path;		/* "/usr/bin/node", "[vdso]", "" for anonymous; owned by the list */
};

struct ls_maps {
	struct ls_map *map;	/* sorted by start (the kernel's order) */
	size_t n;
};

/* Parse the text of a maps file (fuzzed: lib/proc_fuzz.c). 0 or -errno. */
int ls_maps_parse(const char *text, size_t len, struct ls_maps *out);
/* Read /proc/PID/maps. 0 or -errno (-ESRCH: gone). */
int ls_maps_read(pid_t pid, struct ls_maps *out);
/* The mapping holding addr, or NULL. */
const struct ls_map *ls_maps_find(const struct ls_maps *m, uint64_t addr);
void ls_maps_free(struct ls_maps *m);

/* Read len bytes at addr in pid (process_vm_readv: never stops or writes to it).
 * 0, or -errno (-EFAULT: not all of it is mapped). */
int ls_proc_read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif /* LS_PROC_H */
