//! What the broker needs from the runtime that carries its bytes.
//!
//! The broker never touches a socket: it reads a connection's buffered input, queues output and
//! asks for flushes, closes, migrations, timers and cross-shard sends through this trait. The
//! runtime adapter in `bins` implements it over `uring-net`; tests implement it in memory.

use std::time::Instant;

use bytes::BytesMut;

use super::ShardMsg;

/// A connection handle as the runtime gives it: unique on its shard while the connection lives.
pub type ConnRef = u64;

/// The transport layers IDENTIFY negotiated. The runtime applies them in nsqd's order right
/// after the IDENTIFY reply it has queued: TLS, then snappy or deflate (never both), answering
/// each with a response frame `OK` that travels through the layer just added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upgrade {
    pub tls: bool,
    pub snappy: bool,
    /// The raw DEFLATE level, when deflate was negotiated.
    pub deflate_level: Option<u32>,
}

impl Upgrade {
    pub fn is_empty(&self) -> bool {
        !self.tls && !self.snappy && self.deflate_level.is_none()
    }
}

/// A TLS session as `/stats` describes it (nsqd's names for versions and cipher suites).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher_suite: String,
    pub negotiated_protocol: String,
    pub negotiated_protocol_is_mutual: bool,
    /// Subject CN of the client's certificate (empty without one): AUTH's `common_name`.
    pub common_name: String,
}

pub trait Net {
    /// A connection lifted off one shard's runtime, ready to be adopted by another.
    type Detached: Send + 'static;

    fn shard(&self) -> usize;
    fn shards(&self) -> usize;
    /// The runtime's clock, read once per loop turn.
    fn now(&self) -> Instant;
    /// The connection's unread input; `None` once it is gone.
    fn input(&mut self, conn: ConnRef) -> Option<&mut BytesMut>;
    fn write(&mut self, conn: ConnRef, bytes: &[u8]);
    fn write_bytes(&mut self, conn: ConnRef, bytes: bytes::Bytes);
    /// Send what is queued for `conn` at the end of this turn.
    fn flush(&mut self, conn: ConnRef);
    /// Bytes queued or being written, not yet handed to the kernel.
    fn pending_output(&self, conn: ConnRef) -> usize;
    /// Flush what is queued, then close. The runtime reports the close later.
    fn close(&mut self, conn: ConnRef);
    fn pause_reading(&mut self, conn: ConnRef);
    fn resume_reading(&mut self, conn: ConnRef);
    /// Flush, stop reading and hand the connection back through `Broker::on_detached`.
    fn detach(&mut self, conn: ConnRef);
    fn attach(&mut self, detached: Self::Detached) -> ConnRef;
    /// Bounded: gives the message back when the lane to `to` is full.
    fn send(&mut self, to: usize, msg: ShardMsg<Self::Detached>) -> Result<(), ShardMsg<Self::Detached>>;
    fn timer_at(&mut self, at: Instant, token: u64);
    /// fsyncs `fd` through the runtime; `Broker::on_fsync(token, ..)` follows.
    fn fsync(&mut self, fd: std::os::fd::RawFd, token: u64);
    /// Wraps the connection in the negotiated layers (see [`Upgrade`]). Input not yet consumed
    /// is read through the new layers; a layer that fails (a bad TLS handshake, a corrupt
    /// compressed stream) closes the connection.
    fn upgrade(&mut self, conn: ConnRef, upgrade: Upgrade);
    /// The connection's TLS session; `None` when it has none (a runtime without TLS never has).
    fn tls_info(&self, _conn: ConnRef) -> Option<TlsInfo> {
        None
    }
    /// Do not sleep at the end of this turn: work is waiting for room in a mailbox.
    fn poll_soon(&mut self);
}
