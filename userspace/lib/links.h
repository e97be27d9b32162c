/* links.h: tearing down BPF links quickly. */
#ifndef LS_LINKS_H
#define LS_LINKS_H

#include <stddef.h>

struct bpf_link;

/* Destroys links[0..n) (NULL entries skipped) and closes fds[0..nfds) (negative
 * entries skipped), all at once, one thread each; sets every entry to NULL / -1.
 *
 * Why threads: removing a uprobe or tracepoint waits for an RCU grace period in the
 * kernel (0.1-0.3 s each here), so one after the other a detach of a dozen links took
 * seconds and stalled every other target's reports. Callers' probes must tolerate
 * any teardown order. A link whose thread cannot start is destroyed inline. */
void ls_links_destroy(struct bpf_link **links, size_t n, int *fds, size_t nfds);

#endif /* LS_LINKS_H */
