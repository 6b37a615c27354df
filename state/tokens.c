/* One-time tokens (`tokens`): trust tokens that let a client add its own
 * certificate, and cluster join tokens.
 *
 * Only the lowercase hex SHA-256 of a token's secret is stored. A secret is
 * 32 random bytes, so an offline search of the hash is hopeless and a slow
 * hash (scrypt, as for the human-chosen trust password) would buy nothing;
 * a fast hash also lets the secret be looked up through the UNIQUE index.
 * Comparing by hash in SQL leaks no useful timing either: an attacker does
 * not control the hash of what it sends. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

static int kind_check(struct state_tx *tx, const char *kind)
{
	if (kind == NULL ||
	    (strcmp(kind, "trust") != 0 && strcmp(kind, "join") != 0)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token kind must be trust or join");
		return CORRAL_EINVALID;
	}
	return 0;
}

/* The object of a token row (id, name, data, created_at, expires_at). */
static int token_row(struct state_tx *tx,
		     const struct dqlite_rows *rows,
		     size_t i,
		     json_t **out)
{
	const char *name = state__col_text(rows, i, 1);
	const char *text = state__col_text(rows, i, 2);
	const struct dqlite_value *expires =
	    dqlite_proto_rows_value(rows, i, 4);
	json_t *data;
	json_t *token;

	data = json_loads(text != NULL ? text : "{}", 0, NULL);
	if (data == NULL) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token %lld: data is not valid JSON",
			    (long long)state__col_int(rows, i, 0));
		return CORRAL_EDBFAIL;
	}
	token =
	    json_pack("{s:I, s:s, s:o, s:I, s:o}", "id",
		      (json_int_t)state__col_int(rows, i, 0), "name",
		      name != NULL ? name : "", "data", data, "created_at",
		      (json_int_t)state__col_int(rows, i, 3), "expires_at",
		      expires != NULL && expires->type == DQLITE_PROTO_INTEGER
			  ? json_integer((json_int_t)expires->integer)
			  : json_null());
	if (token == NULL) {
		return state__oom(tx);
	}
	*out = token;
	return 0;
}

int state_token_create(struct state_tx *tx,
		       const char *kind,
		       const char *secret_hash,
		       const char *name,
		       json_t *data,
		       int64_t expires_at_unix,
		       int64_t *id)
{
	struct dqlite_param params[6];
	char *text;
	int64_t last_id;
	int rv;

	rv = kind_check(tx, kind);
	if (rv != 0) {
		return rv;
	}
	if (secret_hash == NULL || strlen(secret_hash) != 64 ||
	    strspn(secret_hash, "0123456789abcdef") != 64) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "token secret hash must be 64 lowercase hex digits");
		return CORRAL_EINVALID;
	}
	if (name == NULL) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token name must be a string");
		return CORRAL_EINVALID;
	}
	if (data != NULL && !json_is_object(data)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token data must be an object");
		return CORRAL_EINVALID;
	}
	text = data != NULL ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS)
			    : strdup("{}");
	if (text == NULL) {
		return state__oom(tx);
	}
	params[0] = state__text(kind);
	params[1] = state__text(secret_hash);
	params[2] = state__text(name);
	params[3] = state__text(text);
	params[4] = state__int((int64_t)time(NULL));
	params[5] =
	    expires_at_unix > 0 ? state__int(expires_at_unix) : state__null();
	rv = state_tx_exec(tx,
			   "INSERT INTO tokens (kind, secret_hash, name, data,"
			   " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
			   params, 6, &last_id, NULL);
	free(text);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"create %s token %s", kind, name);
		return rv;
	}
	if (id != NULL) {
		*id = last_id;
	}
	return 0;
}

