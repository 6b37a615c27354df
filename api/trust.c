/* The trust cache, the LXD 5.0 projection of role bindings, and the
 * failed-password limiter. Pure: see trust.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corral/err.h>

#include "trust.h"

/* ------------------------------------------------------------------------ */
/* Cache                                                                      */

struct trust_cache {
	struct trust_identity *entries; /* owned, n of them */
	size_t n;
	struct trust_identity **buckets; /* owned, n_buckets, a power of 2 */
	size_t n_buckets;
	int64_t generation;
	struct trust_limiter *limiter; /* owned */
};

/* FNV-1a: fingerprints are already uniform, but the key may come from
 * anywhere. */
static uint64_t hash_fp(const char *fp)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *fp != '\0'; fp++) {
		h ^= (unsigned char)*fp;
		h *= 1099511628211ULL;
	}
	return h;
}

static void entries_free(struct trust_identity *entries, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(entries[i].name);
		json_decref(entries[i].roles);
	}
	free(entries);
}

int trust_cache_create(struct trust_cache **out)
{
	struct trust_cache *c;
	int rv;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		return -ENOMEM;
	}
	c->generation = -1;
	rv = trust_limiter_create(0, &c->limiter);
	if (rv != 0) {
		free(c);
		return rv;
	}
	*out = c;
	return 0;
}

void trust_cache_destroy(struct trust_cache *c)
{
	if (c == NULL) {
		return;
	}
	entries_free(c->entries, c->n);
	free(c->buckets);
	trust_limiter_destroy(c->limiter);
	free(c);
}

bool trust_roles_server_admin(const json_t *roles)
{
	json_t *binding;
	size_t i;

	json_array_foreach((json_t *)roles, i, binding)
	{
		const char *scope =
		    json_string_value(json_object_get(binding, "scope"));
		const char *role =
		    json_string_value(json_object_get(binding, "role"));

		if (scope != NULL && role != NULL &&
		    strcmp(scope, "server") == 0 &&
		    strcmp(role, "admin") == 0) {
			return true;
		}
	}
	return false;
}

/* Fill @e from @identity (borrowed). */
static int entry_fill(struct trust_identity *e,
		      json_t *identity,
		      size_t i,
		      char *errmsg)
{
	const char *fp =
	    json_string_value(json_object_get(identity, "fingerprint"));
	const char *type = json_string_value(json_object_get(identity, "type"));
	const char *name = json_string_value(json_object_get(identity, "name"));
	json_t *roles = json_object_get(identity, "roles");

	if (fp == NULL || strlen(fp) != 64) {
		if (errmsg != NULL) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "identity %zu has no valid fingerprint", i);
		}
		return -EINVAL;
	}
	memcpy(e->fingerprint, fp, 65);
	snprintf(e->type, sizeof e->type, "%s", type != NULL ? type : "");
	e->name = strdup(name != NULL ? name : "");
	e->roles = json_is_array(roles) ? json_deep_copy(roles) : json_array();
	if (e->name == NULL || e->roles == NULL) {
		return -ENOMEM;
	}
	e->server_admin = trust_roles_server_admin(e->roles);
	return 0;
}

int trust_cache_replace(struct trust_cache *c,
			const json_t *identities,
			int64_t generation,
			char *errmsg)
{
	struct trust_identity *entries = NULL;
	struct trust_identity **buckets;
	size_t n = json_array_size(identities);
	size_t n_buckets = 16;
	json_t *identity;
	size_t i;
	int rv;

	if (!json_is_array(identities)) {
		if (errmsg != NULL) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "identities must be an array");
		}
		return -EINVAL;
	}
	while (n_buckets < 2 * n) {
		n_buckets *= 2;
	}
	buckets = calloc(n_buckets, sizeof *buckets);
	if (buckets == NULL) {
		return -ENOMEM;
	}
	if (n > 0) {
		entries = calloc(n, sizeof *entries);
		if (entries == NULL) {
			rv = -ENOMEM;
			goto err_after_buckets;
		}
	}
	json_array_foreach((json_t *)identities, i, identity)
	{
		size_t b;

		rv = entry_fill(&entries[i], identity, i, errmsg);
		if (rv != 0) {
			goto err_after_entries;
		}
		b = (size_t)hash_fp(entries[i].fingerprint) & (n_buckets - 1);
		entries[i].next = buckets[b];
		buckets[b] = &entries[i];
	}
	entries_free(c->entries, c->n);
	free(c->buckets);
	c->entries = entries;
	c->n = n;
	c->buckets = buckets;
	c->n_buckets = n_buckets;
	c->generation = generation;
	return 0;

err_after_entries:
	entries_free(entries, n);
