//! `put` of 200-byte records (the memcpy hot path, with rolls amortised in), and `next` of the
//! same records (CRC check + zero-copy `Bytes`), on real mmap'd files in the temp directory,
//! beside a plain buffered sequential `write(2)` of the same bytes to the same disk.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use squall_diskqueue::{DiskQueue, Options};

const RECORD_BYTES: usize = 200;

fn opts() -> Options {
    Options {
        max_bytes_per_file: 64 * 1024 * 1024,
        max_msg_size: 1024 * 1024,
        sync_every: u64::MAX,
        sync_timeout: Duration::from_secs(3600),
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("squall-dq-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("mkdir");
    p
}

fn bench_put(c: &mut Criterion) {
    let dir = temp_dir("put");
    let record = vec![0x5Au8; RECORD_BYTES];
    let mut group = c.benchmark_group("diskqueue");
    group.throughput(Throughput::Bytes(RECORD_BYTES as u64));
    let mut q = DiskQueue::open(&dir, "bench", opts()).expect("open");
    group.bench_function("put_200B", |b| {
        b.iter_custom(|iters| {
            // Timed: the puts, page faults on fresh pages and segment rolls included. Untimed:
            // draining and the fsync that unlinks consumed segments (the broker runs fsync
            // through its ring, off the put path), which also keeps the disk used bounded.
            let start = std::time::Instant::now();
            for _ in 0..iters {
                q.put(std::hint::black_box(&record)).expect("put");
            }
            let elapsed = start.elapsed();
            while q.next().is_some() {}
            q.sync_now().expect("sync");
            elapsed
        })
    });
    drop(q);

    let mut q = DiskQueue::open(&dir, "bench-read", opts()).expect("open");
    group.bench_function("next_200B", |b| {
        b.iter_custom(|iters| {
            // Fill untimed, then time only the reads.
            for _ in 0..iters {
                q.put(&record).expect("put");
            }
            let start = std::time::Instant::now();
            for _ in 0..iters {
                std::hint::black_box(q.next().expect("record"));
            }
            let elapsed = start.elapsed();
            q.sync_now().expect("sync"); // unlinks consumed segments
            elapsed
        })
    });
    drop(q);

    // The baseline: the same bytes appended to a plain file with write(2), no framing, no CRC,
    // no fsync, in 64 KiB chunks (the cheapest way the same disk takes a sequential write).
    let plain = dir.join("plain.dat");
    group.bench_function("plain_write_200B", |b| {
        b.iter_custom(|iters| {
            use std::io::Write;
            let mut f = std::fs::File::create(&plain).expect("create");
            let mut buf = Vec::with_capacity(64 * 1024);
            let start = std::time::Instant::now();
            for _ in 0..iters {
                buf.extend_from_slice(std::hint::black_box(&record));
                if buf.len() >= 64 * 1024 - RECORD_BYTES {
                    f.write_all(&buf).expect("write");
                    buf.clear();
                }
            }
            f.write_all(&buf).expect("write");
            start.elapsed()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_put);
criterion_main!(benches);
