"""corral.raft_latency_ms: recorded where the dqlite node reads it at start
(DIR/database/info), since the node needs it before the database is up."""

import os


def read_info(d):
    with open(os.path.join(d.state_dir, "database", "info")) as f:
        return dict(line.split(": ", 1) for line in f.read().splitlines())


def test_latency_recorded_and_used_at_next_start(daemon_factory):
    d = daemon_factory.start(ready_path="/1.0/projects")
    assert read_info(d)["latency_ms"] == "20"
    status, _, body = d.request("PATCH", "/1.0", body={
        "config": {"corral.raft_latency_ms": "50"}})
    assert status == 200, body
    assert read_info(d)["latency_ms"] == "50"
    d.stop()
    d.start("/1.0/projects")
    assert read_info(d)["latency_ms"] == "50"
    # Unsetting the key goes back to the default.
    status, _, body = d.request("PATCH", "/1.0", body={
        "config": {"corral.raft_latency_ms": ""}})
    assert status == 200, body
    assert read_info(d)["latency_ms"] == "20"


def test_bad_latency_refused_and_nothing_recorded(daemon_factory):
    d = daemon_factory.start(ready_path="/1.0/projects")
    status, _, body = d.request("PATCH", "/1.0", body={
        "config": {"corral.raft_latency_ms": "0"}})
    assert status == 400, body
    assert "corral.raft_latency_ms" in body["error"]
    assert read_info(d)["latency_ms"] == "20"
