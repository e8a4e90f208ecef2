//! Every malformed input from the spec (truncated frames, negative and huge sizes, bad names,
//! wrong-state commands, binary garbage, half-closed and silent sockets, a cut MPUB) gets nsqd's
//! exact error or a close, while a second client publishing and consuming at the same time loses
//! nothing and is never stalled.

mod common;

use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;
use squall_core::options::Options;

/// Runs `bad` against a fresh node while a bystander publishes and consumes on its own thread;
/// afterwards the node is back to the bystander's two connections.
fn with_bystander(options: Options, bad: impl FnOnce(&TestNode)) {
    let n = TestNode::start(options);
    let http = n.http_addr();
    let by = Bystander::start(n.addr, "bystander");
    bad(&n);
    let rounds = by.finish();
    assert!(rounds >= 3, "bystander made {rounds} round trips");
    wait_for_connections(http, 0);
}

/// nsqd's error frame, then the close.
fn fatal(c: &mut Client, expect: &str) {
    c.expect_error(expect);
    c.expect_closed();
}

fn with_size(line: &str, size: u32) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    b.push(b'\n');
    b.extend_from_slice(&size.to_be_bytes());
    b
}

#[test]
fn truncated_frames_then_close() {
    with_bystander(Options::default(), |n| {
        let http = n.http_addr();
        let forms: [&[u8]; 8] = [
            b"PUB trunc",
            b"PUB trunc\n",
            b"PUB trunc\n\x00\x00",
            b"PUB trunc\n\x00\x00\x00\x10abc",
            b"MPUB trunc\n\x00\x00\x00\x20\x00\x00",
            b"DPUB trunc 10\n\x00\x00\x00\x05ab",
            b"IDENTIFY\n\x00\x00\x00\x20{\"cl",
            b"SUB trunc ch",
        ];
        for round in 0..5 {
            for form in forms {
                let mut c = n.client();
                c.send(form);
                drop(c);
            }
            // The closes are all noticed; nothing is left half-open on the node.
            if round == 4 {
                wait_for_connections(http, 2);
            }
        }
        // The truncated publishes published nothing.
        let mut s = n.client();
        s.sub("trunc", "ch");
        s.cmd("RDY 10");
        s.expect_silence(Duration::from_millis(200));
    });
}

#[test]
fn negative_and_huge_sizes() {
    with_bystander(Options::default(), |n| {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                with_size("PUB t", 0x7fff_ffff),
                "E_BAD_MESSAGE PUB message too big 2147483647 > 1048576",
            ),
            (
                with_size("PUB t", 0x8000_0000),
                "E_BAD_MESSAGE PUB invalid message body size -2147483648",
            ),
            (
                with_size("DPUB t 10", 0x7fff_ffff),
                "E_BAD_MESSAGE DPUB message too big 2147483647 > 1048576",
            ),
            (
                with_size("DPUB t 10", 0x8000_0000),
                "E_BAD_MESSAGE DPUB invalid message body size -2147483648",
            ),
            (
                with_size("MPUB t", 0x7fff_ffff),
                "E_BAD_BODY MPUB body too big 2147483647 > 5242880",
            ),
            (
                with_size("MPUB t", 0x8000_0000),
                "E_BAD_BODY MPUB invalid body size -2147483648",
            ),
            (
                [with_size("MPUB t", 100), 0x7fff_ffffu32.to_be_bytes().to_vec()].concat(),
                "E_BAD_BODY MPUB invalid message count 2147483647",
            ),
            (
                [with_size("MPUB t", 100), 0x8000_0000u32.to_be_bytes().to_vec()].concat(),
                "E_BAD_BODY MPUB invalid message count -2147483648",
            ),
            (
                [
                    with_size("MPUB t", 12),
                    1u32.to_be_bytes().to_vec(),
                    0x7fff_ffffu32.to_be_bytes().to_vec(),
                    b"abcd".to_vec(),
                ]
                .concat(),
                "E_BAD_MESSAGE MPUB message too big 2147483647 > 1048576",
            ),
            (
                [
                    with_size("MPUB t", 12),
                    1u32.to_be_bytes().to_vec(),
                    0x8000_0000u32.to_be_bytes().to_vec(),
                    b"abcd".to_vec(),
                ]
                .concat(),
                "E_BAD_MESSAGE MPUB invalid message(0) body size -2147483648",
            ),
            (
                with_size("IDENTIFY", 0x7fff_ffff),
                "E_BAD_BODY IDENTIFY body too big 2147483647 > 5242880",
            ),
            (
                with_size("IDENTIFY", 0x8000_0000),
                "E_BAD_BODY IDENTIFY invalid body size -2147483648",
            ),
            (
                with_size("AUTH", 0x7fff_ffff),
                "E_BAD_BODY AUTH body too big 2147483647 > 5242880",
            ),
            (
                with_size("AUTH", 0x8000_0000),
                "E_BAD_BODY AUTH invalid body size -2147483648",
            ),
        ];
        for (bytes, expect) in &cases {
            let mut c = n.client();
            c.send(bytes);
            fatal(&mut c, expect);
        }
    });
}

