/* The state module's lifecycle: the embedded dqlite node, a small pool of
 * wire-protocol connections to it, and work submitted from the loop that
 * runs on libuv's worker threads. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dqlite.h>
#include <openssl/sha.h>

#include <corral/log.h>
#include <corral/state.h>

#include "dqlite_client.h"
#include "dqlite_proto.h"

/* Connections in the pool; libuv's thread pool has 4 threads by default, so
 * a worker never waits for a connection held by a queued item. */
#define STATE_POOL_SIZE 4

/* Name of the database inside the node. */
#define STATE_DB_NAME "corral"

/* How long start-up waits for the node to elect itself leader. */
#define STATE_LEADER_WAIT_MS 30000
/* Size of the report of a start waiting for a leader. */
#define STATE_WAITING_SIZE 512
/* Pause before a member's start tries again to reach the leader. */
#define STATE_START_RETRY_MS 200

/* How long opening a pooled connection waits for a leader to be known. */
#define STATE_POOL_LEADER_WAIT_MS 5000

/* Attempts of a write that finds the database locked (SQLITE_BUSY): about
 * 0.25 s of pauses in all. */
#define STATE_BUSY_RETRIES 20

struct pool_conn {
	struct dqlite_client client;
	uint32_t db;
	bool open;
	bool in_use;
};

struct state {
	uv_loop_t *loop; /* borrowed */
	char *dir;       /* owned */
	char db_dir[4096];
	char bind_addr[64];
	char address[256]; /* raft address: bind_addr, or a member address */
	uint64_t node_id;
	state_connect_fn connect; /* the member channel, or NULL */
	void *connect_arg;        /* borrowed */
	unsigned latency_ms;
	dqlite_node *node; /* owned */
	bool ready;
	atomic_bool stopping; /* read by worker threads */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_mutex_t write_mu; /* one write transaction at a time */
	struct pool_conn conns[STATE_POOL_SIZE];

	/* Start-up. */
	bool start_running; /* under mu: stop waits for it */
	uv_work_t start_req;
	state_ready_cb ready_cb;
	void *ready_arg;
	int start_rv;
	char start_errmsg[CORRAL_ERRMSG_SIZE];
	/* Under mu: while the start waits for a leader, what the last look
	 * for one found (state_start_waiting()); "" otherwise. */
	char waiting[STATE_WAITING_SIZE];

	/* Re-addressing or re-joining (state_reconfigure()). */
	uint64_t new_id;
	char new_address[256];
	bool new_fresh;
	state_started_fn new_started; /* or NULL; called with ready_arg */

	/* Shut-down. */
	uv_work_t stop_req;
	void (*stop_cb)(void *arg);
	void *stop_arg;
};

struct state_work {
	uv_work_t req;
	struct state *s;
	bool write;
	state_work_fn fn;
	state_done_cb done;
	void *arg;
	int rv;
	char errmsg[CORRAL_ERRMSG_SIZE];
};

/* ------------------------------------------------------------------------ */
/* struct state_tx over a pooled dqlite connection                           */

static int dq_exec(void *impl,
		   const char *sql,
		   const struct dqlite_param *params,
		   unsigned n,
		   int64_t *last_id,
		   int64_t *changes,
		   char *errmsg)
{
	struct pool_conn *pc = impl;
	uint64_t last = 0;
	uint64_t count = 0;
	int rv;

	rv = dqlite_client_exec_sql(&pc->client, pc->db, sql, params, n, &last,
				    &count);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s",
			    pc->client.errmsg[0] != '\0' ? pc->client.errmsg
							 : corral_strerror(rv));
		return rv;
	}
	if (last_id != NULL) {
		*last_id = (int64_t)last;
	}
	if (changes != NULL) {
		*changes = (int64_t)count;
	}
	return 0;
}

static int dq_query(void *impl,
		    const char *sql,
		    const struct dqlite_param *params,
		    unsigned n,
		    struct dqlite_rows *rows,
		    char *errmsg)
{
	struct pool_conn *pc = impl;
	int rv;

	rv = dqlite_client_query_sql(&pc->client, pc->db, sql, params, n, rows);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s",
			    pc->client.errmsg[0] != '\0' ? pc->client.errmsg
							 : corral_strerror(rv));
	}
	return rv;
}

static void *dq_client(void *impl)
{
	struct pool_conn *pc = impl;

	return &pc->client;
}

static const struct state_tx_ops dq_tx_ops = {
	.exec = dq_exec,
	.query = dq_query,
	.client = dq_client,
};

/* ------------------------------------------------------------------------ */
/* Pool                                                                       */

