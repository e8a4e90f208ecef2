//! Which TOML keys each tool's `--config` file accepts, the flag each one sets, and the value
//! types it takes.
//!
//! The rule is nsqd's (go-options `Resolve`): a key is its flag's name with `-` turned into `_`,
//! except where nsqd's options struct names it otherwise (`cfg:"..."`): `id`,
//! `nsqlookupd_tcp_addresses`, `auth_http_addresses`, `e2e_processing_latency_percentiles`.
//! Every flag except `--config`, `--version` and `--help` is a key. nsqlookupd's keys follow the
//! same rule; nsq_to_file has no config file upstream, so Squall's follows the rule with no
//! renames.
//!
//! `squalld`'s table is checked against its clap definition by a test (same flags, same value
//! shapes); the two others against their `--help` output and parsers.

/// The shape a key's value may take in the file, and how it becomes a flag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A TOML string.
    Str,
    /// A string, compared case-insensitively with these.
    OneOf(&'static [&'static str]),
    /// A TOML boolean, or a string Go's `strconv.ParseBool` reads.
    Bool,
    /// `tls_required`: a boolean, or the string `tcp-https`.
    BoolOrTcpHttps,
    /// A TOML integer, or a string Go's `strconv.ParseInt(s, 0, 64)` reads.
    Int,
    /// An [`Kind::Int`] that is not negative.
    Unsigned,
    /// An [`Kind::Int`] in [0, 65535].
    Port,
    /// A Go duration string (`"60s"`, `"1m30s"`), or an integer of milliseconds (go-options
    /// reads integers for durations as milliseconds).
    Duration,
    /// An array of strings, or one comma-separated string (go-options' string slices).
    StrList,
    /// An array of strings, or one string; commas are part of the value (`--consumer-opt`).
    Repeated,
    /// An array of numbers, or one comma-separated string of them.
    FloatList,
}

/// One config key.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    /// The long flag it sets, without dashes.
    pub flag: &'static str,
    pub kind: Kind,
}

/// One tool's config file rules.
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    /// The tool's name, for messages (`nsqd`, `nsqlookupd`, `nsq_to_file`).
    pub tool: &'static str,
    /// The log prefix before any flag is read: for errors about the config file itself.
    pub default_log_prefix: &'static str,
    pub keys: &'static [Key],
    /// Whether the tool's own parser knows `--config` (else the loader removes it from argv).
    pub parser_has_config_flag: bool,
}

impl Schema {
    pub fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn key_for_flag(&self, flag: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.flag == flag)
    }
}

const fn key(name: &'static str, flag: &'static str, kind: Kind) -> Key {
    Key { name, flag, kind }
}

const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "fatal"];
/// nsqd's example config sets `tls_min_version = ""` (keep the default).
const TLS_VERSIONS: &[&str] = &["", "tls1.0", "tls1.1", "tls1.2", "tls1.3"];

use Kind::*;

