//! `squall-lookupd`, the nsqlookupd drop-in: the engine the uring-net runtime drives, and
//! [`start_lookupd`] so tests can run one in-process. Protocol logic lives in
//! `squall_rpc::lookupd` and `squall_rpc::httpd`; this file only moves bytes between them and
//! the sockets.
//!
//! # Layout
//! - `lookupd.rs`: [`LookupdEngine`], [`start_lookupd`], [`Lookupd`], the logger.
//! - `lookupd/config.rs`: nsqlookupd's flags ([`parse_args`]).
//!
//! One shard only: the registration database is small, shared by every connection, and touched
//! a few times per nsqd every 15 s; splitting it across shards would buy nothing and cost
//! cross-shard lookups. Listener 0 is TCP (protocol V1), listener 1 is HTTP.
//!
//! No timers: like nsqlookupd, inactive producers and tombstones are never removed by time; they
//! are filtered out of answers against the request's clock (`squall_rpc::lookupd` invariants).

mod config;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use crate::config::preflight::resolve_listen;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Buf;
use squall_rpc::httpd::{
    crlf_after_post, expects_continue, http_date, parse_request, Limits, CONTINUE_BYTES,
};
use squall_rpc::lookupd::{
    Clock, Closing, LookupdHttp, LookupdOptions, RegistrationDb, TcpSession, COMMAND_BYTES_MAX,
};
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, RuntimeConfig, RuntimeHandle, ShardId};

pub use config::{parse_args, LogLevel, LookupdConfig, VERSION_LINE};

/// Index of the TCP listener in `RuntimeConfig::listeners`.
const LISTENER_TCP: usize = 0;
/// Index of the HTTP listener.
const LISTENER_HTTP: usize = 1;
/// Slack above the largest whole request, so one always fits in the input buffer.
const INPUT_SLACK_BYTES: usize = 64 * 1024;
/// nsqlookupd closes every connection at once on exit; there is nothing to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// A handful of connections per nsqd and per polling consumer.
const RING_ENTRIES: u32 = 256;

/// nsqlookupd's log lines (`<prefix><date> <time> <LEVEL>: <message>` on stderr, as
/// `logging` writes them), with this lookupd's own prefix and level.
#[derive(Clone, Debug)]
pub struct Logger {
    prefix: String,
    level: LogLevel,
}

impl Logger {
    pub fn new(prefix: &str, level: LogLevel) -> Logger {
        Logger {
            prefix: prefix.to_string(),
            level,
        }
    }

    pub fn log(&self, level: LogLevel, msg: &str) {
        crate::logging::log_with(&self.prefix, self.level, level, format_args!("{msg}"));
    }
}

/// How to start one lookupd.
#[derive(Clone, Debug)]
pub struct LookupdStart {
    pub tcp_address: SocketAddr,
    pub http_address: SocketAddr,
    pub broadcast_address: String,
    pub hostname: String,
    pub inactive_producer_timeout: Duration,
    pub tombstone_lifetime: Duration,
    pub logger: Logger,
}

impl LookupdStart {
    /// Loopback on free ports, nsqlookupd's timeouts, errors-only logging: what tests want.
    pub fn for_tests() -> LookupdStart {
        LookupdStart {
            tcp_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            broadcast_address: "lookupd.test".to_string(),
            hostname: "lookupd-host.test".to_string(),
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
            logger: Logger::new("[nsqlookupd] ", LogLevel::Error),
        }
    }

    /// From the parsed command line.
    pub fn from_config(config: &LookupdConfig) -> anyhow::Result<LookupdStart> {
        Ok(LookupdStart {
            tcp_address: resolve_listen(&config.tcp_address, "--tcp-address")?,
            http_address: resolve_listen(&config.http_address, "--http-address")?,
            broadcast_address: config.broadcast_address.clone(),
            hostname: config.hostname.clone(),
            inactive_producer_timeout: config.inactive_producer_timeout,
            tombstone_lifetime: config.tombstone_lifetime,
            logger: Logger::new(&config.log_prefix, config.log_level),
        })
    }
}

/// A running lookupd.
pub struct Lookupd {
    handle: RuntimeHandle,
    tcp_address: SocketAddr,
    http_address: SocketAddr,
}

impl Lookupd {
    /// The TCP address actually bound (port resolved when 0 was asked for).
    pub fn tcp_address(&self) -> SocketAddr {
        self.tcp_address
    }

