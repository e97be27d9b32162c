/* exec_after.c: LD_PRELOAD helper for tests: on SIGUSR2 the process exec()s
 * LS_EXEC_PROG (argv: LS_EXEC_PROG LS_EXEC_ARG). A traced loop that turns into another
 * program at a moment the test chooses, without changing the loop under test.
 * SIGUSR2 is blocked before main() runs (so in every thread the program creates) and
 * taken by sigwait() in a thread of our own. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static sigset_t set;

static void *waiter(void *arg)
{
	const char *prog = getenv("LS_EXEC_PROG"), *a = getenv("LS_EXEC_ARG");
	int sig;

	(void)arg;
	if (sigwait(&set, &sig))
		return NULL;
	unsetenv("LD_PRELOAD");
	execl(prog, prog, a, (char *)NULL);
	_exit(127);
}

__attribute__((constructor)) static void start(void)
{
	pthread_t t;

	if (!getenv("LS_EXEC_PROG"))
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&t, NULL, waiter, NULL) == 0)
		pthread_detach(t);
}
