/* nodeuv_int.h: inside the Node.js / libuv backend, shared by its five files and by
 * nothing else (the backend's interface is node.h):
 *
 *   nodeuv_plan.c      the plan from the binary: symbols, offsets, sites, poll mechanism
 *   nodeuv.c           load and attach what the plan says, the ops table
 *   nodeuv_snapshot.c  the loops map into loop snapshots, loops named main/worker N
 *   nodeuv_counters.c  libuv's own counters read from outside: utilization where the
 *                      loop keeps idle time, and the whole `--probes counters` tier
 *   nodeuv_stacks.c    the stack sampler and its samples: frames, the stacks of each
 *                      episode, starvation told from a stall by JS frames
 *
 * One struct node_priv per attached process (ls_target.priv), owned by nodeuv.c.
 * Functions here carry a double-underscore prefix (nu__): internal, non-static.
 */
#ifndef LS_NODEUV_INT_H
#define LS_NODEUV_INT_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "libuv.h"
#include "nodeuv.h"
#include "sampler.h"
#include "stacks.h"
#include "stacktab.h"

#define MAX_BSITES 24
#define MAX_RET_SITES 16
#define MAX_EPSITES 8
#define MAX_PSITES 4
#define MAX_SPANS 16		/* long spans whose samples are kept until they end */
#define MAX_LINKS (8 + MAX_BSITES + MAX_RET_SITES + MAX_EPSITES + 2 * MAX_PSITES)
#define MAX_MULTI 4

/* Symbols the plan needs, by index. */
enum {
	S_UV_RUN, S_UV_VERSION, S_RUN_TIMERS, S_RUN_IDLE, S_RUN_PREPARE, S_IO_POLL, S_RUN_CHECK,
	S_DEFAULT_LOOP, S_MICROTASKS, S_CB_CLOSE, S_COLLECT_GARBAGE, S_GC_PAUSE_START, S_GC_PAUSE_STOP,
	S_METADATA, S_ALLOC_THREAD_ID, S_NEXT_THREAD_ID, S_WORKER_CTOR,
	S_TIMER_STOP, S_PLATFORM_FLUSH, S_NSYMS,
};

/* How the loop's poll is timed (the numbers are the same whichever is used). */
enum poll_mode {
	POLL_TRACEPOINTS,	/* epoll syscall tracepoints: no trap, a tax on every syscall */
	POLL_EPOLL_UPROBES,	/* uprobes on uv__io_poll's epoll call and after it: 2 traps a call */
	POLL_ENTRY,		/* one uprobe at uv_run's call of uv__io_poll + libuv's idle counter */
	POLL_NONE,		/* counters tier: nothing in the loop thread */
};

/* Everything decided from the target's ELF before anything is loaded (nodeuv_plan.c). */
struct node_plan {
	uint32_t runtime;		/* LS_RT_NODE or LS_RT_LIBUV */
	char path[PATH_MAX];		/* the ELF holding libuv, openable by us and libbpf */
	uint64_t bias;			/* load bias of path in the target */
	uint32_t version;		/* UV_VERSION_HEX or 0 */
	struct ls_elf_sym sym[S_NSYMS];
	int have_off;
	int off_guessed;		/* no version: the layout must pass lu_loop_check() */
	struct lu_offsets off;
	int have_epoll;			/* epoll by uprobes in uv__io_poll, not tracepoints */
	int nep;
	struct lu_site epsites[MAX_EPSITES];	/* call (cookie 0), after it (1), ... */
	int npoll;
	struct lu_site psites[MAX_PSITES];	/* uv_run's calls of uv__io_poll */
	uint32_t poll_mode;		/* enum poll_mode */
	int metrics_ok;			/* the default loop keeps libuv's idle time (checked live) */
	int counters;			/* counters tier: no probe at all */
	uint64_t default_loop;		/* its address in the target, or 0 */
	int have_timers;
	struct lu_site timers;		/* entry of uv__run_timers (light tier fallback) */
	int ntf;
	struct lu_site tfire[MAX_PSITES];	/* uv__run_timers' calls of uv_timer_stop (light) */
	int phases;			/* uv_run boundaries in use */
	int nb;
	struct lu_site bsites[MAX_BSITES];
	int have_gc;
	int ngc_sites, gc_tracer;
	/* ends (cookie 1), then starts (0): calls of GCTracer::Stop/StartObservablePause
	 * in CollectGarbage when gc_tracer, else its returns and entry */
	struct lu_site gc_sites[MAX_RET_SITES + 1];
	int have_worker_ids;
	uint32_t worker_thread_id;	/* offsetof(node::worker::Worker, thread_id_) */
	/* where the drains run (starvation classification), both or neither */
	int nmicro, ntick;
	struct lu_range micro[NU_NRANGES];	/* MicrotaskQueue::RunMicrotasks and its parts */
	struct lu_range tick[NU_NRANGES];	/* InternalCallbackScope::Close and its parts */
	char tier[16];
	char note[320];
	char tier_why[200];		/* why the tier asked for could not be had, or "" */
	char poll_why[160];		/* the calibration figures behind poll_mode */
};

