/* corral profile device add|get|list|remove|set|show|unset, like
 * `lxc profile device`: each change reads the profile with its ETag and
 * writes it back with If-Match. */

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

#define PREFIX CLI_DEVICE_PREFIX

/* What a change does to the devices of a profile. */
struct device_change {
	const char *device; /* borrowed from argv */
	json_t *values;     /* owned: the device (add), keys to set (set) */
	char **names;       /* borrowed from argv: devices to remove */
	int n_names;
};

static int out_of_memory(void)
{
	return cli_error("%s", corral_strerror(-ENOMEM));
}

/* The "devices" object of @put, created when absent. */
static json_t *devices_of(json_t *put)
{
	json_t *devices = json_object_get(put, "devices");

	if (json_is_object(devices)) {
		return devices;
	}
	devices = json_object();
	if (devices == NULL ||
	    json_object_set_new(put, "devices", devices) != 0) {
		return NULL;
	}
	return devices;
}

static int add_modify(json_t *put, void *arg)
{
	struct device_change *change = arg;
	json_t *devices = devices_of(put);

	if (devices == NULL) {
		return out_of_memory();
	}
	if (json_object_get(devices, change->device) != NULL) {
		return cli_error("The device already exists");
	}
	if (json_object_set(devices, change->device, change->values) != 0) {
		return out_of_memory();
	}
	return 0;
}

static int set_modify(json_t *put, void *arg)
{
	struct device_change *change = arg;
	json_t *device;
	const char *key;
	json_t *value;

	device = json_object_get(devices_of(put), change->device);
	if (!json_is_object(device)) {
		return cli_error("The device doesn't exist");
	}
	json_object_foreach(change->values, key, value)
	{
		/* An empty value removes the key, as `device unset` does. */
		if (json_string_length(value) == 0) {
			json_object_del(device, key);
		} else if (json_object_set(device, key, value) != 0) {
			return out_of_memory();
		}
	}
	return 0;
}

static int remove_modify(json_t *put, void *arg)
{
	struct device_change *change = arg;
	json_t *devices = devices_of(put);
	int i;

	if (devices == NULL) {
		return out_of_memory();
	}
	for (i = 0; i < change->n_names; i++) {
		if (json_object_del(devices, change->names[i]) != 0) {
			return cli_error("The device doesn't exist");
		}
	}
	return 0;
}

/* Run @modify with @change on profile @name. */
static int change_profile(struct cli *cli,
			  const char *name,
			  int (*modify)(json_t *put, void *arg),
			  struct device_change *change)
{
	char *path;
	int status;

	path = cli_profile_path(cli, name, NULL);
	if (path == NULL) {
		return 1;
	}
	status = cli_update(cli, path, cli_profile_fields, modify, change);
	free(path);
	return status;
}

static int add_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	struct device_change change = { 0 };
	const char *eq;
	int status;
	int i;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 3, -1);
	if (status >= 0) {
		return status;
	}
	change.device = argv[optind + 1];
	change.values = json_pack("{s:s}", "type", argv[optind + 2]);
	if (change.values == NULL) {
		return out_of_memory();
	}
	for (i = optind + 3; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if (eq == NULL) {
			json_decref(change.values);
			return cli_error("No value found in \"%s\"", argv[i]);
		}
		if (json_object_setn_new(change.values, argv[i],
					 (size_t)(eq - argv[i]),
					 json_string(eq + 1)) != 0) {
			json_decref(change.values);
			return out_of_memory();
		}
	}
	status = change_profile(cli, argv[optind], add_modify, &change);
	json_decref(change.values);
	if (status == 0) {
		printf("Device %s added to %s\n", change.device, argv[optind]);
	}
	return status;
}

static int set_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	struct device_change change = { 0 };
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 3, -1);
	if (status >= 0) {
		return status;
	}
	change.device = argv[optind + 1];
	if (cli_config_args(argc - optind - 2, argv + optind + 2,
			    &change.values) != 0) {
		return 1;
	}
	status = change_profile(cli, argv[optind], set_modify, &change);
	json_decref(change.values);
	return status;
}

static int unset_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	struct device_change change = { 0 };
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 3, 3);
	if (status >= 0) {
		return status;
	}
	change.device = argv[optind + 1];
	change.values = json_pack("{s:s}", argv[optind + 2], "");
	if (change.values == NULL) {
		return out_of_memory();
	}
	status = change_profile(cli, argv[optind], set_modify, &change);
	json_decref(change.values);
	return status;
}

