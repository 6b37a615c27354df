"""Debian's real `lxc` 5.0.2 client against a 3-member corral cluster:
`lxc remote add` with the cluster's trust password, `lxc cluster list`
shows the three members ONLINE with a database-leader, and
`lxc cluster show` reads one member."""

import shutil

import pytest
import yaml

from test_formation import form3
from test_lxc_compat import Lxc
from cluster_helpers import check

LXC = shutil.which("lxc")
PASSWORD = "corral-cluster-pw"

pytestmark = pytest.mark.skipif(LXC is None, reason="lxc (lxd-client) not installed")


def parse_table(out):
    """Parse lxc's ASCII table; multi-line cells are joined with "\\n"."""
    lines = [l for l in out.splitlines() if l.strip()]
    rows, block = [], []
    for line in lines:
        if line.startswith("+"):
            if block:
                rows.append(block)
            block = []
            continue
        assert line.startswith("|") and line.endswith("|"), out
        block.append([c.strip() for c in line[1:-1].split("|")])
    if block:
        rows.append(block)
    table = []
    for blk in rows:
        cells = ["\n".join(filter(None, col)) for col in zip(*blk)]
        table.append(cells)
    header, body = table[0], table[1:]
    return [dict(zip(header, r)) for r in body]


@pytest.fixture
def lxc():
    c = Lxc()
    try:
        yield c
    finally:
        c.cleanup()


def test_lxc_cluster_list(cluster, lxc):
    m1, m2, m3 = form3(cluster)
    status, _, body = m1.request("PATCH", "/1.0", body={
        "config": {"core.trust_password": PASSWORD}})
    check(status, body)
    out = lxc.ok("remote", "add", "c", "https://" + cluster.addresses[0],
                 "--accept-certificate", "--password", PASSWORD)
    assert "Client certificate now trusted by server: c" in out, out

    out = lxc.ok("cluster", "list", "c:")
    print(out)
    rows = parse_table(out)
    assert sorted(r["NAME"] for r in rows) == ["m1", "m2", "m3"], out
    by_name = {r["NAME"]: r for r in rows}
    for i, name in enumerate(("m1", "m2", "m3")):
        assert by_name[name]["URL"] == "https://" + cluster.addresses[i], out
        assert by_name[name]["STATE"] == "ONLINE", out
        assert "database" in by_name[name]["ROLES"].split("\n"), out
    leaders = [r["NAME"] for r in rows
               if "database-leader" in r["ROLES"].split("\n")]
    assert len(leaders) == 1, out

    out = lxc.ok("cluster", "show", "c:m2")
    doc = yaml.safe_load(out)
    assert doc["server_name"] == "m2", out
    assert doc["url"] == "https://" + cluster.addresses[1], out
    assert doc["status"] == "Online", out
    assert "database" in doc["roles"], out
