//! SUB, RDY, FIN, REQ, TOUCH and CLS, delivery to consumers, and the in-flight/deferred scan.

use std::cmp::Reverse;
use std::time::Instant;

use super::{ms, shard_for_topic, Blocked, Broker, Migration, Net};
use crate::channel::Channel;
use crate::error::{ErrorCode, ProtocolError};
use crate::message::{Message, MessageId};
use crate::names::Name;
use crate::protocol::{self, ClientState};

/// Bodies up to this size are copied into the connection's send buffer; larger ones are sent
/// from the shared allocation. A copy of a small body costs less than an extra iovec.
const BODY_COPY_BYTES_MAX: usize = 2048;

/// A consumer with this much output not yet taken by the kernel gets no more deliveries until it
/// drains, so a client that stops reading cannot grow the broker's memory.
pub const CONSUMER_OUTPUT_BYTES_MAX: usize = 1024 * 1024;

/// A connection with this much output not yet taken by the kernel has its input left unread
/// until the output drains: a producer that never reads its `OK`s cannot grow the broker's
/// memory (nsqd closes such a client when its write deadline passes; here the read deadline
/// does, as no command is read meanwhile). Subscribed consumers are exempt: their output is
/// bounded by `CONSUMER_OUTPUT_BYTES_MAX` and their FINs must not wait for a large delivery.
pub const INPUT_PAUSE_OUTPUT_BYTES: usize = 4 * CONSUMER_OUTPUT_BYTES_MAX;

