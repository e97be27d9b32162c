/* options.c: option value parsers (options.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "options.h"

int ls_opt_number(const char *arg, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v) || !(v >= lo && v <= hi))
		return -EINVAL;
	*out = v;
	return 0;
}

int ls_opt_integer(const char *arg, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int ls_parse_pid(const char *arg, pid_t *out)
{
	long v;

	/* 0x3fffffff: far above any pid_max the kernel allows (4194304). */
	if (ls_opt_integer(arg, 1, 0x3fffffff, &v))
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

int ls_opt_pid(const char *cmd, const char *arg, pid_t *pids, int *n, int max, const char *full_hint)
{
	pid_t v;

	if (ls_parse_pid(arg, &v)) {
		fprintf(stderr, "loopscope %s: bad PID '%s': give a positive process id\n", cmd, arg);
		return 2;
	}
	for (int k = 0; k < *n; k++)
		if (pids[k] == v)
			return 0;
	if (*n == max) {
		fprintf(stderr, "loopscope %s: at most %d -p options%s\n", cmd, max, full_hint ? full_hint : "");
		return 2;
	}
	pids[(*n)++] = v;
	return 0;
}

int ls_opt_usage(int c, void (*usage)(FILE *f))
{
	if (c == 'h') {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}

int ls_opt_no_operands(const char *cmd, int argc, char *const argv[], int help_hint)
{
	if (optind >= argc)
		return 0;
	if (help_hint)
		fprintf(stderr, "loopscope %s: unexpected argument '%s'; try 'loopscope %s --help'\n", cmd, argv[optind],
			cmd);
	else
		fprintf(stderr, "loopscope %s: unexpected argument '%s'\n", cmd, argv[optind]);
	return 2;
}
