"""/1.0/operations and the /1.0/events websocket on a real corrald.

Contract: reference/lxd-client-compat.md sections 0 (point 2), 1 (Operation
and Event objects) and 3 ("lxc operation", "lxc monitor"). Nothing here
creates an operation (no endpoint does yet); the registry itself is covered
by tests/unit/test_operations.c.
"""

import base64
import hashlib
import os
import shutil
import struct
import subprocess
import time
import uuid

import pytest

from helpers import build_request, wait_for

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@pytest.fixture
def d(daemon_factory):
    # Operations and events are served once the database is up.
    return daemon_factory.start(debug=True, ready_path="/1.0/projects")


def assert_error(body, code):
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    assert body.get("error_code") == code, body
    assert body.get("error"), body
    assert body.get("metadata") is None, body


def assert_sync(body):
    assert isinstance(body, dict), body
    assert body.get("type") == "sync", body
    assert body.get("status_code") == 200, body
    return body["metadata"]


# --- a minimal RFC 6455 client ----------------------------------------------


def ws_frame(opcode, payload=b"", fin=True, mask=True):
    """One client frame (masked, as RFC 6455 requires of clients)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def upgrade_request(path="/1.0/events", key=None, extra=None):
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or ws_key(),
        "Sec-WebSocket-Version": "13",
    }
    headers.update(extra or {})
    return build_request("GET", path, headers=headers)


class WS:
    """A websocket over a RawConnection after a successful handshake."""

    def __init__(self, conn):
        self.c = conn

    def send(self, opcode, payload=b""):
        self.c.send(ws_frame(opcode, payload))

    def recv(self):
        """Return (opcode, payload) of the next server frame."""
        b0, b1 = self.c._read_exact(2)
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.c._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.c._read_exact(8))[0]
        assert b0 & 0x80, "fragmented server frame"
        return b0 & 0x0F, self.c._read_exact(n)

    def close(self, code=1000):
        """Close handshake: send close, expect the echo, then EOF."""
        self.send(OP_CLOSE, struct.pack("!H", code))
        while True:
            op, payload = self.recv()
            if op == OP_CLOSE:
                break
        assert payload[:2] == struct.pack("!H", code), payload
        assert self.c.at_eof(wait=3.0), "server did not close after the close handshake"


def open_events(d, path="/1.0/events", early=b""):
    c = d.connect()
    key = ws_key()
    c.send(upgrade_request(path, key) + early)
    resp = c.read_response()
    assert resp.status == 101, resp
    assert resp.header("Upgrade", "").lower() == "websocket", resp.headers
    assert "upgrade" in resp.header("Connection", "").lower(), resp.headers
    assert resp.header("Sec-WebSocket-Accept") == ws_accept(key), resp.headers
    return c, WS(c)


# --- /1.0/operations -----------------------------------------------------------


def test_operations_list_empty(d):
    # LXD lists only the statuses that have operations: none -> {}.
    status, _, body = d.get("/1.0/operations")
    assert status == 200
    assert assert_sync(body) == {}
    for q in ("?recursion=1", "?recursion=0", "?all-projects=true", "?project=default"):
        status, _, body = d.get("/1.0/operations" + q)
        assert status == 200, q
        assert assert_sync(body) == {}, q


@pytest.mark.parametrize("method,suffix", [("GET", ""), ("DELETE", ""), ("GET", "/wait"),
                                           ("GET", "/wait?timeout=1")])
def test_unknown_operation_404(d, method, suffix):
    status, _, body = d.request(method, "/1.0/operations/%s%s" % (uuid.uuid4(), suffix))
    assert status == 404
    assert_error(body, 404)


def test_operations_methods(d):
    status, headers, body = d.request("POST", "/1.0/operations", body={})
    assert status == 405
    assert_error(body, 405)
    assert "GET" in headers.get("Allow", "")
    status, headers, body = d.request("PUT", "/1.0/operations/%s" % uuid.uuid4(), body={})
    assert status == 405
    assert set(h.strip() for h in headers.get("Allow", "").split(",")) == {"GET", "DELETE"}


# --- /1.0/events ----------------------------------------------------------------


def test_events_handshake_and_close(d):
    c, ws = open_events(d)
    with c:
        ws.close()
    # The daemon keeps serving.
    status, _, _ = d.get("/1.0")
    assert status == 200


def test_events_ping_pong_and_client_messages_ignored(d):
    c, ws = open_events(d, "/1.0/events?type=operation,lifecycle&project=default")
    with c:
        ws.send(OP_TEXT, b'{"hello": "ignored"}')
        ws.send(OP_BINARY, b"\x00\x01")
        ws.send(OP_PING, b"are you there")
        op, payload = ws.recv()
        assert (op, payload) == (OP_PONG, b"are you there")
        ws.close(1001)
    assert d.get("/1.0/operations")[0] == 200


def test_events_bytes_sent_with_the_handshake(d):
    # A ping in the same packet as the upgrade request is not lost to the
    # HTTP parser: it reaches the websocket.
    c, ws = open_events(d, early=ws_frame(OP_PING, b"early"))
    with c:
        assert ws.recv() == (OP_PONG, b"early")
        ws.close()


def test_events_all_projects(d):
    c, ws = open_events(d, "/1.0/events?all-projects=true")
    with c:
        ws.send(OP_PING, b"x")
        assert ws.recv() == (OP_PONG, b"x")
        ws.close()


def test_events_abrupt_disconnects(d):
    # Listeners that vanish without a close frame are cleaned up.
    for _ in range(20):
        c, _ = open_events(d)
        c.close()
    conns = [open_events(d) for _ in range(5)]
    for c, ws in conns:
        ws.send(OP_PING, b"p")
        assert ws.recv() == (OP_PONG, b"p")
    for c, _ in conns:
        c.close()
    status, _, _ = d.get("/1.0")
    assert status == 200
    assert d.running()


@pytest.mark.parametrize("headers,fragment", [
    ({}, "websocket"),
    ({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
     "Sec-WebSocket-Key"),
    ({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, "version"),
])
def test_events_not_a_websocket(d, headers, fragment):
    status, _, body = d.get("/1.0/events", headers=headers)
    assert status == 400
    assert_error(body, 400)
    assert fragment.lower() in body["error"].lower(), body


def test_events_bad_type(d):
    with d.connect() as c:
        c.send(upgrade_request("/1.0/events?type=operation,bogus"))
        resp = c.read_response()
        assert resp.status == 400
        assert_error(resp.json(), 400)
        assert "bogus" in resp.json()["error"]


def test_events_protocol_error_closes(d):
    # An unmasked client frame violates RFC 6455: the server closes with
    # 1002 (or drops the connection) and keeps serving others.
    c, ws = open_events(d)
    with c:
        c.send(ws_frame(OP_TEXT, b"unmasked", mask=False))
        try:
            op, payload = ws.recv()
            assert op == OP_CLOSE
            assert payload[:2] == struct.pack("!H", 1002), payload
        except EOFError:
            pass
        assert c.at_eof(wait=3.0)
    assert d.get("/1.0")[0] == 200


def test_events_listener_survives_sigterm(d):
    c, ws = open_events(d)
    with c:
        start = time.monotonic()
        assert d.stop(timeout=5.0) == 0
        assert time.monotonic() - start < 5.0
        # The stream ends: a close frame or EOF.
        try:
            while True:
                op, _ = ws.recv()
                if op == OP_CLOSE:
                    break
        except EOFError:
            pass


# --- the real lxc client ----------------------------------------------------------

LXC = shutil.which("lxc")
needs_lxc = pytest.mark.skipif(LXC is None, reason="lxc (lxd-client) is not installed")


def lxc_env(d):
    conf = os.path.join(d.base, "lxc-conf")
    os.makedirs(conf, exist_ok=True)
    env = dict(os.environ)
    env.update({"LXD_SOCKET": d.socket_path, "LXD_CONF": conf, "HOME": d.base})
    return env


def lxc(d, *args, timeout=20):
    return subprocess.run([LXC] + list(args), env=lxc_env(d), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


@needs_lxc
def test_lxc_operation_list_and_show(d):
    r = lxc(d, "operation", "list")
    assert r.returncode == 0, r.stderr
    assert "ID" in r.stdout and "STATUS" in r.stdout, r.stdout
    r = lxc(d, "operation", "show", str(uuid.uuid4()))
    assert r.returncode == 1
    assert "Error: operation not found" in r.stderr, r.stderr
    r = lxc(d, "operation", "delete", str(uuid.uuid4()))
    assert r.returncode == 1
    assert "Error: operation not found" in r.stderr, r.stderr


@needs_lxc
@pytest.mark.parametrize("args", [[], ["--type=operation", "--all-projects"]],
                         ids=["all-types", "operation-all-projects"])
def test_lxc_monitor_stays_connected(daemon_factory, d, args):
    p = daemon_factory.track_process(subprocess.Popen(
        [LXC, "monitor"] + args, env=lxc_env(d), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        # lxc completes the handshake (it would exit with an error
        # otherwise) and then waits for events.
        assert wait_for(lambda: "path=/1.0/events status=101" in d.log(), timeout=10.0), \
            d.log()[-2000:]
        time.sleep(0.5)
        assert p.poll() is None, p.communicate(timeout=5)
        assert d.get("/1.0/operations")[0] == 200
    finally:
        p.kill()
        p.wait(timeout=10)
    assert d.get("/1.0")[0] == 200
