/* /1.0/certificates: LXD 5.0's trust store API over corral's identities and
 * role bindings (reference/lxd-client-compat.md section 3, rbac-model.md
 * section 4).
 *
 * Certificates are shown with LXD 5.0's fields, `restricted` and
 * `projects` being the projection of the role bindings, plus a read-only
 * `roles` array; edits of the legacy fields are applied as a diff
 * (trust_legacy_apply()). Untrusted callers may only POST, with the trust
 * password or a one-time token; failures are rate-limited per source
 * address and logged without the secret. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <corral/cert.h>
#include <corral/log.h>
#include <corral/secret.h>

#include "api.h"
#include "events.h"
#include "authz.h"
#include "operations.h"
#include "trust.h"
#include "validate.h"

#define CERT_URL "/1.0/certificates/"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */

/* The trust cache of @a, created on first use. NULL when out of memory. */
static struct trust_cache *trust_of(struct api *a)
{
	if (a->trust == NULL && trust_cache_create(&a->trust) != 0) {
		return NULL;
	}
	return a->trust;
}

/* Whether the caller is a server admin: the Unix socket, or a TLS client
 * with the (server, admin) binding. */
static bool caller_admin(struct api_req *r)
{
	/* The authorizer's answer: a metrics certificate is never an admin,
	 * whatever its legacy fields say. */
	return r->trusted && api_caller_admin(r);
}

static void sha256_hex(const char *text, char out[65])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	unsigned i;

	SHA256((const unsigned char *)text, strlen(text), digest);
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	}
}

/* A parsed, policy-checked certificate. */
struct cert_info {
	char *pem; /* owned */
	char fp[65];
	char cn[128];
};

static void cert_info_clear(struct cert_info *ci)
{
	free(ci->pem);
	ci->pem = NULL;
}

/* Fill @ci from @x509 (an X509 *, borrowed): PEM, fingerprint, common name,
 * after checking corral's certificate policy. Returns 0, -ENOMEM or
 * CORRAL_EINVALID with @errmsg filled. */
static int cert_info_from_x509(void *x509, struct cert_info *ci, char *errmsg)
{
	BIO *bio;
	char *data;
	long len;
	int rv;

	memset(ci, 0, sizeof *ci);
	rv = cert_check_policy(x509, errmsg);
	if (rv != 0) {
		return rv == -EINVAL ? CORRAL_EINVALID : rv;
	}
	if (cert_fingerprint_x509(x509, ci->fp) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "cannot compute the certificate fingerprint");
		return CORRAL_EINVALID;
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x509),
				      NID_commonName, ci->cn,
				      (int)sizeof ci->cn) < 0) {
		ci->cn[0] = '\0';
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, x509) != 1) {
		BIO_free(bio);
		return -ENOMEM;
	}
	len = BIO_get_mem_data(bio, &data);
	ci->pem = len > 0 ? strndup(data, (size_t)len) : NULL;
	BIO_free(bio);
	return ci->pem != NULL ? 0 : -ENOMEM;
}

/* Fill @ci from @text: base64 DER (whitespace tolerated, as pylxd sends it)
 * or PEM. */
static int cert_info_from_text(const char *text,
			       struct cert_info *ci,
			       char *errmsg)
{
	X509 *x509;
	BIO *bio;
	char *pem;
	int rv;

	memset(ci, 0, sizeof *ci);
	rv = cert_pem_from_base64_der(text, strlen(text), &pem);
	if (rv == -ENOMEM) {
		return rv;
	}
	if (rv != 0) {
		corral_errf(
		    errmsg, CORRAL_ERRMSG_SIZE,
		    "invalid certificate: not one base64 DER or PEM certificate");
		return CORRAL_EINVALID;
	}
	bio = BIO_new_mem_buf(pem, -1);
	x509 = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	free(pem);
	if (x509 == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "invalid certificate");
		return CORRAL_EINVALID;
	}
	rv = cert_info_from_x509(x509, ci, errmsg);
	X509_free(x509);
	return rv;
}

/* An identity as LXD 5.0 shows a certificate, plus `roles` and
 * `description`. @names: every project name (for all_projects bindings). */
static json_t *to_lxd(json_t *identity, json_t *names)
{
	json_t *projects;
	bool restricted;

	if (trust_roles_to_legacy(json_object_get(identity, "roles"), names,
				  &restricted, &projects) != 0) {
		return NULL;
	}
	return json_pack(
	    "{s:O, s:O, s:b, s:o, s:O, s:O, s:O, s:O}", "name",
	    json_object_get(identity, "name"), "type",
	    json_object_get(identity, "type"), "restricted", restricted,
	    "projects", projects, "certificate",
	    json_object_get(identity, "certificate"), "fingerprint",
	    json_object_get(identity, "fingerprint"), "description",
	    json_object_get(identity, "description"), "roles",
	    json_object_get(identity, "roles"));
}

/* ETag of a certificate: over the fields `lxc config trust edit` sends. */
static void cert_etag(json_t *lxd, char etag[65])
{
	json_t *edit = json_pack(
	    "{s:O, s:O, s:O, s:O, s:O}", "name", json_object_get(lxd, "name"),
	    "type", json_object_get(lxd, "type"), "restricted",
	    json_object_get(lxd, "restricted"), "projects",
	    json_object_get(lxd, "projects"), "certificate",
	    json_object_get(lxd, "certificate"));

	api_etag(edit, etag);
	json_decref(edit);
}

/* A new call for @r; certificates are not per project, so the project
 * query parameter is ignored (and never added to URLs). */
static struct api_db_call *cert_call_new(struct api_req *r)
{
	struct api_db_call *c = api_db_call_new(r);

	if (c != NULL) {
		snprintf(c->project, sizeof c->project, "default");
	}
	return c;
}

/* Answer a failed trust write. */
static void reply_failure(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;

	if (rv == CORRAL_EEXIST) {
		api_reply_error(r, 409, "Certificate already in trust store");
		return;
	}
	snprintf(r->errmsg, sizeof r->errmsg, "%s", c->errmsg);
	api_reply_code(r, rv);
}

