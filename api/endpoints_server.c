/* GET / and GET /1.0: the server object. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <corral/log.h>
#include <corral/secret.h>
#include <corral/version.h>

#include "api.h"
#include "authz.h"
#include "validate.h"

static void get_root(struct api_req *r)
{
	api_reply_sync(r, 200, json_pack("[s]", "/1.0"), NULL, NULL);
}

/* The LXD API extensions corral honours. Each name is added only when the
 * feature behind it works as LXD's clients expect. */
static json_t *api_extensions(void);

void api_member_info_local(struct api_member_info *info)
{
	static struct api_member_info cached;
	json_t *ext;

	if (cached.schema == 0) {
		struct utsname uts;

		ext = api_extensions();
		cached.api_extensions = (int)json_array_size(ext);
		json_decref(ext);
		snprintf(cached.version, sizeof cached.version, "%s",
			 CORRAL_VERSION);
		snprintf(cached.architecture, sizeof cached.architecture, "%s",
			 uname(&uts) == 0 ? uts.machine : "unknown");
		cached.schema = STATE_SCHEMA_VERSION;
	}
	*info = cached;
}

static json_t *api_extensions(void)
{
	static const char *const names[] = {
		"etag",     /* ETag + If-Match on profiles, projects, config */
		"patch",    /* PATCH on the same */
		"projects", /* /1.0/projects */
		"profile_usedby",     /* used_by on profiles */
		"entity_description", /* description on projects, profiles */
		/* PUT/PATCH /1.0/certificates/{fp} (`lxc config trust
		 * edit`), with ETag and If-Match. */
		"certificate_update",
		/* `restricted` and `projects` on certificates (mapped onto
		 * role bindings). */
		"certificate_project",
		/* A restricted client may replace its own certificate. */
		"certificate_self_renewal",
		/* POST /1.0/certificates {"token": true}: a token operation
		 * redeemed once by an untrusted client. */
		"certificate_token",
		/* core.remote_token_expiry: expiresAt in the token, expired
		 * tokens refused and their operation ended. */
		"remote_token_expiry",
		/* `description` on operations. */
		"operation_description",
		/* `location` and `project` on events. */
		"event_location",
		"event_project",
		"corral_roles", /* roles on certificates, /roles */
		/* /1.0/cluster and /1.0/cluster/members (enable, list, show,
		 * remove). */
		"clustering",
		/* POST /1.0/cluster/members: a join token operation. */
		"clustering_join_token",
		/* PUT /1.0/cluster with cluster_address and a token secret:
		 * the daemon joins. */
		"clustering_join",
	};
	json_t *list = json_array();
	size_t i;

	for (i = 0; list != NULL && i < sizeof names / sizeof names[0]; i++) {
		json_array_append_new(list, json_string(names[i]));
	}
	return list;
}

/* The server object of a trusted caller for project @project. */
static json_t *server_object(struct api *a, const char *project)
{
	struct utsname uts;
	char hostname[256];
	json_t *env;
	json_t *obj;

	if (uname(&uts) != 0) {
		memset(&uts, 0, sizeof uts);
	}
	if (gethostname(hostname, sizeof hostname) != 0) {
		snprintf(hostname, sizeof hostname, "localhost");
	}
	hostname[sizeof hostname - 1] = '\0';
	env = json_pack(
	    "{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:[s], s:s, s:s, s:b, s:s,"
	    " s:[]}",
	    "server", "corral", "server_name", hostname, "server_version",
	    CORRAL_VERSION, "server_pid", (int)getpid(), "kernel", uts.sysname,
	    "kernel_version", uts.release, "kernel_architecture", uts.machine,
	    "architectures", uts.machine, "certificate", a->cert_pem,
	    "certificate_fingerprint", a->fingerprint, "server_clustered",
	    api_clustered(a), "project", project, "addresses");
	if (env == NULL) {
		return NULL;
	}
	if (api_clustered(a)) {
		json_object_set_new(env, "server_name",
				    json_string(a->member_name));
	}
	{
		json_t *addrs = api_listen_addresses(a);
		if (addrs != NULL) {
			json_object_set_new(env, "addresses", addrs);
		}
	}
	obj = json_pack(
	    "{s:o, s:s, s:s, s:s, s:[s], s:b, s:o, s:o}", "api_extensions",
	    api_extensions(), "api_status", "stable", "api_version", "1.0",
	    "auth", "trusted", "auth_methods", "tls", "public", 0, "config",
	    a->config != NULL ? json_deep_copy(a->config) : json_object(),
	    "environment", env);
	return obj;
}

/* ETag of the server config as shown by GET /1.0. */
static void config_etag(struct api *a, char out[65])
{
	json_t *wrap = json_pack("{s:O}", "config",
				 a->config != NULL ? a->config : json_null());

	api_etag(wrap, out);
	json_decref(wrap);
}

