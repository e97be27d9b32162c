/* profile.c: `loopscope profile`: a loop thread's stack samples for a while, written
 * as folded stacks, an SVG flame graph or pprof (wire/profile_out.h) by the output
 * file's extension. All samples, or with --stalls only those inside stall and
 * starvation episodes. The output file is checked before anything is attached. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "node.h"
#include "options.h"
#include "profile_out.h"
#include "stacktab.h"

struct prof_state {
	struct ls_stack_agg *agg;
	uint64_t episodes;
	int oom;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void usage(FILE *f)
{
	fprintf(f, "usage: loopscope profile -p PID -d SECONDS -o FILE [--stalls] [--threshold MS] [-v]\n\n"
		   "Sample the event-loop threads of a running process and write their stacks\n"
		   "(JS and native frames, leaf first in memory, root first in the file).\n\n"
		   "  -p, --pid PID        process to profile (a Node.js or libuv program)\n"
		   "  -d, --duration S     seconds to record (0.1 to 86400)\n"
		   "  -o, --output FILE    FILE.folded (flamegraph.pl, speedscope), FILE.svg (a\n"
		   "                       self-contained flame graph), FILE.pb.gz (pprof)\n"
		   "      --stalls         only the samples inside stall and starvation episodes\n"
		   "      --threshold MS   a span longer than this is an episode (default 100)\n"
		   "  -v, --verbose        libbpf diagnostics on stderr\n"
		   "  -h, --help           this help\n\n"
		   "Exit status: 0 written, 1 runtime failure (no such process, unwritable FILE,\n"
		   "not permitted), 2 bad usage. See loopscope(1).\n");
}

static void on_stack(void *arg, int32_t pid, uint32_t tid, const struct ls_frame *f, uint32_t n)
{
	struct prof_state *ps = arg;

	(void)pid;
	(void)tid;
	if (ls_stack_agg_add(ps->agg, f, n, 1))
		ps->oom = 1;
}

/* --stalls: every stack of each finished episode. */
static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct prof_state *ps = arg;

	if (!ep->end_ns || !ep->stacks)
		return;
	ps->episodes++;
	for (uint32_t i = 0; i < ep->stacks->nstacks; i++)
		if (ls_stack_agg_add(ps->agg, ep->stacks->stacks[i].frames, ep->stacks->stacks[i].nframes,
				     ep->stacks->stacks[i].count))
			ps->oom = 1;
}

static void progress(int pid, double done_s, double total_s, uint64_t samples, uint64_t episodes, int stalls,
		     int final)
{
	int tty = isatty(STDERR_FILENO);

	if (!tty && !final)
		return;
	if (stalls)
		fprintf(stderr, "%sloopscope profile: pid %d: %.1f s of %.1f s, %lu samples in %lu episodes%s", tty ? "\r" : "",
			pid, done_s, total_s, (unsigned long)samples, (unsigned long)episodes, final ? "\n" : "");
	else
		fprintf(stderr, "%sloopscope profile: pid %d: %.1f s of %.1f s, %lu samples%s", tty ? "\r" : "", pid,
			done_s, total_s, (unsigned long)samples, final ? "\n" : "");
	fflush(stderr);
}

