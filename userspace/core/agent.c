/* agent.c: the agent core (agent.h). Targets, their backends, and the live
 * ls_source every front end reads.
 *
 * One epoll set holds, per target, the backend's ring-buffer fd and a pidfd, so a
 * single wait wakes on episodes and on a target's exit alike. Snapshots are built on
 * demand from the kernel maps (cumulative); an exited or detached target keeps its
 * last numbers in later snapshots (for opts.keep_gone_ns when set, then it is dropped).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "image.h"
#include "proc.h"

/* Backends asked in order; the first whose match() says yes owns the target.
 * A new runtime adds one line here (and declares its ops in agent.h). */
static const struct ls_backend_ops *const backends[] = {
	&ls_backend_refloop,
	&ls_backend_node,	/* nodeuv.c: Node.js / libuv, uprobes (epoll tracepoints as a fallback) */
};

/* Where the kernel's BTF lives (CO-RE needs it); LOOPSCOPE_BTF overrides the path
 * the check looks at, so the "no BTF" error can be tested on a machine that has it. */
#define LS_DEFAULT_BTF "/sys/kernel/btf/vmlinux"

/* How often poll() looks at live state for stalls in progress, at the least. */
#define LIVE_CHECK_MS 50

struct agent_target {
	struct ls_target t;
	int pidfd;			/* -1 once the target is gone */
	struct ls_target_snapshot last;	/* latest collected numbers (owned) */
	pthread_t reaper;		/* detaching after an exit (see target_exited) */
	int reaping;
	struct ls_image_id image;	/* the program it ran when attached (exec check) */
	int image_fd;			/* ls_image_fd_open(): the exec check after a privilege drop */
	uint64_t gone_ns;		/* when it exited or was detached, else 0 */
	uint32_t gone_snaps;		/* snapshots it was in since */
};

struct ls_agent {
	struct ls_source src;		/* first: ls_agent_source() returns its address */
	struct ls_agent_opts opts;
	int epfd;
	struct agent_target **targets;	/* every target ever added, in order */
	uint32_t ntargets;
	int ever_attached;
	uint64_t episodes;
	uint64_t exec_checked_ns;
};

