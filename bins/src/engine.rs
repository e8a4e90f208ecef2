//! The NSQ engine as the runtime sees it: each callback hands the shard's broker (and, for HTTP
//! and gRPC connections, their fronts) a view of the runtime (`IoNet`) and forwards. No protocol
//! logic lives here.
//!
//! Connections that upgraded (TLS, snappy, deflate) or came in on the HTTPS listener have a
//! [`Transport`]: `IoNet` hands the broker its decoded input and gathers the broker's writes into
//! it, encoding them at flush. A transport travels with its connection when it migrates.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use squall_core::broker::{Broker, Net, Peer, ShardMsg, TlsInfo, TopicMeta, Upgrade};
use squall_core::error::{ErrorCode, ProtocolError};
use squall_core::options::Options;
use squall_core::protocol;
use squall_core::stats::ShardRuntime;
use squall_rpc::nsqd::ApiContext;
use squall_uring_net::{ConnId, Detached, Engine, Io, Remote, ShardId};

use crate::auth::AuthClient;
use crate::grpc_front::{GrpcFront, GRPC_ORIGIN_CONN, GRPC_TIMER_TOKEN};
use crate::grpc_subs::{Msg, Subs, Work};
use crate::http_front::HttpFront;
use crate::lookup_loop::LookupLoop;
use crate::metadata::MetadataWriter;
use crate::transport::{Fault, Transport};

/// Decode-then-handle rounds per `on_input` for a connection with a transport: each round
/// decodes up to the input bound, so a few rounds cover everything one turn can read.
const TRANSPORT_ROUNDS_MAX: usize = 16;

/// A connection on its way to another shard, with its transport layers.
pub struct Handoff {
    conn: Detached,
    transport: Option<Box<Transport>>,
}

/// Which listener is which, as `Node::start` numbers them (the NSQ TCP listener is 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct Listeners {
    pub http: Option<usize>,
    pub https: Option<usize>,
    pub grpc: Option<usize>,
    /// Bit `i`: listener `i` is a Unix socket, whose clients have no socket address.
    pub unix: u32,
}

impl Listeners {
    /// How `/stats` and the logs name a client of listener `listener`.
    fn peer(&self, listener: usize, addr: Option<SocketAddr>) -> Peer {
        let unix = u32::try_from(listener)
            .ok()
            .and_then(|i| self.unix.checked_shr(i))
            .is_some_and(|bits| bits & 1 == 1);
        if unix {
            Peer::Unix
        } else {
            Peer::from(addr)
        }
    }
}

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
    /// Runs AUTH queries (`--auth-http-address`).
    pub auth: Option<AuthClient>,
    pub listeners: Listeners,
    /// The node's start, in nanoseconds since the Unix epoch (gRPC `Stats`).
    pub start_time_ns: i64,
    /// The TLS upgrade's and the HTTPS listener's configuration (`--tls-cert` and `--tls-key`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `--tls-required=true` for the plain HTTP listener.
    pub http_tls: crate::http_front::HttpTlsPolicy,
    /// Plaintext a transport decodes ahead of the broker: the runtime's input bound.
    pub plain_in_max_bytes: usize,
}

/// What Go's TLS server writes to a client that sent plain HTTP.
const HTTP_TO_HTTPS_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

fn warn_closing(c: u64, e: &crate::transport::Fault) {
    if !matches!(e, crate::transport::Fault::Ended) {
        crate::log_warn!("client {c}: closing: {e}");
    }
}

/// The shard's transports, by connection.
pub struct Transports {
    slots: Vec<Option<(u64, Box<Transport>)>>,
    /// Connections whose decoded input waits for the broker after `resume_reading`.
    wake: Vec<u64>,
    /// Wire bytes of one encode, reused.
    wire: Vec<u8>,
    tls: Option<Arc<rustls::ServerConfig>>,
    plain_in_max_bytes: usize,
}

impl Transports {
    fn get_mut(&mut self, c: u64) -> Option<&mut Transport> {
        match self.slots.get_mut(conn(c).index()) {
            Some(Some((id, t))) if *id == c => Some(t),
            _ => None,
        }
    }

    fn get(&self, c: u64) -> Option<&Transport> {
        match self.slots.get(conn(c).index()) {
            Some(Some((id, t))) if *id == c => Some(t),
            _ => None,
        }
    }

    fn insert(&mut self, c: u64, t: Box<Transport>) {
        let i = conn(c).index();
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some((c, t));
    }

