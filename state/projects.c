/* Projects: rows of `projects` and `projects_config`, exchanged as LXD
 * objects {name, description, config, used_by}. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

/* ?1 is a project name, or NULL for every project. */
static const char *const sql_projects =
    "SELECT id, name, description FROM projects"
    " WHERE ?1 IS NULL OR name = ?1 ORDER BY name";
static const char *const sql_projects_config =
    "SELECT c.project_id, c.key, c.value FROM projects_config c"
    " JOIN projects p ON p.id = c.project_id"
    " WHERE ?1 IS NULL OR p.name = ?1";
static const char *const sql_projects_instances =
    "SELECT i.project_id, i.name FROM instances i"
    " JOIN projects p ON p.id = i.project_id"
    " WHERE ?1 IS NULL OR p.name = ?1 ORDER BY i.name";
static const char *const sql_projects_profiles =
    "SELECT pr.project_id, pr.name FROM profiles pr"
    " JOIN projects p ON p.id = pr.project_id"
    " WHERE ?1 IS NULL OR p.name = ?1 ORDER BY pr.name";

int state__project_id(struct state_tx *tx, const char *name, int64_t *id)
{
	struct dqlite_param param = state__text(name);
	bool found;
	int rv;

	rv = state__query_int(tx, "SELECT id FROM projects WHERE name = ?",
			      &param, 1, id, &found);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"look up project %s", name);
		return rv;
	}
	if (!found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project %s not found", name);
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

/* Add the rows (project_id, name) of @sql to the used_by arrays of the
 * projects in @index, as URLs of @kind. */
static int load_used_by(struct state_tx *tx,
			const char *sql,
			const struct dqlite_param *param,
			json_t *index,
			const char *kind)
{
	struct dqlite_rows rows;
	size_t i;
	int rv;

	rv = state_tx_query(tx, sql, param, 1, &rows);
	if (rv != 0) {
		return rv;
	}
	for (i = 0; i < rows.n_rows; i++) {
		json_t *project =
		    state__index_get(index, state__col_int(&rows, i, 0));
		const char *name = state__col_text(&rows, i, 1);

		if (project == NULL || name == NULL) {
			continue;
		}
		rv = state__used_by_add(
		    tx, json_object_get(project, "used_by"), kind, name,
		    json_string_value(json_object_get(project, "name")));
		if (rv != 0) {
			break;
		}
	}
	dqlite_proto_rows_close(&rows);
	return rv;
}

/* Load project @name, or every project when @name is NULL, into a new
 * array sorted by name. One query per table, whatever the count. */
static int project_load(struct state_tx *tx, const char *name, json_t **out)
{
	struct dqlite_param param = state__text(name);
	struct dqlite_rows rows;
	json_t *list;
	json_t *index;
	size_t i;
	int rv;

	list = json_array();
	index = json_object();
	if (list == NULL || index == NULL) {
		rv = state__oom(tx);
		goto err_after_alloc;
	}

	rv = state_tx_query(tx, sql_projects, &param, 1, &rows);
	if (rv != 0) {
		goto err_after_alloc;
	}
	for (i = 0; i < rows.n_rows; i++) {
		const char *pname = state__col_text(&rows, i, 1);
		const char *desc = state__col_text(&rows, i, 2);
		json_t *project;

		project =
		    json_pack("{s:s, s:s, s:{}, s:[]}", "name",
			      pname != NULL ? pname : "", "description",
			      desc != NULL ? desc : "", "config", "used_by");
		if (project == NULL || json_array_append(list, project) != 0) {
			json_decref(project);
			rv = state__oom(tx);
			break;
		}
		rv = state__index_set(tx, index, state__col_int(&rows, i, 0),
				      project);
		if (rv != 0) {
			break;
		}
	}
	dqlite_proto_rows_close(&rows);
	if (rv != 0) {
		goto err_after_alloc;
	}

	rv = state_tx_query(tx, sql_projects_config, &param, 1, &rows);
	if (rv != 0) {
		goto err_after_alloc;
	}
	for (i = 0; i < rows.n_rows; i++) {
		json_t *project =
		    state__index_get(index, state__col_int(&rows, i, 0));
		const char *key = state__col_text(&rows, i, 1);
		const char *value = state__col_text(&rows, i, 2);

		if (project == NULL || key == NULL) {
			continue;
		}
		if (json_object_set_new(
			json_object_get(project, "config"), key,
			json_string(value != NULL ? value : "")) != 0) {
			rv = state__oom(tx);
			break;
		}
	}
	dqlite_proto_rows_close(&rows);
	if (rv != 0) {
		goto err_after_alloc;
	}

	rv = load_used_by(tx, sql_projects_instances, &param, index,
			  "instances");
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = load_used_by(tx, sql_projects_profiles, &param, index, "profiles");
	if (rv != 0) {
		goto err_after_alloc;
	}
	json_decref(index);
	*out = list;
	return 0;

err_after_alloc:
	json_decref(index);
	json_decref(list);
	return rv;
}

int state_project_list(struct state_tx *tx, json_t **projects)
{
	int rv;

	rv = project_load(tx, NULL, projects);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "load projects");
	}
	return rv;
}

