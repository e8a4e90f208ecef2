//! `grpc.health.v1.Health`: SERVING until the shard starts draining, NOT_SERVING after.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures::future::{select, Either};

use super::call::Call;
use super::pb::health::health_check_response::ServingStatus;
use super::pb::health::{HealthCheckRequest, HealthCheckResponse, HealthListResponse};
use super::server::Ctx;
use super::status::{Code, Status};

/// Services a health check may name; `""` is the whole server.
pub const SERVICES: &[&str] = &[
    "",
    "squall.v1.Broker",
    "squall.v1.Admin",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[derive(Default)]
pub struct Health {
    draining: bool,
    /// Bumped on every change; watchers compare it with what they last sent.
    version: u64,
    watchers: Vec<Waker>,
}

impl Health {
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    pub fn set_draining(&mut self) {
        if !self.draining {
            self.draining = true;
            self.version += 1;
            self.watchers.drain(..).for_each(Waker::wake);
        }
    }

    fn status(&self, service: &str) -> Option<ServingStatus> {
        SERVICES.contains(&service).then_some(if self.draining {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        })
    }
}

fn reply(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

pub async fn check(call: &mut Call, ctx: &Ctx) -> Result<(), Status> {
    let req: HealthCheckRequest = call.unary().await?;
    let status = ctx.health.borrow().status(&req.service);
    match status {
        Some(s) => call.send(&reply(s)).await,
        None => Err(Status::new(
            Code::NotFound,
            format!("unknown service {:?}", req.service),
        )),
    }
}

pub async fn list(call: &mut Call, ctx: &Ctx) -> Result<(), Status> {
    let _: super::pb::health::HealthListRequest = call.unary().await?;
    let statuses: HashMap<String, HealthCheckResponse> = {
        let h = ctx.health.borrow();
        SERVICES
            .iter()
            .filter_map(|s| Some((s.to_string(), reply(h.status(s)?))))
            .collect()
    };
    call.send(&HealthListResponse { statuses }).await
}

/// Sends the status at once and again on every change; ends when the server drains (after
/// telling the watcher NOT_SERVING) or the client cancels.
pub async fn watch(call: &mut Call, ctx: &Rc<Ctx>) -> Result<(), Status> {
    let req: HealthCheckRequest = call.unary().await?;
    let mut sent_version = None;
    loop {
        let (version, status, draining) = {
            let h = ctx.health.borrow();
            let status = h.status(&req.service).unwrap_or(ServingStatus::ServiceUnknown);
            (h.version, status, h.draining)
        };
        if sent_version != Some(version) {
            call.send(&reply(status)).await?;
            sent_version = Some(version);
        }
        if draining {
            return Err(Status::new(Code::Unavailable, "the server is shutting down"));
        }
        let changed = poll_fn(|cx| {
            let mut h = ctx.health.borrow_mut();
            if Some(h.version) != sent_version {
                Poll::Ready(())
            } else {
                h.watchers.push(cx.waker().clone());
                Poll::Pending
            }
        });
        let reset = {
            let r = pin!(call.reset());
            match select(pin!(changed), r).await {
                Either::Left(_) => None,
                Either::Right((status, _)) => Some(status),
            }
        };
        if let Some(status) = reset {
            return Err(status);
        }
    }
}
