/* The client's configuration (DESIGN.md section 5): the config dir
 * ($CORRAL_CONF, else ~/.config/corral) with client.crt/client.key,
 * config.json and servercerts/NAME.crt.
 *
 * config.json:
 *   {"default-remote": "local",
 *    "remotes": {"local": {"addr": "unix://"},
 *                "NAME": {"addr": "https://IP:PORT", "fingerprint": FP}}}
 * A remote reached over HTTPS is pinned to the server certificate's
 * fingerprint, or (PKI mode, no fingerprint) checked against client.ca.
 *
 * The functions of this file's first half are pure (no I/O). */
#ifndef CORRAL_CLI_CONF_H
#define CORRAL_CLI_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The remote that is always there: the local daemon's Unix socket. */
#define CLI_LOCAL_REMOTE "local"

/* Default port of an HTTPS address. */
#define CLI_DEFAULT_PORT "8443"

/* Parse the text of config.json (@len bytes at @text) into a new
 * normalized document in *@out (owned by the caller): "default-remote" a
 * string naming a remote, "remotes" an object of objects each with a
 * string "addr" ("unix://[PATH]" or "https://HOST:PORT") and, for HTTPS, an
 * optional "fingerprint" of 64 lowercase hex digits; the "local" remote is
 * added when missing; unknown members are kept. Returns 0, -ENOMEM, or
 * CORRAL_EINVALID with the reason in @errmsg (of @errmsg_size bytes). */
int cli_conf_parse(const char *text,
		   size_t len,
		   json_t **out,
		   char *errmsg,
		   size_t errmsg_size);

/* A new document with only the local remote as the default, or NULL on
 * ENOMEM. */
json_t *cli_conf_new(void);

/* Whether @name may name a remote: 1 to 64 characters, none of them ':',
 * '/', whitespace or a control character, and not starting with '-'. */
bool cli_remote_name_ok(const char *name);

/* Turn what a user typed for `remote add` (IP, host name, "HOST:PORT",
 * "[V6]:PORT", "https://..." with an optional trailing '/') into
 * "https://HOST:PORT" in *@out (malloc()), the port defaulting to 8443.
 * Returns 0, -ENOMEM or CORRAL_EINVALID. */
int cli_addr_normalize(const char *in, char **out);

/* Split the normalized "https://HOST:PORT" @addr into *@host (without
 * brackets) and *@port, both malloc()ed. Returns 0, -ENOMEM or
 * CORRAL_EINVALID. */
int cli_addr_split(const char *addr, char **host, char **port);

/* ---- Files ---- */

/* The client's configuration as loaded from its directory. */
struct cli_conf {
	char *dir;   /* owned, the config dir (may not exist yet) */
	json_t *doc; /* owned, normalized config.json (defaults if absent) */
};

/* Find the config dir and load config.json from it (a missing file gives
 * the defaults; nothing is created). Returns 0, -ENOMEM, or another code
 * with the reason in @errmsg (of @errmsg_size bytes). */
int cli_conf_load(struct cli_conf *conf, char *errmsg, size_t errmsg_size);

/* Write config.json (mode 0600) atomically, creating the directory (mode
 * 0700) when needed. Returns 0 or a negative code with @errmsg set. */
int cli_conf_save(struct cli_conf *conf, char *errmsg, size_t errmsg_size);

/* The path of @name inside the config dir, malloc()ed, or NULL. */
char *cli_conf_path(const struct cli_conf *conf, const char *name);

/* The remote called @name (borrowed from conf->doc), or NULL. */
json_t *cli_conf_remote(const struct cli_conf *conf, const char *name);

/* The name of the default remote (borrowed). */
const char *cli_conf_default(const struct cli_conf *conf);

/* Make sure client.crt and client.key exist in the config dir (created
 * with mode 0700), generating an EC P-384 pair on first use and saying so
 * on stderr, like lxc. Returns 0 or a negative code with @errmsg set. */
int cli_conf_ensure_cert(struct cli_conf *conf,
			 char *errmsg,
			 size_t errmsg_size);

/* Free what @conf owns. Accepts a zeroed struct. */
void cli_conf_close(struct cli_conf *conf);

#endif /* CORRAL_CLI_CONF_H */
