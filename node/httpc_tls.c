/* The TLS transport of the HTTP client: an OpenSSL client on a non-blocking
 * TCP socket, with corral's TLS policy (DESIGN.md section 6) and three ways
 * to decide whether the server is the right one: a pinned fingerprint, a CA
 * file, or "fetch" (accept anything and let the caller look). */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <corral/cert.h>
#include <corral/httpc.h>

/* The server's policy for TLS 1.2 (TLS 1.3 suites are all AEAD). */
#define HTTPC_TLS_CIPHERS                                              \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"   \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"
#define HTTPC_TLS_GROUPS "P-384:P-256:X25519"

/* Used when the caller gives no connect timeout. */
#define HTTPC_TLS_CONNECT_TIMEOUT_MS 10000

struct httpc_tls {
	SSL_CTX *ctx;
	SSL *ssl; /* NULL when closed */
	int fd;   /* -1 when closed */
	char *host;
	char *port;
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1]; /* "" for none */
	bool have_ca;
	bool fetch;
	int connect_timeout_ms;
	/* What the last handshake saw. */
	char *peer_pem; /* owned, or NULL */
	char peer_fp[CORRAL_CERT_FINGERPRINT_LEN + 1];
	bool peer_verified; /* chains to the CA file */
	bool pin_mismatch;
};

static const struct httpc_transport_ops tls_ops;

/* Fill @errmsg with "@what: <OpenSSL's reason>" and clear the queue. */
static int ossl_fail(char *errmsg, size_t size, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	corral_errf(errmsg, size, "%s: %s", what,
		    reason != NULL ? reason : "unknown error");
	ERR_clear_error();
	return CORRAL_ETLS;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until @fd is ready for @events, at most @timeout_ms (negative:
 * forever). Returns 0, -ETIMEDOUT or a negated errno value. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int rv;

	for (;;) {
		rv = poll(&pfd, 1, timeout_ms);
		if (rv > 0) {
			return 0;
		}
		if (rv == 0) {
			return -ETIMEDOUT;
		}
		if (errno != EINTR) {
			return -errno;
		}
	}
}

/* The milliseconds left until @deadline, at least 0. */
static int left_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 0 ? 0 : (int)left;
}

/* Writes into a socket whose peer is gone raise SIGPIPE; OpenSSL writes
 * with write(), so SIGPIPE is blocked around its calls and a signal that
 * arrived meanwhile is consumed. */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t set;
	sigset_t pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;
	sigset_t pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
		}
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Accept every chain during the handshake: the decision is taken after
 * it, in check_peer(), where the error message can say why. */
static int verify_cb(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 1;
}

