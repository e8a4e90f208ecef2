//! Server-side HTTP/1.x request framing on `httparse`: one function turns buffered bytes into
//! a whole [`Request`] (head and body), "need more bytes" (`Ok(None)`), or an [`HttpError`]
//! whose bytes are what Go's `net/http` server writes before closing.

use bytes::Bytes;
use thiserror::Error;

use super::query::{parse_query, path_unescape, Query, QueryError};

/// Bounds on one request. Go's server allows 1 MiB of header (`DefaultMaxHeaderBytes`) and reads
/// any body; a body bound is ours, because the whole request must sit in the connection's input
/// buffer before it is parsed.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line and headers, the blank line included.
    pub header_bytes_max: usize,
    /// Header lines; more is answered 431 like an oversized header.
    pub headers_max: usize,
    /// Decoded body bytes.
    pub body_bytes_max: usize,
}

impl Limits {
    /// Raw bytes a whole request may occupy in the input buffer: the head, the body, and the
    /// framing of a chunked body (bounded to as many bytes again as the body itself).
    pub const fn request_bytes_max(&self) -> usize {
        self.header_bytes_max + 2 * self.body_bytes_max + CHUNKED_SLACK_BYTES
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
            headers_max: HEADERS_MAX_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
        }
    }
}

/// Go's `http.DefaultMaxHeaderBytes` plus the 4096 bytes of slack its reader allows.
const HEADER_BYTES_MAX_DEFAULT: usize = (1 << 20) + 4096;
/// Go has no count limit (only bytes); 100 is what `httparse` users commonly allow.
const HEADERS_MAX_DEFAULT: usize = 100;
/// Bodies nsqlookupd reads and throws away; 1 MiB is far beyond anything a tool sends.
const BODY_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// The last chunk, trailers and their CRLFs.
const CHUNKED_SLACK_BYTES: usize = 4096;

/// HTTP/1.0 or HTTP/1.1 (`httparse` refuses anything else).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One complete request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/lookup?topic=t`), for logs.
    pub target: String,
    /// The percent-decoded path, without the query (Go's `req.URL.Path`); routing uses it.
    pub path: String,
    /// The query string as sent, without `?` (Go's `req.URL.RawQuery`).
    pub raw_query: String,
    pub version: Version,
    /// Header names as sent; values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whether the connection stays open after the response (HTTP/1.1 unless `Connection:
    /// close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// The body, de-chunked.
    pub body: Bytes,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_value(&self.headers, name)
    }

    /// The query decoded like Go's `url.ParseQuery`.
    pub fn query(&self) -> Result<Query, QueryError> {
        parse_query(&self.raw_query)
    }

    /// Go's `req.URL.RequestURI()`, as nsq's request log line shows it: the target as sent, an
    /// absolute-form target reduced to its path and query.
    pub fn request_uri(&self) -> &str {
        origin_form(&self.target)
    }

    /// What the response encoder needs to know about this request.
    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            version: self.version,
            keep_alive: self.keep_alive,
            head: self.method == "HEAD",
        }
    }
}

/// The parts of a request that shape its response's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub version: Version,
    pub keep_alive: bool,
    /// HEAD: headers only.
    pub head: bool,
}

/// A request that cannot be served. The connection is closed after [`HttpError::response_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    /// Malformed request line, header, length or chunk framing.
    #[error("bad request")]
    BadRequest,
    /// Well-formed but refused, with Go's reason (`missing required Host header`).
    #[error("bad request: {0}")]
    BadRequestReason(&'static str),
    /// The head passed `Limits::header_bytes_max` or `headers_max`.
    #[error("request header fields too large")]
    HeaderTooLarge,
    /// The body passed `Limits::body_bytes_max`.
    #[error("request entity too large")]
    BodyTooLarge,
    /// A `Transfer-Encoding` other than `chunked`.
    #[error("unsupported transfer encoding")]
    UnsupportedTransferEncoding,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest | HttpError::BadRequestReason(_) => 400,
            HttpError::HeaderTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedTransferEncoding => 501,
        }
    }

    /// The bytes Go's server writes for a request it cannot read: no Content-Length, the
    /// connection closes (`net/http` `conn.serve`). A body limit is Squall's, so its 413 takes
    /// the same shape.
    pub fn response_bytes(&self) -> Vec<u8> {
        const ERROR_HEADERS: &str =
            "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
        let code = self.status();
        let public = match self {
            HttpError::BadRequestReason(reason) => {
                format!("{code} {}: {reason}", super::status_text(code))
            }
            HttpError::UnsupportedTransferEncoding => {
                format!(
                    "{code} {}: Unsupported transfer encoding",
                    super::status_text(code)
                )
            }
            _ => format!("{code} {}", super::status_text(code)),
        };
        format!("HTTP/1.1 {public}{ERROR_HEADERS}{public}").into_bytes()
    }
}

