//! One gRPC call on one HTTP/2 stream: reading length-prefixed requests, sending responses with
//! bounded buffering, and ending with trailers (or Trailers-Only when nothing was sent).

use std::future::poll_fn;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Response};
use prost::Message;

use super::framing::{self, Decoder};
use super::server::Limits;
use super::status::{Code, Status};
use super::transport::Pipe;

pub const CONTENT_TYPE: &str = "application/grpc";

pub struct Call {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    recv: RecvStream,
    decoder: Decoder,
    /// The client ended its side (END_STREAM seen).
    recv_done: bool,
    finished: bool,
    /// The connection: it counts request bytes held by all its calls' decoders.
    pipe: Pipe,
    /// This call's part of that count, and the most the connection may hold.
    accounted: usize,
    connection_request_bytes_max: usize,
}

fn stream_gone(e: h2::Error) -> Status {
    if e.is_reset() || e.is_go_away() {
        Status::new(Code::Cancelled, "the client cancelled the call")
    } else {
        Status::new(Code::Unavailable, format!("stream failed: {e}"))
    }
}

impl Call {
    pub fn new(respond: SendResponse<Bytes>, recv: RecvStream, limits: &Limits, pipe: Pipe) -> Call {
        Call {
            respond,
            send: None,
            recv,
            decoder: Decoder::new(limits.message_bytes_max),
            recv_done: false,
            finished: false,
            pipe,
            accounted: 0,
            connection_request_bytes_max: limits.connection_request_bytes_max,
        }
    }

    /// Brings the connection's count of buffered request bytes up to date; the total.
    fn account(&mut self) -> usize {
        let now = self.decoder.buffered();
        let total = self.pipe.account_request_bytes(self.accounted, now);
        self.accounted = now;
        total
    }

    /// The next request message; `Ok(None)` once the client ended its side.
    pub async fn next_bytes(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(msg) = self.decoder.next_message()? {
                self.account();
                return Ok(Some(msg));
            }
            if self.recv_done {
                if self.decoder.buffered() > 0 {
                    return Err(Status::new(Code::Internal, "the request ended inside a message"));
                }
                return Ok(None);
            }
            match self.recv.data().await {
                Some(Ok(chunk)) => {
                    let _ = self.recv.flow_control().release_capacity(chunk.len());
                    self.decoder.push(&chunk);
                    if self.account() > self.connection_request_bytes_max {
                        // Partial messages on every stream would otherwise add up to streams
                        // × message limit.
                        return Err(Status::new(
                            Code::ResourceExhausted,
                            "too many request bytes buffered on this connection",
                        ));
                    }
                }
                Some(Err(e)) => return Err(stream_gone(e)),
                None => self.recv_done = true,
            }
        }
    }

    pub async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, Status> {
        match self.next_bytes().await? {
            None => Ok(None),
            Some(bytes) => M::decode(bytes)
                .map(Some)
                .map_err(|e| Status::new(Code::Internal, format!("cannot decode the request: {e}"))),
        }
    }

    /// A unary call's one request.
    pub async fn unary<M: Message + Default>(&mut self) -> Result<M, Status> {
        self.next()
            .await?
            .ok_or_else(|| Status::new(Code::Internal, "the request carried no message"))
    }

    fn headers(&mut self) -> Result<&mut SendStream<Bytes>, Status> {
        if self.send.is_none() {
            let stream = self
                .respond
                .send_response(grpc_response(), false)
                .map_err(stream_gone)?;
            self.send = Some(stream);
        }
        Ok(self.send.as_mut().expect("set above"))
    }

    /// Sends one response message, waiting for flow-control room (at most one message is ever
    /// buffered per stream).
    pub async fn send<M: Message>(&mut self, msg: &M) -> Result<(), Status> {
        let mut data = framing::encode(msg);
        let stream = self.headers()?;
        while !data.is_empty() {
            stream.reserve_capacity(data.len());
            let room = match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(stream_gone(e)),
                None => return Err(Status::new(Code::Cancelled, "the stream closed")),
            };
            if room == 0 {
                continue;
            }
            let chunk = data.split_to(room.min(data.len()));
            stream.send_data(chunk, false).map_err(stream_gone)?;
        }
        Ok(())
    }

    /// Resolves when the client resets the stream.
    pub async fn reset(&mut self) -> Status {
        let reason = match &mut self.send {
            Some(stream) => poll_fn(|cx| stream.poll_reset(cx)).await,
            None => poll_fn(|cx| self.respond.poll_reset(cx)).await,
        };
        match reason {
            Ok(r) => Status::new(Code::Cancelled, format!("the client reset the stream ({r:?})")),
            Err(e) => stream_gone(e),
        }
    }

    /// RST_STREAM(CANCEL): the server gives up on a call it cannot answer.
    pub fn cancel(&mut self) {
        match &mut self.send {
            Some(stream) => stream.send_reset(h2::Reason::CANCEL),
            None => self.respond.send_reset(h2::Reason::CANCEL),
        }
    }

    /// Ends the call: trailers after messages, or Trailers-Only when none were sent.
    pub fn finish(&mut self, status: &Status) {
        if self.finished {
            return;
        }
        self.finished = true;
        match &mut self.send {
            Some(stream) => {
                let _ = stream.send_trailers(status.to_trailers());
            }
            None => {
                let mut resp = grpc_response();
                status.add_to(resp.headers_mut());
                let _ = self.respond.send_response(resp, true);
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.pipe.account_request_bytes(self.accounted, 0);
    }
}

fn grpc_response() -> Response<()> {
    let mut resp = Response::new(());
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// A plain HTTP answer for requests that are not gRPC at all (HTTP 415 for a wrong
/// content-type, 405 for a method other than POST).
pub fn refuse(mut respond: SendResponse<Bytes>, status: http::StatusCode) {
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    let _ = respond.send_response(resp, true);
}

/// Trailers-Only error for a call refused before its handler runs.
pub fn refuse_grpc(mut respond: SendResponse<Bytes>, status: &Status, extra: HeaderMap) {
    let mut resp = grpc_response();
    status.add_to(resp.headers_mut());
    resp.headers_mut().extend(extra);
    let _ = respond.send_response(resp, true);
}
