#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <corral/err.h>

#include "dqlite_client.h"

/* VFS name sent with OPEN; dqlite 1.11 ignores it, go-dqlite sends this. */
#define OPEN_VFS "volatile"

int dqlite_client_connect_unix(const char *path, int *fd)
{
	struct sockaddr_un addr;
	socklen_t addr_len;
	size_t n;
	int sock;
	int rv;

	if (path == NULL || path[0] == '\0' ||
	    (path[0] == '@' && path[1] == '\0')) {
		return CORRAL_EINVALID;
	}
	n = strlen(path);
	if (n >= sizeof addr.sun_path) {
		return -ENAMETOOLONG;
	}
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, n);
	if (path[0] == '@') {
		/* Abstract names are length-delimited: no trailing NUL. */
		addr.sun_path[0] = '\0';
		addr_len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		addr_len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		return -errno;
	}
	do {
		rv = connect(sock, (const struct sockaddr *)&addr, addr_len);
	} while (rv != 0 && errno == EINTR);
	if (rv != 0) {
		rv = -errno;
		goto err_after_socket;
	}
	*fd = sock;
	return 0;

err_after_socket:
	close(sock);
	return rv;
}

/* Record an I/O or protocol error: the stream is out of step from now on. */
static int broken(struct dqlite_client *c, int rv)
{
	c->broken = true;
	return rv;
}

static int write_all(struct dqlite_client *c, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK) {
			n = write(c->fd, p, len);
		}
		if (n < 0) {
			int rv = errno == EAGAIN || errno == EWOULDBLOCK
				     ? -ETIMEDOUT
				     : -errno;
			if (errno == EINTR) {
				continue;
			}
			corral_errf(c->errmsg, sizeof c->errmsg, "write(): %s",
				    corral_strerror(rv));
			return broken(c, rv);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(struct dqlite_client *c, uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = read(c->fd, p, len);
		if (n == 0) {
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "read(): connection closed by peer");
			return broken(c, -ECONNRESET);
		}
		if (n < 0) {
			int rv = errno == EAGAIN || errno == EWOULDBLOCK
				     ? -ETIMEDOUT
				     : -errno;
			if (errno == EINTR) {
				continue;
			}
			corral_errf(c->errmsg, sizeof c->errmsg, "read(): %s",
				    corral_strerror(rv));
			return broken(c, rv);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int dqlite_client_init(struct dqlite_client *c, int fd)
{
	int rv;

	c->fd = fd;
	c->broken = false;
	dqlite_proto_buf_init(&c->out);
	c->in = NULL;
	c->in_cap = 0;
	memset(&c->header, 0, sizeof c->header);
	c->fail_code = 0;
	c->errmsg[0] = '\0';

	rv = dqlite_proto_encode_handshake(&c->out);
	if (rv != 0) {
		corral_errf(c->errmsg, sizeof c->errmsg, "handshake: %s",
			    corral_strerror(rv));
		goto err_after_buf;
	}
	rv = write_all(c, c->out.data, c->out.len);
	if (rv != 0) {
		corral_errwrapf(c->errmsg, sizeof c->errmsg, "handshake");
		goto err_after_buf;
	}
	return 0;

err_after_buf:
	dqlite_proto_buf_close(&c->out);
	c->fd = -1;
	return rv;
}

void dqlite_client_close(struct dqlite_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	dqlite_proto_buf_close(&c->out);
	dqlite_proto_free(c->in);
	c->in = NULL;
	c->in_cap = 0;
	c->broken = true;
}

int dqlite_client_set_timeout(struct dqlite_client *c, unsigned ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
		int rv = -errno;
		corral_errf(c->errmsg, sizeof c->errmsg, "setsockopt(): %s",
			    corral_strerror(rv));
		return rv;
	}
	return 0;
}

/* Start a request: refuse on a broken client, empty the output buffer. */
static int req_begin(struct dqlite_client *c)
{
	if (c->broken || c->fd < 0) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "connection unusable after an earlier error");
		return -ENOTCONN;
	}
	c->out.len = 0;
	c->fail_code = 0;
	c->errmsg[0] = '\0';
	return 0;
}

