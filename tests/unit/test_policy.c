/* The route-table test: every route and method the API serves has an
 * authorization rule in api/policy.c, and the policy names no route that
 * does not exist. A new route without a rule fails here (and is refused at
 * run time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "policy.h"

static const enum http_method methods[] = { HTTP_GET, HTTP_PUT, HTTP_POST,
					    HTTP_PATCH, HTTP_DELETE };

static api_handler handler_of(const struct api_route *r, unsigned m)
{
	api_handler h[] = { r->get, r->put, r->post, r->patch, r->del };
	return h[m];
}

static void test_every_route_has_a_rule(void **state)
{
	unsigned t;
	unsigned i;
	unsigned m;
	unsigned n;
	unsigned checked = 0;

	(void)state;
	for (t = 0; t < api_route_table_count(); t++) {
		const struct api_route *routes = api_route_table(t, &n);
		for (i = 0; i < n; i++) {
			for (m = 0; m < 5; m++) {
				struct policy_rule rule;
				if (handler_of(&routes[i], m) == NULL) {
					continue;
				}
				rule = policy_lookup(routes[i].path, methods[m],
						     NULL);
				if (rule.kind == POLICY_UNSET) {
					fail_msg(
					    "%s %s has no authorization "
					    "rule in api/policy.c",
					    http_method_str(methods[m]),
					    routes[i].path);
				}
				checked++;
			}
		}
	}
	assert_true(checked > 20);
}

static void test_rules_only_for_served_methods(void **state)
{
	unsigned t;
	unsigned i;
	unsigned m;
	unsigned n;

	(void)state;
	for (t = 0; t < api_route_table_count(); t++) {
		const struct api_route *routes = api_route_table(t, &n);
		for (i = 0; i < n; i++) {
			for (m = 0; m < 5; m++) {
				struct policy_rule rule = policy_lookup(
				    routes[i].path, methods[m], NULL);
				if (handler_of(&routes[i], m) == NULL &&
				    rule.kind != POLICY_UNSET) {
					fail_msg(
					    "%s %s: a rule for a method "
					    "the route does not serve",
					    http_method_str(methods[m]),
					    routes[i].path);
				}
			}
		}
	}
}

static void test_only_lxd_open_routes_are_public(void **state)
{
	unsigned t;
	unsigned i;
	unsigned m;
	unsigned n;
	unsigned open = 0;

	(void)state;
	for (t = 0; t < api_route_table_count(); t++) {
		const struct api_route *routes = api_route_table(t, &n);
		for (i = 0; i < n; i++) {
			for (m = 0; m < 5; m++) {
				struct policy_rule rule = policy_lookup(
				    routes[i].path, methods[m], NULL);
				char what[128];
				if (rule.kind != POLICY_PUBLIC) {
					continue;
				}
				snprintf(what, sizeof what, "%s %s",
					 http_method_str(methods[m]),
					 routes[i].path);
				if (strcmp(what, "GET /") != 0 &&
				    strcmp(what, "GET /1.0") != 0 &&
				    strcmp(what, "POST /1.0/certificates") !=
					0) {
					fail_msg(
					    "%s is open to untrusted "
					    "callers",
					    what);
				}
				open++;
			}
		}
	}
	assert_int_equal(open, 3);
}

static void test_unknown_path(void **state)
{
	const struct policy_route *pr;
	struct policy_rule rule;

	(void)state;
	rule = policy_lookup("/1.0/nothing", HTTP_GET, &pr);
	assert_int_equal(rule.kind, POLICY_UNSET);
	assert_null(pr);
	rule = policy_lookup("/1.0/profiles", HTTP_OPTIONS, &pr);
	assert_int_equal(rule.kind, POLICY_UNSET);
	assert_non_null(pr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_route_has_a_rule),
		cmocka_unit_test(test_rules_only_for_served_methods),
		cmocka_unit_test(test_only_lxd_open_routes_are_public),
		cmocka_unit_test(test_unknown_path),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
