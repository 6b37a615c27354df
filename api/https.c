#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <corral/err.h>
#include <corral/log.h>

#include "https.h"
#include "tls.h"

/* Pending connections the kernel queues for us. */
#define HTTPS_BACKLOG 128

/* Parse a decimal port of 1 to 5 digits, at most 65535. */
static int parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 5) {
		return CORRAL_EINVALID;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return CORRAL_EINVALID;
		}
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535) {
		return CORRAL_EINVALID;
	}
	*port = v;
	return 0;
}

static int copy_host(const char *src,
		     size_t len,
		     char *host,
		     size_t host_size,
		     const char *address,
		     char *errmsg)
{
	size_t i;

	if (len >= host_size) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid address \"%s\": host too long", address);
		return CORRAL_EINVALID;
	}
	for (i = 0; i < len; i++) {
		if (src[i] <= ' ' || src[i] == '/' || src[i] == '[' ||
		    src[i] == ']' || (unsigned char)src[i] >= 0x7f) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "invalid address \"%s\": bad host",
				    address);
			return CORRAL_EINVALID;
		}
	}
	memcpy(host, src, len);
	host[len] = '\0';
	return 0;
}

int https_address_parse(const char *address,
			char *host,
			size_t host_size,
			unsigned *port,
			char *errmsg)
{
	const char *colon;
	const char *end;
	unsigned char v6[16];
	int rv;

	if (address == NULL || address[0] == '\0') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "empty address");
		return CORRAL_EINVALID;
	}
	*port = HTTPS_DEFAULT_PORT;
	if (address[0] == '[') {
		end = strchr(address, ']');
		if (end == NULL || end == address + 1) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "invalid address \"%s\": bad brackets",
				    address);
			return CORRAL_EINVALID;
		}
		rv = copy_host(address + 1, (size_t)(end - address - 1), host,
			       host_size, address, errmsg);
		if (rv != 0) {
			return rv;
		}
		if (end[1] == '\0') {
			return 0;
		}
		if (end[1] != ':' || parse_port(end + 2, port) != 0) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "invalid address \"%s\": bad port",
				    address);
			return CORRAL_EINVALID;
		}
		return 0;
	}
	colon = strchr(address, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		/* Two colons or more: a bare IPv6 address. */
		if (uv_inet_pton(AF_INET6, address, v6) != 0) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid address \"%s\": put an IPv6 address in brackets before a port",
			    address);
			return CORRAL_EINVALID;
		}
		return copy_host(address, strlen(address), host, host_size,
				 address, errmsg);
	}
	if (colon == NULL) {
		return copy_host(address, strlen(address), host, host_size,
				 address, errmsg);
	}
	if (parse_port(colon + 1, port) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid address \"%s\": bad port", address);
		return CORRAL_EINVALID;
	}
	return copy_host(address, (size_t)(colon - address), host, host_size,
			 address, errmsg);
}

/* Whether @host (as https_address_parse() returns it) is every address. */
static bool host_wildcard(const char *host)
{
	unsigned char v6[16];
	static const unsigned char zero[16];

	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0) {
		return true;
	}
	return uv_inet_pton(AF_INET6, host, v6) == 0 &&
	       memcmp(v6, zero, sizeof zero) == 0;
}

