/* Propagation between members: heartbeats (liveness and generations),
 * change notifications after writes, and their acknowledgements.
 *
 * Every member sends a heartbeat to every other member each second
 * (cluster/ threads); the body carries its name and the generations it has
 * loaded. A receiver records when it last heard from each member (for the
 * Online/Offline status) and reloads any area a heartbeat shows newer.
 * After a write that bumped a generation, the member that handled it sends
 * `POST /internal/changed` to every other member and waits up to
 * corral.notify_timeout ms for each to answer, which it does once it has
 * reloaded the area (for trust: the new store installed and the revoked
 * certificates' connections closed). Messages are msgpack maps
 * (<corral/cluster_msg.h>) with the keys the JSON messages had; JSON is
 * still accepted from a member that sends it (one not yet upgraded).
 *
 * Bounded staleness: a member that has heard from (or got a heartbeat
 * answer from) too few of the database voters to make a majority, itself
 * included, for longer than corral.stale_bound ms is stale. A stale member
 * refuses TLS clients (api_prop_refuse()) until it is back in contact and
 * a member list read and a trust store reload have succeeded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <corral/cluster.h>
#include <corral/cluster_msg.h>
#include <corral/log.h>
#include <corral/version.h>

#include "api.h"
#include "trust.h"

/* The areas, in the order of api_prop.gens. */
static const char *const prop_areas[API_PROP_AREAS] = { "trust", "projects",
							"profiles", "instances",
							"config" };

#define PROP_CONFIG 4

/* A change notification waiting for a config reload. */
struct config_waiter {
	struct api_req *r;
	bool trust; /* then reload the trust store before answering */
	struct config_waiter *next;
};

/* Largest change notification that carries the trust store inline; a
 * bigger store is reloaded from the database by each member. */
#define PROP_INLINE_TRUST_MAX (256 * 1024)

#define PROP_MAX_SEEN 64
#define PROP_REFRESH_TICKS 5
#define PROP_MAX_RAFT 64

struct prop_seen {
	char name[64];
	uint64_t ms; /* loop time of the last heartbeat */
	bool heard;  /* a heartbeat arrived from it (it runs as a member) */
	/* What its last heartbeat said it runs (for GET /1.0/cluster/members
	 * during a rolling upgrade). */
	struct api_member_info info;
};

struct api_prop {
	uv_timer_t timer;
	bool started;
	unsigned ticks;
	bool refreshing;
	bool refresh_wanted;
	uint64_t started_ms;
	/* Generations loaded (trust: the trust cache's). */
	int64_t gens[API_PROP_AREAS];
	bool trust_reloading;
	/* Config view reloads: one in flight, read at least @config_target;
	 * another wanted for @config_next (waiters in @next_waiters). */
	bool config_reloading;
	int64_t config_target;
	struct config_waiter *waiters;
	bool config_again;
	int64_t config_next;
	struct config_waiter *next_waiters;
	struct prop_seen seen[PROP_MAX_SEEN];
	size_t n_seen;
	/* The members of the last member list read, this one included, as
	 * [{"name", "address"}]: carried by heartbeats. */
	json_t *members;
	/* The database voters of the last member list read (names). */
	char voters[PROP_MAX_SEEN][64];
	size_t n_voters;
	bool voters_known;
	/* Staleness: out of contact with a quorum; a repair (member list
	 * read, then trust store reload) is in flight. */
	bool stale;
	bool repairing;
	/* Role rebalancing: this member's node led at the last member list
	 * read; a role change is in flight. */
	bool leading;
	bool rebalancing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static int64_t prop_gen(struct api *a, int i)
{
	if (i == 0) {
		return a->trust != NULL ? trust_cache_generation(a->trust) : -1;
	}
	return a->prop != NULL ? a->prop->gens[i] : -1;
}

void api_prop_gens(struct api *a, int64_t gens[API_PROP_AREAS])
{
	int i;

	for (i = 0; i < API_PROP_AREAS; i++) {
		gens[i] = prop_gen(a, i);
	}
}

/* ------------------------------------------------------------------------ */
/* Reloading an area                                                          */

struct trust_reload {
	struct api *a;
	json_t *identities;
	int64_t generation;
	struct api_req *r; /* answered 200 once installed, or NULL */
	bool repair;       /* the reload that ends staleness */
};

static bool prop_in_contact(struct api *a);

static int trust_reload_work(struct state_tx *tx, void *arg)
{
	struct trust_reload *t = arg;

	return state_trust_snapshot(tx, &t->identities, &t->generation);
}

static void trust_reload_done(void *arg, int rv, const char *errmsg)
{
	struct trust_reload *t = arg;

	if (t->r == NULL && !t->repair && t->a->prop != NULL) {
		t->a->prop->trust_reloading = false;
	}
	if (t->repair && t->a->prop != NULL) {
		t->a->prop->repairing = false;
	}
	if (rv != 0) {
		log_error("msg=\"load trust store\" error=\"%s\"", errmsg);
		if (t->r != NULL) {
			api_reply_error(t->r, 500, "reload trust store: %s",
					errmsg);
		}
	} else {
		api_trust_install(t->a, t->identities, t->generation);
		if (t->repair && t->a->prop != NULL && prop_in_contact(t->a)) {
			t->a->prop->stale = false;
			t->a->write_gen++;
			log_info("msg=\"back in contact with the cluster\"");
		}
		if (t->r != NULL) {
			api_reply_sync(t->r, 200, json_object(), NULL, NULL);
		}
	}
	json_decref(t->identities);
	free(t);
}

/* Reload the trust store; answer @r once installed when not NULL. A
 * @repair reload ends staleness once installed. */
static void trust_reload_ext(struct api *a, struct api_req *r, bool repair)
{
	struct trust_reload *t;

	if (r == NULL && !repair && a->prop->trust_reloading) {
		return;
	}
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		if (r != NULL) {
			api_reply_error(r, 500, "out of memory");
		}
		return;
	}
	t->a = a;
	t->r = r;
	t->repair = repair;
	if (repair) {
		a->prop->repairing = true;
	} else if (r == NULL) {
		a->prop->trust_reloading = true;
	}
	if (state_submit(a->state, false, trust_reload_work, trust_reload_done,
			 t) != 0) {
		if (repair) {
			a->prop->repairing = false;
		} else if (r == NULL) {
			a->prop->trust_reloading = false;
		} else {
			api_reply_error(r, 503, "database not available");
		}
		free(t);
	}
}

