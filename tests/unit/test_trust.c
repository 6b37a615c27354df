/* Unit tests of api/trust.c: the trust cache, the LXD 5.0 projection of
 * role bindings, and the failed-password limiter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <corral/err.h>

#include "trust.h"

static json_t *json_of(const char *text)
{
	json_error_t err;
	json_t *value = json_loads(text, 0, &err);

	if (value == NULL) {
		fail_msg("bad JSON %s: %s", text, err.text);
	}
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

static void fp_of(char out[65], unsigned i)
{
	snprintf(out, 65, "%064x", i);
}

/* ------------------------------------------------------------------------ */
/* Cache                                                                      */

static json_t *identities(unsigned n)
{
	json_t *list = json_array();
	unsigned i;

	for (i = 0; i < n; i++) {
		char fp[65];
		char name[32];

		fp_of(fp, i);
		snprintf(name, sizeof name, "id%u", i);
		json_array_append_new(
		    list,
		    json_pack(
			"{s:s, s:s, s:s, s:o}", "fingerprint", fp, "type",
			i == 0 ? "server" : "client", "name", name, "roles",
			i % 2 == 0 ? json_of("[{\"scope\": \"server\","
					     " \"role\": \"admin\"}]")
				   : json_of("[{\"scope\": \"project\","
					     " \"project\": \"p\","
					     " \"role\": \"operator\"}]")));
	}
	return list;
}

