//! Channel dispatch end to end on one shard: a producer's MPUB of 200 × 200-byte messages goes
//! into a topic, is copied to each of its channels, delivered to each channel's consumer (RDY
//! 2500, so the whole batch goes out at once; at 46 KiB it is past the default 16 KiB output
//! buffer, so it is flushed in the same turn rather than on the flush timer) and FINed. One
//! channel, then a fan-out to 10.
//!
//! It runs through the in-memory runtime the core tests use (`tests/common`), so one iteration
//! is the broker's whole path for the batch: MPUB decode, message IDs, topic to channel copies,
//! in-flight bookkeeping (and scheduling its timeout scan), message frame encoding, FIN decode
//! and in-flight removal.
//! It also includes the fake runtime's share: copying the client bytes into the input buffer and
//! the flushed output to the client (two memcpys of every delivered byte), `settle`'s idle turns
//! that find nothing to do, and walking the received frames to write one FIN per message ID
//! (reused buffers, no allocation). No syscalls, no disk, and the clock does not move.
//! Throughput is messages delivered: 200 per channel per iteration.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{mpub_cmd, parse_frames, Client, Cluster, OK};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use squall_core::options::Options;

const BODY_BYTES: usize = 200;
const BATCH_MESSAGES: usize = 200;
const TOPIC: &str = "events";

/// Bytes in a message frame before its ID: size, frame type, timestamp, attempts (spec §1.4).
const FRAME_ID_OFFSET: usize = 4 + 4 + 8 + 2;

/// A broker with one topic, `channels` channels with one ready consumer each, and a producer.
struct Scenario {
    cluster: Cluster,
    producer: Client,
    consumers: Vec<Client>,
    mpub: Vec<u8>,
    /// What one client received in this round, reused across clients and rounds.
    received: Vec<u8>,
    fins: Vec<u8>,
}

impl Scenario {
    fn new(channels: usize) -> Scenario {
        let mut cluster = Cluster::single(Options::default());
        let consumers = (0..channels)
            .map(|i| {
                let c = cluster.consumer(0, TOPIC, &format!("ch{i}"));
                cluster.send(c, b"RDY 2500\n");
                c
            })
            .collect();
        let producer = cluster.connect_v2(0);
        let body = [0x5Au8; BODY_BYTES];
        let mpub = mpub_cmd(TOPIC, &vec![&body[..]; BATCH_MESSAGES]);
        let mut s = Scenario {
            cluster,
            producer,
            consumers,
            mpub,
            received: Vec::new(),
            fins: Vec::new(),
        };
        // One checked round before timing: every consumer got the whole batch and every FIN
        // was accepted (an error would have closed the consumer or left messages in flight).
        assert_eq!(s.round(), BATCH_MESSAGES * channels);
        for i in 0..channels {
            let ch = s.cluster.brokers[0].channel(TOPIC, &format!("ch{i}"));
            assert_eq!(ch.expect("channel exists").in_flight.len(), 0, "all FINed");
        }
        for &c in &s.consumers {
            assert_eq!(s.cluster.frames(c), vec![], "FIN has no reply");
        }
        s
    }

    /// Publishes one batch, lets every consumer receive it and FIN it all. Returns the number
    /// of messages delivered.
    fn round(&mut self) -> usize {
        let cluster = &mut self.cluster;
        cluster.send(self.producer, &self.mpub);
        cluster.take_bytes_into(self.producer, &mut self.received);
        assert_eq!(
            self.received,
            OK,
            "MPUB answered {:?}",
            parse_frames(&self.received)
        );
        let mut delivered = 0;
        for &c in &self.consumers {
            cluster.take_bytes_into(c, &mut self.received);
            self.fins.clear();
            let n = fins_for(&self.received, &mut self.fins);
            assert_eq!(n, BATCH_MESSAGES, "one consumer got the whole batch");
            delivered += n;
            cluster.send_no_settle(c, &self.fins);
        }
        cluster.settle();
        delivered
    }
}

/// Appends `FIN <id>\n` for every frame in `frames`, all of which must be message frames, and
/// returns how many. Reads only each frame's size, type and ID.
fn fins_for(mut frames: &[u8], fins: &mut Vec<u8>) -> usize {
    let mut count = 0;
    while !frames.is_empty() {
        let size = u32::from_be_bytes(frames[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(
            frames[4..8],
            [0, 0, 0, 2],
            "not a message: {:?}",
            parse_frames(frames)
        );
        fins.extend_from_slice(b"FIN ");
        fins.extend_from_slice(&frames[FRAME_ID_OFFSET..FRAME_ID_OFFSET + 16]);
        fins.push(b'\n');
        frames = &frames[4 + size..];
        count += 1;
    }
    count
}

fn bench_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch");
    for (name, channels) in [("mpub_200x200B_1ch", 1), ("mpub_200x200B_fanout_10ch", 10)] {
        let mut scenario = Scenario::new(channels);
        group.throughput(Throughput::Elements((BATCH_MESSAGES * channels) as u64));
        group.bench_function(name, |b| b.iter(|| scenario.round()));
    }
    group.finish();
}

criterion_group!(benches, bench_dispatch);
criterion_main!(benches);
