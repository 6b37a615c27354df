/* What `corral profile` shares between its files: the profile verbs in
 * cmd_profile.c, the device verbs in cmd_profile_device.c. */
#ifndef CORRAL_CLI_PROFILE_H
#define CORRAL_CLI_PROFILE_H

#include "cli.h"

/* How the verbs name themselves in messages. */
#define CLI_PROFILE_PREFIX "corral profile"
#define CLI_DEVICE_PREFIX "corral profile device"

/* The fields of a profile a PUT replaces (NULL-terminated). */
extern const char *const cli_profile_fields[];

/* `corral profile device ...`, defined in cmd_profile_device.c. */
extern const struct cli_verb cli_verb_profile_device;

/* The request path of profile @name (NULL: the collection) in the
 * project of @cli, with @query (may be NULL), owned by the caller.
 * Returns NULL after printing an error (out of memory). */
char *cli_profile_path(struct cli *cli, const char *name, const char *query);

#endif /* CORRAL_CLI_PROFILE_H */
