//! go-nsq's `Config` as nsq_to_file builds it (spec C): go-nsq's defaults, every
//! `--consumer-opt=<key>[,<value>]` applied by go-nsq's `Config.Set` rules (its key names, value
//! syntax and min/max), and the checks `nsq.NewConsumer` makes before a topic's logger starts.
//!
//! nsq_to_file ignores what `Set` returns: an unknown key or a bad value leaves that option as it
//! was and the tool starts anyway. Squall does the same and logs each one as a warning at start,
//! along with the keys go-nsq knows that have no effect here.

use std::fmt;
use std::sync::Arc;

use super::options::USER_AGENT;
use crate::config::go_values::{format_go_duration, parse_go_bool, parse_go_duration_ns};
use crate::tls::ClientTls;

const NS_PER_MS: i64 = 1_000_000;
const NS_PER_S: i64 = 1_000 * NS_PER_MS;
const NS_PER_MIN: i64 = 60 * NS_PER_S;

/// The go-nsq consumer settings this consumer uses, go-nsq's defaults unless set.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// `--max-in-flight` (a Go `int`): a negative one fails [`ConsumerConfig::validate`].
    pub max_in_flight: i64,
    /// 0: never give up. Beyond it a message is FIN'd unwritten, as go-nsq does.
    pub max_attempts: u16,
    pub lookupd_poll_interval_ns: i64,
    pub lookupd_poll_jitter: f64,
    pub heartbeat_interval_ns: i64,
    pub read_timeout_ns: i64,
    pub write_timeout_ns: i64,
    pub dial_timeout_ns: i64,
    pub output_buffer_size: i64,
    pub output_buffer_timeout_ns: i64,
    pub msg_timeout_ns: i64,
    pub sample_rate: i32,
    pub auth_secret: String,
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
    pub tls_v1: bool,
    pub snappy: bool,
    pub deflate: bool,
    pub deflate_level: i64,
    /// The client side of `tls_v1`, from the `tls_*` options; built once all are read.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A `--consumer-opt` value. go-nsq's `ConfigFlag` passes a bare key as Go's `true`, which only a
/// bool option takes (a string option gets Go's `%s` of it, the rest fail to coerce).
#[derive(Clone, Copy)]
enum OptValue<'a> {
    Bare,
    Str(&'a str),
}

impl fmt::Display for OptValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptValue::Bare => f.write_str("true"),
            OptValue::Str(s) => f.write_str(s),
        }
    }
}

/// What a successful `Set` did.
enum Applied {
    Yes,
    /// go-nsq takes the key, but nothing in squall-to-file reads it.
    NoEffect,
}

impl ConsumerConfig {
    fn new(short_host: &str, hostname: &str) -> ConsumerConfig {
        ConsumerConfig {
            max_in_flight: 1,
            max_attempts: 5,
            lookupd_poll_interval_ns: 60 * NS_PER_S,
            lookupd_poll_jitter: 0.3,
            heartbeat_interval_ns: 30 * NS_PER_S,
            read_timeout_ns: 60 * NS_PER_S,
            write_timeout_ns: NS_PER_S,
            dial_timeout_ns: NS_PER_S,
            output_buffer_size: 16_384,
            output_buffer_timeout_ns: 250 * NS_PER_MS,
            msg_timeout_ns: 0,
            sample_rate: 0,
            auth_secret: String::new(),
            client_id: short_host.to_string(),
            hostname: hostname.to_string(),
            user_agent: USER_AGENT.to_string(),
            tls_v1: false,
            snappy: false,
            deflate: false,
            deflate_level: 6,
            tls: None,
        }
    }

