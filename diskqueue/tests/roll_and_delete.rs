//! Records round-trip in order across many segment rolls; fully consumed segments are unlinked;
//! `empty` and `delete` remove the files.

mod common;

use common::*;
use squall_diskqueue::format::meta_file_name;
use squall_diskqueue::DiskQueue;

#[test]
fn put_next_round_trip_across_many_rolls() {
    let dir = TempDir::new("roll");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("open");
    let sizes = [0usize, 8, 100, 333, 1000];
    let n = 2000u64;
    for i in 0..n {
        let len = sizes[i as usize % sizes.len()].max(8);
        assert_eq!(q.put(&record(i, len)).expect("put"), i);
        assert_eq!(q.depth(), i + 1);
    }
    assert!(
        q.write_position().segment > 100,
        "rolled: {:?}",
        q.write_position()
    );
    for i in 0..n {
        let r = q.next().expect("record");
        assert_eq!(index_of(&r), i);
        assert_eq!(q.depth(), n - i - 1);
    }
    assert!(q.next().is_none());
    assert_eq!(q.corrupt_records_skipped(), 0);
}

#[test]
fn interleaved_put_and_next_follow_the_writer_through_rolls() {
    let dir = TempDir::new("interleave");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(512)).expect("open");
    let mut next_put = 0u64;
    let mut next_read = 0u64;
    for round in 0..300u64 {
        for _ in 0..(round % 7) {
            q.put(&record(next_put, 40)).expect("put");
            next_put += 1;
        }
        for _ in 0..(round % 5) {
            match q.next() {
                Some(r) => {
                    assert_eq!(index_of(&r), next_read);
                    next_read += 1;
                }
                None => assert_eq!(next_read, next_put),
            }
        }
        assert_eq!(q.depth(), next_put - next_read);
    }
    assert_eq!(drain(&mut q), (next_read..next_put).collect::<Vec<_>>());
}

#[test]
fn consumed_segments_are_unlinked_once_the_read_position_is_durable() {
    let dir = TempDir::new("unlink");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("open");
    for i in 0..70 {
        q.put(&record(i, 100)).expect("put"); // 7 records per segment -> 10 segments
    }
    q.sync_now().expect("sync");
    assert_eq!(segment_files(dir.path(), "t"), (0..10).collect::<Vec<_>>());
    for _ in 0..30 {
        q.next().expect("record");
    }
    // The reader has left segments 0..=3, but nothing durable says so yet.
    assert_eq!(segment_files(dir.path(), "t").first(), Some(&0));
    q.sync_now().expect("sync");
    assert_eq!(segment_files(dir.path(), "t"), (4..10).collect::<Vec<_>>());
    drain(&mut q);
    q.close().expect("close");
    assert_eq!(segment_files(dir.path(), "t"), vec![9]);
}

#[test]
fn records_held_by_the_consumer_outlive_their_unlinked_segment() {
    let dir = TempDir::new("hold");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(1024)).expect("open");
    for i in 0..20 {
        q.put(&record(i, 100)).expect("put");
    }
    let held: Vec<_> = (0..20).map(|_| q.next().expect("record")).collect();
    q.sync_now().expect("sync");
    assert!(!segment_path(dir.path(), "t", 0).exists());
    for (i, r) in held.iter().enumerate() {
        assert_eq!(index_of(r), i as u64);
    }
}

#[test]
fn empty_removes_data_files_and_the_queue_keeps_working() {
    // go-diskqueue's TestDiskQueueEmpty, adapted.
    let dir = TempDir::new("empty");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(300)).expect("open");
    for i in 0..100 {
        q.put(&record(i, 16)).expect("put");
    }
    for i in 0..3 {
        assert_eq!(index_of(&q.next().expect("record")), i);
    }
    assert_eq!(q.depth(), 97);
    let before = segment_files(dir.path(), "t");
    assert!(before.len() > 5);
    q.empty().expect("empty");
    assert!(segment_files(dir.path(), "t").is_empty());
    assert_eq!(q.depth(), 0);
    assert_eq!(q.read_position(), q.write_position());
    assert!(q.write_position().segment > *before.last().expect("some"));
    assert!(q.next().is_none());

    for i in 100..200 {
        q.put(&record(i, 16)).expect("put");
    }
    assert_eq!(drain(&mut q), (100..200).collect::<Vec<_>>());
    assert_eq!(q.depth(), 0);
    q.close().expect("close");

    // And the reset survives a reopen.
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(300)).expect("reopen");
    assert_eq!(q.depth(), 0);
    assert!(q.next().is_none());
}