int state_project_get(struct state_tx *tx, const char *name, json_t **project)
{
	json_t *list;
	int rv;

	rv = project_load(tx, name, &list);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load project %s", name);
		return rv;
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project %s not found", name);
		return CORRAL_ENOTFOUND;
	}
	*project = json_incref(json_array_get(list, 0));
	json_decref(list);
	return 0;
}

static bool profiles_enabled(const json_t *config)
{
	const char *value =
	    json_string_value(json_object_get(config, "features.profiles"));

	return value != NULL && strcmp(value, "true") == 0;
}

static int name_taken(struct state_tx *tx, const char *name, bool *taken)
{
	struct dqlite_param param = state__text(name);
	int64_t id;
	int rv;

	rv = state__query_int(tx, "SELECT id FROM projects WHERE name = ?",
			      &param, 1, &id, taken);
	return rv;
}

int state_project_create(struct state_tx *tx, json_t *project)
{
	struct dqlite_param params[2];
	const char *name;
	const char *description;
	json_t *config;
	int64_t id;
	bool taken;
	int rv;

	name = json_string_value(json_object_get(project, "name"));
	if (name == NULL) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project name must be a string");
		return CORRAL_EINVALID;
	}
	description =
	    json_string_value(json_object_get(project, "description"));
	config = json_object_get(project, "config");
	if (json_is_null(config)) {
		config = NULL;
	}
	rv = state__config_check(tx, config, "config");
	if (rv != 0) {
		return rv;
	}

	rv = name_taken(tx, name, &taken);
	if (rv != 0) {
		goto err;
	}
	if (taken) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project %s already exists", name);
		return CORRAL_EEXIST;
	}
	params[0] = state__text(name);
	params[1] = state__text(description != NULL ? description : "");
	rv = state_tx_exec(tx,
			   "INSERT INTO projects (name, description)"
			   " VALUES (?, ?)",
			   params, 2, &id, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = state__config_store(tx,
				 "INSERT INTO projects_config"
				 " (project_id, key, value) VALUES (?, ?, ?)",
				 id, config, NULL);
	if (rv != 0) {
		goto err;
	}
	if (profiles_enabled(config)) {
		rv = state__profile_insert(tx, id, "default",
					   "Default corral profile", NULL);
		if (rv != 0) {
			goto err;
		}
		rv = state_generation_bump(tx, "profiles");
		if (rv != 0) {
			goto err;
		}
	}
	rv = state_generation_bump(tx, "projects");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "create project %s",
			name);
	return rv;
}

/* Whether project @id has a profile named `default`. */
static int has_default_profile(struct state_tx *tx, int64_t id, bool *has)
{
	struct dqlite_param param = state__int(id);
	int64_t value;

	return state__query_int(tx,
				"SELECT id FROM profiles"
				" WHERE project_id = ? AND name = 'default'",
				&param, 1, &value, has);
}

