/* options.h: parsing the values of command-line options, shared by every command.
 * Each parser accepts the whole argument or nothing (no trailing text, no overflow). */
#ifndef LS_OPTIONS_H
#define LS_OPTIONS_H

#include <stdio.h>
#include <sys/types.h>

/* A decimal number (fractions allowed: "0.5") in [lo, hi]. 0 or -EINVAL. */
int ls_opt_number(const char *arg, double lo, double hi, double *out);
/* A decimal integer in [lo, hi]. 0 or -EINVAL. */
int ls_opt_integer(const char *arg, long lo, long hi, long *out);
/* A positive decimal process id. 0 or -EINVAL. */
int ls_parse_pid(const char *arg, pid_t *out);

/* One -p PID option of command cmd added to pids[0..*n) (max entries; a PID given
 * twice is kept once, since attaching twice would only fail). 0, or 2 (the usage
 * exit status) after printing "loopscope CMD: ..." to stderr; full_hint, if not NULL,
 * is appended to the "at most" message. */
int ls_opt_pid(const char *cmd, const char *arg, pid_t *pids, int *n, int max, const char *full_hint);

/* The two ends of a command's getopt loop, alike in every command.
 * ls_opt_usage(): the switch's default, for -h/--help (c == 'h') and for an option
 * getopt refused: usage(stdout) and 0 (exit status) for 'h', usage(stderr) and 2 (the
 * usage exit status) for anything else.
 * ls_opt_no_operands(): after the loop, 0 when getopt left no operand in argv (from
 * optind), else 2 after "loopscope CMD: unexpected argument 'ARG'" on stderr, followed
 * by "; try 'loopscope CMD --help'" when help_hint. */
int ls_opt_usage(int c, void (*usage)(FILE *f));
int ls_opt_no_operands(const char *cmd, int argc, char *const argv[], int help_hint);

#endif /* LS_OPTIONS_H */
