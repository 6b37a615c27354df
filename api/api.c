#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <corral/log.h>

#include "api.h"

/* Every route table of the API, searched in order. */
static const struct {
	const struct api_route *routes;
	const unsigned *n;
} route_tables[] = {
	{ api_routes_server, &api_n_routes_server },
	{ api_routes_projects, &api_n_routes_projects },
	{ api_routes_profiles, &api_n_routes_profiles },
};

static const char *method_names[] = { "GET", "PUT", "POST", "PATCH", "DELETE" };

static api_handler route_handler(const struct api_route *route,
				 enum http_method method)
{
	switch (method) {
	case HTTP_GET:
	case HTTP_HEAD:
		return route->get;
	case HTTP_PUT:
		return route->put;
	case HTTP_POST:
		return route->post;
	case HTTP_PATCH:
		return route->patch;
	case HTTP_DELETE:
		return route->del;
	default:
		return NULL;
	}
}

static void reply_not_allowed(struct api_req *r)
{
	const struct api_route *route = r->route;
	api_handler handlers[5] = { route->get, route->put, route->post,
				    route->patch, route->del };
	char allow[128] = "Allow: ";
	size_t len = strlen(allow);
	bool first = true;
	unsigned i;

	for (i = 0; i < 5; i++) {
		if (handlers[i] == NULL) {
			continue;
		}
		len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s",
					first ? "" : ", ", method_names[i]);
		first = false;
	}
	snprintf(allow + len, sizeof allow - len, "\r\n");
	api__reply_error_headers(r, 405, allow, "method not allowed");
}

static void api_on_request(struct http_conn *conn, struct http_request *http)
{
	struct api *a = http_conn_server(conn)->data;
	struct api_req *r;
	unsigned t;
	unsigned i;
	int rv = -ENOENT;
	api_handler handler;

	r = malloc(sizeof *r);
	if (r == NULL) {
		static const char oom[] =
		    "{\"type\":\"error\",\"error\":\"out of memory\","
		    "\"error_code\":500,\"metadata\":null}";
		http_conn_respond(conn, 500, NULL, NULL, oom, sizeof oom - 1,
				  true);
		return;
	}
	r->api = a;
	r->conn = conn;
	r->http = http;
	r->route = NULL;
	r->trusted = true; /* the Unix socket is trusted */
	r->errmsg[0] = '\0';
	http_conn_ref(conn);

	for (t = 0; t < sizeof route_tables / sizeof route_tables[0]; t++) {
		for (i = 0; i < *route_tables[t].n; i++) {
			const struct api_route *route =
			    &route_tables[t].routes[i];
			rv = router_match(route->path, http->path, &r->match);
			if (rv != -ENOENT) {
				r->route = route;
				goto matched;
			}
		}
	}
matched:
	if (rv == -EINVAL) {
		api_reply_error(r, 400, "invalid path encoding");
		return;
	}
	if (r->route == NULL) {
		api_reply_error(r, 404, "not found");
		return;
	}
	handler = route_handler(r->route, http->method);
	if (handler == NULL) {
		reply_not_allowed(r);
		return;
	}
	if (!a->ready && !(r->route->flags & API_ROUTE_EARLY)) {
		api_reply_error(r, 503, "corrald setup in progress: %s",
				a->not_ready_reason);
		return;
	}
	handler(r);
}

int api_create(uv_loop_t *loop,
	       const struct api_config *cfg,
	       struct api **out,
	       char *errmsg)
{
	struct api *a;

	a = calloc(1, sizeof *a);
	if (a == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "api: out of memory");
		return -ENOMEM;
	}
	a->loop = loop;
	a->state_dir = strdup(cfg->state_dir);
	a->socket_path = strdup(cfg->socket_path);
	a->cert_pem = strdup(cfg->cert_pem);
	if (a->state_dir == NULL || a->socket_path == NULL ||
	    a->cert_pem == NULL) {
		api_destroy(a);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "api: out of memory");
		return -ENOMEM;
	}
	snprintf(a->fingerprint, sizeof a->fingerprint, "%s",
		 cfg->cert_fingerprint);
	a->state = cfg->state;
	a->socket_gid = cfg->socket_gid;
	a->have_gid = cfg->have_gid;
	a->started_ns = uv_hrtime();
	snprintf(a->not_ready_reason, sizeof a->not_ready_reason, "starting");
	http_server_init(&a->http, loop, api_on_request);
	a->http.data = a;
	if (cfg->max_body != 0) {
		a->http.max_body = cfg->max_body;
	}
	*out = a;
	return 0;
}

