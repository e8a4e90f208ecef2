//! One accepted (or adopted) socket: its input bytes, its output queue, and the lifecycle of the
//! operations it has in the kernel.
//!
//! Output is a queue of `Bytes` segments plus a tail buffer that small writes are copied into.
//! At most one send is in flight; it takes up to `IOV_MAX` segments at once (one `sendmsg` with
//! an iovec array, i.e. a writev that also takes `MSG_NOSIGNAL`), and the segments, the iovec
//! array and the msghdr stay alive in a heap box until its CQE arrives, even while the
//! connection is closing. A slot is removed from the slab only when `ops_in_kernel` is zero.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use bytes::{Bytes, BytesMut};

use crate::limits::{IOV_MAX, OUTPUT_TAIL_CHUNK_BYTES, SMALL_SEGMENT_COPY_BYTES_MAX};
use crate::ring::op::RecvState;
use crate::ConnId;

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lifecycle {
    Open,
    /// `close` was asked (or the peer hung up): flush, stop reading, wait for ops, close.
    /// With `abort`, queued output is dropped instead of flushed (the socket failed).
    Closing {
        abort: bool,
    },
    /// `detach` was asked: flush, stop reading, wait for ops, then hand the fd over.
    Detaching,
}

pub(crate) struct Connection {
    pub id: ConnId,
    /// `None` only after the fd was handed over to a `Detached`.
    pub fd: Option<OwnedFd>,
    pub peer: Option<SocketAddr>,
    pub input: BytesMut,
    pub output: OutputQueue,
    pub lifecycle: Lifecycle,
    pub recv: RecvState,
    /// Operations of this connection in the kernel: the recv, the send, a recv cancel.
    pub ops_in_kernel: u32,
    /// Set by `pause_reading`.
    pub read_paused: bool,
    /// `flush` was asked and the queue has not been emptied since.
    pub flush_wanted: bool,
    /// Already in the shard's list of connections to look at in the flush phase.
    pub dirty: bool,
    /// Already in this turn's list of `on_input` calls.
    pub input_scheduled: bool,
}

impl Connection {
    pub fn new(id: ConnId, fd: OwnedFd, peer: Option<SocketAddr>, input: BytesMut) -> Connection {
        Connection {
            id,
            fd: Some(fd),
            peer,
            input,
            output: OutputQueue::new(),
            lifecycle: Lifecycle::Open,
            recv: RecvState::Idle,
            ops_in_kernel: 0,
            read_paused: false,
            flush_wanted: false,
            dirty: false,
            input_scheduled: false,
        }
    }

    /// Whether the multishot recv should be in the kernel right now.
    pub fn wants_read(&self, input_max_bytes: usize) -> bool {
        self.lifecycle == Lifecycle::Open
            && !self.read_paused
            && self.input.len() < input_max_bytes
            && self.fd.is_some()
    }
}

/// The send in flight: everything the kernel reads from until the send's CQE.
pub(crate) struct SendBuffers {
    pub msghdr: libc::msghdr,
    pub iovecs: Vec<libc::iovec>,
    /// Keeps the bytes behind `iovecs` alive.
    pub segments: Vec<Bytes>,
    pub bytes: usize,
}

pub(crate) struct OutputQueue {
    segments: VecDeque<Bytes>,
    tail: BytesMut,
    /// Bytes in `segments` and `tail` (not in flight).
    queued_bytes: usize,
    /// Boxed so its address stays put while the connection moves inside the slab.
    send: Box<SendBuffers>,
    send_in_flight: bool,
}

impl OutputQueue {
    pub fn new() -> OutputQueue {
        OutputQueue {
            segments: VecDeque::new(),
            tail: BytesMut::new(),
            queued_bytes: 0,
            send: Box::new(SendBuffers {
                // SAFETY: msghdr is plain old data; all-zero is "no name, no control".
                msghdr: unsafe { std::mem::zeroed() },
                iovecs: Vec::new(),
                segments: Vec::new(),
                bytes: 0,
            }),
            send_in_flight: false,
        }
    }

