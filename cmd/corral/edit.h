/* The edit verbs (`project edit`, `profile edit`): the object goes through
 * $EDITOR as YAML when stdin is a terminal, else the new version is read
 * from stdin (YAML or JSON), like lxc. Also the small JSON helpers the
 * state verbs share to print objects the way lxc does. */
#ifndef CORRAL_CLI_EDIT_H
#define CORRAL_CLI_EDIT_H

#include <stddef.h>

#include <jansson.h>

#include "cli.h"

/* Apply an edited document @doc (borrowed; a JSON object) with @arg.
 * Returns 0, or fills @errmsg (of @errmsg_size bytes) and returns 1; the
 * editor then opens again. */
typedef int (*cli_edit_apply_fn)(struct cli *cli,
				 json_t *doc,
				 void *arg,
				 char *errmsg,
				 size_t errmsg_size);

/* Let the user edit @current (borrowed), shown as YAML after the comment
 * lines @header, and apply the result with @apply. When stdin is not a
 * terminal the new document is read from it instead and applied once.
 * A document that is not a map is refused. Returns the exit status, having
 * printed "Error: ..." on failure. */
int cli_edit(struct cli *cli,
	     json_t *current,
	     const char *header,
	     cli_edit_apply_fn apply,
	     void *arg);

/* A deep copy of @value (borrowed) in which the keys of every object are
 * sorted, as Go prints maps. Returns a new reference, or NULL on ENOMEM. */
json_t *cli_json_sorted(json_t *value);

/* A new array with the items of the array @list (borrowed, each an object)
 * ordered by their "name" field, as lxc sorts its tables. Returns a new
 * reference, or NULL on ENOMEM. */
json_t *cli_json_by_name(json_t *list);

/* Make the object @map (modified in place) a map of strings like Go's
 * map[string]string reads it: null becomes "", numbers and booleans their
 * text. Other values are left for the server to refuse. A non-object is
 * left alone. Returns 0 or -ENOMEM. */
int cli_json_string_map(json_t *map);

#endif /* CORRAL_CLI_EDIT_H */
