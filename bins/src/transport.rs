//! A connection's transport layers: TLS (rustls, driven through its buffer API on the shard's
//! own ring, so nothing blocks and no second reactor exists), then snappy framing or raw DEFLATE
//! (spec §4.1 "Upgrade sequencing"). Compression runs inside TLS.
//!
//! Both ends of the upgrade use it: squalld's connections take the server side of TLS
//! ([`Transport::start_tls`]), squall-to-file's consumer the client side
//! ([`Transport::start_tls_client`]); the compression layers are the same bytes either way.
//!
//! Input: raw bytes the runtime read → [`Transport::decode`] → `plain_in`, which the broker reads
//! as if it were the socket's input. Output: the broker's writes gather in `plain_out`;
//! [`Transport::encode`] turns them into wire bytes once per flush (one compressed block, one
//! run of TLS records), never once per message.
//!
//! Decoding stops once `plain_in` holds `limit` bytes: a compressed stream cannot inflate past
//! the same input bound the runtime keeps for plain connections, and what is left stays in the
//! runtime's input buffer, which then stops reading the socket.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Largest uncompressed chunk in the snappy framing format.
const SNAPPY_CHUNK_DATA_BYTES_MAX: usize = 65_536;
/// Chunk header: a type byte and a 24-bit little-endian length.
const SNAPPY_CHUNK_HEADER_BYTES: usize = 4;
const SNAPPY_STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";
const SNAPPY_CHUNK_COMPRESSED: u8 = 0x00;
const SNAPPY_CHUNK_UNCOMPRESSED: u8 = 0x01;
const SNAPPY_CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
/// How much decrypted or inflated output one read step appends at most.
const DECODE_STEP_BYTES: usize = 16 * 1024;
/// Passes through the layers per `decode` call; each pass moves at most a few records.
const DECODE_PASSES_MAX: usize = 1024;

