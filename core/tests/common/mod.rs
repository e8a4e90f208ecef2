//! An in-memory runtime for `Broker`: a fake `Net` per shard, a manual clock, timers fired in
//! deadline order, bounded mailboxes between shards, detach/attach of connections, and a client
//! end that parses the frames the broker flushed.
//!
//! A turn follows uring-net's phases: closes reported → detaches reported → input → drained →
//! mailbox messages → `on_turn_end` → flush. `Cluster::settle` runs turns on every shard until
//! none does any work; `Cluster::advance` moves the clock, firing each due timer in deadline order
//! and settling after each.

// Each test binary uses part of the harness.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use squall_core::broker::{shard_for_topic, Broker, Net, Peer, ShardMsg};
use squall_core::names::Name;
use squall_core::options::Options;

/// Consecutive turns `settle` runs for `poll_soon` alone before it calls the cluster idle.
const POLL_SOON_IDLE_TURNS_MAX: usize = 64;

/// A connection lifted off one shard: the unread input and the client socket it belongs to.
#[derive(Debug)]
pub struct Detached {
    pub input: BytesMut,
    socket: usize,
}

/// The runtime's side of one connection.
struct Conn {
    id: u64,
    socket: usize,
    input: BytesMut,
    /// Written and not yet handed to the "kernel" by a flush.
    queued: Vec<u8>,
    flush_wanted: bool,
    read_paused: bool,
    closing: bool,
    detaching: bool,
    /// Bytes `pending_output` reports on top of `queued`: a client that does not read.
    stalled_bytes: usize,
    /// Flushed while stalled: the "kernel" has not taken them yet.
    stuck: Vec<u8>,
    /// Waiting for `on_input` this turn.
    input_scheduled: bool,
}

impl Conn {
    fn readable(&self) -> bool {
        !self.read_paused && !self.closing && !self.detaching
    }
}

/// The client's end of a connection.
#[derive(Debug, Default)]
pub struct Socket {
    /// Sent by the client, not yet read by the runtime (the kernel's receive buffer).
    unread: Vec<u8>,
    /// Everything the broker flushed to this client (since the last `take_bytes_into`).
    received: Vec<u8>,
    read_pos: usize,
    closed: bool,
    /// Flushes that carried at least one byte.
    pub flushes: usize,
}

pub struct FakeNet {
    shard: usize,
    shards: usize,
    now: Instant,
    slots: Vec<Option<Conn>>,
    generation: u32,
    /// Recorded `timer_at` calls, fired by `Cluster::advance`.
    timers: Vec<(Instant, u64)>,
    /// Outgoing lanes, indexed by destination shard.
    mailboxes: Vec<Vec<ShardMsg<Detached>>>,
    pub mailbox_cap: usize,
    /// Flushed bytes not yet copied to the client sockets.
    sent: Vec<(usize, Vec<u8>)>,
    /// Connections whose requested close has completed; `on_closed` follows next turn.
    closed: Vec<(u64, usize)>,
    drained: Vec<u64>,
    pub pause_calls: usize,
    pub resume_calls: usize,
    pub poll_soon_calls: usize,
    pub send_refusals: usize,
    /// fsyncs asked for and not yet completed (`Cluster::turn` completes them unless held).
    pub fsyncs: Vec<(std::os::fd::RawFd, u64)>,
    pub hold_fsyncs: bool,
    /// `upgrade` calls, in order. The fake has no layers: it answers each with a plain `OK`.
    pub upgrades: Vec<(u64, squall_core::broker::Upgrade)>,
}

impl FakeNet {
    fn new(shard: usize, shards: usize, now: Instant) -> FakeNet {
        FakeNet {
            shard,
            shards,
            now,
            slots: Vec::new(),
            generation: 0,
            timers: Vec::new(),
            mailboxes: (0..shards).map(|_| Vec::new()).collect(),
            mailbox_cap: 64,
            sent: Vec::new(),
            closed: Vec::new(),
            drained: Vec::new(),
            pause_calls: 0,
            resume_calls: 0,
            poll_soon_calls: 0,
            send_refusals: 0,
            fsyncs: Vec::new(),
            hold_fsyncs: false,
            upgrades: Vec::new(),
        }
    }

