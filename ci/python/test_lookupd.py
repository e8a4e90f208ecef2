"""squall-lookupd as nsqlookupd's users see it: the release binary ($SQUALL_LOOKUPD) started
with nsqlookupd's flags, queried with Python's urllib, registered with over raw TCP V1, and
stopped with SIGTERM (exit 0)."""

import json
import os
import socket
import struct
import urllib.error
import urllib.request

import pytest

from harness import Daemon, EXIT_TIMEOUT_S, free_port, lookupd_path

HTTP_TIMEOUT_S = 10.0


@pytest.fixture
def lookupd(tmp_path):
    """A running squall-lookupd on free loopback ports (Go flag syntax, as scripts use it)."""
    exe = lookupd_path()
    last = None
    for _ in range(3):
        tcp_port, http_port = free_port(), free_port()
        argv = [
            exe,
            "-tcp-address",
            f"127.0.0.1:{tcp_port}",
            f"--http-address=127.0.0.1:{http_port}",
            "-broadcast-address=lookupd.test",
            "--inactive-producer-timeout=300s",
        ]
        daemon = Daemon(argv, http_port, tmp_path)
        if daemon.wait_listening():
            daemon.tcp_port = tcp_port
            yield daemon
            daemon.stop_and_check()
            return
        last = daemon
        daemon._log.close()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=EXIT_TIMEOUT_S)
    pytest.fail(f"{last.argv} did not listen. Log:\n{last.log_tail()}")


def http(daemon, method, path):
    """(status, headers, body bytes); HTTP errors are answers too."""
    url = f"http://127.0.0.1:{daemon.port}{path}"
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    req.add_header("Accept", "application/vnd.nsq; version=1.0")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def v1_response(sock):
    size = struct.unpack(">l", recv_exact(sock, 4))[0]
    return recv_exact(sock, size)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def test_ping_and_info(lookupd):
    status, headers, body = http(lookupd, "GET", "/ping")
    assert (status, body) == (200, b"OK")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, headers, body = http(lookupd, "GET", "/info")
    assert (status, body) == (200, b'{"version":"1.3.0"}')
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["X-NSQ-Content-Type"] == "nsq; version=1.0"


def test_lookup_finds_a_registered_producer(lookupd):
    status, _, body = http(lookupd, "GET", "/lookup?topic=pytopic")
    assert (status, body) == (404, b'{"message":"TOPIC_NOT_FOUND"}')
    status, _, body = http(lookupd, "GET", "/lookup")
    assert (status, body) == (400, b'{"message":"MISSING_ARG_TOPIC"}')

    with socket.create_connection(("127.0.0.1", lookupd.tcp_port), timeout=HTTP_TIMEOUT_S) as s:
        s.sendall(b"  V1")
        ident = json.dumps(
            {
                "broadcast_address": "nsqd.test",
                "hostname": "nsqd-host",
                "http_port": 4151,
                "tcp_port": 4150,
                "version": "1.3.0",
            }
        ).encode()
        s.sendall(b"IDENTIFY\n" + struct.pack(">l", len(ident)) + ident)
        answer = json.loads(v1_response(s))
        assert answer["broadcast_address"] == "lookupd.test"
        assert answer["tcp_port"] == lookupd.tcp_port
        assert answer["http_port"] == lookupd.port
        assert answer["version"] == "1.3.0"
        s.sendall(b"REGISTER pytopic pychannel\n")
        assert v1_response(s) == b"OK"

        status, _, body = http(lookupd, "GET", "/lookup?topic=pytopic")
        assert status == 200
        data = json.loads(body)
        assert data["channels"] == ["pychannel"]
        assert data["producers"] == [
            {
                "remote_address": "%s:%d" % s.getsockname(),
                "hostname": "nsqd-host",
                "broadcast_address": "nsqd.test",
                "tcp_port": 4150,
                "http_port": 4151,
                "version": "1.3.0",
                "topology_zone": "",
                "topology_region": "",
            }
        ]
        assert http(lookupd, "POST", "/topic/tombstone?topic=pytopic&node=nsqd.test:4151")[0] == 200
        assert json.loads(http(lookupd, "GET", "/lookup?topic=pytopic")[2])["producers"] == []

        s.sendall(b"REGISTER bad:topic\n")
        assert v1_response(s) == b"E_BAD_TOPIC REGISTER topic name 'bad:topic' is not valid"
        assert s.recv(16) == b""


def test_admin_endpoints(lookupd):
    assert http(lookupd, "POST", "/channel/create?topic=t1&channel=c1")[0] == 200
    assert json.loads(http(lookupd, "GET", "/topics")[2]) == {"topics": ["t1"]}
    assert json.loads(http(lookupd, "GET", "/channels?topic=t1")[2]) == {"channels": ["c1"]}
    assert http(lookupd, "GET", "/topic/create?topic=t2")[0] == 405
    assert http(lookupd, "POST", "/channel/delete?topic=t1&channel=zz")[:3:2] == (
        404,
        b'{"message":"CHANNEL_NOT_FOUND"}',
    )
    assert http(lookupd, "POST", "/topic/delete?topic=t1")[0] == 200
    assert json.loads(http(lookupd, "GET", "/topics")[2]) == {"topics": []}
