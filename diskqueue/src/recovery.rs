//! Opening a queue: pick the metadata slot, find the real end of the data, make it durable.
//!
//! 1. Read both metadata slots; the valid one with the highest generation wins. If neither is
//!    valid (or the file is missing), list the directory and start from the lowest segment.
//! 2. Remove segments below the read segment (consumed; their unlink was not done yet).
//! 3. Scan from the slot's *durable* position (everything before it was fsync'd before the slot
//!    was written), verifying each record's CRC. A damaged record whose length field is plausible
//!    and which is followed by a valid record is a corrupt record in the middle: step over it (the
//!    reader counts it when it passes). Anything else ends the data: a torn tail.
//! 4. Seal every scanned segment at its end, so readers stop there and never look at the torn
//!    bytes after it. Unless the slot says the queue was closed cleanly (nothing after the write
//!    position was ever touched), writing continues in a fresh segment: the old one's tail may hold
//!    fragments of unsynced records, which must never be mistaken for records written later.
//! 5. fsync what was scanned (after `kill -9` it may be only in the page cache), write a slot with
//!    the recovered positions, fsync it and the directory. Everything recovered is now durable.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::error::OpenError;
use crate::format::{
    decode_meta, encode_record_header, encode_segment_header, meta_file_name, parse_segment_file_name,
    plausible_header_at, record_at, record_bytes, segment_file_name, segment_header_valid, MetaState,
    Position, RecordKind, META_FILE_BYTES, META_SLOTS, META_SLOT_STRIDE_BYTES, RECORD_ALIGN,
    SEAL_RECORD_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::options::{Options, FIRST_SEGMENT_BYTES};
use crate::queue::{DiskQueue, Segment};
use crate::storage::{FileStorage, Storage, StorageFile};

const HEADER: u64 = SEGMENT_HEADER_BYTES as u64;

impl DiskQueue<FileStorage> {
    /// Opens (or creates) the queue `name` in `dir`, running recovery. Blocking; `dir` must exist.
    pub fn open(dir: &Path, name: &str, opts: Options) -> Result<DiskQueue<FileStorage>, OpenError> {
        let storage = FileStorage::new(dir).map_err(|source| OpenError::Io {
            queue: name.to_string(),
            op: "open directory",
            file: dir.display().to_string(),
            source,
        })?;
        DiskQueue::open_with(storage, name, opts)
    }
}

/// What the scan found.
struct ScanEnd {
    /// Position after the last valid record of the last segment scanned.
    end: Position,
    /// Whether the last segment scanned ends with a seal (the writer had rolled past it).
    sealed: bool,
    /// Sequence number of the first record seen (used when no metadata slot was readable).
    first_seq: Option<u64>,
    /// Whether any segment file at or after the scan's start exists.
    scanned_any: bool,
}

impl<S: Storage> DiskQueue<S> {
    /// Opens (or creates) the queue `name` in `storage`, running recovery. Blocking.
    pub fn open_with(storage: S, name: &str, opts: Options) -> Result<DiskQueue<S>, OpenError> {
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(OpenError::InvalidName(name.to_string()));
        }
        let io = |op: &'static str, file: String| {
            let queue = name.to_string();
            move |source| OpenError::Io {
                queue,
                op,
                file,
                source,
            }
        };

        // 1. Metadata.
        let meta_name = meta_file_name(name);
        let existing = storage.open(&meta_name).map_err(io("open", meta_name.clone()))?;
        let (meta, state) = match existing {
            Some(f) if f.mapping().len() >= META_FILE_BYTES => {
                let state = best_slot(&f);
                (f, state)
            }
            short => {
                // Missing, or created but not yet sized when a crash came: start it anew.
                drop(short);
                storage
                    .remove(&meta_name)
                    .map_err(io("remove", meta_name.clone()))?;
                let f = storage
                    .create(&meta_name, META_FILE_BYTES as u64)
                    .map_err(io("create", meta_name.clone()))?;
                (f, None)
            }
        };

        let (read, durable, clean, generation, corrupt, seq_known, numbers) = match state {
            Some(s) => {
                let fix = |p: Position| Position {
                    offset: p.offset.max(HEADER),
                    ..p
                };
                (
                    fix(s.read),
                    fix(s.durable),
                    s.clean,
                    s.generation,
                    s.corrupt_records_skipped,
                    true,
                    Vec::new(),
                )
            }
            None => {
                let listing = storage.list().map_err(io("list", ".".to_string()))?;
                let mut numbers: Vec<u64> = listing
                    .iter()
                    .filter_map(|f| parse_segment_file_name(name, f))
                    .collect();
                numbers.sort_unstable();
                let lowest = numbers.first().copied().unwrap_or(0);
                let start = Position {
                    segment: lowest,
                    offset: HEADER,
                    seq: 0,
                };
                (start, start, false, 0, 0, false, numbers)
            }
        };

        // 2 + open. Segments from the lower of read and durable up to the first missing one past
        // the higher; a gap below that is a lost segment the reader skips (and counts).
        let mut segments = BTreeMap::new();
        let low = read.segment.min(durable.segment);
        if seq_known {
            let high = read.segment.max(durable.segment);
            let mut n = low;
            loop {
                let file_name = segment_file_name(name, n);
                match storage.open(&file_name).map_err(io("open", file_name))? {
                    Some(f) => {
                        segments.insert(
                            n,
                            Segment {
                                mapping: Arc::clone(f.mapping()),
                                file: Some(f),
                            },
                        );
                    }
                    None if n >= high => break,
                    None => {}
                }
                n += 1;
            }
            // Segments past a gap at the slot's positions. A correct slot never leaves any (the
            // files it names are unlinked only after a newer slot moved past them), but when the
            // newest slot is damaged, the older one may name segments already consumed and
            // unlinked: the records after them must still be found, not shadowed by a writer
            // that starts over below them.
            let listing = storage.list().map_err(io("list", ".".to_string()))?;
            let mut later: Vec<u64> = listing
                .iter()
                .filter_map(|f| parse_segment_file_name(name, f))
                .filter(|&k| k > n)
                .collect();
            later.sort_unstable();
            for k in later {
                let file_name = segment_file_name(name, k);
                if let Some(f) = storage.open(&file_name).map_err(io("open", file_name))? {
                    segments.insert(
                        k,
                        Segment {
                            mapping: Arc::clone(f.mapping()),
                            file: Some(f),
                        },
                    );
                }
            }
            // Consumed segments whose unlink a crash prevented.
            let mut below = low;
            while below > 0 {
                below -= 1;
                let file_name = segment_file_name(name, below);
                if storage
                    .open(&file_name)
                    .map_err(io("open", file_name.clone()))?
                    .is_none()
                {
                    break;
                }
                storage.remove(&file_name).map_err(io("remove", file_name))?;
            }
        }
        for n in numbers {
            let file_name = segment_file_name(name, n);
            if let Some(f) = storage.open(&file_name).map_err(io("open", file_name))? {
                segments.insert(
                    n,
                    Segment {
                        mapping: Arc::clone(f.mapping()),
                        file: Some(f),
                    },
                );
            }
        }

        // 3 + 4. Scan from the durable position.
        let scan = scan_from(&segments, durable, seq_known.then_some(durable.seq));
        let write_seq = scan.end.seq;
        let last_has_room = segments
            .get(&scan.end.segment)
            .is_some_and(|s| s.mapping.len() as u64 >= scan.end.offset + SEAL_RECORD_BYTES as u64);
        let continue_in_place = clean && !scan.sealed && last_has_room;
        let write = if !scan.scanned_any {
            // No file at or after the durable position: the write segment is created lazily.
            Position {
                segment: durable.segment,
                offset: HEADER,
                seq: write_seq,
            }
        } else if continue_in_place {
            scan.end
        } else {
            if !scan.sealed {
                if let Some(seg) = segments.get(&scan.end.segment) {
                    seal(seg, scan.end);
                }
            }
            Position {
                segment: scan.end.segment + 1,
                offset: HEADER,
                seq: write_seq,
            }
        };

        let mut read = if seq_known {
            read
        } else {
            Position {
                seq: scan.first_seq.unwrap_or(write_seq),
                ..read
            }
        };
        if (read.segment, read.offset) > (write.segment, write.offset) || read.seq > write.seq {
            read = write;
        }
        // Segments the (possibly clamped) reader is past are consumed.
        let consumed: Vec<u64> = segments.range(..read.segment).map(|(n, _)| *n).collect();

        let write_map = segments.get(&write.segment).map(|s| Arc::clone(&s.mapping));
        let read_map = segments.get(&read.segment).map(|s| Arc::clone(&s.mapping));
        let mut q = DiskQueue {
            storage,
            name: name.to_string(),
            opts: opts.clamped(),
            meta,
            meta_generation: generation,
            segments,
            read,
            write,
            read_map,
            write_map,
            durable: write,
            corrupt_records_skipped: corrupt,
            ops_since_sync: 0,
            last_sync_at: Instant::now(),
            sync_soon: false,
            dirty: Vec::new(),
            write_segment_dirty: false,
            dir_dirty: true,
            consumed,
            in_flight: None,
            next_token: 0,
            poisoned: false,
            next_segment_bytes: FIRST_SEGMENT_BYTES.min(opts.clamped().max_bytes_per_file),
        };
        // 5. Make what was recovered durable.
        q.sync_blocking(false).map_err(|e| {
            let queue = name.to_string();
            match e {
                crate::error::SyncError::Io { file, source } => OpenError::Io {
                    queue,
                    op: "fsync",
                    file,
                    source,
                },
                crate::error::SyncError::Poisoned => OpenError::Io {
                    queue,
                    op: "fsync",
                    file: String::new(),
                    source: std::io::Error::other("poisoned"),
                },
            }
        })?;
        Ok(q)
    }
}

