/* Reading what a user typed: a YAML (or JSON) document turned into JSON,
 * for the edit verbs. */
#ifndef CORRAL_CLI_YAML_IN_H
#define CORRAL_CLI_YAML_IN_H

#include <stddef.h>

#include <jansson.h>

/* Parse the first document of @text (@len bytes, borrowed) into *@out, a
 * new JSON value owned by the caller. JSON text is taken as it is; YAML
 * mappings become objects, sequences arrays, and every scalar a string,
 * except plain null-like ones ("", "~", "null") which become JSON null.
 * An empty document gives an empty object. Anchors and aliases are not
 * supported. Returns 0, or CORRAL_EINVALID with @errmsg (of @errmsg_size
 * bytes) saying where the text is wrong, or -ENOMEM. */
int cli_yaml_parse(const char *text,
		   size_t len,
		   json_t **out,
		   char *errmsg,
		   size_t errmsg_size);

#endif /* CORRAL_CLI_YAML_IN_H */
