//! Requests from front ends other than the NSQ TCP protocol (nsqd's HTTP API, gRPC): publishes,
//! topic and channel administration, and stats gathered from every shard.
//!
//! A front end on any shard calls `submit`; the request runs on the topic's owner shard (every
//! shard for stats) and the answer comes back through `take_responses` on the asking shard.

use std::collections::HashMap;

use super::{shard_for_topic, AckTo, Blocked, Broker, Net, Origin, Request, Response, ShardMsg};
use super::{AdminError, AdminOp};
use crate::latency::{e2e_stats, Histogram};
use crate::message::IdRange;
use crate::names::Name;
use crate::protocol::ClientState;
use crate::stats::{
    ChannelStats, ClientStats, E2eLatency, PubCount, ShardRuntime, ShardStats, StatsFilter, TopicStats,
};

/// Stats parts still expected for one request, and those already in.
pub(super) struct Gather {
    remaining: usize,
    parts: Vec<ShardStats>,
}

pub(super) type Gathers = HashMap<Origin, Gather>;

impl<D: Send + 'static> Broker<D> {
    /// Runs `req` where it belongs; the answer appears in `take_responses` on this shard.
    pub fn submit<N: Net<Detached = D>>(&mut self, net: &mut N, origin: Origin, req: Request) {
        match req {
            Request::Stats(filter) => {
                let mine = self.stats_part(net, &filter);
                self.gathers.insert(
                    origin,
                    Gather {
                        remaining: self.shards - 1,
                        parts: vec![mine],
                    },
                );
                for dst in (0..self.shards).filter(|&s| s != self.shard) {
                    let msg = ShardMsg::Request(origin, Box::new(Request::Stats(filter.clone())));
                    self.outboxes[dst].others.push_back(msg);
                }
                self.finish_gather(origin);
            }
            req => {
                let owner = match &req {
                    Request::Publish { topic, .. } => shard_for_topic(topic, self.shards),
                    Request::Admin(op) => shard_for_topic(op.topic(), self.shards),
                    Request::Stats(_) => unreachable!("handled above"),
                };
                if owner == self.shard {
                    if let Some(resp) = self.serve(net, req, AckTo::Front(origin, IdRange::default())) {
                        self.responses.push((origin, resp));
                    }
                } else {
                    self.outboxes[owner]
                        .others
                        .push_back(ShardMsg::Request(origin, Box::new(req)));
                }
            }
        }
    }

    /// Answers for front-end requests that asked on this shard, in completion order.
    pub fn take_responses(&mut self) -> Vec<(Origin, Response)> {
        std::mem::take(&mut self.responses)
    }

    /// The runtime's counters for this shard (the engine copies them in at the end of every
    /// turn); the next stats part reports them.
    pub fn set_runtime_stats(&mut self, counters: ShardRuntime) {
        self.runtime = counters;
    }

    pub fn has_responses(&self) -> bool {
        !self.responses.is_empty()
    }

    pub(super) fn serve_remote<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        from: usize,
        origin: Origin,
        req: Request,
    ) {
        let resp = match req {
            Request::Stats(filter) => Some(Response::Stats(self.stats_part(net, &filter))),
            req => {
                let ids = IdRange::default();
                self.serve(net, req, AckTo::FrontRemote { from, origin, ids })
            }
        };
        if let Some(resp) = resp {
            self.outboxes[from]
                .others
                .push_back(ShardMsg::Response(origin, Box::new(resp)));
        }
    }

    pub(super) fn gather(&mut self, origin: Origin, resp: Response) {
        match resp {
            Response::Stats(part) => {
                if let Some(g) = self.gathers.get_mut(&origin) {
                    g.parts.push(part);
                    g.remaining = g.remaining.saturating_sub(1);
                }
                self.finish_gather(origin);
            }
            other => self.responses.push((origin, other)),
        }
    }

    fn finish_gather(&mut self, origin: Origin) {
        if self.gathers.get(&origin).is_some_and(|g| g.remaining == 0) {
            let g = self.gathers.remove(&origin).expect("checked");
            let mut merged = ShardStats {
                topic_missing: g.parts.iter().all(|p| p.topic_missing),
                ..ShardStats::default()
            };
            for part in g.parts {
                merged.topics.extend(part.topics);
                merged.producers.extend(part.producers);
                merged.connections += part.connections;
                merged.corrupt_records_skipped += part.corrupt_records_skipped;
                merged.shards.extend(part.shards);
            }
            merged.topics.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
            merged.shards.sort_by_key(|r| r.shard);
            if merged.topic_missing {
                // nsqd gathers nothing, producers included, for a topic it does not have.
                merged.producers.clear();
            }
            self.responses.push((origin, Response::Stats(merged)));
        }
    }

    /// Runs a publish or an admin operation on the owner shard. `None`: a durable publish is
    /// answered through `ack` once its fsync completes.
    fn serve<N: Net<Detached = D>>(&mut self, net: &mut N, req: Request, ack: AckTo) -> Option<Response> {
        match req {
            Request::Publish {
                kind,
                topic,
                defer_ms,
                bodies,
            } => {
                let ids = self.ids.upcoming(bodies.len());
                let ack = match ack {
                    AckTo::Front(origin, _) => AckTo::Front(origin, ids),
                    AckTo::FrontRemote { from, origin, .. } => AckTo::FrontRemote { from, origin, ids },
                    tcp => tcp,
                };
                match self.apply_publish(net, kind, topic, defer_ms, bodies) {
                    Ok(needs) if needs.is_empty() => Some(Response::Published(Ok(ids))),
                    Ok(needs) => {
                        self.ack_when_durable(ack, needs);
                        None
                    }
                    Err(e) => Some(Response::Published(Err(Box::new(e)))),
                }
            }
            Request::Admin(op) => Some(Response::Admin(self.apply_admin(net, op))),
            Request::Stats(_) => unreachable!("stats are gathered, not served"),
        }
    }

    pub fn apply_admin<N: Net<Detached = D>>(&mut self, net: &mut N, op: AdminOp) -> Result<(), AdminError> {
        match op {
            AdminOp::CreateTopic(t) => {
                self.topic_key_or_create(t);
                Ok(())
            }
            AdminOp::DeleteTopic(t) => {
                let tkey = self.topic_key(&t)?;
                self.log(format_args!("TOPIC({t}): deleting"));
                for ch in self.topics[tkey].channels.clone() {
                    self.delete_channel_closing_consumers(net, ch);
                }
                if let Some(k) = self.topic_index.remove(&t) {
                    let topic = self.topics.remove(k);
                    if let Some(b) = topic.queue.disk.backend {
                        b.delete();
                    }
                }
                self.metadata_changed = true;
                self.registry_changed = true;
                Ok(())
            }
            AdminOp::EmptyTopic(t) => {
                let tkey = self.topic_key(&t)?;
                self.topics[tkey].queue.clear().map_err(AdminError::Failed)
            }
            AdminOp::PauseTopic(t, paused) => {
                let tkey = self.topic_key(&t)?;
                self.topics[tkey].paused = paused;
                self.metadata_changed = true;
                self.registry_changed = true;
                if !paused {
                    self.schedule_drain(tkey);
                }
                Ok(())
            }
            AdminOp::CreateChannel(t, c) => {
                let tkey = self.topic_key(&t)?;
                self.channel_key_or_create(tkey, c);
                Ok(())
            }
            AdminOp::DeleteChannel(t, c) => {
                let ch = self.channel_key(&t, &c)?;
                self.delete_channel_closing_consumers(net, ch);
                Ok(())
            }
            AdminOp::EmptyChannel(t, c) => {
                let ch = self.channel_key(&t, &c)?;
                let channel = &mut self.channels[ch];
                let cleared = channel.queue.clear();
                channel.deferred.clear();
                channel.in_flight.drain().for_each(drop);
                for conn in channel.consumers.clone() {
                    if let Some(s) = self.session_mut(conn) {
                        s.in_flight = 0;
                    }
                }
                self.mark_dirty(ch);
                cleared.map_err(AdminError::Failed)
            }
            AdminOp::PauseChannel(t, c, paused) => {
                let ch = self.channel_key(&t, &c)?;
                self.channels[ch].paused = paused;
                self.metadata_changed = true;
                self.registry_changed = true;
                if !paused {
                    self.mark_dirty(ch);
                    let topic = self.channels[ch].topic;
                    self.schedule_drain(topic);
                }
                Ok(())
            }
        }
    }

    fn topic_key(&self, t: &Name) -> Result<usize, AdminError> {
        self.topic_index.get(t).copied().ok_or(AdminError::TopicNotFound)
    }

    fn channel_key(&self, t: &Name, c: &Name) -> Result<usize, AdminError> {
        let tkey = self.topic_key(t)?;
        self.topics[tkey]
            .channels
            .iter()
            .copied()
            .find(|&k| self.channels[k].name == *c)
            .ok_or(AdminError::ChannelNotFound)
    }

    /// nsqd closes every consumer of a deleted channel; their in-flight messages go with it.
    fn delete_channel_closing_consumers<N: Net<Detached = D>>(&mut self, net: &mut N, ch: usize) {
        for conn in self.channels[ch].consumers.clone() {
            if let Some(s) = self.session_mut(conn) {
                // The session no longer points at the channel: its slab key may be reused.
                s.channel = None;
                s.blocked = Some(Blocked::Closing);
            }
            net.close(conn);
        }
        self.channels[ch].consumers.clear();
        self.delete_channel(ch);
    }

    /// This shard's topics and producers, filtered as asked.
    fn stats_part<N: Net<Detached = D>>(&mut self, net: &N, filter: &StatsFilter) -> ShardStats {
        let now = net.now();
        let quantiles = self.opts.e2e_percentiles.clone();
        let mut topics = Vec::new();
        let mut topic_found = false;
        let mut e2e: HashMap<usize, Histogram> = HashMap::new();
        for (key, channel) in self.channels.iter_mut() {
            if let Some(w) = channel.e2e.as_mut() {
                w.merge_into(now, e2e.entry(key).or_default());
            }
        }
        for (_, topic) in self.topics.iter() {
            let mut topic_e2e = Histogram::default();
            for ch in &topic.channels {
                if let Some(h) = e2e.get(ch) {
                    topic_e2e.merge(h);
                }
            }
            match filter.topic.as_deref() {
                Some(t) if t != topic.name.as_str() => continue,
                Some(_) => topic_found = true,
                None => {}
            }
            let mut channels: Vec<ChannelStats> = Vec::new();
            for &ch in &topic.channels {
                let c = &self.channels[ch];
                if filter.channel.as_deref().is_some_and(|n| n != c.name.as_str()) {
                    continue;
                }
                let clients = filter.include_clients.then(|| {
                    c.consumers
                        .iter()
                        .filter_map(|&conn| self.session(conn))
                        .map(|s| client_stats(s, net, filter))
                        .collect()
                });
                channels.push(ChannelStats {
                    channel_name: c.name.to_string(),
                    depth: c.depth() as i64,
                    backend_depth: c.queue.backend_depth() as i64,
                    in_flight_count: c.in_flight.len() as i64,
                    deferred_count: c.deferred.len() as i64,
                    message_count: c.message_count,
                    requeue_count: c.requeue_count,
                    timeout_count: c.timeout_count,
                    client_count: c.consumers.len() as i64,
                    clients,
                    paused: c.paused,
                    e2e_processing_latency: e2e
                        .get(&ch)
                        .map_or_else(E2eLatency::none, |h| e2e_stats(h, &quantiles)),
                });
            }
            if filter.channel.is_some() && channels.is_empty() {
                continue;
            }
            channels.sort_by(|a, b| a.channel_name.cmp(&b.channel_name));
            topics.push(TopicStats {
                topic_name: topic.name.to_string(),
                channels,
                depth: topic.depth() as i64,
                backend_depth: topic.queue.backend_depth() as i64,
                message_count: topic.message_count,
                message_bytes: topic.message_bytes,
                paused: topic.paused,
                // nsqd reports none for a topic without channels.
                e2e_processing_latency: if topic.channels.is_empty() {
                    E2eLatency::none()
                } else {
                    e2e_stats(&topic_e2e, &quantiles)
                },
            });
        }
        // With a topic filter nsqd still lists every producer; only their pub_counts are
        // filtered.
        let producers = if filter.include_clients {
            self.sessions
                .iter()
                .flatten()
                .filter(|s| !s.pub_counts.is_empty())
                .map(|s| client_stats(s, net, filter))
                .collect()
        } else {
            Vec::new()
        };
        let connections = self.sessions.iter().flatten().count() as u64;
        let corrupt_records_skipped = self
            .channels
            .iter()
            .filter_map(|(_, c)| c.queue.disk.backend.as_ref())
            .chain(
                self.topics
                    .iter()
                    .filter_map(|(_, t)| t.queue.disk.backend.as_ref()),
            )
            .map(|b| b.corrupt_skipped())
            .sum();
        ShardStats {
            corrupt_records_skipped,
            topic_missing: filter.topic.is_some() && !topic_found,
            topics,
            producers,
            connections,
            shards: vec![ShardRuntime {
                shard: self.shard,
                ..self.runtime
            }],
        }
    }
}

