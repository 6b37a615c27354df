"""Events across members: operation and lifecycle events made on one
member reach `GET /1.0/events` listeners on every member, with the
originating member's name as "location" (as in LXD), in order; the
member-only `POST /internal/events` takes nothing else."""

import importlib.util
import json
import os
import time

from cluster_helpers import check
from test_formation import form3
from test_join_ready import make_cert, server_cert, tls_post
from test_tls_trust import Client

# The websocket client of tests/integration/test_operations.py (a module
# of the same name lives here).
_spec = importlib.util.spec_from_file_location(
    "integration_operations",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                 "integration", "test_operations.py"))
_ws = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ws)
OP_TEXT, open_events = _ws.OP_TEXT, _ws.open_events


def next_event(ws, want, timeout=5.0):
    """The next text frame whose event @want (a predicate) accepts."""
    ws.c.sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "no matching event"
        op, payload = ws.recv()
        if op != OP_TEXT:
            continue
        ev = json.loads(payload)
        if want(ev):
            return ev


def test_events_relayed_to_every_member(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    streams = {d: open_events(d) for d in (m2, m3)}
    try:
        # An operation made on m1: its events reach m2 and m3, in order.
        status, _, body = m1.request("POST", "/1.0/certificates", body={
            "name": "c1", "type": "client", "token": True})
        check(status, body, 202)
        op_id = body["metadata"]["id"]
        status, _, body = m1.request("DELETE", "/1.0/operations/" + op_id)
        check(status, body)
        for d, (c, ws) in streams.items():
            ev = next_event(ws, lambda e: e["type"] == "operation" and
                            e["metadata"]["id"] == op_id)
            assert ev["location"] == "m1", ev
            assert ev["metadata"]["location"] == "m1", ev
            assert ev["metadata"]["status"] == "Running", ev
            ev = next_event(ws, lambda e: e["type"] == "operation" and
                            e["metadata"]["id"] == op_id)
            assert ev["metadata"]["status"] == "Cancelled", ev

        # A lifecycle event on m1 (an untrusted client refused there).
        stranger = Client(tmp_path, "stranger")
        port1 = int(cluster.addresses[0].rsplit(":", 1)[1])
        st, _ = stranger.call(port1, "GET", "/1.0/profiles")
        assert st == 403
        for d, (c, ws) in streams.items():
            ev = next_event(ws, lambda e: e["type"] == "lifecycle" and
                            e["metadata"]["action"] ==
                            "authorization-denied")
            assert ev["location"] == "m1", ev
    finally:
        for c, _ in streams.values():
            c.close()


def test_internal_events_refusals(cluster, tmp_path):
    m1, m2, m3 = form3(cluster)
    addr1 = cluster.addresses[0]
    path = "/internal/events"
    ev = {"type": "lifecycle", "timestamp": "2026-01-01T00:00:00Z",
          "metadata": {"action": "x"}, "location": "m2", "project": ""}
    intruder = make_cert(tmp_path, "intruder")
    assert tls_post(addr1, path, body={"events": [ev]})[0] == 403
    assert tls_post(addr1, path, intruder, body={"events": [ev]})[0] == 403
    member = server_cert(m2)
    c, ws = open_events(m1)
    try:
        for bad in ({}, {"events": {}}, {"events": [ev], "x": 1},
                    {"events": [ev] * 257},
                    {"events": [dict(ev, type="logging")]},
                    {"events": [dict(ev, location="m1")]},  # itself
                    {"events": [dict(ev, location="a/b")]},
                    {"events": [dict(ev, metadata=[])]},
                    {"events": [dict(ev, project=None)]},
                    {"events": [dict(ev, timestamp="x" * 80)]},
                    {"events": [dict(ev, extra=1)]},
                    {"events": [ev, 1]}):
            status, out = tls_post(addr1, path, member, body=bad)
            assert status == 400, (bad, status, out)
        for raw in (b"", b"[1]", b"{\"events\":"):
            status, out = tls_post(addr1, path, member, raw=raw)
            assert status == 400, (raw, status, out)
        # None of that reached the listener; a good one does.
        status, out = tls_post(addr1, path, member, body={"events": [ev]})
        assert status == 200, out
        got = next_event(ws, lambda e: e["type"] == "lifecycle")
        assert got == ev, got
    finally:
        c.close()
