//! `squall.v1.Broker/Subscribe`: an NSQ consumer over a bidi stream.
//!
//! The stream speaks NSQ V2 to the broker: `start` becomes IDENTIFY + SUB + RDY, `rdy` / `fin` /
//! `req` / `touch` become their commands, and the broker's frames come back as `started`,
//! batched `deliveries` and `error`s. The consumer itself is an ordinary broker session on the
//! topic's owner shard (a virtual connection, see `bins`), so the channel's in-flight and
//! deferred queues, its timeouts and its round-robin are exactly the TCP ones, shared with TCP
//! consumers. This module holds the stream's side; `SubHub` is where the front picks up the
//! commands and drops the broker's frames.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::{select, Either};
use squall_core::names::Name;

use super::admin::GRPC_USER_AGENT_PREFIX;
use super::call::Call;
use super::pb::squall::v1::{
    subscribe_request::Command, subscribe_response::Event, CommandError, Deliveries, Delivery, Requeue,
    Settle, Start, Started, SubscribeRequest, SubscribeResponse,
};
use super::publish::{channel_name, duration, to_duration, topic_name};
use super::server::Ctx;
use super::status::{Code, Status};

/// Deliveries per response when `start.max_batch` is 0, and the most it may ask for.
pub const BATCH_MESSAGES_DEFAULT: u32 = 64;
pub const BATCH_MESSAGES_MAX: u32 = 1024;
/// Body bytes per `deliveries` response before it is sent (a larger message goes alone).
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;

/// What the front must carry to the owner shard's broker.
#[derive(Debug)]
pub enum SubChange {
    /// A new subscription: NSQ V2 bytes (magic, IDENTIFY, SUB, RDY) for a consumer of `topic`,
    /// from the client at `peer`.
    Open {
        id: u64,
        topic: Name,
        input: Bytes,
        peer: Option<SocketAddr>,
    },
    /// More commands (RDY, FIN, REQ, TOUCH).
    Input { id: u64, input: Bytes },
    /// The stream ended: the consumer leaves (its in-flight messages time out as on TCP).
    Close { id: u64 },
}

#[derive(Default)]
struct SubState {
    /// The broker's frames, as written to the consumer, not yet parsed.
    chunks: VecDeque<Bytes>,
    /// The broker closed the consumer.
    closed: bool,
    waker: Option<Waker>,
}

impl SubState {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The shard's subscriptions whose streams are served here.
#[derive(Default)]
pub struct SubHub {
    subs: HashMap<u64, Rc<RefCell<SubState>>>,
    changes: Vec<SubChange>,
    next_id: u64,
}

impl SubHub {
    pub fn take_changes(&mut self) -> Vec<SubChange> {
        std::mem::take(&mut self.changes)
    }

    /// Frames the broker wrote to subscription `id`.
    pub fn deliver(&mut self, id: u64, chunks: impl IntoIterator<Item = Bytes>) {
        if let Some(sub) = self.subs.get(&id) {
            let mut s = sub.borrow_mut();
            s.chunks.extend(chunks);
            s.wake();
        }
    }

