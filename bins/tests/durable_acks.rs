//! With `--sync-every=1` and `--mem-queue-size=0` an acknowledged publish survives `kill -9` of
//! squalld: with four producers publishing, every message whose `OK` a producer saw is
//! delivered after a restart on the same data path, cycle after cycle.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
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

fn start(dir: &std::path::Path, port: u16) -> Guard {
    let child = Command::new(env!("CARGO_BIN_EXE_squalld"))
        .args([
            &format!("--tcp-address=127.0.0.1:{port}"),
            "--http-address=",
            "--mem-queue-size=0",
            "--sync-every=1",
            "--shards=2",
            &format!("--data-path={}", dir.display()),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("start squalld");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Ready means answering: right after a kill -9 the killed process's listener can still
    // take (and reset) a connection for a moment while the kernel tears its ring down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(addr) {
        assert!(Instant::now() < deadline, "squalld did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Guard(Some(child))
}

fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut req = b"  V2IDENTIFY\n".to_vec();
    req.extend_from_slice(&2u32.to_be_bytes());
    req.extend_from_slice(b"{}");
    let mut reply = [0u8; 10];
    std::io::Write::write_all(&mut s, &req).is_ok()
        && std::io::Read::read_exact(&mut s, &mut reply).is_ok()
        && &reply[8..] == b"OK"
}

/// Kills squalld if the test fails half-way, so no broker outlives it.
struct Guard(Option<Child>);

impl Guard {
    fn kill_9(&mut self) {
        let mut child = self.0.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn acknowledged_publishes_survive_kill_9() {
    let dir = std::env::temp_dir().join(format!("squall-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for round in 0..3 {
        let port = free_port();
        let mut child = start(&dir, port);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // A consumer channel exists, so messages land in the channel's queue too.
        let mut c = Client::connect(addr);
        c.sub("durable", "ch");
        c.send(b"CLS\n");
        c.expect_response(b"CLOSE_WAIT");
        drop(c);
        // Pipelined publishes; kill -9 while some are still unanswered.
        // Four producers, pipelined; kill -9 while some publishes are still unanswered.
        let mut producers: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
        for (n, p) in producers.iter_mut().enumerate() {
            let mut batch = Vec::new();
            for i in 0..200 {
                let body = format!("r{round}-p{n}-{i:03}");
                batch.extend_from_slice(b"PUB durable\n");
                batch.extend_from_slice(&(body.len() as u32).to_be_bytes());
                batch.extend_from_slice(body.as_bytes());
            }
            p.send(&batch);
        }
        let mut acked = Vec::new();
        for (n, p) in producers.iter_mut().enumerate() {
            for i in 0..100 {
                p.expect_ok();
                acked.push(format!("r{round}-p{n}-{i:03}"));
            }
        }
        child.kill_9();

        let mut child = start(&dir, port);
        let mut c = Client::connect(addr);
        c.sub("durable", "ch");
        c.cmd("RDY 1000");
        let mut seen = HashSet::new();
        c.stream
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        loop {
            let mut head = [0u8; 4];
            if std::io::Read::read_exact(&mut c.stream, &mut head).is_err() {
                break;
            }
            let mut rest = vec![0u8; u32::from_be_bytes(head) as usize];
            std::io::Read::read_exact(&mut c.stream, &mut rest).unwrap();
            if i32::from_be_bytes(rest[..4].try_into().unwrap()) == FRAME_MESSAGE {
                let m = parse_message(&rest[4..]);
                c.fin(&m.id);
                seen.insert(String::from_utf8(m.body).unwrap());
            }
        }
        for body in &acked {
            assert!(
                seen.contains(body),
                "round {round}: acknowledged {body} was lost ({} delivered)",
                seen.len()
            );
        }
        // FINs are not durable before a clean stop: stop cleanly so the next round starts empty.
        let status = child.terminate();
        assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