    fn remove(&mut self, c: u64) -> Option<Box<Transport>> {
        let slot = self.slots.get_mut(conn(c).index())?;
        match slot {
            Some((id, _)) if *id == c => slot.take().map(|(_, t)| t),
            _ => None,
        }
    }

    /// Encodes what `c`'s transport holds and queues it on the connection; a failing layer
    /// closes the connection.
    fn send(&mut self, io: &mut Io<Msg>, c: u64) {
        let Some(t) = self
            .slots
            .get_mut(conn(c).index())
            .and_then(|s| s.as_mut())
            .filter(|(id, _)| *id == c)
        else {
            return;
        };
        let result = t.1.encode(&mut self.wire);
        if !self.wire.is_empty() {
            io.write(conn(c), &self.wire);
            self.wire.clear();
        }
        if let Err(e) = result {
            warn_closing(c, &e);
            io.close(conn(c));
        }
    }

    /// Decodes the raw input read for `c` through its transport; returns the plaintext bytes
    /// added. Handshake messages and alerts rustls owes the peer are sent (the broker's own
    /// output keeps waiting for its flush); a layer that fails closes the connection.
    fn pump(&mut self, io: &mut Io<Msg>, c: u64) -> usize {
        let limit = self.plain_in_max_bytes;
        let Some((_, t)) = self
            .slots
            .get_mut(conn(c).index())
            .and_then(|s| s.as_mut())
            .filter(|(id, _)| *id == c)
        else {
            return 0;
        };
        let Some(raw) = io.input(conn(c)) else { return 0 };
        let handshaking = t.tls_handshaking();
        let decoded = t.decode(raw, limit);
        // A failed handshake still sends its alert.
        let drained = t.drain_tls(&mut self.wire);
        let result = decoded.and_then(|n| drained.map(|()| n));
        let tls_error = match &result {
            Err(Fault::Tls(e)) => Some(e.to_string()),
            Err(Fault::TlsIo(e)) => Some(e.to_string()),
            _ => None,
        };
        if tls_error.is_some() && handshaking && !t.identify_upgrade && t.tls_peer_sent_http() {
            // Go's HTTPS server answers plain HTTP in plain text.
            self.wire.clear();
            self.wire.extend_from_slice(HTTP_TO_HTTPS_ANSWER);
        }
        if let Some(e) = tls_error {
            if handshaking && t.identify_upgrade {
                // nsqd answers a failed upgrade with a plain-text E_IDENTIFY_FAILED frame, after
                // the alert Go's TLS server sends to a peer that spoke TLS (none to one that
                // did not).
                if t.tls_peer_not_tls() {
                    self.wire.clear();
                }
                let err = ProtocolError::new(ErrorCode::IdentifyFailed, format!("IDENTIFY failed tls: {e}"));
                protocol::encode_error(&mut self.wire, &err);
            }
        }
        if !self.wire.is_empty() {
            io.write(conn(c), &self.wire);
            self.wire.clear();
            io.flush(conn(c));
        }
        match result {
            Ok(n) => n,
            Err(e) => {
                warn_closing(c, &e);
                io.close(conn(c));
                0
            }
        }
    }
}

/// One shard's NSQ broker and its HTTP and gRPC fronts, driven by the uring-net runtime.
pub struct NsqEngine {
    shard: ShardId,
    broker: Broker<Handoff>,
    http: HttpFront,
    grpc: GrpcFront,
    /// gRPC subscriptions: consumers this shard owns, and its streams' traffic to their owners.
    subs: Subs,
    shared: Shared,
    /// How the auth client reaches this shard (set in `on_start`).
    remote: Option<Remote<Msg>>,
    transports: Transports,
}

impl NsqEngine {
    pub fn new(shared: Shared, shard: ShardId, shards: usize) -> NsqEngine {
        let mut broker = Broker::new(shared.options.clone(), shard, shards);
        broker.set_log_sink(crate::logging::info);
        if let Some(make) = &shared.backends {
            broker.set_backend_factory(make());
        }
        if let Some(lookup) = &shared.lookup {
            broker.set_lookupd_known(lookup.lookupd_known());
        }
        let mut http = HttpFront::new(shared.api.clone(), shared.options.max_body_size.max(0) as usize);
        http.set_tls_policy(shared.http_tls.clone());
        let transports = Transports {
            slots: Vec::new(),
            wake: Vec::new(),
            wire: Vec::new(),
            tls: shared.tls.clone(),
            plain_in_max_bytes: shared.plain_in_max_bytes,
        };
        let grpc = GrpcFront::new(&shared.options, shared.start_time_ns);
        NsqEngine {
            shard,
            broker,
            http,
            grpc,
            subs: Subs::new(shard, shards),
            shared,
            remote: None,
            transports,
        }
    }

