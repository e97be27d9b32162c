/* refspin.c: a reference loop that does nothing but iterate, for `make bench`
 * (tests/bench/bench.py) to price each probe tier per iteration and to run the agent
 * against loops of a known iteration rate. Same protocol as tests/bench/node/spin.js.
 *
 *   refspin [--rate N] [--window-ms MS] [--duration S]
 *
 * Each immediate schedules the next, so every callback is one loop iteration (the
 * poll phase skips the syscall: no fd is watched and the wait is 0). Without --rate it
 * runs flat out; with --rate N each callback busy-waits until its slot (start + i/N s),
 * so the loop makes N iterations/s. Prints "ready PID", then per window (default
 * 200 ms) "win ITERATIONS WALL_NS CPU_NS": CPU_NS is the loop thread's own CPU time
 * (user + system, so probe hits handled in its context count; time another process
 * held the CPU does not). Exits 0 after --duration (default 120 s).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lsl.h"

struct spin {
	uint64_t start_ns, end_ns, win_start_ns, window_ns, win_cpu_ns;
	uint64_t win_iters, total;
	double period_ns;	/* 0: flat out */
	int done;		/* past --duration: stop re-arming, the loop then exits */
	int err;
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void flush_window(struct spin *s, uint64_t now)
{
	uint64_t cpu = thread_cpu_ns();

	printf("win %llu %llu %llu\n", (unsigned long long)s->win_iters,
	       (unsigned long long)(now - s->win_start_ns), (unsigned long long)(cpu - s->win_cpu_ns));
	fflush(stdout);
	s->win_cpu_ns = cpu;
	s->win_start_ns = now;
	s->win_iters = 0;
	if (now >= s->end_ns)
		s->done = 1;
}

static void on_immediate(lsl_loop_t *loop, void *arg)
{
	struct spin *s = arg;
	uint64_t now;

	s->win_iters++;
	s->total++;
	if (s->period_ns > 0) {
		uint64_t due = s->start_ns + (uint64_t)(s->total * s->period_ns);

		do
			now = lsl_hrtime_ns();
		while (now < due);
		if (now - s->win_start_ns >= s->window_ns)
			flush_window(s, now);
	} else if ((s->win_iters & 1023) == 0) {
		/* the clock costs ~25 ns: read it every 1,024 iterations only */
		now = lsl_hrtime_ns();
		if (now - s->win_start_ns >= s->window_ns)
			flush_window(s, now);
	}
	if (!s->done)
		s->err = lsl_set_immediate(loop, on_immediate, s);
}

static int num_arg(const char *v, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(v, &end);
	return errno || end == v || *end || *out < 0 ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	struct spin s = { 0 };
	double rate = 0, window_ms = 200, duration_s = 120;
	lsl_loop_t *loop = NULL;
	int r;

	for (int i = 1; i < argc; i++) {
		double *dst = !strcmp(argv[i], "--rate") ? &rate
			    : !strcmp(argv[i], "--window-ms") ? &window_ms
			    : !strcmp(argv[i], "--duration") ? &duration_s : NULL;

		if (!dst || i + 1 == argc || num_arg(argv[i + 1], dst)) {
			fprintf(stderr, "usage: refspin [--rate N] [--window-ms MS] [--duration S]\n");
			return 2;
		}
		i++;
	}
	r = lsl_loop_new(&loop);
	if (r) {
		fprintf(stderr, "refspin: lsl_loop_new: %s\n", strerror(-r));
		return 1;
	}
	s.period_ns = rate > 0 ? 1e9 / rate : 0;
	s.window_ns = (uint64_t)(window_ms * 1e6);
	s.start_ns = s.win_start_ns = lsl_hrtime_ns();
	s.win_cpu_ns = thread_cpu_ns();
	s.end_ns = s.start_ns + (uint64_t)(duration_s * 1e9);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	r = lsl_set_immediate(loop, on_immediate, &s);
	if (!r)
		r = lsl_run(loop);
	if (!r)
		r = s.err;	/* lsl_set_immediate failed: the chain broke, the loop ran dry */
	if (r)
		fprintf(stderr, "refspin: %s\n", strerror(-r));
	if (lsl_loop_close(loop))
		fprintf(stderr, "refspin: loop not empty at exit\n");
	return r ? 1 : 0;
}
