/* http_server_test.c: the epoll server of userspace/wire/http.c over real 127.0.0.1
 * sockets, driven from a thread with short timeouts: keep-alive and pipelining, HEAD,
 * a slow client dropped at its header deadline while others are served, the
 * connection limit, a stream reader that stops reading; over TLS (a web config), a
 * plain HTTP request answered 400 in plain text. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http.h"
#include "webconfig.h"

static struct ls_http_server *srv;
static pthread_t thr;
static volatile int stop_flag;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* held by the server thread per round */

static void handler(struct ls_http_conn *c, const struct ls_http_req *req, void *arg)
{
	(void)arg;
	if (!strcmp(req->path, "/stream")) {
		ls_http_stream(c, "application/x-ndjson");
		return;
	}
	if (strcmp(req->path, "/hello")) {
		ls_http_respond(c, 404, "text/plain", NULL, "nope\n", 5, 0);
		return;
	}
	if (req->method == LS_HTTP_OTHER) {
		ls_http_respond(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "no\n", 3, 0);
		return;
	}
	ls_http_respond(c, 200, "text/plain", NULL, "hello world\n", 12, 1);
}

static void *server_main(void *arg)
{
	(void)arg;
	while (!stop_flag) {
		pthread_mutex_lock(&lock);
		ls_http_poll(srv, 20);
		pthread_mutex_unlock(&lock);
		usleep(1000);
	}
	return NULL;
}

static int start(void **state, int max_conns)
{
	struct ls_http_opts o = { .max_conns = max_conns, .header_timeout_ms = 400, .idle_timeout_ms = 2000,
				  .write_timeout_ms = 1000, .max_out = 64 * 1024 };
	char err[256];

	(void)state;
	stop_flag = 0;
	assert_int_equal(ls_http_new("127.0.0.1:0", &o, handler, NULL, &srv, err, sizeof(err)), 0);
	assert_true(ls_http_port(srv) > 0);
	assert_int_equal(pthread_create(&thr, NULL, server_main, NULL), 0);
	return 0;
}

static int setup(void **state) { return start(state, 8); }

static int teardown(void **state)
{
	(void)state;
	stop_flag = 1;
	pthread_join(thr, NULL);
	ls_http_free(srv);
	srv = NULL;
	return 0;
}

static int connect_srv(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)ls_http_port(srv)) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Read until the peer closes or `want` bytes of text containing `until` arrived. */
static size_t recv_until(int fd, char *buf, size_t cap, const char *until)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = 0;
		if (until && strstr(buf, until))
			break;
	}
	buf[n] = 0;
	return n;
}

