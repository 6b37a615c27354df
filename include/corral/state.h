/* Replicated state: the embedded dqlite node, database access off the loop,
 * the schema, and typed functions per entity.
 *
 * Database work never runs on the loop thread. A caller submits a work
 * function with state_submit(); it runs on a libuv worker thread with a
 * struct state_tx (one pooled dqlite connection), inside one transaction
 * when asked for a write: an error from the work function rolls everything
 * back, so nothing is half-applied. The done callback then runs on the loop.
 *
 * The entity functions below take a struct state_tx and must only be called
 * from work functions. Objects are exchanged as jansson values shaped like
 * LXD's JSON (config maps of string to string, devices as
 * {name: {"type": ..., key: value}}); every returned json_t is a new
 * reference the caller owns. On error they return a negative code and leave
 * a message in tx->errmsg: CORRAL_ENOTFOUND, CORRAL_EEXIST, CORRAL_ECONFLICT,
 * CORRAL_EINVALID, CORRAL_EDBFAIL, -ENOMEM. */
#ifndef CORRAL_STATE_H
#define CORRAL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <corral/err.h>

/* The schema version this binary writes. */
#define STATE_SCHEMA_VERSION 1

struct state;
struct state_tx;

/* A typed SQL parameter; mirrors the dqlite wire types. */
enum state_param_type {
	STATE_PARAM_INT = 1,
	STATE_PARAM_FLOAT = 2,
	STATE_PARAM_TEXT = 3,
	STATE_PARAM_BLOB = 4,
	STATE_PARAM_NULL = 5,
	STATE_PARAM_BOOL = 11,
};

/* Result rows of a query, as decoded from the wire (see
 * state/dqlite_proto.h for struct dqlite_rows and struct dqlite_value). */
struct dqlite_rows;
struct dqlite_param;

/* The operations behind a struct state_tx: a pooled dqlite connection in
 * corrald, a plain SQLite database in unit tests. */
struct state_tx_ops {
	/* Run one statement. @last_id and @changes may be NULL. */
	int (*exec)(void *impl,
		    const char *sql,
		    const struct dqlite_param *params,
		    unsigned n,
		    int64_t *last_id,
		    int64_t *changes,
		    char *errmsg);
	/* Run one query; @rows must be initialised, the caller closes it. */
	int (*query)(void *impl,
		     const char *sql,
		     const struct dqlite_param *params,
		     unsigned n,
		     struct dqlite_rows *rows,
		     char *errmsg);
	/* The dqlite client behind the session (a struct dqlite_client *),
	 * for raft membership requests; NULL in unit tests. */
	void *(*client)(void *impl);
};

