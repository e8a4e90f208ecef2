//! Under load and faults the broker keeps serving: ~10,000 concurrent connections, a consumer
//! that never reads (memory bounded by the output caps, other consumers not stalled), a consumer
//! that dies with messages in flight (redelivered after msg_timeout), and clients cut mid-body.

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use squall_core::broker::CONSUMER_OUTPUT_BYTES_MAX;
use squall_core::options::Options;

/// The tests share the process's descriptors and its RSS: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write into.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit; raising the soft limit to the hard one is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    lim.rlim_cur
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .expect("VmRSS")
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn ten_thousand_connections() {
    let _g = serial();
    const WANT: usize = 10_000;
    // Each loopback connection costs two descriptors here (client and server side, one process);
    // keep some for the node, the test harness and the probe connections.
    let limit = raise_nofile() as usize;
    let fit = limit.saturating_sub(400) / 2;
    let count = WANT.min(fit);
    if count < WANT {
        eprintln!("RLIMIT_NOFILE hard limit is {limit}: holding {count} connections instead of {WANT}");
    }
    let n = TestNode::start(Options::default());
    let http = n.http_addr();
    let started = Instant::now();
    let mut conns = Vec::with_capacity(count);
    for batch in 0..count.div_ceil(500) {
        let in_batch = 500.min(count - batch * 500);
        for _ in 0..in_batch {
            let mut c = Client::connect_raw(n.addr);
            c.send(b"  V2NOP\n");
            conns.push(c);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "connecting took too long"
        );
    }
    wait_for_connections(http, count as u64);
    // A fresh connection is still served, end to end.
    let mut s = n.client();
    s.sub("many", "ch");
    s.cmd("RDY 1");
    let mut p = n.client();
    p.publish("many", b"still serving");
    p.expect_ok();
    assert_eq!(s.read_message().body, b"still serving");
    // A few of the held connections still answer too.
    for c in conns.iter_mut().step_by(997) {
        c.publish("many-held", b"x");
        c.expect_ok();
    }
    drop(conns);
    drop((s, p));
    wait_for_connections(http, 0);
    eprintln!(
        "{count} connections opened, used and closed in {:?}",
        started.elapsed()
    );
}

/// One `/stats` number for `topic`/`channel`.
fn channel_stat(http: std::net::SocketAddr, topic: &str, channel: &str, key: &str) -> i64 {
    let v: serde_json::Value =
        serde_json::from_str(&http_get(http, &format!("/stats?format=json&topic={topic}"))).unwrap();
    v["topics"][0]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_name"] == channel)
        .map_or(0, |c| c[key].as_i64().unwrap())
}

