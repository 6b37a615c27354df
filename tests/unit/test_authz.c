/* Unit tests of api/authz.c: the whole role x scope x action x object
 * matrix of api_authorize(), the helpers and the guard rails. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "corral/err.h"

#include "authz.h"
#include "trust.h"

#define OWN_FP \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OTHER_FP \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* ------------------------------------------------------------------------ */
/* Objects, grouped in classes that must answer alike                         */

enum obj_class {
	C_DEV,    /* anything in project "dev" */
	C_PROD,   /* anything in project "prod" */
	C_LATER,  /* a project nobody named in a binding: "created-later" */
	C_PUBLIC, /* /1.0, pools, the project and certificate collections */
	C_OWN,    /* the caller's own certificate */
	C_OTHER,  /* another identity's certificate */
	C_SRVC,   /* unnamed server-level objects */
	C_SRVN,   /* named server-level objects */
	C_MDEV,   /* metrics of "dev" */
	C_MPROD,  /* metrics of "prod" */
	C_MSRV,   /* server-wide metrics */
	N_CLASSES,
};

struct class_object {
	enum obj_class cls;
	struct authz_object obj;
};

#define IN_PROJECT(cls, p)                                \
	{ cls, { AUTHZ_PROJECT, NULL, p } },              \
	    { cls, { AUTHZ_PROJECT, p, NULL } },          \
	    { cls, { AUTHZ_PROFILE, p, "default" } },     \
	    { cls, { AUTHZ_PROFILE, p, NULL } },          \
	    { cls, { AUTHZ_INSTANCE, p, "c1" } },         \
	    { cls, { AUTHZ_INSTANCE, p, NULL } },         \
	    { cls, { AUTHZ_IMAGE, p, "0123abcd" } },      \
	    { cls, { AUTHZ_STORAGE_VOLUME, p, "vol" } },  \
	    { cls, { AUTHZ_NETWORK, p, "ovn0" } },        \
	    { cls, { AUTHZ_OPERATION, p, "0f3e-uuid" } }, \
	    { cls, { AUTHZ_OPERATION, p, NULL } },        \
	{                                                 \
		cls,                                      \
		{                                         \
			AUTHZ_EVENTS, p, NULL             \
		}                                         \
	}

static const struct class_object objects[] = {
	IN_PROJECT(C_DEV, "dev"),
	IN_PROJECT(C_PROD, "prod"),
	IN_PROJECT(C_LATER, "created-later"),
	{ C_PUBLIC, { AUTHZ_SERVER, NULL, NULL } },
	{ C_PUBLIC, { AUTHZ_STORAGE_POOL, NULL, NULL } },
	{ C_PUBLIC, { AUTHZ_STORAGE_POOL, NULL, "default" } },
	{ C_PUBLIC, { AUTHZ_PROJECT, NULL, NULL } },
	{ C_PUBLIC, { AUTHZ_CERTIFICATE, NULL, NULL } },
	{ C_OWN, { AUTHZ_CERTIFICATE, NULL, OWN_FP } },
	{ C_OTHER, { AUTHZ_CERTIFICATE, NULL, OTHER_FP } },
	{ C_SRVC, { AUTHZ_CLUSTER, NULL, NULL } },
	{ C_SRVC, { AUTHZ_RESOURCES, NULL, NULL } },
	{ C_SRVC, { AUTHZ_EVENTS, NULL, NULL } },
	{ C_SRVC, { AUTHZ_OPERATION, NULL, NULL } },
	{ C_SRVC, { AUTHZ_NETWORK, NULL, NULL } },
	{ C_SRVN, { AUTHZ_CLUSTER, NULL, "member2" } },
	{ C_SRVN, { AUTHZ_OPERATION, NULL, "cluster-op-uuid" } },
	{ C_SRVN, { AUTHZ_NETWORK, NULL, "lxdbr0" } },
	{ C_MDEV, { AUTHZ_METRICS, "dev", NULL } },
	{ C_MPROD, { AUTHZ_METRICS, "prod", NULL } },
	{ C_MSRV, { AUTHZ_METRICS, NULL, NULL } },
};

static const enum authz_action actions[] = {
	AUTHZ_VIEW,         AUTHZ_OPERATE,        AUTHZ_MANAGE,
	AUTHZ_EDIT_PROJECT, AUTHZ_CREATE_PROJECT, AUTHZ_SERVER_VIEW,
	AUTHZ_SERVER_ADMIN,
};
#define N_ACTIONS (sizeof actions / sizeof actions[0])

static const char *const action_names[] = {
	"VIEW",           "OPERATE",     "MANAGE",       "EDIT_PROJECT",
	"CREATE_PROJECT", "SERVER_VIEW", "SERVER_ADMIN",
};

/* ------------------------------------------------------------------------ */
/* Subjects                                                                   */

