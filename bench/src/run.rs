//! The load runs behind each subcommand, and the report every one of them returns.
//!
//! - `publish`: publishers only, bounded by count and time.
//! - `drain`: consumers only, on whatever backlog the topic has; stops when `expect` messages per
//!   channel arrived, or nothing arrived for `idle`, or at `max`.
//! - `pubsub`: consumers subscribe first, then publishers run; it ends once every channel has
//!   everything that was published (or on idle / max). With `latency` the bodies are stamped and
//!   every consumer records due-time-to-arrival in an HdrHistogram. Fan-out is this with many
//!   channels.
//! - `connections`: N idle subscribed connections, and what they cost the broker in RSS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::consume::{self, ConsumerStats};
use crate::procfs::{self, Usage, UsageDelta};
use crate::publish::{self, new_histogram, PubSpec};

/// How often the coordinating thread checks progress.
const TICK: Duration = Duration::from_millis(2);

#[derive(Clone, Debug)]
pub struct SubSpec {
    pub addr: SocketAddr,
    pub topic: String,
    /// Channel names; each gets `consumers` connections.
    pub channels: Vec<String>,
    pub consumers: usize,
    pub rdy: u32,
    /// Asked for in IDENTIFY; `None` keeps the broker's default (16 KiB, flushed every 250 ms),
    /// -1 asks for no output buffering (every delivery written at once).
    pub output_buffer_size: Option<i64>,
    /// Stop once nothing arrived for this long (after publishing, if any, ended).
    pub idle: Duration,
    /// Hard bound on the consuming phase.
    pub max: Duration,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnectionsReport {
    pub connections: usize,
    pub broker_rss_before_bytes: u64,
    pub broker_rss_after_bytes: u64,
    pub broker_rss_per_connection_bytes: f64,
}

/// What a run measured. Rates are per second of the phase they belong to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub published: u64,
    pub publish_s: f64,
    pub publish_msgs_per_s: f64,
    /// Deliveries, summed over channels (fan-out counts each channel's copy).
    pub consumed: u64,
    /// First RDY (or first publish, in pubsub runs) to the last delivery.
    pub consume_s: f64,
    pub consume_msgs_per_s: f64,
    /// Messages per channel that never arrived before the run stopped.
    pub missing: u64,
    pub latency: Option<Percentiles>,
    /// How late the client sent against its fixed-rate schedule (its own lateness counts in
    /// `latency` too; this shows how much of it is the client's).
    pub send_lag: Option<Percentiles>,
    pub connections: Option<ConnectionsReport>,
    /// The broker's CPU seconds during the run, and its RSS / peak RSS at the end.
    pub broker: Option<UsageDelta>,
    /// This process's CPU seconds during the run (the load generator's own cost).
    pub client_cpu_s: f64,
    pub wall_s: f64,
}

