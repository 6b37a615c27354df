"""Fixtures for the cluster suite: real corrald members on 127.0.0.1.

Reuses tests/integration/helpers.py (Daemon, DaemonFactory). `cluster`
gives a helper that starts members, enables clustering on the first one
and joins others with join tokens; every process is killed and every
temp dir removed at teardown, and a surviving process fails the test.
`netns_lab` gives a NetnsLab of 3 member namespaces on a bridge (skipped
where `ip netns` cannot be used), removed at teardown after every process
was killed.
"""

import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from helpers import DaemonFactory  # noqa: E402

from cluster_helpers import Cluster, NetnsLab, netns_list, run_ip  # noqa: E402


@pytest.fixture
def daemon_factory():
    factory = DaemonFactory()
    try:
        yield factory
    finally:
        leftovers = factory.cleanup()
        assert not leftovers, "processes survived teardown: %s" % leftovers


@pytest.fixture
def cluster(daemon_factory):
    return Cluster(daemon_factory)


def netns_unavailable():
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip(8) (iproute2)"
    probe = "crp%d-probe" % os.getpid()
    p = run_ip("netns", "add", probe, check=False)
    if p.returncode != 0:
        return "ip netns add failed: %s" % p.stderr.strip()
    run_ip("netns", "del", probe, check=False)
    return None


@pytest.fixture
def netns_lab(daemon_factory):
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    lab = NetnsLab(3)
    stale = [ns for ns in netns_list() if ns.startswith(lab.tag + "-")]
    assert not stale, "namespaces of this pid already exist: %s" % stale
    try:
        yield lab.setup()
    finally:
        # The processes first (daemons and agents live in the namespaces);
        # daemon_factory's own teardown still reports survivors.
        daemon_factory.cleanup()
        left = lab.teardown()
        assert not left, "namespaces survived teardown: %s" % left
