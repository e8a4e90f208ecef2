//! Messages between shards.
//!
//! Lanes are bounded; a sender that finds its lane full keeps the message in its outbox and
//! retries next turn, and stops reading from the producers that feed it (backpressure). Nothing
//! that crosses a shard is ever dropped while both shards run; at shutdown, undelivered requests
//! are dropped with the shard and their connections are closed without an answer.

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::names::Name;

use super::session::Session;

/// Which publish command a forwarded request came from (it names the error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubKind {
    Pub,
    Mpub,
    Dpub,
}

/// A publish forwarded to the topic's owner shard.
#[derive(Debug)]
pub struct PublishReq {
    pub conn: u64,
    pub seq: u64,
    pub kind: PubKind,
    pub topic: Name,
    pub defer_ms: i64,
    pub bodies: Vec<Bytes>,
}

/// The owner's answer, routed back to the connection's shard.
#[derive(Debug)]
pub struct PublishReply {
    pub conn: u64,
    pub seq: u64,
    pub error: Option<Box<ProtocolError>>,
}

/// A consumer connection moving to the shard that owns the topic it subscribes to.
#[derive(Debug)]
pub struct Migration<D> {
    pub detached: D,
    pub session: Session,
    pub topic: Name,
    pub channel: Name,
}

#[derive(Debug)]
pub enum ShardMsg<D> {
    /// Dropped only with a stopping shard: the producers are then disconnected unanswered.
    Publish(Vec<PublishReq>),
    /// Dropped only with a stopping shard, whose connections are closing anyway.
    PublishReplies(Vec<PublishReply>),
    /// Dropped only with a stopping shard: the connection's fd closes with it.
    Migrate(Box<Migration<D>>),
}

// Every lane slot holds one of these: keep it to a pointer and a Vec.
const _: () = assert!(std::mem::size_of::<ShardMsg<std::os::fd::OwnedFd>>() <= 32);
