/* privs.c: least privilege once attached (see privs.h). */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privs.h"

uint64_t ls_privs_attach_set(void)
{
	/* CAP_SYS_ADMIN: without it the kernel refuses the uprobe attach (EPERM) even with
	 * the other three (measured on Linux 6.18: setpriv --bounding-set
	 * -all,+bpf,+perfmon,+sys_ptrace loopscope stat -p PID). */
	return (1ull << CAP_BPF) | (1ull << CAP_PERFMON) | (1ull << CAP_SYS_PTRACE) | (1ull << CAP_SYS_ADMIN);
}

static int dropped;

int ls_privs_dropped(void)
{
	return dropped;
}

static uint64_t permitted_now(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return 0;
	return (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
}

static int capset_(uint64_t eff, uint64_t prm)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[0].effective = (uint32_t)eff;
	d[1].effective = (uint32_t)(eff >> 32);
	d[0].permitted = (uint32_t)prm;
	d[1].permitted = (uint32_t)(prm >> 32);
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static int switch_user(const char *user, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(user);
	int r;

	if (!pw) {
		snprintf(err, errlen, "--user %s: no such user", user);
		return -ENOENT;
	}
	/* Keep the permitted set across the uid change; the effective one is restored
	 * by the capset that follows. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || initgroups(pw->pw_name, pw->pw_gid) ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) || setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid)) {
		r = -errno;
		snprintf(err, errlen, "--user %s: cannot switch to it: %s", user, strerror(-r));
		return r;
	}
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	return 0;
}

int ls_privs_drop(uint64_t keep, const char *user, char *err, size_t errlen)
{
	int r, last = CAP_LAST_CAP;
	FILE *f;

	/* The running kernel may know more capabilities than our headers. */
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	keep &= permitted_now();	/* what we never had cannot be kept */
	/* The bounding set first: dropping from it needs CAP_SETPCAP in the effective set,
	 * which a change of user clears. (It limits later execs, not what we hold now.) */
	for (int cap = 0; cap <= last; cap++)
		if (!(keep & (1ull << cap)) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	if (user && (r = switch_user(user, err, errlen)))
		return r;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if ((r = capset_(keep, keep))) {
		snprintf(err, errlen, "dropping capabilities failed: %s", strerror(-r));
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		r = -errno;
		snprintf(err, errlen, "setting no_new_privs failed: %s", strerror(-r));
		return r;
	}
	dropped = 1;
	return 0;
}
