//! The built binaries start the way an operator expects: a `--config` file's values take effect
//! and flags override them; bad input (unknown key, unwritable data path, port in use) is one
//! line and a non-zero exit before anything listens; `--version` works everywhere; the log level
//! filters nsqd-shaped log lines; HTTP requests are logged as nsqd logs them; broadcast ports
//! left at 0 are the real ports; Unix socket paths are listened on, refused and removed as nsqd
//! does it.
//!
//! Every daemon runs on loopback with port 0 (the log lines say which port it got), in its own
//! temp directory, and every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const SQUALLD: &str = env!("CARGO_BIN_EXE_squalld");
const LOOKUPD: &str = env!("CARGO_BIN_EXE_squall-lookupd");
const TO_FILE: &str = env!("CARGO_BIN_EXE_squall-to-file");

/// Longest a daemon may take to start, print a line, or exit.
const WAIT: Duration = Duration::from_secs(15);

/// A fresh temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("squall-deploy-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon whose stderr lines arrive on a channel; killed on drop.
struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn spawn(bin: &str, args: &[&str]) -> Daemon {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line containing `needle`, waiting at most [`WAIT`].
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// The address after `"<what>: listening on "`.
    fn listening(&mut self, what: &str) -> SocketAddr {
        let needle = format!("{what}: listening on ");
        let line = self.line_with(&needle);
        let (_, addr) = line.split_once(&needle).unwrap();
        addr.trim().parse().unwrap()
    }

    /// SIGTERM, then the exit status and every stderr line.
    fn stop(mut self) -> (ExitStatus, Vec<String>) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = wait_bounded(&mut self.child);
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(1)) {
            lines.push(l);
        }
        (status, lines)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {WAIT:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command that should exit on its own: status, stdout, stderr.
fn run(bin: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child);
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, out, err)
}

