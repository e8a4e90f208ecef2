//! One topic's FileLogger (spec C.1 "FileLogger loop"): a thread that owns the topic's consumer
//! and output file, and turns events into writes, syncs and FINs.
//!
//! Invariant: a message is FIN'd only after [`OutputFile::sync`] covering its record returned Ok.
//! Any write, sync, open, close or move error is fatal (exit 1) before any FIN, so nsqd
//! redelivers everything not on disk.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::consumer::{Conn, Consumer, Event};
use super::files::{compute_filename_format, OutputFile};
use super::log::Log;
use super::lookupd::HttpTimeouts;
use super::options::{ToFileOptions, EVENT_QUEUE_MESSAGES_MAX, EVENT_QUEUE_SLACK};
use super::protocol::MessageId;

/// A running FileLogger.
pub struct FileLogger {
    events: SyncSender<Event>,
    thread: JoinHandle<()>,
}

impl FileLogger {
    /// Computes the topic's file names (failing as nsq_to_file does when `<REV>` is missing),
    /// makes the checks go-nsq's `NewConsumer` makes, starts its consumer and its thread.
    pub fn start(opts: &Arc<ToFileOptions>, topic: &str, log: &Log) -> Result<FileLogger, String> {
        let format = compute_filename_format(opts, topic, &opts.hostname, std::process::id())?;
        opts.consumer.validate()?;
        if !squall_core::names::is_valid(topic.as_bytes()) {
            return Err("invalid topic name".into());
        }
        if !squall_core::names::is_valid(opts.channel.as_bytes()) {
            return Err("invalid channel name".into());
        }
        // Not negative: validated above.
        let max_in_flight = usize::try_from(opts.consumer.max_in_flight).unwrap_or(0);
        let tag = format!("[{topic}/{}]", opts.channel);
        let (tx, rx) = mpsc::sync_channel(max_in_flight.min(EVENT_QUEUE_MESSAGES_MAX) + EVENT_QUEUE_SLACK);
        let consumer = Consumer::new(
            topic,
            &opts.channel,
            opts.consumer.clone(),
            log.clone(),
            tx.clone(),
        );
        let output = OutputFile::new(opts, &tag, log.clone(), format);
        let state = Router {
            tag,
            log: log.clone(),
            sync_interval: opts.sync_interval,
            skip_empty_files: opts.skip_empty_files,
            max_in_flight,
            consumer,
            nsqd: opts.nsqd_tcp_addresses.clone(),
            lookupd: opts.lookupd_http_addresses.clone(),
            timeouts: HttpTimeouts {
                connect: opts.http_connect_timeout,
                request: opts.http_request_timeout,
            },
            output,
            pending: Vec::with_capacity(max_in_flight.min(EVENT_QUEUE_MESSAGES_MAX)),
        };
        let thread = thread::Builder::new()
            .name(format!("to-file-{topic}"))
            .spawn(move || state.run(rx))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(FileLogger { events: tx, thread })
    }

    /// SIGHUP: sync, then close the current file (a new one opens on the next message or tick).
    pub fn hup(&self) {
        let _ = self.events.send(Event::Hup);
    }

    /// SIGTERM/SIGINT: stop consuming, sync, FIN, close; the thread then ends.
    pub fn term(&self) {
        let _ = self.events.send(Event::Term);
    }

    pub fn join(self) {
        drop(self.events);
        let _ = self.thread.join();
    }
}

struct Router {
    tag: String,
    log: Log,
    /// `None`: not positive.
    sync_interval: Option<Duration>,
    skip_empty_files: bool,
    max_in_flight: usize,
    consumer: Consumer,
    nsqd: Vec<String>,
    lookupd: Vec<String>,
    timeouts: HttpTimeouts,
    output: OutputFile,
    /// Written, not yet synced and FIN'd; at most `max_in_flight`.
    pending: Vec<(MessageId, Arc<Conn>)>,
}

