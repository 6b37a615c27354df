/* Validation of API input. See validate.h for the rules.
 *
 * Config maps are checked against tables of key rules. A rule's check
 * function looks at one string value and, when it refuses it, writes the
 * reason ("must be \"true\" or \"false\"") into a small buffer; the caller
 * wraps that reason with the key (and the device) into the final message,
 * so every message has the same shape. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "corral/err.h"

#include "validate.h"

/* Longest reason text a check writes. */
#define WHY_SIZE 160

/* Longest device name and network interface name we accept. */
#define DEVICE_NAME_MAX 64
#define IFNAME_MAX 15

struct rule;

/* Check @value against @r; on refusal write the reason into @why (of
 * WHY_SIZE bytes) and return -EINVAL. */
typedef int (*check_fn)(const struct rule *r, const char *value, char *why);

struct rule {
	const char *key;
	check_fn check;
	uint64_t min;               /* integers: smallest value */
	uint64_t max;               /* integers: largest value */
	const char *const *choices; /* enumerations: NULL-terminated */
	const char *def;            /* server keys: default value */
	bool local;                 /* server keys: member-local */
};

/* Flags for check_config(). */
enum {
	ALLOW_USER = 1 << 0,      /* user.<name> keys hold any string */
	REFUSE_VOLATILE = 1 << 1, /* volatile.* gets its own message */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Printable ASCII other than the space. */
static bool is_graph(char c)
{
	return c > ' ' && c < 0x7f;
}

/* Parse @len bytes of plain decimal digits. Returns -EINVAL for an empty or
 * non-digit string and -ERANGE past UINT64_MAX. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0) {
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		uint64_t d;

		if (!is_digit(s[i])) {
			return -EINVAL;
		}
		d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			return -ERANGE;
		}
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static bool parse_u64_in(const char *s,
			 size_t len,
			 uint64_t min,
			 uint64_t max,
			 uint64_t *out)
{
	uint64_t v;

	if (parse_u64(s, len, &v) != 0 || v < min || v > max) {
		return false;
	}
	if (out != NULL) {
		*out = v;
	}
	return true;
}

static int check_any(const struct rule *r, const char *value, char *why)
{
	(void)r;
	(void)value;
	(void)why;
	return 0;
}

static int check_bool(const struct rule *r, const char *value, char *why)
{
	(void)r;
	if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) {
		return 0;
	}
	corral_errf(why, WHY_SIZE, "must be \"true\" or \"false\"");
	return -EINVAL;
}

static int check_uint(const struct rule *r, const char *value, char *why)
{
	if (parse_u64_in(value, strlen(value), r->min, r->max, NULL)) {
		return 0;
	}
	corral_errf(why, WHY_SIZE,
		    "must be an integer between %" PRIu64 " and %" PRIu64,
		    r->min, r->max);
	return -EINVAL;
}

static int check_odd_uint(const struct rule *r, const char *value, char *why)
{
	uint64_t v;

	if (parse_u64_in(value, strlen(value), r->min, r->max, &v) &&
	    v % 2 == 1) {
		return 0;
	}
	corral_errf(why, WHY_SIZE,
		    "must be an odd integer between %" PRIu64 " and %" PRIu64,
		    r->min, r->max);
	return -EINVAL;
}

static int check_choice(const struct rule *r, const char *value, char *why)
{
	size_t n = 0;
	size_t i;
	int len;

	for (n = 0; r->choices[n] != NULL; n++) {
		if (strcmp(value, r->choices[n]) == 0) {
			return 0;
		}
	}
	/* "must be one of "a", "b" or "c"" */
	len = snprintf(why, WHY_SIZE, "must be ");
	for (i = 0; i < n && len > 0 && len < WHY_SIZE; i++) {
		const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");

		len += snprintf(why + len, WHY_SIZE - (size_t)len, "%s\"%s\"",
				sep, r->choices[i]);
	}
	return -EINVAL;
}

/* A DNS name: dot-separated labels of 1..63 letters, digits and '-', not
 * starting or ending with '-', 253 bytes at most. */
