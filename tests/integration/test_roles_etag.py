"""ETag and If-Match on /1.0/certificates/{fp}/roles: a concurrent change
between a read and a write is refused (412) and nothing changes."""

import base64

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from test_tls_trust import make_cert


def add_cert(d):
    key = ec.generate_private_key(ec.SECP384R1())
    cert = make_cert("roles-etag", key)
    der = cert.public_bytes(serialization.Encoding.DER)
    status, _, body = d.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "r", "restricted": True, "projects": [],
        "certificate": base64.b64encode(der).decode()})
    assert status == 201, body
    import hashlib
    return hashlib.sha256(der).hexdigest()


def test_roles_if_match(daemon_factory):
    d = daemon_factory.start(ready_path="/1.0/projects")
    fp = add_cert(d)
    path = "/1.0/certificates/%s/roles" % fp
    status, headers, body = d.request("GET", path)
    assert status == 200 and body["metadata"] == []
    etag = headers["ETag"]
    grant = {"roles": [{"scope": "project", "project": "default",
                        "role": "auditor"}]}
    # Someone else changes the roles after our read.
    status, _, body = d.request("PUT", path, body={"roles": [
        {"scope": "server", "role": "auditor"}]})
    assert status == 200, body
    status, _, body = d.request("PUT", path, body=grant,
                                headers={"If-Match": etag})
    assert status == 412, body
    assert d.request("GET", path)[2]["metadata"] == [
        {"scope": "server", "role": "auditor"}]
    # With the current ETag the write goes through.
    etag = d.request("GET", path)[1]["ETag"]
    status, _, body = d.request("PUT", path, body=grant,
                                headers={"If-Match": etag})
    assert status == 200, body
    assert d.request("GET", path)[2]["metadata"] == grant["roles"]
