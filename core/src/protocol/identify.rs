//! IDENTIFY's JSON: the request as a client sent it, validated in nsqd's order, and the
//! feature-negotiation reply written exactly as nsqd's `json.Marshal` writes it (spec §4.1).
//!
//! Validation lives here rather than in the session so that every IDENTIFY error comes out of
//! `decode` in nsqd's order. What the values *mean* (-1 disables, 0 keeps the default, the
//! snappy/deflate conflict, upgrades) is the session's business: `Identify` keeps them as sent.

use super::gojson::{self, JsonError, Value};
use crate::error::{ErrorCode, ProtocolError};
use crate::options::Options;

/// An IDENTIFY request, every field as sent (0 / "" / false when absent or `null`), already
/// validated against the options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identify {
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
    pub feature_negotiation: bool,
    pub tls_v1: bool,
    pub snappy: bool,
    pub deflate: bool,
    pub heartbeat_interval_ms: i64,
    pub output_buffer_size: i64,
    pub output_buffer_timeout_ms: i64,
    pub msg_timeout_ms: i64,
    pub deflate_level: i64,
    pub sample_rate: i32,
    pub topology_region: String,
    pub topology_zone: String,
}

/// The feature-negotiation reply, effective values (spec §4.1 reply table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentifyReply {
    pub max_rdy_count: i64,
    pub version: String,
    pub max_msg_timeout: i64,
    pub msg_timeout: i64,
    pub tls_v1: bool,
    pub deflate: bool,
    pub deflate_level: i64,
    pub max_deflate_level: i64,
    pub snappy: bool,
    pub sample_rate: i32,
    pub auth_required: bool,
    pub output_buffer_size: i64,
    pub output_buffer_timeout: i64,
    pub topology_region: String,
    pub topology_zone: String,
}

/// The reply as compact JSON, keys in nsqd master's order (v1.3.0's keys plus the two topology
/// keys at the end), strings escaped as Go's `json.Marshal` does.
pub fn identify_reply_json(r: &IdentifyReply) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    let mut w = ObjectWriter {
        out: &mut out,
        first: true,
    };
    w.int("max_rdy_count", r.max_rdy_count);
    w.string("version", &r.version);
    w.int("max_msg_timeout", r.max_msg_timeout);
    w.int("msg_timeout", r.msg_timeout);
    w.bool("tls_v1", r.tls_v1);
    w.bool("deflate", r.deflate);
    w.int("deflate_level", r.deflate_level);
    w.int("max_deflate_level", r.max_deflate_level);
    w.bool("snappy", r.snappy);
    w.int("sample_rate", i64::from(r.sample_rate));
    w.bool("auth_required", r.auth_required);
    w.int("output_buffer_size", r.output_buffer_size);
    w.int("output_buffer_timeout", r.output_buffer_timeout);
    w.string("topology_region", &r.topology_region);
    w.string("topology_zone", &r.topology_zone);
    out.push(b'}');
    out
}

/// Decodes and validates an IDENTIFY body (spec §4.1 steps 6 and 7).
pub(super) fn parse_identify(body: &[u8], options: &Options) -> Result<Identify, ProtocolError> {
    let identify = decode_json(body)
        .map_err(|JsonError| ProtocolError::new(ErrorCode::BadBody, "IDENTIFY failed to decode JSON body"))?;
    identify
        .validate(options)
        .map_err(|detail| ProtocolError::new(ErrorCode::BadBody, format!("IDENTIFY {detail}")))?;
    Ok(identify)
}

impl Identify {
    /// nsqd's `clientV2.Identify` checks, in its order; the error is the detail after `IDENTIFY `.
    fn validate(&self, o: &Options) -> Result<(), String> {
        let hb = self.heartbeat_interval_ms;
        if !(hb == -1 || hb == 0 || (1000..=o.max_heartbeat_interval_ms).contains(&hb)) {
            return Err(format!("heartbeat interval ({hb}) is invalid"));
        }
        let t = self.output_buffer_timeout_ms;
        let t_range = o.min_output_buffer_timeout_ms..=o.max_output_buffer_timeout_ms;
        if !(t == -1 || t == 0 || t_range.contains(&t)) {
            return Err(format!("output buffer timeout ({t}) is invalid"));
        }
        let size = self.output_buffer_size;
        if !(size == -1 || size == 0 || (64..=o.max_output_buffer_size).contains(&size)) {
            return Err(format!("output buffer size ({size}) is invalid"));
        }
        let rate = self.sample_rate;
        if !(0..=99).contains(&rate) {
            return Err(format!("sample rate ({rate}) is invalid"));
        }
        let mt = self.msg_timeout_ms;
        if !(mt == 0 || (1000..=o.max_msg_timeout_ms).contains(&mt)) {
            return Err(format!("msg timeout ({mt}) is invalid"));
        }
        Ok(())
    }
}