    /// The HTTP address actually bound.
    pub fn http_address(&self) -> SocketAddr {
        self.http_address
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    pub fn join(self) -> io::Result<()> {
        self.handle.join()
    }
}

/// Starts a lookupd on one shard.
pub fn start_lookupd(start: LookupdStart) -> io::Result<Lookupd> {
    let limits = Limits::default();
    let input_max_bytes = COMMAND_BYTES_MAX.max(limits.request_bytes_max()) + INPUT_SLACK_BYTES;
    let runtime = RuntimeConfig {
        shards: 1,
        listeners: vec![start.tcp_address.into(), start.http_address.into()],
        pin_threads: false,
        input_max_bytes,
        mailbox_capacity: 1,
        drain_timeout: DRAIN_TIMEOUT,
        ring_entries: RING_ENTRIES,
        name: "squall-lookupd".to_string(),
    };
    // The ports IDENTIFY reports are only known once the listeners are bound.
    let ports: Arc<OnceLock<(u16, u16)>> = Arc::new(OnceLock::new());
    let engine_ports = Arc::clone(&ports);
    let handle = Runtime::start(runtime, move |_shard, _shards| {
        LookupdEngine::new(&start, limits, Arc::clone(&engine_ports))
    })?;
    // Both were asked as TCP addresses, so they are bound as such.
    let bound = |i: usize| {
        handle.local_addrs()[i]
            .as_tcp()
            .ok_or_else(|| io::Error::other("listener not bound to a TCP address"))
    };
    let (tcp_address, http_address) = (bound(LISTENER_TCP)?, bound(LISTENER_HTTP)?);
    let _ = ports.set((tcp_address.port(), http_address.port()));
    Ok(Lookupd {
        handle,
        tcp_address,
        http_address,
    })
}

/// One connection's protocol state.
enum Conn {
    Tcp(TcpSession),
    Http {
        peer: String,
        /// `100 Continue` already sent for the request being received.
        continue_sent: bool,
        /// The last request was a POST: up to 4 CR/LF bytes before the next one are dropped.
        after_post: bool,
    },
}

/// nsqlookupd on the uring-net runtime.
pub struct LookupdEngine {
    db: RegistrationDb,
    http: LookupdHttp,
    options: LookupdOptions,
    limits: Limits,
    ports: Arc<OnceLock<(u16, u16)>>,
    conns: HashMap<ConnId, Conn>,
    log: Logger,
    /// `Date` header text, refreshed once a second.
    date: (u64, String),
    /// Reused output buffer.
    out: Vec<u8>,
}

impl LookupdEngine {
    fn new(start: &LookupdStart, limits: Limits, ports: Arc<OnceLock<(u16, u16)>>) -> LookupdEngine {
        LookupdEngine {
            db: RegistrationDb::new(),
            http: LookupdHttp::new(),
            options: LookupdOptions {
                broadcast_address: start.broadcast_address.clone(),
                hostname: start.hostname.clone(),
                tcp_port: start.tcp_address.port(),
                http_port: start.http_address.port(),
                inactive_producer_timeout: start.inactive_producer_timeout,
                tombstone_lifetime: start.tombstone_lifetime,
            },
            limits,
            ports,
            conns: HashMap::new(),
            log: start.logger.clone(),
            date: (u64::MAX, String::new()),
            out: Vec::with_capacity(4096),
        }
    }

    fn clock(io: &Io<()>) -> Clock {
        let unix_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Clock {
            now: io.now(),
            unix_ns,
        }
    }

    fn date(&mut self) -> &str {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.date.0 != secs {
            self.date = (secs, http_date(now));
        }
        &self.date.1
    }

    fn on_tcp_input(&mut self, io: &mut Io<()>, conn: ConnId) {
        let clock = Self::clock(io);
        if let Some(&(tcp_port, http_port)) = self.ports.get() {
            self.options.tcp_port = tcp_port;
            self.options.http_port = http_port;
        }
        let Some(Conn::Tcp(session)) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(input) = io.input(conn) else { return };
        self.out.clear();
        let result = session.on_input(input, &mut self.db, &self.options, clock, &mut self.out);
        if !self.out.is_empty() {
            io.write(conn, &self.out);
            io.flush(conn);
        }
        if let Err(closing) = result {
            let peer = session.peer_id().to_string();
            match closing {
                Closing::BadProtocol { magic } => self.log.log(
                    LogLevel::Error,
                    &format!(
                        "client({peer}) bad protocol magic '{}'",
                        String::from_utf8_lossy(&magic)
                    ),
                ),
                Closing::Error(e) => self.log.log(LogLevel::Error, &format!("[{peer}] - {e}")),
            }
            io.close(conn);
        }
    }

