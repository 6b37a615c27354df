/* REMOTE: prefixes and connections to remotes. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remote.h"

/* Flags whose value is the next argument (so it is no positional one). */
static const char *const value_flags[] = {
	"--format",   "--project",
	"-X",         "--request",
	"-d",         "--data",
	"--name",     "--projects",
	"--password", "--type",
	"-c",         "--config",
	"--target",   "--description",
	"-p",         "--profile",
	"--socket",   "-t",
	NULL,
};

static bool takes_value(const char *arg)
{
	size_t i;

	for (i = 0; value_flags[i] != NULL; i++) {
		if (strcmp(arg, value_flags[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* Whether @arg looks like a sub-verb or a plain name ("list", "default"):
 * the scan for REMOTE: goes on past such words and stops at anything else
 * (keys, values, paths). */
static bool is_word(const char *arg)
{
	return arg[0] != '\0' &&
	       strspn(arg,
		      "abcdefghijklmnopqrstuvwxyz"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(arg);
}

int cli_route(struct cli *cli, int *argc, char **argv)
{
	char errmsg[CORRAL_ERRMSG_SIZE + 256];
	const char *colon;
	char *name;
	int rv;
	int k;

	if (*argc > 0 && strcmp(argv[0], "help") == 0) {
		return 0;
	}
	cli->conf = calloc(1, sizeof *cli->conf);
	if (cli->conf == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_conf_load(cli->conf, errmsg, sizeof errmsg);
	if (rv != 0) {
		free(cli->conf);
		cli->conf = NULL;
		return cli_error("%s", errmsg);
	}
	if (*argc == 0 || strcmp(argv[0], "remote") == 0) {
		return 0;
	}
	for (k = 1; k < *argc; k++) {
		const char *a = argv[k];

		if (a[0] == '-' && a[1] != '\0') {
			if (takes_value(a)) {
				k++;
			}
			continue;
		}
		colon = strchr(a, ':');
		if (colon == NULL) {
			if (is_word(a)) {
				continue;
			}
			break;
		}
		name = strndup(a, (size_t)(colon - a));
		if (name == NULL) {
			return cli_error("%s", corral_strerror(-ENOMEM));
		}
		if (cli_conf_remote(cli->conf, name) != NULL) {
			cli->remote = name;
			if (colon[1] == '\0') {
				memmove(argv + k, argv + k + 1,
					(size_t)(*argc - k) * sizeof *argv);
				(*argc)--;
			} else {
				argv[k] = (char *)colon + 1;
			}
			return 0;
		}
		if (colon[1] == '\0' && cli_remote_name_ok(name)) {
			rv = cli_error("The remote \"%s\" doesn't exist", name);
			free(name);
			return rv;
		}
		free(name);
		break;
	}
	return 0;
}

/* Describe a pinned-fingerprint mismatch of remote @name. */
static void mismatch_message(const char *name,
			     const char *addr,
			     const char *pinned,
			     const char *seen,
			     char *errmsg,
			     size_t size)
{
	snprintf(errmsg, size,
		 "The certificate of remote \"%s\" (%s) has changed: the "
		 "server presents fingerprint %s, but %s was pinned when the "
		 "remote was added.\n"
		 "Either the server was reinstalled or its certificate was "
		 "regenerated, or someone is intercepting the connection "
		 "(man-in-the-middle). corral refuses to connect.\n"
		 "If you know the server's certificate was legitimately "
		 "replaced, check the new fingerprint with its administrator "
		 "and add the remote again:\n"
		 "  corral remote remove %s\n"
		 "  corral remote add %s <address or token>",
		 name, addr, seen != NULL ? seen : "(unknown)", pinned, name,
		 name);
}

int cli_remote_tls(struct cli_conf *conf,
		   const char *name,
		   json_t *remote,
		   struct httpc_client *c,
		   char *errmsg,
		   size_t errmsg_size)
{
	char why[CORRAL_ERRMSG_SIZE];
	struct httpc_tls_config cfg = { 0 };
	const char *addr = json_string_value(json_object_get(remote, "addr"));
	const char *pin =
	    json_string_value(json_object_get(remote, "fingerprint"));
	char *host = NULL;
	char *port = NULL;
	char *crt = NULL;
	char *key = NULL;
	char *ca = NULL;
	int rv;

	memset(c, 0, sizeof *c);
	rv =
	    addr != NULL ? cli_addr_split(addr, &host, &port) : CORRAL_EINVALID;
	if (rv != 0) {
		snprintf(errmsg, errmsg_size,
			 "remote \"%s\" has an invalid address", name);
		goto out;
	}
	rv = cli_conf_ensure_cert(conf, errmsg, errmsg_size);
	if (rv != 0) {
		goto out;
	}
	crt = cli_conf_path(conf, "client.crt");
	key = cli_conf_path(conf, "client.key");
	ca = cli_conf_path(conf, "client.ca");
	if (crt == NULL || key == NULL || ca == NULL) {
		rv = -ENOMEM;
		snprintf(errmsg, errmsg_size, "out of memory");
		goto out;
	}
	cfg.crt_file = crt;
	cfg.key_file = key;
	cfg.pin = pin;
	if (pin == NULL) {
		if (access(ca, R_OK) != 0) {
			rv = CORRAL_EINVALID;
			snprintf(errmsg, errmsg_size,
				 "remote \"%s\" has no pinned certificate "
				 "fingerprint and %s does not exist",
				 name, ca);
			goto out;
		}
		cfg.ca_file = ca;
	}
	rv = httpc_init_tls(c, host, port, &cfg, why);
	if (rv != 0) {
		snprintf(errmsg, errmsg_size, "%s", why);
		goto out;
	}
	rv = httpc_connect(c);
	if (rv != 0) {
		if (httpc_tls_pin_mismatch(c)) {
			mismatch_message(name, addr + strlen("https://"), pin,
					 httpc_tls_peer_fingerprint(c), errmsg,
					 errmsg_size);
		} else {
			snprintf(errmsg, errmsg_size, "%s", c->errmsg);
		}
		httpc_close(c);
	}

out:
	free(host);
	free(port);
	free(crt);
	free(key);
	free(ca);
	return rv;
}

int cli_remote_client(struct cli *cli, struct httpc_client *c)
{
	const char *name = cli->remote;
	const char *addr;
	json_t *remote;
	int rv;

	cli->errmsg[0] = '\0';
	/* --socket (no socket_buf: the path came from the flag) wins over
	 * the default remote, not over an explicit REMOTE: prefix. */
	if (name == NULL && (cli->conf == NULL || (cli->socket_buf == NULL &&
						   cli->socket_path != NULL))) {
		goto local;
	}
	if (name == NULL) {
		name = cli_conf_default(cli->conf);
	}
	remote = cli_conf_remote(cli->conf, name);
	addr = json_string_value(json_object_get(remote, "addr"));
	if (addr == NULL) {
		snprintf(cli->errmsg, sizeof cli->errmsg,
			 "The remote \"%s\" doesn't exist", name);
		return CORRAL_ENOTFOUND;
	}
	if (strncmp(addr, "unix://", 7) == 0) {
		if (addr[7] != '\0') {
			rv = httpc_init_unix(c, addr + 7);
			goto out;
		}
		goto local;
	}
	return cli_remote_tls(cli->conf, name, remote, c, cli->errmsg,
			      sizeof cli->errmsg);

local:
	rv = httpc_init_unix(c, cli->socket_path);
out:
	if (rv != 0) {
		snprintf(cli->errmsg, sizeof cli->errmsg, "%s",
			 corral_strerror(rv));
	}
	return rv;
}
