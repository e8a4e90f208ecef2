//! nsq_to_file's command line (spec C.1): every flag with nsq_to_file's name and default, Go
//! `flag` syntax (shared with squalld through `config::goflag`), nsq_to_file's startup checks in
//! its order, and the go-nsq `--consumer-opt` keys this consumer honours. Every limit of the tool
//! is declared here too.

use std::ffi::OsString;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use regex::Regex;

use crate::config::go_values::{parse_go_bool, parse_go_duration_ns, parse_go_f64, parse_go_i64};
use crate::config::goflag::normalize_go_args;

/// What `squall-to-file --version` prints.
pub const VERSION_LINE: &str = concat!(
    "squall-to-file v",
    env!("CARGO_PKG_VERSION"),
    " (nsq_to_file v1.3.0 compatible)"
);
/// Sent in IDENTIFY and to lookupd: nsq_to_file's own agent first, so dashboards group it with it.
pub const USER_AGENT: &str = concat!("nsq_to_file/1.3.0 squall-to-file/", env!("CARGO_PKG_VERSION"));

// ---- Limits (one place, unit last, with the reason) ----

/// nsqd's default `--max-rdy-count`; the IDENTIFY reply may lower it further.
pub const MAX_IN_FLIGHT_MAX: i64 = 2500;
/// Records are buffered in memory and written in one syscall once this much is pending.
pub const WRITE_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// go-nsq gives a stopping consumer 30 s to see its in-flight messages answered, then closes.
pub const STOP_GRACE_MS: u64 = 30_000;
/// Largest nsqd frame accepted: nsqd's default `--max-msg-size` (1 MiB) ×4 of headroom for
/// brokers configured larger; a bigger size prefix means a broken stream.
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024 + 64;
/// Largest lookupd HTTP response read (a `/lookup` or `/topics` body of a big cluster).
pub const HTTP_RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// First reconnect delay to an nsqd given with --nsqd-tcp-address; it doubles on every failure
/// up to `lookupd_poll_interval` (go-nsq's fixed retry period).
pub const RECONNECT_DELAY_MIN_MS: u64 = 250;
/// Events queued from the connection threads to a topic's logger thread, beyond max-in-flight:
/// a full queue blocks the connection's reader (the socket backs up; RDY already bounds it).
pub const EVENT_QUEUE_SLACK: usize = 64;
/// Consecutive revisions tried for one file name before giving up (nsq_to_file loops forever).
pub const REVISIONS_MAX: u32 = 1_000_000;

const _: () = assert!(RECONNECT_DELAY_MIN_MS < STOP_GRACE_MS);
const _: () = assert!(FRAME_BYTES_MAX < HTTP_RESPONSE_BYTES_MAX);

#[derive(Parser, Debug)]
#[command(
    name = "squall-to-file",
    about = "Squall's nsq_to_file: consumes topics from nsqd and writes them to files",
    long_about = None,
    disable_version_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
