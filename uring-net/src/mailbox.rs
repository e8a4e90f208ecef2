//! The N×N mesh of bounded lanes between shards, and the doorbells that wake a sleeping shard.
//!
//! Every ordered pair of shards `(from, to)` has its own `ArrayQueue` of `mailbox_capacity`
//! entries, so each lane has one producer and one consumer and delivers in order. A full lane
//! refuses the message (`Err(msg)` goes back to the sender, who must hold it or stop reading
//! the socket that produced it): nothing is dropped and nothing grows.
//!
//! # Wake only when asleep
//!
//! A shard that is about to block publishes `sleeping = true`, then looks at its inbound lanes
//! once more. A sender, after its push, looks at `sleeping`, and only if it is set turns it back
//! to false (compare-exchange) and writes the eventfd (the sleeper has a read of that eventfd
//! pending in its ring). The compare-exchange makes sure only one sender pays for the wake. Both
//! sides use `SeqCst` with a full fence between their store and their load (a Dekker pair):
//!
//! ```text
//! sleeper: sleeping := true ; fence ; if lanes empty { block }
//! sender:  push(msg)        ; fence ; if CAS(sleeping, true → false) { write eventfd }
//! ```
//!
//! With both fences, at least one side sees the other's store: either the sleeper sees the
//! message (and does not block), or the sender sees `sleeping` (and wakes it). Weaker orderings
//! would let each side read the old value of the other's location — the lost-wakeup race, where
//! the message sits in the lane while its receiver sleeps until some unrelated event.
//!
//! `tests/loom_mailbox.rs` model-checks this protocol with loom (`--cfg loom`, see `sync.rs`):
//! no lost wakeup, at most one ring per sleep; and the model does catch a protocol without the
//! fences.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sync::{fence, ArrayQueue, AtomicBool, Ordering};
use crate::ShardId;

/// All lanes of the mesh. `Full` policy: `push` hands the message back.
pub struct Lanes<M> {
    shards: usize,
    lanes: Box<[ArrayQueue<M>]>,
}

impl<M> Lanes<M> {
    pub fn new(shards: usize, capacity: usize) -> Lanes<M> {
        Lanes {
            shards,
            lanes: (0..shards * shards).map(|_| ArrayQueue::new(capacity)).collect(),
        }
    }

    fn lane(&self, from: ShardId, to: ShardId) -> &ArrayQueue<M> {
        &self.lanes[from * self.shards + to]
    }

    /// Bounded push: `Err(msg)` when the lane is full.
    pub fn push(&self, from: ShardId, to: ShardId, msg: M) -> Result<(), M> {
        self.lane(from, to).push(msg)
    }

    pub fn pop(&self, from: ShardId, to: ShardId) -> Option<M> {
        self.lane(from, to).pop()
    }

    pub fn lane_is_empty(&self, from: ShardId, to: ShardId) -> bool {
        self.lane(from, to).is_empty()
    }

    /// Messages waiting in the lanes into `to` (a racy snapshot: senders keep pushing).
    pub fn inbound_len(&self, to: ShardId) -> usize {
        (0..self.shards).map(|from| self.lane(from, to).len()).sum()
    }

    /// Whether any lane into `to` holds a message.
    pub fn any_inbound(&self, to: ShardId) -> bool {
        (0..self.shards).any(|from| !self.lane(from, to).is_empty())
    }
}

/// Keeps each shard's flag on its own cache line so a sleeper's store does not bounce the
/// line of a busy neighbour.
#[repr(align(128))]
struct Padded(AtomicBool);

/// Sleep flags, wake eventfds and the shutdown flag: everything a thread outside a shard (the
/// `RuntimeHandle`) or another shard needs to get a shard's attention.
pub struct Doorbells {
    sleeping: Box<[Padded]>,
    eventfds: Box<[OwnedFd]>,
    shutdown: AtomicBool,
    /// Rings per shard, for the model to observe wakes (the eventfd's counter is invisible to it).
    #[cfg(loom)]
    rung: Box<[crate::sync::AtomicUsize]>,
}

