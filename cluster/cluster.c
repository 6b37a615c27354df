/* The cluster module: cluster key pair and member list on disk, the member
 * channel dialer given to the state module, and the joiner's side of a
 * join. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <corral/cert.h>
#include <corral/cluster.h>
#include <corral/cluster_msg.h>
#include <corral/log.h>

#include "channel.h"

/* Bound on the number of members cluster.members lists. */
#define CLUSTER_MAX_MEMBERS 1024

/* Interval between two heartbeats to a peer. */
#define CLUSTER_HEARTBEAT_MS 1000

/* How long a forwarded request waits for the member's answer. */
#define CLUSTER_FORWARD_TIMEOUT_S 30

struct cluster_out;
struct cluster_peer;

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

	/* Heartbeats and broadcasts (loop only): shared with the peer
	 * threads, and the list of peers with a heartbeat thread. */
	struct cluster_out *out; /* referenced, NULL until first use */
	struct cluster_peer *peers;
};

static void cluster__peers_stop(struct cluster *c);

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
	cluster__peers_stop(c);
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

/* Whether the valid fingerprints of @fps are those in c->members, in
 * order. */
static bool members_same(const struct cluster *c, json_t *fps)
{
	size_t k = 0;
	json_t *v;
	size_t i;

	json_array_foreach(fps, i, v)
	{
		const char *fp = json_string_value(v);

		if (fp == NULL || strlen(fp) != CORRAL_CERT_FINGERPRINT_LEN) {
			continue;
		}
		if (k >= c->n_members || k >= CLUSTER_MAX_MEMBERS ||
		    strcmp(c->members[k], fp) != 0) {
			return false;
		}
		k++;
	}
	return k == c->n_members;
}

int cluster_members_save(struct cluster *c, json_t *fps, char *errmsg)
{
	size_t n = json_array_size(fps);
	char *text;
	size_t len = 0;
	size_t i;
	int rv;

	/* Most trust changes leave the member set as it is: no disk write
	 * on their path then. */
	if (members_same(c, fps)) {
		return 0;
	}
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

int cluster_join_ready(struct cluster *c,
		       const char *address,
		       uint64_t node_id,
		       char *errmsg)
{
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct cluster_conn conn;
	SSL_CTX *ctx;
	unsigned status = 0;
	char *body = NULL;
	char req[64];
	json_t *resp;
	const char *err;
	int rv;

	rv = dialer_prepare(c, &ctx, pin, errmsg);
	if (rv != 0) {
		return rv;
	}
	rv = cluster__dial(ctx, address, pin, &conn, errmsg);
	SSL_CTX_free(ctx);
	if (rv != 0) {
		return rv;
	}
	snprintf(req, sizeof req, "{\"id\":%llu}", (unsigned long long)node_id);
	rv = cluster__request(&conn, "POST", "/internal/cluster/ready", NULL,
			      req, &status, &body, errmsg);
	cluster__conn_close(&conn);
	if (rv != 0) {
		corral_errwrapf(errmsg, CORRAL_ERRMSG_SIZE, "%s", address);
		return rv;
	}
	if (status != 200) {
		resp = json_loads(body != NULL ? body : "", 0, NULL);
		err = json_string_value(json_object_get(resp, "error"));
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s: HTTP %u: %s",
			    address, status, err != NULL ? err : "refused");
		json_decref(resp);
		if (status == 403) {
			rv = CORRAL_EFORBIDDEN;
		} else {
			rv = status < 500 ? CORRAL_EINVALID : CORRAL_EPROTO;
		}
	}
	free(body);
	return rv;
}

/* ------------------------------------------------------------------------ */
/* Heartbeats and broadcasts                                                  */

/* A heartbeat body: msgpack bytes (cluster_msg_pack()). */
struct out_body {
	size_t len;
	char data[];
};

/* What peer threads share with the module; reference counted so that a
 * thread still sleeping or dialing when the module is destroyed keeps it. */
struct cluster_out {
	pthread_mutex_t mu;
	unsigned refs;
	SSL_CTX *ctx; /* referenced, NULL until cluster_peers_set() */
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct out_body *body; /* owned: NULL before the first */
	/* Bumped whenever ctx or pin change: an idle connection dialed
	 * under an older generation is closed rather than reused. */
	uint64_t gen;
	struct idle_conn *idle; /* owned: kept connections for notifications */
	unsigned n_idle;
};

/* A notification connection kept open for the next change, so a write's
 * change notification costs one round trip rather than a TLS handshake. */
struct idle_conn {
	char address[256];
	uint64_t gen;
	uint64_t since_ms; /* uv_hrtime() in ms when it was put back */
	struct cluster_conn conn;
	struct idle_conn *next;
};

/* Bound on kept connections, and on how long one stays unused: members
 * close idle connections after 120 s (api/http.c), so reuse stops well
 * before that. */
#define CLUSTER_IDLE_MAX 16
#define CLUSTER_IDLE_TTL_MS (60 * 1000)

static void idle_free_list(struct idle_conn *list)
{
	while (list != NULL) {
		struct idle_conn *next = list->next;

		cluster__conn_close(&list->conn);
		free(list);
		list = next;
	}
}

struct event_relay;

/* One heartbeat thread per peer. The module sets @stop and forgets the
 * peer; the thread frees it when it sees @stop. */
struct cluster_peer {
	struct cluster_out *out; /* referenced */
	char name[64];
	char address[256];
	atomic_bool stop;
	/* uv_hrtime() in ms of the last 200 answer, 0 before the first. */
	_Atomic uint64_t answered_ms;
	/* Events relayed to the peer, started with the first one (loop
	 * only; the relay thread frees it once stopped). */
	struct event_relay *relay;
	struct cluster_peer *next; /* the module's list (loop only) */
};

