"""squalld serves the real pynsq client (nsq.Writer, nsq.Reader on tornado) as nsqd would."""

import asyncio
import os
import shutil
import time

from harness import (
    LISTEN_TIMEOUT_S,
    Daemon,
    SubscribedReader,
    close_writer,
    connected_writer,
    free_port,
    publish,
    run_scenario,
    squalld_path,
)


def assert_all_ok(results):
    bad = [r for r in results if r != b"OK"]
    assert not bad, f"{len(bad)} publishes failed, first: {bad[0]!r}"


def test_roundtrip_100k_four_topics(squalld):
    """100,000 messages over 4 topics (PUB and MPUB, pipelined) come back exactly once each,
    on their first attempt. The producer stays at most `backlog_max` messages ahead of the
    consumers, so no queue nears --mem-queue-size (10,000): this is about the round trip, not
    about overflowing to disk."""
    topics = [f"roundtrip-{i}" for i in range(4)]
    per_topic = 25_000
    singles = 500  # per topic, by PUB; the rest by MPUB
    batch = 100
    window = 64  # publish commands in flight at once
    backlog_max = 2_000  # messages published but not yet received, all topics together
    total = per_topic * len(topics)
    progress = {
        "published": 0, "received": 0, "unique": 0, "duplicates": 0, "redelivered": 0, "foreign": 0,
    }

    async def scenario():
        seen = {t: set() for t in topics}
        all_received = asyncio.Event()
        room = asyncio.Event()  # set whenever the backlog is at most backlog_max
        room.set()

        def handler_for(topic):
            prefix = f"{topic}-".encode()

            def handler(message):
                progress["received"] += 1
                if message.attempts != 1:
                    progress["redelivered"] += 1
                if not message.body.startswith(prefix):
                    progress["foreign"] += 1
                elif message.body in seen[topic]:
                    progress["duplicates"] += 1
                else:
                    seen[topic].add(message.body)
                    progress["unique"] += 1
                    if progress["published"] - progress["unique"] <= backlog_max:
                        room.set()
                    if progress["unique"] == total:
                        all_received.set()
                return True

            return handler

        readers = [
            SubscribedReader(
                topic=t,
                channel="all",
                message_handler=handler_for(t),
                nsqd_tcp_addresses=[squalld.address],
                max_in_flight=200,
            )
            for t in topics
        ]
        await asyncio.gather(*(r.subscribed for r in readers))
        writer = await connected_writer(squalld.address)

        # Interleave the topics so all four are busy at once.
        commands = []
        for n in range(singles):
            for t in topics:
                commands.append(("pub", t, f"{t}-{n}".encode()))
        for start in range(singles, per_topic, batch):
            for t in topics:
                bodies = [f"{t}-{n}".encode() for n in range(start, min(start + batch, per_topic))]
                commands.append(("mpub", t, bodies))

        in_flight = asyncio.Semaphore(window)
        answers = []
        for kind, topic, payload in commands:
            while progress["published"] - progress["unique"] > backlog_max:
                room.clear()
                await room.wait()
            await in_flight.acquire()
            fut = publish(writer, kind, topic, payload)
            fut.add_done_callback(lambda _f: in_flight.release())
            answers.append(fut)
            progress["published"] += 1 if kind == "pub" else len(payload)
        assert_all_ok(await asyncio.gather(*answers))

        await all_received.wait()
        # Anything still arriving now is a duplicate or a redelivery.
        await asyncio.sleep(1.0)
        for r in readers:
            r.close()
        close_writer(writer)
        return {t: len(s) for t, s in seen.items()}

    counts = run_scenario(scenario, timeout_s=120, progress=progress)
    assert counts == {t: per_topic for t in topics}
    assert progress["duplicates"] == 0, progress
    assert progress["redelivered"] == 0, progress
    assert progress["foreign"] == 0, progress
    assert progress["received"] == total, progress


def test_pub_sub_single(squalld):
    """A message published before any consumer exists is delivered after SUB, once, with
    attempts 1, its body, a 16-hex-digit ID and a current timestamp (spec §11.1 TestBasicV2)."""

    async def scenario():
        writer = await connected_writer(squalld.address)
        published_ns = time.time_ns()
        assert await publish(writer, "pub", "single", b"hello squall") == b"OK"
        got = asyncio.get_running_loop().create_future()

        def handler(message):
            if not got.done():
                got.set_result(message)
            return True

        reader = SubscribedReader(
            topic="single", channel="ch", message_handler=handler,
            nsqd_tcp_addresses=[squalld.address],
        )
        message = await got
        await asyncio.sleep(0.3)  # no second delivery
        reader.close()
        close_writer(writer)
        return message, published_ns

    message, published_ns = run_scenario(scenario, timeout_s=20)
    assert message.body == b"hello squall"
    assert message.attempts == 1
    assert len(message.id) == 16 and all(c in b"0123456789abcdef" for c in message.id)
    assert abs(message.timestamp - published_ns) < 10 * 10**9


