/* stat.c: `loopscope stat`, the agent's plainest front end. Every interval it takes
 * a cumulative snapshot from the live source and prints, per loop, the difference
 * to the previous one: a text block, or one JSON object per line (--json). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "node.h"
#include "options.h"
#include "privs.h"
#include "replay.h"
#include "stacktab.h"

#define MAX_PIDS 64
#define MIN_INTERVAL_S 0.1
#define MAX_INTERVAL_S 3600.0

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct stat_state {
	int json;
	struct ls_source *src;	/* its clock dates episodes in progress */
	struct ls_episode *eps;	/* finished episodes since the last report */
	size_t neps, cap;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopscope stat -p PID [-p PID]... [-i SECONDS] [-d SECONDS] [--json]\n"
		"                      [--threshold MS] [--probes TIER] [--follow-exec] [-v]\n"
		"       loopscope stat --replay FILE [-i SECONDS] [-d SECONDS] [--json]\n\n"
		"Attach to running event loops and print their numbers every interval; or print\n"
		"the same blocks from a recording ('loopscope record'), no privileges needed.\n\n"
		"  -p, --pid PID        process to trace (repeat for several)\n"
		"  -i, --interval S     seconds between reports (%.1f to %.0f, default 1)\n"
		"  -d, --duration S     stop after S seconds (default: until Ctrl-C or every\n"
		"                       target has exited)\n"
		"      --json           one JSON object per line per loop per interval\n"
		"      --replay FILE    read a recording instead of attaching: one block per\n"
		"                       recorded snapshot (or per -i seconds of it); -d counts\n"
		"                       recorded time\n"
		"      --threshold MS   a phase or drain longer than this is a stall or\n"
		"                       starvation episode (default 100)\n"
		"      --probes TIER    Node.js/libuv probe tier: light (default), phases, or\n"
		"                       counters (no probe: libuv's own counters)\n"
		"      --follow-exec    a target that execs is attached again if the new program\n"
		"                       is an event loop; keeps the capabilities attaching needs\n"
		"                       (otherwise every one is dropped once attached)\n"
		"  -v, --verbose        libbpf diagnostics and the Node/libuv probe plan on stderr\n"
		"  -h, --help           this help\n\n"
		"Exit status: 0 ran as asked (a target exiting is reported, not an error),\n"
		"1 runtime failure (no such process, not permitted, no BTF, unsupported\n"
		"target), 2 bad usage. See loopscope(1).\n",
		MIN_INTERVAL_S, MAX_INTERVAL_S);
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%lu ns", (unsigned long)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.3f s", ns / 1e9);
}

static void note(const char *line, void *arg)
{
	fprintf(stderr, "loopscope stat: %s\n", line);
}

/* " in PHASE", or "" where the phase is not known (the counters tier). */
static const char *in_phase(uint32_t phase)
{
	static char buf[32];

	if (phase == LS_PHASE_NONE)
		return "";
	snprintf(buf, sizeof(buf), " in %s", ls_phase_name(phase));
	return buf;
}

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct stat_state *st = arg;
	char d[32];

	if (ep->kind == LS_EP_TARGET_EXIT)
		return;	/* the agent's note said so */
	if (!ep->end_ns) {
		/* In progress: say so at once (text mode; JSON carries finished ones). */
		if (!st->json) {
			fmt_ns(d, sizeof(d), ls_source_now(st->src) - ep->start_ns);
			printf("! pid %d tid %u: %s%s, running for %s\n", (int)ep->pid, ep->tid,
			       ls_episode_kind_name(ep->kind), in_phase(ep->phase), d);
			fflush(stdout);
		}
		return;
	}
	if (st->neps == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		struct ls_episode *n = realloc(st->eps, cap * sizeof(*n));

		if (!n)
			return;	/* the counts in the summary still hold it */
		st->eps = n;
		st->cap = cap;
	}
	st->eps[st->neps++] = *ep;
}

