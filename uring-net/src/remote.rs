//! Messages into a shard from threads outside the runtime: blocking helpers (an HTTP client,
//! a resolver) hand their results back to the shard that asked. Rare by design, so a mutex
//! guards the queue; what makes it safe to sleep on is the same doorbell protocol as the lanes.
//!
//! Ordering: `Remote::send` pushes under the lock, then stores `pending` (SeqCst), then runs
//! `Doorbells::wake_if_asleep` (SeqCst fence, then a load of the shard's sleep flag). The shard
//! announces sleep (SeqCst store + fence) and only then loads `pending` (SeqCst). Of the two
//! store-then-load pairs at least one sees the other's store: either the shard sees `pending`
//! and does not block, or the sender sees the sleep flag and rings the eventfd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::mailbox::Doorbells;
use crate::ShardId;

/// A shard's inbox for messages from outside the runtime.
pub(crate) struct Inbox<M> {
    pending: AtomicBool,
    queue: Mutex<Vec<M>>,
}

impl<M> Inbox<M> {
    pub fn new() -> Inbox<M> {
        Inbox {
            pending: AtomicBool::new(false),
            queue: Mutex::new(Vec::new()),
        }
    }

    /// Whether a message may be waiting. SeqCst: the sleeper's re-check after `announce_sleep`.
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    /// Moves every waiting message into `out`. Clearing `pending` before taking the queue means
    /// a message pushed in between is taken now and merely leaves a spurious flag for next turn;
    /// Acquire pairs with the sender's SeqCst store, the lock orders the queue itself.
    pub fn take(&self, out: &mut Vec<M>) {
        if self.pending.swap(false, Ordering::Acquire) {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            out.append(&mut queue);
        }
    }
}

/// A handle any thread may use to send a message to one shard; the shard's engine gets it in
/// `Engine::on_remote`. Cheap to clone. Unbounded: the sender bounds what it has outstanding
/// (one reply per request it was given).
pub struct Remote<M> {
    shard: ShardId,
    inbox: Arc<Inbox<M>>,
    bells: Arc<Doorbells>,
}

impl<M> Clone for Remote<M> {
    fn clone(&self) -> Self {
        Remote {
            shard: self.shard,
            inbox: Arc::clone(&self.inbox),
            bells: Arc::clone(&self.bells),
        }
    }
}

impl<M: Send> Remote<M> {
    pub(crate) fn new(shard: ShardId, inbox: Arc<Inbox<M>>, bells: Arc<Doorbells>) -> Remote<M> {
        Remote { shard, inbox, bells }
    }

    /// The shard this handle sends to.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Queues `msg` and wakes the shard if it sleeps. A message sent after the shard exited is
    /// dropped with the inbox.
    pub fn send(&self, msg: M) {
        let mut queue = self.inbox.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push(msg);
        self.inbox.pending.store(true, Ordering::SeqCst);
        drop(queue);
        self.bells.wake_if_asleep(self.shard);
    }
}
