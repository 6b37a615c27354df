/* Schema migrations: an ordered list of updates, each applied in its own
 * transaction, with the version recorded in the `schema` table.
 *
 * To change the schema, append an update to `updates` and raise
 * STATE_SCHEMA_VERSION; never edit an update that has shipped. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "schema.h"
#include "tx_util.h"

/* Schema version 1. Every child table carries UNIQUE(parent_id, ...), whose
 * index also serves the lookups by parent and the cascading deletes. */
static const char *const schema_v1[] = {
	"CREATE TABLE schema ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" version INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL)",

	"CREATE TABLE config ("
	" key TEXT PRIMARY KEY NOT NULL,"
	" value TEXT NOT NULL)",

	/* state: 0 created, 1 pending, 2 evacuated (as LXD). */
	"CREATE TABLE nodes ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" name TEXT NOT NULL UNIQUE,"
	" address TEXT NOT NULL UNIQUE,"
	" description TEXT NOT NULL DEFAULT '',"
	" schema INTEGER NOT NULL,"
	" api_extensions INTEGER NOT NULL,"
	" version TEXT NOT NULL DEFAULT '',"
	" arch TEXT NOT NULL DEFAULT '',"
	" state INTEGER NOT NULL DEFAULT 0,"
	" heartbeat INTEGER NOT NULL DEFAULT 0,"
	" failure_domain TEXT NOT NULL DEFAULT '')",

	"CREATE TABLE nodes_config ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" UNIQUE (node_id, key))",

	"CREATE TABLE identities ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" fingerprint TEXT NOT NULL UNIQUE,"
	" type TEXT NOT NULL CHECK (type IN ('client', 'server', 'metrics')),"
	" name TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" certificate TEXT NOT NULL,"
	" created_at INTEGER NOT NULL)",

	"CREATE TABLE projects ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" name TEXT NOT NULL UNIQUE,"
	" description TEXT NOT NULL DEFAULT '')",

	"CREATE TABLE projects_config ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" project_id INTEGER NOT NULL REFERENCES projects (id)"
	" ON DELETE CASCADE,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" UNIQUE (project_id, key))",

	"CREATE TABLE role_bindings ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" identity_id INTEGER NOT NULL REFERENCES identities (id)"
	" ON DELETE CASCADE,"
	" scope TEXT NOT NULL"
	" CHECK (scope IN ('server', 'all_projects', 'project')),"
	" project_id INTEGER REFERENCES projects (id) ON DELETE CASCADE,"
	" role TEXT NOT NULL"
	" CHECK (role IN ('auditor', 'user', 'operator', 'admin')),"
	" UNIQUE (identity_id, scope, project_id),"
	" CHECK ((scope = 'project') = (project_id IS NOT NULL)))",

	/* SQLite's UNIQUE treats NULLs as distinct: keep one server or
	 * all_projects binding per identity and scope. */
	"CREATE UNIQUE INDEX role_bindings_unique_global"
	" ON role_bindings (identity_id, scope) WHERE project_id IS NULL",

	"CREATE INDEX role_bindings_project_id ON role_bindings (project_id)",

	"CREATE TABLE profiles ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" project_id INTEGER NOT NULL REFERENCES projects (id)"
	" ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" UNIQUE (project_id, name))",

	"CREATE TABLE profiles_config ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" profile_id INTEGER NOT NULL REFERENCES profiles (id)"
	" ON DELETE CASCADE,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" UNIQUE (profile_id, key))",

	"CREATE TABLE profiles_devices ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" profile_id INTEGER NOT NULL REFERENCES profiles (id)"
	" ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" UNIQUE (profile_id, name))",

	"CREATE TABLE profiles_devices_config ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" device_id INTEGER NOT NULL REFERENCES profiles_devices (id)"
	" ON DELETE CASCADE,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" UNIQUE (device_id, key))",

	"CREATE TABLE instances ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" project_id INTEGER NOT NULL REFERENCES projects (id)"
	" ON DELETE CASCADE,"
	" node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" type TEXT NOT NULL DEFAULT 'container'"
	" CHECK (type IN ('container', 'virtual-machine')),"
	" architecture TEXT NOT NULL DEFAULT '',"
	" ephemeral INTEGER NOT NULL DEFAULT 0,"
	" stateful INTEGER NOT NULL DEFAULT 0,"
	" description TEXT NOT NULL DEFAULT '',"
	" created_at INTEGER NOT NULL,"
	" last_used_at INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (project_id, name))",

	"CREATE INDEX instances_node_id ON instances (node_id)",

	"CREATE TABLE instances_config ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" instance_id INTEGER NOT NULL REFERENCES instances (id)"
	" ON DELETE CASCADE,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" UNIQUE (instance_id, key))",

	"CREATE TABLE instances_devices ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" instance_id INTEGER NOT NULL REFERENCES instances (id)"
	" ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" UNIQUE (instance_id, name))",

	"CREATE TABLE instances_devices_config ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" device_id INTEGER NOT NULL REFERENCES instances_devices (id)"
	" ON DELETE CASCADE,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" UNIQUE (device_id, key))",

	"CREATE TABLE instances_profiles ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" instance_id INTEGER NOT NULL REFERENCES instances (id)"
	" ON DELETE CASCADE,"
	" profile_id INTEGER NOT NULL REFERENCES profiles (id)"
	" ON DELETE CASCADE,"
	" apply_order INTEGER NOT NULL,"
	" UNIQUE (instance_id, profile_id))",

	/* used_by of a profile, and the cascade from profiles. */
	"CREATE INDEX instances_profiles_profile_id"
	" ON instances_profiles (profile_id)",

	/* data: JSON of the role bindings (trust) or member (join) the token
	 * grants; expires_at NULL never expires; used_at NULL unused. */
	"CREATE TABLE tokens ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
	" kind TEXT NOT NULL CHECK (kind IN ('trust', 'join')),"
	" secret_hash TEXT NOT NULL UNIQUE,"
	" name TEXT NOT NULL,"
	" data TEXT NOT NULL DEFAULT '{}',"
	" created_at INTEGER NOT NULL,"
	" expires_at INTEGER,"
	" used_at INTEGER)",

	"CREATE INDEX tokens_kind_name ON tokens (kind, name)",

	"CREATE TABLE generations ("
	" name TEXT PRIMARY KEY NOT NULL,"
	" value INTEGER NOT NULL)",

	"INSERT INTO generations (name, value)"
	" VALUES ('trust', 0), ('projects', 0), ('profiles', 0),"
	" ('instances', 0)",

	/* The local member, so a standalone daemon has member-local config;
	 * clustering fills in its name and address. */
	"INSERT INTO nodes (id, name, address, schema, api_extensions)"
	" VALUES (1, 'none', '', 1, 0)",

	"INSERT INTO projects (name, description)"
	" VALUES ('default', 'Default corral project')",

	"INSERT INTO projects_config (project_id, key, value)"
	" SELECT id, 'features.images', 'true' FROM projects"
	" WHERE name = 'default'",
	"INSERT INTO projects_config (project_id, key, value)"
	" SELECT id, 'features.profiles', 'true' FROM projects"
	" WHERE name = 'default'",
	"INSERT INTO projects_config (project_id, key, value)"
	" SELECT id, 'features.storage.volumes', 'true' FROM projects"
	" WHERE name = 'default'",
	"INSERT INTO projects_config (project_id, key, value)"
	" SELECT id, 'features.networks', 'false' FROM projects"
	" WHERE name = 'default'",

	"INSERT INTO profiles (project_id, name, description)"
	" SELECT id, 'default', 'Default corral profile' FROM projects"
	" WHERE name = 'default'",
};

