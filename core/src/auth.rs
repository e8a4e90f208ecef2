//! AUTH (spec §4.2): what the auth server is asked, what its answer means, and the check PUB,
//! MPUB, DPUB and SUB run against the cached answer. Pure values: the HTTP query itself runs on
//! a thread outside the shard, which hands back an `AuthReply`.
//!
//! The answer is read with serde_json and Go's case-insensitive key matching; regexes are Rust's
//! `regex` crate, whose syntax is RE2's (what Go's `regexp` implements) for everything an auth
//! server is likely to send.

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

/// A query for the auth server, on behalf of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    pub conn: u64,
    /// Tells this query's reply from an older one for the same connection.
    pub ticket: u64,
    /// The client's IP, without port or brackets.
    pub remote_ip: String,
    pub tls: bool,
    /// Subject CN of the client's TLS certificate, else empty.
    pub common_name: String,
    pub secret: Vec<u8>,
}

impl AuthRequest {
    /// nsqd's query string: `url.Values.Encode()`, keys sorted, values `QueryEscape`d.
    pub fn query_string(&self) -> String {
        let mut q = String::with_capacity(64 + self.secret.len() * 3);
        q.push_str("common_name=");
        query_escape(&mut q, self.common_name.as_bytes());
        q.push_str("&remote_ip=");
        query_escape(&mut q, self.remote_ip.as_bytes());
        q.push_str("&secret=");
        query_escape(&mut q, &self.secret);
        q.push_str(if self.tls { "&tls=true" } else { "&tls=false" });
        q
    }
}

impl AuthRequest {
    /// The body of a `post` query (`--auth-http-request-method=post`): the same parameters as a
    /// JSON object of one-element arrays, keys sorted (Go marshals `url.Values`).
    pub fn json_body(&self) -> Vec<u8> {
        let secret = String::from_utf8_lossy(&self.secret);
        let fields = [
            ("common_name", self.common_name.as_str()),
            ("remote_ip", self.remote_ip.as_str()),
            ("secret", &secret),
            ("tls", if self.tls { "true" } else { "false" }),
        ];
        let mut out = Vec::with_capacity(96 + self.secret.len());
        for (i, (key, value)) in fields.into_iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":[");
            crate::protocol::write_go_json_string(&mut out, value);
            out.push(b']');
        }
        out.push(b'}');
        out
    }
}

/// The URL an `--auth-http-address` names: a full URL as given, else `http://<addr>/auth`.
pub fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}/auth")
    }
}

/// Go's `url.QueryEscape`, byte by byte.
fn query_escape(out: &mut String, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in raw {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
    }
}

/// The answer to an `AuthRequest`: the new state, or why there is none (logged, never sent to
/// the client).
#[derive(Debug)]
pub struct AuthReply {
    pub conn: u64,
    pub ticket: u64,
    pub result: Result<AuthState, String>,
}

/// One entry of the auth server's `authorizations`.
#[derive(Debug, Clone)]
pub struct Authorization {
    topic: Regex,
    channels: Vec<Regex>,
    publish: bool,
    subscribe: bool,
}

impl Authorization {
    /// nsqd's rule: `subscribe` is needed when a channel is named, `publish` otherwise; the topic
    /// regex must match somewhere in the topic, and some channel regex somewhere in the channel
    /// (the empty string for a publish, so an entry without channels never allows publishing).
    fn allows(&self, topic: &str, channel: &str) -> bool {
        let permitted = if channel.is_empty() {
            self.publish
        } else {
            self.subscribe
        };
        permitted && self.topic.is_match(topic) && self.channels.iter().any(|c| c.is_match(channel))
    }
}

/// What the auth server granted a connection, until `expires`.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub identity: String,
    pub identity_url: String,
    pub expires: Instant,
    pub authorizations: Vec<Authorization>,
}

impl AuthState {
    /// Reads a 200 answer's body (spec §4.2): `ttl` must be positive, every permission
    /// `subscribe` or `publish`, every regex valid.
    pub fn parse(body: &[u8], now: Instant) -> Result<AuthState, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(_) = v else {
            return Err("auth reply is not a JSON object".into());
        };
        let ttl = match member(&v, "ttl") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("invalid ttl {n}"))?,
            Some(other) => return Err(format!("invalid ttl {other}")),
        };
        let identity = string_member(&v, "identity")?;
        let identity_url = string_member(&v, "identity_url")?;
        let mut authorizations = Vec::new();
        for entry in array_member(&v, "authorizations")? {
            if !entry.is_object() {
                return Err(format!("invalid authorization {entry}"));
            }
            let topic = string_member(entry, "topic")?;
            let topic = Regex::new(&topic).map_err(|e| format!("unable to compile topic {topic:?} {e}"))?;
            let mut channels = Vec::new();
            for c in array_member(entry, "channels")? {
                let c = c.as_str().ok_or_else(|| format!("invalid channel {c}"))?;
                channels.push(Regex::new(c).map_err(|e| format!("unable to compile channel {c:?} {e}"))?);
            }
            let (mut publish, mut subscribe) = (false, false);
            for p in array_member(entry, "permissions")? {
                match p.as_str() {
                    Some("publish") => publish = true,
                    Some("subscribe") => subscribe = true,
                    _ => return Err(format!("unknown permission {p}")),
                }
            }
            authorizations.push(Authorization {
                topic,
                channels,
                publish,
                subscribe,
            });
        }
        if ttl <= 0 {
            return Err(format!("invalid TTL {ttl} (must be >0)"));
        }
        Ok(AuthState {
            identity,
            identity_url,
            expires: now + Duration::from_secs(ttl as u64),
            authorizations,
        })
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        now > self.expires
    }

    /// Whether any authorization allows the command; `channel` is empty for publishes.
    pub fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        self.authorizations.iter().any(|a| a.allows(topic, channel))
    }
}

