//! Disk backends for topics and channels: opening them, driving their fsyncs through the
//! runtime, durable acknowledgements, and writing everything down at shutdown.
//!
//! Beyond nsqd: with `--sync-every=1` a publish is answered only once the fsync covering every
//! disk write it caused has completed, so an acknowledged message survives `kill -9` and power
//! loss. Concurrent publishes share one fsync per queue per loop turn (group commit).

use std::collections::HashMap;
use std::time::Duration;

use super::{Broker, Net, Origin, PublishReply, Response};
use crate::backend::{Backend, BackendFactory};
use crate::message::{IdRange, Message};
use crate::spill::DiskSide;
use crate::topic::TopicEntry;

/// A topic's or a channel's queue, by slab key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueRef {
    Topic(usize),
    Channel(usize),
}

/// Where a publish's `OK` goes once it is durable.
#[derive(Clone, Copy, Debug)]
pub enum AckTo {
    Tcp {
        conn: u64,
        seq: u64,
    },
    Forwarded {
        from: usize,
        conn: u64,
        seq: u64,
    },
    /// A front-end request asked on this shard; `ids` are the publish's message IDs.
    Front(Origin, IdRange),
    /// A front-end request that came from shard `from`.
    FrontRemote {
        from: usize,
        origin: Origin,
        ids: IdRange,
    },
}

#[derive(Debug)]
pub(super) struct SyncWaiter {
    needs: Vec<(QueueRef, u64)>,
    ack: AckTo,
}

/// One queue's fsync round in flight.
#[derive(Debug)]
pub(super) struct SyncRound {
    queue: QueueRef,
    backend_token: u64,
    remaining: usize,
    failed: Option<String>,
}

/// Disk-related state of a broker.
#[derive(Default)]
pub(super) struct Durability {
    pub factory: Option<Box<dyn BackendFactory>>,
    pub sync_list: Vec<QueueRef>,
    pub rounds: HashMap<u64, SyncRound>,
    pub waiters: Vec<SyncWaiter>,
    pub next_token: u64,
    pub timer_armed: bool,
}

/// How often queues with unsynced writes are looked at again for `--sync-timeout`.
const SYNC_RECHECK: Duration = Duration::from_millis(100);