impl<D: Send + 'static> Broker<D> {
    pub(super) fn sub<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        conn: u64,
        topic: Name,
        channel: Name,
    ) -> bool {
        let owner = shard_for_topic(&topic, self.shards);
        if owner == self.shard {
            return self.subscribe(net, conn, topic, channel);
        }
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        debug_assert!(s.pending.is_empty(), "commands wait for publish answers");
        s.pending_sub = Some((topic, channel));
        self.start_migration(net, conn);
        false
    }

    pub(super) fn start_migration<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        if let Some(s) = self.session_mut(conn) {
            s.blocked = Some(Blocked::Migrating);
        }
        net.detach(conn);
    }

    /// A consumer arriving from another shard: adopt its connection and finish its SUB here.
    pub(super) fn adopt<N: Net<Detached = D>>(&mut self, net: &mut N, m: Migration<D>) {
        let Migration {
            detached,
            mut session,
            topic,
            channel,
        } = m;
        let conn = net.attach(detached);
        if self.shutting_down {
            net.close(conn);
            return;
        }
        session.conn = conn;
        session.blocked = None;
        self.insert_session(session);
        self.arm_heartbeat(net, conn);
        self.arm_read_deadline(net, conn);
        if self.subscribe(net, conn, topic, channel) {
            self.process_input(net, conn);
        }
    }

    fn subscribe<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        conn: u64,
        topic: Name,
        channel: Name,
    ) -> bool {
        let tkey = self.topic_key_or_create(topic);
        let ch = self.channel_key_or_create(tkey, channel);
        let max = self.opts.max_channel_consumers;
        if max > 0 && self.channels[ch].consumers.len() >= max {
            let desc = format!("SUB failed consumers for {topic}:{channel} exceeds limit of {max}");
            self.fail(net, conn, &ProtocolError::new(ErrorCode::SubFailed, desc));
            return false;
        }
        self.channels[ch].consumers.push(conn);
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        s.state = ClientState::Subscribed;
        s.channel = Some(ch);
        self.write_response(net, conn, b"OK");
        true
    }

    pub(super) fn channel_key_or_create(&mut self, tkey: usize, name: Name) -> usize {
        let topic = &self.topics[tkey];
        if let Some(&k) = topic.channels.iter().find(|&&k| self.channels[k].name == name) {
            return k;
        }
        let mut channel = Channel::new(name, tkey);
        if !self.opts.e2e_percentiles.is_empty() {
            let window = super::ms(self.opts.e2e_window_ms);
            channel.e2e = Some(Box::new(crate::latency::E2eWindow::new(window, Instant::now())));
        }
        if !channel.ephemeral {
            // go-diskqueue's name for a channel's queue.
            let queue_name = format!("{}:{}", self.topics[tkey].name, name);
            channel.queue.disk.backend = self.open_backend(&queue_name);
        }
        let ephemeral = channel.ephemeral;
        let k = self.channels.insert(channel);
        self.topics[tkey].channels.push(k);
        self.log(format_args!(
            "TOPIC({}): new channel({name})",
            self.topics[tkey].name
        ));
        self.metadata_changed = true;
        self.registry_changed = true;
        self.schedule_drain(tkey);
        if !ephemeral {
            self.restore_deferred(k);
        }
        k
    }

    pub(super) fn rdy(&mut self, conn: u64, count: i64) {
        let Some(s) = self.session_mut(conn) else { return };
        s.rdy = count;
        if let Some(ch) = s.channel {
            self.mark_dirty(ch);
        }
    }

    pub(super) fn fin<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, id: MessageId) -> bool {
        let Some(ch) = self.session(conn).and_then(|s| s.channel) else {
            return true;
        };
        match self.channels[ch].in_flight.remove_owned(&id, conn) {
            Ok(entry) => {
                if let Some(e2e) = self.channels[ch].e2e.as_mut() {
                    let now_ns = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as i64);
                    e2e.record(net.now(), (now_ns - entry.msg.timestamp_ns).max(0) as u64);
                }
                if let Some(s) = self.session_mut(conn) {
                    s.in_flight -= 1;
                    s.finish_count += 1;
                }
                self.mark_dirty(ch);
            }
            Err(e) => self.fail(
                net,
                conn,
                &in_flight_error(ErrorCode::FinFailed, "FIN", &id, e.reason()),
            ),
        }
        true
    }

    pub(super) fn req<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        conn: u64,
        id: MessageId,
        timeout_ms: i64,
    ) -> bool {
        let Some(ch) = self.session(conn).and_then(|s| s.channel) else {
            return true;
        };
        match self.channels[ch].in_flight.remove_owned(&id, conn) {
            Ok(entry) => {
                if let Some(s) = self.session_mut(conn) {
                    s.in_flight -= 1;
                    s.requeue_count += 1;
                }
                self.channels[ch].requeue_count += 1;
                self.requeue(net, ch, entry.msg, timeout_ms);
            }
            Err(e) => self.fail(
                net,
                conn,
                &in_flight_error(ErrorCode::ReqFailed, "REQ", &id, e.reason()),
            ),
        }
        true
    }

    /// Back into the channel: at once, or after `delay_ms` through the deferred queue.
    fn requeue<N: Net<Detached = D>>(&mut self, net: &mut N, ch: usize, msg: Message, delay_ms: i64) {
        if delay_ms > 0 {
            let due = net.now() + ms(delay_ms);
            self.channels[ch].deferred.push(msg, due);
            self.schedule_scan(net, ch, due);
        } else {
            self.requeue_kept(ch, msg);
        }
    }

    /// Puts back a message its publisher already had acknowledged (REQ, a timeout, a due
    /// deferral). Should the disk refuse it, it stays in memory past `--mem-queue-size` rather
    /// than be lost (nsqd would answer E_REQ_FAILED or log, and lose it).
    fn requeue_kept(&mut self, ch: usize, msg: Message) {
        let keep = msg.clone();
        if self.requeue_now(ch, msg, &mut Vec::new()).is_err() {
            self.channels[ch].queue.memory.push_back(keep);
        }
    }

    pub(super) fn touch<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, id: MessageId) -> bool {
        let Some(s) = self.session(conn) else { return true };
        let Some(ch) = s.channel else { return true };
        let timeout = ms(s.msg_timeout_ms);
        let max = ms(self.opts.max_msg_timeout_ms);
        let now = net.now();
        if let Err(e) = self.channels[ch].in_flight.touch(&id, conn, now, timeout, max) {
            self.fail(
                net,
                conn,
                &in_flight_error(ErrorCode::TouchFailed, "TOUCH", &id, e.reason()),
            );
        }
        true
    }

    pub(super) fn cls<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) -> bool {
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        s.state = ClientState::Closing;
        s.rdy = 0;
        self.write_response(net, conn, b"CLOSE_WAIT");
        true
    }

    /// A consumer left: ephemeral channels (and then ephemeral topics) go with their last one.
    pub(super) fn remove_consumer<N: Net<Detached = D>>(&mut self, _net: &mut N, ch: usize, conn: u64) {
        let Some(c) = self.channels.get_mut(ch) else {
            return;
        };
        c.remove_consumer(conn);
        if c.ephemeral && c.consumers.is_empty() {
            self.delete_channel(ch);
        } else {
            self.mark_dirty(ch);
        }
    }

    pub(super) fn delete_channel(&mut self, ch: usize) {
        let c = self.channels.remove(ch);
        self.log(format_args!(
            "TOPIC({}): deleting channel {}",
            self.topics[c.topic].name, c.name
        ));
        self.log(format_args!("CHANNEL({}): deleting", c.name));
        self.metadata_changed = true;
        self.registry_changed = true;
        if let Some(b) = c.queue.disk.backend {
            b.delete();
        }
        self.scan_at.remove(&ch);
        let tkey = c.topic;
        let topic = &mut self.topics[tkey];
        topic.channels.retain(|&k| k != ch);
        if topic.ephemeral && topic.channels.is_empty() {
            let t = self.topics.remove(tkey);
            self.topic_index.remove(&t.name);
            self.log(format_args!("TOPIC({}): deleting", t.name));
        }
    }

    pub(super) fn dispatch_dirty<N: Net<Detached = D>>(&mut self, net: &mut N) {
        while let Some(ch) = self.dirty.pop() {
            self.dispatch(net, ch);
        }
    }

    /// Hands ready messages to eligible consumers, round-robin, one at a time.
    fn dispatch<N: Net<Detached = D>>(&mut self, net: &mut N, ch: usize) {
        let Some(c) = self.channels.get_mut(ch) else {
            return;
        };
        c.dirty = false;
        if c.paused || c.consumers.is_empty() || c.queue.is_empty() {
            return;
        }
        let now = net.now();
        let mut served: Vec<u64> = Vec::new();
        let mut earliest_deadline: Option<Instant> = None;
        loop {
            let c = &self.channels[ch];
            if c.queue.is_empty() {
                break;
            }
            let Some(slot) = self.next_eligible(net, ch) else {
                break;
            };
            let c = &mut self.channels[ch];
            let conn = c.consumers[slot];
            c.next_consumer = (slot + 1) % c.consumers.len();
            let Some(mut msg) = c.queue.pop(|m| m) else { break };
            let idx = super::conn_index(conn);
            let sample_rate = self.sessions[idx].as_ref().map_or(0, |s| s.sample_rate);
            if sample_rate > 0 && (self.random() % 100) as i32 > sample_rate {
                continue; // sampled out: consumed for this channel, as in nsqd
            }
            msg.attempts = msg.attempts.wrapping_add(1);
            write_message(net, conn, &msg);
            let Some(s) = self.sessions[idx].as_mut() else {
                break;
            };
            s.in_flight += 1;
            s.message_count += 1;
            let deadline = now + ms(s.msg_timeout_ms);
            if !served.contains(&conn) {
                served.push(conn);
            }
            self.channels[ch].in_flight.insert(msg, conn, now, deadline);
            earliest_deadline = Some(earliest_deadline.map_or(deadline, |d: Instant| d.min(deadline)));
        }
        if let Some(deadline) = earliest_deadline {
            self.schedule_scan(net, ch, deadline);
            // Room was made: a topic backlog waiting for it may move on.
            let topic = self.channels[ch].topic;
            self.schedule_drain(topic);
        }
        for conn in served {
            self.flush_deliveries(net, ch, conn);
        }
    }

    fn next_eligible<N: Net<Detached = D>>(&self, net: &N, ch: usize) -> Option<usize> {
        let c = &self.channels[ch];
        let n = c.consumers.len();
        (0..n).map(|i| (c.next_consumer + i) % n).find(|&slot| {
            let conn = c.consumers[slot];
            self.session(conn).is_some_and(|s| s.has_rdy_room())
                && net.pending_output(conn) < CONSUMER_OUTPUT_BYTES_MAX
        })
    }

    /// nsqd's output buffering: messages wait for the flush timer while the client can take
    /// more and its buffer has room; otherwise they go out now (spec §5.7).
    fn flush_deliveries<N: Net<Detached = D>>(&mut self, net: &mut N, ch: usize, conn: u64) {
        let paused = self.channels[ch].paused;
        let Some(s) = self.session(conn) else { return };
        let eligible = !paused && s.has_rdy_room();
        let buffered = net.pending_output(conn) as i64;
        if !eligible || buffered >= s.output_buffer_size || s.output_buffer_timeout_ms == 0 {
            net.flush(conn);
        } else {
            self.arm_flush(net, conn);
        }
    }

    pub(super) fn schedule_scan<N: Net<Detached = D>>(&mut self, net: &mut N, ch: usize, due: Instant) {
        if let Some(&at) = self.scan_at.get(&ch) {
            if at <= due {
                return;
            }
        }
        self.scan_at.insert(ch, due);
        self.scan.push(Reverse((due, ch)));
        if self.scan_timer.is_none_or(|t| due < t) {
            self.scan_timer = Some(due);
            net.timer_at(due, super::timers::SCAN_TOKEN);
        }
    }

    /// Times out expired in-flight messages and releases due deferred ones.
    pub(super) fn run_scan<N: Net<Detached = D>>(&mut self, net: &mut N) {
        let now = net.now();
        self.scan_timer = None;
        while let Some(&Reverse((due, ch))) = self.scan.peek() {
            if due > now {
                break;
            }
            self.scan.pop();
            if self.scan_at.get(&ch) != Some(&due) {
                continue; // stale: the channel was rescheduled or deleted
            }
            self.scan_at.remove(&ch);
            self.scan_channel(net, ch, now);
        }
        if let Some(&Reverse((due, _))) = self.scan.peek() {
            self.scan_timer = Some(due);
            net.timer_at(due, super::timers::SCAN_TOKEN);
        }
    }

    fn scan_channel<N: Net<Detached = D>>(&mut self, net: &mut N, ch: usize, now: Instant) {
        let Some(c) = self.channels.get_mut(ch) else {
            return;
        };
        let mut ready: Vec<Message> = Vec::new();
        let mut timed_out: Vec<u64> = Vec::new();
        while let Some(entry) = c.in_flight.pop_expired(now) {
            c.timeout_count += 1;
            timed_out.push(entry.client);
            ready.push(entry.msg);
        }
        while let Some(msg) = c.deferred.pop_due(now) {
            ready.push(msg);
        }
        let next = c.next_deadline();
        let moved = !ready.is_empty();
        for msg in ready {
            self.requeue_kept(ch, msg);
        }
        for conn in timed_out {
            if let Some(s) = self.session_mut(conn) {
                if s.channel == Some(ch) {
                    s.in_flight -= 1;
                }
            }
        }
        if moved {
            self.mark_dirty(ch);
        }
        if let Some(next) = next {
            self.schedule_scan(net, ch, next);
        }
    }
}

fn in_flight_error(code: ErrorCode, verb: &str, id: &MessageId, reason: &str) -> ProtocolError {
    let mut desc = Vec::with_capacity(64);
    desc.extend_from_slice(verb.as_bytes());
    desc.push(b' ');
    desc.extend_from_slice(id.as_bytes());
    desc.extend_from_slice(b" failed ");
    desc.extend_from_slice(reason.as_bytes());
    ProtocolError::new(code, desc)
}

fn write_message<N: Net>(net: &mut N, conn: u64, msg: &Message) {
    let header = protocol::encode_message_header(msg);
    net.write(conn, &header);
    if msg.body.len() <= BODY_COPY_BYTES_MAX {
        net.write(conn, &msg.body);
    } else {
        net.write_bytes(conn, msg.body.clone());
    }
}
