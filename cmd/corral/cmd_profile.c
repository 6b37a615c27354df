/* corral profile list|create|show|edit|delete|rename|get|set|unset and
 * device ..., like `lxc profile`, in the project given by --project. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "edit.h"
#include "output.h"
#include "profile.h"
#include "request.h"

#define PREFIX CLI_PROFILE_PREFIX

const char *const cli_profile_fields[] = { "config", "description", "devices",
					   NULL };

static int out_of_memory(void)
{
	return cli_error("%s", corral_strerror(-ENOMEM));
}

char *cli_profile_path(struct cli *cli, const char *name, const char *query)
{
	char *path;

	if (cli_api_path(cli, "/1.0/profiles", name, query, &path) != 0) {
		out_of_memory();
		return NULL;
	}
	return path;
}

/* Send @method to profile @name (or the collection) with @body (borrowed,
 * may be NULL), dropping the reply. Returns 0, or prints an error and
 * returns 1. */
static int profile_call(struct cli *cli,
			const char *method,
			const char *name,
			json_t *body)
{
	struct httpc_envelope env;
	char *path;
	int rv;

	path = cli_profile_path(cli, name, NULL);
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

/* GET profile @name into @env, with its ETag in @etag (may be NULL).
 * Returns 0, or prints an error and returns 1. */
static int get_profile(struct cli *cli,
		       const char *name,
		       struct httpc_envelope *env,
		       char *etag)
{
	char *path;
	int rv;

	memset(env, 0, sizeof *env);
	path = cli_profile_path(cli, name, NULL);
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, env, etag);
	free(path);
	return rv;
}

/* A sorted copy of the map @p[@field], or an empty map. */
static json_t *sorted_field(json_t *p, const char *field)
{
	json_t *v = json_object_get(p, field);

	return json_is_object(v) ? cli_json_sorted(v) : json_object();
}

/* A string field of @p, as a new reference ("" when absent). */
static json_t *string_field(json_t *p, const char *field)
{
	json_t *v = json_object_get(p, field);

	return json_is_string(v) ? json_incref(v) : json_string("");
}

/* The writable part of profile @p as lxc shows it for editing. */
static json_t *profile_put_view(json_t *p)
{
	return json_pack("{s:o, s:o, s:o}", "config", sorted_field(p, "config"),
			 "description", string_field(p, "description"),
			 "devices", sorted_field(p, "devices"));
}

/* Profile @p as lxc prints it: Go's field order, maps sorted. */
static json_t *profile_view(json_t *p)
{
	json_t *used_by = json_object_get(p, "used_by");

	return json_pack(
	    "{s:o, s:o, s:o, s:o, s:o}", "config", sorted_field(p, "config"),
	    "description", string_field(p, "description"), "devices",
	    sorted_field(p, "devices"), "name", string_field(p, "name"),
	    "used_by",
	    json_is_array(used_by) ? json_deep_copy(used_by) : json_array());
}

static int print_table(json_t *list)
{
	static const char *const headers[] = { "NAME", "DESCRIPTION",
					       "USED BY" };
	struct cli_table t = { 0 };
	const char *cells[3];
	char used_by[32];
	json_t *rows;
	json_t *row;
	size_t i;
	int rv;

	rows = cli_json_by_name(list);
	if (rows == NULL) {
		return -ENOMEM;
	}
	rv = cli_table_init(&t, 3, headers);
	json_array_foreach(rows, i, row)
	{
		if (rv != 0) {
			break;
		}
		snprintf(used_by, sizeof used_by, "%zu",
			 json_array_size(json_object_get(row, "used_by")));
		cells[0] = json_string_value(json_object_get(row, "name"));
		cells[1] =
		    json_string_value(json_object_get(row, "description"));
		cells[2] = used_by;
		rv = cli_table_add_row(&t, cells);
	}
	if (rv == 0) {
		rv = cli_table_print(&t, stdout);
	}
	cli_table_close(&t);
	json_decref(rows);
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
	path = cli_profile_path(cli, NULL, "recursion=1");
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
		    json_array_append_new(views, profile_view(item)) != 0) {
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
		return cli_error("print profiles: %s", corral_strerror(rv));
	}
	return 0;
}

static int description_option(int ch, const char *value, void *arg)
{
	(void)ch;
	*(const char **)arg = value;
	return 0;
}

static int create_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	static const struct option options[] = {
		{ "description", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *description = "";
	json_t *body;
	int status;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "",
				 description_option, &description);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 1, 1, &status)) {
		return status;
	}
	body = json_pack("{s:s, s:s}", "name", argv[optind], "description",
			 description);
	if (body == NULL) {
		return out_of_memory();
	}
	status = profile_call(cli, "POST", NULL, body);
	json_decref(body);
	if (status == 0) {
		printf("Profile %s created\n", argv[optind]);
	}
	return status;
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
	if (get_profile(cli, argv[optind], &env, NULL) != 0) {
		return 1;
	}
	view = profile_view(env.metadata);
	rv = view != NULL ? cli_print_yaml(view, stdout) : -ENOMEM;
	json_decref(view);
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error("print profile: %s", corral_strerror(rv));
	}
	return 0;
}

struct edit_target {
	const char *name; /* borrowed from argv */
	const char *etag; /* borrowed, NULL when the GET sent none */
};

/* The field @name of the edited @doc as a new reference: a map (nulls in
 * it made "") or, when absent or null, an empty map. */
static json_t *edited_map(json_t *doc, const char *name)
{
	json_t *v = json_object_get(doc, name);

	if (v == NULL || json_is_null(v)) {
		return json_object();
	}
	return json_incref(v);
}