enum subject_kind {
	S_UNTRUSTED,
	S_UNIX,
	S_PKI,
	S_BINDING,      /* one binding: scope, project, role */
	S_NONE,         /* a client without bindings (LXD projects: []) */
	S_FLAG,         /* server_admin flag with no bindings */
	S_LXD_RESTRICT, /* LXD 5.0 restricted: true, projects: [dev] */
	S_LXD_ADMIN,    /* LXD 5.0 restricted: false */
};

/* A subject and, for each object class, the expected result of each
 * action in the order of actions[]: 'A' allowed (0), 'N' CORRAL_ENOTFOUND,
 * 'F' CORRAL_EFORBIDDEN. */
struct matrix_row {
	const char *label;
	enum subject_kind kind;
	const char *type; /* identity type */
	const char *scope;
	const char *project;
	const char *role;
	const char *expect[N_CLASSES];
};

#define ALL_CLASSES(x)                          \
	{                                       \
		x, x, x, x, x, x, x, x, x, x, x \
	}
/*                 DEV        PROD       LATER      PUBLIC     OWN
 *                 OTHER      SRVC       SRVN       MDEV       MPROD
 *                 MSRV */
#define DEV_ROW(dev)                                                        \
	{                                                                   \
		dev, "NNNNFNN", "NNNNFNN", "AFFFFFF", "AAFFFFF", "NNNNFNN", \
		    "FFFFFFF", "NNNNFNN", dev, "NNNNFNN", "FFFFFFF"         \
	}
#define ALLP_ROW(p)                                                  \
	{                                                            \
		p, p, p, "AFFFFFF", "AAFFFFF", "NNNNFNN", "FFFFFFF", \
		    "NNNNFNN", p, p, "FFFFFFF"                       \
	}
#define SRV_ROW(p)                                                   \
	{                                                            \
		p, p, p, "AFFFFAF", "AAFFFAF", "AFFFFAF", "AFFFFAF", \
		    "AFFFFAF", p, p, "AFFFFAF"                       \
	}
#define F7 "FFFFFFF"

static const struct matrix_row matrix[] = {
	{ "untrusted", S_UNTRUSTED, NULL, NULL, NULL, NULL, ALL_CLASSES(F7) },
	{ "unix socket", S_UNIX, NULL, NULL, NULL, NULL,
	  ALL_CLASSES("AAAAAAA") },
	{ "pki", S_PKI, NULL, NULL, NULL, NULL, ALL_CLASSES("AAAAAAA") },

	{ "dev auditor", S_BINDING, "client", "project", "dev", "auditor",
	  DEV_ROW("AFFFFFF") },
	{ "dev user", S_BINDING, "client", "project", "dev", "user",
	  DEV_ROW("AAFFFFF") },
	{ "dev operator", S_BINDING, "client", "project", "dev", "operator",
	  DEV_ROW("AAAFFFF") },
	{ "dev admin", S_BINDING, "client", "project", "dev", "admin",
	  DEV_ROW("AAAAFFF") },

	{ "all_projects auditor", S_BINDING, "client", "all_projects", NULL,
	  "auditor", ALLP_ROW("AFFFFFF") },
	{ "all_projects user", S_BINDING, "client", "all_projects", NULL,
	  "user", ALLP_ROW("AAFFFFF") },
	{ "all_projects operator", S_BINDING, "client", "all_projects", NULL,
	  "operator", ALLP_ROW("AAAFFFF") },
	{ "all_projects admin",
	  S_BINDING,
	  "client",
	  "all_projects",
	  NULL,
	  "admin",
	  { "AAAAAFF", "AAAAAFF", "AAAAAFF", "AFFFAFF", "AAFFAFF", "NNNNANN",
	    "FFFFAFF", "NNNNANN", "AAAAAFF", "AAAAAFF", "FFFFAFF" } },

	{ "server auditor", S_BINDING, "client", "server", NULL, "auditor",
	  SRV_ROW("AFFFFAF") },
	{ "server user", S_BINDING, "client", "server", NULL, "user",
	  SRV_ROW("AAFFFAF") },
	{ "server operator", S_BINDING, "client", "server", NULL, "operator",
	  SRV_ROW("AAAFFAF") },
	{ "server admin", S_BINDING, "client", "server", NULL, "admin",
	  ALL_CLASSES("AAAAAAA") },

	{ "no bindings", S_NONE, "client", NULL, NULL, NULL,
	  DEV_ROW("NNNNFNN") },
	{ "server_admin flag", S_FLAG, "client", NULL, NULL, NULL,
	  ALL_CLASSES("AAAAAAA") },
	{ "lxd restricted [dev]", S_LXD_RESTRICT, "client", NULL, NULL, NULL,
	  DEV_ROW("AAAFFFF") },
	{ "lxd unrestricted", S_LXD_ADMIN, "client", NULL, NULL, NULL,
	  ALL_CLASSES("AAAAAAA") },

	{ "metrics unrestricted",
	  S_LXD_ADMIN,
	  "metrics",
	  NULL,
	  NULL,
	  NULL,
	  { F7, F7, F7, F7, F7, F7, F7, F7, "AFFFFFF", "AFFFFFF", "AFFFFFF" } },
	{ "metrics restricted [dev]",
	  S_LXD_RESTRICT,
	  "metrics",
	  NULL,
	  NULL,
	  NULL,
	  { F7, F7, F7, F7, F7, F7, F7, F7, "AFFFFFF", "NNNNNNN", F7 } },
	{ "cluster member", S_LXD_ADMIN, "server", NULL, NULL, NULL,
	  ALL_CLASSES(F7) },
	{ "unknown type", S_LXD_ADMIN, "bogus", NULL, NULL, NULL,
	  ALL_CLASSES(F7) },
};