    fn conn(&self, id: u64) -> Option<&Conn> {
        self.slots
            .get((id & 0xffff_ffff) as usize)?
            .as_ref()
            .filter(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: u64) -> Option<&mut Conn> {
        self.slots
            .get_mut((id & 0xffff_ffff) as usize)?
            .as_mut()
            .filter(|c| c.id == id)
    }

    /// Allocates a connection id: slab index in the low 32 bits, a generation in the high 32.
    fn insert(&mut self, socket: usize, input: BytesMut) -> u64 {
        self.generation += 1;
        let index = match self.slots.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let id = (u64::from(self.generation) << 32) | index as u64;
        let input_scheduled = !input.is_empty();
        self.slots[index] = Some(Conn {
            id,
            socket,
            input,
            queued: Vec::new(),
            flush_wanted: false,
            read_paused: false,
            closing: false,
            detaching: false,
            stalled_bytes: 0,
            stuck: Vec::new(),
            input_scheduled,
        });
        id
    }

    pub fn is_read_paused(&self, id: u64) -> bool {
        self.conn(id).is_some_and(|c| c.read_paused)
    }

    /// Bytes the runtime has read from the socket and the broker has not consumed.
    pub fn input_len(&self, id: u64) -> usize {
        self.conn(id).map_or(0, |c| c.input.len())
    }

    pub fn mailbox_len(&self, to: usize) -> usize {
        self.mailboxes[to].len()
    }

    pub fn timers(&self) -> &[(Instant, u64)] {
        &self.timers
    }
}

impl Net for FakeNet {
    type Detached = Detached;

    fn shard(&self) -> usize {
        self.shard
    }
    fn shards(&self) -> usize {
        self.shards
    }
    fn now(&self) -> Instant {
        self.now
    }
    fn input(&mut self, conn: u64) -> Option<&mut BytesMut> {
        self.conn_mut(conn).map(|c| &mut c.input)
    }
    fn write(&mut self, conn: u64, bytes: &[u8]) {
        if let Some(c) = self.conn_mut(conn).filter(|c| !c.closing) {
            c.queued.extend_from_slice(bytes);
        }
    }
    fn write_bytes(&mut self, conn: u64, bytes: Bytes) {
        self.write(conn, &bytes);
    }
    fn flush(&mut self, conn: u64) {
        if let Some(c) = self.conn_mut(conn) {
            c.flush_wanted = true;
        }
    }
    fn pending_output(&self, conn: u64) -> usize {
        self.conn(conn)
            .map_or(0, |c| c.queued.len() + c.stalled_bytes + c.stuck.len())
    }
    fn close(&mut self, conn: u64) {
        if let Some(c) = self.conn_mut(conn) {
            c.closing = true;
        }
    }
    fn pause_reading(&mut self, conn: u64) {
        self.pause_calls += 1;
        if let Some(c) = self.conn_mut(conn) {
            c.read_paused = true;
        }
    }
    fn resume_reading(&mut self, conn: u64) {
        self.resume_calls += 1;
        if let Some(c) = self.conn_mut(conn) {
            c.read_paused = false;
            if !c.input.is_empty() {
                c.input_scheduled = true;
            }
        }
    }
    fn detach(&mut self, conn: u64) {
        if let Some(c) = self.conn_mut(conn) {
            c.detaching = true;
        }
    }
    fn upgrade(&mut self, conn: u64, upgrade: squall_core::broker::Upgrade) {
        self.upgrades.push((conn, upgrade));
        let layers = usize::from(upgrade.tls)
            + usize::from(upgrade.snappy)
            + usize::from(upgrade.deflate_level.is_some());
        for _ in 0..layers {
            self.write(conn, b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
        }
        self.flush(conn);
    }
    fn attach(&mut self, detached: Detached) -> u64 {
        self.insert(detached.socket, detached.input)
    }
    fn send(&mut self, to: usize, msg: ShardMsg<Detached>) -> Result<(), ShardMsg<Detached>> {
        assert_ne!(to, self.shard, "a shard never sends to itself");
        if self.mailboxes[to].len() >= self.mailbox_cap {
            self.send_refusals += 1;
            return Err(msg);
        }
        self.mailboxes[to].push(msg);
        Ok(())
    }
    fn timer_at(&mut self, at: Instant, token: u64) {
        self.timers.push((at, token));
    }
    fn fsync(&mut self, fd: std::os::fd::RawFd, token: u64) {
        self.fsyncs.push((fd, token));
    }
    fn poll_soon(&mut self) {
        self.poll_soon_calls += 1;
    }
}

/// A client connection handle: the index of its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client(usize);

/// N shards, each a `Broker` with its `FakeNet`, and the client sockets.
pub struct Cluster {
    pub brokers: Vec<Broker<Detached>>,
    pub nets: Vec<FakeNet>,
    sockets: Vec<Socket>,
    now: Instant,
    /// While set, mailbox messages stay in their lanes (the receiving shard is "slow").
    pub hold_lanes: bool,
}

impl Cluster {
    pub fn new(shards: usize, opts: Options) -> Cluster {
        let now = Instant::now();
        Cluster {
            brokers: (0..shards)
                .map(|s| Broker::new(opts.clone(), s, shards))
                .collect(),
            nets: (0..shards).map(|s| FakeNet::new(s, shards, now)).collect(),
            sockets: Vec::new(),
            now,
            hold_lanes: false,
        }
    }

