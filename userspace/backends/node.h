/* node.h: the Node.js / libuv backend (nodeuv.c) of the agent core (agent.h).
 *
 * Targets: any process with libuv's uv_run in its executable (Node.js links libuv
 * in) or in a mapped libuv.so. Tiers (ls_agent_opts.tier), probe-plans.md:
 *   "light"    (default) at most one trap per iteration: the poll timed by the epoll
 *              tracepoints or one poll-entry uprobe (the cheaper by calibration),
 *              timer lateness where a timer fires;
 *   "phases"   uprobes at the phase boundaries inside uv_run;
 *   "counters" no probe: libuv's own counters read from outside.
 * light and phases add GC brackets (Node) and stall classification by stack samples.
 */
#ifndef LS_NODE_H
#define LS_NODE_H

#include "agent.h"

#define LS_NODE_DEFAULT_TIER "light"
/* Stack samples a second of a loop thread's CPU time while it is profiled (the
 * 99 Hz and 997 Hz cpu-clock sets together, bpf/nodeuv.bpf.c nu_sample). */
#define LS_NODE_PROFILE_HZ (99 + 997)

extern const struct ls_backend_ops ls_backend_node;

/* What the backend would attach for this target and tier, without attaching:
 * one line per probe site ("boundary poll_in uv_run+0x182 call 0x18c0120 emulated")
 * and the note. For `-v` output and tests. 0 or -errno with err. */
int ls_node_plan(const struct ls_target_info *ti, const char *tier, FILE *out, char *err, size_t errlen);

#endif /* LS_NODE_H */
