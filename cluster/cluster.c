/* The cluster module: cluster key pair and member list on disk, the member
 * channel dialer given to the state module, and the joiner's side of a
 * join. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <corral/cert.h>
#include <corral/cluster.h>
#include <corral/log.h>

#include "channel.h"

/* Bound on the number of members cluster.members lists. */
#define CLUSTER_MAX_MEMBERS 1024

struct cluster {
	uv_loop_t *loop;     /* borrowed */
	struct state *state; /* borrowed */
	char dir[4096];
	char server_crt[4200];
	char server_key[4200];
	char cluster_crt[4200];
	char cluster_key[4200];
	char members_path[4200];

	/* Read by dialers on worker threads. */
	pthread_mutex_t mu;
	SSL_CTX *client_ctx; /* owned, created on first dial */
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1]; /* "" when not enabled */

	/* Fingerprints in cluster.members (loop only). */
	char (*members)[CORRAL_CERT_FINGERPRINT_LEN + 1]; /* owned */
	size_t n_members;
};

/* ------------------------------------------------------------------------ */
/* The member channel dialer                                                  */

/* Copy the pin and make sure the client context exists (any thread). */
static int dialer_prepare(struct cluster *c,
			  SSL_CTX **ctx,
			  char pin[CORRAL_CERT_FINGERPRINT_LEN + 1],
			  char *errmsg)
{
	int rv = 0;

	pthread_mutex_lock(&c->mu);
	if (c->client_ctx == NULL) {
		rv = cluster__tls_ctx_create(c->server_crt, c->server_key,
					     &c->client_ctx, errmsg);
	}
	if (rv == 0) {
		SSL_CTX_up_ref(c->client_ctx);
		*ctx = c->client_ctx;
		memcpy(pin, c->pin, CORRAL_CERT_FINGERPRINT_LEN + 1);
	}
	pthread_mutex_unlock(&c->mu);
	if (rv == 0 && pin[0] == '\0') {
		SSL_CTX_free(*ctx);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "this daemon is not a cluster member");
		rv = -ENOTCONN;
	}
	return rv;
}

/* state_connect_fn: a dqlite stream to the node of the member at
 * @address, through a relay thread (worker thread). */
static int cluster_connect_cb(void *arg, const char *address, int *fd)
{
	struct cluster *c = arg;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct cluster_conn conn;
	SSL_CTX *ctx;
	unsigned status = 0;
	char *body = NULL;
	int sv[2];
	int rv;

	rv = dialer_prepare(c, &ctx, pin, errmsg);
	if (rv != 0) {
		goto err;
	}
	rv = cluster__dial(ctx, address, pin, &conn, errmsg);
	SSL_CTX_free(ctx);
	if (rv != 0) {
		goto err;
	}
	rv = cluster__request(&conn, "POST", "/internal/raft",
			      "Upgrade: dqlite\r\nConnection: Upgrade\r\n",
			      NULL, &status, &body, errmsg);
	if (rv == 0 && status != 101) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "raft upgrade refused: HTTP %u %s", status,
			    body != NULL ? body : "");
		rv = status == 403 ? CORRAL_EFORBIDDEN : CORRAL_EPROTO;
	}
	free(body);
	if (rv != 0) {
		goto err_after_dial;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "socketpair(): %s",
			    strerror(errno));
		goto err_after_dial;
	}
	rv = cluster__relay_start(&conn, sv[1]);
	if (rv != 0) {
		close(sv[0]);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "start relay: %s",
			    corral_strerror(rv));
		goto err;
	}
	*fd = sv[0];
	return 0;

err_after_dial:
	cluster__conn_close(&conn);
err:
	log_debug("msg=\"member channel\" address=%s error=\"%s\"", address,
		  errmsg);
	return rv;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */

