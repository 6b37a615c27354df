/* The trust store as the API sees it: an in-memory cache of the identities
 * and their role bindings, keyed by the `trust` generation of the database;
 * the projection of role bindings on LXD 5.0's certificate fields
 * (`restricted`, `projects`) and back; and the per-address limiter of
 * failed trust-password and token attempts.
 *
 * Everything here except api_trust_reload() is pure: no I/O, no loop, so
 * the unit tests drive it directly. Role bindings are jansson arrays shaped
 * as state.h describes them: {"scope", "project" (project scope only),
 * "role"}. */
#ifndef CORRAL_API_TRUST_H
#define CORRAL_API_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct api;

/* ------------------------------------------------------------------------ */
/* Cache                                                                      */

/* One cached identity. */
struct trust_identity {
	char fingerprint[65];
	char type[16];               /* "client", "server" or "metrics" */
	char *name;                  /* owned */
	json_t *roles;               /* owned reference: the role bindings */
	bool server_admin;           /* has the (server, admin) binding */
	struct trust_identity *next; /* internal: hash chain */
};

struct trust_cache;
struct trust_limiter;

/* Allocate an empty cache (generation -1, so any snapshot replaces it) with
 * its password limiter. Returns 0 or -ENOMEM. */
int trust_cache_create(struct trust_cache **out);

/* Free @c and everything it owns. Accepts NULL. */
void trust_cache_destroy(struct trust_cache *c);

/* Replace the content of @c by the identities of @identities (an array as
 * state_trust_snapshot() returns it; borrowed, nothing is kept) read at
 * @generation. All or nothing: on error the previous content stays.
 * Pointers returned by trust_cache_lookup() before a successful replace
 * become invalid. Returns 0, -ENOMEM, or -EINVAL when @identities is not an
 * array or an entry lacks a fingerprint (then @errmsg, CORRAL_ERRMSG_SIZE
 * bytes or NULL, says which). */
int trust_cache_replace(struct trust_cache *c,
			const json_t *identities,
			int64_t generation,
			char *errmsg);

/* The identity with fingerprint @fp (exact, lowercase), or NULL. O(1). The
 * result is borrowed from @c until its next successful replace. */
const struct trust_identity *trust_cache_lookup(const struct trust_cache *c,
						const char *fp);

/* The generation of the content of @c; -1 before the first replace. */
int64_t trust_cache_generation(const struct trust_cache *c);

/* The number of cached identities. */
size_t trust_cache_size(const struct trust_cache *c);

/* The failed-password limiter of this member (borrowed from @c; it lives
 * as long as @c and survives replaces). */
struct trust_limiter *trust_cache_limiter(struct trust_cache *c);

/* Read the trust snapshot off the loop and replace the cache of @a when the
 * snapshot's generation is newer than the cached one; creates the cache if
 * @a has none yet. Call it after every committed trust write and once when
 * the database is ready. Failures are logged. Defined in
 * endpoints_certificates.c. */
void api_trust_reload(struct api *a);

/* ------------------------------------------------------------------------ */
/* LXD 5.0 projection (reference/rbac-model.md section 4)                     */

/* Whether @roles (borrowed, may be NULL) holds the (server, admin)
 * binding: LXD 5.0's unrestricted certificate. */
bool trust_roles_server_admin(const json_t *roles);

/* Project @roles (borrowed) on LXD 5.0's fields: *@restricted is false
 * exactly when the (server, admin) binding is present; *@projects receives
 * a new sorted array of the distinct projects with any project binding,
 * plus every name of @all_projects (an array of strings, borrowed; NULL
 * counts as empty) when an all_projects binding exists. Returns 0, -ENOMEM
 * or -EINVAL when @roles is not an array. */
int trust_roles_to_legacy(const json_t *roles,
			  const json_t *all_projects,
			  bool *restricted,
			  json_t **projects);

/* Apply an LXD 5.0 edit of `restricted` and `projects` to @current (the
 * identity's bindings, borrowed) as a diff, and put the resulting bindings
 * in *@new_roles (a new array in canonical order: server, all_projects,
 * projects by name). @restricted is a JSON boolean or NULL (absent:
 * unchanged); @projects an array of strings, JSON null (no projects) or
 * NULL (absent: unchanged). @all_projects as for trust_roles_to_legacy().
 *
 * Projects added get an operator binding; projects removed lose all their
 * bindings; the others keep their exact roles. restricted true -> false
 * makes the server binding (server, admin); false -> true removes it.
 * Errors (CORRAL_EINVALID with @errmsg filled, CORRAL_ERRMSG_SIZE bytes):
 * bad shapes; "projects can only be set on a restricted certificate" when
 * the certificate stays or becomes unrestricted and @projects is non-empty
 * and differs from the current projection (sending back what GET showed is
 * accepted); removing a project that an all_projects binding covers. Also
 * -ENOMEM. */
int trust_legacy_apply(const json_t *current,
		       const json_t *all_projects,
		       const json_t *restricted,
		       const json_t *projects,
		       json_t **new_roles,
		       char *errmsg);

/* Sort the bindings of @roles in place in canonical order. Returns 0,
 * -ENOMEM or -EINVAL when @roles is not an array. */
int trust_roles_sort(json_t *roles);

/* ------------------------------------------------------------------------ */
/* Failed-password limiter                                                    */

/* After TRUST_LIMITER_MAX_FAILURES failures within TRUST_LIMITER_WINDOW_MS
 * from one source address, that address is blocked until the oldest of
 * those failures leaves the window: attempts are refused without checking
 * the password, and refused attempts do not extend the block. */
#define TRUST_LIMITER_MAX_FAILURES 5
#define TRUST_LIMITER_WINDOW_MS 60000
#define TRUST_LIMITER_CAPACITY 4096

/* Allocate a limiter tracking at most @capacity addresses (0 means
 * TRUST_LIMITER_CAPACITY); when full, the address whose last failure is the
 * oldest is forgotten. Returns 0 or -ENOMEM. */
int trust_limiter_create(size_t capacity, struct trust_limiter **out);

/* Free @l. Accepts NULL. */
void trust_limiter_destroy(struct trust_limiter *l);

/* Whether attempts from @remote_addr ("ip:port", "[ipv6]:port" or a bare
 * address; only the address counts, not the port) are blocked at @now_ms
 * (any monotonic clock in milliseconds). */
bool trust_limiter_blocked(const struct trust_limiter *l,
			   const char *remote_addr,
			   uint64_t now_ms);

/* Record a failed attempt from @remote_addr at @now_ms. */
void trust_limiter_fail(struct trust_limiter *l,
			const char *remote_addr,
			uint64_t now_ms);

/* The number of addresses tracked. */
size_t trust_limiter_size(const struct trust_limiter *l);

#endif /* CORRAL_API_TRUST_H */
