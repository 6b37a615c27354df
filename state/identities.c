/* The trust store: rows of `identities` and `role_bindings`, exchanged as
 * objects {fingerprint, type, name, description, certificate, created_at,
 * roles}. A role binding is {"scope": "server" | "all_projects" |
 * "project", "project": NAME (project scope only), "role": "auditor" |
 * "user" | "operator" | "admin"}.
 *
 * Every write bumps the `trust` generation in the caller's transaction, so
 * the members' caches (api/trust.h) notice the change. Input is checked in
 * full before the first write: a refused change writes nothing, even where
 * the caller's session is not a transaction (unit tests). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <corral/cert.h>
#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

/* ?1 is an identity id, or NULL for every identity. Two queries load any
 * number of identities. */
static const char *const sql_identities =
    "SELECT id, fingerprint, type, name, description, certificate,"
    " created_at FROM identities"
    " WHERE ?1 IS NULL OR id = ?1 ORDER BY name, fingerprint";
static const char *const sql_bindings =
    "SELECT rb.identity_id, rb.scope, p.name, rb.role FROM role_bindings rb"
    " LEFT JOIN projects p ON p.id = rb.project_id"
    " WHERE ?1 IS NULL OR rb.identity_id = ?1"
    " ORDER BY rb.identity_id,"
    " CASE rb.scope WHEN 'server' THEN 0 WHEN 'all_projects' THEN 1"
    " ELSE 2 END, p.name";

static const char *const identity_types[] = { "client", "server", "metrics",
					      NULL };
static const char *const binding_scopes[] = { "server", "all_projects",
					      "project", NULL };
static const char *const binding_roles[] = { "auditor", "user", "operator",
					     "admin", NULL };