/* Set c->pin from cluster.crt, or "" when it is absent. */
static int pin_load(struct cluster *c, char *errmsg)
{
	char fp[CORRAL_CERT_FINGERPRINT_LEN + 1] = "";
	char *pem = NULL;
	size_t len = 0;
	int rv;

	rv = cert_read_file(c->cluster_crt, &pem, &len);
	if (rv == -ENOENT) {
		rv = 0;
	} else if (rv == 0) {
		rv = cert_fingerprint_pem(pem, len, fp);
		if (rv != 0) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "%s: not a certificate", c->cluster_crt);
			rv = CORRAL_ETLS;
		}
	} else {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "read %s: %s",
			    c->cluster_crt, corral_strerror(rv));
	}
	free(pem);
	if (rv == 0) {
		pthread_mutex_lock(&c->mu);
		memcpy(c->pin, fp, sizeof c->pin);
		pthread_mutex_unlock(&c->mu);
	}
	return rv;
}

/* Read cluster.members into c->members (absent: empty). */
static int members_load(struct cluster *c)
{
	char line[128];
	FILE *f;

	c->n_members = 0;
	f = fopen(c->members_path, "r");
	if (f == NULL) {
		return errno == ENOENT ? 0 : -errno;
	}
	while (fgets(line, sizeof line, f) != NULL &&
	       c->n_members < CLUSTER_MAX_MEMBERS) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strlen(line) != CORRAL_CERT_FINGERPRINT_LEN) {
			continue;
		}
		memcpy(c->members[c->n_members++], line,
		       CORRAL_CERT_FINGERPRINT_LEN + 1);
	}
	fclose(f);
	return 0;
}

int cluster_create(uv_loop_t *loop,
		   const struct cluster_config *cfg,
		   struct cluster **out,
		   char *errmsg)
{
	struct cluster *c;
	int rv;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "cluster: out of memory");
		return -ENOMEM;
	}
	c->members = calloc(CLUSTER_MAX_MEMBERS, sizeof *c->members);
	if (c->members == NULL) {
		free(c);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "cluster: out of memory");
		return -ENOMEM;
	}
	c->loop = loop;
	c->state = cfg->state;
	pthread_mutex_init(&c->mu, NULL);
	snprintf(c->dir, sizeof c->dir, "%s", cfg->state_dir);
	snprintf(c->server_crt, sizeof c->server_crt, "%s/server.crt", c->dir);
	snprintf(c->server_key, sizeof c->server_key, "%s/server.key", c->dir);
	snprintf(c->cluster_crt, sizeof c->cluster_crt, "%s/cluster.crt",
		 c->dir);
	snprintf(c->cluster_key, sizeof c->cluster_key, "%s/cluster.key",
		 c->dir);
	snprintf(c->members_path, sizeof c->members_path, "%s/cluster.members",
		 c->dir);
	rv = pin_load(c, errmsg);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = members_load(c);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "read %s: %s",
			    c->members_path, corral_strerror(rv));
		goto err_after_alloc;
	}
	state_set_connect(c->state, cluster_connect_cb, c);
	*out = c;
	return 0;

err_after_alloc:
	cluster_destroy(c);
	return rv;
}

void cluster_destroy(struct cluster *c)
{
	if (c == NULL) {
		return;
	}
	SSL_CTX_free(c->client_ctx);
	pthread_mutex_destroy(&c->mu);
	free(c->members);
	free(c);
}

bool cluster_enabled(const struct cluster *c)
{
	return c->pin[0] != '\0';
}

const char *cluster_fingerprint(const struct cluster *c)
{
	return c->pin;
}

const char *cluster_listener_crt(const struct cluster *c)
{
	return cluster_enabled(c) ? c->cluster_crt : c->server_crt;
}

const char *cluster_listener_key(const struct cluster *c)
{
	return cluster_enabled(c) ? c->cluster_key : c->server_key;
}

/* Copy the file @from to @to with @mode. */
static int copy_file(const char *from,
		     const char *to,
		     mode_t mode,
		     char *errmsg)
{
	char *data = NULL;
	size_t len = 0;
	int rv;

	rv = cert_read_file(from, &data, &len);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "read %s: %s", from,
			    corral_strerror(rv));
		return rv;
	}
	rv = cert_write_file(to, data, len, mode, errmsg);
	OPENSSL_cleanse(data, len);
	free(data);
	return rv;
}

