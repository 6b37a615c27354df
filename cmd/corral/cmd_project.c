/* corral project list|create|show|edit|delete|rename|get|set|unset, like
 * `lxc project`. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "edit.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral project"

static const char *const writable_fields[] = { "config", "description", NULL };

static int out_of_memory(void)
{
	return cli_error("%s", corral_strerror(-ENOMEM));
}

/* The path of project @name (NULL: the collection) with @query. Returns
 * NULL after printing an error. */
static char *project_path(struct cli *cli, const char *name, const char *query)
{
	char *path;

	if (cli_api_path(cli, "/1.0/projects", name, query, &path) != 0) {
		out_of_memory();
		return NULL;
	}
	return path;
}

/* Send @method to project @name (or the collection) with @body (borrowed,
 * may be NULL), dropping the reply. Returns 0, or prints an error and
 * returns 1. */
static int project_call(struct cli *cli,
			const char *method,
			const char *name,
			json_t *body)
{
	struct httpc_envelope env;
	char *path;
	int rv;

	path = project_path(cli, name, NULL);
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, method, path, body, NULL, &env, NULL);
	if (rv == 0) {
		httpc_envelope_close(&env);
	}
	free(path);
	return rv;
}

/* A project as lxc prints it: the fields in Go's order, maps sorted. */
static json_t *project_view(json_t *p)
{
	json_t *config = json_object_get(p, "config");
	json_t *used_by = json_object_get(p, "used_by");
	json_t *desc = json_object_get(p, "description");
	json_t *name = json_object_get(p, "name");

	return json_pack(
	    "{s:o, s:o, s:o, s:o}", "config",
	    config != NULL ? cli_json_sorted(config) : json_object(),
	    "description", desc != NULL ? json_incref(desc) : json_string(""),
	    "name", name != NULL ? json_incref(name) : json_string(""),
	    "used_by",
	    used_by != NULL ? json_deep_copy(used_by) : json_array());
}

static const char *yes_no(json_t *config, const char *key)
{
	const char *v = json_string_value(json_object_get(config, key));

	return v != NULL && strcmp(v, "true") == 0 ? "YES" : "NO";
}

static int print_table(json_t *list)
{
	static const char *const headers[] = {
		"NAME",     "IMAGES",      "PROFILES", "STORAGE VOLUMES",
		"NETWORKS", "DESCRIPTION", "USED BY",
	};
	struct cli_table t = { 0 };
	json_t *rows = NULL;
	const char *name;
	const char *cells[7];
	char current[256];
	char used_by[32];
	json_t *config;
	json_t *row;
	size_t i;
	int rv;

	rv = cli_table_init(&t, 7, headers);
	if (rv != 0) {
		goto out;
	}
	rows = cli_json_by_name(list);
	if (rows == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	json_array_foreach(rows, i, row)
	{
		if (rv != 0) {
			break;
		}
		name = json_string_value(json_object_get(row, "name"));
		config = json_object_get(row, "config");
		/* No client config yet: the current project is "default". */
		if (name != NULL && strcmp(name, "default") == 0) {
			snprintf(current, sizeof current, "%s (current)", name);
			name = current;
		}
		snprintf(used_by, sizeof used_by, "%zu",
			 json_array_size(json_object_get(row, "used_by")));
		cells[0] = name;
		cells[1] = yes_no(config, "features.images");
		cells[2] = yes_no(config, "features.profiles");
		cells[3] = yes_no(config, "features.storage.volumes");
		cells[4] = yes_no(config, "features.networks");
		cells[5] =
		    json_string_value(json_object_get(row, "description"));
		cells[6] = used_by;
		rv = cli_table_add_row(&t, cells);
	}
	if (rv == 0) {
		rv = cli_table_print(&t, stdout);
	}

out:
	json_decref(rows);
	cli_table_close(&t);
	return rv;
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
	enum cli_format format = CLI_FORMAT_TABLE;
	struct httpc_envelope env;
	json_t *views = NULL;
	json_t *item;
	char *path;
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
	path = project_path(cli, NULL, "recursion=1");
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	if (format == CLI_FORMAT_TABLE) {
		rv = print_table(env.metadata);
		goto out;
	}
	views = json_array();
	rv = views != NULL ? 0 : -ENOMEM;
	json_array_foreach(env.metadata, i, item)
	{
		if (rv == 0 &&
		    json_array_append_new(views, project_view(item)) != 0) {
			rv = -ENOMEM;
		}
	}
	if (rv == 0) {
		rv = format == CLI_FORMAT_JSON ? cli_print_json(views, stdout)
					       : cli_print_yaml(views, stdout);
	}

out:
	json_decref(views);
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error("print projects: %s", corral_strerror(rv));
	}
	return 0;
}

