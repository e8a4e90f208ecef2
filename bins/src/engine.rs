//! The NSQ engine as the runtime sees it: each callback hands the shard's broker (and, for HTTP
//! connections, the HTTP front) a view of the runtime (`IoNet`) and forwards. No protocol logic
//! lives here.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use squall_core::broker::{Broker, Net, ShardMsg, TopicMeta};
use squall_core::options::Options;
use squall_core::stats::ShardRuntime;
use squall_rpc::nsqd::ApiContext;
use squall_uring_net::{ConnId, Detached, Engine, Io, ShardId};

use crate::grpc_front::{GrpcFront, GRPC_ORIGIN_CONN, GRPC_TIMER_TOKEN};
use crate::grpc_subs::{Msg, Subs, Work};
use crate::http_front::HttpFront;
use crate::lookup_loop::LookupLoop;
use crate::metadata::MetadataWriter;

/// What every shard's engine shares.
#[derive(Clone)]
pub struct Shared {
    pub options: Options,
    pub api: Arc<OnceLock<ApiContext>>,
    pub preload: Arc<Vec<TopicMeta>>,
    pub metadata: Option<MetadataWriter>,
    pub backends: Option<crate::backends::FactoryMaker>,
    /// Registration with nsqlookupd: shards report their topics and channels to it.
    pub lookup: Option<LookupLoop>,
    /// Listener numbers (the NSQ TCP listener is 0), as `Node::start` opened them.
    pub listener_http: Option<usize>,
    pub listener_grpc: Option<usize>,
    /// The node's start, in nanoseconds since the Unix epoch (gRPC `Stats`).
    pub start_time_ns: i64,
}

/// One shard's NSQ broker and its HTTP and gRPC fronts, driven by the uring-net runtime.
pub struct NsqEngine {
    shard: ShardId,
    broker: Broker<Detached>,
    http: HttpFront,
    grpc: GrpcFront,
    /// gRPC subscriptions: consumers this shard owns, and its streams' traffic to their owners.
    subs: Subs,
    shared: Shared,
}

impl NsqEngine {
    pub fn new(shared: Shared, shard: ShardId, shards: usize) -> NsqEngine {
        let mut broker = Broker::new(shared.options.clone(), shard, shards);
        if let Some(make) = &shared.backends {
            broker.set_backend_factory(make());
        }
        let mut http = HttpFront::new(shared.api.clone(), shared.options.max_body_size.max(0) as usize);
        http.set_lookup(shared.lookup.clone());
        let grpc = GrpcFront::new(&shared.options, shared.start_time_ns);
        NsqEngine {
            shard,
            broker,
            http,
            grpc,
            subs: Subs::new(shard, shards),
            shared,
        }
    }

