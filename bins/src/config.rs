//! `squalld`'s command line: every nsqd flag of spec §9 with nsqd's names and defaults, plus
//! Squall's own `--shards` and `--grpc-address`.
//!
//! nsqd parses its flags with Go's `flag` package, and the scripts that start it use that syntax:
//! `-flag value`, `-flag=value`, `--flag value`, `--flag=value`, bare booleans (`-snappy`) and
//! `-snappy=false`; a boolean never takes the next argument as its value, and the first argument
//! that is not a flag ends flag parsing. clap knows none of the single-dash long forms, so
//! `normalize_go_args` rewrites argv into clap's syntax first, asking the clap `Command` itself
//! which flags take a value and which are booleans (one source of truth).
//!
//! Values are read the way Go reads them: durations as `time.ParseDuration` (then truncated to
//! milliseconds, as nsqd does with `d / time.Millisecond`), integers as `strconv.ParseInt(s, 0, 64)`
//! (so `0x10` and `1_000` work), booleans as `strconv.ParseBool`. nsqd's startup validations
//! (spec §9.12) that need no I/O are applied here with nsqd's messages.
//!
//! `--config FILE` (TOML, nsqd's keys) is read before this parser by
//! [`file::args_with_config_file`], which turns the file's keys into flags placed ahead of the
//! command line's, so one parser reads both and the command line wins. AUTH is parsed and
//! stored, but `Options` does not advertise it until it exists.
//!
//! # Layout
//! - `config.rs`: [`DaemonConfig`], [`parse_args`], nsqd's validations.
//! - `config/flags.rs`: the clap flag definitions, one struct per help heading.
//! - `config/goflag.rs`: the Go `flag` syntax → clap syntax rewrite, shared with the other tools.
//! - `config/go_values.rs`: Go's value parsers (bool, int, float, duration), shared likewise.
//! - `config/keys.rs`: each tool's config-file keys, the flag each sets, the value types.
//! - `config/file.rs`: `--config FILE` → flags, for all three tools.
//! - `config/preflight.rs`: the start-up checks that need I/O (data path, ports).

pub mod file;
mod flags;
pub use flags::GRPC_ADDRESS_DEFAULT;
pub mod go_values;
pub mod goflag;
pub mod keys;
pub mod preflight;

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};
use squall_core::message::{default_node_id, SHARDS_MAX};
use squall_core::options::Options;

use flags::Cli;
pub use go_values::{parse_go_duration_ms, parse_go_duration_ns};
use goflag::normalize_go_args;

/// What `squalld --version` prints.
pub const VERSION_LINE: &str = concat!(
    "squalld v",
    env!("CARGO_PKG_VERSION"),
    " (nsqd v1.3.0 compatible)"
);

/// nsqd's node IDs are 10 bits (spec §6.9): `--node-id` must be below this.
const NODE_ID_LIMIT: i64 = 1024;

