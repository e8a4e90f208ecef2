//! gRPC's length-prefixed messages: a compressed flag (1 byte), a big-endian length (4 bytes),
//! the bytes. DATA frames may split or join messages anywhere.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use super::status::{Code, Status};

/// Bytes before every message.
pub const PREFIX_BYTES: usize = 5;

/// Reassembles messages from DATA chunks. Holds at most one message and one chunk.
pub struct Decoder {
    buf: BytesMut,
    message_bytes_max: usize,
}

impl Decoder {
    pub fn new(message_bytes_max: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            message_bytes_max,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes waiting: part of a message, or whole messages not taken yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` when more bytes are needed. Squall accepts no
    /// compression, so a set compressed flag is an error (the call carried no `grpc-encoding`
    /// Squall accepts; calls with another encoding are refused before any message is read).
    pub fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        if self.buf.len() < PREFIX_BYTES {
            return Ok(None);
        }
        let compressed = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if compressed != 0 {
            return Err(Status::new(
                Code::Internal,
                "compressed flag set but no grpc-encoding was negotiated",
            ));
        }
        if len > self.message_bytes_max {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "received message larger than max ({len} vs. {})",
                    self.message_bytes_max
                ),
            ));
        }
        if self.buf.len() < PREFIX_BYTES + len {
            self.buf.reserve(PREFIX_BYTES + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(PREFIX_BYTES);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// One message with its prefix, ready for a DATA frame.
pub fn encode<M: Message>(msg: &M) -> Bytes {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX_BYTES + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    msg.encode(&mut out).expect("capacity reserved above");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::pb::squall::v1::TopicRef;

    #[test]
    fn messages_split_and_joined_across_chunks() {
        let a = encode(&TopicRef { topic: "a".into() });
        let b = encode(&TopicRef { topic: "bb".into() });
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        let mut d = Decoder::new(1024);
        for byte in &joined[..3] {
            d.push(&[*byte]);
            assert_eq!(d.next_message(), Ok(None));
        }
        d.push(&joined[3..]);
        let first = d.next_message().unwrap().unwrap();
        assert_eq!(TopicRef::decode(first).unwrap().topic, "a");
        let second = d.next_message().unwrap().unwrap();
        assert_eq!(TopicRef::decode(second).unwrap().topic, "bb");
        assert_eq!(d.next_message(), Ok(None));
    }

    #[test]
    fn oversized_and_compressed_are_refused() {
        let mut d = Decoder::new(4);
        d.push(&[0, 0, 0, 0, 5]);
        assert_eq!(d.next_message().unwrap_err().code, Code::ResourceExhausted);
        let mut d = Decoder::new(4);
        d.push(&[1, 0, 0, 0, 1, 9]);
        assert_eq!(d.next_message().unwrap_err().code, Code::Internal);
    }
}
