/* stat.c: `loopscope stat`, the agent's plainest front end. Every interval it takes
 * a cumulative snapshot from the live source and prints, per loop, the difference
 * to the previous one: a text block, or one JSON object per line (--json). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "privs.h"
#include "refloop.h"

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
	struct ls_episode *eps;	/* finished episodes since the last report */
	size_t neps, cap;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopscope stat -p PID [-p PID]... [-i SECONDS] [-d SECONDS] [--json]\n"
		"                      [--threshold MS] [--probes TIER] [-v]\n\n"
		"Attach to running event loops and print their numbers every interval.\n\n"
		"  -p, --pid PID        process to trace (repeat for several)\n"
		"  -i, --interval S     seconds between reports (%.1f to %.0f, default 1)\n"
		"  -d, --duration S     stop after S seconds (default: until Ctrl-C or every\n"
		"                       target has exited)\n"
		"      --json           one JSON object per line per loop per interval\n"
		"      --threshold MS   a phase or drain longer than this is a stall or\n"
		"                       starvation episode (default 100)\n"
		"      --probes TIER    Node.js/libuv probe tier: light (default) or phases\n"
		"  -v, --verbose        libbpf diagnostics on stderr\n"
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

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct stat_state *st = arg;
	char d[32];

	if (ep->kind == LS_EP_TARGET_EXIT)
		return;	/* the agent's note said so */
	if (!ep->end_ns) {
		/* In progress: say so at once (text mode; JSON carries finished ones). */
		if (!st->json) {
			fmt_ns(d, sizeof(d), ls_now_mono_ns() - ep->start_ns);
			printf("! pid %d tid %u: %s in %s, running for %s\n", (int)ep->pid, ep->tid,
			       ls_episode_kind_name(ep->kind), ls_phase_name(ep->phase), d);
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

	printf("pid %d (%s) tid %u %s, %s loop, %.2f s%s\n", (int)s->pid, t->comm, s->tid, s->comm,
	       ls_runtime_name(s->runtime), s->interval_s,
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
	fmt_ns(a, sizeof(a), s->delay.p50_ns);
	fmt_ns(b, sizeof(b), s->delay.p99_ns);
	fmt_ns(c, sizeof(c), s->delay.max_ns);
	printf("  delay          p50 %s  p99 %s  max %s  (%lu samples)\n", a, b, c,
	       (unsigned long)s->delay.count);
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
			if (e->kind == LS_EP_STALL)
				printf("    %s in %s: %s\n", ls_episode_kind_name(e->kind), ls_phase_name(e->phase), a);
			else
				printf("    %s in %s: %s, %lu callbacks\n", ls_episode_kind_name(e->kind),
				       ls_phase_name(e->phase), a, (unsigned long)e->callbacks);
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
		for (uint32_t l = 0; l < t->nloops; l++) {
			struct ls_loop_summary s;
			size_t neps = 0;
			struct ls_episode *mine = NULL;

			ls_summarize(&t->loops[l], find_loop(pt, t->loops[l].tid), (double)(end - begin) / 1e9, &s);
			s.pid = t->pid;
			s.runtime = t->runtime;
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
			if (ls_summary_write_json_ex(&s, mine ? mine : &no_episode, neps, stdout) < 0 ||
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

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int ls_cmd_stat(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "threshold", required_argument, NULL, 't' },
		{ "probes", required_argument, NULL, 'P' },	/* Node tier: light | phases */
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ls_agent_opts opts = { 0 };
	struct ls_agent *ag = NULL;
	struct ls_snapshot prev = { 0 }, cur = { 0 };
	struct stat_state st = { 0 };
	struct sigaction sa;
	struct ls_source *src;
	pid_t pids[MAX_PIDS];
	int npids = 0, nexited = 0, c, r, ret = 1;
	uint32_t ndone;
	double interval = 1.0, duration = 0, threshold_ms = 100;
	uint64_t start, next, stop_at = 0;
	uint8_t *done = NULL;
	char err[512];

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:i:d:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			pid_t v;

			if (ls_parse_pid(optarg, &v)) {
				fprintf(stderr, "loopscope stat: bad PID '%s': give a positive process id\n", optarg);
				return 2;
			}
			if (npids == MAX_PIDS) {
				fprintf(stderr, "loopscope stat: at most %d -p options\n", MAX_PIDS);
				return 2;
			}
			/* -p X -p X: one target (attaching twice would only fail). */
			{
				int dup = 0;

				for (int k = 0; k < npids; k++)
					dup |= pids[k] == v;
				if (!dup)
					pids[npids++] = v;
			}
			break;
		}
		case 'i':
			if (parse_seconds(optarg, &interval) || interval < MIN_INTERVAL_S || interval > MAX_INTERVAL_S) {
				fprintf(stderr, "loopscope stat: interval out of range: '%s' (give %.1f to %.0f seconds)\n",
					optarg, MIN_INTERVAL_S, MAX_INTERVAL_S);
				return 2;
			}
			break;
		case 'd':
			if (parse_seconds(optarg, &duration) || duration <= 0 || duration > 1e7) {
				fprintf(stderr, "loopscope stat: bad duration '%s': give a positive number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			st.json = 1;
			break;
		case 't':
			if (parse_seconds(optarg, &threshold_ms) || threshold_ms < 1 || threshold_ms > 3600000) {
				fprintf(stderr, "loopscope stat: threshold out of range: '%s' (give 1 to 3600000 ms)\n",
					optarg);
				return 2;
			}
			break;
		case 'P':
			if (!ls_probe_tier_valid(optarg)) {
				fprintf(stderr, "loopscope stat: unknown probe tier '%s': give light or phases\n",
					optarg);
				return 2;
			}
			opts.tier = optarg;	/* the Node / libuv backend's tier */
			break;
		case 'v':
			opts.verbose = 1;
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
		fprintf(stderr, "loopscope stat: unexpected argument '%s'; try 'loopscope stat --help'\n", argv[optind]);
		return 2;
	}
	if (!npids) {
		fprintf(stderr, "loopscope stat: no target: give -p PID; try 'loopscope stat --help'\n");
		return 2;
	}
	opts.stall_threshold_ns = (uint64_t)(threshold_ms * 1e6);
	opts.note = note;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: the wait returns at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = ls_agent_new(&opts, &ag, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope stat: %s\n", err);
		goto cleanup;
	}
	for (int i = 0; i < npids; i++) {
		r = ls_agent_add_pid(ag, pids[i], err, sizeof(err));
		if (r == -ECHILD) {
			/* It exited while being attached: a target exit, reported, not an error. */
			fprintf(stderr, "loopscope stat: %s\n", err);
			nexited++;
		} else if (r) {
			fprintf(stderr, "loopscope stat: %s\n", err);
			goto cleanup;
		}
		if (stop_signal)
			goto cleanup_ok;
	}
	if (nexited == npids)
		goto cleanup_ok;	/* every target has exited: nothing left to report */
	/* Attached: reading maps and detaching use the descriptors we hold. */
	if (ls_privs_drop(0, NULL, err, sizeof(err))) {
		fprintf(stderr, "loopscope stat: %s\n", err);
		goto cleanup;
	}
	src = ls_agent_source(ag);
	src->on_episode = on_episode;
	src->episode_arg = &st;
	r = ls_source_snapshot(src, &prev);
	if (r) {
		fprintf(stderr, "loopscope stat: reading the probes' maps failed: %s\n", strerror(-r));
		goto cleanup;
	}
	ndone = prev.ntargets > (uint32_t)npids ? prev.ntargets : (uint32_t)npids;
	done = calloc(ndone, 1);
	if (!done) {
		fprintf(stderr, "loopscope stat: out of memory\n");
		goto cleanup;
	}
	if (!st.json)
		fprintf(stderr, "loopscope stat: tracing %d process%s; Ctrl-C to stop\n", npids, npids > 1 ? "es" : "");
	start = prev.mono_ns;
	next = start + (uint64_t)(interval * 1e9);
	if (duration > 0)
		stop_at = start + (uint64_t)(duration * 1e9);
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
			goto cleanup;
		}
		now = ls_now_mono_ns();
		if (r == -ENODATA || stop_signal || (stop_at && now >= stop_at))
			last = 1;
		if (!last && now < next)
			continue;
		r = ls_source_snapshot(src, &cur);
		if (r) {
			fprintf(stderr, "loopscope stat: reading the probes' maps failed: %s\n", strerror(-r));
			goto cleanup;
		}
		if (cur.ntargets > ndone) {
			/* A target that exec'd was attached again as a new target. */
			uint8_t *grown = realloc(done, cur.ntargets);

			if (!grown) {
				fprintf(stderr, "loopscope stat: out of memory\n");
				goto cleanup;
			}
			memset(grown + ndone, 0, cur.ntargets - ndone);
			done = grown;
			ndone = cur.ntargets;
		}
		if (report(&cur, &prev, &st, done)) {
			fprintf(stderr, "loopscope stat: writing the report failed\n");
			goto cleanup;
		}
		/* Lost episodes are counted in the kernel; say so, never drop them silently.
		 * (Counts of a target that detached leave the sum: hence the >.) */
		for (uint32_t i = 0; i < cur.ntargets; i++) {
			const struct ls_target_snapshot *t = &cur.targets[i];
			const char *was = i < prev.ntargets && prev.targets[i].pid == t->pid ? prev.targets[i].note : "";

			/* Loops the kernel side had no room for: say so while it grows. */
			if (!strncmp(t->note, REFLOOP_NOTE_UNTRACKED, strlen(REFLOOP_NOTE_UNTRACKED)) &&
			    strcmp(t->note, was))
				fprintf(stderr, "loopscope stat: pid %d: %s\n", (int)t->pid, t->note);
		}
		if (cur.self.ringbuf_drops > prev.self.ringbuf_drops)
			fprintf(stderr, "loopscope stat: %lu episodes lost (ring buffer full); the counts in "
				"the report still include them\n",
				(unsigned long)(cur.self.ringbuf_drops - prev.self.ringbuf_drops));
		ls_snapshot_free(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		if (last)
			break;
		while (next <= now)
			next += (uint64_t)(interval * 1e9);
	}
cleanup_ok:
	ret = 0;
cleanup:
	ls_snapshot_free(&prev);
	ls_snapshot_free(&cur);
	ls_agent_free(ag);	/* detaches everything */
	free(st.eps);
	free(done);
	return ret;
}
