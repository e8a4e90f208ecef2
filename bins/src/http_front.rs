//! nsqd's HTTP API on the shard loop: HTTP/1.1 framing from `squall_rpc::httpd`, the API from
//! `squall_rpc::nsqd`, broker work through `Broker::submit`. One request per connection is
//! served at a time; pipelined requests wait in the input buffer.
//!
//! Requests are logged at INFO as nsqd logs them (`200 GET /stats (127.0.0.1:50860) 297.9µs`),
//! for the requests nsqd logs; while INFO is off a request costs one clock read, no formatting.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use bytes::Buf;
use squall_core::broker::{Broker, Net, Origin, Peer, Response as BrokerResponse};
use squall_rpc::httpd::{
    crlf_after_post, expects_continue, http_date, oversized_request, parse_request, HttpError, Limits,
    ReplyTo, Response, JSON_CONTENT_TYPE, NSQ_CONTENT_TYPE_NAME, NSQ_CONTENT_TYPE_V1,
};
use squall_rpc::nsqd::{self, Action, ApiContext, ApiRequest, Pending};

use crate::log_info;
use crate::logging::{self, Level};

/// Request head bytes accepted (Go's default header limit).
const HEADER_BYTES_MAX: usize = (1 << 20) + 4096;
const HEADERS_MAX: usize = 100;

struct HttpConn {
    /// The request being served: its number, framing, how to finish it, and its log line.
    busy: Option<(u64, ReplyTo, Pending, Option<RequestLog>)>,
    continued: bool,
    /// The last request was a POST: up to 4 CR/LF bytes before the next one are dropped (Go).
    after_post: bool,
    /// Came in on the HTTPS listener.
    tls: bool,
    /// The client's address, for the request log (as nsqd writes it: `@` on a Unix socket,
    /// nothing when the kernel no longer had it).
    peer: Peer,
}

/// nsq's `http_api.Log` line for a request the broker is working on.
struct RequestLog {
    method: String,
    uri: String,
    started: Instant,
}

impl RequestLog {
    /// `None` when nsqd would not log this request, or INFO is off now.
    fn start(req: &squall_rpc::httpd::Request, started: Instant) -> Option<RequestLog> {
        if !logged(req) {
            return None;
        }
        Some(RequestLog {
            method: req.method.clone(),
            uri: req.request_uri().to_string(),
            started,
        })
    }

    fn write(self, status: u16, peer: Peer) {
        write_log(status, &self.method, &self.uri, peer, self.started);
    }
}

/// Logs a request answered at once, if nsqd would. The level is read after the handler ran, as
/// nsqd reads it: a `PUT /config/log_level` is logged under the level it set.
fn log_answered(req: &squall_rpc::httpd::Request, status: u16, peer: Peer, started: Instant) {
    if logged(req) {
        write_log(status, &req.method, req.request_uri(), peer, started);
    }
}

/// Whether nsqd would log this request now (INFO on, a logged route, not statsd's own poll).
fn logged(req: &squall_rpc::httpd::Request) -> bool {
    logging::enabled(Level::Info)
        && nsqd::request_logged(&req.method, &req.path)
        && req.header("User-Agent") != Some(crate::statsd::USER_AGENT.as_bytes())
}

/// `<status> <method> <uri> (<remote ip:port, or @>) <elapsed, as a Go duration>`.
fn write_log(status: u16, method: &str, uri: &str, peer: Peer, started: Instant) {
    let elapsed = nsqd::go_duration(started.elapsed().as_nanos() as u64);
    log_info!("{status} {method} {uri} ({peer}) {elapsed}");
}

/// `--tls-required=true`: plain HTTP requests get 403 and the HTTPS port to use instead.
#[derive(Clone, Debug, Default)]
pub struct HttpTlsPolicy {
    pub required: bool,
    /// The HTTPS listener's port once bound (0 without one), as nsqd reports it.
    pub https_port: Arc<OnceLock<u16>>,
}

