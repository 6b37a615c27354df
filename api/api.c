#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <corral/cert.h>
#include <corral/cluster.h>
#include <corral/log.h>

#include "api.h"
#include "events.h"
#include "operations.h"
#include "authz.h"
#include "pki.h"
#include "policy.h"
#include "tls.h"
#include "trust.h"

/* Marker stored as a connection's user data once it was served as a
 * trusted TLS client, so a revocation knows which connections to close. */
static char conn_trusted_mark;

bool api_conn_was_trusted(const struct http_conn *conn)
{
	return http_conn_data(conn) == &conn_trusted_mark;
}

/* Whether the TLS client with fingerprint @fp and certificate @cert is a
 * trusted client: an O(1) lookup in the in-memory trust store, never a
 * database round trip. In PKI mode a certificate revoked by ca.crl is never
 * trusted, and one signed by server.ca is trusted without being added when
 * core.trust_ca_certificates is true. */
static bool api__trusted(struct api *a, const char *fp, X509 *cert)
{
	const struct trust_identity *id;
	enum pki_verdict v;

	if (fp[0] == '\0') {
		return false;
	}
	v = pki_check(a->pki, cert, fp);
	if (v == PKI_REVOKED) {
		return false;
	}
	id = a->trust != NULL ? trust_cache_lookup(a->trust, fp) : NULL;
	if (id != NULL) {
		return strcmp(id->type, "client") == 0;
	}
	return v == PKI_CHAINED && a->trust_ca;
}

static void close_revoked_cb(struct http_conn *conn, void *arg)
{
	struct api *a = arg;
	const char *fp;

	if (!api_conn_was_trusted(conn) || http_conn_closing(conn)) {
		return;
	}
	fp = tls_conn_fingerprint(conn);
	if (fp == NULL || !api__trusted(a, fp, tls_conn_peer(conn))) {
		log_info(
		    "msg=\"closing connection of revoked certificate\" "
		    "fingerprint=%s",
		    fp != NULL ? fp : "?");
		http_conn_close(conn);
	}
}

void api_close_untrusted(struct api *a)
{
	http_server_foreach(&a->http, close_revoked_cb, a);
}

void api_trust_install(struct api *a, json_t *identities, int64_t generation)
{
	char msg[CORRAL_ERRMSG_SIZE] = "";
	int rv;

	if (a->trust == NULL) {
		rv = trust_cache_create(&a->trust);
		if (rv != 0) {
			log_error(
			    "msg=\"trust store\" error=\"out of memory\"");
			return;
		}
	}
	if (generation <= trust_cache_generation(a->trust)) {
		return;
	}
	rv = trust_cache_replace(a->trust, identities, generation, msg);
	if (rv != 0) {
		log_error("msg=\"load trust store\" error=\"%s\"",
			  msg[0] != '\0' ? msg : corral_strerror(rv));
		return;
	}
	/* Cached list answers (GET /1.0/certificates) show the store. */
	a->write_gen++;
	api_cluster_trust_installed(a, identities);
	http_server_foreach(&a->http, close_revoked_cb, a);
}

/* Every route table of the API, searched in order. */
static const struct {
	const struct api_route *routes;
	const unsigned *n;
} route_tables[] = {
	{ api_routes_server, &api_n_routes_server },
	{ api_routes_projects, &api_n_routes_projects },
	{ api_routes_profiles, &api_n_routes_profiles },
	{ api_routes_roles, &api_n_routes_roles },
	{ api_routes_operations, &api_n_routes_operations },
	{ api_routes_certificates, &api_n_routes_certificates },
	{ api_routes_cluster, &api_n_routes_cluster },
};

unsigned api_route_table_count(void)
{
	return sizeof route_tables / sizeof route_tables[0];
}

const struct api_route *api_route_table(unsigned i, unsigned *n)
{
	*n = *route_tables[i].n;
	return route_tables[i].routes;
}

static const char *method_names[] = { "GET", "PUT", "POST", "PATCH", "DELETE" };

static api_handler route_handler(const struct api_route *route,
				 enum http_method method)
{
	switch (method) {
	case HTTP_GET:
	case HTTP_HEAD:
		return route->get;
	case HTTP_PUT:
		return route->put;
	case HTTP_POST:
		return route->post;
	case HTTP_PATCH:
		return route->patch;
	case HTTP_DELETE:
		return route->del;
	default:
		return NULL;
	}
}

static void reply_not_allowed(struct api_req *r)
{
	const struct api_route *route = r->route;
	api_handler handlers[5] = { route->get, route->put, route->post,
				    route->patch, route->del };
	char allow[128] = "Allow: ";
	size_t len = strlen(allow);
	bool first = true;
	unsigned i;

	for (i = 0; i < 5; i++) {
		if (handlers[i] == NULL) {
			continue;
		}
		len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s",
					first ? "" : ", ", method_names[i]);
		first = false;
	}
	snprintf(allow + len, sizeof allow - len, "\r\n");
	api__reply_error_headers(r, 405, allow, "method not allowed");
}

char *api_request_target(const struct api_req *r)
{
	const char *q = r->http->query;
	size_t size = strlen(r->http->path) + strlen(q) + 2;
	char *out = malloc(size);

	if (out != NULL) {
		snprintf(out, size, "%s%s%s", r->http->path,
			 q[0] != '\0' ? "?" : "", q);
	}
	return out;
}

/* --- ?target forwarding (issue 7) --- */
/* The forwarded caller's certificate from API_FWD_CERTIFICATE, when present,
 * well formed and hashing to @fp; NULL otherwise (trust then goes by
 * fingerprint alone). Owned by the caller. */