impl Report {
    pub fn summary(&self, size: usize) -> String {
        let mut lines = Vec::new();
        if self.published > 0 {
            lines.push(format!(
                "pub: {} msgs in {:.3}s = {:.0} msgs/s, {:.1} MB/s",
                self.published,
                self.publish_s,
                self.publish_msgs_per_s,
                self.publish_msgs_per_s * size as f64 / 1e6
            ));
        }
        if self.consumed > 0 || self.missing > 0 {
            lines.push(format!(
                "sub: {} msgs in {:.3}s = {:.0} msgs/s{}",
                self.consumed,
                self.consume_s,
                self.consume_msgs_per_s,
                if self.missing > 0 {
                    format!(" ({} missing)", self.missing)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(l) = &self.latency {
            lines.push(format!(
                "latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  ({} samples)",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.count
            ));
        }
        if let Some(l) = &self.send_lag {
            lines.push(format!(
                "client send lag µs: p50 {:.0}  p99 {:.0}  max {:.0}",
                l.p50_us, l.p99_us, l.max_us
            ));
        }
        if let Some(c) = &self.connections {
            lines.push(format!(
                "connections: {} open, broker RSS {:.1} → {:.1} MiB = {:.1} KiB per connection",
                c.connections,
                c.broker_rss_before_bytes as f64 / 1048576.0,
                c.broker_rss_after_bytes as f64 / 1048576.0,
                c.broker_rss_per_connection_bytes / 1024.0
            ));
        }
        if let Some(b) = &self.broker {
            let msgs = self.published.max(self.consumed);
            let per_msg = if msgs > 0 {
                format!(" ({:.2} µs/msg)", b.cpu_s * 1e6 / msgs as f64)
            } else {
                String::new()
            };
            lines.push(format!(
                "broker: {:.2} CPU s{per_msg}, RSS {:.1} MiB, peak {:.1} MiB",
                b.cpu_s,
                b.rss_bytes as f64 / 1048576.0,
                b.peak_rss_bytes as f64 / 1048576.0
            ));
        }
        lines.push(format!(
            "client: {:.2} CPU s over {:.2}s wall ({:.2} cores)",
            self.client_cpu_s,
            self.wall_s,
            self.client_cpu_s / self.wall_s.max(1e-9)
        ));
        lines.join("\n")
    }
}

/// Measures the broker (if its pid is known) and this process around a run.
pub(crate) struct Meter {
    pid: Option<u32>,
    broker: Option<Usage>,
    client: Usage,
    wall: Instant,
}

impl Meter {
    pub(crate) fn start(pid: Option<u32>) -> Result<Meter> {
        Ok(Meter {
            pid,
            broker: pid.map(|p| Usage::read(Some(p))).transpose()?,
            client: Usage::read(None)?,
            wall: Instant::now(),
        })
    }

    pub(crate) fn finish(&self, report: &mut Report) -> Result<()> {
        if let (Some(pid), Some(before)) = (self.pid, &self.broker) {
            let now = Usage::read(Some(pid)).context("broker process died during the run")?;
            report.broker = Some(now.since(before));
        }
        report.client_cpu_s = Usage::read(None)?.since(&self.client).cpu_s;
        report.wall_s = self.wall.elapsed().as_secs_f64();
        Ok(())
    }
}

pub(crate) fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

pub fn publish(spec: &PubSpec, pid: Option<u32>) -> Result<Report> {
    let meter = Meter::start(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (start, handles) = publish::start(spec, Instant::now(), &stop)?;
    let (published, last, lag) = publish::join(handles)?;
    let mut r = Report {
        published,
        publish_s: last.duration_since(start).as_secs_f64(),
        send_lag: (spec.rate > 0.0).then(|| Percentiles::of(&lag)),
        ..Report::default()
    };
    r.publish_msgs_per_s = rate(r.published, r.publish_s);
    meter.finish(&mut r)?;
    Ok(r)
}

/// Consumes what is already there. `expect` is per channel; 0 means "until idle".
pub fn drain(spec: &SubSpec, expect: u64, pid: Option<u32>) -> Result<Report> {
    let meter = Meter::start(pid)?;
    let consumers = Consumers::start(subscribe_all(spec)?, spec.channels.len(), None);
    let goal = if expect > 0 {
        Goal::Count(expect)
    } else {
        Goal::UntilIdle
    };
    let waited = consumers.wait(|| Ok(goal), spec.idle, spec.max);
    let done = consumers.finish(expect);
    waited?;
    let done = done?;
    let mut r = Report {
        consumed: done.received,
        consume_s: done.secs_since(meter.wall),
        missing: done.missing,
        ..Report::default()
    };
    r.consume_msgs_per_s = rate(r.consumed, r.consume_s);
    meter.finish(&mut r)?;
    Ok(r)
}

/// Publishers and consumers together; see the module docs.
pub fn pubsub(pubs: &PubSpec, subs: &SubSpec, pid: Option<u32>) -> Result<Report> {
    let meter = Meter::start(pid)?;
    let base = Instant::now();
    let consumers = Consumers::start(
        subscribe_all(subs)?,
        subs.channels.len(),
        pubs.stamp.then_some(base),
    );
    // Publishers share the consumers' stop flag: whoever fails first stops everyone.
    let (pub_start, handles) = match publish::start(pubs, base, &consumers.stop) {
        Ok(x) => x,
        Err(e) => {
            consumers.stop.store(true, Ordering::Relaxed);
            consumers.finish(0).ok();
            return Err(e);
        }
    };
    let mut pending = Some(handles);
    let mut published = None;
    let waited = consumers.wait(
        || {
            let all_done = pending
                .as_ref()
                .is_some_and(|hs| hs.iter().all(|h| h.is_finished()));
            if all_done {
                let hs = pending.take().expect("checked above");
                published = Some(publish::join(hs)?);
            }
            Ok(match &published {
                Some((n, _, _)) => Goal::Count(*n),
                None => Goal::Publishing,
            })
        },
        subs.idle,
        pubs.duration + subs.max,
    );
    consumers.stop.store(true, Ordering::Relaxed);
    let published = match (published, pending) {
        (Some(p), _) => Ok(p),
        (None, Some(hs)) => publish::join(hs),
        (None, None) => Err(anyhow::anyhow!("publishing failed")),
    };
    let target = published.as_ref().map_or(0, |p| p.0);
    let done = consumers.finish(target);
    waited?;
    let (n_pub, pub_last, lag) = published?;
    let done = done?;
    let mut r = Report {
        published: n_pub,
        publish_s: pub_last.duration_since(pub_start).as_secs_f64(),
        consumed: done.received,
        consume_s: done.secs_since(pub_start),
        missing: done.missing,
        latency: pubs.stamp.then(|| Percentiles::of(&done.latency_ns)),
        send_lag: (pubs.rate > 0.0).then(|| Percentiles::of(&lag)),
        ..Report::default()
    };
    r.publish_msgs_per_s = rate(r.published, r.publish_s);
    r.consume_msgs_per_s = rate(r.consumed, r.consume_s);
    meter.finish(&mut r)?;
    Ok(r)
}

/// Opens `n` connections that IDENTIFY and SUB (with RDY 0) and then sit idle, and reports the
/// broker's RSS growth per connection. Idle connections do not answer heartbeats, so `hold` stays
/// below nsqd's default heartbeat interval.
pub fn connections(
    addr: SocketAddr,
    n: usize,
    topic: &str,
    hold: Duration,
    pid: Option<u32>,
) -> Result<Report> {
    const HOLD_MAX: Duration = Duration::from_secs(25);
    const SETTLE: Duration = Duration::from_millis(500);
    let limit = procfs::raise_fd_limit();
    if n as u64 + 64 > limit {
        bail!("{n} connections need more open files than this process may have ({limit})");
    }
    let meter = Meter::start(pid)?;
    let rss_before = meter.broker.map_or(0, |u| u.rss_bytes);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        if Instant::now() > deadline {
            bail!("opening {n} connections took longer than 120s (stopped at {i})");
        }
        let s = consume::subscribe(addr, topic, "idle", 0, 0, None)
            .with_context(|| format!("connection {i} of {n}"))?;
        conns.push(s);
    }
    std::thread::sleep(SETTLE);
    let rss_after = match pid {
        Some(p) => Usage::read(Some(p))?.rss_bytes,
        None => 0,
    };
    std::thread::sleep(hold.min(HOLD_MAX).saturating_sub(SETTLE));
    drop(conns);
    let mut r = Report {
        connections: Some(ConnectionsReport {
            connections: n,
            broker_rss_before_bytes: rss_before,
            broker_rss_after_bytes: rss_after,
            broker_rss_per_connection_bytes: rss_after.saturating_sub(rss_before) as f64 / n.max(1) as f64,
        }),
        ..Report::default()
    };
    meter.finish(&mut r)?;
    Ok(r)
}

/// Connects and subscribes every consumer before any starts reading.
fn subscribe_all(spec: &SubSpec) -> Result<Vec<consume::Subscribed>> {
    if spec.channels.is_empty() || spec.consumers == 0 {
        bail!("need at least one channel and one consumer");
    }
    let mut subs = Vec::new();
    for (i, ch) in spec.channels.iter().enumerate() {
        for _ in 0..spec.consumers {
            subs.push(consume::subscribe(
                spec.addr,
                &spec.topic,
                ch,
                i,
                spec.rdy,
                spec.output_buffer_size,
            )?);
        }
    }
    Ok(subs)
}

/// What the consumers wait for.
#[derive(Clone, Copy)]
enum Goal {
    /// Publishers are still running: no idle timeout yet.
    Publishing,
    /// Every channel has to see this many messages.
    Count(u64),
    /// Whatever arrives until nothing has for a while.
    UntilIdle,
}

/// Reading threads and the per-channel counters they add to.
struct Consumers {
    counters: Vec<Arc<AtomicU64>>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Result<ConsumerStats>>>,
}

/// What all consumers saw, merged.
struct Consumed {
    received: u64,
    missing: u64,
    last_message: Option<Instant>,
    latency_ns: Histogram<u64>,
}

impl Consumed {
    fn secs_since(&self, t0: Instant) -> f64 {
        self.last_message
            .map_or(0.0, |l| l.saturating_duration_since(t0).as_secs_f64())
    }
}

impl Consumers {
    fn start(subs: Vec<consume::Subscribed>, channels: usize, latency_base: Option<Instant>) -> Self {
        let counters: Vec<_> = (0..channels).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let handles = subs
            .into_iter()
            .map(|s| {
                let c = counters[s.channel_index].clone();
                consume::start(s, c, stop.clone(), latency_base)
            })
            .collect();
        Consumers {
            counters,
            stop,
            handles,
        }
    }

    /// Returns when the goal is met, when nothing arrived for `idle` (once publishing is over),
    /// at `max`, or as soon as any thread fails (it sets `stop`; its error comes from `finish`).
    fn wait(&self, mut goal: impl FnMut() -> Result<Goal>, idle: Duration, max: Duration) -> Result<()> {
        let start = Instant::now();
        let (mut last_total, mut last_progress) = (0u64, start);
        while !self.stop.load(Ordering::Relaxed) {
            let g = goal()?;
            let counts: Vec<u64> = self.counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            if let Goal::Count(t) = g {
                if counts.iter().all(|&c| c >= t) {
                    return Ok(());
                }
            }
            let now = Instant::now();
            let total: u64 = counts.iter().sum();
            if total != last_total {
                (last_total, last_progress) = (total, now);
            }
            let settled = !matches!(g, Goal::Publishing);
            if settled && now.duration_since(last_progress) > idle {
                return Ok(());
            }
            if now.duration_since(start) > max {
                return Ok(());
            }
            std::thread::sleep(TICK);
        }
        Ok(())
    }

    /// Stops and joins every consumer. `target` is what each channel should have received.
    fn finish(self, target: u64) -> Result<Consumed> {
        self.stop.store(true, Ordering::Relaxed);
        let missing = self
            .counters
            .iter()
            .map(|c| target.saturating_sub(c.load(Ordering::Relaxed)))
            .sum();
        let mut out = Consumed {
            received: 0,
            missing,
            last_message: None,
            latency_ns: new_histogram(),
        };
        let mut err = None;
        for h in self.handles {
            match h.join() {
                Ok(Ok(s)) => {
                    out.received += s.received;
                    out.last_message = out.last_message.max(s.last_message);
                    out.latency_ns.add(&s.latency_ns).ok();
                }
                Ok(Err(e)) => err = err.or(Some(e)),
                Err(_) => err = err.or(Some(anyhow::anyhow!("a consumer thread panicked"))),
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}