fn header_value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Whether a comma-separated header (`Connection`) carries `token`, case-insensitively.
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// How the body is framed.
enum BodyFraming {
    Length(usize),
    Chunked,
}

/// The head of a request, parsed, and where its body starts.
struct Head {
    request: Request,
    framing: BodyFraming,
    head_len: usize,
}

/// Parses one request from the front of `buf`. `Ok(None)`: not all of it is buffered yet.
/// `Ok(Some((request, consumed)))`: the caller drops `consumed` bytes. Pipelined requests that
/// follow are left in `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HttpError> {
    let Some(head) = parse_head(buf, limits)? else {
        return Ok(None);
    };
    let Head {
        mut request,
        framing,
        head_len,
    } = head;
    let rest = &buf[head_len..];
    match framing {
        BodyFraming::Length(len) => {
            if rest.len() < len {
                return Ok(None);
            }
            request.body = Bytes::copy_from_slice(&rest[..len]);
            Ok(Some((request, head_len + len)))
        }
        BodyFraming::Chunked => match decode_chunked(rest, limits)? {
            None => Ok(None),
            Some((body, used)) => {
                request.body = Bytes::from(body);
                Ok(Some((request, head_len + used)))
            }
        },
    }
}

/// Go's tolerance for old clients that end a POST body with an extra CRLF: before the next
/// request on that connection it drops up to 4 leading CR or LF bytes. How many of `buf`'s.
pub fn crlf_after_post(buf: &[u8]) -> usize {
    buf.iter()
        .take(4)
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// The head of a request refused with `HttpError::BodyTooLarge` (body empty), so a server can
/// answer it as its handler would; `None` if the head itself is not readable.
pub fn oversized_request(buf: &[u8], limits: &Limits) -> Option<Request> {
    let relaxed = Limits {
        body_bytes_max: usize::MAX,
        ..*limits
    };
    parse_head(buf, &relaxed).ok().flatten().map(|head| head.request)
}

/// True when `buf` holds the whole head of an HTTP/1.1 request with `Expect: 100-continue`
/// whose body has not fully arrived: the server should send `HTTP/1.1 100 Continue` (once),
/// as Go's server does when a handler starts reading such a body.
pub fn expects_continue(buf: &[u8], limits: &Limits) -> bool {
    let Ok(Some(head)) = parse_head(buf, limits) else {
        return false;
    };
    let wants = head
        .request
        .header("Expect")
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    let body_missing = match head.framing {
        BodyFraming::Length(len) => len > 0 && buf.len() - head.head_len < len,
        BodyFraming::Chunked => true,
    };
    wants && body_missing && head.request.version == Version::Http11
}

fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.headers_max];
    let mut req = httparse::Request::new(&mut headers);
    // Only the first `header_bytes_max` bytes are parsed, as Go's server reads the head through a
    // reader limited to that many: the answer depends on those bytes alone, never on whether
    // more had arrived by the time they were parsed.
    let window = &buf[..buf.len().min(limits.header_bytes_max)];
    // Go reads the request line whole before judging it: bytes that cannot start a request are
    // answered only once their line has ended (a client mid-way through writing something else
    // is not cut off), and an empty first line is malformed (httparse would skip it).
    let Some(line_end) = window.iter().position(|&b| b == b'\n') else {
        return if window.len() == limits.header_bytes_max {
            Err(HttpError::HeaderTooLarge)
        } else {
            Ok(None)
        };
    };
    let first_line = &window[..line_end];
    if first_line.strip_suffix(b"\r").unwrap_or(first_line).is_empty() {
        return Err(HttpError::BadRequest);
    }
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if window.len() == limits.header_bytes_max {
                return Err(HttpError::HeaderTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeaderTooLarge),
        Err(_) => return Err(HttpError::BadRequest),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadRequest);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();

    let (path, raw_query) = split_target(method, target)?;
    if version == Version::Http11 && method != "CONNECT" && header_value(&headers, "Host").is_none() {
        return Err(HttpError::BadRequestReason("missing required Host header"));
    }

    let framing = body_framing(&headers, version, limits)?;
    let connection = header_value(&headers, "Connection");
    let keep_alive = match version {
        Version::Http11 => !connection.is_some_and(|v| has_token(v, "close")),
        Version::Http10 => connection.is_some_and(|v| has_token(v, "keep-alive")),
    };
    Ok(Some(Head {
        request: Request {
            method: method.to_string(),
            target: target.to_string(),
            path,
            raw_query,
            version,
            headers,
            keep_alive,
            body: Bytes::new(),
        },
        framing,
        head_len,
    }))
}

