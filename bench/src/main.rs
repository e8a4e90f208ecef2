//! squall-bench: load against any NSQ-compatible broker (squalld or nsqd).
//!
//! This first version reproduces nsq's own `bench/` pattern with blocking sockets: `pub` sends
//! MPUB batches from N connections, each waiting for its `OK` before the next batch (as nsq's
//! bench_writer does); `sub` drains a channel with one RDY window and FINs every message (as
//! bench_reader does). With `--pid` it reports the broker's CPU time and peak RSS from /proc.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "squall-bench",
    version,
    about = "Load generator for NSQ-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish MPUB batches for a fixed time.
    Pub {
        #[arg(long, default_value = "127.0.0.1:4150")]
        nsqd_tcp_address: String,
        #[arg(long, default_value = "sub_bench")]
        topic: String,
        #[arg(long, default_value_t = 2)]
        connections: usize,
        #[arg(long, default_value_t = 200)]
        batch: usize,
        #[arg(long, default_value_t = 200)]
        size: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Broker process to measure (CPU seconds, peak RSS).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Consume a channel until it has been idle for `--idle-ms`.
    Sub {
        #[arg(long, default_value = "127.0.0.1:4150")]
        nsqd_tcp_address: String,
        #[arg(long, default_value = "sub_bench")]
        topic: String,
        #[arg(long, default_value = "ch")]
        channel: String,
        #[arg(long, default_value_t = 2500)]
        rdy: u32,
        #[arg(long, default_value_t = 1000)]
        idle_ms: u64,
        /// Stop after this long even if messages keep coming.
        #[arg(long, default_value_t = 120.0)]
        max_seconds: f64,
        #[arg(long)]
        pid: Option<u32>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Pub {
            nsqd_tcp_address,
            topic,
            connections,
            batch,
            size,
            seconds,
            pid,
        } => run_pub(
            &nsqd_tcp_address,
            &topic,
            connections,
            batch,
            size,
            Duration::from_secs_f64(seconds),
            pid,
        ),
        Cmd::Sub {
            nsqd_tcp_address,
            topic,
            channel,
            rdy,
            idle_ms,
            max_seconds,
            pid,
        } => run_sub(
            &nsqd_tcp_address,
            &topic,
            &channel,
            rdy,
            Duration::from_millis(idle_ms),
            Duration::from_secs_f64(max_seconds),
            pid,
        ),
    }
}

/// CPU seconds (user + system) and peak RSS of a process, from /proc.
fn proc_usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    Ok((ticks as f64 / hz, hwm_kb * 1024))
}

fn connect(addr: &str) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = &s;
    w.write_all(b"  V2")?;
    Ok(s)
}

/// Reads one frame, answering heartbeats. Returns (frame type, data).
fn read_frame(r: &mut impl Read, w: &mut impl Write, buf: &mut Vec<u8>) -> Result<i32> {
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head)?;
        let size = u32::from_be_bytes(head[0..4].try_into()?) as usize;
        let ft = i32::from_be_bytes(head[4..8].try_into()?);
        buf.resize(size.saturating_sub(4), 0);
        r.read_exact(buf)?;
        if ft == 0 && buf.as_slice() == b"_heartbeat_" {
            w.write_all(b"NOP\n")?;
            w.flush()?;
            continue;
        }
        return Ok(ft);
    }
}

fn run_pub(
    addr: &str,
    topic: &str,
    connections: usize,
    batch: usize,
    size: usize,
    duration: Duration,
    pid: Option<u32>,
) -> Result<()> {
    let mut cmd = format!("MPUB {topic}\n").into_bytes();
    let body_len = 4 + batch * (4 + size);
    cmd.extend_from_slice(&(body_len as u32).to_be_bytes());
    cmd.extend_from_slice(&(batch as u32).to_be_bytes());
    for _ in 0..batch {
        cmd.extend_from_slice(&(size as u32).to_be_bytes());
        cmd.extend(std::iter::repeat_n(b'a', size));
    }
    let cmd = Arc::new(cmd);
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let before = pid.map(proc_usage).transpose()?;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (cmd, sent, stop, addr) = (cmd.clone(), sent.clone(), stop.clone(), addr.to_string());
            std::thread::spawn(move || -> Result<()> {
                let s = connect(&addr)?;
                let mut r = BufReader::new(&s);
                let mut w = BufWriter::new(&s);
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    w.write_all(&cmd)?;
                    w.flush()?;
                    if read_frame(&mut r, &mut w, &mut buf)? != 0 {
                        bail!("publish failed: {}", String::from_utf8_lossy(&buf));
                    }
                    sent.fetch_add(batch as u64, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = sent.load(Ordering::Relaxed);
    println!(
        "pub: {n} msgs in {elapsed:.2}s = {:.0} msgs/s, {:.1} MB/s ({connections} conns, MPUB {batch} x {size} B)",
        n as f64 / elapsed,
        n as f64 * size as f64 / elapsed / 1e6
    );
    report_broker(pid, before, n)
}

fn report_broker(pid: Option<u32>, before: Option<(f64, u64)>, msgs: u64) -> Result<()> {
    if let (Some(pid), Some((cpu0, _))) = (pid, before) {
        let (cpu1, hwm) = proc_usage(pid)?;
        let cpu = cpu1 - cpu0;
        println!(
            "broker: {cpu:.2} CPU s ({:.2} µs/msg), peak RSS {:.1} MiB",
            cpu * 1e6 / msgs.max(1) as f64,
            hwm as f64 / 1048576.0
        );
    }
    Ok(())
}

fn run_sub(
    addr: &str,
    topic: &str,
    channel: &str,
    rdy: u32,
    idle: Duration,
    max: Duration,
    pid: Option<u32>,
) -> Result<()> {
    let s = connect(addr)?;
    let mut r = BufReader::with_capacity(256 * 1024, &s);
    let mut w = BufWriter::with_capacity(64 * 1024, &s);
    let mut buf = Vec::new();
    w.write_all(format!("SUB {topic} {channel}\nRDY {rdy}\n").as_bytes())?;
    w.flush()?;
    if read_frame(&mut r, &mut w, &mut buf)? != 0 {
        bail!("SUB failed: {}", String::from_utf8_lossy(&buf));
    }
    s.set_read_timeout(Some(idle))?;
    let before = pid.map(proc_usage).transpose()?;
    let started = Instant::now();
    let mut last = started;
    let mut got: u64 = 0;
    let mut fin = Vec::with_capacity(21);
    loop {
        match read_frame(&mut r, &mut w, &mut buf) {
            Ok(2) => {
                got += 1;
                last = Instant::now();
                fin.clear();
                fin.extend_from_slice(b"FIN ");
                fin.extend_from_slice(&buf[10..26]);
                fin.push(b'\n');
                w.write_all(&fin)?;
                // Flush once the reader has nothing buffered: FINs leave in batches.
                if r.buffer().is_empty() {
                    w.flush()?;
                }
            }
            Ok(_) => bail!("unexpected frame: {}", String::from_utf8_lossy(&buf)),
            Err(e) => {
                let timed_out = e.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                });
                if timed_out {
                    break;
                }
                return Err(e);
            }
        }
        if started.elapsed() > max {
            break;
        }
    }
    let elapsed = last.duration_since(started).as_secs_f64().max(1e-9);
    println!(
        "sub: {got} msgs in {elapsed:.2}s = {:.0} msgs/s (RDY {rdy})",
        got as f64 / elapsed
    );
    report_broker(pid, before, got)
}