int cluster_enable_files(struct cluster *c, char *errmsg)
{
	int rv;

	rv = copy_file(c->server_key, c->cluster_key, 0600, errmsg);
	if (rv == 0) {
		rv = copy_file(c->server_crt, c->cluster_crt, 0644, errmsg);
	}
	if (rv == 0) {
		rv = pin_load(c, errmsg);
	}
	return rv;
}

bool cluster_member_known(const struct cluster *c, const char *fp)
{
	size_t i;

	for (i = 0; i < c->n_members; i++) {
		if (strcmp(c->members[i], fp) == 0) {
			return true;
		}
	}
	return false;
}

int cluster_members_save(struct cluster *c, json_t *fps, char *errmsg)
{
	size_t n = json_array_size(fps);
	char *text;
	size_t len = 0;
	size_t i;
	int rv;

	text = malloc(n * (CORRAL_CERT_FINGERPRINT_LEN + 1) + 1);
	if (text == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
		return -ENOMEM;
	}
	c->n_members = 0;
	for (i = 0; i < n && c->n_members < CLUSTER_MAX_MEMBERS; i++) {
		const char *fp = json_string_value(json_array_get(fps, i));

		if (fp == NULL || strlen(fp) != CORRAL_CERT_FINGERPRINT_LEN) {
			continue;
		}
		memcpy(c->members[c->n_members++], fp,
		       CORRAL_CERT_FINGERPRINT_LEN + 1);
		memcpy(text + len, fp, CORRAL_CERT_FINGERPRINT_LEN);
		len += CORRAL_CERT_FINGERPRINT_LEN;
		text[len++] = '\n';
	}
	text[len] = '\0';
	rv = cert_write_file(c->members_path, text, len, 0644, errmsg);
	free(text);
	return rv;
}

int cluster_key_pair(struct cluster *c,
		     char **crt_pem,
		     char **key_pem,
		     char *errmsg)
{
	int rv;

	*crt_pem = NULL;
	*key_pem = NULL;
	rv = cert_read_file(c->cluster_crt, crt_pem, NULL);
	if (rv == 0) {
		rv = cert_read_file(c->cluster_key, key_pem, NULL);
	}
	if (rv != 0) {
		free(*crt_pem);
		*crt_pem = NULL;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "read the cluster key pair: %s",
			    corral_strerror(rv));
	}
	return rv;
}

/* ------------------------------------------------------------------------ */
/* Join (the joiner's side)                                                   */

