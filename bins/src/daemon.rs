//! From squalld's command line to a node: addresses, data directory, and the `/config/:opt`
//! values nsqd's HTTP API reports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

use crate::config::{preflight, DaemonConfig, TlsMinVersion, TlsRequired};
use crate::{DiskOptions, NodeConfig};

/// A TCP-only listen address (`host:port` or `:port`). nsqd listens on `--https-address` with
/// `tls.Listen("tcp", ...)`, so a Unix socket path fails there with Go's message; squalld's own
/// `--grpc-address` is TCP only too.
fn resolve(flag: &str, addr: &str) -> anyhow::Result<SocketAddr> {
    if let Err(why) = preflight::split_host_port(addr) {
        anyhow::bail!("listen ({addr}) failed - listen tcp: address {addr}: {why}");
    }
    preflight::resolve_listen(addr, flag)
}

pub fn node_config(c: &DaemonConfig, pin_threads: bool) -> anyhow::Result<NodeConfig> {
    let data_path = if c.data_path.is_empty() {
        std::env::current_dir().context("no --data-path and no current directory")?
    } else {
        PathBuf::from(&c.data_path)
    };
    let tls = if c.options.tls_enabled {
        let files = crate::tls::TlsFiles {
            cert: &c.tls_cert,
            key: &c.tls_key,
            root_ca: &c.tls_root_ca_file,
            client_auth: crate::tls::ClientAuth::from_policy(&c.tls_client_auth_policy),
            min_version: c.tls_min_version,
        };
        Some(crate::tls::server_config(&files).map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    Ok(NodeConfig {
        options: c.options.clone(),
        https_address: if c.https_address.is_empty() || tls.is_none() {
            None
        } else {
            Some(resolve("--https-address", &c.https_address)?)
        },
        tls,
        http_tls_required: c.tls_required == TlsRequired::Required,
        tcp_address: preflight::listen_addr(&c.tcp_address, "--tcp-address")?,
        http_address: if c.http_address.is_empty() {
            None
        } else {
            Some(preflight::listen_addr(&c.http_address, "--http-address")?)
        },
        grpc_address: if c.grpc_address.is_empty() {
            None
        } else {
            Some(resolve("--grpc-address", &c.grpc_address)?)
        },
        shards: c.shards,
        pin_threads,
        data_path: Some(data_path),
        disk: DiskOptions {
            max_bytes_per_file: c.max_bytes_per_file,
            sync_every: c.sync_every,
            sync_timeout_ms: c.sync_timeout_ms,
        },
        hostname: c.hostname.clone(),
        broadcast_address: c.broadcast_address.clone(),
        lookupd_tcp_addresses: c.lookupd_tcp_addresses.clone(),
        auth_http_addresses: c.auth_http_addresses.clone(),
        auth_http_post: c.auth_http_request_method == "post",
        http_client_connect_timeout_ms: c.http_client_connect_timeout_ms.max(1) as u64,
        http_client_request_timeout_ms: c.http_client_request_timeout_ms.max(1) as u64,
        broadcast_tcp_port: c.broadcast_tcp_port,
        broadcast_http_port: c.broadcast_http_port,
        config_values: config_values(c),
        statsd_address: (!c.statsd_address.is_empty()).then(|| c.statsd_address.clone()),
        statsd_prefix: c.statsd_prefix.clone(),
        statsd_interval_ms: c.statsd_interval_ms.max(1) as u64,
        statsd_mem_stats: c.statsd_mem_stats,
        statsd_udp_packet_size: c.statsd_udp_packet_size.max(1) as usize,
        statsd_exclude_ephemeral: c.statsd_exclude_ephemeral,
    })
}

const NS_PER_MS: i64 = 1_000_000;

/// Every option `GET /config/:opt` can read, by nsqd's config name, rendered as nsqd renders
/// it: durations in nanoseconds, `log_level` and `tls_min_version` as numbers (spec A.9).
/// `broadcast_tcp_port`, `broadcast_http_port` and `statsd_prefix` are as given here; the node
/// fills in the real ports once it listens (`Node::start`).
pub fn config_values(c: &DaemonConfig) -> BTreeMap<String, Value> {
    let o = &c.options;
    let log_level = ["debug", "info", "warn", "error", "fatal"]
        .iter()
        .position(|l| *l == c.log_level)
        .map_or(2, |i| i + 1);
    let tls_min = match c.tls_min_version {
        TlsMinVersion::Tls10 => 769,
        TlsMinVersion::Tls11 => 770,
        TlsMinVersion::Tls12 => 771,
        TlsMinVersion::Tls13 => 772,
    };
    let tls_required = match c.tls_required {
        TlsRequired::NotRequired => 0,
        TlsRequired::RequiredExceptHttp => 1,
        TlsRequired::Required => 2,
    };
    let pairs: Vec<(&str, Value)> = vec![
        ("id", json!(o.node_id)),
        ("log_level", json!(log_level)),
        ("log_prefix", json!(c.log_prefix)),
        ("topology_region", json!(c.topology_region)),
        ("topology_zone", json!(c.topology_zone)),
        ("tcp_address", json!(c.tcp_address)),
        ("http_address", json!(c.http_address)),
        ("https_address", json!(c.https_address)),
        ("broadcast_address", json!(c.broadcast_address)),
        ("broadcast_tcp_port", json!(c.broadcast_tcp_port)),
        ("broadcast_http_port", json!(c.broadcast_http_port)),
        ("nsqlookupd_tcp_addresses", json!(c.lookupd_tcp_addresses)),
        ("auth_http_addresses", json!(c.auth_http_addresses)),
        ("auth_http_request_method", json!(c.auth_http_request_method)),
        (
            "http_client_connect_timeout",
            json!(c.http_client_connect_timeout_ms * NS_PER_MS),
        ),
        (
            "http_client_request_timeout",
            json!(c.http_client_request_timeout_ms * NS_PER_MS),
        ),
        ("data_path", json!(c.data_path)),
        ("mem_queue_size", json!(o.mem_queue_size)),
        ("max_bytes_per_file", json!(c.max_bytes_per_file)),
        ("sync_every", json!(c.sync_every)),
        ("sync_timeout", json!(c.sync_timeout_ms * NS_PER_MS)),
        ("queue_scan_selection_count", json!(c.queue_scan_selection_count)),
        ("queue_scan_worker_pool_max", json!(c.queue_scan_worker_pool_max)),
        ("msg_timeout", json!(o.msg_timeout_ms * NS_PER_MS)),
        ("max_msg_timeout", json!(o.max_msg_timeout_ms * NS_PER_MS)),
        ("max_msg_size", json!(o.max_msg_size)),
        ("max_body_size", json!(o.max_body_size)),
        ("max_req_timeout", json!(o.max_req_timeout_ms * NS_PER_MS)),
        (
            "max_heartbeat_interval",
            json!(o.max_heartbeat_interval_ms * NS_PER_MS),
        ),
        ("max_rdy_count", json!(o.max_rdy_count)),
        ("max_output_buffer_size", json!(o.max_output_buffer_size)),
        (
            "max_output_buffer_timeout",
            json!(o.max_output_buffer_timeout_ms * NS_PER_MS),
        ),
        (
            "min_output_buffer_timeout",
            json!(o.min_output_buffer_timeout_ms * NS_PER_MS),
        ),
        (
            "output_buffer_timeout",
            json!(o.output_buffer_timeout_ms * NS_PER_MS),
        ),
        ("max_channel_consumers", json!(o.max_channel_consumers)),
        ("statsd_address", json!(c.statsd_address)),
        ("statsd_prefix", json!(c.statsd_prefix)),
        ("statsd_interval", json!(c.statsd_interval_ms * NS_PER_MS)),
        ("statsd_mem_stats", json!(c.statsd_mem_stats)),
        ("statsd_udp_packet_size", json!(c.statsd_udp_packet_size)),
        ("statsd_exclude_ephemeral", json!(c.statsd_exclude_ephemeral)),
        (
            "e2e_processing_latency_window_time",
            json!(c.e2e_processing_latency_window_time_ms * NS_PER_MS),
        ),
        (
            "e2e_processing_latency_percentiles",
            json!(c.e2e_processing_latency_percentiles),
        ),
        ("tls_cert", json!(c.tls_cert)),
        ("tls_key", json!(c.tls_key)),
        ("tls_client_auth_policy", json!(c.tls_client_auth_policy)),
        ("tls_root_ca_file", json!(c.tls_root_ca_file)),
        ("tls_required", json!(tls_required)),
        ("tls_min_version", json!(tls_min)),
        ("deflate", json!(c.deflate)),
        ("max_deflate_level", json!(o.max_deflate_level)),
        ("snappy", json!(c.snappy)),
        ("enable_experiment", json!(c.enable_experiments)),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
