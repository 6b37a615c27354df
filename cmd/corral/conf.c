/* The client's config dir and config.json. */

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <corral/cert.h>
#include <corral/err.h>

#include "conf.h"

/* Bound on config.json. */
#define CONF_MAX_SIZE (1024 * 1024)

static bool is_fingerprint(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 64) {
		return false;
	}
	for (i = 0; i < 64; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

bool cli_remote_name_ok(const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (len == 0 || len > 64 || name[0] == '-') {
		return false;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch <= ' ' || ch == 0x7f || ch == ':' || ch == '/' ||
		    ch == '\\') {
			return false;
		}
	}
	return true;
}

int cli_addr_split(const char *addr, char **host, char **port)
{
	const char *p;
	const char *colon;
	const char *end;

	*host = NULL;
	*port = NULL;
	if (strncmp(addr, "https://", 8) != 0) {
		return CORRAL_EINVALID;
	}
	p = addr + 8;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end == NULL || end[1] != ':') {
			return CORRAL_EINVALID;
		}
		*host = strndup(p + 1, (size_t)(end - p - 1));
		colon = end + 1;
	} else {
		colon = strrchr(p, ':');
		if (colon == NULL || memchr(p, ':', (size_t)(colon - p))) {
			return CORRAL_EINVALID;
		}
		*host = strndup(p, (size_t)(colon - p));
	}
	if (*host == NULL) {
		return -ENOMEM;
	}
	if ((*host)[0] == '\0' || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atoi(colon + 1) > 65535) {
		free(*host);
		*host = NULL;
		return CORRAL_EINVALID;
	}
	*port = strdup(colon + 1);
	if (*port == NULL) {
		free(*host);
		*host = NULL;
		return -ENOMEM;
	}
	return 0;
}

int cli_addr_normalize(const char *in, char **out)
{
	const char *p = in;
	const char *colon;
	char *host;
	char *port;
	size_t len;
	char *tmp;
	int n;
	int rv;

	*out = NULL;
	if (strncmp(p, "https://", 8) == 0) {
		p += 8;
	} else if (strstr(p, "://") != NULL) {
		return CORRAL_EINVALID;
	}
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/') {
		len--;
	}
	if (len == 0 || memchr(p, '/', len) != NULL ||
	    memchr(p, '@', len) != NULL) {
		return CORRAL_EINVALID;
	}
	colon = memchr(p, ':', len);
	if (p[0] == '[') {
		/* "[V6]" or "[V6]:PORT". */
		if (p[len - 1] == ']') {
			n = asprintf(&tmp, "https://%.*s:%s", (int)len, p,
				     CLI_DEFAULT_PORT);
		} else {
			n = asprintf(&tmp, "https://%.*s", (int)len, p);
		}
	} else if (colon != NULL &&
		   memchr(colon + 1, ':', len - (size_t)(colon - p) - 1)) {
		/* A bare IPv6 address. */
		n = asprintf(&tmp, "https://[%.*s]:%s", (int)len, p,
			     CLI_DEFAULT_PORT);
	} else if (colon != NULL) {
		n = asprintf(&tmp, "https://%.*s", (int)len, p);
	} else {
		n = asprintf(&tmp, "https://%.*s:%s", (int)len, p,
			     CLI_DEFAULT_PORT);
	}
	if (n < 0) {
		return -ENOMEM;
	}
	rv = cli_addr_split(tmp, &host, &port);
	if (rv != 0) {
		free(tmp);
		return rv;
	}
	free(host);
	free(port);
	*out = tmp;
	return 0;
}

json_t *cli_conf_new(void)
{
	return json_pack("{s:s, s:{s:{s:s}}}", "default-remote",
			 CLI_LOCAL_REMOTE, "remotes", CLI_LOCAL_REMOTE, "addr",
			 "unix://");
}

