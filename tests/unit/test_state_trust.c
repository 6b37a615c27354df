/* Unit tests of the trust store of state/ (identities, role bindings,
 * tokens) over an in-memory SQLite database. */
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

#include <corral/cert.h>
#include <corral/err.h>
#include <corral/state.h>

#include "sqlite_tx.h"

/* Certificates generated once for the whole run. */
#define N_CERTS 3
static char *certs[N_CERTS];
static char fps[N_CERTS][65];

static int group_setup(void **state)
{
	char *key;
	int i;

	(void)state;
	for (i = 0; i < N_CERTS; i++) {
		if (cert_generate_pem("trust-test", &certs[i], &key, NULL) !=
		    0) {
			return -1;
		}
		free(key);
		if (cert_fingerprint_pem(certs[i], strlen(certs[i]), fps[i]) !=
		    0) {
			return -1;
		}
	}
	return 0;
}

static int group_teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < N_CERTS; i++) {
		free(certs[i]);
	}
	return 0;
}

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

static int64_t count(struct test_sqlite_tx *t, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t n;

	assert_int_equal(sqlite3_prepare_v2(t->db, sql, -1, &stmt, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return n;
}

static int64_t gen(struct test_sqlite_tx *t)
{
	int64_t value = -1;

	assert_int_equal(state_generation_get(&t->tx, "trust", &value), 0);
	return value;
}

static json_t *json_of(const char *text)
{
	json_t *value = json_loads(text, 0, NULL);

	assert_non_null(value);
	return value;
}

/* Assert that @actual equals the JSON text @expected; consumes @actual. */
static void assert_json(json_t *actual, const char *expected)
{
	json_t *want = json_of(expected);

	if (!json_equal(actual, want)) {
		char *got = json_dumps(actual, JSON_SORT_KEYS);

		fail_msg("got %s, want %s", got, expected);
	}
	json_decref(want);
	json_decref(actual);
}

/* Create identity @i (certs[i]) named @name with the roles in JSON text
 * @roles; returns the code. */
static int create(struct test_sqlite_tx *t,
		  int i,
		  const char *name,
		  const char *roles)
{
	json_t *identity;
	int rv;

	identity =
	    json_pack("{s:s, s:s, s:s, s:o}", "type", "client", "name", name,
		      "certificate", certs[i], "roles", json_of(roles));
	assert_non_null(identity);
	rv = state_identity_create(&t->tx, identity);
	json_decref(identity);
	return rv;
}

static json_t *roles_of(struct test_sqlite_tx *t, const char *fp)
{
	json_t *identity;
	json_t *roles;

	assert_int_equal(state_identity_get(&t->tx, fp, &identity), 0);
	roles = json_incref(json_object_get(identity, "roles"));
	json_decref(identity);
	return roles;
}

static void create_project(struct test_sqlite_tx *t, const char *name)
{
	json_t *project = json_pack("{s:s}", "name", name);

	assert_int_equal(state_project_create(&t->tx, project), 0);
	json_decref(project);
}

/* ------------------------------------------------------------------------ */

static void test_crud(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *identity;
	json_t *list;
	json_t *fields;
	const char *created;

	assert_int_equal(gen(t), 0);
	assert_int_equal(create(t, 0, "alice",
				"[{\"scope\": \"server\","
				" \"role\": \"admin\"}]"),
			 0);
	assert_int_equal(gen(t), 1);

	assert_int_equal(state_identity_get(&t->tx, fps[0], &identity), 0);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "fingerprint")),
	    fps[0]);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "certificate")),
	    certs[0]);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "type")), "client");
	assert_string_equal(
	    json_string_value(json_object_get(identity, "description")), "");
	created = json_string_value(json_object_get(identity, "created_at"));
	assert_non_null(created);
	assert_int_equal(strlen(created), 20);
	assert_int_equal(created[19], 'Z');
	assert_json(json_incref(json_object_get(identity, "roles")),
		    "[{\"scope\": \"server\", \"role\": \"admin\"}]");
	json_decref(identity);

	/* Duplicate. */
	assert_int_equal(create(t, 0, "again", "[]"), CORRAL_EEXIST);
	assert_string_equal(t->tx.errmsg, "certificate already in trust store");
	assert_int_equal(gen(t), 1);

	/* A fingerprint that does not match the certificate. */
	identity =
	    json_pack("{s:s, s:s, s:s, s:s}", "type", "client", "name", "x",
		      "certificate", certs[1], "fingerprint", fps[0]);
	assert_int_equal(state_identity_create(&t->tx, identity),
			 CORRAL_EINVALID);
	json_decref(identity);

	/* Bad type, bad certificate. */
	identity = json_pack("{s:s, s:s, s:s}", "type", "admin", "name", "x",
			     "certificate", certs[1]);
	assert_int_equal(state_identity_create(&t->tx, identity),
			 CORRAL_EINVALID);
	json_decref(identity);
	identity = json_pack("{s:s, s:s, s:s}", "type", "client", "name", "x",
			     "certificate", "not a certificate");
	assert_int_equal(state_identity_create(&t->tx, identity),
			 CORRAL_EINVALID);
	json_decref(identity);

	assert_int_equal(create(t, 1, "bob", "[]"), 0);
	assert_int_equal(state_identity_list(&t->tx, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    "alice");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 1), "name")),
	    "bob");
	assert_json(
	    json_incref(json_object_get(json_array_get(list, 1), "roles")),
	    "[]");
	json_decref(list);

	/* Update name and description only: roles are kept. */
	fields = json_of("{\"name\": \"alice2\", \"description\": \"d\"}");
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields), 0);
	json_decref(fields);
	assert_int_equal(state_identity_get(&t->tx, fps[0], &identity), 0);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "name")), "alice2");
	assert_string_equal(
	    json_string_value(json_object_get(identity, "description")), "d");
	assert_json(json_incref(json_object_get(identity, "roles")),
		    "[{\"scope\": \"server\", \"role\": \"admin\"}]");
	json_decref(identity);
	assert_int_equal(gen(t), 3);

	fields = json_of("{\"type\": \"root\"}");
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields),
			 CORRAL_EINVALID);
	json_decref(fields);
	fields = json_of("{\"name\": 7}");
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields),
			 CORRAL_EINVALID);
	json_decref(fields);
	fields = json_of("{\"type\": \"metrics\"}");
	assert_int_equal(state_identity_update(&t->tx, fps[2], fields),
			 CORRAL_ENOTFOUND);
	json_decref(fields);

	/* Delete: bindings go too. */
	assert_int_equal(state_identity_delete(&t->tx, fps[0]), 0);
	assert_int_equal(gen(t), 4);
	assert_int_equal(state_identity_get(&t->tx, fps[0], &identity),
			 CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg, "certificate not found");
	assert_int_equal(state_identity_delete(&t->tx, fps[0]),
			 CORRAL_ENOTFOUND);
	assert_int_equal(count(t, "SELECT count(*) FROM role_bindings"), 0);
	assert_int_equal(gen(t), 4);
}

