//! Every endpoint's status, headers and exact JSON.

use std::time::Duration;

use super::*;
use crate::httpd::{parse_request, Limits};
use crate::lookupd::peer::PeerInfo;

struct Fixture {
    http: LookupdHttp,
    db: RegistrationDb,
    options: LookupdOptions,
    clock: Clock,
}

fn peer(remote: &str, bcast: &str, http_port: i64) -> PeerInfo {
    PeerInfo {
        remote_address: remote.into(),
        hostname: format!("{bcast}-host"),
        broadcast_address: bcast.into(),
        tcp_port: http_port - 1,
        http_port,
        version: "1.3.0".into(),
        ..PeerInfo::default()
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            http: LookupdHttp::new(),
            db: RegistrationDb::new(),
            options: LookupdOptions::default(),
            clock: Clock::system(),
        }
    }

    /// An nsqd at `remote` registered for `topic` (and `channel`).
    fn register(&mut self, remote: &str, bcast: &str, http_port: i64, topic: &str, channel: Option<&str>) {
        if self.db.peer(remote).is_none() {
            self.db
                .identify(remote, peer(remote, bcast, http_port), self.clock);
        }
        if let Some(c) = channel {
            self.db.add_producer(Registration::channel(topic, c), remote);
        }
        self.db.add_producer(Registration::topic(topic), remote);
    }

    fn request(&mut self, method: &str, target: &str) -> Response {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (req, _) = parse_request(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        self.http.handle(&req, &mut self.db, &self.options, self.clock)
    }

    fn get(&mut self, target: &str) -> (u16, String) {
        let r = self.request("GET", target);
        (r.status, String::from_utf8(r.body.to_vec()).unwrap())
    }

    fn post(&mut self, target: &str) -> (u16, String) {
        let r = self.request("POST", target);
        (r.status, String::from_utf8(r.body.to_vec()).unwrap())
    }
}

fn ok(body: &str) -> (u16, String) {
    (200, body.to_string())
}

fn err(status: u16, message: &str) -> (u16, String) {
    (status, format!("{{\"message\":\"{message}\"}}"))
}

#[test]
fn ping_is_plain_text() {
    let mut f = Fixture::new();
    let r = f.request("GET", "/ping");
    assert_eq!((r.status, &r.body[..]), (200, &b"OK"[..]));
    assert!(
        r.headers.is_empty(),
        "no JSON, no X-Nsq-Content-Type: {:?}",
        r.headers
    );
}

