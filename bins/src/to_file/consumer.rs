//! A small blocking NSQ consumer for one topic/channel: one thread per nsqd connection, plus one
//! lookupd poller when discovery goes through nsqlookupd.
//!
//! Auto-response is off, as in nsq_to_file: the consumer hands every message to the topic's
//! logger thread with the connection it came on ([`Event::Message`]), and only the logger FINs,
//! after the write and fsync that cover it. A message whose connection died before its FIN is
//! simply not FIN'd; nsqd times it out and redelivers it (a duplicate, never a loss).
//!
//! Reconnects: an address given with `--nsqd-tcp-address` is retried with a doubling delay from
//! [`RECONNECT_DELAY_MIN_MS`] up to `lookupd_poll_interval` (go-nsq retries it every
//! `lookupd_poll_interval`); a producer found through lookupd is dropped when its connection
//! closes and lookupd is asked again right away, as go-nsq does.
//!
//! Stop: every connection gets CLS; after CLOSE_WAIT it stays open until everything it delivered
//! has been FIN'd (or [`STOP_GRACE_MS`] passed), then closes. When the last thread has ended, the
//! logger gets [`Event::Stopped`].
//!
//! Upgrades: IDENTIFY asks for `tls_v1`, `snappy` and `deflate` as `--consumer-opt` set them;
//! what nsqd's reply grants is started in go-nsq's order (TLS, deflate, snappy), each confirmed
//! by an `OK` read through the new layer, before AUTH and SUB (see `wire`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::consumer_config::ConsumerConfig;
use super::log::Log;
use super::lookupd::{self, HttpTimeouts};
use super::options::{RECONNECT_DELAY_MIN_MS, STOP_GRACE_MS};
use super::protocol::{Command, Frame, Message, MessageId, CLOSE_WAIT, HEARTBEAT, MAGIC_V2};
use super::wire::{FrameReader, Wire};

/// How often a connection thread wakes to check for stop and its own read deadline.
const POLL_MS: u64 = 100;
/// RDY is refreshed on every connection once this fraction of it is in flight ("starved").
const STARVED_FRACTION: f64 = 0.85;

/// A topic logger's inbox: what its consumer hands it, and the signals the main thread forwards.
/// Sent on a bounded queue; a full queue blocks the sender (a connection thread's socket then
/// backs up, and RDY bounds the rest).
pub enum Event {
    Message {
        message: Message,
        conn: Arc<Conn>,
    },
    /// Every connection and poller thread has ended after [`Consumer::stop`]. Sent once.
    Stopped,
    /// SIGHUP.
    Hup,
    /// SIGTERM or SIGINT.
    Term,
}

/// One live nsqd connection, shared by its reader thread and the logger (for FIN).
pub struct Conn {
    pub addr: String,
    wire: Wire,
    /// Received from nsqd and not yet FIN'd.
    in_flight: AtomicI64,
    /// Of those, still queued for the logger (read ahead of it): not yet the handler's, so not
    /// counted when judging starvation.
    queued: AtomicI64,
    rdy: AtomicU64,
    closed: AtomicBool,
    cls_sent: AtomicBool,
}

impl Conn {
    fn send(&self, commands: &[Command<'_>]) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "connection closed"));
        }
        let mut buf = Vec::with_capacity(64 * commands.len());
        for c in commands {
            c.encode(&mut buf);
        }
        let result = self.wire.send(&buf);
        if result.is_err() {
            self.close();
        }
        result
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wire.shutdown();
    }

    /// FINs `ids` (all delivered on this connection) in one write.
    pub fn fin(&self, ids: &[MessageId]) -> io::Result<()> {
        let commands: Vec<Command<'_>> = ids.iter().map(Command::Fin).collect();
        let result = self.send(&commands);
        if result.is_ok() {
            self.in_flight.fetch_sub(ids.len() as i64, Ordering::AcqRel);
        }
        result
    }

