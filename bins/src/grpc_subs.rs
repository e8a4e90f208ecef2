//! gRPC subscriptions on their topic's owner shard.
//!
//! A `Subscribe` stream lives on whatever shard accepted its HTTP/2 connection (a connection
//! carries many streams and cannot migrate), but its consumer must live where the topic lives.
//! So the owner shard runs the consumer as an ordinary broker session on a *virtual connection*
//! (`VIRTUAL_CONN_BIT`): the broker reads its NSQ commands from an in-memory input and writes
//! its frames into an in-memory output, through the same `Net` calls as for a socket. The
//! channel's in-flight and deferred queues, timeouts and round-robin are the TCP consumers'.
//!
//! Between the shards travel `SubEvent`s, batched: everything one shard has for another in one
//! loop turn goes as one mailbox message (`Msg::Subs`), so deliveries cross cores once per turn
//! per shard pair, never once per message. Memory stays bounded: the broker sends a consumer
//! at most its RDY credit of unsettled messages, and stops while its output waits to be shipped
//! (`CONSUMER_OUTPUT_BYTES_MAX`); a full lane keeps the batch here and retries next turn.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use slab::Slab;
use squall_core::broker::{shard_for_topic, ShardMsg, VIRTUAL_CONN_BIT};
use squall_rpc::grpc::subscribe::{SubChange, SubHub};
use squall_uring_net::Io;

use crate::engine::Handoff;

/// What one shard sends another about subscriptions. Dropped only with a stopping shard, whose
/// streams and consumers end with it.
#[derive(Debug)]
pub enum SubEvent {
    /// Stream shard → owner: a new consumer, with its NSQ opening (IDENTIFY, SUB, RDY) and its
    /// client's address.
    Open {
        sub: u64,
        input: Bytes,
        peer: Option<SocketAddr>,
    },
    /// Stream shard → owner: more commands.
    Input { sub: u64, input: Bytes },
    /// Stream shard → owner: the stream ended.
    Close { sub: u64 },
    /// Owner → stream shard: frames the broker wrote.
    Output { sub: u64, chunks: Vec<Bytes> },
    /// Owner → stream shard: the broker closed the consumer (after its last `Output`).
    Closed { sub: u64 },
}

/// What crosses the runtime's mailboxes.
pub enum Msg {
    Broker(ShardMsg<Handoff>),
    /// One turn's subscription events for the receiving shard, in order.
    Subs(Vec<SubEvent>),
}

// Lanes hold one of these per slot: keep it small.
const _: () = assert!(std::mem::size_of::<Msg>() <= 40);

/// Where a virtual connection's stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Route {
    shard: usize,
    sub: u64,
}

struct VConn {
    route: Route,
    generation: u32,
    input: BytesMut,
    /// Written since the last ship: small writes coalesce in `buf`, shared bodies stay whole.
    out: Vec<Bytes>,
    buf: BytesMut,
    out_bytes: usize,
    flushed: bool,
    /// The broker closed it; `Closed` goes after the last output, then `on_closed`.
    closing: bool,
}

/// Broker calls owed to virtual connections, made by the engine outside the broker's own calls.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    Accept(u64, Option<SocketAddr>),
    Read(u64),
    /// The connection ended (its stream left, or the broker closed it): `on_closed`, then free.
    Closed(u64),
}

/// Virtual connections of this shard (as owner), this shard's streams' owners, and the events
/// waiting for other shards.
pub struct Subs {
    shard: usize,
    shards: usize,
    conns: Slab<VConn>,
    by_route: HashMap<Route, u64>,
    generation: u32,
    /// Owner shard of each of this shard's subscription streams.
    stream_owners: HashMap<u64, usize>,
    work: Vec<Work>,
    /// Connections that flushed output or closed: shipped at the end of the turn.
    to_ship: Vec<u64>,
    /// Per destination shard, this turn's events (the own shard's are applied at once).
    outgoing: Vec<Vec<SubEvent>>,
}

