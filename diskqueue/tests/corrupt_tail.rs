//! A torn tail (garbage or zeros after the last valid record) is cut off at open, nothing before
//! it is lost, nothing in it is counted as corruption, and the queue keeps working.

mod common;

use common::*;
use squall_diskqueue::format::{record_bytes, segment_file_name};
use squall_diskqueue::{CrashPlan, CrashStorage, DiskQueue};

const PAYLOAD: usize = 100;

#[test]
fn a_write_torn_mid_record_is_truncated_and_the_queue_keeps_working() {
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(1 << 16)).expect("open");
    for i in 0..10 {
        q.put(&record(i, PAYLOAD)).expect("put");
    }
    sync_round(&mut q, &s);
    for i in 10..15 {
        q.put(&record(i, PAYLOAD)).expect("put (unsynced)");
    }
    // Records 10..=12 reached the disk, 13 only half, 14 not at all.
    let tear_at = record_offset(13, PAYLOAD) + record_bytes(PAYLOAD) / 2;
    let after = s.crash(&CrashPlan::TearFile {
        file: segment_file_name("t", 0),
        keep_live_until: tear_at,
    });
    drop(q);

    let mut q = DiskQueue::open_with(after.clone(), "t", small_opts(1 << 16)).expect("reopen");
    assert_eq!(q.depth(), 13);
    assert_eq!(
        q.write_position().segment,
        1,
        "unclean stop: append in a fresh segment"
    );
    for i in 13..20 {
        q.put(&record(i, PAYLOAD)).expect("put after recovery");
    }
    assert_eq!(drain(&mut q), (0..20).collect::<Vec<_>>());
    assert_eq!(q.corrupt_records_skipped(), 0, "a torn tail is not corruption");
    q.close().expect("close");

    let mut q = DiskQueue::open_with(after, "t", small_opts(1 << 16)).expect("reopen again");
    assert_eq!(q.depth(), 0);
    assert!(q.next().is_none());
}

#[test]
fn garbage_after_the_last_record_of_a_real_file_is_cut_off() {
    let dir = TempDir::new("garbage-tail");
    {
        let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("open");
        for i in 0..25 {
            q.put(&record(i, PAYLOAD)).expect("put");
        }
        q.sync_now().expect("sync");
        // Dropped without close; then the tail is damaged as a power loss mid-write would.
    }
    // A power loss mid-write leaves a record header start and garbage after the last record.
    let seg = segment_path(dir.path(), "t", 0);
    patch_file(
        &seg,
        record_offset(25, PAYLOAD),
        &[0xA5, b'S', b'Q', b'R', 100, 0, 0, 0],
    );
    patch_file(&seg, record_offset(25, PAYLOAD) + 8, &[0xFF; 300]);

    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("reopen");
    assert_eq!(q.depth(), 25);
    assert_eq!(
        q.write_position().segment,
        1,
        "the damaged tail is sealed off, never written over"
    );
    for i in 25..30 {
        q.put(&record(i, PAYLOAD)).expect("put after recovery");
    }
    assert_eq!(drain(&mut q), (0..30).collect::<Vec<_>>());
    assert_eq!(q.corrupt_records_skipped(), 0);
    q.close().expect("close");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("reopen again");
    assert!(q.next().is_none());
}

#[test]
fn a_zeroed_tail_is_the_end_of_the_data() {
    let dir = TempDir::new("zero-tail");
    {
        let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("open");
        for i in 0..10 {
            q.put(&record(i, PAYLOAD)).expect("put");
        }
    }
    // The last three records never reached the disk: zeros.
    let seg = segment_path(dir.path(), "t", 0);
    patch_file(
        &seg,
        record_offset(7, PAYLOAD),
        &vec![0u8; 3 * record_bytes(PAYLOAD)],
    );
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("reopen");
    assert_eq!(q.depth(), 7);
    assert_eq!(drain(&mut q), (0..7).collect::<Vec<_>>());
    assert_eq!(q.corrupt_records_skipped(), 0);
}

#[test]
fn a_truncated_write_segment_keeps_its_surviving_records() {
    // go-diskqueue's corruption test, step 3: truncate the current write file.
    let dir = TempDir::new("truncate-write");
    {
        let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("open");
        for i in 0..25 {
            q.put(&record(i, PAYLOAD)).expect("put"); // 7 per segment: 0..=3, 21..=24 in segment 3
        }
    }
    let seg = segment_path(dir.path(), "t", 3);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(300)
        .expect("truncate");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("reopen");
    q.put(&record(100, PAYLOAD)).expect("put");
    // 300 bytes hold the header and records 21 and 22 (32 + 2 * 128 = 288).
    let mut want: Vec<u64> = (0..23).collect();
    want.push(100);
    assert_eq!(drain(&mut q), want);
}

#[test]
fn a_truncated_middle_segment_loses_only_what_was_cut_and_counts_it() {
    // go-diskqueue's corruption test, step 2: truncate a completed file.
    let dir = TempDir::new("truncate-middle");
    {
        let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("open");
        for i in 0..25 {
            q.put(&record(i, PAYLOAD)).expect("put");
        }
        q.close().expect("close");
    }
    let seg = segment_path(dir.path(), "t", 1); // records 7..=13
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(400)
        .expect("truncate");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("reopen");
    let got = drain(&mut q);
    let want: Vec<u64> = (0..25).filter(|i| !(9..14).contains(i)).collect();
    assert_eq!(
        got, want,
        "32 + 2 * 128 = 288 <= 400 < 416: records 7 and 8 remain of segment 1"
    );
    assert_eq!(q.corrupt_records_skipped(), 5);
}