    /// CLS, once: a second one would be a fatal `E_INVALID` in the closing state.
    fn cls(&self) {
        if !self.cls_sent.swap(true, Ordering::AcqRel) && self.send(&[Command::Cls]).is_err() {
            self.close();
        }
    }

    /// The logger took a message this connection delivered.
    pub fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// go-nsq's starvation test over the messages its handler holds (go-nsq hands messages over
    /// an unbuffered channel, so its in-flight count is the handler's; this reader reads ahead).
    fn starved(&self) -> bool {
        let in_flight = self.in_flight.load(Ordering::Acquire) - self.queued.load(Ordering::Acquire);
        let rdy = self.rdy.load(Ordering::Acquire);
        in_flight > 0 && in_flight as f64 >= rdy as f64 * STARVED_FRACTION
    }
}

struct Shared {
    topic: String,
    channel: String,
    config: ConsumerConfig,
    log: Log,
    events: SyncSender<Event>,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    /// Addresses with a connection thread (connected or not).
    dialing: Mutex<HashSet<String>>,
    /// Lowest `max_rdy_count` any nsqd advertised.
    max_rdy: AtomicU64,
    threads: AtomicUsize,
    stop: Mutex<Option<Instant>>,
    stop_cv: Condvar,
    stopped_sent: AtomicBool,
    lookupd_nudge: Mutex<Option<SyncSender<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread cannot leave these maps or sockets in a state worse than a dead
    // connection, which the protocol already handles.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn tag(&self) -> String {
        format!("[{}/{}]", self.topic, self.channel)
    }

    fn stopping(&self) -> bool {
        lock(&self.stop).is_some()
    }

    fn stop_deadline_passed(&self) -> bool {
        lock(&self.stop).is_some_and(|at| at.elapsed() >= Duration::from_millis(STOP_GRACE_MS))
    }

    /// Sleeps up to `d`; false when stop was asked meanwhile.
    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let guard = lock(&self.stop);
        let (guard, _) = self
            .stop_cv
            .wait_timeout_while(guard, d, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        guard.is_none()
    }

    /// go-nsq's per-connection share of max-in-flight, capped by nsqd's `max_rdy_count`.
    fn rebalance_rdy(&self) {
        let conns: Vec<Arc<Conn>> = lock(&self.conns).values().cloned().collect();
        if conns.is_empty() || self.stopping() {
            return;
        }
        // go-nsq's perConnMaxInFlight: at least 1 a connection, at most max-in-flight (so none
        // at all for a max-in-flight of 0).
        let max_in_flight = u64::try_from(self.config.max_in_flight).unwrap_or(0);
        let share = (max_in_flight / conns.len() as u64).max(1).min(max_in_flight);
        let rdy = share.min(self.max_rdy.load(Ordering::Acquire));
        for c in conns {
            if c.rdy.swap(rdy, Ordering::AcqRel) != rdy {
                let _ = c.send(&[Command::Rdy(rdy)]);
            }
        }
    }

    /// Under the stop lock, so it cannot interleave with [`Consumer::stop`] reading the count.
    fn thread_exited(&self) {
        let stop = lock(&self.stop);
        let last = self.threads.fetch_sub(1, Ordering::AcqRel) == 1;
        let stopping = stop.is_some();
        drop(stop);
        if last && stopping {
            self.send_stopped();
        }
    }

    fn send_stopped(&self) {
        if !self.stopped_sent.swap(true, Ordering::AcqRel) {
            let _ = self.events.send(Event::Stopped);
        }
    }

    fn nudge_lookupd(&self) {
        if let Some(tx) = lock(&self.lookupd_nudge).as_ref() {
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

/// The consumer of one topic on one channel.
pub struct Consumer {
    shared: Arc<Shared>,
}

impl Consumer {
    pub fn new(
        topic: &str,
        channel: &str,
        config: ConsumerConfig,
        log: Log,
        events: SyncSender<Event>,
    ) -> Consumer {
        Consumer {
            shared: Arc::new(Shared {
                topic: topic.to_string(),
                channel: channel.to_string(),
                config,
                log,
                events,
                conns: Mutex::new(HashMap::new()),
                dialing: Mutex::new(HashSet::new()),
                max_rdy: AtomicU64::new(u64::MAX),
                threads: AtomicUsize::new(0),
                stop: Mutex::new(None),
                stop_cv: Condvar::new(),
                stopped_sent: AtomicBool::new(false),
                lookupd_nudge: Mutex::new(None),
            }),
        }
    }

    /// Connects to each nsqd (retrying for ever, until stop).
    pub fn connect_to_nsqds(&self, addrs: &[String]) {
        for addr in addrs {
            spawn_connection(&self.shared, addr.clone(), true);
        }
    }

    /// Polls the lookupds for the topic's producers and connects to each new one.
    pub fn connect_to_lookupds(&self, addrs: &[String], timeouts: HttpTimeouts) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        *lock(&self.shared.lookupd_nudge) = Some(tx);
        let shared = Arc::clone(&self.shared);
        let addrs = addrs.to_vec();
        shared.threads.fetch_add(1, Ordering::AcqRel);
        let spawned = thread::Builder::new()
            .name(format!("lookupd-{}", shared.topic))
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    lookupd_loop(&shared, &addrs, timeouts, &rx);
                    shared.thread_exited();
                }
            });
        if let Err(e) = spawned {
            shared.threads.fetch_sub(1, Ordering::AcqRel);
            shared
                .log
                .error(&format!("{} cannot start the lookupd poller: {e}", shared.tag()));
        }
    }

    /// go-nsq's `IsStarved`: some connection has ≥ 85% of its RDY in flight.
    pub fn is_starved(&self) -> bool {
        lock(&self.shared.conns).values().any(|c| c.starved())
    }

    /// CLS on every connection; [`Event::Stopped`] follows once all threads have ended.
    pub fn stop(&self) {
        let no_threads = {
            let mut stop = lock(&self.shared.stop);
            if stop.is_some() {
                return;
            }
            *stop = Some(Instant::now());
            self.shared.threads.load(Ordering::Acquire) == 0
        };
        self.shared.stop_cv.notify_all();
        self.shared.nudge_lookupd();
        let conns: Vec<Arc<Conn>> = lock(&self.shared.conns).values().cloned().collect();
        for c in conns {
            c.cls();
        }
        if no_threads {
            self.shared.send_stopped();
        }
    }
}

