//! PUB, MPUB and DPUB (spec §4.4 to §4.6): allowed in every state.
//!
//! Bodies come back as ranges into the input buffer, so a publish allocates nothing here (MPUB's
//! list of ranges aside).
//!
//! MPUB framing choice: nsqd validates the declared total size, then reads the count and every
//! message straight from the stream, never reconciling them with the total (an inconsistent total
//! desyncs the connection). Here the total is an enclosing frame instead, because a command is
//! decoded from one buffer: bounding it by the checked total keeps every command within
//! `--max-body-size` (or `--max-msg-size` for PUB/DPUB) plus the line, where nsqd's reading
//! would let count × `--max-msg-size` bytes through. So:
//! - the total and the count are checked as soon as their 4 bytes are buffered;
//! - then the whole declared body is waited for (at most `--max-body-size`, already checked) and
//!   walked once. Per-message errors therefore surface when the body is complete rather than as
//!   nsqd reads it; the error frames are the same. Walking once keeps a client that trickles bytes
//!   from making every call rescan the body;
//! - a read that would pass the declared end gets nsqd's "failed to read" error for that read;
//! - bytes left over inside the declared body after the last message, which nsqd would parse as
//!   the next command, are refused as `E_BAD_BODY MPUB invalid body size <total>`.
//!
//! Two nsqd steps that precede MPUB's body checks need server state and belong to the session:
//! the auth check and the topic's creation. With the body checked here first, an MPUB with both
//! an auth problem and a bad body reports the body error, and a bad body creates no topic.

use std::ops::Range;

use crate::error::ErrorCode;
use crate::names::Name;
use crate::options::Options;
use crate::protocol::decode::{
    buffered, duration_ns, fatal, parse_base10, positive_len, read_size, Decoded, Line,
};
use crate::protocol::{go_quote, Command, DecodeCtx, DecodeError};

/// `PUB <topic>\n[size][body]`.
pub(crate) fn publish(buf: &[u8], line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    if line.param_count < 1 {
        return Err(fatal(ErrorCode::Invalid, "PUB insufficient number of parameters"));
    }
    let topic = topic_name(line.param(0), "PUB")?;
    let Some(body) = message_body(buf, line.end, "PUB", ctx.options)? else {
        return Ok(None);
    };
    let end = body.end;
    Ok(Some((Command::Pub { topic, body }, end)))
}

/// `DPUB <topic> <defer_ms>\n[size][body]`.
pub(crate) fn dpub(buf: &[u8], line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    if line.param_count < 2 {
        return Err(fatal(
            ErrorCode::Invalid,
            "DPUB insufficient number of parameters",
        ));
    }
    let topic = topic_name(line.param(0), "DPUB")?;
    let raw = line.param(1);
    let Some(ms) = parse_base10(raw) else {
        return Err(fatal(
            ErrorCode::Invalid,
            [b"DPUB could not parse timeout ", raw].concat(),
        ));
    };
    // nsqd compares the wrapped nanosecond duration and prints the unsigned milliseconds.
    let ns = duration_ns(ms);
    let max_ms = ctx.options.max_req_timeout_ms;
    if ns < 0 || i128::from(ns) > i128::from(max_ms) * 1_000_000 {
        let desc = format!("DPUB timeout {ms} out of range 0-{max_ms}");
        return Err(fatal(ErrorCode::Invalid, desc));
    }
    let Some(body) = message_body(buf, line.end, "DPUB", ctx.options)? else {
        return Ok(None);
    };
    let end = body.end;
    Ok(Some((
        Command::Dpub {
            topic,
            defer_ms: ns / 1_000_000,
            body,
        },
        end,
    )))
}

