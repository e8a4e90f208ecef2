//! IDENTIFY's per-client settings are held to nsqd's bounds at both ends of every range: the last
//! value inside is accepted, the first value outside gets nsqd's exact error frame (bytes captured
//! from nsqd v1.3.0 with the same flags) and the connection is closed.
//!
//! The upper bounds come from flags (`--max-msg-timeout`, `--max-heartbeat-interval`,
//! `--max-output-buffer-size`, `--max-output-buffer-timeout`); the lower ones are nsqd's fixed
//! floors (1 s msg timeout and heartbeat, 64-byte buffer, `--min-output-buffer-timeout`).

mod common;

use common::*;
use squall_core::options::Options;

fn node() -> TestNode {
    TestNode::start(Options {
        max_msg_timeout_ms: 5000,
        max_output_buffer_size: 1000,
        ..Options::default()
    })
}

/// The whole frame the server sends, size and type included.
fn frame_bytes(c: &mut Client) -> Vec<u8> {
    let (ft, data) = c.read_frame();
    let mut frame = ((data.len() + 4) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&ft.to_be_bytes());
    frame.extend_from_slice(&data);
    frame
}

/// Every value in `accepted` gets `OK` on one connection; each in `refused` gets its frame on a
/// connection of its own, which is then closed.
fn check(n: &TestNode, field: &str, accepted: &[i64], refused: &[(i64, &[u8])]) {
    let mut c = n.client();
    for v in accepted {
        c.identify(&format!(r#"{{"{field}":{v}}}"#));
        assert_eq!(
            frame_bytes(&mut c),
            b"\x00\x00\x00\x06\x00\x00\x00\x00OK",
            "{field} {v}"
        );
    }
    for (v, expect) in refused {
        let mut c = n.client();
        c.identify(&format!(r#"{{"{field}":{v}}}"#));
        assert_eq!(frame_bytes(&mut c), *expect, "{field} {v}");
        c.expect_closed();
    }
}

#[test]
fn msg_timeout_is_one_second_to_max_msg_timeout() {
    check(
        &node(),
        "msg_timeout",
        &[0, 1000, 5000],
        &[
            (
                999,
                b"\x00\x00\x004\x00\x00\x00\x01E_BAD_BODY IDENTIFY msg timeout (999) is invalid",
            ),
            (
                5001,
                b"\x00\x00\x005\x00\x00\x00\x01E_BAD_BODY IDENTIFY msg timeout (5001) is invalid",
            ),
            (
                -1,
                b"\x00\x00\x003\x00\x00\x00\x01E_BAD_BODY IDENTIFY msg timeout (-1) is invalid",
            ),
        ],
    );
}

#[test]
fn heartbeat_interval_is_one_second_to_max_or_disabled() {
    check(
        &node(),
        "heartbeat_interval",
        &[-1, 0, 1000, 60_000],
        &[
            (
                999,
                b"\x00\x00\x00;\x00\x00\x00\x01E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid",
            ),
            (
                -2,
                b"\x00\x00\x00:\x00\x00\x00\x01E_BAD_BODY IDENTIFY heartbeat interval (-2) is invalid",
            ),
        ],
    );
}

#[test]
fn output_buffer_size_is_64_bytes_to_max_output_buffer_size() {
    check(
        &node(),
        "output_buffer_size",
        &[-1, 0, 64, 1000],
        &[
            (
                63,
                b"\x00\x00\x00:\x00\x00\x00\x01E_BAD_BODY IDENTIFY output buffer size (63) is invalid",
            ),
            (
                1001,
                b"\x00\x00\x00<\x00\x00\x00\x01E_BAD_BODY IDENTIFY output buffer size (1001) is invalid",
            ),
        ],
    );
}

#[test]
fn output_buffer_timeout_starts_at_min_output_buffer_timeout() {
    check(
        &node(),
        "output_buffer_timeout",
        &[-1, 0, 25],
        &[(
            24,
            b"\x00\x00\x00=\x00\x00\x00\x01E_BAD_BODY IDENTIFY output buffer timeout (24) is invalid",
        )],
    );
}

#[test]
fn sample_rate_is_0_to_99() {
    check(
        &node(),
        "sample_rate",
        &[0, 99],
        &[
            (
                100,
                b"\x00\x00\x004\x00\x00\x00\x01E_BAD_BODY IDENTIFY sample rate (100) is invalid",
            ),
            (
                -1,
                b"\x00\x00\x003\x00\x00\x00\x01E_BAD_BODY IDENTIFY sample rate (-1) is invalid",
            ),
        ],
    );
}
