/* loopdemo: a reference-loop program that produces every kind of lag on demand and
 * keeps exact ground truth about it (lsl_stats), for loopscope to be checked against.
 *
 *   loopdemo [workloads] [--duration S] [--stats-json FILE] [--wait-attach] ...
 *
 * See usage() for the flags. With no workload flag it runs a realistic mix until
 * killed. SIGINT/SIGTERM end it cleanly (stats written); SIGUSR1 writes the stats.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lsl.h"

#define MSG_LEN 128
#define MAX_CLIENTS 64

enum wl_kind { WL_BLOCK, WL_TICK, WL_MICRO, WL_NKINDS };
static const char *const wl_flag[WL_NKINDS] = { "--block", "--tick-starve", "--microtask-starve" };

struct workload {
	int on;
	int64_t ms;		/* how long each episode lasts */
	int64_t every_ms;	/* how often one starts */
	lsl_timer_t timer;
	uint64_t episodes;
};

struct client {
	lsl_tcp_t tcp;
	int connected, busy;
	size_t got;
	uint64_t round_trips;
};

struct conn {
	lsl_tcp_t tcp;
	struct conn *next, *prev;
};

struct demo {
	lsl_loop_t *loop;
	struct workload wl[WL_NKINDS];
	int io, work;
	int nclients;
	double duration_s;
	const char *stats_json;
	int wait_attach;
	double print_interval_s;
	int64_t threshold_ms;

	int started, shutting_down;
	int sigfd;
	lsl_io_t sig_io;
	lsl_timer_t attach_timer, duration_timer, print_timer, send_timer, work_timer;
	int attach_timer_open, duration_timer_open, print_timer_open, send_timer_open, work_timer_open;

	/* io */
	lsl_tcp_t server;
	int server_open;
	uint16_t port;
	struct client clients[MAX_CLIENTS];
	struct conn *conns;
	uint64_t echoed;

	/* work */
	lsl_work_t jobs[4];
	int job_busy[4];
	uint64_t jobs_done;

	/* tick / microtask chains */
	uint64_t chain_deadline_ns;

	/* printing */
	uint64_t last_print_ns, last_echoed, last_jobs;
	int exit_code;
};

static struct demo D;

