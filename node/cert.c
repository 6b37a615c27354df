#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <corral/cert.h>
#include <corral/err.h>

/* No certificate, key or CRL we read comes near this; it bounds what a
 * mistaken path (or a hostile request body) can make us allocate. */
#define CERT_MAX_FILE_SIZE (16 * 1024 * 1024)

/* X.509's upper bound on the length of a common name, in characters. */
#define CERT_CN_MAX_CHARS 64

/* Ten years, like LXD's certificates. */
#define CERT_VALIDITY_YEARS 10

/* Backdating notBefore tolerates clocks that are slightly behind ours. */
#define CERT_BACKDATE_SECONDS 60

/* Fill @errmsg with "@call(): <reason of the last OpenSSL error>", clear
 * OpenSSL's error queue and return the matching code. */
static int ossl_fail(char *errmsg, const char *call)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = NULL;
	int rv = CORRAL_ETLS;

	if (e != 0) {
		reason = ERR_reason_error_string(e);
		if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
			rv = -ENOMEM;
		}
	}
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s(): %s", call,
		    reason != NULL ? reason : "unknown error");
	ERR_clear_error();
	return rv;
}

/* Code for an input OpenSSL refused to parse: -ENOMEM when it ran out of
 * memory, else @rv. Clears OpenSSL's error queue. */
static int ossl_parse_fail(int rv)
{
	unsigned long e = ERR_peek_last_error();

	if (e != 0 && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
		rv = -ENOMEM;
	}
	ERR_clear_error();
	return rv;
}

/* PEM password callback that refuses: OpenSSL's default one would prompt
 * on the terminal when handed an encrypted PEM block. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Copy the contents of the memory BIO @bio into a malloc'd NUL-terminated
 * string. */
static int bio_to_string(BIO *bio, char **out)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	char *s;

	if (n < 0 || data == NULL) {
		return CORRAL_ETLS;
	}
	s = malloc((size_t)n + 1);
	if (s == NULL) {
		return -ENOMEM;
	}
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*out = s;
	return 0;
}

/* Length in bytes of the longest prefix of the UTF-8 string @s that holds at
 * most @max_chars characters. */
static size_t utf8_prefix_len(const char *s, size_t max_chars)
{
	size_t chars = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xC0) != 0x80) {
			if (chars == max_chars) {
				break;
			}
			chars++;
		}
	}
	return i;
}

/* Whether @s can be a dNSName: non-empty printable ASCII. */
static bool is_dns_name(const char *s)
{
	if (s[0] == '\0') {
		return false;
	}
	for (; *s != '\0'; s++) {
		if (*s <= ' ' || *s > '~') {
			return false;
		}
	}
	return true;
}

/* Put the host name into @buf, falling back to "localhost" when it cannot
 * be had, so that a certificate can always be generated. */
static void host_name(char *buf, size_t size)
{
	if (gethostname(buf, size) != 0) {
		buf[0] = '\0';
	}
	buf[size - 1] = '\0';
	if (buf[0] == '\0') {
		snprintf(buf, size, "localhost");
	}
}

static int set_name(X509 *x, const char *cn, char *errmsg)
{
	X509_NAME *name = X509_get_subject_name(x);
	int cn_len = (int)utf8_prefix_len(cn, CERT_CN_MAX_CHARS);

	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					(const unsigned char *)"corral", -1, -1,
					0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, cn_len, -1,
					0)) {
		return ossl_fail(errmsg, "X509_NAME_add_entry_by_txt");
	}
	if (!X509_set_issuer_name(x, name)) {
		return ossl_fail(errmsg, "X509_set_issuer_name");
	}
	return 0;
}

static int set_serial(X509 *x, char *errmsg)
{
	unsigned char buf[16];
	BIGNUM *bn = NULL;
	bool zero;
	size_t i;
	int rv = 0;

	/* A zero serial is not allowed (RFC 5280 4.1.2.2); BN_bin2bn makes the
	 * number positive, so all 128 random bits are kept. */
	do {
		if (RAND_bytes(buf, (int)sizeof buf) != 1) {
			return ossl_fail(errmsg, "RAND_bytes");
		}
		zero = true;
		for (i = 0; i < sizeof buf; i++) {
			zero = zero && buf[i] == 0;
		}
	} while (zero);

	bn = BN_bin2bn(buf, (int)sizeof buf, NULL);
	if (bn == NULL) {
		return ossl_fail(errmsg, "BN_bin2bn");
	}
	if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
		rv = ossl_fail(errmsg, "BN_to_ASN1_INTEGER");
	}
	BN_free(bn);
	return rv;
}