/// Why a layer gave up on its stream; the connection closes.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS: {0}")]
    TlsIo(#[from] std::io::Error),
    #[error("snappy: {0}")]
    Snappy(&'static str),
    #[error("{0}")]
    SnappyData(#[from] snap::Error),
    #[error("deflate: {0}")]
    Deflate(String),
    /// The client finished its compressed stream (a client closing its compressor): an ordinary
    /// end of the connection, not worth a warning.
    #[error("compressed stream ended")]
    Ended,
}

enum Codec {
    Plain,
    Snappy(Box<Snappy>),
    Deflate(Box<Deflate>),
}

pub struct Transport {
    tls: Option<Box<Connection>>,
    codec: Codec,
    /// Decrypted bytes waiting for the codec (only with TLS and a codec).
    mid: BytesMut,
    /// Decoded input the broker reads.
    pub plain_in: BytesMut,
    /// Written since the last encode.
    plain_out: Vec<u8>,
    /// Compressed output of one encode.
    scratch: Vec<u8>,
    /// A layer failed: nothing more is decoded or encoded (the connection is closing).
    failed: bool,
    /// What the first byte after the TLS upgrade said: `Some(true)` for a TLS handshake record.
    first_tls_byte_was_handshake: Option<bool>,
    /// The first bytes read once TLS started began like an HTTP request (Go's
    /// `tlsRecordHeaderLooksLikeHTTP`).
    first_tls_bytes_look_like_http: bool,
    /// TLS started by an NSQ IDENTIFY (not an HTTPS listener): a failed handshake is answered
    /// with nsqd's `E_IDENTIFY_FAILED` frame.
    pub identify_upgrade: bool,
}

impl Default for Transport {
    fn default() -> Self {
        Transport::new()
    }
}

impl Transport {
    pub fn new() -> Transport {
        Transport {
            tls: None,
            codec: Codec::Plain,
            mid: BytesMut::new(),
            plain_in: BytesMut::new(),
            plain_out: Vec::new(),
            scratch: Vec::new(),
            failed: false,
            first_tls_byte_was_handshake: None,
            first_tls_bytes_look_like_http: false,
            identify_upgrade: false,
        }
    }

    pub fn start_tls(&mut self, config: Arc<ServerConfig>) -> Result<(), Fault> {
        debug_assert!(self.tls.is_none() && matches!(self.codec, Codec::Plain));
        self.tls = Some(Box::new(ServerConnection::new(config)?.into()));
        Ok(())
    }

    /// The client side: the ClientHello is ready for the next [`Transport::encode`].
    pub fn start_tls_client(
        &mut self,
        config: Arc<ClientConfig>,
        server: ServerName<'static>,
    ) -> Result<(), Fault> {
        debug_assert!(self.tls.is_none() && matches!(self.codec, Codec::Plain));
        self.tls = Some(Box::new(ClientConnection::new(config, server)?.into()));
        Ok(())
    }

    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether rustls has bytes of its own to send (handshake messages, alerts, key updates).
    pub fn tls_wants_write(&self) -> bool {
        self.tls.as_deref().is_some_and(|t| t.wants_write())
    }

    /// Plaintext that TLS already produced but that belongs to a codec started after it: a
    /// peer may send its first compressed bytes right behind the frame that announced them.
    pub fn unread_tls_plaintext(&mut self, bytes: &[u8]) {
        debug_assert!(self.tls.is_some());
        let mut mid = BytesMut::with_capacity(bytes.len() + self.mid.len());
        mid.extend_from_slice(bytes);
        mid.extend_from_slice(&self.mid);
        self.mid = mid;
    }

    pub fn start_snappy(&mut self) {
        self.codec = Codec::Snappy(Box::default());
    }

    pub fn start_deflate(&mut self, level: u32) {
        self.codec = Codec::Deflate(Box::new(Deflate::new(level)));
    }

    /// `/stats`' view of the TLS session, once the handshake is done.
    pub fn tls_info(&self) -> Option<squall_core::broker::TlsInfo> {
        let tls = self.tls.as_deref()?;
        let version = match tls.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_2 => "TLS1.2".to_string(),
            rustls::ProtocolVersion::TLSv1_3 => "TLS1.3".to_string(),
            other => format!("Unknown {}", u16::from(other)),
        };
        // nsqd names the classic suites Go knows by name; every other one is "Unknown <id>".
        let suite = u16::from(tls.negotiated_cipher_suite()?.suite());
        let cipher_suite = match suite {
            0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string(),
            0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_string(),
            id => format!("Unknown {id}"),
        };
        Some(squall_core::broker::TlsInfo {
            version,
            cipher_suite,
            negotiated_protocol: String::new(),
            // Go reports true for every TLS connection.
            negotiated_protocol_is_mutual: true,
            common_name: tls
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| crate::x509_cn::subject_common_name(cert))
                .unwrap_or_default(),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.plain_out.extend_from_slice(bytes);
    }

    /// Plaintext written and not yet encoded.
    pub fn pending_plain(&self) -> usize {
        self.plain_out.len()
    }

    /// Decodes what it can of `raw` (consuming it from the front) into `plain_in`, stopping once
    /// `plain_in` holds `limit` bytes. Returns the plaintext bytes added.
    /// The TLS handshake has started and not finished.
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_deref().is_some_and(|t| t.is_handshaking())
    }

    /// Whether the client sent plain HTTP where TLS was expected (the HTTPS listener).
    pub fn tls_peer_sent_http(&self) -> bool {
        self.first_tls_bytes_look_like_http
    }

    /// Whether the client opened the TLS upgrade with something other than a TLS handshake
    /// record (a client that does not speak TLS at all).
    pub fn tls_peer_not_tls(&self) -> bool {
        self.first_tls_byte_was_handshake == Some(false)
    }

    pub fn decode(&mut self, raw: &mut BytesMut, limit: usize) -> Result<usize, Fault> {
        if self.failed {
            raw.clear();
            return Ok(0);
        }
        if self.tls.is_some() && self.first_tls_byte_was_handshake.is_none() {
            if let Some(&b) = raw.first() {
                self.first_tls_byte_was_handshake = Some(b == 0x16);
                self.first_tls_bytes_look_like_http = raw.len() >= 5
                    && [&b"GET /"[..], b"HEAD ", b"POST ", b"PUT /", b"OPTIO"].contains(&&raw[..5]);
            }
        }
        let result = self.decode_layers(raw, limit);
        self.failed = result.is_err();
        result
    }

    fn decode_layers(&mut self, raw: &mut BytesMut, limit: usize) -> Result<usize, Fault> {
        let start = self.plain_in.len();
        for _ in 0..DECODE_PASSES_MAX {
            let before = (raw.len(), self.mid.len(), self.plain_in.len());
            let has_codec = !matches!(self.codec, Codec::Plain);
            if let Some(tls) = self.tls.as_deref_mut() {
                let target = if has_codec {
                    &mut self.mid
                } else {
                    &mut self.plain_in
                };
                tls_decode(tls, raw, target, limit)?;
            }
            let src = if self.tls.is_some() {
                &mut self.mid
            } else {
                &mut *raw
            };
            match &mut self.codec {
                Codec::Plain => {
                    if self.tls.is_none() {
                        let n = src.len().min(limit.saturating_sub(self.plain_in.len()));
                        self.plain_in.extend_from_slice(&src[..n]);
                        src.advance(n);
                    }
                }
                Codec::Snappy(s) => s.decode(src, &mut self.plain_in, limit)?,
                Codec::Deflate(d) => d.decode(src, &mut self.plain_in, limit)?,
            }
            if before == (raw.len(), self.mid.len(), self.plain_in.len()) {
                break;
            }
        }
        Ok(self.plain_in.len() - start)
    }

    /// What rustls owes the peer on its own (handshake messages, alerts, session tickets), and
    /// plaintext it held until the handshake was done; what the broker wrote since its last
    /// flush stays buffered.
    pub fn drain_tls(&mut self, wire: &mut Vec<u8>) -> Result<(), Fault> {
        if let Some(tls) = self.tls.as_deref_mut() {
            while tls.wants_write() {
                tls.write_tls(wire)?;
            }
        }
        Ok(())
    }

    /// Encodes what was written since the last call, appending the wire bytes to `wire`; with
    /// TLS, also whatever rustls has to send (handshake messages, alerts).
    pub fn encode(&mut self, wire: &mut Vec<u8>) -> Result<(), Fault> {
        if self.failed {
            // Only what rustls owes the peer (an alert) still goes out.
            self.plain_out.clear();
            if let Some(tls) = self.tls.as_deref_mut() {
                while tls.wants_write() {
                    tls.write_tls(wire)?;
                }
            }
            return Ok(());
        }
        let result = self.encode_layers(wire);
        self.failed = result.is_err();
        result
    }

    fn encode_layers(&mut self, wire: &mut Vec<u8>) -> Result<(), Fault> {
        if !self.plain_out.is_empty() {
            let data: &[u8] = match &mut self.codec {
                Codec::Plain => &self.plain_out,
                Codec::Snappy(s) => {
                    s.encode(&self.plain_out, &mut self.scratch);
                    &self.scratch
                }
                Codec::Deflate(d) => {
                    d.encode(&self.plain_out, &mut self.scratch)?;
                    &self.scratch
                }
            };
            match self.tls.as_deref_mut() {
                Some(tls) => tls_encode(tls, data, wire)?,
                None => wire.extend_from_slice(data),
            }
            self.plain_out.clear();
            self.scratch.clear();
        }
        if let Some(tls) = self.tls.as_deref_mut() {
            while tls.wants_write() {
                tls.write_tls(wire)?;
            }
        }
        Ok(())
    }
}

/// Seals `data` into TLS records appended to `wire`. rustls buffers a bounded amount of
/// plaintext at a time, so records are taken out as they are made.
fn tls_encode(tls: &mut Connection, mut data: &[u8], wire: &mut Vec<u8>) -> Result<(), Fault> {
    while !data.is_empty() {
        let n = tls.writer().write(data)?;
        data = &data[n..];
        let mut drained = 0;
        while tls.wants_write() {
            drained += tls.write_tls(wire)?;
        }
        if n == 0 && drained == 0 {
            return Err(Fault::TlsIo(std::io::ErrorKind::WriteZero.into()));
        }
    }
    Ok(())
}

/// Feeds `raw` to rustls and reads the plaintext it yields into `target` (up to `limit`).
fn tls_decode(
    tls: &mut Connection,
    raw: &mut BytesMut,
    target: &mut BytesMut,
    limit: usize,
) -> Result<(), Fault> {
    while !raw.is_empty() && target.len() < limit {
        let mut slice: &[u8] = raw;
        let n = match tls.read_tls(&mut slice) {
            Ok(n) => n,
            // rustls holds as much as it will buffer: read its plaintext out first.
            Err(e) if e.kind() == std::io::ErrorKind::Other && tls.wants_read() => break,
            Err(e) => return Err(e.into()),
        };
        raw.advance(n);
        tls.process_new_packets()?;
        read_plaintext(tls, target, limit)?;
        if n == 0 {
            break;
        }
    }
    read_plaintext(tls, target, limit)
}

fn read_plaintext(tls: &mut Connection, target: &mut BytesMut, limit: usize) -> Result<(), Fault> {
    while target.len() < limit {
        let len = target.len();
        target.resize(len + DECODE_STEP_BYTES, 0);
        match tls.reader().read(&mut target[len..]) {
            Ok(n) => {
                target.truncate(len + n);
                if n == 0 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                target.truncate(len);
                break;
            }
            Err(e) => {
                target.truncate(len);
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// The snappy framing format (the `snap` crate's raw block codec, framed here so decoding can
/// stop at any byte and resume when more arrives).
struct Snappy {
    encoder: snap::raw::Encoder,
    decoder: snap::raw::Decoder,
    sent_identifier: bool,
    seen_identifier: bool,
    block: Vec<u8>,
}

impl Default for Snappy {
    fn default() -> Self {
        Snappy {
            encoder: snap::raw::Encoder::new(),
            decoder: snap::raw::Decoder::new(),
            sent_identifier: false,
            seen_identifier: false,
            block: Vec::new(),
        }
    }
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

impl Snappy {
    fn encode(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        if !self.sent_identifier {
            out.extend_from_slice(SNAPPY_STREAM_IDENTIFIER);
            self.sent_identifier = true;
        }
        for chunk in plain.chunks(SNAPPY_CHUNK_DATA_BYTES_MAX) {
            self.block.resize(snap::raw::max_compress_len(chunk.len()), 0);
            let compressed = match self.encoder.compress(chunk, &mut self.block) {
                // Stored when compression saves less than 12.5%, as golang/snappy does.
                Ok(n) if n < chunk.len() - chunk.len() / 8 => Some(n),
                _ => None,
            };
            let (kind, body) = match compressed {
                Some(n) => (SNAPPY_CHUNK_COMPRESSED, &self.block[..n]),
                None => (SNAPPY_CHUNK_UNCOMPRESSED, chunk),
            };
            let len = (body.len() + 4) as u32;
            out.push(kind);
            out.extend_from_slice(&len.to_le_bytes()[..3]);
            out.extend_from_slice(&masked_crc(chunk).to_le_bytes());
            out.extend_from_slice(body);
        }
    }

    fn decode(&mut self, src: &mut BytesMut, plain: &mut BytesMut, limit: usize) -> Result<(), Fault> {
        while plain.len() < limit && src.len() >= SNAPPY_CHUNK_HEADER_BYTES {
            let kind = src[0];
            let len = usize::from(src[1]) | usize::from(src[2]) << 8 | usize::from(src[3]) << 16;
            let body_max = match kind {
                SNAPPY_CHUNK_COMPRESSED => 4 + snap::raw::max_compress_len(SNAPPY_CHUNK_DATA_BYTES_MAX),
                SNAPPY_CHUNK_UNCOMPRESSED => 4 + SNAPPY_CHUNK_DATA_BYTES_MAX,
                SNAPPY_CHUNK_STREAM_IDENTIFIER => 6,
                0x02..=0x7f => return Err(Fault::Snappy("unsupported chunk type")),
                // Skippable chunks and padding: no longer than a data chunk (golang/snappy).
                _ => 4 + snap::raw::max_compress_len(SNAPPY_CHUNK_DATA_BYTES_MAX),
            };
            if len > body_max {
                return Err(Fault::Snappy("chunk too long"));
            }
            if kind != SNAPPY_CHUNK_STREAM_IDENTIFIER && !self.seen_identifier {
                return Err(Fault::Snappy("missing stream identifier"));
            }
            if src.len() < SNAPPY_CHUNK_HEADER_BYTES + len {
                return Ok(());
            }
            let body = &src[SNAPPY_CHUNK_HEADER_BYTES..SNAPPY_CHUNK_HEADER_BYTES + len];
            match kind {
                0x80..=0xfe => {}
                SNAPPY_CHUNK_STREAM_IDENTIFIER => {
                    if body != &SNAPPY_STREAM_IDENTIFIER[4..] {
                        return Err(Fault::Snappy("bad stream identifier"));
                    }
                    self.seen_identifier = true;
                }
                _ => {
                    if len < 4 {
                        return Err(Fault::Snappy("chunk too short"));
                    }
                    let crc = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    let data = &body[4..];
                    let at = plain.len();
                    if kind == SNAPPY_CHUNK_COMPRESSED {
                        let n = snap::raw::decompress_len(data)?;
                        if n > SNAPPY_CHUNK_DATA_BYTES_MAX {
                            return Err(Fault::Snappy("chunk too long"));
                        }
                        plain.resize(at + n, 0);
                        if let Err(e) = self.decoder.decompress(data, &mut plain[at..]) {
                            plain.truncate(at);
                            return Err(e.into());
                        }
                    } else {
                        plain.extend_from_slice(data);
                    }
                    if masked_crc(&plain[at..]) != crc {
                        plain.truncate(at);
                        return Err(Fault::Snappy("checksum mismatch"));
                    }
                }
            }
            src.advance(SNAPPY_CHUNK_HEADER_BYTES + len);
        }
        Ok(())
    }
}

/// Raw DEFLATE (RFC 1951, no zlib header) with a sync flush after every encode, so each flushed
/// batch is decodable on its own (nsqd's `flate.Writer.Flush`).
struct Deflate {
    compress: Compress,
    decompress: Decompress,
}

impl Deflate {
    fn new(level: u32) -> Deflate {
        Deflate {
            compress: Compress::new(Compression::new(level), false),
            decompress: Decompress::new(false),
        }
    }

    fn encode(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), Fault> {
        let mut consumed = 0;
        // Each pass makes room for the whole input again: a handful of passes at most.
        for _ in 0..DECODE_PASSES_MAX {
            out.reserve(plain.len() - consumed + 64);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(&plain[consumed..], out, FlushCompress::Sync)
                .map_err(|e| Fault::Deflate(e.to_string()))?;
            consumed += (self.compress.total_in() - before) as usize;
            if consumed == plain.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
        Err(Fault::Deflate("compressor made no progress".to_string()))
    }

    fn decode(&mut self, src: &mut BytesMut, plain: &mut BytesMut, limit: usize) -> Result<(), Fault> {
        // Output that did not fit the last step waits inside the inflater: keep stepping while
        // steps come back full, even once the input is all taken.
        let mut full = false;
        while plain.len() < limit && (!src.is_empty() || full) {
            let at = plain.len();
            let room = (limit - at).min(DECODE_STEP_BYTES);
            plain.resize(at + room, 0);
            let (in0, out0) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress(src, &mut plain[at..], FlushDecompress::None);
            let read = (self.decompress.total_in() - in0) as usize;
            let wrote = (self.decompress.total_out() - out0) as usize;
            plain.truncate(at + wrote);
            src.advance(read);
            match status {
                Ok(Status::Ok) | Ok(Status::BufError) => {}
                Ok(Status::StreamEnd) => return Err(Fault::Ended),
                Err(e) => return Err(Fault::Deflate(e.to_string())),
            }
            if read == 0 && wrote == 0 {
                break;
            }
            full = wrote == room;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(make: impl Fn(&mut Transport)) {
        let mut server = Transport::new();
        make(&mut server);
        let mut client = Transport::new();
        make(&mut client);
        let payload: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        server.write(&payload);
        let mut wire = Vec::new();
        server.encode(&mut wire).unwrap();
        // Byte at a time for the first part: decoding resumes at any split.
        let mut raw = BytesMut::new();
        for b in &wire[..300] {
            raw.extend_from_slice(&[*b]);
            client.decode(&mut raw, usize::MAX).unwrap();
        }
        raw.extend_from_slice(&wire[300..]);
        client.decode(&mut raw, usize::MAX).unwrap();
        assert!(raw.is_empty());
        assert_eq!(&client.plain_in[..], &payload[..]);
    }

    #[test]
    fn snappy_roundtrips_across_any_split() {
        roundtrip(|t| t.start_snappy());
    }

    #[test]
    fn deflate_roundtrips_across_any_split() {
        roundtrip(|t| t.start_deflate(6));
    }

    #[test]
    fn snappy_stream_starts_with_the_identifier_and_a_flush_is_a_whole_chunk() {
        let mut t = Transport::new();
        t.start_snappy();
        t.write(b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
        let mut wire = Vec::new();
        t.encode(&mut wire).unwrap();
        assert_eq!(&wire[..10], SNAPPY_STREAM_IDENTIFIER);
        // Ten bytes do not compress: one stored chunk of crc + data.
        assert_eq!(&wire[10..14], &[SNAPPY_CHUNK_UNCOMPRESSED, 14, 0, 0]);
        assert_eq!(wire.len(), 10 + 4 + 4 + 10);
    }

    #[test]
    fn deflate_output_ends_in_a_sync_flush_marker() {
        let mut t = Transport::new();
        t.start_deflate(6);
        t.write(b"\x00\x00\x00\x06\x00\x00\x00\x00OK");
        let mut wire = Vec::new();
        t.encode(&mut wire).unwrap();
        assert_eq!(&wire[wire.len() - 4..], &[0, 0, 0xff, 0xff]);
    }

    #[test]
    fn corrupt_streams_are_faults() {
        let mut t = Transport::new();
        t.start_snappy();
        let mut raw = BytesMut::from(&b"\x00\x05\x00\x00hello"[..]);
        assert!(
            t.decode(&mut raw, usize::MAX).is_err(),
            "data before the identifier"
        );
        let mut t = Transport::new();
        t.start_snappy();
        let mut raw = BytesMut::from(SNAPPY_STREAM_IDENTIFIER);
        raw.extend_from_slice(b"\x01\x06\x00\x00\x00\x00\x00\x00hi");
        assert!(t.decode(&mut raw, usize::MAX).is_err(), "bad checksum");
        let mut t = Transport::new();
        t.start_deflate(6);
        let mut raw = BytesMut::from(&b"\xff\xff\xff\xff\xff\xff"[..]);
        assert!(t.decode(&mut raw, usize::MAX).is_err());
    }

    #[test]
    fn deflate_output_held_inside_the_inflater_is_not_stranded() {
        // Highly compressible: a few bytes of input inflate to far more than one step.
        let mut w = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        w.write_all(&vec![b'z'; 300_000]).unwrap();
        w.flush().unwrap();
        let mut t = Transport::new();
        t.start_deflate(6);
        let mut raw = BytesMut::from(&w.get_ref()[..]);
        t.decode(&mut raw, usize::MAX).unwrap();
        assert!(raw.is_empty());
        assert_eq!(t.plain_in.len(), 300_000);
    }

    #[test]
    fn decoding_stops_at_the_limit() {
        let mut server = Transport::new();
        server.start_deflate(9);
        server.write(&vec![b'a'; 1 << 20]);
        let mut wire = Vec::new();
        server.encode(&mut wire).unwrap();
        let mut client = Transport::new();
        client.start_deflate(9);
        let mut raw = BytesMut::from(&wire[..]);
        client.decode(&mut raw, 64 * 1024).unwrap();
        assert!(client.plain_in.len() <= 64 * 1024 + DECODE_STEP_BYTES);
        assert!(!raw.is_empty(), "the rest waits in the raw input");
        client.plain_in.clear();
        client.decode(&mut raw, usize::MAX).unwrap();
        assert!(raw.is_empty());
    }
}
