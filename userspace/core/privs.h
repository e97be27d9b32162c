/* privs.h: least privilege once attached.
 *
 * Attaching needs CAP_BPF, CAP_PERFMON (load programs, open uprobes),
 * CAP_SYS_PTRACE (read another process's /proc/PID/exe, maps and memory) and, for the
 * uprobe attach itself, CAP_SYS_ADMIN (see ls_privs_attach_set()). What runs
 * after the attach needs none of them: reading maps, the ring buffer and the pidfd,
 * and detaching (closing link fds), use file descriptors already held. So stat and top
 * drop every capability once attached, and serve keeps only the attach set while
 * --exe may still bring new processes (none otherwise). --follow-exec keeps the attach
 * set in all three, to attach a target again after it execs. no_new_privs is set
 * either way.
 */
#ifndef LS_PRIVS_H
#define LS_PRIVS_H

#include <stddef.h>
#include <stdint.h>

/* The capabilities attaching a new process needs (a bit per CAP_*). */
uint64_t ls_privs_attach_set(void);

/* Become user (NULL: stay), keep only the capabilities in keep (effective and
 * permitted; inheritable, ambient and the bounding set are cleared of the rest), and
 * set no_new_privs. 0 or -errno with a one-line err. Run once, after attaching. */
int ls_privs_drop(uint64_t keep, const char *user, char *err, size_t errlen);

/* 1 once ls_privs_drop() succeeded (error messages say so instead of "run as root"). */
int ls_privs_dropped(void);

#endif /* LS_PRIVS_H */
