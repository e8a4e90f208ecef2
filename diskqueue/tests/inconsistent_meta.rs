//! A metadata slot with a good checksum but impossible contents (a durable position past the
//! write position, say) is ignored like a damaged one: the other slot's positions are used,
//! nothing is invented or reordered, and records put after the reopen are read back. An older slot
//! that names segments already consumed does not hide the segments after them.

mod common;

use common::*;
use squall_diskqueue::format::{
    decode_meta, encode_meta, meta_file_name, MetaState, Position, META_SLOT_STRIDE_BYTES,
    SEGMENT_HEADER_BYTES,
};
use squall_diskqueue::DiskQueue;

const HEADER: u64 = SEGMENT_HEADER_BYTES as u64;

/// 8 records put, 2 read, closed cleanly; then a newer slot holding `state` is written.
fn reopen_with_slot(tag: &str, state: MetaState) -> (TempDir, DiskQueue) {
    let dir = TempDir::new(tag);
    let mut q = DiskQueue::open(dir.path(), "q", small_opts(512)).expect("open");
    for i in 0..8 {
        q.put(&record(i, 40)).expect("put");
    }
    assert_eq!(drain_n(&mut q, 2), vec![0, 1]);
    q.close().expect("close");
    let slot = (state.generation % 2) as usize * META_SLOT_STRIDE_BYTES;
    patch_file(&dir.path().join(meta_file_name("q")), slot, &encode_meta(&state));
    let q = DiskQueue::open(dir.path(), "q", small_opts(512)).expect("reopen");
    (dir, q)
}

fn drain_n(q: &mut DiskQueue, n: usize) -> Vec<u64> {
    (0..n).map_while(|_| q.next()).map(|r| index_of(&r)).collect()
}

/// Read from the other slot's position: the one the close wrote (records 2..8) or, when the bad
/// slot took its place, the one before it (a replay of 0 and 1, as at-least-once allows).
fn assert_old_slot(got: Vec<u64>, tag: &str) {
    let from = |first: u64| (first..8).collect::<Vec<_>>();
    assert!(got == from(2) || got == from(0), "{tag}: read {got:?}");
}

fn at(segment: u64, offset: u64, seq: u64) -> Position {
    Position { segment, offset, seq }
}

#[test]
fn a_durable_position_past_the_writer_does_not_strand_new_records() {
    // Found by the diskqueue_meta fuzz target: with this slot trusted, recovery started the
    // writer at sequence 0 in segment 32 while the reader, after the old records, expected 8,
    // so the next put was skipped as damaged and never delivered.
    let state = MetaState {
        generation: 1 << 40,
        read: at(0, HEADER, 0),
        write: at(0, HEADER, 0),
        durable: at(32, HEADER, 0),
        depth: 0,
        corrupt_records_skipped: 0,
        clean: false,
    };
    let (_dir, mut q) = reopen_with_slot("durable-past-write", state);
    assert_old_slot(drain_n(&mut q, 20), "durable past write");
    q.put(&record(8, 40)).expect("put after reopen");
    assert_eq!(drain_n(&mut q, 20), vec![8], "a put after reopen is read back");
}

#[test]
fn a_generation_about_to_overflow_is_ignored() {
    // Found by the diskqueue_meta fuzz target: the next slot written after this one overflowed the
    // generation counter (a panic in a debug build; in release the new slot lost to the stale one,
    // and read records came back after a clean close).
    let state = MetaState {
        generation: u64::MAX - 1,
        read: at(0, HEADER, 0),
        write: at(0, HEADER, 0),
        durable: at(0, HEADER, 0),
        depth: 0,
        corrupt_records_skipped: 0,
        clean: false,
    };
    let (dir, mut q) = reopen_with_slot("generation-overflow", state);
    assert_old_slot(drain_n(&mut q, 20), "generation overflow");
    q.put(&record(8, 40)).expect("put after reopen");
    assert_eq!(drain_n(&mut q, 20), vec![8]);
    q.close().expect("close");
    let mut q = DiskQueue::open(dir.path(), "q", small_opts(512)).expect("reopen again");
    assert_eq!(q.next(), None, "nothing comes back after a clean close");
}

#[test]
fn a_reader_past_the_writer_or_a_wrong_depth_is_ignored() {
    for (tag, read, write, depth) in [
        ("read-past-write", at(1, HEADER, 9), at(0, 200, 8), 0),
        ("unaligned", at(0, HEADER + 3, 2), at(1, 200, 8), 6),
        ("wrong-depth", at(0, HEADER, 2), at(1, 200, 8), 5),
    ] {
        let state = MetaState {
            generation: (1 << 40) + 1,
            read,
            write,
            durable: at(0, HEADER, 0),
            depth,
            corrupt_records_skipped: 0,
            clean: true,
        };
        let (_dir, mut q) = reopen_with_slot(tag, state);
        assert_old_slot(drain_n(&mut q, 20), tag);
        q.put(&record(8, 40)).expect("put after reopen");
        assert_eq!(
            drain_n(&mut q, 20),
            vec![8],
            "{tag}: a put after reopen is read back"
        );
    }
}

#[test]
fn a_damaged_newest_slot_does_not_hide_the_segments_after_the_older_ones() {
    // Found by the diskqueue_meta fuzz target: the older slot named segment 0, which the reader
    // had consumed and unlinked; recovery stopped at the missing file, never saw segment 1, and
    // started writing at sequence 0 in a new segment 0. Record 13 went missing, and after the
    // next clean close it came back from the dead.
    let dir = TempDir::new("older-slot");
    let mut q = DiskQueue::open(dir.path(), "q", small_opts(512)).expect("open");
    for i in 0..14 {
        q.put(&record(i, 40)).expect("put");
    }
    assert_eq!(drain_n(&mut q, 13), (0..13).collect::<Vec<_>>());
    q.close().expect("close");
    let meta = dir.path().join(meta_file_name("q"));
    let bytes = std::fs::read(&meta).expect("read meta");
    let newest = (0..2)
        .max_by_key(|i| decode_meta(&bytes[i * META_SLOT_STRIDE_BYTES..]).map(|m| m.generation))
        .expect("two slots");
    patch_file(&meta, newest * META_SLOT_STRIDE_BYTES, b"XX");

    let mut q = DiskQueue::open(dir.path(), "q", small_opts(512)).expect("reopen");
    let got = drain_n(&mut q, 20);
    assert_eq!(got.last(), Some(&13), "the unread record survives: {got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, once: {got:?}");
    q.put(&record(14, 40)).expect("put after reopen");
    assert_eq!(drain_n(&mut q, 20), vec![14]);
    q.close().expect("close");
    let mut q = DiskQueue::open(dir.path(), "q", small_opts(512)).expect("reopen again");
    assert_eq!(q.next(), None, "nothing comes back after a clean close");
}
