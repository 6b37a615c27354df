#include <errno.h>
#include <string.h>

#include "router.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int router_url_decode(const char *src,
		      size_t len,
		      char *dst,
		      size_t size,
		      bool plus_space)
{
	size_t i;
	size_t n = 0;
	int hi;
	int lo;
	char ch;

	for (i = 0; i < len; i++) {
		ch = src[i];
		if (ch == '%') {
			if (i + 2 >= len) {
				return -EINVAL;
			}
			hi = hex_value(src[i + 1]);
			lo = hex_value(src[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				return -EINVAL;
			}
			ch = (char)(hi * 16 + lo);
			i += 2;
		} else if (ch == '+' && plus_space) {
			ch = ' ';
		}
		if (n + 1 >= size) {
			return -EINVAL;
		}
		dst[n++] = ch;
	}
	if (size == 0) {
		return -EINVAL;
	}
	dst[n] = '\0';
	return (int)n;
}

int router_match(const char *pattern, const char *path, struct router_match *m)
{
	const char *p = pattern;
	const char *s = path;
	size_t used = 0;
	int n;

	m->n_params = 0;
	while (*p != '\0' && *s != '\0') {
		const char *pe = strchr(p + 1, '/');
		const char *se = strchr(s + 1, '/');
		size_t plen;
		size_t slen;

		/* Both point at a '/' that starts a segment. */
		if (*p != '/' || *s != '/') {
			return -ENOENT;
		}
		p++;
		s++;
		plen = pe != NULL ? (size_t)(pe - p) : strlen(p);
		slen = se != NULL ? (size_t)(se - s) : strlen(s);
		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (slen == 0) {
				return -ENOENT;
			}
			if (m->n_params == ROUTER_MAX_PARAMS) {
				return -EINVAL;
			}
			n = router_url_decode(s, slen, m->buf + used,
					      sizeof m->buf - used, false);
			if (n < 0) {
				return -EINVAL;
			}
			m->params[m->n_params++] = m->buf + used;
			used += (size_t)n + 1;
		} else if (plen != slen || memcmp(p, s, plen) != 0) {
			return -ENOENT;
		}
		p += plen;
		s += slen;
	}
	if (*p != '\0' || *s != '\0') {
		return -ENOENT;
	}
	return 0;
}

int router_query_get(const char *query,
		     const char *name,
		     char *dst,
		     size_t size)
{
	size_t name_len = strlen(name);
	const char *q = query;

	while (q != NULL && *q != '\0') {
		const char *end = strchr(q, '&');
		size_t len = end != NULL ? (size_t)(end - q) : strlen(q);

		if (len >= name_len && memcmp(q, name, name_len) == 0 &&
		    (len == name_len || q[name_len] == '=')) {
			if (len == name_len) {
				if (size == 0) {
					return -EINVAL;
				}
				dst[0] = '\0';
				return 0;
			}
			return router_url_decode(q + name_len + 1,
						 len - name_len - 1, dst, size,
						 true);
		}
		q = end != NULL ? end + 1 : NULL;
	}
	return -ENOENT;
}
