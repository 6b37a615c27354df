"""Operations in a cluster: every member lists every member's operations,
and finds, waits on and cancels an operation another member holds, on
behalf of the caller. Tokens: a join or trust token made on one member is
listed (with its secret, location = the issuing member) and revoked
through any other, also while the issuing member is down, and a member
restart deletes the tokens it issued (their operations died with it)."""

import base64
import json
import os
import signal
import threading
import time

from cluster_helpers import READY, check, listen, wait_op
from test_formation import form3
from test_lxc_cluster import LXC, PASSWORD, lxc  # noqa: F401 (lxc: a fixture)
from test_tls_trust import Client
from test_cli_cluster import ok as corral_ok


def tls_port(cluster, i):
    return int(cluster.addresses[i].rsplit(":", 1)[1])


def wait_peers(cluster, timeout=15.0):
    """Until every member reaches every other one over the member channel
    (members learn each other from the member list, every 5 s at most)."""
    deadline = time.monotonic() + timeout
    for d in cluster.members:
        for name in cluster.names:
            while True:
                status, _, body = d.request("GET", "/1.0?target=" + name)
                if status == 200:
                    break
                assert time.monotonic() < deadline, body
                time.sleep(0.1)


def operations(d, query="recursion=1"):
    status, _, body = d.request("GET", "/1.0/operations?" + query)
    check(status, body)
    return [op for ops in body["metadata"].values() for op in ops]


def find(ops, op_id):
    found = [op for op in ops if op["id"] == op_id]
    assert len(found) == 1, (op_id, ops)
    return found[0]


