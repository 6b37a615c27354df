/* The client side of the member channel: mutual TLS from this member to
 * another one, blocking, for worker threads and relay threads only.
 *
 * A member dials another member's cluster address presenting its own
 * server.crt and accepts the peer only if it presents the cluster
 * certificate (pinned by fingerprint). Over that connection it sends one
 * HTTP/1.1 request: either a plain call (join) or `POST /internal/raft` with
 * `Upgrade: dqlite`, after which the connection carries a dqlite stream
 * (raft or client protocol) that a relay thread copies to and from one end
 * of a socketpair whose other end dqlite owns. */
#ifndef CORRAL_CLUSTER_CHANNEL_H
#define CORRAL_CLUSTER_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* Bound on dialing (TCP connect and TLS handshake) and on each read or
 * write of a plain call. */
#define CLUSTER_DIAL_TIMEOUT_MS 3000

/* A connection to a member. */
struct cluster_conn {
	SSL *ssl;   /* owned */
	int fd;     /* owned */
	char *rbuf; /* owned: bytes read past the response head */
	size_t rbuf_len;
	char *head; /* owned: the last response's head (status line and
		       headers, CRLF-separated), or NULL */
};

/* Copy the value of header @name (case-insensitive) of the last response
 * on @conn into @out (@size bytes, truncated, NUL-terminated). Returns
 * false, with @out "", when there is none. */
bool cluster__head_value(const struct cluster_conn *conn,
			 const char *name,
			 char *out,
			 size_t size);

/* Create a client context presenting the certificate @crt_path with key
 * @key_path (paths borrowed), with corral's TLS policy (TLS 1.2 or later,
 * ECDHE with AEAD ciphers). Server certificates are checked by fingerprint
 * in cluster__dial(), not by chain. *@out is owned by the caller
 * (SSL_CTX_free()). Returns 0, -ENOMEM or CORRAL_ETLS with @errmsg
 * (CORRAL_ERRMSG_SIZE bytes) filled. */
int cluster__tls_ctx_create(const char *crt_path,
			    const char *key_path,
			    SSL_CTX **out,
			    char *errmsg);

/* Connect to @address ("host:port" or "[v6]:port", borrowed) and complete a
 * TLS handshake on @ctx (borrowed) within CLUSTER_DIAL_TIMEOUT_MS; the peer
 * must present the certificate whose fingerprint is @pin (64 lowercase hex
 * digits, compared in constant time). On success @conn is open and owned by
 * the caller (cluster__conn_close()). Returns 0, CORRAL_EINVALID (bad
 * address), CORRAL_ETLS (handshake failed or wrong certificate), -ENOMEM or
 * a negated errno, with @errmsg such as "dial 10.0.0.2:8443: TLS handshake:
 * certificate fingerprint mismatch". */
int cluster__dial(SSL_CTX *ctx,
		  const char *address,
		  const char *pin,
		  struct cluster_conn *conn,
		  char *errmsg);

/* Close @conn and free what it owns. Accepts a closed connection. */
void cluster__conn_close(struct cluster_conn *conn);

/* Send one request (@method and @path borrowed; @extra_headers, each
 * "Name: value\r\n", may be NULL) carrying the @body_len bytes at @body
 * (borrowed; may be NULL when @body_len is 0) as @content_type (borrowed),
 * on @conn, and read the response head and its Content-Length body.
 * *@status receives the HTTP status, *@body_out (may be NULL) the body
 * (malloc'd, NUL-terminated, owned by the caller). Bytes after the response
 * stay in conn->rbuf (for an upgraded connection). Returns 0,
 * CORRAL_EINVALID when the request head does not fit its buffer,
 * CORRAL_EPROTO for a malformed response, or an I/O error, with @errmsg
 * filled. */
int cluster__request_bytes(struct cluster_conn *conn,
			   const char *method,
			   const char *path,
			   const char *extra_headers,
			   const char *content_type,
			   const char *body,
			   size_t body_len,
			   unsigned *status,
			   char **body_out,
			   char *errmsg);

/* cluster__request_bytes() with the NUL-terminated JSON @body (may be NULL:
 * no body) sent as application/json. */
int cluster__request(struct cluster_conn *conn,
		     const char *method,
		     const char *path,
		     const char *extra_headers,
		     const char *body,
		     unsigned *status,
		     char **body_out,
		     char *errmsg);

/* Hand @conn (ownership transferred, also on error) to a new detached
 * thread that copies bytes between it and the stream socket @fd (also
 * transferred) until either side closes, then closes both. Returns 0 or a
 * negated errno (both are closed then). */
int cluster__relay_start(struct cluster_conn *conn, int fd);

#endif /* CORRAL_CLUSTER_CHANNEL_H */
