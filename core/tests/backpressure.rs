//! Claim: every queue the broker fills on a client's behalf is bounded and full queues push back
//! without losing anything: a producer whose lane to the owner shard is full stops being read and
//! resumes where it stopped; a full memory queue refuses the publish (all of an MPUB or none); a
//! consumer that does not read gets no more deliveries until its output drains.

mod common;

use common::*;
use squall_core::broker::{
    Blocked, CONSUMER_OUTPUT_BYTES_MAX, INPUT_PAUSE_OUTPUT_BYTES, PUBLISH_BATCH_MESSAGES_MAX,
};
use squall_core::options::Options;

#[test]
fn full_lane_pauses_the_producer_and_nothing_is_lost() {
    let mut c = Cluster::new(
        2,
        Options {
            mem_queue_size: 100_000,
            ..Options::default()
        },
    );
    c.nets[0].mailbox_cap = 1;
    let topic = topic_on(1, 2, "t");
    let p = c.connect_v2(0);
    c.hold_lanes = true;

    // One batch fits in the lane, one more fills the outbox; the rest must wait in the input.
    let first = 2 * PUBLISH_BATCH_MESSAGES_MAX + 50;
    let body = |i: usize| format!("{i:06}").into_bytes();
    let bytes: Vec<u8> = (0..first).flat_map(|i| pub_cmd(&topic, &body(i))).collect();
    let one_pub = pub_cmd(&topic, &body(0)).len();
    c.send(p, &bytes);

    let conn = c.conn(p);
    assert!(c.nets[0].is_read_paused(conn));
    assert!(c.nets[0].pause_calls >= 1);
    assert_eq!(c.nets[0].mailbox_len(1), 1);
    assert_eq!(
        c.nets[0].input_len(conn),
        50 * one_pub,
        "the last 50 PUBs are left unread"
    );
    let s = c.brokers[0].session(conn).unwrap();
    assert_eq!(s.blocked, Some(Blocked::Outbox(1)));
    assert_eq!(s.pending.len(), 2 * PUBLISH_BATCH_MESSAGES_MAX);
    assert_eq!(
        c.take_bytes(p),
        b"",
        "nothing is answered before the owner has it"
    );

    // More from the client stays in the socket while reading is paused.
    let more: Vec<u8> = (first..first + 10)
        .flat_map(|i| pub_cmd(&topic, &body(i)))
        .collect();
    c.send(p, &more);
    assert_eq!(c.nets[0].input_len(conn), 50 * one_pub);

    c.hold_lanes = false;
    c.settle();
    let total = first + 10;
    assert_eq!(c.take_bytes(p), OK.repeat(total));
    assert!(!c.nets[0].is_read_paused(conn));
    assert!(!c.is_closed(p));
    let t = c.brokers[1].topic(&topic).unwrap();
    let got: Vec<Vec<u8>> = t.queue.memory.iter().map(|e| e.msg.body.to_vec()).collect();
    let want: Vec<Vec<u8>> = (0..total).map(body).collect();
    assert!(got == want, "every message arrives once, in order");
}

#[test]
fn full_memory_queue_refuses_publishes_and_mpub_is_all_or_nothing() {
    let mut c = Cluster::single(Options {
        mem_queue_size: 3,
        ..Options::default()
    });
    let a = c.connect_v2(0);
    c.send(a, &[pub_cmd("t", b"1"), pub_cmd("t", b"2")].concat());
    c.send(a, &mpub_cmd("t", &[b"3", b"4"]));
    assert_eq!(
        c.frames(a),
        vec![
            ok(),
            ok(),
            Frame::error(b"E_MPUB_FAILED MPUB failed topic memory queue full (no disk queue)")
        ]
    );
    assert!(c.is_closed(a));
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 2, "none of the MPUB");

    let b = c.connect_v2(0);
    c.send(b, &[pub_cmd("t", b"3"), pub_cmd("t", b"4")].concat());
    assert_eq!(
        c.frames(b),
        vec![
            ok(),
            Frame::error(b"E_PUB_FAILED PUB failed topic memory queue full (no disk queue)")
        ]
    );
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 3);

    // Once the topic flows, the channel's queue is the bound.
    let consumer = c.consumer(0, "t", "c");
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().depth(), 3);
    let d = c.connect_v2(0);
    c.send(d, &dpub_cmd("t", 1000, b"deferred"));
    c.send(d, &pub_cmd("t", b"5"));
    assert_eq!(
        c.frames(d),
        vec![
            ok(),
            Frame::error(b"E_PUB_FAILED PUB failed channel memory queue full (no disk queue)")
        ]
    );
    c.send(consumer, b"RDY 1\n");
    assert_eq!(c.messages(consumer)[0].body, b"1");
}

