/* A blocking client of the dqlite wire protocol over one stream socket.
 *
 * Every call sends one request and waits for its response, so it must run on
 * a worker thread, never on the loop. One client serves one thread at a
 * time. A FAILURE response returns CORRAL_ENOTLEADER (this node is not or no
 * longer the leader: ask LEADER and reconnect) or CORRAL_EDBFAIL (any other
 * database error), with the server's code in @fail_code and its message in
 * @errmsg; the connection stays usable. An I/O or protocol error (negative
 * errno, CORRAL_EPROTO, CORRAL_ETRUNC) leaves the stream out of step: the
 * client marks itself broken, later calls return -ENOTCONN, and the caller
 * should close it and connect again. Every error fills @errmsg. */
#ifndef CORRAL_STATE_DQLITE_CLIENT_H
#define CORRAL_STATE_DQLITE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <corral/err.h>

#include "dqlite_proto.h"

struct dqlite_client {
	int fd; /* owned; -1 once closed */
	bool broken;
	struct dqlite_proto_buf out; /* owned: the request being sent */
	uint8_t *in;                 /* owned: body of the last response */
	size_t in_cap;
	struct dqlite_proto_header header; /* of the last response */
	uint64_t fail_code; /* code of the last FAILURE, 0 when none */
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* Connect a stream socket to the unix socket @path; a leading '@' names an
 * abstract socket ("@corral-dq" is "\0corral-dq"). On success *@fd is the
 * connected socket (close-on-exec, owned by the caller). Returns 0,
 * -ENAMETOOLONG, CORRAL_EINVALID for an empty name, or the negated errno of
 * socket() or connect(). */
int dqlite_client_connect_unix(const char *path, int *fd);

/* Initialize @c over the connected socket @fd and send the protocol
 * handshake. On success @c owns @fd (closed by dqlite_client_close()); on
 * error @c needs no close and the caller still owns @fd. Returns 0,
 * -ENOMEM, or a negative errno from write. */
int dqlite_client_init(struct dqlite_client *c, int fd);

/* Close the socket and free the buffers of @c. Accepts an already closed
 * client. */
void dqlite_client_close(struct dqlite_client *c);

/* Bound every later send and receive of @c by @ms milliseconds (0: wait
 * forever, the default). A call that times out returns -ETIMEDOUT and breaks
 * the client. Returns 0 or the negated errno of setsockopt(). */
int dqlite_client_set_timeout(struct dqlite_client *c, unsigned ms);

/* Ask which node is the leader: *@id and *@address (allocated, free it with
 * dqlite_proto_free()). An id of 0 and address "" mean no leader is known
 * yet. */
int dqlite_client_leader(struct dqlite_client *c, uint64_t *id, char **address);

/* Register as client @id; *@heartbeat_timeout (may be NULL) receives the
 * server's heartbeat timeout in milliseconds. */
int dqlite_client_client(struct dqlite_client *c,
			 uint64_t id,
			 uint64_t *heartbeat_timeout);

/* Open database @name (copied) on this connection; *@db_id receives its id.
 * A connection can open one database only. */
int dqlite_client_open(struct dqlite_client *c,
		       const char *name,
		       uint32_t *db_id);

/* Run the statements in @sql with @n parameters @params (borrowed during the
 * call; bound to the first statement). *@last_insert_id and *@rows_affected
 * (either may be NULL) receive the result of the last statement. Returns 0,
 * the errors listed at the top, or CORRAL_EINVALID for bad parameters. */
int dqlite_client_exec_sql(struct dqlite_client *c,
			   uint32_t db_id,
			   const char *sql,
			   const struct dqlite_param *params,
			   unsigned n,
			   uint64_t *last_insert_id,
			   uint64_t *rows_affected);

/* Run the query @sql with @n parameters and collect every row, reading all
 * parts of a multi-part result. On success @rows (uninitialized on entry)
 * owns the result; free it with dqlite_proto_rows_close(). On error @rows is
 * left empty. Returns 0, the errors listed at the top, or CORRAL_EINVALID. */
int dqlite_client_query_sql(struct dqlite_client *c,
			    uint32_t db_id,
			    const char *sql,
			    const struct dqlite_param *params,
			    unsigned n,
			    struct dqlite_rows *rows);

/* Prepare the single statement @sql; *@stmt_id receives its id and
 * *@n_params (may be NULL) its number of parameters. */
int dqlite_client_prepare(struct dqlite_client *c,
			  uint32_t db_id,
			  const char *sql,
			  uint32_t *stmt_id,
			  uint64_t *n_params);

/* Execute prepared statement @stmt_id with @n parameters, like
 * dqlite_client_exec_sql(). */
int dqlite_client_exec(struct dqlite_client *c,
		       uint32_t db_id,
		       uint32_t stmt_id,
		       const struct dqlite_param *params,
		       unsigned n,
		       uint64_t *last_insert_id,
		       uint64_t *rows_affected);

/* Run prepared query @stmt_id with @n parameters, like
 * dqlite_client_query_sql(). */
int dqlite_client_query(struct dqlite_client *c,
			uint32_t db_id,
			uint32_t stmt_id,
			const struct dqlite_param *params,
			unsigned n,
			struct dqlite_rows *rows);

/* Release prepared statement @stmt_id. */
int dqlite_client_finalize(struct dqlite_client *c,
			   uint32_t db_id,
			   uint32_t stmt_id);

/* Add node @id at @address (copied) to the cluster; it joins as a spare.
 * Must be sent to the leader. */
int dqlite_client_add(struct dqlite_client *c,
		      uint64_t id,
		      const char *address);

/* Give node @id the raft role @role (DQLITE_PROTO_ROLE_*). */
int dqlite_client_assign(struct dqlite_client *c, uint64_t id, uint64_t role);

/* Remove node @id from the cluster. */
int dqlite_client_remove(struct dqlite_client *c, uint64_t id);

/* List the cluster's nodes with their roles (format 1). On success @nodes
 * (uninitialized on entry) owns the list; free it with
 * dqlite_proto_nodes_close(). */
int dqlite_client_cluster(struct dqlite_client *c,
			  struct dqlite_proto_nodes *nodes);

/* Ask the leader to hand leadership to node @id (0 lets it choose). */
int dqlite_client_transfer(struct dqlite_client *c, uint64_t id);

/* Read this node's failure domain and weight (either pointer may be NULL). */
int dqlite_client_describe(struct dqlite_client *c,
			   uint64_t *failure_domain,
			   uint64_t *weight);

#endif /* CORRAL_STATE_DQLITE_CLIENT_H */
