/* Clustering endpoints: /1.0/cluster (enable, join), /1.0/cluster/members
 * (join tokens, list, show, remove), and the member channel's receiving
 * side: /internal/raft (a raft or dqlite client stream relayed into the
 * local node), /internal/cluster/accept (a joiner redeems its token) and
 * /internal/cluster/ready (the joiner's node runs: make it a stand-by).
 *
 * See docs/cluster.md for the flows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <corral/cert.h>
#include <corral/cluster.h>
#include <corral/log.h>
#include <corral/net.h>

#include "api.h"
#include "events.h"
#include "operations.h"
#include "tls.h"
#include "trust.h"
#include "validate.h"

/* Raft roles as dqlite numbers them. */
#define ROLE_VOTER 0
#define ROLE_STANDBY 1
#define ROLE_SPARE 2

/* Bound on the body of POST /internal/cluster/ready ({"id": N}). */
#define READY_BODY_MAX 256

/* Bound on the raft configuration read for a member list. */
#define MAX_RAFT_NODES 64

bool api_clustered(const struct api *a)
{
	return a->cluster != NULL && cluster_enabled(a->cluster);
}

static void sha256_hex(const char *s, char out[65])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	unsigned i;

	SHA256((const unsigned char *)s, strlen(s), d);
	for (i = 0; i < sizeof d; i++) {
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	}
}

/* Answer 202 with the async envelope of @op. */
static void reply_async(struct api_req *r, struct api_op *op)
{
	struct http_conn *conn = r->conn;
	char headers[128];
	json_t *env;
	char *body = NULL;

	env = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:o?}", "type", "async",
			"status", "Operation created", "status_code",
			OPS_STATUS_CREATED, "operation", "", "error_code", 0,
			"error", "", "metadata", ops_to_json(op));
	if (env != NULL) {
		json_object_set_new(env, "operation",
				    json_sprintf("/1.0/operations/%s", op->id));
		body = json_dumps(env, JSON_COMPACT);
		json_decref(env);
	}
	if (body == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	snprintf(headers, sizeof headers, "Location: /1.0/operations/%s\r\n",
		 op->id);
	http_conn_respond(conn, 202, headers, NULL, body, strlen(body), false);
	free(body);
	http_conn_unref(conn);
	free(r);
}

/* The fingerprints of the `server` identities of @identities. */
static json_t *server_fingerprints(json_t *identities)
{
	json_t *fps = json_array();
	json_t *id;
	size_t i;

	json_array_foreach(identities, i, id)
	{
		const char *type =
		    json_string_value(json_object_get(id, "type"));

		if (fps != NULL && type != NULL &&
		    strcmp(type, "server") == 0) {
			json_array_append(fps,
					  json_object_get(id, "fingerprint"));
		}
	}
	return fps;
}

void api_cluster_trust_installed(struct api *a, json_t *identities)
{
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	json_t *fps;

	if (!api_clustered(a)) {
		return;
	}
	fps = server_fingerprints(identities);
	if (fps == NULL || cluster_members_save(a->cluster, fps, errmsg) != 0) {
		log_error("msg=\"save cluster members\" error=\"%s\"",
			  fps == NULL ? "out of memory" : errmsg);
	}
	json_decref(fps);
}

/* ------------------------------------------------------------------------ */
/* Member check of /internal routes                                           */

struct api_member_wait {
	struct api_req *r;
	struct api_member_wait *next;
};

struct member_reload {
	struct api *a;
	json_t *identities; /* owned */
	int64_t generation;
};

/* 1: the caller is a member; 0: it is not; -1: not in the trust store as
 * loaded, ask the database. Before the database can be read (a member
 * restarting or joining), cluster.members stands in for it. */
static int member_check(struct api_req *r)
{
	struct api *a = r->api;
	const struct trust_identity *id;

	if (!r->tls || r->fingerprint[0] == '\0' || !api_clustered(a)) {
		return 0;
	}
	id = a->trust != NULL ? trust_cache_lookup(a->trust, r->fingerprint)
			      : NULL;
	if (id != NULL) {
		return strcmp(id->type, "server") == 0 ? 1 : 0;
	}
	if (!state_ready(a->state)) {
		return cluster_member_known(a->cluster, r->fingerprint) ? 1 : 0;
	}
	return -1;
}

static void member_deny(struct api_req *r)
{
	log_info(
	    "msg=\"request denied\" status=403 method=%s path=%s "
	    "fingerprint=%s address=%s",
	    http_method_str(r->http->method), r->http->path,
	    r->fingerprint[0] != '\0' ? r->fingerprint : "-", r->remote_addr);
	api_reply_error(r, 403, "not authorized");
}

static int member_reload_work(struct state_tx *tx, void *arg)
{
	struct member_reload *m = arg;

	return state_trust_snapshot(tx, &m->identities, &m->generation);
}

static void member_reload_done(void *arg, int rv, const char *errmsg)
{
	struct member_reload *m = arg;
	struct api *a = m->a;
	struct api_member_wait *w = a->member_waits;

	a->member_waits = NULL;
	a->member_reloading = false;
	if (rv == 0) {
		api_trust_install(a, m->identities, m->generation);
	} else {
		log_warn("msg=\"reload trust store\" error=\"%s\"", errmsg);
	}
	json_decref(m->identities);
	free(m);
	while (w != NULL) {
		struct api_member_wait *next = w->next;
		struct api_req *r = w->r;

		free(w);
		if (member_check(r) != 1) {
			member_deny(r);
		} else if (!a->ready &&
			   !(r->route->flags & API_ROUTE_BEFORE_READY)) {
			api_reply_not_ready(r);
		} else {
			r->route->post(r);
		}
		w = next;
	}
}

bool api_cluster_authorize(struct api_req *r, bool join)
{
	struct api *a = r->api;
	struct api_member_wait *w;
	struct member_reload *m;
	int v;

	if (join) {
		/* Only a member accepts joiners; a standalone daemon exposes
		 * nothing more than LXD's open routes. */
		if (!r->tls || r->fingerprint[0] == '\0' || !api_clustered(a)) {
			member_deny(r);
			return false;
		}
		return true;
	}
	v = member_check(r);
	if (v == 1) {
		return true;
	}
	if (v == 0) {
		member_deny(r);
		return false;
	}
	/* Maybe a member that joined through another member: read the trust
	 * store again, then decide. */
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		api_reply_error(r, 500, "out of memory");
		return false;
	}
	w->r = r;
	w->next = a->member_waits;
	a->member_waits = w;
	if (a->member_reloading) {
		return false;
	}
	m = calloc(1, sizeof *m);
	if (m != NULL) {
		m->a = a;
	}
	if (m == NULL || state_submit(a->state, false, member_reload_work,
				      member_reload_done, m) != 0) {
		free(m);
		a->member_waits = NULL;
		while (w != NULL) {
			struct api_member_wait *next = w->next;

			member_deny(w->r);
			free(w);
			w = next;
		}
		return false;
	}
	a->member_reloading = true;
	return false;
}

/* ------------------------------------------------------------------------ */
/* POST /internal/raft: relay a dqlite stream into the local node             */

struct raft_relay {
	uv_pipe_t pipe;         /* to the node's abstract socket */
	struct http_conn *conn; /* referenced until its close callback */
	bool pipe_closing;
	int refs; /* the pipe handle and the connection */
};

struct relay_write {
	uv_write_t req;
	char data[]; /* the bytes being written */
};

static void relay_unref(struct raft_relay *rr)
{
	if (--rr->refs == 0) {
		free(rr);
	}
}

static void relay_pipe_closed_cb(uv_handle_t *h)
{
	relay_unref(h->data);
}

static void relay_pipe_close(struct raft_relay *rr)
{
	if (!rr->pipe_closing) {
		rr->pipe_closing = true;
		uv_close((uv_handle_t *)&rr->pipe, relay_pipe_closed_cb);
	}
}

static void relay_write_cb(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* Bytes from the member: into the node. */
static int relay_on_data(struct http_conn *conn,
			 const char *data,
			 size_t len,
			 void *arg)
{
	struct raft_relay *rr = arg;
	struct relay_write *w;
	uv_buf_t buf;

	(void)conn;
	if (rr->pipe_closing) {
		return -EPIPE;
	}
	w = malloc(sizeof *w + len);
	if (w == NULL) {
		return -ENOMEM;
	}
	memcpy(w->data, data, len);
	buf = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&rr->pipe, &buf, 1,
		     relay_write_cb) != 0) {
		free(w);
		return -EPIPE;
	}
	return 0;
}