/* An identity and the subject around it; owns the roles. */
struct fixture {
	struct trust_identity id;
	struct authz_subject s;
};

static json_t *binding(const char *scope, const char *project, const char *role)
{
	json_t *b;

	if (project != NULL) {
		b = json_pack("{s:s, s:s, s:s}", "scope", scope, "project",
			      project, "role", role);
	} else {
		b = json_pack("{s:s, s:s}", "scope", scope, "role", role);
	}
	assert_non_null(b);
	return b;
}

/* The bindings LXD 5.0's fields map to, through trust_legacy_apply(). */
static json_t *legacy_roles(bool restricted, const char *project)
{
	json_t *current = json_array();
	json_t *all = json_pack("[s, s, s]", "default", "dev", "prod");
	json_t *projects = project != NULL ? json_pack("[s]", project) : NULL;
	json_t *out = NULL;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	int rv;

	rv = trust_legacy_apply(current, all,
				restricted ? json_true() : json_false(),
				projects, &out, errmsg);
	if (rv != 0) {
		fail_msg("trust_legacy_apply: %d %s", rv, errmsg);
	}
	json_decref(current);
	json_decref(all);
	json_decref(projects);
	return out;
}

static void fixture_init(struct fixture *f,
			 const char *type,
			 json_t *roles,
			 bool server_admin)
{
	memset(f, 0, sizeof *f);
	snprintf(f->id.fingerprint, sizeof f->id.fingerprint, "%s", OWN_FP);
	snprintf(f->id.type, sizeof f->id.type, "%s", type);
	f->id.name = (char *)"test";
	f->id.roles = roles;
	f->id.server_admin = server_admin;
	f->s.identity = &f->id;
}

/* Build the subject of @row into @f. */
static void fixture_of_row(struct fixture *f, const struct matrix_row *row)
{
	json_t *roles = NULL;

	memset(f, 0, sizeof *f);
	switch (row->kind) {
	case S_UNTRUSTED:
		return;
	case S_UNIX:
		f->s.unix_socket = true;
		return;
	case S_PKI:
		f->s.pki_admin = true;
		return;
	case S_BINDING:
		roles = json_array();
		json_array_append_new(
		    roles, binding(row->scope, row->project, row->role));
		break;
	case S_NONE:
	case S_FLAG:
		roles = json_array();
		break;
	case S_LXD_RESTRICT:
		roles = legacy_roles(true, "dev");
		break;
	case S_LXD_ADMIN:
		roles = legacy_roles(false, NULL);
		break;
	}
	/* As trust_cache_replace() derives it. */
	fixture_init(f, row->type, roles,
		     row->kind == S_FLAG || trust_roles_server_admin(roles));
}

static void fixture_clear(struct fixture *f)
{
	json_decref(f->id.roles);
	f->id.roles = NULL;
}

static int expected(char c)
{
	switch (c) {
	case 'A':
		return 0;
	case 'N':
		return CORRAL_ENOTFOUND;
	case 'F':
		return CORRAL_EFORBIDDEN;
	}
	fail_msg("bad expectation '%c'", c);
	return 1;
}

