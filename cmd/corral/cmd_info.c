/* corral info, corral version. */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <corral/version.h>

#include "cli.h"
#include "output.h"

static int info_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	static const struct option options[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cli_format format = CLI_FORMAT_YAML;
	struct httpc_envelope env;
	int ch;
	int rv;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (cli_format_parse(optarg,
					     CLI_FORMAT_JSON | CLI_FORMAT_YAML,
					     &format) != 0) {
				return 1;
			}
			break;
		case 'h':
			cli_verb_usage(verb, "corral");
			return 0;
		default:
			return cli_bad_flag(ch, argv);
		}
	}
	if (optind < argc) {
		return cli_error("unexpected argument \"%s\"", argv[optind]);
	}

	if (cli_call(cli, "GET", "/1.0", NULL, &env) != 0) {
		return 1;
	}
	if (env.metadata == NULL) {
		rv = 0;
	} else if (format == CLI_FORMAT_JSON) {
		rv = cli_print_json(env.metadata, stdout);
	} else {
		rv = cli_print_yaml(env.metadata, stdout);
	}
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error("print server information: %s",
				 corral_strerror(rv));
	}
	return 0;
}

const struct cli_verb cli_verb_info = {
	.name = "info",
	.args = "[<remote>:] [--format yaml|json]",
	.summary = "Show the server's information (GET /1.0)",
	.flags = "      --format   Format (yaml|json) (default \"yaml\")\n",
	.run = info_run,
};

/* The server's version from GET /1.0, or NULL when the daemon does not
 * answer. The string is owned by @env. */
static const char *server_version(struct cli *cli, struct httpc_envelope *env)
{
	struct httpc_client *c;
	json_t *environment;

	if (cli_client(cli, &c) != 0) {
		return NULL;
	}
	if (httpc_query(c, "GET", "/1.0", NULL, 0, env) != 0) {
		return NULL;
	}
	if (env->type != HTTPC_ENVELOPE_SYNC) {
		return NULL;
	}
	environment = json_object_get(env->metadata, "environment");
	return json_string_value(
	    json_object_get(environment, "server_version"));
}

static int version_run(struct cli *cli,
		       const struct cli_verb *verb,
		       int argc,
		       char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct httpc_envelope env = { 0 };
	const char *server;
	int ch;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (ch) {
		case 'h':
			cli_verb_usage(verb, "corral");
			return 0;
		default:
			return cli_bad_flag(ch, argv);
		}
	}
	if (optind < argc) {
		return cli_error("unexpected argument \"%s\"", argv[optind]);
	}

	printf("Client version: %s\n", CORRAL_VERSION);
	/* Like lxc, an unreachable daemon is no error here. */
	server = server_version(cli, &env);
	printf("Server version: %s\n", server != NULL ? server : "unreachable");
	httpc_envelope_close(&env);
	return 0;
}

const struct cli_verb cli_verb_version = {
	.name = "version",
	.args = "",
	.summary = "Show local and remote versions",
	.flags = NULL,
	.run = version_run,
};
