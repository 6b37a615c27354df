/*
 * loadgen: a keep-alive HTTP/1.1 load generator for corral's benchmarks.
 *
 * One thread per connection. Each thread keeps one persistent connection,
 * sends one request at a time, reads the whole response (status line,
 * headers, then a Content-Length, chunked or read-until-close body) and
 * records the request's latency in microseconds. Blocking I/O with poll()
 * timeouts keeps each thread a straight line of code; at the connection
 * counts the benchmarks use (1 to a few dozen) a thread per connection costs
 * nothing measurable and is the simplest thing that is obviously correct.
 *
 * Two modes:
 *   duration (default): every connection loops until --duration has passed;
 *   --sequence N:       N requests in total, indexes 0..N-1, then stop.
 * In both modes "%d" in --path and --body is replaced by the request's index
 * (a counter shared by all connections), so a sequence of creates can name
 * each object differently: --path /1.0/profiles --body '{"name":"p%d"}'.
 *
 * Figures: "requests" counts requests sent whose response arrived or whose
 * connection failed; "errors" counts non-2xx responses plus I/O failures
 * (connect, write, read, malformed response); latencies cover every complete
 * response, whatever its status. req/s is requests over the wall-clock time
 * from the start of the first connection to the end of the last one.
 *
 * The transport sits behind struct transport_ops: --unix PATH speaks plain
 * HTTP over a Unix socket; --tls HOST:PORT --cert FILE --key FILE speaks it
 * over TLS 1.2+ on TCP, presenting the client certificate. Each connection
 * does one TLS handshake when it opens and then carries keep-alive requests,
 * so a long run measures request cost rather than handshake cost. With
 * --insecure the server's certificate is not verified (the benchmarks pin
 * nothing); without it, it is verified against the system's CAs and HOST.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define ERR_LEN 256
#define MAX_LINE (64 * 1024) /* longest status, header or chunk-size line */
#define READ_CHUNK 16384
#define MAX_CONNECTIONS 10000
#define MAX_HEADERS 64
#define CONNECT_BACKOFF_NS (10 * 1000 * 1000)

struct options {
	const char *unix_path; /* borrowed from argv */
	const char *tls_addr;  /* HOST:PORT, borrowed from argv */
	const char *cert_file; /* client certificate (PEM) for --tls */
	const char *key_file;  /* its private key (PEM) */
	bool insecure;         /* --tls without verifying the server */
	unsigned connections;
	double duration; /* seconds; used when sequence == 0 */
	long sequence;   /* number of requests, or 0 for duration mode */
	int timeout_ms;  /* per read or write */
	const char *method;
	const char *path;
	const char *body;                 /* NULL: no body */
	const char *headers[MAX_HEADERS]; /* borrowed from argv */
	size_t n_headers;
	bool json;
};

/*
 * A transport moves bytes over one connection. All functions are called from
 * the connection's own thread only.
 */
struct transport_ops {
	const char *name;

	/* Connects to the target named in opts. On success *conn is owned by
	 * the caller and released with close(). Returns 0, or a negative errno
	 * with a message naming the failing call in err. */
	int (*open)(const struct options *opts,
		    void **conn,
		    char *err,
		    size_t err_len);

	/* Reads up to len bytes, waiting at most timeout_ms. Returns the number
	 * of bytes read, 0 at end of stream, or a negative errno (-ETIMEDOUT
	 * when nothing arrived in time). */
	ssize_t (*read)(void *conn, void *buf, size_t len, int timeout_ms);

	/* Writes all len bytes, waiting at most timeout_ms for the peer to
	 * make room each time. Returns 0 or a negative errno. */
	int (*write)(void *conn, const void *buf, size_t len, int timeout_ms);

	/* Closes the connection and frees conn; accepts NULL. */
	void (*close)(void *conn);
};

/* Unix-domain stream socket transport. */

struct unix_conn {
	int fd;
	int rcvtimeo_ms; /* SO_RCVTIMEO currently set, 0 for none */
};

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rv;

	do {
		rv = poll(&p, 1, timeout_ms);
	} while (rv < 0 && errno == EINTR);
	if (rv < 0) {
		return -errno;
	}
	if (rv == 0) {
		return -ETIMEDOUT;
	}
	return 0;
}

static int unix_open(const struct options *opts,
		     void **conn,
		     char *err,
		     size_t err_len)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct unix_conn *c;
	size_t len = strlen(opts->unix_path);
	int rv;

	if (len >= sizeof(addr.sun_path)) {
		snprintf(err, err_len, "unix socket path too long: %s",
			 opts->unix_path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, opts->unix_path, len + 1);

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, err_len, "malloc(): out of memory");
		return -ENOMEM;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		rv = -errno;
		snprintf(err, err_len, "socket(): %s", strerror(errno));
		goto err_after_alloc;
	}
	/* A blocking connect: on a Unix socket it only waits while the
	 * listener's backlog is full, which is load we want to see. */
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		rv = -errno;
		snprintf(err, err_len, "connect(%s): %s", opts->unix_path,
			 strerror(errno));
		goto err_after_socket;
	}
	*conn = c;
	return 0;

err_after_socket:
	close(c->fd);
err_after_alloc:
	free(c);
	return rv;
}

static ssize_t unix_read(void *conn, void *buf, size_t len, int timeout_ms)
{
	struct unix_conn *c = conn;
	ssize_t n;

	/* One blocking recv() per read, with the timeout set once on the
	 * socket: a recv + poll + recv cycle would triple the syscalls the
	 * client spends per request and hide the server's own cost. */
	if (c->rcvtimeo_ms != timeout_ms) {
		struct timeval tv = { .tv_sec = timeout_ms / 1000,
				      .tv_usec = (timeout_ms % 1000) * 1000 };
		if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
			       sizeof tv) != 0) {
			return -errno;
		}
		c->rcvtimeo_ms = timeout_ms;
	}
	for (;;) {
		n = recv(c->fd, buf, len, 0);
		if (n >= 0) {
			return n;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return -ETIMEDOUT;
		}
		return -errno;
	}
}

