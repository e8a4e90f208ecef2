//! Claim: AUTH and the authorization check behave as nsqd's (spec §4.2): AUTH asks the auth
//! server and answers with its identity, PUB/MPUB/DPUB/SUB need an authorization that matches,
//! an expired answer is refreshed with the stored secret before the command runs, and every
//! failure is the exact fatal error. The auth server is played by the test: it reads the queries
//! the broker queues and hands back replies as the engine's auth client would.

mod common;

use common::*;
use squall_core::auth::{AuthReply, AuthRequest, AuthState};
use squall_core::broker::ShardMsg;
use squall_core::options::Options;

const GRANT: &str = r#"{"ttl":60,"identity":"alice","identity_url":"https://id/alice","authorizations":[
    {"topic":"^allowed","channels":[".*"],"permissions":["publish","subscribe"]}]}"#;

fn auth_opts() -> Options {
    Options {
        auth_enabled: true,
        ..Options::default()
    }
}

fn auth_cmd(secret: &[u8]) -> Vec<u8> {
    let mut out = b"AUTH\n".to_vec();
    out.extend_from_slice(&(secret.len() as u32).to_be_bytes());
    out.extend_from_slice(secret);
    out
}

/// The queries `shard` asked for since the last call.
fn queries(c: &mut Cluster, shard: usize) -> Vec<AuthRequest> {
    c.brokers[shard].take_auth_requests()
}

/// Answers `q` on `shard` with the server's body (`Ok`) or a failure (`Err`).
fn answer(c: &mut Cluster, shard: usize, q: &AuthRequest, body: Result<&str, &str>) {
    let now = c.now();
    let result = match body {
        Ok(body) => AuthState::parse(body.as_bytes(), now),
        Err(e) => Err(e.to_string()),
    };
    let reply = AuthReply {
        conn: q.conn,
        ticket: q.ticket,
        result,
    };
    c.brokers[shard].on_message(&mut c.nets[shard], shard, ShardMsg::Auth(Box::new(reply)));
    c.settle();
}

/// A connection on `shard` that AUTHed with `GRANT`.
fn authed(c: &mut Cluster, shard: usize) -> Client {
    authed_with(c, shard, GRANT)
}

/// `GRANT` with a one-second TTL.
const SHORT: &str = r#"{"ttl":1,"identity":"alice","identity_url":"https://id/alice","authorizations":[
    {"topic":"^allowed","channels":[".*"],"permissions":["publish","subscribe"]}]}"#;

fn authed_with(c: &mut Cluster, shard: usize, grant: &str) -> Client {
    let cl = c.connect_v2(shard);
    c.send(cl, &auth_cmd(b"s3cret"));
    let qs = queries(c, shard);
    assert_eq!(qs.len(), 1);
    answer(c, shard, &qs[0], Ok(grant));
    assert_eq!(
        c.frames(cl),
        vec![Frame::response(
            br#"{"identity":"alice","identity_url":"https://id/alice","permission_count":1}"#
        )]
    );
    cl
}

fn assert_fatal(c: &mut Cluster, cl: Client, error: &[u8]) {
    assert_eq!(c.frames(cl), vec![Frame::error(error)]);
    assert!(c.is_closed(cl), "{} is fatal", String::from_utf8_lossy(error));
}

#[test]
fn auth_without_an_auth_server_is_disabled() {
    let mut c = Cluster::single(Options::default());
    let cl = c.connect_v2(0);
    c.send(cl, &auth_cmd(b"x"));
    assert_fatal(&mut c, cl, b"E_AUTH_DISABLED AUTH disabled");
    assert!(queries(&mut c, 0).is_empty());
}

