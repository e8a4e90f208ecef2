//! Claim: every message reaches every channel of its topic with one ID, a topic with no channel
//! keeps its messages for the first channel, and each channel hands each message to exactly one
//! consumer, round-robin, within the consumer's RDY window, sampling and output buffer (spec §4.3,
//! §4.7, §4.11, §5.2, §5.6, §5.7, §6.3, §6.4, §6.6, §6.13).

mod common;

use common::*;
use squall_core::options::Options;

#[test]
fn message_published_before_sub_is_delivered_with_attempts_1() {
    let mut c = Cluster::single(Options::default());
    c.publish(0, "t", b"hello");
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 1);
    let cl = c.consumer(0, "t", "c");
    assert_eq!(c.take_bytes(cl), b"", "RDY is 0 after SUB");
    c.send(cl, b"RDY 1\n");
    let bytes = c.take_bytes(cl);
    // size = 4 + 26 + 5, frame type 2, timestamp, attempts 1, 16-byte id, body (spec §1.7).
    assert_eq!(&bytes[..8], b"\x00\x00\x00\x23\x00\x00\x00\x02");
    assert_eq!(&bytes[16..18], b"\x00\x01");
    assert!(bytes[18..34]
        .iter()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(&bytes[34..], b"hello");
    let ts = i64::from_be_bytes(bytes[8..16].try_into().unwrap());
    assert!(
        ts > 1_600_000_000_000_000_000,
        "nanoseconds since the epoch: {ts}"
    );
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().in_flight.len(), 1);
}

#[test]
fn fan_out_gives_every_channel_the_same_id_and_body() {
    let mut c = Cluster::single(Options::default());
    let consumers: Vec<Client> = ["ch1", "ch2", "ch3"]
        .iter()
        .map(|ch| c.consumer(0, "t", ch))
        .collect();
    for &cl in &consumers {
        c.send(cl, b"RDY 1\n");
    }
    c.publish(0, "t", b"body");
    let got: Vec<Msg> = consumers.iter().flat_map(|&cl| c.messages(cl)).collect();
    assert_eq!(got.len(), 3);
    for m in &got {
        assert_eq!(m.attempts, 1);
        assert_eq!(m.body, b"body");
        assert_eq!(m.id, got[0].id);
        assert_eq!(m.timestamp_ns, got[0].timestamp_ns);
    }
}

/// nsqd's TestDeleteLast, with the only channel deleted because its last consumer left.
#[test]
fn topic_without_channels_keeps_messages_for_the_first_new_channel() {
    let mut c = Cluster::single(Options::default());
    let eph = c.consumer(0, "t", "c#ephemeral");
    c.disconnect(eph);
    assert!(c.brokers[0].channel("t", "c#ephemeral").is_none());
    let topic = c.brokers[0].topic("t").expect("a non-ephemeral topic stays");
    assert!(topic.channels.is_empty());

    c.publish(0, "t", b"kept");
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 1);

    let cl = c.consumer(0, "t", "c2");
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 0);
    assert_eq!(c.brokers[0].channel("t", "c2").unwrap().depth(), 1);
    c.send(cl, b"RDY 1\n");
    let got = c.messages(cl);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].body.as_slice(), got[0].attempts), (&b"kept"[..], 1));
}

#[test]
fn rdy_is_a_window_of_unacknowledged_messages() {
    let mut c = Cluster::single(Options::default());
    let cl = c.consumer(0, "t", "c");
    for i in 0..6 {
        c.publish(0, "t", format!("m{i}").as_bytes());
    }
    c.send(cl, b"RDY 2\n");
    let first = c.messages(cl);
    assert_eq!(first.len(), 2, "RDY 2 with nothing acknowledged");
    c.send(cl, b"RDY 2\n");
    assert!(c.messages(cl).is_empty(), "repeating RDY changes nothing");

    c.send(cl, &fin_cmd(&first[0].id));
    let third = c.messages(cl);
    assert_eq!(third.len(), 1, "a FIN opens one slot");

    c.send(cl, b"RDY 1\n");
    c.send(cl, &fin_cmd(&first[1].id));
    assert!(c.messages(cl).is_empty(), "1 in flight, RDY 1: no room");
    c.send(cl, &fin_cmd(&third[0].id));
    let fourth = c.messages(cl);
    assert_eq!(fourth.len(), 1);

    c.send(cl, b"RDY 0\n");
    c.send(cl, &fin_cmd(&fourth[0].id));
    c.advance_ms(1000);
    assert!(c.messages(cl).is_empty(), "RDY 0 stops delivery");
    let s = c.brokers[0].session(c.conn(cl)).unwrap();
    assert_eq!((s.rdy, s.in_flight, s.finish_count), (0, 0, 4));
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().depth(), 2);

    let bodies: Vec<Vec<u8>> = [&first[..], &third, &fourth]
        .concat()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, [b"m0", b"m1", b"m2", b"m3"]);
}

