/* top.c: `loopscope top`, the live terminal dashboard.
 *
 * A loop over poll(2) on the terminal, a self-pipe for signals and the source's fd:
 * episodes reach the model as they arrive (an alert shows at once), snapshots are taken
 * every refresh interval, and the screen is redrawn from the model (topdraw.c) with
 * erase + wnoutrefresh + doupdate, so curses sends only what changed.
 *
 * Every way out goes through one place, so the terminal is always restored: q, Ctrl-C,
 * SIGTERM/SIGHUP/SIGQUIT (a flag and the self-pipe; the loop exits normally, with status
 * 128 + the signal's number where q gives 0), the
 * source failing or ending (the loop exits normally), and crashes (SIGSEGV, SIGABRT, ...:
 * an async-signal-safe reset of the tty from strings prepared at start-up, then the
 * default action). Probes are bpf links owned by our fds, so even a crash leaves nothing
 * attached in the kernel.
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <fcntl.h>
#include <curses.h>
#include <term.h>

#include "agent.h"
#include "commands.h"
#include "options.h"
#include "privs.h"
#include "remote.h"
#include "replay.h"
#include "snapshot.h"
#include "topdraw.h"
#include "topmodel.h"

#define TOP_MAX_PIDS 64
#define TOP_POLL_MS 50		/* the agent looks for stalls in progress when polled */
#define TOP_ALERT_REDRAW_NS 100000000ull

struct top_cfg {
	pid_t pids[TOP_MAX_PIDS];
	int npids;
	const char *connect;
	const char *replay;	/* a recording to play instead of a live source */
	struct ls_remote_opts remote;	/* --tls-ca, --tls-cert, --tls-key */
	const char *tier;	/* Node probe tier, NULL = the agent's default */
	int refresh_ms;
	uint64_t stall_ns, starve_ns, hold_ns;
	int color;
	int follow_exec;	/* keep the attach set: re-attach a target after an exec */
	int exit_linger_ms;	/* after every target is gone, keep the last screen this long */
};

/* ---------------------------------------------------------------- terminal */

static struct {
	int on;				/* curses is up */
	int have_termios;
	struct termios saved;		/* the tty as we found it */
	char reset[128];		/* leave alternate screen, show cursor, plain attributes */
	size_t reset_len;
	int sigpipe[2];
	volatile sig_atomic_t stop;	/* the signal that asked us to stop, or 0 */
} tty = { .sigpipe = { -1, -1 } };

static void append_cap(const char *cap)
{
	char *s = tigetstr((char *)cap);
	size_t n;

	if (!s || s == (char *)-1)
		return;
	n = strlen(s);
	if (tty.reset_len + n < sizeof(tty.reset)) {
		memcpy(tty.reset + tty.reset_len, s, n);
		tty.reset_len += n;
	}
}

/* The normal way back: endwin() restores modes and leaves the alternate screen. */
static void term_restore(void)
{
	if (!tty.on)
		return;
	tty.on = 0;
	endwin();
	if (tty.have_termios)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &tty.saved);
}