/// nsqd's `clientV2.Stats(topic)`: a client that has published, subscriber or not, carries its
/// pub_counts, at most one entry (nsqd's loop stops at the first match), only the filter's topic
/// under a topic filter.
fn client_stats<N: Net>(s: &super::Session, net: &N, filter: &StatsFilter) -> ClientStats {
    let tls = net.tls_info(s.conn).unwrap_or_default();
    ClientStats {
        client_id: s.client_name.clone(),
        hostname: s.hostname.clone(),
        version: "V2".to_string(),
        remote_address: s.remote_address.clone(),
        state: s.state as i32,
        ready_count: if s.state == ClientState::Subscribed {
            s.rdy
        } else {
            0
        },
        in_flight_count: s.in_flight,
        message_count: s.message_count,
        finish_count: s.finish_count,
        requeue_count: s.requeue_count,
        connect_ts: s.connect_ts,
        sample_rate: s.sample_rate,
        deflate: s.deflate,
        snappy: s.snappy,
        user_agent: s.user_agent.clone(),
        authed: s.auth.is_some(),
        auth_identity: s.auth.as_ref().map_or_else(String::new, |a| a.identity.clone()),
        auth_identity_url: s
            .auth
            .as_ref()
            .map_or_else(String::new, |a| a.identity_url.clone()),
        topology_zone: s.topology_zone.clone(),
        topology_region: s.topology_region.clone(),
        pub_counts: s
            .pub_counts
            .iter()
            .filter(|(t, _)| filter.topic.as_deref().is_none_or(|f| f == t.as_str()))
            .take(1)
            .map(|(t, n)| PubCount {
                topic: t.to_string(),
                count: *n,
            })
            .collect(),
        tls: s.tls,
        tls_cipher_suite: tls.cipher_suite,
        tls_version: tls.version,
        tls_negotiated_protocol: tls.negotiated_protocol,
        tls_negotiated_protocol_is_mutual: tls.negotiated_protocol_is_mutual,
    }
}
