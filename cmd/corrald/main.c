/* corrald: the corral daemon. Parse flags, initialise the modules in order,
 * run the loop, close in reverse. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <corral/api.h>
#include <corral/cert.h>
#include <corral/cluster.h>
#include <corral/daemon.h>
#include <corral/err.h>
#include <corral/log.h>
#include <corral/state.h>
#include <corral/version.h>

struct daemon {
	uv_loop_t loop;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	struct api *api;
	struct state *state;
	struct cluster *cluster;
	bool stopping;
	int exit_code;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: corrald [--state-dir DIR] [--group NAME] [--debug] "
		"[--log-file FILE] [--recover]\n"
		"\n"
		"  --state-dir DIR  state directory (default $CORRAL_DIR, "
		"else /var/lib/corral)\n"
		"  --group NAME     group owning the Unix socket (default "
		"corral if it exists)\n"
		"  --debug          log every request\n"
		"  --log-file FILE  log to FILE instead of stderr\n"
		"  --recover        with corrald stopped: make this member "
		"the only\n"
		"                   database voter after quorum loss, then "
		"exit\n"
		"  --version        print the version\n");
}

static void state_stopped_cb(void *arg)
{
	(void)arg;
}

static void api_closed_cb(void *arg)
{
	struct daemon *d = arg;

	state_stop(d->state, state_stopped_cb, d);
}

static void daemon_stop(struct daemon *d)
{
	if (d->stopping) {
		return;
	}
	d->stopping = true;
	api_close(d->api, api_closed_cb, d);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void on_state_ready(void *arg, int rv, const char *errmsg)
{
	struct daemon *d = arg;

	if (d->stopping) {
		return; /* a signal came first: not an error */
	}
	if (rv != 0) {
		log_error("msg=\"database start failed\" error=\"%s\"", errmsg);
		fprintf(stderr, "Error: database: %s\n", errmsg);
		d->exit_code = 1;
		daemon_stop(d);
		return;
	}
	api_state_ready(d->api);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		uv_close(h, NULL);
	}
}

static void signal_cb(uv_signal_t *sig, int signum)
{
	struct daemon *d = sig->data;

	log_info("msg=\"shutting down\" signal=%d", signum);
	daemon_stop(d);
}

/* --recover: with the daemon stopped (the state dir is locked), make this
 * member the only voter of the raft configuration and say so. */
