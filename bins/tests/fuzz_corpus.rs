//! Every committed fuzz corpus file passes the same check its fuzz target runs
//! (`fuzz/fuzz_targets/`), so findings that became corpus files stay fixed on stable. One file for
//! every parser crate: this package depends on all of them.

use std::path::PathBuf;

/// The corpus files of `target`; fails when there are none, so a moved corpus cannot pass.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    for path in corpus(target) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}

#[test]
fn v2_decode() {
    replay("v2_decode", squall_core::protocol::fuzzing::v2_decode);
}

#[test]
fn identify_json() {
    replay("identify_json", squall_core::protocol::fuzzing::identify_json);
}

#[test]
fn http_request() {
    replay("http_request", squall_rpc::fuzzing::http_request);
}

#[test]
fn lookupd_v1() {
    replay("lookupd_v1", squall_rpc::fuzzing::lookupd_v1);
}

#[test]
fn diskqueue_segment() {
    replay("diskqueue_segment", squall_diskqueue::fuzzing::segment);
}

#[test]
fn diskqueue_meta() {
    replay("diskqueue_meta", squall_diskqueue::fuzzing::meta);
}
