//! One shard: a pinned thread's loop over its ring, connections, mailbox lanes and timers.
//!
//! Each turn runs five named phases:
//!
//! 1. **submit + wait** — submit queued SQEs; block for a completion only if nothing is
//!    runnable (after announcing sleep and re-checking the lanes), for at most the time to the
//!    next timer or deadline. Before blocking, an engine holding output back for batching gets
//!    `on_idle` to send it, unless a completion is already waiting.
//! 2. **reap** — every CQE becomes connection/listener state and queued events; no callbacks.
//! 3. **callbacks** — shutdown notice, closes, detaches, accepts, input, drained, finished
//!    fsyncs, inbound messages (bounded per lane), remote messages, expired timers (bounded), `on_turn_end`.
//! 4. **flush** — per touched connection: one writev, recv arm/cancel, finish close/detach;
//!    then listeners' accepts and the fsyncs the engine asked for this turn.
//! 5. **wake** — ring the doorbell of peers we sent to this turn, only if they sleep.

mod flush;
mod reap;
mod teardown;

use std::io;
use std::time::{Duration, Instant};

use crate::connection::Lifecycle;
use crate::engine::Engine;
use crate::io::Io;
use crate::limits::{FORCED_CLOSE_GRACE_MS, MAILBOX_DRAIN_PER_LANE_MAX, TIMERS_PER_TURN_MAX};
use crate::ring::Completion;

pub(crate) struct Shard<E: Engine> {
    /// Dropped before `engine` (declaration order): the ring's exit wait runs while the files
    /// the engine fsyncs are still open.
    io: Io<E::Msg>,
    engine: E,
    drain_timeout: Duration,
    /// Set when shutdown starts: past it, the remaining connections are closed by force.
    drain_deadline: Option<Instant>,
    /// Set when the forced closes start: past it, the shard exits whatever is left.
    exit_deadline: Option<Instant>,
    completions: Vec<Completion>,
    expired_timers: Vec<u64>,
    /// Messages taken from the inbox this turn (kept for its allocation).
    remote: Vec<E::Msg>,
}

impl<E: Engine> Shard<E> {
    pub fn new(io: Io<E::Msg>, engine: E, drain_timeout: Duration) -> Shard<E> {
        Shard {
            io,
            engine,
            drain_timeout,
            drain_deadline: None,
            exit_deadline: None,
            completions: Vec::new(),
            expired_timers: Vec::new(),
            remote: Vec::new(),
        }
    }

    pub fn run(mut self) -> io::Result<()> {
        self.io.now = Instant::now();
        self.engine.on_start(&mut self.io);
        self.io.arm_wake()?;
        self.io.flush_phase()?; // arms the accepts and whatever on_start asked for
        loop {
            self.submit_and_wait()?;
            self.reap()?;
            self.run_callbacks();
            self.io.flush_phase()?;
            self.wake_peers();
            if self.should_exit() {
                return Ok(());
            }
        }
    }

