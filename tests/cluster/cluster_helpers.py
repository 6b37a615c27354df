"""Helpers to form a corral cluster from real corrald processes.

Members talk to each other over TLS on 127.0.0.1 with ports the kernel
picks (or, with NetnsLab, each in its own network namespace on a bridge);
the test talks to each member over its Unix socket (full admin).
"""

import json
import os
import subprocess
import sys
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


def listen(d, address="127.0.0.1:0"):
    """Give @d a TLS listener on @address (default: an ephemeral port on
    127.0.0.1); return the bound "HOST:PORT"."""
    status, _, body = d.request("PATCH", "/1.0", body={
        "config": {"core.https_address": address}})
    check(status, body)
    env = d.request("GET", "/1.0")[2]["metadata"]["environment"]
    return env["addresses"][0]


class Cluster:
    def __init__(self, factory):
        self.factory = factory
        self.members = []  # Daemon objects, in join order
        self.names = []
        self.addresses = []

    def new_member(self, **daemon_kw):
        d = self.factory.start(ready_path=READY, debug=True, **daemon_kw)
        return d

    def enable(self, name="m1", address="127.0.0.1:0", **daemon_kw):
        """Start a member listening on @address and enable clustering on it.
        @daemon_kw goes to Daemon (e.g. argv_prefix to run it in a netns)."""
        d = self.new_member(**daemon_kw)
        addr = listen(d, address)
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

    def join(self, name, via=0, address="127.0.0.1:0", **daemon_kw):
        token = self.token(name, via=self.members[via])
        d = self.new_member(**daemon_kw)
        addr = listen(d, address)
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


# --- members in network namespaces ------------------------------------------
#
# NetnsLab builds, for one test, a private network out of namespaces:
#
#   <tag>-hub   a bridge br0 (address .254) with one veth port vN per member
#   <tag>-mN    the member's namespace: lo, and eth0 (the peer of vN) with
#               address .N/24
#
# Nothing is created in the root namespace: deleting the namespaces removes
# the bridge and every veth. The test reaches a member's Unix socket as
# usual (a path) and its TLS address through a NetnsAgent, a small Python
# process started with `ip netns exec` in the hub (the outside view) or in
# a member's namespace (which still reaches its own member while its link
# is down: the local route stays).

HERE = os.path.dirname(os.path.abspath(__file__))


def run_ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=10)
    if check and p.returncode != 0:
        raise ClusterError("ip %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                 p.stderr.strip()))
    return p


def netns_list():
    """Names of the named network namespaces (`ip netns list`)."""
    out = run_ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class NetnsLab:
    count = 0

    def __init__(self, n, tag=None):
        pid = os.getpid()
        NetnsLab.count += 1
        self.n = n
        # Unique per lab: pid and a counter (several tests in one pytest).
        self.tag = tag or "crp%d-%d" % (pid, NetnsLab.count)
        # Private /24 from 10.213.0.0/16; it only exists inside the
        # namespaces, so it cannot collide with the host's routes.
        self.subnet = "10.213.%d" % (pid % 250)
        self.hub = self.tag + "-hub"
        self.created = []  # namespaces, in creation order
        self.agents = []

    def ns(self, i):
        """Namespace name of member i (1-based)."""
        return "%s-m%d" % (self.tag, i)

    def addr(self, i):
        return "%s.%d" % (self.subnet, i)

    def hub_addr(self):
        return "%s.254" % self.subnet

    def exec_prefix(self, i):
        """argv prefix running a program in member i's namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    def _add_ns(self, name):
        run_ip("netns", "add", name)
        self.created.append(name)
        run_ip("-n", name, "link", "set", "lo", "up")

    def setup(self):
        self._add_ns(self.hub)
        run_ip("-n", self.hub, "link", "add", "br0", "type", "bridge",
               "forward_delay", "0", "stp_state", "0")
        run_ip("-n", self.hub, "addr", "add", self.hub_addr() + "/24", "dev", "br0")
        run_ip("-n", self.hub, "link", "set", "br0", "up")
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            self._add_ns(ns)
            veth = "v%d" % i
            run_ip("-n", self.hub, "link", "add", veth, "type", "veth",
                   "peer", "name", "eth0", "netns", ns)
            run_ip("-n", self.hub, "link", "set", veth, "master", "br0", "up")
            run_ip("-n", ns, "addr", "add", self.addr(i) + "/24", "dev", "eth0")
            run_ip("-n", ns, "link", "set", "eth0", "up")
        return self

    def link(self, i, up):
        """Set member i's link (eth0 in its namespace) up or down."""
        run_ip("-n", self.ns(i), "link", "set", "eth0", "up" if up else "down")

    def agent(self, factory, i=None):
        """A NetnsAgent in member i's namespace, or in the hub (i None)."""
        a = NetnsAgent(factory, self.hub if i is None else self.ns(i))
        self.agents.append(a)
        return a

    def teardown(self):
        """Delete every namespace created (the bridge and veths go with
        them); return the names still listed afterwards. Kill the
        processes living in them first."""
        for a in self.agents:
            a.close()
        for name in reversed(self.created):
            run_ip("netns", "del", name, check=False)
        left = set(netns_list())
        return [name for name in self.created if name in left]


class NetnsAgent:
    """A TLS client process living in a network namespace.

    `call()` sends it one request (client certificate + key files, host,
    port) and returns (status, parsed JSON body) or (None, "ErrorType:
    message") when no HTTP answer came. `conn=NAME` keeps that connection
    open across calls (never silently reopened: once the server closed it,
    every later call on NAME answers (None, "gone"))."""

    def __init__(self, factory, ns):
        self.ns = ns
        argv = ["ip", "netns", "exec", ns, sys.executable, "-u", "-c",
                "import sys; sys.path.insert(0, %r); "
                "import cluster_helpers; cluster_helpers.tls_agent_main()" % HERE]
        self.proc = factory.track_process(subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def call(self, client, host, port, method, path, body=None, conn=None,
             timeout=3.0):
        req = {"crt": client.crt_path, "key": client.key_path, "host": host,
               "port": int(port), "method": method, "path": path,
               "body": body, "conn": conn, "timeout": timeout}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise ClusterError("agent in %s died: %s" % (self.ns, self.proc.stderr.read()))
        out = json.loads(line)
        if out["error"] is not None:
            return None, out["error"]
        return out["status"], out["body"]


def _agent_request(req, conns):
    import http.client
    import ssl

    name = req.get("conn")
    if name is not None and name in conns and conns[name] is None:
        return {"status": None, "body": None, "error": "gone"}
    conn = conns.get(name) if name is not None else None
    try:
        if conn is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(req["crt"], req["key"])
            conn = http.client.HTTPSConnection(req["host"], req["port"],
                                               context=ctx, timeout=req["timeout"])
            if name is not None:
                conn.connect()
                conn.auto_open = 0
                conns[name] = conn
        body = req.get("body")
        conn.request(req["method"], req["path"],
                     body=json.dumps(body) if body is not None else None)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("latin-1")
        return {"status": resp.status, "body": parsed, "error": None}
    except Exception as e:  # any failure is the answer
        if name is not None:
            conns[name] = None
        if conn is not None:
            conn.close()
        conn = None
        return {"status": None, "body": None,
                "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        if name is None and conn is not None:
            conn.close()


def tls_agent_main():
    """NetnsAgent's process: one JSON request per stdin line, one JSON
    answer per stdout line."""
    conns = {}
    for line in sys.stdin:
        out = _agent_request(json.loads(line), conns)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
