//! nsqlookupd's HTTP API (spec B.3): routes, handlers, and their JSON shapes. Each handler reads
//! parsed parameters and the database and returns a [`Response`]; framing is `httpd`'s.

use std::collections::BTreeMap;

use serde::Serialize;

use super::db::{Category, Clock, Registration, RegistrationDb};
use super::options::LookupdOptions;
use super::peer::PeerInfo;
use crate::httpd::{Query, Request, Response, Routed, Router};
use squall_core::names::is_valid;

/// One handler per endpoint, named as the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Ping,
    Info,
    Debug,
    Lookup,
    Topics,
    Channels,
    Nodes,
    TopicCreate,
    TopicDelete,
    ChannelCreate,
    ChannelDelete,
    TopicTombstone,
}

/// nsqlookupd's router and handlers.
#[derive(Clone, Debug)]
pub struct LookupdHttp {
    router: Router<Route>,
}

impl Default for LookupdHttp {
    fn default() -> LookupdHttp {
        LookupdHttp::new()
    }
}

/// A handler's failure: status and nsq's message text.
type HandlerError = (u16, &'static str);

impl LookupdHttp {
    pub fn new() -> LookupdHttp {
        use Route::*;
        LookupdHttp {
            router: Router::new(vec![
                ("GET", "/ping", Ping),
                ("GET", "/info", Info),
                ("GET", "/debug", Debug),
                ("GET", "/lookup", Lookup),
                ("GET", "/topics", Topics),
                ("GET", "/channels", Channels),
                ("GET", "/nodes", Nodes),
                ("POST", "/topic/create", TopicCreate),
                ("POST", "/topic/delete", TopicDelete),
                ("POST", "/channel/create", ChannelCreate),
                ("POST", "/channel/delete", ChannelDelete),
                ("POST", "/topic/tombstone", TopicTombstone),
            ]),
        }
    }

    /// Answers one request.
    pub fn handle(
        &self,
        req: &Request,
        db: &mut RegistrationDb,
        options: &LookupdOptions,
        clock: Clock,
    ) -> Response {
        let route = match self.router.route(&req.method, &req.path, &req.raw_query) {
            Routed::Handler(route) => route,
            Routed::Redirect { status, location } => {
                return Response::redirect(status, &location, &req.method)
            }
            Routed::Options { allow } => return Response::new(200).with_header("Allow", allow),
            Routed::MethodNotAllowed { allow } => {
                return Response::nsq_v1_error(405, "METHOD_NOT_ALLOWED").with_header("Allow", allow)
            }
            Routed::NotFound => return Response::nsq_v1_error(404, "NOT_FOUND"),
        };
        let result = match route {
            Route::Ping => return Response::plain_text(200, "OK"),
            Route::Info => Ok(Response::nsq_v1_json(&Info {
                version: squall_core::NSQD_VERSION,
            })),
            Route::Debug => Ok(debug(db)),
            Route::Topics => Ok(Response::nsq_v1_json(&Topics {
                topics: db
                    .find_registrations(Category::Topic, "*", "")
                    .into_iter()
                    .map(|r| r.key)
                    .collect(),
            })),
            Route::Nodes => Ok(nodes(db, options, clock)),
            Route::Channels => query(req).and_then(|q| {
                let topic = arg(&q, "topic", "MISSING_ARG_TOPIC")?;
                Ok(Response::nsq_v1_json(&Channels {
                    channels: channel_names(db, topic),
                }))
            }),
            Route::Lookup => query(req).and_then(|q| lookup(db, options, clock, &q)),
            Route::TopicCreate => query(req).and_then(|q| {
                let topic = arg(&q, "topic", "MISSING_ARG_TOPIC")?;
                if !is_valid(topic.as_bytes()) {
                    return Err((400, "INVALID_ARG_TOPIC"));
                }
                db.add_registration(Registration::topic(topic));
                Ok(Response::nsq_v1_empty())
            }),
            Route::TopicDelete => query(req).and_then(|q| {
                // Not validated: any name deletes whatever matches, and always 200.
                let topic = arg(&q, "topic", "MISSING_ARG_TOPIC")?;
                for r in db.find_registrations(Category::Channel, topic, "*") {
                    db.remove_registration(&r);
                }
                for r in db.find_registrations(Category::Topic, topic, "") {
                    db.remove_registration(&r);
                }
                Ok(Response::nsq_v1_empty())
            }),
            Route::ChannelCreate => query(req).and_then(|q| {
                let (topic, channel) = topic_channel_args(&q)?;
                db.add_registration(Registration::channel(topic, channel));
                db.add_registration(Registration::topic(topic));
                Ok(Response::nsq_v1_empty())
            }),
            Route::ChannelDelete => query(req).and_then(|q| {
                let (topic, channel) = topic_channel_args(&q)?;
                let found = db.find_registrations(Category::Channel, topic, channel);
                if found.is_empty() {
                    return Err((404, "CHANNEL_NOT_FOUND"));
                }
                for r in &found {
                    db.remove_registration(r);
                }
                Ok(Response::nsq_v1_empty())
            }),
            Route::TopicTombstone => query(req).and_then(|q| {
                let topic = arg(&q, "topic", "MISSING_ARG_TOPIC")?;
                let node = arg(&q, "node", "MISSING_ARG_NODE")?;
                db.tombstone(topic, node, clock);
                Ok(Response::nsq_v1_empty())
            }),
        };
        result.unwrap_or_else(|(status, message)| Response::nsq_v1_error(status, message))
    }
}

/// nsq's `NewReqParams`: the query, or 400 `INVALID_REQUEST`.
fn query(req: &Request) -> Result<Query, HandlerError> {
    req.query().map_err(|_| (400, "INVALID_REQUEST"))
}

fn arg<'q>(q: &'q Query, key: &str, missing: &'static str) -> Result<&'q str, HandlerError> {
    q.get(key).ok_or((400, missing))
}

/// nsq's `GetTopicChannelArgs`, in its order of checks.
fn topic_channel_args(q: &Query) -> Result<(&str, &str), HandlerError> {
    let topic = arg(q, "topic", "MISSING_ARG_TOPIC")?;
    if !is_valid(topic.as_bytes()) {
        return Err((400, "INVALID_ARG_TOPIC"));
    }
    let channel = arg(q, "channel", "MISSING_ARG_CHANNEL")?;
    if !is_valid(channel.as_bytes()) {
        return Err((400, "INVALID_ARG_CHANNEL"));
    }
    Ok((topic, channel))
}

fn channel_names(db: &RegistrationDb, topic: &str) -> Vec<String> {
    db.find_registrations(Category::Channel, topic, "*")
        .into_iter()
        .map(|r| r.subkey)
        .collect()
}

// --- JSON shapes (Go maps have sorted keys; Go structs keep declaration order) --------------

#[derive(Serialize)]
struct Info {
    version: &'static str,
}

#[derive(Serialize)]
struct Topics {
    topics: Vec<String>,
}

#[derive(Serialize)]
struct Channels {
    channels: Vec<String>,
}

#[derive(Serialize)]
struct Lookup<'a> {
    channels: Vec<String>,
    producers: Vec<&'a PeerInfo>,
}

