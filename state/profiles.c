/* Profiles: rows of `profiles`, `profiles_config`, `profiles_devices` and
 * `profiles_devices_config`, exchanged as LXD objects {name, description,
 * config, devices, used_by}. A device's `type` lives in
 * profiles_devices.type, its other keys in profiles_devices_config.
 *
 * @project arguments name the project the profiles live in; callers resolve
 * a request's project with state_profile_project() first. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

/* Loading: ?1 is the project id, ?2 a profile name or NULL for all. Each
 * query fetches one table for the whole project, so a list costs five
 * queries whatever the number of profiles. */
#define PROFILE_FILTER " pr.project_id = ?1 AND (?2 IS NULL OR pr.name = ?2)"

static const char *const sql_profiles =
    "SELECT pr.id, pr.name, pr.description FROM profiles pr"
    " WHERE" PROFILE_FILTER " ORDER BY pr.name";
static const char *const sql_profiles_config =
    "SELECT c.profile_id, c.key, c.value FROM profiles_config c"
    " JOIN profiles pr ON pr.id = c.profile_id"
    " WHERE" PROFILE_FILTER;
static const char *const sql_profiles_devices =
    "SELECT d.profile_id, d.id, d.name, d.type FROM profiles_devices d"
    " JOIN profiles pr ON pr.id = d.profile_id"
    " WHERE" PROFILE_FILTER;
static const char *const sql_profiles_devices_config =
    "SELECT dc.device_id, dc.key, dc.value FROM profiles_devices_config dc"
    " JOIN profiles_devices d ON d.id = dc.device_id"
    " JOIN profiles pr ON pr.id = d.profile_id"
    " WHERE" PROFILE_FILTER;
static const char *const sql_profiles_used_by =
    "SELECT ip.profile_id, i.name, p.name FROM instances_profiles ip"
    " JOIN profiles pr ON pr.id = ip.profile_id"
    " JOIN instances i ON i.id = ip.instance_id"
    " JOIN projects p ON p.id = i.project_id"
    " WHERE" PROFILE_FILTER " ORDER BY p.name, i.name";

int state_profile_project(struct state_tx *tx,
			  const char *project,
			  char *out,
			  size_t size)
{
	struct dqlite_param param = state__text(project);
	struct dqlite_rows rows;
	const char *value;
	const char *result;
	int rv;

	rv = state_tx_query(tx,
			    "SELECT c.value FROM projects p"
			    " LEFT JOIN projects_config c"
			    " ON c.project_id = p.id"
			    " AND c.key = 'features.profiles'"
			    " WHERE p.name = ?",
			    &param, 1, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"look up project %s", project);
		return rv;
	}
	if (rows.n_rows == 0) {
		dqlite_proto_rows_close(&rows);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project %s not found", project);
		return CORRAL_ENOTFOUND;
	}
	value = state__col_text(&rows, 0, 0);
	result =
	    value != NULL && strcmp(value, "true") == 0 ? project : "default";
	if (strlen(result) >= size) {
		dqlite_proto_rows_close(&rows);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project name %s too long", result);
		return CORRAL_EINVALID;
	}
	memcpy(out, result, strlen(result) + 1);
	dqlite_proto_rows_close(&rows);
	return 0;
}

/* Run one loading query and hand each row to @row_cb. */
typedef int (*row_fn)(struct state_tx *tx,
		      const struct dqlite_rows *rows,
		      size_t i,
		      json_t *profiles,
		      json_t *devices);

static int load_rows(struct state_tx *tx,
		     const char *sql,
		     const struct dqlite_param *params,
		     row_fn row_cb,
		     json_t *profiles,
		     json_t *devices)
{
	struct dqlite_rows rows;
	size_t i;
	int rv;

	rv = state_tx_query(tx, sql, params, 2, &rows);
	if (rv != 0) {
		return rv;
	}
	for (i = 0; i < rows.n_rows; i++) {
		rv = row_cb(tx, &rows, i, profiles, devices);
		if (rv != 0) {
			break;
		}
	}
	dqlite_proto_rows_close(&rows);
	return rv;
}

