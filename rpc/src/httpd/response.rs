//! Responses, written the way Go's `net/http` server writes them for nsq's handlers.
//!
//! Header order on the wire follows Go: the handler's headers sorted by name (`Allow`,
//! `Content-Type`, `X-Nsq-Content-Type`, canonicalised as Go's `Header.Set` does), then `Date`,
//! `Content-Length`, a sniffed `Content-Type` when the handler set none, and `Connection` when
//! the connection's fate differs from the protocol default.

use bytes::Bytes;
use serde::Serialize;

use super::go_json::to_go_json;
use super::request::{ReplyTo, Version};
use super::status_text;

/// `Content-Type` of nsq's JSON answers.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// What Go's `DetectContentType` says for the plain text nsq writes (`OK`, error texts).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// go-nsq parses a body as a bare V1 answer only when this header says so (spec 0.3).
pub const NSQ_CONTENT_TYPE_NAME: &str = "X-Nsq-Content-Type";
pub const NSQ_CONTENT_TYPE_V1: &str = "nsq; version=1.0";

/// One response: status, the handler's headers, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Headers set by the handler, with Go's canonical names.
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// nsq's V1 decorator, success with a JSON payload: the bare object, JSON content type.
    pub fn nsq_v1_json<T: Serialize + ?Sized>(data: &T) -> Response {
        match to_go_json(data) {
            Ok(body) => Response::new(200)
                .with_header("Content-Type", JSON_CONTENT_TYPE)
                .with_header(NSQ_CONTENT_TYPE_NAME, NSQ_CONTENT_TYPE_V1)
                .with_body(body),
            // RespondV1 turns a marshalling failure into a 500 carrying the error text.
            Err(e) => Response::nsq_v1_error(500, &e.to_string()),
        }
    }

    /// nsq's V1 decorator, success with no payload (`nil`): empty body, no content type.
    pub fn nsq_v1_empty() -> Response {
        Response::new(200).with_header(NSQ_CONTENT_TYPE_NAME, NSQ_CONTENT_TYPE_V1)
    }

    /// nsq's V1 decorator, success with a string payload: written raw, type sniffed.
    pub fn nsq_v1_text(text: impl Into<Bytes>) -> Response {
        Response::nsq_v1_empty().with_body(text)
    }

    /// nsq's V1 decorator, failure: `{"message":"<TEXT>"}` with the error's status.
    pub fn nsq_v1_error(status: u16, message: &str) -> Response {
        #[derive(Serialize)]
        struct Message<'a> {
            message: &'a str,
        }
        let body = to_go_json(&Message { message }).unwrap_or_default();
        Response::new(status)
            .with_header("Content-Type", JSON_CONTENT_TYPE)
            .with_header(NSQ_CONTENT_TYPE_NAME, NSQ_CONTENT_TYPE_V1)
            .with_body(body)
    }

    /// nsq's PlainText decorator: the text as-is, no JSON, no `X-Nsq-Content-Type`.
    pub fn plain_text(status: u16, text: impl Into<Bytes>) -> Response {
        Response::new(status).with_body(text)
    }

    /// Go's `http.Redirect` (how httprouter answers a trailing-slash or case mismatch):
    /// `Location`, an HTML content type for GET and HEAD, and for GET an HTML body naming the
    /// target (`<a href="/ping">Moved Permanently</a>.` and two newlines).
    pub fn redirect(status: u16, location: &str, method: &str) -> Response {
        let mut r = Response::new(status).with_header("Location", location);
        if method == "GET" || method == "HEAD" {
            r = r.with_header("Content-Type", "text/html; charset=utf-8");
        }
        if method == "GET" {
            let body = format!(
                "<a href=\"{}\">{}</a>.\n\n",
                html_escape(location),
                status_text(status)
            );
            r = r.with_body(body);
        }
        r
    }

    /// The response bytes for a request framed as `reply_to`; `date` is an HTTP date
    /// ([`super::http_date`]).
    pub fn encode(&self, reply_to: &ReplyTo, date: &str, out: &mut Vec<u8>) {
        let version = match reply_to.version {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        };
        out.extend_from_slice(
            format!("{version} {} {}\r\n", self.status, status_text(self.status)).as_bytes(),
        );
        let mut sorted: Vec<&(&'static str, String)> = self.headers.iter().collect();
        sorted.sort_by_key(|(name, _)| *name);
        for (name, value) in sorted {
            push_header(out, name, value);
        }
        push_header(out, "Date", date);
        push_header(out, "Content-Length", &self.body.len().to_string());
        if self.header("Content-Type").is_none() && !self.body.is_empty() {
            push_header(out, "Content-Type", TEXT_CONTENT_TYPE);
        }
        match (reply_to.version, reply_to.keep_alive) {
            (Version::Http11, false) => push_header(out, "Connection", "close"),
            (Version::Http10, true) => push_header(out, "Connection", "keep-alive"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        if !reply_to.head {
            out.extend_from_slice(&self.body);
        }
    }

    /// [`Response::encode`] into a fresh buffer.
    pub fn to_bytes(&self, reply_to: &ReplyTo, date: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.body.len());
        self.encode(reply_to, date, &mut out);
        out
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Go's `html.EscapeString` as `http.Redirect` uses it.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Mon, 02 Jan 2006 15:04:05 GMT";
    const KEEP: ReplyTo = ReplyTo {
        version: Version::Http11,
        keep_alive: true,
        head: false,
    };

    fn text(r: &Response, to: &ReplyTo) -> String {
        String::from_utf8(r.to_bytes(to, DATE)).unwrap()
    }

    #[test]
    fn plain_text_ok_is_sniffed() {
        assert_eq!(
            text(&Response::plain_text(200, "OK"), &KEEP),
            "HTTP/1.1 200 OK\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK"
        );
    }

    #[test]
    fn v1_json_and_errors() {
        #[derive(Serialize)]
        struct Info {
            version: &'static str,
        }
        assert_eq!(
            text(&Response::nsq_v1_json(&Info { version: "1.3.0" }), &KEEP),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 19\r\n\r\n{\"version\":\"1.3.0\"}"
        );
        let r = Response::nsq_v1_error(405, "METHOD_NOT_ALLOWED").with_header("Allow", "GET, OPTIONS");
        assert_eq!(
            text(&r, &KEEP),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, OPTIONS\r\nContent-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 32\r\n\r\n{\"message\":\"METHOD_NOT_ALLOWED\"}"
        );
        assert_eq!(
            text(&Response::nsq_v1_empty(), &KEEP),
            "HTTP/1.1 200 OK\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn connection_headers_and_head() {
        let close11 = ReplyTo {
            keep_alive: false,
            ..KEEP
        };
        assert!(text(&Response::plain_text(200, "OK"), &close11).ends_with("Connection: close\r\n\r\nOK"));
        let keep10 = ReplyTo {
            version: Version::Http10,
            ..KEEP
        };
        let t = text(&Response::plain_text(200, "OK"), &keep10);
        assert!(t.starts_with("HTTP/1.0 200 OK\r\n") && t.ends_with("Connection: keep-alive\r\n\r\nOK"));
        let close10 = ReplyTo {
            keep_alive: false,
            ..keep10
        };
        assert!(!text(&Response::plain_text(200, "OK"), &close10).contains("Connection"));
        let head = ReplyTo { head: true, ..KEEP };
        assert!(text(&Response::plain_text(200, "OK"), &head)
            .ends_with("Content-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    }

    #[test]
    fn redirects_like_go() {
        assert_eq!(
            text(&Response::redirect(301, "/ping", "GET"), &KEEP),
            "HTTP/1.1 301 Moved Permanently\r\nContent-Type: text/html; charset=utf-8\r\nLocation: /ping\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 40\r\n\r\n<a href=\"/ping\">Moved Permanently</a>.\n\n"
        );
        assert_eq!(
            text(&Response::redirect(307, "/topic/create?topic=t", "POST"), &KEEP),
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: /topic/create?topic=t\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
