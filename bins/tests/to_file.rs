//! squall-to-file end to end: the built binary consumes from an in-process squalld and every
//! published message ends up as a line on disk, across gzip, rotation, work-dir moves, SIGTERM,
//! kill -9, a broker restart, and connections upgraded to TLS, snappy or deflate; it starts, and
//! refuses to start, where nsq_to_file does, with its messages and exit statuses. Loopback only;
//! every wait is bounded.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::TestNode;
use squall::{Node, NodeConfig};
use squall_core::options::Options;

/// Longest any test waits for one condition.
const WAIT: Duration = Duration::from_secs(30);

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "squall-to-file-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.0.join(sub)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The tool as a child process; its stderr goes to a file that failures print.
struct Tool {
    child: Child,
    stderr_path: PathBuf,
}

impl Tool {
    fn spawn(args: &[String], stderr_path: PathBuf) -> Tool {
        let stderr = fs::File::create(&stderr_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_squall-to-file"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn squall-to-file");
        Tool { child, stderr_path }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit in time:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn term(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        let log = self.stderr();
        assert_eq!(status.code(), Some(0), "SIGTERM exit status; log:\n{log}");
        log
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn node_options() -> Options {
    Options {
        msg_timeout_ms: 2_000,
        ..Options::default()
    }
}

fn args(node: &TestNode, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("--nsqd-tcp-address={}", node.addr),
        format!("--output-dir={}", out.display()),
        "--sync-interval=100ms".to_string(),
        "--log-level=debug".to_string(),
        "--consumer-opt=lookupd_poll_interval,1s".to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn publish(node: &TestNode, topic: &str, bodies: &[String]) {
    let mut c = node.client();
    for chunk in bodies.chunks(100) {
        let refs: Vec<&[u8]> = chunk.iter().map(|b| b.as_bytes()).collect();
        c.mpub(topic, &refs);
        c.expect_ok();
    }
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:06}")).collect()
}

/// Every file under `dir` (recursively), gzip decoded, as lines.
fn read_lines(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let raw = fs::read(&path).unwrap_or_default();
            let text = if path.extension().is_some_and(|x| x == "gz") {
                let mut s = String::new();
                let mut d = flate2::read::MultiGzDecoder::new(&raw[..]);
                if d.read_to_string(&mut s).is_err() {
                    s.clear(); // not all members written yet
                }
                s
            } else {
                String::from_utf8_lossy(&raw).into_owned()
            };
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            out.insert(rel, text.lines().map(str::to_string).collect());
        }
    }
    out
}

fn count_lines(dir: &Path) -> usize {
    read_lines(dir).values().map(Vec::len).sum()
}

fn wait_until(what: &str, tool: &Tool, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            tool.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn short_host() -> String {
    let h = squall::config::os_hostname();
    h.split('.').next().unwrap_or(&h).to_string()
}

/// No message of `topic` is left for the tool's channel: nothing is redelivered after the
/// message timeout, so everything was FIN'd.
fn assert_all_finished(node: &TestNode, topic: &str) {
    let mut c = node.client();
    c.sub(topic, "nsq_to_file");
    c.cmd("RDY 100");
    c.expect_silence(Duration::from_millis(2_500));
}

#[test]
fn n_messages_on_two_topics_are_n_lines_in_the_right_files() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("two-topics");
    let out = dir.path("out");
    let (a, b) = (bodies("a", 700), bodies("b", 300));
    publish(&node, "alpha", &a);
    let tool = Tool::spawn(
        &args(&node, &out, &["--topic=alpha", "-topic", "beta"]),
        dir.path("stderr"),
    );
    publish(&node, "beta", &b);
    wait_until("1000 lines", &tool, || count_lines(&out) >= 1000);
    let log = tool.term();

    let files = read_lines(&out);
    assert_eq!(files.len(), 2, "{files:?}\n{log}");
    let host = short_host();
    for (name, lines) in &files {
        let (topic, expect) = if name.starts_with("alpha.") {
            ("alpha", &a)
        } else {
            ("beta", &b)
        };
        assert!(
            name.starts_with(&format!("{topic}.{host}.")) && name.ends_with(".log"),
            "{name}"
        );
        let mut got = lines.clone();
        got.sort();
        assert_eq!(&got, expect, "{name}");
    }
    assert!(log.contains("INFO: [alpha/nsq_to_file] opening "), "{log}");
    assert_all_finished(&node, "alpha");
    assert_all_finished(&node, "beta");
}

#[test]
fn gzip_output_is_concatenated_members_that_decode() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("gzip");
    let out = dir.path("out");
    let tool = Tool::spawn(
        &args(
            &node,
            &out,
            &["--topic=zipped", "--gzip", "--gzip-level=9", "--max-in-flight=20"],
        ),
        dir.path("stderr"),
    );
    let all = bodies("z", 300);
    for batch in all.chunks(100) {
        publish(&node, "zipped", batch);
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_until("300 gzip lines", &tool, || count_lines(&out) >= 300);
    let log = tool.term();
    let files = read_lines(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    let (name, lines) = files.iter().next().unwrap();
    assert!(
        name.starts_with(&format!("zipped.{}-000000.", short_host())),
        "{name}"
    );
    assert!(name.ends_with(".log.gz"), "{name}");
    let mut got = lines.clone();
    got.sort();
    assert_eq!(got, all, "{log}");
    // Several syncs, so several members: more than one gzip header in the file.
    let raw = fs::read(out.join(name)).unwrap();
    let headers = raw.windows(3).filter(|w| w == &[0x1f, 0x8b, 0x08]).count();
    assert!(headers > 1, "expected several gzip members, found {headers}");
}

#[test]
fn size_rotation_names_files_by_revision() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("rotate-size");
    let out = dir.path("out");
    // 99-byte bodies + newline = 100 bytes a record; rotation once a file exceeds 950 bytes.
    let all: Vec<String> = (0..50).map(|i| format!("{i:03}{}", "x".repeat(96))).collect();
    publish(&node, "sized", &all);
    let tool = Tool::spawn(
        &args(
            &node,
            &out,
            &[
                "--topic=sized",
                "--rotate-size=950",
                "--filename-format=<TOPIC><REV>.log",
                // Otherwise the tick after the last record opens an (empty) sixth file.
                "--skip-empty-files",
            ],
        ),
        dir.path("stderr"),
    );
    wait_until("50 lines", &tool, || count_lines(&out) >= 50);
    let log = tool.term();
    let files = read_lines(&out);
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(
        names,
        [
            "sized-000000.log",
            "sized-000001.log",
            "sized-000002.log",
            "sized-000003.log",
            "sized-000004.log"
        ],
        "{log}"
    );
    for (name, lines) in &files {
        assert_eq!(lines.len(), 10, "{name}");
    }
}

#[test]
fn interval_rotation_opens_a_new_revision_each_interval() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("rotate-interval");
    let out = dir.path("out");
    let tool = Tool::spawn(
        &args(
            &node,
            &out,
            &[
                "--topic=timed",
                "--rotate-interval=400ms",
                "--filename-format=<TOPIC><REV>.log",
            ],
        ),
        dir.path("stderr"),
    );
    let all = bodies("t", 90);
    for batch in all.chunks(30) {
        publish(&node, "timed", batch);
        std::thread::sleep(Duration::from_millis(600));
    }
    wait_until("90 lines", &tool, || count_lines(&out) >= 90);
    let log = tool.term();
    let files = read_lines(&out);
    assert!(files.len() >= 3, "{files:?}\n{log}");
    for (i, name) in files.keys().enumerate() {
        assert_eq!(name, &format!("timed-{i:06}.log"), "revisions are contiguous");
    }
    let mut got: Vec<String> = files.values().flatten().cloned().collect();
    got.sort();
    assert_eq!(got, all);
}

