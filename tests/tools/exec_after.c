/* exec_after.c: LD_PRELOAD helper for tests: after LS_EXEC_AFTER_MS milliseconds the
 * process exec()s LS_EXEC_PROG (argv: LS_EXEC_PROG LS_EXEC_ARG). A traced loop that
 * turns into another program, without changing the loop under test. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *later(void *arg)
{
	const char *ms = getenv("LS_EXEC_AFTER_MS"), *prog = getenv("LS_EXEC_PROG"), *a = getenv("LS_EXEC_ARG");
	struct timespec ts;
	long v = ms ? atol(ms) : 0;

	(void)arg;
	ts.tv_sec = v / 1000;
	ts.tv_nsec = (v % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	unsetenv("LD_PRELOAD");
	execl(prog, prog, a, (char *)NULL);
	_exit(127);
}

__attribute__((constructor)) static void start(void)
{
	pthread_t t;

	if (getenv("LS_EXEC_PROG") && pthread_create(&t, NULL, later, NULL) == 0)
		pthread_detach(t);
}
