//! FIN, REQ and TOUCH (spec §4.8 to §4.10): a consumer's answers about in-flight messages.
//!
//! Allowed while subscribed and while closing (a closing client still finishes its messages).
//! Only the syntax is checked here; "not in flight" is the non-fatal `E_*_FAILED` the session
//! raises.

use crate::error::ErrorCode;
use crate::protocol::decode::{duration_ns, fatal, message_id, parse_base10, require_state, Decoded, Line};
use crate::protocol::{ClientState, Command, DecodeCtx};

const ACK_STATES: [ClientState; 2] = [ClientState::Subscribed, ClientState::Closing];

/// `FIN <id>`.
pub(crate) fn fin(line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &ACK_STATES, "FIN")?;
    if line.param_count < 1 {
        return Err(fatal(ErrorCode::Invalid, "FIN insufficient number of params"));
    }
    let id = message_id(line.param(0))?;
    Ok(Some((Command::Fin { id }, line.end)))
}

/// `REQ <id> <timeout_ms>`: the timeout is clamped to `[0, --max-req-timeout]`, never refused.
pub(crate) fn req(line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &ACK_STATES, "REQ")?;
    if line.param_count < 2 {
        return Err(fatal(ErrorCode::Invalid, "REQ insufficient number of params"));
    }
    let id = message_id(line.param(0))?;
    let raw = line.param(1);
    let Some(ms) = parse_base10(raw) else {
        return Err(fatal(
            ErrorCode::Invalid,
            [b"REQ could not parse timeout ", raw].concat(),
        ));
    };
    // nsqd clamps the wrapped nanosecond duration; a wrapped value that is not a whole number of
    // milliseconds is truncated to one here.
    let max_ms = ctx.options.max_req_timeout_ms;
    let ns = i128::from(duration_ns(ms));
    let timeout_ms = if ns < 0 {
        0
    } else if ns > i128::from(max_ms) * 1_000_000 {
        max_ms
    } else {
        (ns / 1_000_000) as i64
    };
    Ok(Some((Command::Req { id, timeout_ms }, line.end)))
}

/// `TOUCH <id>`.
pub(crate) fn touch(line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &ACK_STATES, "TOUCH")?;
    if line.param_count < 1 {
        return Err(fatal(ErrorCode::Invalid, "TOUCH insufficient number of params"));
    }
    let id = message_id(line.param(0))?;
    Ok(Some((Command::Touch { id }, line.end)))
}

#[cfg(test)]
mod tests {
    use crate::message::MessageId;
    use crate::protocol::cmd::testing::{err_text, run};
    use crate::protocol::{ClientState, Command};

    const SUBSCRIBED: ClientState = ClientState::Subscribed;
    const CLOSING: ClientState = ClientState::Closing;
    const ID: MessageId = MessageId(*b"0123456789abcdef");

    #[test]
    fn decodes_in_subscribed_and_closing() {
        for state in [SUBSCRIBED, CLOSING] {
            assert_eq!(
                run(state, b"FIN 0123456789abcdef\n"),
                Ok(Some((Command::Fin { id: ID }, 21)))
            );
            let touch = run(state, b"TOUCH 0123456789abcdef x\n");
            assert_eq!(touch, Ok(Some((Command::Touch { id: ID }, 25))));
            let req = run(state, b"REQ 0123456789abcdef 1000\n");
            assert_eq!(
                req,
                Ok(Some((
                    Command::Req {
                        id: ID,
                        timeout_ms: 1000
                    },
                    26
                )))
            );
        }
        // Content is not checked: any 16 bytes make an ID.
        let raw_id = MessageId(*b"\x00\xff!!!!!!!!!!!!!!");
        let buf = b"FIN \x00\xff!!!!!!!!!!!!!!\n";
        assert_eq!(
            run(SUBSCRIBED, buf),
            Ok(Some((Command::Fin { id: raw_id }, buf.len())))
        );
    }

    #[test]
    fn state_errors() {
        for (cmd, line) in [
            ("FIN", &b"FIN 0123456789abcdef\n"[..]),
            ("REQ", b"REQ 0123456789abcdef 0\n"),
            ("TOUCH", b"TOUCH 0123456789abcdef\n"),
        ] {
            let got = err_text(run(ClientState::Init, line));
            assert_eq!(got, format!("E_INVALID cannot {cmd} in current state"));
        }
    }

    #[test]
    fn param_and_id_errors() {
        assert_eq!(
            err_text(run(SUBSCRIBED, b"FIN\n")),
            "E_INVALID FIN insufficient number of params"
        );
        let touch = err_text(run(SUBSCRIBED, b"TOUCH\n"));
        assert_eq!(touch, "E_INVALID TOUCH insufficient number of params");
        let req = err_text(run(SUBSCRIBED, b"REQ 0123456789abcdef\n"));
        assert_eq!(req, "E_INVALID REQ insufficient number of params");
        for line in [
            &b"FIN \n"[..],
            b"FIN 0123456789abcde\n",
            b"FIN 0123456789abcdef0\n",
            b"TOUCH abc\n",
            b"REQ abc x\n",
        ] {
            assert_eq!(err_text(run(SUBSCRIBED, line)), "E_INVALID invalid message ID");
        }
        let got = err_text(run(SUBSCRIBED, b"REQ 0123456789abcdef -1\n"));
        assert_eq!(got, "E_INVALID REQ could not parse timeout -1");
    }

    #[test]
    fn req_timeout_is_clamped() {
        let req = |line: &[u8]| match run(SUBSCRIBED, line) {
            Ok(Some((Command::Req { timeout_ms, .. }, _))) => timeout_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(req(b"REQ 0123456789abcdef 0\n"), 0);
        assert_eq!(req(b"REQ 0123456789abcdef \n"), 0);
        assert_eq!(req(b"REQ 0123456789abcdef 3600000\n"), 3_600_000);
        assert_eq!(req(b"REQ 0123456789abcdef 3600001\n"), 3_600_000);
        // Overflows int64 nanoseconds: negative in Go, clamped to 0.
        assert_eq!(req(b"REQ 0123456789abcdef 9223372036855\n"), 0);
        // 2^58 ms wraps to exactly 0 ns.
        assert_eq!(req(b"REQ 0123456789abcdef 288230376151711744\n"), 0);
    }
}
