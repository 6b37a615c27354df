/* Hashing of secrets that must never be stored in clear (the trust password,
 * token secrets): scrypt with a random salt, compared in constant time. */
#ifndef CORRAL_SECRET_H
#define CORRAL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* Size of a buffer that holds any encoded hash. */
#define SECRET_HASH_SIZE 192

/* Hash @secret with scrypt (N=2^14, r=8, p=1) and a 16-byte random salt
 * into @out as "scrypt$N$r$p$SALTHEX$HASHHEX". Returns 0, or CORRAL_ETLS when
 * OpenSSL fails. */
int secret_hash(const char *secret, char out[SECRET_HASH_SIZE]);

/* Whether @secret matches @stored (as written by secret_hash()). The hash
 * comparison runs in constant time; a malformed @stored never matches. */
bool secret_verify(const char *secret, const char *stored);

#endif /* CORRAL_SECRET_H */
