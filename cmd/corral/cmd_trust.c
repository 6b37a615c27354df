/* corral config trust list|add|show|edit|remove|list-tokens|revoke-token,
 * like `lxc config trust`; roles|grant|revoke-role are in cmd_roles.c. */

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <corral/cert.h>
#include <corral/token.h>

#include "args.h"
#include "cli.h"
#include "edit.h"
#include "ops.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral config trust"

/* The path of certificate @fp (NULL: the collection) with @query. */
static char *cert_path(struct cli *cli, const char *fp, const char *query)
{
	const char *project = cli->project;
	char *path = NULL;

	/* The trust store is server-wide: no ?project=. */
	cli->project = NULL;
	if (cli_api_path(cli, "/1.0/certificates", fp, query, &path) != 0) {
		path = NULL;
		cli_error("%s", corral_strerror(-ENOMEM));
	}
	cli->project = project;
	return path;
}

/* ---- list ---- */

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
		"NAME", "TYPE", "FINGERPRINT", "RESTRICTED", "PROJECTS",
	};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_table table = { 0 };
	struct httpc_envelope env;
	json_t *list;
	json_t *cert;
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
	path = cert_path(cli, NULL, "recursion=1");
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	list = cli_json_by_name(env.metadata != NULL ? env.metadata
						     : json_array());
	httpc_envelope_close(&env);
	if (list == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (format != CLI_FORMAT_TABLE) {
		rv = format == CLI_FORMAT_JSON ? cli_print_json(list, stdout)
					       : cli_print_yaml(list, stdout);
		json_decref(list);
		return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
	}
	rv = cli_table_init(&table, 5, headers);
	json_array_foreach(list, i, cert)
	{
		const char *fp =
		    json_string_value(json_object_get(cert, "fingerprint"));
		json_t *projects = json_object_get(cert, "projects");
		char short_fp[13];
		char *joined = NULL;
		size_t len = 1;
		size_t k;
		json_t *p;
		const char *cells[5];

		snprintf(short_fp, sizeof short_fp, "%s", fp != NULL ? fp : "");
		json_array_foreach(projects, k, p)
		{
			len += json_string_length(p) + 1;
		}
		joined = calloc(1, len);
		if (joined == NULL) {
			rv = -ENOMEM;
			break;
		}
		json_array_foreach(projects, k, p)
		{
			if (k > 0) {
				strcat(joined, "\n");
			}
			strcat(joined, json_string_value(p) != NULL
					   ? json_string_value(p)
					   : "");
		}
		cells[0] = json_string_value(json_object_get(cert, "name"));
		cells[1] = json_string_value(json_object_get(cert, "type"));
		cells[2] = short_fp;
		cells[3] = json_is_true(json_object_get(cert, "restricted"))
			       ? "YES"
			       : "NO";
		cells[4] = joined;
		if (rv == 0) {
			rv = cli_table_add_row(&table, cells);
		}
		free(joined);
	}
	if (rv == 0) {
		rv = cli_table_print(&table, stdout);
	}
	cli_table_close(&table);
	json_decref(list);
	return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
}

/* ---- add ---- */

struct add_flags {
	const char *name;
	const char *projects;
	const char *type;
	bool restricted;
	bool quiet;
};

static int add_option(int ch, const char *value, void *arg)
{
	struct add_flags *f = arg;

	switch (ch) {
	case 'n':
		f->name = value;
		break;
	case 'p':
		f->projects = value;
		break;
	case 't':
		f->type = value;
		break;
	case 'r':
		f->restricted = true;
		break;
	case 'q':
		f->quiet = true;
		break;
	default:
		break;
	}
	return 0;
}

/* The --projects list as a JSON array (split on ','). */
static json_t *projects_array(const char *list)
{
	json_t *arr = json_array();
	const char *p = list;
	const char *comma;

	if (arr == NULL || list == NULL || list[0] == '\0') {
		return arr;
	}
	for (;;) {
		comma = strchr(p, ',');
		if (comma != p && *p != '\0' &&
		    json_array_append_new(
			arr, json_stringn(p, comma != NULL ? (size_t)(comma - p)
							   : strlen(p))) != 0) {
			json_decref(arr);
			return NULL;
		}
		if (comma == NULL) {
			return arr;
		}
		p = comma + 1;
	}
}

