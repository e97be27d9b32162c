/* loop_io_test.c: TCP on 127.0.0.1 (echo round trip, refused connect, close with
 * writes in flight) and the thread pool (completions on the loop thread, in poll). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lsl.h"

static lsl_loop_t *new_loop(void)
{
	lsl_loop_t *loop = NULL;

	assert_int_equal(lsl_loop_new(&loop), 0);
	return loop;
}

/* ------------------------------------------------------------ echo */

static struct {
	lsl_tcp_t server, conn, client;
	char got[256];
	size_t ngot;
	int writes_done, server_eof, client_closed, conn_closed, server_closed;
	uint64_t msg_bytes;
} e;

static void conn_closed_cb(lsl_handle_t *h) { e.conn_closed = 1; }
static void client_closed_cb(lsl_handle_t *h) { e.client_closed = 1; }
static void server_closed_cb(lsl_handle_t *h) { e.server_closed = 1; }

static void echo_read(lsl_tcp_t *tcp, ssize_t n, const char *buf)
{
	if (n == LSL_EOF) {
		e.server_eof = 1;
		assert_int_equal(lsl_close(&tcp->h, conn_closed_cb), 0);
		assert_int_equal(lsl_close(&e.server.h, server_closed_cb), 0);
		return;
	}
	assert_true(n > 0);
	assert_int_equal(lsl_tcp_write(tcp, buf, (size_t)n, NULL, NULL), 0);
}

static void on_conn(lsl_tcp_t *server, int status)
{
	assert_int_equal(status, 0);
	assert_int_equal(lsl_tcp_init(server->h.loop, &e.conn), 0);
	assert_int_equal(lsl_tcp_accept(server, &e.conn), 0);
	assert_int_equal(lsl_tcp_accept(server, &e.conn), -EISCONN);
	assert_int_equal(lsl_tcp_read_start(&e.conn, echo_read), 0);
}

static void write_done(lsl_tcp_t *tcp, int status, void *arg)
{
	assert_int_equal(status, 0);
	assert_ptr_equal(arg, &e);
	/* A small write completes at once; its callback is deferred to the pending
	 * phase of the next iteration, never run from inside lsl_tcp_write. */
	assert_int_equal(lsl_probe_record(tcp->h.loop)->live_phase, LSL_PROBE_PENDING);
	e.writes_done++;
}

static void client_read(lsl_tcp_t *tcp, ssize_t n, const char *buf)
{
	assert_true(n > 0);
	memcpy(e.got + e.ngot, buf, (size_t)n);
	e.ngot += (size_t)n;
	if (e.ngot == strlen("hello, loop") * 2)
		assert_int_equal(lsl_close(&tcp->h, client_closed_cb), 0);	/* server sees EOF */
}

static void on_connect(lsl_tcp_t *tcp, int status)
{
	assert_int_equal(status, 0);
	assert_int_equal(lsl_tcp_read_start(tcp, client_read), 0);
	assert_int_equal(lsl_tcp_write(tcp, "hello, ", 7, write_done, &e), 0);
	assert_int_equal(lsl_tcp_write(tcp, "loophello, loop", 15, write_done, &e), 0);
}

