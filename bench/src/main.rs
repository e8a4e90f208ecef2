//! squall-bench: load against any NSQ-compatible broker (squalld or nsqd), and a suite that runs
//! the same scenarios against both and compares them.
//!
//! # Layout
//! - `wire`: the NSQ V2 client pieces (connect + IDENTIFY, command encoders, frame splitter).
//! - `publish` / `consume`: the load loops, one thread and one blocking socket per connection.
//! - `run`: the runs behind the subcommands (`publish`, `drain`, `pubsub`, `connections`) and the
//!   `Report` they return.
//! - `grpc`: `grpc-pub` / `grpc-sub` against squalld's gRPC (h2 client, squall-rpc's messages).
//! - `procfs`: CPU seconds and RSS of the broker and of this client, from /proc.
//! - `suite`: spawns brokers, runs the scenario matrix, writes JSON / Markdown / SVG.
//!
//! # Bounds
//! Every loop ends by count, by time, or by `wire::IO_TIMEOUT` of broker silence; an unreachable
//! or dying broker is an error with a message and a non-zero exit, never a hang.

mod consume;
mod grpc;
mod procfs;
mod publish;
mod run;
mod suite;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::publish::PubSpec;
use crate::run::{Report, SubSpec};

#[derive(Parser)]
#[command(
    name = "squall-bench",
    version,
    about = "Load generator and bench suite for NSQ-compatible brokers (squalld, nsqd)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish PUB or MPUB load, bounded by --seconds and/or --count.
    Pub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pubs: PubArgs,
    },
    /// Consume a channel's backlog with FIN per message until --count arrived or it goes idle.
    Sub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        subs: SubArgs,
        /// Messages each channel should receive (0: until idle).
        #[arg(long, default_value_t = 0)]
        count: u64,
        #[arg(long, default_value = "sub_bench")]
        topic: String,
    },
    /// Publish and consume at once; end-to-end latency from the due time stamped in each body.
    Pubsub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pubs: PubArgs,
        #[command(flatten)]
        subs: SubArgs,
    },
    /// One topic, many channels: deliveries per second (pubsub with --channels 10 by default).
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pubs: PubArgs,
        #[command(flatten)]
        subs: SubArgs,
    },
    /// Hold N idle subscribed connections and report the broker's RSS per connection.
    Connections {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value = "idle_bench")]
        topic: String,
        /// How long to hold them (at most 25 s: idle connections do not answer heartbeats).
        #[arg(long, default_value_t = 2.0)]
        hold_seconds: f64,
    },
    /// Unary gRPC Broker.Publish calls against squalld's --grpc-address.
    GrpcPub {
        #[command(flatten)]
        grpc: GrpcArgs,
        #[arg(long, default_value = "sub_bench")]
        topic: String,
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Calls in flight per connection.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Bodies per call.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 200)]
        size: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Total messages (0: bounded by --seconds only).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
    /// One gRPC Broker.Subscribe stream that settles every batch, until --count or idle.
    GrpcSub {
        #[command(flatten)]
        grpc: GrpcArgs,
        #[arg(long, default_value = "sub_bench")]
        topic: String,
        #[arg(long, default_value = "ch")]
        channel: String,
        #[arg(long, default_value_t = 2500)]
        rdy: u32,
        /// Messages to receive (0: until idle).
        #[arg(long, default_value_t = 0)]
        count: u64,
        #[arg(long, default_value_t = 2000)]
        idle_ms: u64,
        #[arg(long, default_value_t = 120.0)]
        max_seconds: f64,
    },
    /// Start squalld (and --reference-nsqd) and run the scenario matrix against both.
    Suite(suite::SuiteArgs),
}

#[derive(Args, Clone)]
struct Common {
    #[arg(long, default_value = "127.0.0.1:4150")]
    nsqd_tcp_address: String,
    /// Broker process to measure (CPU seconds, RSS, peak RSS from /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct GrpcArgs {
    #[arg(long, default_value = "127.0.0.1:4153")]
    grpc_address: String,
    /// Broker process to measure (CPU seconds, RSS, peak RSS from /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl GrpcArgs {
    fn common(&self) -> Common {
        Common {
            nsqd_tcp_address: self.grpc_address.clone(),
            pid: self.pid,
            json: self.json,
        }
    }
}

#[derive(Args, Clone)]
struct PubArgs {
    #[arg(long, default_value = "sub_bench")]
    topic: String,
    /// Spread connections over this many topics (<topic>, <topic>_1, ...).
    #[arg(long, default_value_t = 1)]
    topics: usize,
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Messages per command: 1 sends PUB, more send MPUB.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Message body bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Commands in flight per connection (1 = nsq's bench_writer: wait for each OK).
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Messages per second over all connections, open-loop; 0 = as fast as the broker answers.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Total messages (0: bounded by --seconds only).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

#[derive(Args, Clone)]
struct SubArgs {
    #[arg(long, default_value = "ch")]
    channel: String,
    /// Channels (<channel>, <channel>_1, ...); default 1, or 10 for fanout.
    #[arg(long)]
    channels: Option<usize>,
    /// Consumer connections per channel.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    #[arg(long, default_value_t = 2500)]
    rdy: u32,
    /// output_buffer_size asked for in IDENTIFY (-1: no buffering; default: the broker's).
    #[arg(long, allow_hyphen_values = true)]
    output_buffer_size: Option<i64>,
    /// Stop once nothing arrived for this long.
    #[arg(long, default_value_t = 2000)]
    idle_ms: u64,
    /// Hard bound on consuming.
    #[arg(long, default_value_t = 120.0)]
    max_seconds: f64,
}

fn names(base: &str, n: usize) -> Vec<String> {
    (0..n.max(1))
        .map(|i| {
            if i == 0 {
                base.to_string()
            } else {
                format!("{base}_{i}")
            }
        })
        .collect()
}

fn seconds(s: f64, flag: &str) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s < 86_400.0) {
        bail!("{flag} must be a number of seconds between 0 and a day");
    }
    Ok(Duration::from_secs_f64(s))
}

