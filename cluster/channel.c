/* The member channel's client: dial, one HTTP/1.1 request, relay. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <corral/cert.h>
#include <corral/err.h>
#include <corral/net.h>

#include "channel.h"

/* The server's TLS 1.2 policy (TLS 1.3 suites are all AEAD). */
#define CHANNEL_CIPHERS                                                \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"   \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"
#define CHANNEL_GROUPS "P-384:P-256:X25519"

/* Bound on a response head; bodies are bounded by the caller's use. */
#define CHANNEL_HEAD_MAX (16 * 1024)
#define CHANNEL_BODY_MAX (1024 * 1024)

/* Relay buffer. */
#define CHANNEL_RELAY_BUF (64 * 1024)

static int ssl_fail(char *errmsg, const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[160] = "unknown error";

	if (e != 0) {
		ERR_error_string_n(e, reason, sizeof reason);
	}
	ERR_clear_error();
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s: %s", what, reason);
	return CORRAL_ETLS;
}

int cluster__tls_ctx_create(const char *crt_path,
			    const char *key_path,
			    SSL_CTX **out,
			    char *errmsg)
{
	SSL_CTX *ctx;
	int rv;

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "SSL_CTX_new(): out of memory");
		return -ENOMEM;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, CHANNEL_CIPHERS) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, CHANNEL_GROUPS) != 1) {
		rv = ssl_fail(errmsg, "configure TLS client");
		goto err_after_ctx;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
				     SSL_OP_NO_RENEGOTIATION);
	/* The fingerprint pin is the check; a self-signed certificate never
	 * chains. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, crt_path) != 1) {
		rv = ssl_fail(errmsg, "SSL_CTX_use_certificate_chain_file()");
		goto err_after_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		rv = ssl_fail(errmsg, "SSL_CTX_use_PrivateKey_file()");
		goto err_after_ctx;
	}
	*out = ctx;
	return 0;

err_after_ctx:
	SSL_CTX_free(ctx);
	return rv;
}

/* Split "host:port" / "[v6]:port" into @host and @port. */
static int split_address(const char *address,
			 char *host,
			 size_t host_size,
			 char *port,
			 size_t port_size)
{
	const char *colon = strrchr(address, ':');
	const char *start = address;
	size_t len;

	if (colon == NULL || colon[1] == '\0' ||
	    strlen(colon + 1) >= port_size) {
		return CORRAL_EINVALID;
	}
	len = (size_t)(colon - address);
	if (len >= 2 && address[0] == '[' && address[len - 1] == ']') {
		start++;
		len -= 2;
	}
	if (len == 0 || len >= host_size) {
		return CORRAL_EINVALID;
	}
	memcpy(host, start, len);
	host[len] = '\0';
	snprintf(port, port_size, "%s", colon + 1);
	return 0;
}

/* Connect a TCP socket to @host:@port within the dial timeout; the socket
 * is left blocking with send and receive timeouts. */
static int tcp_connect(const char *host, const char *port, int *out)
{
	struct addrinfo hints = { 0 };
	struct addrinfo *res = NULL;
	struct addrinfo *ai;
	struct timeval tv = {
		.tv_sec = CLUSTER_DIAL_TIMEOUT_MS / 1000,
		.tv_usec = (CLUSTER_DIAL_TIMEOUT_MS % 1000) * 1000,
	};
	int rv = -EHOSTUNREACH;
	int one = 1;
	int fd;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0) {
		return -EHOSTUNREACH;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd p;
		int err = 0;
		socklen_t len = sizeof err;

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
			close(fd);
			continue;
		}
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, CLUSTER_DIAL_TIMEOUT_MS) != 1) {
			rv = -ETIMEDOUT;
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
		    err != 0) {
			rv = err != 0 ? -err : -errno;
			close(fd);
			continue;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
			rv = -errno;
			close(fd);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		/* A raft or SQL stream relayed on this socket has no
		 * timeout of its own: a vanished peer must still end it. */
		corral_tcp_peer_timeout(fd, CORRAL_PEER_DEAD_MS);
		*out = fd;
		rv = 0;
		break;
	}
	freeaddrinfo(res);
	return rv;
}

