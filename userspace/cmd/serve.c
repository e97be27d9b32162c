/* serve.c: `loopscope serve`, the Prometheus exporter and live event stream.
 *
 * One thread, one epoll set: the HTTP server's epoll fd, a 100 ms timerfd and a
 * signalfd. Every tick sweeps HTTP deadlines; every 200 ms (1 s while no /events
 * client is connected) it polls the agent (episodes, stalls in progress); every
 * --interval (1 s) it also takes a snapshot, updates per-loop state
 * (utilization, the prom-client compat windows), streams the snapshot to /events
 * clients, and rescans /proc for --exe.
 *
 * Rendering never holds the aggregation path: the kernel side aggregates on its own
 * (per-CPU maps); /metrics renders from a deep copy of a snapshot, the interval's one
 * (a fresh one only when that is older than 1.5 s), so a scrape costs no map reads and a
 * flood of scrapes does not turn into a flood of map reads; the rendered text (and its
 * gzip, made on the first request that accepts it) is cached per generation (a new
 * snapshot, an episode starting or ending), so N scrapes in one interval cost one render
 * and one compression, then a memcpy each (loopscope_renders_total counts renders); and all
 * socket I/O is non-blocking with bounded buffers (http.c), so a slow client costs
 * memory up to its cap, never time.
 *
 * --exe: every interval, stat() of /proc/PID/exe for every process, compared by
 * device and inode with the named binary (so symlinks, bind mounts and relative paths
 * all match, and a binary replaced on disk is followed); failing that, the link text
 * of /proc/PID/exe is compared with the path, which is what matches a process in
 * another container (another mount namespace) running "/usr/local/bin/node" when the
 * agent's own filesystem has a different file there, or none. A process that starts is
 * picked up within one interval; one that exits is seen at once through the agent's
 * pidfd, reported with loopscope_target_up 0 and dropped after --keep-exited. A /proc
 * scan was chosen over a sched_process_exec tracepoint: it costs one stat() per
 * process per second in the agent instead of a BPF program on every exec in the
 * system, needs nothing beyond what attaching already needs, and sees processes that
 * were running before the agent started with the same code path.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "http.h"
#include "prom.h"
#include "stacktab.h"
#include "snapjson.h"

#define LS_SERVE_DEFAULT_LISTEN "127.0.0.1:9752"
#define TICK_MS 100
#define SCRAPE_REUSE_NS 1500000000ull	/* /metrics renders a snapshot up to this old */
/* Episodes and stalls in progress reach /events at most this late; with no stream
 * open only Prometheus looks (every 15 s or so), so the agent is polled less often. */
#define AGENT_POLL_NS 200000000ull
#define AGENT_POLL_IDLE_NS 1000000000ull
#define STREAM_SOFT_LIMIT (1u << 20)	/* a stream this far behind skips snapshots */
#define LAG_WINDOW_NS 10000000000ull	/* compat lag window: the last 10-20 s */
#define EXITED_LOOPS_NS 30000000000ull	/* an exited target's final loop numbers stay 30 s */
#define MAX_PIDS 256
#define MAX_EXES 16

struct loop_state {
	struct ls_prom_loop_state p;		/* what prom.c reads */
	uint64_t since[LS_EP_NKINDS];		/* start of the episode in progress */
	uint64_t busy_eff, idle_eff, eff_ns;	/* for the interval utilization */
	int have_eff, seen;
	struct ls_hist base_old, base_new;	/* compat lag window bases */
	uint64_t base_new_ns;
	int nbases;
};

struct gone {
	int32_t pid;
	uint64_t at_ns;		/* when we first saw it not attached */
};

struct exe_watch {
	const char *path;	/* as given (absolute, or made absolute by realpath) */
	char real[PATH_MAX];	/* realpath() of it, or "" */
	dev_t dev;
	ino_t ino;
	int ok;			/* the path could be stat()ed at the last scan */
};

struct serve {
	struct ls_agent *ag;
	struct ls_source *src;
	struct ls_http_server *http;
	int epfd, tfd, sfd;
	int stop;
	/* options */
	int compat;
	uint64_t interval_ns, keep_exited_ns;
	struct exe_watch exes[MAX_EXES];
	int nexes;
	int verbose;
	/* state */
	struct ls_snapshot tick;	/* latest interval snapshot */
	struct ls_snapshot scrape;	/* snapshot behind the latest /metrics */
	struct loop_state *states;
	size_t nstates, capstates;
	struct gone *gone;
	size_t ngone, capgone;
	int32_t *failed;		/* --exe matches we could not attach to (not retried) */
	size_t nfailed, capfailed;
	struct ls_buf line;		/* the latest snapshot as an /events line */
	uint64_t line_mono_ns;		/* mono_ns of the snapshot in line */
	/* /metrics cache: rendered once per generation (a new snapshot, an episode
	 * starting or ending), gzipped at most once, served to every scrape in between. */
	uint64_t gen, body_gen;
	struct ls_buf body, gz;
	int body_ok, gz_ok;
	uint64_t renders;
	double cur_render_s;		/* render + gzip time of the current body */
	double last_scrape_s;
	uint64_t scrapes;
	uint64_t next_sample_ns, next_poll_ns;
};

