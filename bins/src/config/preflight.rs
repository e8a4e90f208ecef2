//! Start-up checks that need I/O, run after the flags are parsed and before any listener opens,
//! so a daemon that cannot run says why in one line and exits non-zero without ever having
//! accepted a connection.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use squall_uring_net::ListenAddr;

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

/// A listen address as nsqd takes `--tcp-address` and `--http-address` (`util.TypeOfAddr`):
/// whatever Go's `net.SplitHostPort` accepts is a TCP address (`resolve_listen`), anything else
/// (`/var/run/nsqd.sock`, `nsqd.sock`, `@abstract`, `[::1]`, even the empty string) is the name
/// of a Unix socket to listen on, as Go's `net.Listen("unix", addr)` takes it.
pub fn listen_addr(addr: &str, flag: &str) -> anyhow::Result<ListenAddr> {
    match split_host_port(addr) {
        Ok(_) => resolve_listen(addr, flag).map(ListenAddr::Tcp),
        Err(_) => Ok(ListenAddr::Unix(PathBuf::from(addr))),
    }
}

/// Go's `net.SplitHostPort`, which only checks the shape (`host:port`, `[host]:port`); the error
/// is Go's text.
pub fn split_host_port(addr: &str) -> Result<(&str, &str), &'static str> {
    const MISSING_PORT: &str = "missing port in address";
    const TOO_MANY_COLONS: &str = "too many colons in address";
    let colon = addr.rfind(':').ok_or(MISSING_PORT)?;
    let (host, open_from, close_from) = if addr.starts_with('[') {
        let end = addr.find(']').ok_or("missing ']' in address")?;
        if end + 1 == addr.len() {
            return Err(MISSING_PORT);
        }
        if end + 1 != colon {
            // `]` not followed by the last colon.
            return Err(if addr.as_bytes()[end + 1] == b':' {
                TOO_MANY_COLONS
            } else {
                MISSING_PORT
            });
        }
        (&addr[1..end], 1, end + 1)
    } else {
        let host = &addr[..colon];
        if host.contains(':') {
            return Err(TOO_MANY_COLONS);
        }
        (host, 0, 0)
    };
    if addr[open_from..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if addr[close_from..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok((host, &addr[colon + 1..]))
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
    squall_uring_net::probe_tcp_listen(squall_uring_net::listen_address(addr))
        .map_err(|e| format!("listen ({addr}) failed - {e} (--{flag})"))
}

/// A listener's address must be free: a TCP one as `check_listen` says, a Unix one as nsqd's
/// `net.Listen("unix", name)` would find it, with its message (an existing file, socket or not:
/// `bind: address already in use`; a missing directory: `bind: no such file or directory`).
/// The probe binds the name itself and removes the file it made.
pub fn check_listen_addr(flag: &str, addr: &ListenAddr) -> Result<(), String> {
    match addr {
        ListenAddr::Tcp(tcp) => check_listen(flag, *tcp),
        ListenAddr::Unix(name) => check_unix_listen(name),
    }
}

fn check_unix_listen(name: &Path) -> Result<(), String> {
    if name.as_os_str().is_empty() {
        return Ok(()); // the kernel picks a free abstract name
    }
    squall_uring_net::probe_unix_listen(name).map_err(|e| {
        let shown = name.display();
        format!(
            "listen ({shown}) failed - listen unix {shown}: bind: {}",
            go_errno_text(&e)
        )
    })
}

/// An OS error as Go's `syscall.Errno` writes it: the C library's text with a lower-case first
/// letter (`address already in use`), without Rust's `(os error N)`.
fn go_errno_text(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text);
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
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
    fn split_host_port_is_gos() {
        // Go's net.SplitHostPort (net/ipsock_test.go's cases, and nsqd's TestTypeOfAddr).
        for (addr, host, port) in [
            ("127.0.0.1:80", "127.0.0.1", "80"),
            ("test:80", "test", "80"),
            ("[::1%lo0]:80", "::1%lo0", "80"),
            ("[::1]:0", "::1", "0"),
            (":4150", "", "4150"),
            ("a:", "a", ""),
            ("/tmp/a:b", "/tmp/a", "b"),
        ] {
            assert_eq!(split_host_port(addr), Ok((host, port)), "{addr}");
        }
        for (addr, why) in [
            ("/var/run/nsqd.sock", "missing port in address"),
            ("nsqd.sock", "missing port in address"),
            ("", "missing port in address"),
            ("[::1]", "missing port in address"),
            ("[a]b:80", "missing port in address"),
            ("::1", "too many colons in address"),
            ("a:b:c", "too many colons in address"),
            ("[::1]:80:90", "too many colons in address"),
            ("[a:80", "missing ']' in address"),
            ("a[b]:80", "unexpected '[' in address"),
            ("a]b:80", "unexpected ']' in address"),
        ] {
            assert_eq!(split_host_port(addr), Err(why), "{addr}");
        }
    }

    #[test]
    fn what_is_not_host_port_is_a_unix_socket() {
        let l = |a: &str| listen_addr(a, "--tcp-address").map_err(|e| e.to_string());
        for name in [
            "/var/run/nsqd.sock",
            "nsqd.sock",
            "@abstract",
            "",
            "[::1]",
            "a:b:c",
        ] {
            assert_eq!(l(name), Ok(ListenAddr::Unix(PathBuf::from(name))), "{name:?}");
        }
        assert_eq!(
            l(":4150"),
            Ok(ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], 4150))))
        );
        // host:port in shape, so TCP, and no such port (nsqd: "unknown port").
        assert!(l("/tmp/a:b").is_err());
    }

    #[test]
    fn a_unix_socket_is_checked_as_nsqd_binds_it() {
        let dir = temp_dir("unix");
        std::fs::create_dir_all(&dir).unwrap();
        let check = |name: &Path| check_listen_addr("tcp-address", &ListenAddr::Unix(name.to_path_buf()));
        let free = dir.join("free.sock");
        assert_eq!(check(&free), Ok(()));
        assert!(!free.exists(), "the probe left its socket file");

        let taken = dir.join("taken");
        std::fs::write(&taken, b"").unwrap();
        let shown = taken.display();
        assert_eq!(
            check(&taken),
            Err(format!(
                "listen ({shown}) failed - listen unix {shown}: bind: address already in use"
            ))
        );
        assert!(taken.exists());
        let missing = dir.join("no/such.sock");
        let shown = missing.display();
        assert_eq!(
            check(&missing),
            Err(format!(
                "listen ({shown}) failed - listen unix {shown}: bind: no such file or directory"
            ))
        );
        let long = dir.join("x".repeat(110));
        assert!(check(&long).unwrap_err().ends_with(": bind: invalid argument"));

        let name = format!("@squall-preflight-{}", std::process::id());
        assert_eq!(check(Path::new(&name)), Ok(()));
        let held = std::os::unix::net::UnixListener::bind_addr(
            &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
                &name.as_bytes()[1..],
            )
            .unwrap(),
        )
        .unwrap();
        assert!(check(Path::new(&name))
            .unwrap_err()
            .ends_with(": bind: address already in use"));
        drop(held);
        assert_eq!(check(Path::new("")), Ok(()), "the kernel picks a free name");
        std::fs::remove_dir_all(&dir).unwrap();
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