/// Everything `squalld` was started with. Durations are in milliseconds.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The broker's options, filled from the flags of the same names.
    pub options: Options,

    // Basic
    /// `--version`: print [`VERSION_LINE`] and exit; no validation was applied.
    pub print_version: bool,
    /// `--config`: the TOML config file already merged into the flags (see [`file`]).
    pub config_path: String,
    /// `--log-level`, lowercased: debug, info, warn, error or fatal.
    pub log_level: String,
    pub log_prefix: String,
    /// Deprecated, no effect.
    pub verbose: bool,
    /// Deprecated, no effect.
    pub worker_id: bool,

    // Network
    pub tcp_address: String,
    /// Empty disables HTTP.
    pub http_address: String,
    pub https_address: String,
    pub grpc_address: String,
    /// Defaults to [`DaemonConfig::hostname`].
    pub broadcast_address: String,
    /// 0: the port actually listened on.
    pub broadcast_tcp_port: u16,
    /// 0: the port actually listened on.
    pub broadcast_http_port: u16,
    pub http_client_connect_timeout_ms: i64,
    pub http_client_request_timeout_ms: i64,
    pub topology_region: String,
    pub topology_zone: String,
    /// `--enable-experiment`, repeatable (only `topology-aware-consumption` means anything).
    pub enable_experiments: Vec<String>,

    // Lookupd
    pub lookupd_tcp_addresses: Vec<String>,

    // Auth
    pub auth_http_addresses: Vec<String>,
    /// `get` or `post`.
    pub auth_http_request_method: String,

    // Queue
    /// Empty: the current directory.
    pub data_path: String,
    pub max_bytes_per_file: i64,
    pub sync_every: i64,
    pub sync_timeout_ms: i64,
    pub queue_scan_worker_pool_max: i64,
    pub queue_scan_selection_count: i64,

    // statsd
    /// Empty disables statsd.
    pub statsd_address: String,
    pub statsd_interval_ms: i64,
    pub statsd_mem_stats: bool,
    pub statsd_prefix: String,
    pub statsd_udp_packet_size: i64,
    pub statsd_exclude_ephemeral: bool,

    // E2E
    /// Each in (0, 1], sorted descending as nsqd sorts them.
    pub e2e_processing_latency_percentiles: Vec<f64>,
    pub e2e_processing_latency_window_time_ms: i64,

    // TLS
    pub tls_cert: String,
    pub tls_key: String,
    pub tls_client_auth_policy: String,
    pub tls_root_ca_file: String,
    /// Already forced to `Required` when a client auth policy is set (as nsqd does).
    pub tls_required: TlsRequired,
    pub tls_min_version: TlsMinVersion,

    // Compression: the flags as given (`options` carries them too).
    pub deflate: bool,
    pub snappy: bool,

    // Squall
    /// Shard threads, in 1..=SHARDS_MAX.
    pub shards: usize,
    /// The OS hostname (broadcast-address and node-id defaults; lookupd IDENTIFY).
    pub hostname: String,
    /// Arguments from the first non-flag argument on (Go's `flag.Args()`); nsqd ignores them.
    pub extra_args: Vec<String>,
}

/// `--tls-required` (spec §9.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRequired {
    NotRequired,
    Required,
    /// `tcp-https`: TCP clients must upgrade, plain HTTP is still served.
    RequiredExceptHttp,
}

/// `--tls-min-version` (spec §9.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMinVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

/// Parses `squalld`'s arguments (the first one is the program name) with Go `flag` syntax.
///
/// `--help` comes back as an error of kind `DisplayHelp`: `err.exit()` prints it and exits 0.
pub fn parse_args<I, T>(args: I) -> Result<DaemonConfig, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_args_with_hostname(args, &os_hostname())
}

fn parse_args_with_hostname<I, T>(args: I, hostname: &str) -> Result<DaemonConfig, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = Cli::command();
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let argv = normalize_go_args(&cmd, argv)?;
    let matches = cmd.try_get_matches_from_mut(argv)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    cli.into_config(hostname)
        .map_err(|msg| cmd.error(ErrorKind::ValueValidation, msg))
}