/// nsqlookupd's `node` struct.
#[derive(Serialize)]
struct Node<'a> {
    remote_address: &'a str,
    hostname: &'a str,
    broadcast_address: &'a str,
    tcp_port: i64,
    http_port: i64,
    version: &'a str,
    topology_zone: &'a str,
    topology_region: &'a str,
    tombstones: Vec<bool>,
    topics: Vec<String>,
}

#[derive(Serialize)]
struct Nodes<'a> {
    producers: Vec<Node<'a>>,
}

/// One producer in `/debug` (a Go map: keys sorted).
#[derive(Serialize)]
struct DebugProducer<'a> {
    broadcast_address: &'a str,
    hostname: &'a str,
    http_port: i64,
    id: &'a str,
    last_update: i64,
    tcp_port: i64,
    tombstoned: bool,
    tombstoned_at: i64,
    topology_region: &'a str,
    topology_zone: &'a str,
    version: &'a str,
}

fn lookup(
    db: &RegistrationDb,
    options: &LookupdOptions,
    clock: Clock,
    q: &Query,
) -> Result<Response, HandlerError> {
    let topic = arg(q, "topic", "MISSING_ARG_TOPIC")?;
    if db.find_registrations(Category::Topic, topic, "").is_empty() {
        return Err((404, "TOPIC_NOT_FOUND"));
    }
    let producers = db
        .active_producers(
            &Registration::topic(topic),
            options.inactive_producer_timeout,
            options.tombstone_lifetime,
            clock.now,
        )
        .into_iter()
        .map(|(_, peer, _)| &peer.info)
        .collect();
    Ok(Response::nsq_v1_json(&Lookup {
        channels: channel_names(db, topic),
        producers,
    }))
}

fn nodes(db: &RegistrationDb, options: &LookupdOptions, clock: Clock) -> Response {
    // Tombstoned nodes are listed: only inactivity hides a node here.
    let clients = db.active_producers(
        &Registration::client(),
        options.inactive_producer_timeout,
        std::time::Duration::ZERO,
        clock.now,
    );
    let producers = clients
        .into_iter()
        .map(|(id, peer, _)| {
            let topics: Vec<String> = db
                .lookup_registrations(id)
                .into_iter()
                .filter(|r| r.is_match(Category::Topic, "*", ""))
                .map(|r| r.key)
                .collect();
            let tombstones = topics
                .iter()
                .map(|t| {
                    db.producers(&Registration::topic(t))
                        .into_iter()
                        .find(|(pid, _)| *pid == id)
                        .is_some_and(|(_, p)| p.is_tombstoned(options.tombstone_lifetime, clock.now))
                })
                .collect();
            let info = &peer.info;
            Node {
                remote_address: &info.remote_address,
                hostname: &info.hostname,
                broadcast_address: &info.broadcast_address,
                tcp_port: info.tcp_port,
                http_port: info.http_port,
                version: &info.version,
                topology_zone: &info.topology_zone,
                topology_region: &info.topology_region,
                tombstones,
                topics,
            }
        })
        .collect();
    Response::nsq_v1_json(&Nodes { producers })
}

fn debug(db: &RegistrationDb) -> Response {
    let mut data: BTreeMap<String, Vec<DebugProducer<'_>>> = BTreeMap::new();
    for (r, producers) in db.iter() {
        for (id, producer) in producers {
            let Some(peer) = db.peer(id) else { continue };
            let info = &peer.info;
            data.entry(r.to_string()).or_default().push(DebugProducer {
                broadcast_address: &info.broadcast_address,
                hostname: &info.hostname,
                http_port: info.http_port,
                id,
                last_update: peer.last_update.unix_ns,
                tcp_port: info.tcp_port,
                tombstoned: producer.tombstoned,
                tombstoned_at: producer.tombstoned_at_unix_ns(),
                topology_region: &info.topology_region,
                topology_zone: &info.topology_zone,
                version: &info.version,
            });
        }
    }
    Response::nsq_v1_json(&data)
}

#[cfg(test)]
mod tests;