    pub fn single(opts: Options) -> Cluster {
        Cluster::new(1, opts)
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Opens a connection on `shard` (the runtime's accept) without sending anything.
    pub fn connect(&mut self, shard: usize) -> Client {
        let socket = self.sockets.len();
        self.sockets.push(Socket::default());
        let id = self.nets[shard].insert(socket, BytesMut::new());
        self.brokers[shard].on_accept(&mut self.nets[shard], id, Peer::Unknown);
        self.settle();
        Client(socket)
    }

    /// Opens a connection and sends the V2 magic.
    pub fn connect_v2(&mut self, shard: usize) -> Client {
        let c = self.connect(shard);
        self.send(c, b"  V2");
        c
    }

    /// The client sends `bytes`; the runtime reads them when it may; everything settles.
    pub fn send(&mut self, c: Client, bytes: &[u8]) {
        self.send_no_settle(c, bytes);
        self.settle();
    }

    pub fn send_no_settle(&mut self, c: Client, bytes: &[u8]) {
        self.sockets[c.0].unread.extend_from_slice(bytes);
    }

    /// Where the client's connection lives now: (shard, connection handle).
    pub fn location(&self, c: Client) -> Option<(usize, u64)> {
        self.nets.iter().enumerate().find_map(|(shard, net)| {
            net.slots
                .iter()
                .flatten()
                .find(|conn| conn.socket == c.0)
                .map(|conn| (shard, conn.id))
        })
    }

    pub fn conn(&self, c: Client) -> u64 {
        self.location(c).expect("client connected").1
    }

    pub fn shard_of(&self, c: Client) -> usize {
        self.location(c).expect("client connected").0
    }

    /// The client closes its end: the runtime reports the close on the next turn.
    pub fn disconnect(&mut self, c: Client) {
        let (shard, id) = self.location(c).expect("client connected");
        let net = &mut self.nets[shard];
        net.slots[(id & 0xffff_ffff) as usize] = None;
        net.closed.push((id, c.0));
        self.settle();
    }

    /// The socket has been closed by the broker (and the close reported).
    pub fn is_closed(&self, c: Client) -> bool {
        self.sockets[c.0].closed
    }

    pub fn socket(&self, c: Client) -> &Socket {
        &self.sockets[c.0]
    }

    /// Makes `pending_output` report `bytes` more than is queued (a client that stops reading);
    /// what is flushed meanwhile stays pending too, until `unstall_output`.
    pub fn stall_output(&mut self, c: Client, bytes: usize) {
        let (shard, id) = self.location(c).expect("client connected");
        if let Some(conn) = self.nets[shard].conn_mut(id) {
            conn.stalled_bytes = bytes;
        }
    }

    /// The stalled client reads everything: the runtime reports the connection drained.
    pub fn unstall_output(&mut self, c: Client) {
        let (shard, id) = self.location(c).expect("client connected");
        if let Some(conn) = self.nets[shard].conn_mut(id) {
            conn.stalled_bytes = 0;
            let stuck = std::mem::take(&mut conn.stuck);
            if !stuck.is_empty() {
                self.sockets[c.0].received.extend_from_slice(&stuck);
                self.sockets[c.0].flushes += 1;
            }
        }
        self.nets[shard].drained.push(id);
        self.settle();
    }

    /// New bytes the client has received since the last call.
    pub fn take_bytes(&mut self, c: Client) -> Vec<u8> {
        let s = &mut self.sockets[c.0];
        let out = s.received[s.read_pos..].to_vec();
        s.read_pos = s.received.len();
        out
    }

    /// `take_bytes` into a buffer the caller keeps: the received bytes move into `out` (its old
    /// contents are dropped) and the socket keeps `out`'s allocation, so a loop that calls this
    /// allocates nothing once both buffers have grown, and the socket does not keep every byte.
    pub fn take_bytes_into(&mut self, c: Client, out: &mut Vec<u8>) {
        let s = &mut self.sockets[c.0];
        out.clear();
        if s.read_pos == 0 {
            std::mem::swap(out, &mut s.received);
        } else {
            out.extend_from_slice(&s.received[s.read_pos..]);
            s.received.clear();
            s.read_pos = 0;
        }
    }

    /// New frames the client has received since the last call.
    pub fn frames(&mut self, c: Client) -> Vec<Frame> {
        parse_frames(&self.take_bytes(c))
    }

    /// New message frames; panics on any other frame.
    pub fn messages(&mut self, c: Client) -> Vec<Msg> {
        self.frames(c)
            .into_iter()
            .map(|f| match f {
                Frame::Message(m) => m,
                other => panic!("expected only messages, got {other:?}"),
            })
            .collect()
    }

    /// Runs turns on every shard until none does any work. A turn that only asks for another
    /// turn (`poll_soon`) counts as work a limited number of times in a row: a sender retrying a
    /// full lane that the test holds would otherwise spin forever.
    pub fn settle(&mut self) {
        let mut idle_polls = 0;
        for _ in 0..10_000 {
            let mut busy = false;
            let mut polled = false;
            for shard in 0..self.brokers.len() {
                let before = self.nets[shard].poll_soon_calls;
                busy |= self.turn(shard);
                polled |= self.nets[shard].poll_soon_calls != before;
            }
            // A message sent in the last turn of the round wakes its receiver (as the runtime's
            // doorbell does), even though the sender's turn did nothing else.
            busy |= !self.hold_lanes
                && self
                    .nets
                    .iter()
                    .any(|n| n.mailboxes.iter().any(|m| !m.is_empty()));
            if busy {
                idle_polls = 0;
            } else if polled && idle_polls < POLL_SOON_IDLE_TURNS_MAX {
                idle_polls += 1;
            } else {
                return;
            }
        }
        panic!("the cluster never settled");
    }

    /// Advances the clock by `d`, firing every timer that falls due, in deadline order.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = self
                .nets
                .iter()
                .enumerate()
                .flat_map(|(s, n)| n.timers.iter().enumerate().map(move |(i, &(at, _))| (at, s, i)))
                .filter(|&(at, _, _)| at <= target)
                .min();
            let Some((at, shard, i)) = next else { break };
            let (_, token) = self.nets[shard].timers.swap_remove(i);
            self.set_now(at.max(self.now));
            self.brokers[shard].on_timer(&mut self.nets[shard], token);
            self.settle();
        }
        self.set_now(target);
        self.settle();
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.advance(Duration::from_millis(ms));
    }

