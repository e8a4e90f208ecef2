//! nsq_to_file's command line (spec C.1): every flag with nsq_to_file's name and default, Go
//! `flag` syntax (shared with squalld through `config::goflag`), and nsq_to_file's startup checks
//! in its order, with its messages and exit status. `--consumer-opt` is `consumer_config`'s. Every
//! limit of the tool is declared here too.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use regex::Regex;

use super::consumer_config::ConsumerConfig;
use crate::config::go_values::{parse_go_bool, parse_go_duration_ns, parse_go_i64};
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

/// A topic logger's event queue holds `--max-in-flight` messages, but no more than this (nsqd's
/// default `--max-rdy-count`): a huge `--max-in-flight` does not allocate a huge queue up front;
/// past it the connection readers wait for the logger.
pub const EVENT_QUEUE_MESSAGES_MAX: usize = 2500;
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
/// Events queued from the connection threads to a topic's logger thread beyond its messages:
/// a full queue blocks the connection's reader (the socket backs up; RDY already bounds it).
pub const EVENT_QUEUE_SLACK: usize = 64;
/// One read from an nsqd socket.
pub const SOCKET_READ_BYTES: usize = 64 * 1024;
/// Plaintext the connection layers (TLS, snappy, deflate) hand out per step; the rest waits in
/// them or in the raw input, so an inflating stream cannot grow the read buffer without bound.
pub const DECODE_STEP_BYTES: usize = 256 * 1024;
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
    #[arg(long, action = ArgAction::Append, value_name = "ADDR")]
    nsqd_tcp_address: Vec<String>,
    /// lookupd HTTP address (may be given multiple times)
    #[arg(long, action = ArgAction::Append, value_name = "ADDR")]
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

/// `--topic-pattern`: a Go regexp matched unanchored. One that does not compile matches nothing
/// (nsq_to_file's `isTopicAllowed` treats the compile error as "not allowed"), so every topic is
/// skipped with a warning instead of stopping the tool.
#[derive(Clone, Debug)]
pub struct TopicPattern {
    source: String,
    regex: Option<Regex>,
}

impl TopicPattern {
    pub fn new(source: &str) -> TopicPattern {
        TopicPattern {
            source: source.to_string(),
            regex: Regex::new(source).ok(),
        }
    }

    pub fn allows(&self, topic: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(topic))
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
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
    /// `None` (not positive): the topic list is never refreshed, as Go's `time.Tick` of it never
    /// fires.
    pub topic_refresh: Option<Duration>,
    /// Empty `--topic-pattern`: every topic.
    pub topic_pattern: Option<TopicPattern>,
    /// 0: off (so is a negative `--rotate-size`).
    pub rotate_size_bytes: u64,
    /// Zero: off (so is a negative `--rotate-interval`).
    pub rotate_interval: Duration,
    /// `None` (not positive): a topic's logger stops the process when it starts, as
    /// nsq_to_file's `time.NewTicker` panics there.
    pub sync_interval: Option<Duration>,
    pub http_connect_timeout: Duration,
    pub http_request_timeout: Duration,
    pub nsqd_tcp_addresses: Vec<String>,
    pub lookupd_http_addresses: Vec<String>,
    pub topics: Vec<String>,
    pub consumer: ConsumerConfig,
    /// What `--consumer-opt` could not set, or sets to no effect: logged at start.
    pub consumer_warnings: Vec<String>,
    /// The OS hostname (for `<HOST>` and IDENTIFY).
    pub hostname: String,
}

/// Why `squall-to-file` does not start.
#[derive(Debug)]
pub enum ArgsError {
    /// Go's `flag` package refused the command line, or `--help`: clap prints it and exits 2 (0
    /// for help), as the `flag.ExitOnError` flag set does.
    Usage(clap::Error),
    /// One of nsq_to_file's own start-up checks: it `log.Fatal`s this message (exit 1).
    Fatal(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::Usage(e) => write!(f, "{e}"),
            ArgsError::Fatal(msg) => f.write_str(msg),
        }
    }
}

/// Parses `squall-to-file`'s arguments (the first one is the program name) with Go `flag` syntax
/// and applies nsq_to_file's startup checks in its order (spec C.1).
pub fn parse_args<I, T>(args: I, hostname: &str) -> Result<ToFileOptions, ArgsError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = Cli::command();
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let argv = normalize_go_args(&cmd, argv).map_err(ArgsError::Usage)?;
    let matches = cmd.try_get_matches_from_mut(argv).map_err(ArgsError::Usage)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| ArgsError::Usage(e.format(&mut cmd)))?;
    cli.into_options(hostname).map_err(ArgsError::Fatal)
}

