//! The client side of the NSQ TCP protocol V2, as much as a load generator needs: connect (magic,
//! IDENTIFY), encode PUB / MPUB / SUB / RDY / FIN / NOP, and split the byte stream into frames
//! without copying them.
//!
//! Sockets are blocking with read and write timeouts, so a broker that stops answering turns into
//! an error after `IO_TIMEOUT`, never a hang.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long a connect may take before the broker counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a blocked read or write may wait before the broker counts as stalled.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Socket buffers asked of the kernel: deep enough that a window of pipelined commands, or a
/// broker's burst of deliveries, never waits on the socket.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// The reader's own buffer; one `read` can take this much.
pub const READ_BUFFER_BYTES: usize = 1 << 20;

pub const FRAME_RESPONSE: i32 = 0;
pub const FRAME_ERROR: i32 = 1;
pub const FRAME_MESSAGE: i32 = 2;
/// A message frame's data: timestamp (8) + attempts (2) + id (16), then the body.
pub const MESSAGE_HEADER_BYTES: usize = 26;

/// Resolves a `host:port` flag once, so every connection of a run goes to the same address.
pub fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("invalid broker address {addr:?}"))?
        .next()
        .with_context(|| format!("broker address {addr:?} resolves to nothing"))
}

/// Opens a V2 connection and sends IDENTIFY (without feature negotiation, so the answer is `OK`).
/// `read_timeout` bounds every later read; consumers use a short one to poll their stop flag.
/// `identify_extra` is appended to the IDENTIFY object (e.g. `,"output_buffer_size":-1`).
pub fn connect(
    addr: SocketAddr,
    client_id: &str,
    read_timeout: Duration,
    identify_extra: &str,
) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .with_context(|| format!("cannot connect to broker at {addr}"))?;
    s.set_nodelay(true)?;
    set_buffers(&s);
    s.set_read_timeout(Some(read_timeout))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let identify = format!(
        "{{\"client_id\":\"{client_id}\",\"hostname\":\"{client_id}\",\"user_agent\":\"squall-bench/{}\"{identify_extra}}}",
        env!("CARGO_PKG_VERSION")
    );
    let mut hello = Vec::with_capacity(64 + identify.len());
    hello.extend_from_slice(b"  V2IDENTIFY\n");
    hello.extend_from_slice(&(identify.len() as u32).to_be_bytes());
    hello.extend_from_slice(identify.as_bytes());
    (&s).write_all(&hello)
        .with_context(|| format!("broker at {addr} closed the connection"))?;
    Ok(s)
}

/// Best effort: the kernel clamps to its own maximum, and a smaller buffer only costs speed.
fn set_buffers(s: &TcpStream) {
    let size = SOCKET_BUFFER_BYTES as libc::c_int;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a valid fd and a c_int option value of the right length.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// One frame, borrowed from the reader's buffer.
pub struct Frame<'a> {
    pub kind: i32,
    pub data: &'a [u8],
}

impl Frame<'_> {
    pub fn is_heartbeat(&self) -> bool {
        self.kind == FRAME_RESPONSE && self.data == b"_heartbeat_"
    }

    /// The 16-byte message id of a message frame.
    pub fn message_id(&self) -> Option<&[u8]> {
        self.data.get(10..26)
    }

    pub fn message_body(&self) -> &[u8] {
        self.data.get(MESSAGE_HEADER_BYTES..).unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.data).into_owned()
    }
}

/// A frame splitter over a blocking stream: `next_buffered` never blocks, `fill` reads once.
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Frames larger than this are a protocol error (nsqd's largest is a max-size message).
const FRAME_BYTES_MAX: usize = 64 << 20;

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: vec![0; READ_BUFFER_BYTES],
            start: 0,
            end: 0,
        }
    }
}