static void test_certificate_change(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *identity;
	json_t *fields;

	assert_int_equal(create(t, 0, "a",
				"[{\"scope\": \"server\","
				" \"role\": \"auditor\"}]"),
			 0);
	assert_int_equal(create(t, 1, "b", "[]"), 0);

	/* Taken by b. */
	fields = json_pack("{s:s}", "certificate", certs[1]);
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields),
			 CORRAL_EEXIST);
	json_decref(fields);

	/* Renewal: a new fingerprint, same identity and roles. */
	fields = json_pack("{s:s}", "certificate", certs[2]);
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields), 0);
	json_decref(fields);
	assert_int_equal(state_identity_get(&t->tx, fps[0], &identity),
			 CORRAL_ENOTFOUND);
	assert_int_equal(state_identity_get(&t->tx, fps[2], &identity), 0);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "name")), "a");
	assert_json(json_incref(json_object_get(identity, "roles")),
		    "[{\"scope\": \"server\", \"role\": \"auditor\"}]");
	json_decref(identity);

	/* The same certificate again is not a conflict with itself. */
	fields = json_pack("{s:s}", "certificate", certs[2]);
	assert_int_equal(state_identity_update(&t->tx, fps[2], fields), 0);
	json_decref(fields);
}

static void test_prefix(void **state)
{
	struct test_sqlite_tx *t = *state;
	char upper[65];
	json_t *identity;
	size_t i;

	assert_int_equal(create(t, 0, "a", "[]"), 0);

	/* A unique prefix of one digit, in either case. */
	assert_int_equal(state_identity_get(&t->tx, "", &identity),
			 CORRAL_ENOTFOUND);
	snprintf(upper, sizeof upper, "%.1s", fps[0]);
	assert_int_equal(state_identity_get(&t->tx, upper, &identity), 0);
	json_decref(identity);
	for (i = 0; i < 12; i++) {
		upper[i] =
		    (char)(fps[0][i] >= 'a' ? fps[0][i] - 32 : fps[0][i]);
	}
	upper[12] = '\0';
	assert_int_equal(state_identity_get(&t->tx, upper, &identity), 0);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "fingerprint")),
	    fps[0]);
	json_decref(identity);

	/* Not hex, too long. */
	assert_int_equal(state_identity_get(&t->tx, "xyz", &identity),
			 CORRAL_ENOTFOUND);
	snprintf(upper, sizeof upper, "%s", fps[0]);
	assert_int_equal(state_identity_delete(&t->tx, "%"), CORRAL_ENOTFOUND);

	/* Two identities sharing a prefix. */
	raw(t,
	    "INSERT INTO identities (fingerprint, type, name, certificate,"
	    " created_at) VALUES"
	    " ('ab12000000000000000000000000000000000000000000000000000000000000',"
	    " 'client', 'x', 'pem', 0),"
	    " ('ab34000000000000000000000000000000000000000000000000000000000000',"
	    " 'client', 'y', 'pem', 0)");
	assert_int_equal(state_identity_get(&t->tx, "ab", &identity),
			 CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg,
			    "certificate fingerprint prefix is ambiguous");
	assert_int_equal(state_identity_delete(&t->tx, "ab"), CORRAL_EINVALID);
	assert_int_equal(state_identity_get(&t->tx, "ab3", &identity), 0);
	assert_string_equal(
	    json_string_value(json_object_get(identity, "name")), "y");
	json_decref(identity);
	assert_int_equal(state_identity_get(&t->tx, "ab5", &identity),
			 CORRAL_ENOTFOUND);
	assert_int_equal(state_identity_delete(&t->tx, "ab1"), 0);
	assert_int_equal(state_identity_get(&t->tx, "ab", &identity), 0);
	json_decref(identity);
}

