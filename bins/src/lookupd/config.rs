//! `squall-lookupd`'s command line: nsqlookupd's flags with their names and defaults (spec B),
//! in Go `flag` syntax through the shared `config::goflag` rewrite and Go's value parsers.
//!
//! `--config` is accepted and stored but not read (TOML loading is not built, as for squalld).

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::config::go_values::{parse_go_bool, parse_go_duration_ns};
use crate::config::goflag::normalize_go_args;
use crate::config::os_hostname;

/// What `squall-lookupd --version` prints.
pub const VERSION_LINE: &str = concat!(
    "squall-lookupd v",
    env!("CARGO_PKG_VERSION"),
    " (nsqlookupd v1.3.0 compatible)"
);

/// nsqlookupd's log levels: the same as nsqd's.
pub use crate::logging::Level as LogLevel;

/// Everything `squall-lookupd` was started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupdConfig {
    /// `--version`: print [`VERSION_LINE`] and exit.
    pub print_version: bool,
    /// `--config`: stored, not loaded.
    pub config_path: String,
    pub log_level: LogLevel,
    pub log_prefix: String,
    /// Deprecated, no effect.
    pub verbose: bool,
    pub tcp_address: String,
    pub http_address: String,
    /// Defaults to the OS hostname.
    pub broadcast_address: String,
    pub inactive_producer_timeout: Duration,
    pub tombstone_lifetime: Duration,
    /// The OS hostname (IDENTIFY answers carry it).
    pub hostname: String,
    /// Arguments from the first non-flag one on; nsqlookupd ignores them.
    pub extra_args: Vec<String>,
}

#[derive(Parser, Debug)]
#[command(
    name = "squall-lookupd",
    about = "Squall's nsqlookupd: producer discovery for NSQ clients",
    long_about = None,
    disable_version_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
struct Cli {
    /// Path to a TOML config file with nsqlookupd's keys (flags override it)
    #[arg(long, default_value = "", value_name = "PATH")]
    config: String,
    /// Print version string
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    version: bool,
    /// Set log verbosity: debug, info, warn, error, or fatal
    #[arg(long, default_value = "info", value_name = "LEVEL", value_parser = LogLevel::parse)]
    log_level: LogLevel,
    /// Log message prefix
    #[arg(long, default_value = "[nsqlookupd] ", value_name = "PREFIX")]
    log_prefix: String,
    /// [deprecated] has no effect, use --log-level
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_go_bool)]
    verbose: bool,
    /// <addr>:<port> to listen on for TCP clients
    #[arg(long, default_value = "0.0.0.0:4160", value_name = "ADDR")]
    tcp_address: String,
    /// <addr>:<port> to listen on for HTTP clients
    #[arg(long, default_value = "0.0.0.0:4161", value_name = "ADDR")]
    http_address: String,
    /// Address of this lookupd node [default: the OS hostname]
    #[arg(long, value_name = "ADDR")]
    broadcast_address: Option<String>,
    /// Duration of time a producer will remain in the active list since its last ping
    #[arg(long, default_value = "5m0s", value_name = "DURATION", value_parser = parse_duration)]
    inactive_producer_timeout: Duration,
    /// Duration of time a producer will remain tombstoned if registration remains
    #[arg(long, default_value = "45s", value_name = "DURATION", value_parser = parse_duration)]
    tombstone_lifetime: Duration,
    /// Arguments after the first non-flag one, ignored as nsqlookupd ignores them.
    #[arg(hide = true, num_args = 0.., trailing_var_arg = true)]
    extra_args: Vec<String>,
}

/// Go's `time.ParseDuration`; a negative duration behaves as zero (everything is at least
/// that old), which is what nsqlookupd's comparisons do with it.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let ns = parse_go_duration_ns(s)?;
    Ok(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
}