/* Reply of every trust write: the usual answer, then reload the cache. */
static void write_reply(struct api_db_call *c, int rv)
{
	struct api *a = c->r->api;
	json_t *out;

	if (rv != 0) {
		reply_failure(c, rv);
		return;
	}
	/* The new trust store is in force before the caller hears back: a
	 * request on any connection after this reply sees it. */
	if (c->trust_snapshot != NULL) {
		api_trust_install(a, c->trust_snapshot, c->trust_gen);
	} else {
		api_trust_reload(a);
	}
	out = c->out;
	c->out = NULL;
	api_reply_sync(c->r, c->status != 0 ? c->status : 200, out,
		       c->location[0] != '\0' ? c->location : NULL, NULL);
}

/* Run @fn, then read the trust store as the same transaction left it. */
static int snapshot_after(struct state_tx *tx,
			  struct api_db_call *c,
			  api_db_fn fn)
{
	int rv = fn(tx, c);

	if (rv != 0) {
		return rv;
	}
	return state_trust_snapshot(tx, &c->trust_snapshot, &c->trust_gen);
}

static int update_work(struct state_tx *tx, struct api_db_call *c);
static int delete_work(struct state_tx *tx, struct api_db_call *c);
static int add_work(struct state_tx *tx, struct api_db_call *c);
static int token_add_work(struct state_tx *tx, struct api_db_call *c);

static int update_snap_work(struct state_tx *tx, struct api_db_call *c)
{
	return snapshot_after(tx, c, update_work);
}

static int delete_snap_work(struct state_tx *tx, struct api_db_call *c)
{
	return snapshot_after(tx, c, delete_work);
}

static int add_snap_work(struct state_tx *tx, struct api_db_call *c)
{
	return snapshot_after(tx, c, add_work);
}

static int token_add_snap_work(struct state_tx *tx, struct api_db_call *c)
{
	return snapshot_after(tx, c, token_add_work);
}

/* ------------------------------------------------------------------------ */
/* Cache reload                                                               */

struct reload_ctx {
	struct api *a;
	json_t *identities;
	int64_t generation;
};

static int reload_work(struct state_tx *tx, void *arg)
{
	struct reload_ctx *ctx = arg;

	return state_trust_snapshot(tx, &ctx->identities, &ctx->generation);
}

static void reload_done(void *arg, int rv, const char *errmsg)
{
	struct reload_ctx *ctx = arg;

	if (rv != 0) {
		log_error("msg=\"load trust store\" error=\"%s\"", errmsg);
	} else {
		api_trust_install(ctx->a, ctx->identities, ctx->generation);
	}
	json_decref(ctx->identities);
	free(ctx);
}

void api_trust_reload(struct api *a)
{
	struct reload_ctx *ctx = calloc(1, sizeof *ctx);
	int rv;

	if (ctx == NULL) {
		log_error("msg=\"load trust store\" error=\"out of memory\"");
		return;
	}
	ctx->a = a;
	rv = state_submit(a->state, false, reload_work, reload_done, ctx);
	if (rv != 0) {
		log_error("msg=\"load trust store\" error=\"%s\"",
			  corral_strerror(rv));
		free(ctx);
	}
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/certificates                                                      */

static int list_work(struct state_tx *tx, struct api_db_call *c)
{
	const char *only = json_string_value(json_object_get(c->in, "only"));
	json_t *identities;
	json_t *names = NULL;
	json_t *identity;
	size_t i;
	int rv;

	rv = state_identity_list(tx, &identities);
	if (rv == 0 && !c->urls) {
		rv = state_trust_project_names(tx, &names);
	}
	if (rv != 0) {
		json_decref(identities);
		return rv;
	}
	c->out = json_array();
	if (c->out == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	json_array_foreach(identities, i, identity)
	{
		json_t *fp = json_object_get(identity, "fingerprint");
		json_t *item;

		if (only != NULL && strcmp(json_string_value(fp), only) != 0) {
			continue;
		}
		item = c->urls ? json_incref(fp) : to_lxd(identity, names);
		if (item == NULL || json_array_append_new(c->out, item) != 0) {
			rv = -ENOMEM;
			goto out;
		}
	}
out:
	if (rv == -ENOMEM) {
		corral_errf(tx->errmsg, sizeof tx->errmsg, "out of memory");
	}
	json_decref(names);
	json_decref(identities);
	return rv;
}

/* Whether the caller may see the whole trust store (server auditor+). */
static bool caller_viewer(struct api_req *r)
{
	struct authz_subject subject;
	struct authz_object store = { .type = AUTHZ_CERTIFICATE };

	if (!r->trusted) {
		return false;
	}
	api_subject(r, &subject);
	return api_authorize(&subject, AUTHZ_SERVER_VIEW, &store) == 0;
}

/* Below server admin a caller acts on its own certificate only; it sees
 * every certificate when it is a server viewer (then acting on another one
 * is 403, not 404). Reads by a viewer are not restricted. */
static int restrict_to_caller(struct api_req *r,
			      struct api_db_call *c,
			      bool write)
{
	bool viewer;

	if (caller_admin(r)) {
		return 0;
	}
	viewer = caller_viewer(r);
	if (viewer && !write) {
		return 0;
	}
	c->in =
	    json_pack("{s:s, s:b}", "only", r->fingerprint, "viewer", viewer);
	return c->in != NULL ? 0 : -ENOMEM;
}

static void list_certificates(struct api_req *r)
{
	struct api_db_call *c;
	char recursion[8];

	if (!r->trusted) {
		api_reply_error(r, 403, "not authorized");
		return;
	}
	c = cert_call_new(r);
	if (c == NULL) {
		return;
	}
	if (api_query(r, "recursion", recursion, sizeof recursion) < 0 ||
	    strcmp(recursion, "0") == 0) {
		c->urls = true;
		snprintf(c->url_prefix, sizeof c->url_prefix, CERT_URL);
	}
	if (restrict_to_caller(r, c, false) != 0) {
		free(c);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	/* Whoever sees the whole store sees the same list: served from
	 * memory until the next write or trust store install. */
	if (c->in == NULL) {
		api_db_list_cached(c, "/1.0/certificates", list_work);
		return;
	}
	api_db_run(c, false, list_work);
}

/* ------------------------------------------------------------------------ */
/* GET /1.0/certificates/{fp}                                                 */

/* Load the certificate @c->name names, as LXD shows it, with its ETag;
 * CORRAL_ENOTFOUND when the caller may not see it. */
static int load_visible(struct state_tx *tx,
			struct api_db_call *c,
			json_t **identity,
			json_t **names,
			json_t **lxd)
{
	const char *only = json_string_value(json_object_get(c->in, "only"));
	int rv;

	*names = NULL;
	*lxd = NULL;
	rv = state_identity_get(tx, c->name, identity);
	if (rv != 0) {
		return rv;
	}
	if (only != NULL && strcmp(only, json_string_value(json_object_get(
					     *identity, "fingerprint"))) != 0) {
		json_decref(*identity);
		*identity = NULL;
		if (json_is_true(json_object_get(c->in, "viewer"))) {
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "not authorized");
			return CORRAL_EFORBIDDEN;
		}
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "certificate not found");
		return CORRAL_ENOTFOUND;
	}
	rv = state_trust_project_names(tx, names);
	if (rv == 0) {
		*lxd = to_lxd(*identity, *names);
		if (*lxd == NULL) {
			rv = -ENOMEM;
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "out of memory");
		}
	}
	if (rv != 0) {
		json_decref(*names);
		json_decref(*identity);
		*names = NULL;
		*identity = NULL;
		return rv;
	}
	cert_etag(*lxd, c->etag);
	return 0;
}

