/* The REST API: listeners (Unix socket now, TLS later), routing, the LXD
 * response envelope and the endpoint handlers.
 *
 * cmd/corrald creates one struct api on its loop, starts it, and closes it
 * on SIGTERM. */
#ifndef CORRAL_API_H
#define CORRAL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

struct api;
struct cluster;
struct state;

/* Settings of the API. Strings are copied by api_create(); no reference to
 * them is kept. */
struct api_config {
	const char *state_dir;
	const char *socket_path;
	gid_t socket_gid; /* group owning the socket, when have_gid */
	bool have_gid;
	const char *cert_pem;         /* the server certificate, PEM */
	const char *cert_fingerprint; /* lowercase hex SHA-256 of the DER */
	size_t max_body;              /* 0 means the 8 MiB default */
	struct state *state;          /* borrowed, must outlive the API */
	struct cluster *cluster;      /* borrowed, may be NULL */
};

/* Allocate the API on @loop (borrowed, must outlive it). On error *@out is
 * untouched and @errmsg (CORRAL_ERRMSG_SIZE) says why. Returns 0 or
 * -ENOMEM. */
int api_create(uv_loop_t *loop,
	       const struct api_config *cfg,
	       struct api **out,
	       char *errmsg);

/* Listen on the Unix socket: a stale socket file left by a crashed run is
 * replaced, a live one (another corrald) is an error. The socket is mode
 * 0660, owned by root and the configured group. Returns 0 or a negative code
 * with @errmsg filled. */
int api_start(struct api *a, char *errmsg);

/* Mark the API ready (every route served) or not ready: every route but
 * GET / and GET /1.0 then answers 503 "corrald setup in progress: REASON".
 * @reason is copied. A new API is not ready ("starting"). */
void api_set_ready(struct api *a, bool ready, const char *reason);

/* Called once the database is ready: load the server config into the
 * API's cache and start serving every route. */
void api_state_ready(struct api *a);

/* Stop listening and close every connection; @cb runs on the loop once every
 * handle of the API has closed. The socket file is removed. */
void api_close(struct api *a, void (*cb)(void *arg), void *arg);

/* Free @a after api_close() completed (or when it never started). Accepts
 * NULL. */
void api_destroy(struct api *a);

#endif /* CORRAL_API_H */
