/* agent_prune_test.c: the agent forgets targets that left (core/agent.c), so one that
 * follows short-lived processes for days stays bounded. No BPF: a process that has
 * already exited (a zombie child of the test) is added, which the agent lists as an
 * exited target without attaching anything. */
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

/* A child that has exited and is not reaped yet. */
static pid_t zombie(void)
{
	pid_t pid = fork();
	siginfo_t si;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);	/* exited, still a zombie */
	return pid;
}

static void reap(pid_t pid)
{
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static struct ls_agent *agent(uint64_t keep_gone_ns)
{
	struct ls_agent_opts o = { .keep_gone_ns = keep_gone_ns };
	struct ls_agent *ag;
	char err[256];

	assert_int_equal(ls_agent_new(&o, &ag, err, sizeof(err)), 0);
	return ag;
}

static void add_gone(struct ls_agent *ag, pid_t pid)
{
	char err[512];

	assert_int_equal(ls_agent_add_pid(ag, pid, err, sizeof(err)), -ECHILD);
}

/* How many of s's targets are pid, checking they are listed as exited. */
static int listed(const struct ls_snapshot *s, pid_t pid)
{
	int n = 0;

	for (uint32_t i = 0; i < s->ntargets; i++)
		if (s->targets[i].pid == pid) {
			assert_int_equal(s->targets[i].state, LS_TARGET_EXITED);
			n++;
		}
	return n;
}

/* An exited target is in LS_AGENT_GONE_SNAPSHOTS snapshots, so front ends report its
 * end, and dropped from the next one once keep_gone_ns has passed. */
static void test_gone_dropped_after_snapshots(void **state)
{
	struct ls_agent *ag = agent(1);	/* 1 ns: only the snapshot count holds it */
	struct ls_source *src = ls_agent_source(ag);
	struct ls_snapshot s;
	pid_t z = zombie();

	(void)state;
	add_gone(ag, z);
	for (int k = 0; k < LS_AGENT_GONE_SNAPSHOTS; k++) {
		assert_int_equal(ls_source_snapshot(src, &s), 0);
		if (listed(&s, z) != 1)
			fail_msg("snapshot %d after the exit does not list it", k + 1);
		ls_snapshot_free(&s);
	}
	assert_int_equal(ls_source_snapshot(src, &s), 0);
	if (s.ntargets)
		fail_msg("%u targets in snapshot %d after the exit: never dropped", s.ntargets,
			 LS_AGENT_GONE_SNAPSHOTS + 1);
	ls_snapshot_free(&s);
	ls_agent_free(ag);
	reap(z);
}

/* Within keep_gone_ns it stays, however many snapshots are taken. */
static void test_gone_kept_within_keep(void **state)
{
	struct ls_agent *ag = agent(3600ull * 1000000000ull);
	struct ls_source *src = ls_agent_source(ag);
	struct ls_snapshot s;
	pid_t z = zombie();

	(void)state;
	add_gone(ag, z);
	for (int k = 0; k < 3 * LS_AGENT_GONE_SNAPSHOTS; k++) {
		assert_int_equal(ls_source_snapshot(src, &s), 0);
		assert_int_equal(listed(&s, z), 1);
		ls_snapshot_free(&s);
	}
	ls_agent_free(ag);
	reap(z);
}

/* keep_gone_ns 0 (stat, top, record): kept for the agent's life. */
static void test_gone_kept_without_keep(void **state)
{
	struct ls_agent *ag = agent(0);
	struct ls_source *src = ls_agent_source(ag);
	struct ls_snapshot s;
	pid_t z = zombie();

	(void)state;
	add_gone(ag, z);
	for (int k = 0; k < 3 * LS_AGENT_GONE_SNAPSHOTS; k++) {
		assert_int_equal(ls_source_snapshot(src, &s), 0);
		assert_int_equal(listed(&s, z), 1);
		ls_snapshot_free(&s);
	}
	ls_agent_free(ag);
	reap(z);
}

/* serve --exe for days, in small: 200 short-lived processes, one snapshot an interval;
 * the snapshot never holds more than the ones that left within the last few. */
static void test_bounded_over_many(void **state)
{
	struct ls_agent *ag = agent(1);
	struct ls_source *src = ls_agent_source(ag);
	struct ls_snapshot s;
	uint32_t most = 0;

	(void)state;
	for (int i = 0; i < 200; i++) {
		pid_t z = zombie();

		add_gone(ag, z);
		reap(z);
		assert_int_equal(ls_source_snapshot(src, &s), 0);
		if (s.ntargets > most)
			most = s.ntargets;
		ls_snapshot_free(&s);
	}
	if (most > LS_AGENT_GONE_SNAPSHOTS)
		fail_msg("a snapshot held %u exited targets (at most %d expected)", most, LS_AGENT_GONE_SNAPSHOTS);
	ls_agent_free(ag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gone_dropped_after_snapshots),
		cmocka_unit_test(test_gone_kept_within_keep),
		cmocka_unit_test(test_gone_kept_without_keep),
		cmocka_unit_test(test_bounded_over_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
