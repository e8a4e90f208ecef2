//! Durability, sans-IO: the queue says when a sync is due and which descriptors to fsync; the
//! caller submits the fsyncs (through its io_uring) and reports back.
//!
//! One round at a time: `begin_sync` writes the metadata slot, hands out the descriptors and a
//! token; `finish_sync(token)` (every fsync succeeded) advances the durable position and unlinks
//! segments the durable metadata says are consumed; `fail_sync(token)` poisons the queue.

use std::os::fd::RawFd;
use std::time::Instant;

use crate::error::SyncError;
use crate::format::{meta_file_name, segment_file_name, Position};
use crate::queue::DiskQueue;
use crate::storage::{Storage, StorageFile};

/// The descriptors to fsync for one round, and the token to report it with.
#[derive(Debug)]
pub struct SyncBatch {
    /// Data segments written since the last round, then the metadata file, then (when files were
    /// created or removed) the directory. They may be fsync'd in any order or all at once: the
    /// round counts only when every one has completed.
    pub fds: Vec<RawFd>,
    pub token: SyncToken,
}

/// Names one sync round. Not `Clone`: it is given back exactly once, to `finish_sync` or
/// `fail_sync`. The descriptors of its round stay open until then.
#[derive(Debug, PartialEq, Eq)]
pub struct SyncToken(u64);

/// What a round covers.
#[derive(Debug)]
pub(crate) struct InFlight {
    id: u64,
    /// The write position when the round began.
    covers: Position,
    /// Segments whose descriptors are in the round (their handles stay open until it ends).
    segments: Vec<u64>,
    /// Consumed segments to unlink once the round's metadata is durable.
    pub(crate) removable: Vec<u64>,
}

impl<S: Storage> DiskQueue<S> {
    /// Whether the caller should run a sync round now: `sync_every` puts+reads since the last one,
    /// or `sync_timeout` since the last one with anything done since, or a segment rolled or was
    /// consumed (as nsqd). Never while a round is in flight or the queue is poisoned.
    pub fn sync_due(&self, now: Instant) -> bool {
        if self.in_flight.is_some() || self.poisoned {
            return false;
        }
        self.ops_since_sync >= self.opts.sync_every
            || self.sync_soon
            || (self.ops_since_sync > 0
                && now.saturating_duration_since(self.last_sync_at) >= self.opts.sync_timeout)
    }

    /// Starts a sync round: writes the metadata slot (positions, depth, the durable position of
    /// the previous round) by memcpy, and returns every descriptor whose fsync the round needs.
    /// `None` when a round is in flight, the queue is poisoned, or nothing changed since the last.
    pub fn begin_sync(&mut self, now: Instant) -> Option<SyncBatch> {
        if self.in_flight.is_some() || self.poisoned {
            return None;
        }
        if self.ops_since_sync == 0
            && self.dirty.is_empty()
            && !self.dir_dirty
            && !self.sync_soon
            && self.consumed.is_empty()
        {
            return None;
        }
        self.write_meta(false);
        let segments = std::mem::take(&mut self.dirty);
        let mut fds: Vec<RawFd> = segments
            .iter()
            .filter_map(|n| self.segments.get(n).and_then(|s| s.file.as_ref()).map(|f| f.fd()))
            .collect();
        fds.push(self.meta.fd());
        if std::mem::take(&mut self.dir_dirty) {
            fds.push(self.storage.dir_fd());
        }
        self.next_token += 1;
        self.in_flight = Some(InFlight {
            id: self.next_token,
            covers: self.write,
            segments,
            removable: std::mem::take(&mut self.consumed),
        });
        self.write_segment_dirty = false;
        self.ops_since_sync = 0;
        self.sync_soon = false;
        self.last_sync_at = now;
        Some(SyncBatch {
            fds,
            token: SyncToken(self.next_token),
        })
    }

