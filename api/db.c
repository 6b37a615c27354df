/* Database calls from handlers, ETags and URL lists. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "api.h"
#include "validate.h"

struct api_db_call *api_db_call_new(struct api_req *r)
{
	struct api_db_call *c;
	const char *im;
	int rv;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		api_reply_error(r, 500, "out of memory");
		return NULL;
	}
	c->r = r;
	c->admin = api_caller_admin(r);
	rv = api_query(r, "project", c->project, sizeof c->project);
	if (rv == -EINVAL) {
		free(c);
		api_reply_error(r, 400, "invalid project parameter");
		return NULL;
	}
	if (rv < 0 || c->project[0] == '\0') {
		snprintf(c->project, sizeof c->project, "default");
	} else if (validate_name("project", c->project, c->errmsg) != 0) {
		api_reply_error(r, 400, "%s", c->errmsg);
		free(c);
		return NULL;
	}
	if (r->match.n_params > 0) {
		snprintf(c->name, sizeof c->name, "%s", r->match.params[0]);
	}
	im = http_request_header(r->http, "If-Match");
	if (im != NULL) {
		size_t len = strlen(im);
		if (len >= 2 && im[0] == '"' && im[len - 1] == '"') {
			im++;
			len -= 2;
		}
		if (len >= sizeof c->if_match) {
			len = sizeof c->if_match - 1;
		}
		memcpy(c->if_match, im, len);
		c->if_match[len] = '\0';
	}
	return c;
}

static void db_call_free(struct api_db_call *c)
{
	json_decref(c->in);
	json_decref(c->out);
	json_decref(c->trust_snapshot);
	json_decref(c->members_after);
	free(c);
}

static void db_done_cb(void *arg, int rv, const char *errmsg);

static void db_propagated_cb(struct api_db_call *c)
{
	db_done_cb(c, 0, "");
}

static void db_done_cb(void *arg, int rv, const char *errmsg)
{
	struct api_db_call *c = arg;
	struct api_req *r = c->r;
	json_t *out;

	if (c->write && rv == 0 && !c->propagated) {
		r->api->write_gen++;
	}
	/* A write that changed who may do what is in force before its
	 * answer leaves, whatever replies. */
	if (rv == 0 && c->trust_snapshot != NULL) {
		api_trust_install(r->api, c->trust_snapshot, c->trust_gen);
	}
	/* ... and on the other members, as far as they acknowledge. */
	if (c->write && rv == 0 && !c->propagated) {
		c->propagated = true;
		if (api_prop_after_write(c, db_propagated_cb) == 0) {
			return;
		}
	}
	if (c->reply != NULL) {
		if (rv != 0 && errmsg != NULL && errmsg[0] != '\0') {
			snprintf(c->errmsg, sizeof c->errmsg, "%s", errmsg);
		}
		c->reply(c, rv);
		db_call_free(c);
		return;
	}
	if (rv != 0) {
		snprintf(
		    r->errmsg, sizeof r->errmsg, "%s",
		    errmsg != NULL && errmsg[0] != '\0' ? errmsg : c->errmsg);
		api_reply_code(r, rv);
		db_call_free(c);
		return;
	}
	out = c->out;
	c->out = NULL;
	if (c->urls && json_is_array(out)) {
		out = api_list_to_urls(c, out);
	}
	api_reply_sync(r, c->status != 0 ? c->status : 200, out,
		       c->location[0] != '\0' ? c->location : NULL,
		       c->etag[0] != '\0' ? c->etag : NULL);
	db_call_free(c);
}

struct db_trampoline {
	struct api_db_call *c;
	api_db_fn fn;
	unsigned runs;
};

