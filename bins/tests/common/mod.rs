//! A raw-byte NSQ client for black-box tests: it writes exact command bytes and reads exact frames.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use squall::{Node, NodeConfig};
use squall_core::options::Options;

pub const FRAME_RESPONSE: i32 = 0;
pub const FRAME_ERROR: i32 = 1;
pub const FRAME_MESSAGE: i32 = 2;

/// Longest any test waits for one frame.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TestNode {
    node: Option<Node>,
    pub addr: SocketAddr,
}

impl TestNode {
    pub fn start(options: Options) -> TestNode {
        Self::start_with_shards(options, 2)
    }

    pub fn start_with_shards(options: Options, shards: usize) -> TestNode {
        let mut config = NodeConfig::for_tests(options);
        config.shards = shards;
        Self::start_config(config)
    }

    /// A node from a whole configuration (TLS, listeners).
    pub fn start_config(config: NodeConfig) -> TestNode {
        let node = Node::start(config).expect("node starts");
        let addr = node.tcp_address().as_tcp().unwrap();
        TestNode {
            node: Some(node),
            addr,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The node's HTTP address (`NodeConfig::for_tests` always turns HTTP on).
    pub fn http_addr(&self) -> SocketAddr {
        self.node
            .as_ref()
            .and_then(|n| n.http_address()?.as_tcp())
            .expect("HTTP is on")
    }

    pub fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown();
            node.join().expect("node exits cleanly");
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown();
            let _ = node.join();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub timestamp_ns: i64,
    pub attempts: u16,
    pub id: [u8; 16],
    pub body: Vec<u8>,
}

pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    /// Connects without sending the magic.
    pub fn connect_raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client { stream }
    }

    /// Connects and sends the V2 magic.
    pub fn connect(addr: SocketAddr) -> Client {
        let mut c = Self::connect_raw(addr);
        c.send(b"  V2");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// A command line followed by a size-prefixed body.
    pub fn send_with_body(&mut self, line: &str, body: &[u8]) {
        let mut buf = Vec::with_capacity(line.len() + 5 + body.len());
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(body);
        self.send(&buf);
    }

    pub fn identify(&mut self, json: &str) {
        self.send_with_body("IDENTIFY", json.as_bytes());
    }

    pub fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send_with_body(&format!("PUB {topic}"), body);
    }

    pub fn mpub(&mut self, topic: &str, bodies: &[&[u8]]) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
        for b in bodies {
            payload.extend_from_slice(&(b.len() as u32).to_be_bytes());
            payload.extend_from_slice(b);
        }
        self.send_with_body(&format!("MPUB {topic}"), &payload);
    }

    pub fn cmd(&mut self, line: &str) {
        let mut buf = line.as_bytes().to_vec();
        buf.push(b'\n');
        self.send(&buf);
    }

    /// Reads one frame, skipping heartbeats unless asked for.
    pub fn read_frame_raw(&mut self) -> (i32, Vec<u8>) {
        let mut head = [0u8; 4];
        self.stream.read_exact(&mut head).expect("frame size");
        let size = u32::from_be_bytes(head) as usize;
        let mut rest = vec![0u8; size];
        self.stream.read_exact(&mut rest).expect("frame body");
        let ft = i32::from_be_bytes(rest[..4].try_into().unwrap());
        (ft, rest[4..].to_vec())
    }

    pub fn read_frame(&mut self) -> (i32, Vec<u8>) {
        loop {
            let (ft, data) = self.read_frame_raw();
            if ft == FRAME_RESPONSE && data == b"_heartbeat_" {
                continue;
            }
            return (ft, data);
        }
    }

    pub fn expect_response(&mut self, expect: &[u8]) {
        let (ft, data) = self.read_frame();
        assert_eq!(
            (ft, String::from_utf8_lossy(&data).to_string()),
            (FRAME_RESPONSE, String::from_utf8_lossy(expect).to_string())
        );
    }

    pub fn expect_ok(&mut self) {
        self.expect_response(b"OK");
    }

    pub fn expect_error(&mut self, expect: &str) {
        let (ft, data) = self.read_frame();
        assert_eq!(
            (ft, String::from_utf8_lossy(&data).to_string()),
            (FRAME_ERROR, expect.to_string())
        );
    }

    /// The server closed the connection: EOF (or reset) before the read timeout, with nothing
    /// but heartbeats before it.
    pub fn expect_closed(&mut self) {
        const HEARTBEAT: &[u8] = b"\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_";
        let mut buf = [0u8; 64];
        let mut before_close = Vec::new();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => before_close.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection not closed: {e}"),
            }
        }
        assert!(
            before_close.chunks(HEARTBEAT.len()).all(|c| c == HEARTBEAT),
            "unexpected bytes before close: {before_close:?}"
        );
    }

    /// Nothing arrives within `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Ok(n) => panic!("unexpected {n} bytes: {:?}", &buf[..n]),
            Err(e) => panic!("read failed: {e}"),
        }
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    }

    pub fn read_message(&mut self) -> Msg {
        let (ft, data) = self.read_frame();
        assert_eq!(
            ft,
            FRAME_MESSAGE,
            "expected a message, got {:?}",
            String::from_utf8_lossy(&data)
        );
        parse_message(&data)
    }

    pub fn sub(&mut self, topic: &str, channel: &str) {
        self.cmd(&format!("SUB {topic} {channel}"));
        self.expect_ok();
    }

    pub fn fin(&mut self, id: &[u8; 16]) {
        let mut buf = b"FIN ".to_vec();
        buf.extend_from_slice(id);
        buf.push(b'\n');
        self.send(&buf);
    }
}

