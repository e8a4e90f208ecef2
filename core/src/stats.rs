//! Statistics snapshots in the exact shape of nsqd's `/stats` JSON (spec A.8).
//!
//! Field order is key order: serde writes fields as declared, and nsqadmin, nsq_stat and the
//! Prometheus exporters that read nsqd expect nsqd's order and its `null`-versus-`[]` rules.
//! Each shard fills the topics it owns and the producers connected to it; the shard that got the
//! request merges the parts.

use serde::Serialize;

/// What a `/stats` request asks for.
#[derive(Clone, Debug, Default)]
pub struct StatsFilter {
    /// Only this topic (exact name); `None` for all (nsqd reads an empty value as none).
    pub topic: Option<String>,
    /// Only this channel, in every topic listed (topics without it are left out).
    pub channel: Option<String>,
    pub include_clients: bool,
}

/// One shard's part of a `/stats` answer.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub topics: Vec<TopicStats>,
    pub producers: Vec<ClientStats>,
    pub connections: u64,
    /// Disk records skipped as corrupt when this shard's queues were opened.
    pub corrupt_records_skipped: u64,
    /// A topic filter named a topic this shard (merged: the node) does not have; nsqd then
    /// answers `null` topics and `null` producers.
    pub topic_missing: bool,
    /// Runtime counters, one entry per shard (merged by concatenation, sorted by shard).
    pub shards: Vec<ShardRuntime>,
}

/// One shard's runtime counters (`/metrics`), as its engine last copied them into the broker
/// (`Broker::set_runtime_stats`, at the end of every loop turn).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardRuntime {
    pub shard: usize,
    /// Connections the shard's runtime holds (NSQ TCP and HTTP).
    pub connections: u64,
    /// SQEs queued on the shard's ring since start.
    pub ring_submissions: u64,
    /// CQEs reaped from the shard's ring since start.
    pub ring_completions: u64,
    /// Messages waiting now in the lanes into the shard.
    pub mailbox_depth: u64,
    /// Sends from the shard refused because a lane was full, since start.
    pub mailbox_full: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct E2eLatency {
    pub count: u64,
    pub percentiles: Option<Vec<Percentile>>,
}

impl E2eLatency {
    pub fn none() -> E2eLatency {
        E2eLatency {
            count: 0,
            percentiles: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Percentile {
    pub quantile: f64,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopicStats {
    pub topic_name: String,
    pub channels: Vec<ChannelStats>,
    pub depth: i64,
    pub backend_depth: i64,
    pub message_count: u64,
    pub message_bytes: u64,
    pub paused: bool,
    pub e2e_processing_latency: E2eLatency,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChannelStats {
    pub channel_name: String,
    pub depth: i64,
    pub backend_depth: i64,
    pub in_flight_count: i64,
    pub deferred_count: i64,
    pub message_count: u64,
    pub requeue_count: u64,
    pub timeout_count: u64,
    pub client_count: i64,
    /// `null` when clients were not asked for.
    pub clients: Option<Vec<ClientStats>>,
    pub paused: bool,
    pub e2e_processing_latency: E2eLatency,
}

#[derive(Clone, Debug, Serialize)]
pub struct PubCount {
    pub topic: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClientStats {
    pub client_id: String,
    pub hostname: String,
    pub version: String,
    pub remote_address: String,
    pub state: i32,
    pub ready_count: i64,
    pub in_flight_count: i64,
    pub message_count: u64,
    pub finish_count: u64,
    pub requeue_count: u64,
    pub connect_ts: i64,
    pub sample_rate: i32,
    pub deflate: bool,
    pub snappy: bool,
    pub user_agent: String,
    #[serde(skip_serializing_if = "is_false")]
    pub authed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity_url: String,
    pub topology_zone: String,
    pub topology_region: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pub_counts: Vec<PubCount>,
    pub tls: bool,
    pub tls_cipher_suite: String,
    pub tls_version: String,
    pub tls_negotiated_protocol: String,
    pub tls_negotiated_protocol_is_mutual: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}