struct Cli {
    /// Print version string
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    version: bool,
    /// Set log level: debug, info, warn, error, or fatal
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Log message prefix
    #[arg(long, default_value = "[nsq_to_file] ", value_name = "PREFIX")]
    log_prefix: String,
    /// nsq channel
    #[arg(long, default_value = "nsq_to_file", value_name = "NAME")]
    channel: String,
    /// Max number of messages to allow in flight
    #[arg(long, default_value = "200", value_name = "N", value_parser = parse_go_i64)]
    max_in_flight: i64,
    /// Directory to write output files to
    #[arg(long, default_value = "/tmp", value_name = "DIR")]
    output_dir: String,
    /// Directory for in-progress files before moving to output-dir [default: output-dir]
    #[arg(long, default_value = "", value_name = "DIR")]
    work_dir: String,
    /// strftime compatible format for <DATETIME> in filename format
    #[arg(long, default_value = "%Y-%m-%d_%H", value_name = "FMT")]
    datetime_format: String,
    /// Output filename format (<TOPIC>, <HOST>, <PID>, <DATETIME>, <REV> are replaced. <REV> is
    /// required when output is gzipped, rotated or a work dir is used)
    #[arg(
        long,
        default_value = "<TOPIC>.<HOST><REV>.<DATETIME>.log",
        value_name = "FMT"
    )]
    filename_format: String,
    /// Value to output in log filename in place of hostname. <SHORT_HOST> and <HOSTNAME> are
    /// valid replacement tokens
    #[arg(long, default_value = "", value_name = "ID")]
    host_identifier: String,
    /// gzip compression level (1-9, 1=BestSpeed, 9=BestCompression)
    #[arg(long, default_value = "6", value_name = "N", value_parser = parse_go_i64)]
    gzip_level: i64,
    /// gzip output files
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    gzip: bool,
    /// Skip writing empty files
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    skip_empty_files: bool,
    /// How frequently the topic list should be refreshed
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = parse_go_duration_ns)]
    topic_refresh: i64,
    /// Only log topics matching the following pattern
    #[arg(long, default_value = "", value_name = "REGEXP")]
    topic_pattern: String,
    /// Rotate the file when it grows bigger than `rotate-size` bytes
    #[arg(long, default_value = "0", value_name = "BYTES", value_parser = parse_go_i64)]
    rotate_size: i64,
    /// Rotate the file every duration
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_go_duration_ns)]
    rotate_interval: i64,
    /// Sync file to disk every duration
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_go_duration_ns)]
    sync_interval: i64,
    /// Timeout for HTTP connect
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_go_duration_ns)]
    http_client_connect_timeout: i64,
    /// Timeout for HTTP request
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_go_duration_ns)]
    http_client_request_timeout: i64,
    /// nsqd TCP address (may be given multiple times)
    #[arg(long, action = ArgAction::Append, value_delimiter = ',', value_name = "ADDR")]
    nsqd_tcp_address: Vec<String>,
    /// lookupd HTTP address (may be given multiple times)
    #[arg(long, action = ArgAction::Append, value_delimiter = ',', value_name = "ADDR")]
    lookupd_http_address: Vec<String>,
    /// nsq topic (may be given multiple times)
    #[arg(long, action = ArgAction::Append, value_name = "TOPIC")]
    topic: Vec<String>,
    /// Option to passthrough to the consumer (may be given multiple times): <key>,<value>
    #[arg(long, action = ArgAction::Append, value_name = "KEY,VALUE")]
    consumer_opt: Vec<String>,
    /// Arguments after the first non-flag one: nsq_to_file refuses them.
    #[arg(hide = true, num_args = 0.., trailing_var_arg = true)]
    extra_args: Vec<String>,
}

/// Log verbosity, ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "fatal" => LogLevel::Fatal,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }
}

/// The go-nsq consumer settings this consumer uses (`--consumer-opt`, spec C), go-nsq defaults.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub max_in_flight: usize,
    /// 0: never give up. Beyond it a message is FIN'd unwritten, as go-nsq does.
    pub max_attempts: u16,
    pub lookupd_poll_interval: Duration,
    pub lookupd_poll_jitter: f64,
    pub heartbeat_interval_ms: i64,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub dial_timeout: Duration,
    pub output_buffer_size: i64,
    pub output_buffer_timeout_ms: i64,
    pub msg_timeout_ms: i64,
    pub sample_rate: i32,
    pub auth_secret: String,
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
}

impl ConsumerConfig {
    fn new(short_host: &str, hostname: &str) -> ConsumerConfig {
        ConsumerConfig {
            max_in_flight: 1,
            max_attempts: 5,
            lookupd_poll_interval: Duration::from_secs(60),
            lookupd_poll_jitter: 0.3,
            heartbeat_interval_ms: 30_000,
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(1),
            dial_timeout: Duration::from_secs(1),
            output_buffer_size: 16_384,
            output_buffer_timeout_ms: 250,
            msg_timeout_ms: 0,
            sample_rate: 0,
            auth_secret: String::new(),
            client_id: short_host.to_string(),
            hostname: hostname.to_string(),
            user_agent: USER_AGENT.to_string(),
        }
    }