static bool one_of(const char *value, const char *const *set)
{
	size_t i;

	if (value == NULL) {
		return false;
	}
	for (i = 0; set[i] != NULL; i++) {
		if (strcmp(value, set[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* Format unix time @t as RFC 3339 in UTC. */
static void format_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(out, 32, "1970-01-01T00:00:00Z");
	}
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                    */

/* (identity_id, scope, project name, role) */
static int binding_row(struct state_tx *tx,
		       const struct dqlite_rows *rows,
		       size_t i,
		       json_t *index)
{
	json_t *identity = state__index_get(index, state__col_int(rows, i, 0));
	const char *scope = state__col_text(rows, i, 1);
	const char *project = state__col_text(rows, i, 2);
	const char *role = state__col_text(rows, i, 3);
	json_t *binding;

	if (identity == NULL || scope == NULL || role == NULL) {
		return 0;
	}
	if (strcmp(scope, "project") == 0) {
		binding =
		    json_pack("{s:s, s:s, s:s}", "scope", scope, "project",
			      project != NULL ? project : "", "role", role);
	} else {
		binding = json_pack("{s:s, s:s}", "scope", scope, "role", role);
	}
	if (binding == NULL ||
	    json_array_append_new(json_object_get(identity, "roles"),
				  binding) != 0) {
		return state__oom(tx);
	}
	return 0;
}

/* Load identity @id (every identity when @id is 0) into a new array sorted
 * by name. */
static int identity_load(struct state_tx *tx, int64_t id, json_t **out)
{
	struct dqlite_param param = id != 0 ? state__int(id) : state__null();
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
	rv = state_tx_query(tx, sql_identities, &param, 1, &rows);
	if (rv != 0) {
		goto err_after_alloc;
	}
	for (i = 0; i < rows.n_rows; i++) {
		const char *fp = state__col_text(&rows, i, 1);
		const char *type = state__col_text(&rows, i, 2);
		const char *name = state__col_text(&rows, i, 3);
		const char *desc = state__col_text(&rows, i, 4);
		const char *pem = state__col_text(&rows, i, 5);
		char created[32];
		json_t *identity;

		format_time(state__col_int(&rows, i, 6), created);
		identity = json_pack(
		    "{s:s, s:s, s:s, s:s, s:s, s:s, s:[]}", "fingerprint",
		    fp != NULL ? fp : "", "type", type != NULL ? type : "",
		    "name", name != NULL ? name : "", "description",
		    desc != NULL ? desc : "", "certificate",
		    pem != NULL ? pem : "", "created_at", created, "roles");
		if (identity == NULL ||
		    json_array_append(list, identity) != 0) {
			json_decref(identity);
			rv = state__oom(tx);
			break;
		}
		rv = state__index_set(tx, index, state__col_int(&rows, i, 0),
				      identity);
		if (rv != 0) {
			break;
		}
	}
	dqlite_proto_rows_close(&rows);
	if (rv != 0) {
		goto err_after_alloc;
	}
	if (json_array_size(list) > 0) {
		rv = state_tx_query(tx, sql_bindings, &param, 1, &rows);
		if (rv != 0) {
			goto err_after_alloc;
		}
		for (i = 0; i < rows.n_rows && rv == 0; i++) {
			rv = binding_row(tx, &rows, i, index);
		}
		dqlite_proto_rows_close(&rows);
		if (rv != 0) {
			goto err_after_alloc;
		}
	}
	json_decref(index);
	*out = list;
	return 0;

err_after_alloc:
	json_decref(index);
	json_decref(list);
	return rv;
}

/* Find the identity whose fingerprint is @fp or starts with it. Sets *@id
 * and copies the full fingerprint into @full (may be NULL). */
static int identity_resolve(struct state_tx *tx,
			    const char *fp,
			    int64_t *id,
			    char *full)
{
	struct dqlite_param param;
	struct dqlite_rows rows;
	char prefix[CORRAL_CERT_FINGERPRINT_LEN + 1];
	const char *found;
	size_t len = fp != NULL ? strlen(fp) : 0;
	size_t i;
	int rv;

	if (len == 0 || len > CORRAL_CERT_FINGERPRINT_LEN) {
		goto not_found;
	}
	for (i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)fp[i])) {
			goto not_found;
		}
		prefix[i] = (char)tolower((unsigned char)fp[i]);
	}
	prefix[len] = '\0';

	/* Fingerprints are lowercase hex, so the ones starting with P are
	 * exactly those in [P, P || 'g'): a range scan of the UNIQUE index. */
	param = state__text(prefix);
	rv = state_tx_query(
	    tx,
	    "SELECT id, fingerprint FROM identities"
	    " WHERE fingerprint >= ?1 AND fingerprint < ?1 || 'g'"
	    " ORDER BY fingerprint LIMIT 2",
	    &param, 1, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"look up certificate");
		return rv;
	}
	if (rows.n_rows == 0) {
		dqlite_proto_rows_close(&rows);
		goto not_found;
	}
	if (rows.n_rows > 1) {
		dqlite_proto_rows_close(&rows);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate fingerprint prefix is ambiguous");
		return CORRAL_EINVALID;
	}
	*id = state__col_int(&rows, 0, 0);
	found = state__col_text(&rows, 0, 1);
	if (full != NULL) {
		snprintf(full, CORRAL_CERT_FINGERPRINT_LEN + 1, "%s",
			 found != NULL ? found : "");
	}
	dqlite_proto_rows_close(&rows);
	return 0;

not_found:
	corral_errf(tx->errmsg, sizeof tx->errmsg, "certificate not found");
	return CORRAL_ENOTFOUND;
}

int state_identity_list(struct state_tx *tx, json_t **out)
{
	int rv;

	rv = identity_load(tx, 0, out);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load certificates");
	}
	return rv;
}

int state_identity_get(struct state_tx *tx,
		       const char *fp_or_prefix,
		       json_t **out)
{
	json_t *list;
	int64_t id;
	int rv;

	rv = identity_resolve(tx, fp_or_prefix, &id, NULL);
	if (rv != 0) {
		return rv;
	}
	rv = identity_load(tx, id, &list);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load certificate");
		return rv;
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate not found");
		return CORRAL_ENOTFOUND;
	}
	*out = json_incref(json_array_get(list, 0));
	json_decref(list);
	return 0;
}

int state_trust_snapshot(struct state_tx *tx,
			 json_t **identities,
			 int64_t *generation)
{
	json_t *list;
	int rv;

	rv = state_generation_get(tx, "trust", generation);
	if (rv != 0) {
		return rv;
	}
	rv = state_identity_list(tx, &list);
	if (rv != 0) {
		return rv;
	}
	*identities = list;
	return 0;
}

