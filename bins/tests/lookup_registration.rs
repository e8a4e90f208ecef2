//! squalld registers with nsqlookupd (spec §8, B.6): three nodes on loopback show up in
//! squall-lookupd's `/lookup` with their ports, their channels in `/channels`; a stopped node
//! disappears; a restarted lookupd is re-registered with; `PUT /config/nsqlookupd_tcp_addresses`
//! swaps peers; an HTTP publish refused after its topic name was read still registers the topic;
//! the bytes on the wire are nsqd 1.3.0's; a lookupd that never answers does not slow publishing
//! down; and a new topic starts with every channel lookupd knows for it, HTTP API or not. Every
//! wait is bounded.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use squall::lookupd::{start_lookupd, Lookupd, LookupdStart};
use squall::{Node, NodeConfig};
use squall_core::options::Options;

const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a registration change may take to reach lookupd.
const WAIT: Duration = Duration::from_secs(15);

// --- helpers ----------------------------------------------------------------------------------

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let raw = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let status = text[9..12].parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

fn start_node(lookupd: Option<&Lookupd>) -> Node {
    let mut config = NodeConfig::for_tests(Options::default());
    config.lookupd_tcp_addresses = lookupd.map(|l| l.tcp_address().to_string()).into_iter().collect();
    Node::start(config).expect("node starts")
}

fn stop_node(node: Node) {
    node.shutdown();
    node.join().expect("node exits cleanly");
}

fn publish(node: &Node, topic: &str, body: &str) {
    let (status, resp) = http(
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
        "POST",
        &format!("/pub?topic={topic}"),
        body,
    );
    assert_eq!((status, resp.as_str()), (200, "OK"));
}

fn node_post(node: &Node, target: &str) {
    let (status, resp) = http(
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
        "POST",
        target,
        "",
    );
    assert_eq!(status, 200, "{target}: {resp}");
}

