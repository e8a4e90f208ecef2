//! `squall-to-file`: a drop-in for nsq_to_file (spec C.1). It consumes topics from nsqd (given
//! directly or found through nsqlookupd) and appends every message body, one per line, to files
//! named, rotated, gzipped and moved the way nsq_to_file does it.
//!
//! This tool is a client, so it uses blocking std I/O on plain threads: one logger thread per
//! topic, one thread per nsqd connection, one lookupd poller per topic in lookupd mode, one
//! signal thread, and the main thread for topic discovery.
//!
//! # Invariants
//! - At-least-once: a message is FIN'd only after the write and fsync that cover it
//!   (`logger`); anything not on disk is never FIN'd, so nsqd redelivers it. Duplicates after a
//!   crash or a lost connection are possible, losses are not.
//! - Every I/O failure on the output (open, write, fsync, close, move) is fatal: exit 1 with a
//!   message, before any FIN.
//! - SIGTERM/SIGINT: CLS on every connection, sync and FIN what was written, close and move the
//!   files, exit 0.
//!
//! # Layout
//! - `options`: the flags (Go syntax), nsq_to_file's defaults and checks, the tool's limits.
//! - `consumer_config`: go-nsq's consumer `Config`: defaults, `--consumer-opt`, validation,
//!   IDENTIFY.
//! - `protocol`: NSQ V2 frames in, commands out (one decoder, one encoder).
//! - `consumer`: connections to nsqd (IDENTIFY, SUB, RDY, heartbeats, FIN, CLS, reconnects).
//! - `wire`: a connection's byte stream through the layers IDENTIFY negotiated (TLS, snappy,
//!   deflate), shared by the connection's reader and the logger's FINs.
//! - `lookupd`: `/lookup` and `/topics` over a minimal HTTP/1.1 client.
//! - `logger`: one topic's event loop (write, rotate, sync, FIN).
//! - `files`: file names, revisions, rotation, gzip members, fsync, work-dir → output-dir moves.
//! - `datetime`: local time and the strftime subset for `<DATETIME>`.
//! - `log`: nsq_to_file-style log lines.

mod consumer;
mod consumer_config;
mod datetime;
mod files;
mod log;
mod logger;
pub mod lookupd;
pub mod options;
mod protocol;
mod wire;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

pub use self::log::std_log_fatal;
use self::log::Log;
use self::logger::FileLogger;
use self::lookupd::HttpTimeouts;
pub use self::options::{parse_args, ArgsError, ToFileOptions, VERSION_LINE};

/// Runs until SIGTERM/SIGINT; the exit status (fatal errors exit(1) on their own).
pub fn run(opts: ToFileOptions) -> i32 {
    let log = Log::new(&opts.log_prefix, opts.log_level);
    let signals = match block_signals() {
        Ok(set) => set,
        Err(e) => {
            log.error(&format!("cannot block signals: {e}"));
            return 1;
        }
    };
    check_dir(&log, "--output-dir", &opts.output_dir);
    if opts.work_dir != opts.output_dir {
        check_dir(&log, "--work-dir", &opts.work_dir);
    }
    log.info(VERSION_LINE);
    for warning in &opts.consumer_warnings {
        log.warn(warning);
    }

    let (signal_tx, signal_rx) = mpsc::sync_channel::<i32>(8);
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let Some(sig) = wait_for_signal(&signals) else {
                return;
            };
            if signal_tx.send(sig).is_err() {
                return;
            }
        });
    if let Err(e) = spawned {
        log.error(&format!("cannot start the signal thread: {e}"));
        return 1;
    }

    let opts = Arc::new(opts);
    let mut loggers: HashMap<String, FileLogger> = HashMap::new();
    let polling = opts.topics.is_empty();
    if !polling {
        start_loggers(&opts, &log, &opts.topics, &mut loggers);
    }
    // Only without --topic; never with a --topic-refresh that is not positive.
    let refresh = opts.topic_refresh.filter(|_| polling);
    let mut next_refresh = refresh.map(|r| Instant::now() + r);
    loop {
        let signal = match next_refresh {
            Some(at) => match signal_rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(sig) => Some(sig),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(libc::SIGTERM),
            },
            None => Some(signal_rx.recv().unwrap_or(libc::SIGTERM)),
        };
        match signal {
            None => {
                next_refresh = refresh.map(|r| Instant::now() + r);
                let timeouts = HttpTimeouts {
                    connect: opts.http_connect_timeout,
                    request: opts.http_request_timeout,
                };
                match lookupd::topics(&opts.lookupd_http_addresses, timeouts) {
                    Ok(topics) => start_loggers(&opts, &log, &topics, &mut loggers),
                    Err(e) => log.error(&format!("could not retrieve topic list: {e}")),
                }
            }
            Some(libc::SIGHUP) => {
                log.info("received SIGHUP: closing files");
                loggers.values().for_each(FileLogger::hup);
            }
            Some(sig) => {
                log.info(&format!("received signal {sig}: stopping"));
                loggers.values().for_each(FileLogger::term);
                break;
            }
        }
    }
    for (_, logger) in loggers.drain() {
        logger.join();
    }
    log.info("exiting");
    0
}

/// nsq_to_file's `updateTopics`: a logger for every new topic that matches `--topic-pattern`.
fn start_loggers(
    opts: &Arc<ToFileOptions>,
    log: &Log,
    topics: &[String],
    loggers: &mut HashMap<String, FileLogger>,
) {
    for topic in topics {
        if loggers.contains_key(topic) {
            continue;
        }
        if let Some(pattern) = &opts.topic_pattern {
            if !pattern.allows(topic) {
                log.warn(&format!(
                    "skipping topic {topic} (doesn't match pattern {pattern})"
                ));
                continue;
            }
        }
        match FileLogger::start(opts, topic, log) {
            Ok(l) => {
                loggers.insert(topic.clone(), l);
            }
            Err(e) => log.error(&format!("couldn't create logger for new topic {topic}: {e}")),
        }
    }
}

/// nsq_to_file only finds out at the first open; an unusable directory is reported at start
/// instead, with its path and the OS error.
fn check_dir(log: &Log, flag: &str, dir: &str) {
    use std::os::unix::fs::DirBuilderExt;
    let path = Path::new(dir);
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o770)
        .create(path)
    {
        log.fatal(&format!("{flag} {dir}: unable to create: {e}"));
    }
    let Ok(c_path) = std::ffi::CString::new(dir) else {
        log.fatal(&format!("{flag} {dir}: invalid path"));
    };
    // SAFETY: a valid NUL-terminated path; access only reads it.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        log.fatal(&format!("{flag} {dir}: not writable: {e}"));
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP on this thread before any other starts, so every thread
/// inherits the mask and only the signal thread ever takes them.
fn block_signals() -> Result<libc::sigset_t, String> {
    // SAFETY: plain libc calls on a local, zero-initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!("pthread_sigmask failed: {rc}"));
        }
        Ok(set)
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> Option<i32> {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid sigset built by `block_signals`; sigwait only writes `sig`.
    let rc = unsafe { libc::sigwait(set, &mut sig) };
    (rc == 0).then_some(sig)
}