static void test_matrix(void **state)
{
	size_t r;
	size_t o;
	size_t a;
	unsigned failures = 0;
	unsigned checks = 0;

	(void)state;
	for (r = 0; r < sizeof matrix / sizeof matrix[0]; r++) {
		const struct matrix_row *row = &matrix[r];
		struct fixture f;

		fixture_of_row(&f, row);
		for (o = 0; o < sizeof objects / sizeof objects[0]; o++) {
			const struct class_object *co = &objects[o];
			const char *want = row->expect[co->cls];

			assert_int_equal(strlen(want), N_ACTIONS);
			for (a = 0; a < N_ACTIONS; a++) {
				int got =
				    api_authorize(&f.s, actions[a], &co->obj);
				checks++;
				if (got != expected(want[a])) {
					failures++;
					print_error(
					    "%s, %s on {type %d, project %s, "
					    "name %s}: got %s, want %c\n",
					    row->label, action_names[a],
					    (int)co->obj.type,
					    co->obj.project ? co->obj.project
							    : "NULL",
					    co->obj.name ? co->obj.name
							 : "NULL",
					    got == 0 ? "0"
						     : corral_strerror(got),
					    want[a]);
				}
			}
		}
		fixture_clear(&f);
	}
	assert_true(checks > 3000);
	assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */

static void test_role_in(void **state)
{
	struct fixture f;
	struct authz_subject untrusted = { 0 };
	struct authz_subject unix_s = { .unix_socket = true };

	(void)state;
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles, binding("project", "dev", "user"));
	json_array_append_new(f.id.roles,
			      binding("project", "dev", "operator"));
	json_array_append_new(f.id.roles,
			      binding("all_projects", NULL, "auditor"));
	json_array_append_new(f.id.roles, binding("project", "prod", "admin"));
	/* Malformed bindings count for nothing. */
	json_array_append_new(f.id.roles,
			      binding("project", "ci", "superuser"));
	json_array_append_new(f.id.roles,
			      json_pack("{s:s}", "scope", "server"));
	json_array_append_new(f.id.roles, json_string("admin"));

	assert_int_equal(authz_role_in(&f.s, "dev"), AUTHZ_ROLE_OPERATOR);
	assert_int_equal(authz_role_in(&f.s, "prod"), AUTHZ_ROLE_ADMIN);
	assert_int_equal(authz_role_in(&f.s, "ci"), AUTHZ_ROLE_AUDITOR);
	assert_int_equal(authz_role_in(&f.s, "created-later"),
			 AUTHZ_ROLE_AUDITOR);
	assert_int_equal(authz_role_in(&f.s, NULL), AUTHZ_ROLE_NONE);
	assert_true(authz_can_view_project(&f.s, "created-later"));
	assert_false(authz_can_view_project(&f.s, NULL));
	assert_false(authz_is_server_admin(&f.s));
	fixture_clear(&f);

	/* Server scope counts everywhere, also with no project. */
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles, binding("server", NULL, "user"));
	json_array_append_new(f.id.roles, binding("project", "dev", "admin"));
	assert_int_equal(authz_role_in(&f.s, NULL), AUTHZ_ROLE_USER);
	assert_int_equal(authz_role_in(&f.s, "x"), AUTHZ_ROLE_USER);
	assert_int_equal(authz_role_in(&f.s, "dev"), AUTHZ_ROLE_ADMIN);
	fixture_clear(&f);

	/* A project binding does not leak to other projects. */
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles, binding("project", "dev", "admin"));
	assert_true(authz_can_view_project(&f.s, "dev"));
	assert_false(authz_can_view_project(&f.s, "prod"));
	assert_false(authz_can_view_project(&f.s, "de"));
	assert_false(authz_can_view_project(&f.s, "dev2"));
	fixture_clear(&f);

	/* Metrics identities have no role, not even with the admin flag. */
	fixture_init(&f, "metrics", json_array(), true);
	json_array_append_new(f.id.roles, binding("server", NULL, "admin"));
	assert_int_equal(authz_role_in(&f.s, "dev"), AUTHZ_ROLE_NONE);
	assert_false(authz_can_view_project(&f.s, "dev"));
	assert_false(authz_is_server_admin(&f.s));
	fixture_clear(&f);

	assert_int_equal(authz_role_in(&untrusted, "dev"), AUTHZ_ROLE_NONE);
	assert_int_equal(authz_role_in(NULL, "dev"), AUTHZ_ROLE_NONE);
	assert_int_equal(authz_role_in(&unix_s, "dev"), AUTHZ_ROLE_ADMIN);
	assert_int_equal(authz_role_in(&unix_s, NULL), AUTHZ_ROLE_ADMIN);
	assert_true(authz_can_view_project(&unix_s, "anything"));
	assert_true(authz_is_server_admin(&unix_s));
	assert_int_equal(api_authorize(NULL, AUTHZ_VIEW, &objects[0].obj),
			 CORRAL_EFORBIDDEN);
	assert_int_equal(api_authorize(&unix_s, AUTHZ_VIEW, NULL),
			 CORRAL_EFORBIDDEN);
}

static void test_role_names(void **state)
{
	enum authz_role r;

	(void)state;
	for (r = AUTHZ_ROLE_NONE; r <= AUTHZ_ROLE_ADMIN; r++) {
		if (r == AUTHZ_ROLE_NONE) {
			assert_string_equal(authz_role_name(r), "none");
			continue;
		}
		assert_int_equal(authz_role_parse(authz_role_name(r)), r);
	}
	assert_int_equal(authz_role_parse("Admin"), AUTHZ_ROLE_NONE);
	assert_int_equal(authz_role_parse("none"), AUTHZ_ROLE_NONE);
	assert_int_equal(authz_role_parse(NULL), AUTHZ_ROLE_NONE);
	assert_string_equal(authz_role_name((enum authz_role)42), "none");
}

