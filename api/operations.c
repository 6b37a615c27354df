#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include <corral/err.h>

#include "operations.h"

/* How often a waiter whose client may have gone away checks on it. */
#define OPS_ALIVE_POLL_MS 5000

struct ops_waiter {
	struct ops *ops;   /* borrowed */
	struct api_op *op; /* referenced */
	uv_timer_t timer;  /* closes asynchronously, then frees the waiter */
	uint64_t deadline; /* uv_now() in ms, UINT64_MAX for none */
	ops_wait_cb cb;
	bool (*alive)(void *arg);
	void *arg;
	struct ops_waiter *prev;
	struct ops_waiter *next;
};

/* ------------------------------------------------------------------------ */
/* Texts, time, ids                                                          */

bool ops_status_final(int status_code)
{
	return status_code == OPS_STATUS_SUCCESS ||
	       status_code == OPS_STATUS_FAILURE ||
	       status_code == OPS_STATUS_CANCELLED;
}

const char *ops_status_text(int status_code)
{
	switch (status_code) {
	case 100:
		return "Operation created";
	case 101:
		return "Started";
	case 102:
		return "Stopped";
	case 103:
		return "Running";
	case 104:
		return "Cancelling";
	case 105:
		return "Pending";
	case 106:
		return "Starting";
	case 107:
		return "Stopping";
	case 108:
		return "Aborting";
	case 109:
		return "Freezing";
	case 110:
		return "Frozen";
	case 111:
		return "Thawed";
	case 112:
		return "Error";
	case 113:
		return "Ready";
	case 200:
		return "Success";
	case 400:
		return "Failure";
	case 401:
		return "Cancelled";
	default:
		return "Unknown";
	}
}

const char *ops_class_text(enum ops_class cls)
{
	switch (cls) {
	case OPS_CLASS_TASK:
		return "task";
	case OPS_CLASS_WEBSOCKET:
		return "websocket";
	case OPS_CLASS_TOKEN:
		return "token";
	}
	return "task";
}

void ops_format_time(const struct timespec *ts, char out[OPS_TIME_SIZE])
{
	struct tm tm;
	time_t secs = ts->tv_sec;
	char frac[16] = "";
	size_t n;

	gmtime_r(&secs, &tm);
	if (ts->tv_nsec > 0) {
		snprintf(frac, sizeof frac, ".%09ld",
			 ts->tv_nsec % 1000000000L);
		/* Go's RFC3339Nano drops trailing zeros of the fraction. */
		n = strlen(frac);
		while (n > 1 && frac[n - 1] == '0') {
			frac[--n] = '\0';
		}
	}
	snprintf(out, OPS_TIME_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d%sZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, frac);
}

