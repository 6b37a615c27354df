/* The pure half of `corral cluster` (cmd_cluster.c): LXD's cluster join
 * tokens, the body of a join request and small helpers of the tables.
 * No I/O, no global state; tests/unit/test_cluster_cli.c compiles
 * cmd_cluster.c with CORRAL_CLUSTER_PURE defined to get only these. */
#ifndef CORRAL_CLI_CLUSTER_H
#define CORRAL_CLI_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Go's zero time, LXD's expires_at of a token without expiry. */
#define CLUSTER_ZERO_TIME "0001-01-01T00:00:00Z"

/* Build the join token of a cluster member "token" operation from its
 * @metadata (borrowed): {"serverName", "secret", "fingerprint",
 * "addresses", "expiresAt"} becomes the token (standard base64 of compact
 * JSON) of LXD's ClusterMemberJoinToken {"server_name", "fingerprint",
 * "addresses", "secret", "expires_at"} (expires_at CLUSTER_ZERO_TIME when
 * absent). *@out receives it (malloc()). Returns 0, CORRAL_EINVALID when
 * a field is missing or of the wrong type (*@out NULL), or -ENOMEM. */
int cluster_token_from_operation(json_t *metadata, char **out);

/* Decode @text as a cluster join token: a JSON object with non-empty
 * strings "server_name" and "secret", a "fingerprint" of 64 hex digits
 * (lower-cased in the result) and a non-empty array of non-empty strings
 * "addresses" ("expires_at" optional). *@out receives the object (owned by
 * the caller). Returns 0, CORRAL_EINVALID with the reason in @errmsg (of
 * @errmsg_size bytes), or -ENOMEM; on error *@out is NULL. */
int cluster_token_parse(const char *text,
			json_t **out,
			char *errmsg,
			size_t errmsg_size);

/* Whether the operation @op (borrowed) is a pending cluster join token:
 * class "token", status code 103 (Running) and a string
 * metadata.serverName. */
bool cluster_is_token_op(json_t *op);

/* The member name of such an operation (borrowed from @op), or NULL. */
const char *cluster_token_op_name(json_t *op);

/* The body of LXD's join request (PUT /1.0/cluster) for the decoded
 * @token (borrowed): {"server_name": token.server_name, "server_address":
 * @server_address, "cluster_address": @cluster_address,
 * "cluster_certificate": @cluster_pem, "cluster_password": token.secret,
 * "enabled": true}. Returns a new reference, or NULL on ENOMEM. */
json_t *cluster_join_body(json_t *token,
			  const char *server_address,
			  const char *cluster_address,
			  const char *cluster_pem);

/* The strings of the array @roles (borrowed; other items are skipped)
 * joined with @sep, malloc()ed ("" for none or a non-array), or NULL on
 * ENOMEM. */
char *cluster_roles_join(json_t *roles, const char *sep);

/* "@operation/wait", keeping its query string after "/wait"
 * ("/1.0/operations/ID?project=p" gives "/1.0/operations/ID/wait?project=p"),
 * malloc()ed, or NULL on ENOMEM. */
char *cluster_wait_path(const char *operation);

#endif /* CORRAL_CLI_CLUSTER_H */
