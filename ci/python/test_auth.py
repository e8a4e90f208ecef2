"""AUTH with the real pynsq client: nsq.Writer and nsq.Reader given an auth_secret authenticate
against a small HTTP auth server run by the test, then publish and consume; a secret without
authorizations and a topic outside them are refused with nsqd's errors."""

import asyncio
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nsq
import pytest

from harness import RawConn, SubscribedReader, close_writer, publish, run_scenario, start_daemon

GRANT = {
    "ttl": 3600,
    "identity": "pyclient",
    "identity_url": "https://id.example/pyclient",
    "authorizations": [
        {"topic": "^auth-ok", "channels": [".*"], "permissions": ["publish", "subscribe"]},
    ],
}


class AuthServer:
    """Answers GET /auth by the `secret` parameter; keeps every query it saw."""

    def __init__(self):
        queries = self.queries = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                queries.append((url.path, query))
                secret = query.get("secret", [""])[0]
                if secret == "good":
                    body = GRANT
                elif secret == "empty":
                    body = {"ttl": 60, "authorizations": []}
                else:
                    self.send_response(403)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def auth_server():
    server = AuthServer()
    yield server
    server.close()


@pytest.fixture
def authed_squalld(tmp_path, auth_server):
    daemon = start_daemon(tmp_path, [f"--auth-http-address={auth_server.address}"])
    yield daemon
    daemon.stop_and_check()


def test_writer_and_reader_authenticate_publish_and_consume(authed_squalld, auth_server):
    address = f"127.0.0.1:{authed_squalld.port}"
    count = 200

    async def scenario():
        got = []
        done = asyncio.Event()

        def handler(message):
            got.append(message.body)
            if len(got) == count:
                done.set()
            return True

        reader = SubscribedReader(
            topic="auth-ok-t", channel="c", message_handler=handler,
            nsqd_tcp_addresses=[address], auth_secret="good", max_in_flight=50,
        )
        await reader.subscribed
        writer = nsq.Writer([address], auth_secret="good")
        await asyncio.wait_for(_connected(writer), 10)
        results = await asyncio.gather(
            *(publish(writer, "pub", "auth-ok-t", f"m{i}".encode()) for i in range(count))
        )
        assert all(r == b"OK" for r in results), results[:3]
        await asyncio.wait_for(done.wait(), 20)
        assert sorted(got) == sorted(f"m{i}".encode() for i in range(count))
        reader.close()
        close_writer(writer)

    run_scenario(scenario, timeout_s=60)
    paths = {path for path, _ in auth_server.queries}
    assert paths == {"/auth"}
    _, query = auth_server.queries[0]
    assert query["secret"] == ["good"]
    assert query["tls"] == ["false"]
    assert query["remote_ip"] == ["127.0.0.1"]
    assert query["common_name"] == [""]


async def _connected(writer):
    while not any(c.connected() for c in writer.conns.values()):
        await asyncio.sleep(0.01)


def test_topic_outside_the_authorizations_is_unauthorized(authed_squalld):
    address = f"127.0.0.1:{authed_squalld.port}"

    async def scenario():
        writer = nsq.Writer([address], auth_secret="good")
        await asyncio.wait_for(_connected(writer), 10)
        result = await asyncio.wait_for(publish(writer, "pub", "elsewhere", b"x"), 10)
        assert isinstance(result, nsq.Error), result
        assert 'E_UNAUTHORIZED AUTH failed for PUB on "elsewhere" ""' in str(result), str(result)
        close_writer(writer)

    run_scenario(scenario, timeout_s=30)


def test_refused_secrets_close_the_connection_with_nsqds_errors(authed_squalld):
    for secret, error in [
        (b"empty", b"E_UNAUTHORIZED AUTH no authorizations found"),
        (b"other", b"E_AUTH_FAILED AUTH failed"),
    ]:
        conn = RawConn(authed_squalld.port)
        conn.command("AUTH", secret)
        assert conn.read_frame() == (1, error)
        assert conn.read_until_eof(5), "the error is fatal"
        conn.close()


def test_auth_over_tls_sends_the_client_certificates_common_name(tmp_path, auth_server):
    """With a client certificate (require-verify), AUTH after the TLS upgrade tells the auth
    server `tls=true` and the certificate's subject CN, as nsqd does."""
    import ssl

    from test_tls_compression import Pki, identify_then_tls, read_frame

    pki = Pki(tmp_path, "squall")
    cert, key = pki.issue("server", server=True)
    daemon = start_daemon(tmp_path, [
        f"--tls-cert={cert}", f"--tls-key={key}",
        "--tls-client-auth-policy=require-verify", f"--tls-root-ca-file={pki.ca_path}",
        f"--auth-http-address={auth_server.address}",
    ])
    try:
        context = ssl.create_default_context(cafile=pki.ca_path)
        context.load_cert_chain(*pki.issue("client", server=False))
        tls, reply = identify_then_tls(daemon.port, context)
        assert reply["auth_required"] is True and reply["tls_v1"] is True
        assert read_frame(tls) == (0, b"OK")
        tls.sendall(b"AUTH\n" + len(b"good").to_bytes(4, "big") + b"good")
        frame_type, data = read_frame(tls)
        assert frame_type == 0, data
        assert json.loads(data)["identity"] == "pyclient"
        tls.close()
    finally:
        daemon.stop_and_check()
    _, query = auth_server.queries[-1]
    assert query["tls"] == ["true"]
    assert query["common_name"] == ["squall client"]
    assert query["secret"] == ["good"]
