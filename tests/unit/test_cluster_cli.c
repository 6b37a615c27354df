/* Unit tests of the pure half of cmd/corral/cmd_cluster.c: cluster join
 * tokens built from a token operation's metadata and decoded for `corral
 * cluster join`, the join request's body, the roles column and the wait
 * path of an operation. The client's source is compiled in directly (only
 * its pure half, CORRAL_CLUSTER_PURE), since bin/corral's objects are not
 * in libcorral.a. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#define CORRAL_CLUSTER_PURE
#include "../../cmd/corral/cmd_cluster.c"

#define FP "e66fd62e2ab9d371dd91b74461a854ab386c02f0dc0d229155fa66123b7e9031"
#define FP_UPPER \
	"E66FD62E2AB9D371DD91B74461A854AB386C02F0DC0D229155FA66123B7E9031"

static json_t *metadata(void)
{
	return json_pack("{s:s, s:s, s:s, s:[s, s], s:s, s:I}", "serverName",
			 "m2", "secret", "s3cr3t", "fingerprint", FP,
			 "addresses", "10.0.0.1:8443", "[fd00::1]:8443",
			 "expiresAt", "2030-01-02T03:04:05.123456789Z",
			 "expires_at", (json_int_t)1);
}

static char *base64(const char *json)
{
	json_t *obj = json_loads(json, JSON_DECODE_ANY, NULL);
	char *text = NULL;

	assert_true(json_is_object(obj));
	assert_int_equal(token_encode(obj, &text), 0);
	json_decref(obj);
	return text;
}

static void test_token_from_operation(void **state)
{
	json_t *md = metadata();
	json_t *back;
	char *token;
	char *json;
	unsigned char raw[1024];
	int n;

	(void)state;
	assert_int_equal(cluster_token_from_operation(md, &token), 0);
	/* Exactly LXD's ClusterMemberJoinToken, fields in Go's order. */
	n = EVP_DecodeBlock(raw, (const unsigned char *)token,
			    (int)strlen(token));
	assert_true(n > 0);
	while (n > 0 && raw[n - 1] == '\0') {
		n--;
	}
	json = strndup((const char *)raw, (size_t)n);
	assert_string_equal(
	    json, "{\"server_name\":\"m2\",\"fingerprint\":\"" FP
		  "\",\"addresses\":[\"10.0.0.1:8443\","
		  "\"[fd00::1]:8443\"],\"secret\":\"s3cr3t\","
		  "\"expires_at\":\"2030-01-02T03:04:05.123456789Z\"}");
	free(json);
	/* Standard base64, padded, one line. */
	assert_null(strchr(token, '\n'));
	assert_int_equal(strlen(token) % 4, 0);
	assert_int_equal(token_decode(token, &back), 0);
	assert_int_equal(json_object_size(back), 5);
	json_decref(back);
	free(token);

	/* No expiresAt: Go's zero time. */
	json_object_del(md, "expiresAt");
	assert_int_equal(cluster_token_from_operation(md, &token), 0);
	assert_int_equal(token_decode(token, &back), 0);
	assert_string_equal(
	    json_string_value(json_object_get(back, "expires_at")),
	    CLUSTER_ZERO_TIME);
	json_decref(back);
	free(token);
	json_decref(md);
}