int ops_uuid(char out[OPS_ID_SIZE])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof b) != 1) {
		return -EIO;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, OPS_ID_SIZE,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */

int ops_create(uv_loop_t *loop,
	       ops_notify_cb notify,
	       void *notify_arg,
	       struct ops **out)
{
	struct ops *o;

	o = calloc(1, sizeof *o);
	if (o == NULL) {
		return -ENOMEM;
	}
	o->loop = loop;
	o->notify = notify;
	o->notify_arg = notify_arg;
	o->retention_ms = OPS_RETENTION_MS;
	o->sweep_ms = 5000;
	snprintf(o->location, sizeof o->location, "none");
	if (ops_uuid(o->boot) != 0) {
		free(o);
		return -EIO;
	}
	*out = o;
	return 0;
}

int ops_set_location(struct ops *o, const char *name)
{
	char old[sizeof o->location];
	struct api_op *op;
	int rv = 0;

	snprintf(old, sizeof old, "%s", o->location);
	snprintf(o->location, sizeof o->location, "%s", name);
	for (op = o->head; op != NULL; op = op->next) {
		char *copy;

		if (strcmp(op->location, old) != 0) {
			continue;
		}
		copy = strdup(o->location);
		if (copy == NULL) {
			rv = -ENOMEM;
			continue;
		}
		free(op->location);
		op->location = copy;
	}
	return rv;
}

static void op_free(struct api_op *op)
{
	free(op->description);
	free(op->project);
	free(op->location);
	free(op->err);
	free(op->expire_err);
	json_decref(op->resources);
	json_decref(op->metadata);
	free(op);
}

void ops_op_ref(struct api_op *op)
{
	op->refs++;
}

void ops_op_unref(struct api_op *op)
{
	op->refs--;
	if (op->refs == 0) {
		op_free(op);
	}
}

static void op_unlink(struct ops *o, struct api_op *op)
{
	if (op->prev != NULL) {
		op->prev->next = op->next;
	} else {
		o->head = op->next;
	}
	if (op->next != NULL) {
		op->next->prev = op->prev;
	}
	op->prev = NULL;
	op->next = NULL;
	o->n_ops--;
}

static void notify(struct api_op *op)
{
	struct ops *o = op->ops;

	if (o->notify != NULL) {
		o->notify(op, o->notify_arg);
	}
}

static void handle_closed_cb(uv_handle_t *h)
{
	struct ops *o = h->data;

	o->closing_handles--;
	if (o->closing && o->closing_handles == 0 && o->close_cb != NULL) {
		void (*cb)(void *) = o->close_cb;
		o->close_cb = NULL;
		cb(o->close_arg);
	}
}

static void waiter_closed_cb(uv_handle_t *h)
{
	struct ops_waiter *w = h->data;
	struct ops *o = w->ops;

	free(w);
	o->closing_handles--;
	if (o->closing && o->closing_handles == 0 && o->close_cb != NULL) {
		void (*cb)(void *) = o->close_cb;
		o->close_cb = NULL;
		cb(o->close_arg);
	}
}

/* Detach @w, close its timer and call it. */
static void waiter_fire(struct ops_waiter *w, bool timed_out)
{
	struct ops *o = w->ops;
	struct api_op *op = w->op;

	if (w->prev != NULL) {
		w->prev->next = w->next;
	} else {
		o->waiters = w->next;
	}
	if (w->next != NULL) {
		w->next->prev = w->prev;
	}
	w->prev = NULL;
	w->next = NULL;
	o->closing_handles++;
	uv_close((uv_handle_t *)&w->timer, waiter_closed_cb);
	w->cb(op, timed_out, w->arg);
	ops_op_unref(op);
}

static void wake_waiters(struct api_op *op)
{
	struct ops *o = op->ops;
	struct ops_waiter *w;

	/* Callbacks answer requests, which may start new ones: look the list
	 * up again after each call. */
	for (;;) {
		for (w = o->waiters; w != NULL && w->op != op; w = w->next) {
		}
		if (w == NULL) {
			return;
		}
		waiter_fire(w, false);
	}
}

static void sweep_cb(uv_timer_t *t)
{
	struct ops *o = t->data;
	uint64_t now = uv_now(o->loop);
	struct api_op *op;
	struct api_op *next;
	bool finished_left = false;

	for (op = o->head; op != NULL; op = next) {
		next = op->next;
		if (!ops_status_final(op->status_code)) {
			continue;
		}
		if (now - op->finished_ms >= o->retention_ms) {
			op_unlink(o, op);
			ops_op_unref(op);
		} else {
			finished_left = true;
		}
	}
	if (!finished_left) {
		uv_timer_stop(t);
	}
}

static void sweep_arm(struct ops *o)
{
	if (o->closing) {
		return;
	}
	if (!o->sweep_open) {
		uv_timer_init(o->loop, &o->sweep);
		o->sweep.data = o;
		o->sweep_open = true;
	}
	if (!uv_is_active((uv_handle_t *)&o->sweep)) {
		uv_timer_start(&o->sweep, sweep_cb, o->sweep_ms, o->sweep_ms);
	}
}

void ops_close(struct ops *o, void (*cb)(void *arg), void *arg)
{
	if (o == NULL) {
		if (cb != NULL) {
			cb(arg);
		}
		return;
	}
	o->close_cb = cb;
	o->close_arg = arg;
	if (!o->closing) {
		o->closing = true;
		while (o->waiters != NULL) {
			waiter_fire(o->waiters, true);
		}
		if (o->sweep_open) {
			o->sweep_open = false;
			o->closing_handles++;
			uv_close((uv_handle_t *)&o->sweep, handle_closed_cb);
		}
		if (o->expiry_open) {
			o->expiry_open = false;
			o->closing_handles++;
			uv_close((uv_handle_t *)&o->expiry, handle_closed_cb);
		}
	}
	if (o->closing_handles == 0 && o->close_cb != NULL) {
		o->close_cb = NULL;
		cb(arg);
	}
}

void ops_destroy(struct ops *o)
{
	struct api_op *op;

	if (o == NULL) {
		return;
	}
	while ((op = o->head) != NULL) {
		op_unlink(o, op);
		op_free(op);
	}
	free(o);
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

int ops_op_create(struct ops *o,
		  enum ops_class cls,
		  const char *description,
		  const char *project,
		  json_t *resources,
		  json_t *metadata,
		  bool may_cancel,
		  ops_cancel_cb cancel_cb,
		  void *cancel_arg,
		  struct api_op **out)
{
	return ops_op_create_id(o, NULL, cls, description, project, resources,
				metadata, may_cancel, cancel_cb, cancel_arg,
				out);
}

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
		     struct api_op **out)
{
	struct api_op *op;
	int rv = -ENOMEM;

	if (id != NULL && ops_lookup(o, id) != NULL) {
		rv = CORRAL_EEXIST;
		goto err;
	}
	op = calloc(1, sizeof *op);
	if (op == NULL) {
		goto err;
	}
	op->ops = o;
	op->refs = 1; /* the registry's */
	op->resources = resources;
	op->metadata = metadata;
	resources = NULL;
	metadata = NULL;
	op->description = strdup(description != NULL ? description : "");
	op->project = strdup(project != NULL ? project : "");
	op->location = strdup(o->location);
	op->err = strdup("");
	if (op->description == NULL || op->project == NULL ||
	    op->location == NULL || op->err == NULL) {
		goto err_after_alloc;
	}
	if (id != NULL) {
		snprintf(op->id, sizeof op->id, "%s", id);
	} else {
		rv = ops_uuid(op->id);
		if (rv != 0) {
			goto err_after_alloc;
		}
	}
	op->cls = cls;
	op->may_cancel = may_cancel;
	op->cancel_cb = cancel_cb;
	op->cancel_arg = cancel_arg;
	op->status_code = OPS_STATUS_RUNNING;
	clock_gettime(CLOCK_REALTIME, &op->created_at);
	op->updated_at = op->created_at;

	op->next = o->head;
	if (o->head != NULL) {
		o->head->prev = op;
	}
	o->head = op;
	o->n_ops++;
	*out = op;
	notify(op);
	return 0;

err_after_alloc:
	op_free(op);
err:
	json_decref(resources);
	json_decref(metadata);
	return rv;
}

static void expiry_arm(struct ops *o);

static void op_set_final(struct api_op *op, int status_code)
{
	op->status_code = status_code;
	if (op->expires_ms != 0) {
		op->expires_ms = 0;
		expiry_arm(op->ops);
	}
	clock_gettime(CLOCK_REALTIME, &op->updated_at);
	op->finished_ms = uv_now(op->ops->loop);
	sweep_arm(op->ops);
	/* Keep @op alive through the callbacks. */
	ops_op_ref(op);
	notify(op);
	wake_waiters(op);
	ops_op_unref(op);
}

int ops_finish(struct api_op *op,
	       int status_code,
	       const char *err,
	       json_t *metadata)
{
	char *copy;
	int rv = 0;

	if (ops_status_final(op->status_code) ||
	    !ops_status_final(status_code)) {
		json_decref(metadata);
		return CORRAL_EINVALID;
	}
	if (metadata != NULL) {
		json_decref(op->metadata);
		op->metadata = metadata;
	}
	copy = strdup(err != NULL ? err : "");
	if (copy != NULL) {
		free(op->err);
		op->err = copy;
	} else {
		rv = -ENOMEM;
	}
	op_set_final(op, status_code);
	return rv;
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                    */

static void expiry_cb(uv_timer_t *t);

/* Arm the expiry timer for the earliest deadline of a running operation,
 * or stop it when there is none. */
static void expiry_arm(struct ops *o)
{
	uint64_t now;
	uint64_t next = 0;
	struct api_op *op;

	if (o->closing) {
		return;
	}
	for (op = o->head; op != NULL; op = op->next) {
		if (op->expires_ms != 0 && !ops_status_final(op->status_code) &&
		    (next == 0 || op->expires_ms < next)) {
			next = op->expires_ms;
		}
	}
	if (next == 0) {
		if (o->expiry_open) {
			uv_timer_stop(&o->expiry);
		}
		return;
	}
	if (!o->expiry_open) {
		uv_timer_init(o->loop, &o->expiry);
		o->expiry.data = o;
		o->expiry_open = true;
	}
	now = uv_now(o->loop);
	uv_timer_start(&o->expiry, expiry_cb, next > now ? next - now : 0, 0);
}

/* The first running operation whose deadline passed, or NULL. */
static struct api_op *expired_op(struct ops *o, uint64_t now)
{
	struct api_op *op;

	for (op = o->head; op != NULL; op = op->next) {
		if (op->expires_ms != 0 && op->expires_ms <= now &&
		    !ops_status_final(op->status_code)) {
			return op;
		}
	}
	return NULL;
}

static void expiry_cb(uv_timer_t *t)
{
	struct ops *o = t->data;
	uint64_t now = uv_now(o->loop);
	struct api_op *op;

	/* Callbacks may create or finish operations: look the list up
	 * again after each one. */
	while ((op = expired_op(o, now)) != NULL) {
		ops_op_ref(op);
		op->expires_ms = 0;
		if (op->expire_cb != NULL) {
			op->expire_cb(op, op->expire_arg);
		}
		if (!ops_status_final(op->status_code)) {
			ops_finish(
			    op, OPS_STATUS_FAILURE,
			    op->expire_err != NULL ? op->expire_err : "expired",
			    NULL);
		}
		ops_op_unref(op);
	}
	expiry_arm(o);
}

int ops_op_set_expiry(struct api_op *op,
		      uint64_t delay_ms,
		      const char *err,
		      ops_expire_cb cb,
		      void *arg)
{
	struct ops *o = op->ops;
	char *copy = NULL;
	uint64_t now;

	if (ops_status_final(op->status_code)) {
		return CORRAL_EINVALID;
	}
	if (err != NULL) {
		copy = strdup(err);
		if (copy == NULL) {
			return -ENOMEM;
		}
	}
	free(op->expire_err);
	op->expire_err = copy;
	op->expire_cb = cb;
	op->expire_arg = arg;
	now = uv_now(o->loop);
	op->expires_ms =
	    delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
	/* 0 means "no deadline": an immediate expiry is 1 ms late. */
	if (op->expires_ms == 0) {
		op->expires_ms = 1;
	}
	expiry_arm(o);
	return 0;
}

int ops_update_metadata(struct api_op *op, json_t *metadata)
{
	if (ops_status_final(op->status_code)) {
		json_decref(metadata);
		return CORRAL_EINVALID;
	}
	json_decref(op->metadata);
	op->metadata = metadata;
	clock_gettime(CLOCK_REALTIME, &op->updated_at);
	notify(op);
	return 0;
}

int ops_cancel(struct api_op *op, char *errmsg)
{
	int rv;

	if (op->status_code != OPS_STATUS_RUNNING &&
	    op->status_code != OPS_STATUS_PENDING) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "only running operations can be cancelled");
		return CORRAL_EINVALID;
	}
	if (!op->may_cancel && op->cls != OPS_CLASS_TOKEN) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "operation can't be cancelled");
		return CORRAL_EINVALID;
	}
	if (op->cancel_cb != NULL) {
		errmsg[0] = '\0';
		rv = op->cancel_cb(op, op->cancel_arg, errmsg);
		if (rv != 0) {
			if (errmsg[0] == '\0') {
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "cancel operation: %s",
					    corral_strerror(rv));
			}
			return rv;
		}
		/* The callback may have finished the operation itself. */
		if (ops_status_final(op->status_code)) {
			return 0;
		}
	}
	op_set_final(op, OPS_STATUS_CANCELLED);
	return 0;
}

