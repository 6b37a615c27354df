"""The replicated-state API of a real corrald: projects, profiles, server config.

Contract: README.md ("API", "Server config keys", "Validation"), docs/state.md
and reference/lxd-client-compat.md sections 1 and 3 (`lxc project`,
`lxc profile`).

The "newer schema" test edits the stopped daemon's database the only real
way dqlite allows: this file, run as a script (`python3 test_state_api.py
dqlite-sql DBDIR ADDRESS SQL...`), starts a dqlite node of its own on the
database directory through libdqlite (ctypes), connects to it from the same
process (dqlite 1.11 refuses other processes on a Unix bind address), and
runs SQL through the wire protocol (reference/dqlite-notes.md).
"""

import ctypes
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from helpers import MIB, send_in_background

READY = "/1.0/projects"
SETUP_PREFIX = "corrald setup in progress: "

DEFAULT_FEATURES = {
    "features.images": "true",
    "features.profiles": "true",
    "features.storage.volumes": "true",
    "features.networks": "false",
}

NIC = {"type": "nic", "nictype": "bridged", "parent": "br0",
       "security.ipv4_filtering": "true"}

FILTERED_NIC = {"type": "nic", "nictype": "bridged", "parent": "br0",
                "security.mac_filtering": "true",
                "security.ipv4_filtering": "true",
                "security.ipv6_filtering": "true"}


# --- helpers ----------------------------------------------------------------


def start(factory, **kw):
    """A daemon whose database is up (GET /1.0/projects == 200)."""
    kw.setdefault("debug", True)
    return factory.start(ready_path=READY, **kw)


def q(path, project=None, **params):
    """`path` with ?project= (omitted for None) and any other parameters."""
    items = []
    if project is not None:
        items.append("project=%s" % project)
    items += ["%s=%s" % kv for kv in params.items()]
    return path + ("?" + "&".join(items) if items else "")


def call(d, method, path, body=None, headers=None):
    """(status, headers, parsed body); the body is JSON-encoded unless bytes."""
    return d.request(method, path, body=body, headers=headers)


def sync(d, method, path, body=None, status=200, headers=None):
    """Assert a sync answer with `status`; return (metadata, headers)."""
    st, hdrs, env = call(d, method, path, body, headers)
    assert st == status, "%s %s -> %d %r (wanted %d)" % (method, path, st, env, status)
    assert isinstance(env, dict), env
    assert env.get("type") == "sync", env
    assert env.get("status_code") == 200, env
    assert env.get("error_code") == 0 and env.get("error") == "", env
    return env.get("metadata"), hdrs


def meta(d, path):
    return sync(d, "GET", path)[0]


def error(d, method, path, body=None, status=400, contains=(), headers=None):
    """Assert an error envelope with `status`; return the error message."""
    st, _, env = call(d, method, path, body, headers)
    assert st == status, "%s %s -> %d %r (wanted %d)" % (method, path, st, env, status)
    assert isinstance(env, dict), env
    assert env.get("type") == "error", env
    assert env.get("error_code") == status, env
    assert env.get("metadata") is None, env
    msg = env.get("error")
    assert isinstance(msg, str) and msg, env
    if isinstance(contains, str):
        contains = (contains,)
    for s in contains:
        assert s in msg, "%r does not mention %r" % (msg, s)
    return msg


def etag_of(hdrs):
    tag = hdrs.get("ETag")
    assert tag, "no ETag header"
    return tag


def snapshot(d):
    """Everything the state API shows (the server pid aside)."""
    server = meta(d, "/1.0")
    projects = meta(d, "/1.0/projects?recursion=1")
    snap = {"config": server["config"], "projects": projects}
    for p in projects:
        snap["profiles/" + p["name"]] = meta(d, q("/1.0/profiles", p["name"], recursion=1))
    return snap


def profile(d, name, project=None):
    return meta(d, q("/1.0/profiles/" + name, project))


def create_profile(d, name, project=None, **fields):
    body = dict(fields, name=name)
    _, hdrs = sync(d, "POST", q("/1.0/profiles", project), body, status=201)
    return hdrs


def read_files(top):
    """(path, bytes) of every regular file under `top`."""
    for root, _, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    yield p, fh.read()


HASH_RE = re.compile(rb"scrypt\$\d+\$\d+\$\d+\$[0-9a-f]{32}\$[0-9a-f]{64}")


