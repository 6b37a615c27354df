/* The client's connection to the daemon, error reporting and the verb
 * dispatcher shared by top-level and nested verbs. */

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "remote.h"

#define CLI_DEFAULT_DIR "/var/lib/corral"

int cli_init(struct cli *cli, const char *socket_flag)
{
	const char *dir;

	memset(cli, 0, sizeof *cli);
	if (socket_flag != NULL) {
		cli->socket_path = socket_flag;
		return 0;
	}
	dir = getenv("CORRAL_DIR");
	if (dir == NULL || dir[0] == '\0') {
		dir = CLI_DEFAULT_DIR;
	}
	if (asprintf(&cli->socket_buf, "%s/unix.socket", dir) < 0) {
		cli->socket_buf = NULL;
		return -ENOMEM;
	}
	cli->socket_path = cli->socket_buf;
	return 0;
}

void cli_close(struct cli *cli)
{
	if (cli->client_ready) {
		httpc_close(&cli->client);
	}
	if (cli->conf != NULL) {
		cli_conf_close(cli->conf);
		free(cli->conf);
	}
	free(cli->remote);
	free(cli->socket_buf);
	memset(cli, 0, sizeof *cli);
}

int cli_client(struct cli *cli, struct httpc_client **out)
{
	int rv;

	if (!cli->client_ready) {
		rv = cli_remote_client(cli, &cli->client);
		if (rv != 0) {
			return rv;
		}
		cli->client_ready = true;
	}
	*out = &cli->client;
	return 0;
}

int cli_connect(struct cli *cli, struct httpc_client **out)
{
	struct httpc_client *c;
	int rv;

	rv = cli_client(cli, &c);
	if (rv != 0) {
		return cli_error("%s", cli->errmsg[0] != '\0'
					   ? cli->errmsg
					   : corral_strerror(rv));
	}
	rv = httpc_connect(c);
	if (rv != 0) {
		return cli_error("%s", c->errmsg);
	}
	*out = c;
	return 0;
}

int cli_call(struct cli *cli,
	     const char *method,
	     const char *path,
	     const char *body,
	     struct httpc_envelope *env)
{
	struct httpc_client *c;
	int rv;

	memset(env, 0, sizeof *env);
	if (cli_connect(cli, &c) != 0) {
		return 1;
	}
	rv = httpc_query(c, method, path, body, body != NULL ? strlen(body) : 0,
			 env);
	if (rv != 0) {
		return cli_error("%s", c->errmsg);
	}
	if (env->type == HTTPC_ENVELOPE_ERROR) {
		cli_error("%s",
			  env->error[0] != '\0' ? env->error : "unknown error");
		httpc_envelope_close(env);
		return 1;
	}
	return 0;
}

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

void cli_verb_usage(const struct cli_verb *verb, const char *prefix)
{
	printf("Description:\n  %s\n\nUsage:\n  %s %s%s%s\n", verb->summary,
	       prefix, verb->name, verb->args[0] != '\0' ? " " : "",
	       verb->args);
	if (verb->flags != NULL) {
		printf("\nFlags:\n%s", verb->flags);
	}
}

int cli_dispatch(struct cli *cli,
		 const struct cli_verb *const *verbs,
		 size_t n,
		 const char *prefix,
		 int argc,
		 char **argv)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(argv[0], verbs[i]->name) == 0) {
			return verbs[i]->run(cli, verbs[i], argc, argv);
		}
	}
	cli_error("unknown command \"%s\" for \"%s\"", argv[0], prefix);
	fprintf(stderr, "Run '%s --help' for usage.\n", prefix);
	return 1;
}

int cli_bad_flag(int ch, char **argv)
{
	const char *arg = argv[optind - 1];

	if (ch == ':') {
		return cli_error("flag needs an argument: %s", arg);
	}
	if (optopt != 0) {
		return cli_error("unknown shorthand flag: '%c' in %s", optopt,
				 arg);
	}
	return cli_error("unknown flag: %s", arg);
}
