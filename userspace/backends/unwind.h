/* unwind.h: a raw stack sample of a probe set (bpf/stack_raw.h, struct ls_raw)
 * -> symbolized frames (core/stacks.h), leaf first: kernel frames (kallsyms),
 * JS frames (v8frames.h), native frames (nativesym.h). */
#ifndef LS_UNWIND_H
#define LS_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stacks.h"
#include "stacktab.h"

struct ls_raw;
struct ls_unwinder;

/* For process pid; exe (with load bias bias) is the binary holding V8, or NULL
 * (a libuv program). A process without usable V8 metadata still gets native frames:
 * ls_unwinder_js_why() says why it has no JS frames. 0 or -errno. */
int ls_unwinder_new(pid_t pid, const char *exe, uint64_t bias, struct ls_stacktab *tab, struct ls_unwinder **out);
void ls_unwinder_free(struct ls_unwinder *u);
/* NULL when JS frames are named, else one phrase saying why not. */
const char *ls_unwinder_js_why(const struct ls_unwinder *u);
/* The sampler's leaves[] (struct ls_leaf, LS_LEAF_MAX of them, in its skeleton's
 * .bss): leaves whose stack scans came back without a caller are registered there,
 * so that later scans look for their return address (stack_sample.bpf.h). */
struct ls_leaf;
void ls_unwinder_set_leaves(struct ls_unwinder *u, struct ls_leaf *leaves);
/* Frames of raw sample r (len bytes) into out[max]; returns how many. Strings
 * belong to the table given to ls_unwinder_new(). */
uint32_t ls_unwind(struct ls_unwinder *u, const struct ls_raw *r, size_t len, struct ls_frame *out, uint32_t max);

#endif /* LS_UNWIND_H */
