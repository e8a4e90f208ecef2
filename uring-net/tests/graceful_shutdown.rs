//! Claims: `shutdown` closes every shard's listeners (new connections are refused), runs each
//! shard's `on_shutdown`, lets the engine write its last bytes and close, and `join` returns;
//! connections the engine leaves open are closed by force after `drain_timeout`.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

struct Goodbye {
    conns: Vec<ConnId>,
    shutdowns: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    /// Whether on_shutdown closes its connections (or leaves them to the drain timeout).
    close_on_shutdown: bool,
}

impl Engine for Goodbye {
    type Msg = ();

    fn on_accept(&mut self, io: &mut Io<()>, conn: ConnId, _: usize, _: Option<std::net::SocketAddr>) {
        self.conns.push(conn);
        io.write(conn, b"hi\n");
        io.flush(conn);
        self.accepted.fetch_add(1, Ordering::SeqCst);
    }

    fn on_shutdown(&mut self, io: &mut Io<()>) {
        assert!(io.is_shutting_down());
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        if self.close_on_shutdown {
            for &conn in &self.conns {
                io.write(conn, b"bye\n");
                io.close(conn);
            }
        }
    }

    fn on_closed(&mut self, _: &mut Io<()>, conn: ConnId) {
        self.conns.retain(|&c| c != conn);
    }

    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
    fn on_timer(&mut self, _: &mut Io<()>, _: u64) {}
}

fn start(
    close_on_shutdown: bool,
    drain: Duration,
) -> (
    squall_uring_net::RuntimeHandle,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let shutdowns = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (s, a) = (shutdowns.clone(), accepted.clone());
    let mut cfg = config(2);
    cfg.drain_timeout = drain;
    let rt = Runtime::start(cfg, move |_, _| Goodbye {
        conns: Vec::new(),
        shutdowns: s.clone(),
        accepted: a.clone(),
        close_on_shutdown,
    })
    .expect("start");
    (rt, shutdowns, accepted)
}

#[test]
fn shutdown_says_goodbye_closes_listeners_and_joins() {
    let (rt, shutdowns, accepted) = start(true, Duration::from_secs(10));
    let addr = tcp_addr(&rt);
    let mut clients: Vec<_> = (0..6).map(|_| connect(addr)).collect();
    for c in &mut clients {
        assert_eq!(read_exact(c, 3), b"hi\n");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 6);

    let started = Instant::now();
    rt.shutdown();
    rt.shutdown(); // idempotent
    for c in &mut clients {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).expect("read to EOF");
        assert_eq!(rest, b"bye\n");
    }
    rt.join().expect("join");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain waited for the timeout"
    );
    assert_eq!(shutdowns.load(Ordering::SeqCst), 2, "on_shutdown once per shard");
    let refused = std::net::TcpStream::connect(addr);
    assert!(refused.is_err(), "listener still accepting after shutdown");
}

#[test]
fn drain_timeout_closes_what_the_engine_left_open() {
    let drain = Duration::from_millis(300);
    let (rt, shutdowns, _) = start(false, drain);
    let addr = tcp_addr(&rt);
    let mut client = connect(addr);
    assert_eq!(read_exact(&mut client, 3), b"hi\n");
    let started = Instant::now();
    rt.shutdown();
    let mut rest = Vec::new();
    // EOF (or a reset) once the drain timeout passes.
    let _ = client.read_to_end(&mut rest);
    rt.join().expect("join");
    let took = started.elapsed();
    assert!(took >= drain, "closed before the drain timeout ({took:?})");
    assert!(took < drain + Duration::from_secs(3), "join took {took:?}");
    assert_eq!(shutdowns.load(Ordering::SeqCst), 2);
    assert!(rest.is_empty());
}

/// Panics in `on_accept` on whichever shard gets the connection.
struct Panicky;

impl Engine for Panicky {
    type Msg = ();

    fn on_accept(&mut self, _: &mut Io<()>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {
        panic!("engine bug");
    }

    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
    fn on_timer(&mut self, _: &mut Io<()>, _: u64) {}
    fn on_shutdown(&mut self, _: &mut Io<()>) {}
}

#[test]
fn a_panicking_shard_stops_the_runtime_and_join_reports_it() {
    let rt = Runtime::start(config(2), |_, _| Panicky).expect("start");
    let _client = connect(tcp_addr(&rt));
    // No explicit shutdown: the panic must bring the other shard down too.
    let err = rt.join().expect_err("join reports the panic");
    assert!(err.to_string().contains("engine bug"), "{err}");
}