static void test_token_from_operation_rejects(void **state)
{
	static const char *const fields[] = { "serverName", "secret",
					      "fingerprint", "addresses" };
	json_t *md;
	char *token = (char *)1;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		md = metadata();
		json_object_del(md, fields[i]);
		assert_int_equal(cluster_token_from_operation(md, &token),
				 CORRAL_EINVALID);
		assert_null(token);
		json_decref(md);
	}
	/* A trust token's metadata is no join token's. */
	md = json_pack("{s:{s:s}, s:s, s:s, s:[s]}", "request", "name", "c",
		       "secret", "x", "fingerprint", FP, "addresses", "a:1");
	assert_int_equal(cluster_token_from_operation(md, &token),
			 CORRAL_EINVALID);
	json_decref(md);
	/* Wrong types. */
	md = metadata();
	json_object_set_new(md, "addresses", json_pack("[i]", 1));
	assert_int_equal(cluster_token_from_operation(md, &token),
			 CORRAL_EINVALID);
	json_object_set_new(md, "addresses", json_string("10.0.0.1:8443"));
	assert_int_equal(cluster_token_from_operation(md, &token),
			 CORRAL_EINVALID);
	json_decref(md);
	md = metadata();
	json_object_set_new(md, "secret", json_string(""));
	assert_int_equal(cluster_token_from_operation(md, &token),
			 CORRAL_EINVALID);
	json_decref(md);
	assert_int_equal(cluster_token_from_operation(NULL, &token),
			 CORRAL_EINVALID);
}

static void test_token_parse(void **state)
{
	char errmsg[256];
	json_t *md = metadata();
	json_t *tok;
	char *token;

	(void)state;
	/* Round trip: what `cluster add` prints, `cluster join` reads. */
	assert_int_equal(cluster_token_from_operation(md, &token), 0);
	assert_int_equal(
	    cluster_token_parse(token, &tok, errmsg, sizeof errmsg), 0);
	assert_string_equal(
	    json_string_value(json_object_get(tok, "server_name")), "m2");
	assert_string_equal(json_string_value(json_object_get(tok, "secret")),
			    "s3cr3t");
	assert_string_equal(
	    json_string_value(json_object_get(tok, "fingerprint")), FP);
	assert_int_equal(json_array_size(json_object_get(tok, "addresses")), 2);
	json_decref(tok);
	free(token);
	json_decref(md);

	/* Upper-case fingerprints are accepted and lower-cased. */
	token = base64("{\"server_name\":\"a\",\"fingerprint\":\"" FP_UPPER
		       "\",\"addresses\":[\"1.2.3.4:8443\"],\"secret\":\"x\"}");
	assert_int_equal(
	    cluster_token_parse(token, &tok, errmsg, sizeof errmsg), 0);
	assert_string_equal(
	    json_string_value(json_object_get(tok, "fingerprint")), FP);
	json_decref(tok);
	free(token);
}

static void parse_bad(const char *token, const char *why)
{
	char errmsg[256] = "";
	json_t *tok = (json_t *)1;

	assert_int_equal(
	    cluster_token_parse(token, &tok, errmsg, sizeof errmsg),
	    CORRAL_EINVALID);
	assert_null(tok);
	if (strstr(errmsg, why) == NULL) {
		fail_msg("\"%s\" does not contain \"%s\"", errmsg, why);
	}
}

static void parse_bad_json(const char *json, const char *why)
{
	char *token = base64(json);

	assert_non_null(token);
	parse_bad(token, why);
	free(token);
}

static void test_token_parse_rejects(void **state)
{
	(void)state;
	parse_bad("not a token!", "not base64");
	parse_bad("", "not base64");
	parse_bad("10.0.0.1:8443", "not base64");
	parse_bad("WzFd", "not base64"); /* [1] */
	parse_bad_json("{}", "server_name");
	parse_bad_json("{\"server_name\":\"\",\"fingerprint\":\"" FP
		       "\",\"addresses\":[\"a:1\"],\"secret\":\"x\"}",
		       "server_name");
	parse_bad_json("{\"server_name\":\"a\",\"fingerprint\":\"" FP
		       "\",\"addresses\":[\"a:1\"]}",
		       "secret");
	parse_bad_json(
	    "{\"server_name\":\"a\",\"fingerprint\":\"abc\","
	    "\"addresses\":[\"a:1\"],\"secret\":\"x\"}",
	    "fingerprint");
	parse_bad_json("{\"server_name\":\"a\",\"fingerprint\":\"" FP
		       "\",\"addresses\":[],\"secret\":\"x\"}",
		       "addresses");
	parse_bad_json("{\"server_name\":\"a\",\"fingerprint\":\"" FP
		       "\",\"addresses\":[\"\"],\"secret\":\"x\"}",
		       "address");
	parse_bad_json("{\"server_name\":\"a\",\"fingerprint\":\"" FP
		       "\",\"addresses\":[\"a:1\"],\"secret\":\"x\","
		       "\"expires_at\":5}",
		       "expires_at");
	/* A trust token (client_name) is no join token. */
	parse_bad_json("{\"client_name\":\"a\",\"fingerprint\":\"" FP
		       "\",\"addresses\":[\"a:1\"],\"secret\":\"x\"}",
		       "server_name");
}