/* A database session for one work function. */
struct state_tx {
	const struct state_tx_ops *ops; /* borrowed */
	void *impl;                     /* borrowed */
	bool write;                     /* inside a write transaction */
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* Run @sql with @n parameters. Returns 0 or a negative code with
 * tx->errmsg filled. */
int state_tx_exec(struct state_tx *tx,
		  const char *sql,
		  const struct dqlite_param *params,
		  unsigned n,
		  int64_t *last_id,
		  int64_t *changes);

/* Run query @sql; @rows (initialised by the callee) is owned by the caller
 * afterwards and released with dqlite_proto_rows_close(). */
int state_tx_query(struct state_tx *tx,
		   const char *sql,
		   const struct dqlite_param *params,
		   unsigned n,
		   struct dqlite_rows *rows);

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                  */

/* Settings of the state module; strings are copied. */
struct state_config {
	const char *dir;     /* the daemon's state dir: data in DIR/database */
	unsigned latency_ms; /* raft latency; 0 means the default (20) */
};

/* Called on the loop when the node runs and the schema is applied (@rv 0),
 * or when either failed (@rv < 0, @errmsg says why). */
typedef void (*state_ready_cb)(void *arg, int rv, const char *errmsg);

/* Allocate the state module on @loop (borrowed). Returns 0 or -ENOMEM. */
int state_create(uv_loop_t *loop,
		 const struct state_config *cfg,
		 struct state **out,
		 char *errmsg);

/* Start the dqlite node (bootstrapping DIR/database on first start) and
 * apply pending schema updates, off the loop. @cb runs on the loop once.
 * Returns 0 if the start was scheduled. */
int state_start(struct state *s, state_ready_cb cb, void *arg);

/* Record the raft latency (corral.raft_latency_ms) in DIR/database/info so
 * the node starts with it next time: dqlite fixes it when the node starts,
 * and the database, where the key lives, cannot be read before that. A
 * small synchronous write, only when the value changes. Returns 0 or a
 * negative code with @errmsg filled. */
int state_set_latency(struct state *s, unsigned ms, char *errmsg);

/* Whether state_start() completed successfully. */
bool state_ready(const struct state *s);

/* While state_start() waits for a database leader: what the last look for
 * one found, e.g. "no database leader: 1 of 3 voters reachable, a majority
 * (2) is needed; unreachable: 10.0.0.2:8443 (dial ...: connection
 * refused), ..." into @out (@size bytes); "" when not waiting (or before
 * the first look). Any thread. */
void state_start_waiting(struct state *s, char *out, size_t size);

/* Work function: runs on a worker thread. Return 0 to commit, a negative
 * code (with tx->errmsg filled) to roll back. */
typedef int (*state_work_fn)(struct state_tx *tx, void *arg);

/* Completion on the loop: @rv is the work function's result or a database
 * error; @errmsg its message ("" on success). */
typedef void (*state_done_cb)(void *arg, int rv, const char *errmsg);

/* Run @work off the loop, inside a transaction when @write, then @done on
 * the loop. Returns 0, or a negative code when it could not be queued (then
 * @done is not called). */
int state_submit(struct state *s,
		 bool write,
		 state_work_fn work,
		 state_done_cb done,
		 void *arg);

/* Stop the node and close the pooled connections; @cb runs on the loop
 * when done. Work submitted afterwards fails with CORRAL_ENOLEADER. */
void state_stop(struct state *s, void (*cb)(void *arg), void *arg);

/* Free @s after state_stop() completed or when it never started. Accepts
 * NULL. */
void state_destroy(struct state *s);

/* ------------------------------------------------------------------------ */
/* Cluster membership (used by cluster/)                                      */

/* Open a stream to the dqlite node at raft address @address (a member's
 * "host:port"): on success *@fd is a connected socket owned by the caller.
 * Called on dqlite's and libuv's worker threads, never on the loop. Returns
 * 0 or a negative code. */
typedef int (*state_connect_fn)(void *arg, const char *address, int *fd);

/* Register how to reach other members' nodes (the member channel): used by
 * the dqlite node for raft and by the connection pool to reach a remote
 * leader. Call before state_start(); @arg is borrowed. */
void state_set_connect(struct state *s, state_connect_fn fn, void *arg);

/* The raft id of the local node (1 for a standalone daemon). */
uint64_t state_node_id(const struct state *s);

/* The raft address of the local node, copied into @out (@size bytes): the
 * member's cluster address, or the abstract socket "@corral-..." of a
 * standalone daemon. */
void state_node_address(const struct state *s, char *out, size_t size);

/* Before state_start(): whether DIR/database/info names a network raft
 * address (this daemon was a cluster member when it stopped); if so it
 * goes into @out (@size bytes). Reads the file, creates nothing. */
bool state_stored_cluster_address(const struct state *s,
				  char *out,
				  size_t size);

/* Whether the local node has a network raft address (is a cluster
 * member). */
bool state_clustered(const struct state *s);

/* Connect a stream socket to the local node's abstract socket (only this
 * process may): *@fd is owned by the caller. Used to relay another member's
 * raft stream into the node. Returns 0 or a negated errno. */
int state_node_dial(struct state *s, int *fd);

/* Called by state_reconfigure() on a worker thread once the restarted node
 * runs (another member's stream can reach it), before waiting for a leader.
 * Returns 0 to go on, or a negative code with @errmsg (CORRAL_ERRMSG_SIZE
 * bytes) filled, which fails the restart with that message. */
typedef int (*state_started_fn)(void *arg, char *errmsg);

/* Restart the local node as node @id at raft address @address (copied), off
 * the loop; @cb runs on the loop with the result, like state_start()'s.
 * With @fresh false the node keeps its data and its raft configuration is
 * rewritten to the single voter {@id, @address} (dqlite_node_recover_ext():
 * `cluster enable`). With @fresh true its data is discarded and the node
 * starts empty, waiting to be contacted by the cluster's leader (join).
 * @started (may be NULL) runs, with @arg, between the node's start and the
 * wait for a leader: a joiner asks the cluster to replicate to it there.
 * While it runs, state_ready() is false and work is refused. Returns 0 if
 * the restart was scheduled. */
int state_reconfigure(struct state *s,
		      uint64_t id,
		      const char *address,
		      bool fresh,
		      state_started_fn started,
		      state_ready_cb cb,
		      void *arg);

/* Recovery after quorum loss, with the daemon stopped and the node never
 * started (between state_create() and state_destroy()): rewrite the raft
 * configuration in DIR/database to the single voter that is this member
 * (dqlite_node_recover_ext()), so the next start elects it alone with all
 * the data it has. Its id and raft address go to *@id and @address (@size
 * bytes). Returns 0, CORRAL_EINVALID when this server is not a cluster
 * member, or another negative code, with @errmsg. */
int state_recover(struct state *s,
		  uint64_t *id,
		  char *address,
		  size_t size,
		  char *errmsg);

/* A raft member as dqlite reports it. */
struct state_raft_node {
	uint64_t id;
	char address[256];
	int role; /* 0 voter, 1 stand-by, 2 spare */
};

/* The raft configuration (up to @max nodes into @nodes, count in *@n) and
 * the leader's id (0 when unknown) in *@leader_id, asked of the leader the
 * pool is connected to. Work functions only. Returns 0, -ENOTSUP in unit
 * tests (no dqlite), or a database error. */
int state_raft_nodes(struct state_tx *tx,
		     struct state_raft_node *nodes,
		     size_t max,
		     size_t *n,
		     uint64_t *leader_id);

/* Add node @id at @address to the raft configuration (as a spare), give it
 * raft role @role, or remove it. Sent to the leader. Work functions only,
 * outside a write transaction. */
int state_raft_add(struct state_tx *tx, uint64_t id, const char *address);
int state_raft_assign(struct state_tx *tx, uint64_t id, int role);
int state_raft_remove(struct state_tx *tx, uint64_t id);

/* Members in the `nodes` table, as [{id, name, address}] by id, in *@out. */
int state_member_list(struct state_tx *tx, json_t **out);

/* Insert member @name at @address; its id (also its raft id) in *@id.
 * CORRAL_EEXIST when the name or address is taken. */
int state_member_create(struct state_tx *tx,
			const char *name,
			const char *address,
			int64_t *id);

/* Set name and address of member @id. */
int state_member_update(struct state_tx *tx,
			int64_t id,
			const char *name,
			const char *address);

/* Delete member @id (its member-local config goes with it). */
int state_member_delete(struct state_tx *tx, int64_t id);

/* Whether the database holds nothing but what a fresh daemon creates (the
 * default project and profile, no identity, no instance), in *@pristine:
 * what a joiner may discard. */
int state_db_pristine(struct state_tx *tx, bool *pristine);

/* ------------------------------------------------------------------------ */
/* Schema                                                                     */

/* Apply every pending schema update, each in its own transaction. A fresh
 * database gets the `default` project with its `default` profile. When the
 * database holds a newer schema than STATE_SCHEMA_VERSION, returns
 * CORRAL_ESCHEMA with a message naming the version needed. */
int state_schema_apply(struct state_tx *tx);

/* The schema version recorded in the database (0 when empty). */
int state_schema_version(struct state_tx *tx, int *version);

/* ------------------------------------------------------------------------ */
/* Generations                                                                */

/* Named counters bumped in the same transaction as a change to their area:
 * "trust", "projects", "profiles", "instances". */
int state_generation_bump(struct state_tx *tx, const char *name);
int state_generation_get(struct state_tx *tx, const char *name, int64_t *value);
/* Read the generations of the @n areas @names into @values with one query
 * (an area created lazily reads 0 while absent). */
int state_generations_get(struct state_tx *tx,
			  const char *const *names,
			  size_t n,
			  int64_t *values);

/* ------------------------------------------------------------------------ */
/* Server config                                                              */

/* Cluster-wide config as an object of string values. */
int state_config_get(struct state_tx *tx, json_t **config);

/* Replace the cluster-wide config by @config (object of strings). */
int state_config_replace(struct state_tx *tx, json_t *config);

/* Member-local config of member @node_id (1 for a standalone daemon). */
int state_node_config_get(struct state_tx *tx,
			  int64_t node_id,
			  json_t **config);
int state_node_config_replace(struct state_tx *tx,
			      int64_t node_id,
			      json_t *config);

/* ------------------------------------------------------------------------ */
/* Projects                                                                   */

/* Every project as LXD objects {name, description, config, used_by}, by
 * name. */
int state_project_list(struct state_tx *tx, json_t **projects);

/* One project; CORRAL_ENOTFOUND when absent. */
int state_project_get(struct state_tx *tx, const char *name, json_t **project);

/* Create a project from {name, description, config}; when
 * features.profiles is "true" the project also gets its own `default`
 * profile. CORRAL_EEXIST when the name is taken. */
int state_project_create(struct state_tx *tx, json_t *project);

/* Replace description and config of project @name. */
int state_project_update(struct state_tx *tx,
			 const char *name,
			 const char *description,
			 json_t *config);

/* Rename; CORRAL_EEXIST when @new_name is taken, CORRAL_EINVALID for
 * `default`. */
int state_project_rename(struct state_tx *tx,
			 const char *name,
			 const char *new_name);

/* Delete an empty project (nothing but its own `default` profile):
 * CORRAL_ECONFLICT "only empty projects can be removed" otherwise;
 * CORRAL_EFORBIDDEN for `default`. */
int state_project_delete(struct state_tx *tx, const char *name);

/* ------------------------------------------------------------------------ */
/* Profiles                                                                   */

/* The project whose profiles project @project uses: @project itself when its
 * features.profiles is "true", else "default". Written into @out (64+ B). */
int state_profile_project(struct state_tx *tx,
			  const char *project,
			  char *out,
			  size_t size);

/* Every profile of @project as LXD objects {name, description, config,
 * devices, used_by}, by name. */
int state_profile_list(struct state_tx *tx,
		       const char *project,
		       json_t **profiles);

/* Names only (cheap), by name. */
int state_profile_names(struct state_tx *tx,
			const char *project,
			json_t **names);

int state_profile_get(struct state_tx *tx,
		      const char *project,
		      const char *name,
		      json_t **profile);

/* Create from {name, description, config, devices}. */
int state_profile_create(struct state_tx *tx,
			 const char *project,
			 json_t *profile);

/* Replace description, config and devices. */
int state_profile_update(struct state_tx *tx,
			 const char *project,
			 const char *name,
			 const char *description,
			 json_t *config,
			 json_t *devices);

int state_profile_rename(struct state_tx *tx,
			 const char *project,
			 const char *name,
			 const char *new_name);

/* CORRAL_ECONFLICT when instances use it; `default` cannot be deleted
 * (CORRAL_EFORBIDDEN). */
int state_profile_delete(struct state_tx *tx,
			 const char *project,
			 const char *name);

/* ------------------------------------------------------------------------ */
/* Trust store: identities and role bindings                                 */

/* An identity is exchanged as {fingerprint, type ("client", "server",
 * "metrics"), name, description, certificate (PEM), created_at (RFC 3339),
 * roles}, where roles is an array of bindings {"scope": "server" |
 * "all_projects" | "project", "project": NAME (project scope only),
 * "role": "auditor" | "user" | "operator" | "admin"}, ordered server,
 * all_projects, then projects by name. Every write bumps the "trust"
 * generation in the caller's transaction. A fingerprint argument may be the
 * full fingerprint or a prefix of at least one hex digit (case does not
 * matter): CORRAL_ENOTFOUND "certificate not found" when nothing matches,
 * CORRAL_EINVALID "certificate fingerprint prefix is ambiguous" when
 * several identities do. */

/* Every identity with its roles, by name, in *@out (two queries). */
int state_identity_list(struct state_tx *tx, json_t **out);

/* The identity @fp_or_prefix names, in *@out. */
int state_identity_get(struct state_tx *tx,
		       const char *fp_or_prefix,
		       json_t **out);

/* Add an identity from @identity (borrowed): {type, name, certificate,
 * description?, fingerprint?, roles?}. The fingerprint is computed from the
 * PEM certificate (a given one must match it). CORRAL_EEXIST "certificate
 * already in trust store" when present; CORRAL_EINVALID for a bad field, a
 * duplicate binding, or a binding naming a missing project ("project \"x\"
 * not found"). */
int state_identity_create(struct state_tx *tx, json_t *identity);

/* Change the fields present in @fields (borrowed): name, description, type,
 * certificate (a new certificate changes the fingerprint; CORRAL_EEXIST when
 * another identity has it) and roles (replaces every binding). Absent
 * fields keep their value. */
int state_identity_update(struct state_tx *tx, const char *fp, json_t *fields);

/* Delete the identity @fp names and its bindings. */
int state_identity_delete(struct state_tx *tx, const char *fp);

/* Every identity with its roles (as state_identity_list()) and the "trust"
 * generation they were read at, for the trust cache. */
int state_trust_snapshot(struct state_tx *tx,
			 json_t **identities,
			 int64_t *generation);

/* The names of every project, sorted, as a new array in *@names: what an
 * all_projects binding covers when projected on LXD 5.0's fields. */
int state_trust_project_names(struct state_tx *tx, json_t **names);

/* ------------------------------------------------------------------------ */
/* One-time tokens                                                            */

/* Tokens of @kind "trust" (certificate add) or "join" (cluster join). Only
 * @secret_hash, the lowercase hex SHA-256 of the token's 32-byte random
 * secret, is stored; the secret itself never is (high-entropy secrets need
 * no slow hash). A token is {id, name, data, created_at, expires_at (unix
 * seconds or null)}. */

/* Store a token named @name granting @data (an object, borrowed; NULL is
 * {}), expiring at @expires_at_unix (0 or less: never). Its id goes to *@id
 * (may be NULL). CORRAL_EINVALID for a bad kind or hash. */
int state_token_create(struct state_tx *tx,
		       const char *kind,
		       const char *secret_hash,
		       const char *name,
		       json_t *data,
		       int64_t expires_at_unix,
		       int64_t *id);

/* Find the unused token of @kind with @secret_hash that has not expired at
 * @now (unix seconds), mark it used in the same transaction and return it
 * as {id, name, data, expires_at} in *@token. A token is redeemed at most
 * once: CORRAL_ENOTFOUND "token not found, already used or expired"
 * otherwise. */
int state_token_redeem(struct state_tx *tx,
		       const char *kind,
		       const char *secret_hash,
		       int64_t now,
		       json_t **token);

/* The unused, unexpired tokens of @kind, by id, in *@tokens. */
int state_token_list(struct state_tx *tx, const char *kind, json_t **tokens);

/* Revoke token @id, used or not. CORRAL_ENOTFOUND when absent. */
int state_token_delete(struct state_tx *tx, int64_t id);

/* Revoke the token of @kind with @secret_hash, used or not (the in-memory
 * token operation knows the secret, not the id). CORRAL_ENOTFOUND when
 * absent. */
int state_token_revoke(struct state_tx *tx,
		       const char *kind,
		       const char *secret_hash);

/* Tokens and the operations that issued them. A token's operation lives in
 * the memory of the member that created it; the token's data names it, so
 * any member can find and revoke the token, and tokens whose operation died
 * with a restart can be deleted:
 *
 *   "operation": the operation's id (a UUID)
 *   "member":    the issuing member's name ("none" when standalone)
 *   "node_id":   its raft node id (1 for a standalone daemon)
 *   "boot":      the id of the issuing process's operation registry, new at
 *                every start
 */

/* Delete the unused tokens issued by node @node_id (0: by any node) in an
 * earlier run, i.e. whose "boot" is not @boot (copied): their operations
 * are gone. Used tokens stay (nothing can redeem them). Tokens without a
 * "node_id" or "boot" (written before tokens named their operation) count as
 * this node's and as of an earlier run. The number deleted goes to *@deleted
 * (may be NULL). CORRAL_EINVALID for an empty @boot. */
int state_token_prune(struct state_tx *tx,
		      int64_t node_id,
		      const char *boot,
		      int64_t *deleted);

/* Revoke the unused token, not expired at @now (unix seconds), whose
 * "operation" is @operation, and return it as {id, kind, name, data,
 * created_at, expires_at} in *@token (may be NULL). CORRAL_ENOTFOUND when
 * there is none. */
int state_token_revoke_operation(struct state_tx *tx,
				 const char *operation,
				 int64_t now,
				 json_t **token);

#endif /* CORRAL_STATE_H */
