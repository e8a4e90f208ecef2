//! nsqd's A.12 off the shards: a new topic's shard asks (`ChannelsQuery`) which channels the
//! known lookupds list for it; this thread asks each of them `GET /channels?topic=` (in parallel,
//! with nsqd's HTTP client timeouts, as nsqd's `GetLookupdTopicChannels`) and answers the shard
//! with the union of the non-ephemeral names (`ShardMsg::Channels`). The shard creates them all,
//! then starts the topic.
//!
//! Every query is answered: a lookupd that fails only leaves its channels out (logged as a
//! warning, as nsqd does), so a topic waits at most one request timeout. Within one batch of
//! queries a lookupd that failed is not asked again, so a burst of new topics facing a dead
//! lookupd waits for it once, not once per topic.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;

use squall_core::broker::ShardMsg;
use squall_core::names::Name;
use squall_core::topic::{ChannelsFound, ChannelsQuery};

use super::Inner;
use crate::grpc_subs::Msg;
use crate::http_client::{self, HttpTimeouts};
use crate::{log_debug, log_error, log_warn};

/// A `/channels` answer is a short JSON list of names.
const CHANNELS_RESPONSE_BYTES_MAX: usize = 1024 * 1024;
const USER_AGENT: &str = concat!("nsqd/1.3.0 squalld/", env!("CARGO_PKG_VERSION"));

/// The thread's loop: wait for queries, answer them, until the loop stops.
pub(super) fn run(inner: &Inner) {
    loop {
        let (batch, lookupds) = {
            let mut state = inner.lock();
            while !state.stop && state.queries.is_empty() {
                state = inner.cvar.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stop {
                return;
            }
            let mut lookupds: Vec<(String, SocketAddr)> =
                state.lookupd_http.iter().map(|(a, h)| (a.clone(), *h)).collect();
            lookupds.sort();
            (std::mem::take(&mut state.queries), lookupds)
        };
        let mut failed = HashSet::new();
        for (query, reply_to) in batch {
            let channels = if lookupds.is_empty() {
                log_error!(
                    "no available nsqlookupd to query for channels to pre-create for topic {}",
                    query.topic
                );
                Vec::new()
            } else {
                ask_all(&lookupds, &query, inner.http_timeouts, &mut failed)
            };
            reply_to.send(Msg::Broker(ShardMsg::Channels(Box::new(ChannelsFound {
                topic: query.topic,
                ticket: query.ticket,
                channels,
            }))));
        }
    }
}

/// The union of what every lookupd not yet `failed` lists for the topic, ephemeral channels
/// and names that are not valid left out. Lookupds that fail join `failed`.
fn ask_all(
    lookupds: &[(String, SocketAddr)],
    query: &ChannelsQuery,
    timeouts: HttpTimeouts,
    failed: &mut HashSet<SocketAddr>,
) -> Vec<Name> {
    let path = format!("/channels?topic={}", query_escape(query.topic.as_str()));
    let asked: Vec<SocketAddr> = lookupds
        .iter()
        .map(|&(_, http)| http)
        .filter(|http| !failed.contains(http))
        .collect();
    let answers: Vec<(SocketAddr, Result<Vec<String>, String>)> = std::thread::scope(|scope| {
        let path = &path;
        let handles: Vec<_> = asked
            .iter()
            .map(|&http| scope.spawn(move || (http, ask_one(http, path, timeouts))))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut channels = BTreeSet::new();
    for (http, answer) in answers {
        match answer {
            Ok(names) => channels.extend(
                names
                    .iter()
                    .filter_map(|n| Name::new(n.as_bytes()))
                    .filter(|n| !n.is_ephemeral()),
            ),
            Err(e) => {
                log_warn!(
                    "failed to query nsqlookupd for channels to pre-create for topic {} - {e}",
                    query.topic
                );
                failed.insert(http);
            }
        }
    }
    channels.into_iter().collect()
}

/// `GET http://<lookupd>/channels?topic=<t>`: the names it lists.
fn ask_one(http: SocketAddr, path: &str, timeouts: HttpTimeouts) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Channels {
        channels: Vec<String>,
    }
    log_debug!("CI: querying nsqlookupd http://{http}{path}");
    let body = http_client::get_ok(
        &http.to_string(),
        path,
        timeouts,
        USER_AGENT,
        CHANNELS_RESPONSE_BYTES_MAX,
    )?;
    serde_json::from_slice::<Channels>(&body)
        .map(|c| c.channels)
        .map_err(|e| format!("http://{http}{path}: bad answer - {e}"))
}

/// Go's `url.QueryEscape` for a topic name: only `#` (of `#ephemeral`) needs it.
fn query_escape(topic: &str) -> String {
    topic.replace('#', "%23")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ephemeral_topic_name_is_escaped() {
        assert_eq!(query_escape("t#ephemeral"), "t%23ephemeral");
        assert_eq!(query_escape("a.b_c-d"), "a.b_c-d");
    }
}
