/* corral config trust roles|grant|revoke-role: the role bindings of a
 * certificate, through corral's GET/PUT /1.0/certificates/{fp}/roles (api
 * extension "corral_roles"). A binding is {"scope": "server" |
 * "all_projects" | "project", "project": NAME (project scope only),
 * "role": "auditor" | "user" | "operator" | "admin"}. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "output.h"
#include "request.h"

#define PREFIX "corral config trust"

static const char *const role_names[] = { "auditor", "user", "operator",
					  "admin", NULL };
static const char *const scope_names[] = { "server", "all_projects", "project",
					   NULL };

/* The index of @s in the NULL-terminated @names, or -1. */
static int name_index(const char *const *names, const char *s)
{
	int i;

	for (i = 0; s != NULL && names[i] != NULL; i++) {
		if (strcmp(names[i], s) == 0) {
			return i;
		}
	}
	return -1;
}

/* The path "/1.0/certificates/@fp/roles" (@roles true) or
 * "/1.0/certificates/@fp" in *@out. Returns 0, or prints an error and
 * returns 1. */
static int cert_path(struct cli *cli, const char *fp, bool roles, char **out)
{
	const char *project = cli->project;
	char *base = NULL;
	int rv;

	/* The trust store is server-wide: no ?project=. */
	cli->project = NULL;
	rv = cli_api_path(cli, "/1.0/certificates", fp, NULL, &base);
	cli->project = project;
	if (rv != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (!roles) {
		*out = base;
		return 0;
	}
	*out = malloc(strlen(base) + sizeof "/roles");
	if (*out == NULL) {
		free(base);
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	strcpy(stpcpy(*out, base), "/roles");
	free(base);
	return 0;
}

/* GET the role bindings of certificate @fp (a fingerprint or a prefix of
 * one): the array in *@out (owned by the caller), the reply's ETag in
 * @etag ("" if none; CLI_ETAG_SIZE bytes, may be NULL). Returns 0, or
 * prints an error and returns 1. */
static int get_roles(struct cli *cli, const char *fp, json_t **out, char *etag)
{
	struct httpc_envelope env;
	char *path;
	int rv;

	if (cert_path(cli, fp, true, &path) != 0) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, etag);
	free(path);
	if (rv != 0) {
		return 1;
	}
	if (env.metadata != NULL && !json_is_array(env.metadata)) {
		httpc_envelope_close(&env);
		return cli_error("Invalid roles in the server's reply");
	}
	*out = env.metadata != NULL ? json_incref(env.metadata) : json_array();
	httpc_envelope_close(&env);
	return *out != NULL ? 0 : cli_error("%s", corral_strerror(-ENOMEM));
}

/* ---- roles ---- */

/* Order of bindings: scope (server, all projects, project), then project
 * name, then role (weakest first). */
static int binding_cmp(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a;
	json_t *y = *(json_t *const *)b;
	const char *px = json_string_value(json_object_get(x, "project"));
	const char *py = json_string_value(json_object_get(y, "project"));
	int d;

	d = name_index(scope_names,
		       json_string_value(json_object_get(x, "scope"))) -
	    name_index(scope_names,
		       json_string_value(json_object_get(y, "scope")));
	if (d != 0) {
		return d;
	}
	d = strcmp(px != NULL ? px : "", py != NULL ? py : "");
	if (d != 0) {
		return d;
	}
	return name_index(role_names,
			  json_string_value(json_object_get(x, "role"))) -
	       name_index(role_names,
			  json_string_value(json_object_get(y, "role")));
}

/* Print @roles as a SCOPE / PROJECT / ROLE table. Returns 0 or -ENOMEM. */
static int print_table(json_t *roles)
{
	static const char *const headers[] = { "SCOPE", "PROJECT", "ROLE" };
	struct cli_table table = { 0 };
	size_t n = json_array_size(roles);
	json_t **sorted;
	size_t i;
	int rv;

	sorted = calloc(n > 0 ? n : 1, sizeof *sorted);
	if (sorted == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		sorted[i] = json_array_get(roles, i);
	}
	qsort(sorted, n, sizeof *sorted, binding_cmp);
	rv = cli_table_init(&table, 3, headers);
	for (i = 0; rv == 0 && i < n; i++) {
		const char *cells[3];

		cells[0] =
		    json_string_value(json_object_get(sorted[i], "scope"));
		cells[1] =
		    json_string_value(json_object_get(sorted[i], "project"));
		cells[2] =
		    json_string_value(json_object_get(sorted[i], "role"));
		rv = cli_table_add_row(&table, cells);
	}
	if (rv == 0) {
		rv = cli_table_print(&table, stdout);
	}
	cli_table_close(&table);
	free(sorted);
	return rv;
}

static int roles_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	static const struct option options[] = {
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	enum cli_format format = CLI_FORMAT_TABLE;
	json_t *roles;
	int status;
	int rv;

	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options,
				 "f:", cli_format_option, &format);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 1, 1, &status)) {
		return status;
	}
	if (get_roles(cli, argv[optind], &roles, NULL) != 0) {
		return 1;
	}
	switch (format) {
	case CLI_FORMAT_JSON:
		rv = cli_print_json(roles, stdout);
		break;
	case CLI_FORMAT_YAML:
		rv = cli_print_yaml(roles, stdout);
		break;
	default:
		rv = print_table(roles);
		break;
	}
	json_decref(roles);
	return rv != 0 ? cli_error("%s", corral_strerror(rv)) : 0;
}