/// `squalld --config`: nsqd's keys (spec §9) plus Squall's `shards`, `grpc_address` and
/// `output_buffer_idle_flush`.
pub const NSQD: Schema = Schema {
    tool: "nsqd",
    default_log_prefix: "[nsqd] ",
    parser_has_config_flag: true,
    keys: &[
        // Basic
        key("log_level", "log-level", OneOf(LOG_LEVELS)),
        key("log_prefix", "log-prefix", Str),
        key("verbose", "verbose", Bool),
        key("id", "node-id", Int),
        key("worker_id", "worker-id", Bool),
        // Network
        key("tcp_address", "tcp-address", Str),
        key("http_address", "http-address", Str),
        key("https_address", "https-address", Str),
        key("broadcast_address", "broadcast-address", Str),
        key("broadcast_tcp_port", "broadcast-tcp-port", Port),
        key("broadcast_http_port", "broadcast-http-port", Port),
        key(
            "http_client_connect_timeout",
            "http-client-connect-timeout",
            Duration,
        ),
        key(
            "http_client_request_timeout",
            "http-client-request-timeout",
            Duration,
        ),
        key("topology_region", "topology-region", Str),
        key("topology_zone", "topology-zone", Str),
        key("enable_experiment", "enable-experiment", StrList),
        // Lookupd
        key("nsqlookupd_tcp_addresses", "lookupd-tcp-address", StrList),
        // Auth
        key("auth_http_addresses", "auth-http-address", StrList),
        key(
            "auth_http_request_method",
            "auth-http-request-method",
            OneOf(&["get", "post"]),
        ),
        // Queue
        key("data_path", "data-path", Str),
        key("mem_queue_size", "mem-queue-size", Unsigned),
        key("max_bytes_per_file", "max-bytes-per-file", Int),
        key("sync_every", "sync-every", Int),
        key("sync_timeout", "sync-timeout", Duration),
        key("queue_scan_worker_pool_max", "queue-scan-worker-pool-max", Int),
        key("queue_scan_selection_count", "queue-scan-selection-count", Int),
        // Limits
        key("msg_timeout", "msg-timeout", Duration),
        key("max_msg_timeout", "max-msg-timeout", Duration),
        key("max_msg_size", "max-msg-size", Int),
        key("max_body_size", "max-body-size", Int),
        key("max_req_timeout", "max-req-timeout", Duration),
        key("max_heartbeat_interval", "max-heartbeat-interval", Duration),
        key("max_rdy_count", "max-rdy-count", Int),
        key("max_output_buffer_size", "max-output-buffer-size", Int),
        key("max_output_buffer_timeout", "max-output-buffer-timeout", Duration),
        key("min_output_buffer_timeout", "min-output-buffer-timeout", Duration),
        key("output_buffer_timeout", "output-buffer-timeout", Duration),
        key("max_channel_consumers", "max-channel-consumers", Unsigned),
        // TLS
        key("tls_cert", "tls-cert", Str),
        key("tls_key", "tls-key", Str),
        key("tls_client_auth_policy", "tls-client-auth-policy", Str),
        key("tls_root_ca_file", "tls-root-ca-file", Str),
        key("tls_required", "tls-required", BoolOrTcpHttps),
        key("tls_min_version", "tls-min-version", OneOf(TLS_VERSIONS)),
        // Compression
        key("deflate", "deflate", Bool),
        key("max_deflate_level", "max-deflate-level", Int),
        key("snappy", "snappy", Bool),
        // statsd
        key("statsd_address", "statsd-address", Str),
        key("statsd_interval", "statsd-interval", Duration),
        key("statsd_mem_stats", "statsd-mem-stats", Bool),
        key("statsd_prefix", "statsd-prefix", Str),
        key("statsd_udp_packet_size", "statsd-udp-packet-size", Int),
        key("statsd_exclude_ephemeral", "statsd-exclude-ephemeral", Bool),
        // E2E
        key(
            "e2e_processing_latency_percentiles",
            "e2e-processing-latency-percentile",
            FloatList,
        ),
        key(
            "e2e_processing_latency_window_time",
            "e2e-processing-latency-window-time",
            Duration,
        ),
        // Squall
        key("shards", "shards", Unsigned),
        key("grpc_address", "grpc-address", Str),
        key("output_buffer_idle_flush", "output-buffer-idle-flush", Bool),
    ],
};

/// `squall-lookupd --config`: nsqlookupd's keys (spec B).
pub const NSQLOOKUPD: Schema = Schema {
    tool: "nsqlookupd",
    default_log_prefix: "[nsqlookupd] ",
    parser_has_config_flag: true,
    keys: &[
        key("log_level", "log-level", OneOf(LOG_LEVELS)),
        key("log_prefix", "log-prefix", Str),
        key("verbose", "verbose", Bool),
        key("tcp_address", "tcp-address", Str),
        key("http_address", "http-address", Str),
        key("broadcast_address", "broadcast-address", Str),
        key("inactive_producer_timeout", "inactive-producer-timeout", Duration),
        key("tombstone_lifetime", "tombstone-lifetime", Duration),
    ],
};

/// `squall-to-file --config`: nsq_to_file's flags as keys (spec C.1). nsq_to_file's own parser
/// has no `--config` flag, so the loader takes it out of argv.
pub const NSQ_TO_FILE: Schema = Schema {
    tool: "nsq_to_file",
    default_log_prefix: "[nsq_to_file] ",
    parser_has_config_flag: false,
    keys: &[
        key("log_level", "log-level", OneOf(LOG_LEVELS)),
        key("log_prefix", "log-prefix", Str),
        key("channel", "channel", Str),
        key("max_in_flight", "max-in-flight", Int),
        key("output_dir", "output-dir", Str),
        key("work_dir", "work-dir", Str),
        key("datetime_format", "datetime-format", Str),
        key("filename_format", "filename-format", Str),
        key("host_identifier", "host-identifier", Str),
        key("gzip_level", "gzip-level", Int),
        key("gzip", "gzip", Bool),
        key("skip_empty_files", "skip-empty-files", Bool),
        key("topic_refresh", "topic-refresh", Duration),
        key("topic_pattern", "topic-pattern", Str),
        key("rotate_size", "rotate-size", Int),
        key("rotate_interval", "rotate-interval", Duration),
        key("sync_interval", "sync-interval", Duration),
        key(
            "http_client_connect_timeout",
            "http-client-connect-timeout",
            Duration,
        ),
        key(
            "http_client_request_timeout",
            "http-client-request-timeout",
            Duration,
        ),
        key("nsqd_tcp_address", "nsqd-tcp-address", StrList),
        key("lookupd_http_address", "lookupd-http-address", StrList),
        key("topic", "topic", Repeated),
        key("consumer_opt", "consumer-opt", Repeated),
    ],
};
