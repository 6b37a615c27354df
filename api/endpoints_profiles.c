/* /1.0/profiles: LXD's profile API, per project. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "authz.h"
#include "validate.h"

/* ------------------------------------------------------------------------ */
/* Shared checks                                                              */

/* Validate the editable fields present in @body. With @full (POST, PUT),
 * absent fields mean empty. Answers 400 and returns false on bad input. */
static bool check_profile_body(struct api_req *r, json_t *body, bool full)
{
	json_t *desc = json_object_get(body, "description");
	json_t *config = json_object_get(body, "config");
	json_t *devices = json_object_get(body, "devices");

	(void)full;
	if (desc != NULL && !json_is_string(desc) && !json_is_null(desc)) {
		api_reply_error(r, 400,
				"invalid field \"description\": "
				"must be a string");
		return false;
	}
	if (config != NULL && !json_is_null(config) &&
	    (validate_string_map(config, "config", r->errmsg) != 0 ||
	     validate_instance_config(config, r->errmsg) != 0)) {
		api_reply_error(r, 400, "%s", r->errmsg);
		return false;
	}
	if (devices != NULL && !json_is_null(devices) &&
	    validate_devices(devices, r->errmsg) != 0) {
		api_reply_error(r, 400, "%s", r->errmsg);
		return false;
	}
	return true;
}

/* Resolve the project whose profiles @c->project uses, and check the
 * project's NIC filtering rule against @devices (may be NULL). */
static int profile_scope(struct state_tx *tx,
			 struct api_db_call *c,
			 char *project,
			 size_t size,
			 json_t *devices)
{
	json_t *proj = NULL;
	const char *enforce;
	int rv;

	rv = state_profile_project(tx, c->project, project, size);
	if (rv != 0) {
		return rv;
	}
	if (devices == NULL) {
		return 0;
	}
	rv = state_project_get(tx, project, &proj);
	if (rv != 0) {
		return rv;
	}
	enforce = json_string_value(
	    json_object_get(json_object_get(proj, "config"),
			    "restricted.devices.nic.filtering"));
	if (enforce != NULL && strcmp(enforce, "enforce") == 0 &&
	    validate_nic_filtering_enforced(devices, tx->errmsg) != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"project %s enforces NIC filtering", project);
		json_decref(proj);
		return CORRAL_EFORBIDDEN;
	}
	json_decref(proj);
	return 0;
}

static json_t *editable_fields(json_t *profile)
{
	return json_pack("{s:O, s:O, s:O}", "description",
			 json_object_get(profile, "description"), "config",
			 json_object_get(profile, "config"), "devices",
			 json_object_get(profile, "devices"));
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/profiles                                                          */

static int list_work(struct state_tx *tx, struct api_db_call *c)
{
	char project[128];
	int rv;

	rv = profile_scope(tx, c, project, sizeof project, NULL);
	if (rv != 0) {
		return rv;
	}
	if (c->urls) {
		return state_profile_names(tx, project, &c->out);
	}
	return state_profile_list(tx, project, &c->out);
}

static void list_profiles(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);
	char recursion[8];

	if (c == NULL) {
		return;
	}
	if (api_query(r, "recursion", recursion, sizeof recursion) < 0 ||
	    strcmp(recursion, "0") == 0) {
		c->urls = true;
		snprintf(c->url_prefix, sizeof c->url_prefix, "/1.0/profiles/");
	}
	/* Served from memory until the next write: a list of thousands of
	 * profiles costs no database round trip. */
	api_db_list_cached(c, "/1.0/profiles", list_work);
}

/* ------------------------------------------------------------------------ */
/* POST /1.0/profiles                                                         */

