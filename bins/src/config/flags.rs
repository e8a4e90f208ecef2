//! The flags, one struct per help heading, with nsqd's names, defaults and help texts
//! (spec §9), plus the parsers for nsqd's own value types.
//!
//! Every boolean is `--flag` or `--flag=<go bool>`, never `--flag <value>`: that is
//! `num_args(0..=1)` + `require_equals` + `default_missing_value("true")`. `normalize_go_args`
//! recognises booleans by `require_equals`, which nothing else sets.

use clap::{ArgAction, Args, Parser};

use super::go_values::{
    parse_go_bool, parse_go_duration_ms, parse_go_f64, parse_go_i64, parse_go_u16, parse_go_usize,
};
use super::{TlsMinVersion, TlsRequired};

#[derive(Parser, Debug)]
#[command(
    name = "squalld",
    about = "Squall: an io_uring, shard-per-core broker that speaks nsqd's protocols",
    long_about = None,
    disable_version_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) basic: BasicArgs,
    #[command(flatten)]
    pub(super) network: NetworkArgs,
    #[command(flatten)]
    pub(super) lookupd: LookupdArgs,
    #[command(flatten)]
    pub(super) auth: AuthArgs,
    #[command(flatten)]
    pub(super) queue: QueueArgs,
    #[command(flatten)]
    pub(super) limits: LimitsArgs,
    #[command(flatten)]
    pub(super) tls: TlsArgs,
    #[command(flatten)]
    pub(super) compression: CompressionArgs,
    #[command(flatten)]
    pub(super) statsd: StatsdArgs,
    #[command(flatten)]
    pub(super) e2e: E2eArgs,
    #[command(flatten)]
    pub(super) squall: SquallArgs,
    /// Arguments after the first non-flag one, ignored as nsqd ignores them.
    #[arg(hide = true, num_args = 0.., trailing_var_arg = true)]
    pub(super) extra_args: Vec<String>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Basic")]
pub(super) struct BasicArgs {
    /// Print version string
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) version: bool,
    /// TOML config file of nsqd's keys (flags override it)
    #[arg(long, default_value = "", value_name = "PATH")]
    pub(super) config: String,
    /// Log verbosity: debug, info, warn, error, or fatal
    #[arg(long, default_value = "info", value_name = "LEVEL", value_parser = parse_log_level)]
    pub(super) log_level: String,
    /// Log message prefix
    #[arg(long, default_value = "[nsqd] ", value_name = "PREFIX")]
    pub(super) log_prefix: String,
    /// [deprecated] has no effect, use --log-level
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) verbose: bool,
    /// Unique part for message IDs, in [0,1024) [default: hash of the hostname]
    #[arg(long, value_name = "N", value_parser = parse_go_i64)]
    pub(super) node_id: Option<i64>,
    /// [deprecated] use --node-id
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) worker_id: bool,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Network")]
pub(super) struct NetworkArgs {
    /// <addr>:<port> (or a Unix socket path) to listen on for TCP clients
    #[arg(long, default_value = "0.0.0.0:4150", value_name = "ADDR")]
    pub(super) tcp_address: String,
    /// <addr>:<port> (or a Unix socket path) to listen on for HTTP clients; empty disables
    #[arg(long, default_value = "0.0.0.0:4151", value_name = "ADDR")]
    pub(super) http_address: String,
    /// <addr>:<port> to listen on for HTTPS clients (only with --tls-cert and --tls-key)
    #[arg(long, default_value = "0.0.0.0:4152", value_name = "ADDR")]
    pub(super) https_address: String,
    /// Address registered with lookupd [default: the OS hostname]
    #[arg(long, value_name = "ADDR")]
    pub(super) broadcast_address: Option<String>,
    /// TCP port registered with lookupd (0: the port listened on)
    #[arg(long, default_value = "0", value_name = "PORT", value_parser = parse_go_u16)]
    pub(super) broadcast_tcp_port: u16,
    /// HTTP port registered with lookupd (0: the port listened on)
    #[arg(long, default_value = "0", value_name = "PORT", value_parser = parse_go_u16)]
    pub(super) broadcast_http_port: u16,
    /// Timeout for outbound HTTP connect
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) http_client_connect_timeout: i64,
    /// Timeout for outbound HTTP requests
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) http_client_request_timeout: i64,
    /// Region (one or more zones) for preferring closer consumers
    #[arg(long, default_value = "", value_name = "REGION")]
    pub(super) topology_region: String,
    /// Zone (a logical failure domain) for preferring closer consumers
    #[arg(long, default_value = "", value_name = "ZONE")]
    pub(super) topology_zone: String,
    /// Enable an experimental feature (repeatable): "topology-aware-consumption"
    #[arg(long, action = ArgAction::Append, value_name = "NAME")]
    pub(super) enable_experiment: Vec<String>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Lookupd")]
