/* Member channel messages: msgpack bytes to and from jansson values.
 *
 * Heartbeats (`POST /internal/heartbeat`) and change notifications
 * (`POST /internal/changed`) travel as msgpack (msgpack-c) with
 * Content-Type CLUSTER_MSG_CONTENT_TYPE; in memory they stay jansson values
 * with the same keys as the JSON they replaced, so the code that builds
 * and reads them is the same for either encoding.
 *
 * Only what JSON can say crosses: maps with string keys, arrays, strings
 * (UTF-8), integers that fit int64, finite floats, booleans and nil. The
 * receiving side is reachable by any member over the network, so decoding
 * is strict and bounded before msgpack-c allocates anything: the declared
 * element counts must fit in the bytes that remain, nesting and the total
 * number of elements are capped, and bin, ext, non-string keys, duplicate
 * keys, invalid UTF-8, NUL characters and trailing bytes are refused. */
#ifndef CORRAL_CLUSTER_MSG_H
#define CORRAL_CLUSTER_MSG_H

#include <stddef.h>

#include <jansson.h>

/* The Content-Type of a msgpack message on the member channel. */
#define CLUSTER_MSG_CONTENT_TYPE "application/msgpack"

/* Deepest nesting of maps and arrays: a top-level map is depth 1. */
#define CLUSTER_MSG_DEPTH_MAX 16

/* Most elements in one message: every value counts, the top-level one,
 * each array item, and each map key and map value. */
#define CLUSTER_MSG_ITEMS_MAX 100000

/* Encode @value (borrowed; an object, array, string, integer, real, true,
 * false or null) as one msgpack value. On success *@out (malloc'd, owned by
 * the caller, free()) holds *@len bytes. Returns 0, CORRAL_EINVALID when
 * @value nests deeper than CLUSTER_MSG_DEPTH_MAX, holds more than
 * CLUSTER_MSG_ITEMS_MAX elements or a string with a NUL character (what
 * cluster_msg_unpack() would refuse), or -ENOMEM. */
int cluster_msg_pack(json_t *value, char **out, size_t *len);

/* Decode the @len bytes at @data (borrowed) that must hold exactly one
 * msgpack value within the limits above into *@out (a new reference owned
 * by the caller; NULL on error). Returns 0, CORRAL_ETRUNC when the bytes
 * end inside the value (or declare more elements than bytes remain),
 * CORRAL_EPROTO for anything else refused, or -ENOMEM, with @errmsg
 * (CORRAL_ERRMSG_SIZE bytes) filled, e.g. "map key is not a string at
 * depth 2". */
int cluster_msg_unpack(const char *data,
		       size_t len,
		       json_t **out,
		       char *errmsg);

#endif /* CORRAL_CLUSTER_MSG_H */
