"""Black-box harness: start `$SQUALLD` on loopback, talk to it with pynsq or raw sockets.

Every wait here is bounded: processes get 10 s to listen and 10 s to exit, sockets have
timeouts, and `run_scenario` fails the test when its asyncio scenario overruns its budget.
"""

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import nsq
import pytest

LISTEN_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 10.0
SOCKET_TIMEOUT_S = 10.0

FRAME_RESPONSE = 0
FRAME_ERROR = 1
FRAME_MESSAGE = 2


def squalld_path():
    path = os.environ.get("SQUALLD")
    if not path:
        pytest.fail("SQUALLD is not set (ci/test sets it to the release squalld)")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"SQUALLD={path} is not an executable file")
    return path


def lookupd_path():
    """$SQUALL_LOOKUPD, the squall-lookupd binary ci/test builds."""
    path = os.environ.get("SQUALL_LOOKUPD")
    if not path:
        pytest.fail("SQUALL_LOOKUPD is not set (ci/test sets it to the release squall-lookupd)")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"SQUALL_LOOKUPD={path} is not an executable file")
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One squalld (or nsqd) process listening on 127.0.0.1:`port`."""

    def __init__(self, argv, port, workdir, env=None):
        self.argv = argv
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log_path = Path(workdir) / f"squalld-{port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
        )

    def log_tail(self, max_bytes=4000):
        if not self._log.closed:
            self._log.flush()
        data = self.log_path.read_bytes()[-max_bytes:]
        return data.decode("utf-8", "replace")

    def wait_listening(self):
        """True once the TCP port accepts connections; False if the process died first."""
        deadline = time.monotonic() + LISTEN_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        """SIGTERM, wait up to 10 s (then SIGKILL); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=EXIT_TIMEOUT_S)
                self._log.close()
                pytest.fail(
                    f"{self.argv[0]} did not exit within {EXIT_TIMEOUT_S}s of SIGTERM; "
                    f"killed. Log:\n{self.log_tail()}"
                )
        self._log.close()
        return self.proc.returncode

    def stop_and_check(self):
        rc = self.stop()
        assert rc == 0, f"{self.argv[0]} exited {rc} after SIGTERM. Log:\n{self.log_tail()}"


def start_daemon(workdir, extra_args=(), exe=None, env=None, default_args=True):
    """Starts squalld on a free loopback port and waits until it listens (3 tries on port races)."""
    exe = exe or squalld_path()
    last = None
    for _ in range(3):
        port = free_port()
        argv = [exe, f"--tcp-address=127.0.0.1:{port}"]
        if default_args:
            argv += ["--http-address=", "--shards=2", f"--data-path={workdir}"]
        argv += list(extra_args)
        daemon = Daemon(argv, port, workdir, env=env)
        if daemon.wait_listening():
            return daemon
        last = daemon
        daemon._log.close()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=EXIT_TIMEOUT_S)
            break  # alive but not listening: a port race would have made it exit
    pytest.fail(
        f"{last.argv} did not listen within {LISTEN_TIMEOUT_S}s "
        f"(exit code {last.proc.poll()}). Log:\n{last.log_tail()}"
    )


# --- raw protocol -------------------------------------------------------------------------


class RawConn:
    """A blocking NSQ V2 connection for byte-level checks."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
        self.sock.sendall(b"  V2")

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def command(self, line, body=None):
        data = line.encode() + b"\n"
        if body is not None:
            data += struct.pack(">l", len(body)) + body
        self.sock.sendall(data)

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def read_frame(self):
        """(frame_type, data), skipping heartbeats."""
        while True:
            size, frame_type = struct.unpack(">ll", self._read_exact(8))
            data = self._read_exact(size - 4)
            if frame_type == FRAME_RESPONSE and data == b"_heartbeat_":
                self.command("NOP")
                continue
            return frame_type, data

    def identify(self, **fields):
        self.command("IDENTIFY", json.dumps(fields).encode())
        return self.read_frame()

    def read_until_eof(self, timeout_s):
        """Reads and discards until the server closes; False if it is still open after timeout."""
        self.sock.settimeout(timeout_s)
        try:
            while self.sock.recv(4096):
                pass
            return True
        except socket.timeout:
            return False
        except OSError:
            return True


# --- pynsq on a bounded asyncio loop ------------------------------------------------------


def run_scenario(scenario, timeout_s, progress=None):
    """Runs `scenario()` (a coroutine function) on a fresh asyncio loop, which pynsq's tornado
    IOLoop wraps; fails the test if it takes longer than `timeout_s`. `progress` (a dict the
    scenario updates) is printed on timeout."""

    async def bounded():
        return await asyncio.wait_for(scenario(), timeout_s)

    try:
        return asyncio.run(bounded())
    except asyncio.TimeoutError:
        pytest.fail(f"scenario did not finish within {timeout_s}s; progress: {progress}")


async def wait_until(predicate, interval_s=0.01):
    """Polls until `predicate()` holds; bounded by the scenario's timeout."""
    while not predicate():
        await asyncio.sleep(interval_s)


class SubscribedReader(nsq.Reader):
    """An nsq.Reader whose `subscribed` future resolves when nsqd answers its SUB with OK."""

    def __init__(self, *args, **kwargs):
        self.subscribed = asyncio.get_running_loop().create_future()
        kwargs.setdefault("lookupd_poll_interval", 60)
        super().__init__(*args, **kwargs)

    def _on_connection_ready(self, conn, **kwargs):
        def on_response(data=None, **_kwargs):
            conn.off("response", on_response)
            if self.subscribed.done():
                return
            if data == b"OK":
                self.subscribed.set_result(True)
            else:
                self.subscribed.set_exception(AssertionError(f"SUB answered {data!r}"))

        def on_error(error=None, **_kwargs):
            if not self.subscribed.done():
                self.subscribed.set_exception(AssertionError(f"SUB failed: {error!r}"))

        conn.on("response", on_response)
        conn.on("error", on_error)
        super()._on_connection_ready(conn, **kwargs)


async def connected_writer(address):
    """An nsq.Writer with its connection established."""
    writer = nsq.Writer([address])
    await wait_until(lambda: any(c.connected() for c in writer.conns.values()))
    return writer


def close_writer(writer):
    for conn in list(writer.conns.values()):
        conn.close()


def publish(writer, kind, topic, payload, delay_ms=None):
    """Sends one PUB/MPUB/DPUB; the returned future resolves to nsqd's answer (b"OK" or an
    nsq.Error)."""
    fut = asyncio.get_running_loop().create_future()

    def done(_conn, data):
        if not fut.done():
            fut.set_result(data)

    if kind == "pub":
        writer.pub(topic, payload, callback=done)
    elif kind == "mpub":
        writer.mpub(topic, list(payload), callback=done)
    elif kind == "dpub":
        writer.dpub(topic, delay_ms, payload, callback=done)
    else:
        raise ValueError(kind)
    return fut
