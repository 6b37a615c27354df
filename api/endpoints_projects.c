/* /1.0/projects: LXD's project API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "authz.h"
#include "validate.h"

static json_t *editable_fields(json_t *project)
{
	return json_pack("{s:O, s:O}", "description",
			 json_object_get(project, "description"), "config",
			 json_object_get(project, "config"));
}

/* Validate description and config when present; answers 400 on error. */
static bool check_project_body(struct api_req *r, json_t *body)
{
	json_t *desc = json_object_get(body, "description");
	json_t *config = json_object_get(body, "config");

	if (desc != NULL && !json_is_string(desc) && !json_is_null(desc)) {
		api_reply_error(r, 400,
				"invalid field \"description\": "
				"must be a string");
		return false;
	}
	if (config != NULL && !json_is_null(config) &&
	    (validate_string_map(config, "config", r->errmsg) != 0 ||
	     validate_project_config(config, r->errmsg) != 0)) {
		api_reply_error(r, 400, "%s", r->errmsg);
		return false;
	}
	return true;
}

static int list_work(struct state_tx *tx, struct api_db_call *c)
{
	return state_project_list(tx, &c->out);
}

/* Only the projects the caller may see; the subject is built now, on the
 * loop, from the current trust store. */
static void list_reply(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;
	struct authz_subject subject;
	json_t *out;
	json_t *project;
	size_t i;

	if (rv != 0) {
		snprintf(r->errmsg, sizeof r->errmsg, "%s", c->errmsg);
		api_reply_code(r, rv);
		return;
	}
	api_subject(r, &subject);
	out = json_array();
	json_array_foreach(c->out, i, project)
	{
		const char *name =
		    json_string_value(json_object_get(project, "name"));
		if (name == NULL || !authz_can_view_project(&subject, name)) {
			continue;
		}
		if (c->urls) {
			api_url_append(out, "/1.0/projects/", name, NULL);
		} else {
			json_array_append(out, project);
		}
	}
	api_reply_sync(r, 200, out, NULL, NULL);
}

static void list_projects(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);
	char recursion[8];

	if (c == NULL) {
		return;
	}
	if (api_query(r, "recursion", recursion, sizeof recursion) < 0 ||
	    strcmp(recursion, "0") == 0) {
		c->urls = true;
		snprintf(c->url_prefix, sizeof c->url_prefix, "/1.0/projects/");
	}
	/* Project URLs never carry ?project=. */
	snprintf(c->project, sizeof c->project, "default");
	c->reply = list_reply;
	api_db_run(c, false, list_work);
}

static int create_work(struct state_tx *tx, struct api_db_call *c)
{
	return state_project_create(tx, c->in);
}

static void create_project(struct api_req *r)
{
	struct api_db_call *c;
	json_t *body = api_body_object(r);
	json_t *config;
	const char *name;

	if (body == NULL) {
		return;
	}
	name = json_string_value(json_object_get(body, "name"));
	if (name == NULL) {
		json_decref(body);
		api_reply_error(r, 400, "missing field \"name\"");
		return;
	}
	if (validate_name("project", name, r->errmsg) != 0) {
		json_decref(body);
		api_reply_error(r, 400, "%s", r->errmsg);
		return;
	}
	if (!check_project_body(r, body)) {
		json_decref(body);
		return;
	}
	config = json_object_get(body, "config");
	if (!json_is_object(config)) {
		config = json_object();
		json_object_set_new(body, "config", config);
	}
	validate_apply_project_defaults(config);
	/* Below server admin, restricted* keys are not the caller's to set
	 * and new projects start restricted (rbac-model). */
	{
		struct authz_subject subject;
		api_subject(r, &subject);
		if (authz_check_project_keys(&subject, NULL, config,
					     r->errmsg) != 0) {
			json_decref(body);
			api_reply_error(r, 403, "%s", r->errmsg);
			return;
		}
		if (authz_apply_project_defaults(&subject, config) != 0) {
			json_decref(body);
			api_reply_error(r, 500, "out of memory");
			return;
		}
	}
	c = api_db_call_new(r);
	if (c == NULL) {
		json_decref(body);
		return;
	}
	c->in = body;
	c->status = 201;
	snprintf(c->location, sizeof c->location, "/1.0/projects/%s", name);
	api_db_run(c, true, create_work);
}

static int get_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *edit;
	int rv;

	rv = state_project_get(tx, c->name, &c->out);
	if (rv != 0) {
		return rv;
	}
	edit = editable_fields(c->out);
	api_etag(edit, c->etag);
	json_decref(edit);
	return 0;
}

static void get_project(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);

	if (c != NULL) {
		api_db_run(c, false, get_work);
	}
}

/* Whether the project holds nothing but its own default profile. */
static bool project_empty(json_t *project)
{
	json_t *used_by = json_object_get(project, "used_by");
	json_t *url;
	size_t i;

	json_array_foreach(used_by, i, url)
	{
		const char *u = json_string_value(url);
		if (u == NULL ||
		    (strcmp(u, "/1.0/profiles/default") != 0 &&
		     strncmp(u, "/1.0/profiles/default?", 22) != 0)) {
			return false;
		}
	}
	return true;
}

static const char *const feature_keys[] = {
	"features.images",
	"features.profiles",
	"features.storage.volumes",
	"features.networks",
};

/* Checks of a project config change against what the project holds:
 * features change only on an empty project (LXD's rule: profiles would be
 * orphaned), and NIC filtering can be enforced only when every bridged NIC
 * of the project's profiles already filters. A feature key missing from
 * @config keeps its current value. */