static int set_validity(X509 *x, char *errmsg)
{
	time_t now = time(NULL);
	time_t not_after;
	struct tm tm;

	if (gmtime_r(&now, &tm) == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "gmtime_r(): time out of range");
		return -EOVERFLOW;
	}
	/* Calendar years, like LXD's AddDate(10, 0, 0); timegm() normalizes
	 * February 29th to March 1st. */
	tm.tm_year += CERT_VALIDITY_YEARS;
	not_after = timegm(&tm);
	if (not_after == (time_t)-1) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "timegm(): time out of range");
		return -EOVERFLOW;
	}
	if (ASN1_TIME_set(X509_getm_notBefore(x),
			  now - CERT_BACKDATE_SECONDS) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL) {
		return ossl_fail(errmsg, "ASN1_TIME_set");
	}
	return 0;
}

static int add_ext(X509 *x,
		   X509V3_CTX *ctx,
		   int nid,
		   const char *value,
		   char *errmsg)
{
	X509_EXTENSION *ext;
	int rv = 0;

	ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (ext == NULL) {
		return ossl_fail(errmsg, "X509V3_EXT_conf_nid");
	}
	if (!X509_add_ext(x, ext, -1)) {
		rv = ossl_fail(errmsg, "X509_add_ext");
	}
	X509_EXTENSION_free(ext);
	return rv;
}

/* subjectAltName DNS:@host, IP:127.0.0.1, built as structures rather than
 * through the configuration syntax so that no character of a host name can
 * be read as syntax. */
static int add_san(X509 *x, const char *host, char *errmsg)
{
	GENERAL_NAMES *names = NULL;
	GENERAL_NAME *name = NULL;
	ASN1_IA5STRING *dns = NULL;
	ASN1_OCTET_STRING *ip = NULL;
	int rv = 0;

	names = GENERAL_NAMES_new();
	if (names == NULL) {
		rv = ossl_fail(errmsg, "GENERAL_NAMES_new");
		goto err;
	}
	if (is_dns_name(host)) {
		name = GENERAL_NAME_new();
		dns = ASN1_IA5STRING_new();
		if (name == NULL || dns == NULL ||
		    !ASN1_STRING_set(dns, host, (int)strlen(host))) {
			rv = ossl_fail(errmsg, "ASN1_STRING_set");
			goto err_after_name;
		}
		GENERAL_NAME_set0_value(name, GEN_DNS, dns);
		dns = NULL;
		if (!sk_GENERAL_NAME_push(names, name)) {
			rv = ossl_fail(errmsg, "sk_GENERAL_NAME_push");
			goto err_after_name;
		}
		name = NULL;
	}
	name = GENERAL_NAME_new();
	ip = a2i_IPADDRESS("127.0.0.1");
	if (name == NULL || ip == NULL) {
		rv = ossl_fail(errmsg, "a2i_IPADDRESS");
		goto err_after_name;
	}
	GENERAL_NAME_set0_value(name, GEN_IPADD, ip);
	ip = NULL;
	if (!sk_GENERAL_NAME_push(names, name)) {
		rv = ossl_fail(errmsg, "sk_GENERAL_NAME_push");
		goto err_after_name;
	}
	name = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0,
			      X509V3_ADD_DEFAULT) != 1) {
		rv = ossl_fail(errmsg, "X509_add1_ext_i2d");
	}

err_after_name:
	ASN1_OCTET_STRING_free(ip);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(name);
	GENERAL_NAMES_free(names);
err:
	return rv;
}

