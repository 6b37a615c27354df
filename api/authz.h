/* The authorizer: who may do what, and the key-level guard rails.
 *
 * Everything here is pure: no I/O, no globals, no allocation (except
 * authz_apply_project_defaults(), which adds one string). It reads the
 * caller's identity (struct trust_identity, borrowed from the trust cache)
 * and answers for one request. The model is reference/rbac-model.md
 * section 4 and issue 6; the decisions below are the normative version.
 *
 * Roles and scopes
 * ================
 * Four cumulative roles: auditor < user < operator < admin. A binding gives
 * one role at one scope: a project P, all_projects (every current and future
 * project, matched at request time, so a project created after the grant is
 * covered) or server. The role of a caller in project P is the highest of
 * its (project P), (all_projects) and (server) bindings.
 *
 * Callers
 * -------
 * - Unix socket: server admin (the socket's file mode and group are the
 *   gate).
 * - TLS client trusted through core.trust_ca_certificates (pki_admin):
 *   server admin, as LXD and Incus treat CA-valid certificates.
 * - Identity of type "client": its bindings. The `server_admin` flag and
 *   the (server, admin) binding both mean server admin (LXD 5.0's
 *   `restricted: false`); `restricted: true, projects: [p]` arrives as
 *   (project p, operator).
 * - Identity of type "metrics": nothing but AUTHZ_METRICS, which it may
 *   VIEW where its bindings give auditor or more (a `restricted: false`
 *   metrics certificate, bound (server, admin), sees every project's
 *   metrics but is NOT a server admin). Everything else: CORRAL_EFORBIDDEN.
 * - Identity of type "server" (a cluster member): nothing here. Members
 *   use the internal API, authorized apart; a request a member forwards is
 *   authorized as its original requestor, never as the member.
 * - Untrusted (no identity) or an unknown identity type: CORRAL_EFORBIDDEN
 *   for everything, uniformly (DESIGN section 6: untrusted callers get 403;
 *   the router lets them reach LXD's open routes before asking us).
 *
 * Objects
 * -------
 * Project objects: AUTHZ_PROJECT (the project obj->name, or obj->project
 * when name is NULL), and AUTHZ_PROFILE, AUTHZ_INSTANCE, AUTHZ_IMAGE,
 * AUTHZ_STORAGE_VOLUME, AUTHZ_NETWORK, AUTHZ_OPERATION, AUTHZ_EVENTS,
 * AUTHZ_METRICS in obj->project. The router always passes the request's
 * project (LXD's "default" when ?project= is absent): a NULL project on
 * these types means a server-level object (a server network, a cluster
 * operation, server lifecycle events, server-wide metrics) and requires the
 * role at server scope. AUTHZ_PROJECT with neither name nor project is the
 * /1.0/projects collection.
 *
 * Server objects: AUTHZ_SERVER (/1.0), AUTHZ_CLUSTER, AUTHZ_CERTIFICATE
 * (obj->name: the full lowercase fingerprint, or NULL for the
 * collection), AUTHZ_STORAGE_POOL, AUTHZ_RESOURCES.
 *
 * Decision table (✓ allowed; a role includes the ones before it)
 * --------------------------------------------------------------
 *  action               | project object in P        | server object
 *  ---------------------+----------------------------+---------------------
 *  VIEW                 | auditor in P               | see "Server VIEW"
 *  OPERATE              | user in P                  | server admin (*)
 *  MANAGE               | operator in P              | server admin
 *  EDIT_PROJECT         | admin in P                 | server admin
 *  CREATE_PROJECT       | server admin or (all_projects, admin), any object
 *  SERVER_VIEW          | any server-scope binding (server auditor+), any
 *                       | object; all_projects bindings do NOT give it
 *  SERVER_ADMIN         | server admin, any object
 *  (*) AUTHZ_CERTIFICATE: OPERATE on one's own certificate is allowed.
 *
 * Server VIEW:
 *  - AUTHZ_SERVER, the AUTHZ_PROJECT collection, the AUTHZ_CERTIFICATE
 *    collection and AUTHZ_STORAGE_POOL: every trusted client (GET /1.0 and
 *    list endpoints, which filter; operators need pool names to create
 *    volumes, as in LXD and Incus).
 *  - AUTHZ_CERTIFICATE named: the caller's own certificate, or server
 *    auditor+.
 *  - AUTHZ_CLUSTER, AUTHZ_RESOURCES, server-level operations, events,
 *    networks, metrics: server auditor+.
 *
 * What the rows mean, by role (the router maps routes to actions):
 *  - auditor: every GET in the project, its operations and lifecycle
 *    events. At server scope also SERVER_VIEW: server config (the handler
 *    redacts secrets), cluster members, the certificate list, resources,
 *    server lifecycle events.
 *  - user: + OPERATE: instance state (start, stop, restart, freeze), exec,
 *    console, file push/pull, snapshots, cancelling the project's
 *    operations. At server scope: the same on every project, nothing more
 *    server-wide.
 *  - operator: + MANAGE: create, edit, delete instances, profiles, images,
 *    volumes, project networks, devices incl. NIC security.* keys. At
 *    server scope: the same on every project.
 *  - admin: + EDIT_PROJECT: the project's config (features.*, user.*,
 *    limits), rename, delete. At all_projects: + CREATE_PROJECT. At server
 *    scope: everything, incl. SERVER_ADMIN: server config, the trust store
 *    (certificates, tokens, roles), cluster join/remove/upgrade, storage
 *    pools, server networks, logging events (log lines can carry addresses
 *    and config values, so they need SERVER_ADMIN, not SERVER_VIEW).
 *  - Own certificate (LXD's test_certificate_edit): VIEW and OPERATE
 *    (replace its own PEM; the handler refuses every other field below
 *    server admin); MANAGE (edit other fields, delete) is server admin.
 *
 * Results: 0, CORRAL_ENOTFOUND or CORRAL_EFORBIDDEN (DESIGN section 6 order
 * of checks: can't see the object, 404; can see it but can't act, 403).
 * An object is invisible when it lies in a project the caller has no role
 * in (incl. collections such as /1.0/profiles?project=prod), or it is a
 * *named* server object the caller may not VIEW (another identity's
 * certificate, a cluster member, a server-level operation): list endpoints
 * leave those out, so a direct GET must not confirm they exist. Unnamed
 * server objects are public endpoints: 403. For clients CREATE_PROJECT fails
 * with 403.
 *
 * Guard rails (403 after the body validated, whatever the role above)
 * -------------------------------------------------------------------
 * Below server admin nobody:
 *  - sets security.privileged=true, any raw.* key, security.idmap.isolated
 *    =false (true is fine), security.idmap.base or security.idmap.size;
 *  - adds a disk device whose source is a host path (starts with '/');
 *  - changes `restricted` or any `restricted.*` project key, not even an
 *    admin of that project (the issue overrides the rbac-model table here:
 *    a project admin loosening its own restrictions would be root).
 * Projects created below server admin (all_projects admins) get
 * restricted=true (authz_apply_project_defaults()).
 * The *_change variants compare with the current value so a client that
 * round-trips a whole object (`lxc config edit`, `lxc project edit`) can
 * keep what a server admin set. The empty string unsets a key and never
 * trips a rail, except that unsetting security.idmap.isolated=true does.
 *
 * LXD's warning stands: operator in an *unrestricted* project is close to
 * root on the host (docs/security.md); these rails remove the known
 * root-equivalent keys, restricted projects remove the rest. */