def test_requeue_redelivers(squalld):
    """REQ with no delay puts the message back at once; the redelivery has attempts 2."""

    async def scenario():
        deliveries = []
        second = asyncio.get_running_loop().create_future()

        def handler(message):
            deliveries.append((message.id, message.body, message.attempts))
            if len(deliveries) == 1:
                message.requeue(delay=0, backoff=False)
                return None
            if not second.done():
                second.set_result(True)
            return True

        reader = SubscribedReader(
            topic="requeue", channel="ch", message_handler=handler,
            nsqd_tcp_addresses=[squalld.address],
        )
        await reader.subscribed
        writer = await connected_writer(squalld.address)
        assert await publish(writer, "pub", "requeue", b"again") == b"OK"
        await second
        await asyncio.sleep(0.3)
        reader.close()
        close_writer(writer)
        return deliveries

    deliveries = run_scenario(scenario, timeout_s=20)
    assert len(deliveries) == 2, deliveries
    (id1, body1, attempts1), (id2, body2, attempts2) = deliveries
    assert (body1, attempts1) == (b"again", 1)
    assert (body2, attempts2) == (b"again", 2)
    assert id1 == id2


def test_multiple_channels_fanout(squalld):
    """Every channel of a topic gets its own copy of every message."""
    count = 200

    async def scenario():
        received = {"c1": [], "c2": []}
        done = asyncio.Event()

        def handler_for(channel):
            def handler(message):
                received[channel].append(message.body)
                if all(len(v) >= count for v in received.values()):
                    done.set()
                return True

            return handler

        readers = [
            SubscribedReader(
                topic="fanout", channel=ch, message_handler=handler_for(ch),
                nsqd_tcp_addresses=[squalld.address], max_in_flight=50,
            )
            for ch in received
        ]
        await asyncio.gather(*(r.subscribed for r in readers))
        writer = await connected_writer(squalld.address)
        bodies = [f"fan-{n}".encode() for n in range(count)]
        results = [await publish(writer, "mpub", "fanout", bodies[: count // 2])]
        for body in bodies[count // 2:]:
            results.append(await publish(writer, "pub", "fanout", body))
        assert_all_ok(results)
        await done.wait()
        await asyncio.sleep(0.5)
        for r in readers:
            r.close()
        close_writer(writer)
        return bodies, received

    bodies, received = run_scenario(scenario, timeout_s=30)
    for channel, got in received.items():
        assert sorted(got) == sorted(bodies), f"channel {channel}: {len(got)} messages"


def test_dpub_deferred(squalld):
    """DPUB 500 ms is not delivered before the deferral has passed (~450 ms allowing for clock
    granularity), while a PUB sent right after it is delivered at once."""

    async def scenario():
        arrivals = {}
        both = asyncio.Event()

        def handler(message):
            arrivals[message.body] = time.monotonic()
            if len(arrivals) == 2:
                both.set()
            return True

        reader = SubscribedReader(
            topic="deferred", channel="ch", message_handler=handler,
            nsqd_tcp_addresses=[squalld.address], max_in_flight=10,
        )
        await reader.subscribed
        writer = await connected_writer(squalld.address)
        sent = time.monotonic()
        deferred = publish(writer, "dpub", "deferred", b"later", delay_ms=500)
        immediate = publish(writer, "pub", "deferred", b"now")
        assert await deferred == b"OK"
        assert await immediate == b"OK"
        await both.wait()
        reader.close()
        close_writer(writer)
        return sent, arrivals

    sent, arrivals = run_scenario(scenario, timeout_s=20)
    assert arrivals[b"later"] - sent >= 0.45, arrivals[b"later"] - sent
    assert arrivals[b"later"] - sent < 5.0
    assert arrivals[b"now"] < arrivals[b"later"]


def test_symlink_named_nsqd(tmp_path):
    """A symlink named `nsqd` to squalld, first on PATH, is a working nsqd for scripts that
    use Go flag syntax (`-tcp-address=...`, `-http-address=`, the deprecated bare `-verbose`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nsqd").symlink_to(squalld_path())
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shutil.which("nsqd", path=env["PATH"]) == str(bin_dir / "nsqd")

    port = free_port()
    daemon = Daemon(
        ["nsqd", f"-tcp-address=127.0.0.1:{port}", "-http-address=", "-verbose"],
        port, tmp_path, env=env,
    )
    try:
        assert daemon.wait_listening(), (
            f"nsqd (symlink) did not listen within {LISTEN_TIMEOUT_S}s. Log:\n{daemon.log_tail()}"
        )

        async def scenario():
            writer = await connected_writer(daemon.address)
            assert await publish(writer, "pub", "via-symlink", b"drop-in") == b"OK"
            got = asyncio.get_running_loop().create_future()

            def handler(message):
                if not got.done():
                    got.set_result((message.body, message.attempts))
                return True

            reader = SubscribedReader(
                topic="via-symlink", channel="ch", message_handler=handler,
                nsqd_tcp_addresses=[daemon.address],
            )
            result = await got
            reader.close()
            close_writer(writer)
            return result

        assert run_scenario(scenario, timeout_s=20) == (b"drop-in", 1)
    finally:
        daemon.stop_and_check()