pub fn parse_message(data: &[u8]) -> Msg {
    Msg {
        timestamp_ns: i64::from_be_bytes(data[0..8].try_into().unwrap()),
        attempts: u16::from_be_bytes(data[8..10].try_into().unwrap()),
        id: data[10..26].try_into().unwrap(),
        body: data[26..].to_vec(),
    }
}

/// A topic name that `squall_core::broker::shard_for_topic` puts on `shard` of `shards`.
pub fn topic_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|t| {
            let name = squall_core::names::Name::new(t.as_bytes()).unwrap();
            squall_core::broker::shard_for_topic(&name, shards) == shard
        })
        .expect("some name lands on every shard")
}

/// One `GET` over a fresh HTTP/1.1 connection: the body of a 200 answer.
pub fn http_get(addr: SocketAddr, target: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("HTTP connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n");
    s.write_all(head.as_bytes()).expect("HTTP write");
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).expect("HTTP read");
        assert!(n > 0, "HTTP connection closed early");
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(": ")?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.parse().unwrap())
            })
            .expect("Content-Length");
        if got.len() >= end + 4 + len {
            return String::from_utf8_lossy(&got[end + 4..end + 4 + len]).to_string();
        }
    }
}

/// Open NSQ TCP connections, from `GET /metrics` (`squall_connections`).
pub fn open_connections(http: SocketAddr) -> u64 {
    let text = http_get(http, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("squall_connections "))
        .expect("squall_connections in /metrics")
        .trim()
        .parse()
        .unwrap()
}

/// Waits (bounded) until the node reports `want` open connections.
pub fn wait_for_connections(http: SocketAddr, want: u64) {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut now = open_connections(http);
    while now != want {
        assert!(
            Instant::now() < deadline,
            "open connections stuck at {now}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(10));
        now = open_connections(http);
    }
}

/// A well-behaved client pair on its own thread: publishes one message at a time on `topic` and
/// consumes it on channel `by` before the next, so every message is accounted for in order. Each
/// round trip is bounded by `READ_TIMEOUT` (a stalled bystander panics its thread).
pub struct Bystander {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handle: std::thread::JoinHandle<u64>,
}

impl Bystander {
    /// Starts and returns once the first message has made its round trip.
    pub fn start(addr: SocketAddr, topic: &str) -> Bystander {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d, topic) = (stop.clone(), done.clone(), topic.to_string());
        let mut c = Client::connect(addr);
        c.sub(&topic, "by");
        c.cmd("RDY 10");
        let mut p = Client::connect(addr);
        let handle = std::thread::spawn(move || {
            let mut i = 0u64;
            // Bounded: at most this many round trips.
            while !s.load(Ordering::Relaxed) && i < 1_000_000 {
                let body = format!("bystander-{i}");
                p.publish(&topic, body.as_bytes());
                p.expect_ok();
                let m = c.read_message();
                assert_eq!(m.body, body.as_bytes(), "bystander lost or reordered a message");
                assert_eq!(m.attempts, 1);
                c.fin(&m.id);
                i += 1;
                d.store(i, Ordering::Relaxed);
            }
            i
        });
        let b = Bystander { stop, done, handle };
        b.wait_for_progress(1);
        b
    }

    fn wait_for_progress(&self, past: u64) {
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.done.load(std::sync::atomic::Ordering::Relaxed) < past {
            assert!(
                !self.handle.is_finished(),
                "bystander thread failed (see its panic)"
            );
            assert!(Instant::now() < deadline, "bystander stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Checks it still makes progress now, stops it and returns how many messages went round.
    pub fn finish(self) -> u64 {
        let now = self.done.load(std::sync::atomic::Ordering::Relaxed);
        self.wait_for_progress(now + 2);
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .join()
            .expect("bystander lost nothing and never stalled")
    }
}

/// A tiny seeded xorshift64* generator (no crate needed).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

impl Client {
    /// Reads to EOF (or reset) within `READ_TIMEOUT`, skipping heartbeats: everything else the
    /// server sent before closing, as frames `(type, data)`. Panics if the server never closes.
    pub fn read_until_closed(&mut self) -> Vec<(i32, Vec<u8>)> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "server did not close");
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection not closed: {e}"),
            }
        }
        let mut frames = Vec::new();
        let mut rest = &got[..];
        while rest.len() >= 8 {
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(rest.len() >= 4 + size, "truncated frame before close: {got:?}");
            let ft = i32::from_be_bytes(rest[4..8].try_into().unwrap());
            let data = rest[8..4 + size].to_vec();
            if !(ft == FRAME_RESPONSE && data == b"_heartbeat_") {
                frames.push((ft, data));
            }
            rest = &rest[4 + size..];
        }
        assert!(rest.is_empty(), "trailing bytes before close: {got:?}");
        frames
    }

    /// Sends bytes, ignoring a failure (the server may already have closed on bad input).
    pub fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }
}