static int trampoline_work(struct state_tx *tx, void *arg)
{
	struct db_trampoline *t = arg;
	int rv;

	/* A transaction run again (see state_submit()): what the rolled
	 * back run produced is dropped. */
	if (t->runs++ > 0) {
		json_decref(t->c->out);
		t->c->out = NULL;
		json_decref(t->c->trust_snapshot);
		t->c->trust_snapshot = NULL;
	}

	rv = t->fn(tx, t->c);
	/* The generations this write leaves, read under its write lock: the
	 * change notification needs no second round trip to the leader. */
	if (rv == 0 && t->c->gens_wanted) {
		json_decref(t->c->members_after); /* a retried transaction */
		t->c->members_after = NULL;
		rv = api_prop_gens_read(tx, t->c->gens_after,
					&t->c->members_after);
		t->c->gens_read = rv == 0;
	}
	if (rv != 0 && tx->errmsg[0] == '\0') {
		snprintf(tx->errmsg, sizeof tx->errmsg, "%s", t->c->errmsg);
	}
	return rv;
}

static void trampoline_done(void *arg, int rv, const char *errmsg)
{
	struct db_trampoline *t = arg;
	struct api_db_call *c = t->c;

	free(t);
	db_done_cb(c, rv, errmsg);
}

void api_db_run(struct api_db_call *c, bool write, api_db_fn fn)
{
	struct db_trampoline *t;
	int rv;

	t = malloc(sizeof *t);
	if (t == NULL) {
		db_done_cb(c, -ENOMEM, "out of memory");
		return;
	}
	t->c = c;
	t->fn = fn;
	t->runs = 0;
	c->write = write;
	c->write_gen = c->r->api->write_gen;
	api_prop_gens(c->r->api, c->gens_before);
	c->gens_wanted = write && api_clustered(c->r->api);
	rv = state_submit(c->r->api->state, write, trampoline_work,
			  trampoline_done, t);
	if (rv != 0) {
		free(t);
		db_done_cb(c, rv,
			   rv == CORRAL_ENOLEADER
			       ? "database not available"
			       : "cannot queue database work");
	}
}

json_t *api_list_to_urls(struct api_db_call *c, json_t *list)
{
	json_t *urls = json_array();
	size_t i;
	json_t *v;

	if (urls == NULL) {
		json_decref(list);
		return NULL;
	}
	json_array_foreach(list, i, v)
	{
		const char *name =
		    json_is_string(v)
			? json_string_value(v)
			: json_string_value(json_object_get(v, "name"));
		if (name != NULL && api_url_append(urls, c->url_prefix, name,
						   c->project) != 0) {
			json_decref(urls);
			json_decref(list);
			return NULL;
		}
	}
	json_decref(list);
	return urls;
}

/* A handful of list answers is enough: lists are per project and form. */
#define API_LIST_CACHE_SLOTS 16

struct api_list_cache_slot {
	char key[192];
	uint64_t gen;
	char *body; /* owned */
	size_t len;
};

struct api_list_cache {
	struct api_list_cache_slot slots[API_LIST_CACHE_SLOTS];
	unsigned next;
};

static void list_key(char *key,
		     size_t size,
		     const char *route,
		     const char *project,
		     bool urls)
{
	snprintf(key, size, "%s|%s|%d", route, project, urls ? 1 : 0);
}

const char *api_list_cache_get(struct api *a,
			       const char *route,
			       const char *project,
			       bool urls,
			       size_t *len)
{
	char key[192];
	unsigned i;

	/* In a cluster, write_gen also moves when another member's write
	 * reaches this one (its change notification, acknowledged before
	 * that write answers, or a heartbeat that shows a newer generation):
	 * the cache is as fresh as the propagation guarantee. A member out of
	 * contact with the cluster cannot know, so it does not use it. */
	if (a->lists == NULL || (api_clustered(a) && api_prop_stale(a))) {
		return NULL;
	}
	list_key(key, sizeof key, route, project, urls);
	for (i = 0; i < API_LIST_CACHE_SLOTS; i++) {
		struct api_list_cache_slot *s = &a->lists->slots[i];
		if (s->body != NULL && s->gen == a->write_gen &&
		    strcmp(s->key, key) == 0) {
			*len = s->len;
			return s->body;
		}
	}
	return NULL;
}

