//! Claim: AUTH works end to end against a real HTTP auth server (spec §4.2): the query carries
//! nsqd's parameters, grants and denials give nsqd's exact frames, a server that is down, slow,
//! failing or answering junk gives `E_AUTH_FAILED` without ever stalling the shard (one shard
//! here, so every client shares it), and `/stats` shows who authenticated.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use common::*;
use squall::{Node, NodeConfig};
use squall_core::options::Options;

const GRANT: &str = r#"{"ttl":3600,"identity":"alice","identity_url":"https://id.example/alice","authorizations":[{"topic":"^allowed","channels":[".*"],"permissions":["publish","subscribe"]}]}"#;

/// A loopback auth server answering by secret; `hold` answers only once released.
struct AuthServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    release: mpsc::Sender<()>,
}

impl AuthServer {
    fn start() -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let seen = seen.clone();
                let released = released.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    reader.read_line(&mut line).unwrap();
                    let mut body_len = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                            body_len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; body_len];
                    std::io::Read::read_exact(&mut reader, &mut body).unwrap();
                    let body = String::from_utf8(body).unwrap();
                    seen.lock().unwrap().push(format!("{}{body}", line.trim_end()));
                    let secret = if body.is_empty() {
                        line.split(['?', '&', ' '])
                            .find_map(|kv| kv.strip_prefix("secret="))
                            .unwrap_or("")
                            .to_string()
                    } else {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        v["secret"][0].as_str().unwrap().to_string()
                    };
                    let (status, body) = match secret.as_str() {
                        "good" => ("200 OK", GRANT.to_string()),
                        "hold" => {
                            let _ = released.lock().unwrap().recv_timeout(4 * READ_TIMEOUT);
                            ("200 OK", GRANT.to_string())
                        }
                        "none" => (
                            "200 OK",
                            r#"{"ttl":60,"identity":"x","authorizations":[]}"#.to_string(),
                        ),
                        "junk" => ("200 OK", "this is not json".to_string()),
                        _ => ("500 Internal Server Error", "{}".to_string()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes());
                });
            }
        });
        AuthServer {
            addr,
            requests,
            release,
        }
    }
}

fn node(auth_addresses: Vec<String>) -> (Node, SocketAddr) {
    node_with(auth_addresses, false)
}

fn node_with(auth_addresses: Vec<String>, post: bool) -> (Node, SocketAddr) {
    let mut config = NodeConfig::for_tests(Options {
        auth_enabled: true,
        ..Options::default()
    });
    config.shards = 1;
    config.auth_http_addresses = auth_addresses;
    config.auth_http_post = post;
    let node = Node::start(config).expect("node starts");
    let addr = node.tcp_address().as_tcp().unwrap();
    (node, addr)
}

fn auth(c: &mut Client, secret: &str) {
    c.send_with_body("AUTH", secret.as_bytes());
}

#[test]
fn grants_denials_and_failures_end_to_end() {
    let server = AuthServer::start();
    let (node, addr) = node(vec![server.addr.to_string()]);

    let mut c = Client::connect(addr);
    c.identify(r#"{"feature_negotiation":true}"#);
    let (_, reply) = c.read_frame();
    assert!(String::from_utf8_lossy(&reply).contains(r#""auth_required":true"#));
    c.publish("allowed_t", b"early");
    c.expect_error("E_AUTH_FIRST AUTH required before PUB");
    c.expect_closed();

    let mut c = Client::connect(addr);
    auth(&mut c, "good");
    c.expect_response(
        br#"{"identity":"alice","identity_url":"https://id.example/alice","permission_count":1}"#,
    );
    c.publish("allowed_t", b"m");
    c.expect_ok();
    let stats = http_get(
        node.http_address().and_then(|a| a.as_tcp()).unwrap(),
        "/stats?format=json&include_clients=true",
    );
    assert!(stats.contains(r#""authed":true"#), "{stats}");
    assert!(stats.contains(r#""auth_identity":"alice""#), "{stats}");
    c.publish("other", b"m");
    c.expect_error(r#"E_UNAUTHORIZED AUTH failed for PUB on "other" """#);
    c.expect_closed();

    let request = server.requests.lock().unwrap()[0].clone();
    assert_eq!(
        request,
        "GET /auth?common_name=&remote_ip=127.0.0.1&secret=good&tls=false HTTP/1.1"
    );

    for (secret, error) in [
        ("none", "E_UNAUTHORIZED AUTH no authorizations found"),
        ("junk", "E_AUTH_FAILED AUTH failed"),
        ("fail", "E_AUTH_FAILED AUTH failed"),
    ] {
        let mut c = Client::connect(addr);
        auth(&mut c, secret);
        c.expect_error(error);
        c.expect_closed();
    }

    // A consumer that authenticated subscribes and gets what a publisher sends.
    let mut sub = Client::connect(addr);
    auth(&mut sub, "good");
    sub.read_frame();
    sub.sub("allowed_t", "ch");
    sub.cmd("RDY 10");
    let m = sub.read_message();
    assert_eq!(m.body, b"m");
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn an_auth_server_that_is_down_or_slow_stalls_nobody() {
    // First address refuses connections; the second answers, possibly slowly.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = AuthServer::start();
    let (node, addr) = node(vec![dead.to_string(), server.addr.to_string()]);

    let mut waiting = Client::connect(addr);
    auth(&mut waiting, "hold");
    // While that answer is held back, another client on the same shard works normally.
    let mut c = Client::connect(addr);
    auth(&mut c, "good");
    c.read_frame();
    let mut sub = Client::connect(addr);
    sub.identify(r#"{"output_buffer_size":-1}"#);
    sub.expect_ok();
    auth(&mut sub, "good");
    sub.read_frame();
    sub.sub("allowed_slow", "ch");
    sub.cmd("RDY 100");
    for i in 0..50 {
        c.publish("allowed_slow", format!("m{i}").as_bytes());
        c.expect_ok();
        let m = sub.read_message();
        assert_eq!(m.body, format!("m{i}").as_bytes());
        sub.fin(&m.id);
    }
    waiting.expect_silence(std::time::Duration::from_millis(50));
    server.release.send(()).unwrap();
    waiting.expect_response(
        br#"{"identity":"alice","identity_url":"https://id.example/alice","permission_count":1}"#,
    );

    node.shutdown();
    node.join().unwrap();

    // Nothing listening at all.
    let (node, addr) = node_with_only(dead);
    let mut c = Client::connect(addr);
    auth(&mut c, "good");
    c.expect_error("E_AUTH_FAILED AUTH failed");
    c.expect_closed();
    node.shutdown();
    node.join().unwrap();
}

fn node_with_only(addr: SocketAddr) -> (Node, SocketAddr) {
    node(vec![addr.to_string()])
}

#[test]
fn post_queries_send_the_parameters_as_json() {
    let server = AuthServer::start();
    let (node, addr) = node_with(vec![format!("http://{}/v2/auth", server.addr)], true);
    let mut c = Client::connect(addr);
    auth(&mut c, "good");
    c.expect_response(
        br#"{"identity":"alice","identity_url":"https://id.example/alice","permission_count":1}"#,
    );
    assert_eq!(
        server.requests.lock().unwrap()[0],
        r#"POST /v2/auth HTTP/1.1{"common_name":[""],"remote_ip":["127.0.0.1"],"secret":["good"],"tls":["false"]}"#
    );
    node.shutdown();
    node.join().unwrap();
}
