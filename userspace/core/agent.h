/* agent.h: the agent core. It attaches probe sets to targets, reads their kernel
 * maps into snapshots, and delivers episodes from the ring buffers. Front ends use
 * it through ls_agent_source() (snapshot.h) and never touch BPF themselves.
 *
 * Runtimes plug in as backends (struct ls_backend_ops): the reference loop over
 * USDT (refloop.c), Node.js / libuv over uprobes (nodeuv.c).
 */
#ifndef LS_AGENT_H
#define LS_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshot.h"
#include "stacks.h"

struct ls_agent;
struct ls_target;

struct ls_agent_opts {
	uint64_t stall_threshold_ns;	/* phase / drain past this = episode (default 100 ms) */
	const char *tier;		/* Node probe tier: "light", "phases" or "counters"; NULL = default */
	int verbose;			/* libbpf debug output to stderr */
	/* One line about a target the agent handled on its own (an exec); NULL: stderr. */
	void (*note)(const char *line, void *arg);
	void *note_arg;
	/* `profile`: LS_PROFILE_ALL samples the loop threads all the time and hands
	 * every symbolized sample to on_stack (frames leaf first, strings owned by the
	 * agent's stack table); LS_PROFILE_STALLS keeps every stack of each episode in
	 * its ls_episode (not only the dominant few). */
	int profile;
	void (*on_stack)(void *arg, int32_t pid, uint32_t tid, const struct ls_frame *frames, uint32_t n);
	void *stack_arg;
	/* > 0: a target that exited or was detached stays in snapshots, with its last
	 * numbers, for at least LS_AGENT_GONE_SNAPSHOTS snapshots and this long after it
	 * left, then is dropped and its memory freed, so an agent that follows short-lived
	 * processes for days (`serve --exe`) stays bounded. 0: kept for the agent's life
	 * (stat, top and record, whose reports cover the whole run by snapshot position). */
	uint64_t keep_gone_ns;
};
#define LS_AGENT_GONE_SNAPSHOTS 2
enum { LS_PROFILE_NONE, LS_PROFILE_ALL, LS_PROFILE_STALLS };

/* What target discovery found in /proc/PID (libelf over the exe and its mappings). */
struct ls_target_info {
	pid_t pid;
	char comm[16];
	char exe[256];		/* /proc/PID/exe resolved */
	char exe_proc[64];	/* "/proc/PID/exe": always openable while the process lives */
	uint32_t runtime;	/* enum ls_runtime */
	char lib[256];		/* the ELF that holds the probes (exe or a mapped .so), as seen from us */
	uint64_t lib_base;	/* load address of lib in the target (for .so offsets) */
	uint32_t found;		/* LS_FOUND_* bits: what discovery saw (runtime is only
				 * meaningful when found != 0) */
};
enum {
	LS_FOUND_LSL_USDT = 1u << 0,	/* the "loopscope" USDT provider (in lib) */
	LS_FOUND_UV_RUN = 1u << 1,	/* uv_run defined (in lib) */
	LS_FOUND_UV_IO_POLL = 1u << 2,	/* uv__io_poll defined (in lib) */
	LS_FOUND_NODE = 1u << 3,	/* node::Start in the executable */
};

/* A runtime backend. attach() owns everything it creates and detach() frees it all,
 * so a failed attach leaves nothing in the kernel. Errors: negative errno plus a
 * one-line message in err (what went wrong and what to do). */
struct ls_backend_ops {
	const char *name;
	/* 1 if this backend handles the target (after libelf discovery), else 0. */
	int (*match)(const struct ls_target_info *ti);
	int (*attach)(struct ls_target *t, const struct ls_target_info *ti,
		      const struct ls_agent_opts *opts, char *err, size_t errlen);
	/* Fill out->loops / nloops / tier / note from the kernel maps (cumulative). */
	int (*collect)(struct ls_target *t, struct ls_target_snapshot *out);
	/* Ring-buffer fd for epoll, or -1; consume() then drains it into episodes. */
	int (*episode_fd)(struct ls_target *t);
	int (*consume)(struct ls_target *t, ls_episode_fn fn, void *arg);
	uint64_t (*probe_hits)(struct ls_target *t);
	uint64_t (*drops)(struct ls_target *t);
	void (*detach)(struct ls_target *t);
};

/* The backends (agent.c keeps the table that asks them in order). */
extern const struct ls_backend_ops ls_backend_refloop;	/* refloop.c: reference loop, USDT */
extern const struct ls_backend_ops ls_backend_node;	/* nodeuv.c: Node.js / libuv */

/* Per-target state a backend may hang its own data on. */
struct ls_target {
	struct ls_target_info info;
	const struct ls_backend_ops *backend;
	void *priv;			/* backend-owned */
	uint64_t attached_ns;
	uint64_t exited_ns;
	uint32_t state;			/* enum ls_target_state */
};

int ls_agent_new(const struct ls_agent_opts *opts, struct ls_agent **out, char *err, size_t errlen);
/* Attach to one process. -ESRCH no such process, -EPERM not permitted, -ENOTSUP no
 * runtime we know, -ENOENT no BTF; err says which and what to do. -ECHILD: the process
 * exited (or exec'd a program we do not trace) while being attached: a target exit,
 * not an error; it is listed as exited in snapshots. An exec during the attach is
 * followed to the new program. An exec later is noticed by ls_source_poll() (within
 * 200 ms of a poll): the old program is reported as exited and the new one attached
 * as a new target if it is still an event loop (opts.note says which). */
int ls_agent_add_pid(struct ls_agent *ag, pid_t pid, char *err, size_t errlen);
/* The source front ends read; owned by the agent (do not destroy it separately). */
struct ls_source *ls_agent_source(struct ls_agent *ag);
void ls_agent_free(struct ls_agent *ag);	/* detaches everything */

/* 1 for the Node/libuv probe tiers "light", "phases" and "counters", else 0 (for the
 * commands' --probes; the other option parsers are in lib/options.h). */
int ls_probe_tier_valid(const char *tier);

/* For backends: walk a BPF hash map of per-loop values keyed by loop thread id, calling
 * fill() for each value (read into scratch, at most max loops) into a fresh array sorted
 * by tid that replaces out->loops. prev_name is the name the loop had in the previous
 * collect (a thread that exited keeps its last name), or NULL. fill() returns 0, or 1
 * to leave the value out (nothing a user could read as a loop). 0 or -ENOMEM. */
typedef int (*ls_loop_fill_fn)(void *ctx, uint32_t tid, const void *val, const char *prev_name,
			       struct ls_loop_snapshot *o);
int ls_collect_loops(int map_fd, void *scratch, uint32_t max, ls_loop_fill_fn fill, void *ctx,
		     struct ls_target_snapshot *out);

/* Discovery (target.c): fill *ti for pid; 0 or -errno with a one-line err. */
int ls_target_identify(pid_t pid, struct ls_target_info *ti, char *err, size_t errlen);

#endif /* LS_AGENT_H */