static X509 *api__forwarded_cert(struct api_req *r, const char *fp)
{
	const char *b64 = http_request_header(r->http, API_FWD_CERTIFICATE);
	unsigned char der[API_FWD_CERTIFICATE_MAX];
	const unsigned char *p = der;
	char got[65];
	size_t len;
	X509 *cert;
	int n;

	if (b64 == NULL || fp[0] == '\0') {
		return NULL;
	}
	len = strlen(b64);
	if (len == 0 || len > API_FWD_CERTIFICATE_MAX || len % 4 != 0) {
		return NULL;
	}
	n = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)len);
	if (n <= 0) {
		return NULL;
	}
	/* EVP_DecodeBlock() counts padding as zero bytes. */
	if (b64[len - 1] == '=') {
		n--;
	}
	if (b64[len - 2] == '=') {
		n--;
	}
	cert = d2i_X509(NULL, &p, n);
	if (cert == NULL || p != der + n ||
	    cert_fingerprint_x509(cert, got) != 0 || strcmp(got, fp) != 0) {
		X509_free(cert);
		ERR_clear_error();
		return NULL;
	}
	return cert;
}

/* A request a member forwarded (?target=): take the original caller's
 * identity from the API_FWD_* headers, only when the TLS caller is a
 * member; trust is decided again here for that caller (never for the
 * member certificate). Headers from anyone else are ignored. */
static void api__forwarded_identity(struct api *a, struct api_req *r)
{
	const char *proto = http_request_header(r->http, API_FWD_PROTOCOL);
	const char *fp = http_request_header(r->http, API_FWD_FINGERPRINT);
	const char *addr = http_request_header(r->http, API_FWD_ADDRESS);

	if (proto == NULL || !r->tls || !api_cluster_from_member(r)) {
		return;
	}
	r->peer_x509 = NULL;
	if (strcmp(proto, "unix") == 0) {
		r->tls = false;
		r->trusted = true;
		r->fingerprint[0] = '\0';
	} else {
		X509 *cert;

		r->tls = true;
		snprintf(r->fingerprint, sizeof r->fingerprint, "%s",
			 fp != NULL && strlen(fp) == 64 ? fp : "");
		cert = api__forwarded_cert(r, r->fingerprint);
		r->trusted = api__trusted(a, r->fingerprint, cert);
		X509_free(cert);
	}
	r->forwarded = true;
	snprintf(r->remote_addr, sizeof r->remote_addr, "%s",
		 addr != NULL ? addr : "?");
}
/* --- end ?target forwarding --- */

/* Who is calling: the Unix socket is a trusted admin; a TLS client is
 * identified by its certificate's fingerprint. */