int state_trust_project_names(struct state_tx *tx, json_t **names)
{
	struct dqlite_rows rows;
	json_t *list;
	size_t i;
	int rv;

	rv = state_tx_query(tx, "SELECT name FROM projects ORDER BY name", NULL,
			    0, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load project names");
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

/* ------------------------------------------------------------------------ */
/* Writing                                                                    */

/* A role binding checked and resolved, ready to insert. Strings are
 * borrowed from the caller's JSON. */
struct binding {
	const char *scope;
	const char *role;
	int64_t project_id; /* 0 unless scope is "project" */
};

/* Check @roles (NULL or JSON null: none) and resolve its project names.
 * On success *@out (malloc'd, may be NULL when empty) holds *@n bindings. */
static int bindings_resolve(struct state_tx *tx,
			    const json_t *roles,
			    struct binding **out,
			    size_t *n)
{
	struct binding *list;
	json_t *binding;
	size_t i;
	size_t j;
	int rv;

	*out = NULL;
	*n = 0;
	if (roles == NULL || json_is_null(roles)) {
		return 0;
	}
	if (!json_is_array(roles)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "roles must be an array");
		return CORRAL_EINVALID;
	}
	if (json_array_size(roles) == 0) {
		return 0;
	}
	list = calloc(json_array_size(roles), sizeof *list);
	if (list == NULL) {
		return state__oom(tx);
	}
	json_array_foreach((json_t *)roles, i, binding)
	{
		struct binding *b = &list[i];
		const char *project =
		    json_string_value(json_object_get(binding, "project"));

		b->scope = json_string_value(json_object_get(binding, "scope"));
		b->role = json_string_value(json_object_get(binding, "role"));
		if (!json_is_object(binding) ||
		    !one_of(b->scope, binding_scopes)) {
			corral_errf(
			    tx->errmsg, sizeof tx->errmsg,
			    "role binding %zu: scope must be server, all_projects or project",
			    i);
			rv = CORRAL_EINVALID;
			goto err;
		}
		if (!one_of(b->role, binding_roles)) {
			corral_errf(
			    tx->errmsg, sizeof tx->errmsg,
			    "role binding %zu: role must be auditor, user, operator or admin",
			    i);
			rv = CORRAL_EINVALID;
			goto err;
		}
		if (strcmp(b->scope, "project") != 0) {
			if (json_object_get(binding, "project") != NULL &&
			    !json_is_null(
				json_object_get(binding, "project"))) {
				corral_errf(
				    tx->errmsg, sizeof tx->errmsg,
				    "role binding %zu: a %s binding has no project",
				    i, b->scope);
				rv = CORRAL_EINVALID;
				goto err;
			}
		} else {
			if (project == NULL) {
				corral_errf(
				    tx->errmsg, sizeof tx->errmsg,
				    "role binding %zu: a project binding needs a project",
				    i);
				rv = CORRAL_EINVALID;
				goto err;
			}
			rv = state__project_id(tx, project, &b->project_id);
			if (rv == CORRAL_ENOTFOUND) {
				corral_errf(tx->errmsg, sizeof tx->errmsg,
					    "project \"%s\" not found",
					    project);
				rv = CORRAL_EINVALID;
			}
			if (rv != 0) {
				goto err;
			}
		}
		for (j = 0; j < i; j++) {
			if (strcmp(list[j].scope, b->scope) == 0 &&
			    list[j].project_id == b->project_id) {
				corral_errf(
				    tx->errmsg, sizeof tx->errmsg,
				    "role binding %zu: duplicate %s binding%s%s",
				    i, b->scope,
				    project != NULL ? " for project " : "",
				    project != NULL ? project : "");
				rv = CORRAL_EINVALID;
				goto err;
			}
		}
	}
	*out = list;
	*n = json_array_size(roles);
	return 0;

err:
	free(list);
	return rv;
}

/* Insert the @n bindings of identity @id, which has none. */
static int bindings_store(struct state_tx *tx,
			  int64_t id,
			  const struct binding *list,
			  size_t n)
{
	struct dqlite_param params[4];
	size_t i;
	int rv;

	for (i = 0; i < n; i++) {
		params[0] = state__int(id);
		params[1] = state__text(list[i].scope);
		params[2] = list[i].project_id != 0
				? state__int(list[i].project_id)
				: state__null();
		params[3] = state__text(list[i].role);
		rv = state_tx_exec(tx,
				   "INSERT INTO role_bindings"
				   " (identity_id, scope, project_id, role)"
				   " VALUES (?, ?, ?, ?)",
				   params, 4, NULL, NULL);
		if (rv != 0) {
			corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
					"store role binding %zu", i);
			return rv;
		}
	}
	return 0;
}