static void relay_on_close(struct http_conn *conn, void *arg)
{
	struct raft_relay *rr = arg;

	rr->conn = NULL;
	http_conn_unref(conn);
	relay_pipe_close(rr);
	relay_unref(rr);
}

static void relay_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(size);
	buf->len = buf->base != NULL ? size : 0;
}

/* Bytes from the node: to the member. */
static void relay_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct raft_relay *rr = s->data;

	if (n > 0 && rr->conn != NULL &&
	    http_conn_send(rr->conn, buf->base, (size_t)n) != 0) {
		n = UV_EPIPE;
	}
	free(buf->base);
	if (n < 0) {
		relay_pipe_close(rr);
		if (rr->conn != NULL) {
			http_conn_close(rr->conn);
		}
	}
}

static void post_internal_raft(struct api_req *r)
{
	static const char head[] =
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: dqlite\r\n"
	    "Connection: Upgrade\r\n\r\n";
	struct api *a = r->api;
	const char *up = http_request_header(r->http, "Upgrade");
	struct http_conn *conn = r->conn;
	struct raft_relay *rr;
	int fd;
	int rv;

	if (up == NULL || strcasecmp(up, "dqlite") != 0) {
		api_reply_error(r, 400, "missing or invalid upgrade header");
		return;
	}
	rr = calloc(1, sizeof *rr);
	if (rr == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	rv = state_node_dial(a->state, &fd);
	if (rv != 0) {
		free(rr);
		api_reply_error(r, 503, "connect to the local dqlite node: %s",
				corral_strerror(rv));
		return;
	}
	if (uv_pipe_init(a->loop, &rr->pipe, 0) != 0) {
		close(fd);
		free(rr);
		api_reply_error(r, 500, "uv_pipe_init() failed");
		return;
	}
	rr->pipe.data = rr;
	rr->refs = 1;
	if (uv_pipe_open(&rr->pipe, fd) != 0) {
		close(fd);
		relay_pipe_close(rr);
		api_reply_error(r, 500, "uv_pipe_open() failed");
		return;
	}
	rr->conn = conn;
	http_conn_ref(conn);
	rr->refs++;
	/* A raft stream has no timeout of its own: a member that vanished
	 * must still end it. */
	http_conn_peer_timeout(conn, CORRAL_PEER_DEAD_MS);
	rv = http_conn_upgrade(conn, head, sizeof head - 1, relay_on_data,
			       relay_on_close, rr);
	if (rv != 0) {
		/* The connection is closed and will not call us back. */
		rr->conn = NULL;
		http_conn_unref(conn);
		relay_pipe_close(rr);
		relay_unref(rr);
	} else if (!rr->pipe_closing &&
		   uv_read_start((uv_stream_t *)&rr->pipe, relay_alloc_cb,
				 relay_read_cb) != 0) {
		relay_pipe_close(rr);
		http_conn_close(conn);
	}
	log_debug("msg=\"raft stream\" fingerprint=%s address=%s",
		  r->fingerprint, r->remote_addr);
	/* The relay holds its own reference on the connection. */
	http_conn_unref(conn);
	free(r);
}

/* ------------------------------------------------------------------------ */
/* Shared pieces                                                              */

/* A multi-step clustering call: each step runs a state work and continues
 * on the loop. */
struct ccall {
	struct api *a;
	struct api_req *r; /* until answered, else NULL */
	struct api_op *op; /* referenced, or NULL */
	json_t *in;        /* owned */
	json_t *out;       /* owned */
	json_t *trust;     /* owned: a trust snapshot */
	int64_t trust_gen;
	char name[64];
	char address[256];
	/* Enable and join: the member's core.https_address to store, "" to
	 * leave it (address is its cluster.https_address). */
	char core_address[256];
	char via[256]; /* the member a joiner joins through */
	char secret_hash[65];
	char token_member[64]; /* the member that issued the join token */
	char token_op[64];     /* and its operation */
	char *server_pem;      /* owned */
	uint64_t node_id;
	int role;
	char errmsg[CORRAL_ERRMSG_SIZE];
};

static struct ccall *ccall_new(struct api_req *r)
{
	struct ccall *cc = calloc(1, sizeof *cc);

	if (cc == NULL) {
		api_reply_error(r, 500, "out of memory");
		return NULL;
	}
	cc->a = r->api;
	cc->r = r;
	return cc;
}

static void ccall_free(struct ccall *cc)
{
	if (cc == NULL) {
		return;
	}
	if (cc->op != NULL) {
		ops_op_unref(cc->op);
	}
	json_decref(cc->in);
	json_decref(cc->out);
	json_decref(cc->trust);
	free(cc->server_pem);
	free(cc);
}

/* Map @rv to an HTTP status for a clustering error. */
static unsigned ccall_status(int rv)
{
	switch (rv) {
	case CORRAL_ENOTFOUND:
		return 404;
	case CORRAL_EEXIST:
	case CORRAL_ECONFLICT:
		return 409;
	case CORRAL_EINVALID:
		return 400;
	case CORRAL_EFORBIDDEN:
		return 403;
	case CORRAL_ENOLEADER:
	case CORRAL_ENOTLEADER:
		return 503;
	default:
		return 500;
	}
}

/* End @cc: answer its request with an error, or fail its operation. */
static void ccall_fail(struct ccall *cc, int rv, const char *what)
{
	const char *msg =
	    cc->errmsg[0] != '\0' ? cc->errmsg : corral_strerror(rv);

	log_warn("msg=\"%s failed\" error=\"%s\"", what, msg);
	if (cc->r != NULL) {
		api_reply_error(cc->r, ccall_status(rv), "%s", msg);
		cc->r = NULL;
	}
	if (cc->op != NULL) {
		ops_finish(cc->op, OPS_STATUS_FAILURE, msg, NULL);
	}
	if (cc->a->cluster_pending == cc) {
		cc->a->cluster_pending = NULL;
	}
	ccall_free(cc);
}

/* Submit @work; on a queueing failure end @cc. */
static void ccall_submit(struct ccall *cc,
			 bool write,
			 state_work_fn work,
			 state_done_cb done,
			 const char *what)
{
	int rv = state_submit(cc->a->state, write, work, done, cc);

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "the database is not available: %s",
			    corral_strerror(rv));
		ccall_fail(cc, rv, what);
	}
}

/* Create a running task operation for @cc and answer its request with
 * it. */
static int ccall_reply_task(struct ccall *cc, const char *description)
{
	struct api_op *op;
	int rv;

	rv = ops_op_create(cc->a->ops, OPS_CLASS_TASK, description, "", NULL,
			   NULL, false, NULL, NULL, &op);
	if (rv != 0) {
		return rv;
	}
	ops_op_ref(op);
	cc->op = op;
	reply_async(cc->r, op);
	cc->r = NULL;
	return 0;
}

/* The PEM text of the X509 @x509. Returns NULL on OOM. */
static char *x509_pem(void *x509)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	char *out = NULL;
	long len;

	if (bio == NULL) {
		return NULL;
	}
	if (PEM_write_bio_X509(bio, x509) == 1) {
		len = BIO_get_mem_data(bio, &data);
		out = malloc((size_t)len + 1);
		if (out != NULL) {
			memcpy(out, data, (size_t)len);
			out[len] = '\0';
		}
	}
	BIO_free(bio);
	return out;
}

/* Whether @address is a dialable "host:port" (no wildcard, no port 0). */
static bool address_dialable(const char *address)
{
	const char *colon = strrchr(address, ':');

	return colon != NULL && colon != address && colon[1] != '\0' &&
	       strcmp(colon + 1, "0") != 0 &&
	       strncmp(address, "0.0.0.0:", 8) != 0 &&
	       strncmp(address, "[::]:", 5) != 0 && address[0] != ':';
}

/* Set the member-local keys of member @id: core.https_address to @core
 * (unless "") and cluster.https_address to @cluster. */
