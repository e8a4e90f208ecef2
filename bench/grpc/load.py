"""A bounded gRPC load loop against a running squalld: Publish throughput (batched bodies per
call, several calls in flight) and Subscribe throughput (one stream, RDY credit, FIN in
batches). Needs grpcio and the stubs ci/test generates (or a directory made with grpcio-tools):

    .venv/bin/python bench/grpc/load.py --address 127.0.0.1:4153 --stubs /tmp/stubs

Numbers are for the whole path, Python client included; on a small machine the client is
usually the limit, so read them as a floor for the server.
"""

import argparse
import queue
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default="127.0.0.1:4153")
    ap.add_argument("--stubs", required=True, help="directory with squall/v1/squall_pb2*.py")
    ap.add_argument("--topic", default="grpc-load")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100, help="bodies per Publish call")
    ap.add_argument("--in-flight", type=int, default=8, help="Publish calls in flight")
    ap.add_argument("--size", type=int, default=100, help="body bytes")
    ap.add_argument("--rdy", type=int, default=2500)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    args = ap.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from squall.v1 import squall_pb2 as pb
    from squall.v1 import squall_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(args.address)
    broker = pb_grpc.BrokerStub(channel)
    admin = pb_grpc.AdminStub(channel)
    admin.CreateChannel(pb.ChannelRef(topic=args.topic, channel="load"), timeout=10)
    body = b"x" * args.size
    request = pb.PublishRequest(topic=args.topic, bodies=[body] * args.batch)
    calls = args.messages // args.batch
    deadline = time.monotonic() + args.timeout_s

    started = time.monotonic()
    pending = []
    for _ in range(calls):
        if time.monotonic() > deadline:
            sys.exit("publish did not finish in time")
        pending.append(broker.Publish.future(request, timeout=args.timeout_s))
        if len(pending) >= args.in_flight:
            pending.pop(0).result()
    for f in pending:
        f.result()
    publish_s = time.monotonic() - started
    published = calls * args.batch
    print(f"publish: {published} messages of {args.size} B in {publish_s:.2f} s = "
          f"{published / publish_s:,.0f} msg/s ({calls / publish_s:,.0f} calls/s, {args.batch} per call)")

    requests = queue.Queue()
    requests.put(pb.SubscribeRequest(start=pb.Start(topic=args.topic, channel="load", rdy=args.rdy,
                                                    max_batch=1024)))

    def request_iter():
        while True:
            r = requests.get()
            if r is None:
                return
            yield r

    stream = broker.Subscribe(request_iter(), timeout=args.timeout_s)
    assert next(stream).WhichOneof("event") == "started"
    received = 0
    started = time.monotonic()
    for event in stream:
        if event.WhichOneof("event") != "deliveries":
            continue
        msgs = event.deliveries.messages
        received += len(msgs)
        requests.put(pb.SubscribeRequest(fin=pb.Settle(ids=[m.id for m in msgs])))
        if received >= published:
            break
        if time.monotonic() > deadline:
            sys.exit(f"subscribe did not finish in time ({received} of {published})")
    subscribe_s = time.monotonic() - started
    requests.put(None)
    print(f"subscribe: {received} messages in {subscribe_s:.2f} s = {received / subscribe_s:,.0f} msg/s "
          f"(RDY {args.rdy}, FIN per delivered batch)")
    channel.close()
    threading.Event().wait(0.1)


if __name__ == "__main__":
    main()
