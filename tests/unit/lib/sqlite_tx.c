/* struct state_tx_ops over a plain SQLite database (see sqlite_tx.h). */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <corral/err.h>

#include "dqlite_proto.h"
#include "sqlite_tx.h"

static int prepare(sqlite3 *db,
		   const char *sql,
		   const struct dqlite_param *params,
		   unsigned n,
		   sqlite3_stmt **out,
		   char *errmsg)
{
	sqlite3_stmt *stmt = NULL;
	const char *tail = NULL;
	unsigned i;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, &tail);
	if (rc != SQLITE_OK) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "sqlite3_prepare_v2(): %s", sqlite3_errmsg(db));
		return CORRAL_EDBFAIL;
	}
	while (tail != NULL &&
	       (isspace((unsigned char)*tail) || *tail == ';')) {
		tail++;
	}
	if (stmt == NULL || (tail != NULL && *tail != '\0')) {
		sqlite3_finalize(stmt);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "exactly one statement expected: %s", sql);
		return CORRAL_EINVALID;
	}
	for (i = 0; i < n; i++) {
		const struct dqlite_param *p = &params[i];
		int col = (int)i + 1;

		switch (p->type) {
		case DQLITE_PROTO_INTEGER:
		case DQLITE_PROTO_BOOLEAN:
			rc = sqlite3_bind_int64(stmt, col, p->integer);
			break;
		case DQLITE_PROTO_FLOAT:
			rc = sqlite3_bind_double(stmt, col, p->real);
			break;
		case DQLITE_PROTO_TEXT:
			rc = sqlite3_bind_text(stmt, col, p->text, -1,
					       SQLITE_TRANSIENT);
			break;
		case DQLITE_PROTO_BLOB:
			rc = sqlite3_bind_blob(stmt, col, p->blob.data,
					       (int)p->blob.len,
					       SQLITE_TRANSIENT);
			break;
		case DQLITE_PROTO_NULL:
			rc = sqlite3_bind_null(stmt, col);
			break;
		default:
			sqlite3_finalize(stmt);
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "parameter %u: unknown type %u", i + 1,
				    p->type);
			return CORRAL_EINVALID;
		}
		if (rc != SQLITE_OK) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "sqlite3_bind(): %s", sqlite3_errmsg(db));
			sqlite3_finalize(stmt);
			return CORRAL_EDBFAIL;
		}
	}
	*out = stmt;
	return 0;
}

static int fake_exec(void *impl,
		     const char *sql,
		     const struct dqlite_param *params,
		     unsigned n,
		     int64_t *last_id,
		     int64_t *changes,
		     char *errmsg)
{
	struct test_sqlite_tx *t = impl;
	sqlite3_stmt *stmt;
	int rc;
	int rv;

	rv = prepare(t->db, sql, params, n, &stmt, errmsg);
	if (rv != 0) {
		return rv;
	}
	do {
		rc = sqlite3_step(stmt);
	} while (rc == SQLITE_ROW);
	if (rc != SQLITE_DONE) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "sqlite3_step(): %s",
			    sqlite3_errmsg(t->db));
		sqlite3_finalize(stmt);
		return CORRAL_EDBFAIL;
	}
	sqlite3_finalize(stmt);
	if (last_id != NULL) {
		*last_id = sqlite3_last_insert_rowid(t->db);
	}
	if (changes != NULL) {
		*changes = sqlite3_changes(t->db);
	}
	return 0;
}

static char *copy_bytes(const void *data, size_t len)
{
	char *copy = dqlite_proto_malloc(len + 1);

	if (copy == NULL) {
		return NULL;
	}
	if (len > 0) {
		memcpy(copy, data, len);
	}
	copy[len] = '\0';
	return copy;
}