/* Read the PEM certificate in @file and return base64 of its DER (what
 * lxc sends), or NULL after printing an error. */
static char *cert_file_b64(const char *file)
{
	unsigned char *der = NULL;
	char *text = NULL;
	char *b64 = NULL;
	size_t len;
	X509 *x = NULL;
	BIO *bio = NULL;
	int n;

	if (cert_read_file(file, &text, &len) != 0) {
		cli_error("Could not read certificate file: %s: %s", file,
			  strerror(errno));
		return NULL;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	if (bio != NULL) {
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	}
	if (x == NULL) {
		cli_error("Invalid certificate in %s", file);
		goto out;
	}
	n = i2d_X509(x, &der);
	if (n <= 0) {
		cli_error("Invalid certificate in %s", file);
		goto out;
	}
	b64 = malloc(4 * (((size_t)n + 2) / 3) + 1);
	if (b64 == NULL) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, der, n);

out:
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(bio);
	free(text);
	return b64;
}

/* Print the token of the operation @op (its "metadata" holds the parts). */
static int print_token(json_t *op, const struct add_flags *flags)
{
	char *token;
	int rv;

	rv =
	    token_trust_from_operation(json_object_get(op, "metadata"), &token);
	if (rv != 0) {
		return cli_error(
		    "Failed converting token operation to "
		    "certificate add token: %s",
		    corral_strerror(rv));
	}
	if (flags->quiet) {
		printf("%s\n", token);
	} else {
		printf("Client %s certificate add token:\n%s\n", flags->name,
		       token);
	}
	free(token);
	return 0;
}