    fn set_now(&mut self, now: Instant) {
        self.now = now;
        for net in &mut self.nets {
            net.now = now;
        }
    }

    /// One runtime turn on `shard`. Returns whether anything happened.
    fn turn(&mut self, shard: usize) -> bool {
        let mut busy = false;
        let broker = &mut self.brokers[shard];
        let net = &mut self.nets[shard];

        if !net.hold_fsyncs {
            for (_, token) in std::mem::take(&mut net.fsyncs) {
                busy = true;
                broker.on_fsync(token, Ok(()));
            }
        }
        for (id, socket) in std::mem::take(&mut net.closed) {
            busy = true;
            self.sockets[socket].closed = true;
            broker.on_closed(net, id);
        }

        let detaching: Vec<u64> = net
            .slots
            .iter()
            .flatten()
            .filter(|c| c.detaching && !c.closing)
            .map(|c| c.id)
            .collect();
        for id in detaching {
            busy = true;
            let index = (id & 0xffff_ffff) as usize;
            let conn = net.slots[index].take().expect("listed above");
            if !conn.queued.is_empty() {
                self.sockets[conn.socket].received.extend_from_slice(&conn.queued);
                self.sockets[conn.socket].flushes += 1;
            }
            let detached = Detached {
                input: conn.input,
                socket: conn.socket,
            };
            broker.on_detached(net, id, detached);
        }

        // The runtime reads what the clients sent, where it may.
        for conn in net.slots.iter_mut().flatten() {
            let socket = &mut self.sockets[conn.socket];
            if conn.readable() && !socket.unread.is_empty() {
                conn.input.extend_from_slice(&socket.unread);
                socket.unread.clear();
                conn.input_scheduled = true;
            }
        }
        let scheduled: Vec<u64> = net
            .slots
            .iter_mut()
            .flatten()
            .filter(|c| c.input_scheduled)
            .map(|c| {
                c.input_scheduled = false;
                c.id
            })
            .collect();
        for id in scheduled {
            busy = true;
            broker.on_input(net, id);
        }

        for id in std::mem::take(&mut net.drained) {
            if net.conn(id).is_some() {
                busy = true;
                broker.on_drained(net, id);
            }
        }

        if !self.hold_lanes {
            for from in 0..self.nets.len() {
                if from == shard {
                    continue;
                }
                let msgs = std::mem::take(&mut self.nets[from].mailboxes[shard]);
                for msg in msgs {
                    busy = true;
                    self.brokers[shard].on_message(&mut self.nets[shard], from, msg);
                }
            }
        }

        let broker = &mut self.brokers[shard];
        let net = &mut self.nets[shard];
        broker.on_turn_end(net);

        // Flush phase: what was asked to be flushed reaches the client; closes complete.
        for index in 0..net.slots.len() {
            let Some(conn) = net.slots[index].as_mut() else {
                continue;
            };
            if conn.flush_wanted || conn.closing {
                conn.flush_wanted = false;
                if !conn.queued.is_empty() {
                    busy = true;
                    // Copied out and cleared rather than taken, so the buffer keeps its
                    // capacity (the benches drive many flushes through it).
                    if conn.stalled_bytes > 0 && !conn.closing {
                        conn.stuck.extend_from_slice(&conn.queued);
                    } else {
                        let socket = &mut self.sockets[conn.socket];
                        socket.received.extend_from_slice(&conn.queued);
                        socket.flushes += 1;
                        if !conn.closing {
                            net.drained.push(conn.id);
                        }
                    }
                    conn.queued.clear();
                }
            }
            if conn.closing {
                busy = true;
                let conn = net.slots[index].take().expect("checked");
                net.closed.push((conn.id, conn.socket));
            }
        }
        busy
    }
}

/// A frame as the client parses it (spec §1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Response(Vec<u8>),
    Error(Vec<u8>),
    Message(Msg),
}

impl Frame {
    pub fn response(data: &[u8]) -> Frame {
        Frame::Response(data.to_vec())
    }