static int exec_all(struct state_tx *tx, const char *const *stmts, size_t n)
{
	size_t i;
	int rv;

	for (i = 0; i < n; i++) {
		rv = state_tx_exec(tx, stmts[i], NULL, 0, NULL, NULL);
		if (rv != 0) {
			corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
					"statement %zu", i + 1);
			return rv;
		}
	}
	return 0;
}

int state__schema_update1(struct state_tx *tx)
{
	return exec_all(tx, schema_v1, sizeof schema_v1 / sizeof schema_v1[0]);
}

static const state_schema_update_fn builtin_updates[] = {
	state__schema_update1,
};

_Static_assert(sizeof builtin_updates / sizeof builtin_updates[0] ==
		   STATE_SCHEMA_VERSION,
	       "one update per schema version");

static const state_schema_update_fn *updates = builtin_updates;
static size_t n_updates = STATE_SCHEMA_VERSION;

void state__schema_set_updates(const state_schema_update_fn *list, size_t n)
{
	if (list == NULL) {
		updates = builtin_updates;
		n_updates = STATE_SCHEMA_VERSION;
		return;
	}
	updates = list;
	n_updates = n;
}

int state_schema_version(struct state_tx *tx, int *version)
{
	struct dqlite_param param = state__text("schema");
	int64_t value;
	bool found;
	int rv;

	rv = state__query_int(tx,
			      "SELECT count(*) FROM sqlite_master"
			      " WHERE type = 'table' AND name = ?",
			      &param, 1, &value, NULL);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"read schema version");
		return rv;
	}
	if (value == 0) {
		*version = 0;
		return 0;
	}
	rv = state__query_int(tx, "SELECT version FROM schema WHERE id = 1",
			      NULL, 0, &value, &found);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"read schema version");
		return rv;
	}
	*version = found ? (int)value : 0;
	return 0;
}