/* Whether an identity with fingerprint @fp exists. */
static int fingerprint_taken(struct state_tx *tx, const char *fp, bool *taken)
{
	struct dqlite_param param = state__text(fp);
	int64_t id;

	return state__query_int(
	    tx, "SELECT id FROM identities WHERE fingerprint = ?", &param, 1,
	    &id, taken);
}

/* Compute the fingerprint of PEM certificate @pem into @fp. */
static int pem_fingerprint(struct state_tx *tx, const char *pem, char *fp)
{
	int rv;

	rv = cert_fingerprint_pem(pem, strlen(pem), fp);
	if (rv == -ENOMEM) {
		return state__oom(tx);
	}
	if (rv != 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate is not a valid PEM certificate");
		return CORRAL_EINVALID;
	}
	return 0;
}

/* Check that @field of @obj is absent (when !@required) or a string. */
static int string_field(struct state_tx *tx,
			const json_t *obj,
			const char *field,
			bool required,
			const char **value)
{
	json_t *v = json_object_get(obj, field);

	*value = json_string_value(v);
	if (*value == NULL && (required || v != NULL)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate %s must be a string", field);
		return CORRAL_EINVALID;
	}
	return 0;
}

int state_identity_create(struct state_tx *tx, json_t *identity)
{
	char fp[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct dqlite_param params[6];
	struct binding *bindings = NULL;
	const char *given_fp;
	const char *type;
	const char *name;
	const char *desc;
	const char *pem;
	size_t n_bindings;
	int64_t id;
	bool taken;
	int rv;

	if (!json_is_object(identity)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate must be an object");
		return CORRAL_EINVALID;
	}
	rv = string_field(tx, identity, "fingerprint", false, &given_fp);
	if (rv == 0) {
		rv = string_field(tx, identity, "type", true, &type);
	}
	if (rv == 0) {
		rv = string_field(tx, identity, "name", true, &name);
	}
	if (rv == 0) {
		rv = string_field(tx, identity, "description", false, &desc);
	}
	if (rv == 0) {
		rv = string_field(tx, identity, "certificate", true, &pem);
	}
	if (rv != 0) {
		return rv;
	}
	if (!one_of(type, identity_types)) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "certificate type must be client, server or metrics");
		return CORRAL_EINVALID;
	}
	rv = pem_fingerprint(tx, pem, fp);
	if (rv != 0) {
		return rv;
	}
	if (given_fp != NULL && strcmp(given_fp, fp) != 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "fingerprint does not match the certificate");
		return CORRAL_EINVALID;
	}
	rv = bindings_resolve(tx, json_object_get(identity, "roles"), &bindings,
			      &n_bindings);
	if (rv != 0) {
		return rv;
	}
	rv = fingerprint_taken(tx, fp, &taken);
	if (rv != 0) {
		goto err;
	}
	if (taken) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate already in trust store");
		rv = CORRAL_EEXIST;
		goto err_after_resolve;
	}
	params[0] = state__text(fp);
	params[1] = state__text(type);
	params[2] = state__text(name);
	params[3] = state__text(desc != NULL ? desc : "");
	params[4] = state__text(pem);
	params[5] = state__int((int64_t)time(NULL));
	rv = state_tx_exec(tx,
			   "INSERT INTO identities (fingerprint, type, name,"
			   " description, certificate, created_at)"
			   " VALUES (?, ?, ?, ?, ?, ?)",
			   params, 6, &id, NULL);
	if (rv != 0) {
		goto err;
	}
	rv = bindings_store(tx, id, bindings, n_bindings);
	if (rv != 0) {
		goto err;
	}
	rv = state_generation_bump(tx, "trust");
	if (rv != 0) {
		goto err;
	}
	free(bindings);
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "add certificate %.12s",
			fp);
