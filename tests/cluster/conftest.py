"""Fixtures for the cluster suite: real corrald members on 127.0.0.1.

Reuses tests/integration/helpers.py (Daemon, DaemonFactory). `cluster`
gives a helper that starts members, enables clustering on the first one
and joins others with join tokens; every process is killed and every
temp dir removed at teardown, and a surviving process fails the test.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from helpers import DaemonFactory  # noqa: E402

from cluster_helpers import Cluster  # noqa: E402


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
