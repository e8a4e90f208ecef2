//! nsqlookupd's HTTP API as a consumer uses it (spec B.3, C): `GET /lookup?topic=` for a topic's
//! producers and `GET /topics` for topic discovery, over the blocking HTTP/1.1 client in `crate::http_client`.
//!
//! Addresses are `host:port` or `http://host:port[/prefix]` (go-nsq adds `http://` when there is
//! no scheme). Both response shapes are read: the current bare JSON and the legacy
//! `{"status_code":200,"status_txt":"OK","data":{...}}` envelope (spec §0.3).

use serde::Deserialize;

pub use crate::http_client::HttpTimeouts;

use super::options::{HTTP_RESPONSE_BYTES_MAX, USER_AGENT};

/// A producer as `/lookup` lists it (PeerInfo, spec B.2); unknown keys are ignored.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Producer {
    #[serde(default)]
    pub remote_address: String,
    #[serde(default)]
    pub hostname: String,
    pub broadcast_address: String,
    pub tcp_port: u16,
    #[serde(default)]
    pub http_port: u16,
    #[serde(default)]
    pub version: String,
}

impl Producer {
    /// `broadcast_address:tcp_port`, bracketing IPv6 as Go's `net.JoinHostPort` does.
    pub fn tcp_address(&self) -> String {
        if self.broadcast_address.contains(':') {
            format!("[{}]:{}", self.broadcast_address, self.tcp_port)
        } else {
            format!("{}:{}", self.broadcast_address, self.tcp_port)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LookupResponse {
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub producers: Vec<Producer>,
}

#[derive(Debug, Deserialize)]
struct TopicsResponse {
    #[serde(default)]
    topics: Vec<String>,
}

/// Parses a `/lookup` body (bare or enveloped).
pub fn parse_lookup(body: &[u8]) -> Result<LookupResponse, String> {
    serde_json::from_value(unwrap_envelope(body)?).map_err(|e| format!("bad /lookup JSON: {e}"))
}

/// Parses a `/topics` body (bare or enveloped).
pub fn parse_topics(body: &[u8]) -> Result<Vec<String>, String> {
    let r: TopicsResponse =
        serde_json::from_value(unwrap_envelope(body)?).map_err(|e| format!("bad /topics JSON: {e}"))?;
    Ok(r.topics)
}

fn unwrap_envelope(body: &[u8]) -> Result<serde_json::Value, String> {
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if v.get("status_code").is_some() {
        if let Some(data) = v.get_mut("data") {
            return Ok(data.take());
        }
    }
    Ok(v)
}

/// The topic's producers' TCP addresses, from one lookupd.
pub fn lookup(addr: &str, topic: &str, timeouts: HttpTimeouts) -> Result<Vec<String>, String> {
    let body = get(addr, &format!("/lookup?topic={}", query_escape(topic)), timeouts)?;
    Ok(parse_lookup(&body)?
        .producers
        .iter()
        .map(Producer::tcp_address)
        .collect())
}

/// The union of every lookupd's `/topics`, sorted; any failing lookupd fails the whole call, as
/// nsq_to_file throws away a partial result.
pub fn topics(addrs: &[String], timeouts: HttpTimeouts) -> Result<Vec<String>, String> {
    let mut all = Vec::new();
    for addr in addrs {
        let body = get(addr, "/topics", timeouts)?;
        all.extend(parse_topics(&body).map_err(|e| format!("{addr}: {e}"))?);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// Go's `url.QueryEscape` for the characters a topic name can hold.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET http://<addr><path>`: the body of a 200 answer, or an error naming the status and body.
pub fn get(addr: &str, path: &str, timeouts: HttpTimeouts) -> Result<Vec<u8>, String> {
    crate::http_client::get_ok(addr, path, timeouts, USER_AGENT, HTTP_RESPONSE_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use super::*;

    #[test]
    fn lookup_shape_of_spec_b3() {
        let body = br#"{"channels":["nsq_to_file","archive"],"producers":[
            {"remote_address":"127.0.0.1:51234","hostname":"h1","broadcast_address":"10.0.0.1",
             "tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"",
             "topology_region":""},
            {"broadcast_address":"::1","tcp_port":4250,"http_port":4251,"version":"1.3.0"}]}"#;
        let r = parse_lookup(body).unwrap();
        assert_eq!(r.channels, ["nsq_to_file", "archive"]);
        assert_eq!(r.producers.len(), 2);
        assert_eq!(r.producers[0].hostname, "h1");
        assert_eq!(r.producers[0].http_port, 4151);
        let addrs: Vec<String> = r.producers.iter().map(Producer::tcp_address).collect();
        assert_eq!(addrs, ["10.0.0.1:4150", "[::1]:4250"]);
    }

    #[test]
    fn empty_and_enveloped_lookups() {
        let r = parse_lookup(br#"{"channels":[],"producers":[]}"#).unwrap();
        assert!(r.channels.is_empty() && r.producers.is_empty());
        let legacy = br#"{"status_code":200,"status_txt":"OK","data":{"channels":["c"],
            "producers":[{"broadcast_address":"h","tcp_port":1}]}}"#;
        let r = parse_lookup(legacy).unwrap();
        assert_eq!(r.producers[0].tcp_address(), "h:1");
        assert!(parse_lookup(b"{\"message\":\"TOPIC_NOT_FOUND\"").is_err());
        assert!(parse_lookup(br#"{"producers":[{"tcp_port":1}]}"#).is_err());
    }

    #[test]
    fn topics_shape() {
        assert_eq!(parse_topics(br#"{"topics":["a","b"]}"#).unwrap(), ["a", "b"]);
        assert!(parse_topics(br#"{"topics":[]}"#).unwrap().is_empty());
        let legacy = br#"{"status_code":200,"status_txt":"OK","data":{"topics":["x"]}}"#;
        assert_eq!(parse_topics(legacy).unwrap(), ["x"]);
    }

    #[test]
    fn escaping() {
        assert_eq!(query_escape("t#ephemeral"), "t%23ephemeral");
        assert_eq!(query_escape("a.b-c_d"), "a.b-c_d");
    }

    #[test]
    fn get_against_a_loopback_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            let body = br#"{"channels":[],"producers":[{"broadcast_address":"127.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}]}"#;
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(resp.as_bytes()).unwrap();
            s.write_all(body).unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let timeouts = HttpTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        };
        let producers = lookup(&addr, "t#ephemeral", timeouts).unwrap();
        assert_eq!(producers, ["127.0.0.1:4150"]);
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /lookup?topic=t%23ephemeral HTTP/1.1\r\n"),
            "{request}"
        );
    }
}
