/* exec_after.c: LD_PRELOAD helper for tests: once the file LS_EXEC_WHEN exists, the
 * process exec()s LS_EXEC_PROG (argv: LS_EXEC_PROG LS_EXEC_ARG). A traced loop that
 * turns into another program at a moment the test chooses, without changing the loop
 * under test. (A file, not a signal: the loop's threads may unblock any signal.) */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *waiter(void *arg)
{
	const char *when = getenv("LS_EXEC_WHEN"), *prog = getenv("LS_EXEC_PROG"), *a = getenv("LS_EXEC_ARG");
	struct timespec ts = { 0, 20 * 1000000L };

	(void)arg;
	while (access(when, F_OK))
		nanosleep(&ts, NULL);
	unsetenv("LD_PRELOAD");
	execl(prog, prog, a, (char *)NULL);
	_exit(127);
}

__attribute__((constructor)) static void start(void)
{
	pthread_t t;

	if (getenv("LS_EXEC_PROG") && getenv("LS_EXEC_WHEN") && pthread_create(&t, NULL, waiter, NULL) == 0)
		pthread_detach(t);
}