/// The valid slot with the highest generation.
fn best_slot<F: StorageFile>(meta: &F) -> Option<MetaState> {
    // SAFETY: nothing writes the metadata mapping during open.
    let bytes = unsafe { meta.mapping().all() };
    (0..META_SLOTS)
        .filter_map(|i| decode_meta(&bytes[i * META_SLOT_STRIDE_BYTES..]).filter(|m| slot_consistent(m, i)))
        .max_by_key(|m| m.generation)
}

/// What every slot the queue writes satisfies. A slot whose checksum is good but which breaks one
/// of these was not written by a correct queue, and trusting it can strand records: a durable
/// position past the write position, for one, makes the writer number new records below what the
/// reader expects, and the reader skips them. Such a slot is ignored like a damaged one.
fn slot_consistent(m: &MetaState, index: usize) -> bool {
    // The generation grows by one per slot written: one a microsecond would take 146,000 years to
    // get here, and a slot beyond it would overflow the counter and lose to the older slot.
    const GENERATION_MAX: u64 = 1 << 62;
    let aligned = |p: &Position| p.offset % RECORD_ALIGN as u64 == 0;
    let at_or_before =
        |a: &Position, b: &Position| (a.segment, a.offset) <= (b.segment, b.offset) && a.seq <= b.seq;
    m.generation < GENERATION_MAX
        && m.generation % META_SLOTS as u64 == index as u64
        && aligned(&m.read)
        && aligned(&m.write)
        && aligned(&m.durable)
        && at_or_before(&m.read, &m.write)
        && at_or_before(&m.durable, &m.write)
        && m.depth == m.write.seq - m.read.seq
}