#[test]
fn work_dir_files_move_to_output_dir_when_closed() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("work-dir");
    let (work, out) = (dir.path("work"), dir.path("out"));
    let work_arg = format!("--work-dir={}", work.display());
    let tool = Tool::spawn(
        &args(
            &node,
            &out,
            &[
                "--topic=moved",
                &work_arg,
                "--filename-format=sub/<TOPIC><REV>.log",
            ],
        ),
        dir.path("stderr"),
    );
    let first = bodies("m1", 40);
    publish(&node, "moved", &first);
    wait_until("40 lines in the work dir", &tool, || count_lines(&work) >= 40);
    assert_eq!(
        count_lines(&out),
        0,
        "nothing in the output dir while the file is open"
    );

    tool.signal(libc::SIGHUP);
    wait_until("the file moved", &tool, || count_lines(&out) >= 40);
    assert_eq!(count_lines(&work), 0);

    let second = bodies("m2", 25);
    publish(&node, "moved", &second);
    wait_until("25 more lines in the work dir", &tool, || {
        count_lines(&work) >= 25
    });
    let log = tool.term();

    assert!(
        read_lines(&work).is_empty(),
        "work dir emptied: {:?}",
        read_lines(&work)
    );
    let files = read_lines(&out);
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, ["sub/moved-000000.log", "sub/moved-000001.log"], "{log}");
    assert_eq!(files["sub/moved-000000.log"], first);
    assert_eq!(files["sub/moved-000001.log"], second);
    assert!(log.contains("moving finished file"), "{log}");
}

