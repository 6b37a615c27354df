/* Unit tests of the entity functions of state/ (config, generations,
 * projects, profiles) over an in-memory SQLite database. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include <corral/err.h>
#include <corral/state.h>

#include "sqlite_tx.h"

static int setup(void **state)
{
	struct test_sqlite_tx *t = calloc(1, sizeof *t);

	if (t == NULL || test_sqlite_tx_open(t) != 0) {
		free(t);
		return -1;
	}
	if (state_schema_apply(&t->tx) != 0) {
		test_sqlite_tx_close(t);
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_sqlite_tx *t = *state;

	test_sqlite_tx_close(t);
	free(t);
	return 0;
}

static void raw(struct test_sqlite_tx *t, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(t->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fail_msg("%s: %s", sql, err);
	}
}

static int64_t gen(struct test_sqlite_tx *t, const char *name)
{
	int64_t value = -1;

	assert_int_equal(state_generation_get(&t->tx, name, &value), 0);
	return value;
}

/* Assert that @actual equals the JSON text @expected; consumes @actual. */
static void assert_json(json_t *actual, const char *expected)
{
	json_t *want = json_loads(expected, 0, NULL);

	assert_non_null(want);
	if (!json_equal(actual, want)) {
		char *got = json_dumps(actual, JSON_SORT_KEYS);

		fail_msg("got %s, want %s", got, expected);
	}
	json_decref(want);
	json_decref(actual);
}

static json_t *json_of(const char *text)
{
	json_t *value = json_loads(text, 0, NULL);

	assert_non_null(value);
	return value;
}

/* Insert instance @name into @project on member 1 using @profile of
 * @profile_project. */
