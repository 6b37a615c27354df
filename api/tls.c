#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <corral/cert.h>
#include <corral/err.h>
#include <corral/log.h>

#include "tls.h"

/* Largest plaintext handed to SSL_write_ex() at once, so that the ciphertext
 * waiting in the write BIO stays bounded for large responses. */
#define TLS_WRITE_CHUNK (64 * 1024)

/* Session id context: required by OpenSSL whenever client certificates are
 * requested, even with the session cache off. */
#define TLS_SESSION_ID_CTX "corral"

/* Per-connection state, the transport data of a TLS http_conn. */
struct tls_conn {
	SSL *ssl;  /* owned; owns both BIOs */
	BIO *rbio; /* borrowed from ssl: ciphertext from the peer */
	BIO *wbio; /* borrowed from ssl: ciphertext to the peer */
	bool handshake_done;
	bool fatal;     /* OpenSSL failed: no more records, no close_notify */
	bool reading;   /* inside tls_read(): close must not free yet */
	bool closed;    /* close ran while reading; tls_read() frees */
	bool *released; /* set when the close callback runs; borrowed */
	bool have_fingerprint;
	char fingerprint[CORRAL_CERT_FINGERPRINT_LEN + 1];
	char errmsg[CORRAL_ERRMSG_SIZE]; /* why the peer was refused */
};

/* Fill @errmsg with "@what: <reason of the last OpenSSL error>", clear
 * OpenSSL's error queue and return the matching code. */
static int ossl_fail(char *errmsg, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = NULL;
	int rv = CORRAL_ETLS;

	if (e != 0) {
		reason = ERR_reason_error_string(e);
		if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
			rv = -ENOMEM;
		}
	}
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s: %s", what,
		    reason != NULL ? reason : "unknown error");
	ERR_clear_error();
	return rv;
}

/* PEM password callback that refuses: OpenSSL's default one would prompt on
 * the terminal for an encrypted key. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Any chain is accepted, since trust comes from the fingerprint of the
 * client's certificate, but that certificate itself must meet the policy.
 * OpenSSL calls this for every certificate of the chain, possibly more than
 * once, with @preverify_ok 0 for the errors an untrusted chain always has
 * (self-signed, unknown issuer); those are overridden. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	char why[CORRAL_ERRMSG_SIZE];
	struct tls_conn *t;
	SSL *ssl;

	(void)preverify_ok;
	if (cert == NULL || cert != X509_STORE_CTX_get0_cert(store)) {
		return 1;
	}
	if (cert_check_policy(cert, why) == 0) {
		return 1;
	}
	ssl = X509_STORE_CTX_get_ex_data(store,
					 SSL_get_ex_data_X509_STORE_CTX_idx());
	t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	if (t != NULL) {
		corral_errf(t->errmsg, sizeof t->errmsg,
			    "client certificate refused: %s", why);
	}
	X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

/* Settings that do not depend on the certificate. */
static int ctx_configure(SSL_CTX *ctx, char *errmsg)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		return ossl_fail(errmsg, "SSL_CTX_set_min_proto_version()");
	}
	/* Never below level 2 (RSA/DH >= 2048 bits, no SHA-1 signatures),
	 * whatever the system's openssl.cnf says. */
	if (SSL_CTX_get_security_level(ctx) < 2) {
		SSL_CTX_set_security_level(ctx, 2);
	}
	SSL_CTX_set_options(
	    ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
		     SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	/* No resumption: every connection presents its certificate again,
	 * and no ticket key needs rotating. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!SSL_CTX_set_num_tickets(ctx, 0)) {
		return ossl_fail(errmsg, "SSL_CTX_set_num_tickets()");
	}
	if (!SSL_CTX_set_session_id_context(
		ctx, (const unsigned char *)TLS_SESSION_ID_CTX,
		sizeof TLS_SESSION_ID_CTX - 1)) {
		return ossl_fail(errmsg, "SSL_CTX_set_session_id_context()");
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12)) {
		return ossl_fail(errmsg, "SSL_CTX_set_cipher_list()");
	}
	if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		return ossl_fail(errmsg, "SSL_CTX_set1_groups_list()");
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	SSL_CTX_set_default_passwd_cb(ctx, no_password_cb);
	return 0;
}

/* Load the certificate chain and key, and hold our own certificate to the
 * same policy as our peers'. */
static int ctx_load(SSL_CTX *ctx,
		    const char *crt_path,
		    const char *key_path,
		    char *errmsg)
{
	char what[CORRAL_ERRMSG_SIZE];
	char why[CORRAL_ERRMSG_SIZE];

	if (!SSL_CTX_use_certificate_chain_file(ctx, crt_path)) {
		snprintf(what, sizeof what,
			 "SSL_CTX_use_certificate_chain_file(%s)", crt_path);
		return ossl_fail(errmsg, what);
	}
	if (!SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM)) {
		snprintf(what, sizeof what, "SSL_CTX_use_PrivateKey_file(%s)",
			 key_path);
		return ossl_fail(errmsg, what);
	}
	if (!SSL_CTX_check_private_key(ctx)) {
		snprintf(what, sizeof what, "SSL_CTX_check_private_key(%s)",
			 key_path);
		return ossl_fail(errmsg, what);
	}
	if (cert_check_policy(SSL_CTX_get0_certificate(ctx), why) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "server certificate %s: %s", crt_path, why);
		return CORRAL_ETLS;
	}
	return 0;
}