static void test_roles(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *fields;
	int64_t g;

	create_project(t, "p1");
	create_project(t, "p2");
	assert_int_equal(
	    create(t, 0, "a",
		   "[{\"scope\": \"project\", \"project\": \"p2\","
		   "  \"role\": \"user\"},"
		   " {\"scope\": \"project\", \"project\": \"p1\","
		   "  \"role\": \"operator\"},"
		   " {\"scope\": \"all_projects\", \"role\": \"auditor\"},"
		   " {\"scope\": \"server\", \"role\": \"auditor\"}]"),
	    0);
	assert_json(roles_of(t, fps[0]),
		    "[{\"scope\": \"server\", \"role\": \"auditor\"},"
		    " {\"scope\": \"all_projects\", \"role\": \"auditor\"},"
		    " {\"scope\": \"project\", \"project\": \"p1\","
		    "  \"role\": \"operator\"},"
		    " {\"scope\": \"project\", \"project\": \"p2\","
		    "  \"role\": \"user\"}]");

	/* Replace. */
	fields = json_of(
	    "{\"roles\": [{\"scope\": \"project\", \"project\": \"default\","
	    " \"role\": \"admin\"}]}");
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields), 0);
	json_decref(fields);
	assert_json(roles_of(t, fps[0]),
		    "[{\"scope\": \"project\", \"project\": \"default\","
		    "  \"role\": \"admin\"}]");

	/* Unknown project: refused, nothing changed. */
	g = gen(t);
	fields = json_of(
	    "{\"name\": \"renamed\", \"roles\": [{\"scope\": \"project\","
	    " \"project\": \"nope\", \"role\": \"user\"}]}");
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields),
			 CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg, "project \"nope\" not found");
	json_decref(fields);
	assert_int_equal(gen(t), g);
	assert_json(roles_of(t, fps[0]),
		    "[{\"scope\": \"project\", \"project\": \"default\","
		    "  \"role\": \"admin\"}]");
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"project\", \"project\":"
				" \"nope\", \"role\": \"user\"}]"),
			 CORRAL_EINVALID);
	assert_string_equal(t->tx.errmsg, "project \"nope\" not found");
	assert_int_equal(count(t, "SELECT count(*) FROM identities"), 1);

	/* Malformed bindings. */
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"project\","
				" \"role\": \"user\"}]"),
			 CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"server\","
				" \"project\": \"p1\","
				" \"role\": \"user\"}]"),
			 CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"galaxy\","
				" \"role\": \"user\"}]"),
			 CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"server\","
				" \"role\": \"root\"}]"),
			 CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b", "[\"admin\"]"), CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b", "{}"), CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"project\", \"project\": \"p1\","
				"  \"role\": \"user\"},"
				" {\"scope\": \"project\", \"project\": \"p1\","
				"  \"role\": \"admin\"}]"),
			 CORRAL_EINVALID);
	assert_int_equal(create(t, 1, "b",
				"[{\"scope\": \"server\", \"role\": \"user\"},"
				" {\"scope\": \"server\", \"role\": "
				"\"admin\"}]"),
			 CORRAL_EINVALID);
	assert_int_equal(count(t, "SELECT count(*) FROM identities"), 1);

	/* roles: [] clears, null too. */
	fields = json_of("{\"roles\": null}");
	assert_int_equal(state_identity_update(&t->tx, fps[0], fields), 0);
	json_decref(fields);
	assert_json(roles_of(t, fps[0]), "[]");
}

