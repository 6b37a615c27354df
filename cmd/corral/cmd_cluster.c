/* corral cluster enable|add|join|list|show|remove|list-tokens|revoke-token,
 * like `lxc cluster` (LXD 5.0.2), plus `join`, which LXD does in `lxd init`:
 * the CLI checks the cluster certificate against the token and hands the
 * join to the local daemon.
 *
 * The first half of this file is pure (cmd_cluster.h); with
 * CORRAL_CLUSTER_PURE defined only that half is compiled, for the unit
 * tests. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <corral/err.h>
#include <corral/token.h>

#include "cmd_cluster.h"

/* ---- Pure part ---- */

int cluster_token_from_operation(json_t *metadata, char **out)
{
	const char *name;
	const char *secret;
	const char *fingerprint;
	const char *expires;
	json_t *addresses;
	json_t *item;
	json_t *token;
	size_t i;
	int rv;

	*out = NULL;
	name = json_string_value(json_object_get(metadata, "serverName"));
	secret = json_string_value(json_object_get(metadata, "secret"));
	fingerprint =
	    json_string_value(json_object_get(metadata, "fingerprint"));
	addresses = json_object_get(metadata, "addresses");
	expires = json_string_value(json_object_get(metadata, "expiresAt"));
	if (name == NULL || name[0] == '\0' || secret == NULL ||
	    secret[0] == '\0' || fingerprint == NULL ||
	    !json_is_array(addresses)) {
		return CORRAL_EINVALID;
	}
	json_array_foreach(addresses, i, item)
	{
		if (!json_is_string(item)) {
			return CORRAL_EINVALID;
		}
	}
	if (expires == NULL || expires[0] == '\0') {
		expires = CLUSTER_ZERO_TIME;
	}
	token = json_pack("{s:s, s:s, s:O, s:s, s:s}", "server_name", name,
			  "fingerprint", fingerprint, "addresses", addresses,
			  "secret", secret, "expires_at", expires);
	if (token == NULL) {
		return -ENOMEM;
	}
	rv = token_encode(token, out);
	json_decref(token);
	return rv;
}

/* Whether @s is 64 hex digits. */
static bool is_hex_fingerprint(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 64) {
		return false;
	}
	for (i = 0; i < 64; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static int token_invalid(json_t *obj,
			 char *errmsg,
			 size_t errmsg_size,
			 const char *why)
{
	json_decref(obj);
	snprintf(errmsg, errmsg_size, "%s", why);
	return CORRAL_EINVALID;
}

int cluster_token_parse(const char *text,
			json_t **out,
			char *errmsg,
			size_t errmsg_size)
{
	const char *s;
	json_t *addresses;
	json_t *item;
	json_t *obj;
	char fp[65];
	size_t i;
	int rv;

	*out = NULL;
	rv = token_decode(text, &obj);
	if (rv == -ENOMEM) {
		snprintf(errmsg, errmsg_size, "out of memory");
		return rv;
	}
	if (rv != 0) {
		snprintf(errmsg, errmsg_size, "not base64 of a JSON object");
		return CORRAL_EINVALID;
	}
	s = json_string_value(json_object_get(obj, "server_name"));
	if (s == NULL || s[0] == '\0') {
		return token_invalid(obj, errmsg, errmsg_size,
				     "no server_name");
	}
	s = json_string_value(json_object_get(obj, "secret"));
	if (s == NULL || s[0] == '\0') {
		return token_invalid(obj, errmsg, errmsg_size, "no secret");
	}
	s = json_string_value(json_object_get(obj, "fingerprint"));
	if (!is_hex_fingerprint(s)) {
		return token_invalid(obj, errmsg, errmsg_size,
				     "no valid fingerprint");
	}
	for (i = 0; i < 64; i++) {
		fp[i] = (char)tolower((unsigned char)s[i]);
	}
	fp[64] = '\0';
	addresses = json_object_get(obj, "addresses");
	if (!json_is_array(addresses) || json_array_size(addresses) == 0) {
		return token_invalid(obj, errmsg, errmsg_size, "no addresses");
	}
	json_array_foreach(addresses, i, item)
	{
		if (json_string_length(item) == 0) {
			return token_invalid(obj, errmsg, errmsg_size,
					     "an address is not a non-empty "
					     "string");
		}
	}
	item = json_object_get(obj, "expires_at");
	if (item != NULL && !json_is_string(item)) {
		return token_invalid(obj, errmsg, errmsg_size,
				     "expires_at is not a string");
	}
	if (json_object_set_new(obj, "fingerprint", json_string(fp)) != 0) {
		json_decref(obj);
		snprintf(errmsg, errmsg_size, "out of memory");
		return -ENOMEM;
	}
	*out = obj;
	return 0;
}

bool cluster_is_token_op(json_t *op)
{
	const char *cls = json_string_value(json_object_get(op, "class"));

	return cls != NULL && strcmp(cls, "token") == 0 &&
	       json_integer_value(json_object_get(op, "status_code")) == 103 &&
	       cluster_token_op_name(op) != NULL;
}

const char *cluster_token_op_name(json_t *op)
{
	return json_string_value(
	    json_object_get(json_object_get(op, "metadata"), "serverName"));
}

json_t *cluster_join_body(json_t *token,
			  const char *server_address,
			  const char *cluster_address,
			  const char *cluster_pem)
{
	const char *name =
	    json_string_value(json_object_get(token, "server_name"));
	const char *secret =
	    json_string_value(json_object_get(token, "secret"));

	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "server_name",
			 name != NULL ? name : "", "server_address",
			 server_address, "cluster_address", cluster_address,
			 "cluster_certificate", cluster_pem, "cluster_password",
			 secret != NULL ? secret : "", "enabled", 1);
}