int cluster__dial(SSL_CTX *ctx,
		  const char *address,
		  const char *pin,
		  struct cluster_conn *conn,
		  char *errmsg)
{
	char host[256];
	char port[16];
	char fp[CORRAL_CERT_FINGERPRINT_LEN + 1];
	X509 *peer;
	int rv;

	memset(conn, 0, sizeof *conn);
	conn->fd = -1;
	if (split_address(address, host, sizeof host, port, sizeof port) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "dial %s: not a host:port address", address);
		return CORRAL_EINVALID;
	}
	rv = tcp_connect(host, port, &conn->fd);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "dial %s: connect: %s",
			    address, corral_strerror(rv));
		return rv;
	}
	conn->ssl = SSL_new(ctx);
	if (conn->ssl == NULL || SSL_set_fd(conn->ssl, conn->fd) != 1) {
		rv = ssl_fail(errmsg, "SSL_new()");
		goto err_after_connect;
	}
	if (SSL_connect(conn->ssl) != 1) {
		rv = ssl_fail(errmsg, "TLS handshake");
		corral_errwrapf(errmsg, CORRAL_ERRMSG_SIZE, "dial %s", address);
		goto err_after_connect;
	}
	peer = SSL_get1_peer_certificate(conn->ssl);
	rv = peer != NULL ? cert_fingerprint_x509(peer, fp) : CORRAL_ETLS;
	X509_free(peer);
	if (rv != 0 || strlen(pin) != CORRAL_CERT_FINGERPRINT_LEN ||
	    CRYPTO_memcmp(fp, pin, CORRAL_CERT_FINGERPRINT_LEN) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "dial %s: TLS handshake: the member does not "
			    "present the cluster certificate (got %.64s, "
			    "want %.64s)",
			    address, rv == 0 ? fp : "none", pin);
		rv = CORRAL_ETLS;
		goto err_after_connect;
	}
	return 0;

err_after_connect:
	cluster__conn_close(conn);
	return rv;
}

void cluster__conn_close(struct cluster_conn *conn)
{
	if (conn->ssl != NULL) {
		SSL_free(conn->ssl);
		conn->ssl = NULL;
	}
	if (conn->fd >= 0) {
		close(conn->fd);
		conn->fd = -1;
	}
	free(conn->rbuf);
	conn->rbuf = NULL;
	conn->rbuf_len = 0;
	free(conn->head);
	conn->head = NULL;
}