    /// Every fsync of the round completed OK: records up to the round's write position are
    /// durable. Unlinks the segments the round's metadata marks consumed (blocking, but once per
    /// consumed segment). A token from before `empty` is ignored.
    pub fn finish_sync(&mut self, token: SyncToken) {
        let Some(round) = self.in_flight.take_if(|r| r.id == token.0) else {
            return;
        };
        if round.covers.seq >= self.durable.seq {
            self.durable = round.covers;
        }
        for n in &round.segments {
            if *n != self.write.segment && !self.dirty.contains(n) {
                if let Some(seg) = self.segments.get_mut(n) {
                    seg.file = None;
                }
            }
        }
        self.remove_consumed(round.removable);
    }

    /// An fsync of the round failed. After a failed fsync Linux may already have marked the
    /// pages clean and dropped the error, so a retry proves nothing: the queue is poisoned.
    /// Puts fail from now on and the durable position never advances again; reads still work.
    /// Reopening the queue recovers from what is really on disk.
    pub fn fail_sync(&mut self, token: SyncToken) {
        if self.in_flight.take_if(|r| r.id == token.0).is_some() {
            self.poisoned = true;
        }
    }

    /// Whether an fsync failure has poisoned the queue.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether a sync round is in flight.
    pub fn sync_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Number of records (counted since the queue was created) known durable: the record that
    /// `put` numbered `seq` survives any crash once `durable_position() > seq`. Advances only in
    /// `finish_sync`, `sync_now`, `close` and `open`; never goes down.
    pub fn durable_position(&self) -> u64 {
        self.durable.seq
    }

    /// A whole sync round, blocking (libc fsync): data segments first, then the metadata slot
    /// that records them as durable, then the directory. For tests, tools and shutdown.
    pub fn sync_now(&mut self) -> Result<(), SyncError> {
        self.sync_blocking(false)
    }

    /// Final blocking sync, then releases everything. The metadata is marked clean, so the next
    /// open appends to the same segment without scanning. If a round is in flight, its fsyncs
    /// should have been submitted (io_uring holds its own file references after submission).
    pub fn close(mut self) -> Result<(), SyncError> {
        self.sync_blocking(true)
    }

    pub(crate) fn sync_blocking(&mut self, clean: bool) -> Result<(), SyncError> {
        if self.poisoned {
            return Err(SyncError::Poisoned);
        }
        let mut failure = None;
        for (n, seg) in &self.segments {
            if let Some(Err(source)) = seg.file.as_ref().map(|f| f.sync()) {
                failure = Some(SyncError::Io {
                    file: segment_file_name(&self.name, *n),
                    source,
                });
                break;
            }
        }
        if let Some(e) = failure {
            return Err(self.poison(e));
        }
        self.durable = self.write;
        self.write_meta(clean);
        if let Err(source) = self.meta.sync() {
            return Err(self.poison(SyncError::Io {
                file: meta_file_name(&self.name),
                source,
            }));
        }
        let consumed = std::mem::take(&mut self.consumed);
        self.remove_consumed(consumed);
        if let Err(source) = self.storage.sync_dir() {
            return Err(self.poison(SyncError::Io {
                file: ".".to_string(),
                source,
            }));
        }
        self.dir_dirty = false;
        self.dirty.clear();
        self.write_segment_dirty = false;
        self.ops_since_sync = 0;
        self.sync_soon = false;
        let in_flight: &[u64] = self.in_flight.as_ref().map_or(&[], |r| &r.segments);
        for (n, seg) in self.segments.iter_mut() {
            if *n != self.write.segment && !in_flight.contains(n) {
                seg.file = None;
            }
        }
        Ok(())
    }

    /// A failed fsync poisons the queue, as in `fail_sync`.
    fn poison(&mut self, e: SyncError) -> SyncError {
        self.poisoned = true;
        e
    }

    /// Unlinks consumed segments (their mappings live on while `Bytes` reference them).
    fn remove_consumed(&mut self, numbers: Vec<u64>) {
        for n in numbers {
            self.segments.remove(&n);
            // A failed unlink leaves a file below the read segment; the next open removes it.
            let _ = self.storage.remove(&segment_file_name(&self.name, n));
            self.dir_dirty = true;
        }
    }
}
