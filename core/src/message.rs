//! Messages, their 16-byte IDs, and the per-shard ID generator.
//!
//! A message body is a refcounted `Bytes`: every channel's copy and every send buffer that carries
//! it share one allocation.

use bytes::Bytes;

/// Size of the frame header before the body: timestamp (8) + attempts (2) + id (16) (spec §1.4).
pub const MESSAGE_HEADER_BYTES: usize = 26;

/// A message ID as it travels: 16 lowercase hex ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// Hex form of a 64-bit ID, big-endian, lowercase (spec §6.9).
    pub fn from_u64(v: u64) -> MessageId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, byte) in v.to_be_bytes().iter().enumerate() {
            out[2 * i] = HEX[(byte >> 4) as usize];
            out[2 * i + 1] = HEX[(byte & 0xf) as usize];
        }
        MessageId(out)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// One message. Cloning shares the body.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: MessageId,
    /// Nanoseconds since the Unix epoch at publish time.
    pub timestamp_ns: i64,
    /// Deliveries so far; the first delivery carries 1.
    pub attempts: u16,
    pub body: Bytes,
}

impl Message {
    /// The 26-byte header that precedes the body in a message frame and on disk.
    pub fn header(&self) -> [u8; MESSAGE_HEADER_BYTES] {
        let mut h = [0u8; MESSAGE_HEADER_BYTES];
        h[0..8].copy_from_slice(&self.timestamp_ns.to_be_bytes());
        h[8..10].copy_from_slice(&self.attempts.to_be_bytes());
        h[10..26].copy_from_slice(&self.id.0);
        h
    }
}

/// Shards the ID layout can tell apart.
pub const SHARDS_MAX: usize = 64;
/// nsqd's GUID epoch in milliseconds (spec §6.9).
const ID_EPOCH_MS: u64 = 1_288_834_974_288;
/// Low bits of the counter left free for IDs minted within one millisecond.
const ID_COUNTER_SHIFT: u32 = 8;

/// Mints IDs unique across shards and nodes.
///
/// Layout of the 64-bit value: `counter:48 | node_id:10 | shard:6`. The counter starts at
/// `(ms since nsqd's epoch) << 8` and increases by one per ID, so IDs from one shard are strictly
/// increasing, never wait for the clock (nsqd sleeps when 4096 IDs are taken in a millisecond),
/// and a restart starts above the previous run unless that run averaged more than 256 IDs per
/// millisecond on one shard since it began.
#[derive(Debug)]
pub struct IdGenerator {
    counter: u64,
    low: u64,
}

impl IdGenerator {
    pub fn new(node_id: u16, shard: usize, unix_ms: u64) -> IdGenerator {
        assert!(node_id < 1024, "node id is 10 bits");
        assert!(shard < SHARDS_MAX, "shard id is 6 bits");
        let counter = (unix_ms.saturating_sub(ID_EPOCH_MS) << ID_COUNTER_SHIFT) & ((1 << 48) - 1);
        IdGenerator {
            counter,
            low: ((node_id as u64) << 6) | shard as u64,
        }
    }

    /// The IDs the next `count` calls to `next_id` will return.
    pub fn upcoming(&self, count: usize) -> IdRange {
        IdRange {
            first: ((self.counter + 1) & ((1 << 48) - 1)) << 16 | self.low,
            count,
        }
    }

    pub fn next_id(&mut self) -> MessageId {
        self.counter = (self.counter + 1) & ((1 << 48) - 1);
        MessageId::from_u64((self.counter << 16) | self.low)
    }
}

/// Consecutive IDs from one generator (a publish's messages, in order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdRange {
    first: u64,
    count: usize,
}

impl IdRange {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = MessageId> {
        let (first, low) = (self.first >> 16, self.first & 0xffff);
        (0..self.count as u64).map(move |i| MessageId::from_u64(((first + i) & ((1 << 48) - 1)) << 16 | low))
    }
}

/// nsqd's default node ID: CRC-32 (IEEE) of the MD5 digest of the hostname, mod 1024.
pub fn default_node_id(hostname: &str) -> u16 {
    use md5::{Digest, Md5};
    let digest = Md5::digest(hostname.as_bytes());
    (crc32fast::hash(&digest) % 1024) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_unique_across_shards() {
        let mut a = IdGenerator::new(5, 0, 1_700_000_000_000);
        let mut b = IdGenerator::new(5, 1, 1_700_000_000_000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
        let id = a.next_id();
        assert!(id
            .0
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(MessageId::from_u64(0x0123456789abcdef).0, *b"0123456789abcdef");
    }

    #[test]
    fn upcoming_ids_are_the_next_ones() {
        let mut g = IdGenerator::new(7, 3, 1_700_000_000_000);
        g.next_id();
        let range = g.upcoming(5);
        let minted: Vec<MessageId> = (0..5).map(|_| g.next_id()).collect();
        assert_eq!(range.iter().collect::<Vec<_>>(), minted);
        assert_eq!(range.len(), 5);
    }

    #[test]
    fn header_layout() {
        let m = Message {
            id: MessageId(*b"0123456789abcdef"),
            timestamp_ns: 0x0102030405060708,
            attempts: 0x0a0b,
            body: Bytes::from_static(b"x"),
        };
        let h = m.header();
        assert_eq!(&h[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&h[8..10], &[0x0a, 0x0b]);
        assert_eq!(&h[10..], b"0123456789abcdef");
    }
}
