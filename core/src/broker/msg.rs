//! Messages between shards.
//!
//! Lanes are bounded; a sender that finds its lane full keeps the message in its outbox and
//! retries next turn, and stops reading from the producers that feed it (backpressure). Nothing
//! that crosses a shard is ever dropped while both shards run; at shutdown, undelivered requests
//! are dropped with the shard and their connections are closed without an answer.

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::message::IdRange;
use crate::names::Name;
use crate::stats::{ShardStats, StatsFilter};

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
    /// A front-end request (HTTP, gRPC) for the topic's owner, or a stats request for every
    /// shard. Dropped only with a stopping shard: the request is then never answered.
    Request(Origin, Box<Request>),
    /// The answer to a `Request`, for the shard the request came from.
    Response(Origin, Box<Response>),
    /// The auth server's answer, for the shard that asked (from the engine's auth client,
    /// not from another shard).
    Auth(Box<crate::auth::AuthReply>),
    /// The channels lookupd knows for a new topic, for the topic's owner (from the lookup loop,
    /// not from another shard). Dropped only with a stopping shard, whose topics stop anyway.
    Channels(Box<crate::topic::ChannelsFound>),
}

/// Who asked: a front-end connection on the asking shard, and its request number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub conn: u64,
    pub seq: u64,
}

/// What front ends other than the NSQ TCP protocol ask of the broker.
#[derive(Debug)]
pub enum Request {
    Publish {
        kind: PubKind,
        topic: Name,
        defer_ms: i64,
        bodies: Vec<Bytes>,
    },
    Admin(AdminOp),
    Stats(StatsFilter),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    CreateTopic(Name),
    DeleteTopic(Name),
    EmptyTopic(Name),
    PauseTopic(Name, bool),
    CreateChannel(Name, Name),
    DeleteChannel(Name, Name),
    EmptyChannel(Name, Name),
    PauseChannel(Name, Name, bool),
}

impl AdminOp {
    pub fn topic(&self) -> &Name {
        match self {
            AdminOp::CreateTopic(t)
            | AdminOp::DeleteTopic(t)
            | AdminOp::EmptyTopic(t)
            | AdminOp::PauseTopic(t, _)
            | AdminOp::CreateChannel(t, _)
            | AdminOp::DeleteChannel(t, _)
            | AdminOp::EmptyChannel(t, _)
            | AdminOp::PauseChannel(t, _, _) => t,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    TopicNotFound,
    ChannelNotFound,
    /// Emptying a disk queue failed.
    Failed(String),
}

#[derive(Debug)]
pub enum Response {
    /// The IDs the messages got, in request order, or why the publish failed.
    Published(Result<IdRange, Box<ProtocolError>>),
    Admin(Result<(), AdminError>),
    /// One shard's part while gathering; the merged whole when handed to the front end.
    Stats(ShardStats),
}

// Every lane slot holds one of these: keep it to a pointer and a Vec.
const _: () = assert!(std::mem::size_of::<ShardMsg<std::os::fd::OwnedFd>>() <= 32);
