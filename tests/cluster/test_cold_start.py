"""A whole cluster stopped and started again (a power cut, a maintenance
window): every member's database waits for the others, and comes up once a
quorum runs. Raft streams reach a starting member through its cluster
listener before its own database is up."""

import time

from cluster_helpers import READY, check
from test_formation import form3


def test_cold_start_all_members(cluster):
    m1, m2, m3 = form3(cluster)
    status, _, body = m2.request("POST", "/1.0/profiles", body={
        "name": "kept", "description": "before the cut"})
    check(status, body, 201)
    for d in (m1, m2, m3):
        d.kill()

    # One member alone has no quorum: it waits (not ready), and does not
    # exit.
    m3.spawn()
    time.sleep(1.5)
    assert m3.running()
    status, _, body = m3.request("GET", READY)
    assert status == 503, body
    assert "setup in progress" in body["error"], body
    # It says what it waits for, naming the members it cannot reach.
    err = body["error"]
    assert "1 of 3 voters reachable, a majority (2) is needed" in err, err
    assert cluster.addresses[0] in err and cluster.addresses[1] in err, err
    # GET /1.0 answers meanwhile.
    status, _, body = m3.request("GET", "/1.0")
    check(status, body)

    # A second member makes a quorum: both come up, with the data.
    m1.spawn()
    t0 = time.monotonic()
    m3.wait_ready(READY, 15)
    m1.wait_ready(READY, 15)
    print("ready %.2f s after the second member started"
          % (time.monotonic() - t0))
    for d in (m1, m3):
        status, _, body = d.request("GET", "/1.0/profiles/kept")
        check(status, body)
        assert body["metadata"]["description"] == "before the cut"
    status, _, body = m3.request("POST", "/1.0/profiles", body={
        "name": "after"})
    check(status, body, 201)

    # The third rejoins, and all three are Online with one leader.
    m2.start(ready_path=READY, timeout=15)
    status, _, body = m2.request("GET", "/1.0/profiles/after")
    check(status, body)
    members = cluster.wait_members(m1, 3)
    assert len([m for m in members
                if "database-leader" in m["roles"]]) == 1
    for d, name in ((m1, "m1"), (m2, "m2"), (m3, "m3")):
        env = d.request("GET", "/1.0")[2]["metadata"]["environment"]
        assert env["server_name"] == name


def test_quorum_lost_says_who_is_missing(cluster):
    """Two of three members die: a write through the survivor answers 503
    within seconds (never hangs), naming the voters it cannot reach."""
    m1, m2, m3 = form3(cluster)
    m2.kill()
    m3.kill()
    for name in ("lost-1", "lost-2", "lost-3"):
        t = time.monotonic()
        status, _, body = m1.request("POST", "/1.0/profiles",
                                     body={"name": name}, timeout=30)
        took = time.monotonic() - t
        assert status == 503, body
        assert took < 10, took
    err = body["error"]
    assert "1 of 3 voters reachable, a majority (2) is needed" in err, err
    assert cluster.addresses[1] in err and cluster.addresses[2] in err, err
    # A member coming back restores writes.
    m2.start(ready_path=READY, timeout=30)
    deadline = time.monotonic() + 15
    while True:
        status, _, body = m1.request("POST", "/1.0/profiles",
                                     body={"name": "back"}, timeout=30)
        if status == 201:
            break
        assert status == 503 and time.monotonic() < deadline, body
        time.sleep(0.1)