/* Bounds of the events queued for one peer, and of one POST. */
#define CLUSTER_EVENTS_QUEUE_MAX 1024
#define CLUSTER_EVENTS_BATCH_MAX 128
#define CLUSTER_EVENTS_BATCH_BYTES (512 * 1024)

/* One queued event: its JSON text. */
struct relay_event {
	struct relay_event *next;
	size_t len;
	char data[];
};

/* The events of one peer and the thread that sends them, in order, on a
 * kept connection (POST /internal/events). The module queues and, when
 * the peer goes, sets @stop; the thread frees it then. */
struct event_relay {
	struct cluster_out *out; /* referenced */
	char name[64];
	char address[256];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct relay_event *head;
	struct relay_event *tail;
	unsigned n;
	uint64_t dropped; /* queue full: oldest dropped, not yet logged */
};

static struct cluster_out *out_ref(struct cluster_out *o)
{
	pthread_mutex_lock(&o->mu);
	o->refs++;
	pthread_mutex_unlock(&o->mu);
	return o;
}

static void out_unref(struct cluster_out *o)
{
	unsigned refs;

	pthread_mutex_lock(&o->mu);
	refs = --o->refs;
	pthread_mutex_unlock(&o->mu);
	if (refs == 0) {
		idle_free_list(o->idle);
		SSL_CTX_free(o->ctx);
		free(o->body);
		pthread_mutex_destroy(&o->mu);
		free(o);
	}
}

/* Copy the dial context and pin (and the heartbeat body when @body is
 * not NULL; *@body is malloc'd, owned by the caller). */
static int out_take(struct cluster_out *o,
		    SSL_CTX **ctx,
		    char pin[CORRAL_CERT_FINGERPRINT_LEN + 1],
		    struct out_body **body)
{
	int rv = 0;

	pthread_mutex_lock(&o->mu);
	if (o->ctx == NULL || (body != NULL && o->body == NULL)) {
		rv = -EAGAIN;
	} else {
		SSL_CTX_up_ref(o->ctx);
		*ctx = o->ctx;
		memcpy(pin, o->pin, CORRAL_CERT_FINGERPRINT_LEN + 1);
		if (body != NULL) {
			size_t size = sizeof **body + o->body->len;

			*body = malloc(size);
			if (*body == NULL) {
				SSL_CTX_free(*ctx);
				rv = -ENOMEM;
			} else {
				memcpy(*body, o->body, size);
			}
		}
	}
	pthread_mutex_unlock(&o->mu);
	return rv;
}

/* Dial the member at @address with the current dial context and pin into
 * @conn (any thread). Returns 0, or an error with @errmsg filled ("member
 * channel not ready" before cluster_peers_set() gave a context). */
static int out_dial(struct cluster_out *o,
		    const char *address,
		    struct cluster_conn *conn,
		    char *errmsg)
{
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	SSL_CTX *ctx = NULL;
	int rv;

	rv = out_take(o, &ctx, pin, NULL);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "member channel not ready");
		return rv;
	}
	rv = cluster__dial(ctx, address, pin, conn, errmsg);
	SSL_CTX_free(ctx);
	return rv;
}

/* Take a kept connection to @address dialed under the current generation,
 * if there is one; stale ones met on the way are closed. */
static bool idle_take(struct cluster_out *o,
		      const char *address,
		      struct cluster_conn *conn)
{
	uint64_t now = uv_hrtime() / 1000000;
	struct idle_conn *stale = NULL;
	struct idle_conn *found = NULL;
	struct idle_conn **pp;

	pthread_mutex_lock(&o->mu);
	pp = &o->idle;
	while (*pp != NULL) {
		struct idle_conn *ic = *pp;

		if (ic->gen != o->gen ||
		    now - ic->since_ms > CLUSTER_IDLE_TTL_MS) {
			*pp = ic->next;
			o->n_idle--;
			ic->next = stale;
			stale = ic;
			continue;
		}
		if (found == NULL && strcmp(ic->address, address) == 0) {
			*pp = ic->next;
			o->n_idle--;
			found = ic;
			continue;
		}
		pp = &ic->next;
	}
	pthread_mutex_unlock(&o->mu);
	idle_free_list(stale);
	if (found == NULL) {
		return false;
	}
	*conn = found->conn;
	free(found);
	return true;
}

/* Keep @conn (ownership transferred) for the next notification to
 * @address, unless it was dialed under generation @gen that is no longer
 * current or enough connections are kept already. */
static void idle_put(struct cluster_out *o,
		     const char *address,
		     uint64_t gen,
		     struct cluster_conn *conn)
{
	struct idle_conn *ic = NULL;

	if (conn->rbuf_len == 0) {
		ic = malloc(sizeof *ic);
	}
	if (ic != NULL) {
		snprintf(ic->address, sizeof ic->address, "%s", address);
		ic->gen = gen;
		ic->since_ms = uv_hrtime() / 1000000;
		ic->conn = *conn;
		pthread_mutex_lock(&o->mu);
		if (gen == o->gen && o->n_idle < CLUSTER_IDLE_MAX) {
			ic->next = o->idle;
			o->idle = ic;
			o->n_idle++;
			ic = NULL;
			conn = NULL;
		}
		pthread_mutex_unlock(&o->mu);
	}
	free(ic);
	if (conn != NULL) {
		cluster__conn_close(conn);
	}
}

/* Drop every kept connection (the dial context or pin changed). */
static void idle_flush(struct cluster_out *o)
{
	struct idle_conn *list;

	pthread_mutex_lock(&o->mu);
	list = o->idle;
	o->idle = NULL;
	o->n_idle = 0;
	o->gen++;
	pthread_mutex_unlock(&o->mu);
	idle_free_list(list);
}

