//! `Io`: the shard context every engine callback receives — its connections, timers, mailbox
//! lanes and ring — and the calls an engine makes on it.
//!
//! Nothing here blocks or submits: calls only change state and queue SQEs; the loop's phases
//! (see `shard`) turn that state into kernel operations.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use io_uring::{opcode, types};
use slab::Slab;

use crate::connection::{Connection, Lifecycle};
use crate::listener::Listener;
use crate::mailbox::{Doorbells, Lanes};
use crate::remote::{Inbox, Remote};
use crate::ring::buffers::BufRing;
use crate::ring::op::{FsyncState, OpKind, OpTag, PendingFsync};
use crate::ring::{Ring, RingFlags};
use crate::timer::TimerWheel;
use crate::{ConnId, Detached, ShardId};

/// Callbacks the loop owes the engine, queued while reaping and run in the callback phase.
/// Bounded by what one turn can produce: the CQ size plus the connections touched in a turn.
#[derive(Default)]
pub(crate) struct Events {
    pub accepted: Vec<(ConnId, usize, Option<SocketAddr>)>,
    pub closed: Vec<ConnId>,
    pub detached: Vec<(ConnId, Detached)>,
    pub input: Vec<ConnId>,
    pub drained: Vec<ConnId>,
    /// Finished fsyncs: the engine's token and the result.
    pub fsynced: Vec<(u64, std::io::Result<()>)>,
}

impl Events {
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty()
            && self.closed.is_empty()
            && self.detached.is_empty()
            && self.input.is_empty()
            && self.drained.is_empty()
            && self.fsynced.is_empty()
    }
}

/// A shard's runtime counters, as [`Io::runtime_stats`] reads them. Counts are totals since the
/// shard started; `connections` and `mailbox_depth` are current values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Connections the shard holds (including closing and detaching ones).
    pub connections: u64,
    /// SQEs queued on the shard's ring (each is submitted by the next enter).
    pub ring_submissions: u64,
    /// CQEs reaped from the shard's ring (a multishot op posts many).
    pub ring_completions: u64,
    /// Messages waiting in the lanes into this shard (from every shard, itself included).
    pub mailbox_depth: u64,
    /// Sends from this shard refused because the target lane was full (`Io::send` gave `Err`).
    pub mailbox_full: u64,
}

/// Per-shard context given to every `Engine` callback.
pub struct Io<M> {
    pub(crate) shard: ShardId,
    pub(crate) shards: usize,
    pub(crate) now: Instant,
    pub(crate) input_max_bytes: usize,
    pub(crate) conns: Slab<Connection>,
    pub(crate) next_generation: u32,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) events: Events,
    /// Slab indexes whose state changed this turn; the flush phase looks at each once.
    pub(crate) dirty: Vec<usize>,
    pub(crate) timers: TimerWheel,
    /// Engine fsyncs asked for and not yet reaped (queued or in the kernel). Grows only with
    /// what the engine asks for: the engine bounds it.
    pub(crate) fsyncs: Slab<PendingFsync>,
    /// Slots of `fsyncs` still `Queued`: the flush phase submits them.
    pub(crate) fsync_queue: Vec<usize>,
    /// Fsyncs asked for whose `on_fsync` has not run yet.
    pub(crate) fsyncs_pending: usize,
    pub(crate) lanes: Arc<Lanes<M>>,
    pub(crate) bells: Arc<Doorbells>,
    /// Messages from threads outside the runtime (`Remote`).
    pub(crate) inbox: Arc<Inbox<M>>,
    /// Shards we pushed a message to this turn (wake phase), and its dedup flags.
    pub(crate) wake_list: Vec<ShardId>,
    pub(crate) wake_flags: Vec<bool>,
    /// `send`s refused because the lane was full.
    pub(crate) mailbox_full: u64,
    pub(crate) poll_soon: bool,
    /// Whether multishot recvs carry a byte cap (cleared when the kernel rejects it).
    pub(crate) recv_cap: bool,
    pub(crate) shutting_down: bool,
    /// The kernel writes the eventfd counter here; `None` once leaked at exit.
    pub(crate) wake_buf: Option<Box<u64>>,
    // Dropped last, in this order: buffers are unregistered before the ring fd closes.
    pub(crate) bufs: BufRing,
    pub(crate) ring: Ring,
}

