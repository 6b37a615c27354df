"""Fixtures for the integration suite.

`daemon_factory` hands out real corrald processes (each in its own temp
dir) and always kills them and removes their dirs at teardown, failing the
test if any process survives. `daemon` is one started daemon with --debug
and a log file. Other suites reuse the factory:

    d = daemon_factory.start(debug=True)                 # waits for GET /1.0
    d = daemon_factory.start(ready_path="/1.0/projects") # waits for the database
    d = daemon_factory.new(group="adm"); d.spawn()       # no readiness wait
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import DaemonFactory  # noqa: E402


@pytest.fixture
def daemon_factory():
    factory = DaemonFactory()
    try:
        yield factory
    finally:
        leftovers = factory.cleanup()
        assert not leftovers, "processes survived teardown: %s" % leftovers


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory.start(debug=True)
