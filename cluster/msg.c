/* Member channel messages: jansson values to msgpack and back.
 *
 * Decoding runs in two passes. scan() walks the bytes once without
 * allocating and enforces every structural bound; only then does
 * msgpack_unpack_next() build its object tree, which to_json() converts
 * while checking what the tree can say but JSON cannot. The first pass is
 * what makes the second safe: msgpack-c allocates an array's or a map's
 * element slots from the declared count before reading any element, so a
 * five-byte "array of 2^32 - 1 items" would otherwise ask for about 100 GB;
 * and it reports nesting beyond its own stack (32) as out of memory. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <corral/cluster_msg.h>
#include <corral/err.h>

/* ------------------------------------------------------------------------ */
/* Encoding                                                                   */

struct packing {
	msgpack_packer pk;
	size_t items; /* values and map keys packed so far */
};

static int pack_str(struct packing *k, const char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL) {
		return CORRAL_EINVALID;
	}
	if (msgpack_pack_str(&k->pk, len) != 0 ||
	    msgpack_pack_str_body(&k->pk, s, len) != 0) {
		return -ENOMEM;
	}
	return 0;
}

/* Pack @v, a value at nesting @depth (0 for the top level, which is not
 * inside any container). */
static int pack_value(struct packing *k, json_t *v, unsigned depth)
{
	const char *key;
	size_t key_len;
	json_t *child;
	size_t i;
	int rv = 0;

	if (++k->items > CLUSTER_MSG_ITEMS_MAX) {
		return CORRAL_EINVALID;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (depth >= CLUSTER_MSG_DEPTH_MAX ||
		    json_object_size(v) > UINT32_MAX) {
			return CORRAL_EINVALID;
		}
		if (msgpack_pack_map(&k->pk, json_object_size(v)) != 0) {
			return -ENOMEM;
		}
		json_object_keylen_foreach(v, key, key_len, child)
		{
			if (++k->items > CLUSTER_MSG_ITEMS_MAX) {
				return CORRAL_EINVALID;
			}
			rv = pack_str(k, key, key_len);
			if (rv == 0) {
				rv = pack_value(k, child, depth + 1);
			}
			if (rv != 0) {
				return rv;
			}
		}
		return 0;
	case JSON_ARRAY:
		if (depth >= CLUSTER_MSG_DEPTH_MAX ||
		    json_array_size(v) > UINT32_MAX) {
			return CORRAL_EINVALID;
		}
		if (msgpack_pack_array(&k->pk, json_array_size(v)) != 0) {
			return -ENOMEM;
		}
		json_array_foreach(v, i, child)
		{
			rv = pack_value(k, child, depth + 1);
			if (rv != 0) {
				return rv;
			}
		}
		return 0;
	case JSON_STRING:
		return pack_str(k, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		rv = msgpack_pack_int64(&k->pk, (int64_t)json_integer_value(v));
		break;
	case JSON_REAL:
		rv = msgpack_pack_double(&k->pk, json_real_value(v));
		break;
	case JSON_TRUE:
		rv = msgpack_pack_true(&k->pk);
		break;
	case JSON_FALSE:
		rv = msgpack_pack_false(&k->pk);
		break;
	case JSON_NULL:
		rv = msgpack_pack_nil(&k->pk);
		break;
	}
	return rv != 0 ? -ENOMEM : 0;
}

int cluster_msg_pack(json_t *value, char **out, size_t *len)
{
	struct packing k = { .items = 0 };
	msgpack_sbuffer sb;
	int rv;

	if (value == NULL) {
		return CORRAL_EINVALID;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&k.pk, &sb, msgpack_sbuffer_write);
	rv = pack_value(&k, value, 0);
	if (rv != 0) {
		msgpack_sbuffer_destroy(&sb);
		return rv;
	}
	*len = sb.size;
	*out = msgpack_sbuffer_release(&sb);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding, first pass: structure and bounds                                 */

enum scan_kind {
	SCAN_SCALAR,
	SCAN_ARRAY,
	SCAN_MAP
};

struct scan {
	const unsigned char *p;
	size_t len;
	size_t off;
};

/* The big-endian unsigned integer of @n bytes at @p. */
static uint64_t be_read(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

/* Step over @n bytes of the value that starts at @start. */
static int scan_skip(struct scan *s, uint64_t n, size_t start, char *errmsg)
{
	if (n > s->len - s->off) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "value at byte %zu ends past the message", start);
		return CORRAL_ETRUNC;
	}
	s->off += (size_t)n;
	return 0;
}

/* Read the head of one value: step over a scalar, or give a container's
 * kind and declared element count. */
static int scan_head(struct scan *s,
		     enum scan_kind *kind,
		     uint64_t *count,
		     char *errmsg)
{
	size_t start = s->off;
	size_t width = 0; /* bytes of a length or count field */
	unsigned char b;
	int rv;

	*kind = SCAN_SCALAR;
	*count = 0;
	if (s->off >= s->len) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "message ends at byte %zu inside a value", s->off);
		return CORRAL_ETRUNC;
	}
	b = s->p[s->off++];
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		return 0; /* fixint, nil, false, true */
	}
	if (b <= 0x8f) {
		*kind = SCAN_MAP;
		*count = b & 0x0f;
		return 0;
	}
	if (b <= 0x9f) {
		*kind = SCAN_ARRAY;
		*count = b & 0x0f;
		return 0;
	}
	if (b <= 0xbf) {
		return scan_skip(s, b & 0x1f, start, errmsg); /* fixstr */
	}
	switch (b) {
	case 0xcc: /* uint 8 */
	case 0xd0: /* int 8 */
		return scan_skip(s, 1, start, errmsg);
	case 0xcd:
	case 0xd1:
		return scan_skip(s, 2, start, errmsg);
	case 0xca: /* float 32 */
	case 0xce:
	case 0xd2:
		return scan_skip(s, 4, start, errmsg);
	case 0xcb: /* float 64 */
	case 0xcf:
	case 0xd3:
		return scan_skip(s, 8, start, errmsg);
	case 0xd9: /* str 8, 16, 32 */
	case 0xda:
	case 0xdb:
		width = (size_t)1 << (b - 0xd9);
		break;
	case 0xdc: /* array 16, 32 */
	case 0xdd:
		*kind = SCAN_ARRAY;
		width = b == 0xdc ? 2 : 4;
		break;
	case 0xde: /* map 16, 32 */
	case 0xdf:
		*kind = SCAN_MAP;
		width = b == 0xde ? 2 : 4;
		break;
	case 0xc4: /* bin 8, 16, 32 */
	case 0xc5:
	case 0xc6:
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "bin value at byte %zu: only strings are accepted",
			    start);
		return CORRAL_EPROTO;
	case 0xc7: /* ext 8, 16, 32 and fixext 1..16 */
	case 0xc8:
	case 0xc9:
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "ext value at byte %zu: extension types are not "
			    "accepted",
			    start);
		return CORRAL_EPROTO;
	default: /* 0xc1, never used */
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid type byte 0x%02x at byte %zu", b, start);
		return CORRAL_EPROTO;
	}
	if (width > s->len - s->off) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "message ends at byte %zu inside a value", s->len);
		return CORRAL_ETRUNC;
	}
	*count = be_read(s->p + s->off, width);
	s->off += width;
	if (*kind == SCAN_SCALAR) {
		rv = scan_skip(s, *count, start, errmsg);
		*count = 0;
		return rv;
	}
	return 0;
}