/* ---------------------------------------------------------------- per-loop state */

static struct loop_state *state_find(struct serve *sv, int32_t pid, uint32_t tid, int create)
{
	struct loop_state *st;

	for (size_t i = 0; i < sv->nstates; i++)
		if (sv->states[i].p.pid == pid && sv->states[i].p.tid == tid)
			return &sv->states[i];
	if (!create)
		return NULL;
	if (sv->nstates == sv->capstates) {
		size_t cap = sv->capstates ? sv->capstates * 2 : 16;
		struct loop_state *n = realloc(sv->states, cap * sizeof(*n));
		if (!n)
			return NULL;
		sv->states = n;
		sv->capstates = cap;
	}
	st = &sv->states[sv->nstates++];
	memset(st, 0, sizeof(*st));
	st->p.pid = pid;
	st->p.tid = tid;
	st->p.utilization = -1;
	return st;
}

static const struct ls_prom_loop_state *prom_state(void *arg, int32_t pid, uint32_t tid)
{
	struct loop_state *st = state_find(arg, pid, tid, 0);
	return st ? &st->p : NULL;
}

/* An episode's time, split over its stacks by their share, to each stack's
 * leaf-most JS function (loopscope_blocked_seconds_total). */
static void count_blocked(struct ls_prom_loop_state *p, const struct ls_episode *ep)
{
	const struct ls_stack_set *set = ep->stacks;
	uint64_t d = ep->end_ns - ep->start_ns, given = 0;

	if (!set->total)
		return;
	for (uint32_t i = 0; i < set->nstacks; i++) {
		const struct ls_frame *f = ls_stack_top_js(&set->stacks[i]);
		uint64_t ns = (uint64_t)((double)d * (double)set->stacks[i].count / (double)set->total);

		ls_prom_blocked_add(p->blocked, &p->nblocked, &p->blocked_other, f ? f->function : "[native]",
				    f && f->file ? f->file : "", ns);
		given += ns;
	}
	if (d > given && set->nstacks)	/* the stacks past the dominant few */
		p->blocked_other.ns += d - given;
}

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct serve *sv = arg;
	struct ls_buf b = { 0 };

	sv->gen++;	/* in-progress gauges change: the cached /metrics body is stale */
	if (ep->kind == LS_EP_TARGET_EXIT) {
		for (size_t i = 0; i < sv->nstates; i++)
			if (sv->states[i].p.pid == ep->pid)
				memset(sv->states[i].p.in_progress, 0, sizeof(sv->states[i].p.in_progress));
	} else if (ep->kind < LS_EP_NKINDS) {
		struct loop_state *st = state_find(sv, ep->pid, ep->tid, 1);
		/* Keyed by loop and kind: the end of an episode may carry a start time a little
		 * different from the one announced while it was in progress. */
		if (st) {
			st->p.in_progress[ep->kind] = ep->end_ns == 0;
			st->since[ep->kind] = ep->end_ns == 0 ? ep->start_ns : 0;
			if (ep->end_ns > ep->start_ns && ep->kind != LS_EP_GC && ep->stacks)
				count_blocked(&st->p, ep);
		}
	}
	if (sv->http && ls_http_nstreams(sv->http)) {
		ls_episode_json_append(ep, &b);
		ls_buf_append(&b, "\n", 1);
		if (!b.oom)
			ls_http_broadcast(sv->http, b.p, b.len, 0, STREAM_SOFT_LIMIT);
		ls_buf_free(&b);
	}
	if (sv->verbose)
		fprintf(stderr, "loopscope serve: episode %s pid %d tid %u %s\n", ls_episode_kind_name(ep->kind),
			ep->pid, ep->tid, ep->end_ns ? "ended" : "in progress");
}

static int pid_attached(const struct ls_snapshot *s, int32_t pid);

/* Busy / idle time including the span in progress, so a loop stuck in one callback
 * for the whole interval reads as utilization 1, not as "no data". */
static void effective_busy_idle(const struct ls_loop_snapshot *l, uint64_t mono, uint64_t *busy, uint64_t *idle)
{
	*busy = l->busy_ns;
	*idle = l->idle_ns;
	if (l->live_since_ns && mono > l->live_since_ns) {
		if (l->live_state == LS_LIVE_RUNNING)
			*busy += mono - l->live_since_ns;
		else if (l->live_state == LS_LIVE_POLLING)
			*idle += mono - l->live_since_ns;
	}
}

