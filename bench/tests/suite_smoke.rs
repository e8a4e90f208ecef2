//! Every squall-bench mode runs against an in-process Squall node and its counts add up
//! (published = consumed, fan-out = channels × published, percentiles ordered); the suite runs end
//! to end and writes its JSON, Markdown and SVG; a broker that is not there is a clean error.
//! Counts are tiny so this takes seconds; nothing here asserts on speed.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use squall::{Node, NodeConfig};
use squall_core::options::Options;

/// One node for the whole file (tests use distinct topics).
fn node_addr() -> String {
    node_addrs().0.clone()
}

/// The node's NSQ TCP and gRPC addresses.
fn node_addrs() -> &'static (String, String) {
    static NODE: OnceLock<(String, String)> = OnceLock::new();
    NODE.get_or_init(|| {
        let options = Options {
            mem_queue_size: 1_000_000,
            ..Options::default()
        };
        let node = Node::start(NodeConfig::for_tests(options)).expect("start node");
        let addrs = (
            node.tcp_address().to_string(),
            node.grpc_address().expect("gRPC is on in tests").to_string(),
        );
        // The node serves until the test process exits.
        std::mem::forget(node);
        addrs
    })
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_squall-bench"))
        .args(args)
        .output()
        .expect("run squall-bench")
}

fn bench_json(args: &[&str]) -> Value {
    let addr = node_addr();
    let pid = std::process::id().to_string();
    let mut all = args.to_vec();
    all.extend(["--nsqd-tcp-address", &addr, "--pid", &pid]);
    json_of(&all)
}

/// Runs squall-bench with `--json` and parses its report; a failed run fails the test.
fn json_of(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = bench(&all);
    assert!(
        out.status.success(),
        "squall-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn n(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn pub_then_sub_counts_add_up() {
    let p = bench_json(&[
        "pub",
        "--topic",
        "smoke_ps",
        "--count",
        "20000",
        "--batch",
        "200",
        "--size",
        "100",
        "--connections",
        "2",
        "--seconds",
        "20",
    ]);
    assert_eq!(n(&p, "published"), 20000.0);
    assert!(n(&p, "publish_msgs_per_s") > 0.0);
    assert!(p["broker"]["cpu_s"].is_number());
    let s = bench_json(&["sub", "--topic", "smoke_ps", "--count", "20000"]);
    assert_eq!(n(&s, "consumed"), 20000.0);
    assert_eq!(n(&s, "missing"), 0.0);
}

#[test]
fn single_pub_pipelined() {
    let p = bench_json(&[
        "pub",
        "--topic",
        "smoke_pub1",
        "--count",
        "3000",
        "--batch",
        "1",
        "--window",
        "32",
        "--connections",
        "3",
        "--seconds",
        "20",
    ]);
    assert_eq!(n(&p, "published"), 3000.0);
}

#[test]
fn pubsub_latency_percentiles_are_ordered() {
    let r = bench_json(&[
        "pubsub",
        "--topic",
        "smoke_lat",
        "--rate",
        "2000",
        "--seconds",
        "1",
        "--batch",
        "1",
        "--size",
        "64",
        "--window",
        "256",
    ]);
    let published = n(&r, "published");
    assert!(published >= 1000.0, "published {published}");
    assert_eq!(n(&r, "consumed"), published);
    let l = &r["latency"];
    assert_eq!(n(l, "count"), published);
    let ps: Vec<f64> = ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"]
        .iter()
        .map(|k| n(l, k))
        .collect();
    assert!(ps.windows(2).all(|w| w[0] <= w[1]), "{ps:?}");
    assert!(ps[0] > 0.0);
}

#[test]
fn fanout_delivers_to_every_channel() {
    let r = bench_json(&[
        "fanout",
        "--topic",
        "smoke_fan",
        "--channels",
        "3",
        "--count",
        "2000",
        "--batch",
        "100",
        "--size",
        "32",
    ]);
    assert_eq!(n(&r, "published"), 2000.0);
    assert_eq!(n(&r, "consumed"), 6000.0);
}

#[test]
fn idle_connections_are_counted() {
    let r = bench_json(&[
        "connections",
        "--topic",
        "smoke_idle",
        "--connections",
        "50",
        "--hold-seconds",
        "0.6",
    ]);
    assert_eq!(n(&r["connections"], "connections"), 50.0);
}

#[test]
fn unreachable_broker_is_a_clean_error() {
    // Port 1 on loopback: nothing listens there.
    let out = bench(&[
        "pub",
        "--nsqd-tcp-address",
        "127.0.0.1:1",
        "--seconds",
        "1",
        "--count",
        "10",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn suite_quick_runs_end_to_end() {
    let addr = node_addr();
    let pid = std::process::id().to_string();
    let dir: PathBuf = std::env::temp_dir().join(format!("squall-bench-smoke-{pid}"));
    let out = bench(&[
        "suite",
        "--quick",
        "--squall-address",
        &addr,
        "--squall-pid",
        &pid,
        "--reps",
        "1",
        "--scale",
        "0.01",
        "--connections",
        "20",
        "--latency-rate",
        "2000",
        "--out",
        dir.to_str().expect("utf-8 temp path"),
    ]);
    assert!(
        out.status.success(),
        "suite failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).expect("results.json"))
        .expect("valid JSON");
    let scenarios = json["scenarios"].as_array().expect("scenarios");
    assert!(scenarios.len() >= 10);
    let disk = scenarios
        .iter()
        .find(|s| s["scenario"]["mode"] == "disk")
        .expect("a disk-mode scenario");
    assert!(disk["squall"]["status"]["not_supported"].is_string());
    let md = std::fs::read_to_string(dir.join("results.md")).expect("results.md");
    assert!(md.contains("| scenario | metric |"));
    assert!(md.contains("publish msgs/s"));
    for svg in ["throughput.svg", "latency.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).expect(svg);
        assert!(text.starts_with("<svg"), "{svg}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn grpc_json(args: &[&str]) -> Value {
    let grpc = node_addrs().1.clone();
    let mut all = args.to_vec();
    all.extend(["--grpc-address", &grpc]);
    json_of(&all)
}

#[test]
fn grpc_publish_then_subscribe_counts_add_up() {
    let p = grpc_json(&[
        "grpc-pub",
        "--topic",
        "smoke_grpc",
        "--count",
        "5000",
        "--batch",
        "50",
        "--window",
        "4",
        "--connections",
        "2",
        "--seconds",
        "20",
    ]);
    assert_eq!(n(&p, "published"), 5000.0);
    assert!(n(&p, "publish_msgs_per_s") > 0.0);
    let s = grpc_json(&["grpc-sub", "--topic", "smoke_grpc", "--count", "5000"]);
    assert_eq!(n(&s, "consumed"), 5000.0);
    assert_eq!(n(&s, "missing"), 0.0);
}
