//! gRPC load against squalld's `--grpc-address`: `grpc-pub` (unary `Broker.Publish` calls, many
//! bodies each, a window of calls in flight per connection) and `grpc-sub` (one
//! `Broker.Subscribe` stream that settles every batch it receives). HTTP/2 is the h2 client on
//! a current-thread tokio runtime; messages are squall-rpc's prost types. Both loops end by
//! count, by time, or after `IO_TIMEOUT` without progress.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use squall_rpc::grpc::framing::{encode, Decoder};
use squall_rpc::grpc::pb::squall::v1 as pb;
use tokio::net::TcpStream;

use crate::run::{rate, Meter, Report};

/// Longest wait for any single answer before the run fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message the client accepts from the broker.
const MESSAGE_BYTES_MAX: usize = 64 << 20;

pub struct GrpcPubSpec {
    pub addr: SocketAddr,
    pub topic: String,
    pub connections: usize,
    /// Calls in flight per connection.
    pub window: usize,
    /// Bodies per call.
    pub batch: usize,
    pub size: usize,
    /// Total messages (0: bounded by `duration` only).
    pub count: u64,
    pub duration: Duration,
}

pub struct GrpcSubSpec {
    pub addr: SocketAddr,
    pub topic: String,
    pub channel: String,
    pub rdy: u32,
    /// Messages to receive (0: until idle).
    pub count: u64,
    pub idle: Duration,
    pub max: Duration,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the client runtime")
}