static bool is_dns_name(const char *s, size_t len)
{
	size_t label = 0;
	size_t i;

	if (len == 0 || len > 253) {
		return false;
	}
	for (i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-') {
				return false;
			}
			label = 0;
		} else if (is_alnum(c) || c == '-') {
			if (label == 0 && c == '-') {
				return false;
			}
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* Copy @len bytes of @s into @buf (of @size bytes) and test it with
 * inet_pton(). */
static bool is_ip(int family, const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char addr[sizeof(struct in6_addr)];

	if (len == 0 || len >= sizeof(buf)) {
		return false;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(family, buf, addr) == 1;
}

/* A host: an IPv4 address, or a DNS name that does not look like a
 * mistyped IPv4 address (only digits and dots). */
static bool is_host(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!is_digit(s[i]) && s[i] != '.') {
			return is_dns_name(s, len);
		}
	}
	return is_ip(AF_INET, s, len);
}

static bool is_port(const char *s)
{
	return parse_u64_in(s, strlen(s), 0, 65535, NULL);
}

/* Returns NULL when @v is a valid address, else the reason. */
static const char *address_why(const char *v)
{
	static const char *const bad_port =
	    "the port must be an integer between 0 and 65535";
	static const char *const bad_host =
	    "must be \"host\", \"host:port\", \"[ipv6]:port\" or \":port\" with a valid IP address or DNS name";
	const char *colon;

	if (v[0] == '\0') {
		return NULL;
	}
	if (v[0] == '[') {
		const char *end = strchr(v, ']');

		if (end == NULL ||
		    !is_ip(AF_INET6, v + 1, (size_t)(end - v - 1))) {
			return "must have a valid IPv6 address between '[' and ']'";
		}
		if (end[1] == '\0') {
			return NULL;
		}
		if (end[1] != ':') {
			return bad_host;
		}
		return is_port(end + 2) ? NULL : bad_port;
	}
	colon = strchr(v, ':');
	if (colon == NULL) {
		return is_host(v, strlen(v)) ? NULL : bad_host;
	}
	if (strchr(colon + 1, ':') != NULL) {
		/* Two colons or more: a bare IPv6 address, no port. */
		return is_ip(AF_INET6, v, strlen(v)) ? NULL : bad_host;
	}
	if (colon != v && !is_host(v, (size_t)(colon - v))) {
		return bad_host;
	}
	return is_port(colon + 1) ? NULL : bad_port;
}

int validate_address(const char *key, const char *value, char *errmsg)
{
	const char *why = address_why(value);

	if (why == NULL) {
		return 0;
	}
	corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "invalid value for \"%s\": %s",
		    key, why);
	return CORRAL_EINVALID;
}

static int check_address(const struct rule *r, const char *value, char *why)
{
	const char *reason = address_why(value);

	(void)r;
	if (reason == NULL) {
		return 0;
	}
	corral_errf(why, WHY_SIZE, "%s", reason);
	return -EINVAL;
}

int validate_parse_duration(const char *s, int64_t *seconds)
{
	uint64_t total = 0;
	const char *p = s;

	for (;;) {
		size_t n = 0;
		uint64_t count;
		uint64_t unit;

		while (is_digit(p[n])) {
			n++;
		}
		if (parse_u64(p, n, &count) != 0) {
			return -EINVAL;
		}
		switch (p[n]) {
		case 'S':
			unit = 1;
			break;
		case 'M':
			unit = 60;
			break;
		case 'H':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case 'w':
			unit = 7 * 86400;
			break;
		case 'm':
			unit = 30 * 86400;
			break;
		case 'y':
			unit = 365 * 86400;
			break;
		default:
			return -EINVAL;
		}
		if (count > ((uint64_t)INT64_MAX - total) / unit) {
			return -EINVAL;
		}
		total += count * unit;
		p += n + 1;
		if (*p == '\0') {
			break;
		}
		if (*p != ' ') {
			return -EINVAL;
		}
		p++;
	}
	if (seconds != NULL) {
		*seconds = (int64_t)total;
	}
	return 0;
}

