/* record.c: `loopscope record`, everything the live source delivers into a file
 * (userspace/record/README.md): a snapshot every interval and every episode as it
 * starts and ends (with its stacks when the agent sampled them), in zlib blocks
 * written at least every 5 s. `stat --replay`, `top --replay` and `report` read it
 * back. The file is created before anything is attached. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "exe_watch.h"
#include "options.h"
#include "recfile.h"
#include "recstacks.h"
#include "view.h"

#define MAX_PIDS 64
#define MIN_INTERVAL_S 0.1
#define MAX_INTERVAL_S 3600.0
#define PROGRESS_NS 1000000000ull

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct rec_opts {
	struct ls_agent_opts agent;
	struct ls_exe_watch exes;	/* --exe, and the processes found running them */
	pid_t pids[MAX_PIDS];
	int npids;
	const char *path;		/* -o */
	double interval;		/* seconds between snapshots */
	double duration;		/* seconds, 0: until Ctrl-C or the targets exit */
	double threshold_ms;
};

struct rec_state {
	struct rec_opts o;
	struct ls_rec_writer *w;
	struct ls_agent *ag;
	struct ls_source *src;
	struct ls_snapshot last;	/* the latest snapshot: who is attached */
	int failed;			/* a write failed: err holds the line */
	int started;			/* attached: the file stays whatever happens next */
	int tty;			/* stderr is a terminal: the progress line */
	uint64_t episodes;		/* episode records (starts and ends) */
	uint64_t start;			/* when the main loop started */
	const char *reason;		/* why the recording ended, for the trailer */
	char err[512];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopscope record -p PID [-p PID]... [--exe PATH]... -o FILE [-d SECONDS]\n"
		"                        [-i SECONDS] [--threshold MS] [--probes TIER] [-v]\n\n"
		"Record what loopscope sees of running event loops into FILE: a snapshot every\n"
		"interval and every stall, starvation and GC episode as it starts and ends.\n"
		"Read it back with 'loopscope stat --replay FILE', 'loopscope top --replay FILE'\n"
		"or 'loopscope report FILE -o report.html'.\n\n"
		"  -p, --pid PID        process to record (repeat for several)\n"
		"  -e, --exe PATH       also every process running this binary, including ones\n"
		"                       that start later (checked every interval; repeatable)\n"
		"  -o, --output FILE    the recording (created, or overwritten)\n"
		"  -d, --duration S     stop after S seconds (default: until Ctrl-C, or every\n"
		"                       target has exited when there is no --exe)\n"
		"  -i, --interval S     seconds between snapshots (%.1f to %.0f, default 1)\n"
		"      --threshold MS   a phase or drain longer than this is an episode (default 100)\n"
		"      --probes TIER    Node.js/libuv probe tier: light (default), phases or counters\n"
		"  -v, --verbose        libbpf diagnostics on stderr\n"
		"  -h, --help           this help\n\n"
		"The file is written in blocks at least every 5 s, each synced to disk, so a\n"
		"recording cut by a kill, a full disk or a power loss reads up to its last block.\n"
		"Progress (elapsed, episodes, bytes) goes to stderr when it is a terminal.\n\n"
		"Exit status: 0 recorded as asked (a target exiting ends the recording when it\n"
		"was the last), 1 runtime failure (attach failed, the file could not be written:\n"
		"what was written so far stays readable), 2 bad usage. See loopscope(1).\n",
		MIN_INTERVAL_S, MAX_INTERVAL_S);
}

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct rec_state *st = arg;

	if (st->failed)
		return;
	/* Its stacks first: a reader attaches them to the end that follows. */
	if (ls_rec_put_stacks(st->w, ep, ls_now_mono_ns(), st->err, sizeof(st->err)) ||
	    ls_rec_put_episode(st->w, ep, ls_now_mono_ns(), st->err, sizeof(st->err)))
		st->failed = 1;
	else
		st->episodes++;
}

