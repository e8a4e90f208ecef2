//! `POST /pub` and `POST /mpub` (spec A.4, A.5), with nsqd's checks in nsqd's order.
//!
//! nsqd gets (so creates, and registers with lookupd) the topic as soon as its name has passed,
//! before it looks at `defer` or the messages: a publish refused after that point still leaves
//! the topic behind, and so does an `/mpub` with nothing in it.

use bytes::Bytes;
use squall_core::broker::{AdminOp, PubKind, Request};
use squall_core::names::Name;

use super::{Action, ApiContext, ApiRequest, Pending};
use crate::httpd::{parse_query, Query, Response};

fn topic_of(q: &Query) -> Result<Name, Response> {
    let raw = q
        .get("topic")
        .ok_or_else(|| Response::nsq_v1_error(400, "MISSING_ARG_TOPIC"))?;
    Name::new(raw.as_bytes()).ok_or_else(|| Response::nsq_v1_error(400, "INVALID_TOPIC"))
}

/// Creates `topic` if missing, then answers `answer`.
fn create_then(topic: Name, answer: Response) -> Action {
    Action::Submit(
        Request::Admin(AdminOp::CreateTopic(topic)),
        Pending::Answer(answer),
    )
}

pub(super) fn pub_one(req: &ApiRequest<'_>, ctx: &ApiContext) -> Action {
    let max = ctx.options.max_msg_size.max(0) as usize;
    if req.body.len() > max {
        return Response::nsq_v1_error(413, "MSG_TOO_BIG").into();
    }
    if req.body.is_empty() {
        return Response::nsq_v1_error(400, "MSG_EMPTY").into();
    }
    let Ok(q) = parse_query(req.query) else {
        return Response::nsq_v1_error(400, "INVALID_REQUEST").into();
    };
    let topic = match topic_of(&q) {
        Ok(t) => t,
        Err(r) => return r.into(),
    };
    let mut defer_ms = 0;
    if let Some(raw) = q.get("defer") {
        match parse_go_int64(raw) {
            Some(v) if (0..=ctx.options.max_req_timeout_ms).contains(&v) => defer_ms = v,
            _ => return create_then(topic, Response::nsq_v1_error(400, "INVALID_DEFER")),
        }
    }
    let kind = if defer_ms > 0 { PubKind::Dpub } else { PubKind::Pub };
    let bodies = vec![req.body.clone()];
    Action::Submit(
        Request::Publish {
            kind,
            topic,
            defer_ms,
            bodies,
        },
        Pending::Publish,
    )
}

pub(super) fn pub_many(req: &ApiRequest<'_>, ctx: &ApiContext) -> Action {
    let max_body = ctx.options.max_body_size.max(0) as usize;
    let max_msg = ctx.options.max_msg_size.max(0) as usize;
    // nsqd refuses this from the declared length, before it reads the query.
    if req.body.len() > max_body {
        return Response::nsq_v1_error(413, "BODY_TOO_BIG").into();
    }
    let Ok(q) = parse_query(req.query) else {
        return Response::nsq_v1_error(400, "INVALID_REQUEST").into();
    };
    let topic = match topic_of(&q) {
        Ok(t) => t,
        Err(r) => return r.into(),
    };
    let binary = match q.get("binary") {
        None | Some("false") | Some("0") => false,
        // nsqd treats any other value, even an empty one, as binary.
        Some(_) => true,
    };
    let bodies = if binary {
        binary_bodies(&req.body, max_body, max_msg)
    } else {
        text_bodies(&req.body, max_msg)
    };
    let bodies = match bodies {
        Ok(b) => b,
        Err(r) => return create_then(topic, r),
    };
    if bodies.is_empty() {
        return create_then(topic, Response::nsq_v1_text("OK"));
    }
    Action::Submit(
        Request::Publish {
            kind: PubKind::Mpub,
            topic,
            defer_ms: 0,
            bodies,
        },
        Pending::Publish,
    )
}

/// Newline-separated messages; empty lines skipped; a `\r` is kept, as nsqd keeps it.
fn text_bodies(body: &Bytes, max_msg: usize) -> Result<Vec<Bytes>, Response> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| start + i);
        if end > start {
            if end - start > max_msg {
                return Err(Response::nsq_v1_error(413, "MSG_TOO_BIG"));
            }
            out.push(body.slice(start..end));
        }
        start = end + 1;
    }
    Ok(out)
}

/// `[count][size][bytes]...`, big-endian int32s; trailing bytes are ignored.
fn binary_bodies(body: &Bytes, max_body: usize, max_msg: usize) -> Result<Vec<Bytes>, Response> {
    let bad_body = || Response::nsq_v1_error(413, "BAD_BODY");
    let bad_message = || Response::nsq_v1_error(413, "BAD_MESSAGE");
    let read_i32 = |at: usize| {
        body.get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = read_i32(0).ok_or_else(bad_body)?;
    if count <= 0 || count as i64 > (max_body as i64 - 4) / 5 {
        return Err(bad_body());
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 4;
    for _ in 0..count {
        let size = read_i32(at).ok_or_else(bad_message)?;
        if size <= 0 || size as usize > max_msg {
            return Err(bad_message());
        }
        let end = at + 4 + size as usize;
        if end > body.len() {
            return Err(bad_message());
        }
        out.push(body.slice(at + 4..end));
        at = end;
    }
    Ok(out)
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits, no overflow.
fn parse_go_int64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mode_skips_empty_lines_and_keeps_cr() {
        let b = Bytes::from_static(b"a\n\nb\r\nc");
        let got = text_bodies(&b, 10).unwrap();
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"a"),
                Bytes::from_static(b"b\r"),
                Bytes::from_static(b"c")
            ]
        );
        assert_eq!(
            text_bodies(&Bytes::from_static(b"toolong\n"), 3)
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn binary_mode_errors() {
        let mut b = vec![0, 0, 0, 2, 0, 0, 0, 1, b'x', 0, 0, 0, 2, b'y', b'z', 9, 9];
        assert_eq!(binary_bodies(&Bytes::from(b.clone()), 100, 10).unwrap().len(), 2);
        b[3] = 0;
        assert_eq!(
            &binary_bodies(&Bytes::from(b.clone()), 100, 10).unwrap_err().body[..],
            &br#"{"message":"BAD_BODY"}"#[..]
        );
        let short = vec![0, 0, 0, 1, 0, 0, 0, 5, b'x'];
        assert_eq!(
            &binary_bodies(&Bytes::from(short), 100, 10).unwrap_err().body[..],
            &br#"{"message":"BAD_MESSAGE"}"#[..]
        );
    }

    #[test]
    fn go_int64() {
        assert_eq!(parse_go_int64("+5"), Some(5));
        assert_eq!(parse_go_int64("-5"), Some(-5));
        assert_eq!(parse_go_int64("5ms"), None);
        assert_eq!(parse_go_int64(""), None);
        assert_eq!(parse_go_int64("99999999999999999999"), None);
    }
}
