/* Validation of API input: entity names, server, instance and project
 * config, and device maps.
 *
 * Every function here is pure (no I/O, no allocation except where stated)
 * and works on jansson values that the caller still owns; nothing keeps a
 * reference. A check returns 0 or CORRAL_EINVALID and then writes into
 * @errmsg (CORRAL_ERRMSG_SIZE bytes) a message that names the offending key
 * or device, for example `unknown config key "foo.bar"` or
 * `device "eth0": unknown key "bogus"`. Messages never repeat the value
 * that was refused, so a secret (core.trust_password) is never echoed.
 *
 * Rules shared by every config map:
 * - The map is a JSON object whose values are all strings; JSON null or a
 *   NULL pointer counts as an empty map.
 * - The empty string is always accepted: in LXD it unsets the key (the
 *   effective value becomes the default).
 * - Booleans are exactly "true" or "false" ("yes", "1", "TRUE" are refused).
 * - Integers are plain decimal digits: no sign, no spaces, no hex, and
 *   within the range each key documents. */
#ifndef CORRAL_API_VALIDATE_H
#define CORRAL_API_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* Check the name of a project or profile; @kind ("project", "profile")
 * only words the message. A name is 1 to 63 bytes of printable ASCII; it is
 * not "." or "..", does not start with '-' (it would read as a command-line
 * flag) and contains no space, '/', '\\', '?', '#', '%', '*', '\'', '"' (they
 * break URLs, paths or shell quoting). As in LXD, a project name also
 * cannot contain '_' (storage names join project and entity with '_') and
 * cannot be "*". Returns 0 or CORRAL_EINVALID. */
int validate_name(const char *kind, const char *name, char *errmsg);

/* Check that @obj is a JSON object whose values are all strings (without
 * embedded NUL bytes); NULL or JSON null is an empty map. @what names the
 * map in the message ("config", "device \"eth0\""). Returns 0 or
 * CORRAL_EINVALID. */
int validate_string_map(json_t *obj, const char *what, char *errmsg);

/* Check a server config map (the "config" of PUT/PATCH /1.0). Accepted
 * keys and values:
 * - core.https_address, cluster.https_address (member-local): an address,
 *   see validate_address();
 * - core.trust_password: any string;
 * - core.trust_ca_certificates: boolean;
 * - core.remote_token_expiry, cluster.join_token_expiry: a duration, see
 *   validate_parse_duration();
 * - cluster.offline_threshold: seconds, 1..2147483647;
 * - cluster.max_voters: an odd integer, 3..2147483647;
 * - cluster.max_standby: 0..5;
 * - corral.notify_timeout: milliseconds, 0..60000;
 * - corral.stale_bound: milliseconds, 100..2147483647;
 * - corral.raft_latency_ms: milliseconds, 1..10000;
 * - corral.max_body_size: bytes, 4096..1073741824.
 * Returns 0 or CORRAL_EINVALID. */
int validate_server_config(json_t *config, char *errmsg);

/* Tell whether server config key @key is member-local (each member stores
 * its own value) rather than cluster-wide. False for unknown keys. */
bool validate_server_key_is_local(const char *key);

/* Return the default value of server config key @key as a static string
 * ("" for keys that are unset by default, such as the addresses and the
 * trust password), or NULL when @key is not a server config key. */
const char *validate_server_default(const char *key);

/* Check a network address as used by core.https_address: "" (unset),
 * "host", "host:port", "[ipv6]", "[ipv6]:port", ":port" (all addresses)
 * or a bare IPv6 address without a port. A host is an IPv4 address or a
 * DNS name (labels of letters, digits and '-', not starting or ending with
 * '-'); a port is 0..65535. @key names the value in the message. Returns 0
 * or CORRAL_EINVALID. */
int validate_address(const char *key, const char *value, char *errmsg);

/* Parse an LXD expiry duration into seconds: one or more fields separated
 * by single spaces ("1d 3H"), each a decimal count followed by one unit:
 * S (seconds), M (minutes), H (hours), d (days), w (weeks), m (months,
 * counted as 30 days) or y (years, counted as 365 days). The units are
 * case-sensitive as in LXD: "M" is minutes and "m" months. On success
 * stores the total in @seconds (may be NULL) and returns 0; returns
 * -EINVAL for a malformed string or a total above INT64_MAX seconds. */
