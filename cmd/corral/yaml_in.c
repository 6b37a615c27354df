/* YAML to JSON with libyaml's event parser: a recursive descent over the
 * events of one document, enough for maps, lists and strings. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include <corral/err.h>

#include "yaml_in.h"

/* Bound on nesting, so a hostile document cannot exhaust the stack. */
#define YAML_IN_MAX_DEPTH 64

struct yaml_in {
	yaml_parser_t parser;
	char *errmsg; /* borrowed */
	size_t errmsg_size;
};

/* Read the next event into @ev. Returns 0 or CORRAL_EINVALID. */
static int next_event(struct yaml_in *y, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&y->parser, ev)) {
		if (y->parser.error == YAML_MEMORY_ERROR) {
			return -ENOMEM;
		}
		snprintf(y->errmsg, y->errmsg_size, "yaml: line %lu: %s",
			 (unsigned long)y->parser.problem_mark.line + 1,
			 y->parser.problem != NULL ? y->parser.problem
						   : "syntax error");
		return CORRAL_EINVALID;
	}
	return 0;
}

static bool is_null(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		return false;
	}
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int parse_node(struct yaml_in *y,
		      yaml_event_t *ev,
		      unsigned depth,
		      json_t **out);

/* Parse the items of a mapping or sequence whose start event was just
 * read, up to its end event, into @container. */
static int parse_items(struct yaml_in *y,
		       json_t *container,
		       bool mapping,
		       unsigned depth)
{
	yaml_event_t ev;
	json_t *value;
	char *key;
	int rv;

	for (;;) {
		rv = next_event(y, &ev);
		if (rv != 0) {
			return rv;
		}
		if (ev.type == YAML_MAPPING_END_EVENT ||
		    ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		key = NULL;
		if (mapping) {
			if (ev.type != YAML_SCALAR_EVENT) {
				snprintf(y->errmsg, y->errmsg_size,
					 "yaml: line %lu: map keys must be "
					 "strings",
					 (unsigned long)ev.start_mark.line + 1);
				yaml_event_delete(&ev);
				return CORRAL_EINVALID;
			}
			key = strdup((const char *)ev.data.scalar.value);
			yaml_event_delete(&ev);
			if (key == NULL) {
				return -ENOMEM;
			}
			rv = next_event(y, &ev);
			if (rv != 0) {
				free(key);
				return rv;
			}
		}
		rv = parse_node(y, &ev, depth + 1, &value);
		if (rv == 0) {
			rv = mapping
				 ? json_object_set_new(container, key, value)
				 : json_array_append_new(container, value);
			rv = rv != 0 ? -ENOMEM : 0;
		}
		free(key);
		if (rv != 0) {
			return rv;
		}
	}
}

/* Turn the node starting with @ev (consumed) into *@out. */
static int parse_node(struct yaml_in *y,
		      yaml_event_t *ev,
		      unsigned depth,
		      json_t **out)
{
	json_t *container;
	bool mapping;
	int rv;

	if (depth > YAML_IN_MAX_DEPTH) {
		yaml_event_delete(ev);
		snprintf(y->errmsg, y->errmsg_size, "yaml: nested too deeply");
		return CORRAL_EINVALID;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		*out = is_null(ev)
			   ? json_null()
			   : json_stringn((const char *)ev->data.scalar.value,
					  ev->data.scalar.length);
		yaml_event_delete(ev);
		if (*out == NULL) {
			snprintf(y->errmsg, y->errmsg_size,
				 "yaml: invalid UTF-8 in a string");
			return CORRAL_EINVALID;
		}
		return 0;
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		mapping = ev->type == YAML_MAPPING_START_EVENT;
		yaml_event_delete(ev);
		container = mapping ? json_object() : json_array();
		if (container == NULL) {
			return -ENOMEM;
		}
		rv = parse_items(y, container, mapping, depth);
		if (rv != 0) {
			json_decref(container);
			return rv;
		}
		*out = container;
		return 0;
	case YAML_ALIAS_EVENT:
	default:
		snprintf(y->errmsg, y->errmsg_size,
			 "yaml: line %lu: anchors and aliases are not "
			 "supported",
			 (unsigned long)ev->start_mark.line + 1);
		yaml_event_delete(ev);
		return CORRAL_EINVALID;
	}
}

int cli_yaml_parse(const char *text,
		   size_t len,
		   json_t **out,
		   char *errmsg,
		   size_t errmsg_size)
{
	struct yaml_in y = { .errmsg = errmsg, .errmsg_size = errmsg_size };
	json_error_t jerr;
	yaml_event_t ev;
	json_t *value;
	int rv;

	value = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (value != NULL) {
		*out = value;
		return 0;
	}
	if (!yaml_parser_initialize(&y.parser)) {
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text,
				     len);
	/* Skip the stream and document starts to the root node. */
	do {
		rv = next_event(&y, &ev);
		if (rv != 0) {
			goto out;
		}
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			value = json_object();
			rv = value != NULL ? 0 : -ENOMEM;
			goto out;
		}
		if (ev.type == YAML_STREAM_START_EVENT ||
		    ev.type == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		break;
	} while (true);
	rv = parse_node(&y, &ev, 0, &value);
	if (rv == 0 && json_is_null(value)) {
		json_decref(value);
		value = json_object();
		rv = value != NULL ? 0 : -ENOMEM;
	}
	/* Like Go's yaml.Unmarshal, what follows the first document is not
	 * looked at, but the rest of this one must still be well-formed. */
	if (rv == 0) {
		rv = next_event(&y, &ev);
		if (rv == 0) {
			yaml_event_delete(&ev);
		} else {
			json_decref(value);
		}
	}

out:
	yaml_parser_delete(&y.parser);
	if (rv == 0) {
		*out = value;
	}
	return rv;
}
