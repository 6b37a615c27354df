#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <corral/err.h>

#include "dqlite_proto.h"

/* Row markers: a whole word of these bytes ends a ROWS message. */
#define ROWS_PART_BYTE 0xee
#define ROWS_DONE_BYTE 0xff

/* SQLite's hard upper limit on the number of result columns. */
#define MAX_COLUMNS 32767

static struct dqlite_proto_alloc proto_alloc = {
	.malloc = malloc,
	.realloc = realloc,
	.free = free,
};

void dqlite_proto_set_alloc(const struct dqlite_proto_alloc *alloc)
{
	if (alloc == NULL) {
		proto_alloc.malloc = malloc;
		proto_alloc.realloc = realloc;
		proto_alloc.free = free;
		return;
	}
	proto_alloc = *alloc;
}

void *dqlite_proto_malloc(size_t size)
{
	return proto_alloc.malloc(size);
}

void *dqlite_proto_realloc(void *ptr, size_t size)
{
	return proto_alloc.realloc(ptr, size);
}

void dqlite_proto_free(void *ptr)
{
	if (ptr != NULL) {
		proto_alloc.free(ptr);
	}
}

/* Round @n up to a whole number of words. The caller keeps @n far below
 * SIZE_MAX. */
static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static char *str_dup_n(const char *s, size_t n)
{
	char *copy = dqlite_proto_malloc(n + 1);
	if (copy == NULL) {
		return NULL;
	}
	memcpy(copy, s, n);
	copy[n] = '\0';
	return copy;
}

/* Little-endian loads and stores, independent of the host's byte order. */
static uint64_t load_u64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--) {
		v = (v << 8) | p[i];
	}
	return v;
}