/* Interval bookkeeping for every loop of the new tick snapshot. */
static void update_states(struct serve *sv)
{
	const struct ls_snapshot *s = &sv->tick;

	for (size_t i = 0; i < sv->nstates; i++)
		sv->states[i].seen = 0;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];

		for (uint32_t j = 0; j < t->nloops; j++) {
			const struct ls_loop_snapshot *l = &t->loops[j];
			struct loop_state *st;
			uint64_t busy, idle;

			if (t->state != LS_TARGET_ATTACHED && t->exited_ns && s->mono_ns > t->exited_ns &&
			    s->mono_ns - t->exited_ns > sv->keep_exited_ns)
				continue;	/* out of the view: its state goes below */
			st = state_find(sv, t->pid, l->tid, 1);
			if (!st)
				continue;
			st->seen = 1;
			if (t->state != LS_TARGET_ATTACHED) {
				/* (Unless the PID came back: the new process owns the state now.) */
				if (!pid_attached(s, t->pid))
					memset(st->p.in_progress, 0, sizeof(st->p.in_progress));
				continue;	/* numbers are frozen: keep the last utilization */
			}
			effective_busy_idle(l, s->mono_ns, &busy, &idle);
			if (st->have_eff && busy >= st->busy_eff && idle >= st->idle_eff &&
			    (busy - st->busy_eff) + (idle - st->idle_eff) > 0) {
				double db = (double)(busy - st->busy_eff), di = (double)(idle - st->idle_eff);
				double u = db / (db + di);
				st->p.utilization = u < 0 ? 0 : u > 1 ? 1 : u;
			}
			st->busy_eff = busy;
			st->idle_eff = idle;
			st->eff_ns = s->mono_ns;
			st->have_eff = 1;

			/* Safety net for a lost end-of-episode record (ring buffer full): an
			 * episode cannot still run once the loop is back in its poll wait, or
			 * once the drain it was in has ended. */
			if (st->p.in_progress[LS_EP_STALL] && l->live_state == LS_LIVE_POLLING &&
			    l->live_since_ns > st->since[LS_EP_STALL])
				st->p.in_progress[LS_EP_STALL] = 0;
			if (st->p.in_progress[LS_EP_TICK_STARVATION] &&
			    (l->live_drain != 1 || l->live_drain_since_ns > st->since[LS_EP_TICK_STARVATION]))
				st->p.in_progress[LS_EP_TICK_STARVATION] = 0;
			if (st->p.in_progress[LS_EP_MICROTASK_STARVATION] &&
			    (l->live_drain != 2 || l->live_drain_since_ns > st->since[LS_EP_MICROTASK_STARVATION]))
				st->p.in_progress[LS_EP_MICROTASK_STARVATION] = 0;

			if (sv->compat) {
				/* Two bases LAG_WINDOW_NS apart: the window runs from the older. */
				if (!st->nbases) {
					st->base_old = st->base_new = l->delay;
					st->base_new_ns = s->mono_ns;
					st->nbases = 1;
				} else if (s->mono_ns - st->base_new_ns >= LAG_WINDOW_NS) {
					st->base_old = st->base_new;
					st->base_new = l->delay;
					st->base_new_ns = s->mono_ns;
					st->nbases = 2;
				}
				ls_hist_delta(&l->delay, st->nbases == 2 ? &st->base_old : &st->base_new,
					      &st->p.lag_window);
				st->p.lag_window_valid = 1;
			}
		}
	}
	/* Forget loops that left the view. */
	for (size_t i = 0; i < sv->nstates;) {
		if (!sv->states[i].seen)
			sv->states[i] = sv->states[--sv->nstates];
		else
			i++;
	}
}

/* ---------------------------------------------------------------- the view */

static uint64_t gone_since(struct serve *sv, int32_t pid, uint64_t now)
{
	for (size_t i = 0; i < sv->ngone; i++)
		if (sv->gone[i].pid == pid)
			return sv->gone[i].at_ns;
	if (sv->ngone == sv->capgone) {
		size_t cap = sv->capgone ? sv->capgone * 2 : 16;
		struct gone *n = realloc(sv->gone, cap * sizeof(*n));
		if (!n)
			return now;
		sv->gone = n;
		sv->capgone = cap;
	}
	sv->gone[sv->ngone].pid = pid;
	sv->gone[sv->ngone].at_ns = now;
	sv->ngone++;
	return now;
}

static void forget_gone(struct serve *sv, int32_t pid)
{
	for (size_t i = 0; i < sv->ngone; i++)
		if (sv->gone[i].pid == pid) {
			sv->gone[i] = sv->gone[--sv->ngone];
			return;
		}
}