static int create_work(struct state_tx *tx, struct api_db_call *c)
{
	char project[128];
	int rv;

	struct authz_subject caller = { .unix_socket = c->admin };

	/* Guard rails: root-equivalent keys and host-path disks. */
	rv = authz_check_config_keys(
	    &caller, c->project, json_object_get(c->in, "config"), tx->errmsg);
	if (rv == 0) {
		rv = authz_check_devices(
		    &caller, json_object_get(c->in, "devices"), tx->errmsg);
	}
	if (rv != 0) {
		return rv;
	}
	rv = profile_scope(tx, c, project, sizeof project,
			   json_object_get(c->in, "devices"));
	if (rv != 0) {
		return rv;
	}
	return state_profile_create(tx, project, c->in);
}

static void create_profile(struct api_req *r)
{
	struct api_db_call *c;
	json_t *body = api_body_object(r);
	const char *name;
	json_t *url;

	if (body == NULL) {
		return;
	}
	name = json_string_value(json_object_get(body, "name"));
	if (name == NULL) {
		json_decref(body);
		api_reply_error(r, 400, "missing field \"name\"");
		return;
	}
	if (validate_name("profile", name, r->errmsg) != 0) {
		json_decref(body);
		api_reply_error(r, 400, "%s", r->errmsg);
		return;
	}
	if (!check_profile_body(r, body, true)) {
		json_decref(body);
		return;
	}
	c = api_db_call_new(r);
	if (c == NULL) {
		json_decref(body);
		return;
	}
	c->in = body;
	c->status = 201;
	url = json_array();
	api_url_append(url, "/1.0/profiles/", name, c->project);
	snprintf(c->location, sizeof c->location, "%s",
		 json_string_value(json_array_get(url, 0)));
	json_decref(url);
	api_db_run(c, true, create_work);
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/profiles/{name}                                                   */

static int get_work(struct state_tx *tx, struct api_db_call *c)
{
	char project[128];
	json_t *edit;
	int rv;

	rv = profile_scope(tx, c, project, sizeof project, NULL);
	if (rv != 0) {
		return rv;
	}
	rv = state_profile_get(tx, project, c->name, &c->out);
	if (rv != 0) {
		return rv;
	}
	edit = editable_fields(c->out);
	api_etag(edit, c->etag);
	json_decref(edit);
	return 0;
}

static void get_profile(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);

	if (c != NULL) {
		api_db_run(c, false, get_work);
	}
}

/* ------------------------------------------------------------------------ */
/* PUT and PATCH /1.0/profiles/{name}                                         */

static int update_work(struct state_tx *tx, struct api_db_call *c, bool patch)
{
	char project[128];
	json_t *current = NULL;
	json_t *edit;
	json_t *config;
	json_t *devices;
	const char *desc;
	char etag[65];
	int rv;

	rv = state_profile_project(tx, c->project, project, sizeof project);
	if (rv != 0) {
		return rv;
	}
	rv = state_profile_get(tx, project, c->name, &current);
	if (rv != 0) {
		return rv;
	}
	edit = editable_fields(current);
	api_etag(edit, etag);
	json_decref(edit);
	if (c->if_match[0] != '\0' && strcmp(c->if_match, etag) != 0) {
		json_decref(current);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "ETag doesn't match: the profile changed");
		return CORRAL_EPRECONDITION;
	}
	if (patch) {
		config = json_deep_copy(json_object_get(current, "config"));
		devices = json_deep_copy(json_object_get(current, "devices"));
		if (json_is_object(json_object_get(c->in, "config"))) {
			json_object_update(config,
					   json_object_get(c->in, "config"));
		}
		if (json_is_object(json_object_get(c->in, "devices"))) {
			json_object_update(devices,
					   json_object_get(c->in, "devices"));
		}
		desc = json_string_value(json_object_get(c->in, "description"));
		if (desc == NULL) {
			desc = json_string_value(
			    json_object_get(current, "description"));
		}
	} else {
		config = json_object_get(c->in, "config");
		devices = json_object_get(c->in, "devices");
		config = json_is_object(config) ? json_incref(config)
						: json_object();
		devices = json_is_object(devices) ? json_incref(devices)
						  : json_object();
		desc = json_string_value(json_object_get(c->in, "description"));
	}
	rv = profile_scope(tx, c, project, sizeof project, devices);
	if (rv == 0) {
		/* Guard rails on what changes, so a client may send back
		 * unchanged what a server admin set. */
		struct authz_subject caller = { .unix_socket = c->admin };
		rv = authz_check_config_change(
		    &caller, c->project, json_object_get(current, "config"),
		    config, tx->errmsg);
		if (rv == 0) {
			rv = authz_check_devices_change(
			    &caller, json_object_get(current, "devices"),
			    devices, tx->errmsg);
		}
	}
	if (rv == 0) {
		rv = state_profile_update(tx, project, c->name,
					  desc != NULL ? desc : "", config,
					  devices);
	}
	json_decref(config);
	json_decref(devices);
	json_decref(current);
	if (rv == 0) {
		c->out = json_object();
	}
	return rv;
}