static void test_cache(void **state)
{
	struct trust_cache *c;
	const struct trust_identity *e;
	char errmsg[CORRAL_ERRMSG_SIZE];
	char fp[65];
	json_t *list;
	unsigned i;

	(void)state;
	assert_int_equal(trust_cache_create(&c), 0);
	assert_int_equal(trust_cache_generation(c), -1);
	assert_int_equal(trust_cache_size(c), 0);
	fp_of(fp, 1);
	assert_null(trust_cache_lookup(c, fp));
	assert_non_null(trust_cache_limiter(c));

	list = identities(1000);
	assert_int_equal(trust_cache_replace(c, list, 7, errmsg), 0);
	json_decref(list);
	assert_int_equal(trust_cache_generation(c), 7);
	assert_int_equal(trust_cache_size(c), 1000);
	for (i = 0; i < 1000; i++) {
		fp_of(fp, i);
		e = trust_cache_lookup(c, fp);
		assert_non_null(e);
		assert_string_equal(e->fingerprint, fp);
		assert_int_equal(e->server_admin, i % 2 == 0);
		assert_string_equal(e->type, i == 0 ? "server" : "client");
		assert_int_equal(json_array_size(e->roles), 1);
	}
	fp_of(fp, 1000);
	assert_null(trust_cache_lookup(c, fp));
	assert_null(trust_cache_lookup(c, "00"));

	/* A bad snapshot leaves the content alone. */
	list = json_of("[{\"fingerprint\": \"short\"}]");
	assert_int_equal(trust_cache_replace(c, list, 8, errmsg), -EINVAL);
	assert_string_equal(errmsg, "identity 0 has no valid fingerprint");
	json_decref(list);
	list = json_of("{}");
	assert_int_equal(trust_cache_replace(c, list, 8, NULL), -EINVAL);
	json_decref(list);
	assert_int_equal(trust_cache_generation(c), 7);
	fp_of(fp, 3);
	assert_non_null(trust_cache_lookup(c, fp));

	/* Replace with a smaller set. */
	list = identities(2);
	assert_int_equal(trust_cache_replace(c, list, 9, NULL), 0);
	json_decref(list);
	assert_int_equal(trust_cache_size(c), 2);
	assert_null(trust_cache_lookup(c, fp));
	fp_of(fp, 1);
	e = trust_cache_lookup(c, fp);
	assert_non_null(e);
	assert_string_equal(e->name, "id1");
	assert_false(e->server_admin);

	list = json_array();
	assert_int_equal(trust_cache_replace(c, list, 10, NULL), 0);
	json_decref(list);
	assert_null(trust_cache_lookup(c, fp));

	trust_cache_destroy(c);
	trust_cache_destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* Projection                                                                 */

static void legacy(const char *roles,
		   const char *all,
		   bool want_restricted,
		   const char *want_projects)
{
	json_t *r = json_of(roles);
	json_t *a = all != NULL ? json_of(all) : NULL;
	json_t *projects;
	bool restricted;

	assert_int_equal(trust_roles_to_legacy(r, a, &restricted, &projects),
			 0);
	assert_int_equal(restricted, want_restricted);
	assert_json(projects, want_projects);
	json_decref(r);
	json_decref(a);
}

static void test_to_legacy(void **state)
{
	bool restricted;
	json_t *projects;
	json_t *bad;

	(void)state;
	legacy("[]", NULL, true, "[]");
	legacy("[{\"scope\": \"server\", \"role\": \"admin\"}]", NULL, false,
	       "[]");
	legacy("[{\"scope\": \"server\", \"role\": \"auditor\"}]", NULL, true,
	       "[]");
	legacy(
	    "[{\"scope\": \"project\", \"project\": \"b\","
	    "  \"role\": \"operator\"},"
	    " {\"scope\": \"project\", \"project\": \"a\","
	    "  \"role\": \"auditor\"}]",
	    "[\"a\", \"b\", \"c\"]", true, "[\"a\", \"b\"]");
	legacy(
	    "[{\"scope\": \"all_projects\", \"role\": \"user\"},"
	    " {\"scope\": \"project\", \"project\": \"b\","
	    "  \"role\": \"operator\"}]",
	    "[\"c\", \"a\", \"b\"]", true, "[\"a\", \"b\", \"c\"]");
	legacy(
	    "[{\"scope\": \"all_projects\", \"role\": \"user\"},"
	    " {\"scope\": \"server\", \"role\": \"admin\"}]",
	    NULL, false, "[]");

	bad = json_of("{}");
	assert_int_equal(
	    trust_roles_to_legacy(bad, NULL, &restricted, &projects), -EINVAL);
	json_decref(bad);
}

/* Apply (@restricted, @projects) (JSON text, NULL: absent) to @current;
 * returns the code and checks the result against @want when 0. */
static int apply(const char *current,
		 const char *restricted,
		 const char *projects,
		 const char *want,
		 char *errmsg)
{
	json_t *cur = json_of(current);
	json_t *all = json_of("[\"a\", \"b\", \"c\", \"default\"]");
	json_t *r = restricted != NULL
			? json_loads(restricted, JSON_DECODE_ANY, NULL)
			: NULL;
	json_t *p = projects != NULL
			? json_loads(projects, JSON_DECODE_ANY, NULL)
			: NULL;
	json_t *out = NULL;
	int rv;

	rv = trust_legacy_apply(cur, all, r, p, &out, errmsg);
	if (rv == 0) {
		assert_json(out, want);
	} else {
		assert_null(out);
	}
	json_decref(cur);
	json_decref(all);
	json_decref(r);
	json_decref(p);
	return rv;
}

#define ADMIN "{\"scope\": \"server\", \"role\": \"admin\"}"
#define OP(p)                                        \
	"{\"scope\": \"project\", \"project\": \"" p \
	"\", \"role\": \"operator\"}"
#define AUD(p)                                       \
	"{\"scope\": \"project\", \"project\": \"" p \
	"\", \"role\": \"auditor\"}"

static void test_legacy_apply(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE];

	(void)state;
	/* Nothing given: unchanged (sorted). */
	assert_int_equal(apply("[" OP("b") ", " ADMIN "]", NULL, NULL,
			       "[" ADMIN ", " OP("b") "]", errmsg),
			 0);

	/* LXD 5.0's exact mapping. */
	assert_int_equal(apply("[]", "false", NULL, "[" ADMIN "]", errmsg), 0);
	assert_int_equal(apply("[" ADMIN "]", "true", "[\"default\"]",
			       "[" OP("default") "]", errmsg),
			 0);
	assert_int_equal(apply("[" ADMIN "]", "true", NULL, "[]", errmsg), 0);
	assert_int_equal(apply("[]", "true", "[\"b\", \"a\", \"a\"]",
			       "[" OP("a") ", " OP("b") "]", errmsg),
			 0);

	/* Diff: added get operator, removed lose everything, others keep
	 * their exact role. */
	assert_int_equal(
	    apply("[" AUD("a") ", " OP(
		      "b") ", "
			   "{\"scope\": \"project\", \"project\": \"c\","
			   " \"role\": \"user\"}]",
		  NULL, "[\"a\", \"c\", \"default\"]",
		  "[" AUD("a") ", {\"scope\": \"project\", \"project\": \"c\","
			       " \"role\": \"user\"}, " OP("default") "]",
		  errmsg),
	    0);
	/* The same projects with restricted unchanged: a no-op. */
	assert_int_equal(apply("[" AUD("a") "]", "true", "[\"a\"]",
			       "[" AUD("a") "]", errmsg),
			 0);
	/* null projects: none. */
	assert_int_equal(apply("[" AUD("a") "]", NULL, "null", "[]", errmsg),
			 0);

	/* restricted true -> false keeps project roles, adds admin. */
	assert_int_equal(apply("[" AUD("a") "]", "false", NULL,
			       "[" ADMIN ", " AUD("a") "]", errmsg),
			 0);
	/* A non-admin server binding becomes admin, and then goes. */
	assert_int_equal(
	    apply("[{\"scope\": \"server\", \"role\": \"auditor\"}]", "false",
		  NULL, "[" ADMIN "]", errmsg),
	    0);
	assert_int_equal(apply("[" ADMIN ", " AUD("a") "]", "true", NULL,
			       "[" AUD("a") "]", errmsg),
			 0);

	/* Projects on an unrestricted certificate. */
	assert_int_equal(apply("[]", "false", "[\"a\"]", NULL, errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(
	    errmsg, "projects can only be set on a restricted certificate");
	assert_int_equal(apply("[" ADMIN "]", NULL, "[\"a\"]", NULL, errmsg),
			 CORRAL_EINVALID);
	/* ... unless it is what GET showed, or empty. */
	assert_int_equal(apply("[" ADMIN ", " AUD("a") "]", "false", "[\"a\"]",
			       "[" ADMIN ", " AUD("a") "]", errmsg),
			 0);
	assert_int_equal(apply("[" ADMIN ", " AUD("a") "]", "false", "[]",
			       "[" ADMIN "]", errmsg),
			 0);

	/* all_projects: every project shows; removing one is refused. */
	assert_int_equal(
	    apply("[{\"scope\": \"all_projects\", \"role\": \"user\"}]", "true",
		  "[\"a\", \"b\", \"c\", \"default\"]",
		  "[{\"scope\": \"all_projects\", \"role\": \"user\"}]",
		  errmsg),
	    0);
	assert_int_equal(
	    apply("[{\"scope\": \"all_projects\", \"role\": \"user\"}]", NULL,
		  "[\"a\", \"b\", \"c\"]", NULL, errmsg),
	    CORRAL_EINVALID);
	assert_string_equal(
	    errmsg,
	    "project \"default\" is granted by an all_projects role binding");

	/* Shapes. */
	assert_int_equal(apply("[]", "\"yes\"", NULL, NULL, errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(errmsg, "restricted must be a boolean");
	assert_int_equal(apply("[]", "true", "[1]", NULL, errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(errmsg, "projects must be an array of strings");
	assert_int_equal(apply("[]", "true", "\"a\"", NULL, errmsg),
			 CORRAL_EINVALID);
}

static void test_roles_sort(void **state)
{
	json_t *roles = json_of("[" OP(
	    "b") ", "
		 "{\"scope\": \"all_projects\","
		 " \"role\": \"user\"}, " AUD("a") ", " ADMIN "]");

	(void)state;
	assert_int_equal(trust_roles_sort(roles), 0);
	assert_json(roles, "[" ADMIN
			   ", {\"scope\": \"all_projects\","
			   " \"role\": \"user\"}, " AUD("a") ", " OP("b") "]");
	roles = json_of("{}");
	assert_int_equal(trust_roles_sort(roles), -EINVAL);
	json_decref(roles);
	assert_false(trust_roles_server_admin(NULL));
}

/* ------------------------------------------------------------------------ */
/* Limiter                                                                    */

static void test_limiter_window(void **state)
{
	struct trust_limiter *l;
	uint64_t t0 = 1000000;
	unsigned i;

	(void)state;
	assert_int_equal(trust_limiter_create(0, &l), 0);
	assert_false(trust_limiter_blocked(l, "10.0.0.1:4000", t0));

	/* Four failures: still allowed. The port does not matter. */
	for (i = 0; i < 4; i++) {
		trust_limiter_fail(l, i % 2 ? "10.0.0.1:4000" : "10.0.0.1:5000",
				   t0 + i * 1000);
	}
	assert_false(trust_limiter_blocked(l, "10.0.0.1:6000", t0 + 4000));
	trust_limiter_fail(l, "10.0.0.1:7000", t0 + 4000);
	/* Fifth within the minute: blocked, other addresses are not. */
	assert_true(trust_limiter_blocked(l, "10.0.0.1:6000", t0 + 4001));
	assert_false(trust_limiter_blocked(l, "10.0.0.2:6000", t0 + 4001));
	assert_int_equal(trust_limiter_size(l), 1);

	/* Blocked for the rest of the minute after the first failure. */
	assert_true(trust_limiter_blocked(l, "10.0.0.1:1", t0 + 59999));
	assert_false(trust_limiter_blocked(l, "10.0.0.1:1", t0 + 60000));

	/* Sliding: one more failure blocks again until the second one of the
	 * five leaves the window. */
	trust_limiter_fail(l, "10.0.0.1:1", t0 + 60000);
	assert_true(trust_limiter_blocked(l, "10.0.0.1:1", t0 + 60001));
	assert_true(trust_limiter_blocked(l, "10.0.0.1:1", t0 + 60999));
	assert_false(trust_limiter_blocked(l, "10.0.0.1:1", t0 + 61000));

	/* After a quiet minute the address starts afresh. */
	trust_limiter_fail(l, "10.0.0.1:1", t0 + 200000);
	assert_false(trust_limiter_blocked(l, "10.0.0.1:1", t0 + 200001));

	/* IPv6 with and without brackets. */
	for (i = 0; i < 5; i++) {
		trust_limiter_fail(l, "[2001:db8::1]:4000", t0 + i);
	}
	assert_true(trust_limiter_blocked(l, "[2001:db8::1]:9", t0 + 10));
	assert_true(trust_limiter_blocked(l, "2001:db8::1", t0 + 10));
	assert_false(trust_limiter_blocked(l, "[2001:db8::2]:9", t0 + 10));
	assert_int_equal(trust_limiter_size(l), 2);

	trust_limiter_destroy(l);
	trust_limiter_destroy(NULL);
}

static void test_limiter_bounded(void **state)
{
	struct trust_limiter *l;
	char addr[64];
	unsigned i;

	(void)state;
	assert_int_equal(trust_limiter_create(8, &l), 0);
	/* Block address 0, then flood with other addresses. */
	for (i = 0; i < 5; i++) {
		trust_limiter_fail(l, "192.0.2.0:1", 100 + i);
	}
	for (i = 1; i < 8; i++) {
		snprintf(addr, sizeof addr, "192.0.2.%u:1", i);
		trust_limiter_fail(l, addr, 200 + i);
	}
	assert_int_equal(trust_limiter_size(l), 8);
	assert_true(trust_limiter_blocked(l, "192.0.2.0:1", 300));

	/* Full: the address with the oldest last failure is evicted. */
	trust_limiter_fail(l, "192.0.2.100:1", 300);
	assert_int_equal(trust_limiter_size(l), 8);
	assert_false(trust_limiter_blocked(l, "192.0.2.0:1", 301));

	/* Entries whose failures left the window are reused first. */
	for (i = 0; i < 100; i++) {
		snprintf(addr, sizeof addr, "198.51.100.%u:1", i);
		trust_limiter_fail(l, addr, 100000 + i);
	}
	assert_int_equal(trust_limiter_size(l), 8);
	trust_limiter_destroy(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_to_legacy),
		cmocka_unit_test(test_legacy_apply),
		cmocka_unit_test(test_roles_sort),
		cmocka_unit_test(test_limiter_window),
		cmocka_unit_test(test_limiter_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