int tls_server_ctx_create(const char *crt_path,
			  const char *key_path,
			  SSL_CTX **out,
			  char *errmsg)
{
	SSL_CTX *ctx;
	int rv;

	*out = NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		return ossl_fail(errmsg, "SSL_CTX_new()");
	}
	rv = ctx_configure(ctx, errmsg);
	if (rv != 0) {
		goto err_after_ctx;
	}
	rv = ctx_load(ctx, crt_path, key_path, errmsg);
	if (rv != 0) {
		goto err_after_ctx;
	}
	*out = ctx;
	return 0;

err_after_ctx:
	SSL_CTX_free(ctx);
	return rv;
}

void tls_server_ctx_destroy(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* Per-connection state                                                      */

int tls_conn_new(SSL_CTX *ctx, void **transport_data)
{
	struct tls_conn *t;
	BIO *rbio;
	BIO *wbio;
	int rv = -ENOMEM;

	*transport_data = NULL;
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		return -ENOMEM;
	}
	t->ssl = SSL_new(ctx);
	if (t->ssl == NULL) {
		goto err_after_alloc;
	}
	rbio = BIO_new(BIO_s_mem());
	if (rbio == NULL) {
		goto err_after_ssl;
	}
	wbio = BIO_new(BIO_s_mem());
	if (wbio == NULL) {
		BIO_free(rbio);
		goto err_after_ssl;
	}
	/* An empty read BIO means "wait for more", not end of stream. */
	BIO_set_mem_eof_return(rbio, -1);
	BIO_set_mem_eof_return(wbio, -1);
	SSL_set_bio(t->ssl, rbio, wbio);
	t->rbio = rbio;
	t->wbio = wbio;
	SSL_set_accept_state(t->ssl);
	if (!SSL_set_app_data(t->ssl, t)) {
		goto err_after_ssl;
	}
	*transport_data = t;
	return 0;

err_after_ssl:
	SSL_free(t->ssl);
err_after_alloc:
	free(t);
	ERR_clear_error();
	return rv;
}

void tls_conn_free(void *transport_data)
{
	struct tls_conn *t = transport_data;

	if (t == NULL) {
		return;
	}
	SSL_free(t->ssl);
	OPENSSL_cleanse(t, sizeof *t);
	free(t);
}

/* The TLS state of @conn, or NULL when it has none or may have freed it. */
static struct tls_conn *conn_state(const struct http_conn *conn)
{
	if (conn == NULL || http_conn_closing(conn)) {
		return NULL;
	}
	return http_conn_transport_data(conn);
}

const char *tls_conn_fingerprint(const struct http_conn *conn)
{
	struct tls_conn *t = conn_state(conn);

	if (t == NULL || !t->have_fingerprint) {
		return NULL;
	}
	return t->fingerprint;
}

X509 *tls_conn_peer(const struct http_conn *conn)
{
	struct tls_conn *t = conn_state(conn);

	if (t == NULL || !t->handshake_done) {
		return NULL;
	}
	return SSL_get0_peer_certificate(t->ssl);
}

const char *tls_conn_version(const struct http_conn *conn)
{
	struct tls_conn *t = conn_state(conn);

	if (t == NULL || !t->handshake_done) {
		return NULL;
	}
	return SSL_get_version(t->ssl);
}

/* ------------------------------------------------------------------------ */
/* Transport                                                                 */