    pub fn error(data: &[u8]) -> Frame {
        Frame::Error(data.to_vec())
    }
}

/// A message frame's fields (spec §1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub timestamp_ns: i64,
    pub attempts: u16,
    pub id: [u8; 16],
    pub body: Vec<u8>,
}

pub fn parse_frames(mut buf: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        assert!(buf.len() >= 8, "truncated frame header: {buf:?}");
        let size = u32::from_be_bytes(buf[0..4].try_into().unwrap()) as usize;
        let frame_type = i32::from_be_bytes(buf[4..8].try_into().unwrap());
        assert!(size >= 4 && buf.len() >= 4 + size, "truncated frame");
        let data = &buf[8..4 + size];
        out.push(match frame_type {
            0 => Frame::Response(data.to_vec()),
            1 => Frame::Error(data.to_vec()),
            2 => {
                assert!(data.len() >= 26, "short message frame");
                Frame::Message(Msg {
                    timestamp_ns: i64::from_be_bytes(data[0..8].try_into().unwrap()),
                    attempts: u16::from_be_bytes(data[8..10].try_into().unwrap()),
                    id: data[10..26].try_into().unwrap(),
                    body: data[26..].to_vec(),
                })
            }
            t => panic!("unknown frame type {t}"),
        });
        buf = &buf[4 + size..];
    }
    out
}