static void pool_conn_close(struct pool_conn *pc)
{
	if (pc->open) {
		dqlite_client_close(&pc->client);
		pc->open = false;
	}
}

/* Connect @c to the node at raft address @address: the local node through
 * its abstract socket, another member's through the member channel. */
static int node_connect(struct state *s,
			const char *address,
			struct dqlite_client *c,
			char *errmsg)
{
	int fd;
	int rv;

	if (address[0] == '@' || strcmp(address, s->address) == 0) {
		rv = dqlite_client_connect_unix(s->bind_addr, &fd);
	} else if (s->connect != NULL) {
		rv = s->connect(s->connect_arg, address, &fd);
	} else {
		rv = -ENOTSUP;
	}
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "connect to dqlite node %s: %s", address,
			    corral_strerror(rv));
		return rv;
	}
	rv = dqlite_client_init(c, fd);
	if (rv != 0) {
		close(fd);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "dqlite handshake: %s",
			    corral_strerror(rv));
		return rv;
	}
	return 0;
}

/* Ask which node leads into *@id (0: none known) and *@address (free it
 * with dqlite_proto_free()). dqlite answers LEADER only on voters, so when
 * the local node does not know and @ask_voters is set, the voters of its
 * raft configuration are asked in turn, through the member channel.
 * *@asked (may be NULL) tells whether another voter was listed to ask. */
/* Milliseconds of CLOCK_MONOTONIC: waits are bounded in real time, since a
 * dial to a vanished member takes up to CLUSTER_DIAL_TIMEOUT_MS. */
static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int leader_find(struct state *s,
		       struct dqlite_client *local,
		       bool ask_voters,
		       uint64_t *id,
		       char **address,
		       bool *asked,
		       char *report,
		       char *errmsg)
{
	struct dqlite_proto_nodes nodes = { 0 };
	char ignored[CORRAL_ERRMSG_SIZE];
	size_t used = 0;
	unsigned voters = 0;
	unsigned reached = 0;
	size_t i;
	int rv;

	rv = dqlite_client_leader(local, id, address);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "ask for leader: %s",
			    local->errmsg);
		return rv;
	}
	if (*id != 0 || !ask_voters || s->connect == NULL) {
		return 0;
	}
	rv = dqlite_client_cluster(local, &nodes);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "list raft nodes: %s",
			    local->errmsg);
		return rv;
	}
	for (i = 0; i < nodes.n && *id == 0; i++) {
		struct dqlite_client peer;
		uint64_t peer_id = 0;
		char *peer_address = NULL;

		if (nodes.nodes[i].role != DQLITE_PROTO_ROLE_VOTER) {
			continue;
		}
		if (nodes.nodes[i].id == s->node_id) {
			voters++;
			reached++;
			continue;
		}
		if (asked != NULL) {
			*asked = true;
		}
		voters++;
		if (node_connect(s, nodes.nodes[i].address, &peer, ignored) !=
		    0) {
			/* Named in the report: who has to come back. */
			if (report != NULL && used < STATE_WAITING_SIZE) {
				const char *why = ignored;
				size_t al = strlen(nodes.nodes[i].address);
				int n;

				/* "dial ADDR: connect: ..." names it twice. */
				if (strncmp(why, "dial ", 5) == 0 &&
				    strncmp(why + 5, nodes.nodes[i].address,
					    al) == 0 &&
				    strncmp(why + 5 + al, ": ", 2) == 0) {
					why += 5 + al + 2;
				}
				n = snprintf(report + used,
					     STATE_WAITING_SIZE - used,
					     "%s%s (%s)", used == 0 ? "" : ", ",
					     nodes.nodes[i].address, why);

				used += n > 0 ? (size_t)n : 0;
			}
			continue;
		}
		reached++;
		dqlite_client_set_timeout(&peer, 2000);
		if (dqlite_client_leader(&peer, &peer_id, &peer_address) == 0 &&
		    peer_id != 0) {
			dqlite_proto_free(*address);
			*id = peer_id;
			*address = peer_address;
		} else {
			dqlite_proto_free(peer_address);
		}
		dqlite_client_close(&peer);
	}
	dqlite_proto_nodes_close(&nodes);
	if (report != NULL && *id == 0 && voters > 0) {
		char list[STATE_WAITING_SIZE];
		char head[160];
		size_t hn;
		size_t ln;

		memcpy(list, report, sizeof list);
		snprintf(head, sizeof head,
			 "no database leader: %u of %u voters reachable, a "
			 "majority (%u) is needed%s",
			 reached, voters, voters / 2 + 1,
			 list[0] != '\0' ? "; unreachable: " : "");
		/* The list is cut when it does not fit. */
		hn = strlen(head);
		ln = strnlen(list, sizeof list);
		if (ln > STATE_WAITING_SIZE - 1 - hn) {
			ln = STATE_WAITING_SIZE - 1 - hn;
		}
		memcpy(report, head, hn);
		memcpy(report + hn, list, ln);
		report[hn + ln] = '\0';
	}
	return 0;
}

