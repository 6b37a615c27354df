"""Raft traffic after a member is removed: its server certificate, which
opened raft streams (101) before the removal, is refused (403) on
/internal/raft and /internal/heartbeat afterwards; and a plain TCP
connection speaking dqlite's handshake never reaches a dqlite node."""

import os
import socket
import struct
import time

import pytest

from cluster_helpers import check
from test_formation import form3, tls_post

UP = {"Upgrade": "dqlite", "Connection": "Upgrade"}


def member_cert(d):
    return (os.path.join(d.state_dir, "server.crt"),
            os.path.join(d.state_dir, "server.key"))


def test_removed_member_certificate_refused(cluster):
    m1, m2, m3 = form3(cluster)
    crt, key = member_cert(m3)
    assert os.path.exists(crt) and os.path.exists(key)
    addr1 = cluster.addresses[0]

    status, _ = tls_post(addr1, "/internal/raft", crt, key, headers=UP)
    assert status == 101
    status, body = tls_post(addr1, "/internal/heartbeat", crt, key,
                            body={"name": "m3", "generations": {}})
    assert status == 200, body

    status, _, body = m1.request("DELETE", "/1.0/cluster/members/m3")
    check(status, body)

    status, body = tls_post(addr1, "/internal/raft", crt, key, headers=UP)
    assert status == 403, body
    status, body = tls_post(addr1, "/internal/heartbeat", crt, key,
                            body={"name": "m3", "generations": {}})
    assert status == 403, body
    # m2 refuses it too (the next test checks that this already holds
    # when the DELETE returns).
    deadline = time.monotonic() + 5
    while True:
        status, body = tls_post(cluster.addresses[1], "/internal/raft", crt,
                                key, headers=UP)
        if status == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 403, body
    # The cluster still works.
    status, _, body = m2.request("POST", "/1.0/profiles", body={"name": "z"})
    check(status, body, 201)


def test_plain_tcp_dqlite_handshake_refused(cluster):
    form3(cluster)
    host, port = cluster.addresses[0].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    got = b""
    try:
        # dqlite's client handshake: protocol version 1, 8 bytes LE...
        s.sendall(struct.pack("<Q", 1))
        # ...then a LEADER request (1 word body, type 0).
        try:
            s.sendall(struct.pack("<IBBH", 1, 0, 0, 0) + b"\0" * 8)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        closed = False
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        s.close()
    assert closed, "connection still open after 5 s; got %r" % got
    # Nothing but (at most) a TLS alert record or an HTTP error came back:
    # no dqlite response (whose header would start with a word count).
    assert got == b"" or got[:1] == b"\x15" or got.startswith(b"HTTP/"), got


def test_removed_member_refused_everywhere_when_delete_returns(cluster):
    m1, m2, m3 = form3(cluster)
    crt, key = member_cert(m3)
    status, _, body = m1.request("DELETE", "/1.0/cluster/members/m3")
    check(status, body)
    status, body = tls_post(cluster.addresses[1], "/internal/raft", crt, key,
                            headers=UP)
    assert status == 403, body