/* Crash path: only async-signal-safe calls, then die of the same signal. */
static void crash_handler(int sig)
{
	if (tty.on) {
		if (tty.reset_len)
			(void)!write(STDOUT_FILENO, tty.reset, tty.reset_len);
		if (tty.have_termios)
			tcsetattr(STDIN_FILENO, TCSANOW, &tty.saved);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void stop_handler(int sig)
{
	int e = errno;

	tty.stop = sig;
	if (tty.sigpipe[1] >= 0)
		(void)!write(tty.sigpipe[1], "", 1);
	errno = e;
}

static void atexit_restore(void) { term_restore(); }

static int term_setup(const struct top_cfg *cfg, struct top_draw_ctx *ctx)
{
	static const int crash[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
	static const int stop[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa;
	const char *nc = getenv("NO_COLOR");

	if (pipe2(tty.sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	if (tcgetattr(STDIN_FILENO, &tty.saved) == 0)
		tty.have_termios = 1;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = stop_handler;
	for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
		sigaction(stop[i], &sa, NULL);
	sa.sa_handler = crash_handler;
	sa.sa_flags = SA_RESETHAND;
	for (size_t i = 0; i < sizeof(crash) / sizeof(crash[0]); i++)
		sigaction(crash[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(atexit_restore);

	if (!initscr())
		return -ENOTTY;
	tty.on = 1;
	append_cap("rmcup");
	append_cap("sgr0");
	append_cap("cnorm");
	cbreak();	/* Ctrl-C still raises SIGINT, which we catch */
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	set_escdelay(25);
	ctx->color = cfg->color && !(nc && nc[0]);
	ctx->utf8 = MB_CUR_MAX > 1;
	top_draw_init(ctx);
	return 0;
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *f)
{
	fprintf(f, "usage: loopscope top -p PID [-p PID]... [OPTIONS]\n"
		   "       loopscope top --connect ADDR:PORT [OPTIONS]\n"
		   "       loopscope top --replay FILE [OPTIONS]\n\n"
		   "Live dashboard of event loops: per-process header lines, per-phase share of wall\n"
		   "time and p50/p99/max, event-loop delay history, nextTick/microtask drains, GC\n"
		   "pauses, recent episodes, and alerts while a stall or starvation is happening.\n\n"
		   "Options:\n"
		   "  -p, --pid PID          attach to PID (repeatable; needs root or CAP_BPF+CAP_PERFMON)\n"
		   "  -c, --connect ADDR:PORT  show what a running `loopscope serve` streams (no privileges);\n"
		   "                         https://USER:PASS@ADDR:PORT for one behind --web.config.file\n"
		   "      --tls-ca FILE      trust this CA for https:// (default: the system's)\n"
		   "      --tls-cert FILE    client certificate for https:// (--tls-key FILE: its key)\n"
		   "      --replay FILE      play a recording ('loopscope record') as it happened (no privileges)\n"
		   "  -i, --interval MS      refresh interval, 50..60000 (default 500)\n"
		   "  -t, --threshold MS     stall and starvation alert threshold (default 100)\n"
		   "      --stall MS         stall threshold alone (a phase or not-polling span)\n"
		   "      --starve MS        starvation threshold alone (a nextTick/microtask drain)\n"
		   "      --hold MS          keep an alert on screen this long after it ended (default 2000)\n"
		   "      --probes TIER      Node.js probe tier: light (default), phases (per-phase times) or\n"
		   "                         counters (no probe: libuv's own counters)\n"
		   "      --follow-exec      a target that execs is attached again if the new program is\n"
		   "                         an event loop (keeps the capabilities attaching needs;\n"
		   "                         otherwise every one is dropped once attached)\n"
		   "      --no-color         monochrome (also when NO_COLOR is set)\n"
		   "  -h, --help             this help\n\n"
		   "Keys: q quit, p pause, Up/Down or j/k select, s sort, h or ? help, r reset window.\n"
		   "Replay keys: p or space play/pause, . or Right step one snapshot, + and - speed\n"
		   "(1x..60x), n or Tab jump to the next episode.\n\n"
		   "Spans: the header lines (iter/s, util, delay p99) cover the last 1-2 s; the selected\n"
		   "loop's detail (phase shares, delay, drains, GC) covers the last 2 minutes, or since\n"
		   "attach or r if that is later (shown as \"last N\"). \"other\" is the wall time in no\n"
		   "phase, so the shares add up to 100%%.\n\n"
		   "Exit status: 0 after q, or when every target has exited; 1 when the source fails\n"
		   "or every target exited before it was attached;\n"
		   "2 for a usage error; 128 + the signal's number when stopped by a signal (Ctrl-C 130,\n"
		   "SIGTERM 143, SIGHUP 129). The terminal is restored on every path.\n");
}

enum { OPT_STALL = 256, OPT_STARVE, OPT_HOLD, OPT_NOCOLOR, OPT_PROBES, OPT_TLS_CA, OPT_TLS_CERT, OPT_TLS_KEY,
       OPT_REPLAY, OPT_FOLLOW_EXEC };

/* A number of milliseconds for option what, lo..hi, into *v: 0, or 2 (usage error) with
 * the message printed. */
static int parse_ms(const char *what, const char *arg, long lo, long hi, long *v)
{
	if (!ls_opt_integer(arg, lo, hi, v))
		return 0;
	fprintf(stderr, "loopscope top: %s '%s' out of range; give %ld..%ld ms\n", what, arg, lo, hi);
	return 2;
}

/* The options that say where the data comes from (-p, --connect, --replay and the
 * files for https://): 0, or 2 with the message printed, also for an option getopt
 * refused. */
static int source_option(int c, const char *arg, struct top_cfg *cfg)
{
	switch (c) {
	case 'p':
		if (ls_opt_pid("top", arg, cfg->pids, &cfg->npids, TOP_MAX_PIDS, NULL))
			return 2;
		break;
	case 'c':
		cfg->connect = arg;
		break;
	case OPT_REPLAY:
		cfg->replay = arg;
		break;
	case OPT_TLS_CA:
		cfg->remote.ca_file = arg;
		break;
	case OPT_TLS_CERT:
		cfg->remote.cert_file = arg;
		break;
	case OPT_TLS_KEY:
		cfg->remote.key_file = arg;
		break;
	default:
		fprintf(stderr, "loopscope top: try 'loopscope top --help'\n");
		return 2;
	}
	return 0;
}

/* One option c with its argument: 0, 2 usage error (message printed), -1 help printed. */
static int parse_option(int c, const char *arg, struct top_cfg *cfg)
{
	long v;

	switch (c) {
	case 'i':
		if (parse_ms("interval", arg, 50, 60000, &v))
			return 2;
		cfg->refresh_ms = (int)v;
		break;
	case 't':
	case OPT_STALL:
	case OPT_STARVE:
		if (parse_ms("threshold", arg, 1, 3600 * 1000, &v))
			return 2;
		if (c != OPT_STARVE)
			cfg->stall_ns = (uint64_t)v * 1000000;
		if (c != OPT_STALL)
			cfg->starve_ns = (uint64_t)v * 1000000;
		break;
	case OPT_HOLD:
		if (parse_ms("hold", arg, 0, 3600 * 1000, &v))
			return 2;
		cfg->hold_ns = (uint64_t)v * 1000000;
		break;
	case OPT_NOCOLOR:
		cfg->color = 0;
		break;
	case OPT_FOLLOW_EXEC:
		cfg->follow_exec = 1;
		break;
	case OPT_PROBES:
		if (!ls_probe_tier_valid(arg)) {
			fprintf(stderr, "loopscope top: --probes takes 'light', 'phases' or 'counters', not '%s'\n", arg);
			return 2;
		}
		cfg->tier = arg;
		break;
	case 'h':
		usage(stdout);
		return -1;
	default:
		return source_option(c, arg, cfg);
	}
	return 0;
}

/* 0 ok, 2 usage error (message printed), -1 help printed. */
static int parse_args(int argc, char **argv, struct top_cfg *cfg)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "connect", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "threshold", required_argument, NULL, 't' },
		{ "stall", required_argument, NULL, OPT_STALL },
		{ "starve", required_argument, NULL, OPT_STARVE },
		{ "hold", required_argument, NULL, OPT_HOLD },
		{ "no-color", no_argument, NULL, OPT_NOCOLOR },
		{ "probes", required_argument, NULL, OPT_PROBES },
		{ "replay", required_argument, NULL, OPT_REPLAY },
		{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "follow-exec", no_argument, NULL, OPT_FOLLOW_EXEC },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:c:i:t:h", longopts, NULL)) != -1)
		if ((rc = parse_option(c, optarg, cfg)))
			return rc;
	if (ls_opt_no_operands("top", argc, argv, 1))
		return 2;
	if ((cfg->npids > 0) + !!cfg->connect + !!cfg->replay != 1) {
		fprintf(stderr, "loopscope top: give one of -p PID (attach), --connect ADDR:PORT (a serve stream) or "
			"--replay FILE (a recording), not %s\n", cfg->npids || cfg->connect || cfg->replay ? "several" : "none");
		return 2;
	}
	if (cfg->follow_exec && !cfg->npids) {
		fprintf(stderr, "loopscope top: --follow-exec is for attaching to processes (-p PID)\n");
		return 2;
	}
	return 0;
}

/* ---------------------------------------------------------------- main loop */

/* The model runs on the source's clock: the local one, or a replay's playback position. */
static struct ls_source *model_src;

static void on_episode(const struct ls_episode *ep, void *arg)
{
	top_model_episode(arg, ep, ls_source_now(model_src));
}

static int take_snapshot(struct ls_source *src, struct top_model *m)
{
	struct ls_snapshot s = { 0 };
	int err = ls_source_snapshot(src, &s);

	if (err)
		return err;
	err = top_model_update(m, &s, ls_source_now(src));
	ls_snapshot_free(&s);
	return err;
}

static void redraw(struct top_model *m, const struct top_draw_ctx *ctx)
{
	top_model_tick(m, ls_source_now(model_src));
	top_draw(stdscr, m, ctx);
	wnoutrefresh(stdscr);
	doupdate();
}

static const double replay_speeds[] = { 1, 2, 5, 10, 20, 30, 60 };

/* Replay keys: 1 handled (ch is one of them), 0 not a replay key. Steps and jumps feed
 * the model at once, so the screen shows where the playback went. */
static int replay_key(struct ls_source *src, struct top_model *m, int ch)
{
	uint64_t now = ls_now_mono_ns();
	int n = (int)(sizeof(replay_speeds) / sizeof(replay_speeds[0])), i = 0, err = 0;

	while (i < n - 1 && replay_speeds[i] < ls_replay_speed(src))
		i++;
	switch (ch) {
	case 'p':
	case ' ':
		if (!m->replay.ended)
			ls_replay_set_paused(src, !ls_replay_paused(src), now);
		break;
	case '+':
	case '=':
		ls_replay_set_speed(src, replay_speeds[i < n - 1 ? i + 1 : i], now);
		break;
	case '-':
		ls_replay_set_speed(src, replay_speeds[i > 0 ? i - 1 : 0], now);
		break;
	case '.':
	case KEY_RIGHT:
		ls_replay_set_paused(src, 1, now);
		err = ls_replay_step(src, now);
		break;
	case 'n':
	case '\t':
		err = ls_replay_next_episode(src, now);
		break;
	default:
		return 0;
	}
	if (ch != 'p' && ch != ' ' && ch != '+' && ch != '=' && ch != '-' && err != -ENOMEM)
		take_snapshot(src, m);
	if (err && err != -ENOMEM)
		m->replay.ended = 1;
	m->replay.playing = !m->replay.ended && !ls_replay_paused(src);
	m->replay.speed = ls_replay_speed(src);
	return 1;
}

/* 1 to quit. */
static int handle_key(struct ls_source *src, struct top_model *m, int ch)
{
	if (m->help && ch != KEY_RESIZE) {
		m->help = 0;	/* any key closes the help */
		return ch == 'q';
	}
	if (m->replay.on && replay_key(src, m, ch))
		return 0;
	if (m->stacks && ch != KEY_RESIZE) {
		if (ch == '[' || ch == ']')
			top_model_stacks_step(m, ch == '[' ? 1 : -1);
		else
			m->stacks = 0;	/* any other key closes the pane */
		return ch == 'q';
	}
	switch (ch) {
	case 'q':
	case 'Q':
		return 1;
	case 'p':
	case ' ':
		m->paused = !m->paused;
		break;
	case KEY_UP:
	case 'k':
		top_model_select(m, -1);
		break;
	case KEY_DOWN:
	case 'j':
		top_model_select(m, 1);
		break;
	case 's':
		top_model_cycle_sort(m);
		break;
	case 'r':
		top_model_reset_window(m);
		break;
	case 'h':
	case '?':
		m->help = 1;
		break;
	case 'e':
		top_model_stacks_open(m);
		break;
	}
	return 0;
}

/* "target 123 (loopdemo) exited; nothing left to watch" */
static void exited_why(const struct top_model *m, char *why, size_t len)
{
	size_t n = 0;

	why[0] = '\0';
	for (uint32_t i = 0; i < m->nrows && n + 1 < len; i++)
		if (m->rows[i].target_state == LS_TARGET_EXITED)
			n += (size_t)snprintf(why + n, len - n, "%starget %d (%s) exited", n ? ", " : "",
					      m->rows[i].pid, m->rows[i].comm);
	if (n + 1 < len)
		snprintf(why + n, len - n, "%snothing left to watch", n ? "; " : "");
}

/* Replay: feed the model every recorded snapshot due by now. 1 if the screen changed.
 * At the end of the recording, or its damage, the model says it ended and why says
 * the damage; the last screen stays until q. */
static int replay_due(struct ls_source *src, struct top_model *m, uint64_t now, char *why, size_t whylen)
{
	int err = 0, dirty = 0;

	/* Every recorded snapshot reaches the model, whatever the speed. */
	while (!m->replay.ended && (err = ls_replay_advance(src, now)) == 1) {
		take_snapshot(src, m);
		dirty = 1;
	}
	if (!m->replay.ended && err < 0) {
		m->replay.ended = 1;
		m->replay.playing = 0;
		dirty = 1;
		if (err != -ENODATA)
			snprintf(why, whylen, "%s", err == -ENOMEM ? "out of memory" : ls_replay_error(src));
	}
	return dirty;
}

/* A live source's snapshot into the model: 0 (also when it has nothing new yet), or 1
 * with why set when reading it failed. */
static int live_snapshot(struct ls_source *src, struct top_model *m, char *why, size_t whylen)
{
	int err = take_snapshot(src, m);

	if (err && err != -ENODATA && err != -EAGAIN) {
		snprintf(why, whylen, "reading the %s source failed: %s", m->source_name, strerror(-err));
		return 1;
	}
	return 0;
}

/* How long the next wait may last, in ms: until the next snapshot is due, or the
 * linger once every target is gone (ended_at). */
static int wait_ms(const struct top_cfg *cfg, uint64_t now, uint64_t next, uint64_t ended_at)
{
	int timeout;

	if (ended_at)
		return cfg->exit_linger_ms;
	/* The source is polled at least every TOP_POLL_MS even when its fd is quiet:
	 * a stall in progress fires no probe, so the agent finds it only by looking
	 * at the loop's live state, which it does when polled. */
	timeout = (int)((next - now) / 1000000) + 1;
	return timeout > TOP_POLL_MS ? TOP_POLL_MS : timeout;
}

/* Wait up to timeout ms for a key, a signal (the self-pipe) or the source's fd (sfd,
 * -1 for none). 0, or 1 with why set when poll fails. */
static int wait_events(int sfd, int timeout, char *why, size_t whylen)
{
	struct pollfd pfd[3] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = tty.sigpipe[0], .events = POLLIN },
		{ .fd = sfd, .events = POLLIN },
	};

	if (poll(pfd, sfd >= 0 ? 3 : 2, timeout) < 0 && errno != EINTR) {
		snprintf(why, whylen, "poll: %s", strerror(errno));
		return 1;
	}
	return 0;
}

/* The exit status for the signal that stopped us, with why set. The shell's convention
 * for a death by signal: 128 + its number (Ctrl-C 130, SIGTERM 143), after the same
 * clean exit as q (0). */
static int stopped(char *why, size_t whylen)
{
	int sig = (int)tty.stop;

	snprintf(why, whylen, "stopped by SIG%s", sig == SIGINT ? "INT" : sig == SIGTERM ? "TERM" :
		 sig == SIGHUP ? "HUP" : sig == SIGQUIT ? "QUIT" : "?");
	return 128 + sig;
}

/* Let a live source deliver what it has (episodes reach the model through on_episode):
 * 0 to go on, *dirty set when an episode came and *ended_at when every target is gone;
 * or 1 with why set when the source failed or its stream closed. */
static int poll_source(struct ls_source *src, struct top_model *m, uint64_t *ended_at, int *dirty, char *why,
		       size_t whylen)
{
	uint64_t seen = m->episodes_seen;
	int err = ls_source_poll(src, 0);

	if (m->episodes_seen != seen)
		*dirty = 1;
	if (err == -ENODATA) {
		take_snapshot(src, m);
		if (!m->all_exited) {
			/* A closed stream, not the targets: that is a failure. */
			snprintf(why, whylen, "the %s source ended (the stream closed); "
				 "is 'loopscope serve' still running?", m->source_name);
			return 1;
		}
		/* Show the final state (target exited) for a moment, then leave. */
		*ended_at = ls_now_mono_ns();
		exited_why(m, why, whylen);
	} else if (err) {
		snprintf(why, whylen, "the %s source failed: %s", m->source_name, strerror(-err));
		return 1;
	}
	return 0;
}

/* Every key typed since the last round: 1 to quit, else *dirty set if there was any. */
static int read_keys(struct ls_source *src, struct top_model *m, int *dirty)
{
	int ch;

	while ((ch = getch()) != ERR) {
		if (handle_key(src, m, ch))
			return 1;
		*dirty = 1;
	}
	return 0;
}

/* Run the dashboard on src until the user quits, a signal, the source ends or fails.
 * Returns the exit status and leaves a one-line reason in why. */
static int run(struct ls_source *src, struct top_model *m, const struct top_cfg *cfg,
	       const struct top_draw_ctx *ctx, char *why, size_t whylen)
{
	uint64_t interval = (uint64_t)cfg->refresh_ms * 1000000, next = ls_now_mono_ns(), ended_at = 0, drawn = 0;
	int sfd = src->ops->fd ? src->ops->fd(src) : -1;

	why[0] = '\0';
	for (;;) {
		uint64_t now = ls_now_mono_ns();
		int dirty = 0;

		if (m->replay.on) {
			dirty = replay_due(src, m, now, why, whylen);
			next = now + interval;
		} else if (!ended_at && now >= next) {
			if (live_snapshot(src, m, why, whylen))
				return 1;
			next = now - next > interval ? now + interval : next + interval;
			dirty = 1;
		}
		if (!ended_at && m->all_exited && !m->replay.on) {
			ended_at = now;
			exited_why(m, why, whylen);
		}
		if (ended_at && now - ended_at >= (uint64_t)cfg->exit_linger_ms * 1000000)
			return 0;
		if (dirty) {
			redraw(m, ctx);
			drawn = now;
		}
		if (wait_events(sfd, wait_ms(cfg, now, next, ended_at), why, whylen))
			return 1;
		if (tty.stop)
			return stopped(why, whylen);
		if (!ended_at && !m->replay.on && poll_source(src, m, &ended_at, &dirty, why, whylen))
			return 1;
		if (read_keys(src, m, &dirty))
			return 0;
		/* While an alert is up its duration counts: redraw ten times a second. */
		now = ls_now_mono_ns();
		if (dirty || (m->nalerts && now - drawn >= TOP_ALERT_REDRAW_NS)) {
			redraw(m, ctx);
			drawn = now;
		}
	}
}

/* ---------------------------------------------------------------- sources */

/* The recording cfg->replay as *src, with the model set up to play it. 0, or -1 with
 * the reason printed. */
static int open_replay(const struct top_cfg *cfg, struct top_model *m, struct ls_source **src)
{
	const struct ls_rec_info *in;
	char err[256] = "";

	if (ls_replay_open(cfg->replay, 1, src, err, sizeof(err))) {
		fprintf(stderr, "loopscope top: %s\n", err);
		return -1;
	}
	in = ls_replay_info(*src);
	m->replay.on = 1;
	m->replay.playing = 1;
	m->replay.speed = 1;
	m->replay.start_ns = ls_replay_first_ns(*src);
	m->replay.start_wall_ns = in->wall_ns + (m->replay.start_ns - in->mono_ns);
	snprintf(m->replay.host, sizeof(m->replay.host), "%.63s", in->host);
	snprintf(m->source_name, sizeof(m->source_name), "replay");
	if (in->interval_ns)
		m->refresh_s = (double)in->interval_ns / 1e9;	/* one history point per snapshot */
	return 0;
}

/* A running serve's stream, cfg->connect, as *src. 0, or -1 with the reason printed. */
static int open_remote(const struct top_cfg *cfg, struct top_model *m, struct ls_source **src)
{
	char err[256] = "";

	if (ls_remote_source_new(cfg->connect, &cfg->remote, src, err, sizeof(err))) {
		fprintf(stderr, "loopscope top: %s\n", err);
		return -1;
	}
	ls_remote_display(cfg->connect, m->source_name, sizeof(m->source_name));
	return 0;
}

/* Attach ag to every -p target. 0 while at least one is traced, or -1 with the reason
 * printed. */
static int attach_pids(struct ls_agent *ag, const struct top_cfg *cfg)
{
	char err[256] = "", gone[768] = "";
	int ngone = 0, rc;

	for (int i = 0; i < cfg->npids; i++) {
		rc = ls_agent_add_pid(ag, cfg->pids[i], err, sizeof(err));
		if (rc == -ECHILD) {
			/* It exited while being attached: its row says so, the others are watched. */
			size_t n = strlen(gone);

			snprintf(gone + n, sizeof(gone) - n, "%s%s", ngone++ ? "; " : "", err);
			continue;
		}
		if (rc) {
			fprintf(stderr, "loopscope top: %s\n", err);
			return -1;
		}
	}
	if (ngone == cfg->npids) {
		fprintf(stderr, "loopscope top: %s; nothing to watch\n", gone);
		return -1;
	}
	return 0;
}

/* The agent's lines about targets it handled on its own (an exec): kept while the
 * screen is up, printed once the terminal is restored (stderr would write over the
 * dashboard). */
#define TOP_NOTES 8
static struct {
	char line[TOP_NOTES][320];
	int n;
	unsigned dropped;
} notes;

static void top_note(const char *line, void *arg)
{
	(void)arg;
	if (!tty.on)
		fprintf(stderr, "loopscope top: %s\n", line);
	else if (notes.n < TOP_NOTES)
		snprintf(notes.line[notes.n++], sizeof(notes.line[0]), "%s", line);
	else
		notes.dropped++;
}

static void print_notes(void)
{
	for (int i = 0; i < notes.n; i++)
		fprintf(stderr, "loopscope top: %s\n", notes.line[i]);
	if (notes.dropped)
		fprintf(stderr, "loopscope top: and %u more such lines\n", notes.dropped);
	notes.n = 0;
	notes.dropped = 0;
}

/* A new agent in *ag, attached to the -p targets, as *src; privileges dropped after.
 * 0, or -1 with the reason printed (*ag, when made, is the caller's to free). */
static int open_agent(const struct top_cfg *cfg, struct top_model *m, struct ls_agent **ag,
		      struct ls_source **src)
{
	struct ls_agent_opts ao = { .stall_threshold_ns = cfg->stall_ns < cfg->starve_ns ? cfg->stall_ns : cfg->starve_ns,
				    .tier = cfg->tier, .note = top_note };
	char err[256] = "";

	if (ls_agent_new(&ao, ag, err, sizeof(err))) {
		fprintf(stderr, "loopscope top: %s\n", err);
		return -1;
	}
	if (attach_pids(*ag, cfg))
		return -1;
	*src = ls_agent_source(*ag);
	snprintf(m->source_name, sizeof(m->source_name), "agent");
	/* Attached: reading maps and detaching use the descriptors we hold; attaching
	 * again after an exec needs the attach set. */
	if (ls_privs_drop(cfg->follow_exec ? ls_privs_attach_set() : 0, NULL, err, sizeof(err))) {
		fprintf(stderr, "loopscope top: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- command */

/* Set up the terminal, run the dashboard, restore the terminal and say why it ended.
 * Returns the exit status. */
static int show(struct ls_source *src, struct top_model *m, const struct top_cfg *cfg)
{
	struct top_draw_ctx ctx = { 0 };
	char why[256] = "";
	int rc, status;

	rc = term_setup(cfg, &ctx);
	if (rc) {
		fprintf(stderr, "loopscope top: cannot set up the terminal: %s\n", strerror(-rc));
		return 1;
	}
	status = run(src, m, cfg, &ctx, why, sizeof(why));
	term_restore();
	if ((status || m->all_exited || m->replay.on) && why[0])
		fprintf(stderr, "loopscope top: %s\n", why);
	return status;
}

int ls_cmd_top(int argc, char **argv)
{
	struct top_cfg cfg = {
		.refresh_ms = 500, .stall_ns = 100000000, .starve_ns = 100000000, .hold_ns = 2000000000ull,
		.color = 1, .exit_linger_ms = 1500,
	};
	struct ls_agent *ag = NULL;
	struct ls_source *src = NULL;
	struct top_model m;
	int rc, status = 1;

	setlocale(LC_ALL, "");
	rc = parse_args(argc, argv, &cfg);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "loopscope top: needs a terminal; for a log use 'loopscope stat'\n");
		return 2;
	}
	top_model_init(&m, &(struct top_opts){ .stall_ns = cfg.stall_ns, .starve_ns = cfg.starve_ns,
					       .hold_ns = cfg.hold_ns });
	m.refresh_s = cfg.refresh_ms / 1000.0;

	/* Attach (or connect) before the screen takes over, so errors print plainly. */
	if (cfg.replay)
		rc = open_replay(&cfg, &m, &src);
	else if (cfg.connect)
		rc = open_remote(&cfg, &m, &src);
	else
		rc = open_agent(&cfg, &m, &ag, &src);
	if (rc)
		goto cleanup;
	model_src = src;
	src->on_episode = on_episode;
	src->episode_arg = &m;
	status = show(src, &m, &cfg);

cleanup:
	term_restore();
	print_notes();
	if (src)
		src->on_episode = NULL;
	if (ag)
		ls_agent_free(ag);	/* owns its source */
	else
		ls_source_destroy(src);
	top_model_free(&m);
	for (int i = 0; i < 2; i++)
		if (tty.sigpipe[i] >= 0) {
			close(tty.sigpipe[i]);
			tty.sigpipe[i] = -1;
		}
	return status;
}