err_after_resolve:
	free(bindings);
	return rv;
}

int state_identity_update(struct state_tx *tx, const char *fp, json_t *fields)
{
	char full[CORRAL_CERT_FINGERPRINT_LEN + 1];
	char new_fp[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct dqlite_param params[6];
	struct binding *bindings = NULL;
	json_t *roles = json_object_get(fields, "roles");
	const char *type;
	const char *name;
	const char *desc;
	const char *pem;
	size_t n_bindings = 0;
	int64_t id;
	bool taken;
	int rv;

	if (!json_is_object(fields)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate fields must be an object");
		return CORRAL_EINVALID;
	}
	rv = string_field(tx, fields, "type", false, &type);
	if (rv == 0) {
		rv = string_field(tx, fields, "name", false, &name);
	}
	if (rv == 0) {
		rv = string_field(tx, fields, "description", false, &desc);
	}
	if (rv == 0) {
		rv = string_field(tx, fields, "certificate", false, &pem);
	}
	if (rv != 0) {
		return rv;
	}
	if (type != NULL && !one_of(type, identity_types)) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "certificate type must be client, server or metrics");
		return CORRAL_EINVALID;
	}
	rv = identity_resolve(tx, fp, &id, full);
	if (rv != 0) {
		return rv;
	}
	snprintf(new_fp, sizeof new_fp, "%s", full);
	if (pem != NULL) {
		rv = pem_fingerprint(tx, pem, new_fp);
		if (rv != 0) {
			return rv;
		}
		if (strcmp(new_fp, full) != 0) {
			rv = fingerprint_taken(tx, new_fp, &taken);
			if (rv != 0) {
				goto err;
			}
			if (taken) {
				corral_errf(
				    tx->errmsg, sizeof tx->errmsg,
				    "certificate already in trust store");
				return CORRAL_EEXIST;
			}
		}
	}
	if (roles != NULL) {
		rv = bindings_resolve(tx, roles, &bindings, &n_bindings);
		if (rv != 0) {
			return rv;
		}
	}

	/* COALESCE keeps the columns whose field is absent. */
	params[0] = state__text(type);
	params[1] = state__text(name);
	params[2] = state__text(desc);
	params[3] = state__text(pem);
	params[4] = state__text(new_fp);
	params[5] = state__int(id);
	rv = state_tx_exec(tx,
			   "UPDATE identities SET type = COALESCE(?1, type),"
			   " name = COALESCE(?2, name),"
			   " description = COALESCE(?3, description),"
			   " certificate = COALESCE(?4, certificate),"
			   " fingerprint = ?5 WHERE id = ?6",
			   params, 6, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	if (roles != NULL) {
		params[0] = state__int(id);
		rv = state_tx_exec(
		    tx, "DELETE FROM role_bindings WHERE identity_id = ?",
		    params, 1, NULL, NULL);
		if (rv != 0) {
			goto err;
		}
		rv = bindings_store(tx, id, bindings, n_bindings);
		if (rv != 0) {
			goto err;
		}
	}
	rv = state_generation_bump(tx, "trust");
	if (rv != 0) {
		goto err;
	}
	free(bindings);
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
			"update certificate %.12s", full);
	free(bindings);
	return rv;
}

int state_identity_delete(struct state_tx *tx, const char *fp)
{
	char full[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct dqlite_param param;
	int64_t id;
	int rv;

	rv = identity_resolve(tx, fp, &id, full);
	if (rv != 0) {
		return rv;
	}
	/* role_bindings go with it (ON DELETE CASCADE). */
	param = state__int(id);
	rv = state_tx_exec(tx, "DELETE FROM identities WHERE id = ?", &param, 1,
			   NULL, NULL);
	if (rv == 0) {
		rv = state_generation_bump(tx, "trust");
	}
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"delete certificate %.12s", full);
	}
	return rv;
}