static int count(const char *hay, const char *needle)
{
	int c = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		c++;
	return c;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_keepalive_pipelining_head(void **state)
{
	char buf[8192];
	int fd = connect_srv();

	(void)state;
	/* Three pipelined requests on one connection, answered in order. */
	send_all(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
		     "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
		     "POST /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	recv_until(fd, buf, sizeof(buf), "no\n");
	assert_int_equal(count(buf, "HTTP/1.1 200 OK"), 2);
	assert_int_equal(count(buf, "Content-Length: 12"), 2);
	assert_int_equal(count(buf, "hello world"), 1);	/* HEAD: head only */
	assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed"));
	assert_non_null(strstr(buf, "Allow: GET, HEAD"));
	/* Still open after all that: keep-alive. */
	send_all(fd, "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	recv_until(fd, buf, sizeof(buf), NULL);
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found"));
	assert_non_null(strstr(buf, "Connection: close"));
	close(fd);
}

static void test_malformed_closes(void **state)
{
	char buf[4096];
	int fd = connect_srv();

	(void)state;
	send_all(fd, "BLAH\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	recv_until(fd, buf, sizeof(buf), NULL);	/* returns at close */
	assert_true(!strncmp(buf, "HTTP/1.1 400 Bad Request", 24));
	assert_null(strstr(buf, "hello world"));	/* nothing after a 400 is trusted */
	close(fd);
}

static void test_gzip(void **state)
{
	char buf[4096];
	int fd = connect_srv();

	(void)state;
	send_all(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
	recv_until(fd, buf, sizeof(buf), NULL);
	assert_non_null(strstr(buf, "Content-Encoding: gzip"));
	close(fd);
}

/* A client sending one byte at a time never gets past its header deadline, and the
 * server answers others meanwhile. */
static void test_slow_client(void **state)
{
	const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[4096];
	int slow = connect_srv(), closed = 0;
	double t0 = now_s();

	(void)state;
	for (int i = 0; i < 20 && !closed; i++) {
		int fast = connect_srv();
		double t1 = now_s();
		char one = req[i];

		send_all(fast, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
		recv_until(fast, buf, sizeof(buf), NULL);
		assert_non_null(strstr(buf, "hello world"));
		assert_true(now_s() - t1 < 0.2);	/* not held up by the slow one */
		close(fast);
		if (send(slow, &one, 1, MSG_NOSIGNAL) != 1)
			closed = 1;
		else {
			struct pollfd p = { .fd = slow, .events = POLLIN };
			if (poll(&p, 1, 100) == 1 && recv(slow, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
				closed = 1;
		}
	}
	assert_true(closed);
	/* Dropped at about the 400 ms header timeout, not at the end of its request. */
	assert_true(now_s() - t0 < 1.5);
	close(slow);
}

/* At the connection limit idle connections make room: 12 idle ones against a limit
 * of 8, then a request still gets its answer; the oldest idle ones (idle longer than
 * the eviction grace) were told 503 and closed, never reset. */
static void test_connection_limit(void **state)
{
	int fds[12], extra, told = 0;
	char buf[1024];
	struct ls_http_stats st;

	(void)state;
	for (int i = 0; i < 12; i++) {
		fds[i] = connect_srv();
		usleep(5000);	/* distinct last-I/O times: the oldest go first */
		if (i == 7 || i == 11)
			usleep(150000);	/* past the eviction grace */
	}
	extra = connect_srv();
	send_all(extra, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	recv_until(extra, buf, sizeof(buf), NULL);
	assert_non_null(strstr(buf, "hello world"));
	close(extra);
	for (int i = 0; i < 12; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 0) == 1) {
			n = recv(fds[i], buf, sizeof(buf) - 1, MSG_DONTWAIT);
			assert_true(n > 0);	/* not a reset, not a bare close */
			buf[n] = 0;
			assert_non_null(strstr(buf, "HTTP/1.1 503"));
			assert_non_null(strstr(buf, "Retry-After"));
			told++;
			assert_true(i < 5);	/* evicted: the oldest five */
		}
		close(fds[i]);
	}
	assert_int_equal(told, 5);
	pthread_mutex_lock(&lock);
	ls_http_get_stats(srv, &st);
	pthread_mutex_unlock(&lock);
	assert_int_equal(st.evicted, 5);
	assert_int_equal(st.rejected_busy, 0);
}

/* When every connection is busy (streams), the newcomer gets a 503 it can read,
 * and the server recovers once they close. */
static void test_connection_limit_busy(void **state)
{
	int fds[8], extra;
	char buf[1024];

	(void)state;
	for (int i = 0; i < 8; i++) {
		fds[i] = connect_srv();
		send_all(fds[i], "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
		recv_until(fds[i], buf, sizeof(buf), "\r\n\r\n");
	}
	extra = connect_srv();
	/* A request already sent: a plain close would reset the connection and lose the 503. */
	send_all(extra, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	usleep(100000);
	recv_until(extra, buf, sizeof(buf), "clients");
	assert_true(!strncmp(buf, "HTTP/1.1 503", 12));
	assert_non_null(strstr(buf, "503 too many clients"));
	close(extra);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	usleep(100000);
	extra = connect_srv();
	send_all(extra, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	recv_until(extra, buf, sizeof(buf), NULL);
	assert_non_null(strstr(buf, "hello world"));
	close(extra);
}

/* Streams: broadcast reaches readers; a reader that stops reading first misses
 * droppable messages, then is cut at max_out, and never blocks the others. */
static void test_stream_backpressure(void **state)
{
	char buf[65536], msg[4096];
	int good = connect_srv(), stuck = connect_srv();
	struct ls_http_stats st;
	size_t got = 0;

	(void)state;
	send_all(good, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	send_all(stuck, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	recv_until(good, buf, sizeof(buf), "\r\n\r\n");
	assert_non_null(strstr(buf, "application/x-ndjson"));
	assert_null(strstr(buf, "Content-Length"));
	usleep(50000);
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\n';
	for (int i = 0; i < 3000; i++) {
		pthread_mutex_lock(&lock);
		ls_http_broadcast(srv, msg, sizeof(msg), i % 2, 16 * 1024);
		pthread_mutex_unlock(&lock);
		/* The good reader keeps up. */
		while (1) {
			ssize_t k = recv(good, buf, sizeof(buf), MSG_DONTWAIT);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
	}
	usleep(100000);
	for (ssize_t k; (k = recv(good, buf, sizeof(buf), MSG_DONTWAIT)) > 0;)
		got += (size_t)k;
	pthread_mutex_lock(&lock);
	ls_http_get_stats(srv, &st);
	pthread_mutex_unlock(&lock);
	assert_true(st.stream_drops > 0);
	assert_int_equal(ls_http_nstreams(srv), 1);	/* the stuck one was cut */
	assert_true(got >= 2000 * sizeof(msg));	/* the good one got (nearly) everything */
	close(good);
	close(stuck);
}

/* ---- TLS (serve --web.config.file): a self-signed certificate made by openssl(1) */

static struct ls_webconfig tls_wc;
static char tls_dir[64];

static int setup_tls(void **state)
{
	struct ls_http_opts o = { .max_conns = 8, .header_timeout_ms = 2000, .idle_timeout_ms = 2000,
				  .write_timeout_ms = 1000, .max_out = 64 * 1024, .web = &tls_wc };
	char cmd[512], err[256];

	(void)state;
	snprintf(tls_dir, sizeof(tls_dir), "/tmp/ls-http-tls-XXXXXX");
	if (!mkdtemp(tls_dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-subj /CN=127.0.0.1 -days 2 -keyout %s/s.key -out %s/s.crt >/dev/null 2>&1", tls_dir, tls_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "openssl req failed: no openssl(1)?\n");
		return -1;
	}
	memset(&tls_wc, 0, sizeof(tls_wc));
	tls_wc.tls = 1;
	snprintf(tls_wc.cert_file, sizeof(tls_wc.cert_file), "%s/s.crt", tls_dir);
	snprintf(tls_wc.key_file, sizeof(tls_wc.key_file), "%s/s.key", tls_dir);
	stop_flag = 0;
	assert_int_equal(ls_http_new("127.0.0.1:0", &o, handler, NULL, &srv, err, sizeof(err)), 0);
	assert_int_equal(pthread_create(&thr, NULL, server_main, NULL), 0);
	return 0;
}

static int teardown_tls(void **state)
{
	char path[128];

	teardown(state);
	snprintf(path, sizeof(path), "%s/s.key", tls_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/s.crt", tls_dir);
	unlink(path);
	rmdir(tls_dir);
	return 0;
}

/* Plain HTTP to the TLS port reads a whole 400 that says so, as from Go's net/http,
 * then the server's close (EOF, not a reset); the request is not served. A TLS client
 * on the same server is served as before, also when its first byte comes late. */
static void test_tls_plain_http(void **state)
{
	static const char *reqs[] = {
		"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	};
	struct ls_http_stats st;
	char buf[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		int fd = connect_srv();
		size_t n;
		ssize_t k;

		send_all(fd, reqs[i]);
		n = recv_until(fd, buf, sizeof(buf), "server.\n");
		if (n < 24 || strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26))
			fail_msg("request %zu: %zu bytes, not a 400 (%s): \"%.60s\"", i, n,
				 n ? "" : strerror(errno), buf);
		assert_non_null(strstr(buf, "\r\nConnection: close\r\n"));
		assert_non_null(strstr(buf, "\r\nContent-Length: 48\r\n"));
		assert_non_null(strstr(buf, "\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"));
		assert_null(strstr(buf, "hello world"));
		shutdown(fd, SHUT_WR);
		k = recv(fd, buf, sizeof(buf), 0);
		if (k != 0)
			fail_msg("request %zu: after the 400, recv %zd (%s), want EOF", i, k, k < 0 ? strerror(errno) : "data");
		close(fd);
	}
	pthread_mutex_lock(&lock);
	ls_http_get_stats(srv, &st);
	pthread_mutex_unlock(&lock);
	assert_int_equal(st.requests, 0);
	assert_int_equal(st.bad_requests, 2);

	/* TLS still works, also with the ClientHello sent after a pause */
	for (int late = 0; late < 2; late++) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		SSL *ssl;
		int fd = connect_srv(), n = 0, k;

		assert_non_null(ctx);
		if (late)
			usleep(100000);
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_connect(ssl) != 1)
			fail_msg("TLS handshake failed (late %d)", late);
		k = SSL_write(ssl, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 51);
		assert_int_equal(k, 51);
		while ((k = SSL_read(ssl, buf + n, (int)sizeof(buf) - 1 - n)) > 0)
			n += k;
		buf[n] = 0;
		assert_true(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17));
		assert_non_null(strstr(buf, "hello world"));
		SSL_free(ssl);
		SSL_CTX_free(ctx);
		close(fd);
	}
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keepalive_pipelining_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_plain_http, setup_tls, teardown_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