static int get_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *identity;
	json_t *names;
	int rv;

	rv = load_visible(tx, c, &identity, &names, &c->out);
	if (rv == 0) {
		json_decref(identity);
		json_decref(names);
	}
	return rv;
}

static void get_certificate(struct api_req *r)
{
	struct api_db_call *c;

	if (!r->trusted) {
		api_reply_error(r, 403, "not authorized");
		return;
	}
	c = cert_call_new(r);
	if (c == NULL) {
		return;
	}
	if (restrict_to_caller(r, c, false) != 0) {
		free(c);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	api_db_run(c, false, get_work);
}

/* ------------------------------------------------------------------------ */
/* PUT and PATCH /1.0/certificates/{fp}                                       */

/* Whether field @key of @body is absent or equal to @current's. */
static bool unchanged(json_t *body, json_t *current, const char *key)
{
	json_t *v = json_object_get(body, key);

	return v == NULL || json_equal(v, json_object_get(current, key));
}

/* c->in: {"body": request body, "pem": new certificate or absent,
 * "only": caller fingerprint for non-admins}. */
static int update_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *body = json_object_get(c->in, "body");
	json_t *pem = json_object_get(c->in, "pem");
	json_t *identity = NULL;
	json_t *names = NULL;
	json_t *lxd = NULL;
	json_t *fields = NULL;
	json_t *roles = NULL;
	json_t *projects = json_object_get(body, "projects");
	const char *type = json_string_value(json_object_get(body, "type"));
	const char *cur_type;
	char etag[65];
	int rv;

	rv = load_visible(tx, c, &identity, &names, &lxd);
	if (rv != 0) {
		return rv;
	}
	memcpy(etag, c->etag, sizeof etag);
	c->etag[0] = '\0';
	if (c->if_match[0] != '\0' && strcmp(c->if_match, etag) != 0) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "ETag doesn't match: the certificate changed");
		rv = CORRAL_EPRECONDITION;
		goto out;
	}
	if (json_object_get(c->in, "only") != NULL &&
	    (!unchanged(body, lxd, "name") || !unchanged(body, lxd, "type") ||
	     !unchanged(body, lxd, "restricted") ||
	     !unchanged(body, lxd, "projects") ||
	     !unchanged(body, lxd, "description"))) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "a restricted client may only renew its own certificate");
		rv = CORRAL_EFORBIDDEN;
		goto out;
	}
	cur_type = json_string_value(json_object_get(identity, "type"));
	if (type != NULL && strcmp(type, cur_type) != 0 &&
	    (strcmp(cur_type, "server") == 0 || strcmp(type, "server") == 0)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg,
			    "the type of a server certificate cannot change");
		rv = CORRAL_EINVALID;
		goto out;
	}
	rv = trust_legacy_apply(json_object_get(identity, "roles"), names,
				json_object_get(body, "restricted"), projects,
				&roles, tx->errmsg);
	if (rv != 0) {
		goto out;
	}
	fields = json_object();
	if (fields == NULL ||
	    (json_object_get(body, "name") != NULL &&
	     json_object_set(fields, "name", json_object_get(body, "name")) !=
		 0) ||
	    (json_object_get(body, "description") != NULL &&
	     json_object_set(fields, "description",
			     json_object_get(body, "description")) != 0) ||
	    (type != NULL &&
	     json_object_set(fields, "type", json_object_get(body, "type")) !=
		 0) ||
	    (pem != NULL && json_object_set(fields, "certificate", pem) != 0) ||
	    (!json_equal(roles, json_object_get(identity, "roles")) &&
	     json_object_set(fields, "roles", roles) != 0)) {
		corral_errf(tx->errmsg, sizeof tx->errmsg, "out of memory");
		rv = -ENOMEM;
		goto out;
	}
	rv = state_identity_update(
	    tx, json_string_value(json_object_get(identity, "fingerprint")),
	    fields);
	if (rv == 0) {
		c->out = json_object();
	}
out:
	json_decref(fields);
	json_decref(roles);
	json_decref(lxd);
	json_decref(names);
	json_decref(identity);
	return rv;
}

