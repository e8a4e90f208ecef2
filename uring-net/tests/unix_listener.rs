//! Claims: a Unix socket listener is served by every shard from one shared socket, with no peer
//! address; shutdown stops it (new connections refused, the socket closed while connections
//! drain) and the runtime removes the socket file once it is gone; an existing file at the path
//! fails the start and is left alone; `@name` listens in the abstract namespace and the empty
//! name gets one the kernel picks, as Go's `net.Listen("unix", ...)` does.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use squall_uring_net::{
    ConnId, Detached, Engine, Io, ListenAddr, Runtime, RuntimeConfig, ShardId, StartError,
};

/// Which shard accepted each connection, and with what peer address.
type Accepted = Arc<Mutex<Vec<(ShardId, Option<std::net::SocketAddr>)>>>;

/// Greets, echoes, and records which shard accepted each connection and with what peer.
struct Greeter {
    shard: ShardId,
    accepted: Accepted,
    /// Whether on_shutdown closes its connections (or leaves them to the drain timeout).
    close_on_shutdown: bool,
    conns: Vec<ConnId>,
}

impl Engine for Greeter {
    type Msg = ();

    fn on_accept(&mut self, io: &mut Io<()>, conn: ConnId, _: usize, peer: Option<std::net::SocketAddr>) {
        self.accepted.lock().unwrap().push((self.shard, peer));
        self.conns.push(conn);
        io.write(conn, b"hi\n");
        io.flush(conn);
    }

    fn on_input(&mut self, io: &mut Io<()>, conn: ConnId) {
        let Some(input) = io.input(conn) else { return };
        let bytes = input.split().freeze();
        io.write_bytes(conn, bytes);
        io.flush(conn);
    }

    fn on_shutdown(&mut self, io: &mut Io<()>) {
        if self.close_on_shutdown {
            for &conn in &self.conns {
                io.close(conn);
            }
        }
    }

    fn on_closed(&mut self, _: &mut Io<()>, conn: ConnId) {
        self.conns.retain(|&c| c != conn);
    }

    fn on_detached(&mut self, _: &mut Io<()>, _: ConnId, _: Detached) {}
    fn on_message(&mut self, _: &mut Io<()>, _: ShardId, _: ()) {}
    fn on_timer(&mut self, _: &mut Io<()>, _: u64) {}
}

/// Longer than any test waits for a drain to end on its own.
const DRAIN_LONG: Duration = Duration::from_secs(30);

fn start(
    listeners: Vec<ListenAddr>,
    close_on_shutdown: bool,
    drain_timeout: Duration,
) -> Result<(squall_uring_net::RuntimeHandle, Accepted), StartError> {
    let accepted: Accepted = Arc::default();
    let seen = accepted.clone();
    let cfg = RuntimeConfig {
        listeners,
        drain_timeout,
        ..config(2)
    };
    let rt = Runtime::try_start(cfg, move |shard, _| Greeter {
        shard,
        accepted: seen.clone(),
        close_on_shutdown,
        conns: Vec::new(),
    })?;
    Ok((rt, accepted))
}

/// A fresh directory for this test's sockets.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("squall-unix-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn greeted(mut stream: UnixStream) -> UnixStream {
    stream.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    let mut hi = [0u8; 3];
    stream.read_exact(&mut hi).expect("greeting");
    assert_eq!(&hi, b"hi\n");
    stream
}

fn echoes(stream: &mut UnixStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap();
    let mut back = vec![0u8; bytes.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, bytes);
}

/// Whether a listening socket bound to `path` is open anywhere on this host.
fn listening_at(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let path = path.to_str().unwrap();
    // Columns: Num RefCount Protocol Flags Type St Inode Path; flag 00010000 is __SO_ACCEPTCON.
    table
        .lines()
        .skip(1)
        .any(|l| l.ends_with(&format!(" {path}")) && l.split_whitespace().nth(3) == Some("00010000"))
}