/// `json.Unmarshal(body, &identifyDataV2)`: each member is applied in order to the field whose
/// name matches it case-insensitively; unknown members are ignored.
fn decode_json(body: &[u8]) -> Result<Identify, JsonError> {
    let mut id = Identify::default();
    gojson::decode_object(body, |key, value| {
        let Some(field) = FIELDS.iter().find(|(name, _)| go_fold_eq(key, name)).map(|f| f.1) else {
            return Ok(());
        };
        match field {
            Field::ClientId => set_string(&mut id.client_id, value),
            Field::Hostname => set_string(&mut id.hostname, value),
            Field::UserAgent => set_string(&mut id.user_agent, value),
            Field::TopologyRegion => set_string(&mut id.topology_region, value),
            Field::TopologyZone => set_string(&mut id.topology_zone, value),
            Field::FeatureNegotiation => set_bool(&mut id.feature_negotiation, value),
            Field::TlsV1 => set_bool(&mut id.tls_v1, value),
            Field::Snappy => set_bool(&mut id.snappy, value),
            Field::Deflate => set_bool(&mut id.deflate, value),
            Field::HeartbeatInterval => set_int(&mut id.heartbeat_interval_ms, value),
            Field::OutputBufferSize => set_int(&mut id.output_buffer_size, value),
            Field::OutputBufferTimeout => set_int(&mut id.output_buffer_timeout_ms, value),
            Field::MsgTimeout => set_int(&mut id.msg_timeout_ms, value),
            Field::DeflateLevel => set_int(&mut id.deflate_level, value),
            Field::SampleRate => match value {
                Value::Null => Ok(()),
                Value::Number(n) => {
                    // In range by construction: parsed as a 32-bit integer.
                    id.sample_rate = gojson::parse_int(n, 32)? as i32;
                    Ok(())
                }
                _ => Err(JsonError),
            },
        }
    })?;
    Ok(id)
}

#[derive(Clone, Copy)]
enum Field {
    ClientId,
    Hostname,
    HeartbeatInterval,
    OutputBufferSize,
    OutputBufferTimeout,
    FeatureNegotiation,
    TlsV1,
    Deflate,
    DeflateLevel,
    Snappy,
    SampleRate,
    UserAgent,
    MsgTimeout,
    TopologyRegion,
    TopologyZone,
}

/// nsqd's `identifyDataV2` JSON tags. Go's `int` is 64-bit; `sample_rate` is `int32`.
const FIELDS: [(&str, Field); 15] = [
    ("client_id", Field::ClientId),
    ("hostname", Field::Hostname),
    ("heartbeat_interval", Field::HeartbeatInterval),
    ("output_buffer_size", Field::OutputBufferSize),
    ("output_buffer_timeout", Field::OutputBufferTimeout),
    ("feature_negotiation", Field::FeatureNegotiation),
    ("tls_v1", Field::TlsV1),
    ("deflate", Field::Deflate),
    ("deflate_level", Field::DeflateLevel),
    ("snappy", Field::Snappy),
    ("sample_rate", Field::SampleRate),
    ("user_agent", Field::UserAgent),
    ("msg_timeout", Field::MsgTimeout),
    ("topology_region", Field::TopologyRegion),
    ("topology_zone", Field::TopologyZone),
];

/// Go's key match (`foldName`, Go 1.21+): both sides mapped through `ToUpper(ToLower(r))`. The
/// field names are ASCII, and the only non-ASCII runes that fold onto ASCII letters are
/// KELVIN SIGN (k), LATIN SMALL LETTER LONG S (s), and the two Turkish i's.
fn go_fold_eq(key: &str, field: &str) -> bool {
    let mut field = field.bytes();
    for c in key.chars() {
        let folded = match c {
            c if c.is_ascii() => c.to_ascii_uppercase() as u8,
            '\u{212a}' => b'K',
            '\u{17f}' => b'S',
            '\u{130}' | '\u{131}' => b'I',
            _ => return false,
        };
        match field.next() {
            Some(f) if f.to_ascii_uppercase() == folded => {}
            _ => return false,
        }
    }
    field.next().is_none()
}

fn set_string(dst: &mut String, value: Value<'_>) -> Result<(), JsonError> {
    match value {
        Value::Null => Ok(()),
        Value::Str(raw) => {
            *dst = gojson::unquote(raw);
            Ok(())
        }
        _ => Err(JsonError),
    }
}

