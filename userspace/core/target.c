/* target.c: target discovery. What runs in /proc/PID, found with libelf over the
 * executable and the ELF files it has mapped: the loopscope USDT provider in a
 * .note.stapsdt section means the reference loop; libuv's uv_run / uv__io_poll in a
 * symbol table means Node.js or another libuv program. Nothing is attached here. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "image.h"
#include "lsl_probes.h"

#define NT_STAPSDT 3

/* Read a small /proc text file into buf (trailing newline removed); -errno. */
static int read_small(const char *path, char *buf, size_t len)
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

/* 1 if the ELF has a stapsdt note of provider LSL_PROBE_PROVIDER, else 0. */
static int elf_has_provider(Elf *e)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(e, &shstrndx))
		return 0;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		const char *name;
		size_t off = 0, noff, doff;
		GElf_Nhdr nh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".note.stapsdt"))
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		while ((off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
			const char *desc = (const char *)d->d_buf + doff;
			size_t addrs = 3 * (gelf_getclass(e) == ELFCLASS32 ? 4 : 8);

			if (nh.n_type != NT_STAPSDT || nh.n_namesz != sizeof("stapsdt") ||
			    memcmp((const char *)d->d_buf + noff, "stapsdt", sizeof("stapsdt")) ||
			    nh.n_descsz <= addrs)
				continue;
			/* desc: pc, base, semaphore, then "provider\0name\0args\0". */
			if (strnlen(desc + addrs, nh.n_descsz - addrs) < nh.n_descsz - addrs &&
			    !strcmp(desc + addrs, LSL_PROBE_PROVIDER))
				return 1;
		}
	}
	return 0;
}

/* Bit 0: uv_run defined, bit 1: uv__io_poll defined, bit 2: node::Start (Node). */
static int elf_libuv_bits(Elf *e)
{
	Elf_Scn *scn = NULL;
	int bits = 0;

	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) ||
		    !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n;

			if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_name)
				continue;
			n = elf_strptr(e, sh.sh_link, sym.st_name);
			if (!n)
				continue;
			if (n[0] == 'u' && !strcmp(n, "uv_run"))
				bits |= 1;
			else if (n[0] == 'u' && !strcmp(n, "uv__io_poll"))
				bits |= 2;
			else if (n[0] == '_' && !strncmp(n, "_ZN4node5Start", 14))
				bits |= 4;
		}
	}
	return bits;
}

/* What one ELF file holds, as LS_FOUND_* bits (bit 0 our provider, then
 * elf_libuv_bits() << 1), or -errno. */
static int inspect_elf(const char *path)
{
	Elf *e = NULL;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		r = -ENOEXEC;
		goto cleanup;
	}
	if (elf_has_provider(e))
		r |= 1;
	r |= elf_libuv_bits(e) << 1;
cleanup:
	if (e)
		elf_end(e);
	close(fd);
	return r;
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

static int identify_once(pid_t pid, struct ls_target_info *ti, char *err, size_t errlen)
{
	char path[64], line[PATH_MAX + 128];
	FILE *maps = NULL;
	struct stat st;
	ssize_t n;
	int r, exe_bits, err_ret = 0;

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
	if (read_small(path, line, sizeof(line)) == 0)
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

	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(err, errlen, "libelf: %s", elf_errmsg(-1));
		return -EINVAL;
	}
	/* Through /proc/PID/exe: works even when the file was replaced or deleted. */
	exe_bits = inspect_elf(ti->exe_proc);
	if (exe_bits == -EACCES || exe_bits == -EPERM) {
		snprintf(err, errlen, "not permitted to read the executable of process %d (%s): %s", (int)pid,
			 ti->comm, ls_perm_advice());
		return -EPERM;
	}
	if (exe_bits > 0)
		ti->found = (uint32_t)exe_bits;	/* same bit layout as LS_FOUND_* */
	if (exe_bits > 0 && (exe_bits & 1)) {
		ti->runtime = LS_RT_REFERENCE;
		snprintf(ti->lib, sizeof(ti->lib), "%s", ti->exe_proc);
		return 0;
	}
	if (exe_bits > 0 && (exe_bits & 6)) {
		ti->runtime = (exe_bits & 8) ? LS_RT_NODE : LS_RT_LIBUV;
		snprintf(ti->lib, sizeof(ti->lib), "%s", ti->exe_proc);
		return 0;
	}

	/* Not in the executable: look through the ELF files it has mapped (a shared
	 * liblsl or libuv). O(mappings), each file inspected once. */
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps) {
		err_ret = errno == EACCES || errno == EPERM ? -EPERM : -ESRCH;
		if (err_ret == -EPERM)
			snprintf(err, errlen, "not permitted to read the mappings of process %d (%s): %s",
				 (int)pid, ti->comm, ls_perm_advice());
		else
			snprintf(err, errlen, "no such process: %d", (int)pid);
		return err_ret;
	}
	{
		char last[PATH_MAX] = "";

		while (fgets(line, sizeof(line), maps)) {
			unsigned long start, end, off;
			char perms[8], file[PATH_MAX];

			file[0] = '\0';
			if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %4095[^\n]", &start, &end, perms, &off,
				   file) < 5 || file[0] != '/')
				continue;
			if (!strcmp(file, last))
				continue;
			snprintf(last, sizeof(last), "%s", file);
			if (!strcmp(file, ti->exe))
				continue;
			r = inspect_elf(file);
			if (r <= 0 || !(r & 7))
				continue;
			if (strlen(file) >= sizeof(ti->lib))
				continue;	/* cannot name it to libbpf: too long */
			memcpy(ti->lib, file, strlen(file) + 1);
			ti->lib_base = start - off;
			ti->found |= (uint32_t)r & (LS_FOUND_LSL_USDT | LS_FOUND_UV_RUN | LS_FOUND_UV_IO_POLL);
			if (r & 1)
				ti->runtime = LS_RT_REFERENCE;
			else
				ti->runtime = (exe_bits > 0 && (exe_bits & 8)) ? LS_RT_NODE : LS_RT_LIBUV;
			fclose(maps);
			return 0;
		}
	}
	fclose(maps);
	snprintf(err, errlen, "process %d (%s, %s) is not a supported target: found neither the '%s' "
		 "USDT provider (.note.stapsdt) nor libuv symbols (uv_run, uv__io_poll) in it or its "
		 "mapped libraries", (int)pid, ti->comm, ti->exe, LSL_PROBE_PROVIDER);
	return -ENOTSUP;
}
