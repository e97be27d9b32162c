/* calib.h: what a probe hit costs on this machine (`loopscope calibrate`).
 *
 * Trap costs differ widely between machines of the same kind (a paravirtualised
 * guest pays an order of magnitude more per uprobe hit than bare metal), so a probe
 * set's cost only means something next to this machine's floor. ls_calib_get() measures, pinned to
 * one CPU, the cost a traced thread pays for one bare USDT hit, one emulated and one
 * single-stepped uprobe hit (empty BPF programs), a USDT hit on a 5-byte nop, one untraced syscall, and what a sys_enter +
 * sys_exit tracepoint pair adds to a traced syscall; each the median of several
 * rounds, less the untraced loop of the same round. The result is cached per boot.
 * Needs root (BPF). calib.md has the method. */
#ifndef LS_CALIB_H
#define LS_CALIB_H

#include <stddef.h>
#include <stdint.h>

#define LS_CALIB_CACHE "/run/loopscope/calib.json"

struct ls_calib {
	char cpu_model[128];	/* /proc/cpuinfo "model name" */
	int cpu_family;		/* /proc/cpuinfo "cpu family", -1 when absent */
	char kernel[65];	/* uname -r */
	char boot_id[40];	/* /proc/sys/kernel/random/boot_id: the cache key */
	int cpu;		/* the CPU the measurement was pinned to */
	int rounds;		/* rounds per figure (each figure is their median) */
	double usdt_hit_ns;	/* one USDT hit (1-byte nop), empty BPF program */
	double usdt_nop5_hit_ns;	/* one USDT hit on a 5-byte nop (a call, where the kernel optimises it) */
	double uprobe_hit_ns;	/* one uprobe hit on an emulated instruction (push) */
	double sstep_hit_ns;	/* one uprobe hit on a single-stepped instruction (mov) */
	double syscall_ns;	/* one untraced getppid() */
	double tp_pair_ns;	/* sys_enter + sys_exit tracepoints added to one getppid() */
	double loop_ns;		/* the untraced call loop, per iteration (subtracted above) */
	double took_ms;		/* wall time to load, attach and measure (not to detach) */
	int64_t measured_at;	/* unix seconds */
	int cached;		/* 1: read from LS_CALIB_CACHE, not measured by this call */
};

/* Fill c: from the per-boot cache when it is there and refresh is 0, else measure
 * (pinned to the CPU this thread is on) and write the cache (best effort: a cache
 * that cannot be written is not an error). Returns 0 or a negative errno with one
 * line in err saying what failed and what to do. Never leaves anything attached. */
int ls_calib_get(struct ls_calib *c, int refresh, char *err, size_t errlen);

/* Measure now, pinned to cpu (-1: the CPU this thread is on); no cache involved. */
int ls_calib_measure(struct ls_calib *c, int cpu, char *err, size_t errlen);

/* One line naming the machine class:
 * "machine: AMD EPYC (family 26), kernel 6.18.44, usdt hit 8.1 us, uprobe hit 7.9 us,
 *  syscall 1.02 us, tracepoint pair 0.41 us" */
void ls_calib_line(const struct ls_calib *c, char *buf, size_t len);
/* The second line, kept apart so the first keeps its format (tests and make bench
 * parse it): "single-stepped uprobe hit 9.8 us (on a mov; ...)". */
void ls_calib_sstep_line(const struct ls_calib *c, char *buf, size_t len);

/* c as one JSON object (no newline); returns a malloc'd string or NULL. */
char *ls_calib_json(const struct ls_calib *c);

#endif
