//! PUB, MPUB and DPUB: applied on the topic's owner shard, answered in command order on the
//! connection's shard.

use std::ops::Range;

use bytes::Bytes;

use super::durability::{AckTo, QueueRef};
use super::{
    ms, shard_for_topic, Blocked, Broker, Net, Pending, PubKind, PublishReply, PublishReq, ShardMsg,
};
use crate::error::{ErrorCode, ProtocolError};
use crate::message::Message;
use crate::names::Name;
use crate::protocol;
use crate::spill::Put;
use crate::topic::{Topic, TopicEntry};

/// Messages one shard may hold for another before its producers stop being read. Bounds the
/// memory a slow owner shard can make a fast producer shard hold.
pub const PUBLISH_BATCH_MESSAGES_MAX: usize = 4096;

/// Messages a topic hands to its channels per turn while it works off a backlog.
pub const TOPIC_DRAIN_BATCH_MAX: usize = 4096;

impl PubKind {
    fn failed_code(self) -> ErrorCode {
        match self {
            PubKind::Pub => ErrorCode::PubFailed,
            PubKind::Mpub => ErrorCode::MpubFailed,
            PubKind::Dpub => ErrorCode::DpubFailed,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            PubKind::Pub => "PUB",
            PubKind::Mpub => "MPUB",
            PubKind::Dpub => "DPUB",
        }
    }
}