/* What /metrics and /events show of a snapshot: attached targets, plus exited or
 * detached ones for --keep-exited after they left, one entry per PID (the agent keeps
 * every target it ever had, and a PID may come back). Shallow: view->targets is
 * malloc'd, its loops point into s. */
static int make_view(struct serve *sv, const struct ls_snapshot *s, struct ls_snapshot *view)
{
	uint64_t now = s->mono_ns;

	*view = *s;
	view->ntargets = 0;
	view->targets = NULL;
	if (!s->ntargets)
		return 0;
	view->targets = malloc(sizeof(*view->targets) * s->ntargets);
	if (!view->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->ntargets; i++) {
		const struct ls_target_snapshot *t = &s->targets[i];
		int dup = 0;

		if (t->state != LS_TARGET_ATTACHED) {
			uint64_t at = t->exited_ns ? t->exited_ns : gone_since(sv, t->pid, now);
			if (now > at && now - at > sv->keep_exited_ns)
				continue;
		}
		/* A later entry for the same PID wins unless the earlier one is attached. */
		for (uint32_t k = 0; k < view->ntargets; k++) {
			if (view->targets[k].pid != t->pid)
				continue;
			dup = 1;
			if (view->targets[k].state != LS_TARGET_ATTACHED || t->state == LS_TARGET_ATTACHED)
				view->targets[k] = *t;
		}
		if (!dup)
			view->targets[view->ntargets++] = *t;
	}
	return 0;
}

/* ---------------------------------------------------------------- --exe */

static int pid_failed(struct serve *sv, int32_t pid)
{
	for (size_t i = 0; i < sv->nfailed; i++)
		if (sv->failed[i] == pid)
			return 1;
	return 0;
}

static void push_pid(int32_t **arr, size_t *n, size_t *cap, int32_t pid)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		int32_t *p = realloc(*arr, c * sizeof(*p));
		if (!p)
			return;
		*arr = p;
		*cap = c;
	}
	(*arr)[(*n)++] = pid;
}

static int pid_attached(const struct ls_snapshot *s, int32_t pid)
{
	for (uint32_t i = 0; i < s->ntargets; i++)
		if (s->targets[i].pid == pid && s->targets[i].state == LS_TARGET_ATTACHED)
			return 1;
	return 0;
}