static int edit_apply(struct cli *cli,
		      json_t *doc,
		      void *arg,
		      char *errmsg,
		      size_t errmsg_size)
{
	struct edit_target *target = arg;
	struct httpc_envelope env;
	json_t *desc = json_object_get(doc, "description");
	json_t *devices;
	json_t *device;
	const char *key;
	json_t *body;
	char *text = NULL;
	char *path;
	int rv = 1;

	body = json_pack("{s:o, s:o, s:o}", "config", edited_map(doc, "config"),
			 "description",
			 desc == NULL || json_is_null(desc) ? json_string("")
							    : json_incref(desc),
			 "devices", edited_map(doc, "devices"));
	path = cli_profile_path(cli, target->name, NULL);
	if (body == NULL || path == NULL ||
	    cli_json_string_map(json_object_get(body, "config")) != 0) {
		goto err_nomem;
	}
	devices = json_object_get(body, "devices");
	json_object_foreach(devices, key, device)
	{
		if (cli_json_string_map(device) != 0) {
			goto err_nomem;
		}
	}
	text = json_dumps(body, JSON_COMPACT);
	if (text == NULL) {
		goto err_nomem;
	}
	rv = cli_request(cli, "PUT", path, text, target->etag, &env, NULL,
			 errmsg, errmsg_size);
	if (rv == 0) {
		httpc_envelope_close(&env);
	}
	goto out;

err_nomem:
	snprintf(errmsg, errmsg_size, "%s", corral_strerror(-ENOMEM));
out:
	free(text);
	free(path);
	json_decref(body);
	return rv;
}

static const char edit_header[] =
    "### This is a YAML representation of the profile.\n"
    "### Any line starting with a '# will be ignored.\n"
    "###\n"
    "### A profile consists of a set of configuration items followed by a "
    "set of\n"
    "### devices.\n"
    "###\n"
    "### An example would look like:\n"
    "### config:\n"
    "###   limits.memory: 512MiB\n"
    "### description: Some description string\n"
    "### devices:\n"
    "###   eth0:\n"
    "###     nictype: bridged\n"
    "###     parent: lxdbr0\n"
    "###     type: nic\n"
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
	json_t *current;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	target.name = argv[optind];
	if (get_profile(cli, target.name, &env, etag) != 0) {
		return 1;
	}
	target.etag = etag[0] != '\0' ? etag : NULL;
	current = profile_put_view(env.metadata);
	httpc_envelope_close(&env);
	if (current == NULL) {
		return out_of_memory();
	}
	status = cli_edit(cli, current, edit_header, edit_apply, &target);
	json_decref(current);
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
	if (profile_call(cli, "DELETE", argv[optind], NULL) != 0) {
		return 1;
	}
	printf("Profile %s deleted\n", argv[optind]);
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
	status = profile_call(cli, "POST", argv[optind], body);
	json_decref(body);
	if (status == 0) {
		printf("Profile %s renamed to %s\n", argv[optind],
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
	if (get_profile(cli, argv[optind], &env, NULL) != 0) {
		return 1;
	}
	value = json_string_value(json_object_get(
	    json_object_get(env.metadata, "config"), argv[optind + 1]));
	printf("%s\n", value != NULL ? value : "");
	httpc_envelope_close(&env);
	return 0;
}

/* Apply the config @changes (reference stolen) to profile @name. */
static int update_config(struct cli *cli, const char *name, json_t *changes)
{
	char *path;
	int status;

	path = cli_profile_path(cli, name, NULL);
	if (path == NULL) {
		json_decref(changes);
		return 1;
	}
	status = cli_update(cli, path, cli_profile_fields, cli_merge_config,
			    changes);
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
	.args = "<profile> [--description D]",
	.summary = "Create profiles",
	.flags = "      --description   Profile description\n",
	.run = create_run,
};

static const struct cli_verb verb_delete = {
	.name = "delete",
	.args = "<profile>",
	.summary = "Delete profiles",
	.flags = NULL,
	.run = delete_run,
};

static const struct cli_verb verb_edit = {
	.name = "edit",
	.args = "<profile>",
	.summary = "Edit profile configurations as YAML",
	.flags = NULL,
	.run = edit_run,
};

static const struct cli_verb verb_get = {
	.name = "get",
	.args = "<profile> <key>",
	.summary = "Get values for profile configuration keys",
	.flags = NULL,
	.run = get_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "[--format table|json|yaml]",
	.summary = "List profiles",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default "
	    "\"table\")\n",
	.run = list_run,
};

static const struct cli_verb verb_rename = {
	.name = "rename",
	.args = "<profile> <new-name>",
	.summary = "Rename profiles",
	.flags = NULL,
	.run = rename_run,
};

static const struct cli_verb verb_set = {
	.name = "set",
	.args = "<profile> <key> <value> | <profile> <key>=<value>...",
	.summary = "Set profile configuration keys",
	.flags = NULL,
	.run = set_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "<profile>",
	.summary = "Show profile configurations",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb verb_unset = {
	.name = "unset",
	.args = "<profile> <key>",
	.summary = "Unset profile configuration keys",
	.flags = NULL,
	.run = unset_run,
};

static const struct cli_verb *const profile_verbs[] = {
	&verb_create, &cli_verb_profile_device,
	&verb_delete, &verb_edit,
	&verb_get,    &verb_list,
	&verb_rename, &verb_set,
	&verb_show,   &verb_unset,
};

static int profile_run(struct cli *cli,
		       const struct cli_verb *verb,
		       int argc,
		       char **argv)
{
	return cli_group_run(cli, verb, profile_verbs,
			     sizeof profile_verbs / sizeof profile_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_profile = {
	.name = "profile",
	.args = "[command]",
	.summary = "Manage profiles",
	.flags = NULL,
	.run = profile_run,
};
