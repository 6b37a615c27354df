/* Unit tests of api/operations.c (the in-memory operation registry) and of
 * the pure helpers of api/events.c, on a real libuv loop with short
 * retention and wait timeouts. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <corral/err.h>

#include "api.h"
#include "events.h"
#include "operations.h"

struct fixture {
	uv_loop_t loop;
	struct ops *ops;
	unsigned notified;
	int last_status; /* status_code at the last notification */
	json_t *last_json;
	bool closed;
};

static void notify_cb(struct api_op *op, void *arg)
{
	struct fixture *f = arg;

	f->notified++;
	f->last_status = op->status_code;
	json_decref(f->last_json);
	f->last_json = ops_to_json(op);
	assert_non_null(f->last_json);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(ops_create(&f->loop, notify_cb, f, &f->ops), 0);
	*state = f;
	return 0;
}

static void closed_cb(void *arg)
{
	struct fixture *f = arg;

	f->closed = true;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ops_close(f->ops, closed_cb, f);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->closed);
	ops_destroy(f->ops);
	/* Every timer closed: nothing left on the loop. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	json_decref(f->last_json);
	free(f);
	return 0;
}

static struct api_op *new_task(struct fixture *f, const char *project)
{
	struct api_op *op = NULL;

	assert_int_equal(
	    ops_op_create(
		f->ops, OPS_CLASS_TASK, "Creating instance", project,
		json_pack("{s:[s]}", "instances", "/1.0/instances/c1"), NULL,
		false, NULL, NULL, &op),
	    0);
	assert_non_null(op);
	return op;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static void test_uuid_format(void **state)
{
	char a[OPS_ID_SIZE];
	char b[OPS_ID_SIZE];
	size_t i;

	(void)state;
	assert_int_equal(ops_uuid(a), 0);
	assert_int_equal(ops_uuid(b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(strlen(a), 36);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			assert_int_equal(a[i], '-');
		} else {
			assert_true(isxdigit((unsigned char)a[i]));
			assert_false(isupper((unsigned char)a[i]));
		}
	}
	assert_int_equal(a[14], '4');
	assert_non_null(strchr("89ab", a[19]));
}

static void test_format_time(void **state)
{
	struct timespec ts;
	char out[OPS_TIME_SIZE];

	(void)state;
	ts.tv_sec = 0;
	ts.tv_nsec = 0;
	ops_format_time(&ts, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	ts.tv_sec = 1795442652; /* 2026-11-23T14:04:12Z */
	ts.tv_nsec = 123456789;
	ops_format_time(&ts, out);
	assert_string_equal(out, "2026-11-23T14:04:12.123456789Z");
	/* Go's RFC3339Nano trims trailing zeros. */
	ts.tv_nsec = 120000000;
	ops_format_time(&ts, out);
	assert_string_equal(out, "2026-11-23T14:04:12.12Z");
	ts.tv_nsec = 1;
	ops_format_time(&ts, out);
	assert_string_equal(out, "2026-11-23T14:04:12.000000001Z");
}

static void test_status_texts(void **state)
{
	(void)state;
	assert_string_equal(ops_status_text(103), "Running");
	assert_string_equal(ops_status_text(200), "Success");
	assert_string_equal(ops_status_text(400), "Failure");
	assert_string_equal(ops_status_text(401), "Cancelled");
	assert_string_equal(ops_status_text(104), "Cancelling");
	assert_string_equal(ops_status_text(999), "Unknown");
	assert_true(ops_status_final(200));
	assert_true(ops_status_final(400));
	assert_true(ops_status_final(401));
	assert_false(ops_status_final(103));
	assert_string_equal(ops_class_text(OPS_CLASS_TASK), "task");
	assert_string_equal(ops_class_text(OPS_CLASS_WEBSOCKET), "websocket");
	assert_string_equal(ops_class_text(OPS_CLASS_TOKEN), "token");
}

/* ------------------------------------------------------------------------ */
/* Life cycle and JSON                                                       */

