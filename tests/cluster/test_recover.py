"""Recovery after quorum loss: `corrald --state-dir DIR --recover` with
corrald stopped makes this member the only voter; started alone, it serves
every piece of data as a one-voter cluster and takes writes."""

import subprocess

from cluster_helpers import READY, check
from test_formation import form3


def recover(d):
    return subprocess.run([d.binary, "--state-dir", d.state_dir, "--recover"],
                          capture_output=True, text=True, timeout=30)


def test_recover_from_quorum_loss(cluster):
    m1, m2, m3 = form3(cluster)
    status, _, body = m2.request("POST", "/1.0/profiles", body={
        "name": "kept", "description": "before the loss"})
    check(status, body, 201)

    # Refused while corrald runs (the state dir is locked).
    out = recover(m1)
    assert out.returncode != 0, out

    m3.stop()
    m2.kill()
    m1.kill()
    out = recover(m1)
    assert out.returncode == 0, out
    assert "only database voter" in out.stdout, out.stdout
    print(out.stdout)

    m1.start(ready_path=READY, timeout=30)
    status, _, body = m1.request("GET", "/1.0/profiles/kept")
    check(status, body)
    assert body["metadata"]["description"] == "before the loss"
    status, _, body = m1.request("POST", "/1.0/profiles", body={
        "name": "after"})
    check(status, body, 201)
    members = {m["server_name"]: m for m in cluster.members_of(m1)}
    assert members["m1"]["roles"] == ["database-leader", "database"]
    assert members["m1"]["status"] == "Online"
    assert members["m2"]["roles"] == [] and members["m3"]["roles"] == []
    # The lost members can be removed (they are out of raft already).
    for name in ("m2", "m3"):
        status, _, body = m1.request(
            "DELETE", "/1.0/cluster/members/%s?force=1" % name)
        check(status, body)
    assert [m["server_name"] for m in cluster.members_of(m1)] == ["m1"]


def test_recover_refused_standalone(daemon_factory):
    d = daemon_factory.start()
    d.stop()
    out = recover(d)
    assert out.returncode == 1, out
    assert "not a cluster member" in out.stderr, out.stderr
