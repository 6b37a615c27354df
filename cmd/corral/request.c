/* Project-scoped paths and ETag-aware API calls. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

/* Append @s percent-encoded to @out (room for 3 * strlen(@s) + 1 bytes),
 * keeping only RFC 3986's unreserved characters as they are. */
static char *encode(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char ch;

	for (; *s != '\0'; s++) {
		ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL) {
			*out++ = (char)ch;
		} else {
			*out++ = '%';
			*out++ = hex[ch >> 4];
			*out++ = hex[ch & 0xf];
		}
	}
	*out = '\0';
	return out;
}

int cli_api_path(const struct cli *cli,
		 const char *base,
		 const char *name,
		 const char *query,
		 char **out)
{
	const char *project = cli->project;
	size_t len = strlen(base) + 1;
	char *path;
	char *end;

	if (project != NULL &&
	    (project[0] == '\0' || strcmp(project, "default") == 0)) {
		project = NULL;
	}
	if (name != NULL) {
		len += 1 + 3 * strlen(name);
	}
	if (query != NULL) {
		len += 1 + strlen(query);
	}
	if (project != NULL) {
		len += strlen("&project=") + 3 * strlen(project);
	}
	path = malloc(len);
	if (path == NULL) {
		return -ENOMEM;
	}
	end = stpcpy(path, base);
	if (name != NULL) {
		*end++ = '/';
		end = encode(end, name);
	}
	if (query != NULL) {
		*end++ = '?';
		end = stpcpy(end, query);
	}
	if (project != NULL) {
		end = stpcpy(end, query != NULL ? "&project=" : "?project=");
		encode(end, project);
	}
	*out = path;
	return 0;
}

int cli_request(struct cli *cli,
		const char *method,
		const char *path,
		const char *body,
		const char *if_match,
		struct httpc_envelope *env,
		char *etag,
		char *errmsg,
		size_t errmsg_size)
{
	struct httpc_header header = { "If-Match", if_match };
	struct httpc_request req = {
		.method = method,
		.path = path,
		.headers = if_match != NULL ? &header : NULL,
		.n_headers = if_match != NULL ? 1 : 0,
		.body = body,
		.body_len = body != NULL ? strlen(body) : 0,
	};
	struct httpc_response resp;
	struct httpc_client *c;
	int rv;

	memset(env, 0, sizeof *env);
	rv = cli_client(cli, &c);
	if (rv != 0) {
		snprintf(
		    errmsg, errmsg_size, "%s",
		    cli->errmsg[0] != '\0' ? cli->errmsg : corral_strerror(rv));
		return 1;
	}
	if (httpc_do(c, &req, &resp) != 0) {
		snprintf(errmsg, errmsg_size, "%s", c->errmsg);
		return 1;
	}
	rv = httpc_envelope_parse(resp.body, resp.body_len, resp.status, env,
				  c->errmsg, sizeof c->errmsg);
	if (rv == CORRAL_EPROTO) {
		snprintf(errmsg, errmsg_size, "failed to fetch %s: HTTP %d",
			 path, resp.status);
	} else if (rv != 0) {
		snprintf(errmsg, errmsg_size, "%s", c->errmsg);
	} else if (env->type == HTTPC_ENVELOPE_ERROR) {
		snprintf(errmsg, errmsg_size, "%s",
			 env->error[0] != '\0' ? env->error : "unknown error");
		httpc_envelope_close(env);
		rv = 1;
	} else if (etag != NULL) {
		snprintf(etag, CLI_ETAG_SIZE, "%s",
			 resp.etag != NULL ? resp.etag : "");
	}
	httpc_response_close(&resp);
	return rv != 0 ? 1 : 0;
}

int cli_call_json(struct cli *cli,
		  const char *method,
		  const char *path,
		  json_t *body,
		  const char *if_match,
		  struct httpc_envelope *env,
		  char *etag)
{
	char errmsg[1024];
	char *text = NULL;
	int rv;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		if (text == NULL) {
			memset(env, 0, sizeof *env);
			return cli_error("%s", corral_strerror(-ENOMEM));
		}
	}
	rv = cli_request(cli, method, path, text, if_match, env, etag, errmsg,
			 sizeof errmsg);
	free(text);
	if (rv != 0) {
		return cli_error("%s", errmsg);
	}
	return 0;
}

int cli_update(struct cli *cli,
	       const char *path,
	       const char *const *fields,
	       int (*modify)(json_t *put, void *arg),
	       void *arg)
{
	struct httpc_envelope env;
	char etag[CLI_ETAG_SIZE];
	json_t *put;
	json_t *value;
	size_t i;
	int rv;

	if (cli_call_json(cli, "GET", path, NULL, NULL, &env, etag) != 0) {
		return 1;
	}
	put = json_object();
	if (put == NULL) {
		goto err_after_get;
	}
	for (i = 0; fields[i] != NULL; i++) {
		value = json_object_get(env.metadata, fields[i]);
		if (value != NULL &&
		    json_object_set_new(put, fields[i],
					json_deep_copy(value)) != 0) {
			goto err_after_get;
		}
	}
	httpc_envelope_close(&env);
	rv = modify(put, arg);
	if (rv == 0) {
		rv = cli_call_json(cli, "PUT", path, put,
				   etag[0] != '\0' ? etag : NULL, &env, NULL);
		if (rv == 0) {
			httpc_envelope_close(&env);
		}
	}
	json_decref(put);
	return rv;

err_after_get:
	json_decref(put);
	httpc_envelope_close(&env);
	return cli_error("%s", corral_strerror(-ENOMEM));
}

int cli_merge_config(json_t *put, void *arg)
{
	json_t *changes = arg;
	json_t *config = json_object_get(put, "config");
	const char *key;
	json_t *value;

	if (!json_is_object(config)) {
		config = json_object();
		if (config == NULL ||
		    json_object_set_new(put, "config", config) != 0) {
			return cli_error("%s", corral_strerror(-ENOMEM));
		}
	}
	json_object_foreach(changes, key, value)
	{
		if (json_string_length(value) == 0) {
			json_object_del(config, key);
		} else if (json_object_set(config, key, value) != 0) {
			return cli_error("%s", corral_strerror(-ENOMEM));
		}
	}
	return 0;
}