#[test]
fn commands_before_auth_need_it_first() {
    let mut c = Cluster::single(auth_opts());
    for (cmd, error) in [
        (
            pub_cmd("allowed", b"m"),
            &b"E_AUTH_FIRST AUTH required before PUB"[..],
        ),
        (
            mpub_cmd("allowed", &[b"m"]),
            b"E_AUTH_FIRST AUTH required before MPUB",
        ),
        (
            dpub_cmd("allowed", 10, b"m"),
            b"E_AUTH_FIRST AUTH required before DPUB",
        ),
        (sub_cmd("allowed", "c"), b"E_AUTH_FIRST AUTH required before SUB"),
    ] {
        let cl = c.connect_v2(0);
        c.send(cl, &cmd);
        assert_fatal(&mut c, cl, error);
    }
    // NOP, IDENTIFY and the rest need no auth.
    let cl = c.connect_v2(0);
    c.send(cl, b"NOP\n");
    c.send(cl, &identify_cmd(r#"{"feature_negotiation":true}"#));
    let frames = c.frames(cl);
    assert_eq!(frames.len(), 1);
    let Frame::Response(json) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert!(String::from_utf8_lossy(json).contains(r#""auth_required":true"#));
}

#[test]
fn auth_sends_the_secret_and_answers_with_the_identity() {
    let mut c = Cluster::single(auth_opts());
    let cl = c.connect_v2(0);
    c.send(cl, &auth_cmd(b"s3cret"));
    assert!(c.frames(cl).is_empty(), "nothing until the auth server answers");
    let qs = queries(&mut c, 0);
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0].secret, b"s3cret");
    assert!(!qs[0].tls);
    assert_eq!(
        qs[0].query_string(),
        "common_name=&remote_ip=&secret=s3cret&tls=false"
    );
    answer(&mut c, 0, &qs[0], Ok(GRANT));
    assert_eq!(
        c.frames(cl),
        vec![Frame::response(
            br#"{"identity":"alice","identity_url":"https://id/alice","permission_count":1}"#
        )]
    );

    c.send(cl, &pub_cmd("allowed_t", b"m"));
    c.send(cl, &mpub_cmd("allowed_t", &[b"a", b"b"]));
    c.send(cl, &dpub_cmd("allowed_t", 5, b"d"));
    assert_eq!(c.frames(cl), vec![ok(), ok(), ok()]);
    assert_eq!(c.brokers[0].topic("allowed_t").unwrap().depth(), 4);
    assert!(
        queries(&mut c, 0).is_empty(),
        "a fresh answer is not asked for again"
    );

    c.send(cl, &auth_cmd(b"again"));
    assert_fatal(&mut c, cl, b"E_INVALID AUTH already set");
}

#[test]
fn a_command_outside_the_authorizations_is_unauthorized() {
    let mut c = Cluster::single(auth_opts());
    let cl = authed(&mut c, 0);
    c.send(cl, &pub_cmd("other", b"m"));
    assert_fatal(&mut c, cl, br#"E_UNAUTHORIZED AUTH failed for PUB on "other" """#);
    assert!(c.brokers[0].topic("other").is_none(), "nothing was published");

    let cl = authed(&mut c, 0);
    c.send(cl, &sub_cmd("other", "ch"));
    assert_fatal(
        &mut c,
        cl,
        br#"E_UNAUTHORIZED AUTH failed for SUB on "other" "ch""#,
    );
}

#[test]
fn failed_and_empty_answers_are_fatal() {
    let mut c = Cluster::single(auth_opts());
    let cl = c.connect_v2(0);
    c.send(cl, &auth_cmd(b"s"));
    let q = queries(&mut c, 0).remove(0);
    answer(&mut c, 0, &q, Err("connection refused"));
    assert_fatal(&mut c, cl, b"E_AUTH_FAILED AUTH failed");

    let cl = c.connect_v2(0);
    c.send(cl, &auth_cmd(b"s"));
    let q = queries(&mut c, 0).remove(0);
    answer(
        &mut c,
        0,
        &q,
        Ok(r#"{"ttl":60,"identity":"nobody","authorizations":[]}"#),
    );
    assert_fatal(&mut c, cl, b"E_UNAUTHORIZED AUTH no authorizations found");

    // An answer nsqd would refuse (unknown permission) is a failed query.
    let cl = c.connect_v2(0);
    c.send(cl, &auth_cmd(b"s"));
    let q = queries(&mut c, 0).remove(0);
    let bad = r#"{"ttl":60,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["admin"]}]}"#;
    answer(&mut c, 0, &q, Ok(bad));
    assert_fatal(&mut c, cl, b"E_AUTH_FAILED AUTH failed");
}

#[test]
fn an_expired_answer_is_refreshed_before_the_command_runs() {
    let mut c = Cluster::single(auth_opts());
    let cl = authed_with(&mut c, 0, SHORT);
    c.advance_ms(1_001);
    c.send(cl, &pub_cmd("allowed_t", b"late"));
    assert!(c.frames(cl).is_empty(), "the PUB waits for the refresh");
    assert!(c.brokers[0].topic("allowed_t").is_none());
    let qs = queries(&mut c, 0);
    assert_eq!(qs.len(), 1, "one refresh");
    assert_eq!(qs[0].secret, b"s3cret", "with the stored secret");
    answer(&mut c, 0, &qs[0], Ok(SHORT));
    assert_eq!(c.frames(cl), vec![ok()]);
    assert_eq!(c.brokers[0].topic("allowed_t").unwrap().depth(), 1);

    // A refresh that no longer allows the command, and one that fails.
    c.advance_ms(1_001);
    c.send(cl, &pub_cmd("allowed_t", b"m"));
    let q = queries(&mut c, 0).remove(0);
    answer(&mut c, 0, &q, Ok(r#"{"ttl":60,"authorizations":[]}"#));
    assert_fatal(
        &mut c,
        cl,
        br#"E_UNAUTHORIZED AUTH failed for PUB on "allowed_t" """#,
    );

    let cl = authed_with(&mut c, 0, SHORT);
    c.advance_ms(1_001);
    c.send(cl, &sub_cmd("allowed_t", "c"));
    let q = queries(&mut c, 0).remove(0);
    answer(&mut c, 0, &q, Err("timeout"));
    assert_fatal(&mut c, cl, b"E_AUTH_FAILED AUTH failed");
}

#[test]
fn a_late_reply_for_a_closed_connection_is_ignored() {
    let mut c = Cluster::single(auth_opts());
    let cl = c.connect_v2(0);
    c.send(cl, &auth_cmd(b"s"));
    let q = queries(&mut c, 0).remove(0);
    c.disconnect(cl);
    let other = c.connect_v2(0);
    answer(&mut c, 0, &q, Ok(GRANT));
    assert!(c.frames(other).is_empty());
    assert!(!c.is_closed(other));
}

#[test]
fn authorized_sub_migrates_and_publishes_answer_in_order() {
    let shards = 2;
    let mut c = Cluster::new(shards, auth_opts());
    // SUB to a topic owned by the other shard: checked here, then the connection moves.
    let remote_topic = topic_on(1, shards, "allowed_r");
    let cl = authed(&mut c, 0);
    c.send(cl, &sub_cmd(&remote_topic, "ch"));
    assert_eq!(c.frames(cl), vec![ok()]);
    assert_eq!(c.shard_of(cl), 1);

    // A forwarded PUB, then a denied one: the OK comes first, then the error.
    let p = authed(&mut c, 0);
    let mut both = pub_cmd(&remote_topic, b"m");
    both.extend(pub_cmd("denied", b"m"));
    c.send(p, &both);
    assert_eq!(
        c.frames(p),
        vec![
            ok(),
            Frame::error(br#"E_UNAUTHORIZED AUTH failed for PUB on "denied" """#)
        ]
    );
    assert!(c.is_closed(p));
    c.send(cl, b"RDY 1\n");
    assert_eq!(c.messages(cl).len(), 1);
}
