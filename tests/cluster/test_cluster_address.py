"""cluster.https_address apart from core.https_address: members serve clients
on their core address and each other on their cluster address (a second TLS
listener with the same certificate and API), the cluster address is the raft
address and the member url, it cannot be changed once clustered, moving the
core address does not cut the member channel, and enable refuses a wildcard
or an unbindable cluster address without changing anything.

Every loopback address 127.x.y.z is local on Linux: the core listeners use
127.0.0.1, the cluster listeners 127.0.2.N."""

import hashlib
import http.client
import json
import os
import socket
import ssl
import time

from cluster_helpers import READY, check, listen, wait_op
from test_tls_trust import Client


def free_port(host):
    """A port free on @host now (the kernel's pick, released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def occupy(host, port=0):
    """A listening socket holding @host:@port; the caller closes it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(1)
    return s


def tls_call(client, address, method, path, body=None):
    """One request to @address ("host:port") over TLS, presenting @client's
    certificate when not None: (status, JSON body, fingerprint of the
    certificate the server presented)."""
    host, port = address.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if client is not None:
        ctx.load_cert_chain(client.crt_path, client.key_path)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=5)
    try:
        conn.connect()
        fp = hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
        conn.request(method, path,
                     body=json.dumps(body) if body is not None else None)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None, fp
    finally:
        conn.close()


def config_of(d):
    status, _, body = d.request("GET", "/1.0")
    check(status, body)
    return body["metadata"]["config"], body["metadata"]["environment"]


def patch(d, config):
    status, _, body = d.request("PATCH", "/1.0", body={"config": config})
    return status, body


def enable_apart(cluster, name, cluster_host):
    """Start a member with core.https_address on 127.0.0.1:0 and
    cluster.https_address on @cluster_host:0, and enable clustering."""
    d = cluster.new_member()
    core = listen(d, "127.0.0.1:0")
    check(*patch(d, {"cluster.https_address": cluster_host + ":0"}))
    status, _, body = d.request("PUT", "/1.0/cluster", body={
        "server_name": name, "enabled": True})
    check(status, body, 202)
    op = wait_op(d, body)
    assert op["status"] == "Success", (op, d.diagnostics())
    config, env = config_of(d)
    addr = config["cluster.https_address"]
    assert addr.startswith(cluster_host + ":") and not addr.endswith(":0"), config
    # The core listener is where it was; its port 0 was made real.
    assert config["core.https_address"] == core, config
    assert env["addresses"] == [core], env
    cluster.members.append(d)
    cluster.names.append(name)
    cluster.addresses.append(addr)
    return d, core


def join_apart(cluster, name, cluster_host, via=0):
    """Start a daemon with core.https_address on 127.0.0.1:0 and join it
    with server_address on @cluster_host (a free port)."""
    token = cluster.token(name, via=cluster.members[via])
    assert token["addresses"] == [cluster.addresses[via]], token
    d = cluster.new_member()
    core = listen(d, "127.0.0.1:0")
    addr = "%s:%d" % (cluster_host, free_port(cluster_host))
    status, body = cluster.join_request(d, name, token, addr,
                                        via_addr=cluster.addresses[via])
    check(status, body, 202)
    op = wait_op(d, body)
    assert op["status"] == "Success", (op, d.diagnostics())
    config, env = config_of(d)
    assert config["cluster.https_address"] == addr, config
    assert config["core.https_address"] == core, config
    assert env["addresses"] == [core], env
    cluster.members.append(d)
    cluster.names.append(name)
    cluster.addresses.append(addr)
    return d, core


