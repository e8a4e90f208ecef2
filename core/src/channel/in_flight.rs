//! A channel's in-flight table: messages handed to a consumer and not yet FIN'd, REQ'd or timed out.
//!
//! Entries live in a slab and are found by ID through a map. Deadline order comes from how
//! deadlines arise: `now + msg_timeout` with the turn's clock, so with one timeout per channel
//! (the usual case) every new deadline is at or after the newest one. Those go to the back of a
//! FIFO timeline; the rare deadline that is earlier (a client with a shorter timeout, a TOUCH
//! capped at `--max-msg-timeout`) goes to a small min-heap instead. FIN and REQ leave their
//! queue slot behind as a tombstone (each slot carries its entry's stamp, and a slot whose entry
//! is gone or re-stamped is dead); dead slots are dropped when they reach a front, and the
//! queues are compacted once dead slots outnumber live entries, so memory stays within twice
//! the in-flight count. Insert, FIN, REQ and timeout are O(1) amortized on the timeline path
//! (this replaced an indexed binary heap whose sift-down on every FIN showed in profiles), with
//! no allocation per message once the table has grown to its working size.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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
    /// Which queue slot speaks for this entry (see `Slot`).
    stamp: u64,
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

/// A queue slot: live while the slab still holds `key` with the same `stamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    deadline: Instant,
    stamp: u64,
    key: usize,
}

/// Dead slots tolerated beyond the live count before the queues are compacted.
const DEAD_SLACK: usize = 1024;

#[derive(Debug, Default)]
pub struct InFlight {
    entries: Slab<InFlightEntry>,
    by_id: HashMap<MessageId, usize, IdBuildHasher>,
    /// Slots in deadline order, each at or after the one before it.
    timeline: VecDeque<Slot>,
    /// Slots whose deadline was earlier than the timeline's newest when queued.
    late: BinaryHeap<Reverse<Slot>>,
    next_stamp: u64,
    /// Dead slots still in `timeline` or `late`.
    dead: usize,
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

    /// Earliest deadline, if any. Both queue fronts are live between calls (`settle`).
    pub fn next_deadline(&self) -> Option<Instant> {
        let a = self.timeline.front().map(|s| s.deadline);
        let b = self.late.peek().map(|s| s.0.deadline);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Puts `msg` in flight. Returns false (and keeps nothing) when its ID is already in flight.
    pub fn insert(&mut self, msg: Message, client: u64, now: Instant, deadline: Instant) -> bool {
        if self.by_id.contains_key(&msg.id) {
            return false;
        }
        let id = msg.id;
        let stamp = self.stamp();
        let key = self.entries.insert(InFlightEntry {
            msg,
            client,
            delivered_at: now,
            deadline,
            stamp,
        });
        self.by_id.insert(id, key);
        self.enqueue(Slot { deadline, stamp, key });
        true
    }

    /// Removes the message if `client` owns it (FIN, REQ).
    pub fn remove_owned(&mut self, id: &MessageId, client: u64) -> Result<InFlightEntry, InFlightError> {
        let &key = self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        if self.entries[key].client != client {
            return Err(InFlightError::NotOwner);
        }
        let entry = self.take(key);
        self.settle();
        Ok(entry)
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
        if self.entries[key].client != client {
            return Err(InFlightError::NotOwner);
        }
        let stamp = self.stamp();
        let entry = &mut self.entries[key];
        let deadline = (now + timeout).min(entry.delivered_at + max);
        entry.deadline = deadline;
        entry.stamp = stamp;
        // The old slot is dead now; the new one takes its place.
        self.dead += 1;
        self.enqueue(Slot { deadline, stamp, key });
        self.settle();
        Ok(())
    }

    /// Removes and returns one message whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<InFlightEntry> {
        let due = self.next_deadline()?;
        if due > now {
            return None;
        }
        let from_timeline = self.timeline.front().is_some_and(|s| s.deadline == due);
        let slot = if from_timeline {
            self.timeline.pop_front()
        } else {
            self.late.pop().map(|s| s.0)
        }
        .expect("a front holds the earliest deadline");
        // Fronts are live: this slot speaks for its entry, which leaves no dead slot behind.
        let entry = self.entries.remove(slot.key);
        debug_assert_eq!(entry.stamp, slot.stamp);
        self.by_id.remove(&entry.msg.id);
        self.settle();
        Some(entry)
    }

    /// Removes everything (channel empty / delete / shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = InFlightEntry> + '_ {
        self.by_id.clear();
        self.timeline.clear();
        self.late.clear();
        self.dead = 0;
        self.entries.drain()
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn enqueue(&mut self, slot: Slot) {
        if self.timeline.back().is_none_or(|b| slot.deadline >= b.deadline) {
            self.timeline.push_back(slot);
        } else {
            self.late.push(Reverse(slot));
        }
    }

    /// Removes an entry whose slot stays behind, dead.
    fn take(&mut self, key: usize) -> InFlightEntry {
        let entry = self.entries.remove(key);
        self.by_id.remove(&entry.msg.id);
        self.dead += 1;
        entry
    }

