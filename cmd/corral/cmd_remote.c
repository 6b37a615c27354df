/* corral remote add|list|remove|switch|get-default, like `lxc remote`. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <corral/cert.h>
#include <corral/token.h>

#include "args.h"
#include "cli.h"
#include "conf.h"
#include "edit.h"
#include "output.h"
#include "remote.h"

#define PREFIX "corral remote"

/* Room for a typed password, token or answer. */
#define LINE_SIZE 4096

/* Read one line from stdin into @buf without its newline; with @secret and
 * a terminal, without echo. Returns 0, or -1 at end of input. */
static int read_line(char *buf, size_t size, bool secret)
{
	struct termios old;
	struct termios quiet;
	bool restore = false;
	char *nl;
	char *got;

	if (secret && isatty(STDIN_FILENO) &&
	    tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	got = fgets(buf, (int)size, stdin);
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		printf("\n");
	}
	if (got == NULL) {
		buf[0] = '\0';
		return -1;
	}
	nl = strpbrk(buf, "\r\n");
	if (nl != NULL) {
		*nl = '\0';
	}
	return 0;
}

/* ---- add ---- */

struct add_flags {
	bool accept;
	const char *password; /* borrowed from argv */
};

static int add_option(int ch, const char *value, void *arg)
{
	struct add_flags *f = arg;

	if (ch == 'a') {
		f->accept = true;
	} else if (ch == 'w') {
		f->password = value;
	}
	return 0;
}

/* GET /1.0 on @c: *@trusted says whether the server trusts us. Returns 0,
 * or prints an error and returns 1. */
static int server_auth(struct httpc_client *c, bool *trusted)
{
	struct httpc_envelope env;
	const char *auth;
	int rv;

	rv = httpc_query(c, "GET", "/1.0", NULL, 0, &env);
	if (rv != 0) {
		return cli_error("%s", c->errmsg);
	}
	if (env.type == HTTPC_ENVELOPE_ERROR) {
		cli_error("%s", env.error);
		httpc_envelope_close(&env);
		return 1;
	}
	auth = json_string_value(json_object_get(env.metadata, "auth"));
	*trusted = auth != NULL && strcmp(auth, "trusted") == 0;
	httpc_envelope_close(&env);
	return 0;
}

/* POST /1.0/certificates with the trust password or token @secret (the
 * server takes our certificate from the TLS handshake). Returns 0, or
 * prints an error and returns 1. */
static int send_secret(struct httpc_client *c, const char *secret)
{
	struct httpc_envelope env;
	json_t *body;
	char *text;
	int rv;

	body = json_pack("{s:s, s:s}", "type", "client", "password", secret);
	text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = httpc_query(c, "POST", "/1.0/certificates", text, strlen(text),
			 &env);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (rv != 0) {
		return cli_error("%s", c->errmsg);
	}
	if (env.type == HTTPC_ENVELOPE_ERROR) {
		cli_error("%s",
			  env.error[0] != '\0' ? env.error : "not authorized");
		httpc_envelope_close(&env);
		return 1;
	}
	httpc_envelope_close(&env);
	return 0;
}

/* Write the server certificate @pem to servercerts/@name.crt. */
static int save_server_cert(struct cli_conf *conf,
			    const char *name,
			    const char *pem)
{
	char why[CORRAL_ERRMSG_SIZE];
	char *dir;
	char *path = NULL;
	int rv = 0;

	dir = cli_conf_path(conf, "servercerts");
	if (dir == NULL || asprintf(&path, "%s/%s.crt", dir, name) < 0) {
		free(dir);
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rv = cli_error("create %s: %s", dir, strerror(errno));
	} else if (cert_write_file(path, pem, strlen(pem), 0644, why) != 0) {
		rv = cli_error("%s", why);
	}
	free(dir);
	free(path);
	return rv;
}

/* Authenticate on @remote (an entry for config.json, not yet saved) with
 * @secret, or the password read from the terminal when @secret is NULL,
 * unless the server trusts us already; then check that it does and save
 * the remote as @name with the server certificate @pem. Returns the exit
 * status. */
