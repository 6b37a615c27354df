/* Unit tests of api/tls.c and api/https.c: the server context's settings,
 * and real handshakes against an https_listener on 127.0.0.1 with a libuv
 * loop on the main thread and a blocking OpenSSL client on a second thread.
 * Every refusal is paired with a control: the same client completes its
 * handshake against a permissive server, so the refusal is the policy's. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <corral/cert.h>
#include <corral/err.h>
#include <corral/log.h>

#include "http.h"
#include "https.h"
#include "tls.h"

/* Size of the body GET /big answers, several TLS write chunks. */
#define BIG_BODY (300 * 1024)

/* Certificates shared by every test, made once. */
struct certs {
	char dir[64];
	char server_crt[128];
	char server_key[128];
	char client_crt[128]; /* EC P-384, ECDSA-SHA384 */
	char client_key[128];
	char client_fp[CORRAL_CERT_FINGERPRINT_LEN + 1];
	char rsa2048_crt[128]; /* RSA 2048, SHA-256 */
	char rsa2048_key[128];
	char sha1_crt[128]; /* EC P-384, ECDSA-SHA1 */
	char sha1_key[128];
	char log_path[128];
};

static struct certs certs;

/* What a client does and what it got. */
struct client {
	/* In. */
	int port;
	int min_version;
	int max_version;
	const char *ciphers; /* TLS 1.2 and below; NULL for the default */
	const char *crt;     /* client certificate, or NULL */
	const char *key;
	int seclevel; /* -1: OpenSSL's default */
	const char *path;
	bool garbage; /* send plain HTTP instead of TLS */

	/* Out. */
	const char *error; /* the test's own setup failed */
	bool connected;    /* SSL_connect() succeeded */
	int status;        /* HTTP status of the answer, 0 for none */
	char body[256];    /* start of the body */
	size_t body_len;   /* whole body length */
	char version[32];  /* negotiated protocol */
	char cipher[64];   /* negotiated suite */
	uv_async_t *done;  /* borrowed, signalled at the end */
};

struct fixture {
	uv_loop_t loop;
	struct http_server server;
	struct https_listener listener;
	SSL_CTX *ctx;
	uv_async_t done;
	unsigned requests;
	int port;
};

/* ------------------------------------------------------------------------ */
/* Certificates                                                              */

static void write_pem_file(const char *path, const char *pem)
{
	char errmsg[CORRAL_ERRMSG_SIZE];

	assert_int_equal(cert_write_file(path, pem, strlen(pem), 0600, errmsg),
			 0);
}

/* A self-signed certificate on @pkey signed with @md, both written as PEM. */
static void make_cert(EVP_PKEY *pkey,
		      const EVP_MD *md,
		      const char *crt_path,
		      const char *key_path)
{
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	assert_non_null(x);
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_true(X509_set_pubkey(x, pkey));
	name = X509_get_subject_name(x);
	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					       (const unsigned char *)"test",
					       -1, -1, 0));
	assert_true(X509_set_issuer_name(x, name));
	assert_true(X509_sign(x, pkey, md) > 0);
	f = fopen(crt_path, "w");
	assert_non_null(f);
	assert_true(PEM_write_X509(f, x));
	fclose(f);
	f = fopen(key_path, "w");
	assert_non_null(f);
	assert_true(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	X509_free(x);
}