    /// go-nsq's `NewConfig` plus each `--consumer-opt` in order, then nsq_to_file's own
    /// `UserAgent` and `MaxInFlight`. Returns the warnings to log: options left unset, and options
    /// without effect here.
    pub fn from_opts(
        opts: &[String],
        max_in_flight: i64,
        short_host: &str,
        hostname: &str,
    ) -> (ConsumerConfig, Vec<String>) {
        let mut config = ConsumerConfig::new(short_host, hostname);
        let mut tls = ClientTls::default();
        let mut warnings = Vec::new();
        for opt in opts {
            // go-nsq's ConfigFlag.Set: the first comma splits key from value.
            let (key, value) = match opt.split_once(',') {
                Some((k, v)) => (k, OptValue::Str(v)),
                None => (opt.as_str(), OptValue::Bare),
            };
            // Config.Set: `-` and `_` are the same in a key.
            let key = key.replace('-', "_");
            match config.set(&mut tls, &key, value) {
                Ok(Applied::Yes) => {}
                Ok(Applied::NoEffect) => warnings.push(format!(
                    "--consumer-opt={opt}: {key} has no effect in squall-to-file"
                )),
                Err(e) => warnings.push(format!("--consumer-opt={opt} ignored: {e}")),
            }
        }
        // nsq_to_file sets it after the options (and its own user agent, which `new` has).
        config.max_in_flight = max_in_flight;
        if config.tls_v1 {
            match tls.client_config() {
                Ok(c) => config.tls = Some(c),
                Err(e) => warnings.push(format!("tls_v1: {e}")),
            }
        }
        (config, warnings)
    }

    /// go-nsq's `structTagsConfig.Set` and `tlsConfig.Set` for one key.
    fn set(&mut self, tls: &mut ClientTls, key: &str, value: OptValue<'_>) -> Result<Applied, String> {
        let dur = |min: Option<i64>, max: Option<i64>| duration(key, value, min, max);
        match key {
            "dial_timeout" => self.dial_timeout_ns = dur(None, None)?,
            "read_timeout" => self.read_timeout_ns = dur(Some(100 * NS_PER_MS), Some(5 * NS_PER_MIN))?,
            "write_timeout" => self.write_timeout_ns = dur(Some(100 * NS_PER_MS), Some(5 * NS_PER_MIN))?,
            "lookupd_poll_interval" => {
                self.lookupd_poll_interval_ns = dur(Some(10 * NS_PER_MS), Some(5 * NS_PER_MIN))?
            }
            "lookupd_poll_jitter" => self.lookupd_poll_jitter = float(key, value, 0.0, 1.0)?,
            "heartbeat_interval" => self.heartbeat_interval_ns = dur(None, None)?,
            "output_buffer_size" => self.output_buffer_size = int(key, value, None, None)?,
            "output_buffer_timeout" => self.output_buffer_timeout_ns = dur(None, None)?,
            "msg_timeout" => self.msg_timeout_ns = dur(Some(0), None)?,
            "max_attempts" => {
                self.max_attempts = uint(key, value, 0, u64::from(u16::MAX))? as u16;
            }
            "sample_rate" => self.sample_rate = int(key, value, Some(0), Some(99))? as i32,
            "auth_secret" => self.auth_secret = string(value),
            "client_id" => self.client_id = string(value),
            "hostname" => self.hostname = string(value),
            // Taken, then replaced by nsq_to_file's own user agent and --max-in-flight.
            "user_agent" => return Ok(Applied::NoEffect),
            "max_in_flight" => {
                int(key, value, Some(0), None)?;
                return Ok(Applied::NoEffect);
            }
            "tls_v1" => self.tls_v1 = boolean(key, value)?,
            "snappy" => self.snappy = boolean(key, value)?,
            "deflate" => self.deflate = boolean(key, value)?,
            "deflate_level" => self.deflate_level = int(key, value, Some(1), Some(9))?,
            "tls_root_ca_file" | "tls_insecure_skip_verify" | "tls_cert" | "tls_key" | "tls_min_version" => {
                let text = match value {
                    OptValue::Str(s) => Some(s),
                    OptValue::Bare => None,
                };
                tls.set(key, text)?;
            }
            // Only a failed handler or a REQ uses these, and nsq_to_file has neither; the RDY
            // redistribution ones tune a go-nsq loop this consumer does without.
            "max_requeue_delay" | "default_requeue_delay" | "max_backoff_duration" | "backoff_multiplier" => {
                dur(Some(0), Some(60 * NS_PER_MIN))?;
            }
            "low_rdy_idle_timeout" | "low_rdy_timeout" => {
                dur(Some(NS_PER_S), Some(5 * NS_PER_MIN))?;
            }
            "rdy_redistribute_interval" => {
                dur(Some(NS_PER_MS), Some(5 * NS_PER_S))?;
            }
            "backoff_strategy" => match value {
                OptValue::Str("" | "exponential" | "full_jitter") => {}
                _ => return Err(coerce_error(key, value, "invalid value type")),
            },
            "lookupd_poll_timeout" => {
                dur(None, None)?;
                return Ok(Applied::NoEffect);
            }
            "skip_lookupd_authorization" => {
                boolean(key, value)?;
                return Ok(Applied::NoEffect);
            }
            "local_addr" => {
                if let OptValue::Bare = value {
                    return Err(coerce_error(key, value, "invalid value type"));
                }
                return Ok(Applied::NoEffect);
            }
            // A *tls.Config cannot come from a string (go-nsq panics on it).
            "tls_config" => return Err("cannot be set from the command line".into()),
            _ => return Err(format!("invalid option {key}")),
        }
        Ok(Applied::Yes)
    }