/* The samples of one long not-polling span, until it ends (an episode) or not. */
struct span_acc {
	struct ls_stack_span sp;	/* first: the slot as core/stacktab.h sees it */
	uint64_t cat[3];		/* samples by what they were inside: SPAN_SYNC, ... */
	uint64_t seen;			/* samples that arrived for it */
};
enum { SPAN_SYNC, SPAN_TICK, SPAN_MICRO };

/* What user space learned of one loop from its samples. */
struct sampled_loop {
	uint32_t tid;
	uint64_t span;			/* span of where[] */
	char where[192];
	uint64_t where_ns;
	int64_t stall, tick, micro;	/* episodes moved between kinds by JS frames */
};

/* A loop whose utilization comes from libuv's idle-time counter (what Node's
 * eventLoopUtilization() reads) rather than from the probes: busy and idle since
 * base_ns, read at each collect. */
struct libuv_counters {
	uint32_t tid;			/* 0: free slot */
	int usable;			/* 0: counter unreadable or off, use the probes' figures */
	uint64_t loop;
	struct lu_metrics m;
	uint64_t base_ns, base_idle;	/* first read */
	uint64_t busy_ns, idle_ns;	/* at the last good read */
	uint64_t off_busy, off_idle;	/* the probes' figures when the base was taken */
	uint64_t base_count;		/* loop_count at base (counters tier) */
};

struct counters_tier;	/* nodeuv_counters.c */

struct node_priv {
	struct node_plan plan;
	struct nodeuv *skel;
	struct bpf_link *links[MAX_LINKS];	/* tracepoints; uprobes without uprobe_multi */
	size_t nlinks;
	int multi[MAX_MULTI];			/* uprobe_multi link fds */
	size_t nmulti;
	struct ls_sampler slow;			/* SAMPLE_HZ, always on */
	struct ring_buffer *rb;
	struct ring_buffer *rbs;		/* raw samples */
	int wake_fd;				/* epoll over both rings */
	struct ls_sampler fast;			/* FAST_HZ, enabled while a span is hot */
	int fast_on;
	uint32_t hot[NU_MAX_LOOPS];		/* loops in a long span (tids) */
	uint32_t nhot;
	struct ls_stacktab *tab;
	struct ls_unwinder *unw;
	struct ls_frame *fbuf;			/* scratch for one sample's frames */
	struct span_acc spans[MAX_SPANS];
	struct sampled_loop sampled[NU_MAX_LOOPS];
	uint32_t nsampled;
	int profile;				/* LS_PROFILE_* */
	void (*on_stack)(void *arg, int32_t pid, uint32_t tid, const struct ls_frame *f, uint32_t n);
	void *stack_arg;
	struct nu_loop *val;		/* scratch for one map value (too big for the stack) */
	pid_t pid;
	uint64_t stall_ns;
	char version[24];		/* process.versions.node, read at attach */
	struct loop_label {		/* loops named so far (loop_label()) */
		uint32_t tid;
		uint64_t loop;
		char label[32];
	} labels[NU_MAX_LOOPS];
	size_t nlabels;
	ls_episode_fn fn;		/* set only while consume() runs */
	void *fn_arg;
	struct libuv_counters *uvc;	/* libuv's counters per loop (NU_MAX_LOOPS) */
	struct counters_tier *ct;	/* counters tier only */
};

/* ---- nodeuv_plan.c ---- */

