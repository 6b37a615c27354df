/* Encoding and decoding of dqlite wire-protocol messages (version 1).
 *
 * Pure functions over byte buffers: nothing here does I/O. Encoders append a
 * whole message (8-byte header plus body) to a growable buffer; decoders take
 * the body of one response (the bytes after its header) and check every
 * length before reading, so malformed or truncated input yields a negative
 * code and never an out-of-bounds read.
 *
 * Error codes used throughout: -ENOMEM (allocation failed), CORRAL_ETRUNC
 * (the input ends before the message does), CORRAL_EPROTO (the bytes cannot
 * be a valid message), CORRAL_EINVALID (bad arguments to an encoder),
 * -EMSGSIZE (a message would exceed DQLITE_PROTO_MAX_BODY). */
#ifndef CORRAL_STATE_DQLITE_PROTO_H
#define CORRAL_STATE_DQLITE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol version sent in the handshake. */
#define DQLITE_PROTO_VERSION 1

/* Size of a message header and of a word. */
#define DQLITE_PROTO_HEADER_SIZE 8
#define DQLITE_PROTO_WORD 8

/* Largest body we send or accept. dqlite batches rows about one memory page
 * at a time, so only a single huge row could come near this. */
#define DQLITE_PROTO_MAX_BODY (64u * 1024u * 1024u)

/* Largest number of parameters a tuple can carry (the count is one byte). */
#define DQLITE_PROTO_MAX_PARAMS 255

/* Request types. */
enum {
	DQLITE_PROTO_REQ_LEADER = 0,
	DQLITE_PROTO_REQ_CLIENT = 1,
	DQLITE_PROTO_REQ_OPEN = 3,
	DQLITE_PROTO_REQ_PREPARE = 4,
	DQLITE_PROTO_REQ_EXEC = 5,
	DQLITE_PROTO_REQ_QUERY = 6,
	DQLITE_PROTO_REQ_FINALIZE = 7,
	DQLITE_PROTO_REQ_EXEC_SQL = 8,
	DQLITE_PROTO_REQ_QUERY_SQL = 9,
	DQLITE_PROTO_REQ_ADD = 12,
	DQLITE_PROTO_REQ_ASSIGN = 13,
	DQLITE_PROTO_REQ_REMOVE = 14,
	DQLITE_PROTO_REQ_CLUSTER = 16,
	DQLITE_PROTO_REQ_TRANSFER = 17,
	DQLITE_PROTO_REQ_DESCRIBE = 18,
};

/* Response types. */
enum {
	DQLITE_PROTO_RESP_FAILURE = 0,
	DQLITE_PROTO_RESP_NODE = 1,
	DQLITE_PROTO_RESP_WELCOME = 2,
	DQLITE_PROTO_RESP_NODES = 3,
	DQLITE_PROTO_RESP_DB = 4,
	DQLITE_PROTO_RESP_STMT = 5,
	DQLITE_PROTO_RESP_RESULT = 6,
	DQLITE_PROTO_RESP_ROWS = 7,
	DQLITE_PROTO_RESP_EMPTY = 8,
	DQLITE_PROTO_RESP_METADATA = 10,
};

/* Value types of parameters and row values. */
enum {
	DQLITE_PROTO_INTEGER = 1,
	DQLITE_PROTO_FLOAT = 2,
	DQLITE_PROTO_TEXT = 3,
	DQLITE_PROTO_BLOB = 4,
	DQLITE_PROTO_NULL = 5,
	DQLITE_PROTO_UNIXTIME = 9,
	DQLITE_PROTO_ISO8601 = 10,
	DQLITE_PROTO_BOOLEAN = 11,
};

/* Raft roles used by ASSIGN and CLUSTER. */
enum {
	DQLITE_PROTO_ROLE_VOTER = 0,
	DQLITE_PROTO_ROLE_STANDBY = 1,
	DQLITE_PROTO_ROLE_SPARE = 2,
};

