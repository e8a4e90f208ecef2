//! Publishers: one thread and one blocking socket per connection, each keeping a window of
//! pipelined PUB or MPUB commands outstanding (window 1 is nsq's bench_writer: send, wait for OK).
//!
//! With a fixed rate the schedule is open-loop: message k of a connection is due at
//! `start + k / rate`, whatever happened to message k-1. A stalled broker makes messages late
//! rather than unsent, and with `stamp` each body carries its due time, so a consumer that
//! measures latency from it sees the stall (no coordinated omission).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;

use crate::wire::{self, FrameReader, FRAME_ERROR, FRAME_RESPONSE};

/// The shortest sleep between sends at a fixed rate: what is due within it leaves together.
/// It bounds the client's wakeups (and CPU) at high rates, and adds at most this much to the
/// measured latency (reported as send lag).
const SEND_TICK: Duration = Duration::from_micros(100);

/// Bytes of a stamped body: due time and actual send time, ns since the run's clock base.
pub const STAMP_BYTES: usize = 16;

#[derive(Clone, Debug)]
pub struct PubSpec {
    pub addr: SocketAddr,
    /// Connection `i` publishes to `topics[i % topics.len()]`.
    pub topics: Vec<String>,
    pub connections: usize,
    /// Messages per command: 1 sends PUB, more send MPUB.
    pub batch: usize,
    pub size: usize,
    /// Commands in flight per connection.
    pub window: usize,
    /// Messages per second over all connections; 0 publishes as fast as the broker answers.
    pub rate: f64,
    pub duration: Duration,
    /// Total messages (rounded up to whole batches per connection); 0 bounds by time only.
    pub count: u64,
    /// Write due and send times into each body (needs `size >= STAMP_BYTES`).
    pub stamp: bool,
}

/// What one connection did.
pub struct ConnStats {
    /// Messages the broker acknowledged.
    pub acked: u64,
    pub finished: Instant,
    /// How late commands left against their schedule, ns (fixed rate only).
    pub send_lag_ns: Histogram<u64>,
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant figures; anything beyond saturates into the top bucket.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("static histogram bounds")
}

/// Connects every publisher (so an unreachable broker fails before any load starts), then starts
/// one thread each. `base` is the clock stamps are measured from.
pub fn start(
    spec: &PubSpec,
    base: Instant,
    stop: &Arc<AtomicBool>,
) -> Result<(Instant, Vec<JoinHandle<Result<ConnStats>>>)> {
    if spec.connections == 0 || spec.batch == 0 || spec.window == 0 || spec.topics.is_empty() {
        bail!("connections, batch, window and topics must all be at least 1");
    }
    if spec.stamp && spec.size < STAMP_BYTES {
        bail!("latency runs need --size of at least {STAMP_BYTES} bytes");
    }
    let mut conns = Vec::with_capacity(spec.connections);
    for i in 0..spec.connections {
        let s = wire::connect(spec.addr, "squall-bench-pub", wire::IO_TIMEOUT, "")?;
        let mut r = FrameReader::default();
        r.expect_ok(&s, "IDENTIFY")?;
        conns.push((i, s, r));
    }
    let batches_total = spec.count.div_ceil(spec.batch as u64);
    let per_conn_batches = batches_total.div_ceil(spec.connections as u64);
    let quota = if spec.count == 0 {
        u64::MAX
    } else {
        per_conn_batches * spec.batch as u64
    };
    let rate = spec.rate / spec.connections as f64;
    let start = Instant::now();
    let handles = conns
        .into_iter()
        .map(|(i, s, r)| {
            let topic = spec.topics[i % spec.topics.len()].clone();
            let (spec, stop) = (spec.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("pub-{i}"))
                .spawn(move || {
                    let job = Job {
                        spec: &spec,
                        topic: &topic,
                        quota,
                        rate,
                        base,
                        start,
                        stop: &stop,
                    };
                    let res = job.run(s, r);
                    if res.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    res
                })
                .expect("spawn publisher thread")
        })
        .collect();
    Ok((start, handles))
}

struct Job<'a> {
    spec: &'a PubSpec,
    topic: &'a str,
    quota: u64,
    /// Messages per second for this connection; 0 = unlimited.
    rate: f64,
    base: Instant,
    start: Instant,
    stop: &'a AtomicBool,
}