static int check_duration(const struct rule *r, const char *value, char *why)
{
	(void)r;
	if (validate_parse_duration(value, NULL) == 0) {
		return 0;
	}
	corral_errf(
	    why, WHY_SIZE,
	    "must be a duration such as \"3H\" or \"1d 12H\" (units S, M, H, d, w, m, y)");
	return -EINVAL;
}

int validate_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "kB", 1000ULL },
		{ "MB", 1000ULL * 1000 },
		{ "GB", 1000ULL * 1000 * 1000 },
		{ "TB", 1000ULL * 1000 * 1000 * 1000 },
		{ "PB", 1000ULL * 1000 * 1000 * 1000 * 1000 },
		{ "EB", 1000ULL * 1000 * 1000 * 1000 * 1000 * 1000 },
		{ "KiB", 1ULL << 10 },
		{ "MiB", 1ULL << 20 },
		{ "GiB", 1ULL << 30 },
		{ "TiB", 1ULL << 40 },
		{ "PiB", 1ULL << 50 },
		{ "EiB", 1ULL << 60 },
	};
	size_t n = 0;
	uint64_t count;
	size_t i;

	while (is_digit(s[n])) {
		n++;
	}
	if (parse_u64(s, n, &count) != 0) {
		return -EINVAL;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + n, units[i].suffix) != 0) {
			continue;
		}
		if (count > (uint64_t)INT64_MAX / units[i].mult) {
			return -EINVAL;
		}
		if (bytes != NULL) {
			*bytes = count * units[i].mult;
		}
		return 0;
	}
	return -EINVAL;
}

static int check_memory(const struct rule *r, const char *value, char *why)
{
	size_t len = strlen(value);
	uint64_t bytes;

	(void)r;
	if (len > 0 && value[len - 1] == '%') {
		if (parse_u64_in(value, len - 1, 1, 100, NULL)) {
			return 0;
		}
		corral_errf(why, WHY_SIZE,
			    "a percentage must be between 1%% and 100%%");
		return -EINVAL;
	}
	if (validate_parse_size(value, &bytes) == 0 && bytes > 0) {
		return 0;
	}
	corral_errf(
	    why, WHY_SIZE,
	    "must be a non-zero size such as \"512MiB\" or \"1GB\", or a percentage such as \"50%%\"");
	return -EINVAL;
}

/* A comma-separated list of ids and ascending ranges "a-b", each id at
 * most @max. */
static bool is_id_list(const char *s, uint64_t max)
{
	const char *p = s;

	for (;;) {
		size_t n = strcspn(p, ",");
		const char *dash = memchr(p, '-', n);
		uint64_t lo;
		uint64_t hi;

		if (dash == NULL) {
			if (!parse_u64_in(p, n, 0, max, NULL)) {
				return false;
			}
		} else {
			size_t lo_len = (size_t)(dash - p);

			if (!parse_u64_in(p, lo_len, 0, max, &lo) ||
			    !parse_u64_in(dash + 1, n - lo_len - 1, 0, max,
					  &hi) ||
			    lo > hi) {
				return false;
			}
		}
		if (p[n] == '\0') {
			return true;
		}
		p += n + 1;
	}
}

static int check_cpu(const struct rule *r, const char *value, char *why)
{
	size_t len = strlen(value);
	size_t i;

	(void)r;
	for (i = 0; i < len && is_digit(value[i]); i++) {
	}
	if (i == len ? parse_u64_in(value, len, 1, 65535, NULL)
		     : is_id_list(value, 65535)) {
		return 0;
	}
	corral_errf(
	    why, WHY_SIZE,
	    "must be a CPU count of at least 1 or a CPU set such as \"0-3\" or \"0,2\"");
	return -EINVAL;
}

static int check_id_list(const struct rule *r, const char *value, char *why)
{
	if (is_id_list(value, r->max)) {
		return 0;
	}
	corral_errf(
	    why, WHY_SIZE,
	    "must be a comma-separated list of ids and ranges such as \"1000,2000-2999\" with ids up to %" PRIu64,
	    r->max);
	return -EINVAL;
}