/* Check that the @len bytes at @p hold exactly one value within the
 * limits, without allocating. */
static int scan(const unsigned char *p, size_t len, char *errmsg)
{
	struct scan s = { .p = p, .len = len, .off = 0 };
	/* Elements still to read in each open container. */
	uint64_t left[CLUSTER_MSG_DEPTH_MAX];
	unsigned depth = 0;
	uint64_t items = 1;

	for (;;) {
		enum scan_kind kind;
		uint64_t count;
		size_t start = s.off;
		int rv;

		rv = scan_head(&s, &kind, &count, errmsg);
		if (rv != 0) {
			return rv;
		}
		if (kind != SCAN_SCALAR) {
			/* Maps count keys and values; counts are below 2^32. */
			uint64_t n = kind == SCAN_MAP ? 2 * count : count;

			if (depth == CLUSTER_MSG_DEPTH_MAX) {
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "nested deeper than %d at byte %zu",
					    CLUSTER_MSG_DEPTH_MAX, start);
				return CORRAL_EPROTO;
			}
			/* Every element takes at least one byte. */
			if (n > s.len - s.off) {
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "%s at byte %zu declares %llu "
					    "elements, more than the bytes "
					    "that remain",
					    kind == SCAN_MAP ? "map" : "array",
					    start, (unsigned long long)n);
				return CORRAL_ETRUNC;
			}
			items += n;
			if (items > CLUSTER_MSG_ITEMS_MAX) {
				corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
					    "more than %d elements",
					    CLUSTER_MSG_ITEMS_MAX);
				return CORRAL_EPROTO;
			}
			if (n > 0) {
				left[depth++] = n;
				continue;
			}
		}
		/* A value ended: so may the containers it closes. */
		while (depth > 0 && --left[depth - 1] == 0) {
			depth--;
		}
		if (depth == 0) {
			break;
		}
	}
	if (s.off != s.len) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "trailing bytes after the value: %zu",
			    s.len - s.off);
		return CORRAL_EPROTO;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding, second pass: msgpack-c's tree to jansson                         */