static int set_member_addresses(struct state_tx *tx,
				int64_t id,
				const char *core,
				const char *cluster)
{
	json_t *local = NULL;
	int rv;

	rv = state_node_config_get(tx, id, &local);
	if (rv != 0) {
		return rv;
	}
	if (core[0] != '\0') {
		json_object_set_new(local, "core.https_address",
				    json_string(core));
	}
	json_object_set_new(local, "cluster.https_address",
			    json_string(cluster));
	rv = state_node_config_replace(tx, id, local);
	json_decref(local);
	return rv;
}

static void member_name_set(struct api *a, const char *name)
{
	snprintf(a->member_name, sizeof a->member_name, "%s", name);
	/* LXD's operation "location" is the member's name in a cluster. */
	if (ops_set_location(a->ops, name) != 0) {
		log_warn("msg=\"set operation location: out of memory\"");
	}
	/* So is an event's. */
	events_set_location(a->events, name);
	api_prop_start(a);
	api_invalidate_root(a);
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/cluster, and the member name                                      */

static void get_cluster(struct api_req *r)
{
	struct api *a = r->api;
	bool on = api_clustered(a);

	api_reply_sync(
	    r, 200,
	    json_pack("{s:s, s:b, s:[]}", "server_name",
		      on ? a->member_name : "", "enabled", on, "member_config"),
	    NULL, NULL);
}

/* The name of the member with raft id @id in @list (state_member_list()),
 * borrowed from it, or NULL. */
static const char *member_name_of(json_t *list, uint64_t id)
{
	const char *name = NULL;
	json_t *m;
	size_t i;

	json_array_foreach(list, i, m)
	{
		if ((uint64_t)json_integer_value(json_object_get(m, "id")) ==
		    id) {
			name = json_string_value(json_object_get(m, "name"));
		}
	}
	return name;
}

int api_cluster_name_read(struct state_tx *tx,
			  struct api *a,
			  char *name,
			  size_t size)
{
	const char *found;
	json_t *list = NULL;
	int rv;

	name[0] = '\0';
	if (!api_clustered(a)) {
		return 0;
	}
	rv = state_member_list(tx, &list);
	if (rv != 0) {
		return rv;
	}
	found = member_name_of(list, state_node_id(a->state));
	if (found != NULL) {
		snprintf(name, size, "%s", found);
	}
	json_decref(list);
	return 0;
}

void api_cluster_ready(struct api *a, const char *name)
{
	if (!api_clustered(a)) {
		return;
	}
	if (name[0] == '\0') {
		log_warn("msg=\"this member is not in the member list\"");
		return;
	}
	member_name_set(a, name);
}

/* ------------------------------------------------------------------------ */
/* PUT /1.0/cluster: enable                                                   */

static void op_done_config_cb(struct api *a, int rv)
{
	struct ccall *cc = a->cluster_pending;

	(void)rv;
	if (cc == NULL) {
		return;
	}
	a->cluster_pending = NULL;
	if (cc->op != NULL) {
		ops_finish(cc->op, OPS_STATUS_SUCCESS, NULL, NULL);
	}
	log_info("msg=\"cluster member ready\" name=%s address=%s", cc->name,
		 cc->address);
	ccall_free(cc);
}

/* Both flows end here: trust store and config reloaded, then the
 * operation succeeds. */
static void formation_finish(struct ccall *cc)
{
	struct api *a = cc->a;

	if (cc->trust != NULL) {
		api_trust_install(a, cc->trust, cc->trust_gen);
	}
	member_name_set(a, cc->name);
	api_config_reload(a, op_done_config_cb);
}

/* A write work function may run more than once (state.c retries a
 * transaction another member's write locked out): what a rolled-back run
 * snapshot goes before the next run takes another. */
static void ccall_trust_reset(struct ccall *cc)
{
	json_decref(cc->trust);
	cc->trust = NULL;
}

static int enable_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	json_t *identity;
	int rv;

	ccall_trust_reset(cc);

	rv = state_member_update(tx, 1, cc->name, cc->address);
	if (rv == 0) {
		rv = set_member_addresses(tx, 1, cc->core_address, cc->address);
	}
	if (rv != 0) {
		return rv;
	}
	identity = json_pack("{s:s, s:s, s:s}", "type", "server", "name",
			     cc->name, "certificate", cc->server_pem);
	if (identity == NULL) {
		return -ENOMEM;
	}
	rv = state_identity_create(tx, identity);
	json_decref(identity);
	if (rv != 0) {
		return rv;
	}
	return state_trust_snapshot(tx, &cc->trust, &cc->trust_gen);
}

static void enable_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "enable clustering");
		return;
	}
	api_listeners_configured(
	    cc->a, cc->core_address[0] != '\0' ? cc->core_address : NULL,
	    cc->address);
	formation_finish(cc);
}

static void enable_restarted_cb(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "restart the database at %s: %s", cc->address,
			    errmsg);
		ccall_fail(cc, rv, "enable clustering");
		return;
	}
	ccall_submit(cc, true, enable_work, enable_done, "enable clustering");
}

/* The core.https_address a member stores: the configured one, with a port
 * 0 made the bound port (so that a restart binds the same); "" when the
 * core listener is off. */
static void core_address_kept(struct api *a, char *out, size_t size)
{
	char host[256];
	unsigned port = 1;

	if (!https_listener_active(&a->https) ||
	    https_listener_address(&a->https, out, size) != 0) {
		out[0] = '\0';
		return;
	}
	if (https_address_parse(a->https_address, host, sizeof host, &port,
				NULL) != 0 ||
	    port != 0) {
		snprintf(out, size, "%s", a->https_address);
	}
}

/* The cluster address @given (cluster.https_address as configured) is
 * served by a listener: write the address other members dial into @out
 * (@size bytes): the separate cluster listener's bound address, else the
 * core listener's, or @given itself when the core listener is bound to a
 * wildcard. Returns 0, or CORRAL_EINVALID when no listener serves it or
 * it is a wildcard. */
static int cluster_address_served(struct api *a,
				  const char *given,
				  char *out,
				  size_t size)
{
	int rv = -ENOTCONN;

	if (a->cluster_https_address[0] != '\0') {
		rv = https_listener_address(&a->cluster_https, out, size);
	} else if (https_listener_active(&a->https)) {
		rv = https_listener_address(&a->https, out, size);
		if (rv == 0 && https_address_wildcard(out)) {
			rv = https_address_normalize(given, out, size);
		}
	}
	if (rv != 0 || !address_dialable(out)) {
		return CORRAL_EINVALID;
	}
	return 0;
}

/* The listener of the cluster address is up (or could not bind): commit
 * the enable. */
static void enable_listening_cb(struct api *a,
				int rv,
				const char *errmsg,
				void *arg)
{
	struct ccall *cc = arg;
	char given[256];

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, CORRAL_EINVALID, "enable clustering");
		return;
	}
	snprintf(given, sizeof given, "%s", cc->address);
	if (cluster_address_served(a, given, cc->address, sizeof cc->address) !=
	    0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "cluster.https_address %s is not served by a "
			    "listener",
			    given);
		ccall_fail(cc, CORRAL_EINVALID, "enable clustering");
		return;
	}
	core_address_kept(a, cc->core_address, sizeof cc->core_address);
	cc->server_pem = strdup(a->cert_pem);
	if (cc->server_pem == NULL) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "out of memory");
		ccall_fail(cc, -ENOMEM, "enable clustering");
		return;
	}
	rv = cluster_enable_files(a->cluster, cc->errmsg);
	if (rv != 0) {
		ccall_fail(cc, rv, "enable clustering");
		return;
	}
	rv = ccall_reply_task(cc, "Enabling clustering");
	if (rv == 0) {
		rv = state_reconfigure(a->state, 1, cc->address, false, NULL,
				       enable_restarted_cb, cc);
	}
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "restart the database: %s", corral_strerror(rv));
		ccall_fail(cc, rv, "enable clustering");
		return;
	}
	log_info("msg=\"enabling clustering\" name=%s address=%s", cc->name,
		 cc->address);
}

/* cluster.https_address is the given one, else core.https_address's bound
 * address; a wildcard is refused. Its listener (a second one when the core
 * listener does not cover it) is bound before anything is written, so an
 * address that cannot be used changes nothing. */
