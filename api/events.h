/* GET /1.0/events: LXD's event stream over a websocket (RFC 6455).
 *
 * A listener is an upgraded HTTP connection with a server-side wslay
 * context. The daemon broadcasts events with events_send(); each listener
 * receives those matching its type and project filters as text frames.
 * Client messages are read and ignored; pings are answered, a close is
 * answered and the connection then ends. The server pings every listener
 * every EVENTS_PING_MS and drops one that stayed silent for a whole period
 * (dead peer), and drops a listener whose unsent output exceeds
 * max_queue (slow consumer). */
#ifndef CORRAL_API_EVENTS_H
#define CORRAL_API_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "http.h"

#define EVENTS_PING_MS (30 * 1000)
#define EVENTS_MAX_QUEUE (4 * 1024 * 1024)

/* Size of a Sec-WebSocket-Accept value, NUL included. */
#define EVENTS_ACCEPT_SIZE 29

/* Event types a listener can select. */
enum {
	EVENTS_TYPE_OPERATION = 1 << 0,
	EVENTS_TYPE_LOGGING = 1 << 1,
	EVENTS_TYPE_LIFECYCLE = 1 << 2,
	EVENTS_TYPE_ALL = (1 << 3) - 1,
};

struct api;
struct events_listener;

/* The set of listeners of one API. Allocated by events_create(). */
struct events {
	uv_loop_t *loop; /* borrowed */
	char location[64];
	size_t max_queue;
	uint64_t ping_ms;
	struct events_listener *listeners; /* owned list */
	unsigned n_listeners;
	uv_timer_t ping;
	bool ping_open;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Allocate the listener set on @loop (borrowed, must outlive it). Returns 0
 * or -ENOMEM. */
int events_create(uv_loop_t *loop, struct events **out);

/* Close every listener and the ping timer; @cb (may be NULL) runs on the
 * loop once the timer has closed. Listeners finish closing with their
 * connections. */
void events_close(struct events *e, void (*cb)(void *arg), void *arg);

/* Free @e after events_close() completed (or when no listener ever
 * connected). Accepts NULL. */
void events_destroy(struct events *e);

/* Broadcast an event of @type ("operation", "logging", "lifecycle") in
 * @project ("" or NULL: every project) with @metadata (borrowed) to every
 * matching listener of @a. Listeners that cannot take it are dropped. On a
 * cluster member, operation and lifecycle events are relayed to every
 * other member too (cluster_events_relay()), whose listeners get them
 * with this member's name as "location", as in LXD. */
void events_send(struct api *a,
		 const char *type,
		 const char *project,
		 json_t *metadata);

/* Like events_send() on a listener set. */
void events_broadcast(struct events *e,
		      const char *type,
		      const char *project,
		      json_t *metadata);

/* The "location" of the events @e sends from now on: the member's name in
 * a cluster ("none" until then, as in LXD). */
void events_set_location(struct events *e, const char *name);

/* Like events_broadcast() for an event another member relayed
 * (POST /internal/events): its @location and @timestamp are kept. Never
 * relayed again. */
void events_broadcast_relayed(struct events *e,
			      const char *type,
			      const char *project,
			      const char *location,
			      const char *timestamp,
			      json_t *metadata);

/* Close every listener of @a whose connection @match accepts (called with
 * @arg), e.g. the streams of a revoked certificate. */
void events_close_matching(struct api *a,
			   bool (*match)(struct http_conn *conn, void *arg),
			   void *arg);

/* Serve GET /1.0/events on @conn for request @req: check the websocket
 * handshake headers, parse ?type=, ?project= and ?all-projects=, answer 101
 * and start a listener. Returns 0 when the connection was taken over, or a
 * negative code with @errmsg (CORRAL_ERRMSG_SIZE) filled and *@status set
 * to the HTTP status to answer (400, 500): the request is then still to be
 * answered by the caller. */
int events_listen(struct events *e,
		  struct http_conn *conn,
		  struct http_request *req,
		  unsigned *status,
		  char *errmsg);

/* Whether the caller on @conn may receive an event of @project, asked for
 * every event about to be sent to its listener, so a role or trust change
 * applies to open streams at once. @project is "" for server-level events
 * (token operations, trust changes) and for logging events: those are for
 * server admins only. */
typedef bool (*events_admin_cb)(struct http_conn *conn,
				const char *project,
				void *arg);

/* Like events_listen(), for a caller whose rights @admin (may be NULL:
 * everything) decides, with @admin_arg, for each event. */
int events_listen_as(struct events *e,
		     struct http_conn *conn,
		     struct http_request *req,
		     events_admin_cb admin,
		     void *admin_arg,
		     unsigned *status,
		     char *errmsg);

/* Compute Sec-WebSocket-Accept for the client's Sec-WebSocket-Key @key:
 * base64(SHA-1(key + RFC 6455 GUID)). */
void events_ws_accept(const char *key, char out[EVENTS_ACCEPT_SIZE]);

/* Parse a ?type= value: comma-separated names among operation, logging,
 * lifecycle into a bit mask. Empty means all types. Returns the mask, or
 * CORRAL_EINVALID for an unknown name. */
int events_parse_types(const char *list);

/* The event type bit of @type, 0 for an unknown type. */
int events_type_bit(const char *type);

/* Serialise one event: {"type","timestamp","metadata","location",
 * "project"}. Returns a malloc'd string or NULL on OOM. */
char *events_format(const char *type,
		    const char *project,
		    const char *location,
		    json_t *metadata,
		    size_t *len);

#endif /* CORRAL_API_EVENTS_H */
