/* Unit tests of the dqlite wire-protocol encoders and decoders. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <corral/err.h>

#include "dqlite_proto.h"

/* A little-endian 64-bit word as 8 bytes, for hand-written bodies. */
#define W(v)                                                                \
	(uint8_t)((uint64_t)(v)), (uint8_t)((uint64_t)(v) >> 8),            \
	    (uint8_t)((uint64_t)(v) >> 16), (uint8_t)((uint64_t)(v) >> 24), \
	    (uint8_t)((uint64_t)(v) >> 32), (uint8_t)((uint64_t)(v) >> 40), \
	    (uint8_t)((uint64_t)(v) >> 48), (uint8_t)((uint64_t)(v) >> 56)

#define ZERO8 0, 0, 0, 0, 0, 0, 0, 0

/* Compare the buffer with the expected bytes, printing both on mismatch. */
static void check_bytes(const struct dqlite_proto_buf *buf,
			const uint8_t *want,
			size_t n)
{
	size_t i;

	if (buf->len != n || memcmp(buf->data, want, n) != 0) {
		print_error("got %zu bytes:", buf->len);
		for (i = 0; i < buf->len; i++) {
			print_error("%s%02x", i % 8 == 0 ? "\n  " : " ",
				    buf->data[i]);
		}
		print_error("\nwant %zu bytes:", n);
		for (i = 0; i < n; i++) {
			print_error("%s%02x", i % 8 == 0 ? "\n  " : " ",
				    want[i]);
		}
		print_error("\n");
		fail();
	}
}

#define CHECK_BYTES(buf, arr) check_bytes(buf, arr, sizeof(arr))

/*
 * Encoders.
 */

static void test_encode_handshake(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x01, 0, 0, 0, 0, 0, 0, 0,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_handshake(&b), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
	dqlite_proto_buf_close(&b); /* closing twice is fine */
}