static int set_columns(sqlite3_stmt *stmt, struct dqlite_rows *rows)
{
	unsigned n_cols = (unsigned)sqlite3_column_count(stmt);
	unsigned i;

	rows->cols = dqlite_proto_malloc(n_cols * sizeof *rows->cols + 1);
	if (rows->cols == NULL) {
		return -ENOMEM;
	}
	rows->n_cols = n_cols;
	for (i = 0; i < n_cols; i++) {
		rows->cols[i] = NULL;
	}
	for (i = 0; i < n_cols; i++) {
		const char *name = sqlite3_column_name(stmt, (int)i);

		rows->cols[i] = copy_bytes(name, strlen(name));
		if (rows->cols[i] == NULL) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* Append the current row of @stmt to @rows. The row counts as part of
 * @rows before its values are filled, each starting as NULL, so a failure
 * half-way leaves something dqlite_proto_rows_close() frees. */
static int append_row(sqlite3_stmt *stmt, struct dqlite_rows *rows)
{
	struct dqlite_value *row;
	unsigned i;

	if (rows->n_rows == rows->cap) {
		size_t cap = rows->cap == 0 ? 16 : rows->cap * 2;
		struct dqlite_value *values = dqlite_proto_realloc(
		    rows->values, cap * rows->n_cols * sizeof *values + 1);

		if (values == NULL) {
			return -ENOMEM;
		}
		rows->values = values;
		rows->cap = cap;
	}
	row = &rows->values[rows->n_rows * rows->n_cols];
	for (i = 0; i < rows->n_cols; i++) {
		memset(&row[i], 0, sizeof row[i]);
		row[i].type = DQLITE_PROTO_NULL;
		row[i].wire_type = DQLITE_PROTO_NULL;
	}
	rows->n_rows++;
	for (i = 0; i < rows->n_cols; i++) {
		struct dqlite_value *v = &row[i];
		int col = (int)i;
		size_t len;

		switch (sqlite3_column_type(stmt, col)) {
		case SQLITE_INTEGER:
			v->type = DQLITE_PROTO_INTEGER;
			v->integer = sqlite3_column_int64(stmt, col);
			break;
		case SQLITE_FLOAT:
			v->type = DQLITE_PROTO_FLOAT;
			v->real = sqlite3_column_double(stmt, col);
			break;
		case SQLITE_TEXT:
			len = (size_t)sqlite3_column_bytes(stmt, col);
			v->text =
			    copy_bytes(sqlite3_column_text(stmt, col), len);
			if (v->text == NULL) {
				return -ENOMEM;
			}
			v->type = DQLITE_PROTO_TEXT;
			v->len = len;
			break;
		case SQLITE_BLOB:
			len = (size_t)sqlite3_column_bytes(stmt, col);
			if (len > 0) {
				v->blob = (uint8_t *)copy_bytes(
				    sqlite3_column_blob(stmt, col), len);
				if (v->blob == NULL) {
					return -ENOMEM;
				}
			}
			v->type = DQLITE_PROTO_BLOB;
			v->len = len;
			break;
		default:
			break;
		}
		v->wire_type = v->type;
	}
	return 0;
}

static int fake_query(void *impl,
		      const char *sql,
		      const struct dqlite_param *params,
		      unsigned n,
		      struct dqlite_rows *rows,
		      char *errmsg)
{
	struct test_sqlite_tx *t = impl;
	sqlite3_stmt *stmt;
	int rc = SQLITE_DONE;
	int rv;

	rv = prepare(t->db, sql, params, n, &stmt, errmsg);
	if (rv != 0) {
		return rv;
	}
	rv = set_columns(stmt, rows);
	while (rv == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		rv = append_row(stmt, rows);
	}
	if (rv == -ENOMEM) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
	} else if (rv == 0 && rc != SQLITE_DONE) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "sqlite3_step(): %s",
			    sqlite3_errmsg(t->db));
		rv = CORRAL_EDBFAIL;
	}
	sqlite3_finalize(stmt);
	if (rv != 0) {
		dqlite_proto_rows_close(rows);
	}
	return rv;
}

const struct state_tx_ops test_sqlite_tx_ops = {
	.exec = fake_exec,
	.query = fake_query,
};

int test_sqlite_tx_open(struct test_sqlite_tx *t)
{
	memset(t, 0, sizeof *t);
	if (sqlite3_open(":memory:", &t->db) != SQLITE_OK ||
	    sqlite3_exec(t->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) !=
		SQLITE_OK) {
		test_sqlite_tx_close(t);
		return CORRAL_EDBFAIL;
	}
	t->tx.ops = &test_sqlite_tx_ops;
	t->tx.impl = t;
	t->tx.write = false;
	return 0;
}

void test_sqlite_tx_close(struct test_sqlite_tx *t)
{
	if (t->db != NULL) {
		sqlite3_close(t->db);
		t->db = NULL;
	}
}
