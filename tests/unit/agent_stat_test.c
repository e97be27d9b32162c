/* agent_stat_test.c: `loopscope stat` option handling and the exit statuses that need
 * no BPF (ls_cmd_stat from stat.c, called in-process). */
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

#include "commands.h"

/* Run ls_cmd_stat with a NULL-terminated argument list (argv[0] = "stat"). */
static int run_stat(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"stat";
	va_start(ap, first);
	for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return ls_cmd_stat(argc, argv);
}

static void test_help(void **state)
{
	(void)state;
	assert_int_equal(run_stat("--help", NULL), 0);
	assert_int_equal(run_stat("-h", NULL), 0);
}

static void test_bad_usage(void **state)
{
	(void)state;
	assert_int_equal(run_stat(NULL), 2);				/* no -p */
	assert_int_equal(run_stat("-p", "0", NULL), 2);
	assert_int_equal(run_stat("-p", "-4", NULL), 2);
	assert_int_equal(run_stat("-p", "12x", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "-i", "0", NULL), 2);	/* interval out of range */
	assert_int_equal(run_stat("-p", "1", "-i", "0.09", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "-i", "3600.5", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "-i", "nan", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "-d", "0", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "-d", "-1", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "--threshold", "0", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "--bogus", NULL), 2);
	assert_int_equal(run_stat("-p", "1", "extra", NULL), 2);
}

/* A PID that does not exist is a runtime failure (1), found before any BPF. */
static void test_no_such_process(void **state)
{
	char pid[16];
	pid_t p = fork();

	(void)state;
	assert_true(p >= 0);
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	snprintf(pid, sizeof(pid), "%d", (int)p);
	assert_int_equal(run_stat("-p", pid, "-i", "1", NULL), 1);
	/* This test program is no event loop: unsupported target, also 1. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_int_equal(run_stat("-p", pid, "--json", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_bad_usage),
		cmocka_unit_test(test_no_such_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
