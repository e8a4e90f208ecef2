//! The seam between the runtime and the protocol engine it runs.
//!
//! The runtime owns sockets, rings, buffers, timers and mailboxes; the engine owns every byte's
//! meaning. Callbacks are never run while completions are being reaped: the loop reaps first,
//! then calls the engine, then flushes what the engine queued.

use std::io;
use std::net::SocketAddr;

use crate::{ConnId, Detached, Io, ShardId};

/// A protocol engine, one instance per shard, living on that shard's thread only.
pub trait Engine: 'static {
    /// What one shard sends another. Travels through a bounded mailbox.
    type Msg: Send + 'static;

    /// Runs once on the shard thread before the first accept.
    fn on_start(&mut self, _io: &mut Io<Self::Msg>) {}

    /// A connection was accepted on listener number `listener` (index into `RuntimeConfig::listeners`).
    /// `peer` is the TCP peer's address; `None` on a Unix socket listener, or when the peer
    /// was gone before the runtime could ask.
    fn on_accept(&mut self, io: &mut Io<Self::Msg>, conn: ConnId, listener: usize, peer: Option<SocketAddr>);

    /// New bytes were appended to `io.input(conn)`, or reading was resumed with bytes left in it.
    fn on_input(&mut self, io: &mut Io<Self::Msg>, conn: ConnId);

    /// Everything queued for `conn` has been handed to the kernel.
    fn on_drained(&mut self, _io: &mut Io<Self::Msg>, _conn: ConnId) {}

    /// The connection is gone (peer closed, error, or a requested close finished). `conn` is
    /// invalid once this returns.
    fn on_closed(&mut self, io: &mut Io<Self::Msg>, conn: ConnId);

    /// A connection passed to `Io::detach` has no operation left in the kernel and may travel.
    fn on_detached(&mut self, io: &mut Io<Self::Msg>, conn: ConnId, detached: Detached);

    /// A message from another shard.
    fn on_message(&mut self, io: &mut Io<Self::Msg>, from: ShardId, msg: Self::Msg);

    /// A message sent through a `Remote` (from `Io::remote`) by a thread outside the runtime.
    /// Runs in the callback phase, after `on_message`. Engines that never hand out a `Remote`
    /// get none.
    fn on_remote(&mut self, _io: &mut Io<Self::Msg>, _msg: Self::Msg) {}

    /// A timer set with `Io::timer_at` fired.
    fn on_timer(&mut self, io: &mut Io<Self::Msg>, token: u64);

    /// An fsync asked for with `Io::fsync(fd, token)` finished: `Ok(())` once the kernel reports
    /// the file durable, else its error (`EBADF` for a bad fd, `EIO`, ...). Runs exactly once per
    /// `Io::fsync` call, in the callback phase of the turn that reaped it, after `on_drained` and
    /// before `on_message`; `fd` may be closed from here on.
    fn on_fsync(&mut self, _io: &mut Io<Self::Msg>, _token: u64, _result: io::Result<()>) {}

    /// Once per loop turn, after every callback of the turn and before output is flushed.
    fn on_turn_end(&mut self, _io: &mut Io<Self::Msg>) {}

    /// Whether the engine holds output back to batch it (output that `on_idle` would send).
    /// Asked before each sleep; answering `true` costs one non-blocking ring enter.
    fn holds_output(&self) -> bool {
        false
    }

    /// The shard has nothing to run and no completion is waiting: it is about to sleep. Output
    /// held back for batching may go now, since no later work in this burst would join it.
    /// Runs only after `holds_output` said `true`; what it queues is flushed before the sleep.
    fn on_idle(&mut self, _io: &mut Io<Self::Msg>) {}

    /// Shutdown was requested: listeners are closed. The engine writes its last frames and closes
    /// its connections; the shard exits once no connection and no fsync is left (or the drain
    /// deadline passes).
    fn on_shutdown(&mut self, io: &mut Io<Self::Msg>);
}