static void trust_reload(struct api *a, struct api_req *r)
{
	trust_reload_ext(a, r, false);
}

static void config_reload_start(struct api *a);

/* A config view reload ended: take its generation, answer its waiters
 * (after a trust reload when they need one too), start the next. */
static void config_reload_done(struct api *a, int rv)
{
	struct api_prop *p = a->prop;
	struct config_waiter *w;

	if (p == NULL) {
		return;
	}
	p->config_reloading = false;
	if (rv == 0 && p->config_target > p->gens[PROP_CONFIG]) {
		p->gens[PROP_CONFIG] = p->config_target;
	}
	w = p->waiters;
	p->waiters = NULL;
	while (w != NULL) {
		struct config_waiter *next = w->next;

		if (rv != 0) {
			api_reply_error(w->r, 500, "reload server config");
		} else if (w->trust) {
			trust_reload(a, w->r);
		} else {
			api_reply_sync(w->r, 200, json_object(), NULL, NULL);
		}
		free(w);
		w = next;
	}
	if (p->config_again) {
		config_reload_start(a);
	}
}

static void config_reload_start(struct api *a)
{
	struct api_prop *p = a->prop;

	p->config_reloading = true;
	p->config_again = false;
	p->config_target = p->config_next;
	p->waiters = p->next_waiters;
	p->next_waiters = NULL;
	api_config_reload(a, config_reload_done);
}

/* Reload the config view for generation @g; answer @r after it (and after
 * a trust reload when @trust) when not NULL. A reload in flight serves
 * when it started after @g was seen; else another follows it. */
static void config_reload(struct api *a,
			  int64_t g,
			  struct api_req *r,
			  bool trust)
{
	struct api_prop *p = a->prop;
	struct config_waiter *w = NULL;
	bool current = p->config_reloading && g <= p->config_target;

	if (r != NULL) {
		w = calloc(1, sizeof *w);
		if (w == NULL) {
			api_reply_error(r, 500, "out of memory");
			return;
		}
		w->r = r;
		w->trust = trust;
	}
	if (current) {
		if (w != NULL) {
			w->next = p->waiters;
			p->waiters = w;
		}
		return;
	}
	if (w != NULL) {
		w->next = p->next_waiters;
		p->next_waiters = w;
	}
	if (g > p->config_next) {
		p->config_next = g;
	}
	if (p->config_reloading) {
		p->config_again = true;
	} else {
		config_reload_start(a);
	}
}

/* Take in the generations @gens (an object, borrowed) seen elsewhere:
 * reload what is newer. When @r is not NULL it is answered once every
 * reload is done (trust and config take time). */
static void prop_apply(struct api *a, json_t *gens, struct api_req *r)
{
	bool trust_newer = false;
	int64_t config_gen = -1;
	int i;

	for (i = 0; i < API_PROP_AREAS; i++) {
		json_t *v = json_object_get(gens, prop_areas[i]);
		int64_t g;

		if (!json_is_integer(v)) {
			continue;
		}
		g = (int64_t)json_integer_value(v);
		if (g <= prop_gen(a, i)) {
			continue;
		}
		if (i == 0) {
			trust_newer = true;
			continue;
		}
		if (i == PROP_CONFIG) {
			config_gen = g;
			continue;
		}
		/* Projects, profiles, instances: nothing is cached but the
		 * list answers, keyed by the write generation. */
		a->prop->gens[i] = g;
		a->write_gen++;
	}
	if (config_gen >= 0) {
		config_reload(a, config_gen, r, trust_newer);
		if (r == NULL && trust_newer) {
			trust_reload(a, NULL);
		}
	} else if (trust_newer) {
		trust_reload(a, r);
	} else if (r != NULL) {
		api_reply_sync(r, 200, json_object(), NULL, NULL);
	}
}

/* ------------------------------------------------------------------------ */
/* Peers and heartbeat body                                                   */

static struct prop_seen *seen_find(struct api_prop *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n_seen; i++) {
		if (strcmp(p->seen[i].name, name) == 0) {
			return &p->seen[i];
		}
	}
	return NULL;
}

static struct prop_seen *seen_add(struct api_prop *p,
				  const char *name,
				  uint64_t ms)
{
	struct prop_seen *s = seen_find(p, name);

	if (s == NULL && p->n_seen < PROP_MAX_SEEN) {
		s = &p->seen[p->n_seen++];
		snprintf(s->name, sizeof s->name, "%s", name);
		s->ms = ms;
	}
	return s;
}

static json_t *gens_json(struct api *a)
{
	json_t *o = json_object();
	int i;

	for (i = 0; o != NULL && i < API_PROP_AREAS; i++) {
		json_object_set_new(o, prop_areas[i],
				    json_integer(prop_gen(a, i)));
	}
	return o;
}

