//! Claim: a live connection detached on one shard and attached on another keeps its bytes: what
//! the client sends while the connection is in transit (buffered input and bytes still in the
//! socket) arrives on the new shard in order, and the new shard's replies reach the client.
//! Also: `close` on a detaching connection wins (on_closed, no on_detached).

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

#[derive(Default)]
struct Counters {
    detached_from_0: AtomicUsize,
    attached_on_1: AtomicUsize,
    closed_on_1: AtomicUsize,
}

/// Every connection ends on shard 1, passing through shard 0 with unread input:
/// accepted on 1 -> detach -> attach on 0 -> (first input, unread) detach -> attach on 1 -> echo.
struct Mover {
    shard: ShardId,
    counters: Arc<Counters>,
}

impl Engine for Mover {
    type Msg = Detached;

    fn on_accept(&mut self, io: &mut Io<Detached>, conn: ConnId, _: usize, _: Option<std::net::SocketAddr>) {
        if self.shard == 1 {
            io.detach(conn);
        }
        // On shard 0: wait for input, then move with it.
    }

    fn on_input(&mut self, io: &mut Io<Detached>, conn: ConnId) {
        if self.shard == 0 {
            // Leave the input unread: it must travel with the connection.
            io.detach(conn);
            return;
        }
        let Some(input) = io.input(conn) else { return };
        let bytes = input.split().freeze();
        io.write_bytes(conn, bytes);
        io.flush(conn);
    }

    fn on_detached(&mut self, io: &mut Io<Detached>, _conn: ConnId, detached: Detached) {
        if self.shard == 0 {
            self.counters.detached_from_0.fetch_add(1, Ordering::SeqCst);
        }
        let to = 1 - self.shard;
        if let Err(back) = io.send(to, detached) {
            drop(back); // cannot happen with these few connections; dropping closes it
            panic!("lane full");
        }
    }

    fn on_message(&mut self, io: &mut Io<Detached>, _from: ShardId, detached: Detached) {
        assert!(detached.peer().is_some());
        let conn = io.attach(detached);
        if self.shard == 1 {
            self.counters.attached_on_1.fetch_add(1, Ordering::SeqCst);
            io.write(conn, b"on shard 1\n");
            io.flush(conn);
        }
    }

    fn on_closed(&mut self, _: &mut Io<Detached>, _: ConnId) {
        if self.shard == 1 {
            self.counters.closed_on_1.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn on_timer(&mut self, _: &mut Io<Detached>, _: u64) {}
    fn on_shutdown(&mut self, _: &mut Io<Detached>) {}
}

#[test]
fn migrated_connection_keeps_bytes_in_order() {
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let rt = Runtime::start(config(2), move |shard, _| Mover {
        shard,
        counters: c.clone(),
    })
    .expect("start");
    let addr = tcp_addr(&rt);

    const CONNS: usize = 6;
    const LEN: usize = 512 * 1024;
    let clients: Vec<_> = (0..CONNS)
        .map(|n| {
            std::thread::spawn(move || {
                let mut writer = connect(addr);
                let mut reader = writer.try_clone().unwrap();
                let data = pattern(LEN, n as u8);
                let expected = data.clone();
                let read = std::thread::spawn(move || {
                    let header = read_exact(&mut reader, b"on shard 1\n".len());
                    assert_eq!(header, b"on shard 1\n");
                    assert!(read_exact(&mut reader, LEN) == expected, "conn {n}: bytes differ");
                });
                // Written in pieces with no pause: much of it is sent while the connection
                // is between shards.
                write_in_pieces(&mut writer, &data, &[3, 1000, 64 * 1024]);
                read.join().expect("reader");
                writer.shutdown(Shutdown::Write).unwrap();
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    wait_until("connections closed on shard 1", || {
        counters.closed_on_1.load(Ordering::SeqCst) == CONNS
    });
    assert_eq!(counters.detached_from_0.load(Ordering::SeqCst), CONNS);
    assert_eq!(counters.attached_on_1.load(Ordering::SeqCst), CONNS);
    rt.shutdown();
    rt.join().expect("join");
}

/// Detaches and then closes in the same callback.
struct DetachThenClose {
    closed: Arc<AtomicUsize>,
    detached: Arc<AtomicUsize>,
}

impl Engine for DetachThenClose {
    type Msg = ();

    fn on_accept(&mut self, io: &mut Io<()>, conn: ConnId, _: usize, _: Option<std::net::SocketAddr>) {
        io.write(conn, b"bye");
        io.detach(conn);
        io.close(conn);
    }

    fn on_closed(&mut self, _: &mut Io<()>, _: ConnId) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }

    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {
        self.detached.fetch_add(1, Ordering::SeqCst);
    }

    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
    fn on_timer(&mut self, _: &mut Io<()>, _: u64) {}
    fn on_shutdown(&mut self, _: &mut Io<()>) {}
}

#[test]
fn close_wins_over_detach() {
    let closed = Arc::new(AtomicUsize::new(0));
    let detached = Arc::new(AtomicUsize::new(0));
    let (c, d) = (closed.clone(), detached.clone());
    let rt = Runtime::start(config(2), move |_, _| DetachThenClose {
        closed: c.clone(),
        detached: d.clone(),
    })
    .expect("start");
    let mut stream = connect(tcp_addr(&rt));
    // The queued output is flushed before the close.
    assert_eq!(read_exact(&mut stream, 3), b"bye");
    let mut rest = Vec::new();
    use std::io::Read;
    assert_eq!(stream.read_to_end(&mut rest).expect("EOF"), 0);
    let _ = stream.write_all(b"x");
    wait_until("on_closed", || closed.load(Ordering::SeqCst) == 1);
    assert_eq!(detached.load(Ordering::SeqCst), 0);
    rt.shutdown();
    rt.join().expect("join");
}