/// `GET <target>` on nsqd's HTTP API: the body.
fn http_get(addr: SocketAddr, target: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut len = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(": ") {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

const LOOPBACK: [&str; 2] = ["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"];

fn squalld_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args = vec![format!("--data-path={data}"), "--shards=1".to_string()];
    args.extend(LOOPBACK.iter().map(|s| s.to_string()));
    args.push("--grpc-address=127.0.0.1:0".to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The line's shape: `[nsqd] 2026/11/25 12:00:00.123456 INFO: <message>`.
fn assert_nsqd_log_line(line: &str, level: &str) {
    let re =
        regex::Regex::new(r"^\[nsqd\] \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} ([A-Z]+): .+$").unwrap();
    let caps = re
        .captures(line)
        .unwrap_or_else(|| panic!("not nsqd-shaped: {line:?}"));
    assert_eq!(&caps[1], level, "{line}");
}

#[test]
fn config_file_values_take_effect_and_flags_override_them() {
    let tmp = TempDir::new("conf");
    let conf = tmp.file(
        "squalld.conf",
        "# as nsqd reads it\nmax_rdy_count = 42\nmsg_timeout = \"90s\"\nmax_msg_size = 2048\n",
    );
    let data = tmp.path();

    let args = squalld_args(&data, &["--config", &conf]);
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let http = d.listening("HTTP");
    assert_eq!(http_get(http, "/config/max_rdy_count"), "42");
    assert_eq!(http_get(http, "/config/msg_timeout"), "90000000000");
    assert_eq!(http_get(http, "/config/max_msg_size"), "2048");
    // What an operator sees at start: version, ID, shards, data path, listeners.
    for needle in [
        "INFO: squalld v",
        "INFO: ID: ",
        "INFO: shards: 1",
        "INFO: data path: ",
        "INFO: TCP: listening on 127.0.0.1:",
    ] {
        assert_nsqd_log_line(&d.line_with(needle), "INFO");
    }
    assert!(d.line_with("config file: ").ends_with("squalld.conf"));
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");

    // A flag wins over the file, whichever side of --config it is on.
    let args = squalld_args(&data, &["-max-rdy-count=7", "-config", &conf]);
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let http = d.listening("HTTP");
    assert_eq!(http_get(http, "/config/max_rdy_count"), "7");
    assert_eq!(http_get(http, "/config/max_msg_size"), "2048");
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// nsqd replaces a broadcast port of 0 with the port it listens on, in `/config/:opt`, in the
/// statsd prefix and in what it tells lookupd; the listen addresses stay as given.
#[test]
fn broadcast_ports_are_the_real_ones() {
    let tmp = TempDir::new("ports");
    let mut lookupd = Daemon::spawn(
        LOOKUPD,
        &[
            "--tcp-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0",
            "--broadcast-address=127.0.0.1",
        ],
    );
    let lookupd_tcp = lookupd.listening("TCP").to_string();
    let lookupd_http = lookupd.listening("HTTP");
    let data = tmp.path();
    let args = squalld_args(
        &data,
        &[
            "--grpc-address=",
            "--broadcast-address=127.0.0.1",
            "--lookupd-tcp-address",
            &lookupd_tcp,
        ],
    );
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let tcp = d.listening("TCP").port();
    let http = d.listening("HTTP");
    assert_eq!(http_get(http, "/config/broadcast_tcp_port"), tcp.to_string());
    assert_eq!(
        http_get(http, "/config/broadcast_http_port"),
        http.port().to_string()
    );
    // (nsqd writes a string option bare, without JSON quotes.)
    let text = |opt: &str| {
        http_get(http, &format!("/config/{opt}"))
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(text("statsd_prefix"), format!("nsq.127_0_0_1_{}.", http.port()));
    assert_eq!(text("tcp_address"), "127.0.0.1:0");
    let deadline = Instant::now() + WAIT;
    let node = loop {
        let nodes: serde_json::Value = serde_json::from_str(&http_get(lookupd_http, "/nodes")).unwrap();
        if let Some(node) = nodes["producers"].as_array().and_then(|p| p.first()) {
            break node.clone();
        }
        assert!(Instant::now() < deadline, "squalld never registered with lookupd");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(node["tcp_port"], tcp);
    assert_eq!(node["http_port"], http.port());
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
    let (status, _) = lookupd.stop();
    assert!(status.success(), "{status}");
}

/// Exactly one stderr line, naming what is wrong, a non-zero exit, and no listener.
fn assert_one_fatal_line(status: ExitStatus, stderr: &str, wanted: &[&str]) {
    assert!(!status.success(), "{status}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("FATAL: "), "{stderr}");
    for w in wanted {
        assert!(lines[0].contains(w), "{w:?} missing from {stderr}");
    }
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn an_unknown_key_fails_naming_key_and_file() {
    let tmp = TempDir::new("unknown");
    let conf = tmp.file("squalld.conf", "max_rdy_count = 42\nmax_rdy_cuont = 43\n");
    let args = squalld_args(&tmp.path(), &["--config", &conf]);
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(status, &err, &["unknown key max_rdy_cuont", &conf]);
    assert!(err.starts_with("[nsqd] "), "{err}");

    let conf = tmp.file("lookupd.conf", "tombstone_lifetime = 45\nbogus = true\n");
    let (status, _, err) = run(LOOKUPD, &["--config", &conf, LOOPBACK[0], LOOPBACK[1]]);
    assert_one_fatal_line(status, &err, &["unknown key bogus", &conf]);
    assert!(err.starts_with("[nsqlookupd] "), "{err}");

    let conf = tmp.file("to_file.conf", "topic = [\"t\"]\nmax_rdy_count = 1\n");
    let (status, _, err) = run(TO_FILE, &["--config", &conf, "--nsqd-tcp-address=127.0.0.1:1"]);
    assert_one_fatal_line(status, &err, &["unknown key max_rdy_count", &conf]);

    let conf = tmp.file("typed.conf", "max_rdy_count = \"many\"\n");
    let args = squalld_args(&tmp.path(), &["--config", &conf]);
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(status, &err, &["max_rdy_count: expected an integer", &conf]);
}

#[test]
fn an_unwritable_data_path_fails() {
    let tmp = TempDir::new("ro");
    let file = tmp.file("not-a-dir", "");
    let args = squalld_args(&file, &[]);
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(status, &err, &["--data-path", "is not a directory"]);

    // root writes through permission bits, so it gets a directory no one can add files to.
    // SAFETY: getuid(2) has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let ro = if root {
        "/proc".to_string()
    } else {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.0.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        ro.to_string_lossy().into_owned()
    };
    let args = squalld_args(&ro, &[]);
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(status, &err, &["--data-path", "is not writable"]);
}

#[test]
fn a_port_in_use_fails_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = TempDir::new("port");
    let data = tmp.path();

    let tcp = format!("--tcp-address={addr}");
    let args = [
        format!("--data-path={data}"),
        tcp.clone(),
        LOOPBACK[1].to_string(),
    ];
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(
        status,
        &err,
        &[&format!("listen ({addr}) failed"), "--tcp-address"],
    );

    let http = format!("--http-address={addr}");
    let args = [
        format!("--data-path={data}"),
        LOOPBACK[0].to_string(),
        http.clone(),
    ];
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(
        status,
        &err,
        &[&format!("listen ({addr}) failed"), "--http-address"],
    );

    let (status, _, err) = run(LOOKUPD, &[&tcp, LOOPBACK[1]]);
    assert_one_fatal_line(
        status,
        &err,
        &[&format!("listen ({addr}) failed"), "--tcp-address"],
    );

    // The HTTPS listener too, at once (nsqd fails before serving anything).
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_file = tmp.file("cert.pem", &cert.cert.pem());
    let key_file = tmp.file("key.pem", &cert.key_pair.serialize_pem());
    let mut args = squalld_args(&data, &[]);
    args.extend([
        format!("--tls-cert={cert_file}"),
        format!("--tls-key={key_file}"),
        format!("--https-address={addr}"),
    ]);
    let (status, _, err) = run(SQUALLD, &strs(&args));
    assert_one_fatal_line(
        status,
        &err,
        &[&format!("listen ({addr}) failed"), "--https-address"],
    );
    drop(taken);
}

#[test]
fn version_works_on_every_binary() {
    for (bin, name, upstream) in [
        (SQUALLD, "squalld", "nsqd"),
        (LOOKUPD, "squall-lookupd", "nsqlookupd"),
        (TO_FILE, "squall-to-file", "nsq_to_file"),
    ] {
        for flag in ["--version", "-version"] {
            // A config file that does not exist is not read: the version comes first, as in nsqd.
            let (status, out, err) = run(bin, &[flag, "--config=/nonexistent.conf"]);
            assert!(status.success(), "{bin} {flag}: {status} {err}");
            let expected = format!(
                "{name} v{} ({upstream} v1.3.0 compatible)\n",
                env!("CARGO_PKG_VERSION")
            );
            assert_eq!(out, expected, "{bin} {flag}");
        }
    }
}

#[test]
fn log_level_error_hides_info_lines() {
    let tmp = TempDir::new("quiet");
    let conf = tmp.file("squalld.conf", "log_level = \"error\"\n");
    let data = tmp.path();
    // Once from the flag, once from the file.
    for extra in [&["--log-level=error"][..], &["--config", &conf]] {
        let args = squalld_args(&data, extra);
        let d = Daemon::spawn(SQUALLD, &strs(&args));
        // Up and serving: the data directory is locked by now and then some.
        std::thread::sleep(Duration::from_millis(500));
        let (status, lines) = d.stop();
        assert!(status.success(), "{status}: {lines:#?}");
        assert!(lines.iter().all(|l| !l.contains("INFO:")), "{lines:#?}");
    }
    // And the default level shows them (the lookupd's too).
    let d = Daemon::spawn(LOOKUPD, &LOOPBACK);
    let mut d = d;
    let line = d.line_with("TCP: listening on");
    assert!(
        line.starts_with("[nsqlookupd] ") && line.contains(" INFO: "),
        "{line}"
    );
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// One HTTP/1.1 request with a body on a fresh connection; the status.
fn http_request(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply.split(' ').nth(1).unwrap().parse().unwrap()
}

/// nsq's `http_api.Log` line: `<status> <method> <uri> (<remote ip:port>) <elapsed>` at INFO,
/// for every API request but `/pub` and `/mpub`, 404s and 405s included; the level is the one
/// in force when the request is answered, so a `PUT /config/log_level` on any shard silences
/// them all.
#[test]
fn http_requests_are_logged_like_nsqd() {
    let tmp = TempDir::new("reqlog");
    let data = tmp.path();
    let mut args = squalld_args(&data, &[]);
    args.retain(|a| a != "--shards=1");
    args.push("--shards=2".to_string());
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let http = d.listening("HTTP");
    let re = regex::Regex::new(
        r"^\[nsqd\] \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} INFO: (\d{3}) ([A-Z]+) (\S+) \(127\.0\.0\.1:\d+\) \d+(\.\d+)?(ns|µs|ms|s)$",
    )
    .unwrap();
    assert_eq!(http_request(http, "POST", "/pub?topic=logged", b"m"), 200);
    assert_eq!(http_request(http, "POST", "/mpub?topic=logged", b"m"), 200);
    for (method, target, status) in [
        ("GET", "/ping?", 200),
        ("GET", "/stats?format=json&topic=logged", 200),
        ("POST", "/topic/create?topic=logged", 200),
        ("GET", "/nope?x=%41", 404),
        ("DELETE", "/ping", 405),
        ("PUT", "/config/log_level", 200),
    ] {
        assert_eq!(http_request(http, method, target, b"info"), status, "{target}");
        let line = d.line_with(&format!(" {method} {target} ("));
        let caps = re
            .captures(&line)
            .unwrap_or_else(|| panic!("not nsqd's shape: {line:?}"));
        assert_eq!(&caps[1], status.to_string(), "{line}");
        assert_eq!((&caps[2], &caps[3]), (method, target), "{line}");
    }
    // Quiet at ERROR, whichever shard serves the request; the PUT back to INFO is logged.
    assert_eq!(http_request(http, "PUT", "/config/log_level", b"error"), 200);
    for _ in 0..8 {
        assert_eq!(http_request(http, "GET", "/ping?quiet", b""), 200);
    }
    assert_eq!(http_request(http, "PUT", "/config/log_level", b"info"), 200);
    assert_eq!(http_request(http, "GET", "/ping?loud", b""), 200);
    // Lines come in order: every earlier one is in by the time this one is.
    d.line_with(" GET /ping?loud (");
    let (status, lines) = d.stop();
    assert!(status.success(), "{status}");
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    for unlogged in [" /pub?", " /mpub?", " /ping?quiet "] {
        assert_eq!(count(unlogged), 0, "{unlogged}: {lines:#?}");
    }
    // The first PUT (at INFO) and the last (back to INFO); not the one to ERROR.
    assert_eq!(count(" PUT /config/log_level ("), 2, "{lines:#?}");
}

/// nsqd takes an address that Go's `net.SplitHostPort` refuses as a Unix socket path: squalld
/// logs the paths it listens on, serves NSQ and HTTP there (a Unix client is `@` in the request
/// log, as Go writes an unnamed socket), and removes the socket files when it exits.
#[test]
fn unix_socket_paths_are_served_and_removed_at_exit() {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::net::UnixStream;

    let tmp = TempDir::new("unix");
    let (tcp, http) = (tmp.0.join("nsqd.sock"), tmp.0.join("http.sock"));
    let args = [
        format!("--data-path={}", tmp.path()),
        "--shards=2".to_string(),
        "--grpc-address=".to_string(),
        format!("--tcp-address={}", tcp.display()),
        format!("--http-address={}", http.display()),
    ];
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let line = d.line_with("TCP: listening on ");
    assert!(
        line.ends_with(&format!("TCP: listening on {}", tcp.display())),
        "{line}"
    );
    let line = d.line_with("HTTP: listening on ");
    assert!(
        line.ends_with(&format!("HTTP: listening on {}", http.display())),
        "{line}"
    );
    for path in [&tcp, &http] {
        assert!(std::fs::metadata(path).unwrap().file_type().is_socket());
    }

    let mut get = UnixStream::connect(&http).unwrap();
    get.set_read_timeout(Some(WAIT)).unwrap();
    get.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    get.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200 ") && reply.ends_with("\r\n\r\nOK"),
        "{reply}"
    );
    assert_nsqd_log_line(&d.line_with(" GET /ping (@) "), "INFO");

    let mut nsq = UnixStream::connect(&tcp).unwrap();
    nsq.set_read_timeout(Some(WAIT)).unwrap();
    nsq.write_all(b"  V2PUB unix\n\x00\x00\x00\x02hi").unwrap();
    let mut frame = [0u8; 10];
    nsq.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x00\x00\x00\x06\x00\x00\x00\x00OK");

    let (status, lines) = d.stop();
    assert!(status.success(), "{status}: {lines:#?}");
    assert!(!tcp.exists() && !http.exists(), "socket files left behind");
}

/// nsqd's `net.Listen("unix", path)` neither removes nor reuses an existing file (a socket a
/// killed process left behind included): squalld refuses to start with nsqd's message and
/// leaves the file alone, as it does for a missing directory; `--https-address` is always TCP in
/// nsqd (`tls.Listen("tcp", ...)`), so a path there fails with Go's message too.
#[test]
fn a_unix_socket_path_that_cannot_be_bound_fails_like_nsqd() {
    let tmp = TempDir::new("unix-taken");
    let stale = tmp.0.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let stale = stale.to_string_lossy().into_owned();
    let missing = format!("{}/no/such/dir/nsqd.sock", tmp.path());
    let data = format!("--data-path={}", tmp.path());
    for (flag, path, why) in [
        ("--tcp-address", &stale, "address already in use"),
        ("--http-address", &stale, "address already in use"),
        ("--tcp-address", &missing, "no such file or directory"),
    ] {
        let mut args = vec![data.clone(), format!("{flag}={path}")];
        args.extend(
            LOOPBACK
                .iter()
                .filter(|a| !a.starts_with(flag))
                .map(|a| a.to_string()),
        );
        let (status, _, err) = run(SQUALLD, &strs(&args));
        let wanted = format!("FATAL: listen ({path}) failed - listen unix {path}: bind: {why}");
        assert_one_fatal_line(status, &err, &[&wanted]);
        assert!(err.trim_end().ends_with(&wanted), "{err}");
    }
    assert!(std::fs::metadata(&stale).is_ok(), "the stale socket was removed");

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_file = tmp.file("cert.pem", &cert.cert.pem());
    let key_file = tmp.file("key.pem", &cert.key_pair.serialize_pem());
    let https = format!("{}/https.sock", tmp.path());
    let mut args = squalld_args(&tmp.path(), &[]);
    args.extend([
        format!("--tls-cert={cert_file}"),
        format!("--tls-key={key_file}"),
        format!("--https-address={https}"),
    ]);
    let (status, _, err) = run(SQUALLD, &strs(&args));
    let wanted =
        format!("FATAL: listen ({https}) failed - listen tcp: address {https}: missing port in address");
    assert_one_fatal_line(status, &err, &[&wanted]);
    assert!(err.trim_end().ends_with(&wanted), "{err}");
}

/// `systemd-analyze verify` accepts the shipped units, in a root laid out as the .deb installs
/// them (the host's own units for the targets they name, placeholders for the binaries). Needs
/// systemd's tools, which ci/test installs when they are missing.
#[test]
fn the_systemd_units_verify() {
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.join("sysinit.target").exists());
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    let host_units = host_units.expect("the host's systemd units (apt-get install systemd)");
    let out = analyze.expect("systemd-analyze (apt-get install systemd)");
    assert!(out.status.success());
    let root = TempDir::new("units");
    let units = root.0.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for entry in std::fs::read_dir(host_units).unwrap() {
        let entry = entry.unwrap();
        // Aliases that point nowhere in this root are not needed.
        let _ = std::fs::copy(entry.path(), units.join(entry.file_name()));
    }
    let bin = root.0.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["squalld", "squall-lookupd"] {
        use std::os::unix::fs::PermissionsExt;
        let path = bin.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let packaging = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging");
    let mut args = vec![format!("--root={}", root.path()), "verify".to_string()];
    for unit in ["squalld.service", "squall-lookupd.service"] {
        let dest = units.join(unit);
        std::fs::copy(format!("{packaging}/{unit}"), &dest).unwrap();
        args.push(dest.to_string_lossy().into_owned());
    }
    let out = Command::new("systemd-analyze").args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and only warns: any output is a finding.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{}: {stderr}",
        out.status
    );
}

#[test]
fn clients_topics_and_channels_are_logged_like_nsqd() {
    let tmp = TempDir::new("lifelog");
    let data = tmp.path();
    let args = squalld_args(&data, &[]);
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let tcp = d.listening("TCP");
    let mut c = std::net::TcpStream::connect(tcp).unwrap();
    let local = c.local_addr().unwrap();
    let body = br#"{"client_id":"c1","hostname":"h1","user_agent":"ua","feature_negotiation":true}"#;
    c.write_all(b"  V2IDENTIFY\n").unwrap();
    c.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    c.write_all(body).unwrap();
    c.write_all(b"SUB lifelog ch\n").unwrap();
    d.line_with("TOPIC(lifelog): new channel(ch)");
    drop(c);
    d.line_with(&format!("PROTOCOL(V2): [{local}] exiting ioloop"));
    let (status, lines) = d.stop();
    assert!(status.success(), "{status}");
    let expected = [
        format!("INFO: TCP: new client({local})"),
        format!("INFO: CLIENT({local}): desired protocol magic '  V2'"),
        format!(
            "INFO: [{local}] IDENTIFY: {{ClientID:c1 Hostname:h1 HeartbeatInterval:0 OutputBufferSize:0 \
             OutputBufferTimeout:0 FeatureNegotiation:true TLSv1:false Deflate:false DeflateLevel:0 \
             Snappy:false SampleRate:0 UserAgent:ua MsgTimeout:0}}"
        ),
        "INFO: TOPIC(lifelog): created".to_string(),
        "INFO: TOPIC(lifelog): new channel(ch)".to_string(),
        format!("INFO: PROTOCOL(V2): [{local}] exiting ioloop"),
    ];
    let mut at = 0;
    for want in &expected {
        let found = lines[at..].iter().position(|l| l.ends_with(want.as_str()));
        let i = found.unwrap_or_else(|| panic!("{want:?} missing or out of order in {lines:#?}"));
        at += i + 1;
    }
}

#[test]
fn statsd_polling_is_not_in_the_request_log() {
    // nsqd's statsd reads its stats in-process; squalld's asks its own HTTP API, unlogged.
    let tmp = TempDir::new("statsdlog");
    let data = tmp.path();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let statsd = format!("--statsd-address={}", udp.local_addr().unwrap());
    let args = squalld_args(&data, &[&statsd, "--statsd-interval=100ms"]);
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let http = d.listening("HTTP");
    let mut buf = [0u8; 2048];
    for _ in 0..2 {
        udp.recv(&mut buf).expect("a statsd push");
    }
    assert_eq!(http_request(http, "GET", "/ping?after-statsd", b""), 200);
    d.line_with(" GET /ping?after-statsd (");
    let (status, lines) = d.stop();
    assert!(status.success(), "{status}");
    assert!(!lines.iter().any(|l| l.contains("GET /stats")), "{lines:#?}");
}

#[test]
fn a_default_grpc_port_in_use_turns_grpc_off_instead_of_failing() {
    // nsqd has no gRPC port, so scripts start several nsqd on one host: a squalld left at the
    // default --grpc-address starts without gRPC when that port is taken. Holding
    // 127.0.0.1:4153 is enough to keep the default's [::]:4153 from binding.
    let held = TcpListener::bind("127.0.0.1:4153").ok();
    let tmp = TempDir::new("grpcbusy");
    let data = tmp.path();
    let args = [
        format!("--data-path={data}"),
        "--shards=1".to_string(),
        LOOPBACK[0].to_string(),
        LOOPBACK[1].to_string(),
    ];
    let mut d = Daemon::spawn(SQUALLD, &strs(&args));
    let warning = d.line_with("(--grpc-address): gRPC is off");
    assert_nsqd_log_line(&warning, "WARNING");
    d.listening("HTTP");
    let (status, lines) = d.stop();
    assert!(status.success(), "{status}");
    assert!(!lines.iter().any(|l| l.contains("gRPC: listening")), "{lines:#?}");
    // Asked for explicitly, a taken port is still fatal.
    let mut args = squalld_args(&data, &[]);
    args.retain(|a| !a.starts_with("--grpc-address"));
    args.push("--grpc-address=127.0.0.1:4153".to_string());
    if held.is_some() {
        let (status, _, err) = run(SQUALLD, &strs(&args));
        assert_one_fatal_line(
            status,
            &err,
            &["listen (127.0.0.1:4153) failed", "--grpc-address"],
        );
    }
}
