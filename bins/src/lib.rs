//! Squall's binaries, and the node assembly they share so tests can start a broker in-process.
//!
//! # Layout
//! - `config`: nsqd's command line (Go `flag` syntax) and `--config` files → `DaemonConfig`.
//! - `logging`: nsqd-style log lines with a process-wide level (`squalld`, `squall-lookupd`).
//! - `engine`: the NSQ engine the uring-net runtime drives (forwards to `squall_core::broker`).
//! - `transport`: a connection's TLS / snappy / deflate layers, which `engine` applies between
//!   the runtime's bytes and the broker's.
//! - `tls`: the TLS server configuration from nsqd's `--tls-*` flags.
//! - `lookup_loop`: squalld's registration with nsqlookupd (one thread per lookupd, off the shards),
//!   and the channels a new topic starts with (one more thread asking lookupd's HTTP API).
//! - `statsd`: nsqd's statsd push (a thread off the shards that reads the node's own HTTP API).
//! - `bin/squalld.rs`: the nsqd drop-in: flags, logging, signals.
//! - `lookupd`: the nsqlookupd drop-in's engine and flags; `bin/squall-lookupd.rs` is its entry.
//! - `to_file`: the nsq_to_file drop-in (a blocking NSQ consumer writing topics to files);
//!   `bin/squall-to-file.rs` is its thin entry point.

pub mod auth;
mod backends;
pub mod config;
pub mod daemon;
mod engine;
mod grpc_front;
mod grpc_subs;
pub mod http_client;
mod http_front;
pub mod logging;
pub mod lookup_loop;
pub mod lookupd;
mod memtrim;
pub mod metadata;
pub mod signals;
pub mod statsd;
pub mod tls;
pub mod to_file;
mod transport;
mod x509_cn;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use squall_core::options::Options;
use squall_rpc::nsqd::{ApiContext, ConfigChange, ConfigValues};
pub use squall_uring_net::ListenAddr;
use squall_uring_net::{Runtime, RuntimeConfig, RuntimeHandle};

pub use engine::NsqEngine;
use engine::Shared;
use lookup_loop::LookupLoop;
use metadata::{DataDirLock, MetadataWriter};

/// How disk queues behave (nsqd's queue flags).
#[derive(Clone, Debug)]
pub struct DiskOptions {
    pub max_bytes_per_file: i64,
    pub sync_every: i64,
    pub sync_timeout_ms: i64,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            max_bytes_per_file: 104_857_600,
            sync_every: 2500,
            sync_timeout_ms: 2000,
        }
    }
}

/// How to start one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub options: Options,
    /// The NSQ TCP protocol's listener: a socket address or, as nsqd allows, a Unix socket.
    pub tcp_address: ListenAddr,
    /// nsqd's HTTP API (a socket address or a Unix socket); `None` turns it off
    /// (`--http-address=`).
    pub http_address: Option<ListenAddr>,
    /// gRPC (`--grpc-address`); `None` turns it off.
    pub grpc_address: Option<SocketAddr>,
    /// The same API over TLS (`--https-address`); served only with `tls`.
    pub https_address: Option<SocketAddr>,
    /// The TLS configuration (`--tls-cert`, `--tls-key`, ...): TCP clients may upgrade with
    /// IDENTIFY's `tls_v1`, and the HTTPS listener serves with it.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `--tls-required=true` (not `tcp-https`): plain HTTP requests are refused with 403.
    pub http_tls_required: bool,
    pub shards: usize,
    pub pin_threads: bool,
    /// Where disk queues and `nsqd.dat` live; `None`: memory only, nothing survives a restart.
    pub data_path: Option<PathBuf>,
    pub disk: DiskOptions,
    pub hostname: String,
    pub broadcast_address: String,
    /// nsqlookupd TCP addresses to register with (`--lookupd-tcp-address`).
    pub lookupd_tcp_addresses: Vec<String>,
    /// Auth servers (`--auth-http-address`); non-empty turns AUTH on (`options.auth_enabled`
    /// must agree).
    pub auth_http_addresses: Vec<String>,
    /// `--auth-http-request-method=post`: the query is a JSON POST instead of a GET.
    pub auth_http_post: bool,
    /// `--http-client-connect-timeout` / `--http-client-request-timeout`, for auth queries and
    /// lookupd's `/channels`.
    pub http_client_connect_timeout_ms: u64,
    pub http_client_request_timeout_ms: u64,
    /// Ports IDENTIFY reports to lookupd; 0: the port actually listened on (nsqd replaces 0
    /// with it once listening, for IDENTIFY, `/config/:opt` and the statsd prefix).
    pub broadcast_tcp_port: u16,
    pub broadcast_http_port: u16,
    /// `/config/:opt` values, as nsqd renders them. `broadcast_tcp_port`,
    /// `broadcast_http_port` and `statsd_prefix`, where present, are replaced by their values
    /// once the node listens.
    pub config_values: BTreeMap<String, serde_json::Value>,
    /// statsd's UDP `host:port` (`--statsd-address`); `None` turns statsd off. statsd reads
    /// the stats from the node's HTTP API, so it also needs `http_address`.
    pub statsd_address: Option<String>,
    /// `--statsd-prefix` as given: `%s` is expanded once the HTTP port is known
    /// (`statsd::expand_prefix`).
    pub statsd_prefix: String,
    pub statsd_interval_ms: u64,
    pub statsd_mem_stats: bool,
    pub statsd_udp_packet_size: usize,
    pub statsd_exclude_ephemeral: bool,
}

