/* nodeuv_stacks.c: the node probe set's stack samples (nodeuv_int.h; how and what
 * holds: stacks.md).
 *
 * A cpu-clock perf event on every CPU runs nu_sample (bpf/nodeuv.bpf.c), which sends
 * the raw stack of a loop thread in a long not-polling span to the samples ring. Here
 * each sample is named at once (unwind.h: kernel, native and JS frames, while the V8
 * objects it points to are where they were) and counted for its span; when the span
 * ends as an episode, its stacks become the episode's, and a stall whose samples were
 * mostly inside a drain becomes that drain's starvation. With profile on, every
 * sample also goes to the profile's callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "node.h"
#include "stack_raw.h"	/* struct ls_leaf, in the skeleton's .bss */
#include "nodeuv.skel.h"
#include "nodeuv_int.h"
#include "unwind.h"

#define SAMPLE_HZ 99
#define FAST_HZ 997		/* while a loop is in a long span: a 100 ms stall gets >= 20 */
_Static_assert(SAMPLE_HZ + FAST_HZ == LS_NODE_PROFILE_HZ, "profile rate");
#define MAX_FRAMES (LS_RAW_DEPTH + LS_RAW_KDEPTH + 1)
#define EPISODE_STACKS 5	/* stacks kept per episode */
#define SPAN_FULL 256		/* samples a span names one by one ... */
#define SPAN_DECIMATE 4		/* ... then one in this many */

/* What the samples said of loop tid; with create, a slot is taken for it. NULL when
 * there is none. */
static struct sampled_loop *sampled_loop(struct node_priv *p, uint32_t tid, int create)
{
	for (uint32_t i = 0; i < p->nsampled; i++)
		if (p->sampled[i].tid == tid)
			return &p->sampled[i];
	if (!create || p->nsampled == NU_MAX_LOOPS)
		return NULL;
	memset(&p->sampled[p->nsampled], 0, sizeof(p->sampled[0]));
	p->sampled[p->nsampled].tid = tid;
	return &p->sampled[p->nsampled++];
}

static void set_fast(struct node_priv *p, int on)
{
	if (p->fast_on == on)
		return;
	ls_sampler_enable(&p->fast, on);
	p->fast_on = on;
}

static void hot_set(struct node_priv *p, uint32_t tid, int hot)
{
	uint32_t i;

	for (i = 0; i < p->nhot && p->hot[i] != tid; i++)
		;
	if (hot && i == p->nhot && p->nhot < NU_MAX_LOOPS)
		p->hot[p->nhot++] = tid;
	else if (!hot && i < p->nhot)
		p->hot[i] = p->hot[--p->nhot];
	set_fast(p, p->nhot > 0 || p->profile == LS_PROFILE_ALL);
}

static struct span_acc *span_get(struct node_priv *p, uint32_t tid, uint64_t start, int create)
{
	return (struct span_acc *)ls_stack_span_get(p->spans, MAX_SPANS, sizeof(p->spans[0]), tid, start, create);
}

static void span_drop(struct span_acc *s)
{
	ls_stack_span_drop(&s->sp, sizeof(*s));
}

static int is_micro_drain(const struct ls_frame *f)
{
	return f->kind == LS_FRAME_NATIVE && (!strcmp(f->function, "v8::internal::MicrotaskQueue::RunMicrotasks") ||
					      !strcmp(f->function, "Builtins_RunMicrotasks"));
}

static int is_tick_drain(const struct ls_frame *f)
{
	return f->kind == LS_FRAME_JS && f->file && !strncmp(f->file, "node:internal/process/task_queues", 33) &&
	       (!strcmp(f->function, "processTicksAndRejections") || !strcmp(f->function, "runNextTicks"));
}

/* What a sample was inside: the microtask drain (V8's RunMicrotasks), Node's
 * nextTick drain (its JS processTicksAndRejections / runNextTicks), or neither. */
static int sample_cat(const struct ls_frame *f, uint32_t n)
{
	int tick = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (is_micro_drain(&f[i]))
			return SPAN_MICRO;
		tick |= is_tick_drain(&f[i]);
	}
	return tick ? SPAN_TICK : SPAN_SYNC;
}

/* The callback a drain was running in a sample (ls_stack_group_fn): the JS frame
 * with a script nearest the leaf-most drain frame on its leaf side (the nextTick
 * callback, the promise reaction, the async function resumed; the builtins between
 * the drain and it have no script), or -1. */
static int32_t drain_callback(const struct ls_frame *f, uint32_t n)
{
	int32_t cb = -1;

	for (uint32_t i = 0; i < n; i++) {
		if (is_micro_drain(&f[i]) || is_tick_drain(&f[i]))
			return cb;
		if (f[i].kind == LS_FRAME_JS && f[i].file && f[i].function[0] != '[')
			cb = (int32_t)i;
	}
	return -1;
}

