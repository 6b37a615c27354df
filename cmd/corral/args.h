/* Argument handling shared by the verbs that follow lxc's conventions:
 * groups of sub-verbs, argument counts and key=value lists. */
#ifndef CORRAL_CLI_ARGS_H
#define CORRAL_CLI_ARGS_H

#include <stdbool.h>
#include <getopt.h>
#include <stddef.h>

#include <jansson.h>

#include "cli.h"

/* Run a verb with sub-verbs (like "corral project"): @argv[0] is the
 * group's name, the sub-verb follows. Without one, or with -h/--help, the
 * usage of @group and the list of its @n sub-verbs @verbs is printed.
 * @prefix names the group in messages ("corral project"). Returns the exit
 * status. */
int cli_group_run(struct cli *cli,
		  const struct cli_verb *group,
		  const struct cli_verb *const *verbs,
		  size_t n,
		  const char *prefix,
		  int argc,
		  char **argv);

/* Check that @n positional arguments are between @min and @max (-1: no
 * upper bound), like lxc's CheckArgs: with no arguments at all the usage
 * of @verb (under @prefix) is printed and *@status is 0; with a wrong
 * number the usage is printed followed by "Error: Invalid number of
 * arguments" and *@status is 1. Returns true when the verb must return
 * *@status, false when the arguments are fine. */
bool cli_args_bad(const struct cli_verb *verb,
		  const char *prefix,
		  int n,
		  int min,
		  int max,
		  int *status);

/* Parse config arguments like lxc's getConfig(): exactly "KEY VALUE"
 * (when KEY has no "="), or "KEY=VALUE" pairs. Fills *@out with a new JSON
 * object of strings (owned by the caller). Returns 0, or prints
 * "Error: No value found in \"ARG\"" (or an out-of-memory error) and
 * returns 1. */
int cli_config_args(int argc, char **argv, json_t **out);

/* Handle the options every state verb shares: --project P (stored in
 * cli->project, borrowed from argv) and -h/--help. Parses @argv with
 * getopt_long() using the extra long @options (may be NULL, at most 8)
 * and short options @shorts (getopt syntax, "" for none) in addition to
 * the shared ones; each extra option's val must be a character other than
 * 'h' and 'P', and is handed to @on_option with its argument (NULL for
 * none) and @arg; @on_option returns 0, or prints an error and returns 1.
 * Returns
 * -1 when parsing went through (optind then points at the first
 * positional argument), else the exit status the verb must return
 * (usage printed: 0; bad flag or rejected option: 1). */
int cli_parse_flags(struct cli *cli,
		    const struct cli_verb *verb,
		    const char *prefix,
		    int argc,
		    char **argv,
		    const struct option *options,
		    const char *shorts,
		    int (*on_option)(int ch, const char *value, void *arg),
		    void *arg);

/* cli_parse_flags() without extra options, then cli_args_bad() on the
 * positional arguments with @min and @max. Returns -1 when the verb can
 * go on (optind points at the first positional argument), else the exit
 * status it must return. */
int cli_parse_args(struct cli *cli,
		   const struct cli_verb *verb,
		   const char *prefix,
		   int argc,
		   char **argv,
		   int min,
		   int max);

/* An on_option callback for cli_parse_flags() that parses --format into
 * the enum cli_format at @arg, accepting table, json and yaml. Returns 0,
 * or prints an error and returns 1. */
int cli_format_option(int ch, const char *value, void *arg);

#endif /* CORRAL_CLI_ARGS_H */
