#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <corral/log.h>

static FILE *log_file; /* owned, NULL means stderr */
static bool log_debug_on;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int log_init(const char *path, bool debug)
{
	int fd;

	log_debug_on = debug;
	if (path == NULL) {
		return 0;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		return -errno;
	}
	log_file = fdopen(fd, "a");
	if (log_file == NULL) {
		int rv = -errno;
		close(fd);
		return rv;
	}
	setvbuf(log_file, NULL, _IOLBF, 0);
	return 0;
}

void log_close(void)
{
	if (log_file != NULL) {
		fclose(log_file);
		log_file = NULL;
	}
}

bool log_enabled(enum log_level level)
{
	return level != LOG_LEVEL_DEBUG || log_debug_on;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	FILE *out = log_file != NULL ? log_file : stderr;

	if (!log_enabled(level)) {
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ level=%s ",
			      (long)(tv.tv_usec / 1000),
			      level_names[(int)level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	fprintf(out, "%s\n", line);
}
