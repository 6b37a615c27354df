/* X.509 certificates and keys: generation, fingerprints and policy.
 *
 * corral's identities are self-signed certificates on EC P-384 keys, like
 * LXD's: the server's server.crt/server.key, the shared cluster.crt and the
 * client's client.crt/client.key. A certificate is known by its fingerprint,
 * the lowercase hex SHA-256 of its DER encoding (DESIGN.md section 6).
 *
 * Functions that talk to OpenSSL take X509 pointers as "const void *" so that
 * this header does not pull OpenSSL's headers into every file that includes
 * it. Failures inside OpenSSL are returned as CORRAL_ETLS (or -ENOMEM when
 * OpenSSL ran out of memory), with the failing call and OpenSSL's reason in
 * the error message. Every errmsg argument may be NULL; when not NULL it
 * points to a buffer of CORRAL_ERRMSG_SIZE bytes. */
#ifndef CORRAL_CERT_H
#define CORRAL_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Length of a fingerprint in hex digits, without the terminating NUL. */
#define CORRAL_CERT_FINGERPRINT_LEN 64

/* Make sure @dir/@crt_name and @dir/@key_name exist. When both files are
 * present, nothing is checked or changed and *@generated is set to false.
 * When either is missing, a new pair is generated with cert_generate_pem(),
 * its common name being the host name (gethostname()), and both files are
 * replaced: the key first (mode 0600), then the certificate (mode 0644),
 * each written atomically through a temporary file in @dir and rename(), so
 * a crash never leaves a half-written file behind, and *@generated is set to
 * true. @dir must exist. All strings are borrowed for the duration of the
 * call. Returns 0, -ENOMEM, a negated errno value from the file system calls
 * (for example -ENOENT when @dir is missing) or CORRAL_ETLS, with a message in
 * @errmsg such as "EVP_PKEY_keygen(): <openssl reason>". */
int cert_ensure(const char *dir,
		const char *crt_name,
		const char *key_name,
		bool *generated,
		char *errmsg);

/* Generate a new EC P-384 key and a self-signed X.509 v3 certificate for it,
 * signed with ECDSA-SHA384, valid from one minute ago to ten years from now,
 * with a random positive 128-bit serial number, subject and issuer
 * "O=corral, CN=@cn" (@cn is cut to the 64 characters X.509 allows), the
 * extensions of LXD's certificates (basicConstraints CA:FALSE, keyUsage
 * digitalSignature and keyEncipherment, extendedKeyUsage serverAuth and
 * clientAuth), subject and authority key identifiers, and subjectAltName
 * DNS:<host name>, IP:127.0.0.1. The same certificate serves as a server and
 * as a client identity (client.crt uses a CN like "root@host").
 *
 * On success *@crt_pem and *@key_pem receive NUL-terminated PEM text (the key
 * in PKCS#8 form) allocated with malloc(); the caller owns and frees both,
 * and should wipe the key with OPENSSL_cleanse() before freeing it. On error
 * both are set to NULL. @cn is borrowed. Returns 0, -ENOMEM, -EINVAL when @cn
 * is empty, or CORRAL_ETLS with a message in @errmsg. */
int cert_generate_pem(const char *cn,
		      char **crt_pem,
		      char **key_pem,
		      char *errmsg);

/* Compute the fingerprint of the first PEM certificate found in the @len
 * bytes at @pem (borrowed; need not be NUL-terminated) into @out, which must
 * hold CORRAL_CERT_FINGERPRINT_LEN + 1 bytes and receives 64 lowercase hex
 * digits and a NUL. Returns 0, -ENOMEM, -EINVAL when @len is too large, or
 * CORRAL_EINVALID when no certificate can be parsed. */
int cert_fingerprint_pem(const char *pem, size_t len, char out[65]);

/* Compute the fingerprint of the certificate @x509 (an X509 *, borrowed) into
 * @out, as cert_fingerprint_pem() does. Returns 0, -EINVAL when @x509 is
 * NULL, or CORRAL_ETLS when OpenSSL fails to encode or hash it. */
int cert_fingerprint_x509(const void *x509, char out[65]);

/* Read the whole file at @path into a buffer allocated with malloc() and
 * NUL-terminated (the NUL is not counted in *@len, which may be NULL). The
 * caller owns *@out. Files larger than 16 MiB are refused with -EFBIG, since
 * no certificate, key or CRL corral reads comes near that. Returns 0, -ENOMEM
 * or a negated errno value from open() or read(); on error *@out is NULL. */
int cert_read_file(const char *path, char **out, size_t *len);

/* Write the @len bytes at @data (borrowed) to @path atomically: into a
 * temporary file beside it with mode @mode (not subject to the umask), which
 * is flushed to disk and then renamed over @path. An existing @path is
 * either left untouched or fully replaced. Returns 0 or a negated errno
 * value, with the failing call named in @errmsg. */
int cert_write_file(const char *path,
		    const char *data,
		    size_t len,
		    mode_t mode,
		    char *errmsg);

/* Decide whether the peer certificate @x509 (an X509 *, borrowed) meets
 * corral's security rules (DESIGN.md section 6): its public key is RSA of at
 * least 4096 bits, EC on P-256, P-384 or P-521, or Ed25519, and its signature
 * uses a SHA-2 digest (or is Ed25519). The signature itself is not verified;
 * that is the TLS layer's job. Returns 0 when the certificate is acceptable,
 * -EINVAL when @x509 is NULL, or CORRAL_EINVALID with the reason in @errmsg,
 * for example "RSA key of 2048 bits is too small (minimum 4096)". */
int cert_check_policy(const void *x509, char *errmsg);

/* Turn the certificate in the @len bytes at @b64 (borrowed) into PEM text.
 * The input is either base64 of the DER encoding, as LXD's
 * POST /1.0/certificates carries it, decoded leniently (whitespace anywhere
 * is skipped, as some pylxd versions send line-wrapped base64, and missing
 * '=' padding is tolerated), or a PEM certificate. On success *@pem_out
 * receives NUL-terminated PEM text allocated with malloc(), owned by the
 * caller. Returns 0, -ENOMEM, -EINVAL when @len is too large, or
 * CORRAL_EINVALID when the input is not exactly one well-formed certificate;
 * on error *@pem_out is NULL. */
int cert_pem_from_base64_der(const char *b64, size_t len, char **pem_out);

#endif /* CORRAL_CERT_H */
