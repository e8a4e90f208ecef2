//! nsqd's HTTP API (spec part A), without I/O: a parsed request becomes either an immediate
//! response or a broker request whose answer `finish` turns into the response.
//!
//! Every answer is in nsqd's "V1" style unless noted: success bodies raw or JSON, errors
//! `{"message":"<TEXT>"}` with the status nsqd uses, and `X-NSQ-Content-Type: nsq; version=1.0`
//! on all of them (go-nsq relies on it).

mod metrics;
mod publish;
pub mod query;
mod render;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use squall_core::broker::{AdminError, AdminOp, Request, Response};
use squall_core::names::Name;
use squall_core::options::Options;
use squall_core::stats::StatsFilter;

use query::{flag, Query};

/// A request as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: Bytes,
}

/// A response for the HTTP layer to frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: Option<&'static str>,
    /// `X-NSQ-Content-Type: nsq; version=1.0`.
    pub nsq_header: bool,
    /// `Allow:` for 405 and OPTIONS.
    pub allow: Option<&'static str>,
    pub body: Vec<u8>,
}

pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl ApiResponse {
    /// V1 error: `{"message":"TEXT"}`.
    pub fn error(status: u16, message: &str) -> ApiResponse {
        let body = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
        ApiResponse {
            status,
            content_type: Some(JSON),
            nsq_header: true,
            allow: None,
            body,
        }
    }

    /// V1 success with a string body (Go sniffs `text/plain` for it).
    pub fn text(body: &[u8]) -> ApiResponse {
        ApiResponse {
            status: 200,
            content_type: Some(TEXT),
            nsq_header: true,
            allow: None,
            body: body.to_vec(),
        }
    }

    /// V1 success with nothing to say: an empty body.
    pub fn empty() -> ApiResponse {
        ApiResponse {
            status: 200,
            content_type: None,
            nsq_header: true,
            allow: None,
            body: Vec::new(),
        }
    }

    pub fn json(value: &impl serde::Serialize) -> ApiResponse {
        let body = serde_json::to_vec(value).unwrap_or_default();
        ApiResponse {
            status: 200,
            content_type: Some(JSON),
            nsq_header: true,
            allow: None,
            body,
        }
    }
}

/// What the API knows about the node it serves.
#[derive(Debug, Clone)]
pub struct ApiContext {
    pub options: Options,
    pub hostname: String,
    pub broadcast_address: String,
    pub tcp_port: i64,
    pub http_port: i64,
    pub start_time: i64,
    pub started: Instant,
    /// `"OK"` or `"NOK - <err>"`.
    pub health: String,
    /// `/config/:opt` values by config name, as nsqd renders them (durations in nanoseconds).
    pub config: BTreeMap<String, serde_json::Value>,
    pub e2e_percentiles: Vec<f64>,
}

/// How to turn the broker's answer into the HTTP response.
#[derive(Debug, Clone)]
pub enum Pending {
    Publish,
    Admin,
    Stats {
        json: bool,
        include_mem: bool,
        topic_filter: bool,
    },
    Metrics,
}

#[derive(Debug)]
pub enum Action {
    Respond(ApiResponse),
    Submit(Request, Pending),
}

impl From<ApiResponse> for Action {
    fn from(r: ApiResponse) -> Action {
        Action::Respond(r)
    }
}

/// The methods each path answers to.
fn allowed(path: &str) -> Option<&'static str> {
    Some(match path {
        "/ping" | "/info" | "/stats" | "/metrics" => "GET",
        "/pub" | "/mpub" => "POST",
        "/topic/create" | "/topic/delete" | "/topic/empty" | "/topic/pause" | "/topic/unpause" => "POST",
        "/channel/create" | "/channel/delete" | "/channel/empty" | "/channel/pause" | "/channel/unpause" => {
            "POST"
        }
        p if p.starts_with("/config/") && p.len() > "/config/".len() && !p[8..].contains('/') => "GET, PUT",
        _ => return None,
    })
}

