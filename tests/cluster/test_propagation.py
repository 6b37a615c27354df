"""Propagation between members: a revoke is in force on every member when
the DELETE returns, a profile change is visible everywhere when the PUT
returns, heartbeats mark a killed member Offline within the threshold, and
a write while a member is down names it in unacknowledged_members."""

import time

from cluster_helpers import check
from test_formation import READY, form3
from test_tls_trust import Client


def tls_port(cluster, i):
    return int(cluster.addresses[i].rsplit(":", 1)[1])


def status_of(cluster, d, name):
    for m in cluster.members_of(d):
        if m["server_name"] == name:
            return m["status"], m["message"]
    raise AssertionError("no member %s" % name)


def test_revoke_and_profile_propagate(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    client = Client(tmp_path, "prop-client")
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "c", "certificate": client.b64})
    check(status, body, 201)
    assert body["metadata"]["unacknowledged_members"] is None
    # Trusted on every member as soon as the POST returned.
    for i in range(3):
        st, _ = client.call(tls_port(cluster, i), "GET", "/1.0/profiles")
        assert st == 200, (i, st)
    status, _, body = m1.request("DELETE", "/1.0/certificates/" + client.fp)
    check(status, body)
    assert body["metadata"]["unacknowledged_members"] is None
    for i in (1, 2):
        st, _ = client.call(tls_port(cluster, i), "GET", "/1.0/profiles")
        assert st == 403, (i, st)

    # A profile change through m2 is visible on m1 and m3 when it returns.
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "p"})
    check(status, body, 201)
    status, _, body = m1.request("GET", "/1.0/profiles")
    check(status, body)
    status, _, body = m2.request("PUT", "/1.0/profiles/p", body={
        "description": "changed", "config": {}, "devices": {}})
    check(status, body)
    assert body["metadata"]["unacknowledged_members"] is None
    for d in (m1, m3):
        status, _, body = d.request("GET", "/1.0/profiles/p")
        check(status, body)
        assert body["metadata"]["description"] == "changed"
        status, _, body = d.request("GET", "/1.0/profiles")
        check(status, body)
        assert "/1.0/profiles/p" in body["metadata"]

    # List answers are cached by each member (keyed by its write
    # generation): writes through another member must still show at once.
    def lists(d):
        urls = d.request("GET", "/1.0/profiles")[2]["metadata"]
        full = d.request("GET", "/1.0/profiles?recursion=1")[2]["metadata"]
        return urls, {p["name"]: p["description"] for p in full}

    for d in (m1, m3):
        assert lists(d) == lists(d)  # the second answer comes from the cache
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "q"})
    check(status, body, 201)
    for d in (m1, m3):
        urls, full = lists(d)
        assert "/1.0/profiles/q" in urls
        assert full["q"] == ""
    status, _, body = m2.request("PATCH", "/1.0/profiles/q", body={
        "description": "patched"})
    check(status, body)
    for d in (m1, m3):
        assert lists(d)[1]["q"] == "patched"
    status, _, body = m2.request("DELETE", "/1.0/profiles/q")
    check(status, body)
    for d in (m1, m3):
        urls, full = lists(d)
        assert "/1.0/profiles/q" not in urls and "q" not in full

    # The same for the trust store list: an install from another member's
    # write shows in the next answer.
    def certs(d):
        return d.request("GET", "/1.0/certificates")[2]["metadata"]

    for d in (m2, m3):
        assert certs(d) == certs(d)
    other = Client(tmp_path, "prop-other")
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "o", "certificate": other.b64})
    check(status, body, 201)
    for d in (m2, m3):
        assert "/1.0/certificates/" + other.fp in certs(d)
    status, _, body = m1.request("DELETE", "/1.0/certificates/" + other.fp)
    check(status, body)
    for d in (m2, m3):
        assert "/1.0/certificates/" + other.fp not in certs(d)


def test_offline_and_unacknowledged(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    client = Client(tmp_path, "prop-client2")
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "c", "certificate": client.b64})
    check(status, body, 201)
    deadline = time.monotonic() + 5
    while status_of(cluster, m1, "m3")[0] != "Online":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    m3.kill()
    killed = time.monotonic()
    for d in (m1, m2):
        while True:
            st, msg = status_of(cluster, d, "m3")
            if st == "Offline":
                assert msg.startswith("No heartbeat for ")
                break
            assert time.monotonic() - killed < 4.5, "m3 still Online"
            time.sleep(0.1)
    assert status_of(cluster, m1, "m2")[0] == "Online"

    start = time.monotonic()
    status, _, body = m1.request("DELETE", "/1.0/certificates/" + client.fp)
    took = time.monotonic() - start
    check(status, body)
    assert took < 2.5, took
    assert body["metadata"]["unacknowledged_members"] == ["m3"]
    st, _ = client.call(tls_port(cluster, 1), "GET", "/1.0/profiles")
    assert st == 403

    m3.start(ready_path=READY, timeout=30)
    st, _ = client.call(tls_port(cluster, 2), "GET", "/1.0/profiles")
    assert st == 403


def test_concurrent_writes_through_members(cluster):
    """Writes through different members at the same time all land: a write
    that finds the leader's database locked by another member's transaction
    is run again rather than failing."""
    import threading
    m1, m2, m3 = form3(cluster)
    errors = []

    def writer(d, prefix):
        for i in range(25):
            status, _, body = d.request("POST", "/1.0/profiles", body={
                "name": "%s-%d" % (prefix, i)})
            if status != 201:
                errors.append((prefix, i, status, body))

    threads = [threading.Thread(target=writer, args=(d, p))
               for d, p in ((m1, "a"), (m2, "b"), (m3, "c"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    status, _, body = m1.request("GET", "/1.0/profiles")
    check(status, body)
    assert len(body["metadata"]) == 1 + 75


def test_silent_member_not_waited_for(cluster):
    """A member that went silent (frozen, or its host gone: no RST, so
    every notification would wait corral.notify_timeout) is named as not
    having acknowledged at once once it is Offline: writes do not each take
    2 s while a host is down. It catches up from heartbeats when it is
    back."""
    import os
    import signal
    m1, m2, m3 = form3(cluster)
    status, _, body = m1.request("POST", "/1.0/profiles", body={"name": "p"})
    check(status, body, 201)
    # m1 has heard m3's heartbeats (a member never heard from, one that
    # joined a moment ago, is always waited for).
    deadline = time.monotonic() + 5
    while not [m for m in cluster.members_of(m1)
               if m["server_name"] == "m3" and m["schema"] > 0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(m3.pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        # Heard from a moment ago: still waited for, up to the timeout.
        status, _, body = m1.request("PUT", "/1.0/profiles/p", body={
            "description": "while m3 is frozen", "config": {},
            "devices": {}})
        check(status, body)
        assert body["metadata"]["unacknowledged_members"] == ["m3"], body
        # Silent past cluster.offline_threshold (3 s): not waited for.
        time.sleep(max(0.0, stopped + 3.5 - time.monotonic()))
        for i in range(3):
            t = time.monotonic()
            status, _, body = m1.request("PUT", "/1.0/profiles/p", body={
                "description": "write %d" % i, "config": {},
                "devices": {}})
            took = time.monotonic() - t
            check(status, body)
            assert took < 1.0, (took, body)
            assert body["metadata"]["unacknowledged_members"] == ["m3"], \
                body
    finally:
        os.kill(m3.pid, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while True:
        status, _, body = m3.request("GET", "/1.0/profiles/p")
        if status == 200 and body["metadata"]["description"] == "write 2":
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