static int unix_write(void *conn, const void *buf, size_t len, int timeout_ms)
{
	struct unix_conn *c = conn;
	const char *p = buf;
	ssize_t n;
	int rv;

	while (len > 0) {
		n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			return -errno;
		}
		rv = wait_fd(c->fd, POLLOUT, timeout_ms);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

static void unix_close(void *conn)
{
	struct unix_conn *c = conn;

	if (c == NULL) {
		return;
	}
	close(c->fd);
	free(c);
}

static const struct transport_ops unix_transport = {
	.name = "unix",
	.open = unix_open,
	.read = unix_read,
	.write = unix_write,
	.close = unix_close,
};

/*
 * TLS over TCP transport: a blocking SSL object on a blocking TCP socket,
 * with the per-read and per-write timeouts set as SO_RCVTIMEO and
 * SO_SNDTIMEO (so a read is one SSL_read, which with read-ahead is usually
 * one recv). One handshake per connection; keep-alive requests follow.
 */

/* Set up by tls_setup() before any worker starts, read-only afterwards. */
static struct {
	SSL_CTX *ctx;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char host[256];  /* HOST from --tls, without brackets */
	bool host_is_ip; /* no SNI for an address literal (RFC 6066) */
} tls_target;

struct tls_conn {
	int fd;
	SSL *ssl;
	int rcvtimeo_ms; /* SO_RCVTIMEO currently set, 0 for none */
	int sndtimeo_ms; /* SO_SNDTIMEO currently set, 0 for none */
	bool broken;     /* the session failed: no close_notify on close */
};

static int set_timeout(int fd, int opt, int timeout_ms, int *current)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };

	if (*current == timeout_ms) {
		return 0;
	}
	if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) != 0) {
		return -errno;
	}
	*current = timeout_ms;
	return 0;
}

/* Formats "what: reason" for a failed SSL call whose SSL_get_error() was
 * ssl_err and whose errno was saved_errno, then clears the error queue. */
static void tls_error(const char *what,
		      int ssl_err,
		      int saved_errno,
		      char *err,
		      size_t err_len)
{
	unsigned long e = ERR_peek_last_error();
	char reason[160];

	if (e != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
	} else if (ssl_err == SSL_ERROR_WANT_READ ||
		   ssl_err == SSL_ERROR_WANT_WRITE || saved_errno == EAGAIN ||
		   saved_errno == EWOULDBLOCK) {
		snprintf(reason, sizeof(reason), "timed out");
	} else if (saved_errno != 0) {
		snprintf(reason, sizeof(reason), "%s", strerror(saved_errno));
	} else {
		snprintf(reason, sizeof(reason),
			 "connection closed by the server");
	}
	snprintf(err, err_len, "%s: %s", what, reason);
	ERR_clear_error();
}

/* Maps a failed SSL_read or SSL_write to a negative errno, or to 0 for a
 * clean end of stream, marking the session broken. Returns -EINTR when the
 * call should simply be repeated. */
static int tls_io_error(struct tls_conn *c, int ret, int saved_errno)
{
	int e = SSL_get_error(c->ssl, ret);

	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN) {
		return 0; /* close_notify, or EOF with IGNORE_UNEXPECTED_EOF */
	}
	if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
	     e == SSL_ERROR_SYSCALL) &&
	    saved_errno == EINTR) {
		return -EINTR;
	}
	c->broken = true;
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/* A blocking socket only asks to retry when SO_RCVTIMEO or
		 * SO_SNDTIMEO expired. */
		return -ETIMEDOUT;
	case SSL_ERROR_SYSCALL:
		if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) {
			return -ETIMEDOUT;
		}
		/* errno 0: EOF without close_notify (older OpenSSL). */
		return saved_errno != 0 ? -saved_errno : 0;
	default:
		return -EPROTO; /* an alert, a bad record, ... */
	}
}

static int tls_open(const struct options *opts,
		    void **conn,
		    char *err,
		    size_t err_len)
{
	struct tls_conn *c;
	int one = 1;
	int saved;
	int ret;
	int rv;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, err_len, "malloc(): out of memory");
		return -ENOMEM;
	}
	c->fd = socket(tls_target.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
		       IPPROTO_TCP);
	if (c->fd < 0) {
		rv = -errno;
		snprintf(err, err_len, "socket(): %s", strerror(errno));
		goto err_after_alloc;
	}
	/* The timeouts bound connect() (SO_SNDTIMEO) and the handshake too. */
	rv = set_timeout(c->fd, SO_RCVTIMEO, opts->timeout_ms, &c->rcvtimeo_ms);
	if (rv == 0) {
		rv = set_timeout(c->fd, SO_SNDTIMEO, opts->timeout_ms,
				 &c->sndtimeo_ms);
	}
	if (rv == 0 && setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one,
				  sizeof(one)) != 0) {
		rv = -errno;
	}
	if (rv != 0) {
		snprintf(err, err_len, "setsockopt(): %s", strerror(-rv));
		goto err_after_socket;
	}
	if (connect(c->fd, (struct sockaddr *)&tls_target.addr,
		    tls_target.addr_len) != 0) {
		rv = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		snprintf(err, err_len, "connect(%s): %s", opts->tls_addr,
			 strerror(-rv));
		goto err_after_socket;
	}
	ERR_clear_error();
	c->ssl = SSL_new(tls_target.ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (!tls_target.host_is_ip &&
	     SSL_set_tlsext_host_name(c->ssl, tls_target.host) != 1) ||
	    (!opts->insecure && SSL_set1_host(c->ssl, tls_target.host) != 1)) {
		tls_error("SSL_new()", SSL_ERROR_SSL, ENOMEM, err, err_len);
		rv = -ENOMEM;
		goto err_after_ssl;
	}
	ret = SSL_connect(c->ssl);
	if (ret != 1) {
		saved = errno;
		tls_error("TLS handshake", SSL_get_error(c->ssl, ret), saved,
			  err, err_len);
		rv = -EPROTO;
		goto err_after_ssl;
	}
	*conn = c;
	return 0;