static void test_token_op(void **state)
{
	json_t *op;

	(void)state;
	op = json_pack("{s:s, s:s, s:i, s:o}", "id", "abc", "class", "token",
		       "status_code", 103, "metadata", metadata());
	assert_true(cluster_is_token_op(op));
	assert_string_equal(cluster_token_op_name(op), "m2");
	json_object_set_new(op, "status_code", json_integer(200));
	assert_false(cluster_is_token_op(op));
	json_object_set_new(op, "status_code", json_integer(103));
	json_object_set_new(op, "class", json_string("task"));
	assert_false(cluster_is_token_op(op));
	json_object_set_new(op, "class", json_string("token"));
	json_object_del(json_object_get(op, "metadata"), "serverName");
	assert_false(cluster_is_token_op(op));
	assert_null(cluster_token_op_name(op));
	json_decref(op);
}

static void test_join_body(void **state)
{
	char errmsg[256];
	json_t *md = metadata();
	json_t *tok;
	json_t *body;
	json_t *want;
	char *token;

	(void)state;
	assert_int_equal(cluster_token_from_operation(md, &token), 0);
	assert_int_equal(
	    cluster_token_parse(token, &tok, errmsg, sizeof errmsg), 0);
	body = cluster_join_body(tok, "10.0.0.2:8443", "10.0.0.1:8443",
				 "-----BEGIN CERTIFICATE-----\n");
	want = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "server_name", "m2",
			 "server_address", "10.0.0.2:8443", "cluster_address",
			 "10.0.0.1:8443", "cluster_certificate",
			 "-----BEGIN CERTIFICATE-----\n", "cluster_password",
			 "s3cr3t", "enabled", 1);
	assert_true(json_equal(body, want));
	json_decref(want);
	json_decref(body);
	json_decref(tok);
	free(token);
	json_decref(md);
}

static void test_roles_join(void **state)
{
	json_t *roles;
	char *s;

	(void)state;
	roles = json_pack("[s, s]", "database-leader", "database");
	s = cluster_roles_join(roles, "\n");
	assert_string_equal(s, "database-leader\ndatabase");
	free(s);
	s = cluster_roles_join(roles, ",");
	assert_string_equal(s, "database-leader,database");
	free(s);
	json_decref(roles);
	roles = json_pack("[i, s]", 1, "database-standby");
	s = cluster_roles_join(roles, "\n");
	assert_string_equal(s, "database-standby");
	free(s);
	json_decref(roles);
	s = cluster_roles_join(NULL, "\n");
	assert_string_equal(s, "");
	free(s);
	roles = json_array();
	s = cluster_roles_join(roles, "\n");
	assert_string_equal(s, "");
	free(s);
	json_decref(roles);
}

static void test_wait_path(void **state)
{
	char *p;

	(void)state;
	p = cluster_wait_path("/1.0/operations/abc");
	assert_string_equal(p, "/1.0/operations/abc/wait");
	free(p);
	p = cluster_wait_path("/1.0/operations/abc?project=p");
	assert_string_equal(p, "/1.0/operations/abc/wait?project=p");
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_from_operation),
		cmocka_unit_test(test_token_from_operation_rejects),
		cmocka_unit_test(test_token_parse),
		cmocka_unit_test(test_token_parse_rejects),
		cmocka_unit_test(test_token_op),
		cmocka_unit_test(test_join_body),
		cmocka_unit_test(test_roles_join),
		cmocka_unit_test(test_wait_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