/// `MPUB <topic>\n[total][count]([size][body])*` (see the module doc for the framing choice).
pub(crate) fn mpub(buf: &[u8], line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    if line.param_count < 1 {
        return Err(fatal(
            ErrorCode::Invalid,
            "MPUB insufficient number of parameters",
        ));
    }
    let raw_topic = line.param(0);
    let Some(topic) = Name::new(raw_topic) else {
        // nsqd repeats the code inside the description.
        let desc = format!("E_BAD_TOPIC MPUB topic name {} is not valid", go_quote(raw_topic));
        return Err(fatal(ErrorCode::BadTopic, desc));
    };

    let Some(total) = read_size(buf, line.end) else {
        return Ok(None);
    };
    let max_body = ctx.options.max_body_size;
    if total <= 0 {
        return Err(fatal(
            ErrorCode::BadBody,
            format!("MPUB invalid body size {total}"),
        ));
    }
    if i64::from(total) > max_body {
        let desc = format!("MPUB body too big {total} > {max_body}");
        return Err(fatal(ErrorCode::BadBody, desc));
    }
    let body_start = line.end + 4;
    let body_end = body_start + positive_len(total);

    if total < 4 {
        return Err(fatal(ErrorCode::BadBody, "MPUB failed to read message count"));
    }
    let Some(count) = read_size(buf, body_start) else {
        return Ok(None);
    };
    // Each message needs at least 5 bytes (size + 1), after the 4-byte count.
    let max_messages = (max_body - 4) / 5;
    if count <= 0 || i64::from(count) > max_messages {
        let desc = format!("MPUB invalid message count {count}");
        return Err(fatal(ErrorCode::BadBody, desc));
    }

    if buf.len() < body_end {
        return Ok(None);
    }
    let bodies = mpub_messages(&buf[..body_end], body_start + 4, count, ctx.options)?;
    let used = bodies.last().map_or(body_start + 4, |last| last.end);
    if used != body_end {
        return Err(fatal(
            ErrorCode::BadBody,
            format!("MPUB invalid body size {total}"),
        ));
    }
    Ok(Some((Command::Mpub { topic, bodies }, body_end)))
}

/// Walks `count` messages from `at`; `framed` ends at the declared end of the MPUB body.
fn mpub_messages(
    framed: &[u8],
    mut at: usize,
    count: i32,
    options: &Options,
) -> Result<Vec<Range<usize>>, DecodeError> {
    // No more messages than fit in the body, whatever the count claims.
    let fit = framed.len().saturating_sub(at) / 5;
    let mut bodies = Vec::with_capacity(positive_len(count).min(fit));
    for i in 0..count {
        let Some(size) = read_size(framed, at) else {
            let desc = format!("MPUB failed to read message({i}) body size");
            return Err(fatal(ErrorCode::BadMessage, desc));
        };
        if size <= 0 {
            let desc = format!("MPUB invalid message({i}) body size {size}");
            return Err(fatal(ErrorCode::BadMessage, desc));
        }
        let max_msg = options.max_msg_size;
        if i64::from(size) > max_msg {
            let desc = format!("MPUB message too big {size} > {max_msg}");
            return Err(fatal(ErrorCode::BadMessage, desc));
        }
        let Some(body) = buffered(framed, at + 4, positive_len(size)) else {
            return Err(fatal(ErrorCode::BadMessage, "MPUB failed to read message body"));
        };
        at = body.end;
        bodies.push(body);
    }
    Ok(bodies)
}

fn topic_name(raw: &[u8], cmd: &str) -> Result<Name, DecodeError> {
    Name::new(raw).ok_or_else(|| {
        let desc = format!("{cmd} topic name {} is not valid", go_quote(raw));
        fatal(ErrorCode::BadTopic, desc)
    })
}

/// The single message body of PUB and DPUB, size-checked before it is waited for.
fn message_body(
    buf: &[u8],
    at: usize,
    cmd: &str,
    options: &Options,
) -> Result<Option<Range<usize>>, DecodeError> {
    let Some(size) = read_size(buf, at) else {
        return Ok(None);
    };
    if size <= 0 {
        let desc = format!("{cmd} invalid message body size {size}");
        return Err(fatal(ErrorCode::BadMessage, desc));
    }
    let max = options.max_msg_size;
    if i64::from(size) > max {
        return Err(fatal(
            ErrorCode::BadMessage,
            format!("{cmd} message too big {size} > {max}"),
        ));
    }
    Ok(buffered(buf, at + 4, positive_len(size)))
}

