/* loop_bench: per-iteration cost of a tight setImmediate-style chain.
 *
 *   loop_bench [--rounds R] [--n N] [--modes m1,m2,...]
 *
 * Modes (run interleaved, A B C A B C ..., one line per run: "MODE NS_PER_ITERATION"):
 *   lsl        our loop, probes compiled in, untraced, accounting off
 *   lsl-acct   the same with ground-truth accounting on (timestamps, samples)
 *   lsl-rec    our loop with the poll_start semaphore raised in-process and no tracer:
 *              what filling the probe record costs (a real tracer adds its probe hits)
 *   lsl-fd     our loop with one idle fd watched, so it calls epoll_wait(0) every
 *              iteration as libuv always does (its own async eventfd is watched)
 *   libuv      Debian's libuv: a check handle whose callback counts iterations plus an
 *              idle handle that keeps the poll timeout 0 (how Node runs setImmediate)
 * Built with -DLSL_NO_PROBES (tests/bench/run.sh does that), "lsl" measures the loop
 * without any probe site; the difference is the untraced probe cost.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "lsl.h"

struct chain {
	uint64_t count, n;
};

static void step(lsl_loop_t *loop, void *arg)
{
	struct chain *c = arg;

	if (++c->count < c->n)
		lsl_set_immediate(loop, step, c);
}

static void noop_io(lsl_io_t *io, int events)
{
}

/* ns per iteration of our loop, or a negative errno. */
static double run_lsl(uint64_t n, int accounting, int with_fd)
{
	lsl_loop_t *loop = NULL;
	struct chain c = { 0, n };
	lsl_io_t io;
	int fds[2] = { -1, -1 }, err;
	uint64_t t0, t1, it;

	err = lsl_loop_new(&loop);
	if (err)
		return err;
	if (accounting)
		lsl_accounting_start(loop);
	if (with_fd) {
		if (pipe(fds) < 0)
			return -errno;
		lsl_io_init(loop, &io, fds[0]);
		lsl_io_start(&io, LSL_READABLE, noop_io);
		lsl_unref(&io.h);
	}
	lsl_set_immediate(loop, step, &c);
	t0 = lsl_hrtime_ns();
	err = lsl_run(loop);
	t1 = lsl_hrtime_ns();
	it = lsl_iterations(loop);
	if (with_fd) {
		lsl_close(&io.h, NULL);
		lsl_run(loop);
		close(fds[0]);
		close(fds[1]);
	}
	if (lsl_loop_close(loop) != 0)
		return -EBUSY;
	if (err)
		return err;
	return (double)(t1 - t0) / (double)it;
}

#ifndef LSL_NO_PROBES
extern volatile unsigned short loopscope_poll_start_semaphore;

/* As if a tracer attached poll_start, minus the probe hits (the nop stays a nop). */
static double run_lsl_record(uint64_t n)
{
	double ns;

	loopscope_poll_start_semaphore++;
	ns = run_lsl(n, 0, 0);
	loopscope_poll_start_semaphore--;
	return ns;
}
#endif

static uint64_t uv_count, uv_n;
static uv_check_t uv_chk;
static uv_idle_t uv_idl;

static void uv_check_step(uv_check_t *h)
{
	if (++uv_count >= uv_n) {
		uv_check_stop(&uv_chk);
		uv_idle_stop(&uv_idl);
	}
}

static void uv_idle_step(uv_idle_t *h)
{
}

static double run_libuv(uint64_t n)
{
	uv_loop_t loop;
	uint64_t t0, t1;

	if (uv_loop_init(&loop) != 0)
		return -EINVAL;
	uv_count = 0;
	uv_n = n;
	uv_check_init(&loop, &uv_chk);
	uv_idle_init(&loop, &uv_idl);
	uv_check_start(&uv_chk, uv_check_step);
	uv_idle_start(&uv_idl, uv_idle_step);
	t0 = lsl_hrtime_ns();
	uv_run(&loop, UV_RUN_DEFAULT);
	t1 = lsl_hrtime_ns();
	uv_close((uv_handle_t *)&uv_chk, NULL);
	uv_close((uv_handle_t *)&uv_idl, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		return -EBUSY;
	return (double)(t1 - t0) / (double)uv_count;
}

static double run_mode(const char *mode, uint64_t n)
{
	if (!strcmp(mode, "lsl"))
		return run_lsl(n, 0, 0);
	if (!strcmp(mode, "lsl-acct"))
		return run_lsl(n, 1, 0);
#ifndef LSL_NO_PROBES
	if (!strcmp(mode, "lsl-rec"))
		return run_lsl_record(n);
#endif
	if (!strcmp(mode, "lsl-fd"))
		return run_lsl(n, 0, 1);
	if (!strcmp(mode, "libuv"))
		return run_libuv(n);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	const char *modes = "lsl,lsl-acct,lsl-rec,lsl-fd,libuv";
	char *list, *save = NULL, *m, *names[8];
	int rounds = 9, nmodes = 0, r, i;
	uint64_t n = 300000;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--modes") && i + 1 < argc)
			modes = argv[++i];
		else {
			fprintf(stderr, "usage: loop_bench [--rounds R] [--n N] [--modes lsl,lsl-acct,lsl-rec,lsl-fd,libuv]\n");
			return 2;
		}
	}
	if (rounds < 1 || n < 1000) {
		fprintf(stderr, "loop_bench: --rounds >= 1 and --n >= 1000\n");
		return 2;
	}
	list = strdup(modes);
	if (!list)
		return 1;
	for (m = strtok_r(list, ",", &save); m && nmodes < 8; m = strtok_r(NULL, ",", &save))
		names[nmodes++] = m;
	/* Warm-up, not reported. */
	for (i = 0; i < nmodes; i++)
		run_mode(names[i], n / 10);
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < nmodes; i++) {
			double ns = run_mode(names[i], n);
			if (ns < 0) {
				fprintf(stderr, "loop_bench: mode %s failed: %s\n", names[i], strerror((int)-ns));
				free(list);
				return 1;
			}
			printf("%s %.2f\n", names[i], ns);
			fflush(stdout);
		}
	}
	free(list);
	return 0;
}
