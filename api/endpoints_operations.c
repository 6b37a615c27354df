/* /1.0/operations and /1.0/events: operations live in memory (operations.c),
 * events stream over a websocket (events.c).
 *
 * In a cluster each member holds its own operations. A listing merges this
 * member's with every other Online member's, and an operation this member
 * does not have is looked up on the others; both are asked over the member
 * channel on behalf of the caller (the API_FWD_* headers), so each member
 * authorizes the caller itself and shows only what it may see. A request
 * a member sent this way is answered from this member's operations only.
 * A token operation whose member does not answer can still be revoked:
 * its token row names the operation (api_token_owner()). See
 * docs/cluster.md, "Operations in a cluster". */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <corral/cluster.h>
#include <corral/log.h>

#include "api.h"
#include "authz.h"
#include "events.h"
#include "operations.h"
#include "tls.h"
#include "trust.h"
#include "validate.h"

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

/* ------------------------------------------------------------------------ */
/* Asking the other members                                                  */

/* How long a member may take to answer a listing or a lookup before it is
 * left out (LXD skips such members too). */
#define OPS_MEMBER_TIMEOUT_MS 2000

/* A wait on another member's operation is sent in slices of at most this
 * many seconds (each holds a connection and a thread): the answer of one
 * slice says whether to send the next. */
#define OPS_WAIT_SLICE_S 30

/* Whether @r should also ask the other members: this member is clustered
 * and @r came from a client, not from a member asking on its behalf. */
static bool ask_members(const struct api_req *r)
{
	return !r->forwarded && r->api->cluster != NULL &&
	       api_clustered(r->api);
}

/* The other members that are Online (heard from within
 * cluster.offline_threshold): a new array of names, or NULL on OOM. */
static json_t *online_members(struct api *a)
{
	json_t *all = cluster_peer_names(a->cluster);
	json_t *out;
	json_t *v;
	size_t i;

	if (all == NULL) {
		return NULL;
	}
	out = json_array();
	json_array_foreach(all, i, v)
	{
		char msg[128];

		if (out != NULL &&
		    api_prop_member_online(a, json_string_value(v), msg,
					   sizeof msg) &&
		    json_array_append(out, v) != 0) {
			json_decref(out);
			out = NULL;
		}
	}
	json_decref(all);
	return out;
}

/* Fan @method @target out to @names (NULL: every other member) on behalf
 * of @r's caller. Returns 0 or a negative code (then @cb is not called). */
static int members_ask(struct api_req *r,
		       json_t *names,
		       const char *method,
		       const char *target,
		       unsigned timeout_ms,
		       bool until_found,
		       cluster_fanout_cb cb,
		       void *arg)
{
	char headers[API_FWD_HEADERS_SIZE];

	api_cluster_caller_headers(r, headers, sizeof headers);
	return cluster_fanout(r->api->cluster, names, method, target, headers,
			      NULL, timeout_ms, until_found, cb, arg);
}

/* The metadata of a member's sync answer @body, a new reference, or NULL
 * when @body is not one. */