fn set_bool(dst: &mut bool, value: Value<'_>) -> Result<(), JsonError> {
    match value {
        Value::Null => Ok(()),
        Value::Bool(b) => {
            *dst = b;
            Ok(())
        }
        _ => Err(JsonError),
    }
}

fn set_int(dst: &mut i64, value: Value<'_>) -> Result<(), JsonError> {
    match value {
        Value::Null => Ok(()),
        Value::Number(n) => {
            *dst = gojson::parse_int(n, 64)?;
            Ok(())
        }
        _ => Err(JsonError),
    }
}

/// Writes `{"key":value,...` one member at a time.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl ObjectWriter<'_> {
    fn key(&mut self, key: &str) {
        self.out.push(if self.first { b'{' } else { b',' });
        self.first = false;
        gojson::write_string(self.out, key);
        self.out.push(b':');
    }

    fn int(&mut self, key: &str, v: i64) {
        self.key(key);
        self.out.extend_from_slice(v.to_string().as_bytes());
    }

    fn bool(&mut self, key: &str, v: bool) {
        self.key(key);
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
    }

    fn string(&mut self, key: &str, v: &str) {
        self.key(key);
        gojson::write_string(self.out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Identify, String> {
        parse_identify(json.as_bytes(), &Options::default())
            .map_err(|e| String::from_utf8_lossy(&e.frame_data()).into_owned())
    }

    const JSON_ERR: &str = "E_BAD_BODY IDENTIFY failed to decode JSON body";

    #[test]
    fn reads_every_field_as_sent() {
        let id = parse(
            r#"{"client_id":"c","hostname":"h","user_agent":"go-nsq/1.1.0","short_id":"x",
                "long_id":"y","feature_negotiation":true,"tls_v1":true,"snappy":true,
                "deflate":true,"deflate_level":9,"heartbeat_interval":-1,
                "output_buffer_size":-1,"output_buffer_timeout":-1,"msg_timeout":1000,
                "sample_rate":42,"topology_region":"r","topology_zone":"z"}"#,
        )
        .unwrap();
        assert_eq!(
            id,
            Identify {
                client_id: "c".into(),
                hostname: "h".into(),
                user_agent: "go-nsq/1.1.0".into(),
                feature_negotiation: true,
                tls_v1: true,
                snappy: true,
                deflate: true,
                heartbeat_interval_ms: -1,
                output_buffer_size: -1,
                output_buffer_timeout_ms: -1,
                msg_timeout_ms: 1000,
                deflate_level: 9,
                sample_rate: 42,
                topology_region: "r".into(),
                topology_zone: "z".into(),
            }
        );
    }

    #[test]
    fn absent_and_null_leave_defaults() {
        assert_eq!(parse("{}"), Ok(Identify::default()));
        assert_eq!(parse("null"), Ok(Identify::default()));
        let id = parse(r#"{"msg_timeout":2000,"msg_timeout":null,"client_id":null}"#).unwrap();
        assert_eq!(id.msg_timeout_ms, 2000);
        assert_eq!(id.client_id, "");
    }

    #[test]
    fn keys_match_case_insensitively_last_wins() {
        let id = parse(r#"{"SNAPPY":true,"Client_ID":"a","ſnappy":false,"client_id":"b"}"#);
        let id = id.unwrap();
        assert!(!id.snappy);
        assert_eq!(id.client_id, "b");
        assert!(
            parse(r#"{"HEARTBEAT_İNTERVAL":-1}"#)
                .unwrap()
                .heartbeat_interval_ms
                == -1
        );
        assert!(!parse(r#"{"snappyy":true}"#).unwrap().snappy);
    }

    #[test]
    fn strings_are_coerced_like_go() {
        let id = parse_identify(b"{\"client_id\":\"a\xffb\\ud800\"}", &Options::default());
        assert_eq!(id.unwrap().client_id, "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn type_errors_are_decode_errors() {
        for bad in [
            r#"{"heartbeat_interval":"1000"}"#,
            r#"{"heartbeat_interval":1.0}"#,
            r#"{"heartbeat_interval":1e3}"#,
            r#"{"heartbeat_interval":true}"#,
            r#"{"heartbeat_interval":[]}"#,
            r#"{"heartbeat_interval":9223372036854775808}"#,
            r#"{"sample_rate":2147483648}"#,
            r#"{"sample_rate":-2147483649}"#,
            r#"{"client_id":1}"#,
            r#"{"client_id":{}}"#,
            r#"{"snappy":"true"}"#,
            r#"{"snappy":1}"#,
            r#"{} x"#,
            r#"[]"#,
            r#"{"feature_negotiation":true"#,
        ] {
            assert_eq!(parse(bad), Err(JSON_ERR.into()), "{bad}");
        }
        assert_eq!(parse(r#"{"heartbeat_interval":-0}"#), Ok(Identify::default()));
        assert_eq!(
            parse(r#"{"unknown":1.5e3,"x":{"y":[1,"z"]}}"#),
            Ok(Identify::default())
        );
    }

    #[test]
    fn validation_order_and_texts() {
        let cases = [
            (
                r#"{"heartbeat_interval":999}"#,
                "heartbeat interval (999) is invalid",
            ),
            (
                r#"{"heartbeat_interval":60001}"#,
                "heartbeat interval (60001) is invalid",
            ),
            (
                r#"{"heartbeat_interval":-2}"#,
                "heartbeat interval (-2) is invalid",
            ),
            (
                r#"{"output_buffer_timeout":24}"#,
                "output buffer timeout (24) is invalid",
            ),
            (
                r#"{"output_buffer_timeout":30001}"#,
                "output buffer timeout (30001) is invalid",
            ),
            (
                r#"{"output_buffer_size":63}"#,
                "output buffer size (63) is invalid",
            ),
            (
                r#"{"output_buffer_size":65537}"#,
                "output buffer size (65537) is invalid",
            ),
            (
                r#"{"output_buffer_size":-2}"#,
                "output buffer size (-2) is invalid",
            ),
            (r#"{"sample_rate":100}"#, "sample rate (100) is invalid"),
            (r#"{"sample_rate":-1}"#, "sample rate (-1) is invalid"),
            (r#"{"msg_timeout":999}"#, "msg timeout (999) is invalid"),
            (r#"{"msg_timeout":900001}"#, "msg timeout (900001) is invalid"),
            (r#"{"msg_timeout":-1}"#, "msg timeout (-1) is invalid"),
            // Heartbeat before buffer, buffer timeout before size, then rate, then msg timeout.
            (
                r#"{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1,"output_buffer_timeout":1,"heartbeat_interval":1}"#,
                "heartbeat interval (1) is invalid",
            ),
            (
                r#"{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1,"output_buffer_timeout":1}"#,
                "output buffer timeout (1) is invalid",
            ),
            (
                r#"{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1}"#,
                "output buffer size (1) is invalid",
            ),
            (
                r#"{"msg_timeout":1,"sample_rate":100}"#,
                "sample rate (100) is invalid",
            ),
        ];
        for (json, detail) in cases {
            assert_eq!(
                parse(json),
                Err(format!("E_BAD_BODY IDENTIFY {detail}")),
                "{json}"
            );
        }
        for ok in [
            r#"{"heartbeat_interval":1000,"output_buffer_timeout":25,"output_buffer_size":64}"#,
            r#"{"heartbeat_interval":60000,"output_buffer_timeout":30000}"#,
            r#"{"output_buffer_size":65536,"sample_rate":99,"msg_timeout":900000}"#,
            r#"{"msg_timeout":1000,"deflate_level":-5}"#,
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn default_reply_json() {
        let o = Options::default();
        let reply = IdentifyReply {
            max_rdy_count: o.max_rdy_count,
            version: "1.3.0".into(),
            max_msg_timeout: o.max_msg_timeout_ms,
            msg_timeout: o.msg_timeout_ms,
            deflate_level: 6,
            max_deflate_level: o.max_deflate_level,
            output_buffer_size: Options::DEFAULT_OUTPUT_BUFFER_SIZE,
            output_buffer_timeout: o.output_buffer_timeout_ms,
            ..IdentifyReply::default()
        };
        let json = identify_reply_json(&reply);
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            "{\"max_rdy_count\":2500,\"version\":\"1.3.0\",\"max_msg_timeout\":900000,\
             \"msg_timeout\":60000,\"tls_v1\":false,\"deflate\":false,\"deflate_level\":6,\
             \"max_deflate_level\":6,\"snappy\":false,\"sample_rate\":0,\"auth_required\":false,\
             \"output_buffer_size\":16384,\"output_buffer_timeout\":250,\
             \"topology_region\":\"\",\"topology_zone\":\"\"}"
        );
        assert_eq!(json.len(), 304);
    }

    #[test]
    fn reply_strings_are_html_escaped() {
        let reply = IdentifyReply {
            topology_zone: "<a&b>".into(),
            ..IdentifyReply::default()
        };
        let json = String::from_utf8(identify_reply_json(&reply)).unwrap();
        assert!(
            json.ends_with(r#""topology_zone":"\u003ca\u0026b\u003e"}"#),
            "{json}"
        );
    }
}
