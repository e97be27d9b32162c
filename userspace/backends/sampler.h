/* sampler.h: the stack samplers' clock. One CPU-wide cpu-clock perf event per
 * possible CPU, each running the same BPF program (a probe set's sampler, see
 * bpf/stack_sample.bpf.h), which returns at once unless the interrupted thread is
 * one it wants.
 *
 * CPU-wide, not one event per loop thread: a task's own sampling event is switched
 * out and in with the task (an hrtimer cancelled and re-armed at every context
 * switch), which cost a loaded HTTP server ~0.5% of its CPU here (paired rounds as in
 * make bench's section 2b, sampler on and off); a CPU-wide one costs the target only
 * the ticks that land on it, and it covers threads started after the attach.
 */
#ifndef LS_SAMPLER_H
#define LS_SAMPLER_H

#include <stddef.h>

struct bpf_program;
struct bpf_link;

struct ls_sampler {
	struct ls_sampler_cpu {
		int fd;			/* -1: CPU offline, or its event failed */
		struct bpf_link *link;
	} *cpu;
	size_t ncpu;
};

/* Open hz samples a second on every possible CPU, running prog; disabled: opened
 * and attached but stopped until ls_sampler_enable(). 0 when at least one CPU's
 * event runs the program, else -errno (nothing left open). */
int ls_sampler_open(struct ls_sampler *s, struct bpf_program *prog, unsigned hz, int disabled);
void ls_sampler_enable(struct ls_sampler *s, int on);
void ls_sampler_close(struct ls_sampler *s);	/* idempotent; a zeroed one is closed */

/* Bytes for a probe set's `samples` ring buffer (bpf_map__set_max_entries() before
 * load), by the agent's profile mode (enum LS_PROFILE_*). The kernel allocates a ring
 * whole, per target, and the agent maps it, so it is sized for how long the agent may
 * be late, not for the worst rate: while a loop runs long, its samples come at ~1 kHz,
 * 1-3 KB each (a deep JS stack), and the agent reads them as they arrive (the ring is
 * in its epoll set). 1 MB is 0.3-1 s of one such loop; `loopscope profile`, which keeps
 * every sample of every loop thread all the time, gets 4 MB. */
unsigned ls_samples_ring_bytes(int profile);

#endif /* LS_SAMPLER_H */
