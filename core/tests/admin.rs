//! Claim: front-end requests (the HTTP API's publishes, topic and channel administration and
//! stats) run on the topic's owner shard whichever shard asked, and behave as nsqd's do: a paused
//! topic keeps its messages, a paused channel delivers nothing, empty clears queue, in-flight and
//! deferred, delete closes the consumers, stats gather every shard sorted by name (spec A.6-A.8).

mod common;

use bytes::Bytes;
use common::*;
use squall_core::broker::{AdminError, AdminOp, Origin, PubKind, Request, Response};
use squall_core::names::Name;
use squall_core::options::Options;
use squall_core::stats::{ShardStats, StatsFilter};

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

/// Submits on `shard`, lets the cluster settle, and returns the one answer.
fn ask(c: &mut Cluster, shard: usize, req: Request) -> Response {
    let origin = Origin { conn: 999, seq: 1 };
    c.brokers[shard].submit(&mut c.nets[shard], origin, req);
    c.settle();
    let mut answers = c.brokers[shard].take_responses();
    assert_eq!(answers.len(), 1, "one answer");
    let (o, resp) = answers.pop().unwrap();
    assert_eq!(o, origin);
    resp
}

fn admin(c: &mut Cluster, shard: usize, op: AdminOp) -> Result<(), AdminError> {
    match ask(c, shard, Request::Admin(op)) {
        Response::Admin(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn stats(c: &mut Cluster, shard: usize, filter: StatsFilter) -> ShardStats {
    match ask(c, shard, Request::Stats(filter)) {
        Response::Stats(s) => s,
        other => panic!("unexpected {other:?}"),
    }
}

fn all() -> StatsFilter {
    StatsFilter {
        include_clients: true,
        ..StatsFilter::default()
    }
}

#[test]
fn publish_from_any_shard_runs_on_the_owner() {
    let mut c = Cluster::new(2, Options::default());
    let t = topic_on(1, 2, "http");
    let req = Request::Publish {
        kind: PubKind::Pub,
        topic: name(&t),
        defer_ms: 0,
        bodies: vec![Bytes::from_static(b"via http")],
    };
    assert!(matches!(ask(&mut c, 0, req), Response::Published(Ok(_))));
    assert_eq!(c.brokers[1].topic(&t).unwrap().depth(), 1);
    assert!(c.brokers[0].topic(&t).is_none());
}

#[test]
fn paused_topic_keeps_messages_until_unpaused() {
    let mut c = Cluster::new(2, Options::default());
    let t = topic_on(0, 2, "pause");
    let cons = c.consumer(0, &t, "ch");
    assert_eq!(admin(&mut c, 1, AdminOp::PauseTopic(name(&t), true)), Ok(()));
    c.publish(1, &t, b"held");
    assert_eq!(c.brokers[0].topic(&t).unwrap().depth(), 1);
    assert_eq!(c.brokers[0].channel(&t, "ch").unwrap().depth(), 0);
    assert_eq!(admin(&mut c, 1, AdminOp::PauseTopic(name(&t), false)), Ok(()));
    assert_eq!(c.brokers[0].topic(&t).unwrap().depth(), 0);
    c.send(cons, b"RDY 1\n");
    assert_eq!(c.messages(cons)[0].body, b"held");
}

#[test]
fn paused_channel_delivers_nothing_until_unpaused() {
    let mut c = Cluster::single(Options::default());
    let cons = c.consumer(0, "t", "ch");
    c.send(cons, b"RDY 5\n");
    assert_eq!(
        admin(&mut c, 0, AdminOp::PauseChannel(name("t"), name("ch"), true)),
        Ok(())
    );
    c.publish(0, "t", b"wait");
    assert!(c.messages(cons).is_empty());
    assert_eq!(c.brokers[0].channel("t", "ch").unwrap().depth(), 1);
    assert_eq!(
        admin(&mut c, 0, AdminOp::PauseChannel(name("t"), name("ch"), false)),
        Ok(())
    );
    // Delivered into the output buffer, which flushes on its timer while RDY has room.
    c.advance_ms(250);
    assert_eq!(c.messages(cons)[0].body, b"wait");
}

#[test]
fn empty_channel_clears_queue_in_flight_and_deferred() {
    let mut c = Cluster::single(Options::default());
    let cons = c.consumer(0, "t", "ch");
    for i in 0..25u8 {
        c.publish(0, "t", &[b'a' + i % 26]);
    }
    c.send(cons, b"RDY 10\n");
    let msgs = c.messages(cons);
    assert_eq!(msgs.len(), 10);
    c.send(cons, &req_cmd(&msgs[0].id, 100_000));
    let ch = c.brokers[0].channel("t", "ch").unwrap();
    assert_eq!((ch.in_flight.len(), ch.deferred.len(), ch.depth()), (9, 1, 15));
    c.send(cons, b"RDY 0\n");
    assert_eq!(
        admin(&mut c, 0, AdminOp::EmptyChannel(name("t"), name("ch"))),
        Ok(())
    );
    let ch = c.brokers[0].channel("t", "ch").unwrap();
    assert_eq!((ch.in_flight.len(), ch.deferred.len(), ch.depth()), (0, 0, 0));
    assert_eq!(c.brokers[0].session(c.conn(cons)).unwrap().in_flight, 0);
    c.send(cons, &fin_cmd(&msgs[1].id));
    let id = String::from_utf8(msgs[1].id.to_vec()).unwrap();
    assert_eq!(
        c.frames(cons),
        vec![Frame::error(
            format!("E_FIN_FAILED FIN {id} failed ID not in flight").as_bytes()
        )]
    );
}

#[test]
fn delete_channel_closes_its_consumers_and_unknown_names_are_not_found() {
    let mut c = Cluster::single(Options::default());
    let cons = c.consumer(0, "t", "ch");
    assert_eq!(
        admin(&mut c, 0, AdminOp::DeleteChannel(name("t"), name("ch"))),
        Ok(())
    );
    assert!(c.is_closed(cons));
    assert!(c.brokers[0].channel("t", "ch").is_none());
    assert_eq!(
        admin(&mut c, 0, AdminOp::DeleteChannel(name("t"), name("ch"))),
        Err(AdminError::ChannelNotFound)
    );
    assert_eq!(
        admin(&mut c, 0, AdminOp::EmptyTopic(name("nope"))),
        Err(AdminError::TopicNotFound)
    );
    assert_eq!(
        admin(&mut c, 0, AdminOp::CreateChannel(name("nope"), name("c"))),
        Err(AdminError::TopicNotFound)
    );
    // A new channel can reuse the deleted one's slot: the closed consumer no longer points at it.
    assert_eq!(
        admin(
            &mut c,
            0,
            AdminOp::CreateChannel(name("t"), name("ch2#ephemeral"))
        ),
        Ok(())
    );
    assert!(c.brokers[0].channel("t", "ch2#ephemeral").is_some());
}

#[test]
fn delete_topic_removes_channels_and_closes_consumers() {
    let mut c = Cluster::new(2, Options::default());
    let t = topic_on(1, 2, "del");
    let cons = c.consumer(0, &t, "ch");
    assert_eq!(admin(&mut c, 0, AdminOp::DeleteTopic(name(&t))), Ok(()));
    assert!(c.is_closed(cons));
    assert!(c.brokers[1].topic(&t).is_none());
    assert_eq!(
        admin(&mut c, 0, AdminOp::DeleteTopic(name(&t))),
        Err(AdminError::TopicNotFound)
    );
}

#[test]
fn stats_gather_every_shard_sorted_with_clients_and_producers() {
    let mut c = Cluster::new(2, Options::default());
    let a = topic_on(0, 2, "stats-b");
    let b = topic_on(1, 2, "stats-a");
    let cons = c.consumer(1, &a, "zz");
    let _c2 = c.consumer(0, &a, "aa");
    let p = c.connect_v2(1);
    c.send(p, &pub_cmd(&b, b"x"));
    c.send(p, &mpub_cmd(&b, &[b"y", b"z"]));
    assert_eq!(c.frames(p), vec![ok(), ok()]);
    c.send(cons, b"RDY 3\n");

    let s = stats(&mut c, 0, all());
    let names: Vec<&str> = s.topics.iter().map(|t| t.topic_name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let ta = s.topics.iter().find(|t| t.topic_name == a).unwrap();
    let chans: Vec<&str> = ta.channels.iter().map(|c| c.channel_name.as_str()).collect();
    assert_eq!(chans, vec!["aa", "zz"]);
    assert_eq!(ta.channels[1].client_count, 1);
    assert_eq!(ta.channels[1].clients.as_ref().unwrap()[0].ready_count, 3);
    assert_eq!(ta.channels[1].clients.as_ref().unwrap()[0].state, 3);
    let tb = s.topics.iter().find(|t| t.topic_name == b).unwrap();
    assert_eq!((tb.message_count, tb.depth), (3, 3));
    assert_eq!(s.producers.len(), 1);
    assert_eq!(s.producers[0].pub_counts[0].count, 3);

    let only = stats(
        &mut c,
        1,
        StatsFilter {
            topic: Some(a.clone()),
            channel: Some("zz".into()),
            include_clients: false,
        },
    );
    assert_eq!(only.topics.len(), 1);
    assert_eq!(only.topics[0].channels.len(), 1);
    assert!(only.topics[0].channels[0].clients.is_none());
    assert!(only.producers.is_empty());

    let json = serde_json::to_string(&ta.channels[0]).unwrap();
    assert!(json.starts_with(r#"{"channel_name":"#), "{json}");
    assert!(
        json.contains(r#""e2e_processing_latency":{"count":0,"percentiles":null}}"#),
        "{json}"
    );
}

#[test]
fn e2e_latency_is_recorded_on_fin_when_configured() {
    let opts = Options {
        e2e_percentiles: vec![1.0, 0.5],
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let cons = c.consumer(0, "t", "ch");
    c.publish(0, "t", b"x");
    c.send(cons, b"RDY 1\n");
    let m = c.messages(cons).remove(0);
    c.send(cons, &fin_cmd(&m.id));
    let s = stats(&mut c, 0, all());
    let ch = &s.topics[0].channels[0].e2e_processing_latency;
    assert_eq!(ch.count, 1);
    let ps = ch.percentiles.as_ref().unwrap();
    assert_eq!(ps.iter().map(|p| p.quantile).collect::<Vec<_>>(), vec![1.0, 0.5]);
    assert!(ps[0].value > 0.0 && ps[0].value < 60e9, "{ps:?}");
    assert_eq!(s.topics[0].e2e_processing_latency.count, 1);
    // Without the flag, nsqd's shape: no count, null percentiles.
    let mut plain = Cluster::single(Options::default());
    plain.consumer(0, "t", "ch");
    let s = stats(&mut plain, 0, all());
    assert!(s.topics[0].channels[0]
        .e2e_processing_latency
        .percentiles
        .is_none());
}