static void scan_exes(struct serve *sv)
{
	DIR *d;
	struct dirent *de;
	pid_t self = getpid();
	int32_t *still = NULL;
	size_t nstill = 0, capstill = 0;

	for (int i = 0; i < sv->nexes; i++) {
		struct stat st;
		/* Re-stat each time: an upgraded binary is a new inode. */
		sv->exes[i].ok = stat(sv->exes[i].path, &st) == 0;
		if (sv->exes[i].ok) {
			sv->exes[i].dev = st.st_dev;
			sv->exes[i].ino = st.st_ino;
		}
	}
	d = opendir("/proc");
	if (!d) {
		fprintf(stderr, "loopscope serve: cannot scan /proc for --exe: %s\n", strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		char path[64], err[256];
		struct stat st;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		int match = 0, r;

		if (*end || pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
		if (stat(path, &st))
			continue;	/* a kernel thread, gone, or not ours to look at */
		for (int i = 0; i < sv->nexes && !match; i++)
			match = sv->exes[i].ok && st.st_dev == sv->exes[i].dev && st.st_ino == sv->exes[i].ino ? i + 1 : 0;
		if (!match) {
			char link[PATH_MAX];
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			for (int i = 0; i < sv->nexes && !match; i++)
				match = !strcmp(link, sv->exes[i].path) || (sv->exes[i].real[0] && !strcmp(link, sv->exes[i].real))
						? i + 1 : 0;
			if (!match)
				continue;
		}
		if (pid_failed(sv, (int32_t)pid)) {
			push_pid(&still, &nstill, &capstill, (int32_t)pid);
			continue;
		}
		if (pid_attached(&sv->tick, (int32_t)pid))
			continue;
		r = ls_agent_add_pid(sv->ag, (pid_t)pid, err, sizeof(err));
		if (r == 0) {
			forget_gone(sv, (int32_t)pid);
			fprintf(stderr, "loopscope serve: attached to %ld (%s)\n", pid, sv->exes[match - 1].path);
		} else if (r != -EEXIST) {
			fprintf(stderr, "loopscope serve: %s (not retried for this process)\n", err);
			push_pid(&still, &nstill, &capstill, (int32_t)pid);
		}
	}
	closedir(d);
	/* Failed PIDs no longer running are forgotten (the PID may be reused). */
	free(sv->failed);
	sv->failed = still;
	sv->nfailed = nstill;
	sv->capfailed = capstill;
}

/* ---------------------------------------------------------------- sampling */

/* The interval's snapshot as an /events line, encoded once per interval and only
 * when someone streams (a new client gets it at once). 0 or -ENOMEM. */
static int encode_line(struct serve *sv)
{
	struct ls_snapshot view;

	if (sv->line_mono_ns == sv->tick.mono_ns && sv->line.len)
		return 0;
	if (make_view(sv, &sv->tick, &view))
		return -ENOMEM;
	ls_buf_reset(&sv->line);
	ls_snapshot_json_append(&view, &sv->line);
	ls_buf_append(&sv->line, "\n", 1);
	free(view.targets);
	if (sv->line.oom) {
		ls_buf_free(&sv->line);
		return -ENOMEM;
	}
	sv->line_mono_ns = sv->tick.mono_ns;
	return 0;
}

static void sample(struct serve *sv)
{
	struct ls_snapshot s;
	int r;

	r = ls_source_snapshot(sv->src, &s);
	if (r) {
		fprintf(stderr, "loopscope serve: snapshot failed: %s\n", strerror(-r));
		return;
	}
	ls_snapshot_free(&sv->tick);
	sv->tick = s;
	sv->gen++;
	update_states(sv);
	if (sv->nexes)
		scan_exes(sv);
	sv->line_mono_ns = 0;
	if (ls_http_nstreams(sv->http) && encode_line(sv) == 0)
		ls_http_broadcast(sv->http, sv->line.p, sv->line.len, 1, STREAM_SOFT_LIMIT);
}

/* ---------------------------------------------------------------- HTTP */

static const char index_body[] =
	"loopscope serve\n\n"
	"/metrics  Prometheus text exposition (format 0.0.4; gzip if accepted)\n"
	"/events   live stream: one JSON object per line (snapshots and episodes)\n"
	"/healthz  liveness\n";

/* Render the exposition of the current generation into sv->body. 0 or -ENOMEM. */
static int render_metrics(struct serve *sv, const struct ls_snapshot *use, uint64_t t0)
{
	struct ls_snapshot view;
	struct ls_http_stats hs;
	struct ls_prom_ctx ctx = { 0 };
	uint64_t r0 = ls_now_mono_ns();

	sv->body_ok = sv->gz_ok = 0;
	if (make_view(sv, use, &view))
		return -ENOMEM;
	ls_http_get_stats(sv->http, &hs);
	ctx.now_ns = t0;
	ctx.compat_prom_client = sv->compat;
	ctx.loop_state = prom_state;
	ctx.arg = sv;
	ctx.last_scrape_s = sv->last_scrape_s;
	ctx.scrapes = sv->scrapes;
	ctx.renders = ++sv->renders;
	ctx.last_render_s = sv->cur_render_s;
	ctx.exited_loops_ns = sv->keep_exited_ns < EXITED_LOOPS_NS ? sv->keep_exited_ns : EXITED_LOOPS_NS;
	ctx.http = &hs;
	/* The buffers are reused (regrowing 5 MB per render costs page faults); only an
	 * unusually large one is given back. */
	if (sv->body.cap > (64u << 20))
		ls_buf_free(&sv->body);
	ls_buf_reset(&sv->body);
	ls_prom_render(&view, &ctx, &sv->body);
	free(view.targets);
	if (sv->body.oom) {
		ls_buf_free(&sv->body);
		return -ENOMEM;
	}
	sv->body_gen = sv->gen;
	sv->body_ok = 1;
	sv->cur_render_s = (double)(ls_now_mono_ns() - r0) / 1e9;
	return 0;
}

static void handle_metrics(struct serve *sv, struct ls_http_conn *c, const struct ls_http_req *req)
{
	static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
	uint64_t t0 = ls_now_mono_ns();
	const struct ls_snapshot *use = &sv->tick;

	if (!sv->tick.mono_ns || t0 - sv->tick.mono_ns > SCRAPE_REUSE_NS) {
		if (!sv->scrape.mono_ns || t0 - sv->scrape.mono_ns > SCRAPE_REUSE_NS) {
			struct ls_snapshot s;
			if (ls_source_snapshot(sv->src, &s) == 0) {
				ls_snapshot_free(&sv->scrape);
				sv->scrape = s;
				sv->gen++;
			}
		}
		use = &sv->scrape;
	}
	if ((!sv->body_ok || sv->body_gen != sv->gen) && render_metrics(sv, use, t0)) {
		ls_http_respond(c, 503, "text/plain; charset=utf-8", NULL, "503 out of memory\n", 18, 0);
		return;
	}
	if (req->accept_gzip && !sv->gz_ok && sv->body.len) {
		uint64_t z0 = ls_now_mono_ns();
		if (sv->gz.cap > (16u << 20))
			ls_buf_free(&sv->gz);
		ls_buf_reset(&sv->gz);
		sv->gz_ok = ls_gzip(sv->body.p, sv->body.len, &sv->gz) == 0 && !sv->gz.oom;
		if (!sv->gz_ok)
			ls_buf_free(&sv->gz);
		sv->cur_render_s += (double)(ls_now_mono_ns() - z0) / 1e9;
	}
	if (req->accept_gzip && sv->gz_ok)
		ls_http_respond_encoded(c, 200, ctype, "Vary: Accept-Encoding\r\n", sv->gz.p, sv->gz.len, "gzip");
	else
		ls_http_respond_encoded(c, 200, ctype, "Vary: Accept-Encoding\r\n", sv->body.p, sv->body.len, NULL);
	sv->scrapes++;
	sv->last_scrape_s = (double)(ls_now_mono_ns() - t0) / 1e9;
}

static void handle(struct ls_http_conn *c, const struct ls_http_req *req, void *arg)
{
	static const char allow[] = "Allow: GET, HEAD\r\n";
	struct serve *sv = arg;
	enum { P_INDEX, P_METRICS, P_EVENTS, P_HEALTHZ, P_NONE } p;

	p = !strcmp(req->path, "/") ? P_INDEX :
	    !strcmp(req->path, "/metrics") ? P_METRICS :
	    !strcmp(req->path, "/events") ? P_EVENTS :
	    !strcmp(req->path, "/healthz") ? P_HEALTHZ : P_NONE;
	if (!strcmp(req->path, "*")) {
		/* "OPTIONS *" (or anything else with the asterisk form): no such method here. */
		ls_http_respond(c, req->method == LS_HTTP_OTHER ? 405 : 400, "text/plain; charset=utf-8",
				req->method == LS_HTTP_OTHER ? allow : NULL,
				req->method == LS_HTTP_OTHER ? "405 method not allowed\n" : "400 bad request\n",
				req->method == LS_HTTP_OTHER ? 23 : 16, 0);
		return;
	}
	if (p == P_NONE) {
		ls_http_respond(c, 404, "text/plain; charset=utf-8", NULL, "404 not found: try /metrics\n", 28, 0);
		return;
	}
	if (req->method == LS_HTTP_OTHER) {
		ls_http_respond(c, 405, "text/plain; charset=utf-8", allow, "405 method not allowed\n", 23, 0);
		return;
	}
	switch (p) {
	case P_INDEX:
		ls_http_respond(c, 200, "text/plain; charset=utf-8", NULL, index_body, sizeof(index_body) - 1, 0);
		break;
	case P_HEALTHZ: {
		char body[64];
		int n = snprintf(body, sizeof(body), "ok %u attached\n", sv->tick.self.attached_targets);
		ls_http_respond(c, 200, "text/plain; charset=utf-8", NULL, body, (size_t)n, 0);
		break;
	}
	case P_METRICS:
		handle_metrics(sv, c, req);
		break;
	case P_EVENTS:
		ls_http_stream(c, "application/x-ndjson");
		/* A new client starts from the latest snapshot rather than waiting a tick. */
		if (req->method == LS_HTTP_GET && sv->tick.mono_ns && encode_line(sv) == 0)
			ls_http_stream_write(c, sv->line.p, sv->line.len);
		break;
	default:
		break;
	}
}

/* ---------------------------------------------------------------- command */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopscope serve [-p PID]... [--exe PATH]... [--listen ADDR:PORT] [OPTIONS]\n\n"
		"Prometheus exporter and live event stream for event loops.\n\n"
		"  -p, --pid PID          attach to this process (repeatable)\n"
		"  -e, --exe PATH         attach to every process running this binary, including ones\n"
		"                         started later (found by a /proc scan every interval); exited\n"
		"                         ones are dropped (repeatable)\n"
		"  -l, --listen ADDR:PORT where to listen (default %s; port 0 picks a free one)\n"
		"  -i, --interval SECONDS snapshot interval for /events, utilization and --exe (default 1)\n"
		"      --keep-exited SECONDS  keep exited processes in /metrics, target_up 0 (default 300)\n"
		"      --compat prom-client   also emit prom-client's nodejs_eventloop_* series\n"
		"  -t, --threshold MS     stall / starvation threshold (default 100)\n"
		"      --probes TIER      Node.js/libuv probe tier: light (default) or phases\n"
		"      --max-conns N      concurrent HTTP connections (default 256)\n"
		"      --header-timeout SECONDS  time a client has to send its request head (default 5)\n"
		"  -v, --verbose          log episodes and libbpf messages to stderr\n"
		"  -h, --help             this help\n\n"
		"Endpoints: GET /metrics, GET /events (NDJSON), GET /healthz. See loopscope(1).\n",
		LS_SERVE_DEFAULT_LISTEN);
}

