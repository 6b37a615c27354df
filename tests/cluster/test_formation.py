"""Cluster formation with real corrald processes: enable, join with tokens,
member listing with raft roles, SQL through the leader from any member,
single-use tokens, kill -9 and restart, and the member channel refusing
callers that are not members."""

import datetime
import http.client
import json
import ssl
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cluster_helpers import READY, check, listen, wait_op


def roles(members):
    return sorted((m["server_name"], tuple(m["roles"])) for m in members)


def form3(cluster):
    cluster.enable("m1")
    cluster.join("m2")
    cluster.join("m3")
    return cluster.members


def test_enable_one_member(cluster):
    d = cluster.enable("m1")
    status, _, body = d.request("GET", "/1.0/cluster")
    check(status, body)
    assert body["metadata"] == {"server_name": "m1", "enabled": True,
                                "member_config": []}
    env = d.request("GET", "/1.0")[2]["metadata"]["environment"]
    assert env["server_clustered"] is True
    assert env["server_name"] == "m1"
    members = cluster.members_of(d)
    assert len(members) == 1
    m = members[0]
    assert m["server_name"] == "m1"
    assert m["url"] == "https://" + cluster.addresses[0]
    assert m["roles"] == ["database-leader", "database"]
    assert m["status"] == "Online" and m["message"] == "Fully operational"
    assert m["database"] is True
    # The database still works after the node was re-addressed.
    status, _, body = d.request("POST", "/1.0/profiles", body={"name": "p0"})
    check(status, body, 201)
    # A second enable is refused.
    status, _, body = d.request("PUT", "/1.0/cluster", body={
        "server_name": "m1", "enabled": True})
    assert status == 400, body


def test_form_three_members(cluster):
    m1, m2, m3 = form3(cluster)
    for d in (m1, m2, m3):
        members = cluster.members_of(d)
        assert sorted(m["server_name"] for m in members) == ["m1", "m2", "m3"]
        leaders = [m for m in members if "database-leader" in m["roles"]]
        assert len(leaders) == 1, members
        assert all("database" in m["roles"] for m in members), members
        status, _, body = d.request("GET", "/1.0/cluster/members")
        check(status, body)
        assert sorted(body["metadata"]) == ["/1.0/cluster/members/m1",
                                           "/1.0/cluster/members/m2",
                                           "/1.0/cluster/members/m3"]
    status, _, body = m3.request("GET", "/1.0/cluster/members/m2")
    check(status, body)
    assert body["metadata"]["server_name"] == "m2"
    assert body["metadata"]["url"] == "https://" + cluster.addresses[1]
    status, _, body = m3.request("GET", "/1.0/cluster/members/nope")
    assert status == 404, body
    # Each member's schema and API extension count (for rolling upgrades),
    # from its heartbeats; the same binary everywhere here.
    root = m1.request("GET", "/1.0")[2]["metadata"]
    deadline = time.monotonic() + 5
    while True:
        members = cluster.members_of(m3)
        if all(m["schema"] > 0 for m in members) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for m in members:
        assert m["schema"] >= 1, m
        assert m["api_extensions"] == len(root["api_extensions"]), m
        assert m["version"] == root["environment"]["server_version"], m
    # Every member presents the cluster certificate.
    fps = set()
    for d in (m1, m2, m3):
        env = d.request("GET", "/1.0")[2]["metadata"]["environment"]
        fps.add(env["certificate_fingerprint"])
        assert env["server_clustered"] is True
    assert len(fps) == 1
    # Write through a follower, read everywhere.
    status, _, body = m2.request("POST", "/1.0/profiles", body={
        "name": "web", "config": {"limits.cpu": "2"}})
    check(status, body, 201)
    for d in (m1, m2, m3):
        status, _, body = d.request("GET", "/1.0/profiles/web")
        check(status, body)
        assert body["metadata"]["config"] == {"limits.cpu": "2"}
        status, _, body = d.request("GET", "/1.0/profiles")
        check(status, body)
        assert "/1.0/profiles/web" in body["metadata"]


