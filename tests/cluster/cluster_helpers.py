"""Helpers to form a corral cluster from real corrald processes.

Members talk to each other over TLS on 127.0.0.1 with ports the kernel
picks; the test talks to each member over its Unix socket (full admin).
"""

import time

READY = "/1.0/projects"


class ClusterError(AssertionError):
    pass


def check(status, body, want=200):
    if status != want:
        raise ClusterError("HTTP %s (want %s): %r" % (status, want, body))
    return body


def wait_op(d, body, timeout=30.0):
    """Wait for the operation of an async answer; return its final object."""
    op = body["operation"]
    status, _, out = d.request("GET", op + "/wait?timeout=%d" % int(timeout),
                               timeout=timeout + 5)
    check(status, out)
    return out["metadata"]


def listen(d):
    """Give @d a TLS listener on an ephemeral port; return "127.0.0.1:PORT"."""
    status, _, body = d.request("PATCH", "/1.0", body={
        "config": {"core.https_address": "127.0.0.1:0"}})
    check(status, body)
    env = d.request("GET", "/1.0")[2]["metadata"]["environment"]
    return env["addresses"][0]


class Cluster:
    def __init__(self, factory):
        self.factory = factory
        self.members = []  # Daemon objects, in join order
        self.names = []
        self.addresses = []

    def new_member(self):
        d = self.factory.start(ready_path=READY, debug=True)
        return d

    def enable(self, name="m1"):
        d = self.new_member()
        addr = listen(d)
        status, _, body = d.request("PUT", "/1.0/cluster", body={
            "server_name": name, "enabled": True})
        check(status, body, 202)
        op = wait_op(d, body)
        if op["status"] != "Success":
            raise ClusterError("enable failed: %r\n%s" % (op, d.diagnostics()))
        self.members.append(d)
        self.names.append(name)
        self.addresses.append(addr)
        return d

    def token(self, name, via=None):
        d = via or self.members[0]
        status, _, body = d.request("POST", "/1.0/cluster/members",
                                    body={"server_name": name})
        check(status, body, 202)
        return body["metadata"]["metadata"]

    def cluster_cert(self):
        env = self.members[0].request("GET", "/1.0")[2]["metadata"]["environment"]
        return env["certificate"]

    def join_request(self, d, name, token, addr, via_addr=None):
        status, _, body = d.request("PUT", "/1.0/cluster", body={
            "server_name": name,
            "server_address": addr,
            "cluster_address": via_addr or self.addresses[0],
            "cluster_certificate": self.cluster_cert(),
            "cluster_password": token["secret"],
            "enabled": True,
        })
        return status, body

    def join(self, name, via=0):
        token = self.token(name, via=self.members[via])
        d = self.new_member()
        addr = listen(d)
        status, body = self.join_request(d, name, token, addr,
                                         via_addr=self.addresses[via])
        check(status, body, 202)
        op = wait_op(d, body)
        if op["status"] != "Success":
            raise ClusterError("join failed: %r\n%s" % (op, d.diagnostics()))
        self.members.append(d)
        self.names.append(name)
        self.addresses.append(addr)
        return d

    def members_of(self, d):
        status, _, body = d.request("GET", "/1.0/cluster/members?recursion=1")
        check(status, body)
        return body["metadata"]

    def wait_members(self, d, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.members_of(d)
                if len(got) == n:
                    return got
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise ClusterError("want %d members, have %r" % (n, got))
            time.sleep(0.05)