impl FrameReader {
    /// The next complete frame already buffered, if any.
    pub fn next_buffered(&mut self) -> Result<Option<Frame<'_>>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 8 {
            return Ok(None);
        }
        let size = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if !(4..=FRAME_BYTES_MAX).contains(&size) {
            bail!("broker sent a malformed frame (size {size})");
        }
        if avail.len() < 4 + size {
            return Ok(None);
        }
        let kind = i32::from_be_bytes([avail[4], avail[5], avail[6], avail[7]]);
        let (from, to) = (self.start + 8, self.start + 4 + size);
        self.start = to;
        Ok(Some(Frame {
            kind,
            data: &self.buf[from..to],
        }))
    }

    /// Reads once from `s` (blocking up to the socket's read timeout). `Ok(false)` means the
    /// timeout passed with nothing to read.
    pub fn fill(&mut self, mut s: &TcpStream) -> Result<bool> {
        self.make_room();
        let res = s.read(&mut self.buf[self.end..]);
        self.took(res)
    }

    /// Takes whatever is already in the socket without blocking. `Ok(false)`: nothing was.
    pub fn fill_nowait(&mut self, s: &TcpStream) -> Result<bool> {
        self.make_room();
        let spare = &mut self.buf[self.end..];
        // SAFETY: reading into our own buffer's spare part, with its exact length.
        let n = unsafe {
            libc::recv(
                s.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let res = if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        };
        self.took(res)
    }

    fn took(&mut self, res: io::Result<usize>) -> Result<bool> {
        match res {
            Ok(0) => bail!("broker closed the connection"),
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e).context("read from broker"),
        }
    }

    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            // Make room: move the partial frame to the front, and grow for a frame that is larger
            // than the whole buffer.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
    }

    /// Blocks for the next frame, answering heartbeats; fails after `IO_TIMEOUT` of silence.
    pub fn read_frame(&mut self, s: &TcpStream) -> Result<(i32, Vec<u8>)> {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(f) = self.next_buffered()? {
                if f.is_heartbeat() {
                    (&*s).write_all(b"NOP\n")?;
                    continue;
                }
                return Ok((f.kind, f.data.to_vec()));
            }
            if std::time::Instant::now() > deadline {
                bail!("broker did not answer within {IO_TIMEOUT:?}");
            }
            self.fill(s)?;
        }
    }

    /// Reads the answer to one command and fails unless it is `OK`.
    pub fn expect_ok(&mut self, s: &TcpStream, what: &str) -> Result<()> {
        let (kind, data) = self.read_frame(s)?;
        if kind != FRAME_RESPONSE || data != b"OK" {
            bail!("broker refused {what}: {}", String::from_utf8_lossy(&data).trim());
        }
        Ok(())
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Appends `PUB <topic>\n<size><body>`.
pub fn put_pub(out: &mut Vec<u8>, topic: &str, body: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(topic.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// Appends `MPUB <topic>\n<size><count>(<size><body>)*` with `count` copies of `body`, and returns
/// the offset of each body inside `out` so callers can stamp them.
pub fn put_mpub(out: &mut Vec<u8>, topic: &str, body: &[u8], count: usize) -> Vec<usize> {
    out.extend_from_slice(b"MPUB ");
    out.extend_from_slice(topic.as_bytes());
    out.push(b'\n');
    let size = 4 + count * (4 + body.len());
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&(count as u32).to_be_bytes());
    let mut offsets = Vec::with_capacity(count);
    for _ in 0..count {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        offsets.push(out.len());
        out.extend_from_slice(body);
    }
    offsets
}

/// Appends `FIN <id>\n`.
pub fn put_fin(out: &mut Vec<u8>, id: &[u8]) {
    out.extend_from_slice(b"FIN ");
    out.extend_from_slice(id);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpub_layout() {
        let mut out = Vec::new();
        let offs = put_mpub(&mut out, "t", b"ab", 2);
        assert_eq!(
            out,
            b"MPUB t\n\x00\x00\x00\x10\x00\x00\x00\x02\x00\x00\x00\x02ab\x00\x00\x00\x02ab"
        );
        assert_eq!(offs, vec![19, 25]);
    }

    #[test]
    fn frames_split_across_reads() {
        let mut r = FrameReader::default();
        let bytes = b"\x00\x00\x00\x06\x00\x00\x00\x00OK\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_";
        r.buf[..bytes.len() - 3].copy_from_slice(&bytes[..bytes.len() - 3]);
        r.end = bytes.len() - 3;
        let f = r.next_buffered().unwrap().unwrap();
        assert_eq!((f.kind, f.data), (FRAME_RESPONSE, &b"OK"[..]));
        assert!(r.next_buffered().unwrap().is_none());
        r.buf[r.end..bytes.len()].copy_from_slice(&bytes[bytes.len() - 3..]);
        r.end = bytes.len();
        assert!(r.next_buffered().unwrap().unwrap().is_heartbeat());
    }
}
