//! Claim: the V2 codec produces and accepts exactly the bytes the spec's examples show, raises the
//! exact error texts nsqd's own tests check (spec §11.1), and never errors on a prefix of a valid
//! command.

use squall_core::error::{ErrorCode, ProtocolError};
use squall_core::message::{Message, MessageId};
use squall_core::names::Name;
use squall_core::options::Options;
use squall_core::protocol::{
    decode, encode_error, encode_message_header, encode_response, identify_reply_json, ClientState, Command,
    DecodeCtx, DecodeError, Identify, IdentifyReply, MAGIC_V2,
};

const INIT: ClientState = ClientState::Init;
const SUBSCRIBED: ClientState = ClientState::Subscribed;
const CLOSING: ClientState = ClientState::Closing;
const ID: &[u8; 16] = b"0123456789abcdef";

type Decoded = Result<Option<(Command, usize)>, DecodeError>;

fn ctx(state: ClientState, options: &Options) -> DecodeCtx<'_> {
    DecodeCtx {
        state,
        heartbeats_disabled: false,
        tls_required_unmet: false,
        options,
    }
}

fn run_with(state: ClientState, options: &Options, buf: &[u8]) -> Decoded {
    decode(buf, &ctx(state, options))
}

fn run(state: ClientState, buf: &[u8]) -> Decoded {
    run_with(state, &Options::default(), buf)
}