/* A comma-separated list of addresses of @family; spaces around the
 * commas are allowed as in LXD. */
static bool is_ip_list(int family, const char *s)
{
	const char *p = s;

	for (;;) {
		size_t n = strcspn(p, ",");
		size_t start = 0;
		size_t end = n;

		while (start < end && p[start] == ' ') {
			start++;
		}
		while (end > start && p[end - 1] == ' ') {
			end--;
		}
		if (!is_ip(family, p + start, end - start)) {
			return false;
		}
		if (p[n] == '\0') {
			return true;
		}
		p += n + 1;
	}
}

static int check_ipv4_list(const struct rule *r, const char *value, char *why)
{
	(void)r;
	if (is_ip_list(AF_INET, value)) {
		return 0;
	}
	corral_errf(
	    why, WHY_SIZE,
	    "must be an IPv4 address or a comma-separated list of IPv4 addresses");
	return -EINVAL;
}

static int check_ipv6_list(const struct rule *r, const char *value, char *why)
{
	(void)r;
	if (is_ip_list(AF_INET6, value)) {
		return 0;
	}
	corral_errf(
	    why, WHY_SIZE,
	    "must be an IPv6 address or a comma-separated list of IPv6 addresses");
	return -EINVAL;
}

static int hex_value(char c)
{
	if (is_digit(c)) {
		return c - '0';
	}
	return (c | 0x20) - 'a' + 10;
}

static int check_mac(const struct rule *r, const char *value, char *why)
{
	bool zero = true;
	size_t i;

	(void)r;
	if (strlen(value) != 17) {
		goto bad;
	}
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2 ? value[i] != ':' : !is_hex(value[i])) {
			goto bad;
		}
		if (i % 3 != 2 && value[i] != '0') {
			zero = false;
		}
	}
	/* The low bit of the first octet marks group addresses, which can
	 * never be the source of a frame. */
	if (zero || (hex_value(value[1]) & 1) != 0) {
		corral_errf(why, WHY_SIZE, "must be a unicast MAC address");
		return -EINVAL;
	}
	return 0;
bad:
	corral_errf(why, WHY_SIZE,
		    "must be a MAC address such as \"00:16:3e:aa:bb:cc\"");
	return -EINVAL;
}

static int check_ifname(const struct rule *r, const char *value, char *why)
{
	size_t len = strlen(value);
	size_t i;

	(void)r;
	if (len > IFNAME_MAX || strcmp(value, ".") == 0 ||
	    strcmp(value, "..") == 0) {
		goto bad;
	}
	for (i = 0; i < len; i++) {
		if (!is_graph(value[i]) || value[i] == '/' || value[i] == ':') {
			goto bad;
		}
	}
	return 0;
bad:
	corral_errf(
	    why, WHY_SIZE,
	    "must be an interface name of 1 to 15 characters without '/', ':' or spaces");
	return -EINVAL;
}

/* An absolute path without ".." components or control characters. */
static bool is_safe_abspath(const char *s)
{
	const char *p;

	if (s[0] != '/') {
		return false;
	}
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			return false;
		}
	}
	for (p = s; p != NULL; p = strchr(p + 1, '/')) {
		if (strncmp(p, "/..", 3) == 0 &&
		    (p[3] == '/' || p[3] == '\0')) {
			return false;
		}
	}
	return true;
}

static int check_abspath(const struct rule *r, const char *value, char *why)
{
	(void)r;
	if (is_safe_abspath(value)) {
		return 0;
	}
	corral_errf(why, WHY_SIZE,
		    "must be an absolute path without \"..\" components");
	return -EINVAL;
}

/* A disk source: checked against the pool once the whole device is known,
 * see check_disk(). */
static int check_source(const struct rule *r, const char *value, char *why)
{
	size_t i;

	(void)r;
	for (i = 0; value[i] != '\0'; i++) {
		if ((unsigned char)value[i] < ' ' || value[i] == 0x7f) {
			corral_errf(why, WHY_SIZE,
				    "must not contain control characters");
			return -EINVAL;
		}
	}
	return 0;
}