char *cluster_roles_join(json_t *roles, const char *sep)
{
	size_t len = 1;
	size_t i;
	json_t *role;
	char *out;
	char *end;
	bool first = true;

	json_array_foreach(roles, i, role)
	{
		if (json_is_string(role)) {
			len += json_string_length(role) + strlen(sep);
		}
	}
	out = malloc(len);
	if (out == NULL) {
		return NULL;
	}
	end = out;
	*end = '\0';
	json_array_foreach(roles, i, role)
	{
		if (!json_is_string(role)) {
			continue;
		}
		if (!first) {
			end = stpcpy(end, sep);
		}
		end = stpcpy(end, json_string_value(role));
		first = false;
	}
	return out;
}

char *cluster_wait_path(const char *operation)
{
	const char *query = strchr(operation, '?');
	char *path;
	int n;

	if (query == NULL) {
		n = asprintf(&path, "%s/wait", operation);
	} else {
		n = asprintf(&path, "%.*s/wait%s", (int)(query - operation),
			     operation, query);
	}
	return n < 0 ? NULL : path;
}

#ifndef CORRAL_CLUSTER_PURE

/* ---- The verbs ---- */

#include <stdarg.h>
#include <unistd.h>

#include <corral/httpc.h>

#include "args.h"
#include "cli.h"
#include "conf.h"
#include "edit.h"
#include "ops.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral cluster"

/* Bound on connecting to one address of a join token. */
#define CLUSTER_FETCH_TIMEOUT_MS 5000

/* The path @base[/@name][?@query], without ?project= (the cluster is
 * server-wide, and join tokens live in the default project, as lxc
 * assumes). NULL after printing an error. */
static char *cluster_path(struct cli *cli,
			  const char *base,
			  const char *name,
			  const char *query)
{
	const char *project = cli->project;
	char *path = NULL;

	cli->project = NULL;
	if (cli_api_path(cli, base, name, query, &path) != 0) {
		path = NULL;
		cli_error("%s", corral_strerror(-ENOMEM));
	}
	cli->project = project;
	return path;
}

/* Send @method @path with @body (borrowed, may be NULL); when the reply is
 * an operation, wait for it with GET OPERATION/wait and fail if it failed.
 * @env receives the last envelope (released by the caller after a 0
 * return). Returns 0, or prints "Error: ..." and returns 1. */
static int call_and_wait(struct cli *cli,
			 const char *method,
			 const char *path,
			 json_t *body,
			 struct httpc_envelope *env)
{
	const char *err;
	const char *status;
	char *wait;
	int rv;

