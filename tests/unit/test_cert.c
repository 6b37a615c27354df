#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <corral/cert.h>
#include <corral/err.h>

/* Per-test fixture: a private temporary directory, removed afterwards. */
struct fixture {
	char dir[64];
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* Keys that take long to generate, shared by the policy tests. */
static EVP_PKEY *rsa4096;
static EVP_PKEY *rsa2048;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/corral-test-cert-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *e;
	char path[PATH_MAX];
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0) {
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
		assert_int_equal(unlink(path), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	rsa4096 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	return rsa4096 == NULL || rsa2048 == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa4096);
	EVP_PKEY_free(rsa2048);
	return 0;
}

static void host_name(char *buf, size_t size)
{
	assert_int_equal(gethostname(buf, size), 0);
	buf[size - 1] = '\0';
}

static char *path_in(struct fixture *f, const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", f->dir, name);
	return path;
}

static int count_entries(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}

static X509 *load_x509(const char *path)
{
	X509 *x;
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *load_key(const char *path)
{
	EVP_PKEY *pkey;
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(pkey);
	return pkey;
}

static X509 *x509_from_string(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;

	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(x);
	return x;
}

/* Fingerprint computed without cert.c: X509_digest() in hex. */
static void reference_fingerprint(X509 *x, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	unsigned int i;

	assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
	assert_int_equal(n, 32);
	for (i = 0; i < n; i++) {
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	}
}

static void fingerprint_file(const char *path, char out[65])
{
	char *pem = NULL;
	size_t len = 0;

	assert_int_equal(cert_read_file(path, &pem, &len), 0);
	assert_int_equal(len, strlen(pem));
	assert_int_equal(cert_fingerprint_pem(pem, len, out), 0);
	free(pem);
}

/* A minimal self-signed certificate for @key, signed with @md (NULL for
 * Ed25519). */
static X509 *make_cert(EVP_PKEY *key, const EVP_MD *md)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 42), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				       (const unsigned char *)"t", -1, -1, 0),
	    1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_true(X509_sign(x, key, md) > 0);
	return x;
}

static void test_generate(void **state)
{
	struct fixture *f = *state;
	char host[256];
	char cn[256];
	char group[64];
	size_t group_len = 0;
	bool generated = false;
	struct stat st;
	EVP_PKEY *key;
	X509 *x;
	GENERAL_NAMES *names;
	bool san_dns = false;
	bool san_ip = false;
	int days = 0;
	int secs = 0;
	time_t now = time(NULL);
	int i;

	host_name(host, sizeof host);
	assert_int_equal(cert_ensure(f->dir, "server.crt", "server.key",
				     &generated, f->errmsg),
			 0);
	assert_true(generated);
	/* Only the two files: no temporary file left behind. */
	assert_int_equal(count_entries(f->dir), 2);

	assert_int_equal(stat(path_in(f, "server.key"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(path_in(f, "server.crt"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	key = load_key(path_in(f, "server.key"));
	assert_true(EVP_PKEY_is_a(key, "EC"));
	assert_int_equal(
	    EVP_PKEY_get_group_name(key, group, sizeof group, &group_len), 1);
	assert_int_equal(OBJ_sn2nid(group), NID_secp384r1);

	x = load_x509(path_in(f, "server.crt"));
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
	assert_int_equal(X509_check_private_key(x, key), 1);
	assert_int_equal(X509_verify(x, key), 1);
	assert_int_equal(
	    X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)),
	    0);

	/* Serial: positive, non-zero, at most 128 bits. */
	{
		BIGNUM *bn =
		    ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		assert_non_null(bn);
		assert_false(BN_is_negative(bn));
		assert_false(BN_is_zero(bn));
		assert_true(BN_num_bits(bn) <= 128);
		BN_free(bn);
	}

	/* Validity: from about a minute ago, for ten calendar years. */
	assert_true(X509_cmp_time(X509_get0_notBefore(x), &now) < 0);
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
					X509_get0_notAfter(x)),
			 1);
	assert_true(days >= 3652 && days <= 3653);

	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
					      NID_commonName, cn,
					      sizeof cn) > 0);
	assert_string_equal(cn, host);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
					      NID_organizationName, cn,
					      sizeof cn) > 0);
	assert_string_equal(cn, "corral");

	names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(names);
	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		int type;
		const ASN1_STRING *v = GENERAL_NAME_get0_value(gn, &type);

		if (type == GEN_DNS &&
		    (size_t)ASN1_STRING_length(v) == strlen(host) &&
		    memcmp(ASN1_STRING_get0_data(v), host, strlen(host)) == 0) {
			san_dns = true;
		}
		if (type == GEN_IPADD && ASN1_STRING_length(v) == 4 &&
		    memcmp(ASN1_STRING_get0_data(v), "\x7f\0\0\x01", 4) == 0) {
			san_ip = true;
		}
	}
	GENERAL_NAMES_free(names);
	assert_true(san_dns);
	assert_true(san_ip);

	/* LXD's extension set: not a CA, server and client auth. */
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
	assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);

	/* Our own policy accepts what we generate. */
	assert_int_equal(cert_check_policy(x, f->errmsg), 0);

	X509_free(x);
	EVP_PKEY_free(key);
}