struct api_op *ops_lookup(struct ops *o, const char *id)
{
	struct api_op *op;

	for (op = o->head; op != NULL; op = op->next) {
		if (strcmp(op->id, id) == 0) {
			return op;
		}
	}
	return NULL;
}

bool ops_op_in_project(const struct api_op *op,
		       const char *project,
		       bool all_projects)
{
	return all_projects || op->project[0] == '\0' ||
	       strcmp(op->project, project) == 0;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

json_t *ops_to_json(const struct api_op *op)
{
	char created[OPS_TIME_SIZE];
	char updated[OPS_TIME_SIZE];

	ops_format_time(&op->created_at, created);
	ops_format_time(&op->updated_at, updated);
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:O?, s:O?, s:b, s:s, s:s}",
	    "id", op->id, "class", ops_class_text(op->cls), "description",
	    op->description, "created_at", created, "updated_at", updated,
	    "status", ops_status_text(op->status_code), "status_code",
	    op->status_code, "resources", op->resources, "metadata",
	    op->metadata, "may_cancel", op->may_cancel, "err", op->err,
	    "location", op->location);
}

json_t *ops_list_json(struct ops *o,
		      const char *project,
		      bool all_projects,
		      bool recursion)
{
	return ops_list_json_filter(o, project, all_projects, recursion, NULL,
				    NULL);
}