	if (cli_call_json(cli, method, path, body, NULL, env, NULL) != 0) {
		return 1;
	}
	if (env->type != HTTPC_ENVELOPE_ASYNC || env->operation == NULL ||
	    env->operation[0] == '\0') {
		return 0;
	}
	wait = cluster_wait_path(env->operation);
	httpc_envelope_close(env);
	if (wait == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "GET", wait, NULL, NULL, env, NULL);
	free(wait);
	if (rv != 0) {
		return 1;
	}
	err = json_string_value(json_object_get(env->metadata, "err"));
	status = json_string_value(json_object_get(env->metadata, "status"));
	if ((err != NULL && err[0] != '\0') ||
	    (status != NULL && (strcmp(status, "Failure") == 0 ||
				strcmp(status, "Cancelled") == 0))) {
		rv = cli_error("%s", err != NULL && err[0] != '\0'
					 ? err
					 : "the operation failed");
		httpc_envelope_close(env);
		return rv;
	}
	return 0;
}

/* GET /1.0/cluster into *@enabled. Returns 0, or prints the server's
 * error and returns 1. */
static int cluster_enabled(struct cli *cli, bool *enabled)
{
	struct httpc_envelope env;

	if (cli_call_json(cli, "GET", "/1.0/cluster", NULL, NULL, &env, NULL) !=
	    0) {
		return 1;
	}
	*enabled = json_is_true(json_object_get(env.metadata, "enabled"));
	httpc_envelope_close(&env);
	return 0;
}

/* Fail like lxc unless the server is part of a cluster. */
static int require_cluster(struct cli *cli)
{
	bool enabled = false;

	if (cluster_enabled(cli, &enabled) != 0) {
		return 1;
	}
	if (!enabled) {
		return cli_error("corral server isn't part of a cluster");
	}
	return 0;
}

/* The name of the remote the command talks to, for messages. */
static const char *remote_name(const struct cli *cli)
{
	if (cli->remote != NULL) {
		return cli->remote;
	}
	if (cli->conf != NULL) {
		return cli_conf_default(cli->conf);
	}
	return CLI_LOCAL_REMOTE;
}

/* ---- enable ---- */

static int enable_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	struct httpc_envelope env;
	const char *https;
	json_t *body;
	bool enabled = false;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (cli_call_json(cli, "GET", "/1.0", NULL, NULL, &env, NULL) != 0) {
		return 1;
	}
	https = json_string_value(json_object_get(
	    json_object_get(env.metadata, "config"), "core.https_address"));
	rv = https == NULL || https[0] == '\0';
	httpc_envelope_close(&env);
	if (rv) {
		return cli_error(
		    "This corral server is not available on the network");
	}
	if (cluster_enabled(cli, &enabled) != 0) {
		return 1;
	}
	if (enabled) {
		return cli_error("This corral server is already clustered");
	}
	body =
	    json_pack("{s:s, s:b}", "server_name", argv[optind], "enabled", 1);
	if (body == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = call_and_wait(cli, "PUT", "/1.0/cluster", body, &env);
	json_decref(body);
	if (rv != 0) {
		return 1;
	}
	httpc_envelope_close(&env);
	printf("Clustering enabled\n");
	return 0;
}

/* ---- add ---- */

static int quiet_option(int ch, const char *value, void *arg)
{
	(void)ch;
	(void)value;
	*(bool *)arg = true;
	return 0;
}

static int add_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	static const struct option options[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct httpc_envelope env;
	const char *name;
	json_t *body;
	char *token = NULL;
	bool quiet = false;
	int status;
	int rv;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "q",
				 quiet_option, &quiet);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 1, 1, &status)) {
		return status;
	}
	name = argv[optind];
	if (name[0] == '\0') {
		return cli_error("A cluster member name must be provided");
	}
	body = json_pack("{s:s}", "server_name", name);
	if (body == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "POST", "/1.0/cluster/members", body, NULL,
			   &env, NULL);
	json_decref(body);
	if (rv != 0) {
		return 1;
	}
	rv = cluster_token_from_operation(
	    json_object_get(env.metadata, "metadata"), &token);
	httpc_envelope_close(&env);
	if (rv != 0) {
		return cli_error(
		    "Failed converting token operation to join token: %s",
		    corral_strerror(rv));
	}
	if (!quiet) {
		printf("Member %s join token:\n", name);
	}
	printf("%s\n", token);
	free(token);
	return 0;
}

/* ---- join ---- */

static int join_option(int ch, const char *value, void *arg)
{
	(void)ch;
	*(const char **)arg = value;
	return 0;
}

