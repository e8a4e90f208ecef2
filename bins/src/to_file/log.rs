//! nsq_to_file's log lines: `<prefix><date> <time.micros> <LEVEL>: <message>` on stderr, as Go's
//! `log` package with `Ldate|Ltime|Lmicroseconds` prints them through nsq's `lg` helpers.

use std::io::Write;

use super::datetime::LocalTime;
use super::options::LogLevel;

#[derive(Clone, Debug)]
pub struct Log {
    prefix: String,
    level: LogLevel,
}

impl Log {
    pub fn new(prefix: &str, level: LogLevel) -> Log {
        Log {
            prefix: prefix.to_string(),
            level,
        }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        level >= self.level
    }

    pub fn log(&self, level: LogLevel, msg: &str) {
        if !self.enabled(level) {
            return;
        }
        let line = format!(
            "{}{} {}: {}\n",
            self.prefix,
            LocalTime::now().log_stamp(),
            level.name(),
            msg
        );
        // One write per line so lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    pub fn debug(&self, msg: &str) {
        self.log(LogLevel::Debug, msg);
    }
    pub fn info(&self, msg: &str) {
        self.log(LogLevel::Info, msg);
    }
    pub fn warn(&self, msg: &str) {
        self.log(LogLevel::Warn, msg);
    }
    pub fn error(&self, msg: &str) {
        self.log(LogLevel::Error, msg);
    }

    /// nsq_to_file's `lg.FATAL` + `os.Exit(1)`: nothing unsynced has been FIN'd, so the broker
    /// redelivers whatever was not on disk.
    pub fn fatal(&self, msg: &str) -> ! {
        self.log(LogLevel::Fatal, msg);
        std::process::exit(1)
    }
}

/// Go's `log.Fatal` on the standard logger (`LstdFlags`: local date and time, no prefix, no
/// level), which nsq_to_file's start-up checks use before its own logger exists: one line on
/// stderr, exit 1.
pub fn std_log_fatal(msg: &str) -> ! {
    let line = format!("{} {msg}\n", LocalTime::now().std_log_stamp());
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    std::process::exit(1)
}
