//! Topics live on one shard: publishes from a connection on another shard are forwarded and
//! answered in command order, and a consumer is served after migrating to its topic's shard.

mod common;

use std::collections::HashSet;

use common::*;
use squall_core::options::Options;

#[test]
fn answers_come_in_command_order_across_shards() {
    let n = TestNode::start(Options {
        mem_queue_size: 1000,
        ..Options::default()
    });
    let a = topic_on_shard("order", 0, 2);
    let b = topic_on_shard("order", 1, 2);
    let mut p = n.client();
    // Pipeline alternating publishes to both shards, then a command that fails at once. Its error
    // must come after every OK, wherever the connection and the topics live.
    let mut buf = Vec::new();
    for i in 0..500 {
        let topic = if i % 2 == 0 { &a } else { &b };
        buf.extend_from_slice(format!("PUB {topic}\n").as_bytes());
        buf.extend_from_slice(&4u32.to_be_bytes());
        buf.extend_from_slice(format!("{i:04}").as_bytes());
    }
    buf.extend_from_slice(b"BOGUS\n");
    p.send(&buf);
    for _ in 0..500 {
        p.expect_ok();
    }
    p.expect_error("E_INVALID invalid command BOGUS");
    p.expect_closed();
}

#[test]
fn a_failed_forwarded_publish_is_answered_in_order_and_closes() {
    // Topic b holds 2 messages: the third publish to it fails, after the OKs before it.
    let n = TestNode::start(Options {
        mem_queue_size: 2,
        ..Options::default()
    });
    let a = topic_on_shard("orderfail", 0, 2);
    let b = topic_on_shard("orderfail", 1, 2);
    let mut p = n.client();
    let mut buf = Vec::new();
    for topic in [&a, &b, &a, &b, &b] {
        buf.extend_from_slice(format!("PUB {topic}\n").as_bytes());
        buf.extend_from_slice(&1u32.to_be_bytes());
        buf.push(b'x');
    }
    p.send(&buf);
    for _ in 0..4 {
        p.expect_ok();
    }
    let (ft, data) = p.read_frame();
    assert_eq!(ft, FRAME_ERROR);
    assert!(
        data.starts_with(b"E_PUB_FAILED PUB failed"),
        "{}",
        String::from_utf8_lossy(&data)
    );
    p.expect_closed();
}

#[test]
fn consumers_on_every_shard_are_served_after_migrating() {
    let n = TestNode::start(Options::default());
    for shard in 0..2 {
        let topic = topic_on_shard("migrate", shard, 2);
        // Several connections land on both shards; each must end up served by the topic's shard.
        let mut consumers: Vec<Client> = (0..4).map(|_| n.client()).collect();
        for c in &mut consumers {
            c.identify(r#"{"client_id":"migrant"}"#);
            c.expect_ok();
            // SUB and RDY in one write: the RDY travels with the connection.
            c.send(format!("SUB {topic} ch\nRDY 10\n").as_bytes());
            c.expect_ok();
        }
        let mut p = n.client();
        let bodies: Vec<Vec<u8>> = (0..40).map(|i| format!("{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
        p.mpub(&topic, &refs);
        p.expect_ok();
        let mut seen = HashSet::new();
        for c in &mut consumers {
            for _ in 0..10 {
                let m = c.read_message();
                c.fin(&m.id);
                assert!(seen.insert(m.body));
            }
        }
        assert_eq!(seen.len(), 40);
        // A migrated consumer can also publish.
        consumers[0].publish(&topic_on_shard("migrate-pub", 1 - shard, 2), b"x");
        consumers[0].expect_ok();
    }
}

#[test]
fn sub_after_pending_forwarded_publishes_keeps_order() {
    let n = TestNode::start(Options::default());
    let a = topic_on_shard("subafter", 0, 2);
    let b = topic_on_shard("subafter", 1, 2);
    for (pub_topic, sub_topic) in [(&a, &b), (&b, &a), (&a, &a), (&b, &b)] {
        let mut c = n.client();
        let mut buf = Vec::new();
        for _ in 0..50 {
            buf.extend_from_slice(format!("PUB {pub_topic}\n").as_bytes());
            buf.extend_from_slice(&1u32.to_be_bytes());
            buf.push(b'p');
        }
        buf.extend_from_slice(format!("SUB {sub_topic} ch\nRDY 1\n").as_bytes());
        c.send(&buf);
        for _ in 0..51 {
            c.expect_ok();
        }
    }
}
