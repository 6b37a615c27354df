/* JSON, YAML and table output of the command-line client. */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cli.h"
#include "output.h"

static const struct {
	const char *name;
	enum cli_format format;
} formats[] = {
	{ "table", CLI_FORMAT_TABLE },
	{ "json", CLI_FORMAT_JSON },
	{ "yaml", CLI_FORMAT_YAML },
};

int cli_format_parse(const char *s, unsigned allowed, enum cli_format *out)
{
	size_t i;

	for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		if (strcmp(s, formats[i].name) == 0 &&
		    (allowed & (unsigned)formats[i].format) != 0) {
			*out = formats[i].format;
			return 0;
		}
	}
	return cli_error("invalid format \"%s\"", s);
}

int cli_print_json(json_t *value, FILE *out)
{
	char *text;

	text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL) {
		return -ENOMEM;
	}
	fprintf(out, "%s\n", text);
	free(text);
	return 0;
}

int cli_print_json_pretty(json_t *value, FILE *out)
{
	const char *line;
	const char *end;
	char *text;
	size_t depth;

	/* jansson indents with spaces only: ask for one space per level and
	 * turn each into a tab. Strings never hold raw newlines, so every
	 * line starts with its indentation. */
	text = json_dumps(value, JSON_INDENT(1) | JSON_ENCODE_ANY);
	if (text == NULL) {
		return -ENOMEM;
	}
	for (line = text; *line != '\0'; line = *end != '\0' ? end + 1 : end) {
		end = strchr(line, '\n');
		if (end == NULL) {
			end = line + strlen(line);
		}
		for (depth = 0; line[depth] == ' '; depth++) {
			fputc('\t', out);
		}
		fprintf(out, "%.*s\n", (int)(end - line - (ptrdiff_t)depth),
			line + depth);
	}
	fputc('\n', out);
	free(text);
	return 0;
}

/* Whether the plain scalar @s would read back as something other than a
 * string under YAML 1.1 (what Go's yaml package and so lxc follow). */
static bool yaml_ambiguous(const char *s)
{
	static const char *const words[] = {
		"y",     "Y",     "yes",   "Yes",   "YES",   "n",    "N",
		"no",    "No",    "NO",    "true",  "True",  "TRUE", "false",
		"False", "FALSE", "on",    "On",    "ON",    "off",  "Off",
		"OFF",   "null",  "Null",  "NULL",  "~",     "<<",   ".inf",
		".Inf",  ".INF",  "-.inf", "-.Inf", "-.INF", ".nan", ".NaN",
		".NAN",  "+.inf", "+.Inf", "+.INF",
	};
	char buf[64];
	size_t len = strlen(s);
	size_t i;
	size_t j;
	char *end;

	if (len == 0) {
		return true;
	}
	for (i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (strcmp(s, words[i]) == 0) {
			return true;
		}
	}
	/* Timestamps: 2006-01-02... */
	if (len >= 8 && strspn(s, "0123456789") == 4 && s[4] == '-') {
		return true;
	}
	/* Numbers, with YAML 1.1's digit separators and 0b prefix. */
	if (len >= sizeof buf || strchr("+-.0123456789", s[0]) == NULL) {
		return false;
	}
	for (i = 0, j = 0; i < len; i++) {
		if (s[i] != '_') {
			buf[j++] = s[i];
		}
	}
	buf[j] = '\0';
	if (strncmp(buf, "0b", 2) == 0 && buf[2] != '\0' &&
	    strspn(buf + 2, "01") == strlen(buf + 2)) {
		return true;
	}
	if (buf[0] == '\0') {
		return false;
	}
	errno = 0;
	(void)strtod(buf, &end);
	return *end == '\0';
}

static int yaml_emit(yaml_emitter_t *e, yaml_event_t *ev)
{
	/* The emitter frees the event, also when it fails. */
	return yaml_emitter_emit(e, ev) ? 0 : -EIO;
}

static int yaml_scalar(yaml_emitter_t *e,
		       const char *s,
		       size_t len,
		       yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL,
					  (const yaml_char_t *)s, (int)len, 1,
					  1, style)) {
		return -ENOMEM;
	}
	return yaml_emit(e, &ev);
}

