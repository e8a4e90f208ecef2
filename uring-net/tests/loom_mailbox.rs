//! The cross-shard mailbox never loses a wakeup: whatever the interleaving and whatever stale
//! values weak memory lets each side read, a shard that blocks with a message in one of its lanes
//! always has a ring of its eventfd waiting, and no sleep is rung more than once.
//!
//! A loom model of `mailbox.rs`, built only with `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p squall-uring-net --test loom_mailbox --release
//! ```
//!
//! The sleeper below is the shard loop's sleep path (`shard::Shard::submit_and_wait`): announce, re-check
//! the lanes and the shutdown flag, block unless something is there, be awake, drain. Blocking is
//! modelled by `Doorbells::take_ring`: a sleeper that finds no ring stops for good, which is what a
//! lost wakeup looks like. The last test weakens the protocol and shows the model catches it.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use squall_uring_net::mailbox::{Doorbells, Lanes};

const SLEEPER: usize = 0;

/// What the sleeping shard did.
struct Outcome {
    received: usize,
    /// It blocked and nobody had rung: it stays asleep until the next ring.
    blocked: bool,
    sleeps: usize,
    rings_taken: usize,
}

struct Mesh {
    shards: usize,
    lanes: Lanes<u32>,
    bells: Doorbells,
}

fn mesh(shards: usize) -> Arc<Mesh> {
    Arc::new(Mesh {
        shards,
        lanes: Lanes::new(shards, 4),
        bells: Doorbells::new(shards).expect("eventfd"),
    })
}

/// Up to `turns` turns of the sleeping shard's loop.
fn sleeper(m: &Mesh, turns: usize) -> Outcome {
    let mut out = Outcome {
        received: 0,
        blocked: false,
        sleeps: 0,
        rings_taken: 0,
    };
    for _ in 0..turns {
        m.bells.announce_sleep(SLEEPER);
        out.sleeps += 1;
        let wait = !m.lanes.any_inbound(SLEEPER) && !m.bells.shutdown_requested();
        if wait {
            if !m.bells.take_ring(SLEEPER) {
                out.blocked = true;
                return out;
            }
            out.rings_taken += 1;
        }
        m.bells.awake(SLEEPER);
        for from in 0..m.shards {
            while m.lanes.pop(from, SLEEPER).is_some() {
                out.received += 1;
            }
        }
    }
    out
}

/// A shard's turn that sends `count` messages to the sleeper: push, then (phase 5) wake.
fn sender(m: &Mesh, from: usize, count: u32) {
    for i in 0..count {
        m.lanes.push(from, SLEEPER, i).expect("lane has room");
        m.bells.wake_if_asleep(SLEEPER);
    }
}

/// After every thread is done: a sleeper left blocked with messages still in its lanes must have
/// a ring waiting; and rings never outnumber the sleeps they answer.
fn check(m: &Mesh, out: &Outcome, sent: usize) {
    let mut pending = 0;
    while m.bells.take_ring(SLEEPER) {
        pending += 1;
    }
    if out.blocked && out.received < sent {
        assert!(
            pending > 0,
            "lost wakeup: asleep with {} of {sent} messages in its lanes",
            sent - out.received
        );
    }
    assert!(
        out.rings_taken + pending <= out.sleeps,
        "{} rings for {} sleeps",
        out.rings_taken + pending,
        out.sleeps
    );
}

#[test]
fn one_message_wakes_a_sleeping_shard() {
    loom::model(|| {
        let m = mesh(2);
        let s = m.clone();
        let sending = thread::spawn(move || sender(&s, 1, 1));
        let out = sleeper(&m, 2);
        sending.join().expect("sender");
        check(&m, &out, 1);
    });
}

#[test]
fn back_to_back_messages_across_several_sleeps() {
    loom::model(|| {
        let m = mesh(2);
        let s = m.clone();
        let sending = thread::spawn(move || sender(&s, 1, 2));
        let out = sleeper(&m, 3);
        sending.join().expect("sender");
        check(&m, &out, 2);
    });
}

#[test]
fn two_senders_ring_a_sleep_once() {
    // Three threads: bounded to three preemptions (loom's usual bound) to keep the search to
    // seconds; the two-thread models above are explored without a bound.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let m = mesh(3);
        let (a, b) = (m.clone(), m.clone());
        let first = thread::spawn(move || sender(&a, 1, 1));
        let second = thread::spawn(move || sender(&b, 2, 1));
        let out = sleeper(&m, 2);
        first.join().expect("first sender");
        second.join().expect("second sender");
        check(&m, &out, 2);
    });
}

#[test]
fn shutdown_wakes_a_sleeping_shard() {
    loom::model(|| {
        let m = mesh(2);
        let s = m.clone();
        let stopping = thread::spawn(move || s.bells.request_shutdown());
        let out = sleeper(&m, 1);
        stopping.join().expect("shutdown");
        let rung = m.bells.take_ring(SLEEPER);
        assert!(!out.blocked || rung, "shutdown left a shard asleep");
    });
}

/// The protocol with both fences taken out (plain Relaxed accesses, as a "the flag is just a
/// hint" reading would write it). The model must find the lost wakeup, or the tests above prove
/// nothing about the fences.
#[test]
#[should_panic(expected = "lost wakeup")]
fn the_model_catches_a_protocol_without_fences() {
    loom::model(|| {
        let sleeping = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let rung = Arc::new(AtomicBool::new(false));
        let (s, q, r) = (sleeping.clone(), queued.clone(), rung.clone());
        let sending = thread::spawn(move || {
            q.store(1, Ordering::Release);
            if s.load(Ordering::Relaxed) && s.swap(false, Ordering::Relaxed) {
                r.store(true, Ordering::Release);
            }
        });
        sleeping.store(true, Ordering::Relaxed);
        let blocked = queued.load(Ordering::Acquire) == 0;
        sending.join().expect("sender");
        assert!(!blocked || rung.load(Ordering::Acquire), "lost wakeup");
    });
}
