#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <corral/err.h>
#include <corral/secret.h>

#define SALT_LEN 16
#define KEY_LEN 32

static void to_hex(const unsigned char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int from_hex(const char *in, size_t len, unsigned char *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned v;
		if (sscanf(in + 2 * i, "%2x", &v) != 1) {
			return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int derive(const char *secret,
		  const unsigned char *salt,
		  unsigned long long n,
		  unsigned long long r,
		  unsigned long long p,
		  unsigned char *key)
{
	if (EVP_PBE_scrypt(secret, strlen(secret), salt, SALT_LEN, n, r, p,
			   64 * 1024 * 1024, key, KEY_LEN) != 1) {
		return CORRAL_ETLS;
	}
	return 0;
}

int secret_hash(const char *secret, char out[SECRET_HASH_SIZE])
{
	unsigned char salt[SALT_LEN];
	unsigned char key[KEY_LEN];
	char salt_hex[2 * SALT_LEN + 1];
	char key_hex[2 * KEY_LEN + 1];
	int rv;

	if (RAND_bytes(salt, sizeof salt) != 1) {
		return CORRAL_ETLS;
	}
	rv = derive(secret, salt, 16384, 8, 1, key);
	if (rv != 0) {
		return rv;
	}
	to_hex(salt, sizeof salt, salt_hex);
	to_hex(key, sizeof key, key_hex);
	OPENSSL_cleanse(key, sizeof key);
	snprintf(out, SECRET_HASH_SIZE, "scrypt$16384$8$1$%s$%s", salt_hex,
		 key_hex);
	return 0;
}

bool secret_verify(const char *secret, const char *stored)
{
	unsigned long long n;
	unsigned long long r;
	unsigned long long p;
	char salt_hex[2 * SALT_LEN + 1];
	char key_hex[2 * KEY_LEN + 1];
	unsigned char salt[SALT_LEN];
	unsigned char want[KEY_LEN];
	unsigned char got[KEY_LEN];
	bool ok;

	if (stored == NULL ||
	    sscanf(stored, "scrypt$%llu$%llu$%llu$%32[0-9a-f]$%64[0-9a-f]", &n,
		   &r, &p, salt_hex, key_hex) != 5 ||
	    strlen(salt_hex) != 2 * SALT_LEN ||
	    strlen(key_hex) != 2 * KEY_LEN || n > (1u << 20) || r > 32 ||
	    p > 16) {
		return false;
	}
	if (from_hex(salt_hex, SALT_LEN, salt) != 0 ||
	    from_hex(key_hex, KEY_LEN, want) != 0) {
		return false;
	}
	if (derive(secret, salt, n, r, p, got) != 0) {
		return false;
	}
	ok = CRYPTO_memcmp(got, want, KEY_LEN) == 0;
	OPENSSL_cleanse(got, sizeof got);
	return ok;
}
