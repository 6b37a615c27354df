"""Role rebalancing: when a voter stays Offline past
cluster.offline_threshold, the leader promotes an Online stand-by (or
spare) so the cluster keeps cluster.max_voters voters."""

import time

from cluster_helpers import check


def online_voters(cluster, d):
    return sorted(m["server_name"] for m in cluster.members_of(d)
                  if m["status"] == "Online" and "database" in m["roles"])


def leader_name(cluster, d):
    for m in cluster.members_of(d):
        if "database-leader" in m["roles"]:
            return m["server_name"]
    return None


def test_offline_voter_replaced(cluster):
    cluster.enable("m1")
    for name in ("m2", "m3", "m4", "m5"):
        cluster.join(name)
    m1 = cluster.members[0]
    # Default config: 3 voters, 2 stand-bys, all Online.
    deadline = time.monotonic() + 10
    while len(online_voters(cluster, m1)) != 3 or any(
            m["status"] != "Online" for m in cluster.members_of(m1)):
        assert time.monotonic() < deadline, cluster.members_of(m1)
        time.sleep(0.1)
    roles = {m["server_name"]: m["roles"] for m in cluster.members_of(m1)}
    assert sorted(r for m in roles.values() for r in m
                  if r == "database-standby") == ["database-standby"] * 2

    leader = leader_name(cluster, m1)
    victim = next(n for n in online_voters(cluster, m1) if n != leader)
    i = cluster.names.index(victim)
    cluster.members[i].kill()
    killed = time.monotonic()
    survivor = cluster.members[cluster.names.index(leader)]
    while True:
        voters = online_voters(cluster, survivor)
        if len(voters) == 3 and victim not in voters:
            break
        assert time.monotonic() - killed < 12, cluster.members_of(survivor)
        time.sleep(0.2)
    took = time.monotonic() - killed
    print("replaced %s in %.1fs: %r" % (victim, took, voters))

    # Writes still work, through a member that was promoted too.
    for d in (survivor, cluster.members[cluster.names.index(voters[-1])]):
        status, _, body = d.request("POST", "/1.0/profiles", body={
            "name": "after-%d" % id(d)})
        check(status, body, 201)
    # The Offline voter stepped down: 3 voters in all.
    deadline = time.monotonic() + 10
    while True:
        got = {m["server_name"]: m for m in cluster.members_of(survivor)}
        if got[victim]["roles"] == [] and got[victim]["status"] == "Offline":
            break
        assert time.monotonic() < deadline, got[victim]
        time.sleep(0.2)