static int ssl_write_all(SSL *ssl, const char *data, size_t len, char *errmsg)
{
	while (len > 0) {
		int n = SSL_write(ssl, data,
				  len > INT32_MAX ? INT32_MAX : (int)len);
		if (n <= 0) {
			return ssl_fail(errmsg, "SSL_write()");
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The value of header @name in the response head @head, or NULL. */
static const char *head_value(const char *head, const char *name, size_t *len)
{
	const char *p = head;
	size_t n = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;
			const char *end;

			while (*v == ' ' || *v == '\t') {
				v++;
			}
			end = strstr(v, "\r\n");
			*len = end != NULL ? (size_t)(end - v) : strlen(v);
			return v;
		}
	}
	return NULL;
}

bool cluster__head_value(const struct cluster_conn *conn,
			 const char *name,
			 char *out,
			 size_t size)
{
	const char *v;
	size_t len = 0;

	out[0] = '\0';
	v = conn->head != NULL ? head_value(conn->head, name, &len) : NULL;
	if (v == NULL || size == 0) {
		return false;
	}
	if (len >= size) {
		len = size - 1;
	}
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

int cluster__request_bytes(struct cluster_conn *conn,
			   const char *method,
			   const char *path,
			   const char *extra_headers,
			   const char *content_type,
			   const char *body,
			   size_t body_len,
			   unsigned *status,
			   char **body_out,
			   char *errmsg)
{
	static const char fmt[] =
	    "%s %s HTTP/1.1\r\nHost: corral\r\n%s"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n\r\n";
	const char *headers = extra_headers != NULL ? extra_headers : "";
	char *buf = NULL;
	size_t have = 0;
	size_t cap = 0;
	size_t resp_len = 0;
	size_t head_len;
	const char *end;
	const char *cl;
	size_t cl_len;
	char *req;
	int n;
	int rv;

	/* Head and body in one buffer and one TLS record where it fits: the
	 * head carries forwarded headers (a certificate) of a few KiB. */
	n = snprintf(NULL, 0, fmt, method, path, headers, content_type,
		     body_len);
	if (n < 0 || (size_t)n > CHANNEL_HEAD_MAX) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "request too long");
		return CORRAL_EINVALID;
	}
	req = malloc((size_t)n + 1 + body_len);
	if (req == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
		return -ENOMEM;
	}
	snprintf(req, (size_t)n + 1, fmt, method, path, headers, content_type,
		 body_len);
	if (body_len > 0) {
		memcpy(req + n, body, body_len);
	}
	rv = ssl_write_all(conn->ssl, req, (size_t)n + body_len, errmsg);
	free(req);
	if (rv != 0) {
		return rv;
	}
	/* Read until the head is complete. */
	for (;;) {
		if (have + 4096 + 1 > cap) {
			char *grown;

			cap = cap == 0 ? 8192 : cap * 2;
			grown = realloc(buf, cap);
			if (grown == NULL) {
				rv = -ENOMEM;
				goto err;
			}
			buf = grown;
		}
		n = SSL_read(conn->ssl, buf + have, 4096);
		if (n <= 0) {
			rv = ssl_fail(errmsg, "read response");
			goto err;
		}
		have += (size_t)n;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL) {
			break;
		}
		if (have > CHANNEL_HEAD_MAX) {
			rv = CORRAL_EPROTO;
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "response head too long");
			goto err;
		}
	}
	head_len = (size_t)(end - buf) + 4;
	if (sscanf(buf, "HTTP/1.%*d %u", status) != 1) {
		rv = CORRAL_EPROTO;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "malformed status line");
		goto err;
	}
	buf[head_len - 2] = '\0'; /* the head ends at its last CRLF */
	free(conn->head);
	conn->head = strdup(buf);
	if (conn->head == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	cl = head_value(buf, "Content-Length", &cl_len);
	if (cl != NULL && *status != 101) {
		resp_len = (size_t)strtoull(cl, NULL, 10);
	}
	if (resp_len > CHANNEL_BODY_MAX) {
		rv = CORRAL_EPROTO;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "response too large");
		goto err;
	}
	/* Read the rest of the body. */
	while (have - head_len < resp_len) {
		if (head_len + resp_len + 1 > cap) {
			char *grown = realloc(buf, head_len + resp_len + 1);

			if (grown == NULL) {
				rv = -ENOMEM;
				goto err;
			}
			buf = grown;
			cap = head_len + resp_len + 1;
		}
		n = SSL_read(conn->ssl, buf + have,
			     (int)(head_len + resp_len - have));
		if (n <= 0) {
			rv = ssl_fail(errmsg, "read response body");
			goto err;
		}
		have += (size_t)n;
	}
	if (body_out != NULL) {
		*body_out = malloc(resp_len + 1);
		if (*body_out == NULL) {
			rv = -ENOMEM;
			goto err;
		}
		memcpy(*body_out, buf + head_len, resp_len);
		(*body_out)[resp_len] = '\0';
	}
	/* Keep what followed the response (an upgraded stream's first
	 * bytes). */
	if (have > head_len + resp_len) {
		size_t extra = have - head_len - resp_len;

		conn->rbuf = malloc(extra);
		if (conn->rbuf == NULL) {
			rv = -ENOMEM;
			goto err;
		}
		memcpy(conn->rbuf, buf + head_len + resp_len, extra);
		conn->rbuf_len = extra;
	}
	free(buf);
	return 0;

err:
	if (rv == -ENOMEM) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
	}
	free(buf);
	return rv;
}

int cluster__request(struct cluster_conn *conn,
		     const char *method,
		     const char *path,
		     const char *extra_headers,
		     const char *body,
		     unsigned *status,
		     char **body_out,
		     char *errmsg)
{
	return cluster__request_bytes(
	    conn, method, path, extra_headers, "application/json", body,
	    body != NULL ? strlen(body) : 0, status, body_out, errmsg);
}