impl Cli {
    /// Fills defaults that depend on the host and applies nsqd's startup validations in nsqd's
    /// order (spec §9.12). `--version` skips them, as nsqd prints its version first.
    fn into_config(self, hostname: &str) -> Result<DaemonConfig, String> {
        let Cli {
            basic,
            network,
            lookupd,
            auth,
            queue,
            limits,
            tls,
            compression,
            statsd,
            e2e,
            squall,
            extra_args,
        } = self;
        let validate = !basic.version;

        let node_id = basic
            .node_id
            .unwrap_or_else(|| i64::from(default_node_id(hostname)));
        if validate && !(1..=9).contains(&compression.max_deflate_level) {
            return Err("--max-deflate-level must be [1,9]".into());
        }
        if validate && !(0..NODE_ID_LIMIT).contains(&node_id) {
            return Err("--node-id must be [0,1024)".into());
        }
        let mut tls_required = tls.tls_required;
        if !tls.tls_client_auth_policy.is_empty() && tls_required == TlsRequired::NotRequired {
            tls_required = TlsRequired::Required;
        }
        if validate && tls.tls_cert.is_empty() != tls.tls_key.is_empty() {
            return Err(
                "failed to build TLS config - --tls-cert and --tls-key must be given together".into(),
            );
        }
        if validate && tls.tls_cert.is_empty() && tls_required != TlsRequired::NotRequired {
            return Err("cannot require TLS client connections without TLS key and cert".into());
        }
        if validate && !matches!(auth.auth_http_request_method.as_str(), "get" | "post") {
            return Err("--auth-http-request-method must be post or get".into());
        }
        let mut percentiles = e2e.e2e_processing_latency_percentile;
        if validate {
            if let Some(bad) = percentiles.iter().find(|&&p| !(p > 0.0 && p <= 1.0)) {
                return Err(format!("invalid E2E processing latency percentile: {bad}"));
            }
        }
        percentiles.sort_by(|a, b| b.total_cmp(a));
        let default_shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = squall.shards.unwrap_or(default_shards.min(SHARDS_MAX));
        if validate && !(1..=SHARDS_MAX).contains(&shards) {
            return Err(format!("--shards must be [1,{SHARDS_MAX}]"));
        }

        let options = Options {
            // Out-of-range values only survive with --version, which never starts a broker.
            node_id: u16::try_from(node_id).unwrap_or(0),
            mem_queue_size: queue.mem_queue_size,
            msg_timeout_ms: limits.msg_timeout,
            max_msg_timeout_ms: limits.max_msg_timeout,
            max_msg_size: limits.max_msg_size,
            max_body_size: limits.max_body_size,
            max_req_timeout_ms: limits.max_req_timeout,
            max_heartbeat_interval_ms: limits.max_heartbeat_interval,
            max_rdy_count: limits.max_rdy_count,
            max_output_buffer_size: limits.max_output_buffer_size,
            max_output_buffer_timeout_ms: limits.max_output_buffer_timeout,
            min_output_buffer_timeout_ms: limits.min_output_buffer_timeout,
            output_buffer_timeout_ms: limits.output_buffer_timeout,
            output_buffer_idle_flush: squall.output_buffer_idle_flush,
            max_channel_consumers: limits.max_channel_consumers,
            max_deflate_level: compression.max_deflate_level,
            snappy: compression.snappy,
            deflate: compression.deflate,
            tls_enabled: !tls.tls_cert.is_empty() && !tls.tls_key.is_empty(),
            tls_required: tls_required != TlsRequired::NotRequired,
            auth_enabled: auth.auth_http_address.iter().any(|a| !a.is_empty()),
            e2e_percentiles: percentiles.clone(),
            e2e_window_ms: e2e.e2e_processing_latency_window_time,
            topology_region: network.topology_region.clone(),
            topology_zone: network.topology_zone.clone(),
            ..Options::default()
        };
        let non_empty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect();

        Ok(DaemonConfig {
            options,
            print_version: basic.version,
            config_path: basic.config,
            log_level: basic.log_level,
            log_prefix: basic.log_prefix,
            verbose: basic.verbose,
            worker_id: basic.worker_id,
            tcp_address: network.tcp_address,
            http_address: network.http_address,
            https_address: network.https_address,
            grpc_address: squall.grpc_address,
            broadcast_address: network.broadcast_address.unwrap_or_else(|| hostname.to_string()),
            broadcast_tcp_port: network.broadcast_tcp_port,
            broadcast_http_port: network.broadcast_http_port,
            http_client_connect_timeout_ms: network.http_client_connect_timeout,
            http_client_request_timeout_ms: network.http_client_request_timeout,
            topology_region: network.topology_region,
            topology_zone: network.topology_zone,
            enable_experiments: non_empty(network.enable_experiment),
            lookupd_tcp_addresses: non_empty(lookupd.lookupd_tcp_address),
            auth_http_addresses: non_empty(auth.auth_http_address),
            auth_http_request_method: auth.auth_http_request_method,
            data_path: queue.data_path,
            max_bytes_per_file: queue.max_bytes_per_file,
            sync_every: queue.sync_every,
            sync_timeout_ms: queue.sync_timeout,
            queue_scan_worker_pool_max: queue.queue_scan_worker_pool_max,
            queue_scan_selection_count: queue.queue_scan_selection_count,
            statsd_address: statsd.statsd_address,
            statsd_interval_ms: statsd.statsd_interval,
            statsd_mem_stats: statsd.statsd_mem_stats,
            statsd_prefix: statsd.statsd_prefix,
            statsd_udp_packet_size: statsd.statsd_udp_packet_size,
            statsd_exclude_ephemeral: statsd.statsd_exclude_ephemeral,
            e2e_processing_latency_percentiles: percentiles,
            e2e_processing_latency_window_time_ms: e2e.e2e_processing_latency_window_time,
            tls_cert: tls.tls_cert,
            tls_key: tls.tls_key,
            tls_client_auth_policy: tls.tls_client_auth_policy,
            tls_root_ca_file: tls.tls_root_ca_file,
            tls_required,
            tls_min_version: tls.tls_min_version,
            deflate: compression.deflate,
            snappy: compression.snappy,
            shards,
            hostname: hostname.to_string(),
            extra_args,
        })
    }
}