static int add_run(struct cli *cli,
		   const struct cli_verb *verb,
		   int argc,
		   char **argv)
{
	static const struct option options[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "projects", required_argument, NULL, 'p' },
		{ "type", required_argument, NULL, 't' },
		{ "restricted", no_argument, NULL, 'r' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct add_flags flags = { .type = "client" };
	struct httpc_envelope env;
	json_t *projects;
	json_t *body = NULL;
	char *b64 = NULL;
	char *copy = NULL;
	char *path = NULL;
	int status;
	int rv = 1;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "q",
				 add_option, &flags);
	if (status >= 0) {
		return status;
	}
	if (argc - optind > 1) {
		cli_verb_usage(verb, PREFIX);
		return cli_error("Invalid number of arguments");
	}
	if (strcmp(flags.type, "client") != 0 &&
	    strcmp(flags.type, "metrics") != 0) {
		return cli_error("Unknown certificate type \"%s\"", flags.type);
	}
	projects = projects_array(flags.projects);
	if (projects == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (argc - optind == 1) {
		b64 = cert_file_b64(argv[optind]);
		if (b64 == NULL) {
			json_decref(projects);
			return 1;
		}
		if (flags.name == NULL) {
			copy = strdup(argv[optind]);
			flags.name = copy != NULL ? basename(copy) : "";
		}
		body =
		    json_pack("{s:s, s:s, s:b, s:o, s:s, s:s, s:b}", "name",
			      flags.name, "type", flags.type, "restricted",
			      flags.restricted, "projects", projects,
			      "certificate", b64, "password", "", "token", 0);
	} else {
		if (flags.name == NULL || flags.name[0] == '\0') {
			json_decref(projects);
			return cli_error(
			    "A client name is required for a "
			    "token (--name NAME)");
		}
		body = json_pack("{s:s, s:s, s:b, s:o, s:b}", "name",
				 flags.name, "type", flags.type, "restricted",
				 flags.restricted, "projects", projects,
				 "token", 1);
	}
	path = cert_path(cli, NULL, NULL);
	if (body == NULL || path == NULL) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	if (cli_call_json(cli, "POST", path, body, NULL, &env, NULL) != 0) {
		goto out;
	}
	rv = 0;
	if (b64 == NULL) {
		rv = print_token(env.metadata, &flags);
	}
	httpc_envelope_close(&env);

out:
	json_decref(body);
	free(path);
	free(copy);
	free(b64);
	return rv;
}

/* ---- show, edit, remove ---- */

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
	path = cert_path(cli, argv[optind], NULL);
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

struct edit_target {
	const char *fp;
	const char *etag; /* NULL: none */
};

static int edit_apply(struct cli *cli,
		      json_t *doc,
		      void *arg,
		      char *errmsg,
		      size_t errmsg_size)
{
	static const char *const fields[] = { "name", "type", "restricted",
					      "projects", "certificate" };
	struct edit_target *target = arg;
	struct httpc_envelope env;
	json_t *body = json_object();
	char *text = NULL;
	char *path;
	size_t i;
	int rv = 1;

	for (i = 0; body != NULL && i < sizeof fields / sizeof fields[0]; i++) {
		json_t *v = json_object_get(doc, fields[i]);
		const char *s = json_string_value(v);

		/* YAML scalars arrive as strings; Go reads a bool. */
		if (strcmp(fields[i], "restricted") == 0 && s != NULL) {
			if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
				snprintf(errmsg, errmsg_size,
					 "restricted: invalid boolean \"%s\"",
					 s);
				json_decref(body);
				return 1;
			}
			json_object_set_new(body, fields[i],
					    json_boolean(s[0] == 't'));
		} else if (strcmp(fields[i], "projects") == 0 &&
			   json_is_null(v)) {
			json_object_set_new(body, fields[i], json_array());
		} else if (v != NULL) {
			json_object_set(body, fields[i], v);
		}
	}
	path = cert_path(cli, target->fp, NULL);
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
    "### This is a YAML representation of the certificate.\n"
    "### Any line starting with a '# will be ignored.\n"
    "###\n"
    "### Note that the fingerprint is shown but cannot be changed\n"
    "\n";

static int edit_run(struct cli *cli,
		    const struct cli_verb *verb,
		    int argc,
		    char **argv)
{
	struct httpc_envelope env;
	char etag[CLI_ETAG_SIZE];
	struct edit_target target;
	char *path;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	path = cert_path(cli, argv[optind], NULL);
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, etag);
	free(path);
	if (rv != 0) {
		return 1;
	}
	target.fp = argv[optind];
	target.etag = etag[0] != '\0' ? etag : NULL;
	rv = cli_edit(cli, env.metadata, edit_header, edit_apply, &target);
	httpc_envelope_close(&env);
	return rv;
}

