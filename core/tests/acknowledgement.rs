//! Claim: FIN, REQ and TOUCH act only on a message in flight to the connection that sends them and
//! fail otherwise with a non-fatal error naming the ID; an unacknowledged message times out back to
//! its channel with its attempts kept; REQ with a delay and DPUB wait in the deferred queue until
//! exactly their due time, DPUB's clock starting at fan-out; TOUCH never extends past
//! `--max-msg-timeout` (spec §4.6, §4.8-§4.10, §5.3-§5.5, §6.5, §11.1 items 14, 15, 29, 31).

mod common;

use common::*;
use squall_core::options::Options;

fn error_frame(text: &[u8]) -> Vec<u8> {
    let mut out = ((text.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(text);
    out
}

fn failure(code: &str, verb: &str, id: &[u8; 16], reason: &str) -> Vec<u8> {
    let mut text = format!("{code} {verb} ").into_bytes();
    text.extend_from_slice(id);
    text.extend_from_slice(format!(" failed {reason}").as_bytes());
    error_frame(&text)
}

/// A consumer at `RDY 1` on t/c and one message delivered to it now (at RDY 1 the delivery is
/// flushed at once).
fn delivered(c: &mut Cluster) -> (Client, Msg) {
    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 1\n");
    c.publish(0, "t", b"payload");
    let mut got = c.messages(cl);
    assert_eq!(got.len(), 1);
    (cl, got.remove(0))
}

#[test]
fn fin_succeeds_silently_then_fin_req_touch_fail_not_in_flight_without_closing() {
    let mut c = Cluster::single(Options::default());
    let (cl, m) = delivered(&mut c);
    c.send(cl, &fin_cmd(&m.id));
    assert_eq!(c.take_bytes(cl), b"");
    let s = c.brokers[0].session(c.conn(cl)).unwrap();
    assert_eq!((s.in_flight, s.finish_count), (0, 1));

    c.send(cl, &fin_cmd(&m.id));
    assert_eq!(
        c.take_bytes(cl),
        failure("E_FIN_FAILED", "FIN", &m.id, "ID not in flight")
    );
    c.send(cl, &req_cmd(&m.id, 0));
    assert_eq!(
        c.take_bytes(cl),
        failure("E_REQ_FAILED", "REQ", &m.id, "ID not in flight")
    );
    c.send(cl, &touch_cmd(&m.id));
    assert_eq!(
        c.take_bytes(cl),
        failure("E_TOUCH_FAILED", "TOUCH", &m.id, "ID not in flight")
    );
    assert!(!c.is_closed(cl));

    // Still a working consumer.
    c.publish(0, "t", b"next");
    assert_eq!(c.messages(cl)[0].body, b"next");
}

#[test]
fn only_the_owner_may_fin_req_or_touch() {
    let mut c = Cluster::single(Options::default());
    let a = c.consumer(0, "t", "c");
    let b = c.consumer(0, "t", "c");
    c.send(a, b"RDY 1\n");
    c.send(b, b"RDY 1\n");
    c.publish(0, "t", b"1");
    c.publish(0, "t", b"2");
    let ma = c.messages(a).remove(0);
    let mb = c.messages(b).remove(0);

    c.send(b, &fin_cmd(&ma.id));
    c.send(b, &req_cmd(&ma.id, 0));
    c.send(b, &touch_cmd(&ma.id));
    let reason = "client does not own message";
    let want = [
        failure("E_FIN_FAILED", "FIN", &ma.id, reason),
        failure("E_REQ_FAILED", "REQ", &ma.id, reason),
        failure("E_TOUCH_FAILED", "TOUCH", &ma.id, reason),
    ]
    .concat();
    assert_eq!(c.take_bytes(b), want);
    assert!(!c.is_closed(b));
    assert_eq!(
        c.brokers[0].session(c.conn(b)).unwrap().in_flight,
        1,
        "failures change nothing"
    );

    c.send(a, &fin_cmd(&ma.id));
    c.send(b, &fin_cmd(&mb.id));
    assert_eq!(c.take_bytes(a), b"");
    assert_eq!(c.take_bytes(b), b"");
    assert!(c.brokers[0].channel("t", "c").unwrap().in_flight.is_empty());
}

/// nsqd's TestClientMsgTimeout.
#[test]
fn unacknowledged_message_times_out_with_attempts_kept() {
    let opts = Options {
        msg_timeout_ms: 1000,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let (cl, m) = delivered(&mut c);
    assert_eq!(m.attempts, 1);
    c.send(cl, b"RDY 0\n");
    c.advance_ms(999);
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.timeout_count, ch.in_flight.len()), (0, 1));
    c.advance_ms(1);
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.timeout_count, ch.requeue_count, ch.depth()), (1, 0, 1));
    assert_eq!(c.brokers[0].session(c.conn(cl)).unwrap().in_flight, 0);

    c.send(cl, &fin_cmd(&m.id));
    assert_eq!(
        c.take_bytes(cl),
        failure("E_FIN_FAILED", "FIN", &m.id, "ID not in flight")
    );

    c.send(cl, b"RDY 1\n");
    let again = c.messages(cl);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id, again[0].attempts, &again[0].body),
        (m.id, 2, &m.body)
    );
    assert_eq!(again[0].timestamp_ns, m.timestamp_ns);
}