static int add_extensions(X509 *x, const char *host, char *errmsg)
{
	X509V3_CTX ctx;
	int rv;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&ctx);
	/* LXD's certificate shape; OpenSSL 3 accepts a self-signed
	 * certificate without CA:TRUE as its own trust anchor. The key
	 * identifiers keep strict verifiers (Python 3.13's default
	 * VERIFY_X509_STRICT) happy. */
	rv = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE",
		     errmsg);
	if (rv == 0) {
		rv = add_ext(x, &ctx, NID_key_usage,
			     "critical,digitalSignature,keyEncipherment",
			     errmsg);
	}
	if (rv == 0) {
		rv = add_ext(x, &ctx, NID_ext_key_usage,
			     "serverAuth,clientAuth", errmsg);
	}
	if (rv == 0) {
		rv = add_ext(x, &ctx, NID_subject_key_identifier, "hash",
			     errmsg);
	}
	if (rv == 0) {
		rv = add_ext(x, &ctx, NID_authority_key_identifier,
			     "keyid:always", errmsg);
	}
	if (rv == 0) {
		rv = add_san(x, host, errmsg);
	}
	return rv;
}

int cert_generate_pem(const char *cn,
		      char **crt_pem,
		      char **key_pem,
		      char *errmsg)
{
	char host[256];
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	BIO *crt_bio = NULL;
	BIO *key_bio = NULL;
	char *crt = NULL;
	char *key = NULL;
	int rv;

	*crt_pem = NULL;
	*key_pem = NULL;
	if (cn == NULL || cn[0] == '\0') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "generate certificate: empty common name");
		return -EINVAL;
	}
	host_name(host, sizeof host);

	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (pkey == NULL) {
		rv = ossl_fail(errmsg, "EVP_PKEY_Q_keygen");
		goto err;
	}
	x = X509_new();
	if (x == NULL) {
		rv = ossl_fail(errmsg, "X509_new");
		goto err_after_keygen;
	}
	if (!X509_set_version(x, X509_VERSION_3)) {
		rv = ossl_fail(errmsg, "X509_set_version");
		goto err_after_x509;
	}
	if (!X509_set_pubkey(x, pkey)) {
		rv = ossl_fail(errmsg, "X509_set_pubkey");
		goto err_after_x509;
	}
	rv = set_serial(x, errmsg);
	if (rv == 0) {
		rv = set_validity(x, errmsg);
	}
	if (rv == 0) {
		rv = set_name(x, cn, errmsg);
	}
	if (rv == 0) {
		rv = add_extensions(x, host, errmsg);
	}
	if (rv != 0) {
		goto err_after_x509;
	}
	if (X509_sign(x, pkey, EVP_sha384()) <= 0) {
		rv = ossl_fail(errmsg, "X509_sign");
		goto err_after_x509;
	}

	crt_bio = BIO_new(BIO_s_mem());
	if (crt_bio == NULL) {
		rv = ossl_fail(errmsg, "BIO_new");
		goto err_after_x509;
	}
	if (!PEM_write_bio_X509(crt_bio, x)) {
		rv = ossl_fail(errmsg, "PEM_write_bio_X509");
		goto err_after_crt_bio;
	}
	/* Secure memory, so the key's PEM does not linger in freed heap. */
	key_bio = BIO_new(BIO_s_secmem());
	if (key_bio == NULL) {
		rv = ossl_fail(errmsg, "BIO_new");
		goto err_after_crt_bio;
	}
	if (!PEM_write_bio_PrivateKey(key_bio, pkey, NULL, NULL, 0, NULL,
				      NULL)) {
		rv = ossl_fail(errmsg, "PEM_write_bio_PrivateKey");
		goto err_after_key_bio;
	}
	rv = bio_to_string(crt_bio, &crt);
	if (rv == 0) {
		rv = bio_to_string(key_bio, &key);
	}
	if (rv != 0) {
		free(crt);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "BIO_get_mem_data(): %s", corral_strerror(rv));
		goto err_after_key_bio;
	}
	*crt_pem = crt;
	*key_pem = key;

err_after_key_bio:
	BIO_free(key_bio);
err_after_crt_bio:
	BIO_free(crt_bio);
err_after_x509:
	X509_free(x);
err_after_keygen:
	EVP_PKEY_free(pkey);
err:
	return rv;
}

/* Set *@exists for @path; only a missing file counts as absent. */
static int file_exists(const char *path, bool *exists, char *errmsg)
{
	struct stat st;
	int rv;

	if (stat(path, &st) == 0) {
		*exists = true;
		return 0;
	}
	rv = -errno;
	if (rv == -ENOENT) {
		*exists = false;
		return 0;
	}
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "stat(%s): %s", path,
		    corral_strerror(rv));
	return rv;
}

