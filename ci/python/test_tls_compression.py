"""pynsq's Writer and Reader over every transport squalld offers after IDENTIFY: TLS (with a CA
generated here), snappy, deflate, TLS + snappy, TLS + deflate; client certificates under
--tls-client-auth-policy=require-verify; the HTTP API over --https-address."""

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import struct
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import nsq
from harness import (
    SOCKET_TIMEOUT_S,
    SubscribedReader,
    close_writer,
    free_port,
    publish,
    run_scenario,
    start_daemon,
    wait_until,
)


class Pki:
    """A CA and certificates it signs, written as PEM files under `directory`."""

    def __init__(self, directory, name):
        self.directory = directory
        self.name = name
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
        self.ca_subject = subject
        self.ca_cert = (
            self._builder(subject, subject, self.ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_path = self._write(f"{name}-ca.pem", self.ca_cert.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(subject, issuer, public_key):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def _write(self, file, data):
        path = self.directory / file
        path.write_bytes(data)
        return str(path)

    def issue(self, file, server):
        """(cert_path, key_path) of a leaf certificate for 127.0.0.1 (server) or a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} {file}")])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._builder(subject, self.ca_subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        cert_path = self._write(f"{self.name}-{file}.pem", cert.public_bytes(serialization.Encoding.PEM))
        key_path = self._write(
            f"{self.name}-{file}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return cert_path, key_path


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path, "squall")


def tls_daemon(tmp_path, pki, extra=()):
    cert, key = pki.issue("server", server=True)
    return start_daemon(tmp_path, [f"--tls-cert={cert}", f"--tls-key={key}", *extra])


def tls_options(pki, client_cert=None):
    options = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": pki.ca_path}
    if client_cert:
        options["certfile"], options["keyfile"] = client_cert
    return options


def roundtrip(address, conn_kwargs, messages=300):
    """Publishes `messages` bodies (PUB and MPUB) through an nsq.Writer and reads them back
    through an nsq.Reader, both with `conn_kwargs`; returns the bodies received."""
    topic = "layers"
    bodies = [f"{i}:{'x' * (i * 37 % 5000)}".encode() for i in range(messages)]
    # One body larger than a TLS record, a snappy chunk and rustls' send buffer.
    bodies.append(b"L" * 300_000)
    received = []
    progress = {"received": 0}

    async def scenario():
        done = asyncio.Event()

        def handler(message):
            received.append(message.body)
            progress["received"] = len(received)
            if len(received) >= len(bodies):
                done.set()
            return True

        reader = SubscribedReader(
            topic=topic,
            channel="ch",
            message_handler=handler,
            nsqd_tcp_addresses=[address],
            max_in_flight=50,
            **conn_kwargs,
        )
        await reader.subscribed
        writer = nsq.Writer([address], **conn_kwargs)
        await wait_until(lambda: any(c.connected() for c in writer.conns.values()))
        half = len(bodies) // 2
        answers = [publish(writer, "pub", topic, b) for b in bodies[:half]]
        for start in range(half, len(bodies), 25):
            answers.append(publish(writer, "mpub", topic, bodies[start : start + 25]))
        results = await asyncio.gather(*answers)
        assert all(r == b"OK" for r in results), results[:3]
        await done.wait()
        reader.close()
        close_writer(writer)

    run_scenario(scenario, timeout_s=60, progress=progress)
    return received, bodies


@pytest.mark.parametrize(
    "tls,compression",
    [(True, None), (False, "snappy"), (False, "deflate"), (True, "snappy"), (True, "deflate")],
)
def test_pynsq_over_layers(tmp_path, pki, tls, compression):
    daemon = tls_daemon(tmp_path, pki)
    try:
        kwargs = {}
        if tls:
            kwargs.update(tls_v1=True, tls_options=tls_options(pki))
        if compression == "snappy":
            kwargs["snappy"] = True
        if compression == "deflate":
            kwargs.update(deflate=True, deflate_level=6)
        received, bodies = roundtrip(daemon.address, kwargs)
        assert sorted(received) == sorted(bodies)
    finally:
        daemon.stop_and_check()


def identify_then_tls(port, context):
    """IDENTIFY with tls_v1 over a raw socket, then the TLS handshake; returns the TLS socket
    and the JSON reply."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
    body = json.dumps({"feature_negotiation": True, "tls_v1": True}).encode()
    sock.sendall(b"  V2IDENTIFY\n" + struct.pack(">l", len(body)) + body)
    size, frame_type = struct.unpack(">ll", sock.recv(8, socket.MSG_WAITALL))
    reply = json.loads(sock.recv(size - 4, socket.MSG_WAITALL))
    assert frame_type == 0
    return context.wrap_socket(sock, server_hostname="127.0.0.1"), reply


def read_frame(sock):
    head = b""
    while len(head) < 8:
        chunk = sock.recv(8 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    size, frame_type = struct.unpack(">ll", head)
    data = b""
    while len(data) < size - 4:
        chunk = sock.recv(size - 4 - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return frame_type, data


def test_require_verify_client_certificates(tmp_path, pki):
    other = Pki(tmp_path, "other")
    daemon = tls_daemon(
        tmp_path,
        pki,
        ["--tls-client-auth-policy=require-verify", f"--tls-root-ca-file={pki.ca_path}"],
    )
    try:
        good = pki.issue("client", server=False)
        received, bodies = roundtrip(
            daemon.address,
            {"tls_v1": True, "tls_options": tls_options(pki, client_cert=good), "snappy": True},
            messages=50,
        )
        assert sorted(received) == sorted(bodies)

        # --tls-required follows from the policy: nothing but IDENTIFY before the upgrade.
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=SOCKET_TIMEOUT_S)
        sock.sendall(b"  V2PUB t\n\x00\x00\x00\x01x")
        assert read_frame(sock) == (1, b"E_INVALID cannot PUB in current state (TLS required)")
        sock.close()

        # A certificate from another CA: the handshake fails and the connection closes.
        bad = other.issue("client", server=False)
        context = ssl.create_default_context(cafile=pki.ca_path)
        context.load_cert_chain(*bad)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls, reply = identify_then_tls(daemon.port, context)
            assert reply["tls_v1"] is True
            # TLS 1.3 reports the rejected certificate on the first read.
            read_frame(tls)
            read_frame(tls)

        # The daemon still serves a verified client.
        context = ssl.create_default_context(cafile=pki.ca_path)
        context.load_cert_chain(*good)
        tls, reply = identify_then_tls(daemon.port, context)
        assert read_frame(tls) == (0, b"OK")
        tls.sendall(b"PUB t\n\x00\x00\x00\x01x")
        assert read_frame(tls) == (0, b"OK")
        tls.close()
    finally:
        daemon.stop_and_check()


def test_https_serves_the_api(tmp_path, pki):
    """--tls-required=true: plain HTTP answers 403 with nsqd's body, HTTPS serves the API."""
    port = free_port()
    http_port = free_port()
    daemon = tls_daemon(
        tmp_path,
        pki,
        [
            f"--https-address=127.0.0.1:{port}",
            f"--http-address=127.0.0.1:{http_port}",
            "--tls-required=true",
        ],
    )
    try:
        context = ssl.create_default_context(cafile=pki.ca_path)
        # The TCP listener answers a moment before the HTTPS one is bound (refused) and the API
        # is started (503 until then).
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/ping", context=context, timeout=10):
                    break
            except urllib.error.HTTPError as e:
                assert e.code == 503, e
            except urllib.error.URLError as e:
                assert isinstance(e.reason, ConnectionRefusedError), e
            time.sleep(0.05)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ping", timeout=10)
        assert refused.value.code == 403
        assert refused.value.read() == f'{{"message": "TLS_REQUIRED", "https_port": {port}}}'.encode()
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/ping", context=context, timeout=10) as r:
            assert r.status == 200
            assert r.read() == b"OK"
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/info", context=context, timeout=10
        ) as r:
            info = json.loads(r.read())
            assert info["tcp_port"] == daemon.port
    finally:
        daemon.stop_and_check()
