/* Clustering: the member channel and the membership decisions.
 *
 * A member reaches another member's dqlite node only through the member
 * channel: mutual TLS to the peer's cluster address, where this member
 * presents its own server.crt and the peer must present the shared
 * cluster.crt, then `POST /internal/raft` upgraded to a raw dqlite stream.
 * cluster_create() registers that dialer with the state module, which uses
 * it for raft traffic and for SQL sent to a leader on another member.
 *
 * Files in the state dir: cluster.crt/cluster.key (the shared cluster key
 * pair; present on every member) and cluster.members (the fingerprints of
 * the members' server certificates, one per line: who may open raft
 * streams before the trust store can be read from the database).
 *
 * The API layer drives enable, join and removal (api/endpoints_cluster.c);
 * everything here runs on the loop unless said otherwise. */
#ifndef CORRAL_CLUSTER_H
#define CORRAL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <corral/err.h>
#include <corral/state.h>

struct cluster;

/* Settings of the cluster module; strings are copied. */
struct cluster_config {
	const char *state_dir; /* holds server.crt, cluster.crt, ... */
	struct state *state;   /* borrowed, must outlive the module */
};

/* Allocate the module, read cluster.crt and cluster.members when present
 * and register the member channel dialer with @cfg->state (before
 * state_start()). Returns 0, -ENOMEM, or CORRAL_ETLS for an unreadable
 * cluster.crt, with @errmsg filled. */
int cluster_create(uv_loop_t *loop,
		   const struct cluster_config *cfg,
		   struct cluster **out,
		   char *errmsg);

/* Free @c. Relay threads still running own their own resources. Accepts
 * NULL. */
void cluster_destroy(struct cluster *c);

/* Whether this daemon holds the cluster certificate (enabled or joined). */
bool cluster_enabled(const struct cluster *c);

/* The fingerprint of cluster.crt (borrowed), "" when not enabled. */
const char *cluster_fingerprint(const struct cluster *c);

/* Paths of the certificate and key the TLS listener presents: cluster.crt
 * when enabled, else server.crt (borrowed from @c). */
const char *cluster_listener_crt(const struct cluster *c);
const char *cluster_listener_key(const struct cluster *c);

/* Make this daemon the first member: cluster.crt/cluster.key become copies
 * of server.crt/server.key. Returns 0 or a negative code with @errmsg. */
int cluster_enable_files(struct cluster *c, char *errmsg);

/* Whether @fp is in cluster.members. */
bool cluster_member_known(const struct cluster *c, const char *fp);

/* Replace cluster.members by the fingerprints in @fps (array of strings,
 * borrowed). Returns 0 or a negative code with @errmsg. */
int cluster_members_save(struct cluster *c, json_t *fps, char *errmsg);

/* A request to join a cluster (LXD's PUT /1.0/cluster fields). Strings are
 * copied by cluster_join(). */
struct cluster_join_req {
	const char *server_name;
	const char *server_address;  /* this member's address */
	const char *cluster_address; /* an existing member's address */
	const char *cluster_cert;    /* its certificate (PEM) */
	const char *secret;          /* the join token's secret */
};

/* Completion of cluster_join() on the loop: @rv 0 with the new member's raft
 * id @node_id, or an error with @errmsg. */
typedef void (*cluster_join_cb)(void *arg,
				int rv,
				uint64_t node_id,
				const char *errmsg);

/* Off the loop: dial @req->cluster_address presenting server.crt and
 * pinning @req->cluster_cert, ask the member to accept us
 * (`POST /internal/cluster/accept`), and store what it answers:
 * cluster.crt/cluster.key and cluster.members. @cb runs on the loop.
 * Returns 0 when scheduled, CORRAL_EINVALID for a certificate that does not
 * parse, -ENOMEM. */
int cluster_join(struct cluster *c,
		 const struct cluster_join_req *req,
		 cluster_join_cb cb,
		 void *arg);

/* Tell the member at @address (borrowed; the one this daemon joined
 * through) that our node @node_id runs, with
 * `POST /internal/cluster/ready {"id": N}` on the member channel (server.crt
 * presented, cluster.crt pinned: call after cluster_join() completed). The
 * member makes the node, a spare until then, a stand-by: the leader starts
 * replicating to it, and its first connection finds the node running.
 * Blocking: worker threads only. Returns 0, or CORRAL_EFORBIDDEN (403),
 * CORRAL_EINVALID (another refusal), CORRAL_EPROTO or a dial error, with
 * @errmsg (CORRAL_ERRMSG_SIZE bytes) filled. */