impl<M: Send + 'static> Io<M> {
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Cached once per loop turn, right after reaping.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The connection's unread input; `None` if the connection is gone. Consume from the front
    /// (`split_to`, `advance`); reading resumes once it is below `input_max_bytes`.
    pub fn input(&mut self, conn: ConnId) -> Option<&mut BytesMut> {
        let index = self.live_index(conn)?;
        self.mark_dirty(index);
        Some(&mut self.conns[index].input)
    }

    /// Copies `bytes` into the output queue (sent at the next flush).
    pub fn write(&mut self, conn: ConnId, bytes: &[u8]) {
        if let Some(c) = self.writable(conn) {
            c.output.write(bytes);
        }
    }

    /// Queues `bytes` without copying (small ones are copied into the tail buffer).
    pub fn write_bytes(&mut self, conn: ConnId, bytes: Bytes) {
        if let Some(c) = self.writable(conn) {
            c.output.write_bytes(bytes);
        }
    }

    /// Sends queued output at the end of this turn (one writev), and keeps sending until the
    /// queue is empty.
    pub fn flush(&mut self, conn: ConnId) {
        if let Some(index) = self.live_index(conn) {
            self.conns[index].flush_wanted = true;
            self.mark_dirty(index);
        }
    }

    /// Bytes queued or in flight, not yet completed.
    pub fn pending_output(&self, conn: ConnId) -> usize {
        self.live_index(conn)
            .map_or(0, |index| self.conns[index].output.pending_bytes())
    }

    /// Flushes what is queued, then closes; `on_closed` follows. Wins over a pending `detach`.
    pub fn close(&mut self, conn: ConnId) {
        if let Some(index) = self.live_index(conn) {
            let c = &mut self.conns[index];
            if matches!(c.lifecycle, Lifecycle::Open | Lifecycle::Detaching) {
                c.lifecycle = Lifecycle::Closing { abort: false };
            }
            self.mark_dirty(index);
        }
    }

    /// Stops reading `conn` (the recv is cancelled) until `resume_reading`.
    pub fn pause_reading(&mut self, conn: ConnId) {
        if let Some(index) = self.live_index(conn) {
            self.conns[index].read_paused = true;
            self.mark_dirty(index);
        }
    }

    /// Reads again; also schedules `on_input` next turn if input is non-empty.
    pub fn resume_reading(&mut self, conn: ConnId) {
        if let Some(index) = self.live_index(conn) {
            self.conns[index].read_paused = false;
            self.mark_dirty(index);
            if !self.conns[index].input.is_empty() {
                self.schedule_input(index);
            }
        }
    }

    /// Flushes, stops reading, waits until no op is left in the kernel, then calls
    /// `on_detached` with the fd and unread input. Writes made before `on_detached` are flushed.
    pub fn detach(&mut self, conn: ConnId) {
        if let Some(index) = self.live_index(conn) {
            let c = &mut self.conns[index];
            if c.lifecycle == Lifecycle::Open {
                c.lifecycle = Lifecycle::Detaching;
            }
            self.mark_dirty(index);
        }
    }

    /// Adopts a connection detached on another shard (or built with `Detached::from_parts`).
    /// Reading starts at the end of this turn; `on_input` follows if the input is non-empty.
    pub fn attach(&mut self, detached: Detached) -> ConnId {
        let Detached { fd, input, peer } = detached;
        let has_input = !input.is_empty();
        let index = self.insert_connection(fd, peer, input);
        if has_input {
            self.schedule_input(index);
        }
        self.conns[index].id
    }

    /// Pushes `msg` into the bounded lane to shard `to`; `Err(msg)` when the lane is full. The
    /// peer is woken at the end of the turn, and only if it is asleep.
    ///
    /// Panics if `to >= shards()` (a programming error).
    pub fn send(&mut self, to: ShardId, msg: M) -> Result<(), M> {
        assert!(to < self.shards, "send to shard {to} of {}", self.shards);
        if let Err(msg) = self.lanes.push(self.shard, to, msg) {
            self.mailbox_full += 1;
            return Err(msg);
        }
        if to != self.shard && !self.wake_flags[to] {
            self.wake_flags[to] = true;
            self.wake_list.push(to);
        }
        Ok(())
    }

    /// A handle by which any thread can send this shard a message; it arrives in
    /// `Engine::on_remote` on a later turn.
    pub fn remote(&self) -> Remote<M> {
        Remote::new(self.shard, Arc::clone(&self.inbox), Arc::clone(&self.bells))
    }

    /// Fires `on_timer(token)` on the first turn at or after `at` (1 ms resolution).
    pub fn timer_at(&mut self, at: Instant, token: u64) {
        self.timers.insert(at, token);
    }

    /// Fsyncs `fd` through the shard's ring (`IORING_OP_FSYNC`, a full fsync, not datasync); the
    /// loop never blocks on it. The SQE is queued in the flush phase of this turn and submitted
    /// with the next; `on_fsync(token, result)` follows, exactly once, in the callback phase of
    /// the turn that reaps it. `result` is the kernel's: `Err` for a bad fd (`EBADF`), an I/O
    /// error (`EIO`), and so on.
    ///
    /// The engine owns `fd` and must keep it open until `on_fsync` for this call has run (a fd
    /// closed earlier may be reused by another file, which would be synced instead). Many fsyncs
    /// may be in flight at once and nothing bounds them but the engine: each one holds a slot in
    /// the shard and a kernel worker while it runs, so keep at most a few in flight (for
    /// instance one per queue file, with a dirty flag for writes made meanwhile).
    ///
    /// After shutdown the shard waits for fsyncs in flight as it waits for connections (until
    /// the drain deadline, plus the forced-close grace); an fsync cannot be cancelled, so one
    /// still running when the shard exits is abandoned: its `on_fsync` never runs.
    pub fn fsync(&mut self, fd: RawFd, token: u64) {
        let slot = self.fsyncs.insert(PendingFsync {
            token,
            state: FsyncState::Queued(fd),
        });
        self.fsync_queue.push(slot);
        self.fsyncs_pending += 1;
    }

    /// Fsyncs asked for with [`Io::fsync`] whose `on_fsync` has not run yet.
    pub fn fsyncs_in_flight(&self) -> usize {
        self.fsyncs_pending
    }

    /// Do not sleep at the end of this turn (retry work pending).
    pub fn poll_soon(&mut self) {
        self.poll_soon = true;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The peer address recorded at accept, if the connection is alive.
    pub fn peer(&self, conn: ConnId) -> Option<SocketAddr> {
        self.live_index(conn).and_then(|index| self.conns[index].peer)
    }

    /// Whether `conn` is alive and neither closing nor detaching.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.live_index(conn)
            .is_some_and(|index| self.conns[index].lifecycle == Lifecycle::Open)
    }

    /// Connections this shard holds (including closing and detaching ones).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// This shard's counters: a few plain loads and a sum over its inbound lanes; cheap enough
    /// to call every turn.
    pub fn runtime_stats(&self) -> RuntimeStats {
        RuntimeStats {
            connections: self.conns.len() as u64,
            ring_submissions: self.ring.submitted(),
            ring_completions: self.ring.completed(),
            mailbox_depth: self.lanes.inbound_len(self.shard) as u64,
            mailbox_full: self.mailbox_full,
        }
    }

    /// The set-up flags this shard's ring got.
    pub fn ring_flags(&self) -> RingFlags {
        self.ring.flags()
    }
}

