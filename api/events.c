#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include <corral/cluster.h>
#include <corral/err.h>
#include <corral/log.h>

#include "api.h"
#include "events.h"
#include "operations.h"
#include "router.h"

/* Largest client message we accept (they are ignored anyway). */
#define EVENTS_MAX_RECV (64 * 1024)

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct events_listener {
	struct events *events;  /* borrowed */
	struct http_conn *conn; /* referenced until the connection closes */
	wslay_event_context_ptr ctx;
	int types;
	bool all_projects;
	char project[128];
	events_admin_cb admin; /* NULL: the caller is an admin */
	void *admin_arg;

	/* Input handed to wslay_event_recv() by the recv callback. */
	const char *in;
	size_t in_len;

	bool heard;    /* a frame arrived since the last ping */
	bool finished; /* close handshake done, connection ending */
	int busy;      /* inside wslay calls: defer freeing */
	bool dead;     /* the connection closed while busy */
	struct events_listener *prev;
	struct events_listener *next;
};

/* ------------------------------------------------------------------------ */
/* Pure helpers                                                              */

void events_ws_accept(const char *key, char out[EVENTS_ACCEPT_SIZE])
{
	unsigned char digest[20];
	char buf[128];
	int n;

	/* The key is 24 characters when valid; a longer one is cut, which
	 * can only make the handshake fail on the client side. */
	n = snprintf(buf, sizeof buf, "%.64s%s", key, ws_guid);
	EVP_Digest(buf, (size_t)n, digest, NULL, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, digest, sizeof digest);
}

int events_type_bit(const char *type)
{
	if (strcmp(type, "operation") == 0) {
		return EVENTS_TYPE_OPERATION;
	}
	if (strcmp(type, "logging") == 0) {
		return EVENTS_TYPE_LOGGING;
	}
	if (strcmp(type, "lifecycle") == 0) {
		return EVENTS_TYPE_LIFECYCLE;
	}
	return 0;
}

int events_parse_types(const char *list)
{
	char name[32];
	const char *p = list;
	const char *end;
	size_t len;
	int mask = 0;
	int bit;

	if (list[0] == '\0') {
		return EVENTS_TYPE_ALL;
	}
	for (;;) {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > 0) {
			if (len >= sizeof name) {
				return CORRAL_EINVALID;
			}
			memcpy(name, p, len);
			name[len] = '\0';
			bit = events_type_bit(name);
			if (bit == 0) {
				return CORRAL_EINVALID;
			}
			mask |= bit;
		}
		if (end == NULL) {
			break;
		}
		p = end + 1;
	}
	return mask != 0 ? mask : EVENTS_TYPE_ALL;
}

/* events_format() with the timestamp @stamp (NULL: now). */
static char *format_event(const char *type,
			  const char *project,
			  const char *location,
			  const char *stamp,
			  json_t *metadata,
			  size_t *len)
{
	char now_stamp[OPS_TIME_SIZE];
	json_t *ev;
	char *out;

	if (stamp == NULL) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		ops_format_time(&now, now_stamp);
		stamp = now_stamp;
	}
	ev = json_pack("{s:s, s:s, s:O?, s:s, s:s}", "type", type, "timestamp",
		       stamp, "metadata", metadata, "location", location,
		       "project", project != NULL ? project : "");
	if (ev == NULL) {
		return NULL;
	}
	out = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (out != NULL && len != NULL) {
		*len = strlen(out);
	}
	return out;
}

char *events_format(const char *type,
		    const char *project,
		    const char *location,
		    json_t *metadata,
		    size_t *len)
{
	return format_event(type, project, location, NULL, metadata, len);
}

/* ------------------------------------------------------------------------ */
/* Listener set                                                              */

int events_create(uv_loop_t *loop, struct events **out)
{
	struct events *e;

	e = calloc(1, sizeof *e);
	if (e == NULL) {
		return -ENOMEM;
	}
	e->loop = loop;
	e->max_queue = EVENTS_MAX_QUEUE;
	e->ping_ms = EVENTS_PING_MS;
	snprintf(e->location, sizeof e->location, "none");
	*out = e;
	return 0;
}

static void listener_free(struct events_listener *l)
{
	struct events *e = l->events;

	if (l->prev != NULL) {
		l->prev->next = l->next;
	} else {
		e->listeners = l->next;
	}
	if (l->next != NULL) {
		l->next->prev = l->prev;
	}
	e->n_listeners--;
	wslay_event_context_free(l->ctx);
	http_conn_unref(l->conn);
	free(l);
}

