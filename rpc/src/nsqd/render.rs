//! `/info` and `/stats` in nsqd's JSON and text forms (spec A.3, A.8).

use std::fmt::Write as _;

use serde::Serialize;
use squall_core::stats::{ClientStats, E2eLatency, ShardStats, TopicStats};

use super::ApiContext;

#[derive(Serialize)]
pub struct Info {
    version: &'static str,
    broadcast_address: String,
    hostname: String,
    http_port: i64,
    tcp_port: i64,
    start_time: i64,
    max_heartbeat_interval: i64,
    max_output_buffer_size: i64,
    max_output_buffer_timeout: i64,
    max_deflate_level: i64,
    topology_zone: String,
    topology_region: String,
}

pub fn info(ctx: &ApiContext) -> Info {
    let o = &ctx.options;
    Info {
        version: squall_core::NSQD_VERSION,
        broadcast_address: ctx.broadcast_address.clone(),
        hostname: ctx.hostname.clone(),
        http_port: ctx.http_port,
        tcp_port: ctx.tcp_port,
        start_time: ctx.start_time,
        max_heartbeat_interval: o.max_heartbeat_interval_ms * 1_000_000,
        max_output_buffer_size: o.max_output_buffer_size,
        max_output_buffer_timeout: o.max_output_buffer_timeout_ms * 1_000_000,
        max_deflate_level: o.max_deflate_level,
        topology_zone: o.topology_zone.clone(),
        topology_region: o.topology_region.clone(),
    }
}

/// nsqd's `memory` block. Go-runtime figures have no Rust meaning; the allocator's own numbers
/// stand in where they fit, the rest are 0 (every key is kept for the tools that read them).
#[derive(Serialize)]
struct Memory {
    heap_objects: u64,
    heap_idle_bytes: u64,
    heap_in_use_bytes: u64,
    heap_released_bytes: u64,
    gc_pause_usec_100: u64,
    gc_pause_usec_99: u64,
    gc_pause_usec_95: u64,
    next_gc_bytes: u64,
    gc_total_runs: u32,
}

fn memory() -> Memory {
    let (in_use, idle) = allocator_bytes();
    Memory {
        heap_objects: 0,
        heap_idle_bytes: idle,
        heap_in_use_bytes: in_use,
        heap_released_bytes: 0,
        gc_pause_usec_100: 0,
        gc_pause_usec_99: 0,
        gc_pause_usec_95: 0,
        next_gc_bytes: 0,
        gc_total_runs: 0,
    }
}

