"""`corral cluster enable|add|join|list|show|remove|list-tokens|revoke-token`
against real corrald processes.

Contract: DESIGN.md section 5 (token output: "Member NAME join token:" then
the token alone on its line, --quiet prints only the token; a token is
standard base64 of compact JSON with LXD's field names),
reference/lxd-client-compat.md "lxc cluster list|add|remove|show", and
issue 7 (`corral cluster join TOKEN --address IP:PORT` checks the cluster
certificate against the token before sending LXD's PUT /1.0/cluster to the
local daemon).

The server side of clustering lands separately: tests that need it skip
when GET /1.0's api_extensions lacks "clustering"; the others run against
any corrald.
"""

import base64
import json
import os
import socket
import subprocess

import pytest

from helpers import CORRAL_BIN, wait_for

WRONG_FP = "ab" * 32
JOIN_KEYS = ["server_name", "fingerprint", "addresses", "secret", "expires_at"]


def corral(d, conf, *args, stdin=None, socket_path=None, timeout=30.0):
    """Run bin/corral against daemon `d` (or `socket_path`) with its own
    CORRAL_CONF."""
    e = dict(os.environ)
    e.pop("CORRAL_DIR", None)
    e["CORRAL_CONF"] = str(conf)
    path = socket_path if socket_path is not None else d.socket_path
    return subprocess.run(
        [CORRAL_BIN, "--socket", path] + list(args),
        input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True, text=True, timeout=timeout, env=e)


def ok(d, conf, *args, **kw):
    r = corral(d, conf, *args, **kw)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def fails(d, conf, *args, **kw):
    r = corral(d, conf, *args, **kw)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("Error: "), (args, r.stderr)
    return r.stderr


def extensions(d):
    st, _, body = d.request("GET", "/1.0")
    assert st == 200, body
    return body["metadata"].get("api_extensions") or []


def need_clustering(d):
    if "clustering" not in extensions(d):
        pytest.skip("corrald does not advertise the \"clustering\" API "
                    "extension yet (the server side of issue 7 lands "
                    "separately)")


def listen_https(d):
    """Set core.https_address to an ephemeral port on 127.0.0.1; fill
    d.https ("127.0.0.1:PORT") and d.fingerprint."""
    st, _, body = d.request("PATCH", "/1.0", body={"config": {
        "core.https_address": "127.0.0.1:0"}})
    assert st == 200, body
    st, _, body = d.request("GET", "/1.0")
    env = body["metadata"]["environment"]
    d.https = env["addresses"][0]
    d.fingerprint = env["certificate_fingerprint"]
    return d


def make_token(obj):
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def decode_token(text):
    raw = base64.b64decode(text, validate=True)
    # Compact JSON, LXD's field order.
    obj = json.loads(raw)
    assert raw.decode() == json.dumps(obj, separators=(",", ":")), raw
    return obj


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def d(daemon_factory):
    return daemon_factory.start(ready_path="/1.0/projects")


# ---- Without the server's clustering ---------------------------------------


def test_list_on_standalone_daemon(d, tmp_path):
    st, _, body = d.request("GET", "/1.0/cluster")
    err = fails(d, tmp_path, "cluster", "list")
    if st == 404:
        # No clustering endpoint yet: the server's own error, exit 1.
        assert err == "Error: %s\n" % body["error"], err
    else:
        assert st == 200, body
        assert body["metadata"]["enabled"] is False
        assert err == "Error: corral server isn't part of a cluster\n"
    # The other formats fail the same way, before listing anything.
    r = corral(d, tmp_path, "cluster", "list", "--format", "json")
    assert r.returncode == 1 and r.stdout == "" and r.stderr == err


def test_list_tokens_and_revoke_on_standalone_daemon(d, tmp_path):
    st, _, body = d.request("GET", "/1.0/cluster")
    want = ("Error: %s\n" % body["error"] if st == 404
            else "Error: corral server isn't part of a cluster\n")
    assert fails(d, tmp_path, "cluster", "list-tokens") == want
    assert fails(d, tmp_path, "cluster", "revoke-token", "m2") == want


def test_add_without_clustering_fails_with_server_message(d, tmp_path):
    r = corral(d, tmp_path, "cluster", "add", "m2")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.endswith("\n")
    # The same request, raw: the CLI printed exactly the server's error.
    st, _, body = d.request("POST", "/1.0/cluster/members",
                            body={"server_name": "m2"})
    assert st >= 400, body
    assert r.stderr == "Error: %s\n" % body["error"]


def test_enable_without_https_address(d, tmp_path):
    err = fails(d, tmp_path, "cluster", "enable", "m1")
    assert err == "Error: This corral server is not available on the network\n"


