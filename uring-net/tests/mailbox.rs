//! Claims: messages between shards arrive in the order they were sent on each lane, none lost,
//! even when the sender outpaces the receiver and has to retry; a full lane hands the message
//! back (`Err(msg)`) instead of dropping it or growing; a sleeping shard is woken by a send.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

const PER_LANE: u64 = 50_000;

#[derive(Default)]
struct Shared {
    /// Messages received per receiving shard.
    received: [AtomicU64; 2],
    out_of_order: AtomicBool,
    full_errors: AtomicUsize,
}

struct Streamer {
    shard: ShardId,
    shared: Arc<Shared>,
    next_to_send: u64,
    /// A message the lane refused, to retry first.
    held: Option<u64>,
    expected_next: u64,
}

impl Streamer {
    fn pump(&mut self, io: &mut Io<u64>) {
        let to = 1 - self.shard;
        // Send at most a few lanes' worth per turn, then come back next turn.
        for _ in 0..256 {
            let msg = match self.held.take() {
                Some(m) => m,
                None if self.next_to_send < PER_LANE => {
                    self.next_to_send += 1;
                    self.next_to_send - 1
                }
                None => return,
            };
            if let Err(back) = io.send(to, msg) {
                assert_eq!(back, msg, "the refused message comes back unchanged");
                self.shared.full_errors.fetch_add(1, Ordering::Relaxed);
                self.held = Some(back);
                break;
            }
        }
        io.poll_soon();
    }
}

impl Engine for Streamer {
    type Msg = u64;

    fn on_start(&mut self, io: &mut Io<u64>) {
        io.timer_at(io.now(), 0);
    }

    fn on_timer(&mut self, io: &mut Io<u64>, _token: u64) {
        self.pump(io);
    }

    fn on_turn_end(&mut self, io: &mut Io<u64>) {
        if self.next_to_send > 0 {
            self.pump(io);
        }
    }

    fn on_message(&mut self, _io: &mut Io<u64>, from: ShardId, msg: u64) {
        assert_eq!(from, 1 - self.shard);
        if msg != self.expected_next {
            self.shared.out_of_order.store(true, Ordering::SeqCst);
        }
        self.expected_next = msg + 1;
        self.shared.received[self.shard].fetch_add(1, Ordering::SeqCst);
    }

    fn on_accept(&mut self, _: &mut Io<u64>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {}
    fn on_input(&mut self, _: &mut Io<u64>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<u64>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<u64>, _: ConnId, _: Detached) {}
    fn on_shutdown(&mut self, _: &mut Io<u64>) {}
}

#[test]
fn cross_shard_messages_arrive_in_order_per_lane() {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let mut cfg = config(2);
    cfg.listeners.clear();
    cfg.mailbox_capacity = 64;
    let rt = Runtime::start(cfg, move |shard, shards| {
        assert_eq!(shards, 2);
        Streamer {
            shard,
            shared: s.clone(),
            next_to_send: 0,
            held: None,
            expected_next: 0,
        }
    })
    .expect("start");
    wait_until("every message delivered", || {
        shared.received[0].load(Ordering::SeqCst) == PER_LANE
            && shared.received[1].load(Ordering::SeqCst) == PER_LANE
    });
    assert!(!shared.out_of_order.load(Ordering::SeqCst), "a lane reordered");
    eprintln!("lane-full retries: {}", shared.full_errors.load(Ordering::SeqCst));
    rt.shutdown();
    rt.join().expect("join");
}

/// (messages accepted, the message refused)
type FillResult = Arc<Mutex<Option<(usize, Option<u64>)>>>;

/// Fills its own lane (0 -> 0) within one callback: nobody drains it meanwhile, so the
/// capacity is exact.
struct SelfFiller {
    result: FillResult,
    received: Vec<u64>,
}

impl Engine for SelfFiller {
    type Msg = u64;

    fn on_start(&mut self, io: &mut Io<u64>) {
        let mut accepted = 0;
        let mut refused = None;
        for i in 0..100u64 {
            match io.send(0, i) {
                Ok(()) => accepted += 1,
                Err(back) => {
                    refused = Some(back);
                    break;
                }
            }
        }
        *self.result.lock().unwrap() = Some((accepted, refused));
    }

    fn on_message(&mut self, _io: &mut Io<u64>, from: ShardId, msg: u64) {
        assert_eq!(from, 0);
        self.received.push(msg);
        if self.received.len() == 16 {
            assert_eq!(self.received, (0..16).collect::<Vec<_>>());
        }
    }

    fn on_accept(&mut self, _: &mut Io<u64>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {}
    fn on_input(&mut self, _: &mut Io<u64>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<u64>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<u64>, _: ConnId, _: Detached) {}
    fn on_timer(&mut self, _: &mut Io<u64>, _: u64) {}
    fn on_shutdown(&mut self, _: &mut Io<u64>) {}
}

#[test]
fn full_lane_returns_the_message() {
    let result = Arc::new(Mutex::new(None));
    let r = result.clone();
    let mut cfg = config(1);
    cfg.listeners.clear();
    cfg.mailbox_capacity = 16;
    let rt = Runtime::start(cfg, move |_, _| SelfFiller {
        result: r.clone(),
        received: Vec::new(),
    })
    .expect("start");
    wait_until("on_start ran", || result.lock().unwrap().is_some());
    assert_eq!(*result.lock().unwrap(), Some((16, Some(16))));
    rt.shutdown();
    rt.join().expect("join");
}

/// Shard 1 sleeps (nothing to do); shard 0 sends it one message from a timer. The message must
/// be handled promptly: the wake reached the sleeping shard.
struct Pinger {
    shard: ShardId,
    delivered_at: Arc<Mutex<Option<Instant>>>,
    sent_at: Arc<Mutex<Option<Instant>>>,
}

impl Engine for Pinger {
    type Msg = ();

    fn on_start(&mut self, io: &mut Io<()>) {
        if self.shard == 0 {
            // Long enough for shard 1 to be asleep in the ring.
            io.timer_at(io.now() + Duration::from_millis(200), 0);
        }
    }

    fn on_timer(&mut self, io: &mut Io<()>, _token: u64) {
        *self.sent_at.lock().unwrap() = Some(Instant::now());
        io.send(1, ()).expect("empty lane");
    }

    fn on_message(&mut self, _io: &mut Io<()>, _from: ShardId, _msg: ()) {
        *self.delivered_at.lock().unwrap() = Some(Instant::now());
    }

    fn on_accept(&mut self, _: &mut Io<()>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {}
    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {}
    fn on_shutdown(&mut self, _: &mut Io<()>) {}
}

#[test]
fn sleeping_shard_is_woken_by_a_send() {
    let delivered = Arc::new(Mutex::new(None));
    let sent = Arc::new(Mutex::new(None));
    let (d, s) = (delivered.clone(), sent.clone());
    let mut cfg = config(2);
    cfg.listeners.clear();
    let rt = Runtime::start(cfg, move |shard, _| Pinger {
        shard,
        delivered_at: d.clone(),
        sent_at: s.clone(),
    })
    .expect("start");
    wait_until("message delivered", || delivered.lock().unwrap().is_some());
    let latency = delivered.lock().unwrap().unwrap() - sent.lock().unwrap().unwrap();
    eprintln!("sleeping-shard delivery latency: {latency:?}");
    // No timer is pending on shard 1, so without the wake it would sleep until shutdown.
    assert!(latency < Duration::from_secs(1), "wake took {latency:?}");
    rt.shutdown();
    rt.join().expect("join");
}