    /// The broker closed subscription `id` (after its last frames).
    pub fn server_closed(&mut self, id: u64) {
        if let Some(sub) = self.subs.remove(&id) {
            let mut s = sub.borrow_mut();
            s.closed = true;
            s.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

/// The stream's handle; dropping it ends the consumer.
struct Subscription {
    id: u64,
    state: Rc<RefCell<SubState>>,
    hub: Rc<RefCell<SubHub>>,
}

impl Subscription {
    fn open(hub: &Rc<RefCell<SubHub>>, topic: Name, input: Bytes, peer: Option<SocketAddr>) -> Subscription {
        let mut h = hub.borrow_mut();
        h.next_id += 1;
        let id = h.next_id;
        let state = Rc::new(RefCell::new(SubState::default()));
        h.subs.insert(id, state.clone());
        h.changes.push(SubChange::Open {
            id,
            topic,
            input,
            peer,
        });
        Subscription {
            id,
            state,
            hub: hub.clone(),
        }
    }

    fn send(&self, input: Bytes) {
        if !input.is_empty() {
            self.hub
                .borrow_mut()
                .changes
                .push(SubChange::Input { id: self.id, input });
        }
    }

    fn take_chunks(&self, reader: &mut FrameReader) -> bool {
        let mut s = self.state.borrow_mut();
        reader.chunks.extend(s.chunks.drain(..));
        s.closed
    }

    async fn changed(&self) {
        poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if s.closed || !s.chunks.is_empty() {
                Poll::Ready(())
            } else {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut h = self.hub.borrow_mut();
        if h.subs.remove(&self.id).is_some() {
            h.changes.push(SubChange::Close { id: self.id });
        }
    }
}

/// One NSQ frame from the broker.
enum Frame {
    Response(Bytes),
    Error(Bytes),
    Message(Delivery),
}

/// Splits the broker's output into frames without copying bodies that sit in one chunk.
#[derive(Default)]
struct FrameReader {
    chunks: VecDeque<Bytes>,
}

impl FrameReader {
    fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    fn take(&mut self, n: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= n {
                let out = front.split_to(n);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                return out;
            }
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let front = self.chunks.front_mut().expect("caller checked the length");
            let k = (n - out.len()).min(front.len());
            out.put_slice(&front[..k]);
            front.advance(k);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        out.freeze()
    }

    fn next(&mut self) -> Option<Frame> {
        let total = self.len();
        if total < 8 {
            return None;
        }
        let head = self.take(8);
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if total < 4 + size {
            // Frames arrive whole (the broker writes each at once): put the head back.
            self.chunks.push_front(head);
            return None;
        }
        let data = self.take(size.saturating_sub(4));
        Some(match kind {
            0 => Frame::Response(data),
            1 => Frame::Error(data),
            _ => {
                let mut d = data;
                if d.len() < 26 {
                    return Some(Frame::Error(Bytes::from_static(b"E_INVALID short message frame")));
                }
                let timestamp_ns = d.get_i64();
                let attempts = d.get_u16() as u32;
                let id = d.split_to(16);
                Frame::Message(Delivery {
                    id,
                    attempts,
                    timestamp_ns,
                    body: d,
                })
            }
        })
    }
}

fn command_error(code: &str, message: impl Into<String>, ids: Vec<Bytes>) -> SubscribeResponse {
    SubscribeResponse {
        event: Some(Event::Error(CommandError {
            code: code.to_string(),
            message: message.into(),
            ids,
        })),
    }
}

/// An error frame's `E_CODE description` as a `CommandError`, with the message ID it names.
fn error_frame(data: &[u8]) -> CommandError {
    let text = String::from_utf8_lossy(data);
    let (code, message) = text.split_once(' ').unwrap_or((&text, ""));
    // "FIN <id> failed ...", "REQ <id> failed ...", "TOUCH <id> failed ..."
    let ids = message
        .split(' ')
        .nth(1)
        .filter(|id| id.len() == 16)
        .map(|id| vec![Bytes::copy_from_slice(id.as_bytes())])
        .unwrap_or_default();
    CommandError {
        code: code.to_string(),
        message: message.to_string(),
        ids,
    }
}

/// The consumer's opening: magic, IDENTIFY (default heartbeats, which the stream answers, as
/// nsqd refuses SUB without them; no output buffering: the front batches per loop turn), SUB,
/// RDY.
fn handshake(start: &Start, topic: &Name, channel: &Name, msg_timeout: Duration) -> Bytes {
    let client_id = if start.client_id.is_empty() {
        "grpc".to_string()
    } else {
        start.client_id.clone()
    };
    let identify = serde_json::json!({
        "client_id": client_id,
        "hostname": client_id,
        "user_agent": format!("{GRPC_USER_AGENT_PREFIX}{}", env!("CARGO_PKG_VERSION")),
        "feature_negotiation": false,
        "output_buffer_timeout": -1,
        "msg_timeout": msg_timeout.as_millis() as i64,
    })
    .to_string();
    let mut out = BytesMut::new();
    out.put_slice(b"  V2IDENTIFY\n");
    out.put_u32(identify.len() as u32);
    out.put_slice(identify.as_bytes());
    out.put_slice(format!("SUB {topic} {channel}\nRDY {}\n", start.rdy).as_bytes());
    out.freeze()
}

/// A settle handle the broker can parse: 16 printable bytes.
fn valid_id(id: &[u8]) -> bool {
    id.len() == 16 && id.iter().all(|b| b.is_ascii_graphic())
}

/// Turns one client frame into NSQ commands, or a `CommandError` the client gets instead.
fn translate(cmd: Option<Command>, ctx: &Ctx, out: &mut BytesMut) -> Result<(), SubscribeResponse> {
    let settle = |verb: &str, ids: &[Bytes], tail: &str, out: &mut BytesMut| {
        let bad: Vec<Bytes> = ids.iter().filter(|id| !valid_id(id)).cloned().collect();
        if !bad.is_empty() {
            return Err(command_error(
                "E_INVALID",
                format!("{verb}: invalid message ID"),
                bad,
            ));
        }
        for id in ids {
            out.put_slice(verb.as_bytes());
            out.put_u8(b' ');
            out.put_slice(id);
            out.put_slice(tail.as_bytes());
        }
        Ok(())
    };
    match cmd {
        Some(Command::Rdy(n)) => {
            if n > ctx.limits.max_rdy_count {
                return Err(command_error(
                    "E_INVALID",
                    format!("RDY count {n} out of range 0-{}", ctx.limits.max_rdy_count),
                    Vec::new(),
                ));
            }
            out.put_slice(format!("RDY {n}\n").as_bytes());
            Ok(())
        }
        Some(Command::Fin(Settle { ids })) => settle("FIN", &ids, "\n", out),
        Some(Command::Touch(Settle { ids })) => settle("TOUCH", &ids, "\n", out),
        Some(Command::Req(Requeue { ids, delay })) => {
            let delay = match delay.as_ref().map(duration) {
                None => Duration::ZERO,
                Some(Some(d)) if d <= ctx.limits.max_req_timeout => d,
                Some(_) => {
                    return Err(command_error(
                        "E_INVALID",
                        format!("REQ delay out of range 0-{:?}", ctx.limits.max_req_timeout),
                        ids,
                    ))
                }
            };
            settle("REQ", &ids, &format!(" {}\n", delay.as_millis()), out)
        }
        Some(Command::Start(_)) => Err(command_error(
            "E_INVALID",
            "start may be sent once, first",
            Vec::new(),
        )),
        None => Err(command_error("E_INVALID", "empty command", Vec::new())),
    }
}

/// Validates `start`; returns the topic, channel and effective message timeout.
fn check_start(start: &Start, ctx: &Ctx) -> Result<(Name, Name, Duration), Status> {
    let topic = topic_name(&start.topic)?;
    let channel = channel_name(&start.channel)?;
    let limits = &ctx.limits;
    let msg_timeout = match start.msg_timeout.as_ref().map(duration) {
        None => limits.msg_timeout,
        Some(Some(d)) if d.is_zero() => limits.msg_timeout,
        Some(Some(d)) if d >= Duration::from_secs(1) && d <= limits.max_msg_timeout => d,
        Some(_) => {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("msg_timeout must be between 1s and {:?}", limits.max_msg_timeout),
            ))
        }
    };
    if start.rdy > limits.max_rdy_count {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("rdy {} out of range 0-{}", start.rdy, limits.max_rdy_count),
        ));
    }
    Ok((topic, channel, msg_timeout))
}

pub async fn subscribe(call: &mut Call, ctx: &Rc<Ctx>, peer: Option<SocketAddr>) -> Result<(), Status> {
    let start = match call.next::<SubscribeRequest>().await? {
        Some(SubscribeRequest {
            command: Some(Command::Start(start)),
        }) => start,
        Some(_) => {
            return Err(Status::new(
                Code::FailedPrecondition,
                "the first frame must be start",
            ))
        }
        None => return Err(Status::new(Code::FailedPrecondition, "no start frame")),
    };
    let (topic, channel, msg_timeout) = check_start(&start, ctx)?;
    let max_batch = match start.max_batch {
        0 => BATCH_MESSAGES_DEFAULT,
        n => n.min(BATCH_MESSAGES_MAX),
    } as usize;
    let input = handshake(&start, &topic, &channel, msg_timeout);
    let sub = Subscription::open(&ctx.subs, topic, input, peer);
    let mut reader = FrameReader::default();
    let mut oks = 0;
    let mut last_error: Option<CommandError> = None;
    loop {
        let closed = sub.take_chunks(&mut reader);
        let mut batch: Vec<Delivery> = Vec::new();
        let mut batch_bytes = 0;
        while let Some(frame) = reader.next() {
            match frame {
                Frame::Message(d) => {
                    batch_bytes += d.body.len();
                    batch.push(d);
                    if batch.len() >= max_batch || batch_bytes >= BATCH_BYTES_MAX {
                        send_batch(call, &mut batch).await?;
                        batch_bytes = 0;
                    }
                }
                Frame::Response(data) if oks < 2 && &data[..] == b"OK" => {
                    oks += 1;
                    if oks == 2 {
                        let started = Started {
                            max_rdy: ctx.limits.max_rdy_count,
                            msg_timeout: Some(to_duration(msg_timeout)),
                            max_msg_size: ctx.limits.max_msg_size as u64,
                        };
                        call.send(&SubscribeResponse {
                            event: Some(Event::Started(started)),
                        })
                        .await?;
                    }
                }
                Frame::Response(data) if &data[..] == b"_heartbeat_" => {
                    sub.send(Bytes::from_static(b"NOP\n"))
                }
                Frame::Response(_) => {} // CLOSE_WAIT at shutdown
                Frame::Error(data) => {
                    send_batch(call, &mut batch).await?;
                    batch_bytes = 0;
                    let err = error_frame(&data);
                    if oks == 2 {
                        call.send(&SubscribeResponse {
                            event: Some(Event::Error(err.clone())),
                        })
                        .await?;
                    }
                    last_error = Some(err);
                }
            }
        }
        send_batch(call, &mut batch).await?;
        if closed {
            return Err(match last_error {
                Some(e) if oks < 2 || e.code.starts_with("E_INVALID") || e.code.starts_with("E_BAD") => {
                    Status::new(Code::InvalidArgument, format!("{} {}", e.code, e.message))
                }
                _ => Status::new(Code::Unavailable, "the subscription was closed by the server"),
            });
        }
        let next = {
            let read = pin!(call.next::<SubscribeRequest>());
            let changed = pin!(sub.changed());
            match select(read, changed).await {
                Either::Left((req, _)) => Some(req),
                Either::Right(_) => None,
            }
        };
        match next {
            None => {}
            Some(Err(status)) => return Err(status),
            Some(Ok(None)) => return Ok(()), // the client is done
            Some(Ok(Some(req))) => {
                let mut out = BytesMut::new();
                if let Err(e) = translate(req.command, ctx, &mut out) {
                    call.send(&e).await?;
                }
                sub.send(out.freeze());
            }
        }
    }
}

async fn send_batch(call: &mut Call, batch: &mut Vec<Delivery>) -> Result<(), Status> {
    if batch.is_empty() {
        return Ok(());
    }
    let messages = std::mem::take(batch);
    call.send(&SubscribeResponse {
        event: Some(Event::Deliveries(Deliveries { messages })),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u32, data: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u32(4 + data.len() as u32);
        b.put_u32(kind);
        b.put_slice(data);
        b.freeze()
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&7i64.to_be_bytes());
        msg.extend_from_slice(&2u16.to_be_bytes());
        msg.extend_from_slice(b"0123456789abcdef");
        msg.extend_from_slice(b"body");
        let mut all = frame(0, b"OK").to_vec();
        all.extend_from_slice(&frame(2, &msg));
        all.extend_from_slice(&frame(
            1,
            b"E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight",
        ));
        let mut r = FrameReader::default();
        for byte in all {
            r.chunks.push_back(Bytes::copy_from_slice(&[byte]));
        }
        assert!(matches!(r.next(), Some(Frame::Response(d)) if &d[..] == b"OK"));
        match r.next() {
            Some(Frame::Message(d)) => {
                assert_eq!((d.timestamp_ns, d.attempts), (7, 2));
                assert_eq!(&d.id[..], b"0123456789abcdef");
                assert_eq!(&d.body[..], b"body");
            }
            _ => panic!("message frame expected"),
        }
        match r.next() {
            Some(Frame::Error(d)) => {
                let e = error_frame(&d);
                assert_eq!(e.code, "E_FIN_FAILED");
                assert_eq!(e.ids, vec![Bytes::from_static(b"0123456789abcdef")]);
            }
            _ => panic!("error frame expected"),
        }
        assert!(r.next().is_none());
    }

    #[test]
    fn a_partial_frame_waits() {
        let f = frame(0, b"OK");
        let mut r = FrameReader::default();
        r.chunks.push_back(f.slice(..9));
        assert!(r.next().is_none());
        r.chunks.push_back(f.slice(9..));
        assert!(matches!(r.next(), Some(Frame::Response(d)) if &d[..] == b"OK"));
    }
}
