/* serve.c: `loopscope serve`, the Prometheus exporter and live event stream.
 *
 * One thread, one epoll set: the HTTP server's epoll fd (http.c), a 100 ms timerfd
 * and a signalfd. Every tick sweeps HTTP deadlines; every 200 ms (1 s while no
 * /events client is connected) it polls the agent (episodes, stalls in progress);
 * every --interval (1 s) it also takes a snapshot, updates per-loop state (view.c:
 * utilization, the prom-client compat windows), streams the snapshot to /events
 * clients, and rescans /proc for --exe (exe_watch.c).
 *
 * Rendering never holds the aggregation path: the kernel side aggregates on its own
 * (per-CPU maps); /metrics renders from a deep copy of a snapshot, the interval's one
 * (a fresh one only when that is older than 1.5 s), so a scrape costs no map reads and a
 * flood of scrapes does not turn into a flood of map reads; the rendered text is cached
 * per generation (metrics_cache.c), so N scrapes in one interval cost one render; and
 * all socket I/O is non-blocking with bounded buffers (http.c), so a slow client costs
 * memory up to its cap, never time.
 *
 * A process that starts running an --exe binary is picked up within one interval; one
 * that exits is seen at once through the agent's pidfd, reported with
 * loopscope_target_up 0 and dropped after --keep-exited.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "exe_watch.h"
#include "http.h"
#include "metrics_cache.h"
#include "options.h"
#include "privs.h"
#include "prom.h"
#include "stacktab.h"
#include "snapjson.h"
#include "view.h"
#include "webconfig.h"

#define LS_SERVE_DEFAULT_LISTEN "127.0.0.1:9752"
#define TICK_MS 100
#define SCRAPE_REUSE_NS 1500000000ull	/* /metrics renders a snapshot up to this old */
/* Episodes and stalls in progress reach /events at most this late; with no stream
 * open only Prometheus looks (every 15 s or so), so the agent is polled less often. */
#define AGENT_POLL_NS 200000000ull
#define AGENT_POLL_IDLE_NS 1000000000ull
#define STREAM_SOFT_LIMIT (1u << 20)	/* a stream this far behind skips snapshots */
#define EXITED_LOOPS_NS 30000000000ull	/* an exited target's final loop numbers stay 30 s */
#define MAX_PIDS 256

struct serve_opts {
	const char *listen;
	const char *web_config;		/* --web.config.file */
	const char *user;		/* --user */
	int follow_exec;		/* --follow-exec: keep the attach set */
	struct ls_webconfig web;
	pid_t pids[MAX_PIDS];
	int npids;
	uint64_t interval_ns;
	struct ls_agent_opts agent;
	struct ls_http_opts http;
};

struct serve {
	struct serve_opts o;
	struct ls_agent *ag;
	struct ls_source *src;
	struct ls_http_server *http;
	int epfd, tfd, sfd;
	int stop;
	int verbose;
	struct ls_exe_watch exes;
	struct ls_view view;		/* per-loop interval state, the exited-target filter */
	struct ls_metrics_cache metrics;
	struct ls_snapshot tick;	/* latest interval snapshot */
	struct ls_snapshot scrape;	/* snapshot behind the latest /metrics */
	struct ls_buf line;		/* the latest snapshot as an /events line */
	uint64_t line_mono_ns;		/* mono_ns of the snapshot in line */
	uint64_t next_sample_ns, next_poll_ns;
};

/* ---------------------------------------------------------------- agent side */

static void on_episode(const struct ls_episode *ep, void *arg)
{
	struct serve *sv = arg;
	struct ls_buf b = { 0 };

	ls_metrics_cache_invalidate(&sv->metrics);	/* in-progress gauges change */
	ls_view_episode(&sv->view, ep);
	if (sv->http && ls_http_nstreams(sv->http)) {
		ls_episode_json_append(ep, &b);
		ls_buf_append(&b, "\n", 1);
		if (!b.oom)
			ls_http_broadcast(sv->http, b.p, b.len, 0, STREAM_SOFT_LIMIT);
		ls_buf_free(&b);
	}
	if (sv->verbose && ep->kind != LS_EP_TARGET_EXIT)
		fprintf(stderr, "loopscope serve: episode %s pid %d tid %u %s\n", ls_episode_kind_name(ep->kind),
			ep->pid, ep->tid, ep->end_ns ? "ended" : "in progress");
}

static void agent_note(const char *line, void *arg)
{
	ls_metrics_cache_invalidate(&((struct serve *)arg)->metrics);
	fprintf(stderr, "loopscope serve: %s\n", line);
}