fn spawn_connection(shared: &Arc<Shared>, addr: String, reconnect: bool) {
    if !lock(&shared.dialing).insert(addr.clone()) {
        return;
    }
    shared.threads.fetch_add(1, Ordering::AcqRel);
    let thread_shared = Arc::clone(shared);
    let thread_addr = addr.clone();
    let spawned = thread::Builder::new()
        .name(format!("nsqd-{addr}"))
        .spawn(move || {
            let was_connected = connection_loop(&thread_shared, &thread_addr, reconnect);
            lock(&thread_shared.dialing).remove(&thread_addr);
            // go-nsq asks lookupd again when an established connection closes (not after a
            // failed dial, which would make a tight loop while lookupd still lists a dead nsqd).
            if was_connected {
                thread_shared.nudge_lookupd();
            }
            thread_shared.thread_exited();
        });
    if let Err(e) = spawned {
        lock(&shared.dialing).remove(&addr);
        shared.thread_exited();
        shared
            .log
            .error(&format!("{} ({addr}) cannot start a thread: {e}", shared.tag()));
    }
}

/// Returns whether any session got past SUB.
fn connection_loop(shared: &Arc<Shared>, addr: &str, reconnect: bool) -> bool {
    let mut was_connected = false;
    let tag = shared.tag();
    let cap =
        nanos(shared.config.lookupd_poll_interval_ns).max(Duration::from_millis(RECONNECT_DELAY_MIN_MS));
    let mut delay = Duration::from_millis(RECONNECT_DELAY_MIN_MS);
    while !shared.stopping() {
        shared.log.info(&format!("{tag} ({addr}) connecting to nsqd"));
        match session(shared, addr) {
            Ok(()) => {
                was_connected = true;
                shared.log.info(&format!("{tag} ({addr}) connection closed"));
            }
            Err(SessionError::Setup(e)) => shared
                .log
                .error(&format!("{tag} ({addr}) error connecting to nsqd - {e}")),
            Err(SessionError::Lost(e)) => {
                was_connected = true;
                shared.log.error(&format!("{tag} ({addr}) connection lost - {e}"));
                delay = Duration::from_millis(RECONNECT_DELAY_MIN_MS);
            }
        }
        if !reconnect || shared.stopping() {
            break;
        }
        shared
            .log
            .info(&format!("{tag} ({addr}) re-connecting in {delay:?}"));
        if !shared.sleep_unless_stopped(delay) {
            break;
        }
        delay = (delay * 2).min(cap);
    }
    was_connected
}