/* The plan for target ti and tier (NULL: the default) from its ELF: symbols, offsets,
 * probe sites, the poll mechanism, the note. 0 or -errno with err (not a libuv
 * program, an unknown tier, counters where the loop keeps no idle time). */
int nu__plan_make(const struct ls_target_info *ti, const char *tier, struct node_plan *pl, char *err,
		  size_t errlen);
/* The plan's loop offsets checked on ti's live default loop; a layout that reads off
 * demotes the plan to what needs no offsets (said in the note). 0, or -ENOTSUP with
 * err for the counters tier, which needs them. */
int nu__plan_check_loop(const struct ls_target_info *ti, struct node_plan *pl, char *err, size_t errlen);
/* Append one item to the plan's note ("; "-separated). */
void nu__note_add(struct node_plan *pl, const char *text);

/* ---- nodeuv_snapshot.c ---- */

/* Every loop of the loops map into out->loops (ls_collect_loops(): a loop whose thread
 * exited keeps its last name), as of now. 0 or -ENOMEM. */
int nu__loops_collect(struct node_priv *p, uint64_t now, struct ls_target_snapshot *out);

/* ---- nodeuv_counters.c ---- */

/* The libuv counters slot of loop thread tid; with create, taken on first sight for
 * loop (its uv_loop_t, 0 when not known: that loop then keeps the probes' figures for
 * good, so its cumulative numbers never switch source). NULL when there is none. */
struct libuv_counters *nu__libuv_counters(struct node_priv *p, uint32_t tid, uint64_t loop, int create);
/* Read x's counters at now. The first read decides for good whether the loop's
 * utilization comes from them (usable) and sets the base; a later failed read keeps
 * the last figures. 0 or -errno (-ENOENT for x NULL). */
int nu__libuv_counters_read(struct node_priv *p, struct libuv_counters *x, uint64_t now);

/* Counters tier: start the timerfd and take the main loop's first reading. 0 or
 * -errno with err; nu__counters_free() undoes it, also after a failure. */
int nu__counters_start(struct node_priv *p, char *err, size_t errlen);
void nu__counters_free(struct node_priv *p);
/* The fd the agent waits on (the timerfd), or -1 before nu__counters_start(). */
int nu__counters_fd(const struct node_priv *p);
/* One wake-up of that fd: read the main loop's counters and report a stall that began
 * or ended through p->fn. */
void nu__counters_consume(struct node_priv *p);
/* The main loop's snapshot from libuv's counters alone. 0 or -ENOMEM. */
int nu__counters_collect(struct node_priv *p, uint64_t now, struct ls_target_snapshot *out);

/* ---- nodeuv_stacks.c ---- */

/* The cpu-clock perf events on every CPU that run the sampler: SAMPLE_HZ enabled, the
 * fast set opened disabled. 0, or -errno when no CPU's event could be had. */
int nu__sampler_open(struct node_priv *p);
/* The samples ring, the unwinder and, where the episodes ring (p->rb) exists, one
 * epoll fd (wake_fd) over both rings; turns the sampler's output on. 0 or -errno. */
int nu__samples_open(struct node_priv *p);
/* Counters tier: the FAST_HZ set alone, running nu_ct_sample, opened stopped. 0 or
 * -errno. */
int nu__ct_sampler_open(struct node_priv *p);
/* Counters tier: take loop tid's stacks for the span starting at span (its stopped
 * clock, ns), or stop taking them (span 0). Does nothing without a sampler. */
void nu__ct_arm(struct node_priv *p, uint32_t tid, uint64_t span);
/* Everything the above made (detach; idempotent). */
void nu__samples_close(struct node_priv *p);
/* Whatever of the samples ring is there, symbolized and counted per span. */
void nu__samples_consume(struct node_priv *p);
/* An episode that ended gets the stacks of its span, and a stall may become a
 * starvation by them. */
void nu__episode_stacks(struct node_priv *p, struct ls_episode *ep);
/* What loop tid's samples add to its snapshot o: the episodes they moved between kinds
 * (added to o's counts) and, while open_span (the start of the span in progress, 0:
 * none) is the span they were taken in, the live `where` (else cleared). */
void nu__sampled_fill(struct node_priv *p, uint32_t tid, uint64_t open_span, struct ls_loop_snapshot *o);

#endif /* LS_NODEUV_INT_H */