bool https_address_covers(const char *listen, const char *address)
{
	char lhost[256];
	char ahost[256];
	unsigned char lbin[16];
	unsigned char abin[16];
	unsigned lport;
	unsigned aport;
	bool l4;
	bool a4;

	if (listen == NULL || address == NULL || listen[0] == '\0' ||
	    address[0] == '\0') {
		return false;
	}
	if (https_address_parse(listen, lhost, sizeof lhost, &lport, NULL) !=
		0 ||
	    https_address_parse(address, ahost, sizeof ahost, &aport, NULL) !=
		0) {
		return false;
	}
	if (strcmp(listen, address) == 0) {
		return true;
	}
	if (lport == 0 || lport != aport) {
		return false;
	}
	a4 = uv_inet_pton(AF_INET, ahost, abin) == 0;
	if (strcmp(lhost, "0.0.0.0") == 0) {
		return a4;
	}
	if (host_wildcard(lhost)) {
		/* "::" is dual-stack (libuv binds without IPV6_V6ONLY). */
		return true;
	}
	l4 = uv_inet_pton(AF_INET, lhost, lbin) == 0;
	if (l4 || a4) {
		return l4 && a4 && memcmp(lbin, abin, 4) == 0;
	}
	if (uv_inet_pton(AF_INET6, lhost, lbin) == 0 &&
	    uv_inet_pton(AF_INET6, ahost, abin) == 0) {
		return memcmp(lbin, abin, 16) == 0;
	}
	return strcasecmp(lhost, ahost) == 0;
}

bool https_address_wildcard(const char *address)
{
	char host[256];
	unsigned port;

	if (address == NULL || address[0] == '\0' ||
	    https_address_parse(address, host, sizeof host, &port, NULL) != 0) {
		return false;
	}
	return host_wildcard(host);
}

int https_address_normalize(const char *address, char *out, size_t size)
{
	char host[256];
	unsigned port;
	int n;

	if (https_address_parse(address, host, sizeof host, &port, NULL) != 0) {
		return CORRAL_EINVALID;
	}
	if (strchr(host, ':') != NULL) {
		n = snprintf(out, size, "[%s]:%u", host, port);
	} else {
		n = snprintf(out, size, "%s:%u", host, port);
	}
	if (n < 0 || (size_t)n >= size) {
		return -ENOSPC;
	}
	return 0;
}

/* Whether the kernel can make IPv6 sockets at all. */
static bool have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		return false;
	}
	close(fd);
	return true;
}

/* Turn @host and @port into a socket address: numeric addresses directly,
 * names through the resolver (synchronously: this runs only when the
 * configuration changes). */
static int resolve(const char *host,
		   unsigned port,
		   struct sockaddr_storage *ss,
		   const char *address,
		   char *errmsg)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int p = (int)port;
	int rv;

	memset(ss, 0, sizeof *ss);
	if (host[0] == '\0') {
		if (have_ipv6()) {
			return uv_ip6_addr("::", p, (struct sockaddr_in6 *)ss);
		}
		return uv_ip4_addr("0.0.0.0", p, (struct sockaddr_in *)ss);
	}
	if (uv_ip4_addr(host, p, (struct sockaddr_in *)ss) == 0) {
		return 0;
	}
	if (uv_ip6_addr(host, p, (struct sockaddr_in6 *)ss) == 0) {
		return 0;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	rv = getaddrinfo(host, NULL, &hints, &res);
	if (rv != 0 || res == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "resolve %s: %s",
			    address,
			    rv == EAI_MEMORY ? "out of memory"
			    : rv != 0        ? gai_strerror(rv)
					     : "no address");
		if (res != NULL) {
			freeaddrinfo(res);
		}
		return rv == EAI_MEMORY ? -ENOMEM : CORRAL_EINVALID;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	if (ss->ss_family == AF_INET) {
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	} else {
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	}
	freeaddrinfo(res);
	return 0;
}

static void drop_closed_cb(uv_handle_t *h)
{
	free(h);
}

/* libuv stops polling a listener while an accepted socket waits for
 * uv_accept(): take and close it, or the listener would stall for good. */
static void drop_pending(struct https_listener *l)
{
	uv_tcp_t *t = malloc(sizeof *t);

	if (t == NULL) {
		return;
	}
	if (uv_tcp_init(l->loop, t) != 0) {
		free(t);
		return;
	}
	(void)uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)t);
	uv_close((uv_handle_t *)t, drop_closed_cb);
}

static void connection_cb(uv_stream_t *stream, int status)
{
	struct https_listener *l = stream->data;
	int rv;

	if (status < 0) {
		log_warn("msg=\"TLS accept failed\" error=\"%s\"",
			 uv_strerror(status));
		return;
	}
	rv = tls_server_accept(l->server, stream, l->ctx);
	if (rv != 0) {
		l->accept_failures++;
		log_warn("msg=\"TLS accept failed\" error=\"%s\"",
			 corral_strerror(rv));
		drop_pending(l);
	}
}