/* Check the result of an encoder and send the request in the buffer. */
static int req_send(struct dqlite_client *c, const char *what, int rv)
{
	if (rv != 0) {
		corral_errf(c->errmsg, sizeof c->errmsg, "%s: encode: %s", what,
			    corral_strerror(rv));
		return rv;
	}
	rv = write_all(c, c->out.data, c->out.len);
	if (rv != 0) {
		corral_errwrapf(c->errmsg, sizeof c->errmsg, "%s", what);
	}
	return rv;
}

/* Read one response into c->header and c->in. A FAILURE becomes its mapped
 * code; any type other than @expect is a protocol error. */
static int resp_recv(struct dqlite_client *c, const char *what, uint8_t expect)
{
	uint8_t hdr[DQLITE_PROTO_HEADER_SIZE];
	uint8_t *in;
	int rv;

	rv = read_all(c, hdr, sizeof hdr);
	if (rv != 0) {
		goto err;
	}
	rv = dqlite_proto_decode_header(hdr, sizeof hdr, &c->header);
	if (rv != 0) {
		corral_errf(c->errmsg, sizeof c->errmsg, "response header: %s",
			    corral_strerror(rv));
		broken(c, rv);
		goto err;
	}
	if (c->header.body_len > c->in_cap) {
		in = dqlite_proto_realloc(c->in, c->header.body_len);
		if (in == NULL) {
			rv = -ENOMEM;
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "response body: %s", corral_strerror(rv));
			broken(c, rv);
			goto err;
		}
		c->in = in;
		c->in_cap = c->header.body_len;
	}
	rv = read_all(c, c->in, c->header.body_len);
	if (rv != 0) {
		goto err;
	}
	if (c->header.type == DQLITE_PROTO_RESP_FAILURE) {
		rv = dqlite_proto_decode_failure(c->in, c->header.body_len,
						 &c->fail_code, c->errmsg,
						 sizeof c->errmsg);
		if (rv != 0) {
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "decode FAILURE: %s", corral_strerror(rv));
			broken(c, rv);
			goto err;
		}
		return dqlite_proto_failure_rv(c->fail_code);
	}
	if (c->header.type != expect) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "unexpected response type %u (want %u)",
			    c->header.type, expect);
		rv = broken(c, CORRAL_EPROTO);
		goto err;
	}
	return 0;

err:
	corral_errwrapf(c->errmsg, sizeof c->errmsg, "%s", what);
	return rv;
}

/* Report a body that failed to decode. */
static int resp_bad(struct dqlite_client *c, const char *what, int rv)
{
	corral_errf(c->errmsg, sizeof c->errmsg, "%s: decode response: %s",
		    what, corral_strerror(rv));
	if (rv != -ENOMEM) {
		broken(c, rv);
	}
	return rv;
}

/* Send the request in the buffer and wait for a response of type @expect. */
static int roundtrip(struct dqlite_client *c,
		     const char *what,
		     int encode_rv,
		     uint8_t expect)
{
	int rv = req_send(c, what, encode_rv);
	if (rv != 0) {
		return rv;
	}
	return resp_recv(c, what, expect);
}

int dqlite_client_leader(struct dqlite_client *c, uint64_t *id, char **address)
{
	const char *what = "LEADER";
	int rv;

	rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	rv = roundtrip(c, what, dqlite_proto_encode_leader(&c->out),
		       DQLITE_PROTO_RESP_NODE);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_node(c->in, c->header.body_len, id, address);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	return 0;
}

