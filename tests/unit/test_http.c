/* Unit tests of api/http.c: a real libuv loop, a Unix socket in a temp dir,
 * and a blocking client socket in the same thread driving the loop. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"

struct fixture {
	uv_loop_t loop;
	uv_pipe_t listener;
	struct http_server s;
	char dir[64];
	char path[128];
	int client;
	unsigned requests;
};

/* Echo handler: the body says what was parsed. */
static void on_request(struct http_conn *conn, struct http_request *req)
{
	struct fixture *f = http_conn_server(conn)->data;
	const char *te = http_request_header(req, "X-Test");
	char body[512];
	int n;

	f->requests++;
	n = snprintf(body, sizeof body, "%s %s q=%s len=%zu body=%.32s x=%s",
		     http_method_str(req->method), req->path, req->query,
		     req->body_len, req->body, te != NULL ? te : "-");
	http_conn_respond(conn, 200, NULL, "text/plain", body, (size_t)n,
			  false);
}

static void connection_cb(uv_stream_t *listener, int status)
{
	struct fixture *f = listener->data;

	assert_int_equal(status, 0);
	assert_int_equal(http_server_accept(&f->s, listener, NULL, NULL), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/corral-test-http-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/s", f->dir);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	http_server_init(&f->s, &f->loop, on_request);
	f->s.data = f;
	f->s.max_body = 1024;
	assert_int_equal(uv_pipe_init(&f->loop, &f->listener, 0), 0);
	f->listener.data = f;
	assert_int_equal(uv_pipe_bind(&f->listener, f->path), 0);
	assert_int_equal(
	    uv_listen((uv_stream_t *)&f->listener, 16, connection_cb), 0);
	f->client = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->client >= 0);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	assert_int_equal(
	    connect(f->client, (struct sockaddr *)&sun, sizeof sun), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->client >= 0) {
		close(f->client);
	}
	http_server_close_all(&f->s);
	uv_close((uv_handle_t *)&f->listener, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	/* Every handle closed: no leak of connections or timers. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	assert_int_equal(f->s.n_conns, 0);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void send_all(struct fixture *f, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(f->client, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			uv_run(&f->loop, UV_RUN_NOWAIT);
			continue;
		}
		if (n < 0) {
			return; /* the server may have closed: tests check */
		}
		data += n;
		len -= (size_t)n;
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
}

static void send_str(struct fixture *f, const char *s)
{
	send_all(f, s, strlen(s));
}

/* Count the complete responses in @buf. */
static unsigned count_responses(const char *buf, size_t len)
{
	unsigned n = 0;
	const char *p = buf;
	const char *end = buf + len;

	for (;;) {
		const char *head_end =
		    memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		const char *cl;
		size_t body;

		if (head_end == NULL) {
			return n;
		}
		cl = strstr(p, "Content-Length: ");
		if (cl == NULL || cl > head_end) {
			return n;
		}
		body = strtoul(cl + 16, NULL, 10);
		if ((size_t)(end - (head_end + 4)) < body) {
			return n;
		}
		n++;
		p = head_end + 4 + body;
	}
}

/* Drive the loop until @want responses arrived or the peer closed. The
 * result is NUL-terminated and static. */
static const char *recv_responses(struct fixture *f,
				  unsigned want,
				  bool *closed)
{
	static char buf[65536];
	size_t len = 0;
	int i;

	*closed = false;
	for (i = 0; i < 20000; i++) {
		ssize_t n;

		uv_run(&f->loop, UV_RUN_NOWAIT);
		n = recv(f->client, buf + len, sizeof buf - 1 - len,
			 MSG_DONTWAIT);
		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
			if (want > 0 && count_responses(buf, len) >= want) {
				break;
			}
			continue;
		}
		if (n == 0) {
			*closed = true;
			break;
		}
		if (errno == ECONNRESET) {
			*closed = true;
			break;
		}
		usleep(100);
	}
	buf[len] = '\0';
	return buf;
}

static void test_simple_get(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	send_str(f,
		 "GET /1.0?project=a%20b HTTP/1.1\r\nHost: x\r\n"
		 "X-Test: yes\r\n\r\n");
	r = recv_responses(f, 1, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "GET /1.0 q=project=a%20b len=0"));
	assert_non_null(strstr(r, "x=yes"));
	assert_null(strstr(r, "Connection: close"));
}

static void test_split_reads(void **state)
{
	struct fixture *f = *state;
	const char *req =
	    "POST /1.0/profiles HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 5\r\n\r\nhello";
	bool closed;
	const char *r;
	size_t i;

	for (i = 0; i < strlen(req); i++) {
		send_all(f, req + i, 1);
	}
	r = recv_responses(f, 1, &closed);
	assert_non_null(strstr(r, "POST /1.0/profiles q= len=5 body=hello"));
}