static void add_instance(struct test_sqlite_tx *t,
			 const char *project,
			 const char *name,
			 const char *profile_project,
			 const char *profile)
{
	sqlite3_stmt *stmt;

	assert_int_equal(
	    sqlite3_prepare_v2(t->db,
			       "INSERT INTO instances"
			       " (project_id, node_id, name, created_at)"
			       " SELECT id, 1, ?, 0 FROM projects"
			       " WHERE name = ?",
			       -1, &stmt, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, project, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
	sqlite3_finalize(stmt);
	if (profile == NULL) {
		return;
	}
	assert_int_equal(
	    sqlite3_prepare_v2(
		t->db,
		"INSERT INTO instances_profiles"
		" (instance_id, profile_id, apply_order)"
		" SELECT i.id, pr.id, 0 FROM instances i, profiles pr,"
		" projects ip, projects pp"
		" WHERE ip.id = i.project_id AND pp.id = pr.project_id"
		" AND i.name = ? AND ip.name = ? AND pr.name = ?"
		" AND pp.name = ?",
		-1, &stmt, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, project, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, profile, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, profile_project, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(t->db), 1);
	sqlite3_finalize(stmt);
}

static void create_project(struct test_sqlite_tx *t, const char *text)
{
	json_t *project = json_of(text);

	assert_int_equal(state_project_create(&t->tx, project), 0);
	json_decref(project);
}

static void create_profile(struct test_sqlite_tx *t,
			   const char *project,
			   const char *text)
{
	json_t *profile = json_of(text);

	assert_int_equal(state_profile_create(&t->tx, project, profile), 0);
	json_decref(profile);
}

/* ------------------------------------------------------------------------ */

static void test_config(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *config;

	assert_int_equal(state_config_get(&t->tx, &config), 0);
	assert_json(config, "{}");

	config = json_of(
	    "{\"core.trust_password\": \"hash\","
	    " \"cluster.offline_threshold\": \"5\"}");
	assert_int_equal(state_config_replace(&t->tx, config), 0);
	json_decref(config);
	assert_int_equal(state_config_get(&t->tx, &config), 0);
	assert_json(config,
		    "{\"core.trust_password\": \"hash\","
		    " \"cluster.offline_threshold\": \"5\"}");

	config = json_of("{\"corral.notify_timeout\": \"100\"}");
	assert_int_equal(state_config_replace(&t->tx, config), 0);
	json_decref(config);
	assert_int_equal(state_config_get(&t->tx, &config), 0);
	assert_json(config, "{\"corral.notify_timeout\": \"100\"}");

	config = json_of("{\"a\": 1}");
	assert_int_equal(state_config_replace(&t->tx, config), CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg,
			    "config key a: value must be a string");
	json_decref(config);

	assert_int_equal(state_config_replace(&t->tx, NULL), 0);
	assert_int_equal(state_config_get(&t->tx, &config), 0);
	assert_json(config, "{}");
}

static void test_node_config(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *config;

	assert_int_equal(state_node_config_get(&t->tx, 1, &config), 0);
	assert_json(config, "{}");
	config = json_of("{\"core.https_address\": \"[::]:8443\"}");
	assert_int_equal(state_node_config_replace(&t->tx, 1, config), 0);
	json_decref(config);
	assert_int_equal(state_node_config_get(&t->tx, 1, &config), 0);
	assert_json(config, "{\"core.https_address\": \"[::]:8443\"}");

	/* Member-local: not in the cluster-wide config. */
	assert_int_equal(state_config_get(&t->tx, &config), 0);
	assert_json(config, "{}");

	assert_int_equal(state_node_config_get(&t->tx, 42, &config),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "cluster member 42 not found");
	config = json_object();
	assert_int_equal(state_node_config_replace(&t->tx, 42, config),
			 CORRAL_ENOTFOUND);
	assert_int_equal(state_node_config_replace(&t->tx, 1, config), 0);
	json_decref(config);
	assert_int_equal(state_node_config_get(&t->tx, 1, &config), 0);
	assert_json(config, "{}");
}

static void test_generations(void **state)
{
	struct test_sqlite_tx *t = *state;
	int64_t value;

	assert_int_equal(gen(t, "trust"), 0);
	assert_int_equal(gen(t, "projects"), 0);
	assert_int_equal(gen(t, "profiles"), 0);
	assert_int_equal(gen(t, "instances"), 0);
	assert_int_equal(state_generation_bump(&t->tx, "trust"), 0);
	assert_int_equal(state_generation_bump(&t->tx, "trust"), 0);
	assert_int_equal(gen(t, "trust"), 2);
	assert_int_equal(gen(t, "instances"), 0);
	assert_int_equal(state_generation_bump(&t->tx, "bogus"),
			 CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg, "unknown generation bogus");
	assert_int_equal(state_generation_get(&t->tx, "bogus", &value),
			 CORRAL_ENOTFOUND);
}

/* ------------------------------------------------------------------------ */

static void test_project_list_default(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *list;

	assert_int_equal(state_project_list(&t->tx, &list), 0);
	assert_json(list,
		    "[{\"name\": \"default\","
		    " \"description\": \"Default corral project\","
		    " \"config\": {\"features.images\": \"true\","
		    " \"features.profiles\": \"true\","
		    " \"features.storage.volumes\": \"true\","
		    " \"features.networks\": \"false\"},"
		    " \"used_by\": [\"/1.0/profiles/default\"]}]");
}

static void test_project_create(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *project;
	json_t *list;
	char buf[64];

	create_project(t,
		       "{\"name\": \"p1\", \"description\": \"one\","
		       " \"config\": {\"features.profiles\": \"true\"}}");
	assert_int_equal(gen(t, "projects"), 1);
	assert_int_equal(gen(t, "profiles"), 1);
	assert_int_equal(state_project_get(&t->tx, "p1", &project), 0);
	assert_json(project,
		    "{\"name\": \"p1\", \"description\": \"one\","
		    " \"config\": {\"features.profiles\": \"true\"},"
		    " \"used_by\": [\"/1.0/profiles/default?project=p1\"]}");

	/* Without its own profiles: uses those of `default`. */
	create_project(t,
		       "{\"name\": \"p2\", \"config\":"
		       " {\"features.profiles\": \"false\"}}");
	assert_int_equal(gen(t, "projects"), 2);
	assert_int_equal(gen(t, "profiles"), 1);
	assert_int_equal(state_project_get(&t->tx, "p2", &project), 0);
	assert_json(project,
		    "{\"name\": \"p2\", \"description\": \"\","
		    " \"config\": {\"features.profiles\": \"false\"},"
		    " \"used_by\": []}");

	assert_int_equal(state_profile_project(&t->tx, "p1", buf, sizeof buf),
			 0);
	assert_string_equal(buf, "p1");
	assert_int_equal(state_profile_project(&t->tx, "p2", buf, sizeof buf),
			 0);
	assert_string_equal(buf, "default");
	assert_int_equal(
	    state_profile_project(&t->tx, "default", buf, sizeof buf), 0);
	assert_string_equal(buf, "default");
	assert_int_equal(state_profile_project(&t->tx, "nope", buf, sizeof buf),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "project nope not found");

	/* Uniqueness and shape. */
	project = json_of("{\"name\": \"p1\"}");
	assert_int_equal(state_project_create(&t->tx, project), CORRAL_EEXIST);
	assert_string_equal(t->tx.errmsg, "project p1 already exists");
	json_decref(project);
	project = json_of("{\"name\": \"p9\", \"config\": {\"x\": true}}");
	assert_int_equal(state_project_create(&t->tx, project),
			 CORRAL_EINVALID);
	json_decref(project);
	assert_int_equal(gen(t, "projects"), 2);

	assert_int_equal(state_project_get(&t->tx, "nope", &project),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "project nope not found");

	assert_int_equal(state_project_list(&t->tx, &list), 0);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    "default");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 2), "name")),
	    "p2");
	json_decref(list);
}