/* (profile_id, key, value) */
static int config_row(struct state_tx *tx,
		      const struct dqlite_rows *rows,
		      size_t i,
		      json_t *profiles,
		      json_t *devices)
{
	json_t *profile =
	    state__index_get(profiles, state__col_int(rows, i, 0));
	const char *key = state__col_text(rows, i, 1);
	const char *value = state__col_text(rows, i, 2);

	(void)devices;
	if (profile == NULL || key == NULL) {
		return 0;
	}
	if (json_object_set_new(json_object_get(profile, "config"), key,
				json_string(value != NULL ? value : "")) != 0) {
		return state__oom(tx);
	}
	return 0;
}

/* (profile_id, device_id, name, type) */
static int device_row(struct state_tx *tx,
		      const struct dqlite_rows *rows,
		      size_t i,
		      json_t *profiles,
		      json_t *devices)
{
	json_t *profile =
	    state__index_get(profiles, state__col_int(rows, i, 0));
	const char *name = state__col_text(rows, i, 2);
	const char *type = state__col_text(rows, i, 3);
	json_t *device;

	if (profile == NULL || name == NULL) {
		return 0;
	}
	device = json_pack("{s:s}", "type", type != NULL ? type : "");
	if (device == NULL ||
	    json_object_set(json_object_get(profile, "devices"), name,
			    device) != 0) {
		json_decref(device);
		return state__oom(tx);
	}
	return state__index_set(tx, devices, state__col_int(rows, i, 1),
				device);
}

/* (device_id, key, value) */
static int device_config_row(struct state_tx *tx,
			     const struct dqlite_rows *rows,
			     size_t i,
			     json_t *profiles,
			     json_t *devices)
{
	json_t *device = state__index_get(devices, state__col_int(rows, i, 0));
	const char *key = state__col_text(rows, i, 1);
	const char *value = state__col_text(rows, i, 2);

	(void)profiles;
	if (device == NULL || key == NULL) {
		return 0;
	}
	if (json_object_set_new(device, key,
				json_string(value != NULL ? value : "")) != 0) {
		return state__oom(tx);
	}
	return 0;
}

/* (profile_id, instance name, instance project) */
static int used_by_row(struct state_tx *tx,
		       const struct dqlite_rows *rows,
		       size_t i,
		       json_t *profiles,
		       json_t *devices)
{
	json_t *profile =
	    state__index_get(profiles, state__col_int(rows, i, 0));
	const char *name = state__col_text(rows, i, 1);
	const char *project = state__col_text(rows, i, 2);

	(void)devices;
	if (profile == NULL || name == NULL || project == NULL) {
		return 0;
	}
	return state__used_by_add(tx, json_object_get(profile, "used_by"),
				  "instances", name, project);
}

/* Load profile @name (every profile when NULL) of project @project into a
 * new array sorted by name. */
static int profile_load(struct state_tx *tx,
			const char *project,
			const char *name,
			json_t **out)
{
	struct dqlite_param params[2];
	struct dqlite_rows rows;
	json_t *list;
	json_t *profiles;
	json_t *devices;
	int64_t project_id;
	size_t i;
	int rv;

	rv = state__project_id(tx, project, &project_id);
	if (rv != 0) {
		return rv;
	}
	params[0] = state__int(project_id);
	params[1] = state__text(name);

	list = json_array();
	profiles = json_object();
	devices = json_object();
	if (list == NULL || profiles == NULL || devices == NULL) {
		rv = state__oom(tx);
		goto err_after_alloc;
	}

	rv = state_tx_query(tx, sql_profiles, params, 2, &rows);
	if (rv != 0) {
		goto err_after_alloc;
	}
	for (i = 0; i < rows.n_rows; i++) {
		const char *pname = state__col_text(&rows, i, 1);
		const char *desc = state__col_text(&rows, i, 2);
		json_t *profile;

		profile = json_pack("{s:s, s:s, s:{}, s:{}, s:[]}", "name",
				    pname != NULL ? pname : "", "description",
				    desc != NULL ? desc : "", "config",
				    "devices", "used_by");
		if (profile == NULL || json_array_append(list, profile) != 0) {
			json_decref(profile);
			rv = state__oom(tx);
			break;
		}
		rv = state__index_set(tx, profiles, state__col_int(&rows, i, 0),
				      profile);
		if (rv != 0) {
			break;
		}
	}
	dqlite_proto_rows_close(&rows);
	if (rv != 0 || json_array_size(list) == 0) {
		goto done;
	}

	rv = load_rows(tx, sql_profiles_config, params, config_row, profiles,
		       devices);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = load_rows(tx, sql_profiles_devices, params, device_row, profiles,
		       devices);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = load_rows(tx, sql_profiles_devices_config, params,
		       device_config_row, profiles, devices);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = load_rows(tx, sql_profiles_used_by, params, used_by_row, profiles,
		       devices);
	if (rv != 0) {
		goto err_after_alloc;
	}
done:
	if (rv != 0) {
		goto err_after_alloc;
	}
	json_decref(devices);
	json_decref(profiles);
	*out = list;
	return 0;

err_after_alloc:
	json_decref(devices);
	json_decref(profiles);
	json_decref(list);
	return rv;
}