int state_project_update(struct state_tx *tx,
			 const char *name,
			 const char *description,
			 json_t *config)
{
	struct dqlite_param params[2];
	bool has_default;
	int64_t id;
	int rv;

	rv = state__config_check(tx, config, "config");
	if (rv != 0) {
		return rv;
	}
	rv = state__project_id(tx, name, &id);
	if (rv != 0) {
		return rv;
	}
	params[0] = state__text(description != NULL ? description : "");
	params[1] = state__int(id);
	rv = state_tx_exec(tx,
			   "UPDATE projects SET description = ? WHERE id = ?",
			   params, 2, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	params[0] = state__int(id);
	rv = state_tx_exec(tx,
			   "DELETE FROM projects_config WHERE project_id = ?",
			   params, 1, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = state__config_store(tx,
				 "INSERT INTO projects_config"
				 " (project_id, key, value) VALUES (?, ?, ?)",
				 id, config, NULL);
	if (rv != 0) {
		goto err;
	}

	/* As LXD: turning features.profiles on gives the project its own
	 * `default` profile, turning it off removes that profile (the API
	 * layer only lets features change on empty projects). The `default`
	 * project always keeps its profiles. */
	if (strcmp(name, "default") != 0) {
		rv = has_default_profile(tx, id, &has_default);
		if (rv != 0) {
			goto err;
		}
		if (profiles_enabled(config) && !has_default) {
			rv = state__profile_insert(
			    tx, id, "default", "Default corral profile", NULL);
		} else if (!profiles_enabled(config) && has_default) {
			rv = state_tx_exec(tx,
					   "DELETE FROM profiles"
					   " WHERE project_id = ?"
					   " AND name = 'default'",
					   params, 1, NULL, NULL);
		}
		if (rv != 0) {
			goto err;
		}
		if (profiles_enabled(config) != has_default) {
			rv = state_generation_bump(tx, "profiles");
			if (rv != 0) {
				goto err;
			}
		}
	}
	rv = state_generation_bump(tx, "projects");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "update project %s",
			name);
	return rv;
}

/* Bump the trust generation when role bindings name project @id: the trust
 * cache holds their project names. */
static int bump_trust_if_bound(struct state_tx *tx, int64_t id)
{
	struct dqlite_param param = state__int(id);
	int64_t count;
	int rv;

	rv = state__query_int(tx,
			      "SELECT count(*) FROM role_bindings"
			      " WHERE project_id = ?",
			      &param, 1, &count, NULL);
	if (rv != 0 || count == 0) {
		return rv;
	}
	return state_generation_bump(tx, "trust");
}

int state_project_rename(struct state_tx *tx,
			 const char *name,
			 const char *new_name)
{
	struct dqlite_param params[2];
	int64_t id;
	bool taken;
	int rv;

	if (strcmp(name, "default") == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "the 'default' project cannot be renamed");
		return CORRAL_EINVALID;
	}
	rv = state__project_id(tx, name, &id);
	if (rv != 0) {
		return rv;
	}
	rv = name_taken(tx, new_name, &taken);
	if (rv != 0) {
		goto err;
	}
	if (taken) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "project %s already exists", new_name);
		return CORRAL_EEXIST;
	}
	params[0] = state__text(new_name);
	params[1] = state__int(id);
	rv = state_tx_exec(tx, "UPDATE projects SET name = ? WHERE id = ?",
			   params, 2, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = bump_trust_if_bound(tx, id);
	if (rv != 0) {
		goto err;
	}
	/* Profiles are cached by project name. */
	rv = state_generation_bump(tx, "profiles");
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "projects");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "rename project %s",
			name);
	return rv;
}

int state_project_delete(struct state_tx *tx, const char *name)
{
	struct dqlite_param param;
	int64_t count;
	int64_t id;
	int rv;

	if (strcmp(name, "default") == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "the 'default' project cannot be deleted");
		return CORRAL_EFORBIDDEN;
	}
	rv = state__project_id(tx, name, &id);
	if (rv != 0) {
		return rv;
	}
	param = state__int(id);
	rv = state__query_int(tx,
			      "SELECT (SELECT count(*) FROM instances"
			      "  WHERE project_id = ?1)"
			      " + (SELECT count(*) FROM profiles"
			      "  WHERE project_id = ?1 AND name != 'default')",
			      &param, 1, &count, NULL);
	if (rv != 0) {
		goto err;
	}
	if (count > 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "only empty projects can be removed");
		return CORRAL_ECONFLICT;
	}
	rv = bump_trust_if_bound(tx, id);
	if (rv != 0) {
		goto err;
	}
	rv = state_tx_exec(tx, "DELETE FROM projects WHERE id = ?", &param, 1,
			   NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "profiles");
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "projects");
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "delete project %s",
			name);
	return rv;
}