#define BOOL(k)                                 \
	{                                       \
		.key = (k), .check = check_bool \
	}
#define UINT(k, lo, hi)                                                   \
	{                                                                 \
		.key = (k), .check = check_uint, .min = (lo), .max = (hi) \
	}
#define CHOICE(k, c)                                              \
	{                                                         \
		.key = (k), .check = check_choice, .choices = (c) \
	}
#define CHECK(k, f)                      \
	{                                \
		.key = (k), .check = (f) \
	}

/* Server keys: check, integer bounds, default, member-local. */
#define SERVER(k, f, lo, hi, d, l)                                  \
	{                                                           \
		.key = (k), .check = (f), .min = (lo), .max = (hi), \
		.def = (d), .local = (l)                            \
	}

static const struct rule server_rules[] = {
	SERVER("core.https_address", check_address, 0, 0, "", true),
	SERVER("cluster.https_address", check_address, 0, 0, "", true),
	SERVER("core.trust_password", check_any, 0, 0, "", false),
	SERVER("core.trust_ca_certificates", check_bool, 0, 0, "false", false),
	SERVER("core.remote_token_expiry", check_duration, 0, 0, "24H", false),
	SERVER("cluster.join_token_expiry", check_duration, 0, 0, "3H", false),
	SERVER("cluster.offline_threshold",
	       check_uint,
	       1,
	       INT32_MAX,
	       "3",
	       false),
	SERVER("cluster.max_voters", check_odd_uint, 3, INT32_MAX, "3", false),
	SERVER("cluster.max_standby", check_uint, 0, 5, "2", false),
	SERVER("corral.notify_timeout", check_uint, 0, 60000, "2000", false),
	SERVER("corral.stale_bound", check_uint, 100, INT32_MAX, "3000", false),
	SERVER("corral.raft_latency_ms", check_uint, 1, 10000, "20", false),
	SERVER("corral.max_body_size",
	       check_uint,
	       4096,
	       1073741824,
	       "8388608",
	       false),
};

static const struct rule instance_rules[] = {
	BOOL("security.privileged"),
	BOOL("security.nesting"),
	BOOL("security.idmap.isolated"),
	UINT("security.idmap.base", 0, UINT32_MAX),
	UINT("security.idmap.size", 0, UINT32_MAX),
	CHECK("raw.lxc", check_any),
	CHECK("raw.idmap", check_any),
	CHECK("limits.cpu", check_cpu),
	CHECK("limits.memory", check_memory),
	UINT("limits.processes", 1, INT64_MAX),
	BOOL("boot.autostart"),
};

static const char *const privilege_choices[] = { "unprivileged", "isolated",
						 "allow", NULL };
static const char *const restrict_choices[] = { "block", "managed", "allow",
						NULL };
static const char *const filtering_choices[] = { "allow", "enforce", NULL };

static const struct rule project_rules[] = {
	BOOL("features.images"),
	BOOL("features.profiles"),
	BOOL("features.storage.volumes"),
	BOOL("features.networks"),
	BOOL("restricted"),
	CHOICE("restricted.containers.privilege", privilege_choices),
	CHOICE("restricted.devices.disk", restrict_choices),
	CHOICE("restricted.devices.nic", restrict_choices),
	CHOICE("restricted.devices.nic.filtering", filtering_choices),
	{ .key = "restricted.idmap.uid",
	  .check = check_id_list,
	  .max = UINT32_MAX },
	{ .key = "restricted.idmap.gid",
	  .check = check_id_list,
	  .max = UINT32_MAX },
};

static const char *const nictype_choices[] = { "bridged", "routed", "macvlan",
					       "p2p", NULL };

