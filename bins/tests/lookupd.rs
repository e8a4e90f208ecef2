//! squall-lookupd answers nsqlookupd's TCP protocol V1 and HTTP API byte for byte: a raw V1
//! client registers, `/lookup` finds it with nsqlookupd's producer fields, tombstones and
//! inactivity hide it for exactly their configured times, and every bad command gets
//! nsqlookupd's exact error and a closed connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use squall::lookupd::{start_lookupd, Lookupd, LookupdStart};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn start(configure: impl FnOnce(&mut LookupdStart)) -> Lookupd {
    let mut start = LookupdStart::for_tests();
    configure(&mut start);
    start_lookupd(start).expect("lookupd starts")
}

fn stop(lookupd: Lookupd) {
    lookupd.shutdown();
    lookupd.join().expect("clean exit");
}

// --- a raw V1 client ----------------------------------------------------------------------

struct V1 {
    stream: TcpStream,
}

const IDENTIFY_BODY: &str = r#"{"broadcast_address":"nsqd.test","hostname":"nsqd-host","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#;

impl V1 {
    fn connect(lookupd: &Lookupd) -> V1 {
        let stream = TcpStream::connect(lookupd.tcp_address()).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        V1 { stream }
    }

    /// Connected, magic sent, identified as `nsqd.test:4151`.
    fn identified(lookupd: &Lookupd) -> V1 {
        let mut c = V1::connect(lookupd);
        c.send(b"  V1");
        c.identify(IDENTIFY_BODY);
        c
    }

    fn local(&self) -> String {
        self.stream.local_addr().unwrap().to_string()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn identify(&mut self, body: &str) -> Vec<u8> {
        let mut cmd = b"IDENTIFY\n".to_vec();
        cmd.extend_from_slice(&(body.len() as u32).to_be_bytes());
        cmd.extend_from_slice(body.as_bytes());
        self.send(&cmd);
        self.read_response()
    }

    fn read_response(&mut self) -> Vec<u8> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("a response size");
        let mut payload = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut payload).expect("a response payload");
        payload
    }

    fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        String::from_utf8(self.read_response()).unwrap()
    }

    /// True when the server closed the connection (EOF) within the timeout.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.stream.read(&mut buf), Ok(0))
    }
}

// --- a raw HTTP/1.1 client ------------------------------------------------------------------

/// Sends `raw` and reads until the server closes.
fn http_raw(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    without_date(&String::from_utf8(out).unwrap())
}

