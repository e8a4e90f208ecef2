//! Claim: a node listens on Unix socket paths for NSQ TCP and HTTP as nsqd does (spec §1.1,
//! §11.4 `TestUnixSocketStartup`): clients publish and consume over the socket, on topics of
//! every shard; the HTTP API answers over its socket; `/stats` shows a Unix client's address as
//! nsqd does (`@`, no client id or hostname); `/info` reports -1 for both ports and lookupd is
//! told 0 (a Unix socket has no port); the socket files are gone once the node is.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use squall::lookupd::{start_lookupd, LookupdStart};
use squall::{ListenAddr, Node, NodeConfig};
use squall_core::options::Options;

use common::{topic_on_shard, FRAME_MESSAGE, FRAME_RESPONSE, READ_TIMEOUT};

/// A fresh directory for one test's sockets, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("squall-unix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Raw V2 bytes over a Unix stream.
struct UnixClient(UnixStream);

impl UnixClient {
    fn connect(path: &Path) -> UnixClient {
        let stream = UnixStream::connect(path).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut c = UnixClient(stream);
        c.send(b"  V2");
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("write");
    }

    fn read_frame(&mut self) -> (i32, Vec<u8>) {
        let mut head = [0u8; 8];
        self.0.read_exact(&mut head).expect("frame header");
        let size = u32::from_be_bytes(head[0..4].try_into().unwrap()) as usize;
        let frame_type = i32::from_be_bytes(head[4..8].try_into().unwrap());
        let mut data = vec![0u8; size - 4];
        self.0.read_exact(&mut data).expect("frame body");
        (frame_type, data)
    }

    fn expect_ok(&mut self) {
        assert_eq!(self.read_frame(), (FRAME_RESPONSE, b"OK".to_vec()));
    }

    fn publish(&mut self, topic: &str, body: &[u8]) {
        let mut cmd = format!("PUB {topic}\n").into_bytes();
        cmd.extend_from_slice(&(body.len() as u32).to_be_bytes());
        cmd.extend_from_slice(body);
        self.send(&cmd);
    }

    /// The next message's id and body.
    fn read_message(&mut self) -> ([u8; 16], Vec<u8>) {
        let (frame_type, data) = self.read_frame();
        assert_eq!(frame_type, FRAME_MESSAGE, "{}", String::from_utf8_lossy(&data));
        (data[10..26].try_into().unwrap(), data[26..].to_vec())
    }
}