int cert_ensure(const char *dir,
		const char *crt_name,
		const char *key_name,
		bool *generated,
		char *errmsg)
{
	char host[256];
	char *crt_path = NULL;
	char *key_path = NULL;
	char *crt = NULL;
	char *key = NULL;
	bool have_crt;
	bool have_key;
	int rv;

	*generated = false;
	if (asprintf(&crt_path, "%s/%s", dir, crt_name) < 0) {
		crt_path = NULL;
		rv = -ENOMEM;
		goto err_oom;
	}
	if (asprintf(&key_path, "%s/%s", dir, key_name) < 0) {
		key_path = NULL;
		rv = -ENOMEM;
		goto err_oom;
	}
	rv = file_exists(crt_path, &have_crt, errmsg);
	if (rv == 0) {
		rv = file_exists(key_path, &have_key, errmsg);
	}
	if (rv != 0 || (have_crt && have_key)) {
		goto err_after_paths;
	}

	host_name(host, sizeof host);
	rv = cert_generate_pem(host, &crt, &key, errmsg);
	if (rv != 0) {
		goto err_after_paths;
	}
	/* The key goes first: a crash in between leaves the certificate
	 * missing, and the next call starts over. */
	rv = cert_write_file(key_path, key, strlen(key), 0600, errmsg);
	if (rv == 0) {
		rv = cert_write_file(crt_path, crt, strlen(crt), 0644, errmsg);
	}
	if (rv == 0) {
		*generated = true;
	}
	OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(crt);
	goto err_after_paths;

err_oom:
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "asprintf(): out of memory");
err_after_paths:
	free(key_path);
	free(crt_path);
	return rv;
}

/* Write all @len bytes at @data to @fd, retrying short writes. */
static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Flush the directory holding @path so that a rename() into it survives a
 * crash. Best effort: some file systems refuse fsync() on directories. */
static void sync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (slash == NULL) {
		dir = strdup(".");
	} else if (slash == path) {
		dir = strdup("/");
	} else {
		dir = strndup(path, (size_t)(slash - path));
	}
	if (dir == NULL) {
		return;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

int cert_write_file(const char *path,
		    const char *data,
		    size_t len,
		    mode_t mode,
		    char *errmsg)
{
	const char *slash = strrchr(path, '/');
	char *tmp = NULL;
	int fd;
	int rv;

	/* The temporary file lives beside @path so that rename() is atomic;
	 * the leading dot keeps it out of casual listings. */
	if (slash == NULL) {
		rv = asprintf(&tmp, ".%s.XXXXXX", path);
	} else {
		rv = asprintf(&tmp, "%.*s/.%s.XXXXXX", (int)(slash - path),
			      path, slash + 1);
	}
	if (rv < 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "asprintf(): out of memory");
		return -ENOMEM;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "mkostemp(%s): %s", tmp,
			    corral_strerror(rv));
		goto err_after_tmp;
	}
	if (fchmod(fd, mode) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "fchmod(%s): %s", tmp,
			    corral_strerror(rv));
		goto err_after_open;
	}
	rv = write_all(fd, data, len);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "write(%s): %s", tmp,
			    corral_strerror(rv));
		goto err_after_open;
	}
	if (fsync(fd) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "fsync(%s): %s", tmp,
			    corral_strerror(rv));
		goto err_after_open;
	}
	rv = close(fd);
	fd = -1;
	if (rv != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "close(%s): %s", tmp,
			    corral_strerror(rv));
		goto err_after_open;
	}
	if (rename(tmp, path) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "rename(%s, %s): %s",
			    tmp, path, corral_strerror(rv));
		goto err_after_open;
	}
	sync_parent_dir(path);
	free(tmp);
	return 0;

err_after_open:
	if (fd >= 0) {
		close(fd);
	}
	(void)unlink(tmp);
err_after_tmp:
	free(tmp);
	return rv;
}