def wait_online(cluster, d, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        members = cluster.members_of(d)
        if len(members) == n and all(m["status"] == "Online"
                                     for m in members):
            return members
        assert time.monotonic() < deadline, members
        time.sleep(0.1)


def urls(cluster, d):
    return {m["server_name"]: m["url"] for m in cluster.members_of(d)}


def test_members_on_separate_cluster_addresses(cluster, tmp_path):
    m1, core1 = enable_apart(cluster, "m1", "127.0.2.1")
    m2, core2 = join_apart(cluster, "m2", "127.0.2.2")
    m3, core3 = join_apart(cluster, "m3", "127.0.2.3", via=1)
    cores = [core1, core2, core3]
    want = {n: "https://" + a for n, a in zip(cluster.names, cluster.addresses)}
    for d in cluster.members:
        assert urls(cluster, d) == want
        members = wait_online(cluster, d, 3)
        assert all("database" in m["roles"] or "database-leader" in m["roles"]
                   for m in members), members

    # Propagation over the cluster addresses: acknowledged by everyone.
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "web"})
    check(status, body, 201)
    status, _, body = m2.request("PUT", "/1.0/profiles/web", body={
        "config": {"limits.cpu": "2"}, "description": "", "devices": {}})
    check(status, body)
    assert body["metadata"]["unacknowledged_members"] is None, body
    for d in (m1, m3):
        status, _, body = d.request("GET", "/1.0/profiles/web")
        check(status, body)
        assert body["metadata"]["config"] == {"limits.cpu": "2"}

    # Clients: both listeners of every member serve the API with the
    # cluster certificate; an untrusted client is untrusted on both.
    client = Client(tmp_path, "apart-client")
    status, _, body = m1.request("POST", "/1.0/certificates", body={
        "type": "client", "name": "c", "certificate": client.b64})
    check(status, body, 201)
    assert body["metadata"]["unacknowledged_members"] is None, body
    stranger = Client(tmp_path, "apart-stranger")
    fp = config_of(m1)[1]["certificate_fingerprint"]
    for i, d in enumerate(cluster.members):
        for addr in (cores[i], cluster.addresses[i]):
            st, body, served = tls_call(client, addr, "GET", "/1.0/profiles")
            assert st == 200, (addr, body)
            assert "/1.0/profiles/web" in body["metadata"]
            assert served == fp, addr
            st, body, _ = tls_call(stranger, addr, "GET", "/1.0")
            assert st == 200 and body["metadata"]["auth"] == "untrusted"
            st, body, _ = tls_call(stranger, addr, "GET", "/1.0/profiles")
            assert st == 403, (addr, body)

    # The cluster address is the raft address: it cannot change.
    for req in ({"cluster.https_address": "127.0.2.9:0"},
                {"cluster.https_address": ""}):
        status, body = patch(m2, req)
        assert status == 400, body
        assert "Changing cluster.https_address is currently not supported" \
            in body["error"]
    config, _ = config_of(m2)
    status, _, body = m2.request("PUT", "/1.0", body={"config": {
        k: v for k, v in config.items()
        if k not in ("cluster.https_address", "core.trust_password")}})
    assert status == 400, body
    assert config_of(m2)[0] == config
    # Unchanged is fine (a PUT of what GET showed).
    status, _, body = m2.request("PUT", "/1.0", body={"config": config})
    check(status, body)

    # Moving m2's core listener leaves its cluster listener alone.
    status, body = patch(m2, {"core.https_address": "127.0.0.1:0"})
    check(status, body)
    new_core2 = config_of(m2)[1]["addresses"][0]
    assert new_core2 != core2
    st, _, _ = tls_call(client, new_core2, "GET", "/1.0/profiles")
    assert st == 200
    try:
        tls_call(client, core2, "GET", "/1.0/profiles")
        raise AssertionError("the old core address still answers")
    except OSError:
        pass
    status, _, body = m1.request("PUT", "/1.0/profiles/web", body={
        "config": {"limits.cpu": "3"}, "description": "", "devices": {}})
    check(status, body)
    assert body["metadata"]["unacknowledged_members"] is None, body
    status, _, body = m2.request("GET", "/1.0/profiles/web")
    check(status, body)
    assert body["metadata"]["config"] == {"limits.cpu": "3"}
    assert urls(cluster, m1)["m2"] == want["m2"]
    wait_online(cluster, m1, 3)

    # Restart: m3 binds both listeners from its member config again and
    # has the data.
    m3.stop()
    status, _, body = m1.request("POST", "/1.0/profiles", body={"name": "during"})
    check(status, body, 201)
    m3.start(ready_path=READY, timeout=30)
    config, env = config_of(m3)
    assert config["cluster.https_address"] == cluster.addresses[2]
    assert env["addresses"] == [core3]
    for name in ("web", "during"):
        status, _, body = m3.request("GET", "/1.0/profiles/" + name)
        check(status, body)
    for d in cluster.members:
        wait_online(cluster, d, 3)
    status, _, body = m3.request("POST", "/1.0/profiles", body={"name": "after"})
    check(status, body, 201)
    assert body["metadata"]["unacknowledged_members"] is None, body
    for addr in (core3, cluster.addresses[2]):
        st, body, _ = tls_call(client, addr, "GET", "/1.0/profiles")
        assert st == 200 and "/1.0/profiles/after" in body["metadata"], addr


