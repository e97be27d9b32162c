/* target.c: target discovery. What runs in /proc/PID, found with lib/elf over the
 * executable and the ELF files it has mapped (lib/proc): the loopscope USDT provider in a
 * .note.stapsdt section means the reference loop; libuv's uv_run / uv__io_poll in a
 * symbol table means Node.js or another libuv program. Nothing is attached here. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "elf.h"
#include "image.h"
#include "lsl_probes.h"
#include "proc.h"

/* A runtime is known when a file holds any of these. */
#define FOUND_RUNTIME (LS_FOUND_LSL_USDT | LS_FOUND_UV_RUN | LS_FOUND_UV_IO_POLL)

/* What one ELF file holds, as LS_FOUND_* bits, or -errno. */
static int inspect_elf(const char *path)
{
	struct ls_elf_sym uv_run, io_poll, node_start;
	const struct ls_elf_want want[] = {
		{ "uv_run", &uv_run },
		{ "uv__io_poll", &io_poll },
		{ "_ZN4node5Start*", &node_start },
	};
	struct ls_elf *e = NULL;
	int r, found = 0;

	r = ls_elf_open(path, &e);
	if (r)
		return r;
	if (ls_elf_has_usdt_provider(e, LSL_PROBE_PROVIDER))
		found |= LS_FOUND_LSL_USDT;
	ls_elf_lookup(e, want, sizeof(want) / sizeof(want[0]));
	if (uv_run.addr)
		found |= LS_FOUND_UV_RUN;
	if (io_poll.addr)
		found |= LS_FOUND_UV_IO_POLL;
	if (node_start.addr)
		found |= LS_FOUND_NODE;
	ls_elf_close(e);
	return found;
}

static int identify_once(pid_t pid, struct ls_target_info *ti, char *err, size_t errlen);

/* The exe link is read first and the mappings after: a process that execs in between
 * (a fresh child) would mix two programs, so a changed link means another look. */
int ls_target_identify(pid_t pid, struct ls_target_info *ti, char *err, size_t errlen)
{
	char again[sizeof(ti->exe)];
	int r = 0;

	for (int tries = 0; tries < 3; tries++) {
		ssize_t n;

		r = identify_once(pid, ti, err, errlen);
		if (r == -ESRCH || r == -EPERM || !ti->exe[0])
			return r;
		n = readlink(ti->exe_proc, again, sizeof(again) - 1);
		if (n < 0)
			return r;
		again[n] = '\0';
		if (!strcmp(again, ti->exe))
			return r;
	}
	return r;
}

/* The first ELF file mapped in the process, other than the executable, that holds a
 * runtime (a shared liblsl or libuv). O(mappings), each file inspected once. */
struct lib_search {
	struct ls_target_info *ti;
	int exe_found;		/* LS_FOUND_* of the executable */
	char last[PATH_MAX];
};

static int find_runtime_lib(const struct ls_proc_map *m, void *ctx)
{
	struct lib_search *ls = ctx;
	struct ls_target_info *ti = ls->ti;
	size_t len = strlen(m->path);
	int found;

	if (m->path[0] != '/' || !strcmp(m->path, ls->last))
		return 0;
	snprintf(ls->last, sizeof(ls->last), "%s", m->path);
	if (!strcmp(m->path, ti->exe))
		return 0;
	found = inspect_elf(m->path);
	if (found <= 0 || !(found & FOUND_RUNTIME))
		return 0;
	if (len >= sizeof(ti->lib))
		return 0;	/* cannot name it to libbpf: too long */
	memcpy(ti->lib, m->path, len + 1);
	ti->lib_base = m->start - m->offset;
	ti->found |= (uint32_t)found & FOUND_RUNTIME;
	if (found & LS_FOUND_LSL_USDT)
		ti->runtime = LS_RT_REFERENCE;
	else
		ti->runtime = (ls->exe_found & LS_FOUND_NODE) ? LS_RT_NODE : LS_RT_LIBUV;
	return 1;
}

