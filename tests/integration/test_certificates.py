"""/1.0/certificates over the Unix socket (full admin).

Contract: reference/lxd-client-compat.md section 3 ("lxc config trust"),
reference/rbac-model.md section 4 (role bindings and the LXD 5.0 mapping),
DESIGN.md section 6. Untrusted callers (trust password, tokens redeemed over
TLS, the peer certificate) need the TLS listener and are tested with it.
"""

import base64
import http.client
import json
import ssl
import datetime
import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ADMIN = {"scope": "server", "role": "admin"}


def operator(project):
    return {"scope": "project", "project": project, "role": "operator"}


def make_cert(cn="client", key=None):
    key = key or ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA384()))
    return cert


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def b64_wrapped(cert):
    """Base64 DER with embedded newlines, as pylxd sends it."""
    text = base64.encodebytes(der(cert)).decode()
    assert "\n" in text.strip()
    return text


def fp_of(cert):
    return hashlib.sha256(der(cert)).hexdigest()


@pytest.fixture
def d(daemon_factory):
    return daemon_factory.start(ready_path="/1.0/projects")


def add(d, cert, **fields):
    body = {"name": "", "type": "client", "restricted": False, "projects": None,
            "certificate": b64_wrapped(cert), "password": "", "token": False}
    body.update(fields)
    return d.request("POST", "/1.0/certificates", body=body)


def get_cert(d, ref):
    status, headers, body = d.get("/1.0/certificates/" + ref)
    assert status == 200, body
    return body["metadata"], headers


def assert_error(resp, code, text=None):
    status, _, body = resp
    assert status == code, body
    assert body["type"] == "error" and body["error_code"] == code, body
    if text is not None:
        assert text in body["error"], body


# --- add, list, get, delete --------------------------------------------------


