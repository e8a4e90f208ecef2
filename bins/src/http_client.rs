//! A minimal blocking HTTP/1.1 GET client for the daemons' helper threads (lookupd queries,
//! the auth server): `http://` or bare `host:port` addresses, bodies by length, chunks or EOF,
//! one deadline for the whole request. Never used on a shard loop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct HttpTimeouts {
    pub connect: Duration,
    /// For the whole request, connect included.
    pub request: Duration,
}

/// `host:port` and path prefix of an `http://` address (or a bare `host:port`).
fn split_address(addr: &str) -> Result<(String, String), String> {
    let rest = if let Some(r) = addr.strip_prefix("http://") {
        r
    } else if addr.contains("://") {
        return Err(format!("unsupported address scheme (only http://): {addr}"));
    } else {
        addr
    };
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host_port.is_empty() {
        return Err(format!("invalid address: {addr}"));
    }
    let host_port = if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    Ok((host_port, path.to_string()))
}

/// `GET http://<addr><path>`: the status and body, whatever the status; errors are transport
/// and framing failures. `max_bytes` bounds the response.
pub fn get(
    addr: &str,
    path: &str,
    timeouts: HttpTimeouts,
    user_agent: &str,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), String> {
    request("GET", addr, path, None, timeouts, user_agent, max_bytes)
}

/// `method` with an optional JSON body; as `get` otherwise.
fn request(
    method: &str,
    addr: &str,
    path: &str,
    json_body: Option<&[u8]>,
    timeouts: HttpTimeouts,
    user_agent: &str,
    max_bytes: usize,
) -> Result<(u16, Vec<u8>), String> {
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
    let mut request = format!(
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {host_port}\r\nUser-Agent: {user_agent}\r\n\
         Accept: application/vnd.nsq; version=1.0\r\nConnection: close\r\n"
    )
    .into_bytes();
    if let Some(body) = json_body {
        let head = format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        request.extend_from_slice(head.as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(json_body.unwrap_or_default());
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(remaining()))
        .and_then(|()| stream.write_all(&request))
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
                if raw.len() > max_bytes {
                    return Err(format!("{addr}: response larger than {max_bytes} bytes"));
                }
                if let Some(done) = complete_response(&raw)? {
                    return Ok(done);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    }
    match complete_response(&raw)? {
        Some(done) => Ok(done),
        None => parse_until_eof(&raw),
    }
}

/// `get`, with any status but 200 an error naming the status and body.
pub fn get_ok(
    addr: &str,
    path: &str,
    timeouts: HttpTimeouts,
    user_agent: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let answer = get(addr, path, timeouts, user_agent, max_bytes)?;
    only_ok(addr, answer)
}

/// `POST` of a JSON body, with any status but 200 an error naming the status and body.
pub fn post_json_ok(
    addr: &str,
    path: &str,
    body: &[u8],
    timeouts: HttpTimeouts,
    user_agent: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let answer = request("POST", addr, path, Some(body), timeouts, user_agent, max_bytes)?;
    only_ok(addr, answer)
}

fn only_ok(addr: &str, (status, body): (u16, Vec<u8>)) -> Result<Vec<u8>, String> {
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
}