int validate_parse_duration(const char *s, int64_t *seconds);

/* Parse an LXD byte size: a decimal count with an optional suffix "B",
 * "kB", "MB", "GB", "TB", "PB", "EB" (powers of 1000) or "KiB", "MiB",
 * "GiB", "TiB", "PiB", "EiB" (powers of 1024). On success stores the byte
 * count in @bytes (may be NULL) and returns 0; returns -EINVAL when
 * malformed or above INT64_MAX bytes. */
int validate_parse_size(const char *s, uint64_t *bytes);

/* Check an instance or profile config map. Accepted keys:
 * - security.privileged, security.nesting, security.idmap.isolated,
 *   boot.autostart: boolean;
 * - security.idmap.base, security.idmap.size: 0..4294967295;
 * - limits.processes: 1..9223372036854775807;
 * - limits.cpu: a CPU count ("2", at least 1) or a CPU set of ids and
 *   ranges ("0-3", "0,2", "0-1,4"; ids 0..65535, ranges ascending);
 * - limits.memory: a byte size (validate_parse_size(), not zero) or a
 *   percentage of host memory, "1%".."100%";
 * - raw.lxc, raw.idmap: any string;
 * - user.<name>: any string.
 * volatile.* keys are refused: they are written by corral, never by users.
 * Returns 0 or CORRAL_EINVALID. */
int validate_instance_config(json_t *config, char *errmsg);

/* Check a device map: an object from device name to an object of strings
 * that includes "type". A device name is 1 to 64 bytes of printable ASCII
 * without '/' or spaces, and not "." or "..". Types and their keys:
 * - nic: nictype (required: bridged, routed, macvlan or p2p), parent
 *   (required for bridged and macvlan), name, host_name (interface names:
 *   1..15 bytes, no '/', ':' or spaces), hwaddr (unicast MAC
 *   "aa:bb:cc:dd:ee:ff"), ipv4.address and ipv6.address (an address or a
 *   comma-separated list), mtu (68..65535), security.mac_filtering,
 *   security.ipv4_filtering, security.ipv6_filtering (boolean);
 * - disk: path (required, absolute), source (required except on the root
 *   disk, where it is refused), pool (required on the root disk, the one
 *   with path "/"; at most one root disk), readonly, required (boolean);
 * - none: no other key (it masks a device inherited from a profile).
 * Returns 0 or CORRAL_EINVALID. */
int validate_devices(json_t *devices, char *errmsg);

/* Check a project config map. Accepted keys:
 * - features.images, features.profiles, features.storage.volumes,
 *   features.networks, restricted: boolean;
 * - restricted.containers.privilege: unprivileged, isolated or allow;
 * - restricted.devices.disk, restricted.devices.nic: block, managed or
 *   allow;
 * - restricted.devices.nic.filtering: allow or enforce;
 * - restricted.idmap.uid, restricted.idmap.gid: a comma-separated list of
 *   ids and ranges ("1000,2000-2999"; ids 0..4294967295, ranges
 *   ascending);
 * - user.<name>: any string.
 * Returns 0 or CORRAL_EINVALID. */
int validate_project_config(json_t *config, char *errmsg);

/* Check @devices (an instance's expanded devices, already accepted by
 * validate_devices()) against a project that sets
 * restricted.devices.nic.filtering=enforce: every bridged NIC must set
 * security.mac_filtering, security.ipv4_filtering and
 * security.ipv6_filtering to "true". The message names the device and the
 * first key that is missing or not "true". Returns 0 or CORRAL_EINVALID. */
int validate_nic_filtering_enforced(json_t *devices, char *errmsg);

/* Fill in the defaults LXD gives a new project: features.images,
 * features.profiles and features.storage.volumes "true" and
 * features.networks "false", each only when @config does not have it. The
 * strings are added to @config (borrowed). Returns 0, -EINVAL when @config
 * is not an object, or -ENOMEM. */
int validate_apply_project_defaults(json_t *config);

#endif /* CORRAL_API_VALIDATE_H */