err_after_ssl:
	SSL_free(c->ssl);
err_after_socket:
	close(c->fd);
err_after_alloc:
	free(c);
	return rv;
}

static ssize_t tls_read(void *conn, void *buf, size_t len, int timeout_ms)
{
	struct tls_conn *c = conn;
	int saved;
	int n;
	int rv;

	rv = set_timeout(c->fd, SO_RCVTIMEO, timeout_ms, &c->rcvtimeo_ms);
	if (rv != 0) {
		return rv;
	}
	if (len > INT_MAX) {
		len = INT_MAX;
	}
	for (;;) {
		ERR_clear_error();
		n = SSL_read(c->ssl, buf, (int)len);
		if (n > 0) {
			return n;
		}
		saved = errno;
		rv = tls_io_error(c, n, saved);
		if (rv != -EINTR) {
			return rv;
		}
	}
}

static int tls_write(void *conn, const void *buf, size_t len, int timeout_ms)
{
	struct tls_conn *c = conn;
	const char *p = buf;
	int chunk;
	int saved;
	int n;
	int rv;

	rv = set_timeout(c->fd, SO_SNDTIMEO, timeout_ms, &c->sndtimeo_ms);
	if (rv != 0) {
		return rv;
	}
	while (len > 0) {
		chunk = len > INT_MAX ? INT_MAX : (int)len;
		ERR_clear_error();
		/* Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write returns
		 * only once the whole chunk is written. */
		n = SSL_write(c->ssl, p, chunk);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		saved = errno;
		rv = tls_io_error(c, n, saved);
		if (rv == -EINTR) {
			continue;
		}
		return rv != 0 ? rv : -EPIPE;
	}
	return 0;
}

static void tls_close(void *conn)
{
	struct tls_conn *c = conn;

	if (c == NULL) {
		return;
	}
	/* Send close_notify without waiting for the server's (the blocking
	 * first SSL_shutdown call returns once it is sent). */
	if (!c->broken) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
	}
	ERR_clear_error();
	SSL_free(c->ssl);
	close(c->fd);
	free(c);
}

static const struct transport_ops tls_transport = {
	.name = "tls",
	.open = tls_open,
	.read = tls_read,
	.write = tls_write,
	.close = tls_close,
};

/* Splits "HOST:PORT" or "[V6]:PORT" into host (without brackets) and port. */
static int split_host_port(const char *s,
			   char *host,
			   size_t host_len,
			   const char **port)
{
	const char *end;
	const char *colon;
	size_t len;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':') {
			return -EINVAL;
		}
		s++;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s))) {
			return -EINVAL; /* none, or an unbracketed IPv6 */
		}
		end = colon;
	}
	len = (size_t)(end - s);
	if (len == 0 || len >= host_len || colon[1] == '\0') {
		return -EINVAL;
	}
	memcpy(host, s, len);
	host[len] = '\0';
	*port = colon + 1;
	return 0;
}

/* Resolves --tls and builds the SSL_CTX every connection shares: TLS 1.2 or
 * later, the client certificate and key, server verification unless
 * --insecure. Prints why on failure. */
