/* Unit tests of the pure half of cmd/corral/conf.c: config.json parsing,
 * remote names and remote addresses. The client's source is compiled in
 * directly, since bin/corral's objects are not in libcorral.a. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../cmd/corral/conf.c"

#define FP "e66fd62e2ab9d371dd91b74461a854ab386c02f0dc0d229155fa66123b7e9031"

static json_t *parse_ok(const char *text)
{
	char errmsg[256];
	json_t *doc = NULL;

	assert_int_equal(
	    cli_conf_parse(text, strlen(text), &doc, errmsg, sizeof errmsg), 0);
	return doc;
}

static void parse_bad(const char *text, const char *why)
{
	char errmsg[256] = "";
	json_t *doc = (json_t *)1;

	assert_int_equal(
	    cli_conf_parse(text, strlen(text), &doc, errmsg, sizeof errmsg),
	    CORRAL_EINVALID);
	assert_null(doc);
	assert_non_null(strstr(errmsg, why));
}

static void test_parse(void **state)
{
	json_t *doc;
	json_t *r;

	(void)state;
	/* Defaults: the local remote is added and is the default. */
	doc = parse_ok("{}");
	assert_string_equal(
	    json_string_value(json_object_get(doc, "default-remote")), "local");
	r = json_object_get(json_object_get(doc, "remotes"), "local");
	assert_string_equal(json_string_value(json_object_get(r, "addr")),
			    "unix://");
	json_decref(doc);

	doc = parse_ok(
	    "{\"default-remote\": \"r\", \"remotes\": {\"r\": "
	    "{\"addr\": \"https://127.0.0.1:8443\", "
	    "\"fingerprint\": \"" FP
	    "\"}, \"s\": {\"addr\": "
	    "\"https://[::1]:1\"}, \"u\": {\"addr\": "
	    "\"unix:///run/x.socket\"}}, \"extra\": 1}");
	assert_string_equal(
	    json_string_value(json_object_get(doc, "default-remote")), "r");
	assert_non_null(
	    json_object_get(json_object_get(doc, "remotes"), "local"));
	assert_int_equal(json_integer_value(json_object_get(doc, "extra")), 1);
	json_decref(doc);

	parse_bad("[]", "not a JSON object");
	parse_bad("{", "line");
	parse_bad("{\"remotes\": []}", "\"remotes\"");
	parse_bad("{\"default-remote\": \"nope\"}", "nope");
	parse_bad("{\"remotes\": {\"r\": {}}}", "no \"addr\"");
	parse_bad("{\"remotes\": {\"r\": {\"addr\": \"http://x:1\"}}}",
		  "invalid address");
	parse_bad(
	    "{\"remotes\": {\"r\": {\"addr\": \"https://x:1\", "
	    "\"fingerprint\": \"ABC\"}}}",
	    "fingerprint");
	parse_bad("{\"remotes\": {\"a:b\": {\"addr\": \"unix://\"}}}",
		  "invalid remote name");
	parse_bad("{\"remotes\": {}, \"remotes\": {}}", "line");
}

static void norm(const char *in, const char *want)
{
	char *out = NULL;

	if (want == NULL) {
		assert_int_equal(cli_addr_normalize(in, &out), CORRAL_EINVALID);
		assert_null(out);
		return;
	}
	assert_int_equal(cli_addr_normalize(in, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_addresses(void **state)
{
	char *host;
	char *port;

	(void)state;
	norm("10.0.0.1", "https://10.0.0.1:8443");
	norm("10.0.0.1:9443", "https://10.0.0.1:9443");
	norm("https://host.example/", "https://host.example:8443");
	norm("https://host.example:1/", "https://host.example:1");
	norm("::1", "https://[::1]:8443");
	norm("[::1]", "https://[::1]:8443");
	norm("[::1]:7", "https://[::1]:7");
	norm("", NULL);
	norm("http://x", NULL);
	norm("x:99999", NULL);
	norm("x:", NULL);
	norm("x/y", NULL);
	norm("user@x", NULL);

	assert_int_equal(cli_addr_split("https://[fe80::1]:8443", &host, &port),
			 0);
	assert_string_equal(host, "fe80::1");
	assert_string_equal(port, "8443");
	free(host);
	free(port);
	assert_int_equal(cli_addr_split("unix://", &host, &port),
			 CORRAL_EINVALID);
}

static void test_names(void **state)
{
	(void)state;
	assert_true(cli_remote_name_ok("r"));
	assert_true(cli_remote_name_ok("my-server_2.lan"));
	assert_false(cli_remote_name_ok(""));
	assert_false(cli_remote_name_ok("a:b"));
	assert_false(cli_remote_name_ok("a/b"));
	assert_false(cli_remote_name_ok("a b"));
	assert_false(cli_remote_name_ok("-x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests_name("cli_conf", tests, NULL, NULL);
}
