/* GET / and GET /1.0: the server object. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <corral/version.h>

#include "api.h"

static void get_root(struct api_req *r)
{
	api_reply_sync(r, 200, json_pack("[s]", "/1.0"), NULL, NULL);
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
	    "certificate_fingerprint", a->fingerprint, "server_clustered", 0,
	    "project", project, "addresses");
	if (env == NULL) {
		return NULL;
	}
	obj = json_pack("{s:[], s:s, s:s, s:s, s:[s], s:b, s:{}, s:o}",
			"api_extensions", "api_status", "stable", "api_version",
			"1.0", "auth", "trusted", "auth_methods", "tls",
			"public", 0, "config", "environment", env);
	return obj;
}

static void get_1_0(struct api_req *r)
{
	struct api *a = r->api;
	char project[128];
	json_t *obj;
	int rv;

	rv = api_query(r, "project", project, sizeof project);
	if (rv == -EINVAL) {
		api_reply_error(r, 400, "invalid project parameter");
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
			if (a->root_cache == NULL) {
				api_reply_error(r, 500, "out of memory");
				return;
			}
		}
		api_reply_raw_json(r, a->root_cache, a->root_cache_len);
		return;
	}
	obj = server_object(a, project);
	if (obj == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	api_reply_sync(r, 200, obj, NULL, NULL);
}

const struct api_route api_routes_server[] = {
	{ .path = "/", .get = get_root, .flags = API_ROUTE_EARLY },
	{ .path = "/1.0", .get = get_1_0, .flags = API_ROUTE_EARLY },
};

const unsigned api_n_routes_server =
    sizeof api_routes_server / sizeof api_routes_server[0];
