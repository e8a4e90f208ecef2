//! Claim: a topic created while a lookupd is known holds what is published until the channels
//! lookupd knows for it all exist, so every one of them gets every message, from whichever shard
//! it was published (spec A.12); an answer for a deleted or earlier topic of the same name is
//! ignored, and without a known lookupd a topic starts at once.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::*;
use squall_core::broker::ShardMsg;
use squall_core::names::Name;
use squall_core::options::Options;
use squall_core::topic::{ChannelsFound, ChannelsQuery};

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

fn cluster(known: bool) -> Cluster {
    let mut c = Cluster::new(2, Options::default());
    let flag = Arc::new(AtomicBool::new(known));
    for b in &mut c.brokers {
        b.set_lookupd_known(flag.clone());
    }
    c
}

fn answer(c: &mut Cluster, shard: usize, query: &ChannelsQuery, channels: &[&str]) {
    let found = ChannelsFound {
        topic: query.topic,
        ticket: query.ticket,
        channels: channels.iter().map(|c| name(c)).collect(),
    };
    c.brokers[shard].on_message(&mut c.nets[shard], shard, ShardMsg::Channels(Box::new(found)));
    c.settle();
}

fn depths(c: &Cluster, shard: usize, topic: &str, channels: &[&str]) -> Vec<Option<usize>> {
    channels
        .iter()
        .map(|ch| c.brokers[shard].channel(topic, ch).map(|c| c.depth()))
        .collect()
}

#[test]
fn every_known_channel_exists_before_the_first_message_reaches_one() {
    let mut c = cluster(true);
    let t = topic_on(1, 2, "fan");
    // Published through the other shard, twice, before the answer.
    c.publish(0, &t, b"one");
    c.publish(0, &t, b"two");
    let queries = c.brokers[1].take_channel_queries();
    assert_eq!(queries.len(), 1, "one query per new topic: {queries:?}");
    assert_eq!(queries[0].topic, name(&t));
    assert!(c.brokers[0].take_channel_queries().is_empty());
    assert_eq!(c.brokers[1].topic(&t).unwrap().depth(), 2, "held in the topic");

    // A consumer arriving meanwhile gets its channel, but nothing flows yet.
    let cons = c.consumer(1, &t, "live");
    c.send(cons, b"RDY 10\n");
    assert!(c.messages(cons).is_empty());

    answer(&mut c, 1, &queries[0], &["a", "b", "c", "d", "tmp#ephemeral"]);
    assert_eq!(c.brokers[1].topic(&t).unwrap().depth(), 0);
    assert_eq!(
        depths(&c, 1, &t, &["a", "b", "c", "d"]),
        vec![Some(2); 4],
        "every channel lookupd knows has both messages"
    );
    assert!(
        c.brokers[1].channel(&t, "tmp#ephemeral").is_none(),
        "ephemeral channels wait for a consumer"
    );
    c.advance_ms(300); // the consumer's output buffer timeout
    let bodies: Vec<Vec<u8>> = c.messages(cons).into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);

    // Later publishes go straight through; a repeated answer changes nothing.
    c.publish(0, &t, b"three");
    answer(&mut c, 1, &queries[0], &["e"]);
    assert!(c.brokers[1].channel(&t, "e").is_none());
    assert_eq!(depths(&c, 1, &t, &["a", "d"]), vec![Some(3); 2]);
}

#[test]
fn an_answer_for_an_earlier_topic_of_the_same_name_is_ignored() {
    let mut c = cluster(true);
    let t = topic_on(0, 2, "again");
    c.publish(0, &t, b"first life");
    let first = c.brokers[0].take_channel_queries();
    let admin = |c: &mut Cluster, op| c.brokers[0].apply_admin(&mut c.nets[0], op);
    assert_eq!(
        admin(&mut c, squall_core::broker::AdminOp::DeleteTopic(name(&t))),
        Ok(())
    );
    c.publish(0, &t, b"second life");
    let second = c.brokers[0].take_channel_queries();
    assert_ne!(first[0].ticket, second[0].ticket);

    answer(&mut c, 0, &first[0], &["stale"]);
    assert!(c.brokers[0].channel(&t, "stale").is_none());
    assert_eq!(c.brokers[0].topic(&t).unwrap().depth(), 1, "still waiting");
    answer(&mut c, 0, &second[0], &["fresh"]);
    assert_eq!(depths(&c, 0, &t, &["fresh"]), vec![Some(1)]);
}

#[test]
fn without_a_known_lookupd_a_topic_starts_at_once() {
    let mut c = cluster(false);
    let t = topic_on(0, 2, "plain");
    let cons = c.consumer(0, &t, "ch");
    c.publish(1, &t, b"m");
    assert!(c.brokers[0].take_channel_queries().is_empty());
    c.send(cons, b"RDY 1\n");
    assert_eq!(c.messages(cons)[0].body, b"m");
}