static void get_1_0(struct api_req *r)
{
	struct api *a = r->api;
	char etag[65];
	char project[128];
	json_t *obj;
	int rv;

	if (!r->trusted) {
		/* LXD's reduced object: enough for a client to decide to
		 * authenticate, nothing about the host. */
		obj =
		    json_pack("{s:o, s:s, s:s, s:s, s:[s], s:b}",
			      "api_extensions", api_extensions(), "api_status",
			      "stable", "api_version", "1.0", "auth",
			      "untrusted", "auth_methods", "tls", "public", 0);
		if (obj == NULL) {
			api_reply_error(r, 500, "out of memory");
			return;
		}
		api_reply_sync(r, 200, obj, NULL, NULL);
		return;
	}

	rv = api_query(r, "project", project, sizeof project);
	if (rv == -EINVAL) {
		api_reply_error(r, 400, "invalid project parameter");
		return;
	}
	if (r->tls && !api_caller_admin(r)) {
		/* Trusted but not a server admin: the server config is shown
		 * to server-scope viewers only. */
		struct authz_subject subject;
		struct authz_object server = { .type = AUTHZ_SERVER };

		api_subject(r, &subject);
		obj = server_object(
		    a, project[0] != '\0' && rv >= 0 ? project : "default");
		if (obj == NULL) {
			api_reply_error(r, 500, "out of memory");
			return;
		}
		if (api_authorize(&subject, AUTHZ_SERVER_VIEW, &server) != 0) {
			json_object_set_new(obj, "config", json_object());
		}
		api_reply_sync(r, 200, obj, NULL, NULL);
		return;
	}
	if (rv < 0 || project[0] == '\0') {
		/* The common case: serve the cached serialised answer. */
		if (a->root_cache == NULL) {
			obj = server_object(a, "default");
			if (obj == NULL) {
				api_reply_error(r, 500, "out of memory");
				return;
			}
			a->root_cache =
			    api_envelope_sync(obj, 200, &a->root_cache_len);
			json_decref(obj);
			config_etag(a, a->root_etag);
			if (a->root_cache == NULL) {
				api_reply_error(r, 500, "out of memory");
				return;
			}
		}
		api_reply_raw_json(r, a->root_cache, a->root_cache_len,
				   a->root_etag);
		return;
	}
	obj = server_object(a, project);
	if (obj == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	config_etag(a, etag);
	api_reply_sync(r, 200, obj, NULL, etag);
}

/* ------------------------------------------------------------------------ */
/* Server config                                                              */

/* The config as shown to clients: both maps merged, the password hidden. */
static json_t *config_view(json_t *cluster, json_t *local)
{
	json_t *view = json_deep_copy(cluster);

	json_object_update(view, local);
	if (json_object_get(view, "core.trust_password") != NULL) {
		json_object_set_new(view, "core.trust_password",
				    json_string("true"));
	}
	return view;
}

/* The member-local keys are this member's: its raft id is its row in
 * `nodes` (1 for a standalone daemon). */
static int config_load(struct state_tx *tx,
		       struct api *a,
		       json_t **cluster,
		       json_t **local)
{
	int rv;

	rv = state_config_get(tx, cluster);
	if (rv != 0) {
		return rv;
	}
	rv = state_node_config_get(tx, (int64_t)state_node_id(a->state), local);
	if (rv != 0) {
		json_decref(*cluster);
		*cluster = NULL;
	}
	return rv;
}

/* Apply the effects of @config that take effect at once. */
static void config_apply(struct api *a)
{
	const char *v = json_string_value(
	    json_object_get(a->config, "corral.max_body_size"));

	const char *ca = json_string_value(
	    json_object_get(a->config, "core.trust_ca_certificates"));

	a->http.max_body =
	    v != NULL ? (size_t)strtoull(v, NULL, 10) : 8 * 1024 * 1024;
	bool was = a->trust_ca;

	a->trust_ca = ca != NULL && strcmp(ca, "true") == 0;
	{
		const char *lat = json_string_value(
		    json_object_get(a->config, "corral.raft_latency_ms"));
		char errmsg[CORRAL_ERRMSG_SIZE];
		unsigned ms =
		    lat != NULL ? (unsigned)strtoul(lat, NULL, 10) : 20;

		if (state_set_latency(a->state, ms, errmsg) != 0) {
			log_warn("msg=\"record raft latency\" error=\"%s\"",
				 errmsg);
		}
	}
	if (was && !a->trust_ca) {
		api_close_untrusted(a);
	}
}

static void config_set(struct api *a, json_t *view)
{
	json_decref(a->config);
	a->config = view;
	api_invalidate_root(a);
	config_apply(a);
}

/* String @key of @map, "" when unset. */
static const char *local_str(json_t *map, const char *key)
{
	const char *v = json_string_value(json_object_get(map, key));

	return v != NULL ? v : "";
}

/* Build the new stored maps from the request: @patch merges into the
 * current values, PUT replaces them. An empty value unsets a key. */
static int config_update_work(struct state_tx *tx,
			      struct api_db_call *c,
			      bool patch)
{
	json_t *cluster = NULL;
	json_t *local = NULL;
	json_t *view;
	json_t *req = json_object_get(c->in, "config");
	json_t *new_cluster;
	json_t *new_local;
	const char *key;
	json_t *value;
	char etag[65];
	json_t *wrap;
	int rv;

	rv = config_load(tx, c->r->api, &cluster, &local);
	if (rv != 0) {
		return rv;
	}
	view = config_view(cluster, local);
	wrap = json_pack("{s:O}", "config", view);
	api_etag(wrap, etag);
	json_decref(wrap);
	json_decref(view);
	if (c->if_match[0] != '\0' && strcmp(c->if_match, etag) != 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "ETag doesn't match: the server config changed");
		rv = CORRAL_EPRECONDITION;
		goto out;
	}
	new_cluster = patch ? json_deep_copy(cluster) : json_object();
	new_local = patch ? json_deep_copy(local) : json_object();
	json_object_foreach(req, key, value)
	{
		const char *v = json_string_value(value);
		json_t *target =
		    validate_server_key_is_local(key) ? new_local : new_cluster;
		char hash[SECRET_HASH_SIZE];

		if (v == NULL || v[0] == '\0') {
			json_object_del(target, key);
			continue;
		}
		if (strcmp(key, "core.trust_password") == 0) {
			const char *old =
			    json_string_value(json_object_get(cluster, key));
			/* A client that PUTs back what GET showed sends
			 * "true": keep the current password. */
			if (old != NULL && strcmp(v, "true") == 0) {
				json_object_set_new(target, key,
						    json_string(old));
				continue;
			}
			if (secret_hash(v, hash) != 0) {
				corral_errf(tx->errmsg, sizeof tx->errmsg,
					    "hash trust password");
				rv = CORRAL_ETLS;
				break;
			}
			json_object_set_new(target, key, json_string(hash));
			continue;
		}
		json_object_set(target, key, value);
	}
	if (rv == 0 && state_clustered(c->r->api->state) &&
	    strcmp(local_str(local, "cluster.https_address"),
		   local_str(new_local, "cluster.https_address")) != 0) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "Changing cluster.https_address is currently not supported");
		rv = CORRAL_EINVALID;
	}
	if (rv == 0) {
		rv = state_config_replace(tx, new_cluster);
	}
	if (rv == 0) {
		rv = state_node_config_replace(
		    tx, (int64_t)state_node_id(c->r->api->state), new_local);
	}
	if (rv == 0) {
		c->out = config_view(new_cluster, new_local);
	}
	json_decref(new_cluster);
	json_decref(new_local);