/// Parses `squall-lookupd`'s arguments (the first is the program name) in Go `flag` syntax.
/// `--help` comes back as an error of kind `DisplayHelp`: `err.exit()` prints it and exits 0.
pub fn parse_args<I, T>(args: I) -> Result<LookupdConfig, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_args_with_hostname(args, &os_hostname())
}

fn parse_args_with_hostname<I, T>(args: I, hostname: &str) -> Result<LookupdConfig, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = Cli::command();
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let argv = normalize_go_args(&cmd, argv)?;
    let matches = cmd.try_get_matches_from_mut(argv)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    Ok(LookupdConfig {
        print_version: cli.version,
        config_path: cli.config,
        log_level: cli.log_level,
        log_prefix: cli.log_prefix,
        verbose: cli.verbose,
        tcp_address: cli.tcp_address,
        http_address: cli.http_address,
        broadcast_address: cli.broadcast_address.unwrap_or_else(|| hostname.to_string()),
        inactive_producer_timeout: cli.inactive_producer_timeout,
        tombstone_lifetime: cli.tombstone_lifetime,
        hostname: hostname.to_string(),
        extra_args: cli.extra_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "lookupd-host.example";

    fn parse(args: &[&str]) -> Result<LookupdConfig, clap::Error> {
        let mut argv = vec!["squall-lookupd"];
        argv.extend_from_slice(args);
        parse_args_with_hostname(argv, HOST)
    }

    fn ok(args: &[&str]) -> LookupdConfig {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn defaults_are_nsqlookupds() {
        let c = ok(&[]);
        assert!(!c.print_version && !c.verbose);
        assert_eq!(c.config_path, "");
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.log_prefix, "[nsqlookupd] ");
        assert_eq!(c.tcp_address, "0.0.0.0:4160");
        assert_eq!(c.http_address, "0.0.0.0:4161");
        assert_eq!(c.broadcast_address, HOST);
        assert_eq!(c.hostname, HOST);
        assert_eq!(c.inactive_producer_timeout, Duration::from_secs(300));
        assert_eq!(c.tombstone_lifetime, Duration::from_secs(45));
        assert!(c.extra_args.is_empty());
    }

    #[test]
    fn go_flag_syntax() {
        let c = ok(&[
            "-tcp-address",
            "127.0.0.1:1",
            "--http-address=127.0.0.1:2",
            "-broadcast-address=b.example",
            "--inactive-producer-timeout",
            "1.5s",
            "-tombstone-lifetime=100ms",
            "-log-level=WARN",
            "--log-prefix",
            "-x- ",
            "-verbose",
            "--config=/etc/nsqlookupd.toml",
            "rest",
            "-tcp-address=ignored",
        ]);
        assert_eq!(c.tcp_address, "127.0.0.1:1");
        assert_eq!(c.http_address, "127.0.0.1:2");
        assert_eq!(c.broadcast_address, "b.example");
        assert_eq!(c.inactive_producer_timeout, Duration::from_millis(1500));
        assert_eq!(c.tombstone_lifetime, Duration::from_millis(100));
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(c.log_prefix, "-x- ");
        assert!(c.verbose);
        assert_eq!(c.config_path, "/etc/nsqlookupd.toml");
        assert_eq!(c.extra_args, ["rest", "-tcp-address=ignored"]);
    }

    #[test]
    fn errors_version_and_help() {
        assert!(parse(&["--inactive-producer-timeout=300"]).is_err());
        assert!(parse(&["--log-level=loud"]).is_err());
        assert!(parse(&["--max-rdy-count=1"]).is_err());
        assert!(ok(&["-version"]).print_version);
        assert!(ok(&["--version=true"]).print_version);
        for flag in ["-h", "--help"] {
            let kind = parse(&[flag]).unwrap_err().kind();
            assert_eq!(kind, clap::error::ErrorKind::DisplayHelp);
        }
        assert!(VERSION_LINE.starts_with("squall-lookupd v"));
        assert_eq!(
            ok(&["--tombstone-lifetime=-1s"]).tombstone_lifetime,
            Duration::ZERO
        );
    }
}
