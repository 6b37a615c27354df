/* In-memory registry of LXD operations (never stored in the database).
 *
 * An operation is created Running, changes state a few times, and ends in a
 * final state: Success (200), Failure (400) or Cancelled (401). Every change
 * is reported through the registry's notify hook, which the API turns into
 * an "operation" event on /1.0/events: that is how `lxc` waits for every
 * asynchronous call. A finished operation stays queryable for retention_ms
 * (at least 30 s by default, pylxd re-reads it after waiting) and is then
 * freed by a timer sweep.
 *
 * Waiters (GET /1.0/operations/{id}/wait) are registered with ops_wait()
 * and called once, when the operation reaches a final state, when their
 * timeout passes, or when the registry closes.
 *
 * Everything runs on the loop thread. */
#ifndef CORRAL_API_OPERATIONS_H
#define CORRAL_API_OPERATIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

/* Default retention of finished operations. */
#define OPS_RETENTION_MS (30 * 1000)

/* Size of an RFC 3339 timestamp with nanoseconds, NUL included. */
#define OPS_TIME_SIZE 40

/* Size of a UUID string, NUL included. */
#define OPS_ID_SIZE 37

/* Status codes of LXD's shared/api/status_code.go that operations use. */
enum {
	OPS_STATUS_CREATED = 100,
	OPS_STATUS_RUNNING = 103,
	OPS_STATUS_CANCELLING = 104,
	OPS_STATUS_PENDING = 105,
	OPS_STATUS_SUCCESS = 200,
	OPS_STATUS_FAILURE = 400,
	OPS_STATUS_CANCELLED = 401,
};

enum ops_class {
	OPS_CLASS_TASK,
	OPS_CLASS_WEBSOCKET,
	OPS_CLASS_TOKEN,
};

struct api_op;
struct ops;
struct ops_waiter;

/* Asked to cancel @op (DELETE /1.0/operations/{id}); for token operations
 * this revokes the token. Returns 0 when the operation may become
 * Cancelled, or a negative code (with @errmsg, CORRAL_ERRMSG_SIZE, filled)
 * to refuse. */
typedef int (*ops_cancel_cb)(struct api_op *op, void *arg, char *errmsg);

/* Called when a running @op reaches its expiry (ops_op_set_expiry()),
 * just before it is finished. */
typedef void (*ops_expire_cb)(struct api_op *op, void *arg);

/* Called after every state change of @op (creation included). */
typedef void (*ops_notify_cb)(struct api_op *op, void *arg);

/* Called once per waiter: @timed_out is false when @op became final, true
 * when the timeout passed, the waiter's client went away or the registry
 * closed first. @op is borrowed for the duration of the call. */
typedef void (*ops_wait_cb)(struct api_op *op, bool timed_out, void *arg);

/* One operation. Read its fields freely; change them only through the
 * functions below. */
struct api_op {
	struct ops *ops; /* borrowed: the registry */
	char id[OPS_ID_SIZE];
	enum ops_class cls;
	char *description; /* owned */
	char *project;     /* owned; "" for server-wide operations */
	char *location;    /* owned; member name, "none" when standalone */
	struct timespec created_at;
	struct timespec updated_at;
	int status_code;
	json_t *resources; /* owned; NULL is JSON null */
	json_t *metadata;  /* owned; NULL is JSON null */
	bool may_cancel;
	char *err; /* owned; "" unless failed */
	ops_cancel_cb cancel_cb;
	void *cancel_arg;

	/* Set by ops_op_set_expiry(): uv_now() deadline (0: none), the error
	 * it ends with, and the hook called first. */
	uint64_t expires_ms;
	char *expire_err; /* owned, or NULL */
	ops_expire_cb expire_cb;
	void *expire_arg;

	int refs;
	uint64_t finished_ms; /* uv_now() when it became final */
	struct api_op *prev;
	struct api_op *next;
};

