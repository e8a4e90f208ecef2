//! squalld: a drop-in for nsqd. Takes nsqd's flags (Go `flag` syntax), serves the NSQ TCP
//! protocol V2 from one io_uring shard per core, drains on SIGTERM/SIGINT and exits 0.

use anyhow::{bail, Context};
use squall::config::{parse_args, DaemonConfig};
use squall::Node;

fn main() {
    let config = match parse_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if config.print_version {
        println!(
            "squalld v{} (nsqd v{} compatible)",
            env!("CARGO_PKG_VERSION"),
            squall_core::NSQD_VERSION
        );
        return;
    }
    if let Err(e) = run(config) {
        eprintln!("[nsqd] FATAL: {e:#}");
        std::process::exit(1);
    }
}

fn log(config: &DaemonConfig, level: &str, msg: &str) {
    eprintln!("{}{level}: {msg}", config.log_prefix);
}

fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let signals = block_termination_signals()?;
    let node_config = squall::daemon::node_config(&config, true)?;
    let data_path = node_config.data_path.clone();
    let node = Node::start(node_config).with_context(|| format!("listen ({}) failed", config.tcp_address))?;
    let version = format!(
        "squalld v{} (nsqd v{} protocol)",
        env!("CARGO_PKG_VERSION"),
        squall_core::NSQD_VERSION
    );
    log(&config, "INFO", &version);
    log(&config, "INFO", &format!("ID: {}", config.options.node_id));
    log(&config, "INFO", &format!("shards: {}", config.shards));
    log(
        &config,
        "INFO",
        &format!("TCP: listening on {}", node.tcp_address()),
    );
    if let Some(http) = node.http_address() {
        log(&config, "INFO", &format!("HTTP: listening on {http}"));
    }
    if let Some(dir) = &data_path {
        log(&config, "INFO", &format!("data path: {}", dir.display()));
    }
    let signal = wait_for_signal(&signals)?;
    log(&config, "INFO", &format!("received signal {signal}: draining"));
    node.shutdown();
    node.join().context("shard failed")?;
    log(&config, "INFO", "exited cleanly");
    Ok(())
}

/// Blocks SIGINT and SIGTERM in this thread before any shard starts, so every shard inherits the
/// mask and the signals are only ever taken by `wait_for_signal` on the main thread.
fn block_termination_signals() -> anyhow::Result<libc::sigset_t> {
    // SAFETY: plain libc calls on a local, zero-initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            bail!("pthread_sigmask failed: {rc}");
        }
        Ok(set)
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> anyhow::Result<i32> {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid sigset built above; sigwait only writes `sig`.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    if rc != 0 {
        bail!("sigwait failed: {rc}");
    }
    Ok(sig)
}