/* The connection is closing: the listener goes with it. */
static void listener_on_close(struct http_conn *conn, void *arg)
{
	struct events_listener *l = arg;

	(void)conn;
	if (l->busy > 0) {
		l->dead = true;
		return;
	}
	listener_free(l);
}

/* After wslay ran: send what it queued, then end the connection when the
 * close handshake is over or the stream broke. Returns false when the
 * listener is gone. */
static bool listener_flush(struct events_listener *l, int rv)
{
	l->busy++;
	if (rv == 0 && wslay_event_want_write(l->ctx)) {
		rv = wslay_event_send(l->ctx);
	}
	l->busy--;
	if (l->dead) {
		listener_free(l);
		return false;
	}
	if (rv != 0) {
		http_conn_close(l->conn);
		return false;
	}
	if (!l->finished && wslay_event_get_close_sent(l->ctx) &&
	    (wslay_event_get_close_received(l->ctx) ||
	     !wslay_event_get_read_enabled(l->ctx))) {
		/* Close frames exchanged: let ours reach the peer, then end. */
		l->finished = true;
		http_conn_shutdown(l->conn);
	}
	return true;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx,
		       uint8_t *buf,
		       size_t len,
		       int flags,
		       void *user)
{
	struct events_listener *l = user;

	(void)flags;
	if (l->in_len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > l->in_len) {
		len = l->in_len;
	}
	memcpy(buf, l->in, len);
	l->in += len;
	l->in_len -= len;
	return (ssize_t)len;
}

static ssize_t send_cb(wslay_event_context_ptr ctx,
		       const uint8_t *data,
		       size_t len,
		       int flags,
		       void *user)
{
	struct events_listener *l = user;

	(void)flags;
	if (http_conn_send(l->conn, (const char *)data, len) != 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void msg_recv_cb(wslay_event_context_ptr ctx,
			const struct wslay_event_on_msg_recv_arg *arg,
			void *user)
{
	struct events_listener *l = user;

	(void)ctx;
	(void)arg;
	/* Text and binary messages are ignored; wslay answers pings and
	 * close frames itself. Any frame proves the peer alive. */
	l->heard = true;
}

static const struct wslay_event_callbacks ws_callbacks = {
	.recv_callback = recv_cb,
	.send_callback = send_cb,
	.on_msg_recv_callback = msg_recv_cb,
};

static int listener_on_data(struct http_conn *conn,
			    const char *data,
			    size_t len,
			    void *arg)
{
	struct events_listener *l = arg;
	int rv;

	(void)conn;
	if (l->finished) {
		return 0;
	}
	l->in = data;
	l->in_len = len;
	l->busy++;
	rv = wslay_event_recv(l->ctx);
	l->busy--;
	l->in = NULL;
	l->in_len = 0;
	listener_flush(l, rv);
	return 0;
}

static void ping_cb(uv_timer_t *t)
{
	struct events *e = t->data;
	struct events_listener *l;
	struct events_listener *next;
	struct wslay_event_msg ping = { .opcode = WSLAY_PING };

	for (l = e->listeners; l != NULL; l = next) {
		next = l->next;
		if (l->finished || l->dead) {
			continue;
		}
		if (!l->heard) {
			log_info("msg=\"events listener timed out\"");
			http_conn_close(l->conn);
			continue;
		}
		l->heard = false;
		if (wslay_event_queue_msg(l->ctx, &ping) != 0) {
			http_conn_close(l->conn);
			continue;
		}
		listener_flush(l, 0);
	}
	if (e->listeners == NULL) {
		uv_timer_stop(t);
	}
}

static void ping_arm(struct events *e)
{
	if (e->closing) {
		return;
	}
	if (!e->ping_open) {
		uv_timer_init(e->loop, &e->ping);
		e->ping.data = e;
		e->ping_open = true;
	}
	if (!uv_is_active((uv_handle_t *)&e->ping)) {
		uv_timer_start(&e->ping, ping_cb, e->ping_ms, e->ping_ms);
	}
}

/* Accept ?all-projects= values the way LXD's shared.IsTrue does. */
static bool is_true(const char *v)
{
	return strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
	       strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0;
}

/* Whether header @value contains @token in its comma-separated list. */
static bool header_has_token(const char *value, const char *token)
{
	size_t tlen = strlen(token);
	const char *p = value;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',') {
			p++;
		}
		if (strncasecmp(p, token, tlen) == 0 &&
		    (p[tlen] == '\0' || p[tlen] == ',' || p[tlen] == ' ' ||
		     p[tlen] == '\t')) {
			return true;
		}
		while (*p != '\0' && *p != ',') {
			p++;
		}
	}
	return false;
}

