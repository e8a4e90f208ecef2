//! Claim: a thread outside the runtime can hand a shard messages through `Io::remote`; each one
//! arrives exactly once in `on_remote`, in order per sender, even when the shard is asleep with
//! nothing else to wake it (no timers, no connections).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Remote, Runtime, ShardId};

struct Receiver {
    handles: mpsc::Sender<Remote<u64>>,
    got: Arc<Mutex<Vec<u64>>>,
}

impl Engine for Receiver {
    type Msg = u64;

    fn on_start(&mut self, io: &mut Io<u64>) {
        self.handles.send(io.remote()).expect("test is listening");
    }

    fn on_remote(&mut self, io: &mut Io<u64>, msg: u64) {
        assert_eq!(
            io.shard(),
            (msg >> 32) as usize,
            "delivered to the shard it was sent to"
        );
        self.got.lock().unwrap().push(msg);
    }

    fn on_accept(&mut self, _: &mut Io<u64>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {}
    fn on_input(&mut self, _: &mut Io<u64>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<u64>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<u64>, _: ConnId, _: Detached) {}
    fn on_message(&mut self, _: &mut Io<u64>, _: ShardId, _: u64) {}
    fn on_timer(&mut self, _: &mut Io<u64>, _: u64) {}
    fn on_shutdown(&mut self, _: &mut Io<u64>) {}
}

#[test]
fn messages_from_outside_reach_a_sleeping_shard() {
    let (tx, rx) = mpsc::channel();
    let got: Vec<Arc<Mutex<Vec<u64>>>> = (0..2).map(|_| Arc::default()).collect();
    let sinks = got.clone();
    let rt = Runtime::start(config(2), move |shard, _| Receiver {
        handles: tx.clone(),
        got: sinks[shard].clone(),
    })
    .expect("start");
    let mut remotes: Vec<Remote<u64>> = (0..2).map(|_| rx.recv_timeout(TEST_TIMEOUT).unwrap()).collect();
    remotes.sort_by_key(Remote::shard);

    const ROUNDS: u64 = 200;
    for round in 0..ROUNDS {
        for remote in &remotes {
            remote.send(((remote.shard() as u64) << 32) | round);
        }
        if round % 50 == 0 {
            // Let the shards fall asleep between bursts: the wake path must work from cold.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Two threads at once on one shard, to exercise the lock and the flag together.
    let r0 = remotes[0].clone();
    let other = std::thread::spawn(move || {
        for n in 0..ROUNDS {
            r0.send(ROUNDS + n);
        }
    });
    other.join().unwrap();

    wait_until("every message delivered", || {
        got[0].lock().unwrap().len() == 2 * ROUNDS as usize && got[1].lock().unwrap().len() == ROUNDS as usize
    });
    let shard0 = got[0].lock().unwrap().clone();
    let from_main: Vec<u64> = shard0.iter().copied().filter(|&m| m < ROUNDS).collect();
    let from_other: Vec<u64> = shard0.iter().copied().filter(|&m| m >= ROUNDS).collect();
    assert_eq!(from_main, (0..ROUNDS).collect::<Vec<_>>());
    assert_eq!(from_other, (ROUNDS..2 * ROUNDS).collect::<Vec<_>>());
    let shard1 = got[1].lock().unwrap().clone();
    assert_eq!(shard1, (0..ROUNDS).map(|r| (1 << 32) | r).collect::<Vec<_>>());
    rt.shutdown();
    rt.join().expect("join");
}
