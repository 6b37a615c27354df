/* Sub-verb groups, argument counts, key=value lists and shared flags. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "output.h"

/* Bound on the extra long options of one verb. */
#define ARGS_MAX_OPTIONS 8

static void group_usage(const struct cli_verb *group,
			const struct cli_verb *const *verbs,
			size_t n,
			const char *prefix)
{
	size_t i;

	printf(
	    "Description:\n  %s\n\nUsage:\n  %s [command]\n\n"
	    "Available Commands:\n",
	    group->summary, prefix);
	for (i = 0; i < n; i++) {
		printf("  %-13s %s\n", verbs[i]->name, verbs[i]->summary);
	}
	printf(
	    "\nUse \"%s [command] --help\" for more information about a "
	    "command.\n",
	    prefix);
}

int cli_group_run(struct cli *cli,
		  const struct cli_verb *group,
		  const struct cli_verb *const *verbs,
		  size_t n,
		  const char *prefix,
		  int argc,
		  char **argv)
{
	int i = 1;

	/* Global flags may sit between the group and its sub-verb. */
	while (i < argc && strcmp(argv[i], "--project") == 0 && i + 1 < argc) {
		cli->project = argv[i + 1];
		i += 2;
	}
	if (i == argc || strcmp(argv[i], "-h") == 0 ||
	    strcmp(argv[i], "--help") == 0) {
		group_usage(group, verbs, n, prefix);
		return 0;
	}
	return cli_dispatch(cli, verbs, n, prefix, argc - i, argv + i);
}

bool cli_args_bad(const struct cli_verb *verb,
		  const char *prefix,
		  int n,
		  int min,
		  int max,
		  int *status)
{
	if (n >= min && (max < 0 || n <= max)) {
		return false;
	}
	cli_verb_usage(verb, prefix);
	if (n == 0) {
		*status = 0;
		return true;
	}
	*status = cli_error("Invalid number of arguments");
	return true;
}

int cli_config_args(int argc, char **argv, json_t **out)
{
	const char *eq;
	json_t *map;
	int i;

	map = json_object();
	if (map == NULL) {
		goto err_nomem;
	}
	if (argc == 2 && strchr(argv[0], '=') == NULL) {
		if (json_object_set_new(map, argv[0], json_string(argv[1])) !=
		    0) {
			goto err_after_map;
		}
		*out = map;
		return 0;
	}
	for (i = 0; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if (eq == NULL) {
			json_decref(map);
			return cli_error("No value found in \"%s\"", argv[i]);
		}
		if (json_object_setn_new(map, argv[i], (size_t)(eq - argv[i]),
					 json_string(eq + 1)) != 0) {
			goto err_after_map;
		}
	}
	*out = map;
	return 0;

err_after_map:
	json_decref(map);
err_nomem:
	return cli_error("%s", corral_strerror(-ENOMEM));
}

int cli_parse_flags(struct cli *cli,
		    const struct cli_verb *verb,
		    const char *prefix,
		    int argc,
		    char **argv,
		    const struct option *options,
		    const char *shorts,
		    int (*on_option)(int ch, const char *value, void *arg),
		    void *arg)
{
	struct option all[ARGS_MAX_OPTIONS + 3];
	char optstring[64];
	size_t n = 0;
	int ch;

	while (options != NULL && options[n].name != NULL &&
	       n < ARGS_MAX_OPTIONS) {
		all[n] = options[n];
		n++;
	}
	all[n++] = (struct option){ "project", required_argument, NULL, 'P' };
	all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	snprintf(optstring, sizeof optstring, ":h%s", shorts);

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, optstring, all, NULL)) != -1) {
		switch (ch) {
		case 'P':
			cli->project = optarg;
			break;
		case 'h':
			cli_verb_usage(verb, prefix);
			return 0;
		case ':':
		case '?':
			return cli_bad_flag(ch, argv);
		default:
			if (on_option == NULL ||
			    on_option(ch, optarg, arg) != 0) {
				return 1;
			}
			break;
		}
	}
	return -1;
}

int cli_format_option(int ch, const char *value, void *arg)
{
	(void)ch;
	return cli_format_parse(
	    value, CLI_FORMAT_TABLE | CLI_FORMAT_JSON | CLI_FORMAT_YAML,
	    (enum cli_format *)arg);
}

int cli_parse_args(struct cli *cli,
		   const struct cli_verb *verb,
		   const char *prefix,
		   int argc,
		   char **argv,
		   int min,
		   int max)
{
	int status;

	status = cli_parse_flags(cli, verb, prefix, argc, argv, NULL, "", NULL,
				 NULL);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, prefix, argc - optind, min, max, &status)) {
		return status;
	}
	return -1;
}