/* Formats of CLUSTER (1 adds roles) and DESCRIBE requests. */
#define DQLITE_PROTO_CLUSTER_FORMAT_V0 0
#define DQLITE_PROTO_CLUSTER_FORMAT_V1 1
#define DQLITE_PROTO_DESCRIBE_FORMAT_V0 0

/* SQLite extended codes dqlite answers in FAILURE when this node cannot
 * serve a write or read: SQLITE_IOERR | (40 << 8) and SQLITE_IOERR | (41 <<
 * 8). */
#define DQLITE_PROTO_IOERR_NOT_LEADER 10250
#define DQLITE_PROTO_IOERR_LEADERSHIP_LOST 10506

/* Memory functions the module allocates with. Tests replace them to inject
 * failures; production code leaves the libc defaults. */
struct dqlite_proto_alloc {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);
};

/* Install @alloc (copied, no reference kept) as the module's allocator, or
 * restore malloc/realloc/free when @alloc is NULL. Not thread-safe: call it
 * only while no other thread uses this module or dqlite_client. */
void dqlite_proto_set_alloc(const struct dqlite_proto_alloc *alloc);

/* Allocate @size bytes through the module's allocator; NULL on failure. */
void *dqlite_proto_malloc(size_t size);

/* Resize @ptr through the module's allocator; NULL on failure, and then
 * @ptr is still valid. */
void *dqlite_proto_realloc(void *ptr, size_t size);

/* Free @ptr (NULL is fine) through the module's allocator. Memory this
 * module hands out (addresses from decode_node, for instance) must be
 * released with this function or the matching close function. */
void dqlite_proto_free(void *ptr);

/* A growable byte buffer that encoders append messages to. */
struct dqlite_proto_buf {
	uint8_t *data; /* owned */
	size_t len;
	size_t cap;
};

/* Initialize @buf empty; no allocation happens until the first append. */
void dqlite_proto_buf_init(struct dqlite_proto_buf *buf);

/* Release the memory of @buf and make it empty again. Accepts an already
 * closed buffer. */
void dqlite_proto_buf_close(struct dqlite_proto_buf *buf);

/* A decoded message header. */
struct dqlite_proto_header {
	uint32_t body_len; /* in bytes: the wire's word count times 8 */
	uint8_t type;
	uint8_t schema;
	uint16_t extra;
};

/* A statement parameter. Pointers are borrowed and must stay valid until
 * the encoder returns. */
struct dqlite_param {
	uint8_t type; /* DQLITE_PROTO_INTEGER, _FLOAT, _TEXT, _BLOB, _NULL,
		       * _BOOLEAN */
	union {
		int64_t integer;  /* INTEGER; BOOLEAN (non-zero is true) */
		double real;      /* FLOAT */
		const char *text; /* TEXT, NUL-terminated */
		struct {
			const void *data;
			size_t len;
		} blob; /* BLOB; data may be NULL when len is 0 */
	};
};

/* One decoded row value. */
struct dqlite_value {
	/* DQLITE_PROTO_INTEGER (also for UNIXTIME), _FLOAT, _TEXT (also for
	 * ISO8601), _BLOB, _NULL or _BOOLEAN. */
	uint8_t type;
	uint8_t wire_type; /* the type code as received */
	size_t len;        /* bytes of text (without its NUL) or blob */
	union {
		int64_t integer; /* INTEGER, UNIXTIME; BOOLEAN as 0 or 1 */
		double real;     /* FLOAT */
		char *text;      /* owned, NUL-terminated */
		uint8_t *blob;   /* owned, NULL when len is 0 */
	};
};

/* A decoded result set: column names and rows of values. */
struct dqlite_rows {
	unsigned n_cols;
	char **cols; /* owned: n_cols owned names */
	size_t n_rows;
	struct dqlite_value *values; /* owned: n_rows * n_cols, row-major */
	size_t cap;                  /* rows the values array can hold */
};

/* One entry of a NODES response. */
struct dqlite_proto_node {
	uint64_t id;
	char *address; /* owned */
	uint64_t role; /* DQLITE_PROTO_ROLE_*; 0 with format 0 */
};

