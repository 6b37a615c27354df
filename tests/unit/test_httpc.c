/* Unit tests of the blocking HTTP client: canned responses fed through a
 * socketpair (and a listening Unix socket for reconnects). */

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <corral/httpc.h>

struct fixture {
	struct httpc_client c;
	int peer; /* the server's end of the socketpair */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	int sv[2];

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(httpc_init_fd(&f->c, sv[0]), 0);
	f->peer = sv[1];
	/* A parser bug must fail the test, not hang it. */
	f->c.timeout_ms = 5000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	httpc_close(&f->c);
	if (f->peer >= 0) {
		close(f->peer);
	}
	free(f);
	return 0;
}

static void feed(struct fixture *f, const char *text)
{
	size_t len = strlen(text);

	assert_int_equal(write(f->peer, text, len), (ssize_t)len);
}

/* Read what the client sent so far (up to @size - 1 bytes). */
static void drain(struct fixture *f, char *buf, size_t size)
{
	ssize_t n = recv(f->peer, buf, size - 1, MSG_DONTWAIT);

	if (n < 0) {
		n = 0;
	}
	buf[n] = '\0';
}

static int get(struct fixture *f, const char *path, struct httpc_response *resp)
{
	struct httpc_request req = { .method = "GET", .path = path };

	return httpc_do(&f->c, &req, resp);
}