/// The target less the scheme and host of an absolute-form target (`http://host/p?q` → `/p?q`).
fn origin_form(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        // Compared as bytes: the target may hold multi-byte UTF-8 where `str` slicing would panic.
        if target
            .as_bytes()
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes()))
        {
            // The prefix matched ASCII bytes, so `scheme.len()` is a char boundary.
            let after = &target[scheme.len()..];
            return after.find('/').map_or("/", |i| &after[i..]);
        }
    }
    target
}

/// Splits a request target into Go's `URL.Path` (decoded) and `URL.RawQuery`. Absolute-form
/// targets (`http://host/p?q`) are reduced to their path; `*` is kept for `OPTIONS *`.
fn split_target(method: &str, target: &str) -> Result<(String, String), HttpError> {
    if target == "*" && method == "OPTIONS" {
        return Ok(("*".to_string(), String::new()));
    }
    let rest = origin_form(target);
    if !rest.starts_with('/') {
        return Err(HttpError::BadRequest);
    }
    let (raw_path, raw_query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path_unescape(raw_path).map_err(|_| HttpError::BadRequest)?;
    Ok((path, raw_query.to_string()))
}

fn body_framing(
    headers: &[(String, Vec<u8>)],
    version: Version,
    limits: &Limits,
) -> Result<BodyFraming, HttpError> {
    if let Some(te) = header_value(headers, "Transfer-Encoding") {
        // Go ignores Transfer-Encoding on HTTP/1.0 requests and accepts only "chunked".
        if version == Version::Http11 {
            if te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Ok(BodyFraming::Chunked);
            }
            return Err(HttpError::UnsupportedTransferEncoding);
        }
    }
    let mut length: Option<usize> = None;
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let text = std::str::from_utf8(value.trim_ascii()).map_err(|_| HttpError::BadRequest)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadRequest);
        }
        let n: usize = text.parse().map_err(|_| HttpError::BadRequest)?;
        if length.is_some_and(|prev| prev != n) {
            return Err(HttpError::BadRequest);
        }
        length = Some(n);
    }
    let len = length.unwrap_or(0);
    if len > limits.body_bytes_max {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(BodyFraming::Length(len))
}