static uint32_t load_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void store_u64(uint8_t *p, uint64_t v)
{
	int i;
	for (i = 0; i < 8; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static void store_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/*
 * Encoding.
 */

void dqlite_proto_buf_init(struct dqlite_proto_buf *buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

void dqlite_proto_buf_close(struct dqlite_proto_buf *buf)
{
	dqlite_proto_free(buf->data);
	dqlite_proto_buf_init(buf);
}

/* Reserve @n more zeroed bytes at the end of @buf and return a pointer to
 * them, or NULL on allocation failure or when the buffer would grow past
 * what one message may hold. */
static uint8_t *buf_advance(struct dqlite_proto_buf *buf, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (n > DQLITE_PROTO_MAX_BODY + DQLITE_PROTO_HEADER_SIZE ||
	    buf->len > SIZE_MAX / 2 - n) {
		return NULL;
	}
	if (buf->len + n > buf->cap) {
		cap = buf->cap == 0 ? 256 : buf->cap;
		while (cap < buf->len + n) {
			cap *= 2;
		}
		p = dqlite_proto_realloc(buf->data, cap);
		if (p == NULL) {
			return NULL;
		}
		buf->data = p;
		buf->cap = cap;
	}
	p = buf->data + buf->len;
	memset(p, 0, n);
	buf->len += n;
	return p;
}

static int put_u64(struct dqlite_proto_buf *buf, uint64_t v)
{
	uint8_t *p = buf_advance(buf, 8);
	if (p == NULL) {
		return -ENOMEM;
	}
	store_u64(p, v);
	return 0;
}

/* Two u32 values in one word, as EXEC, QUERY and FINALIZE carry ids. */
static int put_u32_pair(struct dqlite_proto_buf *buf, uint32_t a, uint32_t b)
{
	uint8_t *p = buf_advance(buf, 8);
	if (p == NULL) {
		return -ENOMEM;
	}
	store_u32(p, a);
	store_u32(p + 4, b);
	return 0;
}

/* A string: its bytes, a NUL, zero padding to the next word. */
static int put_text(struct dqlite_proto_buf *buf, const char *s)
{
	size_t n;
	uint8_t *p;

	if (s == NULL) {
		return CORRAL_EINVALID;
	}
	n = strlen(s);
	if (n >= DQLITE_PROTO_MAX_BODY) {
		return -EMSGSIZE;
	}
	p = buf_advance(buf, pad8(n + 1));
	if (p == NULL) {
		return -ENOMEM;
	}
	memcpy(p, s, n);
	return 0;
}

static int check_params(const struct dqlite_param *params, unsigned n)
{
	unsigned i;

	if (n > DQLITE_PROTO_MAX_PARAMS || (n > 0 && params == NULL)) {
		return CORRAL_EINVALID;
	}
	for (i = 0; i < n; i++) {
		switch (params[i].type) {
		case DQLITE_PROTO_INTEGER:
		case DQLITE_PROTO_FLOAT:
		case DQLITE_PROTO_NULL:
		case DQLITE_PROTO_BOOLEAN:
			break;
		case DQLITE_PROTO_TEXT:
			if (params[i].text == NULL) {
				return CORRAL_EINVALID;
			}
			break;
		case DQLITE_PROTO_BLOB:
			if (params[i].blob.data == NULL &&
			    params[i].blob.len > 0) {
				return CORRAL_EINVALID;
			}
			if (params[i].blob.len >= DQLITE_PROTO_MAX_BODY) {
				return -EMSGSIZE;
			}
			break;
		default:
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

/* The parameter tuple: count byte, one type byte each, padding to a word,
 * then the values, each word-aligned. Left out entirely when @n is 0. */
static int put_params(struct dqlite_proto_buf *buf,
		      const struct dqlite_param *params,
		      unsigned n)
{
	uint8_t *p;
	uint64_t bits;
	unsigned i;
	int rv;

	if (n == 0) {
		return 0;
	}
	p = buf_advance(buf, pad8(1 + (size_t)n));
	if (p == NULL) {
		return -ENOMEM;
	}
	p[0] = (uint8_t)n;
	for (i = 0; i < n; i++) {
		p[1 + i] = params[i].type;
	}
	for (i = 0; i < n; i++) {
		const struct dqlite_param *v = &params[i];
		switch (v->type) {
		case DQLITE_PROTO_INTEGER:
			rv = put_u64(buf, (uint64_t)v->integer);
			break;
		case DQLITE_PROTO_BOOLEAN:
			rv = put_u64(buf, v->integer != 0 ? 1 : 0);
			break;
		case DQLITE_PROTO_NULL:
			rv = put_u64(buf, 0);
			break;
		case DQLITE_PROTO_FLOAT:
			memcpy(&bits, &v->real, sizeof bits);
			rv = put_u64(buf, bits);
			break;
		case DQLITE_PROTO_TEXT:
			rv = put_text(buf, v->text);
			break;
		default: /* DQLITE_PROTO_BLOB, checked before */
			rv = put_u64(buf, (uint64_t)v->blob.len);
			if (rv != 0) {
				break;
			}
			p = buf_advance(buf, pad8(v->blob.len));
			if (p == NULL) {
				rv = -ENOMEM;
				break;
			}
			if (v->blob.len > 0) {
				memcpy(p, v->blob.data, v->blob.len);
			}
			break;
		}
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

/* Reserve the header of a message of @type; returns its offset in @buf
 * through @start. */
static int msg_begin(struct dqlite_proto_buf *buf, uint8_t type, size_t *start)
{
	uint8_t *p;

	*start = buf->len;
	p = buf_advance(buf, DQLITE_PROTO_HEADER_SIZE);
	if (p == NULL) {
		return -ENOMEM;
	}
	p[4] = type;
	return 0;
}

/* Finish the message begun at @start: fill in the body length, or on @rv
 * != 0 drop the partial message so @buf is as it was. */
static int msg_end(struct dqlite_proto_buf *buf, size_t start, int rv)
{
	size_t body;

	if (rv != 0) {
		buf->len = start;
		return rv;
	}
	body = buf->len - start - DQLITE_PROTO_HEADER_SIZE;
	if (body > DQLITE_PROTO_MAX_BODY) {
		buf->len = start;
		return -EMSGSIZE;
	}
	store_u32(buf->data + start, (uint32_t)(body / DQLITE_PROTO_WORD));
	return 0;
}

int dqlite_proto_encode_handshake(struct dqlite_proto_buf *buf)
{
	return put_u64(buf, DQLITE_PROTO_VERSION);
}

/* A request whose body is a single word. */
static int encode_word(struct dqlite_proto_buf *buf, uint8_t type, uint64_t v)
{
	size_t start;
	int rv;

	rv = msg_begin(buf, type, &start);
	if (rv != 0) {
		return rv;
	}
	return msg_end(buf, start, put_u64(buf, v));
}

int dqlite_proto_encode_leader(struct dqlite_proto_buf *buf)
{
	return encode_word(buf, DQLITE_PROTO_REQ_LEADER, 0);
}

int dqlite_proto_encode_client(struct dqlite_proto_buf *buf, uint64_t id)
{
	return encode_word(buf, DQLITE_PROTO_REQ_CLIENT, id);
}

int dqlite_proto_encode_open(struct dqlite_proto_buf *buf,
			     const char *name,
			     uint64_t flags,
			     const char *vfs)
{
	size_t start;
	int rv;

	rv = msg_begin(buf, DQLITE_PROTO_REQ_OPEN, &start);
	if (rv != 0) {
		return rv;
	}
	rv = put_text(buf, name);
	if (rv == 0) {
		rv = put_u64(buf, flags);
	}
	if (rv == 0) {
		rv = put_text(buf, vfs);
	}
	return msg_end(buf, start, rv);
}

/* A request with a db id word and an SQL string. */
static int encode_sql(struct dqlite_proto_buf *buf,
		      uint8_t type,
		      uint64_t db_id,
		      const char *sql,
		      const struct dqlite_param *params,
		      unsigned n)
{
	size_t start;
	int rv;

	rv = check_params(params, n);
	if (rv != 0) {
		return rv;
	}
	rv = msg_begin(buf, type, &start);
	if (rv != 0) {
		return rv;
	}
	rv = put_u64(buf, db_id);
	if (rv == 0) {
		rv = put_text(buf, sql);
	}
	if (rv == 0) {
		rv = put_params(buf, params, n);
	}
	return msg_end(buf, start, rv);
}

int dqlite_proto_encode_prepare(struct dqlite_proto_buf *buf,
				uint64_t db_id,
				const char *sql)
{
	return encode_sql(buf, DQLITE_PROTO_REQ_PREPARE, db_id, sql, NULL, 0);
}

int dqlite_proto_encode_exec_sql(struct dqlite_proto_buf *buf,
				 uint64_t db_id,
				 const char *sql,
				 const struct dqlite_param *params,
				 unsigned n)
{
	return encode_sql(buf, DQLITE_PROTO_REQ_EXEC_SQL, db_id, sql, params,
			  n);
}

int dqlite_proto_encode_query_sql(struct dqlite_proto_buf *buf,
				  uint64_t db_id,
				  const char *sql,
				  const struct dqlite_param *params,
				  unsigned n)
{
	return encode_sql(buf, DQLITE_PROTO_REQ_QUERY_SQL, db_id, sql, params,
			  n);
}

/* A request naming a prepared statement, with optional parameters. */
static int encode_stmt(struct dqlite_proto_buf *buf,
		       uint8_t type,
		       uint32_t db_id,
		       uint32_t stmt_id,
		       const struct dqlite_param *params,
		       unsigned n)
{
	size_t start;
	int rv;

	rv = check_params(params, n);
	if (rv != 0) {
		return rv;
	}
	rv = msg_begin(buf, type, &start);
	if (rv != 0) {
		return rv;
	}
	rv = put_u32_pair(buf, db_id, stmt_id);
	if (rv == 0) {
		rv = put_params(buf, params, n);
	}
	return msg_end(buf, start, rv);
}

int dqlite_proto_encode_exec(struct dqlite_proto_buf *buf,
			     uint32_t db_id,
			     uint32_t stmt_id,
			     const struct dqlite_param *params,
			     unsigned n)
{
	return encode_stmt(buf, DQLITE_PROTO_REQ_EXEC, db_id, stmt_id, params,
			   n);
}

int dqlite_proto_encode_query(struct dqlite_proto_buf *buf,
			      uint32_t db_id,
			      uint32_t stmt_id,
			      const struct dqlite_param *params,
			      unsigned n)
{
	return encode_stmt(buf, DQLITE_PROTO_REQ_QUERY, db_id, stmt_id, params,
			   n);
}

int dqlite_proto_encode_finalize(struct dqlite_proto_buf *buf,
				 uint32_t db_id,
				 uint32_t stmt_id)
{
	return encode_stmt(buf, DQLITE_PROTO_REQ_FINALIZE, db_id, stmt_id, NULL,
			   0);
}

int dqlite_proto_encode_add(struct dqlite_proto_buf *buf,
			    uint64_t id,
			    const char *address)
{
	size_t start;
	int rv;

	rv = msg_begin(buf, DQLITE_PROTO_REQ_ADD, &start);
	if (rv != 0) {
		return rv;
	}
	rv = put_u64(buf, id);
	if (rv == 0) {
		rv = put_text(buf, address);
	}
	return msg_end(buf, start, rv);
}

int dqlite_proto_encode_assign(struct dqlite_proto_buf *buf,
			       uint64_t id,
			       uint64_t role)
{
	size_t start;
	int rv;

	rv = msg_begin(buf, DQLITE_PROTO_REQ_ASSIGN, &start);
	if (rv != 0) {
		return rv;
	}
	rv = put_u64(buf, id);
	if (rv == 0) {
		rv = put_u64(buf, role);
	}
	return msg_end(buf, start, rv);
}

int dqlite_proto_encode_remove(struct dqlite_proto_buf *buf, uint64_t id)
{
	return encode_word(buf, DQLITE_PROTO_REQ_REMOVE, id);
}

int dqlite_proto_encode_cluster(struct dqlite_proto_buf *buf, uint64_t format)
{
	return encode_word(buf, DQLITE_PROTO_REQ_CLUSTER, format);
}

int dqlite_proto_encode_transfer(struct dqlite_proto_buf *buf, uint64_t id)
{
	return encode_word(buf, DQLITE_PROTO_REQ_TRANSFER, id);
}

int dqlite_proto_encode_describe(struct dqlite_proto_buf *buf, uint64_t format)
{
	return encode_word(buf, DQLITE_PROTO_REQ_DESCRIBE, format);
}

/*
 * Decoding.
 */

/* A read position over a body; @left bytes remain at @p. */
struct cursor {
	const uint8_t *p;
	size_t left;
};

static int get_u64(struct cursor *c, uint64_t *v)
{
	if (c->left < 8) {
		return CORRAL_ETRUNC;
	}
	*v = load_u64(c->p);
	c->p += 8;
	c->left -= 8;
	return 0;
}

/* Point *@s at the next string inside the body (borrowed) and its length at
 * *@n, skipping its padding. */
static int get_text(struct cursor *c, const char **s, size_t *n)
{
	const uint8_t *nul;
	size_t size;

	if (c->left == 0) {
		return CORRAL_ETRUNC;
	}
	nul = memchr(c->p, 0, c->left);
	if (nul == NULL) {
		return CORRAL_ETRUNC;
	}
	*n = (size_t)(nul - c->p);
	size = pad8(*n + 1);
	if (size > c->left) {
		return CORRAL_ETRUNC;
	}
	*s = (const char *)c->p;
	c->p += size;
	c->left -= size;
	return 0;
}

/* Like get_text, returning an allocated copy. */
static int get_text_dup(struct cursor *c, char **out, size_t *n)
{
	const char *s;
	size_t len;
	int rv;

	rv = get_text(c, &s, &len);
	if (rv != 0) {
		return rv;
	}
	*out = str_dup_n(s, len);
	if (*out == NULL) {
		return -ENOMEM;
	}
	if (n != NULL) {
		*n = len;
	}
	return 0;
}

/* Every decoder ends by checking that nothing is left over. */
static int cursor_done(const struct cursor *c)
{
	return c->left == 0 ? 0 : CORRAL_EPROTO;
}

int dqlite_proto_failure_rv(uint64_t code)
{
	if (code == DQLITE_PROTO_IOERR_NOT_LEADER ||
	    code == DQLITE_PROTO_IOERR_LEADERSHIP_LOST) {
		return CORRAL_ENOTLEADER;
	}
	/* SQLITE_BUSY and SQLITE_LOCKED, with their extended codes: another
	 * connection (another member's) holds the write lock. */
	if ((code & 0xff) == 5 || (code & 0xff) == 6) {
		return CORRAL_EBUSY;
	}
	return CORRAL_EDBFAIL;
}

int dqlite_proto_decode_header(const uint8_t *data,
			       size_t len,
			       struct dqlite_proto_header *header)
{
	uint32_t words;

	if (len < DQLITE_PROTO_HEADER_SIZE) {
		return CORRAL_ETRUNC;
	}
	words = load_u32(data);
	if (words == 0 || words > DQLITE_PROTO_MAX_BODY / DQLITE_PROTO_WORD) {
		return CORRAL_EPROTO;
	}
	header->body_len = words * DQLITE_PROTO_WORD;
	header->type = data[4];
	header->schema = data[5];
	header->extra = (uint16_t)(data[6] | data[7] << 8);
	return 0;
}

int dqlite_proto_decode_failure(const uint8_t *body,
				size_t len,
				uint64_t *code,
				char *msg,
				size_t size)
{
	struct cursor c = { body, len };
	const char *s;
	size_t n;
	uint64_t v;
	int rv;

	rv = get_u64(&c, &v);
	if (rv == 0) {
		rv = get_text(&c, &s, &n);
	}
	if (rv == 0) {
		rv = cursor_done(&c);
	}
	if (rv != 0) {
		return rv;
	}
	*code = v;
	if (msg != NULL && size > 0) {
		if (n >= size) {
			n = size - 1;
		}
		memcpy(msg, s, n);
		msg[n] = '\0';
	}
	return 0;
}

int dqlite_proto_decode_node(const uint8_t *body,
			     size_t len,
			     uint64_t *id,
			     char **address)
{
	struct cursor c = { body, len };
	const char *s;
	size_t n;
	uint64_t v;
	char *copy;
	int rv;

	rv = get_u64(&c, &v);
	if (rv == 0) {
		rv = get_text(&c, &s, &n);
	}
	if (rv == 0) {
		rv = cursor_done(&c);
	}
	if (rv != 0) {
		return rv;
	}
	copy = str_dup_n(s, n);
	if (copy == NULL) {
		return -ENOMEM;
	}
	*id = v;
	*address = copy;
	return 0;
}

/* A body made of exactly @n words, read into @out. */
static int decode_words(const uint8_t *body,
			size_t len,
			uint64_t *out,
			unsigned n)
{
	struct cursor c = { body, len };
	unsigned i;
	int rv;

	for (i = 0; i < n; i++) {
		rv = get_u64(&c, &out[i]);
		if (rv != 0) {
			return rv;
		}
	}
	return cursor_done(&c);
}

int dqlite_proto_decode_welcome(const uint8_t *body,
				size_t len,
				uint64_t *heartbeat_timeout)
{
	uint64_t w;
	int rv = decode_words(body, len, &w, 1);
	if (rv == 0) {
		*heartbeat_timeout = w;
	}
	return rv;
}

int dqlite_proto_decode_db(const uint8_t *body, size_t len, uint32_t *db_id)
{
	uint64_t w;
	int rv = decode_words(body, len, &w, 1);
	if (rv == 0) {
		*db_id = (uint32_t)w; /* the high half is padding */
	}
	return rv;
}

int dqlite_proto_decode_stmt(const uint8_t *body,
			     size_t len,
			     uint32_t *db_id,
			     uint32_t *stmt_id,
			     uint64_t *n_params)
{
	uint64_t w[2];
	int rv = decode_words(body, len, w, 2);
	if (rv == 0) {
		*db_id = (uint32_t)w[0];
		*stmt_id = (uint32_t)(w[0] >> 32);
		*n_params = w[1];
	}
	return rv;
}

int dqlite_proto_decode_result(const uint8_t *body,
			       size_t len,
			       uint64_t *last_insert_id,
			       uint64_t *rows_affected)
{
	uint64_t w[2];
	int rv = decode_words(body, len, w, 2);
	if (rv == 0) {
		*last_insert_id = w[0];
		*rows_affected = w[1];
	}
	return rv;
}

int dqlite_proto_decode_empty(const uint8_t *body, size_t len)
{
	uint64_t w;
	return decode_words(body, len, &w, 1);
}

int dqlite_proto_decode_metadata(const uint8_t *body,
				 size_t len,
				 uint64_t *failure_domain,
				 uint64_t *weight)
{
	uint64_t w[2];
	int rv = decode_words(body, len, w, 2);
	if (rv == 0) {
		*failure_domain = w[0];
		*weight = w[1];
	}
	return rv;
}

void dqlite_proto_nodes_close(struct dqlite_proto_nodes *nodes)
{
	size_t i;

	for (i = 0; i < nodes->n; i++) {
		dqlite_proto_free(nodes->nodes[i].address);
	}
	dqlite_proto_free(nodes->nodes);
	nodes->nodes = NULL;
	nodes->n = 0;
}

int dqlite_proto_decode_nodes(const uint8_t *body,
			      size_t len,
			      uint64_t format,
			      struct dqlite_proto_nodes *nodes)
{
	struct cursor c = { body, len };
	struct dqlite_proto_nodes out = { 0, NULL };
	size_t min_size;
	uint64_t count;
	int rv;

	if (format > DQLITE_PROTO_CLUSTER_FORMAT_V1) {
		return CORRAL_EINVALID;
	}
	rv = get_u64(&c, &count);
	if (rv != 0) {
		return rv;
	}
	/* Each entry takes at least an id and an empty string. */
	min_size = format == DQLITE_PROTO_CLUSTER_FORMAT_V1 ? 24 : 16;
	if (count > c.left / min_size) {
		return CORRAL_ETRUNC;
	}
	if (count > 0) {
		out.nodes =
		    dqlite_proto_malloc((size_t)count * sizeof *out.nodes);
		if (out.nodes == NULL) {
			return -ENOMEM;
		}
	}
	for (out.n = 0; out.n < count;) {
		struct dqlite_proto_node *node = &out.nodes[out.n];
		node->role = 0;
		rv = get_u64(&c, &node->id);
		if (rv != 0) {
			goto err_after_alloc;
		}
		rv = get_text_dup(&c, &node->address, NULL);
		if (rv != 0) {
			goto err_after_alloc;
		}
		out.n++;
		if (format == DQLITE_PROTO_CLUSTER_FORMAT_V1) {
			rv = get_u64(&c, &node->role);
			if (rv != 0) {
				goto err_after_alloc;
			}
		}
	}
	rv = cursor_done(&c);
	if (rv != 0) {
		goto err_after_alloc;
	}
	*nodes = out;
	return 0;

err_after_alloc:
	dqlite_proto_nodes_close(&out);
	return rv;
}

void dqlite_proto_rows_init(struct dqlite_rows *rows)
{
	rows->n_cols = 0;
	rows->cols = NULL;
	rows->n_rows = 0;
	rows->values = NULL;
	rows->cap = 0;
}

static void value_close(struct dqlite_value *v)
{
	if (v->type == DQLITE_PROTO_TEXT) {
		dqlite_proto_free(v->text);
	} else if (v->type == DQLITE_PROTO_BLOB) {
		dqlite_proto_free(v->blob);
	}
	v->type = DQLITE_PROTO_NULL;
}

void dqlite_proto_rows_close(struct dqlite_rows *rows)
{
	size_t i;

	for (i = 0; i < rows->n_rows * rows->n_cols; i++) {
		value_close(&rows->values[i]);
	}
	dqlite_proto_free(rows->values);
	if (rows->cols != NULL) {
		for (i = 0; i < rows->n_cols; i++) {
			dqlite_proto_free(rows->cols[i]);
		}
		dqlite_proto_free(rows->cols);
	}
	dqlite_proto_rows_init(rows);
}

const struct dqlite_value *dqlite_proto_rows_value(
    const struct dqlite_rows *rows,
    size_t row,
    unsigned col)
{
	if (row >= rows->n_rows || col >= rows->n_cols) {
		return NULL;
	}
	return &rows->values[row * rows->n_cols + col];
}

/* Read the column names of a ROWS message: store them on the first part,
 * compare them with the stored ones on later parts. */
static int get_columns(struct cursor *c, struct dqlite_rows *rows)
{
	uint64_t count;
	unsigned i;
	const char *s;
	size_t n;
	int rv;

	rv = get_u64(c, &count);
	if (rv != 0) {
		return rv;
	}
	if (count == 0 || count > MAX_COLUMNS) {
		return CORRAL_EPROTO;
	}
	if (count > c->left / DQLITE_PROTO_WORD) {
		return CORRAL_ETRUNC;
	}
	if (rows->cols != NULL) {
		if (count != rows->n_cols) {
			return CORRAL_EPROTO;
		}
		for (i = 0; i < rows->n_cols; i++) {
			rv = get_text(c, &s, &n);
			if (rv != 0) {
				return rv;
			}
			if (strlen(rows->cols[i]) != n ||
			    memcmp(rows->cols[i], s, n) != 0) {
				return CORRAL_EPROTO;
			}
		}
		return 0;
	}
	rows->cols = dqlite_proto_malloc((size_t)count * sizeof *rows->cols);
	if (rows->cols == NULL) {
		return -ENOMEM;
	}
	/* Count the names as they are filled so a failure frees only those. */
	rows->n_cols = (unsigned)count;
	for (i = 0; i < rows->n_cols; i++) {
		rows->cols[i] = NULL;
	}
	for (i = 0; i < rows->n_cols; i++) {
		rv = get_text_dup(c, &rows->cols[i], NULL);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

static int get_value(struct cursor *c, uint8_t type, struct dqlite_value *v)
{
	uint64_t w;
	int rv;

	v->wire_type = type;
	v->len = 0;
	switch (type) {
	case DQLITE_PROTO_INTEGER:
	case DQLITE_PROTO_UNIXTIME:
	case DQLITE_PROTO_BOOLEAN:
	case DQLITE_PROTO_FLOAT:
	case DQLITE_PROTO_NULL:
		rv = get_u64(c, &w);
		if (rv != 0) {
			return rv;
		}
		if (type == DQLITE_PROTO_FLOAT) {
			v->type = DQLITE_PROTO_FLOAT;
			memcpy(&v->real, &w, sizeof w);
		} else if (type == DQLITE_PROTO_NULL) {
			v->type = DQLITE_PROTO_NULL;
			v->integer = 0;
		} else if (type == DQLITE_PROTO_BOOLEAN) {
			v->type = DQLITE_PROTO_BOOLEAN;
			v->integer = w != 0;
		} else {
			v->type = DQLITE_PROTO_INTEGER;
			v->integer = (int64_t)w;
		}
		return 0;
	case DQLITE_PROTO_TEXT:
	case DQLITE_PROTO_ISO8601:
		rv = get_text_dup(c, &v->text, &v->len);
		if (rv != 0) {
			return rv;
		}
		v->type = DQLITE_PROTO_TEXT;
		return 0;
	case DQLITE_PROTO_BLOB:
		rv = get_u64(c, &w);
		if (rv != 0) {
			return rv;
		}
		if (w > c->left || pad8((size_t)w) > c->left) {
			return CORRAL_ETRUNC;
		}
		v->blob = NULL;
		if (w > 0) {
			v->blob = dqlite_proto_malloc((size_t)w);
			if (v->blob == NULL) {
				return -ENOMEM;
			}
			memcpy(v->blob, c->p, (size_t)w);
		}
		v->len = (size_t)w;
		v->type = DQLITE_PROTO_BLOB;
		c->p += pad8((size_t)w);
		c->left -= pad8((size_t)w);
		return 0;
	default:
		return CORRAL_EPROTO;
	}
}

/* Make room for one more row in @rows. */
static int rows_grow(struct dqlite_rows *rows)
{
	struct dqlite_value *values;
	size_t cap;

	if (rows->n_rows < rows->cap) {
		return 0;
	}
	cap = rows->cap == 0 ? 16 : rows->cap * 2;
	if (cap > SIZE_MAX / sizeof *values / rows->n_cols) {
		return -ENOMEM;
	}
	values = dqlite_proto_realloc(rows->values,
				      cap * rows->n_cols * sizeof *values);
	if (values == NULL) {
		return -ENOMEM;
	}
	rows->values = values;
	rows->cap = cap;
	return 0;
}

/* Decode one row whose type header starts at the cursor. */
static int get_row(struct cursor *c, struct dqlite_rows *rows)
{
	struct dqlite_value *row;
	size_t header = pad8(((size_t)rows->n_cols + 1) / 2);
	const uint8_t *types = c->p;
	unsigned i;
	uint8_t type;
	int rv;

	if (header > c->left) {
		return CORRAL_ETRUNC;
	}
	rv = rows_grow(rows);
	if (rv != 0) {
		return rv;
	}
	c->p += header;
	c->left -= header;
	row = &rows->values[rows->n_rows * rows->n_cols];
	for (i = 0; i < rows->n_cols; i++) {
		type = (uint8_t)((types[i / 2] >> (4 * (i % 2))) & 0x0f);
		row[i].type = DQLITE_PROTO_NULL;
		rv = get_value(c, type, &row[i]);
		if (rv != 0) {
			goto err_after_values;
		}
	}
	rows->n_rows++;
	return 0;

err_after_values:
	while (i > 0) {
		value_close(&row[--i]);
	}
	return rv;
}

/* Whether the 8 bytes at @p all equal @b. */
static bool word_is(const uint8_t *p, uint8_t b)
{
	int i;
	for (i = 0; i < 8; i++) {
		if (p[i] != b) {
			return false;
		}
	}
	return true;
}

int dqlite_proto_decode_rows(const uint8_t *body,
			     size_t len,
			     struct dqlite_rows *rows,
			     bool *more)
{
	struct cursor c = { body, len };
	int rv;

	rv = get_columns(&c, rows);
	if (rv != 0) {
		goto err;
	}
	for (;;) {
		if (c.left < 8) {
			rv = CORRAL_ETRUNC;
			goto err;
		}
		if (c.p[0] == ROWS_DONE_BYTE || c.p[0] == ROWS_PART_BYTE) {
			if (!word_is(c.p, c.p[0])) {
				rv = CORRAL_EPROTO;
				goto err;
			}
			*more = c.p[0] == ROWS_PART_BYTE;
			c.p += 8;
			c.left -= 8;
			break;
		}
		rv = get_row(&c, rows);
		if (rv != 0) {
			goto err;
		}
	}
	rv = cursor_done(&c);
	if (rv != 0) {
		goto err;
	}
	return 0;

err:
	dqlite_proto_rows_close(rows);
	return rv;
}
