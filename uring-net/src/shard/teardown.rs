//! Exit: the last thing a shard does, also on unwinding from an engine panic. Everything still
//! in the kernel is cancelled and waited for (bounded); whatever does not finish keeps its
//! buffers forever, because freeing memory the kernel may still write into is never an option.
//!
//! An engine fsync points at no memory and cannot be cancelled once a kernel worker runs it:
//! one still running here is waited for like the rest (bounded), then abandoned. The engine
//! (and so the file it fsyncs) is dropped after this, so the fd stays open during the wait.

use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use crate::io::Io;
use crate::limits::EXIT_CANCEL_WAIT_MS;
use crate::ring::op::{OpKind, OpTag};

impl<M> Drop for Io<M> {
    /// Exit (or unwinding from an engine panic): cancel everything, wait a bounded time for the
    /// last CQEs, and leak — never free — any buffer an unfinished op may still write into.
    fn drop(&mut self) {
        self.wake_list.clear();
        if self.ring.in_kernel() > 0 {
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build();
            // SAFETY: a cancel points at no memory.
            let pushed = unsafe { self.ring.push(cancel, OpTag::new(OpKind::CancelAll, 0, 0)) };
            let deadline = Instant::now() + Duration::from_millis(EXIT_CANCEL_WAIT_MS);
            let mut completions = Vec::new();
            while pushed.is_ok() && self.ring.in_kernel() > 0 && Instant::now() < deadline {
                if self.ring.enter(true, Some(Duration::from_millis(10))).is_err() {
                    break;
                }
                completions.clear();
                self.ring.reap(&mut completions);
            }
        }
        if self.ring.in_kernel() == 0 {
            self.bufs.unregister(&self.ring);
        } else {
            // The kernel may still write to these: leak them (BufRing leaks itself while
            // registered).
            if let Some(buf) = self.wake_buf.take() {
                Box::leak(buf);
            }
            for (_, conn) in self.conns.iter_mut() {
                conn.output.leak_in_flight();
            }
        }
    }
}