static int verbose_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return vfprintf(stderr, fmt, ap);
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static struct ls_agent *agent_of(struct ls_source *src)
{
	return (struct ls_agent *)src;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* The process exited (it may still be a zombie, or a leader whose other threads are
 * still exiting, when its pidfd is not readable yet). */
/* How long a failed attach waits for a dying target's exit to show (its pidfd). */
#define GONE_SETTLE_MS 250

static int target_gone(int pidfd, pid_t pid)
{
	struct ls_image_id id;

	return pidfd_exited(pidfd) || ls_image_read(pid, &id) || id.state == 'Z' || id.state == 'X';
}

/* Epoll data: the target index, tagged: bit 32 set = pidfd, clear = episode fd. */
#define EV_PIDFD (1ull << 32)

static void deliver(struct ls_agent *ag, const struct ls_episode *ep)
{
	ag->episodes++;
	if (ag->src.on_episode)
		ag->src.on_episode(ep, ag->src.episode_arg);
}

/* Counts every episode a backend delivers, then hands it to the front end. */
static void count_episode(const struct ls_episode *ep, void *arg)
{
	deliver(arg, ep);
}

static void *reap(void *arg)
{
	struct agent_target *at = arg;

	at->t.backend->detach(&at->t);
	return NULL;
}

/* Final collect, then the backend detaches; the numbers stay for later snapshots.
 * async: detach on a thread (joined by ls_agent_free), because unregistering uprobes
 * takes ~1 s here and the other targets' reports must not wait for a dead one. */
static void target_retire(struct ls_agent *ag, struct agent_target *at, uint32_t state, int async)
{
	int efd;

	if (at->t.state != LS_TARGET_ATTACHED)
		return;
	at->t.backend->consume(&at->t, count_episode, ag);
	at->t.backend->collect(&at->t, &at->last);
	efd = at->t.backend->episode_fd(&at->t);
	if (efd >= 0)
		epoll_ctl(ag->epfd, EPOLL_CTL_DEL, efd, NULL);
	if (at->pidfd >= 0) {
		epoll_ctl(ag->epfd, EPOLL_CTL_DEL, at->pidfd, NULL);
		close(at->pidfd);
		at->pidfd = -1;
	}
	if (at->image_fd >= 0) {
		close(at->image_fd);
		at->image_fd = -1;
	}
	ls_proc_release(at->t.info.pid);
	if (async && pthread_create(&at->reaper, NULL, reap, at) == 0)
		at->reaping = 1;
	else
		at->t.backend->detach(&at->t);
	at->t.state = state;
	at->gone_ns = ls_now_mono_ns();
	if (state == LS_TARGET_EXITED)
		at->t.exited_ns = at->gone_ns;
	at->last.state = state;
	at->last.exited_ns = at->t.exited_ns;
}

static void note(struct ls_agent *ag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The target's process exited (quiet: an exec says so in its own words). */
static void target_exited(struct ls_agent *ag, struct agent_target *at, int quiet)
{
	struct ls_episode ep;

	if (at->t.state != LS_TARGET_ATTACHED)
		return;
	/* Drain what the probes said before the exit, then detach. */
	at->t.backend->consume(&at->t, count_episode, ag);
	target_retire(ag, at, LS_TARGET_EXITED, 1);
	memset(&ep, 0, sizeof(ep));
	ep.pid = at->t.info.pid;
	ep.kind = LS_EP_TARGET_EXIT;
	ep.phase = LS_PHASE_NONE;
	ep.start_ns = ep.end_ns = at->t.exited_ns;
	if (!quiet)
		note(ag, "process %d exited", (int)at->t.info.pid);
	deliver(ag, &ep);
}

static void note(struct ls_agent *ag, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ag->opts.note)
		ag->opts.note(line, ag->opts.note_arg);
	else
		fprintf(stderr, "loopscope: %s\n", line);
}

/* An exec in a traced process: the old image ended (reported as an exit); the new one
 * is a new process to identify, attached again if it is still an event loop. */
static void target_execd(struct ls_agent *ag, uint32_t idx)
{
	struct agent_target *at = ag->targets[idx];
	pid_t pid = at->t.info.pid;
	char comm[16], err[512];
	int r;

	snprintf(comm, sizeof(comm), "%s", at->t.info.comm);
	target_exited(ag, at, 1);
	r = ls_agent_add_pid(ag, pid, err, sizeof(err));
	if (r == 0)
		note(ag, "process %d (%s) exec'd %s: attached to the new program", (int)pid, comm,
		     ag->targets[ag->ntargets - 1]->t.info.exe);
	else
		note(ag, "process %d (%s) exec'd another program: no longer traced (%s)", (int)pid, comm, err);
}

/* Exec check: at most every EXEC_CHECK_NS per target, three small /proc reads each. */
#define EXEC_CHECK_NS 200000000ull

static void check_execs(struct ls_agent *ag)
{
	uint64_t now = ls_now_mono_ns();
	uint32_t n = ag->ntargets;	/* targets re-attached below are new entries */

	if (now - ag->exec_checked_ns < EXEC_CHECK_NS)
		return;
	ag->exec_checked_ns = now;
	for (uint32_t i = 0; i < n; i++) {
		struct agent_target *at = ag->targets[i];
		struct ls_image_id id;

		if (at->t.state != LS_TARGET_ATTACHED || at->pidfd < 0)
			continue;
		/* An exit is the pidfd's to report. */
		if (ls_image_read(at->t.info.pid, &id) == 0 && id.state != 'Z' && id.state != 'X' &&
		    !pidfd_exited(at->pidfd) &&
		    ((at->image_fd >= 0 && ls_image_fd_gone(at->image_fd, &at->image)) || ls_image_changed(&at->image, &id)))
			target_execd(ag, i);
	}
}

static uint32_t attached_count(const struct ls_agent *ag)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < ag->ntargets; i++)
		n += ag->targets[i]->t.state == LS_TARGET_ATTACHED;
	return n;
}

