// SPDX-License-Identifier: GPL-2.0
/* calib.bpf.c: empty handlers for `loopscope calibrate` (userspace/core/calib.c).
 *
 * Each program does nothing, so what a hit costs the traced thread is the trap into
 * the kernel and the dispatch to BPF: the floor every probe set pays per hit, on top
 * of its own program's run time. The tracepoint pair is attached to getppid only,
 * the syscall the calibration loop makes.
 *
 * No vmlinux.h: its types carry CO-RE relocations (usdt.bpf.h reads struct pt_regs),
 * and any relocation makes libbpf parse the kernel's whole BTF at load, ~80 ms here,
 * most of what calibrating took. The UAPI struct pt_regs has a fixed layout on x86-64.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

SEC("usdt")
int BPF_USDT(calib_usdt)
{
	return 0;
}

SEC("uprobe")
int calib_uprobe(struct pt_regs *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int calib_sys_enter(void *ctx)
{
	return 0;
}

SEC("tp/syscalls/sys_exit_getppid")
int calib_sys_exit(void *ctx)
{
	return 0;
}
