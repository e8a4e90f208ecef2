//! The shared-memory primitives the cross-shard structures use, in one place so that a model
//! checker can replace them.
//!
//! Built normally these are `std`'s atomics and crossbeam's `ArrayQueue`. Built with
//! `RUSTFLAGS="--cfg loom"` they are loom's atomics and [`ArrayQueue`] below, a bounded
//! single-producer single-consumer ring on loom's atomics, so that `tests/loom_mailbox.rs` can
//! explore every interleaving (and every weak-memory outcome loom models) of the mailbox
//! protocol in `mailbox.rs`.

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use model::ArrayQueue;

#[cfg(loom)]
mod model {
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    /// A lane as the mailbox uses one: one producer shard, one consumer shard, bounded; `push`
    /// hands the value back when full. Its orderings are the weakest a correct SPSC ring needs
    /// (crossbeam's are `SeqCst` where these are acquire/release), so the model does not lean on
    /// the queue for the sleep/wake protocol: only the mailbox's own fences may make it correct.
    pub struct ArrayQueue<T> {
        slots: Box<[UnsafeCell<Option<T>>]>,
        /// Next slot to pop; written only by the consumer.
        head: AtomicUsize,
        /// Next slot to push; written only by the producer.
        tail: AtomicUsize,
    }

    // SAFETY: a slot is written by the producer only before the Release store of `tail` that
    // publishes it, and taken by the consumer only after the Acquire load that sees it, then given
    // back by the Release store of `head`; loom checks every access to the cells.
    unsafe impl<T: Send> Sync for ArrayQueue<T> {}

    impl<T> ArrayQueue<T> {
        pub fn new(capacity: usize) -> ArrayQueue<T> {
            assert!(capacity > 0, "capacity must be non-zero");
            ArrayQueue {
                slots: (0..capacity).map(|_| UnsafeCell::new(None)).collect(),
                head: AtomicUsize::new(0),
                tail: AtomicUsize::new(0),
            }
        }

        pub fn push(&self, value: T) -> Result<(), T> {
            // Relaxed: only this producer writes `tail`.
            let tail = self.tail.load(Ordering::Relaxed);
            // Acquire: the consumer's take of the slot we are about to reuse happened before.
            if tail - self.head.load(Ordering::Acquire) == self.slots.len() {
                return Err(value);
            }
            self.slots[tail % self.slots.len()].with_mut(|slot| {
                // SAFETY: the slot is free (see above) and only the producer writes free slots.
                unsafe { *slot = Some(value) }
            });
            // Release: publishes the slot's value with the new tail.
            self.tail.store(tail + 1, Ordering::Release);
            Ok(())
        }

        pub fn pop(&self) -> Option<T> {
            // Relaxed: only this consumer writes `head`.
            let head = self.head.load(Ordering::Relaxed);
            // Acquire: pairs with the producer's Release store of `tail`.
            if head == self.tail.load(Ordering::Acquire) {
                return None;
            }
            let value = self.slots[head % self.slots.len()].with_mut(|slot| {
                // SAFETY: published by the producer, and only the consumer takes published slots.
                unsafe { (*slot).take() }
            });
            // Release: hands the emptied slot back to the producer.
            self.head.store(head + 1, Ordering::Release);
            value
        }

        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        pub fn len(&self) -> usize {
            // Acquire on both: a racy snapshot, as crossbeam's.
            let head = self.head.load(Ordering::Acquire);
            self.tail.load(Ordering::Acquire).saturating_sub(head)
        }
    }
}