impl Subs {
    /// Output of virtual consumers waits to be shipped at the next turn end.
    pub fn has_output(&self) -> bool {
        !self.to_ship.is_empty()
    }

    pub fn new(shard: usize, shards: usize) -> Subs {
        Subs {
            shard,
            shards,
            conns: Slab::new(),
            by_route: HashMap::new(),
            generation: 0,
            stream_owners: HashMap::new(),
            work: Vec::new(),
            to_ship: Vec::new(),
            outgoing: (0..shards).map(|_| Vec::new()).collect(),
        }
    }

    pub fn is_virtual(conn: u64) -> bool {
        conn & VIRTUAL_CONN_BIT != 0
    }

    fn key(conn: u64) -> usize {
        (conn & (VIRTUAL_CONN_BIT - 1)) as usize
    }

    fn get(&mut self, conn: u64) -> Option<&mut VConn> {
        self.conns
            .get_mut(Subs::key(conn))
            .filter(|v| v.generation == (conn >> 32) as u32)
    }

    // ---- the `Net` calls the broker makes for a virtual connection ----

    pub fn input(&mut self, conn: u64) -> Option<&mut BytesMut> {
        self.get(conn).filter(|v| !v.closing).map(|v| &mut v.input)
    }

    pub fn write(&mut self, conn: u64, bytes: &[u8]) {
        if let Some(v) = self.get(conn) {
            v.buf.extend_from_slice(bytes);
            v.out_bytes += bytes.len();
        }
    }

    pub fn write_bytes(&mut self, conn: u64, bytes: Bytes) {
        if let Some(v) = self.get(conn) {
            if !v.buf.is_empty() {
                v.out.push(v.buf.split().freeze());
            }
            v.out_bytes += bytes.len();
            v.out.push(bytes);
        }
    }

    pub fn flush(&mut self, conn: u64) {
        if let Some(v) = self.get(conn) {
            if !v.flushed {
                v.flushed = true;
                self.to_ship.push(conn);
            }
        }
    }

    /// Bytes written and not yet shipped (this turn's): the broker's output limit applies.
    pub fn pending_output(&self, conn: u64) -> usize {
        self.conns
            .get(Subs::key(conn))
            .filter(|v| v.generation == (conn >> 32) as u32)
            .map_or(0, |v| v.out_bytes)
    }

    pub fn close(&mut self, conn: u64) {
        if let Some(v) = self.get(conn) {
            if !v.closing {
                v.closing = true;
                if !v.flushed {
                    v.flushed = true;
                    self.to_ship.push(conn);
                }
            }
        }
    }

    pub fn resume_reading(&mut self, conn: u64) {
        if self.get(conn).is_some_and(|v| !v.input.is_empty()) {
            self.work.push(Work::Read(conn));
        }
    }

    // ---- events ----

    /// Changes from this shard's streams, to their owners: applied here at once, or batched
    /// for another shard.
    pub fn route_stream_changes(&mut self, changes: Vec<SubChange>, hub: &mut SubHub) {
        for change in changes {
            let (owner, event) = match change {
                SubChange::Open {
                    id,
                    topic,
                    input,
                    peer,
                } => {
                    let owner = shard_for_topic(&topic, self.shards);
                    self.stream_owners.insert(id, owner);
                    (owner, SubEvent::Open { sub: id, input, peer })
                }
                SubChange::Input { id, input } => match self.stream_owners.get(&id) {
                    Some(&owner) => (owner, SubEvent::Input { sub: id, input }),
                    None => continue,
                },
                SubChange::Close { id } => match self.stream_owners.remove(&id) {
                    Some(owner) => (owner, SubEvent::Close { sub: id }),
                    None => continue,
                },
            };
            if owner == self.shard {
                self.apply(self.shard, event, hub);
            } else {
                self.outgoing[owner].push(event);
            }
        }
    }

