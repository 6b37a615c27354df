/* API calls of the state verbs (config, project, profile): request paths
 * scoped to the --project of the invocation, and calls that carry ETags so
 * that a read-modify-write notices a concurrent change. */
#ifndef CORRAL_CLI_REQUEST_H
#define CORRAL_CLI_REQUEST_H

#include <stddef.h>

#include "cli.h"

/* Room for an ETag header value (64 hex digits, quotes, NUL). */
#define CLI_ETAG_SIZE 80

/* Build the request path "@base[/@name][?@query][&project=P]" in *@out
 * (owned by the caller, free()). @name (borrowed, may be NULL) is
 * percent-encoded as one path segment; @query (borrowed, may be NULL) is
 * copied as it is. The project comes from cli->project and is left out
 * when it is NULL, empty or "default", like lxc. Returns 0 or -ENOMEM. */
int cli_api_path(const struct cli *cli,
		 const char *base,
		 const char *name,
		 const char *query,
		 char **out);

/* Send @method @path with the optional JSON @body and, when @if_match is
 * not NULL, an If-Match header; decode the envelope into @env (released by
 * the caller with httpc_envelope_close() after a 0 return). When @etag is
 * not NULL the reply's ETag (quotes kept, "" if none) is copied there; it
 * must hold CLI_ETAG_SIZE bytes. Prints nothing: on failure, of the
 * transport or an error envelope, @errmsg (of @errmsg_size bytes) holds
 * the server's or the transport's text, @env holds nothing and 1 is
 * returned. */
int cli_request(struct cli *cli,
		const char *method,
		const char *path,
		const char *body,
		const char *if_match,
		struct httpc_envelope *env,
		char *etag,
		char *errmsg,
		size_t errmsg_size);

/* Like cli_request(), but prints "Error: <text>" on failure. The JSON
 * @body is encoded here (borrowed, may be NULL). Returns 0 or 1. */
int cli_call_json(struct cli *cli,
		  const char *method,
		  const char *path,
		  json_t *body,
		  const char *if_match,
		  struct httpc_envelope *env,
		  char *etag);

/* Change an object the way lxc's set/unset/device verbs do: GET @path,
 * keep the fields named in @fields (a NULL-terminated list) in a new
 * object, let @modify change it, then PUT it to @path with If-Match of the
 * ETag the GET returned, so that a concurrent change fails with the
 * server's 412 message instead of being overwritten. @modify returns 0, or
 * prints an error and returns 1 (nothing is sent then). Returns the exit
 * status, having printed "Error: ..." on failure. */
int cli_update(struct cli *cli,
	       const char *path,
	       const char *const *fields,
	       int (*modify)(json_t *put, void *arg),
	       void *arg);

/* A @modify function for cli_update(): merge @arg, a JSON object of
 * strings (borrowed), into the "config" map of @put, where an empty value
 * removes the key. Returns 0, or prints an error and returns 1. */
int cli_merge_config(json_t *put, void *arg);

#endif /* CORRAL_CLI_REQUEST_H */
