"""squalld's gRPC surface with real clients: grpcio (stubs from rpc/proto), grpcio's health and
reflection clients, a raw HTTP/2 client for the wire rules, and pynsq for interop with TCP."""

import asyncio
import os
import threading
import time

import grpc
import h2.errors
import h2.events
import h2.settings
import nsq
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from grpc_support import CALL_TIMEOUT_S, RawH2, Subscriber, grpc_frame, pb, pb_grpc, start_grpc_daemon
from harness import SubscribedReader, run_scenario, wait_until

MIB = 1024 * 1024
# Topics owned by shard 0 and shard 1 of two (FNV-1a of the name, as the broker hashes).


def fnv_shard(name, shards=2):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % shards


def topic_on(shard, prefix):
    for i in range(1000):
        name = f"{prefix}-{i}"
        if fnv_shard(name) == shard:
            return name
    raise AssertionError("no name found")


@pytest.fixture
def grpcd(tmp_path):
    daemon, address = start_grpc_daemon(
        tmp_path, extra_args=[f"--max-msg-size={5 * MIB}", f"--max-body-size={6 * MIB}"]
    )
    channel = grpc.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 16 * MIB)]
    )
    daemon.grpc_address = address
    daemon.channel = channel
    daemon.broker = pb_grpc.BrokerStub(channel)
    daemon.admin = pb_grpc.AdminStub(channel)
    yield daemon
    channel.close()
    daemon.stop_and_check()


def code_of(fn):
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code(), info.value.details()


def stats(d, **kw):
    return d.admin.Stats(pb.StatsRequest(**kw), timeout=CALL_TIMEOUT_S)


def channel_stats(d, topic, channel):
    for t in stats(d, topic=topic).topics:
        for c in t.channels:
            if c.name == channel:
                return c
    return None


def consume_with_pynsq(address, topic, channel, count, timeout_s=30):
    """Reads `count` messages with pynsq; returns [(id, body, attempts)]."""
    got = []

    async def scenario():
        done = asyncio.Event()

        def handler(message):
            got.append((message.id, message.body, message.attempts))
            if len(got) >= count:
                done.set()
            return True

        reader = SubscribedReader(
            topic=topic, channel=channel, nsqd_tcp_addresses=[address], message_handler=handler,
            max_in_flight=100,
        )
        try:
            await reader.subscribed
            await done.wait()
        finally:
            reader.close()

    run_scenario(scenario, timeout_s, progress={"received": got})
    return got


# --- Publish and interop (publish over gRPC, consume with pynsq) ---------------------------


def test_publish_over_grpc_consume_with_pynsq(grpcd):
    """PUB and MPUB over gRPC to topics on both shards: pynsq reads every body once, with the
    message IDs Publish returned."""
    for shard in (0, 1):
        topic = topic_on(shard, "interop")
        grpcd.admin.CreateChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S)
        sent = {}
        one = grpcd.broker.Publish(pb.PublishRequest(topic=topic, bodies=[b"single"]), timeout=CALL_TIMEOUT_S)
        sent[one.message_ids[0]] = b"single"
        bodies = [f"m-{i}".encode() for i in range(50)]
        many = grpcd.broker.Publish(pb.PublishRequest(topic=topic, bodies=bodies), timeout=CALL_TIMEOUT_S)
        assert len(many.message_ids) == 50
        sent.update(zip(many.message_ids, bodies))
        assert len(sent) == 51, "message IDs are unique"
        assert all(len(i) == 16 for i in sent)
        got = consume_with_pynsq(grpcd.address, topic, "c", 51)
        assert {i: b for i, b, _ in got} == sent
        assert all(a == 1 for _, _, a in got)


def test_deferred_publish_waits_in_the_channel(grpcd):
    topic = topic_on(1, "defer")
    grpcd.admin.CreateChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S)
    grpcd.broker.Publish(
        pb.PublishRequest(topic=topic, bodies=[b"later"], defer=Duration(seconds=1)), timeout=CALL_TIMEOUT_S
    )
    assert channel_stats(grpcd, topic, "c").deferred_count == 1
    got = consume_with_pynsq(grpcd.address, topic, "c", 1)
    assert got[0][1] == b"later"