static void body_update(struct api *a)
{
	struct api_member_info self;
	json_t *body;
	char *bytes = NULL;
	size_t len = 0;

	api_member_info_local(&self);
	body = json_pack("{s:s, s:o, s:s, s:i, s:i, s:s, s:o}", "name",
			 a->member_name, "generations", gens_json(a), "version",
			 self.version, "schema", self.schema, "api_extensions",
			 self.api_extensions, "architecture", self.architecture,
			 "members",
			 a->prop->members != NULL ? json_copy(a->prop->members)
						  : json_array());
	if (body != NULL && cluster_msg_pack(body, &bytes, &len) == 0) {
		cluster_heartbeat_body_set(a->cluster, bytes, len);
	}
	free(bytes);
	json_decref(body);
}

struct refresh {
	struct api *a;
	json_t *members;
	int64_t gens[API_PROP_AREAS];
	struct state_raft_node nodes[PROP_MAX_RAFT];
	size_t n_nodes;
	int raft_rv; /* of state_raft_nodes() */
	uint64_t leader;
};

static int refresh_work(struct state_tx *tx, void *arg)
{
	struct refresh *f = arg;
	int rv;
	int i;

	rv = state_member_list(tx, &f->members);
	for (i = 1; rv == 0 && i < API_PROP_AREAS; i++) {
		rv = state_generation_get(tx, prop_areas[i], &f->gens[i]);
	}
	if (rv == 0) {
		f->raft_rv = state_raft_nodes(tx, f->nodes, PROP_MAX_RAFT,
					      &f->n_nodes, &f->leader);
	}
	return rv;
}

/* Whether member @m (of the member list) is a database voter in @f. */
static bool refresh_is_voter(const struct refresh *f, json_t *m)
{
	json_int_t id = json_integer_value(json_object_get(m, "id"));
	size_t i;

	if (f->raft_rv == -ENOTSUP) {
		return true; /* no dqlite (unit tests): every member votes */
	}
	for (i = 0; i < f->n_nodes; i++) {
		if (f->nodes[i].id == (uint64_t)id) {
			return f->nodes[i].role == 0;
		}
	}
	return false;
}

/* Take the voters of the member list @f read. */
static void voters_set(struct api_prop *p, const struct refresh *f)
{
	json_t *m;
	size_t i;

	if (f->raft_rv != 0 && f->raft_rv != -ENOTSUP) {
		return; /* keep the previous voters */
	}
	p->n_voters = 0;
	json_array_foreach(f->members, i, m)
	{
		const char *name =
		    json_string_value(json_object_get(m, "name"));

		if (name != NULL && p->n_voters < PROP_MAX_SEEN &&
		    refresh_is_voter(f, m)) {
			snprintf(p->voters[p->n_voters],
				 sizeof p->voters[p->n_voters], "%s", name);
			p->n_voters++;
		}
	}
	p->voters_known = p->n_voters > 0;
}

/* ------------------------------------------------------------------------ */
/* Role rebalancing (the leader only)                                         */

struct rebalance {
	struct api *a;
	struct cluster_rebalance change;
};

static unsigned config_uint(struct api *a, const char *key, unsigned def)
{
	const char *v = json_string_value(json_object_get(a->config, key));
	long n = v != NULL ? strtol(v, NULL, 10) : -1;

	return n >= 0 ? (unsigned)n : def;
}

static int rebalance_work(struct state_tx *tx, void *arg)
{
	struct rebalance *b = arg;

	return state_raft_assign(tx, b->change.id, b->change.role);
}

static void rebalance_done(void *arg, int rv, const char *errmsg)
{
	struct rebalance *b = arg;
	struct api *a = b->a;

	if (a->prop != NULL) {
		a->prop->rebalancing = false;
		a->prop->refresh_wanted = true; /* the next change, if any */
	}
	if (rv != 0) {
		log_warn(
		    "msg=\"rebalance roles\" node=%llu role=%d error=\"%s\"",
		    (unsigned long long)b->change.id, b->change.role, errmsg);
	} else {
		log_info("msg=\"rebalanced roles\" node=%llu role=%d",
			 (unsigned long long)b->change.id, b->change.role);
	}
	free(b);
}

/* On the leader: make one role change when the member list @f read calls
 * for it (cluster_rebalance_choose()). A member counts as Online for a
 * promotion only once a heartbeat came from it (a member still joining
 * takes its role itself). */
static void rebalance(struct api *a, const struct refresh *f)
{
	struct api_prop *p = a->prop;
	bool online[PROP_MAX_RAFT];
	struct rebalance *b;
	json_t *m;
	size_t i;
	size_t j;

	p->leading = f->raft_rv == 0 && f->leader != 0 &&
		     f->leader == state_node_id(a->state);
	if (!p->leading || p->rebalancing) {
		return;
	}
	for (i = 0; i < f->n_nodes; i++) {
		online[i] = f->nodes[i].id == f->leader;
		json_array_foreach(f->members, j, m)
		{
			const char *name =
			    json_string_value(json_object_get(m, "name"));
			json_int_t id =
			    json_integer_value(json_object_get(m, "id"));
			struct prop_seen *s;
			char msg[64];

			if (name == NULL || (uint64_t)id != f->nodes[i].id ||
			    online[i]) {
				continue;
			}
			s = seen_find(p, name);
			online[i] =
			    api_prop_member_online(a, name, msg, sizeof msg) &&
			    (f->nodes[i].role == 0 || (s != NULL && s->heard));
		}
	}
	b = calloc(1, sizeof *b);
	if (b == NULL) {
		return;
	}
	b->a = a;
	if (cluster_rebalance_choose(f->nodes, online, f->n_nodes,
				     config_uint(a, "cluster.max_voters", 3),
				     config_uint(a, "cluster.max_standby", 2),
				     &b->change) != 1) {
		free(b);
		return;
	}
	log_info("msg=\"rebalance roles\" node=%llu role=%d",
		 (unsigned long long)b->change.id, b->change.role);
	p->rebalancing = true;
	if (state_submit(a->state, false, rebalance_work, rebalance_done, b) !=
	    0) {
		p->rebalancing = false;
		free(b);
	}
}

