//! Helpers shared by the integration tests: a loopback config and bounded-time clients.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use squall_uring_net::{RuntimeConfig, RuntimeHandle};

/// Upper bound for any single wait in a test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

pub fn config(shards: usize) -> RuntimeConfig {
    RuntimeConfig {
        shards,
        listeners: vec![SocketAddr::from(([127, 0, 0, 1], 0)).into()],
        pin_threads: false,
        input_max_bytes: 64 * 1024,
        mailbox_capacity: 64,
        drain_timeout: Duration::from_secs(2),
        ring_entries: 256,
        name: "test-shard".to_string(),
    }
}

/// The address of the runtime's first listener, a TCP one in `config`.
pub fn tcp_addr(rt: &RuntimeHandle) -> SocketAddr {
    rt.local_addrs()[0].as_tcp().expect("a TCP listener")
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TEST_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `len` bytes or panics after the stream's timeout.
pub fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).expect("read_exact");
    buf
}

/// Writes `data` in chunks of the given sizes (cycled), to make the server see partial frames.
pub fn write_in_pieces(stream: &mut TcpStream, data: &[u8], pieces: &[usize]) {
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = pieces[i % pieces.len()].clamp(1, data.len() - at);
        stream.write_all(&data[at..at + n]).expect("write");
        at += n;
        i += 1;
    }
}

/// Polls `cond` every millisecond until it holds or `TEST_TIMEOUT` passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TEST_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// Byte `i` of `pattern(_, seed)`.
pub fn pattern_byte(i: usize, seed: u8) -> u8 {
    (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed
}