struct create_opts {
	json_t *config;          /* owned */
	const char *description; /* borrowed from argv */
};

static int create_option(int ch, const char *value, void *arg)
{
	struct create_opts *o = arg;
	const char *eq;

	if (ch == 'd') {
		o->description = value;
		return 0;
	}
	eq = strchr(value, '=');
	if (eq == NULL) {
		return cli_error("Bad key=value pair: %s", value);
	}
	if (json_object_setn_new(o->config, value, (size_t)(eq - value),
				 json_string(eq + 1)) != 0) {
		return out_of_memory();
	}
	return 0;
}

static int create_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "description", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct create_opts o = { .config = json_object() };
	json_t *body = NULL;
	const char *name;
	int status;

	if (o.config == NULL) {
		return out_of_memory();
	}
	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options,
				 "c:", create_option, &o);
	if (status >= 0) {
		goto out;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 1, 1, &status)) {
		goto out;
	}
	name = argv[optind];
	body = json_pack("{s:s, s:s, s:O}", "name", name, "description",
			 o.description != NULL ? o.description : "", "config",
			 o.config);
	if (body == NULL) {
		status = out_of_memory();
		goto out;
	}
	status = project_call(cli, "POST", NULL, body);
	if (status == 0) {
		printf("Project %s created\n", name);
	}

out:
	json_decref(body);
	json_decref(o.config);
	return status;
}

/* GET project @name into @env, with its ETag in @etag (may be NULL).
 * Returns 0, or prints an error and returns 1. */
static int get_project(struct cli *cli,
		       const char *name,
		       struct httpc_envelope *env,
		       char *etag)
{
	char *path;
	int rv;

	path = project_path(cli, name, NULL);
	if (path == NULL) {
		memset(env, 0, sizeof *env);
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, env, etag);
	free(path);
	return rv;
}

static int show_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	json_t *view;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (get_project(cli, argv[optind], &env, NULL) != 0) {
		return 1;
	}
	view = project_view(env.metadata);
	rv = view != NULL ? cli_print_yaml(view, stdout) : -ENOMEM;
	json_decref(view);
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error("print project: %s", corral_strerror(rv));
	}
	return 0;
}

struct edit_target {
	const char *name; /* borrowed from argv */
	const char *etag; /* borrowed */
};

static int edit_apply(struct cli *cli,
		      json_t *doc,
		      void *arg,
		      char *errmsg,
		      size_t errmsg_size)
{
	struct edit_target *target = arg;
	struct httpc_envelope env;
	json_t *config = json_object_get(doc, "config");
	json_t *desc = json_object_get(doc, "description");
	json_t *body;
	char *text = NULL;
	char *path;
	int rv = 1;

	if (cli_json_string_map(config) != 0) {
		snprintf(errmsg, errmsg_size, "%s", corral_strerror(-ENOMEM));
		return 1;
	}
	body = json_pack(
	    "{s:o, s:o}", "config",
	    config == NULL || json_is_null(config) ? json_object()
						   : json_incref(config),
	    "description",
	    desc == NULL || json_is_null(desc) ? json_string("")
					       : json_incref(desc));
	path = project_path(cli, target->name, NULL);
	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
	}
	if (path == NULL || text == NULL) {
		snprintf(errmsg, errmsg_size, "%s", corral_strerror(-ENOMEM));
		goto out;
	}
	rv = cli_request(cli, "PUT", path, text, target->etag, &env, NULL,
			 errmsg, errmsg_size);
	if (rv == 0) {
		httpc_envelope_close(&env);
	}

out:
	free(text);
	free(path);
	json_decref(body);
	return rv;
}

static const char edit_header[] =
    "### This is a YAML representation of the project.\n"
    "### Any line starting with a '# will be ignored.\n"
    "###\n"
    "### A project consists of a set of features and a description.\n"
    "###\n"
    "### An example would look like:\n"
    "### config:\n"
    "###   features.images: \"true\"\n"
    "###   features.profiles: \"true\"\n"
    "### description: My own project\n"
    "###\n"
    "### Note that the name is shown but cannot be changed\n"
    "\n";

static int edit_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	char etag[CLI_ETAG_SIZE];
	struct edit_target target;
	json_t *config;
	json_t *current;
	json_t *desc;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	target.name = argv[optind];
	if (get_project(cli, target.name, &env, etag) != 0) {
		return 1;
	}
	target.etag = etag[0] != '\0' ? etag : NULL;
	config = json_object_get(env.metadata, "config");
	desc = json_object_get(env.metadata, "description");
	current = json_pack(
	    "{s:o, s:o}", "config",
	    config != NULL ? cli_json_sorted(config) : json_object(),
	    "description", desc != NULL ? json_incref(desc) : json_string(""));
	if (current == NULL) {
		httpc_envelope_close(&env);
		return out_of_memory();
	}
	status = cli_edit(cli, current, edit_header, edit_apply, &target);
	json_decref(current);
	httpc_envelope_close(&env);
	return status;
}