#[test]
fn bad_names() {
    with_bystander(Options::default(), |n| {
        let long = "a".repeat(65);
        let cases = [
            (
                format!("PUB {long}"),
                Some(b"x".as_slice()),
                format!("E_BAD_TOPIC PUB topic name \"{long}\" is not valid"),
            ),
            (
                "PUB bad/name".to_string(),
                Some(b"x"),
                "E_BAD_TOPIC PUB topic name \"bad/name\" is not valid".to_string(),
            ),
            (
                "DPUB bad*name 10".to_string(),
                Some(b"x"),
                "E_BAD_TOPIC DPUB topic name \"bad*name\" is not valid".to_string(),
            ),
            (
                "MPUB bad!name".to_string(),
                None,
                "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!name\" is not valid".to_string(),
            ),
            (
                "SUB ok ch#eph".to_string(),
                None,
                "E_BAD_CHANNEL SUB channel name \"ch#eph\" is not valid".to_string(),
            ),
            (
                format!("SUB ok {long}"),
                None,
                format!("E_BAD_CHANNEL SUB channel name \"{long}\" is not valid"),
            ),
            (
                "SUB t\tab ch".to_string(),
                None,
                "E_BAD_TOPIC SUB topic name \"t\\tab\" is not valid".to_string(),
            ),
        ];
        for (line, body, expect) in &cases {
            let mut c = n.client();
            match body {
                Some(b) => c.send_with_body(line, b),
                None => c.cmd(line),
            }
            fatal(&mut c, expect);
        }
        // Invalid UTF-8 is quoted as Go does (`\xff`).
        let mut c = n.client();
        c.send(b"SUB t\xff ch\n");
        fatal(&mut c, "E_BAD_TOPIC SUB topic name \"t\\xff\" is not valid");
    });
}

#[test]
fn commands_in_the_wrong_state() {
    with_bystander(Options::default(), |n| {
        for (line, err) in [
            ("RDY 1", "E_INVALID cannot RDY in current state"),
            ("FIN 0123456789abcdef", "E_INVALID cannot FIN in current state"),
            ("REQ 0123456789abcdef 0", "E_INVALID cannot REQ in current state"),
            (
                "TOUCH 0123456789abcdef",
                "E_INVALID cannot TOUCH in current state",
            ),
            ("CLS", "E_INVALID cannot CLS in current state"),
        ] {
            let mut c = n.client();
            c.cmd(line);
            fatal(&mut c, err);
        }
        let subscribed: [(&[u8], &str); 3] = [
            (b"SUB ws ch\n", "E_INVALID cannot SUB in current state"),
            (
                b"IDENTIFY\n\x00\x00\x00\x02{}",
                "E_INVALID cannot IDENTIFY in current state",
            ),
            (
                b"AUTH\n\x00\x00\x00\x01s",
                "E_INVALID cannot AUTH in current state",
            ),
        ];
        for (bytes, err) in subscribed {
            let mut c = n.client();
            c.sub("ws", "ch");
            c.send(bytes);
            fatal(&mut c, err);
        }
        // Closing: CLS answers CLOSE_WAIT; a second CLS or a SUB is fatal.
        for (line, err) in [
            ("CLS", "E_INVALID cannot CLS in current state"),
            ("SUB ws ch", "E_INVALID cannot SUB in current state"),
        ] {
            let mut c = n.client();
            c.sub("ws", "ch");
            c.cmd("CLS");
            c.expect_response(b"CLOSE_WAIT");
            c.cmd(line);
            fatal(&mut c, err);
        }
    });
}

/// What nsqd answers to a first line `line` (no `\n`): the first space-separated token is the
/// command; none of the random ones is a real command.
fn invalid_command_error(line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let name = line.split(|&b| b == b' ').next().unwrap();
    [b"E_INVALID invalid command ".as_slice(), name].concat()
}

