//! squall-lookupd: a drop-in for nsqlookupd. Takes nsqlookupd's flags (Go `flag` syntax), serves
//! its TCP protocol V1 and HTTP API from one io_uring shard, exits 0 on SIGTERM/SIGINT.

use anyhow::{bail, Context};
use squall::lookupd::{parse_args, start_lookupd, LogLevel, LookupdConfig, LookupdStart, VERSION_LINE};

fn main() {
    let config = match parse_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if config.print_version {
        println!("{VERSION_LINE}");
        return;
    }
    if let Err(e) = run(config) {
        eprintln!("[nsqlookupd] FATAL: {e:#}");
        std::process::exit(1);
    }
}

fn run(config: LookupdConfig) -> anyhow::Result<()> {
    let signals = block_termination_signals()?;
    let start = LookupdStart::from_config(&config)?;
    let log = start.logger.clone();
    log.log(LogLevel::Info, VERSION_LINE);
    if !config.config_path.is_empty() {
        log.log(
            LogLevel::Warn,
            &format!("--config {} is not read yet: flags only", config.config_path),
        );
    }
    let lookupd = start_lookupd(start)
        .with_context(|| format!("listen ({} / {}) failed", config.tcp_address, config.http_address))?;
    log.log(
        LogLevel::Info,
        &format!("TCP: listening on {}", lookupd.tcp_address()),
    );
    log.log(
        LogLevel::Info,
        &format!("HTTP: listening on {}", lookupd.http_address()),
    );
    let signal = wait_for_signal(&signals)?;
    log.log(LogLevel::Info, &format!("received signal {signal}: exiting"));
    lookupd.shutdown();
    lookupd.join().context("shard failed")?;
    Ok(())
}

/// Blocks SIGINT and SIGTERM in this thread before the shard starts, so it inherits the mask
/// and the signals are only ever taken by `wait_for_signal` on the main thread.
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
