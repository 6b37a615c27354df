/* Shared pieces of the corral command-line client: the verb table, the
 * connection to the daemon and error reporting.
 *
 * Verbs return the process exit status (0 or 1); only they and main() print
 * to the terminal, and only main() exits. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <corral/httpc.h>

/* State of one invocation. */
struct cli {
	const char *socket_path; /* from --socket (borrowed from argv), or
				    built by cli_init() */
	char *socket_buf;        /* owned; backs socket_path from $CORRAL_DIR */
	struct httpc_client client;
	bool client_ready; /* client initialized (not necessarily connected) */
	const char *project;   /* --project (borrowed from argv), or NULL */
	struct cli_conf *conf; /* owned: client config (conf.h), loaded by
				  cli_route(); NULL before */
	char *remote;          /* owned: remote named by a REMOTE: prefix */
	char errmsg[1024];     /* why cli_client() failed */
};

struct cli_verb;

/* Run a verb: @argv[0] is the verb's own name, options and arguments
 * follow (getopt-ready). Returns the exit status. */
typedef int (*cli_run_fn)(struct cli *cli,
			  const struct cli_verb *verb,
			  int argc,
			  char **argv);

/* One entry of a verb table (top-level verbs, or the sub-verbs of a verb
 * like "config"). */
struct cli_verb {
	const char *name;    /* "info" */
	const char *args;    /* usage after the name: "[--format yaml|json]" */
	const char *summary; /* one line for the verb list */
	const char *flags;   /* help text of the flags, or NULL */
	cli_run_fn run;
};

/* Verbs, each defined in its cmd_*.c file. */
extern const struct cli_verb cli_verb_cluster;
extern const struct cli_verb cli_verb_config;
extern const struct cli_verb cli_verb_info;
extern const struct cli_verb cli_verb_monitor;
extern const struct cli_verb cli_verb_operation;
extern const struct cli_verb cli_verb_profile;
extern const struct cli_verb cli_verb_project;
extern const struct cli_verb cli_verb_query;
extern const struct cli_verb cli_verb_remote;
extern const struct cli_verb cli_verb_version;
/* `corral config trust`, a sub-verb group of `corral config`. */
extern const struct cli_verb cli_verb_config_trust;
/* Its role verbs (cmd_roles.c): roles, grant, revoke-role. */
extern const struct cli_verb cli_verb_config_trust_grant;
extern const struct cli_verb cli_verb_config_trust_revoke_role;
extern const struct cli_verb cli_verb_config_trust_roles;

/* Fill @cli for the socket given with --socket (@socket_flag, borrowed,
 * may be NULL), else $CORRAL_DIR/unix.socket, else
 * /var/lib/corral/unix.socket. Nothing is connected yet. Returns 0 or
 * -ENOMEM. */
int cli_init(struct cli *cli, const char *socket_flag);

/* Close the connection and free what @cli owns. */
void cli_close(struct cli *cli);

/* The client of @cli in *@out (owned by @cli), for the remote of the
 * invocation (remote.h): initialized but not necessarily connected for
 * the Unix socket, connected for a TLS remote. Prints nothing. Returns 0,
 * or a negative code with the reason in cli->errmsg. */
int cli_client(struct cli *cli, struct httpc_client **out);

/* Connect to the daemon if not yet connected and return the client in
 * *@out (owned by @cli). On failure print "Error: cannot connect to ..."
 * and return 1; else 0. */
int cli_connect(struct cli *cli, struct httpc_client **out);

/* Call the API: connect, send @method @path with the optional JSON @body
 * (borrowed, NULL for none) and decode the envelope into @env, which the
 * caller releases with httpc_envelope_close() after a 0 return. A failure
 * of the transport, a non-envelope reply and an error envelope all print
 * "Error: <text>" and return 1 (@env then holds nothing). */
int cli_call(struct cli *cli,
	     const char *method,
	     const char *path,
	     const char *body,
	     struct httpc_envelope *env);

/* Print "Error: <formatted text>" and a newline to stderr. Returns 1, the
 * exit status of a failed command, so callers can `return cli_error(...)`. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the usage of @verb (under the name @prefix, e.g. "corral" or
 * "corral config") to stdout. */
void cli_verb_usage(const struct cli_verb *verb, const char *prefix);

/* Look @argv[0] up in @verbs (@n pointers) and run it with @argv. An
 * unknown name prints an error naming @prefix and returns 1. */
int cli_dispatch(struct cli *cli,
		 const struct cli_verb *const *verbs,
		 size_t n,
		 const char *prefix,
		 int argc,
		 char **argv);

/* Report a getopt_long() failure: @ch is what it returned (':' for a
 * missing argument, '?' for an unknown flag; the optstring must start with
 * ':'), @argv what it parsed. Prints cobra's wording, like lxc. Returns 1. */
int cli_bad_flag(int ch, char **argv);

#endif /* CORRAL_CLI_H */
