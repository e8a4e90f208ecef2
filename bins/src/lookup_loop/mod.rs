//! nsqd's `lookupLoop` (spec §8, B.6): squalld registers its topics and channels with every
//! `--lookupd-tcp-address` over nsqlookupd's TCP protocol V1, so consumers find it through
//! `/lookup`.
//!
//! Shards hand their part of the registry (every topic with its channels, ephemeral ones
//! included) to [`LookupLoop::update`] when it changes; the part replaces the previous one under
//! a mutex, nothing is queued. One thread per lookupd (blocking std sockets, never a shard)
//! keeps that lookupd in step:
//! - lazy connect (1 s dial timeout, 1 s read and write deadlines), magic `"  V1"`, IDENTIFY
//!   with nsqd v1.3.0's body, then `REGISTER <topic>` for each topic without channels and
//!   `REGISTER <topic> <channel>` for each channel;
//! - afterwards REGISTER/UNREGISTER for what appeared or went since the last snapshot sent
//!   (a topic that goes: its channels' UNREGISTERs, then the topic's, as nsqd's delete events);
//! - `PING` every 15 s;
//! - any error closes the connection; it reconnects after a short backoff (nsqd waits for its
//!   next 15 s ping) and registers everything again. A closed connection is noticed within a
//!   second even while idle, so a restarted lookupd hears from this node promptly.
//!
//! Nothing is unregistered at shutdown: closing the connection makes lookupd drop the node.
//!
//! A new topic's channels (spec A.12) are asked for by `channels`: its thread answers each
//! shard's `ChannelsQuery` from every lookupd whose HTTP address the IDENTIFY answers gave.

mod channels;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use squall_core::names::Name;
use squall_core::topic::ChannelsQuery;
use squall_rpc::lookupd::{decode_response, IdentifyResponse, Reply, MAGIC_V1, RESPONSE_BYTES_MAX};
use squall_uring_net::Remote;

use crate::grpc_subs::Msg;
use crate::http_client::HttpTimeouts;
use crate::{log_debug, log_error, log_info, log_warn};

/// Dial timeout, and the deadline of every read and write (nsqd's lookupPeer).
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// nsqd's heartbeat to every lookupd.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// How often an idle connection is checked for having been closed by lookupd.
const CLOSED_CHECK_INTERVAL: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The version nsqd 1.3.0 reports.
const VERSION: &str = "1.3.0";

/// One shard's registry part: topics with their channels.
pub type RegistryPart = Vec<(Name, Vec<Name>)>;
type Registry = BTreeMap<Name, BTreeSet<Name>>;

/// What IDENTIFY says about this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub broadcast_address: String,
    pub hostname: String,
    pub http_port: i64,
    pub tcp_port: i64,
}

/// nsqd v1.3.0's IDENTIFY body: a Go map, so its keys are alphabetical (no topology keys).
#[derive(Serialize)]
struct IdentifyBody<'a> {
    broadcast_address: &'a str,
    hostname: &'a str,
    http_port: i64,
    tcp_port: i64,
    version: &'a str,
}

struct State {
    /// Each shard's latest part (shared, so a peer thread copies it in O(shards)).
    parts: Vec<Arc<RegistryPart>>,
    /// Bumped by every update.
    generation: u64,
    /// The peers wanted, each with the id of the thread serving it.
    peers: HashMap<String, u64>,
    /// The HTTP address of each peer that has answered IDENTIFY with a broadcast address;
    /// kept across reconnects, as nsqd keeps a peer's info (`lookupdHTTPAddrs`).
    lookupd_http: HashMap<String, SocketAddr>,
    /// New topics' channel queries, each with the shard to answer (one per waiting topic).
    queries: Vec<(ChannelsQuery, Remote<Msg>)>,
    next_id: u64,
    /// Set by `start`: peer threads run only once the node's ports are known.
    identity: Option<Identity>,
    stop: bool,
}