impl Job<'_> {
    /// When the command that brings this connection to `msgs` messages is due.
    fn due(&self, msgs: u64) -> Instant {
        self.start + Duration::from_secs_f64(msgs as f64 / self.rate)
    }

    fn run(&self, s: TcpStream, mut r: FrameReader) -> Result<ConnStats> {
        let spec = self.spec;
        let body = vec![b'a'; spec.size];
        let mut template = Vec::new();
        let body_offsets = if spec.batch == 1 {
            wire::put_pub(&mut template, self.topic, &body);
            vec![template.len() - body.len()]
        } else {
            wire::put_mpub(&mut template, self.topic, &body, spec.batch)
        };
        let batch = spec.batch as u64;
        let deadline = self.start + spec.duration;
        let mut out = Vec::with_capacity(template.len() * spec.window.min(1024));
        let mut lag = new_histogram();
        let (mut sent, mut acked, mut outstanding) = (0u64, 0u64, 0usize);
        loop {
            let now = Instant::now();
            let sending = !self.stop.load(Ordering::Relaxed) && now < deadline && sent < self.quota;
            if !sending && outstanding == 0 {
                break;
            }
            if sending {
                out.clear();
                let mut n = 0u64;
                while outstanding + (n as usize) < spec.window && sent + (n + 1) * batch <= self.quota {
                    let msgs = sent + (n + 1) * batch;
                    let due = if self.rate > 0.0 {
                        let due = self.due(msgs);
                        if due > now {
                            break;
                        }
                        lag.saturating_record((now - due).as_nanos() as u64);
                        due
                    } else {
                        now
                    };
                    let at = out.len();
                    out.extend_from_slice(&template);
                    if spec.stamp {
                        let due_ns = due.duration_since(self.base).as_nanos() as u64;
                        let now_ns = now.duration_since(self.base).as_nanos() as u64;
                        for &off in &body_offsets {
                            let b = &mut out[at + off..at + off + STAMP_BYTES];
                            b[..8].copy_from_slice(&due_ns.to_le_bytes());
                            b[8..].copy_from_slice(&now_ns.to_le_bytes());
                        }
                    }
                    n += 1;
                }
                if n > 0 {
                    (&s).write_all_ctx(&out)?;
                    outstanding += n as usize;
                    sent += n * batch;
                }
            }
            while let Some(f) = r.next_buffered()? {
                if f.is_heartbeat() {
                    (&s).write_all_ctx(b"NOP\n")?;
                } else if f.kind == FRAME_RESPONSE && outstanding > 0 {
                    outstanding -= 1;
                    acked += batch;
                } else if f.kind == FRAME_ERROR {
                    bail!("broker refused a publish: {}", f.text().trim());
                } else {
                    bail!("unexpected frame {} from broker: {}", f.kind, f.text());
                }
            }
            let may_send_more = sending && outstanding < spec.window && sent < self.quota;
            if may_send_more && self.rate > 0.0 {
                // Sleep until the next command is due, then take whatever answers came meanwhile
                // (one wakeup per tick, not one per answer).
                let next = self.due(sent + batch).min(deadline);
                std::thread::sleep(next.saturating_duration_since(Instant::now()).max(SEND_TICK));
                while r.fill_nowait(&s)? {}
            } else if outstanding > 0 && !r.fill(&s)? {
                bail!("broker did not answer a publish within {:?}", wire::IO_TIMEOUT);
            }
        }
        Ok(ConnStats {
            acked,
            finished: Instant::now(),
            send_lag_ns: lag,
        })
    }
}

trait WriteCtx {
    fn write_all_ctx(self, b: &[u8]) -> Result<()>;
}

impl WriteCtx for &TcpStream {
    fn write_all_ctx(mut self, b: &[u8]) -> Result<()> {
        use std::io::Write;
        self.write_all(b).map_err(|e| {
            if wire::is_timeout(&e) {
                anyhow::anyhow!(
                    "broker stopped reading for {:?} (write timed out)",
                    wire::IO_TIMEOUT
                )
            } else {
                anyhow::anyhow!("write to broker failed: {e}")
            }
        })
    }
}

/// Joins publishers: (messages acknowledged, when the last one finished, merged send lag).
pub fn join(handles: Vec<JoinHandle<Result<ConnStats>>>) -> Result<(u64, Instant, Histogram<u64>)> {
    let mut acked = 0;
    let mut last = Instant::now();
    let mut first = true;
    let mut lag = new_histogram();
    let mut err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(c)) => {
                acked += c.acked;
                if first || c.finished > last {
                    last = c.finished;
                    first = false;
                }
                lag.add(&c.send_lag_ns).ok();
            }
            Ok(Err(e)) => err = err.or(Some(e)),
            Err(_) => err = err.or(Some(anyhow::anyhow!("a publisher thread panicked"))),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok((acked, last, lag)),
    }
}