@pytest.mark.parametrize("size_mib", [1, 2, 3, 4])
def test_large_messages(grpcd, size_mib):
    """1-4 MiB bodies are published over gRPC and read back byte for byte by pynsq."""
    topic = topic_on(size_mib % 2, f"large{size_mib}")
    grpcd.admin.CreateChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S)
    body = os.urandom(size_mib * MIB)
    grpcd.broker.Publish(pb.PublishRequest(topic=topic, bodies=[body]), timeout=CALL_TIMEOUT_S)
    got = consume_with_pynsq(grpcd.address, topic, "c", 1)
    assert got[0][1] == body


def test_publish_errors(grpcd):
    b = grpcd.broker
    assert code_of(lambda: b.Publish(pb.PublishRequest(topic="bad topic", bodies=[b"x"]), timeout=CALL_TIMEOUT_S))[0] \
        == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: b.Publish(pb.PublishRequest(topic="t"), timeout=CALL_TIMEOUT_S))[0] \
        == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: b.Publish(pb.PublishRequest(topic="t", bodies=[b""]), timeout=CALL_TIMEOUT_S))[0] \
        == grpc.StatusCode.INVALID_ARGUMENT
    # Over --max-msg-size (5 MiB) but within the gRPC message limit.
    code, details = code_of(
        lambda: b.Publish(pb.PublishRequest(topic="t", bodies=[b"x" * (5 * MIB + 1)]), timeout=CALL_TIMEOUT_S)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    # Over the gRPC message limit itself (--max-body-size plus framing).
    code, details = code_of(
        lambda: b.Publish(pb.PublishRequest(topic="t", bodies=[b"x" * 4 * MIB] * 2), timeout=CALL_TIMEOUT_S)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    assert code_of(
        lambda: b.Publish(pb.PublishRequest(topic="t", bodies=[b"x"], defer=Duration(seconds=-1)), timeout=CALL_TIMEOUT_S)
    )[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(
        lambda: b.Publish(pb.PublishRequest(topic="t", bodies=[b"x"], defer=Duration(seconds=7200)), timeout=CALL_TIMEOUT_S)
    )[0] == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing above was published.
    assert [t.name for t in stats(grpcd).topics] == []


# --- Admin -------------------------------------------------------------------------------------


def test_admin_lifecycle(grpcd):
    a = grpcd.admin
    for shard in (0, 1):
        topic = topic_on(shard, "admin")
        a.CreateTopic(pb.TopicRef(topic=topic), timeout=CALL_TIMEOUT_S)
        a.CreateChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S)
        grpcd.broker.Publish(pb.PublishRequest(topic=topic, bodies=[b"a", b"b"]), timeout=CALL_TIMEOUT_S)
        c = channel_stats(grpcd, topic, "c")
        assert (c.depth, c.message_count, c.paused) == (2, 2, False)

        a.SetPaused(pb.SetPausedRequest(topic=topic, channel="c", paused=True), timeout=CALL_TIMEOUT_S)
        assert channel_stats(grpcd, topic, "c").paused
        a.SetPaused(pb.SetPausedRequest(topic=topic, paused=True), timeout=CALL_TIMEOUT_S)
        assert stats(grpcd, topic=topic).topics[0].paused
        a.SetPaused(pb.SetPausedRequest(topic=topic, paused=False), timeout=CALL_TIMEOUT_S)
        a.SetPaused(pb.SetPausedRequest(topic=topic, channel="c", paused=False), timeout=CALL_TIMEOUT_S)
        t = stats(grpcd, topic=topic).topics[0]
        assert not t.paused and not t.channels[0].paused

        a.EmptyChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S)
        assert channel_stats(grpcd, topic, "c").depth == 0
        a.EmptyTopic(pb.TopicRef(topic=topic), timeout=CALL_TIMEOUT_S)
        a.DeleteChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S)
        assert channel_stats(grpcd, topic, "c") is None
        code, _ = code_of(lambda: a.DeleteChannel(pb.ChannelRef(topic=topic, channel="c"), timeout=CALL_TIMEOUT_S))
        assert code == grpc.StatusCode.NOT_FOUND
        a.DeleteTopic(pb.TopicRef(topic=topic), timeout=CALL_TIMEOUT_S)
        assert not stats(grpcd, topic=topic).topics
        code, _ = code_of(lambda: a.EmptyTopic(pb.TopicRef(topic=topic), timeout=CALL_TIMEOUT_S))
        assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(lambda: a.CreateTopic(pb.TopicRef(topic="no/slash"), timeout=CALL_TIMEOUT_S))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: a.CreateChannel(pb.ChannelRef(topic="t", channel=""), timeout=CALL_TIMEOUT_S))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_stats_filters_and_both_shards(grpcd):
    names = [topic_on(0, "s"), topic_on(1, "s")]
    for t in names:
        grpcd.broker.Publish(pb.PublishRequest(topic=t, bodies=[b"xyz"]), timeout=CALL_TIMEOUT_S)
    s = stats(grpcd)
    assert sorted(t.name for t in s.topics) == sorted(names)
    assert s.version == "1.3.0" and s.start_time_ns > 0
    assert all(t.message_count == 1 and t.message_bytes == 3 for t in s.topics)
    assert [t.name for t in stats(grpcd, topic=names[1]).topics] == [names[1]]