def wait_log(d, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while text not in d.log():
        assert time.monotonic() < deadline, (text, d.log()[-3000:])
        time.sleep(0.05)


def assert_pruned_before_ready(d, count):
    """The last start logged the deletion of @count earlier tokens before
    it logged "ready"."""
    log = d.log()
    start = log.rindex('msg="corrald started"')
    pruned = log.find('msg="deleted the tokens of earlier runs" count=%d'
                      % count, start)
    ready = log.find('msg="ready"', start)
    assert 0 <= pruned < ready, log[start:][-3000:]


def join_token(d, name):
    status, _, body = d.request("POST", "/1.0/cluster/members",
                                body={"server_name": name})
    check(status, body, 202)
    return body["metadata"]


def trust_token(d, name):
    status, _, body = d.request("POST", "/1.0/certificates", body={
        "name": name, "type": "client", "token": True})
    check(status, body, 202)
    return body["metadata"]


def trust_token_text(op):
    md = op["metadata"]
    return base64.b64encode(json.dumps({
        "client_name": md["request"]["name"], "fingerprint": md["fingerprint"],
        "addresses": md["addresses"], "secret": md["secret"],
        "expires_at": md["expiresAt"]}).encode()).decode()


def join_fails(cluster, name, secret, via):
    """A fresh daemon asks to join through member @via with @secret: the
    join must fail because the token is gone."""
    cert = cluster.members[via].request("GET", "/1.0")[2]["metadata"][
        "environment"]["certificate"]
    d = cluster.new_member()
    try:
        addr = listen(d)
        status, _, body = d.request("PUT", "/1.0/cluster", body={
            "server_name": name, "server_address": addr,
            "cluster_address": cluster.addresses[via],
            "cluster_certificate": cert, "cluster_password": secret,
            "enabled": True})
        check(status, body, 202)
        op = wait_op(d, body)
        assert op["status"] == "Failure", op
        assert "join token not found, already used or expired" in op["err"], op
    finally:
        d.stop()


def redeem_fails(cluster, tmp_path, i, token, cn):
    c = Client(tmp_path, cn)
    st, body = c.call(tls_port(cluster, i), "POST", "/1.0/certificates",
                      body={"type": "client", "password": token})
    assert st == 403, body


def test_join_token_listed_and_revoked_from_any_member(cluster, lxc, tmp_path):
    m1, m2, m3 = form3(cluster)
    wait_peers(cluster)
    op = join_token(m1, "m4")
    op_id, secret = op["id"], op["metadata"]["secret"]
    assert op["location"] == "m1"

    # Listed by the other members, secret included: m1 answers for it.
    for d in (m2, m3):
        got = find(operations(d), op_id)
        assert got["class"] == "token" and got["status_code"] == 103, got
        assert got["location"] == "m1", got
        assert got["metadata"]["secret"] == secret
        assert got["metadata"]["serverName"] == "m4"
        assert "/1.0/operations/" + op_id in operations(d, "")
        # Each member's own operations carry its name.
        assert all(o["location"] in cluster.names for o in operations(d))
    status, _, body = m3.request("GET", "/1.0/operations/" + op_id)
    check(status, body)
    assert body["metadata"]["location"] == "m1"
    status, _, body = m2.request("GET", "/1.0/operations/" + op_id +
                                 "/wait?timeout=0")
    check(status, body)
    assert body["metadata"]["status_code"] == 103
    status, _, body = m2.request("GET", "/1.0/operations/" +
                                 "00000000-0000-4000-8000-000000000000")
    assert status == 404, body

    # `corral cluster list-tokens` through m2's socket.
    out = corral_ok(m2, tmp_path, "cluster", "list-tokens", "--format", "json")
    tokens = json.loads(out)
    assert [t["server_name"] for t in tokens] == ["m4"], out
    assert tokens[0]["secret"] == secret

    # The real `lxc cluster list-tokens` through m3.
    if LXC is not None:
        check(*m1.request("PATCH", "/1.0", body={
            "config": {"core.trust_password": PASSWORD}})[::2])
        lxc.ok("remote", "add", "c3", "https://" + cluster.addresses[2],
               "--accept-certificate", "--password", PASSWORD)
        out = lxc.ok("cluster", "list-tokens", "c3:")
        assert "m4" in out, out

    # Revoked through m3 while m2 waits on it: m1's operation is
    # cancelled, the wait through m2 returns it, the token is gone.
    waited = {}

    def wait_via_m2():
        waited["answer"] = m2.request(
            "GET", "/1.0/operations/%s/wait?timeout=20" % op_id, timeout=30)

    waiter = threading.Thread(target=wait_via_m2)
    waiter.start()
    time.sleep(0.5)
    status, _, body = m3.request("DELETE", "/1.0/operations/" + op_id)
    check(status, body)
    waiter.join(timeout=30)
    status, _, body = waited["answer"]
    check(status, body)
    assert body["metadata"]["status"] == "Cancelled", body
    assert body["metadata"]["location"] == "m1", body
    status, _, body = m1.request("GET", "/1.0/operations/" + op_id)
    check(status, body)
    assert body["metadata"]["status"] == "Cancelled", body
    assert not [o for o in operations(m2)
                if o["class"] == "token" and o["status_code"] == 103]
    out = corral_ok(m2, tmp_path, "cluster", "list-tokens", "--format", "json")
    assert json.loads(out) == [], out
    join_fails(cluster, "m4", secret, via=0)
    # A second revoke finds a finished operation.
    status, _, body = m2.request("DELETE", "/1.0/operations/" + op_id)
    assert status == 400, body

    # `corral cluster revoke-token` through m2 for a token m3 made.
    op = join_token(m3, "m5")
    corral_ok(m2, tmp_path, "cluster", "revoke-token", "m5")
    status, _, body = m3.request("GET", "/1.0/operations/" + op["id"])
    check(status, body)
    assert body["metadata"]["status"] == "Cancelled", body
    join_fails(cluster, "m5", op["metadata"]["secret"], via=2)
    assert op["metadata"]["secret"] not in m2.log() + m3.log()


def test_trust_token_revoked_through_another_member(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    wait_peers(cluster)
    op = trust_token(m2, "c1")
    assert op["location"] == "m2"
    got = find(operations(m1), op["id"])
    assert got["metadata"]["request"]["name"] == "c1"
    assert got["metadata"]["secret"] == op["metadata"]["secret"]
    token = trust_token_text(op)

    # A caller that may not see server-level operations sees no token
    # through another member, and cannot revoke it there.
    viewer = Client(tmp_path, "viewer")
    check(*m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "viewer", "certificate": viewer.b64,
        "restricted": True, "projects": ["default"]})[::2], 201)
    st, body = viewer.call(tls_port(cluster, 0), "GET",
                           "/1.0/operations?recursion=1")
    assert st == 200, body
    seen = [o["id"] for ops in body["metadata"].values() for o in ops]
    assert op["id"] not in seen, body
    st, body = viewer.call(tls_port(cluster, 0), "DELETE",
                           "/1.0/operations/" + op["id"])
    assert st == 404, body
    assert find(operations(m2), op["id"])["status_code"] == 103

    # A server admin (the Unix socket) revokes it through m1.
    status, _, body = m1.request("DELETE", "/1.0/operations/" + op["id"])
    check(status, body)
    status, _, body = m2.request("GET", "/1.0/operations/" + op["id"])
    check(status, body)
    assert body["metadata"]["status"] == "Cancelled", body
    redeem_fails(cluster, tmp_path, 1, token, "late")


