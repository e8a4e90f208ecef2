//! Brokers under test: a fresh process per run (own temp data dir, free loopback ports, the same
//! flags for squalld and nsqd), or an already-running broker the user points at.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// How long a broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a broker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Squall,
    Nsqd,
}

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::Squall => "Squall",
            Flavor::Nsqd => "nsqd",
        }
    }
}

/// Where a broker comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Spawn this binary for every run.
    Binary(PathBuf),
    /// Use this running broker (and measure this pid, if given).
    Running(SocketAddr, Option<u32>),
}

/// Flags a run needs from its broker.
#[derive(Clone, Copy, Debug)]
pub struct BrokerFlags {
    pub mem_queue_size: u64,
    /// squalld only: `--output-buffer-idle-flush`.
    pub idle_flush: bool,
}

/// A broker for one run.
pub struct Broker {
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn temp_dir() -> Result<PathBuf> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "squall-bench-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// `<binary> --version`'s first line, for the report.
pub fn version(source: &Source) -> String {
    match source {
        Source::Binary(path) => Command::new(path)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                let text =
                    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
                text.lines().next().map(|l| l.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into()),
        Source::Running(addr, _) => format!("running broker at {addr}"),
    }
}

impl Broker {
    pub fn start(flavor: Flavor, source: &Source, flags: BrokerFlags) -> Result<Broker> {
        let path = match source {
            Source::Running(addr, pid) => {
                return Ok(Broker {
                    addr: *addr,
                    pid: *pid,
                    child: None,
                    dir: None,
                })
            }
            Source::Binary(p) => p,
        };
        let dir = temp_dir()?;
        let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut cmd = Command::new(path);
        cmd.arg(format!("--tcp-address={tcp}"))
            .arg(format!("--http-address={http}"))
            .arg(format!("--data-path={}", dir.display()))
            .arg(format!("--mem-queue-size={}", flags.mem_queue_size))
            .arg("--log-level=warn");
        if flavor == Flavor::Squall {
            let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            cmd.arg(format!("--grpc-address={grpc}"));
            if flags.idle_flush {
                cmd.arg("--output-buffer-idle-flush");
            }
        }
        let log = fs::File::create(dir.join("broker.log"))?;
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", path.display()))?;
        let mut b = Broker {
            addr: tcp,
            pid: Some(child.id()),
            child: Some(child),
            dir: Some(dir),
        };
        b.wait_listening(flavor)?;
        Ok(b)
    }

    fn wait_listening(&mut self, flavor: Flavor) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "{} exited at start ({status}): {}",
                    flavor.label(),
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {} within {START_TIMEOUT:?}: {}",
                    flavor.label(),
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines the broker logged, for error messages.
    pub fn log_tail(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let text = fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Whether the spawned process is still running (a running external broker always is).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGTERM, then SIGKILL after `STOP_TIMEOUT`; removes the data dir.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling a child we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(child.try_wait(), Ok(None)) {
                child.kill().ok();
            }
            child.wait().ok();
        }
        if let Some(dir) = self.dir.take() {
            remove_dir(&dir);
        }
    }
}

fn remove_dir(dir: &Path) {
    fs::remove_dir_all(dir).ok();
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
