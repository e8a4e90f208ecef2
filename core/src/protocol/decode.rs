//! `decode`: the one place where a V2 client's bytes become a `Command` (STYLE rule 1).
//!
//! nsqd reads a command line, then lets the command's handler read its body straight from the
//! socket, raising errors as it goes. Here the same order is kept against a byte buffer:
//! everything decidable from the line is checked first, then each size as soon as its 4 bytes are
//! buffered, and only then do we wait for the body (`Ok(None)`). So an oversized body is refused
//! without being buffered, and a prefix of a valid command is never an error. nsqd's "failed to
//! read ..." errors only exist here where a read would run past a declared enclosing size (MPUB,
//! see `cmd::publish`); everywhere else a short read just means "wait".
//!
//! This file holds the entry point, the line splitter and what the command families share; the
//! handlers are in `cmd/`, one family per file.

use std::ops::Range;

use super::cmd::{ack, publish, session, subscribe};
use super::{ClientState, Command, DecodeCtx, DecodeError};
use crate::error::{ErrorCode, ProtocolError};
use crate::message::MessageId;
use crate::options::Options;

/// What every command decoder returns (see `decode`).
pub(super) type Decoded = Result<Option<(Command, usize)>, DecodeError>;

/// Decodes one command from the start of `buf` (the magic is already consumed).
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((command, consumed)))`: `consumed` bytes (line and
/// body) make up the command, and body ranges index into `buf`. `Err(Close)`: no `\n` within
/// 16 KiB, closed without a frame as nsqd's reader fails. `Err(Protocol(e))`: send `e`, then close
/// if it is fatal (every decode error is).
///
/// RDY in the closing state decodes to `Command::Nop`: nsqd ignores it without even parsing the
/// count, and `Nop` is exactly "no reply, no effect".
pub fn decode(buf: &[u8], ctx: &DecodeCtx<'_>) -> Decoded {
    let window = &buf[..buf.len().min(Options::LINE_LEN_MAX)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= Options::LINE_LEN_MAX {
            Err(DecodeError::Close)
        } else {
            Ok(None)
        };
    };
    let raw = &buf[..newline];
    let text = raw.strip_suffix(b"\r").unwrap_or(raw);
    let line = Line::split(text, newline + 1);

    if line.name != b"IDENTIFY" && ctx.tls_required_unmet {
        let desc = [b"cannot ", line.name, b" in current state (TLS required)"].concat();
        return Err(fatal(ErrorCode::Invalid, desc));
    }
    match line.name {
        b"FIN" => ack::fin(&line, ctx),
        b"RDY" => subscribe::rdy(&line, ctx),
        b"REQ" => ack::req(&line, ctx),
        b"PUB" => publish::publish(buf, &line, ctx),
        b"MPUB" => publish::mpub(buf, &line, ctx),
        b"DPUB" => publish::dpub(buf, &line, ctx),
        b"NOP" => session::nop(&line),
        b"TOUCH" => ack::touch(&line, ctx),
        b"SUB" => subscribe::sub(&line, ctx),
        b"CLS" => subscribe::cls(&line, ctx),
        b"AUTH" => session::auth(buf, &line, ctx),
        b"IDENTIFY" => session::identify(buf, &line, ctx),
        name => Err(fatal(ErrorCode::Invalid, [b"invalid command ", name].concat())),
    }
}

/// Parameters kept from a line: no command reads more than three.
const PARAMS_KEPT: usize = 3;

/// A command line split on every single space, without allocating.
pub(crate) struct Line<'a> {
    pub name: &'a [u8],
    params: [&'a [u8]; PARAMS_KEPT],
    /// Parameters after the name, including empty ones and those beyond `PARAMS_KEPT`.
    pub param_count: usize,
    /// Offset just past the `\n`: where a body's size field starts.
    pub end: usize,
}

impl<'a> Line<'a> {
    fn split(text: &'a [u8], end: usize) -> Line<'a> {
        let mut parts = text.split(|&b| b == b' ');
        let name = parts.next().unwrap_or_default();
        let mut params: [&[u8]; PARAMS_KEPT] = [&[]; PARAMS_KEPT];
        let mut param_count = 0;
        for part in parts {
            if let Some(slot) = params.get_mut(param_count) {
                *slot = part;
            }
            param_count += 1;
        }
        Line {
            name,
            params,
            param_count,
            end,
        }
    }

    /// Parameter `i` after the name; empty when absent (callers check `param_count` first).
    pub fn param(&self, i: usize) -> &'a [u8] {
        self.params.get(i).copied().unwrap_or_default()
    }
}

pub(crate) fn fatal(code: ErrorCode, desc: impl Into<Vec<u8>>) -> DecodeError {
    DecodeError::Protocol(ProtocolError::new(code, desc))
}

/// `E_INVALID cannot <CMD> in current state` unless `ctx.state` is one of `allowed`.
pub(crate) fn require_state(
    ctx: &DecodeCtx<'_>,
    allowed: &[ClientState],
    cmd: &str,
) -> Result<(), DecodeError> {
    if allowed.contains(&ctx.state) {
        Ok(())
    } else {
        Err(fatal(
            ErrorCode::Invalid,
            format!("cannot {cmd} in current state"),
        ))
    }
}

/// The 4-byte big-endian size at `at`, reinterpreted as `i32` as nsqd's `readLen` does; `None`
/// until all four bytes are buffered.
pub(crate) fn read_size(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// `len` bytes from `start` once they are all buffered.
pub(crate) fn buffered(buf: &[u8], start: usize, len: usize) -> Option<Range<usize>> {
    let end = start.checked_add(len)?;
    (end <= buf.len()).then_some(start..end)
}

/// A size already checked to be positive, as a length.
pub(crate) fn positive_len(size: i32) -> usize {
    debug_assert!(size > 0);
    size.unsigned_abs() as usize
}

/// nsqd's `protocol.ByteToBase10`: unsigned decimal, every byte a digit, empty is 0, overflow
/// wraps (spec §1.5). `None` on any other byte.
pub(crate) fn parse_base10(raw: &[u8]) -> Option<u64> {
    raw.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

/// Go's `time.Duration(ms) * time.Millisecond` for a parsed `ms`: both steps wrap.
pub(crate) fn duration_ns(ms: u64) -> i64 {
    (ms as i64).wrapping_mul(1_000_000)
}

/// nsqd's `getMessageID`: exactly 16 bytes, content unchecked.
pub(crate) fn message_id(raw: &[u8]) -> Result<MessageId, DecodeError> {
    raw.try_into()
        .map(MessageId)
        .map_err(|_| fatal(ErrorCode::Invalid, "invalid message ID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_split_keeps_empty_params() {
        let l = Line::split(b"PUB  t", 7);
        assert_eq!(l.name, b"PUB");
        assert_eq!(l.param_count, 2);
        assert_eq!(
            (l.param(0), l.param(1), l.param(2)),
            (&b""[..], &b"t"[..], &b""[..])
        );
        let l = Line::split(b"", 1);
        assert_eq!((l.name, l.param_count), (&b""[..], 0));
        let l = Line::split(b"A b c d e ", 11);
        assert_eq!(l.param_count, 5);
        assert_eq!(l.param(2), b"d");
        assert_eq!(l.param(7), b"");
    }

    #[test]
    fn base10_is_go_byte_to_base10() {
        assert_eq!(parse_base10(b""), Some(0));
        assert_eq!(parse_base10(b"0"), Some(0));
        assert_eq!(parse_base10(b"007"), Some(7));
        assert_eq!(parse_base10(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_base10(b"18446744073709551616"), Some(0));
        assert_eq!(parse_base10(b"-1"), None);
        assert_eq!(parse_base10(b"+1"), None);
        assert_eq!(parse_base10(b"1 "), None);
        assert_eq!(parse_base10(b"1a"), None);
    }

    #[test]
    fn duration_wraps_like_go() {
        assert_eq!(duration_ns(1), 1_000_000);
        assert_eq!(duration_ns(1 << 58), 0);
        assert!(duration_ns(9_223_372_036_855) < 0);
        assert!(duration_ns(u64::MAX) < 0);
    }

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(read_size(b"\x00\x00\x01\x00", 0), Some(256));
        assert_eq!(read_size(b"\xff\xff\xff\xff", 0), Some(-1));
        assert_eq!(read_size(b"\x80\x00\x00\x00", 0), Some(i32::MIN));
        assert_eq!(read_size(b"\x00\x00\x01", 0), None);
        assert_eq!(read_size(b"", usize::MAX), None);
        assert_eq!(buffered(b"abc", 1, 2), Some(1..3));
        assert_eq!(buffered(b"abc", 1, 3), None);
        assert_eq!(buffered(b"abc", usize::MAX, 3), None);
    }

    #[test]
    fn message_ids_are_16_bytes() {
        assert_eq!(
            message_id(b"0123456789abcdef").ok(),
            Some(MessageId(*b"0123456789abcdef"))
        );
        assert!(message_id(b"").is_err());
        assert!(message_id(b"0123456789abcdef0").is_err());
    }
}
