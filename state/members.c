/* Cluster members: the raft configuration as dqlite keeps it (requests sent
 * on the session's connection, which always goes to the leader) and the
 * `nodes` table, whose ids are the members' raft ids. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_client.h"
#include "dqlite_proto.h"
#include "tx_util.h"

/* The dqlite client behind @tx, or NULL (unit tests) with the error set. */
static struct dqlite_client *tx_client(struct state_tx *tx)
{
	if (tx->ops->client == NULL) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "raft requests need a dqlite connection");
		return NULL;
	}
	return tx->ops->client(tx->impl);
}

/* Copy the client's message into tx->errmsg, naming the request. */
static int raft_fail(struct state_tx *tx,
		     struct dqlite_client *c,
		     const char *what,
		     int rv)
{
	corral_errf(tx->errmsg, sizeof tx->errmsg, "%s: %s", what,
		    c->errmsg[0] != '\0' ? c->errmsg : corral_strerror(rv));
	return rv;
}

int state_raft_nodes(struct state_tx *tx,
		     struct state_raft_node *nodes,
		     size_t max,
		     size_t *n,
		     uint64_t *leader_id)
{
	struct dqlite_client *c = tx_client(tx);
	struct dqlite_proto_nodes list = { 0 };
	char *address = NULL;
	size_t i;
	int rv;

	if (c == NULL) {
		return -ENOTSUP;
	}
	rv = dqlite_client_leader(c, leader_id, &address);
	if (rv != 0) {
		return raft_fail(tx, c, "ask for leader", rv);
	}
	dqlite_proto_free(address);
	rv = dqlite_client_cluster(c, &list);
	if (rv != 0) {
		return raft_fail(tx, c, "list raft nodes", rv);
	}
	*n = 0;
	for (i = 0; i < list.n && *n < max; i++) {
		struct state_raft_node *node = &nodes[(*n)++];

		node->id = list.nodes[i].id;
		snprintf(
		    node->address, sizeof node->address, "%s",
		    list.nodes[i].address != NULL ? list.nodes[i].address : "");
		node->role = (int)list.nodes[i].role;
	}
	dqlite_proto_nodes_close(&list);
	return 0;
}

int state_raft_add(struct state_tx *tx, uint64_t id, const char *address)
{
	struct dqlite_client *c = tx_client(tx);
	int rv;

	if (c == NULL) {
		return -ENOTSUP;
	}
	rv = dqlite_client_add(c, id, address);
	return rv != 0 ? raft_fail(tx, c, "add raft node", rv) : 0;
}

int state_raft_assign(struct state_tx *tx, uint64_t id, int role)
{
	struct dqlite_client *c = tx_client(tx);
	int rv;

	if (c == NULL) {
		return -ENOTSUP;
	}
	rv = dqlite_client_assign(c, id, (uint64_t)role);
	return rv != 0 ? raft_fail(tx, c, "assign raft role", rv) : 0;
}

int state_raft_remove(struct state_tx *tx, uint64_t id)
{
	struct dqlite_client *c = tx_client(tx);
	int rv;

	if (c == NULL) {
		return -ENOTSUP;
	}
	rv = dqlite_client_remove(c, id);
	return rv != 0 ? raft_fail(tx, c, "remove raft node", rv) : 0;
}

int state_member_list(struct state_tx *tx, json_t **out)
{
	struct dqlite_rows rows;
	json_t *list;
	size_t i;
	int rv;

	rv = state_tx_query(tx,
			    "SELECT id, name, address FROM nodes ORDER BY id",
			    NULL, 0, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "list members");
		return rv;
	}
	list = json_array();
	for (i = 0; list != NULL && i < rows.n_rows; i++) {
		const char *name = state__col_text(&rows, i, 1);
		const char *address = state__col_text(&rows, i, 2);
		json_t *m =
		    json_pack("{s:I, s:s, s:s}", "id",
			      (json_int_t)state__col_int(&rows, i, 0), "name",
			      name != NULL ? name : "", "address",
			      address != NULL ? address : "");

		if (m == NULL || json_array_append_new(list, m) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	dqlite_proto_rows_close(&rows);
	if (list == NULL) {
		return state__oom(tx);
	}
	*out = list;
	return 0;
}

/* CORRAL_EEXIST when another member than @id has @name or @address. */
static int member_unique(struct state_tx *tx,
			 int64_t id,
			 const char *name,
			 const char *address)
{
	struct dqlite_param params[3] = { state__int(id), state__text(name),
					  state__text(address) };
	int64_t other;
	bool found;
	int rv;

	rv = state__query_int(tx,
			      "SELECT id FROM nodes WHERE id != ?1"
			      " AND (name = ?2 OR address = ?3)",
			      params, 3, &other, &found);
	if (rv != 0) {
		return rv;
	}
	if (found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "a cluster member with name \"%s\" or address "
			    "\"%s\" already exists",
			    name, address);
		return CORRAL_EEXIST;
	}
	return 0;
}

int state_member_create(struct state_tx *tx,
			const char *name,
			const char *address,
			int64_t *id)
{
	struct dqlite_param params[4] = {
		state__text(name),
		state__text(address),
		state__int(STATE_SCHEMA_VERSION),
		state__int(0),
	};
	int64_t last_id = 0;
	int rv;

	rv = member_unique(tx, 0, name, address);
	if (rv != 0) {
		return rv;
	}
	rv = state_tx_exec(tx,
			   "INSERT INTO nodes (name, address, schema,"
			   " api_extensions) VALUES (?, ?, ?, ?)",
			   params, 4, &last_id, NULL);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"insert member %s", name);
		return rv;
	}
	*id = last_id;
	return 0;
}

int state_member_update(struct state_tx *tx,
			int64_t id,
			const char *name,
			const char *address)
{
	struct dqlite_param params[3] = { state__text(name),
					  state__text(address),
					  state__int(id) };
	int64_t changes = 0;
	int rv;

	rv = member_unique(tx, id, name, address);
	if (rv != 0) {
		return rv;
	}
	rv = state_tx_exec(
	    tx, "UPDATE nodes SET name = ?, address = ? WHERE id = ?", params,
	    3, NULL, &changes);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"update member %lld", (long long)id);
		return rv;
	}
	if (changes == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "cluster member %lld not found", (long long)id);
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

int state_member_delete(struct state_tx *tx, int64_t id)
{
	struct dqlite_param param = state__int(id);
	int rv;

	rv = state_tx_exec(tx, "DELETE FROM nodes WHERE id = ?", &param, 1,
			   NULL, NULL);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"delete member %lld", (long long)id);
	}
	return rv;
}

int state_db_pristine(struct state_tx *tx, bool *pristine)
{
	static const char *const counts[] = {
		"SELECT count(*) FROM projects",
		"SELECT count(*) FROM profiles",
		"SELECT count(*) FROM identities",
		"SELECT count(*) FROM instances",
	};
	static const int64_t max[] = { 1, 1, 0, 0 };
	int64_t n;
	unsigned i;
	int rv;

	*pristine = true;
	for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		rv = state__query_int(tx, counts[i], NULL, 0, &n, NULL);
		if (rv != 0) {
			return rv;
		}
		if (n > max[i]) {
			*pristine = false;
		}
	}
	return 0;
}
