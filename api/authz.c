/* The authorizer and the key-level guard rails; see authz.h for the model.
 * Pure: bindings are read straight from the identity's jansson array
 * (json_array_get, json_object_get and json_string_value never allocate). */
#include "authz.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <corral/err.h>

/* ------------------------------------------------------------------------ */
/* Roles                                                                      */

static const char *const role_names[] = {
	[AUTHZ_ROLE_NONE] = "none",   [AUTHZ_ROLE_AUDITOR] = "auditor",
	[AUTHZ_ROLE_USER] = "user",   [AUTHZ_ROLE_OPERATOR] = "operator",
	[AUTHZ_ROLE_ADMIN] = "admin",
};

const char *authz_role_name(enum authz_role role)
{
	if ((unsigned)role >= sizeof role_names / sizeof role_names[0]) {
		return "none";
	}
	return role_names[role];
}

enum authz_role authz_role_parse(const char *name)
{
	unsigned i;

	if (name == NULL) {
		return AUTHZ_ROLE_NONE;
	}
	for (i = AUTHZ_ROLE_AUDITOR; i <= AUTHZ_ROLE_ADMIN; i++) {
		if (strcmp(name, role_names[i]) == 0) {
			return (enum authz_role)i;
		}
	}
	return AUTHZ_ROLE_NONE;
}

/* The kinds of caller. */
enum caller {
	CALLER_NONE,    /* untrusted, "server" or unknown type: nothing */
	CALLER_ADMIN,   /* server admin */
	CALLER_CLIENT,  /* "client" identity: its bindings */
	CALLER_METRICS, /* "metrics" identity: its bindings, metrics only */
};

/* The highest role of @roles at @scope ("server", "all_projects") or, for
 * @scope "project", in project @project. Bindings of an unknown shape or
 * role count for nothing. */
static enum authz_role scope_role(const json_t *roles,
				  const char *scope,
				  const char *project)
{
	enum authz_role best = AUTHZ_ROLE_NONE;
	size_t i;
	size_t n = json_array_size(roles);

	for (i = 0; i < n; i++) {
		const json_t *b = json_array_get(roles, i);
		const char *bs = json_string_value(json_object_get(b, "scope"));
		enum authz_role r;

		if (bs == NULL || strcmp(bs, scope) != 0) {
			continue;
		}
		if (project != NULL) {
			const char *bp =
			    json_string_value(json_object_get(b, "project"));
			if (bp == NULL || strcmp(bp, project) != 0) {
				continue;
			}
		}
		r = authz_role_parse(
		    json_string_value(json_object_get(b, "role")));
		if (r > best) {
			best = r;
		}
	}
	return best;
}

static enum caller caller_of(const struct authz_subject *s)
{
	const struct trust_identity *id;

	if (s == NULL) {
		return CALLER_NONE;
	}
	if (s->unix_socket || s->pki_admin) {
		return CALLER_ADMIN;
	}
	id = s->identity;
	if (id == NULL) {
		return CALLER_NONE;
	}
	if (strcmp(id->type, "client") == 0) {
		if (id->server_admin ||
		    scope_role(id->roles, "server", NULL) == AUTHZ_ROLE_ADMIN) {
			return CALLER_ADMIN;
		}
		return CALLER_CLIENT;
	}
	if (strcmp(id->type, "metrics") == 0) {
		return CALLER_METRICS;
	}
	return CALLER_NONE;
}

/* The role the bindings of @s give in @project (NULL: server scope only),
 * whatever the identity type. */
static enum authz_role bindings_role(const struct authz_subject *s,
				     const char *project)
{
	const json_t *roles = s->identity->roles;
	enum authz_role best = scope_role(roles, "server", NULL);
	enum authz_role r;

	if (project == NULL) {
		return best;
	}
	r = scope_role(roles, "all_projects", NULL);
	if (r > best) {
		best = r;
	}
	r = scope_role(roles, "project", project);
	return r > best ? r : best;
}

bool authz_is_server_admin(const struct authz_subject *s)
{
	return caller_of(s) == CALLER_ADMIN;
}

enum authz_role authz_role_in(const struct authz_subject *s,
			      const char *project)
{
	switch (caller_of(s)) {
	case CALLER_ADMIN:
		return AUTHZ_ROLE_ADMIN;
	case CALLER_CLIENT:
		return bindings_role(s, project);
	case CALLER_METRICS:
	case CALLER_NONE:
		break;
	}
	return AUTHZ_ROLE_NONE;
}

