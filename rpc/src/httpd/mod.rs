//! HTTP/1.1 server-side framing, shared by nsqlookupd's API and (later) nsqd's: bytes in,
//! [`Request`] out; [`Response`] in, bytes out. No sockets here: the engine in `bins` owns the
//! connection and calls [`parse_request`] on its input buffer.
//!
//! The bytes follow Go's `net/http` server and nsq's `http_api` decorators (spec part 0), since
//! nsqd and nsqlookupd are Go programs and their clients were tested against that output.
//!
//! # Layout
//! - `request.rs`: [`parse_request`] (httparse), [`Limits`], [`HttpError`] and Go's answers to
//!   unreadable requests, keep-alive rules, chunked bodies, `Expect: 100-continue`.
//! - `query.rs`: Go's `url.ParseQuery` ([`Query`]).
//! - `response.rs`: [`Response`], nsq's V1 and PlainText conventions, Go's header order.
//! - `router.rs`: httprouter's matching, redirects, OPTIONS and 405 rules ([`Router`]).
//! - `go_json.rs`: Go `encoding/json` compatible serialisation ([`to_go_json`]).

mod go_json;
mod query;
mod request;
mod response;
mod router;

use std::time::{SystemTime, UNIX_EPOCH};

pub use go_json::to_go_json;
pub use query::{parse_query, path_unescape, query_unescape, Query, QueryError};
pub use request::{
    crlf_after_post, expects_continue, oversized_request, parse_request, HttpError, Limits, ReplyTo, Request,
    Version,
};
pub use response::{
    Response, JSON_CONTENT_TYPE, NSQ_CONTENT_TYPE_NAME, NSQ_CONTENT_TYPE_V1, TEXT_CONTENT_TYPE,
};
pub use router::{clean_path, Routed, Router};

/// The bytes a server sends before reading a body announced with `Expect: 100-continue`.
pub const CONTINUE_BYTES: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Go's `http.StatusText` for the codes an nsq server sends.
pub fn status_text(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// `time` as an HTTP `Date` (`Mon, 02 Jan 2006 15:04:05 GMT`, Go's `http.TimeFormat`).
pub fn http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month 1..=12, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_dates() {
        let at = |s: u64| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(1_136_214_245), "Mon, 02 Jan 2006 15:04:05 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_735_689_599), "Tue, 31 Dec 2024 23:59:59 GMT");
    }
}
