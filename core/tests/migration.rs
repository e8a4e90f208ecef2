//! Claim: a SUB to a topic another shard owns moves the connection to that shard with its session
//! and its unread input, and the consumer is then served there exactly as a local one, bytes sent
//! after the SUB included.

mod common;

use common::*;
use squall_core::options::Options;

#[test]
fn sub_to_another_shards_topic_is_served_on_the_owner() {
    let mut c = Cluster::new(2, Options::default());
    let topic = topic_on(1, 2, "t");
    for i in 0..3 {
        c.publish(1, &topic, format!("m{i}").as_bytes());
    }
    let cl = c.connect_v2(0);
    let old = c.conn(cl);
    let mut bytes = sub_cmd(&topic, "c");
    bytes.extend(b"RDY 5\n");
    c.send(cl, &bytes);

    let (shard, conn) = c.location(cl).unwrap();
    assert_eq!(shard, 1);
    assert_eq!(c.brokers[0].session_count(), 0);
    assert!(c.brokers[0].session(old).is_none());
    let s = c.brokers[1].session(conn).unwrap();
    assert_eq!(s.rdy, 5, "RDY after SUB ran on the owner");
    assert!(c.brokers[1]
        .channel(&topic, "c")
        .unwrap()
        .consumers
        .contains(&conn));
    assert!(c.brokers[0].topic(&topic).is_none());

    let mut frames = c.frames(cl);
    assert_eq!(frames.remove(0), ok());
    // The deliveries went out with the SUB's `OK` (a flush sends everything queued).
    let got: Vec<Msg> = frames
        .into_iter()
        .map(|f| match f {
            Frame::Message(m) => m,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(bodies, [b"m0", b"m1", b"m2"]);
    assert!(got.iter().all(|m| m.attempts == 1));
    for m in &got {
        c.send(cl, &fin_cmd(&m.id));
    }
    assert_eq!(c.take_bytes(cl), b"");
    assert!(c.brokers[1].channel(&topic, "c").unwrap().in_flight.is_empty());

    // Later publishes, from either shard, reach it.
    c.publish(0, &topic, b"from shard 0");
    c.advance_ms(250);
    assert_eq!(c.messages(cl)[0].body, b"from shard 0");
}

#[test]
fn input_sent_while_the_connection_travels_is_read_on_arrival() {
    let mut c = Cluster::new(2, Options::default());
    let topic = topic_on(1, 2, "t");
    let cl = c.connect_v2(0);
    c.hold_lanes = true;
    c.send(cl, &sub_cmd(&topic, "c"));
    assert!(c.location(cl).is_none(), "detached, in the lane to shard 1");
    assert_eq!(c.nets[0].mailbox_len(1), 1);
    assert_eq!(c.take_bytes(cl), b"", "SUB is answered by the owner");
    c.send(cl, b"RDY 1\n");
    c.hold_lanes = false;
    c.settle();
    assert_eq!(c.shard_of(cl), 1);
    assert_eq!(c.frames(cl), vec![ok()]);
    c.publish(1, &topic, b"x");
    assert_eq!(c.messages(cl)[0].body, b"x");
}

#[test]
fn a_migrated_consumer_keeps_its_identify_settings_and_heartbeats_from_the_owner() {
    let opts = Options {
        client_timeout_ms: 2000,
        ..Options::default()
    };
    let mut c = Cluster::new(2, opts);
    let topic = topic_on(1, 2, "t");
    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(r#"{"msg_timeout":5000}"#));
    c.send(cl, &sub_cmd(&topic, "c"));
    assert_eq!(c.frames(cl), vec![ok(), ok()]);
    let (shard, conn) = c.location(cl).unwrap();
    assert_eq!(shard, 1);
    assert_eq!(c.brokers[1].session(conn).unwrap().msg_timeout_ms, 5000);

    c.advance_ms(1000);
    assert_eq!(
        c.frames(cl),
        vec![Frame::response(b"_heartbeat_")],
        "one heartbeat, from shard 1"
    );
    c.send(cl, b"NOP\n");
    c.advance_ms(1999);
    assert!(!c.is_closed(cl));
    c.advance_ms(1);
    assert!(c.is_closed(cl), "the read deadline runs on the owner");
    assert_eq!(c.brokers[1].session_count(), 0);
    assert!(c.brokers[1].channel(&topic, "c").unwrap().consumers.is_empty());
}

#[test]
fn a_migrated_sub_over_the_consumer_limit_fails_on_the_owner() {
    let opts = Options {
        max_channel_consumers: 1,
        ..Options::default()
    };
    let mut c = Cluster::new(2, opts);
    let topic = topic_on(1, 2, "t");
    let _first = c.consumer(1, &topic, "c");
    let second = c.connect_v2(0);
    c.send(second, &sub_cmd(&topic, "c"));
    let want = format!("E_SUB_FAILED SUB failed consumers for {topic}:c exceeds limit of 1");
    assert_eq!(c.frames(second), vec![Frame::error(want.as_bytes())]);
    assert!(c.is_closed(second));
}