@pytest.mark.parametrize("token, why", [
    ("not-a-token!", "not base64"),
    ("127.0.0.1:8443", "not base64"),
    (make_token({"client_name": "c", "fingerprint": WRONG_FP,
                 "addresses": ["127.0.0.1:1"], "secret": "s"}), "server_name"),
    (make_token({"server_name": "m2", "fingerprint": "abc",
                 "addresses": ["127.0.0.1:1"], "secret": "s"}), "fingerprint"),
    (make_token({"server_name": "m2", "fingerprint": WRONG_FP,
                 "addresses": [], "secret": "s"}), "addresses"),
    (make_token({"server_name": "m2", "fingerprint": WRONG_FP,
                 "addresses": ["127.0.0.1:1"]}), "secret"),
])
def test_join_malformed_token_fails_before_any_request(tmp_path, token, why):
    # A listening socket standing for the daemon: nothing may connect.
    path = str(tmp_path / "fake.socket")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    srv.setblocking(False)
    try:
        r = corral(None, tmp_path / "conf", "cluster", "join", token,
                   "--address", "127.0.0.1:%d" % free_port(),
                   socket_path=path)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert r.stderr.startswith("Error: Invalid cluster join token: "), r.stderr
        assert why in r.stderr, r.stderr
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()
    # Nothing was written to the client's config either.
    assert not os.path.exists(tmp_path / "conf" / "client.crt")


def test_join_without_address(d, tmp_path):
    token = make_token({"server_name": "m2", "fingerprint": WRONG_FP,
                        "addresses": ["127.0.0.1:1"], "secret": "s",
                        "expires_at": "0001-01-01T00:00:00Z"})
    err = fails(d, tmp_path, "cluster", "join", token)
    assert "--address" in err


def test_join_refuses_fingerprint_mismatch(daemon_factory, tmp_path):
    # The "cluster" is a standalone corrald listening on 127.0.0.1; the
    # token names its address but another certificate.
    target = listen_https(daemon_factory.start(ready_path="/1.0/projects"))
    joiner = daemon_factory.start(ready_path="/1.0/projects")
    token = make_token({"server_name": "m2", "fingerprint": WRONG_FP,
                        "addresses": [target.https], "secret": "s3cr3t",
                        "expires_at": "0001-01-01T00:00:00Z"})
    before = joiner.request("GET", "/1.0")[2]["metadata"]["config"]
    err = fails(joiner, tmp_path, "cluster", "join", token,
                "--address", "127.0.0.1:%d" % free_port())
    assert "fingerprint mismatch" in err, err
    assert target.https in err, err
    assert WRONG_FP in err, err
    assert target.fingerprint in err, err
    assert err.count("\n") == 1, err
    # The joiner was left alone.
    after = joiner.request("GET", "/1.0")[2]["metadata"]["config"]
    assert after == before
    st, _, body = joiner.request("GET", "/1.0/cluster")
    if st == 200:
        assert body["metadata"]["enabled"] is False


def test_join_unreachable_addresses(d, tmp_path):
    token = make_token({"server_name": "m2", "fingerprint": WRONG_FP,
                        "addresses": ["127.0.0.1:%d" % free_port()],
                        "secret": "s", "expires_at": "0001-01-01T00:00:00Z"})
    err = fails(d, tmp_path, "cluster", "join", token,
                "--address", "127.0.0.1:%d" % free_port())
    assert "Unable to connect to any of the cluster members" in err, err


def test_usage_and_unknown_verb(d, tmp_path):
    out = ok(d, tmp_path, "cluster")
    for verb in ("add", "enable", "join", "list", "list-tokens", "remove",
                 "revoke-token", "show"):
        assert "\n  %s " % verb in out, out
    r = corral(d, tmp_path, "cluster", "frobnicate")
    assert r.returncode == 1
    assert 'unknown command "frobnicate" for "corral cluster"' in r.stderr
    r = corral(d, tmp_path, "cluster", "add", "a", "b")
    assert r.returncode == 1 and "Invalid number of arguments" in r.stderr


# ---- With the server's clustering ------------------------------------------


def enable(d, conf, name="m1"):
    listen_https(d)
    assert ok(d, conf, "cluster", "enable", name) == "Clustering enabled\n"


