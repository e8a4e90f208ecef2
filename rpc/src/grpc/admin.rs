//! `squall.v1.Admin`: topic and channel administration and stats, through `Broker::submit`
//! (the owner shard applies it; stats gather from every shard).

use squall_core::broker::{AdminError, AdminOp, Request, Response};
use squall_core::stats::{ShardStats, StatsFilter};

use super::call::Call;
use super::local;
use super::pb::squall::v1 as pb;
use super::publish::{channel_name, topic_name};
use super::server::Ctx;
use super::status::{Code, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    CreateTopic,
    DeleteTopic,
    EmptyTopic,
    CreateChannel,
    DeleteChannel,
    EmptyChannel,
    SetPaused,
    Stats,
}

impl Op {
    pub fn from_path(method: &str) -> Option<Op> {
        Some(match method {
            "CreateTopic" => Op::CreateTopic,
            "DeleteTopic" => Op::DeleteTopic,
            "EmptyTopic" => Op::EmptyTopic,
            "CreateChannel" => Op::CreateChannel,
            "DeleteChannel" => Op::DeleteChannel,
            "EmptyChannel" => Op::EmptyChannel,
            "SetPaused" => Op::SetPaused,
            "Stats" => Op::Stats,
            _ => return None,
        })
    }
}

pub async fn serve(op: Op, call: &mut Call, ctx: &Ctx) -> Result<(), Status> {
    let admin = match op {
        Op::Stats => {
            let req: pb::StatsRequest = call.unary().await?;
            let filter = StatsFilter {
                topic: (!req.topic.is_empty()).then_some(req.topic),
                channel: (!req.channel.is_empty()).then_some(req.channel),
                include_clients: req.include_clients,
            };
            return match local::call(&ctx.bridge, Request::Stats(filter)).await {
                Response::Stats(stats) => call.send(&render_stats(stats, ctx.start_time_ns)).await,
                other => Err(unexpected(other)),
            };
        }
        Op::CreateTopic | Op::DeleteTopic | Op::EmptyTopic => {
            let req: pb::TopicRef = call.unary().await?;
            let t = topic_name(&req.topic)?;
            match op {
                Op::CreateTopic => AdminOp::CreateTopic(t),
                Op::DeleteTopic => AdminOp::DeleteTopic(t),
                _ => AdminOp::EmptyTopic(t),
            }
        }
        Op::CreateChannel | Op::DeleteChannel | Op::EmptyChannel => {
            let req: pb::ChannelRef = call.unary().await?;
            let (t, c) = (topic_name(&req.topic)?, channel_name(&req.channel)?);
            match op {
                Op::CreateChannel => AdminOp::CreateChannel(t, c),
                Op::DeleteChannel => AdminOp::DeleteChannel(t, c),
                _ => AdminOp::EmptyChannel(t, c),
            }
        }
        Op::SetPaused => {
            let req: pb::SetPausedRequest = call.unary().await?;
            let t = topic_name(&req.topic)?;
            if req.channel.is_empty() {
                AdminOp::PauseTopic(t, req.paused)
            } else {
                AdminOp::PauseChannel(t, channel_name(&req.channel)?, req.paused)
            }
        }
    };
    if let AdminOp::CreateChannel(t, _) = admin {
        // Unlike nsqd's `/channel/create` (404 for a missing topic), CreateChannel makes the
        // topic too: one call sets up a consumer's channel before anything is published.
        if let Response::Admin(Err(AdminError::Failed(e))) =
            local::call(&ctx.bridge, Request::Admin(AdminOp::CreateTopic(t))).await
        {
            return Err(Status::new(Code::Internal, e));
        }
    }
    match local::call(&ctx.bridge, Request::Admin(admin)).await {
        Response::Admin(Ok(())) => call.send(&pb::AdminReply {}).await,
        Response::Admin(Err(AdminError::TopicNotFound)) => {
            Err(Status::new(Code::NotFound, "topic not found"))
        }
        Response::Admin(Err(AdminError::ChannelNotFound)) => {
            Err(Status::new(Code::NotFound, "channel not found"))
        }
        Response::Admin(Err(AdminError::Failed(e))) => Err(Status::new(Code::Internal, e)),
        other => Err(unexpected(other)),
    }
}

fn unexpected(resp: Response) -> Status {
    Status::new(Code::Internal, format!("unexpected broker answer {resp:?}"))
}

fn render_stats(stats: ShardStats, start_time_ns: i64) -> pb::StatsResponse {
    let topics = stats
        .topics
        .into_iter()
        .map(|t| pb::TopicStats {
            name: t.topic_name,
            depth: t.depth.max(0) as u64,
            backend_depth: t.backend_depth.max(0) as u64,
            message_count: t.message_count,
            message_bytes: t.message_bytes,
            paused: t.paused,
            channels: t
                .channels
                .into_iter()
                .map(|c| pb::ChannelStats {
                    name: c.channel_name,
                    depth: c.depth.max(0) as u64,
                    backend_depth: c.backend_depth.max(0) as u64,
                    in_flight_count: c.in_flight_count.max(0) as u64,
                    deferred_count: c.deferred_count.max(0) as u64,
                    message_count: c.message_count,
                    requeue_count: c.requeue_count,
                    timeout_count: c.timeout_count,
                    paused: c.paused,
                    clients: c
                        .clients
                        .unwrap_or_default()
                        .into_iter()
                        .map(|s| pb::ClientStats {
                            transport: if s.user_agent.starts_with(GRPC_USER_AGENT_PREFIX) {
                                "grpc".to_string()
                            } else {
                                "tcp".to_string()
                            },
                            client_id: s.client_id,
                            remote_address: s.remote_address,
                            ready_count: s.ready_count.clamp(0, u32::MAX as i64) as u32,
                            in_flight_count: s.in_flight_count.max(0) as u64,
                            message_count: s.message_count,
                            finish_count: s.finish_count,
                            requeue_count: s.requeue_count,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    pb::StatsResponse {
        version: squall_core::NSQD_VERSION.to_string(),
        start_time_ns,
        topics,
    }
}

/// The user agent gRPC subscriptions identify with, so stats can tell them from TCP clients.
pub const GRPC_USER_AGENT_PREFIX: &str = "squall-grpc/";