impl<M> Io<M> {
    pub(crate) fn live_index(&self, conn: ConnId) -> Option<usize> {
        let index = conn.index();
        match self.conns.get(index) {
            Some(c) if c.id == conn => Some(index),
            _ => None,
        }
    }

    fn writable(&mut self, conn: ConnId) -> Option<&mut Connection> {
        let index = self.live_index(conn)?;
        let c = &mut self.conns[index];
        // After a failed socket the output has nowhere to go.
        (c.lifecycle != Lifecycle::Closing { abort: true }).then_some(c)
    }

    pub(crate) fn mark_dirty(&mut self, index: usize) {
        if let Some(c) = self.conns.get_mut(index) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    pub(crate) fn schedule_input(&mut self, index: usize) {
        if let Some(c) = self.conns.get_mut(index) {
            if !c.input_scheduled {
                c.input_scheduled = true;
                self.events.input.push(c.id);
            }
        }
    }

    /// Inserts a connection (reading starts in the flush phase) and returns its slab index.
    pub(crate) fn insert_connection(
        &mut self,
        fd: std::os::fd::OwnedFd,
        peer: Option<SocketAddr>,
        input: BytesMut,
    ) -> usize {
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        let id = ConnId::new(index as u32, self.next_generation);
        entry.insert(Connection::new(id, fd, peer, input));
        self.mark_dirty(index);
        index
    }

    /// Keeps a read of the wake eventfd in the kernel, so a peer's write ends our wait.
    pub(crate) fn arm_wake(&mut self) -> std::io::Result<()> {
        let Some(buf) = self.wake_buf.as_mut() else {
            return Ok(());
        };
        let fd = self.bells.eventfd(self.shard).as_raw_fd();
        let sqe = opcode::Read::new(types::Fd(fd), (&mut **buf as *mut u64).cast(), 8).build();
        // SAFETY: the boxed counter lives until teardown, which waits for this read or leaks it.
        unsafe { self.ring.push(sqe, OpTag::new(OpKind::Wake, 0, 0)) }
    }
}

/// Builds the first state of a shard's `Io` (ring and buffers already set up).
pub(crate) struct IoParts<M> {
    pub shard: usize,
    pub shards: usize,
    pub input_max_bytes: usize,
    pub listeners: Vec<std::os::fd::OwnedFd>,
    pub lanes: Arc<Lanes<M>>,
    pub bells: Arc<Doorbells>,
    pub ring: Ring,
    pub bufs: BufRing,
}

impl<M> IoParts<M> {
    pub fn build(self) -> Io<M> {
        let now = Instant::now();
        Io {
            shard: self.shard,
            shards: self.shards,
            now,
            input_max_bytes: self.input_max_bytes,
            conns: Slab::new(),
            next_generation: 0,
            listeners: self.listeners.into_iter().map(Listener::new).collect(),
            events: Default::default(),
            dirty: Vec::new(),
            timers: TimerWheel::new(now),
            fsyncs: Slab::new(),
            fsync_queue: Vec::new(),
            fsyncs_pending: 0,
            lanes: self.lanes,
            bells: self.bells,
            inbox: Arc::new(Inbox::new()),
            wake_list: Vec::new(),
            wake_flags: vec![false; self.shards],
            mailbox_full: 0,
            poll_soon: false,
            recv_cap: true,
            shutting_down: false,
            wake_buf: Some(Box::new(0)),
            bufs: self.bufs,
            ring: self.ring,
        }
    }
}