static void test_project_cascade(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *identities;
	int64_t g;
	int64_t g2;

	create_project(t, "p1");
	create_project(t, "p2");
	assert_int_equal(create(t, 0, "a",
				"[{\"scope\": \"project\", \"project\": \"p1\","
				"  \"role\": \"operator\"},"
				" {\"scope\": \"project\", \"project\": \"p2\","
				"  \"role\": \"user\"}]"),
			 0);

	/* Renaming a bound project changes what the cache shows. */
	g = gen(t);
	assert_int_equal(state_project_rename(&t->tx, "p2", "p3"), 0);
	assert_true(gen(t) > g);
	assert_json(roles_of(t, fps[0]),
		    "[{\"scope\": \"project\", \"project\": \"p1\","
		    "  \"role\": \"operator\"},"
		    " {\"scope\": \"project\", \"project\": \"p3\","
		    "  \"role\": \"user\"}]");

	g = gen(t);
	assert_int_equal(state_project_delete(&t->tx, "p1"), 0);
	assert_true(gen(t) > g);
	assert_json(roles_of(t, fps[0]),
		    "[{\"scope\": \"project\", \"project\": \"p3\","
		    "  \"role\": \"user\"}]");

	assert_int_equal(state_trust_snapshot(&t->tx, &identities, &g2), 0);
	assert_int_equal(g2, gen(t));
	assert_int_equal(json_array_size(identities), 1);
	json_decref(identities);

	assert_int_equal(state_trust_project_names(&t->tx, &identities), 0);
	assert_json(identities, "[\"default\", \"p3\"]");
}

