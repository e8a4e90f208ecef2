//! The HTTP/2 side of a connection and the dispatcher on `:path`.
//!
//! One task per connection drives h2 (accepting streams, reading and writing frames); one task
//! per call runs its handler. All of them run on the shard's local executor.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{select, Either};
use futures::task::{LocalSpawn, LocalSpawnExt};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};

use super::call::{refuse, refuse_grpc, Call};
use super::health::Health;
use super::local::{sleep_until, Bridge, Timers};
use super::status::{Code, Status};
use super::subscribe::SubHub;
use super::transport::Pipe;
use super::{admin, health, publish, reflection, subscribe};

/// Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
pub const STREAMS_PER_CONNECTION_MAX: u32 = 1024;
/// Streams a client may reset before the server accepted them (rapid-reset protection); more
/// and the connection gets GOAWAY(ENHANCE_YOUR_CALM).
pub const PENDING_RESETS_MAX: usize = 32;
/// Streams the server may reset because the client misbehaved before the connection is closed.
pub const LOCAL_RESETS_MAX: usize = 1024;
/// Flow-control windows: enough for full-speed loopback without one stream taking the link.
pub const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// Response bytes h2 buffers per stream ahead of the peer's window.
pub const SEND_BUFFER_BYTES: usize = 1024 * 1024;
/// Request header block (HPACK-decoded) a client may send.
pub const HEADER_LIST_BYTES_MAX: u32 = 64 * 1024;
/// gRPC's usual message limit; raised to `--max-body-size` (plus framing) when that is larger.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// Request bytes all calls of one connection may hold in partial messages (at least this, and
/// room for a few maximum-size messages at once); beyond, a call fails RESOURCE_EXHAUSTED.
pub const CONNECTION_REQUEST_BYTES_MIN: usize = 64 * 1024 * 1024;
pub const CONNECTION_REQUEST_MESSAGES_MIN: usize = 4;
/// Room for a publish's protobuf framing beyond its bodies.
pub const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;

/// What a shard's calls need, and the limits they enforce.
pub struct Ctx {
    pub bridge: Rc<RefCell<Bridge>>,
    pub timers: Rc<RefCell<Timers>>,
    pub health: Rc<RefCell<Health>>,
    pub subs: Rc<RefCell<SubHub>>,
    pub limits: Limits,
    pub start_time_ns: i64,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub message_bytes_max: usize,
    pub connection_request_bytes_max: usize,
    /// nsqd's `--max-msg-size`, `--max-body-size`, `--max-req-timeout`, `--max-msg-timeout`,
    /// `--max-rdy-count`, `--msg-timeout`.
    pub max_msg_size: usize,
    pub max_body_size: usize,
    pub max_req_timeout: Duration,
    pub max_msg_timeout: Duration,
    pub max_rdy_count: u32,
    pub msg_timeout: Duration,
}

impl Limits {
    pub fn from_options(o: &squall_core::options::Options) -> Limits {
        let max_body_size = o.max_body_size.max(0) as usize;
        let message_bytes_max = MESSAGE_BYTES_MAX_DEFAULT.max(max_body_size + MESSAGE_OVERHEAD_BYTES);
        Limits {
            message_bytes_max,
            connection_request_bytes_max: CONNECTION_REQUEST_BYTES_MIN
                .max(CONNECTION_REQUEST_MESSAGES_MIN * message_bytes_max),
            max_msg_size: o.max_msg_size.max(0) as usize,
            max_body_size,
            max_req_timeout: Duration::from_millis(o.max_req_timeout_ms.max(0) as u64),
            max_msg_timeout: Duration::from_millis(o.max_msg_timeout_ms.max(0) as u64),
            max_rdy_count: o.max_rdy_count.clamp(0, u32::MAX as i64) as u32,
            msg_timeout: Duration::from_millis(o.msg_timeout_ms.max(0) as u64),
        }
    }
}

