/* /1.0/operations and /1.0/events: operations live in memory (operations.c),
 * events stream over a websocket (events.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <corral/log.h>

#include "api.h"
#include "authz.h"
#include "events.h"
#include "operations.h"
#include "tls.h"
#include "trust.h"

/* Whether the caller on @conn is a server admin: the Unix socket, or a
 * trusted TLS client with the (server, admin) binding. Looked up in the
 * trust cache at each call, so an edit or revocation counts at once. */
static bool conn_admin(struct http_conn *conn, const char *project, void *arg)
{
	struct api *a = arg;
	struct authz_subject subject;

	if (!api_conn_subject(a, conn, &subject)) {
		return false;
	}
	if (project == NULL || project[0] == '\0') {
		return authz_is_server_admin(&subject);
	}
	return authz_can_view_project(&subject, project);
}

/* Server-level operations (no project: certificate add tokens, whose
 * metadata holds the secret) are shown to admins only; to anyone else
 * they do not exist. */
static bool op_visible(const struct api_op *op, void *arg)
{
	struct api_req *r = arg;
	struct authz_subject subject;

	if (op->project[0] == '\0') {
		return api_caller_admin(r);
	}
	/* Project operations: whoever may see the project (auditor+). */
	api_subject(r, &subject);
	return authz_can_view_project(&subject, op->project);
}

/* The project a request is about: ?project= or "default", and whether
 * ?all-projects= asks for every project. Answers 400 and returns false on a
 * bad parameter. */
static bool request_project(struct api_req *r,
			    char *project,
			    size_t size,
			    bool *all)
{
	char value[16];
	int rv;

	rv = api_query(r, "project", project, size);
	if (rv == -EINVAL) {
		api_reply_error(r, 400, "invalid query parameter \"project\"");
		return false;
	}
	if (rv <= 0) {
		snprintf(project, size, "default");
	}
	*all = false;
	if (api_query(r, "all-projects", value, sizeof value) >= 0) {
		*all = strcasecmp(value, "true") == 0 ||
		       strcmp(value, "1") == 0 ||
		       strcasecmp(value, "yes") == 0 ||
		       strcasecmp(value, "on") == 0;
	}
	return true;
}

static void list_operations(struct api_req *r)
{
	char project[128];
	char recursion[8];
	bool all;
	json_t *list;

	if (!request_project(r, project, sizeof project, &all)) {
		return;
	}
	if (api_query(r, "recursion", recursion, sizeof recursion) < 0) {
		recursion[0] = '\0';
	}
	list = ops_list_json_filter(
	    r->api->ops, project, all,
	    recursion[0] != '\0' && strcmp(recursion, "0") != 0, op_visible, r);
	if (list == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	api_reply_sync(r, 200, list, NULL, NULL);
}

/* The route's operation, or NULL after answering 404. */
static struct api_op *route_op(struct api_req *r)
{
	struct api_op *op = ops_lookup(r->api->ops, r->match.params[0]);

	if (op != NULL && !op_visible(op, r)) {
		op = NULL;
	}
	if (op == NULL) {
		api_reply_error(r, 404, "operation not found");
	}
	return op;
}

static void reply_op(struct api_req *r, struct api_op *op)
{
	json_t *obj = ops_to_json(op);

	if (obj == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	api_reply_sync(r, 200, obj, NULL, NULL);
}

static void get_operation(struct api_req *r)
{
	struct api_op *op = route_op(r);

	if (op != NULL) {
		reply_op(r, op);
	}
}

static void delete_operation(struct api_req *r)
{
	struct api_op *op = route_op(r);
	int rv;

	if (op == NULL) {
		return;
	}
	rv = ops_cancel(op, r->errmsg);
	if (rv == CORRAL_EINVALID) {
		api_reply_error(r, 400, "%s", r->errmsg);
		return;
	}
	if (rv != 0) {
		api_reply_code(r, rv);
		return;
	}
	api_reply_sync(r, 200, json_object(), NULL, NULL);
}

static void wait_done_cb(struct api_op *op, bool timed_out, void *arg)
{
	(void)timed_out;
	/* LXD answers the operation as it is, final or not. */
	reply_op(arg, op);
}

static bool wait_alive_cb(void *arg)
{
	struct api_req *r = arg;

	return !http_conn_closing(r->conn);
}

static void wait_operation(struct api_req *r)
{
	struct api_op *op = route_op(r);
	char value[32];
	int64_t timeout_ms = -1;
	char *end;
	double secs;

	if (op == NULL) {
		return;
	}
	/* Like LXD, a missing or unparsable timeout means "forever". */
	if (api_query(r, "timeout", value, sizeof value) > 0) {
		secs = strtod(value, &end);
		if (*end == '\0' && isfinite(secs) && secs >= 0 && secs < 1e9) {
			timeout_ms = (int64_t)(secs * 1000);
		}
	}
	if (ops_wait(op, timeout_ms, wait_done_cb, wait_alive_cb, r) != 0) {
		api_reply_error(r, 500, "out of memory");
	}
}

static void get_events(struct api_req *r)
{
	unsigned status = 500;
	int rv;

	rv = events_listen_as(r->api->events, r->conn, r->http, conn_admin,
			      r->api, &status, r->errmsg);
	if (rv != 0) {
		api_reply_error(r, status, "%s", r->errmsg);
		return;
	}
	log_debug("msg=\"request\" method=GET path=%s status=101",
		  r->http->path);
	/* The listener holds its own reference on the connection. */
	http_conn_unref(r->conn);
	free(r);
}

const struct api_route api_routes_operations[] = {
	{ .path = "/1.0/operations", .get = list_operations },
	{ .path = "/1.0/operations/{id}",
	  .get = get_operation,
	  .del = delete_operation },
	{ .path = "/1.0/operations/{id}/wait", .get = wait_operation },
	{ .path = "/1.0/events", .get = get_events },
};

const unsigned api_n_routes_operations =
    sizeof api_routes_operations / sizeof api_routes_operations[0];