struct join {
	uv_work_t req;
	struct cluster *c;
	char *body;         /* owned: the accept request */
	char *cluster_cert; /* owned */
	char address[256];
	cluster_join_cb cb;
	void *arg;
	int rv;
	uint64_t node_id;
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* Store the accept answer @resp: cluster key pair and member list. */
static int join_store(struct join *j, json_t *resp)
{
	struct cluster *c = j->c;
	const char *crt =
	    json_string_value(json_object_get(resp, "cluster_certificate"));
	const char *key =
	    json_string_value(json_object_get(resp, "cluster_key"));
	json_t *members = json_object_get(resp, "members");
	json_int_t id = json_integer_value(json_object_get(resp, "node_id"));
	int rv;

	if (crt == NULL || key == NULL || id <= 1 || !json_is_array(members)) {
		corral_errf(j->errmsg, sizeof j->errmsg,
			    "malformed answer from the cluster");
		return CORRAL_EPROTO;
	}
	if (strcmp(crt, j->cluster_cert) != 0) {
		corral_errf(j->errmsg, sizeof j->errmsg,
			    "the cluster sent another certificate than the "
			    "one given");
		return CORRAL_ETLS;
	}
	rv = cert_write_file(c->cluster_key, key, strlen(key), 0600, j->errmsg);
	if (rv == 0) {
		rv = cert_write_file(c->cluster_crt, crt, strlen(crt), 0644,
				     j->errmsg);
	}
	if (rv != 0) {
		return rv;
	}
	j->node_id = (uint64_t)id;
	return 0;
}

static void join_work_cb(uv_work_t *req)
{
	struct join *j = req->data;
	struct cluster_conn conn;
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	SSL_CTX *ctx = NULL;
	unsigned status = 0;
	char *body = NULL;
	json_t *resp;
	int rv;

	rv =
	    cert_fingerprint_pem(j->cluster_cert, strlen(j->cluster_cert), pin);
	if (rv != 0) {
		corral_errf(j->errmsg, sizeof j->errmsg,
			    "cluster_certificate is not a PEM certificate");
		j->rv = CORRAL_EINVALID;
		return;
	}
	rv = cluster__tls_ctx_create(j->c->server_crt, j->c->server_key, &ctx,
				     j->errmsg);
	if (rv != 0) {
		j->rv = rv;
		return;
	}
	rv = cluster__dial(ctx, j->address, pin, &conn, j->errmsg);
	SSL_CTX_free(ctx);
	if (rv != 0) {
		j->rv = rv;
		return;
	}
	rv = cluster__request(&conn, "POST", "/internal/cluster/accept", NULL,
			      j->body, &status, &body, j->errmsg);
	cluster__conn_close(&conn);
	if (rv != 0) {
		corral_errwrapf(j->errmsg, sizeof j->errmsg, "%s", j->address);
		j->rv = rv;
		return;
	}
	resp = json_loads(body != NULL ? body : "", 0, NULL);
	OPENSSL_cleanse(body, strlen(body));
	free(body);
	if (status != 200) {
		const char *err =
		    json_string_value(json_object_get(resp, "error"));

		corral_errf(j->errmsg, sizeof j->errmsg, "%s",
			    err != NULL ? err : "refused");
		j->rv = status == 403 ? CORRAL_EFORBIDDEN : CORRAL_EINVALID;
		json_decref(resp);
		return;
	}
	j->rv = join_store(j, json_object_get(resp, "metadata"));
	free(j->body);
	j->body = NULL;
	if (j->rv == 0) {
		/* cluster.members is written on the loop, which owns it. */
		j->body = json_dumps(
		    json_object_get(json_object_get(resp, "metadata"),
				    "members"),
		    JSON_COMPACT);
		if (j->body == NULL) {
			corral_errf(j->errmsg, sizeof j->errmsg,
				    "out of memory");
			j->rv = -ENOMEM;
		}
	}
	json_decref(resp);
}

static void join_after_cb(uv_work_t *req, int status)
{
	struct join *j = req->data;
	struct cluster *c = j->c;
	int rv = j->rv;

	if (status != 0 && rv == 0) {
		rv = status;
		corral_errf(j->errmsg, sizeof j->errmsg, "join cancelled");
	}
	if (rv == 0) {
		json_t *members = json_loads(j->body, 0, NULL);

		rv = members != NULL
			 ? cluster_members_save(c, members, j->errmsg)
			 : -ENOMEM;
		json_decref(members);
	}
	if (rv == 0) {
		rv = pin_load(c, j->errmsg);
	}
	j->cb(j->arg, rv, j->node_id, j->errmsg);
	free(j->body);
	free(j->cluster_cert);
	free(j);
}

int cluster_join(struct cluster *c,
		 const struct cluster_join_req *req,
		 cluster_join_cb cb,
		 void *arg)
{
	struct join *j;
	int rv;

	j = calloc(1, sizeof *j);
	if (j == NULL) {
		return -ENOMEM;
	}
	j->req.data = j;
	j->c = c;
	j->cb = cb;
	j->arg = arg;
	snprintf(j->address, sizeof j->address, "%s", req->cluster_address);
	j->cluster_cert = strdup(req->cluster_cert);
	{
		json_t *body = json_pack(
		    "{s:s, s:s, s:s}", "secret", req->secret, "server_name",
		    req->server_name, "address", req->server_address);

		j->body = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
	}
	if (j->cluster_cert == NULL || j->body == NULL) {
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	rv = uv_queue_work(c->loop, &j->req, join_work_cb, join_after_cb);
	if (rv != 0) {
		goto err_after_alloc;
	}
	return 0;

err_after_alloc:
	free(j->body);
	free(j->cluster_cert);
	free(j);
	return rv;
}