    /// What `nsq.NewConsumer` checks (go-nsq's `Config.Validate`); its error is the reason the
    /// topic's logger is not created.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight < 0 {
            return Err(format!("invalid MaxInFlight ! {} < 0", self.max_in_flight));
        }
        if self.heartbeat_interval_ns > self.read_timeout_ns {
            return Err(format!(
                "HeartbeatInterval {} must be less than ReadTimeout {}",
                format_go_duration(self.heartbeat_interval_ns),
                format_go_duration(self.read_timeout_ns)
            ));
        }
        Ok(())
    }

    /// go-nsq's IDENTIFY body.
    pub fn identify_body(&self) -> Vec<u8> {
        // go-nsq sends -1 as is (nsqd's "disabled") and whole milliseconds otherwise.
        let ms = |ns: i64| if ns == -1 { -1 } else { ns / NS_PER_MS };
        serde_json::json!({
            "client_id": self.client_id,
            "hostname": self.hostname,
            "user_agent": self.user_agent,
            "feature_negotiation": true,
            "heartbeat_interval": ms(self.heartbeat_interval_ns),
            "output_buffer_size": self.output_buffer_size,
            "output_buffer_timeout": ms(self.output_buffer_timeout_ns),
            "msg_timeout": self.msg_timeout_ns / NS_PER_MS,
            "sample_rate": self.sample_rate,
            "tls_v1": self.tls_v1,
            "snappy": self.snappy,
            "deflate": self.deflate,
            "deflate_level": self.deflate_level,
        })
        .to_string()
        .into_bytes()
    }
}

fn coerce_error(key: &str, value: OptValue<'_>, why: &str) -> String {
    format!("failed to coerce option {key} ({value}) - {why}")
}

/// go-nsq's `coerceDuration` (a string is `time.ParseDuration`) and its min/max tags.
fn duration(key: &str, value: OptValue<'_>, min: Option<i64>, max: Option<i64>) -> Result<i64, String> {
    let OptValue::Str(s) = value else {
        return Err(coerce_error(key, value, "invalid value type"));
    };
    let ns = parse_go_duration_ns(s).map_err(|e| coerce_error(key, value, &e))?;
    let go = format_go_duration;
    if let Some(min) = min.filter(|&m| ns < m) {
        return Err(format!("invalid {key} ! {} < {}", go(ns), go(min)));
    }
    if let Some(max) = max.filter(|&m| ns > m) {
        return Err(format!("invalid {key} ! {} > {}", go(ns), go(max)));
    }
    Ok(ns)
}

/// go-nsq's `coerceInt64`: `strconv.ParseInt(s, 10, 64)`.
fn int(key: &str, value: OptValue<'_>, min: Option<i64>, max: Option<i64>) -> Result<i64, String> {
    let OptValue::Str(s) = value else {
        return Err(coerce_error(key, value, "invalid value type"));
    };
    let v: i64 = s.parse().map_err(|_| {
        coerce_error(
            key,
            value,
            &format!("strconv.ParseInt: parsing {s:?}: invalid syntax"),
        )
    })?;
    if let Some(min) = min.filter(|&m| v < m) {
        return Err(format!("invalid {key} ! {v} < {min}"));
    }
    if let Some(max) = max.filter(|&m| v > m) {
        return Err(format!("invalid {key} ! {v} > {max}"));
    }
    Ok(v)
}