/* Connect @c to the leader: ask the local node which node leads (waiting a
 * little while none is known, as during an election) and reconnect there
 * when it is another member. SQL sent to a follower fails with "not
 * leader", so every pooled connection goes to the leader. */
static int leader_connect(struct state *s,
			  struct dqlite_client *c,
			  char *errmsg)
{
	char report[STATE_WAITING_SIZE] = "";
	char *address = NULL;
	uint64_t start = mono_ms();
	uint64_t id = 0;
	int rv;

	rv = node_connect(s, s->bind_addr, c, errmsg);
	if (rv != 0) {
		return rv;
	}
	while (!s->stopping) {
		report[0] = '\0';
		rv = leader_find(s, c, true, &id, &address, NULL, report,
				 errmsg);
		if (rv != 0) {
			dqlite_client_close(c);
			return rv;
		}
		if (id != 0 || mono_ms() - start >= STATE_POOL_LEADER_WAIT_MS) {
			break;
		}
		dqlite_proto_free(address);
		address = NULL;
		usleep(50000);
	}
	if (id == 0) {
		dqlite_proto_free(address);
		dqlite_client_close(c);
		/* Say who is missing (LXD users get "no available dqlite
		 * leader server found" and nothing else). */
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s",
			    report[0] != '\0' ? report : "no database leader");
		return CORRAL_ENOLEADER;
	}
	if (id == s->node_id || address[0] == '@') {
		dqlite_proto_free(address);
		return 0;
	}
	dqlite_client_close(c);
	rv = node_connect(s, address, c, errmsg);
	if (rv != 0) {
		corral_errwrapf(errmsg, CORRAL_ERRMSG_SIZE, "leader %llu",
				(unsigned long long)id);
	}
	dqlite_proto_free(address);
	return rv;
}

/* Open @pc to the node that leads, once (worker thread). */
static int pool_conn_open_once(struct state *s,
			       struct pool_conn *pc,
			       char *errmsg)
{
	int rv;

	rv = leader_connect(s, &pc->client, errmsg);
	if (rv != 0) {
		return rv;
	}
	pc->open = true;
	rv = dqlite_client_open(&pc->client, STATE_DB_NAME, &pc->db);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "open database: %s",
			    pc->client.errmsg);
		pool_conn_close(pc);
		return rv;
	}
	rv = dqlite_client_exec_sql(&pc->client, pc->db,
				    "PRAGMA foreign_keys = ON", NULL, 0, NULL,
				    NULL);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "enable foreign keys: %s", pc->client.errmsg);
		pool_conn_close(pc);
		return rv;
	}
	return 0;
}

/* Open @pc to the leader (worker thread). The node named leader may lose
 * leadership before the connection's first statement (a member restarting
 * while an election settles): its "not leader" is then retried on the new
 * leader for a while, as a write retries once. */
static int pool_conn_open(struct state *s, struct pool_conn *pc, char *errmsg)
{
	uint64_t start = mono_ms();
	int rv;

	for (;;) {
		rv = pool_conn_open_once(s, pc, errmsg);
		if (rv != CORRAL_ENOTLEADER || s->stopping ||
		    mono_ms() - start >= STATE_POOL_LEADER_WAIT_MS) {
			return rv;
		}
		usleep(50000);
	}
}

