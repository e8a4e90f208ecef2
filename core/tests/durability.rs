//! Claim: with disk backends, a full memory queue spills to disk in order instead of refusing
//! publishes; with durable acks (`--sync-every=1`) a publish is answered only after the fsync
//! covering it, one fsync serving every publish of the turn; a failed disk write answers
//! E_PUB_FAILED and marks the node unhealthy; at shutdown memory, in-flight and deferred
//! messages are written down; nsqd.dat metadata follows creates, deletes and pauses.

mod common;

use common::*;
use squall_core::broker::{AdminOp, Origin, Request};
use squall_core::names::Name;
use squall_core::options::Options;

fn small() -> Options {
    Options {
        mem_queue_size: 2,
        ..Options::default()
    }
}

#[test]
fn full_memory_spills_to_disk_and_order_is_kept() {
    let mut c = Cluster::single(small());
    let queues = c.with_mem_backends(false);
    let cons = c.consumer(0, "t", "ch");
    for i in 0..6u8 {
        c.publish(0, "t", &[b'0' + i]);
    }
    {
        let q = queues.borrow();
        assert_eq!(q["t:ch"].borrow().records.len(), 4, "2 in memory, 4 spilled");
    }
    assert_eq!(c.brokers[0].channel("t", "ch").unwrap().depth(), 6);
    c.send(cons, b"RDY 10\n");
    c.advance_ms(300);
    let bodies: Vec<Vec<u8>> = c.messages(cons).into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, (0..6u8).map(|i| vec![b'0' + i]).collect::<Vec<_>>());
}

#[test]
fn topic_without_channels_spills_and_delivers_in_order_later() {
    let mut c = Cluster::single(small());
    let queues = c.with_mem_backends(false);
    for i in 0..5u8 {
        c.publish(0, "t", &[b'a' + i]);
    }
    assert_eq!(queues.borrow()["t"].borrow().records.len(), 3);
    let cons = c.consumer(0, "t", "ch");
    c.send(cons, b"RDY 10\n");
    c.advance_ms(300);
    let bodies: Vec<Vec<u8>> = c.messages(cons).into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, (0..5u8).map(|i| vec![b'a' + i]).collect::<Vec<_>>());
}

#[test]
fn durable_ack_waits_for_the_fsync_and_one_fsync_serves_the_turn() {
    let mut c = Cluster::single(Options {
        mem_queue_size: 0,
        ..Options::default()
    });
    let queues = c.with_mem_backends(true);
    c.consumer(0, "t", "ch");
    c.nets[0].hold_fsyncs = true;
    let p = c.connect_v2(0);
    let mut batch = Vec::new();
    for i in 0..3u8 {
        batch.extend(pub_cmd("t", &[i]));
    }
    c.send(p, &batch);
    assert!(c.frames(p).is_empty(), "no OK before the fsync");
    assert_eq!(c.nets[0].fsyncs.len(), 1, "one fsync for the three publishes");
    assert_eq!(queues.borrow()["t:ch"].borrow().written, 3);
    c.nets[0].hold_fsyncs = false;
    c.settle();
    assert_eq!(c.frames(p), vec![ok(), ok(), ok()]);
    assert_eq!(queues.borrow()["t:ch"].borrow().durable, 3);
}

#[test]
fn durable_ack_for_a_forwarded_publish_and_a_front_end_publish() {
    let mut c = Cluster::new(
        2,
        Options {
            mem_queue_size: 0,
            ..Options::default()
        },
    );
    c.with_mem_backends(true);
    let t = topic_on(1, 2, "dur");
    c.nets[1].hold_fsyncs = true;
    let p = c.connect_v2(0);
    c.send(p, &pub_cmd(&t, b"x"));
    assert!(c.frames(p).is_empty());
    let origin = Origin { conn: 5, seq: 1 };
    let req = Request::Publish {
        kind: squall_core::broker::PubKind::Pub,
        topic: Name::new(t.as_bytes()).unwrap(),
        defer_ms: 0,
        bodies: vec![bytes::Bytes::from_static(b"y")],
    };
    c.brokers[0].submit(&mut c.nets[0], origin, req);
    c.settle();
    assert!(c.brokers[0].take_responses().is_empty());
    c.nets[1].hold_fsyncs = false;
    c.settle();
    assert_eq!(c.frames(p), vec![ok()]);
    assert_eq!(c.brokers[0].take_responses().len(), 1);
}

#[test]
fn a_failed_disk_write_refuses_the_publish_and_marks_the_node_unhealthy() {
    let mut c = Cluster::single(Options {
        mem_queue_size: 0,
        ..Options::default()
    });
    let queues = c.with_mem_backends(false);
    c.publish(0, "t", b"first"); // creates the topic's queue
    queues.borrow()["t"].borrow_mut().fail_puts = true;
    let p = c.connect_v2(0);
    c.send(p, &pub_cmd("t", b"x"));
    assert_eq!(
        c.frames(p),
        vec![Frame::error(b"E_PUB_FAILED PUB failed disk full")]
    );
    assert_eq!(c.brokers[0].health_error(), Some("disk full"));
    queues.borrow()["t"].borrow_mut().fail_puts = false;
    c.publish(0, "t", b"again");
    assert_eq!(c.brokers[0].health_error(), None);
}