#ifndef CORRAL_API_AUTHZ_H
#define CORRAL_API_AUTHZ_H

#include <stdbool.h>

#include <jansson.h>

#include "trust.h"

/* Who is asking. */
struct authz_subject {
	bool unix_socket;                      /* the Unix socket */
	const struct trust_identity *identity; /* NULL = untrusted */
	bool pki_admin; /* trusted via core.trust_ca_certificates */
};

/* Roles, ordered: a higher one includes the lower ones. */
enum authz_role {
	AUTHZ_ROLE_NONE = 0,
	AUTHZ_ROLE_AUDITOR,
	AUTHZ_ROLE_USER,
	AUTHZ_ROLE_OPERATOR,
	AUTHZ_ROLE_ADMIN,
};

/* What is acted on; see the header comment for project vs server objects. */
enum authz_object_type {
	AUTHZ_SERVER,
	AUTHZ_PROJECT,
	AUTHZ_PROFILE,
	AUTHZ_INSTANCE,
	AUTHZ_CERTIFICATE,
	AUTHZ_OPERATION,
	AUTHZ_EVENTS,
	AUTHZ_CLUSTER,
	AUTHZ_IMAGE,
	AUTHZ_STORAGE_POOL,
	AUTHZ_STORAGE_VOLUME,
	AUTHZ_NETWORK,
	AUTHZ_RESOURCES,
	AUTHZ_METRICS,
};

/* The object of a request. Strings are borrowed. */
struct authz_object {
	enum authz_object_type type;
	const char *project; /* project objects; NULL: server-level */
	const char *name;    /* NULL: the collection */
};