int events_listen(struct events *e,
		  struct http_conn *conn,
		  struct http_request *req,
		  unsigned *status,
		  char *errmsg)
{
	return events_listen_as(e, conn, req, NULL, NULL, status, errmsg);
}

int events_listen_as(struct events *e,
		     struct http_conn *conn,
		     struct http_request *req,
		     events_admin_cb admin,
		     void *admin_arg,
		     unsigned *status,
		     char *errmsg)
{
	const char *upgrade = http_request_header(req, "Upgrade");
	const char *connection = http_request_header(req, "Connection");
	const char *version = http_request_header(req, "Sec-WebSocket-Version");
	const char *key = http_request_header(req, "Sec-WebSocket-Key");
	struct events_listener *l;
	char accept[EVENTS_ACCEPT_SIZE];
	char value[256];
	char head[256];
	int types = EVENTS_TYPE_ALL;
	int n;
	int rv;

	*status = 400;
	if (upgrade == NULL || !header_has_token(upgrade, "websocket") ||
	    connection == NULL || !header_has_token(connection, "upgrade")) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "websocket upgrade required");
		return CORRAL_EINVALID;
	}
	if (version == NULL || strcmp(version, "13") != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "unsupported websocket version");
		return CORRAL_EINVALID;
	}
	if (key == NULL || strlen(key) != 24) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid Sec-WebSocket-Key");
		return CORRAL_EINVALID;
	}
	rv = router_query_get(req->query, "type", value, sizeof value);
	if (rv == -EINVAL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid query parameter \"type\"");
		return CORRAL_EINVALID;
	}
	if (rv >= 0) {
		types = events_parse_types(value);
		if (types < 0) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "invalid event type in \"%s\"", value);
			return CORRAL_EINVALID;
		}
	}

	*status = 500;
	l = calloc(1, sizeof *l);
	if (l == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
		return -ENOMEM;
	}
	l->events = e;
	l->types = types;
	l->admin = admin;
	l->admin_arg = admin_arg;
	l->heard = true;
	if (router_query_get(req->query, "all-projects", value, sizeof value) >=
	    0) {
		l->all_projects = is_true(value);
	}
	rv = router_query_get(req->query, "project", l->project,
			      sizeof l->project);
	if (rv == -EINVAL) {
		*status = 400;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid query parameter \"project\"");
		rv = CORRAL_EINVALID;
		goto err_after_alloc;
	}
	if (rv <= 0) {
		snprintf(l->project, sizeof l->project, "default");
	}
	if (wslay_event_context_server_init(&l->ctx, &ws_callbacks, l) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "wslay_event_context_server_init(): out of memory");
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	wslay_event_config_set_max_recv_msg_length(l->ctx, EVENTS_MAX_RECV);

	events_ws_accept(key, accept);
	n = snprintf(head, sizeof head,
		     "HTTP/1.1 101 Switching Protocols\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Accept: %s\r\n\r\n",
		     accept);

	/* Link before the upgrade: bytes the client already sent are handed
	 * to the listener during http_conn_upgrade(). */
	l->conn = conn;
	http_conn_ref(conn);
	l->next = e->listeners;
	if (e->listeners != NULL) {
		e->listeners->prev = l;
	}
	e->listeners = l;
	e->n_listeners++;
	rv = http_conn_upgrade(conn, head, (size_t)n, listener_on_data,
			       listener_on_close, l);
	if (rv != 0) {
		/* The connection is closed and will not call us back. */
		listener_free(l);
		return 0;
	}
	ping_arm(e);
	return 0;

err_after_alloc:
	free(l);
	return rv;
}

/* Queue @msg on @l and send it; drop @l when it is too far behind. */
static void listener_send(struct events_listener *l,
			  const char *msg,
			  size_t len)
{
	struct wslay_event_msg m = {
		.opcode = WSLAY_TEXT_FRAME,
		.msg = (const uint8_t *)msg,
		.msg_length = len,
	};
	size_t backlog;

	if (wslay_event_queue_msg(l->ctx, &m) != 0) {
		return; /* closing: no more messages */
	}
	if (!listener_flush(l, 0)) {
		return;
	}
	backlog = http_conn_pending_writes(l->conn) +
		  wslay_event_get_queued_msg_length(l->ctx);
	if (backlog > l->events->max_queue) {
		log_warn(
		    "msg=\"events listener too slow, dropped\" "
		    "queued=%zu",
		    backlog);
		http_conn_close(l->conn);
	}
}

/* Send the event to every matching listener of @e: @msg (@len bytes)
 * when not NULL, else formatted on first need from @location, @stamp (NULL:
 * now) and @metadata. */