static int identify_once(pid_t pid, struct ls_target_info *ti, char *err, size_t errlen)
{
	char path[64], line[64];
	struct lib_search *search = NULL;
	struct stat st;
	ssize_t n;
	int r, exe_found;

	memset(ti, 0, sizeof(*ti));
	ti->pid = pid;
	if (pid <= 0) {
		snprintf(err, errlen, "no such process: %d", (int)pid);
		return -ESRCH;
	}
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st)) {
		snprintf(err, errlen, "no such process: %d", (int)pid);
		return -ESRCH;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (ls_proc_read_text(path, line, sizeof(line)) == 0)
		snprintf(ti->comm, sizeof(ti->comm), "%.15s", line);
	snprintf(ti->exe_proc, sizeof(ti->exe_proc), "/proc/%d/exe", (int)pid);
	n = readlink(ti->exe_proc, ti->exe, sizeof(ti->exe) - 1);
	if (n < 0) {
		if (errno == EACCES || errno == EPERM) {
			snprintf(err, errlen, "not permitted to inspect process %d (%s): %s", (int)pid, ti->comm,
				 ls_perm_advice());
			return -EPERM;
		}
		if (errno == ENOENT && stat(path, &st) == 0) {
			struct ls_image_id id;

			/* Zombies and kernel threads both have no exe link: say which. */
			if (ls_image_read(pid, &id) == 0 && (id.state == 'Z' || id.state == 'X')) {
				snprintf(err, errlen, "process %d (%s) has exited (a zombie its parent has not "
					 "reaped yet): nothing to trace", (int)pid, ti->comm);
				return -ESRCH;
			}
			snprintf(err, errlen, "process %d (%s) %s: nothing to trace", (int)pid, ti->comm,
				 ls_image_read(pid, &id) == 0 && id.kthread ? "is a kernel thread"
									    : "has no executable");
			return -ENOTSUP;
		}
		snprintf(err, errlen, "no such process: %d", (int)pid);
		return -ESRCH;
	}
	ti->exe[n] = '\0';

	/* Through /proc/PID/exe: works even when the file was replaced or deleted. */
	exe_found = inspect_elf(ti->exe_proc);
	if (exe_found == -EACCES || exe_found == -EPERM) {
		snprintf(err, errlen, "not permitted to read the executable of process %d (%s): %s", (int)pid,
			 ti->comm, ls_perm_advice());
		return -EPERM;
	}
	if (exe_found < 0)
		exe_found = 0;
	ti->found = (uint32_t)exe_found;
	if (exe_found & FOUND_RUNTIME) {
		if (exe_found & LS_FOUND_LSL_USDT)
			ti->runtime = LS_RT_REFERENCE;
		else
			ti->runtime = (exe_found & LS_FOUND_NODE) ? LS_RT_NODE : LS_RT_LIBUV;
		snprintf(ti->lib, sizeof(ti->lib), "%s", ti->exe_proc);
		return 0;
	}

	/* Not in the executable: look through the ELF files it has mapped. */
	search = calloc(1, sizeof(*search));
	if (!search) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	search->ti = ti;
	search->exe_found = exe_found;
	r = ls_proc_maps(pid, find_runtime_lib, search);
	free(search);
	if (r == 1)
		return 0;
	if (r == -EACCES || r == -EPERM) {
		snprintf(err, errlen, "not permitted to read the mappings of process %d (%s): %s",
			 (int)pid, ti->comm, ls_perm_advice());
		return -EPERM;
	}
	if (r < 0) {
		snprintf(err, errlen, "no such process: %d", (int)pid);
		return -ESRCH;
	}
	snprintf(err, errlen, "process %d (%s, %s) is not a supported target: found neither the '%s' "
		 "USDT provider (.note.stapsdt) nor libuv symbols (uv_run, uv__io_poll) in it or its "
		 "mapped libraries", (int)pid, ti->comm, ti->exe, LSL_PROBE_PROVIDER);
	return -ENOTSUP;
}
