/* Structured logging for the daemon.
 *
 * Lines look like
 *   2026-11-23T14:04:12.123Z level=info msg="listening" path=/x/unix.socket
 * and go to stderr or to the file given with --log-file. Callers must never
 * pass secrets (passwords, token secrets, keys) to these functions. */
#ifndef CORRAL_LOG_H
#define CORRAL_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Open the log. @path NULL means stderr; otherwise the file is opened for
 * appending (0600, created if missing). @debug enables LOG_LEVEL_DEBUG.
 * Returns 0 or a negative errno code. */
int log_init(const char *path, bool debug);

/* Close the log file (if any); later calls log to stderr. */
void log_close(void);

/* Whether messages at @level are written. Cheap; use it to avoid building
 * expensive arguments. */
bool log_enabled(enum log_level level);

/* Write one line: the message @fmt, then optional key=value pairs already
 * formatted by the caller inside @fmt. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif /* CORRAL_LOG_H */
