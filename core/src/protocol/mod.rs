//! The NSQ TCP protocol V2: bytes in, commands out; frames out.
//!
//! `decode` is the one place bytes become commands. It is two-phase in effect: it returns
//! `Ok(None)` while the buffered bytes do not yet hold a whole command (never an error), and it
//! checks every size before a body is buffered, so an oversized body is refused without reading it.
//! Errors come out in exactly the order nsqd raises them (spec §4), which is why decoding needs
//! the connection's state (`DecodeCtx`).

mod cmd;
mod decode;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod gojson;
mod identify;
mod quote;

use std::ops::Range;

pub use decode::decode;
pub use frame::{encode_error, encode_message_header, encode_response, FrameType, FRAME_HEADER_BYTES};
pub use identify::{identify_reply_json, Identify, IdentifyReply};
pub use quote::go_quote;

/// Appends `s` as Go's `json.Marshal` writes a string (HTML-safe escaping).
pub(crate) fn write_go_json_string(out: &mut Vec<u8>, s: &str) {
    gojson::write_string(out, s)
}

/// AUTH's success reply (spec §4.2): `{"identity":..,"identity_url":..,"permission_count":N}`,
/// strings escaped as Go's `json.Marshal` does.
pub fn auth_reply_json(identity: &str, identity_url: &str, permission_count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + identity.len() + identity_url.len());
    out.extend_from_slice(b"{\"identity\":");
    gojson::write_string(&mut out, identity);
    out.extend_from_slice(b",\"identity_url\":");
    gojson::write_string(&mut out, identity_url);
    out.extend_from_slice(format!(",\"permission_count\":{permission_count}}}").as_bytes());
    out
}

use crate::message::MessageId;
use crate::names::Name;
use crate::options::Options;

/// The 4 bytes a V2 client sends first.
pub const MAGIC_V2: &[u8; 4] = b"  V2";

/// A client's state as nsqd numbers it (`/stats` reports the number) (spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    Init = 0,
    Subscribed = 3,
    Closing = 4,
}

/// What decoding needs to know about the connection and the server.
#[derive(Clone, Copy, Debug)]
pub struct DecodeCtx<'a> {
    pub state: ClientState,
    /// IDENTIFY set `heartbeat_interval: -1`.
    pub heartbeats_disabled: bool,
    /// `--tls-required` is set and this connection has not upgraded to TLS.
    pub tls_required_unmet: bool,
    pub options: &'a Options,
}

/// One decoded command. Bodies are byte ranges into the decoded frame, so the caller can turn
/// them into `Bytes` that share the connection's input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Nop,
    /// IDENTIFY with every field already validated against the options.
    Identify(Box<Identify>),
    Auth {
        secret: Range<usize>,
    },
    Sub {
        topic: Name,
        channel: Name,
    },
    /// Already checked against `--max-rdy-count`.
    Rdy {
        count: i64,
    },
    Fin {
        id: MessageId,
    },
    /// `timeout_ms` already clamped to `[0, --max-req-timeout]`.
    Req {
        id: MessageId,
        timeout_ms: i64,
    },
    Touch {
        id: MessageId,
    },
    Cls,
    Pub {
        topic: Name,
        body: Range<usize>,
    },
    Mpub {
        topic: Name,
        bodies: Vec<Range<usize>>,
    },
    /// `defer_ms` already checked against `--max-req-timeout`.
    Dpub {
        topic: Name,
        defer_ms: i64,
        body: Range<usize>,
    },
}

/// What a decode failure asks of the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Send this error frame; close afterwards if it is fatal.
    Protocol(crate::error::ProtocolError),
    /// Close without an error frame (a line longer than 16 KiB, as nsqd's reader fails).
    Close,
}