#[test]
fn shutdown_writes_memory_in_flight_and_deferred_to_disk() {
    let mut c = Cluster::single(Options::default());
    let queues = c.with_mem_backends(false);
    let cons = c.consumer(0, "t", "ch");
    for b in [b"a", b"b", b"c"] {
        c.publish(0, "t", b);
    }
    c.send(cons, b"RDY 2\n");
    let msgs = c.messages(cons);
    c.send(cons, &req_cmd(&msgs[0].id, 60_000));
    let errors = c.brokers[0].persist_and_close();
    assert!(errors.is_empty(), "{errors:?}");
    let q = queues.borrow();
    let ch = q["t:ch"].borrow();
    // The one in memory and the one in flight (attempts kept: it was delivered once).
    assert_eq!(ch.records.len(), 2);
    assert!(ch.closed);
    let attempts: Vec<u16> = ch
        .records
        .iter()
        .map(|r| u16::from_be_bytes([r[8], r[9]]))
        .collect();
    assert_eq!(attempts.iter().filter(|&&a| a == 1).count(), 1);
    // The deferred one goes to a queue of its own, its due time in front of the record.
    let deferred = q["t:ch:deferred"].borrow();
    assert_eq!(deferred.records.len(), 1);
    assert!(deferred.closed);
}

#[test]
fn metadata_follows_creates_deletes_and_pauses() {
    let mut c = Cluster::single(Options::default());
    c.with_mem_backends(false);
    c.consumer(0, "t", "ch");
    c.consumer(0, "t", "tmp#ephemeral");
    c.consumer(0, "e#ephemeral", "ch");
    let meta = c.brokers[0].take_metadata().expect("changed");
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].name.as_str(), "t");
    assert_eq!(
        meta[0]
            .channels
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        vec!["ch"]
    );
    assert!(c.brokers[0].take_metadata().is_none(), "nothing changed since");
    let op = AdminOp::PauseChannel(Name::new(b"t").unwrap(), Name::new(b"ch").unwrap(), true);
    c.brokers[0].apply_admin(&mut c.nets[0], op).unwrap();
    assert!(c.brokers[0].take_metadata().unwrap()[0].channels[0].1);
}

#[test]
fn deferred_messages_keep_their_due_time_across_a_restart() {
    let mut c = Cluster::single(Options::default());
    let queues = c.with_mem_backends(false);
    let cons = c.consumer(0, "t", "ch");
    c.publish(0, "t", b"later");
    c.send(cons, b"RDY 1\n");
    let m = c.messages(cons).remove(0);
    c.send(cons, &req_cmd(&m.id, 60_000));
    assert!(c.brokers[0].persist_and_close().is_empty());

    // A new broker over the same files: the channel comes back with the message still deferred.
    let mut c = Cluster::single(Options::default());
    c.use_mem_queues(&queues, false);
    let cons = c.consumer(0, "t", "ch");
    c.send(cons, b"RDY 1\n");
    let mut again = Vec::new();
    for second in (10..=70).step_by(10) {
        c.advance_ms(10_000);
        c.send(cons, b"NOP\n"); // stay within the read deadline
        for f in c.frames(cons) {
            if let Frame::Message(m) = f {
                assert!(second >= 60, "delivered after {second} s, before its due time");
                again.push(m);
            }
        }
    }
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, b"later");
    assert_eq!(again[0].attempts, 2);
    assert!(
        queues.borrow()["t:ch:deferred"].borrow().deleted,
        "read back once, then removed"
    );
}

#[test]
fn a_requeue_the_disk_refuses_stays_in_memory_and_is_delivered_again() {
    // The message was acknowledged to its publisher long ago: a failing disk must not lose it.
    let mut c = Cluster::single(Options {
        mem_queue_size: 0,
        ..Options::default()
    });
    let queues = c.with_mem_backends(false);
    let cl = c.consumer(0, "t", "ch");
    c.publish(0, "t", b"keep me");
    c.send(cl, b"RDY 1\n");
    let first = c.messages(cl);
    assert_eq!(first.len(), 1);
    queues.borrow()["t:ch"].borrow_mut().fail_puts = true;
    c.send(cl, &req_cmd(&first[0].id, 0));
    let again = c.messages(cl);
    assert_eq!(again.len(), 1, "redelivered from memory");
    assert_eq!(
        (again[0].body.as_slice(), again[0].attempts),
        (&b"keep me"[..], 2)
    );
    // And through an in-flight timeout.
    c.advance_ms(61_000);
    let third: Vec<Msg> = c
        .frames(cl)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Message(m) => Some(m),
            _ => None, // heartbeats
        })
        .collect();
    assert_eq!(third.len(), 1, "timed out and delivered again");
    assert_eq!(third[0].attempts, 3);
}
