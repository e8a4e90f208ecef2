//! A damaged record in the middle is skipped and counted; every other record survives, and a
//! damaged segment is never thrown away whole (go-diskqueue renames it `.bad` and loses the rest).

mod common;

use common::*;
use squall_diskqueue::format::{RECORD_CRC_OFFSET, RECORD_HEADER_BYTES, RECORD_LEN_OFFSET};
use squall_diskqueue::DiskQueue;

const PAYLOAD: usize = 100;

/// 20 records in segment 0, closed cleanly; then `damage` is applied to the file.
fn queue_with_damage(tag: &str, damage: impl FnOnce(&std::path::Path)) -> (TempDir, DiskQueue) {
    let dir = TempDir::new(tag);
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("open");
    for i in 0..20 {
        q.put(&record(i, PAYLOAD)).expect("put");
    }
    q.close().expect("close");
    damage(&segment_path(dir.path(), "t", 0));
    let q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("reopen");
    (dir, q)
}

fn all_but(skip: &[u64], n: u64) -> Vec<u64> {
    (0..n).filter(|i| !skip.contains(i)).collect()
}

#[test]
fn a_flipped_payload_byte_skips_exactly_that_record() {
    let (_dir, mut q) = queue_with_damage("payload", |seg| {
        patch_file(seg, record_offset(7, PAYLOAD) + RECORD_HEADER_BYTES + 50, &[0x5A]);
    });
    assert_eq!(q.depth(), 20, "unknown until read");
    assert_eq!(drain(&mut q), all_but(&[7], 20));
    assert_eq!(q.corrupt_records_skipped(), 1);
    assert_eq!(q.depth(), 0);
}

#[test]
fn a_damaged_crc_field_skips_exactly_that_record() {
    let (_dir, mut q) = queue_with_damage("crc", |seg| {
        patch_file(seg, record_offset(3, PAYLOAD) + RECORD_CRC_OFFSET, &[0, 0, 0, 0]);
    });
    assert_eq!(drain(&mut q), all_but(&[3], 20));
    assert_eq!(q.corrupt_records_skipped(), 1);
}

#[test]
fn an_implausible_length_resyncs_at_the_next_record_header() {
    let (_dir, mut q) = queue_with_damage("length", |seg| {
        patch_file(
            seg,
            record_offset(7, PAYLOAD) + RECORD_LEN_OFFSET,
            &[0xFF, 0xFF, 0xFF, 0x7F],
        );
    });
    assert_eq!(drain(&mut q), all_but(&[7], 20));
    assert_eq!(q.corrupt_records_skipped(), 1);
}

#[test]
fn a_destroyed_header_resyncs_at_the_next_record_header() {
    let (_dir, mut q) = queue_with_damage("header", |seg| {
        patch_file(seg, record_offset(0, PAYLOAD), &[0u8; RECORD_HEADER_BYTES]);
    });
    assert_eq!(drain(&mut q), all_but(&[0], 20));
    assert_eq!(q.corrupt_records_skipped(), 1);
}

#[test]
fn a_damaged_run_of_records_skips_the_run_and_counts_each() {
    let (_dir, mut q) = queue_with_damage("run", |seg| {
        let start = record_offset(5, PAYLOAD) + 10;
        let end = record_offset(9, PAYLOAD) + 3;
        patch_file(seg, start, &vec![0xAB; end - start]);
    });
    assert_eq!(drain(&mut q), all_but(&[5, 6, 7, 8, 9], 20));
    assert_eq!(q.corrupt_records_skipped(), 5);
}

#[test]
fn damage_to_the_last_record_before_the_writer_is_counted() {
    let (_dir, mut q) = queue_with_damage("last", |seg| {
        patch_file(seg, record_offset(19, PAYLOAD) + RECORD_HEADER_BYTES, &[0xEE; 4]);
    });
    assert_eq!(drain(&mut q), all_but(&[19], 20));
    assert_eq!(q.corrupt_records_skipped(), 1);
    assert_eq!(q.depth(), 0);
    q.put(&record(20, PAYLOAD)).expect("put");
    assert_eq!(drain(&mut q), vec![20]);
}

#[test]
fn a_damaged_segment_header_loses_nothing() {
    let (_dir, mut q) = queue_with_damage("seg-header", |seg| patch_file(seg, 0, b"garbage!garbage!"));
    assert_eq!(drain(&mut q), (0..20).collect::<Vec<_>>());
    assert_eq!(q.corrupt_records_skipped(), 0);
}

#[test]
fn damage_in_one_segment_keeps_the_rest_of_that_segment_and_the_next() {
    let dir = TempDir::new("segments");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("open");
    for i in 0..28 {
        q.put(&record(i, PAYLOAD)).expect("put"); // 7 per segment
    }
    q.close().expect("close");
    // The first record of segment 1 (record 7) and a record of segment 2 (record 16).
    patch_file(
        &segment_path(dir.path(), "t", 1),
        record_offset(0, PAYLOAD) + 40,
        &[1, 2, 3],
    );
    patch_file(
        &segment_path(dir.path(), "t", 2),
        record_offset(2, PAYLOAD) + 2,
        &[9],
    );
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("reopen");
    assert_eq!(drain(&mut q), all_but(&[7, 16], 28));
    assert_eq!(q.corrupt_records_skipped(), 2);
    q.close().expect("close");
    let q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("reopen");
    assert_eq!(q.corrupt_records_skipped(), 2, "the count is persisted");
}

#[test]
fn damage_in_the_region_recovery_scans_is_stepped_over_not_truncated() {
    // Records after the last durable position are verified by the open-time scan: a damaged one
    // whose length is plausible and which is followed by a valid record is corruption in the
    // middle, not the end of the data.
    let dir = TempDir::new("scan-middle");
    {
        let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("open");
        for i in 0..20 {
            q.put(&record(i, PAYLOAD)).expect("put");
        }
        q.sync_now().expect("sync");
        for i in 20..30 {
            q.put(&record(i, PAYLOAD)).expect("put");
        }
    }
    patch_file(
        &segment_path(dir.path(), "t", 0),
        record_offset(25, PAYLOAD) + RECORD_HEADER_BYTES + 1,
        &[0x77],
    );
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1 << 16)).expect("reopen");
    assert_eq!(q.depth(), 30);
    assert_eq!(drain(&mut q), all_but(&[25], 30));
    assert_eq!(q.corrupt_records_skipped(), 1);
}