static void api__authenticate(struct api *a,
			      struct http_conn *conn,
			      struct api_req *r)
{
	const char *fp;
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	r->tls = http_conn_transport_data(conn) != NULL;
	r->fingerprint[0] = '\0';
	r->peer_x509 = NULL;
	r->forwarded = false;
	if (!r->tls) {
		r->trusted = true;
		snprintf(r->remote_addr, sizeof r->remote_addr, "@");
		return;
	}
	fp = tls_conn_fingerprint(conn);
	if (fp != NULL) {
		snprintf(r->fingerprint, sizeof r->fingerprint, "%s", fp);
		r->peer_x509 = tls_conn_peer(conn);
	}
	r->trusted = api__trusted(a, r->fingerprint, r->peer_x509);
	if (r->trusted) {
		http_conn_set_data(conn, &conn_trusted_mark);
	}
	if (uv_tcp_getpeername((uv_tcp_t *)http_conn_stream(conn),
			       (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			uv_ip4_name(in, host, sizeof host);
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(in6, host, sizeof host);
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(r->remote_addr, sizeof r->remote_addr, "%s:%u", host, port);
	api__forwarded_identity(a, r);
}

bool api_conn_subject(struct api *a,
		      struct http_conn *conn,
		      struct authz_subject *s)
{
	const char *fp;

	memset(s, 0, sizeof *s);
	if (http_conn_transport_data(conn) == NULL) {
		s->unix_socket = true;
		return true;
	}
	fp = tls_conn_fingerprint(conn);
	if (fp == NULL || !api__trusted(a, fp, tls_conn_peer(conn))) {
		return false;
	}
	s->identity =
	    a->trust != NULL ? trust_cache_lookup(a->trust, fp) : NULL;
	s->pki_admin = s->identity == NULL;
	return true;
}

void api_subject(const struct api_req *r, struct authz_subject *s)
{
	memset(s, 0, sizeof *s);
	if (!r->tls) {
		s->unix_socket = true;
		return;
	}
	if (!r->trusted) {
		return;
	}
	s->identity = r->api->trust != NULL
			  ? trust_cache_lookup(r->api->trust, r->fingerprint)
			  : NULL;
	/* Trusted without being in the store: signed by server.ca with
	 * core.trust_ca_certificates on, which LXD treats as an admin. */
	s->pki_admin = s->identity == NULL;
}

bool api_caller_admin(const struct api_req *r)
{
	struct authz_subject s;

	api_subject(r, &s);
	return authz_is_server_admin(&s);
}

/* Record a refusal: a log line and a lifecycle event naming the caller. */
static void api__denied(struct api_req *r, unsigned status)
{
	json_t *meta;

	log_info(
	    "msg=\"request denied\" status=%u method=%s path=%s "
	    "fingerprint=%s protocol=%s address=%s",
	    status, http_method_str(r->http->method), r->http->path,
	    r->fingerprint[0] != '\0' ? r->fingerprint : "-",
	    r->tls ? "tls" : "unix", r->remote_addr);
	meta = json_pack(
	    "{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:i}}", "action",
	    "authorization-denied", "source", r->http->path, "requestor",
	    "username", r->fingerprint, "protocol", r->tls ? "tls" : "unix",
	    "address", r->remote_addr, "context", "method",
	    http_method_str(r->http->method), "status", (int)status);
	if (meta != NULL) {
		events_send(r->api, "lifecycle", "", meta);
		json_decref(meta);
	}
}

/* Apply the route's policy: untrusted callers reach only the open routes,
 * then api_authorize() decides (404 for what the caller may not see, 403
 * for what it may not do). Answers and returns false when refused. */
static bool api__authorized(struct api_req *r)
{
	const struct policy_route *pr;
	struct policy_rule rule;
	struct authz_subject subject;
	struct authz_object obj = { 0 };
	char project[128] = "default";
	int rv;

	rule = policy_lookup(r->route->path, r->http->method, &pr);
	if (rule.kind == POLICY_UNSET) {
		/* Fail closed; tests/unit/test_policy.c keeps this away. */
		log_error("msg=\"no authorization rule\" path=%s",
			  r->route->path);
		api__denied(r, 403);
		api_reply_error(r, 403, "not authorized");
		return false;
	}
	if (rule.kind == POLICY_PUBLIC) {
		return true;
	}
	if (rule.kind == POLICY_MEMBER || rule.kind == POLICY_JOIN) {
		return api_cluster_authorize(r, rule.kind == POLICY_JOIN);
	}
	if (!r->trusted) {
		api__denied(r, 403);
		api_reply_error(r, 403, "not authorized");
		return false;
	}
	if (rule.kind == POLICY_TRUSTED) {
		return true;
	}
	obj.type = pr->object;
	obj.name = r->match.n_params > 0 ? r->match.params[0] : NULL;
	switch (pr->project) {
	case POLICY_PROJECT_QUERY:
		rv = api_query(r, "project", project, sizeof project);
		if (rv == -EINVAL || (rv >= 0 && project[0] == '\0')) {
			snprintf(project, sizeof project, "default");
		}
		obj.project = project;
		break;
	case POLICY_PROJECT_PARAM:
		obj.project = obj.name;
		break;
	case POLICY_PROJECT_NONE:
		obj.project = NULL;
		break;
	}
	api_subject(r, &subject);
	rv = api_authorize(&subject, rule.action, &obj);
	if (rv == CORRAL_ENOTFOUND) {
		api__denied(r, 404);
		api_reply_error(r, 404, "not found");
		return false;
	}
	if (rv != 0) {
		api__denied(r, 403);
		api_reply_error(r, 403, "not authorized");
		return false;
	}
	return true;
}

static void api_on_request(struct http_conn *conn, struct http_request *http)
{
	struct api *a = http_conn_server(conn)->data;
	struct api_req *r;
	unsigned t;
	unsigned i;
	int rv = -ENOENT;
	api_handler handler;

	r = malloc(sizeof *r);
	if (r == NULL) {
		static const char oom[] =
		    "{\"type\":\"error\",\"error\":\"out of memory\","
		    "\"error_code\":500,\"metadata\":null}";
		http_conn_respond(conn, 500, NULL, NULL, oom, sizeof oom - 1,
				  true);
		return;
	}
	r->api = a;
	r->conn = conn;
	r->http = http;
	r->route = NULL;
	r->errmsg[0] = '\0';
	r->unacked_set = false;
	r->unacked = NULL;
	api__authenticate(a, conn, r);
	http_conn_ref(conn);

	for (t = 0; t < sizeof route_tables / sizeof route_tables[0]; t++) {
		for (i = 0; i < *route_tables[t].n; i++) {
			const struct api_route *route =
			    &route_tables[t].routes[i];
			rv = router_match(route->path, http->path, &r->match);
			if (rv != -ENOENT) {
				r->route = route;
				goto matched;
			}
		}
	}
matched:
	if (rv == -EINVAL) {
		api_reply_error(r, 400, "invalid path encoding");
		return;
	}
	if (r->route == NULL) {
		api_reply_error(r, 404, "not found");
		return;
	}
	handler = route_handler(r->route, http->method);
	if (handler == NULL) {
		reply_not_allowed(r);
		return;
	}
	/* Bounded staleness (propagation.c): a member out of contact with a
	 * quorum refuses TLS clients but GET / and GET /1.0. */
	if (api_prop_refuse(r)) {
		return;
	}
	if (!api__authorized(r)) {
		return;
	}
	/* ?target=MEMBER: that member answers (endpoints_cluster.c). */
	if (api_cluster_forward(r)) {
		return;
	}
	/* Before the database is up only the early GETs are served. */
	if (!a->ready && !(r->route->flags & API_ROUTE_BEFORE_READY) &&
	    !((r->route->flags & API_ROUTE_EARLY) &&
	      (http->method == HTTP_GET || http->method == HTTP_HEAD))) {
		api_reply_not_ready(r);
		return;
	}
	handler(r);
}

/* Every operation state change becomes an "operation" event. */
static void api_op_notify_cb(struct api_op *op, void *arg)
{
	struct api *a = arg;
	json_t *obj = ops_to_json(op);

	if (obj == NULL) {
		log_warn("msg=\"operation event dropped: out of memory\"");
		return;
	}
	events_send(a, "operation", op->project, obj);
	json_decref(obj);
}

int api_create(uv_loop_t *loop,
	       const struct api_config *cfg,
	       struct api **out,
	       char *errmsg)
{
	struct api *a;
	int rv;

	a = calloc(1, sizeof *a);
	if (a == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "api: out of memory");
		return -ENOMEM;
	}
	a->loop = loop;
	a->state_dir = strdup(cfg->state_dir);
	a->socket_path = strdup(cfg->socket_path);
	a->cert_pem = strdup(cfg->cert_pem);
	if (a->state_dir == NULL || a->socket_path == NULL ||
	    a->cert_pem == NULL ||
	    ops_create(loop, api_op_notify_cb, a, &a->ops) != 0 ||
	    events_create(loop, &a->events) != 0) {
		api_destroy(a);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "api: out of memory");
		return -ENOMEM;
	}
	snprintf(a->fingerprint, sizeof a->fingerprint, "%s",
		 cfg->cert_fingerprint);
	a->state = cfg->state;
	a->cluster = cfg->cluster;
	snprintf(a->member_name, sizeof a->member_name, "none");
	/* A member presents the cluster certificate. */
	if (a->cluster != NULL && cluster_enabled(a->cluster)) {
		char *pem = NULL;

		if (cert_read_file(cluster_listener_crt(a->cluster), &pem,
				   NULL) == 0) {
			free(a->cert_pem);
			a->cert_pem = pem;
			snprintf(a->fingerprint, sizeof a->fingerprint, "%s",
				 cluster_fingerprint(a->cluster));
		}
	}
	a->socket_gid = cfg->socket_gid;
	a->have_gid = cfg->have_gid;
	a->started_ns = uv_hrtime();
	snprintf(a->not_ready_reason, sizeof a->not_ready_reason, "starting");
	http_server_init(&a->http, loop, api_on_request);
	a->http.data = a;
	a->https.data = a;
	a->cluster_https.data = a;
	rv = pki_load(cfg->state_dir, &a->pki, errmsg);
	if (rv != 0) {
		corral_errwrapf(errmsg, CORRAL_ERRMSG_SIZE, "PKI mode");
		api_destroy(a);
		return rv;
	}
	if (cfg->max_body != 0) {
		a->http.max_body = cfg->max_body;
	}
	/* Last: from here on only api_close() releases it. */
	uv_timer_init(loop, &a->ready_timer);
	a->ready_timer.data = a;
	a->ready_timer_init = true;
	*out = a;
	return 0;
}

static void unix_connection_cb(uv_stream_t *listener, int status)
{
	struct api *a = listener->data;
	int rv;

	if (status != 0) {
		log_warn("msg=\"accept failed\" error=\"%s\"",
			 uv_strerror(status));
		return;
	}
	rv = http_server_accept(&a->http, listener, NULL, NULL);
	if (rv != 0) {
		log_warn("msg=\"accept failed\" error=\"%s\"", uv_strerror(rv));
	}
}

/* Remove a socket file left by a crashed run; refuse if a daemon answers on
 * it. */
static int clear_stale_socket(const char *path, char *errmsg)
{
	struct sockaddr_un sun;
	int fd;
	int rv;

	if (access(path, F_OK) != 0) {
		return 0;
	}
	if (strlen(path) >= sizeof sun.sun_path) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "socket(): %s",
			    strerror(errno));
		return rv;
	}
	rv = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	if (rv == 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "another corrald is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "unlink(%s): %s", path,
			    strerror(errno));
		return rv;
	}
	log_info("msg=\"removed stale socket\" path=%s", path);
	return 0;
}