static int yaml_value(yaml_emitter_t *e, json_t *v)
{
	yaml_event_t ev;
	const char *key;
	const char *s;
	json_t *item;
	size_t i;
	char num[64];
	int rv;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (!yaml_mapping_start_event_initialize(
			&ev, NULL, NULL, 1,
			json_object_size(v) == 0 ? YAML_FLOW_MAPPING_STYLE
						 : YAML_BLOCK_MAPPING_STYLE)) {
			return -ENOMEM;
		}
		rv = yaml_emit(e, &ev);
		json_object_foreach(v, key, item)
		{
			if (rv == 0) {
				rv = yaml_scalar(
				    e, key, strlen(key),
				    yaml_ambiguous(key)
					? YAML_DOUBLE_QUOTED_SCALAR_STYLE
					: YAML_ANY_SCALAR_STYLE);
			}
			if (rv == 0) {
				rv = yaml_value(e, item);
			}
		}
		if (rv != 0) {
			return rv;
		}
		if (!yaml_mapping_end_event_initialize(&ev)) {
			return -ENOMEM;
		}
		return yaml_emit(e, &ev);
	case JSON_ARRAY:
		if (!yaml_sequence_start_event_initialize(
			&ev, NULL, NULL, 1,
			json_array_size(v) == 0 ? YAML_FLOW_SEQUENCE_STYLE
						: YAML_BLOCK_SEQUENCE_STYLE)) {
			return -ENOMEM;
		}
		rv = yaml_emit(e, &ev);
		json_array_foreach(v, i, item)
		{
			if (rv == 0) {
				rv = yaml_value(e, item);
			}
		}
		if (rv != 0) {
			return rv;
		}
		if (!yaml_sequence_end_event_initialize(&ev)) {
			return -ENOMEM;
		}
		return yaml_emit(e, &ev);
	case JSON_STRING:
		s = json_string_value(v);
		if (memchr(s, '\n', json_string_length(v)) != NULL) {
			return yaml_scalar(e, s, json_string_length(v),
					   YAML_LITERAL_SCALAR_STYLE);
		}
		return yaml_scalar(e, s, json_string_length(v),
				   yaml_ambiguous(s)
				       ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
				       : YAML_ANY_SCALAR_STYLE);
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return yaml_scalar(e, num, strlen(num),
				   YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL:
		snprintf(num, sizeof num, "%.15g", json_real_value(v));
		if (strtod(num, NULL) != json_real_value(v)) {
			snprintf(num, sizeof num, "%.17g", json_real_value(v));
		}
		return yaml_scalar(e, num, strlen(num),
				   YAML_PLAIN_SCALAR_STYLE);
	case JSON_TRUE:
		return yaml_scalar(e, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return yaml_scalar(e, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
	default:
		return yaml_scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
}

int cli_print_yaml(json_t *value, FILE *out)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	int rv;

	if (!yaml_emitter_initialize(&e)) {
		return -ENOMEM;
	}
	yaml_emitter_set_output_file(&e, out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	rv = -ENOMEM;
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING)) {
		goto out;
	}
	rv = yaml_emit(&e, &ev);
	if (rv != 0) {
		goto out;
	}
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1)) {
		rv = -ENOMEM;
		goto out;
	}
	rv = yaml_emit(&e, &ev);
	if (rv == 0) {
		rv = yaml_value(&e, value);
	}
	if (rv != 0) {
		goto out;
	}
	if (!yaml_document_end_event_initialize(&ev, 1)) {
		rv = -ENOMEM;
		goto out;
	}
	rv = yaml_emit(&e, &ev);
	if (rv != 0) {
		goto out;
	}
	if (!yaml_stream_end_event_initialize(&ev)) {
		rv = -ENOMEM;
		goto out;
	}
	rv = yaml_emit(&e, &ev);
	if (rv == 0 && !yaml_emitter_flush(&e)) {
		rv = -EIO;
	}

out:
	yaml_emitter_delete(&e);
	return rv;
}

int cli_table_init(struct cli_table *t,
		   size_t n_cols,
		   const char *const *headers)
{
	memset(t, 0, sizeof *t);
	t->n_cols = n_cols;
	return cli_table_add_row(t, headers);
}