    /// One `--consumer-opt=<key>[,<value>]`; a bare key means `true`.
    fn set(&mut self, opt: &str) -> Result<(), String> {
        let (key, value) = opt.split_once(',').unwrap_or((opt, "true"));
        let dur = |v: &str| -> Result<Duration, String> {
            let ns = parse_go_duration_ns(v)?;
            u64::try_from(ns)
                .map(Duration::from_nanos)
                .map_err(|_| format!("{key} must not be negative"))
        };
        let ms = |v: &str| -> Result<i64, String> { Ok(parse_go_duration_ns(v)? / 1_000_000) };
        let int = |v: &str| parse_go_i64(v);
        match key {
            "max_in_flight" => {} // --max-in-flight overrides it, as in nsq_to_file
            "max_attempts" => {
                self.max_attempts =
                    u16::try_from(int(value)?).map_err(|_| "max_attempts must be [0,65535]")?
            }
            "lookupd_poll_interval" => self.lookupd_poll_interval = dur(value)?,
            "lookupd_poll_jitter" => {
                let j = parse_go_f64(value)?;
                if !(0.0..=1.0).contains(&j) {
                    return Err("lookupd_poll_jitter must be [0,1]".into());
                }
                self.lookupd_poll_jitter = j;
            }
            "heartbeat_interval" => self.heartbeat_interval_ms = ms(value)?,
            "read_timeout" => self.read_timeout = dur(value)?,
            "write_timeout" => self.write_timeout = dur(value)?,
            "dial_timeout" => self.dial_timeout = dur(value)?,
            "output_buffer_size" => self.output_buffer_size = int(value)?,
            "output_buffer_timeout" => self.output_buffer_timeout_ms = ms(value)?,
            "msg_timeout" => self.msg_timeout_ms = ms(value)?,
            "sample_rate" => {
                self.sample_rate = i32::try_from(int(value)?)
                    .ok()
                    .filter(|r| (0..=99).contains(r))
                    .ok_or("sample_rate must be [0,99]")?
            }
            "auth_secret" => self.auth_secret = value.to_string(),
            "client_id" => self.client_id = value.to_string(),
            "hostname" => self.hostname = value.to_string(),
            "user_agent" => self.user_agent = value.to_string(),
            // Only meaningful for failed handlers and REQ, which nsq_to_file never does.
            "default_requeue_delay"
            | "max_requeue_delay"
            | "max_backoff_duration"
            | "backoff_multiplier"
            | "low_rdy_idle_timeout"
            | "rdy_redistribute_interval" => {
                dur(value)?;
            }
            "deflate_level" => {
                int(value)?;
            }
            "tls_v1" | "snappy" | "deflate" => {
                if parse_go_bool(value)? {
                    return Err(format!("{key} is not supported by squall-to-file yet"));
                }
            }
            _ => return Err(format!("invalid option {key}")),
        }
        Ok(())
    }
}

/// Everything `squall-to-file` runs with. Validated: see [`parse_args`].
#[derive(Clone, Debug)]
pub struct ToFileOptions {
    pub print_version: bool,
    pub log_level: LogLevel,
    pub log_prefix: String,
    pub channel: String,
    pub output_dir: String,
    /// Equals `output_dir` when `--work-dir` was not given.
    pub work_dir: String,
    pub datetime_format: String,
    pub filename_format: String,
    pub host_identifier: String,
    pub gzip_level: u32,
    pub gzip: bool,
    pub skip_empty_files: bool,
    pub topic_refresh: Duration,
    pub topic_pattern: Option<Regex>,
    /// 0: off.
    pub rotate_size_bytes: u64,
    /// Zero: off.
    pub rotate_interval: Duration,
    pub sync_interval: Duration,
    pub http_connect_timeout: Duration,
    pub http_request_timeout: Duration,
    pub nsqd_tcp_addresses: Vec<String>,
    pub lookupd_http_addresses: Vec<String>,
    pub topics: Vec<String>,
    pub consumer: ConsumerConfig,
    /// The OS hostname (for `<HOST>` and IDENTIFY).
    pub hostname: String,
}

