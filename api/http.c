#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <corral/log.h>
#include <corral/net.h>

#include "http.h"

/* How long a connection that has sent its final response keeps reading and
 * discarding input before it closes, so that the client reads our answer
 * instead of a reset (e.g. after a 413 while it is still sending). */
#define HTTP_LINGER_MS 1000

/* Stop reading while this much unparsed input or unsent output is queued. */
#define HTTP_BACKLOG_LIMIT (1024 * 1024)

enum head_kind {
	HEAD_NONE,
	HEAD_URL,
	HEAD_FIELD,
	HEAD_VALUE
};

enum timer_mode {
	TIMER_OFF,
	TIMER_IDLE,
	TIMER_REQUEST,
	TIMER_LINGER
};

struct http_conn {
	struct http_server *server; /* borrowed */
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
		uv_stream_t stream;
	} h;
	uv_timer_t timer;
	enum timer_mode timer_mode;
	http_parser parser;
	const struct http_transport *transport; /* borrowed */
	void *transport_data;
	void *data;
	struct http_conn *prev;
	struct http_conn *next;
	int refs;
	int open_handles;
	bool closing;
	bool lingering;
	bool processing;  /* inside conn_process() */
	bool in_message;  /* between message begin and complete */
	bool in_request;  /* a complete request waits for its answer */
	bool close_after; /* close once the current answer is written */
	bool reading;
	unsigned error_status; /* answer to give instead of dispatching */
	size_t pending_writes;

	/* Set by http_conn_upgrade(): input bypasses the parser. */
	bool upgraded;
	http_upgrade_data_cb up_data;
	http_upgrade_close_cb up_close; /* cleared once called */
	void *up_arg;

	/* Unparsed plaintext input. */
	char *in; /* owned */
	size_t in_len;
	size_t in_off;
	size_t in_cap;

	/* Head of the request being parsed: NUL-separated strings. */
	char *head; /* owned */
	size_t head_len;
	size_t head_cap;
	enum head_kind head_last;
	size_t url_off;
	size_t field_off[HTTP_MAX_HEADERS];
	size_t value_off[HTTP_MAX_HEADERS];
	unsigned n_fields;

	/* Body of the request being parsed. */
	char *body; /* owned */
	size_t body_len;
	size_t body_cap;

	struct http_request req;
};

struct write_req {
	uv_write_t req;
	struct http_conn *conn;
	size_t len;
	char data[];
};

static void conn_process(struct http_conn *c);
static void conn_start_reading(struct http_conn *c);
static void conn_arm_timer(struct http_conn *c,
			   enum timer_mode mode,
			   uint64_t ms);
static void conn_fail(struct http_conn *c, unsigned status, const char *text);