pub(super) struct LookupdArgs {
    /// lookupd TCP address (repeatable, or comma separated)
    #[arg(long, action = ArgAction::Append, value_delimiter = ',', value_name = "ADDR")]
    pub(super) lookupd_tcp_address: Vec<String>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Auth")]
pub(super) struct AuthArgs {
    /// <addr>:<port> or a full URL of an auth server (repeatable, or comma separated)
    #[arg(long, action = ArgAction::Append, value_delimiter = ',', value_name = "ADDR")]
    pub(super) auth_http_address: Vec<String>,
    /// HTTP method for auth server requests: get or post
    #[arg(long, default_value = "get", value_name = "METHOD")]
    pub(super) auth_http_request_method: String,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Queue")]
pub(super) struct QueueArgs {
    /// Path to store disk-backed messages (empty: the current directory)
    #[arg(long, default_value = "", value_name = "PATH")]
    pub(super) data_path: String,
    /// Messages kept in memory per topic/channel (0: everything goes to disk)
    #[arg(long, default_value = "10000", value_name = "N", value_parser = parse_go_usize)]
    pub(super) mem_queue_size: usize,
    /// Bytes per disk queue file before rolling
    #[arg(long, default_value = "104857600", value_name = "BYTES", value_parser = parse_go_i64)]
    pub(super) max_bytes_per_file: i64,
    /// Messages per disk queue fsync
    #[arg(long, default_value = "2500", value_name = "N", value_parser = parse_go_i64)]
    pub(super) sync_every: i64,
    /// Time per disk queue fsync
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) sync_timeout: i64,
    /// Max concurrency for checking in-flight and deferred message timeouts
    #[arg(long, default_value = "4", value_name = "N", value_parser = parse_go_i64)]
    pub(super) queue_scan_worker_pool_max: i64,
    /// Channels to check per cycle (every 100ms) for in-flight and deferred timeouts
    #[arg(long, default_value = "20", value_name = "N", value_parser = parse_go_i64)]
    pub(super) queue_scan_selection_count: i64,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Limits")]
pub(super) struct LimitsArgs {
    /// Default time to wait before auto-requeueing a message
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) msg_timeout: i64,
    /// Maximum time before a message times out
    #[arg(long, default_value = "15m", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) max_msg_timeout: i64,
    /// Maximum size of a single message in bytes
    #[arg(long, default_value = "1048576", value_name = "BYTES", value_parser = parse_go_i64)]
    pub(super) max_msg_size: i64,
    /// Maximum size of a single command body
    #[arg(long, default_value = "5242880", value_name = "BYTES", value_parser = parse_go_i64)]
    pub(super) max_body_size: i64,
    /// Maximum requeueing timeout for a message
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) max_req_timeout: i64,
    /// Maximum client-configurable time between heartbeats
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) max_heartbeat_interval: i64,
    /// Maximum RDY count for a client
    #[arg(long, default_value = "2500", value_name = "N", value_parser = parse_go_i64)]
    pub(super) max_rdy_count: i64,
    /// Maximum client-configurable output buffer size in bytes
    #[arg(long, default_value = "65536", value_name = "BYTES", value_parser = parse_go_i64)]
    pub(super) max_output_buffer_size: i64,
    /// Maximum client-configurable time between flushes to a client
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) max_output_buffer_timeout: i64,
    /// Minimum client-configurable time between flushes to a client
    #[arg(long, default_value = "25ms", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) min_output_buffer_timeout: i64,
    /// Default time between flushes to a client
    #[arg(long, default_value = "250ms", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) output_buffer_timeout: i64,
    /// Maximum consumers per channel (0: unlimited)
    #[arg(long, default_value = "0", value_name = "N", value_parser = parse_go_usize)]
    pub(super) max_channel_consumers: usize,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "TLS")]
