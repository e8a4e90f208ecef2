//! TLS, snappy and deflate upgrade a connection right after the IDENTIFY reply, in nsqd's order
//! and with nsqd's bytes; the layers survive a consumer's move to its topic's shard; a bad
//! handshake or a corrupt compressed stream closes only that connection.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use common::{topic_on_shard, FRAME_ERROR, FRAME_MESSAGE, FRAME_RESPONSE, READ_TIMEOUT};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use squall::config::TlsMinVersion;
use squall::tls::{ClientAuth, TlsFiles};
use squall::{Node, NodeConfig};
use squall_core::options::Options;

const OK_FRAME: &[u8] = b"\x00\x00\x00\x06\x00\x00\x00\x00OK";

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all generated here.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("squall-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let pki = Pki { dir, ca, ca_key };
        let (cert, key) = pki.issue(vec!["127.0.0.1".to_string(), "localhost".to_string()], false);
        std::fs::write(pki.dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(pki.dir.join("server.key"), key.serialize_pem()).unwrap();
        pki
    }

    fn issue(&self, names: Vec<String>, client: bool) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "squall test");
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        (params.signed_by(&key, &self.ca, &self.ca_key).unwrap(), key)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().to_string()
    }

    fn server(&self, client_auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        self.server_min(client_auth, TlsMinVersion::Tls10)
    }

    fn server_min(&self, client_auth: ClientAuth, min_version: TlsMinVersion) -> Arc<rustls::ServerConfig> {
        squall::tls::server_config(&TlsFiles {
            cert: &self.path("server.pem"),
            key: &self.path("server.key"),
            root_ca: &self.path("ca.pem"),
            client_auth,
            min_version,
        })
        .unwrap()
    }

    /// A client that speaks TLS 1.2 only.
    fn client_tls12(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        Arc::new(config)
    }

    fn client(&self, cert: Option<(&rcgen::Certificate, &KeyPair)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
                )
                .unwrap(),
        };
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn options() -> Options {
    Options {
        snappy: true,
        deflate: true,
        tls_enabled: true,
        ..Options::default()
    }
}

fn start(options: Options, tls: Arc<rustls::ServerConfig>) -> Node {
    let mut config = NodeConfig::for_tests(options);
    config.tls = Some(tls);
    config.https_address = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    Node::start(config).expect("node starts")
}

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(node.tcp_address().as_tcp().unwrap()).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn identify_bytes(json: &str) -> Vec<u8> {
    let mut v = b"  V2IDENTIFY\n".to_vec();
    v.extend_from_slice(&(json.len() as u32).to_be_bytes());
    v.extend_from_slice(json.as_bytes());
    v
}

fn read_frame(r: &mut dyn Read) -> (i32, Vec<u8>) {
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head).expect("frame header");
        let size = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        let ft = i32::from_be_bytes(head[4..].try_into().unwrap());
        let mut data = vec![0u8; size - 4];
        r.read_exact(&mut data).expect("frame body");
        if ft == FRAME_RESPONSE && data == b"_heartbeat_" {
            continue;
        }
        return (ft, data);
    }
}

fn expect_ok(r: &mut dyn Read) {
    let (ft, data) = read_frame(r);
    assert_eq!(
        (ft, String::from_utf8_lossy(&data).to_string()),
        (FRAME_RESPONSE, "OK".to_string())
    );
}