#[test]
fn in_flight_of_a_closed_consumer_waits_for_its_timeout() {
    let opts = Options {
        msg_timeout_ms: 1000,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let (a, m) = delivered(&mut c);
    let b = c.consumer(0, "t", "c");
    c.send(b, b"RDY 1\n");
    c.disconnect(a);
    c.advance_ms(999);
    assert!(c.messages(b).is_empty(), "not requeued on disconnect (spec §5.8)");
    c.advance_ms(1);
    let got = c.messages(b);
    assert_eq!((got[0].id, got[0].attempts), (m.id, 2));
}

#[test]
fn req_zero_requeues_at_once() {
    let mut c = Cluster::single(Options::default());
    let (cl, m) = delivered(&mut c);
    c.send(cl, &req_cmd(&m.id, 0));
    let again = c.messages(cl);
    assert_eq!((again[0].id, again[0].attempts), (m.id, 2));
    let s = c.brokers[0].session(c.conn(cl)).unwrap();
    assert_eq!((s.in_flight, s.requeue_count), (1, 1));
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().requeue_count, 1);
}

#[test]
fn req_with_delay_is_deferred_until_exactly_its_due_time() {
    let mut c = Cluster::single(Options::default());
    let (cl, m) = delivered(&mut c);
    c.send(cl, &req_cmd(&m.id, 500));
    assert_eq!(c.take_bytes(cl), b"");
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.deferred.len(), ch.in_flight.len(), ch.depth()), (1, 0, 0));
    c.advance_ms(499);
    assert!(c.messages(cl).is_empty());
    c.advance_ms(1);
    let again = c.messages(cl);
    assert_eq!((again[0].id, again[0].attempts), (m.id, 2));
    assert!(c.brokers[0].channel("t", "c").unwrap().deferred.is_empty());
}