    fn on_http_input(&mut self, io: &mut Io<()>, conn: ConnId) {
        let clock = Self::clock(io);
        let date = self.date().to_string();
        let Some(Conn::Http {
            peer,
            continue_sent,
            after_post,
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        let Some(input) = io.input(conn) else { return };
        self.out.clear();
        let mut close = false;
        loop {
            if *after_post && !input.is_empty() {
                input.advance(crlf_after_post(input));
                *after_post = false;
            }
            match parse_request(input, &self.limits) {
                Ok(Some((request, used))) => {
                    input.advance(used);
                    *continue_sent = false;
                    *after_post = request.method == "POST";
                    let started = Instant::now();
                    let response = self.http.handle(&request, &mut self.db, &self.options, clock);
                    response.encode(&request.reply_to(), &date, &mut self.out);
                    self.log.log(
                        LogLevel::Info,
                        &format!(
                            "{} {} {} ({peer}) {:?}",
                            response.status,
                            request.method,
                            request.target,
                            started.elapsed()
                        ),
                    );
                    if !request.keep_alive {
                        close = true;
                        break;
                    }
                }
                Ok(None) => {
                    if !*continue_sent && expects_continue(input, &self.limits) {
                        self.out.extend_from_slice(CONTINUE_BYTES);
                        *continue_sent = true;
                    }
                    break;
                }
                Err(e) => {
                    self.log
                        .log(LogLevel::Warn, &format!("HTTP: client({peer}) - {e}"));
                    self.out.extend_from_slice(&e.response_bytes());
                    close = true;
                    break;
                }
            }
        }
        if !self.out.is_empty() {
            io.write(conn, &self.out);
            io.flush(conn);
        }
        if close {
            io.close(conn);
        }
    }
}

impl Engine for LookupdEngine {
    /// Nothing crosses shards: there is one.
    type Msg = ();

    fn on_accept(&mut self, _io: &mut Io<()>, conn: ConnId, listener: usize, peer: Option<SocketAddr>) {
        // The peer id nsqlookupd uses is the remote ip:port; a peer that reset before accept has
        // none, and the connection id stands in.
        let peer = peer.map_or_else(|| format!("conn-{}", conn.to_u64()), |p| p.to_string());
        let state = if listener == LISTENER_TCP {
            self.log.log(LogLevel::Info, &format!("TCP: new client({peer})"));
            Conn::Tcp(TcpSession::new(peer))
        } else {
            Conn::Http {
                peer,
                continue_sent: false,
                after_post: false,
            }
        };
        self.conns.insert(conn, state);
    }

    fn on_input(&mut self, io: &mut Io<()>, conn: ConnId) {
        // A connection being closed after an error reads nothing more: nsqlookupd stops at the
        // first error, and Go's HTTP server at the first unreadable request.
        if !io.is_open(conn) {
            return;
        }
        match self.conns.get(&conn) {
            Some(Conn::Tcp(_)) => self.on_tcp_input(io, conn),
            Some(Conn::Http { .. }) => self.on_http_input(io, conn),
            None => {}
        }
    }

    fn on_closed(&mut self, _io: &mut Io<()>, conn: ConnId) {
        if let Some(Conn::Tcp(mut session)) = self.conns.remove(&conn) {
            let peer = session.peer_id().to_string();
            for r in session.on_closed(&mut self.db) {
                self.log.log(
                    LogLevel::Info,
                    &format!(
                        "DB: client({peer}) UNREGISTER category:{} key:{} subkey:{}",
                        r.category.as_str(),
                        r.key,
                        r.subkey
                    ),
                );
            }
            self.log
                .log(LogLevel::Info, &format!("PROTOCOL(V1): [{peer}] exiting ioloop"));
        }
    }

    fn on_detached(&mut self, _io: &mut Io<()>, conn: ConnId, _detached: Detached) {
        // Never detached: dropping `Detached` closes the socket.
        self.conns.remove(&conn);
    }

    fn on_message(&mut self, _io: &mut Io<()>, _from: ShardId, _msg: ()) {}

    fn on_timer(&mut self, _io: &mut Io<()>, _token: u64) {}

    fn on_shutdown(&mut self, io: &mut Io<()>) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            io.close(conn);
        }
    }
}
