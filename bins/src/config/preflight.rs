//! Start-up checks that need I/O, run after the flags are parsed and before any listener opens,
//! so a daemon that cannot run says why in one line and exits non-zero without ever having
//! accepted a connection.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `--data-path` must be a directory this process can create files in. A missing one is
/// created (as the node would), so systemd's `StateDirectory=` and a bare `mkdir -p` both work.
pub fn check_data_path(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(|e| format!("--data-path {shown} cannot be created - {e}"))?;
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("--data-path {shown} - {e}"))?;
    if !meta.is_dir() {
        return Err(format!("--data-path {shown} is not a directory"));
    }
    // access(2) is not enough: root passes it on a read-only mount. Create a file instead.
    let probe = path.join(format!(".squalld-write-check.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("--data-path {shown} is not writable - {e}"))?;
    std::fs::remove_file(&probe).map_err(|e| format!("--data-path {shown} is not writable - {e}"))?;
    Ok(())
}

/// A listen address in the forms Go's `net.Listen("tcp", addr)` takes: `host:port`, `:port`
/// and `""` (all interfaces: `0.0.0.0`, which the listener binds dual-stack where it can).
pub fn resolve_listen(addr: &str, flag: &str) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let full = if addr.is_empty() {
        "0.0.0.0:0".to_string()
    } else if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    full.to_socket_addrs()
        .with_context(|| format!("invalid {flag} {addr:?}"))?
        .next()
        .with_context(|| format!("{flag} {addr:?} resolves to no address"))
}

/// The address must be free to listen on. Port 0 always is. A port taken between this check
/// and the real listen still fails the start, with a less precise message.
///
/// The probe binds what the listener will (`listen_address`: `0.0.0.0` is a dual-stack `[::]`
/// where the host has IPv6, so a port held over IPv6 only is refused too).
///
/// The probe binds without listening, so no client can ever connect to it, with the options
/// the shards' listeners use: `SO_REUSEADDR` (a port in TIME_WAIT is free) and `SO_REUSEPORT`.
/// So it refuses a port held by anything else (an nsqd, another program), and accepts one a
/// squalld of the same user still holds: one killed a moment ago, whose io_uring the kernel
/// tears down (and its listeners with it) after the process is gone. A second live squalld on
/// the same port would share it; on the same data path, the data path lock refuses it.
pub fn check_listen(flag: &str, addr: SocketAddr) -> Result<(), String> {
    if addr.port() == 0 {
        return Ok(());
    }
    bind_probe(squall_uring_net::listen_address(addr))
        .map_err(|e| format!("listen ({addr}) failed - {e} (--{flag})"))
}

fn bind_probe(addr: SocketAddr) -> io::Result<()> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) has no memory preconditions; the descriptor is owned by `fd` from here.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: the option value points to a live c_int of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if let SocketAddr::V6(a) = addr {
        // As the listener: only the wildcard takes IPv4 connections as well.
        let v6_only = libc::c_int::from(!a.ip().is_unspecified());
        // SAFETY: as above.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&v6_only as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: each arm passes a pointer to a live, fully initialised sockaddr of the length given.
    let rc = unsafe {
        match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_flowinfo = a.flowinfo();
                sa.sin6_scope_id = a.scope_id();
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("squall-preflight-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_missing_data_path_is_created_and_a_file_is_refused() {
        let dir = temp_dir("missing");
        let nested = dir.join("a/b");
        assert_eq!(check_data_path(&nested), Ok(()));
        assert!(nested.is_dir());
        let file = dir.join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = check_data_path(&file).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
        let err = check_data_path(&file.join("sub")).unwrap_err();
        assert!(err.contains("cannot be created"), "{err}");
        // Nothing is left behind by the probe.
        assert_eq!(std::fs::read_dir(&nested).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_port_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = check_listen("tcp-address", addr).unwrap_err();
        assert!(err.starts_with(&format!("listen ({addr}) failed - ")), "{err}");
        assert!(err.ends_with("(--tcp-address)"), "{err}");
        drop(taken);
        assert_eq!(check_listen("tcp-address", addr), Ok(()));
        assert_eq!(
            check_listen("tcp-address", "127.0.0.1:0".parse().unwrap()),
            Ok(())
        );
        // Hosts without IPv6 skip this part.
        if let Ok(taken6) = TcpListener::bind("[::1]:0") {
            let err = check_listen("http-address", taken6.local_addr().unwrap()).unwrap_err();
            assert!(err.contains("(--http-address)"), "{err}");
        }
    }

    #[test]
    fn the_ipv4_wildcard_is_checked_as_the_listener_binds_it() {
        let wildcard = |port| SocketAddr::from(([0, 0, 0, 0], port));
        // Hosts without IPv6 bind 0.0.0.0 itself: nothing more to see.
        if !squall_uring_net::listen_address(wildcard(1)).is_ipv6() {
            return;
        }
        // Held over IPv6 only: free for an IPv4 socket, not for the dual-stack listener.
        let taken6 = TcpListener::bind("[::1]:0").unwrap();
        let port = taken6.local_addr().unwrap().port();
        let err = check_listen("tcp-address", wildcard(port)).unwrap_err();
        assert!(
            err.starts_with(&format!("listen (0.0.0.0:{port}) failed - ")),
            "{err}"
        );
    }

    #[test]
    fn listen_addresses_take_gos_forms() {
        let r = |a: &str| resolve_listen(a, "--tcp-address").map_err(|e| e.to_string());
        assert_eq!(r(":4150"), Ok(SocketAddr::from(([0, 0, 0, 0], 4150))));
        assert_eq!(r(""), Ok(SocketAddr::from(([0, 0, 0, 0], 0))));
        assert_eq!(r("127.0.0.1:1"), Ok(SocketAddr::from(([127, 0, 0, 1], 1))));
        assert_eq!(r("[::1]:2"), Ok("[::1]:2".parse().unwrap()));
        assert!(r("nohost:").is_err());
    }
}