static void usage(FILE *f)
{
	fputs("usage: loopdemo [workloads] [options]\n"
	      "workloads (composable; none given = a realistic mix that runs until killed):\n"
	      "  --block MS [--every MS]             a timer callback spins the CPU for MS ms\n"
	      "  --tick-starve MS [--every MS]       a recursive process.nextTick chain runs for MS ms\n"
	      "  --microtask-starve MS [--every MS]  a recursive microtask chain runs for MS ms\n"
	      "      --every binds to the workload flag just before it (default 1000 ms)\n"
	      "  --io                                echo server on 127.0.0.1 + its own bounded clients\n"
	      "  --clients N                         --io client connections (default 4, max 64)\n"
	      "  --work                              thread-pool jobs (up to 4 every 50 ms, ~2 ms of CPU each)\n"
	      "options:\n"
	      "  --duration S           stop after S seconds of workload (default: until killed;\n"
	      "                         with --wait-attach, counted from the attach)\n"
	      "  --stats-json FILE      write ground truth (JSON) at exit and on SIGUSR1\n"
	      "                         (accounting runs only with this or --print-interval)\n"
	      "  --wait-attach          start neither workload nor accounting until a tracer\n"
	      "                         enables the loopscope:poll_start probe\n"
	      "  --print-interval S     print live numbers to stdout every S seconds (default off)\n"
	      "  --threshold MS         starvation / stall threshold (default 100 ms)\n"
	      "  --help\n",
	      f);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "loopdemo: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void spin_until(uint64_t deadline)
{
	while (lsl_hrtime_ns() < deadline) {
	}
}

/* ------------------------------------------------------------ lag workloads */

static void block_cb(lsl_timer_t *t)
{
	struct workload *w = t->h.data;

	w->episodes++;
	spin_until(lsl_hrtime_ns() + (uint64_t)w->ms * 1000000u);
}

/* One tick / microtask of a starving chain: ~5 us of work, then queue the next
 * one until the episode's deadline. */
static void tick_chain(lsl_loop_t *loop, void *arg)
{
	uint64_t now = lsl_hrtime_ns();

	spin_until(now + 5000);
	if (now < D.chain_deadline_ns)
		lsl_next_tick(loop, tick_chain, arg);
}

static void micro_chain(lsl_loop_t *loop, void *arg)
{
	uint64_t now = lsl_hrtime_ns();

	spin_until(now + 5000);
	if (now < D.chain_deadline_ns)
		lsl_queue_microtask(loop, micro_chain, arg);
}

static void starve_cb(lsl_timer_t *t)
{
	struct workload *w = t->h.data;
	int kind = (int)(w - D.wl);

	w->episodes++;
	D.chain_deadline_ns = lsl_hrtime_ns() + (uint64_t)w->ms * 1000000u;
	if (kind == WL_TICK)
		lsl_next_tick(D.loop, tick_chain, NULL);
	else
		lsl_queue_microtask(D.loop, micro_chain, NULL);
}

/* ------------------------------------------------------------ echo server + clients */

static void conn_closed(lsl_handle_t *h)
{
	struct conn *c = (struct conn *)h;

	if (c->prev)
		c->prev->next = c->next;
	else
		D.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static void conn_free(lsl_handle_t *h)
{
	free(h);
}

struct echo_job {
	struct conn *c;
	size_t len;
	char buf[];
};

/* The echo is written from a microtask, as an async request handler would. */
static void echo_write(lsl_loop_t *loop, void *arg)
{
	struct echo_job *j = arg;

	if (!lsl_is_closing(&j->c->tcp.h))
		lsl_tcp_write(&j->c->tcp, j->buf, j->len, NULL, NULL);
	free(j);
}

static void server_read(lsl_tcp_t *tcp, ssize_t n, const char *buf)
{
	struct conn *c = (struct conn *)tcp;
	struct echo_job *j;

	if (n < 0) {
		lsl_close(&c->tcp.h, conn_closed);
		return;
	}
	j = malloc(sizeof(*j) + (size_t)n);
	if (!j)
		return;
	j->c = c;
	j->len = (size_t)n;
	memcpy(j->buf, buf, (size_t)n);
	if (lsl_queue_microtask(D.loop, echo_write, j))
		free(j);
}

static void on_connection(lsl_tcp_t *server, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c || lsl_tcp_init(D.loop, &c->tcp)) {
		free(c);
		return;
	}
	if (lsl_tcp_accept(server, &c->tcp) || lsl_tcp_read_start(&c->tcp, server_read)) {
		lsl_close(&c->tcp.h, conn_free);	/* not linked yet: just free it */
		return;
	}
	c->next = D.conns;
	if (D.conns)
		D.conns->prev = c;
	D.conns = c;
}

static void client_read(lsl_tcp_t *tcp, ssize_t n, const char *buf)
{
	struct client *cl = (struct client *)tcp;

	if (n < 0) {
		cl->connected = 0;
		if (!lsl_is_closing(&tcp->h))
			lsl_close(&tcp->h, NULL);
		return;
	}
	cl->got += (size_t)n;
	if (cl->got >= MSG_LEN) {
		cl->got = 0;
		cl->busy = 0;
		cl->round_trips++;
		D.echoed++;
	}
}

static void client_connected(lsl_tcp_t *tcp, int status)
{
	struct client *cl = (struct client *)tcp;

	if (status < 0) {
		fprintf(stderr, "loopdemo: client connect: %s\n", strerror(-status));
		if (!lsl_is_closing(&tcp->h))
			lsl_close(&tcp->h, NULL);
		return;
	}
	cl->connected = 1;
	lsl_tcp_read_start(tcp, client_read);
}

/* Every 2 ms each idle client sends one message: at most 500 round trips/s each. */
static void send_cb(lsl_timer_t *t)
{
	static char msg[MSG_LEN];
	int i;

	if (!msg[0])
		memset(msg, 'x', sizeof(msg));
	for (i = 0; i < D.nclients; i++) {
		struct client *cl = &D.clients[i];

		if (cl->connected && !cl->busy && !lsl_is_closing(&cl->tcp.h) &&
		    lsl_tcp_write(&cl->tcp, msg, sizeof(msg), NULL, NULL) == 0)
			cl->busy = 1;
	}
}

static void start_io(void)
{
	int err, i, port;

	if ((err = lsl_tcp_init(D.loop, &D.server)) ||
	    (err = lsl_tcp_listen(&D.server, "127.0.0.1", 0, 128, on_connection)))
		die("echo server", err);
	D.server_open = 1;
	port = lsl_tcp_port(&D.server);
	if (port < 0)
		die("echo server port", port);
	D.port = (uint16_t)port;
	for (i = 0; i < D.nclients; i++) {
		if ((err = lsl_tcp_init(D.loop, &D.clients[i].tcp)) ||
		    (err = lsl_tcp_connect(&D.clients[i].tcp, "127.0.0.1", D.port, client_connected)))
			die("echo client", err);
	}
	lsl_timer_init(D.loop, &D.send_timer);
	D.send_timer_open = 1;
	lsl_timer_start(&D.send_timer, send_cb, 2, 2);
}

/* ------------------------------------------------------------ thread-pool work */

static void job_work(lsl_work_t *w)
{
	/* ~2 ms of CPU on a pool thread: it must not show on the loop thread. */
	uint64_t end = lsl_hrtime_ns() + 2000000u, x = (uint64_t)(uintptr_t)w;

	while (lsl_hrtime_ns() < end)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	w->data = (void *)(uintptr_t)x;
}

static void job_done(lsl_work_t *w, int status)
{
	int i = (int)(w - D.jobs);

	D.job_busy[i] = 0;
	D.jobs_done++;
}

static void work_cb(lsl_timer_t *t)
{
	int i;

	for (i = 0; i < 4; i++) {
		if (D.job_busy[i])
			continue;
		if (lsl_queue_work(D.loop, &D.jobs[i], job_work, job_done) == 0)
			D.job_busy[i] = 1;
	}
}

/* ------------------------------------------------------------ stats */

static int write_stats(void)
{
	struct lsl_stats st;
	char comm[17] = "", tmp[4096];
	FILE *f;
	int err;

	if (!D.stats_json)
		return 0;
	err = lsl_stats_get(D.loop, &st);
	if (err)
		return err;
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", D.stats_json);
	f = fopen(tmp, "w");
	if (!f) {
		err = -errno;
		fprintf(stderr, "loopdemo: writing %s: %s\n", tmp, strerror(-err));
		return err;
	}
	err = lsl_stats_write_json(&st, f, getpid(), (int)syscall(SYS_gettid), comm);
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, D.stats_json) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		fprintf(stderr, "loopdemo: writing %s: %s\n", D.stats_json, strerror(-err));
	}
	return err;
}

