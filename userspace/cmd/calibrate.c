/* calibrate.c: `loopscope calibrate`, this machine's probe-hit floor (core/calib.c).
 * Prints one line naming the machine class and one with the single-stepped uprobe
 * hit, or the figures as JSON. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "calib.h"
#include "commands.h"
#include "options.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopscope calibrate [--json] [--refresh] [--cpu N] [-v]\n\n"
		"Measure what one probe hit costs on this machine: a bare USDT hit, an\n"
		"emulated and a single-stepped uprobe hit (empty BPF programs), one syscall,\n"
		"and what a syscall tracepoint pair adds to it. The figures are cached per\n"
		"boot in " LS_CALIB_CACHE ".\n\n"
		"      --json      the figures as one JSON object\n"
		"      --refresh   measure again even if this boot's figures are cached\n"
		"      --cpu N     measure pinned to CPU N (implies --refresh; not cached)\n"
		"  -v, --verbose   libbpf diagnostics on stderr\n"
		"  -h, --help      this help\n\n"
		"Exit status: 0 measured or cached figures printed, 1 cannot measure (not\n"
		"root, no BPF), 2 bad usage. See loopscope(1).\n");
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

int ls_cmd_calibrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "refresh", no_argument, NULL, 'r' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int json = 0, refresh = 0, verbose = 0, cpu = -1, opt, r;
	struct ls_calib c;
	char err[512] = "", line[512];

	opterr = 0;	/* one line of ours instead of getopt's and the usage */
	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'r':
			refresh = 1;
			break;
		case 'c': {
			long v;

			if (ls_opt_integer(optarg, 0, 4095, &v)) {
				fprintf(stderr, "loopscope calibrate: --cpu takes a CPU number, not '%s'\n",
					optarg);
				return 2;
			}
			cpu = (int)v;
			break;
		}
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "loopscope calibrate: unknown option '%s'; try 'loopscope calibrate --help'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (ls_opt_no_operands("calibrate", argc, argv, 0))
		return 2;
	if (!verbose)
		libbpf_set_print(quiet_print);
	r = cpu >= 0 ? ls_calib_measure(&c, cpu, err, sizeof(err)) : ls_calib_get(&c, refresh, err, sizeof(err));
	if (r) {
		fprintf(stderr, "loopscope calibrate: %s\n", err);
		return 1;
	}
	if (json) {
		char *s = ls_calib_json(&c);

		if (!s) {
			fprintf(stderr, "loopscope calibrate: out of memory\n");
			return 1;
		}
		printf("%s\n", s);
		free(s);
	} else {
		ls_calib_line(&c, line, sizeof(line));
		printf("%s\n", line);
		ls_calib_sstep_line(&c, line, sizeof(line));
		printf("%s\n", line);
	}
	return 0;
}
