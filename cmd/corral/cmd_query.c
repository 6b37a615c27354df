/* corral query: a raw API call, like `lxc query`. */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"

/* Bound on a request body read from stdin. */
#define QUERY_MAX_STDIN (64u * 1024u * 1024u)

/* Read all of stdin into *@out (owned by the caller, NUL-terminated) and
 * its length into *@len. Returns 0, -ENOMEM, -EMSGSIZE or -EIO. */
static int read_stdin(char **out, size_t *len)
{
	size_t cap = 4096;
	size_t n = 0;
	size_t got;
	char *buf;
	char *grown;

	buf = malloc(cap);
	if (buf == NULL) {
		return -ENOMEM;
	}
	for (;;) {
		if (n + 1 == cap) {
			if (cap >= QUERY_MAX_STDIN) {
				free(buf);
				return -EMSGSIZE;
			}
			grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = grown;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - 1 - n, stdin);
		n += got;
		if (got == 0) {
			break;
		}
	}
	if (ferror(stdin)) {
		free(buf);
		return -EIO;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Turn the -d argument into the JSON request body in *@out (owned by the
 * caller): JSON is sent as given, anything else as a JSON string, like
 * lxc. Returns 0, or prints an error and returns 1. */
static int make_body(const char *data, char **out)
{
	char *input = NULL;
	size_t len;
	json_t *value;
	int rv;

	if (strcmp(data, "-") == 0) {
		rv = read_stdin(&input, &len);
		if (rv != 0) {
			return cli_error("read request body from stdin: %s",
					 corral_strerror(rv));
		}
		data = input;
	} else {
		len = strlen(data);
	}
	value = json_loadb(data, len, JSON_DECODE_ANY, NULL);
	if (value != NULL) {
		json_decref(value);
		*out = input != NULL ? input : strdup(data);
		if (*out == NULL) {
			return cli_error("%s", corral_strerror(-ENOMEM));
		}
		return 0;
	}
	value = json_stringn(data, len);
	free(input);
	if (value == NULL) {
		return cli_error("request body is not valid UTF-8");
	}
	*out = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(value);
	if (*out == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	return 0;
}

/* Send one request and decode the envelope. A reply that is not an
 * envelope is printed as is when it came with HTTP 200 (*@printed is then
 * set). With @raw non-NULL, the decoded JSON reply is kept there. Returns
 * 0, or prints an error and returns 1. */
static int query_once(struct httpc_client *c,
		      const char *method,
		      const char *path,
		      const char *body,
		      struct httpc_envelope *env,
		      json_t **raw,
		      bool *printed)
{
	struct httpc_request req = {
		.method = method,
		.path = path,
		.body = body,
		.body_len = body != NULL ? strlen(body) : 0,
	};
	struct httpc_response resp;
	int rv;

	*printed = false;
	if (httpc_do(c, &req, &resp) != 0) {
		return cli_error("%s", c->errmsg);
	}
	rv = httpc_envelope_parse(resp.body, resp.body_len, resp.status, env,
				  c->errmsg, sizeof c->errmsg);
	if (rv == CORRAL_EPROTO && resp.status == 200) {
		fwrite(resp.body, 1, resp.body_len, stdout);
		*printed = true;
		rv = 0;
	} else if (rv == CORRAL_EPROTO) {
		cli_error("failed to fetch %s: HTTP %d", path, resp.status);
	} else if (rv != 0) {
		cli_error("%s", c->errmsg);
	} else if (env->type == HTTPC_ENVELOPE_ERROR) {
		cli_error("%s", env->error);
		httpc_envelope_close(env);
		rv = 1;
	} else if (raw != NULL) {
		*raw = json_loadb(resp.body, resp.body_len, 0, NULL);
	}
	httpc_response_close(&resp);
	return rv != 0 ? 1 : 0;
}

/* The path of "OPERATION/wait", keeping the operation's query string. */
static char *wait_path(const char *operation)
{
	const char *query = strchr(operation, '?');
	char *path;
	int n;

	if (query == NULL) {
		query = operation + strlen(operation);
	}
	n = asprintf(&path, "%.*s/wait?%s", (int)(query - operation), operation,
		     *query == '?' ? query + 1 : "");
	return n < 0 ? NULL : path;
}

/* Wait for @env's operation and replace @env (and *@raw, if @raw is not
 * NULL) with the final one. Returns 0, or prints an error and returns 1. */
static int wait_operation(struct httpc_client *c,
			  struct httpc_envelope *env,
			  json_t **raw)
{
	bool printed;
	const char *err;
	char *path;
	int rv;

	path = wait_path(env->operation);
	if (path == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	httpc_envelope_close(env);
	if (raw != NULL) {
		json_decref(*raw);
		*raw = NULL;
	}
	rv = query_once(c, "GET", path, NULL, env, raw, &printed);
	free(path);
	if (rv != 0 || printed) {
		return rv;
	}
	err = json_string_value(json_object_get(env->metadata, "err"));
	if (err != NULL && err[0] != '\0') {
		return cli_error("%s", err);
	}
	return 0;
}

static bool is_supported_method(const char *method)
{
	static const char *const methods[] = { "GET", "PUT", "POST", "PATCH",
					       "DELETE" };
	size_t i;

	for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		if (strcmp(method, methods[i]) == 0) {
			return true;
		}
	}
	return false;
}

static int query_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	static const struct option options[] = {
		{ "request", required_argument, NULL, 'X' },
		{ "data", required_argument, NULL, 'd' },
		{ "wait", no_argument, NULL, 'w' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct httpc_envelope env = { 0 };
	struct httpc_client *c;
	const char *method = "GET";
	const char *data = NULL;
	json_t *raw = NULL;
	bool do_wait = false;
	bool do_raw = false;
	bool printed = false;
	char *body = NULL;
	int rv = 1;
	int ch;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":X:d:h", options, NULL)) != -1) {
		switch (ch) {
		case 'X':
			method = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 'w':
			do_wait = true;
			break;
		case 'r':
			do_raw = true;
			break;
		case 'h':
			cli_verb_usage(verb, "corral");
			return 0;
		default:
			return cli_bad_flag(ch, argv);
		}
	}
	if (argc - optind != 1) {
		cli_verb_usage(verb, "corral");
		return cli_error("invalid number of arguments");
	}
	if (!is_supported_method(method)) {
		return cli_error("action \"%s\" isn't supported by this tool",
				 method);
	}
	if (argv[optind][0] != '/') {
		return cli_error("query path must start with /");
	}
	if (data != NULL && make_body(data, &body) != 0) {
		return 1;
	}
	if (cli_connect(cli, &c) != 0) {
		goto out;
	}
	if (query_once(c, method, argv[optind], body, &env,
		       do_raw ? &raw : NULL, &printed) != 0) {
		goto out;
	}
	if (printed) {
		rv = 0;
		goto out;
	}
	if (do_wait && env.operation[0] != '\0' &&
	    wait_operation(c, &env, do_raw ? &raw : NULL) != 0) {
		goto out;
	}

	rv = 0;
	if (do_raw && raw != NULL) {
		rv = cli_print_json_pretty(raw, stdout);
	} else if (env.metadata != NULL &&
		   !(json_is_object(env.metadata) &&
		     json_object_size(env.metadata) == 0)) {
		rv = cli_print_json_pretty(env.metadata, stdout);
	}
	if (rv != 0) {
		rv = cli_error("print response: %s", corral_strerror(rv));
	}

out:
	json_decref(raw);
	httpc_envelope_close(&env);
	free(body);
	return rv;
}

const struct cli_verb cli_verb_query = {
	.name = "query",
	.args = "[-X METHOD] [-d DATA|-] [--wait] [--raw] [<remote>:]PATH",
	.summary = "Send a raw query to the daemon",
	.flags =
	    "  -d, --data      Input data (\"-\" reads it from stdin)\n"
	    "      --raw       Print the raw response\n"
	    "  -X, --request   Action (default \"GET\")\n"
	    "      --wait      Wait for the operation to complete\n",
	.run = query_run,
};