impl<D: Send + 'static> Broker<D> {
    /// Gives the broker durable queues. Without a factory every queue is memory-only.
    pub fn set_backend_factory(&mut self, factory: Box<dyn BackendFactory>) {
        self.durable_acks = factory.durable_acks();
        self.durability.factory = Some(factory);
    }

    /// Opens the backend of a non-ephemeral queue; failures are logged by the factory and the
    /// queue stays memory-only (it then refuses what memory cannot hold).
    pub(super) fn open_backend(&mut self, name: &str) -> Option<Box<dyn Backend>> {
        let factory = self.durability.factory.as_ref()?;
        if !factory.exists(name) {
            return None;
        }
        factory.open(name).ok()
    }

    /// Whether queues may open a backend when their memory is full.
    pub(super) fn can_spill(&self) -> bool {
        self.durability.factory.is_some()
    }

    /// Opens a queue's backend the first time it needs one (memory full): a queue that never
    /// overflows never creates files.
    pub(super) fn ensure_backend(&mut self, q: QueueRef) {
        let cap = self.opts.mem_queue_size;
        let Some(factory) = self.durability.factory.as_ref() else {
            return;
        };
        // Runs for every message put: decide before building the queue's name.
        let name = match q {
            QueueRef::Topic(k) => {
                let t = &self.topics[k];
                if t.ephemeral || t.queue.disk.backend.is_some() || !t.queue.spills_next(cap) {
                    return;
                }
                t.name.to_string()
            }
            QueueRef::Channel(k) => {
                let c = &self.channels[k];
                if c.ephemeral || c.queue.disk.backend.is_some() || !c.queue.spills_next(cap) {
                    return;
                }
                format!("{}:{}", self.topics[c.topic].name, c.name)
            }
        };
        let opened = factory.open(&name);
        if let Some(disk) = self.disk_of(q) {
            match opened {
                Ok(b) => {
                    disk.backend = Some(b);
                    disk.open_failed = None;
                }
                Err(e) => disk.open_failed = Some(e),
            }
        }
    }

    fn disk_of(&mut self, q: QueueRef) -> Option<&mut DiskSide> {
        match q {
            QueueRef::Topic(k) => self.topics.get_mut(k).map(|t| &mut t.queue.disk),
            QueueRef::Channel(k) => self.channels.get_mut(k).map(|c| &mut c.queue.disk),
        }
    }

    pub(super) fn list_for_sync(&mut self, q: QueueRef) {
        if let Some(disk) = self.disk_of(q) {
            if !disk.sync_listed {
                disk.sync_listed = true;
                self.durability.sync_list.push(q);
            }
        }
    }

    /// Answers the publish now if nothing it wrote needs an fsync, else once the fsyncs are done.
    pub(super) fn ack_when_durable(&mut self, ack: AckTo, needs: Vec<(QueueRef, u64)>) {
        self.durability.waiters.push(SyncWaiter { needs, ack });
        self.release_waiters(None);
    }

    /// Starts fsync rounds for queues whose policy calls for one; once per turn.
    pub(super) fn run_syncs<N: Net<Detached = D>>(&mut self, net: &mut N) {
        if self.durability.sync_list.is_empty() {
            return;
        }
        let now = net.now();
        let mut keep = Vec::new();
        for q in std::mem::take(&mut self.durability.sync_list) {
            let token = self.durability.next_token + 1;
            let Some(disk) = self.disk_of(q) else {
                continue;
            };
            let Some(backend) = disk.backend.as_mut() else {
                disk.sync_listed = false;
                continue;
            };
            if disk.syncing || !backend.sync_due(now) {
                keep.push(q);
                continue;
            }
            let Some((fds, backend_token)) = backend.begin_sync() else {
                disk.sync_listed = false;
                continue;
            };
            disk.sync_listed = false;
            disk.syncing = true;
            self.durability.next_token = token;
            self.durability.rounds.insert(
                token,
                SyncRound {
                    queue: q,
                    backend_token,
                    remaining: fds.len(),
                    failed: None,
                },
            );
            if fds.is_empty() {
                self.finish_round(token);
            }
            for fd in fds {
                net.fsync(fd, token);
            }
        }
        self.durability.sync_list.extend(keep);
        if !self.durability.sync_list.is_empty() && !self.durability.timer_armed {
            self.durability.timer_armed = true;
            net.timer_at(now + SYNC_RECHECK, super::timers::SYNC_TOKEN);
        }
    }

    pub(super) fn on_sync_timer<N: Net<Detached = D>>(&mut self, net: &mut N) {
        self.durability.timer_armed = false;
        self.run_syncs(net);
    }

    /// An fsync submitted by `run_syncs` completed.
    pub fn on_fsync(&mut self, token: u64, result: Result<(), String>) {
        let Some(round) = self.durability.rounds.get_mut(&token) else {
            return;
        };
        round.remaining = round.remaining.saturating_sub(1);
        if let Err(e) = result {
            round.failed = Some(e);
        }
        if round.remaining == 0 {
            self.finish_round(token);
        }
    }

    fn finish_round(&mut self, token: u64) {
        let Some(round) = self.durability.rounds.remove(&token) else {
            return;
        };
        let failed = round.failed.clone();
        if let Some(disk) = self.disk_of(round.queue) {
            disk.syncing = false;
            if let Some(b) = disk.backend.as_mut() {
                match &failed {
                    None => b.finish_sync(round.backend_token),
                    Some(_) => b.fail_sync(round.backend_token),
                }
            }
        }
        if let Some(e) = &failed {
            self.health_error = Some(format!("fsync failed: {e}"));
        }
        self.release_waiters(failed.map(|e| (round.queue, e)));
    }

    /// Answers every publish whose writes are now durable; with `failed`, fails those waiting
    /// on that queue.
    fn release_waiters(&mut self, failed: Option<(QueueRef, String)>) {
        let waiters = std::mem::take(&mut self.durability.waiters);
        for w in waiters {
            let broken = failed
                .as_ref()
                .filter(|(q, _)| w.needs.iter().any(|(n, _)| n == q));
            let done = w.needs.iter().all(|&(q, pos)| match self.disk_of(q) {
                // A deleted queue no longer holds the message: nothing left to wait for.
                None => true,
                Some(disk) => disk.backend.as_ref().is_none_or(|b| b.durable() >= pos),
            });
            if let Some((_, e)) = broken {
                let err = crate::error::ProtocolError::new(
                    crate::error::ErrorCode::PubFailed,
                    format!("PUB failed fsync: {e}"),
                );
                self.ack(w.ack, Some(Box::new(err)));
            } else if done {
                self.ack(w.ack, None);
            } else {
                self.durability.waiters.push(w);
            }
        }
    }

    fn ack(&mut self, ack: AckTo, error: Option<Box<crate::error::ProtocolError>>) {
        match ack {
            AckTo::Tcp { conn, seq } => self.durable_tcp_acks.push((conn, seq, error)),
            AckTo::Forwarded { from, conn, seq } => {
                self.outboxes[from]
                    .replies
                    .push(PublishReply { conn, seq, error })
            }
            AckTo::Front(origin, ids) => self.responses.push((origin, published(ids, error))),
            AckTo::FrontRemote { from, origin, ids } => self.outboxes[from]
                .others
                .push_back(super::ShardMsg::Response(origin, Box::new(published(ids, error)))),
        }
    }

    /// Local TCP publishes made durable since the last call (answered by the caller with `Net`).
    pub(super) fn answer_durable_tcp<N: Net<Detached = D>>(&mut self, net: &mut N) {
        for (conn, seq, error) in std::mem::take(&mut self.durable_tcp_acks) {
            self.complete_publish(net, conn, seq, error);
        }
    }

    /// Shutdown: every message still in memory or in flight goes to its queue's backend
    /// (nsqd's order; attempts kept), and deferred messages go to a queue of their own with
    /// their due time, so they are still deferred after a restart (nsqd delivers them at once).
    /// Queues that never overflowed open their backend now. Every backend then writes its final
    /// metadata.
    pub fn persist_and_close(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut scratch = Vec::new();
        let now = std::time::Instant::now();
        let now_ms = unix_ms();
        let channel_keys: Vec<usize> = self.channels.iter().map(|(k, _)| k).collect();
        for ch in channel_keys {
            let c = &mut self.channels[ch];
            if c.ephemeral {
                continue;
            }
            let name = format!("{}:{}", self.topics[c.topic].name, c.name);
            let mut msgs: Vec<Message> = c.queue.memory.drain(..).collect();
            msgs.extend(c.in_flight.drain().map(|e| e.msg));
            let deferred: Vec<(Message, std::time::Instant)> =
                c.deferred.iter().map(|(m, due)| (m.clone(), due)).collect();
            c.deferred.clear();
            let backend = c.queue.disk.backend.take();
            let backend = self.backend_for_shutdown(backend, &name, !msgs.is_empty());
            self.write_down(
                backend,
                &name,
                msgs.iter().map(|m| (m, None)),
                &mut scratch,
                &mut errors,
            );
            if !deferred.is_empty() {
                let dname = deferred_queue_name(&name);
                let backend = self.backend_for_shutdown(None, &dname, true);
                let records = deferred.iter().map(|(m, due)| {
                    let left = due.saturating_duration_since(now).as_millis() as u64;
                    (m, Some(now_ms + left))
                });
                self.write_down(backend, &dname, records, &mut scratch, &mut errors);
            }
        }
        let topic_keys: Vec<usize> = self.topics.iter().map(|(k, _)| k).collect();
        for tkey in topic_keys {
            let t = &mut self.topics[tkey];
            if t.ephemeral {
                continue;
            }
            let name = t.name.to_string();
            let msgs: Vec<Message> = t
                .queue
                .memory
                .drain(..)
                .map(|TopicEntry { msg, .. }| msg)
                .collect();
            let backend = t.queue.disk.backend.take();
            let backend = self.backend_for_shutdown(backend, &name, !msgs.is_empty());
            self.write_down(
                backend,
                &name,
                msgs.iter().map(|m| (m, None)),
                &mut scratch,
                &mut errors,
            );
        }
        errors
    }

    fn backend_for_shutdown(
        &self,
        backend: Option<Box<dyn Backend>>,
        name: &str,
        needed: bool,
    ) -> Option<Box<dyn Backend>> {
        match backend {
            Some(b) => Some(b),
            None if needed => self.durability.factory.as_ref()?.open(name).ok(),
            None => None,
        }
    }

    /// Appends the messages (with a due time for deferred ones) and closes the backend.
    fn write_down<'m>(
        &self,
        backend: Option<Box<dyn Backend>>,
        name: &str,
        msgs: impl Iterator<Item = (&'m Message, Option<u64>)>,
        scratch: &mut Vec<u8>,
        errors: &mut Vec<String>,
    ) {
        let Some(mut backend) = backend else { return };
        let mut record = Vec::new();
        for (m, due_ms) in msgs {
            crate::backend::encode_record(m, scratch);
            record.clear();
            if let Some(due) = due_ms {
                record.extend_from_slice(&due.to_be_bytes());
            }
            record.extend_from_slice(scratch);
            if let Err(e) = backend.put(&record) {
                errors.push(format!("{name}: {e}"));
            }
        }
        if let Err(e) = backend.close() {
            errors.push(format!("{name}: {e}"));
        }
    }

    /// A channel's deferred messages written down at the last shutdown: back into its
    /// deferred queue with the time they had left; the queue's files are then removed.
    pub(super) fn restore_deferred(&mut self, ch: usize) {
        let Some(factory) = self.durability.factory.as_ref() else {
            return;
        };
        let c = &self.channels[ch];
        let name = deferred_queue_name(&format!("{}:{}", self.topics[c.topic].name, c.name));
        if !factory.exists(&name) {
            return;
        }
        let Ok(mut backend) = factory.open(&name) else {
            return;
        };
        let now = std::time::Instant::now();
        let now_ms = unix_ms();
        let c = &mut self.channels[ch];
        while let Some(record) = backend.next() {
            if record.len() < 8 {
                continue;
            }
            let due_ms = u64::from_be_bytes(record[..8].try_into().unwrap_or_default());
            if let Some(msg) = crate::backend::decode_record(record.slice(8..)) {
                let due = now + std::time::Duration::from_millis(due_ms.saturating_sub(now_ms));
                c.deferred.push(msg, due);
            }
        }
        backend.delete();
        self.restored.push(ch);
    }
}

