/* Tests of the blocking dqlite client: against a real in-process dqlite node,
 * and against canned responses written into a socketpair. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dqlite.h>

#include <corral/err.h>

#include "dqlite_client.h"
#include "dqlite_proto.h"

#define FAILURE_DOMAIN 7

struct fixture {
	char dir[64];
	char address[64];
	dqlite_node *node;
};

static struct fixture fx;

static int rm_entry(const char *path,
		    const struct stat *st,
		    int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Connect and handshake with the node under test. */
static void client_connect(struct dqlite_client *c)
{
	int fd = -1;

	assert_int_equal(dqlite_client_connect_unix(fx.address, &fd), 0);
	assert_int_equal(dqlite_client_init(c, fd), 0);
	assert_int_equal(dqlite_client_set_timeout(c, 10000), 0);
}

/* Connect and open "db". */
static void client_open(struct dqlite_client *c, uint32_t *db)
{
	client_connect(c);
	assert_int_equal(dqlite_client_open(c, "db", db), 0);
}

/* Start node 1 in a fresh directory; it bootstraps itself. Wait until it
 * has elected itself so every test finds a leader. */
static int node_setup(void **state)
{
	struct dqlite_client c;
	uint64_t id = 0;
	char *address;
	int i;
	(void)state;

	snprintf(fx.dir, sizeof fx.dir, "/tmp/corral-dqlite-XXXXXX");
	if (mkdtemp(fx.dir) == NULL) {
		return -1;
	}
	snprintf(fx.address, sizeof fx.address, "@corral-test-%d",
		 (int)getpid());
	if (dqlite_node_create(1, fx.address, fx.dir, &fx.node) != 0 ||
	    dqlite_node_set_bind_address(fx.node, fx.address) != 0 ||
	    dqlite_node_set_network_latency_ms(fx.node, 5) != 0 ||
	    dqlite_node_set_failure_domain(fx.node, FAILURE_DOMAIN) != 0 ||
	    dqlite_node_start(fx.node) != 0) {
		print_error("dqlite node: %s\n",
			    fx.node != NULL ? dqlite_node_errmsg(fx.node)
					    : "create failed");
		return -1;
	}
	client_connect(&c);
	for (i = 0; i < 1000 && id == 0; i++) {
		assert_int_equal(dqlite_client_leader(&c, &id, &address), 0);
		dqlite_proto_free(address);
		if (id == 0) {
			sleep_ms(10);
		}
	}
	dqlite_client_close(&c);
	return id == 1 ? 0 : -1;
}