# --- gRPC rules -------------------------------------------------------------------------------


def test_unknown_methods_are_unimplemented(grpcd):
    for path in ["/squall.v1.Broker/Nope", "/squall.v1.admin/Stats", "/nothing", "/squall.v1.Admin/"]:
        call = grpcd.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        code, _ = code_of(lambda: call(b"", timeout=CALL_TIMEOUT_S))
        assert code == grpc.StatusCode.UNIMPLEMENTED, path


def test_wire_rules_with_raw_http2(grpcd):
    """Content-type, compression flags, encodings, Trailers-Only errors with a percent-encoded
    grpc-message, and grpc-status on every success."""
    raw = RawH2(grpcd.grpc_address)
    try:
        ok_body = grpc_frame(pb.TopicRef(topic="rawtopic").SerializeToString())
        sid = raw.request("/squall.v1.Admin/CreateTopic", body=ok_body)
        end = raw.stream_end(sid)
        assert end["grpc-status"] == "0"
        settings = next(e for e in raw.events if isinstance(e, h2.events.RemoteSettingsChanged))
        streams_max = settings.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS]
        assert streams_max.new_value == 1024, "a cap on concurrent streams is advertised"
        # grpc-go style content-type subtypes are accepted.
        sid = raw.request("/squall.v1.Admin/CreateTopic", content_type="application/grpc+proto", body=ok_body)
        assert raw.stream_end(sid)["grpc-status"] == "0"

        sid = raw.request("/squall.v1.Admin/CreateTopic", content_type="application/json", body=ok_body)
        resp = raw.wait_for(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid)
        assert dict(resp.headers)[b":status"] == b"415"

        sid = raw.request("/squall.v1.Admin/CreateTopic", body=grpc_frame(b"\x0a\x01t", compressed=True))
        end = raw.stream_end(sid)
        assert end["grpc-status"] == "13", end

        sid = raw.request("/squall.v1.Admin/CreateTopic", extra=[("grpc-encoding", "gzip")], body=ok_body)
        end = raw.stream_end(sid)
        assert end["grpc-status"] == "12" and end["grpc-accept-encoding"] == "identity", end

        # Trailers-Only NOT_FOUND whose message needs percent-encoding.
        body = grpc_frame(pb.TopicRef(topic="caf\u00e9").SerializeToString())
        sid = raw.request("/squall.v1.Admin/DeleteTopic", body=body)
        end = raw.stream_end(sid)
        assert end["grpc-status"] == "3" and "%C3%A9" in end["grpc-message"], end
        heads = [e for e in raw.events if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid]
        assert dict(heads[0].headers).get(b"grpc-status") == b"3", "Trailers-Only: status in the one HEADERS"

        # An oversized message is refused from its prefix alone.
        sid = raw.request("/squall.v1.Broker/Publish", body=(0).to_bytes(1, "big") + (64 * MIB).to_bytes(4, "big"),
                          end=False)
        assert raw.stream_end(sid)["grpc-status"] == "8"

        sid = raw.request("/squall.v1.Admin/Stats", extra=[("grpc-timeout", "garbage")], body=grpc_frame(b""))
        assert raw.stream_end(sid)["grpc-status"] == "13"
    finally:
        raw.close()


