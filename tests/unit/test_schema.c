/* Unit tests of state/schema.c over an in-memory SQLite database. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <corral/err.h>
#include <corral/state.h>

#include "schema.h"
#include "sqlite_tx.h"

static int setup(void **state)
{
	struct test_sqlite_tx *t = calloc(1, sizeof *t);

	if (t == NULL || test_sqlite_tx_open(t) != 0) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_sqlite_tx *t = *state;

	state__schema_set_updates(NULL, 0);
	test_sqlite_tx_close(t);
	free(t);
	return 0;
}

/* Run @sql directly on the database; SQLITE_OK or the error code. */
static int raw(struct test_sqlite_tx *t, const char *sql)
{
	return sqlite3_exec(t->db, sql, NULL, NULL, NULL);
}

/* The integer of the first column of the first row of @sql (-1 if none). */
static int64_t raw_int(struct test_sqlite_tx *t, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t value = -1;

	assert_int_equal(sqlite3_prepare_v2(t->db, sql, -1, &stmt, NULL),
			 SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW) {
		value = sqlite3_column_int64(stmt, 0);
	}
	sqlite3_finalize(stmt);
	return value;
}

static int version(struct test_sqlite_tx *t)
{
	int v = -1;

	assert_int_equal(state_schema_version(&t->tx, &v), 0);
	return v;
}

static void test_empty_database(void **state)
{
	struct test_sqlite_tx *t = *state;

	assert_int_equal(version(t), 0);
	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_string_equal(t->tx.errmsg, "");
	assert_int_equal(version(t), STATE_SCHEMA_VERSION);
	assert_true(raw_int(t, "SELECT updated_at FROM schema") > 0);
	/* Not left inside a transaction. */
	assert_int_equal(sqlite3_get_autocommit(t->db), 1);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM generations"), 4);
	assert_int_equal(raw_int(t, "SELECT sum(value) FROM generations"), 0);
	assert_int_equal(raw_int(t,
				 "SELECT count(*) FROM nodes WHERE id = 1"
				 " AND name = 'none' AND address = ''"),
			 1);
}

static void test_defaults(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *project;
	json_t *profile;
	json_t *expected;

	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_int_equal(state_project_get(&t->tx, "default", &project), 0);
	expected =
	    json_pack("{s:s, s:s, s:s, s:s}", "features.images", "true",
		      "features.profiles", "true", "features.storage.volumes",
		      "true", "features.networks", "false");
	assert_true(json_equal(json_object_get(project, "config"), expected));
	json_decref(expected);
	json_decref(project);

	assert_int_equal(
	    state_profile_get(&t->tx, "default", "default", &profile), 0);
	assert_string_equal(
	    json_string_value(json_object_get(profile, "description")),
	    "Default corral profile");
	assert_int_equal(json_object_size(json_object_get(profile, "config")),
			 0);
	assert_int_equal(json_object_size(json_object_get(profile, "devices")),
			 0);
	json_decref(profile);
}

static void test_idempotent(void **state)
{
	struct test_sqlite_tx *t = *state;

	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_int_equal(version(t), STATE_SCHEMA_VERSION);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM projects"), 1);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM profiles"), 1);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM schema"), 1);
}

/* Fake later updates, to exercise upgrades across several versions. */
static int fake_update2(struct state_tx *tx)
{
	return state_tx_exec(tx,
			     "CREATE TABLE extra (id INTEGER PRIMARY KEY,"
			     " note TEXT NOT NULL)",
			     NULL, 0, NULL, NULL);
}

static int fake_update3(struct state_tx *tx)
{
	int rv;

	rv = state_tx_exec(tx, "INSERT INTO extra (note) VALUES ('v3')", NULL,
			   0, NULL, NULL);
	if (rv != 0) {
		return rv;
	}
	return state_tx_exec(tx,
			     "ALTER TABLE profiles ADD COLUMN flavour TEXT"
			     " NOT NULL DEFAULT 'plain'",
			     NULL, 0, NULL, NULL);
}

static int failing_update(struct state_tx *tx)
{
	int rv;

	rv = state_tx_exec(tx, "CREATE TABLE half (id INTEGER)", NULL, 0, NULL,
			   NULL);
	if (rv != 0) {
		return rv;
	}
	return state_tx_exec(tx, "INSERT INTO no_such_table VALUES (1)", NULL,
			     0, NULL, NULL);
}

static const state_schema_update_fn three_updates[] = {
	state__schema_update1,
	fake_update2,
	fake_update3,
};

static void test_from_every_older_version(void **state)
{
	struct test_sqlite_tx *t = *state;
	int from;

	(void)t;
	state__schema_set_updates(three_updates, 3);
	for (from = 0; from <= 3; from++) {
		struct test_sqlite_tx db;

		assert_int_equal(test_sqlite_tx_open(&db), 0);
		assert_int_equal(state__schema_apply_to(&db.tx, from), 0);
		assert_int_equal(version(&db), from);
		assert_int_equal(state_schema_apply(&db.tx), 0);
		assert_int_equal(version(&db), 3);
		assert_int_equal(
		    raw_int(&db,
			    "SELECT count(*) FROM extra WHERE note = 'v3'"),
		    1);
		assert_int_equal(
		    raw_int(&db,
			    "SELECT count(*) FROM profiles"
			    " WHERE name = 'default' AND flavour = 'plain'"),
		    1);
		/* The entity functions still work on the upgraded schema. */
		assert_int_equal(state_generation_bump(&db.tx, "profiles"), 0);
		test_sqlite_tx_close(&db);
	}
}

