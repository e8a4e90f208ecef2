//! A topic: its memory queue and its channels.
//!
//! Messages wait in the topic only while it has no channel, is paused, or has not started yet;
//! otherwise a publish goes straight into every channel (nsqd's topic pump, without the
//! goroutine hop).
//!
//! Starting (spec A.12): nsqd creates a new topic's channels from what nsqlookupd knows before its
//! message pump starts, so none of them misses a message. A topic created while some lookupd is
//! known asks for them with a [`ChannelsQuery`] and holds what is published until the
//! [`ChannelsFound`] answer has created them all at once. The query runs off the shard and always
//! answers (a failed or slow lookupd only makes the list shorter), so the topic never blocks on
//! lookupd; it only starts later.

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
    /// `Some(ticket)`: not started, waiting for the answer to its `ChannelsQuery` with this
    /// ticket. Messages wait in `queue` meanwhile.
    pub awaiting_channels: Option<u64>,
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
            awaiting_channels: None,
            draining: false,
            message_count: 0,
            message_bytes: 0,
        }
    }

    /// Whether publishes flow straight through to the channels.
    pub fn is_flowing(&self) -> bool {
        !self.paused && !self.channels.is_empty() && self.awaiting_channels.is_none()
    }
}

/// A new topic asks which channels nsqlookupd knows for it (answered by `ChannelsFound`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelsQuery {
    pub topic: Name,
    /// Tells the answer for this topic from one for an earlier topic of the same name.
    pub ticket: u64,
}

/// The answer to a `ChannelsQuery`: the channels to create before the topic starts (empty when
/// no lookupd answered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelsFound {
    pub topic: Name,
    pub ticket: u64,
    pub channels: Vec<Name>,
}
