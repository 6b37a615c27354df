/* A small blocking HTTP/1.1 client.
 *
 * One struct httpc_client owns one connection at a time (keep-alive: several
 * requests reuse it; it is reopened when the server closed it). The bytes move
 * through a transport, a small table of function pointers, so the same code
 * runs over a Unix socket, over a test's socketpair, and later over TLS.
 *
 * Responses are parsed with libhttp-parser; bodies may be sized by
 * Content-Length, chunked, or delimited by EOF. A body larger than the
 * client's limit (HTTPC_MAX_RESPONSE by default) fails with -EMSGSIZE, as
 * soon as Content-Length announces it or the chunks exceed it; the status
 * line and headers are capped by libhttp-parser at 80 KiB (CORRAL_EPROTO).
 *
 * On top of HTTP, httpc_envelope_parse() decodes LXD's JSON response
 * envelope ({"type":"sync","status_code":200,"metadata":...}). */
#ifndef CORRAL_HTTPC_H
#define CORRAL_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include <corral/err.h>

/* Default bound on the body of one response. */
#define HTTPC_MAX_RESPONSE (64u * 1024u * 1024u)

/* How a connection moves bytes. Every function gets the transport's @impl
 * pointer given to httpc_init(). Functions return 0 (or a byte count) on
 * success and a negative code on failure. */
struct httpc_transport_ops {
	/* Open the connection. On failure fill @errmsg (of @errmsg_size bytes)
	 * with a message that names the peer and the cause, and return a
	 * negative code. Called again after close() to reconnect. */
	int (*open)(void *impl, char *errmsg, size_t errmsg_size);
	/* Read up to @len bytes into @buf, waiting at most @timeout_ms
	 * milliseconds (negative: forever). Return the count, 0 at end of
	 * stream, -ETIMEDOUT, or another negative code. */
	ssize_t (*read)(void *impl, void *buf, size_t len, int timeout_ms);
	/* Write all @len bytes of @buf. Return 0 or a negative code; must not
	 * raise SIGPIPE. */
	int (*write)(void *impl, const void *buf, size_t len);
	/* Close the connection if open; open() may follow. */
	void (*close)(void *impl);
	/* Close and free @impl. May be NULL when @impl is not owned. */
	void (*destroy)(void *impl);
};

/* One request header. Both strings are borrowed. */
struct httpc_header {
	const char *name;
	const char *value;
};

/* A request. Every pointer is borrowed for the duration of the call. */
struct httpc_request {
	const char *method;                 /* "GET", "PUT", ... */
	const char *path;                   /* "/1.0?recursion=1" */
	const struct httpc_header *headers; /* extra headers, may be NULL */
	size_t n_headers;
	const void *body; /* may be NULL */
	size_t body_len;
};

/* A response header; both strings owned by the response. */
struct httpc_response_header {
	char *name;
	char *value;
};

/* A parsed response. Filled by httpc_do(); release with
 * httpc_response_close(). */
struct httpc_response {
	int status;                            /* HTTP status code */
	struct httpc_response_header *headers; /* owned, in arrival order */
	size_t n_headers;
	const char *content_type; /* borrowed from headers, or NULL */
	const char *location;     /* borrowed from headers, or NULL */
	const char *etag;         /* borrowed from headers, or NULL */
	char *body;               /* owned, NUL-terminated, never NULL */
	size_t body_len;          /* without the added NUL */
	bool keep_alive;          /* the connection may carry another request */
};

/* A client: one connection through one transport. */
struct httpc_client {
	const struct httpc_transport_ops *ops; /* borrowed, usually static */
	void *impl;                            /* owned if ops->destroy */
	char *host;                            /* owned, Host header value */
	bool connected;                        /* ops->open() succeeded */
	bool reused; /* a response was already read on it */
	char *rbuf;  /* owned, bytes read but not parsed */
	size_t rbuf_len;
	size_t rbuf_cap;
	size_t max_response; /* body bytes; HTTPC_MAX_RESPONSE by default */
	int timeout_ms;      /* per read; negative: wait forever */
	char errmsg[CORRAL_ERRMSG_SIZE]; /* why the last call failed */
};

/* Initialize @c over a caller-provided transport. @impl is handed to every
 * function of @ops; if @ops->destroy is set, @c owns @impl from a successful
 * return on and destroys it in httpc_close(). @host (copied) is sent as the
 * Host header. Nothing is connected until the first request. Returns 0 or
 * -ENOMEM (then @impl still belongs to the caller). */
int httpc_init(struct httpc_client *c,
	       const struct httpc_transport_ops *ops,
	       void *impl,
	       const char *host);