static int finish_add(struct cli *cli,
		      const char *name,
		      json_t *remote,
		      const char *secret,
		      const char *pem)
{
	char errmsg[1024];
	char line[LINE_SIZE] = "";
	struct httpc_client c;
	bool trusted;
	bool authenticated = false;
	int rv = 1;

	if (cli_remote_tls(cli->conf, name, remote, &c, errmsg,
			   sizeof errmsg) != 0) {
		return cli_error("%s", errmsg);
	}
	if (server_auth(&c, &trusted) != 0) {
		goto out;
	}
	if (!trusted) {
		if (secret == NULL) {
			printf("Admin password (or token) for %s: ", name);
			fflush(stdout);
			if (read_line(line, sizeof line, true) != 0 ||
			    line[0] == '\0') {
				cli_error(
				    "no password given (use --password "
				    "or type it on the terminal)");
				goto out;
			}
			secret = line;
		}
		rv = send_secret(&c, secret);
		if (rv != 0) {
			goto out;
		}
		authenticated = true;
		rv = 1;
		/* Ask again on a new connection. */
		httpc_close(&c);
		if (cli_remote_tls(cli->conf, name, remote, &c, errmsg,
				   sizeof errmsg) != 0) {
			OPENSSL_cleanse(line, sizeof line);
			return cli_error("%s", errmsg);
		}
		if (server_auth(&c, &trusted) != 0) {
			goto out;
		}
		if (!trusted) {
			cli_error(
			    "Server doesn't trust us after "
			    "authentication");
			goto out;
		}
	}
	if (pem != NULL && save_server_cert(cli->conf, name, pem) != 0) {
		goto out;
	}
	if (json_object_set(json_object_get(cli->conf->doc, "remotes"), name,
			    remote) != 0) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	if (cli_conf_save(cli->conf, errmsg, sizeof errmsg) != 0) {
		cli_error("%s", errmsg);
		goto out;
	}
	if (authenticated) {
		printf("Client certificate now trusted by server: %s\n", name);
	}
	rv = 0;

out:
	OPENSSL_cleanse(line, sizeof line);
	httpc_close(&c);
	return rv;
}

/* Connect to @addr ("https://HOST:PORT") accepting any certificate, to see
 * it. *@pem and *@fp receive copies (malloc()); *@verified says whether it
 * chains to client.ca. Returns 0, or prints an error and returns 1. */
