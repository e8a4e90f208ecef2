//! nsqlookupd's TCP protocol V1 on the wire (spec B.1, B.5), both sides.
//!
//! Server side: [`decode_command`] is the one place bytes become a [`Command`] (or the exact
//! nsqlookupd error); [`encode_response`] frames an answer as `[i32 BE size][payload]`.
//! Client side (for squalld's lookup loop): `encode_*` build commands as go-nsq does (name,
//! each parameter after a space, `\n`, then an optional `[i32 BE size][body]`), and
//! [`decode_response`] reads one framed answer.

use bytes::Bytes;
use thiserror::Error;

use super::peer::{IdentifyRequest, PeerInfo};
use squall_core::names::is_valid;

/// The four bytes a V1 client sends first.
pub const MAGIC_V1: &[u8; 4] = b"  V1";
/// Longest command line accepted. The longest valid one, `UNREGISTER <64> <64>\n`, is 142
/// bytes; Go's reader has no bound, Squall's input buffer must have one.
pub const LINE_BYTES_MAX: usize = 16 * 1024;
/// Largest IDENTIFY body. nsqd sends about 200 bytes; nsqlookupd trusts any size.
pub const IDENTIFY_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest response a client accepts: nsqd's `--max-body-size` default (spec B.6).
pub const RESPONSE_BYTES_MAX: usize = 5 * 1024 * 1024;
/// Input bytes one whole command may need: its line, the size prefix, the IDENTIFY body.
pub const COMMAND_BYTES_MAX: usize = LINE_BYTES_MAX + 4 + IDENTIFY_BODY_BYTES_MAX;

/// A decoded V1 command. Names are validated; the IDENTIFY body is decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ping,
    /// `remote_address` is still whatever the client sent; the session overwrites it.
    Identify(PeerInfo),
    Register {
        topic: String,
        channel: Option<String>,
    },
    Unregister {
        topic: String,
        channel: Option<String>,
    },
}

/// A V1 protocol error. Every one is fatal in nsqlookupd: the framed `"<code> <text>"` is sent
/// and the connection closed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{code} {text}")]
pub struct ProtocolError {
    pub code: &'static str,
    pub text: String,
}

impl ProtocolError {
    fn new(code: &'static str, text: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            text: text.into(),
        }
    }

    /// The response payload: `"<code> <text>"`.
    pub fn payload(&self) -> Vec<u8> {
        format!("{} {}", self.code, self.text).into_bytes()
    }
}

/// Go's `strings.TrimSpace`: Unicode white space on valid UTF-8, ASCII white space (with `\v`)
/// otherwise.
fn trim_space(line: &[u8]) -> &[u8] {
    if let Ok(s) = std::str::from_utf8(line) {
        return s.trim().as_bytes();
    }
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &line[start..end]
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes one command from the front of `buf`: `Ok(None)` until the whole command (line, and
/// for IDENTIFY its size and body) is buffered; `Ok(Some((command, consumed)))`; or the error
/// nsqlookupd sends. `identified` is the session's state, because nsqlookupd checks it before
/// anything else: IDENTIFY on an identified connection fails without its body being read, and
/// REGISTER/UNREGISTER before IDENTIFY fail before their parameters are looked at.
pub fn decode_command(buf: &[u8], identified: bool) -> Result<Option<(Command, usize)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > LINE_BYTES_MAX {
            return Err(ProtocolError::new(
                "E_INVALID",
                format!("command line longer than {LINE_BYTES_MAX} bytes"),
            ));
        }
        return Ok(None);
    };
    if nl > LINE_BYTES_MAX {
        // The same answer as when the first `LINE_BYTES_MAX + 1` bytes arrive without the `\n`:
        // how the bytes were split into reads must not decide whether a line is accepted.
        return Err(ProtocolError::new(
            "E_INVALID",
            format!("command line longer than {LINE_BYTES_MAX} bytes"),
        ));
    }
    let line_len = nl + 1;
    let params: Vec<&[u8]> = trim_space(&buf[..nl]).split(|&b| b == b' ').collect();
    let name = params[0];
    match name {
        b"PING" => Ok(Some((Command::Ping, line_len))),
        b"IDENTIFY" => {
            if identified {
                return Err(ProtocolError::new("E_INVALID", "cannot IDENTIFY again"));
            }
            decode_identify_body(&buf[line_len..])
                .map(|found| found.map(|(peer, body_len)| (Command::Identify(peer), line_len + body_len)))
        }
        b"REGISTER" | b"UNREGISTER" => {
            let verb = if name == b"REGISTER" {
                "REGISTER"
            } else {
                "UNREGISTER"
            };
            if !identified {
                return Err(ProtocolError::new("E_INVALID", "client must IDENTIFY"));
            }
            let (topic, channel) = topic_channel(verb, &params[1..])?;
            let command = if verb == "REGISTER" {
                Command::Register { topic, channel }
            } else {
                Command::Unregister { topic, channel }
            };
            Ok(Some((command, line_len)))
        }
        _ => Err(ProtocolError::new(
            "E_INVALID",
            format!("invalid command {}", lossy(name)),
        )),
    }
}