/// The Date header's value is the only thing that changes between runs.
fn without_date(response: &str) -> String {
    response
        .split("\r\n")
        .map(|line| {
            if line.starts_with("Date: ") {
                "Date: *"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn request(lookupd: &Lookupd, method: &str, target: &str) -> (u16, String) {
    let raw = format!("{method} {target} HTTP/1.1\r\nHost: lookupd\r\nConnection: close\r\n\r\n");
    let response = http_raw(lookupd.http_address(), &raw);
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn get(lookupd: &Lookupd, target: &str) -> (u16, String) {
    request(lookupd, "GET", target)
}

fn post(lookupd: &Lookupd, target: &str) -> (u16, String) {
    request(lookupd, "POST", target)
}

fn ok(body: &str) -> (u16, String) {
    (200, body.to_string())
}

fn producer_json(remote: &str) -> String {
    format!(
        r#"{{"remote_address":"{remote}","hostname":"nsqd-host","broadcast_address":"nsqd.test","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"","topology_region":""}}"#
    )
}

/// Polls `f` until it returns true or 5 s pass.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// Short enough for a test, long enough that a loaded machine finishes the "still hidden"
/// checks within it.
const TOMBSTONE_LIFETIME: Duration = Duration::from_millis(1500);
const INACTIVE_TIMEOUT: Duration = Duration::from_millis(1000);

// --- tests ------------------------------------------------------------------------------------

#[test]
fn identify_register_lookup_unregister() {
    let lookupd = start(|_| {});
    let mut c = V1::connect(&lookupd);
    c.send(b"  V1");
    let answer = String::from_utf8(c.identify(IDENTIFY_BODY)).unwrap();
    assert_eq!(
        answer,
        format!(
            r#"{{"broadcast_address":"lookupd.test","hostname":"lookupd-host.test","http_port":{},"tcp_port":{},"version":"1.3.0"}}"#,
            lookupd.http_address().port(),
            lookupd.tcp_address().port()
        )
    );
    assert_eq!(c.command("REGISTER topic1 ch1"), "OK");
    assert_eq!(c.command("PING"), "OK");
    let me = producer_json(&c.local());
    assert_eq!(
        get(&lookupd, "/lookup?topic=topic1"),
        ok(&format!(r#"{{"channels":["ch1"],"producers":[{me}]}}"#))
    );
    assert_eq!(get(&lookupd, "/topics"), ok(r#"{"topics":["topic1"]}"#));
    assert_eq!(
        get(&lookupd, "/channels?topic=topic1"),
        ok(r#"{"channels":["ch1"]}"#)
    );
    let node = me.trim_end_matches('}').to_string() + r#","tombstones":[false],"topics":["topic1"]}"#;
    assert_eq!(
        get(&lookupd, "/nodes"),
        ok(&format!(r#"{{"producers":[{node}]}}"#))
    );

    // Unregistering the channel keeps its (durable) key; unregistering the topic drops us.
    assert_eq!(c.command("UNREGISTER topic1 ch1"), "OK");
    assert_eq!(
        get(&lookupd, "/lookup?topic=topic1"),
        ok(&format!(r#"{{"channels":["ch1"],"producers":[{me}]}}"#))
    );
    assert_eq!(c.command("UNREGISTER topic1"), "OK");
    assert_eq!(
        get(&lookupd, "/lookup?topic=topic1"),
        ok(r#"{"channels":["ch1"],"producers":[]}"#)
    );

    // An ephemeral channel disappears with its last producer.
    assert_eq!(c.command("REGISTER topic1 e#ephemeral"), "OK");
    assert_eq!(c.command("UNREGISTER topic1 e#ephemeral"), "OK");
    assert_eq!(
        get(&lookupd, "/channels?topic=topic1"),
        ok(r#"{"channels":["ch1"]}"#)
    );
    stop(lookupd);
}

#[test]
fn disconnect_removes_producers_but_keeps_keys() {
    let lookupd = start(|_| {});
    let mut c = V1::identified(&lookupd);
    assert_eq!(c.command("REGISTER t c"), "OK");
    drop(c);
    assert!(eventually(
        || get(&lookupd, "/lookup?topic=t") == ok(r#"{"channels":["c"],"producers":[]}"#)
    ));
    assert_eq!(get(&lookupd, "/nodes"), ok(r#"{"producers":[]}"#));
    assert_eq!(get(&lookupd, "/debug"), ok("{}"));
    stop(lookupd);
}

#[test]
fn tombstone_hides_a_producer_for_the_lifetime_only() {
    let lookupd = start(|s| s.tombstone_lifetime = TOMBSTONE_LIFETIME);
    let mut c = V1::identified(&lookupd);
    assert_eq!(c.command("REGISTER t"), "OK");
    assert_eq!(c.command("REGISTER other"), "OK");
    let me = producer_json(&c.local());
    let tombstoned_at = Instant::now();
    assert_eq!(
        post(&lookupd, "/topic/tombstone?topic=t&node=nsqd.test:4151"),
        ok("")
    );
    assert_eq!(
        get(&lookupd, "/lookup?topic=t"),
        ok(r#"{"channels":[],"producers":[]}"#)
    );
    // Only that topic (TestTombstoneRecover), and /nodes still lists the node.
    assert_eq!(
        get(&lookupd, "/lookup?topic=other"),
        ok(&format!(r#"{{"channels":[],"producers":[{me}]}}"#))
    );
    assert!(get(&lookupd, "/nodes")
        .1
        .contains(r#""tombstones":[false,true],"topics":["other","t"]"#));
    // Re-REGISTER does not clear it; the lifetime does.
    assert_eq!(c.command("REGISTER t"), "OK");
    assert_eq!(
        get(&lookupd, "/lookup?topic=t"),
        ok(r#"{"channels":[],"producers":[]}"#)
    );
    assert!(
        tombstoned_at.elapsed() < TOMBSTONE_LIFETIME,
        "machine too slow for this test"
    );
    sleep_until(tombstoned_at + TOMBSTONE_LIFETIME + Duration::from_millis(50));
    assert_eq!(
        get(&lookupd, "/lookup?topic=t"),
        ok(&format!(r#"{{"channels":[],"producers":[{me}]}}"#))
    );
    assert!(get(&lookupd, "/debug").1.contains(r#""tombstoned":true"#));
    // UNREGISTER + REGISTER makes a fresh entry (TestTombstoneUnregister's flow).
    assert_eq!(
        post(&lookupd, "/topic/tombstone?topic=t&node=nsqd.test:4151"),
        ok("")
    );
    assert_eq!(c.command("UNREGISTER t"), "OK");
    assert_eq!(c.command("REGISTER t"), "OK");
    assert_eq!(
        get(&lookupd, "/lookup?topic=t"),
        ok(&format!(r#"{{"channels":[],"producers":[{me}]}}"#))
    );
    stop(lookupd);
}

#[test]
fn inactive_producers_disappear_after_the_timeout_and_return_on_ping() {
    let lookupd = start(|s| s.inactive_producer_timeout = INACTIVE_TIMEOUT);
    let identified_at = Instant::now();
    let mut c = V1::identified(&lookupd);
    assert_eq!(c.command("REGISTER t"), "OK");
    let me = producer_json(&c.local());
    let found = ok(&format!(r#"{{"channels":[],"producers":[{me}]}}"#));
    assert_eq!(get(&lookupd, "/lookup?topic=t"), found);
    assert!(
        identified_at.elapsed() < INACTIVE_TIMEOUT,
        "machine too slow for this test"
    );
    sleep_until(Instant::now() + INACTIVE_TIMEOUT + Duration::from_millis(50));
    assert_eq!(
        get(&lookupd, "/lookup?topic=t"),
        ok(r#"{"channels":[],"producers":[]}"#)
    );
    assert_eq!(get(&lookupd, "/nodes"), ok(r#"{"producers":[]}"#));
    assert_eq!(c.command("PING"), "OK");
    assert_eq!(get(&lookupd, "/lookup?topic=t"), found);
    stop(lookupd);
}

#[test]
fn bad_commands_get_exact_errors_and_close() {
    let lookupd = start(|_| {});
    let cases: &[(&[u8], bool, &str)] = &[
        (b"  V2", false, "E_BAD_PROTOCOL"),
        (b"FOO\n", false, "E_INVALID invalid command FOO"),
        (b"\n", false, "E_INVALID invalid command "),
        (b"REGISTER t\n", false, "E_INVALID client must IDENTIFY"),
        (b"UNREGISTER t c\n", false, "E_INVALID client must IDENTIFY"),
        (
            b"REGISTER\n",
            true,
            "E_INVALID REGISTER insufficient number of params",
        ),
        (
            b"REGISTER bad:topic\n",
            true,
            "E_BAD_TOPIC REGISTER topic name 'bad:topic' is not valid",
        ),
        (
            b"UNREGISTER t bad!chan\n",
            true,
            "E_BAD_CHANNEL UNREGISTER channel name 'bad!chan' is not valid",
        ),
        (b"IDENTIFY\n", true, "E_INVALID cannot IDENTIFY again"),
        (
            b"IDENTIFY\n\x00\x00\x00\x01{",
            false,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            b"IDENTIFY\n\x00\x00\x00\x02{}",
            false,
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            b"IDENTIFY\n\xff\xff\xff\xff",
            false,
            "E_BAD_BODY IDENTIFY invalid body size -1",
        ),
    ];
    for &(bytes, identify_first, want) in cases {
        let mut c = if identify_first {
            V1::identified(&lookupd)
        } else {
            let mut c = V1::connect(&lookupd);
            if want != "E_BAD_PROTOCOL" {
                c.send(b"  V1");
            }
            c
        };
        // Nothing after the error is executed: the PING gets no answer.
        c.send(&[bytes, b"PING\n"].concat());
        let got = String::from_utf8_lossy(&c.read_response()).into_owned();
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(bytes));
        assert!(c.closed(), "{want}: connection left open");
    }
    stop(lookupd);
}

#[test]
fn http_bytes_match_nsqlookupd() {
    let lookupd = start(|_| {});
    let addr = lookupd.http_address();
    let close = "Host: x\r\nConnection: close\r\n\r\n";
    assert_eq!(
        http_raw(addr, &format!("GET /ping HTTP/1.1\r\n{close}")),
        "HTTP/1.1 200 OK\r\nDate: *\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nOK"
    );
    assert_eq!(
        http_raw(addr, &format!("GET /info HTTP/1.1\r\n{close}")),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: *\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"version\":\"1.3.0\"}"
    );
    assert_eq!(
        http_raw(addr, &format!("GET /lookup?topic=nope HTTP/1.1\r\n{close}")),
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: *\r\nContent-Length: 29\r\nConnection: close\r\n\r\n{\"message\":\"TOPIC_NOT_FOUND\"}"
    );
    assert_eq!(
        http_raw(addr, &format!("POST /ping HTTP/1.1\r\n{close}")),
        "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, OPTIONS\r\nContent-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: *\r\nContent-Length: 32\r\nConnection: close\r\n\r\n{\"message\":\"METHOD_NOT_ALLOWED\"}"
    );
    assert_eq!(
        http_raw(addr, &format!("POST /topic/create?topic=t HTTP/1.1\r\nContent-Length: 3\r\n{close}abc")),
        "HTTP/1.1 200 OK\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: *\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        http_raw(addr, "GET /ping HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header"
    );
    // HTTP/1.0 without keep-alive: 1.0 status line, closed after the answer.
    assert_eq!(
        http_raw(addr, "GET /ping HTTP/1.0\r\n\r\n"),
        "HTTP/1.0 200 OK\r\nDate: *\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK"
    );
    stop(lookupd);
}

#[test]
fn http_keep_alive_and_pipelining() {
    let lookupd = start(|_| {});
    let mut s = TcpStream::connect(lookupd.http_address()).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // Two pipelined requests, then one more on the same connection, the last closing it.
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\nPOST /channel/create?topic=t&channel=c HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = without_date(&String::from_utf8(got).unwrap());
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nDate: *\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOKHTTP/1.1 200 OK\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nDate: *\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(b"GET /channels?topic=t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(String::from_utf8(rest)
        .unwrap()
        .ends_with("\r\n\r\n{\"channels\":[\"c\"]}"));
    stop(lookupd);
}