/* ---- grant, revoke-role ---- */

/* The binding named on the command line of grant or revoke-role. */
struct binding_flags {
	const char *project; /* --project P, else NULL */
	const char *scope;   /* "server", "all_projects" or "project" */
	unsigned n_scopes;   /* scope flags given */
};

static int binding_option(int ch, const char *value, void *arg)
{
	struct binding_flags *f = arg;

	switch (ch) {
	case 'p':
		f->project = value;
		f->scope = "project";
		break;
	case 'a':
		f->scope = "all_projects";
		break;
	case 's':
		f->scope = "server";
		break;
	default:
		return 0;
	}
	f->n_scopes++;
	return 0;
}

/* Parse "FP ROLE (--project P | --all-projects | --server)" into @f, the
 * fingerprint in *@fp and the role in *@role, checking everything that
 * needs no server. Returns -1 when the verb can go on, else the exit
 * status it must return (an error printed). */
static int parse_binding(struct cli *cli,
			 const struct cli_verb *verb,
			 int argc,
			 char **argv,
			 struct binding_flags *f,
			 const char **fp,
			 const char **role)
{
	/* Our own --project comes first, so getopt_long() takes it instead
	 * of the shared one: here it names the scope, not the request's
	 * project. */
	static const struct option options[] = {
		{ "project", required_argument, NULL, 'p' },
		{ "all-projects", no_argument, NULL, 'a' },
		{ "server", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	int status;

	memset(f, 0, sizeof *f);
	/* A --project given before the verb ("corral --project dev config
	 * trust grant ...") names the scope as well. */
	if (cli->project != NULL) {
		binding_option('p', cli->project, f);
	}
	status = cli_parse_flags(cli, verb, PREFIX, argc, argv, options, "",
				 binding_option, f);
	if (status >= 0) {
		return status;
	}
	if (cli_args_bad(verb, PREFIX, argc - optind, 2, 2, &status)) {
		return status;
	}
	*fp = argv[optind];
	*role = argv[optind + 1];
	if ((*fp)[0] == '\0') {
		return cli_error("A certificate fingerprint is required");
	}
	if (name_index(role_names, *role) < 0) {
		return cli_error(
		    "Unknown role \"%s\" (must be auditor, user, operator or "
		    "admin)",
		    *role);
	}
	if (f->n_scopes == 0) {
		return cli_error(
		    "A scope is required: --project NAME, --all-projects or "
		    "--server");
	}
	if (f->n_scopes > 1) {
		return cli_error(
		    "Only one scope may be given: --project NAME, "
		    "--all-projects or --server");
	}
	if (f->project != NULL && f->project[0] == '\0') {
		return cli_error("The project name can't be empty");
	}
	return -1;
}

/* Whether binding @b is in scope @f (same scope and project). */
static bool same_scope(json_t *b, const struct binding_flags *f)
{
	const char *scope = json_string_value(json_object_get(b, "scope"));
	const char *project = json_string_value(json_object_get(b, "project"));

	if (scope == NULL || strcmp(scope, f->scope) != 0) {
		return false;
	}
	return f->project == NULL ||
	       (project != NULL && strcmp(project, f->project) == 0);
}

/* A change of the bindings of one certificate: find them, change @roles
 * (the current array, to be modified in place), say whether to PUT. */
typedef int (*change_fn)(json_t *roles,
			 const struct binding_flags *f,
			 const char *role,
			 bool *changed);

static int grant_change(json_t *roles,
			const struct binding_flags *f,
			const char *role,
			bool *changed)
{
	json_t *b;
	size_t i;

	json_array_foreach(roles, i, b)
	{
		const char *have =
		    json_string_value(json_object_get(b, "role"));

		if (!same_scope(b, f)) {
			continue;
		}
		if (have != NULL && strcmp(have, role) == 0) {
			*changed = false; /* already granted */
			return 0;
		}
		/* The server keeps one role per scope: replacing it here
		 * would silently drop (or raise) what is there. */
		if (f->project != NULL) {
			return cli_error(
			    "The certificate already has role %s on project "
			    "%s (revoke it first)",
			    have != NULL ? have : "?", f->project);
		}
		return cli_error(
		    "The certificate already has role %s on %s (revoke it "
		    "first)",
		    have != NULL ? have : "?",
		    strcmp(f->scope, "server") == 0 ? "the server"
						    : "all projects");
	}
	b = f->project != NULL
		? json_pack("{s:s, s:s, s:s}", "scope", f->scope, "project",
			    f->project, "role", role)
		: json_pack("{s:s, s:s}", "scope", f->scope, "role", role);
	if (b == NULL || json_array_append_new(roles, b) != 0) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	*changed = true;
	return 0;
}

static int revoke_change(json_t *roles,
			 const struct binding_flags *f,
			 const char *role,
			 bool *changed)
{
	json_t *b;
	size_t i;

	json_array_foreach(roles, i, b)
	{
		const char *have =
		    json_string_value(json_object_get(b, "role"));

		if (same_scope(b, f) && have != NULL &&
		    strcmp(have, role) == 0) {
			if (json_array_remove(roles, i) != 0) {
				return cli_error("%s",
						 corral_strerror(-ENOMEM));
			}
			*changed = true;
			return 0;
		}
	}
	return cli_error("The certificate has no such role");
}

/* Read, change and write back the bindings of the certificate named by
 * the command line. The certificate is resolved to its full fingerprint
 * first, so that the PUT goes to the certificate that was read even if a
 * prefix becomes ambiguous meanwhile. */
static int modify_run(struct cli *cli,
		      const struct cli_verb *verb,
		      int argc,
		      char **argv,
		      change_fn change)
{
	struct binding_flags f;
	struct httpc_envelope env;
	char etag[CLI_ETAG_SIZE];
	char *full = NULL;
	char *path = NULL;
	const char *fp = NULL;
	const char *role = NULL;
	json_t *roles = NULL;
	json_t *body = NULL;
	bool changed = false;
	int status;
	int rv = 1;

	status = parse_binding(cli, verb, argc, argv, &f, &fp, &role);
	if (status >= 0) {
		return status;
	}
	if (cert_path(cli, fp, false, &path) != 0) {
		return 1;
	}
	rv = cli_call_json(cli, "GET", path, NULL, NULL, &env, NULL);
	free(path);
	path = NULL;
	if (rv != 0) {
		return 1;
	}
	rv = 1;
	if (!json_is_string(json_object_get(env.metadata, "fingerprint"))) {
		httpc_envelope_close(&env);
		return cli_error("The server's reply names no fingerprint");
	}
	full = strdup(
	    json_string_value(json_object_get(env.metadata, "fingerprint")));
	httpc_envelope_close(&env);
	if (full == NULL) {
		return cli_error("%s", corral_strerror(-ENOMEM));
	}
	if (get_roles(cli, full, &roles, etag) != 0) {
		goto out;
	}
	if (change(roles, &f, role, &changed) != 0) {
		goto out;
	}
	if (!changed) {
		rv = 0;
		goto out;
	}
	body = json_pack("{s:O}", "roles", roles);
	if (body == NULL) {
		cli_error("%s", corral_strerror(-ENOMEM));
		goto out;
	}
	if (cert_path(cli, full, true, &path) != 0) {
		goto out;
	}
	if (cli_call_json(cli, "PUT", path, body, etag[0] != '\0' ? etag : NULL,
			  &env, NULL) != 0) {
		goto out;
	}
	httpc_envelope_close(&env);
	rv = 0;

out:
	json_decref(body);
	json_decref(roles);
	free(path);
	free(full);
	return rv;
}

static int grant_run(struct cli *cli,
		     const struct cli_verb *verb,
		     int argc,
		     char **argv)
{
	return modify_run(cli, verb, argc, argv, grant_change);
}

static int revoke_role_run(struct cli *cli,
			   const struct cli_verb *verb,
			   int argc,
			   char **argv)
{
	return modify_run(cli, verb, argc, argv, revoke_change);
}

#define SCOPE_FLAGS                                                          \
	"      --all-projects   Every project, present and future\n"         \
	"      --project        The project the role applies to\n"           \
	"      --server         The whole server\n"                          \
	"\n"                                                                 \
	"Exactly one of --project, --all-projects and --server is needed.\n" \
	"Roles: auditor, user, operator, admin (each includes the ones\n"    \
	"before it). <fingerprint> may be a unique prefix.\n"

const struct cli_verb cli_verb_config_trust_grant = {
	.name = "grant",
	.args =
	    "<fingerprint> <role> (--project P | --all-projects | --server)",
	.summary = "Grant a role to a trusted client",
	.flags = SCOPE_FLAGS,
	.run = grant_run,
};

const struct cli_verb cli_verb_config_trust_revoke_role = {
	.name = "revoke-role",
	.args =
	    "<fingerprint> <role> (--project P | --all-projects | --server)",
	.summary = "Revoke a role from a trusted client",
	.flags = SCOPE_FLAGS,
	.run = revoke_role_run,
};

const struct cli_verb cli_verb_config_trust_roles = {
	.name = "roles",
	.args = "<fingerprint> [--format table|json|yaml]",
	.summary = "List the roles of a trusted client",
	.flags =
	    "  -f, --format   Format (json|table|yaml) (default \"table\")\n",
	.run = roles_run,
};
