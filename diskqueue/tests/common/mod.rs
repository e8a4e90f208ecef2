//! Helpers shared by the property tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use squall_diskqueue::format::{segment_file_name, SEGMENT_HEADER_BYTES};
use squall_diskqueue::{CrashStorage, DiskQueue, Options};

/// A directory removed on drop (no tempfile dependency for this).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "squall-dq-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small segments so tests roll often.
pub fn small_opts(max_bytes_per_file: u64) -> Options {
    Options {
        max_bytes_per_file,
        max_msg_size: 1000,
        sync_every: 1_000_000,
        sync_timeout: Duration::from_secs(3600),
    }
}

/// A recognisable record: its index, then `len - 8` filler bytes derived from it.
pub fn record(i: u64, len: usize) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((0..len.saturating_sub(8)).map(|k| (i as usize * 31 + k) as u8));
    v
}

/// The index a record made by [`record`] carries, after checking its filler.
pub fn index_of(r: &[u8]) -> u64 {
    let i = u64::from_be_bytes(r[..8].try_into().expect("8 bytes"));
    assert_eq!(r, record(i, r.len()), "record {i} content");
    i
}

/// Reads everything left.
pub fn drain<S: squall_diskqueue::Storage>(q: &mut DiskQueue<S>) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(r) = q.next() {
        out.push(index_of(&r));
    }
    out
}

/// One sync round as the broker would run it, with `storage` playing the io_uring.
pub fn sync_round(q: &mut DiskQueue<CrashStorage>, storage: &CrashStorage) {
    if let Some(batch) = q.begin_sync(Instant::now()) {
        for fd in &batch.fds {
            storage.fsync(*fd);
        }
        q.finish_sync(batch.token);
    }
}

/// Offset of record `k` (0-based) in a segment of equal-sized records of `payload_len` bytes.
pub fn record_offset(k: usize, payload_len: usize) -> usize {
    SEGMENT_HEADER_BYTES + k * squall_diskqueue::format::record_bytes(payload_len)
}

pub fn segment_path(dir: &Path, queue: &str, n: u64) -> PathBuf {
    dir.join(segment_file_name(queue, n))
}

/// Overwrites bytes of a real file.
pub fn patch_file(path: &Path, offset: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for patch");
    f.write_all_at(bytes, offset as u64).expect("patch");
}

/// Our segment files in `dir`, sorted.
pub fn segment_files(dir: &Path, queue: &str) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            squall_diskqueue::format::parse_segment_file_name(queue, &name)
        })
        .collect();
    v.sort_unstable();
    v
}