int ls_cmd_profile(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' }, { "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' }, { "stalls", no_argument, NULL, 's' },
		{ "threshold", required_argument, NULL, 't' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct ls_agent_opts opts = { 0 };
	struct ls_profile_file pf = { 0 };
	struct ls_profile_meta meta = { 0 };
	struct prof_state ps = { 0 };
	struct ls_snapshot snap = { 0 };
	struct ls_agent *ag = NULL;
	struct ls_source *src;
	struct sigaction sa;
	const struct ls_stack_set *set = NULL;
	const char *out = NULL;
	pid_t pid = 0;
	double duration = 0, threshold_ms = 100;
	int stalls = 0, c, r, ret = 1;
	uint64_t start, stop_at, last_tick = 0, wall0;
	char err[512];

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:d:o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (ls_parse_pid(optarg, &pid)) {
				fprintf(stderr, "loopscope profile: bad PID '%s': give a positive process id\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (ls_opt_number(optarg, 0.1, 86400, &duration)) {
				fprintf(stderr, "loopscope profile: bad duration '%s': give 0.1 to 86400 seconds\n", optarg);
				return 2;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 's':
			stalls = 1;
			break;
		case 't':
			if (ls_opt_number(optarg, 1, 3600000, &threshold_ms)) {
				fprintf(stderr, "loopscope profile: threshold out of range: '%s' (give 1 to 3600000 ms)\n",
					optarg);
				return 2;
			}
			break;
		case 'v':
			opts.verbose = 1;
			break;
		default:	/* -h, or an option getopt refused */
			return ls_opt_usage(c, usage);
		}
	}
	if (ls_opt_no_operands("profile", argc, argv, 1))
		return 2;
	if (!pid || !duration || !out) {
		fprintf(stderr, "loopscope profile: give -p PID, -d SECONDS and -o FILE; try 'loopscope profile --help'\n");
		return 2;
	}
	if (ls_profile_format_of(out) < 0) {
		fprintf(stderr, "loopscope profile: cannot tell the format of '%s': name it %s\n", out,
			ls_profile_format_exts());
		return 2;
	}
	/* before attaching: an output that cannot be written costs the target nothing */
	r = ls_profile_file_open(&pf, out, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope profile: %s\n", err);
		return 1;
	}
	ps.agg = ls_stack_agg_new();
	if (!ps.agg) {
		fprintf(stderr, "loopscope profile: out of memory\n");
		goto cleanup;
	}
	opts.stall_threshold_ns = (uint64_t)(threshold_ms * 1e6);
	opts.profile = stalls ? LS_PROFILE_STALLS : LS_PROFILE_ALL;
	opts.on_stack = stalls ? NULL : on_stack;
	opts.stack_arg = &ps;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = ls_agent_new(&opts, &ag, err, sizeof(err));
	if (!r)
		r = ls_agent_add_pid(ag, pid, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope profile: %s\n", err);
		goto cleanup;
	}
	src = ls_agent_source(ag);
	src->on_episode = stalls ? on_episode : NULL;
	src->episode_arg = &ps;
	r = ls_source_snapshot(src, &snap);
	if (r) {
		fprintf(stderr, "loopscope profile: reading the probes' maps failed: %s\n", strerror(-r));
		goto cleanup;
	}
	for (uint32_t i = 0; i < snap.ntargets; i++) {
		const char *js = strstr(snap.targets[i].note, "JS frames unavailable");

		if (js)
			fprintf(stderr, "loopscope profile: pid %d: %.*s; native frames only\n", (int)pid,
				(int)strcspn(js, ";"), js);
		snprintf(err, sizeof(err), "%s", snap.targets[i].comm);
	}
	meta.comm = err;
	meta.pid = (int)pid;
	wall0 = ls_now_wall_ns();
	start = ls_now_mono_ns();
	stop_at = start + (uint64_t)(duration * 1e9);
	for (;;) {
		uint64_t now = ls_now_mono_ns();

		if (now >= stop_at || stop_signal)
			break;
		r = ls_source_poll(src, (int)((stop_at - now) / 1000000 < 200 ? (stop_at - now) / 1000000 + 1 : 200));
		if (r == -ENODATA) {
			fprintf(stderr, "\nloopscope profile: pid %d exited; writing what was recorded\n", (int)pid);
			break;
		}
		if (r) {
			fprintf(stderr, "\nloopscope profile: waiting for events failed: %s\n", strerror(-r));
			goto cleanup;
		}
		now = ls_now_mono_ns();
		if (now - last_tick >= 250000000ull) {
			last_tick = now;
			progress((int)pid, (double)(now - start) / 1e9, duration, ls_stack_agg_total(ps.agg), ps.episodes,
				 stalls, 0);
		}
	}
	meta.duration_ns = ls_now_mono_ns() - start;
	meta.start_ns = wall0;
	meta.period_ns = 1000000000ull / LS_NODE_PROFILE_HZ;
	progress((int)pid, (double)meta.duration_ns / 1e9, duration, ls_stack_agg_total(ps.agg), ps.episodes, stalls, 1);
	if (ps.oom) {
		fprintf(stderr, "loopscope profile: out of memory while recording\n");
		goto cleanup;
	}
	if (ls_stack_agg_total(ps.agg)) {
		set = ls_stack_agg_finish(ps.agg, ls_stacks_table(), UINT32_MAX);
		if (!set) {
			fprintf(stderr, "loopscope profile: out of memory\n");
			goto cleanup;
		}
	} else {
		fprintf(stderr, "loopscope profile: no samples: the loop thread%s\n",
			stalls ? " had no stall or starvation episode" : " did not run on a CPU");
	}
	r = ls_profile_file_commit(&pf, set ? set->stacks : NULL, set ? set->nstacks : 0, &meta, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope profile: %s\n", err);
		goto cleanup;
	}
	fprintf(stderr, "loopscope profile: wrote %s\n", out);
	ret = 0;
cleanup:
	ls_profile_file_abort(&pf);
	ls_snapshot_free(&snap);
	ls_agent_free(ag);
	ls_stack_agg_free(ps.agg);
	return ret;
}