    fn with<R>(
        &mut self,
        io: &mut Io<Msg>,
        f: impl FnOnce(&mut Broker<Handoff>, &mut HttpFront, &mut GrpcFront, &mut IoNet<'_>) -> R,
    ) -> R {
        let mut net = IoNet {
            io,
            subs: &mut self.subs,
            transports: &mut self.transports,
        };
        let r = f(&mut self.broker, &mut self.http, &mut self.grpc, &mut net);
        settle(&mut self.broker, &mut self.http, &mut self.grpc, &mut net);
        // Decoded input that waited while its connection was blocked: the runtime only
        // schedules input it holds itself.
        for c in std::mem::take(&mut net.transports.wake) {
            if self.http.owns(c) {
                self.http.on_input(&mut self.broker, &mut net, c);
            } else {
                self.broker.on_input(&mut net, c);
            }
            settle(&mut self.broker, &mut self.http, &mut self.grpc, &mut net);
        }
        if self.broker.has_auth_requests() {
            let requests = self.broker.take_auth_requests();
            if let (Some(client), Some(remote)) = (&self.shared.auth, &self.remote) {
                for request in requests {
                    client.submit(request, remote.clone());
                }
            }
        }
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
fn settle(broker: &mut Broker<Handoff>, http: &mut HttpFront, grpc: &mut GrpcFront, net: &mut IoNet<'_>) {
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
                Work::Accept(c, peer) => broker.on_accept(net, c, peer.into()),
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
            crate::log_error!("failed to persist queue {e}");
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
    transports: &'a mut Transports,
}

fn conn(c: u64) -> ConnId {
    ConnId::from_u64(c)
}

impl Net for IoNet<'_> {
    type Detached = Handoff;

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
        let raw = self.io.input(conn(c))?;
        match self.transports.get_mut(c) {
            Some(t) => Some(&mut t.plain_in),
            None => Some(raw),
        }
    }
    fn write(&mut self, c: u64, bytes: &[u8]) {
        if Subs::is_virtual(c) {
            return self.subs.write(c, bytes);
        }
        match self.transports.get_mut(c) {
            Some(t) => t.write(bytes),
            None => self.io.write(conn(c), bytes),
        }
    }
    fn write_bytes(&mut self, c: u64, bytes: Bytes) {
        if Subs::is_virtual(c) {
            return self.subs.write_bytes(c, bytes);
        }
        match self.transports.get_mut(c) {
            Some(t) => t.write(&bytes),
            None => self.io.write_bytes(conn(c), bytes),
        }
    }
    fn flush(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            return self.subs.flush(c);
        }
        self.transports.send(self.io, c);
        self.io.flush(conn(c))
    }
    fn pending_output(&self, c: u64) -> usize {
        if Subs::is_virtual(c) {
            return self.subs.pending_output(c);
        }
        let plain = self.transports.get(c).map_or(0, |t| t.pending_plain());
        self.io.pending_output(conn(c)) + plain
    }
    fn close(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            return self.subs.close(c);
        }
        self.transports.send(self.io, c);
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
        self.io.resume_reading(conn(c));
        if self.transports.get(c).is_some_and(|t| !t.plain_in.is_empty()) {
            self.transports.wake.push(c);
        }
    }
    fn detach(&mut self, c: u64) {
        if Subs::is_virtual(c) {
            // A virtual consumer is made on its topic's shard and never migrates.
            debug_assert!(false, "virtual connection {c:#x} asked to detach");
            return self.subs.close(c);
        }
        self.transports.send(self.io, c);
        self.io.detach(conn(c))
    }
    fn attach(&mut self, handoff: Handoff) -> u64 {
        let c = self.io.attach(handoff.conn).to_u64();
        if let Some(t) = handoff.transport {
            self.transports.insert(c, t);
        }
        c
    }
    fn tls_info(&self, c: u64) -> Option<TlsInfo> {
        self.transports.get(c)?.tls_info()
    }
    fn upgrade(&mut self, c: u64, upgrade: Upgrade) {
        let mut ok = Vec::with_capacity(protocol::FRAME_HEADER_BYTES + 2);
        protocol::encode_response(&mut ok, b"OK");
        // The IDENTIFY reply, and each `OK`, goes out through the layers there before it.
        self.transports.send(self.io, c);
        let mut t = self.transports.remove(c).unwrap_or_default();
        let mut result = Ok(());
        if upgrade.tls {
            t.identify_upgrade = true;
            result = match self.transports.tls.clone() {
                Some(config) => t.start_tls(config),
                None => Err(crate::transport::Fault::Tls(rustls::Error::General(
                    "no TLS configuration".to_string(),
                ))),
            };
            t.write(&ok);
            result = result.and_then(|()| t.encode(&mut self.transports.wire));
        }
        if upgrade.snappy {
            t.start_snappy();
            t.write(&ok);
        } else if let Some(level) = upgrade.deflate_level {
            t.start_deflate(level);
            t.write(&ok);
        }
        self.transports.insert(c, t);
        if let Err(e) = result {
            warn_closing(c, &e);
            self.transports.wire.clear();
            self.io.close(conn(c));
            return;
        }
        self.transports.send(self.io, c);
        self.io.flush(conn(c));
        // What the client sent behind IDENTIFY is read through the new layers.
        self.transports.pump(self.io, c);
    }
    fn send(&mut self, to: usize, msg: ShardMsg<Handoff>) -> Result<(), ShardMsg<Handoff>> {
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

    fn on_start(&mut self, io: &mut Io<Msg>) {
        self.remote = Some(io.remote());
        let preload = self.shared.preload.clone();
        self.broker.preload(&preload);
    }
    fn on_accept(&mut self, io: &mut Io<Msg>, c: ConnId, listener: usize, peer: Option<SocketAddr>) {
        let c = c.to_u64();
        let listeners = self.shared.listeners;
        let client = listeners.peer(listener, peer);
        if Some(listener) == listeners.https {
            let mut t = Box::new(Transport::new());
            match self.transports.tls.clone().map(|config| t.start_tls(config)) {
                Some(Ok(())) => {
                    self.transports.insert(c, t);
                    self.http.on_accept(c, true, client);
                }
                _ => io.close(conn(c)),
            }
            return;
        }
        if Some(listener) == listeners.http {
            self.http.on_accept(c, false, client);
            return;
        }
        if Some(listener) == listeners.grpc {
            return self.with(io, |b, _, g, n| g.on_accept(b, n, c, peer));
        }
        self.with(io, |b, _, _, n| b.on_accept(n, c, client))
    }
    fn on_input(&mut self, io: &mut Io<Msg>, c: ConnId) {
        let c = c.to_u64();
        let handle = |b: &mut Broker<Handoff>, h: &mut HttpFront, g: &mut GrpcFront, n: &mut IoNet<'_>| {
            if h.owns(c) {
                h.on_input(b, n, c)
            } else if g.owns(c) {
                g.on_input(b, n, c)
            } else {
                b.on_input(n, c)
            }
        };
        if self.transports.get(c).is_none() {
            return self.with(io, handle);
        }
        for round in 0..TRANSPORT_ROUNDS_MAX {
            let decoded = self.transports.pump(io, c);
            if decoded == 0 && round > 0 {
                break;
            }
            self.with(io, handle);
            if self.transports.get(c).is_none() {
                break;
            }
        }
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
        self.transports.remove(c);
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
        let c = c.to_u64();
        let handoff = Handoff {
            conn: detached,
            transport: self.transports.remove(c),
        };
        self.with(io, |b, _, _, n| b.on_detached(n, c, handoff))
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
    fn on_remote(&mut self, io: &mut Io<Msg>, msg: Msg) {
        if let Msg::Broker(msg) = msg {
            let shard = self.shard;
            self.with(io, |b, _, _, n| b.on_message(n, shard, msg))
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
    fn holds_output(&self) -> bool {
        self.broker.holds_output()
    }
    fn on_idle(&mut self, io: &mut Io<Msg>) {
        self.with(io, |b, _, _, n| b.flush_held(n));
        if self.subs.has_output() {
            // gRPC subscribers' deliveries ship at a turn end: run one before sleeping.
            io.poll_soon();
        }
    }
    fn on_turn_end(&mut self, io: &mut Io<Msg>) {
        match self.http.take_started_waiters() {
            // Starting takes milliseconds: keep turning until the waiters can be served.
            Err(()) => io.poll_soon(),
            Ok(waiters) => {
                for c in waiters {
                    self.with(io, |b, h, _, n| h.on_input(b, n, c));
                }
            }
        }
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
            if let (true, Some(remote)) = (self.broker.has_channel_queries(), &self.remote) {
                lookup.query_channels(self.broker.take_channel_queries(), remote);
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
