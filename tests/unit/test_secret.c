/* Unit tests of node/secret.c: scrypt hashing of secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <corral/secret.h>

static void test_hash_verify(void **state)
{
	char a[SECRET_HASH_SIZE];
	char b[SECRET_HASH_SIZE];

	(void)state;
	assert_int_equal(secret_hash("s3cret", a), 0);
	assert_int_equal(secret_hash("s3cret", b), 0);
	/* Salted: the same secret never hashes the same way twice. */
	assert_string_not_equal(a, b);
	assert_non_null(strstr(a, "scrypt$16384$8$1$"));
	/* The clear text appears nowhere in the stored form. */
	assert_null(strstr(a, "s3cret"));
	assert_true(secret_verify("s3cret", a));
	assert_true(secret_verify("s3cret", b));
	assert_false(secret_verify("s3cret ", a));
	assert_false(secret_verify("", a));
	assert_false(secret_verify("S3cret", a));
}

static void test_malformed_stored(void **state)
{
	(void)state;
	assert_false(secret_verify("x", NULL));
	assert_false(secret_verify("x", ""));
	assert_false(secret_verify("x", "x"));
	assert_false(secret_verify("x", "scrypt$16384$8$1$zz$zz"));
	/* Absurd cost parameters are refused, not computed. */
	assert_false(secret_verify(
	    "x",
	    "scrypt$1099511627776$8$1$00112233445566778899aabbccddeeff$"
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
	    "eeff"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_verify),
		cmocka_unit_test(test_malformed_stored),
	};
	return cmocka_run_group_tests_name("secret", tests, NULL, NULL);
}
