//! Listening sockets: one `SO_REUSEPORT` socket per (shard, listener address), so the kernel
//! spreads new connections across shards and each shard accepts its own with multishot accept.
//!
//! With port 0, shard 0's socket binds first and the others bind the port it got.
//!
//! Wildcards bind as Go's `net.Listen("tcp", ...)` does (`listen_address`): the IPv4 wildcard
//! `0.0.0.0` becomes a dual-stack `[::]` socket (`IPV6_V6ONLY` off) wherever the host has IPv6,
//! so clients for which `localhost` is `::1` are served as well as IPv4 ones; `[::]` is dual-stack
//! too. Every other address is bound as given, IPv6 ones v6-only.

use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
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
    for &asked in addrs {
        let addr = listen_address(asked);
        wait_for_exclusive_port(addr);
        let mut bound = addr;
        for sockets in per_shard.iter_mut() {
            let socket = bind_one(bound).map_err(|source| StartError::Listen { addr: asked, source })?;
            if bound.port() == 0 {
                bound = socket
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .ok_or(StartError::Listen {
                        addr: asked,
                        source: std::io::Error::other("listener has no local address"),
                    })?;
            }
            sockets.push(OwnedFd::from(socket));
        }
        resolved.push(bound);
    }
    Ok((per_shard, resolved))
}

/// The address a listener asked for `addr` binds (and reports): the IPv4 wildcard becomes the
/// IPv6 wildcard, bound dual-stack, where the host can open such a socket (Go's
/// `favoriteAddrFamily` for a wildcard listen); anything else is `addr`.
pub fn listen_address(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() && dual_stack_available() => {
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), v4.port())
        }
        _ => addr,
    }
}

/// Whether an IPv6 socket that also takes IPv4 connections can be bound here (no IPv6 in the
/// kernel, or IPv4-mapped addresses refused: no). Probed once, as Go does.
fn dual_stack_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))
            .and_then(|s| {
                s.set_only_v6(false)?;
                s.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0).into())
            })
            .is_ok()
    })
}

/// An IPv6 listener is v6-only unless it is the wildcard, which serves both families (Go's
/// `net.Listen("tcp", "[::]:p")`).
fn v6_only(addr: SocketAddr) -> bool {
    addr.is_ipv6() && !addr.ip().is_unspecified()
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
                s.set_only_v6(v6_only(addr))?;
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
        socket.set_only_v6(v6_only(addr))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ipv4_wildcard_changes() {
        for given in ["127.0.0.1:4150", "[::1]:4150", "[::]:4150", "10.1.2.3:0"] {
            let addr: SocketAddr = given.parse().unwrap();
            assert_eq!(listen_address(addr), addr, "{given}");
        }
        let wildcard: SocketAddr = "0.0.0.0:4150".parse().unwrap();
        let expected = if dual_stack_available() {
            "[::]:4150".parse().unwrap()
        } else {
            wildcard
        };
        assert_eq!(listen_address(wildcard), expected);
        assert!(!v6_only("[::]:1".parse().unwrap()));
        assert!(v6_only("[::1]:1".parse().unwrap()));
    }
}