static void test_snapshot_empty(void **state)
{
	struct test_sqlite_tx *t = *state;
	json_t *identities;
	int64_t g = -1;

	assert_int_equal(state_trust_snapshot(&t->tx, &identities, &g), 0);
	assert_int_equal(g, 0);
	assert_json(identities, "[]");
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                     */

#define HASH_A \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C \
	"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define HASH_D \
	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define HASH_E \
	"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static void test_tokens(void **state)
{
	struct test_sqlite_tx *t = *state;
	int64_t now = (int64_t)time(NULL);
	json_t *data = json_of("{\"roles\": [], \"type\": \"client\"}");
	json_t *token;
	json_t *list;
	int64_t id_a;
	int64_t id_b;
	int64_t id_c;

	assert_int_equal(state_token_create(&t->tx, "trust", HASH_A, "alice",
					    data, now + 3600, &id_a),
			 0);
	assert_int_equal(
	    state_token_create(&t->tx, "trust", HASH_B, "bob", NULL, 0, &id_b),
	    0);
	assert_int_equal(state_token_create(&t->tx, "join", HASH_C, "m2", NULL,
					    now + 60, &id_c),
			 0);
	/* Same secret twice, bad hash, bad kind. */
	assert_int_equal(
	    state_token_create(&t->tx, "trust", HASH_A, "x", NULL, 0, NULL),
	    CORRAL_EDBFAIL);
	assert_int_equal(
	    state_token_create(&t->tx, "trust", "ABC", "x", NULL, 0, NULL),
	    CORRAL_EINVALID);
	assert_int_equal(
	    state_token_create(&t->tx, "other", HASH_A, "x", NULL, 0, NULL),
	    CORRAL_EINVALID);
	json_decref(data);
	/* Tokens are not part of the trust generation. */
	assert_int_equal(gen(t), 0);

	assert_int_equal(state_token_list(&t->tx, "trust", &list), 0);
	assert_int_equal(json_array_size(list), 2);
	token = json_array_get(list, 0);
	assert_int_equal(json_integer_value(json_object_get(token, "id")),
			 id_a);
	assert_string_equal(json_string_value(json_object_get(token, "name")),
			    "alice");
	assert_int_equal(
	    json_integer_value(json_object_get(token, "expires_at")),
	    now + 3600);
	assert_json(json_incref(json_object_get(token, "data")),
		    "{\"roles\": [], \"type\": \"client\"}");
	assert_true(json_is_null(
	    json_object_get(json_array_get(list, 1), "expires_at")));
	assert_null(json_object_get(token, "secret_hash"));
	json_decref(list);

	/* Wrong kind. */
	assert_int_equal(
	    state_token_redeem(&t->tx, "join", HASH_A, now, &token),
	    CORRAL_ENOTFOUND);
	/* Expired at that time. */
	assert_int_equal(
	    state_token_redeem(&t->tx, "trust", HASH_A, now + 3600, &token),
	    CORRAL_ENOTFOUND);
	assert_string_equal(t->tx.errmsg,
			    "token not found, already used or expired");

	/* Exactly once. */
	assert_int_equal(
	    state_token_redeem(&t->tx, "trust", HASH_A, now, &token), 0);
	assert_int_equal(json_integer_value(json_object_get(token, "id")),
			 id_a);
	assert_string_equal(json_string_value(json_object_get(token, "name")),
			    "alice");
	assert_json(json_incref(json_object_get(token, "data")),
		    "{\"roles\": [], \"type\": \"client\"}");
	json_decref(token);
	assert_int_equal(
	    state_token_redeem(&t->tx, "trust", HASH_A, now, &token),
	    CORRAL_ENOTFOUND);

	/* A used token leaves the list. */
	assert_int_equal(state_token_list(&t->tx, "trust", &list), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(list, 0), "id")),
	    id_b);
	json_decref(list);

	/* Revoke. */
	assert_int_equal(state_token_delete(&t->tx, id_b), 0);
	assert_int_equal(state_token_delete(&t->tx, id_b), CORRAL_ENOTFOUND);
	assert_int_equal(
	    state_token_redeem(&t->tx, "trust", HASH_B, now, &token),
	    CORRAL_ENOTFOUND);

	/* Revoke by secret hash. */
	assert_int_equal(state_token_revoke(&t->tx, "trust", HASH_A), 0);
	assert_int_equal(state_token_revoke(&t->tx, "trust", HASH_A),
			 CORRAL_ENOTFOUND);
	assert_int_equal(state_token_revoke(&t->tx, "trust", HASH_C),
			 CORRAL_ENOTFOUND);

	/* An expired token is not listed. */
	raw(t, "UPDATE tokens SET expires_at = 1 WHERE kind = 'join'");
	assert_int_equal(state_token_list(&t->tx, "join", &list), 0);
	assert_json(list, "[]");
	(void)id_c;
}

/* Tokens name the operation and the run that issued them: a restart
 * deletes a node's tokens of earlier runs, and any member revokes a token
 * by its operation id. */