static int tls_setup(const struct options *opts)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_protocol = IPPROTO_TCP };
	struct addrinfo *res = NULL;
	unsigned char ip[sizeof(struct in6_addr)];
	const char *port;
	const char *what;
	SSL_CTX *ctx;
	char reason[160];
	int rv;

	if (split_host_port(opts->tls_addr, tls_target.host,
			    sizeof(tls_target.host), &port) != 0) {
		fprintf(
		    stderr,
		    "loadgen: --tls: expected HOST:PORT or [IPV6]:PORT, got %s\n",
		    opts->tls_addr);
		return -EINVAL;
	}
	tls_target.host_is_ip = inet_pton(AF_INET, tls_target.host, ip) == 1 ||
				inet_pton(AF_INET6, tls_target.host, ip) == 1;
	rv = getaddrinfo(tls_target.host, port, &hints, &res);
	if (rv != 0) {
		fprintf(stderr, "loadgen: --tls %s: %s\n", opts->tls_addr,
			gai_strerror(rv));
		return -EINVAL;
	}
	memcpy(&tls_target.addr, res->ai_addr, res->ai_addrlen);
	tls_target.addr_len = res->ai_addrlen;
	freeaddrinfo(res);

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		what = "SSL_CTX_new()";
		goto err;
	}
	what = "TLS settings";
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		goto err;
	}
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A server closing without close_notify is an end of stream. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (opts->cert_file != NULL) {
		what = opts->cert_file;
		if (SSL_CTX_use_certificate_chain_file(ctx, opts->cert_file) !=
		    1) {
			goto err;
		}
		what = opts->key_file;
		if (SSL_CTX_use_PrivateKey_file(ctx, opts->key_file,
						SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			goto err;
		}
	}
	if (opts->insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		what = "system CA certificates";
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			goto err;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	tls_target.ctx = ctx;
	return 0;

err:
	ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
	fprintf(stderr, "loadgen: %s: %s\n", what, reason);
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/* Growable byte string. */

struct sbuf {
	char *data; /* owned */
	size_t len;
	size_t cap;
};

static int sbuf_append(struct sbuf *s, const char *p, size_t n)
{
	char *data;
	size_t cap;

	if (n == 0) {
		return 0;
	}
	if (s->len + n > s->cap) {
		cap = s->cap > 0 ? s->cap : 256;
		while (cap < s->len + n) {
			cap *= 2;
		}
		data = realloc(s->data, cap);
		if (data == NULL) {
			return -ENOMEM;
		}
		s->data = data;
		s->cap = cap;
	}
	memcpy(s->data + s->len, p, n);
	s->len += n;
	return 0;
}

static int sbuf_append_str(struct sbuf *s, const char *str)
{
	return sbuf_append(s, str, strlen(str));
}

/* Appends tmpl with every "%d" replaced by index. */
static int sbuf_append_subst(struct sbuf *s, const char *tmpl, long index)
{
	const char *p = tmpl;
	const char *mark;
	char num[32];
	int n;
	int rv;

	while ((mark = strstr(p, "%d")) != NULL) {
		rv = sbuf_append(s, p, (size_t)(mark - p));
		if (rv != 0) {
			return rv;
		}
		n = snprintf(num, sizeof(num), "%ld", index);
		rv = sbuf_append(s, num, (size_t)n);
		if (rv != 0) {
			return rv;
		}
		p = mark + 2;
	}
	return sbuf_append_str(s, p);
}

static void sbuf_close(struct sbuf *s)
{
	free(s->data);
	s->data = NULL;
	s->len = 0;
	s->cap = 0;
}

/* A run: what every worker shares. */

struct run {
	const struct options *opts;      /* borrowed */
	const struct transport_ops *ops; /* borrowed */
	uint64_t deadline_ns;            /* duration mode */
	bool templated;                  /* path or body contains "%d" */
	bool head;                       /* responses carry no body */
	atomic_long next_index;          /* the next request's index */
	atomic_bool stop;                /* set when the run is abandoned */
};

/* One connection with its read buffer. */
struct conn {
	const struct transport_ops *ops; /* borrowed */
	void *io;                        /* owned; NULL when disconnected */
	char *buf;                       /* owned read buffer */
	size_t cap;
	size_t start; /* first unconsumed byte */
	size_t end;   /* one past the last byte read */
};

struct worker {
	pthread_t thread;
	struct run *run; /* borrowed */
	struct conn conn;
	struct sbuf req;  /* the request being sent */
	struct sbuf body; /* its body, when templated */
	uint64_t *lat;    /* owned; latencies in µs */
	size_t n_lat;
	size_t cap_lat;
	uint64_t requests;
	uint64_t non2xx;
	uint64_t io_errors;
	bool failed;       /* stopped early: out of memory */
	char err[ERR_LEN]; /* the first error seen */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void conn_disconnect(struct conn *c)
{
	if (c->io != NULL) {
		c->ops->close(c->io);
		c->io = NULL;
	}
	c->start = 0;
	c->end = 0;
}

/* Reads more bytes into the buffer, making room first. Returns the number of
 * bytes read, 0 at end of stream, or a negative errno. */
static ssize_t conn_fill(struct conn *c, int timeout_ms)
{
	char *buf;
	size_t cap;
	ssize_t n;

	if (c->start == c->end) {
		c->start = 0;
		c->end = 0;
	}
	if (c->end == c->cap) {
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		} else {
			cap = c->cap > 0 ? c->cap * 2 : READ_CHUNK;
			buf = realloc(c->buf, cap);
			if (buf == NULL) {
				return -ENOMEM;
			}
			c->buf = buf;
			c->cap = cap;
		}
	}
	n = c->ops->read(c->io, c->buf + c->end, c->cap - c->end, timeout_ms);
	if (n > 0) {
		c->end += (size_t)n;
	}
	return n;
}

/* Returns in *line the next line without its CRLF (or bare LF), consumed
 * from the buffer; valid until the next read. Returns 0, -EMSGSIZE for an
 * over-long line, -ECONNRESET at a premature end of stream, or the read
 * error. */
static int conn_line(struct conn *c,
		     int timeout_ms,
		     const char **line,
		     size_t *len)
{
	char *p = NULL;
	size_t scanned = 0;
	ssize_t n;

	for (;;) {
		if (c->end > c->start + scanned) {
			p = memchr(c->buf + c->start + scanned, '\n',
				   c->end - c->start - scanned);
		}
		if (p != NULL) {
			break;
		}
		scanned = c->end - c->start;
		if (scanned > MAX_LINE) {
			return -EMSGSIZE;
		}
		n = conn_fill(c, timeout_ms);
		if (n == 0) {
			return -ECONNRESET;
		}
		if (n < 0) {
			return (int)n;
		}
	}
	*line = c->buf + c->start;
	*len = (size_t)(p - *line);
	c->start += *len + 1;
	if (*len > 0 && (*line)[*len - 1] == '\r') {
		(*len)--;
	}
	return 0;
}

/* Consumes and discards n body bytes. */
static int conn_skip(struct conn *c, int timeout_ms, uint64_t n)
{
	size_t avail;
	ssize_t got;

	for (;;) {
		avail = c->end - c->start;
		if ((uint64_t)avail >= n) {
			c->start += (size_t)n;
			return 0;
		}
		n -= avail;
		c->start = c->end;
		got = conn_fill(c, timeout_ms);
		if (got == 0) {
			return -ECONNRESET;
		}
		if (got < 0) {
			return (int)got;
		}
	}
}

/* Discards everything up to the end of the stream. */
static int conn_drain(struct conn *c, int timeout_ms)
{
	ssize_t n;

	do {
		c->start = c->end;
		n = conn_fill(c, timeout_ms);
	} while (n > 0);
	return (int)n;
}

/* HTTP/1.1 response parsing. */

static bool ci_contains(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	size_t i;

	for (i = 0; i + n <= len; i++) {
		if (strncasecmp(s + i, needle, n) == 0) {
			return true;
		}
	}
	return false;
}

/* Parses an unsigned decimal or hex number at the start of s[0..len);
 * returns the number of digits read, 0 when there are none or on overflow. */
static size_t parse_uint(const char *s,
			 size_t len,
			 unsigned base,
			 uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;
	size_t i;

	for (i = 0; i < len; i++) {
		char ch = s[i];

		if (ch >= '0' && ch <= '9') {
			d = (unsigned)(ch - '0');
		} else if (base == 16 && ch >= 'a' && ch <= 'f') {
			d = (unsigned)(ch - 'a' + 10);
		} else if (base == 16 && ch >= 'A' && ch <= 'F') {
			d = (unsigned)(ch - 'A' + 10);
		} else {
			break;
		}
		if (v > (UINT64_MAX - d) / base) {
			return 0;
		}
		v = v * base + d;
	}
	*out = v;
	return i;
}

struct response {
	int status;
	bool keep_alive;
	bool chunked;
	bool has_length;
	uint64_t length;
};

/* Reads the status line and headers of one response into r. */
static int read_head(struct conn *c,
		     int timeout_ms,
		     struct response *r,
		     char *err,
		     size_t err_len)
{
	const char *line;
	const char *value;
	size_t len;
	size_t name_len;
	size_t vlen;
	uint64_t v;
	int rv;

	rv = conn_line(c, timeout_ms, &line, &len);
	if (rv != 0) {
		snprintf(err, err_len, "read status line: %s", strerror(-rv));
		return rv;
	}
	/* "HTTP/1.1 200 OK": the reason phrase may be empty or missing. */
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
	    parse_uint(line + 9, 3, 10, &v) != 3 ||
	    (len > 12 && line[12] != ' ')) {
		snprintf(err, err_len, "malformed status line: %.*s",
			 (int)(len < 80 ? len : 80), line);
		return -EPROTO;
	}
	r->status = (int)v;
	r->keep_alive = line[7] != '0'; /* HTTP/1.0 closes by default */
	r->chunked = false;
	r->has_length = false;
	r->length = 0;

	for (;;) {
		rv = conn_line(c, timeout_ms, &line, &len);
		if (rv != 0) {
			snprintf(err, err_len, "read header: %s",
				 strerror(-rv));
			return rv;
		}
		if (len == 0) {
			return 0;
		}
		value = memchr(line, ':', len);
		if (value == NULL) {
			snprintf(err, err_len, "malformed header: %.*s",
				 (int)(len < 80 ? len : 80), line);
			return -EPROTO;
		}
		value++;
		name_len = (size_t)(value - line); /* with the colon */
		vlen = len - name_len;
		while (vlen > 0 && (*value == ' ' || *value == '\t')) {
			value++;
			vlen--;
		}
		while (vlen > 0 &&
		       (value[vlen - 1] == ' ' || value[vlen - 1] == '\t')) {
			vlen--;
		}
		if (name_len == 15 &&
		    strncasecmp(line, "content-length:", 15) == 0) {
			if (parse_uint(value, vlen, 10, &v) != vlen ||
			    vlen == 0 || (r->has_length && r->length != v)) {
				snprintf(err, err_len,
					 "bad Content-Length: %.*s",
					 (int)(vlen < 40 ? vlen : 40), value);
				return -EPROTO;
			}
			r->has_length = true;
			r->length = v;
		} else if (name_len == 18 &&
			   strncasecmp(line, "transfer-encoding:", 18) == 0) {
			r->chunked = ci_contains(value, vlen, "chunked");
		} else if (name_len == 11 &&
			   strncasecmp(line, "connection:", 11) == 0) {
			if (ci_contains(value, vlen, "close")) {
				r->keep_alive = false;
			} else if (ci_contains(value, vlen, "keep-alive")) {
				r->keep_alive = true;
			}
		}
	}
}

static int read_chunked(struct conn *c,
			int timeout_ms,
			char *err,
			size_t err_len)
{
	const char *line;
	size_t len;
	uint64_t size;
	int rv;

	for (;;) {
		rv = conn_line(c, timeout_ms, &line, &len);
		if (rv != 0) {
			snprintf(err, err_len, "read chunk size: %s",
				 strerror(-rv));
			return rv;
		}
		/* The size may be followed by ";extensions". */
		if (parse_uint(line, len, 16, &size) == 0) {
			snprintf(err, err_len, "malformed chunk size: %.*s",
				 (int)(len < 40 ? len : 40), line);
			return -EPROTO;
		}
		if (size == 0) {
			break;
		}
		rv = conn_skip(c, timeout_ms, size);
		if (rv == 0) {
			rv = conn_line(c, timeout_ms, &line, &len);
		}
		if (rv != 0) {
			snprintf(err, err_len, "read chunk: %s", strerror(-rv));
			return rv;
		}
		if (len != 0) {
			snprintf(err, err_len, "chunk not followed by CRLF");
			return -EPROTO;
		}
	}
	/* Trailer fields, up to the empty line. */
	do {
		rv = conn_line(c, timeout_ms, &line, &len);
		if (rv != 0) {
			snprintf(err, err_len, "read trailer: %s",
				 strerror(-rv));
			return rv;
		}
	} while (len != 0);
	return 0;
}

/* Reads one complete response, skipping interim 1xx responses. On return
 * *keep_alive says whether the connection may carry another request. */
static int read_response(struct conn *c,
			 bool head,
			 int timeout_ms,
			 int *status,
			 bool *keep_alive,
			 char *err,
			 size_t err_len)
{
	struct response r;
	int rv;

	do {
		rv = read_head(c, timeout_ms, &r, err, err_len);
		if (rv != 0) {
			return rv;
		}
	} while (r.status >= 100 && r.status < 200 && r.status != 101);

	*status = r.status;
	*keep_alive = r.keep_alive;
	if (head || r.status == 101 || r.status == 204 || r.status == 304) {
		return 0;
	}
	if (r.chunked) {
		return read_chunked(c, timeout_ms, err, err_len);
	}
	if (r.has_length) {
		rv = conn_skip(c, timeout_ms, r.length);
		if (rv != 0) {
			snprintf(err, err_len, "read body: %s", strerror(-rv));
		}
		return rv;
	}
	/* Neither length nor chunking: the body ends with the connection. */
	*keep_alive = false;
	rv = conn_drain(c, timeout_ms);
	if (rv != 0) {
		snprintf(err, err_len, "read body: %s", strerror(-rv));
	}
	return rv;
}

/* Requests. */

static bool has_header(const struct options *opts, const char *name)
{
	size_t n = strlen(name);
	size_t i;

	for (i = 0; i < opts->n_headers; i++) {
		if (strncasecmp(opts->headers[i], name, n) == 0 &&
		    opts->headers[i][n] == ':') {
			return true;
		}
	}
	return false;
}

/* Builds request number index into w->req. */
static int build_request(struct worker *w, long index)
{
	const struct options *opts = w->run->opts;
	const char *body = opts->body;
	size_t body_len = 0;
	char num[32];
	bool send_length;
	size_t i;
	int rv = 0;

	w->req.len = 0;
	w->body.len = 0;
	if (body != NULL) {
		rv = sbuf_append_subst(&w->body, body, index);
		if (rv != 0) {
			return rv;
		}
		body = w->body.data;
		body_len = w->body.len;
	}
	send_length = opts->body != NULL || strcmp(opts->method, "POST") == 0 ||
		      strcmp(opts->method, "PUT") == 0 ||
		      strcmp(opts->method, "PATCH") == 0;

	rv |= sbuf_append_str(&w->req, opts->method);
	rv |= sbuf_append_str(&w->req, " ");
	rv |= sbuf_append_subst(&w->req, opts->path, index);
	rv |= sbuf_append_str(&w->req, " HTTP/1.1\r\n");
	if (!has_header(opts, "Host")) {
		rv |= sbuf_append_str(&w->req, "Host: localhost\r\n");
	}
	if (!has_header(opts, "User-Agent")) {
		rv |=
		    sbuf_append_str(&w->req, "User-Agent: corral-loadgen\r\n");
	}
	if (opts->body != NULL && !has_header(opts, "Content-Type")) {
		rv |= sbuf_append_str(&w->req,
				      "Content-Type: application/json\r\n");
	}
	for (i = 0; i < opts->n_headers; i++) {
		rv |= sbuf_append_str(&w->req, opts->headers[i]);
		rv |= sbuf_append_str(&w->req, "\r\n");
	}
	if (send_length) {
		snprintf(num, sizeof(num), "Content-Length: %zu\r\n", body_len);
		rv |= sbuf_append_str(&w->req, num);
	}
	rv |= sbuf_append_str(&w->req, "\r\n");
	if (body_len > 0) {
		rv |= sbuf_append(&w->req, body, body_len);
	}
	return rv != 0 ? -ENOMEM : 0;
}

/* Keeps the first error message a worker sees. */
static void worker_error(struct worker *w, const char *msg)
{
	if (w->err[0] == '\0') {
		snprintf(w->err, sizeof(w->err), "%s", msg);
	}
}

static int worker_record(struct worker *w, uint64_t us)
{
	uint64_t *lat;
	size_t cap;

	if (w->n_lat == w->cap_lat) {
		cap = w->cap_lat > 0 ? w->cap_lat * 2 : 4096;
		lat = realloc(w->lat, cap * sizeof(*lat));
		if (lat == NULL) {
			return -ENOMEM;
		}
		w->lat = lat;
		w->cap_lat = cap;
	}
	w->lat[w->n_lat++] = us;
	return 0;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* Sends one request and reads its response. Returns 0 when a response
 * arrived (whatever its status), or a negative errno after an I/O or
 * protocol failure, with the connection closed. */
static int worker_exchange(struct worker *w, int *status, uint64_t *us)
{
	const struct run *run = w->run;
	int timeout_ms = run->opts->timeout_ms;
	char err[ERR_LEN];
	bool keep_alive;
	uint64_t start;
	int rv;

	start = now_ns();
	rv = run->ops->write(w->conn.io, w->req.data, w->req.len, timeout_ms);
	if (rv != 0) {
		snprintf(err, sizeof(err), "write request: %s", strerror(-rv));
		goto err;
	}
	rv = read_response(&w->conn, run->head, timeout_ms, status, &keep_alive,
			   err, sizeof(err));
	if (rv != 0) {
		goto err;
	}
	*us = (now_ns() - start) / 1000u;
	if (!keep_alive) {
		conn_disconnect(&w->conn);
	}
	return 0;

err:
	worker_error(w, err);
	conn_disconnect(&w->conn);
	return rv;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	const struct options *opts = run->opts;
	char err[ERR_LEN];
	uint64_t us;
	long index;
	int status;
	int rv;

	if (!run->templated && build_request(w, 0) != 0) {
		goto oom;
	}
	for (;;) {
		if (atomic_load(&run->stop) ||
		    (opts->sequence == 0 && now_ns() >= run->deadline_ns)) {
			break;
		}
		index = atomic_fetch_add(&run->next_index, 1);
		if (opts->sequence > 0 && index >= opts->sequence) {
			break;
		}
		if (w->conn.io == NULL) {
			rv =
			    run->ops->open(opts, &w->conn.io, err, sizeof(err));
			if (rv != 0) {
				w->conn.io = NULL;
				w->io_errors++;
				worker_error(w, err);
				/* Keep a dead server from turning the run
				 * into a busy loop of failed connects. */
				if (opts->sequence == 0) {
					sleep_ns(CONNECT_BACKOFF_NS);
				}
				continue;
			}
		}
		if (run->templated && build_request(w, index) != 0) {
			goto oom;
		}
		w->requests++;
		rv = worker_exchange(w, &status, &us);
		if (rv != 0) {
			w->io_errors++;
			continue;
		}
		if (status < 200 || status > 299) {
			w->non2xx++;
			if (w->err[0] == '\0') {
				snprintf(w->err, sizeof(w->err),
					 "%s request %ld: HTTP status %d",
					 opts->method, index, status);
			}
		}
		if (worker_record(w, us) != 0) {
			goto oom;
		}
	}
	conn_disconnect(&w->conn);
	return NULL;

oom:
	worker_error(w, "out of memory");
	w->failed = true;
	conn_disconnect(&w->conn);
	return NULL;
}

/* Results. */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted values v[0..n), n > 0. */
static uint64_t percentile(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	if (rank < 1) {
		rank = 1;
	}
	if (rank > n) {
		rank = n;
	}
	return v[rank - 1];
}

/* Options. */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: loadgen (--unix PATH | --tls HOST:PORT [--cert FILE --key FILE]\n"
	    "               [--insecure]) [--connections N] [--duration SECONDS]\n"
	    "               [--sequence N] [--method GET] [--path /1.0]\n"
	    "               [--body STRING] [--header 'K: V']... [--timeout SECONDS]\n"
	    "               [--json]\n"
	    "\n"
	    "Keep-alive HTTP/1.1 load: each connection sends one request at a time.\n"
	    "  --unix PATH        connect to the Unix socket at PATH\n"
	    "  --tls HOST:PORT    connect over TLS 1.2+ to HOST:PORT ([V6]:PORT);\n"
	    "                     one handshake per connection\n"
	    "  --cert FILE        client certificate (PEM) to present over --tls\n"
	    "  --key FILE         its private key (PEM)\n"
	    "  --insecure         do not verify the server's certificate\n"
	    "  --connections N    concurrent connections (default 1)\n"
	    "  --duration S       run for S seconds (default 10)\n"
	    "  --sequence N       instead send N requests in total, indexes 0..N-1\n"
	    "  --method M         request method (default GET)\n"
	    "  --path P           request target (default /1.0)\n"
	    "  --body B           request body, sent as application/json unless a\n"
	    "                     Content-Type header is given\n"
	    "  --header 'K: V'    extra request header; repeatable\n"
	    "  --timeout S        per read/write timeout (default 10)\n"
	    "  --json             print one JSON object instead of text\n"
	    "\"%%d\" in --path and --body is replaced by the request index.\n");
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 1e6) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static bool is_token(const char *s)
{
	if (*s == '\0') {
		return false;
	}
	for (; *s != '\0'; s++) {
		if (strchr("!#$%&'*+-.^_`|~", *s) == NULL &&
		    !(*s >= '0' && *s <= '9') && !(*s >= 'a' && *s <= 'z') &&
		    !(*s >= 'A' && *s <= 'Z')) {
			return false;
		}
	}
	return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum {
		OPT_UNIX = 256,
		OPT_TLS,
		OPT_CERT,
		OPT_KEY,
		OPT_INSECURE,
		OPT_CONNECTIONS,
		OPT_DURATION,
		OPT_SEQUENCE,
		OPT_METHOD,
		OPT_PATH,
		OPT_BODY,
		OPT_HEADER,
		OPT_TIMEOUT,
		OPT_JSON,
	};
	static const struct option longopts[] = {
		{ "unix", required_argument, NULL, OPT_UNIX },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "connections", required_argument, NULL, OPT_CONNECTIONS },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "sequence", required_argument, NULL, OPT_SEQUENCE },
		{ "method", required_argument, NULL, OPT_METHOD },
		{ "path", required_argument, NULL, OPT_PATH },
		{ "body", required_argument, NULL, OPT_BODY },
		{ "header", required_argument, NULL, OPT_HEADER },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_duration = false;
	double timeout = 10;
	long v;
	int opt;

	*o = (struct options){
		.connections = 1,
		.duration = 10,
		.method = "GET",
		.path = "/1.0",
	};
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_UNIX:
			o->unix_path = optarg;
			break;
		case OPT_TLS:
			o->tls_addr = optarg;
			break;
		case OPT_CERT:
			o->cert_file = optarg;
			break;
		case OPT_KEY:
			o->key_file = optarg;
			break;
		case OPT_INSECURE:
			o->insecure = true;
			break;
		case OPT_CONNECTIONS:
			if (parse_long(optarg, 1, MAX_CONNECTIONS, &v) != 0) {
				fprintf(
				    stderr,
				    "loadgen: --connections: expected 1..%d, got %s\n",
				    MAX_CONNECTIONS, optarg);
				return -EINVAL;
			}
			o->connections = (unsigned)v;
			break;
		case OPT_DURATION:
			if (parse_seconds(optarg, &o->duration) != 0) {
				fprintf(
				    stderr,
				    "loadgen: --duration: expected a positive number of seconds, got %s\n",
				    optarg);
				return -EINVAL;
			}
			have_duration = true;
			break;
		case OPT_SEQUENCE:
			if (parse_long(optarg, 1, LONG_MAX / 2, &v) != 0) {
				fprintf(
				    stderr,
				    "loadgen: --sequence: expected a positive count, got %s\n",
				    optarg);
				return -EINVAL;
			}
			o->sequence = v;
			break;
		case OPT_METHOD:
			if (!is_token(optarg)) {
				fprintf(
				    stderr,
				    "loadgen: --method: not an HTTP method: %s\n",
				    optarg);
				return -EINVAL;
			}
			o->method = optarg;
			break;
		case OPT_PATH:
			if (optarg[0] != '/' ||
			    strpbrk(optarg, " \r\n") != NULL) {
				fprintf(
				    stderr,
				    "loadgen: --path: expected an absolute path without spaces, got %s\n",
				    optarg);
				return -EINVAL;
			}
			o->path = optarg;
			break;
		case OPT_BODY:
			o->body = optarg;
			break;
		case OPT_HEADER:
			if (o->n_headers == MAX_HEADERS) {
				fprintf(
				    stderr,
				    "loadgen: --header: at most %d headers\n",
				    MAX_HEADERS);
				return -EINVAL;
			}
			if (strchr(optarg, ':') == NULL ||
			    strpbrk(optarg, "\r\n") != NULL ||
			    optarg[0] == ':') {
				fprintf(
				    stderr,
				    "loadgen: --header: expected 'Name: value', got %s\n",
				    optarg);
				return -EINVAL;
			}
			o->headers[o->n_headers++] = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, &timeout) != 0 ||
			    timeout > INT_MAX / 1000) {
				fprintf(
				    stderr,
				    "loadgen: --timeout: expected a positive number of seconds, got %s\n",
				    optarg);
				return -EINVAL;
			}
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loadgen: unexpected argument: %s\n",
			argv[optind]);
		return -EINVAL;
	}
	if ((o->unix_path == NULL) == (o->tls_addr == NULL)) {
		fprintf(
		    stderr,
		    "loadgen: exactly one of --unix PATH and --tls HOST:PORT is required\n");
		return -EINVAL;
	}
	if ((o->cert_file == NULL) != (o->key_file == NULL)) {
		fprintf(stderr, "loadgen: --cert and --key go together\n");
		return -EINVAL;
	}
	if (o->tls_addr == NULL && (o->cert_file != NULL || o->insecure)) {
		fprintf(stderr,
			"loadgen: --cert, --key and --insecure need --tls\n");
		return -EINVAL;
	}
	if (o->sequence > 0 && have_duration) {
		fprintf(stderr,
			"loadgen: --sequence and --duration are exclusive\n");
		return -EINVAL;
	}
	o->timeout_ms = (int)(timeout * 1000);
	if (o->timeout_ms < 1) {
		o->timeout_ms = 1;
	}
	return 0;
}

