//! A topic: its memory queue and its channels.
//!
//! Messages wait in the topic only while it has no channel or is paused; otherwise a publish goes
//! straight into every channel (nsqd's topic pump, without the goroutine hop).

use crate::message::Message;
use crate::names::Name;
use crate::spill::SpillQueue;

/// A message waiting in the topic, with the defer it was published with (the defer clock starts
/// when it reaches the channels, as in nsqd).
#[derive(Debug)]
pub struct TopicEntry {
    pub msg: Message,
    pub defer_ms: i64,
}

#[derive(Debug)]
pub struct Topic {
    pub name: Name,
    /// Slab keys of the channels, in creation order.
    pub channels: Vec<usize>,
    /// Messages waiting while the topic has no channel or is paused: memory, then backend.
    pub queue: SpillQueue<TopicEntry>,
    pub paused: bool,
    pub ephemeral: bool,
    /// Queued in the broker's list of topics to move into their channels this turn.
    pub draining: bool,
    pub message_count: u64,
    pub message_bytes: u64,
}

impl Topic {
    pub fn new(name: Name) -> Topic {
        Topic {
            name,
            channels: Vec::new(),
            queue: SpillQueue::default(),
            paused: false,
            ephemeral: name.is_ephemeral(),
            draining: false,
            message_count: 0,
            message_bytes: 0,
        }
    }

    /// Whether publishes flow straight through to the channels.
    pub fn is_flowing(&self) -> bool {
        !self.paused && !self.channels.is_empty()
    }
}
