/* /1.0/certificates/{fingerprint}/roles: corral's additive API for role
 * bindings (api extension "corral_roles"). LXD 5.0's restricted/projects
 * fields are a lossy projection of these; this endpoint shows and sets the
 * full set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corral/log.h>

#include "api.h"
#include "events.h"
#include "validate.h"

/* Check one binding's shape: {"scope", "role"[, "project"]}. */
static int check_binding(json_t *b, size_t i, char *errmsg)
{
	const char *scope = json_string_value(json_object_get(b, "scope"));
	const char *role = json_string_value(json_object_get(b, "role"));
	json_t *project = json_object_get(b, "project");
	const char *key;
	json_t *v;

	if (!json_is_object(b)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "roles[%zu]: must be an object", i);
		return CORRAL_EINVALID;
	}
	json_object_foreach(b, key, v)
	{
		if (strcmp(key, "scope") != 0 && strcmp(key, "role") != 0 &&
		    strcmp(key, "project") != 0) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "roles[%zu]: unknown field \"%s\"", i, key);
			return CORRAL_EINVALID;
		}
	}
	if (scope == NULL || (strcmp(scope, "server") != 0 &&
			      strcmp(scope, "all_projects") != 0 &&
			      strcmp(scope, "project") != 0)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "roles[%zu]: \"scope\" must be server, "
			    "all_projects or project",
			    i);
		return CORRAL_EINVALID;
	}
	if (role == NULL ||
	    (strcmp(role, "auditor") != 0 && strcmp(role, "user") != 0 &&
	     strcmp(role, "operator") != 0 && strcmp(role, "admin") != 0)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "roles[%zu]: \"role\" must be auditor, user, "
			    "operator or admin",
			    i);
		return CORRAL_EINVALID;
	}
	if (strcmp(scope, "project") == 0) {
		if (!json_is_string(project) ||
		    validate_name("project", json_string_value(project),
				  errmsg) != 0) {
			if (!json_is_string(project)) {
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "roles[%zu]: scope project needs "
					    "\"project\"",
					    i);
			}
			return CORRAL_EINVALID;
		}
	} else if (project != NULL && !json_is_null(project)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "roles[%zu]: \"project\" is only for scope project",
			    i);
		return CORRAL_EINVALID;
	}
	return 0;
}

static int get_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *identity = NULL;
	int rv;

	rv = state_identity_get(tx, c->name, &identity);
	if (rv != 0) {
		return rv;
	}
	c->out = json_incref(json_object_get(identity, "roles"));
	if (c->out == NULL) {
		c->out = json_array();
	}
	api_etag(c->out, c->etag);
	json_decref(identity);
	return 0;
}

static void get_roles(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);

	if (c != NULL) {
		api_db_run(c, false, get_work);
	}
}

static int put_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *identity = NULL;
	const char *fp;
	json_t *fields;
	int rv;

	rv = state_identity_get(tx, c->name, &identity);
	if (rv != 0) {
		return rv;
	}
	fp = json_string_value(json_object_get(identity, "fingerprint"));
	snprintf(c->aux, sizeof c->aux, "%s", fp != NULL ? fp : c->name);
	if (c->if_match[0] != '\0') {
		char etag[65];
		json_t *current = json_object_get(identity, "roles");
		json_t *none = current == NULL ? json_array() : NULL;

		api_etag(current != NULL ? current : none, etag);
		json_decref(none);
		if (strcmp(etag, c->if_match) != 0) {
			json_decref(identity);
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "ETag doesn't match: the roles changed");
			return CORRAL_EPRECONDITION;
		}
	}
	fields = json_pack("{s:O}", "roles", json_object_get(c->in, "roles"));
	rv = fields != NULL ? state_identity_update(tx, c->aux, fields)
			    : -ENOMEM;
	json_decref(fields);
	json_decref(identity);
	if (rv == 0) {
		rv =
		    state_trust_snapshot(tx, &c->trust_snapshot, &c->trust_gen);
	}
	if (rv == 0) {
		c->out = json_object();
	}
	return rv;
}

static void put_reply(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;
	json_t *meta;

	if (rv != 0) {
		snprintf(r->errmsg, sizeof r->errmsg, "%s", c->errmsg);
		api_reply_code(r, rv);
		return;
	}
	/* In force on this member before the answer leaves. */
	api_trust_install(r->api, c->trust_snapshot, c->trust_gen);
	log_info(
	    "msg=\"roles changed\" certificate=%s by=%s protocol=%s "
	    "address=%s",
	    c->aux, r->fingerprint[0] != '\0' ? r->fingerprint : "-",
	    r->tls ? "tls" : "unix", r->remote_addr);
	meta = json_pack("{s:s, s:s, s:O, s:{s:s, s:s, s:s}}", "action",
			 "certificate-roles-updated", "source", c->aux, "roles",
			 json_object_get(c->in, "roles"), "requestor",
			 "username", r->fingerprint, "protocol",
			 r->tls ? "tls" : "unix", "address", r->remote_addr);
	if (meta != NULL) {
		events_send(r->api, "lifecycle", "", meta);
		json_decref(meta);
	}
	api_reply_sync(r, 200, json_object(), NULL, NULL);
}

static void put_roles(struct api_req *r)
{
	struct api_db_call *c;
	json_error_t err;
	json_t *body;
	json_t *roles;
	json_t *b;
	size_t i;

	body = json_loadb(r->http->body, r->http->body_len,
			  JSON_REJECT_DUPLICATES, &err);
	if (body == NULL) {
		api_reply_error(r, 400, "invalid JSON body: %s", err.text);
		return;
	}
	/* Either {"roles": [...]} or the bare array. */
	roles = json_is_array(body) ? body : json_object_get(body, "roles");
	if (!json_is_array(roles)) {
		json_decref(body);
		api_reply_error(r, 400, "\"roles\" must be an array");
		return;
	}
	json_array_foreach(roles, i, b)
	{
		if (check_binding(b, i, r->errmsg) != 0) {
			json_decref(body);
			api_reply_error(r, 400, "%s", r->errmsg);
			return;
		}
	}
	c = api_db_call_new(r);
	if (c == NULL) {
		json_decref(body);
		return;
	}
	c->in = json_pack("{s:O}", "roles", roles);
	json_decref(body);
	if (c->in == NULL) {
		free(c);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	c->reply = put_reply;
	api_db_run(c, true, put_work);
}

const struct api_route api_routes_roles[] = {
	{ .path = "/1.0/certificates/{fingerprint}/roles",
	  .get = get_roles,
	  .put = put_roles },
};

const unsigned api_n_routes_roles =
    sizeof api_routes_roles / sizeof api_routes_roles[0];