static int parse_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -EINVAL;
	*out = v;
	return 0;
}

static void serve_free(struct serve *sv)
{
	ls_http_free(sv->http);
	ls_agent_free(sv->ag);
	ls_snapshot_free(&sv->tick);
	ls_snapshot_free(&sv->scrape);
	free(sv->states);
	free(sv->gone);
	free(sv->failed);
	ls_buf_free(&sv->line);
	ls_buf_free(&sv->body);
	ls_buf_free(&sv->gz);
	if (sv->tfd >= 0)
		close(sv->tfd);
	if (sv->sfd >= 0)
		close(sv->sfd);
	if (sv->epfd >= 0)
		close(sv->epfd);
}

static int run(struct serve *sv)
{
	struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L }, .it_value = { 0, TICK_MS * 1000000L } };
	struct epoll_event ev = { .events = EPOLLIN };

	sv->epfd = epoll_create1(EPOLL_CLOEXEC);
	sv->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (sv->epfd < 0 || sv->tfd < 0 || timerfd_settime(sv->tfd, 0, &its, NULL)) {
		fprintf(stderr, "loopscope serve: cannot set up its event loop: %s\n", strerror(errno));
		return 1;
	}
	ev.data.fd = sv->tfd;
	epoll_ctl(sv->epfd, EPOLL_CTL_ADD, sv->tfd, &ev);
	ev.data.fd = sv->sfd;
	epoll_ctl(sv->epfd, EPOLL_CTL_ADD, sv->sfd, &ev);
	ev.data.fd = ls_http_fd(sv->http);
	epoll_ctl(sv->epfd, EPOLL_CTL_ADD, ls_http_fd(sv->http), &ev);

	while (!sv->stop) {
		struct epoll_event evs[8];
		int n = epoll_wait(sv->epfd, evs, 8, -1);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "loopscope serve: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sv->sfd) {
				struct signalfd_siginfo si;
				if (read(sv->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					sv->stop = 1;
			} else if (fd == sv->tfd) {
				uint64_t exp;
				uint64_t now = ls_now_mono_ns();
				int r;

				if (read(sv->tfd, &exp, sizeof(exp)) < 0)
					(void)0;
				/* -ENODATA (every target gone) is not the end for an exporter:
				 * it goes on serving their last numbers and waiting for --exe. */
				if (now >= sv->next_poll_ns) {
					r = ls_source_poll(sv->src, 0);
					if (r && r != -ENODATA)
						fprintf(stderr, "loopscope serve: agent poll: %s\n", strerror(-r));
					sv->next_poll_ns = now - TICK_MS * 500000ull +
							   (ls_http_nstreams(sv->http) ? AGENT_POLL_NS : AGENT_POLL_IDLE_NS);
				}
				ls_http_poll(sv->http, 0);	/* deadlines, even with no socket activity */
				if (now >= sv->next_sample_ns) {
					sample(sv);
					sv->next_sample_ns += sv->interval_ns;	/* no drift */
					if (sv->next_sample_ns <= now)
						sv->next_sample_ns = now + sv->interval_ns;
				}
			} else {
				ls_http_poll(sv->http, 0);
			}
		}
	}
	return 0;
}