static int delete_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (project_call(cli, "DELETE", argv[optind], NULL) != 0) {
		return 1;
	}
	printf("Project %s deleted\n", argv[optind]);
	return 0;
}

static int rename_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	json_t *body;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 2, 2);
	if (status >= 0) {
		return status;
	}
	body = json_pack("{s:s}", "name", argv[optind + 1]);
	if (body == NULL) {
		return out_of_memory();
	}
	status = project_call(cli, "POST", argv[optind], body);
	json_decref(body);
	if (status == 0) {
		printf("Project %s renamed to %s\n", argv[optind],
		       argv[optind + 1]);
	}
	return status;
}

static int get_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	struct httpc_envelope env;
	const char *value;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 2, 2);
	if (status >= 0) {
		return status;
	}
	if (get_project(cli, argv[optind], &env, NULL) != 0) {
		return 1;
	}
	value = json_string_value(json_object_get(
	    json_object_get(env.metadata, "config"), argv[optind + 1]));
	printf("%s\n", value != NULL ? value : "");
	httpc_envelope_close(&env);
	return 0;
}

/* Apply the config @changes (reference stolen) to project @name. */
static int update_config(struct cli *cli, const char *name, json_t *changes)
{
	char *path;
	int status;

	path = project_path(cli, name, NULL);
	if (path == NULL) {
		json_decref(changes);
		return 1;
	}
	status =
	    cli_update(cli, path, writable_fields, cli_merge_config, changes);
	free(path);
	json_decref(changes);
	return status;
}

static int set_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	json_t *changes;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 2, -1);
	if (status >= 0) {
		return status;
	}
	if (cli_config_args(argc - optind - 1, argv + optind + 1, &changes) !=
	    0) {
		return 1;
	}
	return update_config(cli, argv[optind], changes);
}

static int unset_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	json_t *changes;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 2, 2);
	if (status >= 0) {
		return status;
	}
	changes = json_pack("{s:s}", argv[optind + 1], "");
	if (changes == NULL) {
		return out_of_memory();
	}
	return update_config(cli, argv[optind], changes);
}

static const struct cli_verb verb_create = {
	.name = "create",
	.args = "<project> [--config|-c <key>=<value>...] [--description D]",
	.summary = "Create projects",
	.flags =
	    "  -c, --config        Config key/value to apply to the new "
	    "project\n"
	    "      --description   Project description\n",
	.run = create_run,
};

static const struct cli_verb verb_delete = {
	.name = "delete",
	.args = "<project>",
	.summary = "Delete projects",
	.flags = NULL,
	.run = delete_run,
};

static const struct cli_verb verb_edit = {
	.name = "edit",
	.args = "<project>",
	.summary = "Edit project configurations as YAML",
	.flags = NULL,
	.run = edit_run,
};

static const struct cli_verb verb_get = {
	.name = "get",
	.args = "<project> <key>",
	.summary = "Get values for project configuration keys",
	.flags = NULL,
	.run = get_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "[--format table|json|yaml]",
	.summary = "List projects",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default "
	    "\"table\")\n",
	.run = list_run,
};

static const struct cli_verb verb_rename = {
	.name = "rename",
	.args = "<old-name> <new-name>",
	.summary = "Rename projects",
	.flags = NULL,
	.run = rename_run,
};

static const struct cli_verb verb_set = {
	.name = "set",
	.args = "<project> <key> <value> | <project> <key>=<value>...",
	.summary = "Set project configuration keys",
	.flags = NULL,
	.run = set_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "<project>",
	.summary = "Show project options",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb verb_unset = {
	.name = "unset",
	.args = "<project> <key>",
	.summary = "Unset project configuration keys",
	.flags = NULL,
	.run = unset_run,
};

static const struct cli_verb *const project_verbs[] = {
	&verb_create, &verb_delete, &verb_edit, &verb_get,   &verb_list,
	&verb_rename, &verb_set,    &verb_show, &verb_unset,
};

static int project_run(struct cli *cli,
		       const struct cli_verb *verb,
		       int argc,
		       char **argv)
{
	return cli_group_run(cli, verb, project_verbs,
			     sizeof project_verbs / sizeof project_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_project = {
	.name = "project",
	.args = "[command]",
	.summary = "Manage projects",
	.flags = NULL,
	.run = project_run,
};