pub(super) struct TlsArgs {
    /// Path to certificate file
    #[arg(long, default_value = "", value_name = "PATH")]
    pub(super) tls_cert: String,
    /// Path to key file
    #[arg(long, default_value = "", value_name = "PATH")]
    pub(super) tls_key: String,
    /// Client certificate auth policy: require or require-verify
    #[arg(long, default_value = "", value_name = "POLICY")]
    pub(super) tls_client_auth_policy: String,
    /// Path to certificate authority file
    #[arg(long, default_value = "", value_name = "PATH")]
    pub(super) tls_root_ca_file: String,
    /// Require TLS for client connections: true, false, or tcp-https
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "WHEN",
          value_parser = parse_tls_required)]
    pub(super) tls_required: TlsRequired,
    /// Minimum TLS version: tls1.0, tls1.1, tls1.2, or tls1.3
    #[arg(long, default_value = "tls1.0", value_name = "VERSION", value_parser = parse_tls_min_version)]
    pub(super) tls_min_version: TlsMinVersion,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Compression")]
pub(super) struct CompressionArgs {
    /// Enable deflate feature negotiation (client compression)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) deflate: bool,
    /// Max deflate level a client can negotiate, in [1,9]
    #[arg(long, default_value = "6", value_name = "LEVEL", value_parser = parse_go_i64)]
    pub(super) max_deflate_level: i64,
    /// Enable snappy feature negotiation (client compression)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) snappy: bool,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "statsd")]
pub(super) struct StatsdArgs {
    /// UDP <addr>:<port> of a statsd daemon; empty disables (needs --http-address: stats are read from it)
    #[arg(long, default_value = "", value_name = "ADDR")]
    pub(super) statsd_address: String,
    /// Time between pushes to statsd
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) statsd_interval: i64,
    /// Send memory and GC stats to statsd
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) statsd_mem_stats: bool,
    /// Prefix for statsd keys (%s is replaced by the host)
    #[arg(long, default_value = "nsq.%s", value_name = "PREFIX")]
    pub(super) statsd_prefix: String,
    /// Size in bytes of statsd UDP packets
    #[arg(long, default_value = "508", value_name = "BYTES", value_parser = parse_go_i64)]
    pub(super) statsd_udp_packet_size: i64,
    /// Skip ephemeral topics and channels when sending stats
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) statsd_exclude_ephemeral: bool,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "E2E")]
pub(super) struct E2eArgs {
    /// Processing-latency percentile to track, in (0, 1] (repeatable, or comma separated)
    #[arg(long, action = ArgAction::Append, value_delimiter = ',', value_name = "FLOAT",
          value_parser = parse_go_f64)]
    pub(super) e2e_processing_latency_percentile: Vec<f64>,
    /// Window of time over which the latency percentiles are computed
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_go_duration_ms)]
    pub(super) e2e_processing_latency_window_time: i64,
}

/// `--grpc-address` when not given: a port nsqd does not use, next to its own.
pub const GRPC_ADDRESS_DEFAULT: &str = "0.0.0.0:4153";

#[derive(Args, Debug)]
#[command(next_help_heading = "Squall")]
pub(super) struct SquallArgs {
    /// Shard threads, one per core, in [1,64] [default: the number of available cores]
    #[arg(long, value_name = "N", value_parser = parse_go_usize)]
    pub(super) shards: Option<usize>,
    /// <addr>:<port> to listen on for gRPC clients
    #[arg(long, default_value = GRPC_ADDRESS_DEFAULT, value_name = "ADDR")]
    pub(super) grpc_address: String,
    /// Send a consumer's buffered messages as soon as its shard is idle; the output buffer
    /// timeout stays the upper bound (nsqd always waits for the timer or a full buffer)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    pub(super) output_buffer_idle_flush: bool,
}

fn parse_tls_required(s: &str) -> Result<TlsRequired, String> {
    let lower = s.to_ascii_lowercase();
    if lower == "tcp-https" {
        return Ok(TlsRequired::RequiredExceptHttp);
    }
    match parse_go_bool(&lower) {
        Ok(true) => Ok(TlsRequired::Required),
        Ok(false) => Ok(TlsRequired::NotRequired),
        Err(_) => Err("expected true, false or tcp-https".into()),
    }
}

fn parse_tls_min_version(s: &str) -> Result<TlsMinVersion, String> {
    match s.to_ascii_lowercase().as_str() {
        // nsqd keeps the current value for an empty string: that is the default here.
        "" | "tls1.0" => Ok(TlsMinVersion::Tls10),
        "tls1.1" => Ok(TlsMinVersion::Tls11),
        "tls1.2" => Ok(TlsMinVersion::Tls12),
        "tls1.3" => Ok(TlsMinVersion::Tls13),
        other => Err(format!("unknown tlsVersionOption \"{other}\"")),
    }
}

fn parse_log_level(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "debug" | "info" | "warn" | "error" | "fatal" => Ok(lower),
        _ => Err(format!(
            "invalid log level '{s}' (debug, info, warn, error, fatal)"
        )),
    }
}
