//! NOP, IDENTIFY and AUTH (spec §4.12, §4.1, §4.2): the commands that set a connection up.
//!
//! IDENTIFY and AUTH bodies are bounded by `--max-body-size`, checked before the body is waited
//! for. Note nsqd checks "too big" before "invalid size" here, the reverse of PUB.

use crate::error::ErrorCode;
use crate::protocol::decode::Line;
use crate::protocol::decode::{buffered, fatal, positive_len, read_size, require_state, Decoded};
use crate::protocol::identify::parse_identify;
use crate::protocol::{ClientState, Command, DecodeCtx, DecodeError};

/// `NOP`: any state, parameters ignored, no reply.
pub(crate) fn nop(line: &Line<'_>) -> Decoded {
    Ok(Some((Command::Nop, line.end)))
}

/// `IDENTIFY\n[size][JSON]`; parameters are ignored.
pub(crate) fn identify(buf: &[u8], line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &[ClientState::Init], "IDENTIFY")?;
    let Some(body) = session_body(buf, line, ctx, "IDENTIFY")? else {
        return Ok(None);
    };
    let identify = parse_identify(&buf[body.clone()], ctx.options).map_err(DecodeError::Protocol)?;
    Ok(Some((Command::Identify(Box::new(identify)), body.end)))
}

/// `AUTH\n[size][secret]`; unlike every other command, extra parameters are refused.
pub(crate) fn auth(buf: &[u8], line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &[ClientState::Init], "AUTH")?;
    if line.param_count != 0 {
        return Err(fatal(ErrorCode::Invalid, "AUTH invalid number of parameters"));
    }
    let Some(secret) = session_body(buf, line, ctx, "AUTH")? else {
        return Ok(None);
    };
    let end = secret.end;
    Ok(Some((Command::Auth { secret }, end)))
}

/// The body after the line, sized as IDENTIFY and AUTH size it; `None` until it is buffered.
fn session_body(
    buf: &[u8],
    line: &Line<'_>,
    ctx: &DecodeCtx<'_>,
    cmd: &str,
) -> Result<Option<std::ops::Range<usize>>, DecodeError> {
    let Some(size) = read_size(buf, line.end) else {
        return Ok(None);
    };
    let max = ctx.options.max_body_size;
    if i64::from(size) > max {
        return Err(fatal(
            ErrorCode::BadBody,
            format!("{cmd} body too big {size} > {max}"),
        ));
    }
    if size <= 0 {
        return Err(fatal(
            ErrorCode::BadBody,
            format!("{cmd} invalid body size {size}"),
        ));
    }
    Ok(buffered(buf, line.end + 4, positive_len(size)))
}

#[cfg(test)]
mod tests {
    use crate::options::Options;
    use crate::protocol::cmd::testing::{ctx, err_text, run};
    use crate::protocol::{decode, ClientState, Command, Identify};

    const INIT: ClientState = ClientState::Init;

    fn framed(line: &[u8], size: i32, body: &[u8]) -> Vec<u8> {
        [line, &size.to_be_bytes(), body].concat()
    }

    #[test]
    fn nop_in_every_state() {
        for state in [ClientState::Init, ClientState::Subscribed, ClientState::Closing] {
            assert_eq!(run(state, b"NOP\nX"), Ok(Some((Command::Nop, 4))));
            assert_eq!(run(state, b"NOP extra\r\n"), Ok(Some((Command::Nop, 11))));
        }
    }

    #[test]
    fn identify_decodes_and_validates() {
        let buf = framed(b"IDENTIFY ignored\n", 28, br#"{"feature_negotiation":true}"#);
        let want = Identify {
            feature_negotiation: true,
            ..Identify::default()
        };
        assert_eq!(
            run(INIT, &buf),
            Ok(Some((Command::Identify(Box::new(want)), buf.len())))
        );
        let buf = framed(b"IDENTIFY\n", 8, b"{\"x\":1} ");
        let got = err_text(run(INIT, &framed(b"IDENTIFY\n", 6, b"{\"x\":]")));
        assert_eq!(got, "E_BAD_BODY IDENTIFY failed to decode JSON body");
        assert!(matches!(run(INIT, &buf), Ok(Some((Command::Identify(_), 21)))));
    }

    #[test]
    fn identify_errors_in_order() {
        for state in [ClientState::Subscribed, ClientState::Closing] {
            // The state is checked before anything is buffered.
            let got = err_text(run(state, b"IDENTIFY\n"));
            assert_eq!(got, "E_INVALID cannot IDENTIFY in current state");
        }
        let got = err_text(run(INIT, &framed(b"IDENTIFY\n", 5_242_881, b"")));
        assert_eq!(got, "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880");
        let got = err_text(run(INIT, &framed(b"IDENTIFY\n", 0, b"")));
        assert_eq!(got, "E_BAD_BODY IDENTIFY invalid body size 0");
        let got = err_text(run(INIT, &framed(b"IDENTIFY\n", -1, b"")));
        assert_eq!(got, "E_BAD_BODY IDENTIFY invalid body size -1");
        let got = err_text(run(
            INIT,
            &framed(b"IDENTIFY\n", 26, br#"{"heartbeat_interval":999}"#),
        ));
        assert_eq!(got, "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid");
    }

    #[test]
    fn identify_is_allowed_when_tls_is_required() {
        let o = Options::default();
        let c = crate::protocol::DecodeCtx {
            tls_required_unmet: true,
            ..ctx(INIT, &o)
        };
        assert!(matches!(
            decode(&framed(b"IDENTIFY\n", 2, b"{}"), &c),
            Ok(Some(_))
        ));
        let got = err_text(decode(b"NOP\n", &c));
        assert_eq!(got, "E_INVALID cannot NOP in current state (TLS required)");
    }

    #[test]
    fn auth_decodes_secret_range() {
        let buf = framed(b"AUTH\n", 3, b"abcNOP\n");
        assert_eq!(run(INIT, &buf), Ok(Some((Command::Auth { secret: 9..12 }, 12))));
    }

    #[test]
    fn auth_errors_in_order() {
        let got = err_text(run(ClientState::Subscribed, b"AUTH x\n"));
        assert_eq!(got, "E_INVALID cannot AUTH in current state");
        assert_eq!(
            err_text(run(INIT, b"AUTH x\n")),
            "E_INVALID AUTH invalid number of parameters"
        );
        assert_eq!(
            err_text(run(INIT, b"AUTH \n")),
            "E_INVALID AUTH invalid number of parameters"
        );
        let got = err_text(run(INIT, &framed(b"AUTH\n", i32::MAX, b"")));
        assert_eq!(got, "E_BAD_BODY AUTH body too big 2147483647 > 5242880");
        let got = err_text(run(INIT, &framed(b"AUTH\n", i32::MIN, b"")));
        assert_eq!(got, "E_BAD_BODY AUTH invalid body size -2147483648");
        assert_eq!(run(INIT, b"AUTH\n\x00\x00"), Ok(None));
        assert_eq!(run(INIT, &framed(b"AUTH\n", 3, b"ab")), Ok(None));
    }
}