/* Connect to the token's addresses in turn, accepting any certificate,
 * until one answers; check that its certificate is the token's. On
 * success *@pem receives the certificate and *@addr the "HOST:PORT" that
 * answered (both malloc()). Returns 0, or prints an error and returns 1. */
static int fetch_cluster_cert(json_t *token, char **pem, char **addr)
{
	char why[CORRAL_ERRMSG_SIZE];
	char last[CORRAL_ERRMSG_SIZE + 256];
	const char *want =
	    json_string_value(json_object_get(token, "fingerprint"));
	struct httpc_tls_config cfg = {
		.fetch = true,
		.connect_timeout_ms = CLUSTER_FETCH_TIMEOUT_MS,
	};
	struct httpc_client c;
	const char *seen;
	json_t *item;
	char *url = NULL;
	char *host = NULL;
	char *port = NULL;
	size_t i;
	int rv = 1;

	*pem = NULL;
	*addr = NULL;
	last[0] = '\0';
	json_array_foreach(json_object_get(token, "addresses"), i, item)
	{
		const char *a = json_string_value(item);

		free(url);
		free(host);
		free(port);
		url = host = port = NULL;
		if (cli_addr_normalize(a, &url) != 0 ||
		    cli_addr_split(url, &host, &port) != 0) {
			snprintf(last, sizeof last, "%s: invalid address", a);
			continue;
		}
		if (httpc_init_tls(&c, host, port, &cfg, why) != 0) {
			snprintf(last, sizeof last, "%s", why);
			continue;
		}
		if (httpc_connect(&c) != 0) {
			snprintf(last, sizeof last, "%s", c.errmsg);
			httpc_close(&c);
			continue;
		}
		seen = httpc_tls_peer_fingerprint(&c);
		if (seen == NULL || strcasecmp(seen, want) != 0) {
			cli_error(
			    "Certificate fingerprint mismatch between join "
			    "token and cluster member \"%s\": the member "
			    "presents %s, the token expects %s; refusing to "
			    "join",
			    a, seen != NULL ? seen : "(none)", want);
			httpc_close(&c);
			goto out;
		}
		*pem = strdup(httpc_tls_peer_pem(&c));
		/* "https://HOST:PORT" without the scheme. */
		*addr = strdup(url + strlen("https://"));
		httpc_close(&c);
		if (*pem == NULL || *addr == NULL) {
			free(*pem);
			free(*addr);
			*pem = *addr = NULL;
			cli_error("%s", corral_strerror(-ENOMEM));
			goto out;
		}
		rv = 0;
		goto out;
	}
	cli_error(
	    "Unable to connect to any of the cluster members specified in "
	    "join token%s%s",
	    last[0] != '\0' ? ": " : "", last);

out:
	free(url);
	free(host);
	free(port);
	return rv;
}

/* Point @cli at the local daemon's Unix socket: the join concerns this
 * host, whatever the default remote is. Returns 0, or prints an error and
 * returns 1. */
static int use_local_socket(struct cli *cli)
{
	const char *path = cli->socket_path;
	json_t *local;
	const char *addr;
	int rv;

	if (cli->remote != NULL) {
		return cli_error(
		    "cluster join talks to the local daemon; a remote (%s:) "
		    "cannot be given",
		    cli->remote);
	}
	if (cli->client_ready) {
		httpc_close(&cli->client);
		cli->client_ready = false;
	}
	/* Without --socket, a "local" remote with a path of its own wins. */
	if (cli->socket_buf != NULL && cli->conf != NULL) {
		local = cli_conf_remote(cli->conf, CLI_LOCAL_REMOTE);
		addr = json_string_value(json_object_get(local, "addr"));
		if (addr != NULL && strncmp(addr, "unix://", 7) == 0 &&
		    addr[7] != '\0') {
			path = addr + 7;
		}
	}
	rv = httpc_init_unix(&cli->client, path);
	if (rv != 0) {
		return cli_error("%s", corral_strerror(rv));
	}
	cli->client_ready = true;
	return 0;
}