/* exe_watch callback: attach to a process found running an --exe binary. */
static int exe_found(pid_t pid, const char *path, void *arg)
{
	struct serve *sv = arg;
	char err[256];
	int r;

	if (ls_snapshot_pid_attached(&sv->tick, (int32_t)pid))
		return -EEXIST;
	r = ls_agent_add_pid(sv->ag, pid, err, sizeof(err));
	if (r == 0) {
		ls_view_forget_gone(&sv->view, (int32_t)pid);
		fprintf(stderr, "loopscope serve: attached to %d (%s)\n", (int)pid, path);
	} else if (r != -EEXIST) {
		fprintf(stderr, "loopscope serve: %s (not retried for this process)\n", err);
	}
	return r;
}

/* The interval's snapshot as an /events line, encoded once per interval and only
 * when someone streams (a new client gets it at once). 0 or -ENOMEM. */
static int encode_line(struct serve *sv)
{
	struct ls_snapshot view;

	if (sv->line_mono_ns == sv->tick.mono_ns && sv->line.len)
		return 0;
	if (ls_view_make(&sv->view, &sv->tick, &view))
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
	ls_metrics_cache_invalidate(&sv->metrics);
	ls_view_update(&sv->view, &sv->tick);
	if (sv->exes.nexes && (r = ls_exe_watch_scan(&sv->exes, exe_found, sv)))
		fprintf(stderr, "loopscope serve: cannot scan /proc for --exe: %s\n", strerror(-r));
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

static const struct ls_loop_interval *prom_state(void *arg, int32_t pid, uint32_t tid)
{
	return ls_view_loop(arg, pid, tid);
}

/* Render the exposition of the current generation. 0 or -ENOMEM. */
static int render_metrics(struct serve *sv, const struct ls_snapshot *use, uint64_t t0)
{
	struct ls_snapshot view;
	struct ls_http_stats hs;
	struct ls_prom_ctx ctx = { 0 };
	uint64_t keep = sv->view.keep_exited_ns;
	int err;

	if (ls_view_make(&sv->view, use, &view))
		return -ENOMEM;
	ls_http_get_stats(sv->http, &hs);
	ctx.now_ns = t0;
	ctx.compat_prom_client = sv->view.compat;
	ctx.loop_state = prom_state;
	ctx.arg = &sv->view;
	ctx.exited_loops_ns = keep < EXITED_LOOPS_NS ? keep : EXITED_LOOPS_NS;
	ctx.http = &hs;
	err = ls_metrics_cache_render(&sv->metrics, &view, &ctx);
	free(view.targets);
	return err;
}

static void handle_metrics(struct serve *sv, struct ls_http_conn *c, const struct ls_http_req *req)
{
	static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
	uint64_t t0 = ls_now_mono_ns();
	const struct ls_snapshot *use = &sv->tick;
	const char *enc;
	const void *p;
	size_t len;

	if (!sv->tick.mono_ns || t0 - sv->tick.mono_ns > SCRAPE_REUSE_NS) {
		if (!sv->scrape.mono_ns || t0 - sv->scrape.mono_ns > SCRAPE_REUSE_NS) {
			struct ls_snapshot s;
			if (ls_source_snapshot(sv->src, &s) == 0) {
				ls_snapshot_free(&sv->scrape);
				sv->scrape = s;
				ls_metrics_cache_invalidate(&sv->metrics);
			}
		}
		use = &sv->scrape;
	}
	if ((ls_metrics_cache_stale(&sv->metrics) && render_metrics(sv, use, t0)) ||
	    ls_metrics_cache_get(&sv->metrics, req->accept_gzip, &p, &len, &enc)) {
		ls_http_respond(c, 503, "text/plain; charset=utf-8", NULL, "503 out of memory\n", 18, 0);
		return;
	}
	ls_http_respond_encoded(c, 200, ctype, "Vary: Accept-Encoding\r\n", p, len, enc);
	ls_metrics_cache_scraped(&sv->metrics, (double)(ls_now_mono_ns() - t0) / 1e9);
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

/* ---------------------------------------------------------------- options */

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
		"      --probes TIER      Node.js/libuv probe tier: light (default), phases or counters\n"
		"      --max-conns N      HTTP connections being served (default 1024)\n"
		"      --header-timeout SECONDS  time a client has to send its request head (default 5)\n"
		"      --web.config.file FILE    TLS and basic auth, in the Prometheus exporter-toolkit\n"
		"                         format (tls_server_config, basic_auth_users); see loopscope(1)\n"
		"      --follow-exec      a -p target that execs is attached again if the new\n"
		"                         program is an event loop (--exe targets always are)\n"
		"      --user NAME        run as this user once attached (capabilities kept: none, or\n"
		"                         with --exe or --follow-exec what attaching needs: CAP_BPF,\n"
		"                         CAP_PERFMON, CAP_SYS_PTRACE, CAP_SYS_ADMIN)\n"
		"  -v, --verbose          log episodes and libbpf messages to stderr\n"
		"  -h, --help             this help\n\n"
		"Endpoints: GET /metrics, GET /events (NDJSON), GET /healthz. See loopscope(1).\n",
		LS_SERVE_DEFAULT_LISTEN);
}