/// The queue holding a channel's deferred messages across a restart (`:` never appears in a
/// topic or channel name, so this cannot clash with a real queue).
fn deferred_queue_name(channel_queue: &str) -> String {
    format!("{channel_queue}:deferred")
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A topic as `nsqd.dat` records it (ephemeral topics and channels are left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: crate::names::Name,
    pub paused: bool,
    pub channels: Vec<(crate::names::Name, bool)>,
}

impl<D: Send + 'static> Broker<D> {
    /// This shard's topics for `nsqd.dat`, if anything changed since the last call.
    pub fn take_metadata(&mut self) -> Option<Vec<TopicMeta>> {
        if !std::mem::take(&mut self.metadata_changed) {
            return None;
        }
        let mut topics: Vec<TopicMeta> = self
            .topics
            .iter()
            .filter(|(_, t)| !t.ephemeral)
            .map(|(_, t)| TopicMeta {
                name: t.name,
                paused: t.paused,
                channels: t
                    .channels
                    .iter()
                    .map(|&c| &self.channels[c])
                    .filter(|c| !c.ephemeral)
                    .map(|c| (c.name, c.paused))
                    .collect(),
            })
            .collect();
        topics.sort_by_key(|t| t.name);
        Some(topics)
    }

    /// Recreates topics and channels from `nsqd.dat` at start (before any connection), which
    /// reopens their disk queues so what they hold is delivered again.
    pub fn preload(&mut self, topics: &[TopicMeta]) {
        let (shard, shards) = (self.shard, self.shards);
        for t in topics
            .iter()
            .filter(|t| super::shard_for_topic(&t.name, shards) == shard)
        {
            let tkey = self.topic_key_or_create_as(t.name, false);
            self.topics[tkey].paused = t.paused;
            for &(c, paused) in &t.channels {
                let ch = self.channel_key_or_create(tkey, c);
                self.channels[ch].paused = paused;
            }
            self.schedule_drain(tkey);
        }
        self.metadata_changed = true;
    }

    /// Every topic and channel on this shard, ephemeral ones included (nsqlookupd registrations),
    /// if anything was created or deleted since the last call.
    pub fn take_registry(&mut self) -> Option<Vec<(crate::names::Name, Vec<crate::names::Name>)>> {
        if !std::mem::take(&mut self.registry_changed) {
            return None;
        }
        let mut topics: Vec<_> = self
            .topics
            .iter()
            .map(|(_, t)| {
                (
                    t.name,
                    t.channels
                        .iter()
                        .map(|&c| self.channels[c].name)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        topics.sort_by_key(|t| t.0);
        Some(topics)
    }

    /// The last disk write error, if the node is unhealthy.
    pub fn health_error(&self) -> Option<&str> {
        self.health_error.as_deref()
    }
}

fn published(ids: IdRange, error: Option<Box<crate::error::ProtocolError>>) -> Response {
    Response::Published(match error {
        None => Ok(ids),
        Some(e) => Err(e),
    })
}
