//! Every malformed command gets nsqd's exact error bytes, fatal errors close the connection, and
//! the broker keeps serving everyone else.

mod common;

use common::*;
use squall_core::options::Options;

fn node() -> TestNode {
    TestNode::start(Options::default())
}

#[test]
fn bad_magic_gets_e_bad_protocol_then_close() {
    let n = node();
    let mut c = Client::connect_raw(n.addr);
    c.send(b"  V1");
    // Exact bytes: size 18, type 1, no description, no trailing space.
    let mut expect = vec![0, 0, 0, 0x12, 0, 0, 0, 1];
    expect.extend_from_slice(b"E_BAD_PROTOCOL");
    let mut got = vec![0u8; expect.len()];
    std::io::Read::read_exact(&mut c.stream, &mut got).unwrap();
    assert_eq!(got, expect);
    c.expect_closed();
}

#[test]
fn unknown_command_is_fatal() {
    let n = node();
    let mut c = n.client();
    c.cmd("ASDF");
    c.expect_error("E_INVALID invalid command ASDF");
    c.expect_closed();
}

#[test]
fn empty_line_is_invalid_command_with_trailing_space() {
    let n = node();
    let mut c = n.client();
    c.send(b"\n\n");
    c.expect_error("E_INVALID invalid command ");
    c.expect_closed();
    // The server is still fine.
    let mut c2 = n.client();
    c2.cmd("NOP");
    c2.publish("alive", b"x");
    c2.expect_ok();
}

#[test]
fn overlong_line_closes_without_error_frame() {
    let n = node();
    let mut c = n.client();
    c.send(&vec![b'A'; 17_000]);
    c.expect_closed();
}

#[test]
fn size_limits_match_nsqd() {
    let opts = Options {
        max_msg_size: 100,
        max_body_size: 1000,
        ..Options::default()
    };
    let n = TestNode::start(opts);

    let mut c = n.client();
    c.publish("sizes", &[b'a'; 95]);
    c.expect_ok();
    c.publish("sizes", &[b'a'; 105]);
    c.expect_error("E_BAD_MESSAGE PUB message too big 105 > 100");
    c.expect_closed();

    let mut c = n.client();
    c.publish("sizes", b"");
    c.expect_error("E_BAD_MESSAGE PUB invalid message body size 0");
    c.expect_closed();

    let hundred = [b'b'; 100];
    let mut c = n.client();
    c.mpub("sizes", &[&hundred[..]; 5]);
    c.expect_ok();
    c.mpub("sizes", &[&hundred[..]; 11]);
    c.expect_error("E_BAD_BODY MPUB body too big 1148 > 1000");
    c.expect_closed();

    let mut c = n.client();
    let mut bodies: Vec<&[u8]> = vec![&hundred[..]; 5];
    bodies.push(b"");
    c.mpub("sizes", &bodies);
    c.expect_error("E_BAD_MESSAGE MPUB invalid message(5) body size 0");
    c.expect_closed();

    let hundred_one = [b'c'; 101];
    let mut c = n.client();
    c.mpub("sizes", &[&hundred_one[..]; 5]);
    c.expect_error("E_BAD_MESSAGE MPUB message too big 101 > 100");
    c.expect_closed();
}

#[test]
fn oversized_body_is_refused_from_its_size_alone() {
    let n = node();
    let mut c = n.client();
    // Announce 5 GiB-ish (as i32: negative) and a big positive size, send no body.
    c.send(b"PUB t\n\x7f\xff\xff\xff");
    c.expect_error("E_BAD_MESSAGE PUB message too big 2147483647 > 1048576");
    c.expect_closed();
    let mut c = n.client();
    c.send(b"PUB t\n\xff\xff\xff\xff");
    c.expect_error("E_BAD_MESSAGE PUB invalid message body size -1");
    c.expect_closed();
}

#[test]
fn bad_topic_and_channel_names() {
    let n = node();
    let mut c = n.client();
    c.publish("bad:topic", b"x");
    c.expect_error("E_BAD_TOPIC PUB topic name \"bad:topic\" is not valid");
    c.expect_closed();

    let mut c = n.client();
    c.mpub("bad:topic", &[b"x"]);
    c.expect_error("E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad:topic\" is not valid");
    c.expect_closed();

    let mut c = n.client();
    c.cmd("SUB good bad:chan");
    c.expect_error("E_BAD_CHANNEL SUB channel name \"bad:chan\" is not valid");
    c.expect_closed();

    let mut c = n.client();
    c.cmd("SUB test:ephemeral ch");
    c.expect_error("E_BAD_TOPIC SUB topic name \"test:ephemeral\" is not valid");
    c.expect_closed();
}

#[test]
fn commands_in_the_wrong_state_are_fatal() {
    let n = node();
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
        c.expect_error(err);
        c.expect_closed();
    }
    let mut c = n.client();
    c.sub("states", "ch");
    c.identify("{}");
    c.expect_error("E_INVALID cannot IDENTIFY in current state");
    c.expect_closed();

    let mut c = n.client();
    c.sub("states", "ch");
    c.cmd("SUB states ch");
    c.expect_error("E_INVALID cannot SUB in current state");
    c.expect_closed();
}