/* Check the shape of an edit: answers 400 and returns false when bad. */
static bool check_edit_body(struct api_req *r, json_t *body)
{
	static const char *const strings[] = { "name", "type", "certificate",
					       "description" };
	json_t *v;
	size_t i;

	for (i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		v = json_object_get(body, strings[i]);
		if (v != NULL && !json_is_string(v)) {
			api_reply_error(
			    r, 400, "invalid field \"%s\": must be a string",
			    strings[i]);
			return false;
		}
	}
	v = json_object_get(body, "type");
	if (v != NULL && strcmp(json_string_value(v), "client") != 0 &&
	    strcmp(json_string_value(v), "metrics") != 0 &&
	    strcmp(json_string_value(v), "server") != 0) {
		api_reply_error(r, 400, "invalid certificate type \"%s\"",
				json_string_value(v));
		return false;
	}
	v = json_object_get(body, "restricted");
	if (v != NULL && !json_is_boolean(v)) {
		api_reply_error(
		    r, 400, "invalid field \"restricted\": must be a boolean");
		return false;
	}
	return true;
}

static void update_certificate(struct api_req *r)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	struct cert_info ci;
	struct api_db_call *c;
	const char *text;
	json_t *body;
	int rv;

	if (!r->trusted) {
		api_reply_error(r, 403, "not authorized");
		return;
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	if (!check_edit_body(r, body)) {
		json_decref(body);
		return;
	}
	/* An empty certificate keeps the current one, as in LXD. */
	text = json_string_value(json_object_get(body, "certificate"));
	if (text != NULL && text[0] == '\0') {
		json_object_del(body, "certificate");
		text = NULL;
	}
	memset(&ci, 0, sizeof ci);
	if (text != NULL) {
		rv = cert_info_from_text(text, &ci, errmsg);
		if (rv != 0) {
			json_decref(body);
			api_reply_error(
			    r, rv == -ENOMEM ? 500 : 400, "%s",
			    rv == -ENOMEM ? "out of memory" : errmsg);
			return;
		}
	}
	c = cert_call_new(r);
	if (c == NULL) {
		json_decref(body);
		cert_info_clear(&ci);
		return;
	}
	c->in = json_pack("{s:o}", "body", body);
	if (c->in == NULL ||
	    (ci.pem != NULL &&
	     json_object_set_new(c->in, "pem", json_string(ci.pem)) != 0) ||
	    (!caller_admin(r) &&
	     (json_object_set_new(c->in, "only", json_string(r->fingerprint)) !=
		  0 ||
	      json_object_set_new(c->in, "viewer",
				  json_boolean(caller_viewer(r))) != 0))) {
		cert_info_clear(&ci);
		json_decref(c->in);
		free(c);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	cert_info_clear(&ci);
	c->reply = write_reply;
	api_db_run(c, true, update_snap_work);
}

/* ------------------------------------------------------------------------ */
/* DELETE /1.0/certificates/{fp}                                              */

static int delete_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *identity;
	json_t *names;
	json_t *lxd;
	int rv;

	rv = load_visible(tx, c, &identity, &names, &lxd);
	if (rv != 0) {
		return rv;
	}
	c->etag[0] = '\0';
	if (strcmp(json_string_value(json_object_get(identity, "type")),
		   "server") == 0) {
		corral_errf(
		    tx->errmsg, sizeof tx->errmsg,
		    "cannot delete a server certificate of a cluster member");
		rv = CORRAL_EINVALID;
	} else {
		rv =
		    state_identity_delete(tx, json_string_value(json_object_get(
						  identity, "fingerprint")));
	}
	if (rv == 0) {
		c->out = json_object();
	}
	json_decref(lxd);
	json_decref(names);
	json_decref(identity);
	return rv;
}

static void delete_certificate(struct api_req *r)
{
	struct api_db_call *c;

	if (!r->trusted) {
		api_reply_error(r, 403, "not authorized");
		return;
	}
	c = cert_call_new(r);
	if (c == NULL) {
		return;
	}
	/* A restricted client may remove its own certificate only. */
	if (restrict_to_caller(r, c, true) != 0) {
		free(c);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	c->reply = write_reply;
	api_db_run(c, true, delete_snap_work);
}

/* ------------------------------------------------------------------------ */
/* POST /1.0/certificates                                                     */

/* The fields of a POST, checked. Strings are borrowed from the body. */
struct post_req {
	const char *name;
	const char *type;
	const char *certificate;
	const char *password;
	json_t *restricted; /* borrowed, or NULL */
	json_t *projects;   /* borrowed, or NULL */
	bool token;
};

/* Check the body of a POST: answers 400 and returns false when bad. */
static bool parse_post(struct api_req *r, json_t *body, struct post_req *p)
{
	static const char *const strings[] = { "name", "type", "certificate",
					       "password" };
	const char **dst[] = { &p->name, &p->type, &p->certificate,
			       &p->password };
	json_t *v;
	size_t i;

	memset(p, 0, sizeof *p);
	for (i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		v = json_object_get(body, strings[i]);
		if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
			api_reply_error(
			    r, 400, "invalid field \"%s\": must be a string",
			    strings[i]);
			return false;
		}
		*dst[i] =
		    json_string_value(v) != NULL ? json_string_value(v) : "";
	}
	if (p->type[0] == '\0') {
		p->type = "client";
	}
	if (strcmp(p->type, "client") != 0 && strcmp(p->type, "metrics") != 0) {
		api_reply_error(r, 400, "invalid certificate type \"%s\"",
				p->type);
		return false;
	}
	v = json_object_get(body, "restricted");
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
		api_reply_error(
		    r, 400, "invalid field \"restricted\": must be a boolean");
		return false;
	}
	p->restricted = json_is_boolean(v) ? v : NULL;
	p->projects = json_object_get(body, "projects");
	v = json_object_get(body, "token");
	if (v != NULL && !json_is_null(v) && !json_is_boolean(v)) {
		api_reply_error(r, 400,
				"invalid field \"token\": must be a boolean");
		return false;
	}
	p->token = json_is_true(v);
	return true;
}

/* The bindings a POST asks for: LXD's default is unrestricted. Answers 400
 * and returns NULL when the combination is refused. */