def test_deadline_exceeded_sends_status_and_ends_the_stream(grpcd):
    """A bidi call still open at its grpc-timeout gets DEADLINE_EXCEEDED in its trailers, then
    RST_STREAM(NO_ERROR) (the client was still sending); grpcio sees DEADLINE_EXCEEDED for a
    Watch that outlives its deadline."""
    raw = RawH2(grpcd.grpc_address)
    try:
        sid = raw.request("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                          extra=[("grpc-timeout", "200m")], end=False)
        end = raw.stream_end(sid)
        assert end["grpc-status"] == "4", end
        reset = raw.wait_for(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid)
        assert reset.error_code == h2.errors.ErrorCodes.NO_ERROR
    finally:
        raw.close()
    health = health_pb2_grpc.HealthStub(grpcd.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
    first = next(watch)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        next(watch)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_thousand_concurrent_streams(grpcd):
    """1,000 Watch streams open at once on one connection, each answered, then cancelled; 1,000
    concurrent publishes all succeed; the server keeps serving."""
    health = health_pb2_grpc.HealthStub(grpcd.channel)
    watches = [health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60) for _ in range(1000)]
    for w in watches:
        assert next(w).status == health_pb2.HealthCheckResponse.SERVING
    for w in watches:
        w.cancel()
    topic = topic_on(0, "concurrent")
    futures = [grpcd.broker.Publish.future(pb.PublishRequest(topic=topic, bodies=[b"%d" % i]), timeout=60)
               for i in range(1000)]
    ids = {f.result().message_ids[0] for f in futures}
    assert len(ids) == 1000
    assert stats(grpcd, topic=topic).topics[0].message_count == 1000


def test_cancelled_calls_leave_the_server_serving(grpcd):
    health = health_pb2_grpc.HealthStub(grpcd.channel)
    for _ in range(50):
        w = health.Watch(health_pb2.HealthCheckRequest(service="squall.v1.Broker"), timeout=30)
        next(w)
        w.cancel()
        with pytest.raises(grpc.RpcError) as info:
            next(w)
        assert info.value.code() == grpc.StatusCode.CANCELLED
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S).status == \
        health_pb2.HealthCheckResponse.SERVING


def test_rapid_reset_is_capped_and_others_are_served(grpcd):
    """A connection that opens and resets streams without end gets GOAWAY; a bystander on
    another connection is served throughout."""
    raw = RawH2(grpcd.grpc_address)
    try:
        body = grpc_frame(pb.StatsRequest().SerializeToString())
        goaway = None
        raw.sock.settimeout(0.01)
        for _ in range(200):
            try:
                for _ in range(50):
                    sid = raw.request("/squall.v1.Admin/Stats", body=body, end=False)
                    raw.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                raw.flush()
                raw.pump()
            except TimeoutError:
                pass
            except OSError:
                raw.closed = True  # reset by the server after its GOAWAY
            goaway = next((e for e in raw.events if isinstance(e, h2.events.ConnectionTerminated)), None)
            if goaway or raw.closed:
                break
        assert goaway is not None or raw.closed, "rapid resets were never stopped"
        if goaway is not None:
            assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    finally:
        raw.close()
    assert stats(grpcd).version == "1.3.0"


def test_client_that_never_reads_stalls_only_itself(grpcd):
    """A connection asks for many large answers and never reads them: the server's memory for it
    stays bounded (flow control, bounded output) and everyone else is served."""
    topic = topic_on(0, "bigstats")
    grpcd.broker.Publish(pb.PublishRequest(topic=topic, bodies=[b"x"]), timeout=CALL_TIMEOUT_S)
    for i in range(200):
        grpcd.admin.CreateChannel(pb.ChannelRef(topic=topic, channel=f"channel-with-a-long-name-{i:04}"),
                                  timeout=CALL_TIMEOUT_S)
    rss_before = rss_kib(grpcd.proc.pid)
    raw = RawH2(grpcd.grpc_address)
    try:
        body = grpc_frame(pb.StatsRequest(include_clients=True).SerializeToString())
        for _ in range(400):  # ~20 KiB per answer, ~8 MiB asked for, none of it read
            raw.request("/squall.v1.Admin/Stats", body=body)
        for _ in range(20):
            assert stats(grpcd, topic=topic).topics[0].message_count == 1
        time.sleep(0.5)
        grown_kib = rss_kib(grpcd.proc.pid) - rss_before
        assert grown_kib < 64 * 1024, f"RSS grew {grown_kib} KiB for one stalled client"
    finally:
        raw.close()
    assert stats(grpcd, topic=topic).topics[0].message_count == 1


