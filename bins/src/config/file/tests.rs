use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::CommandFactory;

use super::*;
use crate::config::flags::Cli;
use crate::config::keys::{NSQD, NSQLOOKUPD, NSQ_TO_FILE};
use crate::config::{parse_args_with_hostname, DaemonConfig};

const HOST: &str = "cfg-host.example";

/// A config file in a fresh temp dir, removed on drop.
struct ConfFile {
    dir: PathBuf,
    path: String,
}

impl ConfFile {
    fn new(name: &str, text: &str) -> ConfFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("squall-conf-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("squalld.conf");
        std::fs::write(&path, text).unwrap();
        ConfFile {
            path: path.to_string_lossy().into_owned(),
            dir,
        }
    }
}

impl Drop for ConfFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn argv(args: &[&str]) -> Vec<OsString> {
    std::iter::once("squalld")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

fn squalld(text: &str, args: &[&str]) -> Result<DaemonConfig, String> {
    let conf = ConfFile::new("squalld", text);
    let mut all = vec!["--config".to_string(), conf.path.clone()];
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let merged = args_with_config_file(argv(&all), &NSQD)?;
    parse_args_with_hostname(merged, HOST).map_err(|e| e.to_string())
}

fn squalld_err(text: &str) -> String {
    match squalld(text, &[]) {
        Ok(c) => panic!("{text:?} should fail, got {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_nsqd_key_sets_its_flag() {
    let c = squalld(
        r#"
        log_level = "WARN"
        log_prefix = "[squall] "
        verbose = true
        id = 7
        worker_id = false
        tcp_address = "127.0.0.1:5150"
        http_address = ""
        https_address = "127.0.0.1:5152"
        broadcast_address = "b.example"
        broadcast_tcp_port = 4150
        broadcast_http_port = "4151"
        http_client_connect_timeout = "3s"
        http_client_request_timeout = 7000
        topology_region = "eu"
        topology_zone = "eu-1a"
        enable_experiment = ["topology-aware-consumption"]
        nsqlookupd_tcp_addresses = ["l1:4160", "l2:4160"]
        auth_http_addresses = "a1:4181,a2:4181"
        auth_http_request_method = "post"
        data_path = "/var/lib/squalld"
        mem_queue_size = 0
        max_bytes_per_file = 1024
        sync_every = 1
        sync_timeout = "250ms"
        queue_scan_worker_pool_max = 8
        queue_scan_selection_count = 40
        msg_timeout = "90s"
        max_msg_timeout = "1h"
        max_msg_size = 0x100
        max_body_size = 1_000_000
        max_req_timeout = "2.5s"
        max_heartbeat_interval = "90s"
        max_rdy_count = 50
        max_output_buffer_size = 131072
        max_output_buffer_timeout = "1s"
        min_output_buffer_timeout = "0"
        output_buffer_timeout = 100
        max_channel_consumers = 3
        tls_cert = "c.pem"
        tls_key = "k.pem"
        tls_client_auth_policy = ""
        tls_root_ca_file = "/ca.pem"
        tls_required = "tcp-https"
        tls_min_version = "tls1.2"
        deflate = false
        max_deflate_level = 9
        snappy = "false"
        statsd_address = "127.0.0.1:8125"
        statsd_interval = "10s"
        statsd_mem_stats = false
        statsd_prefix = "squall.%s"
        statsd_udp_packet_size = 1400
        statsd_exclude_ephemeral = true
        e2e_processing_latency_percentiles = [1, 0.99, 0.5]
        e2e_processing_latency_window_time = "1m"
        shards = 3
        grpc_address = "127.0.0.1:5153"
        "#,
        &[],
    )
    .unwrap();
    let o = &c.options;
    assert_eq!(c.log_level, "warn");
    assert_eq!(c.log_prefix, "[squall] ");
    assert!(c.verbose && !c.worker_id);
    assert_eq!(o.node_id, 7);
    assert_eq!(c.tcp_address, "127.0.0.1:5150");
    assert_eq!(c.http_address, "");
    assert_eq!(c.https_address, "127.0.0.1:5152");
    assert_eq!(c.broadcast_address, "b.example");
    assert_eq!((c.broadcast_tcp_port, c.broadcast_http_port), (4150, 4151));
    assert_eq!(c.http_client_connect_timeout_ms, 3_000);
    assert_eq!(c.http_client_request_timeout_ms, 7_000);
    assert_eq!(
        (c.topology_region.as_str(), c.topology_zone.as_str()),
        ("eu", "eu-1a")
    );
    assert_eq!(c.enable_experiments, ["topology-aware-consumption"]);
    assert_eq!(c.lookupd_tcp_addresses, ["l1:4160", "l2:4160"]);
    assert_eq!(c.auth_http_addresses, ["a1:4181", "a2:4181"]);
    assert_eq!(c.auth_http_request_method, "post");
    assert_eq!(c.data_path, "/var/lib/squalld");
    assert_eq!(o.mem_queue_size, 0);
    assert_eq!(
        (c.max_bytes_per_file, c.sync_every, c.sync_timeout_ms),
        (1024, 1, 250)
    );
    assert_eq!(
        (c.queue_scan_worker_pool_max, c.queue_scan_selection_count),
        (8, 40)
    );
    assert_eq!((o.msg_timeout_ms, o.max_msg_timeout_ms), (90_000, 3_600_000));
    assert_eq!(
        (o.max_msg_size, o.max_body_size, o.max_req_timeout_ms),
        (256, 1_000_000, 2_500)
    );
    assert_eq!((o.max_heartbeat_interval_ms, o.max_rdy_count), (90_000, 50));
    assert_eq!(
        (o.max_output_buffer_size, o.max_output_buffer_timeout_ms),
        (131_072, 1_000)
    );
    assert_eq!(
        (o.min_output_buffer_timeout_ms, o.output_buffer_timeout_ms),
        (0, 100)
    );
    assert_eq!(o.max_channel_consumers, 3);
    assert_eq!((c.tls_cert.as_str(), c.tls_key.as_str()), ("c.pem", "k.pem"));
    assert_eq!(c.tls_root_ca_file, "/ca.pem");
    assert_eq!(c.tls_required, crate::config::TlsRequired::RequiredExceptHttp);
    assert_eq!(c.tls_min_version, crate::config::TlsMinVersion::Tls12);
    assert!(!c.deflate && !c.snappy);
    assert_eq!(o.max_deflate_level, 9);
    assert_eq!(c.statsd_address, "127.0.0.1:8125");
    assert_eq!(c.statsd_interval_ms, 10_000);
    assert!(!c.statsd_mem_stats && c.statsd_exclude_ephemeral);
    assert_eq!(c.statsd_prefix, "squall.%s");
    assert_eq!(c.statsd_udp_packet_size, 1400);
    assert_eq!(c.e2e_processing_latency_percentiles, [1.0, 0.99, 0.5]);
    assert_eq!(c.e2e_processing_latency_window_time_ms, 60_000);
    assert_eq!(c.shards, 3);
    assert_eq!(c.grpc_address, "127.0.0.1:5153");
    assert_eq!(c.config_path.rsplit('/').next(), Some("squalld.conf"));
}

#[test]
fn flags_win_over_the_file_and_replace_lists_whole() {
    let text = r#"
        max_rdy_count = 50
        msg_timeout = "90s"
        snappy = false
        nsqlookupd_tcp_addresses = ["l1:4160", "l2:4160"]
    "#;
    let c = squalld(
        text,
        &[
            "-max-rdy-count",
            "60",
            "--snappy",
            "--lookupd-tcp-address=l3:4160",
        ],
    )
    .unwrap();
    assert_eq!(c.options.max_rdy_count, 60);
    assert_eq!(c.options.msg_timeout_ms, 90_000);
    assert!(c.snappy);
    assert_eq!(c.lookupd_tcp_addresses, ["l3:4160"]);
    // A flag before --config wins too: the file's flags always go first.
    let conf = ConfFile::new("order", text);
    let merged = args_with_config_file(argv(&["--max-rdy-count=70", "-config", &conf.path]), &NSQD).unwrap();
    let c = parse_args_with_hostname(merged, HOST).unwrap();
    assert_eq!(c.options.max_rdy_count, 70);
}

#[test]
fn empty_strings_nsqds_example_config_uses_keep_the_defaults() {
    // nsqd's own example config leaves these empty.
    let text = r#"
        tls_min_version = ""
        tls_cert = ""
        statsd_address = ""
        broadcast_address = ""
    "#;
    let c = squalld(text, &[]).unwrap();
    assert_eq!(c.tls_min_version, crate::config::TlsMinVersion::Tls10);
    assert!(c.tls_cert.is_empty() && c.statsd_address.is_empty());
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    let e = squalld_err("max_rdy_count = 5\nbogus_key = 1\n");
    assert!(e.starts_with("config file /"), "{e}");
    assert!(e.contains("squalld.conf: unknown key bogus_key"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = squalld_err("node_id = 5");
    assert!(
        e.ends_with("unknown key node_id (nsqd's key for --node-id is id)"),
        "{e}"
    );
    let e = squalld_err("lookupd_tcp_address = [\"a:1\"]");
    assert!(e.contains("is nsqlookupd_tcp_addresses"), "{e}");
    assert!(squalld_err("config = \"/x\"").contains("unknown key config"));
    assert!(squalld_err("version = true").contains("unknown key version"));
    assert!(squalld_err("[limits]\nmax_rdy_count = 5").contains("unknown key limits"));
}

#[test]
fn wrong_types_name_key_file_and_expected_type() {
    let e = squalld_err("max_rdy_count = \"lots\"");
    assert!(
        e.contains("squalld.conf: max_rdy_count: expected an integer, found the string \"lots\""),
        "{e}"
    );
    let e = squalld_err("tcp_address = 4150");
    assert!(
        e.ends_with("tcp_address: expected a string, found the integer 4150"),
        "{e}"
    );
    let e = squalld_err("msg_timeout = \"60\"");
    assert!(e.contains("msg_timeout: expected a duration"), "{e}");
    let e = squalld_err("snappy = 1");
    assert!(
        e.contains("snappy: expected a boolean (true or false), found the integer 1"),
        "{e}"
    );
    let e = squalld_err("log_level = \"loud\"");
    assert!(
        e.contains("log_level: expected one of \"debug\", \"info\""),
        "{e}"
    );
    let e = squalld_err("broadcast_tcp_port = 70000");
    assert!(e.contains("expected a port number in [0,65535]"), "{e}");
    let e = squalld_err("mem_queue_size = -1");
    assert!(e.contains("expected a non-negative integer"), "{e}");
    let e = squalld_err("nsqlookupd_tcp_addresses = [1, 2]");
    assert!(e.contains("expected an array of strings, found an array"), "{e}");
    let e = squalld_err("e2e_processing_latency_percentiles = [\"x\"]");
    assert!(e.contains("expected an array of numbers"), "{e}");
    let e = squalld_err("tls_required = \"maybe\"");
    assert!(e.contains("expected true, false or \"tcp-https\""), "{e}");
}

#[test]
fn out_of_range_values_fail_with_nsqds_checks() {
    assert!(squalld_err("id = 5000").contains("--node-id must be [0,1024)"));
    assert!(squalld_err("max_deflate_level = 0").contains("--max-deflate-level must be [1,9]"));
    assert!(squalld_err("shards = 0").contains("--shards must be [1,64]"));
    let e = squalld_err("e2e_processing_latency_percentiles = [1.5]");
    assert!(
        e.contains("invalid E2E processing latency percentile: 1.5"),
        "{e}"
    );
}

#[test]
fn malformed_files_say_where() {
    let e = squalld_err("max_rdy_count = 5\nmsg_timeout = \"60s\n");
    assert!(e.starts_with("failed to load config file /"), "{e}");
    assert!(e.contains(" - line 2, column "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = squalld_err("max_rdy_count = 5\nmax_rdy_count = 6\n");
    assert!(e.contains("line 2"), "{e}");
    let e = args_with_config_file(argv(&["--config=/nonexistent/squalld.conf"]), &NSQD).unwrap_err();
    assert_eq!(
        e,
        "failed to load config file /nonexistent/squalld.conf - No such file or directory (os error 2)"
    );
    let dir = std::env::temp_dir();
    let e = args_with_config_file(argv(&["--config", dir.to_str().unwrap()]), &NSQD).unwrap_err();
    assert!(e.ends_with("is a directory"), "{e}");
}

#[test]
fn version_and_help_skip_the_file() {
    for flag in ["-version", "--version=true", "-h", "--help"] {
        let args = argv(&["--config=/nonexistent", flag]);
        assert_eq!(
            args_with_config_file(args.clone(), &NSQD).unwrap(),
            args,
            "{flag}"
        );
    }
    let args = argv(&["--config=/nonexistent", "--version=false"]);
    assert!(args_with_config_file(args, &NSQD).is_err());
    // No --config, or an empty one: nothing changes.
    let args = argv(&["--max-rdy-count=1", "--config="]);
    assert_eq!(args_with_config_file(args.clone(), &NSQD).unwrap(), args);
}

#[test]
fn integer_durations_are_milliseconds_as_in_go_options() {
    let c = squalld("msg_timeout = 1500\nsync_timeout = 0", &[]).unwrap();
    assert_eq!(c.options.msg_timeout_ms, 1_500);
    assert_eq!(c.sync_timeout_ms, 0);
}

/// The NSQD table and squalld's clap definition describe the same flags with the same shapes.
#[test]
fn the_nsqd_table_matches_squallds_flags() {
    let cmd = Cli::command();
    let mut flags = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "config" | "version" | "help") {
            continue;
        }
        flags.push(long);
        let key = NSQD
            .key_for_flag(long)
            .unwrap_or_else(|| panic!("--{long} has no config key"));
        let boolish = matches!(key.kind, Kind::Bool | Kind::BoolOrTcpHttps);
        assert_eq!(arg.is_require_equals_set(), boolish, "--{long}: {:?}", key.kind);
        let list = matches!(key.kind, Kind::StrList | Kind::FloatList | Kind::Repeated);
        let appends = matches!(arg.get_action(), clap::ArgAction::Append);
        assert_eq!(appends, list, "--{long}: {:?}", key.kind);
    }
    assert_eq!(flags.len(), NSQD.keys.len());
    for key in NSQD.keys {
        assert!(flags.contains(&key.flag), "key {} names no flag", key.name);
        let renamed = key.name != key.flag.replace('-', "_");
        let nsqd_renames = [
            "id",
            "nsqlookupd_tcp_addresses",
            "auth_http_addresses",
            "e2e_processing_latency_percentiles",
        ];
        assert_eq!(renamed, nsqd_renames.contains(&key.name), "{}", key.name);
    }
}

/// The lookupd and to_file tables name real flags (their `--help` lists them) and nothing is
/// left out.
#[test]
fn the_lookupd_and_to_file_tables_match_their_help() {
    let lookupd_help = match crate::lookupd::parse_args(["squall-lookupd", "--help"]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("--help parses"),
    };
    let to_file_help = match crate::to_file::parse_args(["squall-to-file", "--help"], HOST) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("--help parses"),
    };
    for (schema, help) in [(&NSQLOOKUPD, lookupd_help), (&NSQ_TO_FILE, to_file_help)] {
        let mut listed: Vec<&str> = help
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("--"))
            .map(|w| w.split(['=', '[', ',', '\'']).next().unwrap_or(w))
            .filter(|w| !w.is_empty() && !matches!(*w, "config" | "version" | "help"))
            .collect();
        listed.sort_unstable();
        listed.dedup();
        let mut keys: Vec<&str> = schema.keys.iter().map(|k| k.flag).collect();
        keys.sort_unstable();
        assert_eq!(listed, keys, "{}", schema.tool);
        for key in schema.keys {
            assert_eq!(key.name, key.flag.replace('-', "_"), "{}", schema.tool);
        }
    }
}

#[test]
fn lookupd_and_to_file_files_take_effect() {
    let conf = ConfFile::new(
        "lookupd",
        "tcp_address = \"127.0.0.1:5160\"\ntombstone_lifetime = \"10s\"\nlog_level = \"error\"\n",
    );
    let merged = args_with_config_file(
        argv(&["--config", &conf.path, "--tcp-address=127.0.0.1:5161"]),
        &NSQLOOKUPD,
    )
    .unwrap();
    let c = crate::lookupd::parse_args(merged).unwrap();
    assert_eq!(c.tcp_address, "127.0.0.1:5161");
    assert_eq!(c.tombstone_lifetime, std::time::Duration::from_secs(10));
    assert_eq!(c.log_level, crate::lookupd::LogLevel::Error);

    let conf = ConfFile::new(
        "to_file",
        r#"
        nsqd_tcp_address = ["127.0.0.1:4150"]
        topic = ["a", "b"]
        consumer_opt = ["max_attempts,0"]
        gzip = true
        rotate_interval = "1h"
        "#,
    );
    // nsq_to_file's parser has no --config: the loader takes it out, in both spellings.
    let merged = args_with_config_file(argv(&["-config", &conf.path, "--topic=c"]), &NSQ_TO_FILE).unwrap();
    assert!(
        !merged.iter().any(|a| a.to_string_lossy().contains("config")),
        "{merged:?}"
    );
    let o = crate::to_file::parse_args(merged, HOST).unwrap();
    assert_eq!(o.topics, ["c"]);
    assert_eq!(o.nsqd_tcp_addresses, ["127.0.0.1:4150"]);
    assert_eq!(o.consumer.max_attempts, 0);
    assert!(o.gzip);
    assert_eq!(o.rotate_interval, std::time::Duration::from_secs(3600));
    let e = args_with_config_file(argv(&["--config", &conf.path]), &NSQLOOKUPD).unwrap_err();
    assert!(e.contains("unknown key consumer_opt"), "{e}");
}

/// `#key = value` settings of an example config, with the keys whose default depends on the
/// host left out.
fn example_settings(text: &str, host_dependent: &[&str]) -> (Vec<String>, String) {
    let mut keys = Vec::new();
    let mut uncommented = String::new();
    for line in text.lines() {
        let Some(setting) = line.strip_prefix('#') else {
            continue;
        };
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        keys.push(key.to_string());
        if !host_dependent.contains(&key) {
            uncommented.push_str(setting);
            uncommented.push('\n');
        }
    }
    (keys, uncommented)
}

/// The shipped example configs list every key, and the defaults they show are the real ones.
#[test]
fn the_example_configs_show_every_key_with_its_default() {
    let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/squalld.conf"));
    let (keys, uncommented) = example_settings(text, &["id", "broadcast_address", "shards"]);
    let mut expected: Vec<String> = NSQD.keys.iter().map(|k| k.name.to_string()).collect();
    expected.sort_unstable();
    let mut listed = keys.clone();
    listed.sort_unstable();
    assert_eq!(listed, expected);
    let from_file = squalld(&uncommented, &[]).unwrap();
    let defaults = parse_args_with_hostname(argv(&[]), HOST).unwrap();
    let mut file_values = crate::daemon::config_values(&from_file);
    let default_values = crate::daemon::config_values(&defaults);
    file_values.insert("id".into(), default_values["id"].clone());
    assert_eq!(file_values, default_values);

    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/squall-lookupd.conf"
    ));
    let (keys, uncommented) = example_settings(text, &["broadcast_address"]);
    let mut listed = keys;
    listed.sort_unstable();
    let mut expected: Vec<String> = NSQLOOKUPD.keys.iter().map(|k| k.name.to_string()).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    let conf = ConfFile::new("lookupd-example", &uncommented);
    let merged = args_with_config_file(argv(&["--config", &conf.path]), &NSQLOOKUPD).unwrap();
    let mut from_file = crate::lookupd::parse_args(merged).unwrap();
    let defaults = crate::lookupd::parse_args(argv(&[])).unwrap();
    from_file.config_path = String::new();
    assert_eq!(from_file, defaults);
}
