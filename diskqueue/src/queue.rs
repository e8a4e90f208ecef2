//! The queue itself: put, next, roll, depth, empty, delete.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::error::{DeleteError, EmptyError, PutError};
use crate::format::{
    encode_meta, encode_record_header, encode_segment_header, meta_file_name, plausible_header_at, record_at,
    record_bytes, resync, segment_file_name, MetaState, Position, RecordKind, META_SLOTS,
    META_SLOT_STRIDE_BYTES, RECORD_ALIGN, SEAL_RECORD_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::options::Options;
use crate::storage::{FileStorage, Mapping, Storage, StorageFile};
use crate::sync::InFlight;

/// One segment file: its mapping, and its handle while it may still need an fsync.
pub(crate) struct Segment<F> {
    pub(crate) mapping: Arc<Mapping>,
    /// Dropped once the segment is sealed and synced: the mapping outlives the descriptor, and a
    /// long backlog must not hold one descriptor per segment.
    pub(crate) file: Option<F>,
}

/// A durable FIFO of byte records for one topic or channel. See the crate docs for the contract.
///
/// Single-threaded: it lives on its topic's shard, and only `Bytes` it hands out cross threads.
/// Dropping it without [`DiskQueue::close`] is, for the files, a process crash: nothing in the page
/// cache is lost, and the next open rescans from the last durable position.
pub struct DiskQueue<S: Storage = FileStorage> {
    pub(crate) storage: S,
    pub(crate) name: String,
    pub(crate) opts: Options,
    pub(crate) meta: S::File,
    /// Generation of the last metadata slot written.
    pub(crate) meta_generation: u64,
    /// Every existing segment from the read segment to the write segment.
    pub(crate) segments: BTreeMap<u64, Segment<S::File>>,
    /// Next record to hand out.
    pub(crate) read: Position,
    /// Where the next record goes.
    pub(crate) write: Position,
    pub(crate) read_map: Option<Arc<Mapping>>,
    /// `None` until the write segment's file exists (created on the first put that needs it).
    pub(crate) write_map: Option<Arc<Mapping>>,
    /// The write position covered by the last completed sync.
    pub(crate) durable: Position,
    pub(crate) corrupt_records_skipped: u64,
    /// Puts and reads since the last sync began (nsqd counts both).
    pub(crate) ops_since_sync: u64,
    pub(crate) last_sync_at: Instant,
    /// A roll or a finished read segment: nsqd syncs on those at once.
    pub(crate) sync_soon: bool,
    /// Segments written since the last sync began.
    pub(crate) dirty: Vec<u64>,
    pub(crate) write_segment_dirty: bool,
    /// Directory entries created or removed since the last sync began.
    pub(crate) dir_dirty: bool,
    /// Segments the reader has left; unlinked once a durable metadata slot says so, so that a
    /// crash can never leave the recorded read position in a segment that no longer exists.
    pub(crate) consumed: Vec<u64>,
    pub(crate) in_flight: Option<InFlight>,
    pub(crate) next_token: u64,
    pub(crate) poisoned: bool,
    /// Size of the next segment file: starts small and doubles per roll up to
    /// `max_bytes_per_file`, so a quiet queue does not reserve a whole segment of disk.
    pub(crate) next_segment_bytes: u64,
}

impl<S: Storage> DiskQueue<S> {
    /// Appends `record` (for the broker: the 26-byte message header + body) and returns its
    /// sequence number; it is durable once [`DiskQueue::durable_position`] exceeds that number.
    ///
    /// A memcpy into the mapped segment, except when the segment is full: then it creates, sizes
    /// and maps the next one (blocking, once per segment: the first segments a queue writes are
    /// small, from `FIRST_SEGMENT_BYTES` doubling up to `max_bytes_per_file`).
    pub fn put(&mut self, record: &[u8]) -> Result<u64, PutError> {
        if self.poisoned {
            return Err(PutError::Poisoned);
        }
        let max = self.opts.record_bytes_max();
        if record.len() as u64 > max {
            return Err(PutError::TooLarge {
                len: record.len(),
                max,
            });
        }
        let need = record_bytes(record.len());
        let fits = self.write_map.as_ref().is_some_and(|m| {
            (self.write.offset as usize)
                .checked_add(need + SEAL_RECORD_BYTES)
                .is_some_and(|e| e <= m.len())
        });
        if !fits {
            self.roll(need)?;
        }
        let map = self.write_map.as_ref().expect("roll leaves a write mapping");
        let off = self.write.offset as usize;
        let seq = self.write.seq;
        let header = encode_record_header(RecordKind::Data, seq, record);
        // SAFETY: `off..off + need` lies past every published range (the write position only grows
        // within a segment) and no slice of the mapping is alive.
        unsafe {
            map.write(off, &header);
            map.write(off + header.len(), record);
        }
        self.write.offset += need as u64;
        self.write.seq += 1;
        self.ops_since_sync += 1;
        if !self.write_segment_dirty {
            self.dirty.push(self.write.segment);
            self.write_segment_dirty = true;
        }
        Ok(seq)
    }

    /// Seals the write segment and starts the next (or creates the first, lazily).
    fn roll(&mut self, need: usize) -> Result<(), PutError> {
        let number = if self.write_map.is_some() {
            self.write.segment + 1
        } else {
            self.write.segment
        };
        let len = self
            .next_segment_bytes
            .max((SEGMENT_HEADER_BYTES + need + SEAL_RECORD_BYTES) as u64);
        let file_name = segment_file_name(&self.name, number);
        let file = match self.storage.create(&file_name, len) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Only a crash leaves a file past the recovered write segment, and recovery stopped
                // before it, so it holds nothing that was ever acknowledged.
                self.storage
                    .remove(&file_name)
                    .and_then(|()| self.storage.create(&file_name, len))
            }
            other => other,
        }
        .map_err(|source| PutError::Roll {
            file: file_name,
            source,
        })?;
        self.next_segment_bytes = (self.next_segment_bytes * 2).min(self.opts.max_bytes_per_file);
        let mapping = Arc::clone(file.mapping());
        // SAFETY: a fresh mapping nobody has seen.
        unsafe { mapping.write(0, &encode_segment_header(number)) };
        if let Some(old) = self.write_map.take() {
            let off = self.write.offset as usize;
            if off + SEAL_RECORD_BYTES <= old.len() {
                // SAFETY: at the write position, unpublished; no slice alive.
                unsafe { old.write(off, &encode_record_header(RecordKind::Seal, self.write.seq, &[])) };
                if !self.write_segment_dirty {
                    self.dirty.push(self.write.segment);
                }
            }
        }
        self.segments.insert(
            number,
            Segment {
                mapping: Arc::clone(&mapping),
                file: Some(file),
            },
        );
        self.write = Position {
            segment: number,
            offset: SEGMENT_HEADER_BYTES as u64,
            seq: self.write.seq,
        };
        if self.read.segment == number {
            self.read_map = Some(Arc::clone(&mapping));
        }
        self.write_map = Some(mapping);
        self.dirty.push(number);
        self.write_segment_dirty = true;
        self.dir_dirty = true;
        self.sync_soon = true;
        Ok(())
    }

    /// The next unread record, or `None` when the reader has caught up.
    ///
    /// Zero-copy: the `Bytes` points into the segment's mapping and keeps it mapped (even after
    /// the segment is consumed and unlinked) until dropped. Every record's CRC is checked here; a
    /// damaged one is skipped (and counted, see [`DiskQueue::corrupt_records_skipped`]) by jumping
    /// over it when its length looks right, else by scanning for the next valid record header.
    // Named as go-diskqueue and core's `Backend` name it; not an `Iterator`, because `None` means
    // "caught up for now", not "finished".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.read.segment >= self.write.segment && self.read.offset >= self.write.offset {
                if self.read.seq < self.write.seq {
                    // Records between here and the writer are gone (damage at the very end).
                    self.corrupt_records_skipped += self.write.seq - self.read.seq;
                    self.read.seq = self.write.seq;
                }
                return None;
            }
            let Some(map) = self.read_map.clone() else {
                // The read segment's file is missing; the next record's sequence number counts
                // what it held.
                self.advance_read_segment();
                continue;
            };
            let in_write_segment = self.read.segment == self.write.segment;
            let end = if in_write_segment {
                self.write.offset as usize
            } else {
                map.len()
            };
            let off = self.read.offset as usize;
            let found = {
                // SAFETY: only this thread writes the mapping, and not while this slice lives.
                let seg = unsafe { map.all() };
                match record_at(seg, off, end).filter(|r| r.seq >= self.read.seq) {
                    Some(r) => Ok(r),
                    None => {
                        // Damaged: jump over it if its length looks right, else scan.
                        let hint =
                            plausible_header_at(seg, off, end).map(|(_, _, len)| off + record_bytes(len));
                        Err(resync(seg, off + RECORD_ALIGN, end, Some(self.read.seq), hint))
                    }
                }
            };
            match found {
                Ok(r) if r.kind == RecordKind::Data => {
                    self.corrupt_records_skipped += r.seq - self.read.seq;
                    self.read.seq = r.seq + 1;
                    self.read.offset = r.next_offset as u64;
                    self.ops_since_sync += 1;
                    return Some(map.publish(r.payload_offset, r.payload_len));
                }
                Ok(r) => {
                    // A seal.
                    if in_write_segment {
                        // Cannot happen (the writer never writes past a seal); step over it.
                        self.read.offset = r.next_offset as u64;
                    } else {
                        self.advance_read_segment();
                    }
                }
                Err(Some(next_valid)) => self.read.offset = next_valid as u64,
                Err(None) if in_write_segment => self.read.offset = self.write.offset,
                Err(None) => self.advance_read_segment(),
            }
        }
    }

    fn advance_read_segment(&mut self) {
        let old = self.read.segment;
        debug_assert!(old < self.write.segment);
        let next = self
            .segments
            .range(old + 1..)
            .next()
            .map_or(self.write.segment, |(n, _)| *n);
        let next = next.min(self.write.segment);
        if self.segments.contains_key(&old) {
            self.consumed.push(old);
        }
        self.read = Position {
            segment: next,
            offset: SEGMENT_HEADER_BYTES as u64,
            seq: self.read.seq,
        };
        self.read_map = self.segments.get(&next).map(|s| Arc::clone(&s.mapping));
        self.sync_soon = true;
    }

    /// Records put and not yet read (an upper bound while damaged records remain unread).
    pub fn depth(&self) -> u64 {
        self.write.seq - self.read.seq
    }

    /// Records skipped because they were damaged or missing, over the queue's life (persisted).
    pub fn corrupt_records_skipped(&self) -> u64 {
        self.corrupt_records_skipped
    }

    /// Where the next record will be read.
    pub fn read_position(&self) -> Position {
        self.read
    }

    /// Where the next record will be written; its `seq` is the number of records ever put.
    pub fn write_position(&self) -> Position {
        self.write
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Writes the next metadata slot (the older one), by memcpy into the mapped metadata file.
    pub(crate) fn write_meta(&mut self, clean: bool) {
        self.meta_generation += 1;
        let state = MetaState {
            generation: self.meta_generation,
            read: self.read,
            write: self.write,
            durable: self.durable,
            depth: self.depth(),
            corrupt_records_skipped: self.corrupt_records_skipped,
            clean,
        };
        let slot = (self.meta_generation % META_SLOTS as u64) as usize * META_SLOT_STRIDE_BYTES;
        // SAFETY: the metadata mapping is never published; no slice of it is alive.
        unsafe { self.meta.mapping().write(slot, &encode_meta(&state)) };
    }

    /// Deletes every data file and resets the queue to empty (nsqd's `Empty`). Blocking: removes
    /// files, then makes the new (empty) metadata durable. A sync in flight is forgotten: its
    /// `finish_sync` will be ignored.
    pub fn empty(&mut self) -> Result<(), EmptyError> {
        let mut first_error = None;
        for number in self.data_file_numbers() {
            let file = segment_file_name(&self.name, number);
            if let Err(source) = self.storage.remove(&file) {
                first_error.get_or_insert(EmptyError::Io {
                    op: "remove",
                    file,
                    source,
                });
            }
        }
        self.segments.clear();
        self.read_map = None;
        self.write_map = None;
        let next = Position {
            segment: self.write.segment + 1,
            offset: SEGMENT_HEADER_BYTES as u64,
            seq: self.write.seq,
        };
        self.write = next;
        self.read = next;
        self.durable = next;
        self.in_flight = None;
        self.dirty.clear();
        self.write_segment_dirty = false;
        self.consumed.clear();
        self.ops_since_sync = 0;
        self.sync_soon = false;
        self.write_meta(false);
        let meta_file = meta_file_name(&self.name);
        if let Err(source) = self.meta.sync() {
            first_error.get_or_insert(EmptyError::Io {
                op: "fsync",
                file: meta_file,
                source,
            });
        }
        if let Err(source) = self.storage.sync_dir() {
            first_error.get_or_insert(EmptyError::Io {
                op: "fsync",
                file: ".".to_string(),
                source,
            });
        }
        self.dir_dirty = false;
        first_error.map_or(Ok(()), Err)
    }

    /// Removes every file of the queue (data and metadata). Not synced, like nsqd's `Delete`.
    pub fn delete(mut self) -> Result<(), DeleteError> {
        let mut files: Vec<String> = self
            .data_file_numbers()
            .into_iter()
            .map(|n| segment_file_name(&self.name, n))
            .collect();
        files.push(meta_file_name(&self.name));
        self.segments.clear();
        let mut first_error = None;
        for file in files {
            if let Err(source) = self.storage.remove(&file) {
                first_error.get_or_insert(DeleteError::Io { file, source });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Segment numbers that may have a file: those open, those consumed but not yet unlinked, and
    /// the write segment.
    fn data_file_numbers(&self) -> Vec<u64> {
        let mut numbers: Vec<u64> = self.segments.keys().copied().collect();
        numbers.extend(self.consumed.iter().copied());
        if let Some(f) = &self.in_flight {
            numbers.extend(f.removable.iter().copied());
        }
        numbers.push(self.write.segment);
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::CrashStorage;

    fn small() -> Options {
        Options {
            max_bytes_per_file: 256,
            max_msg_size: 100,
            sync_every: 10,
            sync_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn put_next_round_trip_with_rolls() {
        let s = CrashStorage::new();
        let mut q = DiskQueue::open_with(s.clone(), "t", small()).expect("open");
        for i in 0..50u32 {
            assert_eq!(q.put(&i.to_le_bytes().repeat(5)).expect("put"), i as u64);
        }
        assert_eq!(q.depth(), 50);
        assert!(q.write_position().segment > 5, "rolled: {:?}", q.write_position());
        for i in 0..50u32 {
            assert_eq!(q.next().expect("record"), i.to_le_bytes().repeat(5));
        }
        assert_eq!(q.next(), None);
        assert_eq!(q.depth(), 0);
        assert_eq!(q.corrupt_records_skipped(), 0);
    }

    #[test]
    fn too_large_is_refused_and_changes_nothing() {
        let mut q = DiskQueue::open_with(CrashStorage::new(), "t", small()).expect("open");
        let max = 100 + 26;
        assert!(q.put(&vec![1u8; max]).is_ok());
        assert!(matches!(
            q.put(&vec![1u8; max + 1]),
            Err(PutError::TooLarge { len: 127, max: 126 })
        ));
        assert_eq!(q.depth(), 1);
    }

    #[test]
    fn a_record_larger_than_a_segment_gets_its_own() {
        let opts = Options {
            max_bytes_per_file: 64,
            max_msg_size: 1000,
            ..small()
        };
        let mut q = DiskQueue::open_with(CrashStorage::new(), "t", opts.clamped()).expect("open");
        q.put(&[7u8; 500]).expect("put");
        q.put(b"small").expect("put");
        assert_eq!(q.next().expect("big").len(), 500);
        assert_eq!(q.next().expect("small"), &b"small"[..]);
    }

    #[test]
    fn handed_out_bytes_survive_segment_deletion() {
        let s = CrashStorage::new();
        let mut q = DiskQueue::open_with(s.clone(), "t", small()).expect("open");
        for i in 0..20u8 {
            q.put(&[i; 40]).expect("put");
        }
        let first = q.next().expect("first");
        while q.next().is_some() {}
        q.sync_now().expect("sync");
        assert!(
            !s.file_names().contains(&segment_file_name("t", 0)),
            "consumed segment unlinked"
        );
        assert_eq!(first, vec![0u8; 40]);
    }
}