err_after_buckets:
	free(buckets);
	return rv;
}

const struct trust_identity *trust_cache_lookup(const struct trust_cache *c,
						const char *fp)
{
	const struct trust_identity *e;

	if (c == NULL || c->buckets == NULL || fp == NULL) {
		return NULL;
	}
	e = c->buckets[(size_t)hash_fp(fp) & (c->n_buckets - 1)];
	for (; e != NULL; e = e->next) {
		if (strcmp(e->fingerprint, fp) == 0) {
			return e;
		}
	}
	return NULL;
}

int64_t trust_cache_generation(const struct trust_cache *c)
{
	return c->generation;
}

size_t trust_cache_size(const struct trust_cache *c)
{
	return c->n;
}

struct trust_limiter *trust_cache_limiter(struct trust_cache *c)
{
	return c->limiter;
}

/* ------------------------------------------------------------------------ */
/* LXD 5.0 projection                                                         */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Append the strings of @names (array, may be NULL) to @v (room for them). */
static size_t collect(const json_t *names, const char **v, size_t n)
{
	json_t *name;
	size_t i;

	json_array_foreach((json_t *)names, i, name)
	{
		if (json_is_string(name)) {
			v[n++] = json_string_value(name);
		}
	}
	return n;
}

/* A new array of the distinct strings of @v, sorted. */
static json_t *sorted_set(const char **v, size_t n)
{
	json_t *out = json_array();
	size_t i;

	if (out == NULL) {
		return NULL;
	}
	qsort(v, n, sizeof *v, cmp_str);
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0) {
			continue;
		}
		if (json_array_append_new(out, json_string(v[i])) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static bool binding_is(const json_t *binding, const char *scope)
{
	const char *s = json_string_value(json_object_get(binding, "scope"));

	return s != NULL && strcmp(s, scope) == 0;
}

static bool has_scope(const json_t *roles, const char *scope)
{
	json_t *binding;
	size_t i;

	json_array_foreach((json_t *)roles, i, binding)
	{
		if (binding_is(binding, scope)) {
			return true;
		}
	}
	return false;
}

int trust_roles_to_legacy(const json_t *roles,
			  const json_t *all_projects,
			  bool *restricted,
			  json_t **projects)
{
	const char **v;
	json_t *binding;
	size_t n = 0;
	size_t i;
	bool all;

	if (!json_is_array(roles)) {
		return -EINVAL;
	}
	all = has_scope(roles, "all_projects");
	v = malloc(
	    (json_array_size(roles) + json_array_size(all_projects) + 1) *
	    sizeof *v);
	if (v == NULL) {
		return -ENOMEM;
	}
	json_array_foreach((json_t *)roles, i, binding)
	{
		const char *project =
		    json_string_value(json_object_get(binding, "project"));

		if (binding_is(binding, "project") && project != NULL) {
			v[n++] = project;
		}
	}
	if (all) {
		n = collect(all_projects, v, n);
	}
	*projects = sorted_set(v, n);
	free(v);
	if (*projects == NULL) {
		return -ENOMEM;
	}
	*restricted = !trust_roles_server_admin(roles);
	return 0;
}

static int scope_rank(const json_t *binding)
{
	if (binding_is(binding, "server")) {
		return 0;
	}
	if (binding_is(binding, "all_projects")) {
		return 1;
	}
	return 2;
}

static int cmp_binding(const void *a, const void *b)
{
	const json_t *x = *(const json_t *const *)a;
	const json_t *y = *(const json_t *const *)b;
	const char *px = json_string_value(json_object_get(x, "project"));
	const char *py = json_string_value(json_object_get(y, "project"));
	int rx = scope_rank(x);
	int ry = scope_rank(y);

	if (rx != ry) {
		return rx - ry;
	}
	return strcmp(px != NULL ? px : "", py != NULL ? py : "");
}

int trust_roles_sort(json_t *roles)
{
	json_t **v;
	size_t n = json_array_size(roles);
	size_t i;
	int rv = 0;

	if (!json_is_array(roles)) {
		return -EINVAL;
	}
	if (n < 2) {
		return 0;
	}
	v = malloc(n * sizeof *v);
	if (v == NULL) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		v[i] = json_incref(json_array_get(roles, i));
	}
	qsort(v, n, sizeof *v, cmp_binding);
	for (i = 0; i < n; i++) {
		if (rv == 0 && json_array_set(roles, i, v[i]) != 0) {
			rv = -ENOMEM;
		}
		json_decref(v[i]);
	}
	free(v);
	return rv;
}

static bool set_has(const json_t *set, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach((json_t *)set, i, v)
	{
		if (strcmp(json_string_value(v), name) == 0) {
			return true;
		}
	}
	return false;
}