/// `/lookup?topic=`'s producers as (tcp_port, http_port), or `None` on 404.
fn producers(lookupd: &Lookupd, topic: &str) -> Option<BTreeSet<(u16, u16)>> {
    let (status, body) = http(
        lookupd.http_address(),
        "GET",
        &format!("/lookup?topic={topic}"),
        "",
    );
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let set = v["producers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["broadcast_address"], "localhost", "{p}");
            assert_eq!(p["hostname"], "localhost", "{p}");
            assert_eq!(p["version"], "1.3.0", "{p}");
            (
                p["tcp_port"].as_u64().unwrap() as u16,
                p["http_port"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    Some(set)
}

fn channels(lookupd: &Lookupd, topic: &str) -> BTreeSet<String> {
    let (status, body) = http(
        lookupd.http_address(),
        "GET",
        &format!("/channels?topic={topic}"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn ports(node: &Node) -> (u16, u16) {
    (
        node.tcp_address().as_tcp().unwrap().port(),
        node.http_address().and_then(|a| a.as_tcp()).unwrap().port(),
    )
}

/// Polls `check` until it holds, for at most `WAIT`.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_producers(lookupd: &Lookupd, topic: &str, want: &[&Node]) {
    let want: BTreeSet<(u16, u16)> = want.iter().map(|n| ports(n)).collect();
    let mut last = None;
    let what = format!("/lookup?topic={topic} to list {want:?}");
    wait_for(&what, || {
        last = producers(lookupd, topic);
        last.as_ref() == Some(&want)
    });
}

// --- tests ------------------------------------------------------------------------------------

#[test]
fn three_nodes_register_stop_and_reregister_after_a_lookupd_restart() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    let nodes: Vec<Node> = (0..3).map(|_| start_node(Some(&lookupd))).collect();
    for (i, node) in nodes.iter().enumerate() {
        publish(node, "shared", "m");
        publish(node, &format!("own{i}"), "m");
    }
    wait_producers(&lookupd, "shared", &[&nodes[0], &nodes[1], &nodes[2]]);
    for (i, node) in nodes.iter().enumerate() {
        wait_producers(&lookupd, &format!("own{i}"), &[node]);
    }

    // A channel created on one node is listed; an ephemeral one goes with its deletion.
    node_post(&nodes[1], "/channel/create?topic=shared&channel=ch1");
    node_post(&nodes[2], "/channel/create?topic=shared&channel=tmp%23ephemeral");
    wait_for("ch1 and tmp#ephemeral in /channels", || {
        channels(&lookupd, "shared") == BTreeSet::from(["ch1".to_string(), "tmp#ephemeral".to_string()])
    });
    node_post(&nodes[2], "/channel/delete?topic=shared&channel=tmp%23ephemeral");
    wait_for("tmp#ephemeral to leave /channels", || {
        channels(&lookupd, "shared") == BTreeSet::from(["ch1".to_string()])
    });

    // A deleted topic is unregistered: its registration stays, with no producer.
    node_post(&nodes[0], "/topic/delete?topic=own0");
    wait_for("own0 to lose its producer", || {
        producers(&lookupd, "own0") == Some(BTreeSet::new())
    });

    // A stopped node's connection closes, and lookupd drops it.
    let mut nodes = nodes;
    let stopped = nodes.pop().unwrap();
    let stopped_ports = ports(&stopped);
    stop_node(stopped);
    wait_producers(&lookupd, "shared", &[&nodes[0], &nodes[1]]);
    assert!(!producers(&lookupd, "own2").unwrap().contains(&stopped_ports));

    // lookupd restarts on the same ports, empty: the nodes reconnect and register everything.
    let (tcp, http_addr) = (lookupd.tcp_address(), lookupd.http_address());
    lookupd.shutdown();
    lookupd.join().unwrap();
    let mut again = LookupdStart::for_tests();
    again.tcp_address = tcp;
    again.http_address = http_addr;
    let lookupd = start_lookupd(again).expect("lookupd restarts on the same ports");
    wait_producers(&lookupd, "shared", &[&nodes[0], &nodes[1]]);
    wait_producers(&lookupd, "own1", &[&nodes[1]]);
    wait_for("ch1 after the restart", || {
        channels(&lookupd, "shared").contains("ch1")
    });
    assert_eq!(
        producers(&lookupd, "own0"),
        None,
        "own0 was deleted, so it is not registered again"
    );

    for node in nodes {
        stop_node(node);
    }
    lookupd.shutdown();
    lookupd.join().unwrap();
}

#[test]
fn put_config_swaps_lookupd_peers() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    let node = start_node(None);
    publish(&node, "swap", "m");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(producers(&lookupd, "swap"), None, "not registered before the PUT");

    let http_addr = node.http_address().and_then(|a| a.as_tcp()).unwrap();
    let body = format!(r#"["{}"]"#, lookupd.tcp_address());
    let (status, resp) = http(http_addr, "PUT", "/config/nsqlookupd_tcp_addresses", &body);
    assert_eq!((status, resp.as_str()), (200, body.as_str()));
    wait_producers(&lookupd, "swap", &[&node]);

    let (status, _) = http(http_addr, "PUT", "/config/nsqlookupd_tcp_addresses", "[]");
    assert_eq!(status, 200);
    wait_producers(&lookupd, "swap", &[]);

    stop_node(node);
    lookupd.shutdown();
    lookupd.join().unwrap();
}

/// nsqd creates the topic before it checks `defer` or an `/mpub` body, so the topic of a refused
/// (or empty) publish is registered like any other.
#[test]
fn refused_http_publishes_register_their_topics() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    let node = start_node(Some(&lookupd));
    let http_addr = node.http_address().and_then(|a| a.as_tcp()).unwrap();
    let (status, _) = http(http_addr, "POST", "/pub?topic=reg-defer&defer=x", "m");
    assert_eq!(status, 400);
    let (status, _) = http(http_addr, "POST", "/mpub?topic=reg-empty", "");
    assert_eq!(status, 200);
    let (status, _) = http(http_addr, "POST", "/mpub?topic=reg-bad&binary=true", "xy");
    assert_eq!(status, 413);
    for topic in ["reg-defer", "reg-empty", "reg-bad"] {
        wait_producers(&lookupd, topic, &[&node]);
    }
    stop_node(node);
    lookupd.shutdown();
    lookupd.join().unwrap();
}

// --- the wire, against a scripted lookupd -----------------------------------------------------

struct FakeLookupd {
    stream: TcpStream,
}

impl FakeLookupd {
    fn accept(listener: &TcpListener) -> FakeLookupd {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the node never connected");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        FakeLookupd { stream }
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).unwrap();
        buf
    }

    fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        loop {
            let b = self.read_exact(1)[0];
            line.push(b);
            if b == b'\n' {
                return String::from_utf8(line).unwrap();
            }
        }
    }

    fn respond(&mut self, payload: &[u8]) {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        self.stream.write_all(&out).unwrap();
    }

    /// Magic and IDENTIFY, checked byte for byte; answered as nsqlookupd does.
    fn handshake(&mut self, node: &Node) {
        assert_eq!(self.read_exact(4), b"  V1");
        assert_eq!(self.read_line(), "IDENTIFY\n");
        let size = u32::from_be_bytes(self.read_exact(4).try_into().unwrap()) as usize;
        let body = String::from_utf8(self.read_exact(size)).unwrap();
        let (tcp, http) = ports(node);
        assert_eq!(
            body,
            format!(
                r#"{{"broadcast_address":"localhost","hostname":"localhost","http_port":{http},"tcp_port":{tcp},"version":"1.3.0"}}"#
            )
        );
        // HTTP port 1 refuses at once: the node's `/channels` queries find nothing (4161 may
        // be a real lookupd on this host, whose channels would add REGISTERs).
        self.respond(br#"{"broadcast_address":"lookupd.test","hostname":"lh","http_port":1,"tcp_port":4160,"version":"1.3.0"}"#);
    }

    fn expect(&mut self, line: &str) {
        assert_eq!(self.read_line(), line);
        self.respond(b"OK");
    }
}

#[test]
fn wire_bytes_are_nsqds_and_an_error_means_reconnect_and_register_everything() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = NodeConfig::for_tests(Options::default());
    config.lookupd_tcp_addresses = vec![listener.local_addr().unwrap().to_string()];
    let node = Node::start(config).expect("node starts");

    let mut lookupd = FakeLookupd::accept(&listener);
    lookupd.handshake(&node);
    node_post(&node, "/topic/create?topic=t");
    lookupd.expect("REGISTER t\n");
    node_post(&node, "/channel/create?topic=t&channel=c");
    lookupd.expect("REGISTER t c\n");
    node_post(&node, "/channel/delete?topic=t&channel=c");
    lookupd.expect("UNREGISTER t c\n");
    node_post(&node, "/channel/create?topic=t&channel=c2");
    // An error is fatal for the connection: the node reconnects and registers everything,
    // a topic with channels through its channels.
    assert_eq!(lookupd.read_line(), "REGISTER t c2\n");
    lookupd.respond(b"E_INVALID scripted failure");
    drop(lookupd);
    let mut lookupd = FakeLookupd::accept(&listener);
    lookupd.handshake(&node);
    lookupd.expect("REGISTER t c2\n");
    node_post(&node, "/topic/delete?topic=t");
    lookupd.expect("UNREGISTER t c2\n");
    lookupd.expect("UNREGISTER t\n");

    stop_node(node);
    // Nothing is unregistered at shutdown: the connection just closes.
    let mut rest = Vec::new();
    let _ = lookupd.stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn a_lookupd_that_never_answers_does_not_slow_publishing() {
    // Accepted by the kernel's backlog, never read: every lookupd command times out.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = NodeConfig::for_tests(Options::default());
    config.lookupd_tcp_addresses = vec![listener.local_addr().unwrap().to_string(), "127.0.0.1:1".into()];
    let node = Node::start(config).expect("node starts");
    let started = Instant::now();
    // Each new topic is a registry change the lookup threads would have to send.
    for i in 0..40 {
        publish(&node, &format!("slow{i}"), "m");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "40 publishes took {elapsed:?}");
    let started = Instant::now();
    stop_node(node);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "stopping took {elapsed:?}");
    drop(listener);
}

/// nsqd's A.12: a topic that appears on a node gets the channels lookupd already knows for it,
/// so messages published before any consumer connects there are kept for that channel.
#[test]
fn a_new_topic_gets_the_channels_lookupd_knows() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    let a = start_node(Some(&lookupd));
    node_post(&a, "/topic/create?topic=pre");
    node_post(&a, "/channel/create?topic=pre&channel=archive");
    node_post(&a, "/channel/create?topic=pre&channel=live%23ephemeral");
    wait_for("lookupd to know pre:archive", || {
        channels(&lookupd, "pre").contains("archive")
    });

    let b = start_node(Some(&lookupd));
    // b connects to lookupd first, then sees the topic appear.
    wait_for("b to register", || {
        let (_, body) = http(lookupd.http_address(), "GET", "/nodes", "");
        body.contains(&format!(
            "\"tcp_port\":{}",
            b.tcp_address().as_tcp().unwrap().port()
        ))
    });
    publish(&b, "pre", "kept for archive");
    let stats = || {
        let (_, body) = http(
            b.http_address().and_then(|a| a.as_tcp()).unwrap(),
            "GET",
            "/stats?format=json&topic=pre",
            "",
        );
        serde_json::from_str::<Value>(&body).unwrap()
    };
    wait_for("b to pre-create pre:archive with the message in it", || {
        let v = stats();
        v["topics"][0]["channels"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["channel_name"] == "archive" && c["depth"] == 1)
        })
    });
    let names: Vec<String> = stats()["topics"][0]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["archive"], "ephemeral channels are not pre-created");
    stop_node(b);
    stop_node(a);
}

