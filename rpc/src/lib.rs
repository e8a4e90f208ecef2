//! Squall's other protocol engines: nsqd's HTTP API, gRPC, and nsqlookupd's protocols.
//!
//! Not built yet: see the README's "Not implemented yet".