/* A self-signed certificate without CA:TRUE must still verify against
 * itself as trust anchor, or pinned clients could not use it. */
static void test_generate_verifies_as_own_anchor(void **state)
{
	struct fixture *f = *state;
	bool generated = false;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	X509 *x;

	(void)f;
	assert_int_equal(cert_ensure(f->dir, "server.crt", "server.key",
				     &generated, f->errmsg),
			 0);
	x = load_x509(path_in(f, "server.crt"));
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	assert_non_null(store);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(store, x), 1);
	X509_VERIFY_PARAM_set_flags(X509_STORE_get0_param(store),
				    X509_V_FLAG_X509_STRICT);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, x, NULL), 1);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(x);
}

static void test_ensure_keeps_existing(void **state)
{
	struct fixture *f = *state;
	char fp1[65];
	char fp2[65];
	bool generated = false;

	assert_int_equal(cert_ensure(f->dir, "server.crt", "server.key",
				     &generated, f->errmsg),
			 0);
	assert_true(generated);
	fingerprint_file(path_in(f, "server.crt"), fp1);

	assert_int_equal(cert_ensure(f->dir, "server.crt", "server.key",
				     &generated, f->errmsg),
			 0);
	assert_false(generated);
	fingerprint_file(path_in(f, "server.crt"), fp2);
	assert_string_equal(fp1, fp2);
}