struct Inner {
    state: Mutex<State>,
    cvar: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// `!lookupd_http.is_empty()` while the channels thread runs, for the shards: new topics
    /// ask for channels while it is set (and only then, so every query is answered).
    known: Arc<AtomicBool>,
    /// The channels thread is running.
    precreating: AtomicBool,
    /// nsqd's `--http-client-connect-timeout` / `--http-client-request-timeout`.
    http_timeouts: HttpTimeouts,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records (or, with `None`, forgets) peer `addr`'s HTTP address, if thread `id` still
    /// serves it.
    fn set_lookupd_http(&self, addr: &str, id: u64, http: Option<SocketAddr>) {
        let mut state = self.lock();
        if !Inner::wanted(&state, addr, id) {
            return;
        }
        match http {
            Some(http) => state.lookupd_http.insert(addr.to_string(), http),
            None => state.lookupd_http.remove(addr),
        };
        self.update_known(&state);
    }

    fn update_known(&self, state: &State) {
        let precreating = self.precreating.load(Ordering::Relaxed);
        self.known
            .store(precreating && !state.lookupd_http.is_empty(), Ordering::Relaxed);
    }

    /// The peer thread `id` for `addr` is still wanted.
    fn wanted(state: &State, addr: &str, id: u64) -> bool {
        !state.stop && state.peers.get(addr) == Some(&id)
    }
}

/// The lookup loop's handle: shards update it, the HTTP API swaps its peers, the node stops it.
#[derive(Clone)]
pub struct LookupLoop {
    inner: Arc<Inner>,
}

impl LookupLoop {
    /// A loop for `shards` shards and these lookupd addresses, asking lookupd's HTTP API with
    /// `http_timeouts`; no thread runs before `start`.
    pub fn new(shards: usize, peers: Vec<String>, http_timeouts: HttpTimeouts) -> LookupLoop {
        let lookup = LookupLoop {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    parts: (0..shards.max(1)).map(|_| Arc::new(Vec::new())).collect(),
                    generation: 0,
                    peers: HashMap::new(),
                    lookupd_http: HashMap::new(),
                    queries: Vec::new(),
                    next_id: 0,
                    identity: None,
                    stop: false,
                }),
                cvar: Condvar::new(),
                threads: Mutex::new(Vec::new()),
                known: Arc::new(AtomicBool::new(false)),
                precreating: AtomicBool::new(false),
                http_timeouts,
            }),
        };
        lookup.set_peers(peers);
        lookup
    }

    /// The node's ports are known: start one thread per peer, and the channels thread.
    pub fn start(&self, identity: Identity) {
        let mut state = self.inner.lock();
        state.identity = Some(identity.clone());
        let peers: Vec<(String, u64)> = state.peers.iter().map(|(a, &id)| (a.clone(), id)).collect();
        drop(state);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("squalld-lookup-channels".into())
            .spawn(move || channels::run(&inner));
        if spawned.is_ok() {
            self.inner.precreating.store(true, Ordering::Relaxed);
        } else {
            log_error!("LOOKUP: channels of new topics will not be pre-created from nsqlookupd");
        }
        self.keep_thread(spawned);
        for (addr, id) in peers {
            self.spawn(addr, id, identity.clone());
        }
    }

    /// Set while some lookupd's HTTP address is known: the shards' new topics then ask for the
    /// channels lookupd knows (`query_channels`) before they start.
    pub fn lookupd_known(&self) -> Arc<AtomicBool> {
        self.inner.known.clone()
    }

    /// New topics' queries from one shard; each is answered through `reply_to` with a
    /// `ShardMsg::Channels`, whatever lookupd does (a query still queued at `stop` is dropped
    /// with the stopping node).
    pub fn query_channels(&self, queries: Vec<ChannelsQuery>, reply_to: &Remote<Msg>) {
        let mut state = self.inner.lock();
        state
            .queries
            .extend(queries.into_iter().map(|q| (q, reply_to.clone())));
        drop(state);
        self.inner.cvar.notify_all();
    }

    /// A shard's registry changed: replace its part. Only a swap under the lock, never I/O.
    pub fn update(&self, shard: usize, part: RegistryPart) {
        let part = Arc::new(part);
        let mut state = self.inner.lock();
        if let Some(slot) = state.parts.get_mut(shard) {
            *slot = part;
        }
        state.generation = state.generation.wrapping_add(1);
        drop(state);
        self.inner.cvar.notify_all();
    }

    /// `PUT /config/nsqlookupd_tcp_addresses`: drop peers no longer listed (their connection
    /// closes), add the new ones.
    pub fn set_peers(&self, addrs: Vec<String>) {
        let wanted: BTreeSet<String> = addrs.into_iter().filter(|a| !a.is_empty()).collect();
        let mut state = self.inner.lock();
        if state.stop {
            return;
        }
        state.peers.retain(|addr, _| {
            let keep = wanted.contains(addr);
            if !keep {
                log_info!("LOOKUP({addr}): removing peer");
            }
            keep
        });
        state.lookupd_http.retain(|addr, _| wanted.contains(addr));
        self.inner.update_known(&state);
        let mut added = Vec::new();
        for addr in wanted {
            if state.peers.contains_key(&addr) {
                continue;
            }
            state.next_id += 1;
            let id = state.next_id;
            state.peers.insert(addr.clone(), id);
            added.push((addr, id));
        }
        let identity = state.identity.clone();
        drop(state);
        self.inner.cvar.notify_all();
        if let Some(identity) = identity {
            for (addr, id) in added {
                self.spawn(addr, id, identity.clone());
            }
        }
    }

    /// Ends every peer thread (closing its connection) and waits for them.
    pub fn stop(&self) {
        self.inner.lock().stop = true;
        self.inner.cvar.notify_all();
        let threads = std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    fn spawn(&self, addr: String, id: u64, identity: Identity) {
        let inner = self.inner.clone();
        self.keep_thread(
            std::thread::Builder::new()
                .name("squalld-lookup".into())
                .spawn(move || Peer::new(inner, addr, id, identity).run()),
        );
    }

    fn keep_thread(&self, spawned: io::Result<JoinHandle<()>>) {
        let mut threads = self.inner.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => log_error!("LOOKUP: failed to start a lookup thread - {e}"),
        }
    }
}