#[cfg(test)]
mod tests {
    use crate::names::Name;
    use crate::protocol::cmd::testing::{err_text, run};
    use crate::protocol::{ClientState, Command};

    const INIT: ClientState = ClientState::Init;

    fn t() -> Name {
        Name::new(b"t").unwrap()
    }

    fn be(n: i32) -> [u8; 4] {
        n.to_be_bytes()
    }

    #[test]
    fn pub_in_every_state() {
        for state in [ClientState::Init, ClientState::Subscribed, ClientState::Closing] {
            let buf = [&b"PUB t\n"[..], &be(5), b"helloNOP\n"].concat();
            assert_eq!(
                run(state, &buf),
                Ok(Some((
                    Command::Pub {
                        topic: t(),
                        body: 10..15
                    },
                    15
                )))
            );
        }
    }

    #[test]
    fn pub_errors_in_order() {
        assert_eq!(
            err_text(run(INIT, b"PUB\n")),
            "E_INVALID PUB insufficient number of parameters"
        );
        // `PUB  t`: the topic is the empty parameter.
        assert_eq!(
            err_text(run(INIT, b"PUB  t\n")),
            r#"E_BAD_TOPIC PUB topic name "" is not valid"#
        );
        let got = err_text(run(INIT, &[&b"PUB t\n"[..], &be(0)].concat()));
        assert_eq!(got, "E_BAD_MESSAGE PUB invalid message body size 0");
        let got = err_text(run(INIT, &[&b"PUB t\n"[..], &be(-5)].concat()));
        assert_eq!(got, "E_BAD_MESSAGE PUB invalid message body size -5");
        let got = err_text(run(INIT, &[&b"PUB t\n"[..], &be(1_048_577)].concat()));
        assert_eq!(got, "E_BAD_MESSAGE PUB message too big 1048577 > 1048576");
        assert_eq!(run(INIT, &[&b"PUB t\n"[..], &be(3), b"ab"].concat()), Ok(None));
    }

    #[test]
    fn dpub_decodes_and_checks_range() {
        let buf = [&b"DPUB t 3600000\n"[..], &be(1), b"x"].concat();
        let want = Command::Dpub {
            topic: t(),
            defer_ms: 3_600_000,
            body: 19..20,
        };
        assert_eq!(run(INIT, &buf), Ok(Some((want, 20))));
        let buf = [&b"DPUB t \n"[..], &be(1), b"x"].concat();
        let want = Command::Dpub {
            topic: t(),
            defer_ms: 0,
            body: 12..13,
        };
        assert_eq!(run(INIT, &buf), Ok(Some((want, 13))));
        // 2^58 ms wraps to 0 ns in Go, so nsqd accepts it as no defer.
        let buf = [&b"DPUB t 288230376151711744\n"[..], &be(1), b"x"].concat();
        assert!(matches!(
            run(INIT, &buf),
            Ok(Some((Command::Dpub { defer_ms: 0, .. }, 31)))
        ));

        let msg = |line: &[u8]| err_text(run(INIT, line));
        assert_eq!(
            msg(b"DPUB t\n"),
            "E_INVALID DPUB insufficient number of parameters"
        );
        assert_eq!(
            msg(b"DPUB t: 1\n"),
            r#"E_BAD_TOPIC DPUB topic name "t:" is not valid"#
        );
        assert_eq!(msg(b"DPUB t 1s\n"), "E_INVALID DPUB could not parse timeout 1s");
        let got = msg(b"DPUB t 3600001\n");
        assert_eq!(got, "E_INVALID DPUB timeout 3600001 out of range 0-3600000");
        let got = msg(b"DPUB t 18446744073709551615\n");
        assert_eq!(
            got,
            "E_INVALID DPUB timeout 18446744073709551615 out of range 0-3600000"
        );
        let got = msg(&[&b"DPUB t 1\n"[..], &be(0)].concat());
        assert_eq!(got, "E_BAD_MESSAGE DPUB invalid message body size 0");
        let got = msg(&[&b"DPUB t 1\n"[..], &be(1_048_577)].concat());
        assert_eq!(got, "E_BAD_MESSAGE DPUB message too big 1048577 > 1048576");
    }