int cert_read_file(const char *path, char **out, size_t *len)
{
	struct stat st;
	size_t cap;
	size_t used = 0;
	char *buf = NULL;
	int fd;
	int rv = 0;

	*out = NULL;
	if (len != NULL) {
		*len = 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		goto err_after_open;
	}
	if (st.st_size > CERT_MAX_FILE_SIZE) {
		rv = -EFBIG;
		goto err_after_open;
	}
	/* The size is only a hint: the file may change under us. */
	cap = (size_t)st.st_size + 1;
	if (cap < 4096) {
		cap = 4096;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		rv = -ENOMEM;
		goto err_after_open;
	}
	for (;;) {
		ssize_t n;

		if (used + 1 == cap) {
			char *grown;

			if (cap > CERT_MAX_FILE_SIZE) {
				rv = -EFBIG;
				goto err_after_buf;
			}
			grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				rv = -ENOMEM;
				goto err_after_buf;
			}
			buf = grown;
			cap *= 2;
		}
		n = read(fd, buf + used, cap - used - 1);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			rv = -errno;
			goto err_after_buf;
		}
		if (n == 0) {
			break;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	close(fd);
	*out = buf;
	if (len != NULL) {
		*len = used;
	}
	return 0;

err_after_buf:
	free(buf);
err_after_open:
	close(fd);
	return rv;
}

int cert_fingerprint_x509(const void *x509, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	unsigned int i;

	out[0] = '\0';
	if (x509 == NULL) {
		return -EINVAL;
	}
	if (!X509_digest(x509, EVP_sha256(), md, &n) || n != 32) {
		return ossl_parse_fail(CORRAL_ETLS);
	}
	for (i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0F];
	}
	out[2 * n] = '\0';
	return 0;
}

/* Parse the first PEM certificate in @len bytes at @pem. */
static int x509_from_pem(const char *pem, size_t len, X509 **out)
{
	BIO *bio;

	*out = NULL;
	if (pem == NULL || len > INT_MAX) {
		return -EINVAL;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		return ossl_parse_fail(-ENOMEM);
	}
	*out = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL);
	BIO_free(bio);
	if (*out == NULL) {
		return ossl_parse_fail(CORRAL_EINVALID);
	}
	return 0;
}

int cert_fingerprint_pem(const char *pem, size_t len, char out[65])
{
	X509 *x;
	int rv;

	out[0] = '\0';
	rv = x509_from_pem(pem, len, &x);
	if (rv != 0) {
		return rv;
	}
	rv = cert_fingerprint_x509(x, out);
	X509_free(x);
	return rv;
}

static bool digest_is_sha2(int nid)
{
	switch (nid) {
	case NID_sha224:
	case NID_sha256:
	case NID_sha384:
	case NID_sha512:
	case NID_sha512_224:
	case NID_sha512_256:
		return true;
	default:
		return false;
	}
}

static int check_key(EVP_PKEY *pkey, char *errmsg)
{
	char group[64];
	size_t group_len = 0;
	int bits;
	int nid;

	if (EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS")) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < 4096) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "RSA key of %d bits is too small (minimum 4096)",
			    bits);
			return CORRAL_EINVALID;
		}
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		/* Keys with explicit curve parameters have no group name
		 * and are refused (CVE-2022-0778's attack surface). */
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof group,
					     &group_len)) {
			ERR_clear_error();
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "EC key without a named curve is not allowed");
			return CORRAL_EINVALID;
		}
		nid = OBJ_txt2nid(group);
		if (nid == NID_undef) {
			nid = EC_curve_nist2nid(group);
		}
		ERR_clear_error();
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1 &&
		    nid != NID_secp521r1) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "EC curve %s is not allowed (P-256, P-384 or P-521 required)",
			    group);
			return CORRAL_EINVALID;
		}
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		return 0;
	}
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
		    "public key type %s is not allowed",
		    EVP_PKEY_get0_type_name(pkey) != NULL
			? EVP_PKEY_get0_type_name(pkey)
			: "unknown");
	return CORRAL_EINVALID;
}