int cluster_join_ready(struct cluster *c,
		       const char *address,
		       uint64_t node_id,
		       char *errmsg);

/* The PEM of cluster.crt and cluster.key, for a member being accepted:
 * malloc'd strings owned by the caller (wipe the key). Returns 0 or a
 * negative code with @errmsg. */
int cluster_key_pair(struct cluster *c,
		     char **crt_pem,
		     char **key_pem,
		     char *errmsg);

/* ------------------------------------------------------------------------ */
/* Heartbeats and change notifications                                        */

/* Make the heartbeat threads match @peers (array of {"name", "address"},
 * borrowed; the other members, this one excluded): one detached thread per
 * peer sends `POST /internal/heartbeat` with the current heartbeat body
 * every second on a kept connection, redialing after a failure. Peers no
 * longer listed (or at a new address) are stopped. Loop only. Returns 0,
 * -ENOMEM, or -ENOTCONN when this daemon is not a member. */
int cluster_peers_set(struct cluster *c, json_t *peers);

/* When peer @name last answered a heartbeat with 200: uv_hrtime() in
 * milliseconds (the clock of uv_now()), 0 when it never did or is not a
 * peer. Loop only. */
/* Like cluster_peers_set() but only adds: start heartbeats to the peers of
 * @peers not known yet (a member that joined since the last member list
 * read), stopping none. Loop only. */
int cluster_peers_add(struct cluster *c, json_t *peers);

uint64_t cluster_peer_answered_ms(const struct cluster *c, const char *name);

/* Replace the body heartbeats carry: the @len bytes at @body (copied), a
 * msgpack message (cluster_msg_pack()) sent as CLUSTER_MSG_CONTENT_TYPE.
 * Loop only. Returns 0 or -ENOMEM. */
int cluster_heartbeat_body_set(struct cluster *c, const char *body, size_t len);

/* Completion of cluster_broadcast() on the loop: @missing is the array of
 * the names of the peers that did not answer 200 in time (borrowed; NULL
 * on OOM). */
typedef void (*cluster_broadcast_cb)(void *arg, json_t *missing);

/* Send `POST @path` with the @body_len bytes at @body, a msgpack message
 * (cluster_msg_pack()) sent as CLUSTER_MSG_CONTENT_TYPE (both copied), to
 * every peer of @peers (an array of {"name", "address"}, borrowed; NULL
 * for those set by cluster_peers_set()), in parallel (one thread per peer,
 * on a kept connection when there is one, else a new one), and call @cb
 * once all answered or @timeout_ms passed. Returns 0 when scheduled (@cb
 * will run), else -ENOMEM or a libuv error. */
int cluster_broadcast(struct cluster *c,
		      json_t *peers,
		      const char *path,
		      const char *body,
		      size_t body_len,
		      unsigned timeout_ms,
		      cluster_broadcast_cb cb,
		      void *arg);

/* Completion of cluster_forward() on the loop: @rv 0 with the member's
 * HTTP @status, @body (borrowed, "" when empty) and @headers, the header
 * lines of its answer a client may rely on ("ETag: ...\r\n" and
 * "Location: ...\r\n" when present; "" when none), else an error with
 * @errmsg. */
typedef void (*cluster_forward_cb)(void *arg,
				   int rv,
				   unsigned status,
				   const char *body,
				   const char *headers,
				   const char *errmsg);

/* Send `@method @target` (the request target, query included) with the
 * extra header lines @headers ("Name: value\r\n"..., or NULL) and the JSON
 * @body (or NULL) to peer @name (one set by cluster_peers_set()), on a
 * fresh member channel connection (this member's server.crt, the peer
 * pinned to cluster.crt) off the loop; waits up to 30 s for the answer.
 * All strings are copied. Returns 0 when scheduled (@cb will run), -ENOENT
 * when @name is not a peer, -ENOMEM or a libuv error. Loop only. */
int cluster_forward(struct cluster *c,
		    const char *name,
		    const char *method,
		    const char *target,
		    const char *headers,
		    const char *body,
		    cluster_forward_cb cb,
		    void *arg);