static void api_listen_early(struct api *a);

int api_start(struct api *a, char *errmsg)
{
	mode_t old_mask;
	int rv;

	rv = clear_stale_socket(a->socket_path, errmsg);
	if (rv != 0) {
		return rv;
	}
	rv = uv_pipe_init(a->loop, &a->unix_listener, 0);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "uv_pipe_init(): %s",
			    uv_strerror(rv));
		return rv;
	}
	a->unix_listener.data = a;
	a->unix_listening = true;
	/* Never let the socket exist with looser permissions than 0660. */
	old_mask = umask(0117);
	rv = uv_pipe_bind(&a->unix_listener, a->socket_path);
	umask(old_mask);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "bind unix socket %s: %s", a->socket_path,
			    uv_strerror(rv));
		return rv;
	}
	if (chown(a->socket_path, 0, a->have_gid ? a->socket_gid : 0) != 0 ||
	    chmod(a->socket_path, 0660) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "set owner and mode of %s: %s", a->socket_path,
			    strerror(errno));
		return rv;
	}
	rv = uv_listen((uv_stream_t *)&a->unix_listener, 128,
		       unix_connection_cb);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "listen on %s: %s",
			    a->socket_path, uv_strerror(rv));
		return rv;
	}
	log_info("msg=\"listening\" socket=%s", a->socket_path);
	api_listen_early(a);
	return 0;
}

static void early_https_cb(struct api *a, int rv, const char *errmsg, void *arg)
{
	(void)a;
	(void)arg;
	if (rv != 0) {
		log_error("msg=\"cluster listener not started\" error=\"%s\"",
			  errmsg);
	}
}

/* A member that starts (again) listens on its cluster address before its
 * database is up: raft streams reach its node through that listener, and
 * when every member starts at once (a power cut), no database comes up
 * before some members listen. Until ready, the listener serves raft
 * (POST /internal/raft, checked against cluster.members), GET / and
 * GET /1.0; everything else gets 503. The config, once loaded, decides the
 * listeners from then on (state_ready_config_cb()). */
static void api_listen_early(struct api *a)
{
	char address[256];

	if (!api_clustered(a) ||
	    !state_stored_cluster_address(a->state, address, sizeof address)) {
		return;
	}
	api_listeners_set(a, NULL, address, 0, early_https_cb, NULL);
}

void api_reply_not_ready(struct api_req *r)
{
	struct api *a = r->api;
	char waiting[512] = "";

	/* A member waiting for a quorum says which members it cannot
	 * reach. */
	if (a->state != NULL) {
		state_start_waiting(a->state, waiting, sizeof waiting);
	}
	api_reply_error(r, 503, "corrald setup in progress: %s%s%s",
			a->not_ready_reason, waiting[0] != '\0' ? ": " : "",
			waiting);
}

void api_set_ready(struct api *a, bool ready, const char *reason)
{
	a->ready = ready;
	snprintf(a->not_ready_reason, sizeof a->not_ready_reason, "%s",
		 reason != NULL ? reason : "");
}

static void ready_https_cb(struct api *a, int rv, const char *errmsg, void *arg)
{
	(void)arg;
	if (rv != 0) {
		/* The daemon keeps serving its Unix socket; the admin can fix
		 * the address there. */
		log_error("msg=\"TLS listener not started\" error=\"%s\"",
			  errmsg);
	}
	(void)a;
}

/* Pause before a failed start load is run again. */
#define API_READY_RETRY_MS 200