async fn connect(addr: SocketAddr) -> Result<h2::client::SendRequest<Bytes>> {
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("cannot connect to {addr}: timed out"))?
        .with_context(|| format!("cannot connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (send, conn) = h2::client::handshake(tcp).await.context("HTTP/2 handshake")?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn request(method: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://squall/squall.v1.Broker/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("static request parts")
}

/// Reads one DATA chunk, giving its flow-control window back at once.
async fn next_chunk(body: &mut h2::RecvStream) -> Result<Option<Bytes>> {
    match tokio::time::timeout(IO_TIMEOUT, body.data()).await {
        Err(_) => bail!("no answer from the broker in {IO_TIMEOUT:?}"),
        Ok(None) => Ok(None),
        Ok(Some(chunk)) => {
            let chunk = chunk.context("HTTP/2 stream failed")?;
            let _ = body.flow_control().release_capacity(chunk.len());
            Ok(Some(chunk))
        }
    }
}

/// The call's `grpc-status`, from the trailers (or the headers of a Trailers-Only answer).
fn status_of(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

/// One unary Publish: returns the number of message IDs the broker answered with.
async fn publish_once(send: &mut h2::client::SendRequest<Bytes>, call: Bytes) -> Result<usize> {
    let mut ready = send.clone().ready().await.context("connection closed")?;
    let (response, mut stream) = ready.send_request(request("Publish"), false)?;
    stream.send_data(call, true)?;
    let response = tokio::time::timeout(IO_TIMEOUT, response)
        .await
        .map_err(|_| anyhow!("no Publish answer in {IO_TIMEOUT:?}"))??;
    if let Some((code, msg)) = status_of(response.headers()) {
        bail!("Publish failed: grpc-status {code} {msg}");
    }
    let mut body = response.into_body();
    let mut decoder = Decoder::new(MESSAGE_BYTES_MAX);
    while let Some(chunk) = next_chunk(&mut body).await? {
        decoder.push(&chunk);
    }
    let trailers = body.trailers().await?.unwrap_or_default();
    match status_of(&trailers) {
        Some((0, _)) => {}
        Some((code, msg)) => bail!("Publish failed: grpc-status {code} {msg}"),
        None => bail!("Publish answer without grpc-status"),
    }
    let reply = decoder
        .next_message()
        .map_err(|s| anyhow!("bad Publish answer: {s:?}"))?
        .ok_or_else(|| anyhow!("Publish answer without a message"))?;
    let reply = <pb::PublishResponse as prost::Message>::decode(reply)?;
    Ok(reply.message_ids.len())
}

pub fn publish(spec: &GrpcPubSpec, pid: Option<u32>) -> Result<Report> {
    if spec.connections == 0 || spec.window == 0 || spec.batch == 0 {
        bail!("--connections, --window and --batch must be positive");
    }
    let meter = Meter::start(pid)?;
    let body = Bytes::from(vec![b'x'; spec.size]);
    let call = encode(&pb::PublishRequest {
        topic: spec.topic.clone(),
        bodies: vec![body; spec.batch],
        defer: None,
    });
    let published = Arc::new(AtomicU64::new(0));
    let claimed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + spec.duration;
    let batch = spec.batch as u64;
    let count = spec.count;
    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    let result: Result<()> = local.block_on(&rt, async {
        let mut tasks = Vec::new();
        for _ in 0..spec.connections {
            let send = connect(spec.addr).await?;
            for _ in 0..spec.window {
                let (mut send, call) = (send.clone(), call.clone());
                let (published, claimed, stop) = (published.clone(), claimed.clone(), stop.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        // Claim a batch first, so the count is never overshot.
                        if count > 0 && claimed.fetch_add(batch, Ordering::Relaxed) >= count {
                            break;
                        }
                        match publish_once(&mut send, call.clone()).await {
                            Ok(n) if n as u64 == batch => {
                                published.fetch_add(batch, Ordering::Relaxed);
                            }
                            Ok(n) => {
                                stop.store(true, Ordering::Relaxed);
                                bail!("Publish of {batch} bodies answered {n} message IDs");
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(())
                }));
            }
        }
        for t in tasks {
            t.await.context("publisher task")??;
        }
        Ok(())
    });
    result?;
    let mut r = Report {
        published: published.load(Ordering::Relaxed),
        publish_s: start.elapsed().as_secs_f64(),
        ..Report::default()
    };
    r.publish_msgs_per_s = rate(r.published, r.publish_s);
    meter.finish(&mut r)?;
    Ok(r)
}

fn command(cmd: pb::subscribe_request::Command) -> Bytes {
    encode(&pb::SubscribeRequest { command: Some(cmd) })
}

pub fn drain(spec: &GrpcSubSpec, pid: Option<u32>) -> Result<Report> {
    let meter = Meter::start(pid)?;
    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    let (received, first, last) = local.block_on(&rt, async {
        let send = connect(spec.addr).await?;
        let mut ready = send.ready().await.context("connection closed")?;
        let (response, mut stream) = ready.send_request(request("Subscribe"), false)?;
        let start = pb::Start {
            topic: spec.topic.clone(),
            channel: spec.channel.clone(),
            rdy: spec.rdy,
            client_id: "squall-bench".into(),
            ..Default::default()
        };
        stream.send_data(command(pb::subscribe_request::Command::Start(start)), false)?;
        let response = tokio::time::timeout(IO_TIMEOUT, response)
            .await
            .map_err(|_| anyhow!("no Subscribe answer in {IO_TIMEOUT:?}"))??;
        if let Some((code, msg)) = status_of(response.headers()) {
            bail!("Subscribe refused: grpc-status {code} {msg}");
        }
        let mut body = response.into_body();
        let mut decoder = Decoder::new(MESSAGE_BYTES_MAX);
        let began = Instant::now();
        let (mut received, mut first, mut last) = (0u64, None, None);
        loop {
            if spec.count > 0 && received >= spec.count {
                break;
            }
            if began.elapsed() > spec.max {
                break;
            }
            let chunk = match tokio::time::timeout(spec.idle, body.data()).await {
                Err(_) => break, // idle
                Ok(None) => bail!("the broker ended the Subscribe stream"),
                Ok(Some(chunk)) => chunk.context("Subscribe stream failed")?,
            };
            let _ = body.flow_control().release_capacity(chunk.len());
            decoder.push(&chunk);
            while let Some(msg) = decoder.next_message().map_err(|s| anyhow!("bad frame: {s:?}"))? {
                let event = <pb::SubscribeResponse as prost::Message>::decode(msg)?;
                match event.event {
                    Some(pb::subscribe_response::Event::Deliveries(d)) => {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        received += d.messages.len() as u64;
                        let ids = d.messages.into_iter().map(|m| m.id).collect();
                        let fin = pb::subscribe_request::Command::Fin(pb::Settle { ids });
                        stream.send_data(command(fin), false)?;
                    }
                    Some(pb::subscribe_response::Event::Error(e)) => {
                        bail!("broker said {} {}", e.code, e.message)
                    }
                    Some(pb::subscribe_response::Event::Started(_)) | None => {}
                }
            }
        }
        stream.send_reset(h2::Reason::CANCEL);
        Ok::<_, anyhow::Error>((received, first, last))
    })?;
    let mut r = Report {
        consumed: received,
        consume_s: match (first, last) {
            (Some(f), Some(l)) => l.duration_since(f).as_secs_f64().max(1e-6),
            _ => 0.0,
        },
        missing: spec.count.saturating_sub(received),
        ..Report::default()
    };
    r.consume_msgs_per_s = rate(r.consumed, r.consume_s);
    meter.finish(&mut r)?;
    Ok(r)
}