#[test]
fn consumers_of_a_channel_are_served_round_robin() {
    let mut c = Cluster::single(Options::default());
    let consumers: Vec<Client> = (0..3).map(|_| c.consumer(0, "t", "c")).collect();
    for &cl in &consumers {
        c.send(cl, b"RDY 100\n");
    }
    let bodies: Vec<Vec<u8>> = (0..30).map(|i| format!("{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let p = c.connect_v2(0);
    c.send(p, &mpub_cmd("t", &refs));
    // RDY 100 leaves room: deliveries wait for the output buffer timeout (spec §5.7).
    c.advance_ms(250);
    for (k, &cl) in consumers.iter().enumerate() {
        let got: Vec<Vec<u8>> = c.messages(cl).into_iter().map(|m| m.body).collect();
        let want: Vec<Vec<u8>> = bodies.iter().skip(k).step_by(3).cloned().collect();
        assert_eq!(got, want, "consumer {k}");
    }

    // One at a time, the rotation carries on where it left off.
    let mut counts = [0usize; 3];
    for i in 0..9 {
        c.publish(0, "t", format!("x{i}").as_bytes());
        c.advance_ms(250);
        for (k, &cl) in consumers.iter().enumerate() {
            counts[k] += c.messages(cl).len();
        }
    }
    assert_eq!(counts, [3, 3, 3]);
}

#[test]
fn sample_rate_delivers_about_that_share_and_consumes_the_rest() {
    let opts = Options {
        max_rdy_count: 10_000,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let bodies: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let p = c.connect_v2(0);
    c.send(p, &mpub_cmd("t", &refs));
    assert_eq!(c.frames(p), vec![ok()]);

    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(r#"{"sample_rate":42}"#));
    c.send(cl, &sub_cmd("t", "c"));
    assert_eq!(c.frames(cl), vec![ok(), ok()]);
    c.send(cl, b"RDY 10000\n");
    c.advance_ms(250);
    let got = c.messages(cl).len();
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!(ch.depth(), 0, "sampled-out messages are consumed");
    assert_eq!(ch.in_flight.len(), got);
    assert!((3700..=4700).contains(&got), "{got} of 10000 with sample_rate 42");
}

#[test]
fn max_channel_consumers_refuses_one_more() {
    let opts = Options {
        max_channel_consumers: 1,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let _first = c.consumer(0, "t", "c");
    let _other_channel = c.consumer(0, "t", "d");
    let second = c.connect_v2(0);
    c.send(second, &sub_cmd("t", "c"));
    assert_eq!(
        c.frames(second),
        vec![Frame::error(
            b"E_SUB_FAILED SUB failed consumers for t:c exceeds limit of 1"
        )]
    );
    assert!(c.is_closed(second));
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().consumers.len(), 1);
}

#[test]
fn cls_answers_close_wait_and_stops_deliveries_but_keeps_acks() {
    let mut c = Cluster::single(Options::default());
    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 1\n");
    c.publish(0, "t", b"a");
    let m = c.messages(cl);
    c.send(cl, b"CLS\n");
    assert_eq!(c.take_bytes(cl), b"\x00\x00\x00\x0e\x00\x00\x00\x00CLOSE_WAIT");
    c.send(cl, b"RDY 5\n");
    c.publish(0, "t", b"b");
    c.advance_ms(250);
    assert_eq!(c.take_bytes(cl), b"", "RDY is ignored after CLS");
    c.send(cl, &fin_cmd(&m[0].id));
    assert_eq!(c.take_bytes(cl), b"", "FIN still works while closing");
    assert!(!c.is_closed(cl), "the server does not close after CLS");
    let s = c.brokers[0].session(c.conn(cl)).unwrap();
    assert_eq!((s.rdy, s.in_flight, s.state as i32), (0, 0, 4));
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().depth(), 1);
}

#[test]
fn ephemeral_channel_and_topic_go_with_the_last_consumer() {
    let mut c = Cluster::single(Options::default());
    let a = c.consumer(0, "t#ephemeral", "c#ephemeral");
    let b = c.consumer(0, "t#ephemeral", "c#ephemeral");
    c.disconnect(a);
    assert!(c.brokers[0].channel("t#ephemeral", "c#ephemeral").is_some());
    c.disconnect(b);
    assert!(c.brokers[0].channel("t#ephemeral", "c#ephemeral").is_none());
    assert!(c.brokers[0].topic("t#ephemeral").is_none());

    // A channel that never had a consumer is never deleted; neither is its topic.
    let d = c.consumer(0, "u#ephemeral", "c#ephemeral");
    let e = c.consumer(0, "u#ephemeral", "persistent");
    c.disconnect(d);
    c.disconnect(e);
    assert!(c.brokers[0].channel("u#ephemeral", "c#ephemeral").is_none());
    assert!(c.brokers[0].channel("u#ephemeral", "persistent").is_some());
    assert!(c.brokers[0].topic("u#ephemeral").is_some());
}

#[test]
fn deliveries_wait_for_the_output_buffer_timeout_while_the_client_can_take_more() {
    let mut c = Cluster::single(Options::default());
    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 10\n");
    c.publish(0, "t", b"a");
    c.advance_ms(249);
    assert!(c.messages(cl).is_empty());
    c.advance_ms(1);
    assert_eq!(c.messages(cl).len(), 1);

    // At RDY 1 the client is not eligible after one delivery, so it is flushed at once.
    let other = c.consumer(0, "t", "d");
    c.send(other, b"RDY 1\n");
    c.publish(0, "t", b"b");
    assert_eq!(c.messages(other).len(), 1);
}

#[test]
fn a_consumer_closed_by_a_fatal_error_gets_no_more_deliveries() {
    let mut c = Cluster::single(Options::default());
    let doomed = c.consumer(0, "t", "c");
    let other = c.consumer(0, "t", "c");
    c.publish(0, "t", b"a");
    // RDY and a fatal error in one read: the message must not go in flight to a closing client.
    c.send(doomed, b"RDY 1\nRDY 99999\n");
    assert_eq!(
        c.frames(doomed),
        vec![Frame::error(b"E_INVALID RDY count 99999 out of range 0-2500")]
    );
    assert!(c.is_closed(doomed));
    c.send(other, b"RDY 1\n");
    let got = c.messages(other);
    assert_eq!((got.len(), got[0].attempts), (1, 1));
}