static struct pool_conn *pool_acquire(struct state *s)
{
	unsigned i;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (i = 0; i < STATE_POOL_SIZE; i++) {
			if (!s->conns[i].in_use) {
				s->conns[i].in_use = true;
				pthread_mutex_unlock(&s->mu);
				return &s->conns[i];
			}
		}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

static void pool_release(struct state *s, struct pool_conn *pc)
{
	pthread_mutex_lock(&s->mu);
	pc->in_use = false;
	pthread_cond_broadcast(&s->cv); /* stop may wait on the same cv */
	pthread_mutex_unlock(&s->mu);
}

/* One attempt of run_work(). *@retry is set when the attempt failed
 * because the connection broke or its node is not (or no longer) the
 * leader, at a point where doing it again is safe: for a read always (reads
 * are idempotent), for a write only when it failed before any statement of
 * the transaction ran. */
static int run_work_once(struct state *s,
			 bool write,
			 state_work_fn fn,
			 void *arg,
			 char *errmsg,
			 bool *retry)
{
	struct pool_conn *pc;
	struct state_tx tx;
	bool started = false;
	int rv;

	*retry = false;

	if (s->stopping || s->node == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "database is not running");
		return CORRAL_ENOLEADER;
	}
	pc = pool_acquire(s);
	if (!pc->open) {
		rv = pool_conn_open(s, pc, errmsg);
		if (rv != 0) {
			pool_release(s, pc);
			return rv;
		}
	}
	memset(&tx, 0, sizeof tx);
	tx.ops = &dq_tx_ops;
	tx.impl = pc;
	tx.write = write;
	if (write) {
		pthread_mutex_lock(&s->write_mu);
		rv = state_tx_exec(&tx, "BEGIN", NULL, 0, NULL, NULL);
		if (rv != 0) {
			goto done;
		}
	}
	started = true;
	rv = fn(&tx, arg);
	if (write) {
		if (rv == 0) {
			rv = state_tx_exec(&tx, "COMMIT", NULL, 0, NULL, NULL);
			if (rv != 0) {
				corral_errwrapf(tx.errmsg, sizeof tx.errmsg,
						"commit");
			}
		}
		if (rv != 0) {
			char keep[CORRAL_ERRMSG_SIZE];

			memcpy(keep, tx.errmsg, sizeof keep);
			state_tx_exec(&tx, "ROLLBACK", NULL, 0, NULL, NULL);
			memcpy(tx.errmsg, keep, sizeof keep);
		}
	}
done:
	if (write) {
		pthread_mutex_unlock(&s->write_mu);
	}
	/* Leadership moved: the next use reconnects to the new leader. */
	if (pc->client.broken || rv == CORRAL_ENOTLEADER) {
		pool_conn_close(pc);
		*retry = !write || !started;
	}
	pool_release(s, pc);
	if (rv != 0) {
		corral_errf(
		    errmsg, CORRAL_ERRMSG_SIZE, "%s",
		    tx.errmsg[0] != '\0' ? tx.errmsg : corral_strerror(rv));
	}
	return rv;
}

/* Run @fn in a transaction when @write (worker thread). A failure caused
 * by a connection to a node that died or lost leadership is retried once on
 * a fresh connection, which finds the current leader, when that is safe
 * (see run_work_once()); a write that found the database locked by another
 * member's transaction is run again up to STATE_BUSY_RETRIES times;
 * otherwise the failure is reported. So @fn may run more than once. */
static int run_work(struct state *s,
		    bool write,
		    state_work_fn fn,
		    void *arg,
		    char *errmsg)
{
	unsigned busy = 0;
	bool retry;
	int rv;

	for (;;) {
		rv = run_work_once(s, write, fn, arg, errmsg, &retry);
		if (rv != 0 && retry && !s->stopping) {
			rv = run_work_once(s, write, fn, arg, errmsg, &retry);
		}
		/* Another member's write held the leader's write lock: the
		 * transaction was rolled back, run it again after a short,
		 * growing, jittered pause. */
		if (rv != CORRAL_EBUSY || s->stopping ||
		    ++busy > STATE_BUSY_RETRIES) {
			return rv;
		}
		usleep((useconds_t)(busy * 1000 + (unsigned)rand() % 1000));
	}
}

/* ------------------------------------------------------------------------ */
/* Node                                                                       */

/* Write DIR/database/info: the node id and raft address of @s. */
static int info_write(struct state *s, char *errmsg)
{
	char path[4200];
	FILE *f;
	int rv;

	snprintf(path, sizeof path, "%s/info", s->db_dir);
	f = fopen(path, "w");
	if (f == NULL) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "create %s: %s", path,
			    strerror(errno));
		return rv;
	}
	fprintf(f, "id: %llu\naddress: %s\nlatency_ms: %u\n",
		(unsigned long long)s->node_id, s->address, s->latency_ms);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rv = -errno;
		fclose(f);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "write %s: %s", path,
			    strerror(errno));
		return rv;
	}
	fclose(f);
	return 0;
}

int state_set_latency(struct state *s, unsigned ms, char *errmsg)
{
	if (ms == 0 || ms == s->latency_ms) {
		return 0;
	}
	s->latency_ms = ms;
	return info_write(s, errmsg);
}

/* Read DIR/database/info of @s: its id, raft address (@addr, 256 bytes)
 * and raft latency (0 when absent). Returns 0, or a negated errno
 * (-ENOENT: no file yet). */
