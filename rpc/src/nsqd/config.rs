//! `GET`/`PUT /config/:opt` (spec A.9): the option values nsqd reports, one copy for the whole
//! node, and the two options a `PUT` may change.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::ApiRequest;
use crate::httpd::Response;

/// What a `PUT` changed, for the node to act on (nsqd's `triggerOptsNotification`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigChange<'a> {
    /// lg's level number: 1 (debug) to 5 (fatal).
    LogLevel(u8),
    /// The lookupd addresses now configured (`null` clears the list: empty here).
    LookupdTcpAddresses(&'a [String]),
}

/// Acts on a [`ConfigChange`]; called once per successful `PUT`, in the order the values were
/// stored. It runs on the shard that served the `PUT`, so it must not block for long.
pub type ConfigHook = Arc<dyn Fn(ConfigChange<'_>) + Send + Sync>;

/// The `/config` values by config name, rendered as nsqd renders them (durations in
/// nanoseconds), shared by every shard's HTTP front: what a `PUT` answered on one shard stores
/// is what the next `GET` on any shard reads.
///
/// `PUT`s are rare and `GET`s cheap, so a plain `RwLock` serves: a reader holds it for one
/// lookup and clone, a writer for one insert, so a shard never waits on it for longer than that.
#[derive(Clone, Default)]
pub struct ConfigValues {
    values: Arc<RwLock<BTreeMap<String, Value>>>,
    /// Held by a `PUT` across storing its value and running the hook, so the node ends up acting
    /// on the value the map holds even when two shards take a `PUT` at once. `GET`s never take it.
    puts: Arc<Mutex<()>>,
    on_change: Option<ConfigHook>,
}

impl fmt::Debug for ConfigValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigValues")
            .field("values", &self.values)
            .field("on_change", &self.on_change.is_some())
            .finish()
    }
}

impl ConfigValues {
    pub fn new(values: BTreeMap<String, Value>, on_change: Option<ConfigHook>) -> ConfigValues {
        ConfigValues {
            values: Arc::new(RwLock::new(values)),
            puts: Arc::new(Mutex::new(())),
            on_change,
        }
    }

    /// The value of `opt`, if the node reports one.
    pub fn get(&self, opt: &str) -> Option<Value> {
        // A panic elsewhere while holding the lock leaves a whole map: keep serving it.
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values.get(opt).cloned()
    }

    /// Stores `value` for `opt` and runs the hook with `change`.
    fn put(&self, opt: &str, value: Value, change: ConfigChange<'_>) {
        let _order = self.puts.lock().unwrap_or_else(|e| e.into_inner());
        self.values
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(opt.to_string(), value);
        if let Some(hook) = &self.on_change {
            hook(change);
        }
    }
}

/// Serves `GET`/`PUT /config/<opt>`. A `PUT` body is bounded by `max_msg_size` as nsqd bounds it.
pub(super) fn config(req: &ApiRequest<'_>, opt: &str, max_msg_size: i64, values: &ConfigValues) -> Response {
    if req.method == "PUT" {
        if req.body.is_empty() || req.body.len() as i64 > max_msg_size {
            return Response::nsq_v1_error(413, "INVALID_VALUE");
        }
        match opt {
            "nsqlookupd_tcp_addresses" => {
                let current = values.get(opt);
                let Some(value) = lookupd_addresses(&req.body, current.as_ref()) else {
                    return Response::nsq_v1_error(400, "INVALID_VALUE");
                };
                let list: Vec<String> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                values.put(opt, value, ConfigChange::LookupdTcpAddresses(&list));
            }
            "log_level" => {
                let Some(level) = log_level(&req.body) else {
                    return Response::nsq_v1_error(400, "INVALID_VALUE");
                };
                values.put(opt, Value::from(level), ConfigChange::LogLevel(level));
            }
            _ => return Response::nsq_v1_error(400, "INVALID_OPTION"),
        }
    }
    match values.get(opt) {
        // A string result goes out raw, its type sniffed (`[nsqd] `, or an empty body).
        Some(Value::String(s)) => Response::nsq_v1_text(s),
        Some(v) => Response::nsq_v1_json(&v),
        None => Response::nsq_v1_error(400, "INVALID_OPTION"),
    }
}

/// lg's `ParseLogLevel` on the whole body: `debug`, `info`, `warn`, `error` or `fatal` under Go's
/// `strings.ToLower`, nothing trimmed (`debug\n` is refused). The level's number, 1 to 5.
fn log_level(body: &[u8]) -> Option<u8> {
    let word: String = std::str::from_utf8(body)
        .ok()?
        .chars()
        // Go's simple case mapping; U+0130 (İ) is the one letter outside ASCII it lowers into
        // one of these words.
        .map(|c| {
            if c == '\u{130}' {
                'i'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let at = ["debug", "info", "warn", "error", "fatal"]
        .iter()
        .position(|l| *l == word)?;
    Some(at as u8 + 1)
}

/// Go's `json.Unmarshal` of the body into nsqd's live `[]string`, as the JSON `GET` shows next:
/// `null` clears it; an array replaces it, where a `null` element leaves the element already at
/// that index (`""` past the end of the current list). `None`: anything else, refused.
fn lookupd_addresses(body: &[u8], current: Option<&Value>) -> Option<Value> {
    let parsed: Option<Vec<Option<String>>> = serde_json::from_slice(body).ok()?;
    let Some(elements) = parsed else {
        return Some(Value::Null);
    };
    let old = |i: usize| {
        current
            .and_then(|v| v.get(i))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let addrs: Vec<String> = elements
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.unwrap_or_else(|| old(i)))
        .collect();
    Some(Value::from(addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_as_nsqd_parses_them() {
        assert_eq!(log_level(b"debug"), Some(1));
        assert_eq!(log_level(b"DEBUG"), Some(1));
        assert_eq!(log_level(b"Fatal"), Some(5));
        assert_eq!(log_level("İNFO".as_bytes()), Some(2));
        for refused in [&b"debug\n"[..], b" info", b"warning", b"\xff", b"\"warn\""] {
            assert_eq!(log_level(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn lookupd_addresses_as_go_unmarshals_them() {
        let current = serde_json::json!(["a:1", "b:2"]);
        let parse = |body: &str| lookupd_addresses(body.as_bytes(), Some(&current));
        assert_eq!(parse(" null\n"), Some(Value::Null));
        assert_eq!(parse("[]"), Some(serde_json::json!([])));
        assert_eq!(parse(r#"["c:3"]"#), Some(serde_json::json!(["c:3"])));
        assert_eq!(
            parse(r#"[null, null, null]"#),
            Some(serde_json::json!(["a:1", "b:2", ""]))
        );
        assert_eq!(lookupd_addresses(b"[null]", None), Some(serde_json::json!([""])));
        for refused in ["", "[1]", "{}", r#""x""#, "[", r#"["a"] x"#] {
            assert_eq!(parse(refused), None, "{refused}");
        }
    }
}
