//! One nsqd connection's byte stream on the consumer side: the socket and the layers IDENTIFY
//! negotiated on it, in go-nsq's order (TLS, then deflate or snappy; protocol spec §4), through
//! the same [`Transport`] squalld runs for its end of the upgrade.
//!
//! Two threads use a stream: the connection's reader, and whoever sends (the reader answering
//! heartbeats, the topic's logger FINning). The layers' state is behind one mutex, held for CPU
//! work only (decode, encode) and never across a socket call; the socket's write half has its
//! own mutex, taken first, so bytes reach the socket in the order they were encoded.
//! Lock order: [`Wire::writer`] → [`Wire::transport`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Buf, BytesMut};

use super::options::{DECODE_STEP_BYTES, SOCKET_READ_BYTES};
use super::protocol::{decode_frame, Frame};
use crate::transport::{Fault, Transport};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread cannot leave a stream worse than broken, which the reader then reports.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Writer {
    socket: TcpStream,
    /// Wire bytes of one send; kept to reuse its allocation.
    out: Vec<u8>,
}

/// The shared half of a stream: sending, and the layers.
pub struct Wire {
    writer: Mutex<Writer>,
    transport: Mutex<Transport>,
}

impl Wire {
    /// `socket` is the write half (a clone of the reader's socket, with the write timeout).
    pub fn new(socket: TcpStream) -> Wire {
        Wire {
            writer: Mutex::new(Writer {
                socket,
                out: Vec::new(),
            }),
            transport: Mutex::new(Transport::new()),
        }
    }

    /// Encodes `plain` through the layers and writes it. An empty `plain` still sends what TLS
    /// owes the peer (a ClientHello, the end of a handshake, an alert).
    pub fn send(&self, plain: &[u8]) -> io::Result<()> {
        let mut guard = lock(&self.writer);
        let Writer { socket, out } = &mut *guard;
        out.clear();
        {
            let mut t = lock(&self.transport);
            t.write(plain);
            t.encode(out).map_err(fault_to_io)?;
        }
        if out.is_empty() {
            return Ok(());
        }
        socket.write_all(out)
    }

    pub fn shutdown(&self) {
        let _ = lock(&self.writer).socket.shutdown(Shutdown::Both);
    }
}

fn fault_to_io(f: Fault) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, f.to_string())
}

/// The reader's half of a stream: the socket's read side and what was read and not yet framed.
/// Owned by the connection's reader thread.
pub struct FrameReader {
    socket: TcpStream,
    /// Wire bytes the layers have not taken yet.
    raw: BytesMut,
    /// Decoded bytes not yet framed.
    plain: BytesMut,
    /// One socket read lands here.
    chunk: Box<[u8]>,
    /// When the socket last gave bytes.
    pub last_rx: Instant,
}

impl FrameReader {
    /// `socket` has a short read timeout, so [`FrameReader::next`] comes back regularly.
    pub fn new(socket: TcpStream) -> FrameReader {
        FrameReader {
            socket,
            raw: BytesMut::new(),
            plain: BytesMut::new(),
            chunk: vec![0u8; SOCKET_READ_BYTES].into_boxed_slice(),
            last_rx: Instant::now(),
        }
    }

    /// The next frame; `Ok(None)` when nothing complete arrived within the socket's read timeout.
    pub fn next(&mut self, wire: &Wire) -> Result<Option<Frame>, String> {
        loop {
            match decode_frame(&self.plain) {
                Ok(Some((frame, used))) => {
                    self.plain.advance(used);
                    return Ok(Some(frame));
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            if !self.fill(wire)? {
                return Ok(None);
            }
        }
    }

    /// Waits for one frame, up to `timeout`.
    pub fn expect(&mut self, wire: &Wire, timeout: std::time::Duration) -> Result<Frame, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = self.next(wire)? {
                return Ok(f);
            }
            if Instant::now() >= deadline {
                return Err("timed out waiting for nsqd".into());
            }
        }
    }

    /// Adds decoded bytes to `plain`: true when some came, false when the socket had nothing
    /// within its read timeout.
    fn fill(&mut self, wire: &Wire) -> Result<bool, String> {
        loop {
            let (added, tls_owes) = {
                let mut t = lock(&wire.transport);
                let added = t
                    .decode(&mut self.raw, DECODE_STEP_BYTES)
                    .map_err(|e| e.to_string())?;
                self.plain.extend_from_slice(&t.plain_in);
                t.plain_in.clear();
                (added, t.tls_wants_write())
            };
            if tls_owes {
                // A handshake message, or an answer rustls owes; sent by the writer path, so
                // it lands between whole sends.
                wire.send(&[]).map_err(|e| e.to_string())?;
            }
            if added > 0 {
                return Ok(true);
            }
            match self.socket.read(&mut self.chunk) {
                Ok(0) => return Err("EOF".into()),
                Ok(n) => {
                    self.raw.extend_from_slice(&self.chunk[..n]);
                    self.last_rx = Instant::now();
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Starts a layer right after the frame that announced it. What was already read behind
    /// that frame (nsqd sends its first compressed bytes without waiting) belongs to the new
    /// layer: it goes back in front of the layer's input.
    pub fn upgrade(
        &mut self,
        wire: &Wire,
        start: impl FnOnce(&mut Transport) -> Result<(), Fault>,
    ) -> Result<(), String> {
        let mut t = lock(&wire.transport);
        let unread = self.plain.split();
        if !unread.is_empty() {
            if t.has_tls() {
                t.unread_tls_plaintext(&unread);
            } else {
                let mut raw = BytesMut::with_capacity(unread.len() + self.raw.len());
                raw.extend_from_slice(&unread);
                raw.extend_from_slice(&self.raw);
                self.raw = raw;
            }
        }
        start(&mut t).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn frame(data: &[u8]) -> Vec<u8> {
        let mut v = ((data.len() + 4) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        (client, server)
    }

    /// nsqd writes the IDENTIFY reply and its first deflated frame back to back: both arrive in
    /// one read, and the bytes behind the reply still reach the deflate layer.
    #[test]
    fn bytes_behind_the_upgrade_frame_go_to_the_new_layer() {
        let (client, mut server) = pair();
        let wire = Wire::new(client.try_clone().unwrap());
        let mut reader = FrameReader::new(client);
        let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        deflated.write_all(&frame(b"OK")).unwrap();
        deflated.write_all(&frame(b"after")).unwrap();
        deflated.flush().unwrap();
        let mut bytes = frame(br#"{"deflate":true}"#);
        bytes.extend_from_slice(deflated.get_ref());
        server.write_all(&bytes).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let timeout = std::time::Duration::from_secs(5);
        assert_eq!(
            reader.expect(&wire, timeout).unwrap(),
            Frame::Response(br#"{"deflate":true}"#.to_vec())
        );
        reader
            .upgrade(&wire, |t| {
                t.start_deflate(6);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            reader.expect(&wire, timeout).unwrap(),
            Frame::Response(b"OK".to_vec())
        );
        assert_eq!(
            reader.expect(&wire, timeout).unwrap(),
            Frame::Response(b"after".to_vec())
        );
        // And what the client sends is deflated.
        wire.send(b"NOP\n").unwrap();
        let mut got = [0u8; 64];
        let n = server.read(&mut got).unwrap();
        let mut inflated = Vec::new();
        let mut d = flate2::write::DeflateDecoder::new(&mut inflated);
        d.write_all(&got[..n]).unwrap();
        d.flush().unwrap();
        drop(d);
        assert_eq!(inflated, b"NOP\n");
    }
}
