/* handle.c: what every handle shares: validity checks, active/ref accounting
 * (libuv's uv__handle_start/stop), and close callbacks in the close phase. */
#include <stddef.h>

#include "lsl_internal.h"

void lsl__handle_init(lsl_loop_t *loop, lsl_handle_t *h, int type)
{
	h->loop = loop;
	h->close_cb = NULL;
	h->next_closing = NULL;
	h->magic = LSL__MAGIC;
	h->type = (uint16_t)type;
	h->flags = LSL__REF;
	lsl__queue_insert_tail(&loop->handles, &h->node);
	loop->open_handles++;
}

/* 0 if h is an open handle of this type (0 = any type), -EINVAL if it is not a handle,
 * -EBADFD if it is closing or closed. */
int lsl__handle_check(const lsl_handle_t *h, int type)
{
	if (!h)
		return -EINVAL;
	if (h->magic == LSL__MAGIC_CLOSED)
		return -EBADFD;
	if (h->magic != LSL__MAGIC || !h->loop || (type && h->type != type))
		return -EINVAL;
	if (h->flags & (LSL__CLOSING | LSL__CLOSED))
		return -EBADFD;
	return 0;
}

void lsl__handle_start(lsl_handle_t *h)
{
	if (h->flags & LSL__ACTIVE)
		return;
	h->flags |= LSL__ACTIVE;
	if (h->flags & LSL__REF)
		h->loop->active_handles++;
}

void lsl__handle_stop(lsl_handle_t *h)
{
	if (!(h->flags & LSL__ACTIVE))
		return;
	h->flags &= ~LSL__ACTIVE;
	if (h->flags & LSL__REF)
		h->loop->active_handles--;
}

int lsl_ref(lsl_handle_t *h)
{
	int err = lsl__handle_check(h, 0);

	if (err)
		return err;
	if (h->flags & LSL__REF)
		return 0;
	h->flags |= LSL__REF;
	if (h->flags & LSL__ACTIVE)
		h->loop->active_handles++;
	return 0;
}

int lsl_unref(lsl_handle_t *h)
{
	int err = lsl__handle_check(h, 0);

	if (err)
		return err;
	if (!(h->flags & LSL__REF))
		return 0;
	h->flags &= ~LSL__REF;
	if (h->flags & LSL__ACTIVE)
		h->loop->active_handles--;
	return 0;
}

int lsl_has_ref(const lsl_handle_t *h)
{
	return h && h->magic == LSL__MAGIC && (h->flags & LSL__REF) != 0;
}

int lsl_is_active(const lsl_handle_t *h)
{
	return h && h->magic == LSL__MAGIC && (h->flags & LSL__ACTIVE) != 0;
}

int lsl_is_closing(const lsl_handle_t *h)
{
	return h && (h->magic == LSL__MAGIC_CLOSED ||
		     (h->magic == LSL__MAGIC && (h->flags & (LSL__CLOSING | LSL__CLOSED))));
}

int lsl_close(lsl_handle_t *h, lsl_close_cb cb)
{
	lsl_loop_t *loop;

	if (!h)
		return -EINVAL;
	if (h->magic == LSL__MAGIC_CLOSED || (h->magic == LSL__MAGIC && (h->flags & LSL__CLOSING)))
		return -EALREADY;
	if (h->magic != LSL__MAGIC || !h->loop)
		return -EINVAL;
	loop = h->loop;
	switch (h->type) {
	case LSL__TIMER:
		lsl__timer_stop_internal((lsl_timer_t *)h);
		break;
	case LSL__IDLE:
	case LSL__PREPARE:
	case LSL__CHECK:
		lsl__watcher_stop_any(h);
		break;
	case LSL__IO:
		lsl__io_forget((lsl_io_t *)h);
		break;
	case LSL__TCP:
		lsl__tcp_close((lsl_tcp_t *)h);
		break;
	default:
		return -EINVAL;
	}
	lsl__handle_stop(h);
	h->flags |= LSL__CLOSING;
	h->close_cb = cb;
	h->next_closing = NULL;
	if (loop->closing_tail)
		loop->closing_tail->next_closing = h;
	else
		loop->closing_head = h;
	loop->closing_tail = h;
	return 0;
}

void lsl__run_closing(lsl_loop_t *loop, uint32_t *ncb)
{
	lsl_handle_t *h = loop->closing_head, *next;

	/* Handles closed by these callbacks wait for the next close phase. */
	loop->closing_head = loop->closing_tail = NULL;
	for (; h; h = next) {
		lsl_close_cb cb = h->close_cb;

		next = h->next_closing;
		if (h->type == LSL__TCP)
			lsl__tcp_finish_close((lsl_tcp_t *)h);	/* cancelled write callbacks first */
		h->flags = (uint16_t)((h->flags & ~LSL__CLOSING) | LSL__CLOSED);
		h->magic = LSL__MAGIC_CLOSED;
		lsl__queue_remove(&h->node);
		loop->open_handles--;
		/* h may be freed by cb: nothing touches it afterwards. */
		if (cb) {
			(*ncb)++;
			LSL__CALLBACK(loop, LSL_PROBE_CLOSE, cb, cb(h));
		}
	}
}