static int remove_run(struct cli *cli,
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
	path = cert_path(cli, argv[optind], NULL);
	if (path == NULL) {
		return 1;
	}
	rv = cli_call_json(cli, "DELETE", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	httpc_envelope_close(&env);
	return 0;
}

/* ---- tokens ---- */

/* Whether @op is a pending certificate add token. */
static bool is_token_op(json_t *op)
{
	const char *cls = json_string_value(json_object_get(op, "class"));

	return cls != NULL && strcmp(cls, "token") == 0 &&
	       json_integer_value(json_object_get(op, "status_code")) == 103 &&
	       json_is_string(json_object_get(
		   json_object_get(json_object_get(op, "metadata"), "request"),
		   "name"));
}

static const char *token_name(json_t *op)
{
	return json_string_value(json_object_get(
	    json_object_get(json_object_get(op, "metadata"), "request"),
	    "name"));
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
	json_t *ops;
	json_t *tokens;
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
	if (cli_operations(cli, &ops) != 0) {
		return 1;
	}
	tokens = json_array();
	rv = cli_table_init(&table, 3, headers);
	json_array_foreach(ops, i, op)
	{
		json_t *md = json_object_get(op, "metadata");
		char expires[64];
		char *token;
		const char *cells[3];

		if (!is_token_op(op) ||
		    token_trust_from_operation(md, &token) != 0) {
			continue;
		}
		cli_format_date(
		    json_string_value(json_object_get(md, "expiresAt")),
		    expires, sizeof expires);
		cells[0] = token_name(op);
		cells[1] = token;
		cells[2] = expires;
		if (rv == 0) {
			rv = cli_table_add_row(&table, cells);
		}
		if (rv == 0 && tokens != NULL) {
			rv = json_array_append_new(
				 tokens,
				 json_pack("{s:s, s:s, s:s}", "ClientName",
					   cells[0], "Token", token,
					   "ExpiresAt", expires)) != 0
				 ? -ENOMEM
				 : 0;
		}
		free(token);
	}
	if (rv == 0 && tokens == NULL) {
		rv = -ENOMEM;
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
	const char *id = NULL;
	json_t *ops;
	json_t *op;
	char *path;
	size_t i;
	int status;
	int rv;

	status = cli_parse_args(cli, verb, PREFIX, argc, argv, 1, 1);
	if (status >= 0) {
		return status;
	}
	if (cli_operations(cli, &ops) != 0) {
		return 1;
	}
	json_array_foreach(ops, i, op)
	{
		if (is_token_op(op) &&
		    strcmp(token_name(op), argv[optind]) == 0) {
			id = json_string_value(json_object_get(op, "id"));
			break;
		}
	}
	if (id == NULL) {
		json_decref(ops);
		return cli_error("No certificate add token for client %s",
				 argv[optind]);
	}
	rv = cli_api_path(cli, "/1.0/operations", id, NULL, &path);
	json_decref(ops);
	if (rv != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	rv = cli_call_json(cli, "DELETE", path, NULL, NULL, &env, NULL);
	free(path);
	if (rv != 0) {
		return 1;
	}
	httpc_envelope_close(&env);
	return 0;
}

static const struct cli_verb verb_add = {
	.name = "add",
	.args =
	    "[<cert>] [--name N] [--restricted --projects P1,P2] "
	    "[--quiet]",
	.summary = "Add new trusted client (a file, or a token without one)",
	.flags =
	    "      --name         Alternative certificate name\n"
	    "      --projects     List of projects to restrict the "
	    "certificate to\n"
	    "  -q, --quiet        Don't show progress information (print "
	    "only the token)\n"
	    "      --restricted   Restrict the certificate to one or more "
	    "projects\n"
	    "      --type         Type of certificate (client|metrics) "
	    "(default \"client\")\n",
	.run = add_run,
};

static const struct cli_verb verb_edit = {
	.name = "edit",
	.args = "<fingerprint>",
	.summary = "Edit trust configurations as YAML",
	.flags = NULL,
	.run = edit_run,
};

static const struct cli_verb verb_list = {
	.name = "list",
	.args = "[--format table|json|yaml]",
	.summary = "List trusted clients",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = list_run,
};

static const struct cli_verb verb_list_tokens = {
	.name = "list-tokens",
	.args = "[--format table|json|yaml]",
	.summary = "List all active certificate add tokens",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = list_tokens_run,
};

static const struct cli_verb verb_remove = {
	.name = "remove",
	.args = "<fingerprint>",
	.summary = "Remove trusted client",
	.flags = NULL,
	.run = remove_run,
};

static const struct cli_verb verb_revoke_token = {
	.name = "revoke-token",
	.args = "<name>",
	.summary = "Revoke certificate add token",
	.flags = NULL,
	.run = revoke_token_run,
};

static const struct cli_verb verb_show = {
	.name = "show",
	.args = "<fingerprint>",
	.summary = "Show trust configurations",
	.flags = NULL,
	.run = show_run,
};

static const struct cli_verb *const trust_verbs[] = {
	&verb_add,
	&verb_edit,
	&cli_verb_config_trust_grant,
	&verb_list,
	&verb_list_tokens,
	&verb_remove,
	&cli_verb_config_trust_revoke_role,
	&verb_revoke_token,
	&cli_verb_config_trust_roles,
	&verb_show,
};

static int trust_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	return cli_group_run(cli, verb, trust_verbs,
			     sizeof trust_verbs / sizeof trust_verbs[0], PREFIX,
			     argc, argv);
}

const struct cli_verb cli_verb_config_trust = {
	.name = "trust",
	.args = "[command]",
	.summary = "Manage trusted clients",
	.flags = NULL,
	.run = trust_run,
};