    /// An event from shard `from` (or from this shard's own streams).
    pub fn apply(&mut self, from: usize, event: SubEvent, hub: &mut SubHub) {
        match event {
            SubEvent::Open { sub, input, peer } => {
                let route = Route { shard: from, sub };
                self.generation = self.generation.wrapping_add(1);
                let generation = self.generation;
                let key = self.conns.insert(VConn {
                    route,
                    generation,
                    input: BytesMut::from(&input[..]),
                    out: Vec::new(),
                    buf: BytesMut::new(),
                    out_bytes: 0,
                    flushed: false,
                    closing: false,
                });
                let conn = (u64::from(generation) << 32) | VIRTUAL_CONN_BIT | key as u64;
                self.by_route.insert(route, conn);
                self.work.push(Work::Accept(conn, peer));
            }
            SubEvent::Input { sub, input } => {
                let route = Route { shard: from, sub };
                let Some(&conn) = self.by_route.get(&route) else {
                    return;
                };
                if let Some(v) = self.get(conn).filter(|v| !v.closing) {
                    v.input.extend_from_slice(&input);
                    self.work.push(Work::Read(conn));
                }
            }
            SubEvent::Close { sub } => {
                let route = Route { shard: from, sub };
                if let Some(conn) = self.by_route.remove(&route) {
                    if self.get(conn).is_some_and(|v| !v.closing) {
                        self.work.push(Work::Closed(conn));
                    }
                }
            }
            SubEvent::Output { sub, chunks } => hub.deliver(sub, chunks),
            SubEvent::Closed { sub } => {
                self.stream_owners.remove(&sub);
                hub.server_closed(sub);
            }
        }
    }

    pub fn take_work(&mut self) -> Vec<Work> {
        std::mem::take(&mut self.work)
    }

    /// After the broker's `on_closed`: the slot is free.
    pub fn release(&mut self, conn: u64) {
        if let Some(v) = self.get(conn) {
            let route = v.route;
            self.conns.remove(Subs::key(conn));
            if self.by_route.get(&route) == Some(&conn) {
                self.by_route.remove(&route);
            }
        }
    }

    /// Hands this turn's output to the streams: local ones at once, others into the batches.
    /// True when there was anything.
    pub fn ship(&mut self, hub: &mut SubHub) -> bool {
        let conns = std::mem::take(&mut self.to_ship);
        let shipped = !conns.is_empty();
        for conn in conns {
            let Some(v) = self.get(conn) else { continue };
            v.flushed = false;
            if !v.buf.is_empty() {
                let tail = v.buf.split().freeze();
                v.out.push(tail);
            }
            v.out_bytes = 0;
            let chunks = std::mem::take(&mut v.out);
            let (route, closing) = (v.route, v.closing);
            let mut events = Vec::with_capacity(2);
            if !chunks.is_empty() {
                events.push(SubEvent::Output {
                    sub: route.sub,
                    chunks,
                });
            }
            if closing {
                events.push(SubEvent::Closed { sub: route.sub });
                self.work.push(Work::Closed(conn));
            }
            for event in events {
                if route.shard == self.shard {
                    self.apply(self.shard, event, hub);
                } else {
                    self.outgoing[route.shard].push(event);
                }
            }
        }
        shipped
    }

