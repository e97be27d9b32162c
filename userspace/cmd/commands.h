/* commands.h: the subcommands of build/loopscope. Each gets argv with argv[0] set to
 * its own name, parses its options (getopt_long), handles --help, and returns the
 * process exit status: 0 ran as asked, 1 runtime failure, 2 bad usage. */
#ifndef LS_COMMANDS_H
#define LS_COMMANDS_H

struct ls_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int ls_cmd_stat(int argc, char **argv);	/* stat.c */
int ls_cmd_serve(int argc, char **argv);	/* serve.c */
int ls_cmd_top(int argc, char **argv);		/* top.c (model and drawing: dashboards/top/) */
int ls_cmd_calibrate(int argc, char **argv);	/* calibrate.c (measurement: core/calib.c) */
int ls_cmd_profile(int argc, char **argv);	/* profile.c */
int ls_cmd_record(int argc, char **argv);	/* record.c (the format: userspace/record/) */
int ls_cmd_report(int argc, char **argv);	/* report.c */

#endif