/* exe_watch callback: attach to a process found running an --exe binary. */
static int exe_found(pid_t pid, const char *path, void *arg)
{
	struct rec_state *st = arg;
	char err[256];
	int r;

	if (ls_snapshot_pid_attached(&st->last, (int32_t)pid))
		return -EEXIST;
	r = ls_agent_add_pid(st->ag, pid, err, sizeof(err));
	if (r == 0)
		fprintf(stderr, "loopscope record: attached to %d (%s)\n", (int)pid, path);
	else if (r != -EEXIST)
		fprintf(stderr, "loopscope record: %s (not retried for this process)\n", err);
	return r;
}

static void progress(uint64_t elapsed_ns, const struct rec_state *st, const char *path)
{
	uint64_t s = elapsed_ns / 1000000000ull, bytes = ls_rec_bytes(st->w);

	fprintf(stderr, "\r  %02lu:%02lu:%02lu  %lu episode records  %.1f KiB  -> %s\033[K",
		(unsigned long)(s / 3600), (unsigned long)(s / 60 % 60), (unsigned long)(s % 60),
		(unsigned long)st->episodes, bytes / 1024.0, path);
}

/* The command line, for the header (what recorded this). */
static void join_args(int argc, char **argv, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "loopscope");

	for (int i = 0; i < argc && n + 1 < len; i++)
		n += (size_t)snprintf(out + n, len - n, " %s", argv[i]);
}

/* Parse the command line into o. -1 to go on, else the exit status (0 for --help). */
static int parse_args(struct rec_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "exe", required_argument, NULL, 'e' },
		{ "output", required_argument, NULL, 'o' },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "threshold", required_argument, NULL, 't' },
		{ "probes", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:e:o:i:d:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (ls_opt_pid("record", optarg, o->pids, &o->npids, MAX_PIDS, ""))
				return 2;
			break;
		case 'e':
			if (ls_exe_watch_add(&o->exes, optarg, err, sizeof(err))) {
				fprintf(stderr, "loopscope record: %s\n", err);
				return 2;
			}
			break;
		case 'o':
			o->path = optarg;
			break;
		case 'i':
			if (ls_opt_number(optarg, -1e300, 1e300, &o->interval) || o->interval < MIN_INTERVAL_S ||
			    o->interval > MAX_INTERVAL_S) {
				fprintf(stderr, "loopscope record: interval out of range: '%s' (give %.1f to %.0f seconds)\n",
					optarg, MIN_INTERVAL_S, MAX_INTERVAL_S);
				return 2;
			}
			break;
		case 'd':
			if (ls_opt_number(optarg, -1e300, 1e300, &o->duration) || o->duration <= 0 ||
			    o->duration > 1e7) {
				fprintf(stderr, "loopscope record: bad duration '%s': give a positive number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case 't':
			if (ls_opt_number(optarg, -1e300, 1e300, &o->threshold_ms) || o->threshold_ms < 1 ||
			    o->threshold_ms > 3600000) {
				fprintf(stderr, "loopscope record: threshold out of range: '%s' (give 1 to 3600000 ms)\n",
					optarg);
				return 2;
			}
			break;
		case 'P':
			if (!ls_probe_tier_valid(optarg)) {
				fprintf(stderr, "loopscope record: unknown probe tier '%s': give light, phases or counters\n", optarg);
				return 2;
			}
			o->agent.tier = optarg;
			break;
		case 'v':
			o->agent.verbose = 1;
			break;
		default:	/* -h, or an option getopt refused */
			return ls_opt_usage(c, usage);
		}
	}
	if (ls_opt_no_operands("record", argc, argv, 1))
		return 2;
	if (!o->npids && !o->exes.nexes) {
		fprintf(stderr, "loopscope record: no target: give -p PID or --exe PATH; try 'loopscope record --help'\n");
		return 2;
	}
	if (!o->path) {
		fprintf(stderr, "loopscope record: no output: give -o FILE; try 'loopscope record --help'\n");
		return 2;
	}
	o->agent.stall_threshold_ns = (uint64_t)(o->threshold_ms * 1e6);
	return -1;
}

/* SIGINT, SIGTERM and SIGHUP end the recording cleanly: the attaching or the main loop
 * stops, and the file is closed with its trailer. */