static const char *error_body(unsigned status,
			      const char *text,
			      char *buf,
			      size_t size)
{
	snprintf(buf, size,
		 "{\"type\":\"error\",\"status\":\"\",\"status_code\":0,"
		 "\"operation\":\"\",\"error_code\":%u,\"error\":\"%s\","
		 "\"metadata\":null}",
		 status, text);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* Status texts                                                              */

const char *http_status_text(unsigned status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */

static int buf_reserve(char **buf, size_t *cap, size_t need)
{
	size_t new_cap;
	char *p;

	if (need <= *cap) {
		return 0;
	}
	new_cap = *cap == 0 ? 1024 : *cap;
	while (new_cap < need) {
		new_cap *= 2;
	}
	p = realloc(*buf, new_cap);
	if (p == NULL) {
		return -ENOMEM;
	}
	*buf = p;
	*cap = new_cap;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Parser callbacks                                                          */

static int head_append(struct http_conn *c,
		       enum head_kind kind,
		       const char *at,
		       size_t len)
{
	size_t need;

	need = c->head_len + len + 2;
	if (need > HTTP_HEAD_LIMIT) {
		c->error_status = 431;
		return -1;
	}
	if (buf_reserve(&c->head, &c->head_cap, need) != 0) {
		c->error_status = 500;
		return -1;
	}
	if (kind != c->head_last) {
		if (c->head_last != HEAD_NONE) {
			c->head[c->head_len++] = '\0';
		}
		switch (kind) {
		case HEAD_URL:
			c->url_off = c->head_len;
			break;
		case HEAD_FIELD:
			if (c->n_fields == HTTP_MAX_HEADERS) {
				c->error_status = 431;
				return -1;
			}
			c->field_off[c->n_fields] = c->head_len;
			c->value_off[c->n_fields] = SIZE_MAX;
			break;
		case HEAD_VALUE:
			if (c->n_fields == 0) {
				c->error_status = 400;
				return -1;
			}
			c->value_off[c->n_fields - 1] = c->head_len;
			break;
		case HEAD_NONE:
			break;
		}
		if (kind == HEAD_FIELD) {
			c->n_fields++;
		}
		c->head_last = kind;
	}
	memcpy(c->head + c->head_len, at, len);
	c->head_len += len;
	return 0;
}

static struct http_conn *parser_conn(http_parser *p)
{
	return p->data;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = parser_conn(p);

	c->in_message = true;
	c->head_len = 0;
	c->head_last = HEAD_NONE;
	c->url_off = 0;
	c->n_fields = 0;
	c->body_len = 0;
	memset(&c->req, 0, sizeof c->req);
	conn_arm_timer(c, TIMER_REQUEST, c->server->request_timeout_ms);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	return head_append(parser_conn(p), HEAD_URL, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	return head_append(parser_conn(p), HEAD_FIELD, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	return head_append(parser_conn(p), HEAD_VALUE, at, len);
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = parser_conn(p);
	struct http_request *r = &c->req;
	size_t empty_off;
	unsigned i;
	char *q;

	/* Terminate the last string, then add an empty string that a header
	 * without a value and an absent query point at. head_append() always
	 * leaves room for these two bytes. */
	if (head_append(c, HEAD_NONE, "", 0) != 0) {
		return -1;
	}
	empty_off = c->head_len;
	c->head[c->head_len++] = '\0';
	r->url = c->head + c->url_off;
	for (i = 0; i < c->n_fields; i++) {
		r->headers[i].name = c->head + c->field_off[i];
		r->headers[i].value =
		    c->head +
		    (c->value_off[i] == SIZE_MAX ? empty_off : c->value_off[i]);
	}
	r->n_headers = c->n_fields;
	r->method = (enum http_method)p->method;

	/* Split the target into path and query in a copy kept in the same
	 * head buffer. */
	r->path = r->url;
	q = strchr(r->url, '?');
	if (q != NULL) {
		*q = '\0';
		r->query = q + 1;
	} else {
		r->query = c->head + empty_off;
	}

	if ((p->flags & F_CONTENTLENGTH) &&
	    p->content_length > c->server->max_body) {
		c->error_status = 413;
		return -1;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = parser_conn(p);

	if (c->body_len + len > c->server->max_body) {
		c->error_status = 413;
		return -1;
	}
	if (buf_reserve(&c->body, &c->body_cap, c->body_len + len + 1) != 0) {
		c->error_status = 500;
		return -1;
	}
	memcpy(c->body + c->body_len, at, len);
	c->body_len += len;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = parser_conn(p);

	if (buf_reserve(&c->body, &c->body_cap, c->body_len + 1) != 0) {
		c->error_status = 500;
		return -1;
	}
	c->body[c->body_len] = '\0';
	c->req.body = c->body;
	c->req.body_len = c->body_len;
	c->req.keep_alive = http_should_keep_alive(p) != 0;
	c->req.start_ns = uv_hrtime();
	c->in_message = false;
	if (c->timer_mode == TIMER_REQUEST) {
		uv_timer_stop(&c->timer);
		c->timer_mode = TIMER_OFF;
	}
	/* Hand the request over once the parser returns. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

static void conn_free(struct http_conn *c)
{
	free(c->in);
	free(c->head);
	free(c->body);
	free(c);
}

void http_conn_ref(struct http_conn *c)
{
	c->refs++;
}

void http_conn_unref(struct http_conn *c)
{
	c->refs--;
	if (c->refs == 0) {
		conn_free(c);
	}
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	struct http_server *s = c->server;

	c->open_handles--;
	if (c->open_handles > 0) {
		return;
	}
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		s->conns = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	s->n_conns--;
	if (s->on_conn_close != NULL) {
		s->on_conn_close(c);
	}
	http_conn_unref(c);
}

void http_conn_close(struct http_conn *c)
{
	if (c == NULL || c->closing) {
		return;
	}
	c->closing = true;
	if (c->up_close != NULL) {
		http_upgrade_close_cb cb = c->up_close;
		c->up_close = NULL;
		cb(c, c->up_arg);
	}
	if (c->transport != NULL && c->transport->close != NULL) {
		c->transport->close(c);
	}
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->h.stream, conn_handle_closed);
}

bool http_conn_closing(const struct http_conn *c)
{
	return c->closing;
}

static void linger_shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	free(req);
}

/* Final answer sent: stop sending, drain input for a moment, then close. */
static void conn_linger(struct http_conn *c)
{
	uv_shutdown_t *req;

	if (c->closing || c->lingering) {
		return;
	}
	c->lingering = true;
	conn_arm_timer(c, TIMER_LINGER, HTTP_LINGER_MS);
	if (c->transport != NULL && c->transport->shutdown != NULL) {
		c->transport->shutdown(c);
	}
	req = malloc(sizeof *req);
	if (req == NULL ||
	    uv_shutdown(req, &c->h.stream, linger_shutdown_cb) != 0) {
		free(req);
		http_conn_close(c);
		return;
	}
	conn_start_reading(c);
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

static void conn_timer_cb(uv_timer_t *t)
{
	struct http_conn *c = t->data;

	switch (c->timer_mode) {
	case TIMER_REQUEST:
		c->timer_mode = TIMER_OFF;
		if (!c->in_request) {
			conn_fail(c, 408, "request timeout");
		}
		break;
	case TIMER_IDLE:
	case TIMER_LINGER:
		http_conn_close(c);
		break;
	case TIMER_OFF:
		break;
	}
}

static void conn_arm_timer(struct http_conn *c,
			   enum timer_mode mode,
			   uint64_t ms)
{
	c->timer_mode = mode;
	uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct http_conn *c = w->conn;

	c->pending_writes -= w->len;
	free(w);
	if (status != 0) {
		http_conn_close(c);
	} else if (!c->closing && c->pending_writes == 0) {
		if (c->close_after) {
			conn_linger(c);
		} else {
			conn_start_reading(c);
			conn_process(c);
		}
	}
	http_conn_unref(c);
}

int http_conn_write_stream(struct http_conn *c, const char *data, size_t len)
{
	struct write_req *w;
	uv_buf_t buf;
	int n;

	if (c->closing) {
		return -ECONNRESET;
	}
	if (c->pending_writes == 0) {
		buf = uv_buf_init((char *)data, (unsigned)len);
		n = uv_try_write(&c->h.stream, &buf, 1);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		} else if (n != UV_EAGAIN && n != UV_ENOSYS) {
			return n;
		}
		if (len == 0) {
			return 0;
		}
	}
	w = malloc(sizeof *w + len);
	if (w == NULL) {
		return -ENOMEM;
	}
	memcpy(w->data, data, len);
	w->conn = c;
	w->len = len;
	buf = uv_buf_init(w->data, (unsigned)len);
	n = uv_write(&w->req, &c->h.stream, &buf, 1, write_cb);
	if (n != 0) {
		free(w);
		return n;
	}
	c->pending_writes += len;
	http_conn_ref(c);
	return 0;
}

static int conn_send(struct http_conn *c, const char *data, size_t len)
{
	if (c->transport != NULL) {
		return c->transport->write(c, data, len);
	}
	return http_conn_write_stream(c, data, len);
}

/* After an answer: go on with the next request, or close. */
static void conn_after_response(struct http_conn *c, bool close)
{
	c->in_request = false;
	if (close) {
		c->close_after = true;
		if (c->pending_writes == 0) {
			conn_linger(c);
		}
		return;
	}
	if (c->pending_writes > HTTP_BACKLOG_LIMIT) {
		return; /* write_cb resumes */
	}
	if (!c->processing) {
		conn_process(c);
	}
}

void http_conn_respond_raw(struct http_conn *c,
			   const char *data,
			   size_t len,
			   unsigned status,
			   bool close)
{
	(void)status;
	if (c->closing || c->close_after) {
		c->in_request = false;
		return;
	}
	if (!c->req.keep_alive) {
		close = true;
	}
	if (conn_send(c, data, len) != 0) {
		c->in_request = false;
		http_conn_close(c);
		return;
	}
	conn_after_response(c, close);
}

void http_conn_respond(struct http_conn *c,
		       unsigned status,
		       const char *extra_headers,
		       const char *content_type,
		       const char *body,
		       size_t body_len,
		       bool close)
{
	char head[1024];
	char *msg;
	size_t head_len;
	size_t extra_len = extra_headers != NULL ? strlen(extra_headers) : 0;
	int n;

	if (c->closing || c->close_after) {
		c->in_request = false;
		return;
	}
	if (!c->req.keep_alive || c->error_status != 0) {
		close = true;
	}
	n = snprintf(head, sizeof head,
		     "HTTP/1.1 %u %s\r\nContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n%s",
		     status, http_status_text(status),
		     content_type != NULL ? content_type : "application/json",
		     body_len, close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof head) {
		http_conn_close(c);
		return;
	}
	head_len = (size_t)n;
	msg = malloc(head_len + extra_len + 2 + body_len);
	if (msg == NULL) {
		c->in_request = false;
		http_conn_close(c);
		return;
	}
	memcpy(msg, head, head_len);
	if (extra_len > 0) {
		memcpy(msg + head_len, extra_headers, extra_len);
	}
	memcpy(msg + head_len + extra_len, "\r\n", 2);
	if (body_len > 0) {
		memcpy(msg + head_len + extra_len + 2, body, body_len);
	}
	if (conn_send(c, msg, head_len + extra_len + 2 + body_len) != 0) {
		free(msg);
		c->in_request = false;
		http_conn_close(c);
		return;
	}
	free(msg);
	conn_after_response(c, close);
}

/* ------------------------------------------------------------------------ */
/* Reading and parsing                                                       */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct http_conn *c = h->data;

	(void)suggested;
	buf->base = c->server->read_buf;
	buf->len = sizeof c->server->read_buf;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct http_conn *c = stream->data;
	int rv;

	if (nread < 0) {
		http_conn_close(c);
		return;
	}
	if (nread == 0) {
		return;
	}
	if (c->lingering) {
		return; /* discard */
	}
	if (c->transport != NULL) {
		rv = c->transport->read(c, buf->base, (size_t)nread);
	} else {
		rv = http_conn_feed_plain(c, buf->base, (size_t)nread);
	}
	if (rv != 0) {
		http_conn_close(c);
	}
}

static void conn_start_reading(struct http_conn *c)
{
	if (c->closing || c->reading) {
		return;
	}
	if (uv_read_start(&c->h.stream, alloc_cb, read_cb) == 0) {
		c->reading = true;
	}
}

static void conn_stop_reading(struct http_conn *c)
{
	if (c->reading) {
		uv_read_stop(&c->h.stream);
		c->reading = false;
	}
}

int http_conn_feed_plain(struct http_conn *c, const char *data, size_t len)
{
	if (c->closing || c->lingering) {
		return 0;
	}
	if (c->upgraded) {
		return c->up_data(c, data, len, c->up_arg);
	}
	/* Compact before growing. */
	if (c->in_off > 0 && c->in_off == c->in_len) {
		c->in_off = 0;
		c->in_len = 0;
	}
	if (buf_reserve(&c->in, &c->in_cap, c->in_len + len) != 0) {
		return -ENOMEM;
	}
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
	if (c->in_len - c->in_off > HTTP_BACKLOG_LIMIT) {
		conn_stop_reading(c);
	}
	conn_process(c);
	return 0;
}

static void conn_fail(struct http_conn *c, unsigned status, const char *text)
{
	char body[512];

	c->in_message = false;
	error_body(status, text, body, sizeof body);
	c->req.keep_alive = false;
	c->in_request = true;
	http_conn_respond(c, status, NULL, NULL, body, strlen(body), true);
}

static void conn_dispatch(struct http_conn *c)
{
	c->in_request = true;
	http_parser_pause(&c->parser, 0);
	c->server->on_request(c, &c->req);
}

static void conn_process(struct http_conn *c)
{
	size_t n;
	enum http_errno err;
	char text[128];

	if (c->processing) {
		return;
	}
	c->processing = true;
	while (!c->closing && !c->close_after && !c->in_request &&
	       !c->upgraded && c->in_off < c->in_len) {
		n = http_parser_execute(&c->parser, &parser_settings,
					c->in + c->in_off,
					c->in_len - c->in_off);
		c->in_off += n;
		err = HTTP_PARSER_ERRNO(&c->parser);
		if (c->error_status != 0) {
			const char *why = c->error_status == 413
					      ? "request body too large"
					  : c->error_status == 431
					      ? "request header too large"
					      : "malformed request";
			conn_fail(c, c->error_status, why);
			break;
		}
		if (err == HPE_PAUSED) {
			conn_dispatch(c);
			continue;
		}
		if (err == HPE_HEADER_OVERFLOW) {
			c->error_status = 431;
			conn_fail(c, 431, "request header too large");
			break;
		}
		if (err != HPE_OK) {
			c->error_status = 400;
			snprintf(text, sizeof text, "malformed request: %s",
				 http_errno_description(err));
			conn_fail(c, 400, text);
			break;
		}
	}
	c->processing = false;
	if (c->closing || c->close_after) {
		return;
	}
	if (c->upgraded) {
		conn_start_reading(c);
		return;
	}
	if (c->in_off == c->in_len) {
		c->in_off = 0;
		c->in_len = 0;
	}
	if (!c->in_request && c->pending_writes <= HTTP_BACKLOG_LIMIT &&
	    c->in_len - c->in_off <= HTTP_BACKLOG_LIMIT) {
		conn_start_reading(c);
	}
	if (!c->in_request && !c->in_message && c->in_len == c->in_off) {
		conn_arm_timer(c, TIMER_IDLE, c->server->idle_timeout_ms);
	}
}

/* ------------------------------------------------------------------------ */
/* Upgraded connections                                                      */

int http_conn_peer_timeout(struct http_conn *c, unsigned dead_ms)
{
	uv_os_fd_t fd;

	if (c->h.stream.type != UV_TCP ||
	    uv_fileno((uv_handle_t *)&c->h.tcp, &fd) != 0) {
		return -ENOTSUP;
	}
	return corral_tcp_peer_timeout(fd, dead_ms);
}

int http_conn_upgrade(struct http_conn *c,
		      const char *head,
		      size_t len,
		      http_upgrade_data_cb on_data,
		      http_upgrade_close_cb on_close,
		      void *arg)
{
	size_t off;
	size_t n;
	int rv;

	if (c->closing || c->close_after || !c->in_request || c->upgraded) {
		http_conn_close(c);
		return -EINVAL;
	}
	c->in_request = false;
	rv = conn_send(c, head, len);
	if (rv != 0) {
		http_conn_close(c);
		return rv;
	}
	c->upgraded = true;
	c->up_data = on_data;
	c->up_close = on_close;
	c->up_arg = arg;
	uv_timer_stop(&c->timer);
	c->timer_mode = TIMER_OFF;
	if (c->in_off < c->in_len) {
		/* The client spoke first: hand over what the parser left. */
		off = c->in_off;
		n = c->in_len - c->in_off;
		c->in_off = 0;
		c->in_len = 0;
		if (on_data(c, c->in + off, n, arg) != 0) {
			http_conn_close(c);
			return 0;
		}
	}
	conn_start_reading(c);
	return 0;
}

int http_conn_send(struct http_conn *c, const char *data, size_t len)
{
	if (c->closing || c->close_after) {
		return -ECONNRESET;
	}
	return conn_send(c, data, len);
}

size_t http_conn_pending_writes(const struct http_conn *c)
{
	return c->pending_writes;
}

void http_conn_shutdown(struct http_conn *c)
{
	if (c->closing || c->close_after) {
		return;
	}
	c->close_after = true;
	if (c->pending_writes == 0) {
		conn_linger(c);
	}
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

void http_server_init(struct http_server *s,
		      uv_loop_t *loop,
		      http_request_cb on_request)
{
	memset(s, 0, sizeof *s);
	s->loop = loop;
	s->on_request = on_request;
	s->max_body = 8 * 1024 * 1024;
	s->idle_timeout_ms = 120 * 1000;
	s->request_timeout_ms = 30 * 1000;
	http_parser_set_max_header_size(HTTP_HEAD_LIMIT);
}

int http_server_accept(struct http_server *s,
		       uv_stream_t *listener,
		       const struct http_transport *transport,
		       void *transport_data)
{
	struct http_conn *c;
	int rv;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		return UV_ENOMEM;
	}
	c->server = s;
	c->transport = transport;
	c->transport_data = transport_data;
	c->refs = 1;
	if (listener->type == UV_NAMED_PIPE) {
		rv = uv_pipe_init(s->loop, &c->h.pipe, 0);
	} else {
		rv = uv_tcp_init(s->loop, &c->h.tcp);
	}
	if (rv != 0) {
		free(c);
		return rv;
	}
	c->h.stream.data = c;
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;

	/* Link first so that a failing accept closes through the usual path. */
	c->next = s->conns;
	if (s->conns != NULL) {
		s->conns->prev = c;
	}
	s->conns = c;
	s->n_conns++;

	rv = uv_accept(listener, &c->h.stream);
	if (rv != 0) {
		http_conn_close(c);
		return rv;
	}
	if (listener->type == UV_TCP) {
		uv_tcp_nodelay(&c->h.tcp, 1);
	}
	conn_start_reading(c);
	conn_arm_timer(c, TIMER_IDLE, s->idle_timeout_ms);
	return 0;
}

void http_server_foreach(struct http_server *s,
			 void (*fn)(struct http_conn *conn, void *arg),
			 void *arg)
{
	struct http_conn *c;
	struct http_conn *next;

	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		fn(c, arg);
	}
}

void http_server_close_all(struct http_server *s)
{
	struct http_conn *c;

	for (c = s->conns; c != NULL; c = c->next) {
		http_conn_close(c);
	}
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

void *http_conn_data(const struct http_conn *c)
{
	return c->data;
}

void http_conn_set_data(struct http_conn *c, void *data)
{
	c->data = data;
}

void *http_conn_transport_data(const struct http_conn *c)
{
	return c->transport_data;
}

struct http_server *http_conn_server(const struct http_conn *c)
{
	return c->server;
}

uv_stream_t *http_conn_stream(struct http_conn *c)
{
	return &c->h.stream;
}

const char *http_request_header(const struct http_request *req,
				const char *name)
{
	unsigned i;

	for (i = 0; i < req->n_headers; i++) {
		if (strcasecmp(req->headers[i].name, name) == 0) {
			return req->headers[i].value;
		}
	}
	return NULL;
}