static void ready_retry_cb(uv_timer_t *timer)
{
	api_state_ready(timer->data);
}

/* A start load failed (the leader lost or being elected): the member stays
 * not ready, with @reason, and tries again shortly. */
static void ready_retry(struct api *a, const char *reason)
{
	api_set_ready(a, false, reason);
	if (a->ready_timer_init && !a->listeners_closed) {
		uv_timer_start(&a->ready_timer, ready_retry_cb,
			       API_READY_RETRY_MS, 0);
	}
}

static void tokens_pruned_cb(struct api *a)
{
	api_set_ready(a, true, NULL);
	log_info("msg=\"ready\" ms=%llu",
		 (unsigned long long)((uv_hrtime() - a->started_ns) / 1000000));
}

static void state_ready_config_cb(struct api *a, int rv)
{
	const char *addr;

	if (rv != 0) {
		ready_retry(a, "cannot load the server config");
		return;
	}
	/* One at a time, so that one address failing to bind does not keep
	 * the other listener down. */
	addr =
	    json_string_value(json_object_get(a->config, "core.https_address"));
	if (addr != NULL && addr[0] != '\0') {
		api_listeners_set(a, addr, "", 0, ready_https_cb, NULL);
	}
	addr = json_string_value(
	    json_object_get(a->config, "cluster.https_address"));
	if (addr != NULL && addr[0] != '\0') {
		api_listeners_set(a, NULL, addr, 0, ready_https_cb, NULL);
	}
	api_cluster_ready(a, a->ready_name);
	/* Operations live in memory: the tokens of the previous run lost
	 * theirs, so they go too (endpoints_operations.c), before any of
	 * them could be redeemed here. */
	api_set_ready(a, false, "deleting the tokens of the previous run");
	api_tokens_prune(a, tokens_pruned_cb);
}

struct ready_trust {
	struct api *a;
	json_t *identities; /* owned */
	int64_t generation;
	char name[64];
};

static int ready_trust_work(struct state_tx *tx, void *arg)
{
	struct ready_trust *t = arg;

	int rv;

	rv = state_trust_snapshot(tx, &t->identities, &t->generation);
	if (rv != 0) {
		return rv;
	}
	/* The member name in the same read: no request is answered with a
	 * placeholder name after a restart. */
	return api_cluster_name_read(tx, t->a, t->name, sizeof t->name);
}

static void ready_trust_done(void *arg, int rv, const char *errmsg)
{
	struct ready_trust *t = arg;
	struct api *a = t->a;

	if (rv != 0) {
		log_error("msg=\"load trust store\" error=\"%s\"", errmsg);
		ready_retry(a, "cannot load the trust store");
	} else {
		api_trust_install(a, t->identities, t->generation);
		snprintf(a->ready_name, sizeof a->ready_name, "%s", t->name);
		api_set_ready(a, false, "loading server config");
		api_config_reload(a, state_ready_config_cb);
	}
	json_decref(t->identities);
	free(t);
}

void api_state_ready(struct api *a)
{
	struct ready_trust *t = calloc(1, sizeof *t);

	/* The trust store first: no TLS client is served before it is in
	 * memory, and the TLS listener starts only after the config. */
	api_set_ready(a, false, "loading the trust store");
	if (t != NULL) {
		t->a = a;
	}
	if (t == NULL || state_submit(a->state, false, ready_trust_work,
				      ready_trust_done, t) != 0) {
		free(t);
		log_error("msg=\"load trust store\" error=\"cannot queue\"");
		ready_retry(a, "cannot load the trust store");
	}
}

void api_invalidate_root(struct api *a)
{
	free(a->root_cache);
	a->root_cache = NULL;
	a->root_cache_len = 0;
}

static void api_maybe_closed(struct api *a)
{
	if (a->closing_handles > 0 || a->http.n_conns > 0) {
		return;
	}
	if (a->close_cb != NULL) {
		void (*cb)(void *) = a->close_cb;
		a->close_cb = NULL;
		cb(a->close_arg);
	}
}

static void listener_closed_cb(uv_handle_t *h)
{
	struct api *a = h->data;

	a->closing_handles--;
	api_maybe_closed(a);
}

static void sub_closed_cb(void *arg)
{
	struct api *a = arg;

	a->closing_handles--;
	api_maybe_closed(a);
}

static void timer_closed_cb(uv_handle_t *h)
{
	sub_closed_cb(h->data);
}

static void conn_closed_cb(struct http_conn *conn)
{
	struct api *a = http_conn_server(conn)->data;

	if (a->close_cb != NULL) {
		api_maybe_closed(a);
	}
}

static void https_closed_cb(struct https_listener *l)
{
	struct api *a = l->data;

	a->closing_handles--;
	api_maybe_closed(a);
}

/* ------------------------------------------------------------------------ */
/* TLS listeners                                                              */

/* What the listeners serve: the configured addresses, and what to bind for
 * them (the configured address, or the bound one when a listener is put
 * back on the port it had). */
struct listeners_want {
	char core[256];      /* core.https_address, "" when off */
	char core_bind[256]; /* "" when not listening */
	char cluster[256];   /* cluster.https_address, "" when unset */
	char slot[256];      /* what the cluster listener is for: @cluster,
			      * or "" when the core listener covers it */
	char slot_bind[256]; /* "" when not listening */
};

/* One change of the listeners: api_listeners_set() or a restore. */
struct api_listeners_op {
	struct api *a;
	struct listeners_want want;
	bool keep_core;    /* core NULL: the current one when the op begins */
	bool keep_cluster; /* likewise */
	bool exact;        /* want is complete (a restore): bind as it says */
	bool force_core;   /* stop and start again even when unchanged */
	bool force_slot;
	bool core_changes; /* decided when the op begins */
	bool slot_changes;
	struct listeners_want before; /* what ran when the op began */
	unsigned stops; /* stops in flight, plus one while issuing them */
	/* The failure a rollback reports once done. */
	int fail_rv;
	char fail_errmsg[CORRAL_ERRMSG_SIZE];
	api_https_cb cb;
	void *arg;
	struct api_listeners_op *next; /* in api->listeners_queue */
};

