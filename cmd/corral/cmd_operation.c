/* corral operation list|show|delete, like `lxc operation`. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "ops.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral operation"

void cli_format_date(const char *rfc3339, char *out, size_t size)
{
	int y;
	int mo;
	int d;
	int h;
	int mi;

	out[0] = '\0';
	if (rfc3339 == NULL ||
	    sscanf(rfc3339, "%4d-%2d-%2dT%2d:%2d", &y, &mo, &d, &h, &mi) != 5) {
		return;
	}
	snprintf(out, size, "%04d/%02d/%02d %02d:%02d UTC", y, mo, d, h, mi);
}

static int by_created(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a;
	json_t *y = *(json_t *const *)b;
	const char *cx = json_string_value(json_object_get(x, "created_at"));
	const char *cy = json_string_value(json_object_get(y, "created_at"));
	int rv = strcmp(cx != NULL ? cx : "", cy != NULL ? cy : "");

	if (rv != 0) {
		return rv;
	}
	cx = json_string_value(json_object_get(x, "id"));
	cy = json_string_value(json_object_get(y, "id"));
	return strcmp(cx != NULL ? cx : "", cy != NULL ? cy : "");
}

int cli_operations(struct cli *cli, json_t **out)
{
	struct httpc_envelope env;
	json_t **items = NULL;
	json_t *list = NULL;
	json_t *group;
	json_t *op;
	const char *status;
	size_t n = 0;
	size_t i;
	char *path;
	int rv;

	*out = NULL;
	if (cli_api_path(cli, "/1.0/operations", NULL, "recursion=1", &path) !=
	    0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	json_object_foreach(env.metadata, status, group)
	{
		n += json_array_size(group);
	}
	items = calloc(n + 1, sizeof *items);
	list = json_array();
	if (items == NULL || list == NULL) {
		goto err_nomem;
	}
	n = 0;
	json_object_foreach(env.metadata, status, group)
	{
		json_array_foreach(group, i, op)
		{
			items[n++] = op;
		}
	}
	qsort(items, n, sizeof *items, by_created);
	for (i = 0; i < n; i++) {
		if (json_array_append(list, items[i]) != 0) {
			goto err_nomem;
		}
	}
	free(items);
	httpc_envelope_close(&env);
	*out = list;
	return 0;

err_nomem:
	free(items);
	json_decref(list);
	httpc_envelope_close(&env);
	return cli_error("%s", corral_strerror(-ENOMEM));
}

static int list_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	static const struct option options[] = {
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const headers[] = {
		"ID", "TYPE", "DESCRIPTION", "STATUS", "CANCELABLE", "CREATED",
	};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_table table = { 0 };
	json_t *list;
	json_t *op;
	size_t i;
	int status;
	int rv;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options,
				 "f:", cli_format_option, &format);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 0, 0, &status)) {
		return status;
	}
	if (cli_operations(cli, &list) != 0) {
		return 1;
	}
	if (format == CLI_FORMAT_JSON) {
		rv = cli_print_json(list, stdout);
		goto out;
	}
	if (format == CLI_FORMAT_YAML) {
		rv = cli_print_yaml(list, stdout);
		goto out;
	}
	rv = cli_table_init(&table, 6, headers);
	json_array_foreach(list, i, op)
	{
		const char *cls =
		    json_string_value(json_object_get(op, "class"));
		char type[32];
		char created[64];
		const char *cells[6];
		size_t k;

		snprintf(type, sizeof type, "%s", cls != NULL ? cls : "");
		for (k = 0; type[k] != '\0'; k++) {
			type[k] = (char)toupper((unsigned char)type[k]);
		}
		cli_format_date(
		    json_string_value(json_object_get(op, "created_at")),
		    created, sizeof created);
		cells[0] = json_string_value(json_object_get(op, "id"));
		cells[1] = type;
		cells[2] =
		    json_string_value(json_object_get(op, "description"));
		cells[3] = json_string_value(json_object_get(op, "status"));
		cells[4] = json_is_true(json_object_get(op, "may_cancel"))
			       ? "YES"
			       : "NO";
		cells[5] = created;
		if (rv == 0) {
			rv = cli_table_add_row(&table, cells);
		}
	}
	if (rv == 0) {
		rv = cli_table_print(&table, stdout);
	}
	cli_table_close(&table);

out:
	json_decref(list);
	return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
}

static int show_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	char *path;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (cli_api_path(cli, "/1.0/operations", argv[optind], NULL, &path) !=
	    0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	rv = env.metadata != NULL ? cli_print_yaml(env.metadata, stdout) : 0;
	httpc_envelope_close(&env);
	return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
}

static int delete_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	struct httpc_envelope env;
	char *path;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (cli_api_path(cli, "/1.0/operations", argv[optind], NULL, &path) !=
	    0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "DELETE", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	httpc_envelope_close(&env);
	return 0;
}

static const struct cli_verb verb_delete = {
	.name = "delete",
	.args = "<operation>",
	.summary = "Delete a background operation (will attempt to cancel)",
	.flags = NULL,
	.run = delete_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "[--format table|json|yaml]",
	.summary = "List background operations",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = list_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "<operation>",
	.summary = "Show details on a background operation",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb *const operation_verbs[] = {
	&verb_delete,
	&verb_list,
	&verb_show,
};

static int operation_run(struct cli *cli,
			 const struct cli_verb *verb,
			 int argc,
			 char **argv)
{
	return cli_group_run(cli, verb, operation_verbs,
			     sizeof operation_verbs / sizeof operation_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_operation = {
	.name = "operation",
	.args = "[command]",
	.summary = "List, show and delete background operations",
	.flags = NULL,
	.run = operation_run,
};