static void test_pipelining(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;
	const char *a;
	const char *b;
	const char *c;

	send_str(f,
		 "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
		 "PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
		 "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
	r = recv_responses(f, 3, &closed);
	a = strstr(r, "GET /a ");
	b = strstr(r, "PUT /b q= len=2 body=hi");
	c = strstr(r, "GET /c ");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	/* In request order. */
	assert_true(a < b && b < c);
	assert_int_equal(f->requests, 3);
}

static void test_chunked_body(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	send_str(f,
		 "POST /x HTTP/1.1\r\nHost: x\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n"
		 "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
	r = recv_responses(f, 1, &closed);
	assert_non_null(strstr(r, "len=7 body=abcdefg"));
}

static void test_keep_alive_then_close(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	send_str(f, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
	r = recv_responses(f, 1, &closed);
	assert_non_null(strstr(r, "GET /one"));
	assert_false(closed);
	send_str(f,
		 "GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "GET /two"));
	assert_non_null(strstr(r, "Connection: close"));
	assert_true(closed);
}

static void test_body_too_large_content_length(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	send_str(f,
		 "POST /x HTTP/1.1\r\nHost: x\r\n"
		 "Content-Length: 1025\r\n\r\n");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 413 "));
	assert_non_null(strstr(r, "\"error_code\":413"));
	assert_true(closed);
	assert_int_equal(f->requests, 0);
}

static void test_body_too_large_chunked(void **state)
{
	struct fixture *f = *state;
	char chunk[600];
	char head[32];
	bool closed;
	const char *r;

	memset(chunk, 'a', sizeof chunk);
	send_str(f,
		 "POST /x HTTP/1.1\r\nHost: x\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n");
	snprintf(head, sizeof head, "%zx\r\n", sizeof chunk);
	send_str(f, head);
	send_all(f, chunk, sizeof chunk);
	send_str(f, "\r\n");
	send_str(f, head);
	send_all(f, chunk, sizeof chunk);
	send_str(f, "\r\n0\r\n\r\n");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 413 "));
	assert_int_equal(f->requests, 0);
}

static void test_head_too_large(void **state)
{
	struct fixture *f = *state;
	char *big = malloc(HTTP_HEAD_LIMIT + 100);
	bool closed;
	const char *r;

	memset(big, 'a', HTTP_HEAD_LIMIT + 99);
	big[HTTP_HEAD_LIMIT + 99] = '\0';
	send_str(f, "GET /x HTTP/1.1\r\nX-Big: ");
	send_str(f, big);
	send_str(f, "\r\n\r\n");
	free(big);
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 431 "));
	assert_int_equal(f->requests, 0);
}

static void test_too_many_headers(void **state)
{
	struct fixture *f = *state;
	char line[64];
	bool closed;
	const char *r;
	int i;

	send_str(f, "GET /x HTTP/1.1\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS + 1; i++) {
		snprintf(line, sizeof line, "X-H%d: v\r\n", i);
		send_str(f, line);
	}
	send_str(f, "\r\n");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 431 "));
}

static void test_malformed_request_line(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	send_str(f, "GARBAGE\x01 / HTTP/1.1\r\n\r\n");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 400 "));
	assert_non_null(strstr(r, "malformed request"));
	assert_true(closed);
	assert_int_equal(f->requests, 0);
}

static void test_bad_version(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	send_str(f, "GET / HTTP/9x\r\n\r\n");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 400 "));
}

static void test_request_timeout(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	f->s.request_timeout_ms = 50;
	/* Arm the new timeout on the next message. */
	send_str(f, "GET /slow HTTP/1.1\r\nHost:");
	r = recv_responses(f, 0, &closed);
	assert_non_null(strstr(r, "HTTP/1.1 408 "));
	assert_true(closed);
}

static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	bool closed;
	const char *r;

	f->s.idle_timeout_ms = 50;
	send_str(f, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
	r = recv_responses(f, 1, &closed);
	assert_non_null(strstr(r, "GET /a"));
	r = recv_responses(f, 0, &closed);
	assert_true(closed);
}

static void test_status_text(void **state)
{
	(void)state;
	assert_string_equal(http_status_text(404), "Not Found");
	assert_string_equal(http_status_text(431),
			    "Request Header Fields Too Large");
	assert_string_equal(http_status_text(999), "Unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_simple_get, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_split_reads, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_chunked_body, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive_then_close,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_body_too_large_content_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_too_large_chunked,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_too_large, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_too_many_headers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_request_line,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_version, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_request_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup,
						teardown),
		cmocka_unit_test(test_status_text),
	};
	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