/// Waits until `node` is among lookupd's `/nodes`, so it knows the lookupd's HTTP address.
fn wait_registered(lookupd: &Lookupd, node: &Node) {
    wait_for("the node to identify with lookupd", || {
        let (_, body) = http(lookupd.http_address(), "GET", "/nodes", "");
        body.contains(&format!(
            "\"tcp_port\":{}",
            node.tcp_address().as_tcp().unwrap().port()
        ))
    });
}

/// `/stats`' channels of `topic` on `node`, as (name, depth), sorted by name.
fn channel_depths(node: &Node, topic: &str) -> Vec<(String, i64)> {
    let (_, body) = http(
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
        "GET",
        &format!("/stats?format=json&topic={topic}"),
        "",
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut out: Vec<(String, i64)> = v["topics"][0]["channels"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["channel_name"].as_str().unwrap().to_string(),
                        c["depth"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every channel lookupd knows exists before the new topic hands its first message to any of
/// them, so each gets a copy (nsqd creates them all before the topic starts pumping).
#[test]
fn every_channel_lookupd_knows_gets_the_first_message() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    for c in ["a", "b", "c", "d"] {
        let (status, body) = http(
            lookupd.http_address(),
            "POST",
            &format!("/channel/create?topic=fan&channel={c}"),
            "",
        );
        assert_eq!(status, 200, "{body}");
    }
    let node = start_node(Some(&lookupd));
    wait_registered(&lookupd, &node);
    publish(&node, "fan", "first");
    let want: Vec<(String, i64)> = ["a", "b", "c", "d"].iter().map(|c| (c.to_string(), 1)).collect();
    let mut last = Vec::new();
    let deadline = Instant::now() + WAIT;
    while last != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        last = channel_depths(&node, "fan");
    }
    assert_eq!(last, want, "the channels' depths after one publish");
    stop_node(node);
    lookupd.shutdown();
    lookupd.join().unwrap();
}

/// Without the HTTP API the channels are pre-created all the same: a message published before
/// any consumer connects reaches each channel lookupd knows, not only the first one subscribed.
#[test]
fn channels_are_pre_created_without_the_http_api() {
    let lookupd = start_lookupd(LookupdStart::for_tests()).expect("lookupd starts");
    for c in ["a", "b"] {
        let (status, body) = http(
            lookupd.http_address(),
            "POST",
            &format!("/channel/create?topic=nohttp&channel={c}"),
            "",
        );
        assert_eq!(status, 200, "{body}");
    }
    let mut config = NodeConfig::for_tests(Options::default());
    config.http_address = None;
    // lookupd refuses an IDENTIFY without an HTTP port (nsqd's too): one served elsewhere.
    config.broadcast_http_port = 4151;
    config.lookupd_tcp_addresses = vec![lookupd.tcp_address().to_string()];
    let node = Node::start(config).expect("node starts");
    wait_registered(&lookupd, &node);

    let mut producer = common::Client::connect(node.tcp_address().as_tcp().unwrap());
    producer.publish("nohttp", b"for every channel");
    producer.expect_ok();
    for c in ["a", "b"] {
        let mut consumer = common::Client::connect(node.tcp_address().as_tcp().unwrap());
        consumer.sub("nohttp", c);
        consumer.cmd("RDY 1");
        let msg = consumer.read_message();
        assert_eq!(msg.body, b"for every channel", "channel {c}");
    }
    stop_node(node);
    lookupd.shutdown();
    lookupd.join().unwrap();
}
