//! Starting a new topic with the channels nsqlookupd knows for it (spec A.12).
//!
//! nsqd asks every lookupd for the topic's channels while creating it, and starts the topic's
//! message pump only once they all exist, so each of them gets every message. Here the topic is
//! created not started (`Topic::awaiting_channels`) and queues a `ChannelsQuery`; the engine
//! hands the queries to the lookup loop, which asks off the shard and always answers with a
//! `ShardMsg::Channels`. Until then publishes are accepted and wait in the topic; the answer
//! creates every channel in one step and then starts the topic, before any message reaches a
//! channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Broker;
use crate::names::Name;
use crate::topic::{ChannelsFound, ChannelsQuery};

impl<D: Send + 'static> Broker<D> {
    /// `known` is true while some lookupd's HTTP address is known (the lookup loop sets it);
    /// topics created while it is true wait for the channels lookupd knows. Without it every
    /// topic starts at once.
    pub fn set_lookupd_known(&mut self, known: Arc<AtomicBool>) {
        self.lookupd_known = Some(known);
    }

    /// Queries of the topics created since the last call, for the engine to hand to the lookup
    /// loop. Each must be answered (`ShardMsg::Channels`), or its topic never starts.
    pub fn take_channel_queries(&mut self) -> Vec<ChannelsQuery> {
        std::mem::take(&mut self.channel_queries)
    }

    pub fn has_channel_queries(&self) -> bool {
        !self.channel_queries.is_empty()
    }

    /// Queues a query for the new topic `name` if a lookupd is known; its ticket, for
    /// `Topic::awaiting_channels`.
    pub(super) fn query_channels(&mut self, name: Name) -> Option<u64> {
        // Relaxed: a topic created just as the first lookupd becomes known may start without
        // asking, as in nsqd, where the two race as well.
        if !self.lookupd_known.as_ref()?.load(Ordering::Relaxed) {
            return None;
        }
        self.next_channels_ticket += 1;
        let ticket = self.next_channels_ticket;
        self.channel_queries.push(ChannelsQuery { topic: name, ticket });
        Some(ticket)
    }

    /// The answer to a topic's query: create the channels (ephemeral ones are not, they need a
    /// consumer), then start the topic. An answer for a topic since deleted, or for an earlier
    /// topic of the same name, is ignored.
    pub(super) fn start_topic(&mut self, found: ChannelsFound) {
        let Some(&tkey) = self.topic_index.get(&found.topic) else {
            return;
        };
        if self.topics[tkey].awaiting_channels != Some(found.ticket) {
            return;
        }
        for channel in found.channels {
            if !channel.is_ephemeral() {
                self.channel_key_or_create(tkey, channel);
            }
        }
        self.topics[tkey].awaiting_channels = None;
        self.schedule_drain(tkey);
    }
}
