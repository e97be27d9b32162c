/* pool.c: a small per-loop thread pool (uv_queue_work). Work runs on a pool thread;
 * its completion is handed back through an eventfd the loop watches, so the after
 * callback runs on the loop thread in the poll phase. */
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lsl_internal.h"

#define POOL_THREADS 4

enum { WORK_QUEUED = 1, WORK_DONE = 2 };

struct lsl__pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	lsl_work_t *todo_head, *todo_tail;	/* FIFO */
	lsl_work_t *done;			/* LIFO, reversed on delivery */
	int stop;
	int efd;
	lsl_io_t io;				/* internal watcher: not a handle, never refs */
	pthread_t threads[POOL_THREADS];
	int nthreads;
};

static void *worker(void *arg)
{
	struct lsl__pool *p = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		lsl_work_t *w;

		while (!p->todo_head && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->todo_head)
			break;		/* stop, and nothing left to do */
		w = p->todo_head;
		p->todo_head = w->next;
		if (!p->todo_head)
			p->todo_tail = NULL;
		pthread_mutex_unlock(&p->mu);
		w->work(w);
		pthread_mutex_lock(&p->mu);
		w->state = WORK_DONE;
		w->next = p->done;
		p->done = w;
		if (write(p->efd, &one, sizeof(one)) < 0) {
			/* eventfd counter saturated: the loop reads it soon anyway */
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pool_io_cb(lsl_io_t *io, int events)
{
	struct lsl__pool *p = container_of(io, struct lsl__pool, io);
	lsl_loop_t *loop = io->h.loop;
	lsl_work_t *list, *rev = NULL, *w;
	uint64_t n;

	if (read(p->efd, &n, sizeof(n)) < 0) {
		/* EAGAIN: a spurious wake-up; the list below is the truth */
	}
	pthread_mutex_lock(&p->mu);
	list = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->mu);
	while (list) {		/* completion order */
		w = list;
		list = w->next;
		w->next = rev;
		rev = w;
	}
	while ((w = rev)) {
		rev = w->next;
		w->next = NULL;
		w->state = 0;
		loop->active_reqs--;
		w->after(w, 0);
		LSL__DRAIN(loop);
	}
}

static int pool_start(lsl_loop_t *loop)
{
	struct lsl__pool *p = calloc(1, sizeof(*p));
	int err, i;

	if (!p)
		return -ENOMEM;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0) {
		err = -errno;
		free(p);
		return err;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	lsl__io_init_internal(loop, &p->io, p->efd, NULL);
	err = lsl__io_set(&p->io, LSL_READABLE, pool_io_cb);
	if (err)
		goto cleanup;
	for (i = 0; i < POOL_THREADS; i++) {
		err = -pthread_create(&p->threads[i], NULL, worker, p);
		if (err)
			break;
		p->nthreads++;
	}
	if (!p->nthreads)
		goto cleanup;
	loop->pool = p;
	return 0;
cleanup:
	lsl__io_forget(&p->io);
	close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	return err;
}

int lsl_queue_work(lsl_loop_t *loop, lsl_work_t *w, lsl_work_cb work, lsl_after_work_cb after)
{
	struct lsl__pool *p;
	int err;

	if (!loop || !w || !work || !after)
		return -EINVAL;
	if (w->state == WORK_QUEUED && w->loop == loop)
		return -EBUSY;	/* still queued or running */
	if (!loop->pool && (err = pool_start(loop)) != 0)
		return err;
	p = loop->pool;
	w->loop = loop;
	w->work = work;
	w->after = after;
	w->next = NULL;
	w->state = WORK_QUEUED;
	loop->active_reqs++;
	pthread_mutex_lock(&p->mu);
	if (p->todo_tail)
		p->todo_tail->next = w;
	else
		p->todo_head = w;
	p->todo_tail = w;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* Called by lsl_loop_close, which has checked that no work is outstanding. */
void lsl__pool_destroy(lsl_loop_t *loop)
{
	struct lsl__pool *p = loop->pool;
	int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	lsl__io_forget(&p->io);
	close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	loop->pool = NULL;
}
