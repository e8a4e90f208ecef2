//! nsqd's HTTP API (spec part A), without I/O: a parsed request becomes either an immediate
//! response or a broker request whose answer `finish` turns into the response.
//!
//! Every answer is in nsqd's "V1" style unless noted: success bodies raw or JSON, errors
//! `{"message":"<TEXT>"}` with the status nsqd uses, and `X-NSQ-Content-Type: nsq; version=1.0`
//! on all of them (go-nsq relies on it).

mod metrics;
mod publish;
mod render;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use squall_core::broker::{AdminError, AdminOp, Request, Response as BrokerResponse};
use squall_core::names::Name;
use squall_core::options::Options;
use squall_core::stats::StatsFilter;

use crate::httpd::{parse_query, Query, Response, Routed, Router};

/// A request as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: Bytes,
}

/// nsqd's boolean query values: `true`/`1` and `false`/`0`; anything else (or absence) gives
/// `default`.
fn flag(q: &Query, key: &str, default: bool) -> bool {
    match q.get(key) {
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        _ => default,
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
    Respond(Response),
    Submit(Request, Pending),
}

impl From<Response> for Action {
    fn from(r: Response) -> Action {
        Action::Respond(r)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Ping,
    Info,
    Stats,
    Metrics,
    Pub,
    Mpub,
    Topic(&'static str),
    Channel(&'static str),
}

fn router() -> Router<Route> {
    let mut routes = vec![
        ("GET", "/ping", Route::Ping),
        ("GET", "/info", Route::Info),
        ("GET", "/stats", Route::Stats),
        ("GET", "/metrics", Route::Metrics),
        ("POST", "/pub", Route::Pub),
        ("POST", "/mpub", Route::Mpub),
    ];
    for (path, verb) in [
        ("/topic/create", "create"),
        ("/topic/delete", "delete"),
        ("/topic/empty", "empty"),
        ("/topic/pause", "pause"),
        ("/topic/unpause", "unpause"),
    ] {
        routes.push(("POST", path, Route::Topic(verb)));
    }
    for (path, verb) in [
        ("/channel/create", "create"),
        ("/channel/delete", "delete"),
        ("/channel/empty", "empty"),
        ("/channel/pause", "pause"),
        ("/channel/unpause", "unpause"),
    ] {
        routes.push(("POST", path, Route::Channel(verb)));
    }
    Router::new(routes)
}

/// nsqd's answer to a request whose body is over the server's limit, for the handlers that
/// check the declared length before reading (`POST /pub`, `POST /mpub`); `None` for any other
/// request (the server's plain 413 then).
pub fn oversized(method: &str, path: &str) -> Option<Response> {
    match (method, path) {
        ("POST", "/pub") => Some(Response::nsq_v1_error(413, "MSG_TOO_BIG")),
        ("POST", "/mpub") => Some(Response::nsq_v1_error(413, "BODY_TOO_BIG")),
        _ => None,
    }
}

/// Routes one request.
pub fn handle(req: &ApiRequest<'_>, ctx: &mut ApiContext) -> Action {
    if let Some(opt) = req
        .path
        .strip_prefix("/config/")
        .filter(|o| !o.is_empty() && !o.contains('/'))
    {
        return match req.method {
            "GET" | "PUT" => config(req, opt, ctx),
            "OPTIONS" => Response::new(200)
                .with_header("Allow", "GET, OPTIONS, PUT")
                .into(),
            _ => Response::nsq_v1_error(405, "METHOD_NOT_ALLOWED")
                .with_header("Allow", "GET, OPTIONS, PUT")
                .into(),
        };
    }
    let route = match router().route(req.method, req.path, req.query) {
        Routed::Handler(r) => r,
        Routed::Redirect { status, location } => {
            return Response::new(status).with_header("Location", location).into();
        }
        Routed::Options { allow } => return Response::new(200).with_header("Allow", allow).into(),
        Routed::MethodNotAllowed { allow } => {
            return Response::nsq_v1_error(405, "METHOD_NOT_ALLOWED")
                .with_header("Allow", allow)
                .into();
        }
        Routed::NotFound => return Response::nsq_v1_error(404, "NOT_FOUND").into(),
    };
    match route {
        Route::Ping => {
            let status = if ctx.health == "OK" { 200 } else { 500 };
            return Response::plain_text(status, ctx.health.clone()).into();
        }
        Route::Info => return Response::nsq_v1_json(&render::info(ctx)).into(),
        // nsqd checks the body before it parses the query.
        Route::Pub => return publish::pub_one(req, ctx),
        _ => {}
    }
    let Ok(query) = parse_query(req.query) else {
        return Response::nsq_v1_error(400, "INVALID_REQUEST").into();
    };
    match route {
        Route::Stats => {
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
        Route::Metrics => Action::Submit(
            Request::Stats(StatsFilter {
                include_clients: false,
                ..StatsFilter::default()
            }),
            Pending::Metrics,
        ),
        Route::Mpub => publish::pub_many(req, &query, ctx),
        Route::Topic(verb) => topic_admin(verb, &query),
        Route::Channel(verb) => channel_admin(verb, &query),
        Route::Ping | Route::Info | Route::Pub => unreachable!("answered above"),
    }
}

fn topic_admin(verb: &str, q: &Query) -> Action {
    let Some(raw) = q.get("topic") else {
        return Response::nsq_v1_error(400, "MISSING_ARG_TOPIC").into();
    };
    let name = Name::new(raw.as_bytes());
    // create and empty validate the name; delete, pause and unpause only look it up.
    let validates = matches!(verb, "create" | "empty");
    let Some(name) = name else {
        return if validates {
            Response::nsq_v1_error(400, "INVALID_TOPIC").into()
        } else {
            Response::nsq_v1_error(404, "TOPIC_NOT_FOUND").into()
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
        return Response::nsq_v1_error(400, "MISSING_ARG_TOPIC").into();
    };
    let Some(topic) = Name::new(raw_topic.as_bytes()) else {
        return Response::nsq_v1_error(400, "INVALID_ARG_TOPIC").into();
    };
    let Some(raw_channel) = q.get("channel") else {
        return Response::nsq_v1_error(400, "MISSING_ARG_CHANNEL").into();
    };
    let Some(channel) = Name::new(raw_channel.as_bytes()) else {
        return Response::nsq_v1_error(400, "INVALID_ARG_CHANNEL").into();
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
            return Response::nsq_v1_error(413, "INVALID_VALUE").into();
        }
        let value = match opt {
            "nsqlookupd_tcp_addresses" => match serde_json::from_slice::<Vec<String>>(&req.body) {
                Ok(addrs) => serde_json::json!(addrs),
                Err(_) => return Response::nsq_v1_error(400, "INVALID_VALUE").into(),
            },
            "log_level" => {
                let word = String::from_utf8_lossy(&req.body).to_ascii_lowercase();
                match ["debug", "info", "warn", "error", "fatal"]
                    .iter()
                    .position(|l| *l == word.trim())
                {
                    Some(i) => serde_json::json!(i + 1),
                    None => return Response::nsq_v1_error(400, "INVALID_VALUE").into(),
                }
            }
            _ => return Response::nsq_v1_error(400, "INVALID_OPTION").into(),
        };
        ctx.config.insert(opt.to_string(), value);
    }
    match ctx.config.get(opt) {
        Some(v) => Response::nsq_v1_json(v).into(),
        None => Response::nsq_v1_error(400, "INVALID_OPTION").into(),
    }
}

/// Turns the broker's answer into the HTTP response.
pub fn finish(pending: Pending, resp: BrokerResponse, ctx: &ApiContext) -> Response {
    match (pending, resp) {
        (Pending::Publish, BrokerResponse::Published(Ok(_))) => Response::nsq_v1_text("OK"),
        (Pending::Publish, BrokerResponse::Published(Err(_))) => Response::nsq_v1_error(503, "EXITING"),
        (Pending::Admin, BrokerResponse::Admin(Ok(()))) => Response::nsq_v1_empty(),
        (Pending::Admin, BrokerResponse::Admin(Err(AdminError::TopicNotFound))) => {
            Response::nsq_v1_error(404, "TOPIC_NOT_FOUND")
        }
        (Pending::Admin, BrokerResponse::Admin(Err(AdminError::ChannelNotFound))) => {
            Response::nsq_v1_error(404, "CHANNEL_NOT_FOUND")
        }
        (
            Pending::Stats {
                json: true,
                include_mem,
                topic_filter,
            },
            BrokerResponse::Stats(stats),
        ) => Response::nsq_v1_json(&render::stats_json(ctx, stats, include_mem, topic_filter)),
        (
            Pending::Stats {
                json: false,
                include_mem,
                ..
            },
            BrokerResponse::Stats(stats),
        ) => {
            // The text form is a V1 string payload: raw bytes, sniffed type.
            Response::nsq_v1_text(render::stats_text(ctx, &stats, include_mem))
        }
        (Pending::Metrics, BrokerResponse::Stats(stats)) => Response::new(200)
            .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .with_body(metrics::render(&stats)),
        // Includes a failed empty (nsqd: 500 INTERNAL_ERROR).
        _ => Response::nsq_v1_error(500, "INTERNAL_ERROR"),
    }
}