/// (bytes in use, bytes free but held) from glibc's allocator; no syscall.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn allocator_bytes() -> (u64, u64) {
    extern "C" {
        fn mallinfo2() -> MallInfo2;
    }
    #[repr(C)]
    struct MallInfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let m = unsafe { mallinfo2() };
    ((m.uordblks + m.hblkhd) as u64, m.fordblks as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn allocator_bytes() -> (u64, u64) {
    (0, 0)
}

#[derive(Serialize)]
pub struct StatsJson {
    version: &'static str,
    health: String,
    start_time: i64,
    topics: Option<Vec<TopicStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    producers: Option<Vec<ClientStats>>,
}

pub fn stats_json(ctx: &ApiContext, stats: ShardStats, include_mem: bool) -> StatsJson {
    // `[]` when a channel filter leaves nothing of a topic nsqd has.
    let topics = if stats.topic_missing {
        None
    } else {
        Some(stats.topics)
    };
    let producers = if stats.producers.is_empty() {
        None
    } else {
        Some(stats.producers)
    };
    StatsJson {
        version: squall_core::NSQD_VERSION,
        health: ctx.health.clone(),
        start_time: ctx.start_time,
        topics,
        memory: include_mem.then(memory),
        producers,
    }
}

/// The default text form, laid out as nsqd lays it out.
pub fn stats_text(ctx: &ApiContext, stats: &ShardStats, include_mem: bool) -> Vec<u8> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "nsqd v{} (squalld v{})",
        squall_core::NSQD_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(s, "start_time {}", rfc3339(ctx.start_time));
    let _ = writeln!(
        s,
        "uptime {}",
        go_duration(ctx.started.elapsed().as_nanos() as u64)
    );
    let _ = write!(s, "\nHealth: {}\n", ctx.health);
    if include_mem {
        let m = memory();
        s.push_str("\nMemory:\n");
        for (k, v) in [
            ("heap_objects", m.heap_objects),
            ("heap_idle_bytes", m.heap_idle_bytes),
            ("heap_in_use_bytes", m.heap_in_use_bytes),
            ("heap_released_bytes", m.heap_released_bytes),
            ("gc_pause_usec_100", m.gc_pause_usec_100),
            ("gc_pause_usec_99", m.gc_pause_usec_99),
            ("gc_pause_usec_95", m.gc_pause_usec_95),
            ("next_gc_bytes", m.next_gc_bytes),
            ("gc_total_runs", m.gc_total_runs as u64),
        ] {
            let _ = writeln!(s, "   {k:<25}\t{v}");
        }
    }
    if stats.topics.is_empty() {
        s.push_str("\nTopics: None\n");
    } else {
        s.push_str("\nTopics:");
    }
    for t in &stats.topics {
        let p = if t.paused { "*P " } else { "   " };
        let _ = writeln!(
            s,
            "\n{p}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
            t.topic_name,
            t.depth,
            t.backend_depth,
            t.message_count,
            e2e(&t.e2e_processing_latency)
        );
        for c in &t.channels {
            let p = if c.paused { "   *P " } else { "      " };
            let _ = writeln!(
                s,
                "{p}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                c.channel_name,
                c.depth,
                c.backend_depth,
                c.in_flight_count,
                c.deferred_count,
                c.requeue_count,
                c.timeout_count,
                c.message_count,
                e2e(&c.e2e_processing_latency)
            );
            for client in c.clients.iter().flatten() {
                let _ = writeln!(s, "        {}", client_line(client, ctx.start_time_now()));
            }
        }
    }
    if stats.producers.is_empty() {
        s.push_str("\nProducers: None\n");
    } else {
        s.push_str("\nProducers:\n");
        for p in &stats.producers {
            let _ = writeln!(s, "   {}", client_line(p, ctx.start_time_now()));
        }
    }
    s.into_bytes()
}

impl ApiContext {
    fn start_time_now(&self) -> i64 {
        self.start_time + self.started.elapsed().as_secs() as i64
    }
}

fn client_line(c: &ClientStats, now: i64) -> String {
    let port = c.remote_address.rsplit_once(':').map_or("", |(_, p)| p);
    let id = format!("{}:{} {}", c.hostname, port, c.user_agent);
    let connected = go_duration(((now - c.connect_ts).max(0) as u64) * 1_000_000_000);
    if c.pub_counts.is_empty() {
        format!(
            "[{} {:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {}",
            c.version,
            id,
            c.state,
            c.in_flight_count,
            c.ready_count,
            c.finish_count,
            c.requeue_count,
            c.message_count,
            connected
        )
    } else {
        let total: u64 = c.pub_counts.iter().map(|p| p.count).sum();
        let topics: Vec<String> = c
            .pub_counts
            .iter()
            .map(|p| format!("{}={}", p.topic, p.count))
            .collect();
        format!(
            "[{} {:<21}] msgs: {:<8} topics: {} connected: {}",
            c.version,
            id,
            total,
            topics.join(","),
            connected
        )
    }
}

fn e2e(l: &E2eLatency) -> String {
    let Some(ps) = &l.percentiles else {
        return String::new();
    };
    ps.iter()
        .map(|p| {
            let v = p.value;
            if v > 1e9 {
                format!("{:.1}s", v / 1e9)
            } else if v > 1e6 {
                format!("{:.1}ms", v / 1e6)
            } else if v > 1e3 {
                format!("{:.1}us", v / 1e3)
            } else {
                format!("{v:.1}ns")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `time.Duration.String()`.
pub fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim_fraction(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim_fraction(ns, 1_000_000));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let rest = ns % 60_000_000_000;
    let secs = trim_fraction(rest, 1_000_000_000);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{secs}s");
    out
}

/// `v / unit` with the fraction written out and trailing zeros dropped.
fn trim_fraction(v: u64, unit: u64) -> String {
    let whole = v / unit;
    let frac = v % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Unix seconds as RFC 3339 in UTC.
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(3_723_456_789_000), "1h2m3.456789s");
        assert_eq!(go_duration(61_000_000_000), "1m1s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(250_000_000), "250ms");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_100_000), "2025-11-25T19:46:40Z");
    }
}