static int recover_run(const char *dir, int lock_fd)
{
	struct state_config scfg = { .dir = dir };
	struct state *s = NULL;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char address[256] = "";
	uint64_t id = 0;
	int rv;

	rv = state_create(NULL, &scfg, &s, errmsg);
	if (rv != 0) {
		goto out;
	}
	rv = state_recover(s, &id, address, sizeof address, errmsg);
	state_destroy(s);
out:
	node_dir_unlock(dir, lock_fd);
	if (rv != 0) {
		fprintf(stderr, "Error: recover: %s\n", errmsg);
		log_close();
		return 1;
	}
	printf(
	    "Recovered the database of %s: this member (raft node %llu at "
	    "%s) is now\nthe only database voter. Start corrald on it; "
	    "the other members are out of\nthe raft configuration "
	    "(remove them with `corral cluster remove --force`).\n",
	    dir, (unsigned long long)id, address);
	log_close();
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "group", required_argument, NULL, 'g' },
		{ "debug", no_argument, NULL, 'd' },
		{ "log-file", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "recover", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { 0 };
	struct api_config cfg = { 0 };
	struct state_config scfg = { 0 };
	struct cluster_config ccfg = { 0 };
	const char *dir = getenv("CORRAL_DIR");
	const char *group = NULL;
	const char *log_file = NULL;
	char errmsg[CORRAL_ERRMSG_SIZE] = "";
	char path[4096];
	char socket_path[4096];
	char fingerprint[65];
	char *pem = NULL;
	size_t pem_len;
	bool debug = false;
	bool recover = false;
	bool generated;
	int lock_fd = -1;
	int c;
	int rv;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			dir = optarg;
			break;
		case 'g':
			group = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 'l':
			log_file = optarg;
			break;
		case 'R':
			recover = true;
			break;
		case 'V':
			printf("%s\n", CORRAL_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (dir == NULL || dir[0] == '\0') {
		dir = "/var/lib/corral";
	}
	signal(SIGPIPE, SIG_IGN);
	/* dqlite's raft connects and our database work share libuv's thread
	 * pool; member channel dials may block for seconds. */
	setenv("UV_THREADPOOL_SIZE", "16", 0);

	if (log_init(log_file, debug) != 0) {
		fprintf(stderr, "Error: cannot open log file %s\n", log_file);
		return 1;
	}
	rv = node_socket_group(group, &cfg.socket_gid, &cfg.have_gid, errmsg);
	if (rv != 0) {
		goto err;
	}
	rv = node_dir_init(dir, errmsg);
	if (rv != 0) {
		goto err;
	}
	rv = node_dir_lock(dir, &lock_fd, errmsg);
	if (rv != 0) {
		goto err;
	}
	if (recover) {
		return recover_run(dir, lock_fd);
	}
	rv = cert_ensure(dir, "server.crt", "server.key", &generated, errmsg);
	if (rv != 0) {
		goto err_after_lock;
	}
	snprintf(path, sizeof path, "%s/server.crt", dir);
	rv = cert_read_file(path, &pem, &pem_len);
	if (rv != 0 || cert_fingerprint_pem(pem, pem_len, fingerprint) != 0) {
		corral_errf(errmsg, sizeof errmsg, "read %s: %s", path,
			    corral_strerror(rv));
		rv = rv != 0 ? rv : CORRAL_EINVALID;
		goto err_after_lock;
	}
	if (generated) {
		log_info(
		    "msg=\"generated server certificate\" "
		    "fingerprint=%s",
		    fingerprint);
	}

	rv = uv_loop_init(&d.loop);
	if (rv != 0) {
		corral_errf(errmsg, sizeof errmsg, "uv_loop_init(): %s",
			    uv_strerror(rv));
		goto err_after_pem;
	}
	snprintf(socket_path, sizeof socket_path, "%s/unix.socket", dir);
	scfg.dir = dir;
	rv = state_create(&d.loop, &scfg, &d.state, errmsg);
	if (rv != 0) {
		goto err_after_loop;
	}
	ccfg.state_dir = dir;
	ccfg.state = d.state;
	rv = cluster_create(&d.loop, &ccfg, &d.cluster, errmsg);
	if (rv != 0) {
		goto err_after_state;
	}
	cfg.state = d.state;
	cfg.cluster = d.cluster;
	cfg.state_dir = dir;
	cfg.socket_path = socket_path;
	cfg.cert_pem = pem;
	cfg.cert_fingerprint = fingerprint;
	rv = api_create(&d.loop, &cfg, &d.api, errmsg);
	if (rv != 0) {
		goto err_after_cluster;
	}
	rv = api_start(d.api, errmsg);
	if (rv != 0) {
		goto err_after_api;
	}
	api_set_ready(d.api, false, "starting the database");
	rv = state_start(d.state, on_state_ready, &d);
	if (rv != 0) {
		corral_errf(errmsg, sizeof errmsg, "start database: %s",
			    uv_strerror(rv));
		goto err_after_api;
	}

	uv_signal_init(&d.loop, &d.sigterm);
	uv_signal_init(&d.loop, &d.sigint);
	d.sigterm.data = &d;
	d.sigint.data = &d;
	uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&d.sigint, signal_cb, SIGINT);
	log_info("msg=\"corrald started\" version=%s dir=%s", CORRAL_VERSION,
		 dir);

	uv_run(&d.loop, UV_RUN_DEFAULT);

	log_info("msg=\"corrald stopped\"");
	api_destroy(d.api);
	state_destroy(d.state);
	cluster_destroy(d.cluster);
	uv_loop_close(&d.loop);
	free(pem);
	node_dir_unlock(dir, lock_fd);
	log_close();
	return d.exit_code;

err_after_api:
	d.stopping = true;
	api_close(d.api, api_closed_cb, &d);
	uv_walk(&d.loop, close_walk_cb, NULL);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	api_destroy(d.api);
err_after_cluster:
	cluster_destroy(d.cluster);
err_after_state:
	state_destroy(d.state);
err_after_loop:
	uv_loop_close(&d.loop);
err_after_pem:
	free(pem);
err_after_lock:
	node_dir_unlock(dir, lock_fd);
err:
	log_error("msg=\"startup failed\" error=\"%s\"", errmsg);
	if (log_file != NULL) {
		fprintf(stderr, "Error: %s\n", errmsg);
	}
	log_close();
	return 1;
}
