/* Tokens as LXD prints them: standard base64 of compact JSON. A trust
 * token (`corral config trust add --name N`) carries LXD's
 * CertificateAddToken fields {"client_name", "fingerprint", "addresses",
 * "secret", "expires_at"}; `corral remote add NAME TOKEN` decodes it.
 *
 * Everything here is pure: no I/O, no global state. */
#ifndef CORRAL_TOKEN_H
#define CORRAL_TOKEN_H

#include <jansson.h>

/* Encode the JSON object @obj (borrowed) as a token: standard base64 (with
 * padding, no line breaks) of its compact JSON, keys in their order. On
 * success *@out receives a NUL-terminated string allocated with malloc().
 * Returns 0, -EINVAL when @obj is not an object, or -ENOMEM. */
int token_encode(json_t *obj, char **out);

/* Decode @text (borrowed, NUL-terminated; whitespace is skipped and
 * missing '=' padding tolerated) into a new JSON object in *@out, owned by
 * the caller. Returns 0, CORRAL_EINVALID when @text is not base64 of a
 * JSON object, or -ENOMEM; on error *@out is NULL. */
int token_decode(const char *text, json_t **out);

/* Decode @text as a trust token: a JSON object with a non-empty string
 * "secret", a "fingerprint" of 64 lowercase hex digits and a non-empty
 * array of strings "addresses" ("client_name" and "expires_at" are
 * optional). On success *@out receives the object (owned by the caller).
 * Returns 0, CORRAL_EINVALID (then @text is no trust token) or -ENOMEM. */
int token_decode_trust(const char *text, json_t **out);

/* Build the trust token of a "Certificate add token" operation from its
 * @metadata (borrowed): {"request": {"name": N}, "secret", "fingerprint",
 * "addresses", "expiresAt"} becomes the token of {"client_name": N,
 * "fingerprint", "addresses", "secret", "expires_at"} (expires_at
 * "0001-01-01T00:00:00Z", Go's zero time, when absent). *@out receives the
 * token (malloc()). Returns 0, CORRAL_EINVALID when a field is missing or
 * of the wrong type, or -ENOMEM. */
int token_trust_from_operation(json_t *metadata, char **out);

#endif /* CORRAL_TOKEN_H */
