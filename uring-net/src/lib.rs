//! Squall's body: a shard-per-core io_uring runtime. It runs whatever [`Engine`] it is given and
//! knows nothing about NSQ.
//!
//! # Thread-per-core model
//!
//! [`Runtime::start`] spawns one thread per shard, each pinned to a core, each with its own
//! io_uring (SINGLE_ISSUER+DEFER_TASKRUN where the kernel has it), provided-buffer ring, timer
//! wheel, connection table and engine instance. Nothing on the data path is shared: shards talk
//! only through bounded mailbox lanes, and a connection can move between shards
//! ([`Io::detach`] / [`Io::attach`]). Every shard accepts on its own `SO_REUSEPORT` socket for
//! each TCP listener (on a `dup` of the one socket of a Unix listener), with multishot accept;
//! sockets are read with multishot recv into the shard's provided buffers and written with one
//! coalesced writev per connection per turn. Engines
//! fsync their files through the same ring ([`Io::fsync`], reported by
//! [`Engine::on_fsync`]), so durability never blocks a shard loop.
//!
//! # Loop phases
//!
//! Each turn of a shard runs (1) submit + wait, (2) reap, (3) callbacks, (4) flush, (5) wake;
//! see [`shard`](crate::shard) for what each does. A shard blocks in phase 1 only when nothing is
//! runnable, for at most the time to its next timer.
//!
//! # Invariants
//!
//! - **Callbacks never run while reaping.** Phase 2 only records completions into connection
//!   state and event lists; the engine hears about them in phase 3.
//! - **Every queue is bounded.** Mailbox lanes hold `mailbox_capacity` messages and a full lane
//!   returns the message to the sender (`Err(msg)`); a connection's input stops being read at
//!   `input_max_bytes`: each multishot recv carries a byte cap equal to the room left (Linux
//!   6.17+), so input passes the limit by less than one 16 KiB completion (on older kernels the
//!   recv is cancelled instead, and input may pass it by what one reap delivered); one turn drains at most `MAILBOX_DRAIN_PER_LANE_MAX` messages per lane and
//!   `TIMERS_PER_TURN_MAX` timers, leaving the rest for the next turn. Output is bounded by the
//!   engine, which sees [`Io::pending_output`]; so are fsyncs in flight, which the engine sees
//!   as [`Io::fsyncs_in_flight`] (keep a few, e.g. one per file).
//! - **A buffer the kernel may still write into (or read from) is never freed.** Receive
//!   buffers belong to the provided-buffer ring and are freed only after it is unregistered with
//!   no recv in the kernel; a send's iovecs and segments stay in a heap box owned by the
//!   connection, and a connection slot is freed only when it has no operation in the kernel.
//!   At exit, whatever did not complete after cancellation is leaked, not freed.
//! - **Wake only when asleep.** A shard is woken (eventfd) by a sender only if it announced
//!   sleep; see [`mailbox`](crate::mailbox) for the ordering argument.
//! - **The loop makes no blocking syscall.** File durability too goes through the ring
//!   (`IORING_OP_FSYNC`); the engine keeps the fd open until its `on_fsync`. A shutting-down
//!   shard waits for fsyncs in flight like it waits for connections (up to the drain deadline
//!   plus the forced-close grace); fsync cannot be cancelled, so one still running at exit is
//!   abandoned without an `on_fsync`.
//! - **A peer never crashes a shard.** Socket errors (ECONNRESET, EPIPE, EMFILE on accept) are
//!   values that close one connection or delay one accept.
//!
//! # Layout
//!
//! - `engine.rs` — the [`Engine`] trait, the contract with protocol engines.
//! - `io.rs` — [`Io`], the per-shard context engine callbacks get, and its construction.
//! - `runtime.rs` — [`Runtime`], [`RuntimeConfig`], [`RuntimeHandle`]: start, pin, shut down.
//! - `shard/` — the loop and its phases (`mod.rs`), reaping (`reap.rs`), flushing (`flush.rs`),
//!   exit (`teardown.rs`).
//! - `ring/` — the io_uring wrapper (`mod.rs`), op tags and lifecycles of connection ops and
//!   engine fsyncs (`op.rs`), the provided-buffer ring (`buffers.rs`).
//! - `connection.rs` — input, output queue and op state of one socket.
//! - `listener.rs` — listening sockets: SO_REUSEPORT TCP sockets per shard, wildcards bound
//!   dual-stack as Go's `net.Listen` does ([`listen_address`]); one Unix socket shared by every
//!   shard ([`ListenAddr::Unix`]).
//! - `mailbox.rs` — the N×N lane mesh and the sleep/wake doorbells.
//! - `remote.rs` — [`Remote`]: messages into a shard from threads outside the runtime.
//! - `sync.rs` — the atomics and lane queue the mailbox uses, swapped for loom's under
//!   `--cfg loom` (`tests/loom_mailbox.rs`).
//! - `timer.rs` — the hashed timer wheel.
//! - `limits.rs` — every fixed limit, with its reason.
//! - `error.rs` — start-up errors.

mod connection;
pub mod engine;
mod error;
mod io;
mod limits;
mod listener;
#[cfg(not(loom))]
pub(crate) mod mailbox;
/// Public only in the loom build, for `tests/loom_mailbox.rs`.
#[cfg(loom)]
pub mod mailbox;
mod remote;
pub(crate) mod ring;
mod runtime;
pub(crate) mod shard;
mod sync;
mod timer;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use bytes::BytesMut;

pub use engine::Engine;
pub use error::StartError;
pub use io::{Io, RuntimeStats};
pub use listener::{listen_address, probe_tcp_listen, probe_unix_listen, ListenAddr};
pub use remote::Remote;
pub use ring::RingFlags;
pub use runtime::{Runtime, RuntimeConfig, RuntimeHandle};

/// Index of a shard, `0..shards`.
pub type ShardId = usize;

/// A connection on one shard: slab index plus a generation, so an id kept after the
/// connection closed never reaches a newer connection in the same slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    pub(crate) fn new(index: u32, generation: u32) -> ConnId {
        ConnId { index, generation }
    }

    pub fn index(self) -> usize {
        self.index as usize
    }

    pub(crate) fn generation(self) -> u32 {
        self.generation
    }

    /// `generation << 32 | index`.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub fn from_u64(value: u64) -> ConnId {
        ConnId {
            index: value as u32,
            generation: (value >> 32) as u32,
        }
    }
}

/// A connection in transit between shards: its socket, the input it had not consumed, and its
/// peer address. Dropping it closes the socket.
#[derive(Debug)]
pub struct Detached {
    pub(crate) fd: OwnedFd,
    pub(crate) input: BytesMut,
    pub(crate) peer: Option<SocketAddr>,
}

impl Detached {
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Input received but not consumed before the detach.
    pub fn input(&self) -> &BytesMut {
        &self.input
    }

    /// Wraps a connected stream socket so that [`Io::attach`] can adopt it.
    pub fn from_parts(fd: OwnedFd, input: BytesMut, peer: Option<SocketAddr>) -> Detached {
        Detached { fd, input, peer }
    }

    pub fn into_parts(self) -> (OwnedFd, BytesMut, Option<SocketAddr>) {
        (self.fd, self.input, self.peer)
    }
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Detached>();
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuntimeHandle>();
};
