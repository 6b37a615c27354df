/* Unit tests of node/token.c (LXD's base64-of-JSON tokens) and of the pure
 * parts of node/httpc_ws.c (frame encoding, Sec-WebSocket-Accept). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <corral/err.h>
#include <corral/httpc.h>
#include <corral/token.h>

#define FP "e66fd62e2ab9d371dd91b74461a854ab386c02f0dc0d229155fa66123b7e9031"

static void test_encode_decode(void **state)
{
	json_t *obj;
	json_t *back;
	char *text;

	(void)state;
	obj = json_pack("{s:s, s:i}", "a", "b", "n", 1);
	assert_int_equal(token_encode(obj, &text), 0);
	/* base64 of {"a":"b","n":1}, keys in order, compact, padded. */
	assert_string_equal(text, "eyJhIjoiYiIsIm4iOjF9");
	assert_int_equal(token_decode(text, &back), 0);
	assert_true(json_equal(obj, back));
	json_decref(back);
	free(text);
	/* Whitespace and missing padding are tolerated. */
	assert_int_equal(token_decode(" eyJhIjoiYiIs\nIm4iOjF9 ", &back), 0);
	json_decref(back);
	assert_int_equal(token_decode("eyJ9", &back), CORRAL_EINVALID);
	assert_int_equal(token_decode("e30", &back), 0); /* {} unpadded */
	json_decref(back);
	json_decref(obj);

	obj = json_array();
	assert_int_equal(token_encode(obj, &text), -EINVAL);
	json_decref(obj);
}

static void test_decode_rejects(void **state)
{
	json_t *out = (json_t *)1;

	(void)state;
	assert_int_equal(token_decode("", &out), CORRAL_EINVALID);
	assert_null(out);
	assert_int_equal(token_decode("https://127.0.0.1:8443", &out),
			 CORRAL_EINVALID);
	assert_int_equal(token_decode("127.0.0.1", &out), CORRAL_EINVALID);
	/* base64 of "[1]": not an object. */
	assert_int_equal(token_decode("WzFd", &out), CORRAL_EINVALID);
	/* base64 of "{": not JSON. */
	assert_int_equal(token_decode("ew==", &out), CORRAL_EINVALID);
	/* Data after padding. */
	assert_int_equal(token_decode("e30=e30", &out), CORRAL_EINVALID);
}

static char *encode(json_t *obj)
{
	char *text;

	assert_int_equal(token_encode(obj, &text), 0);
	json_decref(obj);
	return text;
}

static void test_trust_token(void **state)
{
	json_t *md;
	json_t *tok;
	char *text;
	char *bad;

	(void)state;
	md = json_pack("{s:{s:s, s:s}, s:s, s:s, s:[s], s:s}", "request",
		       "name", "c2", "type", "client", "secret", "abc",
		       "fingerprint", FP, "addresses", "127.0.0.1:8443",
		       "expiresAt", "2030-01-01T00:00:00Z");
	assert_int_equal(token_trust_from_operation(md, &text), 0);
	assert_int_equal(token_decode_trust(text, &tok), 0);
	assert_string_equal(
	    json_string_value(json_object_get(tok, "client_name")), "c2");
	assert_string_equal(json_string_value(json_object_get(tok, "secret")),
			    "abc");
	/* LXD's field order. */
	{
		char *dump = json_dumps(tok, JSON_COMPACT);
		assert_non_null(
		    strstr(dump,
			   "{\"client_name\":\"c2\","
			   "\"fingerprint\":\"" FP "\","
			   "\"addresses\":[\"127.0.0.1:8443\"],"
			   "\"secret\":\"abc\","
			   "\"expires_at\":\"2030-01-01T00:00:00Z\"}"));
		free(dump);
	}
	json_decref(tok);
	free(text);

	/* No expiry: Go's zero time. */
	json_object_del(md, "expiresAt");
	assert_int_equal(token_trust_from_operation(md, &text), 0);
	assert_int_equal(token_decode_trust(text, &tok), 0);
	assert_string_equal(
	    json_string_value(json_object_get(tok, "expires_at")),
	    "0001-01-01T00:00:00Z");
	json_decref(tok);
	free(text);

	/* Missing parts. */
	json_object_del(md, "secret");
	assert_int_equal(token_trust_from_operation(md, &text),
			 CORRAL_EINVALID);
	json_decref(md);

	/* Not a trust token: bad fingerprint, no addresses, empty secret. */
	bad = encode(json_pack("{s:s, s:s, s:[s]}", "secret", "x",
			       "fingerprint", "ABC", "addresses", "a:1"));
	assert_int_equal(token_decode_trust(bad, &tok), CORRAL_EINVALID);
	free(bad);
	bad = encode(json_pack("{s:s, s:s, s:[]}", "secret", "x", "fingerprint",
			       FP, "addresses"));
	assert_int_equal(token_decode_trust(bad, &tok), CORRAL_EINVALID);
	free(bad);
	bad = encode(json_pack("{s:s, s:s, s:[s]}", "secret", "", "fingerprint",
			       FP, "addresses", "a:1"));
	assert_int_equal(token_decode_trust(bad, &tok), CORRAL_EINVALID);
	free(bad);
}

static void test_ws_accept_key(void **state)
{
	char out[HTTPC_WS_ACCEPT_SIZE];

	(void)state;
	/* The example of RFC 6455 section 1.3. */
	httpc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_frame(void **state)
{
	static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	unsigned char out[300];
	unsigned char big[200];
	size_t n;
	size_t i;

	(void)state;
	/* RFC 6455 section 5.7: a masked "Hello". */
	n = httpc_ws_frame(1, "Hello", 5, mask, out);
	assert_int_equal(n, 11);
	{
		static const unsigned char want[] = { 0x81, 0x85, 0x37, 0xfa,
						      0x21, 0x3d, 0x7f, 0x9f,
						      0x4d, 0x51, 0x58 };
		assert_memory_equal(out, want, sizeof want);
	}
	/* A 16-bit length. */
	memset(big, 'x', sizeof big);
	n = httpc_ws_frame(2, big, sizeof big, mask, out);
	assert_int_equal(n, 4 + 4 + sizeof big);
	assert_int_equal(out[0], 0x82);
	assert_int_equal(out[1], 0x80 | 126);
	assert_int_equal(out[2], 0);
	assert_int_equal(out[3], 200);
	for (i = 0; i < sizeof big; i++) {
		assert_int_equal(out[8 + i] ^ mask[i % 4], 'x');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_trust_token),
		cmocka_unit_test(test_ws_accept_key),
		cmocka_unit_test(test_ws_frame),
	};
	return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