static void refresh_done(void *arg, int rv, const char *errmsg)
{
	struct refresh *f = arg;
	struct api *a = f->a;
	struct api_prop *p = a->prop;
	json_t *peers = json_array();
	json_t *gens = json_object();
	json_t *m;
	size_t i;

	p->refreshing = false;
	if (rv != 0) {
		log_debug("msg=\"member refresh\" error=\"%s\"", errmsg);
		goto out;
	}
	json_array_foreach(f->members, i, m)
	{
		const char *name =
		    json_string_value(json_object_get(m, "name"));

		if (name == NULL || strcmp(name, a->member_name) == 0) {
			continue;
		}
		seen_add(p, name, uv_now(a->loop));
		json_array_append_new(
		    peers, json_pack("{s:s, s:O}", "name", name, "address",
				     json_object_get(m, "address")));
	}
	if (cluster_peers_set(a->cluster, peers) != 0) {
		log_debug(
		    "msg=\"member refresh\" error=\"cannot start "
		    "heartbeats\"");
	}
	json_decref(p->members);
	p->members = json_array();
	json_array_foreach(f->members, i, m)
	{
		json_array_append_new(
		    p->members,
		    json_pack("{s:O, s:O}", "name", json_object_get(m, "name"),
			      "address", json_object_get(m, "address")));
	}
	/* A database newer than what is loaded: repair. The first read
	 * sets what is loaded (nothing is cached yet), but for the config
	 * view: it was loaded before this read, maybe before a change this
	 * read sees (a member that just joined), so it is reloaded. */
	for (i = 1; i < API_PROP_AREAS; i++) {
		if (p->gens[i] < 0 && i != PROP_CONFIG) {
			p->gens[i] = f->gens[i];
		} else {
			json_object_set_new(gens, prop_areas[i],
					    json_integer(f->gens[i]));
		}
	}
	prop_apply(a, gens, NULL);
	body_update(a);
	voters_set(p, f);
	rebalance(a, f);
	/* Back in contact after staleness: the database answered, reload
	 * the trust store before serving TLS clients again. */
	if (p->stale && !p->repairing && prop_in_contact(a)) {
		trust_reload_ext(a, NULL, true);
	}
out:
	json_decref(gens);
	json_decref(peers);
	json_decref(f->members);
	free(f);
}

static void refresh(struct api *a)
{
	struct refresh *f;

	if (a->prop->refreshing) {
		return;
	}
	f = calloc(1, sizeof *f);
	if (f == NULL) {
		return;
	}
	f->a = a;
	a->prop->refreshing = true;
	a->prop->refresh_wanted = false;
	if (state_submit(a->state, false, refresh_work, refresh_done, f) != 0) {
		a->prop->refreshing = false;
		free(f);
	}
}

static void timer_cb(uv_timer_t *t)
{
	struct api *a = t->data;
	struct api_prop *p = a->prop;

	if (!api_clustered(a) || a->member_name[0] == '\0') {
		return;
	}
	api_prop_stale(a);
	/* The leader reads the member list every second: it rebalances. */
	if (p->refresh_wanted || p->leading ||
	    p->ticks++ % PROP_REFRESH_TICKS == 0) {
		refresh(a);
	}
	body_update(a);
}

static int prop_ensure(struct api *a)
{
	int i;

	if (a->prop != NULL) {
		return 0;
	}
	a->prop = calloc(1, sizeof *a->prop);
	if (a->prop == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < API_PROP_AREAS; i++) {
		a->prop->gens[i] = -1;
	}
	return 0;
}

void api_prop_start(struct api *a)
{
	if (a->cluster == NULL || prop_ensure(a) != 0 || a->prop->started) {
		if (a->prop != NULL && a->prop->started) {
			/* At once, not at the next tick: a member that just
			 * joined must get the next change notification. */
			a->prop->refresh_wanted = true;
			refresh(a);
		}
		return;
	}
	a->prop->started_ms = uv_now(a->loop);
	uv_timer_init(a->loop, &a->prop->timer);
	a->prop->timer.data = a;
	uv_timer_start(&a->prop->timer, timer_cb, 0, 1000);
	a->prop->started = true;
}

static void timer_closed_cb(uv_handle_t *h)
{
	struct api *a = h->data;

	a->prop->close_cb(a->prop->close_arg);
}

void api_prop_close(struct api *a, void (*cb)(void *arg), void *arg)
{
	if (a->prop == NULL || !a->prop->started) {
		cb(arg);
		return;
	}
	a->prop->started = false;
	a->prop->close_cb = cb;
	a->prop->close_arg = arg;
	uv_close((uv_handle_t *)&a->prop->timer, timer_closed_cb);
}

static void waiters_free(struct config_waiter *w)
{
	while (w != NULL) {
		struct config_waiter *next = w->next;

		free(w);
		w = next;
	}
}

