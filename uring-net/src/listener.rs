//! Listening sockets. A TCP address gets one `SO_REUSEPORT` socket per (shard, listener
//! address), so the kernel spreads new connections across shards and each shard accepts its own
//! with multishot accept. With port 0, shard 0's socket binds first and the others bind the port
//! it got.
//!
//! A Unix socket ([`ListenAddr::Unix`]) has no `SO_REUSEPORT`: it is bound and listens once, and
//! every shard gets a `dup` of that one socket and arms its own multishot accept on it, so the
//! rest of the runtime sees the same (shard, listener) table for both kinds. Which shard's accept
//! takes a connection is up to the kernel's wake-up order (often the same shard each time);
//! nothing depends on it, since engines move or forward a connection's work to the shard that
//! owns it anyway. Shutting down one dup stops the shared socket for every shard, which is what a
//! runtime shutdown wants; each shard also cancels its own accept then, because on a Unix
//! listening socket `shutdown(2)` refuses new connections but does not complete the accepts
//! already waiting. The socket file is removed when the [`RuntimeHandle`](crate::RuntimeHandle)
//! goes (`SocketFile`), as Go's `UnixListener.Close` does.
//!
//! Wildcards bind as Go's `net.Listen("tcp", ...)` does (`listen_address`): the IPv4 wildcard
//! `0.0.0.0` becomes a dual-stack `[::]` socket (`IPV6_V6ONLY` off) wherever the host has IPv6,
//! so clients for which `localhost` is `::1` are served as well as IPv4 ones; `[::]` is dual-stack
//! too. Every other address is bound as given, IPv6 ones v6-only.

use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use crate::error::StartError;
use crate::limits::{LISTEN_BACKLOG, UNIX_PATH_BYTES_MAX};

/// What a listener listens on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// A Unix stream socket, named as Go names them: a filesystem path; `@name` for a name in
    /// Linux's abstract namespace; or empty, for an abstract name the kernel picks (reported
    /// once bound as `@` and the five hex digits it chose).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The socket address of a TCP listener.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            ListenAddr::Tcp(addr) => Some(*addr),
            ListenAddr::Unix(_) => None,
        }
    }

    /// The name of a Unix socket listener.
    pub fn as_unix(&self) -> Option<&Path> {
        match self {
            ListenAddr::Tcp(_) => None,
            ListenAddr::Unix(path) => Some(path),
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, ListenAddr::Unix(_))
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> ListenAddr {
        ListenAddr::Tcp(addr)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => addr.fmt(f),
            ListenAddr::Unix(path) => path.display().fmt(f),
        }
    }
}

/// A Unix socket's file, removed when this is dropped (after the shards that listened on it
/// have stopped, or when start-up fails after binding it).
#[derive(Debug)]
pub(crate) struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every listening socket: `sockets[shard][listener]`, the address each listener actually got,
/// and the socket files to remove at exit.
pub(crate) struct Bound {
    pub sockets: Vec<Vec<OwnedFd>>,
    pub addrs: Vec<ListenAddr>,
    pub files: Vec<SocketFile>,
}

/// Binds every listener for every shard.
pub(crate) fn bind_all(addrs: &[ListenAddr], shards: usize) -> Result<Bound, StartError> {
    let mut bound = Bound {
        sockets: (0..shards).map(|_| Vec::new()).collect(),
        addrs: Vec::with_capacity(addrs.len()),
        files: Vec::new(),
    };
    for asked in addrs {
        let listen_error = |source| StartError::Listen {
            addr: asked.clone(),
            source,
        };
        match asked {
            ListenAddr::Tcp(asked) => {
                let got = bind_tcp(*asked, &mut bound.sockets).map_err(listen_error)?;
                bound.addrs.push(ListenAddr::Tcp(got));
            }
            ListenAddr::Unix(name) => {
                let socket = bind_unix(name).map_err(listen_error)?;
                if !is_abstract(name) {
                    bound.files.push(SocketFile(name.clone()));
                }
                let got = unix_name(&socket).unwrap_or_else(|| name.clone());
                for sockets in bound.sockets.iter_mut() {
                    sockets.push(OwnedFd::from(socket.try_clone().map_err(listen_error)?));
                }
                bound.addrs.push(ListenAddr::Unix(got));
            }
        }
    }
    Ok(bound)
}

