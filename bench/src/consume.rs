//! Consumers: one thread and one blocking socket each, subscribed with a standing RDY, sending FIN
//! for every message as real consumers do. FINs are batched: everything decoded from one read is
//! answered with one write, before the next blocking read (nsq's bench_reader flushes on a
//! count threshold instead; batching per read is at least as kind to the broker).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;

use crate::publish::{new_histogram, STAMP_BYTES};
use crate::wire::{self, FrameReader, FRAME_ERROR, FRAME_MESSAGE};

/// How often a consumer blocked in `read` looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A subscribed connection that has not started reading deliveries yet.
pub struct Subscribed {
    stream: TcpStream,
    reader: FrameReader,
    pub channel_index: usize,
}

/// IDENTIFY + SUB (waiting for both `OK`s), then RDY. Deliveries may start right away; they wait
/// in the socket until `consume` runs.
pub fn subscribe(
    addr: SocketAddr,
    topic: &str,
    channel: &str,
    channel_index: usize,
    rdy: u32,
    output_buffer_size: Option<i64>,
) -> Result<Subscribed> {
    let extra = output_buffer_size.map_or(String::new(), |n| format!(",\"output_buffer_size\":{n}"));
    let stream = wire::connect(addr, "squall-bench-sub", STOP_POLL, &extra)?;
    let mut reader = FrameReader::default();
    reader.expect_ok(&stream, "IDENTIFY")?;
    std::io::Write::write_all(&mut &stream, format!("SUB {topic} {channel}\n").as_bytes())?;
    reader.expect_ok(&stream, &format!("SUB {topic} {channel}"))?;
    if rdy > 0 {
        std::io::Write::write_all(&mut &stream, format!("RDY {rdy}\n").as_bytes())?;
    }
    Ok(Subscribed {
        stream,
        reader,
        channel_index,
    })
}

/// What one consumer saw.
pub struct ConsumerStats {
    pub received: u64,
    pub last_message: Option<Instant>,
    /// Due time (from the body stamp) to arrival, ns; empty unless latency was asked for.
    pub latency_ns: Histogram<u64>,
}

/// Starts a reading thread for a subscribed connection. It adds to `counter` as it goes and
/// stops when `stop` is set; any protocol error sets `stop` for everyone.
pub fn start(
    sub: Subscribed,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    latency_base: Option<Instant>,
) -> JoinHandle<Result<ConsumerStats>> {
    std::thread::Builder::new()
        .name(format!("sub-{}", sub.channel_index))
        .spawn(move || {
            let res = run(sub, &counter, &stop, latency_base);
            if res.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            res
        })
        .expect("spawn consumer thread")
}

fn run(
    sub: Subscribed,
    counter: &AtomicU64,
    stop: &AtomicBool,
    latency_base: Option<Instant>,
) -> Result<ConsumerStats> {
    let Subscribed {
        stream, mut reader, ..
    } = sub;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut latency = new_histogram();
    let mut received = 0u64;
    let mut last_message = None;
    let mut arrived = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0u64;
        let arrived_ns = latency_base.map(|b| arrived.duration_since(b).as_nanos() as u64);
        while let Some(f) = reader.next_buffered()? {
            match f.kind {
                FRAME_MESSAGE => {
                    let Some(id) = f.message_id() else {
                        bail!("broker sent a truncated message frame");
                    };
                    wire::put_fin(&mut out, id);
                    got += 1;
                    if let Some(now_ns) = arrived_ns {
                        let body = f.message_body();
                        if body.len() >= STAMP_BYTES {
                            let due = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
                            latency.saturating_record(now_ns.saturating_sub(due).max(1));
                        }
                    }
                }
                _ if f.is_heartbeat() => out.extend_from_slice(b"NOP\n"),
                FRAME_ERROR => bail!("broker sent an error: {}", f.text().trim()),
                _ => {} // an answer to a FIN we never asked about, e.g. a late OK: ignore
            }
        }
        if got > 0 {
            received += got;
            last_message = Some(arrived);
            counter.fetch_add(got, Ordering::Relaxed);
        }
        if !out.is_empty() {
            if let Err(e) = std::io::Write::write_all(&mut &stream, &out) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                bail!("write FIN to broker: {e}");
            }
            out.clear();
        }
        reader.fill(&stream)?;
        arrived = Instant::now();
    }
    Ok(ConsumerStats {
        received,
        last_message,
        latency_ns: latency,
    })
}