/* Initialize @c to talk to the Unix socket at @path (copied), with the Host
 * header "unix.socket" like LXD's clients. Nothing is connected until the
 * first request or httpc_connect(). Returns 0 or -ENOMEM. */
int httpc_init_unix(struct httpc_client *c, const char *path);

/* Initialize @c over the already connected stream socket @fd, which @c
 * adopts (it is closed by httpc_close(), also on error). Such a client
 * cannot reconnect once the peer closed the connection. Used by tests with
 * a socketpair. Returns 0 or -ENOMEM. */
int httpc_init_fd(struct httpc_client *c, int fd);

/* Open the connection now, if not open yet, so a caller can report
 * "cannot connect" before doing anything else. Returns 0 or a negative
 * code with c->errmsg set ("cannot connect to PATH: CAUSE"). */
int httpc_connect(struct httpc_client *c);

/* Close the connection and free everything @c owns. Accepts a zeroed or
 * already closed client. */
void httpc_close(struct httpc_client *c);

/* Send @req and read the whole response into @resp (which the caller must
 * release with httpc_response_close() after a 0 return; on error it holds
 * nothing). A request with a body gets Content-Length and, unless given,
 * "Content-Type: application/json". When the server closed an idle kept-
 * alive connection, an idempotent request is retried once on a fresh one.
 * Returns 0 for any HTTP status, or a negative code with c->errmsg set:
 * connection errors (negative errno), -ETIMEDOUT, CORRAL_EPROTO (not
 * HTTP), CORRAL_ETRUNC (connection closed mid-response), -EMSGSIZE (over
 * c->max_response), -ENOMEM. After an error the connection is closed. */
int httpc_do(struct httpc_client *c,
	     const struct httpc_request *req,
	     struct httpc_response *resp);

/* Find the first header called @name (case-insensitive) in @resp. Returns
 * a string owned by @resp, or NULL. */
const char *httpc_response_header(const struct httpc_response *resp,
				  const char *name);

/* Free what @resp owns and zero it. Accepts a zeroed response. */
void httpc_response_close(struct httpc_response *resp);

/* Kinds of LXD response envelope. */
enum httpc_envelope_type {
	HTTPC_ENVELOPE_SYNC = 0,
	HTTPC_ENVELOPE_ASYNC,
	HTTPC_ENVELOPE_ERROR,
};

/* A decoded LXD response envelope. Release with httpc_envelope_close(). */
struct httpc_envelope {
	enum httpc_envelope_type type;
	int http_status;  /* copied from the HTTP response */
	int status_code;  /* "status_code": 200, 100, ... (0 if absent) */
	int error_code;   /* "error_code": 404, ... (0 if absent) */
	char *error;      /* owned, "error" text, "" if absent */
	char *operation;  /* owned, "operation" URL, "" if absent */
	json_t *metadata; /* owned reference; NULL if absent or null */
};

/* Decode the envelope in @body (@len bytes, need not be NUL-terminated)
 * received with HTTP status @http_status into @env. On success the caller
 * releases @env with httpc_envelope_close(). Returns 0; CORRAL_EPROTO if
 * the body is not a JSON object with a known "type" (then @errmsg, of
 * @errmsg_size bytes, says why); -ENOMEM. On error @env holds nothing. */
int httpc_envelope_parse(const char *body,
			 size_t len,
			 int http_status,
			 struct httpc_envelope *env,
			 char *errmsg,
			 size_t errmsg_size);

/* Free what @env owns and zero it. Accepts a zeroed envelope. */
void httpc_envelope_close(struct httpc_envelope *env);

/* Convenience for API calls: send @method @path with the optional JSON
 * @body (@body_len bytes, borrowed; NULL for none) and decode the reply's
 * envelope into @env. An error envelope is not a failure: 0 is returned and
 * env->type says HTTPC_ENVELOPE_ERROR. Returns the codes of httpc_do() and
 * httpc_envelope_parse(), with c->errmsg set; a reply that is not an
 * envelope gives CORRAL_EPROTO and "failed to fetch PATH: HTTP STATUS". */
int httpc_query(struct httpc_client *c,
		const char *method,
		const char *path,
		const char *body,
		size_t body_len,
		struct httpc_envelope *env);

/* ---- TLS transport (node/httpc_tls.c) ----
 *
 * An OpenSSL client with corral's policy: TLS 1.2 or later, ECDHE with an
 * AEAD cipher for TLS 1.2 (the server's list), groups P-384, P-256 and
 * X25519. Connecting and the handshake are bounded by a timeout; reads use
 * c->timeout_ms. */

/* How a TLS client presents itself and decides to trust the server. At
 * least one of @pin, @ca_file and @fetch must be given. Every string is
 * borrowed for the duration of httpc_init_tls(). */
