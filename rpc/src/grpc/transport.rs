//! The in-memory transport h2 runs on: the shard's ring fills `inbound` and drains `outbound`
//! (through the front in `bins`); h2 sees `AsyncRead`/`AsyncWrite`. Both directions are bounded:
//! the front moves input in only while `inbound` is short, and writes report `Pending` while
//! the bytes not yet taken by the kernel pass `OUTBOUND_BYTES_MAX`.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Input handed to h2 ahead of its reading; the rest waits in the runtime's buffer, which stops
/// reading the socket when full.
pub const INBOUND_BYTES_MAX: usize = 256 * 1024;
/// Output queued for the kernel before h2's writes wait: a client that stops reading stalls
/// its own connection, not the shard.
pub const OUTBOUND_BYTES_MAX: usize = 1024 * 1024;

#[derive(Default)]
struct State {
    inbound: BytesMut,
    /// The peer closed or the socket failed: reads end after `inbound`.
    eof: bool,
    reader: Option<Waker>,
    outbound: BytesMut,
    /// Bytes the runtime still holds for the kernel, as the front last saw it.
    kernel_pending: usize,
    writer: Option<Waker>,
    /// The server asked the connection to drain (GOAWAY).
    drain: bool,
    drain_waker: Option<Waker>,
    /// The connection's task has ended: close the socket once `outbound` is written.
    finished: bool,
    /// Times h2 flushed: it does so after writing every frame it had queued.
    flushes: u64,
    /// This connection's handle, put on `ready` when output appears or the task ends.
    conn: u64,
    ready: Option<Ready>,
    listed: bool,
    /// The client's address, as the runtime reported it.
    peer: Option<SocketAddr>,
    /// Request bytes this connection's calls hold in their decoders (partial messages).
    request_bytes: usize,
}

/// Connections with output to take or a finished task: the front looks at these only.
pub type Ready = Rc<RefCell<Vec<u64>>>;

impl State {
    fn list(&mut self) {
        if !self.listed {
            if let Some(ready) = &self.ready {
                self.listed = true;
                ready.borrow_mut().push(self.conn);
            }
        }
    }
}

/// One connection's transport, shared by the front and the h2 task.
#[derive(Clone, Default)]
pub struct Pipe(Rc<RefCell<State>>);

impl Pipe {
    pub fn new() -> Pipe {
        Pipe::default()
    }

    /// A pipe that reports itself on `ready` (as `conn`) when it has output or its task ends.
    pub fn listed(conn: u64, ready: Ready, peer: Option<SocketAddr>) -> Pipe {
        let pipe = Pipe::default();
        {
            let mut s = pipe.0.borrow_mut();
            s.conn = conn;
            s.ready = Some(ready);
            s.peer = peer;
        }
        pipe
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.0.borrow().peer
    }

    /// A call's decoder went from holding `before` to `after` bytes; returns the connection's
    /// total.
    pub fn account_request_bytes(&self, before: usize, after: usize) -> usize {
        let mut s = self.0.borrow_mut();
        s.request_bytes = (s.request_bytes + after).saturating_sub(before);
        s.request_bytes
    }

    /// Moves bytes from the runtime's input while h2 is short of them. True when any moved.
    pub fn feed(&self, input: &mut BytesMut) -> bool {
        let mut s = self.0.borrow_mut();
        let room = INBOUND_BYTES_MAX.saturating_sub(s.inbound.len());
        let n = room.min(input.len());
        if n == 0 {
            return false;
        }
        let chunk = input.split_to(n);
        if s.inbound.is_empty() {
            s.inbound = chunk;
        } else {
            s.inbound.extend_from_slice(&chunk);
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        true
    }

    pub fn set_eof(&self) {
        let mut s = self.0.borrow_mut();
        s.eof = true;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }

    /// What h2 wrote since the last call.
    pub fn take_output(&self) -> Option<Bytes> {
        let mut s = self.0.borrow_mut();
        s.listed = false;
        (!s.outbound.is_empty()).then(|| s.outbound.split().freeze())
    }

    /// The runtime's view of bytes not yet sent; writes resume once it falls below the cap.
    pub fn set_kernel_pending(&self, bytes: usize) {
        let mut s = self.0.borrow_mut();
        s.kernel_pending = bytes;
        if bytes + s.outbound.len() < OUTBOUND_BYTES_MAX {
            if let Some(w) = s.writer.take() {
                w.wake();
            }
        }
    }

    pub fn start_drain(&self) {
        let mut s = self.0.borrow_mut();
        s.drain = true;
        if let Some(w) = s.drain_waker.take() {
            w.wake();
        }
    }

    /// True once draining was asked for; otherwise remembers who to wake.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> bool {
        let mut s = self.0.borrow_mut();
        if !s.drain {
            s.drain_waker = Some(cx.waker().clone());
        }
        s.drain
    }

    /// Times h2 flushed: a count that moves once frames queued before it are all written.
    pub fn flushes(&self) -> u64 {
        self.0.borrow().flushes
    }

    pub fn finish(&self) {
        let mut s = self.0.borrow_mut();
        s.finished = true;
        s.listed = false;
        s.list();
    }

    pub fn is_finished(&self) -> bool {
        self.0.borrow().finished
    }

    /// The h2 side.
    pub fn io(&self) -> PipeIo {
        PipeIo(self.clone())
    }
}

/// What h2 reads from and writes to.
pub struct PipeIo(Pipe);

impl AsyncRead for PipeIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0 .0.borrow_mut();
        if s.inbound.is_empty() {
            if s.eof {
                return Poll::Ready(Ok(()));
            }
            s.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.remaining().min(s.inbound.len());
        buf.put_slice(&s.inbound.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PipeIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0 .0.borrow_mut();
        if s.eof {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if s.kernel_pending + s.outbound.len() >= OUTBOUND_BYTES_MAX {
            s.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        s.outbound.extend_from_slice(data);
        s.list();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The front hands `outbound` to the runtime after every executor run.
        self.0 .0.borrow_mut().flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    #[test]
    fn feed_is_bounded_and_reads_see_it() {
        let pipe = Pipe::new();
        let mut input = BytesMut::from(&vec![7u8; INBOUND_BYTES_MAX + 10][..]);
        assert!(pipe.feed(&mut input));
        assert_eq!(input.len(), 10);
        assert!(!pipe.feed(&mut input));
        let mut io = pipe.io();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut space = [0u8; 100];
        let mut buf = ReadBuf::new(&mut space);
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_ready());
        assert_eq!(buf.filled().len(), 100);
    }

    #[test]
    fn writes_wait_while_the_kernel_is_behind() {
        let pipe = Pipe::new();
        let mut io = pipe.io();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        pipe.set_kernel_pending(OUTBOUND_BYTES_MAX);
        assert!(Pin::new(&mut io).poll_write(&mut cx, b"x").is_pending());
        pipe.set_kernel_pending(0);
        assert!(matches!(
            Pin::new(&mut io).poll_write(&mut cx, b"x"),
            Poll::Ready(Ok(1))
        ));
        assert_eq!(pipe.take_output().as_deref(), Some(&b"x"[..]));
    }
}
