"""gRPC helpers for the black-box tests: stubs generated from rpc/proto with grpcio-tools
(into $SQUALL_GRPC_STUBS, which ci/test makes, or a temporary directory), a squalld with a
gRPC listener, and a raw HTTP/2 client (hyper-h2) for the byte-level rules grpcio hides."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from harness import SOCKET_TIMEOUT_S, free_port, start_daemon

PROTO_DIR = Path(__file__).resolve().parents[2] / "rpc" / "proto"


def _stubs_dir():
    out = os.environ.get("SQUALL_GRPC_STUBS")
    if not out:
        out = tempfile.mkdtemp(prefix="squall-grpc-stubs-")
    marker = Path(out) / "squall" / "v1" / "squall_pb2_grpc.py"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
             f"--grpc_python_out={out}", str(PROTO_DIR / "squall" / "v1" / "squall.proto")],
            check=True,
        )
    return out


sys.path.insert(0, _stubs_dir())

from squall.v1 import squall_pb2 as pb  # noqa: E402
from squall.v1 import squall_pb2_grpc as pb_grpc  # noqa: E402

CALL_TIMEOUT_S = 10.0


def start_grpc_daemon(workdir, extra_args=()):
    """squalld with gRPC on a free loopback port; returns (daemon, "127.0.0.1:port")."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    daemon = start_daemon(workdir, extra_args=[f"--grpc-address={address}", *extra_args])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"gRPC port {port} not listening. Log:\n{daemon.log_tail()}")
            time.sleep(0.05)
    return daemon, address


def grpc_status_of(call):
    """The status code of a finished RpcError or call."""
    return call.code()


# --- raw HTTP/2 -----------------------------------------------------------------------------


class RawH2:
    """A blocking HTTP/2 client connection (hyper-h2) for checks below grpcio."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.events = []
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def request(self, path, content_type="application/grpc", extra=(), body=b"", end=True):
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"), (":scheme", "http"), (":authority", "squall"), (":path", path),
            ("content-type", content_type), ("te", "trailers"), *extra,
        ]
        self.conn.send_headers(sid, headers, end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def pump(self):
        """Reads once from the socket; returns False at EOF."""
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return False
        for event in self.conn.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        return True

    def wait_for(self, predicate, timeout_s=SOCKET_TIMEOUT_S):
        """Reads until some event satisfies `predicate`; returns it."""
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            if time.monotonic() > deadline or self.closed:
                raise AssertionError(f"no matching event; got {self.events}")
            try:
                self.pump()
            except socket.timeout:
                pass

    def stream_end(self, sid):
        """The headers of stream `sid` that ended it (trailers, or Trailers-Only headers)."""
        self.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == sid)
        ends = [e for e in self.events
                if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived))
                and e.stream_id == sid]
        return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                for k, v in ends[-1].headers}


def grpc_frame(message_bytes, compressed=False):
    return bytes([1 if compressed else 0]) + len(message_bytes).to_bytes(4, "big") + message_bytes


class Subscriber:
    """One Broker/Subscribe stream: requests go through a queue, events are read by a thread."""

    def __init__(self, stub, start, timeout=60):
        import queue
        import threading

        self._requests = queue.Queue()
        self.events = queue.Queue()
        self._requests.put(pb.SubscribeRequest(start=start))
        self.call = stub.Subscribe(self._request_iter(), timeout=timeout)
        self.error = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _request_iter(self):
        while True:
            req = self._requests.get()
            if req is None:
                return
            yield req

    def _read(self):
        import grpc

        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError as e:
            self.error = e
        self.events.put(None)

    def send(self, **kw):
        self._requests.put(pb.SubscribeRequest(**kw))

    def next(self, timeout=CALL_TIMEOUT_S):
        """The next event (None once the stream ended)."""
        return self.events.get(timeout=timeout)

    def started(self):
        event = self.next()
        assert event is not None and event.WhichOneof("event") == "started", (event, self.error)
        return event.started

    def deliveries(self, count, timeout=CALL_TIMEOUT_S):
        """Exactly `count` deliveries (fails on errors or the end of the stream)."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            event = self.next(timeout=max(0.01, deadline - time.monotonic()))
            assert event is not None, f"stream ended after {len(got)}: {self.error}"
            assert event.WhichOneof("event") == "deliveries", event
            got.extend(event.deliveries.messages)
        assert len(got) == count, f"{len(got)} deliveries, wanted {count}"
        return got

    def end(self, timeout=CALL_TIMEOUT_S):
        """Half-closes and waits for the stream's end; returns the final error (or None)."""
        self._requests.put(None)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream did not end"
        return self.error

    def wait_end(self, timeout=CALL_TIMEOUT_S):
        """Waits for the server to end the stream; returns its error."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream did not end"
        self._requests.put(None)
        return self.error

    def cancel(self):
        self.call.cancel()
        self._thread.join(CALL_TIMEOUT_S)
        self._requests.put(None)