/// One `GET` over the HTTP API's Unix socket: status and body.
fn unix_get(path: &Path, target: &str) -> (u16, String) {
    let mut s = UnixStream::connect(path).expect("HTTP connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("HTTP answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    (head[9..12].parse().unwrap(), body.to_string())
}

fn json_get(path: &Path, target: &str) -> Value {
    let (status, body) = unix_get(path, target);
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn unix_node(dir: &Path) -> (NodeConfig, PathBuf, PathBuf) {
    let (tcp, http) = (dir.join("nsqd.sock"), dir.join("http.sock"));
    let mut config = NodeConfig::for_tests(Options::default());
    config.tcp_address = ListenAddr::Unix(tcp.clone());
    config.http_address = Some(ListenAddr::Unix(http.clone()));
    config.grpc_address = None;
    (config, tcp, http)
}

#[test]
fn publish_consume_and_the_http_api_over_unix_sockets() {
    let dir = TempDir::new("node");
    let (config, tcp, http) = unix_node(&dir.0);
    let node = Node::start(config).expect("node starts");
    assert_eq!(node.tcp_address(), &ListenAddr::Unix(tcp.clone()));
    assert_eq!(node.http_address(), Some(&ListenAddr::Unix(http.clone())));

    assert_eq!(unix_get(&http, "/ping"), (200, "OK".to_string()));
    let info = json_get(&http, "/info");
    assert_eq!(
        (&info["tcp_port"], &info["http_port"]),
        (&Value::from(-1), &Value::from(-1))
    );

    // One topic per shard: whichever shard accepted the producer forwards one of them, and
    // each consumer moves to its topic's shard.
    let mut producer = UnixClient::connect(&tcp);
    for shard in 0..2 {
        let topic = topic_on_shard("unix", shard, 2);
        producer.publish(&topic, format!("hello {shard}").as_bytes());
        producer.expect_ok();

        let mut consumer = UnixClient::connect(&tcp);
        consumer.send(format!("SUB {topic} ch\n").as_bytes());
        consumer.expect_ok();
        consumer.send(b"RDY 1\n");
        let (id, body) = consumer.read_message();
        assert_eq!(body, format!("hello {shard}").as_bytes());
        consumer.send(&[b"FIN ", &id[..], b"\n"].concat());

        let stats = json_get(&http, &format!("/stats?format=json&topic={topic}"));
        let channel = &stats["topics"][0]["channels"][0];
        let client = &channel["clients"][0];
        assert_eq!(client["remote_address"], "@", "{stats}");
        assert_eq!(
            (&client["client_id"], &client["hostname"]),
            (&"".into(), &"".into())
        );
        // The FIN is counted once the consumer's shard has read it.
        let deadline = Instant::now() + READ_TIMEOUT;
        while json_get(&http, &format!("/stats?format=json&topic={topic}"))["topics"][0]["channels"][0]
            ["clients"][0]["finish_count"]
            != 1
        {
            assert!(Instant::now() < deadline, "FIN never counted");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let stats = json_get(&http, "/stats?format=json");
    let producers = stats["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1, "{stats}");
    assert_eq!(producers[0]["remote_address"], "@");
    // nsqd's text form: no host and no port in the client's `[V2 host:port user-agent]`.
    let (_, text) = unix_get(&http, "/stats");
    assert!(text.contains("\n   [V2 :                    ] msgs: "), "{text}");

    drop(producer);
    node.shutdown();
    node.join().expect("node exits cleanly");
    assert!(!tcp.exists() && !http.exists(), "socket files left behind");
}

/// nsqd tells lookupd `--broadcast-tcp-port`/`--broadcast-http-port`, which stay 0 on a Unix
/// socket unless given. nsqlookupd refuses an IDENTIFY with a port of 0 (`E_BAD_BODY IDENTIFY
/// missing fields`), so such a node registers nothing; with the ports given it registers them.
#[test]
fn lookupd_gets_the_broadcast_ports_which_stay_zero_unless_given() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    for (broadcast_tcp_port, broadcast_http_port) in [(0, 0), (4150, 4151)] {
        let dir = TempDir::new(&format!("lookup-{broadcast_tcp_port}"));
        let (mut config, tcp, http) = unix_node(&dir.0);
        config.lookupd_tcp_addresses = vec![lookupd.tcp_address().to_string()];
        config.broadcast_tcp_port = broadcast_tcp_port;
        config.broadcast_http_port = broadcast_http_port;
        for key in ["broadcast_tcp_port", "broadcast_http_port"] {
            config.config_values.insert(key.to_string(), Value::from(-1)); // filled in at start
        }
        let node = Node::start(config).expect("node starts");
        let text = |opt: &str| unix_get(&http, &format!("/config/{opt}")).1;
        assert_eq!(text("broadcast_tcp_port"), broadcast_tcp_port.to_string());
        assert_eq!(text("broadcast_http_port"), broadcast_http_port.to_string());

        let mut producer = UnixClient::connect(&tcp);
        producer.publish("registered", b"m");
        producer.expect_ok();
        let lookup = || {
            let (status, body) = common_http(lookupd.http_address(), "/lookup?topic=registered");
            (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
        };
        if broadcast_tcp_port == 0 {
            // Long enough for the registration and a retry of the refused IDENTIFY.
            std::thread::sleep(Duration::from_millis(1500));
            assert_eq!(lookup(), None, "registered with port 0");
        } else {
            let deadline = Instant::now() + Duration::from_secs(15);
            let found = loop {
                if let Some(found) = lookup() {
                    break found;
                }
                assert!(Instant::now() < deadline, "never registered");
                std::thread::sleep(Duration::from_millis(20));
            };
            let producer_entry = &found["producers"][0];
            assert_eq!(producer_entry["tcp_port"], broadcast_tcp_port, "{found}");
            assert_eq!(producer_entry["http_port"], broadcast_http_port, "{found}");
        }
        drop(producer);
        node.shutdown();
        node.join().expect("node exits cleanly");
    }
    lookupd.shutdown();
    lookupd.join().unwrap();
}

/// One `GET` over TCP with `Connection: close`: status and body (any status).
fn common_http(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_string())
}