/// A member by Go's key matching: the exact name first, else the first case-insensitive match.
fn member<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn string_member(v: &Value, key: &str) -> Result<String, String> {
    match member(v, key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("invalid {key} {other}")),
    }
}

fn array_member<'a>(v: &'a Value, key: &str) -> Result<&'a [Value], String> {
    match member(v, key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!("invalid {key} {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(body: &str) -> Result<AuthState, String> {
        AuthState::parse(body.as_bytes(), Instant::now())
    }

    #[test]
    fn query_is_sorted_and_escaped_like_go() {
        let r = AuthRequest {
            conn: 1,
            ticket: 1,
            remote_ip: "::1".into(),
            tls: false,
            common_name: String::new(),
            secret: b"a b&c=d/\xff~".to_vec(),
        };
        assert_eq!(
            r.query_string(),
            "common_name=&remote_ip=%3A%3A1&secret=a+b%26c%3Dd%2F%FF~&tls=false"
        );
        assert_eq!(
            r.json_body(),
            "{\"common_name\":[\"\"],\"remote_ip\":[\"::1\"],\"secret\":[\"a b\\u0026c=d/\u{fffd}~\"],\"tls\":[\"false\"]}"
                .as_bytes()
        );
        assert_eq!(endpoint("127.0.0.1:4181"), "http://127.0.0.1:4181/auth");
        assert_eq!(
            endpoint("https://auth.example/check"),
            "https://auth.example/check"
        );
    }

    #[test]
    fn publish_needs_a_channel_regex_matching_the_empty_string() {
        let s = state(
            r#"{"ttl":3600,"identity":"i","identity_url":"u","authorizations":[
                {"topic":"^pub","channels":[".*"],"permissions":["publish"]},
                {"topic":"nochan","channels":[],"permissions":["publish","subscribe"]},
                {"topic":"sub","channels":["^ch$"],"permissions":["subscribe"]}]}"#,
        )
        .unwrap();
        assert_eq!((s.identity.as_str(), s.identity_url.as_str()), ("i", "u"));
        assert!(s.is_allowed("pub_t", ""));
        assert!(!s.is_allowed("xpub", ""), "anchored topic regex");
        assert!(
            !s.is_allowed("pub_t", "ch"),
            "publish permission does not subscribe"
        );
        assert!(!s.is_allowed("nochan", ""), "no channel regex: no publish");
        assert!(!s.is_allowed("nochan", "c"));
        assert!(s.is_allowed("a_sub_b", "ch"), "unanchored topic match");
        assert!(!s.is_allowed("a_sub_b", "ch2"));
        assert!(!s.is_allowed("a_sub_b", ""));
    }

    #[test]
    fn keys_match_case_insensitively_and_null_is_absent() {
        let s = state(r#"{"TTL":5,"Identity":null,"AUTHORIZATIONS":[{"Topic":".*","Channels":[".*"],"Permissions":["subscribe"]}]}"#)
            .unwrap();
        assert_eq!(s.identity, "");
        assert!(s.is_allowed("t", "c"));
    }

    #[test]
    fn bad_answers_are_failures() {
        for body in [
            "",
            "[]",
            r#"{"ttl":0,"authorizations":[]}"#,
            r#"{"ttl":-1}"#,
            r#"{"ttl":"60"}"#,
            r#"{"ttl":1.5}"#,
            r#"{"ttl":60,"authorizations":[{"topic":"(","channels":[],"permissions":[]}]}"#,
            r#"{"ttl":60,"authorizations":[{"topic":"t","channels":["["],"permissions":[]}]}"#,
            r#"{"ttl":60,"authorizations":[{"topic":"t","channels":[],"permissions":["admin"]}]}"#,
            r#"{"ttl":60,"authorizations":{}}"#,
        ] {
            assert!(state(body).is_err(), "{body:?} was accepted");
        }
        let empty = state(r#"{"ttl":60}"#).unwrap();
        assert!(empty.authorizations.is_empty());
    }

    #[test]
    fn expiry() {
        let now = Instant::now();
        let s = AuthState::parse(br#"{"ttl":2}"#, now).unwrap();
        assert!(!s.is_expired(now + Duration::from_secs(2)));
        assert!(s.is_expired(now + Duration::from_millis(2001)));
    }
}
