//! Claim: a connection starts only after the exact V2 magic (anything else gets `E_BAD_PROTOCOL`
//! and a close), is sent `_heartbeat_` every interval in every state, and is closed without an
//! error frame after 2 × interval with no complete command, unless heartbeats are disabled
//! (spec §1.2, §1.6, §11.1 items 5-8).

mod common;

use common::*;
use squall_core::options::Options;

const HEARTBEAT: &[u8] = b"\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_";

/// Heartbeat interval 1 s (half of the client timeout).
fn opts() -> Options {
    Options {
        client_timeout_ms: 2000,
        ..Options::default()
    }
}

#[test]
fn bad_magic_gets_e_bad_protocol_then_close() {
    for magic in [&b"  V1"[..], b"V2  ", b"\0\0\0\0"] {
        let mut c = Cluster::single(opts());
        let cl = c.connect(0);
        c.send(cl, magic);
        assert_eq!(
            c.take_bytes(cl),
            b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL"
        );
        assert!(c.is_closed(cl));
        assert_eq!(c.brokers[0].session_count(), 0);
    }
}

#[test]
fn magic_in_pieces_has_no_greeting_and_no_deadline() {
    let mut c = Cluster::single(opts());
    let cl = c.connect(0);
    c.send(cl, b"  ");
    // The magic is read with no deadline: silence far past 2 × interval is fine.
    c.advance_ms(10_000);
    assert_eq!(c.take_bytes(cl), b"");
    assert!(!c.is_closed(cl));
    c.send(cl, b"V");
    c.send(cl, b"2");
    assert_eq!(c.take_bytes(cl), b"", "no greeting after the magic");
    c.send(cl, b"NOP\n");
    c.send(cl, &pub_cmd("t", b"x"));
    assert_eq!(c.take_bytes(cl), OK);
}

#[test]
fn magic_and_commands_in_one_write() {
    let mut c = Cluster::single(opts());
    let cl = c.connect(0);
    let mut bytes = MAGIC.to_vec();
    bytes.extend(pub_cmd("t", b"a"));
    bytes.extend(pub_cmd("t", b"b"));
    c.send(cl, &bytes);
    assert_eq!(c.take_bytes(cl), [OK, OK].concat());
}

#[test]
fn heartbeats_every_interval_to_producers_and_consumers() {
    let mut c = Cluster::single(opts());
    let producer = c.connect_v2(0);
    let consumer = c.consumer(0, "t", "c");
    c.send(consumer, b"RDY 1\n");
    for _ in 0..3 {
        c.advance_ms(999);
        assert_eq!(c.take_bytes(producer), b"");
        assert_eq!(c.take_bytes(consumer), b"");
        c.send(producer, b"NOP\n");
        c.send(consumer, b"NOP\n");
        c.advance_ms(1);
        assert_eq!(c.take_bytes(producer), HEARTBEAT);
        assert_eq!(c.take_bytes(consumer), HEARTBEAT);
    }
    assert!(!c.is_closed(producer) && !c.is_closed(consumer));
}

#[test]
fn read_deadline_is_twice_the_interval_of_inbound_silence() {
    let mut c = Cluster::single(opts());
    let cl = c.connect_v2(0);
    c.advance_ms(1500);
    c.send(cl, b"NOP\n"); // the deadline is now 1500 + 2000
    c.advance_ms(1999);
    assert!(!c.is_closed(cl));
    // A partial command is not a read: it does not move the deadline.
    c.send(cl, b"NO");
    c.advance_ms(1);
    assert!(c.is_closed(cl));
    let frames = c.frames(cl);
    assert_eq!(
        frames,
        vec![Frame::response(b"_heartbeat_"); 3],
        "no error frame on the close"
    );
}

#[test]
fn silent_client_is_closed_after_two_heartbeats() {
    let mut c = Cluster::single(opts());
    let cl = c.consumer(0, "t", "c");
    c.advance_ms(1999);
    assert!(!c.is_closed(cl));
    c.advance_ms(1);
    assert!(c.is_closed(cl));
    let frames = c.frames(cl);
    assert!(frames.iter().all(|f| *f == Frame::response(b"_heartbeat_")));
    assert!(!frames.is_empty());
    assert!(c.brokers[0].channel("t", "c").unwrap().consumers.is_empty());
}