def test_used_token_refused(cluster):
    cluster.enable("m1")
    token = cluster.token("m2")
    cluster_addr = cluster.addresses[0]
    d2 = cluster.new_member()
    addr2 = listen(d2)
    status, body = cluster.join_request(d2, "m2", token, addr2)
    check(status, body, 202)
    assert wait_op(d2, body)["status"] == "Success"
    cluster.members.append(d2)
    cluster.addresses.append(addr2)
    # The same token again, from another fresh daemon.
    d3 = cluster.new_member()
    addr3 = listen(d3)
    status, body = cluster.join_request(d3, "m2", token, addr3,
                                        via_addr=cluster_addr)
    check(status, body, 202)
    op = wait_op(d3, body)
    assert op["status"] == "Failure"
    assert "join token not found, already used or expired" in op["err"]
    # A bogus secret too.
    token2 = dict(token, secret="00" * 32)
    d3.request("GET", "/1.0")
    status, body = cluster.join_request(d3, "m3", token2, addr3)
    check(status, body, 202)
    op = wait_op(d3, body)
    assert op["status"] == "Failure"
    assert "join token not found" in op["err"]
    assert len(cluster.members_of(cluster.members[0])) == 2


def test_join_refused_when_not_fresh(cluster):
    cluster.enable("m1")
    token = cluster.token("m2")
    d = cluster.new_member()
    addr = listen(d)
    status, _, body = d.request("POST", "/1.0/profiles", body={"name": "mine"})
    check(status, body, 201)
    status, body = cluster.join_request(d, "m2", token, addr)
    assert status == 400, body
    assert "fresh server" in body["error"]


def test_kill_and_restart_member(cluster):
    m1, m2, m3 = form3(cluster)
    status, _, body = m1.request("POST", "/1.0/profiles", body={"name": "before"})
    check(status, body, 201)
    m3.kill()
    # The two others keep a quorum.
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "during"})
    check(status, body, 201)
    m3.start(ready_path=READY, timeout=30)
    for name in ("before", "during"):
        status, _, body = m3.request("GET", "/1.0/profiles/" + name)
        check(status, body)
    members = cluster.wait_members(m3, 3)
    assert len([m for m in members if "database-leader" in m["roles"]]) == 1
    status, _, body = m3.request("POST", "/1.0/profiles", body={"name": "after"})
    check(status, body, 201)
    status, _, body = m1.request("GET", "/1.0/profiles/after")
    check(status, body)
    env = m3.request("GET", "/1.0")[2]["metadata"]["environment"]
    assert env["server_name"] == "m3"


def test_name_known_from_first_answer(cluster):
    """A restarted member knows its name before it answers anything: the
    first answers after start carry it (GET /1.0, GET /1.0/cluster), not a
    placeholder."""
    m1, m2, m3 = form3(cluster)
    for _ in range(5):
        m2.restart(READY)
        env = m2.request("GET", "/1.0")[2]["metadata"]["environment"]
        assert env["server_name"] == "m2"
        status, _, body = m2.request("GET", "/1.0/cluster")
        check(status, body)
        assert body["metadata"]["server_name"] == "m2"


def make_client(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA384()))
    crt_path = tmp_path / "intruder.crt"
    key_path = tmp_path / "intruder.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(crt_path), str(key_path)


def tls_post(address, path, crt=None, key=None, headers=None, body=None):
    host, port = address.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if crt is not None:
        ctx.load_cert_chain(crt, key)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=5)
    try:
        conn.request("POST", path, body=json.dumps(body) if body else None,
                     headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_raft_endpoint_refuses_non_members(cluster, tmp_path):
    m1, m2 = cluster.enable("m1"), cluster.join("m2")
    crt, key = make_client(tmp_path)
    up = {"Upgrade": "dqlite", "Connection": "Upgrade"}
    for addr in cluster.addresses:
        status, _ = tls_post(addr, "/internal/raft", crt, key, headers=up)
        assert status == 403
        status, _ = tls_post(addr, "/internal/raft", headers=up)
        assert status == 403
        # A certificate trusted as a client is no member either.
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "c",
        "certificate": open(crt).read()})
    check(status, body, 201)
    for addr in cluster.addresses:
        status, _ = tls_post(addr, "/internal/raft", crt, key, headers=up)
        assert status == 403
    # The cluster still works.
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "x"})
    check(status, body, 201)


def test_remove_member(cluster):
    m1, m2, m3 = form3(cluster)
    status, _, body = m1.request("DELETE", "/1.0/cluster/members/m3")
    check(status, body)
    for d in (m1, m2):
        assert sorted(m["server_name"] for m in cluster.members_of(d)) == ["m1", "m2"]
    status, _, body = m1.request("GET", "/1.0/certificates?recursion=1")
    check(status, body)
    assert sorted(c["name"] for c in body["metadata"] if c["type"] == "server") == ["m1", "m2"]
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "y"})
    check(status, body, 201)
