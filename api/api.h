/* Internal interface of the api/ module: the API object, per-request state,
 * route tables and reply helpers shared by the endpoint files. */
#ifndef CORRAL_API_API_H
#define CORRAL_API_API_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <corral/api.h>
#include <corral/err.h>
#include <corral/state.h>

#include "http.h"
#include "https.h"
#include "router.h"

struct api_req;
struct api_prop;
struct api_listeners_op;

/* Areas whose generations members compare: trust, projects, profiles,
 * instances, config (api/propagation.c). */
#define API_PROP_AREAS 5

/* A handler answers with one of the api_reply_*() calls, at once or later
 * on the loop. */
typedef void (*api_handler)(struct api_req *r);

/* One route: a path pattern and a handler per method (NULL = not allowed). */
struct api_route {
	const char *path;
	api_handler get;
	api_handler put;
	api_handler post;
	api_handler patch;
	api_handler del;
	unsigned flags;
};

/* Route flags. */
enum {
	/* GET served before the database is ready. */
	API_ROUTE_EARLY = 1 << 0,
	/* Every method served before the database is ready (raft streams:
	 * the database of a cluster starting cold needs them). */
	API_ROUTE_BEFORE_READY = 1 << 1,
};

struct api {
	uv_loop_t *loop; /* borrowed */
	struct http_server http;
	uv_pipe_t unix_listener;
	bool unix_listening;
	char *state_dir;   /* owned */
	char *socket_path; /* owned */
	gid_t socket_gid;
	bool have_gid;
	char *cert_pem; /* owned */
	char fingerprint[65];
	bool ready;
	char not_ready_reason[CORRAL_ERRMSG_SIZE];
	uint64_t started_ns;

	struct state *state;     /* borrowed */
	struct cluster *cluster; /* borrowed, may be NULL */
	/* This member's name ("none" when standalone); loaded when the
	 * database is ready and after enable or join (endpoints_cluster.c). */
	char member_name[64];
	char ready_name[64]; /* member name read at start, until ready */
	/* Start loads (trust store, config, member name) that failed, e.g.
	 * during an election, are run again on this timer. */
	uv_timer_t ready_timer;
	bool ready_timer_init;
	/* Requests waiting for a trust store reload before their member
	 * check (endpoints_cluster.c). Owned list. */
	struct api_member_wait *member_waits;
	bool member_reloading;
	/* The enable or join in progress (endpoints_cluster.c), or NULL. */
	void *cluster_pending;
	/* Heartbeats and change notifications (propagation.c). Owned. */
	struct api_prop *prop;

	/* Bumped by every successful database write made through this API:
	 * list caches keyed by it never serve what a write changed. */
	uint64_t write_gen;
	struct api_list_cache *lists; /* owned */

	/* Server config as last read from or written to the database:
	 * cluster-wide and member-local keys, trust password already hidden
	 * as "true". Owned. Replaced after every config write. */
	json_t *config;

	/* Serialised answer to a trusted GET /1.0, rebuilt when it is
	 * invalidated (server config changes). */
	char *root_cache; /* owned */
	size_t root_cache_len;
	char root_etag[65];

	/* Operations (in memory) and /1.0/events listeners: owned, created
	 * by api_create(), timers closed by api_close(). */
	struct ops *ops;
	struct events *events;

	/* Identities and role bindings by fingerprint, with the password
	 * limiter (api/trust.h). Owned; replaced by api_trust_reload(). */
	struct trust_cache *trust;

	/* PKI mode (DIR/server.ca present), or NULL. Owned. */
	struct pki *pki;
	bool trust_ca; /* core.trust_ca_certificates */

	/* TLS listener of core.https_address. The context is created on the
	 * first start and shared by every connection (each holds a
	 * reference). */
	SSL_CTX *tls_ctx;
	struct https_listener https;
	char https_address[256]; /* configured address, "" when off */
	/* cluster.https_address as the listeners serve it ("" when unset),
	 * and the second listener, same context, server and policies, bound
	 * only when the core listener does not cover that address
	 * (https_address_covers()); cluster_https_address is the address it
	 * was started for, "" when it is off. Changed only through
	 * api_listeners_set(), one change at a time (the others queue). */
	char cluster_address[256];
	struct https_listener cluster_https;
	char cluster_https_address[256];
	struct api_listeners_op *listeners_op;    /* running, or NULL */
	struct api_listeners_op *listeners_queue; /* waiting, owned */
	bool listeners_closed;     /* api_close() began: bind nothing more */
	bool listeners_close_wait; /* api_close() waits for listeners_op */