/// One stream shared by a reader and a writer (the TLS session is one object).
struct Shared<S>(Rc<RefCell<S>>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<S: Read> Read for Shared<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl<S: Write> Write for Shared<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Compression {
    None,
    Snappy,
    Deflate,
}

/// A client whose bytes pass through the negotiated layers.
struct Upgraded {
    r: Box<dyn Read>,
    w: Box<dyn Write>,
}

impl Upgraded {
    /// IDENTIFY with feature negotiation, then the upgrades, checking each `OK`.
    fn connect(node: &Node, tls: Option<Arc<rustls::ClientConfig>>, compression: Compression) -> Upgraded {
        let mut tcp = connect(node);
        let json = format!(
            r#"{{"feature_negotiation":true,"tls_v1":{},"snappy":{},"deflate":{},"deflate_level":3}}"#,
            tls.is_some(),
            compression == Compression::Snappy,
            compression == Compression::Deflate
        );
        tcp.write_all(&identify_bytes(&json)).unwrap();
        let (ft, reply) = read_frame(&mut tcp);
        assert_eq!(ft, FRAME_RESPONSE);
        let reply = String::from_utf8(reply).unwrap();
        assert!(
            reply.contains(&format!(r#""tls_v1":{}"#, tls.is_some())),
            "{reply}"
        );
        let (mut r, mut w): (Box<dyn Read>, Box<dyn Write>) = match tls {
            Some(config) => {
                let conn = rustls::ClientConnection::new(config, ServerName::try_from("127.0.0.1").unwrap())
                    .unwrap();
                let s = Shared(Rc::new(RefCell::new(rustls::StreamOwned::new(conn, tcp))));
                (Box::new(s.clone()), Box::new(s))
            }
            None => (Box::new(tcp.try_clone().unwrap()), Box::new(tcp)),
        };
        if reply.contains(r#""tls_v1":true"#) {
            expect_ok(&mut r);
        }
        match compression {
            Compression::None => {}
            Compression::Snappy => {
                r = Box::new(snap::read::FrameDecoder::new(r));
                w = Box::new(snap::write::FrameEncoder::new(w));
                expect_ok(&mut r);
            }
            Compression::Deflate => {
                assert!(reply.contains(r#""deflate":true,"deflate_level":3"#), "{reply}");
                // Read through a large buffer: asked for a few bytes, flate2's reader keeps the
                // rest of a flushed block inside and blocks on the socket before handing it out.
                r = Box::new(std::io::BufReader::with_capacity(
                    1 << 16,
                    flate2::read::DeflateDecoder::new(r),
                ));
                w = Box::new(flate2::write::DeflateEncoder::new(w, flate2::Compression::new(3)));
                expect_ok(&mut r);
            }
        }
        Upgraded { r, w }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
        self.w.flush().unwrap();
    }

    fn publish(&mut self, topic: &str, body: &[u8]) {
        let mut v = format!("PUB {topic}\n").into_bytes();
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        self.send(&v);
        expect_ok(&mut self.r);
    }
}

/// Publishes through one client, consumes through another (on the topic's other shard, so the
/// consumer migrates with its layers), and checks every body.
fn publish_and_consume(node: &Node, tls: Option<Arc<rustls::ClientConfig>>, compression: Compression) {
    let topic = topic_on_shard("layers", 1, 2);
    let mut producer = Upgraded::connect(node, tls.clone(), compression);
    let mut consumer = Upgraded::connect(node, tls, compression);
    consumer.send(format!("SUB {topic} ch\n").as_bytes());
    expect_ok(&mut consumer.r);
    consumer.send(b"RDY 100\n");
    let mut bodies: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("body {i} {}", "x".repeat(i * 100)).into_bytes())
        .collect();
    // Larger than what rustls buffers at once (64 KiB), and than one snappy chunk.
    bodies.push((0..300_000u32).map(|i| (i % 253) as u8).collect());
    for body in &bodies {
        producer.publish(&topic, body);
    }
    for body in &bodies {
        let (ft, data) = read_frame(&mut consumer.r);
        assert_eq!(ft, FRAME_MESSAGE);
        assert_eq!(&data[26..], &body[..]);
        let mut fin = b"FIN ".to_vec();
        fin.extend_from_slice(&data[10..26]);
        fin.push(b'\n');
        consumer.send(&fin);
    }
}

#[test]
fn every_combination_carries_messages_and_survives_migration() {
    let pki = Pki::new("combos");
    let node = start(options(), pki.server(ClientAuth::None));
    for tls in [None, Some(pki.client(None))] {
        for compression in [Compression::None, Compression::Snappy, Compression::Deflate] {
            if tls.is_none() && compression == Compression::None {
                continue;
            }
            publish_and_consume(&node, tls.clone(), compression);
        }
    }
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn upgrade_bytes_match_nsqd() {
    let pki = Pki::new("bytes");
    let node = start(options(), pki.server(ClientAuth::None));
    // snappy: the JSON reply in plain, then the stream identifier and `OK` as one stored chunk.
    let mut tcp = connect(&node);
    tcp.write_all(&identify_bytes(r#"{"feature_negotiation":true,"snappy":true}"#))
        .unwrap();
    let (_, reply) = read_frame(&mut tcp);
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":true,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}"#
    );
    let mut got = [0u8; 28];
    tcp.read_exact(&mut got).unwrap();
    let crc = crc32c::crc32c(OK_FRAME);
    let masked = crc.rotate_right(15).wrapping_add(0xa282_ead8).to_le_bytes();
    let mut want = b"\xff\x06\x00\x00sNaPpY\x01\x0e\x00\x00".to_vec();
    want.extend_from_slice(&masked);
    want.extend_from_slice(OK_FRAME);
    assert_eq!(&got[..], &want[..]);

    // deflate: `OK` in a raw DEFLATE stream ending with a sync flush.
    let mut tcp = connect(&node);
    tcp.write_all(&identify_bytes(
        r#"{"feature_negotiation":true,"deflate":true,"deflate_level":9}"#,
    ))
    .unwrap();
    let (_, reply) = read_frame(&mut tcp);
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.contains(r#""deflate":true,"deflate_level":6,"max_deflate_level":6"#),
        "{reply}"
    );
    let mut inflater = flate2::Decompress::new(false);
    let mut plain = Vec::with_capacity(64);
    let mut wire = Vec::new();
    while plain.len() < OK_FRAME.len() {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).unwrap();
        wire.push(b[0]);
        assert!(wire.len() < 64, "no OK in {wire:?}");
        inflater
            .decompress_vec(&b, &mut plain, flate2::FlushDecompress::Sync)
            .unwrap();
    }
    assert_eq!(plain, OK_FRAME);

    // Both compressions at once: refused before any JSON reply, as nsqd does.
    let mut tcp = connect(&node);
    tcp.write_all(&identify_bytes(
        r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
    ))
    .unwrap();
    let (ft, data) = read_frame(&mut tcp);
    assert_eq!(
        (ft, String::from_utf8(data).unwrap()),
        (
            FRAME_ERROR,
            "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression".to_string()
        )
    );

    // TLS: the JSON reply in plain, the handshake, then `OK` over TLS; a command sent right
    // behind the handshake is answered through it.
    let mut tcp = connect(&node);
    tcp.write_all(&identify_bytes(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .unwrap();
    let (_, reply) = read_frame(&mut tcp);
    assert!(String::from_utf8(reply).unwrap().contains(r#""tls_v1":true"#));
    let conn =
        rustls::ClientConnection::new(pki.client(None), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    expect_ok(&mut tls);
    tls.write_all(b"NOP\nPUB t\n\x00\x00\x00\x01x").unwrap();
    expect_ok(&mut tls);
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn tls_is_refused_when_not_configured_and_required_when_asked() {
    let pki = Pki::new("required");
    // No certificate: tls_v1 is answered false and the connection stays plain.
    let mut config = NodeConfig::for_tests(Options::default());
    config.shards = 1;
    let plain = Node::start(config).unwrap();
    let mut tcp = connect(&plain);
    tcp.write_all(&identify_bytes(
        r#"{"feature_negotiation":true,"tls_v1":true,"snappy":true}"#,
    ))
    .unwrap();
    let (_, reply) = read_frame(&mut tcp);
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.contains(r#""tls_v1":false"#) && reply.contains(r#""snappy":false"#),
        "{reply}"
    );
    tcp.write_all(b"PUB t\n\x00\x00\x00\x01x").unwrap();
    expect_ok(&mut tcp);
    plain.shutdown();
    plain.join().unwrap();

    let node = start(
        Options {
            tls_required: true,
            ..options()
        },
        pki.server(ClientAuth::None),
    );
    let mut tcp = connect(&node);
    tcp.write_all(b"  V2PUB t\n\x00\x00\x00\x01x").unwrap();
    let (ft, data) = read_frame(&mut tcp);
    assert_eq!(
        (ft, String::from_utf8(data).unwrap()),
        (
            FRAME_ERROR,
            "E_INVALID cannot PUB in current state (TLS required)".to_string()
        )
    );
    let mut upgraded = Upgraded::connect(&node, Some(pki.client(None)), Compression::Snappy);
    upgraded.publish("t", b"over tls");
    // /stats names the session as nsqd does: Go knows no TLS 1.3 suite by name.
    let stats = common::http_get(
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
        "/stats?format=json",
    );
    for field in [
        r#""snappy":true"#,
        r#""deflate":false"#,
        r#""tls":true"#,
        r#""tls_cipher_suite":"Unknown 4865""#,
        r#""tls_version":"TLS1.3""#,
        r#""tls_negotiated_protocol":"""#,
        r#""tls_negotiated_protocol_is_mutual":true"#,
    ] {
        assert!(stats.contains(field), "{field} not in {stats}");
    }
    node.shutdown();
    node.join().unwrap();
}

/// Asks for TLS after IDENTIFY and runs a handshake with `client`: true when it is refused
/// (the server closes instead of completing it).
fn handshake_refused(node: &Node, client: Arc<rustls::ClientConfig>) -> bool {
    let mut tcp = connect(node);
    tcp.write_all(&identify_bytes(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .unwrap();
    read_frame(&mut tcp);
    let conn = rustls::ClientConnection::new(client, ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 16];
    !matches!(tls.read(&mut buf), Ok(n) if n > 0)
}

#[test]
fn require_verify_without_a_root_ca_file_verifies_against_the_system_cas() {
    // nsqd starts with require-verify and no --tls-root-ca-file: Go uses the system's CAs. A
    // client certificate from a private CA is then refused.
    if !std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        eprintln!("skipped: no system CA bundle at /etc/ssl/certs/ca-certificates.crt");
        return;
    }
    let pki = Pki::new("sysroots");
    let server = squall::tls::server_config(&TlsFiles {
        cert: &pki.path("server.pem"),
        key: &pki.path("server.key"),
        root_ca: "",
        client_auth: ClientAuth::RequireVerify,
        min_version: TlsMinVersion::Tls10,
    })
    .expect("starts without a root CA file");
    let node = start(options(), server);
    let (cert, key) = pki.issue(vec!["client".to_string()], true);
    assert!(
        handshake_refused(&node, pki.client(Some((&cert, &key)))),
        "a private CA is not a system CA"
    );
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn client_certificates_are_verified_against_the_root_ca() {
    let pki = Pki::new("verify");
    let other = Pki::new("other");
    let node = start(
        Options {
            tls_required: true,
            ..options()
        },
        pki.server(ClientAuth::RequireVerify),
    );
    let (cert, key) = pki.issue(vec!["client".to_string()], true);
    let mut good = Upgraded::connect(&node, Some(pki.client(Some((&cert, &key)))), Compression::Snappy);
    good.publish("certs", b"verified");

    // Signed by another CA: the handshake fails and the server closes.
    let (bad_cert, bad_key) = other.issue(vec!["client".to_string()], true);
    assert!(
        handshake_refused(&node, pki.client(Some((&bad_cert, &bad_key)))),
        "the handshake must fail"
    );
    // No certificate at all.
    assert!(
        handshake_refused(&node, pki.client(None)),
        "the handshake must fail"
    );

    good.publish("certs", b"still flowing");
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn a_client_that_does_not_speak_tls_after_the_upgrade_gets_e_identify_failed() {
    // nsqd writes the failed upgrade's error in plain text (no alert to a peer that sent no TLS
    // record), then closes.
    let pki = Pki::new("notls");
    let node = start(options(), pki.server(ClientAuth::None));
    let mut tcp = connect(&node);
    tcp.write_all(&identify_bytes(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .unwrap();
    read_frame(&mut tcp);
    tcp.write_all(b"PUB t\n\x00\x00\x00\x01x").unwrap();
    let (ft, data) = read_frame(&mut tcp);
    let text = String::from_utf8_lossy(&data).to_string();
    assert_eq!(ft, 1, "an error frame: {text}");
    assert!(
        text.starts_with("E_IDENTIFY_FAILED IDENTIFY failed tls: "),
        "{text}"
    );
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed after the frame: {rest:?}");
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn garbage_in_any_layer_closes_only_that_connection() {
    let pki = Pki::new("garbage");
    let node = start(options(), pki.server(ClientAuth::None));
    let mut bystander = Upgraded::connect(&node, Some(pki.client(None)), Compression::Deflate);
    let cases: [(&str, &[u8]); 3] = [
        (
            r#"{"feature_negotiation":true,"tls_v1":true}"#,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            r#"{"feature_negotiation":true,"snappy":true}"#,
            b"\xff\x06\x00\x00sNaPpY\x00\x10\x00\x00garbagegarbage!!",
        ),
        (
            r#"{"feature_negotiation":true,"deflate":true}"#,
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
        ),
    ];
    for (json, garbage) in cases {
        let mut tcp = connect(&node);
        tcp.write_all(&identify_bytes(json)).unwrap();
        read_frame(&mut tcp);
        tcp.write_all(garbage).unwrap();
        let mut buf = [0u8; 256];
        let mut closed = false;
        for _ in 0..16 {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                // The `OK` of the upgrade, a TLS alert: anything but a stall.
                Ok(_) => {}
            }
        }
        assert!(closed, "{json}: connection not closed");
        bystander.publish("bystander", b"flowing");
    }
    // Half a ClientHello, then silence: the handshake waits without holding up anyone else.
    let mut stalled = connect(&node);
    stalled
        .write_all(&identify_bytes(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .unwrap();
    read_frame(&mut stalled);
    stalled
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .unwrap();
    for _ in 0..10 {
        bystander.publish("bystander", b"still flowing");
    }
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn https_serves_the_http_api() {
    let pki = Pki::new("https");
    let node = start(options(), pki.server(ClientAuth::None));
    let addr = node.https_address().expect("HTTPS is on");
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let conn =
        rustls::ClientConnection::new(pki.client(None), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("OK"), "{response}");
    // Plain HTTP to the HTTPS port: Go's plain-text 400 (no NSQ frame, no alert), then a close.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    plain.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn tls_min_version_refuses_older_clients() {
    let pki = Pki::new("minversion");
    // Below 1.3 a TLS 1.2 client is served (nsqd's ECDHE + AES-128-GCM suite)...
    let node = start(options(), pki.server_min(ClientAuth::None, TlsMinVersion::Tls12));
    let mut old = Upgraded::connect(&node, Some(pki.client_tls12()), Compression::Deflate);
    old.publish("versions", b"tls 1.2");
    let stats = common::http_get(
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
        "/stats?format=json",
    );
    assert!(stats.contains(r#""tls_version":"TLS1.2""#), "{stats}");
    assert!(
        stats.contains(r#""tls_cipher_suite":"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256""#),
        "{stats}"
    );
    node.shutdown();
    node.join().unwrap();

    // ...and `--tls-min-version=tls1.3` refuses it.
    let node = start(options(), pki.server_min(ClientAuth::None, TlsMinVersion::Tls13));
    let mut tcp = connect(&node);
    tcp.write_all(&identify_bytes(r#"{"feature_negotiation":true,"tls_v1":true}"#))
        .unwrap();
    read_frame(&mut tcp);
    let conn = rustls::ClientConnection::new(pki.client_tls12(), ServerName::try_from("127.0.0.1").unwrap())
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 16];
    assert!(
        !matches!(tls.read(&mut buf), Ok(n) if n > 0),
        "a TLS 1.2 client must be refused"
    );
    let mut current = Upgraded::connect(&node, Some(pki.client(None)), Compression::None);
    current.publish("versions", b"tls 1.3");
    node.shutdown();
    node.join().unwrap();
}