static void test_token_owners(void **state)
{
	struct test_sqlite_tx *t = *state;
	int64_t now = (int64_t)time(NULL);
	json_t *mine_old = json_of(
	    "{\"operation\": \"op-1\", \"member\": "
	    "\"m1\", \"node_id\": 1, \"boot\": \"b0\"}");
	json_t *mine_new = json_of(
	    "{\"operation\": \"op-2\", \"member\": "
	    "\"m1\", \"node_id\": 1, \"boot\": \"b1\"}");
	json_t *theirs = json_of(
	    "{\"operation\": \"op-3\", \"member\": "
	    "\"m2\", \"node_id\": 2, \"boot\": \"b0\"}");
	json_t *legacy = json_of("{\"type\": \"client\"}");
	json_t *token = NULL;
	json_t *list;
	int64_t deleted = -1;

	assert_int_equal(state_token_create(&t->tx, "join", HASH_A, "x",
					    mine_old, now + 60, NULL),
			 0);
	assert_int_equal(state_token_create(&t->tx, "trust", HASH_B, "y",
					    mine_new, now + 60, NULL),
			 0);
	assert_int_equal(state_token_create(&t->tx, "join", HASH_C, "z", theirs,
					    now + 60, NULL),
			 0);
	assert_int_equal(
	    state_token_create(&t->tx, "trust", HASH_D, "w", legacy, 0, NULL),
	    0);
	raw(t,
	    "INSERT INTO tokens (kind, secret_hash, name, data, created_at)"
	    " VALUES ('trust', '" HASH_E "', 'bad', 'not json', 0)");

	assert_int_equal(state_token_prune(&t->tx, 1, "", NULL),
			 CORRAL_EINVALID);
	/* Node 1 restarted as boot b1: its b0 token goes, and so do the
	 * ones that name no run (legacy, not JSON); node 2's stays. */
	assert_int_equal(state_token_prune(&t->tx, 1, "b1", &deleted), 0);
	assert_int_equal(deleted, 3);
	assert_int_equal(state_token_list(&t->tx, "trust", &list), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(list, 0), "name")),
	    "y");
	json_decref(list);
	assert_int_equal(state_token_list(&t->tx, "join", &list), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);

	/* Revoke by operation id, whatever the kind. */
	assert_int_equal(
	    state_token_revoke_operation(&t->tx, "op-3", now, &token), 0);
	assert_string_equal(json_string_value(json_object_get(token, "kind")),
			    "join");
	assert_string_equal(json_string_value(json_object_get(token, "name")),
			    "z");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(token, "data"), "member")),
			    "m2");
	json_decref(token);
	assert_int_equal(
	    state_token_redeem(&t->tx, "join", HASH_C, now, &token),
	    CORRAL_ENOTFOUND);
	assert_int_equal(
	    state_token_revoke_operation(&t->tx, "op-3", now, NULL),
	    CORRAL_ENOTFOUND);
	assert_int_equal(state_token_revoke_operation(&t->tx, "", now, NULL),
			 CORRAL_EINVALID);
	/* A used token is not revoked (nor an expired one). */
	assert_int_equal(
	    state_token_redeem(&t->tx, "trust", HASH_B, now, &token), 0);
	json_decref(token);
	assert_int_equal(
	    state_token_revoke_operation(&t->tx, "op-2", now, NULL),
	    CORRAL_ENOTFOUND);

	/* A standalone daemon (node 0: any) deletes every earlier run's
	 * unused token; the used one stays. */
	assert_int_equal(state_token_create(&t->tx, "join", HASH_C, "v", theirs,
					    now + 60, NULL),
			 0);
	assert_int_equal(state_token_prune(&t->tx, 0, "b2", &deleted), 0);
	assert_int_equal(deleted, 1);
	assert_int_equal(state_token_prune(&t->tx, 0, "b2", &deleted), 0);
	assert_int_equal(deleted, 0);
	assert_int_equal(
	    state_token_redeem(&t->tx, "trust", HASH_B, now, &token),
	    CORRAL_ENOTFOUND);
	json_decref(mine_old);
	json_decref(mine_new);
	json_decref(theirs);
	json_decref(legacy);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_crud),
		T(test_certificate_change),
		T(test_prefix),
		T(test_roles),
		T(test_project_cascade),
		T(test_snapshot_empty),
		T(test_tokens),
		T(test_token_owners),
	};
#undef T

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