impl NodeConfig {
    /// Loopback on free ports, two shards, memory only: what black-box tests want.
    pub fn for_tests(options: Options) -> NodeConfig {
        NodeConfig {
            options,
            tcp_address: SocketAddr::from(([127, 0, 0, 1], 0)).into(),
            http_address: Some(SocketAddr::from(([127, 0, 0, 1], 0)).into()),
            grpc_address: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            https_address: None,
            tls: None,
            http_tls_required: false,
            shards: 2,
            pin_threads: false,
            data_path: None,
            disk: DiskOptions::default(),
            hostname: "localhost".to_string(),
            broadcast_address: "localhost".to_string(),
            lookupd_tcp_addresses: Vec::new(),
            auth_http_addresses: Vec::new(),
            auth_http_post: false,
            http_client_connect_timeout_ms: 2_000,
            http_client_request_timeout_ms: 5_000,
            broadcast_tcp_port: 0,
            broadcast_http_port: 0,
            config_values: BTreeMap::new(),
            statsd_address: None,
            statsd_prefix: String::new(),
            statsd_interval_ms: 60_000,
            statsd_mem_stats: true,
            statsd_udp_packet_size: 508,
            statsd_exclude_ephemeral: false,
        }
    }
}

/// What a `PUT /config/:opt` changes in the running node, as nsqd's options notification does:
/// the log level, and the lookupd peers the lookup loop keeps.
fn config_hook(lookup: LookupLoop) -> squall_rpc::nsqd::ConfigHook {
    Arc::new(move |change| match change {
        ConfigChange::LogLevel(level) => {
            if let Some(level) = logging::Level::from_number(level) {
                logging::set_level(level);
            }
        }
        ConfigChange::LookupdTcpAddresses(addrs) => lookup.set_peers(addrs.to_vec()),
    })
}

/// A running node.
pub struct Node {
    handle: RuntimeHandle,
    tcp_address: ListenAddr,
    http_address: Option<ListenAddr>,
    grpc_address: Option<SocketAddr>,
    https_address: Option<SocketAddr>,
    metadata: Option<(MetadataWriter, JoinHandle<()>, DataDirLock)>,
    lookup: LookupLoop,
    statsd: Option<statsd::Statsd>,
}

/// Slack beyond the largest command a client may send (a `--max-body-size` MPUB or IDENTIFY,
/// its 16 KiB command line and its size prefix), so a whole command always fits in the input.
const INPUT_SLACK_BYTES: usize = 64 * 1024;
/// Batches in flight from one shard to another.
const MAILBOX_LANE_CAPACITY: usize = 256;

