//! A crash after a completed sync round loses nothing the round covered, whatever reached the
//! disk after it; `durable_position` advances only when a round completes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use squall_diskqueue::format::{meta_file_name, segment_file_name};
use squall_diskqueue::{CrashPlan, CrashStorage, DiskQueue, Options, PutError};

#[test]
fn durable_position_only_advances_through_finish_sync() {
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(1024)).expect("open");
    assert_eq!(q.durable_position(), 0);
    for i in 0..5 {
        assert_eq!(q.put(&record(i, 50)).expect("put"), i);
    }
    assert_eq!(q.durable_position(), 0, "put is not durable");
    let batch = q.begin_sync(Instant::now()).expect("something to sync");
    assert!(q.begin_sync(Instant::now()).is_none(), "one round at a time");
    assert!(!q.sync_due(Instant::now() + Duration::from_secs(10_000)));
    q.put(&record(5, 50)).expect("put during the round");
    for fd in &batch.fds {
        s.fsync(*fd);
    }
    assert_eq!(q.durable_position(), 0, "fsync done but not reported");
    q.finish_sync(batch.token);
    assert_eq!(q.durable_position(), 5, "covers what was put before begin_sync");
    sync_round(&mut q, &s);
    assert_eq!(q.durable_position(), 6);
    assert!(q.begin_sync(Instant::now()).is_none(), "nothing new");
}

#[test]
fn a_failed_fsync_poisons_the_queue() {
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(1024)).expect("open");
    q.put(&record(0, 50)).expect("put");
    let batch = q.begin_sync(Instant::now()).expect("batch");
    q.fail_sync(batch.token);
    assert_eq!(q.durable_position(), 0);
    assert!(q.is_poisoned());
    assert!(matches!(q.put(&record(1, 50)), Err(PutError::Poisoned)));
    assert!(q.begin_sync(Instant::now()).is_none());
    assert_eq!(index_of(&q.next().expect("reads still work")), 0);
}

#[test]
fn sync_due_follows_count_and_timer() {
    let s = CrashStorage::new();
    let opts = Options {
        sync_every: 3,
        sync_timeout: Duration::from_millis(100),
        ..small_opts(1 << 20)
    };
    let mut q = DiskQueue::open_with(s.clone(), "t", opts).expect("open");
    let t0 = Instant::now();
    assert!(!q.sync_due(t0 + Duration::from_secs(5)), "idle queues never sync");
    q.put(&record(0, 50)).expect("put");
    q.put(&record(1, 50)).expect("put");
    assert!(q.sync_due(t0 + Duration::from_secs(5)), "timer with activity");
    q.next().expect("read counts as an op");
    assert!(q.sync_due(t0), "count reached (puts and reads)");
    let batch = q.begin_sync(t0).expect("batch");
    for fd in &batch.fds {
        s.fsync(*fd);
    }
    q.finish_sync(batch.token);
    assert!(!q.sync_due(t0 + Duration::from_millis(50)));
    q.put(&record(2, 50)).expect("put");
    assert!(!q.sync_due(t0 + Duration::from_millis(50)));
    assert!(q.sync_due(t0 + Duration::from_millis(100)));
}

#[test]
fn a_sync_every_1_round_acknowledges_each_put_after_its_fsync() {
    let s = CrashStorage::new();
    let opts = Options {
        sync_every: 1,
        ..small_opts(512)
    };
    let mut q = DiskQueue::open_with(s.clone(), "t", opts).expect("open");
    for i in 0..40 {
        let seq = q.put(&record(i, 60)).expect("put");
        assert!(q.sync_due(Instant::now()));
        assert!(q.durable_position() <= seq);
        sync_round(&mut q, &s);
        assert!(q.durable_position() > seq, "acked after the round");
        // Power loss right now must keep every acknowledged record.
        let after = s.crash(&CrashPlan::LoseUnsynced);
        let mut r = DiskQueue::open_with(after, "t", opts).expect("reopen");
        assert_eq!(drain(&mut r), (0..=i).collect::<Vec<_>>());
    }
}

#[test]
fn power_loss_after_sync_loses_nothing_synced_and_keeps_working() {
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(1024)).expect("open");
    for i in 0..30 {
        q.put(&record(i, 100)).expect("put"); // several rolls: new files must be durable too
    }
    sync_round(&mut q, &s);
    assert_eq!(q.durable_position(), 30);
    for i in 30..45 {
        q.put(&record(i, 100)).expect("put (not synced)");
    }
    let after = s.crash(&CrashPlan::LoseUnsynced);
    drop(q);
    let mut q = DiskQueue::open_with(after, "t", small_opts(1024)).expect("reopen");
    assert_eq!(q.depth(), 30);
    assert_eq!(q.write_position().seq, 30);
    for i in 30..35 {
        q.put(&record(i, 100)).expect("put after recovery");
    }
    assert_eq!(drain(&mut q), (0..35).collect::<Vec<_>>());
    assert_eq!(q.corrupt_records_skipped(), 0);
}

#[test]
fn a_round_whose_data_fsync_did_not_happen_promises_nothing_but_breaks_nothing() {
    // Metadata written and fsync'd, data not: recovery trusts only the previous round's
    // durable position and rescans, finding the end by CRC.
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(1 << 16)).expect("open");
    for i in 0..10 {
        q.put(&record(i, 100)).expect("put");
    }
    sync_round(&mut q, &s);
    for i in 10..20 {
        q.put(&record(i, 100)).expect("put");
    }
    let batch = q.begin_sync(Instant::now()).expect("batch");
    s.fsync(*batch.fds.iter().find(|fd| **fd != batch.fds[0]).expect("meta fd")); // meta only
    let after = s.crash(&CrashPlan::LoseUnsynced);
    drop(q);
    let mut q = DiskQueue::open_with(after, "t", small_opts(1 << 16)).expect("reopen");
    assert_eq!(drain(&mut q), (0..10).collect::<Vec<_>>());
    assert_eq!(
        q.corrupt_records_skipped(),
        0,
        "unsynced records are not 'corrupt'"
    );
}