/* The registry. Allocated by ops_create(). */
struct ops {
	uv_loop_t *loop; /* borrowed */
	uint64_t retention_ms;
	uint64_t sweep_ms; /* period of the retention sweep */
	ops_notify_cb notify;
	void *notify_arg;
	char location[64]; /* member name for new operations */
	/* A random id of this registry, new at every start: tokens record it
	 * so that a restarted member can tell its earlier runs' tokens. */
	char boot[OPS_ID_SIZE];

	struct api_op *head; /* owned list, newest first */
	unsigned n_ops;
	struct ops_waiter *waiters; /* owned list */
	uv_timer_t sweep;
	bool sweep_open;
	uv_timer_t expiry; /* fires at the earliest expires_ms */
	bool expiry_open;
	bool closing;
	int closing_handles;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Allocate a registry on @loop (borrowed, must outlive it), with a new
 * boot id. @notify, which may be NULL, is called after every state change
 * with @notify_arg. Returns 0, -ENOMEM or -EIO (no randomness). */
int ops_create(uv_loop_t *loop,
	       ops_notify_cb notify,
	       void *notify_arg,
	       struct ops **out);

/* Close the registry's timers: pending waiters are called as timed out, the
 * sweep stops. @cb (may be NULL) runs on the loop once every
 * handle has closed. New operations are still accepted but no longer
 * expire. Safe to call twice (the second call only replaces @cb). */
void ops_close(struct ops *o, void (*cb)(void *arg), void *arg);

/* Free the registry and every operation in it, whatever its references.
 * Call after ops_close() completed, or when no timer was ever started.
 * Accepts NULL. */
void ops_destroy(struct ops *o);

/* Create an operation in state Running and notify it. @description and
 * @project (NULL means "") are copied; @resources and @metadata (both may
 * be NULL) are stolen, also on error. @cancel_cb (may be NULL) is called by
 * ops_cancel(). The returned operation is borrowed: it stays valid while it
 * is running and for the retention period after it finished, or until the
 * caller's own ops_op_unref() when it took a reference. Returns 0 or
 * -ENOMEM. */
int ops_op_create(struct ops *o,
		  enum ops_class cls,
		  const char *description,
		  const char *project,
		  json_t *resources,
		  json_t *metadata,
		  bool may_cancel,
		  ops_cancel_cb cancel_cb,
		  void *cancel_arg,
		  struct api_op **out);

/* ops_op_create() with a given @id (copied; a UUID from ops_uuid(), so
 * that a caller can record the id before the operation exists, e.g. in a
 * token row), or a new one when @id is NULL. Returns 0, -ENOMEM, or
 * CORRAL_EEXIST when the registry already holds an operation @id (then
 * @resources and @metadata are freed too). */
int ops_op_create_id(struct ops *o,
		     const char *id,
		     enum ops_class cls,
		     const char *description,
		     const char *project,
		     json_t *resources,
		     json_t *metadata,
		     bool may_cancel,
		     ops_cancel_cb cancel_cb,
		     void *cancel_arg,
		     struct api_op **out);

/* Set the location of new operations to @name (copied; the member's name
 * once it has one), and of the operations that still carry the previous
 * location (made before clustering was enabled: they run on this member
 * too). Returns 0 or -ENOMEM (locations of existing operations may then be
 * left as they were). */
int ops_set_location(struct ops *o, const char *name);

/* Keep @op's memory valid beyond its retention; balance with
 * ops_op_unref(). */
void ops_op_ref(struct api_op *op);

/* Drop a reference taken with ops_op_ref(). */
void ops_op_unref(struct api_op *op);

/* Move @op to a final @status_code (OPS_STATUS_SUCCESS, _FAILURE or
 * _CANCELLED), with @err (copied; NULL means "") and, when not NULL, new
 * @metadata (stolen, also on error). Wakes the waiters and notifies.
 * Returns 0, CORRAL_EINVALID when @op is already final or @status_code is
 * not final (nothing changes), or -ENOMEM (the state still changes, the
 * error text is lost). */
int ops_finish(struct api_op *op,
	       int status_code,
	       const char *err,
	       json_t *metadata);

/* Make running @op end by itself @delay_ms from now unless it finished
 * before: @cb (may be NULL) is called with @arg, then @op becomes Failure
 * with @err (copied; NULL means "expired"). Used for tokens. A later call
 * replaces the deadline. Returns 0, CORRAL_EINVALID when @op is final, or
 * -ENOMEM. While the registry is closing nothing expires. */
int ops_op_set_expiry(struct api_op *op,
		      uint64_t delay_ms,
		      const char *err,
		      ops_expire_cb cb,
		      void *arg);

/* Replace the metadata of a running @op (stolen, also on error; NULL means
 * JSON null) and notify, e.g. for progress. Returns 0 or CORRAL_EINVALID
 * when @op is final. */
int ops_update_metadata(struct api_op *op, json_t *metadata);

/* Cancel @op: allowed when it is running and may_cancel is set or it is a
 * token. The cancel callback, if any, may refuse; otherwise @op becomes
 * Cancelled. Returns 0, or CORRAL_EINVALID / the callback's code with
 * @errmsg (CORRAL_ERRMSG_SIZE) filled. */
int ops_cancel(struct api_op *op, char *errmsg);

/* Find an operation by id; NULL when unknown or expired. Borrowed. */
struct api_op *ops_lookup(struct ops *o, const char *id);

/* Whether @op matches a request for @project (operations without a project
 * match every project) or for all projects. */
bool ops_op_in_project(const struct api_op *op,
		       const char *project,
		       bool all_projects);

/* Whether @status_code is final (200, 400, 401). */
bool ops_status_final(int status_code);

/* LXD's status text of @status_code ("Running"), "Unknown" for others. */
const char *ops_status_text(int status_code);

/* "task", "websocket" or "token". */
const char *ops_class_text(enum ops_class cls);

/* @op as LXD's Operation object. Returns a new reference, or NULL on
 * OOM. */
json_t *ops_to_json(const struct api_op *op);

/* The list answer of GET /1.0/operations: a map keyed by lowercase status
 * holding arrays of URLs ("/1.0/operations/ID") or, with @recursion,
 * operation objects; statuses without operations are left out. Only the
 * operations matching @project / @all_projects are listed. Returns a new
 * reference or NULL on OOM. */
json_t *ops_list_json(struct ops *o,
		      const char *project,
		      bool all_projects,
		      bool recursion);

/* Like ops_list_json(), listing only the operations @visible (may be
 * NULL: all) accepts, called with @arg. */
json_t *ops_list_json_filter(struct ops *o,
			     const char *project,
			     bool all_projects,
			     bool recursion,
			     bool (*visible)(const struct api_op *op,
					     void *arg),
			     void *arg);

/* Wait for @op to become final. @timeout_ms < 0 waits forever. @cb is called
 * exactly once with @arg: at once when @op is already final or the timeout
 * is 0, else later on the loop. @alive, when not NULL, is polled every few
 * seconds; when it returns false the waiter is dropped and @cb called with
 * timed_out set (so a request whose client went away does not wait
 * forever). Returns 0 or -ENOMEM (then @cb is not called). */
int ops_wait(struct api_op *op,
	     int64_t timeout_ms,
	     ops_wait_cb cb,
	     bool (*alive)(void *arg),
	     void *arg);

/* Format @ts like Go's RFC3339Nano in UTC ("2026-11-23T14:04:12.123456789Z",
 * trailing zeros of the fraction dropped) into @out. */
void ops_format_time(const struct timespec *ts, char out[OPS_TIME_SIZE]);

/* Fill @out with a new random (version 4) UUID in lowercase. Returns 0 or
 * -EIO when no randomness is available. */
int ops_uuid(char out[OPS_ID_SIZE]);

#endif /* CORRAL_API_OPERATIONS_H */
