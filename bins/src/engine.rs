//! The NSQ engine as the runtime sees it: each callback hands the shard's broker a view of the
//! runtime (`IoNet`) and forwards. No protocol logic lives here.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use squall_core::broker::{Broker, Net, ShardMsg};
use squall_core::options::Options;
use squall_uring_net::{ConnId, Detached, Engine, Io, ShardId};

type Msg = ShardMsg<Detached>;

/// One shard's NSQ broker, driven by the uring-net runtime.
pub struct NsqEngine {
    broker: Broker<Detached>,
}

impl NsqEngine {
    pub fn new(options: Options, shard: ShardId, shards: usize) -> NsqEngine {
        NsqEngine {
            broker: Broker::new(options, shard, shards),
        }
    }

    fn with<R>(&mut self, io: &mut Io<Msg>, f: impl FnOnce(&mut Broker<Detached>, &mut IoNet<'_>) -> R) -> R {
        f(&mut self.broker, &mut IoNet { io })
    }
}

/// `core`'s view of the runtime.
pub struct IoNet<'a> {
    io: &'a mut Io<Msg>,
}

fn conn(c: u64) -> ConnId {
    ConnId::from_u64(c)
}

impl Net for IoNet<'_> {
    type Detached = Detached;

    fn shard(&self) -> usize {
        self.io.shard()
    }
    fn shards(&self) -> usize {
        self.io.shards()
    }
    fn now(&self) -> Instant {
        self.io.now()
    }
    fn input(&mut self, c: u64) -> Option<&mut BytesMut> {
        self.io.input(conn(c))
    }
    fn write(&mut self, c: u64, bytes: &[u8]) {
        self.io.write(conn(c), bytes)
    }
    fn write_bytes(&mut self, c: u64, bytes: Bytes) {
        self.io.write_bytes(conn(c), bytes)
    }
    fn flush(&mut self, c: u64) {
        self.io.flush(conn(c))
    }
    fn pending_output(&self, c: u64) -> usize {
        self.io.pending_output(conn(c))
    }
    fn close(&mut self, c: u64) {
        self.io.close(conn(c))
    }
    fn pause_reading(&mut self, c: u64) {
        self.io.pause_reading(conn(c))
    }
    fn resume_reading(&mut self, c: u64) {
        self.io.resume_reading(conn(c))
    }
    fn detach(&mut self, c: u64) {
        self.io.detach(conn(c))
    }
    fn attach(&mut self, detached: Detached) -> u64 {
        self.io.attach(detached).to_u64()
    }
    fn send(&mut self, to: usize, msg: Msg) -> Result<(), Msg> {
        self.io.send(to, msg)
    }
    fn timer_at(&mut self, at: Instant, token: u64) {
        self.io.timer_at(at, token)
    }
    fn fsync(&mut self, fd: std::os::fd::RawFd, token: u64) {
        self.io.fsync(fd, token)
    }
    fn poll_soon(&mut self) {
        self.io.poll_soon()
    }
}

impl Engine for NsqEngine {
    type Msg = Msg;

    fn on_accept(&mut self, io: &mut Io<Msg>, c: ConnId, _listener: usize, peer: Option<SocketAddr>) {
        self.with(io, |b, n| b.on_accept(n, c.to_u64(), peer))
    }
    fn on_input(&mut self, io: &mut Io<Msg>, c: ConnId) {
        self.with(io, |b, n| b.on_input(n, c.to_u64()))
    }
    fn on_drained(&mut self, io: &mut Io<Msg>, c: ConnId) {
        self.with(io, |b, n| b.on_drained(n, c.to_u64()))
    }
    fn on_closed(&mut self, io: &mut Io<Msg>, c: ConnId) {
        self.with(io, |b, n| b.on_closed(n, c.to_u64()))
    }
    fn on_detached(&mut self, io: &mut Io<Msg>, c: ConnId, detached: Detached) {
        self.with(io, |b, n| b.on_detached(n, c.to_u64(), detached))
    }
    fn on_message(&mut self, io: &mut Io<Msg>, from: ShardId, msg: Msg) {
        self.with(io, |b, n| b.on_message(n, from, msg))
    }
    fn on_timer(&mut self, io: &mut Io<Msg>, token: u64) {
        self.with(io, |b, n| b.on_timer(n, token))
    }
    fn on_fsync(&mut self, _io: &mut Io<Msg>, token: u64, result: std::io::Result<()>) {
        self.broker.on_fsync(token, result.map_err(|e| e.to_string()));
    }
    fn on_turn_end(&mut self, io: &mut Io<Msg>) {
        self.with(io, |b, n| b.on_turn_end(n))
    }
    fn on_shutdown(&mut self, io: &mut Io<Msg>) {
        self.with(io, |b, n| b.on_shutdown(n))
    }
}