static int node_teardown(void **state)
{
	(void)state;
	if (fx.node != NULL) {
		dqlite_node_stop(fx.node);
		dqlite_node_destroy(fx.node);
		fx.node = NULL;
	}
	return nftw(fx.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_leader_client(void **state)
{
	struct dqlite_client c;
	uint64_t id = 0;
	uint64_t heartbeat = 0;
	char *address = NULL;
	(void)state;

	client_connect(&c);
	assert_int_equal(dqlite_client_leader(&c, &id, &address), 0);
	assert_int_equal(id, 1);
	assert_string_equal(address, fx.address);
	dqlite_proto_free(address);
	assert_int_equal(dqlite_client_client(&c, 1, &heartbeat), 0);
	assert_true(heartbeat > 0);
	dqlite_client_close(&c);
	dqlite_client_close(&c); /* closing twice is fine */
}

static void test_exec_query_sql(void **state)
{
	struct dqlite_client c;
	struct dqlite_rows rows;
	const struct dqlite_value *v;
	/* clang-format off */
	static const uint8_t blob[] = {
		0x00, 0x01, 0xfe, 0xff,
	};
	/* clang-format on */
	struct dqlite_param p[8] = {
		{ .type = DQLITE_PROTO_INTEGER, .integer = -42 },
		{ .type = DQLITE_PROTO_FLOAT, .real = 2.25 },
		{ .type = DQLITE_PROTO_TEXT, .text = "héllo" },
		{ .type = DQLITE_PROTO_BLOB, .blob = { blob, sizeof blob } },
		{ .type = DQLITE_PROTO_NULL },
		{ .type = DQLITE_PROTO_BOOLEAN, .integer = 1 },
		{ .type = DQLITE_PROTO_INTEGER, .integer = 1700000000 },
		{ .type = DQLITE_PROTO_TEXT, .text = "2026-01-02 03:04:05" },
	};
	struct dqlite_param key = { .type = DQLITE_PROTO_INTEGER,
				    .integer = -42 };
	uint64_t last_id = 0;
	uint64_t changes = 0;
	uint32_t db = 99;
	(void)state;

	client_open(&c, &db);
	assert_int_equal(db, 0);
	assert_int_equal(
	    dqlite_client_exec_sql(
		&c, db,
		"CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, "
		"n TEXT, ok BOOLEAN, at DATETIME, at2 DATETIME)",
		NULL, 0, NULL, NULL),
	    0);
	assert_int_equal(dqlite_client_exec_sql(&c, db,
						"INSERT INTO t VALUES "
						"(?, ?, ?, ?, ?, ?, ?, ?)",
						p, 8, &last_id, &changes),
			 0);
	assert_int_equal(last_id, 1);
	assert_int_equal(changes, 1);

	assert_int_equal(
	    dqlite_client_query_sql(&c, db, "SELECT * FROM t WHERE i = ?", &key,
				    1, &rows),
	    0);
	assert_int_equal(rows.n_cols, 8);
	assert_string_equal(rows.cols[0], "i");
	assert_string_equal(rows.cols[7], "at2");
	assert_int_equal(rows.n_rows, 1);
	v = dqlite_proto_rows_value(&rows, 0, 0);
	assert_int_equal(v->type, DQLITE_PROTO_INTEGER);
	assert_int_equal(v->integer, -42);
	v = dqlite_proto_rows_value(&rows, 0, 1);
	assert_int_equal(v->type, DQLITE_PROTO_FLOAT);
	assert_true(v->real == 2.25);
	v = dqlite_proto_rows_value(&rows, 0, 2);
	assert_int_equal(v->type, DQLITE_PROTO_TEXT);
	assert_string_equal(v->text, "héllo");
	v = dqlite_proto_rows_value(&rows, 0, 3);
	assert_int_equal(v->type, DQLITE_PROTO_BLOB);
	assert_int_equal(v->len, sizeof blob);
	assert_memory_equal(v->blob, blob, sizeof blob);
	v = dqlite_proto_rows_value(&rows, 0, 4);
	assert_int_equal(v->type, DQLITE_PROTO_NULL);
	v = dqlite_proto_rows_value(&rows, 0, 5);
	assert_int_equal(v->type, DQLITE_PROTO_BOOLEAN);
	assert_int_equal(v->integer, 1);
	v = dqlite_proto_rows_value(&rows, 0, 6);
	assert_int_equal(v->type, DQLITE_PROTO_INTEGER);
	assert_int_equal(v->wire_type, DQLITE_PROTO_UNIXTIME);
	assert_int_equal(v->integer, 1700000000);
	v = dqlite_proto_rows_value(&rows, 0, 7);
	assert_int_equal(v->type, DQLITE_PROTO_TEXT);
	assert_int_equal(v->wire_type, DQLITE_PROTO_ISO8601);
	assert_string_equal(v->text, "2026-01-02 03:04:05");
	dqlite_proto_rows_close(&rows);

	/* Expressions without a declared type: int, text, null, float. */
	assert_int_equal(
	    dqlite_client_query_sql(&c, db, "SELECT 1, 'x', NULL, 1.5", NULL, 0,
				    &rows),
	    0);
	assert_int_equal(rows.n_rows, 1);
	assert_int_equal(dqlite_proto_rows_value(&rows, 0, 0)->integer, 1);
	assert_string_equal(dqlite_proto_rows_value(&rows, 0, 1)->text, "x");
	assert_int_equal(dqlite_proto_rows_value(&rows, 0, 2)->type,
			 DQLITE_PROTO_NULL);
	assert_true(dqlite_proto_rows_value(&rows, 0, 3)->real == 1.5);
	dqlite_proto_rows_close(&rows);
	dqlite_client_close(&c);
}

static void test_prepare_exec_query_finalize(void **state)
{
	struct dqlite_client c;
	struct dqlite_rows rows;
	struct dqlite_param p = { .type = DQLITE_PROTO_INTEGER };
	uint32_t db = 0;
	uint32_t ins = 0;
	uint32_t sel = 0;
	uint64_t n_params = 0;
	uint64_t last_id = 0;
	uint64_t changes = 0;
	int64_t i;
	(void)state;

	client_open(&c, &db);
	assert_int_equal(
	    dqlite_client_exec_sql(&c, db, "CREATE TABLE p (x INTEGER)", NULL,
				   0, NULL, NULL),
	    0);
	assert_int_equal(
	    dqlite_client_prepare(&c, db, "INSERT INTO p VALUES (?)", &ins,
				  &n_params),
	    0);
	assert_int_equal(n_params, 1);
	for (i = 1; i <= 5; i++) {
		p.integer = i * 10;
		assert_int_equal(
		    dqlite_client_exec(&c, db, ins, &p, 1, &last_id, &changes),
		    0);
		assert_int_equal(last_id, i);
		assert_int_equal(changes, 1);
	}
	assert_int_equal(dqlite_client_prepare(&c, db,
					       "SELECT x FROM p WHERE x > ? "
					       "ORDER BY x",
					       &sel, &n_params),
			 0);
	assert_int_not_equal(sel, ins);
	p.integer = 25;
	assert_int_equal(dqlite_client_query(&c, db, sel, &p, 1, &rows), 0);
	assert_int_equal(rows.n_rows, 3);
	assert_int_equal(dqlite_proto_rows_value(&rows, 0, 0)->integer, 30);
	assert_int_equal(dqlite_proto_rows_value(&rows, 2, 0)->integer, 50);
	dqlite_proto_rows_close(&rows);

	/* A query can run again with other parameters. */
	p.integer = 45;
	assert_int_equal(dqlite_client_query(&c, db, sel, &p, 1, &rows), 0);
	assert_int_equal(rows.n_rows, 1);
	dqlite_proto_rows_close(&rows);

	assert_int_equal(dqlite_client_finalize(&c, db, ins), 0);
	assert_int_equal(dqlite_client_finalize(&c, db, sel), 0);
	assert_int_equal(dqlite_client_finalize(&c, db, sel), CORRAL_EDBFAIL);
	assert_true(c.errmsg[0] != '\0');
	dqlite_client_close(&c);
}

/* A FAILURE keeps the connection usable and carries the server's text. */
static void test_failure(void **state)
{
	struct dqlite_client c;
	struct dqlite_rows rows;
	uint32_t db = 0;
	uint32_t stmt = 0;
	(void)state;

	client_open(&c, &db);
	assert_int_equal(dqlite_client_query_sql(&c, db, "SELECT * FROM nope",
						 NULL, 0, &rows),
			 CORRAL_EDBFAIL);
	assert_string_equal(c.errmsg, "no such table: nope");
	assert_int_equal(c.fail_code, 1); /* SQLITE_ERROR */
	assert_int_equal(rows.n_rows, 0);
	assert_int_equal(
	    dqlite_client_exec_sql(&c, db, "NOT SQL", NULL, 0, NULL, NULL),
	    CORRAL_EDBFAIL);
	assert_non_null(strstr(c.errmsg, "syntax error"));
	assert_int_equal(
	    dqlite_client_prepare(&c, db, "SELECT x FROM nope", &stmt, NULL),
	    CORRAL_EDBFAIL);
	/* A second OPEN on one connection is refused (dqlite says
	 * SQLITE_BUSY). */
	assert_int_equal(dqlite_client_open(&c, "db", &db), CORRAL_EBUSY);
	assert_false(c.broken);
	assert_int_equal(
	    dqlite_client_query_sql(&c, db, "SELECT 1", NULL, 0, &rows), 0);
	assert_int_equal(rows.n_rows, 1);
	dqlite_proto_rows_close(&rows);
	dqlite_client_close(&c);
}

/* A result larger than one page arrives as several ROWS messages. */
static void test_multipart_rows(void **state)
{
	struct dqlite_client c;
	struct dqlite_rows rows;
	uint32_t db = 0;
	uint64_t changes = 0;
	size_t i;
	(void)state;

	client_open(&c, &db);
	assert_int_equal(dqlite_client_exec_sql(&c, db,
						"CREATE TABLE big (k INTEGER, "
						"v TEXT)",
						NULL, 0, NULL, NULL),
			 0);
	assert_int_equal(dqlite_client_exec_sql(
			     &c, db,
			     "INSERT INTO big WITH RECURSIVE n(k) AS (SELECT 1 "
			     "UNION ALL SELECT k + 1 FROM n WHERE k < 3000) "
			     "SELECT k, printf('%0100d', k) FROM n",
			     NULL, 0, NULL, &changes),
			 0);
	assert_int_equal(changes, 3000);
	assert_int_equal(dqlite_client_query_sql(&c, db,
						 "SELECT k, v FROM big ORDER "
						 "BY k",
						 NULL, 0, &rows),
			 0);
	assert_int_equal(rows.n_rows, 3000);
	for (i = 0; i < rows.n_rows; i++) {
		assert_int_equal(dqlite_proto_rows_value(&rows, i, 0)->integer,
				 i + 1);
		assert_int_equal(dqlite_proto_rows_value(&rows, i, 1)->len,
				 100);
	}
	dqlite_proto_rows_close(&rows);
	/* The stream is in step after the last part. */
	assert_int_equal(
	    dqlite_client_query_sql(&c, db, "SELECT 2", NULL, 0, &rows), 0);
	assert_int_equal(dqlite_proto_rows_value(&rows, 0, 0)->integer, 2);
	dqlite_proto_rows_close(&rows);
	dqlite_client_close(&c);
}

static void test_cluster_membership(void **state)
{
	struct dqlite_client c;
	struct dqlite_proto_nodes nodes;
	uint64_t domain = 0;
	uint64_t weight = 99;
	char *address;
	uint64_t id;
	(void)state;

	client_connect(&c);
	assert_int_equal(dqlite_client_cluster(&c, &nodes), 0);
	assert_int_equal(nodes.n, 1);
	assert_int_equal(nodes.nodes[0].id, 1);
	assert_string_equal(nodes.nodes[0].address, fx.address);
	assert_int_equal(nodes.nodes[0].role, DQLITE_PROTO_ROLE_VOTER);
	dqlite_proto_nodes_close(&nodes);

	assert_int_equal(dqlite_client_describe(&c, &domain, &weight), 0);
	assert_int_equal(domain, FAILURE_DOMAIN);
	assert_int_equal(weight, 0);

	/* A node that never starts can be added as a spare and removed. */
	assert_int_equal(dqlite_client_add(&c, 2, "@corral-test-absent"), 0);
	assert_int_equal(dqlite_client_cluster(&c, &nodes), 0);
	assert_int_equal(nodes.n, 2);
	assert_int_equal(nodes.nodes[1].id, 2);
	assert_string_equal(nodes.nodes[1].address, "@corral-test-absent");
	assert_int_equal(nodes.nodes[1].role, DQLITE_PROTO_ROLE_SPARE);
	dqlite_proto_nodes_close(&nodes);
	assert_int_equal(dqlite_client_add(&c, 2, "@corral-test-absent"),
			 CORRAL_EDBFAIL);
	assert_int_equal(dqlite_client_remove(&c, 2), 0);
	assert_int_equal(dqlite_client_cluster(&c, &nodes), 0);
	assert_int_equal(nodes.n, 1);
	dqlite_proto_nodes_close(&nodes);
	assert_int_equal(dqlite_client_remove(&c, 2), CORRAL_EDBFAIL);
	assert_int_equal(dqlite_client_assign(&c, 3, DQLITE_PROTO_ROLE_VOTER),
			 CORRAL_EDBFAIL);

	/* There is no other voter to hand leadership to. */
	assert_true(dqlite_client_transfer(&c, 0) < 0);
	assert_false(c.broken);
	assert_int_equal(dqlite_client_leader(&c, &id, &address), 0);
	assert_int_equal(id, 1);
	dqlite_proto_free(address);
	dqlite_client_close(&c);
}

/*
 * Canned responses over a socketpair.
 */

/* Write one response of @type with @body into @fd. */
static void put_response(int fd, uint8_t type, const uint8_t *body, size_t len)
{
	uint8_t header[8] = { 0 };

	assert_int_equal(len % 8, 0);
	header[0] = (uint8_t)(len / 8);
	header[1] = (uint8_t)(len / 8 >> 8);
	header[4] = type;
	assert_int_equal(write(fd, header, 8), 8);
	assert_int_equal(write(fd, body, len), (ssize_t)len);
}

/* Read what the client sent: the handshake and one request, whose type is
 * returned. */
static int get_request_type(int fd, bool handshake)
{
	uint8_t buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);
	size_t off = handshake ? 8 : 0;

	assert_true(n >= (ssize_t)(off + 16));
	if (handshake) {
		assert_int_equal(buf[0], 1);
	}
	return buf[off + 4];
}

struct pair {
	struct dqlite_client c;
	int peer;
};

static void pair_open(struct pair *p)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(dqlite_client_init(&p->c, sv[0]), 0);
	p->peer = sv[1];
}