int state_profile_list(struct state_tx *tx,
		       const char *project,
		       json_t **profiles)
{
	int rv;

	rv = profile_load(tx, project, NULL, profiles);
	if (rv != 0 && rv != CORRAL_ENOTFOUND) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load profiles of project %s", project);
	}
	return rv;
}

int state_profile_names(struct state_tx *tx,
			const char *project,
			json_t **names)
{
	struct dqlite_param param;
	struct dqlite_rows rows;
	int64_t project_id;
	json_t *list;
	size_t i;
	int rv;

	rv = state__project_id(tx, project, &project_id);
	if (rv != 0) {
		return rv;
	}
	param = state__int(project_id);
	rv = state_tx_query(tx,
			    "SELECT name FROM profiles WHERE project_id = ?"
			    " ORDER BY name",
			    &param, 1, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load profiles of project %s", project);
		return rv;
	}
	list = json_array();
	if (list == NULL) {
		rv = state__oom(tx);
		goto err_after_query;
	}
	for (i = 0; i < rows.n_rows; i++) {
		const char *name = state__col_text(&rows, i, 0);

		if (name != NULL &&
		    json_array_append_new(list, json_string(name)) != 0) {
			rv = state__oom(tx);
			goto err_after_list;
		}
	}
	dqlite_proto_rows_close(&rows);
	*names = list;
	return 0;

err_after_list:
	json_decref(list);
err_after_query:
	dqlite_proto_rows_close(&rows);
	return rv;
}

int state_profile_get(struct state_tx *tx,
		      const char *project,
		      const char *name,
		      json_t **profile)
{
	json_t *list;
	int rv;

	rv = profile_load(tx, project, name, &list);
	if (rv != 0) {
		if (rv != CORRAL_ENOTFOUND) {
			corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
					"load profile %s", name);
		}
		return rv;
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile %s not found", name);
		return CORRAL_ENOTFOUND;
	}
	*profile = json_incref(json_array_get(list, 0));
	json_decref(list);
	return 0;
}

/* Check the shape of @devices: NULL, or an object of objects each with a
 * string `type` and string values. */
static int devices_check(struct state_tx *tx, const json_t *devices)
{
	char what[128];
	const char *name;
	json_t *device;
	int rv;

	if (devices == NULL) {
		return 0;
	}
	if (!json_is_object(devices)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "devices must be an object");
		return CORRAL_EINVALID;
	}
	json_object_foreach((json_t *)devices, name, device)
	{
		snprintf(what, sizeof what, "device %s", name);
		if (!json_is_object(device)) {
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "%s must be an object", what);
			return CORRAL_EINVALID;
		}
		rv = state__config_check(tx, device, what);
		if (rv != 0) {
			return rv;
		}
		if (json_object_get(device, "type") == NULL) {
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "%s has no type", what);
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