static int group_setup(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	char *crt = NULL;
	char *key = NULL;
	EVP_PKEY *pkey;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(certs.dir, sizeof certs.dir, "/tmp/corral-test-tls-XXXXXX");
	assert_non_null(mkdtemp(certs.dir));
#define PATH(field, name) \
	snprintf(certs.field, sizeof certs.field, "%s/" name, certs.dir)
	PATH(server_crt, "server.crt");
	PATH(server_key, "server.key");
	PATH(client_crt, "client.crt");
	PATH(client_key, "client.key");
	PATH(rsa2048_crt, "rsa2048.crt");
	PATH(rsa2048_key, "rsa2048.key");
	PATH(sha1_crt, "sha1.crt");
	PATH(sha1_key, "sha1.key");
	PATH(log_path, "corrald.log");
#undef PATH

	assert_int_equal(cert_generate_pem("server", &crt, &key, errmsg), 0);
	write_pem_file(certs.server_crt, crt);
	write_pem_file(certs.server_key, key);
	free(crt);
	free(key);
	assert_int_equal(cert_generate_pem("root@client", &crt, &key, errmsg),
			 0);
	write_pem_file(certs.client_crt, crt);
	write_pem_file(certs.client_key, key);
	assert_int_equal(
	    cert_fingerprint_pem(crt, strlen(crt), certs.client_fp), 0);
	free(crt);
	free(key);

	pkey = EVP_RSA_gen(2048);
	assert_non_null(pkey);
	make_cert(pkey, EVP_sha256(), certs.rsa2048_crt, certs.rsa2048_key);
	EVP_PKEY_free(pkey);
	pkey = EVP_EC_gen("P-384");
	assert_non_null(pkey);
	make_cert(pkey, EVP_sha1(), certs.sha1_crt, certs.sha1_key);
	EVP_PKEY_free(pkey);

	/* The daemon's log shows why a client was refused. */
	assert_int_equal(log_init(certs.log_path, true), 0);
	return 0;
}

static int group_teardown(void **state)
{
	const char *names[] = { "server.crt", "server.key",  "client.crt",
				"client.key", "rsa2048.crt", "rsa2048.key",
				"sha1.crt",   "sha1.key",    "corrald.log" };
	char path[192];
	size_t i;

	(void)state;
	log_close();
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", certs.dir, names[i]);
		unlink(path);
	}
	rmdir(certs.dir);
	return 0;
}

/* Whether the log file contains @text. */
static bool log_contains(const char *text)
{
	char *data = NULL;
	bool found;

	assert_int_equal(cert_read_file(certs.log_path, &data, NULL), 0);
	found = strstr(data, text) != NULL;
	free(data);
	return found;
}

/* ------------------------------------------------------------------------ */
/* Server side                                                               */

/* Answers with what the TLS layer knows about the client. */
static void on_request(struct http_conn *conn, struct http_request *req)
{
	struct fixture *f = http_conn_server(conn)->data;
	const char *fp = tls_conn_fingerprint(conn);
	X509 *peer = tls_conn_peer(conn);
	char body[256];
	char *big;
	int n;

	f->requests++;
	/* The certificate and its fingerprint go together. */
	assert_true((fp == NULL) == (peer == NULL));
	if (strcmp(req->path, "/close") == 0) {
		/* Closing from inside the read path: the TLS state must outlive
		 * the decrypt loop that called us. */
		http_conn_close(conn);
		assert_null(tls_conn_fingerprint(conn));
		assert_null(tls_conn_peer(conn));
		return;
	}
	if (strcmp(req->path, "/big") == 0) {
		big = malloc(BIG_BODY);
		assert_non_null(big);
		memset(big, 'x', BIG_BODY);
		http_conn_respond(conn, 200, NULL, "text/plain", big, BIG_BODY,
				  false);
		free(big);
		return;
	}
	n = snprintf(body, sizeof body, "fp=%s version=%s",
		     fp != NULL ? fp : "none", tls_conn_version(conn));
	http_conn_respond(conn, 200, NULL, "text/plain", body, (size_t)n,
			  false);
}