static void test_encode_leader(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* header */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_leader(&b), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

static void test_encode_client(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_client(&b, 0x0102030405060708), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

static void test_encode_open(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x04, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
		'd', 'b', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'v', 'o', 'l', 'a', 't', 'i', 'l', 'e',
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_open(&b, "db", 0, "volatile"), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

static void test_encode_prepare(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'S', 'E', 'L', 'E', 'C', 'T', ' ', '1',
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_prepare(&b, 1, "SELECT 1"), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

static void test_encode_exec(void **state)
{
	struct dqlite_proto_buf b;
	struct dqlite_param p = { .type = DQLITE_PROTO_INTEGER,
				  .integer = 258 };
	/* clang-format off */
	static const uint8_t want_plain[] = {
		0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
	};
	static const uint8_t want_param[] = {
		0x03, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_exec(&b, 2, 3, NULL, 0), 0);
	CHECK_BYTES(&b, want_plain);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_exec(&b, 2, 3, &p, 1), 0);
	CHECK_BYTES(&b, want_param);
	dqlite_proto_buf_close(&b);
}

static void test_encode_query(void **state)
{
	struct dqlite_proto_buf b;
	struct dqlite_param p = { .type = DQLITE_PROTO_NULL };
	/* clang-format off */
	static const uint8_t want[] = {
		0x03, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
		0x07, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
		0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_query(&b, 7, 9, &p, 1), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

static void test_encode_finalize(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_finalize(&b, 2, 3), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

/* Every parameter type in one tuple. */
static void test_encode_exec_sql_params(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t blob[] = {
		0x01, 0x02, 0x03,
	};
	/* clang-format on */
	struct dqlite_param p[6] = {
		{ .type = DQLITE_PROTO_INTEGER, .integer = -2 },
		{ .type = DQLITE_PROTO_FLOAT, .real = 1.5 },
		{ .type = DQLITE_PROTO_TEXT, .text = "abcdefg" },
		{ .type = DQLITE_PROTO_BLOB, .blob = { blob, sizeof blob } },
		{ .type = DQLITE_PROTO_NULL },
		{ .type = DQLITE_PROTO_BOOLEAN, .integer = 7 },
	};
	/* clang-format off */
	static const uint8_t want[] = {
		/* header: 10 words, EXEC_SQL */
		0x0a, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
		/* db id as a full word */
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		/* "INSERT" */
		'I', 'N', 'S', 'E', 'R', 'T', 0x00, 0x00,
		/* count, six types, no padding needed */
		0x06, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0b, 0x00,
		/* integer -2 */
		0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		/* float 1.5 = 0x3ff8000000000000 */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,
		/* text "abcdefg" */
		'a', 'b', 'c', 'd', 'e', 'f', 'g', 0x00,
		/* blob: length word, bytes padded */
		0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
		/* null */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		/* boolean: any non-zero is 1 */
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_exec_sql(&b, 1, "INSERT", p, 6),
			 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

/* The tuple header is the count byte plus one byte per type, padded: 7
 * parameters fill one word exactly, 8 need two. */
static void test_encode_param_header_sizes(void **state)
{
	struct dqlite_proto_buf b;
	struct dqlite_param p[8];
	/* clang-format off */
	static const uint8_t want7[] = {
		0x0a, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'Q', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x07, 0x05, 0x05, 0x05, 0x05, 0x05, 0x05, 0x05,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
	};
	static const uint8_t want8[] = {
		0x0c, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'Q', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x08, 0x05, 0x05, 0x05, 0x05, 0x05, 0x05, 0x05,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
		ZERO8,
	};
	/* clang-format on */
	unsigned i;
	(void)state;

	for (i = 0; i < 8; i++) {
		p[i].type = DQLITE_PROTO_NULL;
	}
	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_query_sql(&b, 0, "Q", p, 7), 0);
	CHECK_BYTES(&b, want7);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_query_sql(&b, 0, "Q", p, 8), 0);
	CHECK_BYTES(&b, want8);
	dqlite_proto_buf_close(&b);
}

static void test_encode_query_sql(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want[] = {
		0x02, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'S', 'E', 'L', 'E', 'C', 'T', 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(
	    dqlite_proto_encode_query_sql(&b, 0, "SELECT", NULL, 0), 0);
	CHECK_BYTES(&b, want);
	dqlite_proto_buf_close(&b);
}

static void test_encode_membership(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want_add[] = {
		0x02, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'@', 'a', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want_assign[] = {
		0x02, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want_remove[] = {
		0x01, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want_cluster[] = {
		0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want_transfer[] = {
		0x01, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00,
		0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want_describe[] = {
		0x01, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_add(&b, 2, "@a"), 0);
	CHECK_BYTES(&b, want_add);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_assign(&b, 2, 1), 0);
	CHECK_BYTES(&b, want_assign);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_remove(&b, 2), 0);
	CHECK_BYTES(&b, want_remove);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_cluster(&b, 1), 0);
	CHECK_BYTES(&b, want_cluster);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_transfer(&b, 3), 0);
	CHECK_BYTES(&b, want_transfer);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_describe(&b, 0), 0);
	CHECK_BYTES(&b, want_describe);
	dqlite_proto_buf_close(&b);
}

/* A string takes its bytes, a NUL and padding: 7 -> 8, 8 -> 16, 9 -> 16. */
static void test_encode_string_padding(void **state)
{
	struct dqlite_proto_buf b;
	/* clang-format off */
	static const uint8_t want7[] = {
		0x02, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'1', '2', '3', '4', '5', '6', '7', 0x00,
	};
	static const uint8_t want8[] = {
		0x03, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'1', '2', '3', '4', '5', '6', '7', '8',
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want9[] = {
		0x03, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		'1', '2', '3', '4', '5', '6', '7', '8',
		'9', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t want0[] = {
		0x02, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	/* clang-format on */
	(void)state;

	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_add(&b, 5, "1234567"), 0);
	CHECK_BYTES(&b, want7);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_add(&b, 5, "12345678"), 0);
	CHECK_BYTES(&b, want8);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_add(&b, 5, "123456789"), 0);
	CHECK_BYTES(&b, want9);
	b.len = 0;
	assert_int_equal(dqlite_proto_encode_add(&b, 5, ""), 0);
	CHECK_BYTES(&b, want0);
	dqlite_proto_buf_close(&b);
}

/* Messages append; a failed encode leaves what was there. */
static void test_encode_append_and_errors(void **state)
{
	struct dqlite_proto_buf b;
	struct dqlite_param many[256];
	struct dqlite_param bad = { .type = 6 };
	struct dqlite_param null_text = { .type = DQLITE_PROTO_TEXT,
					  .text = NULL };
	struct dqlite_param null_blob = { .type = DQLITE_PROTO_BLOB,
					  .blob = { NULL, 3 } };
	struct dqlite_param empty_blob = { .type = DQLITE_PROTO_BLOB,
					   .blob = { NULL, 0 } };
	unsigned i;
	(void)state;

	for (i = 0; i < 256; i++) {
		many[i].type = DQLITE_PROTO_INTEGER;
		many[i].integer = i;
	}
	dqlite_proto_buf_init(&b);
	assert_int_equal(dqlite_proto_encode_handshake(&b), 0);
	assert_int_equal(dqlite_proto_encode_leader(&b), 0);
	assert_int_equal(b.len, 24);
	assert_int_equal(dqlite_proto_encode_exec_sql(&b, 0, "X", many, 256),
			 CORRAL_EINVALID);
	assert_int_equal(dqlite_proto_encode_exec_sql(&b, 0, "X", &bad, 1),
			 CORRAL_EINVALID);
	assert_int_equal(
	    dqlite_proto_encode_exec_sql(&b, 0, "X", &null_text, 1),
	    CORRAL_EINVALID);
	assert_int_equal(
	    dqlite_proto_encode_exec_sql(&b, 0, "X", &null_blob, 1),
	    CORRAL_EINVALID);
	assert_int_equal(dqlite_proto_encode_exec_sql(&b, 0, NULL, NULL, 0),
			 CORRAL_EINVALID);
	assert_int_equal(dqlite_proto_encode_open(&b, "db", 0, NULL),
			 CORRAL_EINVALID);
	assert_int_equal(dqlite_proto_encode_add(&b, 1, NULL), CORRAL_EINVALID);
	assert_int_equal(b.len, 24);

	/* 255 parameters is the most a tuple holds: 256 header bytes. */
	assert_int_equal(dqlite_proto_encode_exec_sql(&b, 0, "X", many, 255),
			 0);
	assert_int_equal(b.len, 24 + 8 + 8 + 8 + 256 + 255 * 8);
	assert_int_equal(b.data[24 + 8 + 8 + 8], 255);

	b.len = 0;
	assert_int_equal(
	    dqlite_proto_encode_exec_sql(&b, 0, "X", &empty_blob, 1), 0);
	assert_int_equal(b.len, 8 + 8 + 8 + 8 + 8);
	dqlite_proto_buf_close(&b);
}

/*
 * Decoders.
 */

/* Decode @len bytes from an exact-size heap copy, so reading past the end
 * is caught by ASan. */
static uint8_t *heap_copy(const uint8_t *data, size_t len)
{
	uint8_t *p = malloc(len == 0 ? 1 : len);
	assert_non_null(p);
	memcpy(p, data, len);
	return p;
}

static void test_decode_header(void **state)
{
	struct dqlite_proto_header h;
	/* clang-format off */
	static const uint8_t ok[] = {
		0x03, 0x00, 0x00, 0x00, 0x07, 0x01, 0x34, 0x12,
	};
	static const uint8_t zero[] = {
		0, 0, 0, 0, 0x07, 0, 0, 0,
	};
	static const uint8_t absurd[] = {
		0xff, 0xff, 0xff, 0xff, 0x07, 0, 0, 0,
	};
	/* 64 MiB / 8 = 0x800000 words is the largest accepted. */
	static const uint8_t max[] = {
		0x00, 0x00, 0x80, 0x00, 6, 0, 0, 0,
	};
	static const uint8_t over[] = {
		0x01, 0x00, 0x80, 0x00, 6, 0, 0, 0,
	};
	/* clang-format on */
	size_t i;
	(void)state;

	assert_int_equal(dqlite_proto_decode_header(ok, sizeof ok, &h), 0);
	assert_int_equal(h.body_len, 24);
	assert_int_equal(h.type, 7);
	assert_int_equal(h.schema, 1);
	assert_int_equal(h.extra, 0x1234);
	for (i = 0; i < sizeof ok; i++) {
		uint8_t *p = heap_copy(ok, i);
		assert_int_equal(dqlite_proto_decode_header(p, i, &h),
				 CORRAL_ETRUNC);
		free(p);
	}
	assert_int_equal(dqlite_proto_decode_header(zero, 8, &h),
			 CORRAL_EPROTO);
	assert_int_equal(dqlite_proto_decode_header(absurd, 8, &h),
			 CORRAL_EPROTO);
	assert_int_equal(dqlite_proto_decode_header(max, 8, &h), 0);
	assert_int_equal(h.body_len, DQLITE_PROTO_MAX_BODY);
	assert_int_equal(dqlite_proto_decode_header(over, 8, &h),
			 CORRAL_EPROTO);
}

/* clang-format off */
static const uint8_t failure_body[] = {
	W(10250),
	'n', 'o', 't', ' ', 'l', 'e', 'a', 'd',
	'e', 'r', 0, 0, 0, 0, 0, 0,
};
/* clang-format on */

static void test_decode_failure(void **state)
{
	uint64_t code = 0;
	char msg[64];
	char small[4];
	(void)state;

	assert_int_equal(
	    dqlite_proto_decode_failure(failure_body, sizeof failure_body,
					&code, msg, sizeof msg),
	    0);
	assert_int_equal(code, 10250);
	assert_string_equal(msg, "not leader");
	assert_int_equal(dqlite_proto_failure_rv(code), CORRAL_ENOTLEADER);
	assert_int_equal(dqlite_proto_failure_rv(10 | (41 << 8)),
			 CORRAL_ENOTLEADER);
	assert_int_equal(dqlite_proto_failure_rv(1), CORRAL_EDBFAIL);
	/* SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED: retried writes. */
	assert_int_equal(dqlite_proto_failure_rv(5), CORRAL_EBUSY);
	assert_int_equal(dqlite_proto_failure_rv(5 | (2 << 8)), CORRAL_EBUSY);
	assert_int_equal(dqlite_proto_failure_rv(6), CORRAL_EBUSY);
	assert_int_equal(dqlite_proto_failure_rv(19), CORRAL_EDBFAIL);
	assert_int_equal(dqlite_proto_failure_rv(10), CORRAL_EDBFAIL);

	/* The message is truncated to the buffer, always terminated. */
	assert_int_equal(
	    dqlite_proto_decode_failure(failure_body, sizeof failure_body,
					&code, small, sizeof small),
	    0);
	assert_string_equal(small, "not");
	assert_int_equal(dqlite_proto_decode_failure(
			     failure_body, sizeof failure_body, &code, NULL, 0),
			 0);
}

/* clang-format off */
static const uint8_t node_body[] = {
	W(1),
	'@', 'c', 'o', 'r', 'r', 'a', 'l', '-',
	'd', 'q', 0, 0, 0, 0, 0, 0,
};
/* clang-format on */

static void test_decode_node(void **state)
{
	/* clang-format off */
	static const uint8_t none[] = {
		W(0),
		ZERO8,
	};
	/* clang-format on */
	uint64_t id = 0;
	char *address = NULL;
	(void)state;

	assert_int_equal(dqlite_proto_decode_node(node_body, sizeof node_body,
						  &id, &address),
			 0);
	assert_int_equal(id, 1);
	assert_string_equal(address, "@corral-dq");
	dqlite_proto_free(address);

	assert_int_equal(
	    dqlite_proto_decode_node(none, sizeof none, &id, &address), 0);
	assert_int_equal(id, 0);
	assert_string_equal(address, "");
	dqlite_proto_free(address);
}

static void test_decode_fixed(void **state)
{
	/* clang-format off */
	static const uint8_t welcome[] = {
		W(15000),
	};
	static const uint8_t db[] = {
		0x05, 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t stmt[] = {
		0x01, 0, 0, 0, 0x02, 0, 0, 0,
		W(3),
	};
	static const uint8_t result[] = {
		W(7),
		W(1),
	};
	static const uint8_t empty[] = {
		ZERO8,
	};
	static const uint8_t meta[] = {
		W(4),
		W(42),
	};
	/* clang-format on */
	uint64_t a = 0;
	uint64_t b = 0;
	uint32_t x = 0;
	uint32_t y = 0;
	(void)state;

	assert_int_equal(
	    dqlite_proto_decode_welcome(welcome, sizeof welcome, &a), 0);
	assert_int_equal(a, 15000);
	assert_int_equal(dqlite_proto_decode_db(db, sizeof db, &x), 0);
	assert_int_equal(x, 5);
	assert_int_equal(
	    dqlite_proto_decode_stmt(stmt, sizeof stmt, &x, &y, &a), 0);
	assert_int_equal(x, 1);
	assert_int_equal(y, 2);
	assert_int_equal(a, 3);
	assert_int_equal(
	    dqlite_proto_decode_result(result, sizeof result, &a, &b), 0);
	assert_int_equal(a, 7);
	assert_int_equal(b, 1);
	assert_int_equal(dqlite_proto_decode_empty(empty, sizeof empty), 0);
	assert_int_equal(
	    dqlite_proto_decode_metadata(meta, sizeof meta, &a, &b), 0);
	assert_int_equal(a, 4);
	assert_int_equal(b, 42);

	/* Bytes left over are malformed. */
	assert_int_equal(dqlite_proto_decode_welcome(result, sizeof result, &a),
			 CORRAL_EPROTO);
	assert_int_equal(dqlite_proto_decode_empty(meta, sizeof meta),
			 CORRAL_EPROTO);
}

/* clang-format off */
static const uint8_t nodes_v1_body[] = {
	W(2), /* count */
	W(1),
	'@', 'n', '1', 0, 0, 0, 0, 0,
	W(0), /* voter */
	W(2),
	'n', 'o', 'd', 'e', '-', 't', 'w', 'o',
	0, 0, 0, 0, 0, 0, 0, 0,
	W(2), /* spare */
};

static const uint8_t nodes_v0_body[] = {
	W(2),
	W(1),
	'@', 'n', '1', 0, 0, 0, 0, 0,
	W(2),
	'@', 'n', '2', 0, 0, 0, 0, 0,
};
/* clang-format on */

static void test_decode_nodes(void **state)
{
	struct dqlite_proto_nodes nodes;
	/* clang-format off */
	static const uint8_t none[] = {
		W(0),
	};
	/* clang-format on */
	(void)state;

	assert_int_equal(dqlite_proto_decode_nodes(
			     nodes_v1_body, sizeof nodes_v1_body, 1, &nodes),
			 0);
	assert_int_equal(nodes.n, 2);
	assert_int_equal(nodes.nodes[0].id, 1);
	assert_string_equal(nodes.nodes[0].address, "@n1");
	assert_int_equal(nodes.nodes[0].role, DQLITE_PROTO_ROLE_VOTER);
	assert_int_equal(nodes.nodes[1].id, 2);
	assert_string_equal(nodes.nodes[1].address, "node-two");
	assert_int_equal(nodes.nodes[1].role, DQLITE_PROTO_ROLE_SPARE);
	dqlite_proto_nodes_close(&nodes);
	dqlite_proto_nodes_close(&nodes);

	assert_int_equal(dqlite_proto_decode_nodes(
			     nodes_v0_body, sizeof nodes_v0_body, 0, &nodes),
			 0);
	assert_int_equal(nodes.n, 2);
	assert_string_equal(nodes.nodes[1].address, "@n2");
	assert_int_equal(nodes.nodes[1].role, 0);
	dqlite_proto_nodes_close(&nodes);

	assert_int_equal(
	    dqlite_proto_decode_nodes(none, sizeof none, 1, &nodes), 0);
	assert_int_equal(nodes.n, 0);
	dqlite_proto_nodes_close(&nodes);

	/* The v1 body read as v0 has words left over. */
	assert_true(dqlite_proto_decode_nodes(
			nodes_v1_body, sizeof nodes_v1_body, 0, &nodes) < 0);
}

/* Columns i f t b n; one row 42, 1.5, "hello", {aa bb}, NULL. */
/* clang-format off */
static const uint8_t rows_body[] = {
	W(5),
	'i', 0, 0, 0, 0, 0, 0, 0,
	'f', 0, 0, 0, 0, 0, 0, 0,
	't', 0, 0, 0, 0, 0, 0, 0,
	'b', 0, 0, 0, 0, 0, 0, 0,
	'n', 0, 0, 0, 0, 0, 0, 0,
	/* types: col0 int (low nibble), col1 float, col2 text,
	 * col3 blob, col4 null */
	0x21, 0x43, 0x05, 0, 0, 0, 0, 0,
	W(42),
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,
	'h', 'e', 'l', 'l', 'o', 0, 0, 0,
	W(2),
	0xaa, 0xbb, 0, 0, 0, 0, 0, 0,
	W(0),
	/* second row: -1, 0.0, "", empty blob, NULL */
	0x21, 0x43, 0x05, 0, 0, 0, 0, 0,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	W(0),
	ZERO8,
	W(0),
	W(0),
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};
/* clang-format on */

static void check_rows_body(const struct dqlite_rows *rows)
{
	const struct dqlite_value *v;

	assert_int_equal(rows->n_cols, 5);
	assert_string_equal(rows->cols[0], "i");
	assert_string_equal(rows->cols[4], "n");
	assert_int_equal(rows->n_rows, 2);
	v = dqlite_proto_rows_value(rows, 0, 0);
	assert_int_equal(v->type, DQLITE_PROTO_INTEGER);
	assert_int_equal(v->integer, 42);
	v = dqlite_proto_rows_value(rows, 0, 1);
	assert_int_equal(v->type, DQLITE_PROTO_FLOAT);
	assert_true(v->real == 1.5);
	v = dqlite_proto_rows_value(rows, 0, 2);
	assert_int_equal(v->type, DQLITE_PROTO_TEXT);
	assert_string_equal(v->text, "hello");
	assert_int_equal(v->len, 5);
	v = dqlite_proto_rows_value(rows, 0, 3);
	assert_int_equal(v->type, DQLITE_PROTO_BLOB);
	assert_int_equal(v->len, 2);
	assert_int_equal(v->blob[0], 0xaa);
	assert_int_equal(v->blob[1], 0xbb);
	v = dqlite_proto_rows_value(rows, 0, 4);
	assert_int_equal(v->type, DQLITE_PROTO_NULL);
	v = dqlite_proto_rows_value(rows, 1, 0);
	assert_int_equal(v->integer, -1);
	v = dqlite_proto_rows_value(rows, 1, 1);
	assert_true(v->real == 0.0);
	v = dqlite_proto_rows_value(rows, 1, 2);
	assert_string_equal(v->text, "");
	v = dqlite_proto_rows_value(rows, 1, 3);
	assert_int_equal(v->type, DQLITE_PROTO_BLOB);
	assert_int_equal(v->len, 0);
	assert_null(v->blob);
	assert_null(dqlite_proto_rows_value(rows, 2, 0));
	assert_null(dqlite_proto_rows_value(rows, 0, 5));
}

static void test_decode_rows(void **state)
{
	struct dqlite_rows rows;
	bool more = true;
	(void)state;

	dqlite_proto_rows_init(&rows);
	assert_int_equal(
	    dqlite_proto_decode_rows(rows_body, sizeof rows_body, &rows, &more),
	    0);
	assert_false(more);
	check_rows_body(&rows);
	dqlite_proto_rows_close(&rows);
	dqlite_proto_rows_close(&rows);
}

/* unixtime, iso8601 and boolean come back as integer, text and boolean. */
static void test_decode_rows_time_types(void **state)
{
	/* clang-format off */
	static const uint8_t body[] = {
		W(3),
		'u', 0, 0, 0, 0, 0, 0, 0,
		's', 0, 0, 0, 0, 0, 0, 0,
		'o', 'k', 0, 0, 0, 0, 0, 0,
		0xa9, 0x0b, 0, 0, 0, 0, 0, 0,
		W(1700000000),
		'2', '0', '2', '6', '-', '0', '1', '-',
		'0', '2', 0, 0, 0, 0, 0, 0,
		W(5),
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* clang-format on */
	struct dqlite_rows rows;
	const struct dqlite_value *v;
	bool more = true;
	(void)state;

	dqlite_proto_rows_init(&rows);
	assert_int_equal(
	    dqlite_proto_decode_rows(body, sizeof body, &rows, &more), 0);
	assert_int_equal(rows.n_rows, 1);
	v = dqlite_proto_rows_value(&rows, 0, 0);
	assert_int_equal(v->type, DQLITE_PROTO_INTEGER);
	assert_int_equal(v->wire_type, DQLITE_PROTO_UNIXTIME);
	assert_int_equal(v->integer, 1700000000);
	v = dqlite_proto_rows_value(&rows, 0, 1);
	assert_int_equal(v->type, DQLITE_PROTO_TEXT);
	assert_int_equal(v->wire_type, DQLITE_PROTO_ISO8601);
	assert_string_equal(v->text, "2026-01-02");
	v = dqlite_proto_rows_value(&rows, 0, 2);
	assert_int_equal(v->type, DQLITE_PROTO_BOOLEAN);
	assert_int_equal(v->integer, 1);
	dqlite_proto_rows_close(&rows);
}

/* One column, one row, ending with @marker. */
/* clang-format off */
#define PART(value, marker)                                      \
	{                                                        \
		W(1),                                            \
		'x', 0, 0, 0, 0, 0, 0, 0,                        \
		0x01, 0, 0, 0, 0, 0, 0, 0,                       \
		W(value),                                        \
		marker, marker, marker, marker,                  \
		marker, marker, marker, marker,                  \
	}

static const uint8_t part1_body[] = PART(10, 0xee);
static const uint8_t part2_body[] = PART(20, 0xee);
static const uint8_t part3_body[] = PART(30, 0xff);
/* clang-format on */

static void test_decode_rows_multipart(void **state)
{
	/* clang-format off */
	static const uint8_t other_name[] = {
		W(1),
		'y', 0, 0, 0, 0, 0, 0, 0,
		0x01, 0, 0, 0, 0, 0, 0, 0,
		W(1),
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	static const uint8_t other_count[] = {
		W(2),
		'x', 0, 0, 0, 0, 0, 0, 0,
		'y', 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	static const uint8_t no_rows[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* clang-format on */
	struct dqlite_rows rows;
	bool more = false;
	(void)state;

	dqlite_proto_rows_init(&rows);
	assert_int_equal(dqlite_proto_decode_rows(part1_body, sizeof part1_body,
						  &rows, &more),
			 0);
	assert_true(more);
	assert_int_equal(dqlite_proto_decode_rows(part2_body, sizeof part2_body,
						  &rows, &more),
			 0);
	assert_true(more);
	assert_int_equal(dqlite_proto_decode_rows(part3_body, sizeof part3_body,
						  &rows, &more),
			 0);
	assert_false(more);
	assert_int_equal(rows.n_rows, 3);
	assert_int_equal(dqlite_proto_rows_value(&rows, 0, 0)->integer, 10);
	assert_int_equal(dqlite_proto_rows_value(&rows, 1, 0)->integer, 20);
	assert_int_equal(dqlite_proto_rows_value(&rows, 2, 0)->integer, 30);
	dqlite_proto_rows_close(&rows);

	/* A later part must repeat the columns of the first. */
	assert_int_equal(dqlite_proto_decode_rows(part1_body, sizeof part1_body,
						  &rows, &more),
			 0);
	assert_int_equal(dqlite_proto_decode_rows(other_name, sizeof other_name,
						  &rows, &more),
			 CORRAL_EPROTO);
	assert_int_equal(rows.n_rows, 0);
	assert_null(rows.cols);
	assert_int_equal(dqlite_proto_decode_rows(part1_body, sizeof part1_body,
						  &rows, &more),
			 0);
	assert_int_equal(dqlite_proto_decode_rows(
			     other_count, sizeof other_count, &rows, &more),
			 CORRAL_EPROTO);
	assert_int_equal(rows.n_rows, 0);

	/* A result without rows. */
	assert_int_equal(
	    dqlite_proto_decode_rows(no_rows, sizeof no_rows, &rows, &more), 0);
	assert_int_equal(rows.n_cols, 1);
	assert_int_equal(rows.n_rows, 0);
	dqlite_proto_rows_close(&rows);
}

/* Many rows grow the values array several times. */
static void test_decode_rows_many(void **state)
{
	enum {
		N = 1000
	};
	size_t len = 16 + N * 16 + 8;
	uint8_t *body = calloc(1, len);
	uint8_t *p = body;
	struct dqlite_rows rows;
	bool more = true;
	size_t i;
	(void)state;

	assert_non_null(body);
	p[0] = 1;
	p[8] = 'v';
	p += 16;
	for (i = 0; i < N; i++) {
		p[0] = DQLITE_PROTO_INTEGER;
		p[8] = (uint8_t)i;
		p[9] = (uint8_t)(i >> 8);
		p += 16;
	}
	memset(p, 0xff, 8);
	dqlite_proto_rows_init(&rows);
	assert_int_equal(dqlite_proto_decode_rows(body, len, &rows, &more), 0);
	assert_int_equal(rows.n_rows, N);
	for (i = 0; i < N; i++) {
		assert_int_equal(dqlite_proto_rows_value(&rows, i, 0)->integer,
				 i);
	}
	dqlite_proto_rows_close(&rows);
	free(body);
}

/* Every proper prefix of a valid body must fail cleanly. */
enum body_kind {
	KIND_FAILURE,
	KIND_NODE,
	KIND_NODES_V0,
	KIND_NODES_V1,
	KIND_ROWS,
	KIND_WORDS1,
	KIND_WORDS2,
};

static int decode_any(enum body_kind kind, const uint8_t *p, size_t len)
{
	struct dqlite_proto_nodes nodes;
	struct dqlite_rows rows;
	char msg[32];
	char *address;
	uint64_t a;
	uint64_t b;
	uint32_t x;
	uint32_t y;
	bool more;
	int rv;

	switch (kind) {
	case KIND_FAILURE:
		return dqlite_proto_decode_failure(p, len, &a, msg, sizeof msg);
	case KIND_NODE:
		rv = dqlite_proto_decode_node(p, len, &a, &address);
		if (rv == 0) {
			dqlite_proto_free(address);
		}
		return rv;
	case KIND_NODES_V0:
	case KIND_NODES_V1:
		rv = dqlite_proto_decode_nodes(p, len, kind == KIND_NODES_V1,
					       &nodes);
		if (rv == 0) {
			dqlite_proto_nodes_close(&nodes);
		}
		return rv;
	case KIND_ROWS:
		dqlite_proto_rows_init(&rows);
		rv = dqlite_proto_decode_rows(p, len, &rows, &more);
		if (rv != 0) {
			/* The decoder already emptied it. */
			assert_int_equal(rows.n_rows, 0);
			assert_null(rows.cols);
			assert_null(rows.values);
		}
		dqlite_proto_rows_close(&rows);
		return rv;
	case KIND_WORDS1:
		rv = dqlite_proto_decode_welcome(p, len, &a);
		assert_int_equal(dqlite_proto_decode_db(p, len, &x), rv);
		assert_int_equal(dqlite_proto_decode_empty(p, len), rv);
		return rv;
	case KIND_WORDS2:
		rv = dqlite_proto_decode_result(p, len, &a, &b);
		assert_int_equal(dqlite_proto_decode_stmt(p, len, &x, &y, &a),
				 rv);
		assert_int_equal(dqlite_proto_decode_metadata(p, len, &a, &b),
				 rv);
		return rv;
	}
	return -1;
}

static void check_prefixes(enum body_kind kind, const uint8_t *body, size_t len)
{
	size_t i;
	uint8_t *p;
	int rv;

	p = heap_copy(body, len);
	assert_int_equal(decode_any(kind, p, len), 0);
	free(p);
	for (i = 0; i < len; i++) {
		p = heap_copy(body, i);
		rv = decode_any(kind, p, i);
		if (rv != CORRAL_ETRUNC && rv != CORRAL_EPROTO) {
			print_error("kind %d prefix %zu: rv %d\n", kind, i, rv);
			fail();
		}
		free(p);
	}
}

static void test_decode_truncated(void **state)
{
	/* clang-format off */
	static const uint8_t w1[] = {
		W(1),
	};
	static const uint8_t w2[] = {
		W(1),
		W(2),
	};
	/* clang-format on */
	(void)state;

	check_prefixes(KIND_FAILURE, failure_body, sizeof failure_body);
	check_prefixes(KIND_NODE, node_body, sizeof node_body);
	check_prefixes(KIND_NODES_V0, nodes_v0_body, sizeof nodes_v0_body);
	check_prefixes(KIND_NODES_V1, nodes_v1_body, sizeof nodes_v1_body);
	check_prefixes(KIND_ROWS, rows_body, sizeof rows_body);
	check_prefixes(KIND_ROWS, part1_body, sizeof part1_body);
	check_prefixes(KIND_WORDS1, w1, sizeof w1);
	check_prefixes(KIND_WORDS2, w2, sizeof w2);
}

static void test_decode_malformed(void **state)
{
	/* Type nibble 6 does not exist. */
	/* clang-format off */
	static const uint8_t bad_type[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0x06, 0, 0, 0, 0, 0, 0, 0,
		W(1),
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* Type nibble 0 neither. */
	static const uint8_t zero_type[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0x00, 0, 0, 0, 0, 0, 0, 0,
		W(1),
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* A marker must fill its whole word. */
	static const uint8_t half_marker[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
	};
	/* Bytes after the end marker. */
	static const uint8_t trailing[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		W(0),
	};
	static const uint8_t no_columns[] = {
		W(0),
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	static const uint8_t many_columns[] = {
		W(0xffffffffffffffff),
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* A blob claiming 2^63 bytes. */
	static const uint8_t huge_blob[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0x04, 0, 0, 0, 0, 0, 0, 0,
		W(0x8000000000000000),
		ZERO8,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	/* A blob length one below SIZE_MAX, so padding would overflow. */
	static const uint8_t wrap_blob[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0x04, 0, 0, 0, 0, 0, 0, 0,
		W(0xfffffffffffffffe),
		ZERO8,
	};
	/* Text without a terminator inside the body. */
	static const uint8_t open_text[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		0x03, 0, 0, 0, 0, 0, 0, 0,
		'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h',
	};
	static const uint8_t nodes_huge[] = {
		W(0x1000000000000000),
		W(1),
		'@', 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t failure_trailing[] = {
		W(1),
		'x', 0, 0, 0, 0, 0, 0, 0,
		W(0),
	};
	/* clang-format on */
	struct dqlite_proto_nodes nodes;
	struct dqlite_rows rows;
	uint64_t code;
	bool more;
	(void)state;

	dqlite_proto_rows_init(&rows);
#define ROWS_RV(body) dqlite_proto_decode_rows(body, sizeof body, &rows, &more)
	assert_int_equal(ROWS_RV(bad_type), CORRAL_EPROTO);
	assert_int_equal(ROWS_RV(zero_type), CORRAL_EPROTO);
	assert_int_equal(ROWS_RV(half_marker), CORRAL_EPROTO);
	assert_int_equal(ROWS_RV(trailing), CORRAL_EPROTO);
	assert_int_equal(ROWS_RV(no_columns), CORRAL_EPROTO);
	assert_int_equal(ROWS_RV(many_columns), CORRAL_EPROTO);
	assert_int_equal(ROWS_RV(huge_blob), CORRAL_ETRUNC);
	assert_int_equal(ROWS_RV(wrap_blob), CORRAL_ETRUNC);
	assert_int_equal(ROWS_RV(open_text), CORRAL_ETRUNC);
#undef ROWS_RV
	assert_null(rows.cols);
	assert_int_equal(
	    dqlite_proto_decode_nodes(nodes_huge, sizeof nodes_huge, 1, &nodes),
	    CORRAL_ETRUNC);
	assert_int_equal(dqlite_proto_decode_nodes(
			     nodes_v1_body, sizeof nodes_v1_body, 2, &nodes),
			 CORRAL_EINVALID);
	assert_int_equal(
	    dqlite_proto_decode_failure(
		failure_trailing, sizeof failure_trailing, &code, NULL, 0),
	    CORRAL_EPROTO);
	/* Nothing at all. */
	assert_int_equal(dqlite_proto_decode_failure(NULL, 0, &code, NULL, 0),
			 CORRAL_ETRUNC);
}

/*
 * Heap fault injection: the Nth allocation fails.
 */

static int fault_countdown; /* fail when it reaches 0; < 0: never */
static long fault_live;     /* allocations not yet freed */

static bool fault_hit(void)
{
	if (fault_countdown < 0) {
		return false;
	}
	return fault_countdown-- == 0;
}

static void *fault_malloc(size_t size)
{
	void *p;
	if (fault_hit()) {
		return NULL;
	}
	p = malloc(size);
	if (p != NULL) {
		fault_live++;
	}
	return p;
}

static void *fault_realloc(void *ptr, size_t size)
{
	void *p;
	if (fault_hit()) {
		return NULL;
	}
	p = realloc(ptr, size);
	if (p != NULL && ptr == NULL) {
		fault_live++;
	}
	return p;
}

static void fault_free(void *ptr)
{
	if (ptr != NULL) {
		fault_live--;
	}
	free(ptr);
}

static const struct dqlite_proto_alloc fault_alloc = {
	.malloc = fault_malloc,
	.realloc = fault_realloc,
	.free = fault_free,
};

static int fault_setup(void **state)
{
	(void)state;
	fault_countdown = -1;
	fault_live = 0;
	dqlite_proto_set_alloc(&fault_alloc);
	return 0;
}

static int fault_teardown(void **state)
{
	(void)state;
	dqlite_proto_set_alloc(NULL);
	return 0;
}

/* Decode a three-part result, a NODES and a NODE with each allocation
 * failing in turn; stop once a run needs no more than it got. */
static int decode_everything(void)
{
	struct dqlite_rows rows;
	struct dqlite_proto_nodes nodes;
	char *address;
	uint64_t id;
	bool more;
	int rv;

	dqlite_proto_rows_init(&rows);
	rv =
	    dqlite_proto_decode_rows(rows_body, sizeof rows_body, &rows, &more);
	if (rv != 0) {
		return rv;
	}
	check_rows_body(&rows);
	dqlite_proto_rows_close(&rows);

	rv = dqlite_proto_decode_rows(part1_body, sizeof part1_body, &rows,
				      &more);
	if (rv == 0) {
		rv = dqlite_proto_decode_rows(part2_body, sizeof part2_body,
					      &rows, &more);
	}
	if (rv == 0) {
		rv = dqlite_proto_decode_rows(part3_body, sizeof part3_body,
					      &rows, &more);
	}
	if (rv != 0) {
		assert_null(rows.cols);
		return rv;
	}
	assert_int_equal(rows.n_rows, 3);
	dqlite_proto_rows_close(&rows);

	rv = dqlite_proto_decode_nodes(nodes_v1_body, sizeof nodes_v1_body, 1,
				       &nodes);
	if (rv != 0) {
		return rv;
	}
	assert_int_equal(nodes.n, 2);
	dqlite_proto_nodes_close(&nodes);

	rv = dqlite_proto_decode_node(node_body, sizeof node_body, &id,
				      &address);
	if (rv != 0) {
		return rv;
	}
	dqlite_proto_free(address);
	return 0;
}

static void test_fault_injection_decode(void **state)
{
	int n;
	int rv;
	(void)state;

	for (n = 0; n < 1000; n++) {
		fault_countdown = n;
		fault_live = 0;
		rv = decode_everything();
		assert_int_equal(fault_live, 0);
		if (fault_countdown >= 0) {
			/* Every allocation succeeded. */
			assert_int_equal(rv, 0);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
	}
	/* The rows of rows_body alone need 1 + 5 names, values, 2 texts, 1
	 * blob: well above ten allocations in all. */
	assert_true(n > 10);
	assert_true(n < 1000);
}

static void test_fault_injection_encode(void **state)
{
	struct dqlite_proto_buf b;
	char sql[600];
	int n;
	int rv;
	(void)state;

	memset(sql, 'x', sizeof sql - 1);
	sql[sizeof sql - 1] = '\0';
	for (n = 0; n < 100; n++) {
		fault_countdown = n;
		fault_live = 0;
		dqlite_proto_buf_init(&b);
		rv = dqlite_proto_encode_handshake(&b);
		if (rv == 0) {
			rv = dqlite_proto_encode_exec_sql(&b, 0, sql, NULL, 0);
		}
		dqlite_proto_buf_close(&b);
		assert_int_equal(fault_live, 0);
		if (fault_countdown >= 0) {
			assert_int_equal(rv, 0);
			break;
		}
		assert_int_equal(rv, -ENOMEM);
	}
	assert_true(n >= 2); /* the first 256 bytes, then growth */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_handshake),
		cmocka_unit_test(test_encode_leader),
		cmocka_unit_test(test_encode_client),
		cmocka_unit_test(test_encode_open),
		cmocka_unit_test(test_encode_prepare),
		cmocka_unit_test(test_encode_exec),
		cmocka_unit_test(test_encode_query),
		cmocka_unit_test(test_encode_finalize),
		cmocka_unit_test(test_encode_exec_sql_params),
		cmocka_unit_test(test_encode_param_header_sizes),
		cmocka_unit_test(test_encode_query_sql),
		cmocka_unit_test(test_encode_membership),
		cmocka_unit_test(test_encode_string_padding),
		cmocka_unit_test(test_encode_append_and_errors),
		cmocka_unit_test(test_decode_header),
		cmocka_unit_test(test_decode_failure),
		cmocka_unit_test(test_decode_node),
		cmocka_unit_test(test_decode_fixed),
		cmocka_unit_test(test_decode_nodes),
		cmocka_unit_test(test_decode_rows),
		cmocka_unit_test(test_decode_rows_time_types),
		cmocka_unit_test(test_decode_rows_multipart),
		cmocka_unit_test(test_decode_rows_many),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_malformed),
		cmocka_unit_test_setup_teardown(test_fault_injection_decode,
						fault_setup, fault_teardown),
		cmocka_unit_test_setup_teardown(test_fault_injection_encode,
						fault_setup, fault_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