/* The scenarios, spelled out. */
static void test_scenarios(void **state)
{
	struct fixture f;
	struct authz_object dev_profiles = { AUTHZ_PROFILE, "dev", NULL };
	struct authz_object prod_profiles = { AUTHZ_PROFILE, "prod", NULL };
	struct authz_object dev = { AUTHZ_PROJECT, NULL, "dev" };
	struct authz_object prod = { AUTHZ_PROJECT, NULL, "prod" };
	struct authz_object later = { AUTHZ_PROJECT, NULL, "created-later" };
	struct authz_object server = { AUTHZ_SERVER, NULL, NULL };

	(void)state;
	/* An auditor on dev lists dev's profiles, cannot create one, and
	 * does not see prod. */
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles, binding("project", "dev", "auditor"));
	assert_int_equal(api_authorize(&f.s, AUTHZ_VIEW, &dev_profiles), 0);
	assert_int_equal(api_authorize(&f.s, AUTHZ_MANAGE, &dev_profiles),
			 CORRAL_EFORBIDDEN);
	assert_int_equal(api_authorize(&f.s, AUTHZ_VIEW, &prod_profiles),
			 CORRAL_ENOTFOUND);
	fixture_clear(&f);

	/* A project admin edits its project, not another. */
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles, binding("project", "dev", "admin"));
	assert_int_equal(api_authorize(&f.s, AUTHZ_EDIT_PROJECT, &dev), 0);
	assert_int_equal(api_authorize(&f.s, AUTHZ_EDIT_PROJECT, &prod),
			 CORRAL_ENOTFOUND);
	assert_int_equal(api_authorize(&f.s, AUTHZ_CREATE_PROJECT, &later),
			 CORRAL_EFORBIDDEN);
	fixture_clear(&f);

	/* An all-projects auditor sees a project created after the grant. */
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles,
			      binding("all_projects", NULL, "auditor"));
	assert_int_equal(api_authorize(&f.s, AUTHZ_VIEW, &later), 0);
	assert_true(authz_can_view_project(&f.s, "created-later"));
	assert_int_equal(api_authorize(&f.s, AUTHZ_SERVER_VIEW, &server),
			 CORRAL_EFORBIDDEN);
	fixture_clear(&f);

	/* A server auditor reads server config but does not administer. */
	fixture_init(&f, "client", json_array(), false);
	json_array_append_new(f.id.roles, binding("server", NULL, "auditor"));
	assert_int_equal(api_authorize(&f.s, AUTHZ_SERVER_VIEW, &server), 0);
	assert_int_equal(api_authorize(&f.s, AUTHZ_SERVER_ADMIN, &server),
			 CORRAL_EFORBIDDEN);
	fixture_clear(&f);
}

/* ------------------------------------------------------------------------ */
/* Guard rails                                                                */

static json_t *json_of(const char *text)
{
	json_error_t err;
	json_t *value = json_loads(text, JSON_DECODE_ANY, &err);

	if (value == NULL) {
		fail_msg("bad JSON %s: %s", text, err.text);
	}
	return value;
}

/* Subjects for the guard rails. */
enum rail_subject {
	R_DEV_OPERATOR,
	R_DEV_ADMIN,
	R_ALL_ADMIN,
	R_SERVER_OPERATOR,
	R_SERVER_ADMIN,
	R_UNIX,
	R_N,
};

static void rail_fixture(struct fixture *f, enum rail_subject who)
{
	switch (who) {
	case R_DEV_OPERATOR:
		fixture_init(f, "client", json_array(), false);
		json_array_append_new(f->id.roles,
				      binding("project", "dev", "operator"));
		break;
	case R_DEV_ADMIN:
		fixture_init(f, "client", json_array(), false);
		json_array_append_new(f->id.roles,
				      binding("project", "dev", "admin"));
		break;
	case R_ALL_ADMIN:
		fixture_init(f, "client", json_array(), false);
		json_array_append_new(f->id.roles,
				      binding("all_projects", NULL, "admin"));
		break;
	case R_SERVER_OPERATOR:
		fixture_init(f, "client", json_array(), false);
		json_array_append_new(f->id.roles,
				      binding("server", NULL, "operator"));
		break;
	case R_SERVER_ADMIN:
		fixture_init(f, "client", json_array(), true);
		json_array_append_new(f->id.roles,
				      binding("server", NULL, "admin"));
		break;
	case R_UNIX:
		memset(f, 0, sizeof *f);
		f->s.unix_socket = true;
		break;
	case R_N:
		break;
	}
}

