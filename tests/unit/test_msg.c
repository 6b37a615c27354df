/* Unit tests of cluster/msg.c: member channel messages between jansson
 * values and msgpack, and the bounds the decoder enforces. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <corral/cluster_msg.h>
#include <corral/err.h>

/* Decode @n bytes at @b; on failure check that nothing came out and that
 * the message is filled. */
static int unpack(const void *b, size_t n, json_t **out)
{
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	int rv;

	*out = (json_t *)1;
	rv = cluster_msg_unpack(b, n, out, errmsg);
	if (rv != 0) {
		assert_null(*out);
		assert_true(errmsg[0] != '\0');
	}
	return rv;
}

/* Decode @n bytes at @b expecting @rv and @errmsg to contain @want. */
static void refuse(const void *b, size_t n, int want_rv, const char *want)
{
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	json_t *out = (json_t *)1;
	int rv;

	rv = cluster_msg_unpack(b, n, &out, errmsg);
	if (rv != want_rv || strstr(errmsg, want) == NULL) {
		fail_msg("got %d \"%s\", want %d \"%s\"", rv, errmsg, want_rv,
			 want);
	}
	assert_null(out);
}

/* Pack @v, unpack the bytes and check the result equals @v. */
static void round_trip(json_t *v)
{
	json_t *back;
	char *bytes;
	size_t len;

	assert_int_equal(cluster_msg_pack(v, &bytes, &len), 0);
	assert_true(len > 0);
	assert_int_equal(unpack(bytes, len, &back), 0);
	if (!json_equal(v, back)) {
		char *a = json_dumps(v, JSON_ENCODE_ANY);
		char *b = json_dumps(back, JSON_ENCODE_ANY);

		fail_msg("round trip changed %s into %s", a, b);
	}
	json_decref(back);
	free(bytes);
}

static void test_round_trip_types(void **state)
{
	static const json_int_t ints[] = {
		0,         1,      127,    128,           255,
		256,       65535,  65536,  4294967295LL,  4294967296LL,
		INT64_MAX, -1,     -32,    -33,           -128,
		-129,      -32768, -32769, -2147483648LL, -2147483649LL,
		INT64_MIN,
	};
	static const double reals[] = { 0.0, 1.5, -2.25, 1e300, -1e-300 };
	char *big;
	size_t sizes[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
	json_t *v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		v = json_integer(ints[i]);
		round_trip(v);
		json_decref(v);
	}
	for (i = 0; i < sizeof reals / sizeof reals[0]; i++) {
		v = json_real(reals[i]);
		round_trip(v);
		json_decref(v);
	}
	round_trip(json_true());
	round_trip(json_false());
	round_trip(json_null());

	/* Strings across every length encoding, and UTF-8. */
	big = malloc(65536);
	assert_non_null(big);
	memset(big, 'x', 65536);
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		v = json_stringn(big, sizes[i]);
		round_trip(v);
		json_decref(v);
	}
	free(big);
	v = json_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x90\x84");
	round_trip(v);
	json_decref(v);

	/* Containers: empty, nested, and past the fix/16-bit counts. */
	v = json_pack("{s:{}, s:[], s:[i, s, {s:[n, b, f]}], s:s}", "e", "a",
		      "l", 1, "two", "k", true, 2.5, "\xc3\xa9", "v");
	round_trip(v);
	json_decref(v);
	v = json_array();
	for (i = 0; i < 70000; i++) {
		json_array_append_new(v, json_integer((json_int_t)i));
	}
	round_trip(v);
	json_decref(v);
	v = json_object();
	for (i = 0; i < 20; i++) {
		char key[16];

		snprintf(key, sizeof key, "k%zu", i);
		json_object_set_new(v, key, json_integer((json_int_t)i));
	}
	round_trip(v);
	json_decref(v);
}

