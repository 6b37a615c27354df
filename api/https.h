/* An HTTPS listener: core.https_address's, or cluster.https_address's when
 * that one is apart.
 *
 * A listener binds one TCP address and hands every connection it accepts to
 * an http_server as a TLS connection (tls.h). It owns only the listening
 * socket: connections already accepted belong to the server and survive
 * https_listener_stop(), so changing the address (stop, then start once the
 * stop callback ran) does not cut off clients on the old one. */
#ifndef CORRAL_API_HTTPS_H
#define CORRAL_API_HTTPS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "http.h"

/* Port used when core.https_address names no port, like LXD's. */
#define HTTPS_DEFAULT_PORT 8443

struct https_listener;

/* Called on the loop once the listener's socket is closed. */
typedef void (*https_listener_stop_cb)(struct https_listener *l);

/* Caller-allocated; zero it (or let https_listener_start() fill it) before
 * first use. */
struct https_listener {
	uv_tcp_t tcp;
	uv_loop_t *loop;            /* borrowed */
	struct http_server *server; /* borrowed, must outlive the listener */
	SSL_CTX *ctx;               /* referenced while listening */
	bool listening;             /* tcp is open */
	bool closing;               /* uv_close() issued, callback pending */
	https_listener_stop_cb stop_cb;
	unsigned accept_failures; /* connections dropped by accept errors */
	void *data;               /* for the user */
	void *data2;              /* for the user: a pending restart */
};

/* Split core.https_address @address (borrowed) into a host and a port, the
 * way LXD reads it: "host" or "[v6]" use HTTPS_DEFAULT_PORT, "host:port",
 * "[v6]:port", a bare IPv6 address ("::1") takes the default port, and
 * ":port" (empty host) means every address. @host (of @host_size bytes)
 * receives the host without brackets, "" for every address. Port 0 asks the
 * kernel for a free port. Returns 0, or CORRAL_EINVALID with a message in
 * @errmsg (CORRAL_ERRMSG_SIZE bytes, may be NULL) for an empty address, a
 * bad port or unbalanced brackets. */
int https_address_parse(const char *address,
			char *host,
			size_t host_size,
			unsigned *port,
			char *errmsg);

/* Whether a listener on @listen (a configured address, or the bound one
 * as https_listener_address() writes it) also serves @address, so that no
 * second listener is needed (nor could bind): the same string, or the same
 * port (not 0) on the same host or on a wildcard host ("" and "::" serve
 * every address, "0.0.0.0" every IPv4 address). Numeric hosts compare as
 * addresses ("::1" and "0::1" are the same), names as case-insensitive
 * strings. False when either is empty or does not parse. */
bool https_address_covers(const char *listen, const char *address);

/* Whether @address names a wildcard host ("", "::", "0.0.0.0"): every
 * address of the host rather than one a peer could dial. False when it does
 * not parse. */
bool https_address_wildcard(const char *address);

/* Write @address in the form https_listener_address() uses, "host:port" or
 * "[ip6]:port", with the default port made explicit, into @out (@size
 * bytes). Returns 0, CORRAL_EINVALID when it does not parse, or -ENOSPC. */
int https_address_normalize(const char *address, char *out, size_t size);

/* Start listening on @address (borrowed; see https_address_parse()) and
 * serve every connection with @server (borrowed) as TLS on @ctx (a
 * reference is taken for as long as the socket is open; new connections
 * take their own). An empty @address leaves @l stopped and returns 0, as an
 * unset core.https_address does. A host name is resolved synchronously.
 * The wildcard host binds "::" (IPv4 too, dual-stack), falling back to
 * 0.0.0.0 when the kernel has no IPv6. @l must not be listening or closing.
 * Returns 0, or a negative code (CORRAL_EINVALID for a bad address, a libuv
 * code such as UV_EADDRINUSE) with a message in @errmsg like
 * "listen on 127.0.0.1:8443: address already in use"; @l is then stopped
 * and needs no https_listener_stop(). */
int https_listener_start(struct https_listener *l,
			 uv_loop_t *loop,
			 struct http_server *server,
			 SSL_CTX *ctx,
			 const char *address,
			 char *errmsg);

/* Close the listening socket; connections already accepted stay open. @cb
 * (may be NULL) runs on the loop once the socket is closed, after which @l
 * may be started again or freed. When @l is not listening, @cb runs at once,
 * before this returns. Must not be called while a previous stop is still
 * pending. */
void https_listener_stop(struct https_listener *l, https_listener_stop_cb cb);

/* Whether @l has a socket open. */
bool https_listener_active(const struct https_listener *l);

/* Write the address @l is bound to into @out (@size bytes) as "ip:port" or
 * "[ip6]:port", with the port the kernel chose for port 0, e.g.
 * "127.0.0.1:43121" or "[::]:8443". Returns 0, -ENOTCONN when @l is not
 * listening, -ENOSPC when @out is too small, or a libuv code. */
int https_listener_address(struct https_listener *l, char *out, size_t size);

#endif /* CORRAL_API_HTTPS_H */