static int info_read(const struct state *s,
		     unsigned long long *id,
		     unsigned *latency,
		     char addr[256])
{
	char path[4200];
	char buf[512];
	FILE *f;

	*id = 0;
	*latency = 0;
	addr[0] = '\0';
	snprintf(path, sizeof path, "%s/info", s->db_dir);
	f = fopen(path, "r");
	if (f == NULL) {
		return -errno;
	}
	while (fgets(buf, sizeof buf, f) != NULL) {
		if (sscanf(buf, "id: %llu", id) == 1 ||
		    sscanf(buf, "latency_ms: %u", latency) == 1) {
			continue;
		}
		sscanf(buf, "address: %255s", addr);
	}
	fclose(f);
	return 0;
}

bool state_stored_cluster_address(const struct state *s, char *out, size_t size)
{
	unsigned long long id;
	unsigned latency;
	char addr[256];

	if (info_read(s, &id, &latency, addr) != 0 || id == 0 ||
	    addr[0] == '\0' || addr[0] == '@') {
		return false;
	}
	snprintf(out, size, "%s", addr);
	return true;
}

/* Read or create DIR/database/info: the node id and raft address. */
static int node_info(struct state *s, bool *fresh, char *errmsg)
{
	unsigned long long id;
	unsigned latency;
	char addr[256];
	int rv;

	rv = info_read(s, &id, &latency, addr);
	if (rv == 0) {
		/* corral.raft_latency_ms as last applied on this member: the
		 * node needs it before the database can be read. */
		if (latency >= 1 && latency <= 10000) {
			s->latency_ms = latency;
		}
		if (id == 0 || addr[0] == '\0') {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "%s/info is corrupt: no id or address",
				    s->db_dir);
			return CORRAL_EINVALID;
		}
		s->node_id = id;
		/* A standalone node's abstract name follows the state dir. */
		snprintf(s->address, sizeof s->address, "%s",
			 addr[0] == '@' ? s->bind_addr : addr);
		*fresh = false;
		return 0;
	}
	if (rv != -ENOENT) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "open %s/info: %s",
			    s->db_dir, strerror(-rv));
		return rv;
	}
	s->node_id = 1;
	snprintf(s->address, sizeof s->address, "%s", s->bind_addr);
	*fresh = true;
	return info_write(s, errmsg);
}

/* Wait until the node knows a leader (itself, in a one-member cluster). */
static int wait_leader(struct state *s, char *errmsg)
{
	struct dqlite_client c;
	uint64_t id = 0;
	char *address = NULL;
	uint64_t start;
	uint64_t next_ask = 0;
	uint64_t next_log;
	uint64_t waited = 0;
	bool asked;
	int fd;
	int rv;

	rv = dqlite_client_connect_unix(s->bind_addr, &fd);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "connect to dqlite node: %s", corral_strerror(rv));
		return rv;
	}
	rv = dqlite_client_init(&c, fd);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "dqlite handshake: %s",
			    corral_strerror(rv));
		return rv;
	}
	/* A cluster member waits as long as it takes: the others may be
	 * starting too (a whole cluster powered on), and giving up would
	 * leave the cluster one voter short. */
	start = mono_ms();
	next_log = 10000;
	for (; (waited < STATE_LEADER_WAIT_MS || s->address[0] != '@') &&
	       !s->stopping;
	     waited = mono_ms() - start) {
		char report[STATE_WAITING_SIZE] = "";

		/* Voters elsewhere are asked every 100 ms only. Until the
		 * local configuration lists one (a joiner, before the
		 * leader's first entries), looking costs no dial: look
		 * again at every turn. */
		asked = false;
		rv = leader_find(s, &c, waited >= next_ask, &id, &address,
				 &asked, report, errmsg);
		if (rv != 0) {
			break;
		}
		if (asked) {
			next_ask = waited + 100;
			if (id == 0) {
				pthread_mutex_lock(&s->mu);
				snprintf(s->waiting, sizeof s->waiting, "%s",
					 report);
				pthread_mutex_unlock(&s->mu);
			}
		}
		if (waited >= next_log) {
			char now[STATE_WAITING_SIZE];

			next_log += 10000;
			state_start_waiting(s, now, sizeof now);
			log_warn(
			    "msg=\"waiting for a database leader\" "
			    "waited_s=%llu state=\"%s\"",
			    (unsigned long long)(waited / 1000), now);
		}
		if (id != 0) {
			dqlite_proto_free(address);
			break;
		}
		dqlite_proto_free(address);
		address = NULL;
		usleep(5000);
	}
	dqlite_client_close(&c);
	pthread_mutex_lock(&s->mu);
	s->waiting[0] = '\0';
	pthread_mutex_unlock(&s->mu);
	if (rv == 0 && id == 0 && s->stopping) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "stopping");
		return CORRAL_ENOLEADER;
	}
	if (rv == 0 && id == 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "no leader elected after %d ms",
			    STATE_LEADER_WAIT_MS);
		return CORRAL_ENOLEADER;
	}
	return rv;
}

