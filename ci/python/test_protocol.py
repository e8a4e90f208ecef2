"""Byte-level checks over a raw socket: IDENTIFY negotiation, nsqd's Go flag syntax taking
effect, and a clean SIGTERM exit."""

import json
import signal
import subprocess

from harness import EXIT_TIMEOUT_S, FRAME_ERROR, FRAME_RESPONSE, RawConn, start_daemon

# nsqd v1.3.0's reply to IDENTIFY {"feature_negotiation":true} with default flags and no TLS
# cert (spec §4.1): compact JSON, keys in this order. nsqd master appends the topology keys.
DEFAULT_REPLY_V1_3_0 = (
    b'{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,'
    b'"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,'
    b'"sample_rate":0,"auth_required":false,"output_buffer_size":16384,'
    b'"output_buffer_timeout":250}'
)
DEFAULT_REPLY_MASTER = DEFAULT_REPLY_V1_3_0[:-1] + b',"topology_region":"","topology_zone":""}'
REPLY_KEYS_V1_3_0 = [
    "max_rdy_count", "version", "max_msg_timeout", "msg_timeout", "tls_v1", "deflate",
    "deflate_level", "max_deflate_level", "snappy", "sample_rate", "auth_required",
    "output_buffer_size", "output_buffer_timeout",
]


def identify_reply(conn, **fields):
    frame_type, data = conn.identify(feature_negotiation=True, **fields)
    assert frame_type == FRAME_RESPONSE, data
    return data, json.loads(data, object_pairs_hook=lambda pairs: pairs)


def test_identify_feature_negotiation(squalld):
    conn = RawConn(squalld.port)
    try:
        raw, pairs = identify_reply(
            conn, client_id="ci", hostname="ci.local", user_agent="squall-ci/1.0"
        )
        keys = [k for k, _ in pairs]
        reply = dict(pairs)
        assert keys[: len(REPLY_KEYS_V1_3_0)] == REPLY_KEYS_V1_3_0, keys
        assert reply["max_rdy_count"] == 2500
        assert reply["version"] == "1.3.0"
        assert reply["max_msg_timeout"] == 900_000
        assert reply["msg_timeout"] == 60_000
        assert reply["tls_v1"] is False
        assert reply["snappy"] is False
        assert reply["deflate"] is False
        assert reply["deflate_level"] == 6
        assert reply["max_deflate_level"] == 6
        assert reply["sample_rate"] == 0
        assert reply["auth_required"] is False
        assert reply["output_buffer_size"] == 16384
        assert reply["output_buffer_timeout"] == 250
        assert raw in (DEFAULT_REPLY_V1_3_0, DEFAULT_REPLY_MASTER), raw

        # Per-client values are echoed; the connection then works as usual.
        _, pairs = identify_reply(conn, msg_timeout=5000, output_buffer_timeout=100)
        reply = dict(pairs)
        assert (reply["msg_timeout"], reply["output_buffer_timeout"]) == (5000, 100)
        conn.command("PUB identify-topic", b"x")
        assert conn.read_frame() == (FRAME_RESPONSE, b"OK")
    finally:
        conn.close()


def test_identify_without_feature_negotiation_says_ok(squalld):
    conn = RawConn(squalld.port)
    try:
        assert conn.identify(client_id="ci") == (FRAME_RESPONSE, b"OK")
    finally:
        conn.close()


def test_go_flag_syntax(tmp_path):
    """nsqd's scripts use Go flag syntax: `-flag value`, `-flag=value`, `--flag=value`,
    `-bool=false`; every form takes effect."""
    daemon = start_daemon(
        tmp_path,
        ["-mem-queue-size", "5", "-max-rdy-count=50", "--msg-timeout=2s", "-snappy=false"],
    )
    try:
        conn = RawConn(daemon.port)
        try:
            _, pairs = identify_reply(conn, snappy=True)
            reply = dict(pairs)
            assert reply["max_rdy_count"] == 50
            assert reply["msg_timeout"] == 2000
            assert reply["snappy"] is False
            # The limit is enforced, not just advertised (spec §11.1 TestMaxRdyCount).
            conn.command("SUB flags ch")
            assert conn.read_frame() == (FRAME_RESPONSE, b"OK")
            conn.command("RDY 51")
            assert conn.read_frame() == (FRAME_ERROR, b"E_INVALID RDY count 51 out of range 0-50")
        finally:
            conn.close()
    finally:
        daemon.stop_and_check()


def test_sigterm_exits_zero(tmp_path):
    """SIGTERM with a producer and a subscribed consumer connected: every client connection is
    closed and the process exits 0 within 10 s (spec §7.3)."""
    daemon = start_daemon(tmp_path)
    producer = RawConn(daemon.port)
    consumer = RawConn(daemon.port)
    try:
        producer.command("PUB shutdown-topic", b"pending")
        assert producer.read_frame() == (FRAME_RESPONSE, b"OK")
        consumer.command("SUB shutdown-topic ch")
        assert consumer.read_frame() == (FRAME_RESPONSE, b"OK")

        daemon.proc.send_signal(signal.SIGTERM)
        try:
            rc = daemon.proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait(timeout=EXIT_TIMEOUT_S)
            raise AssertionError(f"no exit within {EXIT_TIMEOUT_S}s of SIGTERM:\n{daemon.log_tail()}")
        assert rc == 0, f"exit code {rc} after SIGTERM. Log:\n{daemon.log_tail()}"
        assert producer.read_until_eof(timeout_s=2.0), "producer connection left open"
        assert consumer.read_until_eof(timeout_s=2.0), "consumer connection left open"
    finally:
        producer.close()
        consumer.close()
        daemon.stop()