/* Parse the command line into sv. -1 to go on, else the exit status (0 for --help). */
static int parse_args(struct serve *sv, int argc, char **argv)
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
		{ "web.config.file", required_argument, NULL, 'W' },
		{ "user", required_argument, NULL, 'U' },
		{ "follow-exec", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts *o = &sv->o;
	char err[PATH_MAX + 64];
	double v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:e:l:i:t:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (ls_opt_pid("serve", optarg, o->pids, &o->npids, MAX_PIDS, "; use --exe for more"))
				return 2;
			break;
		case 'e':
			if (ls_exe_watch_add(&sv->exes, optarg, err, sizeof(err))) {
				fprintf(stderr, "loopscope serve: %s\n", err);
				return 2;
			}
			break;
		case 'l':
			o->listen = optarg;
			break;
		case 'i':
			if (ls_opt_number(optarg, 0.1, 3600, &v)) {
				fprintf(stderr, "loopscope serve: interval '%s' out of range: give 0.1 to 3600 seconds\n", optarg);
				return 2;
			}
			o->interval_ns = (uint64_t)(v * 1e9);
			break;
		case 'K':
			if (ls_opt_number(optarg, 0, 86400, &v)) {
				fprintf(stderr, "loopscope serve: --keep-exited '%s': give 0 to 86400 seconds\n", optarg);
				return 2;
			}
			sv->view.keep_exited_ns = (uint64_t)(v * 1e9);
			break;
		case 'C':
			if (strcmp(optarg, "prom-client")) {
				fprintf(stderr, "loopscope serve: unknown --compat '%s'; the one known is prom-client\n", optarg);
				return 2;
			}
			sv->view.compat = 1;
			break;
		case 't':
			if (ls_opt_number(optarg, 1, 600000, &v)) {
				fprintf(stderr, "loopscope serve: threshold '%s' out of range: give 1 to 600000 ms\n", optarg);
				return 2;
			}
			o->agent.stall_threshold_ns = (uint64_t)(v * 1e6);
			break;
		case 'P':
			if (!ls_probe_tier_valid(optarg)) {
				fprintf(stderr, "loopscope serve: unknown probe tier '%s': give light, phases or counters\n", optarg);
				return 2;
			}
			o->agent.tier = optarg;
			break;
		case 'M':
			if (ls_opt_number(optarg, 1, 65536, &v)) {
				fprintf(stderr, "loopscope serve: --max-conns '%s': give 1 to 65536\n", optarg);
				return 2;
			}
			o->http.max_conns = (int)v;
			break;
		case 'H':
			if (ls_opt_number(optarg, 0.1, 600, &v)) {
				fprintf(stderr, "loopscope serve: --header-timeout '%s': give 0.1 to 600 seconds\n", optarg);
				return 2;
			}
			o->http.header_timeout_ms = (unsigned)(v * 1000);
			break;
		case 'W':
			o->web_config = optarg;
			break;
		case 'U':
			o->user = optarg;
			break;
		case 'F':
			o->follow_exec = 1;
			break;
		case 'v':
			sv->verbose = o->agent.verbose = 1;
			break;
		default:	/* -h, or an option getopt refused */
			return ls_opt_usage(c, usage);
		}
	}
	if (ls_opt_no_operands("serve", argc, argv, 0))
		return 2;
	if (!o->npids && !sv->exes.nexes) {
		fprintf(stderr, "loopscope serve: nothing to watch: give -p PID or --exe PATH\n");
		return 2;
	}
	if (o->web_config) {
		if (ls_webconfig_load(o->web_config, &o->web, err, sizeof(err))) {
			fprintf(stderr, "loopscope serve: %s\n", err);
			return 2;
		}
		o->http.web = &o->web;
	}
	return -1;
}

/* ---------------------------------------------------------------- command */