int state_token_redeem(struct state_tx *tx,
		       const char *kind,
		       const char *secret_hash,
		       int64_t now,
		       json_t **token)
{
	struct dqlite_param params[3];
	struct dqlite_rows rows;
	json_t *found = NULL;
	int64_t changes = 0;
	int rv;

	rv = kind_check(tx, kind);
	if (rv != 0) {
		return rv;
	}
	params[0] = state__text(kind);
	params[1] = state__text(secret_hash);
	params[2] = state__int(now);
	rv = state_tx_query(tx,
			    "SELECT id, name, data, created_at, expires_at"
			    " FROM tokens WHERE kind = ?1 AND secret_hash = ?2"
			    " AND used_at IS NULL"
			    " AND (expires_at IS NULL OR expires_at > ?3)",
			    params, 3, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"look up %s token", kind);
		return rv;
	}
	if (rows.n_rows == 0) {
		dqlite_proto_rows_close(&rows);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token not found, already used or expired");
		return CORRAL_ENOTFOUND;
	}
	rv = token_row(tx, &rows, 0, &found);
	dqlite_proto_rows_close(&rows);
	if (rv != 0) {
		return rv;
	}
	/* used_at IS NULL again: a redeem that raced us in another session
	 * (outside a transaction) must not succeed twice. */
	params[0] = state__int(now);
	params[1] = state__int(
	    (int64_t)json_integer_value(json_object_get(found, "id")));
	rv = state_tx_exec(tx,
			   "UPDATE tokens SET used_at = ?1"
			   " WHERE id = ?2 AND used_at IS NULL",
			   params, 2, NULL, &changes);
	if (rv != 0) {
		json_decref(found);
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"mark %s token used", kind);
		return rv;
	}
	if (changes != 1) {
		json_decref(found);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token not found, already used or expired");
		return CORRAL_ENOTFOUND;
	}
	json_object_del(found, "created_at");
	*token = found;
	return 0;
}

int state_token_list(struct state_tx *tx, const char *kind, json_t **tokens)
{
	struct dqlite_param params[2];
	struct dqlite_rows rows;
	json_t *list;
	size_t i;
	int rv;

	rv = kind_check(tx, kind);
	if (rv != 0) {
		return rv;
	}
	params[0] = state__text(kind);
	params[1] = state__int((int64_t)time(NULL));
	rv = state_tx_query(tx,
			    "SELECT id, name, data, created_at, expires_at"
			    " FROM tokens WHERE kind = ?1 AND used_at IS NULL"
			    " AND (expires_at IS NULL OR expires_at > ?2)"
			    " ORDER BY id",
			    params, 2, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg, "list %s tokens",
				kind);
		return rv;
	}
	list = json_array();
	if (list == NULL) {
		rv = state__oom(tx);
		goto err_after_query;
	}
	for (i = 0; i < rows.n_rows; i++) {
		json_t *token;

		rv = token_row(tx, &rows, i, &token);
		if (rv != 0) {
			goto err_after_list;
		}
		if (json_array_append_new(list, token) != 0) {
			rv = state__oom(tx);
			goto err_after_list;
		}
	}
	dqlite_proto_rows_close(&rows);
	*tokens = list;
	return 0;

err_after_list:
	json_decref(list);
err_after_query:
	dqlite_proto_rows_close(&rows);
	return rv;
}

int state_token_delete(struct state_tx *tx, int64_t id)
{
	struct dqlite_param param = state__int(id);
	int64_t changes = 0;
	int rv;

	rv = state_tx_exec(tx, "DELETE FROM tokens WHERE id = ?", &param, 1,
			   NULL, &changes);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"delete token %lld", (long long)id);
		return rv;
	}
	if (changes == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg, "token not found");
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

int state_token_revoke(struct state_tx *tx,
		       const char *kind,
		       const char *secret_hash)
{
	struct dqlite_param params[2];
	int64_t changes = 0;
	int rv;

	rv = kind_check(tx, kind);
	if (rv != 0) {
		return rv;
	}
	params[0] = state__text(kind);
	params[1] = state__text(secret_hash);
	rv = state_tx_exec(
	    tx, "DELETE FROM tokens WHERE kind = ? AND secret_hash = ?", params,
	    2, NULL, &changes);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"revoke %s token", kind);
		return rv;
	}
	if (changes == 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg, "token not found");
		return CORRAL_ENOTFOUND;
	}
	return 0;
}