#[test]
fn kill_9_and_restart_loses_nothing() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("kill9");
    let out = dir.path("out");
    let all = bodies("k", 3000);
    publish(&node, "crashy", &all);
    let tool_args = args(&node, &out, &["--topic=crashy", "--max-in-flight=50"]);

    let mut tool = Tool::spawn(&tool_args, dir.path("stderr-1"));
    wait_until("some lines", &tool, || count_lines(&out) >= 500);
    tool.signal(libc::SIGKILL);
    let status = tool.wait_exit();
    assert_eq!(status.code(), None, "killed by a signal");

    let tool = Tool::spawn(&tool_args, dir.path("stderr-2"));
    let expected: HashSet<&String> = all.iter().collect();
    wait_until("every message on disk", &tool, || {
        let lines = read_lines(&out);
        let got: HashSet<&String> = lines.values().flatten().collect();
        expected.iter().all(|e| got.contains(e))
    });
    let log = tool.term();
    // Duplicates are allowed; anything else must be a record torn by the kill.
    for line in read_lines(&out).values().flatten() {
        assert!(
            expected.contains(line) || all.iter().any(|b| b.starts_with(line.as_str())),
            "unexpected line {line:?}\n{log}"
        );
    }
    assert_all_finished(&node, "crashy");
}

#[test]
fn a_backlog_is_synced_in_batches_of_most_of_max_in_flight() {
    // go-nsq's starvation rule (85% of RDY held by the handler) decides when nsq_to_file syncs:
    // 1,000 waiting messages with --max-in-flight=200 take a handful of fsyncs, not one each
    // (the reader reads ahead of the logger; what it has queued is not the handler's yet).
    let node = TestNode::start(node_options());
    let dir = TempDir::new("batches");
    let out = dir.path("out");
    let all = bodies("b", 1000);
    publish(&node, "batches", &all);
    let tool = Tool::spawn(
        &args(
            &node,
            &out,
            &["--topic=batches", "--sync-interval=1h", "--max-in-flight=200"],
        ),
        dir.path("stderr"),
    );
    wait_until("1000 lines written", &tool, || count_lines(&out) >= 1000);
    let log = tool.term();
    let syncs = log.matches("[batches/nsq_to_file] syncing ").count();
    assert!(
        (2..=12).contains(&syncs),
        "{syncs} syncs for 1,000 messages:\n{log}"
    );
    assert_all_finished(&node, "batches");
}

#[test]
fn sigterm_exits_zero_with_everything_on_disk_and_finished() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("sigterm");
    let out = dir.path("out");
    // A long sync interval: only the SIGTERM path syncs and FINs.
    let tool = Tool::spawn(
        &args(
            &node,
            &out,
            &["--topic=drain", "--sync-interval=1h", "--max-in-flight=1000"],
        ),
        dir.path("stderr"),
    );
    let all = bodies("d", 400);
    publish(&node, "drain", &all);
    wait_until("400 lines written", &tool, || count_lines(&out) >= 400);
    let log = tool.term();
    let mut got: Vec<String> = read_lines(&out).values().flatten().cloned().collect();
    got.sort();
    assert_eq!(got, all, "{log}");
    assert_all_finished(&node, "drain");
}