static void set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: the wait returns at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Create the file with its header (what, where, how recorded). 0, or 1 (reported). */
static int create_file(struct rec_state *st, int argc, char **argv)
{
	struct ls_rec_info info = { .format = LS_REC_FORMAT };
	struct utsname un;
	char err[512];

	snprintf(info.version, sizeof(info.version), "%s", LOOPSCOPE_VERSION);
	if (gethostname(info.host, sizeof(info.host) - 1))
		info.host[0] = 0;
	if (uname(&un) == 0)
		snprintf(info.kernel, sizeof(info.kernel), "%s %s %s", un.sysname, un.release, un.machine);
	info.mono_ns = ls_now_mono_ns();
	info.wall_ns = ls_now_wall_ns();
	info.interval_ns = (uint64_t)(st->o.interval * 1e9);
	info.threshold_ns = st->o.agent.stall_threshold_ns;
	snprintf(info.probes, sizeof(info.probes), "%s", st->o.agent.tier ? st->o.agent.tier : "");
	join_args(argc - 1, argv + 1, info.command, sizeof(info.command));
	if (ls_rec_create(st->o.path, &info, &st->w, err, sizeof(err))) {
		fprintf(stderr, "loopscope record: %s\n", err);
		return 1;
	}
	return 0;
}

/* Create the agent and attach every -p target (a signal stops the attaching, and
 * what is attached is recorded), then the first --exe scan. 0, or 1 (reported). */
static int attach(struct rec_state *st)
{
	struct rec_opts *o = &st->o;
	char err[512];
	int r;

	if (ls_agent_new(&o->agent, &st->ag, err, sizeof(err))) {
		fprintf(stderr, "loopscope record: %s\n", err);
		return 1;
	}
	for (int i = 0; i < o->npids; i++) {
		if (ls_agent_add_pid(st->ag, o->pids[i], err, sizeof(err))) {
			fprintf(stderr, "loopscope record: %s\n", err);
			return 1;
		}
		if (stop_signal)
			break;
	}
	st->started = 1;
	st->src = ls_agent_source(st->ag);
	st->src->on_episode = on_episode;
	st->src->episode_arg = st;
	if (o->exes.nexes)
		fprintf(stderr, "loopscope record: recording %d process%s and every one running %s%s into %s; "
			"Ctrl-C to stop\n", o->npids, o->npids == 1 ? "" : "es", o->exes.exes[0].path,
			o->exes.nexes > 1 ? ", ..." : "", o->path);
	else
		fprintf(stderr, "loopscope record: recording %d process%s into %s; Ctrl-C to stop\n", o->npids,
			o->npids > 1 ? "es" : "", o->path);
	if (o->exes.nexes && (r = ls_exe_watch_scan(&o->exes, exe_found, st)))
		fprintf(stderr, "loopscope record: cannot scan /proc for --exe: %s\n", strerror(-r));
	return 0;
}

/* Wait for the probes' events until `until`, waking at least every second for the
 * progress line and in time for the pending block's flush. What ls_source_poll()
 * returns, except that with --exe nothing attached (yet, or any more) is a sleep. */
static int wait_events(struct rec_state *st, uint64_t now, uint64_t until)
{
	uint64_t wait = until - now < PROGRESS_NS ? until - now : PROGRESS_NS;
	uint64_t since = ls_rec_pending_since(st->w);
	int r;

	if (since && since + LS_REC_FLUSH_NS > now && since + LS_REC_FLUSH_NS - now < wait)
		wait = since + LS_REC_FLUSH_NS - now;

	r = ls_source_poll(st->src, (int)((wait + 999999) / 1000000));
	if (r == -ENODATA && st->o.exes.nexes) {
		/* Nothing attached (yet, or any more): --exe waits for the next one. */
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000ull),
				       .tv_nsec = (long)(wait % 1000000000ull) };

		nanosleep(&ts, NULL);
		r = 0;
	}
	return r;
}

/* The interval's snapshot into the file and into st->last, then (unless it is the
 * last one) the --exe rescan. 0, or 1 when the maps could not be read (reported). */
