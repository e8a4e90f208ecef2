//! A channel's in-flight table: messages handed to a consumer and not yet FIN'd, REQ'd or timed out.
//!
//! Entries live in a slab, are found by ID through a map, and are ordered by deadline in an
//! indexed binary heap, so FIN, TOUCH and timeouts are all O(log n) with no allocation per message
//! once the table has grown to its working size (the role of nsqd's `in_flight_pqueue`).

use std::collections::HashMap;
use std::time::Instant;

use slab::Slab;

use crate::idhash::IdBuildHasher;
use crate::message::{Message, MessageId};

/// One message in flight.
#[derive(Debug)]
pub struct InFlightEntry {
    pub msg: Message,
    /// The connection it was delivered to (an opaque runtime handle).
    pub client: u64,
    pub delivered_at: Instant,
    pub deadline: Instant,
    heap_pos: usize,
}

/// Why a FIN, REQ or TOUCH could not be applied (the text after `failed `).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InFlightError {
    NotInFlight,
    NotOwner,
}

impl InFlightError {
    pub fn reason(self) -> &'static str {
        match self {
            InFlightError::NotInFlight => "ID not in flight",
            InFlightError::NotOwner => "client does not own message",
        }
    }
}

#[derive(Debug, Default)]
pub struct InFlight {
    entries: Slab<InFlightEntry>,
    by_id: HashMap<MessageId, usize, IdBuildHasher>,
    /// Slab keys ordered as a min-heap on `deadline`.
    heap: Vec<usize>,
}

impl InFlight {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &MessageId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|&k| self.entries[k].deadline)
    }

    /// Puts `msg` in flight. Returns false (and keeps nothing) when its ID is already in flight.
    pub fn insert(&mut self, msg: Message, client: u64, now: Instant, deadline: Instant) -> bool {
        if self.by_id.contains_key(&msg.id) {
            return false;
        }
        let id = msg.id;
        let pos = self.heap.len();
        let key = self.entries.insert(InFlightEntry {
            msg,
            client,
            delivered_at: now,
            deadline,
            heap_pos: pos,
        });
        self.by_id.insert(id, key);
        self.heap.push(key);
        self.sift_up(pos);
        true
    }

    /// Removes the message if `client` owns it (FIN, REQ).
    pub fn remove_owned(&mut self, id: &MessageId, client: u64) -> Result<InFlightEntry, InFlightError> {
        let &key = self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        if self.entries[key].client != client {
            return Err(InFlightError::NotOwner);
        }
        Ok(self.remove_key(key))
    }

    /// Moves the deadline of an owned message (TOUCH), capped at `delivered_at + max`.
    pub fn touch(
        &mut self,
        id: &MessageId,
        client: u64,
        now: Instant,
        timeout: std::time::Duration,
        max: std::time::Duration,
    ) -> Result<(), InFlightError> {
        let &key = self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        let entry = &mut self.entries[key];
        if entry.client != client {
            return Err(InFlightError::NotOwner);
        }
        let cap = entry.delivered_at + max;
        let new_deadline = (now + timeout).min(cap);
        let old = entry.deadline;
        entry.deadline = new_deadline;
        let pos = entry.heap_pos;
        if new_deadline < old {
            self.sift_up(pos);
        } else {
            self.sift_down(pos);
        }
        Ok(())
    }

    /// Removes and returns one message whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<InFlightEntry> {
        let &key = self.heap.first()?;
        if self.entries[key].deadline > now {
            return None;
        }
        Some(self.remove_key(key))
    }

    /// Removes everything (channel empty / delete / shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = InFlightEntry> + '_ {
        self.by_id.clear();
        self.heap.clear();
        self.entries.drain()
    }

    fn remove_key(&mut self, key: usize) -> InFlightEntry {
        let pos = self.entries[key].heap_pos;
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        if pos < self.heap.len() {
            let moved = self.heap[pos];
            self.entries[moved].heap_pos = pos;
            self.sift_down(pos);
            self.sift_up(self.entries[moved].heap_pos);
        }
        let entry = self.entries.remove(key);
        self.by_id.remove(&entry.msg.id);
        entry
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.entries[self.heap[a]].deadline < self.entries[self.heap[b]].deadline
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (ka, kb) = (self.heap[a], self.heap[b]);
        self.entries[ka].heap_pos = a;
        self.entries[kb].heap_pos = b;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.less(pos, parent) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.less(right, left) {
                right
            } else {
                left
            };
            if !self.less(child, pos) {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn msg(n: u64) -> Message {
        Message {
            id: MessageId::from_u64(n),
            timestamp_ns: 0,
            attempts: 1,
            body: Bytes::new(),
        }
    }

    #[test]
    fn pops_in_deadline_order_and_supports_removal() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        let order = [5u64, 1, 9, 3, 7, 2, 8, 4, 6, 0];
        for &n in &order {
            assert!(f.insert(msg(n), 1, t0, t0 + Duration::from_millis(n * 10)));
        }
        assert!(!f.insert(msg(5), 1, t0, t0));
        assert_eq!(
            f.remove_owned(&MessageId::from_u64(3), 2).unwrap_err(),
            InFlightError::NotOwner
        );
        f.remove_owned(&MessageId::from_u64(3), 1).unwrap();
        f.remove_owned(&MessageId::from_u64(7), 1).unwrap();
        assert_eq!(
            f.remove_owned(&MessageId::from_u64(7), 1).unwrap_err(),
            InFlightError::NotInFlight
        );
        f.touch(
            &MessageId::from_u64(0),
            1,
            t0,
            Duration::from_millis(55),
            Duration::from_secs(1),
        )
        .unwrap();
        let mut popped = vec![];
        while let Some(e) = f.pop_expired(t0 + Duration::from_secs(10)) {
            popped.push(e.msg.id);
        }
        let expect: Vec<_> = [1u64, 2, 4, 5, 0, 6, 8, 9]
            .iter()
            .map(|&n| MessageId::from_u64(n))
            .collect();
        assert_eq!(popped, expect);
        assert!(f.is_empty());
    }

    #[test]
    fn touch_is_capped_at_max_msg_timeout() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        f.insert(msg(1), 1, t0, t0 + Duration::from_millis(100));
        f.touch(
            &MessageId::from_u64(1),
            1,
            t0,
            Duration::from_secs(10),
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(f.next_deadline(), Some(t0 + Duration::from_millis(300)));
        assert!(f.pop_expired(t0 + Duration::from_millis(299)).is_none());
        assert!(f.pop_expired(t0 + Duration::from_millis(300)).is_some());
    }
}