/* "fn (file:line)" for the leaf-most JS frame, else "[native] fn". */
static void describe_where(const struct ls_frame *f, uint32_t n, char *out, size_t len)
{
	out[0] = 0;
	for (uint32_t i = 0; i < n; i++)
		if (f[i].kind == LS_FRAME_JS) {
			if (f[i].file && f[i].line)
				snprintf(out, len, "%s (%s:%u)", f[i].function, f[i].file, f[i].line);
			else if (f[i].file)
				snprintf(out, len, "%s (%s)", f[i].function, f[i].file);
			else
				snprintf(out, len, "%s", f[i].function);
			return;
		}
	if (n)
		snprintf(out, len, "[native] %s", f[0].function);
}

static int on_sample(void *ctx, void *data, size_t len)
{
	struct node_priv *p = ctx;
	const struct ls_raw *r = data;
	struct span_acc *s;
	struct sampled_loop *x;
	uint32_t n, weight;
	int in_span;

	if (len < offsetof(struct ls_raw, pc))
		return 0;
	if (r->type == LS_RAW_HOT || r->type == LS_RAW_COOL) {
		hot_set(p, r->tid, r->type == LS_RAW_HOT);
		return 0;
	}
	if (r->type != LS_RAW_SAMPLE || !p->unw)
		return 0;
	in_span = r->span_start && r->time - r->span_start >= p->stall_ns / 4;
	s = in_span ? span_get(p, r->tid, r->span_start, 1) : NULL;
	/* A long span's samples past SPAN_FULL are kept one in SPAN_DECIMATE, each
	 * counting for that many: the shares stay fair and the cost of naming them
	 * stays bounded (an episode's end waits for its samples to be named). */
	if (s && ++s->seen > SPAN_FULL && s->seen % SPAN_DECIMATE && p->profile != LS_PROFILE_ALL)
		return 0;
	weight = s && s->seen > SPAN_FULL && p->profile != LS_PROFILE_ALL ? SPAN_DECIMATE : 1;
	/* now, while the objects its frames point to are where they were */
	n = ls_unwind(p->unw, r, len, p->fbuf, MAX_FRAMES);
	if (!n)
		return 0;
	if (p->profile == LS_PROFILE_ALL && p->on_stack)
		p->on_stack(p->stack_arg, p->pid, r->tid, p->fbuf, n);
	if (!s)
		return 0;	/* profile: not in a long span */
	if (!ls_stack_agg_add(s->sp.agg, p->fbuf, n, weight))
		s->cat[sample_cat(p->fbuf, n)] += weight;
	x = sampled_loop(p, r->tid, 1);
	if (x) {
		describe_where(p->fbuf, n, x->where, sizeof(x->where));
		x->where_ns = r->time;
		x->span = r->span_start;
	}
	return 0;
}

void nu__sampled_fill(struct node_priv *p, uint32_t tid, uint64_t open_span, struct ls_loop_snapshot *o)
{
	struct sampled_loop *x = sampled_loop(p, tid, 0);

	o->live_where[0] = 0;
	o->live_where_ns = 0;
	if (!x)
		return;
	o->stall_episodes += (uint64_t)x->stall;
	o->ticks.starvation_episodes += (uint64_t)x->tick;
	o->microtasks.starvation_episodes += (uint64_t)x->micro;
	/* only while the span it was taken in is still open */
	if (open_span && x->span == open_span) {
		snprintf(o->live_where, sizeof(o->live_where), "%s", x->where);
		o->live_where_ns = x->where_ns;
	}
}

/* A stall whose samples were mostly inside a drain is that drain's starvation (JS
 * frames see what the kernel's address ranges cannot: Node's nextTick drain is JS). */
