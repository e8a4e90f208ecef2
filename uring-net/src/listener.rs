//! Listening sockets: one `SO_REUSEPORT` socket per (shard, listener address), so the kernel
//! spreads new connections across shards and each shard accepts its own with multishot accept.
//!
//! With port 0, shard 0's socket binds first and the others bind the port it got.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::error::StartError;
use crate::limits::LISTEN_BACKLOG;

/// Binds every listener for every shard. Returns `sockets[shard][listener]` and the address
/// each listener actually got.
pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    shards: usize,
) -> Result<(Vec<Vec<OwnedFd>>, Vec<SocketAddr>), StartError> {
    let mut per_shard: Vec<Vec<OwnedFd>> = (0..shards).map(|_| Vec::new()).collect();
    let mut resolved = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        wait_for_exclusive_port(addr);
        let mut bound = addr;
        for sockets in per_shard.iter_mut() {
            let socket = bind_one(bound).map_err(|source| StartError::Listen { addr, source })?;
            if bound.port() == 0 {
                bound = socket
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .ok_or(StartError::Listen {
                        addr,
                        source: std::io::Error::other("listener has no local address"),
                    })?;
            }
            sockets.push(OwnedFd::from(socket));
        }
        resolved.push(bound);
    }
    Ok((per_shard, resolved))
}

/// How long start-up waits for a port whose previous owner is still being torn down.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Waits until nothing else listens on `addr`'s port. A squalld killed with `kill -9` leaves
/// its listeners alive until the kernel has torn its io_uring down, a moment after the
/// process is gone; binding next to them with `SO_REUSEPORT` would share the port with dead
/// sockets, and the connections the kernel gives them are reset. A bind without
/// `SO_REUSEPORT` fails while any such socket remains, so retry it until it succeeds or
/// `PORT_RELEASE_WAIT` passes (then the real bind reports whatever holds the port).
fn wait_for_exclusive_port(addr: SocketAddr) {
    if addr.port() == 0 {
        return;
    }
    let deadline = Instant::now() + PORT_RELEASE_WAIT;
    loop {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).and_then(|s| {
            s.set_reuse_address(true)?;
            if addr.is_ipv6() {
                s.set_only_v6(true)?;
            }
            s.bind(&addr.into())
        });
        match probe {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

/// Sets up a freshly accepted socket; returns its peer address when the kernel still has one.
pub(crate) fn prepare_accepted(fd: &OwnedFd) -> Option<SocketAddr> {
    let socket = SockRef::from(fd);
    // Latency over batching: writes are already coalesced per turn by the runtime.
    let _ = socket.set_nodelay(true);
    socket.peer_addr().ok().and_then(|a| a.as_socket())
}

/// A shard's view of one listening socket.
pub(crate) struct Listener {
    /// `None` once closed (shutdown).
    pub fd: Option<OwnedFd>,
    /// The multishot accept is in the kernel.
    pub armed: bool,
    /// Re-arm no earlier than this (after EMFILE and friends).
    pub retry_at: Option<Instant>,
    /// Shutdown asked: close the fd once the accept has left the kernel.
    pub closing: bool,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        Listener {
            fd: Some(fd),
            armed: false,
            retry_at: None,
            closing: false,
        }
    }
}