/* ------------------------------------------------------------------------ */
/* Relay                                                                      */

struct relay {
	struct cluster_conn conn; /* owned */
	int fd;                   /* owned: the local end */
};

/* Write all of @data to the blocking socket @fd. */
static int fd_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send all of @data on the non-blocking TLS connection, waiting for the
 * socket as OpenSSL asks. */
static int tls_write_all(struct cluster_conn *c, const char *data, size_t len)
{
	while (len > 0) {
		struct pollfd p = { .fd = c->fd };
		int n = SSL_write(c->ssl, data, (int)len);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
			p.events = POLLOUT;
			break;
		case SSL_ERROR_WANT_READ:
			p.events = POLLIN;
			break;
		default:
			return -1;
		}
		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			return -1;
		}
	}
	return 0;
}

/* Copy bytes both ways until either side ends. A read from the TLS side
 * that only consumed a non-application record comes back WANT_READ and the
 * loop polls again; the TLS socket is non-blocking for that reason. */
static void relay_loop(struct relay *r)
{
	char *buf = malloc(CHANNEL_RELAY_BUF);
	struct pollfd p[2];

	if (buf == NULL) {
		return;
	}
	if (r->conn.rbuf_len > 0 &&
	    fd_write_all(r->fd, r->conn.rbuf, r->conn.rbuf_len) != 0) {
		goto out;
	}
	for (;;) {
		int n;

		p[0].fd = r->conn.fd;
		p[0].events = POLLIN;
		p[0].revents = 0;
		p[1].fd = r->fd;
		p[1].events = POLLIN;
		p[1].revents = 0;
		if (SSL_pending(r->conn.ssl) == 0 && poll(p, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			break;
		}
		if (SSL_pending(r->conn.ssl) > 0 ||
		    (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
			n = SSL_read(r->conn.ssl, buf, CHANNEL_RELAY_BUF);
			if (n > 0) {
				if (fd_write_all(r->fd, buf, (size_t)n) != 0) {
					break;
				}
			} else if (SSL_get_error(r->conn.ssl, n) !=
				       SSL_ERROR_WANT_READ &&
				   SSL_get_error(r->conn.ssl, n) !=
				       SSL_ERROR_WANT_WRITE) {
				break;
			}
		}
		if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
			ssize_t m = recv(r->fd, buf, CHANNEL_RELAY_BUF, 0);

			if (m < 0 && errno == EINTR) {
				continue;
			}
			if (m <= 0) {
				break;
			}
			if (tls_write_all(&r->conn, buf, (size_t)m) != 0) {
				break;
			}
		}
	}
out:
	free(buf);
}

static void *relay_thread(void *arg)
{
	struct relay *r = arg;

	relay_loop(r);
	ERR_clear_error();
	cluster__conn_close(&r->conn);
	close(r->fd);
	free(r);
	/* OpenSSL keeps per-thread error state. */
	OPENSSL_thread_stop();
	return NULL;
}

int cluster__relay_start(struct cluster_conn *conn, int fd)
{
	struct timeval none = { 0 };
	pthread_attr_t attr;
	pthread_t thread;
	struct relay *r;
	int rv;

	r = malloc(sizeof *r);
	if (r == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	r->conn = *conn;
	r->fd = fd;
	memset(conn, 0, sizeof *conn);
	conn->fd = -1;
	/* No timeouts on a raft stream; the TLS side goes non-blocking. */
	setsockopt(r->conn.fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
	setsockopt(r->conn.fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
	if (fcntl(r->conn.fd, F_SETFL,
		  fcntl(r->conn.fd, F_GETFL) | O_NONBLOCK) != 0) {
		rv = -errno;
		goto err_after_alloc;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rv = -pthread_create(&thread, &attr, relay_thread, r);
	pthread_attr_destroy(&attr);
	if (rv != 0) {
		goto err_after_alloc;
	}
	return 0;

err_after_alloc:
	cluster__conn_close(&r->conn);
	close(r->fd);
	free(r);
	return rv;
err:
	cluster__conn_close(conn);
	close(fd);
	return rv;
}