/* A guard-rail case: old and new maps (JSON text, NULL for a NULL
 * pointer), the expected code below server admin and a fragment of the
 * message. Server admins always get 0 unless @code is CORRAL_EINVALID. */
struct rail_case {
	const char *old_json;
	const char *new_json;
	int code;
	const char *msg;
};

static const struct rail_case config_cases[] = {
	{ NULL, NULL, 0, NULL },
	{ NULL, "null", 0, NULL },
	{ NULL, "{}", 0, NULL },
	{ NULL, "{\"limits.cpu\": \"2\", \"user.x\": \"raw\"}", 0, NULL },
	{ NULL, "{\"security.privileged\": \"true\"}", CORRAL_EFORBIDDEN,
	  "setting \"security.privileged\" requires the server admin role" },
	{ NULL, "{\"security.privileged\": \"false\"}", 0, NULL },
	{ NULL, "{\"security.privileged\": \"\"}", 0, NULL },
	{ NULL, "{\"security.privileged\": true}", CORRAL_EFORBIDDEN,
	  "\"security.privileged\"" },
	{ NULL, "{\"raw.lxc\": \"lxc.apparmor.profile=unconfined\"}",
	  CORRAL_EFORBIDDEN,
	  "setting \"raw.lxc\" requires the server admin role" },
	{ NULL, "{\"raw.idmap\": \"both 0 0\"}", CORRAL_EFORBIDDEN,
	  "\"raw.idmap\"" },
	{ NULL, "{\"raw.seccomp\": \"x\"}", CORRAL_EFORBIDDEN,
	  "\"raw.seccomp\"" },
	{ NULL, "{\"raw.lxc\": \"\"}", 0, NULL },
	{ NULL, "{\"security.idmap.isolated\": \"true\"}", 0, NULL },
	{ NULL, "{\"security.idmap.isolated\": \"false\"}", CORRAL_EFORBIDDEN,
	  "setting \"security.idmap.isolated\" requires the server admin role" },
	{ NULL, "{\"security.idmap.base\": \"0\"}", CORRAL_EFORBIDDEN,
	  "\"security.idmap.base\"" },
	{ NULL, "{\"security.idmap.size\": \"65536\"}", CORRAL_EFORBIDDEN,
	  "\"security.idmap.size\"" },
	{ NULL, "{\"security.nesting\": \"true\"}", 0, NULL },
	/* PUT round-trips what a server admin set. */
	{ "{\"raw.lxc\": \"x\", \"security.privileged\": \"true\"}",
	  "{\"raw.lxc\": \"x\", \"security.privileged\": \"true\", "
	  "\"limits.cpu\": \"2\"}",
	  0, NULL },
	{ "{\"raw.lxc\": \"x\"}", "{\"raw.lxc\": \"y\"}", CORRAL_EFORBIDDEN,
	  "\"raw.lxc\"" },
	{ "{\"raw.lxc\": \"x\"}", "{}", 0, NULL },
	{ "{\"security.privileged\": \"true\"}", "{}", 0, NULL },
	{ "{\"security.idmap.isolated\": \"true\"}", "{}", CORRAL_EFORBIDDEN,
	  "unsetting \"security.idmap.isolated\" requires the server admin role" },
	{ "{\"security.idmap.isolated\": \"true\"}",
	  "{\"security.idmap.isolated\": \"\"}", CORRAL_EFORBIDDEN,
	  "\"security.idmap.isolated\"" },
	{ "{\"security.idmap.isolated\": \"false\"}",
	  "{\"security.idmap.isolated\": \"false\"}", 0, NULL },
	{ NULL, "[]", CORRAL_EINVALID, "config must be an object" },
	{ "\"x\"", "{}", CORRAL_EINVALID, "config must be an object" },
};