static void pair_close(struct pair *p)
{
	dqlite_client_close(&p->c);
	if (p->peer >= 0) {
		close(p->peer);
	}
}

static void test_fake_not_leader(void **state)
{
	/* clang-format off */
	static const uint8_t body[] = {
		0x0a, 0x28, 0, 0, 0, 0, 0, 0, /* 10250 */
		'n', 'o', 't', ' ', 'l', 'e', 'a', 'd',
		'e', 'r', 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t lost[] = {
		0x0a, 0x29, 0, 0, 0, 0, 0, 0, /* 10506 */
		'd', 'i', 's', 'k', ' ', 'I', '/', 'O',
		' ', 'e', 'r', 'r', 'o', 'r', 0, 0,
	};
	/* clang-format on */
	struct pair p;
	uint64_t last_id = 5;
	(void)state;

	pair_open(&p);
	put_response(p.peer, DQLITE_PROTO_RESP_FAILURE, body, sizeof body);
	assert_int_equal(
	    dqlite_client_exec_sql(&p.c, 0, "INSERT", NULL, 0, &last_id, NULL),
	    CORRAL_ENOTLEADER);
	assert_int_equal(p.c.fail_code, 10250);
	assert_string_equal(p.c.errmsg, "not leader");
	assert_int_equal(last_id, 5);
	assert_int_equal(get_request_type(p.peer, true),
			 DQLITE_PROTO_REQ_EXEC_SQL);

	put_response(p.peer, DQLITE_PROTO_RESP_FAILURE, lost, sizeof lost);
	assert_int_equal(
	    dqlite_client_exec_sql(&p.c, 0, "INSERT", NULL, 0, NULL, NULL),
	    CORRAL_ENOTLEADER);
	assert_int_equal(p.c.fail_code, 10506);
	assert_false(p.c.broken);
	pair_close(&p);
}

static void test_fake_multipart(void **state)
{
	/* One column "x", one integer row per part, then a FAILURE. */
	/* clang-format off */
	static const uint8_t part[2][40] = {
		{
			1, 0, 0, 0, 0, 0, 0, 0,
			'x', 0, 0, 0, 0, 0, 0, 0,
			1, 0, 0, 0, 0, 0, 0, 0,
			11, 0, 0, 0, 0, 0, 0, 0,
			0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
		},
		{
			1, 0, 0, 0, 0, 0, 0, 0,
			'x', 0, 0, 0, 0, 0, 0, 0,
			1, 0, 0, 0, 0, 0, 0, 0,
			22, 0, 0, 0, 0, 0, 0, 0,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		},
	};
	static const uint8_t failure[] = {
		1, 0, 0, 0, 0, 0, 0, 0,
		'x', 0, 0, 0, 0, 0, 0, 0,
	};
	/* clang-format on */
	struct pair p;
	struct dqlite_rows rows;
	(void)state;

	pair_open(&p);
	put_response(p.peer, DQLITE_PROTO_RESP_ROWS, part[0], 40);
	put_response(p.peer, DQLITE_PROTO_RESP_ROWS, part[1], 40);
	assert_int_equal(
	    dqlite_client_query_sql(&p.c, 0, "SELECT", NULL, 0, &rows), 0);
	assert_int_equal(rows.n_rows, 2);
	assert_int_equal(dqlite_proto_rows_value(&rows, 0, 0)->integer, 11);
	assert_int_equal(dqlite_proto_rows_value(&rows, 1, 0)->integer, 22);
	dqlite_proto_rows_close(&rows);
	assert_int_equal(get_request_type(p.peer, true),
			 DQLITE_PROTO_REQ_QUERY_SQL);

	/* A part, then the server gives up with a FAILURE. */
	put_response(p.peer, DQLITE_PROTO_RESP_ROWS, part[0], 40);
	put_response(p.peer, DQLITE_PROTO_RESP_FAILURE, failure,
		     sizeof failure);
	assert_int_equal(
	    dqlite_client_query_sql(&p.c, 0, "SELECT", NULL, 0, &rows),
	    CORRAL_EDBFAIL);
	assert_string_equal(p.c.errmsg, "x");
	assert_null(rows.cols);
	assert_false(p.c.broken);
	pair_close(&p);
}

/* Protocol and I/O errors break the client for good. */
static void test_fake_broken(void **state)
{
	/* clang-format off */
	static const uint8_t result[] = {
		1, 0, 0, 0, 0, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t absurd[] = {
		0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0,
	};
	/* clang-format on */
	struct dqlite_rows rows;
	struct pair p;
	uint32_t db;
	(void)state;

	/* The wrong response type. */
	pair_open(&p);
	put_response(p.peer, DQLITE_PROTO_RESP_RESULT, result, sizeof result);
	assert_int_equal(
	    dqlite_client_query_sql(&p.c, 0, "SELECT", NULL, 0, &rows),
	    CORRAL_EPROTO);
	assert_true(p.c.broken);
	assert_non_null(strstr(p.c.errmsg, "QUERY_SQL"));
	assert_int_equal(dqlite_client_open(&p.c, "db", &db), -ENOTCONN);
	pair_close(&p);

	/* A header announcing an absurd body. */
	pair_open(&p);
	assert_int_equal(write(p.peer, absurd, sizeof absurd), 8);
	assert_int_equal(dqlite_client_open(&p.c, "db", &db), CORRAL_EPROTO);
	assert_true(p.c.broken);
	pair_close(&p);

	/* A body cut short by the peer going away. */
	pair_open(&p);
	assert_int_equal(write(p.peer, "\x02\0\0\0\x04\0\0\0\0\0\0\0", 12), 12);
	shutdown(p.peer, SHUT_WR);
	assert_int_equal(dqlite_client_open(&p.c, "db", &db), -ECONNRESET);
	assert_non_null(strstr(p.c.errmsg, "connection closed by peer"));
	pair_close(&p);

	/* A peer that is gone entirely: writing fails without SIGPIPE. */
	pair_open(&p);
	close(p.peer);
	p.peer = -1;
	assert_true(dqlite_client_open(&p.c, "db", &db) < 0);
	assert_true(p.c.broken);
	pair_close(&p);
}

/* A receive timeout turns into -ETIMEDOUT. */
static void test_fake_timeout(void **state)
{
	struct pair p;
	uint32_t db;
	(void)state;

	pair_open(&p);
	assert_int_equal(dqlite_client_set_timeout(&p.c, 50), 0);
	assert_int_equal(dqlite_client_open(&p.c, "db", &db), -ETIMEDOUT);
	assert_true(p.c.broken);
	pair_close(&p);
}

static int fail_countdown = -1;

static void *failing_malloc(size_t size)
{
	if (fail_countdown >= 0 && fail_countdown-- == 0) {
		return NULL;
	}
	return malloc(size);
}

static void *failing_realloc(void *ptr, size_t size)
{
	if (fail_countdown >= 0 && fail_countdown-- == 0) {
		return NULL;
	}
	return realloc(ptr, size);
}

/* Each allocation of init and of receiving rows fails in turn: -ENOMEM,
 * nothing leaked (LeakSanitizer checks), and the caller keeps its fd. */
static void test_fake_alloc_failures(void **state)
{
	static const struct dqlite_proto_alloc alloc = {
		.malloc = failing_malloc,
		.realloc = failing_realloc,
		.free = free,
	};
	/* clang-format off */
	static const uint8_t part[] = {
		1, 0, 0, 0, 0, 0, 0, 0,
		'x', 0, 0, 0, 0, 0, 0, 0,
		3, 0, 0, 0, 0, 0, 0, 0,
		'a', 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* clang-format on */
	struct dqlite_client c;
	struct dqlite_rows rows;
	int sv[2];
	int n;
	int rv;
	bool done = false;
	(void)state;

	dqlite_proto_set_alloc(&alloc);
	for (n = 0; n < 50 && !done; n++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		fail_countdown = n;
		rv = dqlite_client_init(&c, sv[0]);
		if (rv != 0) {
			assert_int_equal(rv, -ENOMEM);
			/* Still ours to close. */
			assert_int_equal(close(sv[0]), 0);
			close(sv[1]);
			continue;
		}
		put_response(sv[1], DQLITE_PROTO_RESP_ROWS, part, sizeof part);
		rv = dqlite_client_query_sql(&c, 0, "SELECT", NULL, 0, &rows);
		if (rv == 0) {
			assert_string_equal(
			    dqlite_proto_rows_value(&rows, 0, 0)->text, "a");
			dqlite_proto_rows_close(&rows);
			done = fail_countdown >= 0;
		} else {
			assert_int_equal(rv, -ENOMEM);
		}
		dqlite_client_close(&c);
		close(sv[1]);
	}
	fail_countdown = -1;
	dqlite_proto_set_alloc(NULL);
	assert_true(done);
	assert_true(n > 3);
}

static void test_connect_errors(void **state)
{
	char long_path[200];
	int fd = -1;
	(void)state;

	assert_int_equal(dqlite_client_connect_unix("", &fd), CORRAL_EINVALID);
	assert_int_equal(dqlite_client_connect_unix("@", &fd), CORRAL_EINVALID);
	memset(long_path, 'a', sizeof long_path - 1);
	long_path[sizeof long_path - 1] = '\0';
	assert_int_equal(dqlite_client_connect_unix(long_path, &fd),
			 -ENAMETOOLONG);
	assert_int_equal(
	    dqlite_client_connect_unix("@corral-test-nobody-here", &fd),
	    -ECONNREFUSED);
	assert_int_equal(
	    dqlite_client_connect_unix("/nonexistent/corral.sock", &fd),
	    -ENOENT);
	assert_int_equal(fd, -1);
}

int main(void)
{
	const struct CMUnitTest node_tests[] = {
		cmocka_unit_test(test_leader_client),
		cmocka_unit_test(test_exec_query_sql),
		cmocka_unit_test(test_prepare_exec_query_finalize),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_multipart_rows),
		cmocka_unit_test(test_cluster_membership),
	};
	const struct CMUnitTest fake_tests[] = {
		cmocka_unit_test(test_fake_not_leader),
		cmocka_unit_test(test_fake_multipart),
		cmocka_unit_test(test_fake_broken),
		cmocka_unit_test(test_fake_timeout),
		cmocka_unit_test(test_fake_alloc_failures),
		cmocka_unit_test(test_connect_errors),
	};
	int failed;

	/* dqlite writes to sockets whose peer may be gone. */
	signal(SIGPIPE, SIG_IGN);
	failed =
	    cmocka_run_group_tests_name("fake server", fake_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("dqlite node", node_tests,
					      node_setup, node_teardown);
	return failed;
}
