/* image.c: which program a process is running (see image.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image.h"
#include "privs.h"
#include "proc.h"

#define PF_KTHREAD_BIT 0x00200000u

/* state, flags and start time from /proc/PID/stat. */
static int read_stat(pid_t pid, struct ls_image_id *id)
{
	char buf[1024];
	const char *p;
	unsigned long flags = 0;
	unsigned long long start = 0;
	int r = ls_proc_stat(pid, 0, buf, sizeof(buf), &p);

	if (r)
		return r;
	/* field 3 state, 4 ppid, 5 pgrp, 6 session, 7 tty, 8 tpgid, 9 flags, 10-21,
	 * 22 starttime */
	id->state = p[0];
	if (sscanf(p + 2, "%*d %*d %*d %*d %*d %lu %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &flags, &start) != 2)
		return -EINVAL;
	id->kthread = !!(flags & PF_KTHREAD_BIT);
	id->start_time = start;
	return 0;
}

static uint64_t read_at_random(pid_t pid)
{
	char path[64];
	unsigned long v[2 * 64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, v, sizeof(v));
	close(fd);
	for (ssize_t i = 0; n > 0 && (i + 1) * 2 * (ssize_t)sizeof(v[0]) <= n; i++)
		if (v[2 * i] == AT_RANDOM)
			return v[2 * i + 1];
	return 0;
}

int ls_image_read(pid_t pid, struct ls_image_id *id)
{
	char path[64];
	struct stat st;
	int r;

	memset(id, 0, sizeof(*id));
	if ((r = read_stat(pid, id)))
		return r;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st) == 0) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
	}
	id->at_random = read_at_random(pid);
	return 0;
}

int ls_image_fd_open(pid_t pid, const struct ls_image_id *id)
{
	char path[64];
	int fd;

	if (!id->at_random)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ls_image_fd_gone(fd, id)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int ls_image_fd_gone(int fd, const struct ls_image_id *id)
{
	unsigned char b[16];

	return pread(fd, b, sizeof(b), (off_t)id->at_random) <= 0;
}

int ls_image_changed(const struct ls_image_id *a, const struct ls_image_id *b)
{
	if (a->start_time != b->start_time)
		return 1;
	if (a->ino && b->ino && (a->dev != b->dev || a->ino != b->ino))
		return 1;
	return a->at_random && b->at_random && a->at_random != b->at_random;
}

const char *ls_perm_advice(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	uint64_t eff;
	const uint64_t need = ls_privs_attach_set();

	if (ls_privs_dropped())
		return "loopscope gave up its capabilities after attaching (--follow-exec keeps what "
		       "attaching needs; so does serve's --exe)";
	if (geteuid() != 0)
		return "run loopscope as root (it needs CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_SYS_ADMIN)";
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return "the kernel refused it to root (a security module, a user namespace or Yama's ptrace_scope)";
	eff = (uint64_t)d[0].effective | (uint64_t)d[1].effective << 32;
	if ((eff & need) != need)
		return "loopscope runs as root without one of CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and "
		       "CAP_SYS_ADMIN in its effective set (started with capabilities dropped?)";
	return "the kernel refused it even to root with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and "
	       "CAP_SYS_ADMIN (a security module, a user namespace or Yama's ptrace_scope)";
}
