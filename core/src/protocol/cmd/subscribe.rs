//! SUB, RDY and CLS (spec §4.3, §4.7, §4.11): a consumer's lifecycle and flow control.

use crate::error::ErrorCode;
use crate::names::Name;
use crate::protocol::decode::{fatal, parse_base10, require_state, Decoded, Line};
use crate::protocol::{go_quote, ClientState, Command, DecodeCtx};

/// `SUB <topic> <channel>`. The auth check and joining the channel come after, in the session.
pub(crate) fn sub(line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &[ClientState::Init], "SUB")?;
    if ctx.heartbeats_disabled {
        return Err(fatal(ErrorCode::Invalid, "cannot SUB with heartbeats disabled"));
    }
    if line.param_count < 2 {
        return Err(fatal(ErrorCode::Invalid, "SUB insufficient number of parameters"));
    }
    let (topic, channel) = (line.param(0), line.param(1));
    let Some(topic) = Name::new(topic) else {
        let desc = format!("SUB topic name {} is not valid", go_quote(topic));
        return Err(fatal(ErrorCode::BadTopic, desc));
    };
    let Some(channel) = Name::new(channel) else {
        let desc = format!("SUB channel name {} is not valid", go_quote(channel));
        return Err(fatal(ErrorCode::BadChannel, desc));
    };
    Ok(Some((Command::Sub { topic, channel }, line.end)))
}

/// `RDY [<count>]`: no count means 1. Closing ignores it unparsed, so it decodes to `Nop`.
pub(crate) fn rdy(line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    if ctx.state == ClientState::Closing {
        return Ok(Some((Command::Nop, line.end)));
    }
    require_state(ctx, &[ClientState::Subscribed], "RDY")?;
    let count = if line.param_count == 0 {
        1
    } else {
        let raw = line.param(0);
        let Some(parsed) = parse_base10(raw) else {
            return Err(fatal(
                ErrorCode::Invalid,
                [b"RDY could not parse count ", raw].concat(),
            ));
        };
        parsed as i64 // nsqd's int64(uint64): wraps, and the range check below catches it
    };
    let max = ctx.options.max_rdy_count;
    if count < 0 || count > max {
        let desc = format!("RDY count {count} out of range 0-{max}");
        return Err(fatal(ErrorCode::Invalid, desc));
    }
    Ok(Some((Command::Rdy { count }, line.end)))
}

/// `CLS`: only while subscribed.
pub(crate) fn cls(line: &Line<'_>, ctx: &DecodeCtx<'_>) -> Decoded {
    require_state(ctx, &[ClientState::Subscribed], "CLS")?;
    Ok(Some((Command::Cls, line.end)))
}

#[cfg(test)]
mod tests {
    use crate::names::Name;
    use crate::options::Options;
    use crate::protocol::cmd::testing::{ctx, err_text, run};
    use crate::protocol::{decode, ClientState, Command, DecodeCtx};

    const INIT: ClientState = ClientState::Init;
    const SUBSCRIBED: ClientState = ClientState::Subscribed;
    const CLOSING: ClientState = ClientState::Closing;

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn sub_decodes() {
        let want = Command::Sub {
            topic: name("t"),
            channel: name("c#ephemeral"),
        };
        assert_eq!(run(INIT, b"SUB t c#ephemeral extra\n"), Ok(Some((want, 24))));
    }

    #[test]
    fn sub_errors_in_order() {
        for state in [SUBSCRIBED, CLOSING] {
            assert_eq!(
                err_text(run(state, b"SUB\n")),
                "E_INVALID cannot SUB in current state"
            );
        }
        let o = Options::default();
        let no_hb = DecodeCtx {
            heartbeats_disabled: true,
            ..ctx(INIT, &o)
        };
        let got = err_text(decode(b"SUB\n", &no_hb));
        assert_eq!(got, "E_INVALID cannot SUB with heartbeats disabled");
        let insufficient = "E_INVALID SUB insufficient number of parameters";
        assert_eq!(err_text(run(INIT, b"SUB\n")), insufficient);
        assert_eq!(err_text(run(INIT, b"SUB t\n")), insufficient);
        let got = err_text(run(INIT, b"SUB test:ephemeral !\n"));
        assert_eq!(got, r#"E_BAD_TOPIC SUB topic name "test:ephemeral" is not valid"#);
        let got = err_text(run(INIT, b"SUB  c\n"));
        assert_eq!(got, r#"E_BAD_TOPIC SUB topic name "" is not valid"#);
        let got = err_text(run(INIT, b"SUB t \xff\"\n"));
        assert_eq!(got, r#"E_BAD_CHANNEL SUB channel name "\xff\"" is not valid"#);
    }

    #[test]
    fn rdy_counts() {
        assert_eq!(
            run(SUBSCRIBED, b"RDY\n"),
            Ok(Some((Command::Rdy { count: 1 }, 4)))
        );
        assert_eq!(
            run(SUBSCRIBED, b"RDY \n"),
            Ok(Some((Command::Rdy { count: 0 }, 5)))
        );
        assert_eq!(
            run(SUBSCRIBED, b"RDY 0\n"),
            Ok(Some((Command::Rdy { count: 0 }, 6)))
        );
        assert_eq!(
            run(SUBSCRIBED, b"RDY 2500\n"),
            Ok(Some((Command::Rdy { count: 2500 }, 9)))
        );
    }

    #[test]
    fn rdy_errors() {
        assert_eq!(
            err_text(run(INIT, b"RDY 1\n")),
            "E_INVALID cannot RDY in current state"
        );
        assert_eq!(
            err_text(run(SUBSCRIBED, b"RDY -1\n")),
            "E_INVALID RDY could not parse count -1"
        );
        let got = err_text(run(SUBSCRIBED, b"RDY 2501\n"));
        assert_eq!(got, "E_INVALID RDY count 2501 out of range 0-2500");
        // 2^63 wraps to i64::MIN.
        let got = err_text(run(SUBSCRIBED, b"RDY 9223372036854775808\n"));
        assert_eq!(
            got,
            "E_INVALID RDY count -9223372036854775808 out of range 0-2500"
        );
        // 2^64 + 5 wraps to 5.
        let wrapped = run(SUBSCRIBED, b"RDY 18446744073709551621\n");
        assert_eq!(wrapped, Ok(Some((Command::Rdy { count: 5 }, 25))));
    }

    #[test]
    fn rdy_is_ignored_while_closing() {
        assert_eq!(run(CLOSING, b"RDY garbage\n"), Ok(Some((Command::Nop, 12))));
        assert_eq!(run(CLOSING, b"RDY 99999\n"), Ok(Some((Command::Nop, 10))));
    }

    #[test]
    fn cls_only_while_subscribed() {
        assert_eq!(run(SUBSCRIBED, b"CLS\n"), Ok(Some((Command::Cls, 4))));
        for state in [INIT, CLOSING] {
            assert_eq!(
                err_text(run(state, b"CLS\n")),
                "E_INVALID cannot CLS in current state"
            );
        }
    }
}