/// nsqd's TestReqTimeoutRange, second half: the delay is clamped to `--max-req-timeout`.
#[test]
fn req_delay_is_clamped_to_max_req_timeout() {
    let opts = Options {
        max_req_timeout_ms: 60_000,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let (cl, m) = delivered(&mut c);
    c.send(cl, &req_cmd(&m.id, 120_000));
    assert_eq!(c.take_bytes(cl), b"");
    let due: Vec<_> = c.brokers[0]
        .channel("t", "c")
        .unwrap()
        .deferred
        .iter()
        .map(|(_, due)| due)
        .collect();
    assert_eq!(due, vec![c.now() + std::time::Duration::from_millis(60_000)]);
    c.advance_ms(59_999);
    assert!(c.frames(cl).iter().all(|f| !matches!(f, Frame::Message(_))));
    c.advance_ms(1);
    let msgs: Vec<Frame> = c
        .frames(cl)
        .into_iter()
        .filter(|f| matches!(f, Frame::Message(_)))
        .collect();
    assert_eq!(msgs.len(), 1);
}

#[test]
fn dpub_defer_starts_when_the_message_reaches_the_channel() {
    let mut c = Cluster::single(Options::default());
    let p = c.connect_v2(0);
    c.send(p, &dpub_cmd("t", 1000, b"later"));
    assert_eq!(c.take_bytes(p), OK);
    assert_eq!(c.brokers[0].topic("t").unwrap().depth(), 1);
    c.advance_ms(5000); // no channel yet: the clock has not started

    let cl = c.consumer(0, "t", "c");
    c.send(cl, b"RDY 1\n");
    let ch = c.brokers[0].channel("t", "c").unwrap();
    assert_eq!((ch.deferred.len(), ch.message_count, ch.depth()), (1, 1, 0));
    c.advance_ms(999);
    assert!(c.frames(cl).iter().all(|f| !matches!(f, Frame::Message(_))));
    c.advance_ms(1);
    let got: Vec<Msg> = c
        .frames(cl)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].body.as_slice(), got[0].attempts), (&b"later"[..], 1));
}

/// nsqd's TestDPUB.
#[test]
fn dpub_to_a_flowing_topic_is_deferred_in_each_channel() {
    let mut c = Cluster::single(Options::default());
    let a = c.consumer(0, "t", "a");
    let b = c.consumer(0, "t", "b");
    c.send(a, b"RDY 1\n");
    c.send(b, b"RDY 1\n");
    let p = c.connect_v2(0);
    c.send(p, &dpub_cmd("t", 1000, b"d"));
    assert_eq!(c.take_bytes(p), OK);
    c.advance_ms(25);
    for ch in ["a", "b"] {
        let ch = c.brokers[0].channel("t", ch).unwrap();
        assert_eq!((ch.deferred.len(), ch.message_count, ch.depth()), (1, 1, 0));
    }
    c.advance_ms(974);
    assert!(c.messages(a).is_empty() && c.messages(b).is_empty());
    c.advance_ms(1);
    let (ma, mb) = (c.messages(a), c.messages(b));
    assert_eq!((ma.len(), mb.len()), (1, 1));
    assert_eq!(ma[0].id, mb[0].id);
}

/// nsqd's TestTouch.
#[test]
fn touch_moves_the_deadline() {
    let opts = Options {
        msg_timeout_ms: 1000,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let (cl, m) = delivered(&mut c);
    c.advance_ms(500);
    c.send(cl, &touch_cmd(&m.id));
    assert_eq!(c.take_bytes(cl), b"");
    c.advance_ms(999);
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().timeout_count, 0);
    c.send(cl, &fin_cmd(&m.id));
    assert_eq!(c.take_bytes(cl), b"");
    c.advance_ms(5000);
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().timeout_count, 0);
}

#[test]
fn touch_is_capped_at_max_msg_timeout_after_delivery() {
    let opts = Options {
        msg_timeout_ms: 1000,
        max_msg_timeout_ms: 1500,
        ..Options::default()
    };
    let mut c = Cluster::single(opts);
    let (cl, m) = delivered(&mut c);
    c.advance_ms(800);
    c.send(cl, &touch_cmd(&m.id));
    c.advance_ms(600);
    c.send(cl, &touch_cmd(&m.id));
    assert_eq!(c.take_bytes(cl), b"", "TOUCH never errors because of the cap");
    c.advance_ms(99);
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().timeout_count, 0);
    c.advance_ms(1); // delivery + 1500
    assert_eq!(c.brokers[0].channel("t", "c").unwrap().timeout_count, 1);
    let again = c.messages(cl);
    assert_eq!((again[0].id, again[0].attempts), (m.id, 2));
}