static void deliver(struct events *e,
		    const char *type,
		    const char *project,
		    const char *location,
		    const char *stamp,
		    json_t *metadata,
		    const char *given,
		    size_t given_len)
{
	struct events_listener *l;
	struct events_listener *next;
	int bit = events_type_bit(type);
	char *msg = NULL;
	const char *text = given;
	size_t len = given_len;

	if (project == NULL) {
		project = "";
	}
	for (l = e->listeners; l != NULL; l = next) {
		next = l->next;
		if (l->finished || l->dead) {
			continue;
		}
		if (bit != 0 && !(l->types & bit)) {
			continue;
		}
		if (!l->all_projects && project[0] != '\0' &&
		    strcmp(project, l->project) != 0) {
			continue;
		}
		/* Server-level events (token secrets among them) and logs
		 * are for admins only; project events for whoever may see
		 * the project (all-projects listeners included). */
		if (l->admin != NULL &&
		    !l->admin(l->conn,
			      bit == EVENTS_TYPE_LOGGING ? "" : project,
			      l->admin_arg)) {
			continue;
		}
		if (text == NULL) {
			msg = format_event(type, project, location, stamp,
					   metadata, &len);
			if (msg == NULL) {
				log_warn(
				    "msg=\"event dropped: out of "
				    "memory\" type=%s",
				    type);
				return;
			}
			text = msg;
		}
		listener_send(l, text, len);
	}
	free(msg);
}

void events_broadcast(struct events *e,
		      const char *type,
		      const char *project,
		      json_t *metadata)
{
	deliver(e, type, project, e->location, NULL, metadata, NULL, 0);
}

void events_set_location(struct events *e, const char *name)
{
	if (e != NULL) {
		snprintf(e->location, sizeof e->location, "%s", name);
	}
}

void events_broadcast_relayed(struct events *e,
			      const char *type,
			      const char *project,
			      const char *location,
			      const char *timestamp,
			      json_t *metadata)
{
	deliver(e, type, project, location, timestamp, metadata, NULL, 0);
}

void events_send(struct api *a,
		 const char *type,
		 const char *project,
		 json_t *metadata)
{
	char *msg = NULL;
	size_t len = 0;
	bool relay =
	    a->cluster != NULL && api_clustered(a) &&
	    (strcmp(type, "operation") == 0 || strcmp(type, "lifecycle") == 0);

	if (a->events == NULL) {
		return;
	}
	if (project == NULL) {
		project = "";
	}
	/* Formatted once: the members' listeners get the same text. */
	if (relay) {
		msg = events_format(type, project, a->events->location,
				    metadata, &len);
		if (msg == NULL) {
			log_warn("msg=\"event dropped: out of memory\" type=%s",
				 type);
			return;
		}
	}
	deliver(a->events, type, project, a->events->location, NULL, metadata,
		msg, len);
	if (msg != NULL) {
		cluster_events_relay(a->cluster, msg, len);
	}
	free(msg);
}

void events_close_matching(struct api *a,
			   bool (*match)(struct http_conn *conn, void *arg),
			   void *arg)
{
	struct events_listener *l;
	struct events_listener *next;

	if (a->events == NULL) {
		return;
	}
	for (l = a->events->listeners; l != NULL; l = next) {
		next = l->next;
		if (!l->dead && match(l->conn, arg)) {
			http_conn_close(l->conn);
		}
	}
}

static void ping_closed_cb(uv_handle_t *h)
{
	struct events *e = h->data;

	if (e->close_cb != NULL) {
		void (*cb)(void *) = e->close_cb;
		e->close_cb = NULL;
		cb(e->close_arg);
	}
}

void events_close(struct events *e, void (*cb)(void *arg), void *arg)
{
	struct events_listener *l;
	struct events_listener *next;

	if (e == NULL || e->closing) {
		if (cb != NULL) {
			cb(arg);
		}
		return;
	}
	e->closing = true;
	e->close_cb = cb;
	e->close_arg = arg;
	for (l = e->listeners; l != NULL; l = next) {
		next = l->next;
		http_conn_close(l->conn);
	}
	if (e->ping_open) {
		e->ping_open = false;
		uv_close((uv_handle_t *)&e->ping, ping_closed_cb);
		return;
	}
	e->close_cb = NULL;
	if (cb != NULL) {
		cb(arg);
	}
}

void events_destroy(struct events *e)
{
	if (e == NULL) {
		return;
	}
	/* Listeners left over (connections that never closed) only hold
	 * memory: their connections are gone with the loop. */
	while (e->listeners != NULL) {
		struct events_listener *l = e->listeners;
		e->listeners = l->next;
		wslay_event_context_free(l->ctx);
		free(l);
	}
	free(e);
}
