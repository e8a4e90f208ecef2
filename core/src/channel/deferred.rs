//! A channel's deferred messages (DPUB, REQ with a delay), released in due-time order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::message::Message;

#[derive(Debug)]
struct Entry {
    due: Instant,
    /// Breaks ties so equal due times release in insertion order.
    seq: u64,
    msg: Message,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and the earliest due time must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.due.cmp(&self.due).then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
pub struct Deferred {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Deferred {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn push(&mut self, msg: Message, due: Instant) {
        self.seq += 1;
        self.heap.push(Entry {
            due,
            seq: self.seq,
            msg,
        });
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.due)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Message> {
        if self.heap.peek()?.due > now {
            return None;
        }
        self.heap.pop().map(|e| e.msg)
    }

    /// Every deferred message with its due time, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Message, Instant)> {
        self.heap.iter().map(|e| (&e.msg, e.due))
    }

    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;
    use bytes::Bytes;
    use std::time::Duration;

    #[test]
    fn releases_in_due_order_and_not_early() {
        let t0 = Instant::now();
        let mut d = Deferred::default();
        for (n, ms) in [(1u64, 30u64), (2, 10), (3, 20), (4, 10)] {
            let m = Message {
                id: MessageId::from_u64(n),
                timestamp_ns: 0,
                attempts: 0,
                body: Bytes::new(),
            };
            d.push(m, t0 + Duration::from_millis(ms));
        }
        assert!(d.pop_due(t0 + Duration::from_millis(9)).is_none());
        let got: Vec<u64> = std::iter::from_fn(|| d.pop_due(t0 + Duration::from_millis(20)))
            .map(|m| u64::from_str_radix(std::str::from_utf8(&m.id.0).unwrap(), 16).unwrap())
            .collect();
        assert_eq!(got, vec![2, 4, 3]);
        assert_eq!(d.len(), 1);
    }
}