#[test]
fn info_and_v1_headers() {
    let mut f = Fixture::new();
    let r = f.request("GET", "/info");
    assert_eq!(&r.body[..], br#"{"version":"1.3.0"}"#);
    assert_eq!(r.header("Content-Type"), Some("application/json; charset=utf-8"));
    assert_eq!(r.header("X-NSQ-Content-Type"), Some("nsq; version=1.0"));
}

#[test]
fn routing_errors() {
    let mut f = Fixture::new();
    assert_eq!(f.get("/nope"), err(404, "NOT_FOUND"));
    assert_eq!(f.get("/create_topic?topic=t"), err(404, "NOT_FOUND"));
    let r = f.request("POST", "/ping");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, OPTIONS")));
    assert_eq!(&r.body[..], br#"{"message":"METHOD_NOT_ALLOWED"}"#);
    let r = f.request("GET", "/topic/create");
    assert_eq!((r.status, r.header("Allow")), (405, Some("OPTIONS, POST")));
    let r = f.request("OPTIONS", "/lookup");
    assert_eq!(
        (r.status, r.header("Allow"), r.body.len()),
        (200, Some("GET, OPTIONS"), 0)
    );
    let r = f.request("GET", "/lookup/?topic=t");
    assert_eq!((r.status, r.header("Location")), (301, Some("/lookup?topic=t")));
    let r = f.request("POST", "/Topic/Create?topic=t");
    assert_eq!(
        (r.status, r.header("Location")),
        (307, Some("/topic/create?topic=t"))
    );
}

#[test]
fn empty_lists_are_arrays_not_null() {
    let mut f = Fixture::new();
    assert_eq!(f.get("/topics"), ok(r#"{"topics":[]}"#));
    assert_eq!(f.get("/channels?topic=t"), ok(r#"{"channels":[]}"#));
    assert_eq!(f.get("/nodes"), ok(r#"{"producers":[]}"#));
    assert_eq!(f.get("/debug"), ok("{}"));
}

#[test]
fn parameter_errors() {
    let mut f = Fixture::new();
    for path in ["/lookup", "/channels"] {
        assert_eq!(f.get(path), err(400, "MISSING_ARG_TOPIC"));
        assert_eq!(f.get(&format!("{path}?topic=%zz")), err(400, "INVALID_REQUEST"));
        assert_eq!(f.get(&format!("{path}?x=1;y=2")), err(400, "INVALID_REQUEST"));
    }
    assert_eq!(f.get("/lookup?topic=t"), err(404, "TOPIC_NOT_FOUND"));
    assert_eq!(f.post("/topic/create"), err(400, "MISSING_ARG_TOPIC"));
    assert_eq!(f.post("/topic/create?topic=a:b"), err(400, "INVALID_ARG_TOPIC"));
    assert_eq!(f.post("/topic/delete"), err(400, "MISSING_ARG_TOPIC"));
    assert_eq!(f.post("/channel/create?channel=c"), err(400, "MISSING_ARG_TOPIC"));
    assert_eq!(
        f.post("/channel/create?topic=t!&channel=c"),
        err(400, "INVALID_ARG_TOPIC")
    );
    assert_eq!(f.post("/channel/create?topic=t"), err(400, "MISSING_ARG_CHANNEL"));
    assert_eq!(
        f.post("/channel/create?topic=t&channel="),
        err(400, "INVALID_ARG_CHANNEL")
    );
    assert_eq!(
        f.post("/channel/delete?topic=t&channel=c"),
        err(404, "CHANNEL_NOT_FOUND")
    );
    assert_eq!(f.post("/channel/delete?topic=t"), err(400, "MISSING_ARG_CHANNEL"));
    assert_eq!(f.post("/topic/tombstone?node=h:1"), err(400, "MISSING_ARG_TOPIC"));
    assert_eq!(f.post("/topic/tombstone?topic=t"), err(400, "MISSING_ARG_NODE"));
    assert_eq!(f.post("/topic/create?bad=%"), err(400, "INVALID_REQUEST"));
}

#[test]
fn create_and_delete() {
    let mut f = Fixture::new();
    let r = f.request("POST", "/topic/create?topic=t");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("Content-Type"), None);
    assert_eq!(r.header("X-Nsq-Content-Type"), Some("nsq; version=1.0"));
    assert_eq!(f.get("/lookup?topic=t"), ok(r#"{"channels":[],"producers":[]}"#));
    assert_eq!(f.post("/channel/create?topic=u&channel=c"), ok(""));
    assert_eq!(f.get("/topics"), ok(r#"{"topics":["t","u"]}"#));
    assert_eq!(f.get("/channels?topic=u"), ok(r#"{"channels":["c"]}"#));
    assert_eq!(f.post("/channel/delete?topic=u&channel=c"), ok(""));
    assert_eq!(f.get("/channels?topic=u"), ok(r#"{"channels":[]}"#));
    assert_eq!(f.post("/channel/create?topic=u&channel=d"), ok(""));
    assert_eq!(f.post("/topic/delete?topic=u"), ok(""));
    assert_eq!(f.post("/topic/delete?topic=not:valid"), ok(""));
    assert_eq!(f.get("/topics"), ok(r#"{"topics":["t"]}"#));
    assert_eq!(f.get("/channels?topic=u"), ok(r#"{"channels":[]}"#));
    assert_eq!(f.get("/lookup?topic=u"), err(404, "TOPIC_NOT_FOUND"));
}

const PEER_A: &str = r#"{"remote_address":"127.0.0.1:1001","hostname":"a-host","broadcast_address":"a","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"","topology_region":""}"#;
const PEER_B: &str = r#"{"remote_address":"127.0.0.1:1002","hostname":"b-host","broadcast_address":"b","tcp_port":5150,"http_port":5151,"version":"1.3.0","topology_zone":"","topology_region":""}"#;

#[test]
fn lookup_lists_channels_and_producers() {
    let mut f = Fixture::new();
    f.register("127.0.0.1:1001", "a", 4151, "t", Some("c1"));
    f.register("127.0.0.1:1002", "b", 5151, "t", Some("c2"));
    f.register("127.0.0.1:1002", "b", 5151, "other", None);
    assert_eq!(
        f.get("/lookup?topic=t"),
        ok(&format!(
            r#"{{"channels":["c1","c2"],"producers":[{PEER_A},{PEER_B}]}}"#
        ))
    );
    assert_eq!(f.get("/topics"), ok(r#"{"topics":["other","t"]}"#));
    // Disconnect: the channel stays listed with no producers (TestBasicLookupd).
    f.db.disconnect("127.0.0.1:1001");
    assert_eq!(
        f.get("/lookup?topic=t"),
        ok(&format!(r#"{{"channels":["c1","c2"],"producers":[{PEER_B}]}}"#))
    );
}

#[test]
fn tombstone_hides_one_topic_for_its_lifetime() {
    let mut f = Fixture::new();
    f.register("127.0.0.1:1001", "a", 4151, "t", None);
    f.register("127.0.0.1:1001", "a", 4151, "u", None);
    assert_eq!(f.post("/topic/tombstone?topic=t&node=a:4151"), ok(""));
    assert_eq!(f.post("/topic/tombstone?topic=t&node=nobody:1"), ok(""));
    assert_eq!(f.get("/lookup?topic=t"), ok(r#"{"channels":[],"producers":[]}"#));
    assert_eq!(
        f.get("/lookup?topic=u"),
        ok(&format!(r#"{{"channels":[],"producers":[{PEER_A}]}}"#))
    );
    let node = r#"{"producers":[{"remote_address":"127.0.0.1:1001","hostname":"a-host","broadcast_address":"a","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"","topology_region":"","tombstones":[true,false],"topics":["t","u"]}]}"#;
    assert_eq!(f.get("/nodes"), ok(node));
    // After the lifetime the producer is back (flag still set), and /nodes says false.
    f.clock = f.clock.after(Duration::from_secs(45));
    assert_eq!(
        f.get("/lookup?topic=t"),
        ok(&format!(r#"{{"channels":[],"producers":[{PEER_A}]}}"#))
    );
    assert!(f.get("/nodes").1.contains(r#""tombstones":[false,false]"#));
}

#[test]
fn inactive_producers_are_hidden_not_removed() {
    let mut f = Fixture::new();
    f.register("127.0.0.1:1001", "a", 4151, "t", None);
    f.clock = f.clock.after(Duration::from_secs(301));
    assert_eq!(f.get("/lookup?topic=t"), ok(r#"{"channels":[],"producers":[]}"#));
    assert_eq!(f.get("/nodes"), ok(r#"{"producers":[]}"#));
    assert!(f.get("/debug").1.contains("127.0.0.1:1001"));
    f.db.touch("127.0.0.1:1001", f.clock);
    assert_eq!(
        f.get("/lookup?topic=t"),
        ok(&format!(r#"{{"channels":[],"producers":[{PEER_A}]}}"#))
    );
}

#[test]
fn star_is_a_wildcard_as_in_nsqlookupd() {
    let mut f = Fixture::new();
    f.register("127.0.0.1:1001", "a", 4151, "t", Some("c1"));
    f.register("127.0.0.1:1001", "a", 4151, "u", Some("c2"));
    assert_eq!(
        f.get("/lookup?topic=*"),
        ok(&format!(r#"{{"channels":["c1","c2"],"producers":[{PEER_A}]}}"#))
    );
    assert_eq!(f.get("/channels?topic=*"), ok(r#"{"channels":["c1","c2"]}"#));
    assert_eq!(f.post("/topic/tombstone?topic=*&node=a:4151"), ok(""));
    assert!(f.get("/nodes").1.contains(r#""tombstones":[true,false]"#));
    assert_eq!(f.post("/topic/delete?topic=*"), ok(""));
    assert_eq!(f.get("/topics"), ok(r#"{"topics":[]}"#));
}

#[test]
fn debug_shape() {
    let mut f = Fixture::new();
    f.register("127.0.0.1:1001", "a", 4151, "t", Some("c"));
    f.db.add_registration(Registration::topic("empty"));
    let clock = f.clock;
    f.post("/topic/tombstone?topic=t&node=a:4151");
    let producer = |tombstoned: bool| {
        let at = if tombstoned {
            clock.unix_ns
        } else {
            -6795364578871345152
        };
        format!(
            r#"[{{"broadcast_address":"a","hostname":"a-host","http_port":4151,"id":"127.0.0.1:1001","last_update":{},"tcp_port":4150,"tombstoned":{tombstoned},"tombstoned_at":{at},"topology_region":"","topology_zone":"","version":"1.3.0"}}]"#,
            clock.unix_ns
        )
    };
    assert_eq!(
        f.get("/debug"),
        ok(&format!(
            r#"{{"channel:t:c":{},"client::":{},"topic:t:":{}}}"#,
            producer(false),
            producer(false),
            producer(true)
        ))
    );
}