static int fetch_cert(struct cli_conf *conf,
		      const char *addr,
		      char **pem,
		      char **fp,
		      bool *verified)
{
	char why[CORRAL_ERRMSG_SIZE];
	struct httpc_tls_config cfg = { .fetch = true };
	struct httpc_client c;
	char *host = NULL;
	char *port = NULL;
	char *crt = cli_conf_path(conf, "client.crt");
	char *key = cli_conf_path(conf, "client.key");
	char *ca = cli_conf_path(conf, "client.ca");
	int rv = 1;

	*pem = NULL;
	*fp = NULL;
	if (crt == NULL || key == NULL || ca == NULL ||
	    cli_addr_split(addr, &host, &port) != 0) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	cfg.crt_file = crt;
	cfg.key_file = key;
	cfg.ca_file = access(ca, R_OK) == 0 ? ca : NULL;
	if (httpc_init_tls(&c, host, port, &cfg, why) != 0) {
		cli_error("%s", why);
		goto out;
	}
	if (httpc_connect(&c) != 0) {
		cli_error("%s", c.errmsg);
		httpc_close(&c);
		goto out;
	}
	*pem = strdup(httpc_tls_peer_pem(&c));
	*fp = strdup(httpc_tls_peer_fingerprint(&c));
	*verified = httpc_tls_peer_verified(&c);
	httpc_close(&c);
	if (*pem == NULL || *fp == NULL) {
		free(*pem);
		free(*fp);
		*pem = NULL;
		*fp = NULL;
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	rv = 0;

out:
	free(host);
	free(port);
	free(crt);
	free(key);
	free(ca);
	return rv;
}

/* Ask the user to accept the certificate @fp, like lxc. Returns 0, or
 * prints an error and returns 1. */
static int confirm_cert(const char *fp)
{
	char line[LINE_SIZE];

	printf("Certificate fingerprint: %s\n", fp);
	if (!isatty(STDIN_FILENO)) {
		return cli_error(
		    "Refusing to trust the server certificate: "
		    "stdin is not a terminal (check the "
		    "fingerprint, then use --accept-certificate)");
	}
	printf("ok (y/n/[fingerprint])? ");
	fflush(stdout);
	if (read_line(line, sizeof line, false) != 0) {
		return cli_error("Server certificate NACKed by user");
	}
	if (strcmp(line, fp) == 0) {
		return 0;
	}
	if (line[0] == '\0' || line[0] == 'n' || line[0] == 'N') {
		return cli_error("Server certificate NACKed by user");
	}
	if (line[0] != 'y' && line[0] != 'Y') {
		return cli_error("Please type 'y', 'n' or the fingerprint:");
	}
	return 0;
}

/* `remote add NAME https://...`. */
static int add_address(struct cli *cli,
		       const char *name,
		       const char *addr,
		       const struct add_flags *flags)
{
	json_t *remote = NULL;
	char *pem = NULL;
	char *fp = NULL;
	bool verified = false;
	int rv = 1;

	if (fetch_cert(cli->conf, addr, &pem, &fp, &verified) != 0) {
		return 1;
	}
	/* PKI: a certificate signed by client.ca needs no confirmation and
	 * is not pinned. */
	if (!verified && !flags->accept && confirm_cert(fp) != 0) {
		goto out;
	}
	remote = verified
		     ? json_pack("{s:s}", "addr", addr)
		     : json_pack("{s:s, s:s}", "addr", addr, "fingerprint", fp);
	if (remote == NULL) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	rv = finish_add(cli, name, remote, flags->password, pem);

out:
	json_decref(remote);
	free(pem);
	free(fp);
	return rv;
}

/* `remote add NAME TOKEN`: try the token's addresses, each pinned to the
 * token's fingerprint, and redeem the token on the first that answers. */
static int add_token(struct cli *cli,
		     const char *name,
		     json_t *token,
		     const char *text)
{
	char errmsg[1024];
	const char *fp =
	    json_string_value(json_object_get(token, "fingerprint"));
	json_t *addresses = json_object_get(token, "addresses");
	struct httpc_client c;
	json_t *remote = NULL;
	json_t *item;
	char *addr = NULL;
	char *pem = NULL;
	size_t i;
	int rv;

	errmsg[0] = '\0';
	json_array_foreach(addresses, i, item)
	{
		free(addr);
		addr = NULL;
		json_decref(remote);
		remote = NULL;
		if (cli_addr_normalize(json_string_value(item), &addr) != 0) {
			snprintf(errmsg, sizeof errmsg, "invalid address %s",
				 json_string_value(item));
			continue;
		}
		remote =
		    json_pack("{s:s, s:s}", "addr", addr, "fingerprint", fp);
		if (remote == NULL) {
			break;
		}
		rv = cli_remote_tls(cli->conf, name, remote, &c, errmsg,
				    sizeof errmsg);
		if (rv != 0) {
			if (rv == CORRAL_ETLS &&
			    strstr(errmsg, "has changed") != NULL) {
				snprintf(errmsg, sizeof errmsg,
					 "%s: the server certificate does not "
					 "match the token's fingerprint",
					 json_string_value(item));
			}
			continue;
		}
		pem = strdup(httpc_tls_peer_pem(&c));
		httpc_close(&c);
		if (pem == NULL) {
			break;
		}
		rv = finish_add(cli, name, remote, text, pem);
		free(pem);
		free(addr);
		json_decref(remote);
		return rv;
	}
	free(addr);
	json_decref(remote);
	if (errmsg[0] == '\0') {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	return cli_error(
	    "Unable to connect to any of the token's addresses: "
	    "%s",
	    errmsg);
}

/* `remote add NAME unix://[PATH]`. */
static int add_unix(struct cli *cli, const char *name, const char *addr)
{
	char errmsg[CORRAL_ERRMSG_SIZE];

	if (json_object_set_new(json_object_get(cli->conf->doc, "remotes"),
				name, json_pack("{s:s}", "addr", addr)) != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (cli_conf_save(cli->conf, errmsg, sizeof errmsg) != 0) {
		return cli_error("%s", errmsg);
	}
	return 0;
}

static int add_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	static const struct option options[] = {
		{ "accept-certificate", no_argument, NULL, 'a' },
		{ "password", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	char errmsg[CORRAL_ERRMSG_SIZE + 128];
	struct add_flags flags = { 0 };
	const char *name;
	const char *arg;
	const char *existing;
	json_t *token = NULL;
	char *addr = NULL;
	int status;
	int n;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "",
				 add_option, &flags);
	if (status >= 0) {
		return status;
	}
	n = argc - optind;
	if (cli_args_bad(verb, PREFIX, n, 1, 2, &status)) {
		return status;
	}
	arg = argv[optind + n - 1];
	name = argv[optind];
	if (token_decode_trust(arg, &token) == 0 && n == 1) {
		json_decref(token);
		return cli_error("A remote name is required with a token");
	}
	if (token == NULL && strncmp(arg, "unix://", 7) != 0) {
		status = cli_addr_normalize(arg, &addr);
		if (status != 0) {
			return cli_error("Invalid address \"%s\"", arg);
		}
	}
	if (n == 1) {
		/* lxc names the remote after the address. */
		name = arg;
	}
	status = 1;
	if (strchr(name, ':') != NULL) {
		cli_error("Remote names may not contain colons");
		goto out;
	}
	if (!cli_remote_name_ok(name)) {
		cli_error("Invalid remote name \"%s\"", name);
		goto out;
	}
	existing = json_string_value(
	    json_object_get(cli_conf_remote(cli->conf, name), "addr"));
	if (existing != NULL) {
		cli_error("Remote %s exists as <%s>", name, existing);
		goto out;
	}
	if (token == NULL && addr == NULL) {
		status = add_unix(cli, name, arg);
		goto out;
	}
	if (cli_conf_ensure_cert(cli->conf, errmsg, sizeof errmsg) != 0) {
		cli_error("%s", errmsg);
		goto out;
	}
	if (token != NULL) {
		status = add_token(cli, name, token, arg);
	} else {
		status = add_address(cli, name, addr, &flags);
	}

out:
	json_decref(token);
	free(addr);
	return status;
}

/* ---- list, remove, switch, get-default ---- */

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
		"NAME",   "URL",    "PROTOCOL", "AUTH TYPE",
		"PUBLIC", "STATIC", "GLOBAL",
	};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_table table = { 0 };
	const char *def = cli_conf_default(cli->conf);
	json_t *remotes = json_object_get(cli->conf->doc, "remotes");
	json_t *sorted;
	json_t *out;
	json_t *remote;
	const char *name;
	int status;
	int rv = 0;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options,
				 "f:", cli_format_option, &format);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 0, 0, &status)) {
		return status;
	}
	sorted = cli_json_sorted(remotes);
	if (sorted == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (format != CLI_FORMAT_TABLE) {
		out = json_object();
		json_object_foreach(sorted, name, remote)
		{
			const char *addr =
			    json_string_value(json_object_get(remote, "addr"));
			bool unix_remote = strncmp(addr, "unix://", 7) == 0;

			json_object_set_new(
			    out, name,
			    json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "addr",
				      addr, "protocol", "lxd", "auth_type",
				      unix_remote ? "file access" : "tls",
				      "public", 0, "static",
				      strcmp(name, CLI_LOCAL_REMOTE) == 0,
				      "global", 0));
		}
		rv = format == CLI_FORMAT_JSON ? cli_print_json(out, stdout)
					       : cli_print_yaml(out, stdout);
		json_decref(out);
		json_decref(sorted);
		return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
	}
	rv = cli_table_init(&table, 7, headers);
	json_object_foreach(sorted, name, remote)
	{
		const char *addr =
		    json_string_value(json_object_get(remote, "addr"));
		bool unix_remote = strncmp(addr, "unix://", 7) == 0;
		char label[128];
		const char *cells[7];

		snprintf(label, sizeof label, "%s%s", name,
			 strcmp(name, def) == 0 ? " (current)" : "");
		cells[0] = label;
		cells[1] = addr;
		cells[2] = "lxd";
		cells[3] = unix_remote ? "file access" : "tls";
		cells[4] = "NO";
		cells[5] = strcmp(name, CLI_LOCAL_REMOTE) == 0 ? "YES" : "NO";
		cells[6] = "NO";
		if (rv == 0) {
			rv = cli_table_add_row(&table, cells);
		}
	}
	if (rv == 0) {
		rv = cli_table_print(&table, stdout);
	}
	cli_table_close(&table);
	json_decref(sorted);
	return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
}