static int check_project_change(struct state_tx *tx,
				const char *name,
				json_t *current,
				json_t *config)
{
	json_t *old = json_object_get(current, "config");
	const char *enforce;
	json_t *profiles = NULL;
	json_t *profile;
	size_t i;
	int rv;

	for (i = 0; i < sizeof feature_keys / sizeof feature_keys[0]; i++) {
		const char *k = feature_keys[i];
		const char *was = json_string_value(json_object_get(old, k));
		const char *now = json_string_value(json_object_get(config, k));

		if (now == NULL && was != NULL) {
			json_object_set_new(config, k, json_string(was));
			continue;
		}
		if (was != NULL && now != NULL && strcmp(was, now) != 0 &&
		    !project_empty(current)) {
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "features can only be changed on empty "
				    "projects (%s)",
				    k);
			return CORRAL_EINVALID;
		}
	}
	enforce = json_string_value(
	    json_object_get(config, "restricted.devices.nic.filtering"));
	if (enforce == NULL || strcmp(enforce, "enforce") != 0) {
		return 0;
	}
	rv = state_profile_list(tx, name, &profiles);
	if (rv != 0) {
		return rv;
	}
	json_array_foreach(profiles, i, profile)
	{
		if (validate_nic_filtering_enforced(
			json_object_get(profile, "devices"), tx->errmsg) != 0) {
			corral_errwrapf(
			    tx->errmsg, sizeof tx->errmsg,
			    "cannot enforce NIC filtering: profile %s",
			    json_string_value(
				json_object_get(profile, "name")));
			json_decref(profiles);
			return CORRAL_EFORBIDDEN;
		}
	}
	json_decref(profiles);
	return 0;
}

static int update_work(struct state_tx *tx, struct api_db_call *c, bool patch)
{
	json_t *current = NULL;
	json_t *edit;
	json_t *config;
	const char *desc;
	char etag[65];
	int rv;

	rv = state_project_get(tx, c->name, &current);
	if (rv != 0) {
		return rv;
	}
	edit = editable_fields(current);
	api_etag(edit, etag);
	json_decref(edit);
	if (c->if_match[0] != '\0' && strcmp(c->if_match, etag) != 0) {
		json_decref(current);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "ETag doesn't match: the project changed");
		return CORRAL_EPRECONDITION;
	}
	desc = json_string_value(json_object_get(c->in, "description"));
	if (patch) {
		config = json_deep_copy(json_object_get(current, "config"));
		if (json_is_object(json_object_get(c->in, "config"))) {
			json_object_update(config,
					   json_object_get(c->in, "config"));
		}
		if (desc == NULL) {
			desc = json_string_value(
			    json_object_get(current, "description"));
		}
	} else {
		config = json_object_get(c->in, "config");
		config = json_is_object(config) ? json_incref(config)
						: json_object();
	}
	rv = check_project_change(tx, c->name, current, config);
	if (rv == 0) {
		/* Guard rail: restricted* keys are server admin business. */
		struct authz_subject caller = { .unix_socket = c->admin };
		rv = authz_check_project_keys(
		    &caller, json_object_get(current, "config"), config,
		    tx->errmsg);
	}
	if (rv == 0) {
		rv = state_project_update(tx, c->name, desc != NULL ? desc : "",
					  config);
	}
	json_decref(config);
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

static void update_project(struct api_req *r, bool patch)
{
	struct api_db_call *c;
	json_t *body = api_body_object(r);

	if (body == NULL) {
		return;
	}
	if (!check_project_body(r, body)) {
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

static void put_project(struct api_req *r)
{
	update_project(r, false);
}

static void patch_project(struct api_req *r)
{
	update_project(r, true);
}

static int rename_work(struct state_tx *tx, struct api_db_call *c)
{
	int rv = state_project_rename(tx, c->name, c->new_name);

	/* Role bindings follow the project: refresh the trust store. */
	if (rv == 0) {
		rv =
		    state_trust_snapshot(tx, &c->trust_snapshot, &c->trust_gen);
	}
	return rv;
}

static void rename_project(struct api_req *r)
{
	struct api_db_call *c;
	json_t *body = api_body_object(r);
	const char *name;

	if (body == NULL) {
		return;
	}
	name = json_string_value(json_object_get(body, "name"));
	if (name == NULL || validate_name("project", name, r->errmsg) != 0) {
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
	if (strcmp(c->name, "default") == 0) {
		api_reply_error(r, 403,
				"the 'default' project cannot be renamed");
		free(c);
		return;
	}
	c->status = 201;
	snprintf(c->location, sizeof c->location, "/1.0/projects/%s",
		 c->new_name);
	api_db_run(c, true, rename_work);
}

static int delete_work(struct state_tx *tx, struct api_db_call *c)
{
	int rv = state_project_delete(tx, c->name);

	/* Bindings on the project are gone with it. */
	if (rv == 0) {
		rv =
		    state_trust_snapshot(tx, &c->trust_snapshot, &c->trust_gen);
	}
	if (rv == 0) {
		c->out = json_object();
	}
	return rv;
}

static void delete_project(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);

	if (c != NULL) {
		api_db_run(c, true, delete_work);
	}
}

const struct api_route api_routes_projects[] = {
	{ .path = "/1.0/projects",
	  .get = list_projects,
	  .post = create_project },
	{ .path = "/1.0/projects/{name}",
	  .get = get_project,
	  .put = put_project,
	  .patch = patch_project,
	  .post = rename_project,
	  .del = delete_project },
};

const unsigned api_n_routes_projects =
    sizeof api_routes_projects / sizeof api_routes_projects[0];