static int schema_work(struct state_tx *tx, void *arg)
{
	(void)arg;
	return state_schema_apply(tx);
}

/* Called by dqlite (on a worker thread) to reach another node. */
static int node_connect_cb(void *arg, const char *address, int *fd)
{
	struct state *s = arg;

	if (address[0] == '@') {
		return dqlite_client_connect_unix(address, fd);
	}
	if (s->connect == NULL) {
		return -ENOTSUP;
	}
	return s->connect(s->connect_arg, address, fd);
}

/* Create, configure and start the node of @s; with @recover, first make
 * its raft configuration the single voter {node_id, address}. */
static int node_run(struct state *s, bool recover, char *errmsg)
{
	int rv;

	rv = dqlite_node_create(s->node_id, s->address, s->db_dir, &s->node);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "dqlite_node_create(): %s",
			    s->node != NULL ? dqlite_node_errmsg(s->node)
					    : "out of memory");
		return CORRAL_EDBFAIL;
	}
	if (dqlite_node_set_bind_address(s->node, s->bind_addr) != 0 ||
	    dqlite_node_set_connect_func(s->node, node_connect_cb, s) != 0 ||
	    dqlite_node_set_network_latency_ms(s->node, s->latency_ms) != 0 ||
	    /* Snapshot every 128 entries and keep 512 behind it. Raft
	     * entries carry whole WAL pages and stay in memory until a
	     * snapshot trims them: 1024/8192 held 175 MiB after 3000
	     * profile creates, 128/512 holds about 50 MiB, and a member
	     * that lags by less than 512 writes still catches up from the
	     * log. */
	    dqlite_node_set_snapshot_params(s->node, 128, 512) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "configure dqlite node: %s",
			    dqlite_node_errmsg(s->node));
		return CORRAL_EDBFAIL;
	}
	if (recover) {
		struct dqlite_node_info_ext info = {
			.size = sizeof info,
			.id = s->node_id,
			.address = (uint64_t)(uintptr_t)s->address,
			.dqlite_role = DQLITE_PROTO_ROLE_VOTER,
		};

		if (dqlite_node_recover_ext(s->node, &info, 1) != 0) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "dqlite_node_recover_ext(): %s",
				    dqlite_node_errmsg(s->node));
			return CORRAL_EDBFAIL;
		}
	}
	rv = dqlite_node_start(s->node);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "dqlite_node_start(): %s",
			    dqlite_node_errmsg(s->node));
		return CORRAL_EDBFAIL;
	}
	return 0;
}

static void start_work_cb(uv_work_t *req)
{
	struct state *s = req->data;
	char *errmsg = s->start_errmsg;
	bool fresh = false;
	int rv;

	if (mkdir(s->db_dir, 0700) != 0 && errno != EEXIST) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "mkdir %s: %s",
			    s->db_dir, strerror(errno));
		goto out;
	}
	rv = node_info(s, &fresh, errmsg);
	if (rv != 0) {
		goto out;
	}
	rv = node_run(s, false, errmsg);
	if (rv != 0) {
		goto out;
	}
	for (;;) {
		rv = wait_leader(s, errmsg);
		if (rv == 0) {
			/* Migrations manage their own transactions. */
			rv = run_work(s, false, schema_work, NULL, errmsg);
		}
		/* A member starting with the others (a whole cluster started
		 * at once) meets leaders that are elected and lost, and
		 * members not ready to relay yet: it tries again. A schema
		 * this binary cannot run is final. */
		if (rv == 0 || s->stopping || s->address[0] == '@' ||
		    rv == CORRAL_ESCHEMA) {
			break;
		}
		log_warn(
		    "msg=\"database not up yet, trying again\" "
		    "error=\"%s\"",
		    errmsg);
		usleep(STATE_START_RETRY_MS * 1000);
	}
out:
	s->start_rv = rv;
	pthread_mutex_lock(&s->mu);
	s->start_running = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void start_after_cb(uv_work_t *req, int status)
{
	struct state *s = req->data;

	if (status != 0 && s->start_rv == 0) {
		s->start_rv = status;
		corral_errf(s->start_errmsg, sizeof s->start_errmsg,
			    "start cancelled");
	}
	s->ready = s->start_rv == 0 && !s->stopping;
	s->ready_cb(s->ready_arg, s->start_rv, s->start_errmsg);
}

/* ------------------------------------------------------------------------ */
/* Public                                                                     */