#[test]
fn missing_parameters() {
    let n = node();
    for (line, err) in [
        ("SUB onlytopic", "E_INVALID SUB insufficient number of parameters"),
        ("PUB", "E_INVALID PUB insufficient number of parameters"),
        ("MPUB", "E_INVALID MPUB insufficient number of parameters"),
        ("DPUB t", "E_INVALID DPUB insufficient number of parameters"),
        ("DPUB t x1", "E_INVALID DPUB could not parse timeout x1"),
    ] {
        let mut c = n.client();
        c.cmd(line);
        c.expect_error(err);
        c.expect_closed();
    }
}

#[test]
fn rdy_and_dpub_ranges() {
    let opts = Options {
        max_rdy_count: 50,
        ..Options::default()
    };
    let n = TestNode::start(opts);
    let mut c = n.client();
    c.identify(r#"{"feature_negotiation":true}"#);
    let (_, json) = c.read_frame();
    assert!(String::from_utf8(json).unwrap().contains("\"max_rdy_count\":50"));
    c.sub("rdyrange", "ch");
    c.cmd("RDY 50");
    c.cmd("RDY 51");
    c.expect_error("E_INVALID RDY count 51 out of range 0-50");
    c.expect_closed();

    let mut c = n.client();
    c.send_with_body("DPUB t 3600100", b"x");
    c.expect_error("E_INVALID DPUB timeout 3600100 out of range 0-3600000");
    c.expect_closed();

    let mut c = n.client();
    c.send_with_body("DPUB t 3600000", b"x");
    c.expect_ok();
}

#[test]
fn fin_req_touch_failures_are_not_fatal() {
    let n = node();
    let mut c = n.client();
    c.sub("finfail", "ch");
    c.cmd("FIN 0123456789abcdef");
    c.expect_error("E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight");
    c.cmd("REQ 0123456789abcdef 0");
    c.expect_error("E_REQ_FAILED REQ 0123456789abcdef failed ID not in flight");
    c.cmd("TOUCH 0123456789abcdef");
    c.expect_error("E_TOUCH_FAILED TOUCH 0123456789abcdef failed ID not in flight");
    // Still connected and usable.
    c.publish("finfail", b"still here");
    c.expect_ok();
    c.cmd("FIN short");
    c.expect_error("E_INVALID invalid message ID");
    c.expect_closed();
}

#[test]
fn req_with_unparsable_timeout_is_fatal() {
    let n = node();
    let mut c = n.client();
    c.sub("reqparse", "ch");
    c.cmd("REQ 0123456789abcdef -1");
    c.expect_error("E_INVALID REQ could not parse timeout -1");
    c.expect_closed();
}

#[test]
fn identify_validation_errors() {
    let opts = Options {
        max_heartbeat_interval_ms: 300_000,
        max_output_buffer_size: 512 * 1024,
        max_output_buffer_timeout_ms: 1000,
        ..Options::default()
    };
    let n = TestNode::start(opts);

    let mut c = n.client();
    c.identify(r#"{"heartbeat_interval":300000}"#);
    c.expect_ok();

    let mut c = n.client();
    c.identify(r#"{"heartbeat_interval":300001}"#);
    c.expect_error("E_BAD_BODY IDENTIFY heartbeat interval (300001) is invalid");
    c.expect_closed();

    let mut c = n.client();
    for (size, timeout) in [(524288, 1000), (-1, -1), (0, 0)] {
        c.identify(&format!(
            r#"{{"output_buffer_size":{size},"output_buffer_timeout":{timeout}}}"#
        ));
        c.expect_ok();
    }
    c.identify(r#"{"output_buffer_size":524289,"output_buffer_timeout":0}"#);
    c.expect_error("E_BAD_BODY IDENTIFY output buffer size (524289) is invalid");
    c.expect_closed();

    let mut c = n.client();
    c.identify(r#"{"output_buffer_size":0,"output_buffer_timeout":1001}"#);
    c.expect_error("E_BAD_BODY IDENTIFY output buffer timeout (1001) is invalid");
    c.expect_closed();

    let mut c = n.client();
    c.identify("{not json");
    c.expect_error("E_BAD_BODY IDENTIFY failed to decode JSON body");
    c.expect_closed();
}

#[test]
fn identify_reply_is_nsqd_json_byte_for_byte() {
    let n = node();
    let mut c = n.client();
    c.identify(r#"{"feature_negotiation":true,"tls_v1":true,"snappy":true,"deflate":true}"#);
    c.expect_response(
        br#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}"#,
    );
    c.identify(r#"{"feature_negotiation":false}"#);
    c.expect_ok();
}

#[test]
fn auth_without_auth_server_is_disabled() {
    let n = node();
    let mut c = n.client();
    c.send_with_body("AUTH", b"secret");
    c.expect_error("E_AUTH_DISABLED AUTH disabled");
    c.expect_closed();
}