#[test]
fn binary_garbage() {
    with_bystander(Options::default(), |n| {
        let mut rng = Rng(0x5eed_5eed_1234_5678);
        for round in 0..24 {
            let garbage = rng.bytes(4096);
            let mut c = if round % 3 == 0 {
                // Without the magic: the first 4 bytes are the (bad) magic.
                Client::connect_raw(n.addr)
            } else {
                n.client()
            };
            c.send_lossy(&garbage);
            let frames = c.read_until_closed();
            // The error may be lost to a reset (the server closes with input unread).
            if let Some((ft, data)) = frames.first() {
                assert_eq!(frames.len(), 1, "{frames:?}");
                assert_eq!(*ft, FRAME_ERROR);
                let expect = if round % 3 == 0 {
                    b"E_BAD_PROTOCOL".to_vec()
                } else {
                    let end = garbage.iter().position(|&b| b == b'\n').expect("a newline");
                    invalid_command_error(&garbage[..end])
                };
                assert_eq!(String::from_utf8_lossy(data), String::from_utf8_lossy(&expect));
            }
        }
        // Garbage after a well-formed publish header: some fatal error or a close, never a hang.
        for _ in 0..16 {
            let mut c = n.client();
            let mut bytes = b"PUB garbage\n".to_vec();
            bytes.extend_from_slice(&rng.bytes(2048));
            c.send_lossy(&bytes);
            let _ = c.stream.shutdown(Shutdown::Write);
            for (ft, data) in c.read_until_closed() {
                assert!(
                    ft == FRAME_ERROR || (ft == FRAME_RESPONSE && data == b"OK"),
                    "{ft} {data:?}"
                );
            }
        }
    });
}

#[test]
fn half_closed_sockets_are_closed_not_hung() {
    with_bystander(Options::default(), |n| {
        // (bytes before shutdown(Write), nsqd's error if it reports one; `None`: silent close.)
        let cases: [(&[u8], Option<&str>); 7] = [
            (b"PUB half", None),
            (
                b"PUB half\n",
                Some("E_BAD_MESSAGE PUB failed to read message body size"),
            ),
            (
                b"PUB half\n\x00\x00",
                Some("E_BAD_MESSAGE PUB failed to read message body size"),
            ),
            (
                b"PUB half\n\x00\x00\x00\x05ab",
                Some("E_BAD_MESSAGE PUB failed to read message body"),
            ),
            (b"MPUB half\n", Some("E_BAD_BODY MPUB failed to read body size")),
            (
                b"IDENTIFY\n",
                Some("E_BAD_BODY IDENTIFY failed to read body size"),
            ),
            (b"", None),
        ];
        for (bytes, nsqd_error) in cases {
            let mut c = n.client();
            c.send(bytes);
            c.stream.shutdown(Shutdown::Write).unwrap();
            let frames = c.read_until_closed();
            // The server may report what nsqd reports, or just close: never anything else.
            match (frames.as_slice(), nsqd_error) {
                ([], _) => {}
                ([(FRAME_ERROR, data)], Some(e)) => assert_eq!(String::from_utf8_lossy(data), e),
                (other, _) => panic!("{bytes:?}: unexpected {other:?}"),
            }
        }
    });
}

#[test]
fn silent_clients_get_heartbeats_then_are_closed() {
    // ClientTimeout 200 ms: heartbeat every 100 ms, closed after 2 × interval of silence.
    let options = Options {
        client_timeout_ms: 200,
        ..Options::default()
    };
    with_bystander(options, |n| {
        let started = Instant::now();
        let mut clients: Vec<Client> = (0..10).map(|_| n.client()).collect();
        for c in &mut clients {
            let (ft, data) = c.read_frame_raw();
            assert_eq!((ft, data.as_slice()), (FRAME_RESPONSE, &b"_heartbeat_"[..]));
            c.expect_closed();
        }
        assert!(started.elapsed() >= Duration::from_millis(150));
    });
}

#[test]
fn disconnect_mid_mpub_body_publishes_nothing() {
    with_bystander(Options::default(), |n| {
        let http = n.http_addr();
        let mut watcher = n.client();
        watcher.sub("cut", "ch");
        watcher.cmd("RDY 100");
        let body = [b'm'; 100];
        for cut in [9usize, 100, 500, 1000] {
            for _ in 0..5 {
                let mut payload = Vec::new();
                payload.extend_from_slice(&10u32.to_be_bytes());
                for _ in 0..10 {
                    payload.extend_from_slice(&(body.len() as u32).to_be_bytes());
                    payload.extend_from_slice(&body);
                }
                let mut c = n.client();
                let mut bytes = with_size("MPUB cut", payload.len() as u32);
                bytes.extend_from_slice(&payload[..cut]);
                c.send(&bytes);
                drop(c);
            }
        }
        wait_for_connections(http, 3);
        watcher.expect_silence(Duration::from_millis(200));
        // A whole MPUB still goes through, all of it.
        let mut p = n.client();
        p.mpub("cut", &[b"one", b"two"]);
        p.expect_ok();
        assert_eq!(watcher.read_message().body, b"one");
        assert_eq!(watcher.read_message().body, b"two");
    });
}
