"""Server config propagation: a cluster-wide change through one member is
in every member's config view when the PATCH returns; member-local keys
stay on the member that set them."""

from cluster_helpers import check
from test_formation import form3


def config_of(d):
    status, _, body = d.request("GET", "/1.0")
    check(status, body)
    return body["metadata"]["config"]


def test_config_propagates(cluster):
    m1, m2, m3 = form3(cluster)
    addr1 = cluster.addresses[0]
    status, _, body = m1.request("PATCH", "/1.0", body={"config": {
        "corral.notify_timeout": "1500",
        # Member-local: m1's own listener, on the port it already has.
        "core.https_address": addr1,
    }})
    check(status, body)
    assert body["metadata"]["unacknowledged_members"] is None
    # In force on the other members as soon as the PATCH returned.
    for d in (m1, m2, m3):
        assert config_of(d)["corral.notify_timeout"] == "1500"
    assert config_of(m1)["core.https_address"] == addr1
    for i, d in ((1, m2), (2, m3)):
        assert config_of(d)["core.https_address"] in (
            "127.0.0.1:0", cluster.addresses[i])
        assert config_of(d)["core.https_address"] != addr1

    # Through another member, a secret and a threshold.
    status, _, body = m2.request("PATCH", "/1.0", body={"config": {
        "cluster.offline_threshold": "7",
        "core.trust_password": "s3cret",
    }})
    check(status, body)
    assert body["metadata"]["unacknowledged_members"] is None
    for d in (m1, m2, m3):
        c = config_of(d)
        assert c["cluster.offline_threshold"] == "7"
        assert c["core.trust_password"] == "true"
        assert c["corral.notify_timeout"] == "1500"

    # Unsetting a key propagates too; the cluster still works.
    status, _, body = m3.request("PATCH", "/1.0", body={"config": {
        "cluster.offline_threshold": ""}})
    check(status, body)
    for d in (m1, m2, m3):
        assert "cluster.offline_threshold" not in config_of(d)
    assert len(cluster.members_of(m2)) == 3
    status, _, body = m3.request("POST", "/1.0/profiles", body={"name": "p"})
    check(status, body, 201)
