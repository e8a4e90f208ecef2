//! A channel: its memory queue, in-flight and deferred messages, and its consumers.
//!
//! Every message a topic receives is copied (by reference) into each of its channels; each channel
//! hands each message to exactly one of its consumers.

mod deferred;
mod in_flight;

pub use deferred::Deferred;
pub use in_flight::{InFlight, InFlightEntry, InFlightError};

use crate::message::Message;
use crate::names::Name;
use crate::spill::SpillQueue;

#[derive(Debug)]
pub struct Channel {
    pub name: Name,
    /// Slab key of the owning topic.
    pub topic: usize,
    /// Ready messages: `--mem-queue-size` in memory, the rest in the channel's backend.
    pub queue: SpillQueue<Message>,
    pub in_flight: InFlight,
    pub deferred: Deferred,
    /// Connection handles of the subscribed consumers.
    pub consumers: Vec<u64>,
    /// Round-robin cursor into `consumers`.
    pub next_consumer: usize,
    pub paused: bool,
    pub ephemeral: bool,
    /// Set while queued for a dispatch pass this turn.
    pub dirty: bool,
    pub message_count: u64,
    pub requeue_count: u64,
    pub timeout_count: u64,
    /// Publish-to-FIN latency, when `--e2e-processing-latency-percentile` is set.
    pub e2e: Option<Box<crate::latency::E2eWindow>>,
}

impl Channel {
    pub fn new(name: Name, topic: usize) -> Channel {
        Channel {
            name,
            topic,
            queue: SpillQueue::default(),
            in_flight: InFlight::default(),
            deferred: Deferred::default(),
            consumers: Vec::new(),
            next_consumer: 0,
            paused: false,
            ephemeral: name.is_ephemeral(),
            dirty: false,
            message_count: 0,
            requeue_count: 0,
            timeout_count: 0,
            e2e: None,
        }
    }

    /// Memory plus disk, as nsqd reports `depth`.
    pub fn depth(&self) -> usize {
        self.queue.depth() as usize
    }

    /// The earliest instant at which a timeout or a deferred release is due.
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        match (self.in_flight.next_deadline(), self.deferred.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn remove_consumer(&mut self, conn: u64) {
        if let Some(pos) = self.consumers.iter().position(|&c| c == conn) {
            self.consumers.remove(pos);
            if self.next_consumer > pos {
                self.next_consumer -= 1;
            }
        }
    }
}