static void done_cb(uv_async_t *a)
{
	uv_stop(a->loop);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char addr[64];
	char *colon;

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	http_server_init(&f->server, &f->loop, on_request);
	f->server.data = f;
	assert_int_equal(
	    tls_server_ctx_create(certs.server_crt, certs.server_key, &f->ctx,
				  errmsg),
	    0);
	assert_int_equal(
	    https_listener_start(&f->listener, &f->loop, &f->server, f->ctx,
				 "127.0.0.1:0", errmsg),
	    0);
	assert_int_equal(
	    https_listener_address(&f->listener, addr, sizeof addr), 0);
	colon = strrchr(addr, ':');
	assert_non_null(colon);
	f->port = atoi(colon + 1);
	assert_true(f->port > 0);
	assert_int_equal(uv_async_init(&f->loop, &f->done, done_cb), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	https_listener_stop(&f->listener, NULL);
	http_server_close_all(&f->server);
	uv_close((uv_handle_t *)&f->done, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	/* Every handle closed: no connection, timer or socket left. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	assert_int_equal(f->server.n_conns, 0);
	tls_server_ctx_destroy(f->ctx);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Client side                                                               */

/* Client context for @c, or NULL when OpenSSL refuses a setting. Runs on the
 * client thread too, hence no cmocka assertions. */
static SSL_CTX *client_ctx_new(const struct client *c)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		return NULL;
	}
	if (c->seclevel >= 0) {
		SSL_CTX_set_security_level(ctx, c->seclevel);
	}
	if ((c->min_version != 0 &&
	     !SSL_CTX_set_min_proto_version(ctx, c->min_version)) ||
	    (c->max_version != 0 &&
	     !SSL_CTX_set_max_proto_version(ctx, c->max_version)) ||
	    (c->ciphers != NULL && !SSL_CTX_set_cipher_list(ctx, c->ciphers))) {
		goto err;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (c->crt != NULL &&
	    (!SSL_CTX_use_certificate_file(ctx, c->crt, SSL_FILETYPE_PEM) ||
	     !SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM))) {
		goto err;
	}
	return ctx;

err:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Connect, send one request, read the answer until the server closes. Runs
 * on its own thread: failures of the test's own setup go to c->error, not
 * to cmocka. */
static void *client_main(void *arg)
{
	struct client *c = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 10 };
	char req[128];
	char *buf = NULL;
	size_t len = 0;
	size_t cap = BIG_BODY + 4096;
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	char *body;
	int fd = -1;
	int n;

	ctx = client_ctx_new(c);
	buf = malloc(cap + 1);
	if (ctx == NULL || buf == NULL) {
		c->error = "client setup";
		goto out;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		c->error = "socket()";
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	sin.sin_port = htons((uint16_t)c->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		c->error = "connect()";
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || !SSL_set_fd(ssl, fd)) {
		c->error = "SSL_new()";
		goto out;
	}
	if (c->garbage) {
		/* Plain HTTP where a ClientHello belongs. */
		n = snprintf(req, sizeof req,
			     "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
		if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
			c->error = "send()";
			goto out;
		}
		while ((n = (int)recv(fd, buf + len, cap - len, 0)) > 0) {
			len += (size_t)n;
		}
		goto parse;
	}
	if (SSL_connect(ssl) != 1) {
		goto out;
	}
	c->connected = true;
	snprintf(c->version, sizeof c->version, "%s", SSL_get_version(ssl));
	snprintf(c->cipher, sizeof c->cipher, "%s",
		 SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
	n = snprintf(req, sizeof req,
		     "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		     c->path != NULL ? c->path : "/1.0");
	if (SSL_write(ssl, req, n) != n) {
		goto out;
	}
	while (len < cap) {
		n = SSL_read(ssl, buf + len, (int)(cap - len));
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
parse:
	buf[len] = '\0';
	if (len > 12 && strncmp(buf, "HTTP/1.1 ", 9) == 0) {
		c->status = atoi(buf + 9);
	}
	body = strstr(buf, "\r\n\r\n");
	if (body != NULL) {
		body += 4;
		c->body_len = len - (size_t)(body - buf);
		snprintf(c->body, sizeof c->body, "%s", body);
	}
out:
	ERR_clear_error();
	SSL_free(ssl);
	if (fd >= 0) {
		close(fd);
	}
	SSL_CTX_free(ctx);
	free(buf);
	OPENSSL_thread_stop();
	uv_async_send(c->done);
	return NULL;
}

/* Run @c against the fixture's listener while the loop serves it. */
static void run_client(struct fixture *f, struct client *c)
{
	pthread_t thread;

	c->port = f->port;
	c->done = &f->done;
	assert_int_equal(pthread_create(&thread, NULL, client_main, c), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(pthread_join(thread, NULL), 0);
	if (c->error != NULL) {
		fail_msg("client: %s failed", c->error);
	}
}

/* Handshake @c's client configuration against @server_ctx entirely in
 * memory. Returns whether both sides completed. */
static bool mem_handshake(const struct client *c, SSL_CTX *server_ctx)
{
	SSL_CTX *cctx = client_ctx_new(c);
	SSL *cl;
	SSL *sv = SSL_new(server_ctx);
	BIO *cbio;
	BIO *sbio;
	bool ok = false;
	int i;

	assert_non_null(cctx);
	cl = SSL_new(cctx);
	assert_non_null(cl);
	assert_non_null(sv);
	assert_true(BIO_new_bio_pair(&cbio, 0, &sbio, 0));
	SSL_set_bio(cl, cbio, cbio);
	SSL_set_bio(sv, sbio, sbio);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	for (i = 0; i < 32; i++) {
		int rc = SSL_do_handshake(cl);
		int rs = SSL_do_handshake(sv);
		int ec = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(cl, rc);
		int es = rs == 1 ? SSL_ERROR_NONE : SSL_get_error(sv, rs);

		if (rc == 1 && rs == 1) {
			ok = true;
			break;
		}
		if ((ec != SSL_ERROR_NONE && ec != SSL_ERROR_WANT_READ &&
		     ec != SSL_ERROR_WANT_WRITE) ||
		    (es != SSL_ERROR_NONE && es != SSL_ERROR_WANT_READ &&
		     es != SSL_ERROR_WANT_WRITE)) {
			break;
		}
	}
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
	return ok;
}

/* Accept every client certificate, for the permissive control server. */
static int accept_all_cb(X509_STORE_CTX *store, void *arg)
{
	(void)store;
	(void)arg;
	return 1;
}

/* A server that takes anything OpenSSL can still speak. */
static SSL_CTX *permissive_ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	assert_true(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION));
	assert_true(SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0"));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_all_cb, NULL);
	assert_true(SSL_CTX_use_certificate_chain_file(ctx, certs.server_crt));
	assert_true(SSL_CTX_use_PrivateKey_file(ctx, certs.server_key,
						SSL_FILETYPE_PEM));
	return ctx;
}

/* Show that @c can complete a handshake with a permissive server, so that a
 * refusal by ours proves our policy. */
static void assert_control_accepts(const struct client *c)
{
	SSL_CTX *ctx = permissive_ctx_new();

	assert_true(mem_handshake(c, ctx));
	SSL_CTX_free(ctx);
}

static void assert_refused(struct fixture *f, const struct client *c)
{
	assert_int_equal(c->status, 0);
	assert_int_equal(f->requests, 0);
}

/* ------------------------------------------------------------------------ */
/* Context settings                                                          */

static void test_ctx_min_version(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(SSL_CTX_get_min_proto_version(f->ctx), TLS1_2_VERSION);
	/* Requested, not required: untrusted clients come without one. */
	assert_int_equal(SSL_CTX_get_verify_mode(f->ctx), SSL_VERIFY_PEER);
	assert_true((SSL_CTX_get_options(f->ctx) & SSL_OP_NO_RENEGOTIATION) !=
		    0);
	assert_true((SSL_CTX_get_options(f->ctx) & SSL_OP_NO_COMPRESSION) != 0);
	assert_true(SSL_CTX_get_security_level(f->ctx) >= 2);
}

/* A suite below TLS 1.3 must be ECDHE with an AEAD cipher. */
static void assert_suite_allowed(const SSL_CIPHER *cipher)
{
	const char *name = SSL_CIPHER_get_name(cipher);
	int auth = SSL_CIPHER_get_auth_nid(cipher);

	if (strcmp(SSL_CIPHER_get_version(cipher), "TLSv1.3") == 0) {
		return;
	}
	if (SSL_CIPHER_get_kx_nid(cipher) != NID_kx_ecdhe ||
	    !SSL_CIPHER_is_aead(cipher) ||
	    (auth != NID_auth_ecdsa && auth != NID_auth_rsa)) {
		fail_msg("cipher suite %s is not ECDHE with AEAD", name);
	}
}

static void test_ctx_ciphers(void **state)
{
	struct fixture *f = *state;
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(f->ctx);
	STACK_OF(SSL_CIPHER) * supported;
	bool have_gcm = false;
	unsigned tls12 = 0;
	SSL *ssl;
	int i;

	assert_non_null(sk);
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		assert_suite_allowed(sk_SSL_CIPHER_value(sk, i));
	}
	ssl = SSL_new(f->ctx);
	assert_non_null(ssl);
	supported = SSL_get1_supported_ciphers(ssl);
	assert_non_null(supported);
	for (i = 0; i < sk_SSL_CIPHER_num(supported); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(supported, i);

		assert_suite_allowed(c);
		if (strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") != 0) {
			tls12++;
		}
		if (strcmp(SSL_CIPHER_get_name(c),
			   "ECDHE-ECDSA-AES256-GCM-SHA384") == 0) {
			have_gcm = true;
		}
	}
	assert_int_equal(tls12, 6);
	assert_true(have_gcm);
	sk_SSL_CIPHER_free(supported);
	SSL_free(ssl);
}

static void test_ctx_errors(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char missing[192];
	SSL_CTX *ctx = (SSL_CTX *)1;

	(void)state;
	snprintf(missing, sizeof missing, "%s/missing.crt", certs.dir);
	assert_int_equal(
	    tls_server_ctx_create(missing, certs.server_key, &ctx, errmsg),
	    CORRAL_ETLS);
	assert_null(ctx);
	assert_non_null(strstr(errmsg, "missing.crt"));

	/* A key that does not match the certificate. */
	assert_int_equal(tls_server_ctx_create(certs.server_crt,
					       certs.client_key, &ctx, errmsg),
			 CORRAL_ETLS);
	assert_null(ctx);
	assert_non_null(strstr(errmsg, "client.key"));
	assert_non_null(strstr(errmsg, "mismatch"));

	/* Our own certificate is held to the same policy. */
	assert_int_equal(tls_server_ctx_create(certs.rsa2048_crt,
					       certs.rsa2048_key, &ctx, errmsg),
			 CORRAL_ETLS);
	assert_null(ctx);
	assert_non_null(strstr(errmsg, "RSA key of 2048 bits is too small"));
	tls_server_ctx_destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* Handshakes                                                                */

static void test_tls13_no_cert(void **state)
{
	struct fixture *f = *state;
	struct client c = { .min_version = TLS1_3_VERSION,
			    .max_version = TLS1_3_VERSION,
			    .seclevel = -1 };

	run_client(f, &c);
	assert_true(c.connected);
	assert_string_equal(c.version, "TLSv1.3");
	assert_int_equal(c.status, 200);
	assert_string_equal(c.body, "fp=none version=TLSv1.3");
	assert_int_equal(f->requests, 1);
}

static void test_tls12_ecdsa_gcm(void **state)
{
	struct fixture *f = *state;
	struct client c = { .min_version = TLS1_2_VERSION,
			    .max_version = TLS1_2_VERSION,
			    .ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384",
			    .seclevel = -1 };

	run_client(f, &c);
	assert_true(c.connected);
	assert_string_equal(c.version, "TLSv1.2");
	assert_string_equal(c.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
	assert_int_equal(c.status, 200);
	assert_string_equal(c.body, "fp=none version=TLSv1.2");
}

static void test_tls12_chacha20(void **state)
{
	struct fixture *f = *state;
	struct client c = { .min_version = TLS1_2_VERSION,
			    .max_version = TLS1_2_VERSION,
			    .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305",
			    .seclevel = -1 };

	run_client(f, &c);
	assert_int_equal(c.status, 200);
	assert_string_equal(c.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

static void test_tls12_cbc_refused(void **state)
{
	struct fixture *f = *state;
	const char *suites[] = { "ECDHE-ECDSA-AES256-SHA384",
				 "ECDHE-ECDSA-AES256-SHA",
				 "ECDHE-ECDSA-AES128-SHA256" };
	size_t i;

	for (i = 0; i < sizeof suites / sizeof suites[0]; i++) {
		struct client c = { .min_version = TLS1_2_VERSION,
				    .max_version = TLS1_2_VERSION,
				    .ciphers = suites[i],
				    .seclevel = -1 };

		assert_control_accepts(&c);
		run_client(f, &c);
		assert_false(c.connected);
		assert_refused(f, &c);
	}
}

static void test_tls11_refused(void **state)
{
	struct fixture *f = *state;
	struct client c = { .min_version = TLS1_1_VERSION,
			    .max_version = TLS1_1_VERSION,
			    .ciphers = "ALL:@SECLEVEL=0",
			    .seclevel = 0 };

	assert_control_accepts(&c);
	run_client(f, &c);
	assert_false(c.connected);
	assert_refused(f, &c);
}

static void test_client_p384_accepted(void **state)
{
	struct fixture *f = *state;
	char want[128];
	int v;

	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		struct client c = { .min_version = v,
				    .max_version = v,
				    .crt = certs.client_crt,
				    .key = certs.client_key,
				    .seclevel = -1 };

		f->requests = 0;
		run_client(f, &c);
		assert_true(c.connected);
		assert_int_equal(c.status, 200);
		snprintf(want, sizeof want, "fp=%s version=%s", certs.client_fp,
			 v == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
		assert_string_equal(c.body, want);
		assert_int_equal(f->requests, 1);
	}
}

/* TLS 1.3 clients finish before the server has checked their certificate,
 * so the refusal shows as an alert instead of an answer; TLS 1.2 clients
 * fail in SSL_connect(). Either way no request reaches the handler. */
static void check_client_cert_refused(struct fixture *f,
				      const char *crt,
				      const char *key,
				      const char *reason)
{
	int v;

	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		struct client c = { .min_version = v,
				    .max_version = v,
				    .crt = crt,
				    .key = key,
				    .seclevel = 0 };

		assert_control_accepts(&c);
		run_client(f, &c);
		if (v == TLS1_2_VERSION) {
			assert_false(c.connected);
		}
		assert_refused(f, &c);
	}
	assert_true(log_contains(reason));
}

static void test_client_rsa2048_refused(void **state)
{
	check_client_cert_refused(*state, certs.rsa2048_crt, certs.rsa2048_key,
				  "RSA key of 2048 bits is too small");
}

static void test_client_sha1_refused(void **state)
{
	check_client_cert_refused(*state, certs.sha1_crt, certs.sha1_key,
				  "ecdsa-with-SHA1 is not allowed");
}

/* A response spanning several TLS write chunks arrives whole. */
static void test_big_response(void **state)
{
	struct fixture *f = *state;
	struct client c = { .seclevel = -1, .path = "/big" };

	run_client(f, &c);
	assert_int_equal(c.status, 200);
	assert_int_equal(c.body_len, BIG_BODY);
}

/* The handler closes the connection while the transport is still decrypting
 * the request that reached it (ASan checks the state is not used after it is
 * freed). */
static void test_close_in_handler(void **state)
{
	struct fixture *f = *state;
	struct client c = { .seclevel = -1,
			    .path = "/close",
			    .crt = certs.client_crt,
			    .key = certs.client_key };

	run_client(f, &c);
	assert_true(c.connected);
	assert_int_equal(c.status, 0);
	assert_int_equal(f->requests, 1);
}

/* A client that speaks plain HTTP to the TLS port gets no answer. */
static void test_plain_http_refused(void **state)
{
	struct fixture *f = *state;
	struct client c = { .seclevel = -1, .garbage = true };

	run_client(f, &c);
	assert_refused(f, &c);
}

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */

static void test_address_parse(void **state)
{
	char host[64];
	char errmsg[CORRAL_ERRMSG_SIZE];
	unsigned port;
	struct {
		const char *in;
		const char *host;
		unsigned port;
	} ok[] = {
		{ "127.0.0.1", "127.0.0.1", 8443 },
		{ "127.0.0.1:9000", "127.0.0.1", 9000 },
		{ "127.0.0.1:0", "127.0.0.1", 0 },
		{ ":8444", "", 8444 },
		{ "[::1]:8445", "::1", 8445 },
		{ "[::]", "::", 8443 },
		{ "::1", "::1", 8443 },
		{ "fe80::1%eth0", "fe80::1%eth0", 8443 },
		{ "localhost:65535", "localhost", 65535 },
	};
	const char *bad[] = { "",         "127.0.0.1:", "127.0.0.1:65536",
			      "host:12a", "[::1",       "[::1]x",
			      "[::1]:",   "[]:80",      "1::2::3:80",
			      "a b:80",   "host:123456" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(
		    https_address_parse(ok[i].in, host, sizeof host, &port,
					errmsg),
		    0);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (https_address_parse(bad[i], host, sizeof host, &port,
					errmsg) != CORRAL_EINVALID) {
			fail_msg("address \"%s\" was accepted", bad[i]);
		}
	}
}

/* Which listener address serves which cluster address (one listener or
 * two), what a wildcard is, and the normal form of an address. */
static void test_address_covers(void **state)
{
	struct {
		const char *listen;
		const char *address;
		bool covers;
	} cases[] = {
		{ "127.0.0.1:8443", "127.0.0.1:8443", true },
		{ "127.0.0.1", "127.0.0.1:8443", true },
		{ "127.0.0.1:0", "127.0.0.1:0", true },
		{ "127.0.0.1:0", "127.0.0.1:41000", false },
		{ "127.0.0.1:8443", "127.0.0.2:8443", false },
		{ "127.0.0.1:8443", "127.0.0.1:8444", false },
		{ ":8443", "10.0.0.1:8443", true },
		{ "[::]:8443", "10.0.0.1:8443", true },
		{ "[::]:8443", "[fd00::1]:8443", true },
		{ "0.0.0.0:8443", "10.0.0.1:8443", true },
		{ "0.0.0.0:8443", "[fd00::1]:8443", false },
		{ ":0", "10.0.0.1:0", false },
		{ "[::1]:8443", "[0::1]:8443", true },
		{ "[::1]:8443", "127.0.0.1:8443", false },
		{ "Host.example:8443", "host.example:8443", true },
		{ "host.example:8443", "127.0.0.1:8443", false },
		{ "", "127.0.0.1:8443", false },
		{ "127.0.0.1:8443", "", false },
		{ "[::1:8443", "[::1:8443", false },
		{ "[::1:8443", "[::1]:8443", false },
	};
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (https_address_covers(cases[i].listen, cases[i].address) !=
		    cases[i].covers) {
			fail_msg("covers(\"%s\", \"%s\") is not %d",
				 cases[i].listen, cases[i].address,
				 cases[i].covers);
		}
	}
	assert_true(https_address_wildcard(":8443"));
	assert_true(https_address_wildcard("0.0.0.0:0"));
	assert_true(https_address_wildcard("[::]:8443"));
	assert_true(https_address_wildcard("[0:0::0]"));
	assert_false(https_address_wildcard("127.0.0.1:8443"));
	assert_false(https_address_wildcard("[::1]"));
	assert_false(https_address_wildcard(""));
	assert_false(https_address_wildcard("[::"));

	assert_int_equal(https_address_normalize("10.0.0.1", out, sizeof out),
			 0);
	assert_string_equal(out, "10.0.0.1:8443");
	assert_int_equal(https_address_normalize("::1", out, sizeof out), 0);
	assert_string_equal(out, "[::1]:8443");
	assert_int_equal(
	    https_address_normalize("[fd00::1]:9000", out, sizeof out), 0);
	assert_string_equal(out, "[fd00::1]:9000");
	assert_int_equal(https_address_normalize("a b", out, sizeof out),
			 CORRAL_EINVALID);
	assert_int_equal(https_address_normalize("10.0.0.1:1", out, 8),
			 -ENOSPC);
}

static unsigned stopped;

static void stop_cb(struct https_listener *l)
{
	(void)l;
	stopped++;
}

static void test_listener_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct https_listener other;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char addr[64];
	char busy[64];
	char again[64];

	/* Unset address: nothing listens, and stopping is immediate. */
	memset(&other, 0, sizeof other);
	assert_int_equal(https_listener_start(&other, &f->loop, &f->server,
					      f->ctx, "", errmsg),
			 0);
	assert_false(https_listener_active(&other));
	assert_int_equal(https_listener_address(&other, addr, sizeof addr),
			 -ENOTCONN);
	stopped = 0;
	https_listener_stop(&other, stop_cb);
	assert_int_equal(stopped, 1);

	/* Bad addresses. */
	assert_int_equal(
	    https_listener_start(&other, &f->loop, &f->server, f->ctx,
				 "127.0.0.1:99999", errmsg),
	    CORRAL_EINVALID);
	assert_non_null(strstr(errmsg, "bad port"));

	/* The address in use: the error names it, and the half-made listener
	 * closes through stop. */
	assert_int_equal(
	    https_listener_address(&f->listener, addr, sizeof addr), 0);
	snprintf(busy, sizeof busy, "%s", addr);
	assert_int_equal(https_listener_start(&other, &f->loop, &f->server,
					      f->ctx, busy, errmsg),
			 UV_EADDRINUSE);
	assert_non_null(strstr(errmsg, busy));
	assert_false(https_listener_active(&other));
	stopped = 0;
	https_listener_stop(&other, stop_cb);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(stopped, 1);

	/* Too small a buffer. */
	assert_int_equal(https_listener_address(&f->listener, addr, 4),
			 -ENOSPC);

	/* Rebind: stop, wait, start on the same port again. */
	stopped = 0;
	https_listener_stop(&f->listener, stop_cb);
	assert_false(https_listener_active(&f->listener));
	assert_int_equal(stopped, 0);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(stopped, 1);
	assert_int_equal(https_listener_start(&f->listener, &f->loop,
					      &f->server, f->ctx, busy, errmsg),
			 0);
	assert_int_equal(
	    https_listener_address(&f->listener, again, sizeof again), 0);
	assert_string_equal(again, busy);

	/* And it serves. */
	{
		struct client c = { .seclevel = -1 };

		run_client(f, &c);
		assert_int_equal(c.status, 200);
	}
}

/* The wildcard binds every address and reports the real port. */
static void test_listener_wildcard(void **state)
{
	struct fixture *f = *state;
	struct https_listener any;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char addr[64];

	memset(&any, 0, sizeof any);
	assert_int_equal(https_listener_start(&any, &f->loop, &f->server,
					      f->ctx, ":0", errmsg),
			 0);
	assert_int_equal(https_listener_address(&any, addr, sizeof addr), 0);
	assert_true(strncmp(addr, "[::]:", 5) == 0 ||
		    strncmp(addr, "0.0.0.0:", 8) == 0);
	assert_true(atoi(strrchr(addr, ':') + 1) > 0);
	https_listener_stop(&any, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_false(https_listener_active(&any));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_ctx_min_version),
		T(test_ctx_ciphers),
		cmocka_unit_test(test_ctx_errors),
		T(test_tls13_no_cert),
		T(test_tls12_ecdsa_gcm),
		T(test_tls12_chacha20),
		T(test_tls12_cbc_refused),
		T(test_tls11_refused),
		T(test_client_p384_accepted),
		T(test_client_rsa2048_refused),
		T(test_client_sha1_refused),
		T(test_big_response),
		T(test_close_in_handler),
		T(test_plain_http_refused),
		cmocka_unit_test(test_address_parse),
		cmocka_unit_test(test_address_covers),
		T(test_listener_lifecycle),
		T(test_listener_wildcard),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