static int check_not_newer(struct state_tx *tx, int version)
{
	if (version > (int)n_updates) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "database schema version %d is newer than this corrald supports (%zu): upgrade corrald to a release with schema %d or later",
		    version, n_updates, version);
		return CORRAL_ESCHEMA;
	}
	return 0;
}

/* Apply update @version in its own transaction, unless another member got
 * there first (the version is read again inside the transaction). */
static int apply_one(struct state_tx *tx, int version)
{
	char keep[CORRAL_ERRMSG_SIZE];
	struct dqlite_param params[2];
	int current;
	int rv;

	rv = state_tx_exec(tx, "BEGIN", NULL, 0, NULL, NULL);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"schema update %d: begin", version);
		return rv;
	}
	rv = state_schema_version(tx, &current);
	if (rv != 0) {
		goto err_rollback;
	}
	if (current >= version) {
		return state_tx_exec(tx, "COMMIT", NULL, 0, NULL, NULL);
	}
	rv = updates[version - 1](tx);
	if (rv != 0) {
		goto err_rollback;
	}
	params[0] = state__int(version);
	params[1] = state__int((int64_t)time(NULL));
	rv = state_tx_exec(tx,
			   "INSERT INTO schema (id, version, updated_at)"
			   " VALUES (1, ?1, ?2)"
			   " ON CONFLICT (id) DO UPDATE"
			   " SET version = ?1, updated_at = ?2",
			   params, 2, NULL, NULL);
	if (rv != 0) {
		goto err_rollback;
	}
	rv = state_tx_exec(tx, "COMMIT", NULL, 0, NULL, NULL);
	if (rv != 0) {
		goto err_rollback;
	}
	return 0;

err_rollback:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "schema update %d",
			version);
	memcpy(keep, tx->errmsg, sizeof keep);
	state_tx_exec(tx, "ROLLBACK", NULL, 0, NULL, NULL);
	memcpy(tx->errmsg, keep, sizeof keep);
	return rv;
}

int state__schema_apply_to(struct state_tx *tx, int target)
{
	int version;
	int v;
	int rv;

	rv = state_schema_version(tx, &version);
	if (rv != 0) {
		return rv;
	}
	rv = check_not_newer(tx, version);
	if (rv != 0) {
		return rv;
	}
	if (target > (int)n_updates) {
		target = (int)n_updates;
	}
	for (v = version + 1; v <= target; v++) {
		rv = apply_one(tx, v);
		if (rv != 0) {
			return rv;
		}
	}
	tx->errmsg[0] = '\0';
	return 0;
}

int state_schema_apply(struct state_tx *tx)
{
	return state__schema_apply_to(tx, (int)n_updates);
}