/// Decodes a chunked body from the front of `buf`: `Ok(None)` until the last chunk and the
/// trailers' blank line are buffered.
fn decode_chunked(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let raw_max = 2 * limits.body_bytes_max + CHUNKED_SLACK_BYTES;
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        if pos > raw_max {
            return Err(HttpError::BodyTooLarge);
        }
        let (size_len, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return partial(buf, raw_max),
            Err(_) => return Err(HttpError::BadRequest),
        };
        pos += size_len;
        if size == 0 {
            // Trailers (ignored), then the blank line.
            let mut trailers = [httparse::EMPTY_HEADER; 16];
            return match httparse::parse_headers(&buf[pos..], &mut trailers) {
                Ok(httparse::Status::Complete((n, _))) => Ok(Some((body, pos + n))),
                Ok(httparse::Status::Partial) => partial(buf, raw_max),
                Err(_) => Err(HttpError::BadRequest),
            };
        }
        let size = usize::try_from(size).map_err(|_| HttpError::BodyTooLarge)?;
        if size > limits.body_bytes_max.saturating_sub(body.len()) {
            return Err(HttpError::BodyTooLarge);
        }
        if buf.len() < pos + size + 2 {
            return partial(buf, raw_max);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(HttpError::BadRequest);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

fn partial(buf: &[u8], raw_max: usize) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    if buf.len() > raw_max {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
        parse_request(raw, &Limits::default())
    }

    fn whole(raw: &[u8]) -> Request {
        let (req, used) = parse(raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        req
    }

    #[test]
    fn a_multibyte_character_where_a_scheme_could_start_is_a_bad_request() {
        // Found by the http_request fuzz target: slicing the target at the scheme's length fell
        // inside a two-byte character and panicked.
        let raw = "GET http:/\u{44e}o4s:t151 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse(raw.as_bytes()).unwrap_err(), HttpError::BadRequest);
        let raw = "GET h\u{44e}/ HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse(raw.as_bytes()).unwrap_err(), HttpError::BadRequest);
    }

    #[test]
    fn an_oversized_head_is_431_however_the_bytes_arrive() {
        // Found by the http_request fuzz target: past the bound without a complete line, the
        // answer was 431 when parsed then, but 400 when the rest of a malformed line had arrived.
        let limits = Limits {
            header_bytes_max: 64,
            ..Limits::default()
        };
        let mut raw = b"GET /".to_vec();
        raw.resize(70, b'a');
        let early = parse_request(&raw, &limits).unwrap_err();
        raw.extend_from_slice(b"bad version\r\n\r\n");
        assert_eq!(early, HttpError::HeaderTooLarge);
        assert_eq!(parse_request(&raw, &limits).unwrap_err(), early);
        // A head of exactly the bound is still accepted.
        let mut head = b"GET /".to_vec();
        let tail = b" HTTP/1.0\r\n\r\n";
        head.resize(64 - tail.len(), b'a');
        head.extend_from_slice(tail);
        assert_eq!(parse_request(&head, &limits).unwrap().unwrap().1, 64);
    }

    #[test]
    fn bytes_that_cannot_start_a_request_are_judged_when_their_line_ends() {
        // An NSQ client that dialled the HTTP port writes "  V2" and then IDENTIFY: like Go's
        // server, wait for the line before answering 400, so the client is not reset mid-write.
        for partial in [&b"  V2"[..], b"  V2IDENTIFY", b"\x00\x00", b" "] {
            assert!(matches!(parse(partial), Ok(None)), "{partial:?}");
        }
        assert_eq!(parse(b"  V2IDENTIFY\n").unwrap_err(), HttpError::BadRequest);
        // An empty first line is malformed, not skipped.
        assert_eq!(
            parse(b"\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err(),
            HttpError::BadRequest
        );
        assert_eq!(parse(b"\n").unwrap_err(), HttpError::BadRequest);
    }

    #[test]
    fn get_with_query() {
        let req = whole(b"GET /lookup?topic=a%2Eb HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/lookup");
        assert_eq!(req.raw_query, "topic=a%2Eb");
        assert_eq!(req.query().unwrap().get("topic"), Some("a.b"));
        assert_eq!(req.version, Version::Http11);
        assert!(req.keep_alive);
        assert!(req.body.is_empty());
        assert_eq!(req.header("host"), Some(&b"x"[..]));
    }

    #[test]
    fn incomplete_head_and_body_need_more() {
        assert!(parse(b"GET /ping HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let raw = b"POST /topic/create?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab";
        assert!(parse(raw).unwrap().is_none());
        let mut full = raw.to_vec();
        full.extend_from_slice(b"cde");
        assert_eq!(&whole(&full).body[..], b"abcde");
    }

    #[test]
    fn pipelined_requests_are_consumed_one_at_a_time() {
        let raw = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let (first, used) = parse(raw).unwrap().unwrap();
        assert_eq!(first.path, "/a");
        let (second, used2) = parse(&raw[used..]).unwrap().unwrap();
        assert_eq!(second.path, "/b");
        assert_eq!(used + used2, raw.len());
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!whole(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!whole(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n").keep_alive);
        assert!(!whole(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        let req = whole(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(req.keep_alive);
        assert_eq!(req.version, Version::Http10);
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for cut in 1..raw.len() {
            assert!(parse(&raw[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert_eq!(&whole(raw).body[..], b"abcde");
        let bad = b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n";
        assert_eq!(parse(bad).unwrap_err(), HttpError::BadRequest);
    }

    #[test]
    fn errors_and_their_bytes() {
        let e = parse(b"GET /ping HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(
            e.response_bytes(),
            b"HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header"
        );
        let e = parse(b"GARBAGE\r\n\r\n").unwrap_err();
        assert_eq!(
            e.response_bytes(),
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
        );
        let te = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse(te).unwrap_err(), HttpError::UnsupportedTransferEncoding);
        let cl = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(cl).unwrap_err(), HttpError::BadRequest);
        let cl = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse(cl).unwrap_err(), HttpError::BadRequest);
        assert_eq!(
            parse(b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err(),
            HttpError::BadRequest
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            header_bytes_max: 64,
            headers_max: 2,
            body_bytes_max: 4,
        };
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(long.as_bytes(), &limits).unwrap_err(),
            HttpError::HeaderTooLarge
        );
        let many = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(
            parse_request(many, &limits).unwrap_err(),
            HttpError::HeaderTooLarge
        );
        let big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse_request(big, &limits).unwrap_err(), HttpError::BodyTooLarge);
        let chunks = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
        assert_eq!(
            parse_request(chunks, &limits).unwrap_err(),
            HttpError::BodyTooLarge
        );
    }

    #[test]
    fn absolute_form_and_expect_continue() {
        let req = whole(b"GET http://h:4161/ping?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((req.path.as_str(), req.raw_query.as_str()), ("/ping", "x=1"));
        let head = b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(expects_continue(head, &Limits::default()));
        let mut full = head.to_vec();
        full.extend_from_slice(b"abc");
        assert!(!expects_continue(&full, &Limits::default()));
        assert!(!expects_continue(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            &Limits::default()
        ));
    }
}