fn positive(ns: i64) -> Option<Duration> {
    u64::try_from(ns)
        .ok()
        .filter(|&n| n > 0)
        .map(Duration::from_nanos)
}

impl Cli {
    /// nsq_to_file's `main`, check by check, with its `log.Fatal` texts.
    fn into_options(self, hostname: &str) -> Result<ToFileOptions, String> {
        if !self.extra_args.is_empty() {
            // Go's `%s` of a []string.
            return Err(format!("unknown arguments: [{}]", self.extra_args.join(" ")));
        }
        let log_level = LogLevel::parse(&self.log_level).ok_or("--log-level is invalid")?;
        let nsqd = self.nsqd_tcp_address;
        let lookupd = self.lookupd_http_address;
        if !self.version {
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
                return Err("--nsqd-tcp-address or --lookupd-http-address required.".into());
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
        }
        let short_host = hostname.split('.').next().unwrap_or(hostname);
        let (consumer, consumer_warnings) =
            ConsumerConfig::from_opts(&self.consumer_opt, self.max_in_flight, short_host, hostname);
        let topic_pattern = (!self.topic_pattern.is_empty()).then(|| TopicPattern::new(&self.topic_pattern));
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
            rotate_interval: positive(self.rotate_interval).unwrap_or(Duration::ZERO),
            sync_interval: positive(self.sync_interval),
            http_connect_timeout: positive(self.http_client_connect_timeout).unwrap_or(Duration::ZERO),
            http_request_timeout: positive(self.http_client_request_timeout).unwrap_or(Duration::ZERO),
            nsqd_tcp_addresses: nsqd,
            lookupd_http_addresses: lookupd,
            topics: self.topic,
            consumer,
            consumer_warnings,
            hostname: hostname.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "box1.example.com";

    fn parse(args: &[&str]) -> Result<ToFileOptions, ArgsError> {
        let mut argv = vec!["squall-to-file"];
        argv.extend_from_slice(args);
        parse_args(argv, HOST)
    }

    fn ok(args: &[&str]) -> ToFileOptions {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The `log.Fatal` message of a start-up check.
    fn fatal(args: &[&str]) -> String {
        match parse(args) {
            Ok(o) => panic!("{args:?} should fail, got {o:?}"),
            Err(ArgsError::Fatal(msg)) => msg,
            Err(ArgsError::Usage(e)) => panic!("{args:?}: a usage error, not a start-up check: {e}"),
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
        assert_eq!(o.topic_refresh, Some(Duration::from_secs(60)));
        assert!(o.topic_pattern.is_none());
        assert_eq!(o.rotate_size_bytes, 0);
        assert!(o.rotate_interval.is_zero());
        assert_eq!(o.sync_interval, Some(Duration::from_secs(30)));
        assert_eq!(o.http_connect_timeout, Duration::from_secs(2));
        assert_eq!(o.http_request_timeout, Duration::from_secs(5));
        assert_eq!(o.nsqd_tcp_addresses, ["127.0.0.1:4150"]);
        assert_eq!(o.topics, ["t"]);
        assert_eq!(o.consumer.client_id, "box1");
        assert!(o.consumer_warnings.is_empty());
    }

    #[test]
    fn go_flag_syntax_and_repeats() {
        let o = ok(&[
            "-nsqd-tcp-address",
            "a:1",
            "--nsqd-tcp-address=b:2",
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
        assert_eq!(o.nsqd_tcp_addresses, ["a:1", "b:2"]);
        assert_eq!(o.topics, ["x", "y"]);
        assert!(o.gzip && o.skip_empty_files);
        assert_eq!(o.gzip_level, 1);
        assert_eq!(o.rotate_size_bytes, 1024);
        assert_eq!(o.rotate_interval, Duration::from_secs(5400));
        assert_eq!(o.sync_interval, Some(Duration::from_millis(250)));
        assert_eq!((o.work_dir.as_str(), o.output_dir.as_str()), ("/w", "/o"));
        assert!(o
            .topic_pattern
            .as_ref()
            .is_some_and(|p| p.allows("xyz") && !p.allows("yx")));
        assert_eq!(o.log_level, LogLevel::Warn);
    }

    #[test]
    fn addresses_are_not_split_on_commas() {
        // Go's StringArray appends each value whole; the comma then fails the dial.
        let o = ok(&["--nsqd-tcp-address=a:1,b:2", "--topic=t"]);
        assert_eq!(o.nsqd_tcp_addresses, ["a:1,b:2"]);
        let o = ok(&["--lookupd-http-address=h:1,h:2", "--topic=t"]);
        assert_eq!(o.lookupd_http_addresses, ["h:1,h:2"]);
    }

    #[test]
    fn startup_checks_in_nsq_to_files_order_with_its_messages() {
        assert_eq!(
            fatal(&["--topic=t", "extra", "x"]),
            "unknown arguments: [extra x]"
        );
        assert_eq!(fatal(&["--version", "extra"]), "unknown arguments: [extra]");
        assert_eq!(
            fatal(&["--version", "--log-level=loud"]),
            "--log-level is invalid"
        );
        assert_eq!(
            fatal(&[MIN[0], MIN[1], "--log-level=loud"]),
            "--log-level is invalid"
        );
        assert_eq!(fatal(&["--channel=", "--topic=t"]), "--channel is required");
        assert_eq!(
            fatal(&["--http-client-connect-timeout=0", "--topic=t"]),
            "--http-client-connect-timeout should be positive"
        );
        assert_eq!(
            fatal(&["--http-client-request-timeout=-1s", "--topic=t"]),
            "--http-client-request-timeout should be positive"
        );
        assert_eq!(
            fatal(&["--topic=t"]),
            "--nsqd-tcp-address or --lookupd-http-address required."
        );
        assert_eq!(
            fatal(&[
                "--topic=t",
                "--nsqd-tcp-address=a:1",
                "--lookupd-http-address=b:2"
            ]),
            "use --nsqd-tcp-address or --lookupd-http-address not both"
        );
        assert_eq!(
            fatal(&[MIN[0], MIN[1], "--gzip-level=0"]),
            "invalid --gzip-level value (0), should be 1-9"
        );
        assert_eq!(fatal(&[MIN[0]]), "--topic or --topic-pattern required");
        assert_eq!(
            fatal(&[MIN[0], "--topic-pattern=."]),
            "--lookupd-http-address must be specified when no --topic specified"
        );
        let o = ok(&["--lookupd-http-address=h:4161", "--topic-pattern=^a"]);
        assert!(o.topics.is_empty());
        assert!(ok(&["--version", "--gzip-level=99"]).print_version);
        // Go's flag package refuses a bad value itself: a usage error (exit 2), not a check.
        assert!(matches!(
            parse(&[MIN[0], MIN[1], "--gzip-level=x"]),
            Err(ArgsError::Usage(_))
        ));
    }

    #[test]
    fn what_nsq_to_file_does_not_check_starts() {
        let o = ok(&[MIN[0], MIN[1], "--max-in-flight=5000"]);
        assert_eq!(o.consumer.max_in_flight, 5000);
        // go-nsq refuses these when the topic's consumer is made, not at start.
        assert_eq!(
            ok(&[MIN[0], MIN[1], "--max-in-flight=-1"]).consumer.max_in_flight,
            -1
        );
        assert_eq!(
            ok(&[MIN[0], MIN[1], "--max-in-flight=0"]).consumer.max_in_flight,
            0
        );
        assert_eq!(ok(&[MIN[0], MIN[1], "--sync-interval=0"]).sync_interval, None);
        assert_eq!(ok(&[MIN[0], MIN[1], "--sync-interval=-1s"]).sync_interval, None);
        let o = ok(&[MIN[0], MIN[1], "--rotate-size=-1", "--rotate-interval=-1m"]);
        assert_eq!((o.rotate_size_bytes, o.rotate_interval), (0, Duration::ZERO));
        let o = ok(&[
            "--lookupd-http-address=h:4161",
            "--topic-pattern=.",
            "--topic-refresh=0",
        ]);
        assert_eq!(o.topic_refresh, None);
        let o = ok(&[MIN[0], MIN[1], "--topic-pattern=("]);
        let pattern = o.topic_pattern.expect("kept");
        assert!(!pattern.allows("t") && !pattern.allows("("));
        assert_eq!(pattern.to_string(), "(");
    }

    #[test]
    fn consumer_opts_never_stop_the_tool() {
        let o = ok(&[
            MIN[0],
            MIN[1],
            "--consumer-opt=bogus,1",
            "--consumer-opt=snappy",
            "--consumer-opt=read_timeout,x",
        ]);
        assert!(o.consumer.snappy);
        assert_eq!(o.consumer_warnings.len(), 2, "{:?}", o.consumer_warnings);
    }
}