    fn is_live(&self, slot: &Slot) -> bool {
        self.entries.get(slot.key).is_some_and(|e| e.stamp == slot.stamp)
    }

    /// Drops dead slots from both fronts, and compacts when dead slots pile up behind a live
    /// front (out-of-order FINs behind one slow message).
    fn settle(&mut self) {
        while let Some(front) = self.timeline.front() {
            if self.is_live(front) {
                break;
            }
            self.timeline.pop_front();
            self.dead -= 1;
        }
        while let Some(Reverse(top)) = self.late.peek() {
            if self.is_live(top) {
                break;
            }
            self.late.pop();
            self.dead -= 1;
        }
        if self.dead > self.entries.len() + DEAD_SLACK {
            let entries = &self.entries;
            let live = |s: &Slot| entries.get(s.key).is_some_and(|e| e.stamp == s.stamp);
            self.timeline.retain(live);
            self.late.retain(|s| live(&s.0));
            self.dead = 0;
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

    /// Against a plain model, through a long random mix of deliveries with one common and
    /// a few shorter timeouts, FINs in and out of order, TOUCHes and timeouts: the earliest
    /// deadline is always the model's, timeouts come out in deadline order, and the queues never
    /// hold more than twice the entries plus the slack.
    #[test]
    fn matches_a_model_and_stays_bounded() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut f = InFlight::default();
        let mut model: HashMap<MessageId, (Instant, u64)> = HashMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut n = 0u64;
        for step in 0..200_000 {
            let r = next() % 100;
            if r < 45 {
                n += 1;
                let timeout = if next() % 20 == 0 { 30 } else { 100 };
                let deadline = now + Duration::from_millis(timeout);
                let client = next() % 3;
                assert!(f.insert(msg(n), client, now, deadline));
                model.insert(MessageId::from_u64(n), (deadline, client));
            } else if r < 85 && !model.is_empty() {
                // FIN of a random live message, mostly an old one.
                let pick = if next() % 4 == 0 {
                    n.saturating_sub(next() % 50)
                } else {
                    n.saturating_sub(next() % 3000)
                };
                let id = MessageId::from_u64(pick.max(1));
                match model.get(&id).copied() {
                    Some((_, client)) => {
                        assert_eq!(
                            f.remove_owned(&id, client + 1).unwrap_err(),
                            InFlightError::NotOwner
                        );
                        f.remove_owned(&id, client).unwrap();
                        model.remove(&id);
                    }
                    None => assert_eq!(f.remove_owned(&id, 0).unwrap_err(), InFlightError::NotInFlight),
                }
            } else if r < 90 && !model.is_empty() {
                let id = MessageId::from_u64(n.saturating_sub(next() % 100).max(1));
                if let Some((_, client)) = model.get(&id).copied() {
                    let cap = Duration::from_millis(150);
                    f.touch(&id, client, now, Duration::from_millis(100), cap)
                        .unwrap();
                    let delivered = f.entries[f.by_id[&id]].delivered_at;
                    model.insert(
                        id,
                        ((now + Duration::from_millis(100)).min(delivered + cap), client),
                    );
                }
            } else {
                now += Duration::from_millis(next() % 7);
                let mut last = None;
                while let Some(e) = f.pop_expired(now) {
                    let (deadline, _) = model.remove(&e.msg.id).expect("popped a live message");
                    assert_eq!(deadline, e.deadline);
                    assert!(deadline <= now);
                    assert!(last.is_none_or(|l| l <= deadline), "timeouts in deadline order");
                    last = Some(deadline);
                }
            }
            assert_eq!(f.len(), model.len(), "step {step}");
            assert_eq!(
                f.next_deadline(),
                model.values().map(|v| v.0).min(),
                "step {step}"
            );
            assert!(f.timeline.len() + f.late.len() <= 2 * f.len() + DEAD_SLACK + 1);
        }
    }

    /// One message nobody FINs keeps the timeline's front live while thousands behind it are
    /// FIN'd: their dead slots are compacted away instead of piling up until it times out.
    #[test]
    fn dead_slots_behind_a_stuck_front_are_compacted() {
        let t0 = Instant::now();
        let mut f = InFlight::default();
        let deadline = t0 + Duration::from_secs(60);
        for n in 0..5000 {
            f.insert(msg(n), 1, t0, deadline);
        }
        for n in 1..5000 {
            f.remove_owned(&MessageId::from_u64(n), 1).unwrap();
            assert!(f.timeline.len() <= 2 * f.len() + DEAD_SLACK + 1);
        }
        assert_eq!(f.len(), 1);
        assert!(f.timeline.len() < DEAD_SLACK + 2, "{} slots", f.timeline.len());
        assert_eq!(f.next_deadline(), Some(deadline));
        let e = f.pop_expired(deadline).unwrap();
        assert_eq!(e.msg.id, MessageId::from_u64(0));
        assert!(f.is_empty() && f.timeline.is_empty() && f.next_deadline().is_none());
    }
}