/* Unused tokens of node ?1 (0: any node) from another run than ?2. A data
 * value that is not JSON (a row this code did not write) reads as NULL,
 * never as an SQL error, so such a row counts as of an earlier run. */
#define PRUNE_WHERE                                                           \
	" WHERE used_at IS NULL AND (CASE WHEN json_valid(data)"              \
	" THEN json_extract(data, '$.boot')"                                  \
	" END) IS NOT ?2 AND (?1 = 0 OR coalesce((CASE WHEN json_valid(data)" \
	" THEN json_extract(data, '$.node_id') END), ?1) = ?1)"
static const char prune_count_sql[] = "SELECT count(*) FROM tokens" PRUNE_WHERE;
static const char prune_sql[] = "DELETE FROM tokens" PRUNE_WHERE;

/* The unused token of operation ?1, not expired at ?2. */
static const char by_operation_sql[] =
    "SELECT id, name, data, created_at, expires_at, kind FROM tokens"
    " WHERE (CASE WHEN json_valid(data)"
    " THEN json_extract(data, '$.operation') END) = ?1"
    " AND used_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)"
    " ORDER BY id LIMIT 1";

int state_token_prune(struct state_tx *tx,
		      int64_t node_id,
		      const char *boot,
		      int64_t *deleted)
{
	struct dqlite_param params[2];
	struct dqlite_rows rows;
	int64_t changes = 0;
	int64_t found;
	int rv;

	if (boot == NULL || boot[0] == '\0') {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token prune needs the current boot id");
		return CORRAL_EINVALID;
	}
	params[0] = state__int(node_id);
	params[1] = state__text(boot);
	/* Count first: most starts find nothing, and then no write lock is
	 * taken on the leader, where another member may be writing. */
	rv = state_tx_query(tx, prune_count_sql, params, 2, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"count tokens of earlier runs");
		return rv;
	}
	found = rows.n_rows > 0 ? state__col_int(&rows, 0, 0) : 0;
	dqlite_proto_rows_close(&rows);
	if (found > 0) {
		rv = state_tx_exec(tx, prune_sql, params, 2, NULL, &changes);
	}
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"delete tokens of earlier runs");
		return rv;
	}
	if (deleted != NULL) {
		*deleted = changes;
	}
	return 0;
}

int state_token_revoke_operation(struct state_tx *tx,
				 const char *operation,
				 int64_t now,
				 json_t **token)
{
	struct dqlite_param params[2];
	struct dqlite_rows rows;
	const char *kind;
	json_t *found = NULL;
	int rv;

	if (operation == NULL || operation[0] == '\0') {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "token operation id must not be empty");
		return CORRAL_EINVALID;
	}
	params[0] = state__text(operation);
	params[1] = state__int(now);
	rv = state_tx_query(tx, by_operation_sql, params, 2, &rows);
	if (rv != 0) {
		corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
				"look up the token of operation %s", operation);
		return rv;
	}
	if (rows.n_rows == 0) {
		dqlite_proto_rows_close(&rows);
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "no unused token for operation %s", operation);
		return CORRAL_ENOTFOUND;
	}
	rv = token_row(tx, &rows, 0, &found);
	kind = state__col_text(&rows, 0, 5);
	if (rv == 0 &&
	    json_object_set_new(found, "kind",
				json_string(kind != NULL ? kind : "")) != 0) {
		rv = state__oom(tx);
	}
	dqlite_proto_rows_close(&rows);
	if (rv != 0) {
		json_decref(found);
		return rv;
	}
	rv = state_token_delete(
	    tx, (int64_t)json_integer_value(json_object_get(found, "id")));
	if (rv != 0) {
		json_decref(found);
		return rv;
	}
	if (token != NULL) {
		*token = found;
	} else {
		json_decref(found);
	}
	return 0;
}
