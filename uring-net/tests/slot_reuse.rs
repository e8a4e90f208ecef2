//! Claim: an engine may key per-connection state by `ConnId::index()`. A connection's
//! `on_closed` or `on_detached` runs before any callback for a newer connection in the same slot,
//! so a slot is always empty when `on_accept` or `attach` hands it out again.
//!
//! The engine closes or detaches every connection at once, while clients keep connecting: slots
//! are freed and reused turn after turn, the case where an accept reaped in the turn after a slot
//! was freed would otherwise be announced before the old connection's end.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    ended: AtomicUsize,
    reused_while_live: AtomicUsize,
}

struct Churn {
    slots: Vec<Option<ConnId>>,
    counters: Arc<Counters>,
}

impl Churn {
    fn occupy(&mut self, conn: ConnId) {
        let i = conn.index();
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        if self.slots[i].is_some() {
            self.counters.reused_while_live.fetch_add(1, Ordering::SeqCst);
        }
        self.slots[i] = Some(conn);
    }

    fn vacate(&mut self, conn: ConnId) {
        let slot = &mut self.slots[conn.index()];
        assert_eq!(*slot, Some(conn), "end of a connection the engine does not hold");
        *slot = None;
        self.counters.ended.fetch_add(1, Ordering::SeqCst);
    }
}

impl Engine for Churn {
    type Msg = ();

    fn on_accept(&mut self, io: &mut Io<()>, conn: ConnId, _: usize, _: Option<std::net::SocketAddr>) {
        self.occupy(conn);
        let n = self.counters.accepted.fetch_add(1, Ordering::SeqCst);
        io.write(conn, b"x");
        // Half the connections leave by detach (the fd is dropped by `on_detached`).
        if n.is_multiple_of(2) {
            io.close(conn);
        } else {
            io.detach(conn);
        }
    }

    fn on_closed(&mut self, _: &mut Io<()>, conn: ConnId) {
        self.vacate(conn);
    }

    fn on_detached(&mut self, _: &mut Io<()>, conn: ConnId, _: Detached) {
        self.vacate(conn);
    }

    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
    fn on_timer(&mut self, _: &mut Io<()>, _: u64) {}
    fn on_shutdown(&mut self, _: &mut Io<()>) {}
}

#[test]
fn a_slot_is_reused_only_after_its_connection_ended() {
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let rt = Runtime::start(config(1), move |_, _| Churn {
        slots: Vec::new(),
        counters: c.clone(),
    })
    .expect("start");
    let addr = tcp_addr(&rt);

    const THREADS: usize = 4;
    const PER_THREAD: usize = 300;
    let clients: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let mut stream = connect(addr);
                    let mut got = Vec::new();
                    stream
                        .read_to_end(&mut got)
                        .expect("read until the server closes");
                    assert_eq!(got, b"x");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    wait_until("every connection ended", || {
        counters.ended.load(Ordering::SeqCst) == THREADS * PER_THREAD
    });
    assert_eq!(counters.accepted.load(Ordering::SeqCst), THREADS * PER_THREAD);
    assert_eq!(counters.reused_while_live.load(Ordering::SeqCst), 0);
    rt.shutdown();
    rt.join().expect("join");
}