void api_prop_destroy(struct api *a)
{
	if (a->prop != NULL) {
		waiters_free(a->prop->waiters);
		waiters_free(a->prop->next_waiters);
		json_decref(a->prop->members);
	}
	free(a->prop);
	a->prop = NULL;
}

/* ------------------------------------------------------------------------ */
/* Member status                                                              */

static unsigned offline_threshold(struct api *a)
{
	const char *v = json_string_value(
	    json_object_get(a->config, "cluster.offline_threshold"));
	long n = v != NULL ? strtol(v, NULL, 10) : 0;

	return n > 0 ? (unsigned)n : 3;
}

bool api_prop_member_online(struct api *a,
			    const char *name,
			    char *msg,
			    size_t size)
{
	struct prop_seen *s;
	uint64_t last;
	uint64_t now = uv_now(a->loop);
	uint64_t limit = (uint64_t)offline_threshold(a) * 1000;

	snprintf(msg, size, "Fully operational");
	if (strcmp(name, a->member_name) == 0 || a->prop == NULL) {
		return true;
	}
	s = seen_find(a->prop, name);
	last = s != NULL ? s->ms : a->prop->started_ms;
	if (now - last <= limit) {
		return true;
	}
	snprintf(msg, size, "No heartbeat for %llus",
		 (unsigned long long)((now - last) / 1000));
	return false;
}

/* ------------------------------------------------------------------------ */
/* Bounded staleness                                                          */

static uint64_t stale_bound(struct api *a)
{
	const char *v =
	    json_string_value(json_object_get(a->config, "corral.stale_bound"));
	long n = v != NULL ? strtol(v, NULL, 10) : 0;

	return n > 0 ? (uint64_t)n : 3000;
}

/* Whether a majority of the voters (this member included when it votes)
 * was heard from, or answered a heartbeat, within corral.stale_bound. */
static bool prop_in_contact(struct api *a)
{
	struct api_prop *p = a->prop;
	uint64_t now = uv_now(a->loop);
	uint64_t bound = stale_bound(a);
	size_t in = 0;
	size_t i;

	for (i = 0; i < p->n_voters; i++) {
		const char *name = p->voters[i];
		struct prop_seen *s;
		uint64_t last;
		uint64_t answered;

		if (strcmp(name, a->member_name) == 0) {
			in++;
			continue;
		}
		s = seen_find(p, name);
		last = s != NULL ? s->ms : p->started_ms;
		answered = cluster_peer_answered_ms(a->cluster, name);
		if (answered > last) {
			last = answered;
		}
		if (last >= now || now - last <= bound) {
			in++;
		}
	}
	return 2 * in > p->n_voters;
}

bool api_prop_stale(struct api *a)
{
	struct api_prop *p = a->prop;

	if (a->cluster == NULL || p == NULL || !p->started ||
	    !p->voters_known || !api_clustered(a)) {
		return false;
	}
	if (!p->stale) {
		if (prop_in_contact(a)) {
			return false;
		}
		p->stale = true;
		log_warn(
		    "msg=\"out of contact with the cluster\" "
		    "stale_bound_ms=%llu",
		    (unsigned long long)stale_bound(a));
	} else if (!p->repairing && prop_in_contact(a)) {
		p->refresh_wanted = true; /* the repair starts there */
	}
	return true;
}

bool api_prop_refuse(struct api_req *r)
{
	const char *path = r->route->path;
	bool get = r->http->method == HTTP_GET || r->http->method == HTTP_HEAD;

	if (!r->tls || strncmp(path, "/internal/", 10) == 0 ||
	    (get && (strcmp(path, "/") == 0 || strcmp(path, "/1.0") == 0)) ||
	    !api_prop_stale(r->api)) {
		return false;
	}
	api_reply_error(r, 503, "member out of contact with the cluster");
	return true;
}

/* ------------------------------------------------------------------------ */
/* Internal endpoints                                                         */

/* Whether the Content-Type value @value names the media type @type
 * (case-insensitive, parameters after ';' ignored). */
static bool content_type_is(const char *value, const char *type)
{
	size_t n = strlen(type);

	if (value == NULL || strncasecmp(value, type, n) != 0) {
		return false;
	}
	value += n;
	while (*value == ' ' || *value == '\t') {
		value++;
	}
	return *value == '\0' || *value == ';';
}

/* The body of a heartbeat or change notification: a msgpack map when the
 * Content-Type is CLUSTER_MSG_CONTENT_TYPE, else a JSON object (what a
 * member not yet upgraded sends). Returns a new reference, or NULL after
 * answering 400 (malformed, or not a map) or 500. */
static json_t *prop_body(struct api_req *r)
{
	const char *type = http_request_header(r->http, "Content-Type");
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	json_t *body;
	int rv;

	if (!content_type_is(type, CLUSTER_MSG_CONTENT_TYPE)) {
		return api_body_object(r);
	}
	rv =
	    cluster_msg_unpack(r->http->body, r->http->body_len, &body, errmsg);
	if (rv == -ENOMEM) {
		api_reply_error(r, 500, "out of memory");
		return NULL;
	}
	if (rv != 0) {
		api_reply_error(r, 400, "invalid msgpack body: %s", errmsg);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		api_reply_error(r, 400, "invalid msgpack body: not a map");
		return NULL;
	}
	return body;
}

/* Take what a heartbeat @body says its sender runs; fields absent (an
 * older member) or out of range read as unknown (0 or ""). */