/// A response to send instead of reading a body whose declared length is already too big
/// (nsqd refuses these before reading anything). The connection closes after it.
pub fn refuse_early(method: &str, path: &str, content_length: u64, ctx: &ApiContext) -> Option<ApiResponse> {
    let o = &ctx.options;
    match (method, path) {
        ("POST", "/pub") if content_length > o.max_msg_size as u64 => {
            Some(ApiResponse::error(413, "MSG_TOO_BIG"))
        }
        ("POST", "/mpub") if content_length > o.max_body_size as u64 => {
            Some(ApiResponse::error(413, "BODY_TOO_BIG"))
        }
        // Every other endpoint reads at most a small body and drains the rest.
        _ if content_length > o.max_body_size as u64 => Some(ApiResponse::error(413, "BODY_TOO_BIG")),
        _ => None,
    }
}

/// Routes one request.
pub fn handle(req: &ApiRequest<'_>, ctx: &mut ApiContext) -> Action {
    let Some(methods) = allowed(req.path) else {
        return ApiResponse::error(404, "NOT_FOUND").into();
    };
    if req.method == "OPTIONS" {
        return ApiResponse {
            status: 200,
            content_type: None,
            nsq_header: false,
            allow: Some(methods),
            body: vec![],
        }
        .into();
    }
    if !methods.split(", ").any(|m| m == req.method) {
        let mut r = ApiResponse::error(405, "METHOD_NOT_ALLOWED");
        r.allow = Some(methods);
        return r.into();
    }
    if req.path == "/pub" {
        // nsqd checks the body before it parses the query.
        return publish::pub_one(req, ctx);
    }
    let query = match Query::parse(req.query) {
        Ok(q) => q,
        Err(_) if req.path == "/ping" || req.path == "/info" => Query::default(),
        Err(_) => return ApiResponse::error(400, "INVALID_REQUEST").into(),
    };
    match req.path {
        "/ping" => {
            let status = if ctx.health == "OK" { 200 } else { 500 };
            ApiResponse {
                status,
                content_type: Some(TEXT),
                nsq_header: false,
                allow: None,
                body: ctx.health.clone().into_bytes(),
            }
            .into()
        }
        "/info" => ApiResponse::json(&render::info(ctx)).into(),
        "/stats" => {
            let filter = StatsFilter {
                topic: query.get("topic").map(str::to_string),
                channel: query.get("channel").map(str::to_string),
                include_clients: flag(&query, "include_clients", true),
            };
            let pending = Pending::Stats {
                json: query.get("format") == Some("json"),
                include_mem: flag(&query, "include_mem", true),
                topic_filter: filter.topic.is_some(),
            };
            Action::Submit(Request::Stats(filter), pending)
        }
        "/metrics" => Action::Submit(
            Request::Stats(StatsFilter {
                include_clients: false,
                ..StatsFilter::default()
            }),
            Pending::Metrics,
        ),
        "/mpub" => publish::pub_many(req, &query, ctx),
        p if p.starts_with("/topic/") => topic_admin(&p[7..], &query),
        p if p.starts_with("/channel/") => channel_admin(&p[9..], &query),
        p => config(req, &p[8..], ctx),
    }
}

fn topic_admin(verb: &str, q: &Query) -> Action {
    let Some(raw) = q.get("topic") else {
        return ApiResponse::error(400, "MISSING_ARG_TOPIC").into();
    };
    let name = Name::new(raw.as_bytes());
    // create and empty validate the name; delete, pause and unpause only look it up.
    let validates = matches!(verb, "create" | "empty");
    let Some(name) = name else {
        return if validates {
            ApiResponse::error(400, "INVALID_TOPIC").into()
        } else {
            ApiResponse::error(404, "TOPIC_NOT_FOUND").into()
        };
    };
    let op = match verb {
        "create" => AdminOp::CreateTopic(name),
        "delete" => AdminOp::DeleteTopic(name),
        "empty" => AdminOp::EmptyTopic(name),
        "pause" => AdminOp::PauseTopic(name, true),
        _ => AdminOp::PauseTopic(name, false),
    };
    Action::Submit(Request::Admin(op), Pending::Admin)
}

