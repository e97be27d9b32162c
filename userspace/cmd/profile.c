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

struct prof_opts {
	struct ls_agent_opts agent;
	pid_t pid;
	double duration;		/* seconds */
	double threshold_ms;
	const char *out;		/* -o */
	int stalls;			/* --stalls */
};

struct prof_state {
	struct prof_opts o;
	struct ls_profile_file pf;	/* the output, open before anything is attached */
	struct ls_agent *ag;
	struct ls_source *src;
	struct ls_stack_agg *agg;
	struct ls_profile_meta meta;
	char comm[512];			/* the target's command name, for meta */
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

/* Parse the command line into o. -1 to go on, else the exit status (0 for --help). */
static int parse_args(struct prof_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' }, { "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' }, { "stalls", no_argument, NULL, 's' },
		{ "threshold", required_argument, NULL, 't' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:d:o:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (ls_parse_pid(optarg, &o->pid)) {
				fprintf(stderr, "loopscope profile: bad PID '%s': give a positive process id\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (ls_opt_number(optarg, 0.1, 86400, &o->duration)) {
				fprintf(stderr, "loopscope profile: bad duration '%s': give 0.1 to 86400 seconds\n", optarg);
				return 2;
			}
			break;
		case 'o':
			o->out = optarg;
			break;
		case 's':
			o->stalls = 1;
			break;
		case 't':
			if (ls_opt_number(optarg, 1, 3600000, &o->threshold_ms)) {
				fprintf(stderr, "loopscope profile: threshold out of range: '%s' (give 1 to 3600000 ms)\n",
					optarg);
				return 2;
			}
			break;
		case 'v':
			o->agent.verbose = 1;
			break;
		default:	/* -h, or an option getopt refused */
			return ls_opt_usage(c, usage);
		}
	}
	if (ls_opt_no_operands("profile", argc, argv, 1))
		return 2;
	if (!o->pid || !o->duration || !o->out) {
		fprintf(stderr, "loopscope profile: give -p PID, -d SECONDS and -o FILE; try 'loopscope profile --help'\n");
		return 2;
	}
	if (ls_profile_format_of(o->out) < 0) {
		fprintf(stderr, "loopscope profile: cannot tell the format of '%s': name it %s\n", o->out,
			ls_profile_format_exts());
		return 2;
	}
	return -1;
}

/* SIGINT and SIGTERM end the sampling early; what was sampled is still written. */
static void set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Create the agent, attach the target and read its first snapshot: the JS-frames
 * notes and the command name for the file. 0, or 1 (reported). */
static int attach(struct prof_state *ps)
{
	struct prof_opts *o = &ps->o;
	struct ls_snapshot snap = { 0 };
	char err[512];
	int r;

	o->agent.stall_threshold_ns = (uint64_t)(o->threshold_ms * 1e6);
	o->agent.profile = o->stalls ? LS_PROFILE_STALLS : LS_PROFILE_ALL;
	o->agent.on_stack = o->stalls ? NULL : on_stack;
	o->agent.stack_arg = ps;
	r = ls_agent_new(&o->agent, &ps->ag, err, sizeof(err));
	if (!r)
		r = ls_agent_add_pid(ps->ag, o->pid, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope profile: %s\n", err);
		return 1;
	}
	ps->src = ls_agent_source(ps->ag);
	ps->src->on_episode = o->stalls ? on_episode : NULL;
	ps->src->episode_arg = ps;
	r = ls_source_snapshot(ps->src, &snap);
	if (r) {
		fprintf(stderr, "loopscope profile: reading the probes' maps failed: %s\n", strerror(-r));
		ls_snapshot_free(&snap);
		return 1;
	}
	for (uint32_t i = 0; i < snap.ntargets; i++) {
		const char *js = strstr(snap.targets[i].note, "JS frames unavailable");

		if (js)
			fprintf(stderr, "loopscope profile: pid %d: %.*s; native frames only\n", (int)o->pid,
				(int)strcspn(js, ";"), js);
		snprintf(ps->comm, sizeof(ps->comm), "%s", snap.targets[i].comm);
	}
	ls_snapshot_free(&snap);
	return 0;
}

