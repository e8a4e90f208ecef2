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
        let node = Node::start(config).expect("node starts");
        let addr = node.tcp_address();
        TestNode {
            node: Some(node),
            addr,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
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

    /// The server closed the connection: EOF (or reset) before the read timeout.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    // Only heartbeats may still arrive before the close.
                    assert!(
                        n > 0 && Instant::now() < deadline,
                        "unexpected bytes before close: {:?}",
                        &buf[..n]
                    );
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("connection not closed: {e}"),
            }
        }
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