def test_partial_requests_on_many_streams_are_bounded(grpcd):
    """A connection that starts a large request on each of 24 streams and finishes none: past
    64 MiB held for it, its calls fail RESOURCE_EXHAUSTED instead of the shard buffering
    24 x 5 MiB; the server keeps serving others."""
    raw = RawH2(grpcd.grpc_address)
    rss_before = rss_kib(grpcd.proc.pid)
    try:
        declared = 5 * MIB
        prefix = b"\x00" + declared.to_bytes(4, "big")
        streams = {raw.request("/squall.v1.Broker/Publish", body=prefix, end=False): len(prefix)
                   for _ in range(24)}
        chunk = b"x" * 16384
        refused = set()
        deadline = time.monotonic() + 30
        raw.sock.settimeout(0.005)
        while len(refused) < 4 and time.monotonic() < deadline:
            sent_any = False
            for sid, sent in streams.items():
                if sid in refused or sent >= declared:
                    continue
                room = min(raw.conn.local_flow_control_window(sid), len(chunk), declared - sent)
                if room > 0:
                    raw.conn.send_data(sid, chunk[:room])
                    streams[sid] = sent + room
                    sent_any = True
            raw.flush()
            try:
                raw.pump()
            except TimeoutError:
                pass
            for e in raw.events:
                if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    if dict(e.headers).get(b"grpc-status") == b"8":
                        refused.add(e.stream_id)
            if not sent_any and all(v >= declared for v in streams.values()):
                break
        assert refused, "no call was refused although the connection holds over 64 MiB"
        assert sum(streams.values()) > 64 * MIB
        grown_kib = rss_kib(grpcd.proc.pid) - rss_before
        assert grown_kib < 100 * 1024, f"RSS grew {grown_kib} KiB"
        assert stats(grpcd).version == "1.3.0", "others are served meanwhile"
    finally:
        raw.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- health and reflection ----------------------------------------------------------------------