void api_list_cache_put(struct api *a,
			const char *route,
			const char *project,
			bool urls,
			uint64_t gen,
			const char *body,
			size_t len)
{
	struct api_list_cache_slot *s;
	char key[192];
	char *copy;
	unsigned i;

	if (gen != a->write_gen) {
		return; /* a write finished meanwhile: the answer may be old */
	}
	if (a->lists == NULL) {
		a->lists = calloc(1, sizeof *a->lists);
		if (a->lists == NULL) {
			return;
		}
	}
	list_key(key, sizeof key, route, project, urls);
	s = NULL;
	for (i = 0; i < API_LIST_CACHE_SLOTS; i++) {
		if (strcmp(a->lists->slots[i].key, key) == 0) {
			s = &a->lists->slots[i];
			break;
		}
	}
	if (s == NULL) {
		s = &a->lists->slots[a->lists->next];
		a->lists->next = (a->lists->next + 1) % API_LIST_CACHE_SLOTS;
	}
	copy = malloc(len + 1);
	if (copy == NULL) {
		return;
	}
	memcpy(copy, body, len);
	copy[len] = '\0';
	free(s->body);
	snprintf(s->key, sizeof s->key, "%s", key);
	s->gen = gen;
	s->body = copy;
	s->len = len;
}

void api_list_cache_destroy(struct api *a)
{
	unsigned i;

	if (a->lists == NULL) {
		return;
	}
	for (i = 0; i < API_LIST_CACHE_SLOTS; i++) {
		free(a->lists->slots[i].body);
	}
	free(a->lists);
	a->lists = NULL;
}

json_t *api_body_object(struct api_req *r)
{
	json_error_t err;
	json_t *body;

	body = json_loadb(r->http->body, r->http->body_len,
			  JSON_REJECT_DUPLICATES, &err);
	if (body == NULL) {
		api_reply_error(r, 400, "invalid JSON body: %s", err.text);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		api_reply_error(r, 400, "invalid JSON body: not an object");
		return NULL;
	}
	return body;
}

void api_etag(json_t *obj, char out[65])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char *text;
	unsigned i;

	text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (text == NULL) {
		out[0] = '\0';
		return;
	}
	SHA256((const unsigned char *)text, strlen(text), digest);
	free(text);
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	}
}

int api_url_append(json_t *array,
		   const char *prefix,
		   const char *name,
		   const char *project)
{
	static const char hex[] = "0123456789ABCDEF";
	char url[1024];
	size_t n;
	const char *p;

	n = (size_t)snprintf(url, sizeof url, "%s", prefix);
	for (p = name; *p != '\0' && n + 4 < sizeof url; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~') {
			url[n++] = (char)ch;
		} else {
			url[n++] = '%';
			url[n++] = hex[ch >> 4];
			url[n++] = hex[ch & 15];
		}
	}
	url[n] = '\0';
	if (project != NULL && strcmp(project, "default") != 0) {
		snprintf(url + n, sizeof url - n, "?project=%s", project);
	}
	return json_array_append_new(array, json_string(url)) == 0 ? 0
								   : -ENOMEM;
}

/* Serialise, remember and send a list answer. */
static void list_cached_reply(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;
	json_t *out;
	size_t len;
	char *body;

	if (rv != 0) {
		snprintf(r->errmsg, sizeof r->errmsg, "%s", c->errmsg);
		api_reply_code(r, rv);
		return;
	}
	out = c->out;
	c->out = NULL;
	if (c->urls) {
		out = api_list_to_urls(c, out);
	}
	body = out != NULL ? api_envelope_sync(out, 200, &len) : NULL;
	json_decref(out);
	if (body == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	api_list_cache_put(r->api, c->cache_route, c->project, c->urls,
			   c->write_gen, body, len);
	api_reply_raw_json(r, body, len, NULL);
	free(body);
}

void api_db_list_cached(struct api_db_call *c, const char *route, api_db_fn fn)
{
	const char *cached;
	size_t len;

	cached =
	    api_list_cache_get(c->r->api, route, c->project, c->urls, &len);
	if (cached != NULL) {
		api_reply_raw_json(c->r, cached, len, NULL);
		db_call_free(c);
		return;
	}
	c->cache_route = route;
	c->reply = list_cached_reply;
	api_db_run(c, false, fn);
}