out:
	json_decref(cluster);
	json_decref(local);
	return rv;
}

static int config_put_work(struct state_tx *tx, struct api_db_call *c)
{
	return config_update_work(tx, c, false);
}

static int config_patch_work(struct state_tx *tx, struct api_db_call *c)
{
	return config_update_work(tx, c, true);
}

static void listeners_restored_cb(struct api *a,
				  int rv,
				  const char *errmsg,
				  void *arg)
{
	(void)a;
	(void)arg;
	if (rv != 0) {
		log_error(
		    "msg=\"cannot restore the TLS listeners\" "
		    "error=\"%s\"",
		    errmsg);
	}
}

/* Key of the request body under which update_1_0() keeps the listeners as
 * they were before it moved them (api_listeners_snapshot()); absent when it
 * moved none. config_update_work() reads only "config". */
#define LISTENERS_BEFORE "listeners_before"

static void config_update_reply(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;
	json_t *before = json_object_get(c->in, LISTENERS_BEFORE);

	if (rv != 0) {
		/* The listeners moved before the write: move them back, on
		 * the ports they had. */
		if (before != NULL) {
			api_listeners_restore(r->api, before,
					      listeners_restored_cb, NULL);
		}
		snprintf(r->errmsg, sizeof r->errmsg, "%s", c->errmsg);
		api_reply_code(r, rv);
		return;
	}
	config_set(r->api, c->out);
	c->out = NULL;
	log_info("msg=\"server config changed\"");
	api_reply_sync(r, 200, json_object(), NULL, NULL);
}

static void https_moved_cb(struct api *a, int rv, const char *errmsg, void *arg)
{
	struct api_db_call *c = arg;
	struct api_req *r = c->r;

	(void)a;
	if (rv != 0) {
		/* api_listeners_set() put the listeners back: refuse the
		 * change, nothing changed. */
		api_reply_error(r, 400, "%s", errmsg);
		json_decref(c->in);
		free(c);
		return;
	}
	api_db_run(c, true, c->patch ? config_patch_work : config_put_work);
}