static void test_project_update(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *config;
	json_t *project;
	json_t *names;

	create_project(t,
		       "{\"name\": \"p\", \"config\":"
		       " {\"features.profiles\": \"false\"}}");
	config =
	    json_of("{\"features.profiles\": \"true\", \"user.a\": \"b\"}");
	assert_int_equal(state_project_update(&t->tx, "p", "new", config), 0);
	json_decref(config);
	assert_int_equal(gen(t, "projects"), 2);
	assert_int_equal(gen(t, "profiles"), 1);
	assert_int_equal(state_project_get(&t->tx, "p", &project), 0);
	assert_json(project,
		    "{\"name\": \"p\", \"description\": \"new\","
		    " \"config\": {\"features.profiles\": \"true\","
		    " \"user.a\": \"b\"},"
		    " \"used_by\": [\"/1.0/profiles/default?project=p\"]}");

	/* Turning the feature off again drops the project's profile. */
	config = json_of("{\"features.profiles\": \"false\"}");
	assert_int_equal(state_project_update(&t->tx, "p", NULL, config), 0);
	json_decref(config);
	assert_int_equal(gen(t, "profiles"), 2);
	assert_int_equal(state_profile_names(&t->tx, "p", &names), 0);
	assert_json(names, "[]");

	/* The default project keeps its profiles whatever its config. */
	config = json_of("{\"features.profiles\": \"true\"}");
	assert_int_equal(state_project_update(&t->tx, "default", "d", config),
			 0);
	json_decref(config);
	assert_int_equal(state_profile_names(&t->tx, "default", &names), 0);
	assert_json(names, "[\"default\"]");

	assert_int_equal(state_project_update(&t->tx, "nope", "", NULL),
			 CORRAL_ENOTFOUND);
}

static void test_project_rename(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *project;
	char buf[64];

	create_project(t,
		       "{\"name\": \"a\", \"config\":"
		       " {\"features.profiles\": \"true\"}}");
	create_project(t, "{\"name\": \"b\"}");
	assert_int_equal(state_project_rename(&t->tx, "a", "b"), CORRAL_EEXIST);
	assert_string_equal(t->tx.errmsg, "project b already exists");
	assert_int_equal(state_project_rename(&t->tx, "default", "x"),
			 CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg,
			    "the 'default' project cannot be renamed");
	assert_int_equal(state_project_rename(&t->tx, "nope", "x"),
			 CORRAL_ENOTFOUND);
	assert_int_equal(gen(t, "projects"), 2);

	assert_int_equal(state_project_rename(&t->tx, "a", "c"), 0);
	assert_int_equal(gen(t, "projects"), 3);
	assert_int_equal(state_project_get(&t->tx, "a", &project),
			 CORRAL_ENOTFOUND);
	assert_int_equal(state_project_get(&t->tx, "c", &project), 0);
	assert_json(json_incref(json_object_get(project, "used_by")),
		    "[\"/1.0/profiles/default?project=c\"]");
	json_decref(project);
	assert_int_equal(state_profile_project(&t->tx, "c", buf, sizeof buf),
			 0);
	assert_string_equal(buf, "c");
}