static void listeners_begin(struct api_listeners_op *op);

/* The address @l is bound to into @out, "" when it is not listening. */
static void bound_address(struct https_listener *l, char *out, size_t size)
{
	if (!https_listener_active(l) ||
	    https_listener_address(l, out, size) != 0) {
		out[0] = '\0';
	}
}

/* What runs now, with the bound addresses. */
static void listeners_current(struct api *a, struct listeners_want *w)
{
	snprintf(w->core, sizeof w->core, "%s", a->https_address);
	bound_address(&a->https, w->core_bind, sizeof w->core_bind);
	if (w->core_bind[0] == '\0') {
		w->core[0] = '\0';
	}
	snprintf(w->cluster, sizeof w->cluster, "%s", a->cluster_address);
	snprintf(w->slot, sizeof w->slot, "%s", a->cluster_https_address);
	bound_address(&a->cluster_https, w->slot_bind, sizeof w->slot_bind);
	if (w->slot_bind[0] == '\0') {
		w->slot[0] = '\0';
	}
}

/* The TLS context both listeners share: members present the cluster
 * certificate, a standalone daemon its own. */
static int listeners_ctx(struct api *a, char *errmsg)
{
	char crt[4200];
	char key[4200];

	if (a->tls_ctx != NULL) {
		return 0;
	}
	if (a->cluster != NULL) {
		snprintf(crt, sizeof crt, "%s",
			 cluster_listener_crt(a->cluster));
		snprintf(key, sizeof key, "%s",
			 cluster_listener_key(a->cluster));
	} else {
		snprintf(crt, sizeof crt, "%s/server.crt", a->state_dir);
		snprintf(key, sizeof key, "%s/server.key", a->state_dir);
	}
	return tls_server_ctx_create(crt, key, &a->tls_ctx, errmsg);
}

/* End @op: report to its caller (a rollback reports the failure it undid),
 * then run the next queued change. */
static void listeners_finish(struct api_listeners_op *op,
			     int rv,
			     const char *errmsg)
{
	struct api *a = op->a;
	struct api_listeners_op *next;

	if (op->fail_rv != 0) {
		if (rv != 0) {
			log_error(
			    "msg=\"cannot restore the TLS listeners\" "
			    "error=\"%s\"",
			    errmsg);
		}
		rv = op->fail_rv;
		errmsg = op->fail_errmsg;
	}
	if (op->cb != NULL) {
		op->cb(a, rv, errmsg, op->arg);
	}
	a->listeners_op = NULL;
	next = a->listeners_queue;
	if (next != NULL) {
		a->listeners_queue = next->next;
		next->next = NULL;
	}
	free(op);
	if (next != NULL) {
		listeners_begin(next);
	} else if (a->listeners_close_wait) {
		a->listeners_close_wait = false;
		a->closing_handles--;
		api_maybe_closed(a);
	}
}

/* A bind failed: put back what ran before @op began, on the same ports,
 * then report @rv. A failed rollback keeps what it could. */
static void listeners_failed(struct api_listeners_op *op,
			     int rv,
			     const char *key,
			     const char *errmsg)
{
	struct api *a = op->a;
	struct listeners_want *w = &op->want;
	char msg[CORRAL_ERRMSG_SIZE];

	snprintf(msg, sizeof msg, "%s: %s", key, errmsg);
	if (op->exact) {
		snprintf(a->https_address, sizeof a->https_address, "%s",
			 https_listener_active(&a->https) ? w->core : "");
		snprintf(a->cluster_address, sizeof a->cluster_address, "%s",
			 w->cluster);
		snprintf(
		    a->cluster_https_address, sizeof a->cluster_https_address,
		    "%s",
		    https_listener_active(&a->cluster_https) ? w->slot : "");
		api_invalidate_root(a);
		listeners_finish(op, rv, msg);
		return;
	}
	log_warn("msg=\"cannot listen\" error=\"%s\"", msg);
	op->fail_rv = rv;
	snprintf(op->fail_errmsg, sizeof op->fail_errmsg, "%s", msg);
	op->want = op->before;
	op->exact = true;
	op->keep_core = false;
	op->keep_cluster = false;
	op->force_core = op->core_changes;
	op->force_slot = op->slot_changes;
	listeners_begin(op);
}

/* Every listener @op changes is stopped: bind the new ones, the core one
 * first. */
static void listeners_start(struct api_listeners_op *op)
{
	struct api *a = op->a;
	struct listeners_want *w = &op->want;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char bound[128];
	const char *key = "core.https_address";
	int rv = 0;

	if (a->listeners_closed) {
		listeners_finish(op, -ECANCELED, "shutting down");
		return;
	}
	if ((op->core_changes && w->core_bind[0] != '\0') ||
	    (op->slot_changes && w->slot_bind[0] != '\0')) {
		rv = listeners_ctx(a, errmsg);
	}
	if (rv == 0 && op->core_changes && w->core_bind[0] != '\0') {
		rv = https_listener_start(&a->https, a->loop, &a->http,
					  a->tls_ctx, w->core_bind, errmsg);
	}
	if (rv == 0 && op->slot_changes && w->slot_bind[0] != '\0') {
		key = "cluster.https_address";
		bound_address(&a->https, bound, sizeof bound);
		if (!op->exact && https_address_covers(bound, w->slot)) {
			/* The new core listener serves it. */
			w->slot[0] = '\0';
			w->slot_bind[0] = '\0';
		} else {
			rv = https_listener_start(&a->cluster_https, a->loop,
						  &a->http, a->tls_ctx,
						  w->slot_bind, errmsg);
		}
	}
	if (rv != 0) {
		listeners_failed(op, rv, key, errmsg);
		return;
	}
	snprintf(a->https_address, sizeof a->https_address, "%s", w->core);
	snprintf(a->cluster_address, sizeof a->cluster_address, "%s",
		 w->cluster);
	snprintf(a->cluster_https_address, sizeof a->cluster_https_address,
		 "%s", w->slot);
	if (op->core_changes && w->core_bind[0] != '\0') {
		bound_address(&a->https, bound, sizeof bound);
		log_info("msg=\"listening\" https=%s", bound);
	}
	if (op->slot_changes && w->slot_bind[0] != '\0') {
		bound_address(&a->cluster_https, bound, sizeof bound);
		log_info("msg=\"listening\" cluster_https=%s", bound);
	}
	api_invalidate_root(a);
	listeners_finish(op, 0, "");
}

