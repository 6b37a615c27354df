/* What the operation verbs share with the token verbs of `config trust`:
 * the list of operations and lxc's date format. */
#ifndef CORRAL_CLI_OPS_H
#define CORRAL_CLI_OPS_H

#include <stddef.h>

#include <jansson.h>

#include "cli.h"

/* GET /1.0/operations?recursion=1 (in the project of @cli) and flatten
 * the map keyed by status into one array in *@out (a new reference),
 * ordered by creation time. Returns 0, or prints an error and returns 1. */
int cli_operations(struct cli *cli, json_t **out);

/* Format the RFC 3339 UTC time @rfc3339 the way lxc's tables show dates,
 * "2006/01/02 15:04 UTC", into @out (of @size bytes); "" when it does not
 * parse. */
void cli_format_date(const char *rfc3339, char *out, size_t size);

#endif /* CORRAL_CLI_OPS_H */