static int join_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	static const struct option options[] = {
		{ "address", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	char errmsg[256];
	struct httpc_envelope env;
	const char *address = NULL;
	json_t *token = NULL;
	json_t *body = NULL;
	char *pem = NULL;
	char *cluster_addr = NULL;
	int status;
	int rv;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "",
				 join_option, &address);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 1, 1, &status)) {
		return status;
	}
	rv = cluster_token_parse(argv[optind], &token, errmsg, sizeof errmsg);
	if (rv != 0) {
		return cli_error("Invalid cluster join token: %s", errmsg);
	}
	if (address == NULL || address[0] == '\0') {
		json_decref(token);
		return cli_error(
		    "The address of this member is required "
		    "(--address IP:PORT)");
	}
	rv = 1;
	if (use_local_socket(cli) != 0 ||
	    fetch_cluster_cert(token, &pem, &cluster_addr) != 0) {
		goto out;
	}
	body = cluster_join_body(token, address, cluster_addr, pem);
	if (body == NULL) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	if (call_and_wait(cli, "PUT", "/1.0/cluster", body, &env) != 0) {
		goto out;
	}
	httpc_envelope_close(&env);
	printf("Member %s joined the cluster\n",
	       json_string_value(json_object_get(token, "server_name")));
	rv = 0;

out:
	json_decref(body);
	json_decref(token);
	free(pem);
	free(cluster_addr);
	return rv;
}

/* ---- list, show ---- */

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
		"NAME",           "URL",         "ROLES", "ARCHITECTURE",
		"FAILURE DOMAIN", "DESCRIPTION", "STATE", "MESSAGE",
	};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_table table = { 0 };
	struct httpc_envelope env;
	json_t *members;
	json_t *sorted;
	json_t *m;
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
	if (require_cluster(cli) != 0) {
		return 1;
	}
	if (cli_call_json(cli, "GET", "/1.0/cluster/members?recursion=1", NULL,
			  NULL, &env, NULL) != 0) {
		return 1;
	}
	members =
	    env.metadata != NULL ? json_incref(env.metadata) : json_array();
	httpc_envelope_close(&env);
	if (members == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (format != CLI_FORMAT_TABLE) {
		rv = format == CLI_FORMAT_JSON
			 ? cli_print_json(members, stdout)
			 : cli_print_yaml(members, stdout);
		json_decref(members);
		return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
	}
	/* lxc sorts the rows by name. */
	sorted = json_array();
	rv = sorted != NULL ? 0 : -ENOMEM;
	json_array_foreach(members, i, m)
	{
		json_t *row;

		if (rv != 0) {
			break;
		}
		row = json_pack("{s:O?}", "name",
				json_object_get(m, "server_name"));
		if (row == NULL || json_object_set(row, "member", m) != 0 ||
		    json_array_append_new(sorted, row) != 0) {
			rv = -ENOMEM;
		}
	}
	json_decref(members);
	members = rv == 0 ? cli_json_by_name(sorted) : NULL;
	json_decref(sorted);
	if (members == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_table_init(&table, 8, headers);
	json_array_foreach(members, i, m)
	{
		json_t *member = json_object_get(m, "member");
		const char *state =
		    json_string_value(json_object_get(member, "status"));
		char *roles;
		char *upper;
		const char *cells[8];
		size_t k;

		if (rv != 0) {
			break;
		}
		roles =
		    cluster_roles_join(json_object_get(member, "roles"), "\n");
		upper = strdup(state != NULL ? state : "");
		if (roles == NULL || upper == NULL) {
			free(roles);
			free(upper);
			rv = -ENOMEM;
			break;
		}
		for (k = 0; upper[k] != '\0'; k++) {
			upper[k] = (char)toupper((unsigned char)upper[k]);
		}
		cells[0] =
		    json_string_value(json_object_get(member, "server_name"));
		cells[1] = json_string_value(json_object_get(member, "url"));
		cells[2] = roles;
		cells[3] =
		    json_string_value(json_object_get(member, "architecture"));
		cells[4] = json_string_value(
		    json_object_get(member, "failure_domain"));
		cells[5] =
		    json_string_value(json_object_get(member, "description"));
		cells[6] = upper;
		cells[7] =
		    json_string_value(json_object_get(member, "message"));
		rv = cli_table_add_row(&table, cells);
		free(roles);
		free(upper);
	}
	if (rv == 0) {
		rv = cli_table_print(&table, stdout);
	}
	cli_table_close(&table);
	json_decref(members);
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
	path = cluster_path(cli, "/1.0/cluster/members", argv[optind], NULL);
	if (path == NULL) {
		return 1;
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

/* ---- remove ---- */

struct remove_flags {
	bool force;
	bool yes;
	bool quiet;
};

static int remove_option(int ch, const char *value, void *arg)
{
	struct remove_flags *f = arg;

	(void)value;
	switch (ch) {
	case 'f':
		f->force = true;
		break;
	case 'y':
		f->yes = true;
		break;
	case 'q':
		f->quiet = true;
		break;
	default:
		break;
	}
	return 0;
}

static const char force_remove_msg[] =
    "Forcefully removing a server from the cluster should only be done as "
    "a last\n"
    "resort.\n"
    "\n"
    "The removed server will not be functional after this action and will "
    "require a\n"
    "full reset of corral, losing any remaining instance or profile state "
    "that the\n"
    "server may have held.\n"
    "\n"
    "When possible, a graceful removal should be preferred.\n"
    "\n"
    "The --force flag should only be used if the server has died, been "
    "reinstalled\n"
    "or is otherwise never expected to come back up.\n"
    "\n"
    "Are you really sure you want to force removing %s? (yes/no): ";

/* Ask like lxc before a forced removal. Returns 0 to go on, or prints an
 * error and returns 1. */
static int confirm_force(const char *name)
{
	char line[64];
	size_t len;

	printf(force_remove_msg, name);
	fflush(stdout);
	if (fgets(line, sizeof line, stdin) == NULL) {
		line[0] = '\0';
	}
	len = strcspn(line, "\r\n");
	line[len] = '\0';
	if (strcasecmp(line, "yes") != 0) {
		return cli_error("User aborted delete operation");
	}
	return 0;
}

static int remove_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv)
{
	static const struct option options[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "yes", no_argument, NULL, 'y' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct remove_flags flags = { 0 };
	struct httpc_envelope env;
	char *path;
	int status;
	int rv;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "fq",
				 remove_option, &flags);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 1, 1, &status)) {
		return status;
	}
	if (flags.force && !flags.yes && confirm_force(argv[optind]) != 0) {
		return 1;
	}
	path = cluster_path(cli, "/1.0/cluster/members", argv[optind],
			    flags.force ? "force=1" : NULL);
	if (path == NULL) {
		return 1;
	}
	rv = call_and_wait(cli, "DELETE", path, NULL, &env);
	free(path);
	if (rv != 0) {
		return 1;
	}
	httpc_envelope_close(&env);
	if (!flags.quiet) {
		printf("Member %s removed\n", argv[optind]);
	}
	return 0;
}