static const struct rail_case device_cases[] = {
	{ NULL, NULL, 0, NULL },
	{ NULL, "{}", 0, NULL },
	{ NULL,
	  "{\"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": "
	  "\"default\"}}",
	  0, NULL },
	{ NULL,
	  "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": "
	  "\"/srv/data\"}}",
	  CORRAL_EFORBIDDEN,
	  "device \"data\": a disk with a host source path requires the server "
	  "admin role" },
	{ NULL,
	  "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": "
	  "\"/\"}}",
	  CORRAL_EFORBIDDEN, "device \"data\"" },
	{ NULL,
	  "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": "
	  "true}}",
	  CORRAL_EFORBIDDEN, "device \"data\"" },
	{ NULL,
	  "{\"vol\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": "
	  "\"vol1\", \"pool\": \"default\"}}",
	  0, NULL },
	{ NULL,
	  "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": "
	  "\"br0\", \"security.mac_filtering\": \"true\"}}",
	  0, NULL },
	{ NULL, "{\"x\": {\"type\": \"none\"}}", 0, NULL },
	/* Unchanged host disks survive a round trip; changed ones do not. */
	{ "{\"d\": {\"type\": \"disk\", \"path\": \"/m\", \"source\": \"/s\"}}",
	  "{\"d\": {\"type\": \"disk\", \"path\": \"/m\", \"source\": \"/s\"}}",
	  0, NULL },
	{ "{\"d\": {\"type\": \"disk\", \"path\": \"/m\", \"source\": \"/s\"}}",
	  "{\"d\": {\"type\": \"disk\", \"path\": \"/m2\", \"source\": \"/s\"}}",
	  CORRAL_EFORBIDDEN, "device \"d\"" },
	{ "{\"d\": {\"type\": \"disk\", \"path\": \"/m\", \"source\": \"/s\"}}",
	  "{\"e\": {\"type\": \"disk\", \"path\": \"/m\", \"source\": \"/s\"}}",
	  CORRAL_EFORBIDDEN, "device \"e\"" },
	{ "{\"d\": {\"type\": \"disk\", \"path\": \"/m\", \"source\": \"/s\"}}",
	  "{}", 0, NULL },
	{ NULL, "[]", CORRAL_EINVALID, "devices must be an object" },
	{ NULL, "{\"d\": \"disk\"}", CORRAL_EINVALID,
	  "device \"d\" must be an object" },
};

static const struct rail_case project_cases[] = {
	{ NULL, NULL, 0, NULL },
	{ NULL, "{\"features.profiles\": \"true\", \"user.team\": \"a\"}", 0,
	  NULL },
	{ NULL, "{\"restricted\": \"true\"}", CORRAL_EFORBIDDEN,
	  "changing \"restricted\" requires the server admin role" },
	{ NULL, "{\"restricted\": \"false\"}", CORRAL_EFORBIDDEN,
	  "\"restricted\"" },
	{ NULL, "{\"restricted\": \"\"}", 0, NULL },
	{ "{}", "{\"restricted.devices.nic.filtering\": \"enforce\"}",
	  CORRAL_EFORBIDDEN,
	  "changing \"restricted.devices.nic.filtering\" requires the server "
	  "admin role" },
	{ "{\"restricted.devices.nic.filtering\": \"enforce\"}", "{}",
	  CORRAL_EFORBIDDEN, "\"restricted.devices.nic.filtering\"" },
	{ "{\"restricted.devices.nic.filtering\": \"enforce\"}",
	  "{\"restricted.devices.nic.filtering\": \"allow\"}",
	  CORRAL_EFORBIDDEN, "\"restricted.devices.nic.filtering\"" },
	{ "{\"restricted\": \"true\", \"restricted.containers.privilege\": "
	  "\"isolated\", \"user.a\": \"1\"}",
	  "{\"restricted\": \"true\", \"restricted.containers.privilege\": "
	  "\"isolated\", \"user.a\": \"2\", \"features.images\": \"false\"}",
	  0, NULL },
	{ "{\"restricted.idmap.uid\": \"\"}", "{}", 0, NULL },
	{ "{\"restrictedx\": \"1\"}", "{}", 0, NULL },
	{ NULL, "[]", CORRAL_EINVALID, "config must be an object" },
};

enum rail_fn {
	RAIL_CONFIG,
	RAIL_CONFIG_KEYS,
	RAIL_DEVICES,
	RAIL_PROJECT
};

static int run_rail(enum rail_fn fn,
		    const struct authz_subject *s,
		    json_t *old,
		    json_t *new,
		    char *errmsg)
{
	switch (fn) {
	case RAIL_CONFIG:
		return authz_check_config_change(s, "dev", old, new, errmsg);
	case RAIL_CONFIG_KEYS:
		return authz_check_config_keys(s, "dev", new, errmsg);
	case RAIL_DEVICES:
		return old == NULL
			   ? authz_check_devices(s, new, errmsg)
			   : authz_check_devices_change(s, old, new, errmsg);
	case RAIL_PROJECT:
		return authz_check_project_keys(s, old, new, errmsg);
	}
	return 1;
}

static void run_rail_cases(enum rail_fn fn,
			   const struct rail_case *cases,
			   size_t n)
{
	size_t i;
	int who;

	for (who = 0; who < R_N; who++) {
		struct fixture f;
		bool admin = who == R_SERVER_ADMIN || who == R_UNIX;

		rail_fixture(&f, (enum rail_subject)who);
		assert_int_equal(authz_is_server_admin(&f.s), admin);
		for (i = 0; i < n; i++) {
			const struct rail_case *c = &cases[i];
			json_t *old;
			json_t *new;
			char errmsg[CORRAL_ERRMSG_SIZE] = "";
			int want = c->code;
			int got;

			/* authz_check_config_keys() sees no old map. */
			if (fn == RAIL_CONFIG_KEYS && c->old_json != NULL) {
				continue;
			}
			old = c->old_json ? json_of(c->old_json) : NULL;
			new = c->new_json ? json_of(c->new_json) : NULL;
			if (admin && want != CORRAL_EINVALID) {
				want = 0;
			}
			got = run_rail(fn, &f.s, old, new, errmsg);
			if (got != want) {
				fail_msg(
				    "subject %d, case %zu (%s -> %s): "
				    "got %d, want %d (%s)",
				    who, i, c->old_json, c->new_json, got, want,
				    errmsg);
			}
			if (want != 0 && c->msg != NULL &&
			    strstr(errmsg, c->msg) == NULL) {
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i,
					 errmsg, c->msg);
			}
			json_decref(old);
			json_decref(new);
		}
		fixture_clear(&f);
	}
}