int dqlite_client_client(struct dqlite_client *c,
			 uint64_t id,
			 uint64_t *heartbeat_timeout)
{
	const char *what = "CLIENT";
	uint64_t timeout;
	int rv;

	rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	rv = roundtrip(c, what, dqlite_proto_encode_client(&c->out, id),
		       DQLITE_PROTO_RESP_WELCOME);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_welcome(c->in, c->header.body_len, &timeout);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	if (heartbeat_timeout != NULL) {
		*heartbeat_timeout = timeout;
	}
	return 0;
}

int dqlite_client_open(struct dqlite_client *c,
		       const char *name,
		       uint32_t *db_id)
{
	const char *what = "OPEN";
	int rv;

	rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	rv = roundtrip(c, what,
		       dqlite_proto_encode_open(&c->out, name, 0, OPEN_VFS),
		       DQLITE_PROTO_RESP_DB);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_db(c->in, c->header.body_len, db_id);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	return 0;
}

/* Wait for a RESULT and hand out its two values. */
static int recv_result(struct dqlite_client *c,
		       const char *what,
		       int encode_rv,
		       uint64_t *last_insert_id,
		       uint64_t *rows_affected)
{
	uint64_t last;
	uint64_t changed;
	int rv;

	rv = roundtrip(c, what, encode_rv, DQLITE_PROTO_RESP_RESULT);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_result(c->in, c->header.body_len, &last,
					&changed);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	if (last_insert_id != NULL) {
		*last_insert_id = last;
	}
	if (rows_affected != NULL) {
		*rows_affected = changed;
	}
	return 0;
}

/* Collect every part of a ROWS result into @rows. */
static int recv_rows(struct dqlite_client *c,
		     const char *what,
		     int encode_rv,
		     struct dqlite_rows *rows)
{
	bool more = true;
	int rv;

	dqlite_proto_rows_init(rows);
	rv = req_send(c, what, encode_rv);
	if (rv != 0) {
		return rv;
	}
	while (more) {
		rv = resp_recv(c, what, DQLITE_PROTO_RESP_ROWS);
		if (rv != 0) {
			goto err_after_rows;
		}
		rv = dqlite_proto_decode_rows(c->in, c->header.body_len, rows,
					      &more);
		if (rv != 0) {
			/* Later parts may still be on their way: the stream
			 * is out of step even after -ENOMEM. */
			resp_bad(c, what, rv);
			broken(c, rv);
			goto err_after_rows;
		}
	}
	return 0;

err_after_rows:
	dqlite_proto_rows_close(rows);
	return rv;
}

int dqlite_client_exec_sql(struct dqlite_client *c,
			   uint32_t db_id,
			   const char *sql,
			   const struct dqlite_param *params,
			   unsigned n,
			   uint64_t *last_insert_id,
			   uint64_t *rows_affected)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_result(
	    c, "EXEC_SQL",
	    dqlite_proto_encode_exec_sql(&c->out, db_id, sql, params, n),
	    last_insert_id, rows_affected);
}

int dqlite_client_query_sql(struct dqlite_client *c,
			    uint32_t db_id,
			    const char *sql,
			    const struct dqlite_param *params,
			    unsigned n,
			    struct dqlite_rows *rows)
{
	int rv = req_begin(c);
	if (rv != 0) {
		dqlite_proto_rows_init(rows);
		return rv;
	}
	return recv_rows(
	    c, "QUERY_SQL",
	    dqlite_proto_encode_query_sql(&c->out, db_id, sql, params, n),
	    rows);
}

int dqlite_client_prepare(struct dqlite_client *c,
			  uint32_t db_id,
			  const char *sql,
			  uint32_t *stmt_id,
			  uint64_t *n_params)
{
	const char *what = "PREPARE";
	uint32_t db;
	uint32_t stmt;
	uint64_t n;
	int rv;

	rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	rv =
	    roundtrip(c, what, dqlite_proto_encode_prepare(&c->out, db_id, sql),
		      DQLITE_PROTO_RESP_STMT);
	if (rv != 0) {
		return rv;
	}
	rv =
	    dqlite_proto_decode_stmt(c->in, c->header.body_len, &db, &stmt, &n);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	*stmt_id = stmt;
	if (n_params != NULL) {
		*n_params = n;
	}
	return 0;
}

