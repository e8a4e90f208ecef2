//! squall-lookupd: a drop-in for nsqlookupd. Takes nsqlookupd's flags (Go `flag` syntax) and
//! TOML config file, serves its TCP protocol V1 and HTTP API from one io_uring shard, exits 0 on
//! SIGTERM/SIGINT. Anything wrong before the listeners open is one `FATAL` line and exit 1.

use anyhow::Context;
use squall::config::preflight::check_listen;
use squall::config::{file, keys};
use squall::logging::{self, Level};
use squall::lookupd::{parse_args, start_lookupd, LookupdConfig, LookupdStart, VERSION_LINE};
use squall::{log_fatal, log_info};

fn main() {
    logging::init(keys::NSQLOOKUPD.default_log_prefix, Level::Info);
    let argv = match file::args_with_config_file(std::env::args_os().collect(), &keys::NSQLOOKUPD) {
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
    logging::init(&config.log_prefix, config.log_level);
    if let Err(e) = run(config) {
        log_fatal!("{e:#}");
    }
}

fn run(config: LookupdConfig) -> anyhow::Result<()> {
    let start = LookupdStart::from_config(&config)?;
    check_listen("tcp-address", start.tcp_address).map_err(anyhow::Error::msg)?;
    check_listen("http-address", start.http_address).map_err(anyhow::Error::msg)?;
    let signals = squall::signals::TerminationSignals::block()?;
    log_info!("{VERSION_LINE}");
    if !config.config_path.is_empty() {
        log_info!("config file: {}", config.config_path);
    }
    let lookupd = start_lookupd(start).context("failed to start")?;
    log_info!("TCP: listening on {}", lookupd.tcp_address());
    log_info!("HTTP: listening on {}", lookupd.http_address());
    let signal = signals.wait()?;
    log_info!("received signal {signal}: exiting");
    lookupd.shutdown();
    lookupd.join().context("shard failed")?;
    Ok(())
}
