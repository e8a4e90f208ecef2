//! Claim: a listener given the IPv4 wildcard (`0.0.0.0:p`, or `:p`) serves IPv6 clients as well,
//! as nsqd's and nsqlookupd's do (Go's `net.Listen` binds a dual-stack `[::]:p`): squalld's NSQ
//! TCP and HTTP listeners and squall-lookupd's accept on `[::1]` and on `127.0.0.1`, and report
//! `[::]:p` as Go's listeners do. Specific addresses stay IPv4-only.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::Client;
use squall::lookupd::{start_lookupd, LookupdStart};
use squall::{Node, NodeConfig};
use squall_core::options::Options;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `::1` is configured on this host's loopback (`/proc/net/if_inet6`).
fn has_ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000001 ") && l.ends_with(" lo"))
    })
}

/// Skips the calling test, saying why, on a host without IPv6 loopback.
macro_rules! require_ipv6_loopback {
    () => {
        if !has_ipv6_loopback() {
            eprintln!("SKIPPED: this host has no IPv6 loopback (::1 missing from /proc/net/if_inet6)");
            return;
        }
    };
}

fn wildcard() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// `GET /ping` over HTTP/1.0: the status code and body.
fn ping(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /ping HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).unwrap_or_default();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    format!("{status} {body}")
}

#[test]
fn squalld_on_the_ipv4_wildcard_serves_ipv6_and_ipv4_clients() {
    require_ipv6_loopback!();
    let mut config = NodeConfig::for_tests(Options::default());
    config.tcp_address = wildcard().into();
    config.http_address = Some(wildcard().into());
    config.grpc_address = None;
    let node = Node::start(config).expect("node starts");
    let tcp = node.tcp_address().as_tcp().unwrap();
    let http = node.http_address().and_then(|a| a.as_tcp()).unwrap();
    // What nsqd logs: "TCP: listening on [::]:4150".
    assert_eq!(tcp.ip(), Ipv6Addr::UNSPECIFIED, "{tcp}");
    assert_eq!(http.ip(), Ipv6Addr::UNSPECIFIED, "{http}");
    for ip in ["::1", "127.0.0.1"] {
        let mut c = Client::connect(at(ip, tcp.port()));
        c.publish("dual", ip.as_bytes());
        c.expect_ok();
        assert_eq!(ping(at(ip, http.port())), "200 OK", "HTTP over {ip}");
    }
    // An IPv4 client is reported as IPv4 (Go unmaps `::ffff:a.b.c.d`), as auth servers and
    // nsqadmin see it from nsqd.
    let mut c = Client::connect(at("127.0.0.1", tcp.port()));
    let local = c.stream.local_addr().unwrap();
    c.sub("dual", "ch");
    let stats = common::http_get(at("127.0.0.1", http.port()), "/stats?format=json&topic=dual");
    assert!(
        stats.contains(&format!(r#""remote_address":"{local}""#)),
        "{local} not in {stats}"
    );
    node.shutdown();
    node.join().expect("node exits cleanly");
}

#[test]
fn squall_lookupd_on_the_ipv4_wildcard_serves_ipv6_and_ipv4_clients() {
    require_ipv6_loopback!();
    let mut start = LookupdStart::for_tests();
    start.tcp_address = wildcard();
    start.http_address = wildcard();
    let lookupd = start_lookupd(start).expect("lookupd starts");
    assert_eq!(lookupd.tcp_address().ip(), Ipv6Addr::UNSPECIFIED);
    for ip in ["::1", "127.0.0.1"] {
        let addr = at(ip, lookupd.tcp_address().port());
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("{addr}: {e}"));
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(b"  V1PING\n").unwrap();
        let mut reply = [0u8; 6];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"\0\0\0\x02OK", "PING over {ip}");
        assert_eq!(
            ping(at(ip, lookupd.http_address().port())),
            "200 OK",
            "HTTP over {ip}"
        );
    }
    lookupd.shutdown();
    lookupd.join().unwrap();
}

#[test]
fn a_specific_ipv4_address_stays_ipv4_only() {
    require_ipv6_loopback!();
    let mut config = NodeConfig::for_tests(Options::default());
    config.grpc_address = None;
    let node = Node::start(config).expect("node starts");
    let port = node.tcp_address().as_tcp().unwrap().port();
    assert_eq!(node.tcp_address().as_tcp().unwrap(), at("127.0.0.1", port));
    assert!(TcpStream::connect_timeout(&at("::1", port), IO_TIMEOUT).is_err());
    node.shutdown();
    node.join().expect("node exits cleanly");
}