bool authz_can_view_project(const struct authz_subject *s, const char *project)
{
	return project != NULL &&
	       authz_role_in(s, project) >= AUTHZ_ROLE_AUDITOR;
}

/* ------------------------------------------------------------------------ */
/* api_authorize                                                              */

/* The role each project-plane action needs. */
static enum authz_role action_role(enum authz_action action)
{
	switch (action) {
	case AUTHZ_VIEW:
		return AUTHZ_ROLE_AUDITOR;
	case AUTHZ_OPERATE:
		return AUTHZ_ROLE_USER;
	case AUTHZ_MANAGE:
		return AUTHZ_ROLE_OPERATOR;
	case AUTHZ_EDIT_PROJECT:
	case AUTHZ_CREATE_PROJECT:
	case AUTHZ_SERVER_VIEW:
	case AUTHZ_SERVER_ADMIN:
		break;
	}
	return AUTHZ_ROLE_ADMIN;
}

/* Whether objects of @type live in a project (when they name one). */
static bool project_type(enum authz_object_type type)
{
	switch (type) {
	case AUTHZ_PROJECT:
	case AUTHZ_PROFILE:
	case AUTHZ_INSTANCE:
	case AUTHZ_IMAGE:
	case AUTHZ_STORAGE_VOLUME:
	case AUTHZ_NETWORK:
	case AUTHZ_OPERATION:
	case AUTHZ_EVENTS:
	case AUTHZ_METRICS:
		return true;
	case AUTHZ_SERVER:
	case AUTHZ_CLUSTER:
	case AUTHZ_CERTIFICATE:
	case AUTHZ_STORAGE_POOL:
	case AUTHZ_RESOURCES:
		break;
	}
	return false;
}

/* The project @obj lies in, or NULL for a server object. */
static const char *project_of(const struct authz_object *obj)
{
	if (!project_type(obj->type)) {
		return NULL;
	}
	if (obj->type == AUTHZ_PROJECT && obj->name != NULL) {
		return obj->name;
	}
	return obj->project;
}

/* Whether @obj is the caller's own certificate. */
static bool own_certificate(const struct authz_subject *s,
			    const struct authz_object *obj)
{
	return obj->type == AUTHZ_CERTIFICATE && obj->name != NULL &&
	       s->identity != NULL &&
	       strcmp(obj->name, s->identity->fingerprint) == 0;
}

/* Whether a non-admin client whose server-scope role is @server may VIEW
 * the server object @obj. */
static bool server_object_visible(const struct authz_subject *s,
				  const struct authz_object *obj,
				  enum authz_role server)
{
	if (server >= AUTHZ_ROLE_AUDITOR) {
		return true;
	}
	switch (obj->type) {
	case AUTHZ_SERVER:
	case AUTHZ_STORAGE_POOL:
		return true;
	case AUTHZ_PROJECT:
		/* The /1.0/projects collection; the list is filtered. */
		return obj->name == NULL && obj->project == NULL;
	case AUTHZ_CERTIFICATE:
		return obj->name == NULL || own_certificate(s, obj);
	default:
		return false;
	}
}

/* api_authorize() for a "client" identity below server admin. */
static int authorize_client(const struct authz_subject *s,
			    enum authz_action action,
			    const struct authz_object *obj)
{
	const char *project = project_of(obj);
	enum authz_role server = bindings_role(s, NULL);
	bool collection = obj->type == AUTHZ_PROJECT && obj->name == NULL &&
			  obj->project == NULL;
	bool visible;
	bool allowed;

	if (project != NULL) {
		enum authz_role role = bindings_role(s, project);

		visible = role >= AUTHZ_ROLE_AUDITOR;
		allowed =
		    action <= AUTHZ_EDIT_PROJECT && role >= action_role(action);
	} else {
		visible = server_object_visible(s, obj, server);
		/* Below server admin only VIEW, and OPERATE on one's own
		 * certificate. */
		allowed = (action == AUTHZ_VIEW && visible) ||
			  (action == AUTHZ_OPERATE && own_certificate(s, obj));
	}
	switch (action) {
	case AUTHZ_CREATE_PROJECT:
		if (scope_role(s->identity->roles, "all_projects", NULL) ==
		    AUTHZ_ROLE_ADMIN) {
			return 0;
		}
		return CORRAL_EFORBIDDEN;
	case AUTHZ_SERVER_VIEW:
		allowed = server >= AUTHZ_ROLE_AUDITOR;
		break;
	case AUTHZ_SERVER_ADMIN:
		allowed = false;
		break;
	case AUTHZ_VIEW:
	case AUTHZ_OPERATE:
	case AUTHZ_MANAGE:
	case AUTHZ_EDIT_PROJECT:
		break;
	}
	if (allowed) {
		return 0;
	}
	if (visible) {
		return CORRAL_EFORBIDDEN;
	}
	/* Invisible: anything in a hidden project, or a named server object;
	 * unnamed server objects are public endpoints. */
	if (project != NULL || (obj->name != NULL && !collection)) {
		return CORRAL_ENOTFOUND;
	}
	return CORRAL_EFORBIDDEN;
}