static void test_tcp_echo_round_trip(void **state)
{
	lsl_loop_t *loop = new_loop();
	int port;

	memset(&e, 0, sizeof(e));
	assert_int_equal(lsl_accounting_start(loop), 0);	/* fills the record's live phase */
	assert_int_equal(lsl_tcp_init(loop, &e.server), 0);
	assert_int_equal(lsl_tcp_port(&e.server), -ENOTCONN);
	assert_int_equal(lsl_tcp_listen(&e.server, "127.0.0.1", 0, 16, on_conn), 0);
	port = lsl_tcp_port(&e.server);
	assert_true(port > 0);
	assert_int_equal(lsl_tcp_init(loop, &e.client), 0);
	assert_int_equal(lsl_tcp_write(&e.client, "x", 1, NULL, NULL), -ENOTCONN);
	assert_int_equal(lsl_tcp_connect(&e.client, "127.0.0.1", (uint16_t)port, on_connect), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(e.ngot, 22);
	assert_memory_equal(e.got, "hello, loophello, loop", 22);
	assert_int_equal(e.writes_done, 2);
	assert_true(e.server_eof && e.conn_closed && e.client_closed && e.server_closed);
	assert_int_equal(lsl_loop_close(loop), 0);
}

static void read_noop(lsl_tcp_t *tcp, ssize_t n, const char *buf) { fail_msg("no read expected"); }

static int refused_status = 1;
static void refused_cb(lsl_tcp_t *tcp, int status)
{
	refused_status = status;
	lsl_close(&tcp->h, NULL);
}

static void test_tcp_connect_refused_and_bad_address(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_tcp_t probe, c;
	int port;

	/* A port that was just free: listen on 0, read it, close it. */
	assert_int_equal(lsl_tcp_init(loop, &probe), 0);
	assert_int_equal(lsl_tcp_listen(&probe, "127.0.0.1", 0, 1, (lsl_connection_cb)refused_cb), 0);
	port = lsl_tcp_port(&probe);
	lsl_close(&probe.h, NULL);
	assert_int_equal(lsl_run(loop), 0);

	assert_int_equal(lsl_tcp_init(loop, &c), 0);
	assert_int_equal(lsl_tcp_connect(&c, "not-an-ip", 80, refused_cb), -EINVAL);
	assert_int_equal(lsl_tcp_listen(&c, "127.0.0.1", 0, 0, (lsl_connection_cb)refused_cb), -EINVAL);
	assert_int_equal(lsl_tcp_read_start(&c, NULL), -EINVAL);
	assert_int_equal(lsl_tcp_read_start(&c, read_noop), -ENOTCONN);
	assert_int_equal(lsl_tcp_connect(&c, "127.0.0.1", (uint16_t)port, refused_cb), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(refused_status, -ECONNREFUSED);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Closing a handle with writes queued: their callbacks run (cancelled or done)
 * before the close callback, and nothing leaks. */
static int cancel_seen, done_seen, closed_after;
static lsl_tcp_t big_server, big_conn, big_client;

static void big_write_cb(lsl_tcp_t *tcp, int status, void *arg)
{
	assert_false(closed_after);
	if (status == -ECANCELED)
		cancel_seen++;
	else if (status == 0)
		done_seen++;
	else
		fail_msg("unexpected write status %d", status);
}

static void big_closed(lsl_handle_t *h) { closed_after = 1; }

static void big_on_conn(lsl_tcp_t *server, int status)
{
	/* Accept and never read: the client's socket buffer fills up. */
	assert_int_equal(lsl_tcp_init(server->h.loop, &big_conn), 0);
	assert_int_equal(lsl_tcp_accept(server, &big_conn), 0);
}

static void big_on_connect(lsl_tcp_t *tcp, int status)
{
	static char chunk[1 << 20];
	int i;

	assert_int_equal(status, 0);
	for (i = 0; i < 16; i++)
		assert_int_equal(lsl_tcp_write(tcp, chunk, sizeof(chunk), big_write_cb, NULL), 0);
	assert_true(lsl_tcp_write_queue_size(tcp) > 0);
	lsl_close(&tcp->h, big_closed);
	lsl_close(&big_conn.h, NULL);
	lsl_close(&big_server.h, NULL);
}

static void test_tcp_close_with_queued_writes(void **state)
{
	lsl_loop_t *loop = new_loop();
	int port;

	assert_int_equal(lsl_tcp_init(loop, &big_server), 0);
	assert_int_equal(lsl_tcp_listen(&big_server, "127.0.0.1", 0, 4, big_on_conn), 0);
	port = lsl_tcp_port(&big_server);
	assert_int_equal(lsl_tcp_init(loop, &big_client), 0);
	assert_int_equal(lsl_tcp_connect(&big_client, "127.0.0.1", (uint16_t)port, big_on_connect), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(cancel_seen + done_seen, 16);
	assert_true(cancel_seen > 0);
	assert_true(closed_after);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* Writing to a peer that closed: an error status in the write callback (no SIGPIPE,
 * no crash), after which the handle closes normally. */
static lsl_tcp_t gone_server, gone_conn, gone_client;
static int gone_status, gone_writes;

static void gone_on_conn(lsl_tcp_t *server, int status)
{
	assert_int_equal(lsl_tcp_init(server->h.loop, &gone_conn), 0);
	assert_int_equal(lsl_tcp_accept(server, &gone_conn), 0);
	lsl_close(&gone_conn.h, NULL);		/* hang up at once */
	lsl_close(&server->h, NULL);
}

static void gone_write_cb(lsl_tcp_t *tcp, int status, void *arg)
{
	gone_writes++;
	if (status == 0 && gone_writes < 2000) {
		usleep(200);
		assert_int_equal(lsl_tcp_write(tcp, "ping", 4, gone_write_cb, NULL), 0);
		return;
	}
	gone_status = status;
	lsl_close(&tcp->h, NULL);
}

static void gone_on_connect(lsl_tcp_t *tcp, int status)
{
	assert_int_equal(status, 0);
	assert_int_equal(lsl_tcp_write(tcp, "ping", 4, gone_write_cb, NULL), 0);
}

static void test_tcp_write_to_closed_peer(void **state)
{
	lsl_loop_t *loop = new_loop();
	int port;

	gone_status = 0;
	gone_writes = 0;
	assert_int_equal(lsl_tcp_init(loop, &gone_server), 0);
	assert_int_equal(lsl_tcp_listen(&gone_server, "127.0.0.1", 0, 4, gone_on_conn), 0);
	port = lsl_tcp_port(&gone_server);
	assert_int_equal(lsl_tcp_init(loop, &gone_client), 0);
	assert_int_equal(lsl_tcp_connect(&gone_client, "127.0.0.1", (uint16_t)port, gone_on_connect), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_true(gone_status == -EPIPE || gone_status == -ECONNRESET);
	assert_true(gone_writes < 2000);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* ------------------------------------------------------------ thread pool */

static pthread_t loop_thread;
static int completed;
static uint64_t sums[8];
static lsl_work_t works[8];

static void do_sum(lsl_work_t *w)
{
	uint64_t i, s = 0, n = 100000 + (uint64_t)(w - works) * 1000;

	for (i = 0; i < n; i++)
		s += i;
	sums[w - works] = s;
	usleep(2000);
}

static void after_sum(lsl_work_t *w, int status)
{
	const struct lsl_probe_record *rec = lsl_probe_record(w->loop);
	uint64_t n = 100000 + (uint64_t)(w - works) * 1000;

	assert_int_equal(status, 0);
	assert_true(pthread_equal(pthread_self(), loop_thread));
	assert_int_equal(rec->live_phase, LSL_PROBE_POLL);	/* accounting is on */
	assert_int_equal(sums[w - works], n * (n - 1) / 2);
	completed++;
}

static void test_thread_pool_completion(void **state)
{
	lsl_loop_t *loop = new_loop();
	int i;

	loop_thread = pthread_self();
	completed = 0;
	memset(works, 0, sizeof(works));
	assert_int_equal(lsl_accounting_start(loop), 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(lsl_queue_work(loop, &works[i], do_sum, after_sum), 0);
	assert_int_equal(lsl_queue_work(loop, &works[0], do_sum, after_sum), -EBUSY);
	assert_int_equal(lsl_queue_work(loop, NULL, do_sum, after_sum), -EINVAL);
	assert_true(lsl_loop_alive(loop));
	assert_int_equal(lsl_loop_close(loop), -EBUSY);	/* work outstanding */
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(completed, 8);
	/* Reusable after completion. */
	assert_int_equal(lsl_queue_work(loop, &works[3], do_sum, after_sum), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(completed, 9);
	assert_int_equal(lsl_loop_close(loop), 0);
}

/* ------------------------------------------------------------ io watcher */

static int wfds[2], io_calls;

static void io_cb(lsl_io_t *io, int events)
{
	char b[8];

	assert_true(events & LSL_READABLE);
	assert_int_equal(read(wfds[0], b, sizeof(b)), 3);
	if (++io_calls == 2)
		lsl_close(&io->h, NULL);
	else
		assert_int_equal(write(wfds[1], "abc", 3), 3);
}

static void test_io_watcher(void **state)
{
	lsl_loop_t *loop = new_loop();
	lsl_io_t io;

	io_calls = 0;
	assert_int_equal(pipe(wfds), 0);
	assert_int_equal(write(wfds[1], "abc", 3), 3);
	assert_int_equal(lsl_io_init(loop, &io, wfds[0]), 0);
	assert_int_equal(lsl_io_start(&io, LSL_READABLE, io_cb), 0);
	assert_int_equal(lsl_run(loop), 0);
	assert_int_equal(io_calls, 2);
	assert_int_equal(lsl_loop_close(loop), 0);
	close(wfds[0]);
	close(wfds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_echo_round_trip),
		cmocka_unit_test(test_tcp_connect_refused_and_bad_address),
		cmocka_unit_test(test_tcp_close_with_queued_writes),
		cmocka_unit_test(test_tcp_write_to_closed_peer),
		cmocka_unit_test(test_thread_pool_completion),
		cmocka_unit_test(test_io_watcher),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