/* Where the loop was during episode e: its dominant stacks, leaf first. */
static void print_stacks(const struct ls_episode *e)
{
	static char lines[48][LS_STACK_LINE];
	size_t n = ls_stack_text(e->stacks, 3, 14, lines, 48);

	for (size_t i = 0; i < n; i++)
		printf("      %s\n", lines[i]);
}

static const struct ls_loop_snapshot *find_loop(const struct ls_target_snapshot *t, uint32_t tid)
{
	for (uint32_t i = 0; t && i < t->nloops; i++)
		if (t->loops[i].tid == tid)
			return &t->loops[i];
	return NULL;
}

static void print_text(const struct ls_loop_summary *s, const struct ls_target_snapshot *t,
		       const struct stat_state *st)
{
	char a[32], b[32], c[32];
	double span_ns = s->interval_s * 1e9;
	uint64_t stalls = 0, ticks = 0, micro = 0;

	/* "pid 4242 (node) tid 4250 worker 1, node 20.20.2 loop on libuv 1.46.0, 1.00 s" */
	printf("pid %d (%s) tid %u %s, %s%s%s loop%s%s, %.2f s%s\n", (int)s->pid, t->comm, s->tid,
	       s->label[0] ? s->label : s->comm, ls_runtime_name(s->runtime), t->version[0] ? " " : "", t->version,
	       t->libuv_version[0] ? " on libuv " : "", t->libuv_version, s->interval_s,
	       t->state == LS_TARGET_EXITED ? " (exited)" : "");
	printf("  iterations %10.1f/s   utilization %5.1f%%\n",
	       s->interval_s > 0 ? s->iterations / s->interval_s : 0.0, s->utilization * 100);
	if (s->has & LS_HAS_PHASES) {
		printf("  %-10s %7s %9s %11s %11s %11s\n", "phase", "share", "count", "p50", "p99", "max");
		for (int i = 0; i < LS_NPHASES; i++) {
			const struct ls_quant *q = &s->phase[i];

			fmt_ns(a, sizeof(a), q->p50_ns);
			fmt_ns(b, sizeof(b), q->p99_ns);
			fmt_ns(c, sizeof(c), q->max_ns);
			printf("  %-10s %6.1f%% %9lu %11s %11s %11s\n", ls_phase_names[i],
			       span_ns > 0 ? 100.0 * (double)q->total_ns / span_ns : 0.0,
			       (unsigned long)q->count, a, b, c);
		}
	}
	if (s->iteration.count) {
		fmt_ns(a, sizeof(a), s->iteration.p50_ns);
		fmt_ns(b, sizeof(b), s->iteration.p99_ns);
		fmt_ns(c, sizeof(c), s->iteration.max_ns);
		printf("  iteration      p50 %s  p99 %s  max %s\n", a, b, c);
	}
	if (s->has & LS_HAS_COUNTERS) {
		fmt_ns(a, sizeof(a), s->busy_per_iteration_ns);
		printf("  delay          mean busy per iteration %s over the interval (counters tier: "
		       "no distribution)\n", s->iterations ? a : "-");
	} else {
		fmt_ns(a, sizeof(a), s->delay.p50_ns);
		fmt_ns(b, sizeof(b), s->delay.p99_ns);
		fmt_ns(c, sizeof(c), s->delay.max_ns);
		printf("  delay          p50 %s  p99 %s  max %s  (%lu samples)\n", a, b, c,
		       (unsigned long)s->delay.count);
	}
	if (s->has & LS_HAS_TIMERS) {
		fmt_ns(a, sizeof(a), s->timer_lateness.p50_ns);
		fmt_ns(b, sizeof(b), s->timer_lateness.p99_ns);
		fmt_ns(c, sizeof(c), s->timer_lateness.max_ns);
		printf("  timer lateness p50 %s  p99 %s  max %s  (%lu timers)\n", a, b, c,
		       (unsigned long)s->timer_lateness.count);
	}
	if (s->has & LS_HAS_DRAINS) {
		fmt_ns(a, sizeof(a), s->ticks.max_drain_ns);
		fmt_ns(b, sizeof(b), s->microtasks.max_drain_ns);
		printf("  nextTick       %lu drains, %lu callbacks, longest %s\n", (unsigned long)s->ticks.drains,
		       (unsigned long)s->ticks.callbacks, a);
		printf("  microtasks     %lu drains, %lu callbacks, longest %s\n",
		       (unsigned long)s->microtasks.drains, (unsigned long)s->microtasks.callbacks, b);
	}
	if (s->has & LS_HAS_EPISODES) {
		stalls = s->stall_episodes;
		ticks = s->ticks.starvation_episodes;
		micro = s->microtasks.starvation_episodes;
		printf("  episodes       %lu stalls, %lu nextTick starvation, %lu microtask starvation\n",
		       (unsigned long)stalls, (unsigned long)ticks, (unsigned long)micro);
		for (size_t i = 0; i < st->neps; i++) {
			const struct ls_episode *e = &st->eps[i];

			if (e->pid != s->pid || e->tid != s->tid)
				continue;
			fmt_ns(a, sizeof(a), e->end_ns - e->start_ns);
			/* the phase and the callbacks run only where the probes saw them (the
			 * counters tier sees neither) */
			printf("    %s%s: %s", ls_episode_kind_name(e->kind), in_phase(e->phase), a);
			if (e->kind != LS_EP_STALL && e->kind != LS_EP_GC && e->callbacks)
				printf(", %lu callbacks", (unsigned long)e->callbacks);
			if (e->samples)
				printf(" (%u samples)", e->samples);
			printf("\n");
			print_stacks(e);
		}
	}
	printf("\n");
}

