/* Schema updates: internal interface, for tests.
 *
 * The schema is an ordered list of updates; update N brings the database
 * from version N-1 to N. Each runs inside a transaction that
 * state_schema_apply() opens and commits, so an update only issues its own
 * statements. */
#ifndef CORRAL_STATE_SCHEMA_H
#define CORRAL_STATE_SCHEMA_H

#include <stddef.h>

#include <corral/state.h>

/* One schema update: run its statements through @tx (no BEGIN/COMMIT).
 * Returns 0 or a negative code with tx->errmsg filled. */
typedef int (*state_schema_update_fn)(struct state_tx *tx);

/* Replace the list of updates by @updates (@n entries, borrowed, must
 * outlive every later call), or restore the built-in list when @updates is
 * NULL. The version this binary supports becomes @n. For tests: not
 * thread-safe. */
void state__schema_set_updates(const state_schema_update_fn *updates, size_t n);

/* The built-in update that creates schema version 1, so tests can list it
 * ahead of their own updates. */
int state__schema_update1(struct state_tx *tx);

/* Apply pending updates up to version @target (at most the number of
 * updates), each in its own transaction. Like state_schema_apply(), which
 * applies all of them; CORRAL_ESCHEMA when the database is newer than the
 * number of updates this binary knows. A @target lower than the current
 * version applies nothing. */
int state__schema_apply_to(struct state_tx *tx, int target);

#endif /* CORRAL_STATE_SCHEMA_H */