/* Relay the event @event (@len bytes of JSON, copied: one event object as
 * GET /1.0/events sends it) to every peer (set by cluster_peers_set()):
 * each peer has a queue (at most 1024 events; the oldest go first when
 * full, logged) and a thread that sends it in order, in batches, as
 * `POST /internal/events {"events": [...]}` on a kept member channel
 * connection. Best effort: what a peer cannot take is dropped. Loop
 * only. */
void cluster_events_relay(struct cluster *c, const char *event, size_t len);

/* The names of the peers set by cluster_peers_set() (the other members),
 * as a new array of strings, or NULL on OOM. Loop only. */
json_t *cluster_peer_names(const struct cluster *c);

/* One member's answer to cluster_fanout(), borrowed for the callback. */
struct cluster_answer {
	const char *name; /* the member */
	/* 0: it answered with @status and @body ("" when empty); else no
	 * answer: -ETIMEDOUT (not within the bound, or not waited for once
	 * another member was found), a dial or I/O error, with @errmsg. */
	int rv;
	unsigned status;
	const char *body;
	const char *errmsg;
};

/* Completion of cluster_fanout() on the loop: one entry per member asked
 * (@n is 0 when none was asked, or on OOM). */
typedef void (*cluster_fanout_cb)(void *arg,
				  const struct cluster_answer *answers,
				  size_t n);

/* Send `@method @target` with the extra header lines @headers (or NULL)
 * and the JSON @body (or NULL: none) to the peers (set by
 * cluster_peers_set()) named in @names (an array of strings, borrowed;
 * NULL: every peer), in parallel: one detached thread per member, each on
 * a fresh member channel connection (this member's server.crt, the peer
 * pinned to cluster.crt), so no libuv worker thread is held. @cb runs on
 * the loop once every member answered or failed, or @timeout_ms passed
 * (members still silent then count as -ETIMEDOUT; their threads end on
 * their own, at the latest when the dial or socket timeouts fire), or,
 * with @until_found, as soon as one member answered with a status that is
 * neither 404 nor 5xx (looking up what exactly one member has; a member
 * that cannot serve answers 5xx, which says nothing). All strings are
 * copied. Loop only. Returns 0 when scheduled (@cb will run, also when no
 * member is asked), -ENOMEM or a libuv error. */
int cluster_fanout(struct cluster *c,
		   json_t *names,
		   const char *method,
		   const char *target,
		   const char *headers,
		   const char *body,
		   unsigned timeout_ms,
		   bool until_found,
		   cluster_fanout_cb cb,
		   void *arg);

/* ------------------------------------------------------------------------ */
/* Membership decisions (pure)                                                */

/* The raft role a member should get once it runs, given the current raft
 * configuration @nodes (@n entries, the member @self included with its
 * current role): voter while there are fewer than @max_voters voters, else
 * stand-by while fewer than @max_standby stand-bys, else spare. A member
 * that already has a role at least as strong keeps it. */
int cluster_role_choose(const struct state_raft_node *nodes,
			size_t n,
			uint64_t self,
			unsigned max_voters,
			unsigned max_standby);

/* LXD's "roles" of a member with raft role @role, leader or not: a new
 * array ["database-leader", "database"], ["database"],
 * ["database-standby"] or []. NULL on OOM. */
json_t *cluster_roles_json(int role, bool leader);

/* One role change decided by cluster_rebalance_choose(). */
struct cluster_rebalance {
	uint64_t id; /* the raft node to change */
	int role;    /* its new raft role (0 voter, 1 stand-by, 2 spare) */
};

/* The next role change the leader should make, given the raft
 * configuration @nodes (@n entries) and whether each member is Online
 * (@online[i], heartbeat within cluster.offline_threshold; the leader
 * itself is Online): while fewer than @max_voters voters are Online, an
 * Online stand-by (else spare) becomes a voter; once @max_voters voters are
 * Online, an Offline voter becomes a spare; then an Online spare becomes a
 * stand-by while fewer than @max_standby stand-bys are Online. Returns 1
 * with *@out filled, or 0 when nothing is to change. One change at a time:
 * call again once it is made. */
int cluster_rebalance_choose(const struct state_raft_node *nodes,
			     const bool *online,
			     size_t n,
			     unsigned max_voters,
			     unsigned max_standby,
			     struct cluster_rebalance *out);

#endif /* CORRAL_CLUSTER_H */