#[test]
fn a_torn_metadata_slot_falls_back_to_the_other_one() {
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(1 << 16)).expect("open");
    for i in 0..10 {
        q.put(&record(i, 100)).expect("put");
    }
    sync_round(&mut q, &s);
    q.next().expect("read");
    q.put(&record(10, 100)).expect("put");
    let _batch = q.begin_sync(Instant::now()).expect("batch");
    // The new slot is torn half way through before reaching the disk.
    let meta = meta_file_name("t");
    let live = s.read(&meta).expect("meta");
    let generation = |slot: usize| u64::from_le_bytes(live[slot + 16..slot + 24].try_into().expect("gen"));
    let newest = if generation(0) > generation(4096) { 0 } else { 4096 };
    let after = s.crash(&CrashPlan::TearFile {
        file: meta,
        keep_live_until: newest + 40,
    });
    drop(q);
    let mut q = DiskQueue::open_with(after, "t", small_opts(1 << 16)).expect("reopen");
    assert_eq!(
        drain(&mut q),
        (0..10).collect::<Vec<_>>(),
        "older slot: read at 0 (the torn one said 1)"
    );
}

#[test]
fn a_new_segment_is_durable_only_with_its_directory_entry() {
    let s = CrashStorage::new();
    let mut q = DiskQueue::open_with(s.clone(), "t", small_opts(512)).expect("open");
    for i in 0..12 {
        q.put(&record(i, 100)).expect("put"); // 3 per segment -> segments 0..=3
    }
    let batch = q.begin_sync(Instant::now()).expect("batch");
    assert!(
        batch.fds.contains(&s_dir_fd(&s)),
        "created files put the directory in the round"
    );
    for fd in &batch.fds {
        s.fsync(*fd);
    }
    q.finish_sync(batch.token);
    drop(q);
    let after = s.crash(&CrashPlan::LoseUnsynced);
    assert!(after.file_names().contains(&segment_file_name("t", 3)));
    let mut q = DiskQueue::open_with(after, "t", small_opts(512)).expect("reopen");
    assert_eq!(drain(&mut q), (0..12).collect::<Vec<_>>());
}

fn s_dir_fd(s: &CrashStorage) -> i32 {
    use squall_diskqueue::Storage;
    s.dir_fd()
}

/// Random workloads, random partial rounds, random torn power loss: every record acknowledged
/// durable and not yet durably consumed comes back, in order, exactly as written.
#[test]
fn random_torn_crashes_never_lose_an_acknowledged_record() {
    // (acknowledged records checked, unsynced records that survived, runs that lost unsynced
    // records, records skipped as damaged): all must be non-zero for the test to mean something.
    let mut stats = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..300u64 {
        let mut rng = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            | 1;
        let mut rand = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let opts = small_opts(300 + rand(3000));
        let s = CrashStorage::new();
        let mut q = DiskQueue::open_with(s.clone(), "t", opts).expect("open");
        let mut put = 0u64;
        let mut read = 0u64;
        let steps = 1 + rand(60);
        for _ in 0..steps {
            match rand(10) {
                0..=4 => {
                    for _ in 0..1 + rand(8) {
                        q.put(&record(put, 8 + rand(200) as usize)).expect("put");
                        put += 1;
                    }
                }
                5..=6 => {
                    for _ in 0..rand(6) {
                        if let Some(r) = q.next() {
                            assert_eq!(index_of(&r), read, "seed {seed}");
                            read += 1;
                        }
                    }
                }
                7..=8 => sync_round(&mut q, &s),
                _ => {
                    // A round cut short: some fsyncs done, not reported.
                    if let Some(batch) = q.begin_sync(Instant::now()) {
                        for fd in &batch.fds {
                            if rand(2) == 0 {
                                s.fsync(*fd);
                            }
                        }
                        std::mem::forget(batch);
                        break;
                    }
                }
            }
        }
        let durable = q.durable_position();
        let after = s.crash(&CrashPlan::Torn { seed });
        drop(q);
        let mut q = DiskQueue::open_with(after, "t", opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let resumed_at = q.read_position().seq;
        assert!(resumed_at <= read, "seed {seed}: never skips unread records");
        let got = drain(&mut q);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "seed {seed}: order {got:?}");
        for want in resumed_at..durable {
            assert!(
                got.contains(&want),
                "seed {seed}: acknowledged record {want} lost; got {got:?}"
            );
        }
        stats.0 += durable.saturating_sub(resumed_at);
        stats.1 += got.iter().filter(|&&g| g >= durable).count() as u64;
        stats.2 += u64::from(got.len() as u64 + resumed_at < put);
        stats.3 += q.corrupt_records_skipped();
        if let Some(&last) = got.last() {
            assert!(last < put, "seed {seed}: invented record");
        }
        // And it keeps working.
        q.put(&record(put, 10)).expect("put after recovery");
        assert_eq!(drain(&mut q), vec![put], "seed {seed}");
    }
    eprintln!("stats {stats:?}");
    assert!(stats.0 > 0 && stats.1 > 0 && stats.2 > 0, "{stats:?}");
}