#[test]
fn delete_removes_every_file() {
    let dir = TempDir::new("delete");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(512)).expect("open");
    for i in 0..50 {
        q.put(&record(i, 50)).expect("put");
    }
    q.next().expect("record");
    q.delete().expect("delete");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read_dir").collect();
    assert!(left.is_empty(), "files left: {left:?}");
    assert!(!dir.path().join(meta_file_name("t")).exists());
}

#[test]
fn queues_sharing_a_directory_do_not_touch_each_others_files() {
    let dir = TempDir::new("shared");
    let mut a = DiskQueue::open(dir.path(), "t", small_opts(512)).expect("open a");
    let mut b = DiskQueue::open(dir.path(), "t:c", small_opts(512)).expect("open b");
    for i in 0..30 {
        a.put(&record(i, 50)).expect("put a");
        b.put(&record(i + 1000, 50)).expect("put b");
    }
    a.empty().expect("empty a");
    assert_eq!(drain(&mut b), (1000..1030).collect::<Vec<_>>());
    b.delete().expect("delete b");
    a.put(&record(7, 50)).expect("put a");
    assert_eq!(drain(&mut a), vec![7]);
}

#[test]
fn changing_max_bytes_per_file_between_runs_loses_nothing() {
    // go-diskqueue's TestDiskQueueResize, adapted: there must be no loss and no skip.
    let dir = TempDir::new("resize");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(8 * 48 + 56)).expect("open");
    for i in 0..9 {
        q.put(&record(i, 20)).expect("put");
    }
    assert_eq!(q.write_position().segment, 1);
    q.close().expect("close");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(10 * 48 + 56)).expect("reopen");
    for i in 9..19 {
        q.put(&record(i, 20)).expect("put");
    }
    assert_eq!(q.depth(), 19);
    assert_eq!(drain(&mut q), (0..19).collect::<Vec<_>>());
    assert_eq!(q.corrupt_records_skipped(), 0);
}

#[test]
fn oversized_records_are_refused() {
    let dir = TempDir::new("big");
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(512)).expect("open");
    assert!(
        q.put(&vec![0u8; 1000 + 26]).is_ok(),
        "max_msg_size + message header fits"
    );
    let err = q.put(&vec![0u8; 1000 + 27]).expect_err("too large");
    assert!(
        matches!(err, squall_diskqueue::PutError::TooLarge { .. }),
        "{err}"
    );
    assert_eq!(q.depth(), 1);
}

#[test]
fn segment_files_start_small_and_double_up_to_max_bytes_per_file() {
    // Segments are preallocated: a queue that holds a few messages must not reserve a whole
    // `max_bytes_per_file` (100 MiB by default) of disk per topic or channel.
    let dir = TempDir::new("grow");
    let max = 5 * 1024 * 1024;
    let mut q = DiskQueue::open(dir.path(), "t", small_opts(max)).expect("open");
    let file_len = |n: u64| {
        let path = dir
            .path()
            .join(squall_diskqueue::format::segment_file_name("t", n));
        std::fs::metadata(path).expect("segment file").len()
    };
    q.put(&record(0, 100)).expect("put");
    assert_eq!(file_len(0), squall_diskqueue::FIRST_SEGMENT_BYTES);
    let mut i = 1;
    while q.write_position().segment < 3 {
        q.put(&record(i, 1000)).expect("put");
        i += 1;
    }
    assert_eq!(file_len(1), 2 * squall_diskqueue::FIRST_SEGMENT_BYTES);
    assert_eq!(file_len(2), 4 * squall_diskqueue::FIRST_SEGMENT_BYTES);
    assert_eq!(file_len(3), max, "capped at max_bytes_per_file");
    for k in 0..i {
        assert_eq!(index_of(&q.next().expect("record")), k);
    }
}