struct httpc_tls_config {
	const char *crt_file;   /* client certificate (PEM), or NULL for none */
	const char *key_file;   /* its private key (PEM); NULL: in crt_file */
	const char *pin;        /* the server's fingerprint (64 lowercase hex
				   digits), compared in constant time, or NULL */
	const char *ca_file;    /* PEM CA file the server certificate must chain
				   to (with its host checked), or NULL */
	bool fetch;             /* accept any server certificate, so that the
				   caller can show it (httpc_tls_peer_pem()) */
	int connect_timeout_ms; /* TCP connect + handshake; <= 0: 10 s */
};

/* Initialize @c to talk HTTPS to @host (a name or an IP literal, without
 * brackets) on @port. A handshake whose server certificate does not match
 * @cfg->pin, or (with a CA file and no pin) does not verify, fails with
 * CORRAL_ETLS and a message naming both fingerprints or the reason, and
 * httpc_tls_pin_mismatch() then returns true. Nothing is connected until
 * the first request or httpc_connect(). Returns 0, -EINVAL (bad @cfg),
 * -ENOMEM or CORRAL_ETLS (the client certificate, key or CA file cannot be
 * loaded), with a message in @errmsg (CORRAL_ERRMSG_SIZE bytes). */
int httpc_init_tls(struct httpc_client *c,
		   const char *host,
		   const char *port,
		   const struct httpc_tls_config *cfg,
		   char *errmsg);

/* The PEM text of the server certificate seen by the last handshake of the
 * TLS client @c (owned by @c), or NULL (no handshake yet, another
 * transport). */
const char *httpc_tls_peer_pem(const struct httpc_client *c);

/* The fingerprint of that certificate (owned by @c), or NULL. */
const char *httpc_tls_peer_fingerprint(const struct httpc_client *c);

/* Whether that certificate chained to the configured CA file. */
bool httpc_tls_peer_verified(const struct httpc_client *c);

/* Whether the last handshake failed because the server certificate is not
 * the pinned one. */
bool httpc_tls_pin_mismatch(const struct httpc_client *c);

/* ---- Websocket client (node/httpc_ws.c, RFC 6455) ---- */

/* Bound on one received message. */
#define HTTPC_WS_MAX_MESSAGE (16u * 1024u * 1024u)

/* Size of a Sec-WebSocket-Accept value with its NUL. */
#define HTTPC_WS_ACCEPT_SIZE 32

/* A websocket on the connection of an httpc client. */
struct httpc_ws {
	struct httpc_client *c; /* borrowed; its connection carries frames */
	unsigned char *msg;     /* owned, the message being read */
	size_t msg_len;
	size_t msg_cap;
};

/* Upgrade the connection of @c (borrowed; it must outlive @ws) with
 * GET @path to a websocket and check the server's Sec-WebSocket-Accept.
 * A refusal gives CORRAL_EFORBIDDEN (403) or CORRAL_EPROTO with the
 * server's error text in c->errmsg; transport failures the codes of
 * httpc_do(). Returns 0 when @ws is ready. */
int httpc_ws_open(struct httpc_ws *ws,
		  struct httpc_client *c,
		  const char *path);

/* Read the next text or binary message, waiting at most @timeout_ms per
 * read (negative: forever). Pings are answered with pongs on the way.
 * *@out (owned by @ws, NUL-terminated, valid until the next call) and
 * *@len receive the message. Returns 0; -ECONNRESET when the server closed
 * the websocket or the connection; CORRAL_EPROTO, -EMSGSIZE, -ETIMEDOUT or
 * another negative code, with c->errmsg set. */
int httpc_ws_read(struct httpc_ws *ws,
		  const char **out,
		  size_t *len,
		  int timeout_ms);

/* Send one frame with @opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong)
 * carrying the @len bytes at @data, masked with a random key as clients
 * must. Returns 0 or a negative code. */
int httpc_ws_send(struct httpc_ws *ws,
		  int opcode,
		  const void *data,
		  size_t len);

/* Send a close frame (best effort) and free what @ws owns. The connection
 * itself belongs to the httpc client. */
void httpc_ws_close(struct httpc_ws *ws);

/* Encode one masked client frame of @opcode with the @len bytes at @data
 * and the key @mask into @out, which must hold @len + 14 bytes. Returns the
 * frame's length. */
size_t httpc_ws_frame(int opcode,
		      const void *data,
		      size_t len,
		      const unsigned char mask[4],
		      unsigned char *out);

/* The Sec-WebSocket-Accept value for the Sec-WebSocket-Key @key ("" if
 * OpenSSL fails). */
void httpc_ws_accept_key(const char *key, char out[HTTPC_WS_ACCEPT_SIZE]);

#endif /* CORRAL_HTTPC_H */