/* Remove from @roles every binding of project @project. */
static void roles_remove_project(json_t *roles, const char *project)
{
	size_t i = 0;

	while (i < json_array_size(roles)) {
		json_t *b = json_array_get(roles, i);
		const char *p =
		    json_string_value(json_object_get(b, "project"));

		if (binding_is(b, "project") && p != NULL &&
		    strcmp(p, project) == 0) {
			json_array_remove(roles, i);
			continue;
		}
		i++;
	}
}

/* Set the server binding of @roles to admin (@admin) or remove it. */
static int roles_set_server_admin(json_t *roles, bool admin)
{
	size_t i = 0;

	while (i < json_array_size(roles)) {
		if (binding_is(json_array_get(roles, i), "server")) {
			json_array_remove(roles, i);
			continue;
		}
		i++;
	}
	if (admin && json_array_append_new(
			 roles, json_pack("{s:s, s:s}", "scope", "server",
					  "role", "admin")) != 0) {
		return -ENOMEM;
	}
	return 0;
}

/* Check @projects (NULL: absent) and make the sorted set of its names in
 * *@set (NULL when absent). */
static int projects_set(const json_t *projects, json_t **set, char *errmsg)
{
	const char **v;
	size_t n;

	*set = NULL;
	if (projects == NULL) {
		return 0;
	}
	if (json_is_null(projects)) {
		*set = json_array();
		return *set != NULL ? 0 : -ENOMEM;
	}
	if (!json_is_array(projects)) {
		goto invalid;
	}
	v = malloc((json_array_size(projects) + 1) * sizeof *v);
	if (v == NULL) {
		return -ENOMEM;
	}
	n = collect(projects, v, 0);
	if (n != json_array_size(projects)) {
		free(v);
		goto invalid;
	}
	*set = sorted_set(v, n);
	free(v);
	return *set != NULL ? 0 : -ENOMEM;

invalid:
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
		    "projects must be an array of strings");
	return CORRAL_EINVALID;
}

int trust_legacy_apply(const json_t *current,
		       const json_t *all_projects,
		       const json_t *restricted,
		       const json_t *projects,
		       json_t **new_roles,
		       char *errmsg)
{
	json_t *cur_projects = NULL;
	json_t *want = NULL;
	json_t *roles = NULL;
	json_t *v;
	bool cur_restricted;
	bool new_restricted;
	size_t i;
	int rv;

	if (restricted != NULL && !json_is_boolean(restricted)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "restricted must be a boolean");
		return CORRAL_EINVALID;
	}
	rv = projects_set(projects, &want, errmsg);
	if (rv != 0) {
		return rv;
	}
	roles = current != NULL ? json_deep_copy(current) : json_array();
	if (roles == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = trust_roles_to_legacy(roles, all_projects, &cur_restricted,
				   &cur_projects);
	if (rv != 0) {
		goto out;
	}
	new_restricted =
	    restricted != NULL ? json_is_true(restricted) : cur_restricted;
	/* projects with restricted false would silently mean admin (LXD
	 * issue 13865): refused, except when an already unrestricted
	 * certificate is sent back unchanged (lxc config trust edit). */
	if (!new_restricted && want != NULL && json_array_size(want) > 0 &&
	    (cur_restricted || !json_equal(want, cur_projects))) {
		corral_errf(
		    errmsg, CORRAL_ERRMSG_SIZE,
		    "projects can only be set on a restricted certificate");
		rv = CORRAL_EINVALID;
		goto out;
	}
	if (want != NULL) {
		bool all = has_scope(roles, "all_projects");

		json_array_foreach(cur_projects, i, v)
		{
			const char *name = json_string_value(v);

			if (set_has(want, name)) {
				continue;
			}
			if (all) {
				corral_errf(
				    errmsg, CORRAL_ERRMSG_SIZE,
				    "project \"%s\" is granted by an all_projects role binding",
				    name);
				rv = CORRAL_EINVALID;
				goto out;
			}
			roles_remove_project(roles, name);
		}
		json_array_foreach(want, i, v)
		{
			if (set_has(cur_projects, json_string_value(v))) {
				continue;
			}
			if (json_array_append_new(
				roles, json_pack("{s:s, s:O, s:s}", "scope",
						 "project", "project", v,
						 "role", "operator")) != 0) {
				rv = -ENOMEM;
				goto out;
			}
		}
	}
	if (new_restricted != cur_restricted) {
		rv = roles_set_server_admin(roles, !new_restricted);
		if (rv != 0) {
			goto out;
		}
	}
	rv = trust_roles_sort(roles);
	if (rv != 0) {
		goto out;
	}
	*new_roles = roles;
	roles = NULL;

out:
	json_decref(roles);
	json_decref(cur_projects);
	json_decref(want);
	return rv;
}