	int closing_handles;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Per-request state, allocated when a request arrives and freed by the
 * reply. */
struct api_req {
	struct api *api;           /* borrowed */
	struct http_conn *conn;    /* referenced until the reply */
	struct http_request *http; /* owned by conn */
	const struct api_route *route;
	struct router_match match;
	bool trusted; /* Unix socket, or a TLS client in the trust store */
	bool tls;     /* arrived over the TLS listener */
	char fingerprint[65]; /* TLS client certificate, "" when none */
	void *peer_x509;      /* X509 * of the TLS client, borrowed, or NULL */
	char remote_addr[64]; /* "ip:port" of a TLS client, "@" for Unix */
	/* Forwarded by a member (?target=): the identity above is the
	 * original caller's, from the API_FWD_* headers. */
	bool forwarded;
	char errmsg[CORRAL_ERRMSG_SIZE];
	/* Set after a change notification: api_reply_sync() adds
	 * "unacknowledged_members" (this array, owned, or null) to the
	 * metadata. */
	bool unacked_set;
	json_t *unacked;
};

struct authz_subject;

/* The authorization subject of @r: the Unix socket, a TLS identity from the
 * trust store (borrowed until the next trust install: use it on the loop,
 * before any asynchronous step), or a PKI-trusted client. */
void api_subject(const struct api_req *r, struct authz_subject *s);

/* The authorization subject of whoever holds @conn now (trust store and
 * PKI as of this moment). Returns false when it is no longer trusted. */
bool api_conn_subject(struct api *a,
		      struct http_conn *conn,
		      struct authz_subject *s);

/* Whether the caller of @r is a server admin. */
bool api_caller_admin(const struct api_req *r);

/* Reply with the sync envelope. @metadata is stolen (NULL means JSON null).
 * @status is 200 or 201; @location, when not NULL, becomes the Location
 * header; @etag, when not NULL, the ETag header. */
void api_reply_sync(struct api_req *r,
		    unsigned status,
		    json_t *metadata,
		    const char *location,
		    const char *etag);

/* Reply with the error envelope, HTTP status @status and the formatted
 * message. */
void api_reply_error(struct api_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like api_reply_error() with extra response headers (each "Name: value\r\n")
 * and a message taken verbatim. */
void api__reply_error_headers(struct api_req *r,
			      unsigned status,
			      const char *headers,
			      const char *msg);

/* Reply with pre-serialised JSON @body (copied) and status 200, with an ETag
 * header when @etag is not NULL. */
void api_reply_raw_json(struct api_req *r,
			const char *body,
			size_t len,
			const char *etag);

/* Reply with an error envelope for a negative code: CORRAL_ENOTFOUND -> 404,
 * CORRAL_EEXIST/ECONFLICT -> 409, CORRAL_EINVALID -> 400, CORRAL_EFORBIDDEN
 * -> 403, anything else 500. The message is r->errmsg when set, else the
 * code's description. */
void api_reply_code(struct api_req *r, int rv);

/* Serialise a sync envelope around @metadata (borrowed) into a malloc'd
 * string. Returns NULL on OOM. */
char *api_envelope_sync(json_t *metadata, unsigned status, size_t *len);

/* Serialise an error envelope. Returns NULL on OOM. */
char *api_envelope_error(unsigned status, const char *msg, size_t *len);

/* Decode query parameter @name of the request into @dst; see
 * router_query_get(). */
int api_query(struct api_req *r, const char *name, char *dst, size_t size);

/* A database call made by a handler: the work function runs on a worker
 * thread with the fields below, then the reply is sent on the loop. */
struct api_db_call;
typedef int (*api_db_fn)(struct state_tx *tx, struct api_db_call *c);
typedef void (*api_db_reply_fn)(struct api_db_call *c, int rv);

struct api_db_call {
	struct api_req *r;      /* answered by the default reply */
	json_t *in;             /* owned: request body or other input */
	json_t *out;            /* owned: result for the reply */
	char project[128];      /* the request's project */
	char name[256];         /* the route's name parameter */
	char new_name[256];     /* rename target */
	char if_match[80];      /* If-Match without quotes, or "" */
	char etag[65];          /* ETag of the answer, or "" */
	char location[512];     /* Location of a created resource, or "" */
	unsigned status;        /* success status, 200 when 0 */
	bool urls;              /* list answer: names -> URLs */
	char url_prefix[64];    /* e.g. "/1.0/profiles/" */
	api_db_reply_fn reply;  /* custom reply, or NULL */
	bool patch;             /* handler-specific: PATCH rather than PUT */
	bool admin;             /* the caller is a server admin (guard rails) */
	bool write;             /* set by api_db_run() */
	uint64_t write_gen;     /* api write generation when the call began */
	char aux[256];          /* handler-specific string */
	char aux2[128];         /* handler-specific string */
	json_t *trust_snapshot; /* owned: trust store after a trust write */
	int64_t trust_gen;      /* its generation */
	bool propagated;        /* the change notification is done */
	int64_t gens_before[API_PROP_AREAS]; /* loaded when the call began */
	const char *cache_route; /* api_db_list_cached(): the cache key */
	bool gens_wanted;        /* read gens_after in the write transaction */
	bool gens_read; /* gens_after holds the committed generations */
	int64_t gens_after[API_PROP_AREAS];
	json_t *members_after; /* owned: the members when it committed */
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* Allocate a call for @r with its project (from ?project=, default
 * "default"), name parameter and If-Match header filled. Answers the
 * request itself and returns NULL on bad input or OOM. */
struct api_db_call *api_db_call_new(struct api_req *r);

/* Run @fn off the loop (in one transaction when @write), then reply: an
 * error code maps through api_reply_code(); success sends c->out (a sync
 * answer with c->status, c->location and c->etag). Takes ownership of @c. */
void api_db_run(struct api_db_call *c, bool write, api_db_fn fn);

/* Turn a list of names or of objects with a "name" into URLs under
 * c->url_prefix (with ?project= unless the project is default). Takes
 * ownership of @list; returns a new array, or NULL on OOM. */
json_t *api_list_to_urls(struct api_db_call *c, json_t *list);

/* Cached serialised list answers, keyed by route, project, form and write
 * generation. api_list_cache_get() returns the cached body (borrowed until
 * the next put) or NULL; put copies @body when @gen is still current. */
const char *api_list_cache_get(struct api *a,
			       const char *route,
			       const char *project,
			       bool urls,
			       size_t *len);
void api_list_cache_put(struct api *a,
			const char *route,
			const char *project,
			bool urls,
			uint64_t gen,
			const char *body,
			size_t len);
void api_list_cache_destroy(struct api *a);

/* Answer the list @c asks for from the list cache under @route (a static
 * string) when it holds the current generation; otherwise run @fn (a read)
 * and remember its answer (an array of objects, or of names turned into
 * URLs when c->urls). Only for answers that are the same for every caller
 * allowed to ask. Takes ownership of @c. */
void api_db_list_cached(struct api_db_call *c, const char *route, api_db_fn fn);

/* Parse the request body as a JSON object. Answers 400 and returns NULL
 * when it is not one. */
json_t *api_body_object(struct api_req *r);

/* ETag of @obj: lowercase hex SHA-256 of its compact, key-sorted JSON. */
void api_etag(json_t *obj, char out[65]);

/* Append "@prefix + url-encoded @name" (+ "?project=P" unless P is
 * "default") to @array. Returns 0 or -ENOMEM. */
int api_url_append(json_t *array,
		   const char *prefix,
		   const char *name,
		   const char *project);

/* The route tables of each endpoint file. */
extern const struct api_route api_routes_server[];
extern const unsigned api_n_routes_server;
extern const struct api_route api_routes_projects[];
extern const unsigned api_n_routes_projects;
extern const struct api_route api_routes_profiles[];
extern const unsigned api_n_routes_profiles;
extern const struct api_route api_routes_operations[];
extern const unsigned api_n_routes_operations;
extern const struct api_route api_routes_roles[];
extern const unsigned api_n_routes_roles;
extern const struct api_route api_routes_certificates[];
extern const unsigned api_n_routes_certificates;
extern const struct api_route api_routes_cluster[];
extern const unsigned api_n_routes_cluster;

/* Clustering hooks of api.c (endpoints_cluster.c). */

/* Whether this daemon is a cluster member. */
bool api_clustered(const struct api *a);

/* Decide a route of rule kind POLICY_MEMBER (@join false: only members,
 * by their server certificate) or POLICY_JOIN (@join true: any TLS client
 * presenting a certificate; the handler checks its join secret). Returns
 * true to go on; otherwise the request is answered (403) or parked until
 * the trust store is reloaded, then dispatched or refused. */
bool api_cluster_authorize(struct api_req *r, bool join);

/* Headers carrying the original caller of a request a member forwards
 * (?target=MEMBER), honoured only on a connection authenticated by a
 * member's server certificate: "tls" or "unix", the caller's certificate
 * fingerprint ("" when none), its address. */
#define API_FWD_PROTOCOL "X-Corral-Forwarded-Protocol"
#define API_FWD_FINGERPRINT "X-Corral-Forwarded-Fingerprint"
#define API_FWD_ADDRESS "X-Corral-Forwarded-Address"
/* The caller's certificate (base64 DER, no line breaks), so that the target
 * can check a client trusted through server.ca rather than the trust store
 * (PKI mode); it must hash to API_FWD_FINGERPRINT. */
#define API_FWD_CERTIFICATE "X-Corral-Forwarded-Certificate"
/* Bound on that header's value: an RSA 8192 certificate fits. */
#define API_FWD_CERTIFICATE_MAX 6144

/* Room for the API_FWD_* header lines of one request. */
#define API_FWD_HEADERS_SIZE \
	(512 + sizeof API_FWD_CERTIFICATE + API_FWD_CERTIFICATE_MAX)

/* Write the API_FWD_* header lines naming the caller of @r into @out
 * (@size bytes, API_FWD_HEADERS_SIZE fits all): what a member sends along
 * with a request it makes on the caller's behalf, so that the member
 * receiving it authorizes that caller (never the member certificate). The
 * certificate line is left out when it does not fit. */
void api_cluster_caller_headers(const struct api_req *r,
				char *out,
				size_t size);

/* Answer @r with a member's HTTP @status and JSON @body (borrowed) as they
 * are (the answer to a request made on @r's behalf), and free @r. */
void api_cluster_relay(struct api_req *r, unsigned status, const char *body);

/* Tokens and their operations (endpoints_operations.c). */

/* What a token row records in its data about the operation @op_id
 * (copied) that this member is about to create for it: {"operation",
 * "member", "node_id", "boot"} (see state_token_prune()). A new object, or
 * NULL on OOM. */
json_t *api_token_owner(struct api *a, const char *op_id);

/* Once the database is ready, before the API is: delete the tokens this
 * member (a standalone daemon: any) issued in an earlier run, whose
 * operations died with it, and log how many; then call @done (also when
 * the deletion failed, after a few attempts, which is logged). */
void api_tokens_prune(struct api *a, void (*done)(struct api *a));

/* A token whose data names member @member and operation @op_id was
 * redeemed on this member: when another member issued it, tell that member
 * (POST /internal/tokens/used), which ends the operation, so the used token
 * is no longer listed there. Fire and forget: a failure is logged, and the
 * operation then ends when it expires or is cancelled. Loop only. */
void api_token_used(struct api *a, const char *member, const char *op_id);

/* Whether @r arrived over TLS from a member: its certificate is a `server`
 * identity in the trust store (before the database can be read: listed in
 * cluster.members). Never a database round trip. */
bool api_cluster_from_member(struct api_req *r);

/* @r's request target, path and query as they came (the parser keeps them
 * apart): a new string, or NULL on OOM. */
char *api_request_target(const struct api_req *r);

/* ?target=NAME naming another member: forward @r over the member channel
 * to that member, with the original caller's identity in the API_FWD_*
 * headers, and relay its answer (the member authorizes the caller again).
 * An unknown member is answered 404. Returns true when @r was taken (it
 * is or will be answered), false to serve it here (no target, this
 * member's name, an internal route, a request forwarded already, or a
 * standalone daemon). */
bool api_cluster_forward(struct api_req *r);

/* After a trust store install: keep cluster.members in step with the
 * `server` identities of @identities (borrowed). */
void api_cluster_trust_installed(struct api *a, json_t *identities);

/* In the transaction that loads the trust store at start: this member's
 * name from the member list, into @name ("" when standalone or not
 * listed). */
int api_cluster_name_read(struct state_tx *tx,
			  struct api *a,
			  char *name,
			  size_t size);

/* Answer 503 "corrald setup in progress: REASON", with what the database
 * start waits for when it waits for a leader. */
void api_reply_not_ready(struct api_req *r);

/* Once the database is ready, before any request is served: take @name
 * (from api_cluster_name_read()) as this member's name and start
 * heartbeats. */
void api_cluster_ready(struct api *a, const char *name);

/* Completion of api_listeners_set(): @rv 0, or a negative code with
 * @errmsg naming the key whose listener failed, e.g. "cluster.https_address:
 * listen on 127.0.0.2:8443: address already in use". */
typedef void (*api_https_cb)(struct api *a,
			     int rv,
			     const char *errmsg,
			     void *arg);

/* Flags of api_listeners_set(). */
enum {
	/* Start the listeners again even when their addresses stay: the TLS
	 * context was dropped (a joiner presents cluster.crt from then on). */
	API_LISTENERS_RESTART = 1 << 0,
};

/* Make the TLS listeners serve @core (core.https_address, "" for none,
 * NULL to keep the current one) and @cluster (cluster.https_address,
 * likewise). A second listener is bound on @cluster unless the core
 * listener covers it (https_address_covers() of the configured or, when
 * it stays, the bound core address): both serve the same API with the
 * same certificate. Only a listener whose address changes is stopped and
 * started again (the core one first); connections already accepted stay
 * open. When a bind fails, both listeners are put back as they were (on
 * the ports they had) before @cb gets the error: nothing changed. Changes
 * run one at a time in call order; @cb runs on the loop, possibly before
 * this returns. Strings are copied. */
void api_listeners_set(struct api *a,
		       const char *core,
		       const char *cluster,
		       unsigned flags,
		       api_https_cb cb,
		       void *arg);

/* Move the core listener to @address ("" stops it), keeping
 * cluster.https_address: api_listeners_set(@a, @address, NULL, 0, ...). */
void api_https_set(struct api *a,
		   const char *address,
		   api_https_cb cb,
		   void *arg);

/* What the listeners serve now (configured and bound addresses), to put
 * back with api_listeners_restore() when the config write that followed a
 * change failed: a new object, NULL on OOM. */
json_t *api_listeners_snapshot(struct api *a);

/* Put the listeners back as @snapshot (borrowed) says, on the ports they
 * had then. @cb as for api_listeners_set(). */
void api_listeners_restore(struct api *a,
			   json_t *snapshot,
			   api_https_cb cb,
			   void *arg);

/* Record @core and @cluster (NULL leaves one as it is) as the configured
 * addresses of the listeners that already serve them, after enable or join
 * stored them with a port 0 made real. No listener is touched. */
void api_listeners_configured(struct api *a,
			      const char *core,
			      const char *cluster);

/* Install a trust store snapshot (identities with roles, as from
 * state_trust_snapshot()) when @generation is newer than the cache's, and
 * close every TLS connection (events streams included) of a certificate
 * that was trusted and no longer is. @identities is borrowed. */
void api_trust_install(struct api *a, json_t *identities, int64_t generation);

/* Close every TLS connection served as trusted whose certificate is no
 * longer trusted (after a trust or PKI config change). */
void api_close_untrusted(struct api *a);

/* Whether @conn has been served as a trusted TLS client. */
bool api_conn_was_trusted(const struct http_conn *conn);

/* The route tables, for the route-table test: the number of tables, and
 * table @i with its size in *@n. */
unsigned api_route_table_count(void);
const struct api_route *api_route_table(unsigned i, unsigned *n);

/* The addresses clients can reach the TLS listener at, as a new JSON array
 * of "ip:port" strings: the bound address, or every global unicast address
 * of the host when bound to a wildcard. Empty when not listening; NULL on
 * OOM. */
json_t *api_listen_addresses(struct api *a);

/* Reload the cached server config from the database (after start and after
 * every config write). @done runs on the loop. */
void api_config_reload(struct api *a, void (*done)(struct api *a, int rv));

/* Drop the cached GET /1.0 answer. */
void api_invalidate_root(struct api *a);

/* Propagation between members (propagation.c). */

/* Start heartbeats once this member knows its name (idempotent: later
 * calls read the member list again at once, e.g. after a join). */
void api_prop_start(struct api *a);

/* Stop the heartbeat timer; @cb runs once it is closed. */
void api_prop_close(struct api *a, void (*cb)(void *arg), void *arg);

/* Free the propagation state. */
void api_prop_destroy(struct api *a);

/* The generations this member has loaded (-1: unknown). */
void api_prop_gens(struct api *a, int64_t gens[API_PROP_AREAS]);

/* What a member runs, as its heartbeats tell: for GET /1.0/cluster/members
 * (an extension of LXD's fields, for rolling upgrades). 0 and "" when
 * unknown. */
struct api_member_info {
	int schema;         /* the newest database schema its binary knows */
	int api_extensions; /* how many API extensions it advertises */
	char version[32];
	char architecture[72];
};

/* This member's own. */
void api_member_info_local(struct api_member_info *info);

/* Member @name's, from its last heartbeat (this member's own when @name is
 * this member). Returns false, with @info zeroed, when none arrived yet. */
bool api_prop_member_info(struct api *a,
			  const char *name,
			  struct api_member_info *info);

/* Tell every member about a change committed outside api_db_run() (a
 * member accepted into the cluster): send the current generations, with
 * the trust store @trust (borrowed, may be NULL) at @trust_gen inline, and
 * call @done (with the names that did not acknowledge, or NULL) once all
 * acknowledged or the notify timeout passed. Returns 0 when started (@done
 * will run), else a negative code (standalone, not started, OOM). */
int api_prop_announce(struct api *a,
		      json_t *trust,
		      int64_t trust_gen,
		      void (*done)(void *arg, json_t *missing),
		      void *arg);

/* Read every area's generation in @tx, with one query, and the member list
 * (the members a change notification goes to) into *@members (any
 * thread). */
int api_prop_gens_read(struct state_tx *tx,
		       int64_t gens[API_PROP_AREAS],
		       json_t **members);

/* Whether member @name has been heard from within
 * cluster.offline_threshold seconds; @msg gets LXD's status message. */
bool api_prop_member_online(struct api *a,
			    const char *name,
			    char *msg,
			    size_t size);

/* Whether this member is stale: clustered and out of contact with a
 * quorum of the database voters for longer than corral.stale_bound ms,
 * or back in contact but not yet reloaded. Loop only; starts the repair
 * when contact is back. A standalone daemon is never stale. */
bool api_prop_stale(struct api *a);

/* The staleness check of the dispatcher: when @r came over TLS, is not
 * GET / or GET /1.0 nor a member channel route (/internal/...), and this
 * member is stale, answer 503 "member out of contact with the cluster"
 * and return true; else return false. */
bool api_prop_refuse(struct api_req *r);

/* POST /internal/heartbeat and POST /internal/changed handlers. */
void api_prop_heartbeat(struct api_req *r);
void api_prop_changed(struct api_req *r);

/* After the write @c committed on a cluster member: notify the other
 * members of every generation it bumped, wait for their acknowledgements
 * (corral.notify_timeout), set c->r's unacknowledged members, then call
 * @done. Returns 0 when @done will be called, else a negative code (not
 * clustered, OOM). */
int api_prop_after_write(struct api_db_call *c,
			 void (*done)(struct api_db_call *c));

#endif /* CORRAL_API_API_H */
