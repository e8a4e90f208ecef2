//! nsqd's A.12 off the shards: a new topic's shard asks (`ChannelsQuery`) which channels the
//! known lookupds list for it; this thread asks each of them `GET /channels?topic=` (in parallel,
//! with nsqd's HTTP client timeouts, as nsqd's `GetLookupdTopicChannels`) and answers the shard
//! with the union of the non-ephemeral names (`ShardMsg::Channels`). The shard creates them all,
//! then starts the topic.
//!
//! Every query is answered, once, even if its work fails (`Answer` sends on drop): a lookupd
//! that fails only leaves its channels out (logged as a warning, as nsqd does), so a topic waits
//! at most one request timeout. Up to `QUERIES_IN_PARALLEL` topics are asked about at once, each
//! answered as soon as its own lookups finish; within one batch a lookupd that failed is not
//! asked again, so a burst of new topics facing a dead lookupd waits for it about once.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;

use squall_core::broker::ShardMsg;
use squall_core::names::Name;
use squall_core::topic::{ChannelsFound, ChannelsQuery};

use squall_uring_net::Remote;

use super::Inner;
use crate::grpc_subs::Msg;
use crate::http_client::{self, HttpTimeouts};
use crate::{log_debug, log_error, log_warn};

/// A `/channels` answer is a short JSON list of names.
const CHANNELS_RESPONSE_BYTES_MAX: usize = 1024 * 1024;
const USER_AGENT: &str = concat!("nsqd/1.3.0 squalld/", env!("CARGO_PKG_VERSION"));

/// New topics asked about at once; each asks every lookupd in parallel.
const QUERIES_IN_PARALLEL: usize = 8;

/// One topic's answer, sent to its shard when dropped: whatever becomes of the work (a thread
/// that cannot be started, a panic), the shard hears back and the topic starts.
struct Answer {
    query: ChannelsQuery,
    reply_to: Remote<Msg>,
    channels: Vec<Name>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.reply_to
            .send(Msg::Broker(ShardMsg::Channels(Box::new(ChannelsFound {
                topic: self.query.topic,
                ticket: self.query.ticket,
                channels: std::mem::take(&mut self.channels),
            }))));
    }
}

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
        let workers = batch.len().min(QUERIES_IN_PARALLEL);
        let queue: Mutex<VecDeque<Answer>> = Mutex::new(
            batch
                .into_iter()
                .map(|(query, reply_to)| Answer {
                    query,
                    reply_to,
                    channels: Vec::new(),
                })
                .collect(),
        );
        let failed = Mutex::new(HashSet::new());
        let work = || loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(mut answer) = next else { return };
            if lookupds.is_empty() {
                log_error!(
                    "no available nsqlookupd to query for channels to pre-create for topic {}",
                    answer.query.topic
                );
            } else {
                answer.channels = ask_all(&lookupds, &answer.query, inner.http_timeouts, &failed);
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..workers {
                let spawned = std::thread::Builder::new()
                    .name("squalld-lookup-channels".into())
                    .spawn_scoped(scope, work);
                if spawned.is_err() {
                    break; // fewer workers; this thread still works the queue
                }
            }
            work();
        });
    }
}

/// The union of what every lookupd not yet `failed` lists for the topic, ephemeral channels
/// and names that are not valid left out. Lookupds that fail join `failed`.
fn ask_all(
    lookupds: &[(String, SocketAddr)],
    query: &ChannelsQuery,
    timeouts: HttpTimeouts,
    failed: &Mutex<HashSet<SocketAddr>>,
) -> Vec<Name> {
    let path = format!("/channels?topic={}", query_escape(query.topic.as_str()));
    let asked: Vec<SocketAddr> = {
        let failed = failed.lock().unwrap_or_else(|p| p.into_inner());
        lookupds
            .iter()
            .map(|&(_, http)| http)
            .filter(|http| !failed.contains(http))
            .collect()
    };
    let answers: Vec<(SocketAddr, Result<Vec<String>, String>)> = std::thread::scope(|scope| {
        let path = &path;
        let mut inline = Vec::new();
        let mut handles = Vec::new();
        for &http in &asked {
            let spawned = std::thread::Builder::new()
                .name("squalld-lookup-channels".into())
                .spawn_scoped(scope, move || (http, ask_one(http, path, timeouts)));
            match spawned {
                Ok(handle) => handles.push(handle),
                // No thread to spare: ask this one here, after the others started.
                Err(_) => inline.push(http),
            }
        }
        let mut answers: Vec<_> = inline
            .into_iter()
            .map(|http| (http, ask_one(http, path, timeouts)))
            .collect();
        answers.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        answers
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
                failed.lock().unwrap_or_else(|p| p.into_inner()).insert(http);
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