/* Print every loop of cur against prev. Targets already reported as gone are skipped. */
static int report(const struct ls_snapshot *cur, const struct ls_snapshot *prev, struct stat_state *st,
		  uint8_t *done)
{
	static const struct ls_episode no_episode;	/* "episodes":[] when there were none */

	for (uint32_t i = 0; i < cur->ntargets; i++) {
		const struct ls_target_snapshot *t = &cur->targets[i];
		const struct ls_target_snapshot *pt = i < prev->ntargets ? &prev->targets[i] : NULL;
		uint64_t end = t->state == LS_TARGET_ATTACHED ? cur->mono_ns : t->exited_ns;
		uint64_t begin = prev->mono_ns;

		if (done[i])
			continue;
		if (!end || end < begin)
			end = cur->mono_ns;
		if (begin < t->attached_ns)
			begin = t->attached_ns;
		/* A loop shows up at its first poll entry after the attach (that hands
		 * over its record); until then say so rather than print nothing. */
		if (!t->nloops && !st->json && t->state == LS_TARGET_ATTACHED)
			printf("pid %d (%s): attached, waiting for the loop's first poll entry\n\n", (int)t->pid,
			       t->comm);
		if (!st->json && t->nloops && t->state == LS_TARGET_ATTACHED) {
			double hits, traps;

			ls_target_cost(t, pt && pt->pid == t->pid ? pt : NULL, &hits, &traps);
			if (traps >= 0)
				printf("pid %d: %s tier, per iteration %.2f traps, %.2f probe runs (measured)\n",
				       (int)t->pid, t->tier, traps, hits);
		}
		for (uint32_t l = 0; l < t->nloops; l++) {
			struct ls_loop_summary s;
			size_t neps = 0;
			struct ls_episode *mine = NULL;

			ls_summarize(&t->loops[l], find_loop(pt, t->loops[l].tid), (double)(end - begin) / 1e9, &s);
			s.pid = t->pid;
			s.runtime = t->runtime;
			snprintf(s.version, sizeof(s.version), "%s", t->version);
			snprintf(s.libuv_version, sizeof(s.libuv_version), "%s", t->libuv_version);
			if (!st->json) {
				print_text(&s, t, st);
				continue;
			}
			if (st->neps) {
				mine = malloc(st->neps * sizeof(*mine));
				for (size_t e = 0; mine && e < st->neps; e++)
					if (st->eps[e].pid == t->pid && st->eps[e].tid == t->loops[l].tid)
						mine[neps++] = st->eps[e];
			}
			if (ls_summary_write_json(&s, mine ? mine : &no_episode, neps, stdout) < 0 ||
			    putchar('\n') == EOF) {
				free(mine);
				return -EIO;
			}
			free(mine);
		}
		if (t->state != LS_TARGET_ATTACHED)
			done[i] = 1;
	}
	st->neps = 0;
	return fflush(stdout) ? -EIO : 0;
}

