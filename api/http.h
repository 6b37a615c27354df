/* HTTP/1.1 server connections on libuv streams, parsed with libhttp-parser.
 *
 * One struct http_conn per accepted stream. Bytes read from the stream go
 * through the connection's transport (identity for the Unix socket, OpenSSL
 * memory BIOs for TLS) and the plaintext is fed to the parser. A complete
 * request is handed to the server's request callback; parsing of the next
 * (pipelined) request is paused until that request is answered, so responses
 * always leave in request order and a slow handler applies backpressure.
 *
 * Limits: the request head (request line and headers) may not exceed
 * HTTP_HEAD_LIMIT bytes (answered with 431), the body may not exceed the
 * server's max_body (413, checked against Content-Length before the body is
 * read and again while a chunked body grows). A request that is not complete
 * within request_timeout_ms is answered with 408; a keep-alive connection idle
 * for idle_timeout_ms is closed. */
#ifndef CORRAL_API_HTTP_H
#define CORRAL_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#define HTTP_HEAD_LIMIT (16 * 1024)
#define HTTP_MAX_HEADERS 64

struct http_conn;
struct http_server;

/* A header as received: both strings are NUL-terminated and owned by the
 * request. */
struct http_header {
	char *name;
	char *value;
};

/* One parsed request. Every pointer is owned by the connection and valid
 * until the request is answered. */
struct http_request {
	enum http_method method;
	char *url;   /* raw request target */
	char *path;  /* target up to '?', not decoded */
	char *query; /* after '?', or "" */
	struct http_header headers[HTTP_MAX_HEADERS];
	unsigned n_headers;
	char *body; /* NUL-terminated for convenience, may be empty */
	size_t body_len;
	bool keep_alive;
	uint64_t start_ns; /* uv_hrtime() when the head was complete */
};

/* Called for each complete request. The callee answers with
 * http_conn_respond(), at once or later on the loop; until then the
 * connection reads no further request. */
typedef void (*http_request_cb)(struct http_conn *conn,
				struct http_request *req);

/* Called just before a connection is freed, so an upper layer can drop any
 * reference it holds (e.g. a request still waiting for the database). */
typedef void (*http_conn_close_cb)(struct http_conn *conn);

/* Transport of a connection: turns stream bytes into plaintext and back.
 * The identity transport is used when @transport is NULL. */
struct http_transport {
	/* Feed @len bytes read from the stream. Returns 0, or a negative code
	 * to close the connection. Plaintext is handed to
	 * http_conn_feed_plain(). */
	int (*read)(struct http_conn *conn, const char *data, size_t len);
	/* Send @len plaintext bytes. Returns 0 or a negative code. */
	int (*write)(struct http_conn *conn, const char *data, size_t len);
	/* Release transport state; called once when the connection closes. */
	void (*close)(struct http_conn *conn);
	/* Optional: the final answer is queued and the connection will
	 * close; send the transport's own end-of-stream (TLS close_notify)
	 * while writing still works. May be NULL. */
	void (*shutdown)(struct http_conn *conn);
};

/* Settings and shared state of a set of connections. Caller-allocated,
 * initialised with http_server_init(). */
struct http_server {
	uv_loop_t *loop; /* borrowed */
	http_request_cb on_request;
	http_conn_close_cb on_conn_close; /* may be NULL */
	void *data;                       /* for the user */
	size_t max_body;
	uint64_t idle_timeout_ms;
	uint64_t request_timeout_ms;
	unsigned n_conns;
	struct http_conn *conns;  /* list of open connections, owned */
	char read_buf[64 * 1024]; /* shared: reads are synchronous */
};

/* Initialise @s. @loop is borrowed and must outlive @s. */
void http_server_init(struct http_server *s,
		      uv_loop_t *loop,
		      http_request_cb on_request);

/* Accept one pending connection from @listener and start serving it with
 * @transport (NULL for plain). @transport_data is stored in the connection
 * for the transport's use. Returns 0 or a negative libuv code. */
int http_server_accept(struct http_server *s,
		       uv_stream_t *listener,
		       const struct http_transport *transport,
		       void *transport_data);

/* Call @fn for every open connection of @s. @fn may close the connection
 * it is given (it stays linked until its handles have closed). */
void http_server_foreach(struct http_server *s,
			 void (*fn)(struct http_conn *conn, void *arg),
			 void *arg);

