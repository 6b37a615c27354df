"""?target=MEMBER: a request is forwarded over the member channel to the
named member, which authorizes the original caller again."""

import http.client
import json
import os
import ssl
import time

from cluster_helpers import check
from test_formation import READY, form3
from test_tls_trust import Client, pki  # noqa: F401 (pki: a fixture)


def tls_port(cluster, i):
    return int(cluster.addresses[i].rsplit(":", 1)[1])


def raw_call(client, port, method, path, headers):
    conn = client.connect(port)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def wait_peers(cluster, d, name):
    # Peers are learned from the member list (every 5 s at most).
    deadline = time.monotonic() + 10
    while True:
        status, _, body = d.request("GET", "/1.0?target=" + name)
        if status == 200:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_target_forwarding(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    body = wait_peers(cluster, m1, "m2")
    # Through m1's Unix socket: m2 answers.
    assert body["metadata"]["environment"]["server_name"] == "m2"
    status, _, body = m1.request("GET", "/1.0?target=m1")
    check(status, body)
    assert body["metadata"]["environment"]["server_name"] == "m1"

    client = Client(tmp_path, "target-client")
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "tc", "certificate": client.b64})
    check(status, body, 201)
    port1 = tls_port(cluster, 0)
    st, body = client.call(port1, "GET", "/1.0?target=m3")
    assert st == 200, body
    assert body["metadata"]["auth"] == "trusted"
    assert body["metadata"]["environment"]["server_name"] == "m3"
    # m3 serves the caller (a member certificate alone would get 403).
    st, body = client.call(port1, "GET", "/1.0/profiles?target=m3")
    assert st == 200, body
    st, body = client.call(port1, "POST", "/1.0/profiles?target=m2",
                           body={"name": "via-m2"})
    assert st == 201, body
    status, _, body = m3.request("GET", "/1.0/profiles/via-m2")
    check(status, body)
    # The answer's ETag and Location come back too (If-Match round trips
    # through a forward).
    conn = client.connect(port1)
    try:
        conn.request("GET", "/1.0/profiles/via-m2?target=m2")
        resp = conn.getresponse()
        resp.read()
        etag = resp.getheader("ETag")
        assert resp.status == 200 and etag, resp.getheaders()
        local = m2.request("GET", "/1.0/profiles/via-m2")[1]
        assert {k.lower(): v for k, v in local.items()}["etag"] == etag
        conn.request("POST", "/1.0/profiles?target=m3",
                     body=json.dumps({"name": "loc"}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
        assert resp.getheader("Location") == "/1.0/profiles/loc"
    finally:
        conn.close()
    # The rest of the query goes along with the request.
    status, _, body = m1.request("POST", "/1.0/projects", body={"name": "tp"})
    check(status, body, 201)
    st, body = client.call(port1, "POST", "/1.0/profiles?project=tp&target=m2",
                           body={"name": "in-tp"})
    assert st == 201, body
    status, _, body = m3.request("GET", "/1.0/profiles?project=tp")
    check(status, body)
    assert "/1.0/profiles/in-tp?project=tp" in body["metadata"], body
    status, _, body = m3.request("GET", "/1.0/profiles")
    assert "/1.0/profiles/in-tp" not in body["metadata"], body

    # An unknown member.
    st, body = client.call(port1, "GET", "/1.0?target=nope")
    assert st == 404, body
    assert "nope" in body["error"], body

    # An untrusted client: 403, forged forwarding headers change nothing.
    stranger = Client(tmp_path, "stranger")
    st, body = stranger.call(port1, "GET", "/1.0/profiles?target=m2")
    assert st == 403, body
    st, body = raw_call(stranger, port1, "GET", "/1.0/profiles?target=m2", {
        "X-Corral-Forwarded-Protocol": "unix"})
    assert st == 403, body
    st, body = raw_call(stranger, tls_port(cluster, 1), "GET",
                        "/1.0/profiles", {
                            "X-Corral-Forwarded-Protocol": "tls",
                            "X-Corral-Forwarded-Fingerprint": client.fp})
    assert st == 403, body
    # GET /1.0 is open: m2 answers the stranger as untrusted.
    st, body = stranger.call(port1, "GET", "/1.0?target=m2")
    assert st == 200, body
    assert body["metadata"]["auth"] == "untrusted"


def test_target_forwards_pki_client(cluster, tmp_path, pki):
    """A client trusted through server.ca (not in the trust store) is
    recognised on the target too: its certificate travels with the
    forwarded request, and the target checks it against its own CA and
    CRL."""
    from cryptography.hazmat.primitives import serialization
    m1, m2, m3 = form3(cluster)
    for d in (m3, m1):
        with open(os.path.join(d.state_dir, "server.ca"), "wb") as f:
            f.write(pki["ca"].public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(d.state_dir, "ca.crl"), "wb") as f:
            f.write(pki["crl"].public_bytes(serialization.Encoding.PEM))
        d.restart(READY)
    status, _, body = m2.request("PATCH", "/1.0", body={
        "config": {"core.trust_ca_certificates": "true"}})
    check(status, body)
    wait_peers(cluster, m1, "m3")
    port1 = tls_port(cluster, 0)
    good, bad = pki["good"], pki["bad"]
    st, body = good.call(port1, "GET", "/1.0/profiles")
    assert st == 200, body
    st, body = good.call(port1, "GET", "/1.0?target=m3")
    assert st == 200, body
    assert body["metadata"]["auth"] == "trusted"
    assert body["metadata"]["environment"]["server_name"] == "m3"
    st, body = good.call(port1, "GET", "/1.0/profiles?target=m3")
    assert st == 200, body
    # A bigger certificate (RSA 4096, ~1.9 KB of base64 in the forwarded
    # head) goes through as well.
    from cryptography.hazmat.primitives.asymmetric import rsa
    from test_tls_trust import make_cert
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    big = Client(tmp_path, "big", key=rsa_key,
                 cert=make_cert("big", rsa_key, issuer=pki["ca"],
                                issuer_key=pki["ca_key"]))
    st, body = big.call(port1, "GET", "/1.0/profiles?target=m3")
    assert st == 200, body
    # m2 has no server.ca: the same client is a stranger there.
    st, body = good.call(port1, "GET", "/1.0/profiles?target=m2")
    assert st == 403, body
    # Revoked by the CRL: refused on m1 already, and never forwarded.
    st, body = bad.call(port1, "GET", "/1.0/profiles?target=m3")
    assert st == 403, body
    # A certificate header from a non-member is ignored.
    st, body = raw_call(pki["self"], tls_port(cluster, 2), "GET",
                        "/1.0/profiles", {
                            "X-Corral-Forwarded-Protocol": "tls",
                            "X-Corral-Forwarded-Fingerprint": good.fp,
                            "X-Corral-Forwarded-Certificate": good.b64})
    assert st == 403, body
