/* Remotes on the command line: the REMOTE: prefix of an argument picks
 * the server a command talks to (else the default remote), and the
 * connection to a remote: the Unix socket for "unix://" remotes, HTTPS
 * with the client certificate and the pinned server fingerprint (or
 * client.ca) for the others. */
#ifndef CORRAL_CLI_REMOTE_H
#define CORRAL_CLI_REMOTE_H

#include <stddef.h>

#include <jansson.h>

#include "cli.h"
#include "conf.h"

/* Load the client config into @cli and take the remote out of the
 * arguments of the verb @argv[0] (@argc arguments, changed in place): the
 * first positional argument of the form "REMOTE:REST", after the sub-verb
 * names, whose REMOTE is a configured remote, becomes "REST" (and is
 * dropped when REST is empty), REMOTE being kept in cli->remote. An
 * argument "NAME:" with an unknown NAME is an error, like lxc. The
 * "remote" verb is left alone. Returns 0, or prints an error and returns
 * 1. */
int cli_route(struct cli *cli, int *argc, char **argv);

/* Initialize @c for the remote of @cli: cli->remote, else the --socket
 * path when one was given, else the default remote. A TLS remote is
 * connected at once, so that a changed server certificate is reported
 * before anything is sent. Returns 0, or a negative code with the reason
 * in cli->errmsg. */
int cli_remote_client(struct cli *cli, struct httpc_client *c);

/* Initialize and connect @c to the HTTPS remote @name whose entry in
 * config.json is @remote (borrowed), with the client certificate of
 * @conf (generated if missing). On a pinned-fingerprint mismatch @errmsg
 * explains the possible causes and how to re-add the remote. Returns 0, or
 * a negative code with the reason in @errmsg (of @errmsg_size bytes). */
int cli_remote_tls(struct cli_conf *conf,
		   const char *name,
		   json_t *remote,
		   struct httpc_client *c,
		   char *errmsg,
		   size_t errmsg_size);

#endif /* CORRAL_CLI_REMOTE_H */