static json_t *post_roles(struct api_req *r, const struct post_req *p)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	json_t *roles = NULL;
	json_t *none = json_array();
	int rv;

	if (none == NULL) {
		api_reply_error(r, 500, "out of memory");
		return NULL;
	}
	rv = trust_legacy_apply(
	    none, NULL, p->restricted != NULL ? p->restricted : json_false(),
	    p->projects, &roles, errmsg);
	json_decref(none);
	if (rv != 0) {
		api_reply_error(r, rv == -ENOMEM ? 500 : 400, "%s",
				rv == -ENOMEM ? "out of memory" : errmsg);
		return NULL;
	}
	return roles;
}

/* A new identity object for state_identity_create(); @roles stolen. */
static json_t *identity_new(const struct cert_info *ci,
			    const char *name,
			    const char *type,
			    json_t *roles)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "fingerprint",
			 ci->fp, "type", type, "name",
			 name[0] != '\0' ? name : ci->cn, "certificate",
			 ci->pem, "description", "", "roles", roles);
}

static int add_work(struct state_tx *tx, struct api_db_call *c)
{
	return state_identity_create(tx, json_object_get(c->in, "identity"));
}

/* Prepare the call that adds the certificate of @ci; c->in gets
 * {"identity": ...}. Answers and returns NULL on error. */
static struct api_db_call *add_call_new(struct api_req *r,
					const struct cert_info *ci,
					json_t *identity)
{
	struct api_db_call *c;

	if (identity == NULL) {
		api_reply_error(r, 500, "out of memory");
		return NULL;
	}
	c = cert_call_new(r);
	if (c == NULL) {
		json_decref(identity);
		return NULL;
	}
	c->in = json_pack("{s:o}", "identity", identity);
	if (c->in == NULL) {
		free(c);
		api_reply_error(r, 500, "out of memory");
		return NULL;
	}
	c->status = 201;
	snprintf(c->location, sizeof c->location, CERT_URL "%s", ci->fp);
	c->reply = write_reply;
	return c;
}

/* The certificate a POST adds: the `certificate` field, else the caller's
 * TLS certificate. Answers and returns false on error. */
static bool post_cert(struct api_req *r,
		      const struct post_req *p,
		      struct cert_info *ci)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	int rv;

	if (p->certificate[0] != '\0') {
		rv = cert_info_from_text(p->certificate, ci, errmsg);
	} else if (r->tls && r->peer_x509 != NULL) {
		rv = cert_info_from_x509(r->peer_x509, ci, errmsg);
	} else {
		api_reply_error(
		    r, 400,
		    r->tls
			? "no client certificate provided"
			: "no certificate given, and the Unix socket has no client certificate");
		return false;
	}
	if (rv != 0) {
		api_reply_error(r, rv == -ENOMEM ? 500 : 400, "%s",
				rv == -ENOMEM ? "out of memory" : errmsg);
		return false;
	}
	return true;
}

/* (a), (b): a trusted admin adds a certificate. */
static void admin_add(struct api_req *r, const struct post_req *p)
{
	struct api_db_call *c;
	struct cert_info ci;
	json_t *roles;

	if (!post_cert(r, p, &ci)) {
		return;
	}
	roles = post_roles(r, p);
	if (roles == NULL) {
		cert_info_clear(&ci);
		return;
	}
	c = add_call_new(r, &ci, identity_new(&ci, p->name, p->type, roles));
	cert_info_clear(&ci);
	if (c != NULL) {
		api_db_run(c, true, add_snap_work);
	}
}

/* ---- untrusted callers: trust password or token ---- */

/* Decode standard or URL-safe base64, skipping whitespace, padding
 * optional. Returns a malloc'd NUL-terminated buffer, or NULL. */