def test_revoke_while_the_issuing_member_is_down(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    wait_peers(cluster)
    op = join_token(m1, "m4")
    trust = trust_token(m1, "c1")
    m1.stop()

    # Listing through m2 still works, without m1's operations.
    start = time.monotonic()
    ids = [o["id"] for o in operations(m2)]
    assert time.monotonic() - start < 3.0
    assert op["id"] not in ids

    # m1 led the database: wait for another leader (a write goes through).
    deadline = time.monotonic() + 15
    while True:
        status, _, body = m2.request("PATCH", "/1.0/profiles/default",
                                     body={"description": "after m1"})
        if status == 200:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)

    # The tokens die with their rows.
    for o in (op, trust):
        status, _, body = m2.request("DELETE", "/1.0/operations/" + o["id"])
        check(status, body)
        status, _, body = m2.request("DELETE", "/1.0/operations/" + o["id"])
        assert status == 404, body
    wait_log(m2, "token revoked without its operation")
    join_fails(cluster, "m4", op["metadata"]["secret"], via=1)
    redeem_fails(cluster, tmp_path, 2, trust_token_text(trust), "late")

    # A member that does not answer (stopped, still Online for its peers)
    # is left out of a listing after the 2 s bound, with a log line.
    mine = trust_token(m2, "c2")
    os.kill(m3.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        ids = [o["id"] for o in operations(m2)]
        elapsed = time.monotonic() - start
    finally:
        os.kill(m3.pid, signal.SIGCONT)
    assert mine["id"] in ids
    assert 1.5 < elapsed < 3.5, elapsed
    wait_log(m2, 'msg="operations of a member left out" member=m3')


def test_restart_deletes_the_members_tokens(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    wait_peers(cluster)
    op = join_token(m2, "m4")
    trust = trust_token(m2, "c1")
    kept = join_token(m3, "m5")  # another member's token stays
    m2.restart(ready_path=READY)
    # Deleted before the member is ready: never redeemable after a restart.
    assert_pruned_before_ready(m2, 2)
    wait_peers(cluster)
    ids = [o["id"] for o in operations(m1)]
    assert op["id"] not in ids and trust["id"] not in ids
    assert kept["id"] in ids
    join_fails(cluster, "m4", op["metadata"]["secret"], via=1)
    redeem_fails(cluster, tmp_path, 1, trust_token_text(trust), "late")
    # m3's token still works.
    d = cluster.new_member()
    addr = listen(d)
    status, body = cluster.join_request(
        d, "m5", kept["metadata"], addr, via_addr=cluster.addresses[2])
    check(status, body, 202)
    assert wait_op(d, body)["status"] == "Success"


def test_standalone_restart_deletes_trust_tokens(daemon_factory, tmp_path):
    d = daemon_factory.start(ready_path=READY)
    listen(d)
    op = trust_token(d, "c1")
    token = trust_token_text(op)
    d.restart(ready_path=READY)
    assert_pruned_before_ready(d, 1)
    port = int(d.request("GET", "/1.0")[2]["metadata"]["environment"][
        "addresses"][0].rsplit(":", 1)[1])
    c = Client(tmp_path, "late")
    st, body = c.call(port, "POST", "/1.0/certificates",
                      body={"type": "client", "password": token})
    assert st == 403, body
    status, _, body = d.request("GET", "/1.0/operations/" + op["id"])
    assert status == 404, body


def wait_status(d, op_id, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = d.request("GET", "/1.0/operations/" + op_id)
        check(status, body)
        if body["metadata"]["status"] == want:
            return body["metadata"]
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_token_used_on_another_member_ends_its_operation(cluster, tmp_path):
    """A token made on m1 and redeemed through m2 ends m1's operation: the
    used token is no longer listed anywhere."""
    m1, m2, m3 = form3(cluster)
    wait_peers(cluster)

    # A trust token made on m1, redeemed on m2's listener.
    trust = trust_token(m1, "c1")
    c = Client(tmp_path, "c1")
    st, body = c.call(tls_port(cluster, 1), "POST", "/1.0/certificates",
                      body={"type": "client",
                            "password": trust_token_text(trust)})
    assert st in (200, 201), body
    assert wait_status(m1, trust["id"], "Success")["location"] == "m1"
    wait_log(m1, 'msg="token used on another member" operation=%s'
             % trust["id"])
    for d in (m1, m2, m3):
        running = [o["id"] for o in operations(d)
                   if o["status_code"] == 103]
        assert trust["id"] not in running

    # A join token made on m1, redeemed through m3.
    op = join_token(m1, "m4")
    d = cluster.new_member()
    addr = listen(d)
    status, body = cluster.join_request(
        d, "m4", op["metadata"], addr, via_addr=cluster.addresses[2])
    check(status, body, 202)
    assert wait_op(d, body)["status"] == "Success"
    wait_status(m1, op["id"], "Success")
    out = corral_ok(m2, tmp_path, "cluster", "list-tokens", "--format", "json")
    assert json.loads(out) == [], out


def test_token_used_endpoint_refusals(cluster, tmp_path):
    """POST /internal/tokens/used: members only, a strict body; an
    operation this member does not hold is 404, and nothing else moves."""
    from test_join_ready import make_cert, server_cert, tls_post
    m1, m2, m3 = form3(cluster)
    addr1 = cluster.addresses[0]
    path = "/internal/tokens/used"
    trust = trust_token(m1, "c1")
    good = {"operation": trust["id"]}
    intruder = make_cert(tmp_path, "intruder")
    assert tls_post(addr1, path, body=good)[0] == 403
    assert tls_post(addr1, path, intruder, body=good)[0] == 403
    member = server_cert(m2)
    for bad in ({}, {"operation": 1}, {"operation": None},
                {"operation": "../x"}, {"operation": trust["id"], "x": 1},
                {"operation": "a" * 100}):
        status, out = tls_post(addr1, path, member, body=bad)
        assert status == 400, (bad, status, out)
    for raw in (b"", b"[1]", b"{\"operation\":",
                json.dumps(good).encode() + b" " * 300):
        status, out = tls_post(addr1, path, member, raw=raw)
        assert status == 400, (raw, status, out)
    status, out = tls_post(addr1, path, member, body={
        "operation": "00000000-0000-4000-8000-000000000000"})
    assert status == 404, out
    # Through all of that the token stayed usable.
    status, _, body = m1.request("GET", "/1.0/operations/" + trust["id"])
    check(status, body)
    assert body["metadata"]["status"] == "Running", body
    # The member that holds it: done.
    status, out = tls_post(addr1, path, member, body=good)
    assert status == 200, out
    wait_status(m1, trust["id"], "Success")
