//! statsd push like nsqd's (spec A.10): a thread of its own, not a shard, so it may block.
//!
//! Every `--statsd-interval` it reads the node's stats through the node's own HTTP API, on
//! loopback or its Unix socket (`GET /stats?format=json`), so **statsd needs the HTTP
//! listener**: with `--http-address=` it logs a warning and sends nothing. It then writes nsqd's
//! lines, `<prefix><stat>:<value>|c` (counters: deltas since the last push) or `|g` (gauges),
//! packed into UDP packets of at most `--statsd-udp-packet-size` bytes (a single line longer
//! than that goes alone in its own packet). Unlike nsqd the packets of one push are sent at
//! once, not spread over the interval.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{log_error, log_warn, ListenAddr};

/// How long one stats request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest stats answer read (a guard against a runaway body, not a real limit).
const STATS_BODY_MAX: u64 = 256 << 20;

/// What the statsd thread needs (from the `--statsd-*` flags).
#[derive(Clone, Debug)]
pub struct StatsdConfig {
    /// UDP `host:port` of the statsd daemon.
    pub address: String,
    /// Already expanded (`%s` replaced) and ending in `.` unless empty.
    pub prefix: String,
    pub interval: Duration,
    pub mem_stats: bool,
    pub udp_packet_size: usize,
    pub exclude_ephemeral: bool,
}

/// nsqd's prefix: `--statsd-prefix` with `%s` replaced by `<broadcast address>:<broadcast HTTP
/// port>` (joined as Go's `net.JoinHostPort`, so an IPv6 address is bracketed) with `.` and `:`
/// turned into `_`, plus a trailing `.` if missing (spec A.10).
pub fn expand_prefix(prefix: &str, broadcast_address: &str, http_port: i64) -> String {
    let host = if broadcast_address.contains(':') {
        format!("[{broadcast_address}]:{http_port}")
    } else {
        format!("{broadcast_address}:{http_port}")
    };
    let mut p = prefix.replace("%s", &host.replace(['.', ':'], "_"));
    if !p.is_empty() && !p.ends_with('.') {
        p.push('.');
    }
    p
}