#[test]
fn a_restarted_broker_is_reconnected() {
    let node = TestNode::start(node_options());
    let addr = node.addr;
    let dir = TempDir::new("restart");
    let out = dir.path("out");
    let tool = Tool::spawn(&args(&node, &out, &["--topic=phoenix"]), dir.path("stderr"));
    let before = bodies("before", 100);
    publish(&node, "phoenix", &before);
    wait_until("100 lines", &tool, || count_lines(&out) >= 100);
    std::thread::sleep(Duration::from_millis(300)); // a sync interval: FIN'd before the stop
    node.stop();

    let mut config = NodeConfig::for_tests(node_options());
    config.tcp_address = addr.into();
    let deadline = Instant::now() + WAIT;
    let node = loop {
        match Node::start(config.clone()) {
            Ok(n) => break n,
            Err(e) => {
                assert!(Instant::now() < deadline, "restart on {addr}: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let after = bodies("after", 100);
    {
        let mut c = common::Client::connect(addr);
        let refs: Vec<&[u8]> = after.iter().map(|b| b.as_bytes()).collect();
        c.mpub("phoenix", &refs);
        c.expect_ok();
    }
    wait_until("200 lines", &tool, || count_lines(&out) >= 200);
    let log = tool.term();
    assert!(log.contains("re-connecting in"), "{log}");
    let mut got: Vec<String> = read_lines(&out).values().flatten().cloned().collect();
    got.sort();
    let mut expected = [before, after].concat();
    expected.sort();
    assert_eq!(got, expected);
    node.shutdown();
    node.join().unwrap();
}

#[test]
fn an_unusable_output_dir_is_a_clear_fatal_error() {
    let dir = TempDir::new("bad-dir");
    let file = dir.path("a-file");
    fs::write(&file, b"x").unwrap();
    let out = file.join("sub");
    let mut tool = Tool::spawn(
        &[
            "--nsqd-tcp-address=127.0.0.1:1".to_string(),
            "--topic=t".to_string(),
            format!("--output-dir={}", out.display()),
        ],
        dir.path("stderr"),
    );
    let status = tool.wait_exit();
    let log = tool.stderr();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("FATAL: --output-dir") && log.contains("unable to create"),
        "{log}"
    );
}

/// The tool run to its end: exit code and stdout + stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_squall-to-file"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// Go's standard logger line: `2006/01/02 15:04:05 <msg>`.
fn assert_std_log_line(text: &str, msg: &str) {
    let line = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("one line: {text:?}"));
    assert!(!line.contains('\n'), "one line: {text:?}");
    let (stamp, rest) = line.split_at("2006/01/02 15:04:05".len());
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    assert_eq!(shape, "0000/00/00 00:00:00", "{text:?}");
    assert_eq!(rest, format!(" {msg}"), "{text:?}");
}

#[test]
fn startup_checks_and_version() {
    let (code, text) = run_to_exit(&["-version"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("nsq_to_file v1.3.0 compatible"), "{text}");
    // nsq_to_file's own checks: log.Fatal with its message, exit 1.
    for (args, msg) in [
        (
            &["--topic=t"][..],
            "--nsqd-tcp-address or --lookupd-http-address required.",
        ),
        (
            &["--nsqd-tcp-address=127.0.0.1:1", "--topic=t", "--gzip-level=10"][..],
            "invalid --gzip-level value (10), should be 1-9",
        ),
        (
            &["--nsqd-tcp-address=127.0.0.1:1"][..],
            "--topic or --topic-pattern required",
        ),
        (&["--version", "extra", "x"][..], "unknown arguments: [extra x]"),
        (&["--version", "--log-level=loud"][..], "--log-level is invalid"),
        (&["--channel=", "--topic=t"][..], "--channel is required"),
        (
            &["--nsqd-tcp-address=127.0.0.1:1", "--topic-pattern=x"][..],
            "--lookupd-http-address must be specified when no --topic specified",
        ),
    ] {
        let (code, text) = run_to_exit(args);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert_std_log_line(&text, msg);
    }
    // What Go's flag package refuses: a usage error, exit 2.
    let (code, text) = run_to_exit(&["--nsqd-tcp-address=127.0.0.1:1", "--topic=t", "--gzip-level=x"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("gzip-level"), "{text}");
}

/// The tool with `args` until `want` shows in its log, then SIGTERM (exit 0); the log.
fn run_until_logged(dir: &TempDir, name: &str, args: &[String], want: &str) -> String {
    let tool = Tool::spawn(args, dir.path(name));
    wait_until(want, &tool, || tool.stderr().contains(want));
    tool.term()
}

#[test]
fn what_nsq_to_file_refuses_later_or_never_does_not_stop_the_start() {
    let dir = TempDir::new("late-checks");
    let out = dir.path("out");
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "--nsqd-tcp-address=127.0.0.1:1".to_string(),
            "--topic=t".to_string(),
            format!("--output-dir={}", out.display()),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // go-nsq's NewConsumer refuses these when the topic's logger is made; the tool runs on.
    run_until_logged(
        &dir,
        "mif",
        &base(&["--max-in-flight=-1"]),
        "ERROR: couldn't create logger for new topic t: invalid MaxInFlight ! -1 < 0",
    );
    run_until_logged(
        &dir,
        "heartbeat",
        &base(&["--consumer-opt=heartbeat_interval,2m"]),
        "ERROR: couldn't create logger for new topic t: HeartbeatInterval 2m0s must be less than ReadTimeout 1m0s",
    );
    // A pattern that does not compile matches nothing.
    run_until_logged(
        &dir,
        "pattern",
        &base(&["--topic-pattern=("]),
        "WARNING: skipping topic t (doesn't match pattern ()",
    );
    // One address with a comma in it, as Go's StringArray keeps it.
    run_until_logged(
        &dir,
        "comma",
        &[
            "--nsqd-tcp-address=127.0.0.1:1,127.0.0.1:2".to_string(),
            "--topic=t".to_string(),
            format!("--output-dir={}", out.display()),
        ],
        "[t/nsq_to_file] (127.0.0.1:1,127.0.0.1:2) connecting to nsqd",
    );
    // Options go-nsq's Config.Set refuses are left at their defaults, with a warning.
    let log = run_until_logged(
        &dir,
        "opts",
        &base(&["--consumer-opt=bogus,1", "--consumer-opt=read_timeout,1ms"]),
        "connecting to nsqd",
    );
    assert!(
        log.contains("WARNING: --consumer-opt=bogus,1 ignored: invalid option bogus"),
        "{log}"
    );
    assert!(
        log.contains("WARNING: --consumer-opt=read_timeout,1ms ignored: invalid read_timeout ! 1ms < 100ms"),
        "{log}"
    );
    // nsq_to_file's router panics on its sync ticker: exit 2 once the topic's logger starts.
    let mut tool = Tool::spawn(&base(&["--sync-interval=0"]), dir.path("sync"));
    let status = tool.wait_exit();
    let log = tool.stderr();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("panic: non-positive interval for NewTicker"),
        "{log}"
    );
}

/// A loopback stand-in for nsqlookupd's HTTP API (spec B.3 shapes): `/topics` lists `topics`,
/// `/lookup` names `producer_port` on 127.0.0.1 for every topic. Serves until dropped.
struct FakeLookupd {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeLookupd {
    fn start(topics: &[&str], producer_port: u16) -> FakeLookupd {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let topics_json = serde_json::json!({ "topics": topics }).to_string();
        let lookup_json = serde_json::json!({
            "channels": ["nsq_to_file"],
            "producers": [{
                "remote_address": "127.0.0.1:40000", "hostname": "fake",
                "broadcast_address": "127.0.0.1", "tcp_port": producer_port,
                "http_port": 1, "version": "1.3.0",
            }],
        })
        .to_string();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut req = [0u8; 2048];
                let n = s.read(&mut req).unwrap_or(0);
                let req = String::from_utf8_lossy(&req[..n]);
                let body = if req.starts_with("GET /topics ") {
                    &topics_json
                } else {
                    &lookup_json
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            }
        });
        FakeLookupd {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeLookupd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn topics_matching_the_pattern_are_discovered_through_lookupd() {
    let node = TestNode::start(node_options());
    let lookupd = FakeLookupd::start(&["disc-a", "disc-b", "other"], node.addr.port());
    let dir = TempDir::new("lookupd");
    let out = dir.path("out");
    let (a, b, other) = (bodies("a", 50), bodies("b", 60), bodies("o", 10));
    publish(&node, "disc-a", &a);
    publish(&node, "disc-b", &b);
    publish(&node, "other", &other);
    let tool = Tool::spawn(
        &[
            format!("--lookupd-http-address=http://{}", lookupd.addr),
            format!("--output-dir={}", out.display()),
            "--topic-pattern=^disc-".to_string(),
            "--topic-refresh=200ms".to_string(),
            "--sync-interval=100ms".to_string(),
            "--log-level=debug".to_string(),
            "--consumer-opt=lookupd_poll_interval,1s".to_string(),
            "--filename-format=<TOPIC>.log".to_string(),
        ],
        dir.path("stderr"),
    );
    wait_until("110 lines", &tool, || count_lines(&out) >= 110);
    std::thread::sleep(Duration::from_millis(500)); // further refreshes add nothing
    let log = tool.term();
    let files = read_lines(&out);
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, ["disc-a.log", "disc-b.log"], "{log}");
    assert_eq!(files["disc-a.log"].len(), 50);
    assert_eq!(files["disc-b.log"].len(), 60);
    assert!(log.contains("querying nsqlookupd"), "{log}");
    // nsq_to_file warns about every skipped topic, on every refresh.
    assert!(
        log.contains("WARNING: skipping topic other (doesn't match pattern ^disc-)"),
        "{log}"
    );
}

#[test]
fn a_full_disk_is_fatal_and_nothing_unwritten_is_finished() {
    let node = TestNode::start(node_options());
    let dir = TempDir::new("disk-full");
    let out = dir.path("out");
    fs::create_dir_all(&out).unwrap();
    // Every write to /dev/full fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", out.join("full.log")).unwrap();
    let mut tool = Tool::spawn(
        &args(&node, &out, &["--topic=full", "--filename-format=full.log"]),
        dir.path("stderr"),
    );
    publish(&node, "full", &bodies("f", 3));
    let status = tool.wait_exit();
    let log = tool.stderr();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("FATAL: [full/nsq_to_file] writing message to disk: No space left on device"),
        "{log}"
    );
    // Not FIN'd: all three come back to the channel after the message timeout.
    let mut c = node.client();
    c.sub("full", "nsq_to_file");
    c.cmd("RDY 10");
    let mut got: Vec<Vec<u8>> = (0..3).map(|_| c.read_message().body).collect();
    got.sort();
    assert_eq!(
        got,
        [b"f-000000".to_vec(), b"f-000001".to_vec(), b"f-000002".to_vec()]
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: PathBuf) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "to_file test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for (name, client) in [("server", false), ("client", true)] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            if client {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// A node that grants TLS, snappy and deflate, asking clients for `client_auth`.
    fn node(&self, client_auth: squall::tls::ClientAuth) -> TestNode {
        let options = Options {
            snappy: true,
            deflate: true,
            tls_enabled: true,
            ..node_options()
        };
        let mut config = NodeConfig::for_tests(options);
        config.tls = Some(
            squall::tls::server_config(&squall::tls::TlsFiles {
                cert: &self.path("server.pem"),
                key: &self.path("server.key"),
                root_ca: &self.path("ca.pem"),
                client_auth,
                min_version: squall::config::TlsMinVersion::Tls10,
            })
            .unwrap(),
        );
        TestNode::start_config(config)
    }
}

/// The tool's connection in `/stats`: the client of `channel` whose user agent is nsq_to_file's.
fn tool_client_stats(node: &TestNode, topic: &str) -> Option<serde_json::Value> {
    let body = common::http_get(node.http_addr(), &format!("/stats?format=json&topic={topic}"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stats = v.get("data").unwrap_or(&v);
    stats["topics"]
        .as_array()?
        .iter()
        .filter(|t| t["topic_name"] == topic)
        .flat_map(|t| t["channels"].as_array().into_iter().flatten())
        .flat_map(|c| c["clients"].as_array().into_iter().flatten())
        .find(|c| {
            c["user_agent"]
                .as_str()
                .is_some_and(|ua| ua.starts_with("nsq_to_file/"))
        })
        .cloned()
}

#[test]
fn tls_snappy_and_deflate_are_negotiated_and_carry_every_message() {
    let dir = TempDir::new("layers");
    let pki = Pki::new(dir.path("pki"));
    let node = pki.node(squall::tls::ClientAuth::None);
    let ca = format!("--consumer-opt=tls_root_ca_file,{}", pki.path("ca.pem"));
    let cases: [(&str, Vec<&str>, &[&str]); 5] = [
        ("snappy", vec!["--consumer-opt=snappy"], &["snappy"]),
        (
            "deflate",
            vec!["--consumer-opt=deflate,true", "--consumer-opt=deflate_level,3"],
            &["deflate"],
        ),
        ("tls", vec!["--consumer-opt=tls_v1", &ca], &["tls"]),
        (
            "tls-snappy",
            vec!["--consumer-opt=tls_v1", &ca, "--consumer-opt=snappy"],
            &["tls", "snappy"],
        ),
        (
            // go-nsq's spelling with dashes works too; --max-in-flight is not capped at nsqd's
            // max RDY (the broker caps RDY itself).
            "tls-deflate",
            vec![
                "--consumer-opt=tls-v1",
                &ca,
                "--consumer-opt=deflate",
                "--max-in-flight=5000",
            ],
            &["tls", "deflate"],
        ),
    ];
    for (name, opts, features) in cases {
        let topic = format!("layers-{name}");
        let out = dir.path(&format!("out-{name}"));
        let mut args = args(&node, &out, &[&format!("--topic={topic}")]);
        args.retain(|a| a != "--log-level=debug");
        args.extend(opts.iter().map(|s| s.to_string()));
        let mut all = bodies(name, 150);
        // More than one TLS record, one snappy chunk and one read of the socket.
        all.push("x".repeat(300_000));
        publish(&node, &topic, &all);
        let tool = Tool::spawn(&args, dir.path(&format!("stderr-{name}")));
        wait_until("every line", &tool, || count_lines(&out) >= all.len());
        let client = tool_client_stats(&node, &topic).expect("the tool's connection in /stats");
        for feature in ["tls", "snappy", "deflate"] {
            assert_eq!(
                client[feature].as_bool(),
                Some(features.contains(&feature)),
                "{name}: {feature} in {client}"
            );
        }
        if features.contains(&"tls") {
            // go-nsq's own tls.Config (made by the tls_* options) stops at TLS 1.2.
            assert_eq!(client["tls_version"], "TLS1.2", "{client}");
        }
        let log = tool.term();
        let mut got: Vec<String> = read_lines(&out).values().flatten().cloned().collect();
        got.sort();
        let mut want = all.clone();
        want.sort();
        assert!(got == want, "{name}: lines differ\n{log}");
        for feature in features {
            let layer = match *feature {
                "tls" => "TLS",
                "snappy" => "Snappy",
                _ => "Deflate",
            };
            assert!(
                log.contains(&format!(
                    "INFO: [{topic}/nsq_to_file] ({}) upgrading to {layer}",
                    node.addr
                )),
                "{log}"
            );
        }
        // nsq_to_file logs its syncs at INFO.
        assert!(
            log.contains(&format!("INFO: [{topic}/nsq_to_file] syncing ")),
            "{log}"
        );
        assert!(!log.contains("DEBUG"), "{log}");
        assert_all_finished(&node, &topic);
    }
}

#[test]
fn tls_verification_follows_go_nsqs_options() {
    let dir = TempDir::new("tls-verify");
    let pki = Pki::new(dir.path("pki"));
    let node = pki.node(squall::tls::ClientAuth::RequireVerify);
    let ca = format!("--consumer-opt=tls_root_ca_file,{}", pki.path("ca.pem"));
    let cert = format!("--consumer-opt=tls_cert,{}", pki.path("client.pem"));
    let key = format!("--consumer-opt=tls_key,{}", pki.path("client.key"));
    let run = |name: &str, opts: &[&str]| -> (usize, String) {
        let topic = format!("verify-{name}");
        let out = dir.path(&format!("out-{name}"));
        let mut args = args(
            &node,
            &out,
            &[&format!("--topic={topic}"), "--consumer-opt=tls_v1"],
        );
        args.extend(opts.iter().map(|s| s.to_string()));
        publish(&node, &topic, &bodies(name, 20));
        let tool = Tool::spawn(&args, dir.path(&format!("stderr-{name}")));
        wait_until("all lines or a failed connection", &tool, || {
            count_lines(&out) >= 20 || tool.stderr().contains("error connecting to nsqd")
        });
        let log = tool.term();
        (count_lines(&out), log)
    };
    // The CA and a client certificate: verified both ways.
    let (lines, log) = run("ca-cert", &[&ca, &cert, &key]);
    assert_eq!(lines, 20, "{log}");
    // Any server certificate, as Go's InsecureSkipVerify; the client certificate still counts.
    let (lines, log) = run(
        "insecure",
        &["--consumer-opt=tls_insecure_skip_verify", &cert, &key],
    );
    assert_eq!(lines, 20, "{log}");
    // The system's CAs do not know this one.
    let (lines, log) = run("no-ca", &[&cert, &key]);
    assert_eq!(lines, 0, "{log}");
    assert!(log.contains("error connecting to nsqd"), "{log}");
    // The server asks for a client certificate.
    let (lines, log) = run("no-cert", &[&ca]);
    assert_eq!(lines, 0, "{log}");
    assert!(log.contains("error connecting to nsqd"), "{log}");
}