#[test]
fn identify_sets_the_interval_and_restarts_the_ticker() {
    let mut c = Cluster::single(opts());
    let cl = c.connect_v2(0);
    c.advance_ms(500);
    c.send(cl, &identify_cmd(r#"{"heartbeat_interval":3000}"#));
    assert_eq!(c.take_bytes(cl), OK);
    c.advance_ms(2999);
    assert_eq!(
        c.take_bytes(cl),
        b"",
        "the 1 s ticker armed at connect is replaced"
    );
    c.advance_ms(1);
    assert_eq!(c.take_bytes(cl), HEARTBEAT);
    c.advance_ms(2999);
    assert!(!c.is_closed(cl), "deadline is 2 × 3 s after the IDENTIFY");
    c.advance_ms(1);
    assert!(c.is_closed(cl));
}

#[test]
fn heartbeats_disabled_means_no_heartbeats_no_deadline_and_no_sub() {
    let mut c = Cluster::single(opts());
    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(r#"{"heartbeat_interval":-1}"#));
    assert_eq!(c.take_bytes(cl), OK);
    c.advance_ms(60_000);
    assert_eq!(c.take_bytes(cl), b"");
    assert!(!c.is_closed(cl));
    c.send(cl, b"NOP\n");
    c.send(cl, &sub_cmd("t", "c"));
    assert_eq!(
        c.frames(cl),
        vec![Frame::error(b"E_INVALID cannot SUB with heartbeats disabled")]
    );
    assert!(c.is_closed(cl));
}

/// The reply of a negotiated IDENTIFY, parsed.
fn negotiated(c: &mut Cluster, cl: Client, json_fields: &str) -> serde_json::Value {
    let sep = if json_fields.is_empty() { "" } else { "," };
    c.send(
        cl,
        &identify_cmd(&format!(r#"{{"feature_negotiation":true{sep}{json_fields}}}"#)),
    );
    match c.frames(cl).as_slice() {
        [Frame::Response(json)] => serde_json::from_slice(json).expect("IDENTIFY reply JSON"),
        other => panic!("expected one JSON reply, got {other:?}"),
    }
}

#[test]
fn a_later_identify_with_zero_fields_keeps_what_an_earlier_one_set() {
    // nsqd's setters treat 0 as "leave it": a second IDENTIFY does not reset to the defaults.
    let mut c = Cluster::single(opts());
    let cl = c.connect_v2(0);
    let r = negotiated(
        &mut c,
        cl,
        r#""msg_timeout":5000,"output_buffer_size":-1,"output_buffer_timeout":-1"#,
    );
    assert_eq!(
        (r["msg_timeout"].as_i64(), r["output_buffer_size"].as_i64()),
        (Some(5000), Some(1))
    );
    let r = negotiated(
        &mut c,
        cl,
        r#""msg_timeout":0,"output_buffer_size":0,"output_buffer_timeout":0"#,
    );
    assert_eq!(r["msg_timeout"].as_i64(), Some(5000));
    assert_eq!(r["output_buffer_size"].as_i64(), Some(1));
    assert_eq!(r["output_buffer_timeout"].as_i64(), Some(0));
    let r = negotiated(
        &mut c,
        cl,
        r#""output_buffer_size":4096,"output_buffer_timeout":100"#,
    );
    assert_eq!(r["output_buffer_size"].as_i64(), Some(4096));
    assert_eq!(r["output_buffer_timeout"].as_i64(), Some(100));
    let r = negotiated(&mut c, cl, "");
    assert_eq!(
        (
            r["output_buffer_size"].as_i64(),
            r["output_buffer_timeout"].as_i64()
        ),
        (Some(4096), Some(100))
    );
}

#[test]
fn heartbeats_disabled_stay_disabled_through_a_later_empty_identify() {
    let mut c = Cluster::single(opts());
    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(r#"{"heartbeat_interval":-1}"#));
    c.send(cl, &identify_cmd("{}"));
    assert_eq!(c.take_bytes(cl), [OK, OK].concat());
    c.send(cl, &sub_cmd("t", "c"));
    assert_eq!(
        c.frames(cl),
        vec![Frame::error(b"E_INVALID cannot SUB with heartbeats disabled")]
    );
}

#[test]
fn both_compressions_without_feature_negotiation_is_a_plain_ok() {
    // nsqd answers OK before it looks at compression, so nothing is refused or upgraded.
    let mut c = Cluster::single(Options {
        snappy: true,
        deflate: true,
        ..opts()
    });
    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(r#"{"snappy":true,"deflate":true}"#));
    assert_eq!(c.take_bytes(cl), OK);
    c.send(cl, &pub_cmd("t", b"x"));
    assert_eq!(c.take_bytes(cl), OK, "still plain V2");
    assert!(!c.is_closed(cl));
}

#[test]
fn the_identify_reply_echoes_the_node_topology() {
    let mut c = Cluster::single(Options {
        topology_region: "eu-west".into(),
        topology_zone: "eu-west-1a".into(),
        ..opts()
    });
    let cl = c.connect_v2(0);
    let r = negotiated(&mut c, cl, "");
    assert_eq!(r["topology_region"], "eu-west");
    assert_eq!(r["topology_zone"], "eu-west-1a");
}
