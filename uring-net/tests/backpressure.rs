//! Claim: while an engine does not consume its input, the runtime stops reading the socket, so
//! a connection's input stays bounded by `input_max_bytes` (less than one 16 KiB completion
//! over it); after the engine pauses and resumes reading, every byte arrives, in order, none
//! lost.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

const INPUT_MAX: usize = 64 * 1024;
const TOTAL: usize = 8 * 1024 * 1024;
const SEED: u8 = 0x33;

#[derive(Default)]
struct Shared {
    max_input_seen: AtomicUsize,
    consumed: AtomicUsize,
    corrupt: AtomicBool,
}

enum Stage {
    /// Not consuming: the runtime must stop reading at INPUT_MAX.
    Hold,
    /// The engine paused reading explicitly and consumed what it had.
    Paused,
    /// Consuming everything as it arrives.
    Flowing,
}

struct Holder {
    shared: Arc<Shared>,
    conn: Option<ConnId>,
    stage: Stage,
}

const TIMER_PAUSE: u64 = 1;
const TIMER_RESUME: u64 = 2;

impl Holder {
    fn consume(&mut self, io: &mut Io<()>, conn: ConnId) {
        let Some(input) = io.input(conn) else { return };
        let bytes = input.split();
        let start = self.shared.consumed.load(Ordering::SeqCst);
        for (i, b) in bytes.iter().enumerate() {
            if *b != pattern_byte(start + i, SEED) {
                self.shared.corrupt.store(true, Ordering::SeqCst);
                break;
            }
        }
        self.shared.consumed.fetch_add(bytes.len(), Ordering::SeqCst);
    }

    fn observe(&self, io: &mut Io<()>, conn: ConnId) {
        let len = io.input(conn).map_or(0, |i| i.len());
        self.shared.max_input_seen.fetch_max(len, Ordering::SeqCst);
    }
}

impl Engine for Holder {
    type Msg = ();

    fn on_accept(&mut self, io: &mut Io<()>, conn: ConnId, _l: usize, _p: Option<std::net::SocketAddr>) {
        assert!(self.conn.is_none());
        self.conn = Some(conn);
        io.timer_at(io.now() + Duration::from_millis(300), TIMER_PAUSE);
    }

    fn on_input(&mut self, io: &mut Io<()>, conn: ConnId) {
        match self.stage {
            Stage::Hold => self.observe(io, conn),
            // Only bytes that were already in flight when reading paused can show up here.
            Stage::Paused => self.observe(io, conn),
            Stage::Flowing => {
                self.observe(io, conn);
                self.consume(io, conn);
            }
        }
    }

    fn on_timer(&mut self, io: &mut Io<()>, token: u64) {
        let Some(conn) = self.conn else { return };
        self.observe(io, conn);
        match token {
            TIMER_PAUSE => {
                io.pause_reading(conn);
                self.consume(io, conn);
                self.stage = Stage::Paused;
                io.timer_at(io.now() + Duration::from_millis(200), TIMER_RESUME);
            }
            TIMER_RESUME => {
                self.stage = Stage::Flowing;
                io.resume_reading(conn);
            }
            _ => unreachable!(),
        }
    }

    fn on_closed(&mut self, _io: &mut Io<()>, _conn: ConnId) {}
    fn on_detached(&mut self, _io: &mut Io<()>, _c: ConnId, _d: Detached) {}
    fn on_message(&mut self, _io: &mut Io<()>, _f: ShardId, _m: ()) {}
    fn on_shutdown(&mut self, _io: &mut Io<()>) {}
}

#[test]
fn input_stays_bounded_and_nothing_is_lost() {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let mut cfg = config(1);
    cfg.input_max_bytes = INPUT_MAX;
    let rt = Runtime::start(cfg, move |_, _| Holder {
        shared: s.clone(),
        conn: None,
        stage: Stage::Hold,
    })
    .expect("start");
    let mut stream = connect(tcp_addr(&rt));
    let data = pattern(TOTAL, SEED);
    // Blocks while the server holds; the server resumes on its own after ~500 ms.
    let writer = std::thread::spawn(move || {
        stream.write_all(&data).expect("write");
        stream
    });
    wait_until("all bytes consumed", || {
        shared.consumed.load(Ordering::SeqCst) >= TOTAL
    });
    drop(writer.join().unwrap()); // closed: the shard then has nothing left to drain
    assert_eq!(shared.consumed.load(Ordering::SeqCst), TOTAL);
    assert!(!shared.corrupt.load(Ordering::SeqCst), "bytes differ");
    let max_seen = shared.max_input_seen.load(Ordering::SeqCst);
    eprintln!("largest input seen: {max_seen} (input_max_bytes {INPUT_MAX})");
    assert!(max_seen >= INPUT_MAX, "reading stopped before the limit");
    // The multishot recv carries a byte cap (Linux 6.17+), so the input can pass the limit
    // by less than one 16 KiB completion at most.
    assert!(
        max_seen < INPUT_MAX + 16 * 1024,
        "input grew to {max_seen}, past input_max_bytes {INPUT_MAX}"
    );
    rt.shutdown();
    rt.join().expect("join");
}
