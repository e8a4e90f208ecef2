//! CPU time and memory of a process (the broker, or this client) from /proc.

use anyhow::{Context, Result};
use serde::Serialize;

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU seconds of all its threads since it started.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// The kernel's high-water mark of RSS (VmHWM).
    pub peak_rss_bytes: u64,
}

/// What a process used between two readings.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct UsageDelta {
    pub cpu_s: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

impl Usage {
    /// `pid` `None` reads this process.
    pub fn read(pid: Option<u32>) -> Result<Usage> {
        let dir = match pid {
            Some(p) => format!("/proc/{p}"),
            None => "/proc/self".to_string(),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat"))
            .with_context(|| format!("process {dir} is gone"))?;
        let after_comm = stat.rsplit_once(')').context("malformed stat")?.1;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // stat fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
        let field = |i: usize| -> Result<u64> { Ok(fields.get(i).context("short stat")?.parse::<u64>()?) };
        let ticks = field(11)? + field(12)?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let status = std::fs::read_to_string(format!("{dir}/status"))?;
        let kb = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Usage {
            cpu_s: ticks as f64 / hz,
            rss_bytes: kb("VmRSS:") * 1024,
            peak_rss_bytes: kb("VmHWM:") * 1024,
        })
    }

    pub fn since(&self, before: &Usage) -> UsageDelta {
        UsageDelta {
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
            rss_bytes: self.rss_bytes,
            peak_rss_bytes: self.peak_rss_bytes,
        }
    }
}

/// Raises this process's open-file limit to its hard limit (for many-connection runs); returns
/// the limit now in force. Children started afterwards inherit it.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        let u = Usage::read(None).unwrap();
        assert!(u.rss_bytes > 0);
        assert!(u.peak_rss_bytes >= u.rss_bytes);
    }
}