/* One line on stderr when a target runs a lighter probe tier than asked: why, as its
 * backend says it (ls_target_snapshot.tier_why), else that it happened. */
static void tier_fallback(const struct ls_target_snapshot *t, const char *asked)
{
	if (t->runtime == LS_RT_REFERENCE || !strcmp(t->tier, asked))
		return;
	if (t->tier_why[0])
		fprintf(stderr, "loopscope stat: pid %d: %s\n", (int)t->pid, t->tier_why);
	else
		fprintf(stderr, "loopscope stat: pid %d: --probes %s unavailable, %s tier used\n", (int)t->pid, asked,
			t->tier);
}

/* -v: what the Node / libuv backend attached (sites, offsets, note), as it planned it. */
static void print_plan(pid_t pid, const char *tier)
{
	struct ls_target_info ti;
	char err[256];

	if (ls_target_identify(pid, &ti, err, sizeof(err)) || (ti.runtime != LS_RT_NODE && ti.runtime != LS_RT_LIBUV))
		return;
	fprintf(stderr, "loopscope stat: pid %d plan:\n", (int)pid);
	if (ls_node_plan(&ti, tier, stderr, err, sizeof(err)))
		fprintf(stderr, "loopscope stat: pid %d: %s\n", (int)pid, err);
}

/* done[] (report()) grows with the recording's targets. */
static int grow_done(uint8_t **done, uint32_t *n, uint32_t want)
{
	uint8_t *d;

	if (want <= *n)
		return 0;
	if (!(d = realloc(*done, want)))
		return -ENOMEM;
	memset(d + *n, 0, want - *n);
	*done = d;
	*n = want;
	return 0;
}

/* stat --replay: the blocks live stat printed, one per recorded snapshot (or per
 * interval_s of recorded time when it is not 0), up to duration_s of it. */
