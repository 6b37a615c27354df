"""Debian's real `lxc` 5.0.2 client against corrald over HTTPS.

Contract: reference/lxd-client-compat.md sections 2-4 (what `lxc remote add`,
`lxc info`, `lxc config trust ...`, `lxc project/profile/operation list`
send and read), DESIGN.md section 6 (single-use expiring tokens, 403 for
untrusted callers, server-level secrets for admins only).

Each client lives in its own temp LXD_CONF directory (lxc generates its
client certificate there on first use), never reads stdin, and runs with a
timeout. corrald is told to listen on 127.0.0.1:0 over its Unix socket; the
real port comes from `GET /1.0` -> environment.addresses[0].
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml

from helpers import wait_for

LXC = shutil.which("lxc")
PASSWORD = "corral-compat-pw"
TIMEOUT = 30

pytestmark = pytest.mark.skipif(LXC is None, reason="lxc (lxd-client) not installed")


class Lxc:
    """One `lxc` client: its own LXD_CONF (and so its own client cert)."""

    def __init__(self, socket_path=None):
        self.conf = tempfile.mkdtemp(prefix="corral-lxc-")
        self.socket_path = socket_path

    def env(self):
        env = {"LXD_CONF": self.conf, "HOME": self.conf,
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if self.socket_path:
            env["LXD_SOCKET"] = self.socket_path
        return env

    def run(self, *args, timeout=TIMEOUT, input=None):
        """Run lxc; stdin is empty unless @input (a YAML document for
        `edit`) is given, so lxc can never wait on a prompt."""
        if input is None:
            return subprocess.run([LXC] + list(args), env=self.env(),
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout)
        return subprocess.run([LXC] + list(args), env=self.env(), input=input,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, timeout=TIMEOUT, input=None):
        r = self.run(*args, timeout=timeout, input=input)
        assert r.returncode == 0, "lxc %s: rc=%d\nstdout=%s\nstderr=%s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr)
        return r.stdout

    def fails(self, *args, timeout=TIMEOUT):
        r = self.run(*args, timeout=timeout)
        assert r.returncode != 0, "lxc %s unexpectedly succeeded:\n%s" % (
            " ".join(args), r.stdout)
        return r.stderr

    def fingerprint(self):
        """SHA-256 of the DER of this client's certificate."""
        with open(os.path.join(self.conf, "client.crt"), "rb") as f:
            pem = f.read().decode()
        body = "".join(line for line in pem.splitlines() if "-----" not in line)
        return hashlib.sha256(base64.b64decode(body)).hexdigest()

    def cleanup(self):
        shutil.rmtree(self.conf, ignore_errors=True)


@pytest.fixture
def clients():
    made = []

    def make(**kw):
        c = Lxc(**kw)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.cleanup()
        for c in made:
            assert not os.path.exists(c.conf)


@pytest.fixture
def d(daemon_factory):
    return daemon_factory.start(ready_path="/1.0/projects", debug=True)


def listen(d, **config):
    body = {"core.https_address": "127.0.0.1:0", "core.trust_password": PASSWORD}
    body.update(config)
    status, _, resp = d.request("PATCH", "/1.0", body={"config": body})
    assert status == 200, resp
    status, _, resp = d.get("/1.0")
    assert status == 200, resp
    addrs = resp["metadata"]["environment"]["addresses"]
    assert addrs and addrs[0].startswith("127.0.0.1:") and not addrs[0].endswith(":0"), addrs
    return addrs[0]


@pytest.fixture
def addr(d):
    return listen(d)


def add_remote(c, addr, name="r"):
    out = c.ok("remote", "add", name, "https://" + addr, "--accept-certificate",
               "--password", PASSWORD)
    assert "Client certificate now trusted by server: %s" % name in out, out
    return c


def running_ops(d):
    status, _, body = d.get("/1.0/operations?recursion=1")
    assert status == 200, body
    return body["metadata"].get("running", [])


def new_token(c, name, *extra):
    """`lxc config trust add --name NAME` on the default remote; the token."""
    out = c.ok("config", "trust", "add", "--name", name, *extra)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == "Client %s certificate add token:" % name, out
    token = lines[1].strip()
    decoded = json.loads(base64.b64decode(token))
    assert decoded["client_name"] == name
    return token, decoded


def token_names(c, remote="r"):
    out = c.ok("config", "trust", "list-tokens", remote + ":", "--format", "json")
    return sorted(t["ClientName"] for t in json.loads(out))


# --- password, info, trust list ---------------------------------------------------