/// The whole error frame `decode` asks to send, as bytes.
fn error_frame(result: Decoded) -> Vec<u8> {
    match result {
        Err(DecodeError::Protocol(e)) => {
            assert!(e.is_fatal(), "every decode error is fatal: {e}");
            let mut out = Vec::new();
            encode_error(&mut out, &e);
            out
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// The error frame's text (after the 8-byte header).
fn error_text(result: Decoded) -> String {
    let frame = error_frame(result);
    assert_eq!(&frame[4..8], &[0, 0, 0, 1], "frame type error");
    let size = u32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize;
    assert_eq!(size, frame.len() - 4);
    String::from_utf8(frame[8..].to_vec()).unwrap()
}

fn be(n: i32) -> [u8; 4] {
    n.to_be_bytes()
}

fn body_cmd(line: &[u8], body: &[u8]) -> Vec<u8> {
    [line, &be(body.len() as i32), body].concat()
}

fn mpub_cmd(topic: &str, messages: &[Vec<u8>]) -> Vec<u8> {
    let mut body = be(messages.len() as i32).to_vec();
    for m in messages {
        body.extend_from_slice(&be(m.len() as i32));
        body.extend_from_slice(m);
    }
    body_cmd(format!("MPUB {topic}\n").as_bytes(), &body)
}

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

// ---- §1.2 / §1.3 frames -------------------------------------------------------------------

#[test]
fn magic_is_two_spaces_v2() {
    assert_eq!(MAGIC_V2, &[0x20, 0x20, 0x56, 0x32]);
}

#[test]
fn response_frames() {
    let mut out = Vec::new();
    encode_response(&mut out, b"OK");
    assert_eq!(out, [0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x4F, 0x4B]);
    out.clear();
    encode_response(&mut out, b"_heartbeat_");
    assert_eq!(&out[..8], &[0, 0, 0, 0x0f, 0, 0, 0, 0]);
    out.clear();
    encode_response(&mut out, b"CLOSE_WAIT");
    assert_eq!(&out[..8], &[0, 0, 0, 0x0e, 0, 0, 0, 0]);
}

#[test]
fn bad_protocol_frame_has_no_trailing_space() {
    let mut out = Vec::new();
    encode_error(&mut out, &ProtocolError::new(ErrorCode::BadProtocol, ""));
    assert_eq!(out, b"\x00\x00\x00\x12\x00\x00\x00\x01E_BAD_PROTOCOL");
}

#[test]
fn message_frame_header() {
    let msg = Message {
        id: MessageId(*ID),
        timestamp_ns: 0x1122334455667788,
        attempts: 1,
        body: bytes::Bytes::from_static(b"hello"),
    };
    let h = encode_message_header(&msg);
    let want = [
        &[0x00, 0x00, 0x00, 0x23, 0x00, 0x00, 0x00, 0x02][..],
        &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        &[0x00, 0x01],
        ID,
    ]
    .concat();
    assert_eq!(h.to_vec(), want);
}

// ---- §1.7 example exchange ----------------------------------------------------------------

#[test]
fn example_exchange_decodes_as_one_stream() {
    let mut stream = body_cmd(b"IDENTIFY\n", br#"{"feature_negotiation":true}"#);
    assert_eq!(&stream[9..13], &[0, 0, 0, 0x1c]);
    stream.extend_from_slice(&body_cmd(b"PUB t\n", b"hello"));
    let mpub = b"MPUB t\n\x00\x00\x00\x0e\x00\x00\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x01b";
    stream.extend_from_slice(mpub);
    stream.extend_from_slice(b"SUB t c\nRDY 1\nFIN 0123456789abcdef\nNOP\nCLS\n");

    let o = Options::default();
    let mut state = INIT;
    let mut at = 0;
    let mut got = Vec::new();
    while at < stream.len() {
        let (cmd, used) = run_with(state, &o, &stream[at..]).unwrap().unwrap();
        if let Command::Sub { .. } = cmd {
            state = SUBSCRIBED;
        }
        got.push((cmd, at, used));
        at += used;
    }
    let cmds: Vec<&Command> = got.iter().map(|(c, _, _)| c).collect();
    let identify = Identify {
        feature_negotiation: true,
        ..Identify::default()
    };
    assert_eq!(cmds[0], &Command::Identify(Box::new(identify)));
    let (ref pub_cmd, pub_at, _) = got[1];
    let Command::Pub { topic, body } = pub_cmd else {
        panic!("{pub_cmd:?}")
    };
    assert_eq!(
        (topic, &stream[pub_at..][body.clone()]),
        (&name("t"), &b"hello"[..])
    );
    let (ref mpub_cmd, mpub_at, mpub_len) = got[2];
    assert_eq!(mpub_len, mpub.len());
    let Command::Mpub { bodies, .. } = mpub_cmd else {
        panic!("{mpub_cmd:?}")
    };
    let texts: Vec<&[u8]> = bodies.iter().map(|r| &stream[mpub_at..][r.clone()]).collect();
    assert_eq!(texts, [b"a", b"b"]);
    assert_eq!(
        cmds[3],
        &Command::Sub {
            topic: name("t"),
            channel: name("c")
        }
    );
    assert_eq!(cmds[4], &Command::Rdy { count: 1 });
    assert_eq!(cmds[5], &Command::Fin { id: MessageId(*ID) });
    assert_eq!(cmds[6], &Command::Nop);
    assert_eq!(cmds[7], &Command::Cls);
    assert_eq!(cmds.len(), 8);
}

// ---- §4.1 IDENTIFY reply ------------------------------------------------------------------

#[test]
fn default_identify_reply_frame() {
    let o = Options::default();
    let reply = IdentifyReply {
        max_rdy_count: o.max_rdy_count,
        version: "1.3.0".into(),
        max_msg_timeout: o.max_msg_timeout_ms,
        msg_timeout: o.msg_timeout_ms,
        tls_v1: false,
        deflate: false,
        deflate_level: 6,
        max_deflate_level: o.max_deflate_level,
        snappy: false,
        sample_rate: 0,
        auth_required: false,
        output_buffer_size: Options::DEFAULT_OUTPUT_BUFFER_SIZE,
        output_buffer_timeout: o.output_buffer_timeout_ms,
        topology_region: String::new(),
        topology_zone: String::new(),
    };
    let json = identify_reply_json(&reply);
    let v130 = r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#;
    assert_eq!(v130.len(), 264);
    let master = format!(
        "{},\"topology_region\":\"\",\"topology_zone\":\"\"}}",
        &v130[..263]
    );
    assert_eq!(String::from_utf8(json.clone()).unwrap(), master);
    let mut frame = Vec::new();
    encode_response(&mut frame, &json);
    assert_eq!(&frame[..8], &[0x00, 0x00, 0x01, 0x34, 0, 0, 0, 0]);
}

// ---- §2.2 / §2.3 --------------------------------------------------------------------------

#[test]
fn unknown_and_empty_commands() {
    let frame = error_frame(run(INIT, b"ASDF\n"));
    assert_eq!(
        frame,
        b"\x00\x00\x00\x22\x00\x00\x00\x01E_INVALID invalid command ASDF"
    );
    assert_eq!(error_text(run(INIT, b"\n\n")), "E_INVALID invalid command ");
    assert_eq!(error_text(run(INIT, b"\r\n")), "E_INVALID invalid command ");
    let got = error_text(run(SUBSCRIBED, b"INVALID_COMMAND\n"));
    assert_eq!(got, "E_INVALID invalid command INVALID_COMMAND");
    // Names are case-sensitive.
    assert_eq!(error_text(run(INIT, b"nop\n")), "E_INVALID invalid command nop");
    assert_eq!(
        error_text(run(INIT, b"NOP\r\r\n")),
        "E_INVALID invalid command NOP\r"
    );
}

#[test]
fn tls_required_refuses_everything_but_identify() {
    let o = Options::default();
    let c = DecodeCtx {
        tls_required_unmet: true,
        ..ctx(INIT, &o)
    };
    let got = error_text(decode(b"SUB t c\n", &c));
    assert_eq!(got, "E_INVALID cannot SUB in current state (TLS required)");
    let got = error_text(decode(b"\n", &c));
    assert_eq!(got, "E_INVALID cannot  in current state (TLS required)");
    let got = error_text(decode(b"ASDF x\n", &c));
    assert_eq!(got, "E_INVALID cannot ASDF in current state (TLS required)");
    let got = error_text(decode(b"AUTH\n", &c));
    assert_eq!(got, "E_INVALID cannot AUTH in current state (TLS required)");
    let identify = body_cmd(b"IDENTIFY\n", br#"{"tls_v1":true}"#);
    assert!(matches!(
        decode(&identify, &c),
        Ok(Some((Command::Identify(_), _)))
    ));
}

// ---- §1.5 lines ---------------------------------------------------------------------------

#[test]
fn line_length_limit_is_16_kib() {
    let mut longest = b"NOP".to_vec();
    longest.resize(Options::LINE_LEN_MAX - 1, b' ');
    longest.push(b'\n');
    assert_eq!(run(INIT, &longest), Ok(Some((Command::Nop, 16384))));
    assert_eq!(run(INIT, &longest[..16383]), Ok(None));
    let mut too_long = longest[..16383].to_vec();
    too_long.extend_from_slice(b" \n");
    assert_eq!(run(INIT, &too_long), Err(DecodeError::Close));
    assert_eq!(run(INIT, &vec![b'x'; 16384]), Err(DecodeError::Close));
    assert_eq!(run(INIT, &vec![b'x'; 100_000]), Err(DecodeError::Close));
}

#[test]
fn empty_params_are_kept() {
    let got = error_text(run(INIT, &body_cmd(b"PUB  t\n", b"x")));
    assert_eq!(got, r#"E_BAD_TOPIC PUB topic name "" is not valid"#);
    let got = error_text(run(INIT, b"SUB t  c\n"));
    assert_eq!(got, r#"E_BAD_CHANNEL SUB channel name "" is not valid"#);
    // A trailing space makes an empty RDY count, which parses as 0.
    assert_eq!(
        run(SUBSCRIBED, b"RDY \n"),
        Ok(Some((Command::Rdy { count: 0 }, 5)))
    );
    assert_eq!(
        run(SUBSCRIBED, b"RDY 7\r\n"),
        Ok(Some((Command::Rdy { count: 7 }, 7)))
    );
}

// ---- §3 state matrix ----------------------------------------------------------------------

#[test]
fn state_matrix() {
    let identify = body_cmd(b"IDENTIFY\n", b"{}");
    let auth = body_cmd(b"AUTH\n", b"s");
    let publish = body_cmd(b"PUB t\n", b"x");
    let dpub = body_cmd(b"DPUB t 0\n", b"x");
    let mpub = mpub_cmd("t", &[b"x".to_vec()]);
    let fin = format!("FIN {}\n", std::str::from_utf8(ID).unwrap());
    let req = format!("REQ {} 0\n", std::str::from_utf8(ID).unwrap());
    let touch = format!("TOUCH {}\n", std::str::from_utf8(ID).unwrap());
    // (command, buffer, allowed in init / subscribed / closing)
    let rows: [(&str, &[u8], [bool; 3]); 12] = [
        ("IDENTIFY", &identify, [true, false, false]),
        ("AUTH", &auth, [true, false, false]),
        ("SUB", b"SUB t c\n", [true, false, false]),
        ("RDY", b"RDY 1\n", [false, true, true]),
        ("FIN", fin.as_bytes(), [false, true, true]),
        ("REQ", req.as_bytes(), [false, true, true]),
        ("TOUCH", touch.as_bytes(), [false, true, true]),
        ("CLS", b"CLS\n", [false, true, false]),
        ("PUB", &publish, [true, true, true]),
        ("MPUB", &mpub, [true, true, true]),
        ("DPUB", &dpub, [true, true, true]),
        ("NOP", b"NOP\n", [true, true, true]),
    ];
    for (cmd, buf, allowed) in rows {
        for (state, ok) in [INIT, SUBSCRIBED, CLOSING].into_iter().zip(allowed) {
            let got = run(state, buf);
            if ok {
                assert!(
                    matches!(got, Ok(Some((_, n))) if n == buf.len()),
                    "{cmd} {state:?}"
                );
            } else {
                let want = format!("E_INVALID cannot {cmd} in current state");
                assert_eq!(error_text(got), want, "{cmd} {state:?}");
            }
        }
    }
    // RDY while closing is accepted and does nothing.
    assert_eq!(run(CLOSING, b"RDY 1\n"), Ok(Some((Command::Nop, 6))));
}

// ---- §11.1 upstream test texts ------------------------------------------------------------

#[test]
fn test_size_limits() {
    let o = Options {
        max_msg_size: 100,
        max_body_size: 1000,
        ..Options::default()
    };
    let run = |buf: &[u8]| run_with(INIT, &o, buf);
    let msgs = |n: usize, len: usize| vec![vec![b'x'; len]; n];

    assert!(matches!(
        run(&body_cmd(b"PUB t\n", &[b'x'; 95])),
        Ok(Some((Command::Pub { .. }, 105)))
    ));
    let got = error_text(run(&body_cmd(b"PUB t\n", &[b'x'; 105])));
    assert_eq!(got, "E_BAD_MESSAGE PUB message too big 105 > 100");
    let got = error_text(run(&body_cmd(b"PUB t\n", b"")));
    assert_eq!(got, "E_BAD_MESSAGE PUB invalid message body size 0");

    let ok = mpub_cmd("t", &msgs(5, 100));
    assert!(
        matches!(run(&ok), Ok(Some((Command::Mpub { ref bodies, .. }, n))) if bodies.len() == 5 && n == ok.len())
    );
    let got = error_text(run(&mpub_cmd("t", &msgs(11, 100))));
    assert_eq!(got, "E_BAD_BODY MPUB body too big 1148 > 1000");
    let mut with_empty = msgs(5, 100);
    with_empty.push(Vec::new());
    let got = error_text(run(&mpub_cmd("t", &with_empty)));
    assert_eq!(got, "E_BAD_MESSAGE MPUB invalid message(5) body size 0");
    let got = error_text(run(&mpub_cmd("t", &msgs(5, 101))));
    assert_eq!(got, "E_BAD_MESSAGE MPUB message too big 101 > 100");
    // Count limit is (max body - 4) / 5 = 199.
    let got = error_text(run(&[&b"MPUB t\n"[..], &be(1000), &be(200)].concat()));
    assert_eq!(got, "E_BAD_BODY MPUB invalid message count 200");
}

#[test]
fn oversized_bodies_are_refused_from_the_size_alone() {
    let o = Options::default();
    let got = error_text(run_with(INIT, &o, &[&b"PUB t\n"[..], &be(i32::MAX)].concat()));
    assert_eq!(got, "E_BAD_MESSAGE PUB message too big 2147483647 > 1048576");
    // Sizes >= 2^31 read as negative.
    let got = error_text(run_with(INIT, &o, b"PUB t\n\xff\xff\xff\xfe"));
    assert_eq!(got, "E_BAD_MESSAGE PUB invalid message body size -2");
    let got = error_text(run_with(INIT, &o, &[&b"MPUB t\n"[..], &be(i32::MAX)].concat()));
    assert_eq!(got, "E_BAD_BODY MPUB body too big 2147483647 > 5242880");
    let got = error_text(run_with(INIT, &o, &[&b"IDENTIFY\n"[..], &be(5_242_881)].concat()));
    assert_eq!(got, "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880");
}

#[test]
fn test_dpub() {
    let ok = body_cmd(b"DPUB t 1000\n", b"x");
    let want = Command::Dpub {
        topic: name("t"),
        defer_ms: 1000,
        body: 16..17,
    };
    assert_eq!(run(INIT, &ok), Ok(Some((want, 17))));
    let got = error_text(run(INIT, &body_cmd(b"DPUB t 3600100\n", b"x")));
    assert_eq!(got, "E_INVALID DPUB timeout 3600100 out of range 0-3600000");
    let max = body_cmd(b"DPUB t 3600000\n", b"x");
    assert!(matches!(
        run(INIT, &max),
        Ok(Some((
            Command::Dpub {
                defer_ms: 3_600_000,
                ..
            },
            _
        )))
    ));
}

#[test]
fn test_max_rdy_count() {
    let o = Options {
        max_rdy_count: 50,
        ..Options::default()
    };
    assert_eq!(
        run_with(SUBSCRIBED, &o, b"RDY 50\n"),
        Ok(Some((Command::Rdy { count: 50 }, 7)))
    );
    let frame = error_frame(run_with(SUBSCRIBED, &o, b"RDY 51\n"));
    assert_eq!(&frame[4..8], &[0, 0, 0, 1]);
    assert_eq!(&frame[8..], b"E_INVALID RDY count 51 out of range 0-50");
}

#[test]
fn test_max_heartbeat_interval() {
    let o = Options {
        max_heartbeat_interval_ms: 300_000,
        ..Options::default()
    };
    let valid = body_cmd(b"IDENTIFY\n", br#"{"heartbeat_interval":300000}"#);
    let Ok(Some((Command::Identify(id), _))) = run_with(INIT, &o, &valid) else {
        panic!()
    };
    assert_eq!(id.heartbeat_interval_ms, 300_000);
    let invalid = body_cmd(b"IDENTIFY\n", br#"{"heartbeat_interval":300001}"#);
    let got = error_text(run_with(INIT, &o, &invalid));
    assert_eq!(got, "E_BAD_BODY IDENTIFY heartbeat interval (300001) is invalid");
}

#[test]
fn test_output_buffering_validity() {
    let o = Options {
        max_output_buffer_size: 512 * 1024,
        max_output_buffer_timeout_ms: 1000,
        ..Options::default()
    };
    let identify = |size: i64, timeout: i64| {
        let json = format!(r#"{{"output_buffer_size":{size},"output_buffer_timeout":{timeout}}}"#);
        run_with(INIT, &o, &body_cmd(b"IDENTIFY\n", json.as_bytes()))
    };
    for (size, timeout) in [(524_288, 1000), (-1, -1), (0, 0), (262_144, 500)] {
        let Ok(Some((Command::Identify(id), _))) = identify(size, timeout) else {
            panic!()
        };
        assert_eq!(
            (id.output_buffer_size, id.output_buffer_timeout_ms),
            (size, timeout)
        );
    }
    let got = error_text(identify(524_289, 0));
    assert_eq!(got, "E_BAD_BODY IDENTIFY output buffer size (524289) is invalid");
    let got = error_text(identify(0, 1001));
    assert_eq!(got, "E_BAD_BODY IDENTIFY output buffer timeout (1001) is invalid");
}

#[test]
fn test_client_heartbeat_disable_sub() {
    let o = Options::default();
    let identify = body_cmd(b"IDENTIFY\n", br#"{"heartbeat_interval":-1}"#);
    let Ok(Some((Command::Identify(id), _))) = run_with(INIT, &o, &identify) else {
        panic!()
    };
    assert_eq!(id.heartbeat_interval_ms, -1);
    let c = DecodeCtx {
        heartbeats_disabled: true,
        ..ctx(INIT, &o)
    };
    let got = error_text(decode(b"SUB test ch\n", &c));
    assert_eq!(got, "E_INVALID cannot SUB with heartbeats disabled");
}

#[test]
fn test_sampling_and_msg_timeout_are_read() {
    let json = br#"{"sample_rate":42,"msg_timeout":1000}"#;
    let Ok(Some((Command::Identify(id), _))) = run(INIT, &body_cmd(b"IDENTIFY\n", json)) else {
        panic!()
    };
    assert_eq!((id.sample_rate, id.msg_timeout_ms), (42, 1000));
}

#[test]
fn test_bad_fin() {
    assert_eq!(
        error_text(run(SUBSCRIBED, b"FIN \n")),
        "E_INVALID invalid message ID"
    );
}

#[test]
fn test_channel_topic_names() {
    for ok in ["test", "test-with_period.", "test#ephemeral"] {
        let line = format!("SUB {ok} {ok}\n");
        assert!(matches!(
            run(INIT, line.as_bytes()),
            Ok(Some((Command::Sub { .. }, _)))
        ));
    }
    let got = error_text(run(INIT, b"SUB test:ephemeral c\n"));
    assert_eq!(got, r#"E_BAD_TOPIC SUB topic name "test:ephemeral" is not valid"#);
    let got = error_text(run(INIT, &body_cmd(b"PUB test:ephemeral\n", b"x")));
    assert_eq!(got, r#"E_BAD_TOPIC PUB topic name "test:ephemeral" is not valid"#);
    let got = error_text(run(INIT, b"MPUB test:ephemeral\n"));
    assert_eq!(
        got,
        r#"E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "test:ephemeral" is not valid"#
    );
}

// ---- Partial input ------------------------------------------------------------------------

#[test]
fn every_prefix_of_a_valid_command_needs_more_bytes() {
    let id = std::str::from_utf8(ID).unwrap();
    let cases: Vec<(ClientState, Vec<u8>)> = vec![
        (INIT, b"NOP\n".to_vec()),
        (INIT, b"NOP\r\n".to_vec()),
        (
            INIT,
            body_cmd(b"IDENTIFY\n", br#"{"client_id":"x","heartbeat_interval":5000}"#),
        ),
        (INIT, body_cmd(b"AUTH\n", b"secret")),
        (INIT, b"SUB topic channel\n".to_vec()),
        (SUBSCRIBED, b"RDY 100\n".to_vec()),
        (SUBSCRIBED, b"RDY\n".to_vec()),
        (CLOSING, b"RDY 1\n".to_vec()),
        (SUBSCRIBED, format!("FIN {id}\n").into_bytes()),
        (SUBSCRIBED, format!("REQ {id} 5000\n").into_bytes()),
        (CLOSING, format!("TOUCH {id}\n").into_bytes()),
        (SUBSCRIBED, b"CLS\n".to_vec()),
        (INIT, body_cmd(b"PUB topic\n", b"hello world")),
        (
            INIT,
            mpub_cmd("topic", &[b"a".to_vec(), b"bc".to_vec(), vec![0; 300]]),
        ),
        (INIT, body_cmd(b"DPUB topic 250\n", b"deferred")),
    ];
    for (state, full) in cases {
        for split in 0..full.len() {
            let got = run(state, &full[..split]);
            assert_eq!(
                got,
                Ok(None),
                "{:?} cut at {split}",
                String::from_utf8_lossy(&full)
            );
        }
        let mut with_next = full.clone();
        with_next.extend_from_slice(b"NOP\n");
        let (_, used) = run(state, &with_next).unwrap().unwrap();
        assert_eq!(used, full.len(), "{:?}", String::from_utf8_lossy(&full));
    }
}