impl PubArgs {
    fn spec(&self, common: &Common, default_rate: f64, stamp: bool) -> Result<PubSpec> {
        Ok(PubSpec {
            addr: wire::resolve(&common.nsqd_tcp_address)?,
            topics: names(&self.topic, self.topics),
            connections: self.connections,
            batch: self.batch,
            size: self.size,
            window: self.window,
            rate: self.rate.unwrap_or(default_rate).max(0.0),
            duration: seconds(self.seconds, "--seconds")?,
            count: self.count,
            stamp,
        })
    }
}

impl SubArgs {
    fn spec(&self, common: &Common, topic: &str, default_channels: usize) -> Result<SubSpec> {
        Ok(SubSpec {
            addr: wire::resolve(&common.nsqd_tcp_address)?,
            topic: topic.to_string(),
            channels: names(&self.channel, self.channels.unwrap_or(default_channels)),
            consumers: self.consumers,
            rdy: self.rdy,
            output_buffer_size: self.output_buffer_size,
            idle: Duration::from_millis(self.idle_ms),
            max: seconds(self.max_seconds, "--max-seconds")?,
        })
    }
}

fn print(common: &Common, report: &Report, size: usize) -> Result<()> {
    if common.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}", report.summary(size));
    }
    Ok(())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("squall-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Pub { common, pubs } => {
            let spec = pubs.spec(&common, 0.0, false)?;
            print(&common, &run::publish(&spec, common.pid)?, pubs.size)
        }
        Cmd::Sub {
            common,
            subs,
            count,
            topic,
        } => {
            let spec = subs.spec(&common, &topic, 1)?;
            print(&common, &run::drain(&spec, count, common.pid)?, 0)
        }
        Cmd::Pubsub { common, pubs, subs } => {
            // Latency needs an open-loop rate; 10k msgs/s unless told otherwise.
            let p = pubs.spec(&common, 10_000.0, true)?;
            let s = subs.spec(&common, &pubs.topic, 1)?;
            if pubs.topics > 1 {
                bail!("pubsub consumes one topic; use --topics 1");
            }
            print(&common, &run::pubsub(&p, &s, common.pid)?, pubs.size)
        }
        Cmd::Fanout { common, pubs, subs } => {
            // Latency only means something at a fixed rate.
            let stamp = pubs.size >= publish::STAMP_BYTES && pubs.rate.unwrap_or(0.0) > 0.0;
            let p = pubs.spec(&common, 0.0, stamp)?;
            let s = subs.spec(&common, &pubs.topic, 10)?;
            if pubs.topics > 1 {
                bail!("fanout publishes to one topic; use --topics 1");
            }
            print(&common, &run::pubsub(&p, &s, common.pid)?, pubs.size)
        }
        Cmd::Connections {
            common,
            connections,
            topic,
            hold_seconds,
        } => {
            let addr = wire::resolve(&common.nsqd_tcp_address)?;
            let hold = seconds(hold_seconds, "--hold-seconds")?;
            let r = run::connections(addr, connections, &topic, hold, common.pid)?;
            print(&common, &r, 0)
        }
        Cmd::GrpcPub {
            grpc,
            topic,
            connections,
            window,
            batch,
            size,
            seconds: secs,
            count,
        } => {
            let spec = grpc::GrpcPubSpec {
                addr: wire::resolve(&grpc.grpc_address)?,
                topic,
                connections,
                window,
                batch,
                size,
                count,
                duration: seconds(secs, "--seconds")?,
            };
            print(&grpc.common(), &grpc::publish(&spec, grpc.pid)?, size)
        }
        Cmd::GrpcSub {
            grpc,
            topic,
            channel,
            rdy,
            count,
            idle_ms,
            max_seconds,
        } => {
            let spec = grpc::GrpcSubSpec {
                addr: wire::resolve(&grpc.grpc_address)?,
                topic,
                channel,
                rdy,
                count,
                idle: Duration::from_millis(idle_ms),
                max: seconds(max_seconds, "--max-seconds")?,
            };
            print(&grpc.common(), &grpc::drain(&spec, grpc.pid)?, 0)
        }
        Cmd::Suite(args) => suite::run(args),
    }
}

/// The directory this executable lives in (where a sibling `squalld` is looked for).
fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(|p| p.to_path_buf())
}
