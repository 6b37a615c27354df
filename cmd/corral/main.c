/* corral: the command-line client. Parses the global flags, then hands the
 * rest of the command line to a verb from the table below. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <corral/version.h>

#include "cli.h"
#include "remote.h"

static int help_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv);

static const struct cli_verb verb_help = {
	.name = "help",
	.args = "[COMMAND]",
	.summary = "Help about any command",
	.flags = NULL,
	.run = help_run,
};

/* Top-level verbs, in the order `corral help` lists them. Verbs with
 * sub-verbs (config, project, profile, remote, cluster, operation) call
 * cli_dispatch() on a table of their own. */
static const struct cli_verb *const verbs[] = {
	&verb_help,        &cli_verb_cluster, &cli_verb_config,
	&cli_verb_info,    &cli_verb_monitor, &cli_verb_operation,
	&cli_verb_profile, &cli_verb_project, &cli_verb_query,
	&cli_verb_remote,  &cli_verb_version,
};

#define N_VERBS (sizeof verbs / sizeof verbs[0])

static void usage(void)
{
	size_t i;

	printf(
	    "Description:\n"
	    "  Command line client for corral, a cluster control plane for Linux\n"
	    "  containers that speaks LXD's REST API\n"
	    "\n"
	    "Usage:\n"
	    "  corral [--socket PATH] [command] [flags]\n"
	    "\n"
	    "Available Commands:\n");
	for (i = 0; i < N_VERBS; i++) {
		printf("  %-11s %s\n", verbs[i]->name, verbs[i]->summary);
	}
	printf(
	    "\n"
	    "Remotes:\n"
	    "  An argument \"REMOTE:...\" (\"corral info r:\", \"corral query\n"
	    "  r:/1.0\") talks to the remote REMOTE instead of the default one\n"
	    "  (see \"corral remote\").\n"
	    "\n"
	    "Global Flags:\n"
	    "  -h, --help          Print help\n"
	    "      --project P     Project to use (default \"default\")\n"
	    "      --socket PATH   Unix socket of the daemon (default\n"
	    "                      $CORRAL_DIR/unix.socket, else\n"
	    "                      /var/lib/corral/unix.socket)\n"
	    "      --version       Print version number\n"
	    "\n"
	    "Use \"corral [command] --help\" for more information about a command.\n");
}

static int help_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	size_t i;

	(void)cli;
	(void)verb;
	if (argc < 2) {
		usage();
		return 0;
	}
	for (i = 0; i < N_VERBS; i++) {
		if (strcmp(argv[1], verbs[i]->name) == 0) {
			cli_verb_usage(verbs[i], "corral");
			return 0;
		}
	}
	return cli_error("unknown help topic \"%s\"", argv[1]);
}

int main(int argc, char **argv)
{
	const char *project_flag = NULL;
	const char *socket_flag = NULL;
	struct cli cli;
	int i;
	int rv;

	/* Global flags come before the verb. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--socket") == 0) {
			if (i + 1 == argc) {
				return cli_error(
				    "flag needs an argument: --socket");
			}
			socket_flag = argv[++i];
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			socket_flag = argv[i] + 9;
		} else if (strcmp(argv[i], "--project") == 0) {
			if (i + 1 == argc) {
				return cli_error(
				    "flag needs an argument: --project");
			}
			project_flag = argv[++i];
		} else if (strncmp(argv[i], "--project=", 10) == 0) {
			project_flag = argv[i] + 10;
		} else if (strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "--help") == 0) {
			usage();
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("%s\n", CORRAL_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else {
			return cli_error("unknown flag: %s", argv[i]);
		}
	}
	if (i == argc) {
		usage();
		return 0;
	}
	if (socket_flag != NULL && socket_flag[0] == '\0') {
		return cli_error("--socket needs a path");
	}

	if (cli_init(&cli, socket_flag) != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	cli.project = project_flag;
	argc -= i;
	argv += i;
	rv = cli_route(&cli, &argc, argv);
	if (rv == 0) {
		rv = cli_dispatch(&cli, verbs, N_VERBS, "corral", argc, argv);
	}
	cli_close(&cli);
	fflush(stdout);
	if (ferror(stdout)) {
		return 1;
	}
	return rv;
}
