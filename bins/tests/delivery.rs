//! Messages reach consumers as nsqd delivers them: fan-out to every channel, one consumer per
//! message within a channel, RDY as a window, attempts, requeue, deferral, timeouts, TOUCH, CLS.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use squall_core::options::Options;

#[test]
fn message_published_before_subscribe_is_delivered() {
    let n = TestNode::start(Options::default());
    let mut p = n.client();
    p.publish("basic", b"hello");
    p.expect_ok();
    let mut c = n.client();
    c.identify(r#"{"client_id":"t"}"#);
    c.expect_ok();
    c.sub("basic", "ch");
    c.cmd("RDY 1");
    let m = c.read_message();
    assert_eq!(m.body, b"hello");
    assert_eq!(m.attempts, 1);
    assert!(m.id.iter().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn every_channel_gets_a_copy_with_the_same_id() {
    let n = TestNode::start(Options::default());
    let mut c1 = n.client();
    c1.sub("fanout", "ch1");
    let mut c2 = n.client();
    c2.sub("fanout", "ch2");
    c1.cmd("RDY 1");
    c2.cmd("RDY 1");
    let mut p = n.client();
    p.publish("fanout", b"copy");
    p.expect_ok();
    let (m1, m2) = (c1.read_message(), c2.read_message());
    assert_eq!(m1, m2);
    assert_eq!(m1.attempts, 1);
}

#[test]
fn rdy_is_a_window_of_unacknowledged_messages() {
    let n = TestNode::start(Options::default());
    let mut p = n.client();
    for i in 0..5 {
        p.publish("window", format!("m{i}").as_bytes());
        p.expect_ok();
    }
    let mut c = n.client();
    c.sub("window", "ch");
    c.cmd("RDY 2");
    let a = c.read_message();
    let _b = c.read_message();
    c.expect_silence(Duration::from_millis(150));
    c.fin(&a.id);
    let third = c.read_message();
    assert_eq!(third.body, b"m2");
    c.expect_silence(Duration::from_millis(100));
    c.cmd("RDY 0");
    c.fin(&third.id);
    c.expect_silence(Duration::from_millis(100));
}

#[test]
fn consumers_of_a_channel_share_its_messages_fairly_without_duplicates() {
    let n = TestNode::start(Options::default());
    let mut consumers: Vec<Client> = (0..3).map(|_| n.client()).collect();
    for c in &mut consumers {
        c.sub("fair", "ch");
        c.cmd("RDY 100");
    }
    let mut p = n.client();
    let bodies: Vec<Vec<u8>> = (0..300).map(|i| format!("{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    p.mpub("fair", &refs);
    p.expect_ok();
    let mut seen = HashSet::new();
    for c in &mut consumers {
        for _ in 0..100 {
            let m = c.read_message();
            assert!(seen.insert(m.body.clone()), "duplicate");
            c.fin(&m.id);
        }
    }
    assert_eq!(seen.len(), 300);
}

#[test]
fn requeue_redelivers_with_more_attempts() {
    let n = TestNode::start(Options::default());
    let mut p = n.client();
    p.publish("requeue", b"again");
    p.expect_ok();
    let mut c = n.client();
    c.sub("requeue", "ch");
    c.cmd("RDY 1");
    let m = c.read_message();
    let mut line = b"REQ ".to_vec();
    line.extend_from_slice(&m.id);
    line.extend_from_slice(b" 0\n");
    c.send(&line);
    let again = c.read_message();
    assert_eq!(again.id, m.id);
    assert_eq!(again.attempts, 2);
}

#[test]
fn req_with_delay_waits_and_is_clamped_to_max_req_timeout() {
    let opts = Options {
        max_req_timeout_ms: 300,
        ..Options::default()
    };
    let n = TestNode::start(opts);
    let mut p = n.client();
    p.publish("reqdelay", b"later");
    p.expect_ok();
    let mut c = n.client();
    c.sub("reqdelay", "ch");
    c.cmd("RDY 1");
    let m = c.read_message();
    let started = Instant::now();
    let mut line = b"REQ ".to_vec();
    line.extend_from_slice(&m.id);
    line.extend_from_slice(b" 120000\n");
    c.send(&line);
    let again = c.read_message();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290),
        "redelivered after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "clamp to 300 ms not applied: {waited:?}"
    );
    assert_eq!(again.attempts, 2);
}

#[test]
fn dpub_is_deferred() {
    let n = TestNode::start(Options::default());
    let mut c = n.client();
    c.sub("deferred", "ch");
    c.cmd("RDY 1");
    let mut p = n.client();
    let started = Instant::now();
    p.send_with_body("DPUB deferred 300", b"soon");
    p.expect_ok();
    let m = c.read_message();
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(m.body, b"soon");
}

#[test]
fn in_flight_timeout_requeues_and_late_fin_fails() {
    let n = TestNode::start(Options::default());
    let mut p = n.client();
    p.publish("timeout", b"slow");
    p.expect_ok();
    let mut c = n.client();
    c.identify(r#"{"msg_timeout":1000}"#);
    c.expect_ok();
    c.sub("timeout", "ch");
    c.cmd("RDY 1");
    let m = c.read_message();
    c.cmd("RDY 0");
    std::thread::sleep(Duration::from_millis(1150));
    c.fin(&m.id);
    let id = String::from_utf8(m.id.to_vec()).unwrap();
    c.expect_error(&format!("E_FIN_FAILED FIN {id} failed ID not in flight"));
    c.cmd("RDY 1");
    let again = c.read_message();
    assert_eq!(again.id, m.id);
    assert_eq!(again.attempts, 2);
}

#[test]
fn touch_extends_the_deadline() {
    let n = TestNode::start(Options::default());
    let mut p = n.client();
    p.publish("touch", b"t");
    p.expect_ok();
    let mut c = n.client();
    c.identify(r#"{"msg_timeout":1000}"#);
    c.expect_ok();
    c.sub("touch", "ch");
    c.cmd("RDY 1");
    let m = c.read_message();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        let mut line = b"TOUCH ".to_vec();
        line.extend_from_slice(&m.id);
        line.push(b'\n');
        c.send(&line);
    }
    // 1.5 s after delivery, still in flight thanks to TOUCH: FIN succeeds (no error frame).
    c.fin(&m.id);
    c.cmd("RDY 1");
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn cls_answers_close_wait_and_stops_deliveries() {
    let n = TestNode::start(Options::default());
    let mut c = n.client();
    c.sub("cls", "ch");
    c.cmd("CLS");
    c.expect_response(b"CLOSE_WAIT");
    c.cmd("RDY 5"); // ignored while closing
    let mut p = n.client();
    p.publish("cls", b"not for you");
    p.expect_ok();
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn max_channel_consumers_is_enforced() {
    let opts = Options {
        max_channel_consumers: 1,
        ..Options::default()
    };
    let n = TestNode::start(opts);
    let mut a = n.client();
    a.sub("maxc", "ch");
    let mut b = n.client();
    b.cmd("SUB maxc ch");
    b.expect_error("E_SUB_FAILED SUB failed consumers for maxc:ch exceeds limit of 1");
    b.expect_closed();
}

#[test]
fn full_memory_queue_refuses_publish_until_disk_queues_exist() {
    let opts = Options {
        mem_queue_size: 3,
        ..Options::default()
    };
    let n = TestNode::start(opts);
    let mut p = n.client();
    for _ in 0..3 {
        p.publish("full", b"x");
        p.expect_ok();
    }
    p.publish("full", b"x");
    let (ft, data) = p.read_frame();
    assert_eq!(ft, FRAME_ERROR);
    assert!(
        data.starts_with(b"E_PUB_FAILED PUB failed "),
        "{}",
        String::from_utf8_lossy(&data)
    );
    p.expect_closed();
    // An ephemeral topic drops overflow silently, as nsqd does.
    let mut p = n.client();
    for _ in 0..5 {
        p.publish("full#ephemeral", b"x");
        p.expect_ok();
    }
}

#[test]
fn sampling_delivers_about_the_sample_rate() {
    let n = TestNode::start(Options::default());
    let mut p = n.client();
    let bodies: Vec<Vec<u8>> = (0..2000).map(|i| format!("{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    p.mpub("sampled", &refs);
    p.expect_ok();
    let mut c = n.client();
    c.identify(r#"{"sample_rate":42,"feature_negotiation":true}"#);
    let (_, json) = c.read_frame();
    assert!(String::from_utf8(json).unwrap().contains("\"sample_rate\":42"));
    c.sub("sampled", "ch");
    c.cmd("RDY 2500");
    let mut got = 0;
    loop {
        c.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut head = [0u8; 4];
        if std::io::Read::read_exact(&mut c.stream, &mut head).is_err() {
            break;
        }
        let mut rest = vec![0u8; u32::from_be_bytes(head) as usize];
        std::io::Read::read_exact(&mut c.stream, &mut rest).unwrap();
        if i32::from_be_bytes(rest[..4].try_into().unwrap()) == FRAME_MESSAGE {
            got += 1;
        }
    }
    let ratio = got as f64 / 2000.0;
    assert!((0.37..=0.49).contains(&ratio), "delivered {got} of 2000");
}

#[test]
fn output_buffer_timeout_holds_messages_while_the_client_can_take_more() {
    let n = TestNode::start(Options {
        max_output_buffer_size: 512 * 1024,
        max_output_buffer_timeout_ms: 1000,
        ..Options::default()
    });
    let mut c = n.client();
    let identified = Instant::now();
    c.identify(r#"{"output_buffer_size":262144,"output_buffer_timeout":500}"#);
    c.expect_ok();
    c.sub("obuf", "ch");
    c.cmd("RDY 10");
    let mut p = n.client();
    p.publish("obuf", &vec![b'z'; 1000]);
    p.expect_ok();
    let m = c.read_message();
    assert_eq!(m.body.len(), 1000);
    assert!(
        identified.elapsed() >= Duration::from_millis(490),
        "arrived after {:?}",
        identified.elapsed()
    );
}

#[test]
fn output_buffer_idle_flush_sends_held_messages_once_the_shard_is_idle() {
    // A 30 s flush timer that the deliveries must not wait for (each read gives up after 5 s):
    // the shard goes idle right after each publish, and with --output-buffer-idle-flush that is
    // when buffered deliveries leave.
    let n = TestNode::start(Options {
        max_output_buffer_size: 512 * 1024,
        max_output_buffer_timeout_ms: 30_000,
        output_buffer_idle_flush: true,
        ..Options::default()
    });
    let mut c = n.client();
    c.identify(r#"{"output_buffer_size":262144,"output_buffer_timeout":30000}"#);
    c.expect_ok();
    c.sub("idleflush", "ch");
    c.cmd("RDY 10");
    let mut p = n.client();
    for i in 0..3u8 {
        p.publish("idleflush", &[i; 100]);
        p.expect_ok();
    }
    for i in 0..3u8 {
        assert_eq!(c.read_message().body, vec![i; 100]);
    }
}

#[test]
fn message_ids_are_unique_across_shards() {
    let n = TestNode::start(Options::default());
    let topics = [topic_on_shard("ids", 0, 2), topic_on_shard("ids", 1, 2)];
    let mut p = n.client();
    let body = [b'i'; 10];
    let batch: Vec<&[u8]> = vec![&body; 200];
    for t in &topics {
        p.mpub(t, &batch);
        p.expect_ok();
    }
    let mut ids = HashSet::new();
    for t in &topics {
        let mut c = n.client();
        c.sub(t, "ch");
        c.cmd("RDY 200");
        for _ in 0..200 {
            assert!(ids.insert(c.read_message().id));
        }
    }
    assert_eq!(ids.len(), 400);
}

#[test]
fn ephemeral_channel_goes_away_with_its_last_consumer() {
    let n = TestNode::start(Options::default());
    let mut c = n.client();
    c.sub("eph", "ch#ephemeral");
    drop(c);
    std::thread::sleep(Duration::from_millis(100));
    // With the channel gone, a message waits in the topic and a new ephemeral channel's first
    // consumer receives it (had the old channel survived, it would hold the message instead).
    let mut p = n.client();
    p.publish("eph", b"after");
    p.expect_ok();
    let mut c = n.client();
    c.sub("eph", "other#ephemeral");
    c.cmd("RDY 1");
    assert_eq!(c.read_message().body, b"after");
}