/// The OS hostname, as Go's `os.Hostname` returns it on Linux (uname's nodename).
pub fn os_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, which is the length passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "test-host.example";

    fn parse(args: &[&str]) -> Result<DaemonConfig, clap::Error> {
        let mut argv = vec!["squalld"];
        argv.extend_from_slice(args);
        parse_args_with_hostname(argv, HOST)
    }

    fn ok(args: &[&str]) -> DaemonConfig {
        match parse(args) {
            Ok(cfg) => cfg,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse(args) {
            Ok(cfg) => panic!("{args:?} should fail, got {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_nsqds() {
        let c = ok(&[]);
        let o = &c.options;
        let d = Options::default();
        assert_eq!(o.node_id, default_node_id(HOST));
        assert_eq!(o.mem_queue_size, 10_000);
        assert_eq!(o.msg_timeout_ms, 60_000);
        assert_eq!(o.max_msg_timeout_ms, 900_000);
        assert_eq!(o.max_msg_size, 1_048_576);
        assert_eq!(o.max_body_size, 5_242_880);
        assert_eq!(o.max_req_timeout_ms, 3_600_000);
        assert_eq!(o.client_timeout_ms, d.client_timeout_ms);
        assert_eq!(o.max_heartbeat_interval_ms, 60_000);
        assert_eq!(o.max_rdy_count, 2500);
        assert_eq!(o.max_output_buffer_size, 65_536);
        assert_eq!(o.max_output_buffer_timeout_ms, 30_000);
        assert_eq!(o.min_output_buffer_timeout_ms, 25);
        assert_eq!(o.output_buffer_timeout_ms, 250);
        assert_eq!(o.max_channel_consumers, 0);
        assert_eq!(o.max_deflate_level, 6);
        assert!(o.snappy && o.deflate && !o.tls_enabled && !o.tls_required && !o.auth_enabled);

        assert!(!c.print_version);
        assert_eq!(c.config_path, "");
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_prefix, "[nsqd] ");
        assert!(!c.verbose && !c.worker_id);
        assert_eq!(c.tcp_address, "0.0.0.0:4150");
        assert_eq!(c.http_address, "0.0.0.0:4151");
        assert_eq!(c.https_address, "0.0.0.0:4152");
        assert_eq!(c.grpc_address, "0.0.0.0:4153");
        assert_eq!(c.broadcast_address, HOST);
        assert_eq!((c.broadcast_tcp_port, c.broadcast_http_port), (0, 0));
        assert_eq!(c.http_client_connect_timeout_ms, 2_000);
        assert_eq!(c.http_client_request_timeout_ms, 5_000);
        assert_eq!((c.topology_region.as_str(), c.topology_zone.as_str()), ("", ""));
        assert!(c.enable_experiments.is_empty());
        assert!(c.lookupd_tcp_addresses.is_empty());
        assert!(c.auth_http_addresses.is_empty());
        assert_eq!(c.auth_http_request_method, "get");
        assert_eq!(c.data_path, "");
        assert_eq!(c.max_bytes_per_file, 104_857_600);
        assert_eq!(c.sync_every, 2500);
        assert_eq!(c.sync_timeout_ms, 2_000);
        assert_eq!(c.queue_scan_worker_pool_max, 4);
        assert_eq!(c.queue_scan_selection_count, 20);
        assert_eq!(c.statsd_address, "");
        assert_eq!(c.statsd_interval_ms, 60_000);
        assert!(c.statsd_mem_stats);
        assert_eq!(c.statsd_prefix, "nsq.%s");
        assert_eq!(c.statsd_udp_packet_size, 508);
        assert!(!c.statsd_exclude_ephemeral);
        assert!(c.e2e_processing_latency_percentiles.is_empty());
        assert_eq!(c.e2e_processing_latency_window_time_ms, 600_000);
        assert_eq!((c.tls_cert.as_str(), c.tls_key.as_str()), ("", ""));
        assert_eq!(c.tls_client_auth_policy, "");
        assert_eq!(c.tls_root_ca_file, "");
        assert_eq!(c.tls_required, TlsRequired::NotRequired);
        assert_eq!(c.tls_min_version, TlsMinVersion::Tls10);
        assert!(c.deflate && c.snappy);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.shards, cores.min(SHARDS_MAX));
        assert_eq!(c.hostname, HOST);
        assert!(c.extra_args.is_empty());
    }

    #[test]
    fn all_four_value_syntaxes() {
        for args in [
            &["-tcp-address", "127.0.0.1:1"][..],
            &["-tcp-address=127.0.0.1:1"],
            &["--tcp-address", "127.0.0.1:1"],
            &["--tcp-address=127.0.0.1:1"],
        ] {
            assert_eq!(ok(args).tcp_address, "127.0.0.1:1", "{args:?}");
        }
    }

    #[test]
    fn a_value_may_start_with_a_dash_or_be_empty() {
        assert_eq!(ok(&["-log-prefix", "-x-"]).log_prefix, "-x-");
        assert_eq!(ok(&["--log-prefix", "--"]).log_prefix, "--");
        assert_eq!(ok(&["-http-address="]).http_address, "");
        assert_eq!(ok(&["-http-address", ""]).http_address, "");
        assert_eq!(ok(&["--http-address="]).http_address, "");
        assert_eq!(ok(&["--statsd-prefix=a=b"]).statsd_prefix, "a=b");
    }

    #[test]
    fn bare_booleans() {
        let c = ok(&["-verbose", "--worker-id", "-statsd-exclude-ephemeral"]);
        assert!(c.verbose && c.worker_id && c.statsd_exclude_ephemeral);
        assert!(ok(&["--snappy"]).snappy);
    }

    #[test]
    fn boolean_values_in_every_go_spelling() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(ok(&[&format!("-verbose={v}")]).verbose, "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            let c = ok(&[&format!("-snappy={v}"), &format!("--deflate={v}")]);
            assert!(!c.snappy && !c.deflate, "{v}");
        }
        assert!(!ok(&["--statsd-mem-stats=false"]).statsd_mem_stats);
        assert!(err(&["-snappy=yes"]).contains("invalid boolean"));
        assert!(err(&["-snappy="]).contains("invalid boolean"));
    }

    #[test]
    fn a_boolean_never_takes_the_next_argument() {
        // Go stops parsing at the first non-flag argument; everything after it is left over.
        let c = ok(&["--snappy", "false", "--tcp-address=x:1"]);
        assert!(c.snappy);
        assert_eq!(c.tcp_address, "0.0.0.0:4150");
        assert_eq!(c.extra_args, ["false", "--tcp-address=x:1"]);
        let c = ok(&["-verbose", "somearg"]);
        assert!(c.verbose);
        assert_eq!(c.extra_args, ["somearg"]);
    }

    #[test]
    fn double_dash_ends_flags() {
        let c = ok(&["-verbose", "--", "-snappy=false"]);
        assert!(c.snappy);
        assert_eq!(c.extra_args, ["-snappy=false"]);
        assert_eq!(ok(&["-", "x"]).extra_args, ["-", "x"]);
    }

    #[test]
    fn the_brief_s_go_syntax_example() {
        let c = ok(&[
            "-mem-queue-size",
            "5",
            "-max-rdy-count=50",
            "--msg-timeout=2s",
            "-snappy=false",
        ]);
        assert_eq!(c.options.mem_queue_size, 5);
        assert_eq!(c.options.max_rdy_count, 50);
        assert_eq!(c.options.msg_timeout_ms, 2_000);
        assert!(!c.snappy);
    }

    #[test]
    fn the_last_occurrence_wins() {
        assert_eq!(
            ok(&["--max-rdy-count=1", "-max-rdy-count", "2"])
                .options
                .max_rdy_count,
            2
        );
        assert!(!ok(&["-snappy", "-snappy=false"]).snappy);
    }

    #[test]
    fn repeatable_and_comma_separated() {
        let c = ok(&[
            "--lookupd-tcp-address=a:4160",
            "-lookupd-tcp-address",
            "b:4160,c:4160",
            "--auth-http-address=http://x/auth",
            "-auth-http-address=y:4181,z:4181",
            "--enable-experiment=topology-aware-consumption",
        ]);
        assert_eq!(c.lookupd_tcp_addresses, ["a:4160", "b:4160", "c:4160"]);
        assert_eq!(c.auth_http_addresses, ["http://x/auth", "y:4181", "z:4181"]);
        assert_eq!(c.enable_experiments, ["topology-aware-consumption"]);
        assert!(ok(&["--lookupd-tcp-address="]).lookupd_tcp_addresses.is_empty());
    }

    #[test]
    fn percentiles_are_repeatable_validated_and_sorted_descending() {
        let c = ok(&[
            "--e2e-processing-latency-percentile=0.5,1.0",
            "-e2e-processing-latency-percentile",
            "0.99",
        ]);
        assert_eq!(c.e2e_processing_latency_percentiles, [1.0, 0.99, 0.5]);
        for bad in ["0", "1.5", "-0.1", "NaN"] {
            let msg = err(&[&format!("--e2e-processing-latency-percentile={bad}")]);
            assert!(
                msg.contains("invalid E2E processing latency percentile"),
                "{bad}: {msg}"
            );
        }
        err(&["--e2e-processing-latency-percentile=abc"]);
        assert_eq!(
            ok(&["--e2e-processing-latency-window-time=1m"]).e2e_processing_latency_window_time_ms,
            60_000
        );
    }

    #[test]
    fn durations_fill_options() {
        let c = ok(&[
            "--msg-timeout=1m30s",
            "--max-msg-timeout=1h",
            "--max-req-timeout=2.5s",
            "--max-heartbeat-interval=90s",
            "--max-output-buffer-timeout=1s",
            "--min-output-buffer-timeout=100us",
            "--output-buffer-timeout=0",
            "--sync-timeout=250ms",
            "--statsd-interval=10s",
            "--http-client-connect-timeout=3s",
            "--http-client-request-timeout=7s",
        ]);
        let o = &c.options;
        assert_eq!(o.msg_timeout_ms, 90_000);
        assert_eq!(o.max_msg_timeout_ms, 3_600_000);
        assert_eq!(o.max_req_timeout_ms, 2_500);
        assert_eq!(o.max_heartbeat_interval_ms, 90_000);
        assert_eq!(o.max_output_buffer_timeout_ms, 1_000);
        assert_eq!(o.min_output_buffer_timeout_ms, 0);
        assert_eq!(o.output_buffer_timeout_ms, 0);
        assert_eq!(c.sync_timeout_ms, 250);
        assert_eq!(c.statsd_interval_ms, 10_000);
        assert_eq!(c.http_client_connect_timeout_ms, 3_000);
        assert_eq!(c.http_client_request_timeout_ms, 7_000);
        assert!(err(&["--msg-timeout=60"]).contains("missing unit"));
        assert!(err(&["--msg-timeout=5x"]).contains("unknown unit"));
    }

    #[test]
    fn integers_and_limits_fill_options() {
        let c = ok(&[
            "--node-id=1023",
            "--mem-queue-size=0",
            "--max-msg-size=0x100",
            "--max-body-size=1_000_000",
            "--max-rdy-count=010",
            "--max-output-buffer-size=131072",
            "--max-channel-consumers=3",
            "--max-deflate-level=9",
            "--max-bytes-per-file=1024",
            "--sync-every=1",
            "--queue-scan-worker-pool-max=8",
            "--queue-scan-selection-count=40",
            "--statsd-udp-packet-size=1400",
            "--broadcast-tcp-port=4150",
            "--broadcast-http-port=4151",
        ]);
        let o = &c.options;
        assert_eq!(o.node_id, 1023);
        assert_eq!(o.mem_queue_size, 0);
        assert_eq!(o.max_msg_size, 256);
        assert_eq!(o.max_body_size, 1_000_000);
        assert_eq!(o.max_rdy_count, 8);
        assert_eq!(o.max_output_buffer_size, 131_072);
        assert_eq!(o.max_channel_consumers, 3);
        assert_eq!(o.max_deflate_level, 9);
        assert_eq!(c.max_bytes_per_file, 1024);
        assert_eq!(c.sync_every, 1);
        assert_eq!(
            (c.queue_scan_worker_pool_max, c.queue_scan_selection_count),
            (8, 40)
        );
        assert_eq!(c.statsd_udp_packet_size, 1400);
        assert_eq!((c.broadcast_tcp_port, c.broadcast_http_port), (4150, 4151));
        err(&["--mem-queue-size=-1"]);
        err(&["--broadcast-tcp-port=65536"]);
        err(&["--max-rdy-count=12abc"]);
    }

    #[test]
    fn strings_are_stored() {
        let c = ok(&[
            "--config=/etc/nsqd.toml",
            "--log-level=WARN",
            "--broadcast-address=10.0.0.1",
            "--data-path=/var/lib/squall",
            "--topology-region=eu",
            "--topology-zone=eu-1a",
            "--statsd-address=127.0.0.1:8125",
            "--statsd-prefix=squall.%s",
            "--auth-http-request-method=post",
            "--tls-root-ca-file=/ca.pem",
            "--tls-min-version=TLS1.2",
            "--grpc-address=127.0.0.1:9000",
            "--shards=3",
        ]);
        assert_eq!(c.config_path, "/etc/nsqd.toml");
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.broadcast_address, "10.0.0.1");
        assert_eq!(c.data_path, "/var/lib/squall");
        assert_eq!(
            (c.topology_region.as_str(), c.topology_zone.as_str()),
            ("eu", "eu-1a")
        );
        assert_eq!(c.statsd_address, "127.0.0.1:8125");
        assert_eq!(c.statsd_prefix, "squall.%s");
        assert_eq!(c.auth_http_request_method, "post");
        assert_eq!(c.tls_root_ca_file, "/ca.pem");
        assert_eq!(c.tls_min_version, TlsMinVersion::Tls12);
        assert_eq!(c.grpc_address, "127.0.0.1:9000");
        assert_eq!(c.shards, 3);
        assert!(err(&["--log-level=loud"]).contains("invalid log level"));
        assert!(err(&["--tls-min-version=ssl3.0"]).contains("unknown tlsVersionOption"));
    }

    #[test]
    fn tls_required_forms() {
        let tls = ["--tls-cert=c.pem", "--tls-key=k.pem"];
        let with = |flag: &str| ok(&[tls[0], tls[1], flag]).tls_required;
        assert_eq!(with("--tls-required"), TlsRequired::Required);
        assert_eq!(with("-tls-required=true"), TlsRequired::Required);
        assert_eq!(with("-tls-required=TCP-HTTPS"), TlsRequired::RequiredExceptHttp);
        assert_eq!(with("--tls-required=tcp-https"), TlsRequired::RequiredExceptHttp);
        assert_eq!(with("--tls-required=FALSE"), TlsRequired::NotRequired);
        assert_eq!(with("--tls-client-auth-policy=require"), TlsRequired::Required);
        // Bare, it does not take the next argument either.
        let c = ok(&[tls[0], tls[1], "--tls-required", "tcp-https"]);
        assert_eq!(c.tls_required, TlsRequired::Required);
        assert_eq!(c.extra_args, ["tcp-https"]);
        assert!(err(&["--tls-required=maybe"]).contains("tcp-https"));
        let msg = err(&["--tls-required"]);
        assert!(msg.contains("cannot require TLS client connections without TLS key and cert"));
        assert!(err(&["--tls-client-auth-policy=require-verify"]).contains("without TLS key"));
        assert!(err(&["--tls-cert=c.pem"]).contains("failed to build TLS config"));
    }

    #[test]
    fn startup_validations_use_nsqds_messages() {
        assert!(err(&["--node-id=1024"]).contains("--node-id must be [0,1024)"));
        assert!(err(&["--node-id=-1"]).contains("--node-id must be [0,1024)"));
        assert_eq!(ok(&["--node-id=0"]).options.node_id, 0);
        assert!(err(&["--max-deflate-level=0"]).contains("--max-deflate-level must be [1,9]"));
        assert!(err(&["--max-deflate-level=10"]).contains("--max-deflate-level must be [1,9]"));
        let msg = err(&["--auth-http-request-method=put"]);
        assert!(msg.contains("--auth-http-request-method must be post or get"));
        assert!(err(&["--shards=0"]).contains("--shards must be [1,64]"));
        assert!(err(&["--shards=65"]).contains("--shards must be [1,64]"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            parse(&["--bogus"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse(&["-bogus=1"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert!(parse(&["--tcp-address"]).is_err());
        assert!(parse(&["-max-rdy-count"]).is_err());
        assert!(err(&["---tcp-address=x"]).contains("bad flag syntax"));
        assert!(err(&["-=x"]).contains("bad flag syntax"));
        assert!(parse(&["--max-rdy-count=lots"]).is_err());
    }

    #[test]
    fn version_skips_validation() {
        for flag in ["-version", "--version", "--version=true"] {
            let c = ok(&[flag, "--node-id=5000"]);
            assert!(c.print_version, "{flag}");
        }
        assert!(!ok(&["-version=false"]).print_version);
        assert!(VERSION_LINE.starts_with("squalld v") && VERSION_LINE.ends_with("(nsqd v1.3.0 compatible)"));
    }

    #[test]
    fn help_in_go_and_gnu_spellings() {
        for flag in ["-h", "-help", "--help", "--h"] {
            let e = parse(&[flag]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{flag}");
        }
        let help = parse(&["--help"]).unwrap_err().to_string();
        for heading in [
            "Basic:",
            "Network:",
            "Lookupd:",
            "Auth:",
            "Queue:",
            "Limits:",
            "TLS:",
            "Compression:",
            "statsd:",
            "E2E:",
            "Squall:",
        ] {
            assert!(help.contains(heading), "missing {heading} in\n{help}");
        }
        assert!(help.contains("[default: 60s]"));
        assert!(help.contains("--snappy[=<BOOL>]"));
    }

    #[test]
    fn hostname_is_known() {
        assert!(!os_hostname().is_empty());
        assert!(parse_args(["squalld"]).is_ok());
    }
}
