/* Server config: cluster-wide keys in `config`, member-local keys in
 * `nodes_config`. Values are stored as given; the API layer validates keys
 * and hashes secrets before they get here. */
#include <stdbool.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

int state_config_get(struct state_tx *tx, json_t **config)
{
	int rv;

	rv = state__config_load(tx, "SELECT key, value FROM config", NULL, 0,
				config);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load server config");
	}
	return rv;
}

int state_config_replace(struct state_tx *tx, json_t *config)
{
	int rv;

	rv = state__config_check(tx, config, "config");
	if (rv != 0) {
		return rv;
	}
	rv = state_tx_exec(tx, "DELETE FROM config", NULL, 0, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	/* This table has no owner: ?1 stays unused. */
	rv = state__config_store(
	    tx, "INSERT INTO config (key, value) VALUES (?2, ?3)", 0, config,
	    NULL);
	if (rv != 0) {
		goto err;
	}
	/* The other members reload their config view when it moves. */
	return state_generation_bump(tx, "config");

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "store server config");
	return rv;
}

static int node_check(struct state_tx *tx, int64_t node_id)
{
	struct dqlite_param param = state__int(node_id);
	int64_t value;
	bool found;
	int rv;

	rv = state__query_int(tx, "SELECT id FROM nodes WHERE id = ?", &param,
			      1, &value, &found);
	if (rv != 0) {
		return rv;
	}
	if (!found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "cluster member %lld not found",
			    (long long)node_id);
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

int state_node_config_get(struct state_tx *tx, int64_t node_id, json_t **config)
{
	struct dqlite_param param = state__int(node_id);
	int rv;

	rv = node_check(tx, node_id);
	if (rv != 0) {
		return rv;
	}
	rv = state__config_load(tx,
				"SELECT key, value FROM nodes_config"
				" WHERE node_id = ?",
				&param, 1, config);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"load member config");
	}
	return rv;
}

int state_node_config_replace(struct state_tx *tx,
			      int64_t node_id,
			      json_t *config)
{
	struct dqlite_param param = state__int(node_id);
	int rv;

	rv = state__config_check(tx, config, "config");
	if (rv != 0) {
		return rv;
	}
	rv = node_check(tx, node_id);
	if (rv != 0) {
		return rv;
	}
	rv = state_tx_exec(tx, "DELETE FROM nodes_config WHERE node_id = ?",
			   &param, 1, NULL, NULL);
	if (rv != 0) {
		goto err;
	}
	rv =
	    state__config_store(tx,
				"INSERT INTO nodes_config (node_id, key, value)"
				" VALUES (?, ?, ?)",
				node_id, config, NULL);
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "store member config");
	return rv;
}
