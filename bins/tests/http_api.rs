//! nsqd's HTTP API served by squalld answers with nsqd's status codes, bodies and headers, and
//! acts on the same topics and channels as the TCP protocol.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use squall::{Node, NodeConfig};
use squall_core::options::Options;

struct Http {
    stream: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Http {
            stream: BufReader::new(s),
        }
    }

    fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Reply {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).expect("status").parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(": ").unwrap();
            headers.push((n.to_string(), v.to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }
}

fn http_node(options: Options) -> (Node, SocketAddr, SocketAddr) {
    let node = Node::start(NodeConfig::for_tests(options)).unwrap();
    let (tcp, http) = (
        node.tcp_address().as_tcp().unwrap(),
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
    );
    (node, tcp, http)
}

#[test]
fn ping_info_and_routing_errors() {
    let (_node, tcp, http) = http_node(Options::default());
    let mut h = Http::connect(http);
    let r = h.request("GET", "/ping", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert!(
        r.header("X-Nsq-Content-Type").is_none(),
        "PlainText style has no nsq header"
    );

    let r = h.request("GET", "/info", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Nsq-Content-Type"), Some("nsq; version=1.0"));
    assert_eq!(r.header("Content-Type"), Some("application/json; charset=utf-8"));
    let text = r.text();
    assert!(
        text.starts_with(r#"{"version":"1.3.0","broadcast_address":"#),
        "{text}"
    );
    assert_eq!(r.json()["tcp_port"], tcp.port());
    assert_eq!(r.json()["max_heartbeat_interval"], 60_000_000_000u64);

    let r = h.request("GET", "/nope", b"");
    assert_eq!((r.status, r.text().as_str()), (404, r#"{"message":"NOT_FOUND"}"#));
    let r = h.request("GET", "/pub", b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (405, r#"{"message":"METHOD_NOT_ALLOWED"}"#)
    );
    assert!(r.header("Allow").is_some());
}

#[test]
fn pub_and_mpub_reach_tcp_consumers() {
    let (_node, tcp, http) = http_node(Options::default());
    let mut c = Client::connect(tcp);
    c.sub("web", "ch");
    c.cmd("RDY 10");
    let mut h = Http::connect(http);
    let r = h.request("POST", "/pub?topic=web", b"one");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = h.request("POST", "/mpub?topic=web", b"two\n\nthree\n");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let mut binary = 2u32.to_be_bytes().to_vec();
    for b in [&b"four"[..], b"five"] {
        binary.extend((b.len() as u32).to_be_bytes());
        binary.extend_from_slice(b);
    }
    let r = h.request("POST", "/mpub?topic=web&binary=true", &binary);
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let bodies: Vec<Vec<u8>> = (0..5).map(|_| c.read_message().body).collect();
    assert_eq!(
        bodies,
        vec![
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec(),
            b"four".to_vec(),
            b"five".to_vec()
        ]
    );
}

#[test]
fn publish_errors_match_nsqd() {
    let (_node, _tcp, http) = http_node(Options {
        max_msg_size: 10,
        ..Options::default()
    });
    let mut h = Http::connect(http);
    for (target, body, status, msg) in [
        ("/pub", &b"x"[..], 400, "MISSING_ARG_TOPIC"),
        ("/pub?topic=bad:name", b"x", 400, "INVALID_TOPIC"),
        ("/pub?topic=t", b"", 400, "MSG_EMPTY"),
        ("/pub?topic=t", b"01234567890", 413, "MSG_TOO_BIG"),
        ("/pub?topic=t&defer=-1", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&defer=abc", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&x=%zz", b"x", 400, "INVALID_REQUEST"),
        ("/mpub?topic=t", b"short\n01234567890\n", 413, "MSG_TOO_BIG"),
        ("/mpub?topic=t&binary=1", b"\x00\x00\x00\x00", 413, "BAD_BODY"),
        (
            "/mpub?topic=t&binary=1",
            b"\x00\x00\x00\x01\x00\x00\x00\x09x",
            413,
            "BAD_MESSAGE",
        ),
    ] {
        let r = h.request("POST", target, body);
        assert_eq!(
            (r.status, r.text()),
            (status, format!(r#"{{"message":"{msg}"}}"#)),
            "{target}"
        );
    }
}

#[test]
fn a_declared_body_over_the_limit_gets_nsqds_answer_without_being_read() {
    let (_node, _tcp, http) = http_node(Options {
        max_body_size: 1000,
        ..Options::default()
    });
    for (method, target, status, body) in [
        ("POST", "/pub?topic=t", 413, r#"{"message":"MSG_TOO_BIG"}"#),
        (
            "POST",
            "/mpub?topic=bad:name",
            413,
            r#"{"message":"BODY_TOO_BIG"}"#,
        ),
        (
            "PUT",
            "/config/nsqlookupd_tcp_addresses",
            413,
            "413 Request Entity Too Large",
        ),
    ] {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        // Only the head is sent: nothing waits for the 6 MB that it announces.
        let head = format!("{method} {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 6000000\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("answered, then closed");
        assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
        assert!(reply.contains("Connection: close\r\n"), "{reply}");
        assert!(reply.ends_with(body), "{target}: {reply}");
    }
}

#[test]
fn topic_and_channel_admin() {
    let (_node, tcp, http) = http_node(Options::default());
    let mut h = Http::connect(http);
    let r = h.request("POST", "/topic/create?topic=adm", b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(
        h.request("POST", "/channel/create?topic=adm&channel=ch", b"")
            .status,
        200
    );
    assert_eq!(
        h.request("POST", "/channel/pause?topic=adm&channel=ch", b"")
            .status,
        200
    );
    let mut c = Client::connect(tcp);
    c.sub("adm", "ch");
    c.cmd("RDY 1");
    h.request("POST", "/pub?topic=adm", b"held");
    c.expect_silence(Duration::from_millis(150));
    assert_eq!(
        h.request("POST", "/channel/unpause?topic=adm&channel=ch", b"")
            .status,
        200
    );
    assert_eq!(c.read_message().body, b"held");

    for (target, status, msg) in [
        ("/topic/delete?topic=missing", 404, "TOPIC_NOT_FOUND"),
        ("/topic/pause?topic=missing", 404, "TOPIC_NOT_FOUND"),
        ("/topic/create", 400, "MISSING_ARG_TOPIC"),
        ("/topic/create?topic=a:b", 400, "INVALID_TOPIC"),
        ("/channel/create?topic=missing&channel=c", 404, "TOPIC_NOT_FOUND"),
        ("/channel/create?topic=a:b&channel=c", 400, "INVALID_ARG_TOPIC"),
        ("/channel/create?topic=adm", 400, "MISSING_ARG_CHANNEL"),
        (
            "/channel/create?topic=adm&channel=c:d",
            400,
            "INVALID_ARG_CHANNEL",
        ),
        ("/channel/delete?topic=adm&channel=nope", 404, "CHANNEL_NOT_FOUND"),
    ] {
        let r = h.request("POST", target, b"");
        assert_eq!(
            (r.status, r.text()),
            (status, format!(r#"{{"message":"{msg}"}}"#)),
            "{target}"
        );
    }
    // Deleting the channel closes its consumer, as nsqd does.
    assert_eq!(
        h.request("POST", "/channel/delete?topic=adm&channel=ch", b"")
            .status,
        200
    );
    c.expect_closed();
    assert_eq!(h.request("POST", "/topic/delete?topic=adm", b"").status, 200);
}

#[test]
fn stats_json_and_text() {
    let (_node, tcp, http) = http_node(Options::default());
    let mut p = Client::connect(tcp);
    p.publish("st-b", b"x");
    p.expect_ok();
    let mut c = Client::connect(tcp);
    c.sub("st-a", "ch");
    let mut h = Http::connect(http);
    let r = h.request("GET", "/stats?format=json", b"");
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        vec!["health", "memory", "producers", "start_time", "topics", "version"]
    ); // serde_json sorts
    assert!(r
        .text()
        .starts_with(r#"{"version":"1.3.0","health":"OK","start_time":"#));
    let topics: Vec<&str> = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap())
        .collect();
    assert_eq!(topics, vec!["st-a", "st-b"]);
    assert_eq!(v["topics"][0]["channels"][0]["client_count"], 1);
    assert_eq!(v["topics"][0]["channels"][0]["clients"][0]["state"], 3);
    assert_eq!(v["producers"][0]["pub_counts"][0]["topic"], "st-b");

    let r = h.request("GET", "/stats?format=json&topic=none&include_mem=false", b"");
    let v = r.json();
    assert!(v["topics"].is_null());
    assert!(v.get("memory").is_none());
    let r = h.request("GET", "/stats?format=json&include_clients=false", b"");
    assert!(r.json()["topics"][0]["channels"][0]["clients"].is_null());
    assert!(r.json()["producers"].is_null());

    let r = h.request("GET", "/stats", b"");
    let text = r.text();
    assert!(text.starts_with("nsqd v1.3.0"), "{text}");
    assert!(
        text.contains("\n   [st-a           ] depth: 0     be-depth: 0     msgs: 0        e2e%: \n"),
        "{text}"
    );

    let r = h.request("GET", "/metrics", b"");
    assert!(
        r.text().contains("squall_topic_messages_total{topic=\"st-b\"} 1"),
        "{}",
        r.text()
    );
    // Per-shard runtime families: HELP and TYPE, then one series per shard (the node has two).
    let text = r.text();
    for (family, kind) in [
        ("squall_shard_connections", "gauge"),
        ("squall_shard_ring_submissions_total", "counter"),
        ("squall_shard_ring_completions_total", "counter"),
        ("squall_shard_mailbox_depth", "gauge"),
        ("squall_shard_mailbox_full_total", "counter"),
    ] {
        assert!(text.contains(&format!("\n# HELP {family} ")), "{family}: {text}");
        assert!(
            text.contains(&format!("\n# TYPE {family} {kind}\n")),
            "{family}: {text}"
        );
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .collect();
        assert_eq!(series.len(), 2, "{family}: {series:?}");
        for shard in 0..2 {
            let prefix = format!("{family}{{shard=\"{shard}\"}} ");
            let line = series.iter().find(|l| l.starts_with(&prefix));
            let value = line.and_then(|l| l[prefix.len()..].parse::<u64>().ok());
            assert!(value.is_some(), "{family} shard {shard}: {series:?}");
        }
    }
    // Both shards have been running a while: their rings have done work.
    for shard in 0..2 {
        let line = format!("squall_shard_ring_completions_total{{shard=\"{shard}\"}} 0\n");
        assert!(!text.contains(&line), "{text}");
    }
    // The two TCP connections (p, c) and this HTTP one are held across the two shards.
    let conns: u64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("squall_shard_connections{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(conns >= 3, "{text}");
}

#[test]
fn config_get_and_put() {
    let (_node, _tcp, http) = http_node(Options::default());
    let mut h = Http::connect(http);
    // Tests start the node without a command line, so no option is readable...
    assert_eq!(
        h.request("GET", "/config/nope", b"").text(),
        r#"{"message":"INVALID_OPTION"}"#
    );
    // ...but the settable ones can be set and read back.
    let r = h.request("PUT", "/config/log_level", b"fatal");
    assert_eq!((r.status, r.text().as_str()), (200, "5"));
    let r = h.request(
        "PUT",
        "/config/nsqlookupd_tcp_addresses",
        br#"["127.0.0.1:4160"]"#,
    );
    assert_eq!((r.status, r.text().as_str()), (200, r#"["127.0.0.1:4160"]"#));
    assert_eq!(h.request("GET", "/config/log_level", b"").text(), "5");
    assert_eq!(h.request("PUT", "/config/log_level", b"loud").status, 400);
    assert_eq!(h.request("PUT", "/config/log_level", b"").status, 413);
}

/// A `PUT /config/:opt` is what every later `GET` reads, whichever shard its connection lands
/// on (each fresh connection here may land on either of the node's two).
#[test]
fn config_puts_are_seen_on_every_shard() {
    let (_node, _tcp, http) = http_node(Options::default());
    let get_everywhere = |opt: &str| -> Vec<(u16, String)> {
        (0..24)
            .map(|_| {
                let r = Http::connect(http).request("GET", &format!("/config/{opt}"), b"");
                (r.status, r.text())
            })
            .collect()
    };
    let mut h = Http::connect(http);
    let r = h.request("PUT", "/config/log_level", b"WARN");
    assert_eq!((r.status, r.text().as_str()), (200, "3"));
    assert!(get_everywhere("log_level")
        .iter()
        .all(|r| *r == (200, "3".to_string())));
    // Port 1: nothing listens there, so the lookup loop's connection attempts go nowhere.
    let r = h.request("PUT", "/config/nsqlookupd_tcp_addresses", br#"["127.0.0.1:1"]"#);
    assert_eq!((r.status, r.text().as_str()), (200, r#"["127.0.0.1:1"]"#));
    assert!(get_everywhere("nsqlookupd_tcp_addresses")
        .iter()
        .all(|r| *r == (200, r#"["127.0.0.1:1"]"#.to_string())));
    let r = h.request("PUT", "/config/nsqlookupd_tcp_addresses", b"[]");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert!(get_everywhere("nsqlookupd_tcp_addresses")
        .iter()
        .all(|r| *r == (200, "[]".to_string())));
    // Leave the process's log level where the other tests expect it.
    assert_eq!(h.request("PUT", "/config/log_level", b"info").status, 200);
}

/// A `PUT` body is read as nsqd reads it: the level word whole (nothing trimmed), the address
/// list as Go's `json.Unmarshal` fills a `[]string` (`null` clears it).
#[test]
fn config_put_bodies_are_read_as_nsqd_reads_them() {
    let (_node, _tcp, http) = http_node(Options::default());
    let mut h = Http::connect(http);
    for body in [&b"debug\n"[..], b" info", b"\"warn\""] {
        let r = h.request("PUT", "/config/log_level", body);
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, r#"{"message":"INVALID_VALUE"}"#),
            "{body:?}"
        );
    }
    let r = h.request("PUT", "/config/log_level", b"INFO");
    assert_eq!((r.status, r.text().as_str()), (200, "2"));

    let put = |h: &mut Http, body: &[u8]| {
        let r = h.request("PUT", "/config/nsqlookupd_tcp_addresses", body);
        (r.status, r.text())
    };
    assert_eq!(
        put(&mut h, br#"["127.0.0.1:1","127.0.0.1:2"]"#),
        (200, r#"["127.0.0.1:1","127.0.0.1:2"]"#.to_string())
    );
    // A null element keeps what was at its index.
    assert_eq!(put(&mut h, b"[null]"), (200, r#"["127.0.0.1:1"]"#.to_string()));
    assert_eq!(put(&mut h, b"null"), (200, "null".to_string()));
    let r = h.request("GET", "/config/nsqlookupd_tcp_addresses", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "null"));
    assert_eq!(r.header("Content-Type"), Some("application/json; charset=utf-8"));
    for refused in [&b"[1]"[..], b"{}", b"\"127.0.0.1:1\""] {
        assert_eq!(
            put(&mut h, refused),
            (400, r#"{"message":"INVALID_VALUE"}"#.to_string())
        );
    }
}

/// String options go out raw (type sniffed, so `text/plain` when not empty); numbers, floats
/// as Go writes them, and lists are JSON.
#[test]
fn config_strings_are_raw_and_floats_are_gos() {
    let mut config = NodeConfig::for_tests(Options::default());
    for (name, value) in [
        ("log_prefix", serde_json::json!("[nsqd] ")),
        ("statsd_address", serde_json::json!("")),
        ("max_msg_size", serde_json::json!(1048576)),
        (
            "e2e_processing_latency_percentiles",
            serde_json::json!([1.0, 0.99, 0.5]),
        ),
    ] {
        config.config_values.insert(name.to_string(), value);
    }
    let node = Node::start(config).unwrap();
    let mut h = Http::connect(node.http_address().and_then(|a| a.as_tcp()).unwrap());

    let r = h.request("GET", "/config/log_prefix", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "[nsqd] "));
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("X-Nsq-Content-Type"), Some("nsq; version=1.0"));

    let r = h.request("GET", "/config/statsd_address", b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("Content-Type"), None);
    assert_eq!(r.header("X-Nsq-Content-Type"), Some("nsq; version=1.0"));

    let r = h.request("GET", "/config/max_msg_size", b"");
    assert_eq!(
        (r.text().as_str(), r.header("Content-Type")),
        ("1048576", Some("application/json; charset=utf-8"))
    );
    let r = h.request("GET", "/config/e2e_processing_latency_percentiles", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "[1,0.99,0.5]"));
    node.shutdown();
    node.join().unwrap();
}

/// nsqd's filters: an empty value filters nothing; a missing topic gives null topics and
/// producers, a missing channel of a present topic `[]` topics; a topic filter keeps every
/// producer and filters only their pub_counts; a subscriber that published shows its
/// pub_counts under its channel too (and prints as a producer in the text form).
#[test]
fn stats_filters_match_nsqd() {
    let (_node, tcp, http) = http_node(Options::default());
    let t1 = topic_on_shard("sf-a", 0, 2);
    let t2 = topic_on_shard("sf-b", 1, 2);
    let mut p = Client::connect(tcp);
    p.publish(&t1, b"x");
    p.expect_ok();
    let mut s = Client::connect(tcp);
    s.sub(&t1, "c1");
    s.publish(&t2, b"y");
    s.expect_ok();
    let mut h = Http::connect(http);
    let stats = |h: &mut Http, query: &str| {
        h.request(
            "GET",
            &format!("/stats?format=json&include_mem=false{query}"),
            b"",
        )
        .json()
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["topic_name"].as_str().unwrap().to_string())
            .collect()
    };

    let all = stats(&mut h, "");
    assert_eq!(names(&all), vec![t1.clone(), t2.clone()]);
    assert_eq!(names(&stats(&mut h, "&topic=&channel=")), names(&all));
    assert_eq!(names(&stats(&mut h, "&channel=")), names(&all));
    // The subscriber's channel entry carries what it published.
    let client = &all["topics"][0]["channels"][0]["clients"][0];
    assert_eq!(client["state"], 3);
    assert_eq!(
        client["pub_counts"],
        serde_json::json!([{"topic": t2, "count": 1}])
    );

    let missing = stats(&mut h, "&topic=nope");
    assert!(
        missing["topics"].is_null() && missing["producers"].is_null(),
        "{missing}"
    );
    let no_channel = stats(&mut h, &format!("&topic={t1}&channel=nope"));
    assert_eq!(no_channel["topics"], serde_json::json!([]));
    assert_eq!(
        no_channel["producers"].as_array().unwrap().len(),
        2,
        "{no_channel}"
    );

    // Filtered on t1: both producers, the subscriber without pub_counts (it never published
    // to t1), in the producers and in its channel.
    let v = stats(&mut h, &format!("&topic={t1}"));
    assert_eq!(names(&v), vec![t1.clone()]);
    let producers = v["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 2, "{v}");
    let counts: Vec<&serde_json::Value> = producers.iter().map(|p| &p["pub_counts"]).collect();
    assert!(
        counts.contains(&&serde_json::json!([{"topic": t1, "count": 1}])),
        "{v}"
    );
    assert!(counts.contains(&&serde_json::Value::Null), "{v}");
    assert!(v["topics"][0]["channels"][0]["clients"][0]
        .get("pub_counts")
        .is_none());

    let text = h.request("GET", "/stats?include_mem=false", b"").text();
    let client_line = text
        .lines()
        .find(|l| l.starts_with("        [V2 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        client_line.contains(&format!("] msgs: 1        topics: {t2}=1 connected: ")),
        "{text}"
    );
}

/// Percentiles are float64s, written as Go writes them (`1`, not `1.0`).
#[test]
fn stats_percentiles_are_written_as_go_floats() {
    let (_node, tcp, http) = http_node(Options {
        e2e_percentiles: vec![1.0, 0.99, 0.5],
        ..Options::default()
    });
    let mut c = Client::connect(tcp);
    c.sub("pct", "ch");
    let mut h = Http::connect(http);
    let text = h.request("GET", "/stats?format=json&topic=pct", b"").text();
    let want = r#""e2e_processing_latency":{"count":0,"percentiles":[{"quantile":1,"value":0},{"quantile":0.99,"value":0},{"quantile":0.5,"value":0}]}"#;
    assert_eq!(text.matches(want).count(), 2, "{text}");
}

/// nsqd creates the topic while it reads the query, before a publish's later checks: those
/// refusals, and an `/mpub` with nothing in it, leave the topic behind.
#[test]
fn refused_publishes_still_create_the_topic() {
    let (_node, _tcp, http) = http_node(Options {
        max_msg_size: 10,
        ..Options::default()
    });
    let mut h = Http::connect(http);
    for (target, body, status, answer) in [
        (
            "/pub?topic=rp-defer&defer=x",
            &b"m"[..],
            400,
            r#"{"message":"INVALID_DEFER"}"#,
        ),
        ("/mpub?topic=rp-empty", b"", 200, "OK"),
        ("/mpub?topic=rp-blank", b"\n\n", 200, "OK"),
        (
            "/mpub?topic=rp-bad-body&binary=true",
            b"ab",
            413,
            r#"{"message":"BAD_BODY"}"#,
        ),
        (
            "/mpub?topic=rp-bad-message&binary=true",
            b"\x00\x00\x00\x01\x00\x00\x00\x00",
            413,
            r#"{"message":"BAD_MESSAGE"}"#,
        ),
        (
            "/mpub?topic=rp-too-big",
            b"ok\n01234567890",
            413,
            r#"{"message":"MSG_TOO_BIG"}"#,
        ),
        // Refused before the topic is looked at: nothing is created.
        ("/pub?topic=rp-msg-empty", b"", 400, r#"{"message":"MSG_EMPTY"}"#),
        ("/pub?topic=rp:bad", b"m", 400, r#"{"message":"INVALID_TOPIC"}"#),
    ] {
        let r = h.request("POST", target, body);
        assert_eq!((r.status, r.text().as_str()), (status, answer), "{target}");
    }
    let v = h.request("GET", "/stats?format=json", b"").json();
    let topics: Vec<(&str, u64)> = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic_name"].as_str().unwrap(),
                t["message_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            ("rp-bad-body", 0),
            ("rp-bad-message", 0),
            ("rp-blank", 0),
            ("rp-defer", 0),
            ("rp-empty", 0),
            ("rp-too-big", 0)
        ]
    );
}

/// httprouter's redirects as nsqd sends them: a trailing slash on `/config/:opt` is fixed too,
/// and a GET's redirect carries Go's small HTML body.
#[test]
fn redirects_match_nsqd() {
    let (_node, _tcp, http) = http_node(Options::default());
    let mut h = Http::connect(http);
    for (path, location) in [
        ("/config/log_level/", "/config/log_level"),
        ("/CONFIG/Log_Level", "/config/Log_Level"),
        ("/ping/", "/ping"),
    ] {
        let r = h.request("GET", path, b"");
        assert_eq!(r.status, 301, "{path}");
        assert_eq!(r.header("Location"), Some(location));
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            r.text(),
            format!("<a href=\"{location}\">Moved Permanently</a>.\n\n")
        );
    }
    let r = h.request("PUT", "/config/log_level/", b"info");
    assert_eq!(
        (r.status, r.header("Location"), r.body.len()),
        (307, Some("/config/log_level"), 0)
    );
    assert_eq!(r.header("Content-Type"), None);
    for path in ["/config/", "/config/log_level/x"] {
        let r = h.request("GET", path, b"");
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, r#"{"message":"NOT_FOUND"}"#),
            "{path}"
        );
    }
    let r = h.request("DELETE", "/config/log_level", b"");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, OPTIONS, PUT")));
}

#[test]
fn messages_survive_a_restart_on_disk() {
    let dir = std::env::temp_dir().join(format!("squall-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || {
        let mut c = NodeConfig::for_tests(Options {
            mem_queue_size: 5,
            ..Options::default()
        });
        c.data_path = Some(dir.clone());
        c
    };
    let node = Node::start(config()).unwrap();
    let mut c = Client::connect(node.tcp_address().as_tcp().unwrap());
    c.sub("keep", "ch");
    let mut p = Client::connect(node.tcp_address().as_tcp().unwrap());
    for i in 0..50 {
        p.publish("keep", format!("m{i:02}").as_bytes());
        p.expect_ok();
    }
    // Two in flight when the node stops: they come back too.
    c.cmd("RDY 2");
    c.read_message();
    c.read_message();
    node.shutdown();
    node.join().unwrap();
    assert!(dir.join("nsqd.dat").exists());

    let node = Node::start(config()).unwrap();
    let mut c = Client::connect(node.tcp_address().as_tcp().unwrap());
    c.sub("keep", "ch");
    c.cmd("RDY 100");
    let mut got: Vec<Vec<u8>> = (0..50).map(|_| c.read_message().body).collect();
    got.sort();
    let want: Vec<Vec<u8>> = (0..50).map(|i| format!("m{i:02}").into_bytes()).collect();
    assert_eq!(got, want);
    node.shutdown();
    node.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn memory_only_and_deferred_messages_survive_a_clean_restart() {
    let dir = std::env::temp_dir().join(format!("squall-restart-mem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || {
        let mut c = NodeConfig::for_tests(Options::default());
        c.data_path = Some(dir.clone());
        c
    };
    let node = Node::start(config()).unwrap();
    let mut c = Client::connect(node.tcp_address().as_tcp().unwrap());
    c.sub("mem", "ch");
    let mut p = Client::connect(node.tcp_address().as_tcp().unwrap());
    for i in 0..10 {
        p.publish("mem", format!("m{i}").as_bytes());
        p.expect_ok();
    }
    p.send_with_body("DPUB mem 60000", b"deferred");
    p.expect_ok();
    // Nothing overflowed: no queue files until shutdown writes the messages down.
    node.shutdown();
    node.join().unwrap();

    let node = Node::start(config()).unwrap();
    let mut c = Client::connect(node.tcp_address().as_tcp().unwrap());
    c.sub("mem", "ch");
    c.cmd("RDY 100");
    let got: Vec<Vec<u8>> = (0..10).map(|_| c.read_message().body).collect();
    assert_eq!(
        got,
        (0..10).map(|i| format!("m{i}").into_bytes()).collect::<Vec<_>>()
    );
    // The deferred one is still deferred (nsqd would deliver it at once).
    c.expect_silence(Duration::from_millis(300));
    node.shutdown();
    node.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn paused_state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("squall-restart-paused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || {
        let mut c = NodeConfig::for_tests(Options::default());
        c.data_path = Some(dir.clone());
        c
    };
    let node = Node::start(config()).unwrap();
    let mut h = Http::connect(node.http_address().and_then(|a| a.as_tcp()).unwrap());
    assert_eq!(
        h.request("POST", "/channel/create?topic=pz&channel=ch", b"")
            .status,
        404
    );
    assert_eq!(h.request("POST", "/topic/create?topic=pz", b"").status, 200);
    assert_eq!(
        h.request("POST", "/channel/create?topic=pz&channel=ch", b"")
            .status,
        200
    );
    assert_eq!(h.request("POST", "/topic/pause?topic=pz", b"").status, 200);
    assert_eq!(
        h.request("POST", "/channel/pause?topic=pz&channel=ch", b"")
            .status,
        200
    );
    drop(h);
    node.shutdown();
    node.join().unwrap();
    let dat = std::fs::read_to_string(dir.join("nsqd.dat")).unwrap();
    assert_eq!(
        dat,
        r#"{"topics":[{"name":"pz","paused":true,"channels":[{"name":"ch","paused":true}]}],"version":"1.3.0"}"#
    );

    let node = Node::start(config()).unwrap();
    let mut h = Http::connect(node.http_address().and_then(|a| a.as_tcp()).unwrap());
    let v = h.request("GET", "/stats?format=json", b"").json();
    assert_eq!(v["topics"][0]["topic_name"], "pz");
    assert_eq!(v["topics"][0]["paused"], true);
    assert_eq!(v["topics"][0]["channels"][0]["paused"], true);
    drop(h);
    node.shutdown();
    node.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn topology_shows_in_info_and_client_stats() {
    // nsqd master's keys: the node's --topology-region/zone in /info, each client's own (from
    // IDENTIFY) in /stats.
    let (_node, tcp, http) = http_node(Options {
        topology_region: "eu-west".into(),
        topology_zone: "eu-west-1a".into(),
        ..Options::default()
    });
    let mut h = Http::connect(http);
    let info = h.request("GET", "/info", b"").json();
    assert_eq!(
        (info["topology_region"].as_str(), info["topology_zone"].as_str()),
        (Some("eu-west"), Some("eu-west-1a"))
    );

    let mut c = Client::connect(tcp);
    c.identify(r#"{"topology_region":"us-east","topology_zone":"us-east-1b"}"#);
    c.expect_ok();
    c.sub("topo", "ch");
    let stats = h.request("GET", "/stats?format=json&topic=topo", b"").json();
    let client = &stats["topics"][0]["channels"][0]["clients"][0];
    assert_eq!(client["topology_region"], "us-east");
    assert_eq!(client["topology_zone"], "us-east-1b");
}

#[test]
fn a_crlf_after_a_post_body_is_ignored_as_go_does() {
    // Old clients end a POST body with an extra CRLF; Go's server drops up to 4 CR/LF bytes
    // before the next request on the connection (only after a POST).
    let (_node, _tcp, http) = http_node(Options::default());
    let mut h = Http::connect(http);
    let s = h.stream.get_mut();
    s.write_all(b"POST /pub?topic=crlf HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm\r\n")
        .unwrap();
    let r = h.request("GET", "/ping", b"");
    assert_eq!(r.status, 200, "the POST's answer");
    let r = h.request("GET", "/ping", b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "OK"),
        "then the GET, past the CRLF"
    );
    // After a GET, an empty line is a malformed request.
    let mut h = Http::connect(http);
    assert_eq!(h.request("GET", "/ping", b"").status, 200);
    let s = h.stream.get_mut();
    s.write_all(b"\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut line = String::new();
    h.stream.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
}
