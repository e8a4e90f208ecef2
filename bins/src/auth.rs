//! The auth server client (spec §4.2, "Auth server contract"): a few threads run the shards'
//! AUTH queries and hand each answer back to the shard that asked, through its `Remote`. A
//! slow or dead auth server therefore delays only the connections waiting on it, never a shard.
//!
//! Outstanding queries are bounded by the connections: a connection has at most one in flight.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall_core::auth::{self, AuthReply, AuthRequest, AuthState};
use squall_core::broker::ShardMsg;
use squall_uring_net::Remote;

use crate::http_client::{self, HttpTimeouts};

/// Threads querying auth servers at once; each query waits at most the request timeout.
const AUTH_THREADS: usize = 4;
/// An auth server's answer is a small JSON document.
const AUTH_RESPONSE_BYTES_MAX: usize = 1024 * 1024;
const USER_AGENT: &str = concat!("nsqd/1.3.0 squalld/", env!("CARGO_PKG_VERSION"));

use crate::grpc_subs::Msg;

struct Job {
    request: AuthRequest,
    reply_to: Remote<Msg>,
}

/// Handle to the query threads; cheap to clone, one per shard.
#[derive(Clone)]
pub struct AuthClient {
    jobs: Sender<Job>,
}

impl AuthClient {
    /// Starts the threads. `addresses` are `--auth-http-address` values (non-empty); `post`
    /// is `--auth-http-request-method=post`.
    pub fn start(addresses: Vec<String>, post: bool, timeouts: HttpTimeouts) -> AuthClient {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let endpoints: Arc<Vec<String>> = Arc::new(addresses.iter().map(|a| auth::endpoint(a)).collect());
        for n in 0..AUTH_THREADS {
            let rx = Arc::clone(&rx);
            let endpoints = Arc::clone(&endpoints);
            std::thread::Builder::new()
                .name(format!("auth-{n}"))
                .spawn(move || serve(&rx, &endpoints, post, timeouts))
                .expect("spawn an auth thread");
        }
        AuthClient { jobs }
    }

    /// Runs `request`; the reply arrives as `ShardMsg::Auth` through `reply_to`.
    pub fn submit(&self, request: AuthRequest, reply_to: Remote<Msg>) {
        // The threads outlive every shard (they end with the process), so this cannot fail.
        let _ = self.jobs.send(Job { request, reply_to });
    }
}

fn serve(rx: &Mutex<Receiver<Job>>, endpoints: &[String], post: bool, timeouts: HttpTimeouts) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(Job { request, reply_to }) = job else {
            return;
        };
        let result = query_any(endpoints, &request, post, timeouts);
        reply_to.send(Msg::Broker(ShardMsg::Auth(Box::new(AuthReply {
            conn: request.conn,
            ticket: request.ticket,
            result,
        }))));
    }
}

/// nsqd's `QueryAnyAuthd`: from a random starting address, each in turn until one answers.
fn query_any(
    endpoints: &[String],
    request: &AuthRequest,
    post: bool,
    timeouts: HttpTimeouts,
) -> Result<AuthState, String> {
    let start = random_index(endpoints.len());
    let mut last = String::from("no auth server configured");
    for i in 0..endpoints.len() {
        let endpoint = &endpoints[(start + i) % endpoints.len()];
        match query(endpoint, request, post, timeouts) {
            Ok(state) => return Ok(state),
            Err(e) => {
                crate::log_warn!("failed to auth against {endpoint} - {e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// One GET of `<endpoint>?<query>` (or POST of the JSON form); any status but 200 is a failure.
fn query(
    endpoint: &str,
    request: &AuthRequest,
    post: bool,
    timeouts: HttpTimeouts,
) -> Result<AuthState, String> {
    let max = AUTH_RESPONSE_BYTES_MAX;
    let body = if post {
        http_client::post_json_ok(endpoint, "", &request.json_body(), timeouts, USER_AGENT, max)?
    } else {
        let path = format!("?{}", request.query_string());
        http_client::get_ok(endpoint, &path, timeouts, USER_AGENT, max)?
    };
    AuthState::parse(&body, Instant::now())
}

fn random_index(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos() as usize;
    nanos % n
}