static const struct rule nic_rules[] = {
	CHOICE("nictype", nictype_choices),
	CHECK("parent", check_ifname),
	CHECK("name", check_ifname),
	CHECK("host_name", check_ifname),
	CHECK("hwaddr", check_mac),
	CHECK("ipv4.address", check_ipv4_list),
	CHECK("ipv6.address", check_ipv6_list),
	UINT("mtu", 68, 65535),
	BOOL("security.mac_filtering"),
	BOOL("security.ipv4_filtering"),
	BOOL("security.ipv6_filtering"),
};

static const struct rule disk_rules[] = {
	CHECK("path", check_abspath),
	CHECK("source", check_source),
	CHECK("pool", check_ifname),
	BOOL("readonly"),
	BOOL("required"),
};

#undef SERVER
#undef BOOL
#undef UINT
#undef CHOICE
#undef CHECK

#define N_RULES(a) (sizeof(a) / sizeof((a)[0]))

static const struct rule *find_rule(const struct rule *rules,
				    size_t n,
				    const char *key)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(rules[i].key, key) == 0) {
			return &rules[i];
		}
	}
	return NULL;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Check one value; the empty string always passes (it unsets the key).
 * @device, when not NULL, prefixes the message. */
static int check_value(const struct rule *r,
		       const char *value,
		       const char *device,
		       char *errmsg)
{
	char why[WHY_SIZE];

	if (value[0] == '\0' || r->check(r, value, why) == 0) {
		return 0;
	}
	if (device != NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": invalid value for \"%s\": %s",
			    device, r->key, why);
	} else {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid value for \"%s\": %s", r->key, why);
	}
	return CORRAL_EINVALID;
}

int validate_string_map(json_t *obj, const char *what, char *errmsg)
{
	const char *key;
	json_t *value;

	if (obj == NULL || json_is_null(obj)) {
		return 0;
	}
	if (!json_is_object(obj)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "%s: must be a JSON object", what);
		return CORRAL_EINVALID;
	}
	json_object_foreach(obj, key, value)
	{
		if (!json_is_string(value)) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "%s: value of \"%s\" must be a string",
				    what, key);
			return CORRAL_EINVALID;
		}
		if (strlen(json_string_value(value)) !=
		    json_string_length(value)) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "%s: value of \"%s\" must not contain NUL characters",
			    what, key);
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

static int check_config(json_t *config,
			const struct rule *rules,
			size_t n,
			unsigned flags,
			char *errmsg)
{
	const char *key;
	json_t *value;
	int rv;

	rv = validate_string_map(config, "config", errmsg);
	if (rv != 0 || config == NULL || json_is_null(config)) {
		return rv;
	}
	json_object_foreach(config, key, value)
	{
		const struct rule *r = find_rule(rules, n, key);

		if (r != NULL) {
			rv = check_value(r, json_string_value(value), NULL,
					 errmsg);
			if (rv != 0) {
				return rv;
			}
			continue;
		}
		if ((flags & ALLOW_USER) != 0 && has_prefix(key, "user.") &&
		    key[strlen("user.")] != '\0') {
			continue;
		}
		if ((flags & REFUSE_VOLATILE) != 0 &&
		    has_prefix(key, "volatile.")) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "config key \"%s\": volatile keys cannot be set",
			    key);
			return CORRAL_EINVALID;
		}
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "unknown config key \"%s\"", key);
		return CORRAL_EINVALID;
	}
	return 0;
}

int validate_name(const char *kind, const char *name, char *errmsg)
{
	static const char forbidden[] = "/\\?#%*'\"";
	bool project = strcmp(kind, "project") == 0;
	size_t len = strlen(name);
	size_t i;

	if (len == 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid %s name: must not be empty", kind);
		return CORRAL_EINVALID;
	}
	if (len > 63) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid %s name: must be at most 63 characters",
			    kind);
		return CORRAL_EINVALID;
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    (project && strcmp(name, "*") == 0)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid %s name \"%s\": reserved name", kind,
			    name);
		return CORRAL_EINVALID;
	}
	if (name[0] == '-') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid %s name \"%s\": must not start with '-'",
			    kind, name);
		return CORRAL_EINVALID;
	}
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!is_graph(c)) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid %s name: must contain only printable ASCII characters and no spaces",
			    kind);
			return CORRAL_EINVALID;
		}
		if (strchr(forbidden, c) != NULL || (project && c == '_')) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "invalid %s name \"%s\": must not contain '%c'",
			    kind, name, c);
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

