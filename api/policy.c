#include <string.h>

#include "policy.h"

#define PUBLIC                        \
	{                             \
		.kind = POLICY_PUBLIC \
	}
#define TRUSTED                        \
	{                              \
		.kind = POLICY_TRUSTED \
	}
#define ACT(a)                                       \
	{                                            \
		.kind = POLICY_ACTION, .action = (a) \
	}
#define MEMBER                        \
	{                             \
		.kind = POLICY_MEMBER \
	}
#define JOIN                        \
	{                           \
		.kind = POLICY_JOIN \
	}
#define NONE                         \
	{                            \
		.kind = POLICY_UNSET \
	}

/* Columns: GET, PUT, POST, PATCH, DELETE. NONE where the route has no
 * handler for the method (405 comes first). */
static const struct policy_route policy[] = {
	{ "/",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { PUBLIC, NONE, NONE, NONE, NONE } },
	/* GET /1.0 answers untrusted callers a reduced object; config is
	 * shown to server viewers only (the handler). */
	{ "/1.0",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { PUBLIC, ACT(AUTHZ_SERVER_ADMIN), NONE, ACT(AUTHZ_SERVER_ADMIN),
	    NONE } },

	/* Projects: the list is filtered to visible projects. */
	{ "/1.0/projects",
	  AUTHZ_PROJECT,
	  POLICY_PROJECT_NONE,
	  { TRUSTED, NONE, ACT(AUTHZ_CREATE_PROJECT), NONE, NONE } },
	{ "/1.0/projects/{name}",
	  AUTHZ_PROJECT,
	  POLICY_PROJECT_PARAM,
	  { ACT(AUTHZ_VIEW), ACT(AUTHZ_EDIT_PROJECT), ACT(AUTHZ_EDIT_PROJECT),
	    ACT(AUTHZ_EDIT_PROJECT), ACT(AUTHZ_EDIT_PROJECT) } },

	/* Profiles of the ?project=. */
	{ "/1.0/profiles",
	  AUTHZ_PROFILE,
	  POLICY_PROJECT_QUERY,
	  { ACT(AUTHZ_VIEW), NONE, ACT(AUTHZ_MANAGE), NONE, NONE } },
	{ "/1.0/profiles/{name}",
	  AUTHZ_PROFILE,
	  POLICY_PROJECT_QUERY,
	  { ACT(AUTHZ_VIEW), ACT(AUTHZ_MANAGE), ACT(AUTHZ_MANAGE),
	    ACT(AUTHZ_MANAGE), ACT(AUTHZ_MANAGE) } },

	/* Certificates: anyone may try to add itself (password or token);
	 * trusted callers see and renew only their own unless server admin,
	 * which the handler decides. */
	{ "/1.0/certificates",
	  AUTHZ_CERTIFICATE,
	  POLICY_PROJECT_NONE,
	  { TRUSTED, NONE, PUBLIC, NONE, NONE } },
	{ "/1.0/certificates/{fingerprint}",
	  AUTHZ_CERTIFICATE,
	  POLICY_PROJECT_NONE,
	  { TRUSTED, TRUSTED, NONE, TRUSTED, TRUSTED } },
	{ "/1.0/certificates/{fingerprint}/roles",
	  AUTHZ_CERTIFICATE,
	  POLICY_PROJECT_NONE,
	  { ACT(AUTHZ_SERVER_VIEW), ACT(AUTHZ_SERVER_ADMIN), NONE, NONE,
	    NONE } },

	/* Operations and events of the ?project=. */
	{ "/1.0/operations",
	  AUTHZ_OPERATION,
	  POLICY_PROJECT_QUERY,
	  { ACT(AUTHZ_VIEW), NONE, NONE, NONE, NONE } },
	{ "/1.0/operations/{id}",
	  AUTHZ_OPERATION,
	  POLICY_PROJECT_QUERY,
	  { ACT(AUTHZ_VIEW), NONE, NONE, NONE, ACT(AUTHZ_MANAGE) } },
	{ "/1.0/operations/{id}/wait",
	  AUTHZ_OPERATION,
	  POLICY_PROJECT_QUERY,
	  { ACT(AUTHZ_VIEW), NONE, NONE, NONE, NONE } },
	{ "/1.0/events",
	  AUTHZ_EVENTS,
	  POLICY_PROJECT_QUERY,
	  { ACT(AUTHZ_VIEW), NONE, NONE, NONE, NONE } },

	/* Clustering: server admins form and change the cluster; members
	 * reach each other's dqlite node, a joiner holding a join secret
	 * asks to be accepted, and once its node runs (its server
	 * certificate is a member's then) asks for the log. */
	{ "/1.0/cluster",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { ACT(AUTHZ_SERVER_VIEW), ACT(AUTHZ_SERVER_ADMIN), NONE, NONE,
	    NONE } },
	{ "/1.0/cluster/members",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { ACT(AUTHZ_SERVER_VIEW), NONE, ACT(AUTHZ_SERVER_ADMIN), NONE,
	    NONE } },
	{ "/1.0/cluster/members/{name}",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { ACT(AUTHZ_SERVER_VIEW), NONE, NONE, NONE,
	    ACT(AUTHZ_SERVER_ADMIN) } },
	{ "/internal/raft",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, MEMBER, NONE, NONE } },
	{ "/internal/heartbeat",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, MEMBER, NONE, NONE } },
	{ "/internal/changed",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, MEMBER, NONE, NONE } },
	{ "/internal/cluster/accept",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, JOIN, NONE, NONE } },
	{ "/internal/cluster/ready",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, MEMBER, NONE, NONE } },
	/* Events a member relays to the others. */
	{ "/internal/events",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, MEMBER, NONE, NONE } },
	/* A token a member issued was redeemed on another one. */
	{ "/internal/tokens/used",
	  AUTHZ_SERVER,
	  POLICY_PROJECT_NONE,
	  { NONE, NONE, MEMBER, NONE, NONE } },
};

static int method_index(enum http_method method)
{
	switch (method) {
	case HTTP_GET:
	case HTTP_HEAD:
		return 0;
	case HTTP_PUT:
		return 1;
	case HTTP_POST:
		return 2;
	case HTTP_PATCH:
		return 3;
	case HTTP_DELETE:
		return 4;
	default:
		return -1;
	}
}

struct policy_rule policy_lookup(const char *path,
				 enum http_method method,
				 const struct policy_route **route_out)
{
	struct policy_rule none = { .kind = POLICY_UNSET };
	int m = method_index(method);
	size_t i;

	if (route_out != NULL) {
		*route_out = NULL;
	}
	for (i = 0; i < sizeof policy / sizeof policy[0]; i++) {
		if (strcmp(policy[i].path, path) == 0) {
			if (route_out != NULL) {
				*route_out = &policy[i];
			}
			return m < 0 ? none : policy[i].rules[m];
		}
	}
	return none;
}