#[test]
fn ephemeral_queues_drop_what_does_not_fit_instead_of_refusing() {
    let mut c = Cluster::single(Options {
        mem_queue_size: 2,
        ..Options::default()
    });
    let p = c.connect_v2(0);
    let bytes: Vec<u8> = (0..4).flat_map(|i| pub_cmd("t#ephemeral", &[b'0' + i])).collect();
    c.send(p, &bytes);
    assert_eq!(c.take_bytes(p), OK.repeat(4));
    assert_eq!(c.brokers[0].topic("t#ephemeral").unwrap().depth(), 2);
}

#[test]
fn consumer_output_cap_stops_deliveries_until_drained() {
    let mut c = Cluster::single(Options::default());
    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 10\n");
    c.stall_output(cl, CONSUMER_OUTPUT_BYTES_MAX);
    for i in 0..3 {
        c.publish(0, "t", format!("m{i}").as_bytes());
    }
    c.advance_ms(1000);
    assert!(c.messages(cl).is_empty());
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.depth(), ch.in_flight.len()), (3, 0));

    c.unstall_output(cl);
    c.advance_ms(250);
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.depth(), ch.in_flight.len()), (0, 3), "drained: all delivered");
    assert_eq!(c.messages(cl).len(), 3);
}

#[test]
fn consumer_output_cap_is_rechecked_between_deliveries() {
    let mut c = Cluster::single(Options::default());
    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 10\n");
    c.stall_output(cl, CONSUMER_OUTPUT_BYTES_MAX - 1);
    for i in 0..3 {
        c.publish(0, "t", format!("m{i}").as_bytes());
    }
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.depth(), ch.in_flight.len()), (2, 1), "one fits under the cap");
    c.advance_ms(1000);
    assert!(c.messages(cl).is_empty(), "the client is not reading");
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().depth(), 2);
    c.unstall_output(cl);
    c.advance_ms(250);
    assert_eq!(c.messages(cl).len(), 3);
}

#[test]
fn a_producer_held_back_by_a_full_lane_is_not_timed_out() {
    let mut c = Cluster::new(
        2,
        Options {
            client_timeout_ms: 2000, // heartbeat 1 s, read deadline 2 s
            mem_queue_size: 100_000,
            ..Options::default()
        },
    );
    c.nets[0].mailbox_cap = 1;
    let topic = topic_on(1, 2, "t");
    let p = c.connect_v2(0);
    c.hold_lanes = true;
    let n = 2 * PUBLISH_BATCH_MESSAGES_MAX + 1;
    let bytes: Vec<u8> = (0..n).flat_map(|_| pub_cmd(&topic, b"x")).collect();
    c.send(p, &bytes);
    assert!(c.nets[0].is_read_paused(c.conn(p)));
    // The broker, not the client, has stopped reading: that silence is no reason to close.
    c.advance_ms(5000);
    assert!(!c.is_closed(p));
    c.hold_lanes = false;
    c.settle();
    let oks = c.frames(p).into_iter().filter(|f| *f == ok()).count();
    assert_eq!(oks, n);
    c.advance_ms(1999);
    assert!(!c.is_closed(p));
    c.advance_ms(1);
    assert!(c.is_closed(p), "once reading resumes, silence counts again");
}