def db_address(d):
    with open(d.path("database", "info")) as f:
        for line in f:
            if line.startswith("address:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError("no address in database/info")


def dqlite_sql(factory, d, *sql):
    """Run SQL on the (stopped) daemon's database; return one row list per
    statement (None for statements that return no rows)."""
    assert not d.running(), "the daemon must be stopped first"
    failures = []
    # One retry, so statements must be idempotent: it covers a slow election
    # of the tool's own dqlite node on a loaded machine (corrald is not
    # involved at that point).
    for _ in range(2):
        proc = factory.track_process(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "dqlite-sql",
             d.path("database"), db_address(d)] + list(sql),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
        try:
            out, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            failures.append("timeout: %r %r" % (out, err))
            continue
        if proc.returncode == 0:
            return json.loads(out)
        failures.append("rc=%d stdout=%r stderr=%s" % (proc.returncode, out, err.decode()))
    raise AssertionError("dqlite-sql %r failed:\n%s" % (sql, "\n".join(failures)))


def libdqlite_loadable():
    try:
        ctypes.CDLL("libdqlite.so.0")
        return True
    except OSError:
        return False


# --- setup: 503 until the database is up -----------------------------------------


def test_setup_answers_503_or_200_until_ready(daemon_factory):
    d = daemon_factory.new(debug=True)
    d.spawn()
    seen = []
    deadline = time.monotonic() + 10
    while True:
        assert d.running(), d.diagnostics()
        try:
            st, _, env = call(d, "GET", "/1.0/profiles")
        except (OSError, http.client.HTTPException) as e:  # socket not there yet
            assert time.monotonic() < deadline, "no answer: %r" % e
            time.sleep(0.002)
            continue
        seen.append(st)
        if st == 503:
            assert env["type"] == "error" and env["error_code"] == 503, env
            assert env["error"].startswith(SETUP_PREFIX), env
            assert len(env["error"]) > len(SETUP_PREFIX), env  # names a reason
            # GET / and GET /1.0 are served during setup.
            assert call(d, "GET", "/")[0] == 200
            st1, _, env1 = call(d, "GET", "/1.0")
            assert st1 == 200 and env1["type"] == "sync", env1
        else:
            assert st == 200, (st, env)
            assert env["type"] == "sync", env
            break
        assert time.monotonic() < deadline, "never ready: %r" % seen[-5:]
        time.sleep(0.002)
    # Once ready, it stays ready.
    for _ in range(5):
        assert call(d, "GET", "/1.0/profiles")[0] == 200


def stuck_in_setup(factory):
    """A daemon whose database never gets a leader: its database/info names
    node 2, which nobody ever adds to a cluster (as a member whose peers are
    all down), so setup lasts until corrald's leader wait (30 s) runs out."""
    d = factory.new(debug=True)
    os.makedirs(d.path("database"), mode=0o700)
    os.chmod(d.state_dir, 0o711)
    with open(d.path("database", "info"), "w") as f:
        f.write("id: 2\naddress: @corral-test-no-such-node\n")
    d.start(ready_path="/1.0")
    return d


SETUP_ROUTES = [
    ("GET", "/1.0/profiles", None),
    ("POST", "/1.0/profiles", {"name": "p"}),
    ("GET", "/1.0/profiles/default", None),
    ("PUT", "/1.0/profiles/default", {"config": {}}),
    ("DELETE", "/1.0/profiles/default", None),
    ("GET", "/1.0/projects", None),
    ("GET", "/1.0/projects?recursion=1", None),
    ("POST", "/1.0/projects", {"name": "dev"}),
    ("GET", "/1.0/projects/default", None),
    ("PATCH", "/1.0/projects/default", {"config": {}}),
    ("PUT", "/1.0", {"config": {"corral.notify_timeout": "1"}}),
    ("PATCH", "/1.0", {"config": {"corral.notify_timeout": "1"}}),
]


def test_setup_503_while_the_database_is_not_up(daemon_factory):
    d = stuck_in_setup(daemon_factory)
    for method, path, body in SETUP_ROUTES:
        msg = error(d, method, path, body, status=503, contains=SETUP_PREFIX)
        assert msg.startswith(SETUP_PREFIX) and len(msg) > len(SETUP_PREFIX), msg
    assert meta(d, "/") == ["/1.0"]
    server = meta(d, "/1.0")
    assert server["api_version"] == "1.0" and server["environment"]["server"] == "corral"
    assert meta(d, "/1.0")["config"] == {}
    assert d.running()


def test_sigterm_during_setup_is_prompt(daemon_factory):
    d = stuck_in_setup(daemon_factory)
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.wait_exit(3)
    except subprocess.TimeoutExpired:
        rc = None
    assert rc == 0, "corrald still running 3 s after SIGTERM during setup"


# --- projects ----------------------------------------------------------------------


def test_projects_crud(daemon_factory):
    d = start(daemon_factory)
    _, hdrs = sync(d, "POST", "/1.0/projects",
                   {"name": "dev", "description": "d", "config": {}}, status=201)
    assert hdrs.get("Location") == "/1.0/projects/dev"

    assert meta(d, "/1.0/projects") == ["/1.0/projects/default", "/1.0/projects/dev"]
    assert meta(d, "/1.0/projects?recursion=0") == ["/1.0/projects/default",
                                                   "/1.0/projects/dev"]
    objs = {p["name"]: p for p in meta(d, "/1.0/projects?recursion=1")}
    assert set(objs) == {"default", "dev"}
    dev = objs["dev"]
    assert set(dev) >= {"name", "description", "config", "used_by"}, dev
    assert dev["description"] == "d"
    assert dev["config"] == DEFAULT_FEATURES
    assert "/1.0/profiles/default?project=dev" in dev["used_by"], dev
    assert "/1.0/profiles/default" in objs["default"]["used_by"], objs["default"]
    # The project got its own default profile.
    assert meta(d, "/1.0/profiles?project=dev") == ["/1.0/profiles/default?project=dev"]

    got, hdrs = sync(d, "GET", "/1.0/projects/dev")
    assert got == dev
    tag1 = etag_of(hdrs)

    # PUT replaces the config (and the description).
    put = dict(DEFAULT_FEATURES, **{"user.a": "1", "user.b": "2"})
    sync(d, "PUT", "/1.0/projects/dev", {"description": "new", "config": put})
    got, hdrs = sync(d, "GET", "/1.0/projects/dev")
    assert got["description"] == "new" and got["config"] == put
    assert etag_of(hdrs) != tag1
    put2 = dict(DEFAULT_FEATURES, **{"user.c": "3"})
    sync(d, "PUT", "/1.0/projects/dev", {"description": "", "config": put2})
    got = meta(d, "/1.0/projects/dev")
    assert got["config"] == put2, "PUT must drop user.a and user.b"
    assert got["description"] == ""

    # PATCH merges: keeps user.c, adds user.d, keeps the description.
    sync(d, "PUT", "/1.0/projects/dev", {"description": "keep", "config": put2})
    sync(d, "PATCH", "/1.0/projects/dev", {"config": {"user.d": "4"}})
    got = meta(d, "/1.0/projects/dev")
    assert got["config"] == dict(put2, **{"user.d": "4"})
    assert got["description"] == "keep"

    # Rename: 201, Location, the old name is gone, profiles follow.
    _, hdrs = sync(d, "POST", "/1.0/projects/dev", {"name": "dev2"}, status=201)
    assert hdrs.get("Location") == "/1.0/projects/dev2"
    error(d, "GET", "/1.0/projects/dev", status=404)
    got = meta(d, "/1.0/projects/dev2")
    assert got["description"] == "keep"
    assert "/1.0/profiles/default?project=dev2" in got["used_by"], got
    assert meta(d, "/1.0/projects") == ["/1.0/projects/default", "/1.0/projects/dev2"]

    # Delete.
    sync(d, "DELETE", "/1.0/projects/dev2")
    error(d, "GET", "/1.0/projects/dev2", status=404)
    error(d, "GET", "/1.0/profiles?project=dev2", status=404)
    error(d, "DELETE", "/1.0/projects/dev2", status=404)
    assert meta(d, "/1.0/projects") == ["/1.0/projects/default"]


def test_project_create_conflicts_and_names(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    before = snapshot(d)
    error(d, "POST", "/1.0/projects", {"name": "dev", "description": "other"}, status=409)
    error(d, "POST", "/1.0/projects", {"name": "a_b"}, status=400, contains="name")
    error(d, "POST", "/1.0/projects", {"name": "x", "config": {"bogus": "1"}},
          status=400, contains="bogus")
    error(d, "POST", "/1.0/projects", {"name": "x", "config": {"features.profiles": "yes"}},
          status=400, contains="features.profiles")
    error(d, "POST", "/1.0/projects/dev", {"name": "default"}, status=409)
    error(d, "PUT", "/1.0/projects/nope", {"config": {}}, status=404)
    assert snapshot(d) == before


def test_default_project_cannot_be_deleted_or_renamed(daemon_factory):
    d = start(daemon_factory)
    before = snapshot(d)
    error(d, "DELETE", "/1.0/projects/default", status=403, contains="default")
    error(d, "POST", "/1.0/projects/default", {"name": "other"}, status=403,
          contains="default")
    assert snapshot(d) == before
    error(d, "GET", "/1.0/projects/other", status=404)


def test_only_empty_projects_can_be_deleted(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    create_profile(d, "extra", "dev")
    before = snapshot(d)
    st, _, env = call(d, "DELETE", "/1.0/projects/dev")
    assert 400 <= st < 500 and st in (400, 409), (st, env)
    assert env["type"] == "error" and env["error_code"] == st, env
    assert "only empty projects" in env["error"].lower(), env
    assert snapshot(d) == before
    assert meta(d, "/1.0/projects/dev")["name"] == "dev"
    # Once emptied (its own default profile does not count) it goes.
    sync(d, "DELETE", "/1.0/profiles/extra?project=dev")
    sync(d, "DELETE", "/1.0/projects/dev")
    error(d, "GET", "/1.0/projects/dev", status=404)


# --- profiles ----------------------------------------------------------------------


@pytest.mark.parametrize("project", [None, "default", "dev"])
def test_profiles_crud(daemon_factory, project):
    d = start(daemon_factory)
    if project == "dev":
        sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    suffix = "?project=dev" if project == "dev" else ""

    hdrs = create_profile(d, "p1", project, description="first",
                          config={"limits.cpu": "2", "user.x": "y"},
                          devices={"eth0": dict(NIC)})
    assert hdrs.get("Location") == "/1.0/profiles/p1" + suffix
    create_profile(d, "p0", project)

    assert meta(d, q("/1.0/profiles", project)) == [
        "/1.0/profiles/default" + suffix, "/1.0/profiles/p0" + suffix,
        "/1.0/profiles/p1" + suffix]
    objs = {p["name"]: p for p in meta(d, q("/1.0/profiles", project, recursion=1))}
    assert set(objs) == {"default", "p0", "p1"}
    p1 = objs["p1"]
    assert p1 == {"name": "p1", "description": "first",
                  "config": {"limits.cpu": "2", "user.x": "y"},
                  "devices": {"eth0": NIC}, "used_by": []}
    assert objs["p0"]["config"] == {} and objs["p0"]["devices"] == {}
    assert objs["p0"]["description"] == ""

    # Profiles of one project are invisible from the other.
    other = "default" if project == "dev" else "dev"
    if other == "dev":
        sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    error(d, "GET", q("/1.0/profiles/p1", other), status=404)
    assert meta(d, q("/1.0/profiles", other)) == [
        "/1.0/profiles/default" + ("?project=dev" if other == "dev" else "")]

    got, hdrs = sync(d, "GET", q("/1.0/profiles/p1", project))
    assert got == p1
    etag_of(hdrs)

    # PUT replaces everything editable.
    sync(d, "PUT", q("/1.0/profiles/p1", project),
         {"description": "put", "config": {"user.z": "1"}, "devices": {}})
    got = profile(d, "p1", project)
    assert got["description"] == "put"
    assert got["config"] == {"user.z": "1"}
    assert got["devices"] == {}
    sync(d, "PUT", q("/1.0/profiles/p1", project),
         {"description": "put", "config": {"user.z": "1", "security.nesting": "true"},
          "devices": {"eth0": dict(NIC), "root": {"type": "disk", "path": "/",
                                                   "pool": "default"}}})

    # PATCH merges config and replaces a named device as a whole.
    sync(d, "PATCH", q("/1.0/profiles/p1", project),
         {"config": {"limits.memory": "1GiB", "user.z": "2"},
          "devices": {"eth0": {"type": "nic", "nictype": "macvlan", "parent": "eth1"}}})
    got = profile(d, "p1", project)
    assert got["config"] == {"user.z": "2", "security.nesting": "true",
                             "limits.memory": "1GiB"}
    assert got["devices"] == {
        "eth0": {"type": "nic", "nictype": "macvlan", "parent": "eth1"},
        "root": {"type": "disk", "path": "/", "pool": "default"}}
    assert got["description"] == "put"

    # Rename: 201 + Location; the old name is gone.
    _, hdrs = sync(d, "POST", q("/1.0/profiles/p1", project), {"name": "p2"}, status=201)
    assert hdrs.get("Location") == "/1.0/profiles/p2" + suffix
    error(d, "GET", q("/1.0/profiles/p1", project), status=404)
    renamed = profile(d, "p2", project)
    assert renamed["name"] == "p2"
    assert {k: renamed[k] for k in ("config", "devices", "description")} == \
        {k: got[k] for k in ("config", "devices", "description")}
    error(d, "POST", q("/1.0/profiles/p2", project), {"name": "p0"}, status=409)

    # Delete.
    sync(d, "DELETE", q("/1.0/profiles/p2", project))
    error(d, "GET", q("/1.0/profiles/p2", project), status=404)
    error(d, "DELETE", q("/1.0/profiles/p2", project), status=404)
    assert meta(d, q("/1.0/profiles", project)) == [
        "/1.0/profiles/default" + suffix, "/1.0/profiles/p0" + suffix]


@pytest.mark.parametrize("project", [None, "dev"])
def test_default_profile_cannot_be_deleted_or_renamed(daemon_factory, project):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    before = snapshot(d)
    error(d, "DELETE", q("/1.0/profiles/default", project), status=403, contains="default")
    error(d, "POST", q("/1.0/profiles/default", project), {"name": "x"}, status=403,
          contains="default")
    assert snapshot(d) == before
    # Editing it is fine.
    sync(d, "PATCH", q("/1.0/profiles/default", project), {"config": {"user.k": "v"}})
    assert profile(d, "default", project)["config"] == {"user.k": "v"}


def test_project_without_own_profiles_uses_defaults(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects",
         {"name": "shared", "config": {"features.profiles": "false"}}, status=201)
    cfg = meta(d, "/1.0/projects/shared")["config"]
    assert cfg == dict(DEFAULT_FEATURES, **{"features.profiles": "false"})
    create_profile(d, "inherited", None, description="from default")

    names = [u.split("?")[0] for u in meta(d, "/1.0/profiles?project=shared")]
    assert names == ["/1.0/profiles/default", "/1.0/profiles/inherited"]
    assert profile(d, "inherited", "shared")["description"] == "from default"
    assert profile(d, "default", "shared")["description"] == \
        profile(d, "default")["description"]

    # A profile created "in" the project lands in the default project.
    create_profile(d, "via-shared", "shared")
    assert profile(d, "via-shared")["name"] == "via-shared"
    sync(d, "PATCH", "/1.0/profiles/via-shared?project=shared", {"config": {"user.a": "b"}})
    assert profile(d, "via-shared")["config"] == {"user.a": "b"}
    # Such a project holds no profile of its own, so it can be deleted.
    sync(d, "DELETE", "/1.0/projects/shared")
    assert profile(d, "via-shared")["config"] == {"user.a": "b"}


def test_unknown_project_404(daemon_factory):
    d = start(daemon_factory)
    error(d, "GET", "/1.0/profiles?project=nope", status=404)
    error(d, "POST", "/1.0/profiles?project=nope", {"name": "x"}, status=404)
    error(d, "GET", "/1.0/profiles/default?project=nope", status=404)
    assert meta(d, "/1.0/profiles") == ["/1.0/profiles/default"]


# --- validation: 400 naming the key, nothing changed ---------------------------------


BAD_REQUESTS = [
    ("profile-unknown-key", "POST", "/1.0/profiles",
     {"name": "v", "config": {"foo.bar": "1"}}, "foo.bar"),
    ("profile-privileged-yes", "POST", "/1.0/profiles",
     {"name": "v", "config": {"security.privileged": "yes"}}, "security.privileged"),
    ("profile-volatile", "POST", "/1.0/profiles",
     {"name": "v", "config": {"volatile.eth0.hwaddr": "00:16:3e:00:00:01"}}, "volatile"),
    ("device-gpu", "POST", "/1.0/profiles",
     {"name": "v", "devices": {"g0": {"type": "gpu"}}}, "gpu"),
    ("nic-bogus", "POST", "/1.0/profiles",
     {"name": "v", "devices": {"eth0": dict(NIC, bogus="1")}}, "bogus"),
    ("nic-no-nictype", "POST", "/1.0/profiles",
     {"name": "v", "devices": {"eth0": {"type": "nic", "parent": "br0"}}}, "nictype"),
    ("nic-bad-hwaddr", "POST", "/1.0/profiles",
     {"name": "v", "devices": {"eth0": dict(NIC, hwaddr="zz:16:3e:00:00:01")}}, "hwaddr"),
    ("nic-bool-yes", "POST", "/1.0/profiles",
     {"name": "v", "devices": {"eth0": dict(NIC, **{"security.mac_filtering": "yes"})}},
     "security.mac_filtering"),
    ("config-not-string", "POST", "/1.0/profiles",
     {"name": "v", "config": {"limits.cpu": 2}}, "limits.cpu"),
    ("name-slash", "POST", "/1.0/profiles", {"name": "a/b"}, "name"),
    ("name-empty", "POST", "/1.0/profiles", {"name": ""}, "name"),
    ("name-missing", "POST", "/1.0/profiles", {"config": {}}, "name"),
    ("not-json", "POST", "/1.0/profiles", b"{not json", "JSON"),
    ("json-array", "POST", "/1.0/profiles", b'[{"name": "v"}]', "object"),
    ("put-unknown-key", "PUT", "/1.0/profiles/base",
     {"description": "changed", "config": {"foo.bar": "1"}, "devices": {}}, "foo.bar"),
    ("patch-bad-device", "PATCH", "/1.0/profiles/base",
     {"devices": {"eth0": {"type": "nic", "nictype": "bridged", "parent": "br0",
                           "hwaddr": "nope"}}}, "hwaddr"),
    ("patch-not-json", "PATCH", "/1.0/profiles/base", b"config=1", "JSON"),
    ("rename-slash", "POST", "/1.0/profiles/base", {"name": "a/b"}, "name"),
    ("name-64-chars", "POST", "/1.0/profiles", {"name": "n" * 64}, "name"),
    ("name-dot-dot", "POST", "/1.0/profiles", {"name": ".."}, "name"),
    ("name-dash", "POST", "/1.0/profiles", {"name": "-x"}, "name"),
    ("project-name-underscore", "POST", "/1.0/projects", {"name": "a_b"}, "name"),
    ("project-rename-underscore", "POST", "/1.0/projects/dev", {"name": "a_b"}, "name"),
    ("server-unknown-key-put", "PUT", "/1.0", {"config": {"bogus.key": "1"}}, "bogus.key"),
    ("server-unknown-key-patch", "PATCH", "/1.0", {"config": {"bogus.key": "1"}}, "bogus.key"),
    ("server-max-voters-even", "PATCH", "/1.0", {"config": {"cluster.max_voters": "4"}},
     "cluster.max_voters"),
    ("server-notify-not-int", "PATCH", "/1.0", {"config": {"corral.notify_timeout": "soon"}},
     "corral.notify_timeout"),
    ("server-body-size-small", "PATCH", "/1.0", {"config": {"corral.max_body_size": "100"}},
     "corral.max_body_size"),
    ("server-json-array", "PUT", "/1.0", b"[]", "object"),
    ("project-bad-feature", "PATCH", "/1.0/projects/dev",
     {"config": {"features.images": "yes"}}, "features.images"),
    ("project-unknown-key", "PUT", "/1.0/projects/dev",
     {"config": {"limits.cpu": "1"}}, "limits.cpu"),
]


@pytest.mark.parametrize("method,path,body,key", [c[1:] for c in BAD_REQUESTS],
                         ids=[c[0] for c in BAD_REQUESTS])
def test_validation_400_names_key_and_changes_nothing(daemon_factory, method, path, body, key):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev", "description": "d"}, status=201)
    create_profile(d, "base", None, description="base",
                   config={"user.a": "1"}, devices={"eth0": dict(NIC)})
    sync(d, "PATCH", "/1.0", {"config": {"corral.notify_timeout": "1500"}})
    before = snapshot(d)
    error(d, method, path, body, status=400, contains=key)
    assert snapshot(d) == before
    error(d, "GET", "/1.0/profiles/v", status=404)


def test_duplicate_profile_409_changes_nothing(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    create_profile(d, "p", None, description="original", config={"user.a": "1"})
    create_profile(d, "p", "dev", description="dev one")  # other project: fine
    before = snapshot(d)
    error(d, "POST", "/1.0/profiles", {"name": "p", "description": "dup",
                                       "config": {"user.b": "2"}}, status=409)
    error(d, "POST", "/1.0/profiles?project=dev", {"name": "p"}, status=409)
    error(d, "POST", "/1.0/profiles", {"name": "default"}, status=409)
    assert snapshot(d) == before
    assert profile(d, "p")["description"] == "original"


# --- restricted.devices.nic.filtering=enforce ------------------------------------------


def test_nic_filtering_enforced(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects",
         {"name": "dev", "config": {"restricted.devices.nic.filtering": "enforce"}},
         status=201)
    lacking = dict(FILTERED_NIC)
    del lacking["security.mac_filtering"]
    before = snapshot(d)
    error(d, "POST", "/1.0/profiles?project=dev",
          {"name": "f", "devices": {"eth7": lacking}}, status=403,
          contains=("eth7", "security.mac_filtering"))
    off = dict(FILTERED_NIC, **{"security.ipv6_filtering": "false"})
    error(d, "POST", "/1.0/profiles?project=dev",
          {"name": "f", "devices": {"eth0": off}}, status=403,
          contains=("eth0", "security.ipv6_filtering"))
    assert snapshot(d) == before
    error(d, "GET", "/1.0/profiles/f?project=dev", status=404)

    create_profile(d, "f", "dev", devices={"eth0": dict(FILTERED_NIC)})
    assert profile(d, "f", "dev")["devices"] == {"eth0": FILTERED_NIC}
    # Non-bridged NICs and other devices are not concerned.
    create_profile(d, "g", "dev", devices={
        "m0": {"type": "nic", "nictype": "macvlan", "parent": "eth0"},
        "d0": {"type": "disk", "path": "/mnt", "source": "/srv"}})

    # Updates are held to the same rule.
    before = snapshot(d)
    error(d, "PUT", "/1.0/profiles/f?project=dev",
          {"config": {}, "devices": {"eth0": lacking}}, status=403, contains="eth0")
    error(d, "PATCH", "/1.0/profiles/f?project=dev",
          {"devices": {"eth1": lacking}}, status=403, contains="eth1")
    error(d, "PATCH", "/1.0/profiles/default?project=dev",
          {"devices": {"eth1": lacking}}, status=403, contains="eth1")
    assert snapshot(d) == before

    # The default project does not enforce: the same NIC is accepted there.
    create_profile(d, "f", None, devices={"eth7": lacking})


def test_nic_filtering_enforce_refused_over_unfiltered_profile(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    create_profile(d, "open", "dev", devices={"eth0": dict(NIC)})
    before = snapshot(d)
    error(d, "PATCH", "/1.0/projects/dev",
          {"config": {"restricted.devices.nic.filtering": "enforce"}}, status=403,
          contains=("open", "eth0"))
    error(d, "PUT", "/1.0/projects/dev",
          {"config": dict(DEFAULT_FEATURES, **{"restricted.devices.nic.filtering": "enforce"})},
          status=403, contains=("open", "eth0"))
    assert snapshot(d) == before
    # Once the profile filters, enforcing is accepted.
    sync(d, "PATCH", "/1.0/profiles/open?project=dev", {"devices": {"eth0": dict(FILTERED_NIC)}})
    sync(d, "PATCH", "/1.0/projects/dev",
         {"config": {"restricted.devices.nic.filtering": "enforce"}})
    assert meta(d, "/1.0/projects/dev")["config"]["restricted.devices.nic.filtering"] == \
        "enforce"


def test_features_change_only_on_empty_projects(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    create_profile(d, "p", "dev", config={"user.a": "1"})
    before = snapshot(d)
    for method, body in (("PATCH", {"config": {"features.profiles": "false"}}),
                         ("PUT", {"config": dict(DEFAULT_FEATURES,
                                                 **{"features.images": "false"})})):
        st, _, env = call(d, method, "/1.0/projects/dev", body)
        assert 400 <= st < 500, (st, env)
        assert env["type"] == "error" and "empty" in env["error"], env
    assert snapshot(d) == before
    assert profile(d, "p", "dev")["config"] == {"user.a": "1"}
    # A PUT that leaves the feature keys out keeps them (no change).
    sync(d, "PUT", "/1.0/projects/dev", {"config": {"user.x": "1"}})
    assert meta(d, "/1.0/projects/dev")["config"] == dict(DEFAULT_FEATURES, **{"user.x": "1"})

    # Emptied (its own default profile does not count), the project may
    # switch its profiles off: its default profile goes, the default
    # project's profiles are used; switching back gives it a new one.
    sync(d, "DELETE", "/1.0/profiles/p?project=dev")
    sync(d, "PATCH", "/1.0/projects/dev", {"config": {"features.profiles": "false"}})
    assert meta(d, "/1.0/projects/dev")["used_by"] == []
    create_profile(d, "only-in-default", None)
    assert [u.split("?")[0] for u in meta(d, "/1.0/profiles?project=dev")] == \
        ["/1.0/profiles/default", "/1.0/profiles/only-in-default"]
    sync(d, "PATCH", "/1.0/projects/dev", {"config": {"features.profiles": "true"}})
    assert meta(d, "/1.0/profiles?project=dev") == ["/1.0/profiles/default?project=dev"]


# --- ETag / If-Match ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("kind", ["profile", "project", "server"])
def test_if_match(daemon_factory, kind, method):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects", {"name": "dev"}, status=201)
    create_profile(d, "p", "dev", config={"user.a": "1"})
    if kind == "profile":
        path = "/1.0/profiles/p?project=dev"
        body1 = {"description": "one", "config": {"user.a": "2"}, "devices": {}}
        body2 = {"description": "two", "config": {"user.a": "3"}, "devices": {}}
    elif kind == "project":
        path = "/1.0/projects/dev"
        body1 = {"description": "one", "config": dict(DEFAULT_FEATURES, **{"user.a": "2"})}
        body2 = {"description": "two", "config": dict(DEFAULT_FEATURES, **{"user.a": "3"})}
    else:
        path = "/1.0"
        body1 = {"config": {"corral.notify_timeout": "1000"}}
        body2 = {"config": {"corral.notify_timeout": "1100"}}

    _, hdrs = sync(d, "GET", path)
    stale = etag_of(hdrs)
    sync(d, method, path, body1, headers={"If-Match": stale})  # current: 200
    _, hdrs = sync(d, "GET", path)
    current = etag_of(hdrs)
    assert current != stale

    before = snapshot(d)
    msg = error(d, method, path, body2, status=412, headers={"If-Match": stale})
    assert "etag" in msg.lower(), msg
    error(d, method, path, body2, status=412, headers={"If-Match": '"0000"'})
    assert snapshot(d) == before
    _, hdrs = sync(d, "GET", path)
    assert etag_of(hdrs) == current

    sync(d, method, path, body2, headers={"If-Match": current})
    after = meta(d, path)
    if kind == "server":
        assert after["config"]["corral.notify_timeout"] == "1100"
    else:
        assert after["description"] == "two" and after["config"]["user.a"] == "3"
    # Without If-Match there is no precondition.
    sync(d, method, path, body1)


# --- server config -------------------------------------------------------------------------


def test_server_config_put_patch_unset(daemon_factory):
    d = start(daemon_factory)
    assert meta(d, "/1.0")["config"] == {}
    sync(d, "PATCH", "/1.0", {"config": {"corral.notify_timeout": "1500"}})
    assert meta(d, "/1.0")["config"] == {"corral.notify_timeout": "1500"}
    sync(d, "PATCH", "/1.0", {"config": {"cluster.max_voters": "5",
                                         "core.remote_token_expiry": "1d 12H"}})
    assert meta(d, "/1.0")["config"] == {"corral.notify_timeout": "1500",
                                         "cluster.max_voters": "5",
                                         "core.remote_token_expiry": "1d 12H"}
    sync(d, "PATCH", "/1.0", {"config": {"cluster.max_voters": ""}})
    assert meta(d, "/1.0")["config"] == {"corral.notify_timeout": "1500",
                                         "core.remote_token_expiry": "1d 12H"}
    sync(d, "PUT", "/1.0", {"config": {"cluster.max_standby": "1"}})
    assert meta(d, "/1.0")["config"] == {"cluster.max_standby": "1"}
    # Survives a restart.
    assert d.restart(ready_path=READY) == 0
    assert meta(d, "/1.0")["config"] == {"cluster.max_standby": "1"}


def test_trust_password_stored_hashed(daemon_factory):
    d = start(daemon_factory)
    secret = b"s3cret"
    sync(d, "PATCH", "/1.0", {"config": {"core.trust_password": secret.decode(),
                                         "corral.notify_timeout": "1500"}})
    cfg = meta(d, "/1.0")["config"]
    assert cfg == {"core.trust_password": "true", "corral.notify_timeout": "1500"}

    def check_no_secret():
        hashes = set()
        for path, data in read_files(d.base):
            assert secret not in data, "%s contains the trust password" % path
            hashes.update(HASH_RE.findall(data))
        assert secret.decode() not in d.log()
        assert secret.decode() not in d.stderr()
        return hashes

    hashes = check_no_secret()
    assert len(hashes) == 1, "expected the scrypt hash in the raft log: %r" % hashes
    (stored,) = hashes

    # A client that PUTs back what GET showed keeps the password.
    sync(d, "PUT", "/1.0", {"config": dict(cfg, **{"corral.notify_timeout": "1600"})})
    assert meta(d, "/1.0")["config"] == {"core.trust_password": "true",
                                         "corral.notify_timeout": "1600"}
    assert check_no_secret() == {stored}, "the PUT of \"true\" re-hashed the password"
    assert d.stop() == 0
    assert check_no_secret() == {stored}

    if libdqlite_loadable():
        rows = dqlite_sql(daemon_factory, d,
                          "SELECT value FROM config WHERE key = 'core.trust_password'")
        assert rows == [[[stored.decode()]]], rows

    d.start(ready_path=READY)
    assert meta(d, "/1.0")["config"]["core.trust_password"] == "true"
    # An empty value unsets it.
    sync(d, "PATCH", "/1.0", {"config": {"core.trust_password": ""}})
    assert meta(d, "/1.0")["config"] == {"corral.notify_timeout": "1600"}
    assert d.restart(ready_path=READY) == 0
    assert "core.trust_password" not in meta(d, "/1.0")["config"]
    check_no_secret()


# --- durability ----------------------------------------------------------------------------


def test_profiles_survive_sigkill(daemon_factory):
    d = start(daemon_factory, debug=False)
    n = 50
    names = ["p%02d" % i for i in range(n)]
    for i, name in enumerate(names):
        create_profile(d, name, None, description="d%d" % i,
                       config={"user.i": str(i)}, devices={"eth0": dict(NIC)})
    d.proc.send_signal(signal.SIGKILL)
    assert d.proc.wait(timeout=10) == -signal.SIGKILL
    d.start(ready_path=READY)
    urls = meta(d, "/1.0/profiles")
    assert urls == ["/1.0/profiles/default"] + ["/1.0/profiles/" + n for n in names]
    objs = {p["name"]: p for p in meta(d, "/1.0/profiles?recursion=1")}
    for i, name in enumerate(names):
        assert objs[name]["description"] == "d%d" % i
        assert objs[name]["config"] == {"user.i": str(i)}
        assert objs[name]["devices"] == {"eth0": NIC}


def test_project_survives_clean_restart(daemon_factory):
    d = start(daemon_factory)
    sync(d, "POST", "/1.0/projects",
         {"name": "keep", "description": "kept", "config": {"user.k": "v"}}, status=201)
    create_profile(d, "inside", "keep", config={"user.x": "1"})
    before = snapshot(d)
    assert d.stop() == 0
    d.start(ready_path=READY)
    assert snapshot(d) == before
    assert meta(d, "/1.0/projects/keep")["config"] == dict(DEFAULT_FEATURES, **{"user.k": "v"})


def test_newer_schema_refused(daemon_factory):
    if not libdqlite_loadable():
        pytest.skip("libdqlite.so.0 cannot be loaded: no way to edit a stopped database")
    d = start(daemon_factory)
    create_profile(d, "keepme", None, description="still here")
    assert d.stop() == 0
    rows = dqlite_sql(daemon_factory, d, "SELECT version FROM schema")
    old = rows[0][0][0]
    assert isinstance(old, int) and old >= 1, rows
    rows = dqlite_sql(daemon_factory, d, "UPDATE schema SET version = %d" % (old + 1),
                      "SELECT version FROM schema")
    assert rows[1] == [[old + 1]], rows

    d.spawn()
    rc = d.wait_exit(15)
    assert rc != 0, d.diagnostics()
    err = d.stderr()
    assert "schema" in err and str(old + 1) in err and "newer" in err, d.diagnostics()

    # Refusing did not damage anything: back to the real version, it starts.
    dqlite_sql(daemon_factory, d, "UPDATE schema SET version = %d" % old)
    d.start(ready_path=READY)
    assert profile(d, "keepme")["description"] == "still here"


# --- body size ------------------------------------------------------------------------------


def test_oversized_profile_body_413(daemon_factory):
    d = start(daemon_factory)
    pad = b" " * (9 * MIB)
    body = b'{"name": "huge", "description": "' + pad + b'"}'
    head = ("POST /1.0/profiles HTTP/1.1\r\nHost: unix.socket\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()
    with d.connect(timeout=10.0) as c:
        t, _ = send_in_background(c.sock, [head, body])
        r = c.read_response()
        t.join(10)
    assert r.status == 413, r
    assert r.json()["error_code"] == 413, r
    error(d, "GET", "/1.0/profiles/huge", status=404)


def test_max_body_size_applied_at_once(daemon_factory):
    d = start(daemon_factory)
    sync(d, "PATCH", "/1.0", {"config": {"corral.max_body_size": "4096"}})
    assert meta(d, "/1.0")["config"]["corral.max_body_size"] == "4096"

    def body_of(name, size):
        b = {"name": name, "description": ""}
        b["description"] = "x" * (size - len(json.dumps(b)))
        raw = json.dumps(b).encode()
        assert len(raw) == size
        return raw

    with d.connect() as c:
        r = c.request("POST", "/1.0/profiles", body=body_of("big", 5000))
    assert r.status == 413, r
    assert r.json()["error_code"] == 413, r
    error(d, "GET", "/1.0/profiles/big", status=404)
    sync(d, "POST", "/1.0/profiles", body_of("ok3000", 3000), status=201)
    assert len(profile(d, "ok3000")["description"]) > 2900

    # Applies after a restart too, and raising it lifts the limit at once.
    assert d.restart(ready_path=READY) == 0
    with d.connect() as c:
        assert c.request("POST", "/1.0/profiles", body=body_of("big", 5000)).status == 413
    sync(d, "PATCH", "/1.0", {"config": {"corral.max_body_size": ""}})
    sync(d, "POST", "/1.0/profiles", body_of("big", 5000), status=201)


# --- dqlite-sql: run as a script ------------------------------------------------------------
#
# python3 test_state_api.py dqlite-sql DBDIR ADDRESS SQL...
# Starts node 1 on DBDIR with the raft/bind ADDRESS of database/info, waits
# for it to elect itself, runs each SQL statement on database "corral" and
# prints a JSON list with the rows of each (null for non-SELECT).


def _pad(b):
    return b + b"\0" * (-len(b) % 8)


def _text(s):
    return _pad(s.encode() + b"\0")


class _Wire:
    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect("\0" + address[1:] if address.startswith("@") else address)
        self.sock.sendall(struct.pack("<Q", 1))  # protocol version

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("dqlite node closed the connection")
            out += chunk
        return out

    def call(self, mtype, body):
        self.sock.sendall(struct.pack("<IBBH", len(body) // 8, mtype, 0, 0) + body)
        words, rtype, _, _ = struct.unpack("<IBBH", self._read(8))
        body = self._read(words * 8)
        if rtype == 0:  # FAILURE
            code = struct.unpack("<Q", body[:8])[0]
            raise RuntimeError("dqlite failure %d: %s"
                               % (code, body[8:].split(b"\0")[0].decode()))
        return rtype, body


def _string_at(body, off):
    end = body.index(b"\0", off)
    return body[off:end].decode(), off + len(_pad(body[off:end + 1]))


def _decode_rows(body):
    ncols = struct.unpack_from("<Q", body, 0)[0]
    off = 8
    for _ in range(ncols):
        _, off = _string_at(body, off)
    rows = []
    hdr_len = ((ncols + 1) // 2 + 7) // 8 * 8
    while True:
        if body[off:off + 8] in (b"\xff" * 8, b"\xee" * 8):
            assert body[off] == 0xff, "multi-part ROWS not supported"
            return rows
        types = [(body[off + i // 2] >> (4 * (i % 2))) & 0xf for i in range(ncols)]
        off += hdr_len
        row = []
        for t in types:
            if t in (1, 9, 11):
                row.append(struct.unpack_from("<q", body, off)[0])
                off += 8
            elif t == 2:
                row.append(struct.unpack_from("<d", body, off)[0])
                off += 8
            elif t in (3, 10):
                s, off = _string_at(body, off)
                row.append(s)
            elif t == 5:
                row.append(None)
                off += 8
            elif t == 4:
                n = struct.unpack_from("<Q", body, off)[0]
                off += 8
                row.append(body[off:off + n].hex())
                off += n + (-n % 8)
            else:
                raise ValueError("column type %d" % t)
        rows.append(row)


def _dqlite_sql_main(dbdir, address, statements):
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    lib = ctypes.CDLL("libdqlite.so.0")
    vp = ctypes.c_void_p
    lib.dqlite_node_create.argtypes = [ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p,
                                       ctypes.POINTER(vp)]
    lib.dqlite_node_errmsg.argtypes = [vp]
    lib.dqlite_node_errmsg.restype = ctypes.c_char_p
    lib.dqlite_node_set_bind_address.argtypes = [vp, ctypes.c_char_p]
    lib.dqlite_node_set_network_latency_ms.argtypes = [vp, ctypes.c_uint]
    for f in ("dqlite_node_start", "dqlite_node_stop", "dqlite_node_destroy"):
        getattr(lib, f).argtypes = [vp]
    node = vp()
    if lib.dqlite_node_create(1, address.encode(), dbdir.encode(), ctypes.byref(node)) != 0:
        raise RuntimeError("dqlite_node_create failed")
    try:
        if (lib.dqlite_node_set_bind_address(node, address.encode()) != 0
                or lib.dqlite_node_set_network_latency_ms(node, 20) != 0
                or lib.dqlite_node_start(node) != 0):
            raise RuntimeError("dqlite node: %s" % lib.dqlite_node_errmsg(node).decode())
        try:
            w = _Wire(address)
            deadline = time.monotonic() + 15
            while True:  # LEADER until the node has elected itself
                _, body = w.call(0, struct.pack("<Q", 0))
                if struct.unpack_from("<Q", body, 0)[0] != 0 and body[8] != 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("no leader")
                time.sleep(0.02)
            w.call(1, struct.pack("<Q", 0))  # CLIENT
            _, body = w.call(3, _text("corral") + struct.pack("<Q", 0) + _text("volatile"))
            db = struct.unpack_from("<I", body, 0)[0]
            out = []
            for sql in statements:
                if sql.lstrip().upper().startswith("SELECT"):
                    _, body = w.call(9, struct.pack("<Q", db) + _text(sql))  # QUERY_SQL
                    out.append(_decode_rows(body))
                else:
                    w.call(8, struct.pack("<Q", db) + _text(sql))  # EXEC_SQL
                    out.append(None)
            w.sock.close()
        finally:
            lib.dqlite_node_stop(node)
    finally:
        lib.dqlite_node_destroy(node)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "dqlite-sql":
        sys.exit("usage: %s dqlite-sql DBDIR ADDRESS SQL..." % sys.argv[0])
    _dqlite_sql_main(sys.argv[2], sys.argv[3], sys.argv[4:])
