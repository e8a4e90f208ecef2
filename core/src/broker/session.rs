//! Per-connection protocol state: what IDENTIFY negotiated, the subscription, RDY and in-flight
//! accounting, and the ordered list of publish answers still owed to the client.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::error::ProtocolError;
use crate::names::Name;
use crate::options::Options;
use crate::protocol::ClientState;

/// A publish answer owed to the client, in command order.
#[derive(Debug)]
pub struct Pending {
    pub seq: u64,
    /// `None` while the owner shard has not answered; `Some(None)` is `OK`.
    pub result: Option<Option<Box<ProtocolError>>>,
}

/// Why the session is not reading its input right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// The outbox to this shard is full.
    Outbox(usize),
    /// A command other than a publish waits for the publish answers still owed.
    AwaitingReplies,
    /// The connection is travelling to the topic's shard.
    Migrating,
    /// The auth server is being asked; the command that needs its answer stays in the input.
    Auth,
    /// The client has not read its answers: more than `INPUT_PAUSE_OUTPUT_BYTES` wait to be
    /// taken by the kernel. Reading resumes once they have drained.
    Output,
    /// A fatal error was written, or is owed after earlier publish answers; the connection is
    /// closing.
    Closing,
}

/// Where a client connected from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A client of a Unix socket listener. Its socket has no name (clients do not bind one), which
    /// Go prints as `@`: nsqd's `/stats` and logs show that, and its client id, hostname and the
    /// auth query's remote IP are empty.
    Unix,
    /// Gone before its address could be read.
    Unknown,
}

impl From<Option<SocketAddr>> for Peer {
    fn from(addr: Option<SocketAddr>) -> Peer {
        addr.map_or(Peer::Unknown, Peer::Tcp)
    }
}

/// As nsqd shows `remote_address`: `ip:port`, `@`, or nothing.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Unix => f.write_str("@"),
            Peer::Unknown => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct Session {
    pub conn: u64,
    pub client_id: u64,
    /// `ip:port` of the peer (`@` on a Unix socket), as `/stats` reports it.
    pub remote_address: String,
    /// Unix seconds at connect.
    pub connect_ts: i64,
    /// Messages published per topic, for `/stats` producers.
    pub pub_counts: Vec<(Name, u64)>,
    pub magic_done: bool,
    pub state: ClientState,
    pub blocked: Option<Blocked>,

    pub identified: bool,
    pub client_name: String,
    pub hostname: String,
    pub user_agent: String,
    /// IDENTIFY's `topology_region` / `topology_zone` (nsqd master), shown in `/stats`.
    pub topology_region: String,
    pub topology_zone: String,
    /// `-1` when disabled.
    pub heartbeat_interval_ms: i64,
    pub msg_timeout_ms: i64,
    pub sample_rate: i32,
    pub output_buffer_size: i64,
    /// `0` disables the timed flush.
    pub output_buffer_timeout_ms: i64,
    /// Transport layers the connection has upgraded to (IDENTIFY with feature negotiation).
    pub tls: bool,
    pub snappy: bool,
    pub deflate: bool,

    /// Slab key of the subscribed channel.
    pub channel: Option<usize>,
    pub pending_sub: Option<(Name, Name)>,
    pub rdy: i64,
    pub in_flight: i64,
    pub message_count: u64,
    pub finish_count: u64,
    pub requeue_count: u64,

    pub pending: VecDeque<Pending>,
    pub next_seq: u64,

    pub last_read: Instant,
    pub connected_at: Instant,
    /// The token value each timer kind was last armed with; older firings are ignored.
    pub heartbeat_armed: u32,
    pub deadline_armed: u32,
    pub flush_armed: u32,
    /// Listed in the broker's `held` (deliveries buffered while `output_buffer_idle_flush`).
    pub held: bool,

    /// The auth server's last answer (AUTH, or a refresh when it expired).
    pub auth: Option<crate::auth::AuthState>,
    /// AUTH's body, sent again for every refresh.
    pub auth_secret: Vec<u8>,
    /// The query in flight: its ticket and what its answer is for.
    pub auth_wait: Option<(u64, super::AuthWait)>,
    /// Subject CN of the client's TLS certificate, for the auth server (empty without one).
    pub tls_common_name: String,
}

impl Session {
    pub fn new(conn: u64, client_id: u64, now: Instant, opts: &Options) -> Session {
        Session {
            conn,
            client_id,
            remote_address: String::new(),
            connect_ts: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            pub_counts: Vec::new(),
            magic_done: false,
            state: ClientState::Init,
            blocked: None,
            identified: false,
            client_name: String::new(),
            hostname: String::new(),
            user_agent: String::new(),
            topology_region: String::new(),
            topology_zone: String::new(),
            heartbeat_interval_ms: opts.default_heartbeat_interval_ms(),
            msg_timeout_ms: opts.msg_timeout_ms,
            sample_rate: 0,
            output_buffer_size: Options::DEFAULT_OUTPUT_BUFFER_SIZE,
            output_buffer_timeout_ms: opts.output_buffer_timeout_ms,
            tls: false,
            snappy: false,
            deflate: false,
            channel: None,
            pending_sub: None,
            rdy: 0,
            in_flight: 0,
            message_count: 0,
            finish_count: 0,
            requeue_count: 0,
            pending: VecDeque::new(),
            next_seq: 0,
            last_read: now,
            connected_at: now,
            heartbeat_armed: 0,
            deadline_armed: 0,
            flush_armed: 0,
            held: false,
            auth: None,
            auth_secret: Vec::new(),
            auth_wait: None,
            tls_common_name: String::new(),
        }
    }

    pub fn count_publish(&mut self, topic: Name, messages: u64) {
        match self.pub_counts.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, n)) => *n += messages,
            None => self.pub_counts.push((topic, messages)),
        }
    }

    pub fn heartbeats_disabled(&self) -> bool {
        self.heartbeat_interval_ms <= 0
    }

    /// RDY as a window: room while fewer than `rdy` messages are unacknowledged (spec §5.2).
    /// A closing connection has none: what it was sent would only wait out its timeout.
    pub fn has_rdy_room(&self) -> bool {
        self.state == ClientState::Subscribed
            && self.rdy > 0
            && self.in_flight < self.rdy
            && self.blocked != Some(Blocked::Closing)
    }
}