impl Router {
    fn run(mut self, rx: Receiver<Event>) {
        let Some(sync_interval) = self.sync_interval else {
            // nsq_to_file's router starts with `time.NewTicker(--sync-interval)`, which panics
            // on a duration that is not positive: the process ends there, exit status 2, with
            // nothing FIN'd.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr().lock(),
                b"panic: non-positive interval for NewTicker\n",
            );
            std::process::exit(2);
        };
        self.consumer.connect_to_nsqds(&self.nsqd);
        if !self.lookupd.is_empty() {
            self.consumer.connect_to_lookupds(&self.lookupd, self.timeouts);
        }
        let mut next_tick = Some(Instant::now() + sync_interval);
        let mut terminating = false;
        loop {
            let event = match rx.try_recv() {
                Ok(e) => Some(e),
                Err(TryRecvError::Disconnected) => Some(Event::Stopped),
                Err(TryRecvError::Empty) => {
                    // Idle: hand the batched records to the OS now, so the file can be followed
                    // (nsq_to_file writes every record straight away).
                    if let Err(e) = self.output.flush_writes() {
                        self.log
                            .fatal(&format!("{} writing message to disk: {e}", self.tag));
                    }
                    match next_tick {
                        Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                            Ok(e) => Some(e),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => Some(Event::Stopped),
                        },
                        None => Some(rx.recv().unwrap_or(Event::Stopped)),
                    }
                }
            };
            let mut sync = false;
            let mut close_file = false;
            let mut exit = false;
            match event {
                None => {
                    next_tick = Some(Instant::now() + sync_interval);
                    if self.output.needs_rotation() {
                        if self.skip_empty_files {
                            close_file = true;
                        } else {
                            self.rotate();
                        }
                    }
                    sync = true;
                }
                Some(Event::Stopped) => {
                    sync = true;
                    close_file = true;
                    exit = true;
                }
                Some(Event::Term) => {
                    next_tick = None;
                    self.consumer.stop();
                    sync = true;
                    terminating = true;
                }
                Some(Event::Hup) => {
                    sync = true;
                    close_file = true;
                }
                Some(Event::Message { message, conn }) => {
                    conn.taken();
                    if self.output.needs_rotation() {
                        self.rotate();
                        sync = true;
                    }
                    if let Err(e) = self.output.write_record(&message.body) {
                        self.log
                            .fatal(&format!("{} writing message to disk: {e}", self.tag));
                    }
                    self.pending.push((message.id, conn));
                    if self.pending.len() >= self.max_in_flight {
                        sync = true;
                    }
                }
            }
            // While stopping, whatever still arrives is synced at once: nothing waits for a tick
            // that will not come.
            if sync || terminating || self.consumer.is_starved() {
                self.sync_and_fin();
            }
            if close_file {
                if let Err(e) = self.output.close() {
                    self.log.fatal(&format!("{} {e}", self.tag));
                }
            }
            if exit {
                self.log.info(&format!("{} stopped", self.tag));
                return;
            }
        }
    }

    fn rotate(&mut self) {
        if let Err(e) = self.output.rotate() {
            self.log.fatal(&format!("{} {e}", self.tag));
        }
    }

    fn sync_and_fin(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.log.info(&format!(
            "{} syncing {} records to disk",
            self.tag,
            self.pending.len()
        ));
        if let Err(e) = self.output.sync() {
            self.log
                .fatal(&format!("{} failed syncing messages: {e}", self.tag));
        }
        let mut by_conn: HashMap<*const Conn, (Arc<Conn>, Vec<MessageId>)> = HashMap::new();
        for (id, conn) in self.pending.drain(..) {
            by_conn
                .entry(Arc::as_ptr(&conn))
                .or_insert_with(|| (conn, Vec::new()))
                .1
                .push(id);
        }
        for (conn, ids) in by_conn.into_values() {
            if let Err(e) = conn.fin(&ids) {
                // On disk already; nsqd times these out and redelivers them (duplicates).
                self.log.warn(&format!(
                    "{} ({}) could not FIN {} messages: {e}",
                    self.tag,
                    conn.addr,
                    ids.len()
                ));
            }
        }
    }
}