int cli_table_add_row(struct cli_table *t, const char *const *cells)
{
	size_t cap;
	size_t i;
	char **grown;
	char **row;

	if (t->n_rows == t->cap_rows) {
		cap = t->cap_rows == 0 ? 8 : t->cap_rows * 2;
		grown = realloc(t->cells, cap * t->n_cols * sizeof *t->cells);
		if (grown == NULL) {
			return -ENOMEM;
		}
		t->cells = grown;
		t->cap_rows = cap;
	}
	row = t->cells + t->n_rows * t->n_cols;
	for (i = 0; i < t->n_cols; i++) {
		row[i] = strdup(cells[i] != NULL ? cells[i] : "");
		if (row[i] == NULL) {
			while (i-- > 0) {
				free(row[i]);
			}
			return -ENOMEM;
		}
	}
	t->n_rows++;
	return 0;
}

/* Display width of @len bytes of UTF-8: one column per code point. */
static size_t text_width(const char *s, size_t len)
{
	size_t width = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			width++;
		}
	}
	return width;
}

/* The @index-th line of @cell (without its newline) in *@start and *@len;
 * false when the cell has fewer lines. */
static bool cell_line(const char *cell,
		      size_t index,
		      const char **start,
		      size_t *len)
{
	const char *end;

	while (index-- > 0) {
		cell = strchr(cell, '\n');
		if (cell == NULL) {
			return false;
		}
		cell++;
	}
	end = strchr(cell, '\n');
	*start = cell;
	*len = end != NULL ? (size_t)(end - cell) : strlen(cell);
	return true;
}

static void print_rule(const size_t *widths, size_t n_cols, FILE *out)
{
	size_t i;
	size_t j;

	for (i = 0; i < n_cols; i++) {
		fputc('+', out);
		for (j = 0; j < widths[i] + 2; j++) {
			fputc('-', out);
		}
	}
	fputs("+\n", out);
}

static void print_spaces(size_t n, FILE *out)
{
	while (n-- > 0) {
		fputc(' ', out);
	}
}

int cli_table_print(const struct cli_table *t, FILE *out)
{
	const char *start;
	size_t *widths;
	size_t width;
	size_t lines;
	size_t row;
	size_t col;
	size_t line;
	size_t len;

	if (t->n_cols == 0 || t->n_rows == 0) {
		return 0;
	}
	widths = calloc(t->n_cols, sizeof *widths);
	if (widths == NULL) {
		return -ENOMEM;
	}
	for (row = 0; row < t->n_rows; row++) {
		for (col = 0; col < t->n_cols; col++) {
			const char *cell = t->cells[row * t->n_cols + col];
			for (line = 0; cell_line(cell, line, &start, &len);
			     line++) {
				width = text_width(start, len);
				if (width > widths[col]) {
					widths[col] = width;
				}
			}
		}
	}

	print_rule(widths, t->n_cols, out);
	for (row = 0; row < t->n_rows; row++) {
		char **cells = t->cells + row * t->n_cols;
		lines = 1;
		for (col = 0; col < t->n_cols; col++) {
			for (line = 1;
			     cell_line(cells[col], line, &start, &len);
			     line++) {
			}
			if (line > lines) {
				lines = line;
			}
		}
		for (line = 0; line < lines; line++) {
			for (col = 0; col < t->n_cols; col++) {
				size_t left = 0;
				size_t pad;
				if (!cell_line(cells[col], line, &start,
					       &len)) {
					start = "";
					len = 0;
				}
				pad = widths[col] - text_width(start, len);
				if (row == 0) {
					/* Headers are centred. */
					left = pad / 2;
				}
				fputs("| ", out);
				print_spaces(left, out);
				fwrite(start, 1, len, out);
				print_spaces(pad - left + 1, out);
			}
			fputs("|\n", out);
		}
		print_rule(widths, t->n_cols, out);
	}
	free(widths);
	return 0;
}

void cli_table_close(struct cli_table *t)
{
	size_t i;

	if (t == NULL) {
		return;
	}
	for (i = 0; i < t->n_rows * t->n_cols; i++) {
		free(t->cells[i]);
	}
	free(t->cells);
	memset(t, 0, sizeof *t);
}