/// go-nsq's min/max check, with its message.
fn in_range<T: PartialOrd + std::fmt::Display>(key: &str, v: T, min: T, max: T) -> Result<T, String> {
    if v < min {
        return Err(format!("invalid {key} ! {v} < {min}"));
    }
    if v > max {
        return Err(format!("invalid {key} ! {v} > {max}"));
    }
    Ok(v)
}

/// go-nsq's `coerceUint64`: `strconv.ParseUint(s, 10, 64)` (no sign).
fn uint(key: &str, value: OptValue<'_>, min: u64, max: u64) -> Result<u64, String> {
    let OptValue::Str(s) = value else {
        return Err(coerce_error(key, value, "invalid value type"));
    };
    let v: u64 = s
        .strip_prefix('+')
        .map_or_else(|| s.parse().ok(), |_| None)
        .ok_or_else(|| {
            coerce_error(
                key,
                value,
                &format!("strconv.ParseUint: parsing {s:?}: invalid syntax"),
            )
        })?;
    in_range(key, v, min, max)
}

/// go-nsq's `coerceFloat64` with min/max.
fn float(key: &str, value: OptValue<'_>, min: f64, max: f64) -> Result<f64, String> {
    let OptValue::Str(s) = value else {
        return Err(coerce_error(key, value, "invalid value type"));
    };
    let v: f64 = s.parse().map_err(|_| {
        coerce_error(
            key,
            value,
            &format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"),
        )
    })?;
    in_range(key, v, min, max)
}

/// go-nsq's `coerceBool`: Go's `true` for a bare key, `strconv.ParseBool` for a string.
fn boolean(key: &str, value: OptValue<'_>) -> Result<bool, String> {
    match value {
        OptValue::Bare => Ok(true),
        OptValue::Str(s) => parse_go_bool(s).map_err(|_| {
            coerce_error(
                key,
                value,
                &format!("strconv.ParseBool: parsing {s:?}: invalid syntax"),
            )
        }),
    }
}