/* timeout_ms < 0: until something is delivered (an episode, an exit) or a signal. */
static int agent_poll(struct ls_source *src, int timeout_ms)
{
	struct ls_agent *ag = agent_of(src);
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : ls_now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t delivered = ag->episodes;

	for (;;) {
		struct epoll_event evs[16];
		uint64_t now = ls_now_mono_ns();
		int wait_ms, n;

		if (ag->ever_attached && !attached_count(ag))
			return -ENODATA;
		if (now >= deadline)
			wait_ms = 0;
		else if (deadline - now >= (uint64_t)LIVE_CHECK_MS * 1000000ull)
			wait_ms = LIVE_CHECK_MS;
		else
			wait_ms = (int)((deadline - now + 999999) / 1000000);
		n = epoll_wait(ag->epfd, evs, 16, wait_ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n < 0)
			return 0;	/* a signal: let the caller look at its flags */
		for (int i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			uint32_t idx = (uint32_t)d;

			if (idx < ag->ntargets && (d & EV_PIDFD))
				target_exited(ag, ag->targets[idx], 0);
		}
		check_execs(ag);
		/* Episodes (and stalls in progress) from every live target. */
		for (uint32_t i = 0; i < ag->ntargets; i++) {
			struct agent_target *at = ag->targets[i];

			if (at->t.state == LS_TARGET_ATTACHED)
				at->t.backend->consume(&at->t, count_episode, ag);
		}
		if (ls_now_mono_ns() >= deadline || (timeout_ms < 0 && ag->episodes != delivered))
			return 0;
	}
}

static int copy_target(struct ls_target_snapshot *dst, const struct ls_target_snapshot *src)
{
	*dst = *src;
	dst->loops = NULL;
	if (src->nloops) {
		dst->loops = malloc(sizeof(*dst->loops) * src->nloops);
		if (!dst->loops)
			return -ENOMEM;
		memcpy(dst->loops, src->loops, sizeof(*dst->loops) * src->nloops);
	}
	return 0;
}

static void self_stats(struct ls_agent *ag, struct ls_self_stats *s)
{
	struct rusage ru;

	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < ag->ntargets; i++) {
		struct agent_target *at = ag->targets[i];

		if (at->t.state != LS_TARGET_ATTACHED)
			continue;
		s->attached_targets++;
		s->probe_hits += at->t.backend->probe_hits(&at->t);
		s->ringbuf_drops += at->t.backend->drops(&at->t);
	}
	s->episodes = ag->episodes;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		s->cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	s->rss_bytes = ls_proc_self_rss();
}

/* The epoll data of an attached target that moved to index idx. */
static void rewatch(struct ls_agent *ag, struct agent_target *at, uint32_t idx)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = idx | EV_PIDFD };
	int efd;

	if (at->pidfd >= 0)
		epoll_ctl(ag->epfd, EPOLL_CTL_MOD, at->pidfd, &ev);
	efd = at->t.state == LS_TARGET_ATTACHED ? at->t.backend->episode_fd(&at->t) : -1;
	ev.data.u64 = idx;
	if (efd >= 0)
		epoll_ctl(ag->epfd, EPOLL_CTL_MOD, efd, &ev);
}

/* Drop the targets that left long enough ago and were in enough snapshots since (front
 * ends saw their end), once their detach thread is done; the rest keep their order. */
static void prune_gone(struct ls_agent *ag, uint64_t now)
{
	uint64_t keep = ag->opts.keep_gone_ns;
	uint32_t n = 0;

	if (!keep)
		return;	/* kept for the agent's life */

	for (uint32_t i = 0; i < ag->ntargets; i++) {
		struct agent_target *at = ag->targets[i];

		if (at->t.state != LS_TARGET_ATTACHED && at->gone_snaps >= LS_AGENT_GONE_SNAPSHOTS &&
		    now >= at->gone_ns && now - at->gone_ns >= keep &&
		    (!at->reaping || pthread_tryjoin_np(at->reaper, NULL) == 0)) {
			if (at->pidfd >= 0)
				close(at->pidfd);
			if (at->image_fd >= 0)
				close(at->image_fd);
			free(at->last.loops);
			free(at);
			continue;
		}
		if (n != i) {
			ag->targets[n] = at;
			rewatch(ag, at, n);
		}
		n++;
	}
	ag->ntargets = n;
}