    fn with<R>(
        &mut self,
        io: &mut Io<Msg>,
        f: impl FnOnce(&mut Broker<Detached>, &mut HttpFront, &mut GrpcFront, &mut IoNet<'_>) -> R,
    ) -> R {
        let mut net = IoNet {
            io,
            subs: &mut self.subs,
        };
        let r = f(&mut self.broker, &mut self.http, &mut self.grpc, &mut net);
        settle(&mut self.broker, &mut self.http, &mut self.grpc, &mut net);
        r
    }

    /// Ships gRPC subscriptions' output (once per turn, batched per shard): local streams run
    /// at once, other shards get one mailbox message each.
    fn ship_subscriptions(&mut self, io: &mut Io<Msg>) {
        let hub = self.grpc.hub();
        for _ in 0..SHIP_ROUNDS_MAX {
            if !self.subs.ship(&mut hub.borrow_mut()) {
                break;
            }
            // Streams take their deliveries; their settles reach the broker at once.
            self.with(io, |b, _, g, n| g.run(b, n));
            // What the broker did since its turn end (dispatch after FIN) wants a turn.
            io.poll_soon();
        }
        self.subs.send_batches(io);
    }
}

/// Rounds of "ship output, run streams" per turn end (a settle may free a delivery at once).
const SHIP_ROUNDS_MAX: usize = 4;

/// Everything the broker owes after a callback: answers to front-end requests (which may
/// submit more), and calls for virtual connections.
fn settle(broker: &mut Broker<Detached>, http: &mut HttpFront, grpc: &mut GrpcFront, net: &mut IoNet<'_>) {
    loop {
        let mut busy = false;
        // Answering may submit more (the next pipelined HTTP request, a call's next step);
        // requests this shard owns are answered at once, so go round until none are left.
        while broker.has_responses() {
            busy = true;
            let (to_grpc, to_http): (Vec<_>, Vec<_>) = broker
                .take_responses()
                .into_iter()
                .partition(|(origin, _)| origin.conn == GRPC_ORIGIN_CONN);
            if !to_http.is_empty() {
                http.on_responses(broker, net, to_http);
            }
            if !to_grpc.is_empty() {
                grpc.on_responses(broker, net, to_grpc);
            }
        }
        for work in net.subs.take_work() {
            busy = true;
            match work {
                Work::Accept(c, peer) => broker.on_accept(net, c, peer),
                Work::Read(c) => broker.on_input(net, c),
                Work::Closed(c) => {
                    broker.on_closed(net, c);
                    net.subs.release(c);
                }
            }
        }
        if !busy {
            break;
        }
    }
}

impl Drop for NsqEngine {
    /// The shard has stopped: write every queued, in-flight and deferred message to disk.
    fn drop(&mut self) {
        for e in self.broker.persist_and_close() {
            eprintln!("[nsqd] ERROR: failed to persist queue {e}");
        }
        if let (Some(writer), Some(meta)) = (&self.shared.metadata, self.broker.take_metadata()) {
            writer.update(self.shard, meta);
        }
    }
}

/// `core`'s view of the runtime.
pub struct IoNet<'a> {
    io: &'a mut Io<Msg>,
    /// Virtual connections (gRPC subscriptions) take the connection calls for their handles.
    pub(crate) subs: &'a mut Subs,
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
        if Subs::is_virtual(c) {
            return self.subs.input(c);
        }
        self.io.input(conn(c))
    }
    fn write(&mut self, c: u64, bytes: &[u8]) {
        if Subs::is_virtual(c) {
            return self.subs.write(c, bytes);
        }
        self.io.write(conn(c), bytes)
    }
    fn write_bytes(&mut self, c: u64, bytes: Bytes) {
        if Subs::is_virtual(c) {
            return self.subs.write_bytes(c, bytes);
        }
        self.io.write_bytes(conn(c), bytes)
    }
    fn flush(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            return self.subs.flush(c);
        }
        self.io.flush(conn(c))
    }
    fn pending_output(&self, c: u64) -> usize {
        if Subs::is_virtual(c) {
            return self.subs.pending_output(c);
        }
        self.io.pending_output(conn(c))
    }
    fn close(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            return self.subs.close(c);
        }
        self.io.close(conn(c))
    }
    fn pause_reading(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            return; // the broker reads a virtual input only when told to
        }
        self.io.pause_reading(conn(c))
    }
    fn resume_reading(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            return self.subs.resume_reading(c);
        }
        self.io.resume_reading(conn(c))
    }
    fn detach(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            // A virtual consumer is made on its topic's shard and never migrates.
            debug_assert!(false, "virtual connection {c:#x} asked to detach");
            return self.subs.close(c);
        }
        self.io.detach(conn(c))
    }
    fn attach(&mut self, detached: Detached) -> u64 {
        self.io.attach(detached).to_u64()
    }
    fn send(&mut self, to: usize, msg: ShardMsg<Detached>) -> Result<(), ShardMsg<Detached>> {
        match self.io.send(to, Msg::Broker(msg)) {
            Ok(()) => Ok(()),
            Err(Msg::Broker(msg)) => Err(msg),
            Err(Msg::Subs(_)) => unreachable!("the lane gives back what was sent"),
        }
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

    fn on_start(&mut self, _io: &mut Io<Msg>) {
        let preload = self.shared.preload.clone();
        self.broker.preload(&preload);
    }
    fn on_accept(&mut self, io: &mut Io<Msg>, c: ConnId, listener: usize, peer: Option<SocketAddr>) {
        let c = c.to_u64();
        if Some(listener) == self.shared.listener_http {
            self.http.on_accept(c);
            return;
        }
        if Some(listener) == self.shared.listener_grpc {
            return self.with(io, |b, _, g, n| g.on_accept(b, n, c, peer));
        }
        self.with(io, |b, _, _, n| b.on_accept(n, c, peer))
    }
    fn on_input(&mut self, io: &mut Io<Msg>, c: ConnId) {
        let c = c.to_u64();
        self.with(io, |b, h, g, n| {
            if h.owns(c) {
                h.on_input(b, n, c)
            } else if g.owns(c) {
                g.on_input(b, n, c)
            } else {
                b.on_input(n, c)
            }
        })
    }
    fn on_drained(&mut self, io: &mut Io<Msg>, c: ConnId) {
        let c = c.to_u64();
        self.with(io, |b, _, g, n| {
            if g.owns(c) {
                g.on_drained(b, n, c)
            } else {
                b.on_drained(n, c)
            }
        })
    }
    fn on_closed(&mut self, io: &mut Io<Msg>, c: ConnId) {
        let c = c.to_u64();
        self.with(io, |b, h, g, n| {
            if h.owns(c) {
                h.on_closed(c)
            } else if g.owns(c) {
                g.on_closed(b, n, c)
            } else {
                b.on_closed(n, c)
            }
        })
    }
    fn on_detached(&mut self, io: &mut Io<Msg>, c: ConnId, detached: Detached) {
        self.with(io, |b, _, _, n| b.on_detached(n, c.to_u64(), detached))
    }
    fn on_message(&mut self, io: &mut Io<Msg>, from: ShardId, msg: Msg) {
        match msg {
            Msg::Broker(msg) => self.with(io, |b, _, _, n| b.on_message(n, from, msg)),
            Msg::Subs(events) => {
                let hub = self.grpc.hub();
                for event in events {
                    self.subs.apply(from, event, &mut hub.borrow_mut());
                }
                self.with(io, |b, _, g, n| g.run(b, n))
            }
        }
    }
    fn on_timer(&mut self, io: &mut Io<Msg>, token: u64) {
        if token == GRPC_TIMER_TOKEN {
            return self.with(io, |b, _, g, n| g.on_timer(b, n));
        }
        self.with(io, |b, _, _, n| b.on_timer(n, token))
    }
    fn on_fsync(&mut self, io: &mut Io<Msg>, token: u64, result: std::io::Result<()>) {
        self.with(io, |b, _, _, _| {
            b.on_fsync(token, result.map_err(|e| e.to_string()))
        })
    }
    fn on_turn_end(&mut self, io: &mut Io<Msg>) {
        self.with(io, |b, _, _, n| b.on_turn_end(n));
        self.ship_subscriptions(io);
        let r = io.runtime_stats();
        self.broker.set_runtime_stats(ShardRuntime {
            shard: self.shard,
            connections: r.connections,
            ring_submissions: r.ring_submissions,
            ring_completions: r.ring_completions,
            mailbox_depth: r.mailbox_depth,
            mailbox_full: r.mailbox_full,
        });
        if let Some(writer) = &self.shared.metadata {
            if let Some(meta) = self.broker.take_metadata() {
                writer.update(self.shard, meta);
            }
        }
        if let Some(lookup) = &self.shared.lookup {
            if let Some(registry) = self.broker.take_registry() {
                lookup.update(self.shard, registry);
            }
        }
    }
    fn on_shutdown(&mut self, io: &mut Io<Msg>) {
        self.with(io, |b, h, g, n| {
            h.close_idle(n);
            g.on_shutdown(b, n);
            b.on_shutdown(n)
        })
    }
}