/* Check one remote of config.json. */
static int check_remote(const char *name,
			json_t *remote,
			char *errmsg,
			size_t size)
{
	const char *addr = json_string_value(json_object_get(remote, "addr"));
	json_t *fp = json_object_get(remote, "fingerprint");
	char *host;
	char *port;
	int rv;

	if (!cli_remote_name_ok(name)) {
		corral_errf(errmsg, size, "invalid remote name \"%s\"", name);
		return CORRAL_EINVALID;
	}
	if (!json_is_object(remote) || addr == NULL) {
		corral_errf(errmsg, size, "remote \"%s\": no \"addr\"", name);
		return CORRAL_EINVALID;
	}
	if (strncmp(addr, "unix://", 7) == 0) {
		return 0;
	}
	rv = cli_addr_split(addr, &host, &port);
	if (rv == -ENOMEM) {
		return rv;
	}
	free(host);
	free(port);
	if (rv != 0) {
		corral_errf(errmsg, size,
			    "remote \"%s\": invalid address \"%s\"", name,
			    addr);
		return CORRAL_EINVALID;
	}
	if (fp != NULL && !is_fingerprint(json_string_value(fp))) {
		corral_errf(errmsg, size,
			    "remote \"%s\": invalid \"fingerprint\"", name);
		return CORRAL_EINVALID;
	}
	return 0;
}

int cli_conf_parse(const char *text,
		   size_t len,
		   json_t **out,
		   char *errmsg,
		   size_t errmsg_size)
{
	json_error_t jerr;
	const char *def;
	const char *name;
	json_t *remotes;
	json_t *remote;
	json_t *doc;
	int rv;

	*out = NULL;
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		corral_errf(errmsg, errmsg_size, "line %d: %s", jerr.line,
			    jerr.text);
		return CORRAL_EINVALID;
	}
	if (!json_is_object(doc)) {
		corral_errf(errmsg, errmsg_size, "not a JSON object");
		rv = CORRAL_EINVALID;
		goto err;
	}
	remotes = json_object_get(doc, "remotes");
	if (remotes == NULL) {
		remotes = json_object();
		if (remotes == NULL ||
		    json_object_set_new(doc, "remotes", remotes) != 0) {
			rv = -ENOMEM;
			goto err;
		}
	}
	if (!json_is_object(remotes)) {
		corral_errf(errmsg, errmsg_size,
			    "\"remotes\" is not an object");
		rv = CORRAL_EINVALID;
		goto err;
	}
	if (json_object_get(remotes, CLI_LOCAL_REMOTE) == NULL &&
	    json_object_set_new(remotes, CLI_LOCAL_REMOTE,
				json_pack("{s:s}", "addr", "unix://")) != 0) {
		rv = -ENOMEM;
		goto err;
	}
	json_object_foreach(remotes, name, remote)
	{
		rv = check_remote(name, remote, errmsg, errmsg_size);
		if (rv != 0) {
			goto err;
		}
	}
	def = json_string_value(json_object_get(doc, "default-remote"));
	if (json_object_get(doc, "default-remote") == NULL) {
		def = CLI_LOCAL_REMOTE;
		if (json_object_set_new(doc, "default-remote",
					json_string(def)) != 0) {
			rv = -ENOMEM;
			goto err;
		}
	}
	if (def == NULL || json_object_get(remotes, def) == NULL) {
		corral_errf(errmsg, errmsg_size,
			    "the default remote \"%s\" does not exist",
			    def != NULL ? def : "");
		rv = CORRAL_EINVALID;
		goto err;
	}
	*out = doc;
	return 0;

err:
	if (rv == -ENOMEM) {
		corral_errf(errmsg, errmsg_size, "out of memory");
	}
	json_decref(doc);
	return rv;
}

/* ---- Files ---- */

int cli_conf_load(struct cli_conf *conf, char *errmsg, size_t errmsg_size)
{
	const char *env = getenv("CORRAL_CONF");
	const char *home;
	struct passwd *pw;
	char *path = NULL;
	char *text = NULL;
	char why[CORRAL_ERRMSG_SIZE];
	size_t len = 0;
	int rv;

	memset(conf, 0, sizeof *conf);
	if (env != NULL && env[0] != '\0') {
		conf->dir = strdup(env);
	} else {
		home = getenv("HOME");
		if (home == NULL || home[0] == '\0') {
			pw = getpwuid(getuid());
			home = pw != NULL ? pw->pw_dir : NULL;
		}
		if (home == NULL || home[0] == '\0') {
			corral_errf(errmsg, errmsg_size,
				    "cannot find the config dir: neither "
				    "$CORRAL_CONF nor $HOME is set");
			return -ENOENT;
		}
		if (asprintf(&conf->dir, "%s/.config/corral", home) < 0) {
			conf->dir = NULL;
		}
	}
	if (conf->dir == NULL) {
		goto err_nomem;
	}
	path = cli_conf_path(conf, "config.json");
	if (path == NULL) {
		goto err_nomem;
	}
	rv = cert_read_file(path, &text, &len);
	if (rv == -ENOENT) {
		conf->doc = cli_conf_new();
		free(path);
		if (conf->doc == NULL) {
			goto err_nomem;
		}
		return 0;
	}
	if (rv == 0 && len > CONF_MAX_SIZE) {
		rv = -EFBIG;
	}
	if (rv != 0) {
		corral_errf(errmsg, errmsg_size, "read %s: %s", path,
			    corral_strerror(rv));
		goto err;
	}
	rv = cli_conf_parse(text, len, &conf->doc, why, sizeof why);
	if (rv != 0) {
		corral_errf(errmsg, errmsg_size, "%s: %s", path, why);
		goto err;
	}
	free(text);
	free(path);
	return 0;

err_nomem:
	rv = -ENOMEM;
	corral_errf(errmsg, errmsg_size, "out of memory");
err:
	free(text);
	free(path);
	cli_conf_close(conf);
	return rv;
}

