/* Base64-of-JSON tokens (LXD's format). */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <corral/err.h>
#include <corral/token.h>

/* Bound on the decoded JSON of a token; real ones are a few hundred
 * bytes. */
#define TOKEN_MAX_JSON (64u * 1024u)

int token_encode(json_t *obj, char **out)
{
	char *text;
	size_t len;
	char *b64;

	*out = NULL;
	if (!json_is_object(obj)) {
		return -EINVAL;
	}
	text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL) {
		return -ENOMEM;
	}
	len = strlen(text);
	if (len > TOKEN_MAX_JSON) {
		free(text);
		return -EINVAL;
	}
	b64 = malloc(4 * ((len + 2) / 3) + 1);
	if (b64 == NULL) {
		free(text);
		return -ENOMEM;
	}
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text,
			(int)len);
	free(text);
	*out = b64;
	return 0;
}

/* Value of a standard base64 digit, or -1. */
static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z') {
		return ch - 'A';
	}
	if (ch >= 'a' && ch <= 'z') {
		return ch - 'a' + 26;
	}
	if (ch >= '0' && ch <= '9') {
		return ch - '0' + 52;
	}
	if (ch == '+') {
		return 62;
	}
	if (ch == '/') {
		return 63;
	}
	return -1;
}

/* Decode @text into @buf (room for 3/4 of its length). Returns the byte
 * count, or -1 when @text is not base64. */
static long b64_decode(const char *text, unsigned char *buf)
{
	uint32_t acc = 0;
	long n = 0;
	int bits = 0;
	bool padding = false;
	int v;

	for (; *text != '\0'; text++) {
		if (*text == ' ' || *text == '\n' || *text == '\r' ||
		    *text == '\t') {
			continue;
		}
		if (*text == '=') {
			padding = true;
			continue;
		}
		v = b64_value(*text);
		if (v < 0 || padding) {
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero padding, at most 4 of them. */
	if (bits >= 6 || acc != 0) {
		return -1;
	}
	return n;
}

int token_decode(const char *text, json_t **out)
{
	unsigned char *buf;
	size_t len = strlen(text);
	json_t *obj;
	long n;

	*out = NULL;
	if (len == 0 || len > 4 * (TOKEN_MAX_JSON / 3) + 4 + 1024) {
		return CORRAL_EINVALID;
	}
	buf = malloc(len);
	if (buf == NULL) {
		return -ENOMEM;
	}
	n = b64_decode(text, buf);
	if (n <= 0) {
		free(buf);
		return CORRAL_EINVALID;
	}
	obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES,
			 NULL);
	free(buf);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return CORRAL_EINVALID;
	}
	*out = obj;
	return 0;
}

static bool is_fingerprint(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 64) {
		return false;
	}
	for (i = 0; i < 64; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

/* Whether @v is a non-empty array of non-empty strings. */
static bool is_address_list(json_t *v)
{
	size_t i;
	json_t *item;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		return false;
	}
	json_array_foreach(v, i, item)
	{
		if (json_string_length(item) == 0) {
			return false;
		}
	}
	return true;
}

int token_decode_trust(const char *text, json_t **out)
{
	const char *secret;
	json_t *obj;
	int rv;

	*out = NULL;
	rv = token_decode(text, &obj);
	if (rv != 0) {
		return rv;
	}
	secret = json_string_value(json_object_get(obj, "secret"));
	if (secret == NULL || secret[0] == '\0' ||
	    !is_fingerprint(
		json_string_value(json_object_get(obj, "fingerprint"))) ||
	    !is_address_list(json_object_get(obj, "addresses"))) {
		json_decref(obj);
		return CORRAL_EINVALID;
	}
	*out = obj;
	return 0;
}

int token_trust_from_operation(json_t *metadata, char **out)
{
	const char *name;
	const char *secret;
	const char *fingerprint;
	const char *expires;
	json_t *addresses;
	json_t *token;
	int rv;

	*out = NULL;
	name = json_string_value(
	    json_object_get(json_object_get(metadata, "request"), "name"));
	secret = json_string_value(json_object_get(metadata, "secret"));
	fingerprint =
	    json_string_value(json_object_get(metadata, "fingerprint"));
	addresses = json_object_get(metadata, "addresses");
	expires = json_string_value(json_object_get(metadata, "expiresAt"));
	if (name == NULL || secret == NULL || secret[0] == '\0' ||
	    fingerprint == NULL || !is_address_list(addresses)) {
		return CORRAL_EINVALID;
	}
	if (expires == NULL || expires[0] == '\0') {
		expires = "0001-01-01T00:00:00Z";
	}
	token = json_pack("{s:s, s:s, s:O, s:s, s:s}", "client_name", name,
			  "fingerprint", fingerprint, "addresses", addresses,
			  "secret", secret, "expires_at", expires);
	if (token == NULL) {
		return -ENOMEM;
	}
	rv = token_encode(token, out);
	json_decref(token);
	return rv;
}