static void test_project_delete(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *project;
	int64_t before;

	assert_int_equal(state_project_delete(&t->tx, "default"),
			 CORRAL_EFORBIDDEN);
	assert_string_equal(t->tx.errmsg,
			    "the 'default' project cannot be deleted");
	assert_int_equal(state_project_delete(&t->tx, "nope"),
			 CORRAL_ENOTFOUND);

	/* Nothing but its own default profile: removable. */
	create_project(t,
		       "{\"name\": \"empty\", \"config\":"
		       " {\"features.profiles\": \"true\"}}");
	before = gen(t, "projects");
	assert_int_equal(state_project_delete(&t->tx, "empty"), 0);
	assert_int_equal(gen(t, "projects"), before + 1);
	assert_int_equal(state_project_get(&t->tx, "empty", &project),
			 CORRAL_ENOTFOUND);

	/* Another profile: not empty. */
	create_project(t,
		       "{\"name\": \"full\", \"config\":"
		       " {\"features.profiles\": \"true\"}}");
	create_profile(t, "full", "{\"name\": \"web\"}");
	assert_int_equal(state_project_delete(&t->tx, "full"),
			 CORRAL_ECONFLICT);
	assert_string_equal(t->tx.errmsg, "only empty projects can be removed");
	assert_int_equal(state_profile_delete(&t->tx, "full", "web"), 0);
	assert_int_equal(state_project_delete(&t->tx, "full"), 0);

	/* An instance: not empty; shows in used_by. */
	create_project(t, "{\"name\": \"busy\"}");
	add_instance(t, "busy", "c1", NULL, NULL);
	assert_int_equal(state_project_get(&t->tx, "busy", &project), 0);
	assert_json(json_incref(json_object_get(project, "used_by")),
		    "[\"/1.0/instances/c1?project=busy\"]");
	json_decref(project);
	assert_int_equal(state_project_delete(&t->tx, "busy"),
			 CORRAL_ECONFLICT);

	/* A role binding on a deleted project goes too, and trust moves. */
	create_project(t, "{\"name\": \"bound\"}");
	raw(t,
	    "INSERT INTO identities"
	    " (fingerprint, type, name, certificate, created_at)"
	    " VALUES ('ab', 'client', 'alice', 'PEM', 0);"
	    "INSERT INTO role_bindings (identity_id, scope, project_id, role)"
	    " SELECT i.id, 'project', p.id, 'user' FROM identities i,"
	    " projects p WHERE p.name = 'bound'");
	before = gen(t, "trust");
	assert_int_equal(state_project_delete(&t->tx, "bound"), 0);
	assert_int_equal(gen(t, "trust"), before + 1);
}

/* ------------------------------------------------------------------------ */

static const char *web_profile =
    "{\"name\": \"web\", \"description\": \"Web servers\","
    " \"config\": {\"limits.cpu\": \"2\", \"security.nesting\": \"true\"},"
    " \"devices\": {\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\","
    " \"parent\": \"br0\"}, \"root\": {\"type\": \"disk\", \"path\": \"/\","
    " \"pool\": \"default\"}}}";