static void unix_connection_cb(uv_stream_t *listener, int status)
{
	struct api *a = listener->data;
	int rv;

	if (status != 0) {
		log_warn("msg=\"accept failed\" error=\"%s\"",
			 uv_strerror(status));
		return;
	}
	rv = http_server_accept(&a->http, listener, NULL, NULL);
	if (rv != 0) {
		log_warn("msg=\"accept failed\" error=\"%s\"", uv_strerror(rv));
	}
}

/* Remove a socket file left by a crashed run; refuse if a daemon answers on
 * it. */
static int clear_stale_socket(const char *path, char *errmsg)
{
	struct sockaddr_un sun;
	int fd;
	int rv;

	if (access(path, F_OK) != 0) {
		return 0;
	}
	if (strlen(path) >= sizeof sun.sun_path) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "socket(): %s",
			    strerror(errno));
		return rv;
	}
	rv = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	if (rv == 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "another corrald is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "unlink(%s): %s", path,
			    strerror(errno));
		return rv;
	}
	log_info("msg=\"removed stale socket\" path=%s", path);
	return 0;
}

int api_start(struct api *a, char *errmsg)
{
	mode_t old_mask;
	int rv;

	rv = clear_stale_socket(a->socket_path, errmsg);
	if (rv != 0) {
		return rv;
	}
	rv = uv_pipe_init(a->loop, &a->unix_listener, 0);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "uv_pipe_init(): %s",
			    uv_strerror(rv));
		return rv;
	}
	a->unix_listener.data = a;
	a->unix_listening = true;
	/* Never let the socket exist with looser permissions than 0660. */
	old_mask = umask(0117);
	rv = uv_pipe_bind(&a->unix_listener, a->socket_path);
	umask(old_mask);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "bind unix socket %s: %s", a->socket_path,
			    uv_strerror(rv));
		return rv;
	}
	if (chown(a->socket_path, 0, a->have_gid ? a->socket_gid : 0) != 0 ||
	    chmod(a->socket_path, 0660) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "set owner and mode of %s: %s", a->socket_path,
			    strerror(errno));
		return rv;
	}
	rv = uv_listen((uv_stream_t *)&a->unix_listener, 128,
		       unix_connection_cb);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "listen on %s: %s",
			    a->socket_path, uv_strerror(rv));
		return rv;
	}
	log_info("msg=\"listening\" socket=%s", a->socket_path);
	return 0;
}

void api_set_ready(struct api *a, bool ready, const char *reason)
{
	a->ready = ready;
	snprintf(a->not_ready_reason, sizeof a->not_ready_reason, "%s",
		 reason != NULL ? reason : "");
}

static void state_ready_config_cb(struct api *a, int rv)
{
	if (rv != 0) {
		api_set_ready(a, false, "cannot load the server config");
		return;
	}
	api_set_ready(a, true, NULL);
	log_info("msg=\"ready\" ms=%llu",
		 (unsigned long long)((uv_hrtime() - a->started_ns) / 1000000));
}

void api_state_ready(struct api *a)
{
	api_set_ready(a, false, "loading server config");
	api_config_reload(a, state_ready_config_cb);
}

void api_invalidate_root(struct api *a)
{
	free(a->root_cache);
	a->root_cache = NULL;
	a->root_cache_len = 0;
}

static void api_maybe_closed(struct api *a)
{
	if (a->closing_handles > 0 || a->http.n_conns > 0) {
		return;
	}
	if (a->close_cb != NULL) {
		void (*cb)(void *) = a->close_cb;
		a->close_cb = NULL;
		cb(a->close_arg);
	}
}

static void listener_closed_cb(uv_handle_t *h)
{
	struct api *a = h->data;

	a->closing_handles--;
	api_maybe_closed(a);
}

static void conn_closed_cb(struct http_conn *conn)
{
	struct api *a = http_conn_server(conn)->data;

	if (a->close_cb != NULL) {
		api_maybe_closed(a);
	}
}

void api_close(struct api *a, void (*cb)(void *arg), void *arg)
{
	a->close_cb = cb;
	a->close_arg = arg;
	a->http.on_conn_close = conn_closed_cb;
	if (a->unix_listening) {
		a->unix_listening = false;
		a->closing_handles++;
		uv_close((uv_handle_t *)&a->unix_listener, listener_closed_cb);
		unlink(a->socket_path);
	}
	http_server_close_all(&a->http);
	api_maybe_closed(a);
}

void api_destroy(struct api *a)
{
	if (a == NULL) {
		return;
	}
	api_invalidate_root(a);
	json_decref(a->config);
	free(a->state_dir);
	free(a->socket_path);
	free(a->cert_pem);
	free(a);
}