    /// Sends each shard its batch; a full lane keeps it for the next turn.
    pub fn send_batches(&mut self, io: &mut Io<Msg>) {
        for to in 0..self.shards {
            if self.outgoing[to].is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut self.outgoing[to]);
            if let Err(Msg::Subs(batch)) = io.send(to, Msg::Subs(batch)) {
                let newer = std::mem::replace(&mut self.outgoing[to], batch);
                self.outgoing[to].extend(newer);
                io.poll_soon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> squall_core::names::Name {
        squall_core::names::Name::new(s.as_bytes()).unwrap()
    }

    /// A topic the other of two shards owns.
    fn remote_topic(shard: usize) -> squall_core::names::Name {
        (0..100)
            .map(|i| name(&format!("t{i}")))
            .find(|t| shard_for_topic(t, 2) != shard)
            .unwrap()
    }

    fn open_remote(owner: &mut Subs, hub: &mut SubHub, from: usize, sub: u64) -> u64 {
        owner.apply(
            from,
            SubEvent::Open {
                sub,
                input: Bytes::from_static(b"  V2"),
                peer: None,
            },
            hub,
        );
        match owner.take_work()[..] {
            [Work::Accept(conn, _)] => conn,
            ref other => panic!("expected one accept, got {other:?}"),
        }
    }

    #[test]
    fn a_turns_output_for_one_shard_is_one_batch() {
        let (mut owner, mut hub) = (Subs::new(1, 2), SubHub::default());
        let a = open_remote(&mut owner, &mut hub, 0, 7);
        let b = open_remote(&mut owner, &mut hub, 0, 8);
        assert!(Subs::is_virtual(a) && a != b);
        assert_eq!(owner.input(a).unwrap().as_ref(), b"  V2");
        for conn in [a, b] {
            owner.write(conn, b"header");
            owner.write_bytes(conn, Bytes::from(vec![1u8; 4096]));
            owner.write(conn, b"tail");
            owner.flush(conn);
            owner.flush(conn);
        }
        assert_eq!(owner.pending_output(a), 6 + 4096 + 4);
        assert!(owner.ship(&mut hub));
        assert_eq!(owner.pending_output(a), 0);
        assert_eq!(
            owner.outgoing[0].len(),
            2,
            "one Output per stream, both in shard 0's batch"
        );
        match &owner.outgoing[0][0] {
            SubEvent::Output { sub: 7, chunks } => {
                let lens: Vec<usize> = chunks.iter().map(Bytes::len).collect();
                assert_eq!(lens, [6, 4096, 4], "small writes coalesce, bodies stay whole");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!owner.ship(&mut hub), "nothing new to ship");
    }

    #[test]
    fn a_closed_consumer_ships_its_last_output_then_closed() {
        let (mut owner, mut hub) = (Subs::new(1, 2), SubHub::default());
        let conn = open_remote(&mut owner, &mut hub, 0, 3);
        owner.write(conn, b"CLOSE_WAIT");
        owner.close(conn);
        assert!(owner.input(conn).is_none(), "no input once closing");
        owner.ship(&mut hub);
        assert!(matches!(
            owner.outgoing[0][..],
            [SubEvent::Output { sub: 3, .. }, SubEvent::Closed { sub: 3 }]
        ));
        assert!(matches!(owner.take_work()[..], [Work::Closed(c)] if c == conn));
        owner.release(conn);
        owner.write(conn, b"late");
        assert_eq!(owner.pending_output(conn), 0, "a released handle is inert");
        // The stream's Close after the server's Closed is ignored.
        owner.apply(0, SubEvent::Close { sub: 3 }, &mut hub);
        assert!(owner.take_work().is_empty());
    }

    #[test]
    fn stream_commands_follow_their_owner() {
        let (mut subs, mut hub) = (Subs::new(0, 2), SubHub::default());
        let open = SubChange::Open {
            id: 1,
            topic: remote_topic(0),
            input: Bytes::from_static(b"  V2"),
            peer: None,
        };
        let fin = SubChange::Input {
            id: 1,
            input: Bytes::from_static(b"FIN 0123456789abcdef\n"),
        };
        subs.route_stream_changes(vec![open, fin, SubChange::Close { id: 1 }], &mut hub);
        assert!(matches!(
            subs.outgoing[1][..],
            [
                SubEvent::Open { sub: 1, .. },
                SubEvent::Input { sub: 1, .. },
                SubEvent::Close { sub: 1 }
            ]
        ));
        assert!(subs.take_work().is_empty(), "the owner is the other shard");
        // A stream whose owner is this shard: its consumer is made here at once.
        let local = (0..100)
            .map(|i| name(&format!("t{i}")))
            .find(|t| shard_for_topic(t, 2) == 0)
            .unwrap();
        let open = SubChange::Open {
            id: 2,
            topic: local,
            input: Bytes::from_static(b"  V2"),
            peer: None,
        };
        subs.route_stream_changes(vec![open], &mut hub);
        assert!(matches!(subs.take_work()[..], [Work::Accept(_, _)]));
    }
}