impl<D: Send + 'static> Broker<D> {
    /// Takes a decoded publish still at the front of the input. Returns false when the input
    /// must not be read further for now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish_cmd<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        conn: u64,
        kind: PubKind,
        topic: Name,
        defer_ms: i64,
        bodies: &[Range<usize>],
        len: usize,
    ) -> bool {
        let owner = shard_for_topic(&topic, self.shards);
        if owner != self.shard {
            let outbox = &mut self.outboxes[owner];
            if outbox.publish_msgs > 0 && outbox.publish_msgs + bodies.len() > PUBLISH_BATCH_MESSAGES_MAX {
                // Leave the command in the input; it is decoded again once the outbox drains.
                outbox.waiters.push(conn);
                if let Some(s) = self.session_mut(conn) {
                    s.blocked = Some(Blocked::Outbox(owner));
                }
                net.pause_reading(conn);
                net.poll_soon();
                return false;
            }
        }
        let Some(input) = net.input(conn) else {
            return false;
        };
        let frame: Bytes = input.split_to(len).freeze();
        let bodies: Vec<Bytes> = bodies.iter().map(|r| frame.slice(r.clone())).collect();
        let Some(session) = self.session_mut(conn) else {
            return false;
        };
        session.count_publish(topic, bodies.len() as u64);
        let seq = session.next_seq;
        session.next_seq += 1;
        session.pending.push_back(Pending { seq, result: None });
        if owner == self.shard {
            match self.apply_publish(net, kind, topic, defer_ms, bodies) {
                Ok(needs) if needs.is_empty() => self.complete_publish(net, conn, seq, None),
                Ok(needs) => {
                    self.ack_when_durable(AckTo::Tcp { conn, seq }, needs);
                    true
                }
                Err(e) => self.complete_publish(net, conn, seq, Some(Box::new(e))),
            }
        } else {
            let outbox = &mut self.outboxes[owner];
            outbox.publish_msgs += bodies.len();
            outbox.publishes.push(PublishReq {
                conn,
                seq,
                kind,
                topic,
                defer_ms,
                bodies,
            });
            true
        }
    }

    /// Publishes forwarded by shard `from`; the answers go back in one batch.
    pub(super) fn apply_forwarded<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        from: usize,
        reqs: Vec<PublishReq>,
    ) {
        for req in reqs {
            let ack = AckTo::Forwarded {
                from,
                conn: req.conn,
                seq: req.seq,
            };
            match self.apply_publish(net, req.kind, req.topic, req.defer_ms, req.bodies) {
                Ok(needs) => self.ack_when_durable(ack, needs),
                Err(e) => self.outboxes[from].replies.push(PublishReply {
                    conn: req.conn,
                    seq: req.seq,
                    error: Some(Box::new(e)),
                }),
            }
        }
    }

    /// Puts the messages into the topic, all or none.
    pub(super) fn apply_publish<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        kind: PubKind,
        topic: Name,
        defer_ms: i64,
        bodies: Vec<Bytes>,
    ) -> Result<Vec<(QueueRef, u64)>, ProtocolError> {
        let tkey = self.topic_key_or_create(topic);
        let failed = |reason: &str| {
            ProtocolError::new(kind.failed_code(), format!("{} failed {}", kind.verb(), reason))
        };
        if let Err(reason) = self.check_room(tkey, bodies.len(), defer_ms) {
            return Err(failed(reason));
        }
        let timestamp_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let mut needs = Vec::new();
        for body in bodies {
            let msg = Message {
                id: self.ids.next_id(),
                timestamp_ns,
                attempts: 0,
                body,
            };
            self.put_to_topic(net, tkey, msg, defer_ms, &mut needs)
                .map_err(|e| failed(&e))?;
        }
        if !self.durable_acks {
            needs.clear();
        }
        Ok(needs)
    }

    /// Until disk queues exist, a full memory queue refuses the publish rather than lose it.
    fn check_room(&self, tkey: usize, n: usize, defer_ms: i64) -> Result<(), &'static str> {
        let cap = self.opts.mem_queue_size;
        let can_spill = self.can_spill();
        let topic = &self.topics[tkey];
        if topic.is_flowing() && topic.queue.is_empty() {
            if defer_ms > 0 {
                return Ok(()); // deferred messages wait in the channels' deferred queues
            }
            let full = topic
                .channels
                .iter()
                .map(|&c| &self.channels[c])
                .any(|c| !c.ephemeral && !c.queue.has_room(n, cap, can_spill));
            if full {
                return Err("channel memory queue full (no disk queue)");
            }
        } else if !topic.ephemeral && !topic.queue.has_room(n, cap, can_spill) {
            return Err("topic memory queue full (no disk queue)");
        }
        Ok(())
    }

    /// The topic, created if missing. A topic created while a lookupd is known starts only once
    /// the channels lookupd knows for it exist (`start_topic`).
    pub(super) fn topic_key_or_create(&mut self, name: Name) -> usize {
        self.topic_key_or_create_as(name, true)
    }

    /// `topic_key_or_create`; `ask_lookupd` false starts a new topic at once (loading
    /// `nsqd.dat`, as nsqd does).
    pub(super) fn topic_key_or_create_as(&mut self, name: Name, ask_lookupd: bool) -> usize {
        if let Some(&k) = self.topic_index.get(&name) {
            return k;
        }
        let mut topic = Topic::new(name);
        if !topic.ephemeral {
            topic.queue.disk.backend = self.open_backend(name.as_str());
        }
        if ask_lookupd {
            topic.awaiting_channels = self.query_channels(name);
        }
        let k = self.topics.insert(topic);
        self.topic_index.insert(name, k);
        self.metadata_changed = true;
        self.registry_changed = true;
        self.log(format_args!("TOPIC({name}): created"));
        k
    }

    /// Fans a message out to every channel, or keeps it in the topic while it has none, is
    /// paused, or works off a backlog. Ephemeral queues drop what does not fit, as nsqd's
    /// ephemeral backends do.
    pub(super) fn put_to_topic<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        tkey: usize,
        msg: Message,
        defer_ms: i64,
        needs: &mut Vec<(QueueRef, u64)>,
    ) -> Result<(), String> {
        let cap = self.opts.mem_queue_size;
        let topic = &mut self.topics[tkey];
        topic.message_count += 1;
        topic.message_bytes += msg.body.len() as u64;
        if !topic.is_flowing() || !topic.queue.is_empty() {
            // Behind a backlog, a message waits its turn so the topic keeps its order.
            self.ensure_backend(QueueRef::Topic(tkey));
            let topic = &mut self.topics[tkey];
            let ephemeral = topic.ephemeral;
            let entry = TopicEntry { msg, defer_ms };
            let put = topic
                .queue
                .put(entry, cap, ephemeral, |e| &e.msg, &mut self.scratch);
            self.schedule_drain(tkey);
            return self.account_put(QueueRef::Topic(tkey), put, needs);
        }
        let channels = std::mem::take(&mut topic.channels);
        let mut failed = None;
        for &ch in &channels {
            if let Err(e) = self.put_to_channel(net, ch, msg.clone(), defer_ms, needs) {
                failed.get_or_insert(e);
            }
        }
        self.topics[tkey].channels = channels;
        // A channel that could not take its copy fails the publish (nsqd would have accepted
        // it into the topic and lost the copy later): never acknowledge what is not kept. The
        // channels that took it keep it; a retry may deliver it twice there (at-least-once).
        failed.map_or(Ok(()), Err)
    }

    /// Books a put: a disk write joins the fsync pass (and, with durable acks, the publish's
    /// needs); a failed disk write marks the node unhealthy until a later write succeeds.
    pub(super) fn account_put(
        &mut self,
        q: QueueRef,
        put: Put,
        needs: &mut Vec<(QueueRef, u64)>,
    ) -> Result<(), String> {
        match put {
            Put::Memory | Put::Dropped => Ok(()),
            Put::Disk(pos) => {
                self.health_error = None;
                self.list_for_sync(q);
                needs.push((q, pos));
                Ok(())
            }
            Put::Failed(e) => {
                self.health_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// A copy into one channel; a disk failure marks the node unhealthy.
    pub(super) fn put_to_channel<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        ch: usize,
        msg: Message,
        defer_ms: i64,
        needs: &mut Vec<(QueueRef, u64)>,
    ) -> Result<(), String> {
        let c = &mut self.channels[ch];
        c.message_count += 1;
        if defer_ms > 0 {
            let due = net.now() + ms(defer_ms);
            c.deferred.push(msg, due);
            self.schedule_scan(net, ch, due);
            return Ok(());
        }
        self.requeue_now(ch, msg, needs)
    }

    /// Puts a ready message into the channel's queue: memory, else disk.
    pub(super) fn requeue_now(
        &mut self,
        ch: usize,
        msg: Message,
        needs: &mut Vec<(QueueRef, u64)>,
    ) -> Result<(), String> {
        let mut cap = self.opts.mem_queue_size;
        let c = &self.channels[ch];
        if c.ephemeral && c.queue.memory.len() >= cap {
            // nsqd hands an ephemeral channel's message straight to a consumer ready for it
            // (its memory channel is a Go channel the consumers' pumps wait on) and drops it
            // only when none is: room for what the ready consumers can take now.
            cap = cap.max(self.ready_room(ch));
        }
        self.ensure_backend(QueueRef::Channel(ch));
        let c = &mut self.channels[ch];
        let ephemeral = c.ephemeral;
        let put = c.queue.put(msg, cap, ephemeral, |m| m, &mut self.scratch);
        self.mark_dirty(ch);
        self.account_put(QueueRef::Channel(ch), put, needs)
    }

    /// Messages the channel's consumers could be sent right now (RDY minus in flight).
    fn ready_room(&self, ch: usize) -> usize {
        let c = &self.channels[ch];
        if c.paused {
            return 0;
        }
        c.consumers
            .iter()
            .filter_map(|&conn| self.session(conn))
            .filter(|s| s.has_rdy_room())
            .map(|s| (s.rdy - s.in_flight) as usize)
            .sum()
    }

    /// Queues the topic to move its backlog into its channels at the end of this turn.
    pub(super) fn schedule_drain(&mut self, tkey: usize) {
        if let Some(topic) = self.topics.get_mut(tkey) {
            if !topic.draining && !topic.queue.is_empty() && topic.is_flowing() {
                topic.draining = true;
                self.draining.push(tkey);
            }
        }
    }

    /// Moves what waited in the topic into its channels, at most `TOPIC_DRAIN_BATCH_MAX` messages
    /// a turn so a large backlog never stalls the shard, and only while every channel has room
    /// (a full channel resumes the drain when it delivers).
    pub(super) fn drain_topics<N: Net<Detached = D>>(&mut self, net: &mut N) {
        let cap = self.opts.mem_queue_size;
        let can_spill = self.can_spill();
        for tkey in std::mem::take(&mut self.draining) {
            let Some(topic) = self.topics.get_mut(tkey) else {
                continue;
            };
            topic.draining = false;
            if !topic.is_flowing() {
                continue;
            }
            let channels = topic.channels.clone();
            let mut blocked = false;
            for _ in 0..TOPIC_DRAIN_BATCH_MAX {
                let room = channels
                    .iter()
                    .map(|&c| &self.channels[c])
                    .all(|c| c.ephemeral || c.queue.has_room(1, cap, can_spill));
                if !room {
                    blocked = true;
                    break;
                }
                let Some(entry) = self.topics[tkey].queue.pop(|msg| TopicEntry { msg, defer_ms: 0 }) else {
                    break;
                };
                // Copies drained from a backlog were acknowledged when they reached the topic.
                let mut needs = Vec::new();
                let mut failed = false;
                for &ch in &channels {
                    failed |= self
                        .put_to_channel(net, ch, entry.msg.clone(), entry.defer_ms, &mut needs)
                        .is_err();
                }
                if failed {
                    // A channel's disk is full: keep the message in the topic and try again
                    // when a channel delivers (channels that took it may see it twice).
                    self.topics[tkey].queue.memory.push_front(entry);
                    blocked = true;
                    break;
                }
            }
            if !blocked {
                self.schedule_drain(tkey);
            }
        }
        if !self.draining.is_empty() {
            net.poll_soon();
        }
    }

    /// Records the answer to publish `seq` and writes every answer now due, in command order.
    pub(super) fn complete_publish<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        conn: u64,
        seq: u64,
        error: Option<Box<ProtocolError>>,
    ) -> bool {
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        let Some(front) = s.pending.front().map(|p| p.seq) else {
            return true;
        };
        let Some(slot) = seq.checked_sub(front).and_then(|i| s.pending.get_mut(i as usize)) else {
            return true;
        };
        debug_assert_eq!(slot.seq, seq);
        let failed = error.is_some();
        slot.result = Some(error);
        let mut out = Vec::new();
        let mut fatal = None;
        while s.pending.front().is_some_and(|p| p.result.is_some()) {
            let done = s.pending.pop_front().and_then(|p| p.result).expect("checked");
            match done {
                None => protocol::encode_response(&mut out, b"OK"),
                Some(err) => {
                    fatal = Some(err);
                    break;
                }
            }
        }
        let resume = s.pending.is_empty() && s.blocked == Some(Blocked::AwaitingReplies);
        if !out.is_empty() {
            net.write(conn, &out);
            net.flush(conn);
        }
        if let Some(err) = fatal {
            self.fail(net, conn, &err);
            return false;
        }
        if failed {
            // Every publish error is fatal: nsqd would run nothing after this command, so read
            // nothing more; the connection closes once the answers before it are written.
            if let Some(s) = self.session_mut(conn) {
                s.blocked = Some(Blocked::Closing);
            }
            return false;
        }
        if resume {
            if let Some(s) = self.session_mut(conn) {
                s.blocked = None;
            }
            // The command that waited is decoded again on the next turn.
            net.resume_reading(conn);
        }
        true
    }

    /// Hands what waits in the outboxes to the mailboxes; resumes producers once there is room.
    pub(super) fn flush_outboxes<N: Net<Detached = D>>(&mut self, net: &mut N) {
        for dst in 0..self.shards {
            if dst == self.shard {
                continue;
            }
            let outbox = &mut self.outboxes[dst];
            if !outbox.replies.is_empty() {
                let batch = std::mem::take(&mut outbox.replies);
                if let Err(ShardMsg::PublishReplies(batch)) = net.send(dst, ShardMsg::PublishReplies(batch)) {
                    self.outboxes[dst].replies = batch;
                    net.poll_soon();
                }
            }
            let outbox = &mut self.outboxes[dst];
            while let Some(m) = outbox.others.pop_front() {
                if let Err(m) = net.send(dst, m) {
                    self.outboxes[dst].others.push_front(m);
                    net.poll_soon();
                    break;
                }
            }
            let outbox = &mut self.outboxes[dst];
            if !outbox.publishes.is_empty() {
                let batch = std::mem::take(&mut outbox.publishes);
                match net.send(dst, ShardMsg::Publish(batch)) {
                    Ok(()) => {
                        self.outboxes[dst].publish_msgs = 0;
                        let waiters = std::mem::take(&mut self.outboxes[dst].waiters);
                        for conn in waiters {
                            if let Some(s) = self.session_mut(conn) {
                                if s.blocked == Some(Blocked::Outbox(dst)) {
                                    s.blocked = None;
                                    // Input left unread is decoded again next turn.
                                    net.resume_reading(conn);
                                }
                            }
                        }
                    }
                    Err(ShardMsg::Publish(batch)) => {
                        self.outboxes[dst].publishes = batch;
                        net.poll_soon();
                    }
                    Err(_) => unreachable!("send returns the message it was given"),
                }
            }
        }
    }
}

impl Topic {
    /// Messages waiting in the topic itself (memory and disk).
    pub fn depth(&self) -> usize {
        self.queue.depth() as usize
    }
}