/* A decoded NODES response. */
struct dqlite_proto_nodes {
	size_t n;
	struct dqlite_proto_node *nodes; /* owned */
};

/* Initialize @rows empty (no allocation). */
void dqlite_proto_rows_init(struct dqlite_rows *rows);

/* Free everything @rows owns and make it empty again. Accepts an already
 * closed or empty @rows. */
void dqlite_proto_rows_close(struct dqlite_rows *rows);

/* Return the value at @row, @col of @rows (borrowed from @rows), or NULL
 * when either index is out of range. */
const struct dqlite_value *dqlite_proto_rows_value(
    const struct dqlite_rows *rows,
    size_t row,
    unsigned col);

/* Free everything @nodes owns and make it empty. Accepts an empty @nodes. */
void dqlite_proto_nodes_close(struct dqlite_proto_nodes *nodes);

/* Map the code of a FAILURE response to our error code: CORRAL_ENOTLEADER
 * for "not leader" and "leadership lost", CORRAL_EDBFAIL otherwise. */
int dqlite_proto_failure_rv(uint64_t code);

/* Append the 8-byte handshake (protocol version 1, little-endian). Returns 0
 * or -ENOMEM. */
int dqlite_proto_encode_handshake(struct dqlite_proto_buf *buf);

/* The request encoders below each append one whole message (header and
 * body) to @buf. Strings are copied into @buf; parameters (borrowed) are
 * encoded as a tuple after the fixed fields and left out when @n is 0. On
 * error @buf is left as it was. They return 0, -ENOMEM, -EMSGSIZE, or
 * CORRAL_EINVALID for a NULL string, more than DQLITE_PROTO_MAX_PARAMS
 * parameters, an unknown parameter type or a NULL blob with a length. */

/* LEADER: one zero word. */
int dqlite_proto_encode_leader(struct dqlite_proto_buf *buf);

/* CLIENT: the client @id. */
int dqlite_proto_encode_client(struct dqlite_proto_buf *buf, uint64_t id);

/* OPEN: database @name, @flags (0), @vfs name (dqlite 1.11 ignores both). */
int dqlite_proto_encode_open(struct dqlite_proto_buf *buf,
			     const char *name,
			     uint64_t flags,
			     const char *vfs);

/* PREPARE: @db_id as a full word, then @sql. */
int dqlite_proto_encode_prepare(struct dqlite_proto_buf *buf,
				uint64_t db_id,
				const char *sql);

/* EXEC: @db_id and @stmt_id as two u32 in one word, then the parameters. */
int dqlite_proto_encode_exec(struct dqlite_proto_buf *buf,
			     uint32_t db_id,
			     uint32_t stmt_id,
			     const struct dqlite_param *params,
			     unsigned n);

/* QUERY: laid out like EXEC. */
int dqlite_proto_encode_query(struct dqlite_proto_buf *buf,
			      uint32_t db_id,
			      uint32_t stmt_id,
			      const struct dqlite_param *params,
			      unsigned n);

/* FINALIZE: @db_id and @stmt_id as two u32 in one word. */
int dqlite_proto_encode_finalize(struct dqlite_proto_buf *buf,
				 uint32_t db_id,
				 uint32_t stmt_id);

/* EXEC_SQL: @db_id as a full word, @sql, then the parameters. */
int dqlite_proto_encode_exec_sql(struct dqlite_proto_buf *buf,
				 uint64_t db_id,
				 const char *sql,
				 const struct dqlite_param *params,
				 unsigned n);

/* QUERY_SQL: laid out like EXEC_SQL. */
int dqlite_proto_encode_query_sql(struct dqlite_proto_buf *buf,
				  uint64_t db_id,
				  const char *sql,
				  const struct dqlite_param *params,
				  unsigned n);

/* ADD: node @id and its @address. */
int dqlite_proto_encode_add(struct dqlite_proto_buf *buf,
			    uint64_t id,
			    const char *address);

/* ASSIGN: node @id and its new @role (DQLITE_PROTO_ROLE_*). */
int dqlite_proto_encode_assign(struct dqlite_proto_buf *buf,
			       uint64_t id,
			       uint64_t role);