/* Whether the @n bytes at @s are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) without a NUL character. */
static bool text_valid(const char *text, size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		uint32_t cp;
		uint32_t min;
		size_t more;
		size_t j;

		if (c == 0) {
			return false;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < more) {
			return false;
		}
		for (j = 1; j <= more; j++) {
			if ((s[i + j] & 0xc0) != 0x80) {
				return false;
			}
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			return false;
		}
		i += more + 1;
	}
	return true;
}

/* msgpack-c leaves the pointer of an empty string unspecified. */
static const char *str_ptr(const msgpack_object_str *s)
{
	return s->size > 0 ? s->ptr : "";
}

static int to_json(const msgpack_object *o,
		   unsigned depth,
		   json_t **out,
		   char *errmsg);

static int map_to_json(const msgpack_object_map *m,
		       unsigned depth,
		       json_t *obj,
		       char *errmsg)
{
	uint32_t i;
	int rv;

	for (i = 0; i < m->size; i++) {
		const msgpack_object *key = &m->ptr[i].key;
		const char *name;
		json_t *value;

		if (key->type != MSGPACK_OBJECT_STR) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "map key is not a string at depth %u",
				    depth);
			return CORRAL_EPROTO;
		}
		name = str_ptr(&key->via.str);
		if (!text_valid(name, key->via.str.size)) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "map key is not valid UTF-8 without NUL "
				    "at depth %u",
				    depth);
			return CORRAL_EPROTO;
		}
		if (json_object_getn(obj, name, key->via.str.size) != NULL) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "duplicate map key at depth %u", depth);
			return CORRAL_EPROTO;
		}
		rv = to_json(&m->ptr[i].val, depth, &value, errmsg);
		if (rv != 0) {
			return rv;
		}
		/* Steals @value, also on failure. */
		if (json_object_setn_new_nocheck(obj, name, key->via.str.size,
						 value) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* Convert @o, a value inside @depth containers. */
static int to_json(const msgpack_object *o,
		   unsigned depth,
		   json_t **out,
		   char *errmsg)
{
	json_t *v = NULL;
	uint32_t i;
	int rv = 0;

	*out = NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		v = json_null();
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		v = json_boolean(o->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "integer %llu does not fit int64",
				    (unsigned long long)o->via.u64);
			return CORRAL_EPROTO;
		}
		v = json_integer((json_int_t)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v = json_integer((json_int_t)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64)) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "float is not a finite number");
			return CORRAL_EPROTO;
		}
		v = json_real(o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		if (!text_valid(str_ptr(&o->via.str), o->via.str.size)) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "string is not valid UTF-8 without NUL at "
				    "depth %u",
				    depth);
			return CORRAL_EPROTO;
		}
		v = json_stringn_nocheck(str_ptr(&o->via.str), o->via.str.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (depth >= CLUSTER_MSG_DEPTH_MAX) {
			return CORRAL_EPROTO; /* scan() refused it already */
		}
		v = json_array();
		for (i = 0; v != NULL && i < o->via.array.size; i++) {
			json_t *item;

			rv = to_json(&o->via.array.ptr[i], depth + 1, &item,
				     errmsg);
			if (rv == 0 && json_array_append_new(v, item) != 0) {
				rv = -ENOMEM;
			}
			if (rv != 0) {
				json_decref(v);
				return rv;
			}
		}
		break;
	case MSGPACK_OBJECT_MAP:
		if (depth >= CLUSTER_MSG_DEPTH_MAX) {
			return CORRAL_EPROTO;
		}
		v = json_object();
		if (v != NULL) {
			rv = map_to_json(&o->via.map, depth + 1, v, errmsg);
			if (rv != 0) {
				json_decref(v);
				return rv;
			}
		}
		break;
	default: /* bin and ext: scan() refused them already */
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "msgpack type %d is not accepted", (int)o->type);
		return CORRAL_EPROTO;
	}
	if (v == NULL) {
		return -ENOMEM;
	}
	*out = v;
	return 0;
}

int cluster_msg_unpack(const char *data, size_t len, json_t **out, char *errmsg)
{
	msgpack_unpacked u;
	msgpack_unpack_return ret;
	size_t off = 0;
	int rv;

	*out = NULL;
	rv = scan((const unsigned char *)data, len, errmsg);
	if (rv != 0) {
		return rv;
	}
	msgpack_unpacked_init(&u);
	ret = msgpack_unpack_next(&u, data, len, &off);
	if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
		rv =
		    ret == MSGPACK_UNPACK_NOMEM_ERROR ? -ENOMEM : CORRAL_EPROTO;
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "msgpack_unpack_next(): %s",
			    rv == -ENOMEM ? "out of memory" : "parse error");
		goto out;
	}
	rv = to_json(&u.data, 0, out, errmsg);
	if (rv == -ENOMEM) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "out of memory");
	}
out:
	msgpack_unpacked_destroy(&u);
	return rv;
}