static void cluster_enable(struct api_req *r, json_t *body)
{
	struct api *a = r->api;
	const char *name =
	    json_string_value(json_object_get(body, "server_name"));
	const char *given = json_string_value(
	    json_object_get(a->config, "cluster.https_address"));
	char bound[256] = "";
	struct ccall *cc;

	if (name == NULL || validate_name("member", name, r->errmsg) != 0 ||
	    strcmp(name, "none") == 0 || strlen(name) >= sizeof cc->name) {
		api_reply_error(r, 400, "invalid server_name: %s",
				name == NULL ? "missing" : r->errmsg);
		return;
	}
	if (given == NULL || given[0] == '\0') {
		if (!https_listener_active(&a->https) ||
		    https_listener_address(&a->https, bound, sizeof bound) !=
			0) {
			api_reply_error(r, 400,
					"core.https_address must be set before "
					"enabling clustering");
			return;
		}
		if (!address_dialable(bound)) {
			api_reply_error(
			    r, 400,
			    "core.https_address %s is a wildcard: set "
			    "cluster.https_address or a specific "
			    "core.https_address to enable clustering",
			    bound);
			return;
		}
		given = bound;
	} else if (https_address_wildcard(given)) {
		api_reply_error(r, 400,
				"cluster.https_address %s is a wildcard: set "
				"a specific address to enable clustering",
				given);
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		return;
	}
	snprintf(cc->name, sizeof cc->name, "%s", name);
	/* Until the listener is up: the configured address. */
	snprintf(cc->address, sizeof cc->address, "%s", given);
	a->cluster_pending = cc;
	api_listeners_set(a, NULL, cc->address, 0, enable_listening_cb, cc);
}

/* ------------------------------------------------------------------------ */
/* PUT /1.0/cluster: join                                                     */

static int join_config_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	int rv;

	ccall_trust_reset(cc);

	rv = set_member_addresses(tx, (int64_t)cc->node_id, cc->core_address,
				  cc->address);
	if (rv != 0) {
		return rv;
	}
	return state_trust_snapshot(tx, &cc->trust, &cc->trust_gen);
}

static void join_config_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "join");
		return;
	}
	api_listeners_configured(
	    cc->a, cc->core_address[0] != '\0' ? cc->core_address : NULL,
	    cc->address);
	formation_finish(cc);
}

/* Take the strongest role the cluster has room for (cluster.max_voters,
 * cluster.max_standby). Promotion to voter returns once caught up. */
static int join_role_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	struct state_raft_node nodes[MAX_RAFT_NODES];
	json_t *config = NULL;
	size_t n = 0;
	uint64_t leader = 0;
	long max_voters = 3;
	long max_standby = 2;
	const char *v;
	int rv;

	rv = state_config_get(tx, &config);
	if (rv != 0) {
		return rv;
	}
	v = json_string_value(json_object_get(config, "cluster.max_voters"));
	if (v != NULL) {
		max_voters = strtol(v, NULL, 10);
	}
	v = json_string_value(json_object_get(config, "cluster.max_standby"));
	if (v != NULL) {
		max_standby = strtol(v, NULL, 10);
	}
	json_decref(config);
	rv = state_raft_nodes(tx, nodes, MAX_RAFT_NODES, &n, &leader);
	if (rv != 0) {
		return rv;
	}
	cc->role = cluster_role_choose(
	    nodes, n, cc->node_id, (unsigned)max_voters, (unsigned)max_standby);
	if (cc->role == ROLE_STANDBY) {
		return 0; /* a stand-by already (join_started_cb()) */
	}
	return state_raft_assign(tx, cc->node_id, cc->role);
}

static void join_role_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;

	log_debug("msg=\"join: raft role\" rv=%d role=%d", rv, cc->role);
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "take a raft role: %s", errmsg);
		ccall_fail(cc, rv, "join");
		return;
	}
	ccall_submit(cc, true, join_config_work, join_config_done, "join");
}

static void join_restarted_cb(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;

	log_debug("msg=\"join: database restarted\" rv=%d", rv);
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "start the database as member %llu: %s",
			    (unsigned long long)cc->node_id, errmsg);
		ccall_fail(cc, rv, "join");
		return;
	}
	ccall_submit(cc, false, join_role_work, join_role_done, "join");
}

/* Off the loop, once our node runs (and before waiting for a leader): ask
 * the member we joined through to make it a stand-by. Until now it was a
 * spare, which the leader does not contact: had it been a stand-by from the
 * accept on, the leader would have dialed it while our listener still
 * presented server.crt and no node ran, and libraft waits a fixed second
 * before dialing again. A stand-by receives the log, so our node learns the
 * leader. */
static int join_started_cb(void *arg, char *errmsg)
{
	struct ccall *cc = arg;
	int rv;

	rv = cluster_join_ready(cc->a->cluster, cc->via, cc->node_id, errmsg);
	if (rv != 0) {
		corral_errwrapf(errmsg, CORRAL_ERRMSG_SIZE,
				"ask to replicate to the new node");
	}
	log_debug("msg=\"join: node ready\" rv=%d", rv);
	return rv;
}

/* The listener now presents cluster.crt: start the node as a member. */
static void join_listener_cb(struct api *a,
			     int rv,
			     const char *errmsg,
			     void *arg)
{
	struct ccall *cc = arg;

	log_debug(
	    "msg=\"join: listener presents the cluster certificate\" rv=%d",
	    rv);

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "listen with the cluster certificate: %s", errmsg);
		ccall_fail(cc, rv, "join");
		return;
	}
	rv = state_reconfigure(a->state, cc->node_id, cc->address, true,
			       join_started_cb, join_restarted_cb, cc);
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "restart the database: %s", corral_strerror(rv));
		ccall_fail(cc, rv, "join");
	}
}

/* The cluster accepted us: present the cluster certificate from now on. */
static void join_accepted_cb(void *arg,
			     int rv,
			     uint64_t node_id,
			     const char *errmsg)
{
	struct ccall *cc = arg;
	struct api *a = cc->a;
	char *pem = NULL;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "join");
		return;
	}
	cc->node_id = node_id;
	rv = cert_read_file(cluster_listener_crt(a->cluster), &pem, NULL);
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "read cluster.crt: %s", corral_strerror(rv));
		ccall_fail(cc, rv, "join");
		return;
	}
	free(a->cert_pem);
	a->cert_pem = pem;
	snprintf(a->fingerprint, sizeof a->fingerprint, "%s",
		 cluster_fingerprint(a->cluster));
	tls_server_ctx_destroy(a->tls_ctx);
	a->tls_ctx = NULL;
	api_invalidate_root(a);
	/* Both listeners, on the ports they have: the members dial the
	 * cluster address pinning cluster.crt. */
	api_listeners_set(a, NULL, NULL, API_LISTENERS_RESTART,
			  join_listener_cb, cc);
}

static void join_send(struct ccall *cc)
{
	struct cluster_join_req req = {
		.server_name = cc->name,
		.server_address = cc->address,
		.cluster_address = json_string_value(
		    json_object_get(cc->in, "cluster_address")),
		.cluster_cert = json_string_value(
		    json_object_get(cc->in, "cluster_certificate")),
		.secret = json_string_value(
		    json_object_get(cc->in, "cluster_password")),
	};
	int rv;

	snprintf(cc->via, sizeof cc->via, "%s", req.cluster_address);
	cc->a->cluster_pending = cc;
	rv = ccall_reply_task(cc, "Joining cluster");
	if (rv == 0) {
		rv = cluster_join(cc->a->cluster, &req, join_accepted_cb, cc);
	}
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "join: %s",
			    corral_strerror(rv));
		ccall_fail(cc, rv, "join");
		return;
	}
	log_info("msg=\"joining cluster\" name=%s address=%s via=%s", cc->name,
		 cc->address, req.cluster_address);
}

static void join_listening_cb(struct api *a,
			      int rv,
			      const char *errmsg,
			      void *arg)
{
	struct ccall *cc = arg;
	const char *address =
	    json_string_value(json_object_get(cc->in, "server_address"));

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "server_address: %s",
			    errmsg);
		ccall_fail(cc, CORRAL_EINVALID, "join");
		return;
	}
	if (cluster_address_served(a, address, cc->address,
				   sizeof cc->address) != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "server_address %s is not served by a listener",
			    address);
		ccall_fail(cc, CORRAL_EINVALID, "join");
		return;
	}
	core_address_kept(a, cc->core_address, sizeof cc->core_address);
	join_send(cc);
}

