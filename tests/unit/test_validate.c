/* Unit tests of api/validate.c: names, config maps and devices. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "corral/err.h"

#include "validate.h"

/* One key/value pair and the expected outcome. On refusal the message
 * must name the key and contain @want (when not NULL). */
struct kv_case {
	const char *key;
	const char *value;
	bool ok;
	const char *want;
};

typedef int (*config_fn)(json_t *config, char *errmsg);

static void assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL) {
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
	}
}

static void run_kv_cases(config_fn fn, const struct kv_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char errmsg[CORRAL_ERRMSG_SIZE] = "";
		char quoted[128];
		json_t *config = json_object();
		int rv;

		assert_non_null(config);
		assert_int_equal(
		    json_object_set_new(config, cases[i].key,
					json_string(cases[i].value)),
		    0);
		rv = fn(config, errmsg);
		if (cases[i].ok && rv != 0) {
			fail_msg("%s=\"%s\" refused: %s", cases[i].key,
				 cases[i].value, errmsg);
		}
		if (!cases[i].ok) {
			if (rv != CORRAL_EINVALID) {
				fail_msg("%s=\"%s\" accepted", cases[i].key,
					 cases[i].value);
			}
			snprintf(quoted, sizeof(quoted), "\"%s\"",
				 cases[i].key);
			assert_contains(errmsg, quoted);
			if (cases[i].want != NULL) {
				assert_contains(errmsg, cases[i].want);
			}
		}
		json_decref(config);
	}
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_name(void **state)
{
	static const struct {
		const char *kind;
		const char *name;
		bool ok;
	} cases[] = {
		{ "project", "default", true },
		{ "project", "web-1", true },
		{ "project", "a.b", true },
		{ "project", "A", true },
		{ "project",
		  "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123",
		  true },
		{ "project",
		  "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234",
		  false },
		{ "project", "", false },
		{ "project", ".", false },
		{ "project", "..", false },
		{ "project", "*", false },
		{ "project", "a/b", false },
		{ "project", "a b", false },
		{ "project", "a\tb", false },
		{ "project", "a\nb", false },
		{ "project", "a\x7f", false },
		{ "project", "a?b", false },
		{ "project", "a#b", false },
		{ "project", "a%b", false },
		{ "project", "a\\b", false },
		{ "project", "a*b", false },
		{ "project", "a'b", false },
		{ "project", "a\"b", false },
		{ "project", "-a", false },
		{ "project", "a_b", false },
		{ "project", "caf\xc3\xa9", false },
		{ "profile", "a_b", true },
		{ "profile", "default", true },
		{ "profile", "*", false },
		{ "profile", "a/b", false },
		{ "profile", "-x", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		char errmsg[CORRAL_ERRMSG_SIZE] = "";
		int rv = validate_name(cases[i].kind, cases[i].name, errmsg);

		if (cases[i].ok && rv != 0) {
			fail_msg("%s name \"%s\" refused: %s", cases[i].kind,
				 cases[i].name, errmsg);
		}
		if (!cases[i].ok) {
			if (rv != CORRAL_EINVALID) {
				fail_msg("%s name \"%s\" accepted",
					 cases[i].kind, cases[i].name);
			}
			assert_contains(errmsg, cases[i].kind);
		}
	}
}

static void test_name_messages(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE];

	(void)state;
	assert_int_equal(validate_name("profile", "a/b", errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(
	    errmsg, "invalid profile name \"a/b\": must not contain '/'");
	assert_int_equal(validate_name("project", "x_y", errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(
	    errmsg, "invalid project name \"x_y\": must not contain '_'");
}

static void test_string_map(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	json_t *obj;

	(void)state;
	assert_int_equal(validate_string_map(NULL, "config", errmsg), 0);
	obj = json_null();
	assert_int_equal(validate_string_map(obj, "config", errmsg), 0);
	json_decref(obj);

	obj = json_array();
	assert_int_equal(validate_string_map(obj, "config", errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(errmsg, "config: must be a JSON object");
	json_decref(obj);

	obj = json_pack("{s:s, s:s}", "a", "1", "b", "");
	assert_int_equal(validate_string_map(obj, "config", errmsg), 0);
	json_decref(obj);

	obj = json_pack("{s:s, s:i}", "a", "1", "limits.cpu", 2);
	assert_int_equal(validate_string_map(obj, "config", errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(errmsg,
			    "config: value of \"limits.cpu\" must be a string");
	json_decref(obj);

	obj = json_pack("{s:b}", "boot.autostart", 1);
	assert_int_equal(validate_string_map(obj, "device \"eth0\"", errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(
	    errmsg,
	    "device \"eth0\": value of \"boot.autostart\" must be a string");
	json_decref(obj);

	obj = json_pack("{s:n}", "x", NULL);
	assert_int_equal(validate_string_map(obj, "config", errmsg),
			 CORRAL_EINVALID);
	json_decref(obj);

	obj = json_pack("{s:{}}", "x");
	assert_int_equal(validate_string_map(obj, "config", errmsg),
			 CORRAL_EINVALID);
	json_decref(obj);

	/* "true\0x" must not pass as "true". */
	obj = json_object();
	json_object_set_new(obj, "security.nesting",
			    json_stringn("true\0x", 6));
	assert_int_equal(validate_string_map(obj, "config", errmsg),
			 CORRAL_EINVALID);
	assert_contains(errmsg, "\"security.nesting\"");
	assert_int_equal(validate_instance_config(obj, errmsg),
			 CORRAL_EINVALID);
	json_decref(obj);
}

static void test_config_shape(void **state)
{
	static const config_fn fns[] = { validate_server_config,
					 validate_instance_config,
					 validate_project_config };
	char errmsg[CORRAL_ERRMSG_SIZE];
	json_t *obj;
	size_t i;

	(void)state;
	for (i = 0; i < N(fns); i++) {
		assert_int_equal(fns[i](NULL, errmsg), 0);
		obj = json_object();
		assert_int_equal(fns[i](obj, errmsg), 0);
		json_decref(obj);
		obj = json_string("x");
		assert_int_equal(fns[i](obj, errmsg), CORRAL_EINVALID);
		json_decref(obj);
		obj = json_pack("{s:i}", "user.x", 1);
		assert_int_equal(fns[i](obj, errmsg), CORRAL_EINVALID);
		assert_contains(errmsg, "\"user.x\"");
		json_decref(obj);
	}
}

static void test_server_config(void **state)
{
	static const struct kv_case cases[] = {
		{ "core.https_address", "", true, NULL },
		{ "core.https_address", "127.0.0.1:8443", true, NULL },
		{ "core.https_address", ":8443", true, NULL },
		{ "core.https_address", "[::1]:8443", true, NULL },
		{ "core.https_address", "host:99999", false, "port" },
		{ "cluster.https_address", "10.0.0.1:0", true, NULL },
		{ "cluster.https_address", "a b", false, NULL },
		{ "core.trust_password", "anything at all", true, NULL },
		{ "core.trust_ca_certificates", "true", true, NULL },
		{ "core.trust_ca_certificates", "false", true, NULL },
		{ "core.trust_ca_certificates", "yes", false,
		  "must be \"true\" or \"false\"" },
		{ "core.trust_ca_certificates", "TRUE", false, NULL },
		{ "core.trust_ca_certificates", "1", false, NULL },
		{ "core.remote_token_expiry", "24H", true, NULL },
		{ "core.remote_token_expiry", "1d 12H", true, NULL },
		{ "core.remote_token_expiry", "30M", true, NULL },
		{ "core.remote_token_expiry", "2w", true, NULL },
		{ "core.remote_token_expiry", "1y", true, NULL },
		{ "core.remote_token_expiry", "24", false, "duration" },
		{ "core.remote_token_expiry", "H", false, NULL },
		{ "core.remote_token_expiry", "1h", false, NULL },
		{ "core.remote_token_expiry", "1D", false, NULL },
		{ "core.remote_token_expiry", "-1H", false, NULL },
		{ "cluster.join_token_expiry", "3H", true, NULL },
		{ "cluster.join_token_expiry", "3H ", false, NULL },
		{ "cluster.join_token_expiry", "1d  3H", false, NULL },
		{ "cluster.offline_threshold", "1", true, NULL },
		{ "cluster.offline_threshold", "20", true, NULL },
		{ "cluster.offline_threshold", "0", false, "between 1 and" },
		{ "cluster.offline_threshold", "-3", false, NULL },
		{ "cluster.offline_threshold", "3s", false, NULL },
		{ "cluster.offline_threshold", "99999999999999999999999", false,
		  NULL },
		{ "cluster.max_voters", "3", true, NULL },
		{ "cluster.max_voters", "5", true, NULL },
		{ "cluster.max_voters", "4", false, "odd" },
		{ "cluster.max_voters", "1", false, NULL },
		{ "cluster.max_standby", "0", true, NULL },
		{ "cluster.max_standby", "5", true, NULL },
		{ "cluster.max_standby", "6", false, "between 0 and 5" },
		{ "corral.notify_timeout", "0", true, NULL },
		{ "corral.notify_timeout", "60000", true, NULL },
		{ "corral.notify_timeout", "60001", false, NULL },
		{ "corral.stale_bound", "100", true, NULL },
		{ "corral.stale_bound", "99", false, NULL },
		{ "corral.raft_latency_ms", "1", true, NULL },
		{ "corral.raft_latency_ms", "10000", true, NULL },
		{ "corral.raft_latency_ms", "0", false, NULL },
		{ "corral.raft_latency_ms", "10001", false, NULL },
		{ "corral.max_body_size", "4096", true, NULL },
		{ "corral.max_body_size", "1073741824", true, NULL },
		{ "corral.max_body_size", "4095", false, NULL },
		{ "corral.max_body_size", "1073741825", false, NULL },
		{ "corral.max_body_size", "0x1000", false, NULL },
		{ "corral.max_body_size", " 4096", false, NULL },
		{ "foo.bar", "1", false, "unknown config key" },
		{ "user.x", "1", false, "unknown config key" },
		{ "core.https_address.x", "", false, "unknown config key" },
	};

	(void)state;
	run_kv_cases(validate_server_config, cases, N(cases));
}

static void test_server_messages(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	json_t *config;

	(void)state;
	config = json_pack("{s:s}", "foo.bar", "1");
	assert_int_equal(validate_server_config(config, errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(errmsg, "unknown config key \"foo.bar\"");
	json_decref(config);

	config = json_pack("{s:s}", "core.trust_ca_certificates", "yes");
	assert_int_equal(validate_server_config(config, errmsg),
			 CORRAL_EINVALID);
	assert_string_equal(
	    errmsg,
	    "invalid value for \"core.trust_ca_certificates\": must be \"true\" or \"false\"");
	json_decref(config);

	/* The trust password is never refused, so never echoed; other
	 * refusals do not repeat the value either. */
	config = json_pack("{s:s}", "cluster.max_standby", "secret9");
	assert_int_equal(validate_server_config(config, errmsg),
			 CORRAL_EINVALID);
	assert_null(strstr(errmsg, "secret9"));
	json_decref(config);
}

static void test_server_defaults(void **state)
{
	static const struct {
		const char *key;
		const char *def;
		bool local;
	} cases[] = {
		{ "core.https_address", "", true },
		{ "cluster.https_address", "", true },
		{ "core.trust_password", "", false },
		{ "core.trust_ca_certificates", "false", false },
		{ "core.remote_token_expiry", "24H", false },
		{ "cluster.join_token_expiry", "3H", false },
		{ "cluster.offline_threshold", "3", false },
		{ "cluster.max_voters", "3", false },
		{ "cluster.max_standby", "2", false },
		{ "corral.notify_timeout", "2000", false },
		{ "corral.stale_bound", "3000", false },
		{ "corral.raft_latency_ms", "20", false },
		{ "corral.max_body_size", "8388608", false },
	};
	char errmsg[CORRAL_ERRMSG_SIZE];
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		json_t *config;
		const char *def = validate_server_default(cases[i].key);

		assert_non_null(def);
		assert_string_equal(def, cases[i].def);
		assert_int_equal(validate_server_key_is_local(cases[i].key),
				 cases[i].local);
		/* Every default is itself a valid value. */
		config = json_pack("{s:s}", cases[i].key, def);
		assert_int_equal(validate_server_config(config, errmsg), 0);
		json_decref(config);
	}
	assert_null(validate_server_default("foo.bar"));
	assert_null(validate_server_default("core"));
	assert_false(validate_server_key_is_local("foo.bar"));
}

static void test_address(void **state)
{
	static const struct {
		const char *value;
		bool ok;
	} cases[] = {
		{ "", true },
		{ "localhost", true },
		{ "node1.example.com", true },
		{ "node1.example.com:8443", true },
		{ "127.0.0.1", true },
		{ "127.0.0.1:8443", true },
		{ "0.0.0.0:8443", true },
		{ ":8443", true },
		{ ":0", true },
		{ "[::]:8443", true },
		{ "[::1]", true },
		{ "[fe80::1]:65535", true },
		{ "::", true },
		{ "2001:db8::1", true },
		{ "host:65536", false },
		{ "host:", false },
		{ ":", false },
		{ "host:-1", false },
		{ "host:8443x", false },
		{ "[::1", false },
		{ "[::1]8443", false },
		{ "[::1]:", false },
		{ "[1.2.3.4]:80", false },
		{ "[]:80", false },
		{ "999.1.1.1", false },
		{ "1.2.3", false },
		{ "-host", false },
		{ "host-", false },
		{ "a..b", false },
		{ ".host", false },
		{ "ho st", false },
		{ "ho_st", false },
		{ "2001:db8::zz", false },
		{ "a:b:c", false },
		{ "http://host", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		char errmsg[CORRAL_ERRMSG_SIZE] = "";
		int rv = validate_address("core.https_address", cases[i].value,
					  errmsg);

		if (cases[i].ok && rv != 0) {
			fail_msg("\"%s\" refused: %s", cases[i].value, errmsg);
		}
		if (!cases[i].ok) {
			if (rv != CORRAL_EINVALID) {
				fail_msg("\"%s\" accepted", cases[i].value);
			}
			assert_contains(errmsg, "\"core.https_address\"");
		}
	}
}

static void test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		int rv;
		int64_t seconds;
	} cases[] = {
		{ "0S", 0, 0 },
		{ "90S", 0, 90 },
		{ "30M", 0, 1800 },
		{ "24H", 0, 86400 },
		{ "1d", 0, 86400 },
		{ "2w", 0, 14 * 86400 },
		{ "1m", 0, 30 * 86400 },
		{ "1y", 0, 365 * 86400 },
		{ "1d 3H", 0, 86400 + 3 * 3600 },
		{ "1H 1M 1S", 0, 3661 },
		{ "", -EINVAL, 0 },
		{ "1", -EINVAL, 0 },
		{ "H", -EINVAL, 0 },
		{ "1x", -EINVAL, 0 },
		{ "1HH", -EINVAL, 0 },
		{ " 1H", -EINVAL, 0 },
		{ "1H ", -EINVAL, 0 },
		{ "1H,2M", -EINVAL, 0 },
		{ "+1H", -EINVAL, 0 },
		{ "99999999999999999999y", -EINVAL, 0 },
		{ "9223372036854775807S 1S", -EINVAL, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		int64_t seconds = -1;
		int rv = validate_parse_duration(cases[i].s, &seconds);

		if (rv != cases[i].rv) {
			fail_msg("\"%s\": rv %d", cases[i].s, rv);
		}
		if (rv == 0) {
			assert_int_equal(seconds, cases[i].seconds);
		}
	}
	assert_int_equal(validate_parse_duration("3H", NULL), 0);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		int rv;
		uint64_t bytes;
	} cases[] = {
		{ "0", 0, 0 },
		{ "1024", 0, 1024 },
		{ "10B", 0, 10 },
		{ "1kB", 0, 1000 },
		{ "1MB", 0, 1000000 },
		{ "1GB", 0, 1000000000 },
		{ "2TB", 0, 2000000000000ULL },
		{ "1KiB", 0, 1024 },
		{ "512MiB", 0, 512ULL << 20 },
		{ "3GiB", 0, 3ULL << 30 },
		{ "1TiB", 0, 1ULL << 40 },
		{ "7EiB", 0, 7ULL << 60 },
		{ "8EiB", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "MiB", -EINVAL, 0 },
		{ "1KB", -EINVAL, 0 },
		{ "1mib", -EINVAL, 0 },
		{ "1 MiB", -EINVAL, 0 },
		{ "1.5GiB", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "1GiBx", -EINVAL, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		uint64_t bytes = 12345;
		int rv = validate_parse_size(cases[i].s, &bytes);

		if (rv != cases[i].rv) {
			fail_msg("\"%s\": rv %d", cases[i].s, rv);
		}
		if (rv == 0) {
			assert_true(bytes == cases[i].bytes);
		}
	}
}

static void test_instance_config(void **state)
{
	static const struct kv_case cases[] = {
		{ "security.privileged", "true", true, NULL },
		{ "security.privileged", "false", true, NULL },
		{ "security.privileged", "", true, NULL },
		{ "security.privileged", "yes", false,
		  "must be \"true\" or \"false\"" },
		{ "security.privileged", "TRUE", false, NULL },
		{ "security.privileged", "True", false, NULL },
		{ "security.privileged", "1", false, NULL },
		{ "security.privileged", "true ", false, NULL },
		{ "security.nesting", "on", false, NULL },
		{ "security.idmap.isolated", "true", true, NULL },
		{ "security.idmap.isolated", "0", false, NULL },
		{ "security.idmap.base", "100000", true, NULL },
		{ "security.idmap.base", "0", true, NULL },
		{ "security.idmap.base", "4294967295", true, NULL },
		{ "security.idmap.base", "4294967296", false, NULL },
		{ "security.idmap.base", "-1", false, NULL },
		{ "security.idmap.size", "65536", true, NULL },
		{ "security.idmap.size", "lots", false, "integer" },
		{ "raw.lxc", "lxc.apparmor.profile=unconfined\n", true, NULL },
		{ "raw.idmap", "both 1000 1000", true, NULL },
		{ "limits.cpu", "2", true, NULL },
		{ "limits.cpu", "1", true, NULL },
		{ "limits.cpu", "0-3", true, NULL },
		{ "limits.cpu", "0-0", true, NULL },
		{ "limits.cpu", "0,2", true, NULL },
		{ "limits.cpu", "0-1,4,6-7", true, NULL },
		{ "limits.cpu", "0", false, "CPU" },
		{ "limits.cpu", "3-1", false, NULL },
		{ "limits.cpu", "0-", false, NULL },
		{ "limits.cpu", "-3", false, NULL },
		{ "limits.cpu", "0,", false, NULL },
		{ "limits.cpu", ",0", false, NULL },
		{ "limits.cpu", "0,,1", false, NULL },
		{ "limits.cpu", "0-1-2", false, NULL },
		{ "limits.cpu", "0, 1", false, NULL },
		{ "limits.cpu", "two", false, NULL },
		{ "limits.cpu", "1.5", false, NULL },
		{ "limits.cpu", "70000", false, NULL },
		{ "limits.memory", "512MiB", true, NULL },
		{ "limits.memory", "1GB", true, NULL },
		{ "limits.memory", "1073741824", true, NULL },
		{ "limits.memory", "50%", true, NULL },
		{ "limits.memory", "100%", true, NULL },
		{ "limits.memory", "0%", false, "percentage" },
		{ "limits.memory", "101%", false, NULL },
		{ "limits.memory", "%", false, NULL },
		{ "limits.memory", "0", false, NULL },
		{ "limits.memory", "0MiB", false, NULL },
		{ "limits.memory", "1G", false, "size" },
		{ "limits.memory", "512 MiB", false, NULL },
		{ "limits.memory", "-1GB", false, NULL },
		{ "limits.processes", "500", true, NULL },
		{ "limits.processes", "0", false, NULL },
		{ "limits.processes", "max", false, NULL },
		{ "boot.autostart", "false", true, NULL },
		{ "boot.autostart", "no", false, NULL },
		{ "user.comment", "anything", true, NULL },
		{ "user.a.b.c", "", true, NULL },
		{ "user.", "x", false, "unknown config key" },
		{ "user", "x", false, "unknown config key" },
		{ "volatile.eth0.hwaddr", "00:16:3e:00:00:01", false,
		  "volatile keys cannot be set" },
		{ "volatile.idmap.base", "0", false, NULL },
		{ "security.bogus", "true", false, "unknown config key" },
		{ "core.https_address", ":8443", false, "unknown config key" },
		{ "features.images", "true", false, NULL },
	};

	(void)state;
	run_kv_cases(validate_instance_config, cases, N(cases));
}

static void test_instance_message(void **state)
{
	char errmsg[CORRAL_ERRMSG_SIZE];
	json_t *config;

	(void)state;
	config =
	    json_pack("{s:s, s:s}", "limits.cpu", "2", "limits.memory", "lots");
	assert_int_equal(validate_instance_config(config, errmsg),
			 CORRAL_EINVALID);
	assert_contains(errmsg, "invalid value for \"limits.memory\": ");
	json_decref(config);
}

static void test_project_config(void **state)
{
	static const struct kv_case cases[] = {
		{ "features.images", "true", true, NULL },
		{ "features.profiles", "false", true, NULL },
		{ "features.storage.volumes", "true", true, NULL },
		{ "features.networks", "false", true, NULL },
		{ "features.networks", "yes", false,
		  "must be \"true\" or \"false\"" },
		{ "features.images", "1", false, NULL },
		{ "restricted", "true", true, NULL },
		{ "restricted", "TRUE", false, NULL },
		{ "restricted.containers.privilege", "unprivileged", true,
		  NULL },
		{ "restricted.containers.privilege", "isolated", true, NULL },
		{ "restricted.containers.privilege", "allow", true, NULL },
		{ "restricted.containers.privilege", "block", false,
		  "must be \"unprivileged\", \"isolated\" or \"allow\"" },
		{ "restricted.devices.disk", "block", true, NULL },
		{ "restricted.devices.disk", "managed", true, NULL },
		{ "restricted.devices.disk", "allow", true, NULL },
		{ "restricted.devices.disk", "Allow", false, NULL },
		{ "restricted.devices.nic", "managed", true, NULL },
		{ "restricted.devices.nic", "deny", false, NULL },
		{ "restricted.devices.nic.filtering", "allow", true, NULL },
		{ "restricted.devices.nic.filtering", "enforce", true, NULL },
		{ "restricted.devices.nic.filtering", "true", false,
		  "must be \"allow\" or \"enforce\"" },
		{ "restricted.idmap.uid", "1000", true, NULL },
		{ "restricted.idmap.uid", "1000-2000", true, NULL },
		{ "restricted.idmap.uid", "0,1000-2000,3000", true, NULL },
		{ "restricted.idmap.uid", "4294967295", true, NULL },
		{ "restricted.idmap.uid", "4294967296", false, NULL },
		{ "restricted.idmap.uid", "2000-1000", false, NULL },
		{ "restricted.idmap.gid", "1000-", false, NULL },
		{ "restricted.idmap.gid", "1000,", false, NULL },
		{ "restricted.idmap.gid", "root", false, "ids" },
		{ "user.owner", "alice", true, NULL },
		{ "volatile.x", "1", false, "unknown config key" },
		{ "features.bogus", "true", false, "unknown config key" },
		{ "restricted.devices.gpu", "allow", false,
		  "unknown config key" },
	};

	(void)state;
	run_kv_cases(validate_project_config, cases, N(cases));
}

/* A device map written as JSON, whether it is accepted, and text the
 * message must contain when it is not. */
struct dev_case {
	const char *json;
	bool ok;
	const char *want;
};

static void run_dev_cases(int (*fn)(json_t *, char *),
			  const struct dev_case *cases,
			  size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char errmsg[CORRAL_ERRMSG_SIZE] = "";
		json_error_t error;
		json_t *devices =
		    json_loads(cases[i].json, JSON_DECODE_ANY, &error);
		int rv;

		if (devices == NULL) {
			fail_msg("case %zu: bad JSON: %s", i, error.text);
		}
		rv = fn(devices, errmsg);
		if (cases[i].ok && rv != 0) {
			fail_msg("%s refused: %s", cases[i].json, errmsg);
		}
		if (!cases[i].ok) {
			if (rv != CORRAL_EINVALID) {
				fail_msg("%s accepted", cases[i].json);
			}
			assert_contains(errmsg, cases[i].want);
		}
		json_decref(devices);
	}
}

static void test_devices(void **state)
{
	static const struct dev_case cases[] = {
		{ "{}", true, NULL },
		{ "null", true, NULL },
		{ "[]", false, "devices: must be a JSON object" },
		{ "{\"eth0\": \"nic\"}", false,
		  "device \"eth0\": must be a JSON object" },
		{ "{\"eth0\": {\"type\": \"nic\", \"mtu\": 1500}}", false,
		  "device \"eth0\": value of \"mtu\" must be a string" },
		{ "{\"eth0\": {}}", false,
		  "device \"eth0\": missing key \"type\"" },
		{ "{\"eth0\": {\"type\": \"\"}}", false,
		  "device \"eth0\": missing key \"type\"" },
		{ "{\"gpu0\": {\"type\": \"gpu\"}}", false,
		  "device \"gpu0\": unknown device type \"gpu\"" },
		/* Device names. */
		{ "{\"\": {\"type\": \"none\"}}", false,
		  "invalid device name" },
		{ "{\"a/b\": {\"type\": \"none\"}}", false,
		  "invalid device name \"a/b\"" },
		{ "{\"a b\": {\"type\": \"none\"}}", false,
		  "invalid device name" },
		{ "{\"..\": {\"type\": \"none\"}}", false,
		  "invalid device name" },
		{ "{\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234\": {\"type\": \"none\"}}",
		  true, NULL },
		{ "{\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij12345\": {\"type\": \"none\"}}",
		  false, "invalid device name" },
		/* none. */
		{ "{\"eth0\": {\"type\": \"none\"}}", true, NULL },
		{ "{\"eth0\": {\"type\": \"none\", \"path\": \"/x\"}}", false,
		  "device \"eth0\": unknown key \"path\"" },
		/* nic. */
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"corralbr0\"}}",
		  true, NULL },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"name\": \"eth0\", \"host_name\": \"veth1234\", \"hwaddr\": \"00:16:3E:aa:bb:cc\", \"ipv4.address\": \"10.0.0.2\", \"ipv6.address\": \"fd00::2\", \"mtu\": \"1500\", \"security.mac_filtering\": \"true\", \"security.ipv4_filtering\": \"true\", \"security.ipv6_filtering\": \"false\"}}",
		  true, NULL },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv4.address\": \"10.0.0.2,10.0.0.3\", \"ipv6.address\": \"fd00::2, fd00::3\"}}",
		  true, NULL },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\"}}", true,
		  NULL },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"macvlan\", \"parent\": \"eno1\"}}",
		  true, NULL },
		{ "{\"eth0\": {\"type\": \"nic\"}}", false,
		  "device \"eth0\": missing key \"nictype\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"network\": \"lxdbr0\"}}",
		  false, "device \"eth0\": unknown key \"network\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"physical\", \"parent\": \"eno1\"}}",
		  false, "device \"eth0\": invalid value for \"nictype\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\"}}",
		  false, "device \"eth0\": missing key \"parent\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"macvlan\", \"parent\": \"\"}}",
		  false, "device \"eth0\": missing key \"parent\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"bogus\": \"1\"}}",
		  false, "device \"eth0\": unknown key \"bogus\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.ipv4_filtering\": \"yes\"}}",
		  false,
		  "device \"eth0\": invalid value for \"security.ipv4_filtering\": must be \"true\" or \"false\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.mac_filtering\": \"1\"}}",
		  false, "\"security.mac_filtering\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.ipv6_filtering\": \"TRUE\"}}",
		  false, "\"security.ipv6_filtering\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0/x\"}}",
		  false, "invalid value for \"parent\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"abcdefghijklmnop\"}}",
		  false, "invalid value for \"parent\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"name\": \"eth 0\"}}",
		  false, "invalid value for \"name\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"host_name\": \"a:b\"}}",
		  false, "invalid value for \"host_name\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"00:16:3e:aa:bb\"}}",
		  false, "invalid value for \"hwaddr\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"00-16-3e-aa-bb-cc\"}}",
		  false, "invalid value for \"hwaddr\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"00:16:3e:aa:bb:cg\"}}",
		  false, "invalid value for \"hwaddr\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"00:16:3e:aa:bb:cc:\"}}",
		  false, "invalid value for \"hwaddr\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"01:00:5e:00:00:01\"}}",
		  false, "unicast" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"ff:ff:ff:ff:ff:ff\"}}",
		  false, "unicast" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"hwaddr\": \"00:00:00:00:00:00\"}}",
		  false, "unicast" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv4.address\": \"10.0.0.256\"}}",
		  false, "invalid value for \"ipv4.address\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv4.address\": \"10.0.0.0/24\"}}",
		  false, "invalid value for \"ipv4.address\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv4.address\": \"fd00::1\"}}",
		  false, "invalid value for \"ipv4.address\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv4.address\": \"10.0.0.2,\"}}",
		  false, "invalid value for \"ipv4.address\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv6.address\": \"10.0.0.2\"}}",
		  false, "invalid value for \"ipv6.address\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\", \"ipv6.address\": \"fd00::1%eth0\"}}",
		  false, "invalid value for \"ipv6.address\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"mtu\": \"67\"}}",
		  false,
		  "invalid value for \"mtu\": must be an integer between 68 and 65535" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"mtu\": \"65536\"}}",
		  false, "invalid value for \"mtu\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"p2p\", \"mtu\": \"68\"}}",
		  true, NULL },
		/* disk. */
		{ "{\"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"default\"}}",
		  true, NULL },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt/data\", \"source\": \"/srv/data\", \"readonly\": \"true\", \"required\": \"false\"}}",
		  true, NULL },
		{ "{\"vol\": {\"type\": \"disk\", \"path\": \"/mnt/vol\", \"source\": \"vol1\", \"pool\": \"default\"}}",
		  true, NULL },
		{ "{\"root\": {\"type\": \"disk\", \"path\": \"/\"}}", false,
		  "device \"root\": missing key \"pool\"" },
		{ "{\"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"default\", \"source\": \"/srv\"}}",
		  false, "device \"root\": key \"source\"" },
		{ "{\"a\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"p\"}, \"b\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"p\"}}",
		  false, "more than one root disk" },
		{ "{\"data\": {\"type\": \"disk\", \"source\": \"/srv\"}}",
		  false, "device \"data\": missing key \"path\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\"}}", false,
		  "device \"data\": missing key \"source\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"mnt\", \"source\": \"/srv\"}}",
		  false, "device \"data\": invalid value for \"path\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt/../etc\", \"source\": \"/srv\"}}",
		  false, "invalid value for \"path\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt/..x\", \"source\": \"/srv\"}}",
		  true, NULL },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": \"srv\"}}",
		  false, "device \"data\": invalid value for \"source\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": \"/srv/..\"}}",
		  false, "invalid value for \"source\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": \"a/b\", \"pool\": \"default\"}}",
		  false, "invalid value for \"source\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": \"/srv\", \"readonly\": \"yes\"}}",
		  false, "device \"data\": invalid value for \"readonly\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": \"/srv\", \"required\": \"1\"}}",
		  false, "invalid value for \"required\"" },
		{ "{\"data\": {\"type\": \"disk\", \"path\": \"/mnt\", \"source\": \"/srv\", \"shift\": \"true\"}}",
		  false, "device \"data\": unknown key \"shift\"" },
	};

	(void)state;
	run_dev_cases(validate_devices, cases, N(cases));
}

static void test_nic_filtering_enforced(void **state)
{
	static const struct dev_case cases[] = {
		{ "{}", true, NULL },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.mac_filtering\": \"true\", \"security.ipv4_filtering\": \"true\", \"security.ipv6_filtering\": \"true\"}}",
		  true, NULL },
		/* Only bridged NICs are subject to the rule. */
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"routed\"}, \"eth1\": {\"type\": \"nic\", \"nictype\": \"p2p\"}, \"root\": {\"type\": \"disk\", \"path\": \"/\", \"pool\": \"p\"}, \"x\": {\"type\": \"none\"}}",
		  true, NULL },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\"}}",
		  false,
		  "device \"eth0\": \"security.mac_filtering\" must be \"true\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.mac_filtering\": \"true\", \"security.ipv4_filtering\": \"true\"}}",
		  false, "device \"eth0\": \"security.ipv6_filtering\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.mac_filtering\": \"true\", \"security.ipv4_filtering\": \"false\", \"security.ipv6_filtering\": \"true\"}}",
		  false, "device \"eth0\": \"security.ipv4_filtering\"" },
		{ "{\"eth0\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.mac_filtering\": \"\", \"security.ipv4_filtering\": \"true\", \"security.ipv6_filtering\": \"true\"}}",
		  false, "\"security.mac_filtering\"" },
		{ "{\"a\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\", \"security.mac_filtering\": \"true\", \"security.ipv4_filtering\": \"true\", \"security.ipv6_filtering\": \"true\"}, \"b\": {\"type\": \"nic\", \"nictype\": \"bridged\", \"parent\": \"br0\"}}",
		  false, "device \"b\"" },
	};

	(void)state;
	run_dev_cases(validate_nic_filtering_enforced, cases, N(cases));
}

