/* Editing an object through $EDITOR or stdin, and lxc-like JSON shapes. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edit.h"
#include "output.h"
#include "yaml_in.h"

/* Bound on an edited document. */
#define EDIT_MAX_SIZE (16u * 1024u * 1024u)

/* Bound on the words of $EDITOR. */
#define EDIT_MAX_WORDS 16

/* Read all of @f into *@out (owned by the caller, NUL-terminated) and its
 * length into *@len. Returns 0, -ENOMEM, -EMSGSIZE or -EIO. */
static int read_all(FILE *f, char **out, size_t *len)
{
	size_t cap = 4096;
	size_t n = 0;
	size_t got;
	char *buf;
	char *grown;

	buf = malloc(cap);
	if (buf == NULL) {
		return -ENOMEM;
	}
	for (;;) {
		if (n + 1 == cap) {
			if (cap >= EDIT_MAX_SIZE) {
				free(buf);
				return -EMSGSIZE;
			}
			grown = realloc(buf, cap * 2);
			if (grown == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = grown;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - 1 - n, f);
		n += got;
		if (got == 0) {
			break;
		}
	}
	if (ferror(f)) {
		free(buf);
		return -EIO;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Parse @text as the edited document into *@out, which must be a map.
 * Returns 0, or fills @errmsg and returns 1. */
static int parse_doc(const char *text,
		     size_t len,
		     json_t **out,
		     char *errmsg,
		     size_t errmsg_size)
{
	json_t *doc;
	int rv;

	rv = cli_yaml_parse(text, len, &doc, errmsg, errmsg_size);
	if (rv == -ENOMEM) {
		snprintf(errmsg, errmsg_size, "%s", corral_strerror(rv));
	}
	if (rv != 0) {
		return 1;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		snprintf(errmsg, errmsg_size,
			 "yaml: the document is not a map of fields");
		return 1;
	}
	*out = doc;
	return 0;
}

static int edit_stdin(struct cli *cli, cli_edit_apply_fn apply, void *arg)
{
	char errmsg[1024];
	json_t *doc;
	char *text;
	size_t len;
	int rv;

	rv = read_all(stdin, &text, &len);
	if (rv != 0) {
		return cli_error("read stdin: %s", corral_strerror(rv));
	}
	rv = parse_doc(text, len, &doc, errmsg, sizeof errmsg);
	free(text);
	if (rv != 0) {
		return cli_error("%s", errmsg);
	}
	rv = apply(cli, doc, arg, errmsg, sizeof errmsg);
	json_decref(doc);
	if (rv != 0) {
		return cli_error("%s", errmsg);
	}
	return 0;
}

/* Run the user's editor on @path and wait for it. Returns 0, or fills
 * @errmsg and returns 1. */
static int run_editor(const char *path, char *errmsg, size_t errmsg_size)
{
	char *words[EDIT_MAX_WORDS + 2];
	const char *editor;
	char *copy;
	char *save;
	char *word;
	size_t n = 0;
	pid_t pid;
	int status;

	editor = getenv("VISUAL");
	if (editor == NULL || editor[0] == '\0') {
		editor = getenv("EDITOR");
	}
	if (editor == NULL || editor[0] == '\0') {
		editor = "vi";
	}
	copy = strdup(editor);
	if (copy == NULL) {
		snprintf(errmsg, errmsg_size, "%s", corral_strerror(-ENOMEM));
		return 1;
	}
	for (word = strtok_r(copy, " \t", &save);
	     word != NULL && n < EDIT_MAX_WORDS;
	     word = strtok_r(NULL, " \t", &save)) {
		words[n++] = word;
	}
	words[n++] = (char *)path;
	words[n] = NULL;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		free(copy);
		snprintf(errmsg, errmsg_size, "fork(): %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execvp(words[0], words);
		fprintf(stderr, "Error: exec %s: %s\n", words[0],
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			free(copy);
			snprintf(errmsg, errmsg_size, "waitpid(): %s",
				 strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(errmsg, errmsg_size, "editor %s failed", copy);
		free(copy);
		return 1;
	}
	free(copy);
	return 0;
}

/* Write @header and @current as YAML into a new temporary file whose path
 * goes to @path (of @path_size bytes). Returns 0, or prints an error and
 * returns 1. */
static int write_temp(char *path,
		      size_t path_size,
		      json_t *current,
		      const char *header)
{
	const char *dir = getenv("TMPDIR");
	FILE *f;
	int fd;
	int rv;

	if (dir == NULL || dir[0] == '\0') {
		dir = "/tmp";
	}
	snprintf(path, path_size, "%s/corral_editor_XXXXXX.yaml", dir);
	fd = mkstemps(path, 5);
	if (fd < 0) {
		return cli_error("mkstemps(): %s", strerror(errno));
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(path);
		return cli_error("fdopen(): %s", strerror(errno));
	}
	fputs(header, f);
	rv = cli_print_yaml(current, f);
	if (fclose(f) != 0 && rv == 0) {
		rv = -EIO;
	}
	if (rv != 0) {
		unlink(path);
		return cli_error("write %s: %s", path, corral_strerror(rv));
	}
	return 0;
}

static int edit_terminal(struct cli *cli,
			 json_t *current,
			 const char *header,
			 cli_edit_apply_fn apply,
			 void *arg)
{
	char path[4096];
	char errmsg[1024];
	json_t *doc;
	char *text;
	size_t len;
	FILE *f;
	int status = 1;
	int rv;
	int ch;

	if (write_temp(path, sizeof path, current, header) != 0) {
		return 1;
	}
	for (;;) {
		if (run_editor(path, errmsg, sizeof errmsg) != 0) {
			cli_error("%s", errmsg);
			goto out;
		}
		f = fopen(path, "r");
		if (f == NULL) {
			cli_error("fopen(): %s: %s", path, strerror(errno));
			goto out;
		}
		rv = read_all(f, &text, &len);
		fclose(f);
		if (rv != 0) {
			cli_error("read %s: %s", path, corral_strerror(rv));
			goto out;
		}
		rv = parse_doc(text, len, &doc, errmsg, sizeof errmsg);
		free(text);
		if (rv == 0) {
			rv = apply(cli, doc, arg, errmsg, sizeof errmsg);
			json_decref(doc);
		}
		if (rv == 0) {
			status = 0;
			goto out;
		}
		/* Like lxc: show what was wrong and offer the editor again. */
		fflush(stdout);
		fprintf(stderr, "Config parsing error: %s\n", errmsg);
		printf(
		    "Press enter to open the editor again or ctrl+c to "
		    "abort change\n");
		fflush(stdout);
		ch = getchar();
		if (ch == EOF) {
			goto out;
		}
		while (ch != '\n' && ch != EOF) {
			ch = getchar();
		}
	}

out:
	unlink(path);
	return status;
}

int cli_edit(struct cli *cli,
	     json_t *current,
	     const char *header,
	     cli_edit_apply_fn apply,
	     void *arg)
{
	if (!isatty(STDIN_FILENO)) {
		return edit_stdin(cli, apply, arg);
	}
	return edit_terminal(cli, current, header, apply, arg);
}

static int compare_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *cli_json_sorted(json_t *value)
{
	const char **keys;
	const char *key;
	json_t *item;
	json_t *copy;
	size_t n = 0;
	size_t i;

	if (json_is_array(value)) {
		copy = json_array();
		json_array_foreach(value, i, item)
		{
			if (copy == NULL ||
			    json_array_append_new(copy,
						  cli_json_sorted(item)) != 0) {
				json_decref(copy);
				return NULL;
			}
		}
		return copy;
	}
	if (!json_is_object(value)) {
		return json_deep_copy(value);
	}
	copy = json_object();
	keys = malloc((json_object_size(value) + 1) * sizeof *keys);
	if (copy == NULL || keys == NULL) {
		goto err;
	}
	json_object_foreach(value, key, item)
	{
		keys[n++] = key;
	}
	qsort(keys, n, sizeof *keys, compare_keys);
	for (i = 0; i < n; i++) {
		if (json_object_set_new(copy, keys[i],
					cli_json_sorted(json_object_get(
					    value, keys[i]))) != 0) {
			goto err;
		}
	}
	free(keys);
	return copy;

err:
	free(keys);
	json_decref(copy);
	return NULL;
}

/* Order two array items, objects, by their "name". */
static int compare_names(const void *a, const void *b)
{
	const char *x =
	    json_string_value(json_object_get(*(json_t *const *)a, "name"));
	const char *y =
	    json_string_value(json_object_get(*(json_t *const *)b, "name"));

	return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

json_t *cli_json_by_name(json_t *list)
{
	size_t n = json_array_size(list);
	json_t **items;
	json_t *sorted;
	size_t i;

	items = malloc((n + 1) * sizeof *items);
	sorted = json_array();
	if (items == NULL || sorted == NULL) {
		goto err;
	}
	for (i = 0; i < n; i++) {
		items[i] = json_array_get(list, i);
	}
	qsort(items, n, sizeof *items, compare_names);
	for (i = 0; i < n; i++) {
		if (json_array_append(sorted, items[i]) != 0) {
			goto err;
		}
	}
	free(items);
	return sorted;

err:
	free(items);
	json_decref(sorted);
	return NULL;
}

int cli_json_string_map(json_t *map)
{
	const char *key;
	json_t *value;
	json_t *text;
	char num[64];

	json_object_foreach(map, key, value)
	{
		switch (json_typeof(value)) {
		case JSON_NULL:
			text = json_string("");
			break;
		case JSON_TRUE:
			text = json_string("true");
			break;
		case JSON_FALSE:
			text = json_string("false");
			break;
		case JSON_INTEGER:
			snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
				 json_integer_value(value));
			text = json_string(num);
			break;
		case JSON_REAL:
			snprintf(num, sizeof num, "%.17g",
				 json_real_value(value));
			text = json_string(num);
			break;
		case JSON_STRING:
		case JSON_OBJECT:
		case JSON_ARRAY:
		default:
			continue;
		}
		if (text == NULL || json_object_set_new(map, key, text) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}
