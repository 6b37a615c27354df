/* Helpers shared by the entity files of state/: building parameters,
 * reading columns of a result, and moving config maps between rows and
 * jansson objects.
 *
 * Every helper that can fail leaves a message in tx->errmsg and returns a
 * negative code, like the functions of include/corral/state.h. */
#ifndef CORRAL_STATE_TX_UTIL_H
#define CORRAL_STATE_TX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <corral/state.h>

#include "dqlite_proto.h"

/* A TEXT parameter borrowing @text, which must outlive the statement. A NULL
 * @text gives a NULL parameter. */
struct dqlite_param state__text(const char *text);

/* An INTEGER parameter. */
struct dqlite_param state__int(int64_t value);

/* A NULL parameter. */
struct dqlite_param state__null(void);

/* The text of column @col of row @row, borrowed from @rows; NULL when the
 * value is NULL, not text, or out of range. */
const char *state__col_text(const struct dqlite_rows *rows,
			    size_t row,
			    unsigned col);

/* The integer of column @col of row @row (INTEGER or BOOLEAN values); 0 when
 * the value is of another type or out of range. */
int64_t state__col_int(const struct dqlite_rows *rows,
		       size_t row,
		       unsigned col);

/* Fill tx->errmsg with "out of memory" and return -ENOMEM. */
int state__oom(struct state_tx *tx);

/* Run a query returning at most one integer in its first column. *@found
 * (may be NULL) tells whether a row came back; *@value is 0 when not. */
int state__query_int(struct state_tx *tx,
		     const char *sql,
		     const struct dqlite_param *params,
		     unsigned n,
		     int64_t *value,
		     bool *found);

/* Look up the id of project @name: CORRAL_ENOTFOUND "project NAME not
 * found" when absent. */
int state__project_id(struct state_tx *tx, const char *name, int64_t *id);

/* Run a query whose columns are (key, value) and return its rows as a new
 * object of strings in *@config (owned by the caller). */
int state__config_load(struct state_tx *tx,
		       const char *sql,
		       const struct dqlite_param *params,
		       unsigned n,
		       json_t **config);

/* Check that @config is NULL or an object whose values are all strings:
 * CORRAL_EINVALID naming the first bad key otherwise. @what names the
 * object in the message ("config", "device eth0"). */
int state__config_check(struct state_tx *tx,
			const json_t *config,
			const char *what);

/* Insert every key of @config (NULL means none; values must be strings)
 * with @insert_sql, whose parameters are (@owner_id, key, value). @skip
 * (may be NULL) names a key left out. The caller has emptied the owner's
 * previous rows. */
int state__config_store(struct state_tx *tx,
			const char *insert_sql,
			int64_t owner_id,
			const json_t *config,
			const char *skip);

/* Insert profile @name into project @project_id with no config and no
 * devices; its id in *@id (may be NULL). Does not check the name nor bump a
 * generation. */
int state__profile_insert(struct state_tx *tx,
			  int64_t project_id,
			  const char *name,
			  const char *description,
			  int64_t *id);

/* Append to the array @used_by the URL of @kind ("instances", "profiles")
 * @name in @project: "/1.0/KIND/NAME", with "?project=P" unless @project is
 * "default". */
int state__used_by_add(struct state_tx *tx,
		       json_t *used_by,
		       const char *kind,
		       const char *name,
		       const char *project);

/* Return the entry (borrowed from @index) of the object @index under the
 * decimal string of @id, or NULL. */
json_t *state__index_get(json_t *index, int64_t id);

/* Store @value (reference stolen, also on error) in the object @index under
 * the decimal string of @id. Returns 0 or -ENOMEM (tx->errmsg filled). */
int state__index_set(struct state_tx *tx,
		     json_t *index,
		     int64_t id,
		     json_t *value);

#endif /* CORRAL_STATE_TX_UTIL_H */