#[test]
fn slow_consumer_bounds_memory_and_stalls_no_one() {
    let _g = serial();
    const MSG: usize = 8 * 1024;
    const BATCH: usize = 50;
    const TOTAL_BYTES: usize = 48 * 1024 * 1024;
    // A warm-up first: it fills the slow consumer up to its caps and pays the fixed costs (the
    // producer's input buffer, allocator arenas); the ~20 MB measured come after it.
    const WARMUP_BATCHES: usize = 20;
    const MESSAGES: usize = TOTAL_BYTES / MSG / BATCH * BATCH + WARMUP_BATCHES * BATCH;
    const SLOW_RCVBUF: libc::c_int = 64 * 1024;
    const BACKLOG_MAX: i64 = 100;
    let n = TestNode::start(Options::default());
    let http = n.http_addr();

    // Never read; the kernel holds little for it (a locked 64 KiB receive buffer).
    let mut slow = n.client();
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            slow.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&SLOW_RCVBUF as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    slow.sub("slow", "ch");
    slow.cmd("RDY 2500");

    let mut reader = n.client();
    reader.sub("slow", "ch");
    reader.cmd(&format!("RDY {BATCH}"));
    let received = Arc::new(AtomicU64::new(0));
    let got = received.clone();
    let reading = std::thread::spawn(move || {
        // Bounded: runs until told the count it must reach is reached, or a read times out.
        loop {
            let m = reader.read_message();
            assert_eq!(m.body.len(), MSG);
            reader.fin(&m.id);
            got.fetch_add(1, Ordering::Relaxed);
            if m.body[0] == b'!' {
                return;
            }
        }
    });

    let start_rss = rss_bytes();
    let mut before = start_rss;
    let mut p = n.client();
    let body = vec![b'b'; MSG];
    let bodies: Vec<&[u8]> = vec![&body[..]; BATCH];
    let started = Instant::now();
    for batch in 0..MESSAGES / BATCH {
        if batch == WARMUP_BATCHES {
            before = rss_bytes();
        }
        p.mpub("slow", &bodies);
        p.expect_ok();
        // Pace the producer on the queue, so memory measures what consumers hold, not a backlog.
        let deadline = Instant::now() + READ_TIMEOUT;
        while channel_stat(http, "slow", "ch", "depth") > BACKLOG_MAX {
            assert!(Instant::now() < deadline, "reading consumer stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let after = rss_bytes();
    let slow_in_flight = {
        let v: serde_json::Value =
            serde_json::from_str(&http_get(http, "/stats?format=json&topic=slow")).unwrap();
        v["topics"][0]["channels"][0]["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["in_flight_count"].as_i64().unwrap())
            .max()
            .unwrap()
    };
    // The reader got everything the slow consumer did not take, and keeps getting more.
    let to_reader = MESSAGES as u64 - slow_in_flight as u64;
    let deadline = Instant::now() + READ_TIMEOUT;
    while received.load(Ordering::Relaxed) < to_reader {
        assert!(
            Instant::now() < deadline,
            "reading consumer stalled: got {} of {to_reader}; stats {}",
            received.load(Ordering::Relaxed),
            http_get(http, "/stats?format=json&topic=slow")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut last = body.clone();
    last[0] = b'!';
    p.publish("slow", &last);
    p.expect_ok();
    reading.join().expect("reading consumer kept receiving");

    // What the broker may hold for the slow consumer: its output buffer (the cap plus the one
    // message that crossed it) and the bodies of what the kernel accepted, still in flight
    // (server send buffer up to tcp_wmem's max, plus the 64 KiB locked client receive buffer,
    // which the kernel doubles). On top: the reader's window (RDY × size), the paced backlog, one
    // MPUB in the producer's input, and a fixed 24 MiB for allocator slack and thread stacks (the
    // test runs beside others in one process, so its RSS is not the broker's alone).
    let wmem_max: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let bound = (CONSUMER_OUTPUT_BYTES_MAX + MSG) as u64
        + wmem_max
        + 2 * SLOW_RCVBUF as u64
        + ((BATCH + BACKLOG_MAX as usize + BATCH) * MSG) as u64 * 2
        + 24 * 1024 * 1024;
    let grew = after.saturating_sub(before);
    eprintln!(
        "published {} MiB after warm-up in {:?}; slow consumer holds {slow_in_flight} messages; \
         RSS grew {} KiB over warm-up, then {} KiB (bound {} KiB)",
        TOTAL_BYTES >> 20,
        started.elapsed(),
        before.saturating_sub(start_rss) >> 10,
        grew >> 10,
        bound >> 10
    );
    assert!(
        (slow_in_flight as usize) * MSG <= (bound as usize),
        "slow consumer holds {slow_in_flight} messages"
    );
    assert!(bound < TOTAL_BYTES as u64, "the bound must say something");
    assert!(grew < bound, "RSS grew {grew} bytes, bound {bound}");
    drop(slow);
}

#[test]
fn consumer_dying_with_messages_in_flight_has_them_redelivered() {
    let _g = serial();
    let n = TestNode::start(Options::default());
    let mut dying = n.client();
    dying.identify(r#"{"msg_timeout":1000}"#);
    dying.expect_ok();
    dying.sub("dies", "ch");
    dying.cmd("RDY 5");
    let mut p = n.client();
    for i in 0..5 {
        p.publish("dies", format!("m{i}").as_bytes());
        p.expect_ok();
    }
    let mut first = BTreeSet::new();
    for _ in 0..5 {
        let m = dying.read_message();
        assert_eq!(m.attempts, 1);
        first.insert((m.id, m.body));
    }
    let mut heir = n.client();
    heir.sub("dies", "ch");
    heir.cmd("RDY 10");
    drop(dying);
    let mut again = BTreeSet::new();
    for _ in 0..5 {
        // READ_TIMEOUT (5 s) covers the 1 s msg_timeout and the timeout scan.
        let m = heir.read_message();
        assert_eq!(m.attempts, 2, "redelivery counts an attempt");
        heir.fin(&m.id);
        again.insert((m.id, m.body));
    }
    assert_eq!(first, again);
    heir.expect_silence(Duration::from_millis(200));
}

#[test]
fn clients_cut_mid_body_leave_no_trace() {
    let _g = serial();
    let n = TestNode::start(Options::default());
    let http = n.http_addr();
    let by = Bystander::start(n.addr, "bystander");
    let baseline = open_connections(http);
    let mut watcher = n.client();
    watcher.sub("cut", "ch");
    watcher.cmd("RDY 100");
    let mut rng = Rng(42);
    for _ in 0..100 {
        let mut bytes: Vec<u8> = match rng.next_u64() % 3 {
            0 => b"PUB cut\n\x00\x00\x10\x00".to_vec(),
            1 => b"DPUB cut 5\n\x00\x00\x10\x00".to_vec(),
            _ => b"MPUB cut\n\x00\x00\x10\x08\x00\x00\x00\x02\x00\x00\x08\x00".to_vec(),
        };
        let cut = (rng.next_u64() % 2000) as usize;
        bytes.extend_from_slice(&vec![b'z'; cut]);
        let mut c = n.client();
        c.send(&bytes);
        drop(c);
    }
    let rounds = by.finish();
    assert!(rounds >= 3);
    wait_for_connections(http, baseline - 2 + 1);
    watcher.expect_silence(Duration::from_millis(200));
    drop(watcher);
    wait_for_connections(http, 0);
}
