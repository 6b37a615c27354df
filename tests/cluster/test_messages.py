"""Member channel messages are msgpack.

A stopped member's address is taken over by a fake member (a TLS server
presenting the cluster certificate, which the others pin): the heartbeats
and the change notification it receives are `application/msgpack` maps
with the documented keys. The receiving side answers 400 with the reason
to malformed msgpack from a member's certificate, changes nothing, and
still takes a JSON body (a member not yet upgraded)."""

import json
import os
import socket
import ssl
import struct
import threading
import time

from cluster_helpers import check
from test_formation import form3

AREAS = {"trust", "projects", "profiles", "instances", "config"}


# ------------------------------------------------------------------------
# The msgpack subset the messages use (no msgpack module on the test host)

def mp_encode(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7f:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) <= 31:
            return bytes([0xa0 | len(b)]) + b
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(v, list):
        return (b"\xdd" + struct.pack(">I", len(v)) +
                b"".join(mp_encode(x) for x in v))
    if isinstance(v, dict):
        return (b"\xdf" + struct.pack(">I", len(v)) +
                b"".join(mp_encode(k) + mp_encode(x) for k, x in v.items()))
    raise TypeError(type(v))


def mp_decode(data):
    """Decode exactly one value; raise ValueError otherwise."""
    def item(i):
        b = data[i]
        i += 1
        if b <= 0x7f:
            return b, i
        if b >= 0xe0:
            return b - 0x100, i
        if 0x80 <= b <= 0x8f:
            return container(i, b & 0x0f, True)
        if 0x90 <= b <= 0x9f:
            return container(i, b & 0x0f, False)
        if 0xa0 <= b <= 0xbf:
            return text(i, b & 0x1f)
        if b == 0xc0:
            return None, i
        if b in (0xc2, 0xc3):
            return b == 0xc3, i
        fixed = {0xca: ">f", 0xcb: ">d", 0xcc: ">B", 0xcd: ">H", 0xce: ">I",
                 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q"}
        if b in fixed:
            n = struct.calcsize(fixed[b])
            return struct.unpack(fixed[b], data[i:i + n])[0], i + n
        sizes = {0xd9: ">B", 0xda: ">H", 0xdb: ">I", 0xdc: ">H", 0xdd: ">I",
                 0xde: ">H", 0xdf: ">I"}
        if b in sizes:
            n = struct.calcsize(sizes[b])
            count = struct.unpack(sizes[b], data[i:i + n])[0]
            i += n
            if b <= 0xdb:
                return text(i, count)
            return container(i, count, b >= 0xde)
        raise ValueError("type byte 0x%02x" % b)

    def text(i, n):
        if i + n > len(data):
            raise ValueError("truncated")
        return data[i:i + n].decode("utf-8"), i + n

    def container(i, n, is_map):
        if is_map:
            out = {}
            for _ in range(n):
                k, i = item(i)
                if not isinstance(k, str):
                    raise ValueError("key %r" % (k,))
                out[k], i = item(i)
            return out, i
        out = []
        for _ in range(n):
            v, i = item(i)
            out.append(v)
        return out, i

    try:
        v, end = item(0)
    except (IndexError, struct.error) as e:
        raise ValueError("truncated: %s" % e)
    if end != len(data):
        raise ValueError("%d trailing bytes" % (len(data) - end))
    return v


def test_mp_codec_self_check():
    msg = {"name": "m1", "generations": {"trust": 7, "config": -1},
           "n": [None, True, False, 300, "x" * 40], "v": {}}
    assert mp_decode(mp_encode(msg)) == msg
    # The codec's known bytes (tests/unit/test_msg.c, test_bytes).
    assert mp_decode(bytes([0x83, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x92, 0xd0,
                            0x80, 0xc0, 0xa1, 0x63, 0xcd, 0x01, 0x00])) == \
        {"a": 1, "b": [-128, None], "c": 256}


# ------------------------------------------------------------------------
# A fake member

class FakeMember:
    """A TLS server on @address presenting @crt/@key that answers 200 {} to
    heartbeats and change notifications (403 to anything else) and keeps
    what it received: (path, headers, body)."""

    def __init__(self, address, crt, key):
        host, port = address.rsplit(":", 1)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock.bind((host, int(port)))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.received = []
        self.stopping = False
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, raw):
        raw.settimeout(2)
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        buf = b""
        try:
            while not self.stopping:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:n], buf[n:]
                with self.lock:
                    self.received.append((path, headers, body))
                if path in ("/internal/heartbeat", "/internal/changed"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                                 b"application/json\r\nContent-Length: 2"
                                 b"\r\n\r\n{}")
                else:
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: "
                                 b"0\r\nConnection: close\r\n\r\n")
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def wait_for(self, pred, timeout=10.0):
        """The first received (path, headers, body) for which pred is
        true, waiting up to @timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for r in self.received:
                    if pred(*r):
                        return r
            if time.monotonic() > deadline:
                with self.lock:
                    got = [(p, h.get("content-type")) for p, h, _ in
                           self.received]
                raise AssertionError("not received; got %r" % got)
            time.sleep(0.05)

    def close(self):
        self.stopping = True
        self.sock.close()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)


def msgpack_from(name, path):
    def pred(p, headers, body):
        if p != path or headers.get("content-type") != "application/msgpack":
            return False
        return mp_decode(body).get("name") == name
    return pred


def test_heartbeats_and_notifications_are_msgpack(cluster):
    m1, m2, m3 = form3(cluster)
    addr3 = cluster.addresses[2]
    m3.stop()
    fake = FakeMember(addr3, os.path.join(m3.state_dir, "cluster.crt"),
                      os.path.join(m3.state_dir, "cluster.key"))
    try:
        for name in ("m1", "m2"):
            # A member reads the member list at least every 5 s.
            _, headers, body = fake.wait_for(
                msgpack_from(name, "/internal/heartbeat"), timeout=15)
            msg = mp_decode(body)
            assert set(msg) == {"name", "generations", "version", "schema",
                                "api_extensions", "architecture",
                                "members"}, msg
            assert sorted(m["name"] for m in msg["members"]) == [
                "m1", "m2", "m3"], msg
            assert all(isinstance(m["address"], str)
                       for m in msg["members"]), msg
            assert isinstance(msg["schema"], int) and msg["schema"] >= 1
            assert isinstance(msg["api_extensions"], int)
            assert isinstance(msg["architecture"], str)
            assert set(msg["generations"]) == AREAS, msg
            assert all(isinstance(g, int) for g in
                       msg["generations"].values()), msg
            assert isinstance(msg["version"], str)
            assert body[:1] in (b"\x87", b"\xde", b"\xdf")  # a map

        status, _, body = m1.request("POST", "/1.0/profiles",
                                     body={"name": "via-msgpack"})
        check(status, body, 201)
        # The fake acknowledged, m2 too.
        assert body["metadata"].get("unacknowledged_members", 0) is None, body
        _, _, raw = fake.wait_for(msgpack_from("m1", "/internal/changed"),
                                  timeout=2)
        msg = mp_decode(raw)
        assert set(msg) == {"name", "generations"}, msg
        assert set(msg["generations"]) == {"profiles"}, msg
        status, _, body = m2.request("GET", "/1.0/profiles/via-msgpack")
        check(status, body)
        # Nothing went out as JSON.
        with fake.lock:
            types = {h.get("content-type") for p, h, _ in fake.received
                     if p in ("/internal/heartbeat", "/internal/changed")}
        assert types == {"application/msgpack"}, types
    finally:
        fake.close()


# ------------------------------------------------------------------------
# The receiving side

def post(address, path, crt, key, body, content_type=None):
    host, port = address.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(crt, key)
    head = "POST %s HTTP/1.1\r\nHost: corral\r\nContent-Length: %d\r\n" % (
        path, len(body))
    if content_type is not None:
        head += "Content-Type: %s\r\n" % content_type
    head += "Connection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw) as conn:
            conn.sendall(head.encode() + body)
            data = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(payload) if payload else None


def test_malformed_msgpack_refused(cluster):
    m1 = cluster.enable("m1")
    m2 = cluster.join("m2")
    addr1 = cluster.addresses[0]
    crt = os.path.join(m2.state_dir, "server.crt")
    key = os.path.join(m2.state_dir, "server.key")
    good = mp_encode({"name": "m2", "generations": {}})
    mp = "application/msgpack"

    for path in ("/internal/heartbeat", "/internal/changed"):
        status, body = post(addr1, path, crt, key, good, mp)
        assert status == 200, body
        # Media type parameters and case do not matter.
        status, body = post(addr1, path, crt, key, good,
                            "Application/MsgPack; charset=binary")
        assert status == 200, body
        # JSON is still taken (a member not yet upgraded).
        js = json.dumps({"name": "m2", "generations": {}}).encode()
        status, body = post(addr1, path, crt, key, js)
        assert status == 200, body
        status, body = post(addr1, path, crt, key, js, "application/json")
        assert status == 200, body

        cases = [
            (js, "trailing bytes after the value"),
            (b"\x81\x01\x01", "map key is not a string"),
            (good + b"\xc0", "trailing bytes after the value: 1"),
            (good[:-1], "ends"),
            (b"", "ends at byte 0"),
            (b"\x91" * 20 + b"\x90", "nested deeper than 16"),
            (b"\xdd\xff\xff\xff\xff", "declares 4294967295 elements"),
            (b"\x81\xa4name\xa2\xc3\x28", "not valid UTF-8"),
            (b"\x81\xa4name\xc4\x02m2", "bin value"),
            (b"\x92\x01\x02", "not a map"),
        ]
        for data, want in cases:
            status, body = post(addr1, path, crt, key, data, mp)
            assert status == 400, (data, body)
            assert body["error"].startswith("invalid msgpack body: "), body
            assert want in body["error"], (want, body)

    # Nothing broke: m2 is Online and writes propagate.
    status, _, body = m1.request("GET", "/1.0/cluster/members/m2")
    check(status, body)
    assert body["metadata"]["status"] == "Online", body
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "p"})
    check(status, body, 201)
    status, _, body = m1.request("GET", "/1.0/profiles/p")
    check(status, body)
