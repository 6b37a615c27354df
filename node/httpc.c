/* Blocking HTTP/1.1 client: request writer, response reader on top of
 * libhttp-parser, the Unix socket / adopted fd transport, and LXD's JSON
 * envelope. */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <http_parser.h>

#include <corral/httpc.h>
#include <corral/version.h>

/* Bytes asked from the transport per read. */
#define HTTPC_READ_CHUNK (64u * 1024u)

/* The Unix socket and adopted-fd transport. */
struct httpc_fd {
	int fd;     /* -1 when closed */
	char *path; /* owned; NULL for an adopted fd (cannot reopen) */
};

static int fd_open(void *impl, char *errmsg, size_t errmsg_size)
{
	struct httpc_fd *t = impl;
	struct sockaddr_un addr;
	size_t len;
	int fd;
	int rv;

	if (t->fd >= 0) {
		return 0;
	}
	if (t->path == NULL) {
		corral_errf(errmsg, errmsg_size, "connection closed by peer");
		return -ENOTCONN;
	}
	len = strlen(t->path);
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (len >= sizeof addr.sun_path) {
		corral_errf(errmsg, errmsg_size,
			    "cannot connect to %s: socket path too long",
			    t->path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, t->path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = -errno;
		corral_errf(errmsg, errmsg_size, "socket(): %s", strerror(-rv));
		return rv;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		rv = -errno;
		close(fd);
		corral_errf(errmsg, errmsg_size, "cannot connect to %s: %s",
			    t->path, strerror(-rv));
		return rv;
	}
	t->fd = fd;
	return 0;
}

static ssize_t fd_read(void *impl, void *buf, size_t len, int timeout_ms)
{
	struct httpc_fd *t = impl;
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	ssize_t n;
	int rv;

	if (t->fd < 0) {
		return -ENOTCONN;
	}
	for (;;) {
		if (timeout_ms >= 0) {
			rv = poll(&pfd, 1, timeout_ms);
			if (rv < 0 && errno == EINTR) {
				continue;
			}
			if (rv < 0) {
				return -errno;
			}
			if (rv == 0) {
				return -ETIMEDOUT;
			}
		}
		n = read(t->fd, buf, len);
		if (n >= 0) {
			return n;
		}
		if (errno != EINTR) {
			return -errno;
		}
	}
}

static int fd_write(void *impl, const void *buf, size_t len)
{
	struct httpc_fd *t = impl;
	const char *p = buf;
	ssize_t n;

	if (t->fd < 0) {
		return -ENOTCONN;
	}
	while (len > 0) {
		/* MSG_NOSIGNAL: a closed peer must give EPIPE, not SIGPIPE. */
		n = send(t->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK) {
			n = write(t->fd, p, len);
		}
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void fd_close(void *impl)
{
	struct httpc_fd *t = impl;

	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
}

static void fd_destroy(void *impl)
{
	struct httpc_fd *t = impl;

	if (t == NULL) {
		return;
	}
	fd_close(t);
	free(t->path);
	free(t);
}

static const struct httpc_transport_ops fd_ops = {
	.open = fd_open,
	.read = fd_read,
	.write = fd_write,
	.close = fd_close,
	.destroy = fd_destroy,
};

int httpc_init(struct httpc_client *c,
	       const struct httpc_transport_ops *ops,
	       void *impl,
	       const char *host)
{
	memset(c, 0, sizeof *c);
	c->host = strdup(host);
	if (c->host == NULL) {
		return -ENOMEM;
	}
	c->ops = ops;
	c->impl = impl;
	c->max_response = HTTPC_MAX_RESPONSE;
	c->timeout_ms = -1;
	return 0;
}

int httpc_init_unix(struct httpc_client *c, const char *path)
{
	struct httpc_fd *t;
	int rv;

	t = calloc(1, sizeof *t);
	if (t == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	t->fd = -1;
	t->path = strdup(path);
	if (t->path == NULL) {
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	rv = httpc_init(c, &fd_ops, t, "unix.socket");
	if (rv != 0) {
		goto err_after_alloc;
	}
	return 0;

err_after_alloc:
	fd_destroy(t);
err:
	memset(c, 0, sizeof *c);
	return rv;
}

int httpc_init_fd(struct httpc_client *c, int fd)
{
	struct httpc_fd *t;
	int rv;

	t = calloc(1, sizeof *t);
	if (t == NULL) {
		close(fd);
		memset(c, 0, sizeof *c);
		return -ENOMEM;
	}
	t->fd = fd;
	rv = httpc_init(c, &fd_ops, t, "unix.socket");
	if (rv != 0) {
		fd_destroy(t);
		return rv;
	}
	c->connected = true;
	return 0;
}

int httpc_connect(struct httpc_client *c)
{
	int rv;

	if (c->connected) {
		return 0;
	}
	c->errmsg[0] = '\0';
	rv = c->ops->open(c->impl, c->errmsg, sizeof c->errmsg);
	if (rv != 0) {
		return rv;
	}
	c->connected = true;
	c->reused = false;
	c->rbuf_len = 0;
	return 0;
}

/* Drop the connection; the next request opens a new one. */
static void disconnect(struct httpc_client *c)
{
	if (c->connected) {
		c->ops->close(c->impl);
	}
	c->connected = false;
	c->reused = false;
	c->rbuf_len = 0;
}

void httpc_close(struct httpc_client *c)
{
	if (c == NULL || c->ops == NULL) {
		return;
	}
	disconnect(c);
	if (c->ops->destroy != NULL) {
		c->ops->destroy(c->impl);
	}
	free(c->host);
	free(c->rbuf);
	memset(c, 0, sizeof *c);
}

/* A growable byte string for the request head. */
struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};

static int strbuf_append(struct strbuf *b, const void *p, size_t n)
{
	size_t cap;
	char *data;

	if (b->len + n + 1 > b->cap) {
		cap = b->cap == 0 ? 512 : b->cap;
		while (b->len + n + 1 > cap) {
			cap *= 2;
		}
		data = realloc(b->data, cap);
		if (data == NULL) {
			return -ENOMEM;
		}
		b->data = data;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int strbuf_puts(struct strbuf *b, const char *s)
{
	return strbuf_append(b, s, strlen(s));
}

/* Append each string argument up to the terminating NULL. */
static int strbuf_putv(struct strbuf *b, ...)
{
	const char *s;
	va_list ap;
	int rv = 0;

	va_start(ap, b);
	while (rv == 0 && (s = va_arg(ap, const char *)) != NULL) {
		rv = strbuf_puts(b, s);
	}
	va_end(ap);
	return rv;
}

/* Whether @s may go into a request line or header unchanged: no control
 * characters, so no header can be smuggled in with CR/LF. */
static bool is_clean(const char *s, bool allow_space)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f || (!allow_space && ch == ' ')) {
			return false;
		}
	}
	return true;
}

static bool has_body_semantics(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	       strcmp(method, "PATCH") == 0;
}

static bool is_idempotent(const char *method)
{
	static const char *const methods[] = { "GET",    "HEAD",    "PUT",
					       "DELETE", "OPTIONS", "TRACE" };
	size_t i;

	for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		if (strcmp(method, methods[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* Serialize @req (head and body) into @b. */
static int build_request(struct httpc_client *c,
			 const struct httpc_request *req,
			 struct strbuf *b)
{
	bool have_type = false;
	char len[32];
	size_t i;
	int rv;

	if (req->method[0] == '\0' || !is_clean(req->method, false) ||
	    req->path[0] == '\0' || !is_clean(req->path, false)) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "invalid request line: %s %s", req->method,
			    req->path);
		return -EINVAL;
	}
	for (i = 0; i < req->n_headers; i++) {
		const struct httpc_header *h = &req->headers[i];
		if (h->name[0] == '\0' || !is_clean(h->name, false) ||
		    strchr(h->name, ':') != NULL || !is_clean(h->value, true)) {
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "invalid request header: %s", h->name);
			return -EINVAL;
		}
		if (strcasecmp(h->name, "Content-Type") == 0) {
			have_type = true;
		}
	}

	rv = strbuf_putv(b, req->method, " ", req->path, " HTTP/1.1\r\n",
			 "Host: ", c->host, "\r\n",
			 "User-Agent: corral/" CORRAL_VERSION "\r\n",
			 "Accept: application/json\r\n", NULL);
	for (i = 0; rv == 0 && i < req->n_headers; i++) {
		rv = strbuf_putv(b, req->headers[i].name, ": ",
				 req->headers[i].value, "\r\n", NULL);
	}
	if (rv == 0 && req->body != NULL && !have_type) {
		rv = strbuf_puts(b, "Content-Type: application/json\r\n");
	}
	if (rv == 0 && (req->body != NULL || has_body_semantics(req->method))) {
		snprintf(len, sizeof len, "%zu",
			 req->body != NULL ? req->body_len : 0);
		rv = strbuf_putv(b, "Content-Length: ", len, "\r\n", NULL);
	}
	if (rv == 0) {
		rv = strbuf_puts(b, "\r\n");
	}
	if (rv == 0 && req->body != NULL) {
		rv = strbuf_append(b, req->body, req->body_len);
	}
	if (rv != 0) {
		corral_errf(c->errmsg, sizeof c->errmsg, "out of memory");
	}
	return rv;
}

/* State of one response while libhttp-parser walks it. */
struct parse_state {
	struct httpc_response *resp; /* borrowed, being filled */
	size_t max_body;
	bool skip_body; /* the request was HEAD */
	char *field;    /* owned, header name being accumulated */
	size_t field_len;
	char *value; /* owned, header value being accumulated */
	size_t value_len;
	bool in_value; /* the last callback was on_header_value */
	size_t body_cap;
	bool complete;
	int err; /* set by a callback that aborted the parse */
};

/* Append @n bytes of @p to the NUL-terminated @buf of @len bytes. */
static int append(char **buf, size_t *len, const char *p, size_t n)
{
	char *grown;

	grown = realloc(*buf, *len + n + 1);
	if (grown == NULL) {
		return -ENOMEM;
	}
	memcpy(grown + *len, p, n);
	*len += n;
	grown[*len] = '\0';
	*buf = grown;
	return 0;
}

/* Move the accumulated header pair into the response. */
static int push_header(struct parse_state *st)
{
	struct httpc_response *resp = st->resp;
	struct httpc_response_header *headers;

	if (st->field == NULL) {
		return 0;
	}
	if (st->value == NULL) {
		st->value = strdup("");
		if (st->value == NULL) {
			return -ENOMEM;
		}
	}
	headers = realloc(resp->headers,
			  (resp->n_headers + 1) * sizeof *resp->headers);
	if (headers == NULL) {
		return -ENOMEM;
	}
	resp->headers = headers;
	headers[resp->n_headers].name = st->field;
	headers[resp->n_headers].value = st->value;
	resp->n_headers++;
	st->field = NULL;
	st->value = NULL;
	st->field_len = 0;
	st->value_len = 0;
	st->in_value = false;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;

	if (st->in_value) {
		st->err = push_header(st);
		if (st->err != 0) {
			return -1;
		}
	}
	st->err = append(&st->field, &st->field_len, at, len);
	return st->err != 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;

	st->in_value = true;
	st->err = append(&st->value, &st->value_len, at, len);
	return st->err != 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
	struct parse_state *st = p->data;

	st->err = push_header(st);
	if (st->err != 0) {
		return -1;
	}
	st->resp->status = (int)p->status_code;
	/* content_length is ULLONG_MAX when the header is absent. */
	if (p->content_length != ULLONG_MAX &&
	    p->content_length > st->max_body) {
		st->err = -EMSGSIZE;
		return -1;
	}
	/* 1: the response to HEAD has no body whatever it announces. */
	return st->skip_body ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;
	struct httpc_response *resp = st->resp;
	size_t cap;
	char *body;

	if (len > st->max_body - resp->body_len) {
		st->err = -EMSGSIZE;
		return -1;
	}
	if (resp->body_len + len + 1 > st->body_cap) {
		cap = st->body_cap == 0 ? 4096 : st->body_cap;
		while (resp->body_len + len + 1 > cap) {
			cap *= 2;
		}
		body = realloc(resp->body, cap);
		if (body == NULL) {
			st->err = -ENOMEM;
			return -1;
		}
		resp->body = body;
		st->body_cap = cap;
	}
	memcpy(resp->body + resp->body_len, at, len);
	resp->body_len += len;
	resp->body[resp->body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct parse_state *st = p->data;

	st->complete = true;
	/* Stop here: bytes after this message belong to the next one. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static void parse_state_reset(struct parse_state *st)
{
	free(st->field);
	free(st->value);
	st->field = NULL;
	st->value = NULL;
	st->field_len = 0;
	st->value_len = 0;
	st->in_value = false;
	st->body_cap = 0;
	st->complete = false;
	st->err = 0;
}

static int parse_error(struct httpc_client *c, int rv)
{
	switch (rv) {
	case -ENOMEM:
		corral_errf(c->errmsg, sizeof c->errmsg, "out of memory");
		break;
	case -EMSGSIZE:
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "response larger than %zu bytes", c->max_response);
		break;
	default:
		corral_errf(c->errmsg, sizeof c->errmsg, "read response: %s",
			    corral_strerror(rv));
		break;
	}
	return rv;
}

/* Read one response into @resp. Sets *@received when at least one byte of
 * it arrived (a request that got none may be retried). */
static int read_response(struct httpc_client *c,
			 bool head,
			 struct httpc_response *resp,
			 bool *received)
{
	struct parse_state st = { 0 };
	http_parser parser;
	enum http_errno herr;
	size_t nparsed;
	ssize_t n;
	int rv;

	*received = false;
	memset(resp, 0, sizeof *resp);
	st.resp = resp;
	st.max_body = c->max_response;
	st.skip_body = head;
	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = &st;

	if (c->rbuf == NULL) {
		c->rbuf = malloc(HTTPC_READ_CHUNK);
		if (c->rbuf == NULL) {
			rv = parse_error(c, -ENOMEM);
			goto err;
		}
		c->rbuf_cap = HTTPC_READ_CHUNK;
	}

	while (!st.complete) {
		if (c->rbuf_len == 0) {
			n = c->ops->read(c->impl, c->rbuf, c->rbuf_cap,
					 c->timeout_ms);
			if (n < 0) {
				rv = (int)n;
				if (rv == -ETIMEDOUT) {
					corral_errf(
					    c->errmsg, sizeof c->errmsg,
					    "read response: timed out after %d ms",
					    c->timeout_ms);
				} else {
					parse_error(c, rv);
				}
				goto err;
			}
			if (n == 0) {
				/* End of stream: completes an EOF-delimited
				 * body, anything else is cut short. */
				http_parser_execute(&parser, &parser_settings,
						    NULL, 0);
				if (st.err != 0) {
					rv = parse_error(c, st.err);
					goto err;
				}
				if (st.complete) {
					break;
				}
				rv = *received ? CORRAL_ETRUNC : -ECONNRESET;
				corral_errf(
				    c->errmsg, sizeof c->errmsg,
				    "read response: %s",
				    *received
					? "connection closed mid-response"
					: "connection closed before response");
				goto err;
			}
			c->rbuf_len = (size_t)n;
		}
		*received = true;
		nparsed = http_parser_execute(&parser, &parser_settings,
					      c->rbuf, c->rbuf_len);
		herr = HTTP_PARSER_ERRNO(&parser);
		if (st.err != 0) {
			rv = parse_error(c, st.err);
			goto err;
		}
		if (herr != HPE_OK && herr != HPE_PAUSED) {
			rv = CORRAL_EPROTO;
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "malformed response: %s",
				    http_errno_description(herr));
			goto err;
		}
		if (nparsed > c->rbuf_len) {
			nparsed = c->rbuf_len;
		}
		/* Keep what follows this message for the next response. */
		memmove(c->rbuf, c->rbuf + nparsed, c->rbuf_len - nparsed);
		c->rbuf_len -= nparsed;
		if (st.complete && resp->status >= 100 && resp->status < 200 &&
		    resp->status != 101) {
			/* An interim response (100 Continue): the real one
			 * follows on the same connection. */
			httpc_response_close(resp);
			st.resp = resp;
			parse_state_reset(&st);
			http_parser_init(&parser, HTTP_RESPONSE);
			parser.data = &st;
		}
	}

	resp->keep_alive = http_should_keep_alive(&parser) != 0;
	if (resp->body == NULL) {
		resp->body = calloc(1, 1);
		if (resp->body == NULL) {
			rv = parse_error(c, -ENOMEM);
			goto err;
		}
	}
	resp->content_type = httpc_response_header(resp, "Content-Type");
	resp->location = httpc_response_header(resp, "Location");
	resp->etag = httpc_response_header(resp, "ETag");
	parse_state_reset(&st);
	return 0;

err:
	parse_state_reset(&st);
	httpc_response_close(resp);
	return rv;
}

int httpc_do(struct httpc_client *c,
	     const struct httpc_request *req,
	     struct httpc_response *resp)
{
	struct strbuf b = { 0 };
	bool head = strcmp(req->method, "HEAD") == 0;
	bool retried = false;
	bool reused;
	bool received;
	int rv;

	memset(resp, 0, sizeof *resp);
	c->errmsg[0] = '\0';
	rv = build_request(c, req, &b);
	if (rv != 0) {
		goto out;
	}

retry:
	rv = httpc_connect(c);
	if (rv != 0) {
		goto out;
	}
	reused = c->reused;
	rv = c->ops->write(c->impl, b.data, b.len);
	if (rv != 0) {
		disconnect(c);
		if (reused && !retried && is_idempotent(req->method)) {
			retried = true;
			goto retry;
		}
		corral_errf(c->errmsg, sizeof c->errmsg, "send request: %s",
			    corral_strerror(rv));
		goto out;
	}
	rv = read_response(c, head, resp, &received);
	if (rv != 0) {
		disconnect(c);
		/* A kept-alive connection the server closed while idle. */
		if (reused && !received && !retried && rv == -ECONNRESET &&
		    is_idempotent(req->method)) {
			retried = true;
			goto retry;
		}
		corral_errwrapf(c->errmsg, sizeof c->errmsg, "%s %s",
				req->method, req->path);
		goto out;
	}
	if (resp->keep_alive) {
		c->reused = true;
	} else {
		disconnect(c);
	}

out:
	free(b.data);
	return rv;
}

const char *httpc_response_header(const struct httpc_response *resp,
				  const char *name)
{
	size_t i;

	for (i = 0; i < resp->n_headers; i++) {
		if (strcasecmp(resp->headers[i].name, name) == 0) {
			return resp->headers[i].value;
		}
	}
	return NULL;
}

void httpc_response_close(struct httpc_response *resp)
{
	size_t i;

	if (resp == NULL) {
		return;
	}
	for (i = 0; i < resp->n_headers; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	free(resp->headers);
	free(resp->body);
	memset(resp, 0, sizeof *resp);
}

/* Copy the string member @key of @obj, "" when absent or not a string. */
static char *dup_member(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return strdup(s != NULL ? s : "");
}

/* The integer member @key of @obj, 0 when absent or out of range. */
static int int_member(json_t *obj, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(obj, key));

	return v >= INT_MIN && v <= INT_MAX ? (int)v : 0;
}

int httpc_envelope_parse(const char *body,
			 size_t len,
			 int http_status,
			 struct httpc_envelope *env,
			 char *errmsg,
			 size_t errmsg_size)
{
	json_error_t jerr;
	const char *type;
	json_t *root;
	json_t *metadata;
	int rv;

	memset(env, 0, sizeof *env);
	root = json_loadb(body, len, 0, &jerr);
	if (root == NULL) {
		corral_errf(errmsg, errmsg_size, "invalid JSON response: %s",
			    jerr.text);
		return CORRAL_EPROTO;
	}
	if (!json_is_object(root)) {
		corral_errf(errmsg, errmsg_size,
			    "invalid response: not a JSON object");
		rv = CORRAL_EPROTO;
		goto err_after_load;
	}
	type = json_string_value(json_object_get(root, "type"));
	if (type == NULL) {
		corral_errf(errmsg, errmsg_size,
			    "invalid response: no \"type\"");
		rv = CORRAL_EPROTO;
		goto err_after_load;
	}
	if (strcmp(type, "sync") == 0) {
		env->type = HTTPC_ENVELOPE_SYNC;
	} else if (strcmp(type, "async") == 0) {
		env->type = HTTPC_ENVELOPE_ASYNC;
	} else if (strcmp(type, "error") == 0) {
		env->type = HTTPC_ENVELOPE_ERROR;
	} else {
		corral_errf(errmsg, errmsg_size,
			    "invalid response: unknown type \"%s\"", type);
		rv = CORRAL_EPROTO;
		goto err_after_load;
	}
	env->http_status = http_status;
	env->status_code = int_member(root, "status_code");
	env->error_code = int_member(root, "error_code");
	env->error = dup_member(root, "error");
	env->operation = dup_member(root, "operation");
	if (env->error == NULL || env->operation == NULL) {
		corral_errf(errmsg, errmsg_size, "out of memory");
		rv = -ENOMEM;
		goto err_after_fill;
	}
	metadata = json_object_get(root, "metadata");
	if (metadata != NULL && !json_is_null(metadata)) {
		env->metadata = json_incref(metadata);
	}
	json_decref(root);
	return 0;

err_after_fill:
	httpc_envelope_close(env);
err_after_load:
	json_decref(root);
	return rv;
}

void httpc_envelope_close(struct httpc_envelope *env)
{
	if (env == NULL) {
		return;
	}
	free(env->error);
	free(env->operation);
	json_decref(env->metadata);
	memset(env, 0, sizeof *env);
}

int httpc_query(struct httpc_client *c,
		const char *method,
		const char *path,
		const char *body,
		size_t body_len,
		struct httpc_envelope *env)
{
	struct httpc_request req = {
		.method = method,
		.path = path,
		.body = body,
		.body_len = body_len,
	};
	struct httpc_response resp;
	int rv;

	memset(env, 0, sizeof *env);
	rv = httpc_do(c, &req, &resp);
	if (rv != 0) {
		return rv;
	}
	rv = httpc_envelope_parse(resp.body, resp.body_len, resp.status, env,
				  c->errmsg, sizeof c->errmsg);
	if (rv == CORRAL_EPROTO) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "failed to fetch %s: HTTP %d", path, resp.status);
	}
	httpc_response_close(&resp);
	return rv;
}