static void test_create_json_shape(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	json_t *j;
	const char *created;

	assert_int_equal(f->notified, 1);
	assert_int_equal(f->last_status, OPS_STATUS_RUNNING);
	assert_ptr_equal(ops_lookup(f->ops, op->id), op);
	assert_null(ops_lookup(f->ops, "nope"));

	j = ops_to_json(op);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 12);
	assert_string_equal(json_string_value(json_object_get(j, "id")),
			    op->id);
	assert_string_equal(json_string_value(json_object_get(j, "class")),
			    "task");
	assert_string_equal(
	    json_string_value(json_object_get(j, "description")),
	    "Creating instance");
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "Running");
	assert_int_equal(json_integer_value(json_object_get(j, "status_code")),
			 103);
	assert_string_equal(
	    json_string_value(json_array_get(
		json_object_get(json_object_get(j, "resources"), "instances"),
		0)),
	    "/1.0/instances/c1");
	assert_true(json_is_null(json_object_get(j, "metadata")));
	assert_true(json_is_false(json_object_get(j, "may_cancel")));
	assert_string_equal(json_string_value(json_object_get(j, "err")), "");
	assert_string_equal(json_string_value(json_object_get(j, "location")),
			    "none");
	created = json_string_value(json_object_get(j, "created_at"));
	assert_non_null(created);
	assert_true(strlen(created) >= 20);
	assert_int_equal(created[4], '-');
	assert_int_equal(created[10], 'T');
	assert_int_equal(created[strlen(created) - 1], 'Z');
	assert_non_null(json_object_get(j, "updated_at"));
	json_decref(j);
	assert_int_equal(ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL), 0);
}

static void test_finish(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	struct api_op *op2 = new_task(f, "default");

	/* Not a final status: refused, nothing changes. */
	assert_int_equal(ops_finish(op, OPS_STATUS_RUNNING, NULL, NULL),
			 CORRAL_EINVALID);
	assert_int_equal(f->notified, 2);

	assert_int_equal(ops_finish(op, OPS_STATUS_SUCCESS, NULL,
				    json_pack("{s:s}", "k", "v")),
			 0);
	assert_int_equal(f->notified, 3);
	assert_int_equal(f->last_status, OPS_STATUS_SUCCESS);
	assert_string_equal(
	    json_string_value(json_object_get(f->last_json, "status")),
	    "Success");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(f->last_json, "metadata"), "k")),
	    "v");
	/* Final states are final. */
	assert_int_equal(ops_finish(op, OPS_STATUS_FAILURE, "late", NULL),
			 CORRAL_EINVALID);
	assert_int_equal(ops_update_metadata(op, json_object()),
			 CORRAL_EINVALID);
	assert_int_equal(f->notified, 3);
	/* Still queryable. */
	assert_ptr_equal(ops_lookup(f->ops, op->id), op);

	assert_int_equal(ops_update_metadata(op2, json_pack("{s:i}", "p", 50)),
			 0);
	assert_int_equal(f->notified, 4);
	assert_int_equal(
	    ops_finish(op2, OPS_STATUS_FAILURE, "create instance: boom", NULL),
	    0);
	assert_string_equal(
	    json_string_value(json_object_get(f->last_json, "err")),
	    "create instance: boom");
	assert_string_equal(
	    json_string_value(json_object_get(f->last_json, "status")),
	    "Failure");
	/* The earlier metadata stays when none is given. */
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(f->last_json, "metadata"), "p")),
			 50);
}

struct cancel_state {
	unsigned calls;
	int answer;
};