static void test_content_length(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;
	char sent[1024];

	feed(f,
	     "HTTP/1.1 200 OK\r\n"
	     "Content-Type: application/json\r\n"
	     "ETag: \"abc\"\r\n"
	     "X-Other: 1\r\n"
	     "Content-Length: 15\r\n"
	     "\r\n"
	     "{\"type\":\"sync\"}");
	assert_int_equal(get(f, "/1.0", &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, "application/json");
	assert_string_equal(resp.etag, "\"abc\"");
	assert_null(resp.location);
	assert_string_equal(httpc_response_header(&resp, "x-other"), "1");
	assert_int_equal(resp.body_len, 15);
	assert_string_equal(resp.body, "{\"type\":\"sync\"}");
	assert_true(resp.keep_alive);
	httpc_response_close(&resp);

	drain(f, sent, sizeof sent);
	assert_non_null(
	    strstr(sent, "GET /1.0 HTTP/1.1\r\nHost: unix.socket\r\n"));
	assert_null(strstr(sent, "Content-Length"));
	assert_non_null(strstr(sent, "\r\n\r\n"));
}

static void test_request_body(void **state)
{
	struct fixture *f = *state;
	struct httpc_header headers[] = { { "If-Match", "\"e1\"" } };
	struct httpc_request req = {
		.method = "PUT",
		.path = "/1.0/profiles/default",
		.headers = headers,
		.n_headers = 1,
		.body = "{\"a\":1}",
		.body_len = 7,
	};
	struct httpc_response resp;
	char sent[1024];

	feed(f,
	     "HTTP/1.1 201 Created\r\n"
	     "Location: /1.0/profiles/p1\r\n"
	     "Content-Length: 0\r\n\r\n");
	assert_int_equal(httpc_do(&f->c, &req, &resp), 0);
	assert_int_equal(resp.status, 201);
	assert_string_equal(resp.location, "/1.0/profiles/p1");
	assert_int_equal(resp.body_len, 0);
	assert_string_equal(resp.body, "");
	httpc_response_close(&resp);

	drain(f, sent, sizeof sent);
	assert_non_null(strstr(sent, "PUT /1.0/profiles/default HTTP/1.1\r\n"));
	assert_non_null(strstr(sent, "If-Match: \"e1\"\r\n"));
	assert_non_null(strstr(sent, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(sent, "Content-Length: 7\r\n"));
	assert_non_null(strstr(sent, "\r\n\r\n{\"a\":1}"));
}

static void test_header_injection(void **state)
{
	struct fixture *f = *state;
	struct httpc_header headers[] = { { "X-A", "1\r\nX-B: 2" } };
	struct httpc_request req = {
		.method = "GET",
		.path = "/1.0",
		.headers = headers,
		.n_headers = 1,
	};
	struct httpc_response resp;

	assert_int_equal(httpc_do(&f->c, &req, &resp), -EINVAL);
	req.n_headers = 0;
	req.path = "/1.0 HTTP/1.0\r\n";
	assert_int_equal(httpc_do(&f->c, &req, &resp), -EINVAL);
}

static void test_chunked(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f,
	     "HTTP/1.1 200 OK\r\n"
	     "Transfer-Encoding: chunked\r\n"
	     "\r\n"
	     "5\r\nhello\r\n"
	     "7;ext=1\r\n, world\r\n"
	     "0\r\n"
	     "Trailer: x\r\n"
	     "\r\n");
	assert_int_equal(get(f, "/1.0", &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "hello, world");
	assert_int_equal(resp.body_len, 12);
	assert_true(resp.keep_alive);
	httpc_response_close(&resp);
}

static void test_eof_body(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
	shutdown(f->peer, SHUT_WR);
	assert_int_equal(get(f, "/", &resp), 0);
	assert_string_equal(resp.body, "until the end");
	assert_false(resp.keep_alive);
	httpc_response_close(&resp);
	/* The adopted connection is gone and cannot be reopened. */
	assert_int_equal(get(f, "/", &resp), -ENOTCONN);
}

static void test_head(void **state)
{
	struct fixture *f = *state;
	struct httpc_request req = { .method = "HEAD", .path = "/1.0" };
	struct httpc_response resp;

	feed(f,
	     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
	     "HTTP/1.1 204 No Content\r\n\r\n");
	assert_int_equal(httpc_do(&f->c, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.body_len, 0);
	httpc_response_close(&resp);
	assert_int_equal(get(f, "/", &resp), 0);
	assert_int_equal(resp.status, 204);
	httpc_response_close(&resp);
}

static void test_interim_response(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f,
	     "HTTP/1.1 100 Continue\r\n\r\n"
	     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_int_equal(get(f, "/", &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "ok");
	httpc_response_close(&resp);
}

struct writer {
	int fd;
	const char *const *pieces;
};

/* Write each piece separately with a pause in between, so the client sees
 * the response arrive in several reads. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	size_t i;

	for (i = 0; w->pieces[i] != NULL; i++) {
		size_t len = strlen(w->pieces[i]);
		if (write(w->fd, w->pieces[i], len) != (ssize_t)len) {
			break;
		}
		usleep(5000);
	}
	return NULL;
}

static void test_split_reads(void **state)
{
	static const char *const pieces[] = {
		"HTT",
		"P/1.1 20",
		"0 OK\r\nContent-Ty",
		"pe: appl",
		"ication/json\r",
		"\nTransfer-Encoding: chunked\r\n\r",
		"\n3\r\nab",
		"c\r\n",
		"2\r\nde\r\n0\r",
		"\n\r\n",
		NULL,
	};
	struct fixture *f = *state;
	struct writer w = { .fd = f->peer, .pieces = pieces };
	struct httpc_response resp;
	pthread_t thread;

	assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
	assert_int_equal(get(f, "/", &resp), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, "application/json");
	assert_string_equal(resp.body, "abcde");
	httpc_response_close(&resp);
}

/* A transport that reads one byte at a time from an fd: every byte
 * boundary of the response becomes a read boundary. */
struct byte_transport {
	int fd;
};

static int byte_open(void *impl, char *errmsg, size_t size)
{
	(void)impl;
	(void)errmsg;
	(void)size;
	return 0;
}

static ssize_t byte_read(void *impl, void *buf, size_t len, int timeout_ms)
{
	struct byte_transport *t = impl;

	(void)len;
	(void)timeout_ms;
	return read(t->fd, buf, 1);
}

static int byte_write(void *impl, const void *buf, size_t len)
{
	struct byte_transport *t = impl;

	return write(t->fd, buf, len) == (ssize_t)len ? 0 : -EIO;
}

static void byte_close(void *impl)
{
	(void)impl;
}

static const struct httpc_transport_ops byte_ops = {
	.open = byte_open,
	.read = byte_read,
	.write = byte_write,
	.close = byte_close,
	.destroy = NULL,
};

static void test_byte_by_byte(void **state)
{
	struct fixture *f = *state;
	struct byte_transport t;
	struct httpc_client c;
	struct httpc_response resp;
	struct httpc_request req = { .method = "GET", .path = "/" };
	const char *canned =
	    "HTTP/1.1 200 OK\r\nETag: e\r\nContent-Length: 4\r\n\r\nbody"
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "4\r\nnext\r\n0\r\n\r\n";
	int sv[2];

	(void)f;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t.fd = sv[0];
	assert_int_equal(httpc_init(&c, &byte_ops, &t, "example"), 0);
	assert_int_equal(write(sv[1], canned, strlen(canned)),
			 (ssize_t)strlen(canned));
	assert_int_equal(httpc_do(&c, &req, &resp), 0);
	assert_string_equal(resp.etag, "e");
	assert_string_equal(resp.body, "body");
	httpc_response_close(&resp);
	assert_int_equal(httpc_do(&c, &req, &resp), 0);
	assert_string_equal(resp.body, "next");
	httpc_response_close(&resp);
	httpc_close(&c);
	close(sv[0]);
	close(sv[1]);
}

static void test_keep_alive(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;
	char sent[1024];

	/* Both responses arrive in one read: the second waits in the
	 * client's buffer for the second request. */
	feed(f,
	     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
	     "HTTP/1.1 404 Not Found\r\nContent-Length: 6\r\n\r\nsecond");
	assert_int_equal(get(f, "/a", &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "first");
	httpc_response_close(&resp);
	assert_int_equal(get(f, "/b", &resp), 0);
	assert_int_equal(resp.status, 404);
	assert_string_equal(resp.body, "second");
	httpc_response_close(&resp);

	/* A third one written after the request, on the same connection. */
	drain(f, sent, sizeof sent);
	assert_non_null(strstr(sent, "GET /a "));
	assert_non_null(strstr(sent, "GET /b "));
	feed(f, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthird");
	assert_int_equal(get(f, "/c", &resp), 0);
	assert_string_equal(resp.body, "third");
	httpc_response_close(&resp);
	assert_true(f->c.connected);
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f, "XTTP/1.1 200 OK\r\n\r\n");
	assert_int_equal(get(f, "/1.0", &resp), CORRAL_EPROTO);
	assert_non_null(strstr(f->c.errmsg, "GET /1.0: malformed response"));
	assert_false(f->c.connected);
}

static void test_bad_status(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f, "HTTP/1.1 abc OK\r\n\r\n");
	assert_int_equal(get(f, "/", &resp), CORRAL_EPROTO);
}

static void test_bad_content_length(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
	assert_int_equal(get(f, "/", &resp), CORRAL_EPROTO);
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	feed(f, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
	shutdown(f->peer, SHUT_WR);
	assert_int_equal(get(f, "/", &resp), CORRAL_ETRUNC);
	assert_string_equal(
	    f->c.errmsg,
	    "GET /: read response: connection closed mid-response");
}

static void test_closed_before_response(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	shutdown(f->peer, SHUT_WR);
	assert_int_equal(get(f, "/", &resp), -ECONNRESET);
}

static void test_oversize_content_length(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	f->c.max_response = 1024;
	feed(f, "HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n");
	assert_int_equal(get(f, "/", &resp), -EMSGSIZE);
	assert_string_equal(f->c.errmsg,
			    "GET /: response larger than 1024 bytes");
}

static void test_oversize_chunked(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;
	char chunk[600];

	f->c.max_response = 1024;
	memset(chunk, 'x', 512);
	strcpy(chunk + 512, "\r\n");
	feed(f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	feed(f, "200\r\n");
	feed(f, chunk);
	feed(f, "200\r\n");
	feed(f, chunk);
	feed(f, "1\r\nx\r\n0\r\n\r\n");
	assert_int_equal(get(f, "/", &resp), -EMSGSIZE);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct httpc_response resp;

	f->c.timeout_ms = 20;
	assert_int_equal(get(f, "/", &resp), -ETIMEDOUT);
	assert_non_null(strstr(f->c.errmsg, "timed out"));
}

static void test_envelope_error(void **state)
{
	struct fixture *f = *state;
	struct httpc_envelope env;
	const char *body =
	    "{\"type\":\"error\",\"error\":\"not found\",\"error_code\":404,"
	    "\"metadata\":null}";
	char head[128];

	snprintf(head, sizeof head,
		 "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\n\r\n",
		 strlen(body));
	feed(f, head);
	feed(f, body);
	assert_int_equal(httpc_query(&f->c, "GET", "/1.0/x", NULL, 0, &env), 0);
	assert_int_equal(env.type, HTTPC_ENVELOPE_ERROR);
	assert_int_equal(env.http_status, 404);
	assert_int_equal(env.error_code, 404);
	assert_string_equal(env.error, "not found");
	assert_string_equal(env.operation, "");
	assert_null(env.metadata);
	httpc_envelope_close(&env);
}

static void test_envelope_not_json(void **state)
{
	struct fixture *f = *state;
	struct httpc_envelope env;

	feed(f, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops");
	assert_int_equal(httpc_query(&f->c, "GET", "/1.0", NULL, 0, &env),
			 CORRAL_EPROTO);
	assert_string_equal(f->c.errmsg, "failed to fetch /1.0: HTTP 502");
}

static void test_envelope_parse(void **state)
{
	struct httpc_envelope env;
	char errmsg[CORRAL_ERRMSG_SIZE];
	const char *sync =
	    "{\"type\":\"sync\",\"status\":\"Success\",\"status_code\":200,"
	    "\"operation\":\"\",\"error_code\":0,\"error\":\"\","
	    "\"metadata\":{\"api_version\":\"1.0\"}}";
	const char *async =
	    "{\"type\":\"async\",\"status_code\":100,"
	    "\"operation\":\"/1.0/operations/u1\",\"metadata\":{\"id\":\"u1\"}}";
	const char *null_md = "{\"type\":\"sync\",\"metadata\":null}";

	(void)state;
	assert_int_equal(httpc_envelope_parse(sync, strlen(sync), 200, &env,
					      errmsg, sizeof errmsg),
			 0);
	assert_int_equal(env.type, HTTPC_ENVELOPE_SYNC);
	assert_int_equal(env.status_code, 200);
	assert_string_equal(
	    json_string_value(json_object_get(env.metadata, "api_version")),
	    "1.0");
	httpc_envelope_close(&env);

	assert_int_equal(httpc_envelope_parse(async, strlen(async), 202, &env,
					      errmsg, sizeof errmsg),
			 0);
	assert_int_equal(env.type, HTTPC_ENVELOPE_ASYNC);
	assert_int_equal(env.status_code, 100);
	assert_string_equal(env.operation, "/1.0/operations/u1");
	assert_true(json_is_object(env.metadata));
	httpc_envelope_close(&env);

	assert_int_equal(httpc_envelope_parse(null_md, strlen(null_md), 200,
					      &env, errmsg, sizeof errmsg),
			 0);
	assert_null(env.metadata);
	httpc_envelope_close(&env);
	/* Closing twice is harmless. */
	httpc_envelope_close(&env);

	assert_int_equal(httpc_envelope_parse("{\"type\":\"x\"}", 12, 200, &env,
					      errmsg, sizeof errmsg),
			 CORRAL_EPROTO);
	assert_string_equal(errmsg, "invalid response: unknown type \"x\"");
	assert_int_equal(
	    httpc_envelope_parse("[1]", 3, 200, &env, errmsg, sizeof errmsg),
	    CORRAL_EPROTO);
	assert_int_equal(httpc_envelope_parse("{\"type\":", 8, 200, &env,
					      errmsg, sizeof errmsg),
			 CORRAL_EPROTO);
	assert_non_null(strstr(errmsg, "invalid JSON response"));
}

/* A one-connection-at-a-time server on a Unix socket: answers one request
 * per connection with keep-alive headers, then closes it, so the client has
 * to notice and reconnect. */
struct server {
	int listener;
	int connections;
};

static void *server_main(void *arg)
{
	static const char reply[] =
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct server *s = arg;
	char buf[1024];
	int i;

	for (i = 0; i < 2; i++) {
		int fd = accept(s->listener, NULL, NULL);
		if (fd < 0) {
			break;
		}
		s->connections++;
		if (read(fd, buf, sizeof buf) > 0) {
			ssize_t n = write(fd, reply, sizeof reply - 1);
			(void)n;
		}
		close(fd);
	}
	return NULL;
}

static void test_unix_reconnect(void **state)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/test_httpc.XXXXXX";
	struct httpc_response resp;
	struct httpc_client c;
	struct server s = { 0 };
	pthread_t thread;
	char path[64];
	char want[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/unix.socket", dir);

	assert_int_equal(httpc_init_unix(&c, path), 0);
	assert_int_equal(httpc_connect(&c), -ENOENT);
	snprintf(want, sizeof want,
		 "cannot connect to %s: No such file or directory", path);
	assert_string_equal(c.errmsg, want);

	s.listener = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s.listener >= 0);
	strcpy(addr.sun_path, path);
	assert_int_equal(
	    bind(s.listener, (struct sockaddr *)&addr, sizeof addr), 0);
	assert_int_equal(listen(s.listener, 4), 0);
	assert_int_equal(pthread_create(&thread, NULL, server_main, &s), 0);

	assert_int_equal(
	    httpc_do(&c,
		     &(struct httpc_request){ .method = "GET", .path = "/1.0" },
		     &resp),
	    0);
	assert_string_equal(resp.body, "ok");
	httpc_response_close(&resp);
	/* The server closed the idle connection; GET is retried on a new
	 * one. */
	usleep(10000);
	assert_int_equal(
	    httpc_do(&c,
		     &(struct httpc_request){ .method = "GET", .path = "/1.0" },
		     &resp),
	    0);
	assert_string_equal(resp.body, "ok");
	httpc_response_close(&resp);

	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(s.connections, 2);
	httpc_close(&c);
	httpc_close(&c);
	close(s.listener);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_content_length, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_request_body, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_header_injection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interim_response, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_split_reads, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_byte_by_byte, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_status, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_content_length, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_closed_before_response,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_content_length,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_chunked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope_error, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_envelope_not_json, setup,
						teardown),
		cmocka_unit_test(test_envelope_parse),
		cmocka_unit_test(test_unix_reconnect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