enum SessionError {
    /// Before SUB succeeded.
    Setup(String),
    /// After it.
    Lost(String),
}

/// A go-nsq duration option; one that is not positive is zero.
fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// `timeout` zero: none, as a zero `net.Dialer.Timeout`.
fn dial(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing");
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    for a in addrs {
        let dialed = if timeout.is_zero() {
            TcpStream::connect(a)
        } else {
            TcpStream::connect_timeout(&a, timeout)
        };
        match dialed {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One connection from dial to close.
fn session(shared: &Arc<Shared>, addr: &str) -> Result<(), SessionError> {
    let config = &shared.config;
    let setup = |e: String| SessionError::Setup(e);
    let stream = dial(addr, nanos(config.dial_timeout_ns)).map_err(|e| setup(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_millis(POLL_MS)))
        .and_then(|()| {
            stream.set_write_timeout(Some(nanos(config.write_timeout_ns).max(Duration::from_millis(1))))
        })
        .map_err(|e| setup(e.to_string()))?;
    let writer = stream.try_clone().map_err(|e| setup(e.to_string()))?;
    let conn = Arc::new(Conn {
        addr: addr.to_string(),
        wire: Wire::new(writer),
        in_flight: AtomicI64::new(0),
        queued: AtomicI64::new(0),
        rdy: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        cls_sent: AtomicBool::new(false),
    });
    let mut reader = FrameReader::new(stream);
    let result = handshake(shared, &conn, &mut reader).map_err(setup);
    let result = result.and_then(|()| {
        lock(&shared.conns).insert(addr.to_string(), Arc::clone(&conn));
        // A stop that came during the handshake did not see this connection.
        if shared.stopping() {
            conn.cls();
        }
        shared.rebalance_rdy();
        let r = read_loop(shared, &conn, &mut reader).map_err(SessionError::Lost);
        {
            let mut conns = lock(&shared.conns);
            if conns.get(addr).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                conns.remove(addr);
            }
        }
        shared.rebalance_rdy();
        r
    });
    conn.close();
    result
}

/// What nsqd's IDENTIFY reply turned on.
#[derive(Default)]
struct Granted {
    tls_v1: bool,
    deflate: bool,
    snappy: bool,
    auth_required: bool,
}

fn handshake(shared: &Shared, conn: &Conn, reader: &mut FrameReader) -> Result<(), String> {
    let config = &shared.config;
    let (tag, addr) = (shared.tag(), &conn.addr);
    let mut hello = MAGIC_V2.to_vec();
    Command::Identify(&config.identify_body()).encode(&mut hello);
    conn.wire.send(&hello).map_err(|e| e.to_string())?;
    let timeout = nanos(config.read_timeout_ns).max(Duration::from_secs(1));
    let reply = match reader.expect(&conn.wire, timeout)? {
        Frame::Response(data) => data,
        Frame::Error(e) => return Err(format!("IDENTIFY failed: {}", String::from_utf8_lossy(&e))),
        Frame::Message(_) => return Err("message before IDENTIFY reply".into()),
    };
    let mut granted = Granted::default();
    // A reply that is not JSON ("OK") is an nsqd without feature negotiation: nothing granted.
    if reply.first() == Some(&b'{') {
        let v: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|e| format!("bad IDENTIFY reply: {e}"))?;
        if let Some(max) = v.get("max_rdy_count").and_then(serde_json::Value::as_u64) {
            if max > 0 {
                shared.max_rdy.fetch_min(max, Ordering::AcqRel);
            }
        }
        let flag = |k: &str| v.get(k).and_then(serde_json::Value::as_bool) == Some(true);
        granted = Granted {
            tls_v1: flag("tls_v1"),
            deflate: flag("deflate"),
            snappy: flag("snappy"),
            auth_required: flag("auth_required"),
        };
    }
    if granted.tls_v1 {
        shared.log.info(&format!("{tag} ({addr}) upgrading to TLS"));
        let tls = config
            .tls
            .clone()
            .ok_or("nsqd turned on TLS, but there is no TLS client configuration")?;
        let server = crate::tls::server_name(addr)?;
        reader.upgrade(&conn.wire, |t| t.start_tls_client(tls, server))?;
        // The ClientHello; the reader sends the rest of the handshake as it goes.
        conn.wire.send(&[]).map_err(|e| e.to_string())?;
        expect_upgrade_ok(reader, conn, timeout, "TLS")?;
    }
    if granted.deflate {
        shared.log.info(&format!("{tag} ({addr}) upgrading to Deflate"));
        let level = u32::try_from(config.deflate_level).unwrap_or(6);
        reader.upgrade(&conn.wire, |t| {
            t.start_deflate(level);
            Ok(())
        })?;
        expect_upgrade_ok(reader, conn, timeout, "Deflate")?;
    }
    if granted.snappy {
        shared.log.info(&format!("{tag} ({addr}) upgrading to Snappy"));
        reader.upgrade(&conn.wire, |t| {
            t.start_snappy();
            Ok(())
        })?;
        expect_upgrade_ok(reader, conn, timeout, "Snappy")?;
    }
    if granted.auth_required {
        if config.auth_secret.is_empty() {
            return Err("auth required but no auth_secret (--consumer-opt=auth_secret,<s>)".into());
        }
        conn.send(&[Command::Auth(config.auth_secret.as_bytes())])
            .map_err(|e| e.to_string())?;
        match reader.expect(&conn.wire, timeout)? {
            Frame::Response(_) => {}
            Frame::Error(e) => return Err(format!("AUTH failed: {}", String::from_utf8_lossy(&e))),
            Frame::Message(_) => return Err("message before AUTH reply".into()),
        }
    }
    conn.send(&[Command::Sub {
        topic: &shared.topic,
        channel: &shared.channel,
    }])
    .map_err(|e| e.to_string())?;
    loop {
        match reader.expect(&conn.wire, timeout)? {
            Frame::Response(d) if d == b"OK" => return Ok(()),
            Frame::Response(d) if d == HEARTBEAT => {
                let _ = conn.send(&[Command::Nop]);
            }
            Frame::Response(d) => {
                return Err(format!("unexpected SUB reply {:?}", String::from_utf8_lossy(&d)))
            }
            Frame::Error(e) => return Err(format!("SUB failed: {}", String::from_utf8_lossy(&e))),
            Frame::Message(_) => return Err("message before SUB reply".into()),
        }
    }
}

/// The `OK` nsqd sends through a layer it just started (go-nsq's error text when it is not).
fn expect_upgrade_ok(
    reader: &mut FrameReader,
    conn: &Conn,
    timeout: Duration,
    layer: &str,
) -> Result<(), String> {
    match reader.expect(&conn.wire, timeout)? {
        Frame::Response(d) if d == b"OK" => Ok(()),
        _ => Err(format!("invalid response from {layer} upgrade")),
    }
}

fn read_loop(shared: &Shared, conn: &Arc<Conn>, reader: &mut FrameReader) -> Result<(), String> {
    let tag = shared.tag();
    let addr = &conn.addr;
    let mut close_wait = false;
    loop {
        if shared.stopping() {
            if close_wait && conn.in_flight.load(Ordering::Acquire) <= 0 {
                return Ok(());
            }
            if shared.stop_deadline_passed() {
                shared.log.warn(&format!(
                    "{tag} ({addr}) closing with {} messages still in flight",
                    conn.in_flight.load(Ordering::Acquire)
                ));
                return Ok(());
            }
        }
        if conn.closed.load(Ordering::Acquire) {
            return Err("connection closed".into());
        }
        let frame = match reader.next(&conn.wire)? {
            Some(f) => f,
            None => {
                let read_timeout = nanos(shared.config.read_timeout_ns);
                if reader.last_rx.elapsed() > read_timeout {
                    return Err(format!("read timeout after {read_timeout:?}"));
                }
                continue;
            }
        };
        match frame {
            Frame::Response(d) if d == HEARTBEAT => {
                shared.log.debug(&format!("{tag} ({addr}) heartbeat received"));
                conn.send(&[Command::Nop]).map_err(|e| e.to_string())?;
            }
            Frame::Response(d) if d == CLOSE_WAIT => {
                shared
                    .log
                    .info(&format!("{tag} ({addr}) received CLOSE_WAIT from nsqd"));
                close_wait = true;
            }
            Frame::Response(d) => shared.log.debug(&format!(
                "{tag} ({addr}) response {:?}",
                String::from_utf8_lossy(&d)
            )),
            Frame::Error(e) => shared.log.error(&format!(
                "{tag} ({addr}) protocol error - {}",
                String::from_utf8_lossy(&e)
            )),
            Frame::Message(message) => {
                let max = shared.config.max_attempts;
                if max > 0 && message.attempts > max {
                    shared.log.warn(&format!(
                        "{tag} ({addr}) msg {} attempted {} times, giving up",
                        String::from_utf8_lossy(&message.id),
                        message.attempts
                    ));
                    let _ = conn.send(&[Command::Fin(&message.id)]);
                    continue;
                }
                conn.in_flight.fetch_add(1, Ordering::AcqRel);
                conn.queued.fetch_add(1, Ordering::AcqRel);
                let event = Event::Message {
                    message,
                    conn: Arc::clone(conn),
                };
                if shared.events.send(event).is_err() {
                    return Err("logger gone".into());
                }
            }
        }
    }
}

fn lookupd_loop(shared: &Arc<Shared>, addrs: &[String], timeouts: HttpTimeouts, nudge: &Receiver<()>) {
    let tag = shared.tag();
    let mut next = 0usize;
    loop {
        if shared.stopping() || addrs.is_empty() {
            return;
        }
        let addr = &addrs[next % addrs.len()];
        next = next.wrapping_add(1);
        shared.log.info(&format!("{tag} querying nsqlookupd {addr}"));
        match lookupd::lookup(addr, &shared.topic, timeouts) {
            Ok(producers) => {
                for p in producers {
                    if !lock(&shared.conns).contains_key(&p) {
                        spawn_connection(shared, p, false);
                    }
                }
            }
            Err(e) => shared
                .log
                .error(&format!("{tag} error querying nsqlookupd ({addr}) - {e}")),
        }
        let wait = jittered(
            nanos(shared.config.lookupd_poll_interval_ns),
            shared.config.lookupd_poll_jitter,
        );
        match nudge.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Bounds the query rate when connections keep closing.
        if !shared.sleep_unless_stopped(Duration::from_millis(RECONNECT_DELAY_MIN_MS)) {
            return;
        }
    }
}

/// `interval` ± up to `jitter` of it, so many consumers do not poll lookupd in lockstep.
fn jittered(interval: Duration, jitter: f64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let unit = f64::from(nanos % 1000) / 1000.0; // 0..1
    interval.mul_f64((1.0 - jitter * unit).max(0.0))
}