int validate_server_config(json_t *config, char *errmsg)
{
	return check_config(config, server_rules, N_RULES(server_rules), 0,
			    errmsg);
}

bool validate_server_key_is_local(const char *key)
{
	const struct rule *r =
	    find_rule(server_rules, N_RULES(server_rules), key);

	return r != NULL && r->local;
}

const char *validate_server_default(const char *key)
{
	const struct rule *r =
	    find_rule(server_rules, N_RULES(server_rules), key);

	return r != NULL ? r->def : NULL;
}

int validate_instance_config(json_t *config, char *errmsg)
{
	return check_config(config, instance_rules, N_RULES(instance_rules),
			    ALLOW_USER | REFUSE_VOLATILE, errmsg);
}

int validate_project_config(json_t *config, char *errmsg)
{
	return check_config(config, project_rules, N_RULES(project_rules),
			    ALLOW_USER, errmsg);
}

/* Value of @key in device @dev, or "" when absent. */
static const char *device_get(json_t *dev, const char *key)
{
	const char *v = json_string_value(json_object_get(dev, key));

	return v != NULL ? v : "";
}

static int check_device_name(const char *name, char *errmsg)
{
	size_t len = strlen(name);
	size_t i;

	if (len == 0 || len > DEVICE_NAME_MAX || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		goto bad;
	}
	for (i = 0; i < len; i++) {
		if (!is_graph(name[i]) || name[i] == '/') {
			goto bad;
		}
	}
	return 0;
bad:
	corral_errf(
	    errmsg, CORRAL_ERRMSG_SIZE,
	    "invalid device name \"%s\": must be 1 to 64 printable characters without '/' or spaces",
	    name);
	return CORRAL_EINVALID;
}

static int check_nic(const char *name, json_t *dev, char *errmsg)
{
	const char *nictype = device_get(dev, "nictype");

	if (nictype[0] == '\0') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": missing key \"nictype\"", name);
		return CORRAL_EINVALID;
	}
	if ((strcmp(nictype, "bridged") == 0 ||
	     strcmp(nictype, "macvlan") == 0) &&
	    device_get(dev, "parent")[0] == '\0') {
		corral_errf(
		    errmsg, CORRAL_ERRMSG_SIZE,
		    "device \"%s\": missing key \"parent\" (required for nictype \"%s\")",
		    name, nictype);
		return CORRAL_EINVALID;
	}
	return 0;
}

static int check_disk(const char *name,
		      json_t *dev,
		      bool *has_root,
		      char *errmsg)
{
	const char *path = device_get(dev, "path");
	const char *source = device_get(dev, "source");
	const char *pool = device_get(dev, "pool");

	if (path[0] == '\0') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": missing key \"path\"", name);
		return CORRAL_EINVALID;
	}
	if (strcmp(path, "/") == 0) {
		if (*has_root) {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": more than one root disk (path \"/\")",
			    name);
			return CORRAL_EINVALID;
		}
		*has_root = true;
		if (pool[0] == '\0') {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": missing key \"pool\" (required for the root disk)",
			    name);
			return CORRAL_EINVALID;
		}
		if (source[0] != '\0') {
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": key \"source\" is not allowed on the root disk",
			    name);
			return CORRAL_EINVALID;
		}
		return 0;
	}
	if (source[0] == '\0') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": missing key \"source\"", name);
		return CORRAL_EINVALID;
	}
	/* With a pool the source names a volume; without, a host path. */
	if (pool[0] != '\0' ? strchr(source, '/') != NULL
			    : !is_safe_abspath(source)) {
		corral_errf(
		    errmsg, CORRAL_ERRMSG_SIZE,
		    "device \"%s\": invalid value for \"source\": %s", name,
		    pool[0] != '\0'
			? "must be a volume name without '/' when \"pool\" is set"
			: "must be an absolute host path without \"..\" components");
		return CORRAL_EINVALID;
	}
	return 0;
}