/* Connect a non-blocking TCP socket to @t's host and port. */
static int tcp_connect(struct httpc_tls *t,
		       int64_t deadline,
		       char *errmsg,
		       size_t size)
{
	struct addrinfo hints = { 0 };
	struct addrinfo *res = NULL;
	struct addrinfo *ai;
	socklen_t len;
	int one = 1;
	int err = 0;
	int fd = -1;
	int rv;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	rv = getaddrinfo(t->host, t->port, &hints, &res);
	if (rv != 0) {
		corral_errf(errmsg, size, "cannot connect to %s:%s: %s",
			    t->host, t->port, gai_strerror(rv));
		return -EHOSTUNREACH;
	}
	rv = -ECONNREFUSED;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			rv = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
		    errno != EINPROGRESS) {
			rv = -errno;
			goto next;
		}
		rv = wait_fd(fd, POLLOUT, left_ms(deadline));
		if (rv != 0) {
			goto next;
		}
		len = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
			rv = -errno;
			goto next;
		}
		if (err != 0) {
			rv = -err;
			goto next;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		freeaddrinfo(res);
		t->fd = fd;
		return 0;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	corral_errf(errmsg, size, "cannot connect to %s:%s: %s", t->host,
		    t->port, strerror(-rv));
	return rv;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

/* Record the server's certificate and decide whether to go on. */
static int check_peer(struct httpc_tls *t, char *errmsg, size_t size)
{
	char policy[CORRAL_ERRMSG_SIZE];
	X509 *peer;
	BIO *mem = NULL;
	char *data;
	long n;
	long verify;
	int rv;

	peer = SSL_get1_peer_certificate(t->ssl);
	if (peer == NULL) {
		corral_errf(errmsg, size, "%s:%s sent no server certificate",
			    t->host, t->port);
		return CORRAL_ETLS;
	}
	rv = cert_fingerprint_x509(peer, t->peer_fp);
	if (rv != 0) {
		corral_errf(errmsg, size,
			    "fingerprint of the server "
			    "certificate: %s",
			    corral_strerror(rv));
		goto out;
	}
	mem = BIO_new(BIO_s_mem());
	if (mem == NULL || PEM_write_bio_X509(mem, peer) != 1) {
		rv = ossl_fail(errmsg, size, "PEM_write_bio_X509()");
		goto out;
	}
	n = BIO_get_mem_data(mem, &data);
	free(t->peer_pem);
	t->peer_pem = strndup(data, (size_t)n);
	if (t->peer_pem == NULL) {
		rv = -ENOMEM;
		corral_errf(errmsg, size, "out of memory");
		goto out;
	}
	verify = SSL_get_verify_result(t->ssl);
	t->peer_verified = t->have_ca && verify == X509_V_OK;

	if (t->fetch) {
		rv = 0;
		goto out;
	}
	if (t->pin[0] != '\0') {
		if (CRYPTO_memcmp(t->pin, t->peer_fp,
				  CORRAL_CERT_FINGERPRINT_LEN) != 0) {
			t->pin_mismatch = true;
			corral_errf(errmsg, size,
				    "the certificate of %s:%s (fingerprint "
				    "%s) is not the pinned one (%s)",
				    t->host, t->port, t->peer_fp, t->pin);
			rv = CORRAL_ETLS;
			goto out;
		}
	} else if (!t->peer_verified) {
		corral_errf(
		    errmsg, size, "the certificate of %s:%s is not trusted: %s",
		    t->host, t->port, X509_verify_cert_error_string(verify));
		rv = CORRAL_ETLS;
		goto out;
	}
	rv = cert_check_policy(peer, policy);
	if (rv != 0) {
		corral_errf(errmsg, size, "server certificate of %s:%s: %s",
			    t->host, t->port, policy);
	}

out:
	BIO_free(mem);
	X509_free(peer);
	return rv;
}

static void tls_close(void *impl)
{
	struct httpc_tls *t = impl;
	struct sigpipe_guard g;

	if (t->ssl != NULL) {
		sigpipe_block(&g);
		/* Best effort close_notify; the socket is non-blocking. */
		SSL_shutdown(t->ssl);
		sigpipe_restore(&g);
		SSL_free(t->ssl);
		t->ssl = NULL;
		ERR_clear_error();
	}
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
}

static int tls_open(void *impl, char *errmsg, size_t errmsg_size)
{
	struct httpc_tls *t = impl;
	struct sigpipe_guard g;
	int64_t deadline;
	int ret;
	int err;
	int rv;

	if (t->ssl != NULL) {
		return 0;
	}
	t->pin_mismatch = false;
	t->peer_verified = false;
	deadline = now_ms() + t->connect_timeout_ms;
	rv = tcp_connect(t, deadline, errmsg, errmsg_size);
	if (rv != 0) {
		return rv;
	}
	t->ssl = SSL_new(t->ctx);
	if (t->ssl == NULL || SSL_set_fd(t->ssl, t->fd) != 1) {
		rv = ossl_fail(errmsg, errmsg_size, "SSL_new()");
		goto err;
	}
	if (!is_ip_literal(t->host) &&
	    SSL_set_tlsext_host_name(t->ssl, t->host) != 1) {
		rv = ossl_fail(errmsg, errmsg_size,
			       "SSL_set_tlsext_host_name()");
		goto err;
	}
	if (t->have_ca && SSL_set1_host(t->ssl, t->host) != 1) {
		rv = ossl_fail(errmsg, errmsg_size, "SSL_set1_host()");
		goto err;
	}
	for (;;) {
		sigpipe_block(&g);
		ret = SSL_connect(t->ssl);
		sigpipe_restore(&g);
		if (ret == 1) {
			break;
		}
		err = SSL_get_error(t->ssl, ret);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			rv = wait_fd(
			    t->fd,
			    err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			    left_ms(deadline));
			if (rv == -ETIMEDOUT) {
				corral_errf(errmsg, errmsg_size,
					    "TLS handshake with %s:%s: timed "
					    "out",
					    t->host, t->port);
				goto err;
			}
			if (rv != 0) {
				corral_errf(errmsg, errmsg_size,
					    "TLS handshake with %s:%s: %s",
					    t->host, t->port, strerror(-rv));
				goto err;
			}
			continue;
		}
		if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			corral_errf(errmsg, errmsg_size,
				    "TLS handshake with %s:%s: connection "
				    "closed",
				    t->host, t->port);
			rv = -ECONNRESET;
			ERR_clear_error();
			goto err;
		}
		{
			char what[128];

			snprintf(what, sizeof what, "TLS handshake with %s:%s",
				 t->host, t->port);
			rv = ossl_fail(errmsg, errmsg_size, what);
		}
		goto err;
	}
	rv = check_peer(t, errmsg, errmsg_size);
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	tls_close(t);
	return rv;
}