/* REMOVE: node @id. */
int dqlite_proto_encode_remove(struct dqlite_proto_buf *buf, uint64_t id);

/* CLUSTER: the response @format (DQLITE_PROTO_CLUSTER_FORMAT_*). */
int dqlite_proto_encode_cluster(struct dqlite_proto_buf *buf, uint64_t format);

/* TRANSFER: the node @id to hand leadership to (0: any voter). */
int dqlite_proto_encode_transfer(struct dqlite_proto_buf *buf, uint64_t id);

/* DESCRIBE: the response @format (DQLITE_PROTO_DESCRIBE_FORMAT_V0). */
int dqlite_proto_encode_describe(struct dqlite_proto_buf *buf, uint64_t format);

/* Decode the 8-byte header at @data (@len bytes available). Returns 0,
 * CORRAL_ETRUNC when @len < 8, or CORRAL_EPROTO when the body would be
 * empty or longer than DQLITE_PROTO_MAX_BODY. */
int dqlite_proto_decode_header(const uint8_t *data,
			       size_t len,
			       struct dqlite_proto_header *header);

/* The decoders below take the body of one response (@len bytes at @body)
 * and return 0, CORRAL_ETRUNC when it ends early, CORRAL_EPROTO when it
 * cannot be valid (including bytes left over after the message), or -ENOMEM.
 * Output parameters are written only on success. */

/* FAILURE: the code, and the message copied into @msg (@size bytes,
 * truncated and always NUL-terminated when @size > 0; @msg may be NULL). */
int dqlite_proto_decode_failure(const uint8_t *body,
				size_t len,
				uint64_t *code,
				char *msg,
				size_t size);

/* NODE: the leader's id and address; *@address is allocated (free it with
 * dqlite_proto_free()) and is "" when no leader is known. */
int dqlite_proto_decode_node(const uint8_t *body,
			     size_t len,
			     uint64_t *id,
			     char **address);

/* WELCOME: the heartbeat timeout in milliseconds. */
int dqlite_proto_decode_welcome(const uint8_t *body,
				size_t len,
				uint64_t *heartbeat_timeout);

/* NODES in @format (0: id and address, 1: also the role) into @nodes, which
 * the caller later releases with dqlite_proto_nodes_close(). */
int dqlite_proto_decode_nodes(const uint8_t *body,
			      size_t len,
			      uint64_t format,
			      struct dqlite_proto_nodes *nodes);

/* DB: the database id. */
int dqlite_proto_decode_db(const uint8_t *body, size_t len, uint32_t *db_id);

/* STMT: database id, statement id and number of parameters. */
int dqlite_proto_decode_stmt(const uint8_t *body,
			     size_t len,
			     uint32_t *db_id,
			     uint32_t *stmt_id,
			     uint64_t *n_params);

/* RESULT: last insert id and number of rows changed. */
int dqlite_proto_decode_result(const uint8_t *body,
			       size_t len,
			       uint64_t *last_insert_id,
			       uint64_t *rows_affected);

/* EMPTY: one word, checked for length only. */
int dqlite_proto_decode_empty(const uint8_t *body, size_t len);

/* METADATA: failure domain and weight. */
int dqlite_proto_decode_metadata(const uint8_t *body,
				 size_t len,
				 uint64_t *failure_domain,
				 uint64_t *weight);

/* ROWS: append the rows of one ROWS message to @rows, which must have been
 * initialized with dqlite_proto_rows_init(). The first message sets the
 * column names; later parts of the same result must repeat the same columns.
 * *@more is set to true when the result continues in another ROWS message
 * (0xee marker) and false at its end (0xff marker). On error @rows is closed
 * (everything freed, left empty), so the caller never leaks by giving up. */
int dqlite_proto_decode_rows(const uint8_t *body,
			     size_t len,
			     struct dqlite_rows *rows,
			     bool *more);

#endif /* CORRAL_STATE_DQLITE_PROTO_H */
