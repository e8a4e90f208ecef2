//! Squall's other protocol engines, without I/O of their own: bytes in, bytes out. The engines
//! in `bins` own the sockets.
//!
//! # Layout
//! - `httpd`: HTTP/1.1 server-side framing (httparse), Go-compatible responses, httprouter's
//!   routing rules, nsq's V1 JSON conventions; shared by every HTTP API.
//! - `lookupd`: nsqlookupd: the TCP protocol V1 (server and client side), the registration
//!   database, the HTTP API.
//! - `nsqd`: nsqd's HTTP API handlers.
//! - `grpc`: gRPC over HTTP/2 (h2 over in-memory transports, prost types): Broker, Admin,
//!   health and reflection.
//! - `fuzzing`: the checks the fuzz targets (`fuzz/`) and the corpus replay test run.

#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod httpd;
pub mod lookupd;
pub mod nsqd;
