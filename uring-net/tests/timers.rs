//! Claim: timers fire in deadline order and never before their deadline, including timers
//! further away than one revolution of the wheel and timers set in the past.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use squall_uring_net::{ConnId, Detached, Engine, Io, Runtime, ShardId};

/// (token, offset from the start in ms)
const TIMERS: &[(u64, u64)] = &[
    (1, 40),
    (2, 5),
    (3, 25),
    (4, 5),
    (5, 0),
    (6, 120),
    (7, 700), // beyond one 512 ms revolution
    (8, 1),
];

type Log = Arc<Mutex<Vec<(u64, Instant)>>>;

struct Timers {
    start: Arc<Mutex<Option<Instant>>>,
    fired: Log,
}

impl Engine for Timers {
    type Msg = ();

    fn on_start(&mut self, io: &mut Io<()>) {
        let start = Instant::now();
        *self.start.lock().unwrap() = Some(start);
        for &(token, ms) in TIMERS {
            io.timer_at(start + Duration::from_millis(ms), token);
        }
        // Already due: fires on the first turn.
        io.timer_at(start - Duration::from_millis(5), 0);
    }

    fn on_timer(&mut self, io: &mut Io<()>, token: u64) {
        let now = Instant::now();
        assert!(io.now() <= now);
        self.fired.lock().unwrap().push((token, now));
    }

    fn on_accept(&mut self, _: &mut Io<()>, _: ConnId, _: usize, _: Option<std::net::SocketAddr>) {}
    fn on_input(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_closed(&mut self, _: &mut Io<()>, _: ConnId) {}
    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
    fn on_shutdown(&mut self, _: &mut Io<()>) {}
}

#[test]
fn timers_fire_in_order_and_not_early() {
    let start = Arc::new(Mutex::new(None));
    let fired: Log = Arc::default();
    let (s, f) = (start.clone(), fired.clone());
    let mut cfg = config(1);
    cfg.listeners.clear();
    let rt = Runtime::start(cfg, move |_, _| Timers {
        start: s.clone(),
        fired: f.clone(),
    })
    .expect("start");
    wait_until("all timers fired", || {
        fired.lock().unwrap().len() == TIMERS.len() + 1
    });
    rt.shutdown();
    rt.join().expect("join");

    let start = start.lock().unwrap().unwrap();
    let fired = fired.lock().unwrap();
    let tokens: Vec<u64> = fired.iter().map(|&(t, _)| t).collect();
    let mut expected: Vec<(u64, u64)> = TIMERS.to_vec();
    expected.sort_by_key(|&(token, ms)| (ms, token));
    let mut expected: Vec<u64> = expected.into_iter().map(|(t, _)| t).collect();
    expected.insert(0, 0);
    assert_eq!(tokens, expected, "fired out of deadline order");
    for &(token, at) in fired.iter().skip(1) {
        let ms = TIMERS.iter().find(|&&(t, _)| t == token).unwrap().1;
        let deadline = start + Duration::from_millis(ms);
        assert!(at >= deadline, "timer {token} fired {:?} early", deadline - at);
        // Generous: the loop sleeps until the deadline, but CI machines are noisy.
        assert!(
            at < deadline + Duration::from_millis(200),
            "timer {token} fired {:?} late",
            at - deadline
        );
    }
}
