/* common.c: names and clocks shared by every part of the agent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "snapshot.h"
#include "stacks.h"

const char *const ls_phase_names[LS_NPHASES] = {
	[LS_PHASE_TIMERS] = "timers", [LS_PHASE_PENDING] = "pending", [LS_PHASE_IDLE] = "idle",
	[LS_PHASE_PREPARE] = "prepare", [LS_PHASE_POLL] = "poll", [LS_PHASE_CHECK] = "check",
	[LS_PHASE_CLOSE] = "close",
};

const char *ls_phase_name(uint32_t phase)
{
	if (phase < LS_NPHASES)
		return ls_phase_names[phase];
	return phase == LS_PHASE_NONE ? "none" : "?";
}

const char *ls_runtime_name(uint32_t rt)
{
	static const char *const names[] = { [LS_RT_REFERENCE] = "reference", [LS_RT_NODE] = "node",
					     [LS_RT_LIBUV] = "libuv" };
	return rt < sizeof(names) / sizeof(names[0]) ? names[rt] : "?";
}

const char *ls_episode_kind_name(uint32_t kind)
{
	static const char *const names[LS_EP_NKINDS] = {
		[LS_EP_STALL] = "stall", [LS_EP_TICK_STARVATION] = "tick_starvation",
		[LS_EP_MICROTASK_STARVATION] = "microtask_starvation", [LS_EP_GC] = "gc",
		[LS_EP_TARGET_EXIT] = "target_exit",
	};
	return kind < LS_EP_NKINDS ? names[kind] : "?";
}

const char *ls_frame_kind_name(enum ls_frame_kind kind)
{
	static const char *const names[] = { [LS_FRAME_JS] = "js", [LS_FRAME_NATIVE] = "native",
					     [LS_FRAME_KERNEL] = "kernel" };
	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ls_now_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
uint64_t ls_now_wall_ns(void) { return clock_ns(CLOCK_REALTIME); }

int ls_parse_pid(const char *arg, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	/* 0x3fffffff: far above any pid_max the kernel allows (4194304). */
	if (errno || end == arg || *end || v <= 0 || v > 0x3fffffff)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

int ls_probe_tier_valid(const char *tier)
{
	return !strcmp(tier, "light") || !strcmp(tier, "phases");
}