static void test_newer_refused(void **state)
{
	struct test_sqlite_tx *t = *state;

	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_int_equal(raw(t, "UPDATE schema SET version = 7"), SQLITE_OK);
	assert_int_equal(state_schema_apply(&t->tx), CORRAL_ESCHEMA);
	assert_string_equal(
	    t->tx.errmsg,
	    "database schema version 7 is newer than this corrald supports (1): upgrade corrald to a release with schema 7 or later");
	assert_int_equal(version(t), 7);
}

static void test_failed_update_rolls_back(void **state)
{
	static const state_schema_update_fn updates[] = {
		state__schema_update1,
		failing_update,
	};
	struct test_sqlite_tx *t = *state;
	int rv;

	state__schema_set_updates(updates, 2);
	rv = state_schema_apply(&t->tx);
	assert_int_equal(rv, CORRAL_EDBFAIL);
	assert_non_null(strstr(t->tx.errmsg, "schema update 2: "));
	assert_non_null(strstr(t->tx.errmsg, "no_such_table"));
	assert_int_equal(version(t), 1);
	assert_int_equal(raw_int(t,
				 "SELECT count(*) FROM sqlite_master"
				 " WHERE name = 'half'"),
			 0);
	assert_int_equal(sqlite3_get_autocommit(t->db), 1);
}

static void test_cascades(void **state)
{
	struct test_sqlite_tx *t = *state;

	assert_int_equal(state_schema_apply(&t->tx), 0);
	assert_int_equal(
	    raw(t,
		"INSERT INTO projects (name) VALUES ('p');"
		"INSERT INTO projects_config (project_id, key, value)"
		" SELECT id, 'features.profiles', 'true' FROM projects"
		" WHERE name = 'p';"
		"INSERT INTO profiles (project_id, name)"
		" SELECT id, 'web' FROM projects WHERE name = 'p';"
		"INSERT INTO profiles_config (profile_id, key, value)"
		" SELECT id, 'limits.cpu', '2' FROM profiles"
		" WHERE name = 'web';"
		"INSERT INTO profiles_devices (profile_id, name, type)"
		" SELECT id, 'eth0', 'nic' FROM profiles WHERE name = 'web';"
		"INSERT INTO profiles_devices_config (device_id, key, value)"
		" SELECT id, 'parent', 'br0' FROM profiles_devices;"
		"INSERT INTO instances (project_id, node_id, name, created_at)"
		" SELECT id, 1, 'c1', 0 FROM projects WHERE name = 'p';"
		"INSERT INTO instances_profiles"
		" (instance_id, profile_id, apply_order)"
		" SELECT i.id, pr.id, 0 FROM instances i, profiles pr"
		" WHERE pr.name = 'web';"
		"INSERT INTO identities"
		" (fingerprint, type, name, certificate, created_at)"
		" VALUES ('abc', 'client', 'alice', 'PEM', 0);"
		"INSERT INTO role_bindings (identity_id, scope, project_id, role)"
		" SELECT i.id, 'project', p.id, 'operator'"
		" FROM identities i, projects p WHERE p.name = 'p';"
		"INSERT INTO role_bindings (identity_id, scope, role)"
		" SELECT id, 'server', 'admin' FROM identities;"
		"INSERT INTO nodes_config (node_id, key, value)"
		" VALUES (1, 'core.https_address', ':8443')"),
	    SQLITE_OK);

	/* Constraints. */
	assert_int_not_equal(
	    raw(t,
		"INSERT INTO role_bindings (identity_id, scope, role)"
		" SELECT id, 'server', 'user' FROM identities"),
	    SQLITE_OK);
	assert_int_not_equal(
	    raw(t,
		"INSERT INTO role_bindings (identity_id, scope, role)"
		" SELECT id, 'project', 'user' FROM identities"),
	    SQLITE_OK);
	assert_int_not_equal(
	    raw(t,
		"INSERT INTO role_bindings (identity_id, scope, role)"
		" SELECT id, 'server', 'root' FROM identities"),
	    SQLITE_OK);
	assert_int_not_equal(
	    raw(t,
		"INSERT INTO profiles (project_id, name)"
		" SELECT id, 'web' FROM projects WHERE name = 'p'"),
	    SQLITE_OK);
	assert_int_not_equal(raw(t,
				 "INSERT INTO profiles (project_id, name)"
				 " VALUES (999, 'orphan')"),
			     SQLITE_OK);
	assert_int_not_equal(
	    raw(t,
		"INSERT INTO tokens (kind, secret_hash, name, created_at)"
		" VALUES ('bogus', 'h', 'n', 0)"),
	    SQLITE_OK);

	/* Deleting a project takes everything in it along. */
	assert_int_equal(raw(t, "DELETE FROM projects WHERE name = 'p'"),
			 SQLITE_OK);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM profiles"), 1);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM profiles_config"), 0);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM profiles_devices"),
			 0);
	assert_int_equal(
	    raw_int(t, "SELECT count(*) FROM profiles_devices_config"), 0);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM instances"), 0);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM instances_profiles"),
			 0);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM projects_config"), 4);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM role_bindings"), 1);

	/* Deleting an identity takes its bindings, a member its config. */
	assert_int_equal(raw(t, "DELETE FROM identities"), SQLITE_OK);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM role_bindings"), 0);
	assert_int_equal(raw(t, "DELETE FROM nodes"), SQLITE_OK);
	assert_int_equal(raw_int(t, "SELECT count(*) FROM nodes_config"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_database, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_from_every_older_version,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_update_rolls_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cascades, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
