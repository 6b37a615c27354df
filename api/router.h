/* Route matching: static path patterns with "{name}" segments.
 *
 * Patterns and paths are compared segment by segment; a "{x}" segment
 * matches any non-empty segment, which is URL-decoded into the match. The
 * router is pure: no I/O, no allocation. */
#ifndef CORRAL_API_ROUTER_H
#define CORRAL_API_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTER_MAX_PARAMS 4
#define ROUTER_PARAM_BUF 1024

struct router_match {
	unsigned n_params;
	const char *params[ROUTER_MAX_PARAMS]; /* point into buf */
	char buf[ROUTER_PARAM_BUF];
};

/* Match @path (without query) against @pattern. On a match returns 0 and
 * fills @m with the decoded parameters; returns -ENOENT when the path does
 * not match and -EINVAL when it matches but a parameter is badly encoded
 * (bad %-escape, encoded NUL, or too long). */
int router_match(const char *pattern, const char *path, struct router_match *m);

/* URL-decode @len bytes of @src into @dst (of @size bytes, NUL-terminated).
 * With @plus_space, '+' decodes to a space (query strings). Returns the
 * decoded length, or -EINVAL for a bad escape, an encoded NUL or a result
 * that does not fit. */
int router_url_decode(const char *src,
		      size_t len,
		      char *dst,
		      size_t size,
		      bool plus_space);

/* Find query parameter @name in @query ("a=1&b=2") and decode its value into
 * @dst. A parameter present without '=' decodes to "". Returns the decoded
 * length, -ENOENT when absent, -EINVAL when badly encoded. */
int router_query_get(const char *query,
		     const char *name,
		     char *dst,
		     size_t size);

#endif /* CORRAL_API_ROUTER_H */