/* A joiner's database must hold nothing worth keeping: it is discarded. */
static int fresh_work(struct state_tx *tx, void *arg)
{
	bool empty = false;
	int rv;

	(void)arg;
	rv = state_db_pristine(tx, &empty);
	if (rv == 0 && !empty) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "this server is not empty (it has projects, "
			    "profiles, certificates or instances of its "
			    "own): only a fresh server can join a cluster");
		rv = CORRAL_EINVALID;
	}
	return rv;
}

static void fresh_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;
	struct api *a = cc->a;
	const char *address =
	    json_string_value(json_object_get(cc->in, "server_address"));

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "join");
		return;
	}
	/* server_address is the joiner's cluster address. Without a core
	 * listener it serves clients too (core.https_address, as before);
	 * a daemon that has one keeps it, and serves server_address with it
	 * when it covers that address, else with a second listener. */
	api_listeners_set(a, https_listener_active(&a->https) ? NULL : address,
			  address, 0, join_listening_cb, cc);
}

static void cluster_join_put(struct api_req *r, json_t *body)
{
	static const char *const fields[] = {
		"server_name",         "server_address",   "cluster_address",
		"cluster_certificate", "cluster_password",
	};
	const char *name =
	    json_string_value(json_object_get(body, "server_name"));
	struct ccall *cc;
	unsigned i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const char *v =
		    json_string_value(json_object_get(body, fields[i]));

		if (v == NULL || v[0] == '\0') {
			api_reply_error(r, 400, "missing field \"%s\"",
					fields[i]);
			return;
		}
	}
	if (validate_name("member", name, r->errmsg) != 0 ||
	    strcmp(name, "none") == 0 || strlen(name) >= sizeof cc->name) {
		api_reply_error(r, 400, "invalid server_name: %s", r->errmsg);
		return;
	}
	if (!address_dialable(
		json_string_value(json_object_get(body, "server_address"))) ||
	    !address_dialable(
		json_string_value(json_object_get(body, "cluster_address")))) {
		api_reply_error(r, 400,
				"server_address and cluster_address must be "
				"host:port addresses with a port");
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		return;
	}
	cc->in = json_incref(body);
	snprintf(cc->name, sizeof cc->name, "%s", name);
	ccall_submit(cc, false, fresh_work, fresh_done, "join");
}

static void put_cluster(struct api_req *r)
{
	struct api *a = r->api;
	json_t *body = api_body_object(r);
	json_t *addr;

	if (body == NULL) {
		return;
	}
	if (a->cluster == NULL) {
		api_reply_error(r, 500, "clustering is not available");
	} else if (!json_is_true(json_object_get(body, "enabled"))) {
		api_reply_error(r, 400,
				"disabling clustering is not supported");
	} else if (api_clustered(a)) {
		api_reply_error(r, 400, "this server is already clustered");
	} else if (a->cluster_pending != NULL) {
		api_reply_error(r, 409, "a cluster change is in progress");
	} else {
		addr = json_object_get(body, "cluster_address");
		if (json_string_value(addr) != NULL &&
		    json_string_value(addr)[0] != '\0') {
			cluster_join_put(r, body);
		} else {
			cluster_enable(r, body);
		}
	}
	json_decref(body);
}

/* ------------------------------------------------------------------------ */
/* POST /internal/cluster/accept (on an existing member)                      */

static int accept_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	json_t *token = NULL;
	json_t *identity;
	const char *token_name;
	int64_t id = 0;
	int rv;

	ccall_trust_reset(cc);
	rv = state_token_redeem(tx, "join", cc->secret_hash,
				(int64_t)time(NULL), &token);
	if (rv == CORRAL_ENOTFOUND) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "join token not found, already used or expired");
		return CORRAL_EFORBIDDEN;
	}
	if (rv != 0) {
		return rv;
	}
	token_name = json_string_value(json_object_get(token, "name"));
	{
		json_t *data = json_object_get(token, "data");
		const char *member =
		    json_string_value(json_object_get(data, "member"));
		const char *op =
		    json_string_value(json_object_get(data, "operation"));

		snprintf(cc->token_member, sizeof cc->token_member, "%s",
			 member != NULL ? member : "");
		snprintf(cc->token_op, sizeof cc->token_op, "%s",
			 op != NULL ? op : "");
	}
	if (token_name == NULL || strcmp(token_name, cc->name) != 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "the join token was issued for member \"%s\", "
			    "not \"%s\"",
			    token_name != NULL ? token_name : "", cc->name);
		json_decref(token);
		return CORRAL_EFORBIDDEN;
	}
	json_decref(token);
	rv = state_member_create(tx, cc->name, cc->address, &id);
	if (rv != 0) {
		return rv;
	}
	identity = json_pack("{s:s, s:s, s:s}", "type", "server", "name",
			     cc->name, "certificate", cc->server_pem);
	if (identity == NULL) {
		return -ENOMEM;
	}
	rv = state_identity_create(tx, identity);
	json_decref(identity);
	if (rv != 0) {
		return rv;
	}
	rv = state_trust_snapshot(tx, &cc->trust, &cc->trust_gen);
	if (rv != 0) {
		return rv;
	}
	/* Last, so that nothing above can fail after raft has the node. It
	 * is added as a spare, which the leader does not contact: the joiner
	 * asks to become a stand-by once its node runs
	 * (POST /internal/cluster/ready), then takes its final role. */
	rv = state_raft_add(tx, (uint64_t)id, cc->address);
	if (rv != 0) {
		return rv;
	}
	cc->node_id = (uint64_t)id;
	return 0;
}

/* Finish the join token operation of this member whose secret hashes to
 * @hash, if any: a used token is done. */
static void join_token_ops_finish(struct api *a, const char *hash)
{
	struct api_op *op;

	for (op = a->ops->head; op != NULL; op = op->next) {
		const char *secret =
		    json_string_value(json_object_get(op->metadata, "secret"));
		char h[65];

		if (op->cls != OPS_CLASS_TOKEN ||
		    ops_status_final(op->status_code) || secret == NULL ||
		    json_object_get(op->metadata, "serverName") == NULL) {
			continue;
		}
		sha256_hex(secret, h);
		if (strcmp(h, hash) == 0) {
			ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL);
			return;
		}
	}
}

/* Every member knows the joiner's server certificate now (or did not
 * answer in time): hand the joiner what it needs. */
static void accept_announced(void *arg, json_t *missing)
{
	struct ccall *cc = arg;
	struct api *a = cc->a;
	char *crt = NULL;
	char *key = NULL;
	json_t *out;
	int rv;

	(void)missing; /* logged; a member behind repairs by heartbeat */
	rv = cluster_key_pair(a->cluster, &crt, &key, cc->errmsg);
	if (rv != 0) {
		ccall_fail(cc, rv, "accept member");
		return;
	}
	out = json_pack("{s:I, s:s, s:s, s:o}", "node_id",
			(json_int_t)cc->node_id, "cluster_certificate", crt,
			"cluster_key", key, "members",
			server_fingerprints(cc->trust));
	OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(crt);
	log_info("msg=\"member accepted\" name=%s address=%s id=%llu", cc->name,
		 cc->address, (unsigned long long)cc->node_id);
	api_reply_sync(cc->r, 200, out, NULL, NULL);
	cc->r = NULL;
	ccall_free(cc);
}

static void accept_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;
	struct api *a = cc->a;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "accept member");
		return;
	}
	api_trust_install(a, cc->trust, cc->trust_gen);
	join_token_ops_finish(a, cc->secret_hash);
	api_token_used(a, cc->token_member, cc->token_op);
	/* The other members must accept the joiner's raft streams before it
	 * runs: with the leader gone right after the join, an election
	 * needs them, and a member that cannot read its trust store then
	 * refuses an identity it has not seen. So the new trust store is
	 * acknowledged by every member before the joiner goes on. */
	if (api_prop_announce(a, cc->trust, cc->trust_gen, accept_announced,
			      cc) != 0) {
		accept_announced(cc, NULL);
	}
}

