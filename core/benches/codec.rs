//! The NSQ V2 codec on the inputs a busy broker sees most: a producer's pipeline of PUBs with
//! 200-byte bodies, one MPUB of 200 such bodies, a consumer's pipeline of FINs and of `RDY 2500`,
//! and the frames going back (message frame headers with their bodies, `OK` responses).
//!
//! Decoding walks a buffer of many commands exactly as the broker's input loop does: `decode`
//! from the current offset, step over the bytes it consumed, repeat. Every command is whole, so
//! the numbers are the parse itself (line split, checks, body ranges, the topic `Name`, MPUB's
//! `Vec` of ranges), without the "need more bytes" retries a trickling client causes. Encoding
//! appends to a reused buffer, as a connection batches frames into one write.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use squall_core::message::{Message, MessageId};
use squall_core::options::Options;
use squall_core::protocol::{decode, encode_message_header, encode_response, ClientState, DecodeCtx};

const BODY_BYTES: usize = 200;
/// Messages in the MPUB, and message frames per encode iteration.
const BATCH_MESSAGES: usize = 200;
/// Commands in each small-command pipeline buffer.
const PIPELINE_COMMANDS: usize = 1000;
const TOPIC: &str = "events";

fn sized(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn pub_pipeline() -> Vec<u8> {
    let body = [0x5Au8; BODY_BYTES];
    let mut out = Vec::new();
    for _ in 0..PIPELINE_COMMANDS {
        out.extend_from_slice(format!("PUB {TOPIC}\n").as_bytes());
        out.extend(sized(&body));
    }
    out
}

fn mpub() -> Vec<u8> {
    let body = [0x5Au8; BODY_BYTES];
    let mut inner = (BATCH_MESSAGES as u32).to_be_bytes().to_vec();
    for _ in 0..BATCH_MESSAGES {
        inner.extend(sized(&body));
    }
    let mut out = format!("MPUB {TOPIC}\n").into_bytes();
    out.extend(sized(&inner));
    out
}

fn fin_pipeline() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..PIPELINE_COMMANDS as u64 {
        out.extend_from_slice(b"FIN ");
        out.extend_from_slice(&MessageId::from_u64(0x0a00_0000_0000_0000 + i).0);
        out.push(b'\n');
    }
    out
}

fn rdy_pipeline() -> Vec<u8> {
    b"RDY 2500\n".repeat(PIPELINE_COMMANDS)
}

/// Decodes every command in `buf`, as the broker's input loop does. Returns the count so the
/// setup can check that the whole buffer decoded.
fn decode_all(buf: &[u8], ctx: &DecodeCtx<'_>) -> usize {
    let mut at = 0;
    let mut commands = 0;
    while at < buf.len() {
        let (command, consumed) = decode(&buf[at..], ctx)
            .expect("valid command")
            .expect("whole command");
        std::hint::black_box(command);
        at += consumed;
        commands += 1;
    }
    commands
}

fn bench_decode(c: &mut Criterion) {
    let options = Options::default();
    // A producer never subscribes; FIN and RDY are only allowed once subscribed.
    let producer = DecodeCtx {
        state: ClientState::Init,
        heartbeats_disabled: false,
        tls_required_unmet: false,
        options: &options,
    };
    let consumer = DecodeCtx {
        state: ClientState::Subscribed,
        ..producer
    };
    let (pubs, mpub, fins, rdys) = (pub_pipeline(), mpub(), fin_pipeline(), rdy_pipeline());
    // Throughput in commands (messages, for MPUB): decoding never reads a body, only its size
    // field, so its cost follows the count, not the bytes.
    let cases = [
        // (name, pipeline buffer, state, commands in it, messages per command)
        ("pub_200B_x1000", &pubs, &producer, PIPELINE_COMMANDS, 1),
        ("mpub_200x200B", &mpub, &producer, 1, BATCH_MESSAGES),
        ("fin_x1000", &fins, &consumer, PIPELINE_COMMANDS, 1),
        ("rdy_2500_x1000", &rdys, &consumer, PIPELINE_COMMANDS, 1),
    ];

    let mut group = c.benchmark_group("codec/decode");
    for (name, buf, ctx, commands, messages_per_command) in cases {
        assert_eq!(decode_all(buf, ctx), commands, "{name} decodes whole");
        group.throughput(Throughput::Elements((commands * messages_per_command) as u64));
        group.bench_function(name, |b| b.iter(|| decode_all(std::hint::black_box(buf), ctx)));
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let body = Bytes::from(vec![0x5Au8; BODY_BYTES]);
    let messages: Vec<Message> = (0..BATCH_MESSAGES as u64)
        .map(|i| Message {
            id: MessageId::from_u64(0x0a00_0000_0000_0000 + i),
            timestamp_ns: 1_700_000_000_000_000_000 + i as i64,
            attempts: 1,
            body: body.clone(),
        })
        .collect();
    let mut out = Vec::new();

    let mut group = c.benchmark_group("codec/encode");
    // The header then the body copied behind it, as a delivery writes a small body.
    group.throughput(Throughput::Elements(BATCH_MESSAGES as u64));
    group.bench_function("message_200B_x200", |b| {
        b.iter(|| {
            out.clear();
            for msg in std::hint::black_box(&messages) {
                out.extend_from_slice(&encode_message_header(msg));
                out.extend_from_slice(&msg.body);
            }
            out.len()
        })
    });
    group.throughput(Throughput::Elements(PIPELINE_COMMANDS as u64));
    group.bench_function("response_ok_x1000", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..PIPELINE_COMMANDS {
                encode_response(&mut out, std::hint::black_box(b"OK"));
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