static int stat_replay(const char *path, struct stat_state *st, double interval_s, double duration_s)
{
	struct ls_snapshot prev = { 0 }, cur = { 0 };
	struct ls_source *src = NULL;
	uint8_t *done = NULL;
	uint32_t ndone = 0;
	uint64_t stop_at = 0, step = (uint64_t)(interval_s * 1e9), slack = 10000000;
	char err[512];
	int r, ret = 1;

	r = ls_replay_open(path, 0, &src, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope stat: %s\n", err);
		return 1;
	}
	st->src = src;
	src->on_episode = on_episode;
	src->episode_arg = st;
	r = ls_source_poll(src, 0);
	if (!r)
		r = ls_source_snapshot(src, &prev);
	if (r == -ENODATA) {
		fprintf(stderr, "loopscope stat: %s holds no snapshot\n", path);
		goto cleanup;
	}
	if (r)
		goto read_error;
	if (!st->json)
		fprintf(stderr, "loopscope stat: replaying %s (recorded on %s)\n", path, ls_replay_info(src)->host);
	if (duration_s > 0)
		stop_at = prev.mono_ns + (uint64_t)(duration_s * 1e9);
	for (;;) {
		r = ls_source_poll(src, 0);
		if (r == -ENODATA)
			break;
		if (r)
			goto read_error;
		ls_snapshot_free(&cur);
		if ((r = ls_source_snapshot(src, &cur)))
			goto read_error;
		if (stop_at && cur.mono_ns > stop_at + slack)
			break;
		if (step && cur.mono_ns + slack < prev.mono_ns + step)
			continue;	/* inside this interval: its episodes wait in st */
		if (grow_done(&done, &ndone, cur.ntargets) || report(&cur, &prev, st, done)) {
			fprintf(stderr, "loopscope stat: writing the report failed\n");
			goto cleanup;
		}
		ls_snapshot_free(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
	}
	ret = 0;
	goto cleanup;
read_error:
	/* What the file held up to the damage has been printed; a recording cut short
	 * (the recorder killed, the disk full) is what the format is made for. */
	fprintf(stderr, "loopscope stat: %s\n", r == -ENOMEM ? "out of memory" : ls_replay_error(src));
	ret = r == -EPIPE ? 0 : 1;
cleanup:
	ls_snapshot_free(&prev);
	ls_snapshot_free(&cur);
	ls_source_destroy(src);
	free(done);
	return ret;
}

/* What the command line asked for. */
struct stat_args {
	struct ls_agent_opts opts;
	pid_t pids[MAX_PIDS];
	int npids;
	double interval, duration, threshold_ms;
	int interval_set;
	int follow_exec;	/* keep the attach set: re-attach after an exec */
	const char *replay;
};

/* Parse argv into a (and st->json): -1 to go on, else the exit status. */
static int parse_args(struct stat_args *a, struct stat_state *st, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "threshold", required_argument, NULL, 't' },
		{ "probes", required_argument, NULL, 'P' },	/* Node tier: light | phases */
		{ "replay", required_argument, NULL, 'R' },
		{ "follow-exec", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	a->interval = 1.0;
	a->threshold_ms = 100;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:i:d:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (ls_opt_pid("stat", optarg, a->pids, &a->npids, MAX_PIDS, NULL))
				return 2;
			break;
		case 'i':
			if (ls_opt_number(optarg, MIN_INTERVAL_S, MAX_INTERVAL_S, &a->interval)) {
				fprintf(stderr, "loopscope stat: interval out of range: '%s' (give %.1f to %.0f seconds)\n",
					optarg, MIN_INTERVAL_S, MAX_INTERVAL_S);
				return 2;
			}
			a->interval_set = 1;
			break;
		case 'd':
			if (ls_opt_number(optarg, 0, 1e7, &a->duration) || a->duration <= 0) {
				fprintf(stderr, "loopscope stat: bad duration '%s': give a positive number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			st->json = 1;
			break;
		case 't':
			if (ls_opt_number(optarg, 1, 3600000, &a->threshold_ms)) {
				fprintf(stderr, "loopscope stat: threshold out of range: '%s' (give 1 to 3600000 ms)\n",
					optarg);
				return 2;
			}
			break;
		case 'P':
			if (!ls_probe_tier_valid(optarg)) {
				fprintf(stderr, "loopscope stat: unknown probe tier '%s': give light, phases or counters\n",
					optarg);
				return 2;
			}
			a->opts.tier = optarg;	/* the Node / libuv backend's tier */
			break;
		case 'R':
			a->replay = optarg;
			break;
		case 'F':
			a->follow_exec = 1;
			break;
		case 'v':
			a->opts.verbose = 1;
			break;
		default:	/* -h, or an option getopt refused */
			return ls_opt_usage(c, usage);
		}
	}
	if (ls_opt_no_operands("stat", argc, argv, 1))
		return 2;
	if (a->replay && a->npids) {
		fprintf(stderr, "loopscope stat: give -p PID (attach) or --replay FILE (a recording), not both\n");
		return 2;
	}
	if (a->replay && (a->opts.tier || a->threshold_ms != 100)) {
		fprintf(stderr, "loopscope stat: --probes and --threshold were fixed when the recording was made; "
			"drop them with --replay\n");
		return 2;
	}
	if (a->replay && a->follow_exec) {
		fprintf(stderr, "loopscope stat: --follow-exec is for attaching to processes, not for --replay\n");
		return 2;
	}
	if (!a->replay && !a->npids) {
		fprintf(stderr, "loopscope stat: no target: give -p PID or --replay FILE; try 'loopscope stat --help'\n");
		return 2;
	}
	a->opts.stall_threshold_ns = (uint64_t)(a->threshold_ms * 1e6);
	a->opts.note = note;
	return -1;
}

/* Make the agent and attach a's targets, then drop privileges: 0 with *ag set
 * (NULL when every target exited while being attached, or a signal came), 1 after
 * saying why not (*ag is then for the caller to free). */
static int attach(struct stat_args *a, struct ls_agent **ag)
{
	char err[512];
	int nexited = 0, r;

	if (ls_agent_new(&a->opts, ag, err, sizeof(err))) {
		fprintf(stderr, "loopscope stat: %s\n", err);
		return 1;
	}
	for (int i = 0; i < a->npids; i++) {
		r = ls_agent_add_pid(*ag, a->pids[i], err, sizeof(err));
		if (r == -ECHILD) {
			/* It exited while being attached: a target exit, reported, not an error. */
			fprintf(stderr, "loopscope stat: %s\n", err);
			nexited++;
		} else if (r) {
			fprintf(stderr, "loopscope stat: %s\n", err);
			return 1;
		}
		if (a->opts.verbose)
			print_plan(a->pids[i], a->opts.tier);
		if (stop_signal)
			goto none;
	}
	if (nexited == a->npids)
		goto none;	/* every target has exited: nothing left to report */
	/* Attached: reading maps and detaching use the descriptors we hold; attaching
	 * again after an exec needs the attach set. */
	if (ls_privs_drop(a->follow_exec ? ls_privs_attach_set() : 0, NULL, err, sizeof(err))) {
		fprintf(stderr, "loopscope stat: %s\n", err);
		return 1;
	}
	return 0;
none:
	ls_agent_free(*ag);	/* detaches everything */
	*ag = NULL;
	return 0;
}

/* The first snapshot, and what it says once: a tier that fell back, JS frames
 * unavailable. 0, or 1 after saying why. */
static int first_snapshot(struct ls_source *src, const char *tier, struct ls_snapshot *prev)
{
	int r = ls_source_snapshot(src, prev);

	if (r) {
		fprintf(stderr, "loopscope stat: reading the probes' maps failed: %s\n", strerror(-r));
		return 1;
	}
	for (uint32_t i = 0; tier && i < prev->ntargets; i++)
		tier_fallback(&prev->targets[i], tier);
	for (uint32_t i = 0; i < prev->ntargets; i++) {
		char why[320];

		/* stacks come without JS frames: say so once, with the reason */
		if (ls_note_item(prev->targets[i].note, "JS frames unavailable", why, sizeof(why)))
			fprintf(stderr, "loopscope stat: pid %d: %s; stacks show native frames only\n",
				(int)prev->targets[i].pid, why);
	}
	return 0;
}

/* Say what the kernel side could not keep since prev: loops it had no room for,
 * episodes the ring buffer dropped (counted, never dropped silently). */
static void report_losses(const struct ls_snapshot *cur, const struct ls_snapshot *prev)
{
	for (uint32_t i = 0; i < cur->ntargets; i++) {
		const struct ls_target_snapshot *t = &cur->targets[i];
		const struct ls_target_snapshot *p = ls_snapshot_find(prev, t->pid);
		uint64_t was = p ? p->untracked_hits : 0;

		/* Loops the kernel side had no room for: say so while it grows. */
		if (t->untracked_hits && t->untracked_hits != was)
			fprintf(stderr, "loopscope stat: pid %d: %s\n", (int)t->pid, t->note);
	}
	/* (Counts of a target that detached leave the sum: hence the >.) */
	if (cur->self.ringbuf_drops > prev->self.ringbuf_drops)
		fprintf(stderr, "loopscope stat: %lu episodes lost (ring buffer full); the counts in "
			"the report still include them\n",
			(unsigned long)(cur->self.ringbuf_drops - prev->self.ringbuf_drops));
}

/* Report every interval until -d, a signal, or every target's exit: 0, or 1 after
 * saying why. */
static int run(struct ls_source *src, struct stat_state *st, const struct stat_args *a)
{
	struct ls_snapshot prev = { 0 }, cur = { 0 };
	uint64_t start, next, stop_at = 0;
	uint8_t *done = NULL;
	uint32_t ndone = 0;
	int r, ret = 1;

	if (first_snapshot(src, a->opts.tier, &prev))
		goto out;
	if (grow_done(&done, &ndone, prev.ntargets > (uint32_t)a->npids ? prev.ntargets : (uint32_t)a->npids)) {
		fprintf(stderr, "loopscope stat: out of memory\n");
		goto out;
	}
	if (!st->json)
		fprintf(stderr, "loopscope stat: tracing %d process%s; Ctrl-C to stop\n", a->npids,
			a->npids > 1 ? "es" : "");
	start = prev.mono_ns;
	next = start + (uint64_t)(a->interval * 1e9);
	if (a->duration > 0)
		stop_at = start + (uint64_t)(a->duration * 1e9);
	for (;;) {
		uint64_t now = ls_now_mono_ns(), until = next;
		int last = 0;

		if (stop_at && stop_at <= until)
			until = stop_at;
		r = 0;
		if (now < until && !stop_signal)
			r = ls_source_poll(src, (int)((until - now + 999999) / 1000000));
		if (r && r != -ENODATA) {
			fprintf(stderr, "loopscope stat: waiting for events failed: %s\n", strerror(-r));
			goto out;
		}
		now = ls_now_mono_ns();
		if (r == -ENODATA || stop_signal || (stop_at && now >= stop_at))
			last = 1;
		if (last && r != -ENODATA)
			ls_source_poll(src, 0);	/* episodes that ended but are still in the ring */
		if (!last && now < next)
			continue;
		r = ls_source_snapshot(src, &cur);
		if (r) {
			fprintf(stderr, "loopscope stat: reading the probes' maps failed: %s\n", strerror(-r));
			goto out;
		}
		/* a target that exec'd was attached again as a new target */
		if (grow_done(&done, &ndone, cur.ntargets)) {
			fprintf(stderr, "loopscope stat: out of memory\n");
			goto out;
		}
		if (report(&cur, &prev, st, done)) {
			fprintf(stderr, "loopscope stat: writing the report failed\n");
			goto out;
		}
		report_losses(&cur, &prev);
		ls_snapshot_free(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		if (last)
			break;
		while (next <= now)
			next += (uint64_t)(a->interval * 1e9);
	}
	ret = 0;
out:
	ls_snapshot_free(&prev);
	ls_snapshot_free(&cur);
	free(done);
	return ret;
}

int ls_cmd_stat(int argc, char **argv)
{
	struct stat_args a = { 0 };
	struct stat_state st = { 0 };
	struct ls_agent *ag = NULL;
	struct sigaction sa;
	int ret = parse_args(&a, &st, argc, argv);

	if (ret >= 0)
		return ret;
	if (a.replay) {
		ret = stat_replay(a.replay, &st, a.interval_set ? a.interval : 0, a.duration);
		free(st.eps);
		return ret;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: the wait returns at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = attach(&a, &ag);
	if (!ret && ag) {
		st.src = ls_agent_source(ag);
		st.src->on_episode = on_episode;
		st.src->episode_arg = &st;
		ret = run(st.src, &st, &a);
	}
	ls_agent_free(ag);	/* detaches everything */
	free(st.eps);
	return ret;
}