    fn mpub(total: i32, count: i32, messages: &[&[u8]]) -> Vec<u8> {
        let mut buf = [&b"MPUB t\n"[..], &be(total), &be(count)].concat();
        for m in messages {
            buf.extend_from_slice(&be(m.len() as i32));
            buf.extend_from_slice(m);
        }
        buf
    }

    #[test]
    fn mpub_decodes() {
        let buf = mpub(14, 2, &[b"a", b"b"]);
        let want = Command::Mpub {
            topic: t(),
            bodies: vec![19..20, 24..25],
        };
        assert_eq!(run(INIT, &[&buf[..], b"NOP\n"].concat()), Ok(Some((want, 25))));
    }

    #[test]
    fn mpub_errors_in_order() {
        let msg = |buf: &[u8]| err_text(run(INIT, buf));
        assert_eq!(msg(b"MPUB\n"), "E_INVALID MPUB insufficient number of parameters");
        let got = msg(b"MPUB a/b\n");
        assert_eq!(
            got,
            r#"E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "a/b" is not valid"#
        );
        assert_eq!(msg(&mpub(0, 1, &[])), "E_BAD_BODY MPUB invalid body size 0");
        assert_eq!(msg(&mpub(-1, 1, &[])), "E_BAD_BODY MPUB invalid body size -1");
        let got = msg(&mpub(5_242_881, 1, &[]));
        assert_eq!(got, "E_BAD_BODY MPUB body too big 5242881 > 5242880");
        // Count and its limit are checked before the body is buffered.
        assert_eq!(msg(&mpub(100, 0, &[])), "E_BAD_BODY MPUB invalid message count 0");
        assert_eq!(
            msg(&mpub(100, -3, &[])),
            "E_BAD_BODY MPUB invalid message count -3"
        );
        let got = msg(&mpub(100, 1_048_576, &[]));
        assert_eq!(got, "E_BAD_BODY MPUB invalid message count 1048576");
        let at_limit = mpub(100, 1_048_575, &[]);
        assert_eq!(run(INIT, &at_limit), Ok(None));
        // Per-message errors carry the index.
        let got = msg(&mpub(4 + 5 + 4, 2, &[b"a", b""]));
        assert_eq!(got, "E_BAD_MESSAGE MPUB invalid message(1) body size 0");
        let big = vec![0u8; 1_048_577];
        let got = msg(&mpub(4 + 4 + 1_048_577, 1, &[&big]));
        assert_eq!(got, "E_BAD_MESSAGE MPUB message too big 1048577 > 1048576");
    }

    #[test]
    fn mpub_reads_are_bounded_by_the_declared_total() {
        let msg = |buf: &[u8]| err_text(run(INIT, buf));
        // Total too small for the count itself.
        let got = msg(&[&b"MPUB t\n"[..], &be(3), b"abc"].concat());
        assert_eq!(got, "E_BAD_BODY MPUB failed to read message count");
        // Declared 2 messages, total only covers the first.
        let got = msg(&mpub(4 + 5, 2, &[b"a", b"b"]));
        assert_eq!(got, "E_BAD_MESSAGE MPUB failed to read message(1) body size");
        // Second size header cut by the total.
        let got = msg(&mpub(4 + 5 + 2, 2, &[b"a", b"b"]));
        assert_eq!(got, "E_BAD_MESSAGE MPUB failed to read message(1) body size");
        // Body runs past the total.
        let got = msg(&mpub(4 + 5 + 4, 2, &[b"a", b"bc"]));
        assert_eq!(got, "E_BAD_MESSAGE MPUB failed to read message body");
        // Bytes left over after the last message.
        let mut buf = mpub(4 + 5 + 2, 1, &[b"a"]);
        buf.extend_from_slice(b"zz");
        assert_eq!(msg(&buf), "E_BAD_BODY MPUB invalid body size 11");
    }
}
