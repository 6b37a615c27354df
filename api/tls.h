/* TLS for the API server: the OpenSSL server context and a transport for
 * http_conn that runs OpenSSL over memory BIOs.
 *
 * The context enforces corral's security rules (DESIGN.md section 6): TLS 1.2
 * at least, TLS 1.2 cipher suites limited to ECDHE with AES-GCM or
 * CHACHA20-POLY1305, no renegotiation, no compression, no session
 * resumption. The server requests a client certificate but does not require
 * one: the trust decision is the application's, from the certificate's
 * fingerprint. Any chain is accepted, except that a client certificate that
 * breaks cert_check_policy() (RSA below 4096 bits, SHA-1 or MD5 signature,
 * ...) fails the handshake.
 *
 * The transport keeps one SSL object per connection with a memory BIO on
 * each side: ciphertext read from the stream goes into the read BIO, the
 * decrypted plaintext to http_conn_feed_plain(), and everything OpenSSL
 * writes (handshake messages, records, alerts) to http_conn_write_stream().
 * No plaintext exists before the handshake has completed, so no request can
 * be dispatched before it. */
#ifndef CORRAL_API_TLS_H
#define CORRAL_API_TLS_H

#include <openssl/ssl.h>

#include "http.h"

/* TLS 1.2 cipher suites corral accepts; TLS 1.3 keeps OpenSSL's defaults
 * (all AEAD). */
#define TLS_CIPHERS_TLS12                                              \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"   \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"

/* Key exchange groups, in order of preference. */
#define TLS_GROUPS "P-384:P-256:X25519"

/* Create a server context presenting the certificate chain in the PEM file
 * @crt_path with the private key in the PEM file @key_path (both paths
 * borrowed for the call). On success *@out receives the new context, owned
 * by the caller and freed with tls_server_ctx_destroy(); every connection
 * takes its own reference, so the context may be destroyed while
 * connections made from it are still open. On error *@out is NULL and
 * @errmsg (CORRAL_ERRMSG_SIZE bytes, may be NULL) names the failing call,
 * e.g. "SSL_CTX_use_PrivateKey_file(/x/server.key): no start line".
 * Returns 0, -ENOMEM or CORRAL_ETLS. */
int tls_server_ctx_create(const char *crt_path,
			  const char *key_path,
			  SSL_CTX **out,
			  char *errmsg);

/* Drop the caller's reference to @ctx. Accepts NULL. */
void tls_server_ctx_destroy(SSL_CTX *ctx);

/* The transport to pass to http_server_accept() together with transport
 * data made by tls_conn_new(). Static storage, never NULL. */
const struct http_transport *tls_transport(void);

/* Create the per-connection state of a server-side TLS connection on @ctx
 * (borrowed; the state takes its own reference). On success
 * *@transport_data receives the state. Once handed to http_server_accept()
 * and accepted, the connection owns it and the transport's close callback
 * frees it; until then the caller frees it with tls_conn_free(). Prefer
 * tls_server_accept(), which gets this hand-over right. Returns 0, -ENOMEM
 * or CORRAL_ETLS; *@transport_data is NULL on error. */
int tls_conn_new(SSL_CTX *ctx, void **transport_data);

/* Free state from tls_conn_new() that no connection owns. Accepts NULL. */
void tls_conn_free(void *transport_data);

/* Accept one pending connection from @listener (a uv_tcp_t) into @s as a TLS
 * connection on @ctx (borrowed; each connection takes a reference). The
 * transport state is created here and released exactly once whatever
 * http_server_accept() does on failure. Returns 0, -ENOMEM, CORRAL_ETLS or
 * the negative libuv code of http_server_accept(). On failure the pending
 * connection may still be waiting in @listener; see https.c. */
int tls_server_accept(struct http_server *s,
		      uv_stream_t *listener,
		      SSL_CTX *ctx);

/* Fingerprint of the client certificate of the TLS connection @conn: 64
 * lowercase hex digits (SHA-256 of the DER certificate), computed once when
 * the handshake completed. NULL when the client sent no certificate, when
 * @conn is not a TLS connection (its transport data is NULL, as on the Unix
 * socket), or when @conn is closing (its TLS state may be gone). The string
 * belongs to the connection and stays valid while @conn is open. */
const char *tls_conn_fingerprint(const struct http_conn *conn);

/* The client certificate of the TLS connection @conn (borrowed, valid while
 * @conn is open), or NULL in the same cases as tls_conn_fingerprint(). */
X509 *tls_conn_peer(const struct http_conn *conn);

/* Negotiated protocol version of @conn ("TLSv1.3"), or NULL when @conn has
 * no completed TLS handshake or is closing. Static storage. */
const char *tls_conn_version(const struct http_conn *conn);

#endif /* CORRAL_API_TLS_H */
