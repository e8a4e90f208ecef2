//! Claims: `Io::fsync` syncs a file through the shard's ring and reports every token exactly once
//! through `on_fsync`, with `Ok` for a good file and an `Err` (EBADF) for a bad descriptor; many
//! may be in flight at once; a shard that is shutting down waits for its fsyncs before it exits.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

/// Files each shard writes and fsyncs on start.
const FILES_ON_START: u64 = 8;
/// Files each shard writes and fsyncs from a timer.
const FILES_ON_TIMER: u64 = 4;
/// Bad descriptors each shard fsyncs on start: -1 and one far above any open fd.
const BAD_FDS: [i32; 2] = [-1, i32::MAX];

const TIMER_TOKEN: u64 = 1;
/// Token layout: `shard << 32 | kind << 16 | n`.
const KIND_START: u64 = 1;
const KIND_TIMER: u64 = 2;
const KIND_BAD: u64 = 3;
const KIND_SHUTDOWN: u64 = 4;

fn token(shard: ShardId, kind: u64, n: u64) -> u64 {
    ((shard as u64) << 32) | (kind << 16) | n
}

/// What `on_fsync` saw: token, and the raw OS error if it failed.
type Log = Arc<Mutex<Vec<(u64, Option<i32>)>>>;

struct Syncer {
    dir: PathBuf,
    shard: ShardId,
    /// Files with an fsync in flight, by token: kept open until `on_fsync`.
    open: HashMap<u64, File>,
    log: Log,
    /// Whether `on_shutdown` fsyncs one more file.
    fsync_on_shutdown: bool,
}

impl Syncer {
    /// Writes a file with plain std I/O (blocking is fine in a test engine) and fsyncs it
    /// through the ring.
    fn write_and_fsync(&mut self, io: &mut Io<()>, token: u64) {
        let path = self.dir.join(format!("{token:016x}"));
        let mut file = File::create(&path).expect("create test file");
        file.write_all(&contents(token)).expect("write test file");
        io.fsync(file.as_raw_fd(), token);
        assert!(self.open.insert(token, file).is_none(), "token {token:#x} reused");
    }
}

fn contents(token: u64) -> Vec<u8> {
    pattern(4096 + (token as usize % 1000), token as u8)
}

impl Engine for Syncer {
    type Msg = ();

    fn on_start(&mut self, io: &mut Io<()>) {
        self.shard = io.shard();
        for n in 0..FILES_ON_START {
            self.write_and_fsync(io, token(self.shard, KIND_START, n));
        }
        for (n, fd) in BAD_FDS.into_iter().enumerate() {
            io.fsync(fd, token(self.shard, KIND_BAD, n as u64));
        }
        let expected = FILES_ON_START as usize + BAD_FDS.len();
        assert_eq!(io.fsyncs_in_flight(), expected);
        io.timer_at(io.now() + Duration::from_millis(5), TIMER_TOKEN);
    }

    fn on_timer(&mut self, io: &mut Io<()>, timer: u64) {
        assert_eq!(timer, TIMER_TOKEN);
        for n in 0..FILES_ON_TIMER {
            self.write_and_fsync(io, token(self.shard, KIND_TIMER, n));
        }
    }

    fn on_fsync(&mut self, io: &mut Io<()>, token: u64, result: std::io::Result<()>) {
        assert!(io.fsyncs_in_flight() < 64, "in-flight count out of range");
        // The file may be closed now.
        self.open.remove(&token);
        self.log
            .lock()
            .unwrap()
            .push((token, result.err().map(|e| e.raw_os_error().unwrap_or(0))));
    }

    fn on_shutdown(&mut self, io: &mut Io<()>) {
        if self.fsync_on_shutdown {
            self.write_and_fsync(io, token(self.shard, KIND_SHUTDOWN, 0));
        }
    }