// ---- bytes a client sends ----

pub const MAGIC: &[u8] = b"  V2";
pub const OK: &[u8] = b"\x00\x00\x00\x06\x00\x00\x00\x00OK";

pub fn ok() -> Frame {
    Frame::response(b"OK")
}

fn with_size(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

pub fn pub_cmd(topic: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("PUB {topic}\n").into_bytes();
    out.extend(with_size(body));
    out
}

pub fn dpub_cmd(topic: &str, defer_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DPUB {topic} {defer_ms}\n").into_bytes();
    out.extend(with_size(body));
    out
}

pub fn mpub_cmd(topic: &str, bodies: &[&[u8]]) -> Vec<u8> {
    let mut inner = (bodies.len() as u32).to_be_bytes().to_vec();
    for b in bodies {
        inner.extend(with_size(b));
    }
    let mut out = format!("MPUB {topic}\n").into_bytes();
    out.extend(with_size(&inner));
    out
}

pub fn identify_cmd(json: &str) -> Vec<u8> {
    let mut out = b"IDENTIFY\n".to_vec();
    out.extend(with_size(json.as_bytes()));
    out
}

pub fn sub_cmd(topic: &str, channel: &str) -> Vec<u8> {
    format!("SUB {topic} {channel}\n").into_bytes()
}

pub fn cmd_with_id(verb: &str, id: &[u8; 16], tail: &str) -> Vec<u8> {
    let mut out = format!("{verb} ").into_bytes();
    out.extend_from_slice(id);
    out.extend_from_slice(tail.as_bytes());
    out.push(b'\n');
    out
}

pub fn fin_cmd(id: &[u8; 16]) -> Vec<u8> {
    cmd_with_id("FIN", id, "")
}

pub fn req_cmd(id: &[u8; 16], timeout_ms: u64) -> Vec<u8> {
    cmd_with_id("REQ", id, &format!(" {timeout_ms}"))
}

pub fn touch_cmd(id: &[u8; 16]) -> Vec<u8> {
    cmd_with_id("TOUCH", id, "")
}

/// A topic name, starting with `prefix`, that `shard` owns among `shards`.
pub fn topic_on(shard: usize, shards: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|t| shard_for_topic(&Name::new(t.as_bytes()).expect("valid name"), shards) == shard)
        .expect("some name hashes to every shard")
}

// ---- common scenarios ----

impl Cluster {
    /// A consumer on `shard` subscribed to `topic`/`channel` (its SUB answered `OK`).
    pub fn consumer(&mut self, shard: usize, topic: &str, channel: &str) -> Client {
        let c = self.connect_v2(shard);
        self.send(c, &sub_cmd(topic, channel));
        assert_eq!(self.frames(c), vec![ok()], "SUB {topic} {channel}");
        c
    }