def test_add_list_get_delete(d):
    cert = make_cert("alice-laptop")
    fp = fp_of(cert)

    status, headers, body = add(d, cert, name="alice")
    assert status == 201, body
    assert body["type"] == "sync" and body["metadata"] is None
    assert headers["Location"] == "/1.0/certificates/" + fp

    status, _, body = d.get("/1.0/certificates")
    assert status == 200
    assert body["metadata"] == ["/1.0/certificates/" + fp]

    status, _, body = d.get("/1.0/certificates?recursion=1")
    assert status == 200
    [obj] = body["metadata"]
    assert obj["fingerprint"] == fp
    assert obj["name"] == "alice"
    assert obj["type"] == "client"
    assert obj["restricted"] is False
    assert obj["projects"] == []
    assert obj["roles"] == [ADMIN]
    assert obj["description"] == ""
    # The certificate is PEM, and the very one we sent.
    assert obj["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    loaded = x509.load_pem_x509_certificate(obj["certificate"].encode())
    assert der(loaded) == der(cert)

    # By the 12-digit prefix `lxc config trust list` prints.
    got, headers = get_cert(d, fp[:12])
    assert got == obj
    assert re.fullmatch(r'"[0-9a-f]{64}"', headers["ETag"])

    # Name defaults to the certificate's CN.
    other = make_cert("bob-desktop")
    status, _, body = add(d, other)
    assert status == 201, body
    assert get_cert(d, fp_of(other))[0]["name"] == "bob-desktop"
    status, _, body = d.get("/1.0/certificates?recursion=1")
    assert [c["name"] for c in body["metadata"]] == ["alice", "bob-desktop"]

    status, _, body = d.request("DELETE", "/1.0/certificates/" + fp[:12])
    assert status == 200, body
    assert_error(d.get("/1.0/certificates/" + fp), 404, "certificate not found")
    assert_error(d.request("DELETE", "/1.0/certificates/" + fp), 404)
    status, _, body = d.get("/1.0/certificates")
    assert body["metadata"] == ["/1.0/certificates/" + fp_of(other)]


def test_metrics_and_pem_input(d):
    cert = make_cert("prometheus")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    status, _, body = add(d, cert, type="metrics", certificate=pem)
    assert status == 201, body
    got, _ = get_cert(d, fp_of(cert))
    assert got["type"] == "metrics"


def test_add_refused(d):
    cert = make_cert()
    assert_error(add(d, cert, restricted=False, projects=["default"]), 400,
                 "projects can only be set on a restricted certificate")
    assert_error(add(d, cert, restricted=True, projects=["nope"]), 400,
                 'project "nope" not found')
    assert_error(add(d, cert, type="server"), 400)
    assert_error(add(d, cert, type="client", certificate="bm90IGEgY2VydA=="), 400)
    assert_error(add(d, cert, certificate=""), 400)
    weak = make_cert("weak", key=rsa.generate_private_key(65537, 2048))
    assert_error(add(d, weak), 400, "2048")
    assert_error(add(d, cert, restricted="yes"), 400)
    # Nothing was half-added.
    assert d.get("/1.0/certificates")[2]["metadata"] == []

    status, _, body = add(d, cert, restricted=True, projects=["default"])
    assert status == 201, body
    assert_error(add(d, cert), 409, "Certificate already in trust store")


# --- edits: the legacy fields as a diff ---------------------------------------


def test_edit_restricted_projects(d):
    cert = make_cert()
    fp = fp_of(cert)
    assert add(d, cert, name="c")[0] == 201
    status, _, body = d.request("POST", "/1.0/projects", body={"name": "p2"})
    assert status == 201, body
    status, _, body = d.request("POST", "/1.0/projects", body={"name": "p3"})
    assert status == 201, body

    cur, _ = get_cert(d, fp)
    cur.update(restricted=True, projects=["default"])
    edit = {k: cur[k] for k in ("name", "type", "restricted", "projects", "certificate")}
    status, _, body = d.request("PUT", "/1.0/certificates/" + fp, body=edit)
    assert status == 200, body
    got, _ = get_cert(d, fp)
    assert got["restricted"] is True
    assert got["projects"] == ["default"]
    assert got["roles"] == [operator("default")]

    # PATCH adding a project keeps the others.
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"projects": ["default", "p2"]})
    assert status == 200, body
    got, _ = get_cert(d, fp)
    assert got["projects"] == ["default", "p2"]
    assert got["roles"] == [operator("default"), operator("p2")]

    # A PATCH without projects leaves them alone.
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"name": "renamed"})
    assert status == 200, body
    got, _ = get_cert(d, fp)
    assert got["name"] == "renamed"
    assert got["roles"] == [operator("default"), operator("p2")]

    # Removing a project drops its bindings only.
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"projects": ["p2"]})
    assert status == 200, body
    assert get_cert(d, fp)[0]["roles"] == [operator("p2")]

    # Refused: new projects on an unrestricted certificate, unknown projects.
    assert_error(d.request("PUT", "/1.0/certificates/" + fp,
                           body={"restricted": False, "projects": ["p3"]}),
                 400, "projects can only be set on a restricted certificate")
    assert_error(d.request("PATCH", "/1.0/certificates/" + fp,
                           body={"projects": ["p2", "nope"]}),
                 400, 'project "nope" not found')
    assert_error(d.request("PATCH", "/1.0/certificates/" + fp,
                           body={"projects": "p2"}), 400)
    assert get_cert(d, fp)[0]["roles"] == [operator("p2")]

    # Unrestricting adds the server admin binding, keeping project roles;
    # restricting again removes it.
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"restricted": False})
    assert status == 200, body
    got, _ = get_cert(d, fp)
    assert got["restricted"] is False
    assert got["roles"] == [ADMIN, operator("p2")]
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"restricted": True, "projects": []})
    assert status == 200, body
    got, _ = get_cert(d, fp)
    assert got["restricted"] is True and got["roles"] == [] and got["projects"] == []

    # A deleted project disappears from the bindings.
    d.request("PATCH", "/1.0/certificates/" + fp, body={"projects": ["p3"]})
    status, _, body = d.request("DELETE", "/1.0/projects/p3")
    assert status == 200, body
    assert get_cert(d, fp)[0]["roles"] == []


def test_edit_certificate_and_type(d):
    cert = make_cert()
    fp = fp_of(cert)
    assert add(d, cert, name="c")[0] == 201

    # Renewal: a new certificate changes the fingerprint, keeps the rest.
    new = make_cert("renewed")
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"certificate": b64_wrapped(new)})
    assert status == 200, body
    assert_error(d.get("/1.0/certificates/" + fp), 404)
    got, _ = get_cert(d, fp_of(new))
    assert got["name"] == "c" and got["roles"] == [ADMIN]

    # A certificate already in the store, a weak one.
    other = make_cert()
    assert add(d, other)[0] == 201
    assert_error(d.request("PATCH", "/1.0/certificates/" + fp_of(new),
                           body={"certificate": b64_wrapped(other)}), 409)
    weak = make_cert("weak", key=rsa.generate_private_key(65537, 2048))
    assert_error(d.request("PATCH", "/1.0/certificates/" + fp_of(new),
                           body={"certificate": b64_wrapped(weak)}), 400)

    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp_of(new),
                                body={"type": "metrics"})
    assert status == 200, body
    assert get_cert(d, fp_of(new))[0]["type"] == "metrics"
    assert_error(d.request("PATCH", "/1.0/certificates/" + fp_of(new),
                           body={"type": "server"}), 400)
    assert_error(d.request("PATCH", "/1.0/certificates/" + fp_of(new),
                           body={"type": "root"}), 400)


