//! Disk queues for the broker: `squall-diskqueue` behind `squall_core::backend`.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use squall_core::backend::{Backend, BackendFactory};
use squall_core::options::Options;
use squall_diskqueue::{DiskQueue, SyncToken};

use crate::DiskOptions;

/// One queue's files.
struct DiskBackend {
    queue: Option<DiskQueue>,
    /// One past the sequence number of the last put.
    written: u64,
    round: Option<(u64, SyncToken)>,
    next_round: u64,
}

impl DiskBackend {
    fn q(&mut self) -> &mut DiskQueue {
        self.queue.as_mut().expect("open until delete or close")
    }
}

impl Backend for DiskBackend {
    fn put(&mut self, record: &[u8]) -> Result<(), String> {
        let seq = self.q().put(record).map_err(|e| e.to_string())?;
        self.written = seq + 1;
        Ok(())
    }
    fn next(&mut self) -> Option<Bytes> {
        self.q().next()
    }
    fn depth(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.depth())
    }
    fn empty(&mut self) -> Result<(), String> {
        self.q().empty().map_err(|e| e.to_string())
    }
    fn delete(mut self: Box<Self>) {
        if let Some(q) = self.queue.take() {
            if let Err(e) = q.delete() {
                crate::log_error!("failed to delete queue files - {e}");
            }
        }
    }
    fn close(mut self: Box<Self>) -> Result<(), String> {
        match self.queue.take() {
            Some(q) => q.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
    fn sync_due(&self, now: Instant) -> bool {
        self.queue.as_ref().is_some_and(|q| q.sync_due(now))
    }
    fn begin_sync(&mut self) -> Option<(Vec<RawFd>, u64)> {
        let batch = self.q().begin_sync(Instant::now())?;
        self.next_round += 1;
        self.round = Some((self.next_round, batch.token));
        Some((batch.fds, self.next_round))
    }
    fn finish_sync(&mut self, token: u64) {
        if let Some((id, t)) = self.round.take() {
            if id == token {
                self.q().finish_sync(t);
            } else {
                self.round = Some((id, t));
            }
        }
    }
    fn fail_sync(&mut self, token: u64) {
        if let Some((id, t)) = self.round.take() {
            if id == token {
                self.q().fail_sync(t);
            } else {
                self.round = Some((id, t));
            }
        }
    }
    fn written(&self) -> u64 {
        self.written
    }
    fn durable(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.durable_position())
    }
    fn corrupt_skipped(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.corrupt_records_skipped())
    }
}

struct DiskFactory {
    dir: PathBuf,
    options: squall_diskqueue::Options,
}

impl BackendFactory for DiskFactory {
    fn open(&self, name: &str) -> Result<Box<dyn Backend>, String> {
        match DiskQueue::open(&self.dir, name, self.options) {
            Ok(queue) => {
                // A reopened queue's positions continue where it left off.
                let written = queue.durable_position();
                Ok(Box::new(DiskBackend {
                    queue: Some(queue),
                    written,
                    round: None,
                    next_round: 0,
                }))
            }
            Err(e) => {
                crate::log_error!("failed to open disk queue {name} - {e}");
                Err(e.to_string())
            }
        }
    }
    fn durable_acks(&self) -> bool {
        self.options.sync_every <= 1
    }
    fn exists(&self, name: &str) -> bool {
        self.dir.join(format!("{name}.squall.meta.dat")).exists()
    }
}

pub type FactoryMaker = Arc<dyn Fn() -> Box<dyn BackendFactory> + Send + Sync>;

/// Builds, on each shard, a factory opening queues under `dir`.
pub fn factory_maker(dir: PathBuf, options: &Options, disk: &DiskOptions) -> FactoryMaker {
    let options = squall_diskqueue::Options {
        max_bytes_per_file: disk.max_bytes_per_file.max(1) as u64,
        max_msg_size: options.max_msg_size.clamp(0, u32::MAX as i64) as u32,
        sync_every: disk.sync_every.max(1) as u64,
        sync_timeout: Duration::from_millis(disk.sync_timeout_ms.max(0) as u64),
    };
    Arc::new(move || {
        Box::new(DiskFactory {
            dir: dir.clone(),
            options,
        }) as Box<dyn BackendFactory>
    })
}