impl Node {
    pub fn start(config: NodeConfig) -> io::Result<Node> {
        let options = config.options.clone();
        let shards = config.shards.max(1);
        let max_body = options.max_body_size.max(options.max_msg_size).max(0) as usize;
        let input_max_bytes =
            (max_body + INPUT_SLACK_BYTES).max(http_front::HttpFront::input_max_bytes(max_body));

        let mut metadata = None;
        let mut preload = Vec::new();
        let mut backends = None;
        if let Some(dir) = &config.data_path {
            std::fs::create_dir_all(dir)?;
            let lock = metadata::lock_data_dir(dir).map_err(io::Error::other)?;
            preload = metadata::load(dir).map_err(io::Error::other)?;
            let (writer, thread) = MetadataWriter::start(dir.clone(), shards);
            metadata = Some((writer, thread, lock));
            backends = Some(backends::factory_maker(
                dir.clone(),
                &config.options,
                &config.disk,
            ));
        }
        let http_timeouts = http_client::HttpTimeouts {
            connect: Duration::from_millis(config.http_client_connect_timeout_ms),
            request: Duration::from_millis(config.http_client_request_timeout_ms),
        };
        let lookup = LookupLoop::new(shards, config.lookupd_tcp_addresses.clone(), http_timeouts);
        let mut listeners = vec![config.tcp_address.clone()];
        let mut numbered = engine::Listeners::default();
        if let Some(addr) = &config.http_address {
            numbered.http = Some(listeners.len());
            listeners.push(addr.clone());
        }
        if let (Some(addr), Some(_)) = (config.https_address, &config.tls) {
            numbered.https = Some(listeners.len());
            listeners.push(addr.into());
        }
        if let Some(addr) = config.grpc_address {
            numbered.grpc = Some(listeners.len());
            listeners.push(addr.into());
        }
        for (i, addr) in listeners.iter().enumerate() {
            if addr.is_unix() {
                numbered.unix |= 1 << i;
            }
        }
        let https_port = Arc::new(OnceLock::new());
        let start_time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let shared = Shared {
            options: options.clone(),
            api: Arc::new(OnceLock::new()),
            preload: Arc::new(preload),
            metadata: metadata.as_ref().map(|(w, _, _)| w.clone()),
            backends,
            lookup: Some(lookup.clone()),
            auth: (!config.auth_http_addresses.is_empty()).then(|| {
                auth::AuthClient::start(
                    config.auth_http_addresses.clone(),
                    config.auth_http_post,
                    http_timeouts,
                )
            }),
            listeners: numbered,
            start_time_ns: start_time.as_nanos() as i64,
            http_tls: http_front::HttpTlsPolicy {
                required: config.http_tls_required,
                https_port: https_port.clone(),
            },
            tls: config.tls.clone(),
            plain_in_max_bytes: input_max_bytes,
        };
        memtrim::start();
        let runtime = RuntimeConfig {
            shards,
            listeners,
            pin_threads: config.pin_threads,
            input_max_bytes,
            mailbox_capacity: MAILBOX_LANE_CAPACITY,
            drain_timeout: Duration::from_secs(5),
            ring_entries: 4096,
            name: "squalld".to_string(),
        };
        let api = shared.api.clone();
        let handle = Runtime::start(runtime, move |shard, shards| {
            NsqEngine::new(shared.clone(), shard, shards)
        })?;
        let local = handle.local_addrs();
        let tcp_address = local[0].clone();
        let http_address = numbered.http.map(|i| local[i].clone());
        // Both are TCP only (`--https-address` as in nsqd; `--grpc-address` is squalld's).
        let https_address = numbered.https.and_then(|i| local[i].as_tcp());
        let _ = https_port.set(https_address.map_or(0, |a| a.port()));
        let grpc_address = numbered.grpc.and_then(|i| local[i].as_tcp());
        // nsqd: a broadcast port of 0 is the port listened on; 0 stays 0 with no HTTP listener
        // or on a Unix socket, which has no port.
        let tcp_port = tcp_address.as_tcp().map(|a| a.port());
        let http_port = http_address.as_ref().and_then(|a| a.as_tcp()).map(|a| a.port());
        let or_real = |port: u16, real: Option<u16>| match port {
            0 => real.map_or(0, i64::from),
            p => i64::from(p),
        };
        let broadcast_http_port = or_real(config.broadcast_http_port, http_port);
        let broadcast_tcp_port = or_real(config.broadcast_tcp_port, tcp_port);
        let statsd_prefix = statsd::expand_prefix(
            &config.statsd_prefix,
            &config.broadcast_address,
            broadcast_http_port,
        );
        let mut config_values = config.config_values;
        for (key, value) in [
            ("broadcast_tcp_port", serde_json::json!(broadcast_tcp_port)),
            ("broadcast_http_port", serde_json::json!(broadcast_http_port)),
            ("statsd_prefix", serde_json::json!(statsd_prefix)),
        ] {
            if let Some(v) = config_values.get_mut(key) {
                *v = value;
            }
        }
        lookup.start(lookup_loop::Identity {
            broadcast_address: config.broadcast_address.clone(),
            hostname: config.hostname.clone(),
            http_port: broadcast_http_port,
            tcp_port: broadcast_tcp_port,
        });
        let statsd = match (&config.statsd_address, &http_address) {
            (None, _) => None,
            (Some(_), None) => {
                log_warn!("STATSD: --statsd-address needs the HTTP listener (--http-address); no statsd metrics are sent");
                None
            }
            (Some(address), Some(http)) => Some(statsd::Statsd::start(
                statsd::StatsdConfig {
                    address: address.clone(),
                    prefix: statsd_prefix,
                    interval: Duration::from_millis(config.statsd_interval_ms),
                    mem_stats: config.statsd_mem_stats,
                    udp_packet_size: config.statsd_udp_packet_size,
                    exclude_ephemeral: config.statsd_exclude_ephemeral,
                },
                loopback(http.clone()),
            )?),
        };
        let _ = api.set(ApiContext {
            options,
            hostname: config.hostname,
            broadcast_address: config.broadcast_address,
            // nsqd's `/info`: -1 for a Unix socket (and, here, for no HTTP listener).
            tcp_port: tcp_port.map_or(-1, i64::from),
            http_port: http_port.map_or(-1, i64::from),
            start_time: start_time.as_secs() as i64,
            started: Instant::now(),
            health: "OK".to_string(),
            config: ConfigValues::new(config_values, Some(config_hook(lookup.clone()))),
        });
        Ok(Node {
            handle,
            tcp_address,
            http_address,
            grpc_address,
            https_address,
            metadata,
            lookup,
            statsd,
        })
    }