static void print_cb(lsl_timer_t *t)
{
	struct lsl_stats st;
	uint64_t now = lsl_hrtime_ns();
	double dt = (double)(now - D.last_print_ns) / 1e9;

	if (!D.started || lsl_stats_get(D.loop, &st))
		return;
	printf("pid %d  %7.0f it/s  util %5.1f%%  delay p99 %7.2f ms max %7.2f ms  "
	       "timer late p99 %6.2f ms  stalls %llu  tick/microtask starvation %llu/%llu",
	       getpid(), st.window_ns ? (double)st.iterations * 1e9 / (double)st.window_ns : 0.0,
	       st.utilization * 100.0, (double)st.delay.p99_ns / 1e6, (double)st.delay.max_ns / 1e6,
	       (double)st.timer_lateness.p99_ns / 1e6, (unsigned long long)st.stall_episodes,
	       (unsigned long long)st.ticks.starvation_episodes,
	       (unsigned long long)st.microtasks.starvation_episodes);
	if (D.io)
		printf("  echo %.0f/s", (double)(D.echoed - D.last_echoed) / dt);
	if (D.work)
		printf("  jobs %.0f/s", (double)(D.jobs_done - D.last_jobs) / dt);
	putchar('\n');
	fflush(stdout);
	D.last_print_ns = now;
	D.last_echoed = D.echoed;
	D.last_jobs = D.jobs_done;
	/* Without --stats-json the figures are per interval (samples do not pile up);
	 * with it they stay cumulative, as the file promises. */
	if (!D.stats_json)
		lsl_stats_reset(D.loop);
}

/* ------------------------------------------------------------ start / stop */

static void close_timer(lsl_timer_t *t, int *open)
{
	if (*open && !lsl_is_closing(&t->h))
		lsl_close(&t->h, NULL);
	*open = 0;
}

/* Close every handle; the loop then ends once the last close callback and pool
 * job have run. Accounting stops at the next iteration, so the window ends here. */