def test_enable_add_tokens_show(d, tmp_path):
    need_clustering(d)
    enable(d, tmp_path)
    err = fails(d, tmp_path, "cluster", "enable", "m1")
    assert err == "Error: This corral server is already clustered\n"

    out = ok(d, tmp_path, "cluster", "add", "m2")
    lines = out.split("\n")
    assert lines[0] == "Member m2 join token:" and lines[2] == "" and len(lines) == 3, out
    tok = decode_token(lines[1])
    assert list(tok) == JOIN_KEYS
    assert tok["server_name"] == "m2"
    st, _, body = d.request("GET", "/1.0/cluster/members/m1")
    assert tok["addresses"] == [body["metadata"]["url"][len("https://"):]]
    assert len(tok["fingerprint"]) == 64 and tok["secret"]
    assert tok["expires_at"].endswith("Z")

    quiet = ok(d, tmp_path, "cluster", "add", "m3", "--quiet")
    assert quiet.count("\n") == 1
    assert decode_token(quiet.strip())["server_name"] == "m3"

    # The token matches the operation's metadata, field by field.
    st, _, body = d.request("GET", "/1.0/operations?recursion=1")
    ops = [op for group in body["metadata"].values() for op in group]
    md = {op["metadata"]["serverName"]: op["metadata"] for op in ops
          if op["class"] == "token" and "serverName" in (op["metadata"] or {})}
    assert md["m2"]["secret"] == tok["secret"]
    assert md["m2"]["fingerprint"] == tok["fingerprint"]
    assert md["m2"]["expiresAt"] == tok["expires_at"]

    out = ok(d, tmp_path, "cluster", "list-tokens")
    assert "| NAME |" in out and "EXPIRES AT" in out
    assert lines[1] in out and quiet.strip() in out
    js = json.loads(ok(d, tmp_path, "cluster", "list-tokens", "--format", "json"))
    assert sorted(t["server_name"] for t in js) == ["m2", "m3"]
    assert all(list(t) == JOIN_KEYS for t in js)

    out = ok(d, tmp_path, "cluster", "revoke-token", "m2")
    assert out == "Cluster join token for local:m2 deleted\n"
    js = json.loads(ok(d, tmp_path, "cluster", "list-tokens", "--format", "json"))
    assert [t["server_name"] for t in js] == ["m3"]
    err = fails(d, tmp_path, "cluster", "revoke-token", "m2")
    assert err == "Error: No cluster join token for member m2 on remote: local\n"

    show = ok(d, tmp_path, "cluster", "show", "m1")
    assert "server_name: m1\n" in show and "roles:\n" in show
    assert fails(d, tmp_path, "cluster", "show", "nope").startswith("Error: ")


def test_join_list_remove(daemon_factory, tmp_path):
    d1 = daemon_factory.start(ready_path="/1.0/projects")
    need_clustering(d1)
    d2 = daemon_factory.start(ready_path="/1.0/projects")
    enable(d1, tmp_path)
    token = ok(d1, tmp_path, "cluster", "add", "m2", "--quiet").strip()

    addr = "127.0.0.1:%d" % free_port()
    out = ok(d2, tmp_path, "cluster", "join", token, "--address", addr)
    assert out == "Member m2 joined the cluster\n"

    def listed():
        out = ok(d1, tmp_path, "cluster", "list", "--format", "json")
        return {m["server_name"]: m for m in json.loads(out)}

    assert wait_for(lambda: len(listed()) == 2, timeout=10.0)
    members = listed()
    assert members["m2"]["url"] == "https://" + addr
    # Both members answer, with the same table header as lxc.
    for d in (d1, d2):
        table = ok(d, tmp_path, "cluster", "list")
        header = table.split("\n")[1]
        cols = [c.strip() for c in header.strip("|").split("|")]
        assert cols == ["NAME", "URL", "ROLES", "ARCHITECTURE",
                        "FAILURE DOMAIN", "DESCRIPTION", "STATE", "MESSAGE"]
        assert "| m1 " in table and "| m2 " in table
        assert "ONLINE" in table
        assert "database-leader" in table
    yml = ok(d1, tmp_path, "cluster", "list", "--format", "yaml")
    assert "- server_name: m1\n" in yml

    # A used token is refused, with the server's message.
    d3 = daemon_factory.start(ready_path="/1.0/projects")
    err = fails(d3, tmp_path, "cluster", "join", token,
                "--address", "127.0.0.1:%d" % free_port())
    assert err.startswith("Error: ")

    # --force asks first, like lxc.
    r = corral(d1, tmp_path, "cluster", "remove", "m2", "--force", stdin="no\n")
    assert r.returncode == 1
    assert "Are you really sure you want to force removing m2? (yes/no): " in r.stdout
    assert r.stderr == "Error: User aborted delete operation\n"
    assert "m2" in listed()

    assert ok(d1, tmp_path, "cluster", "remove", "m2") == "Member m2 removed\n"
    assert list(listed()) == ["m1"]
