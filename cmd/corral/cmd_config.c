/* corral config get|set|unset|show: the server's configuration, like
 * `lxc config` without an instance name. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "edit.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral config"

/* GET /1.0 into @env. Returns 0, or prints an error and returns 1. */
static int get_server(struct cli *cli, struct httpc_envelope *env)
{
	char *path;
	int rv;

	if (cli_api_path(cli, "/1.0", NULL, NULL, &path) != 0) {
		memset(env, 0, sizeof *env);
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, env, NULL);
	free(path);
	return rv;
}

/* PATCH /1.0 with {"config": @config} (reference stolen). Returns 0, or
 * prints an error and returns 1. */
static int patch_server(struct cli *cli, json_t *config)
{
	struct httpc_envelope env;
	json_t *body;
	char *path = NULL;
	int rv;

	body = json_pack("{s:o}", "config", config);
	if (body == NULL || cli_api_path(cli, "/1.0", NULL, NULL, &path) != 0) {
		json_decref(body);
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "PATCH", path, body, NULL, &env, NULL);
	if (rv == 0) {
		httpc_envelope_close(&env);
	}
	free(path);
	json_decref(body);
	return rv;
}

static int get_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	struct httpc_envelope env;
	json_t *value;
	char *text;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (get_server(cli, &env) != 0) {
		return 1;
	}
	value = json_object_get(json_object_get(env.metadata, "config"),
				argv[optind]);
	if (json_is_string(value)) {
		printf("%s\n", json_string_value(value));
	} else if (value == NULL || json_is_null(value)) {
		printf("\n");
	} else {
		text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%s\n", text != NULL ? text : "");
		free(text);
	}
	httpc_envelope_close(&env);
	return 0;
}

static int set_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	json_t *config;
	int n;
	int status;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, NULL, "", NULL,
				 NULL);
	if (status >= 0) {
		return status;
	}
	n = argc - optind;
	if (cli_args_bad(verb, PREFIX, n, 1, -1, &status)) {
		return status;
	}
	/* lxc reads a first argument without "=" (and not followed by just
	 * a value) as an instance name; corral has no instances here yet. */
	if (n != 2 && strchr(argv[optind], '=') == NULL) {
		cli_verb_usage(verb, PREFIX);
		return cli_error("Invalid number of arguments");
	}
	if (cli_config_args(n, argv + optind, &config) != 0) {
		return 1;
	}
	return patch_server(cli, config);
}

static int unset_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	json_t *config;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	config = json_pack("{s:s}", argv[optind], "");
	if (config == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	return patch_server(cli, config);
}

static int show_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	json_t *config;
	json_t *doc;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 0, 0);
	if (status >= 0) {
		return status;
	}
	if (get_server(cli, &env) != 0) {
		return 1;
	}
	config = json_object_get(env.metadata, "config");
	doc =
	    json_pack("{s:o}", "config",
		      config != NULL ? cli_json_sorted(config) : json_object());
	rv = doc != NULL ? cli_print_yaml(doc, stdout) : -ENOMEM;
	json_decref(doc);
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error("print server config: %s",
				 corral_strerror(rv));
	}
	return 0;
}

static const struct cli_verb verb_get = {
	.name = "get",
	.args = "<key>",
	.summary = "Get values for server configuration keys",
	.flags = NULL,
	.run = get_run,
};

static const struct cli_verb verb_set = {
	.name = "set",
	.args = "<key> <value> | <key>=<value>...",
	.summary = "Set server configuration keys",
	.flags = NULL,
	.run = set_run,
};

static const struct cli_verb verb_unset = {
	.name = "unset",
	.args = "<key>",
	.summary = "Unset server configuration keys",
	.flags = NULL,
	.run = unset_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "",
	.summary = "Show the server configuration",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb *const config_verbs[] = {
	&verb_get, &verb_set, &verb_show, &cli_verb_config_trust, &verb_unset,
};

static int config_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	return cli_group_run(cli, verb, config_verbs,
			     sizeof config_verbs / sizeof config_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_config = {
	.name = "config",
	.args = "[command]",
	.summary = "Manage the server configuration",
	.flags = NULL,
	.run = config_run,
};
