//! Checks the fuzz targets run on arbitrary bytes, shared with the corpus replay test
//! (`bins/tests/fuzz_corpus.rs`) so that stable CI exercises every committed corpus file.
//!
//! Each check feeds the real entry point and asserts an invariant beyond "does not panic"; a
//! failed assertion is a finding.

use super::identify::parse_identify;
use super::{decode, encode_error, ClientState, Command, DecodeCtx, DecodeError};
use crate::options::Options;

/// Bytes appended to show that a decided result does not depend on what follows it.
const TRAILER: &[u8] = b"NOP\nPUB t\n\x00\x00\x00\x01x";

/// The first input byte picks the connection state and flags; the rest is what the client sent
/// after the magic.
///
/// Invariants: a whole command consumes at least one byte and no more than it was given, and
/// every body range lies inside what it consumed; every size-bounded value respects the option
/// that bounds it; a decided result (command or error) is the same with more bytes behind it;
/// every strict prefix of a whole command is "need more bytes", never an error.
pub fn v2_decode(data: &[u8]) {
    let Some((&selector, buf)) = data.split_first() else {
        return;
    };
    let options = small_options();
    let ctx = DecodeCtx {
        state: match selector % 3 {
            0 => ClientState::Init,
            1 => ClientState::Subscribed,
            _ => ClientState::Closing,
        },
        heartbeats_disabled: selector & 0x10 != 0,
        tls_required_unmet: selector & 0x20 != 0,
        options: &options,
    };
    let result = decode(buf, &ctx);
    match &result {
        Ok(None) => {}
        Ok(Some((command, consumed))) => {
            let consumed = *consumed;
            assert!(
                consumed > 0 && consumed <= buf.len(),
                "consumed {consumed} of {}",
                buf.len()
            );
            check_command(command, consumed, &options);
            for cut in [consumed - 1, consumed / 2, line_end(buf).min(consumed - 1)] {
                assert_eq!(
                    decode(&buf[..cut], &ctx),
                    Ok(None),
                    "a {cut}-byte prefix of a whole {consumed}-byte command"
                );
            }
        }
        Err(DecodeError::Protocol(e)) => {
            let mut frame = Vec::new();
            encode_error(&mut frame, e);
            let size = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
            assert_eq!(size + 4, frame.len(), "error frame size");
        }
        Err(DecodeError::Close) => {}
    }
    if result != Ok(None) {
        let mut longer = buf.to_vec();
        longer.extend_from_slice(TRAILER);
        assert_eq!(
            decode(&longer, &ctx),
            result,
            "more bytes changed a decided result"
        );
    }
}

/// IDENTIFY's JSON body, parsed and validated against the options. Invariant: an accepted body
/// holds only values the validation allows.
pub fn identify_json(data: &[u8]) {
    let options = small_options();
    let Ok(identify) = parse_identify(data, &options) else {
        return;
    };
    let hb = identify.heartbeat_interval_ms;
    assert!(hb == -1 || hb == 0 || (1000..=options.max_heartbeat_interval_ms).contains(&hb));
    let size = identify.output_buffer_size;
    assert!(size == -1 || size == 0 || (64..=options.max_output_buffer_size).contains(&size));
    assert!((0..=99).contains(&identify.sample_rate));
    assert!(
        identify.msg_timeout_ms == 0
            || (1000..=options.max_msg_timeout_ms).contains(&identify.msg_timeout_ms)
    );
}

/// Defaults, with the size limits shrunk so that the fuzzer reaches them in small inputs.
fn small_options() -> Options {
    Options {
        max_msg_size: 64,
        max_body_size: 256,
        max_rdy_count: 100,
        ..Options::default()
    }
}

/// Offset just past the first `\n`, or the whole length.
fn line_end(buf: &[u8]) -> usize {
    buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |i| i + 1)
}

fn check_command(command: &Command, consumed: usize, o: &Options) {
    let inside = |r: &std::ops::Range<usize>| r.start <= r.end && r.end <= consumed;
    match command {
        Command::Rdy { count } => assert!((0..=o.max_rdy_count).contains(count), "RDY {count}"),
        Command::Req { timeout_ms, .. } => {
            assert!(
                (0..=o.max_req_timeout_ms).contains(timeout_ms),
                "REQ {timeout_ms}"
            )
        }
        Command::Pub { body, .. } => {
            assert!(
                inside(body) && body.len() as i64 <= o.max_msg_size,
                "PUB {body:?}"
            )
        }
        Command::Dpub { body, defer_ms, .. } => {
            assert!(
                inside(body) && body.len() as i64 <= o.max_msg_size,
                "DPUB {body:?}"
            );
            assert!(
                (0..=o.max_req_timeout_ms).contains(defer_ms),
                "DPUB defer {defer_ms}"
            );
        }
        Command::Mpub { bodies, .. } => {
            assert!(!bodies.is_empty(), "MPUB without messages");
            let total: usize = bodies.iter().map(|b| b.len()).sum();
            assert!(total as i64 <= o.max_body_size, "MPUB of {total} bytes");
            for b in bodies {
                assert!(inside(b) && b.len() as i64 <= o.max_msg_size, "MPUB body {b:?}");
            }
        }
        Command::Auth { secret } => assert!(inside(secret), "AUTH {secret:?}"),
        Command::Nop
        | Command::Identify(_)
        | Command::Sub { .. }
        | Command::Fin { .. }
        | Command::Touch { .. }
        | Command::Cls => {}
    }
}