static void test_ensure_regenerates_on_missing_key(void **state)
{
	struct fixture *f = *state;
	char fp1[65];
	char fp2[65];
	bool generated = false;
	EVP_PKEY *key;
	X509 *x;

	assert_int_equal(cert_ensure(f->dir, "server.crt", "server.key",
				     &generated, f->errmsg),
			 0);
	fingerprint_file(path_in(f, "server.crt"), fp1);
	assert_int_equal(unlink(path_in(f, "server.key")), 0);

	assert_int_equal(cert_ensure(f->dir, "server.crt", "server.key",
				     &generated, f->errmsg),
			 0);
	assert_true(generated);
	fingerprint_file(path_in(f, "server.crt"), fp2);
	assert_string_not_equal(fp1, fp2);

	/* Both were replaced: the new key matches the new certificate. */
	key = load_key(path_in(f, "server.key"));
	x = load_x509(path_in(f, "server.crt"));
	assert_int_equal(X509_check_private_key(x, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void test_ensure_regenerates_on_missing_cert(void **state)
{
	struct fixture *f = *state;
	bool generated = false;
	EVP_PKEY *key;
	X509 *x;

	assert_int_equal(cert_ensure(f->dir, "cluster.crt", "cluster.key",
				     &generated, f->errmsg),
			 0);
	assert_int_equal(unlink(path_in(f, "cluster.crt")), 0);
	assert_int_equal(cert_ensure(f->dir, "cluster.crt", "cluster.key",
				     &generated, f->errmsg),
			 0);
	assert_true(generated);
	key = load_key(path_in(f, "cluster.key"));
	x = load_x509(path_in(f, "cluster.crt"));
	assert_int_equal(X509_check_private_key(x, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void test_ensure_missing_dir(void **state)
{
	struct fixture *f = *state;
	char dir[PATH_MAX];
	bool generated = true;
	int rv;

	snprintf(dir, sizeof dir, "%s/absent", f->dir);
	f->errmsg[0] = '\0';
	rv =
	    cert_ensure(dir, "server.crt", "server.key", &generated, f->errmsg);
	assert_int_equal(rv, -ENOENT);
	assert_false(generated);
	assert_non_null(strstr(f->errmsg, "mkostemp("));
	assert_non_null(strstr(f->errmsg, "No such file or directory"));
}

static void test_fingerprint(void **state)
{
	struct fixture *f = *state;
	char *crt = NULL;
	char *key = NULL;
	char fp[65];
	char fp_x509[65];
	char ref[65];
	X509 *x;
	size_t i;

	assert_int_equal(cert_generate_pem("root@host", &crt, &key, f->errmsg),
			 0);
	assert_non_null(strstr(crt, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));
	x = x509_from_string(crt);
	reference_fingerprint(x, ref);

	assert_int_equal(cert_fingerprint_pem(crt, strlen(crt), fp), 0);
	assert_int_equal(cert_fingerprint_x509(x, fp_x509), 0);
	assert_string_equal(fp, ref);
	assert_string_equal(fp_x509, ref);
	assert_int_equal(strlen(fp), CORRAL_CERT_FINGERPRINT_LEN);
	for (i = 0; i < strlen(fp); i++) {
		assert_true((fp[i] >= '0' && fp[i] <= '9') ||
			    (fp[i] >= 'a' && fp[i] <= 'f'));
	}

	{
		char cn[128];

		assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
						      NID_commonName, cn,
						      sizeof cn) > 0);
		assert_string_equal(cn, "root@host");
	}

	/* Not a certificate. */
	assert_int_equal(cert_fingerprint_pem(key, strlen(key), fp),
			 CORRAL_EINVALID);
	assert_int_equal(cert_fingerprint_pem("garbage", 7, fp),
			 CORRAL_EINVALID);
	assert_int_equal(cert_fingerprint_x509(NULL, fp), -EINVAL);

	X509_free(x);
	OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(crt);
}

static void test_generate_long_cn(void **state)
{
	struct fixture *f = *state;
	char long_cn[200];
	char cn[256];
	char *crt = NULL;
	char *key = NULL;
	X509 *x;

	memset(long_cn, 'a', sizeof long_cn - 1);
	long_cn[sizeof long_cn - 1] = '\0';
	assert_int_equal(cert_generate_pem(long_cn, &crt, &key, f->errmsg), 0);
	x = x509_from_string(crt);
	assert_int_equal(
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
				      cn, sizeof cn),
	    64);
	X509_free(x);
	free(key);
	free(crt);

	assert_int_equal(cert_generate_pem("", &crt, &key, f->errmsg), -EINVAL);
	assert_null(crt);
	assert_null(key);
}

static void test_policy(void **state)
{
	struct fixture *f = *state;
	char *crt = NULL;
	char *key = NULL;
	EVP_PKEY *ec256;
	EVP_PKEY *k256;
	EVP_PKEY *ed;
	X509 *x;

	/* RSA-2048 is refused whatever the digest. */
	x = make_cert(rsa2048, EVP_sha256());
	assert_int_equal(cert_check_policy(x, f->errmsg), CORRAL_EINVALID);
	assert_non_null(strstr(f->errmsg, "2048"));
	X509_free(x);

	/* SHA-1 is refused even with a big enough key. */
	x = make_cert(rsa4096, EVP_sha1());
	assert_int_equal(X509_get_signature_nid(x), NID_sha1WithRSAEncryption);
	assert_int_equal(cert_check_policy(x, f->errmsg), CORRAL_EINVALID);
	assert_non_null(strstr(f->errmsg, "sha1WithRSAEncryption"));
	X509_free(x);

	/* RSA-4096 with SHA-256 is fine. */
	x = make_cert(rsa4096, EVP_sha256());
	assert_int_equal(cert_check_policy(x, f->errmsg), 0);
	X509_free(x);

	/* Our own P-384 certificate is fine. */
	assert_int_equal(cert_generate_pem("root@host", &crt, &key, f->errmsg),
			 0);
	x = x509_from_string(crt);
	assert_int_equal(cert_check_policy(x, f->errmsg), 0);
	X509_free(x);
	free(key);
	free(crt);

	/* P-256: fine with SHA-256, refused with SHA-1. */
	ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(ec256);
	x = make_cert(ec256, EVP_sha256());
	assert_int_equal(cert_check_policy(x, f->errmsg), 0);
	X509_free(x);
	x = make_cert(ec256, EVP_sha1());
	assert_int_equal(cert_check_policy(x, f->errmsg), CORRAL_EINVALID);
	assert_non_null(strstr(f->errmsg, "SHA-2 required"));
	X509_free(x);
	EVP_PKEY_free(ec256);

	/* Curves outside the NIST three are refused. */
	k256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	assert_non_null(k256);
	x = make_cert(k256, EVP_sha256());
	assert_int_equal(cert_check_policy(x, f->errmsg), CORRAL_EINVALID);
	assert_non_null(strstr(f->errmsg, "secp256k1"));
	X509_free(x);
	EVP_PKEY_free(k256);

	/* Ed25519 signs without a separate digest and is fine. */
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(ed);
	x = make_cert(ed, NULL);
	assert_int_equal(cert_check_policy(x, f->errmsg), 0);
	X509_free(x);
	EVP_PKEY_free(ed);

	assert_int_equal(cert_check_policy(NULL, f->errmsg), -EINVAL);
}

/* Base64 of @x's DER encoding, wrapped every @width characters with
 * @newline. */
static char *wrapped_base64(X509 *x, size_t width, const char *newline)
{
	unsigned char *der = NULL;
	int der_len = i2d_X509(x, &der);
	size_t b64_cap;
	char *b64;
	char *out;
	size_t i;
	size_t n = 0;

	assert_true(der_len > 0);
	b64_cap = ((size_t)der_len + 2) / 3 * 4 + 1;
	b64 = malloc(b64_cap);
	assert_non_null(b64);
	assert_true(EVP_EncodeBlock((unsigned char *)b64, der, der_len) > 0);
	OPENSSL_free(der);

	out = malloc(b64_cap * (1 + strlen(newline)) + 1);
	assert_non_null(out);
	for (i = 0; b64[i] != '\0'; i++) {
		if (i > 0 && i % width == 0) {
			memcpy(out + n, newline, strlen(newline));
			n += strlen(newline);
		}
		out[n++] = b64[i];
	}
	memcpy(out + n, newline, strlen(newline));
	n += strlen(newline);
	out[n] = '\0';
	free(b64);
	return out;
}

static void test_base64(void **state)
{
	struct fixture *f = *state;
	char *crt = NULL;
	char *key = NULL;
	char *b64;
	char *pem = NULL;
	char ref[65];
	char fp[65];
	X509 *x;
	size_t len;

	assert_int_equal(cert_generate_pem("root@host", &crt, &key, f->errmsg),
			 0);
	x = x509_from_string(crt);
	reference_fingerprint(x, ref);

	/* Wrapped like base64.encodebytes(), and with CRLF and spaces. */
	b64 = wrapped_base64(x, 76, "\n");
	assert_non_null(strchr(b64, '\n'));
	assert_int_equal(cert_pem_from_base64_der(b64, strlen(b64), &pem), 0);
	assert_int_equal(cert_fingerprint_pem(pem, strlen(pem), fp), 0);
	assert_string_equal(fp, ref);
	free(pem);
	pem = NULL;
	free(b64);

	b64 = wrapped_base64(x, 10, " \r\n\t");
	assert_int_equal(cert_pem_from_base64_der(b64, strlen(b64), &pem), 0);
	assert_int_equal(cert_fingerprint_pem(pem, strlen(pem), fp), 0);
	assert_string_equal(fp, ref);
	free(pem);
	pem = NULL;

	/* Without its '=' padding. */
	len = strlen(b64);
	while (len > 0 && strchr(" \r\n\t=", b64[len - 1]) != NULL) {
		len--;
	}
	assert_int_equal(cert_pem_from_base64_der(b64, len, &pem), 0);
	free(pem);
	pem = NULL;

	/* Truncated DER. */
	assert_int_equal(cert_pem_from_base64_der(b64, strlen(b64) / 2, &pem),
			 CORRAL_EINVALID);
	assert_null(pem);
	free(b64);

	/* PEM passes through. */
	assert_int_equal(cert_pem_from_base64_der(crt, strlen(crt), &pem), 0);
	assert_string_equal(pem, crt);
	free(pem);
	pem = NULL;

	/* Garbage of every kind. */
	assert_int_equal(cert_pem_from_base64_der("", 0, &pem),
			 CORRAL_EINVALID);
	assert_int_equal(cert_pem_from_base64_der("not base64!!", 12, &pem),
			 CORRAL_EINVALID);
	assert_int_equal(cert_pem_from_base64_der("aGVsbG8gd29ybGQ=", 16, &pem),
			 CORRAL_EINVALID);
	assert_int_equal(cert_pem_from_base64_der("aGVs=bG8", 8, &pem),
			 CORRAL_EINVALID);
	assert_int_equal(cert_pem_from_base64_der("A", 1, &pem),
			 CORRAL_EINVALID);
	assert_int_equal(cert_pem_from_base64_der(key, strlen(key), &pem),
			 CORRAL_EINVALID);
	assert_null(pem);

	X509_free(x);
	free(key);
	free(crt);
}

static void test_base64_trailing_bytes(void **state)
{
	struct fixture *f = *state;
	char *crt = NULL;
	char *key = NULL;
	unsigned char *der = NULL;
	unsigned char *padded;
	char *b64;
	char *pem = NULL;
	int der_len;
	X509 *x;

	assert_int_equal(cert_generate_pem("root@host", &crt, &key, f->errmsg),
			 0);
	x = x509_from_string(crt);
	der_len = i2d_X509(x, &der);
	assert_true(der_len > 0);
	padded = malloc((size_t)der_len + 3);
	assert_non_null(padded);
	memcpy(padded, der, (size_t)der_len);
	memcpy(padded + der_len, "xyz", 3);
	b64 = malloc(((size_t)der_len + 5) / 3 * 4 + 1);
	assert_non_null(b64);
	assert_true(EVP_EncodeBlock((unsigned char *)b64, padded, der_len + 3) >
		    0);
	assert_int_equal(cert_pem_from_base64_der(b64, strlen(b64), &pem),
			 CORRAL_EINVALID);
	assert_null(pem);

	free(b64);
	free(padded);
	OPENSSL_free(der);
	X509_free(x);
	free(key);
	free(crt);
}

static void test_read_write_file(void **state)
{
	struct fixture *f = *state;
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	char big[10000];

	assert_int_equal(cert_read_file(path_in(f, "missing"), &data, &len),
			 -ENOENT);
	assert_null(data);

	memset(big, 'x', sizeof big);
	assert_int_equal(cert_write_file(path_in(f, "file"), big, sizeof big,
					 0640, f->errmsg),
			 0);
	assert_int_equal(stat(path_in(f, "file"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(cert_read_file(path_in(f, "file"), &data, &len), 0);
	assert_int_equal(len, sizeof big);
	assert_memory_equal(data, big, sizeof big);
	assert_int_equal(data[len], '\0');
	free(data);

	/* Replacing keeps no temporary file. */
	assert_int_equal(
	    cert_write_file(path_in(f, "file"), "ab", 2, 0600, f->errmsg), 0);
	assert_int_equal(cert_read_file(path_in(f, "file"), &data, NULL), 0);
	assert_string_equal(data, "ab");
	free(data);
	assert_int_equal(count_entries(f->dir), 1);

	/* Empty file. */
	assert_int_equal(
	    cert_write_file(path_in(f, "file"), NULL, 0, 0600, f->errmsg), 0);
	assert_int_equal(cert_read_file(path_in(f, "file"), &data, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_generate_verifies_as_own_anchor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_keeps_existing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_ensure_regenerates_on_missing_key, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_ensure_regenerates_on_missing_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ensure_missing_dir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fingerprint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_generate_long_cn, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base64, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base64_trailing_bytes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_write_file, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
