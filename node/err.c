#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <corral/err.h>

const char *corral_strerror(int rv)
{
	switch (rv) {
#define CORRAL__ERR_CASE(name, value, text) \
	case name:                          \
		return text;
		CORRAL_ERRORS(CORRAL__ERR_CASE)
#undef CORRAL__ERR_CASE
	default:
		break;
	}
	if (rv < 0 && rv > -1000) {
		return strerror(-rv);
	}
	return "unknown error";
}

void corral_errf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || size == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

void corral_errwrapf(char *buf, size_t size, const char *fmt, ...)
{
	char prefix[CORRAL_ERRMSG_SIZE];
	char old[CORRAL_ERRMSG_SIZE];
	va_list ap;

	if (buf == NULL || size == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	snprintf(old, sizeof old, "%s", buf);
	if (old[0] == '\0') {
		snprintf(buf, size, "%s", prefix);
	} else {
		snprintf(buf, size, "%s: %s", prefix, old);
	}
}
