//! Phase 2: turn completions into connection and listener state. No engine callback runs here;
//! what the engine must hear about is queued in `Io::events`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use bytes::BytesMut;
use io_uring::cqueue;

use slab::Slab;

use crate::connection::{Connection, Lifecycle};
use crate::io::Io;
use crate::limits::ACCEPT_RETRY_DELAY_MS;
use crate::listener::prepare_accepted;
use crate::ring::op::{FsyncState, OpKind, RecvState};
use crate::ring::Completion;

impl<M> Io<M> {
    pub(crate) fn on_completion(&mut self, c: Completion) -> std::io::Result<()> {
        match c.tag.kind {
            OpKind::Wake => {
                if !c.more() {
                    self.arm_wake()?;
                }
            }
            OpKind::Accept => self.on_accept_cqe(c),
            OpKind::Recv => self.on_recv_cqe(c),
            OpKind::Send => self.on_send_cqe(c),
            OpKind::CancelRecv => {
                if let Some(conn) = owner(&mut self.conns, c) {
                    conn.ops_in_kernel -= 1;
                    self.mark_dirty(c.tag.index as usize);
                }
            }
            // The accept's own final CQE says when it has left the kernel.
            OpKind::CancelAll | OpKind::CancelAccept => {}
            OpKind::Fsync => self.on_fsync_cqe(c),
        }
        Ok(())
    }

    fn on_accept_cqe(&mut self, c: Completion) {
        let index = c.tag.index as usize;
        let Some(listener) = self.listeners.get_mut(index) else {
            return;
        };
        if !c.more() {
            listener.armed = false;
        }
        if c.result >= 0 {
            // SAFETY: a successful accept CQE carries a new fd that nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(c.result) };
            if self.shutting_down || listener.closing {
                return; // dropping closes it
            }
            let peer = prepare_accepted(&fd, listener.unix);
            let conn = self.insert_connection(fd, peer, BytesMut::new());
            let id = self.conns[conn].id;
            self.events.accepted.push((id, index, peer));
            return;
        }
        match -c.result {
            // Out of descriptors or memory: back off instead of spinning on the error.
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS if !c.more() => {
                listener.retry_at = Some(self.now + Duration::from_millis(ACCEPT_RETRY_DELAY_MS));
            }
            // ECONNABORTED and friends: that one connection is gone; the listener is fine.
            _ => {}
        }
    }

    fn on_recv_cqe(&mut self, c: Completion) {
        let index = c.tag.index as usize;
        let input_max = self.input_max_bytes;
        let buffer = cqueue::buffer_select(c.flags);
        let Some(conn) = owner(&mut self.conns, c) else {
            if let Some(bid) = buffer {
                self.bufs.recycle(bid);
            }
            return;
        };
        if !c.more() {
            conn.recv = RecvState::Idle;
            conn.ops_in_kernel -= 1;
        }
        let mut new_input = false;
        let mut dirty = !c.more();
        if c.result > 0 {
            if let Some(bid) = buffer {
                if conn.lifecycle != (Lifecycle::Closing { abort: true }) {
                    conn.input
                        .extend_from_slice(self.bufs.filled(bid, c.result as usize));
                    new_input = true;
                }
                // Back to the kernel at once: the bytes live in `input` now.
                self.bufs.recycle(bid);
            } else {
                debug_assert!(false, "multishot recv completion without a buffer");
            }
            dirty |= conn.input.len() >= input_max;
        } else {
            if let Some(bid) = buffer {
                self.bufs.recycle(bid);
            }
            match -c.result {
                // The peer closed its side: flush what we owe it, then close (close wins over
                // a pending detach: the connection is over).
                0 => {
                    if matches!(conn.lifecycle, Lifecycle::Open | Lifecycle::Detaching) {
                        conn.lifecycle = Lifecycle::Closing { abort: false };
                    }
                }
                // Buffer ring ran dry or we cancelled: the flush phase re-arms if still wanted.
                libc::ENOBUFS | libc::ECANCELED => {}
                // A kernel older than 6.17 does not know the multishot byte cap: re-arm
                // without it (for every connection of this shard).
                libc::EINVAL if self.recv_cap => self.recv_cap = false,
                // ECONNRESET, ETIMEDOUT, ...: the socket is dead; nothing more can be sent.
                _ => conn.lifecycle = Lifecycle::Closing { abort: true },
            }
            dirty = true;
        }
        if dirty {
            self.mark_dirty(index);
        }
        if new_input {
            self.schedule_input(index);
        }
    }

    fn on_fsync_cqe(&mut self, c: Completion) {
        let slot = c.tag.index as usize;
        match self.fsyncs.try_remove(slot) {
            Some(pending) => {
                debug_assert_eq!(pending.state, FsyncState::InKernel);
                let result = if c.result < 0 {
                    Err(std::io::Error::from_raw_os_error(-c.result))
                } else {
                    Ok(())
                };
                self.events.fsynced.push((pending.token, result));
            }
            None => debug_assert!(false, "completion {:?} for a free fsync slot", c.tag),
        }
    }

    fn on_send_cqe(&mut self, c: Completion) {
        let index = c.tag.index as usize;
        let Some(conn) = owner(&mut self.conns, c) else {
            return;
        };
        conn.ops_in_kernel -= 1;
        if c.result <= 0 {
            // EPIPE, ECONNRESET (or a zero-byte write of a non-empty iovec, which would spin):
            // the peer is gone; drop the output and close.
            conn.output.complete_send(0);
            conn.lifecycle = Lifecycle::Closing { abort: true };
        } else {
            conn.output.complete_send(c.result as usize);
            if !conn.output.has_queued() && conn.lifecycle == Lifecycle::Open {
                let id = conn.id;
                self.events.drained.push(id);
            }
        }
        self.mark_dirty(index);
    }
}

/// The connection a completion belongs to. A completion for a slot that is free or reused
/// would break the lifecycle invariant, so it is a bug (asserted in debug builds).
fn owner(conns: &mut Slab<Connection>, c: Completion) -> Option<&mut Connection> {
    match conns.get_mut(c.tag.index as usize) {
        Some(conn) if c.tag.matches(conn.id.generation()) => Some(conn),
        _ => {
            debug_assert!(false, "completion {:?} for a freed connection slot", c.tag);
            None
        }
    }
}
