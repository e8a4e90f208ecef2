//! Squall's broker brain, without I/O.
//!
//! # Layout
//! - `auth`: AUTH's queries, the auth server's answers and the authorization check.
//! - `error`: protocol errors with their wire code and fatality.
//! - `names`: topic and channel name rules.
//! - `message`: messages, IDs, the per-shard ID generator.
//! - `options`: nsqd-compatible options and defaults.
//! - `protocol`: the NSQ V2 codec (one `decode`, frame encoders, IDENTIFY); `protocol::fuzzing`
//!   holds the checks the fuzz targets (`fuzz/`) and the corpus replay test run.
//!
//! # Invariants
//! - Nothing here performs a syscall or spawns a thread; everything is testable with plain values.
//! - A message body is allocated once and shared by reference count wherever it goes.

pub mod auth;
pub mod broker;
pub mod channel;
pub mod error;
mod idhash;
pub mod message;
pub mod names;
pub mod options;
pub mod protocol;
pub mod topic;

/// The nsqd version Squall speaks for (IDENTIFY replies, `/info`).
pub const NSQD_VERSION: &str = "1.3.0";
pub mod backend;
pub mod latency;
pub mod spill;
pub mod stats;
