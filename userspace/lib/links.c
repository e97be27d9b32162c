/* links.c: parallel teardown of BPF links (links.h). */
#include <bpf/libbpf.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "links.h"

struct teardown {
	struct bpf_link *link;
	int fd;
};

static void teardown_one(struct teardown *t)
{
	if (t->link)
		bpf_link__destroy(t->link);
	if (t->fd >= 0)
		close(t->fd);
}

static void *teardown_thread(void *arg)
{
	teardown_one(arg);
	return NULL;
}

void ls_links_destroy(struct bpf_link **links, size_t n, int *fds, size_t nfds)
{
	size_t total = n + nfds;
	struct teardown *t = calloc(total ? total : 1, sizeof(*t));
	pthread_t *th = calloc(total ? total : 1, sizeof(*th));
	unsigned char *started = calloc(total ? total : 1, 1);

	for (size_t i = 0; i < total; i++) {
		struct teardown one = { .link = i < n ? links[i] : NULL, .fd = i < n ? -1 : fds[i - n] };

		if (i < n)
			links[i] = NULL;
		else
			fds[i - n] = -1;
		if (!t || !th || !started) {	/* out of memory: one after the other */
			teardown_one(&one);
			continue;
		}
		t[i] = one;
		if (one.link || one.fd >= 0)
			started[i] = !pthread_create(&th[i], NULL, teardown_thread, &t[i]);
		if (!started[i])
			teardown_one(&t[i]);
	}
	for (size_t i = 0; started && i < total; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	free(started);
	free(th);
	free(t);
}
