"""Bounded staleness: a member out of contact with a quorum of the voters
for longer than corral.stale_bound answers TLS clients 503 (but GET / and
GET /1.0), keeps serving its Unix socket, and serves TLS clients again once
back in contact and reloaded."""

import os
import signal
import time

from cluster_helpers import check
from test_formation import form3
from test_tls_trust import Client

STALE = "member out of contact with the cluster"


def tls_port(cluster, i):
    return int(cluster.addresses[i].rsplit(":", 1)[1])


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_stale_member_refuses_tls(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    client = Client(tmp_path, "stale-client")
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "c", "certificate": client.b64})
    check(status, body, 201)
    status, _, body = m1.request("PATCH", "/1.0", body={
        "config": {"corral.stale_bound": "1000"}})
    check(status, body)
    port = tls_port(cluster, 0)

    # In contact: served. Wait for every member to be heard from once the
    # bound is lowered (the member list read fills the voters).
    def served():
        return client.call(port, "GET", "/1.0/projects")[0] == 200
    wait_for(served, 10, "m1 does not serve TLS clients")
    time.sleep(2)
    assert client.call(port, "GET", "/1.0/projects")[0] == 200

    stopped = [m2, m3]
    try:
        for d in stopped:
            os.kill(d.pid, signal.SIGSTOP)
        # A request made before the bound would wait for the database
        # (no leader); ask once the bound has passed.
        time.sleep(1.1)

        def refused():
            st, body = client.call(port, "GET", "/1.0/projects")
            return st == 503 and body["error"] == STALE
        wait_for(refused, 5, "m1 still serves TLS clients")
        st, body = client.call(port, "GET", "/1.0/profiles")
        assert st == 503 and body["error"] == STALE, (st, body)
        st, body = client.call(port, "GET", "/1.0")
        assert st == 200, (st, body)
        assert body["metadata"]["environment"]["server_name"] == "m1"
        st, _ = client.call(port, "GET", "/")
        assert st == 200
        # The Unix socket keeps working.
        status, _, body = m1.request("GET", "/1.0")
        check(status, body)
    finally:
        for d in stopped:
            if d.running():
                os.kill(d.pid, signal.SIGCONT)

    # Back in contact and reloaded: TLS clients are served again.
    cont_at = time.monotonic()
    wait_for(served, 10, "m1 still refuses TLS clients after SIGCONT")
    took = time.monotonic() - cont_at
    print("recovered after %.2fs" % took)
    assert took < 10, took
    status, _, body = m1.request("GET", "/1.0/projects")
    check(status, body)


def test_standalone_never_stale(daemon_factory, tmp_path):
    from cluster_helpers import listen
    d = daemon_factory.start(ready_path="/1.0/projects")
    listen(d)
    status, _, body = d.request("PATCH", "/1.0", body={
        "config": {"corral.stale_bound": "100"}})
    check(status, body)
    client = Client(tmp_path, "standalone-client")
    status, _, body = d.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "c", "certificate": client.b64})
    check(status, body, 201)
    env = d.request("GET", "/1.0")[2]["metadata"]["environment"]
    port = int(env["addresses"][0].rsplit(":", 1)[1])
    time.sleep(0.5)
    st, _ = client.call(port, "GET", "/1.0/projects")
    assert st == 200
