/* struct state_tx: thin wrappers over its ops, and the helpers of
 * tx_util.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <corral/err.h>
#include <corral/state.h>

#include "dqlite_proto.h"
#include "tx_util.h"

int state_tx_exec(struct state_tx *tx,
		  const char *sql,
		  const struct dqlite_param *params,
		  unsigned n,
		  int64_t *last_id,
		  int64_t *changes)
{
	int rv;

	tx->errmsg[0] = '\0';
	rv = tx->ops->exec(tx->impl, sql, params, n, last_id, changes,
			   tx->errmsg);
	if (rv != 0 && tx->errmsg[0] == '\0') {
		corral_errf(tx->errmsg, sizeof tx->errmsg, "%s",
			    corral_strerror(rv));
	}
	return rv;
}

int state_tx_query(struct state_tx *tx,
		   const char *sql,
		   const struct dqlite_param *params,
		   unsigned n,
		   struct dqlite_rows *rows)
{
	int rv;

	tx->errmsg[0] = '\0';
	dqlite_proto_rows_init(rows);
	rv = tx->ops->query(tx->impl, sql, params, n, rows, tx->errmsg);
	if (rv != 0) {
		/* Whatever a failed query left behind is ours to free. */
		dqlite_proto_rows_close(rows);
		if (tx->errmsg[0] == '\0') {
			corral_errf(tx->errmsg, sizeof tx->errmsg, "%s",
				    corral_strerror(rv));
		}
	}
	return rv;
}

struct dqlite_param state__text(const char *text)
{
	struct dqlite_param p;

	memset(&p, 0, sizeof p);
	if (text == NULL) {
		p.type = DQLITE_PROTO_NULL;
		return p;
	}
	p.type = DQLITE_PROTO_TEXT;
	p.text = text;
	return p;
}

struct dqlite_param state__int(int64_t value)
{
	struct dqlite_param p;

	memset(&p, 0, sizeof p);
	p.type = DQLITE_PROTO_INTEGER;
	p.integer = value;
	return p;
}

struct dqlite_param state__null(void)
{
	struct dqlite_param p;

	memset(&p, 0, sizeof p);
	p.type = DQLITE_PROTO_NULL;
	return p;
}

const char *state__col_text(const struct dqlite_rows *rows,
			    size_t row,
			    unsigned col)
{
	const struct dqlite_value *v = dqlite_proto_rows_value(rows, row, col);

	if (v == NULL || v->type != DQLITE_PROTO_TEXT) {
		return NULL;
	}
	return v->text;
}

int64_t state__col_int(const struct dqlite_rows *rows, size_t row, unsigned col)
{
	const struct dqlite_value *v = dqlite_proto_rows_value(rows, row, col);

	if (v == NULL || (v->type != DQLITE_PROTO_INTEGER &&
			  v->type != DQLITE_PROTO_BOOLEAN)) {
		return 0;
	}
	return v->integer;
}

int state__oom(struct state_tx *tx)
{
	corral_errf(tx->errmsg, sizeof tx->errmsg, "out of memory");
	return -ENOMEM;
}

int state__query_int(struct state_tx *tx,
		     const char *sql,
		     const struct dqlite_param *params,
		     unsigned n,
		     int64_t *value,
		     bool *found)
{
	struct dqlite_rows rows;
	int rv;

	rv = state_tx_query(tx, sql, params, n, &rows);
	if (rv != 0) {
		return rv;
	}
	*value = rows.n_rows > 0 ? state__col_int(&rows, 0, 0) : 0;
	if (found != NULL) {
		*found = rows.n_rows > 0;
	}
	dqlite_proto_rows_close(&rows);
	return 0;
}

int state__config_load(struct state_tx *tx,
		       const char *sql,
		       const struct dqlite_param *params,
		       unsigned n,
		       json_t **config)
{
	struct dqlite_rows rows;
	json_t *obj;
	size_t i;
	int rv;

	rv = state_tx_query(tx, sql, params, n, &rows);
	if (rv != 0) {
		return rv;
	}
	obj = json_object();
	if (obj == NULL) {
		rv = state__oom(tx);
		goto err_after_query;
	}
	for (i = 0; i < rows.n_rows; i++) {
		const char *key = state__col_text(&rows, i, 0);
		const char *value = state__col_text(&rows, i, 1);

		if (key == NULL) {
			continue;
		}
		if (json_object_set_new(
			obj, key, json_string(value != NULL ? value : "")) !=
		    0) {
			rv = state__oom(tx);
			goto err_after_object;
		}
	}
	dqlite_proto_rows_close(&rows);
	*config = obj;
	return 0;

err_after_object:
	json_decref(obj);
err_after_query:
	dqlite_proto_rows_close(&rows);
	return rv;
}

int state__config_check(struct state_tx *tx,
			const json_t *config,
			const char *what)
{
	const char *key;
	json_t *value;

	if (config == NULL) {
		return 0;
	}
	if (!json_is_object(config)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "%s must be an object", what);
		return CORRAL_EINVALID;
	}
	json_object_foreach((json_t *)config, key, value)
	{
		if (!json_is_string(value)) {
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "%s key %s: value must be a string", what,
				    key);
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

int state__config_store(struct state_tx *tx,
			const char *insert_sql,
			int64_t owner_id,
			const json_t *config,
			const char *skip)
{
	struct dqlite_param params[3];
	const char *key;
	json_t *value;
	int rv;

	rv = state__config_check(tx, config, "config");
	if (rv != 0 || config == NULL) {
		return rv;
	}
	json_object_foreach((json_t *)config, key, value)
	{
		if (skip != NULL && strcmp(key, skip) == 0) {
			continue;
		}
		params[0] = state__int(owner_id);
		params[1] = state__text(key);
		params[2] = state__text(json_string_value(value));
		rv = state_tx_exec(tx, insert_sql, params, 3, NULL, NULL);
		if (rv != 0) {
			corral_errwrapf(tx->errmsg, sizeof tx->errmsg,
					"store key %s", key);
			return rv;
		}
	}
	return 0;
}

int state__used_by_add(struct state_tx *tx,
		       json_t *used_by,
		       const char *kind,
		       const char *name,
		       const char *project)
{
	json_t *url;

	if (strcmp(project, "default") == 0) {
		url = json_sprintf("/1.0/%s/%s", kind, name);
	} else {
		url =
		    json_sprintf("/1.0/%s/%s?project=%s", kind, name, project);
	}
	if (url == NULL || json_array_append_new(used_by, url) != 0) {
		return state__oom(tx);
	}
	return 0;
}

json_t *state__index_get(json_t *index, int64_t id)
{
	char key[24];

	snprintf(key, sizeof key, "%lld", (long long)id);
	return json_object_get(index, key);
}

int state__index_set(struct state_tx *tx,
		     json_t *index,
		     int64_t id,
		     json_t *value)
{
	char key[24];

	snprintf(key, sizeof key, "%lld", (long long)id);
	if (value == NULL || json_object_set_new(index, key, value) != 0) {
		return state__oom(tx);
	}
	return 0;
}