impl Doorbells {
    pub fn new(shards: usize) -> io::Result<Doorbells> {
        let mut eventfds = Vec::with_capacity(shards);
        for _ in 0..shards {
            // Blocking eventfd: the ring polls it; a writer never blocks because the counter
            // cannot get near its 2^64-2 limit with one write per sleep.
            // SAFETY: plain syscall, result checked.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and is owned by nobody else.
            eventfds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(Doorbells {
            sleeping: (0..shards).map(|_| Padded(AtomicBool::new(false))).collect(),
            eventfds: eventfds.into_boxed_slice(),
            shutdown: AtomicBool::new(false),
            #[cfg(loom)]
            rung: (0..shards).map(|_| crate::sync::AtomicUsize::new(0)).collect(),
        })
    }

    pub fn eventfd(&self, shard: ShardId) -> &OwnedFd {
        &self.eventfds[shard]
    }

    /// Sleeper side, step 1: announce the intent to block. The caller must re-check its inbound
    /// lanes and the shutdown flag afterwards and only block if both are quiet.
    pub fn announce_sleep(&self, shard: ShardId) {
        // SeqCst store + SeqCst fence: orders this store before the lane re-check that follows
        // (a store-load pair, which only SeqCst fences order). See the module docs.
        self.sleeping[shard].0.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Sleeper side, step 2: awake again (whether it blocked or not).
    pub fn awake(&self, shard: ShardId) {
        // Relaxed is enough: a sender that still sees `true` only costs one spurious eventfd
        // write, and the next `announce_sleep` is SeqCst again.
        self.sleeping[shard].0.store(false, Ordering::Relaxed);
    }

    /// Sender side: call after pushing into a lane to `to`. Writes the eventfd only when `to` is
    /// asleep (or about to be), and at most once per sleep.
    pub fn wake_if_asleep(&self, to: ShardId) {
        // Pairs with the fence in `announce_sleep`: orders our earlier push before this load.
        fence(Ordering::SeqCst);
        let flag = &self.sleeping[to].0;
        // The plain load keeps the cache line shared while the peer is awake (the common case);
        // the compare-exchange elects exactly one waker per sleep: a read-modify-write always
        // reads the latest value, so two senders cannot both take the same `true`, and a loser
        // writes nothing. (A swap would elect the same way, but loom 0.7.3 lets a load that
        // follows the same thread's losing swap read that swap's `false` past a `true` that
        // happens before the load, and so reports lost wakeups that cannot happen.)
        // SeqCst on both: the load is the load half of the Dekker pair, after our fence.
        if flag.load(Ordering::SeqCst)
            && flag
                .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.ring(to);
        }
    }

    /// Unconditional wake (shutdown; rare).
    pub fn ring(&self, to: ShardId) {
        // AcqRel: a woken model sleeper (`take_ring`) sees what the ringer did before, as a real
        // one does through the eventfd write and read (both full barriers in the kernel).
        #[cfg(loom)]
        self.rung[to].fetch_add(1, Ordering::AcqRel);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. It cannot block (see
        // `new`); an error would only mean a lost wake of a shard that is exiting anyway.
        unsafe {
            libc::write(
                self.eventfds[to].as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    pub fn request_shutdown(&self) {
        // SeqCst: read by sleepers after their `announce_sleep` fence, like a lane.
        self.shutdown.store(true, Ordering::SeqCst);
        for shard in 0..self.eventfds.len() {
            self.ring(shard);
        }
    }

    pub fn shutdown_requested(&self) -> bool {
        // SeqCst: the load half of the same Dekker pair as a lane re-check.
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Model only: consumes one ring of `shard`'s eventfd if there is one, as the blocked ring
    /// read would; `false` means a sleeper that blocked now would stay blocked until the next ring.
    #[cfg(loom)]
    pub fn take_ring(&self, shard: ShardId) -> bool {
        // AcqRel: pairs with the AcqRel increment in `ring`.
        self.rung[shard]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_bounded_and_ordered() {
        let lanes = Lanes::new(2, 3);
        for i in 0..3 {
            assert!(lanes.push(0, 1, i).is_ok());
        }
        assert_eq!(lanes.push(0, 1, 99), Err(99));
        assert!(lanes.any_inbound(1));
        assert_eq!(lanes.inbound_len(1), 3);
        assert_eq!(lanes.inbound_len(0), 0);
        assert!(!lanes.any_inbound(0));
        assert!(lanes.lane_is_empty(1, 0));
        let drained: Vec<_> = std::iter::from_fn(|| lanes.pop(0, 1)).collect();
        assert_eq!(drained, vec![0, 1, 2]);
    }

    #[test]
    fn wake_only_when_asleep() {
        let bells = Doorbells::new(1).expect("eventfd");
        let fd = bells.eventfd(0).as_raw_fd();
        let read_counter = || {
            let mut v: u64 = 0;
            // SAFETY: nonblocking poll first so the read cannot block the test.
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut pfd, 1, 0) } == 1 {
                unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
            }
            v
        };
        bells.wake_if_asleep(0);
        assert_eq!(read_counter(), 0, "woke an awake shard");
        bells.announce_sleep(0);
        bells.wake_if_asleep(0);
        bells.wake_if_asleep(0);
        assert_eq!(read_counter(), 1, "exactly one wake per sleep");
        bells.awake(0);
    }
}
