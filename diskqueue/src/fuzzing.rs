//! Checks the fuzz targets run on arbitrary bytes, shared with the corpus replay test
//! (`bins/tests/fuzz_corpus.rs`) so that stable CI exercises every committed corpus file.
//!
//! Both write the input into a fresh directory as a queue's files, open the queue (recovery) and
//! read everything back. Each asserts an invariant beyond "does not panic"; a failed assertion is
//! a finding.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::format::{
    encode_meta, meta_file_name, segment_file_name, MetaState, Position, META_FILE_BYTES,
    META_SLOT_STRIDE_BYTES, RECORD_ALIGN, RECORD_CRC_OFFSET, RECORD_HEADER_BYTES, RECORD_KIND_OFFSET,
    RECORD_LEN_OFFSET, RECORD_MAGIC,
};
use crate::{DiskQueue, Options};

/// Small segments so that a few records span several files.
const OPTIONS: Options = Options {
    max_bytes_per_file: 512,
    max_msg_size: 200,
    sync_every: 1,
    sync_timeout: Duration::from_secs(3600),
};

/// The input is segment 0 of queue `q`, with no metadata file (as after a crash before the first
/// slot was written).
///
/// Invariants: every record read back lies in the file as a whole data record whose CRC32C (computed
/// here, independently of the queue's own check) matches, and the records come out in file order,
/// each once; after the drain the queue is writable and returns what is put next; a clean close and
/// reopen returns nothing twice.
pub fn segment(data: &[u8]) {
    let dir = TempDir::new("segment");
    write(&dir.path().join(segment_file_name("q", 0)), data);
    let Ok(mut queue) = DiskQueue::open(dir.path(), "q", OPTIONS) else {
        return;
    };
    let mut after = 0;
    for _ in 0..data.len() / RECORD_HEADER_BYTES + 1 {
        let Some(payload) = queue.next() else {
            break;
        };
        let found = find_record(data, after, &payload)
            .unwrap_or_else(|| panic!("record {payload:?} is not a valid record after offset {after}"));
        after = found + RECORD_ALIGN;
    }
    assert_eq!(queue.next(), None, "more records than the file can hold");
    writable_and_replay_free(dir.path(), queue);
}

/// `data[0]` records are put (at most 15) and `data[1]` of them read, the queue is closed, and
/// then its metadata file is damaged: `data[2]` picks how (raw bytes over a slot, or a newer slot
/// with a valid checksum whose read, write and durable positions are any the queue passed
/// through, in any combination, and whose other fields come from the input).
///
/// A slot's positions are always ones the queue really had: a slot whose sequence numbers
/// contradict the records on disk cannot come from damage (the checksum would fail), only from a
/// bug in the queue, and recovery does not re-derive every sequence number to defend against that.
///
/// Invariants: open fails cleanly or recovers; what it then reads is a subsequence, in order, of the
/// records that were put, byte for byte (metadata can lose or replay records, never invent or
/// reorder them); the queue stays writable.
pub fn meta(data: &[u8]) {
    let [puts, reads, mode, rest @ ..] = data else {
        return;
    };
    let puts = u64::from(puts % 16);
    let reads = u64::from(*reads) % (puts + 1);
    let dir = TempDir::new("meta");
    let mut positions = Vec::new();
    {
        let mut queue = DiskQueue::open(dir.path(), "q", OPTIONS).expect("open a fresh queue");
        positions.push(queue.write_position());
        for i in 0..puts {
            queue.put(&record(i)).expect("put");
            positions.push(queue.write_position());
        }
        for i in 0..reads {
            assert_eq!(
                queue.next().as_deref(),
                Some(&record(i)[..]),
                "read back before the damage"
            );
            positions.push(queue.read_position());
        }
        queue.close().expect("close");
    }
    let meta_path = dir.path().join(meta_file_name("q"));
    let mut file = std::fs::read(&meta_path).unwrap_or_default();
    file.resize(META_FILE_BYTES, 0);
    let slot = usize::from(mode & 1) * META_SLOT_STRIDE_BYTES;
    if mode & 2 == 0 {
        let n = rest.len().min(META_SLOT_STRIDE_BYTES);
        file[slot..slot + n].copy_from_slice(&rest[..n]);
    } else {
        let state = meta_state(rest, &positions);
        let slot = (state.generation % 2) as usize * META_SLOT_STRIDE_BYTES;
        let bytes = encode_meta(&state);
        file[slot..slot + bytes.len()].copy_from_slice(&bytes);
    }
    if mode & 4 != 0 {
        file.truncate(usize::from(rest.first().copied().unwrap_or(0)) * 32);
    }
    write(&meta_path, &file);

    let Ok(mut queue) = DiskQueue::open(dir.path(), "q", OPTIONS) else {
        return;
    };
    let mut expected = 0..puts;
    for _ in 0..=puts {
        let Some(payload) = queue.next() else {
            break;
        };
        let index = index_of(&payload);
        assert!(
            expected.any(|i| i == index),
            "record {index} out of order or invented (put {puts}, read {reads})"
        );
    }
    assert_eq!(queue.next(), None, "more records than were put");
    writable_and_replay_free(dir.path(), queue);
}