static void shutdown_all(void)
{
	struct conn *c;
	int i;

	if (D.shutting_down)
		return;
	D.shutting_down = 1;
	lsl_accounting_stop(D.loop);
	for (i = 0; i < WL_NKINDS; i++)
		if (D.wl[i].on && D.started)
			lsl_close(&D.wl[i].timer.h, NULL);
	close_timer(&D.attach_timer, &D.attach_timer_open);
	close_timer(&D.duration_timer, &D.duration_timer_open);
	close_timer(&D.print_timer, &D.print_timer_open);
	close_timer(&D.send_timer, &D.send_timer_open);
	close_timer(&D.work_timer, &D.work_timer_open);
	if (D.io && D.started) {
		for (i = 0; i < D.nclients; i++)
			if (!lsl_is_closing(&D.clients[i].tcp.h))
				lsl_close(&D.clients[i].tcp.h, NULL);
		for (c = D.conns; c; c = c->next)
			if (!lsl_is_closing(&c->tcp.h))
				lsl_close(&c->tcp.h, conn_closed);
	}
	if (D.server_open)
		lsl_close(&D.server.h, NULL);
	D.server_open = 0;
	lsl_close(&D.sig_io.h, NULL);
}

static void duration_cb(lsl_timer_t *t)
{
	shutdown_all();
}

static void start_workload(void)
{
	int i, err;

	D.started = 1;
	/* Ground truth only when someone reads it: a demo left running for days then
	 * neither grows nor pays for timestamps. */
	if (D.stats_json || D.print_interval_s > 0)
		lsl_accounting_start(D.loop);
	D.last_print_ns = lsl_hrtime_ns();
	for (i = 0; i < WL_NKINDS; i++) {
		struct workload *w = &D.wl[i];

		if (!w->on)
			continue;
		lsl_timer_init(D.loop, &w->timer);
		w->timer.h.data = w;
		err = lsl_timer_start(&w->timer, i == WL_BLOCK ? block_cb : starve_cb, w->every_ms,
				      w->every_ms);
		if (err)
			die(wl_flag[i], err);
	}
	if (D.io)
		start_io();
	if (D.work) {
		lsl_timer_init(D.loop, &D.work_timer);
		D.work_timer_open = 1;
		lsl_timer_start(&D.work_timer, work_cb, 1, 50);
	}
	if (D.duration_s > 0) {
		lsl_timer_init(D.loop, &D.duration_timer);
		D.duration_timer_open = 1;
		lsl_timer_start(&D.duration_timer, duration_cb, (int64_t)(D.duration_s * 1000.0 + 0.5), 0);
	}
	if (D.print_interval_s > 0) {
		int64_t ms = (int64_t)(D.print_interval_s * 1000.0 + 0.5);
		lsl_timer_init(D.loop, &D.print_timer);
		D.print_timer_open = 1;
		lsl_timer_start(&D.print_timer, print_cb, ms, ms);
	}
}

/* --wait-attach: the agent raises poll_start's semaphore last, when every probe is
 * live, so from the next iteration on tracing and ground truth see the same loop. */
static void attach_poll_cb(lsl_timer_t *t)
{
	if (lsl_probe_enabled("poll_start") > 0) {
		close_timer(&D.attach_timer, &D.attach_timer_open);
		start_workload();
	}
}

static void signal_cb(lsl_io_t *io, int events)
{
	struct signalfd_siginfo si;

	while (read(D.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			write_stats();
		else
			shutdown_all();
	}
}

/* ------------------------------------------------------------ main */

static int64_t parse_ms(const char *flag, const char *v)
{
	char *end;
	long long x;

	if (!v)
		goto bad;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || *end || x < 0 || x > 86400000LL)
		goto bad;
	return x;
bad:
	fprintf(stderr, "loopdemo: %s needs a whole number of milliseconds (0..86400000)\n", flag);
	exit(2);
}