static int cancel_cb(struct api_op *op, void *arg, char *errmsg)
{
	struct cancel_state *c = arg;

	(void)op;
	c->calls++;
	if (c->answer != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "token in use");
	}
	return c->answer;
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct cancel_state cs = { 0, 0 };
	char errmsg[CORRAL_ERRMSG_SIZE];
	struct api_op *task = new_task(f, "default");
	struct api_op *cancellable = NULL;
	struct api_op *token = NULL;

	assert_int_equal(ops_cancel(task, errmsg), CORRAL_EINVALID);
	assert_string_equal(errmsg, "operation can't be cancelled");
	assert_int_equal(task->status_code, OPS_STATUS_RUNNING);

	assert_int_equal(
	    ops_op_create(f->ops, OPS_CLASS_TASK, "t", "default", NULL, NULL,
			  true, NULL, NULL, &cancellable),
	    0);
	assert_int_equal(ops_cancel(cancellable, errmsg), 0);
	assert_int_equal(cancellable->status_code, OPS_STATUS_CANCELLED);
	assert_int_equal(f->last_status, OPS_STATUS_CANCELLED);
	assert_int_equal(ops_cancel(cancellable, errmsg), CORRAL_EINVALID);
	assert_string_equal(errmsg, "only running operations can be cancelled");

	/* Token operations are always cancellable; the callback (revoke)
	 * may refuse. */
	assert_int_equal(
	    ops_op_create(f->ops, OPS_CLASS_TOKEN, "Join token", "", NULL,
			  json_pack("{s:s}", "secret", "x"), false, cancel_cb,
			  &cs, &token),
	    0);
	cs.answer = CORRAL_ECONFLICT;
	assert_int_equal(ops_cancel(token, errmsg), CORRAL_ECONFLICT);
	assert_string_equal(errmsg, "token in use");
	assert_int_equal(token->status_code, OPS_STATUS_RUNNING);
	cs.answer = 0;
	assert_int_equal(ops_cancel(token, errmsg), 0);
	assert_int_equal(cs.calls, 2);
	assert_int_equal(token->status_code, OPS_STATUS_CANCELLED);
	assert_string_equal(
	    json_string_value(json_object_get(f->last_json, "class")), "token");

	assert_int_equal(ops_finish(task, OPS_STATUS_SUCCESS, NULL, NULL), 0);
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct api_op *a = new_task(f, "default");
	struct api_op *b = new_task(f, "default");
	struct api_op *other = new_task(f, "p1");
	struct api_op *global = new_task(f, "");
	json_t *l;
	json_t *running;
	char url[64];

	assert_int_equal(ops_finish(b, OPS_STATUS_FAILURE, "x", NULL), 0);

	l = ops_list_json(f->ops, "default", false, false);
	assert_non_null(l);
	assert_int_equal(json_object_size(l), 2);
	running = json_object_get(l, "running");
	assert_int_equal(json_array_size(running), 2);
	snprintf(url, sizeof url, "/1.0/operations/%s", a->id);
	assert_string_equal(json_string_value(json_array_get(running, 0)), url);
	snprintf(url, sizeof url, "/1.0/operations/%s", global->id);
	assert_string_equal(json_string_value(json_array_get(running, 1)), url);
	assert_int_equal(json_array_size(json_object_get(l, "failure")), 1);
	assert_null(json_object_get(l, "success"));
	json_decref(l);

	l = ops_list_json(f->ops, "p1", false, true);
	running = json_object_get(l, "running");
	assert_int_equal(json_array_size(running), 2);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(running, 0), "id")),
			    other->id);
	assert_null(json_object_get(l, "failure"));
	json_decref(l);

	l = ops_list_json(f->ops, "default", true, false);
	assert_int_equal(json_array_size(json_object_get(l, "running")), 3);
	json_decref(l);

	l = ops_list_json(f->ops, "empty", false, false);
	assert_int_equal(json_object_size(l), 1); /* the global one */
	json_decref(l);

	assert_int_equal(ops_finish(a, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_int_equal(ops_finish(other, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_int_equal(ops_finish(global, OPS_STATUS_CANCELLED, NULL, NULL),
			 0);
	l = ops_list_json(f->ops, "default", false, false);
	assert_int_equal(json_array_size(json_object_get(l, "cancelled")), 1);
	assert_null(json_object_get(l, "running"));
	json_decref(l);
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                 */

static void test_retention(void **state)
{
	struct fixture *f = *state;
	struct api_op *running = new_task(f, "default");
	struct api_op *done = new_task(f, "default");
	struct api_op *held = new_task(f, "default");
	char done_id[OPS_ID_SIZE];
	uint64_t start;

	f->ops->retention_ms = 50;
	f->ops->sweep_ms = 10;
	memcpy(done_id, done->id, sizeof done_id);
	start = uv_now(&f->loop);
	assert_int_equal(ops_finish(done, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	ops_op_ref(held);
	assert_int_equal(ops_finish(held, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_non_null(ops_lookup(f->ops, done_id));
	assert_int_equal(f->ops->n_ops, 3);

	/* The sweep stops once no finished operation is left, so the loop
	 * returns. */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(uv_now(&f->loop) - start >= 50);
	assert_null(ops_lookup(f->ops, done_id));
	assert_null(ops_lookup(f->ops, held->id));
	assert_ptr_equal(ops_lookup(f->ops, running->id), running);
	assert_int_equal(f->ops->n_ops, 1);
	/* A reference keeps the memory beyond retention. */
	assert_int_equal(held->status_code, OPS_STATUS_SUCCESS);
	ops_op_unref(held);

	assert_int_equal(ops_finish(running, OPS_STATUS_SUCCESS, NULL, NULL),
			 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(f->ops->n_ops, 0);
}

static void expire_hook(struct api_op *op, void *arg)
{
	unsigned *calls = arg;

	/* Called while the operation is still running. */
	assert_int_equal(op->status_code, OPS_STATUS_RUNNING);
	(*calls)++;
}

static void test_expiry(void **state)
{
	struct fixture *f = *state;
	struct api_op *expiring = new_task(f, "default");
	struct api_op *early = new_task(f, "default");
	unsigned calls = 0;
	uint64_t start;

	f->ops->retention_ms = 1000;
	start = uv_now(&f->loop);
	ops_op_ref(expiring);
	ops_op_ref(early);
	assert_int_equal(ops_op_set_expiry(expiring, 30, "token expired",
					   expire_hook, &calls),
			 0);
	assert_int_equal(
	    ops_op_set_expiry(early, 20, NULL, expire_hook, &calls), 0);
	/* Finishing early cancels that deadline: its hook never runs. */
	assert_int_equal(ops_finish(early, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_int_equal(ops_op_set_expiry(early, 10, NULL, NULL, NULL),
			 CORRAL_EINVALID);
	while (expiring->status_code == OPS_STATUS_RUNNING) {
		uv_run(&f->loop, UV_RUN_ONCE);
	}
	assert_true(uv_now(&f->loop) - start >= 30);
	assert_int_equal(expiring->status_code, OPS_STATUS_FAILURE);
	assert_string_equal(expiring->err, "token expired");
	assert_int_equal(early->status_code, OPS_STATUS_SUCCESS);
	assert_int_equal(calls, 1);
	ops_op_unref(expiring);
	ops_op_unref(early);
}

static void test_close_stops_expiry(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	unsigned calls = 0;

	assert_int_equal(
	    ops_op_set_expiry(op, 10000, NULL, expire_hook, &calls), 0);
	/* Teardown closes the registry: its timer must not keep the loop
	 * alive for 10 s nor fire. */
	(void)op;
	assert_int_equal(calls, 0);
}

/* ------------------------------------------------------------------------ */
/* Waiters                                                                   */

struct wait_result {
	unsigned calls;
	bool timed_out;
	int status;
	uint64_t at;
	uv_loop_t *loop;
};

static void wait_cb(struct api_op *op, bool timed_out, void *arg)
{
	struct wait_result *w = arg;

	assert_non_null(op);
	w->calls++;
	w->timed_out = timed_out;
	w->status = op->status_code;
	w->at = uv_now(w->loop);
}

static void test_wait_immediate(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	struct wait_result w = { .loop = &f->loop };

	assert_int_equal(ops_wait(op, 0, wait_cb, NULL, &w), 0);
	assert_int_equal(w.calls, 1);
	assert_true(w.timed_out);
	assert_int_equal(w.status, OPS_STATUS_RUNNING);

	assert_int_equal(ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_int_equal(ops_wait(op, -1, wait_cb, NULL, &w), 0);
	assert_int_equal(w.calls, 2);
	assert_false(w.timed_out);
	assert_int_equal(w.status, OPS_STATUS_SUCCESS);
}

static void test_wait_timeout(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	struct wait_result w = { .loop = &f->loop };
	uint64_t start = uv_now(&f->loop);

	assert_int_equal(ops_wait(op, 30, wait_cb, NULL, &w), 0);
	assert_int_equal(w.calls, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(w.calls, 1);
	assert_true(w.timed_out);
	assert_int_equal(w.status, OPS_STATUS_RUNNING);
	assert_true(w.at - start >= 30);
	assert_null(f->ops->waiters);
	assert_int_equal(ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_int_equal(w.calls, 1);
}

struct finisher {
	uv_timer_t timer;
	struct api_op *op;
	bool closed;
};

static void finisher_closed_cb(uv_handle_t *h)
{
	struct finisher *fin = h->data;

	fin->closed = true;
}

static void finish_timer_cb(uv_timer_t *t)
{
	struct finisher *fin = t->data;

	assert_int_equal(ops_finish(fin->op, OPS_STATUS_FAILURE, "boom", NULL),
			 0);
	uv_close((uv_handle_t *)t, finisher_closed_cb);
}

static void test_wait_until_final(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	struct wait_result forever = { .loop = &f->loop };
	struct wait_result bounded = { .loop = &f->loop };
	struct finisher fin = { .op = op };

	assert_int_equal(ops_wait(op, -1, wait_cb, NULL, &forever), 0);
	assert_int_equal(ops_wait(op, 10000, wait_cb, NULL, &bounded), 0);
	uv_timer_init(&f->loop, &fin.timer);
	fin.timer.data = &fin;
	uv_timer_start(&fin.timer, finish_timer_cb, 20, 0);
	/* Stop the loop as soon as the waiters ran: the retention sweep
	 * would keep it busy for 30 s. */
	while (forever.calls == 0 || bounded.calls == 0 || !fin.closed) {
		uv_run(&f->loop, UV_RUN_ONCE);
	}
	assert_false(forever.timed_out);
	assert_false(bounded.timed_out);
	assert_int_equal(forever.status, OPS_STATUS_FAILURE);
	assert_int_equal(bounded.status, OPS_STATUS_FAILURE);
	assert_null(f->ops->waiters);
}

static void test_close_wakes_waiters(void **state)
{
	struct fixture *f = *state;
	struct api_op *op = new_task(f, "default");
	struct wait_result w = { .loop = &f->loop };

	assert_int_equal(ops_wait(op, -1, wait_cb, NULL, &w), 0);
	ops_close(f->ops, closed_cb, f);
	assert_int_equal(w.calls, 1);
	assert_true(w.timed_out);
	assert_false(f->closed); /* the waiter's timer is still closing */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->closed);
	/* After close: waits answer at once, operations still finish. */
	assert_int_equal(ops_wait(op, -1, wait_cb, NULL, &w), 0);
	assert_int_equal(w.calls, 2);
	assert_int_equal(ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	f->closed = false; /* teardown closes again */
}

/* A given id (recorded in a token row before the operation exists), and
 * the member name as location, also for operations made before it. */
static void test_create_id_location(void **state)
{
	struct fixture *f = *state;
	struct api_op *before = new_task(f, "");
	struct api_op *op = NULL;
	char id[OPS_ID_SIZE];

	assert_int_equal(strlen(f->ops->boot), 36);
	assert_string_equal(before->location, "none");
	assert_int_equal(ops_uuid(id), 0);
	assert_int_equal(
	    ops_op_create_id(f->ops, id, OPS_CLASS_TOKEN, "Joining cluster", "",
			     NULL, json_pack("{s:s}", "secret", "x"), true,
			     NULL, NULL, &op),
	    0);
	assert_string_equal(op->id, id);
	assert_ptr_equal(ops_lookup(f->ops, id), op);
	/* The same id twice is refused. */
	assert_int_equal(
	    ops_op_create_id(f->ops, id, OPS_CLASS_TOKEN, "x", "", NULL,
			     json_object(), true, NULL, NULL, &op),
	    CORRAL_EEXIST);

	assert_int_equal(ops_finish(before, OPS_STATUS_SUCCESS, NULL, NULL), 0);
	assert_int_equal(ops_set_location(f->ops, "m1"), 0);
	assert_string_equal(before->location, "m1");
	assert_string_equal(ops_lookup(f->ops, id)->location, "m1");
	op = new_task(f, "");
	assert_string_equal(op->location, "m1");
	assert_int_equal(ops_set_location(f->ops, "m2"), 0);
	assert_string_equal(op->location, "m2");
}

/* ------------------------------------------------------------------------ */
/* Event helpers                                                             */

static void test_ws_accept(void **state)
{
	char out[EVENTS_ACCEPT_SIZE];

	(void)state;
	/* The example of RFC 6455 section 1.3. */
	events_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_event_types(void **state)
{
	(void)state;
	assert_int_equal(events_parse_types(""), EVENTS_TYPE_ALL);
	assert_int_equal(events_parse_types("operation"),
			 EVENTS_TYPE_OPERATION);
	assert_int_equal(events_parse_types("logging,lifecycle"),
			 EVENTS_TYPE_LOGGING | EVENTS_TYPE_LIFECYCLE);
	assert_int_equal(events_parse_types("operation,,"),
			 EVENTS_TYPE_OPERATION);
	assert_int_equal(events_parse_types("operation,bogus"),
			 CORRAL_EINVALID);
	assert_int_equal(events_type_bit("lifecycle"), EVENTS_TYPE_LIFECYCLE);
	assert_int_equal(events_type_bit("ovn"), 0);
}

static void test_event_format(void **state)
{
	json_t *md = json_pack("{s:s}", "id", "x");
	json_t *ev;
	size_t len = 0;
	char *s;
	const char *ts;

	(void)state;
	s = events_format("operation", "p1", "none", md, &len);
	assert_non_null(s);
	assert_int_equal(len, strlen(s));
	ev = json_loads(s, 0, NULL);
	assert_non_null(ev);
	assert_int_equal(json_object_size(ev), 5);
	assert_string_equal(json_string_value(json_object_get(ev, "type")),
			    "operation");
	assert_string_equal(json_string_value(json_object_get(ev, "project")),
			    "p1");
	assert_string_equal(json_string_value(json_object_get(ev, "location")),
			    "none");
	assert_true(json_equal(json_object_get(ev, "metadata"), md));
	ts = json_string_value(json_object_get(ev, "timestamp"));
	assert_non_null(ts);
	assert_int_equal(ts[strlen(ts) - 1], 'Z');
	json_decref(ev);
	json_decref(md);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* Listeners over a real connection                                          */

struct wsfix {
	uv_loop_t loop;
	uv_pipe_t listener;
	struct http_server s;
	struct events *events;
	struct api api; /* only .events is used */
	char dir[64];
	char path[128];
	int client;
	bool closed;
	/* Bytes read from the server and not consumed yet. */
	unsigned char in[1 << 16];
	size_t in_len;
	bool eof;
};

static void ws_on_request(struct http_conn *conn, struct http_request *req)
{
	struct wsfix *f = http_conn_server(conn)->data;
	char errmsg[CORRAL_ERRMSG_SIZE];
	unsigned status;

	if (events_listen(f->events, conn, req, &status, errmsg) != 0) {
		http_conn_respond(conn, status, NULL, "text/plain", errmsg,
				  strlen(errmsg), false);
	}
}

static void ws_connection_cb(uv_stream_t *listener, int status)
{
	struct wsfix *f = listener->data;

	assert_int_equal(status, 0);
	assert_int_equal(http_server_accept(&f->s, listener, NULL, NULL), 0);
}

static int ws_setup(void **state)
{
	struct wsfix *f = calloc(1, sizeof *f);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/corral-test-ops-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/s", f->dir);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(events_create(&f->loop, &f->events), 0);
	f->api.events = f->events;
	http_server_init(&f->s, &f->loop, ws_on_request);
	f->s.data = f;
	assert_int_equal(uv_pipe_init(&f->loop, &f->listener, 0), 0);
	f->listener.data = f;
	assert_int_equal(uv_pipe_bind(&f->listener, f->path), 0);
	assert_int_equal(
	    uv_listen((uv_stream_t *)&f->listener, 16, ws_connection_cb), 0);
	f->client = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->client >= 0);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	assert_int_equal(
	    connect(f->client, (struct sockaddr *)&sun, sizeof sun), 0);
	*state = f;
	return 0;
}

static void ws_closed_cb(void *arg)
{
	struct wsfix *f = arg;

	f->closed = true;
}

static int ws_teardown(void **state)
{
	struct wsfix *f = *state;

	if (f->client >= 0) {
		close(f->client);
	}
	events_close(f->events, ws_closed_cb, f);
	http_server_close_all(&f->s);
	uv_close((uv_handle_t *)&f->listener, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->closed);
	assert_int_equal(f->events->n_listeners, 0);
	assert_int_equal(f->s.n_conns, 0);
	events_destroy(f->events);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void ws_send(struct wsfix *f, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(f->client, p, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
}

/* Drive the loop until @want bytes are buffered or the server closed. */
static bool ws_fill(struct wsfix *f, size_t want)
{
	int i;

	for (i = 0; i < 20000 && f->in_len < want && !f->eof; i++) {
		ssize_t n;

		uv_run(&f->loop, UV_RUN_NOWAIT);
		n = recv(f->client, f->in + f->in_len, sizeof f->in - f->in_len,
			 MSG_DONTWAIT);
		if (n > 0) {
			f->in_len += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET) {
			f->eof = true;
			break;
		}
		usleep(100);
	}
	return f->in_len >= want;
}

static void ws_consume(struct wsfix *f, size_t n)
{
	memmove(f->in, f->in + n, f->in_len - n);
	f->in_len -= n;
}

/* Send the upgrade request for @target and check the 101 answer. */
static void ws_handshake(struct wsfix *f, const char *target)
{
	char req[512];
	char *end;
	int n;

	n = snprintf(req, sizeof req,
		     "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		     "Connection: keep-alive, Upgrade\r\n"
		     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n\r\n",
		     target);
	ws_send(f, req, (size_t)n);
	for (;;) {
		f->in[f->in_len] = '\0';
		end = strstr((char *)f->in, "\r\n\r\n");
		if (end != NULL) {
			break;
		}
		assert_true(ws_fill(f, f->in_len + 1));
	}
	assert_memory_equal(f->in, "HTTP/1.1 101 Switching Protocols\r\n", 34);
	assert_non_null(
	    strstr((char *)f->in,
		   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
	ws_consume(f, (size_t)(end + 4 - (char *)f->in));
	assert_int_equal(f->events->n_listeners, 1);
}

/* Read one unmasked server frame; returns its opcode, payload in @out. */
static int ws_recv(struct wsfix *f, char *out, size_t size, size_t *len)
{
	size_t hlen = 2;
	uint64_t n;
	int op;

	assert_true(ws_fill(f, 2));
	op = f->in[0] & 0x0f;
	assert_true(f->in[0] & 0x80);
	assert_int_equal(f->in[1] & 0x80, 0);
	n = f->in[1] & 0x7f;
	if (n == 126) {
		assert_true(ws_fill(f, 4));
		n = ((uint64_t)f->in[2] << 8) | f->in[3];
		hlen = 4;
	}
	assert_true(n < 126 || hlen == 4);
	assert_true(hlen + n <= sizeof f->in);
	assert_true(ws_fill(f, hlen + n));
	assert_true(n < size);
	memcpy(out, f->in + hlen, n);
	out[n] = '\0';
	*len = n;
	ws_consume(f, hlen + n);
	return op;
}

/* Send a masked client frame (payload < 126 bytes). */
static void ws_frame(struct wsfix *f, int op, const char *payload, size_t n)
{
	unsigned char frame[256];
	const unsigned char mask[4] = { 1, 2, 3, 4 };
	size_t i;

	assert_true(n < 126);
	frame[0] = (unsigned char)(0x80 | op);
	frame[1] = (unsigned char)(0x80 | n);
	memcpy(frame + 2, mask, 4);
	for (i = 0; i < n; i++) {
		frame[6 + i] = (unsigned char)(payload[i] ^ mask[i % 4]);
	}
	ws_send(f, frame, 6 + n);
}

static void test_events_filters(void **state)
{
	struct wsfix *f = *state;
	json_t *md = json_pack("{s:s}", "id", "op1");
	json_t *ev;
	char buf[4096];
	size_t len;

	ws_handshake(f, "/1.0/events?type=operation&project=p1");
	/* Wrong type, wrong project: not delivered. */
	events_send(&f->api, "lifecycle", "p1", md);
	events_send(&f->api, "operation", "p2", md);
	/* Matching, and server-wide (no project): delivered in order. */
	events_send(&f->api, "operation", "p1", md);
	events_send(&f->api, "operation", "", md);
	json_decref(md);

	assert_int_equal(ws_recv(f, buf, sizeof buf, &len), 0x1);
	ev = json_loads(buf, 0, NULL);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "type")),
			    "operation");
	assert_string_equal(json_string_value(json_object_get(ev, "project")),
			    "p1");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(ev, "metadata"), "id")),
			    "op1");
	json_decref(ev);
	assert_int_equal(ws_recv(f, buf, sizeof buf, &len), 0x1);
	ev = json_loads(buf, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(ev, "project")),
			    "");
	json_decref(ev);

	/* Nothing else was queued: the next frame answers our ping. */
	ws_frame(f, 0x9, "hi", 2);
	assert_int_equal(ws_recv(f, buf, sizeof buf, &len), 0xa);
	assert_string_equal(buf, "hi");

	/* Close handshake: our status code comes back, then EOF. */
	ws_frame(f, 0x8, "\x03\xe8", 2);
	assert_int_equal(ws_recv(f, buf, sizeof buf, &len), 0x8);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "\x03\xe8", 2);
	ws_fill(f, 1);
	assert_true(f->eof);
	/* The server lingers until the client hangs up too. */
	close(f->client);
	f->client = -1;
	while (f->events->n_listeners > 0) {
		uv_run(&f->loop, UV_RUN_ONCE);
	}
}

static bool match_all(struct http_conn *conn, void *arg)
{
	(void)conn;
	(void)arg;
	return true;
}

static void test_events_close_matching(void **state)
{
	struct wsfix *f = *state;

	ws_handshake(f, "/1.0/events?all-projects=true");
	events_close_matching(&f->api, match_all, NULL);
	assert_int_equal(f->events->n_listeners, 0);
	ws_fill(f, 1);
	assert_true(f->eof);
}

static void test_events_slow_consumer(void **state)
{
	struct wsfix *f = *state;
	char *big = malloc(8192);
	json_t *md;
	int i;

	assert_non_null(big);
	memset(big, 'x', 8191);
	big[8191] = '\0';
	md = json_pack("{s:s}", "blob", big);
	f->events->max_queue = 64 * 1024;
	ws_handshake(f, "/1.0/events");
	/* The client never reads: once the socket buffer and 64 KiB of
	 * queued output are full, the listener is dropped. */
	for (i = 0; i < 10000 && f->events->n_listeners > 0; i++) {
		events_send(&f->api, "logging", "default", md);
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(f->events->n_listeners, 0);
	assert_true(i < 10000);
	json_decref(md);
	free(big);
}

static void test_events_ping_timeout(void **state)
{
	struct wsfix *f = *state;
	char buf[256];
	size_t len;

	f->events->ping_ms = 20;
	ws_handshake(f, "/1.0/events?type=lifecycle");
	/* First tick: a ping. The client stays silent; the next tick drops
	 * the listener. */
	assert_int_equal(ws_recv(f, buf, sizeof buf, &len), 0x9);
	while (!f->eof) {
		ws_fill(f, f->in_len + 1);
	}
	assert_int_equal(f->events->n_listeners, 0);
}

static void test_events_ping_answered(void **state)
{
	struct wsfix *f = *state;
	char buf[256];
	size_t len;
	int i;

	f->events->ping_ms = 20;
	ws_handshake(f, "/1.0/events");
	for (i = 0; i < 4; i++) {
		assert_int_equal(ws_recv(f, buf, sizeof buf, &len), 0x9);
		ws_frame(f, 0xa, buf, len);
	}
	assert_int_equal(f->events->n_listeners, 1);
}

static void test_events_bad_requests(void **state)
{
	struct wsfix *f = *state;
	static const char req[] =
	    "GET /1.0/events?type=bogus HTTP/1.1\r\nHost: x\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n"
	    "GET /1.0/events HTTP/1.1\r\nHost: x\r\n\r\n";

	ws_send(f, req, sizeof req - 1);
	ws_fill(f, 200);
	f->in[f->in_len] = '\0';
	assert_non_null(strstr((char *)f->in, "HTTP/1.1 400"));
	assert_non_null(strstr((char *)f->in, "bogus"));
	assert_non_null(strstr((char *)f->in, "websocket upgrade required"));
	assert_int_equal(f->events->n_listeners, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_format),
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_status_texts),
		cmocka_unit_test_setup_teardown(test_create_json_shape, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_stops_expiry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wait_immediate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wait_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wait_until_final, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_wakes_waiters, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_create_id_location, setup,
						teardown),
		cmocka_unit_test(test_ws_accept),
		cmocka_unit_test(test_event_types),
		cmocka_unit_test(test_event_format),
		cmocka_unit_test_setup_teardown(test_events_filters, ws_setup,
						ws_teardown),
		cmocka_unit_test_setup_teardown(test_events_close_matching,
						ws_setup, ws_teardown),
		cmocka_unit_test_setup_teardown(test_events_slow_consumer,
						ws_setup, ws_teardown),
		cmocka_unit_test_setup_teardown(test_events_ping_timeout,
						ws_setup, ws_teardown),
		cmocka_unit_test_setup_teardown(test_events_ping_answered,
						ws_setup, ws_teardown),
		cmocka_unit_test_setup_teardown(test_events_bad_requests,
						ws_setup, ws_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