/// A put after recovery is the next record read; after a clean close nothing comes back.
fn writable_and_replay_free(dir: &Path, mut queue: DiskQueue) {
    let probe = b"probe record";
    if queue.put(probe).is_ok() {
        assert_eq!(queue.next().as_deref(), Some(&probe[..]), "a put after recovery");
    }
    if queue.close().is_err() {
        return;
    }
    if let Ok(mut queue) = DiskQueue::open(dir, "q", OPTIONS) {
        let back = queue.next();
        assert_eq!(
            back,
            None,
            "a record came back after a clean close (read {:?}, write {:?})",
            queue.read_position(),
            queue.write_position()
        );
    }
}

/// A slot from the input (zero-filled): positions picked from `positions`, the rest as given; the
/// checksum is made valid by `encode_meta`.
fn meta_state(raw: &[u8], positions: &[Position]) -> MetaState {
    let mut words = raw.chunks(8).map(|c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(b)
    });
    let mut next = || words.next().unwrap_or(0);
    let mut position = || positions[(next() % positions.len() as u64) as usize];
    let (read, write, durable) = (position(), position(), position());
    let mut next = || words.next().unwrap_or(0);
    let depth = match next() {
        0 => write.seq.wrapping_sub(read.seq),
        other => other,
    };
    MetaState {
        generation: next() | 1 << 40,
        read,
        write,
        durable,
        depth,
        corrupt_records_skipped: next(),
        clean: next() & 1 != 0,
    }
}

/// The first aligned offset at or after `from` where `payload` is a whole, valid data record.
fn find_record(file: &[u8], from: usize, payload: &[u8]) -> Option<usize> {
    let total = RECORD_HEADER_BYTES + payload.len();
    (from.next_multiple_of(RECORD_ALIGN)..file.len().saturating_sub(total - 1))
        .step_by(RECORD_ALIGN)
        .find(|&off| {
            let h = &file[off..off + RECORD_HEADER_BYTES];
            let le32 = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
            h[..4] == RECORD_MAGIC
                && le32(RECORD_LEN_OFFSET) as usize == payload.len()
                && h[RECORD_KIND_OFFSET..RECORD_KIND_OFFSET + 2] == [1, 0]
                && &file[off + RECORD_HEADER_BYTES..off + total] == payload
                && crc32c::crc32c_append(crc32c::crc32c(&h[..RECORD_CRC_OFFSET]), payload)
                    == le32(RECORD_CRC_OFFSET)
        })
}

/// Record `i`: its index, then bytes derived from it, 8 to 67 bytes long.
fn record(i: u64) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((0..(i * 7) % 60).map(|k| (i * 31 + k) as u8));
    v
}

fn index_of(payload: &[u8]) -> u64 {
    let head: [u8; 8] = payload
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| panic!("invented record {payload:?}"));
    let i = u64::from_be_bytes(head);
    assert_eq!(payload, record(i), "record {i} content");
    i
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "squall-dq-fuzz-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