static char *base64_decode(const char *in, size_t *out_len)
{
	size_t len = strlen(in);
	char *out = malloc(len * 3 / 4 + 4);
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;
	size_t i;

	if (out == NULL) {
		return NULL;
	}
	for (i = 0; i < len; i++) {
		char ch = in[i];
		int v;

		if (ch >= 'A' && ch <= 'Z') {
			v = ch - 'A';
		} else if (ch >= 'a' && ch <= 'z') {
			v = ch - 'a' + 26;
		} else if (ch >= '0' && ch <= '9') {
			v = ch - '0' + 52;
		} else if (ch == '+' || ch == '-') {
			v = 62;
		} else if (ch == '/' || ch == '_') {
			v = 63;
		} else if (ch == '=' || ch == ' ' || ch == '\n' || ch == '\r' ||
			   ch == '\t') {
			continue;
		} else {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

/* The secret of a trust token (base64 of LXD's CertificateAddToken JSON)
 * in @password, hashed into @hash. Returns false when @password is not a
 * token. */
static bool token_secret_hash(const char *password, char hash[65])
{
	const char *secret;
	json_t *token;
	size_t len;
	char *raw;

	raw = base64_decode(password, &len);
	if (raw == NULL) {
		return false;
	}
	token = json_loadb(raw, len, 0, NULL);
	free(raw);
	secret = json_string_value(json_object_get(token, "secret"));
	if (secret == NULL || secret[0] == '\0') {
		json_decref(token);
		return false;
	}
	sha256_hex(secret, hash);
	json_decref(token);
	return true;
}

/* Record a failed attempt of an untrusted caller and answer 403. */
static void reply_refused(struct api_req *r, const char *what)
{
	struct trust_cache *cache = trust_of(r->api);

	if (cache != NULL) {
		trust_limiter_fail(trust_cache_limiter(cache), r->remote_addr,
				   uv_now(r->api->loop));
	}
	log_warn(
	    "msg=\"certificate add refused\" reason=\"%s\" remote=%s "
	    "fingerprint=%s",
	    what, r->remote_addr,
	    r->fingerprint[0] != '\0' ? r->fingerprint : "-");
	/* An audit trail for failed password and token attempts (never the
	 * secret itself). */
	{
		json_t *meta = json_pack(
		    "{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "action",
		    "certificate-add-refused", "source", "/1.0/certificates",
		    "reason", what, "requestor", "username", r->fingerprint,
		    "protocol", r->tls ? "tls" : "unix", "address",
		    r->remote_addr);
		if (meta != NULL) {
			events_send(r->api, "lifecycle", "", meta);
			json_decref(meta);
		}
	}
	api_reply_error(r, 403, "not authorized");
}

/* Finish the token operation whose secret hashes to @hash: a used token
 * stops being listed at once. */
static void token_ops_finish(struct api *a, const char *hash)
{
	struct api_op *op;
	struct api_op *next;
	char h[65];

	if (a->ops == NULL) {
		return;
	}
	for (op = a->ops->head; op != NULL; op = next) {
		const char *secret =
		    json_string_value(json_object_get(op->metadata, "secret"));

		next = op->next;
		if (op->cls != OPS_CLASS_TOKEN ||
		    ops_status_final(op->status_code) || secret == NULL ||
		    json_object_get(op->metadata, "request") == NULL) {
			continue;
		}
		sha256_hex(secret, h);
		if (strcmp(h, hash) == 0) {
			ops_finish(op, OPS_STATUS_SUCCESS, NULL, NULL);
		}
	}
}

/* c->in: {"identity": ..., "hash": token secret hash}. Redeem and add in one
 * transaction, with the name, type and roles stored in the token. */
static int token_add_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *identity = json_object_get(c->in, "identity");
	const char *hash = json_string_value(json_object_get(c->in, "hash"));
	json_t *token;
	json_t *data;
	const char *name;
	const char *type;
	int rv;

	rv = state_token_redeem(tx, "trust", hash, (int64_t)time(NULL), &token);
	if (rv == CORRAL_ENOTFOUND) {
		return CORRAL_EFORBIDDEN;
	}
	if (rv != 0) {
		return rv;
	}
	data = json_object_get(token, "data");
	/* Who issued it: told once the use committed (token_add_reply()). */
	snprintf(c->aux, sizeof c->aux, "%s",
		 json_string_value(json_object_get(data, "member")) != NULL
		     ? json_string_value(json_object_get(data, "member"))
		     : "");
	snprintf(c->aux2, sizeof c->aux2, "%s",
		 json_string_value(json_object_get(data, "operation")) != NULL
		     ? json_string_value(json_object_get(data, "operation"))
		     : "");
	name = json_string_value(json_object_get(token, "name"));
	type = json_string_value(json_object_get(data, "type"));
	if ((name != NULL && name[0] != '\0' &&
	     json_object_set(identity, "name",
			     json_object_get(token, "name")) != 0) ||
	    json_object_set_new(identity, "type",
				json_string(type != NULL ? type : "client")) !=
		0 ||
	    json_object_set(identity, "roles",
			    json_is_array(json_object_get(data, "roles"))
				? json_object_get(data, "roles")
				: json_array()) != 0) {
		json_decref(token);
		corral_errf(tx->errmsg, sizeof tx->errmsg, "out of memory");
		return -ENOMEM;
	}
	json_decref(token);
	return state_identity_create(tx, identity);
}

static void token_add_reply(struct api_db_call *c, int rv)
{
	struct api *a = c->r->api;
	char hash[65];
	char member[sizeof c->aux];
	char op_id[sizeof c->aux2];

	if (rv == CORRAL_EFORBIDDEN) {
		reply_refused(c->r, "unknown, used or expired token");
		return;
	}
	snprintf(hash, sizeof hash, "%s",
		 json_string_value(json_object_get(c->in, "hash")));
	memcpy(member, c->aux, sizeof member);
	memcpy(op_id, c->aux2, sizeof op_id);
	write_reply(c, rv);
	if (rv == 0) {
		token_ops_finish(a, hash);
		api_token_used(a, member, op_id);
	}
}

/* c->in: {"identity": ..., "password": ...}. Checked in a read session
 * first, so the scrypt work never holds the write lock. */
static int password_check_work(struct state_tx *tx, struct api_db_call *c)
{
	const char *password =
	    json_string_value(json_object_get(c->in, "password"));
	const char *hash;
	json_t *config;
	bool ok;
	int rv;

	rv = state_config_get(tx, &config);
	if (rv != 0) {
		return rv;
	}
	hash =
	    json_string_value(json_object_get(config, "core.trust_password"));
	ok = hash != NULL && hash[0] != '\0' && password != NULL &&
	     password[0] != '\0' && secret_verify(password, hash);
	json_decref(config);
	return ok ? 0 : CORRAL_EFORBIDDEN;
}

static void password_check_reply(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;
	struct api_db_call *add;
	json_t *in;

	if (rv == CORRAL_EFORBIDDEN) {
		reply_refused(r, "wrong trust password");
		return;
	}
	if (rv != 0) {
		reply_failure(c, rv);
		return;
	}
	add = cert_call_new(r);
	if (add == NULL) {
		return;
	}
	/* Move the input over, without the password. */
	in = c->in;
	c->in = NULL;
	json_object_del(in, "password");
	add->in = in;
	add->status = 201;
	snprintf(add->location, sizeof add->location, CERT_URL "%s",
		 json_string_value(json_object_get(
		     json_object_get(in, "identity"), "fingerprint")));
	add->reply = write_reply;
	api_db_run(add, true, add_snap_work);
}

/* (c): an untrusted caller adds its own TLS certificate. */
static void untrusted_add(struct api_req *r, const struct post_req *p)
{
	struct api_db_call *c;
	struct cert_info ci;
	char hash[65];
	bool token;
	json_t *roles;
	json_t *identity;

	if (!r->tls || r->peer_x509 == NULL) {
		api_reply_error(r, 400, "no client certificate provided");
		return;
	}
	if (p->password[0] == '\0') {
		reply_refused(r, "no password or token");
		return;
	}
	token = token_secret_hash(p->password, hash);
	if (!post_cert(r, p, &ci)) {
		return;
	}
	if (token) {
		/* Name, type and roles come from the token. */
		roles = json_array();
	} else {
		roles = post_roles(r, p);
		if (roles == NULL) {
			cert_info_clear(&ci);
			return;
		}
	}
	identity = identity_new(&ci, token ? "" : p->name,
				token ? "client" : p->type, roles);
	c = add_call_new(r, &ci, identity);
	cert_info_clear(&ci);
	if (c == NULL) {
		return;
	}
	if (token) {
		if (json_object_set_new(c->in, "hash", json_string(hash)) !=
		    0) {
			goto err_oom;
		}
		c->reply = token_add_reply;
		api_db_run(c, true, token_add_snap_work);
		return;
	}
	if (json_object_set_new(c->in, "password", json_string(p->password)) !=
	    0) {
		goto err_oom;
	}
	c->reply = password_check_reply;
	api_db_run(c, false, password_check_work);
	return;

err_oom:
	json_decref(c->in);
	free(c);
	api_reply_error(r, 500, "out of memory");
}

/* ---- token creation ---- */

/* Token operations live in memory; the token itself (hashed) in the
 * database. Cancelling the operation revokes the token. */
struct revoke_ctx {
	char hash[65];
};

static int revoke_work(struct state_tx *tx, void *arg)
{
	struct revoke_ctx *ctx = arg;
	int rv;

	rv = state_token_revoke(tx, "trust", ctx->hash);
	return rv == CORRAL_ENOTFOUND ? 0 : rv;
}

static void revoke_done(void *arg, int rv, const char *errmsg)
{
	if (rv != 0) {
		log_error("msg=\"revoke trust token\" error=\"%s\"", errmsg);
	}
	free(arg);
}

static int token_cancel_cb(struct api_op *op, void *arg, char *errmsg)
{
	struct api *a = arg;
	struct revoke_ctx *ctx;
	const char *secret =
	    json_string_value(json_object_get(op->metadata, "secret"));
	int rv;

	if (secret == NULL) {
		return 0;
	}
	ctx = calloc(1, sizeof *ctx);
	if (ctx == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
		return -ENOMEM;
	}
	sha256_hex(secret, ctx->hash);
	rv = state_submit(a->state, true, revoke_work, revoke_done, ctx);
	if (rv != 0) {
		free(ctx);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "cannot revoke the token: %s", corral_strerror(rv));
	}
	return rv;
}

/* A running token operation reached its expiry: delete the token, as a
 * revocation does. The operation then ends as Failure "token expired". */
static void token_expire_cb(struct api_op *op, void *arg)
{
	char errmsg[CORRAL_ERRMSG_SIZE];

	log_info("msg=\"trust token expired\" operation=%s", op->id);
	if (token_cancel_cb(op, arg, errmsg) != 0) {
		log_error("msg=\"delete expired trust token\" error=\"%s\"",
			  errmsg);
	}
}

/* c->in: {"hash", "name", "data", "expires_at", "metadata"}. */
static int token_create_work(struct state_tx *tx, struct api_db_call *c)
{
	json_t *roles =
	    json_object_get(json_object_get(c->in, "data"), "roles");
	json_t *names = NULL;
	json_t *b;
	size_t i;
	int rv;

	/* A token for a project that does not exist would start granting
	 * it the day someone creates that name: refuse it now, as an add
	 * does. */
	rv = state_trust_project_names(tx, &names);
	if (rv != 0) {
		return rv;
	}
	json_array_foreach(roles, i, b)
	{
		const char *project =
		    json_string_value(json_object_get(b, "project"));
		size_t j;
		json_t *n;
		bool found = false;

		if (project == NULL) {
			continue;
		}
		json_array_foreach(names, j, n)
		{
			if (strcmp(json_string_value(n), project) == 0) {
				found = true;
				break;
			}
		}
		if (!found) {
			json_decref(names);
			corral_errf(tx->errmsg, sizeof tx->errmsg,
				    "project \"%s\" not found", project);
			return CORRAL_EINVALID;
		}
	}
	json_decref(names);
	return state_token_create(
	    tx, "trust", json_string_value(json_object_get(c->in, "hash")),
	    json_string_value(json_object_get(c->in, "name")),
	    json_object_get(c->in, "data"),
	    (int64_t)json_integer_value(json_object_get(c->in, "expires_at")),
	    NULL);
}

/* Answer 202 with the async envelope of @op. */
static void reply_async(struct api_req *r, struct api_op *op)
{
	struct http_conn *conn = r->conn;
	char headers[128];
	json_t *env;
	char *body;

	env = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:o?}", "type", "async",
			"status", "Operation created", "status_code",
			OPS_STATUS_CREATED, "operation", "", "error_code", 0,
			"error", "", "metadata", ops_to_json(op));
	body = NULL;
	if (env != NULL) {
		json_object_set_new(env, "operation",
				    json_sprintf("/1.0/operations/%s", op->id));
		body = json_dumps(env, JSON_COMPACT);
		json_decref(env);
	}
	if (body == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	snprintf(headers, sizeof headers, "Location: /1.0/operations/%s\r\n",
		 op->id);
	http_conn_respond(conn, 202, headers, NULL, body, strlen(body), false);
	free(body);
	http_conn_unref(conn);
	free(r);
}

