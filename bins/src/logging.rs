//! Log lines the way nsqd writes them, for `squalld` and `squall-lookupd`.
//!
//! nsq's `internal/lg` package wraps Go's `log.Logger` built with
//! `log.New(os.Stderr, opts.LogPrefix, log.Ldate|log.Ltime|log.Lmicroseconds)` and prepends the
//! level name, so one event is one line on stderr:
//!
//! ```text
//! [nsqd] 2026/11/25 12:00:00.123456 INFO: TCP: listening on 0.0.0.0:4150
//! ```
//!
//! `<prefix><local date> <local time.micros> <LEVEL>: <message>`, where LEVEL is DEBUG, INFO,
//! WARNING, ERROR or FATAL (lg's names; the flag value is `warn`, the line says `WARNING`).
//!
//! The level and prefix are process-wide: the level is an atomic so `PUT /config/log_level` can
//! change it on a running node ([`set_level`]) while shard threads log; the prefix is set at
//! start ([`init`]) and only read afterwards. A line is formatted whole and written with one `write_all` on a locked
//! stderr, so lines from different threads never interleave.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// nsq's `lg.LogLevel`, least severe first; the discriminants are lg's (what nsqd's
/// `GET /config/log_level` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Fatal = 5,
}

impl Level {
    /// lg's `ParseLogLevel`: the flag spellings, case-insensitive.
    pub fn parse(s: &str) -> Result<Level, String> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            "fatal" => Ok(Level::Fatal),
            _ => Err(format!(
                "invalid log level '{s}' (debug, info, warn, error, fatal)"
            )),
        }
    }

    /// The name in a log line.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// The level with lg's number (1 debug … 5 fatal), as `/config/log_level` reports it.
    pub fn from_number(n: u8) -> Option<Level> {
        (1..=5).contains(&n).then(|| Level::from_u8(n))
    }

    fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Fatal,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static PREFIX: RwLock<String> = RwLock::new(String::new());

/// Sets the prefix and the level: once the flags are read, or before (with the tool's default
/// prefix) to report a config file that cannot be read.
pub fn init(prefix: &str, level: Level) {
    let mut p = PREFIX.write().unwrap_or_else(|e| e.into_inner());
    p.clear();
    p.push_str(prefix);
    set_level(level);
}

/// Changes the level of a running process: what `PUT /config/log_level` should call.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn level() -> Level {
    Level::from_u8(LEVEL.load(Ordering::Relaxed))
}

pub fn enabled(level: Level) -> bool {
    level >= self::level()
}

/// Writes one line if `level` passes the filter. Prefer the `log_*!` macros.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = {
        let prefix = PREFIX.read().unwrap_or_else(|e| e.into_inner());
        format_line(&prefix, &Stamp::now(), level, args)
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes one line with its own `prefix` and `threshold` instead of the process-wide ones: for
/// a component that carries its own settings (an in-process `squall-lookupd`).
pub fn log_with(prefix: &str, threshold: Level, level: Level, args: fmt::Arguments<'_>) {
    if level < threshold {
        return;
    }
    let line = format_line(prefix, &Stamp::now(), level, args);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes one INFO line (a sink for components that log through a plain function).
pub fn info(args: fmt::Arguments<'_>) {
    log(Level::Info, args);
}

/// Logs at FATAL (never filtered out: FATAL is the highest level) and exits 1, as lg's
/// `LogFatal` + `os.Exit(1)` do.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    log(Level::Fatal, args);
    std::process::exit(1)
}

fn format_line(prefix: &str, stamp: &Stamp, level: Level, args: fmt::Arguments<'_>) -> String {
    format!("{prefix}{stamp} {}: {args}\n", level.name())
}

#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Debug, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Error, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! log_fatal {
    ($($arg:tt)*) => { $crate::logging::fatal(format_args!($($arg)*)) };
}

/// Go's `Ldate|Ltime|Lmicroseconds` stamp in local time: `2006/01/02 15:04:05.000000`.
struct Stamp {
    year: i32,
    month: i32,
    day: i32,
    hour: i32,
    minute: i32,
    second: i32,
    micros: u32,
}

impl Stamp {
    fn now() -> Stamp {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as libc::time_t;
        // SAFETY: `tm` is a plain C struct that localtime_r/gmtime_r fill; both pointers are
        // valid for the duration of the call.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&secs, &mut tm).is_null() {
                libc::gmtime_r(&secs, &mut tm);
            }
            tm
        };
        Stamp {
            year: tm.tm_year + 1900,
            month: tm.tm_mon + 1,
            day: tm.tm_mday,
            hour: tm.tm_hour,
            minute: tm.tm_min,
            second: tm.tm_sec,
            micros: since.subsec_micros(),
        }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_nsqds_shape() {
        let stamp = Stamp {
            year: 2026,
            month: 11,
            day: 25,
            hour: 12,
            minute: 0,
            second: 0,
            micros: 123_456,
        };
        let line = format_line(
            "[nsqd] ",
            &stamp,
            Level::Info,
            format_args!("TCP: listening on {}", "0.0.0.0:4150"),
        );
        assert_eq!(
            line,
            "[nsqd] 2026/11/25 12:00:00.123456 INFO: TCP: listening on 0.0.0.0:4150\n"
        );
        let line = format_line("", &stamp, Level::Warn, format_args!("x"));
        assert_eq!(line, "2026/11/25 12:00:00.123456 WARNING: x\n");
    }

    #[test]
    fn the_stamp_is_fixed_width() {
        let s = Stamp::now().to_string();
        assert_eq!(s.len(), "2006/01/02 15:04:05.000000".len(), "{s}");
    }

    #[test]
    fn levels_parse_order_and_filter() {
        for (s, l) in [
            ("debug", Level::Debug),
            ("INFO", Level::Info),
            ("Warn", Level::Warn),
            ("error", Level::Error),
            ("fatal", Level::Fatal),
        ] {
            assert_eq!(Level::parse(s), Ok(l));
            assert_eq!(Level::from_u8(l as u8), l);
        }
        assert!(Level::parse("warning").is_err());
        assert!(Level::Debug < Level::Info && Level::Error < Level::Fatal);
        // The only test in this crate that touches the global level.
        set_level(Level::Error);
        assert!(!enabled(Level::Info) && enabled(Level::Error) && enabled(Level::Fatal));
        set_level(Level::Debug);
        assert!(enabled(Level::Debug));
        assert_eq!(level(), Level::Debug);
        set_level(Level::Info);
    }
}
