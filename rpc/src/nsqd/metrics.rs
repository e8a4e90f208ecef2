//! `GET /metrics`: the stats in Prometheus' text format (beyond nsqd).

use std::fmt::Write as _;

use squall_core::stats::{ShardRuntime, ShardStats};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(stats: &ShardStats) -> Vec<u8> {
    let mut s = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    };
    let topic = |t: &str| format!("{{topic=\"{}\"}}", escape(t));
    let chan = |t: &str, c: &str| format!("{{topic=\"{}\",channel=\"{}\"}}", escape(t), escape(c));
    let ts = &stats.topics;
    family(
        "squall_topic_depth",
        "gauge",
        "Messages waiting in the topic.",
        ts.iter()
            .map(|t| (topic(&t.topic_name), t.depth as u64))
            .collect(),
    );
    family(
        "squall_topic_backend_depth",
        "gauge",
        "Messages of the topic on disk.",
        ts.iter()
            .map(|t| (topic(&t.topic_name), t.backend_depth as u64))
            .collect(),
    );
    family(
        "squall_topic_messages_total",
        "counter",
        "Messages published to the topic.",
        ts.iter()
            .map(|t| (topic(&t.topic_name), t.message_count))
            .collect(),
    );
    family(
        "squall_topic_message_bytes_total",
        "counter",
        "Body bytes published to the topic.",
        ts.iter()
            .map(|t| (topic(&t.topic_name), t.message_bytes))
            .collect(),
    );
    family(
        "squall_topic_paused",
        "gauge",
        "1 while the topic is paused.",
        ts.iter()
            .map(|t| (topic(&t.topic_name), t.paused as u64))
            .collect(),
    );
    let chans: Vec<_> = ts
        .iter()
        .flat_map(|t| t.channels.iter().map(move |c| (t.topic_name.as_str(), c)))
        .collect();
    family(
        "squall_channel_depth",
        "gauge",
        "Messages ready in the channel.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.depth as u64))
            .collect(),
    );
    family(
        "squall_channel_backend_depth",
        "gauge",
        "Messages of the channel on disk.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.backend_depth as u64))
            .collect(),
    );
    family(
        "squall_channel_in_flight",
        "gauge",
        "Messages delivered and not yet finished.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.in_flight_count as u64))
            .collect(),
    );
    family(
        "squall_channel_deferred",
        "gauge",
        "Messages deferred by DPUB or REQ.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.deferred_count as u64))
            .collect(),
    );
    family(
        "squall_channel_messages_total",
        "counter",
        "Messages put into the channel.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.message_count))
            .collect(),
    );
    family(
        "squall_channel_requeues_total",
        "counter",
        "Messages requeued by REQ.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.requeue_count))
            .collect(),
    );
    family(
        "squall_channel_timeouts_total",
        "counter",
        "Messages whose in-flight time ran out.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.timeout_count))
            .collect(),
    );
    family(
        "squall_channel_clients",
        "gauge",
        "Consumers subscribed to the channel.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.client_count as u64))
            .collect(),
    );
    family(
        "squall_channel_paused",
        "gauge",
        "1 while the channel is paused.",
        chans
            .iter()
            .map(|(t, c)| (chan(t, &c.channel_name), c.paused as u64))
            .collect(),
    );
    family(
        "squall_disk_corrupt_records_skipped_total",
        "counter",
        "Disk queue records skipped as corrupt when queues were opened.",
        vec![(String::new(), stats.corrupt_records_skipped)],
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size of the broker process.",
        vec![(String::new(), resident_bytes())],
    );
    family(
        "squall_connections",
        "gauge",
        "Open NSQ TCP connections.",
        vec![(String::new(), stats.connections)],
    );
    let shard = |r: &ShardRuntime| format!("{{shard=\"{}\"}}", r.shard);
    let per_shard = |f: fn(&ShardRuntime) -> u64| -> Vec<(String, u64)> {
        stats.shards.iter().map(|r| (shard(r), f(r))).collect()
    };
    family(
        "squall_shard_connections",
        "gauge",
        "Connections the shard holds (NSQ TCP and HTTP).",
        per_shard(|r| r.connections),
    );
    family(
        "squall_shard_ring_submissions_total",
        "counter",
        "SQEs queued on the shard's io_uring.",
        per_shard(|r| r.ring_submissions),
    );
    family(
        "squall_shard_ring_completions_total",
        "counter",
        "CQEs reaped from the shard's io_uring.",
        per_shard(|r| r.ring_completions),
    );
    family(
        "squall_shard_mailbox_depth",
        "gauge",
        "Messages waiting in the mailbox lanes into the shard.",
        per_shard(|r| r.mailbox_depth),
    );
    family(
        "squall_shard_mailbox_full_total",
        "counter",
        "Sends from the shard refused because the target lane was full.",
        per_shard(|r| r.mailbox_full),
    );
    s.into_bytes()
}

/// RSS from `/proc/self/statm` (a procfs read: no disk I/O).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page
}