/// An open, identified connection and what it has registered.
struct Conn {
    stream: TcpStream,
    registered: Registry,
    /// The first full registration after IDENTIFY is done.
    synced: bool,
}

/// One lookupd, served by its own thread.
struct Peer {
    inner: Arc<Inner>,
    addr: String,
    id: u64,
    identity: Identity,
    conn: Option<Conn>,
}

impl Peer {
    fn new(inner: Arc<Inner>, addr: String, id: u64, identity: Identity) -> Peer {
        Peer {
            inner,
            addr,
            id,
            identity,
            conn: None,
        }
    }

    fn wanted(&self) -> bool {
        Inner::wanted(&self.inner.lock(), &self.addr, self.id)
    }

    fn run(mut self) {
        log_info!("LOOKUP({}): adding peer", self.addr);
        let mut seen_generation = None;
        let mut retry_at = Instant::now();
        let mut backoff = BACKOFF_MIN;
        let mut next_ping = Instant::now() + PING_INTERVAL;
        let mut next_check = Instant::now() + CLOSED_CHECK_INTERVAL;
        loop {
            // Wait for something to do; take the parts if they changed.
            let parts = {
                let mut state = self.inner.lock();
                loop {
                    if !Inner::wanted(&state, &self.addr, self.id) {
                        return;
                    }
                    let now = Instant::now();
                    let due = match &self.conn {
                        None => retry_at,
                        Some(_) if seen_generation != Some(state.generation) => now,
                        Some(_) => next_ping.min(next_check),
                    };
                    if due <= now {
                        break;
                    }
                    state = self
                        .inner
                        .cvar
                        .wait_timeout(state, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                let changed = seen_generation != Some(state.generation);
                seen_generation = Some(state.generation);
                (changed || self.conn.is_none()).then(|| state.parts.clone())
            };
            match self.step(parts, &mut next_ping, &mut next_check) {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    let e = describe(&e);
                    if self.conn.take().is_some() {
                        log_error!("LOOKUPD({}): connection lost - {e}", self.addr);
                    } else {
                        log_error!("LOOKUPD({}): failed to connect - {e}", self.addr);
                    }
                    // Everything is registered again after the reconnect.
                    seen_generation = None;
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One round: connect if needed, bring the registrations up to date, ping, check the
    /// connection. An error leaves the connection to be dropped.
    fn step(
        &mut self,
        parts: Option<Vec<Arc<RegistryPart>>>,
        next_ping: &mut Instant,
        next_check: &mut Instant,
    ) -> io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
            *next_ping = Instant::now() + PING_INTERVAL;
        }
        if let Some(parts) = parts {
            self.sync(&merge(&parts))?;
        }
        let now = Instant::now();
        if now >= *next_ping {
            *next_ping = now + PING_INTERVAL;
            log_debug!("LOOKUPD({}): sending heartbeat", self.addr);
            self.command(b"PING\n")?;
        }
        if now >= *next_check {
            *next_check = now + CLOSED_CHECK_INTERVAL;
            if let Some(conn) = &self.conn {
                check_open(&conn.stream)?;
            }
        }
        Ok(())
    }

    /// Dial, magic, IDENTIFY; the registrations follow in `sync`.
    fn connect(&self) -> io::Result<Conn> {
        log_info!("LOOKUP connecting to {}", self.addr);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
        let mut stream = None;
        for addr in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut stream = stream.ok_or(last)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        stream.write_all(MAGIC_V1)?;

        let body = squall_rpc::httpd::to_go_json(&IdentifyBody {
            broadcast_address: &self.identity.broadcast_address,
            hostname: &self.identity.hostname,
            http_port: self.identity.http_port,
            tcp_port: self.identity.tcp_port,
            version: VERSION,
        })
        .map_err(io::Error::other)?;
        let mut identify = b"IDENTIFY\n".to_vec();
        identify.extend_from_slice(&(body.len() as u32).to_be_bytes());
        identify.extend_from_slice(&body);
        stream.write_all(&identify)?;
        let info = match read_reply(&mut stream)? {
            Reply::Data(json) => serde_json::from_slice::<IdentifyResponse>(&json)
                .map_err(|e| io::Error::other(format!("bad IDENTIFY response - {e}")))?,
            Reply::Error { code, text } => {
                return Err(io::Error::other(format!("IDENTIFY refused: {code} {text}")));
            }
            Reply::Ok => return Err(io::Error::other("IDENTIFY answered OK instead of JSON")),
        };
        log_info!(
            "LOOKUPD({}): peer info {{TCPPort:{} HTTPPort:{} Version:{} BroadcastAddress:{}}}",
            self.addr,
            info.tcp_port,
            info.http_port,
            info.version,
            info.broadcast_address
        );
        // nsqd leaves a lookupd without a broadcast address out of its channel queries.
        let http = if info.broadcast_address.is_empty() {
            log_error!("LOOKUPD({}): no broadcast address", self.addr);
            None
        } else {
            self.lookupd_http(info.http_port)
        };
        self.inner.set_lookupd_http(&self.addr, self.id, http);
        Ok(Conn {
            stream,
            registered: Registry::new(),
            synced: false,
        })
    }

    /// Sends what differs between what this lookupd has and `want`.
    fn sync(&mut self, want: &Registry) -> io::Result<()> {
        let Some(conn) = &self.conn else { return Ok(()) };
        let fresh = !conn.synced;
        let have = conn.registered.clone();
        let mut commands: Vec<(bool, Name, Option<Name>)> = Vec::new();
        let mut push = |register: bool, topic: Name, channel: Option<Name>| {
            commands.push((register, topic, channel));
        };
        // What went: channels first, then their topic (as nsqd's delete events).
        for (topic, channels) in &have {
            match want.get(topic) {
                None => {
                    for c in channels {
                        push(false, *topic, Some(*c));
                    }
                    push(false, *topic, None);
                }
                Some(now) => {
                    for c in channels.difference(now) {
                        push(false, *topic, Some(*c));
                    }
                }
            }
        }
        // What appeared. A fresh connection registers a topic through its channels if it has
        // any (nsqd's connect callback); later a new topic is registered by itself first.
        for (topic, channels) in want {
            let before = have.get(topic);
            if before.is_none() && (!fresh || channels.is_empty()) {
                push(true, *topic, None);
            }
            for c in channels {
                if before.is_none_or(|b| !b.contains(c)) {
                    push(true, *topic, Some(*c));
                }
            }
        }
        for (register, topic, channel) in commands {
            if !self.wanted() {
                return Ok(());
            }
            let verb = if register { "REGISTER" } else { "UNREGISTER" };
            let line = match channel {
                Some(c) => format!("{verb} {topic} {c}"),
                None => format!("{verb} {topic}"),
            };
            let kind = if channel.is_some() { "channel" } else { "topic" };
            log_info!("LOOKUPD({}): {kind} {line}", self.addr);
            self.command(format!("{line}\n").as_bytes())?;
            let Some(conn) = &mut self.conn else { return Ok(()) };
            apply(&mut conn.registered, register, topic, channel);
        }
        if let Some(conn) = &mut self.conn {
            conn.synced = true;
        }
        Ok(())
    }

    /// The lookupd's HTTP address: the host this thread connects to, the port its IDENTIFY
    /// answer gave (nsqd uses the broadcast address the lookupd reports; the connected host is
    /// the one known to be reachable from here).
    fn lookupd_http(&self, http_port: i64) -> Option<SocketAddr> {
        let host = self
            .addr
            .rsplit_once(':')?
            .0
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = u16::try_from(http_port).ok()?;
        (host, port).to_socket_addrs().ok()?.next()
    }

    /// Writes one command and reads its `OK`.
    fn command(&mut self, line: &[u8]) -> io::Result<()> {
        let Some(conn) = &mut self.conn else {
            return Err(io::Error::from(io::ErrorKind::NotConnected));
        };
        conn.stream.write_all(line)?;
        match read_reply(&mut conn.stream)? {
            Reply::Ok => Ok(()),
            Reply::Error { code, text } => {
                log_warn!(
                    "LOOKUPD({}): {} answered {code} {text}",
                    self.addr,
                    String::from_utf8_lossy(line).trim_end()
                );
                Err(io::Error::other(format!("{code} {text}")))
            }
            Reply::Data(d) => Err(io::Error::other(format!(
                "unexpected response {:?}",
                String::from_utf8_lossy(&d)
            ))),
        }
    }
}

/// Records a REGISTER/UNREGISTER lookupd acknowledged.
fn apply(registered: &mut Registry, register: bool, topic: Name, channel: Option<Name>) {
    match (register, channel) {
        (true, None) => {
            registered.entry(topic).or_default();
        }
        (true, Some(c)) => {
            registered.entry(topic).or_default().insert(c);
        }
        (false, None) => {
            registered.remove(&topic);
        }
        (false, Some(c)) => {
            if let Some(cs) = registered.get_mut(&topic) {
                cs.remove(&c);
            }
        }
    }
}

/// The union of the shards' parts.
fn merge(parts: &[Arc<RegistryPart>]) -> Registry {
    let mut all = Registry::new();
    for part in parts {
        for (topic, channels) in part.iter() {
            all.entry(*topic).or_default().extend(channels.iter().copied());
        }
    }
    all
}

/// `[i32 BE size][payload]`, capped at nsqd's `--max-body-size` default.
fn read_reply(stream: &mut TcpStream) -> io::Result<Reply> {
    let mut buf = vec![0u8; 4];
    stream.read_exact(&mut buf)?;
    let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if size > RESPONSE_BYTES_MAX {
        return Err(io::Error::other(format!(
            "response of {size} bytes is over the {RESPONSE_BYTES_MAX} byte limit"
        )));
    }
    buf.resize(4 + size, 0);
    stream.read_exact(&mut buf[4..])?;
    match decode_response(&buf, RESPONSE_BYTES_MAX) {
        Ok(Some((reply, _))) => Ok(reply),
        Ok(None) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        Err(e) => Err(io::Error::other(e)),
    }
}

/// Go's wording for a deadline that passed; the OS's for the rest.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    }
}

/// lookupd never speaks first: a readable idle connection was closed (or is confused).
fn check_open(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let result = stream.peek(&mut byte);
    stream.set_nonblocking(false)?;
    match result {
        Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by lookupd")),
        Ok(_) => Err(io::Error::other("unexpected data from lookupd")),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_body_is_nsqd_1_3_0s() {
        let body = squall_rpc::httpd::to_go_json(&IdentifyBody {
            broadcast_address: "h",
            hostname: "hn",
            http_port: 4151,
            tcp_port: 4150,
            version: VERSION,
        })
        .unwrap();
        assert_eq!(
            body,
            br#"{"broadcast_address":"h","hostname":"hn","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#
        );
    }

    #[test]
    fn merges_shard_parts() {
        let n = |s: &str| Name::new(s.as_bytes()).unwrap();
        let parts = vec![
            Arc::new(vec![(n("a"), vec![n("c1")]), (n("b"), vec![])]),
            Arc::new(vec![(n("a"), vec![n("c2")])]),
        ];
        let all = merge(&parts);
        assert_eq!(all.len(), 2);
        assert_eq!(all[&n("a")].len(), 2);
        assert!(all[&n("b")].is_empty());
    }
}