def test_shared_address_core_moves_away(cluster):
    """A member whose cluster address is its core address (the default):
    moving core.https_address keeps a listener on the cluster address."""
    m1 = cluster.enable("m1")
    m2 = cluster.join("m2")
    addr2 = cluster.addresses[1]
    config, _ = config_of(m2)
    assert config["cluster.https_address"] == addr2
    assert config["core.https_address"] == addr2
    status, body = patch(m2, {"core.https_address": "127.0.0.1:0"})
    check(status, body)
    config, env = config_of(m2)
    assert config["cluster.https_address"] == addr2
    assert env["addresses"] != [addr2]
    # The member channel still reaches m2 at its cluster address.
    st, body, _ = tls_call(None, addr2, "GET", "/1.0")
    assert st == 200, body
    status, _, body = m1.request("POST", "/1.0/profiles", body={"name": "p"})
    check(status, body, 201)
    assert body["metadata"]["unacknowledged_members"] is None, body
    check(*m2.request("GET", "/1.0/profiles/p")[0::2])
    wait_online(cluster, m1, 2)
    # And back onto the cluster address: one listener again.
    status, body = patch(m2, {"core.https_address": addr2})
    check(status, body)
    assert config_of(m2)[1]["addresses"] == [addr2]
    status, _, body = m1.request("POST", "/1.0/profiles", body={"name": "q"})
    check(status, body, 201)
    assert body["metadata"]["unacknowledged_members"] is None, body


def test_enable_refuses_wildcard_and_unbindable(cluster, tmp_path):
    d = cluster.new_member()
    core = listen(d, "127.0.0.1:0")

    def standalone():
        status, _, body = d.request("GET", "/1.0/cluster")
        check(status, body)
        assert body["metadata"]["enabled"] is False
        assert config_of(d)[1]["server_clustered"] is False
        assert not os.path.exists(d.path("cluster.crt"))

    # A standalone daemon may listen on a wildcard cluster.https_address,
    # but it cannot become a member's raft address.
    check(*patch(d, {"cluster.https_address": "0.0.0.0:0"}))
    status, _, body = d.request("PUT", "/1.0/cluster", body={
        "server_name": "m1", "enabled": True})
    assert status == 400, body
    assert "wildcard" in body["error"], body
    standalone()

    # An address that cannot be bound is refused and changes nothing.
    held = occupy("127.0.2.50")
    try:
        busy = "127.0.2.50:%d" % held.getsockname()[1]
        status, body = patch(d, {"cluster.https_address": busy})
        assert status == 400, body
        assert "cluster.https_address: listen on %s" % busy in body["error"]
        assert config_of(d)[0]["cluster.https_address"] == "0.0.0.0:0"
    finally:
        held.close()

    # Bound at start-up failing, then at enable: 400, nothing changed.
    host = "127.0.2.51"
    addr = "%s:%d" % (host, free_port(host))
    check(*patch(d, {"cluster.https_address": addr}))
    d.stop()
    held = occupy(host, int(addr.rsplit(":", 1)[1]))
    try:
        d.start(ready_path=READY)
        core = config_of(d)[1]["addresses"][0]
        status, _, body = d.request("PUT", "/1.0/cluster", body={
            "server_name": "m1", "enabled": True})
        assert status == 400, body
        assert "cluster.https_address: listen on %s" % addr in body["error"]
        standalone()
        assert config_of(d)[0]["cluster.https_address"] == addr
        st, body, _ = tls_call(None, core, "GET", "/1.0")
        assert st == 200, body
    finally:
        held.close()
    # Once the address is free, enable binds it and succeeds.
    status, _, body = d.request("PUT", "/1.0/cluster", body={
        "server_name": "m1", "enabled": True})
    check(status, body, 202)
    op = wait_op(d, body)
    assert op["status"] == "Success", (op, d.diagnostics())
    members = cluster.members_of(d)
    assert [m["url"] for m in members] == ["https://" + addr]
    st, body, _ = tls_call(None, addr, "GET", "/1.0")
    assert st == 200, body