/* The encoding is plain msgpack, smallest forms first. */
static void test_bytes(void **state)
{
	static const unsigned char want[] = {
		0x83, 0xa1, 'a',  0x01, 0xa1, 'b',  0x92, 0xd0,
		0x80, 0xc0, 0xa1, 'c',  0xcd, 0x01, 0x00,
	};
	json_t *v;
	char *bytes;
	size_t len;

	(void)state;
	v = json_pack("{s:i, s:[i, n], s:i}", "a", 1, "b", -128, "c", 256);
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), 0);
	assert_int_equal(len, sizeof want);
	assert_memory_equal(bytes, want, sizeof want);
	free(bytes);
	json_decref(v);
}

static json_t *heartbeat(void)
{
	return json_pack("{s:s, s:{s:i, s:i, s:i, s:i, s:i}, s:s}", "name",
			 "m1", "generations", "trust", 7, "projects", 1,
			 "profiles", 3, "instances", 0, "config", 2, "version",
			 "0.1.0");
}

static json_t *changed(void)
{
	return json_pack(
	    "{s:s, s:{s:i}, s:{s:i, s:[{s:s, s:s, s:s, s:b, s:[s]}]}}", "name",
	    "m2", "generations", "trust", 9, "trust", "generation", 9,
	    "identities", "fingerprint",
	    "e66fd62e2ab9d371dd91b74461a854ab386c02f0dc0d229155fa66123b7e9031",
	    "type", "client", "name", "c1", "restricted", true, "projects",
	    "default");
}

static void test_messages(void **state)
{
	json_t *v;

	(void)state;
	v = heartbeat();
	round_trip(v);
	json_decref(v);
	v = changed();
	round_trip(v);
	json_decref(v);
}

/* Every proper prefix of a valid message is refused as truncated. */
static void test_truncation(void **state)
{
	json_t *msgs[2];
	size_t m;

	(void)state;
	msgs[0] = heartbeat();
	msgs[1] = changed();
	for (m = 0; m < 2; m++) {
		char *bytes;
		size_t len;
		size_t n;
		json_t *out;

		assert_int_equal(cluster_msg_pack(msgs[m], &bytes, &len), 0);
		for (n = 0; n < len; n++) {
			int rv = unpack(bytes, n, &out);

			if (rv != CORRAL_ETRUNC) {
				fail_msg("prefix of %zu of %zu bytes: %d", n,
					 len, rv);
			}
		}
		assert_int_equal(unpack(bytes, len, &out), 0);
		json_decref(out);
		free(bytes);
		json_decref(msgs[m]);
	}
}

/* Nested arrays: @depth containers, the innermost empty. */
static size_t nest(unsigned char *b, unsigned depth)
{
	unsigned i;

	for (i = 0; i + 1 < depth; i++) {
		b[i] = 0x91;
	}
	b[depth - 1] = 0x90;
	return depth;
}