fn channel_admin(verb: &str, q: &Query) -> Action {
    let Some(raw_topic) = q.get("topic") else {
        return ApiResponse::error(400, "MISSING_ARG_TOPIC").into();
    };
    let Some(topic) = Name::new(raw_topic.as_bytes()) else {
        return ApiResponse::error(400, "INVALID_ARG_TOPIC").into();
    };
    let Some(raw_channel) = q.get("channel") else {
        return ApiResponse::error(400, "MISSING_ARG_CHANNEL").into();
    };
    let Some(channel) = Name::new(raw_channel.as_bytes()) else {
        return ApiResponse::error(400, "INVALID_ARG_CHANNEL").into();
    };
    let op = match verb {
        "create" => AdminOp::CreateChannel(topic, channel),
        "delete" => AdminOp::DeleteChannel(topic, channel),
        "empty" => AdminOp::EmptyChannel(topic, channel),
        "pause" => AdminOp::PauseChannel(topic, channel, true),
        _ => AdminOp::PauseChannel(topic, channel, false),
    };
    Action::Submit(Request::Admin(op), Pending::Admin)
}

/// `GET`/`PUT /config/:opt` (spec A.9).
fn config(req: &ApiRequest<'_>, opt: &str, ctx: &mut ApiContext) -> Action {
    if req.method == "PUT" {
        if req.body.is_empty() || req.body.len() as i64 > ctx.options.max_msg_size {
            return ApiResponse::error(413, "INVALID_VALUE").into();
        }
        let value = match opt {
            "nsqlookupd_tcp_addresses" => match serde_json::from_slice::<Vec<String>>(&req.body) {
                Ok(addrs) => serde_json::json!(addrs),
                Err(_) => return ApiResponse::error(400, "INVALID_VALUE").into(),
            },
            "log_level" => {
                let word = String::from_utf8_lossy(&req.body).to_ascii_lowercase();
                match ["debug", "info", "warn", "error", "fatal"]
                    .iter()
                    .position(|l| *l == word.trim())
                {
                    Some(i) => serde_json::json!(i + 1),
                    None => return ApiResponse::error(400, "INVALID_VALUE").into(),
                }
            }
            _ => return ApiResponse::error(400, "INVALID_OPTION").into(),
        };
        ctx.config.insert(opt.to_string(), value);
    }
    match ctx.config.get(opt) {
        Some(v) => ApiResponse::json(v).into(),
        None => ApiResponse::error(400, "INVALID_OPTION").into(),
    }
}

/// Turns the broker's answer into the HTTP response.
pub fn finish(pending: Pending, resp: Response, ctx: &ApiContext) -> ApiResponse {
    match (pending, resp) {
        (Pending::Publish, Response::Published(None)) => ApiResponse::text(b"OK"),
        (Pending::Publish, Response::Published(Some(_))) => ApiResponse::error(503, "EXITING"),
        (Pending::Admin, Response::Admin(Ok(()))) => ApiResponse::empty(),
        (Pending::Admin, Response::Admin(Err(AdminError::TopicNotFound))) => {
            ApiResponse::error(404, "TOPIC_NOT_FOUND")
        }
        (Pending::Admin, Response::Admin(Err(AdminError::ChannelNotFound))) => {
            ApiResponse::error(404, "CHANNEL_NOT_FOUND")
        }
        (
            Pending::Stats {
                json,
                include_mem,
                topic_filter,
            },
            Response::Stats(stats),
        ) => {
            if json {
                ApiResponse::json(&render::stats_json(ctx, stats, include_mem, topic_filter))
            } else {
                let body = render::stats_text(ctx, &stats, include_mem);
                ApiResponse {
                    status: 200,
                    content_type: Some(TEXT),
                    nsq_header: true,
                    allow: None,
                    body,
                }
            }
        }
        (Pending::Metrics, Response::Stats(stats)) => ApiResponse {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
            nsq_header: false,
            allow: None,
            body: metrics::render(&stats),
        },
        _ => ApiResponse::error(500, "INTERNAL_ERROR"),
    }
}