static void listener_closed_cb(uv_handle_t *h)
{
	struct https_listener *l = h->data;
	https_listener_stop_cb cb = l->stop_cb;

	l->closing = false;
	l->stop_cb = NULL;
	SSL_CTX_free(l->ctx);
	l->ctx = NULL;
	if (cb != NULL) {
		cb(l);
	}
}

/* Start closing the socket of @l; listener_closed_cb() finishes. */
static void listener_close(struct https_listener *l)
{
	l->listening = false;
	l->closing = true;
	uv_close((uv_handle_t *)&l->tcp, listener_closed_cb);
}

int https_listener_start(struct https_listener *l,
			 uv_loop_t *loop,
			 struct http_server *server,
			 SSL_CTX *ctx,
			 const char *address,
			 char *errmsg)
{
	struct sockaddr_storage ss;
	char host[256];
	unsigned port;
	int rv;

	if (l->listening || l->closing) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "listen on %s: listener busy", address);
		return -EBUSY;
	}
	memset(l, 0, offsetof(struct https_listener, data));
	l->loop = loop;
	l->server = server;
	if (address == NULL || address[0] == '\0') {
		return 0;
	}
	rv = https_address_parse(address, host, sizeof host, &port, errmsg);
	if (rv != 0) {
		return rv;
	}
	rv = resolve(host, port, &ss, address, errmsg);
	if (rv != 0) {
		return rv;
	}
	rv = uv_tcp_init(loop, &l->tcp);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "listen on %s: uv_tcp_init(): %s", address,
			    uv_strerror(rv));
		return rv;
	}
	l->tcp.data = l;
	if (!SSL_CTX_up_ref(ctx)) {
		listener_close(l);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "listen on %s: SSL_CTX_up_ref() failed", address);
		return CORRAL_ETLS;
	}
	l->ctx = ctx;
	l->listening = true;
	/* libuv reports most bind errors (EADDRINUSE) from uv_listen(). */
	rv = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
	if (rv == 0) {
		rv = uv_listen((uv_stream_t *)&l->tcp, HTTPS_BACKLOG,
			       connection_cb);
	}
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "listen on %s: %s",
			    address, uv_strerror(rv));
		listener_close(l);
		return rv;
	}
	return 0;
}

void https_listener_stop(struct https_listener *l, https_listener_stop_cb cb)
{
	if (l->closing) {
		/* A failed start is still closing its socket. */
		if (l->stop_cb == NULL) {
			l->stop_cb = cb;
		}
		return;
	}
	if (!l->listening) {
		if (cb != NULL) {
			cb(l);
		}
		return;
	}
	l->stop_cb = cb;
	listener_close(l);
}

bool https_listener_active(const struct https_listener *l)
{
	return l->listening;
}

int https_listener_address(struct https_listener *l, char *out, size_t size)
{
	struct sockaddr_storage ss;
	int len = (int)sizeof ss;
	char ip[INET6_ADDRSTRLEN + 16];
	int port;
	int rv;
	int n = -1;

	if (!l->listening) {
		return -ENOTCONN;
	}
	rv = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
	if (rv != 0) {
		return rv;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

		rv = uv_ip4_name(sin, ip, sizeof ip);
		port = ntohs(sin->sin_port);
		if (rv == 0) {
			n = snprintf(out, size, "%s:%d", ip, port);
		}
	} else {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)&ss;

		rv = uv_ip6_name(sin6, ip, sizeof ip);
		port = ntohs(sin6->sin6_port);
		if (rv == 0) {
			n = snprintf(out, size, "[%s]:%d", ip, port);
		}
	}
	if (rv != 0) {
		return rv;
	}
	if (n < 0 || (size_t)n >= size) {
		return -ENOSPC;
	}
	return 0;
}
