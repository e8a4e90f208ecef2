//! A memory queue that spills into a backend: the queue of every topic and channel.
//!
//! Messages go to memory while it has room and nothing is on disk; once anything is on disk,
//! every new message follows it there until the disk side is read empty. So memory always holds
//! the oldest messages and the order is kept (nsqd picks memory or disk at random when both hold
//! messages).

use std::collections::VecDeque;

use crate::backend::{decode_record, encode_record, Backend};
use crate::message::Message;

/// Slots a queue's memory side keeps when it runs empty; a bigger buffer, left by a backlog,
/// is freed then.
const MEMORY_KEEP_CAPACITY: usize = 4096;

/// Where a put went.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Memory,
    /// Written to the backend; the position is the backend's `written()` after the put.
    Disk(u64),
    /// An ephemeral queue without room: dropped, as nsqd's ephemeral backends drop.
    Dropped,
    /// The backend refused it (disk full, I/O error).
    Failed(String),
}

/// Memory first, then a backend.
pub struct SpillQueue<T> {
    pub memory: VecDeque<T>,
    pub disk: DiskSide,
}

/// A queue's backend and its place in the broker's fsync pass.
#[derive(Default)]
pub struct DiskSide {
    pub backend: Option<Box<dyn Backend>>,
    /// Queued for the broker's fsync pass.
    pub sync_listed: bool,
    /// An fsync round is in flight.
    pub syncing: bool,
    /// Why the backend could not be opened the last time it was needed.
    pub open_failed: Option<String>,
}

impl<T> std::fmt::Debug for SpillQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SpillQueue(memory {}, disk {})",
            self.memory.len(),
            self.backend_depth()
        )
    }
}

impl<T> Default for SpillQueue<T> {
    fn default() -> Self {
        SpillQueue {
            memory: VecDeque::new(),
            disk: DiskSide::default(),
        }
    }
}

impl<T> SpillQueue<T> {
    pub fn backend_depth(&self) -> u64 {
        self.disk.backend.as_ref().map_or(0, |b| b.depth())
    }

    pub fn depth(&self) -> u64 {
        self.memory.len() as u64 + self.backend_depth()
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.backend_depth() == 0
    }

    /// Whether `n` more messages fit: in memory, or on disk when the queue has (or, with
    /// `can_spill`, may open) a backend.
    pub fn has_room(&self, n: usize, cap: usize, can_spill: bool) -> bool {
        can_spill || self.disk.backend.is_some() || self.memory.len() + n <= cap
    }

    /// Whether the next put goes to disk (memory full, or already spilled).
    pub fn spills_next(&self, cap: usize) -> bool {
        self.memory.len() >= cap || self.backend_depth() > 0
    }

    /// Puts `item`, spilling to the backend when memory is full or already spilled.
    /// `to_msg` gives the message to encode when it goes to disk.
    pub fn put(
        &mut self,
        item: T,
        cap: usize,
        ephemeral: bool,
        to_msg: impl Fn(&T) -> &Message,
        scratch: &mut Vec<u8>,
    ) -> Put {
        let spilled = self.backend_depth() > 0;
        if !spilled && self.memory.len() < cap {
            self.memory.push_back(item);
            return Put::Memory;
        }
        match self.disk.backend.as_mut() {
            Some(b) => {
                encode_record(to_msg(&item), scratch);
                match b.put(scratch) {
                    Ok(()) => Put::Disk(b.written()),
                    Err(e) => Put::Failed(e),
                }
            }
            None if ephemeral => Put::Dropped,
            // The queue needs its backend and could not open it (disk full, I/O error).
            None if self.disk.open_failed.is_some() => {
                Put::Failed(self.disk.open_failed.clone().unwrap_or_default())
            }
            None => {
                // No backend (a node without durable queues): the caller checked the room.
                self.memory.push_back(item);
                Put::Memory
            }
        }
    }

    /// The oldest message: memory first (it is always older), then the backend.
    pub fn pop(&mut self, from_msg: impl Fn(Message) -> T) -> Option<T> {
        if let Some(item) = self.memory.pop_front() {
            if self.memory.is_empty() && self.memory.capacity() > MEMORY_KEEP_CAPACITY {
                // A drained backlog gives its room back (once per backlog, not per message).
                self.memory = VecDeque::new();
            }
            return Some(item);
        }
        let b = self.disk.backend.as_mut()?;
        while let Some(record) = b.next() {
            // A record too short for a header is skipped (the backend already checked its CRC).
            if let Some(msg) = decode_record(record) {
                return Some(from_msg(msg));
            }
        }
        None
    }

    /// Drops everything queued (memory and disk).
    pub fn clear(&mut self) -> Result<(), String> {
        self.memory.clear();
        match self.disk.backend.as_mut() {
            Some(b) => b.empty(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u64) -> Message {
        Message {
            id: crate::message::MessageId::from_u64(n),
            timestamp_ns: 0,
            attempts: 1,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn a_drained_backlog_gives_its_memory_back() {
        let mut q: SpillQueue<Message> = SpillQueue::default();
        let mut scratch = Vec::new();
        for n in 0..50_000 {
            assert_eq!(q.put(msg(n), 100_000, false, |m| m, &mut scratch), Put::Memory);
        }
        assert!(q.memory.capacity() >= 50_000);
        for n in 0..50_000 {
            assert_eq!(
                q.pop(|m| m).map(|m| m.id),
                Some(crate::message::MessageId::from_u64(n))
            );
        }
        assert!(q.is_empty());
        assert!(
            q.memory.capacity() <= MEMORY_KEEP_CAPACITY,
            "{}",
            q.memory.capacity()
        );
        // A small queue keeps its buffer through empty and refill.
        for n in 0..100 {
            q.put(msg(n), 100_000, false, |m| m, &mut scratch);
        }
        let small = q.memory.capacity();
        while q.pop(|m| m).is_some() {}
        assert_eq!(q.memory.capacity(), small);
    }
}