static void update_1_0(struct api_req *r, bool patch)
{
	struct api *a = r->api;
	struct api_db_call *c;
	json_t *body = api_body_object(r);
	json_t *config;
	json_t *before;
	const char *addr;
	const char *cluster;
	const char *cluster_now;

	if (body == NULL) {
		return;
	}
	/* Only update_1_0() itself sets this key. */
	json_object_del(body, LISTENERS_BEFORE);
	config = json_object_get(body, "config");
	if (config == NULL || json_is_null(config)) {
		json_object_set_new(body, "config", json_object());
		config = json_object_get(body, "config");
	}
	if (validate_string_map(config, "config", r->errmsg) != 0 ||
	    validate_server_config(config, r->errmsg) != 0) {
		json_decref(body);
		api_reply_error(r, 400, "%s", r->errmsg);
		return;
	}
	/* A member's cluster.https_address is its raft address, which the
	 * other members dial: like LXD, it stays (checked again in the
	 * write transaction). */
	cluster_now = json_string_value(
	    json_object_get(a->config, "cluster.https_address"));
	if (cluster_now == NULL) {
		cluster_now = "";
	}
	/* NULL: a PATCH that keeps it. */
	cluster =
	    json_string_value(json_object_get(config, "cluster.https_address"));
	if (cluster == NULL && !patch) {
		cluster = "";
	}
	if (api_clustered(a) && cluster != NULL &&
	    strcmp(cluster, cluster_now) != 0) {
		json_decref(body);
		api_reply_error(
		    r, 400,
		    "Changing cluster.https_address is currently not supported");
		return;
	}
	c = api_db_call_new(r);
	if (c == NULL) {
		json_decref(body);
		return;
	}
	c->in = body;
	c->reply = config_update_reply;
	c->patch = patch;
	/* Bind a new core.https_address or cluster.https_address before
	 * anything is written, so an address that cannot be used changes
	 * nothing. */
	addr = json_string_value(json_object_get(config, "core.https_address"));
	if (addr == NULL) {
		addr = patch ? a->https_address : "";
	}
	if (strcmp(addr, a->https_address) != 0 ||
	    (cluster != NULL && strcmp(cluster, a->cluster_address) != 0)) {
		before = api_listeners_snapshot(a);
		if (before == NULL ||
		    json_object_set_new(body, LISTENERS_BEFORE, before) != 0) {
			api_reply_error(r, 500, "out of memory");
			json_decref(c->in);
			free(c);
			return;
		}
		api_listeners_set(a, addr, cluster, 0, https_moved_cb, c);
		return;
	}
	api_db_run(c, true, patch ? config_patch_work : config_put_work);
}

static void put_1_0(struct api_req *r)
{
	update_1_0(r, false);
}

static void patch_1_0(struct api_req *r)
{
	update_1_0(r, true);
}

struct reload_ctx {
	struct api *a;
	void (*done)(struct api *a, int rv);
	json_t *view; /* owned */
};

static int reload_work(struct state_tx *tx, void *arg)
{
	struct reload_ctx *ctx = arg;
	json_t *cluster;
	json_t *local;
	int rv;

	rv = config_load(tx, ctx->a, &cluster, &local);
	if (rv != 0) {
		return rv;
	}
	ctx->view = config_view(cluster, local);
	json_decref(cluster);
	json_decref(local);
	return 0;
}

static void reload_done(void *arg, int rv, const char *errmsg)
{
	struct reload_ctx *ctx = arg;

	if (rv == 0) {
		config_set(ctx->a, ctx->view);
		ctx->view = NULL;
	} else {
		log_error("msg=\"load server config\" error=\"%s\"", errmsg);
	}
	ctx->done(ctx->a, rv);
	json_decref(ctx->view);
	free(ctx);
}

void api_config_reload(struct api *a, void (*done)(struct api *a, int rv))
{
	struct reload_ctx *ctx = calloc(1, sizeof *ctx);
	int rv;

	if (ctx == NULL) {
		done(a, -ENOMEM);
		return;
	}
	ctx->a = a;
	ctx->done = done;
	rv = state_submit(a->state, false, reload_work, reload_done, ctx);
	if (rv != 0) {
		free(ctx);
		done(a, rv);
	}
}

const struct api_route api_routes_server[] = {
	{ .path = "/", .get = get_root, .flags = API_ROUTE_EARLY },
	{ .path = "/1.0",
	  .get = get_1_0,
	  .put = put_1_0,
	  .patch = patch_1_0,
	  .flags = API_ROUTE_EARLY },
};

const unsigned api_n_routes_server =
    sizeof api_routes_server / sizeof api_routes_server[0];