/* api_authorize() for a "metrics" identity: VIEW of AUTHZ_METRICS only. */
static int authorize_metrics(const struct authz_subject *s,
			     enum authz_action action,
			     const struct authz_object *obj)
{
	if (obj->type != AUTHZ_METRICS) {
		return CORRAL_EFORBIDDEN;
	}
	if (bindings_role(s, obj->project) < AUTHZ_ROLE_AUDITOR) {
		return obj->project != NULL ? CORRAL_ENOTFOUND
					    : CORRAL_EFORBIDDEN;
	}
	return action == AUTHZ_VIEW ? 0 : CORRAL_EFORBIDDEN;
}

int api_authorize(const struct authz_subject *s,
		  enum authz_action action,
		  const struct authz_object *obj)
{
	if (obj == NULL) {
		return CORRAL_EFORBIDDEN;
	}
	switch (caller_of(s)) {
	case CALLER_ADMIN:
		return 0;
	case CALLER_CLIENT:
		return authorize_client(s, action, obj);
	case CALLER_METRICS:
		return authorize_metrics(s, action, obj);
	case CALLER_NONE:
		break;
	}
	return CORRAL_EFORBIDDEN;
}

/* ------------------------------------------------------------------------ */
/* Guard rails                                                                */

/* The effective string value of @key in @map: NULL when absent, "" or not
 * a string (a non-string is returned as "\x01", a value no rule accepts). */
static const char *value_of(json_t *map, const char *key)
{
	json_t *v = json_object_get(map, key);
	const char *s;

	if (v == NULL || json_is_null(v)) {
		return NULL;
	}
	s = json_string_value(v);
	if (s == NULL) {
		return "\x01";
	}
	return s[0] == '\0' ? NULL : s;
}

static bool same_value(const char *a, const char *b)
{
	if (a == NULL || b == NULL) {
		return a == b;
	}
	return strcmp(a, b) == 0;
}

/* Whether @map is NULL, JSON null or an object; the message names @what. */
static int check_map(json_t *map, const char *what, char *errmsg)
{
	if (map == NULL || json_is_null(map) || json_is_object(map)) {
		return 0;
	}
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s must be an object", what);
	return CORRAL_EINVALID;
}

/* Whether setting config key @key to @value (NULL: unset) is
 * root-equivalent. */
static bool config_value_guarded(const char *key, const char *value)
{
	if (value == NULL) {
		return false;
	}
	if (strncmp(key, "raw.", 4) == 0 ||
	    strcmp(key, "security.idmap.base") == 0 ||
	    strcmp(key, "security.idmap.size") == 0) {
		return true;
	}
	if (strcmp(key, "security.privileged") == 0) {
		return strcmp(value, "false") != 0;
	}
	if (strcmp(key, "security.idmap.isolated") == 0) {
		return strcmp(value, "true") != 0;
	}
	return false;
}

static int refuse_key(const char *verb, const char *key, char *errmsg)
{
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
		    "%s \"%s\" requires the server admin role", verb, key);
	return CORRAL_EFORBIDDEN;
}