static void seen_info(struct prop_seen *s, json_t *body)
{
	json_t *schema = json_object_get(body, "schema");
	json_t *ext = json_object_get(body, "api_extensions");
	const char *version =
	    json_string_value(json_object_get(body, "version"));
	const char *arch =
	    json_string_value(json_object_get(body, "architecture"));

	memset(&s->info, 0, sizeof s->info);
	if (json_is_integer(schema) && json_integer_value(schema) > 0 &&
	    json_integer_value(schema) < 1000000) {
		s->info.schema = (int)json_integer_value(schema);
	}
	if (json_is_integer(ext) && json_integer_value(ext) > 0 &&
	    json_integer_value(ext) < 1000000) {
		s->info.api_extensions = (int)json_integer_value(ext);
	}
	if (version != NULL && strlen(version) < sizeof s->info.version) {
		snprintf(s->info.version, sizeof s->info.version, "%s",
			 version);
	}
	if (arch != NULL && strlen(arch) < sizeof s->info.architecture) {
		snprintf(s->info.architecture, sizeof s->info.architecture,
			 "%s", arch);
	}
}

bool api_prop_member_info(struct api *a,
			  const char *name,
			  struct api_member_info *info)
{
	struct prop_seen *s;

	if (strcmp(name, a->member_name) == 0) {
		api_member_info_local(info);
		return true;
	}
	s = a->prop != NULL ? seen_find(a->prop, name) : NULL;
	if (s == NULL || !s->heard) {
		memset(info, 0, sizeof *info);
		return false;
	}
	*info = s->info;
	return true;
}

/* A heartbeat's member list names a member this one has no heartbeat
 * thread for (it joined through another member a moment ago): start one at
 * once, and read the member list from the database soon to confirm. */
static void members_learn(struct api *a, json_t *members)
{
	json_t *peers;
	json_t *m;
	size_t i;

	if (!json_is_array(members) ||
	    json_array_size(members) > PROP_MAX_SEEN) {
		return;
	}
	peers = json_array();
	json_array_foreach(members, i, m)
	{
		const char *name =
		    json_string_value(json_object_get(m, "name"));
		const char *address =
		    json_string_value(json_object_get(m, "address"));

		if (peers == NULL || name == NULL || address == NULL ||
		    strlen(name) >= 64 || strlen(address) >= 256 ||
		    strcmp(name, a->member_name) == 0 ||
		    seen_find(a->prop, name) != NULL) {
			continue;
		}
		json_array_append_new(
		    peers,
		    json_pack("{s:s, s:s}", "name", name, "address", address));
	}
	if (json_array_size(peers) > 0) {
		a->prop->refresh_wanted = true;
		if (cluster_peers_add(a->cluster, peers) != 0) {
			log_debug(
			    "msg=\"heartbeat\" error=\"cannot start "
			    "heartbeats\"");
		}
	}
	json_decref(peers);
}