def test_etag_if_match(d):
    cert = make_cert()
    fp = fp_of(cert)
    assert add(d, cert, name="c")[0] == 201
    got, headers = get_cert(d, fp)
    etag = headers["ETag"]

    status, _, body = d.request("PUT", "/1.0/certificates/" + fp,
                                body={"name": "x"}, headers={"If-Match": '"' + "0" * 64 + '"'})
    assert status == 412, body
    assert get_cert(d, fp)[0]["name"] == "c"

    status, _, body = d.request("PUT", "/1.0/certificates/" + fp,
                                body={"name": "x"}, headers={"If-Match": etag})
    assert status == 200, body
    got, headers2 = get_cert(d, fp)
    assert got["name"] == "x"
    assert headers2["ETag"] != etag
    # The old ETag is stale now.
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp,
                                body={"name": "y"}, headers={"If-Match": etag})
    assert status == 412, body


def test_prefix_ambiguity(d):
    # Add certificates until two share their first hex digit.
    seen = {}
    while True:
        cert = make_cert()
        fp = fp_of(cert)
        assert add(d, cert)[0] == 201
        if fp[0] in seen:
            break
        seen[fp[0]] = fp
    assert_error(d.get("/1.0/certificates/" + fp[0]), 400, "ambiguous")
    assert_error(d.request("DELETE", "/1.0/certificates/" + fp[0]), 400)
    assert_error(d.get("/1.0/certificates/zz"), 404)
    got, _ = get_cert(d, fp.upper()[:20])
    assert got["fingerprint"] == fp


# --- tokens ------------------------------------------------------------------


def test_token_refused_without_network_listener(d):
    status, _, body = d.request("POST", "/1.0/certificates", body={
        "name": "tok", "type": "client", "token": True})
    assert status == 400, body
    assert "listening on network" in body["error"]


def test_token_operation(d, tls):
    with open(d.path("server.crt"), "rb") as f:
        server_fp = fp_of(x509.load_pem_x509_certificate(f.read()))

    status, headers, body = d.request("POST", "/1.0/certificates", body={
        "name": "tok", "type": "client", "restricted": True,
        "projects": ["default"], "token": True})
    assert status == 202, body
    assert body["type"] == "async" and body["status_code"] == 100
    op = body["metadata"]
    assert body["operation"] == "/1.0/operations/" + op["id"]
    assert headers["Location"] == body["operation"]
    assert op["class"] == "token" and op["status_code"] == 103
    meta = op["metadata"]
    assert meta["request"]["name"] == "tok"
    assert meta["request"]["restricted"] is True
    assert meta["request"]["projects"] == ["default"]
    assert re.fullmatch(r"[0-9a-f]{64}", meta["secret"])
    assert meta["fingerprint"] == server_fp
    assert meta["addresses"] == ["127.0.0.1:%d" % tls]
    assert op["may_cancel"] is True
    assert meta["expiresAt"]

    # `lxc config trust list-tokens` finds it among the running operations.
    status, _, body = d.get("/1.0/operations?recursion=1")
    assert status == 200
    running = body["metadata"].get("running", [])
    assert [o["id"] for o in running if o["class"] == "token"] == [op["id"]]

    # The token adds no certificate by itself.
    assert d.get("/1.0/certificates")[2]["metadata"] == []

    # revoke-token.
    status, _, body = d.request("DELETE", "/1.0/operations/" + op["id"])
    assert status == 200, body
    status, _, body = d.get("/1.0/operations/" + op["id"])
    assert body["metadata"]["status_code"] != 103

    assert_error(d.request("POST", "/1.0/certificates",
                           body={"name": "", "token": True}), 400)
    assert_error(d.request("POST", "/1.0/certificates", body={
        "name": "t", "token": True, "restricted": False, "projects": ["default"]}), 400)


# --- untrusted callers over TLS -------------------------------------------------
# These need only the TLS listener (core.https_address); whether a client
# is trusted afterwards is the lead's TLS suite.

