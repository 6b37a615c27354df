/* Generation counters: bumped in the transaction of every change to their
 * area, compared by the caches and between members. */
#include <stdbool.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

int state_generation_bump(struct state_tx *tx, const char *name)
{
	struct dqlite_param param = state__text(name);
	int64_t changes = 0;
	int rv;

	rv = state_tx_exec(tx,
			   "UPDATE generations SET value = value + 1"
			   " WHERE name = ?",
			   &param, 1, NULL, &changes);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"bump generation %s", name);
		return rv;
	}
	if (changes == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "unknown generation %s", name);
		return CORRAL_EINVALID;
	}
	return 0;
}

int state_generation_get(struct state_tx *tx, const char *name, int64_t *value)
{
	struct dqlite_param param = state__text(name);
	bool found;
	int rv;

	rv =
	    state__query_int(tx, "SELECT value FROM generations WHERE name = ?",
			     &param, 1, value, &found);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"read generation %s", name);
		return rv;
	}
	if (!found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "unknown generation %s", name);
		return CORRAL_ENOTFOUND;
	}
	return 0;
}