static int remove_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	struct device_change change = { 0 };
	int status;
	int i;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 2, -1);
	if (status >= 0) {
		return status;
	}
	change.names = argv + optind + 1;
	change.n_names = argc - optind - 1;
	status = change_profile(cli, argv[optind], remove_modify, &change);
	if (status == 0) {
		printf("Device ");
		for (i = 0; i < change.n_names; i++) {
			printf("%s%s", i > 0 ? ", " : "", change.names[i]);
		}
		printf(" removed from %s\n", argv[optind]);
	}
	return status;
}

/* GET profile @name into @env and return its devices (owned by @env, an
 * object or NULL). Returns 0, or prints an error and returns 1. */
static int get_devices(struct cli *cli,
		       const char *name,
		       struct httpc_envelope *env,
		       json_t **devices)
{
	char *path;
	int rv;

	memset(env, 0, sizeof *env);
	path = cli_profile_path(cli, name, NULL);
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, env, NULL);
	free(path);
	if (rv == 0) {
		*devices = json_object_get(env->metadata, "devices");
	}
	return rv;
}

static int get_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	struct httpc_envelope env;
	json_t *devices;
	json_t *device;
	const char *value;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 3, 3);
	if (status >= 0) {
		return status;
	}
	if (get_devices(cli, argv[optind], &env, &devices) != 0) {
		return 1;
	}
	device = json_object_get(devices, argv[optind + 1]);
	if (device == NULL) {
		httpc_envelope_close(&env);
		return cli_error("The device doesn't exist");
	}
	value = json_string_value(json_object_get(device, argv[optind + 2]));
	printf("%s\n", value != NULL ? value : "");
	httpc_envelope_close(&env);
	return 0;
}

static int list_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	json_t *devices;
	json_t *sorted;
	const char *key;
	json_t *value;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (get_devices(cli, argv[optind], &env, &devices) != 0) {
		return 1;
	}
	sorted = cli_json_sorted(devices);
	json_object_foreach(sorted, key, value)
	{
		printf("%s\n", key);
	}
	json_decref(sorted);
	httpc_envelope_close(&env);
	return 0;
}

static int show_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	json_t *devices;
	json_t *sorted;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (get_devices(cli, argv[optind], &env, &devices) != 0) {
		return 1;
	}
	sorted = devices != NULL ? cli_json_sorted(devices) : json_object();
	rv = sorted != NULL ? cli_print_yaml(sorted, stdout) : -ENOMEM;
	json_decref(sorted);
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error("print devices: %s", corral_strerror(rv));
	}
	return 0;
}

static const struct cli_verb verb_add = {
	.name = "add",
	.args = "<profile> <device> <type> [key=value...]",
	.summary = "Add profile devices",
	.flags = NULL,
	.run = add_run,
};

static const struct cli_verb verb_get = {
	.name = "get",
	.args = "<profile> <device> <key>",
	.summary = "Get values for device configuration keys",
	.flags = NULL,
	.run = get_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "<profile>",
	.summary = "List profile devices",
	.flags = NULL,
	.run = list_run,
};

static const struct cli_verb verb_remove = {
	.name = "remove",
	.args = "<profile> <name>...",
	.summary = "Remove profile devices",
	.flags = NULL,
	.run = remove_run,
};

static const struct cli_verb verb_set = {
	.name = "set",
	.args = "<profile> <device> <key>=<value>...",
	.summary = "Set device configuration keys",
	.flags = NULL,
	.run = set_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "<profile>",
	.summary = "Show full device configuration",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb verb_unset = {
	.name = "unset",
	.args = "<profile> <device> <key>",
	.summary = "Unset device configuration keys",
	.flags = NULL,
	.run = unset_run,
};

static const struct cli_verb *const device_verbs[] = {
	&verb_add, &verb_get,  &verb_list,  &verb_remove,
	&verb_set, &verb_show, &verb_unset,
};

static int device_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	return cli_group_run(cli, verb, device_verbs,
			     sizeof device_verbs / sizeof device_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_profile_device = {
	.name = "device",
	.args = "[command]",
	.summary = "Manage devices",
	.flags = NULL,
	.run = device_run,
};