void api_prop_heartbeat(struct api_req *r)
{
	struct api *a = r->api;
	json_t *body = prop_body(r);
	const char *name;

	if (body == NULL) {
		return;
	}
	if (prop_ensure(a) != 0) {
		json_decref(body);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	name = json_string_value(json_object_get(body, "name"));
	if (name != NULL) {
		struct prop_seen *s = seen_find(a->prop, name);

		if (s == NULL) {
			/* A member this one does not know yet. */
			a->prop->refresh_wanted = true;
			s = seen_add(a->prop, name, 0);
		}
		if (s != NULL) {
			s->ms = uv_now(a->loop);
			s->heard = true;
			seen_info(s, body);
		}
	}
	api_reply_sync(r, 200, json_object(), NULL, NULL);
	members_learn(a, json_object_get(body, "members"));
	prop_apply(a, json_object_get(body, "generations"), NULL);
	json_decref(body);
}

/* A change notification may carry the trust store the write left
 * ({"trust": {"generation", "identities"}}): install it without reading
 * the database, so the acknowledgement costs no round trip to the leader.
 * Anything malformed is ignored and the generation comparison in
 * prop_apply() reloads from the database instead. */
static void trust_inline(struct api *a, json_t *body)
{
	json_t *trust = json_object_get(body, "trust");
	json_t *gen = json_object_get(trust, "generation");
	json_t *ids = json_object_get(trust, "identities");
	json_t *want =
	    json_object_get(json_object_get(body, "generations"), "trust");

	if (!json_is_integer(gen) || !json_is_array(ids) ||
	    !json_is_integer(want) ||
	    json_integer_value(gen) != json_integer_value(want) ||
	    json_integer_value(gen) <= prop_gen(a, 0)) {
		return;
	}
	api_trust_install(a, ids, json_integer_value(gen));
}

void api_prop_changed(struct api_req *r)
{
	struct api *a = r->api;
	json_t *body = prop_body(r);

	if (body == NULL) {
		return;
	}
	if (prop_ensure(a) != 0) {
		json_decref(body);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	trust_inline(a, body);
	prop_apply(a, json_object_get(body, "generations"), r);
	json_decref(body);
}

/* ------------------------------------------------------------------------ */
/* After a write                                                              */

struct after_write {
	struct api_db_call *c;
	void (*done)(struct api_db_call *c);
	int64_t gens[API_PROP_AREAS];
	json_t *members; /* owned: the member list read with the generations */
};

static void after_write_acked(void *arg, json_t *missing)
{
	struct after_write *w = arg;
	struct api_req *r = w->c->r;

	r->unacked_set = true;
	if (missing != NULL && json_array_size(missing) > 0) {
		char *names = json_dumps(missing, JSON_COMPACT);

		log_warn("msg=\"change not acknowledged\" members=%s",
			 names != NULL ? names : "?");
		free(names);
		r->unacked = json_incref(missing);
	}
	w->done(w->c);
	json_decref(w->members);
	free(w);
}

int api_prop_gens_read(struct state_tx *tx,
		       int64_t gens[API_PROP_AREAS],
		       json_t **members)
{
	int rv;

	rv = state_generations_get(tx, prop_areas, API_PROP_AREAS, gens);
	if (rv == 0) {
		rv = state_member_list(tx, members);
	}
	return rv;
}

static int after_write_work(struct state_tx *tx, void *arg)
{
	struct after_write *w = arg;

	return api_prop_gens_read(tx, w->gens, &w->members);
}

/* Whether member @name has gone silent: heard from before, but neither a
 * heartbeat from it nor an answer to ours for cluster.offline_threshold.
 * A member never heard from (one that joined a moment ago) is not. */
static bool notify_skip(struct api *a, const char *name)
{
	struct prop_seen *s = a->prop != NULL ? seen_find(a->prop, name) : NULL;
	uint64_t limit = (uint64_t)offline_threshold(a) * 1000;
	uint64_t now = uv_now(a->loop);
	uint64_t last;
	uint64_t answered;

	if (s == NULL || !s->heard) {
		return false;
	}
	last = s->ms;
	answered = cluster_peer_answered_ms(a->cluster, name);
	if (answered > last) {
		last = answered;
	}
	return last < now && now - last > limit;
}

/* The members of @members (borrowed) but this one, as peers: who a change
 * notification goes to. The member list read with the write, not the
 * heartbeat peers, which may not know a member that joined a moment ago.
 * Members gone silent (notify_skip()) are not waited for: their names go to
 * @offline (an array) instead, so that they are reported as not having
 * acknowledged at once, and every write while a host is down does not wait
 * corral.notify_timeout for it. They catch up from heartbeats, and refuse TLS
 * clients until then (bounded staleness). NULL on OOM. */
static json_t *notify_peers(struct api *a, json_t *members, json_t *offline)
{
	json_t *peers = json_array();
	json_t *m;
	size_t i;

	json_array_foreach(members, i, m)
	{
		const char *name =
		    json_string_value(json_object_get(m, "name"));
		const char *address =
		    json_string_value(json_object_get(m, "address"));

		if (peers == NULL || name == NULL || address == NULL ||
		    strcmp(name, a->member_name) == 0) {
			continue;
		}
		if (notify_skip(a, name)) {
			if (json_array_append_new(offline, json_string(name)) !=
			    0) {
				json_decref(peers);
				peers = NULL;
			}
			continue;
		}
		if (json_array_append_new(
			peers, json_pack("{s:s, s:s}", "name", name, "address",
					 address)) != 0) {
			json_decref(peers);
			peers = NULL;
		}
	}
	return peers;
}

static unsigned notify_timeout(struct api *a)
{
	const char *v = json_string_value(
	    json_object_get(a->config, "corral.notify_timeout"));

	return v != NULL ? (unsigned)strtoul(v, NULL, 10) : 2000;
}

/* Send POST /internal/changed {"name", "generations": @changed} to every
 * member of @members but this one, with the trust store @trust inline when
 * it is the store at generation @trust_now (the "trust" generation read
 * with @members) and packs small; @cb runs when all acknowledged or the
 * notify timeout passed. Returns 0 when sent (@cb will run). */
/* A change notification in flight: the caller's callback, and the
 * members left out because they are Offline. */
struct changed_call {
	cluster_broadcast_cb cb;
	void *arg;
	json_t *offline; /* owned: names */
};

static void changed_sent(void *arg, json_t *missing)
{
	struct changed_call *cc = arg;
	json_t *all = missing;
	size_t i;
	json_t *name;

	if (json_array_size(cc->offline) > 0) {
		all = json_array();
		if (all != NULL && missing != NULL) {
			json_array_extend(all, missing);
		}
		json_array_foreach(cc->offline, i, name)
		{
			if (all != NULL) {
				json_array_append(all, name);
			}
		}
		log_info(
		    "msg=\"notify: Offline members not waited for\" "
		    "count=%zu",
		    json_array_size(cc->offline));
	}
	cc->cb(cc->arg, all);
	if (all != missing) {
		json_decref(all);
	}
	json_decref(cc->offline);
	free(cc);
}

static int changed_send(struct api *a,
			json_t *changed,
			json_t *members,
			json_t *trust,
			int64_t trust_gen,
			int64_t trust_now,
			cluster_broadcast_cb cb,
			void *arg)
{
	struct changed_call *call = NULL;
	json_t *peers = NULL;
	json_t *msg;
	char *bytes = NULL;
	size_t len = 0;
	int rv = -ENOMEM;

	msg = json_pack("{s:s, s:O}", "name", a->member_name, "generations",
			changed);
	if (msg == NULL || cluster_msg_pack(msg, &bytes, &len) != 0) {
		bytes = NULL;
	}
	if (bytes != NULL && trust != NULL && trust_gen == trust_now &&
	    json_object_get(changed, prop_areas[0]) != NULL) {
		/* The trust store the change left goes along while small:
		 * members install it as they read the message. A store too
		 * big (or too deep) for a message stays behind. */
		char *with = NULL;
		size_t with_len = 0;

		if (json_object_set_new(msg, "trust",
					json_pack("{s:I, s:O}", "generation",
						  (json_int_t)trust_gen,
						  "identities", trust)) != 0 ||
		    cluster_msg_pack(msg, &with, &with_len) != 0) {
			with = NULL;
		}
		if (with != NULL && with_len <= PROP_INLINE_TRUST_MAX) {
			free(bytes);
			bytes = with;
			len = with_len;
		} else {
			free(with);
		}
	}
	call = calloc(1, sizeof *call);
	if (call != NULL) {
		call->cb = cb;
		call->arg = arg;
		call->offline = json_array();
		peers = call->offline != NULL
			    ? notify_peers(a, members, call->offline)
			    : NULL;
	}
	if (peers != NULL && cluster_peers_add(a->cluster, peers) != 0) {
		log_debug("msg=\"notify\" error=\"cannot start heartbeats\"");
	}
	if (bytes != NULL && peers != NULL) {
		rv = cluster_broadcast(a->cluster, peers, "/internal/changed",
				       bytes, len, notify_timeout(a),
				       changed_sent, call);
	}
	if (rv != 0 && call != NULL) {
		json_decref(call->offline);
		free(call);
	}
	free(bytes);
	json_decref(peers);
	json_decref(msg);
	return rv;
}

static void after_write_done(void *arg, int rv, const char *errmsg)
{
	struct after_write *w = arg;
	struct api *a = w->c->r->api;
	json_t *changed = json_object();
	int i;

	if (rv != 0) {
		log_warn("msg=\"read generations\" error=\"%s\"", errmsg);
		goto out;
	}
	for (i = 0; i < API_PROP_AREAS && changed != NULL; i++) {
		if (w->gens[i] > w->c->gens_before[i]) {
			json_object_set_new(changed, prop_areas[i],
					    json_integer(w->gens[i]));
			/* Config: the write's reply installs the view. */
			if (i > 0 && w->gens[i] > a->prop->gens[i]) {
				a->prop->gens[i] = w->gens[i];
			}
		}
	}
	if (changed == NULL || json_object_size(changed) == 0) {
		goto out;
	}
	body_update(a);
	if (changed_send(a, changed, w->members, w->c->trust_snapshot,
			 w->c->trust_gen, w->gens[0], after_write_acked,
			 w) == 0) {
		json_decref(changed);
		return;
	}
out:
	json_decref(changed);
	w->done(w->c);
	json_decref(w->members);
	free(w);
}

/* Whether this member notifies the others of its changes: clustered, with
 * heartbeats started (it knows its name). */
static bool prop_active(const struct api *a)
{
	return a->cluster != NULL && api_clustered(a) && a->prop != NULL &&
	       a->prop->started;
}

int api_prop_after_write(struct api_db_call *c,
			 void (*done)(struct api_db_call *c))
{
	struct api *a = c->r->api;
	struct after_write *w;

	if (!prop_active(a)) {
		return -ENOTCONN;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		return -ENOMEM;
	}
	w->c = c;
	w->done = done;
	if (c->gens_read) {
		memcpy(w->gens, c->gens_after, sizeof w->gens);
		w->members = c->members_after;
		c->members_after = NULL;
		after_write_done(w, 0, "");
		return 0;
	}
	if (state_submit(a->state, false, after_write_work, after_write_done,
			 w) != 0) {
		free(w);
		return -EAGAIN;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Announcing a change made outside api_db_run()                              */

struct announce {
	struct api *a;
	json_t *trust; /* owned, or NULL */
	int64_t trust_gen;
	int64_t gens[API_PROP_AREAS];
	json_t *members; /* owned */
	void (*done)(void *arg, json_t *missing);
	void *arg;
};

static void announce_free(struct announce *n)
{
	json_decref(n->trust);
	json_decref(n->members);
	free(n);
}

static int announce_work(struct state_tx *tx, void *arg)
{
	struct announce *n = arg;

	json_decref(n->members);
	n->members = NULL;
	return api_prop_gens_read(tx, n->gens, &n->members);
}

static void announce_acked(void *arg, json_t *missing)
{
	struct announce *n = arg;

	if (missing != NULL && json_array_size(missing) > 0) {
		char *names = json_dumps(missing, JSON_COMPACT);

		log_warn("msg=\"change not acknowledged\" members=%s",
			 names != NULL ? names : "?");
		free(names);
	}
	n->done(n->arg, missing);
	announce_free(n);
}

static void announce_read(void *arg, int rv, const char *errmsg)
{
	struct announce *n = arg;
	struct api *a = n->a;
	json_t *gens = json_object();
	int i;

	if (rv != 0) {
		log_warn("msg=\"read generations\" error=\"%s\"", errmsg);
	}
	for (i = 0; rv == 0 && gens != NULL && i < API_PROP_AREAS; i++) {
		json_object_set_new(gens, prop_areas[i],
				    json_integer(n->gens[i]));
	}
	if (rv == 0 && gens != NULL &&
	    changed_send(a, gens, n->members, n->trust, n->trust_gen,
			 n->gens[0], announce_acked, n) == 0) {
		json_decref(gens);
		return;
	}
	json_decref(gens);
	n->done(n->arg, NULL);
	announce_free(n);
}

int api_prop_announce(struct api *a,
		      json_t *trust,
		      int64_t trust_gen,
		      void (*done)(void *arg, json_t *missing),
		      void *arg)
{
	struct announce *n;

	if (!prop_active(a)) {
		return -ENOTCONN;
	}
	n = calloc(1, sizeof *n);
	if (n == NULL) {
		return -ENOMEM;
	}
	n->a = a;
	n->trust = json_incref(trust);
	n->trust_gen = trust_gen;
	n->done = done;
	n->arg = arg;
	if (state_submit(a->state, false, announce_work, announce_read, n) !=
	    0) {
		announce_free(n);
		return -EAGAIN;
	}
	return 0;
}
