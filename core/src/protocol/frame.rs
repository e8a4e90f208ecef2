//! Server→client frames (spec §1.3): `[size: u32 BE][frame_type: i32 BE][data]`, where `size`
//! counts the frame type and the data.
//!
//! Encoders append to the caller's buffer so a connection can batch many frames into one write.
//! A message frame's body is not copied here: `encode_message_header` returns the fixed 34-byte
//! prefix and the caller sends the shared body after it.

use crate::error::ProtocolError;
use crate::message::{Message, MESSAGE_HEADER_BYTES};

/// `size` plus `frame_type`.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Bytes before a message frame's body: frame header plus the message header.
const MESSAGE_FRAME_PREFIX_BYTES: usize = FRAME_HEADER_BYTES + MESSAGE_HEADER_BYTES;
const _: () = assert!(MESSAGE_FRAME_PREFIX_BYTES == 34);

/// The frame types nsqd sends (spec §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    Response = 0,
    Error = 1,
    Message = 2,
}

/// Appends a response frame (`OK`, `CLOSE_WAIT`, `_heartbeat_`, a JSON reply).
pub fn encode_response(out: &mut Vec<u8>, data: &[u8]) {
    encode_frame(out, FrameType::Response, data);
}

/// Appends an error frame carrying `CODE description` (spec §2).
pub fn encode_error(out: &mut Vec<u8>, err: &ProtocolError) {
    encode_frame(out, FrameType::Error, &err.frame_data());
}

/// The first 34 bytes of a message frame (spec §1.4): size (`4 + 26 + body`), frame type 2, then
/// the message header. The caller appends `msg.body`.
pub fn encode_message_header(msg: &Message) -> [u8; MESSAGE_FRAME_PREFIX_BYTES] {
    let mut out = [0u8; MESSAGE_FRAME_PREFIX_BYTES];
    out[0..4].copy_from_slice(&frame_size(MESSAGE_HEADER_BYTES + msg.body.len()).to_be_bytes());
    out[4..8].copy_from_slice(&(FrameType::Message as i32).to_be_bytes());
    out[FRAME_HEADER_BYTES..].copy_from_slice(&msg.header());
    out
}

fn encode_frame(out: &mut Vec<u8>, frame_type: FrameType, data: &[u8]) {
    out.reserve(FRAME_HEADER_BYTES + data.len());
    out.extend_from_slice(&frame_size(data.len()).to_be_bytes());
    out.extend_from_slice(&(frame_type as i32).to_be_bytes());
    out.extend_from_slice(data);
}

/// The `size` field for `data_len` bytes of data. Frames are bounded by `--max-msg-size` and the
/// JSON replies, far below 4 GiB, so a larger one is a programmer error.
fn frame_size(data_len: usize) -> u32 {
    u32::try_from(data_len + 4).expect("frame data larger than 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::message::MessageId;
    use bytes::Bytes;

    #[test]
    fn ok_response_bytes() {
        let mut out = Vec::new();
        encode_response(&mut out, b"OK");
        assert_eq!(out, b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
    }

    #[test]
    fn frames_append() {
        let mut out = b"x".to_vec();
        encode_response(&mut out, b"_heartbeat_");
        encode_response(&mut out, b"CLOSE_WAIT");
        assert_eq!(&out[1..5], &[0, 0, 0, 0x0f]);
        assert_eq!(&out[1 + 8 + 11..1 + 8 + 11 + 4], &[0, 0, 0, 0x0e]);
        assert_eq!(out.len(), 1 + 8 + 11 + 8 + 10);
    }

    #[test]
    fn error_frames() {
        let mut out = Vec::new();
        encode_error(&mut out, &ProtocolError::new(ErrorCode::BadProtocol, "ignored"));
        assert_eq!(out, b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL");
        out.clear();
        encode_error(
            &mut out,
            &ProtocolError::new(ErrorCode::Invalid, "invalid command ASDF"),
        );
        let mut want = vec![0, 0, 0, 34, 0, 0, 0, 1];
        want.extend_from_slice(b"E_INVALID invalid command ASDF");
        assert_eq!(out, want);
    }

    #[test]
    fn message_header_layout() {
        let msg = Message {
            id: MessageId(*b"0123456789abcdef"),
            timestamp_ns: 1,
            attempts: 1,
            body: Bytes::from_static(b"hello"),
        };
        let h = encode_message_header(&msg);
        assert_eq!(&h[0..4], &[0, 0, 0, 0x23]);
        assert_eq!(&h[4..8], &[0, 0, 0, 2]);
        assert_eq!(&h[8..16], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&h[16..18], &[0, 1]);
        assert_eq!(&h[18..], b"0123456789abcdef");
    }
}