static void test_profile_crud(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *profile;
	json_t *list;
	json_t *config;
	json_t *devices;

	create_profile(t, "default", web_profile);
	assert_int_equal(gen(t, "profiles"), 1);
	assert_int_equal(state_profile_get(&t->tx, "default", "web", &profile),
			 0);
	assert_json(profile,
		    "{\"name\": \"web\", \"description\": \"Web servers\","
		    " \"config\": {\"limits.cpu\": \"2\","
		    " \"security.nesting\": \"true\"},"
		    " \"devices\": {\"eth0\": {\"type\": \"nic\","
		    " \"nictype\": \"bridged\", \"parent\": \"br0\"},"
		    " \"root\": {\"type\": \"disk\", \"path\": \"/\","
		    " \"pool\": \"default\"}}, \"used_by\": []}");

	create_profile(t, "default", "{\"name\": \"alpha\"}");
	assert_int_equal(state_profile_list(&t->tx, "default", &list), 0);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    "alpha");
	assert_json(json_incref(json_array_get(list, 0)),
		    "{\"name\": \"alpha\", \"description\": \"\","
		    " \"config\": {}, \"devices\": {}, \"used_by\": []}");
	assert_json(
	    json_incref(json_object_get(json_array_get(list, 2), "devices")),
	    "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\","
	    " \"parent\": \"br0\"}, \"root\": {\"type\": \"disk\","
	    " \"path\": \"/\", \"pool\": \"default\"}}");
	json_decref(list);
	assert_int_equal(state_profile_names(&t->tx, "default", &list), 0);
	assert_json(list, "[\"alpha\", \"default\", \"web\"]");

	/* The project lists its profiles. */
	assert_int_equal(state_project_get(&t->tx, "default", &profile), 0);
	assert_json(json_incref(json_object_get(profile, "used_by")),
		    "[\"/1.0/profiles/alpha\", \"/1.0/profiles/default\","
		    " \"/1.0/profiles/web\"]");
	json_decref(profile);

	/* Update replaces everything. */
	config = json_of("{\"limits.memory\": \"1GiB\"}");
	devices = json_of(
	    "{\"eth1\": {\"type\": \"nic\", \"network\":"
	    " \"corralbr0\"}}");
	assert_int_equal(state_profile_update(&t->tx, "default", "web",
					      "changed", config, devices),
			 0);
	json_decref(config);
	json_decref(devices);
	assert_int_equal(gen(t, "profiles"), 3);
	assert_int_equal(state_profile_get(&t->tx, "default", "web", &profile),
			 0);
	assert_json(profile,
		    "{\"name\": \"web\", \"description\": \"changed\","
		    " \"config\": {\"limits.memory\": \"1GiB\"},"
		    " \"devices\": {\"eth1\": {\"type\": \"nic\","
		    " \"network\": \"corralbr0\"}},"
		    " \"used_by\": []}");
	assert_int_equal(
	    state_profile_update(&t->tx, "default", "web", NULL, NULL, NULL),
	    0);
	assert_int_equal(state_profile_get(&t->tx, "default", "web", &profile),
			 0);
	assert_json(profile,
		    "{\"name\": \"web\", \"description\": \"\","
		    " \"config\": {}, \"devices\": {},"
		    " \"used_by\": []}");
	assert_int_equal(
	    state_profile_update(&t->tx, "default", "nope", NULL, NULL, NULL),
	    CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "profile nope not found");
}

static void test_profile_errors(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *profile;
	json_t *devices;
	int64_t before;

	create_profile(t, "default", web_profile);
	before = gen(t, "profiles");

	profile = json_of(web_profile);
	assert_int_equal(state_profile_create(&t->tx, "default", profile),
			 CORRAL_EEXIST);
	assert_string_equal(t->tx.errmsg,
			    "profile web already exists in project default");
	assert_int_equal(state_profile_create(&t->tx, "nope", profile),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "project nope not found");
	json_decref(profile);

	profile = json_of("{\"name\": \"x\", \"devices\": {\"d\": {}}}");
	assert_int_equal(state_profile_create(&t->tx, "default", profile),
			 CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg, "device d has no type");
	json_decref(profile);
	devices = json_of("{\"d\": {\"type\": \"disk\", \"size\": 5}}");
	assert_int_equal(
	    state_profile_update(&t->tx, "default", "web", NULL, NULL, devices),
	    CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg,
			    "device d key size: value must be a string");
	json_decref(devices);

	assert_int_equal(state_profile_get(&t->tx, "default", "x", &profile),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "profile x not found");
	assert_int_equal(state_profile_list(&t->tx, "nope", &profile),
			 CORRAL_ENOTFOUND);

	assert_int_equal(state_profile_delete(&t->tx, "default", "default"),
			 CORRAL_EFORBIDDEN);
	assert_string_equal(t->tx.errmsg,
			    "the 'default' profile cannot be deleted");
	assert_int_equal(
	    state_profile_rename(&t->tx, "default", "default", "other"),
	    CORRAL_EFORBIDDEN);
	assert_string_equal(t->tx.errmsg,
			    "the 'default' profile cannot be renamed");
	assert_int_equal(state_profile_delete(&t->tx, "default", "x"),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "profile x not found");
	assert_int_equal(gen(t, "profiles"), before);
}