static void test_malformed(void **state)
{
	unsigned char b[64];
	unsigned char *many;
	json_t *out;
	size_t n;

	(void)state;
	refuse("", 0, CORRAL_ETRUNC, "ends at byte 0");
	/* A map keyed by an integer, an array, nil. */
	refuse("\x81\x01\x01", 3, CORRAL_EPROTO, "map key is not a string");
	refuse("\x81\x90\x01", 3, CORRAL_EPROTO, "map key is not a string");
	refuse("\x81\xa1k\x81\xc0\x01", 6, CORRAL_EPROTO,
	       "map key is not a string at depth 2");
	/* Duplicate keys. */
	refuse("\x82\xa1k\x01\xa1k\x02", 7, CORRAL_EPROTO, "duplicate map key");
	/* Trailing bytes after a complete value. */
	refuse("\x80\x00", 2, CORRAL_EPROTO,
	       "trailing bytes after the value: 1");
	refuse("\xc0\xc0\xc0", 3, CORRAL_EPROTO,
	       "trailing bytes after the value: 2");
	/* Invalid UTF-8: a stray continuation byte, a truncated sequence,
	 * an overlong NUL, a surrogate, above U+10FFFF, 0xff, and NUL. */
	refuse("\xa1\x80", 2, CORRAL_EPROTO, "not valid UTF-8");
	refuse("\xa2\xe2\x82", 3, CORRAL_EPROTO, "not valid UTF-8");
	refuse("\xa2\xc0\x80", 3, CORRAL_EPROTO, "not valid UTF-8");
	refuse("\xa3\xed\xa0\x80", 4, CORRAL_EPROTO, "not valid UTF-8");
	refuse("\xa4\xf4\x90\x80\x80", 5, CORRAL_EPROTO, "not valid UTF-8");
	refuse("\xa1\xff", 2, CORRAL_EPROTO, "not valid UTF-8");
	refuse(
	    "\xa3"
	    "a\0b",
	    4, CORRAL_EPROTO, "not valid UTF-8 without NUL");
	refuse("\x81\xa1\xff\x01", 4, CORRAL_EPROTO,
	       "map key is not valid UTF-8");
	/* Types JSON cannot say. */
	refuse("\xc4\x01x", 3, CORRAL_EPROTO, "bin value at byte 0");
	refuse("\x91\xc5\x00\x01x", 5, CORRAL_EPROTO, "bin value at byte 1");
	refuse("\xd4\x01\x00", 3, CORRAL_EPROTO, "ext value");
	refuse("\xc7\x01\x05x", 4, CORRAL_EPROTO, "ext value");
	refuse("\xc1", 1, CORRAL_EPROTO, "invalid type byte 0xc1");
	refuse("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9, CORRAL_EPROTO,
	       "does not fit int64");
	refuse("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, CORRAL_EPROTO,
	       "not a finite number");
	refuse("\xca\x7f\x80\x00\x00", 5, CORRAL_EPROTO, "not a finite number");
	/* Counts that the bytes cannot hold: refused before msgpack-c
	 * allocates anything. */
	refuse("\xdd\xff\xff\xff\xff", 5, CORRAL_ETRUNC,
	       "declares 4294967295 elements");
	refuse("\xdf\xff\xff\xff\xff\xc0", 6, CORRAL_ETRUNC,
	       "declares 8589934590 elements");
	refuse("\xdb\xff\xff\xff\xff", 5, CORRAL_ETRUNC, "ends past");

	/* Nesting: 16 levels pass, 17 do not. */
	n = nest(b, CLUSTER_MSG_DEPTH_MAX);
	assert_int_equal(unpack(b, n, &out), 0);
	json_decref(out);
	n = nest(b, CLUSTER_MSG_DEPTH_MAX + 1);
	refuse(b, n, CORRAL_EPROTO, "nested deeper than 16 at byte 16");
	/* Deeper than msgpack-c's own stack (32). */
	n = nest(b, 40);
	refuse(b, n, CORRAL_EPROTO, "nested deeper than 16");

	/* Element budget: an array of 99999 nils is the most (with the
	 * array itself), one more is refused. */
	many = malloc(5 + CLUSTER_MSG_ITEMS_MAX);
	assert_non_null(many);
	memset(many, 0xc0, 5 + CLUSTER_MSG_ITEMS_MAX);
	many[0] = 0xdd;
	many[1] = 0;
	many[2] = (CLUSTER_MSG_ITEMS_MAX - 1) >> 16;
	many[3] = ((CLUSTER_MSG_ITEMS_MAX - 1) >> 8) & 0xff;
	many[4] = (CLUSTER_MSG_ITEMS_MAX - 1) & 0xff;
	assert_int_equal(unpack(many, 5 + CLUSTER_MSG_ITEMS_MAX - 1, &out), 0);
	assert_int_equal(json_array_size(out), CLUSTER_MSG_ITEMS_MAX - 1);
	json_decref(out);
	many[2] = CLUSTER_MSG_ITEMS_MAX >> 16;
	many[3] = (CLUSTER_MSG_ITEMS_MAX >> 8) & 0xff;
	many[4] = CLUSTER_MSG_ITEMS_MAX & 0xff;
	refuse(many, 5 + CLUSTER_MSG_ITEMS_MAX, CORRAL_EPROTO,
	       "more than 100000 elements");
	free(many);
}