static int agent_snapshot(struct ls_source *src, struct ls_snapshot *out)
{
	struct ls_agent *ag = agent_of(src);
	int r = 0;

	memset(out, 0, sizeof(*out));
	prune_gone(ag, ls_now_mono_ns());
	for (uint32_t i = 0; i < ag->ntargets; i++) {
		struct agent_target *at = ag->targets[i];

		if (at->t.state == LS_TARGET_ATTACHED) {
			r = at->t.backend->collect(&at->t, &at->last);
			if (r)
				return r;
		}
	}
	out->mono_ns = ls_now_mono_ns();
	out->wall_ns = ls_now_wall_ns();
	self_stats(ag, &out->self);
	if (!ag->ntargets)
		return 0;
	out->targets = calloc(ag->ntargets, sizeof(*out->targets));
	if (!out->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < ag->ntargets; i++) {
		r = copy_target(&out->targets[i], &ag->targets[i]->last);
		if (r) {
			ls_snapshot_free(out);
			return r;
		}
		out->ntargets++;
	}
	for (uint32_t i = 0; i < ag->ntargets; i++)
		if (ag->targets[i]->t.state != LS_TARGET_ATTACHED)
			ag->targets[i]->gone_snaps++;
	return 0;
}

static int agent_fd(struct ls_source *src)
{
	return agent_of(src)->epfd;
}

static void agent_destroy(struct ls_source *src)
{
	(void)src;	/* owned by the agent: ls_agent_free() frees it */
}

static const struct ls_source_ops agent_source_ops = {
	.name = "agent",
	.poll = agent_poll,
	.snapshot = agent_snapshot,
	.fd = agent_fd,
	.destroy = agent_destroy,
};

int ls_agent_new(const struct ls_agent_opts *opts, struct ls_agent **out, char *err, size_t errlen)
{
	struct ls_agent *ag;

	*out = NULL;
	ag = calloc(1, sizeof(*ag));
	if (!ag) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ag->src.ops = &agent_source_ops;
	if (opts)
		ag->opts = *opts;
	if (!ag->opts.stall_threshold_ns)
		ag->opts.stall_threshold_ns = 100000000ull;
	ag->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ag->epfd < 0) {
		int r = -errno;
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		free(ag);
		return r;
	}
	libbpf_set_print(ag->opts.verbose ? verbose_print : quiet_print);
	*out = ag;
	return 0;
}

static int check_btf(char *err, size_t errlen)
{
	const char *path = getenv("LOOPSCOPE_BTF");

	if (!path || !*path)
		path = LS_DEFAULT_BTF;
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(err, errlen, "no BTF: %s is missing; loopscope needs a kernel built with "
		 "CONFIG_DEBUG_INFO_BTF=y", path);
	return -ENOENT;
}

/* pidfd_open(pid), with the error said as it is. */
static int open_pidfd(pid_t pid, char *err, size_t errlen)
{
	int fd = pidfd_open_(pid), r;
	pid_t tgid;

	if (fd >= 0)
		return fd;
	r = errno == ESRCH || errno == EINVAL ? -ESRCH : -errno;
	/* ENOENT: pid names a thread, not a thread-group leader. */
	if (r == -ENOENT && (tgid = ls_proc_tgid(pid)) > 0 && tgid != pid)
		snprintf(err, errlen, "%d is a thread of process %d; give the process id", (int)pid, (int)tgid);
	else if (r == -ENOENT || r == -ESRCH)
		snprintf(err, errlen, "no such process: %d", (int)pid);
	else if (r == -EPERM)
		snprintf(err, errlen, "not permitted to trace process %d: %s", (int)pid, ls_perm_advice());
	else
		snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(-r));
	return r;
}

