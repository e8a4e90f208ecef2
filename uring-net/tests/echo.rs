//! Claim: bytes written to a connection come back unchanged and in order, across several
//! connections on two shards, whatever the read/write split, including a 1 MiB payload.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

struct Echo {
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Engine for Echo {
    type Msg = ();

    fn on_accept(&mut self, _io: &mut Io<()>, _conn: ConnId, _l: usize, peer: Option<std::net::SocketAddr>) {
        // `peer` is None when the client reset before the accept was reaped.
        let _ = peer;
        self.accepted.fetch_add(1, Ordering::SeqCst);
    }

    fn on_input(&mut self, io: &mut Io<()>, conn: ConnId) {
        let Some(input) = io.input(conn) else { return };
        let bytes = input.split().freeze();
        // Alternate both write paths: copied and zero-copy.
        if bytes.len() % 2 == 0 {
            io.write_bytes(conn, bytes);
        } else {
            io.write(conn, &bytes);
        }
        io.flush(conn);
    }

    fn on_closed(&mut self, _io: &mut Io<()>, _conn: ConnId) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }

    fn on_detached(&mut self, _io: &mut Io<()>, _conn: ConnId, _d: Detached) {}
    fn on_message(&mut self, _io: &mut Io<()>, _from: ShardId, _msg: ()) {}
    fn on_timer(&mut self, _io: &mut Io<()>, _token: u64) {}
    fn on_shutdown(&mut self, _io: &mut Io<()>) {}
}

#[test]
fn echo_many_messages_over_several_connections() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (a, c) = (accepted.clone(), closed.clone());
    let mut cfg = config(2);
    cfg.pin_threads = true;
    let rt = Runtime::start(cfg, move |_, _| Echo {
        accepted: a.clone(),
        closed: c.clone(),
    })
    .expect("start");
    assert_eq!(rt.ring_flags().len(), 2);
    eprintln!("ring flags: {:?}", rt.ring_flags());
    let addr = tcp_addr(&rt);

    const CONNS: usize = 8;
    const MESSAGES: usize = 200;
    let clients: Vec<_> = (0..CONNS)
        .map(|n| {
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                for m in 0..MESSAGES {
                    let msg = pattern(1 + (m * 37 + n * 11) % 3000, (m + n) as u8);
                    write_in_pieces(&mut stream, &msg, &[1, 7, 100, 999]);
                    assert_eq!(read_exact(&mut stream, msg.len()), msg, "conn {n} msg {m}");
                }
                stream.shutdown(Shutdown::Write).unwrap();
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    wait_until("all connections closed", || {
        closed.load(Ordering::SeqCst) == CONNS
    });
    assert_eq!(accepted.load(Ordering::SeqCst), CONNS);
    rt.shutdown();
    rt.join().expect("join");
}

#[test]
fn echo_one_mebibyte_payload() {
    let rt = Runtime::start(config(2), |_, _| Echo {
        accepted: Arc::default(),
        closed: Arc::default(),
    })
    .expect("start");
    let addr = tcp_addr(&rt);
    let payload = pattern(1024 * 1024, 0x5a);
    let mut streams = Vec::new();
    for seed in 0..3u8 {
        let mut writer = connect(addr);
        let mut reader = writer.try_clone().unwrap();
        let sent = pattern(1024 * 1024, seed);
        let expected = sent.clone();
        let read = std::thread::spawn(move || read_exact(&mut reader, expected.len()) == expected);
        writer.write_all(&sent).unwrap();
        streams.push((writer, read));
    }
    for (_writer, read) in streams {
        assert!(read.join().unwrap(), "1 MiB echo differs");
    }
    drop(payload);
    rt.shutdown();
    rt.join().expect("join");
}

#[test]
fn peer_reset_closes_only_that_connection() {
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    let rt = Runtime::start(config(2), move |_, _| Echo {
        accepted: Arc::default(),
        closed: c.clone(),
    })
    .expect("start");
    let addr = tcp_addr(&rt);
    let mut survivor = connect(addr);
    for round in 0..20 {
        // A peer that resets mid-stream (SO_LINGER 0 turns close into RST), with echo output
        // still queued towards it.
        let victim = socket2::Socket::from(connect(addr));
        let mut victim_stream: std::net::TcpStream = victim.try_clone().unwrap().into();
        victim_stream.write_all(&pattern(256 * 1024, round)).unwrap();
        victim.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(victim_stream);
        drop(victim);
        // Everyone else is still served.
        survivor.write_all(b"ping").unwrap();
        assert_eq!(read_exact(&mut survivor, 4), b"ping");
    }
    wait_until("reset connections closed", || closed.load(Ordering::SeqCst) == 20);
    drop(survivor);
    rt.shutdown();
    rt.join().expect("join");
}

#[test]
fn many_short_connections() {
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    let rt = Runtime::start(config(2), move |_, _| Echo {
        accepted: Arc::default(),
        closed: c.clone(),
    })
    .expect("start");
    let addr = tcp_addr(&rt);
    const ROUNDS: usize = 300;
    for i in 0..ROUNDS {
        let mut s = connect(addr);
        s.write_all(&[i as u8]).unwrap();
        assert_eq!(read_exact(&mut s, 1), [i as u8]);
    }
    wait_until("all closed", || closed.load(Ordering::SeqCst) == ROUNDS);
    rt.shutdown();
    rt.join().expect("join");
}