static ssize_t tls_read(void *impl, void *buf, size_t len, int timeout_ms)
{
	struct httpc_tls *t = impl;
	size_t got = 0;
	int ret;
	int err;
	int rv;

	if (t->ssl == NULL) {
		return -ENOTCONN;
	}
	for (;;) {
		ret = SSL_read_ex(t->ssl, buf, len, &got);
		if (ret == 1) {
			return (ssize_t)got;
		}
		err = SSL_get_error(t->ssl, ret);
		if (err == SSL_ERROR_ZERO_RETURN) {
			return 0;
		}
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			rv = wait_fd(
			    t->fd,
			    err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			    timeout_ms);
			if (rv != 0) {
				return rv;
			}
			continue;
		}
		ERR_clear_error();
		if (err == SSL_ERROR_SYSCALL && errno != 0) {
			return -errno;
		}
		return CORRAL_ETLS;
	}
}

static int tls_write(void *impl, const void *buf, size_t len)
{
	struct httpc_tls *t = impl;
	const char *p = buf;
	struct sigpipe_guard g;
	size_t done;
	int ret;
	int err;
	int rv;

	if (t->ssl == NULL) {
		return -ENOTCONN;
	}
	while (len > 0) {
		done = 0;
		errno = 0;
		sigpipe_block(&g);
		ret = SSL_write_ex(t->ssl, p, len, &done);
		sigpipe_restore(&g);
		if (ret == 1) {
			p += done;
			len -= done;
			continue;
		}
		err = SSL_get_error(t->ssl, ret);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			rv = wait_fd(
			    t->fd,
			    err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, -1);
			if (rv != 0) {
				return rv;
			}
			continue;
		}
		ERR_clear_error();
		if (err == SSL_ERROR_SYSCALL && errno != 0) {
			return -errno;
		}
		return err == SSL_ERROR_ZERO_RETURN ? -EPIPE : CORRAL_ETLS;
	}
	return 0;
}

static void tls_destroy(void *impl)
{
	struct httpc_tls *t = impl;

	if (t == NULL) {
		return;
	}
	tls_close(t);
	SSL_CTX_free(t->ctx);
	free(t->host);
	free(t->port);
	free(t->peer_pem);
	free(t);
}

static const struct httpc_transport_ops tls_ops = {
	.open = tls_open,
	.read = tls_read,
	.write = tls_write,
	.close = tls_close,
	.destroy = tls_destroy,
};

