/* Output formats of the command-line client: JSON, YAML and lxc-style
 * ASCII tables. Everything prints to a caller-given FILE. */
#ifndef CORRAL_CLI_OUTPUT_H
#define CORRAL_CLI_OUTPUT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* The values of --format. */
enum cli_format {
	CLI_FORMAT_TABLE = 1 << 0,
	CLI_FORMAT_JSON = 1 << 1,
	CLI_FORMAT_YAML = 1 << 2,
};

/* Parse the --format value @s into *@out, accepting only the formats whose
 * bits are set in @allowed. Returns 0, or prints "Error: invalid format"
 * and returns 1. */
int cli_format_parse(const char *s, unsigned allowed, enum cli_format *out);

/* Print @value compactly on one line (lxc's --format json). Returns 0 or
 * -ENOMEM. */
int cli_print_json(json_t *value, FILE *out);

/* Print @value indented with tabs, then an empty line, like
 * `lxc query`. Returns 0 or -ENOMEM. */
int cli_print_json_pretty(json_t *value, FILE *out);

/* Print @value as a YAML block document (no "---"), like Go's yaml
 * marshaller does for lxc: object keys in their order, strings quoted when
 * they would read back as another type, multi-line strings as literal
 * blocks. Returns 0, -ENOMEM or -EIO. */
int cli_print_yaml(json_t *value, FILE *out);

/* A table being built: a header row and data rows of copied strings. */
struct cli_table {
	size_t n_cols;
	char **cells;  /* owned: n_rows * n_cols strings, headers first */
	size_t n_rows; /* including the header row */
	size_t cap_rows;
};

/* Start a table with @n_cols columns named by @headers (copied). Returns 0
 * or -ENOMEM. */
int cli_table_init(struct cli_table *t,
		   size_t n_cols,
		   const char *const *headers);

/* Append a row of @t->n_cols cells (copied; NULL prints empty; a cell may
 * hold several lines). Returns 0 or -ENOMEM. */
int cli_table_add_row(struct cli_table *t, const char *const *cells);

/* Print @t like lxc: +---+ borders, centred headers, left-aligned cells, a
 * rule after every row. Returns 0 or -ENOMEM. */
int cli_table_print(const struct cli_table *t, FILE *out);

/* Free the cells. Accepts a zeroed table. */
void cli_table_close(struct cli_table *t);

#endif /* CORRAL_CLI_OUTPUT_H */