    /// Phase 1.
    fn submit_and_wait(&mut self) -> io::Result<()> {
        let io = &mut self.io;
        let now = Instant::now();
        let shutdown_unseen = |io: &Io<E::Msg>| io.bells.shutdown_requested() && !io.shutting_down;
        let mut runnable =
            io.poll_soon || !io.events.is_empty() || !io.dirty.is_empty() || io.inbox.pending();
        runnable |= shutdown_unseen(io);
        io.poll_soon = false;

        let deadline = [
            io.timers.next_deadline(),
            io.listeners.iter().filter_map(|l| l.retry_at).min(),
            self.drain_deadline,
            self.exit_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        if timeout == Some(Duration::ZERO) {
            runnable = true;
        }
        if runnable {
            return io.ring.enter(false, None);
        }
        if self.engine.holds_output() {
            // Idle unless a completion is already waiting: then the held output goes now
            // instead of waiting for a batching timer while the shard sleeps.
            io.ring.enter(false, None)?;
            if io.ring.has_completions() {
                return Ok(());
            }
            self.engine.on_idle(io);
            io.flush_phase()?;
            if io.poll_soon || !io.events.is_empty() || !io.dirty.is_empty() {
                return Ok(()); // the engine found more to do
            }
        }
        io.bells.announce_sleep(io.shard);
        // Re-check after announcing: a message pushed before our announcement is seen here,
        // one pushed after it finds `sleeping` set and rings the eventfd.
        let wait = !io.lanes.any_inbound(io.shard) && !io.inbox.pending() && !shutdown_unseen(io);
        let result = io.ring.enter(wait, timeout);
        io.bells.awake(io.shard);
        result
    }

    /// Phase 2.
    fn reap(&mut self) -> io::Result<()> {
        self.completions.clear();
        self.io.ring.reap(&mut self.completions);
        self.io.now = Instant::now();
        for &c in &self.completions {
            self.io.on_completion(c)?;
        }
        Ok(())
    }

    /// Phase 3. Each list is taken whole: events queued by a callback wait for the next turn.
    fn run_callbacks(&mut self) {
        let io = &mut self.io;
        let engine = &mut self.engine;

        if io.bells.shutdown_requested() && !io.shutting_down {
            io.shutting_down = true;
            close_listeners(io);
            self.drain_deadline = Some(io.now + self.drain_timeout);
            engine.on_shutdown(io);
        }

        // Ends before accepts: a slot freed in the last flush phase may already hold a connection
        // accepted while reaping, and the engine must hear of the old one's end first.
        for conn in std::mem::take(&mut io.events.closed) {
            engine.on_closed(io, conn);
        }
        for (conn, detached) in std::mem::take(&mut io.events.detached) {
            engine.on_detached(io, conn, detached);
        }
        for (conn, listener, peer) in std::mem::take(&mut io.events.accepted) {
            if io.live_index(conn).is_some() {
                engine.on_accept(io, conn, listener, peer);
            }
        }

        let mut input = std::mem::take(&mut io.events.input);
        for &conn in &input {
            let Some(index) = io.live_index(conn) else {
                continue;
            };
            io.conns[index].input_scheduled = false;
            // The engine may consume input: the flush phase re-checks whether to read.
            io.mark_dirty(index);
            engine.on_input(io, conn);
        }
        input.clear();
        if io.events.input.is_empty() {
            io.events.input = input;
        }

        for conn in std::mem::take(&mut io.events.drained) {
            if io.live_index(conn).is_some() {
                engine.on_drained(io, conn);
            }
        }

        for (token, result) in std::mem::take(&mut io.events.fsynced) {
            io.fsyncs_pending = io.fsyncs_pending.saturating_sub(1);
            engine.on_fsync(io, token, result);
        }

        for from in 0..io.shards {
            for _ in 0..MAILBOX_DRAIN_PER_LANE_MAX {
                let Some(msg) = io.lanes.pop(from, io.shard) else {
                    break;
                };
                engine.on_message(io, from, msg);
            }
            if !io.lanes.lane_is_empty(from, io.shard) {
                io.poll_soon = true; // budget spent; the rest next turn
            }
        }

        io.inbox.take(&mut self.remote);
        for msg in self.remote.drain(..) {
            engine.on_remote(io, msg);
        }

        self.expired_timers.clear();
        if io
            .timers
            .expire(io.now, TIMERS_PER_TURN_MAX, &mut self.expired_timers)
        {
            io.poll_soon = true;
        }
        for &token in &self.expired_timers {
            engine.on_timer(io, token);
        }

        engine.on_turn_end(io);
    }

    /// Phase 5.
    fn wake_peers(&mut self) {
        let io = &mut self.io;
        for to in io.wake_list.drain(..) {
            io.wake_flags[to] = false;
            io.bells.wake_if_asleep(to);
        }
    }

    /// After shutdown: exit once no connection and no fsync is left; past the drain deadline,
    /// close the connections left by force and give them (and fsyncs in flight, which cannot be
    /// cancelled) a short grace to finish.
    fn should_exit(&mut self) -> bool {
        let io = &mut self.io;
        if !io.shutting_down {
            return false;
        }
        if io.conns.is_empty() && io.fsyncs.is_empty() && io.events.is_empty() {
            return true;
        }
        let now = Instant::now();
        if let Some(exit) = self.exit_deadline {
            return now >= exit;
        }
        if self.drain_deadline.is_some_and(|d| now >= d) {
            let indexes: Vec<usize> = io.conns.iter().map(|(index, _)| index).collect();
            for index in indexes {
                io.conns[index].lifecycle = Lifecycle::Closing { abort: true };
                io.mark_dirty(index);
            }
            self.exit_deadline = Some(now + Duration::from_millis(FORCED_CLOSE_GRACE_MS));
        }
        false
    }
}

/// Stops accepting at once: `shutdown(2)` on a listening socket takes it out of the
/// SO_REUSEPORT group and completes its multishot accept (with an error); on a Unix socket it
/// refuses new connections and the flush phase cancels the accept. The fd itself is closed in
/// the flush phase once that accept has left the kernel.
fn close_listeners<M>(io: &mut Io<M>) {
    use std::os::fd::AsRawFd;
    for listener in &mut io.listeners {
        listener.closing = true;
        if let Some(fd) = listener.fd.as_ref() {
            // SAFETY: plain syscall on a socket we own; it does not block.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}