/* Whether @s is 64 lowercase hex digits. */
static bool is_fingerprint(const char *s)
{
	size_t i;

	for (i = 0; i < CORRAL_CERT_FINGERPRINT_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return s[i] == '\0';
}

/* A client context with corral's policy and @cfg's identity and CA. */
static int make_ctx(const struct httpc_tls_config *cfg,
		    SSL_CTX **out,
		    char *errmsg)
{
	const size_t size = CORRAL_ERRMSG_SIZE;
	SSL_CTX *ctx;
	int rv;

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		return ossl_fail(errmsg, size, "SSL_CTX_new()");
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, HTTPC_TLS_CIPHERS) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, HTTPC_TLS_GROUPS) != 1) {
		rv = ossl_fail(errmsg, size, "TLS policy");
		goto err;
	}
	if (SSL_CTX_get_security_level(ctx) < 2) {
		SSL_CTX_set_security_level(ctx, 2);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
				     SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	if (cfg->crt_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cfg->crt_file) !=
		    1) {
			char what[CORRAL_ERRMSG_SIZE];

			snprintf(what, sizeof what, "client certificate %s",
				 cfg->crt_file);
			rv = ossl_fail(errmsg, size, what);
			goto err;
		}
		if (SSL_CTX_use_PrivateKey_file(
			ctx,
			cfg->key_file != NULL ? cfg->key_file : cfg->crt_file,
			SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			rv = ossl_fail(errmsg, size, "client key");
			goto err;
		}
	}
	if (cfg->ca_file != NULL &&
	    SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
		char what[CORRAL_ERRMSG_SIZE];

		snprintf(what, sizeof what, "CA file %s", cfg->ca_file);
		rv = ossl_fail(errmsg, size, what);
		goto err;
	}
	*out = ctx;
	return 0;

err:
	SSL_CTX_free(ctx);
	return rv;
}

int httpc_init_tls(struct httpc_client *c,
		   const char *host,
		   const char *port,
		   const struct httpc_tls_config *cfg,
		   char *errmsg)
{
	struct httpc_tls *t;
	char *hostport = NULL;
	bool v6;
	int rv;

	memset(c, 0, sizeof *c);
	if (cfg->pin == NULL && cfg->ca_file == NULL && !cfg->fetch) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "no way to check the server certificate");
		return -EINVAL;
	}
	if (cfg->pin != NULL && !is_fingerprint(cfg->pin)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid pinned fingerprint \"%s\"", cfg->pin);
		return -EINVAL;
	}
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		goto err_nomem;
	}
	t->fd = -1;
	t->host = strdup(host);
	t->port = strdup(port);
	if (t->host == NULL || t->port == NULL) {
		tls_destroy(t);
		goto err_nomem;
	}
	if (cfg->pin != NULL) {
		memcpy(t->pin, cfg->pin, sizeof t->pin);
	}
	t->have_ca = cfg->ca_file != NULL;
	t->fetch = cfg->fetch;
	t->connect_timeout_ms = cfg->connect_timeout_ms > 0
				    ? cfg->connect_timeout_ms
				    : HTTPC_TLS_CONNECT_TIMEOUT_MS;
	rv = make_ctx(cfg, &t->ctx, errmsg);
	if (rv != 0) {
		tls_destroy(t);
		return rv;
	}
	v6 = strchr(host, ':') != NULL;
	if (asprintf(&hostport, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
		     port) < 0) {
		tls_destroy(t);
		goto err_nomem;
	}
	rv = httpc_init(c, &tls_ops, t, hostport);
	free(hostport);
	if (rv != 0) {
		tls_destroy(t);
		goto err_nomem;
	}
	return 0;

err_nomem:
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
	return -ENOMEM;
}

/* The TLS state of @c, or NULL for another transport. */
static const struct httpc_tls *tls_of(const struct httpc_client *c)
{
	return c != NULL && c->ops == &tls_ops ? c->impl : NULL;
}

const char *httpc_tls_peer_pem(const struct httpc_client *c)
{
	const struct httpc_tls *t = tls_of(c);

	return t != NULL ? t->peer_pem : NULL;
}

const char *httpc_tls_peer_fingerprint(const struct httpc_client *c)
{
	const struct httpc_tls *t = tls_of(c);

	return t != NULL && t->peer_pem != NULL ? t->peer_fp : NULL;
}

bool httpc_tls_peer_verified(const struct httpc_client *c)
{
	const struct httpc_tls *t = tls_of(c);

	return t != NULL && t->peer_verified;
}

bool httpc_tls_pin_mismatch(const struct httpc_client *c)
{
	const struct httpc_tls *t = tls_of(c);

	return t != NULL && t->pin_mismatch;
}