static double parse_s(const char *flag, const char *v)
{
	char *end;
	double x;

	if (!v)
		goto bad;
	x = strtod(v, &end);
	if (*end || !(x > 0) || x > 1e7)
		goto bad;
	return x;
bad:
	fprintf(stderr, "loopdemo: %s needs a positive number of seconds\n", flag);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int i, last = -1, any = 0;

	D.nclients = 4;
	D.threshold_ms = 100;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int k;

		for (k = 0; k < WL_NKINDS; k++)
			if (!strcmp(a, wl_flag[k]))
				break;
		if (k < WL_NKINDS) {
			D.wl[k].on = 1;
			D.wl[k].ms = parse_ms(a, v);
			if (!D.wl[k].every_ms)
				D.wl[k].every_ms = 1000;
			last = k;
			any = 1;
			i++;
		} else if (!strcmp(a, "--every")) {
			if (last < 0) {
				fprintf(stderr, "loopdemo: --every must follow --block, --tick-starve or --microtask-starve\n");
				exit(2);
			}
			D.wl[last].every_ms = parse_ms(a, v);
			if (!D.wl[last].every_ms) {
				fprintf(stderr, "loopdemo: --every must be at least 1 ms\n");
				exit(2);
			}
			i++;
		} else if (!strcmp(a, "--io")) {
			D.io = any = 1;
		} else if (!strcmp(a, "--work")) {
			D.work = any = 1;
		} else if (!strcmp(a, "--clients")) {
			D.nclients = (int)parse_ms(a, v);
			if (D.nclients < 1 || D.nclients > MAX_CLIENTS) {
				fprintf(stderr, "loopdemo: --clients takes 1..%d\n", MAX_CLIENTS);
				exit(2);
			}
			i++;
		} else if (!strcmp(a, "--duration")) {
			D.duration_s = parse_s(a, v);
			i++;
		} else if (!strcmp(a, "--stats-json")) {
			if (!v) {
				fprintf(stderr, "loopdemo: --stats-json needs a file name\n");
				exit(2);
			}
			D.stats_json = v;
			i++;
		} else if (!strcmp(a, "--wait-attach")) {
			D.wait_attach = 1;
		} else if (!strcmp(a, "--print-interval")) {
			D.print_interval_s = parse_s(a, v);
			i++;
		} else if (!strcmp(a, "--threshold")) {
			D.threshold_ms = parse_ms(a, v);
			if (!D.threshold_ms) {
				fprintf(stderr, "loopdemo: --threshold must be at least 1 ms\n");
				exit(2);
			}
			i++;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else {
			fprintf(stderr, "loopdemo: unknown argument '%s'\n", a);
			usage(stderr);
			exit(2);
		}
	}
	if (!any) {
		/* The live-demo mix: steady echo traffic and pool jobs, a 40 ms block
		 * every second, and tick / microtask starvation now and then. */
		D.io = D.work = 1;
		D.wl[WL_BLOCK] = (struct workload){ .on = 1, .ms = 40, .every_ms = 1000 };
		D.wl[WL_TICK] = (struct workload){ .on = 1, .ms = 150, .every_ms = 7000 };
		D.wl[WL_MICRO] = (struct workload){ .on = 1, .ms = 150, .every_ms = 11000 };
	}
}

int main(int argc, char **argv)
{
	sigset_t mask;
	int err;

	parse_args(argc, argv);
	if (D.stats_json) {
		/* Fail now, not after the workload, when the file cannot be written. */
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", D.stats_json);
		f = fopen(tmp, "w");
		if (!f) {
			fprintf(stderr, "loopdemo: cannot write %s: %s\n", tmp, strerror(errno));
			return 2;
		}
		fclose(f);
		unlink(tmp);
	}
	err = lsl_loop_new(&D.loop);
	if (err)
		die("creating the loop", err);
	lsl_set_starvation_threshold(D.loop, (uint64_t)D.threshold_ms * 1000000u);

	/* Signals arrive through the loop (blocked before the pool threads exist). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	D.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (D.sigfd < 0)
		die("signalfd", errno);
	if ((err = lsl_io_init(D.loop, &D.sig_io, D.sigfd)) ||
	    (err = lsl_io_start(&D.sig_io, LSL_READABLE, signal_cb)))
		die("watching signals", err);
	lsl_unref(&D.sig_io.h);

	if (D.wait_attach) {
		lsl_timer_init(D.loop, &D.attach_timer);
		D.attach_timer_open = 1;
		lsl_timer_start(&D.attach_timer, attach_poll_cb, 10, 10);
	} else {
		start_workload();
	}

	err = lsl_run(D.loop);
	if (err)
		fprintf(stderr, "loopdemo: loop: %s\n", strerror(-err));
	if (!D.shutting_down) {
		/* The workload ended by itself (nothing left to run): close the rest. */
		shutdown_all();
		lsl_run(D.loop);
	}
	if (write_stats())
		err = err ? err : -EIO;
	close(D.sigfd);
	if (lsl_loop_close(D.loop) != 0) {
		fprintf(stderr, "loopdemo: loop still busy at exit (a handle was not closed)\n");
		return 1;
	}
	return err ? 1 : 0;
}