int authz_check_config_change(const struct authz_subject *s,
			      const char *project,
			      json_t *old_config,
			      json_t *new_config,
			      char *errmsg)
{
	const char *key;
	json_t *v;
	int rv;

	(void)project;
	rv = check_map(old_config, "config", errmsg);
	if (rv == 0) {
		rv = check_map(new_config, "config", errmsg);
	}
	if (rv != 0 || authz_is_server_admin(s)) {
		return rv;
	}
	json_object_foreach(new_config, key, v)
	{
		const char *val = value_of(new_config, key);

		(void)v;
		if (!same_value(val, value_of(old_config, key)) &&
		    config_value_guarded(key, val)) {
			return refuse_key("setting", key, errmsg);
		}
	}
	/* Dropping isolated=true weakens isolation as much as setting
	 * "false". */
	if (same_value(value_of(old_config, "security.idmap.isolated"),
		       "true") &&
	    value_of(new_config, "security.idmap.isolated") == NULL) {
		return refuse_key("unsetting", "security.idmap.isolated",
				  errmsg);
	}
	return 0;
}

int authz_check_config_keys(const struct authz_subject *s,
			    const char *project,
			    json_t *config,
			    char *errmsg)
{
	return authz_check_config_change(s, project, NULL, config, errmsg);
}

/* Whether @device (an object) is a disk with a host source path. */
static bool host_disk(json_t *device)
{
	const char *type = json_string_value(json_object_get(device, "type"));
	json_t *source = json_object_get(device, "source");

	if (type == NULL || strcmp(type, "disk") != 0 || source == NULL) {
		return false;
	}
	/* A non-string source is refused: fail closed. */
	return !json_is_string(source) || json_string_value(source)[0] == '/';
}

static int check_devices_map(json_t *devices, char *errmsg)
{
	const char *name;
	json_t *dev;
	int rv = check_map(devices, "devices", errmsg);

	if (rv != 0) {
		return rv;
	}
	json_object_foreach(devices, name, dev)
	{
		if (!json_is_object(dev)) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "device \"%s\" must be an object", name);
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

int authz_check_devices_change(const struct authz_subject *s,
			       json_t *old_devices,
			       json_t *new_devices,
			       char *errmsg)
{
	const char *name;
	json_t *dev;
	int rv = check_devices_map(old_devices, errmsg);

	if (rv == 0) {
		rv = check_devices_map(new_devices, errmsg);
	}
	if (rv != 0 || authz_is_server_admin(s)) {
		return rv;
	}
	json_object_foreach(new_devices, name, dev)
	{
		json_t *old = json_object_get(old_devices, name);

		if (host_disk(dev) && (old == NULL || !json_equal(old, dev))) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "device \"%s\": a disk with a host source "
				    "path requires the server admin role",
				    name);
			return CORRAL_EFORBIDDEN;
		}
	}
	return 0;
}

int authz_check_devices(const struct authz_subject *s,
			json_t *devices,
			char *errmsg)
{
	return authz_check_devices_change(s, NULL, devices, errmsg);
}

static bool restricted_key(const char *key)
{
	return strcmp(key, "restricted") == 0 ||
	       strncmp(key, "restricted.", 11) == 0;
}

/* The first restricted key of @a whose value differs in @b, or NULL. */
static const char *restricted_diff(json_t *a, json_t *b)
{
	const char *key;
	json_t *v;

	json_object_foreach(a, key, v)
	{
		(void)v;
		if (restricted_key(key) &&
		    !same_value(value_of(a, key), value_of(b, key))) {
			return key;
		}
	}
	return NULL;
}

int authz_check_project_keys(const struct authz_subject *s,
			     json_t *old_config,
			     json_t *new_config,
			     char *errmsg)
{
	const char *key;
	int rv = check_map(old_config, "config", errmsg);

	if (rv == 0) {
		rv = check_map(new_config, "config", errmsg);
	}
	if (rv != 0 || authz_is_server_admin(s)) {
		return rv;
	}
	key = restricted_diff(new_config, old_config);
	if (key == NULL) {
		key = restricted_diff(old_config, new_config);
	}
	return key != NULL ? refuse_key("changing", key, errmsg) : 0;
}

int authz_apply_project_defaults(const struct authz_subject *s, json_t *config)
{
	if (!json_is_object(config)) {
		return -EINVAL;
	}
	if (authz_is_server_admin(s) ||
	    value_of(config, "restricted") != NULL) {
		return 0;
	}
	if (json_object_set_new(config, "restricted", json_string("true")) !=
	    0) {
		return -ENOMEM;
	}
	return 0;
}