/* "ip:port" of the peer of @conn for log lines. */
static void peer_name(struct http_conn *conn, char *out, size_t size)
{
	uv_stream_t *stream = http_conn_stream(conn);
	struct sockaddr_storage ss;
	int len = (int)sizeof ss;
	char ip[64] = "?";
	int port = 0;

	snprintf(out, size, "?");
	if (stream->type != UV_TCP ||
	    uv_tcp_getpeername((uv_tcp_t *)stream, (struct sockaddr *)&ss,
			       &len) != 0) {
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		uv_ip4_name(sin, ip, sizeof ip);
		port = ntohs(sin->sin_port);
		snprintf(out, size, "%s:%d", ip, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(sin6, ip, sizeof ip);
		port = ntohs(sin6->sin6_port);
		snprintf(out, size, "[%s]:%d", ip, port);
	}
}

/* Send whatever OpenSSL queued in the write BIO: handshake messages,
 * records, alerts. */
static int tls_flush(struct http_conn *conn, struct tls_conn *t)
{
	char *data = NULL;
	long n = BIO_get_mem_data(t->wbio, &data);
	int rv;

	if (n <= 0 || data == NULL) {
		return 0;
	}
	rv = http_conn_write_stream(conn, data, (size_t)n);
	(void)BIO_reset(t->wbio);
	return rv;
}

/* Log why the connection failed and return CORRAL_ETLS. A refused client
 * certificate is worth an info line; anything else (scanners, clients with
 * old protocols) only a debug line. */
static int tls_fail(struct http_conn *conn,
		    struct tls_conn *t,
		    const char *when,
		    int ssl_err)
{
	bool refused = t->errmsg[0] != '\0';
	const char *reason = NULL;
	unsigned long e;
	char peer[80];

	t->fatal = true;
	if (!refused) {
		e = ERR_peek_last_error();
		if (e != 0) {
			reason = ERR_reason_error_string(e);
		} else if (ssl_err == SSL_ERROR_SYSCALL) {
			reason = "unexpected end of stream";
		}
		corral_errf(t->errmsg, sizeof t->errmsg, "%s: %s", when,
			    reason != NULL ? reason : "unknown error");
	}
	ERR_clear_error();
	if (refused) {
		peer_name(conn, peer, sizeof peer);
		log_info(
		    "msg=\"TLS client certificate refused\" remote=%s "
		    "error=\"%s\"",
		    peer, t->errmsg);
	} else if (log_enabled(LOG_LEVEL_DEBUG)) {
		peer_name(conn, peer, sizeof peer);
		log_debug(
		    "msg=\"TLS connection failed\" remote=%s error=\"%s\"",
		    peer, t->errmsg);
	}
	return CORRAL_ETLS;
}

/* The handshake just completed: hold the client certificate to the policy
 * once more (the verify callback is not the only path that could let a
 * certificate through) and remember its fingerprint. */
static int tls_handshake_done(struct http_conn *conn, struct tls_conn *t)
{
	X509 *peer = SSL_get0_peer_certificate(t->ssl);
	char why[CORRAL_ERRMSG_SIZE];

	t->handshake_done = true;
	if (peer == NULL) {
		return 0;
	}
	if (cert_check_policy(peer, why) != 0) {
		corral_errf(t->errmsg, sizeof t->errmsg,
			    "client certificate refused: %s", why);
		return tls_fail(conn, t, "TLS handshake", SSL_ERROR_SSL);
	}
	if (cert_fingerprint_x509(peer, t->fingerprint) != 0) {
		return tls_fail(conn, t, "cert_fingerprint_x509()",
				SSL_ERROR_SSL);
	}
	t->have_fingerprint = true;
	return 0;
}

/* Advance the handshake, then decrypt every complete record. */
static int tls_pump(struct http_conn *conn, struct tls_conn *t)
{
	char buf[16 * 1024];
	size_t n;
	int err;
	int rv;
	int r;

	if (!t->handshake_done) {
		ERR_clear_error();
		r = SSL_do_handshake(t->ssl);
		/* Flush first: a failed handshake leaves an alert to send. */
		rv = tls_flush(conn, t);
		if (r != 1) {
			err = SSL_get_error(t->ssl, r);
			if (err == SSL_ERROR_WANT_READ) {
				return rv;
			}
			return tls_fail(conn, t, "TLS handshake", err);
		}
		if (rv != 0) {
			return rv;
		}
		rv = tls_handshake_done(conn, t);
		if (rv != 0) {
			return rv;
		}
	}
	for (;;) {
		ERR_clear_error();
		r = SSL_read_ex(t->ssl, buf, sizeof buf, &n);
		if (r == 1) {
			rv = http_conn_feed_plain(conn, buf, n);
			if (rv != 0 || t->closed) {
				OPENSSL_cleanse(buf, n);
				return rv;
			}
			continue;
		}
		err = SSL_get_error(t->ssl, r);
		rv = tls_flush(conn, t);
		switch (err) {
		case SSL_ERROR_WANT_READ:
			break;
		case SSL_ERROR_ZERO_RETURN:
			/* close_notify from the peer: close, answering with
			 * ours. */
			rv = -ECONNRESET;
			break;
		default:
			rv = tls_fail(conn, t, "SSL_read_ex()", err);
			break;
		}
		OPENSSL_cleanse(buf, sizeof buf);
		return rv;
	}
}

static int tls_read(struct http_conn *conn, const char *data, size_t len)
{
	struct tls_conn *t = http_conn_transport_data(conn);
	size_t written = 0;
	int rv;

	if (t->fatal) {
		return CORRAL_ETLS;
	}
	if (len > 0 &&
	    (!BIO_write_ex(t->rbio, data, len, &written) || written != len)) {
		ERR_clear_error();
		return -ENOMEM;
	}
	/* Plaintext handed to the parser may make the request handler close
	 * the connection, and so run tls_close(), before tls_pump()
	 * returns. */
	t->reading = true;
	rv = tls_pump(conn, t);
	t->reading = false;
	if (t->closed) {
		tls_conn_free(t);
	}
	return rv;
}

static int tls_write(struct http_conn *conn, const char *data, size_t len)
{
	struct tls_conn *t = http_conn_transport_data(conn);
	size_t chunk;
	size_t n;
	int rv;

	if (!t->handshake_done || t->fatal) {
		return CORRAL_ETLS;
	}
	while (len > 0) {
		chunk = len < TLS_WRITE_CHUNK ? len : TLS_WRITE_CHUNK;
		ERR_clear_error();
		/* Writes into a memory BIO cannot block: a failure is
		 * final. */
		if (!SSL_write_ex(t->ssl, data, chunk, &n)) {
			return tls_fail(conn, t, "SSL_write_ex()",
					SSL_get_error(t->ssl, 0));
		}
		data += n;
		len -= n;
		rv = tls_flush(conn, t);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

/* Best effort: the connection is already closing, so http_conn_write_stream()
 * refuses; a close_notify that does not fit into the socket at once, or that
 * would overtake queued writes, is dropped. */
static void tls_send_close_notify(struct http_conn *conn, struct tls_conn *t)
{
	char *data = NULL;
	long n;
	uv_buf_t buf;

	if (!t->handshake_done || t->fatal ||
	    (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) != 0) {
		return;
	}
	ERR_clear_error();
	if (SSL_shutdown(t->ssl) < 0) {
		ERR_clear_error();
		return;
	}
	n = BIO_get_mem_data(t->wbio, &data);
	if (n > 0 && data != NULL) {
		buf = uv_buf_init(data, (unsigned)n);
		(void)uv_try_write(http_conn_stream(conn), &buf, 1);
	}
	(void)BIO_reset(t->wbio);
}

static void tls_close(struct http_conn *conn)
{
	struct tls_conn *t = http_conn_transport_data(conn);

	if (t == NULL) {
		return;
	}
	if (t->released != NULL) {
		*t->released = true;
		t->released = NULL;
	}
	tls_send_close_notify(conn, t);
	if (t->reading) {
		t->closed = true;
		return;
	}
	tls_conn_free(t);
}

/* Before a graceful close: close_notify goes out ahead of the FIN, so
 * clients see a clean end of stream rather than a truncation. */
static void tls_shutdown(struct http_conn *conn)
{
	struct tls_conn *t = http_conn_transport_data(conn);

	if (t == NULL) {
		return;
	}
	if (!t->handshake_done || t->fatal ||
	    (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) != 0) {
		return;
	}
	ERR_clear_error();
	if (SSL_shutdown(t->ssl) < 0) {
		ERR_clear_error();
		return;
	}
	(void)tls_flush(conn, t);
}

static const struct http_transport transport = {
	.read = tls_read,
	.write = tls_write,
	.close = tls_close,
	.shutdown = tls_shutdown,
};

const struct http_transport *tls_transport(void)
{
	return &transport;
}

int tls_server_accept(struct http_server *s,
		      uv_stream_t *listener,
		      SSL_CTX *ctx)
{
	struct tls_conn *t;
	bool released = false;
	void *data;
	int rv;

	rv = tls_conn_new(ctx, &data);
	if (rv != 0) {
		return rv;
	}
	/* http_server_accept() releases the transport data through the
	 * close callback on some failures and not on others: watch. */
	t = data;
	t->released = &released;
	rv = http_server_accept(s, listener, &transport, t);
	if (!released) {
		t->released = NULL;
		if (rv != 0) {
			tls_conn_free(t);
		}
	}
	return rv;
}