def test_health_check_list_watch_and_drain(tmp_path):
    daemon, address = start_grpc_daemon(tmp_path)
    channel = grpc.insecure_channel(address)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", "squall.v1.Broker", "squall.v1.Admin"]:
            r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        code, _ = code_of(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=CALL_TIMEOUT_S))
        assert code == grpc.StatusCode.NOT_FOUND
        listed = health.List(health_pb2.HealthListRequest(), timeout=CALL_TIMEOUT_S)
        assert listed.statuses["squall.v1.Broker"].status == health_pb2.HealthCheckResponse.SERVING
        unknown = health.Watch(health_pb2.HealthCheckRequest(service="nope"), timeout=CALL_TIMEOUT_S)
        assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        unknown.cancel()

        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        daemon.proc.send_signal(15)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            next(watch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()
        daemon.stop_and_check()


def test_goaway_on_shutdown(tmp_path):
    """Graceful drain: GOAWAY(2^31-1) and a PING, then, once the PING is answered, GOAWAY with
    the last stream served; then the connection closes."""
    daemon, address = start_grpc_daemon(tmp_path)
    raw = RawH2(address)
    try:
        sid = raw.request("/squall.v1.Admin/Stats", body=grpc_frame(b""))
        assert raw.stream_end(sid)["grpc-status"] == "0"
        daemon.proc.send_signal(15)
        # hyper-h2 refuses frames after a GOAWAY, so read the frames by hand from here.
        goaways, buf = [], b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = raw.sock.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 9:
                length = int.from_bytes(buf[0:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags, payload = buf[3], buf[4], buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == 0x7:  # GOAWAY
                    goaways.append((int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF,
                                    int.from_bytes(payload[4:8], "big")))
                elif kind == 0x6 and not flags & 0x1:  # PING: answer it
                    raw.sock.sendall(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + payload)
        assert goaways[0] == (2**31 - 1, 0), goaways
        assert goaways[-1] == (sid, 0), goaways
    finally:
        raw.close()
        daemon.stop_and_check()


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection(grpcd, version):
    def ask(request):
        rpc = grpcd.channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        return list(rpc(iter([request]), timeout=CALL_TIMEOUT_S))[0]

    listed = ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {"squall.v1.Broker", "squall.v1.Admin", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names
    files = ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol="squall.v1.Broker"))
    assert len(files.file_descriptor_response.file_descriptor_proto) == 2
    missing = ask(reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto"))
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    if version == "v1alpha":
        # grpcio-reflection's own client builds a descriptor pool from the server.
        db = ProtoReflectionDescriptorDatabase(grpcd.channel)
        assert "squall.v1.Broker" in db.get_services()
        pool = descriptor_pool.DescriptorPool(db)
        service = pool.FindServiceByName("squall.v1.Broker")
        assert {m.name for m in service.methods} == {"Publish", "Subscribe"}
        assert pool.FindMessageTypeByName("squall.v1.Delivery").fields_by_name["attempts"].number == 2


# --- Subscribe -------------------------------------------------------------------------------


def start(topic, channel="c", rdy=100, **kw):
    return pb.Start(topic=topic, channel=channel, rdy=rdy, **kw)


def publish_bodies(d, topic, bodies):
    return list(d.broker.Publish(pb.PublishRequest(topic=topic, bodies=bodies), timeout=CALL_TIMEOUT_S).message_ids)


@pytest.mark.parametrize("shard", [0, 1])
def test_subscribe_delivers_batches_and_fin_settles(grpcd, shard):
    """A stream on either shard's topic gets `started`, then batched deliveries of everything
    published, in order, attempt 1; FIN empties the in-flight set; stats name it a gRPC client."""
    topic = topic_on(shard, "sub")
    sub = Subscriber(grpcd.broker, start(topic, rdy=500, max_batch=50, client_id="py-sub"))
    started = sub.started()
    assert started.max_rdy == 2500 and started.msg_timeout.seconds == 60
    ids = publish_bodies(grpcd, topic, [b"%d" % i for i in range(200)])
    got = sub.deliveries(200)
    assert [m.id for m in got] == ids
    assert [m.body for m in got] == [b"%d" % i for i in range(200)]
    assert all(m.attempts == 1 and m.timestamp_ns > 0 for m in got)
    c = channel_stats(grpcd, topic, "c")
    assert c.in_flight_count == 200
    clients = [cl for t in stats(grpcd, topic=topic, include_clients=True).topics for ch in t.channels
               for cl in ch.clients]
    assert [(cl.transport, cl.client_id, cl.in_flight_count) for cl in clients] == [("grpc", "py-sub", 200)]
    assert clients[0].remote_address.startswith("127.0.0.1:"), clients[0].remote_address
    sub.send(fin=pb.Settle(ids=[m.id for m in got]))
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while channel_stats(grpcd, topic, "c").in_flight_count:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sub.end() is None


def test_subscribe_rdy_credit_limits_unsettled(grpcd):
    topic = topic_on(1, "credit")
    sub = Subscriber(grpcd.broker, start(topic, rdy=0))
    sub.started()
    publish_bodies(grpcd, topic, [b"%d" % i for i in range(10)])
    c = channel_stats(grpcd, topic, "c")
    assert (c.depth, c.in_flight_count) == (10, 0), "RDY 0: nothing is delivered"
    sub.send(rdy=3)
    first = sub.deliveries(3)
    time.sleep(0.2)
    assert sub.events.empty(), "no more than the credit"
    assert channel_stats(grpcd, topic, "c").in_flight_count == 3
    sub.send(fin=pb.Settle(ids=[first[0].id]))
    assert len(sub.deliveries(1)) == 1
    sub.cancel()


def test_subscribe_req_touch_and_timeout(grpcd):
    """REQ with a delay parks the message in the deferred queue and redelivers it (attempt 2);
    an unsettled message times out after msg_timeout and comes back; TOUCH keeps it."""
    topic = topic_on(0, "req")
    sub = Subscriber(grpcd.broker, start(topic, rdy=10, msg_timeout=Duration(seconds=1)))
    assert sub.started().msg_timeout.seconds == 1
    [msg_id] = publish_bodies(grpcd, topic, [b"again"])
    [m] = sub.deliveries(1)
    sub.send(req=pb.Requeue(ids=[m.id], delay=Duration(nanos=300_000_000)))
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while channel_stats(grpcd, topic, "c").deferred_count != 1:
        assert time.monotonic() < deadline, "REQ with a delay did not defer"
        time.sleep(0.01)
    [again] = sub.deliveries(1)
    assert (again.id, again.attempts, again.body) == (msg_id, 2, b"again")
    # Not settled: times out (1 s) and comes back.
    [third] = sub.deliveries(1, timeout=5)
    assert third.attempts == 3
    assert channel_stats(grpcd, topic, "c").timeout_count >= 1
    # TOUCH twice across more than msg_timeout keeps it in flight, then FIN.
    for _ in range(3):
        time.sleep(0.5)
        sub.send(touch=pb.Settle(ids=[third.id]))
    time.sleep(0.3)
    assert sub.events.empty(), "a touched message is not redelivered"
    sub.send(fin=pb.Settle(ids=[third.id]))
    assert sub.end() is None
    c = channel_stats(grpcd, topic, "c")
    assert (c.in_flight_count, c.requeue_count) == (0, 1)


def test_subscribe_command_errors_are_not_fatal(grpcd):
    topic = topic_on(1, "cmderr")
    sub = Subscriber(grpcd.broker, start(topic, rdy=10))
    sub.started()
    unknown = b"0123456789abcdef"
    expectations = [
        (dict(fin=pb.Settle(ids=[unknown])), "E_FIN_FAILED", [unknown]),
        (dict(req=pb.Requeue(ids=[unknown])), "E_REQ_FAILED", [unknown]),
        (dict(touch=pb.Settle(ids=[unknown])), "E_TOUCH_FAILED", [unknown]),
        (dict(fin=pb.Settle(ids=[b"short"])), "E_INVALID", [b"short"]),
        (dict(rdy=1_000_000), "E_INVALID", []),
        (dict(start=start(topic)), "E_INVALID", []),
        (dict(req=pb.Requeue(ids=[unknown], delay=Duration(seconds=10**6))), "E_INVALID", [unknown]),
        ({}, "E_INVALID", []),
    ]
    for request, code, ids in expectations:
        sub.send(**request)
        event = sub.next()
        assert event is not None and event.WhichOneof("event") == "error", (request, event, sub.error)
        assert (event.error.code, list(event.error.ids)) == (code, ids), event
    # Still subscribed: messages flow.
    publish_bodies(grpcd, topic, [b"after errors"])
    assert sub.deliveries(1)[0].body == b"after errors"
    assert sub.end() is None


def test_subscribe_refusals(grpcd):
    def refused(first, expected):
        requests = iter([first])
        with pytest.raises(grpc.RpcError) as info:
            list(grpcd.broker.Subscribe(requests, timeout=CALL_TIMEOUT_S))
        assert info.value.code() == expected, info.value.details()

    refused(pb.SubscribeRequest(rdy=5), grpc.StatusCode.FAILED_PRECONDITION)
    refused(pb.SubscribeRequest(fin=pb.Settle(ids=[b"0123456789abcdef"])), grpc.StatusCode.FAILED_PRECONDITION)
    refused(pb.SubscribeRequest(start=start("bad topic")), grpc.StatusCode.INVALID_ARGUMENT)
    refused(pb.SubscribeRequest(start=start("t", channel="bad/channel")), grpc.StatusCode.INVALID_ARGUMENT)
    refused(pb.SubscribeRequest(start=start("t", msg_timeout=Duration(nanos=500_000_000))),
            grpc.StatusCode.INVALID_ARGUMENT)
    refused(pb.SubscribeRequest(start=start("t", rdy=100_000)), grpc.StatusCode.INVALID_ARGUMENT)
    assert stats(grpcd).version == "1.3.0"


def test_subscribe_deadline_and_cancel_redeliver(grpcd):
    """A stream past its deadline ends DEADLINE_EXCEEDED; a cancelled stream's unsettled
    messages go to the channel's next consumer once their msg_timeout passes."""
    topic = topic_on(0, "cancel")
    timed = Subscriber(grpcd.broker, start(topic, channel="other"), timeout=0.5)
    timed.started()
    assert timed.wait_end().code() == grpc.StatusCode.DEADLINE_EXCEEDED

    first = Subscriber(grpcd.broker, start(topic, rdy=10, msg_timeout=Duration(seconds=1)))
    first.started()
    publish_bodies(grpcd, topic, [b"x", b"y"])
    assert len(first.deliveries(2)) == 2
    first.cancel()
    second = Subscriber(grpcd.broker, start(topic, rdy=10))
    second.started()
    got = second.deliveries(2, timeout=5)
    assert sorted(m.body for m in got) == [b"x", b"y"] and all(m.attempts == 2 for m in got)
    assert second.end() is None


@pytest.mark.parametrize("size_mib", [1, 4])
def test_subscribe_large_messages(grpcd, size_mib):
    topic = topic_on(size_mib % 2, f"sublarge{size_mib}")
    sub = Subscriber(grpcd.broker, start(topic, rdy=4))
    sub.started()
    bodies = [os.urandom(size_mib * MIB) for _ in range(2)]
    for body in bodies:
        publish_bodies(grpcd, topic, [body])
    got = sub.deliveries(2, timeout=30)
    assert [m.body for m in got] == bodies
    sub.send(fin=pb.Settle(ids=[m.id for m in got]))
    assert sub.end() is None


def test_publish_with_pynsq_consume_over_grpc(grpcd):
    """pynsq PUB and MPUB; a gRPC subscriber gets every body."""
    for shard in (0, 1):
        topic = topic_on(shard, "pynsq-to-grpc")
        sub = Subscriber(grpcd.broker, start(topic, rdy=1000))
        sub.started()
        bodies = [f"p-{i}".encode() for i in range(300)]

        async def scenario():
            writer = nsq.Writer([grpcd.address])
            await wait_until(lambda: any(c.connected() for c in writer.conns.values()))
            done = asyncio.get_running_loop().create_future()
            results = []

            def finish(conn, data):
                results.append(data)
                if len(results) == 101 and not done.done():
                    done.set_result(True)

            writer.pub(topic, bodies[0], callback=finish)
            for i in range(1, 300, 3):
                writer.mpub(topic, bodies[i:i + 3], callback=finish)
            await done
            for conn in list(writer.conns.values()):
                conn.close()
            assert all(r == b"OK" for r in results), results[:3]

        run_scenario(scenario, 30)
        got = sub.deliveries(300)
        assert sorted(m.body for m in got) == sorted(bodies)
        sub.send(fin=pb.Settle(ids=[m.id for m in got]))
        assert sub.end() is None


def test_tcp_and_grpc_consumers_share_a_channel(grpcd):
    """A pynsq Reader and a gRPC stream on one channel split its messages: together they get
    each message exactly once, and both get some."""
    topic = topic_on(1, "shared")
    sub = Subscriber(grpcd.broker, start(topic, rdy=5))
    sub.started()
    total = 400
    grpc_got = []
    tcp_got = []
    stop = threading.Event()

    def grpc_consumer():
        while not stop.is_set():
            try:
                event = sub.next(timeout=0.1)
            except Exception:
                continue
            if event is None:
                return
            if event.WhichOneof("event") == "deliveries":
                msgs = list(event.deliveries.messages)
                grpc_got.extend(m.body for m in msgs)
                sub.send(fin=pb.Settle(ids=[m.id for m in msgs]))

    thread = threading.Thread(target=grpc_consumer, daemon=True)
    thread.start()

    async def scenario():
        done = asyncio.Event()

        def handler(message):
            tcp_got.append(message.body)
            if len(tcp_got) + len(grpc_got) >= total:
                done.set()
            return True

        reader = SubscribedReader(topic=topic, channel="c", nsqd_tcp_addresses=[grpcd.address],
                                  message_handler=handler, max_in_flight=5)
        try:
            await reader.subscribed
            publish_bodies(grpcd, topic, [b"%d" % i for i in range(total)])
            while len(tcp_got) + len(grpc_got) < total:
                await asyncio.sleep(0.01)
        finally:
            reader.close()

    run_scenario(scenario, 60, progress={"tcp": tcp_got, "grpc": len(grpc_got)})
    stop.set()
    thread.join(5)
    assert sorted(tcp_got + grpc_got) == sorted(b"%d" % i for i in range(total)), "each message once"
    assert tcp_got and grpc_got, (len(tcp_got), len(grpc_got))
    sub.cancel()


def test_subscribe_ends_unavailable_on_shutdown(tmp_path):
    daemon, address = start_grpc_daemon(tmp_path)
    channel = grpc.insecure_channel(address)
    try:
        sub = Subscriber(pb_grpc.BrokerStub(channel), start(topic_on(0, "drain")))
        sub.started()
        daemon.proc.send_signal(15)
        assert sub.wait_end().code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()
        daemon.stop_and_check()