/* The remote @name must exist; prints lxc's error otherwise. */
static bool remote_exists(struct cli *cli, const char *name)
{
	if (cli_conf_remote(cli->conf, name) == NULL) {
		cli_error("Remote %s doesn't exist", name);
		return false;
	}
	return true;
}

static int remove_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	const char *name;
	char *path = NULL;
	char *dir;
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	name = argv[optind];
	if (!remote_exists(cli, name)) {
		return 1;
	}
	if (strcmp(name, CLI_LOCAL_REMOTE) == 0) {
		return cli_error("Remote %s is static and cannot be modified",
				 name);
	}
	if (strcmp(name, cli_conf_default(cli->conf)) == 0) {
		return cli_error("Can't remove the default remote");
	}
	json_object_del(json_object_get(cli->conf->doc, "remotes"), name);
	if (cli_conf_save(cli->conf, errmsg, sizeof errmsg) != 0) {
		return cli_error("%s", errmsg);
	}
	dir = cli_conf_path(cli->conf, "servercerts");
	if (dir != NULL && asprintf(&path, "%s/%s.crt", dir, name) >= 0) {
		unlink(path);
		free(path);
	}
	free(dir);
	return 0;
}

static int switch_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	int status;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (!remote_exists(cli, argv[optind])) {
		return 1;
	}
	if (json_object_set_new(cli->conf->doc, "default-remote",
				json_string(argv[optind])) != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (cli_conf_save(cli->conf, errmsg, sizeof errmsg) != 0) {
		return cli_error("%s", errmsg);
	}
	return 0;
}

