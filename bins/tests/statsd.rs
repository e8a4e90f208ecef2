//! statsd push (spec A.10): a node pointed at a loopback UDP socket sends nsqd's metric lines,
//! counters as deltas, in packets no larger than `--statsd-udp-packet-size`; also when its HTTP
//! API (which statsd reads the stats from) is on a Unix socket.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use squall::{Node, NodeConfig};
use squall_core::options::Options;

const PACKET_MAX: usize = 200;

struct Receiver {
    socket: UdpSocket,
    /// Every line received so far, in order.
    lines: Vec<String>,
}

impl Receiver {
    /// Receives until some line equals `want`; panics after a bounded wait.
    fn wait_for(&mut self, want: &str) {
        if self.lines.iter().any(|l| l == want) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => panic!("recv: {e}"),
            };
            assert!(n <= PACKET_MAX, "packet of {n} bytes");
            let packet = std::str::from_utf8(&buf[..n]).expect("UTF-8 packet");
            assert!(packet.ends_with('\n'), "{packet:?}");
            for line in packet.lines() {
                check_line(line);
                self.lines.push(line.to_string());
            }
            if self.lines.iter().any(|l| l == want) {
                return;
            }
        }
        panic!("no line {want:?} in {:#?}", self.lines);
    }
}

/// `<prefix><stat>:<value>|c` or `|g`, with the right type for the stat.
fn check_line(line: &str) {
    let rest = line
        .strip_prefix("nsq.test.")
        .unwrap_or_else(|| panic!("prefix: {line}"));
    let (stat, value) = rest.split_once(':').unwrap_or_else(|| panic!("{line}"));
    let (value, kind) = value.split_once('|').unwrap_or_else(|| panic!("{line}"));
    value.parse::<i64>().unwrap_or_else(|_| panic!("value: {line}"));
    let counter = [
        ".message_count",
        ".message_bytes",
        ".requeue_count",
        ".timeout_count",
        "mem.gc_runs",
    ]
    .iter()
    .any(|s| stat.ends_with(s));
    assert_eq!(kind, if counter { "c" } else { "g" }, "{line}");
}

#[test]
fn statsd_pushes_counters_and_gauges() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut config = NodeConfig::for_tests(Options::default());
    config.statsd_address = Some(socket.local_addr().unwrap().to_string());
    config.statsd_prefix = "nsq.test.".to_string();
    config.statsd_interval_ms = 200;
    config.statsd_udp_packet_size = PACKET_MAX;
    config.statsd_mem_stats = true;
    let node = Node::start(config).unwrap();
    let mut rx = Receiver {
        socket,
        lines: Vec::new(),
    };

    let mut c = Client::connect(node.tcp_address().as_tcp().unwrap());
    c.sub("sd", "ch");
    let mut p = Client::connect(node.tcp_address().as_tcp().unwrap());
    // One MPUB: the three messages land in one push's delta.
    p.mpub("sd", &[b"a", b"b", b"c"]);
    p.expect_ok();
    c.cmd("RDY 10");
    for _ in 0..3 {
        let m = c.read_message();
        c.fin(&m.id);
    }

    rx.wait_for("nsq.test.topic.sd.message_count:3|c");
    rx.wait_for("nsq.test.topic.sd.message_bytes:3|c");
    rx.wait_for("nsq.test.topic.sd.channel.ch.message_count:3|c");
    rx.wait_for("nsq.test.topic.sd.channel.ch.clients:1|g");
    // Once nothing changes, the counters push zero deltas and the gauges the current values.
    rx.wait_for("nsq.test.topic.sd.message_count:0|c");
    rx.wait_for("nsq.test.topic.sd.depth:0|g");
    rx.wait_for("nsq.test.topic.sd.channel.ch.in_flight_count:0|g");
    let stats: Vec<&str> = rx.lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    for stat in [
        "nsq.test.topic.sd.backend_depth",
        "nsq.test.topic.sd.channel.ch.depth",
        "nsq.test.topic.sd.channel.ch.backend_depth",
        "nsq.test.topic.sd.channel.ch.deferred_count",
        "nsq.test.topic.sd.channel.ch.requeue_count",
        "nsq.test.topic.sd.channel.ch.timeout_count",
        "nsq.test.mem.heap_in_use_bytes",
        "nsq.test.mem.next_gc_bytes",
        "nsq.test.mem.gc_runs",
    ] {
        assert!(stats.contains(&stat), "{stat} missing from {stats:#?}");
    }

    // A later publish shows up as a delta of exactly its size.
    p.mpub("sd", &[b"dd", b"ee"]);
    p.expect_ok();
    rx.wait_for("nsq.test.topic.sd.message_count:2|c");
    rx.wait_for("nsq.test.topic.sd.message_bytes:4|c");
    let totals: u64 = rx
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("nsq.test.topic.sd.message_count:"))
        .map(|v| v.trim_end_matches("|c").parse::<u64>().unwrap())
        .sum();
    assert_eq!(totals, 5, "deltas add up to the topic's count");

    node.shutdown();
    node.join().unwrap();
}

#[test]
fn statsd_reads_the_stats_from_a_unix_socket_http_api() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let dir = std::env::temp_dir().join(format!("squall-statsd-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = NodeConfig::for_tests(Options::default());
    config.http_address = Some(squall::ListenAddr::Unix(dir.join("http.sock")));
    config.statsd_address = Some(socket.local_addr().unwrap().to_string());
    config.statsd_prefix = "nsq.test.".to_string();
    config.statsd_interval_ms = 100;
    config.statsd_udp_packet_size = PACKET_MAX;
    let node = Node::start(config).unwrap();
    let mut rx = Receiver {
        socket,
        lines: Vec::new(),
    };
    let mut p = Client::connect(node.tcp_address().as_tcp().unwrap());
    p.publish("sdu", b"m");
    p.expect_ok();
    rx.wait_for("nsq.test.topic.sdu.message_count:1|c");
    node.shutdown();
    node.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