static void listeners_stopped(struct api_listeners_op *op)
{
	if (--op->stops == 0) {
		listeners_start(op);
	}
}

static void listeners_stopped_cb(struct https_listener *l)
{
	struct api_listeners_op *op = l->data2;

	l->data2 = NULL;
	listeners_stopped(op);
}

/* Decide what @op changes, stop those listeners, then bind. */
static void listeners_begin(struct api_listeners_op *op)
{
	struct api *a = op->a;
	struct listeners_want *w = &op->want;

	a->listeners_op = op;
	if (a->listeners_closed) {
		listeners_finish(op, -ECANCELED, "shutting down");
		return;
	}
	listeners_current(a, &op->before);
	if (op->keep_core) {
		snprintf(w->core, sizeof w->core, "%s", a->https_address);
	}
	if (op->keep_cluster) {
		snprintf(w->cluster, sizeof w->cluster, "%s",
			 a->cluster_address);
	}
	if (!op->exact) {
		/* A restart keeps the port a listener has (port 0). */
		snprintf(w->core_bind, sizeof w->core_bind, "%s",
			 op->force_core &&
				 strcmp(w->core, a->https_address) == 0 &&
				 op->before.core_bind[0] != '\0'
			     ? op->before.core_bind
			     : w->core);
	}
	op->core_changes =
	    op->force_core || strcmp(w->core, a->https_address) != 0 ||
	    (w->core_bind[0] != '\0') != https_listener_active(&a->https);
	if (!op->exact) {
		const char *slot = w->cluster;

		/* No second listener where the core one serves already. */
		if (https_address_covers(w->core, slot) ||
		    (!op->core_changes &&
		     https_address_covers(op->before.core_bind, slot))) {
			slot = "";
		}
		snprintf(w->slot, sizeof w->slot, "%s", slot);
		snprintf(w->slot_bind, sizeof w->slot_bind, "%s",
			 op->force_slot &&
				 strcmp(slot, a->cluster_https_address) == 0 &&
				 op->before.slot_bind[0] != '\0'
			     ? op->before.slot_bind
			     : slot);
	}
	op->slot_changes = op->force_slot ||
			   strcmp(w->slot, a->cluster_https_address) != 0 ||
			   (w->slot_bind[0] != '\0') !=
			       https_listener_active(&a->cluster_https);
	op->stops = 1;
	if (op->core_changes) {
		op->stops++;
		a->https.data2 = op;
		https_listener_stop(&a->https, listeners_stopped_cb);
	}
	if (op->slot_changes) {
		op->stops++;
		a->cluster_https.data2 = op;
		https_listener_stop(&a->cluster_https, listeners_stopped_cb);
	}
	listeners_stopped(op);
}

/* Run @op now, or after the changes queued before it. */
static void listeners_enqueue(struct api *a, struct api_listeners_op *op)
{
	struct api_listeners_op **p = &a->listeners_queue;

	if (a->listeners_op == NULL) {
		listeners_begin(op);
		return;
	}
	while (*p != NULL) {
		p = &(*p)->next;
	}
	*p = op;
}

void api_listeners_set(struct api *a,
		       const char *core,
		       const char *cluster,
		       unsigned flags,
		       api_https_cb cb,
		       void *arg)
{
	struct api_listeners_op *op = calloc(1, sizeof *op);

	if (op == NULL) {
		cb(a, -ENOMEM, "out of memory", arg);
		return;
	}
	op->a = a;
	op->keep_core = core == NULL;
	op->keep_cluster = cluster == NULL;
	snprintf(op->want.core, sizeof op->want.core, "%s",
		 core != NULL ? core : "");
	snprintf(op->want.cluster, sizeof op->want.cluster, "%s",
		 cluster != NULL ? cluster : "");
	op->force_core = (flags & API_LISTENERS_RESTART) != 0;
	op->force_slot = op->force_core;
	op->cb = cb;
	op->arg = arg;
	listeners_enqueue(a, op);
}

void api_https_set(struct api *a,
		   const char *address,
		   api_https_cb cb,
		   void *arg)
{
	api_listeners_set(a, address, NULL, 0, cb, arg);
}

json_t *api_listeners_snapshot(struct api *a)
{
	struct listeners_want w;

	listeners_current(a, &w);
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "core", w.core,
			 "core_bind", w.core_bind, "cluster", w.cluster, "slot",
			 w.slot, "slot_bind", w.slot_bind);
}

/* Copy string @key of @obj into @out, "" when absent. */
static void snapshot_get(json_t *obj, const char *key, char *out, size_t size)
{
	const char *v = json_string_value(json_object_get(obj, key));

	snprintf(out, size, "%s", v != NULL ? v : "");
}