    /// Copies `bytes` into the tail buffer.
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.tail.capacity() - self.tail.len() < bytes.len() {
            self.tail.reserve(bytes.len().max(OUTPUT_TAIL_CHUNK_BYTES));
        }
        self.tail.extend_from_slice(bytes);
        self.queued_bytes += bytes.len();
    }

    /// Queues `bytes` as its own segment (small ones are copied into the tail instead).
    pub fn write_bytes(&mut self, bytes: Bytes) {
        if bytes.len() <= SMALL_SEGMENT_COPY_BYTES_MAX {
            self.write(&bytes);
            return;
        }
        self.seal_tail();
        self.queued_bytes += bytes.len();
        self.segments.push_back(bytes);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push_back(self.tail.split().freeze());
        }
    }

    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn has_queued(&self) -> bool {
        self.queued_bytes > 0
    }

    pub fn send_in_flight(&self) -> bool {
        self.send_in_flight
    }

    /// Queued plus in-flight bytes.
    pub fn pending_bytes(&self) -> usize {
        self.queued_bytes + if self.send_in_flight { self.send.bytes } else { 0 }
    }

    /// Drops queued output (not what is in flight: the kernel still reads it).
    pub fn discard_queued(&mut self) {
        self.segments.clear();
        self.tail.clear();
        self.queued_bytes = 0;
    }

    /// Moves up to `IOV_MAX` queued segments into the send buffers and returns the msghdr to
    /// submit. The pointer stays valid until `complete_send`.
    pub fn start_send(&mut self) -> *const libc::msghdr {
        assert!(!self.send_in_flight && self.has_queued());
        self.seal_tail();
        let send = &mut *self.send;
        send.iovecs.clear();
        send.segments.clear();
        send.bytes = 0;
        while send.segments.len() < IOV_MAX {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            send.iovecs.push(libc::iovec {
                iov_base: segment.as_ptr() as *mut libc::c_void,
                iov_len: segment.len(),
            });
            send.bytes += segment.len();
            send.segments.push(segment);
        }
        self.queued_bytes -= send.bytes;
        send.msghdr.msg_iov = send.iovecs.as_mut_ptr();
        send.msghdr.msg_iovlen = send.iovecs.len() as _;
        self.send_in_flight = true;
        &send.msghdr
    }

    /// The send's CQE arrived with `sent` bytes written: bytes not written go back to the front
    /// of the queue, ahead of anything queued since.
    pub fn complete_send(&mut self, sent: usize) {
        assert!(self.send_in_flight);
        let send = &mut *self.send;
        debug_assert!(sent <= send.bytes);
        let mut skip = sent.min(send.bytes);
        let mut unsent = Vec::new();
        for mut segment in send.segments.drain(..) {
            if skip >= segment.len() {
                skip -= segment.len();
                continue;
            }
            let rest = segment.split_off(skip);
            skip = 0;
            unsent.push(rest);
        }
        for segment in unsent.into_iter().rev() {
            self.queued_bytes += segment.len();
            self.segments.push_front(segment);
        }
        send.iovecs.clear();
        send.msghdr.msg_iov = std::ptr::null_mut();
        send.msghdr.msg_iovlen = 0;
        send.bytes = 0;
        self.send_in_flight = false;
    }

    /// Called when a connection is dropped while its send may still be in the kernel (shard exit
    /// after the cancel wait ran out): leak the buffers instead of freeing them.
    pub fn leak_in_flight(&mut self) {
        if self.send_in_flight {
            let send = std::mem::replace(
                &mut self.send,
                Box::new(SendBuffers {
                    // SAFETY: plain old data.
                    msghdr: unsafe { std::mem::zeroed() },
                    iovecs: Vec::new(),
                    segments: Vec::new(),
                    bytes: 0,
                }),
            );
            std::mem::forget(send);
            self.send_in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(send: &SendBuffers) -> Vec<u8> {
        send.segments.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn short_write_requeues_remainder_in_order() {
        let mut out = OutputQueue::new();
        out.write(b"hello ");
        out.write_bytes(Bytes::from(vec![b'x'; 1000]));
        out.write(b" world");
        assert_eq!(out.queued_bytes(), 1012);
        let _ = out.start_send();
        assert!(out.send_in_flight());
        assert_eq!(out.pending_bytes(), 1012);
        assert_eq!(collect(&out.send).len(), 1012);
        out.write(b"!");
        out.complete_send(10);
        assert_eq!(out.queued_bytes(), 1003);
        let _ = out.start_send();
        let mut expected = vec![b'x'; 996];
        expected.extend_from_slice(b" world!");
        assert_eq!(collect(&out.send), expected);
        out.complete_send(expected.len());
        assert_eq!(out.pending_bytes(), 0);
        assert!(!out.has_queued());
    }

    #[test]
    fn send_takes_at_most_iov_max_segments() {
        let mut out = OutputQueue::new();
        for _ in 0..IOV_MAX + 5 {
            out.write_bytes(Bytes::from(vec![1u8; SMALL_SEGMENT_COPY_BYTES_MAX + 1]));
        }
        let _ = out.start_send();
        assert_eq!(out.send.iovecs.len(), IOV_MAX);
        let bytes = out.send.bytes;
        out.complete_send(bytes);
        assert_eq!(out.queued_bytes(), 5 * (SMALL_SEGMENT_COPY_BYTES_MAX + 1));
    }
}