/* Store @config and @devices of profile @id, which has none yet. */
static int contents_store(struct state_tx *tx,
			  int64_t id,
			  const json_t *config,
			  const json_t *devices)
{
	struct dqlite_param params[3];
	const char *name;
	json_t *device;
	int64_t device_id;
	int rv;

	rv = state__config_store(tx,
				 "INSERT INTO profiles_config"
				 " (profile_id, key, value) VALUES (?, ?, ?)",
				 id, config, NULL);
	if (rv != 0 || devices == NULL) {
		return rv;
	}
	json_object_foreach((json_t *)devices, name, device)
	{
		params[0] = state__int(id);
		params[1] = state__text(name);
		params[2] = state__text(
		    json_string_value(json_object_get(device, "type")));
		rv = state_tx_exec(tx,
				   "INSERT INTO profiles_devices"
				   " (profile_id, name, type) VALUES (?, ?, ?)",
				   params, 3, &device_id, NULL);
		if (rv == 0) {
			rv = state__config_store(
			    tx,
			    "INSERT INTO profiles_devices_config"
			    " (device_id, key, value) VALUES (?, ?, ?)",
			    device_id, device, "type");
		}
		if (rv != 0) {
			corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
					"store device %s", name);
			return rv;
		}
	}
	return 0;
}

int state__profile_insert(struct state_tx *tx,
			  int64_t project_id,
			  const char *name,
			  const char *description,
			  int64_t *id)
{
	struct dqlite_param params[3];
	int64_t last_id;
	int rv;

	params[0] = state__int(project_id);
	params[1] = state__text(name);
	params[2] = state__text(description != NULL ? description : "");
	rv =
	    state_tx_exec(tx,
			  "INSERT INTO profiles (project_id, name, description)"
			  " VALUES (?, ?, ?)",
			  params, 3, &last_id, NULL);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"insert profile %s", name);
		return rv;
	}
	if (id != NULL) {
		*id = last_id;
	}
	return 0;
}

/* The id of profile @name in project @project_id; *@found false when
 * absent. */
static int profile_id(struct state_tx *tx,
		      int64_t project_id,
		      const char *name,
		      int64_t *id,
		      bool *found)
{
	struct dqlite_param params[2];

	params[0] = state__int(project_id);
	params[1] = state__text(name);
	return state__query_int(tx,
				"SELECT id FROM profiles"
				" WHERE project_id = ? AND name = ?",
				params, 2, id, found);
}

/* Look up project @project and profile @name in it:
 * CORRAL_ENOTFOUND when either is absent. */
static int profile_find(struct state_tx *tx,
			const char *project,
			const char *name,
			int64_t *id)
{
	int64_t project_id;
	bool found;
	int rv;

	rv = state__project_id(tx, project, &project_id);
	if (rv != 0) {
		return rv;
	}
	rv = profile_id(tx, project_id, name, id, &found);
	if (rv != 0) {
		return rv;
	}
	if (!found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile %s not found", name);
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

int state_profile_create(struct state_tx *tx,
			 const char *project,
			 json_t *profile)
{
	struct dqlite_param params[3];
	const char *name;
	json_t *config;
	json_t *devices;
	int64_t changes = 0;
	int64_t id;
	int rv;

	name = json_string_value(json_object_get(profile, "name"));
	if (name == NULL) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile name must be a string");
		return CORRAL_EINVALID;
	}
	config = json_object_get(profile, "config");
	devices = json_object_get(profile, "devices");
	config = json_is_null(config) ? NULL : config;
	devices = json_is_null(devices) ? NULL : devices;
	rv = state__config_check(tx, config, "config");
	if (rv == 0) {
		rv = devices_check(tx, devices);
	}
	if (rv != 0) {
		return rv;
	}

	/* One statement finds the project and inserts the profile; the
	 * UNIQUE constraint reports a taken name. A create is a write
	 * transaction whose cost is mostly round trips and the commit, so
	 * every statement saved counts. */
	params[0] = state__text(name);
	params[1] = state__text(
	    json_string_value(json_object_get(profile, "description")) != NULL
		? json_string_value(json_object_get(profile, "description"))
		: "");
	params[2] = state__text(project);
	rv =
	    state_tx_exec(tx,
			  "INSERT INTO profiles (project_id, name, description)"
			  " SELECT id, ?, ? FROM projects WHERE name = ?",
			  params, 3, &id, &changes);
	if (rv != 0 && strstr(tx->errmsg, "UNIQUE constraint failed") != NULL) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile %s already exists in project %s", name,
			    project);
		return CORRAL_EEXIST;
	}
	if (rv != 0) {
		goto err;
	}
	if (changes == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project %s not found", project);
		return CORRAL_ENOTFOUND;
	}
	rv = contents_store(tx, id, config, devices);
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "profiles");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "create profile %s",
			name);
	return rv;
}