static json_t *answer_metadata(const char *body)
{
	json_t *env = json_loads(body, 0, NULL);
	json_t *metadata = json_incref(json_object_get(env, "metadata"));

	json_decref(env);
	return metadata;
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/operations                                                       */

struct list_call {
	struct api_req *r;
	json_t *list; /* owned: this member's, then the others' added */
};

/* Append the arrays of @from (a listing: status -> array) to those of
 * @into. Returns 0 or -ENOMEM. */
static int list_merge(json_t *into, json_t *from)
{
	const char *key;
	json_t *items;

	json_object_foreach(from, key, items)
	{
		json_t *have = json_object_get(into, key);

		if (!json_is_array(items)) {
			continue;
		}
		if (have == NULL) {
			have = json_array();
			if (json_object_set_new(into, key, have) != 0) {
				return -ENOMEM;
			}
		}
		if (!json_is_array(have) ||
		    json_array_extend(have, items) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

static void list_members_cb(void *arg,
			    const struct cluster_answer *answers,
			    size_t n)
{
	struct list_call *l = arg;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct cluster_answer *an = &answers[i];
		json_t *metadata;

		if (an->rv != 0) {
			log_warn(
			    "msg=\"operations of a member left out\" "
			    "member=%s error=\"%s\"",
			    an->name, an->errmsg);
			continue;
		}
		if (an->status != 200) {
			log_warn(
			    "msg=\"operations of a member left out\" "
			    "member=%s error=\"HTTP %u\"",
			    an->name, an->status);
			continue;
		}
		metadata = answer_metadata(an->body);
		if (!json_is_object(metadata) ||
		    list_merge(l->list, metadata) != 0) {
			log_warn(
			    "msg=\"operations of a member left out\" "
			    "member=%s error=\"bad answer\"",
			    an->name);
		}
		json_decref(metadata);
	}
	api_reply_sync(l->r, 200, l->list, NULL, NULL);
	free(l);
}

static void list_operations(struct api_req *r)
{
	char project[128];
	char recursion[8];
	struct list_call *l;
	json_t *names;
	char *target;
	bool all;
	json_t *list;
	int rv;

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
	if (!ask_members(r)) {
		api_reply_sync(r, 200, list, NULL, NULL);
		return;
	}
	/* The same request (query included) to every other Online member,
	 * which answers with its own operations only. */
	l = calloc(1, sizeof *l);
	names = online_members(r->api);
	target = api_request_target(r);
	rv = -ENOMEM;
	if (l != NULL && names != NULL && target != NULL) {
		l->r = r;
		l->list = list;
		rv = members_ask(r, names, "GET", target, OPS_MEMBER_TIMEOUT_MS,
				 false, list_members_cb, l);
	}
	free(target);
	json_decref(names);
	if (rv != 0) {
		log_warn(
		    "msg=\"operations of the other members left out\" "
		    "error=\"%s\"",
		    corral_strerror(rv));
		free(l);
		api_reply_sync(r, 200, list, NULL, NULL);
	}
}

/* ------------------------------------------------------------------------ */
/* An operation another member has                                           */

enum lookup_kind {
	LOOKUP_GET,
	LOOKUP_WAIT,
	LOOKUP_DELETE,
};

struct lookup {
	struct api_req *r;
	enum lookup_kind kind;
	char id[OPS_ID_SIZE];
	char member[64];   /* the member that has it, once known */
	char *query;       /* owned: the request's raw query, "" for none */
	int64_t wait_ms;   /* LOOKUP_WAIT: how long in all, -1: forever */
	uint64_t wait_end; /* uv_now() deadline when wait_ms >= 0 */
	json_t *token;     /* owned: a token revoked in the database */
};

static void lookup_free(struct lookup *l)
{
	free(l->query);
	json_decref(l->token);
	free(l);
}

/* Whether @id can be an operation id: what ops_uuid() makes, so that it
 * goes into a request target as it is. */
static bool id_plausible(const char *id)
{
	size_t n = strlen(id);

	return n > 0 && n < OPS_ID_SIZE && strspn(id, "0123456789abcdef-") == n;
}

/* The request target of @path with @l's query, any "timeout" parameter
 * replaced by @timeout_s when it is not negative. A new string, or NULL on
 * OOM. */
static char *lookup_target(const struct lookup *l,
			   const char *path,
			   int64_t timeout_s)
{
	size_t cap = strlen(path) + strlen(l->query) + 40;
	char *out = malloc(cap);
	const char *p = l->query;
	size_t len;
	char sep = '?';

	if (out == NULL) {
		return NULL;
	}
	len = (size_t)snprintf(out, cap, "%s", path);
	while (*p != '\0') {
		size_t n = strcspn(p, "&");

		if (n > 0 &&
		    !(timeout_s >= 0 && strncmp(p, "timeout", 7) == 0 &&
		      (n == 7 || p[7] == '='))) {
			len += (size_t)snprintf(out + len, cap - len, "%c%.*s",
						sep, (int)n, p);
			sep = '&';
		}
		p += n;
		if (*p == '&') {
			p++;
		}
	}
	if (timeout_s >= 0) {
		snprintf(out + len, cap - len, "%ctimeout=%lld", sep,
			 (long long)timeout_s);
	}
	return out;
}

/* The answer that says which member has the operation: the first whose
 * status is neither 404 nor 5xx, or NULL. */
static const struct cluster_answer *lookup_found(
    const struct cluster_answer *answers,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (answers[i].rv == 0 && answers[i].status != 404 &&
		    answers[i].status < 500) {
			return &answers[i];
		}
	}
	return NULL;
}

static void lookup_delete_row(struct lookup *l);
static void lookup_wait_next(struct lookup *l);

static void lookup_cb(void *arg, const struct cluster_answer *answers, size_t n)
{
	struct lookup *l = arg;
	const struct cluster_answer *found = lookup_found(answers, n);
	json_t *op;
	bool final;

	if (found == NULL && l->member[0] != '\0' && n == 1) {
		/* A wait slice on the member found before: what it says, or
		 * why it did not answer. */
		if (answers[0].rv == 0) {
			api_cluster_relay(l->r, answers[0].status,
					  answers[0].body);
		} else {
			api_reply_error(l->r, 503, "wait on member \"%s\": %s",
					l->member, answers[0].errmsg);
		}
		lookup_free(l);
		return;
	}
	if (found == NULL) {
		if (l->kind == LOOKUP_DELETE && api_caller_admin(l->r)) {
			/* No member has it, or its member does not answer:
			 * a token still dies with its row. */
			lookup_delete_row(l);
			return;
		}
		api_reply_error(l->r, 404, "operation not found");
		lookup_free(l);
		return;
	}
	snprintf(l->member, sizeof l->member, "%s", found->name);
	if (l->kind == LOOKUP_WAIT && found->status == 200) {
		op = answer_metadata(found->body);
		final = ops_status_final((int)json_integer_value(
		    json_object_get(op, "status_code")));
		json_decref(op);
		if (!final && l->wait_ms != 0 &&
		    !http_conn_closing(l->r->conn)) {
			lookup_wait_next(l);
			return;
		}
	}
	api_cluster_relay(l->r, found->status, found->body);
	lookup_free(l);
}

/* LOOKUP_WAIT: wait on l->member for the next slice of the time left. */
static void lookup_wait_next(struct lookup *l)
{
	char path[128];
	json_t *names;
	int64_t slice = OPS_WAIT_SLICE_S;
	uint64_t now = uv_now(l->r->api->loop);
	char *target;
	int rv = -ENOMEM;

	if (l->wait_ms >= 0) {
		uint64_t left = l->wait_end > now ? l->wait_end - now : 0;

		if ((uint64_t)slice * 1000 > left) {
			slice = (int64_t)((left + 999) / 1000);
		}
		l->wait_ms = left > (uint64_t)slice * 1000
				 ? (int64_t)(left - (uint64_t)slice * 1000)
				 : 0;
	}
	snprintf(path, sizeof path, "/1.0/operations/%s/wait", l->id);
	target = lookup_target(l, path, slice);
	names = json_pack("[s]", l->member);
	if (target != NULL && names != NULL) {
		rv = members_ask(l->r, names, "GET", target,
				 (unsigned)slice * 1000 + OPS_MEMBER_TIMEOUT_MS,
				 true, lookup_cb, l);
	}
	free(target);
	json_decref(names);
	if (rv != 0) {
		api_reply_error(l->r, 500, "wait on member \"%s\": %s",
				l->member, corral_strerror(rv));
		lookup_free(l);
	}
}

static int revoke_row_work(struct state_tx *tx, void *arg)
{
	struct lookup *l = arg;

	/* A rolled-back run (another member's write locked the database)
	 * may have found the row already. */
	json_decref(l->token);
	l->token = NULL;
	return state_token_revoke_operation(tx, l->id, (int64_t)time(NULL),
					    &l->token);
}

static void revoke_row_done(void *arg, int rv, const char *errmsg)
{
	struct lookup *l = arg;
	json_t *data = json_object_get(l->token, "data");
	const char *member = json_string_value(json_object_get(data, "member"));
	const char *kind = json_string_value(json_object_get(l->token, "kind"));

	if (rv == CORRAL_ENOTFOUND) {
		api_reply_error(l->r, 404, "operation not found");
	} else if (rv != 0) {
		snprintf(l->r->errmsg, sizeof l->r->errmsg,
			 "revoke the token of operation %s: %s", l->id, errmsg);
		api_reply_code(l->r, rv);
	} else {
		log_info(
		    "msg=\"token revoked without its operation\" "
		    "operation=%s kind=%s member=%s",
		    l->id, kind != NULL ? kind : "-",
		    member != NULL ? member : "-");
		api_reply_sync(l->r, 200, json_object(), NULL, NULL);
	}
	lookup_free(l);
}

/* LOOKUP_DELETE that no member answered: revoke the operation's token in
 * the database, if it is one. */
static void lookup_delete_row(struct lookup *l)
{
	int rv;

	rv = state_submit(l->r->api->state, true, revoke_row_work,
			  revoke_row_done, l);
	if (rv != 0) {
		api_reply_error(l->r, 500,
				"revoke the token of operation %s: %s", l->id,
				corral_strerror(rv));
		lookup_free(l);
	}
}

/* The operation of @r's route is not on this member: ask the others (the
 * first that has it answers), or answer 404 when not clustered or asked
 * by a member. Takes @r. */
static void lookup_remote(struct api_req *r, enum lookup_kind kind)
{
	const char *id = r->match.params[0];
	struct lookup *l;
	char path[128];
	char *target;
	int rv = -ENOMEM;

	if (!ask_members(r) || !id_plausible(id)) {
		api_reply_error(r, 404, "operation not found");
		return;
	}
	l = calloc(1, sizeof *l);
	if (l == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	l->r = r;
	l->kind = kind;
	l->wait_ms = -1;
	snprintf(l->id, sizeof l->id, "%s", id);
	l->query = strdup(r->http->query);
	if (l->query == NULL) {
		lookup_free(l);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	if (kind == LOOKUP_WAIT) {
		char value[32];
		char *end;
		double secs;

		/* As wait_operation(): missing or unparsable is forever. */
		if (api_query(r, "timeout", value, sizeof value) > 0) {
			secs = strtod(value, &end);
			if (*end == '\0' && isfinite(secs) && secs >= 0 &&
			    secs < 1e9) {
				l->wait_ms = (int64_t)(secs * 1000);
				l->wait_end =
				    uv_now(r->api->loop) + (uint64_t)l->wait_ms;
			}
		}
	}
	/* Find the member first with a GET (a DELETE goes as it is): every
	 * member answers at once, and one that does not is not waited on
	 * for longer than OPS_MEMBER_TIMEOUT_MS. */
	snprintf(path, sizeof path, "/1.0/operations/%s", l->id);
	target = lookup_target(l, path, -1);
	if (target != NULL) {
		rv = members_ask(
		    r, NULL, kind == LOOKUP_DELETE ? "DELETE" : "GET", target,
		    OPS_MEMBER_TIMEOUT_MS, true, lookup_cb, l);
	}
	free(target);
	if (rv != 0) {
		api_reply_error(r, 500, "look up operation on the members: %s",
				corral_strerror(rv));
		lookup_free(l);
	}
}

/* The route's operation on this member, or NULL after answering 404 for
 * one the caller may not see. *@remote is set when this member does not
 * have it (nothing answered yet). */
static struct api_op *route_op(struct api_req *r, bool *remote)
{
	struct api_op *op = ops_lookup(r->api->ops, r->match.params[0]);

	*remote = op == NULL;
	if (op != NULL && !op_visible(op, r)) {
		api_reply_error(r, 404, "operation not found");
		op = NULL;
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
	bool remote;
	struct api_op *op = route_op(r, &remote);

	if (op != NULL) {
		reply_op(r, op);
	} else if (remote) {
		lookup_remote(r, LOOKUP_GET);
	}
}

/* Cancel @op (this member's) and answer. */
static void cancel_local(struct api_req *r, struct api_op *op)
{
	int rv;

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

struct token_cancel {
	struct api_req *r;
	struct api_op *op; /* referenced */
};

static int token_row_work(struct state_tx *tx, void *arg)
{
	struct token_cancel *t = arg;
	int rv;

	rv = state_token_revoke_operation(tx, t->op->id, (int64_t)time(NULL),
					  NULL);
	return rv == CORRAL_ENOTFOUND ? 0 : rv;
}

static void token_row_done(void *arg, int rv, const char *errmsg)
{
	struct token_cancel *t = arg;

	if (rv != 0) {
		snprintf(t->r->errmsg, sizeof t->r->errmsg,
			 "revoke the token of operation %s: %s", t->op->id,
			 errmsg);
		api_reply_code(t->r, rv);
	} else {
		/* Gone from the database: now the operation (its cancel
		 * callback revokes again, finding nothing). */
		cancel_local(t->r, t->op);
	}
	ops_op_unref(t->op);
	free(t);
}

static void delete_operation(struct api_req *r)
{
	bool remote;
	struct api_op *op = route_op(r, &remote);
	struct token_cancel *t;

	if (op == NULL) {
		if (remote) {
			lookup_remote(r, LOOKUP_DELETE);
		}
		return;
	}
	if (op->cls != OPS_CLASS_TOKEN ||
	    op->status_code != OPS_STATUS_RUNNING) {
		cancel_local(r, op);
		return;
	}
	/* A token is revoked in the database before the answer, so the
	 * caller may count on it at once, on every member. */
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	t->r = r;
	t->op = op;
	ops_op_ref(op);
	if (state_submit(r->api->state, true, token_row_work, token_row_done,
			 t) != 0) {
		ops_op_unref(op);
		free(t);
		api_reply_error(r, 503, "cannot revoke the token now");
	}
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
	bool remote;
	struct api_op *op = route_op(r, &remote);
	char value[32];
	int64_t timeout_ms = -1;
	char *end;
	double secs;

	if (op == NULL) {
		if (remote) {
			lookup_remote(r, LOOKUP_WAIT);
		}
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

/* ------------------------------------------------------------------------ */
/* Tokens and their operations                                               */

json_t *api_token_owner(struct api *a, const char *op_id)
{
	return json_pack("{s:s, s:s, s:I, s:s}", "operation", op_id, "member",
			 a->member_name, "node_id",
			 (json_int_t)state_node_id(a->state), "boot",
			 a->ops->boot);
}

/* Attempts at deleting the tokens of earlier runs: a write of another
 * member may hold the leader's write lock ("database is locked"). */
#define TOKENS_PRUNE_ATTEMPTS 5

struct tokens_prune {
	struct api *a;
	int64_t node_id;
	char boot[OPS_ID_SIZE];
	int64_t deleted;
	unsigned attempt;
	void (*done)(struct api *a);
};

static int tokens_prune_work(struct state_tx *tx, void *arg)
{
	struct tokens_prune *p = arg;

	if (p->attempt > 0) {
		/* A worker thread, once per start: a short pause is cheap. */
		struct timespec ts = { .tv_nsec = 200 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	return state_token_prune(tx, p->node_id, p->boot, &p->deleted);
}

static void tokens_prune_done(void *arg, int rv, const char *errmsg)
{
	struct tokens_prune *p = arg;
	struct api *a = p->a;
	void (*done)(struct api * a) = p->done;

	if (rv != 0 && ++p->attempt < TOKENS_PRUNE_ATTEMPTS &&
	    state_submit(p->a->state, true, tokens_prune_work,
			 tokens_prune_done, p) == 0) {
		log_debug(
		    "msg=\"delete the tokens of earlier runs\" "
		    "error=\"%s\" retry=%u",
		    errmsg, p->attempt);
		return;
	}
	if (rv != 0) {
		log_error(
		    "msg=\"delete the tokens of earlier runs\" "
		    "error=\"%s\"",
		    errmsg);
	} else {
		log_info(
		    "msg=\"deleted the tokens of earlier runs\" count=%lld",
		    (long long)p->deleted);
	}
	free(p);
	done(a);
}

void api_tokens_prune(struct api *a, void (*done)(struct api *a))
{
	struct tokens_prune *p = calloc(1, sizeof *p);

	if (p == NULL) {
		log_error(
		    "msg=\"delete the tokens of earlier runs\" "
		    "error=\"out of memory\"");
		done(a);
		return;
	}
	p->done = done;
	/* A member deletes only what it issued; a standalone daemon issued
	 * every token in its database. */
	p->a = a;
	p->node_id = api_clustered(a) ? (int64_t)state_node_id(a->state) : 0;
	snprintf(p->boot, sizeof p->boot, "%s", a->ops->boot);
	if (state_submit(a->state, true, tokens_prune_work, tokens_prune_done,
			 p) != 0) {
		log_error(
		    "msg=\"delete the tokens of earlier runs\" "
		    "error=\"cannot queue\"");
		free(p);
		done(a);
	}
}

/* Bound on the body of POST /internal/tokens/used. */
#define TOKEN_USED_BODY_MAX 256

static void token_used_sent(void *arg,
			    const struct cluster_answer *answers,
			    size_t n)
{
	char *op_id = arg;

	if (n == 1 && answers[0].rv == 0 && answers[0].status == 200) {
		log_debug("msg=\"token use reported\" operation=%s member=%s",
			  op_id, answers[0].name);
	} else if (n == 1) {
		/* Its operation ends when it expires or is cancelled. */
		log_warn(
		    "msg=\"token use not reported\" operation=%s member=%s "
		    "status=%u error=\"%s\"",
		    op_id, answers[0].name, answers[0].status,
		    answers[0].rv != 0 ? answers[0].errmsg : "");
	}
	free(op_id);
}

void api_token_used(struct api *a, const char *member, const char *op_id)
{
	json_t *names;
	json_t *msg;
	char *body;
	char *arg;
	int rv = -ENOMEM;

	if (!api_clustered(a) || member == NULL || op_id == NULL ||
	    member[0] == '\0' || strcmp(member, a->member_name) == 0 ||
	    !id_plausible(op_id)) {
		return;
	}
	names = json_pack("[s]", member);
	msg = json_pack("{s:s}", "operation", op_id);
	body = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	arg = strdup(op_id);
	if (names != NULL && body != NULL && arg != NULL) {
		rv = cluster_fanout(
		    a->cluster, names, "POST", "/internal/tokens/used", NULL,
		    body, OPS_MEMBER_TIMEOUT_MS, false, token_used_sent, arg);
	}
	if (rv != 0) {
		log_warn(
		    "msg=\"token use not reported\" operation=%s "
		    "member=%s error=\"%s\"",
		    op_id, member, corral_strerror(rv));
		free(arg);
	}
	json_decref(names);
	free(body);
}

/* POST /internal/tokens/used {"operation": ID}, from the member where a
 * token this member issued was redeemed: its operation is done. */
static void post_token_used(struct api_req *r)
{
	struct api_op *op;
	json_t *body;
	const char *id;

	if (r->http->body_len > TOKEN_USED_BODY_MAX) {
		api_reply_error(r, 400, "invalid token use: body too large");
		return;
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	id = json_string_value(json_object_get(body, "operation"));
	if (json_object_size(body) != 1 || id == NULL || !id_plausible(id)) {
		json_decref(body);
		api_reply_error(r, 400,
				"invalid token use: want {\"operation\": ID}");
		return;
	}
	op = ops_lookup(r->api->ops, id);
	if (op == NULL || op->cls != OPS_CLASS_TOKEN) {
		json_decref(body);
		api_reply_error(r, 404, "operation not found");
		return;
	}
	if (!ops_status_final(op->status_code)) {
		log_info("msg=\"token used on another member\" operation=%s",
			 id);
		ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL);
	}
	json_decref(body);
	api_reply_sync(r, 200, json_object(), NULL, NULL);
}

/* Bounds of POST /internal/events: the body, and the events of one POST
 * (a relay sends at most 128 in 512 KiB). */
#define RELAYED_BODY_MAX (1024 * 1024)
#define RELAYED_EVENTS_MAX 256

/* Whether @ev is one event as a member relays it: exactly type (operation
 * or lifecycle), timestamp, metadata (an object), location (a member name,
 * not this member's) and project. */
static bool relayed_event_valid(struct api *a, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *stamp = json_string_value(json_object_get(ev, "timestamp"));
	const char *location =
	    json_string_value(json_object_get(ev, "location"));
	const char *project = json_string_value(json_object_get(ev, "project"));
	char errmsg[CORRAL_ERRMSG_SIZE];

	return json_is_object(ev) && json_object_size(ev) == 5 &&
	       type != NULL &&
	       (strcmp(type, "operation") == 0 ||
		strcmp(type, "lifecycle") == 0) &&
	       stamp != NULL && stamp[0] != '\0' &&
	       strlen(stamp) < OPS_TIME_SIZE &&
	       json_is_object(json_object_get(ev, "metadata")) &&
	       location != NULL && strlen(location) < 64 &&
	       validate_name("member", location, errmsg) == 0 &&
	       strcmp(location, a->member_name) != 0 && project != NULL &&
	       (project[0] == '\0' ||
		validate_name("project", project, errmsg) == 0);
}

/* POST /internal/events {"events": [...]}: events another member relays
 * (cluster_events_relay()), delivered to this member's listeners as they
 * are, never relayed again. All or nothing: one bad event, 400. */
static void post_internal_events(struct api_req *r)
{
	json_t *body;
	json_t *list;
	json_t *ev;
	size_t i;

	if (r->http->body_len > RELAYED_BODY_MAX) {
		api_reply_error(r, 400, "invalid events: body too large");
		return;
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	list = json_object_get(body, "events");
	if (json_object_size(body) != 1 || !json_is_array(list) ||
	    json_array_size(list) > RELAYED_EVENTS_MAX) {
		json_decref(body);
		api_reply_error(r, 400,
				"invalid events: want {\"events\": [...]}, at "
				"most %d",
				RELAYED_EVENTS_MAX);
		return;
	}
	json_array_foreach(list, i, ev)
	{
		if (!relayed_event_valid(r->api, ev)) {
			json_decref(body);
			api_reply_error(r, 400, "invalid events: event %zu", i);
			return;
		}
	}
	json_array_foreach(list, i, ev)
	{
		events_broadcast_relayed(
		    r->api->events,
		    json_string_value(json_object_get(ev, "type")),
		    json_string_value(json_object_get(ev, "project")),
		    json_string_value(json_object_get(ev, "location")),
		    json_string_value(json_object_get(ev, "timestamp")),
		    json_object_get(ev, "metadata"));
	}
	json_decref(body);
	api_reply_sync(r, 200, json_object(), NULL, NULL);
}

const struct api_route api_routes_operations[] = {
	{ .path = "/1.0/operations", .get = list_operations },
	{ .path = "/1.0/operations/{id}",
	  .get = get_operation,
	  .del = delete_operation },
	{ .path = "/1.0/operations/{id}/wait", .get = wait_operation },
	{ .path = "/1.0/events", .get = get_events },
	{ .path = "/internal/tokens/used", .post = post_token_used },
	{ .path = "/internal/events", .post = post_internal_events },
};

const unsigned api_n_routes_operations =
    sizeof api_routes_operations / sizeof api_routes_operations[0];