int state_create(uv_loop_t *loop,
		 const struct state_config *cfg,
		 struct state **out,
		 char *errmsg)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char real[4096];
	struct state *s;
	unsigned i;

	s = calloc(1, sizeof *s);
	if (s == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "state: out of memory");
		return -ENOMEM;
	}
	s->loop = loop;
	s->dir = strdup(cfg->dir);
	if (s->dir == NULL) {
		free(s);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "state: out of memory");
		return -ENOMEM;
	}
	s->latency_ms = cfg->latency_ms != 0 ? cfg->latency_ms : 20;
	snprintf(s->db_dir, sizeof s->db_dir, "%s/database", cfg->dir);
	/* The node's socket name is derived from the state dir, so many
	 * corrald can share a network namespace. */
	if (realpath(cfg->dir, real) == NULL) {
		snprintf(real, sizeof real, "%s", cfg->dir);
	}
	SHA256((const unsigned char *)real, strlen(real), digest);
	snprintf(s->bind_addr, sizeof s->bind_addr, "@corral-");
	for (i = 0; i < 12; i++) {
		snprintf(s->bind_addr + 8 + 2 * i, 3, "%02x", digest[i]);
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&s->write_mu, NULL);
	*out = s;
	return 0;
}

int state_start(struct state *s, state_ready_cb cb, void *arg)
{
	int rv;

	s->ready_cb = cb;
	s->ready_arg = arg;
	s->start_req.data = s;
	s->start_running = true;
	rv = uv_queue_work(s->loop, &s->start_req, start_work_cb,
			   start_after_cb);
	if (rv != 0) {
		s->start_running = false;
	}
	return rv;
}

void state_start_waiting(struct state *s, char *out, size_t size)
{
	pthread_mutex_lock(&s->mu);
	snprintf(out, size, "%s", s->waiting);
	pthread_mutex_unlock(&s->mu);
}

bool state_ready(const struct state *s)
{
	return s->ready;
}

static void submit_work_cb(uv_work_t *req)
{
	struct state_work *w = req->data;

	w->rv = run_work(w->s, w->write, w->fn, w->arg, w->errmsg);
}

static void submit_after_cb(uv_work_t *req, int status)
{
	struct state_work *w = req->data;

	if (status != 0 && w->rv == 0) {
		w->rv = status;
		corral_errf(w->errmsg, sizeof w->errmsg, "cancelled");
	}
	w->done(w->arg, w->rv, w->errmsg);
	free(w);
}

int state_submit(struct state *s,
		 bool write,
		 state_work_fn work,
		 state_done_cb done,
		 void *arg)
{
	struct state_work *w;
	int rv;

	if (!s->ready || s->stopping) {
		return CORRAL_ENOLEADER;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		return -ENOMEM;
	}
	w->req.data = w;
	w->s = s;
	w->write = write;
	w->fn = work;
	w->done = done;
	w->arg = arg;
	rv = uv_queue_work(s->loop, &w->req, submit_work_cb, submit_after_cb);
	if (rv != 0) {
		free(w);
	}
	return rv;
}