/* ---- tokens ---- */

/* The operations of the default project, where join tokens live. */
static int token_operations(struct cli *cli, json_t **out)
{
	const char *project = cli->project;
	int rv;

	cli->project = NULL;
	rv = cli_operations(cli, out);
	cli->project = project;
	return rv;
}

static int list_tokens_run(struct cli *cli,
			   const struct cli_verb *verb,
			   int argc,
			   char **argv)
{
	static const struct option options[] = {
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const headers[] = { "NAME", "TOKEN", "EXPIRES AT" };
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_table table = { 0 };
	json_t *tokens = NULL;
	json_t *ops = NULL;
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
	if (require_cluster(cli) != 0 || token_operations(cli, &ops) != 0) {
		return 1;
	}
	tokens = json_array();
	rv = tokens != NULL ? cli_table_init(&table, 3, headers) : -ENOMEM;
	json_array_foreach(ops, i, op)
	{
		json_t *md = json_object_get(op, "metadata");
		const char *expires_at;
		char expires[64];
		char *token;
		const char *cells[3];
		json_t *obj;

		if (rv != 0) {
			break;
		}
		if (!cluster_is_token_op(op) ||
		    cluster_token_from_operation(md, &token) != 0) {
			continue;
		}
		expires_at =
		    json_string_value(json_object_get(md, "expiresAt"));
		if (expires_at == NULL || expires_at[0] == '\0' ||
		    strcmp(expires_at, CLUSTER_ZERO_TIME) == 0) {
			snprintf(expires, sizeof expires, "never");
		} else {
			cli_format_date(expires_at, expires, sizeof expires);
		}
		cells[0] = cluster_token_op_name(op);
		cells[1] = token;
		cells[2] = expires;
		rv = cli_table_add_row(&table, cells);
		/* --format json|yaml: LXD's ClusterMemberJoinToken objects. */
		if (rv == 0 && token_decode(token, &obj) == 0 &&
		    json_array_append_new(tokens, obj) != 0) {
			rv = -ENOMEM;
		}
		free(token);
	}
	if (rv == 0) {
		if (format == CLI_FORMAT_JSON) {
			rv = cli_print_json(tokens, stdout);
		} else if (format == CLI_FORMAT_YAML) {
			rv = cli_print_yaml(tokens, stdout);
		} else {
			rv = cli_table_print(&table, stdout);
		}
	}
	cli_table_close(&table);
	json_decref(tokens);
	json_decref(ops);
	return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
}

static int revoke_token_run(struct cli *cli,
			    const struct cli_verb *verb,
			    int argc,
			    char **argv)
{
	struct httpc_envelope env;
	const char *name;
	char *id = NULL;
	json_t *ops = NULL;
	json_t *op;
	char *path;
	size_t i;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	name = argv[optind];
	if (require_cluster(cli) != 0 || token_operations(cli, &ops) != 0) {
		return 1;
	}
	json_array_foreach(ops, i, op)
	{
		const char *op_id =
		    json_string_value(json_object_get(op, "id"));

		if (cluster_is_token_op(op) && op_id != NULL &&
		    strcmp(cluster_token_op_name(op), name) == 0) {
			id = strdup(op_id);
			if (id == NULL) {
				json_decref(ops);
				return cli_error("%s",
						 corral_strerror(-ENOMEM));
			}
			break;
		}
	}
	json_decref(ops);
	if (id == NULL) {
		return cli_error(
		    "No cluster join token for member %s on remote: %s", name,
		    remote_name(cli));
	}
	path = cluster_path(cli, "/1.0/operations", id, NULL);
	free(id);
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "DELETE", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	httpc_envelope_close(&env);
	printf("Cluster join token for %s:%s deleted\n", remote_name(cli),
	       name);
	return 0;
}

/* ---- The group ---- */

static const struct cli_verb verb_add = {
	.name = "add",
	.args = "[<remote>:]<name> [--quiet]",
	.summary = "Request a join token for adding a cluster member",
	.flags = "  -q, --quiet   Print only the token\n",
	.run = add_run,
};

static const struct cli_verb verb_enable = {
	.name = "enable",
	.args = "[<remote>:] <name>",
	.summary = "Enable clustering on a single non-clustered corral server",
	.flags = NULL,
	.run = enable_run,
};

static const struct cli_verb verb_join = {
	.name = "join",
	.args = "<token> --address IP:PORT",
	.summary =
	    "Join the local corral server to a cluster with a join token",
	.flags =
	    "      --address   Address of this server for the cluster "
	    "(IP:PORT)\n",
	.run = join_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "[<remote>:] [--format table|json|yaml]",
	.summary = "List all the cluster members",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = list_run,
};

static const struct cli_verb verb_list_tokens = {
	.name = "list-tokens",
	.args = "[<remote>:] [--format table|json|yaml]",
	.summary = "List all active cluster member join tokens",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = list_tokens_run,
};

static const struct cli_verb verb_remove = {
	.name = "remove",
	.args = "[<remote>:]<member> [--force [--yes]]",
	.summary = "Remove a member from the cluster",
	.flags =
	    "  -f, --force   Force removing a member, even if degraded\n"
	    "  -q, --quiet   Print nothing on success\n"
	    "      --yes     Don't require user confirmation for using "
	    "--force\n",
	.run = remove_run,
};

static const struct cli_verb verb_revoke_token = {
	.name = "revoke-token",
	.args = "[<remote>:]<member>",
	.summary = "Revoke cluster member join token",
	.flags = NULL,
	.run = revoke_token_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "[<remote>:]<member>",
	.summary = "Show details of a cluster member",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb *const cluster_verbs[] = {
	&verb_add,         &verb_enable, &verb_join,         &verb_list,
	&verb_list_tokens, &verb_remove, &verb_revoke_token, &verb_show,
};

static int cluster_run(struct cli *cli,
		       const struct cli_verb *verb,
		       int argc,
		       char **argv)
{
	return cli_group_run(cli, verb, cluster_verbs,
			     sizeof cluster_verbs / sizeof cluster_verbs[0],
			     PREFIX, argc, argv);
}

const struct cli_verb cli_verb_cluster = {
	.name = "cluster",
	.args = "[command]",
	.summary = "Manage cluster members",
	.flags = NULL,
	.run = cluster_run,
};

#endif /* CORRAL_CLUSTER_PURE */
