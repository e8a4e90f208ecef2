//! The consumer side of NSQ's TCP protocol V2 (protocol spec §1-§5): server frames are decoded in
//! one place ([`decode_frame`]), client commands are encoded in one place ([`Command::encode`]).
//!
//! Frame: `[size u32 BE][frame_type i32 BE][data]`, size counting the type word. Message data:
//! `[timestamp i64 BE][attempts u16 BE][id 16 bytes][body]`.

use super::options::FRAME_BYTES_MAX;

pub const MAGIC_V2: &[u8; 4] = b"  V2";
pub const HEARTBEAT: &[u8] = b"_heartbeat_";
pub const CLOSE_WAIT: &[u8] = b"CLOSE_WAIT";

const FRAME_TYPE_RESPONSE: i32 = 0;
const FRAME_TYPE_ERROR: i32 = 1;
const FRAME_TYPE_MESSAGE: i32 = 2;
const SIZE_LEN: usize = 4;
const TYPE_LEN: usize = 4;
const MESSAGE_HEADER_LEN: usize = 8 + 2 + 16;

/// A message ID: 16 ASCII hex bytes.
pub type MessageId = [u8; 16];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub timestamp_ns: i64,
    pub attempts: u16,
    pub id: MessageId,
    pub body: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Response(Vec<u8>),
    Error(Vec<u8>),
    Message(Message),
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooBig(usize),
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooBig(n) => write!(f, "frame of {n} bytes exceeds {FRAME_BYTES_MAX}"),
            DecodeError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the frame and how many bytes it used.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
    let Some(head) = buf.get(..SIZE_LEN) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if size > FRAME_BYTES_MAX {
        return Err(DecodeError::TooBig(size));
    }
    if size < TYPE_LEN {
        return Err(DecodeError::Malformed("size smaller than the frame type"));
    }
    let Some(frame) = buf.get(SIZE_LEN..SIZE_LEN + size) else {
        return Ok(None);
    };
    let frame_type = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let data = &frame[TYPE_LEN..];
    let decoded = match frame_type {
        FRAME_TYPE_RESPONSE => Frame::Response(data.to_vec()),
        FRAME_TYPE_ERROR => Frame::Error(data.to_vec()),
        FRAME_TYPE_MESSAGE => {
            if data.len() < MESSAGE_HEADER_LEN {
                return Err(DecodeError::Malformed("message shorter than its header"));
            }
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&data[0..8]);
            let mut id = [0u8; 16];
            id.copy_from_slice(&data[10..26]);
            Frame::Message(Message {
                timestamp_ns: i64::from_be_bytes(ts),
                attempts: u16::from_be_bytes([data[8], data[9]]),
                id,
                body: data[MESSAGE_HEADER_LEN..].to_vec(),
            })
        }
        _ => return Err(DecodeError::Malformed("unknown frame type")),
    };
    Ok(Some((decoded, SIZE_LEN + size)))
}

/// The commands this consumer sends.
pub enum Command<'a> {
    Identify(&'a [u8]),
    Auth(&'a [u8]),
    Sub { topic: &'a str, channel: &'a str },
    Rdy(u64),
    Fin(&'a MessageId),
    Nop,
    Cls,
}

impl Command<'_> {
    /// Appends the command's bytes (go-nsq's layout: name, ` param`s, `\n`, optional
    /// `[size u32 BE][body]`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let body = |out: &mut Vec<u8>, name: &[u8], body: &[u8]| {
            out.extend_from_slice(name);
            out.push(b'\n');
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(body);
        };
        match self {
            Command::Identify(json) => body(out, b"IDENTIFY", json),
            Command::Auth(secret) => body(out, b"AUTH", secret),
            Command::Sub { topic, channel } => {
                out.extend_from_slice(format!("SUB {topic} {channel}\n").as_bytes())
            }
            Command::Rdy(n) => out.extend_from_slice(format!("RDY {n}\n").as_bytes()),
            Command::Fin(id) => {
                out.extend_from_slice(b"FIN ");
                out.extend_from_slice(&id[..]);
                out.push(b'\n');
            }
            Command::Nop => out.extend_from_slice(b"NOP\n"),
            Command::Cls => out.extend_from_slice(b"CLS\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: i32, data: &[u8]) -> Vec<u8> {
        let mut v = ((data.len() + 4) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&frame_type.to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let ok = frame(0, b"OK");
        for cut in 0..ok.len() {
            assert_eq!(decode_frame(&ok[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            decode_frame(&ok),
            Ok(Some((Frame::Response(b"OK".to_vec()), ok.len())))
        );
    }

    #[test]
    fn message_layout() {
        let mut data = 7i64.to_be_bytes().to_vec();
        data.extend_from_slice(&3u16.to_be_bytes());
        data.extend_from_slice(b"0123456789abcdef");
        data.extend_from_slice(b"hello");
        let mut bytes = frame(2, &data);
        bytes.extend_from_slice(&frame(1, b"E_INVALID x"));
        let (f, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Message(Message {
                timestamp_ns: 7,
                attempts: 3,
                id: *b"0123456789abcdef",
                body: b"hello".to_vec()
            })
        );
        let (f, _) = decode_frame(&bytes[used..]).unwrap().unwrap();
        assert_eq!(f, Frame::Error(b"E_INVALID x".to_vec()));
    }

    #[test]
    fn broken_streams_are_errors() {
        assert!(decode_frame(&frame(2, b"short")).is_err());
        assert!(decode_frame(&frame(9, b"")).is_err());
        assert!(decode_frame(&[0, 0, 0, 1, 0]).is_err());
        assert!(decode_frame(&u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn commands_encode_like_go_nsq() {
        let mut out = Vec::new();
        Command::Sub {
            topic: "t",
            channel: "c",
        }
        .encode(&mut out);
        Command::Rdy(200).encode(&mut out);
        Command::Fin(b"0123456789abcdef").encode(&mut out);
        Command::Nop.encode(&mut out);
        Command::Cls.encode(&mut out);
        Command::Identify(b"{}").encode(&mut out);
        assert_eq!(
            out,
            b"SUB t c\nRDY 200\nFIN 0123456789abcdef\nNOP\nCLS\nIDENTIFY\n\0\0\0\x02{}".to_vec()
        );
    }
}
