/* main.c: `loopscope COMMAND [OPTIONS]` dispatch. Each command lives in its own
 * file (stat.c, serve.c, top.c, record.c, report.c) and parses its own options. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

/* One line per command, in the order `loopscope --help` lists them. */
static const struct ls_command commands[] = {
	{ "stat", "attach to running loops and print their numbers every interval", ls_cmd_stat },
	{ "serve", "Prometheus exporter (/metrics) and live event stream (/events)", ls_cmd_serve },
	{ "top", "live terminal dashboard of event loops (attached, or a serve stream)", ls_cmd_top },
	{ "calibrate", "what one probe hit costs on this machine (the floor probe costs compare to)",
	  ls_cmd_calibrate },
	{ "profile", "record a loop's stacks: folded, SVG flame graph or pprof", ls_cmd_profile },
	{ "record", "record snapshots and episodes into a file for stat/top --replay and report", ls_cmd_record },
	{ "report", "a self-contained HTML report of a recording", ls_cmd_report },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: loopscope COMMAND [OPTIONS]\n"
		   "       loopscope COMMAND --help\n\n"
		   "Event-loop profiler and lag monitor for running processes: the loopscope\n"
		   "reference loop (USDT) and unmodified Node.js / libuv programs (uprobes).\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n  -h, --help     this help\n  -V, --version  print the version\n\n"
		   "See loopscope(1).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("loopscope %s\n", LOOPSCOPE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "loopscope: unknown command '%s'; try 'loopscope --help'\n", argv[1]);
	return 2;
}