class TLSClient:
    def __init__(self, tmp_path, cn):
        key = ec.generate_private_key(ec.SECP384R1())
        self.cert = make_cert(cn, key=key)
        self.crt = str(tmp_path / (cn + ".crt"))
        self.key = str(tmp_path / (cn + ".key"))
        with open(self.crt, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        with open(self.key, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        self.fp = fp_of(self.cert)

    def post(self, port, body):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.crt, self.key)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        try:
            conn.request("POST", "/1.0/certificates", body=json.dumps(body))
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        finally:
            conn.close()


@pytest.fixture
def tls(d):
    status, _, body = d.request("PATCH", "/1.0", body={"config": {
        "core.https_address": "127.0.0.1:0", "core.trust_password": "s3kr1t-pw"}})
    if status != 200:
        pytest.skip("no TLS listener: %r" % (body,))
    addrs = d.get("/1.0")[2]["metadata"].get("environment", {}).get("addresses") or []
    if not addrs:
        pytest.skip("TLS listener address not reported")
    return int(addrs[0].rsplit(":", 1)[1])


def make_token(d, **fields):
    body = {"name": "tok", "type": "client", "restricted": True,
            "projects": ["default"], "token": True}
    body.update(fields)
    status, _, resp = d.request("POST", "/1.0/certificates", body=body)
    assert status == 202, resp
    meta = resp["metadata"]["metadata"]
    token = base64.b64encode(json.dumps({
        "client_name": meta["request"]["name"], "fingerprint": meta["fingerprint"],
        "addresses": meta["addresses"], "secret": meta["secret"],
        "expires_at": meta["expiresAt"]}).encode()).decode()
    return resp["metadata"]["id"], token


def test_password(d, tls, tmp_path):
    c = TLSClient(tmp_path, "laptop")
    status, body = c.post(tls, {"type": "client", "password": "hunter2-guess"})
    assert status == 403 and body["error"] == "not authorized", body
    # As `lxc remote add` sends it: no certificate field, the peer's is used.
    status, body = c.post(tls, {"name": "", "type": "client", "restricted": False,
                                "projects": None, "certificate": "",
                                "password": "s3kr1t-pw", "token": False})
    assert status == 201, body
    got, _ = get_cert(d, c.fp)
    assert got["name"] == "laptop" and got["roles"] == [ADMIN]
    status, body = c.post(tls, {"password": "s3kr1t-pw"})
    assert status == 409 and body["error"] == "Certificate already in trust store"
    assert "s3kr1t-pw" not in d.log() and "hunter2-guess" not in d.log()


def test_password_rate_limit(d, tls, tmp_path):
    c = TLSClient(tmp_path, "guesser")
    for _ in range(5):
        assert c.post(tls, {"password": "guess"})[0] == 403
    # Blocked for the minute, even with the right password and another cert.
    assert c.post(tls, {"password": "s3kr1t-pw"})[0] == 403
    other = TLSClient(tmp_path, "other")
    assert other.post(tls, {"password": "s3kr1t-pw"})[0] == 403
    assert d.get("/1.0/certificates")[2]["metadata"] == []
    assert "too many failures" in d.log()


def test_token_redeem(d, tls, tmp_path):
    op_id, token = make_token(d)
    c = TLSClient(tmp_path, "tokenuser")
    # The client cannot widen what the token grants.
    status, body = c.post(tls, {"name": "evil", "type": "client", "restricted": False,
                                "projects": None, "password": token})
    assert status == 201, body
    got, _ = get_cert(d, c.fp)
    assert got["name"] == "tok"
    assert got["restricted"] is True and got["projects"] == ["default"]
    assert got["roles"] == [operator("default")]
    # Used: the operation is over and the token is gone.
    assert d.get("/1.0/operations/" + op_id)[2]["metadata"]["status_code"] == 200
    again = TLSClient(tmp_path, "again")
    assert again.post(tls, {"password": token})[0] == 403

    # A revoked token is refused.
    op_id, token = make_token(d, name="tok2")
    assert d.request("DELETE", "/1.0/operations/" + op_id)[0] == 200
    assert again.post(tls, {"password": token})[0] == 403
    assert len(d.get("/1.0/certificates")[2]["metadata"]) == 1
    assert json.loads(base64.b64decode(token))["secret"] not in d.log()


def test_list_cache_follows_writes(d):
    """GET /1.0/certificates is served from memory between writes; every
    write that changes what it shows (add, rename, roles, a project
    rename, delete) shows in the next answer."""
    def lists():
        urls = d.request("GET", "/1.0/certificates")[2]["metadata"]
        full = d.request("GET", "/1.0/certificates?recursion=1")[2]["metadata"]
        return urls, {c["fingerprint"]: c for c in full}

    assert lists() == lists()
    cert = make_cert("cached")
    fp = fp_of(cert)
    add(d, cert, name="one")
    urls, full = lists()
    assert "/1.0/certificates/" + fp in urls
    assert full[fp]["name"] == "one"
    assert lists() == (urls, full)
    status, _, body = d.request("POST", "/1.0/projects", body={"name": "pa"})
    assert status == 201, body
    status, _, body = d.request("PATCH", "/1.0/certificates/" + fp, body={
        "name": "two", "restricted": True, "projects": ["pa"]})
    assert status == 200, body
    full = lists()[1]
    assert full[fp]["name"] == "two"
    assert full[fp]["projects"] == ["pa"]
    status, _, body = d.request("POST", "/1.0/projects/pa", body={"name": "pb"})
    assert status in (200, 201), body
    assert lists()[1][fp]["projects"] == ["pb"]
    status, _, body = d.request("DELETE", "/1.0/certificates/" + fp)
    assert status == 200, body
    urls, full = lists()
    assert "/1.0/certificates/" + fp not in urls and fp not in full