/* Every single-byte change of a valid message decodes or is refused
 * cleanly (ASan and UBSan watch the build of this test). */
static void test_mutations(void **state)
{
	json_t *v = changed();
	char *bytes;
	size_t len;
	size_t i;
	unsigned x;

	(void)state;
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), 0);
	for (i = 0; i < len; i++) {
		char keep = bytes[i];

		for (x = 0; x < 256; x++) {
			json_t *out;

			bytes[i] = (char)x;
			if (unpack(bytes, len, &out) == 0) {
				assert_non_null(out);
				json_decref(out);
			}
		}
		bytes[i] = keep;
	}
	free(bytes);
	json_decref(v);
}

static void test_pack_refuses(void **state)
{
	json_t *v;
	json_t *inner;
	char *bytes = NULL;
	size_t len = 0;
	int i;

	(void)state;
	assert_int_equal(cluster_msg_pack(NULL, &bytes, &len), CORRAL_EINVALID);
	/* What the decoder would refuse is not sent. */
	v = json_stringn("a\0b", 3);
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), CORRAL_EINVALID);
	json_decref(v);
	v = json_object();
	json_object_setn_new(v, "a\0b", 3, json_true());
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), CORRAL_EINVALID);
	json_decref(v);
	/* 16 levels of objects pack, 17 do not. */
	v = json_object();
	inner = v;
	for (i = 1; i < CLUSTER_MSG_DEPTH_MAX; i++) {
		json_t *next = json_object();

		json_object_set_new(inner, "x", next);
		inner = next;
	}
	round_trip(v);
	json_object_set_new(inner, "x", json_array());
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), CORRAL_EINVALID);
	json_decref(v);
	/* The element budget. */
	v = json_array();
	for (i = 0; i < CLUSTER_MSG_ITEMS_MAX; i++) {
		json_array_append_new(v, json_null());
	}
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), CORRAL_EINVALID);
	json_array_remove(v, 0);
	round_trip(v);
	json_decref(v);
	assert_null(bytes);
}

/*
 * Heap fault injection: the Nth jansson allocation fails.
 */

static int fault_countdown; /* fail when it reaches 0; < 0: never */
static long fault_live;     /* allocations not yet freed */

static void *fault_malloc(size_t size)
{
	void *p;

	if (fault_countdown >= 0 && fault_countdown-- == 0) {
		return NULL;
	}
	p = malloc(size);
	if (p != NULL) {
		fault_live++;
	}
	return p;
}

static void fault_free(void *ptr)
{
	if (ptr != NULL) {
		fault_live--;
	}
	free(ptr);
}

static void test_unpack_enomem(void **state)
{
	json_t *v = changed();
	json_t *want = changed();
	char *bytes;
	size_t len;
	int n;

	(void)state;
	assert_int_equal(cluster_msg_pack(v, &bytes, &len), 0);
	json_decref(v);
	json_set_alloc_funcs(fault_malloc, fault_free);
	for (n = 0;; n++) {
		json_t *out;
		int rv;

		fault_countdown = n;
		fault_live = 0;
		rv = unpack(bytes, len, &out);
		if (rv == 0) {
			assert_true(json_equal(out, want));
			json_decref(out);
			assert_int_equal(fault_live, 0);
			if (fault_countdown >= 0) {
				break; /* no allocation failed */
			}
			continue;
		}
		assert_int_equal(rv, -ENOMEM);
		assert_int_equal(fault_live, 0);
	}
	json_set_alloc_funcs(malloc, free);
	assert_true(n > 10);
	free(bytes);
	json_decref(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_types),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_pack_refuses),
		cmocka_unit_test(test_unpack_enomem),
	};
	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