/* Create the config dir (one level) with mode 0700 if missing. */
static int make_dir(const char *dir, char *errmsg, size_t size)
{
	char *parent;
	char *slash;
	int rv;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		return 0;
	}
	if (errno != ENOENT) {
		goto fail;
	}
	/* ~/.config may be missing as well. */
	parent = strdup(dir);
	if (parent == NULL) {
		return -ENOMEM;
	}
	slash = strrchr(parent, '/');
	if (slash != NULL && slash != parent) {
		*slash = '\0';
		if (mkdir(parent, 0700) != 0 && errno != EEXIST) {
			free(parent);
			goto fail;
		}
	}
	free(parent);
	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		return 0;
	}
fail:
	rv = -errno;
	corral_errf(errmsg, size, "create %s: %s", dir, strerror(-rv));
	return rv;
}

int cli_conf_save(struct cli_conf *conf, char *errmsg, size_t errmsg_size)
{
	char why[CORRAL_ERRMSG_SIZE];
	char *path;
	char *text;
	int rv;

	rv = make_dir(conf->dir, errmsg, errmsg_size);
	if (rv != 0) {
		return rv;
	}
	path = cli_conf_path(conf, "config.json");
	text = json_dumps(conf->doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (path == NULL || text == NULL) {
		free(path);
		free(text);
		corral_errf(errmsg, errmsg_size, "out of memory");
		return -ENOMEM;
	}
	rv = cert_write_file(path, text, strlen(text), 0600, why);
	if (rv != 0) {
		corral_errf(errmsg, errmsg_size, "write %s: %s", path, why);
	}
	free(text);
	free(path);
	return rv;
}

char *cli_conf_path(const struct cli_conf *conf, const char *name)
{
	char *path;

	if (asprintf(&path, "%s/%s", conf->dir, name) < 0) {
		return NULL;
	}
	return path;
}

json_t *cli_conf_remote(const struct cli_conf *conf, const char *name)
{
	return json_object_get(json_object_get(conf->doc, "remotes"), name);
}

const char *cli_conf_default(const struct cli_conf *conf)
{
	const char *def =
	    json_string_value(json_object_get(conf->doc, "default-remote"));

	return def != NULL ? def : CLI_LOCAL_REMOTE;
}

int cli_conf_ensure_cert(struct cli_conf *conf,
			 char *errmsg,
			 size_t errmsg_size)
{
	char why[CORRAL_ERRMSG_SIZE];
	char *crt;
	char *key;
	bool generated;
	bool have;
	int rv;

	rv = make_dir(conf->dir, errmsg, errmsg_size);
	if (rv != 0) {
		return rv;
	}
	crt = cli_conf_path(conf, "client.crt");
	key = cli_conf_path(conf, "client.key");
	if (crt == NULL || key == NULL) {
		free(crt);
		free(key);
		corral_errf(errmsg, errmsg_size, "out of memory");
		return -ENOMEM;
	}
	have = access(crt, F_OK) == 0 && access(key, F_OK) == 0;
	free(crt);
	free(key);
	if (!have) {
		fprintf(stderr,
			"Generating a client certificate. This may "
			"take a minute...\n");
	}
	rv =
	    cert_ensure(conf->dir, "client.crt", "client.key", &generated, why);
	if (rv != 0) {
		corral_errf(errmsg, errmsg_size,
			    "generate the client certificate in %s: %s",
			    conf->dir, why);
	}
	return rv;
}

void cli_conf_close(struct cli_conf *conf)
{
	if (conf == NULL) {
		return;
	}
	free(conf->dir);
	json_decref(conf->doc);
	memset(conf, 0, sizeof *conf);
}