    /// Publishes one message from a fresh producer on `shard` and checks the `OK`.
    pub fn publish(&mut self, shard: usize, topic: &str, body: &[u8]) {
        let p = self.connect_v2(shard);
        self.send(p, &pub_cmd(topic, body));
        assert_eq!(self.frames(p), vec![ok()], "PUB {topic}");
    }
}

// ---- an in-memory backend ----

/// Records of one queue, shared with the test so it can look inside.
#[derive(Default, Debug)]
pub struct MemQueue {
    pub records: std::collections::VecDeque<bytes::Bytes>,
    pub written: u64,
    pub durable: u64,
    pub syncing_to: Option<u64>,
    pub fail_puts: bool,
    pub closed: bool,
    pub deleted: bool,
}

pub type MemQueues = std::rc::Rc<
    std::cell::RefCell<std::collections::BTreeMap<String, std::rc::Rc<std::cell::RefCell<MemQueue>>>>,
>;

pub struct MemBackend(std::rc::Rc<std::cell::RefCell<MemQueue>>);

impl squall_core::backend::Backend for MemBackend {
    fn put(&mut self, record: &[u8]) -> Result<(), String> {
        let mut q = self.0.borrow_mut();
        if q.fail_puts {
            return Err("disk full".into());
        }
        q.records.push_back(bytes::Bytes::copy_from_slice(record));
        q.written += 1;
        Ok(())
    }
    fn next(&mut self) -> Option<bytes::Bytes> {
        self.0.borrow_mut().records.pop_front()
    }
    fn depth(&self) -> u64 {
        self.0.borrow().records.len() as u64
    }
    fn empty(&mut self) -> Result<(), String> {
        self.0.borrow_mut().records.clear();
        Ok(())
    }
    fn delete(self: Box<Self>) {
        self.0.borrow_mut().deleted = true;
    }
    fn close(self: Box<Self>) -> Result<(), String> {
        self.0.borrow_mut().closed = true;
        Ok(())
    }
    fn sync_due(&self, _now: Instant) -> bool {
        let q = self.0.borrow();
        q.durable < q.written
    }
    fn begin_sync(&mut self) -> Option<(Vec<std::os::fd::RawFd>, u64)> {
        let mut q = self.0.borrow_mut();
        q.syncing_to = Some(q.written);
        Some((vec![7], q.written))
    }
    fn finish_sync(&mut self, token: u64) {
        let mut q = self.0.borrow_mut();
        q.durable = q.durable.max(token);
        q.syncing_to = None;
    }
    fn written(&self) -> u64 {
        self.0.borrow().written
    }
    fn durable(&self) -> u64 {
        self.0.borrow().durable
    }
}

pub struct MemFactory {
    pub queues: MemQueues,
    pub durable_acks: bool,
}

impl squall_core::backend::BackendFactory for MemFactory {
    fn open(&self, name: &str) -> Result<Box<dyn squall_core::backend::Backend>, String> {
        let q = self
            .queues
            .borrow_mut()
            .entry(name.to_string())
            .or_default()
            .clone();
        Ok(Box::new(MemBackend(q)))
    }
    fn durable_acks(&self) -> bool {
        self.durable_acks
    }
}

impl Cluster {
    /// Gives every shard in-memory backends; returns the queues by name.
    pub fn with_mem_backends(&mut self, durable_acks: bool) -> MemQueues {
        let queues: MemQueues = Default::default();
        for b in &mut self.brokers {
            b.set_backend_factory(Box::new(MemFactory {
                queues: queues.clone(),
                durable_acks,
            }));
        }
        queues
    }
}

impl Cluster {
    /// Gives every shard in-memory backends over queues an earlier cluster wrote (a restart).
    pub fn use_mem_queues(&mut self, queues: &MemQueues, durable_acks: bool) {
        for b in &mut self.brokers {
            b.set_backend_factory(Box::new(MemFactory {
                queues: queues.clone(),
                durable_acks,
            }));
        }
    }
}
