#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <corral/daemon.h>
#include <corral/err.h>

int node_dir_init(const char *dir, char *errmsg)
{
	struct stat st;

	if (mkdir(dir, 0711) == 0) {
		/* mkdir honours the umask; make the mode exact. */
		if (chmod(dir, 0711) != 0) {
			int rv = -errno;
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "chmod(%s): %s",
				    dir, strerror(errno));
			return rv;
		}
		return 0;
	}
	if (errno != EEXIST) {
		int rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "mkdir(%s): %s", dir,
			    strerror(errno));
		return rv;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "state dir %s is not a directory", dir);
		return -ENOTDIR;
	}
	return 0;
}

static void pid_path(const char *dir, char *buf, size_t size)
{
	snprintf(buf, size, "%s/corrald.pid", dir);
}

int node_dir_lock(const char *dir, int *fd_out, char *errmsg)
{
	char path[4096];
	char buf[32];
	ssize_t n;
	int fd;
	int rv;

	pid_path(dir, path, sizeof path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "open(%s): %s", path,
			    strerror(errno));
		return rv;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		rv = errno == EWOULDBLOCK ? -EBUSY : -errno;
		n = pread(fd, buf, sizeof buf - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "another corrald (pid %s) is already using %s",
			    buf[0] != '\0' ? buf : "unknown", dir);
		close(fd);
		return rv;
	}
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "write(%s): %s", path,
			    strerror(errno));
		close(fd);
		return rv;
	}
	*fd_out = fd;
	return 0;
}

void node_dir_unlock(const char *dir, int fd)
{
	char path[4096];

	if (fd < 0) {
		return;
	}
	pid_path(dir, path, sizeof path);
	unlink(path);
	close(fd);
}

int node_socket_group(const char *name, gid_t *gid, bool *have, char *errmsg)
{
	struct group grp;
	struct group *res = NULL;
	char buf[4096];
	const char *lookup = name != NULL ? name : "corral";
	int rv;

	*have = false;
	rv = getgrnam_r(lookup, &grp, buf, sizeof buf, &res);
	if (rv != 0 || res == NULL) {
		if (name == NULL) {
			return 0; /* no default group: root only */
		}
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "--group %s: no such group", name);
		return -ENOENT;
	}
	*gid = grp.gr_gid;
	*have = true;
	return 0;
}