int cert_check_policy(const void *x509, char *errmsg)
{
	/* X509_get_signature_info() caches decoded extensions in the
	 * object, hence the cast; the certificate is otherwise unchanged. */
	X509 *x = (X509 *)x509;
	EVP_PKEY *pkey;
	int md_nid = NID_undef;
	int pk_nid = NID_undef;
	int sig_nid;
	const char *sig_name;
	int rv;

	if (x == NULL) {
		return -EINVAL;
	}
	pkey = X509_get0_pubkey(x);
	if (pkey == NULL) {
		ERR_clear_error();
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "certificate has no usable public key");
		return CORRAL_EINVALID;
	}
	rv = check_key(pkey, errmsg);
	if (rv != 0) {
		return rv;
	}

	sig_nid = X509_get_signature_nid(x);
	sig_name = OBJ_nid2ln(sig_nid);
	if (sig_name == NULL) {
		sig_name = "unknown";
	}
	if (!X509_get_signature_info(x, &md_nid, &pk_nid, NULL, NULL)) {
		ERR_clear_error();
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "signature algorithm %s is not supported",
			    sig_name);
		return CORRAL_EINVALID;
	}
	/* Ed25519 hashes with SHA-512 internally and names no digest. */
	if (pk_nid == NID_ED25519 && md_nid == NID_undef) {
		return 0;
	}
	if (!digest_is_sha2(md_nid)) {
		corral_errf(
		    errmsg, CORRAL_ERRMSG_SIZE,
		    "signature algorithm %s is not allowed (SHA-2 required)",
		    sig_name);
		return CORRAL_EINVALID;
	}
	return 0;
}

/* Value of a base64 digit, or -1. */
static int b64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '+') {
		return 62;
	}
	if (c == '/') {
		return 63;
	}
	return -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	       c == '\f';
}

/* Decode standard base64 leniently: whitespace anywhere is skipped and '='
 * padding is optional, but anything else out of the alphabet, data after
 * padding, or a dangling sixth of a byte is refused. @out must hold
 * @len * 3 / 4 + 3 bytes. */
static int b64_decode(const char *in,
		      size_t len,
		      unsigned char *out,
		      size_t *out_len)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t digits = 0;
	size_t pad = 0;
	size_t n = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		int v;

		if (is_space(in[i])) {
			continue;
		}
		if (in[i] == '=') {
			pad++;
			continue;
		}
		v = b64_digit((unsigned char)in[i]);
		if (v < 0 || pad > 0) {
			return CORRAL_EINVALID;
		}
		digits++;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (digits % 4 == 1 || pad > 2 ||
	    (pad > 0 && (digits + pad) % 4 != 0)) {
		return CORRAL_EINVALID;
	}
	*out_len = n;
	return 0;
}

static int x509_to_pem(X509 *x, char **pem_out)
{
	BIO *bio;
	int rv;

	bio = BIO_new(BIO_s_mem());
	if (bio == NULL) {
		return ossl_parse_fail(-ENOMEM);
	}
	if (!PEM_write_bio_X509(bio, x)) {
		rv = ossl_parse_fail(CORRAL_ETLS);
	} else {
		rv = bio_to_string(bio, pem_out);
	}
	BIO_free(bio);
	return rv;
}

int cert_pem_from_base64_der(const char *b64, size_t len, char **pem_out)
{
	static const char begin[] = "-----BEGIN";
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t der_len = 0;
	X509 *x = NULL;
	int rv;

	*pem_out = NULL;
	if (b64 == NULL || len > CERT_MAX_FILE_SIZE) {
		return -EINVAL;
	}
	if (memmem(b64, len, begin, sizeof begin - 1) != NULL) {
		rv = x509_from_pem(b64, len, &x);
		if (rv != 0) {
			return rv;
		}
		goto out_encode;
	}

	der = malloc(len / 4 * 3 + 3);
	if (der == NULL) {
		return -ENOMEM;
	}
	rv = b64_decode(b64, len, der, &der_len);
	if (rv != 0) {
		goto out_after_der;
	}
	if (der_len == 0) {
		rv = CORRAL_EINVALID;
		goto out_after_der;
	}
	p = der;
	x = d2i_X509(NULL, &p, (long)der_len);
	if (x == NULL) {
		rv = ossl_parse_fail(CORRAL_EINVALID);
		goto out_after_der;
	}
	/* Trailing bytes mean the input was not one certificate. */
	if (p != der + der_len) {
		rv = CORRAL_EINVALID;
		goto out_after_x509;
	}

out_encode:
	rv = x509_to_pem(x, pem_out);
out_after_x509:
	X509_free(x);
out_after_der:
	free(der);
	return rv;
}