/// Drives one connection until the client leaves or a drain completes, then marks the pipe
/// finished so the front closes the socket after the last bytes.
pub async fn serve_connection<S: LocalSpawn>(pipe: Pipe, ctx: Rc<Ctx>, spawner: S) {
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(STREAMS_PER_CONNECTION_MAX)
        .max_pending_accept_reset_streams(PENDING_RESETS_MAX)
        .max_local_error_reset_streams(Some(LOCAL_RESETS_MAX))
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_send_buffer_size(SEND_BUFFER_BYTES)
        .max_header_list_size(HEADER_LIST_BYTES_MAX)
        .handshake::<_, Bytes>(pipe.io())
        .await;
    if let Ok(mut conn) = handshake {
        let mut draining = false;
        loop {
            let next = poll_fn(|cx| {
                if !draining && pipe.poll_drain(cx) {
                    draining = true;
                    conn.graceful_shutdown();
                }
                conn.poll_accept(cx)
            })
            .await;
            match next {
                Some(Ok((req, respond))) => {
                    let task = serve_call(req, respond, ctx.clone(), pipe.clone());
                    if spawner.spawn_local(task).is_err() {
                        break;
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
    }
    pipe.finish();
}

/// Which handler serves a `:path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Publish,
    Subscribe,
    Admin(admin::Op),
    HealthCheck,
    HealthList,
    HealthWatch,
    Reflection,
}

fn route(path: &str) -> Option<Route> {
    Some(match path {
        "/squall.v1.Broker/Publish" => Route::Publish,
        "/squall.v1.Broker/Subscribe" => Route::Subscribe,
        "/grpc.health.v1.Health/Check" => Route::HealthCheck,
        "/grpc.health.v1.Health/List" => Route::HealthList,
        "/grpc.health.v1.Health/Watch" => Route::HealthWatch,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => Route::Reflection,
        p => Route::Admin(admin::Op::from_path(p.strip_prefix("/squall.v1.Admin/")?)?),
    })
}

async fn serve_call(req: Request<RecvStream>, respond: SendResponse<Bytes>, ctx: Rc<Ctx>, pipe: Pipe) {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST {
        return refuse(respond, StatusCode::METHOD_NOT_ALLOWED);
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !content_type.starts_with(b"application/grpc") {
        return refuse(respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    if let Some(enc) = parts.headers.get("grpc-encoding") {
        if enc.as_bytes() != b"identity" {
            let mut extra = HeaderMap::new();
            extra.insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
            let msg = format!(
                "grpc-encoding {} is not supported",
                String::from_utf8_lossy(enc.as_bytes())
            );
            return refuse_grpc(respond, &Status::new(Code::Unimplemented, msg), extra);
        }
    }
    let deadline = match parts.headers.get("grpc-timeout") {
        None => None,
        Some(v) => match super::timeout::parse(v.as_bytes()) {
            Some(d) => Some(Instant::now() + d),
            None => {
                let status = Status::new(Code::Internal, "malformed grpc-timeout");
                return refuse_grpc(respond, &status, HeaderMap::new());
            }
        },
    };
    let Some(method) = route(parts.uri.path()) else {
        let status = Status::new(
            Code::Unimplemented,
            format!("unknown method {}", parts.uri.path()),
        );
        return refuse_grpc(respond, &status, HeaderMap::new());
    };
    let mut call = Call::new(respond, body, &ctx.limits, pipe.clone());
    let outcome = {
        let handler = pin!(handle(method, &mut call, &ctx, pipe.peer()));
        match deadline {
            None => Some(handler.await),
            Some(at) => match select(handler, pin!(sleep_until(&ctx.timers, at))).await {
                Either::Left((status, _)) => Some(status),
                Either::Right(_) => None,
            },
        }
    };
    match outcome {
        Some(status) => call.finish(&status),
        None => {
            // The handler is cancelled (dropped above). The call answers DEADLINE_EXCEEDED
            // if it still can: once h2 has flushed the trailers, dropping the call ends the
            // stream (h2 adds RST_STREAM(NO_ERROR) when the client is still sending, as
            // RFC 9113 asks of early responses; a CANCEL there makes grpc clients report
            // CANCELLED instead of the status). A client that reads nothing cannot be
            // answered: it gets RST_STREAM(CANCEL).
            let flushes = pipe.flushes();
            call.finish(&Status::new(Code::DeadlineExceeded, "deadline exceeded"));
            for _ in 0..DEADLINE_YIELDS_MAX {
                if pipe.flushes() > flushes {
                    return;
                }
                yield_now().await;
            }
            call.cancel();
        }
    }
}

/// Executor turns a call past its deadline waits, at most, for its trailers to be flushed.
const DEADLINE_YIELDS_MAX: usize = 16;

/// Lets every other ready task run once.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

async fn handle(method: Route, call: &mut Call, ctx: &Rc<Ctx>, peer: Option<SocketAddr>) -> Status {
    let result = match method {
        Route::Publish => publish::publish(call, ctx).await,
        Route::Subscribe => subscribe::subscribe(call, ctx, peer).await,
        Route::Admin(op) => admin::serve(op, call, ctx).await,
        Route::HealthCheck => health::check(call, ctx).await,
        Route::HealthList => health::list(call, ctx).await,
        Route::HealthWatch => health::watch(call, ctx).await,
        Route::Reflection => reflection::serve(call).await,
    };
    result.err().unwrap_or_else(Status::ok)
}