static int check_device(const char *name,
			json_t *dev,
			bool *has_root,
			char *errmsg)
{
	char what[DEVICE_NAME_MAX + 16];
	const struct rule *rules;
	size_t n;
	const char *type;
	const char *key;
	json_t *value;
	int rv;

	rv = check_device_name(name, errmsg);
	if (rv != 0) {
		return rv;
	}
	if (!json_is_object(dev)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": must be a JSON object", name);
		return CORRAL_EINVALID;
	}
	snprintf(what, sizeof(what), "device \"%s\"", name);
	rv = validate_string_map(dev, what, errmsg);
	if (rv != 0) {
		return rv;
	}
	type = device_get(dev, "type");
	if (type[0] == '\0') {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": missing key \"type\"", name);
		return CORRAL_EINVALID;
	}
	if (strcmp(type, "nic") == 0) {
		rules = nic_rules;
		n = N_RULES(nic_rules);
	} else if (strcmp(type, "disk") == 0) {
		rules = disk_rules;
		n = N_RULES(disk_rules);
	} else if (strcmp(type, "none") == 0) {
		rules = NULL;
		n = 0;
	} else {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": unknown device type \"%s\"", name,
			    type);
		return CORRAL_EINVALID;
	}
	json_object_foreach(dev, key, value)
	{
		const struct rule *r;

		if (strcmp(key, "type") == 0) {
			continue;
		}
		r = rules != NULL ? find_rule(rules, n, key) : NULL;
		if (r == NULL) {
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "device \"%s\": unknown key \"%s\"", name,
				    key);
			return CORRAL_EINVALID;
		}
		rv = check_value(r, json_string_value(value), name, errmsg);
		if (rv != 0) {
			return rv;
		}
	}
	if (rules == nic_rules) {
		return check_nic(name, dev, errmsg);
	}
	if (rules == disk_rules) {
		return check_disk(name, dev, has_root, errmsg);
	}
	return 0;
}

int validate_devices(json_t *devices, char *errmsg)
{
	bool has_root = false;
	const char *name;
	json_t *dev;
	int rv;

	if (devices == NULL || json_is_null(devices)) {
		return 0;
	}
	if (!json_is_object(devices)) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "devices: must be a JSON object");
		return CORRAL_EINVALID;
	}
	json_object_foreach(devices, name, dev)
	{
		rv = check_device(name, dev, &has_root, errmsg);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

int validate_nic_filtering_enforced(json_t *devices, char *errmsg)
{
	static const char *const keys[] = { "security.mac_filtering",
					    "security.ipv4_filtering",
					    "security.ipv6_filtering" };
	const char *name;
	json_t *dev;
	size_t i;

	if (!json_is_object(devices)) {
		return 0;
	}
	json_object_foreach(devices, name, dev)
	{
		if (strcmp(device_get(dev, "type"), "nic") != 0 ||
		    strcmp(device_get(dev, "nictype"), "bridged") != 0) {
			continue;
		}
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(device_get(dev, keys[i]), "true") == 0) {
				continue;
			}
			corral_errf(
			    errmsg, CORRAL_ERRMSG_SIZE,
			    "device \"%s\": \"%s\" must be \"true\" because the project sets restricted.devices.nic.filtering=enforce",
			    name, keys[i]);
			return CORRAL_EINVALID;
		}
	}
	return 0;
}

int validate_apply_project_defaults(json_t *config)
{
	static const struct {
		const char *key;
		const char *value;
	} defaults[] = {
		{ "features.images", "true" },
		{ "features.profiles", "true" },
		{ "features.storage.volumes", "true" },
		{ "features.networks", "false" },
	};
	size_t i;

	if (!json_is_object(config)) {
		return -EINVAL;
	}
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		if (json_object_get(config, defaults[i].key) != NULL) {
			continue;
		}
		if (json_object_set_new(config, defaults[i].key,
					json_string(defaults[i].value)) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}