/* The main loop: sample until -d has passed, a signal or the target exits, with a
 * progress line on a terminal. 0, or 1 after a failure (reported). */
static int run(struct prof_state *ps)
{
	const struct prof_opts *o = &ps->o;
	uint64_t start, stop_at, last_tick = 0, wall0;
	int r;

	ps->meta.comm = ps->comm;
	ps->meta.pid = (int)o->pid;
	wall0 = ls_now_wall_ns();
	start = ls_now_mono_ns();
	stop_at = start + (uint64_t)(o->duration * 1e9);
	for (;;) {
		uint64_t now = ls_now_mono_ns(), left_ms;

		if (now >= stop_at || stop_signal)
			break;
		left_ms = (stop_at - now) / 1000000;
		r = ls_source_poll(ps->src, (int)(left_ms < 200 ? left_ms + 1 : 200));
		if (r == -ENODATA) {
			fprintf(stderr, "\nloopscope profile: pid %d exited; writing what was recorded\n", (int)o->pid);
			break;
		}
		if (r) {
			fprintf(stderr, "\nloopscope profile: waiting for events failed: %s\n", strerror(-r));
			return 1;
		}
		now = ls_now_mono_ns();
		if (now - last_tick >= 250000000ull) {
			last_tick = now;
			progress((int)o->pid, (double)(now - start) / 1e9, o->duration, ls_stack_agg_total(ps->agg),
				 ps->episodes, o->stalls, 0);
		}
	}
	ps->meta.duration_ns = ls_now_mono_ns() - start;
	ps->meta.start_ns = wall0;
	ps->meta.period_ns = 1000000000ull / LS_NODE_PROFILE_HZ;
	progress((int)o->pid, (double)ps->meta.duration_ns / 1e9, o->duration, ls_stack_agg_total(ps->agg),
		 ps->episodes, o->stalls, 1);
	return 0;
}

/* Write the samples into the output (or say there were none, and write it empty).
 * 0, or 1 (reported). */
static int write_profile(struct prof_state *ps)
{
	const struct ls_stack_set *set = NULL;
	char err[512];

	if (ps->oom) {
		fprintf(stderr, "loopscope profile: out of memory while recording\n");
		return 1;
	}
	if (ls_stack_agg_total(ps->agg)) {
		set = ls_stack_agg_finish(ps->agg, ls_stacks_table(), UINT32_MAX);
		if (!set) {
			fprintf(stderr, "loopscope profile: out of memory\n");
			return 1;
		}
	} else {
		fprintf(stderr, "loopscope profile: no samples: the loop thread%s\n",
			ps->o.stalls ? " had no stall or starvation episode" : " did not run on a CPU");
	}
	if (ls_profile_file_commit(&ps->pf, set ? set->stacks : NULL, set ? set->nstacks : 0, &ps->meta, err,
				   sizeof(err))) {
		fprintf(stderr, "loopscope profile: %s\n", err);
		return 1;
	}
	fprintf(stderr, "loopscope profile: wrote %s\n", ps->o.out);
	return 0;
}

int ls_cmd_profile(int argc, char **argv)
{
	struct prof_state ps = { 0 };
	char err[512];
	int ret;

	ps.o.threshold_ms = 100;
	if ((ret = parse_args(&ps.o, argc, argv)) >= 0)
		return ret;
	/* before attaching: an output that cannot be written costs the target nothing */
	if (ls_profile_file_open(&ps.pf, ps.o.out, err, sizeof(err))) {
		fprintf(stderr, "loopscope profile: %s\n", err);
		return 1;
	}
	ret = 1;
	ps.agg = ls_stack_agg_new();
	if (!ps.agg) {
		fprintf(stderr, "loopscope profile: out of memory\n");
	} else {
		set_signals();
		if (!attach(&ps) && !run(&ps) && !write_profile(&ps))
			ret = 0;
	}
	ls_profile_file_abort(&ps.pf);
	ls_agent_free(ps.ag);
	ls_stack_agg_free(ps.agg);
	return ret;
}
