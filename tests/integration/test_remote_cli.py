"""`corral remote`, REMOTE: routing, `corral config trust`, `corral operation`
and `corral monitor` against a real corrald over its Unix socket and HTTPS.

Contract: DESIGN.md sections 5 and 6 (client config dir, pinned server
fingerprints, token format) and reference/lxd-client-compat.md section 3
(`lxc remote add`, `lxc config trust`, `lxc operation`, `lxc monitor`).
Every test uses its own CORRAL_CONF directories.
"""

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import select
import signal
import stat
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import CORRAL_BIN

PASSWORD = "correct horse"


@pytest.fixture
def d(daemon_factory):
    d = daemon_factory.start(ready_path="/1.0/projects")
    st, _, body = d.request("PATCH", "/1.0", body={"config": {
        "core.https_address": "127.0.0.1:0",
        "core.trust_password": PASSWORD}})
    assert st == 200, body
    st, _, body = d.request("GET", "/1.0")
    d.https = body["metadata"]["environment"]["addresses"][0]
    d.fingerprint = body["metadata"]["environment"]["certificate_fingerprint"]
    return d


def corral(d, conf, *args, stdin=None, env=None, timeout=20.0):
    """Run bin/corral with CORRAL_CONF=conf and the daemon as `local`."""
    e = dict(os.environ)
    e.update({"CORRAL_CONF": str(conf), "CORRAL_DIR": d.state_dir})
    e.update(env or {})
    return subprocess.run(
        [CORRAL_BIN] + list(args),
        input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True, text=True, timeout=timeout, env=e)


def ok(d, conf, *args, **kw):
    r = corral(d, conf, *args, **kw)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def fails(d, conf, *args, **kw):
    r = corral(d, conf, *args, **kw)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    assert "Error: " in r.stderr, (args, r.stderr)
    return r.stderr


def read_config(conf):
    with open(os.path.join(str(conf), "config.json")) as f:
        return json.load(f)


