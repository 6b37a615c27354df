/* Generation counters: bumped in the transaction of every change to their
 * area, compared by the caches and between members. */
#include <stdbool.h>
#include <string.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

/* Areas added after the first schema: their row is created on first bump
 * and reads as 0 while absent, so no migration is needed. */
static bool lazy_area(const char *name)
{
	return strcmp(name, "config") == 0;
}

int state_generation_bump(struct state_tx *tx, const char *name)
{
	struct dqlite_param param = state__text(name);
	int64_t changes = 0;
	int rv;

	if (lazy_area(name)) {
		rv = state_tx_exec(tx,
				   "INSERT OR IGNORE INTO generations"
				   " (name, value) VALUES (?, 0)",
				   &param, 1, NULL, NULL);
		if (rv != 0) {
			corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
					"create generation %s", name);
			return rv;
		}
	}
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
	if (!found && lazy_area(name)) {
		*value = 0;
		return 0;
	}
	if (!found) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "unknown generation %s", name);
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

int state_generations_get(struct state_tx *tx,
			  const char *const *names,
			  size_t n,
			  int64_t *values)
{
	struct dqlite_rows rows;
	size_t i;
	size_t j;
	int rv;

	rv = state_tx_query(tx, "SELECT name, value FROM generations", NULL, 0,
			    &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"read generations");
		return rv;
	}
	for (j = 0; j < n; j++) {
		bool found = false;

		for (i = 0; i < rows.n_rows && !found; i++) {
			const char *name = state__col_text(&rows, i, 0);

			if (name != NULL && strcmp(name, names[j]) == 0) {
				values[j] = state__col_int(&rows, i, 1);
				found = true;
			}
		}
		if (!found && !lazy_area(names[j])) {
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "unknown generation %s", names[j]);
			rv = CORRAL_ENOTFOUND;
			break;
		}
		if (!found) {
			values[j] = 0;
		}
	}
	dqlite_proto_rows_close(&rows);
	return rv;
}
