//! One shard's broker: the topics it owns, the sessions of the connections it serves, and the
//! outboxes to the other shards.
//!
//! The runtime calls the `on_*` methods (they mirror the runtime's engine callbacks); the broker
//! answers by queueing output and requests through `Net`. Topics live on exactly one shard
//! (`shard_for_topic`); a publish for another shard's topic is forwarded and answered in command
//! order; a consumer moves to its topic's shard when it subscribes.

mod admin;
mod auth;
mod consume;
mod durability;
mod lookup;
mod msg;
mod net;
mod publish;
mod session;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::Buf;
use slab::Slab;

pub use auth::AuthWait;
pub use consume::{CONSUMER_OUTPUT_BYTES_MAX, INPUT_PAUSE_OUTPUT_BYTES};
pub use durability::{AckTo, QueueRef, TopicMeta};
pub use msg::{
    AdminError, AdminOp, Migration, Origin, PubKind, PublishReply, PublishReq, Request, Response, ShardMsg,
};
pub use net::{ConnRef, Net, TlsInfo, Upgrade};
pub use publish::PUBLISH_BATCH_MESSAGES_MAX;
pub use session::{Blocked, Peer, Pending, Session};

use crate::channel::Channel;
use crate::error::{ErrorCode, ProtocolError};
use crate::message::IdGenerator;
use crate::names::Name;
use crate::options::Options;
use crate::protocol::{self, ClientState, Command, DecodeCtx, DecodeError, MAGIC_V2};
use crate::topic::Topic;