/// The running statsd thread; dropping it stops the thread.
pub struct Statsd {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Statsd {
    /// Starts pushing the stats of the node whose HTTP API listens on `http`.
    pub fn start(config: StatsdConfig, http: ListenAddr) -> io::Result<Statsd> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("squalld-statsd".to_string())
            .spawn(move || run(config, http, &flag))?;
        Ok(Statsd {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (it sends nothing more) and waits for it (at most one stats request).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Statsd {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(config: StatsdConfig, http: ListenAddr, stop: &(Mutex<bool>, Condvar)) {
    let mut pusher = Pusher::new(config.clone());
    let interval = config.interval.max(Duration::from_millis(1));
    let mut next = Instant::now() + interval;
    loop {
        {
            let (lock, cvar) = stop;
            let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if *stopped {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stopped = cvar
                    .wait_timeout(stopped, next - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        next += interval;
        if next < Instant::now() {
            next = Instant::now() + interval;
        }
        match get_stats(&http, config.mem_stats) {
            Ok(stats) => {
                let lines = pusher.lines(&stats);
                if let Err(e) = send(&config.address, &lines, config.udp_packet_size) {
                    log_error!("STATSD: failed to send to {} - {e}", config.address);
                }
            }
            Err(e) => log_error!("STATSD: failed to read stats from {http} - {e}"),
        }
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A connection to the node's own HTTP API, with `HTTP_TIMEOUT` on every read and write.
fn connect(http: &ListenAddr) -> io::Result<Box<dyn Stream>> {
    Ok(match http {
        ListenAddr::Tcp(addr) => {
            let s = TcpStream::connect_timeout(addr, HTTP_TIMEOUT)?;
            s.set_read_timeout(Some(HTTP_TIMEOUT))?;
            s.set_write_timeout(Some(HTTP_TIMEOUT))?;
            Box::new(s)
        }
        ListenAddr::Unix(name) => {
            let s = connect_unix(name)?;
            s.set_read_timeout(Some(HTTP_TIMEOUT))?;
            s.set_write_timeout(Some(HTTP_TIMEOUT))?;
            Box::new(s)
        }
    })
}

/// A Unix socket by the name the listener reports: `@name` is in the abstract namespace.
fn connect_unix(name: &Path) -> io::Result<UnixStream> {
    match name.as_os_str().as_bytes().split_first() {
        Some((b'@', abstract_name)) => {
            UnixStream::connect_addr(&UnixAddr::from_abstract_name(abstract_name)?)
        }
        _ => UnixStream::connect(name),
    }
}

/// Marks statsd's own `/stats` requests, which the request log leaves out (nsqd's statsd reads
/// its stats in-process and logs nothing).
pub(crate) const USER_AGENT: &str = "squalld-statsd";

/// `GET /stats?format=json` on the node's own HTTP API, one connection per request.
fn get_stats(http: &ListenAddr, mem: bool) -> io::Result<Value> {
    let mut s = connect(http)?;
    let host = match http {
        ListenAddr::Tcp(addr) => addr.to_string(),
        ListenAddr::Unix(_) => "localhost".to_string(),
    };
    let req = format!(
        "GET /stats?format=json&include_clients=false&include_mem={mem} HTTP/1.1\r\n\
         Host: {host}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.take(STATS_BODY_MAX).read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(io::Error::other(format!("HTTP status {status}")));
    }
    let mut body = &raw[end + 4..];
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = length {
        body = &body[..n.min(body.len())];
    }
    serde_json::from_slice(body).map_err(io::Error::other)
}

/// Last pushed counter values, by stat name.
pub(crate) struct Pusher {
    config: StatsdConfig,
    last: HashMap<String, u64>,
}

impl Pusher {
    pub(crate) fn new(config: StatsdConfig) -> Pusher {
        Pusher {
            config,
            last: HashMap::new(),
        }
    }

    /// The lines of one push (each ends in `\n`), as nsqd's `statsLoop` writes them.
    pub(crate) fn lines(&mut self, stats: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        let empty = Vec::new();
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        for topic in list(&stats["topics"]) {
            let t = topic["topic_name"].as_str().unwrap_or("");
            if self.config.exclude_ephemeral && t.ends_with("#ephemeral") {
                continue;
            }
            for key in ["message_count", "message_bytes"] {
                self.counter(&mut out, &mut seen, format!("topic.{t}.{key}"), &topic[key]);
            }
            for key in ["depth", "backend_depth"] {
                self.gauge(&mut out, format!("topic.{t}.{key}"), &topic[key]);
            }
            self.e2e(&mut out, &format!("topic.{t}"), &topic["e2e_processing_latency"]);
            for ch in topic["channels"].as_array().unwrap_or(&empty) {
                let c = ch["channel_name"].as_str().unwrap_or("");
                if self.config.exclude_ephemeral && c.ends_with("#ephemeral") {
                    continue;
                }
                let base = format!("topic.{t}.channel.{c}");
                for key in ["message_count", "requeue_count", "timeout_count"] {
                    self.counter(&mut out, &mut seen, format!("{base}.{key}"), &ch[key]);
                }
                for key in ["depth", "backend_depth", "in_flight_count", "deferred_count"] {
                    self.gauge(&mut out, format!("{base}.{key}"), &ch[key]);
                }
                self.gauge(&mut out, format!("{base}.clients"), &ch["client_count"]);
                self.e2e(&mut out, &base, &ch["e2e_processing_latency"]);
            }
        }
        if self.config.mem_stats {
            let mem = &stats["memory"];
            for key in [
                "heap_objects",
                "heap_idle_bytes",
                "heap_in_use_bytes",
                "heap_released_bytes",
                "gc_pause_usec_100",
                "gc_pause_usec_99",
                "gc_pause_usec_95",
                "next_gc_bytes",
            ] {
                self.gauge(&mut out, format!("mem.{key}"), &mem[key]);
            }
            self.counter(
                &mut out,
                &mut seen,
                "mem.gc_runs".to_string(),
                &mem["gc_total_runs"],
            );
        }
        // Forget counters of topics and channels that are gone: one coming back starts at 0.
        self.last = seen;
        out
    }

    fn counter(&self, out: &mut Vec<String>, seen: &mut HashMap<String, u64>, stat: String, v: &Value) {
        let now = v.as_u64().unwrap_or(0);
        let delta = now.saturating_sub(self.last.get(&stat).copied().unwrap_or(0));
        out.push(format!("{}{stat}:{delta}|c\n", self.config.prefix));
        seen.insert(stat, now);
    }

    fn gauge(&self, out: &mut Vec<String>, stat: String, v: &Value) {
        let value = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).unwrap_or(0);
        out.push(format!("{}{stat}:{value}|g\n", self.config.prefix));
    }

    /// `<base>.e2e_processing_latency_<quantile*100 rounded>` gauges (nanoseconds).
    fn e2e(&self, out: &mut Vec<String>, base: &str, e2e: &Value) {
        for p in e2e["percentiles"].as_array().into_iter().flatten() {
            let q = (p["quantile"].as_f64().unwrap_or(0.0) * 100.0).round();
            self.gauge(out, format!("{base}.e2e_processing_latency_{q:.0}"), &p["value"]);
        }
    }
}

/// Packs whole lines into packets of at most `max` bytes (a longer line goes alone).
pub(crate) fn pack(lines: &[String], max: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for line in lines {
        if !cur.is_empty() && cur.len() + line.len() > max {
            packets.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(line.as_bytes());
    }
    if !cur.is_empty() {
        packets.push(cur);
    }
    packets
}

fn send(address: &str, lines: &[String], max: usize) -> io::Result<()> {
    let to = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("address resolves to nothing"))?;
    let bind: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind)?;
    for packet in pack(lines, max.max(1)) {
        if packet.len() > max {
            log_warn!(
                "STATSD: a line of {} bytes exceeds --statsd-udp-packet-size",
                packet.len()
            );
        }
        socket.send_to(&packet, to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_prefix_names_the_host_as_nsqd_does() {
        assert_eq!(expand_prefix("nsq.%s", "127.0.0.1", 4151), "nsq.127_0_0_1_4151.");
        assert_eq!(expand_prefix("nsq.%s.", "h.example", 0), "nsq.h_example_0.");
        // Go's net.JoinHostPort brackets an IPv6 address; the brackets stay.
        assert_eq!(expand_prefix("nsq.%s", "::1", 4151), "nsq.[__1]_4151.");
        assert_eq!(expand_prefix("plain", "h", 1), "plain.");
        assert_eq!(expand_prefix("", "h", 1), "");
    }

    fn config() -> StatsdConfig {
        StatsdConfig {
            address: String::new(),
            prefix: "nsq.h_1.".to_string(),
            interval: Duration::from_secs(1),
            mem_stats: true,
            udp_packet_size: 508,
            exclude_ephemeral: true,
        }
    }

    #[test]
    fn lines_deltas_gauges_and_ephemeral() {
        let mut p = Pusher::new(config());
        let stats = |count: u64| {
            json!({"topics": [
                {"topic_name": "t", "depth": 3, "backend_depth": 1, "message_count": count,
                 "message_bytes": count * 2,
                 "e2e_processing_latency": {"count": 1, "percentiles": [{"quantile": 0.99, "value": 1500.0}]},
                 "channels": [
                    {"channel_name": "c", "depth": 1, "backend_depth": 0, "in_flight_count": 2,
                     "deferred_count": 0, "message_count": count, "requeue_count": 0,
                     "timeout_count": 0, "client_count": 1,
                     "e2e_processing_latency": {"count": 0, "percentiles": null}},
                    {"channel_name": "e#ephemeral", "message_count": 1}]},
                {"topic_name": "x#ephemeral", "message_count": 5, "channels": []}],
             "memory": {"heap_in_use_bytes": 10, "gc_total_runs": 0}})
        };
        let first = p.lines(&stats(5)).concat();
        assert!(first.contains("nsq.h_1.topic.t.message_count:5|c\n"), "{first}");
        assert!(first.contains("nsq.h_1.topic.t.message_bytes:10|c\n"));
        assert!(first.contains("nsq.h_1.topic.t.depth:3|g\n"));
        assert!(first.contains("nsq.h_1.topic.t.e2e_processing_latency_99:1500|g\n"));
        assert!(first.contains("nsq.h_1.topic.t.channel.c.in_flight_count:2|g\n"));
        assert!(first.contains("nsq.h_1.topic.t.channel.c.clients:1|g\n"));
        assert!(first.contains("nsq.h_1.mem.heap_in_use_bytes:10|g\n"));
        assert!(first.contains("nsq.h_1.mem.gc_runs:0|c\n"));
        assert!(!first.contains("ephemeral"), "{first}");
        let second = p.lines(&stats(8)).concat();
        assert!(second.contains("nsq.h_1.topic.t.message_count:3|c\n"), "{second}");
        assert!(second.contains("nsq.h_1.topic.t.channel.c.message_count:3|c\n"));
    }

    #[test]
    fn packets_hold_whole_lines_within_the_limit() {
        let lines: Vec<String> = (0..100).map(|i| format!("nsq.a.b.{i}:1|c\n")).collect();
        let packets = pack(&lines, 50);
        assert!(packets.iter().all(|p| p.len() <= 50 && p.ends_with(b"\n")));
        assert_eq!(packets.concat(), lines.concat().into_bytes());
        let long = vec!["x".repeat(80)];
        assert_eq!(pack(&long, 50).len(), 1);
    }
}