#[test]
fn a_unix_socket_is_served_then_closed_and_removed() {
    let dir = temp_dir("serve");
    let path = dir.join("rt.sock");
    let (rt, accepted) = start(vec![ListenAddr::Unix(path.clone())], false, DRAIN_LONG).expect("start");
    assert_eq!(rt.local_addrs(), [ListenAddr::Unix(path.clone())]);
    assert!(listening_at(&path));

    let mut clients: Vec<UnixStream> = (0..8)
        .map(|_| greeted(UnixStream::connect(&path).expect("connect")))
        .collect();
    for (n, c) in clients.iter_mut().enumerate() {
        echoes(c, &pattern(1000 + n, n as u8));
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 8);
    assert!(accepted.iter().all(|(_, peer)| peer.is_none()), "{accepted:?}");

    // Shutdown: the connections left open drain (the engine leaves them to the peers or the
    // drain timeout), but the listening socket is closed at once on both shards, and nobody new
    // gets in.
    rt.shutdown();
    let deadline = Instant::now() + Duration::from_secs(2);
    while listening_at(&path) {
        assert!(
            Instant::now() < deadline,
            "the listening socket outlived shutdown"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let refused = UnixStream::connect(&path).expect_err("refused while draining");
    assert!(
        matches!(refused.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound),
        "{refused}"
    );
    assert!(path.exists(), "removed before the runtime is gone");
    for c in &mut clients {
        echoes(c, b"still served while draining");
    }
    drop(clients);
    rt.join().expect("join");
    assert!(!path.exists(), "the socket file outlived the runtime");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_existing_file_fails_the_start_and_stays() {
    let dir = temp_dir("taken");
    let path = dir.join("taken.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    let err = start(vec![ListenAddr::Unix(path.clone())], true, DRAIN_LONG)
        .map(|_| ())
        .unwrap_err();
    match err {
        StartError::Listen { addr, source } => {
            assert_eq!(addr, ListenAddr::Unix(path.clone()));
            assert_eq!(source.raw_os_error(), Some(libc::EADDRINUSE), "{source}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");

    // A missing directory, and a path with no room for its NUL in sun_path.
    let err = start(vec![ListenAddr::Unix(dir.join("no/such.sock"))], true, DRAIN_LONG)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, StartError::Listen { source, .. } if source.raw_os_error() == Some(libc::ENOENT)),
        "{err}"
    );
    let long = dir.join("x".repeat(120));
    let err = start(vec![ListenAddr::Unix(long)], true, DRAIN_LONG)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, StartError::Listen { source, .. } if source.raw_os_error() == Some(libc::EINVAL)),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn abstract_and_kernel_picked_names() {
    let name = format!("squall-test-{}", std::process::id());
    let asked = vec![
        ListenAddr::Unix(PathBuf::from(format!("@{name}"))),
        ListenAddr::Unix(PathBuf::new()),
        ListenAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    ];
    let (rt, accepted) = start(asked.clone(), true, DRAIN_LONG).expect("start");
    let got = rt.local_addrs().to_vec();
    assert_eq!(got[0], asked[0]);
    let picked = got[1].as_unix().unwrap().to_str().unwrap().to_string();
    let hex = picked.strip_prefix('@').expect("abstract");
    assert!(
        hex.len() == 5 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{picked}"
    );
    assert!(got[2].as_tcp().is_some_and(|a| a.port() != 0));

    for abstract_name in [name.as_str(), hex] {
        let addr = UnixAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let mut c = greeted(UnixStream::connect_addr(&addr).expect("connect"));
        echoes(&mut c, b"abstract");
    }
    let mut tcp = connect(got[2].as_tcp().unwrap());
    assert_eq!(read_exact(&mut tcp, 3), b"hi\n");
    let peers: Vec<_> = accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.is_some())
        .collect();
    assert_eq!(peers, [false, false, true]);
    rt.shutdown();
    rt.join().expect("join");
    std::thread::sleep(Duration::from_millis(10));
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    assert!(
        UnixStream::connect_addr(&addr).is_err(),
        "still listening after join"
    );
}