/// `[i32 BE size][JSON]` after the IDENTIFY line.
fn decode_identify_body(buf: &[u8]) -> Result<Option<(PeerInfo, usize)>, ProtocolError> {
    let Some(size) = buf.get(..4) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    // Go panics on a negative size (make with a negative length); Squall refuses it instead.
    let Ok(size) = usize::try_from(size) else {
        return Err(ProtocolError::new(
            "E_BAD_BODY",
            format!("IDENTIFY invalid body size {size}"),
        ));
    };
    if size > IDENTIFY_BODY_BYTES_MAX {
        return Err(ProtocolError::new(
            "E_BAD_BODY",
            format!("IDENTIFY body too big {size} > {IDENTIFY_BODY_BYTES_MAX}"),
        ));
    }
    let Some(body) = buf.get(4..4 + size) else {
        return Ok(None);
    };
    let peer = PeerInfo::from_identify_body(body)
        .map_err(|_| ProtocolError::new("E_BAD_BODY", "IDENTIFY failed to decode JSON body"))?;
    // remote_address is overwritten by the session before the check, as in nsqlookupd, but it
    // plays no part in it.
    if !peer.has_required_fields() {
        return Err(ProtocolError::new("E_BAD_BODY", "IDENTIFY missing fields"));
    }
    Ok(Some((peer, 4 + size)))
}

/// nsqlookupd's `getTopicChan`: parameters beyond the second are ignored; an empty channel
/// (absent, or `REGISTER t ` trimmed away) means "topic only".
fn topic_channel(verb: &str, params: &[&[u8]]) -> Result<(String, Option<String>), ProtocolError> {
    let Some(&topic) = params.first() else {
        return Err(ProtocolError::new(
            "E_INVALID",
            format!("{verb} insufficient number of params"),
        ));
    };
    let channel = params.get(1).copied().unwrap_or(b"");
    if !is_valid(topic) {
        return Err(ProtocolError::new(
            "E_BAD_TOPIC",
            format!("{verb} topic name '{}' is not valid", lossy(topic)),
        ));
    }
    if !channel.is_empty() && !is_valid(channel) {
        return Err(ProtocolError::new(
            "E_BAD_CHANNEL",
            format!("{verb} channel name '{}' is not valid", lossy(channel)),
        ));
    }
    let channel = (!channel.is_empty()).then(|| lossy(channel));
    Ok((lossy(topic), channel))
}

/// Appends one framed response: `[i32 BE size][payload]` (no frame type, unlike V2).
pub fn encode_response(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

fn encode_line(name: &str, params: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(name.as_bytes());
    for p in params {
        out.push(b' ');
        out.extend_from_slice(p.as_bytes());
    }
    out.push(b'\n');
}

/// `PING\n`.
pub fn encode_ping(out: &mut Vec<u8>) {
    encode_line("PING", &[], out);
}

/// `IDENTIFY\n[i32 BE size][JSON]`.
pub fn encode_identify(body: &IdentifyRequest, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let json = crate::httpd::to_go_json(body)?;
    encode_line("IDENTIFY", &[], out);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// `REGISTER <topic>[ <channel>]\n`.
pub fn encode_register(topic: &str, channel: Option<&str>, out: &mut Vec<u8>) {
    match channel {
        Some(c) => encode_line("REGISTER", &[topic, c], out),
        None => encode_line("REGISTER", &[topic], out),
    }
}

/// `UNREGISTER <topic>[ <channel>]\n`.
pub fn encode_unregister(topic: &str, channel: Option<&str>, out: &mut Vec<u8>) {
    match channel {
        Some(c) => encode_line("UNREGISTER", &[topic, c], out),
        None => encode_line("UNREGISTER", &[topic], out),
    }
}

/// One response as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `OK`.
    Ok,
    /// An `E_*` error (the server closes after it); `text` is what follows the code.
    Error { code: String, text: String },
    /// Anything else: IDENTIFY's JSON.
    Data(Bytes),
}

/// A response a client must refuse; the connection is unusable afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ResponseError {
    #[error("response of {size} bytes is over the {max} byte limit")]
    TooBig { size: u32, max: usize },
}

