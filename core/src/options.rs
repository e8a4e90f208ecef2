//! nsqd-compatible runtime options, with nsqd's defaults (spec §9), in the units nsqd's flags use.
//!
//! Durations are kept in milliseconds; `squalld` converts Go duration strings at the edge.

/// Options that shape the broker's behaviour. Field names follow nsqd's flags.
#[derive(Clone, Debug)]
pub struct Options {
    pub node_id: u16,
    pub mem_queue_size: usize,
    pub msg_timeout_ms: i64,
    pub max_msg_timeout_ms: i64,
    pub max_msg_size: i64,
    pub max_body_size: i64,
    pub max_req_timeout_ms: i64,
    /// nsqd's non-flag `ClientTimeout`; the default heartbeat interval is half of it.
    pub client_timeout_ms: i64,
    pub max_heartbeat_interval_ms: i64,
    pub max_rdy_count: i64,
    pub max_output_buffer_size: i64,
    pub max_output_buffer_timeout_ms: i64,
    pub min_output_buffer_timeout_ms: i64,
    pub output_buffer_timeout_ms: i64,
    /// Squall's `--output-buffer-idle-flush`: a consumer's buffered deliveries go out as soon as
    /// its shard has nothing else to do, instead of waiting for the flush timer (which stays the
    /// upper bound). Off by default: nsqd holds them for the timer (spec §5.7 rule d).
    pub output_buffer_idle_flush: bool,
    pub max_channel_consumers: usize,
    pub max_deflate_level: i64,
    /// Whether the server offers snappy / deflate / TLS (`--snappy`, `--deflate`, a TLS cert and
    /// key), and whether AUTH is on (an auth server is configured). The runtime adapter carries
    /// out the upgrades the broker asks for.
    pub snappy: bool,
    pub deflate: bool,
    pub tls_enabled: bool,
    /// `--tls-required` (`true` or `tcp-https`): every TCP command but IDENTIFY fails until the
    /// connection has upgraded to TLS.
    pub tls_required: bool,
    pub auth_enabled: bool,
    /// `--e2e-processing-latency-percentile`, sorted descending; empty disables the tracking.
    pub e2e_percentiles: Vec<f64>,
    pub e2e_window_ms: i64,
    /// `--topology-region` / `--topology-zone`, echoed in the IDENTIFY reply (nsqd master).
    pub topology_region: String,
    pub topology_zone: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_id: 0,
            mem_queue_size: 10_000,
            msg_timeout_ms: 60_000,
            max_msg_timeout_ms: 15 * 60_000,
            max_msg_size: 1_048_576,
            max_body_size: 5_242_880,
            max_req_timeout_ms: 60 * 60_000,
            client_timeout_ms: 60_000,
            max_heartbeat_interval_ms: 60_000,
            max_rdy_count: 2500,
            max_output_buffer_size: 65_536,
            max_output_buffer_timeout_ms: 30_000,
            min_output_buffer_timeout_ms: 25,
            output_buffer_timeout_ms: 250,
            output_buffer_idle_flush: false,
            max_channel_consumers: 0,
            max_deflate_level: 6,
            snappy: false,
            deflate: false,
            tls_enabled: false,
            tls_required: false,
            auth_enabled: false,
            e2e_percentiles: Vec::new(),
            e2e_window_ms: 10 * 60_000,
            topology_region: String::new(),
            topology_zone: String::new(),
        }
    }
}

impl Options {
    /// Default per-client heartbeat interval: half of `ClientTimeout`.
    pub fn default_heartbeat_interval_ms(&self) -> i64 {
        self.client_timeout_ms / 2
    }

    /// Default per-client output buffer size (nsqd's `defaultBufferSize`).
    pub const DEFAULT_OUTPUT_BUFFER_SIZE: i64 = 16 * 1024;

    /// Longest command line a client may send, terminator included (nsqd's 16 KiB bufio reader).
    pub const LINE_LEN_MAX: usize = 16 * 1024;
}
