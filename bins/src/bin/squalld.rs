//! squalld: a drop-in for nsqd. Takes nsqd's flags (Go `flag` syntax) and nsqd's TOML config
//! file, serves the NSQ TCP protocol V2 from one io_uring shard per core, drains on
//! SIGTERM/SIGINT and exits 0.
//!
//! Start-up order: config file → flags → data path and port checks → listeners. Anything wrong
//! before the listeners open is one `FATAL` line and exit 1 (flag syntax errors are clap's
//! message and exit 2).

use std::path::Path;

use anyhow::Context;
use squall::config::preflight::{check_data_path, check_listen, check_listen_addr};
use squall::config::{file, keys, parse_args, DaemonConfig, GRPC_ADDRESS_DEFAULT, VERSION_LINE};
use squall::logging::{self, Level};
use squall::{log_fatal, log_info, log_warn, Node};

fn main() {
    logging::init(keys::NSQD.default_log_prefix, Level::Info);
    let argv = match file::args_with_config_file(std::env::args_os().collect(), &keys::NSQD) {
        Ok(argv) => argv,
        Err(e) => log_fatal!("{e}"),
    };
    let config = match parse_args(argv) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if config.print_version {
        println!("{VERSION_LINE}");
        return;
    }
    // The flag parser already refused any other spelling.
    let level = Level::parse(&config.log_level).unwrap_or(Level::Info);
    logging::init(&config.log_prefix, level);
    if let Err(e) = run(config) {
        log_fatal!("{e:#}");
    }
}

fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let mut node_config = squall::daemon::node_config(&config, true)?;
    if let Some(dir) = &node_config.data_path {
        check_data_path(dir).map_err(anyhow::Error::msg)?;
    }
    check_listen_addr("tcp-address", &node_config.tcp_address).map_err(anyhow::Error::msg)?;
    if let Some(http) = &node_config.http_address {
        check_listen_addr("http-address", http).map_err(anyhow::Error::msg)?;
    }
    if let Some(https) = node_config.https_address {
        check_listen("https-address", https).map_err(anyhow::Error::msg)?;
    }
    if let Some(grpc) = node_config.grpc_address {
        if let Err(e) = check_listen("grpc-address", grpc) {
            // nsqd has no gRPC port: where scripts start several nsqd on one host, a squalld
            // left at the default gRPC port must not fail because another one holds it.
            if config.grpc_address != GRPC_ADDRESS_DEFAULT {
                anyhow::bail!(e);
            }
            log_warn!("{e}: gRPC is off (set --grpc-address to serve it elsewhere)");
            node_config.grpc_address = None;
        }
    }
    let signals = squall::signals::TerminationSignals::block()?;
    let data_path = node_config.data_path.clone();

    log_info!("{VERSION_LINE}");
    if !config.config_path.is_empty() {
        log_info!("config file: {}", config.config_path);
    }
    log_info!("ID: {}", config.options.node_id);
    log_info!("shards: {}", config.shards);
    if let Some(dir) = &data_path {
        log_info!("data path: {}", display_dir(dir));
    }
    let node = Node::start(node_config).context("failed to start")?;
    log_info!("TCP: listening on {}", node.tcp_address());
    if let Some(http) = node.http_address() {
        log_info!("HTTP: listening on {http}");
    }
    if let Some(grpc) = node.grpc_address() {
        log_info!("gRPC: listening on {grpc}");
    }
    if let Some(https) = node.https_address() {
        log_info!("HTTPS: listening on {https}");
    }
    let signal = signals.wait()?;
    log_info!("received signal {signal}: draining");
    node.shutdown();
    node.join().context("shard failed")?;
    log_info!("exited cleanly");
    Ok(())
}

fn display_dir(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}
