//! nsqlookupd's HTTP API as a consumer uses it (spec B.3, C): `GET /lookup?topic=` for a topic's
//! producers and `GET /topics` for topic discovery, over a minimal blocking HTTP/1.1 client.
//!
//! Addresses are `host:port` or `http://host:port[/prefix]` (go-nsq adds `http://` when there is
//! no scheme). Both response shapes are read: the current bare JSON and the legacy
//! `{"status_code":200,"status_txt":"OK","data":{...}}` envelope (spec §0.3).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::options::{HTTP_RESPONSE_BYTES_MAX, USER_AGENT};

#[derive(Clone, Copy, Debug)]
pub struct HttpTimeouts {
    pub connect: Duration,
    /// For the whole request, connect included.
    pub request: Duration,
}

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

/// `host:port` and path prefix of a lookupd address.
fn split_address(addr: &str) -> Result<(String, String), String> {
    let rest = if let Some(r) = addr.strip_prefix("http://") {
        r
    } else if addr.contains("://") {
        return Err(format!("unsupported lookupd address scheme: {addr}"));
    } else {
        addr
    };
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host_port.is_empty() {
        return Err(format!("invalid lookupd address: {addr}"));
    }
    let host_port = if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    Ok((host_port, path.to_string()))
}

/// `GET http://<addr><path>`: the body of a 200 answer, or an error naming the status and body.
pub fn get(addr: &str, path: &str, timeouts: HttpTimeouts) -> Result<Vec<u8>, String> {
    let (host_port, prefix) = split_address(addr)?;
    let deadline = Instant::now() + timeouts.request;
    let targets: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .collect();
    let mut stream = None;
    let mut last_err = format!("{addr}: resolves to no address");
    for t in targets {
        match TcpStream::connect_timeout(&t, timeouts.connect.min(timeouts.request)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = format!("{addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last_err)?;
    let request = format!(
        "GET {prefix}{path} HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: {USER_AGENT}\r\n\
         Accept: application/vnd.nsq; version=1.0\r\nConnection: close\r\n\r\n"
    );
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(remaining()))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(format!("{addr}: request timed out after {:?}", timeouts.request));
        }
        stream
            .set_read_timeout(Some(remaining()))
            .map_err(|e| format!("{addr}: {e}"))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() > HTTP_RESPONSE_BYTES_MAX {
                    return Err(format!(
                        "{addr}: response larger than {HTTP_RESPONSE_BYTES_MAX} bytes"
                    ));
                }
                if let Some(done) = complete_response(&raw)? {
                    return finish(addr, done);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    }
    match complete_response(&raw)? {
        Some(done) => finish(addr, done),
        None => parse_until_eof(&raw).and_then(|r| finish(addr, r)),
    }
}

fn finish(addr: &str, (status, body): (u16, Vec<u8>)) -> Result<Vec<u8>, String> {
    if status == 200 {
        Ok(body)
    } else {
        Err(format!(
            "{addr}: HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ))
    }
}

struct Head {
    status: u16,
    body_start: usize,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(raw: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "non-UTF-8 HTTP head".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad HTTP status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse().map_err(|_| "bad Content-Length".to_string())?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    Ok(Some(Head {
        status,
        body_start: end + 4,
        content_length,
        chunked,
    }))
}

/// `Some((status, body))` once `raw` holds a whole response that says its own length.
fn complete_response(raw: &[u8]) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(head) = parse_head(raw)? else {
        return Ok(None);
    };
    let body = &raw[head.body_start..];
    if head.chunked {
        return Ok(decode_chunked(body)?.map(|b| (head.status, b)));
    }
    match head.content_length {
        Some(n) if body.len() >= n => Ok(Some((head.status, body[..n].to_vec()))),
        _ => Ok(None),
    }
}

/// A response without a length, ended by the server closing.
fn parse_until_eof(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let head = parse_head(raw)?.ok_or("connection closed before the HTTP head ended")?;
    if head.chunked || head.content_length.is_some() {
        return Err("connection closed before the HTTP body ended".into());
    }
    Ok((head.status, raw[head.body_start..].to_vec()))
}

/// `Ok(None)` while the last chunk has not arrived.
fn decode_chunked(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&body[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        let data_start = eol + 2;
        if size == 0 {
            return Ok(Some(out));
        }
        let Some(data) = body.get(data_start..data_start + size) else {
            return Ok(None);
        };
        out.extend_from_slice(data);
        let Some(rest) = body.get(data_start + size + 2..) else {
            return Ok(None);
        };
        body = rest;
    }
}

#[cfg(test)]
mod tests {
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
    fn addresses_and_escaping() {
        assert_eq!(
            split_address("127.0.0.1:4161").unwrap(),
            ("127.0.0.1:4161".into(), String::new())
        );
        assert_eq!(
            split_address("http://h:1/base/").unwrap(),
            ("h:1".into(), "/base".into())
        );
        assert_eq!(split_address("http://h").unwrap().0, "h:80");
        assert!(split_address("https://h:1").is_err());
        assert_eq!(query_escape("t#ephemeral"), "t%23ephemeral");
        assert_eq!(query_escape("a.b-c_d"), "a.b-c_d");
    }

    #[test]
    fn http_bodies_by_length_chunks_or_eof() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKextra";
        assert_eq!(complete_response(raw).unwrap(), Some((200, b"OK".to_vec())));
        assert_eq!(complete_response(&raw[..30]).unwrap(), None);
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            complete_response(chunked).unwrap(),
            Some((404, b"abcde".to_vec()))
        );
        assert_eq!(complete_response(&chunked[..60]).unwrap(), None);
        let eof = b"HTTP/1.0 200 OK\r\n\r\n{}";
        assert_eq!(complete_response(eof).unwrap(), None);
        assert_eq!(parse_until_eof(eof).unwrap(), (200, b"{}".to_vec()));
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