static void post_internal_accept(struct api_req *r)
{
	struct api *a = r->api;
	json_t *body;
	const char *secret;
	const char *name;
	const char *address;
	struct ccall *cc;

	if (!api_clustered(a)) {
		api_reply_error(r, 400, "this server is not clustered");
		return;
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	secret = json_string_value(json_object_get(body, "secret"));
	name = json_string_value(json_object_get(body, "server_name"));
	address = json_string_value(json_object_get(body, "address"));
	if (secret == NULL || name == NULL || address == NULL ||
	    validate_name("member", name, r->errmsg) != 0 ||
	    strlen(name) >= sizeof cc->name || !address_dialable(address)) {
		json_decref(body);
		api_reply_error(r, 400, "invalid join request");
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		json_decref(body);
		return;
	}
	sha256_hex(secret, cc->secret_hash);
	snprintf(cc->name, sizeof cc->name, "%s", name);
	snprintf(cc->address, sizeof cc->address, "%s", address);
	json_decref(body);
	cc->server_pem = r->peer_x509 != NULL ? x509_pem(r->peer_x509) : NULL;
	if (cc->server_pem == NULL) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "cannot read the client certificate");
		ccall_fail(cc, -ENOMEM, "accept member");
		return;
	}
	ccall_submit(cc, true, accept_work, accept_done, "accept member");
}

/* ------------------------------------------------------------------------ */
/* POST /internal/cluster/ready (on the member a joiner joined through)       */

/* Make the caller's node, a spare since it was accepted, a stand-by. A node
 * that has a role already keeps it: this never demotes. Raft requests go to
 * the leader, outside a write transaction. */
static int ready_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	struct state_raft_node nodes[MAX_RAFT_NODES];
	json_t *list = NULL;
	const char *name = NULL;
	uint64_t leader = 0;
	size_t n = 0;
	size_t i;
	int rv;

	rv = state_member_list(tx, &list);
	if (rv != 0) {
		return rv;
	}
	name = member_name_of(list, cc->node_id);
	if (name == NULL) {
		json_decref(list);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "invalid ready request: no member with id %llu",
			    (unsigned long long)cc->node_id);
		return CORRAL_EINVALID;
	}
	if (strcmp(name, cc->name) != 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "member %llu is \"%s\", not the caller \"%s\"",
			    (unsigned long long)cc->node_id, name, cc->name);
		json_decref(list);
		return CORRAL_EFORBIDDEN;
	}
	json_decref(list);
	rv = state_raft_nodes(tx, nodes, MAX_RAFT_NODES, &n, &leader);
	if (rv != 0) {
		return rv;
	}
	for (i = 0; i < n && nodes[i].id != cc->node_id; i++) {
	}
	if (i == n) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "member %llu is not in the raft configuration",
			    (unsigned long long)cc->node_id);
		return CORRAL_ECONFLICT;
	}
	cc->role = nodes[i].role;
	if (cc->role != ROLE_SPARE) {
		return 0;
	}
	return state_raft_assign(tx, cc->node_id, ROLE_STANDBY);
}

static void ready_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "make member a stand-by");
		return;
	}
	log_info("msg=\"member ready\" name=%s id=%llu role=%d", cc->name,
		 (unsigned long long)cc->node_id,
		 cc->role == ROLE_SPARE ? ROLE_STANDBY : cc->role);
	/* Read the member list now: a write through this member right after
	 * the join completes must notify the new member too. */
	api_prop_start(cc->a);
	api_reply_sync(cc->r, 200, json_object(), NULL, NULL);
	cc->r = NULL;
	ccall_free(cc);
}

/* A POLICY_MEMBER route: the caller presents the server certificate that
 * the accept recorded. The body is exactly {"id": N}, N the caller's own
 * member id. */
static void post_internal_ready(struct api_req *r)
{
	struct api *a = r->api;
	const struct trust_identity *caller;
	json_t *body;
	json_t *id;
	struct ccall *cc;

	if (r->http->body_len > READY_BODY_MAX) {
		api_reply_error(r, 400,
				"invalid ready request: body too large");
		return;
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	id = json_object_get(body, "id");
	if (json_object_size(body) != 1 || !json_is_integer(id) ||
	    json_integer_value(id) <= 0) {
		json_decref(body);
		api_reply_error(r, 400,
				"invalid ready request: want {\"id\": N}, N "
				"a member id");
		return;
	}
	caller = a->trust != NULL ? trust_cache_lookup(a->trust, r->fingerprint)
				  : NULL;
	if (caller == NULL) {
		/* Authorized by cluster.members: the database is not read
		 * yet. */
		json_decref(body);
		api_reply_error(r, 503, "the trust store is not loaded yet");
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		json_decref(body);
		return;
	}
	cc->node_id = (uint64_t)json_integer_value(id);
	snprintf(cc->name, sizeof cc->name, "%s", caller->name);
	json_decref(body);
	ccall_submit(cc, false, ready_work, ready_done,
		     "make member a stand-by");
}

/* ------------------------------------------------------------------------ */
/* POST /1.0/cluster/members: a join token                                    */

struct join_revoke {
	char hash[65];
};

static int join_revoke_work(struct state_tx *tx, void *arg)
{
	struct join_revoke *j = arg;
	int rv = state_token_revoke(tx, "join", j->hash);

	return rv == CORRAL_ENOTFOUND ? 0 : rv;
}

static void join_revoke_done(void *arg, int rv, const char *errmsg)
{
	if (rv != 0) {
		log_error("msg=\"revoke join token\" error=\"%s\"", errmsg);
	}
	free(arg);
}

static int join_token_cancel_cb(struct api_op *op, void *arg, char *errmsg)
{
	struct api *a = arg;
	const char *secret =
	    json_string_value(json_object_get(op->metadata, "secret"));
	struct join_revoke *j;
	int rv;

	if (secret == NULL) {
		return 0;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
		return -ENOMEM;
	}
	sha256_hex(secret, j->hash);
	rv =
	    state_submit(a->state, true, join_revoke_work, join_revoke_done, j);
	if (rv != 0) {
		free(j);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "cannot revoke the token: %s", corral_strerror(rv));
	}
	return rv;
}

static void join_token_expire_cb(struct api_op *op, void *arg)
{
	char errmsg[CORRAL_ERRMSG_SIZE];

	if (join_token_cancel_cb(op, arg, errmsg) != 0) {
		log_error("msg=\"delete expired join token\" error=\"%s\"",
			  errmsg);
	}
}

static int token_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	json_t *list = NULL;
	json_t *m;
	size_t i;
	int rv;

	rv = state_member_list(tx, &list);
	if (rv != 0) {
		return rv;
	}
	json_array_foreach(list, i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "name")),
			   cc->name) == 0) {
			json_decref(list);
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "the cluster already has a member with "
				    "name: %s",
				    cc->name);
			return CORRAL_EEXIST;
		}
	}
	json_decref(list);
	/* The data names the operation and this member, so that any
	 * member can revoke the token (api_token_owner()). */
	return state_token_create(
	    tx, "join", cc->secret_hash, cc->name,
	    json_object_get(cc->in, "data"),
	    json_integer_value(json_object_get(cc->in, "expires_at")), NULL);
}

static void token_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;
	struct api_op *op;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "create join token");
		return;
	}
	rv = ops_op_create_id(
	    cc->a->ops, json_string_value(json_object_get(cc->in, "operation")),
	    OPS_CLASS_TOKEN, "Joining cluster", "", NULL,
	    json_incref(json_object_get(cc->in, "metadata")), true,
	    join_token_cancel_cb, cc->a, &op);
	if (rv == 0) {
		rv = ops_op_set_expiry(
		    op,
		    (uint64_t)json_integer_value(
			json_object_get(cc->in, "expiry_ms")),
		    "token expired", join_token_expire_cb, cc->a);
	}
	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "out of memory");
		ccall_fail(cc, rv, "create join token");
		return;
	}
	reply_async(cc->r, op);
	cc->r = NULL;
	ccall_free(cc);
}