json_t *ops_list_json_filter(struct ops *o,
			     const char *project,
			     bool all_projects,
			     bool recursion,
			     bool (*visible)(const struct api_op *op,
					     void *arg),
			     void *arg)
{
	char key[32];
	char url[64];
	json_t *out;
	json_t *list;
	json_t *item;
	struct api_op *op;
	size_t i;

	out = json_object();
	if (out == NULL) {
		return NULL;
	}
	/* Oldest first, like a listing in creation order. */
	for (op = o->head; op != NULL && op->next != NULL; op = op->next) {
	}
	for (; op != NULL; op = op->prev) {
		if (!ops_op_in_project(op, project, all_projects) ||
		    (visible != NULL && !visible(op, arg))) {
			continue;
		}
		snprintf(key, sizeof key, "%s",
			 ops_status_text(op->status_code));
		for (i = 0; key[i] != '\0'; i++) {
			if (key[i] >= 'A' && key[i] <= 'Z') {
				key[i] = (char)(key[i] - 'A' + 'a');
			}
		}
		list = json_object_get(out, key);
		if (list == NULL) {
			list = json_array();
			if (list == NULL ||
			    json_object_set_new(out, key, list)) {
				goto err;
			}
		}
		if (recursion) {
			item = ops_to_json(op);
		} else {
			snprintf(url, sizeof url, "/1.0/operations/%s", op->id);
			item = json_string(url);
		}
		if (item == NULL || json_array_append_new(list, item) != 0) {
			goto err;
		}
	}
	return out;

err:
	json_decref(out);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Waiters                                                                   */

static void waiter_arm(struct ops_waiter *w);

static void waiter_timer_cb(uv_timer_t *t)
{
	struct ops_waiter *w = t->data;
	uint64_t now = uv_now(w->ops->loop);

	if (now >= w->deadline || (w->alive != NULL && !w->alive(w->arg))) {
		waiter_fire(w, true);
		return;
	}
	waiter_arm(w);
}

static void waiter_arm(struct ops_waiter *w)
{
	uint64_t now = uv_now(w->ops->loop);
	uint64_t delay =
	    w->deadline == UINT64_MAX ? UINT64_MAX : w->deadline - now;

	if (w->alive != NULL && delay > OPS_ALIVE_POLL_MS) {
		delay = OPS_ALIVE_POLL_MS;
	}
	if (delay == UINT64_MAX) {
		return; /* nothing to poll, no deadline */
	}
	uv_timer_start(&w->timer, waiter_timer_cb, delay, 0);
}

int ops_wait(struct api_op *op,
	     int64_t timeout_ms,
	     ops_wait_cb cb,
	     bool (*alive)(void *arg),
	     void *arg)
{
	struct ops *o = op->ops;
	struct ops_waiter *w;

	if (ops_status_final(op->status_code)) {
		cb(op, false, arg);
		return 0;
	}
	if (timeout_ms == 0 || o->closing) {
		cb(op, true, arg);
		return 0;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		return -ENOMEM;
	}
	w->ops = o;
	w->op = op;
	w->cb = cb;
	w->alive = alive;
	w->arg = arg;
	w->deadline = timeout_ms < 0 ? UINT64_MAX
				     : uv_now(o->loop) + (uint64_t)timeout_ms;
	uv_timer_init(o->loop, &w->timer);
	w->timer.data = w;
	ops_op_ref(op);
	w->next = o->waiters;
	if (o->waiters != NULL) {
		o->waiters->prev = w;
	}
	o->waiters = w;
	waiter_arm(w);
	return 0;
}