/// Scans every segment from `from` on; see the module docs (steps 3 and 4).
fn scan_from<F>(segments: &BTreeMap<u64, Segment<F>>, from: Position, expected: Option<u64>) -> ScanEnd {
    let mut expected = expected;
    let mut first_seq = None;
    let mut end = from;
    let mut sealed = false;
    let numbers: Vec<u64> = segments.range(from.segment..).map(|(n, _)| *n).collect();
    for (i, n) in numbers.iter().enumerate() {
        let seg = &segments[n];
        let map = &seg.mapping;
        let len = map.len();
        let mut off = if *n == from.segment {
            from.offset as usize
        } else {
            SEGMENT_HEADER_BYTES
        };
        sealed = false;
        if len >= SEGMENT_HEADER_BYTES {
            // SAFETY: nothing is published yet and no other slice is alive.
            if !segment_header_valid(unsafe { map.all() }, *n) {
                // Records validate themselves; the header is only rewritten, never trusted.
                // SAFETY: as above.
                unsafe { map.write(0, &encode_segment_header(*n)) };
            }
        }
        loop {
            // SAFETY: as above; the slice dies before any write below.
            let bytes = unsafe { map.all() };
            let wanted = |seq: u64| expected.is_none_or(|e| seq >= e);
            match record_at(bytes, off, len).filter(|r| wanted(r.seq)) {
                Some(r) if r.kind == RecordKind::Data => {
                    first_seq.get_or_insert(r.seq);
                    expected = Some(r.seq + 1);
                    off = r.next_offset;
                }
                Some(r) => {
                    expected = Some(expected.map_or(r.seq, |e| e.max(r.seq)));
                    off = r.next_offset;
                    sealed = true;
                    break;
                }
                None => {
                    // Corrupt in the middle only if the length field is plausible and a valid
                    // record follows right after; otherwise this is where the data ends.
                    let next = plausible_header_at(bytes, off, len)
                        .map(|(_, _, l)| off + record_bytes(l))
                        .filter(|&next| record_at(bytes, next, len).is_some_and(|r| wanted(r.seq)));
                    match next {
                        Some(next) => off = next,
                        None => break,
                    }
                }
            }
        }
        end = Position {
            segment: *n,
            offset: off.min(len) as u64,
            seq: expected.unwrap_or(0),
        };
        let last = i + 1 == numbers.len();
        if !last && !sealed {
            seal(seg, end);
        }
    }
    if numbers.is_empty() {
        end.seq = expected.unwrap_or(0);
    }
    ScanEnd {
        end,
        sealed,
        first_seq,
        scanned_any: !numbers.is_empty(),
    }
}

/// Writes a seal at `at` when it fits.
fn seal<F>(seg: &Segment<F>, at: Position) {
    let off = at.offset as usize;
    if off >= SEGMENT_HEADER_BYTES && off + SEAL_RECORD_BYTES <= seg.mapping.len() {
        // SAFETY: during open, before anything is published; no slice alive.
        unsafe {
            seg.mapping
                .write(off, &encode_record_header(RecordKind::Seal, at.seq, &[]))
        };
    }
}