int state_profile_update(struct state_tx *tx,
			 const char *project,
			 const char *name,
			 const char *description,
			 json_t *config,
			 json_t *devices)
{
	struct dqlite_param params[2];
	int64_t id;
	int rv;

	rv = state__config_check(tx, config, "config");
	if (rv == 0) {
		rv = devices_check(tx, devices);
	}
	if (rv != 0) {
		return rv;
	}
	rv = profile_find(tx, project, name, &id);
	if (rv != 0) {
		return rv;
	}
	params[0] = state__text(description != NULL ? description : "");
	params[1] = state__int(id);
	rv = state_tx_exec(tx,
			   "UPDATE profiles SET description = ? WHERE id = ?",
			   params, 2, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	params[0] = state__int(id);
	rv = state_tx_exec(tx,
			   "DELETE FROM profiles_config WHERE profile_id = ?",
			   params, 1, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	/* Cascades to profiles_devices_config. */
	rv = state_tx_exec(tx,
			   "DELETE FROM profiles_devices WHERE profile_id = ?",
			   params, 1, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = contents_store(tx, id, config, devices);
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "profiles");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "update profile %s",
			name);
	return rv;
}

int state_profile_rename(struct state_tx *tx,
			 const char *project,
			 const char *name,
			 const char *new_name)
{
	struct dqlite_param params[2];
	int64_t project_id;
	int64_t id;
	int64_t other;
	bool found;
	int rv;

	if (strcmp(name, "default") == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "the 'default' profile cannot be renamed");
		return CORRAL_EFORBIDDEN;
	}
	rv = state__project_id(tx, project, &project_id);
	if (rv != 0) {
		return rv;
	}
	rv = profile_id(tx, project_id, name, &id, &found);
	if (rv != 0) {
		goto err;
	}
	if (!found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile %s not found", name);
		return CORRAL_ENOTFOUND;
	}
	rv = profile_id(tx, project_id, new_name, &other, &found);
	if (rv != 0) {
		goto err;
	}
	if (found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile %s already exists in project %s", new_name,
			    project);
		return CORRAL_EEXIST;
	}
	params[0] = state__text(new_name);
	params[1] = state__int(id);
	rv = state_tx_exec(tx, "UPDATE profiles SET name = ? WHERE id = ?",
			   params, 2, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "profiles");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "rename profile %s",
			name);
	return rv;
}

int state_profile_delete(struct state_tx *tx,
			 const char *project,
			 const char *name)
{
	struct dqlite_param param;
	int64_t count;
	int64_t id;
	int rv;

	if (strcmp(name, "default") == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "the 'default' profile cannot be deleted");
		return CORRAL_EFORBIDDEN;
	}
	rv = profile_find(tx, project, name, &id);
	if (rv != 0) {
		return rv;
	}
	param = state__int(id);
	rv = state__query_int(tx,
			      "SELECT count(*) FROM instances_profiles"
			      " WHERE profile_id = ?",
			      &param, 1, &count, NULL);
	if (rv != 0) {
		goto err;
	}
	if (count > 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "profile %s is currently in use", name);
		return CORRAL_ECONFLICT;
	}
	rv = state_tx_exec(tx, "DELETE FROM profiles WHERE id = ?", &param, 1,
			   NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "profiles");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "delete profile %s",
			name);
	return rv;
}