void nu__episode_stacks(struct node_priv *p, struct ls_episode *ep)
{
	struct span_acc *s = span_get(p, ep->tid, ep->start_ns, 0);
	struct sampled_loop *x;
	uint64_t sy, t, m;

	if (!s)
		return;
	ep->samples = (uint32_t)ls_stack_agg_total(s->sp.agg);
	sy = s->cat[SPAN_SYNC];
	t = s->cat[SPAN_TICK];
	m = s->cat[SPAN_MICRO];
	if (ep->kind == LS_EP_STALL && (x = sampled_loop(p, ep->tid, 1))) {
		if (m && m >= t && m >= sy) {
			ep->kind = LS_EP_MICROTASK_STARVATION;
			x->stall--;
			x->micro++;
		} else if (t && t >= sy) {
			ep->kind = LS_EP_TICK_STARVATION;
			x->stall--;
			x->tick++;
		}
	}
	/* a starvation's stacks by the callback the drain kept running (a profile
	 * keeps every stack whole) */
	if (p->tab && p->profile == LS_PROFILE_STALLS)
		ep->stacks = ls_stack_agg_finish(s->sp.agg, p->tab, UINT32_MAX);
	else if (p->tab && (ep->kind == LS_EP_TICK_STARVATION || ep->kind == LS_EP_MICROTASK_STARVATION))
		ep->stacks = ls_stack_agg_finish_grouped(s->sp.agg, p->tab, EPISODE_STACKS, drain_callback);
	else if (p->tab)
		ep->stacks = ls_stack_agg_finish(s->sp.agg, p->tab, EPISODE_STACKS);
	span_drop(s);
	/* older spans of this loop ended without becoming episodes */
	for (size_t i = 0; i < MAX_SPANS; i++)
		if (p->spans[i].sp.agg && p->spans[i].sp.tid == ep->tid && p->spans[i].sp.start < ep->start_ns)
			span_drop(&p->spans[i]);
}

/* The stack sampler (sampler.h) at SAMPLE_HZ, running nu_sample, which returns at
 * once unless the interrupted thread is one of the target's loops in a stall (then
 * it takes the user stack), and a FAST_HZ set opened stopped. 0, or -errno when no
 * CPU's event could be opened and attached. */
int nu__sampler_open(struct node_priv *p)
{
	int r = ls_sampler_open(&p->slow, p->skel->progs.nu_sample, SAMPLE_HZ, 0);

	if (r)
		return r;
	/* the fast set, opened stopped: on_sample() turns it on while a span is hot
	 * (without it: SAMPLE_HZ only) */
	ls_sampler_open(&p->fast, p->skel->progs.nu_sample, FAST_HZ, 1);
	return 0;
}

/* Counters tier: only the FAST_HZ set, running nu_ct_sample, opened stopped;
 * nu__ct_arm() turns it on while the main loop's clock has stopped. */
int nu__ct_sampler_open(struct node_priv *p)
{
	return ls_sampler_open(&p->fast, p->skel->progs.nu_ct_sample, FAST_HZ, 1);
}

void nu__ct_arm(struct node_priv *p, uint32_t tid, uint64_t span)
{
	if (!p->skel || !p->rbs)
		return;
	/* the span first: nu_ct_sample reads both, and a stale tid with the new span
	 * only makes it return */
	p->skel->bss->ct_span = span;
	p->skel->bss->ct_tid = tid;
	set_fast(p, span != 0);
}

int nu__samples_open(struct node_priv *p)
{
	struct epoll_event ev = { .events = EPOLLIN };

	/* the counters tier has no episodes ring: its timerfd wakes the agent, and each
	 * tick reads the samples ring first */
	if (p->rb) {
		p->wake_fd = epoll_create1(EPOLL_CLOEXEC);
		if (p->wake_fd < 0)
			return -errno;
		ev.data.u32 = 0;
		if (epoll_ctl(p->wake_fd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(p->rb), &ev))
			return -errno;
	}
	p->tab = ls_stacks_table();
	p->fbuf = calloc(MAX_FRAMES, sizeof(*p->fbuf));
	if (!p->tab || !p->fbuf)
		return -ENOMEM;
	if (ls_unwinder_new(p->pid, p->plan.runtime == LS_RT_NODE ? p->plan.path : NULL, p->plan.bias, p->tab,
			    &p->unw))
		return -ENOMEM;
	ls_unwinder_set_leaves(p->unw, p->skel->bss->leaves);
	p->rbs = ring_buffer__new(bpf_map__fd(p->skel->maps.samples), on_sample, p, NULL);
	if (!p->rbs)
		return -errno;
	ev.data.u32 = 1;
	if (p->wake_fd >= 0 && epoll_ctl(p->wake_fd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(p->rbs), &ev))
		return -errno;
	p->skel->bss->raw_on = 1;
	if (p->profile == LS_PROFILE_ALL) {
		p->skel->bss->raw_all = 1;
		set_fast(p, 1);
	}
	return 0;
}

void nu__samples_close(struct node_priv *p)
{
	ls_sampler_close(&p->slow);
	ls_sampler_close(&p->fast);
	p->fast_on = 0;
	for (size_t i = 0; i < MAX_SPANS; i++) {
		ls_stack_agg_free(p->spans[i].sp.agg);
		p->spans[i].sp.agg = NULL;
	}
	ls_unwinder_free(p->unw);
	p->unw = NULL;
	free(p->fbuf);
	p->fbuf = NULL;
	ring_buffer__free(p->rbs);
	p->rbs = NULL;
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	p->wake_fd = -1;
}

void nu__samples_consume(struct node_priv *p)
{
	if (p->rbs)
		ring_buffer__consume(p->rbs);
}