#[test]
fn a_large_topic_backlog_reaches_a_new_channel_whole_and_in_order() {
    let mut c = Cluster::single(Options::default());
    let bodies: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let p = c.connect_v2(0);
    c.send(p, &mpub_cmd("t", &refs));
    assert_eq!(c.take_bytes(p), OK);
    let _cl = c.consumer(0, "t", "c");
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 0);
    let ch = c.brokers[0].channel("t", "c").unwrap();
    let got: Vec<&[u8]> = ch.queue.memory.iter().map(|m| &m.body[..]).collect();
    assert!(got == refs, "moved whole and in order");
}

#[test]
fn a_client_that_does_not_read_its_answers_is_not_read_until_they_drain() {
    let mut c = Cluster::single(Options {
        client_timeout_ms: 2000, // heartbeat interval 1 s
        ..Options::default()
    });
    let p = c.connect_v2(0);
    c.stall_output(p, INPUT_PAUSE_OUTPUT_BYTES);
    c.send(p, &[pub_cmd("t", b"a"), pub_cmd("t", b"b")].concat());
    let id = c.conn(p);
    assert!(c.nets[0].is_read_paused(id));
    assert!(c.nets[0].input_len(id) > 0, "the PUBs wait unread");
    assert!(c.brokers[0].topic("t").is_none());

    c.unstall_output(p);
    assert_eq!(c.take_bytes(p), OK.repeat(2), "read again once drained");
    assert!(!c.nets[0].is_read_paused(id));
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_by_the_read_deadline() {
    // nsqd's write deadline closes such a client; here nothing is read from it meanwhile, so its
    // read deadline (2 x heartbeat interval) does.
    let mut c = Cluster::single(Options {
        client_timeout_ms: 2000,
        ..Options::default()
    });
    let p = c.connect_v2(0);
    c.stall_output(p, INPUT_PAUSE_OUTPUT_BYTES);
    // It keeps sending: were its commands read, each would push the deadline back.
    for _ in 0..3 {
        c.send(p, &pub_cmd("t", b"a"));
        c.advance_ms(600);
    }
    assert!(!c.is_closed(p));
    c.advance_ms(200);
    assert!(c.is_closed(p), "2 s after the last command read (the magic)");
}

#[test]
fn ephemeral_channels_without_memory_hand_messages_to_ready_consumers() {
    // --mem-queue-size=0: nsqd's ephemeral channel is an unbuffered hand-off to a consumer that
    // is ready, and drops only what no consumer can take.
    let mut c = Cluster::single(Options {
        mem_queue_size: 0,
        ..Options::default()
    });
    let cl = c.consumer(0, "e#ephemeral", "c#ephemeral");
    c.send(cl, b"RDY 3\n");
    let p = c.connect_v2(0);
    let bytes: Vec<u8> = (0..5).flat_map(|i| pub_cmd("e#ephemeral", &[b'0' + i])).collect();
    c.send(p, &bytes);
    assert_eq!(c.take_bytes(p), OK.repeat(5));
    let got: Vec<Vec<u8>> = c.messages(cl).into_iter().map(|m| m.body).collect();
    assert_eq!(
        got,
        vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec()],
        "RDY 3: three handed over"
    );
    assert_eq!(
        c.brokers[0]
            .channel("e#ephemeral", "c#ephemeral")
            .unwrap()
            .depth(),
        0,
        "the rest dropped"
    );
}

#[test]
fn a_consumer_writing_a_large_delivery_still_has_its_fins_read() {
    // Consumers are not paused by unsent output: it is their deliveries (already capped), and a
    // FIN must not wait for a multi-megabyte message to leave.
    let mut c = Cluster::single(Options::default());
    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 1\n");
    c.publish(0, "t", b"small");
    let m = c.messages(cl).remove(0);
    c.stall_output(cl, INPUT_PAUSE_OUTPUT_BYTES);
    c.send(cl, &fin_cmd(&m.id));
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!(ch.in_flight.len(), 0, "the FIN was read");
    assert!(!c.nets[0].is_read_paused(c.conn(cl)));
}
