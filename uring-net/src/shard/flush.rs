//! Phase 4: for every connection touched this turn, start its one send (a writev of all queued
//! output), arm or cancel its recv, and finish closes and detaches whose ops have all left the
//! kernel. Also keeps listeners' multishot accepts armed and submits the engine's fsyncs.

use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::connection::Lifecycle;
use crate::io::Io;
use crate::ring::op::{fsync, recv_multishot, FsyncState, OpKind, OpTag, RecvState};
use crate::Detached;

impl<M> Io<M> {
    pub(crate) fn flush_phase(&mut self) -> std::io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &index in &dirty {
            self.settle(index)?;
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
        self.settle_listeners()?;
        self.submit_fsyncs()
    }

    /// Queues an SQE for every fsync the engine asked for this turn.
    fn submit_fsyncs(&mut self) -> std::io::Result<()> {
        let Io {
            fsyncs,
            fsync_queue,
            ring,
            ..
        } = self;
        for slot in fsync_queue.drain(..) {
            let Some(pending) = fsyncs.get_mut(slot) else {
                debug_assert!(false, "queued fsync slot {slot} is empty");
                continue;
            };
            let FsyncState::Queued(fd) = pending.state else {
                debug_assert!(false, "fsync slot {slot} queued twice");
                continue;
            };
            // SAFETY: fsync points at no memory; the engine keeps `fd` open until `on_fsync`.
            unsafe { ring.push(fsync(fd), OpTag::new(OpKind::Fsync, slot as u32, 0))? };
            pending.state = FsyncState::InKernel;
        }
        Ok(())
    }

    /// Brings one connection's kernel operations in line with its state.
    fn settle(&mut self, index: usize) -> std::io::Result<()> {
        let input_max = self.input_max_bytes;
        let Io {
            conns,
            ring,
            bufs,
            events,
            recv_cap,
            ..
        } = self;
        let recv_cap = *recv_cap;
        let Some(conn) = conns.get_mut(index) else {
            return Ok(());
        };
        conn.dirty = false;
        let generation = conn.id.generation();
        let Some(fd) = conn.fd.as_ref().map(|fd| fd.as_raw_fd()) else {
            return Ok(());
        };

        // Output: one send in flight at most, carrying everything queued (up to IOV_MAX).
        let abort = conn.lifecycle == Lifecycle::Closing { abort: true };
        if abort {
            conn.output.discard_queued();
        }
        let flush = conn.lifecycle != Lifecycle::Open || conn.flush_wanted;
        if flush && !conn.output.send_in_flight() {
            if conn.output.has_queued() {
                let msghdr = conn.output.start_send();
                let sqe = opcode::SendMsg::new(types::Fd(fd), msghdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build();
                // SAFETY: the msghdr, iovecs and segments live in the connection's boxed send
                // buffers until this send's CQE; the slot is not freed while ops are in flight.
                unsafe { ring.push(sqe, OpTag::new(OpKind::Send, index as u32, generation))? };
                conn.ops_in_kernel += 1;
            } else {
                conn.flush_wanted = false;
            }
        }

        // Input: the multishot recv runs exactly while reading is wanted.
        let wants_read = conn.wants_read(input_max);
        match conn.recv {
            RecvState::Idle if wants_read => {
                let room = input_max.saturating_sub(conn.input.len());
                let cap = recv_cap.then(|| room.min(u32::MAX as usize) as u32);
                let sqe = recv_multishot(fd, bufs.group(), cap);
                // SAFETY: writes go into the provided-buffer ring, which outlives every recv.
                unsafe { ring.push(sqe, OpTag::new(OpKind::Recv, index as u32, generation))? };
                conn.recv = RecvState::Armed;
                conn.ops_in_kernel += 1;
            }
            RecvState::Armed if !wants_read => {
                let target = OpTag::new(OpKind::Recv, index as u32, generation).to_user_data();
                let sqe = opcode::AsyncCancel::new(target).build();
                // SAFETY: a cancel points at no memory.
                unsafe { ring.push(sqe, OpTag::new(OpKind::CancelRecv, index as u32, generation))? };
                conn.recv = RecvState::Cancelling;
                conn.ops_in_kernel += 1;
            }
            _ => {}
        }

        // Finish a close or detach once nothing is queued and nothing is in the kernel.
        let finished = conn.lifecycle != Lifecycle::Open
            && conn.ops_in_kernel == 0
            && !conn.output.send_in_flight()
            && !conn.output.has_queued();
        if finished {
            let conn = conns.remove(index);
            match conn.lifecycle {
                Lifecycle::Detaching => {
                    let id = conn.id;
                    if let Some(fd) = conn.fd {
                        let detached = Detached {
                            fd,
                            input: conn.input,
                            peer: conn.peer,
                        };
                        events.detached.push((id, detached));
                    }
                }
                // Dropping the fd closes it: a socket close without SO_LINGER never blocks.
                _ => events.closed.push(conn.id),
            }
        }
        Ok(())
    }

    fn settle_listeners(&mut self) -> std::io::Result<()> {
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if listener.armed {
                if listener.closing && listener.unix && !listener.cancelled {
                    // shutdown(2) refuses new connections to a Unix listening socket but leaves
                    // the accepts waiting on it in the kernel (a TCP one's completes).
                    let accept = OpTag::new(OpKind::Accept, index as u32, 0).to_user_data();
                    let sqe = opcode::AsyncCancel::new(accept).build();
                    // SAFETY: a cancel points at no memory.
                    unsafe {
                        self.ring
                            .push(sqe, OpTag::new(OpKind::CancelAccept, index as u32, 0))?
                    };
                    listener.cancelled = true;
                }
                continue;
            }
            if listener.closing {
                listener.fd = None; // the accept left the kernel: close the socket
                continue;
            }
            if listener.retry_at.is_some_and(|at| at > self.now) {
                continue;
            }
            listener.retry_at = None;
            let Some(fd) = listener.fd.as_ref() else {
                continue;
            };
            let sqe = opcode::AcceptMulti::new(types::Fd(fd.as_raw_fd()))
                .flags(libc::SOCK_CLOEXEC)
                .build();
            // SAFETY: accept points at no memory; the fd stays open while the op is armed.
            unsafe { self.ring.push(sqe, OpTag::new(OpKind::Accept, index as u32, 0))? };
            listener.armed = true;
        }
        Ok(())
    }
}