/* Close every open connection of @s. The connections finish closing on the
 * loop. */
void http_server_close_all(struct http_server *s);

/* Answer the current request of @conn: a status line, @extra_headers (each
 * "Name: value\r\n", may be NULL), Content-Type application/json unless
 * @content_type says otherwise, Content-Length and @body. The body is
 * copied. After this the connection reads the next request, or closes when
 * the request asked for it or @close is true. A connection that closed while
 * the request was pending drops the response. */
void http_conn_respond(struct http_conn *conn,
		       unsigned status,
		       const char *extra_headers,
		       const char *content_type,
		       const char *body,
		       size_t body_len,
		       bool close);

/* Like http_conn_respond() for a pre-serialised complete response (status
 * line, headers and body). */
void http_conn_respond_raw(struct http_conn *conn,
			   const char *data,
			   size_t len,
			   unsigned status,
			   bool close);

/* Feed plaintext to the parser (used by transports). Returns 0 or a negative
 * code when the connection must close. */
int http_conn_feed_plain(struct http_conn *conn, const char *data, size_t len);

/* Write bytes to the underlying stream (used by transports). */
int http_conn_write_stream(struct http_conn *conn,
			   const char *data,
			   size_t len);

/* Start closing @conn. Safe to call more than once. */
void http_conn_close(struct http_conn *conn);

/* --- Upgraded connections (websockets) --------------------------------- */

/* Plaintext read on an upgraded connection. Returns 0, or a negative code
 * to close the connection. */
typedef int (*http_upgrade_data_cb)(struct http_conn *conn,
				    const char *data,
				    size_t len,
				    void *arg);

/* An upgraded connection started closing; called once, from
 * http_conn_close(). Sending is no longer possible. */
typedef void (*http_upgrade_close_cb)(struct http_conn *conn, void *arg);

/* On a TCP connection: TCP keepalive and TCP_USER_TIMEOUT bounded by
 * @dead_ms (corral_tcp_peer_timeout()), so a peer that vanished ends the
 * connection. Returns 0, -ENOTSUP on a Unix socket, or a negated errno. */
int http_conn_peer_timeout(struct http_conn *conn, unsigned dead_ms);

/* Take over @conn from inside the handler of its current request: send
 * @head (copied; the complete "101 Switching Protocols" response head), then
 * hand every plaintext byte read (through the transport, so TLS works too)
 * to @on_data instead of the HTTP parser, starting with any bytes the client
 * sent after the request. No timeout applies any more. The request counts as
 * answered. On success returns 0 and @on_close will be called exactly once;
 * bytes already buffered may reach @on_data before this returns. On error
 * the connection is closed, @on_close is never called, and a negative code
 * is returned. */
int http_conn_upgrade(struct http_conn *conn,
		      const char *head,
		      size_t len,
		      http_upgrade_data_cb on_data,
		      http_upgrade_close_cb on_close,
		      void *arg);

/* Send @len plaintext bytes (copied) on an upgraded @conn through its
 * transport. Returns 0, or a negative code (the connection is closing or
 * the write failed; the caller decides whether to close). */
int http_conn_send(struct http_conn *conn, const char *data, size_t len);

/* Bytes handed to the stream and not yet written, for backpressure. */
size_t http_conn_pending_writes(const struct http_conn *conn);

/* Close @conn gracefully: once queued output is written, shut down the
 * sending side, discard input for a moment and close. */
void http_conn_shutdown(struct http_conn *conn);

/* Keep @conn's memory alive across an asynchronous operation; every ref must
 * be balanced by http_conn_unref(). */
void http_conn_ref(struct http_conn *conn);
void http_conn_unref(struct http_conn *conn);

/* Whether @conn has started closing (its responses are dropped). */
bool http_conn_closing(const struct http_conn *conn);

/* User pointers of a connection. */
void *http_conn_data(const struct http_conn *conn);
void http_conn_set_data(struct http_conn *conn, void *data);
void *http_conn_transport_data(const struct http_conn *conn);
struct http_server *http_conn_server(const struct http_conn *conn);
uv_stream_t *http_conn_stream(struct http_conn *conn);

/* Reason phrase of an HTTP status code ("Not Found"). */
const char *http_status_text(unsigned status);

/* Find a request header by case-insensitive name; NULL when absent. */
const char *http_request_header(const struct http_request *req,
				const char *name);

#endif /* CORRAL_API_HTTP_H */