def client_fp(conf):
    with open(os.path.join(str(conf), "client.crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def add_with_password(d, conf, name="r"):
    out = ok(d, conf, "remote", "add", name, d.https, "--accept-certificate",
             "--password", PASSWORD)
    assert out == "Client certificate now trusted by server: %s\n" % name
    return out


def trust_names(d):
    st, _, body = d.request("GET", "/1.0/certificates?recursion=1")
    assert st == 200
    return {c["name"]: c for c in body["metadata"]}


def all_files_text(conf):
    out = ""
    for root, _, files in os.walk(str(conf)):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out += fh.read().decode("latin-1")
    return out


def test_remote_add_with_password_and_routing(d, tmp_path):
    conf = tmp_path / "conf"
    r = corral(d, conf, "remote", "add", "r", d.https, "--accept-certificate",
               "--password", PASSWORD)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Client certificate now trusted by server: r\n"
    assert "Generating a client certificate" in r.stderr

    cfg = read_config(conf)
    assert cfg["default-remote"] == "local"
    assert cfg["remotes"]["local"] == {"addr": "unix://"}
    assert cfg["remotes"]["r"] == {"addr": "https://" + d.https,
                                   "fingerprint": d.fingerprint}
    assert stat.S_IMODE(os.stat(conf / "client.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(conf / "config.json").st_mode) == 0o600
    with open(conf / "servercerts" / "r.crt", "rb") as f:
        pem = f.read()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == d.fingerprint
    with open(conf / "client.crt", "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert cert.public_key().curve.name == "secp384r1"
    # The password is never written by the client.
    assert PASSWORD not in all_files_text(conf)

    # The server now trusts the client certificate.
    assert client_fp(conf) in {c["fingerprint"] for c in trust_names(d).values()}

    info = ok(d, conf, "info", "r:")
    assert "auth: trusted" in info
    assert "certificate_fingerprint: " + d.fingerprint in info
    certs = json.loads(ok(d, conf, "query", "r:/1.0/certificates"))
    assert "/1.0/certificates/" + client_fp(conf) in certs
    assert "default" in ok(d, conf, "project", "list", "r:")
    assert "name: default" in ok(d, conf, "profile", "show", "r:default")
    assert "api_extensions" in json.loads(ok(d, conf, "info", "r:", "--format", "json"))

    listing = ok(d, conf, "remote", "list")
    assert "| local (current) | unix://" in listing
    assert "| r " in listing and "https://" + d.https in listing
    assert "NAME" in listing and "AUTH TYPE" in listing and "GLOBAL" in listing
    js = json.loads(ok(d, conf, "remote", "list", "--format", "json"))
    assert js["r"]["addr"] == "https://" + d.https
    assert js["local"]["static"] is True

    # An unknown remote prefix is an error, a known one is not repeated.
    err = fails(d, conf, "info", "nope:")
    assert 'The remote "nope" doesn\'t exist' in err


def test_remote_add_wrong_password(d, tmp_path):
    conf = tmp_path / "conf"
    err = fails(d, conf, "remote", "add", "r", d.https, "--accept-certificate",
                "--password", "wrong")
    assert "not authorized" in err
    assert not (conf / "config.json").exists()
    assert client_fp(conf) not in {c["fingerprint"] for c in trust_names(d).values()}
    assert "wrong" not in all_files_text(conf)


def test_remote_add_needs_confirmation(d, tmp_path):
    conf = tmp_path / "conf"
    # Not a terminal and no --accept-certificate: refused after showing
    # the fingerprint.
    r = corral(d, conf, "remote", "add", "r", d.https, "--password", PASSWORD)
    assert r.returncode == 1
    assert "Certificate fingerprint: %s" % d.fingerprint in r.stdout
    assert "--accept-certificate" in r.stderr
    assert not (conf / "config.json").exists()
    # The password may come from stdin instead of the command line.
    r = corral(d, conf, "remote", "add", "r", d.https, "--accept-certificate",
               stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "Admin password (or token) for r:" in r.stdout
    assert "auth: trusted" in ok(d, conf, "info", "r:")


def test_remote_add_empty_password(d, tmp_path):
    conf = tmp_path / "conf"
    err = fails(d, conf, "remote", "add", "r", d.https, "--accept-certificate",
                stdin="\n")
    assert "password" in err


def test_token_flow_trust_list_and_removal(d, tmp_path):
    conf1 = tmp_path / "conf1"
    conf2 = tmp_path / "conf2"
    conf3 = tmp_path / "conf3"
    add_with_password(d, conf1)

    out = ok(d, conf1, "config", "trust", "add", "--name", "c2")
    lines = out.splitlines()
    assert lines[0] == "Client c2 certificate add token:"
    assert len(lines) == 2
    token = ok(d, conf1, "config", "trust", "add", "--name", "c2b", "--quiet").strip()
    assert "\n" not in token
    decoded = json.loads(base64.b64decode(token))
    assert list(decoded) == ["client_name", "fingerprint", "addresses",
                             "secret", "expires_at"]
    assert decoded["client_name"] == "c2b"
    assert decoded["fingerprint"] == d.fingerprint
    assert decoded["addresses"] == [d.https]
    assert base64.b64encode(json.dumps(decoded, separators=(",", ":")).encode()).decode() == token

    tokens = ok(d, conf1, "config", "trust", "list-tokens")
    assert "| c2 " in tokens and "| c2b " in tokens and token in tokens

    # Redeem it from another client config.
    r = corral(d, conf2, "remote", "add", "r2", token)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Client certificate now trusted by server: r2\n"
    assert read_config(conf2)["remotes"]["r2"]["fingerprint"] == d.fingerprint
    assert decoded["secret"] not in all_files_text(conf2)
    assert json.loads(ok(d, conf2, "query", "r2:/1.0/projects")) == ["/1.0/projects/default"]
    assert "| c2b " not in ok(d, conf1, "config", "trust", "list-tokens")

    # Single use.
    err = fails(d, conf3, "remote", "add", "r3", token)
    assert "not authorized" in err or "token" in err

    # Both clients are listed, on the socket and over TLS.
    listing = ok(d, conf1, "config", "trust", "list")
    assert "FINGERPRINT" in listing and "RESTRICTED" in listing
    fp2 = client_fp(conf2)
    assert "| c2b " in listing and fp2[:12] in listing
    assert client_fp(conf1)[:12] in listing
    assert listing == ok(d, conf1, "config", "trust", "list", "r:")
    js = json.loads(ok(d, conf1, "config", "trust", "list", "--format", "json"))
    assert {c["fingerprint"] for c in js} == {client_fp(conf1), fp2}
    assert "fingerprint: " + fp2 in ok(d, conf1, "config", "trust", "show", fp2)

    # Removing c2b cuts it off.
    ok(d, conf1, "config", "trust", "remove", fp2)
    err = fails(d, conf2, "query", "r2:/1.0/projects")
    assert "not authorized" in err
    assert fp2[:12] not in ok(d, conf1, "config", "trust", "list")


def test_token_revoke(d, tmp_path):
    conf = tmp_path / "conf"
    conf2 = tmp_path / "conf2"
    token = ok(d, conf, "config", "trust", "add", "--name", "gone", "-q").strip()
    ok(d, conf, "config", "trust", "revoke-token", "gone")
    assert "gone" not in ok(d, conf, "config", "trust", "list-tokens")
    fails(d, conf2, "remote", "add", "r", token)
    err = fails(d, conf, "config", "trust", "revoke-token", "gone")
    assert "gone" in err


def test_token_with_wrong_fingerprint_is_refused(d, tmp_path):
    conf = tmp_path / "conf"
    token = ok(d, conf, "config", "trust", "add", "--name", "x", "-q").strip()
    decoded = json.loads(base64.b64decode(token))
    decoded["fingerprint"] = "0" * 64
    forged = base64.b64encode(json.dumps(decoded).encode()).decode()
    err = fails(d, tmp_path / "conf2", "remote", "add", "r", forged)
    assert "fingerprint" in err
    # The token was not spent.
    assert "| x " in ok(d, conf, "config", "trust", "list-tokens")


def test_pinned_fingerprint_mismatch(d, tmp_path):
    conf = tmp_path / "conf"
    add_with_password(d, conf)
    cfg = read_config(conf)
    cfg["remotes"]["r"]["fingerprint"] = "ab" * 32
    with open(conf / "config.json", "w") as f:
        json.dump(cfg, f)
    for args in (["info", "r:"], ["query", "r:/1.0"], ["project", "list", "r:"],
                 ["config", "trust", "list", "r:"], ["monitor", "r:"]):
        err = fails(d, conf, *args)
        assert "reinstalled" in err and "intercepting" in err, (args, err)
        assert "corral remote remove r" in err
        assert d.fingerprint in err and "ab" * 32 in err


def test_remote_switch_remove_get_default(d, tmp_path):
    conf = tmp_path / "conf"
    add_with_password(d, conf)
    assert ok(d, conf, "remote", "get-default") == "local\n"
    ok(d, conf, "remote", "switch", "r")
    assert ok(d, conf, "remote", "get-default") == "r\n"
    assert "| r (current) " in ok(d, conf, "remote", "list")
    # The default remote is used without a prefix, even with no socket.
    out = ok(d, conf, "query", "/1.0/certificates",
             env={"CORRAL_DIR": str(tmp_path / "nowhere")})
    assert client_fp(conf) in out
    err = fails(d, conf, "remote", "remove", "r")
    assert "default" in err
    fails(d, conf, "remote", "switch", "nope")
    ok(d, conf, "remote", "switch", "local")
    err = fails(d, conf, "remote", "remove", "local")
    assert "static" in err
    err = fails(d, conf, "remote", "add", "local", d.https, "--accept-certificate")
    assert "exists" in err
    ok(d, conf, "remote", "remove", "r")
    assert "r" not in read_config(conf)["remotes"]
    assert not (conf / "servercerts" / "r.crt").exists()
    fails(d, conf, "remote", "remove", "r")
    fails(d, conf, "info", "r:")


def test_trust_add_file_restricted(d, tmp_path):
    conf = tmp_path / "conf"
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA384()))
    path = tmp_path / "ci.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fp = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    assert ok(d, conf, "config", "trust", "add", str(path), "--restricted",
              "--projects", "default") == ""
    c = trust_names(d)["ci.crt"]
    assert c["fingerprint"] == fp and c["restricted"] is True
    assert c["projects"] == ["default"]
    listing = ok(d, conf, "config", "trust", "list")
    assert "| ci.crt | client | %s | YES        | default  |" % fp[:12] in listing
    ok(d, conf, "config", "trust", "edit", fp,
       stdin="name: renamed\ntype: client\nrestricted: false\nprojects: []\n")
    assert trust_names(d)["renamed"]["restricted"] is False
    ok(d, conf, "config", "trust", "remove", fp[:12])
    assert "renamed" not in trust_names(d)
    fails(d, conf, "config", "trust", "add", str(tmp_path / "missing.crt"))
    fails(d, conf, "config", "trust", "add")


def test_operation_list_show_delete(d, tmp_path):
    conf = tmp_path / "conf"
    ok(d, conf, "config", "trust", "add", "--name", "opc", "-q")
    listing = ok(d, conf, "operation", "list")
    assert "CANCELABLE" in listing and "| TOKEN |" in listing
    assert "Running" in listing
    ops = json.loads(ok(d, conf, "operation", "list", "--format", "json"))
    running = [o for o in ops if o["status"] == "Running"]
    assert len(running) == 1
    op_id = running[0]["id"]
    assert "id: " + op_id in ok(d, conf, "operation", "show", op_id)
    ok(d, conf, "operation", "delete", op_id)
    st, _, body = d.request("GET", "/1.0/operations/" + op_id)
    assert body["metadata"]["status"] == "Cancelled"
    fails(d, conf, "operation", "show", "nope")


def read_line(proc, timeout):
    """A line from proc.stdout within `timeout` seconds, or None."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        buf += ch
        if ch == b"\n":
            return buf.decode()
    return None


@pytest.mark.parametrize("remote", [False, True])
def test_monitor_receives_events(d, tmp_path, daemon_factory, remote):
    conf = tmp_path / "conf"
    args = ["monitor", "--format", "json"]
    if remote:
        add_with_password(d, conf)
        args.append("r:")
    e = dict(os.environ)
    e.update({"CORRAL_CONF": str(conf), "CORRAL_DIR": d.state_dir})
    proc = daemon_factory.track_process(subprocess.Popen(
        [CORRAL_BIN] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=e))
    try:
        event = None
        for attempt in range(50):
            ok(d, conf, "config", "trust", "add", "--name", "m%d" % attempt, "-q")
            line = read_line(proc, 0.2)
            if line is not None:
                event = json.loads(line)
                break
        assert event is not None, proc.stderr.read1() if proc.poll() is not None else ""
        assert event["type"] == "operation"
        assert event["metadata"]["class"] == "token"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5)


def test_pki_server_cert_signed_by_client_ca(daemon_factory, tmp_path):
    """client.ca in the config dir: a server certificate that chains to it
    (and names the address) is accepted without a prompt and not pinned."""
    now = datetime.datetime.utcnow()
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "srv")]))
           .issuer_name(ca_name).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(minutes=5))
           .not_valid_after(now + datetime.timedelta(days=2))
           .add_extension(x509.SubjectAlternativeName(
               [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
           .add_extension(x509.ExtendedKeyUsage(
               [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
           .sign(ca_key, hashes.SHA384()))
    d = daemon_factory.new()
    os.makedirs(d.state_dir, mode=0o711, exist_ok=True)
    with open(os.path.join(d.state_dir, "server.crt"), "wb") as f:
        f.write(srv.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(d.state_dir, "server.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(os.path.join(d.state_dir, "server.key"), 0o600)
    d.start("/1.0/projects")
    st, _, body = d.request("PATCH", "/1.0", body={"config": {
        "core.https_address": "127.0.0.1:0", "core.trust_password": PASSWORD}})
    assert st == 200, body
    addr = d.request("GET", "/1.0")[2]["metadata"]["environment"]["addresses"][0]

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "client.ca").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out = ok(d, conf, "remote", "add", "r", addr, "--password", PASSWORD)
    assert "Certificate fingerprint" not in out
    assert read_config(conf)["remotes"]["r"] == {"addr": "https://" + addr}
    assert "auth: trusted" in ok(d, conf, "info", "r:")

    # Without client.ca the same server needs a confirmation.
    r = corral(d, tmp_path / "conf2", "remote", "add", "r", addr,
               "--password", PASSWORD)
    assert r.returncode == 1 and "Certificate fingerprint" in r.stdout
    # A CA that did not sign it does not help either.
    other = tmp_path / "conf3"
    other.mkdir()
    (other / "client.ca").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    r = corral(d, other, "remote", "add", "r", addr, "--password", PASSWORD)
    assert r.returncode == 1 and "Certificate fingerprint" in r.stdout