static int take_snapshot(struct rec_state *st, int last)
{
	struct ls_snapshot snap = { 0 };
	int r;

	r = ls_source_snapshot(st->src, &snap);
	if (r) {
		fprintf(stderr, "%sloopscope record: reading the probes' maps failed: %s\n", st->tty ? "\n" : "",
			strerror(-r));
		return 1;
	}
	if (!st->failed && ls_rec_put_snapshot(st->w, &snap, st->err, sizeof(st->err)))
		st->failed = 1;
	ls_snapshot_free(&st->last);
	st->last = snap;
	if (st->o.exes.nexes && !last && (r = ls_exe_watch_scan(&st->o.exes, exe_found, st)))
		fprintf(stderr, "%sloopscope record: cannot scan /proc for --exe: %s\n", st->tty ? "\n" : "",
			strerror(-r));
	return 0;
}

/* The main loop: episodes as they come, a snapshot every interval, a block when one
 * is due, until -d, a signal or (without --exe) every target gone; st->reason says
 * which. 0, or 1 after a failure (reported). */
static int run(struct rec_state *st)
{
	uint64_t next, stop_at = 0, shown = 0;
	int r;

	st->start = ls_now_mono_ns();
	next = st->start;
	if (st->o.duration > 0)
		stop_at = st->start + (uint64_t)(st->o.duration * 1e9);
	for (;;) {
		uint64_t now = ls_now_mono_ns(), until = next;
		int last = 0;

		if (stop_at && stop_at < until)
			until = stop_at;
		r = 0;
		if (now < until && !stop_signal)
			r = wait_events(st, now, until);
		if (r && r != -ENODATA) {
			fprintf(stderr, "%sloopscope record: waiting for events failed: %s\n", st->tty ? "\n" : "",
				strerror(-r));
			return 1;
		}
		now = ls_now_mono_ns();
		if (r == -ENODATA)
			st->reason = "targets exited";
		if (stop_signal)
			st->reason = "interrupted";
		last = r == -ENODATA || stop_signal || (stop_at && now >= stop_at);
		if (last || now >= next) {
			if (take_snapshot(st, last))
				return 1;
			while (next <= now)
				next += (uint64_t)(st->o.interval * 1e9);
		}
		if (!st->failed && ls_rec_flush(st->w, ls_now_mono_ns(), 0, st->err, sizeof(st->err)))
			st->failed = 1;
		if (st->failed) {
			fprintf(stderr, "%sloopscope record: %s\n", st->tty ? "\n" : "", st->err);
			return 1;
		}
		if (st->tty && (now - shown >= PROGRESS_NS || last)) {
			progress(now - st->start, st, st->o.path);
			shown = now;
		}
		if (last)
			return 0;
	}
}

/* Close the file: the last block and the trailer saying why it ended. 0, or 1 (reported). */
static int finish(struct rec_state *st)
{
	uint64_t eps = st->episodes;
	struct ls_rec_writer *w = st->w;
	char err[512];

	if (st->tty)
		fputc('\n', stderr);
	st->w = NULL;
	if (ls_rec_close(w, st->reason, err, sizeof(err))) {
		fprintf(stderr, "loopscope record: %s\n", err);
		return 1;
	}
	fprintf(stderr, "loopscope record: %s: %.1f s, %lu episode records (%s)\n", st->o.path,
		(ls_now_mono_ns() - st->start) / 1e9, (unsigned long)eps, st->reason);
	return 0;
}

static void rec_free(struct rec_state *st)
{
	/* An attach that failed recorded nothing: no file is better than an empty one. */
	if (st->w && !st->started)
		unlink(st->o.path);
	ls_rec_abandon(st->w);	/* after an error: the complete blocks stay */
	ls_agent_free(st->ag);
	ls_snapshot_free(&st->last);
	ls_exe_watch_free(&st->o.exes);
}

int ls_cmd_record(int argc, char **argv)
{
	struct rec_state st = { 0 };
	int ret;

	st.tty = isatty(STDERR_FILENO);
	st.o.interval = 1.0;
	st.o.threshold_ms = 100;
	st.reason = "duration";
	if ((ret = parse_args(&st.o, argc, argv)) >= 0) {
		ls_exe_watch_free(&st.o.exes);
		return ret;
	}
	set_signals();
	/* The file first: an unwritable path fails before anything is attached. */
	if (create_file(&st, argc, argv)) {
		ls_exe_watch_free(&st.o.exes);
		return 1;
	}
	ret = 1;
	if (!attach(&st) && !run(&st) && !finish(&st))
		ret = 0;
	rec_free(&st);
	return ret;
}