static void test_profile_rename_delete(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *profile;
	json_t *names;

	create_profile(t, "default", web_profile);
	create_profile(t, "default", "{\"name\": \"db\"}");
	assert_int_equal(state_profile_rename(&t->tx, "default", "web", "db"),
			 CORRAL_EEXIST);
	assert_string_equal(t->tx.errmsg,
			    "profile db already exists in project default");
	assert_int_equal(state_profile_rename(&t->tx, "default", "x", "y"),
			 CORRAL_ENOTFOUND);
	assert_int_equal(state_profile_rename(&t->tx, "default", "web", "www"),
			 0);
	assert_int_equal(gen(t, "profiles"), 3);
	assert_int_equal(state_profile_get(&t->tx, "default", "www", &profile),
			 0);
	/* Config and devices move with it. */
	assert_int_equal(json_object_size(json_object_get(profile, "devices")),
			 2);
	json_decref(profile);

	assert_int_equal(state_profile_delete(&t->tx, "default", "www"), 0);
	assert_int_equal(gen(t, "profiles"), 4);
	assert_int_equal(state_profile_names(&t->tx, "default", &names), 0);
	assert_json(names, "[\"db\", \"default\"]");
}

static void test_profile_used_by(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *profile;

	create_profile(t, "default", web_profile);
	create_project(t, "{\"name\": \"p2\"}");
	add_instance(t, "default", "c0", "default", "web");
	add_instance(t, "p2", "c1", "default", "web");
	assert_int_equal(state_profile_get(&t->tx, "default", "web", &profile),
			 0);
	assert_json(json_incref(json_object_get(profile, "used_by")),
		    "[\"/1.0/instances/c0\","
		    " \"/1.0/instances/c1?project=p2\"]");
	json_decref(profile);
	assert_int_equal(state_profile_delete(&t->tx, "default", "web"),
			 CORRAL_ECONFLICT);
	assert_string_equal(t->tx.errmsg, "profile web is currently in use");
}

/* 3000 profiles with config and devices: listed with a handful of queries,
 * well under a second. */
static void test_profile_list_many(void **state)
{
	struct test_sqlite_tx *t = *state;
	struct timespec start;
	struct timespec end;
	json_t *list;
	json_t *profile;
	double elapsed;
	char name[32];
	int i;

	raw(t, "BEGIN");
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "p%04d", i);
		profile = json_of(web_profile);
		json_object_set_new(profile, "name", json_string(name));
		assert_int_equal(
		    state_profile_create(&t->tx, "default", profile), 0);
		json_decref(profile);
	}
	raw(t, "COMMIT");
	assert_int_equal(gen(t, "profiles"), 3000);

	clock_gettime(CLOCK_MONOTONIC, &start);
	assert_int_equal(state_profile_list(&t->tx, "default", &list), 0);
	clock_gettime(CLOCK_MONOTONIC, &end);
	elapsed = (double)(end.tv_sec - start.tv_sec) +
		  (double)(end.tv_nsec - start.tv_nsec) / 1e9;
	assert_int_equal(json_array_size(list), 3001);
	profile = json_array_get(list, 3000);
	assert_string_equal(json_string_value(json_object_get(profile, "name")),
			    "p2999");
	assert_int_equal(json_object_size(json_object_get(profile, "config")),
			 2);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(profile, "devices"), "eth0"),
		"parent")),
	    "br0");
	json_decref(list);
	print_message("listed 3001 profiles in %.3f s\n", elapsed);
	assert_true(elapsed < 0.5);

	assert_int_equal(state_profile_names(&t->tx, "default", &list), 0);
	assert_int_equal(json_array_size(list), 3001);
	json_decref(list);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_config),
		T(test_node_config),
		T(test_generations),
		T(test_project_list_default),
		T(test_project_create),
		T(test_project_update),
		T(test_project_rename),
		T(test_project_delete),
		T(test_profile_crud),
		T(test_profile_errors),
		T(test_profile_rename_delete),
		T(test_profile_used_by),
		T(test_profile_list_many),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