static void token_create_reply(struct api_db_call *c, int rv)
{
	struct api_req *r = c->r;
	struct api_op *op;
	json_t *metadata;

	if (rv != 0) {
		reply_failure(c, rv);
		return;
	}
	metadata = json_incref(json_object_get(c->in, "metadata"));
	rv = ops_op_create_id(
	    r->api->ops, json_string_value(json_object_get(c->in, "operation")),
	    OPS_CLASS_TOKEN, "Certificate add token", "", NULL, metadata, true,
	    token_cancel_cb, r->api, &op);
	if (rv != 0) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	/* An unused token stops being listed once it expires, and its row
	 * goes. */
	rv = ops_op_set_expiry(
	    op,
	    (uint64_t)json_integer_value(json_object_get(c->in, "expiry_ms")),
	    "token expired", token_expire_cb, r->api);
	if (rv != 0) {
		char errmsg[CORRAL_ERRMSG_SIZE];

		if (ops_cancel(op, errmsg) != 0) {
			log_error("msg=\"revoke trust token\" error=\"%s\"",
				  errmsg);
		}
		api_reply_error(r, 500, "out of memory");
		return;
	}
	reply_async(r, op);
}

/* A trusted admin asks for a one-time token (`lxc config trust add` with no
 * file). */
static void token_create(struct api_req *r, const struct post_req *p)
{
	unsigned char raw[32];
	char secret[65];
	char hash[65];
	char op_id[OPS_ID_SIZE];
	json_t *owner = NULL;
	char expires[OPS_TIME_SIZE];
	struct timespec ts;
	const char *expiry;
	struct api_db_call *c;
	json_t *roles;
	json_t *projects;
	json_t *metadata;
	json_t *addresses;
	int64_t seconds;
	bool restricted;
	unsigned i;

	if (p->name[0] == '\0') {
		api_reply_error(r, 400,
				"a client name is required for a token");
		return;
	}
	if (p->certificate[0] != '\0') {
		api_reply_error(r, 400,
				"Can't use certificate if token is requested");
		return;
	}
	if (strcmp(p->type, "client") != 0) {
		api_reply_error(
		    r, 400,
		    "Tokens can only be issued for client certificates");
		return;
	}
	/* The token names the addresses to reach us on: none, no token. */
	addresses = api_listen_addresses(r->api);
	if (addresses == NULL) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	if (json_array_size(addresses) == 0) {
		json_decref(addresses);
		api_reply_error(
		    r, 400,
		    "Can't issue token when server isn't listening on network");
		return;
	}
	expiry = json_string_value(
	    json_object_get(r->api->config, "core.remote_token_expiry"));
	if (expiry == NULL || expiry[0] == '\0') {
		expiry = validate_server_default("core.remote_token_expiry");
	}
	if (expiry == NULL || validate_parse_duration(expiry, &seconds) != 0) {
		seconds = 24 * 3600;
	}
	/* Keep the deadline representable (a century is forever enough). */
	if (seconds > (int64_t)100 * 365 * 86400) {
		seconds = (int64_t)100 * 365 * 86400;
	}
	roles = post_roles(r, p);
	if (roles == NULL) {
		json_decref(addresses);
		return;
	}
	if (trust_roles_to_legacy(roles, NULL, &restricted, &projects) != 0) {
		json_decref(roles);
		json_decref(addresses);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	if (RAND_bytes(raw, sizeof raw) != 1) {
		json_decref(roles);
		json_decref(projects);
		json_decref(addresses);
		api_reply_error(r, 500, "no randomness for the token secret");
		return;
	}
	for (i = 0; i < sizeof raw; i++) {
		snprintf(secret + 2 * i, 3, "%02x", raw[i]);
	}
	OPENSSL_cleanse(raw, sizeof raw);
	sha256_hex(secret, hash);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)seconds;
	ops_format_time(&ts, expires);

	metadata = json_pack(
	    "{s:{s:s, s:s, s:b, s:O, s:s, s:s, s:b}, s:s, s:s, s:o, s:s}",
	    "request", "name", p->name, "type", p->type, "restricted",
	    restricted, "projects", projects, "certificate", "", "password", "",
	    "token", 1, "secret", secret, "fingerprint", r->api->fingerprint,
	    "addresses", addresses, "expiresAt", expires);
	c = cert_call_new(r);
	if (c == NULL) {
		json_decref(metadata);
		json_decref(roles);
		json_decref(projects);
		OPENSSL_cleanse(secret, sizeof secret);
		return;
	}
	c->in = json_pack("{s:s, s:s, s:{s:s, s:o, s:b, s:o}, s:I, s:I, s:o}",
			  "hash", hash, "name", p->name, "data", "type",
			  p->type, "roles", roles, "restricted", restricted,
			  "projects", projects, "expires_at",
			  (json_int_t)ts.tv_sec, "expiry_ms",
			  (json_int_t)seconds * 1000, "metadata", metadata);
	OPENSSL_cleanse(secret, sizeof secret);
	/* The token's data also names its operation and this member, so
	 * that any member can revoke it (api_token_owner()). */
	if (c->in != NULL && ops_uuid(op_id) == 0) {
		owner = api_token_owner(r->api, op_id);
	}
	if (owner == NULL ||
	    json_object_set_new(c->in, "operation", json_string(op_id)) != 0 ||
	    json_object_update(json_object_get(c->in, "data"), owner) != 0) {
		json_decref(c->in);
		c->in = NULL;
	}
	json_decref(owner);
	if (c->in == NULL) {
		free(c);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	c->reply = token_create_reply;
	api_db_run(c, true, token_create_work);
}

static void create_certificate(struct api_req *r)
{
	struct trust_cache *cache;
	struct post_req p;
	json_t *body;

	/* A blocked address is refused before anything is looked at. */
	if (!r->trusted) {
		cache = trust_of(r->api);
		if (cache == NULL) {
			api_reply_error(r, 500, "out of memory");
			return;
		}
		if (trust_limiter_blocked(trust_cache_limiter(cache),
					  r->remote_addr,
					  uv_now(r->api->loop))) {
			log_warn(
			    "msg=\"certificate add refused\" reason=\"too many failures\" remote=%s",
			    r->remote_addr);
			api_reply_error(r, 403, "not authorized");
			return;
		}
	}
	body = api_body_object(r);
	if (body == NULL) {
		return;
	}
	if (!parse_post(r, body, &p)) {
		json_decref(body);
		return;
	}
	if (!r->trusted) {
		untrusted_add(r, &p);
	} else if (!caller_admin(r)) {
		api_reply_error(r, 403, "not authorized");
	} else if (p.token) {
		token_create(r, &p);
	} else {
		admin_add(r, &p);
	}
	json_decref(body);
}

const struct api_route api_routes_certificates[] = {
	{ .path = "/1.0/certificates",
	  .get = list_certificates,
	  .post = create_certificate },
	{ .path = "/1.0/certificates/{fingerprint}",
	  .get = get_certificate,
	  .put = update_certificate,
	  .patch = update_certificate,
	  .del = delete_certificate },
};

const unsigned api_n_routes_certificates =
    sizeof api_routes_certificates / sizeof api_routes_certificates[0];
