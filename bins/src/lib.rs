//! Squall's binaries, and the node assembly they share so tests can start a broker in-process.
//!
//! # Layout
//! - `config`: nsqd's command line (Go `flag` syntax) → `DaemonConfig`.
//! - `engine`: the NSQ engine the uring-net runtime drives (forwards to `squall_core::broker`).
//! - `bin/squalld.rs`: the nsqd drop-in: flags, logging, signals.
//! - `to_file`: the nsq_to_file drop-in (a blocking NSQ consumer writing topics to files);
//!   `bin/squall-to-file.rs` is its thin entry point.

pub mod config;
mod engine;
pub mod metadata;
pub mod to_file;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use squall_core::options::Options;
use squall_uring_net::{Runtime, RuntimeConfig, RuntimeHandle};

pub use engine::NsqEngine;

/// How to start one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub options: Options,
    pub tcp_address: SocketAddr,
    pub shards: usize,
    pub pin_threads: bool,
}

impl NodeConfig {
    /// Loopback on a free port, two shards: what black-box tests want.
    pub fn for_tests(options: Options) -> NodeConfig {
        NodeConfig {
            options,
            tcp_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            shards: 2,
            pin_threads: false,
        }
    }
}

/// A running node.
pub struct Node {
    handle: RuntimeHandle,
    tcp_address: SocketAddr,
}

/// Slack beyond the largest command a client may send (a `--max-body-size` MPUB or IDENTIFY,
/// its 16 KiB command line and its size prefix), so a whole command always fits in the input.
const INPUT_SLACK_BYTES: usize = 64 * 1024;
/// Batches in flight from one shard to another.
const MAILBOX_LANE_CAPACITY: usize = 256;

impl Node {
    pub fn start(config: NodeConfig) -> io::Result<Node> {
        let options = config.options;
        let input_max_bytes =
            options.max_body_size.max(options.max_msg_size).max(0) as usize + INPUT_SLACK_BYTES;
        let runtime = RuntimeConfig {
            shards: config.shards.max(1),
            listeners: vec![config.tcp_address],
            pin_threads: config.pin_threads,
            input_max_bytes,
            mailbox_capacity: MAILBOX_LANE_CAPACITY,
            drain_timeout: Duration::from_secs(5),
            ring_entries: 4096,
            name: "squalld".to_string(),
        };
        let handle = Runtime::start(runtime, move |shard, shards| {
            NsqEngine::new(options.clone(), shard, shards)
        })?;
        let tcp_address = handle.local_addrs()[0];
        Ok(Node { handle, tcp_address })
    }

    /// The NSQ TCP address actually bound (the port is resolved when 0 was asked for).
    pub fn tcp_address(&self) -> SocketAddr {
        self.tcp_address
    }

    /// Stops accepting, sends CLOSE_WAIT to consumers, closes every connection.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    pub fn join(self) -> io::Result<()> {
        self.handle.join()
    }
}
