/* stack_raw.h: the raw stack sample the BPF samplers send to user space
 * (stack_sample.bpf.h) and the unwinder reads (userspace/backends/unwind.h).
 * Fixed-width types only (clang -target bpf and gcc must agree on the layout).
 */
#ifndef LS_STACK_RAW_H
#define LS_STACK_RAW_H

/* Raw stack samples for user space (the `samples` ring buffer of each probe set
 * that samples stacks: stack_sample.bpf.h). The sampler walks
 * the loop thread's frame pointers: for each frame it copies the 8 words from
 * fp - 48 to fp + 16, i.e. the six slots V8 keeps below a frame's fp (context or
 * frame-type marker, JSFunction, argc, bytecode array, bytecode offset, ...), the
 * saved fp (slot 6) and the return address (slot 7). Frame 0 runs at `pc`; frame
 * i + 1 runs at frame i's slot 7. User space decodes the slots with the target's
 * v8dbg_* constants; the kernel knows nothing of V8. */
#define LS_RAW_DEPTH 48		/* user frames per sample */
#define LS_RAW_KDEPTH 16	/* kernel frames per sample */
#define LS_RAW_SLOTS 8
#define LS_RAW_FP_SLOT 6	/* the saved fp: fp + 0 */
#define LS_RAW_RET_SLOT 7	/* the return address: fp + 8 */
#define LS_RAW_BELOW 48		/* bytes copied below fp */

enum ls_raw_type {
	LS_RAW_SAMPLE,		/* a stack sample */
	LS_RAW_HOT,		/* a loop has not polled for stall/8: sample faster (Node) */
	LS_RAW_COOL,		/* that span ended */
};

/* Sample flags. */
#define LS_RAW_F_GC 1u		/* taken inside Heap::CollectGarbage (Node) */
#define LS_RAW_F_KERNEL 2u	/* interrupted in the kernel (kip[] holds its stack) */
#define LS_RAW_F_SCANNED 4u	/* %rbp was not a frame: frames[0] was found by a stack scan */
#define LS_RAW_F_LEAFRET 8u	/* the scan found the leaf's return address (ret0): its caller */

/* A leaf that keeps no frame record and whose callers a stack scan can find exactly
 * (user space fills these in the sampler's .bss: unwind.c): while pc is in [lo, hi),
 * a word near the stack top is the leaf's return address when the instruction before
 * it is a direct call of one of target[] (the leaf, or a dispatcher that jumps to it,
 * as OpenSSL's sha512_block_data_order does to its _avx2 variant). lo is written
 * last: 0 means the slot is free. */
#define LS_LEAF_MAX 16
#define LS_LEAF_TARGETS 4
struct ls_leaf {
	__u64 lo, hi;
	__u64 target[LS_LEAF_TARGETS];	/* 0: none */
};

struct ls_raw_frame {
	__u64 slot[LS_RAW_SLOTS];
};

struct ls_raw {
	__u32 type;		/* enum ls_raw_type */
	__u32 tid;
	__u64 span_start;	/* the not-polling span's start: an episode's start_ns */
	__u64 time;		/* when taken */
	__u32 flags;		/* LS_RAW_F_* */
	__u16 nframes;		/* frames[] filled (0: only pc) */
	__u16 nkframes;		/* kip[] filled */
	__u64 pc, fp;		/* user registers of the leaf (fp: where frames[] start) */
	__u64 ret0;		/* LS_RAW_F_LEAFRET: the leaf's return address */
	__u64 kip[LS_RAW_KDEPTH];
	struct ls_raw_frame frames[LS_RAW_DEPTH];	/* only nframes are sent */
};

#endif /* LS_STACK_RAW_H */