/// One `SO_REUSEPORT` socket per shard on `asked`; the address they got.
fn bind_tcp(asked: SocketAddr, per_shard: &mut [Vec<OwnedFd>]) -> std::io::Result<SocketAddr> {
    let addr = listen_address(asked);
    wait_for_exclusive_port(addr);
    let mut bound = addr;
    for sockets in per_shard.iter_mut() {
        let socket = bind_one(bound)?;
        if bound.port() == 0 {
            bound = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| std::io::Error::other("listener has no local address"))?;
        }
        sockets.push(OwnedFd::from(socket));
    }
    Ok(bound)
}

/// Names in the abstract namespace (and the empty name, which the kernel fills in there) have
/// no file.
fn is_abstract(name: &Path) -> bool {
    matches!(name.as_os_str().as_bytes().first(), None | Some(b'@'))
}

/// Binds and listens on `name` as a runtime would, then lets it go (removing the file it made):
/// whether a runtime could listen there now, and the error it would get if not.
pub fn probe_unix_listen(name: &Path) -> std::io::Result<()> {
    bind_unix(name)?;
    if !is_abstract(name) {
        let _ = std::fs::remove_file(name);
    }
    Ok(())
}

/// Binds `addr` the way a runtime's listener would, then lets it go: whether a runtime could
/// listen there now, and the error it would get if not (give it `listen_address(asked)`).
pub fn probe_tcp_listen(addr: SocketAddr) -> std::io::Result<()> {
    bind_one(addr).map(drop)
}

/// The address Go's `net.Listen("unix", name)` binds: `@name` is `\0name` in the abstract
/// namespace, the empty name asks the kernel to pick one (autobind), anything else is a path.
/// A path needs its terminating NUL in the 108 bytes of `sun_path`, an abstract name does not;
/// longer names are `EINVAL`, as Go reports them.
fn unix_sockaddr(name: &Path) -> std::io::Result<SockAddr> {
    let bytes = name.as_os_str().as_bytes();
    let (raw, len_max) = match bytes.split_first() {
        Some((b'@', rest)) => {
            let mut raw = Vec::with_capacity(bytes.len());
            raw.push(0);
            raw.extend_from_slice(rest);
            (raw, UNIX_PATH_BYTES_MAX)
        }
        _ => (bytes.to_vec(), UNIX_PATH_BYTES_MAX - 1),
    };
    if raw.len() > len_max {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    SockAddr::unix(OsStr::from_bytes(&raw))
}

/// A listening Unix stream socket on `name`. An existing file at the path (a socket left by a
/// process that did not exit cleanly, or anything else) is an error (`EADDRINUSE`), never
/// removed: as in nsqd, only the process that made the file removes it.
fn bind_unix(name: &Path) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&unix_sockaddr(name)?)?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

/// The name the socket got, as Go writes it (`@` for the abstract namespace's leading NUL);
/// `None` for a path, which is what was asked.
fn unix_name(socket: &Socket) -> Option<PathBuf> {
    let local = socket.local_addr().ok()?;
    let name = local.as_abstract_namespace()?;
    let mut text = vec![b'@'];
    text.extend(name.iter().take_while(|&&b| b != 0));
    Some(PathBuf::from(OsStr::from_bytes(&text)))
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
/// A Unix socket's peer has no socket address (and no Nagle to turn off).
pub(crate) fn prepare_accepted(fd: &OwnedFd, unix: bool) -> Option<SocketAddr> {
    if unix {
        return None;
    }
    let socket = SockRef::from(fd);
    // Latency over batching: writes are already coalesced per turn by the runtime.
    let _ = socket.set_nodelay(true);
    // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`; Go reports them as IPv4, and
    // so do we (auth queries, /stats, logs).
    let peer = socket.peer_addr().ok().and_then(|a| a.as_socket())?;
    Some(SocketAddr::new(peer.ip().to_canonical(), peer.port()))
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
    /// An AsyncCancel of the accept was queued (at shutdown).
    pub cancelled: bool,
    /// A Unix socket (shared by every shard).
    pub unix: bool,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        let unix = SockRef::from(&fd).domain().is_ok_and(|d| d == Domain::UNIX);
        Listener {
            fd: Some(fd),
            armed: false,
            retry_at: None,
            closing: false,
            cancelled: false,
            unix,
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