static void post_members(struct api_req *r)
{
	struct api *a = r->api;
	unsigned char raw[32];
	char secret[65];
	char op_id[OPS_ID_SIZE];
	char expires[OPS_TIME_SIZE];
	char address[256];
	struct timespec ts;
	const char *expiry;
	const char *name;
	struct ccall *cc;
	json_t *body;
	int64_t seconds;
	unsigned i;

	if (!api_clustered(a)) {
		api_reply_error(r, 400, "this server is not clustered");
		return;
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	name = json_string_value(json_object_get(body, "server_name"));
	if (name == NULL || validate_name("member", name, r->errmsg) != 0 ||
	    strcmp(name, "none") == 0 || strlen(name) >= sizeof cc->name) {
		json_decref(body);
		api_reply_error(r, 400, "invalid server_name");
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		json_decref(body);
		return;
	}
	snprintf(cc->name, sizeof cc->name, "%s", name);
	json_decref(body);
	expiry = json_string_value(
	    json_object_get(a->config, "cluster.join_token_expiry"));
	if (expiry == NULL || expiry[0] == '\0') {
		expiry = validate_server_default("cluster.join_token_expiry");
	}
	if (expiry == NULL || validate_parse_duration(expiry, &seconds) != 0) {
		seconds = 3 * 3600;
	}
	if (seconds > (int64_t)100 * 365 * 86400) {
		seconds = (int64_t)100 * 365 * 86400;
	}
	if (RAND_bytes(raw, sizeof raw) != 1) {
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "no randomness for the token secret");
		ccall_fail(cc, CORRAL_ETLS, "create join token");
		return;
	}
	for (i = 0; i < sizeof raw; i++) {
		snprintf(secret + 2 * i, 3, "%02x", raw[i]);
	}
	OPENSSL_cleanse(raw, sizeof raw);
	sha256_hex(secret, cc->secret_hash);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)seconds;
	ops_format_time(&ts, expires);
	state_node_address(a->state, address, sizeof address);
	if (ops_uuid(op_id) != 0) {
		OPENSSL_cleanse(secret, sizeof secret);
		corral_errf(cc->errmsg, sizeof cc->errmsg,
			    "no randomness for the operation id");
		ccall_fail(cc, CORRAL_ETLS, "create join token");
		return;
	}
	cc->in = json_pack(
	    "{s:{s:s, s:s, s:s, s:[s], s:s}, s:I, s:I, s:s, s:o}", "metadata",
	    "serverName", cc->name, "secret", secret, "fingerprint",
	    cluster_fingerprint(a->cluster), "addresses", address, "expiresAt",
	    expires, "expires_at", (json_int_t)ts.tv_sec, "expiry_ms",
	    (json_int_t)seconds * 1000, "operation", op_id, "data",
	    api_token_owner(a, op_id));
	OPENSSL_cleanse(secret, sizeof secret);
	if (cc->in == NULL) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "out of memory");
		ccall_fail(cc, -ENOMEM, "create join token");
		return;
	}
	ccall_submit(cc, true, token_work, token_done, "create join token");
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/cluster/members[/{name}], DELETE /1.0/cluster/members/{name}      */

/* LXD's ClusterMember objects of every member, in cc->out. */
static int members_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	struct state_raft_node nodes[MAX_RAFT_NODES];
	struct utsname uts;
	json_t *list = NULL;
	json_t *out;
	json_t *m;
	uint64_t leader = 0;
	size_t n = 0;
	size_t i;
	size_t j;
	int rv;

	if (uname(&uts) != 0) {
		snprintf(uts.machine, sizeof uts.machine, "unknown");
	}
	rv = state_member_list(tx, &list);
	if (rv == 0) {
		rv = state_raft_nodes(tx, nodes, MAX_RAFT_NODES, &n, &leader);
	}
	if (rv != 0) {
		json_decref(list);
		return rv;
	}
	out = json_array();
	json_array_foreach(list, i, m)
	{
		uint64_t id =
		    (uint64_t)json_integer_value(json_object_get(m, "id"));
		const char *name =
		    json_string_value(json_object_get(m, "name"));
		const char *address =
		    json_string_value(json_object_get(m, "address"));
		int role = 2;
		json_t *obj;

		for (j = 0; j < n; j++) {
			if (nodes[j].id == id) {
				role = nodes[j].role;
			}
		}
		obj = json_pack(
		    "{s:s, s:s, s:b, s:s, s:s, s:s, s:o, s:s, s:s, s:{},"
		    " s:[s]}",
		    "server_name", name, "url", "", "database",
		    role == ROLE_VOTER, "status", "Online", "message",
		    "Fully operational", "architecture", uts.machine, "roles",
		    cluster_roles_json(role, id == leader), "failure_domain",
		    "default", "description", "", "config", "groups",
		    "default");
		if (obj == NULL || out == NULL) {
			json_decref(obj);
			json_decref(out);
			json_decref(list);
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "out of memory");
			return -ENOMEM;
		}
		json_object_set_new(obj, "url",
				    json_sprintf("https://%s", address));
		json_array_append_new(out, obj);
	}
	json_decref(list);
	cc->out = out;
	return 0;
}

static void members_done(void *arg, int rv, const char *errmsg)
{
	struct ccall *cc = arg;
	struct api_req *r = cc->r;
	json_t *result = NULL;
	json_t *m;
	size_t i;

	if (rv != 0) {
		corral_errf(cc->errmsg, sizeof cc->errmsg, "%s", errmsg);
		ccall_fail(cc, rv, "list members");
		return;
	}
	/* Status by heartbeat. */
	json_array_foreach(cc->out, i, m)
	{
		char msg[64];
		bool online = api_prop_member_online(
		    cc->a, json_string_value(json_object_get(m, "server_name")),
		    msg, sizeof msg);

		struct api_member_info info;

		json_object_set_new(m, "status",
				    json_string(online ? "Online" : "Offline"));
		json_object_set_new(m, "message", json_string(msg));
		/* What it runs, by its heartbeats (0 before the first). */
		if (api_prop_member_info(
			cc->a,
			json_string_value(json_object_get(m, "server_name")),
			&info)) {
			json_object_set_new(m, "architecture",
					    json_string(info.architecture));
		}
		json_object_set_new(m, "schema", json_integer(info.schema));
		json_object_set_new(m, "api_extensions",
				    json_integer(info.api_extensions));
		json_object_set_new(m, "version", json_string(info.version));
	}
	if (cc->name[0] != '\0') {
		json_array_foreach(cc->out, i, m)
		{
			if (strcmp(json_string_value(
				       json_object_get(m, "server_name")),
				   cc->name) == 0) {
				result = json_incref(m);
			}
		}
		if (result == NULL) {
			corral_errf(cc->errmsg, sizeof cc->errmsg,
				    "member not found");
			ccall_fail(cc, CORRAL_ENOTFOUND, "show member");
			return;
		}
	} else if (cc->role == 1) {
		result = json_incref(cc->out);
	} else {
		result = json_array();
		json_array_foreach(cc->out, i, m)
		{
			json_array_append_new(
			    result,
			    json_sprintf("/1.0/cluster/members/%s",
					 json_string_value(json_object_get(
					     m, "server_name"))));
		}
	}
	api_reply_sync(r, 200, result, NULL, NULL);
	cc->r = NULL;
	ccall_free(cc);
}

static void get_members(struct api_req *r)
{
	char recursion[8] = "";
	struct ccall *cc;

	if (!api_clustered(r->api)) {
		api_reply_error(r, 400, "this server is not clustered");
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		return;
	}
	if (api_query(r, "recursion", recursion, sizeof recursion) > 0 &&
	    strcmp(recursion, "0") != 0) {
		cc->role = 1; /* recursion */
	}
	ccall_submit(cc, false, members_work, members_done, "list members");
}

static void get_member(struct api_req *r)
{
	struct ccall *cc;

	if (!api_clustered(r->api)) {
		api_reply_error(r, 400, "this server is not clustered");
		return;
	}
	cc = ccall_new(r);
	if (cc == NULL) {
		return;
	}
	snprintf(cc->name, sizeof cc->name, "%s", r->match.params[0]);
	ccall_submit(cc, false, members_work, members_done, "show member");
}

/* Remove the member: its row, its server identity, then its raft node
 * (last, so that a failure before leaves everything as it was). */

/* REMOVE node @id from raft when the configuration lists it: after
 * `corrald --recover` the other members are no longer in it. */
