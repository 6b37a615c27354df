/* corral monitor: print the events stream (/1.0/events, a websocket), like
 * `lxc monitor`, until interrupted. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral"

/* Room for the --type values joined with ','. */
#define TYPES_SIZE 256

struct monitor_flags {
	enum cli_format format;
	char types[TYPES_SIZE]; /* "" for every type */
	bool all_projects;
	int status; /* 1 after a bad flag */
};

static int monitor_option(int ch, const char *value, void *arg)
{
	struct monitor_flags *f = arg;
	size_t len;

	switch (ch) {
	case 'f':
		return cli_format_parse(
		    value, CLI_FORMAT_JSON | CLI_FORMAT_YAML, &f->format);
	case 't':
		len = strlen(f->types);
		if (len + strlen(value) + 2 > sizeof f->types) {
			return cli_error("too many --type values");
		}
		snprintf(f->types + len, sizeof f->types - len, "%s%s",
			 len > 0 ? "," : "", value);
		return 0;
	case 'a':
		f->all_projects = true;
		return 0;
	default:
		return 0;
	}
}

/* Whether the event type @type is among the comma-separated @types. */
static bool wanted(const char *types, const char *type)
{
	size_t len;
	const char *p = types;

	if (types[0] == '\0') {
		return true;
	}
	if (type == NULL) {
		return false;
	}
	len = strlen(type);
	while (*p != '\0') {
		if (strncmp(p, type, len) == 0 &&
		    (p[len] == ',' || p[len] == '\0')) {
			return true;
		}
		p = strchr(p, ',');
		if (p == NULL) {
			break;
		}
		p++;
	}
	return false;
}

static int monitor_run(struct cli *cli,
		       const struct cli_verb *verb,
		       int argc,
		       char **argv)
{
	static const struct option options[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "type", required_argument, NULL, 't' },
		{ "all-projects", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct monitor_flags flags = { .format = CLI_FORMAT_YAML };
	struct httpc_client *c;
	struct httpc_ws ws;
	char query[TYPES_SIZE + 64];
	const char *msg;
	json_t *event;
	size_t len;
	char *path;
	int status;
	int rv;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options,
				 "f:", monitor_option, &flags);
	if (status >= 0) {
		return status;
	}
	if (argc - optind != 0) {
		cli_verb_usage(verb, PREFIX);
		return cli_error("Invalid number of arguments");
	}
	snprintf(query, sizeof query, "%s%s%s%s",
		 flags.types[0] != '\0' ? "type=" : "", flags.types,
		 flags.types[0] != '\0' && flags.all_projects ? "&" : "",
		 flags.all_projects ? "all-projects=true" : "");
	if (cli_api_path(cli, "/1.0/events", NULL,
			 query[0] != '\0' ? query : NULL, &path) != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (cli_connect(cli, &c) != 0) {
		free(path);
		return 1;
	}
	rv = httpc_ws_open(&ws, c, path);
	free(path);
	if (rv != 0) {
		return cli_error("%s", c->errmsg);
	}
	for (;;) {
		rv = httpc_ws_read(&ws, &msg, &len, -1);
		if (rv != 0) {
			break;
		}
		event = json_loadb(msg, len, 0, NULL);
		if (event == NULL) {
			continue;
		}
		if (wanted(flags.types,
			   json_string_value(json_object_get(event, "type")))) {
			if (flags.format == CLI_FORMAT_JSON) {
				cli_print_json(event, stdout);
			} else {
				cli_print_yaml(event, stdout);
				printf("\n");
			}
			fflush(stdout);
		}
		json_decref(event);
	}
	status = cli_error("%s", c->errmsg);
	httpc_ws_close(&ws);
	return status;
}

const struct cli_verb cli_verb_monitor = {
	.name = "monitor",
	.args = "[<remote>:] [--type TYPE] [--format yaml|json]",
	.summary = "Monitor a local or remote server",
	.flags =
	    "      --all-projects   Show events from all projects\n"
	    "  -f, --format         Format (json|yaml) (default \"yaml\")\n"
	    "      --type           Event type to listen for\n",
	.run = monitor_run,
};
