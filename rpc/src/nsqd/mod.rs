//! nsqd's HTTP API (spec part A), without I/O: a parsed request becomes either an immediate
//! response or a broker request whose answer `finish` turns into the response.
//!
//! Every answer is in nsqd's "V1" style unless noted: success bodies raw or JSON, errors
//! `{"message":"<TEXT>"}` with the status nsqd uses, and `X-NSQ-Content-Type: nsq; version=1.0`
//! on all of them (go-nsq relies on it).

mod config;
mod metrics;
mod publish;
mod render;

use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use squall_core::broker::{AdminError, AdminOp, Request, Response as BrokerResponse};
use squall_core::names::Name;
use squall_core::options::Options;
use squall_core::stats::StatsFilter;

use crate::httpd::{parse_query, Query, Response, Routed, Router};

pub use config::{ConfigChange, ConfigHook, ConfigValues};
pub use render::go_duration;

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
    /// `/config/:opt` values, one copy for the whole node.
    pub config: ConfigValues,
}

/// How to turn the broker's answer into the HTTP response.
#[derive(Debug, Clone)]
pub enum Pending {
    Publish,
    Admin,
    Stats {
        json: bool,
        include_mem: bool,
    },
    Metrics,
    /// The broker made sure the topic exists (nsqd creates it while reading the query, before
    /// a publish's later checks fail); the answer is this.
    Answer(Response),
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
    Config,
}

/// nsqd's routing table, built once.
fn router() -> &'static Router<Route> {
    static ROUTER: OnceLock<Router<Route>> = OnceLock::new();
    ROUTER.get_or_init(routes)
}

fn routes() -> Router<Route> {
    let mut routes = vec![
        ("GET", "/ping", Route::Ping),
        ("GET", "/info", Route::Info),
        ("GET", "/stats", Route::Stats),
        ("GET", "/metrics", Route::Metrics),
        ("POST", "/pub", Route::Pub),
        ("POST", "/mpub", Route::Mpub),
        ("GET", "/config/:opt", Route::Config),
        ("PUT", "/config/:opt", Route::Config),
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

/// Whether nsqd writes its INFO request line (`<status> <method> <uri> (<remote>) <elapsed>`)
/// for this request: its API handlers and its 404 and 405 answers do; `/pub` and `/mpub` (the
/// publish hot path), redirects and automatic OPTIONS answers do not.
pub fn request_logged(method: &str, path: &str) -> bool {
    match router().route(method, path, "") {
        Routed::Handler(Route::Pub | Route::Mpub) | Routed::Redirect { .. } | Routed::Options { .. } => false,
        Routed::Handler(_) | Routed::MethodNotAllowed { .. } | Routed::NotFound => true,
    }
}

/// Routes one request.
pub fn handle(req: &ApiRequest<'_>, ctx: &ApiContext) -> Action {
    let route = match router().route(req.method, req.path, req.query) {
        Routed::Handler(r) => r,
        Routed::Redirect { status, location } => {
            return Response::redirect(status, &location, req.method).into();
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
        Route::Mpub => return publish::pub_many(req, ctx),
        Route::Config => {
            let opt = req.path.strip_prefix("/config/").unwrap_or_default();
            return config::config(req, opt, ctx.options.max_msg_size, &ctx.config).into();
        }
        _ => {}
    }
    let Ok(query) = parse_query(req.query) else {
        return Response::nsq_v1_error(400, "INVALID_REQUEST").into();
    };
    match route {
        Route::Stats => {
            // An empty value filters nothing, as in nsqd (it compares with "").
            let param = |key| query.get(key).filter(|v| !v.is_empty()).map(str::to_string);
            let filter = StatsFilter {
                topic: param("topic"),
                channel: param("channel"),
                include_clients: flag(&query, "include_clients", true),
            };
            let pending = Pending::Stats {
                json: query.get("format") == Some("json"),
                include_mem: flag(&query, "include_mem", true),
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
        Route::Topic(verb) => topic_admin(verb, &query),
        Route::Channel(verb) => channel_admin(verb, &query),
        Route::Ping | Route::Info | Route::Pub | Route::Mpub | Route::Config => {
            unreachable!("answered above")
        }
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

/// Turns the broker's answer into the HTTP response.
pub fn finish(pending: Pending, resp: BrokerResponse, ctx: &ApiContext) -> Response {
    match (pending, resp) {
        (Pending::Answer(answer), _) => answer,
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
            },
            BrokerResponse::Stats(stats),
        ) => Response::nsq_v1_json(&render::stats_json(ctx, stats, include_mem)),
        (
            Pending::Stats {
                json: false,
                include_mem,
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