int dqlite_client_exec(struct dqlite_client *c,
		       uint32_t db_id,
		       uint32_t stmt_id,
		       const struct dqlite_param *params,
		       unsigned n,
		       uint64_t *last_insert_id,
		       uint64_t *rows_affected)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_result(
	    c, "EXEC",
	    dqlite_proto_encode_exec(&c->out, db_id, stmt_id, params, n),
	    last_insert_id, rows_affected);
}

int dqlite_client_query(struct dqlite_client *c,
			uint32_t db_id,
			uint32_t stmt_id,
			const struct dqlite_param *params,
			unsigned n,
			struct dqlite_rows *rows)
{
	int rv = req_begin(c);
	if (rv != 0) {
		dqlite_proto_rows_init(rows);
		return rv;
	}
	return recv_rows(
	    c, "QUERY",
	    dqlite_proto_encode_query(&c->out, db_id, stmt_id, params, n),
	    rows);
}

/* Send a request answered by EMPTY. */
static int recv_empty(struct dqlite_client *c, const char *what, int encode_rv)
{
	int rv;

	rv = roundtrip(c, what, encode_rv, DQLITE_PROTO_RESP_EMPTY);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_empty(c->in, c->header.body_len);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	return 0;
}

int dqlite_client_finalize(struct dqlite_client *c,
			   uint32_t db_id,
			   uint32_t stmt_id)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_empty(
	    c, "FINALIZE",
	    dqlite_proto_encode_finalize(&c->out, db_id, stmt_id));
}

int dqlite_client_add(struct dqlite_client *c, uint64_t id, const char *address)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_empty(c, "ADD",
			  dqlite_proto_encode_add(&c->out, id, address));
}

int dqlite_client_assign(struct dqlite_client *c, uint64_t id, uint64_t role)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_empty(c, "ASSIGN",
			  dqlite_proto_encode_assign(&c->out, id, role));
}

int dqlite_client_remove(struct dqlite_client *c, uint64_t id)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_empty(c, "REMOVE", dqlite_proto_encode_remove(&c->out, id));
}

int dqlite_client_transfer(struct dqlite_client *c, uint64_t id)
{
	int rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	return recv_empty(c, "TRANSFER",
			  dqlite_proto_encode_transfer(&c->out, id));
}

int dqlite_client_cluster(struct dqlite_client *c,
			  struct dqlite_proto_nodes *nodes)
{
	const char *what = "CLUSTER";
	int rv;

	nodes->n = 0;
	nodes->nodes = NULL;
	rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	rv = roundtrip(c, what,
		       dqlite_proto_encode_cluster(
			   &c->out, DQLITE_PROTO_CLUSTER_FORMAT_V1),
		       DQLITE_PROTO_RESP_NODES);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_nodes(c->in, c->header.body_len,
				       DQLITE_PROTO_CLUSTER_FORMAT_V1, nodes);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	return 0;
}

int dqlite_client_describe(struct dqlite_client *c,
			   uint64_t *failure_domain,
			   uint64_t *weight)
{
	const char *what = "DESCRIBE";
	uint64_t domain;
	uint64_t w;
	int rv;

	rv = req_begin(c);
	if (rv != 0) {
		return rv;
	}
	rv = roundtrip(c, what,
		       dqlite_proto_encode_describe(
			   &c->out, DQLITE_PROTO_DESCRIBE_FORMAT_V0),
		       DQLITE_PROTO_RESP_METADATA);
	if (rv != 0) {
		return rv;
	}
	rv = dqlite_proto_decode_metadata(c->in, c->header.body_len, &domain,
					  &w);
	if (rv != 0) {
		return resp_bad(c, what, rv);
	}
	if (failure_domain != NULL) {
		*failure_domain = domain;
	}
	if (weight != NULL) {
		*weight = w;
	}
	return 0;
}