/* What is done. */
enum authz_action {
	AUTHZ_VIEW,
	AUTHZ_OPERATE,        /* user: instance state, exec, console, files,
				 snapshots */
	AUTHZ_MANAGE,         /* operator: create/edit/delete instances,
				 profiles, images incl. NIC security keys */
	AUTHZ_EDIT_PROJECT,   /* admin of the project: config, rename, delete */
	AUTHZ_CREATE_PROJECT, /* server admin or all_projects admin */
	AUTHZ_SERVER_VIEW,    /* server auditor+: redacted config, members,
				 certificates, resources */
	AUTHZ_SERVER_ADMIN,   /* server config, trust store, cluster,
				 upgrades */
};

/* Decide whether @s may perform @action on @obj (see the table above).
 * Returns 0, CORRAL_ENOTFOUND (the caller cannot see @obj: answer 404) or
 * CORRAL_EFORBIDDEN (answer 403). */
int api_authorize(const struct authz_subject *s,
		  enum authz_action action,
		  const struct authz_object *obj);

/* Whether @s is a server admin: the Unix socket, a PKI-trusted client, or
 * a "client" identity with the server_admin flag or the (server, admin)
 * binding. */
bool authz_is_server_admin(const struct authz_subject *s);

/* The highest role of @s in project @project, counting project,
 * all_projects and server bindings; with @project NULL only server-scope
 * bindings count. AUTHZ_ROLE_ADMIN for server admins, AUTHZ_ROLE_NONE for
 * untrusted callers and for "metrics" and "server" identities. */
enum authz_role authz_role_in(const struct authz_subject *s,
			      const char *project);

/* Whether @s may see project @project (auditor or more in it): the filter
 * for project lists, ?all-projects=true and the events stream. */
bool authz_can_view_project(const struct authz_subject *s, const char *project);

/* The name of @role ("auditor", ...; "none"). Static. */
const char *authz_role_name(enum authz_role role);

/* Parse a role name; AUTHZ_ROLE_NONE for NULL or an unknown name. */
enum authz_role authz_role_parse(const char *name);

/* Guard rail on an instance or profile config map @config (NULL or JSON
 * null: empty) that a request sets, for project @project (reserved: when
 * restricted.* may relax a rail, the handler will pass the project; unused
 * today). Below server admin refuses security.privileged "true", any
 * non-empty raw.*, security.idmap.isolated "false", a non-empty
 * security.idmap.base or security.idmap.size; a non-string value of such a
 * key counts as setting it. Returns 0, CORRAL_EFORBIDDEN with @errmsg
 * (CORRAL_ERRMSG_SIZE bytes) like `setting "raw.lxc" requires the server
 * admin role`, or CORRAL_EINVALID when @config is not an object. */
int authz_check_config_keys(const struct authz_subject *s,
			    const char *project,
			    json_t *config,
			    char *errmsg);

/* As authz_check_config_keys() for a full replacement of @old_config by
 * @new_config (PUT): only keys whose value changes count (absent and ""
 * are the same), and removing or unsetting security.idmap.isolated "true"
 * is refused too. For PATCH pass the merged result as @new_config. */
int authz_check_config_change(const struct authz_subject *s,
			      const char *project,
			      json_t *old_config,
			      json_t *new_config,
			      char *errmsg);

/* Guard rail on a device map @devices (NULL or JSON null: empty): below
 * server admin a "disk" device whose "source" starts with '/' (a host path)
 * is refused: CORRAL_EFORBIDDEN, @errmsg like `device "data": a disk with a
 * host source path requires the server admin role`. CORRAL_EINVALID when
 * @devices is not an object of objects. */
int authz_check_devices(const struct authz_subject *s,
			json_t *devices,
			char *errmsg);

/* As authz_check_devices() for a replacement of @old_devices by
 * @new_devices: a host-path disk is refused only when the device is new or
 * differs from the device of the same name in @old_devices. */
int authz_check_devices_change(const struct authz_subject *s,
			       json_t *old_devices,
			       json_t *new_devices,
			       char *errmsg);

/* Guard rail on a project config change from @old_config to @new_config
 * (NULL or JSON null: empty; pass @old_config NULL when creating): below
 * server admin a change of `restricted` or any `restricted.*` key (added,
 * removed or a new value; absent and "" are the same) is refused:
 * CORRAL_EFORBIDDEN, @errmsg like `changing "restricted.devices.nic" requires
 * the server admin role`. CORRAL_EINVALID when a map is not an object. */
int authz_check_project_keys(const struct authz_subject *s,
			     json_t *old_config,
			     json_t *new_config,
			     char *errmsg);

/* Defaults of a project created by @s: below server admin, "restricted" is
 * set to "true" when @config (an object, borrowed) does not have it. Call
 * after authz_check_project_keys(). Returns 0, -EINVAL when @config is not
 * an object, or -ENOMEM. */
int authz_apply_project_defaults(const struct authz_subject *s, json_t *config);

#endif /* CORRAL_API_AUTHZ_H */