def test_remote_add_password_info_trust_list(d, addr, clients):
    bad = clients()
    err = bad.fails("remote", "add", "bad", "https://" + addr, "--accept-certificate",
                    "--password", "wrong-password")
    assert "not authorized" in err, err

    c = add_remote(clients(), addr)
    info = yaml.safe_load(c.ok("info", "r:"))
    assert info["auth"] == "trusted"
    assert info["api_version"] == "1.0" and info["public"] is False
    assert "tls" in info["auth_methods"]
    for ext in ("projects", "certificate_update", "certificate_token", "remote_token_expiry"):
        assert ext in info["api_extensions"], info["api_extensions"]
    assert info["environment"]["addresses"] == [addr]
    assert info["environment"]["server"] == "corral"

    # The server certificate lxc pinned is the daemon's.
    with open(os.path.join(c.conf, "servercerts", "r.crt")) as f, open(d.path("server.crt")) as g:
        assert f.read().strip() == g.read().strip()

    fp = c.fingerprint()
    listed = json.loads(c.ok("config", "trust", "list", "r:", "--format", "json"))
    assert [x["fingerprint"] for x in listed] == [fp]
    assert listed[0]["type"] == "client" and listed[0]["restricted"] is False
    table = c.ok("config", "trust", "list", "r:")
    assert fp[:12] in table, table

    status, _, body = d.get("/1.0/certificates")
    assert body["metadata"] == ["/1.0/certificates/" + fp]

    # show / edit (certificate_update), by prefix.
    shown = yaml.safe_load(c.ok("config", "trust", "show", "r:" + fp[:12]))
    assert shown["name"] == listed[0]["name"] and shown["restricted"] is False
    assert shown["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    shown["name"] = "renamed"
    c.ok("config", "trust", "edit", "r:" + fp[:12], input=yaml.safe_dump(shown))
    listed = json.loads(c.ok("config", "trust", "list", "r:", "--format", "json"))
    assert [(x["name"], x["fingerprint"]) for x in listed] == [("renamed", fp)]
    assert PASSWORD not in d.log()


# --- tokens -------------------------------------------------------------------------


def test_token_add_redeem_remove(d, addr, clients):
    admin = add_remote(clients(), addr)
    admin.ok("remote", "switch", "r")
    token, decoded = new_token(admin, "c2")
    assert decoded["addresses"] == [addr]
    with open(d.path("server.crt"), "rb") as f:
        pem = f.read().decode()
    der = base64.b64decode("".join(x for x in pem.splitlines() if "-----" not in x))
    assert decoded["fingerprint"] == hashlib.sha256(der).hexdigest()
    assert decoded["expires_at"]
    assert token_names(admin) == ["c2"]
    ops = [o for o in running_ops(d) if o["class"] == "token"]
    assert len(ops) == 1 and ops[0]["metadata"]["request"]["name"] == "c2"
    assert ops[0]["may_cancel"] is True

    # A second client joins with the token alone.
    second = clients()
    second.ok("remote", "add", "r2", token)
    info = yaml.safe_load(second.ok("info", "r2:"))
    assert info["auth"] == "trusted"
    assert token_names(admin) == []
    assert [o for o in running_ops(d) if o["class"] == "token"] == []

    listed = json.loads(admin.ok("config", "trust", "list", "r:", "--format", "json"))
    by_fp = {x["fingerprint"]: x for x in listed}
    fp2 = second.fingerprint()
    assert by_fp[fp2]["name"] == "c2" and by_fp[fp2]["restricted"] is False

    # Single use: a third client cannot reuse it.
    third = clients()
    err = third.fails("remote", "add", "r3", token)
    assert "not authorized" in err, err

    # Removal by the 12-character prefix lxc shows; the client is cut off.
    second.ok("query", "r2:/1.0/certificates")
    admin.ok("config", "trust", "remove", "r:" + fp2[:12])
    err = second.fails("query", "r2:/1.0/certificates")
    assert "not authorized" in err, err
    assert "/1.0/certificates/" + fp2 not in d.get("/1.0/certificates")[2]["metadata"]
    assert decoded["secret"] not in d.log()


def test_token_revoke(d, addr, clients):
    admin = add_remote(clients(), addr)
    admin.ok("remote", "switch", "r")
    token, _ = new_token(admin, "c3")
    assert token_names(admin) == ["c3"]
    out = admin.ok("config", "trust", "revoke-token", "r:c3")
    assert "c3" in out
    assert token_names(admin) == []
    ops = admin.ok("operation", "list", "r:", "--format", "json")
    assert [o["status"] for o in json.loads(ops) if o["class"] == "token"] == ["Cancelled"]
    err = clients().fails("remote", "add", "r3", token)
    assert "not authorized" in err, err


def test_token_expires(d, clients):
    addr = listen(d, **{"core.remote_token_expiry": "2S"})
    admin = add_remote(clients(), addr)
    admin.ok("remote", "switch", "r")
    token, decoded = new_token(admin, "late")
    assert token_names(admin) == ["late"]
    op_id = [o["id"] for o in running_ops(d) if o["class"] == "token"][0]

    assert wait_for(lambda: token_names(admin) == [], timeout=10.0, interval=0.5)
    op = yaml.safe_load(admin.ok("operation", "show", "r:" + op_id))
    assert op["status"] == "Failure" and op["err"] == "token expired", op
    assert "msg=\"trust token expired\"" in d.log()
    err = clients().fails("remote", "add", "late", token)
    assert "not authorized" in err, err
    assert len(d.get("/1.0/certificates")[2]["metadata"]) == 1


def test_token_refused_without_network_listener(d, clients):
    # Over the Unix socket (lxc's "local" remote) with no core.https_address.
    local = clients(socket_path=d.socket_path)
    err = local.fails("config", "trust", "add", "--name", "nope")
    assert "Can't issue token when server isn't listening on network" in err, err
    assert running_ops(d) == []
    # Once listening, the same command works and names the listener.
    addr = listen(d)
    _, decoded = new_token(local, "yes")
    assert decoded["addresses"] == [addr]


def monitor(factory, c, remote):
    """`lxc monitor REMOTE: --type=operation` in the background, output to a file."""
    path = os.path.join(c.conf, "monitor.out")
    with open(path, "wb") as out:
        p = factory.track_process(subprocess.Popen(
            [LXC, "monitor", remote + ":", "--type=operation"], env=c.env(),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))
    return p, path


def test_restricted_client_sees_no_tokens(daemon_factory, d, addr, clients):
    admin = add_remote(clients(), addr)
    admin.ok("remote", "switch", "r")
    token, _ = new_token(admin, "limited", "--restricted", "--projects", "default")
    limited = clients()
    limited.ok("remote", "add", "rl", token)
    listed = json.loads(admin.ok("config", "trust", "list", "r:", "--format", "json"))
    assert {x["name"]: x["restricted"] for x in listed}["limited"] is True

    # Both watch the event stream while the admin makes another token.
    streams = d.log().count("path=/1.0/events status=101")
    mon_admin, out_admin = monitor(daemon_factory, admin, "r")
    mon_limited, out_limited = monitor(daemon_factory, limited, "rl")
    assert wait_for(lambda: d.log().count("path=/1.0/events status=101") >= streams + 2,
                    timeout=10.0), d.log()[-2000:]

    # A pending token of the admin: its secret must not reach the
    # restricted client, neither as an event, in the operation list nor
    # by id.
    pending, decoded = new_token(admin, "pending")
    try:
        assert wait_for(lambda: decoded["secret"] in open(out_admin).read(), timeout=10.0)
        time.sleep(0.3)
        assert mon_limited.poll() is None, open(out_limited).read()
        assert decoded["secret"] not in open(out_limited).read()
    finally:
        for p in (mon_admin, mon_limited):
            p.kill()
            p.wait(timeout=10)
    op_id = [o["id"] for o in running_ops(d) if o["class"] == "token"][0]
    raw = limited.ok("query", "--raw", "rl:/1.0/operations?recursion=1")
    assert decoded["secret"] not in raw
    ops = json.loads(raw)["metadata"]
    assert all(o["class"] != "token" for v in ops.values() for o in v), ops
    err = limited.fails("query", "rl:/1.0/operations/" + op_id)
    assert "not found" in err, err
    err = limited.fails("query", "-X", "DELETE", "rl:/1.0/operations/" + op_id)
    assert "not found" in err, err
    assert token_names(admin) == ["pending"]
    # The admin still sees and lists it.
    assert decoded["secret"] in admin.ok("query", "r:/1.0/operations/" + op_id)


# --- projects, profiles, operations ---------------------------------------------------


def test_projects_profiles_operations(d, addr, clients):
    c = add_remote(clients(), addr)

    out = c.ok("project", "list", "r:")
    assert "default" in out and "NAME" in out, out
    projects = json.loads(c.ok("project", "list", "r:", "--format", "json"))
    assert [p["name"] for p in projects] == ["default"]

    out = c.ok("profile", "list", "r:")
    assert "default" in out, out
    out = c.ok("profile", "create", "r:p1")
    assert "Profile p1 created" in out, out
    shown = yaml.safe_load(c.ok("profile", "show", "r:p1"))
    assert shown["name"] == "p1" and shown["config"] == {} and shown["devices"] == {}
    names = [p["name"] for p in json.loads(c.ok("profile", "list", "r:", "--format", "json"))]
    assert sorted(names) == ["default", "p1"]
    status, _, body = d.get("/1.0/profiles/p1")
    assert status == 200, body

    out = c.ok("operation", "list", "r:")
    assert "ID" in out and "STATUS" in out, out
    assert json.loads(c.ok("operation", "list", "r:", "--format", "json")) == []