/// Decodes one framed response from the front of `buf` (`Ok(None)` until it is all there).
pub fn decode_response(buf: &[u8], max: usize) -> Result<Option<(Reply, usize)>, ResponseError> {
    let Some(size) = buf.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    if size as usize > max {
        return Err(ResponseError::TooBig { size, max });
    }
    let Some(payload) = buf.get(4..4 + size as usize) else {
        return Ok(None);
    };
    let reply = if payload == b"OK" {
        Reply::Ok
    } else if payload.starts_with(b"E_") {
        let text = lossy(payload);
        let (code, rest) = text.split_once(' ').unwrap_or((&text, ""));
        Reply::Error {
            code: code.to_string(),
            text: rest.to_string(),
        }
    } else {
        Reply::Data(Bytes::copy_from_slice(payload))
    };
    Ok(Some((reply, 4 + size as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(buf: &[u8], identified: bool) -> String {
        match decode_command(buf, identified) {
            Err(e) => e.to_string(),
            other => panic!("{:?} should fail, got {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn ok(buf: &[u8], identified: bool) -> (Command, usize) {
        decode_command(buf, identified).unwrap().unwrap()
    }

    #[test]
    fn a_long_line_is_refused_whether_or_not_its_newline_has_arrived() {
        let mut line = b"PING".to_vec();
        line.resize(LINE_BYTES_MAX + 1, b' ');
        let without_newline = err(&line, false);
        line.push(b'\n');
        assert_eq!(err(&line, false), without_newline);
        let mut longest = b"PING".to_vec();
        longest.resize(LINE_BYTES_MAX, b' ');
        longest.push(b'\n');
        assert_eq!(ok(&longest, false), (Command::Ping, LINE_BYTES_MAX + 1));
    }

    const BODY: &[u8] =
        br#"{"broadcast_address":"h","hostname":"h","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#;

    fn identify_bytes(body: &[u8]) -> Vec<u8> {
        let mut v = b"IDENTIFY\n".to_vec();
        v.extend_from_slice(&(body.len() as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn ping_and_register_lines() {
        assert_eq!(ok(b"PING\n", false), (Command::Ping, 5));
        assert_eq!(ok(b"  PING extra \r\nX", false), (Command::Ping, 15));
        let reg = |t: &str, c: Option<&str>| Command::Register {
            topic: t.into(),
            channel: c.map(Into::into),
        };
        assert_eq!(ok(b"REGISTER t c\n", true).0, reg("t", Some("c")));
        assert_eq!(ok(b"REGISTER t\n", true).0, reg("t", None));
        assert_eq!(ok(b"REGISTER t c ignored\n", true).0, reg("t", Some("c")));
        assert_eq!(ok(b"REGISTER t \n", true).0, reg("t", None));
        assert_eq!(
            ok(b"UNREGISTER t#ephemeral\n", true).0,
            Command::Unregister {
                topic: "t#ephemeral".into(),
                channel: None
            }
        );
        assert_eq!(decode_command(b"REGISTER t", true), Ok(None));
    }

    #[test]
    fn exact_error_texts() {
        assert_eq!(err(b"FOO bar\n", false), "E_INVALID invalid command FOO");
        assert_eq!(err(b"\n", true), "E_INVALID invalid command ");
        assert_eq!(err(b"ping\n", true), "E_INVALID invalid command ping");
        assert_eq!(err(b"REGISTER t\n", false), "E_INVALID client must IDENTIFY");
        assert_eq!(err(b"UNREGISTER\n", false), "E_INVALID client must IDENTIFY");
        assert_eq!(
            err(b"REGISTER\n", true),
            "E_INVALID REGISTER insufficient number of params"
        );
        assert_eq!(
            err(b"UNREGISTER\n", true),
            "E_INVALID UNREGISTER insufficient number of params"
        );
        assert_eq!(
            err(b"REGISTER a:b\n", true),
            "E_BAD_TOPIC REGISTER topic name 'a:b' is not valid"
        );
        assert_eq!(
            err(b"REGISTER  c\n", true),
            "E_BAD_TOPIC REGISTER topic name '' is not valid"
        );
        assert_eq!(
            err(b"UNREGISTER t c!\n", true),
            "E_BAD_CHANNEL UNREGISTER channel name 'c!' is not valid"
        );
        assert_eq!(err(b"IDENTIFY\n", true), "E_INVALID cannot IDENTIFY again");
    }

    #[test]
    fn identify_body() {
        let bytes = identify_bytes(BODY);
        for cut in 0..bytes.len() {
            assert_eq!(decode_command(&bytes[..cut], false), Ok(None), "cut {cut}");
        }
        let (cmd, used) = ok(&bytes, false);
        assert_eq!(used, bytes.len());
        let Command::Identify(peer) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!((peer.tcp_port, peer.http_port), (4150, 4151));

        assert_eq!(
            err(&identify_bytes(b"{"), false),
            "E_BAD_BODY IDENTIFY failed to decode JSON body"
        );
        assert_eq!(
            err(&identify_bytes(b""), false),
            "E_BAD_BODY IDENTIFY failed to decode JSON body"
        );
        assert_eq!(
            err(
                &identify_bytes(br#"{"broadcast_address":"h","tcp_port":1,"http_port":2}"#),
                false
            ),
            "E_BAD_BODY IDENTIFY missing fields"
        );
        let mut negative = b"IDENTIFY\n".to_vec();
        negative.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(err(&negative, false), "E_BAD_BODY IDENTIFY invalid body size -1");
        let mut huge = b"IDENTIFY\n".to_vec();
        huge.extend_from_slice(&(IDENTIFY_BODY_BYTES_MAX as i32 + 1).to_be_bytes());
        assert!(err(&huge, false).starts_with("E_BAD_BODY IDENTIFY body too big"));
    }

    #[test]
    fn long_lines_are_refused() {
        assert_eq!(decode_command(&[b'A'; LINE_BYTES_MAX], false), Ok(None));
        assert!(err(&[b'A'; LINE_BYTES_MAX + 1], false).starts_with("E_INVALID"));
    }

    #[test]
    fn client_side_round_trip() {
        let mut out = Vec::new();
        let req = IdentifyRequest {
            broadcast_address: "h".into(),
            hostname: "h".into(),
            http_port: 4151,
            tcp_port: 4150,
            version: "1.3.0".into(),
            ..IdentifyRequest::default()
        };
        encode_identify(&req, &mut out).unwrap();
        encode_register("t", Some("c"), &mut out);
        encode_register("t", None, &mut out);
        encode_unregister("t", Some("c"), &mut out);
        encode_ping(&mut out);
        let (cmd, used) = ok(&out, false);
        let Command::Identify(peer) = cmd else { panic!() };
        assert_eq!(peer.broadcast_address, "h");
        let rest = &out[used..];
        assert_eq!(rest, b"REGISTER t c\nREGISTER t\nUNREGISTER t c\nPING\n");

        let mut framed = Vec::new();
        encode_response(b"OK", &mut framed);
        encode_response(b"E_INVALID client must IDENTIFY", &mut framed);
        encode_response(b"{}", &mut framed);
        assert_eq!(&framed[..6], b"\x00\x00\x00\x02OK");
        let (r1, n1) = decode_response(&framed, RESPONSE_BYTES_MAX).unwrap().unwrap();
        let (r2, n2) = decode_response(&framed[n1..], RESPONSE_BYTES_MAX)
            .unwrap()
            .unwrap();
        let (r3, _) = decode_response(&framed[n1 + n2..], RESPONSE_BYTES_MAX)
            .unwrap()
            .unwrap();
        assert_eq!(r1, Reply::Ok);
        assert_eq!(
            r2,
            Reply::Error {
                code: "E_INVALID".into(),
                text: "client must IDENTIFY".into()
            }
        );
        assert_eq!(r3, Reply::Data(Bytes::from_static(b"{}")));
        assert_eq!(decode_response(&framed[..5], RESPONSE_BYTES_MAX), Ok(None));
        assert!(decode_response(&framed, 1).is_err());
    }
}