static void test_apply_project_defaults(void **state)
{
	json_t *config;
	json_t *arr;

	(void)state;
	config = json_pack("{s:s, s:s}", "features.profiles", "false", "user.x",
			   "y");
	assert_int_equal(validate_apply_project_defaults(config), 0);
	assert_int_equal(json_object_size(config), 5);
	assert_string_equal(
	    json_string_value(json_object_get(config, "features.images")),
	    "true");
	assert_string_equal(
	    json_string_value(json_object_get(config, "features.profiles")),
	    "false");
	assert_string_equal(json_string_value(json_object_get(
				config, "features.storage.volumes")),
			    "true");
	assert_string_equal(
	    json_string_value(json_object_get(config, "features.networks")),
	    "false");
	/* Applying twice changes nothing. */
	assert_int_equal(validate_apply_project_defaults(config), 0);
	assert_int_equal(json_object_size(config), 5);
	json_decref(config);

	arr = json_array();
	assert_int_equal(validate_apply_project_defaults(arr), -EINVAL);
	assert_int_equal(validate_apply_project_defaults(NULL), -EINVAL);
	json_decref(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_name_messages),
		cmocka_unit_test(test_string_map),
		cmocka_unit_test(test_config_shape),
		cmocka_unit_test(test_server_config),
		cmocka_unit_test(test_server_messages),
		cmocka_unit_test(test_server_defaults),
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_instance_config),
		cmocka_unit_test(test_instance_message),
		cmocka_unit_test(test_project_config),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_nic_filtering_enforced),
		cmocka_unit_test(test_apply_project_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
