/* A struct state_tx over a plain in-memory SQLite database, for unit tests
 * of the state/ entity functions without a dqlite node.
 *
 * Results are converted to struct dqlite_rows with the allocator of
 * state/dqlite_proto.h, so dqlite_proto_rows_close() frees them. Each call
 * runs exactly one statement, like a dqlite EXEC_SQL/QUERY_SQL request with
 * one statement; SQL with a second statement fails with CORRAL_EINVALID.
 * Errors return CORRAL_EDBFAIL with the SQLite message. */
#ifndef CORRAL_TEST_SQLITE_TX_H
#define CORRAL_TEST_SQLITE_TX_H

#include <sqlite3.h>

#include <corral/state.h>

/* One test database and the transaction handle over it. */
struct test_sqlite_tx {
	sqlite3 *db;        /* owned */
	struct state_tx tx; /* tx.impl points back at this struct */
};

/* The ops of a test transaction; impl is a struct test_sqlite_tx. */
extern const struct state_tx_ops test_sqlite_tx_ops;

/* Open a fresh in-memory database with foreign keys on and point t->tx at
 * it (t->tx.write is false). Returns 0 or CORRAL_EDBFAIL. */
int test_sqlite_tx_open(struct test_sqlite_tx *t);

/* Close the database. Accepts an already closed @t. */
void test_sqlite_tx_close(struct test_sqlite_tx *t);

#endif /* CORRAL_TEST_SQLITE_TX_H */