/// The shard that owns `topic`: a stable hash (FNV-1a), so every shard and every restart agrees.
pub fn shard_for_topic(topic: &Name, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in topic.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

/// What is waiting to go to one other shard.
struct Outbox<D> {
    publishes: Vec<PublishReq>,
    /// Messages in `publishes`; producers stop when it reaches `PUBLISH_BATCH_MESSAGES_MAX`.
    publish_msgs: usize,
    replies: Vec<PublishReply>,
    /// Migrations, requests and responses, in the order they were queued.
    others: std::collections::VecDeque<ShardMsg<D>>,
    /// Connections whose input waits for room in `publishes`.
    waiters: Vec<u64>,
}

impl<D> Default for Outbox<D> {
    fn default() -> Self {
        Outbox {
            publishes: Vec::new(),
            publish_msgs: 0,
            replies: Vec::new(),
            others: std::collections::VecDeque::new(),
            waiters: Vec::new(),
        }
    }
}

pub struct Broker<D> {
    opts: Options,
    shard: usize,
    shards: usize,
    ids: IdGenerator,
    topics: Slab<Topic>,
    topic_index: HashMap<Name, usize>,
    channels: Slab<Channel>,
    /// Indexed by the low 32 bits of the connection handle (the runtime's slab index).
    sessions: Vec<Option<Session>>,
    /// Channels that may be able to deliver; drained once per turn.
    dirty: Vec<usize>,
    /// Channels whose deferred messages came back from disk and need a scan timer.
    restored: Vec<usize>,
    /// Connections with deliveries held for their flush timer, sent when the shard goes idle
    /// under `output_buffer_idle_flush` (`flush_held`). One entry per session at most, plus
    /// entries of closed sessions, pruned once they outnumber the session slots.
    held: Vec<u64>,
    /// Topics with a backlog to move into their channels (`drain_topics`).
    draining: Vec<usize>,
    /// (due, channel) for in-flight timeouts and deferred releases; entries may be stale.
    scan: BinaryHeap<Reverse<(Instant, usize)>>,
    scan_timer: Option<Instant>,
    /// Per channel slab key: the due time it is registered under in `scan`.
    scan_at: HashMap<usize, Instant>,
    outboxes: Vec<Outbox<D>>,
    /// Answers for front-end requests asked on this shard (`take_responses`).
    responses: Vec<(Origin, Response)>,
    /// Stats requests still waiting for other shards' parts.
    gathers: admin::Gathers,
    /// Scratch buffer for encoding disk records.
    scratch: Vec<u8>,
    /// The last disk write error, until a later write succeeds (`/ping`, `/stats` health).
    health_error: Option<String>,
    /// `--sync-every=1`: publishes are answered once durable.
    durable_acks: bool,
    durability: durability::Durability,
    /// Local TCP publishes made durable, to answer at the end of the turn.
    durable_tcp_acks: Vec<(u64, u64, Option<Box<ProtocolError>>)>,
    /// Topics or channels were created, deleted, paused or unpaused since `take_metadata`.
    metadata_changed: bool,
    /// Topics or channels were created or deleted since `take_registry`.
    registry_changed: bool,
    next_client_id: u64,
    timer_seq: u32,
    rng: u64,
    shutting_down: bool,
    /// The runtime's counters for this shard, as last set by `set_runtime_stats`.
    runtime: crate::stats::ShardRuntime,
    /// Auth server queries for the engine to run (`take_auth_requests`).
    auth_requests: Vec<crate::auth::AuthRequest>,
    next_auth_ticket: u64,
    /// Where nsqd's INFO lines about topics, channels and clients go (`set_log_sink`).
    log: Option<LogSink>,
    /// Set while some nsqlookupd's HTTP address is known (`set_lookupd_known`): new topics
    /// then wait for the channels it knows before they start.
    lookupd_known: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Queries of topics created since `take_channel_queries`; at most one per waiting topic.
    channel_queries: Vec<crate::topic::ChannelsQuery>,
    next_channels_ticket: u64,
}

/// Receives the broker's INFO lines (nsqd's wording: `TOPIC(t): created`, `TCP: new client(..)`,
/// ...). A plain function: the runtime's logger, which checks its level before formatting.
pub type LogSink = fn(std::fmt::Arguments<'_>);

/// Marks a connection handle that no socket carries: a consumer whose deliveries and commands
/// travel through another front end (a gRPC subscription served on this, its topic's, shard).
/// The runtime's connection indexes stay far below it; the front end that makes such handles
/// routes the `Net` calls for them.
pub const VIRTUAL_CONN_BIT: u64 = 1 << 31;

/// The session slot of a connection: runtime and virtual connections take turns, so both kinds
/// stay dense.
fn conn_index(conn: u64) -> usize {
    let index = conn & 0x7fff_ffff;
    (2 * index + u64::from(conn & VIRTUAL_CONN_BIT != 0)) as usize
}

impl<D: Send + 'static> Broker<D> {
    pub fn new(opts: Options, shard: usize, shards: usize) -> Broker<D> {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Broker {
            ids: IdGenerator::new(opts.node_id, shard, unix_ms),
            opts,
            shard,
            shards,
            topics: Slab::new(),
            topic_index: HashMap::new(),
            channels: Slab::new(),
            sessions: Vec::new(),
            dirty: Vec::new(),
            draining: Vec::new(),
            restored: Vec::new(),
            held: Vec::new(),
            scan: BinaryHeap::new(),
            scan_timer: None,
            scan_at: HashMap::new(),
            outboxes: (0..shards).map(|_| Outbox::default()).collect(),
            responses: Vec::new(),
            gathers: HashMap::new(),
            scratch: Vec::new(),
            health_error: None,
            durable_acks: false,
            durability: durability::Durability::default(),
            durable_tcp_acks: Vec::new(),
            metadata_changed: false,
            registry_changed: false,
            next_client_id: 0,
            timer_seq: 0,
            rng: 0x2545_f491_4f6c_dd1d ^ (shard as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            shutting_down: false,
            runtime: Default::default(),
            auth_requests: Vec::new(),
            next_auth_ticket: 0,
            log: None,
            lookupd_known: None,
            channel_queries: Vec::new(),
            next_channels_ticket: 0,
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    // ---- read-only views used by tests and, later, by stats ----

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        let name = Name::new(name.as_bytes())?;
        self.topic_index.get(&name).map(|&k| &self.topics[k])
    }

    pub fn channel(&self, topic: &str, channel: &str) -> Option<&Channel> {
        let t = self.topic(topic)?;
        t.channels
            .iter()
            .map(|&k| &self.channels[k])
            .find(|c| c.name.as_str() == channel)
    }

    pub fn session(&self, conn: u64) -> Option<&Session> {
        self.sessions
            .get(conn_index(conn))?
            .as_ref()
            .filter(|s| s.conn == conn)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.iter().filter(|s| s.is_some()).count()
    }

    fn session_mut(&mut self, conn: u64) -> Option<&mut Session> {
        self.sessions
            .get_mut(conn_index(conn))?
            .as_mut()
            .filter(|s| s.conn == conn)
    }

    fn insert_session(&mut self, session: Session) {
        let idx = conn_index(session.conn);
        if self.sessions.len() <= idx {
            self.sessions.resize_with(idx + 1, || None);
        }
        // The runtime ends a connection (on_closed / on_detached) before it reuses the slot.
        debug_assert!(self.sessions[idx].is_none(), "session slot {idx} still held");
        self.sessions[idx] = Some(session);
    }

    fn take_session(&mut self, conn: u64) -> Option<Session> {
        let slot = self.sessions.get_mut(conn_index(conn))?;
        if slot.as_ref().is_some_and(|s| s.conn == conn) {
            slot.take()
        } else {
            None
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: sampling needs uniformity, not unpredictability.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    // ---- runtime callbacks ----

    pub fn on_accept<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, peer: Peer) {
        if self.shutting_down {
            net.close(conn);
            return;
        }
        self.next_client_id += 1;
        let client_id = (self.next_client_id - 1) * self.shards as u64 + self.shard as u64 + 1;
        let mut session = Session::new(conn, client_id, net.now(), &self.opts);
        session.remote_address = peer.to_string();
        if let Peer::Tcp(addr) = peer {
            // Before IDENTIFY, nsqd reports the remote host as the client's id and hostname.
            session.client_name = addr.ip().to_string();
            session.hostname = addr.ip().to_string();
        }
        self.log(format_args!("TCP: new client({})", session.remote_address));
        self.insert_session(session);
        self.on_input(net, conn);
    }

    pub fn on_input<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        self.process_input(net, conn);
    }

    pub fn on_drained<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        let Some(s) = self.session_mut(conn) else { return };
        if s.blocked == Some(Blocked::Output) {
            s.blocked = None;
            // Input left unread is decoded again once reading resumes.
            net.resume_reading(conn);
        }
        if let Some(ch) = s.channel {
            self.mark_dirty(ch);
        }
    }

    pub fn on_closed<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        let Some(session) = self.take_session(conn) else {
            return;
        };
        if conn & VIRTUAL_CONN_BIT == 0 {
            self.log(format_args!(
                "PROTOCOL(V2): [{}] exiting ioloop",
                session.remote_address
            ));
        }
        if let Some(ch) = session.channel {
            self.remove_consumer(net, ch, conn);
        }
    }

    pub fn on_detached<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, detached: D) {
        let Some(mut session) = self.take_session(conn) else {
            return;
        };
        let Some((topic, channel)) = session.pending_sub.take() else {
            // Only SUB detaches a connection.
            debug_assert!(false, "detached without a pending SUB");
            return;
        };
        let owner = shard_for_topic(&topic, self.shards);
        session.blocked = None;
        let migration = Box::new(Migration {
            detached,
            session,
            topic,
            channel,
        });
        self.outboxes[owner]
            .others
            .push_back(ShardMsg::Migrate(migration));
        self.flush_outboxes(net);
    }

    pub fn on_message<N: Net<Detached = D>>(&mut self, net: &mut N, from: usize, msg: ShardMsg<D>) {
        match msg {
            ShardMsg::Publish(reqs) => self.apply_forwarded(net, from, reqs),
            ShardMsg::PublishReplies(replies) => {
                for reply in replies {
                    self.complete_publish(net, reply.conn, reply.seq, reply.error);
                }
            }
            ShardMsg::Migrate(m) => self.adopt(net, *m),
            ShardMsg::Request(origin, req) => self.serve_remote(net, from, origin, *req),
            ShardMsg::Response(origin, resp) => self.gather(origin, *resp),
            ShardMsg::Auth(reply) => self.on_auth_reply(net, *reply),
            ShardMsg::Channels(found) => self.start_topic(*found),
        }
    }

    pub fn on_timer<N: Net<Detached = D>>(&mut self, net: &mut N, token: u64) {
        self.fire_timer(net, token);
    }

    pub fn on_turn_end<N: Net<Detached = D>>(&mut self, net: &mut N) {
        for ch in std::mem::take(&mut self.restored) {
            if let Some(due) = self.channels.get(ch).and_then(|c| c.next_deadline()) {
                self.schedule_scan(net, ch, due);
            }
        }
        self.drain_topics(net);
        self.dispatch_dirty(net);
        self.run_syncs(net);
        self.answer_durable_tcp(net);
        self.flush_outboxes(net);
    }

    /// Sends nsqd's INFO lines about topics, channels and clients to `sink`.
    pub fn set_log_sink(&mut self, sink: LogSink) {
        self.log = Some(sink);
    }

    pub(super) fn log(&self, args: std::fmt::Arguments<'_>) {
        if let Some(sink) = self.log {
            sink(args);
        }
    }

    /// Whether `flush_held` has deliveries to send (only under `output_buffer_idle_flush`).
    pub fn holds_output(&self) -> bool {
        !self.held.is_empty()
    }

    /// The shard is idle: deliveries held for their flush timer go out now, since nothing else
    /// in this burst would join them. The timer stays armed and finds nothing to do.
    pub fn flush_held<N: Net<Detached = D>>(&mut self, net: &mut N) {
        while let Some(conn) = self.held.pop() {
            let Some(s) = self.session_mut(conn) else { continue };
            s.held = false;
            if s.flush_armed != 0 {
                s.flush_armed = 0;
                net.flush(conn);
            }
        }
    }

    pub fn on_shutdown<N: Net<Detached = D>>(&mut self, net: &mut N) {
        self.shutting_down = true;
        let conns: Vec<(u64, bool)> = self
            .sessions
            .iter()
            .flatten()
            .map(|s| (s.conn, s.state == ClientState::Subscribed))
            .collect();
        for (conn, subscribed) in conns {
            if subscribed {
                self.write_response(net, conn, b"CLOSE_WAIT");
            }
            if let Some(s) = self.session_mut(conn) {
                s.blocked = Some(Blocked::Closing);
            }
            net.close(conn);
        }
    }

    // ---- input ----

    fn process_input<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        loop {
            let Some(session) = self.session_mut(conn) else {
                return;
            };
            if session.blocked.is_some() {
                return;
            }
            // A consumer's output is bounded by its deliveries' own cap, and its FINs must keep
            // flowing while a large message is written: only other connections pause.
            if session.state != ClientState::Subscribed
                && net.pending_output(conn) >= consume::INPUT_PAUSE_OUTPUT_BYTES
            {
                session.blocked = Some(Blocked::Output);
                net.pause_reading(conn);
                return;
            }
            let magic_done = session.magic_done;
            let Some(input) = net.input(conn) else { return };
            if !magic_done {
                if input.len() < MAGIC_V2.len() {
                    return;
                }
                let magic = String::from_utf8_lossy(&input[..4]).into_owned();
                let addr = &self.session(conn).expect("checked above").remote_address;
                self.log(format_args!("CLIENT({addr}): desired protocol magic '{magic}'"));
                let Some(input) = net.input(conn) else { return };
                if &input[..4] != MAGIC_V2 {
                    let err = ProtocolError::new(ErrorCode::BadProtocol, "");
                    self.fail(net, conn, &err);
                    return;
                }
                input.advance(4);
                let now = net.now();
                if let Some(s) = self.session_mut(conn) {
                    s.magic_done = true;
                    s.last_read = now;
                }
                self.arm_heartbeat(net, conn);
                self.arm_read_deadline(net, conn);
                continue;
            }
            let session = self.session(conn).expect("checked above");
            let ctx = DecodeCtx {
                state: session.state,
                heartbeats_disabled: session.heartbeats_disabled(),
                tls_required_unmet: self.opts.tls_required && !session.tls,
                options: &self.opts,
            };
            let decoded = protocol::decode(input, &ctx);
            let is_publish = matches!(
                decoded,
                Ok(Some((
                    Command::Pub { .. } | Command::Mpub { .. } | Command::Dpub { .. },
                    _
                )))
            );
            if !is_publish && !matches!(decoded, Ok(None)) && !session.pending.is_empty() {
                // Anything but a publish may answer (or fail) at once, and answers go out in
                // command order: wait for the publish answers still owed. The command stays in
                // the input and is decoded again then.
                if let Some(s) = self.session_mut(conn) {
                    s.blocked = Some(Blocked::AwaitingReplies);
                }
                return;
            }
            match decoded {
                Ok(None) => return,
                Ok(Some((cmd, len))) => {
                    if !self.execute(net, conn, cmd, len) {
                        return;
                    }
                }
                Err(DecodeError::Close) => {
                    self.close(net, conn);
                    return;
                }
                Err(DecodeError::Protocol(err)) => {
                    self.fail(net, conn, &err);
                    if err.is_fatal() {
                        return;
                    }
                }
            }
        }
    }

    /// Runs one decoded command of `len` bytes still at the front of the input. Returns false
    /// when input processing must stop (blocked, closing).
    fn execute<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, cmd: Command, len: usize) -> bool {
        let now = net.now();
        if let Some(s) = self.session_mut(conn) {
            s.last_read = now;
        }
        if self.opts.auth_enabled {
            let target = match &cmd {
                Command::Pub { topic, .. } => Some(("PUB", topic, None)),
                Command::Mpub { topic, .. } => Some(("MPUB", topic, None)),
                Command::Dpub { topic, .. } => Some(("DPUB", topic, None)),
                Command::Sub { topic, channel } => Some(("SUB", topic, Some(channel))),
                _ => None,
            };
            if let Some((name, topic, channel)) = target {
                match self.check_auth(conn, name, topic, channel, now) {
                    auth::Verdict::Allowed => {}
                    auth::Verdict::Waiting => return false,
                    // A publish answers in command order; SUB has no answers owed before it.
                    auth::Verdict::Denied(err) if channel.is_none() => {
                        return self.deny_publish(net, conn, len, err)
                    }
                    auth::Verdict::Denied(err) => {
                        self.fail(net, conn, &err);
                        return false;
                    }
                }
            }
        }
        match cmd {
            Command::Pub { topic, body } => self.publish_cmd(
                net,
                conn,
                PubKind::Pub,
                topic,
                0,
                std::slice::from_ref(&body),
                len,
            ),
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => self.publish_cmd(
                net,
                conn,
                PubKind::Dpub,
                topic,
                defer_ms,
                std::slice::from_ref(&body),
                len,
            ),
            Command::Mpub { topic, bodies } => {
                self.publish_cmd(net, conn, PubKind::Mpub, topic, 0, &bodies, len)
            }
            Command::Auth { secret } => {
                let Some(input) = net.input(conn) else {
                    return false;
                };
                let secret = input[secret].to_vec();
                input.advance(len);
                self.auth_cmd(net, conn, secret)
            }
            other => {
                if let Some(input) = net.input(conn) {
                    input.advance(len);
                }
                self.execute_simple(net, conn, other)
            }
        }
    }

    fn execute_simple<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, cmd: Command) -> bool {
        match cmd {
            Command::Nop => true,
            Command::Identify(identify) => self.identify(net, conn, &identify),
            Command::Sub { topic, channel } => self.sub(net, conn, topic, channel),
            Command::Rdy { count } => {
                self.rdy(conn, count);
                true
            }
            Command::Fin { id } => self.fin(net, conn, id),
            Command::Req { id, timeout_ms } => self.req(net, conn, id, timeout_ms),
            Command::Touch { id } => self.touch(net, conn, id),
            Command::Cls => self.cls(net, conn),
            Command::Pub { .. } | Command::Mpub { .. } | Command::Dpub { .. } | Command::Auth { .. } => {
                unreachable!("handled by execute")
            }
        }
    }

    fn identify<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, req: &protocol::Identify) -> bool {
        let opts = &self.opts;
        let snappy = req.snappy && opts.snappy;
        let deflate = req.deflate && opts.deflate;
        let deflate_level = if deflate && req.deflate_level > 0 {
            req.deflate_level
        } else {
            6
        };
        let deflate_level = deflate_level.min(opts.max_deflate_level);
        let reply_base = protocol::IdentifyReply {
            max_rdy_count: opts.max_rdy_count,
            version: crate::NSQD_VERSION.to_string(),
            max_msg_timeout: opts.max_msg_timeout_ms,
            msg_timeout: 0,
            tls_v1: req.tls_v1 && opts.tls_enabled,
            deflate,
            deflate_level,
            max_deflate_level: opts.max_deflate_level,
            snappy,
            sample_rate: 0,
            auth_required: opts.auth_enabled,
            output_buffer_size: 0,
            output_buffer_timeout: 0,
            topology_region: opts.topology_region.clone(),
            topology_zone: opts.topology_zone.clone(),
        };
        let log = self.log;
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        if let Some(sink) = log {
            sink(format_args!(
                "[{}] IDENTIFY: {}",
                s.remote_address,
                identify_go_format(req)
            ));
        }
        let first = !s.identified;
        s.identified = true;
        s.client_name = req.client_id.clone();
        s.hostname = req.hostname.clone();
        s.user_agent = req.user_agent.clone();
        s.topology_region = req.topology_region.clone();
        s.topology_zone = req.topology_zone.clone();
        // nsqd's setters: -1 disables, 0 leaves the current value (the default, or what an
        // earlier IDENTIFY set), anything else (already range-checked) replaces it.
        match req.heartbeat_interval_ms {
            0 => {}
            v => s.heartbeat_interval_ms = v,
        }
        match req.output_buffer_timeout_ms {
            -1 => s.output_buffer_timeout_ms = 0,
            0 => {}
            v => s.output_buffer_timeout_ms = v,
        }
        match req.output_buffer_size {
            -1 => {
                s.output_buffer_size = 1;
                s.output_buffer_timeout_ms = 0;
            }
            0 => {}
            v => s.output_buffer_size = v,
        }
        s.sample_rate = req.sample_rate;
        if req.msg_timeout_ms != 0 {
            s.msg_timeout_ms = req.msg_timeout_ms;
        }
        if first {
            // nsqd restarts the heartbeat ticker on the first IDENTIFY only.
            self.arm_heartbeat(net, conn);
        }
        self.arm_read_deadline(net, conn);
        if !req.feature_negotiation {
            // nsqd answers OK before it looks at compression: nothing is upgraded.
            self.write_response(net, conn, b"OK");
            return true;
        }
        if snappy && deflate {
            let err = ProtocolError::new(
                ErrorCode::IdentifyFailed,
                "cannot enable both deflate and snappy compression",
            );
            self.fail(net, conn, &err);
            return false;
        }
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        let reply = protocol::IdentifyReply {
            msg_timeout: s.msg_timeout_ms,
            sample_rate: s.sample_rate,
            output_buffer_size: s.output_buffer_size,
            output_buffer_timeout: s.output_buffer_timeout_ms,
            ..reply_base
        };
        // A layer already on is not stacked a second time by a later IDENTIFY.
        let compressed = s.snappy || s.deflate;
        let upgrade = Upgrade {
            tls: reply.tls_v1 && !s.tls && !compressed,
            snappy: snappy && !compressed,
            deflate_level: (deflate && !compressed).then_some(deflate_level.clamp(1, 9) as u32),
        };
        s.tls |= upgrade.tls;
        s.snappy |= upgrade.snappy;
        s.deflate |= upgrade.deflate_level.is_some();
        let addr = s.remote_address.clone();
        if upgrade.tls {
            self.log(format_args!("PROTOCOL(V2): [{addr}] upgrading connection to TLS"));
        }
        if upgrade.snappy {
            self.log(format_args!(
                "PROTOCOL(V2): [{addr}] upgrading connection to snappy"
            ));
        }
        if let Some(level) = upgrade.deflate_level {
            self.log(format_args!(
                "PROTOCOL(V2): [{addr}] upgrading connection to deflate (level {level})"
            ));
        }
        let json = protocol::identify_reply_json(&reply);
        self.write_response(net, conn, &json);
        if !upgrade.is_empty() {
            net.upgrade(conn, upgrade);
        }
        true
    }

    // ---- output helpers ----

    fn write_response<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, data: &[u8]) {
        let mut frame = Vec::with_capacity(protocol::FRAME_HEADER_BYTES + data.len());
        protocol::encode_response(&mut frame, data);
        net.write(conn, &frame);
        net.flush(conn);
    }

    /// Writes an error frame; a fatal error closes the connection after it.
    fn fail<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, err: &ProtocolError) {
        let mut frame = Vec::new();
        protocol::encode_error(&mut frame, err);
        net.write(conn, &frame);
        net.flush(conn);
        if err.is_fatal() {
            self.close(net, conn);
        }
    }

    fn close<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        if let Some(s) = self.session_mut(conn) {
            s.blocked = Some(Blocked::Closing);
        }
        net.close(conn);
    }

    fn mark_dirty(&mut self, ch: usize) {
        if let Some(c) = self.channels.get_mut(ch) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(ch);
            }
        }
    }

    fn next_timer_seq(&mut self) -> u32 {
        self.timer_seq = self.timer_seq.wrapping_add(1).max(1);
        self.timer_seq
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

/// IDENTIFY's fields the way nsqd logs them (Go's `%+v` of its `identifyDataV2`).
fn identify_go_format(r: &protocol::Identify) -> String {
    format!(
        "{{ClientID:{} Hostname:{} HeartbeatInterval:{} OutputBufferSize:{} OutputBufferTimeout:{} \
         FeatureNegotiation:{} TLSv1:{} Deflate:{} DeflateLevel:{} Snappy:{} SampleRate:{} \
         UserAgent:{} MsgTimeout:{}}}",
        r.client_id,
        r.hostname,
        r.heartbeat_interval_ms,
        r.output_buffer_size,
        r.output_buffer_timeout_ms,
        r.feature_negotiation,
        r.tls_v1,
        r.deflate,
        r.deflate_level,
        r.snappy,
        r.sample_rate,
        r.user_agent,
        r.msg_timeout_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_and_runtime_connections_take_different_slots() {
        let runtime = (9u64 << 32) | 5;
        let virtual_conn = (9u64 << 32) | VIRTUAL_CONN_BIT | 5;
        assert_ne!(conn_index(runtime), conn_index(virtual_conn));
        assert_eq!(conn_index(runtime), 10);
        assert_eq!(conn_index(virtual_conn), 11);
        assert_eq!(
            conn_index(VIRTUAL_CONN_BIT),
            1,
            "dense: the first virtual slot is 1"
        );
    }
}
