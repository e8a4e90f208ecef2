//! Heartbeats go to every client on the negotiated interval, and 2 × interval of inbound silence
//! closes the connection; disabling heartbeats forbids SUB.

mod common;

use std::time::{Duration, Instant};

use common::*;
use squall_core::options::Options;

fn fast_heartbeats() -> Options {
    // ClientTimeout 200 ms → default heartbeat every 100 ms.
    Options {
        client_timeout_ms: 200,
        ..Options::default()
    }
}

#[test]
fn subscribed_client_gets_heartbeats_then_is_closed_when_silent() {
    let n = TestNode::start(fast_heartbeats());
    let mut c = n.client();
    c.sub("hb", "ch");
    c.cmd("RDY 1");
    let started = Instant::now();
    let (ft, data) = c.read_frame_raw();
    assert_eq!((ft, data.as_slice()), (FRAME_RESPONSE, &b"_heartbeat_"[..]));
    c.expect_closed();
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(150),
        "closed after {closed_after:?}"
    );
}

#[test]
fn nop_keeps_the_connection_alive() {
    let n = TestNode::start(fast_heartbeats());
    let mut c = n.client();
    c.sub("hbnop", "ch");
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(100));
        c.cmd("NOP");
    }
    // 600 ms later (3 × the close threshold) it still works.
    let mut p = n.client();
    p.publish("hbnop", b"alive");
    p.expect_ok();
    c.cmd("RDY 1");
    assert_eq!(c.read_message().body, b"alive");
}

#[test]
fn producers_get_heartbeats_too() {
    let n = TestNode::start(fast_heartbeats());
    let mut c = n.client();
    c.cmd("NOP");
    let (ft, data) = c.read_frame_raw();
    assert_eq!((ft, data.as_slice()), (FRAME_RESPONSE, &b"_heartbeat_"[..]));
}

#[test]
fn heartbeats_disabled_forbids_sub_but_never_times_out() {
    let n = TestNode::start(fast_heartbeats());
    let mut c = n.client();
    c.identify(r#"{"heartbeat_interval":-1}"#);
    c.expect_ok();
    c.expect_silence(Duration::from_millis(450));
    c.publish("nohb", b"x");
    c.expect_ok();
    c.cmd("SUB nohb ch");
    c.expect_error("E_INVALID cannot SUB with heartbeats disabled");
    c.expect_closed();
}

#[test]
fn identify_sets_the_heartbeat_interval() {
    let n = TestNode::start(Options::default());
    let mut c = n.client();
    c.identify(r#"{"heartbeat_interval":1000}"#);
    c.expect_ok();
    let started = Instant::now();
    let (ft, data) = c.read_frame_raw();
    assert_eq!((ft, data.as_slice()), (FRAME_RESPONSE, &b"_heartbeat_"[..]));
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "{after:?}"
    );
}
