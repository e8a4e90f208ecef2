//! The scenario matrix and how one scenario runs against one broker.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::publish::PubSpec;
use crate::run::{self, Report, SubSpec};
use crate::suite::broker::Broker;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `--mem-queue-size` large enough that nothing touches disk.
    Memory,
    /// `--mem-queue-size=0`: every message goes through the disk queue.
    Disk,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    /// Publish (bounded by count and time) into a topic with no channel yet, then one consumer
    /// with RDY 2500 drains it: nsq's bench.sh (bench_writer, then bench_reader).
    Throughput {
        size: usize,
        batch: usize,
        connections: usize,
        window: usize,
        count: u64,
        seconds: f64,
    },
    /// Open-loop PUB at a fixed rate with one consumer; latency from the stamped due time.
    /// `unbuffered` consumers ask for `output_buffer_size: -1` (every delivery written at once);
    /// otherwise the broker's default output buffering (16 KiB / 250 ms) applies, as for a
    /// default go-nsq consumer.
    Latency {
        size: usize,
        rate: f64,
        unbuffered: bool,
        connections: usize,
        seconds: f64,
    },
    /// MPUB into one topic with `channels` channels, one consumer each; deliveries per second.
    Fanout {
        size: usize,
        channels: usize,
        count: u64,
    },
    /// N idle subscribed connections; broker RSS per connection.
    Connections { n: usize },
}

#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: String,
    pub mode: Mode,
    pub workload: Workload,
    /// squalld runs with `--output-buffer-idle-flush` (nsqd has no such option and runs as
    /// always).
    pub idle_flush: bool,
}

/// Knobs of the matrix.
pub struct MatrixSettings {
    pub quick: bool,
    /// Multiplies every message count and connection count (tiny smoke runs use 0.01).
    pub scale: f64,
    pub latency_rate: f64,
    pub connections: usize,
}

pub fn matrix(s: &MatrixSettings) -> Vec<Scenario> {
    let scaled = |n: u64| ((n as f64 * s.scale) as u64).max(200);
    let q = |full: f64, quick: f64| if s.quick { quick } else { full };
    let mut out = Vec::new();
    // The headline: nsq's own bench pattern (2 connections, MPUB 200 x 200 B, each waiting for
    // its OK), 10 s of publishing (capped in count so the backlog fits in memory), then a drain.
    out.push(Scenario {
        name: "nsq-bench mem 200B mpub200".into(),
        mode: Mode::Memory,
        idle_flush: false,
        workload: Workload::Throughput {
            size: 200,
            batch: 200,
            connections: 2,
            window: 1,
            count: scaled(q(5_000_000.0, 600_000.0) as u64),
            seconds: q(10.0, 2.0),
        },
    });
    for mode in [Mode::Memory, Mode::Disk] {
        for size in [100usize, 1024] {
            for batch in [1usize, 200] {
                let full_count: u64 = match (size, batch) {
                    (100, 1) => 1_000_000,
                    (100, _) => 3_000_000,
                    (_, 1) => 500_000,
                    _ => 1_000_000,
                };
                let (connections, window) = if batch == 1 { (8, 64) } else { (2, 4) };
                let m = if mode == Mode::Memory { "mem" } else { "disk" };
                let kind = if batch == 1 { "pub" } else { "mpub200" };
                out.push(Scenario {
                    name: format!("{m} {size}B {kind}"),
                    mode,
                    idle_flush: false,
                    workload: Workload::Throughput {
                        size,
                        batch,
                        connections,
                        window,
                        count: scaled(if s.quick { full_count / 10 } else { full_count }),
                        seconds: q(10.0, 2.0),
                    },
                });
            }
        }
    }
    // Default buffering, the same with squalld's --output-buffer-idle-flush, and unbuffered.
    for (unbuffered, idle_flush, suffix) in [
        (false, false, ""),
        (false, true, " idle-flush"),
        (true, false, " unbuffered"),
    ] {
        out.push(Scenario {
            name: format!("latency mem 100B @{:.0}/s{suffix}", s.latency_rate),
            mode: Mode::Memory,
            idle_flush,
            workload: Workload::Latency {
                size: 100,
                rate: s.latency_rate,
                unbuffered,
                connections: 2,
                seconds: q(5.0, 1.5),
            },
        });
    }
    out.push(Scenario {
        name: "fanout mem 100B x10ch".into(),
        mode: Mode::Memory,
        idle_flush: false,
        workload: Workload::Fanout {
            size: 100,
            channels: 10,
            count: scaled(q(500_000.0, 50_000.0) as u64),
        },
    });
    let n = ((s.connections as f64 * s.scale.min(1.0)) as usize).max(10);
    out.push(Scenario {
        name: format!("connections mem x{n}"),
        mode: Mode::Memory,
        idle_flush: false,
        workload: Workload::Connections { n },
    });
    out
}

/// One run's numbers, by metric key (see `report::METRICS`).
pub type Sample = BTreeMap<String, f64>;

const DRAIN_IDLE: Duration = Duration::from_secs(3);
const DRAIN_MAX: Duration = Duration::from_secs(180);

