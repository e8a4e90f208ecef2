//! `squall.v1.Broker/Publish`: PUB, MPUB and DPUB in one call, applied on the topic's owner
//! shard through `Broker::submit` exactly as HTTP `/pub` is.

use std::time::Duration;

use bytes::Bytes;
use squall_core::broker::{PubKind, Request, Response};
use squall_core::names::Name;

use super::call::Call;
use super::local;
use super::pb::squall::v1::{PublishRequest, PublishResponse};
use super::server::Ctx;
use super::status::{Code, Status};

pub async fn publish(call: &mut Call, ctx: &Ctx) -> Result<(), Status> {
    let req: PublishRequest = call.unary().await?;
    let request = validate(req, ctx)?;
    match local::call(&ctx.bridge, request).await {
        Response::Published(Ok(ids)) => {
            let message_ids = ids
                .iter()
                .map(|id| Bytes::copy_from_slice(id.as_bytes()))
                .collect();
            call.send(&PublishResponse { message_ids }).await
        }
        Response::Published(Err(e)) => Err(Status::new(
            Code::Unavailable,
            String::from_utf8_lossy(&e.frame_data()).into_owned(),
        )),
        other => Err(Status::new(
            Code::Internal,
            format!("unexpected broker answer {other:?}"),
        )),
    }
}

fn validate(req: PublishRequest, ctx: &Ctx) -> Result<Request, Status> {
    let limits = &ctx.limits;
    let topic = topic_name(&req.topic)?;
    if req.bodies.is_empty() {
        return Err(Status::new(Code::InvalidArgument, "no message bodies"));
    }
    let mut total = 0usize;
    for body in &req.bodies {
        if body.is_empty() {
            return Err(Status::new(Code::InvalidArgument, "empty message body"));
        }
        if body.len() > limits.max_msg_size {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!("message too big {} > {}", body.len(), limits.max_msg_size),
            ));
        }
        total += body.len();
    }
    if total > limits.max_body_size {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("body too big {total} > {}", limits.max_body_size),
        ));
    }
    let defer = match &req.defer {
        None => Duration::ZERO,
        Some(d) => duration(d).ok_or_else(|| Status::new(Code::InvalidArgument, "invalid defer"))?,
    };
    if defer > limits.max_req_timeout {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("defer {defer:?} is over the maximum {:?}", limits.max_req_timeout),
        ));
    }
    let kind = if !defer.is_zero() {
        PubKind::Dpub
    } else if req.bodies.len() > 1 {
        PubKind::Mpub
    } else {
        PubKind::Pub
    };
    Ok(Request::Publish {
        kind,
        topic,
        defer_ms: defer.as_millis() as i64,
        bodies: req.bodies,
    })
}

pub fn topic_name(raw: &str) -> Result<Name, Status> {
    Name::new(raw.as_bytes())
        .ok_or_else(|| Status::new(Code::InvalidArgument, format!("invalid topic name {raw:?}")))
}

pub fn channel_name(raw: &str) -> Result<Name, Status> {
    Name::new(raw.as_bytes())
        .ok_or_else(|| Status::new(Code::InvalidArgument, format!("invalid channel name {raw:?}")))
}

/// A protobuf `Duration`, if it is non-negative and well formed.
pub fn duration(d: &prost_types::Duration) -> Option<Duration> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return None;
    }
    Some(Duration::new(d.seconds as u64, d.nanos as u32))
}

pub fn to_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}