pub struct HttpFront {
    ctx: Arc<OnceLock<ApiContext>>,
    /// This shard's copy, for the current health (its `/config` values are the node's, shared).
    local: Option<ApiContext>,
    limits: Limits,
    conns: HashMap<u64, HttpConn>,
    next_seq: u64,
    tls_policy: HttpTlsPolicy,
    /// Connections with input that arrived before the node finished starting (the listener
    /// opens a moment before the API context is set); served once it is.
    before_start: Vec<u64>,
}

impl HttpFront {
    pub fn new(ctx: Arc<OnceLock<ApiContext>>, max_body_size: usize) -> HttpFront {
        let limits = Limits {
            header_bytes_max: HEADER_BYTES_MAX,
            headers_max: HEADERS_MAX,
            body_bytes_max: max_body_size,
        };
        HttpFront {
            ctx,
            local: None,
            limits,
            conns: HashMap::new(),
            next_seq: 0,
            before_start: Vec::new(),
            tls_policy: HttpTlsPolicy::default(),
        }
    }

    pub fn set_tls_policy(&mut self, policy: HttpTlsPolicy) {
        self.tls_policy = policy;
    }

    /// Input bytes a connection may hold: one whole request.
    pub fn input_max_bytes(max_body_size: usize) -> usize {
        Limits {
            header_bytes_max: HEADER_BYTES_MAX,
            headers_max: HEADERS_MAX,
            body_bytes_max: max_body_size,
        }
        .request_bytes_max()
    }

    pub fn owns(&self, conn: u64) -> bool {
        self.conns.contains_key(&conn)
    }

    pub fn on_accept(&mut self, conn: u64, tls: bool, peer: Peer) {
        self.conns.insert(
            conn,
            HttpConn {
                busy: None,
                continued: false,
                after_post: false,
                tls,
                peer,
            },
        );
    }

    pub fn on_closed(&mut self, conn: u64) {
        self.conns.remove(&conn);
    }

    /// Shutdown: idle connections close now; one being served closes after its answer.
    pub fn close_idle<N: Net>(&mut self, net: &mut N) {
        for (&conn, state) in &self.conns {
            if state.busy.is_none() {
                net.close(conn);
            }
        }
    }