/* ------------------------------------------------------------------------ */
/* Failed-password limiter                                                    */

struct limiter_entry {
	char key[64]; /* the address without port; "" when free */
	uint64_t fails[TRUST_LIMITER_MAX_FAILURES]; /* ring, most recent n */
	unsigned n;
	unsigned head; /* next slot to write */
	uint64_t last; /* time of the most recent failure */
};

/* A linear table: it is only searched on password attempts by untrusted
 * callers, and bounded, so a flood of addresses costs a bounded scan. */
struct trust_limiter {
	struct limiter_entry *entries; /* owned */
	size_t capacity;
	size_t used;
};

int trust_limiter_create(size_t capacity, struct trust_limiter **out)
{
	struct trust_limiter *l;

	if (capacity == 0) {
		capacity = TRUST_LIMITER_CAPACITY;
	}
	l = calloc(1, sizeof *l);
	if (l == NULL) {
		return -ENOMEM;
	}
	l->entries = calloc(capacity, sizeof *l->entries);
	if (l->entries == NULL) {
		free(l);
		return -ENOMEM;
	}
	l->capacity = capacity;
	*out = l;
	return 0;
}

void trust_limiter_destroy(struct trust_limiter *l)
{
	if (l == NULL) {
		return;
	}
	free(l->entries);
	free(l);
}

/* The address part of "ip:port", "[ipv6]:port" or a bare address. */
static void address_key(const char *addr, char key[64])
{
	const char *end;
	size_t len;

	if (addr == NULL) {
		addr = "";
	}
	if (addr[0] == '[') {
		addr++;
		end = strchr(addr, ']');
	} else {
		end = strchr(addr, ':');
		if (end != NULL && strchr(end + 1, ':') != NULL) {
			end = NULL; /* a bare IPv6 address */
		}
	}
	len = end != NULL ? (size_t)(end - addr) : strlen(addr);
	if (len > 63) {
		len = 63;
	}
	memcpy(key, addr, len);
	key[len] = '\0';
	if (key[0] == '\0') {
		snprintf(key, 64, "?");
	}
}

/* Failures of @e within the window ending at @now. */
static unsigned recent_failures(const struct limiter_entry *e, uint64_t now)
{
	unsigned count = 0;
	unsigned i;

	for (i = 0; i < e->n; i++) {
		if (now < e->fails[i] + TRUST_LIMITER_WINDOW_MS) {
			count++;
		}
	}
	return count;
}

static struct limiter_entry *find(const struct trust_limiter *l,
				  const char *key)
{
	size_t i;

	for (i = 0; i < l->capacity; i++) {
		if (l->entries[i].key[0] != '\0' &&
		    strcmp(l->entries[i].key, key) == 0) {
			return &l->entries[i];
		}
	}
	return NULL;
}

bool trust_limiter_blocked(const struct trust_limiter *l,
			   const char *remote_addr,
			   uint64_t now_ms)
{
	const struct limiter_entry *e;
	char key[64];

	address_key(remote_addr, key);
	e = find(l, key);
	return e != NULL &&
	       recent_failures(e, now_ms) >= TRUST_LIMITER_MAX_FAILURES;
}

/* A slot for a new address: a free one, else one whose failures have all
 * left the window, else the one whose last failure is the oldest. */
static struct limiter_entry *take_slot(struct trust_limiter *l, uint64_t now)
{
	struct limiter_entry *oldest = NULL;
	size_t i;

	for (i = 0; i < l->capacity; i++) {
		struct limiter_entry *e = &l->entries[i];

		if (e->key[0] == '\0') {
			l->used++;
			return e;
		}
		if (recent_failures(e, now) == 0) {
			return e;
		}
		if (oldest == NULL || e->last < oldest->last) {
			oldest = e;
		}
	}
	return oldest;
}

void trust_limiter_fail(struct trust_limiter *l,
			const char *remote_addr,
			uint64_t now_ms)
{
	struct limiter_entry *e;
	char key[64];

	address_key(remote_addr, key);
	e = find(l, key);
	if (e == NULL) {
		e = take_slot(l, now_ms);
		if (e == NULL) {
			return;
		}
		memset(e, 0, sizeof *e);
		memcpy(e->key, key, sizeof e->key);
	}
	e->fails[e->head] = now_ms;
	e->head = (e->head + 1) % TRUST_LIMITER_MAX_FAILURES;
	if (e->n < TRUST_LIMITER_MAX_FAILURES) {
		e->n++;
	}
	e->last = now_ms;
}

size_t trust_limiter_size(const struct trust_limiter *l)
{
	return l->used;
}