void api_listeners_restore(struct api *a,
			   json_t *snapshot,
			   api_https_cb cb,
			   void *arg)
{
	struct api_listeners_op *op = calloc(1, sizeof *op);
	struct listeners_want *w;

	if (op == NULL) {
		cb(a, -ENOMEM, "out of memory", arg);
		return;
	}
	w = &op->want;
	op->a = a;
	op->exact = true;
	snapshot_get(snapshot, "core", w->core, sizeof w->core);
	snapshot_get(snapshot, "core_bind", w->core_bind, sizeof w->core_bind);
	snapshot_get(snapshot, "cluster", w->cluster, sizeof w->cluster);
	snapshot_get(snapshot, "slot", w->slot, sizeof w->slot);
	snapshot_get(snapshot, "slot_bind", w->slot_bind, sizeof w->slot_bind);
	op->cb = cb;
	op->arg = arg;
	listeners_enqueue(a, op);
}

void api_listeners_configured(struct api *a,
			      const char *core,
			      const char *cluster)
{
	if (core != NULL) {
		snprintf(a->https_address, sizeof a->https_address, "%s", core);
	}
	if (cluster != NULL) {
		snprintf(a->cluster_address, sizeof a->cluster_address, "%s",
			 cluster);
		if (a->cluster_https_address[0] != '\0') {
			snprintf(a->cluster_https_address,
				 sizeof a->cluster_https_address, "%s",
				 cluster);
		}
	}
	api_invalidate_root(a);
}

/* Whether @sa is a global unicast address, as Go's
 * net.IP.IsGlobalUnicast() sees it. */
static bool global_unicast(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uint32_t a = ntohl(in->sin_addr.s_addr);

		return a != 0 && (a >> 24) != 127 &&
		       (a >> 16) != 0xa9fe && /* 169.254/16 */
		       (a >> 28) != 0xe &&    /* multicast */
		       a != 0xffffffffu;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		const struct in6_addr *a = &in6->sin6_addr;

		return !IN6_IS_ADDR_UNSPECIFIED(a) &&
		       !IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_LINKLOCAL(a) &&
		       !IN6_IS_ADDR_MULTICAST(a) && !IN6_IS_ADDR_V4MAPPED(a);
	}
	return false;
}

/* The addresses a client can reach the TLS listener on, as LXD's
 * util.ListenAddresses() lists them: the bound address, or for a wildcard
 * bind every global unicast address of the host (IPv4 only for 0.0.0.0).
 * An empty array when the listener is off. NULL on OOM. */
json_t *api_listen_addresses(struct api *a)
{
	uv_interface_address_t *ifs = NULL;
	json_t *list = json_array();
	char bound[128];
	char ip[INET6_ADDRSTRLEN];
	const char *colon;
	bool v4_only;
	int n = 0;
	int i;

	if (list == NULL || !https_listener_active(&a->https) ||
	    https_listener_address(&a->https, bound, sizeof bound) != 0) {
		return list;
	}
	colon = strrchr(bound, ':');
	v4_only = strncmp(bound, "0.0.0.0:", 8) == 0;
	if (colon == NULL || (!v4_only && strncmp(bound, "[::]:", 5) != 0)) {
		if (json_array_append_new(list, json_string(bound)) != 0) {
			json_decref(list);
			return NULL;
		}
		return list;
	}
	if (uv_interface_addresses(&ifs, &n) != 0) {
		return list;
	}
	for (i = 0; i < n; i++) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&ifs[i].address;
		json_t *item;

		if (!global_unicast(sa) ||
		    (v4_only && sa->sa_family != AF_INET)) {
			continue;
		}
		if (sa->sa_family == AF_INET) {
			uv_ip4_name(&ifs[i].address.address4, ip, sizeof ip);
			item = json_sprintf("%s%s", ip, colon);
		} else {
			uv_ip6_name(&ifs[i].address.address6, ip, sizeof ip);
			item = json_sprintf("[%s]%s", ip, colon);
		}
		if (item == NULL || json_array_append_new(list, item) != 0) {
			json_decref(list);
			list = NULL;
			break;
		}
	}
	uv_free_interface_addresses(ifs, n);
	return list;
}

void api_close(struct api *a, void (*cb)(void *arg), void *arg)
{
	a->close_cb = cb;
	a->close_arg = arg;
	a->http.on_conn_close = conn_closed_cb;
	if (a->unix_listening) {
		a->unix_listening = false;
		a->closing_handles++;
		uv_close((uv_handle_t *)&a->unix_listener, listener_closed_cb);
		unlink(a->socket_path);
	}
	http_server_close_all(&a->http);
	/* A listener change in flight ends first (binding nothing). */
	a->listeners_closed = true;
	if (a->listeners_op != NULL && !a->listeners_close_wait) {
		a->listeners_close_wait = true;
		a->closing_handles++;
	}
	if (https_listener_active(&a->https)) {
		a->closing_handles++;
		https_listener_stop(&a->https, https_closed_cb);
	}
	if (https_listener_active(&a->cluster_https)) {
		a->closing_handles++;
		https_listener_stop(&a->cluster_https, https_closed_cb);
	}
	if (a->ready_timer_init) {
		a->ready_timer_init = false;
		a->closing_handles++;
		uv_close((uv_handle_t *)&a->ready_timer, timer_closed_cb);
	}
	a->closing_handles += 3;
	api_prop_close(a, sub_closed_cb, a);
	ops_close(a->ops, sub_closed_cb, a);
	events_close(a->events, sub_closed_cb, a);
	api_maybe_closed(a);
}

void api_destroy(struct api *a)
{
	if (a == NULL) {
		return;
	}
	api_invalidate_root(a);
	api_list_cache_destroy(a);
	while (a->listeners_queue != NULL) {
		struct api_listeners_op *op = a->listeners_queue;

		a->listeners_queue = op->next;
		free(op);
	}
	if (a->tls_ctx != NULL) {
		tls_server_ctx_destroy(a->tls_ctx);
	}
	trust_cache_destroy(a->trust);
	api_prop_destroy(a);
	pki_destroy(a->pki);
	ops_destroy(a->ops);
	events_destroy(a->events);
	json_decref(a->config);
	free(a->state_dir);
	free(a->socket_path);
	free(a->cert_pem);
	free(a);
}