int ls_cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "exe", required_argument, NULL, 'e' },
		{ "listen", required_argument, NULL, 'l' },
		{ "interval", required_argument, NULL, 'i' },
		{ "keep-exited", required_argument, NULL, 'K' },
		{ "compat", required_argument, NULL, 'C' },
		{ "threshold", required_argument, NULL, 't' },
		{ "probes", required_argument, NULL, 'P' },
		{ "max-conns", required_argument, NULL, 'M' },
		{ "header-timeout", required_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve sv;
	struct ls_agent_opts aopts = { 0 };
	struct ls_http_opts hopts = { 0 };
	const char *listen_addr = LS_SERVE_DEFAULT_LISTEN;
	pid_t pids[MAX_PIDS];
	int npids = 0, c, rc = 1;
	double v;
	char err[512];
	sigset_t mask;

	memset(&sv, 0, sizeof(sv));
	sv.epfd = sv.tfd = sv.sfd = -1;
	sv.interval_ns = 1000000000ull;
	sv.keep_exited_ns = 300000000000ull;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:e:l:i:t:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			pid_t p;

			if (ls_parse_pid(optarg, &p)) {
				fprintf(stderr, "loopscope serve: bad PID '%s': give a positive process id\n", optarg);
				return 2;
			}
			if (npids == MAX_PIDS) {
				fprintf(stderr, "loopscope serve: at most %d -p options; use --exe for more\n", MAX_PIDS);
				return 2;
			}
			/* -p X -p X: one target, as in stat (attaching twice would only fail). */
			{
				int dup = 0;

				for (int k = 0; k < npids; k++)
					dup |= pids[k] == p;
				if (!dup)
					pids[npids++] = p;
			}
			break;
		}
		case 'e':
			if (sv.nexes == MAX_EXES) {
				fprintf(stderr, "loopscope serve: at most %d --exe options\n", MAX_EXES);
				return 2;
			}
			sv.exes[sv.nexes++].path = optarg;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'i':
			if (parse_seconds(optarg, 0.1, 3600, &v)) {
				fprintf(stderr, "loopscope serve: interval '%s' out of range: give 0.1 to 3600 seconds\n", optarg);
				return 2;
			}
			sv.interval_ns = (uint64_t)(v * 1e9);
			break;
		case 'K':
			if (parse_seconds(optarg, 0, 86400, &v)) {
				fprintf(stderr, "loopscope serve: --keep-exited '%s': give 0 to 86400 seconds\n", optarg);
				return 2;
			}
			sv.keep_exited_ns = (uint64_t)(v * 1e9);
			break;
		case 'C':
			if (strcmp(optarg, "prom-client")) {
				fprintf(stderr, "loopscope serve: unknown --compat '%s'; the one known is prom-client\n", optarg);
				return 2;
			}
			sv.compat = 1;
			break;
		case 't':
			if (parse_seconds(optarg, 1, 600000, &v)) {
				fprintf(stderr, "loopscope serve: threshold '%s' out of range: give 1 to 600000 ms\n", optarg);
				return 2;
			}
			aopts.stall_threshold_ns = (uint64_t)(v * 1e6);
			break;
		case 'P':
			if (!ls_probe_tier_valid(optarg)) {
				fprintf(stderr, "loopscope serve: unknown probe tier '%s': give light or phases\n", optarg);
				return 2;
			}
			aopts.tier = optarg;
			break;
		case 'M':
			if (parse_seconds(optarg, 1, 65536, &v)) {
				fprintf(stderr, "loopscope serve: --max-conns '%s': give 1 to 65536\n", optarg);
				return 2;
			}
			hopts.max_conns = (int)v;
			break;
		case 'H':
			if (parse_seconds(optarg, 0.1, 600, &v)) {
				fprintf(stderr, "loopscope serve: --header-timeout '%s': give 0.1 to 600 seconds\n", optarg);
				return 2;
			}
			hopts.header_timeout_ms = (unsigned)(v * 1000);
			break;
		case 'v':
			sv.verbose = aopts.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loopscope serve: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!npids && !sv.nexes) {
		fprintf(stderr, "loopscope serve: nothing to watch: give -p PID or --exe PATH\n");
		return 2;
	}
	for (int i = 0; i < sv.nexes; i++) {
		struct stat st;
		/* An absolute path that does not exist here may still name a binary in another
		 * container; anything else must be a file we can see. */
		if (stat(sv.exes[i].path, &st) == 0) {
			if (!S_ISREG(st.st_mode)) {
				fprintf(stderr, "loopscope serve: --exe %s: not a regular file\n", sv.exes[i].path);
				return 2;
			}
			if (!realpath(sv.exes[i].path, sv.exes[i].real))
				sv.exes[i].real[0] = 0;
		} else if (sv.exes[i].path[0] != '/') {
			fprintf(stderr, "loopscope serve: --exe %s: %s\n", sv.exes[i].path, strerror(errno));
			return 2;
		}
	}

	/* Signals first, so a SIGTERM during attach still detaches cleanly. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	/* Bind before attaching: a bad or busy --listen fails at once, with nothing
	 * attached to any process. (Nothing is served before run() starts.) */
	if (ls_http_new(listen_addr, &hopts, handle, &sv, &sv.http, err, sizeof(err))) {
		fprintf(stderr, "loopscope serve: %s\n", err);
		goto cleanup;
	}
	if (ls_agent_new(&aopts, &sv.ag, err, sizeof(err))) {
		fprintf(stderr, "loopscope serve: %s\n", err);
		goto cleanup;
	}
	sv.src = ls_agent_source(sv.ag);
	sv.src->on_episode = on_episode;
	sv.src->episode_arg = &sv;
	for (int i = 0; i < npids; i++) {
		if (ls_agent_add_pid(sv.ag, pids[i], err, sizeof(err))) {
			fprintf(stderr, "loopscope serve: %s\n", err);
			goto cleanup;
		}
	}
	sample(&sv);	/* the first snapshot (and --exe scan) before the first client */
	sv.next_sample_ns = ls_now_mono_ns() + sv.interval_ns;
	{
		const char *colon = strrchr(listen_addr, ':');
		fprintf(stderr, "loopscope serve: listening on http://%.*s:%d/metrics (%u attached)\n",
			(int)(colon - listen_addr), listen_addr, ls_http_port(sv.http), sv.tick.self.attached_targets);
	}
	rc = run(&sv);
cleanup:
	serve_free(&sv);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
	return rc;
}
