"""corrald as a process: state dir, keys, Unix socket, HTTP layer, /1.0, CLI.

Contract: DESIGN.md section 5 and reference/lxd-client-compat.md sections 1-2.
"""

import grp
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import (KIB, MIB, build_request, run_cli,
                     send_in_background, wait_for)

BODY_LIMIT = 8 * MIB
HEAD_LIMIT = 16 * KIB


# --- helpers ----------------------------------------------------------------


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def load_cert(d):
    with open(d.path("server.crt"), "rb") as f:
        pem = f.read()
    return pem, x509.load_pem_x509_certificate(pem)


def fingerprint(cert):
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def assert_error_envelope(body, code):
    assert isinstance(body, dict), "error body is not a JSON object: %r" % (body,)
    assert body.get("type") == "error", body
    assert body.get("error_code") == code, body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "metadata" in body and body["metadata"] is None, body


def content_type(headers):
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def key_body_lines(d):
    """The base64 lines of server.key (anything that would reveal it in a log)."""
    with open(d.path("server.key")) as f:
        return [l for l in f.read().splitlines() if l and not l.startswith("-----")]


# --- process, state dir, keys ---------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077], ids=["umask022", "umask000", "umask077"])
def test_state_dir_key_and_socket_modes(daemon_factory, umask):
    d = daemon_factory.new(umask=umask)
    assert not os.path.exists(d.state_dir)
    d.start()
    assert os.path.isdir(d.state_dir)
    assert mode(d.state_dir) == 0o711, oct(mode(d.state_dir))
    assert mode(d.path("server.key")) == 0o600, oct(mode(d.path("server.key")))
    st = os.stat(d.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(stat.S_IMODE(st.st_mode))
    assert st.st_uid == 0


def test_server_certificate(daemon):
    pem, cert = load_cert(daemon)
    host = socket.gethostname()

    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert pub.curve.name == "secp384r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    # Self-signed: issuer is subject and the signature verifies with its own key.
    assert cert.issuer == cert.subject
    pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cns] == [host]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert host in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)

    with open(daemon.path("server.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"
    assert key.public_key().public_numbers() == pub.public_numbers()


def test_sigterm_clean_exit(daemon):
    assert os.path.exists(daemon.socket_path)
    daemon.proc.send_signal(signal.SIGTERM)
    rc = daemon.wait_exit(timeout=1.0)
    assert rc == 0, daemon.diagnostics()
    assert not os.path.exists(daemon.socket_path)


def test_stale_socket_after_sigkill(daemon):
    daemon.kill()
    assert os.path.exists(daemon.socket_path), "socket file should survive SIGKILL"
    daemon.start()
    status, _, body = daemon.get("/1.0")
    assert status == 200
    assert body["metadata"]["environment"]["server_pid"] == daemon.pid


def test_second_daemon_same_dir_refused(daemon, daemon_factory):
    second = daemon_factory.new(state_dir=daemon.state_dir)
    second.spawn()
    try:
        rc = second.wait_exit(timeout=5.0)
    except subprocess.TimeoutExpired:
        pytest.fail("second corrald on the same dir is still running\n" + second.diagnostics())
    assert rc != 0
    assert re.search(r"another corrald|already (in use|running)", second.stderr(), re.I), \
        second.diagnostics()
    # The first one is untouched: same socket file, still answering.
    assert daemon.running()
    assert os.path.exists(daemon.socket_path)
    status, _, body = daemon.get("/1.0")
    assert status == 200
    assert body["metadata"]["environment"]["server_pid"] == daemon.pid


def test_missing_group_is_startup_error(daemon_factory):
    name = "corral-no-such-group"
    with pytest.raises(KeyError):
        grp.getgrnam(name)
    d = daemon_factory.new(group=name)
    d.spawn()
    try:
        rc = d.wait_exit(timeout=5.0)
    except subprocess.TimeoutExpired:
        pytest.fail("corrald started with a missing --group\n" + d.diagnostics())
    assert rc != 0
    assert d.stderr().strip(), "no error message on stderr"


def test_group_owns_socket(daemon_factory):
    g = grp.getgrnam("adm")
    d = daemon_factory.start(group="adm")
    st = os.stat(d.socket_path)
    assert st.st_gid == g.gr_gid
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_restart_keeps_certificate(daemon):
    pem1, cert1 = load_cert(daemon)
    key1 = open(daemon.path("server.key"), "rb").read()
    rc = daemon.restart()
    assert rc == 0
    pem2, _ = load_cert(daemon)
    assert pem2 == pem1
    assert open(daemon.path("server.key"), "rb").read() == key1
    _, _, body = daemon.get("/1.0")
    assert body["metadata"]["environment"]["certificate_fingerprint"] == fingerprint(cert1)


@pytest.mark.parametrize("missing", ["server.key", "server.crt"])
def test_missing_key_or_cert_regenerates_both(daemon, missing):
    pem1, cert1 = load_cert(daemon)
    key1 = open(daemon.path("server.key"), "rb").read()
    assert daemon.stop() == 0
    os.unlink(daemon.path(missing))
    daemon.start()
    pem2, cert2 = load_cert(daemon)
    key2 = open(daemon.path("server.key"), "rb").read()
    assert pem2 != pem1
    assert key2 != key1
    assert fingerprint(cert2) != fingerprint(cert1)
    assert mode(daemon.path("server.key")) == 0o600
    key = serialization.load_pem_private_key(key2, password=None)
    assert key.public_key().public_numbers() == cert2.public_key().public_numbers()
    _, _, body = daemon.get("/1.0")
    env = body["metadata"]["environment"]
    assert env["certificate_fingerprint"] == fingerprint(cert2)
    assert env["certificate"] == pem2.decode()


def test_state_dir_from_env(daemon_factory):
    d = daemon_factory.new(pass_state_dir=False)
    d.env = {"CORRAL_DIR": d.state_dir}
    d.start()
    assert "--state-dir" not in d.argv()
    assert os.path.exists(d.path("server.crt"))
    assert d.get("/1.0")[2]["metadata"]["environment"]["server_pid"] == d.pid


def test_unknown_option_fails(daemon_factory):
    d = daemon_factory.new(extra_args=["--no-such-option"])
    d.spawn()
    try:
        rc = d.wait_exit(timeout=5.0)
    except subprocess.TimeoutExpired:
        pytest.fail("corrald accepted an unknown option\n" + d.diagnostics())
    assert rc != 0
    assert not os.path.exists(d.socket_path)


def test_two_daemons_side_by_side(daemon_factory):
    a = daemon_factory.start()
    b = daemon_factory.start()
    fa = a.get("/1.0")[2]["metadata"]["environment"]
    fb = b.get("/1.0")[2]["metadata"]["environment"]
    assert fa["server_pid"] == a.pid and fb["server_pid"] == b.pid
    assert fa["certificate_fingerprint"] != fb["certificate_fingerprint"]


# --- REST: /, /1.0, errors ----------------------------------------------------


def test_get_root(daemon):
    status, headers, body = daemon.get("/")
    assert status == 200
    assert content_type(headers) == "application/json"
    assert body["type"] == "sync"
    assert body["status_code"] == 200
    assert body["metadata"] == ["/1.0"]


def test_get_1_0(daemon):
    status, headers, body = daemon.get("/1.0")
    assert status == 200
    assert content_type(headers) == "application/json"
    for k, v in {"type": "sync", "status": "Success", "status_code": 200, "operation": "",
                 "error_code": 0, "error": ""}.items():
        assert body.get(k) == v, (k, body.get(k))

    md = body["metadata"]
    assert md["api_version"] == "1.0"
    assert md["api_status"] == "stable"
    assert md["auth"] == "trusted"
    assert md["auth_methods"] == ["tls"]
    assert md["public"] is False
    assert isinstance(md["api_extensions"], list)
    assert all(isinstance(x, str) and x for x in md["api_extensions"])
    assert len(set(md["api_extensions"])) == len(md["api_extensions"])
    assert isinstance(md["config"], dict)

    env = md["environment"]
    uname = os.uname()
    assert env["server"] == "corral"
    assert isinstance(env["server_name"], str) and env["server_name"]
    assert isinstance(env["server_version"], str) and env["server_version"]
    assert env["server_pid"] == daemon.pid
    assert env["kernel"] == uname.sysname
    assert env["kernel_version"] == uname.release
    assert isinstance(env["architectures"], list) and env["architectures"]
    assert uname.machine in env["architectures"]
    assert env["server_clustered"] is False
    assert env["project"] == "default"

    pem, cert = load_cert(daemon)
    assert env["certificate"] == pem.decode()
    fp = fingerprint(cert)
    assert re.fullmatch(r"[0-9a-f]{64}", env["certificate_fingerprint"])
    assert env["certificate_fingerprint"] == fp


def test_unknown_path_404(daemon):
    for path in ("/nonexistent", "/1.0/nonexistent", "/2.0"):
        status, headers, body = daemon.get(path)
        assert status == 404, path
        assert content_type(headers) == "application/json"
        assert_error_envelope(body, 404)


def test_wrong_method_405(daemon):
    status, headers, body = daemon.request("DELETE", "/1.0")
    assert status == 405
    allow = headers.get("Allow")
    assert allow, "405 without an Allow header"
    methods = {m.strip().upper() for m in allow.split(",")}
    assert "GET" in methods
    assert "DELETE" not in methods
    assert content_type(headers) == "application/json"
    assert_error_envelope(body, 405)


# --- HTTP layer: limits, framing ---------------------------------------------


def test_content_length_over_limit_413(daemon):
    head = ("PUT /1.0 HTTP/1.1\r\nHost: unix.socket\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (BODY_LIMIT + 1)).encode()
    with daemon.connect() as c:
        c.send(head)  # no body: the daemon must answer from the head alone
        r = c.read_response()
    assert r.status == 413, r
    assert_error_envelope(r.json(), 413)
    assert daemon.get("/1.0")[0] == 200


def test_chunked_body_over_limit_413(daemon):
    head = (b"PUT /1.0 HTTP/1.1\r\nHost: unix.socket\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = 64 * KIB
    chunk = b"%x\r\n" % piece + b" " * piece + b"\r\n"
    n = BODY_LIMIT // piece + 8
    with daemon.connect(timeout=10.0) as c:
        t, res = send_in_background(c.sock, [head] + [chunk] * n + [b"0\r\n\r\n"])
        r = c.read_response()
        t.join(10)
    assert r.status == 413, r
    assert_error_envelope(r.json(), 413)
    assert daemon.get("/1.0")[0] == 200


def test_body_under_limit_not_413(daemon):
    # A 1 MiB body is within the limit: whatever the route says, not 413.
    body = b'{"config":{}}' + b" " * MIB
    with daemon.connect() as c:
        r = c.request("PUT", "/1.0", body=body)
    assert r.status != 413, r
    assert r.json() is not None


def test_head_over_limit_431(daemon):
    req = (b"GET /1.0 HTTP/1.1\r\nHost: unix.socket\r\nX-Big: " + b"a" * (HEAD_LIMIT + 1024)
           + b"\r\n\r\n")
    with daemon.connect() as c:
        c.send(req)
        r = c.read_response()
    assert r.status == 431, r
    assert daemon.get("/1.0")[0] == 200


def test_head_under_limit_ok(daemon):
    req = b"GET /1.0 HTTP/1.1\r\nHost: unix.socket\r\nX-Big: " + b"a" * (8 * KIB) + b"\r\n\r\n"
    r = daemon.raw_responses(req)[0]
    assert r.status == 200, r


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /1.0 HTTP/9x\r\n\r\n",
                                  b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"],
                         ids=["garbage", "no-target", "bad-version", "binary-method"])
def test_malformed_request_line_400(daemon, line):
    with daemon.connect() as c:
        c.send(line)
        r = c.read_response()
    assert r.status == 400, r
    assert daemon.get("/1.0")[0] == 200


def test_keep_alive(daemon):
    with daemon.connect() as c:
        for i in range(5):
            r = c.request("GET", "/1.0" if i % 2 == 0 else "/")
            assert r.status == 200
            assert (r.header("Connection") or "").lower() != "close"
            md = r.json()["metadata"]
            if i % 2 == 0:
                assert md["environment"]["server_pid"] == daemon.pid
            else:
                assert md == ["/1.0"]
        # An error does not end the connection either.
        assert c.request("GET", "/nonexistent").status == 404
        assert c.request("GET", "/").status == 200
        assert not c.at_eof(wait=0.05)


def test_pipelining(daemon):
    reqs = (build_request("GET", "/1.0") + build_request("GET", "/nonexistent")
            + build_request("GET", "/"))
    with daemon.connect() as c:
        c.send(reqs)
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    assert r1.status == 200 and r1.json()["metadata"]["api_version"] == "1.0"
    assert r2.status == 404 and r2.json()["error_code"] == 404
    assert r3.status == 200 and r3.json()["metadata"] == ["/1.0"]


def test_raw_helper_roundtrip(daemon):
    out = daemon.raw(build_request("GET", "/") + build_request("GET", "/"), responses=2)
    assert out.count(b"HTTP/1.1 200") == 2
    assert out.count(b'"/1.0"') == 2


def test_connection_close_honoured(daemon):
    with daemon.connect() as c:
        r = c.request("GET", "/", headers={"Connection": "close"})
        assert r.status == 200
        assert c.at_eof(wait=1.0), "daemon kept a Connection: close connection open"


# --- logging ---------------------------------------------------------------


def test_debug_log_lines(daemon):
    assert daemon.get("/1.0")[0] == 200
    assert daemon.get("/nonexistent")[0] == 404

    def lines():
        return [l for l in daemon.log().splitlines() if "GET" in l and "/1.0" in l and "200" in l]

    got = wait_for(lines, timeout=2.0)
    assert got, "no request log line for GET /1.0 200\n" + daemon.diagnostics()
    # A duration in microseconds: "123us", "123 µs", "usec=123", "duration_us=123", ...
    # ("status=200" must not count: "us" has to start a word or follow "_").
    us = re.compile(r"\d+(\.\d+)?\s*(us|µs|usec|microseconds)\b"
                    r"|\b(\w*_)?(us|usec|micros|microseconds)\s*[=:]\s*\d+", re.I)
    assert any(us.search(l) for l in got), got
    assert wait_for(lambda: [l for l in daemon.log().splitlines()
                             if "/nonexistent" in l and "404" in l]), daemon.log()[-2000:]


def test_log_never_contains_private_key(daemon_factory):
    d = daemon_factory.start(debug=True)
    d.get("/1.0")
    d.get("/")
    assert d.stop() == 0
    # Regenerate too: key generation is the likeliest place to dump it.
    os.unlink(d.path("server.key"))
    d.start()
    d.get("/1.0")
    assert d.stop() == 0
    text = d.log() + d.stderr() + d.stdout()
    assert "PRIVATE KEY" not in text
    for line in key_body_lines(d):
        assert line not in text


# --- CLI -------------------------------------------------------------------


@pytest.fixture
def cli_env(daemon):
    conf = os.path.join(daemon.base, "client")
    return {"CORRAL_DIR": daemon.state_dir, "CORRAL_CONF": conf, "HOME": daemon.base}


def test_cli_info(daemon, cli_env):
    p = run_cli(["info"], env=cli_env)
    assert p.returncode == 0, p.stderr
    assert "api_version" in p.stdout


def test_cli_info_json(daemon, cli_env):
    p = run_cli(["info", "--format", "json"], env=cli_env)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["environment"]["server"] == "corral"
    assert data["environment"]["server_pid"] == daemon.pid


def test_cli_query_socket_flag(daemon, cli_env):
    env = dict(cli_env, CORRAL_DIR=os.path.join(daemon.base, "nowhere"))
    p = run_cli(["--socket", daemon.socket_path, "query", "/1.0"], env=env)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    # Like `lxc query`, the metadata is printed, not the envelope.
    assert data["api_version"] == "1.0"
    assert data["environment"]["server_pid"] == daemon.pid


def test_cli_query_not_found(daemon, cli_env):
    p = run_cli(["query", "/nonexistent"], env=cli_env)
    assert p.returncode != 0
    assert "Error:" in p.stderr


def test_cli_version(daemon, cli_env):
    p = run_cli(["version"], env=cli_env)
    assert p.returncode == 0, p.stderr
    # lxc's format: "Client version: X" then "Server version: Y".
    assert re.search(r"^Client version: \S+$", p.stdout, re.M), p.stdout
    assert re.search(r"^Server version: \S+$", p.stdout, re.M), p.stdout


def test_cli_no_daemon(daemon_factory, tmp_path):
    env = {"CORRAL_DIR": str(tmp_path), "CORRAL_CONF": str(tmp_path / "conf"),
           "HOME": str(tmp_path)}
    p = run_cli(["query", "/1.0"], env=env)
    assert p.returncode != 0
    assert "Error:" in p.stderr
