/* Error codes shared by every module.
 *
 * Functions return 0 on success or a negative code: either a negated errno
 * value (-ENOMEM, -EINVAL, ...) or one of corral's own codes below, which
 * live far above the errno range. Codes from libuv, OpenSSL, SQLite and dqlite
 * are converted where they enter our code. */
#ifndef CORRAL_ERR_H
#define CORRAL_ERR_H

#include <stddef.h>

/* Size of the error-message buffer carried by long-lived objects and by
 * every request. */
#define CORRAL_ERRMSG_SIZE 256

/* X-macro table of corral's own conditions: name, value, description. */
#define CORRAL_ERRORS(X)                                     \
	X(CORRAL_EPROTO, 1000, "malformed protocol message") \
	X(CORRAL_ETRUNC, 1001, "truncated protocol message") \
	X(CORRAL_ENOTLEADER, 1002, "not leader")             \
	X(CORRAL_ENOLEADER, 1003, "no leader")               \
	X(CORRAL_EDBFAIL, 1004, "database failure")          \
	X(CORRAL_ENOTFOUND, 1005, "not found")               \
	X(CORRAL_EEXIST, 1006, "already exists")             \
	X(CORRAL_EINVALID, 1007, "invalid input")            \
	X(CORRAL_ETLS, 1008, "TLS failure")                  \
	X(CORRAL_ESCHEMA, 1009, "schema version mismatch")   \
	X(CORRAL_ECONFLICT, 1010, "conflict")                \
	X(CORRAL_EFORBIDDEN, 1011, "not authorized")         \
	X(CORRAL_EPRECONDITION, 1012, "precondition failed") \
	X(CORRAL_EBUSY, 1013, "database is locked")

enum {
#define CORRAL__ERR_ENUM(name, value, text) name = -(value),
	CORRAL_ERRORS(CORRAL__ERR_ENUM)
#undef CORRAL__ERR_ENUM
};

/* Describe an error code: corral's own codes by the table above, anything
 * else as a negated errno value. Never returns NULL; the string is static. */
const char *corral_strerror(int rv);

/* Format into @buf (of @size bytes, always NUL-terminated) like snprintf. */
void corral_errf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context to the message already in @buf: "context: old message".
 * Used on the way up so the final text reads like
 * "join: dial member2: TLS handshake: certificate verify failed". */
void corral_errwrapf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* CORRAL_ERR_H */
