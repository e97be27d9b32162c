/* agent_target_test.c: target discovery (target.c) and the agent core's error paths
 * that need no BPF (agent.c). The reference-loop case runs build/loopdemo
 * ($LS_BUILD/loopdemo) as a child and identifies it from /proc. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent.h"

/* A PID that is certainly not running: a child that has been reaped. */
static pid_t dead_pid(void)
{
	pid_t p = fork();

	assert_true(p >= 0);
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

static void test_identify_no_such_process(void **state)
{
	struct ls_target_info ti;
	char err[512];
	pid_t p = dead_pid();

	(void)state;
	assert_int_equal(ls_target_identify(p, &ti, err, sizeof(err)), -ESRCH);
	assert_non_null(strstr(err, "no such process"));
	assert_int_equal(ls_target_identify(0, &ti, err, sizeof(err)), -ESRCH);
	assert_int_equal(ls_target_identify(-5, &ti, err, sizeof(err)), -ESRCH);
}

/* This test program has neither our USDT provider nor libuv: one clear line that
 * says what was looked for. */
static void test_identify_unsupported(void **state)
{
	struct ls_target_info ti;
	char err[512], want[64];

	(void)state;
	assert_int_equal(ls_target_identify(getpid(), &ti, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(ti.found, 0);
	assert_non_null(strstr(err, "not a supported target"));
	assert_non_null(strstr(err, "'loopscope' USDT provider"));
	assert_non_null(strstr(err, "uv_run"));
	assert_non_null(strstr(err, "uv__io_poll"));
	assert_null(strchr(err, '\n'));
	snprintf(want, sizeof(want), "/proc/%d/exe", (int)getpid());
	assert_string_equal(ti.exe_proc, want);
	assert_true(ti.exe[0] == '/');
}

/* loopdemo carries the provider in its executable: the reference runtime, probes
 * attached through /proc/PID/exe. */
static void test_identify_reference_loop(void **state)
{
	const char *build = getenv("LS_BUILD");
	char path[4096], err[512], want[64];
	struct ls_target_info ti;
	pid_t p;
	int r = -1;

	(void)state;
	snprintf(path, sizeof(path), "%s/loopdemo", build ? build : "build");
	if (access(path, X_OK) != 0) {
		fail_msg("%s missing: build it first (make)", path);
		return;
	}
	p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		execl(path, path, "--block", "1", "--every", "100", "--duration", "5", (char *)NULL);
		_exit(127);
	}
	/* Until the exec is done the child is still this program. */
	for (int i = 0; i < 200; i++) {
		r = ls_target_identify(p, &ti, err, sizeof(err));
		if (r == 0)
			break;
		usleep(10000);
	}
	kill(p, SIGTERM);
	waitpid(p, NULL, 0);
	assert_int_equal(r, 0);
	assert_int_equal(ti.pid, p);
	assert_int_equal(ti.runtime, LS_RT_REFERENCE);
	assert_true(ti.found & LS_FOUND_LSL_USDT);
	assert_false(ti.found & LS_FOUND_UV_RUN);
	snprintf(want, sizeof(want), "/proc/%d/exe", (int)p);
	assert_string_equal(ti.exe_proc, want);
	assert_string_equal(ti.lib, want);
	assert_string_equal(ti.comm, "loopdemo");
	assert_non_null(strstr(ti.exe, "loopdemo"));
	assert_true(ls_backend_refloop.match(&ti));
}

/* The agent without any target: add_pid errors leave it empty, its source polls
 * and snapshots fine, and free releases everything (ASan checks). */
static void test_agent_errors_and_empty_source(void **state)
{
	struct ls_agent_opts opts = { 0 };
	struct ls_agent *ag = NULL;
	struct ls_snapshot snap;
	struct ls_source *src;
	char err[512];

	(void)state;
	assert_int_equal(ls_agent_new(&opts, &ag, err, sizeof(err)), 0);
	assert_non_null(ag);
	assert_int_equal(ls_agent_add_pid(ag, dead_pid(), err, sizeof(err)), -ESRCH);
	assert_non_null(strstr(err, "no such process"));
	assert_int_equal(ls_agent_add_pid(ag, getpid(), err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "not a supported target"));

	src = ls_agent_source(ag);
	assert_non_null(src);
	assert_true(src->ops->fd(src) >= 0);
	assert_int_equal(ls_source_poll(src, 10), 0);	/* nothing attached yet: not ended */
	assert_int_equal(ls_source_snapshot(src, &snap), 0);
	assert_int_equal(snap.ntargets, 0);
	assert_true(snap.mono_ns > 0 && snap.wall_ns > snap.mono_ns);
	assert_true(snap.self.rss_bytes > 0);
	ls_snapshot_free(&snap);
	ls_source_destroy(src);	/* a no-op for the agent's own source */
	ls_agent_free(ag);
	ls_agent_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identify_no_such_process),
		cmocka_unit_test(test_identify_unsupported),
		cmocka_unit_test(test_identify_reference_loop),
		cmocka_unit_test(test_agent_errors_and_empty_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
