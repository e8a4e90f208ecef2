//! gRPC over HTTP/2 on the shard loop, without I/O of its own.
//!
//! h2 runs over an in-memory `transport::Pipe` that the front in `bins` fills from the ring and
//! drains into it; every connection and every call is a task on the shard's local executor
//! (`futures`' `LocalPool`, run until stalled once per event), so there is no second reactor.
//! Calls reach the broker through `local::Bridge`, which the front submits with
//! `Broker::submit` like HTTP requests.
//!
//! # Layout
//! - `pb`: prost types generated from `rpc/proto` (protox, no protoc) and the descriptor set.
//! - `status`: status codes, trailers, `grpc-message` percent-encoding.
//! - `framing`: length-prefixed messages (compressed flag, size limit).
//! - `timeout`: the `grpc-timeout` header.
//! - `transport`: the in-memory `AsyncRead`/`AsyncWrite` h2 runs on, bounded both ways.
//! - `local`: per-shard timers (deadlines) and the broker request bridge.
//! - `call`: one call on one stream: read requests, send responses, trailers.
//! - `server`: h2 connection driver, limits, the `:path` dispatcher, deadlines.
//! - `publish`, `subscribe`, `admin`, `health`, `reflection`: the services.
//!
//! Invariants: a call's memory is bounded by one message in each direction (responses wait
//! for flow-control room); a connection's by `transport`'s caps and h2's windows and stream
//! limit; a client that never reads stalls only its own connection.

pub mod admin;
pub mod call;
pub mod framing;
pub mod health;
pub mod local;
pub mod pb;
pub mod publish;
pub mod reflection;
pub mod server;
pub mod status;
pub mod subscribe;
pub mod timeout;
pub mod transport;
