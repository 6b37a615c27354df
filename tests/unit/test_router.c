/* Unit tests of api/router.c and the response envelope of api/response.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"
#include "router.h"

static void test_static_match(void **state)
{
	struct router_match m;

	(void)state;
	assert_int_equal(router_match("/1.0", "/1.0", &m), 0);
	assert_int_equal(m.n_params, 0);
	assert_int_equal(router_match("/", "/", &m), 0);
	assert_int_equal(router_match("/", "/1.0", &m), -ENOENT);
	assert_int_equal(router_match("/1.0", "/", &m), -ENOENT);
	assert_int_equal(router_match("/1.0", "/1.0/", &m), -ENOENT);
	assert_int_equal(router_match("/1.0", "/1.00", &m), -ENOENT);
	assert_int_equal(router_match("/1.0/profiles", "/1.0", &m), -ENOENT);
}

static void test_param_match(void **state)
{
	struct router_match m;

	(void)state;
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/web", &m), 0);
	assert_int_equal(m.n_params, 1);
	assert_string_equal(m.params[0], "web");
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/", &m),
	    -ENOENT);
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/a/b", &m),
	    -ENOENT);
	assert_int_equal(router_match("/1.0/a/{x}/b/{y}", "/1.0/a/1/b/2", &m),
			 0);
	assert_int_equal(m.n_params, 2);
	assert_string_equal(m.params[0], "1");
	assert_string_equal(m.params[1], "2");
}

static void test_param_decoding(void **state)
{
	struct router_match m;

	(void)state;
	assert_int_equal(router_match("/1.0/profiles/{name}",
				      "/1.0/profiles/my%20prof%2Fx", &m),
			 0);
	assert_string_equal(m.params[0], "my prof/x");
	/* '+' stays '+' in paths. */
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/a+b", &m), 0);
	assert_string_equal(m.params[0], "a+b");
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/bad%2", &m),
	    -EINVAL);
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/bad%zz", &m),
	    -EINVAL);
	assert_int_equal(
	    router_match("/1.0/profiles/{name}", "/1.0/profiles/nul%00", &m),
	    -EINVAL);
}

static void test_param_too_long(void **state)
{
	struct router_match m;
	char path[ROUTER_PARAM_BUF + 64];

	(void)state;
	strcpy(path, "/1.0/profiles/");
	memset(path + 14, 'a', ROUTER_PARAM_BUF + 10);
	path[14 + ROUTER_PARAM_BUF + 10] = '\0';
	assert_int_equal(router_match("/1.0/profiles/{name}", path, &m),
			 -EINVAL);
}

static void test_query(void **state)
{
	char v[64];

	(void)state;
	assert_int_equal(router_query_get("recursion=1&project=a%2Bb+c",
					  "project", v, sizeof v),
			 5);
	assert_string_equal(v, "a+b c");
	assert_int_equal(
	    router_query_get("recursion=1", "recursion", v, sizeof v), 1);
	assert_string_equal(v, "1");
	assert_int_equal(router_query_get("force", "force", v, sizeof v), 0);
	assert_string_equal(v, "");
	assert_int_equal(router_query_get("forced=1", "force", v, sizeof v),
			 -ENOENT);
	assert_int_equal(router_query_get("", "x", v, sizeof v), -ENOENT);
	assert_int_equal(router_query_get("x=%G1", "x", v, sizeof v), -EINVAL);
	assert_int_equal(router_query_get("x=abcdef", "x", v, 4), -EINVAL);
}

static void test_envelope_sync(void **state)
{
	json_t *meta = json_pack("{s:s}", "name", "p");
	json_error_t err;
	json_t *doc;
	size_t len;
	char *out;

	(void)state;
	out = api_envelope_sync(meta, 200, &len);
	json_decref(meta);
	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	doc = json_loads(out, 0, &err);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "type")),
			    "sync");
	assert_string_equal(json_string_value(json_object_get(doc, "status")),
			    "Success");
	assert_int_equal(
	    json_integer_value(json_object_get(doc, "status_code")), 200);
	assert_int_equal(json_integer_value(json_object_get(doc, "error_code")),
			 0);
	assert_string_equal(
	    json_string_value(json_object_get(doc, "operation")), "");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(doc, "metadata"), "name")),
			    "p");
	json_decref(doc);
	free(out);

	out = api_envelope_sync(NULL, 200, &len);
	assert_non_null(strstr(out, "\"metadata\":null"));
	free(out);
}

static void test_envelope_error(void **state)
{
	json_error_t err;
	json_t *doc;
	size_t len;
	char *out;

	(void)state;
	out = api_envelope_error(404, "not \"found\"", &len);
	assert_non_null(out);
	doc = json_loads(out, 0, &err);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "type")),
			    "error");
	assert_int_equal(json_integer_value(json_object_get(doc, "error_code")),
			 404);
	assert_string_equal(json_string_value(json_object_get(doc, "error")),
			    "not \"found\"");
	assert_true(json_is_null(json_object_get(doc, "metadata")));
	json_decref(doc);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_static_match),
		cmocka_unit_test(test_param_match),
		cmocka_unit_test(test_param_decoding),
		cmocka_unit_test(test_param_too_long),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_envelope_sync),
		cmocka_unit_test(test_envelope_error),
	};
	return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
