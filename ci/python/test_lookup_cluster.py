"""A cluster the NSQ way: three squalld processes ($SQUALLD) register with one squall-lookupd
($SQUALL_LOOKUPD) through --lookupd-tcp-address; a pynsq Reader given only the lookupd HTTP
address finds all three and consumes everything published to them, with nothing lost; a node
stopped with SIGTERM disappears from /lookup. Everything on loopback, every wait bounded."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from harness import (
    EXIT_TIMEOUT_S,
    Daemon,
    SubscribedReader,
    free_port,
    lookupd_path,
    run_scenario,
    squalld_path,
    start_daemon,
    wait_until,
)

HTTP_TIMEOUT_S = 10.0
REGISTER_TIMEOUT_S = 15.0
NODES = 3
MESSAGES_PER_NODE = 1000
TOPIC = "cluster"


@pytest.fixture
def lookupd(tmp_path):
    """squall-lookupd on free loopback ports; `.port` is HTTP, `.tcp_port` the V1 port."""
    exe = lookupd_path()
    last = None
    for _ in range(3):
        tcp_port, http_port = free_port(), free_port()
        argv = [exe, f"--tcp-address=127.0.0.1:{tcp_port}", f"--http-address=127.0.0.1:{http_port}"]
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


@pytest.fixture
def nodes(tmp_path, lookupd):
    """Three squalld registered with `lookupd`, each with its own data path and HTTP port."""
    exe = squalld_path()
    started = []
    for i in range(NODES):
        workdir = tmp_path / f"node{i}"
        workdir.mkdir()
        http_port = free_port()
        node = start_daemon(
            workdir,
            extra_args=[
                f"--http-address=127.0.0.1:{http_port}",
                "--shards=2",
                f"--data-path={workdir}",
                "--broadcast-address=127.0.0.1",
                f"--lookupd-tcp-address=127.0.0.1:{lookupd.tcp_port}",
            ],
            exe=exe,
            default_args=False,
        )
        node.http_port = http_port
        started.append(node)
    yield started
    for node in started:
        node.stop_and_check()


def http(port, method, path, body=None):
    """(status, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def lookup_tcp_ports(lookupd, topic):
    """The tcp ports /lookup lists for `topic` (empty on 404)."""
    status, body = http(lookupd.port, "GET", f"/lookup?topic={topic}")
    if status == 404:
        return set()
    assert status == 200, body
    producers = json.loads(body)["producers"]
    for p in producers:
        assert p["broadcast_address"] == "127.0.0.1", p
        assert p["version"] == "1.3.0", p
    return {(p["tcp_port"], p["http_port"]) for p in producers}


def wait_for_ports(lookupd, topic, want):
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    got = None
    while time.monotonic() < deadline:
        got = lookup_tcp_ports(lookupd, topic)
        if got == want:
            return
        time.sleep(0.1)
    pytest.fail(f"/lookup?topic={topic} lists {got}, want {want}")


def test_reader_finds_every_node_through_lookupd(lookupd, nodes):
    # Publish everything first (the topic keeps it until the reader's channel exists).
    expected = set()
    for i, node in enumerate(nodes):
        bodies = [f"n{i}-{k}".encode() for k in range(MESSAGES_PER_NODE)]
        expected.update(bodies)
        status, body = http(node.http_port, "POST", f"/mpub?topic={TOPIC}", b"\n".join(bodies))
        assert (status, body) == (200, b"OK")

    wait_for_ports(lookupd, TOPIC, {(n.port, n.http_port) for n in nodes})

    progress = {"received": 0, "duplicates": 0, "unknown": 0}

    async def scenario():
        received = set()

        def handler(message):
            body = bytes(message.body)
            if body not in expected:
                progress["unknown"] += 1
            elif body in received:
                progress["duplicates"] += 1
            received.add(body)
            progress["received"] = len(received)
            return True

        reader = SubscribedReader(
            topic=TOPIC,
            channel="all",
            message_handler=handler,
            lookupd_http_addresses=[f"http://127.0.0.1:{lookupd.port}"],
            lookupd_poll_interval=1,
            max_in_flight=300,
        )
        await wait_until(lambda: len(received) >= len(expected))
        await wait_until(lambda: len(reader.conns) == NODES)
        connected = {c.port for c in reader.conns.values()}
        reader.close()
        return received, connected

    received, connected = run_scenario(scenario, timeout_s=60, progress=progress)
    assert received == expected
    assert progress["unknown"] == 0
    assert connected == {n.port for n in nodes}

    # A node that stops closes its lookupd connection, and lookupd drops it.
    stopped = nodes.pop()
    stopped.stop_and_check()
    wait_for_ports(lookupd, TOPIC, {(n.port, n.http_port) for n in nodes})