/* Bind, create the agent and attach every -p target. 0, or the exit status. */
static int setup(struct serve *sv)
{
	char err[512];

	/* Bind before attaching: a bad or busy --listen fails at once, with nothing
	 * attached to any process. (Nothing is served before run() starts.) */
	if (ls_http_new(sv->o.listen, &sv->o.http, handle, sv, &sv->http, err, sizeof(err))) {
		fprintf(stderr, "loopscope serve: %s\n", err);
		return 1;
	}
	if (!sv->o.web_config && !ls_http_loopback(sv->http))
		fprintf(stderr, "loopscope serve: warning: %s is reachable from other hosts and serves pids, "
			"command names and executable paths to anyone; give --web.config.file for TLS and "
			"basic auth\n", sv->o.listen);
	sv->o.agent.note = agent_note;
	sv->o.agent.note_arg = sv;
	/* the agent forgets a gone process after the view has (+ one interval) */
	sv->o.agent.keep_gone_ns = sv->view.keep_exited_ns + sv->o.interval_ns;
	if (ls_agent_new(&sv->o.agent, &sv->ag, err, sizeof(err))) {
		fprintf(stderr, "loopscope serve: %s\n", err);
		return 1;
	}
	sv->src = ls_agent_source(sv->ag);
	sv->src->on_episode = on_episode;
	sv->src->episode_arg = sv;
	for (int i = 0; i < sv->o.npids; i++) {
		int r = ls_agent_add_pid(sv->ag, sv->o.pids[i], err, sizeof(err));

		/* -ECHILD: it exited while being attached; listed as exited, not an error. */
		if (r)
			fprintf(stderr, "loopscope serve: %s\n", err);
		if (r && r != -ECHILD)
			return 1;
	}
	sample(sv);	/* the first snapshot (and --exe scan) before the first client */
	sv->next_sample_ns = ls_now_mono_ns() + sv->o.interval_ns;
	/* Attached: keep only what attaching more needs (nothing without --exe or
	 * --follow-exec). */
	if (ls_privs_drop(sv->exes.nexes || sv->o.follow_exec ? ls_privs_attach_set() : 0, sv->o.user, err,
			  sizeof(err))) {
		fprintf(stderr, "loopscope serve: %s\n", err);
		return 1;
	}
	return 0;
}

static void serve_free(struct serve *sv)
{
	ls_http_free(sv->http);
	ls_agent_free(sv->ag);
	ls_snapshot_free(&sv->tick);
	ls_snapshot_free(&sv->scrape);
	ls_view_free(&sv->view);
	ls_exe_watch_free(&sv->exes);
	ls_metrics_cache_free(&sv->metrics);
	ls_buf_free(&sv->line);
	if (sv->tfd >= 0)
		close(sv->tfd);
	if (sv->sfd >= 0)
		close(sv->sfd);
	if (sv->epfd >= 0)
		close(sv->epfd);
}

/* One timer tick: poll the agent, sweep HTTP deadlines, sample every interval. */
static void on_tick(struct serve *sv)
{
	uint64_t exp, now = ls_now_mono_ns();
	int r;

	if (read(sv->tfd, &exp, sizeof(exp)) < 0)
		(void)0;
	/* -ENODATA (every target gone) is not the end for an exporter: it goes on
	 * serving their last numbers and waiting for --exe. */
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
		sv->next_sample_ns += sv->o.interval_ns;	/* no drift */
		if (sv->next_sample_ns <= now)
			sv->next_sample_ns = now + sv->o.interval_ns;
	}
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
				on_tick(sv);
			} else {
				ls_http_poll(sv->http, 0);
			}
		}
	}
	return 0;
}

int ls_cmd_serve(int argc, char **argv)
{
	struct serve sv;
	sigset_t mask;
	int rc;

	memset(&sv, 0, sizeof(sv));
	sv.epfd = sv.tfd = sv.sfd = -1;
	sv.o.listen = LS_SERVE_DEFAULT_LISTEN;
	sv.o.interval_ns = 1000000000ull;
	sv.view.keep_exited_ns = 300000000000ull;
	if ((rc = parse_args(&sv, argc, argv)) >= 0)
		return rc;

	/* Signals first, so a SIGTERM during attach still detaches cleanly. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	rc = setup(&sv);
	if (!rc) {
		const char *colon = strrchr(sv.o.listen, ':');

		fprintf(stderr, "loopscope serve: listening on %s://%.*s:%d/metrics (%u attached)\n",
			sv.o.web.tls ? "https" : "http", (int)(colon - sv.o.listen), sv.o.listen, ls_http_port(sv.http),
			sv.tick.self.attached_targets);
		rc = run(&sv);
	}
	serve_free(&sv);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
	return rc;
}