    fn on_accept(&mut self, _: &mut Io<()>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {}
    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("squall-uring-net-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
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

fn start(shards: usize, dir: &Path, fsync_on_shutdown: bool) -> (squall_uring_net::RuntimeHandle, Log) {
    let log: Log = Arc::default();
    let (l, d) = (log.clone(), dir.to_path_buf());
    let mut cfg = config(shards);
    cfg.listeners.clear();
    let rt = Runtime::start(cfg, move |shard, _| Syncer {
        dir: d.clone(),
        shard,
        open: HashMap::new(),
        log: l.clone(),
        fsync_on_shutdown,
    })
    .expect("start");
    (rt, log)
}

/// Checks that every expected token was reported exactly once, with the expected outcome.
fn check_log(log: &[(u64, Option<i32>)], shards: usize, with_shutdown: bool) {
    let mut seen: HashMap<u64, Option<i32>> = HashMap::new();
    for &(token, err) in log {
        assert!(
            seen.insert(token, err).is_none(),
            "token {token:#x} reported twice"
        );
    }
    let mut expected = 0;
    for shard in 0..shards {
        let good = (0..FILES_ON_START)
            .map(|n| token(shard, KIND_START, n))
            .chain((0..FILES_ON_TIMER).map(|n| token(shard, KIND_TIMER, n)))
            .chain(with_shutdown.then(|| token(shard, KIND_SHUTDOWN, 0)));
        for t in good {
            expected += 1;
            match seen.get(&t) {
                Some(None) => {}
                Some(Some(errno)) => panic!("fsync {t:#x} failed with errno {errno}"),
                None => panic!("fsync {t:#x} never reported"),
            }
        }
        for n in 0..BAD_FDS.len() {
            let t = token(shard, KIND_BAD, n as u64);
            expected += 1;
            assert_eq!(seen.get(&t), Some(&Some(libc::EBADF)), "fsync of a bad fd {t:#x}");
        }
    }
    assert_eq!(seen.len(), expected, "unexpected tokens reported");
}

fn check_files(dir: &Path, tokens: impl Iterator<Item = u64>) {
    for t in tokens {
        let data = std::fs::read(dir.join(format!("{t:016x}"))).expect("read synced file");
        assert_eq!(data, contents(t), "contents of file {t:#x}");
    }
}

#[test]
fn every_fsync_completes_exactly_once() {
    const SHARDS: usize = 2;
    let dir = TempDir::new("fsync");
    let (rt, log) = start(SHARDS, dir.path(), false);
    let per_shard = (FILES_ON_START + FILES_ON_TIMER) as usize + BAD_FDS.len();
    wait_until("all fsyncs reported", || {
        log.lock().unwrap().len() >= SHARDS * per_shard
    });
    rt.shutdown();
    rt.join().expect("join");

    let log = log.lock().unwrap();
    check_log(&log, SHARDS, false);
    check_files(
        dir.path(),
        (0..SHARDS).flat_map(|s| {
            (0..FILES_ON_START)
                .map(move |n| token(s, KIND_START, n))
                .chain((0..FILES_ON_TIMER).map(move |n| token(s, KIND_TIMER, n)))
        }),
    );
}

#[test]
fn shutdown_waits_for_fsyncs_in_flight() {
    const SHARDS: usize = 1;
    let dir = TempDir::new("fsync-shutdown");
    let (rt, log) = start(SHARDS, dir.path(), true);
    let per_shard = (FILES_ON_START + FILES_ON_TIMER) as usize + BAD_FDS.len();
    wait_until("all fsyncs reported", || {
        log.lock().unwrap().len() >= SHARDS * per_shard
    });
    // With no connection left, the shard would exit on the turn that runs `on_shutdown`, were
    // it not for the fsync that `on_shutdown` submits.
    rt.shutdown();
    rt.join().expect("join");

    let log = log.lock().unwrap();
    check_log(&log, SHARDS, true);
    check_files(dir.path(), std::iter::once(token(0, KIND_SHUTDOWN, 0)));
}