    /// The NSQ TCP protocol's address as bound (the port is resolved when 0 was asked for; a
    /// Unix socket has the name it got).
    pub fn tcp_address(&self) -> &ListenAddr {
        &self.tcp_address
    }

    /// The HTTP API's address, if it is on.
    pub fn http_address(&self) -> Option<&ListenAddr> {
        self.http_address.as_ref()
    }

    /// The gRPC address, if it is on.
    pub fn grpc_address(&self) -> Option<SocketAddr> {
        self.grpc_address
    }

    /// The HTTPS API's address, if it is on.
    pub fn https_address(&self) -> Option<SocketAddr> {
        self.https_address
    }

    /// Stops accepting, sends CLOSE_WAIT to consumers, closes every connection.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// `shutdown` for another thread to call while this one waits in `join`.
    pub fn shutdown_trigger(&self) -> impl Fn() + Send + Sync + 'static {
        self.handle.shutdown_trigger()
    }

    /// Waits for the shards (which write their queues to disk as they stop), then for the
    /// last `nsqd.dat`.
    pub fn join(self) -> io::Result<()> {
        let result = self.handle.join();
        if let Some(statsd) = self.statsd {
            statsd.stop();
        }
        // Closing the lookupd connections makes lookupd drop this node (nothing unregistered).
        self.lookup.stop();
        if let Some((writer, thread, _lock)) = self.metadata {
            writer.stop();
            let _ = thread.join();
        }
        result
    }
}

/// The address to reach a listener bound to `addr` from this host: a wildcard becomes IPv4
/// loopback, which a dual-stack `[::]` listener takes too (and `::1` may not be configured).
fn loopback(addr: ListenAddr) -> ListenAddr {
    match addr {
        ListenAddr::Tcp(tcp) if tcp.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], tcp.port())).into()
        }
        other => other,
    }
}
