//! Claim: a connection's publish answers come back in command order even when its publishes are
//! forwarded to other shards and answered out of order there; a failed publish is answered after
//! the `OK`s before it and closes the connection; any other command waits for the publish answers
//! still owed (spec §1.5, §2).

mod common;

use common::*;
use squall_core::broker::Blocked;
use squall_core::options::Options;

struct Topics {
    local: Vec<String>,
    remote: String,
}

/// Two shards; the producer lives on shard 0; `remote` is owned by shard 1.
fn two_shards(opts: Options) -> (Cluster, Topics) {
    let topics = Topics {
        local: (0..3).map(|i| topic_on(0, 2, &format!("local{i}_"))).collect(),
        remote: topic_on(1, 2, "remote"),
    };
    (Cluster::new(2, opts), topics)
}

#[test]
fn answers_follow_command_order_across_shards() {
    let (mut c, t) = two_shards(Options::default());
    let p = c.connect_v2(0);
    c.hold_lanes = true;
    let mut bytes = Vec::new();
    bytes.extend(pub_cmd(&t.local[0], b"1"));
    bytes.extend(pub_cmd(&t.remote, b"2"));
    bytes.extend(pub_cmd(&t.local[1], b"3"));
    bytes.extend(mpub_cmd(&t.remote, &[b"4", b"5"]));
    bytes.extend(dpub_cmd(&t.local[2], 10, b"6"));
    c.send(p, &bytes);
    // Local publishes are applied at once, but only the first may be answered yet.
    assert_eq!(c.take_bytes(p), OK);
    assert_eq!(c.brokers[0].topic(&t.local[1]).unwrap().depth(), 1);
    assert_eq!(c.brokers[0].topic(&t.local[2]).unwrap().depth(), 1);
    assert!(c.brokers[1].topic(&t.remote).is_none());

    c.hold_lanes = false;
    c.settle();
    assert_eq!(c.take_bytes(p), [OK, OK, OK, OK].concat());
    assert_eq!(c.brokers[1].topic(&t.remote).unwrap().depth(), 3);
    assert!(c.brokers[0].session(c.conn(p)).unwrap().pending.is_empty());
}

#[test]
fn a_forwarded_failure_closes_after_the_oks_before_it() {
    let (mut c, t) = two_shards(Options {
        mem_queue_size: 1,
        ..Options::default()
    });
    let p = c.connect_v2(0);
    c.hold_lanes = true;
    let mut bytes = Vec::new();
    bytes.extend(pub_cmd(&t.local[0], b"1"));
    bytes.extend(pub_cmd(&t.remote, b"2"));
    bytes.extend(pub_cmd(&t.local[1], b"3"));
    bytes.extend(pub_cmd(&t.remote, b"4")); // the remote topic's queue (1) is full
    bytes.extend(pub_cmd(&t.local[2], b"5"));
    c.send(p, &bytes);
    assert_eq!(c.frames(p), vec![ok()]);
    c.hold_lanes = false;
    c.settle();
    assert_eq!(
        c.frames(p),
        vec![
            ok(),
            ok(),
            Frame::error(b"E_PUB_FAILED PUB failed topic memory queue full (no disk queue)")
        ]
    );
    assert!(c.is_closed(p));
    assert_eq!(c.brokers[1].topic(&t.remote).unwrap().depth(), 1);
}

#[test]
fn a_local_failure_waits_for_the_forwarded_answers_before_it() {
    let (mut c, t) = two_shards(Options {
        mem_queue_size: 1,
        ..Options::default()
    });
    c.publish(0, &t.local[0], b"fills the queue");
    let p = c.connect_v2(0);
    c.hold_lanes = true;
    let later_remote = topic_on(1, 2, "later");
    let mut bytes = pub_cmd(&t.remote, b"1");
    bytes.extend(mpub_cmd(&t.local[0], &[b"2", b"3"]));
    // nsqd stops at a fatal error: nothing after the failed MPUB may run.
    bytes.extend(pub_cmd(&t.local[1], b"never read"));
    bytes.extend(pub_cmd(&later_remote, b"never read"));
    bytes.extend(sub_cmd(&t.local[2], "c"));
    c.send(p, &bytes);
    assert!(c.brokers[0].topic(&t.local[1]).is_none());
    assert!(c.brokers[0].topic(&t.local[2]).is_none());
    assert_eq!(c.take_bytes(p), b"");
    assert!(!c.is_closed(p));
    c.hold_lanes = false;
    c.settle();
    assert_eq!(
        c.frames(p),
        vec![
            ok(),
            Frame::error(b"E_MPUB_FAILED MPUB failed topic memory queue full (no disk queue)")
        ]
    );
    assert!(c.is_closed(p));
    assert_eq!(c.brokers[1].topic(&t.remote).unwrap().depth(), 1);
    assert!(c.brokers[1].topic(&later_remote).is_none());
    assert!(c.brokers[0].topic(&t.local[1]).is_none());
    assert_eq!(
        c.brokers[0].topic(&t.local[0]).unwrap().depth(),
        1,
        "MPUB is all or nothing"
    );
}

#[test]
fn a_non_publish_command_waits_for_owed_answers() {
    let (mut c, t) = two_shards(Options::default());
    let p = c.connect_v2(0);
    c.hold_lanes = true;
    let mut bytes = pub_cmd(&t.remote, b"1");
    bytes.extend(sub_cmd(&t.local[0], "c"));
    c.send(p, &bytes);
    assert_eq!(c.take_bytes(p), b"");
    assert!(
        c.brokers[0].channel(&t.local[0], "c").is_none(),
        "SUB has not run"
    );
    let s = c.brokers[0].session(c.conn(p)).unwrap();
    assert_eq!(s.blocked, Some(Blocked::AwaitingReplies));

    // More input while waiting is kept, not lost.
    c.send(p, b"RDY 1\n");
    c.hold_lanes = false;
    c.settle();
    assert_eq!(c.take_bytes(p), [OK, OK].concat());
    let s = c.brokers[0].session(c.conn(p)).unwrap();
    assert_eq!((s.blocked, s.rdy), (None, 1));
    assert!(c.brokers[0].channel(&t.local[0], "c").is_some());
}

#[test]
fn a_fatal_decode_error_waits_for_owed_answers() {
    let (mut c, t) = two_shards(Options::default());
    let p = c.connect_v2(0);
    c.hold_lanes = true;
    let mut bytes = pub_cmd(&t.remote, b"1");
    bytes.extend(pub_cmd(&t.remote, b"2"));
    bytes.extend(b"ASDF\n");
    c.send(p, &bytes);
    assert_eq!(c.take_bytes(p), b"");
    assert!(!c.is_closed(p));
    c.hold_lanes = false;
    c.settle();
    assert_eq!(
        c.frames(p),
        vec![ok(), ok(), Frame::error(b"E_INVALID invalid command ASDF")]
    );
    assert!(c.is_closed(p));
}