static void stop_work_cb(uv_work_t *req)
{
	struct state *s = req->data;
	unsigned i;

	/* A start still running creates the node: let it finish first. */
	pthread_mutex_lock(&s->mu);
	while (s->start_running) {
		pthread_cond_wait(&s->cv, &s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	/* Take every connection: waits for work still running. */
	for (i = 0; i < STATE_POOL_SIZE; i++) {
		struct pool_conn *pc = pool_acquire(s);
		pool_conn_close(pc);
	}
	if (s->node != NULL) {
		dqlite_node_stop(s->node);
		dqlite_node_destroy(s->node);
		s->node = NULL;
	}
}

static void stop_after_cb(uv_work_t *req, int status)
{
	struct state *s = req->data;

	(void)status;
	s->stop_cb(s->stop_arg);
}

void state_stop(struct state *s, void (*cb)(void *arg), void *arg)
{
	s->stopping = true;
	s->ready = false;
	s->stop_cb = cb;
	s->stop_arg = arg;
	s->stop_req.data = s;
	if (uv_queue_work(s->loop, &s->stop_req, stop_work_cb, stop_after_cb) !=
	    0) {
		stop_work_cb(&s->stop_req);
		cb(arg);
	}
}

/* Remove one entry under the database dir (nftw() callback, depth
 * first); the dir itself stays. */
static int remove_entry_cb(const char *path,
			   const struct stat *sb,
			   int flag,
			   struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	if (ftw->level == 0) {
		return 0;
	}
	return remove(path) != 0 ? -1 : 0;
}

static void reconfigure_work_cb(uv_work_t *req)
{
	struct state *s = req->data;
	char *errmsg = s->start_errmsg;
	struct pool_conn *held[STATE_POOL_SIZE];
	unsigned i;
	int rv;

	/* Take every connection: waits for work still running. */
	for (i = 0; i < STATE_POOL_SIZE; i++) {
		held[i] = pool_acquire(s);
		pool_conn_close(held[i]);
	}
	if (s->node != NULL) {
		dqlite_node_stop(s->node);
		dqlite_node_destroy(s->node);
		s->node = NULL;
	}
	if (s->new_fresh &&
	    nftw(s->db_dir, remove_entry_cb, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "empty %s: %s",
			    s->db_dir, strerror(errno));
		goto out;
	}
	s->node_id = s->new_id;
	snprintf(s->address, sizeof s->address, "%s", s->new_address);
	rv = info_write(s, errmsg);
	if (rv != 0) {
		goto out;
	}
	rv = node_run(s, !s->new_fresh, errmsg);
	if (rv != 0) {
		goto out;
	}
	if (s->new_started != NULL) {
		rv = s->new_started(s->ready_arg, errmsg);
		if (rv != 0) {
			goto out;
		}
	}
	rv = wait_leader(s, errmsg);
out:
	for (i = 0; i < STATE_POOL_SIZE; i++) {
		pool_release(s, held[i]);
	}
	if (rv == 0) {
		rv = run_work(s, false, schema_work, NULL, errmsg);
	}
	s->start_rv = rv;
	pthread_mutex_lock(&s->mu);
	s->start_running = false;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int state_reconfigure(struct state *s,
		      uint64_t id,
		      const char *address,
		      bool fresh,
		      state_started_fn started,
		      state_ready_cb cb,
		      void *arg)
{
	int rv;

	if (s->stopping || s->start_running) {
		return CORRAL_ENOLEADER;
	}
	s->ready = false;
	s->new_id = id;
	snprintf(s->new_address, sizeof s->new_address, "%s", address);
	s->new_fresh = fresh;
	s->new_started = started;
	s->ready_cb = cb;
	s->ready_arg = arg;
	s->start_req.data = s;
	s->start_running = true;
	s->start_errmsg[0] = '\0';
	rv = uv_queue_work(s->loop, &s->start_req, reconfigure_work_cb,
			   start_after_cb);
	if (rv != 0) {
		s->start_running = false;
		s->ready = true;
	}
	return rv;
}

int state_recover(struct state *s,
		  uint64_t *id,
		  char *address,
		  size_t size,
		  char *errmsg)
{
	struct dqlite_node_info_ext info = { .size = sizeof info };
	struct stat st;
	char path[4200];
	bool fresh = false;
	int rv;

	snprintf(path, sizeof path, "%s/info", s->db_dir);
	if (stat(path, &st) != 0) {
		rv = -errno;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s: %s", path,
			    strerror(errno));
		return rv;
	}
	rv = node_info(s, &fresh, errmsg);
	if (rv != 0) {
		return rv;
	}
	if (s->address[0] == '@') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "this server is not a cluster member");
		return CORRAL_EINVALID;
	}
	rv = dqlite_node_create(s->node_id, s->address, s->db_dir, &s->node);
	if (rv != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "dqlite_node_create(): %s",
			    s->node != NULL ? dqlite_node_errmsg(s->node)
					    : "out of memory");
		rv = CORRAL_EDBFAIL;
		goto out;
	}
	info.id = s->node_id;
	info.address = (uint64_t)(uintptr_t)s->address;
	info.dqlite_role = DQLITE_PROTO_ROLE_VOTER;
	if (dqlite_node_recover_ext(s->node, &info, 1) != 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "dqlite_node_recover_ext(): %s",
			    dqlite_node_errmsg(s->node));
		rv = CORRAL_EDBFAIL;
		goto out;
	}
	*id = s->node_id;
	snprintf(address, size, "%s", s->address);
out:
	if (s->node != NULL) {
		dqlite_node_destroy(s->node);
		s->node = NULL;
	}
	return rv;
}

void state_set_connect(struct state *s, state_connect_fn fn, void *arg)
{
	s->connect = fn;
	s->connect_arg = arg;
}

uint64_t state_node_id(const struct state *s)
{
	return s->node_id;
}

void state_node_address(const struct state *s, char *out, size_t size)
{
	snprintf(out, size, "%s", s->address);
}

int state_node_dial(struct state *s, int *fd)
{
	return dqlite_client_connect_unix(s->bind_addr, fd);
}

bool state_clustered(const struct state *s)
{
	return s->address[0] != '\0' && s->address[0] != '@';
}

void state_destroy(struct state *s)
{
	if (s == NULL) {
		return;
	}
	if (s->node != NULL) {
		dqlite_node_destroy(s->node);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->write_mu);
	free(s->dir);
	free(s);
}