static int get_default_run(struct cli *cli,
			   const struct cli_verb *verb,
			   int argc,
			   char **argv)
{
	int status;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, NULL, "", NULL,
				 NULL);
	if (status >= 0) {
		return status;
	}
	if (argc - optind != 0) {
		cli_verb_usage(verb, PREFIX);
		return cli_error("Invalid number of arguments");
	}
	printf("%s\n", cli_conf_default(cli->conf));
	return 0;
}

static const struct cli_verb verb_add = {
	.name = "add",
	.args = "[<remote>] <IP|FQDN|URL|token>",
	.summary = "Add new remote servers",
	.flags =
	    "      --accept-certificate   Accept certificate\n"
	    "      --password             Remote admin password\n",
	.run = add_run,
};

static const struct cli_verb verb_get_default = {
	.name = "get-default",
	.args = "",
	.summary = "Show the default remote",
	.flags = NULL,
	.run = get_default_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "[--format table|json|yaml]",
	.summary = "List the available remotes",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = list_run,
};

static const struct cli_verb verb_remove = {
	.name = "remove",
	.args = "<remote>",
	.summary = "Remove remotes",
	.flags = NULL,
	.run = remove_run,
};

static const struct cli_verb verb_switch = {
	.name = "switch",
	.args = "<remote>",
	.summary = "Switch the default remote",
	.flags = NULL,
	.run = switch_run,
};

static const struct cli_verb *const remote_verbs[] = {
	&verb_add, &verb_get_default, &verb_list, &verb_remove, &verb_switch,
};

static int remote_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	return cli_group_run(cli, verb, remote_verbs,
			     sizeof remote_verbs / sizeof remote_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_remote = {
	.name = "remote",
	.args = "[command]",
	.summary = "Manage the list of remote servers",
	.flags = NULL,
	.run = remote_run,
};
