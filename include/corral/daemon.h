/* The daemon's state directory on this host: creation, the pid-file lock
 * that lets one corrald use a directory at a time, and the socket group. */
#ifndef CORRAL_DAEMON_H
#define CORRAL_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

/* Create @dir (mode 0711) if it does not exist; an existing directory keeps
 * its mode. Returns 0 or a negative errno code with @errmsg filled. */
int node_dir_init(const char *dir, char *errmsg);

/* Take the pid-file lock DIR/corrald.pid and write our pid into it. When
 * another live process holds it, returns -EBUSY and @errmsg names its pid.
 * On success *@fd holds the lock until node_dir_unlock(). */
int node_dir_lock(const char *dir, int *fd, char *errmsg);

/* Release the lock taken by node_dir_lock() and remove the pid file.
 * Accepts a negative @fd (nothing to do). */
void node_dir_unlock(const char *dir, int fd);

/* Resolve the group of the Unix socket. @name NULL means the default: the
 * group "corral" when it exists, otherwise none (*@have = false, root only).
 * A @name that names no group is an error (-ENOENT, @errmsg filled). */
int node_socket_group(const char *name, gid_t *gid, bool *have, char *errmsg);

#endif /* CORRAL_DAEMON_H */