/* Identify the image in at's process and attach its backend. 0, or -errno with err. */
static int attach_image(struct ls_agent *ag, struct agent_target *at, pid_t pid, char *err, size_t errlen)
{
	const struct ls_backend_ops *be = NULL;
	struct ls_target_info ti;
	int r, id_r;

	/* /proc/PID/maps and mem stay readable after the front end drops its privileges
	 * (stack symbolization, V8 names, loop names, the counters tier read them). */
	ls_proc_release(pid);
	ls_proc_hold(pid);
	id_r = ls_target_identify(pid, &ti, err, errlen);
	if (id_r && id_r != -ENOTSUP)
		return id_r;
	snprintf(at->last.comm, sizeof(at->last.comm), "%s", ti.comm);
	snprintf(at->last.exe, sizeof(at->last.exe), "%s", ti.exe);
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]) && !be; i++)
		if (backends[i]->match(&ti))
			be = backends[i];
	if (!be) {
		if (!id_r)
			snprintf(err, errlen, "process %d (%s): no backend for runtime %s", (int)pid, ti.comm,
				 ls_runtime_name(ti.runtime));
		return -ENOTSUP;
	}
	if ((r = check_btf(err, errlen)))
		return r;
	at->t.info = ti;
	at->t.backend = be;
	at->t.state = LS_TARGET_DETACHED;
	return be->attach(&at->t, &ti, &ag->opts, err, errlen);
}

/* Put an attached target into the agent's epoll set (its pidfd, its episode fd). */
static int watch_target(struct ls_agent *ag, struct agent_target *at, uint32_t idx, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = idx | EV_PIDFD };
	int efd;

	if (epoll_ctl(ag->epfd, EPOLL_CTL_ADD, at->pidfd, &ev)) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		return -errno;
	}
	efd = at->t.backend->episode_fd(&at->t);
	ev.data.u64 = idx;
	if (efd >= 0 && epoll_ctl(ag->epfd, EPOLL_CTL_ADD, efd, &ev)) {
		int r = -errno;

		snprintf(err, errlen, "epoll_ctl: %s", strerror(-r));
		epoll_ctl(ag->epfd, EPOLL_CTL_DEL, at->pidfd, NULL);
		return r;
	}
	return 0;
}

/* How many times an exec during the attach window is followed to the new image. */
#define ATTACH_EXEC_RETRIES 3

/* What attach_following_execs() found, for the messages of ls_agent_add_pid(). */
struct attach_result {
	struct ls_image_id image;	/* the image attached to, when it succeeded */
	int tries;			/* execs followed */
	int already;			/* gone (a zombie) before the first attempt */
	char why[512];			/* the attach's own error */
};

/* A new target for pid, with room for it in ag->targets (not yet listed there).
 * 0, -EEXIST when pid is traced already, or -ENOMEM; with err. */