static void test_config_rails(void **state)
{
	(void)state;
	run_rail_cases(RAIL_CONFIG, config_cases,
		       sizeof config_cases / sizeof config_cases[0]);
	run_rail_cases(RAIL_CONFIG_KEYS, config_cases,
		       sizeof config_cases / sizeof config_cases[0]);
}

static void test_device_rails(void **state)
{
	(void)state;
	run_rail_cases(RAIL_DEVICES, device_cases,
		       sizeof device_cases / sizeof device_cases[0]);
}

static void test_project_rails(void **state)
{
	(void)state;
	run_rail_cases(RAIL_PROJECT, project_cases,
		       sizeof project_cases / sizeof project_cases[0]);
}

/* The operator: manages dev's profiles, incl. NIC filters, but no
 * root-equivalent key. */
static void test_operator_profile(void **state)
{
	struct fixture f;
	struct authz_object profile = { AUTHZ_PROFILE, "dev", "web" };
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	json_t *config;
	json_t *devices;

	(void)state;
	rail_fixture(&f, R_DEV_OPERATOR);
	assert_int_equal(api_authorize(&f.s, AUTHZ_MANAGE, &profile), 0);

	config = json_pack("{s:s}", "security.privileged", "true");
	assert_int_equal(authz_check_config_keys(&f.s, "dev", config, errmsg),
			 CORRAL_EFORBIDDEN);
	assert_string_equal(
	    errmsg,
	    "setting \"security.privileged\" requires the server admin role");
	json_decref(config);

	config = json_pack("{s:s}", "raw.lxc", "lxc.cap.drop=");
	assert_int_equal(authz_check_config_keys(&f.s, "dev", config, errmsg),
			 CORRAL_EFORBIDDEN);
	json_decref(config);

	config = json_pack("{s:s, s:s}", "security.idmap.isolated", "true",
			   "limits.memory", "1GiB");
	assert_int_equal(authz_check_config_keys(&f.s, "dev", config, errmsg),
			 0);
	json_decref(config);

	devices = json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "eth0",
			    "type", "nic", "nictype", "bridged", "parent",
			    "corralbr0", "security.mac_filtering", "true",
			    "security.ipv4_filtering", "true",
			    "security.ipv6_filtering", "true");
	assert_int_equal(authz_check_devices(&f.s, devices, errmsg), 0);
	json_decref(devices);

	devices = json_pack("{s:{s:s, s:s, s:s}}", "host", "type", "disk",
			    "path", "/mnt", "source", "/etc");
	assert_int_equal(authz_check_devices(&f.s, devices, errmsg),
			 CORRAL_EFORBIDDEN);
	assert_string_equal(errmsg,
			    "device \"host\": a disk with a host source path "
			    "requires the server admin role");
	json_decref(devices);
	fixture_clear(&f);
}

static void test_project_defaults(void **state)
{
	struct fixture f;
	json_t *config;

	(void)state;
	rail_fixture(&f, R_ALL_ADMIN);
	config = json_object();
	assert_int_equal(authz_apply_project_defaults(&f.s, config), 0);
	assert_string_equal(
	    json_string_value(json_object_get(config, "restricted")), "true");
	json_decref(config);
	config = json_pack("{s:s}", "restricted", "");
	assert_int_equal(authz_apply_project_defaults(&f.s, config), 0);
	assert_string_equal(
	    json_string_value(json_object_get(config, "restricted")), "true");
	json_decref(config);
	config = json_array();
	assert_int_equal(authz_apply_project_defaults(&f.s, config), -EINVAL);
	json_decref(config);
	fixture_clear(&f);

	rail_fixture(&f, R_SERVER_ADMIN);
	config = json_object();
	assert_int_equal(authz_apply_project_defaults(&f.s, config), 0);
	assert_int_equal(json_object_size(config), 0);
	json_decref(config);
	fixture_clear(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_role_in),
		cmocka_unit_test(test_role_names),
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_config_rails),
		cmocka_unit_test(test_device_rails),
		cmocka_unit_test(test_project_rails),
		cmocka_unit_test(test_operator_profile),
		cmocka_unit_test(test_project_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