/* Close the kept connections to addresses no member in @peers has. */
static void idle_prune(struct cluster_out *o, json_t *peers)
{
	struct idle_conn *gone = NULL;
	struct idle_conn **pp;

	pthread_mutex_lock(&o->mu);
	pp = &o->idle;
	while (*pp != NULL) {
		struct idle_conn *ic = *pp;
		bool keep = false;
		json_t *m;
		size_t i;

		json_array_foreach(peers, i, m)
		{
			const char *address =
			    json_string_value(json_object_get(m, "address"));

			if (address != NULL &&
			    strcmp(address, ic->address) == 0) {
				keep = true;
			}
		}
		if (keep && ic->gen == o->gen) {
			pp = &ic->next;
			continue;
		}
		*pp = ic->next;
		o->n_idle--;
		ic->next = gone;
		gone = ic;
	}
	pthread_mutex_unlock(&o->mu);
	idle_free_list(gone);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* A peer thread: one heartbeat per second on a kept connection, redialed
 * after any failure. */
static void *peer_thread(void *arg)
{
	struct cluster_peer *p = arg;
	struct cluster_conn conn = { .fd = -1 };
	bool connected = false;

	while (!atomic_load(&p->stop)) {
		char errmsg[CORRAL_ERRMSG_SIZE] = "";
		char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
		SSL_CTX *ctx = NULL;
		struct out_body *body = NULL;
		unsigned status = 0;
		int rv;

		rv = out_take(p->out, &ctx, pin, &body);
		if (rv == 0 && !connected) {
			rv = cluster__dial(ctx, p->address, pin, &conn, errmsg);
			connected = rv == 0;
		}
		SSL_CTX_free(ctx);
		if (rv == 0) {
			rv = cluster__request_bytes(
			    &conn, "POST", "/internal/heartbeat", NULL,
			    CLUSTER_MSG_CONTENT_TYPE, body->data, body->len,
			    &status, NULL, errmsg);
			if (rv == 0 && status != 200) {
				rv = CORRAL_EPROTO;
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "HTTP %u", status);
			}
			if (rv == 0) {
				atomic_store(&p->answered_ms,
					     uv_hrtime() / 1000000);
			}
			if (rv != 0) {
				cluster__conn_close(&conn);
				connected = false;
			}
		}
		free(body);
		if (rv != 0 && rv != -EAGAIN) {
			log_debug(
			    "msg=\"heartbeat\" member=%s address=%s "
			    "error=\"%s\"",
			    p->name, p->address, errmsg);
		}
		ERR_clear_error();
		sleep_ms(CLUSTER_HEARTBEAT_MS);
	}
	cluster__conn_close(&conn);
	out_unref(p->out);
	free(p);
	OPENSSL_thread_stop();
	return NULL;
}

static int thread_start(void *(*fn)(void *), void *arg);

static void relay_events_free(struct relay_event *e)
{
	while (e != NULL) {
		struct relay_event *next = e->next;

		free(e);
		e = next;
	}
}

/* Take up to a batch of events of @r as one POST body,
 * {"events":[...]}, into *@body (malloc'd) and *@len. Under r->mu. */
static int relay_take(struct event_relay *r, char **body, size_t *len)
{
	struct relay_event *e;
	size_t size = sizeof "{\"events\":[]}";
	unsigned n = 0;
	char *out;
	size_t at;

	for (e = r->head; e != NULL && n < CLUSTER_EVENTS_BATCH_MAX;
	     e = e->next) {
		if (n > 0 && size + e->len + 1 > CLUSTER_EVENTS_BATCH_BYTES) {
			break;
		}
		size += e->len + 1;
		n++;
	}
	out = malloc(size);
	if (out == NULL) {
		return -ENOMEM;
	}
	at = (size_t)sprintf(out, "{\"events\":[");
	while (n-- > 0) {
		e = r->head;
		r->head = e->next;
		if (r->head == NULL) {
			r->tail = NULL;
		}
		r->n--;
		if (out[at - 1] != '[') {
			out[at++] = ',';
		}
		memcpy(out + at, e->data, e->len);
		at += e->len;
		free(e);
	}
	out[at++] = ']';
	out[at++] = '}';
	out[at] = '\0';
	*body = out;
	*len = at;
	return 0;
}

/* A relay thread: send the queued events of one peer, a batch per POST,
 * on a kept connection (redialed once per batch after a failure). Events
 * are best effort: a batch the peer cannot take is dropped, logged. */
static void *relay_thread(void *arg)
{
	struct event_relay *r = arg;
	struct cluster_conn conn = { .fd = -1 };
	bool connected = false;

	for (;;) {
		char errmsg[CORRAL_ERRMSG_SIZE] = "";
		uint64_t dropped;
		char *body = NULL;
		size_t len = 0;
		unsigned status = 0;
		int attempt;
		int rv;

		pthread_mutex_lock(&r->mu);
		while (!r->stop && r->head == NULL) {
			pthread_cond_wait(&r->cv, &r->mu);
		}
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		rv = relay_take(r, &body, &len);
		dropped = r->dropped;
		r->dropped = 0;
		pthread_mutex_unlock(&r->mu);
		if (dropped > 0) {
			log_warn(
			    "msg=\"events not relayed: queue full\" "
			    "member=%s dropped=%llu",
			    r->name, (unsigned long long)dropped);
		}
		for (attempt = 0; rv == 0 && attempt < 2; attempt++) {
			if (!connected) {
				rv =
				    out_dial(r->out, r->address, &conn, errmsg);
				connected = rv == 0;
			}
			if (rv == 0) {
				rv = cluster__request_bytes(
				    &conn, "POST", "/internal/events", NULL,
				    "application/json", body, len, &status,
				    NULL, errmsg);
			}
			if (rv == 0 && status != 200) {
				rv = CORRAL_EPROTO;
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "HTTP %u", status);
				break; /* the peer refused: no retry */
			}
			if (rv != 0) {
				cluster__conn_close(&conn);
				connected = false;
				/* A kept connection the peer closed: once
				 * more on a fresh one. */
				if (attempt == 0 && rv != -EAGAIN) {
					rv = 0;
					continue;
				}
			}
			break;
		}
		if (rv == -ENOMEM && body == NULL) {
			/* Nothing taken: try again a little later. */
			sleep_ms(100);
		} else if (rv != 0) {
			log_debug(
			    "msg=\"events not relayed\" member=%s "
			    "error=\"%s\"",
			    r->name, errmsg);
		}
		free(body);
		ERR_clear_error();
	}
	cluster__conn_close(&conn);
	relay_events_free(r->head);
	out_unref(r->out);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	OPENSSL_thread_stop();
	return NULL;
}