static int put_work(struct state_tx *tx, struct api_db_call *c)
{
	return update_work(tx, c, false);
}

static int patch_work(struct state_tx *tx, struct api_db_call *c)
{
	return update_work(tx, c, true);
}

static void update_profile(struct api_req *r, bool patch)
{
	struct api_db_call *c;
	json_t *body = api_body_object(r);

	if (body == NULL) {
		return;
	}
	if (!check_profile_body(r, body, !patch)) {
		json_decref(body);
		return;
	}
	c = api_db_call_new(r);
	if (c == NULL) {
		json_decref(body);
		return;
	}
	c->in = body;
	api_db_run(c, true, patch ? patch_work : put_work);
}

static void put_profile(struct api_req *r)
{
	update_profile(r, false);
}

static void patch_profile(struct api_req *r)
{
	update_profile(r, true);
}

/* ------------------------------------------------------------------------ */
/* POST (rename) and DELETE /1.0/profiles/{name}                              */

static int rename_work(struct state_tx *tx, struct api_db_call *c)
{
	char project[128];
	int rv;

	rv = state_profile_project(tx, c->project, project, sizeof project);
	if (rv == 0) {
		rv = state_profile_rename(tx, project, c->name, c->new_name);
	}
	return rv;
}

static void rename_profile(struct api_req *r)
{
	struct api_db_call *c;
	json_t *body = api_body_object(r);
	const char *name;
	json_t *url;

	if (body == NULL) {
		return;
	}
	name = json_string_value(json_object_get(body, "name"));
	if (name == NULL || validate_name("profile", name, r->errmsg) != 0) {
		json_decref(body);
		api_reply_error(
		    r, 400, "%s",
		    name == NULL ? "missing field \"name\"" : r->errmsg);
		return;
	}
	c = api_db_call_new(r);
	if (c == NULL) {
		json_decref(body);
		return;
	}
	snprintf(c->new_name, sizeof c->new_name, "%s", name);
	json_decref(body);
	c->status = 201;
	url = json_array();
	api_url_append(url, "/1.0/profiles/", c->new_name, c->project);
	snprintf(c->location, sizeof c->location, "%s",
		 json_string_value(json_array_get(url, 0)));
	json_decref(url);
	api_db_run(c, true, rename_work);
}

static int delete_work(struct state_tx *tx, struct api_db_call *c)
{
	char project[128];
	int rv;

	rv = state_profile_project(tx, c->project, project, sizeof project);
	if (rv == 0) {
		rv = state_profile_delete(tx, project, c->name);
	}
	if (rv == 0) {
		c->out = json_object();
	}
	return rv;
}

static void delete_profile(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);

	if (c != NULL) {
		api_db_run(c, true, delete_work);
	}
}

const struct api_route api_routes_profiles[] = {
	{ .path = "/1.0/profiles",
	  .get = list_profiles,
	  .post = create_profile },
	{ .path = "/1.0/profiles/{name}",
	  .get = get_profile,
	  .put = put_profile,
	  .patch = patch_profile,
	  .post = rename_profile,
	  .del = delete_profile },
};

const unsigned api_n_routes_profiles =
    sizeof api_routes_profiles / sizeof api_routes_profiles[0];