static int new_target(struct ls_agent *ag, pid_t pid, struct agent_target **out, char *err, size_t errlen)
{
	struct agent_target *at, **grown;

	for (uint32_t i = 0; i < ag->ntargets; i++) {
		if (ag->targets[i]->t.info.pid == pid && ag->targets[i]->t.state == LS_TARGET_ATTACHED) {
			snprintf(err, errlen, "process %d is already traced", (int)pid);
			return -EEXIST;
		}
	}
	grown = realloc(ag->targets, sizeof(*ag->targets) * (ag->ntargets + 1));
	if (grown)
		ag->targets = grown;
	at = calloc(1, sizeof(*at));
	if (!grown || !at) {
		free(at);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	at->image_fd = -1;
	*out = at;
	return 0;
}

/* Attach to pid's image; when it exec'd meanwhile, detach and try the new image, up to
 * ATTACH_EXEC_RETRIES times. Returns 0 (attached to res->image), -ECHILD (it exited),
 * -EAGAIN (it kept exec'ing), or the attach's error with res->why. */
static int attach_following_execs(struct ls_agent *ag, struct agent_target *at, pid_t pid,
				  struct attach_result *res)
{
	struct ls_image_id id0;
	int r = 0, tries;

	res->already = 0;
	for (tries = 0; tries <= ATTACH_EXEC_RETRIES; tries++) {
		int changed;

		if (ls_image_read(pid, &id0) || target_gone(at->pidfd, pid)) {
			res->already = tries == 0;
			r = -ECHILD;
			break;
		}
		r = attach_image(ag, at, pid, res->why, sizeof(res->why));
		/* Whatever the attach said, a process that exited or exec'd meanwhile is the
		 * truth: its own words ("no such file", "cannot read .../exe") are symptoms. */
		changed = ls_image_read(pid, &res->image) || ls_image_changed(&id0, &res->image);
		if (r && !changed && !target_gone(at->pidfd, pid)) {
			/* A process being killed loses its memory before its pidfd says it
			 * exited: an attach that failed then ("No such file or directory")
			 * waits a moment for the exit to show before it counts as an error. */
			struct pollfd pfd = { .fd = at->pidfd, .events = POLLIN };

			poll(&pfd, 1, GONE_SETTLE_MS);
		}
		if (target_gone(at->pidfd, pid)) {
			if (!r)
				at->t.backend->detach(&at->t);
			r = -ECHILD;
			break;
		}
		if (!changed)
			break;
		if (!r)
			at->t.backend->detach(&at->t);
		r = -EAGAIN;	/* it exec'd: the new image is a new process to identify */
	}
	res->tries = tries;
	return r;
}

/* Say in err why pid, gone or exec'd into something untraced during the attach (r), is
 * not traced. */
static void exit_message(const struct agent_target *at, pid_t pid, int r, const struct attach_result *res,
			 char *err, size_t errlen)
{
	if (r != -ECHILD)
		snprintf(err, errlen, "process %d exec'd %s while being attached, which is not traced: %s",
			 (int)pid, at->last.exe[0] ? at->last.exe : "another program", res->why);
	else if (res->already)
		snprintf(err, errlen, "process %d has already exited (a zombie its parent has not "
			 "reaped yet): nothing to trace", (int)pid);
	else
		snprintf(err, errlen, "process %d exited while being attached%s%s%s", (int)pid,
			 at->last.comm[0] ? " (" : "", at->last.comm, at->last.comm[0] ? ")" : "");
}

/* List at as a target that exited, its note taken from err; it owns no pidfd after. */
static void list_exited(struct ls_agent *ag, struct agent_target *at, pid_t pid, const char *err)
{
	char pfx[32];
	size_t n;

	/* its fate for front ends, without the "process PID " they show anyway */
	n = (size_t)snprintf(pfx, sizeof(pfx), "process %d ", (int)pid);
	snprintf(at->last.note, sizeof(at->last.note), "%s", strncmp(err, pfx, n) ? err : err + n);
	at->t.state = at->last.state = LS_TARGET_EXITED;
	at->t.exited_ns = at->last.exited_ns = at->gone_ns = ls_now_mono_ns();
	at->t.info.pid = pid;
	close(at->pidfd);
	at->pidfd = -1;
	ls_proc_release(pid);
	ag->targets[ag->ntargets++] = at;
}

/* List at as attached to image. */
static void list_attached(struct ls_agent *ag, struct agent_target *at, pid_t pid, const struct ls_image_id *image)
{
	at->image = *image;
	at->image_fd = ls_image_fd_open(pid, image);
	at->t.state = LS_TARGET_ATTACHED;
	at->t.attached_ns = ls_now_mono_ns();
	at->last.runtime = at->t.info.runtime;
	at->last.state = LS_TARGET_ATTACHED;
	at->last.attached_ns = at->t.attached_ns;
	ag->targets[ag->ntargets++] = at;
	ag->ever_attached = 1;
}

int ls_agent_add_pid(struct ls_agent *ag, pid_t pid, char *err, size_t errlen)
{
	struct agent_target *at = NULL;
	struct attach_result res;
	int r;

	r = new_target(ag, pid, &at, err, errlen);
	if (r)
		return r;
	/* pidfd first: from here on a reused PID cannot be mistaken for this process. */
	at->pidfd = open_pidfd(pid, err, errlen);
	if (at->pidfd < 0) {
		r = at->pidfd;
		goto cleanup;
	}
	at->last.pid = pid;
	r = attach_following_execs(ag, at, pid, &res);
	if (r == 0) {
		r = watch_target(ag, at, ag->ntargets, res.why, sizeof(res.why));
		if (r)	/* attached, but cannot be watched: nothing may stay attached */
			at->t.backend->detach(&at->t);
	}
	if (r == -ECHILD || (r && res.tries > 0 && r != -EAGAIN)) {
		/* It exited (or exec'd into something we do not trace) during the attach: that
		 * is a target exit, not an error; it is listed as exited. */
		exit_message(at, pid, r, &res, err, errlen);
		list_exited(ag, at, pid, err);
		return -ECHILD;
	}
	if (r == -EAGAIN) {
		snprintf(err, errlen, "process %d exec'd %d times while being attached; not traced", (int)pid,
			 res.tries);
		goto cleanup;
	}
	if (r) {
		snprintf(err, errlen, "%s", res.why);
		goto cleanup;
	}
	list_attached(ag, at, pid, &res.image);
	return 0;

cleanup:
	if (at->pidfd >= 0) {
		close(at->pidfd);
		ls_proc_release(pid);	/* attach_image ran: no other target of pid is attached */
	}
	free(at->last.loops);
	free(at);
	return r;
}

struct ls_source *ls_agent_source(struct ls_agent *ag)
{
	return &ag->src;
}

void ls_agent_free(struct ls_agent *ag)
{
	if (!ag)
		return;
	for (uint32_t i = 0; i < ag->ntargets; i++) {
		struct agent_target *at = ag->targets[i];

		if (at->t.state == LS_TARGET_ATTACHED) {
			at->t.backend->detach(&at->t);
			ls_proc_release(at->t.info.pid);
		}
		if (at->reaping)
			pthread_join(at->reaper, NULL);
		if (at->pidfd >= 0)
			close(at->pidfd);
		if (at->image_fd >= 0)
			close(at->image_fd);
		free(at->last.loops);
		free(at);
	}
	free(ag->targets);
	if (ag->epfd >= 0)
		close(ag->epfd);
	free(ag);
}

static int cmp_loop_tid(const void *a, const void *b)
{
	const struct ls_loop_snapshot *x = a, *y = b;

	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

int ls_collect_loops(int map_fd, void *scratch, uint32_t max, ls_loop_fill_fn fill, void *ctx,
		     struct ls_target_snapshot *out)
{
	struct ls_loop_snapshot *loops = NULL;
	uint32_t key, next, n = 0, cap = 0;
	int r;

	/* A loop snapshot is ~90 KB and fill() writes all of it: grow as loops are
	 * found (most targets have one) instead of zeroing room for max. */
	r = bpf_map_get_next_key(map_fd, NULL, &next);
	while (r == 0 && n < max) {
		key = next;
		if (n == cap) {
			uint32_t c = cap ? cap * 2 : (out->nloops ? out->nloops : 1);
			struct ls_loop_snapshot *more;

			c = c < max ? c : max;
			more = realloc(loops, c * sizeof(*loops));
			if (!more) {
				free(loops);
				return -ENOMEM;
			}
			loops = more;
			cap = c;
		}
		if (bpf_map_lookup_elem(map_fd, &key, scratch) == 0) {
			const char *prev_name = NULL;

			for (uint32_t i = 0; out->loops && i < out->nloops && !prev_name; i++)
				if (out->loops[i].tid == key)
					prev_name = out->loops[i].name;
			if (!fill(ctx, key, scratch, prev_name, &loops[n]))
				n++;
		}
		r = bpf_map_get_next_key(map_fd, &key, &next);
	}
	if (n) {
		qsort(loops, n, sizeof(*loops), cmp_loop_tid);
	} else {
		free(loops);
		loops = NULL;
	}
	free(out->loops);
	out->loops = loops;
	out->nloops = n;
	return 0;
}