/* Stop the relay of @p, if it has one (loop). */
static void relay_stop(struct cluster_peer *p)
{
	struct event_relay *r = p->relay;

	if (r == NULL) {
		return;
	}
	p->relay = NULL;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* The relay of @p, started on first use (loop). NULL on failure. */
static struct event_relay *relay_get(struct cluster_peer *p)
{
	struct event_relay *r = p->relay;

	if (r != NULL) {
		return r;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		return NULL;
	}
	snprintf(r->name, sizeof r->name, "%s", p->name);
	snprintf(r->address, sizeof r->address, "%s", p->address);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->out = out_ref(p->out);
	if (thread_start(relay_thread, r) != 0) {
		out_unref(r->out);
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return NULL;
	}
	p->relay = r;
	return r;
}

void cluster_events_relay(struct cluster *c, const char *event, size_t len)
{
	struct cluster_peer *p;

	for (p = c->peers; p != NULL; p = p->next) {
		struct event_relay *r = relay_get(p);
		struct relay_event *e;

		if (r == NULL) {
			log_warn(
			    "msg=\"event not relayed: out of memory\" "
			    "member=%s",
			    p->name);
			continue;
		}
		e = malloc(sizeof *e + len);
		if (e == NULL) {
			log_warn(
			    "msg=\"event not relayed: out of memory\" "
			    "member=%s",
			    p->name);
			continue;
		}
		e->next = NULL;
		e->len = len;
		memcpy(e->data, event, len);
		pthread_mutex_lock(&r->mu);
		if (r->n >= CLUSTER_EVENTS_QUEUE_MAX) {
			struct relay_event *old = r->head;

			r->head = old->next;
			if (r->head == NULL) {
				r->tail = NULL;
			}
			r->n--;
			r->dropped++;
			free(old);
		}
		if (r->tail != NULL) {
			r->tail->next = e;
		} else {
			r->head = e;
		}
		r->tail = e;
		r->n++;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

static int thread_start(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t thread;
	int rv;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rv = -pthread_create(&thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rv;
}

/* Create c->out on first use (loop). */
static int out_ensure(struct cluster *c)
{
	if (c->out != NULL) {
		return 0;
	}
	c->out = calloc(1, sizeof *c->out);
	if (c->out == NULL) {
		return -ENOMEM;
	}
	pthread_mutex_init(&c->out->mu, NULL);
	c->out->refs = 1;
	return 0;
}

/* Start a heartbeat thread for each peer of @peers not running one. */
static int peers_start_new(struct cluster *c, json_t *peers)
{
	json_t *m;
	size_t i;
	int rv;

	json_array_foreach(peers, i, m)
	{
		const char *name =
		    json_string_value(json_object_get(m, "name"));
		const char *address =
		    json_string_value(json_object_get(m, "address"));
		struct cluster_peer *p;
		bool have = false;

		if (name == NULL || address == NULL) {
			continue;
		}
		for (p = c->peers; p != NULL; p = p->next) {
			if (strcmp(p->name, name) == 0) {
				have = true;
			}
		}
		if (have) {
			continue;
		}
		p = calloc(1, sizeof *p);
		if (p == NULL) {
			return -ENOMEM;
		}
		snprintf(p->name, sizeof p->name, "%s", name);
		snprintf(p->address, sizeof p->address, "%s", address);
		atomic_init(&p->stop, false);
		atomic_init(&p->answered_ms, 0);
		p->out = out_ref(c->out);
		rv = thread_start(peer_thread, p);
		if (rv != 0) {
			out_unref(p->out);
			free(p);
			return rv;
		}
		p->next = c->peers;
		c->peers = p;
	}
	return 0;
}

int cluster_peers_set(struct cluster *c, json_t *peers)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	struct cluster_peer **pp;
	SSL_CTX *ctx;
	json_t *m;
	size_t i;
	int rv;

	rv = out_ensure(c);
	if (rv != 0) {
		return rv;
	}
	rv = dialer_prepare(c, &ctx, pin, errmsg);
	if (rv != 0) {
		return rv;
	}
	pthread_mutex_lock(&c->out->mu);
	if (c->out->ctx != ctx || strcmp(c->out->pin, pin) != 0) {
		SSL_CTX_free(c->out->ctx);
		c->out->ctx = ctx;
		memcpy(c->out->pin, pin, sizeof pin);
		c->out->gen++;
		ctx = NULL;
	}
	pthread_mutex_unlock(&c->out->mu);
	SSL_CTX_free(ctx); /* the same context: drop the extra reference */
	idle_prune(c->out, peers);

	/* Stop the threads of peers that left or moved. */
	pp = &c->peers;
	while (*pp != NULL) {
		struct cluster_peer *p = *pp;
		bool keep = false;

		json_array_foreach(peers, i, m)
		{
			const char *name =
			    json_string_value(json_object_get(m, "name"));
			const char *address =
			    json_string_value(json_object_get(m, "address"));

			if (name != NULL && address != NULL &&
			    strcmp(name, p->name) == 0 &&
			    strcmp(address, p->address) == 0) {
				keep = true;
			}
		}
		if (keep) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		relay_stop(p);
		atomic_store(&p->stop, true);
	}
	return peers_start_new(c, peers);
}

int cluster_peers_add(struct cluster *c, json_t *peers)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	char pin[CORRAL_CERT_FINGERPRINT_LEN + 1];
	SSL_CTX *ctx;
	int rv;

	rv = out_ensure(c);
	if (rv != 0) {
		return rv;
	}
	if (c->out->ctx == NULL) {
		rv = dialer_prepare(c, &ctx, pin, errmsg);
		if (rv != 0) {
			return rv;
		}
		pthread_mutex_lock(&c->out->mu);
		c->out->ctx = ctx;
		memcpy(c->out->pin, pin, sizeof pin);
		c->out->gen++;
		pthread_mutex_unlock(&c->out->mu);
	}
	return peers_start_new(c, peers);
}

uint64_t cluster_peer_answered_ms(const struct cluster *c, const char *name)
{
	const struct cluster_peer *p;

	for (p = c->peers; p != NULL; p = p->next) {
		if (strcmp(p->name, name) == 0) {
			return atomic_load(&p->answered_ms);
		}
	}
	return 0;
}

int cluster_heartbeat_body_set(struct cluster *c, const char *body, size_t len)
{
	struct out_body *copy;
	struct out_body *old;
	int rv;

	rv = out_ensure(c);
	if (rv != 0) {
		return rv;
	}
	copy = malloc(sizeof *copy + len);
	if (copy == NULL) {
		return -ENOMEM;
	}
	copy->len = len;
	if (len > 0) {
		memcpy(copy->data, body, len);
	}
	pthread_mutex_lock(&c->out->mu);
	old = c->out->body;
	c->out->body = copy;
	pthread_mutex_unlock(&c->out->mu);
	free(old);
	return 0;
}

/* A broadcast: one sender thread per peer, one waiter on the thread
 * pool. */
struct bcast {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned refs;
	unsigned pending;
	size_t n;
	char (*names)[64];
	char (*addresses)[256];
	bool *acked;
	char *path;
	char *body; /* owned: msgpack bytes */
	size_t body_len;
	unsigned timeout_ms;
	struct cluster_out *out; /* referenced */
	uv_work_t work;
	cluster_broadcast_cb cb;
	void *arg;
};

struct bcast_send {
	struct bcast *b;
	size_t i;
};

static void bcast_unref(struct bcast *b)
{
	unsigned refs;

	pthread_mutex_lock(&b->mu);
	refs = --b->refs;
	pthread_mutex_unlock(&b->mu);
	if (refs == 0) {
		out_unref(b->out);
		pthread_cond_destroy(&b->cond);
		pthread_mutex_destroy(&b->mu);
		free(b->names);
		free(b->addresses);
		free(b->acked);
		free(b->path);
		free(b->body);
		free(b);
	}
}

/* Send the broadcast's request on @conn, bounded by its timeout. */
static int bcast_request(struct bcast *b,
			 struct cluster_conn *conn,
			 unsigned *status,
			 char *errmsg)
{
	struct timeval tv = {
		.tv_sec = b->timeout_ms / 1000,
		.tv_usec = (long)(b->timeout_ms % 1000) * 1000,
	};

	setsockopt(conn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return cluster__request_bytes(conn, "POST", b->path, NULL,
				      CLUSTER_MSG_CONTENT_TYPE, b->body,
				      b->body_len, status, NULL, errmsg);
}

static void *bcast_send_thread(void *arg)
{
	struct bcast_send *s = arg;
	struct bcast *b = s->b;
	const char *address = b->addresses[s->i];
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	struct cluster_conn conn;
	unsigned status = 0;
	uint64_t gen;
	int rv = -EAGAIN;

	pthread_mutex_lock(&b->out->mu);
	gen = b->out->gen;
	pthread_mutex_unlock(&b->out->mu);
	/* A kept connection first; the member may have closed it since (idle
	 * timeout, restart), and then the request fails at once and goes
	 * again on a new connection: a change notification is idempotent. */
	if (idle_take(b->out, address, &conn)) {
		rv = bcast_request(b, &conn, &status, errmsg);
		if (rv != 0) {
			cluster__conn_close(&conn);
		}
	}
	if (rv != 0) {
		rv = out_dial(b->out, address, &conn, errmsg);
		if (rv == 0) {
			rv = bcast_request(b, &conn, &status, errmsg);
			if (rv != 0) {
				cluster__conn_close(&conn);
			}
		}
	}
	if (rv == 0) {
		idle_put(b->out, address, gen, &conn);
	}
	pthread_mutex_lock(&b->mu);
	b->acked[s->i] = rv == 0 && status == 200;
	b->pending--;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->mu);
	if (rv != 0) {
		log_debug("msg=\"notify\" member=%s error=\"%s\"",
			  b->names[s->i], errmsg);
	}
	ERR_clear_error();
	free(s);
	bcast_unref(b);
	OPENSSL_thread_stop();
	return NULL;
}

static void bcast_wait_work(uv_work_t *w)
{
	struct bcast *b = w->data;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += b->timeout_ms / 1000;
	deadline.tv_nsec += (long)(b->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mu);
	while (b->pending > 0) {
		if (pthread_cond_timedwait(&b->cond, &b->mu, &deadline) ==
		    ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
}

static void bcast_after_work(uv_work_t *w, int status)
{
	struct bcast *b = w->data;
	json_t *missing = json_array();
	size_t i;

	(void)status;
	pthread_mutex_lock(&b->mu);
	for (i = 0; i < b->n && missing != NULL; i++) {
		if (!b->acked[i]) {
			json_array_append_new(missing,
					      json_string(b->names[i]));
		}
	}
	pthread_mutex_unlock(&b->mu);
	b->cb(b->arg, missing);
	json_decref(missing);
	bcast_unref(b);
}

int cluster_broadcast(struct cluster *c,
		      json_t *peers,
		      const char *path,
		      const char *body,
		      size_t body_len,
		      unsigned timeout_ms,
		      cluster_broadcast_cb cb,
		      void *arg)
{
	struct cluster_peer *p;
	struct bcast *b;
	size_t n = 0;
	size_t i;
	json_t *m;
	int rv;

	rv = out_ensure(c);
	if (rv != 0) {
		return rv;
	}
	if (peers != NULL) {
		n = json_array_size(peers);
	} else {
		for (p = c->peers; p != NULL; p = p->next) {
			n++;
		}
	}
	b = calloc(1, sizeof *b);
	if (b == NULL) {
		return -ENOMEM;
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->refs = 1;
	b->out = out_ref(c->out);
	b->names = calloc(n + 1, sizeof *b->names);
	b->addresses = calloc(n + 1, sizeof *b->addresses);
	b->acked = calloc(n + 1, sizeof *b->acked);
	b->path = strdup(path);
	b->body = malloc(body_len > 0 ? body_len : 1);
	if (b->names == NULL || b->addresses == NULL || b->acked == NULL ||
	    b->path == NULL || b->body == NULL) {
		bcast_unref(b);
		return -ENOMEM;
	}
	if (body_len > 0) {
		memcpy(b->body, body, body_len);
	}
	b->body_len = body_len;
	b->n = n;
	b->timeout_ms = timeout_ms;
	b->cb = cb;
	b->arg = arg;
	if (peers != NULL) {
		json_array_foreach(peers, i, m)
		{
			const char *name =
			    json_string_value(json_object_get(m, "name"));
			const char *address =
			    json_string_value(json_object_get(m, "address"));

			snprintf(b->names[i], sizeof b->names[i], "%s",
				 name != NULL ? name : "?");
			snprintf(b->addresses[i], sizeof b->addresses[i], "%s",
				 address != NULL ? address : "");
		}
	} else {
		for (p = c->peers, i = 0; p != NULL; p = p->next, i++) {
			snprintf(b->names[i], sizeof b->names[i], "%s",
				 p->name);
			snprintf(b->addresses[i], sizeof b->addresses[i], "%s",
				 p->address);
		}
	}
	for (i = 0; i < n; i++) {
		struct bcast_send *s = malloc(sizeof *s);

		if (s == NULL) {
			continue; /* counted as not acknowledged */
		}
		s->b = b;
		s->i = i;
		pthread_mutex_lock(&b->mu);
		b->refs++;
		b->pending++;
		pthread_mutex_unlock(&b->mu);
		if (thread_start(bcast_send_thread, s) != 0) {
			pthread_mutex_lock(&b->mu);
			b->refs--;
			b->pending--;
			pthread_mutex_unlock(&b->mu);
			free(s);
		}
	}
	b->work.data = b;
	rv =
	    uv_queue_work(c->loop, &b->work, bcast_wait_work, bcast_after_work);
	if (rv != 0) {
		bcast_unref(b);
		return rv;
	}
	return 0;
}

static void cluster__peers_stop(struct cluster *c)
{
	while (c->peers != NULL) {
		struct cluster_peer *p = c->peers;

		c->peers = p->next;
		relay_stop(p);
		atomic_store(&p->stop, true);
	}
	if (c->out != NULL) {
		idle_flush(c->out);
		out_unref(c->out);
		c->out = NULL;
	}
}

/* ------------------------------------------------------------------------ */
/* Forwarding a request to one member                                         */

struct forward {
	uv_work_t work;
	struct cluster_out *out; /* referenced */
	char address[256];
	char *method;
	char *target;
	char *headers;
	char *body;
	int rv;
	unsigned status;
	char *answer;
	char etag[128];     /* the answer's ETag, "" for none */
	char location[512]; /* the answer's Location, "" for none */
	char errmsg[CORRAL_ERRMSG_SIZE];
	cluster_forward_cb cb;
	void *arg;
};

static void forward_free(struct forward *f)
{
	out_unref(f->out);
	free(f->method);
	free(f->target);
	free(f->headers);
	free(f->body);
	free(f->answer);
	free(f);
}

static void forward_work_cb(uv_work_t *w)
{
	struct forward *f = w->data;
	struct cluster_conn conn;
	struct timeval tv = { .tv_sec = CLUSTER_FORWARD_TIMEOUT_S };

	f->rv = out_dial(f->out, f->address, &conn, f->errmsg);
	if (f->rv != 0) {
		goto out;
	}
	setsockopt(conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	f->rv = cluster__request(&conn, f->method, f->target, f->headers,
				 f->body, &f->status, &f->answer, f->errmsg);
	if (f->rv == 0) {
		cluster__head_value(&conn, "ETag", f->etag, sizeof f->etag);
		cluster__head_value(&conn, "Location", f->location,
				    sizeof f->location);
	}
	cluster__conn_close(&conn);
out:
	ERR_clear_error();
}

static void forward_after_cb(uv_work_t *w, int status)
{
	struct forward *f = w->data;
	char headers[sizeof f->etag + sizeof f->location + 32];
	int n = 0;

	if (status != 0 && f->rv == 0) {
		f->rv = status;
		corral_errf(f->errmsg, sizeof f->errmsg, "cancelled");
	}
	if (f->etag[0] != '\0') {
		n = snprintf(headers, sizeof headers, "ETag: %s\r\n", f->etag);
	}
	snprintf(headers + n, sizeof headers - (size_t)n, "%s%s%s",
		 f->location[0] != '\0' ? "Location: " : "", f->location,
		 f->location[0] != '\0' ? "\r\n" : "");
	f->cb(f->arg, f->rv, f->status, f->answer != NULL ? f->answer : "",
	      headers, f->errmsg);
	forward_free(f);
}

int cluster_forward(struct cluster *c,
		    const char *name,
		    const char *method,
		    const char *target,
		    const char *headers,
		    const char *body,
		    cluster_forward_cb cb,
		    void *arg)
{
	struct cluster_peer *p;
	struct forward *f;
	int rv;

	for (p = c->peers; p != NULL; p = p->next) {
		if (strcmp(p->name, name) == 0) {
			break;
		}
	}
	if (p == NULL) {
		return -ENOENT;
	}
	rv = out_ensure(c);
	if (rv != 0) {
		return rv;
	}
	f = calloc(1, sizeof *f);
	if (f == NULL) {
		return -ENOMEM;
	}
	f->out = out_ref(c->out);
	snprintf(f->address, sizeof f->address, "%s", p->address);
	f->method = strdup(method);
	f->target = strdup(target);
	f->headers = strdup(headers != NULL ? headers : "");
	f->body = strdup(body != NULL ? body : "");
	if (f->method == NULL || f->target == NULL || f->headers == NULL ||
	    f->body == NULL) {
		forward_free(f);
		return -ENOMEM;
	}
	f->cb = cb;
	f->arg = arg;
	f->work.data = f;
	rv =
	    uv_queue_work(c->loop, &f->work, forward_work_cb, forward_after_cb);
	if (rv != 0) {
		forward_free(f);
	}
	return rv;
}

/* ------------------------------------------------------------------------ */
/* One request to several members                                            */

struct fanout_peer {
	char name[64];
	char address[256];
	bool done; /* answered or failed, before the fan-out finished */
	int rv;
	unsigned status;
	char *body; /* owned */
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* Shared by the loop and one sender thread per member; the loop's
 * reference goes once both handles closed. */
struct fanout {
	pthread_mutex_t mu;
	unsigned refs;
	bool finished; /* the loop took the answers: senders keep theirs out */
	size_t pending;
	bool found; /* a member answered something else than 404 */
	size_t n;
	struct fanout_peer *peers; /* owned, n entries */
	char *method;              /* owned */
	char *target;              /* owned */
	char *headers;             /* owned */
	char *body;                /* owned, NULL for none */
	unsigned timeout_ms;
	bool until_found;
	struct cluster_out *out; /* referenced */
	uv_async_t async;        /* senders wake the loop */
	uv_timer_t timer;        /* the bound */
	int open_handles;
	cluster_fanout_cb cb;
	void *arg;
};

struct fanout_send {
	struct fanout *f;
	size_t i;
};

static void fanout_unref(struct fanout *f)
{
	unsigned refs;
	size_t i;

	pthread_mutex_lock(&f->mu);
	refs = --f->refs;
	pthread_mutex_unlock(&f->mu);
	if (refs > 0) {
		return;
	}
	for (i = 0; i < f->n; i++) {
		free(f->peers[i].body);
	}
	out_unref(f->out);
	pthread_mutex_destroy(&f->mu);
	free(f->peers);
	free(f->method);
	free(f->target);
	free(f->headers);
	free(f->body);
	free(f);
}

/* Record the outcome of member @i, unless the loop no longer waits. */
static void fanout_record(struct fanout *f,
			  size_t i,
			  int rv,
			  unsigned status,
			  char *body,
			  const char *errmsg)
{
	struct fanout_peer *p = &f->peers[i];

	pthread_mutex_lock(&f->mu);
	if (!f->finished) {
		p->done = true;
		p->rv = rv;
		p->status = status;
		p->body = body;
		body = NULL;
		snprintf(p->errmsg, sizeof p->errmsg, "%s", errmsg);
		f->pending--;
		if (rv == 0 && status != 404 && status < 500) {
			f->found = true;
		}
		uv_async_send(&f->async);
	}
	pthread_mutex_unlock(&f->mu);
	free(body);
}

static void *fanout_thread(void *arg)
{
	struct fanout_send *s = arg;
	struct fanout *f = s->f;
	size_t i = s->i;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	struct cluster_conn conn;
	struct timeval tv = {
		.tv_sec = f->timeout_ms / 1000,
		.tv_usec = (long)(f->timeout_ms % 1000) * 1000,
	};
	unsigned status = 0;
	char *body = NULL;
	int rv;

	free(s);
	rv = out_dial(f->out, f->peers[i].address, &conn, errmsg);
	if (rv == 0) {
		setsockopt(conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(conn.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		rv = cluster__request(&conn, f->method, f->target, f->headers,
				      f->body, &status, &body, errmsg);
		cluster__conn_close(&conn);
	}
	fanout_record(f, i, rv, status, body, errmsg);
	ERR_clear_error();
	fanout_unref(f);
	OPENSSL_thread_stop();
	return NULL;
}

static void fanout_closed_cb(uv_handle_t *h)
{
	struct fanout *f = h->data;

	if (--f->open_handles == 0) {
		fanout_unref(f);
	}
}

/* Hand the answers to the callback (once), then close the handles. */
static void fanout_finish(struct fanout *f)
{
	struct cluster_answer *answers;
	size_t i;

	pthread_mutex_lock(&f->mu);
	if (f->finished) {
		pthread_mutex_unlock(&f->mu);
		return;
	}
	f->finished = true;
	pthread_mutex_unlock(&f->mu);
	/* From here on no sender touches f->peers. */
	answers = calloc(f->n + 1, sizeof *answers);
	for (i = 0; answers != NULL && i < f->n; i++) {
		struct fanout_peer *p = &f->peers[i];

		if (!p->done) {
			p->rv = -ETIMEDOUT;
			snprintf(p->errmsg, sizeof p->errmsg,
				 f->until_found && f->found
				     ? "not waited for"
				     : "no answer within %u ms",
				 f->timeout_ms);
		}
		answers[i].name = p->name;
		answers[i].rv = p->rv;
		answers[i].status = p->status;
		answers[i].body = p->body != NULL ? p->body : "";
		answers[i].errmsg = p->errmsg;
	}
	uv_timer_stop(&f->timer);
	uv_close((uv_handle_t *)&f->async, fanout_closed_cb);
	uv_close((uv_handle_t *)&f->timer, fanout_closed_cb);
	f->cb(f->arg, answers, answers != NULL ? f->n : 0);
	free(answers);
}

static void fanout_async_cb(uv_async_t *h)
{
	struct fanout *f = h->data;
	bool done;

	pthread_mutex_lock(&f->mu);
	done = f->pending == 0 || (f->until_found && f->found);
	pthread_mutex_unlock(&f->mu);
	if (done) {
		fanout_finish(f);
	}
}

static void fanout_timer_cb(uv_timer_t *t)
{
	fanout_finish(t->data);
}

json_t *cluster_peer_names(const struct cluster *c)
{
	const struct cluster_peer *p;
	json_t *names = json_array();

	for (p = c->peers; p != NULL && names != NULL; p = p->next) {
		if (json_array_append_new(names, json_string(p->name)) != 0) {
			json_decref(names);
			names = NULL;
		}
	}
	return names;
}

/* Whether @name is in @names (an array of strings; NULL: every name). */
static bool fanout_wanted(json_t *names, const char *name)
{
	json_t *v;
	size_t i;

	if (names == NULL) {
		return true;
	}
	json_array_foreach(names, i, v)
	{
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), name) == 0) {
			return true;
		}
	}
	return false;
}

int cluster_fanout(struct cluster *c,
		   json_t *names,
		   const char *method,
		   const char *target,
		   const char *headers,
		   const char *body,
		   unsigned timeout_ms,
		   bool until_found,
		   cluster_fanout_cb cb,
		   void *arg)
{
	struct cluster_peer *p;
	struct fanout *f;
	size_t n = 0;
	size_t i;
	int rv;

	rv = out_ensure(c);
	if (rv != 0) {
		return rv;
	}
	for (p = c->peers; p != NULL; p = p->next) {
		n += fanout_wanted(names, p->name) ? 1 : 0;
	}
	f = calloc(1, sizeof *f);
	if (f == NULL) {
		return -ENOMEM;
	}
	pthread_mutex_init(&f->mu, NULL);
	f->refs = 1;
	f->out = out_ref(c->out);
	f->peers = calloc(n + 1, sizeof *f->peers);
	f->method = strdup(method);
	f->target = strdup(target);
	f->headers = strdup(headers != NULL ? headers : "");
	f->body = body != NULL ? strdup(body) : NULL;
	if (f->peers == NULL || f->method == NULL || f->target == NULL ||
	    f->headers == NULL || (body != NULL && f->body == NULL)) {
		fanout_unref(f);
		return -ENOMEM;
	}
	for (p = c->peers, i = 0; p != NULL; p = p->next) {
		if (fanout_wanted(names, p->name)) {
			snprintf(f->peers[i].name, sizeof f->peers[i].name,
				 "%s", p->name);
			snprintf(f->peers[i].address,
				 sizeof f->peers[i].address, "%s", p->address);
			i++;
		}
	}
	f->n = n;
	f->pending = n;
	f->timeout_ms = timeout_ms;
	f->until_found = until_found;
	f->cb = cb;
	f->arg = arg;
	rv = uv_async_init(c->loop, &f->async, fanout_async_cb);
	if (rv != 0) {
		fanout_unref(f);
		return rv;
	}
	f->async.data = f;
	uv_timer_init(c->loop, &f->timer);
	f->timer.data = f;
	f->open_handles = 2;
	/* A fan-out does not hold the loop open: at shutdown corrald need not
	 * wait for a slow member (the answer would go nowhere). */
	uv_unref((uv_handle_t *)&f->async);
	uv_unref((uv_handle_t *)&f->timer);
	uv_timer_start(&f->timer, fanout_timer_cb, timeout_ms, 0);
	for (i = 0; i < n; i++) {
		struct fanout_send *s = malloc(sizeof *s);

		rv = -ENOMEM;
		if (s != NULL) {
			s->f = f;
			s->i = i;
			pthread_mutex_lock(&f->mu);
			f->refs++;
			pthread_mutex_unlock(&f->mu);
			rv = thread_start(fanout_thread, s);
			if (rv == 0) {
				continue;
			}
			free(s);
			pthread_mutex_lock(&f->mu);
			f->refs--;
			pthread_mutex_unlock(&f->mu);
		}
		fanout_record(f, i, rv, 0, NULL,
			      "cannot start a sender thread");
	}
	/* No member to ask: answer on the next loop iteration. */
	if (n == 0) {
		uv_async_send(&f->async);
	}
	return 0;
}