    fn context<D: Send + 'static>(&mut self, broker: &Broker<D>) -> Option<&ApiContext> {
        if self.local.is_none() {
            self.local = self.ctx.get().cloned();
        }
        let ctx = self.local.as_mut()?;
        ctx.health = match broker.health_error() {
            None => "OK".to_string(),
            Some(e) => format!("NOK - {e}"),
        };
        Some(ctx)
    }

    /// Connections that sent a request before the node had started: `Err(())` while they
    /// still wait (the shard should turn again soon), else those to serve now (taken).
    pub fn take_started_waiters(&mut self) -> Result<Vec<u64>, ()> {
        if self.before_start.is_empty() {
            return Ok(Vec::new());
        }
        if self.ctx.get().is_none() {
            return Err(());
        }
        Ok(std::mem::take(&mut self.before_start))
    }

    pub fn on_input<D: Send + 'static, N: Net<Detached = D>>(
        &mut self,
        broker: &mut Broker<D>,
        net: &mut N,
        conn: u64,
    ) {
        loop {
            let Some(state) = self.conns.get_mut(&conn) else {
                return;
            };
            if state.busy.is_some() {
                return;
            }
            if self.local.is_none() && self.ctx.get().is_none() {
                // Not started yet: keep the request and look again next turn.
                if !self.before_start.contains(&conn) {
                    self.before_start.push(conn);
                }
                net.poll_soon();
                return;
            }
            let Some(input) = net.input(conn) else { return };
            if state.after_post && !input.is_empty() {
                input.advance(crlf_after_post(input));
                state.after_post = false;
            }
            let parsed = parse_request(input, &self.limits);
            let (req, used) = match parsed {
                Ok(Some(r)) => r,
                Ok(None) => {
                    if !state.continued && expects_continue(input, &self.limits) {
                        state.continued = true;
                        net.write(conn, squall_rpc::httpd::CONTINUE_BYTES);
                        net.flush(conn);
                    }
                    return;
                }
                Err(HttpError::BodyTooLarge) => {
                    // The body is never read: answer as nsqd's handler does from the declared
                    // length, and close.
                    let answer = oversized_request(input, &self.limits)
                        .and_then(|r| squall_rpc::nsqd::oversized(&r.method, &r.path).map(|a| (r, a)));
                    match answer {
                        Some((req, resp)) => {
                            let reply_to = ReplyTo {
                                keep_alive: false,
                                ..req.reply_to()
                            };
                            respond(net, conn, &reply_to, resp);
                        }
                        None => fail(net, conn, &HttpError::BodyTooLarge),
                    }
                    return;
                }
                Err(e) => {
                    fail(net, conn, &e);
                    return;
                }
            };
            input.advance(used);
            state.continued = false;
            state.after_post = req.method == "POST";
            let peer = state.peer;
            let started = Instant::now();
            // Plain HTTP under `--tls-required=true`: refused once started (the HTTPS port is
            // known by then).
            let refuse = self.tls_policy.required && !state.tls;
            let https_port = self.tls_policy.https_port.clone();
            let reply_to = req.reply_to();
            let ctx = self.context(broker).expect("checked before parsing");
            if refuse {
                let port = https_port.get().copied().unwrap_or(0);
                // nsqd formats this body by hand: note the spaces.
                let body = format!(r#"{{"message": "TLS_REQUIRED", "https_port": {port}}}"#);
                let resp = Response::new(403)
                    .with_header("Content-Type", JSON_CONTENT_TYPE)
                    .with_header(NSQ_CONTENT_TYPE_NAME, NSQ_CONTENT_TYPE_V1)
                    .with_body(body);
                respond(net, conn, &reply_to, resp);
                if !reply_to.keep_alive {
                    return;
                }
                continue;
            }
            let api = ApiRequest {
                method: &req.method,
                path: &req.path,
                query: &req.raw_query,
                body: req.body.clone(),
            };
            match nsqd::handle(&api, ctx) {
                Action::Respond(resp) => {
                    log_answered(&req, resp.status, peer, started);
                    respond(net, conn, &reply_to, resp);
                    if !reply_to.keep_alive {
                        return;
                    }
                }
                Action::Submit(request, pending) => {
                    self.next_seq += 1;
                    let seq = self.next_seq;
                    let log = RequestLog::start(&req, started);
                    if let Some(state) = self.conns.get_mut(&conn) {
                        state.busy = Some((seq, reply_to, pending, log));
                    }
                    broker.submit(net, Origin { conn, seq }, request);
                    return;
                }
            }
        }
    }

    /// Answers requests the broker finished, then reads what waited behind them.
    pub fn on_responses<D: Send + 'static, N: Net<Detached = D>>(
        &mut self,
        broker: &mut Broker<D>,
        net: &mut N,
        responses: Vec<(Origin, BrokerResponse)>,
    ) {
        for (origin, resp) in responses {
            let Some(state) = self.conns.get_mut(&origin.conn) else {
                continue;
            };
            let Some((seq, reply_to, pending, log)) = state.busy.take() else {
                continue;
            };
            if seq != origin.seq {
                state.busy = Some((seq, reply_to, pending, log));
                continue;
            }
            let peer = state.peer;
            let Some(ctx) = self.context(broker) else { continue };
            let response = nsqd::finish(pending, resp, ctx);
            if let Some(log) = log {
                log.write(response.status, peer);
            }
            respond(net, origin.conn, &reply_to, response);
            if reply_to.keep_alive {
                self.on_input(broker, net, origin.conn);
            }
        }
    }
}

fn respond<N: Net>(net: &mut N, conn: u64, reply_to: &ReplyTo, resp: Response) {
    let date = http_date(SystemTime::now());
    net.write(conn, &resp.to_bytes(reply_to, &date));
    net.flush(conn);
    if !reply_to.keep_alive {
        net.close(conn);
    }
}

fn fail<N: Net>(net: &mut N, conn: u64, e: &HttpError) {
    net.write(conn, &e.response_bytes());
    net.flush(conn);
    net.close(conn);
}