fn sub_spec(b: &Broker, topic: &str, channels: usize) -> SubSpec {
    SubSpec {
        addr: b.addr,
        topic: topic.to_string(),
        channels: (0..channels).map(|i| format!("ch{i}")).collect(),
        consumers: 1,
        rdy: 2500,
        output_buffer_size: None,
        idle: DRAIN_IDLE,
        max: DRAIN_MAX,
    }
}

fn broker_metrics(m: &mut Sample, reports: &[&Report], msgs: u64) {
    let cpu: f64 = reports.iter().filter_map(|r| r.broker).map(|b| b.cpu_s).sum();
    let peak = reports
        .iter()
        .filter_map(|r| r.broker)
        .map(|b| b.peak_rss_bytes)
        .max();
    if let Some(peak) = peak {
        m.insert("broker_cpu_s".into(), cpu);
        if msgs > 0 {
            m.insert("broker_cpu_us_per_msg".into(), cpu * 1e6 / msgs as f64);
        }
        m.insert("broker_peak_rss_mib".into(), peak as f64 / 1048576.0);
    }
    let client: f64 = reports.iter().map(|r| r.client_cpu_s).sum();
    let wall: f64 = reports.iter().map(|r| r.wall_s).sum();
    m.insert("client_cpu_s".into(), client);
    m.insert("client_cores".into(), client / wall.max(1e-9));
}

fn check_missing(r: &Report) -> Result<()> {
    if r.missing > 0 {
        bail!(
            "{} of the published messages never arrived (consumed {})",
            r.missing,
            r.consumed
        );
    }
    Ok(())
}

/// Runs `sc` once against `b`. `topic` is unique per run so a shared broker starts clean.
pub fn run_once(sc: &Scenario, b: &Broker, topic: &str) -> Result<Sample> {
    let mut m = Sample::new();
    match sc.workload {
        Workload::Throughput {
            size,
            batch,
            connections,
            window,
            count,
            seconds,
        } => {
            let spec = PubSpec {
                addr: b.addr,
                topics: vec![topic.to_string()],
                connections,
                batch,
                size,
                window,
                rate: 0.0,
                duration: Duration::from_secs_f64(seconds),
                count,
                stamp: false,
            };
            let p = run::publish(&spec, b.pid)?;
            let s = run::drain(&sub_spec(b, topic, 1), p.published, b.pid)?;
            check_missing(&s)?;
            m.insert("pub_msgs_per_s".into(), p.publish_msgs_per_s);
            m.insert("sub_msgs_per_s".into(), s.consume_msgs_per_s);
            m.insert("messages".into(), p.published as f64);
            broker_metrics(&mut m, &[&p, &s], p.published);
        }
        Workload::Latency {
            size,
            rate,
            unbuffered,
            connections,
            seconds,
        } => {
            let spec = PubSpec {
                addr: b.addr,
                topics: vec![topic.to_string()],
                connections,
                batch: 1,
                size,
                window: 4096,
                rate,
                duration: Duration::from_secs_f64(seconds),
                count: 0,
                stamp: true,
            };
            let mut subs = sub_spec(b, topic, 1);
            subs.output_buffer_size = unbuffered.then_some(-1);
            let r = run::pubsub(&spec, &subs, b.pid)?;
            check_missing(&r)?;
            let l = r.latency.clone().unwrap_or_default();
            for (k, v) in [
                ("p50_us", l.p50_us),
                ("p90_us", l.p90_us),
                ("p99_us", l.p99_us),
                ("p999_us", l.p999_us),
                ("max_us", l.max_us),
            ] {
                m.insert(k.into(), v);
            }
            if let Some(lag) = &r.send_lag {
                m.insert("client_send_lag_p99_us".into(), lag.p99_us);
            }
            m.insert("messages".into(), r.published as f64);
            broker_metrics(&mut m, &[&r], r.published);
        }
        Workload::Fanout {
            size,
            channels,
            count,
        } => {
            let spec = PubSpec {
                addr: b.addr,
                topics: vec![topic.to_string()],
                connections: 2,
                batch: 200,
                size,
                window: 4,
                rate: 0.0,
                duration: Duration::from_secs(60),
                count,
                stamp: false,
            };
            let r = run::pubsub(&spec, &sub_spec(b, topic, channels), b.pid)?;
            check_missing(&r)?;
            m.insert("deliveries_per_s".into(), r.consume_msgs_per_s);
            m.insert("messages".into(), r.consumed as f64);
            broker_metrics(&mut m, &[&r], r.consumed);
        }
        Workload::Connections { n } => {
            let r = run::connections(b.addr, n, topic, Duration::from_secs(1), b.pid)?;
            if let Some(c) = &r.connections {
                if b.pid.is_some() {
                    m.insert(
                        "rss_per_conn_kib".into(),
                        c.broker_rss_per_connection_bytes / 1024.0,
                    );
                }
            }
            broker_metrics(&mut m, &[&r], 0);
        }
    }
    Ok(m)
}
