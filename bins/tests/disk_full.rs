//! A full disk refuses publishes with E_PUB_FAILED and marks the node unhealthy (`/ping` 500),
//! loses nothing it acknowledged, and publishing resumes once consumers free space.
//!
//! The data path is a 4 MiB tmpfs this test mounts (CI runs as root).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ping(http: SocketAddr) -> (u16, String) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn start(dir: &Path, tcp: u16, http: u16) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_squalld"))
        .args([
            &format!("--tcp-address=127.0.0.1:{tcp}"),
            &format!("--http-address=127.0.0.1:{http}"),
            "--mem-queue-size=0",
            "--sync-every=1",
            "--max-bytes-per-file=262144",
            "--shards=1",
            &format!("--data-path={}", dir.display()),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("start squalld");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "squalld did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon(child)
}

#[test]
fn full_disk_refuses_then_recovers() {
    let dir = std::env::temp_dir().join(format!("squall-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&dir)
        .status();
    assert!(
        mounted.is_ok_and(|s| s.success()),
        "this test mounts a tmpfs and needs root"
    );
    let _mount = Mount(dir.clone());
    let (tcp, http) = (free_port(), free_port());
    let _daemon = start(&dir, tcp, http);
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp));
    let http = SocketAddr::from(([127, 0, 0, 1], http));

    let mut c = Client::connect(addr);
    c.sub("full", "ch");
    let body = vec![b'f'; 4000];
    let mut acked = 0usize;
    let mut p = Client::connect(addr);
    let refusal = loop {
        assert!(acked < 2000, "4 MiB never filled up");
        p.publish("full", &body);
        let (ft, data) = p.read_frame();
        if ft == FRAME_RESPONSE {
            acked += 1;
            continue;
        }
        break String::from_utf8_lossy(&data).into_owned();
    };
    assert!(refusal.starts_with("E_PUB_FAILED PUB failed "), "{refusal}");
    p.expect_closed();
    let (status, text) = ping(http);
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("NOK - "), "{text}");

    // Everything acknowledged is there; reading it frees the segments.
    c.cmd("RDY 100");
    for _ in 0..acked {
        let m = c.read_message();
        assert_eq!(m.body.len(), body.len());
        c.fin(&m.id);
    }
    // Publishing works again and the node is healthy.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut p = Client::connect(addr);
        p.publish("full", b"again");
        let (ft, _) = p.read_frame();
        if ft == FRAME_RESPONSE {
            break;
        }
        assert!(Instant::now() < deadline, "space never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ping(http), (200, "OK".to_string()));
}
