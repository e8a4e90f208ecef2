//! nsqlookupd's protocols (spec part B): the TCP protocol V1 that nsqd registers through, the
//! registration database, and the HTTP API consumers discover producers with. No I/O: the
//! engine in `bins` hands bytes in and writes out what comes back.
//!
//! # Layout
//! - `codec.rs`: V1 on the wire, server side ([`decode_command`], [`encode_response`]) and
//!   client side (`encode_*`, [`decode_response`]) for squalld's lookup loop.
//! - `peer.rs`: [`PeerInfo`] and the IDENTIFY request/response JSON.
//! - `tcp.rs`: one TCP connection ([`TcpSession`]): magic, commands applied to the database.
//! - `db.rs`: the [`RegistrationDb`], tombstones, inactivity.
//! - `http.rs`: the HTTP endpoints ([`LookupdHttp`]).
//! - `options.rs`: [`LookupdOptions`].
//!
//! # Invariants
//! - Every V1 error is fatal: its framed text is the connection's last output.
//! - Producers are never removed for inactivity or tombstones; those only hide them from
//!   answers, evaluated against the request's [`Clock`]. Only a disconnect or an UNREGISTER
//!   removes a producer, and registration keys outlive their producers.

mod codec;
mod db;
mod http;
mod options;
mod peer;
mod tcp;

pub use codec::{
    decode_command, decode_response, encode_identify, encode_ping, encode_register, encode_response,
    encode_unregister, Command, ProtocolError, Reply, ResponseError, COMMAND_BYTES_MAX,
    IDENTIFY_BODY_BYTES_MAX, LINE_BYTES_MAX, MAGIC_V1, RESPONSE_BYTES_MAX,
};
pub use db::{Category, Clock, Peer, PeerId, Producer, Registration, RegistrationDb, GO_ZERO_TIME_UNIX_NS};
pub use http::LookupdHttp;
pub use options::LookupdOptions;
pub use peer::{IdentifyDecodeError, IdentifyRequest, IdentifyResponse, PeerInfo};
pub use tcp::{Closing, TcpSession};