/// Parses `squall-to-file`'s arguments (the first one is the program name) with Go `flag` syntax
/// and applies nsq_to_file's startup checks in its order (spec C.1).
///
/// `--help` comes back as an error of kind `DisplayHelp`: `err.exit()` prints it and exits 0.
pub fn parse_args<I, T>(args: I, hostname: &str) -> Result<ToFileOptions, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = Cli::command();
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let argv = normalize_go_args(&cmd, argv)?;
    let matches = cmd.try_get_matches_from_mut(argv)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    cli.into_options(hostname)
        .map_err(|msg| cmd.error(ErrorKind::ValueValidation, msg))
}

fn positive(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

impl Cli {
    fn into_options(self, hostname: &str) -> Result<ToFileOptions, String> {
        let log_level = match LogLevel::parse(&self.log_level) {
            Some(l) => l,
            None if self.version => LogLevel::Info,
            None => return Err("--log-level is invalid".into()),
        };
        let nsqd: Vec<String> = self
            .nsqd_tcp_address
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let lookupd: Vec<String> = self
            .lookupd_http_address
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let short_host = hostname.split('.').next().unwrap_or(hostname);
        let mut consumer = ConsumerConfig::new(short_host, hostname);
        if !self.version {
            if !self.extra_args.is_empty() {
                return Err(format!("unknown arguments: {}", self.extra_args.join(" ")));
            }
            if self.channel.is_empty() {
                return Err("--channel is required".into());
            }
            if self.http_client_connect_timeout <= 0 {
                return Err("--http-client-connect-timeout should be positive".into());
            }
            if self.http_client_request_timeout <= 0 {
                return Err("--http-client-request-timeout should be positive".into());
            }
            if nsqd.is_empty() && lookupd.is_empty() {
                return Err("--nsqd-tcp-address or --lookupd-http-address required".into());
            }
            if !nsqd.is_empty() && !lookupd.is_empty() {
                return Err("use --nsqd-tcp-address or --lookupd-http-address not both".into());
            }
            if !(1..=9).contains(&self.gzip_level) {
                return Err(format!(
                    "invalid --gzip-level value ({}), should be 1-9",
                    self.gzip_level
                ));
            }
            if self.topic.is_empty() && self.topic_pattern.is_empty() {
                return Err("--topic or --topic-pattern required".into());
            }
            if self.topic.is_empty() && lookupd.is_empty() {
                return Err("--lookupd-http-address must be specified when no --topic specified".into());
            }
            if !(1..=MAX_IN_FLIGHT_MAX).contains(&self.max_in_flight) {
                return Err(format!("--max-in-flight must be [1,{MAX_IN_FLIGHT_MAX}]"));
            }
            if self.sync_interval <= 0 {
                return Err("--sync-interval should be positive".into());
            }
            if self.rotate_size < 0 || self.rotate_interval < 0 {
                return Err("--rotate-size and --rotate-interval must not be negative".into());
            }
            if !lookupd.is_empty() && self.topic.is_empty() && self.topic_refresh <= 0 {
                return Err("--topic-refresh should be positive".into());
            }
            for opt in &self.consumer_opt {
                consumer
                    .set(opt)
                    .map_err(|e| format!("failed to set consumer config: {e}"))?;
            }
        }
        let topic_pattern = if self.topic_pattern.is_empty() {
            None
        } else {
            Some(Regex::new(&self.topic_pattern).map_err(|e| format!("--topic-pattern: {e}"))?)
        };
        consumer.max_in_flight = usize::try_from(self.max_in_flight).unwrap_or(1);
        let work_dir = if self.work_dir.is_empty() {
            self.output_dir.clone()
        } else {
            self.work_dir
        };
        Ok(ToFileOptions {
            print_version: self.version,
            log_level,
            log_prefix: self.log_prefix,
            channel: self.channel,
            output_dir: self.output_dir,
            work_dir,
            datetime_format: self.datetime_format,
            filename_format: self.filename_format,
            host_identifier: self.host_identifier,
            gzip_level: u32::try_from(self.gzip_level).unwrap_or(6),
            gzip: self.gzip,
            skip_empty_files: self.skip_empty_files,
            topic_refresh: positive(self.topic_refresh),
            topic_pattern,
            rotate_size_bytes: u64::try_from(self.rotate_size).unwrap_or(0),
            rotate_interval: positive(self.rotate_interval),
            sync_interval: positive(self.sync_interval),
            http_connect_timeout: positive(self.http_client_connect_timeout),
            http_request_timeout: positive(self.http_client_request_timeout),
            nsqd_tcp_addresses: nsqd,
            lookupd_http_addresses: lookupd,
            topics: self.topic.into_iter().filter(|s| !s.is_empty()).collect(),
            consumer,
            hostname: hostname.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "box1.example.com";

    fn parse(args: &[&str]) -> Result<ToFileOptions, clap::Error> {
        let mut argv = vec!["squall-to-file"];
        argv.extend_from_slice(args);
        parse_args(argv, HOST)
    }

    fn ok(args: &[&str]) -> ToFileOptions {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        match parse(args) {
            Ok(o) => panic!("{args:?} should fail, got {o:?}"),
            Err(e) => e.to_string(),
        }
    }

    const MIN: [&str; 2] = ["--nsqd-tcp-address=127.0.0.1:4150", "--topic=t"];

    #[test]
    fn defaults_are_nsq_to_files() {
        let o = ok(&MIN);
        assert_eq!(o.log_level, LogLevel::Info);
        assert_eq!(o.log_prefix, "[nsq_to_file] ");
        assert_eq!(o.channel, "nsq_to_file");
        assert_eq!(o.consumer.max_in_flight, 200);
        assert_eq!((o.output_dir.as_str(), o.work_dir.as_str()), ("/tmp", "/tmp"));
        assert_eq!(o.datetime_format, "%Y-%m-%d_%H");
        assert_eq!(o.filename_format, "<TOPIC>.<HOST><REV>.<DATETIME>.log");
        assert_eq!(o.host_identifier, "");
        assert_eq!(o.gzip_level, 6);
        assert!(!o.gzip && !o.skip_empty_files);
        assert_eq!(o.topic_refresh, Duration::from_secs(60));
        assert!(o.topic_pattern.is_none());
        assert_eq!(o.rotate_size_bytes, 0);
        assert!(o.rotate_interval.is_zero());
        assert_eq!(o.sync_interval, Duration::from_secs(30));
        assert_eq!(o.http_connect_timeout, Duration::from_secs(2));
        assert_eq!(o.http_request_timeout, Duration::from_secs(5));
        assert_eq!(o.nsqd_tcp_addresses, ["127.0.0.1:4150"]);
        assert_eq!(o.topics, ["t"]);
        let c = &o.consumer;
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.lookupd_poll_interval, Duration::from_secs(60));
        assert_eq!(c.heartbeat_interval_ms, 30_000);
        assert_eq!(c.read_timeout, Duration::from_secs(60));
        assert_eq!(c.write_timeout, Duration::from_secs(1));
        assert_eq!(c.dial_timeout, Duration::from_secs(1));
        assert_eq!((c.client_id.as_str(), c.hostname.as_str()), ("box1", HOST));
    }

    #[test]
    fn go_flag_syntax_and_repeats() {
        let o = ok(&[
            "-nsqd-tcp-address",
            "a:1",
            "--nsqd-tcp-address=b:2,c:3",
            "-topic=x",
            "--topic",
            "y",
            "-gzip",
            "-gzip-level",
            "1",
            "--rotate-size=0x400",
            "-rotate-interval=1h30m",
            "--sync-interval",
            "250ms",
            "-work-dir=/w",
            "-output-dir",
            "/o",
            "--topic-pattern=^x",
            "--log-level=WARN",
            "-skip-empty-files=true",
        ]);
        assert_eq!(o.nsqd_tcp_addresses, ["a:1", "b:2", "c:3"]);
        assert_eq!(o.topics, ["x", "y"]);
        assert!(o.gzip && o.skip_empty_files);
        assert_eq!(o.gzip_level, 1);
        assert_eq!(o.rotate_size_bytes, 1024);
        assert_eq!(o.rotate_interval, Duration::from_secs(5400));
        assert_eq!(o.sync_interval, Duration::from_millis(250));
        assert_eq!((o.work_dir.as_str(), o.output_dir.as_str()), ("/w", "/o"));
        assert!(o
            .topic_pattern
            .as_ref()
            .is_some_and(|p| p.is_match("xyz") && !p.is_match("yx")));
        assert_eq!(o.log_level, LogLevel::Warn);
    }

    #[test]
    fn startup_checks_in_nsq_to_files_order() {
        assert!(err(&["--topic=t", "extra"]).contains("unknown arguments: extra"));
        assert!(err(&["--channel=", "--topic=t"]).contains("--channel is required"));
        assert!(err(&["--http-client-connect-timeout=0", "--topic=t"]).contains("should be positive"));
        assert!(err(&["--topic=t"]).contains("--nsqd-tcp-address or --lookupd-http-address required"));
        assert!(err(&[
            "--topic=t",
            "--nsqd-tcp-address=a:1",
            "--lookupd-http-address=b:2"
        ])
        .contains("not both"));
        assert!(err(&[MIN[0], MIN[1], "--gzip-level=0"]).contains("invalid --gzip-level value (0)"));
        assert!(err(&[MIN[0]]).contains("--topic or --topic-pattern required"));
        assert!(err(&[MIN[0], "--topic-pattern=."])
            .contains("--lookupd-http-address must be specified when no --topic specified"));
        assert!(err(&[MIN[0], MIN[1], "--log-level=loud"]).contains("--log-level is invalid"));
        assert!(err(&[MIN[0], MIN[1], "--topic-pattern=("]).contains("--topic-pattern"));
        assert!(err(&[MIN[0], MIN[1], "--max-in-flight=0"]).contains("--max-in-flight must be"));
        let o = ok(&["--lookupd-http-address=h:4161", "--topic-pattern=^a"]);
        assert!(o.topics.is_empty());
        assert!(ok(&["--version", "--gzip-level=99"]).print_version);
    }

    #[test]
    fn consumer_opts_are_go_nsq_keys() {
        let o = ok(&[
            MIN[0],
            MIN[1],
            "--consumer-opt=max_attempts,0",
            "--consumer-opt=lookupd_poll_interval,5s",
            "--consumer-opt=heartbeat_interval,10s",
            "--consumer-opt=msg_timeout,1m",
            "--consumer-opt=client_id,me",
            "--consumer-opt=snappy,false",
            "--consumer-opt=max_in_flight,7",
            "--max-in-flight=9",
        ]);
        assert_eq!(o.consumer.max_attempts, 0);
        assert_eq!(o.consumer.lookupd_poll_interval, Duration::from_secs(5));
        assert_eq!(o.consumer.heartbeat_interval_ms, 10_000);
        assert_eq!(o.consumer.msg_timeout_ms, 60_000);
        assert_eq!(o.consumer.client_id, "me");
        assert_eq!(o.consumer.max_in_flight, 9);
        assert!(err(&[MIN[0], MIN[1], "--consumer-opt=bogus,1"]).contains("invalid option bogus"));
        assert!(err(&[MIN[0], MIN[1], "--consumer-opt=tls_v1"]).contains("not supported"));
        assert!(err(&[MIN[0], MIN[1], "--consumer-opt=read_timeout,x"]).contains("invalid duration"));
    }
}