/* Picks the transport the options ask for. */
static const struct transport_ops *select_transport(const struct options *o)
{
	return o->tls_addr != NULL ? &tls_transport : &unix_transport;
}

int main(int argc, char **argv)
{
	struct options opts;
	struct run run;
	struct worker *workers;
	uint64_t *all = NULL;
	uint64_t requests = 0;
	uint64_t non2xx = 0;
	uint64_t io_errors = 0;
	uint64_t start;
	uint64_t mean = 0;
	size_t n_all = 0;
	bool failed = false;
	const char *first_err = NULL;
	double seconds;
	double rps;
	unsigned i;
	int rv;

	if (parse_options(argc, argv, &opts) != 0) {
		return 2;
	}
	/* A transport may write to a peer that has gone (TLS will). */
	signal(SIGPIPE, SIG_IGN);
	if (opts.tls_addr != NULL && tls_setup(&opts) != 0) {
		return 2;
	}

	run = (struct run){
		.opts = &opts,
		.ops = select_transport(&opts),
		.templated =
		    strstr(opts.path, "%d") != NULL ||
		    (opts.body != NULL && strstr(opts.body, "%d") != NULL),
		.head = strcmp(opts.method, "HEAD") == 0,
	};
	atomic_init(&run.next_index, 0);
	atomic_init(&run.stop, false);

	workers = calloc(opts.connections, sizeof(*workers));
	if (workers == NULL) {
		fprintf(stderr, "loadgen: calloc(): out of memory\n");
		return 1;
	}
	start = now_ns();
	run.deadline_ns = start + (uint64_t)(opts.duration * 1e9);
	for (i = 0; i < opts.connections; i++) {
		workers[i].run = &run;
		workers[i].conn.ops = run.ops;
		rv = pthread_create(&workers[i].thread, NULL, worker_main,
				    &workers[i]);
		if (rv != 0) {
			fprintf(stderr, "loadgen: pthread_create(): %s\n",
				strerror(rv));
			/* Stop the threads already running. */
			atomic_store(&run.stop, true);
			opts.connections = i;
			failed = true;
			break;
		}
	}
	for (i = 0; i < opts.connections; i++) {
		pthread_join(workers[i].thread, NULL);
	}
	seconds = (double)(now_ns() - start) / 1e9;

	for (i = 0; i < opts.connections; i++) {
		struct worker *w = &workers[i];

		requests += w->requests;
		non2xx += w->non2xx;
		io_errors += w->io_errors;
		n_all += w->n_lat;
		failed = failed || w->failed;
		if (first_err == NULL && w->err[0] != '\0') {
			first_err = w->err;
		}
	}
	if (n_all > 0) {
		all = malloc(n_all * sizeof(*all));
		if (all == NULL) {
			fprintf(stderr, "loadgen: malloc(): out of memory\n");
			return 1;
		}
		n_all = 0;
		for (i = 0; i < opts.connections; i++) {
			memcpy(all + n_all, workers[i].lat,
			       workers[i].n_lat * sizeof(*all));
			n_all += workers[i].n_lat;
		}
		qsort(all, n_all, sizeof(*all), cmp_u64);
		for (size_t k = 0; k < n_all; k++) {
			mean += all[k];
		}
		mean /= n_all;
	}
	rps = seconds > 0 ? (double)requests / seconds : 0;

	if (first_err != NULL) {
		fprintf(stderr, "loadgen: first error: %s\n", first_err);
	}
	if (opts.json) {
		printf("{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"rps\":%.1f",
		       requests, non2xx + io_errors, rps);
		if (n_all > 0) {
			printf(",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
			       ",\"max_us\":%" PRIu64 ",\"mean_us\":%" PRIu64,
			       percentile(all, n_all, 50),
			       percentile(all, n_all, 99), all[n_all - 1],
			       mean);
		} else {
			printf(
			    ",\"p50_us\":null,\"p99_us\":null,\"max_us\":null,\"mean_us\":null");
		}
		printf(",\"non2xx\":%" PRIu64 ",\"io_errors\":%" PRIu64
		       ",\"seconds\":%.3f,\"connections\":%u}\n",
		       non2xx, io_errors, seconds, opts.connections);
	} else {
		printf("requests: %" PRIu64 "\n", requests);
		printf("errors:   %" PRIu64 " (non-2xx %" PRIu64
		       ", i/o %" PRIu64 ")\n",
		       non2xx + io_errors, non2xx, io_errors);
		printf("seconds:  %.3f\n", seconds);
		printf("req/s:    %.1f\n", rps);
		if (n_all > 0) {
			printf("p50:      %" PRIu64 " us\n",
			       percentile(all, n_all, 50));
			printf("p99:      %" PRIu64 " us\n",
			       percentile(all, n_all, 99));
			printf("max:      %" PRIu64 " us\n", all[n_all - 1]);
		} else {
			printf("p50:      n/a\np99:      n/a\n");
		}
	}

	for (i = 0; i < opts.connections; i++) {
		free(workers[i].lat);
		free(workers[i].conn.buf);
		sbuf_close(&workers[i].req);
		sbuf_close(&workers[i].body);
	}
	free(workers);
	free(all);
	SSL_CTX_free(tls_target.ctx); /* NULL without --tls */
	/* 0 when at least one request succeeded and nothing broke. */
	return failed || n_all == non2xx ? 1 : 0;
}
