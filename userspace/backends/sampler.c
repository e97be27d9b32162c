/* sampler.c: per-CPU cpu-clock events running a BPF stack sampler (sampler.h). */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "agent.h"
#include "sampler.h"

int ls_sampler_open(struct ls_sampler *s, struct bpf_program *prog, unsigned hz, int disabled)
{
	struct perf_event_attr pa = {
		.type = PERF_TYPE_SOFTWARE, .config = PERF_COUNT_SW_CPU_CLOCK, .size = sizeof(pa),
		.freq = 1, .sample_freq = hz, .disabled = disabled ? 1 : 0,
	};
	int ncpu = libbpf_num_possible_cpus(), r = -ENODEV, live = 0;

	memset(s, 0, sizeof(*s));
	if (ncpu <= 0)
		return ncpu ? ncpu : -ENODEV;
	s->cpu = calloc((size_t)ncpu, sizeof(*s->cpu));
	if (!s->cpu)
		return -ENOMEM;
	s->ncpu = (size_t)ncpu;
	for (int cpu = 0; cpu < ncpu; cpu++) {
		struct ls_sampler_cpu *c = &s->cpu[cpu];

		c->fd = (int)syscall(__NR_perf_event_open, &pa, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (c->fd < 0) {
			if (errno != ENODEV)	/* ENODEV: a possible CPU that is offline */
				r = -errno;
			continue;
		}
		c->link = bpf_program__attach_perf_event(prog, c->fd);
		if (!c->link) {
			r = -errno;
			close(c->fd);
			c->fd = -1;
			continue;
		}
		if (disabled)
			ioctl(c->fd, PERF_EVENT_IOC_DISABLE, 0);	/* attaching enabled it */
		live++;
	}
	if (!live) {
		ls_sampler_close(s);
		return r;
	}
	return 0;
}

void ls_sampler_enable(struct ls_sampler *s, int on)
{
	for (size_t i = 0; i < s->ncpu; i++)
		if (s->cpu[i].fd >= 0)
			ioctl(s->cpu[i].fd, on ? PERF_EVENT_IOC_ENABLE : PERF_EVENT_IOC_DISABLE, 0);
}

void ls_sampler_close(struct ls_sampler *s)
{
	for (size_t i = 0; i < s->ncpu; i++) {
		bpf_link__destroy(s->cpu[i].link);
		if (s->cpu[i].fd >= 0)
			close(s->cpu[i].fd);
	}
	free(s->cpu);
	memset(s, 0, sizeof(*s));
}

unsigned ls_samples_ring_bytes(int profile)
{
	return profile == LS_PROFILE_ALL ? 4u << 20 : 1u << 20;
}