/// go-nsq's `coerceString`: a bare key is Go's `true`, which `%s` prints as below.
fn string(value: OptValue<'_>) -> String {
    match value {
        OptValue::Bare => "%!s(bool=true)".to_string(),
        OptValue::Str(s) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(opts: &[&str]) -> (ConsumerConfig, Vec<String>) {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        ConsumerConfig::from_opts(&opts, 200, "box1", "box1.example.com")
    }

    #[test]
    fn go_nsq_defaults() {
        let (c, warnings) = config(&[]);
        assert!(warnings.is_empty());
        assert_eq!(c.max_in_flight, 200);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.lookupd_poll_interval_ns, 60 * NS_PER_S);
        assert_eq!(c.heartbeat_interval_ns, 30 * NS_PER_S);
        assert_eq!(c.read_timeout_ns, 60 * NS_PER_S);
        assert_eq!(c.write_timeout_ns, NS_PER_S);
        assert_eq!(c.dial_timeout_ns, NS_PER_S);
        assert_eq!(
            (c.client_id.as_str(), c.hostname.as_str()),
            ("box1", "box1.example.com")
        );
        assert!(!c.tls_v1 && !c.snappy && !c.deflate && c.tls.is_none());
        assert_eq!(c.deflate_level, 6);
    }

    #[test]
    fn keys_values_and_ranges_follow_config_set() {
        let (c, warnings) = config(&[
            "max_attempts,0",
            "lookupd-poll-interval,5s",
            "heartbeat_interval,10s",
            "msg_timeout,1m",
            "client_id,me",
            "snappy",
            "deflate,true",
            "deflate_level,3",
            "max_in_flight,7",
            "user_agent,someone",
            "sample_rate,10",
            "read_timeout,30s",
        ]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("--consumer-opt=max_in_flight,7: max_in_flight has no effect"));
        assert!(warnings[1].contains("--consumer-opt=user_agent,someone: user_agent has no effect"));
        assert_eq!(c.max_attempts, 0);
        assert_eq!(c.lookupd_poll_interval_ns, 5 * NS_PER_S);
        assert_eq!(c.heartbeat_interval_ns, 10 * NS_PER_S);
        assert_eq!(c.msg_timeout_ns, 60 * NS_PER_S);
        assert_eq!(c.client_id, "me");
        assert!(c.snappy && c.deflate);
        assert_eq!(c.deflate_level, 3);
        assert_eq!(c.max_in_flight, 200, "--max-in-flight wins");
        assert_eq!(c.user_agent, USER_AGENT, "nsq_to_file sets its own");
        assert_eq!(c.sample_rate, 10);
        assert_eq!(c.read_timeout_ns, 30 * NS_PER_S);
    }

    #[test]
    fn what_config_set_refuses_is_a_warning_and_the_default_stays() {
        let (c, warnings) = config(&[
            "bogus,1",
            "read_timeout,1ms",
            "read_timeout,x",
            "max_attempts,70000",
            "max_attempts,-1",
            "deflate_level,0",
            "sample_rate,100",
            "heartbeat_interval",
            "snappy,maybe",
            "lookupd_poll_jitter,2",
            "tls_config,x",
            "tls_min_version,tls1.3",
            "tls_root_ca_file,/nonexistent/ca.pem",
        ]);
        assert_eq!(c.read_timeout_ns, 60 * NS_PER_S);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.deflate_level, 6);
        assert_eq!(c.sample_rate, 0);
        assert_eq!(c.heartbeat_interval_ns, 30 * NS_PER_S);
        assert!(!c.snappy);
        assert_eq!(c.lookupd_poll_jitter, 0.3);
        assert_eq!(warnings.len(), 13, "{warnings:#?}");
        assert!(warnings[0].contains("--consumer-opt=bogus,1 ignored: invalid option bogus"));
        assert!(
            warnings[1].contains("invalid read_timeout ! 1ms < 100ms"),
            "{}",
            warnings[1]
        );
        assert!(warnings[2].contains("failed to coerce option read_timeout (x)"));
        assert!(warnings[3].contains("invalid max_attempts ! 70000 > 65535"));
        assert!(
            warnings[7].contains("failed to coerce option heartbeat_interval (true) - invalid value type")
        );
        let (_, warnings) = config(&["lookupd_poll_timeout,1s", "local_addr,127.0.0.1:0"]);
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings.iter().all(|w| w.contains("has no effect")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_bare_string_option_is_gos_percent_s_of_true() {
        let (c, warnings) = config(&["client_id"]);
        assert!(warnings.is_empty());
        assert_eq!(c.client_id, "%!s(bool=true)");
    }

    #[test]
    fn validate_is_new_consumers_check() {
        let (mut c, _) = config(&["heartbeat_interval,2m"]);
        assert_eq!(
            c.validate(),
            Err("HeartbeatInterval 2m0s must be less than ReadTimeout 1m0s".into())
        );
        c.heartbeat_interval_ns = c.read_timeout_ns;
        assert_eq!(c.validate(), Ok(()));
        c.max_in_flight = -1;
        assert_eq!(c.validate(), Err("invalid MaxInFlight ! -1 < 0".into()));
        c.max_in_flight = 0;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn identify_carries_the_features_and_go_nsqs_millisecond_fields() {
        let (mut c, _) = config(&["snappy", "deflate_level,4", "output_buffer_timeout,-1ns"]);
        c.heartbeat_interval_ns = 1_500 * NS_PER_MS;
        let v: serde_json::Value = serde_json::from_slice(&c.identify_body()).unwrap();
        assert_eq!(v["snappy"], true);
        assert_eq!(v["deflate"], false);
        assert_eq!(v["deflate_level"], 4);
        assert_eq!(v["tls_v1"], false);
        assert_eq!(v["heartbeat_interval"], 1_500);
        assert_eq!(v["output_buffer_timeout"], -1);
        assert_eq!(v["feature_negotiation"], true);
    }
}
