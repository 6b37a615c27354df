/* The authorization policy of every route, in one table.
 *
 * Each route path and method maps to a rule: open to untrusted callers
 * (LXD's three open routes), any trusted caller (the handler narrows, e.g.
 * lists filtered by visibility, a certificate's own holder), or an action of
 * api_authorize() on an object type. A route and method without a rule is
 * an error caught by tests/unit/test_policy.c, so a new route cannot ship
 * unguarded. */
#ifndef CORRAL_API_POLICY_H
#define CORRAL_API_POLICY_H

#include <stdbool.h>

#include <http_parser.h>

#include "authz.h"

enum policy_rule_kind {
	POLICY_UNSET = 0, /* no rule: refused, and a test failure */
	POLICY_PUBLIC,    /* untrusted callers too */
	POLICY_TRUSTED,   /* any trusted caller; the handler narrows */
	POLICY_ACTION,    /* api_authorize(action, object) */
	/* Other cluster members only: a TLS client whose certificate is a
	 * `server` identity in the trust store. */
	POLICY_MEMBER,
	/* A TLS client presenting a certificate, not yet trusted: a member
	 * joining with a one-time join secret, which the handler redeems. */
	POLICY_JOIN,
};

/* Where the object's project comes from. */
enum policy_project {
	POLICY_PROJECT_NONE = 0, /* a server-level object */
	POLICY_PROJECT_QUERY,    /* ?project=, default "default" */
	POLICY_PROJECT_PARAM,    /* the route's first {parameter} */
};

struct policy_rule {
	enum policy_rule_kind kind;
	enum authz_action action; /* POLICY_ACTION only */
};

struct policy_route {
	const char *path; /* as in the route tables */
	enum authz_object_type object;
	enum policy_project project;
	/* GET (also HEAD), PUT, POST, PATCH, DELETE */
	struct policy_rule rules[5];
};

/* The rule for @method on the route whose pattern is @path; a rule of kind
 * POLICY_UNSET when none exists. @route_out, when not NULL, receives the
 * policy entry (NULL when the path has none). */
struct policy_rule policy_lookup(const char *path,
				 enum http_method method,
				 const struct policy_route **route_out);

#endif /* CORRAL_API_POLICY_H */
