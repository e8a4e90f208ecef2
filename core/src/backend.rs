//! The seam to durable queues: a topic or channel whose memory queue is full writes to its
//! backend, and reads it back when memory is empty (nsqd's `BackendQueue`).
//!
//! A record is a message as it travels: the 26-byte header, then the body (spec §1.4). The
//! backend never blocks the shard on the hot path: `put` and `next` are memory copies; durability
//! comes from fsyncs the broker submits through the runtime (`begin_sync` / `finish_sync`).

use std::os::fd::RawFd;
use std::time::Instant;

use bytes::Bytes;

use crate::message::{Message, MessageId, MESSAGE_HEADER_BYTES};

/// A durable FIFO of records.
pub trait Backend {
    /// Appends one record. An error is an operating error (disk full, I/O): the put failed.
    fn put(&mut self, record: &[u8]) -> Result<(), String>;
    /// The oldest unread record, removed from the queue.
    fn next(&mut self) -> Option<Bytes>;
    /// Records not yet read.
    fn depth(&self) -> u64;
    /// Drops every record (channel or topic empty).
    fn empty(&mut self) -> Result<(), String>;
    /// Removes the queue's files (channel or topic delete).
    fn delete(self: Box<Self>);
    /// Writes final metadata (shutdown); may block.
    fn close(self: Box<Self>) -> Result<(), String>;
    /// Whether `--sync-every` / `--sync-timeout` call for an fsync now.
    fn sync_due(&self, now: Instant) -> bool;
    /// Starts an fsync round: the descriptors to fsync and a token for `finish_sync`.
    fn begin_sync(&mut self) -> Option<(Vec<RawFd>, u64)>;
    /// Every descriptor of round `token` was fsynced.
    fn finish_sync(&mut self, token: u64);
    /// An fsync of round `token` failed: nothing it covered may be counted durable.
    fn fail_sync(&mut self, _token: u64) {}
    /// Records written so far (a position that only grows).
    fn written(&self) -> u64;
    /// Records known to be on stable storage (only grows, never past `written`).
    fn durable(&self) -> u64;
    /// Records skipped as corrupt when the queue was opened.
    fn corrupt_skipped(&self) -> u64 {
        0
    }
}

/// Opens backends by queue name (`<topic>` or `<topic>:<channel>`, as go-diskqueue names them).
pub trait BackendFactory {
    fn open(&self, name: &str) -> Result<Box<dyn Backend>, String>;
    /// Whether `name` has files from an earlier run (opened at once, so they are delivered).
    /// Other queues open their backend the first time memory is full.
    fn exists(&self, _name: &str) -> bool {
        true
    }
    /// Whether a publish's `OK` waits for the fsync covering it (`--sync-every=1`).
    fn durable_acks(&self) -> bool;
}

/// A message as a backend record.
pub fn encode_record(msg: &Message, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&msg.header());
    out.extend_from_slice(&msg.body);
}

/// A record back into a message; `None` when it is too short to hold a header.
pub fn decode_record(record: Bytes) -> Option<Message> {
    if record.len() < MESSAGE_HEADER_BYTES {
        return None;
    }
    let timestamp_ns = i64::from_be_bytes(record[0..8].try_into().ok()?);
    let attempts = u16::from_be_bytes(record[8..10].try_into().ok()?);
    let id = MessageId(record[10..26].try_into().ok()?);
    Some(Message {
        id,
        timestamp_ns,
        attempts,
        body: record.slice(MESSAGE_HEADER_BYTES..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let m = Message {
            id: MessageId(*b"0123456789abcdef"),
            timestamp_ns: 42,
            attempts: 3,
            body: Bytes::from_static(b"hi"),
        };
        let mut buf = Vec::new();
        encode_record(&m, &mut buf);
        assert_eq!(buf.len(), 28);
        let back = decode_record(Bytes::from(buf)).unwrap();
        assert_eq!(
            (back.id, back.timestamp_ns, back.attempts, &back.body[..]),
            (m.id, 42, 3, &b"hi"[..])
        );
        assert!(decode_record(Bytes::from_static(b"short")).is_none());
    }
}