static int raft_remove_listed(struct state_tx *tx, uint64_t id)
{
	struct state_raft_node nodes[MAX_RAFT_NODES];
	uint64_t leader = 0;
	size_t n = 0;
	size_t i;
	int rv;

	rv = state_raft_nodes(tx, nodes, MAX_RAFT_NODES, &n, &leader);
	if (rv != 0) {
		return rv;
	}
	for (i = 0; i < n; i++) {
		if (nodes[i].id == id) {
			return state_raft_remove(tx, id);
		}
	}
	return 0;
}

static int delete_member_work(struct state_tx *tx, void *arg)
{
	struct ccall *cc = arg;
	json_t *list = NULL;
	json_t *identities = NULL;
	json_t *m;
	int64_t id = 0;
	size_t i;
	int rv;

	ccall_trust_reset(cc);
	rv = state_member_list(tx, &list);
	if (rv != 0) {
		return rv;
	}
	json_array_foreach(list, i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "name")),
			   cc->name) == 0) {
			id = json_integer_value(json_object_get(m, "id"));
		}
	}
	if (id == 0) {
		json_decref(list);
		corral_errf(tx->errmsg, sizeof tx->errmsg, "member not found");
		return CORRAL_ENOTFOUND;
	}
	if (json_array_size(list) < 2) {
		json_decref(list);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "cannot remove the last member of a cluster");
		return CORRAL_EINVALID;
	}
	json_decref(list);
	rv = state_member_delete(tx, id);
	if (rv == 0) {
		rv = state_identity_list(tx, &identities);
	}
	json_array_foreach(identities, i, m)
	{
		const char *type =
		    json_string_value(json_object_get(m, "type"));
		const char *name =
		    json_string_value(json_object_get(m, "name"));

		if (rv == 0 && strcmp(type, "server") == 0 &&
		    strcmp(name, cc->name) == 0) {
			rv = state_identity_delete(
			    tx, json_string_value(
				    json_object_get(m, "fingerprint")));
		}
	}
	json_decref(identities);
	if (rv == 0) {
		rv = state_trust_snapshot(tx, &cc->trust, &cc->trust_gen);
	}
	if (rv == 0) {
		rv = raft_remove_listed(tx, (uint64_t)id);
	}
	return rv;
}

/* The removal as a database call: db.c installs the new trust store and
 * waits for the other members to acknowledge it before the answer leaves,
 * so the removed member is refused everywhere when the DELETE returns. */
static int delete_member_db_work(struct state_tx *tx, struct api_db_call *c)
{
	struct ccall cc;
	int rv;

	memset(&cc, 0, sizeof cc);
	snprintf(cc.name, sizeof cc.name, "%.63s", c->name);
	rv = delete_member_work(tx, &cc);
	if (rv != 0) {
		json_decref(cc.trust);
		return rv;
	}
	c->trust_snapshot = cc.trust;
	c->trust_gen = cc.trust_gen;
	c->out = json_object();
	log_info("msg=\"member removed\" name=%s", c->name);
	return 0;
}

static void delete_member(struct api_req *r)
{
	struct api_db_call *c;

	if (!api_clustered(r->api)) {
		api_reply_error(r, 400, "this server is not clustered");
		return;
	}
	c = api_db_call_new(r);
	if (c != NULL) {
		api_db_run(c, true, delete_member_db_work);
	}
}

const struct api_route api_routes_cluster[] = {
	{ .path = "/1.0/cluster", .get = get_cluster, .put = put_cluster },
	{ .path = "/1.0/cluster/members",
	  .get = get_members,
	  .post = post_members },
	{ .path = "/1.0/cluster/members/{name}",
	  .get = get_member,
	  .del = delete_member },
	{ .path = "/internal/raft",
	  .post = post_internal_raft,
	  .flags = API_ROUTE_BEFORE_READY },
	{ .path = "/internal/cluster/accept", .post = post_internal_accept },
	{ .path = "/internal/cluster/ready", .post = post_internal_ready },
	{ .path = "/internal/heartbeat", .post = api_prop_heartbeat },
	{ .path = "/internal/changed", .post = api_prop_changed },
};

const unsigned api_n_routes_cluster =
    sizeof api_routes_cluster / sizeof api_routes_cluster[0];

/* ------------------------------------------------------------------------ */
/* ?target=MEMBER forwarding                                                  */

bool api_cluster_from_member(struct api_req *r)
{
	return member_check(r) == 1;
}

struct forward_call {
	struct api_req *r;
	char target[64];
};

/* Answer @r with the member's @status and @body as they are. */
static void forward_finish(struct api_req *r,
			   unsigned status,
			   const char *body,
			   const char *headers)
{
	struct http_conn *conn = r->conn;

	log_debug("msg=\"request\" method=%s path=%s status=%u forwarded=1",
		  http_method_str(r->http->method), r->http->path, status);
	http_conn_respond(conn, status, headers[0] != '\0' ? headers : NULL,
			  NULL, body, strlen(body), false);
	http_conn_unref(conn);
	json_decref(r->unacked);
	free(r);
}

static void forward_done(void *arg,
			 int rv,
			 unsigned status,
			 const char *body,
			 const char *headers,
			 const char *errmsg)
{
	struct forward_call *f = arg;

	if (rv != 0) {
		api_reply_error(f->r, 503, "forward to member \"%s\": %s",
				f->target, errmsg);
	} else {
		forward_finish(f->r, status, body, headers);
	}
	free(f);
}

/* Append API_FWD_CERTIFICATE with @x509 (an X509 *) as base64 DER to
 * @out, when it fits; the target needs it for a client trusted through
 * server.ca rather than the trust store. */
static void forward_cert_header(void *x509, char *out, size_t size)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x509, &der);
	size_t b64_len = n > 0 ? 4 * (((size_t)n + 2) / 3) : 0;
	size_t name = sizeof API_FWD_CERTIFICATE - 1;

	if (n > 0 && b64_len <= API_FWD_CERTIFICATE_MAX &&
	    name + 2 + b64_len + 3 <= size) {
		memcpy(out, API_FWD_CERTIFICATE ": ", name + 2);
		EVP_EncodeBlock((unsigned char *)out + name + 2, der, n);
		memcpy(out + name + 2 + b64_len, "\r\n", 3);
	}
	OPENSSL_free(der);
}

void api_cluster_caller_headers(const struct api_req *r, char *out, size_t size)
{
	int len;

	len = snprintf(out, size,
		       API_FWD_PROTOCOL ": %s\r\n" API_FWD_FINGERPRINT
					": %s\r\n" API_FWD_ADDRESS ": %s\r\n",
		       r->tls ? "tls" : "unix", r->fingerprint, r->remote_addr);
	if (r->tls && r->peer_x509 != NULL && len > 0 && (size_t)len < size) {
		forward_cert_header(r->peer_x509, out + len,
				    size - (size_t)len);
	}
}

void api_cluster_relay(struct api_req *r, unsigned status, const char *body)
{
	forward_finish(r, status, body, "");
}

bool api_cluster_forward(struct api_req *r)
{
	struct api *a = r->api;
	struct forward_call *f;
	char headers[API_FWD_HEADERS_SIZE];
	char *url;
	int rv;

	if (r->forwarded || strncmp(r->route->path, "/internal/", 10) == 0) {
		return false;
	}
	f = calloc(1, sizeof *f);
	if (f == NULL) {
		api_reply_error(r, 500, "out of memory");
		return true;
	}
	f->r = r;
	rv = api_query(r, "target", f->target, sizeof f->target);
	if (rv == -ENOENT || (rv >= 0 && f->target[0] == '\0') ||
	    a->cluster == NULL || !api_clustered(a) ||
	    strcmp(f->target, a->member_name) == 0) {
		free(f);
		return false;
	}
	if (rv < 0) {
		free(f);
		api_reply_error(r, 400, "invalid target");
		return true;
	}
	api_cluster_caller_headers(r, headers, sizeof headers);
	url = api_request_target(r);
	rv = url == NULL
		 ? -ENOMEM
		 : cluster_forward(a->cluster, f->target,
				   http_method_str(r->http->method), url,
				   headers, r->http->body, forward_done, f);
	free(url);
	if (rv == -ENOENT) {
		api_reply_error(r, 404, "cluster member \"%s\" not found",
				f->target);
		free(f);
		return true;
	}
	if (rv != 0) {
		api_reply_error(r, 500, "forward to member \"%s\": %s",
				f->target, corral_strerror(rv));
		free(f);
	}
	return true;
}
