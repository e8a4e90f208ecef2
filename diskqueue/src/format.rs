//! The on-disk format, mirrored from `FORMAT.md` as chained `const` offsets.
//!
//! Every field's offset is the previous field's offset plus its size, so a field cannot be moved
//! without moving everything after it, and the compile-time asserts at the bottom pin the totals
//! that `FORMAT.md` draws. All integers are little-endian.
//!
//! Decoding is two-phase like the wire codecs: [`record_at`] first checks that a whole header fits,
//! then validates magic, kind, length and CRC, and returns `None` for anything that is not a whole,
//! valid record: "not a record here" is an ordinary value.

/// File names of a queue. Distinct from go-diskqueue's `<name>.diskqueue.*` so that a data
/// directory shared with (or migrated from) nsqd never has its files read as ours.
pub fn segment_file_name(queue: &str, segment: u64) -> String {
    format!("{queue}.squall.{segment:06}.dat")
}

/// See [`segment_file_name`].
pub fn meta_file_name(queue: &str) -> String {
    format!("{queue}.squall.meta.dat")
}

/// The segment number in `file` when it is one of `queue`'s segment files.
pub fn parse_segment_file_name(queue: &str, file: &str) -> Option<u64> {
    let digits = file
        .strip_prefix(queue)?
        .strip_prefix(".squall.")?
        .strip_suffix(".dat")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Segment header: the first 32 bytes of every segment file.
// ---------------------------------------------------------------------------------------------

pub const SEGMENT_MAGIC: [u8; 8] = *b"SQDQSEG\0";
pub const SEGMENT_VERSION: u16 = 1;

pub const SEGMENT_MAGIC_OFFSET: usize = 0;
pub const SEGMENT_MAGIC_BYTES: usize = 8;
pub const SEGMENT_VERSION_OFFSET: usize = SEGMENT_MAGIC_OFFSET + SEGMENT_MAGIC_BYTES;
pub const SEGMENT_VERSION_BYTES: usize = 2;
pub const SEGMENT_HEADER_LEN_OFFSET: usize = SEGMENT_VERSION_OFFSET + SEGMENT_VERSION_BYTES;
pub const SEGMENT_HEADER_LEN_BYTES: usize = 2;
pub const SEGMENT_RESERVED0_OFFSET: usize = SEGMENT_HEADER_LEN_OFFSET + SEGMENT_HEADER_LEN_BYTES;
pub const SEGMENT_RESERVED0_BYTES: usize = 4;
pub const SEGMENT_NUMBER_OFFSET: usize = SEGMENT_RESERVED0_OFFSET + SEGMENT_RESERVED0_BYTES;
pub const SEGMENT_NUMBER_BYTES: usize = 8;
pub const SEGMENT_RESERVED1_OFFSET: usize = SEGMENT_NUMBER_OFFSET + SEGMENT_NUMBER_BYTES;
pub const SEGMENT_RESERVED1_BYTES: usize = 4;
pub const SEGMENT_CRC_OFFSET: usize = SEGMENT_RESERVED1_OFFSET + SEGMENT_RESERVED1_BYTES;
pub const SEGMENT_CRC_BYTES: usize = 4;
/// Where the first record of a segment starts.
pub const SEGMENT_HEADER_BYTES: usize = SEGMENT_CRC_OFFSET + SEGMENT_CRC_BYTES;

/// The 32-byte header that starts segment `number`.
pub fn encode_segment_header(number: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[SEGMENT_MAGIC_OFFSET..][..SEGMENT_MAGIC_BYTES].copy_from_slice(&SEGMENT_MAGIC);
    h[SEGMENT_VERSION_OFFSET..][..SEGMENT_VERSION_BYTES].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[SEGMENT_HEADER_LEN_OFFSET..][..SEGMENT_HEADER_LEN_BYTES]
        .copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
    h[SEGMENT_NUMBER_OFFSET..][..SEGMENT_NUMBER_BYTES].copy_from_slice(&number.to_le_bytes());
    let crc = crc32c::crc32c(&h[..SEGMENT_CRC_OFFSET]);
    h[SEGMENT_CRC_OFFSET..][..SEGMENT_CRC_BYTES].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Whether `bytes` starts with a valid header for segment `number`. Informational only: records
/// are self-validating, so a bad segment header never makes recovery skip the segment's records.
pub fn segment_header_valid(bytes: &[u8], number: u64) -> bool {
    bytes.len() >= SEGMENT_HEADER_BYTES && bytes[..SEGMENT_HEADER_BYTES] == encode_segment_header(number)
}

// ---------------------------------------------------------------------------------------------
// Record: 24-byte header, payload, zero padding to the next multiple of 8.
// ---------------------------------------------------------------------------------------------

/// First bytes of every record header; the non-ASCII first byte makes a match inside text bodies
/// unlikely, and the CRC makes a false match harmless.
pub const RECORD_MAGIC: [u8; 4] = [0xA5, b'S', b'Q', b'R'];
/// Records start on multiples of this, so a resync scan only probes aligned offsets.
pub const RECORD_ALIGN: usize = 8;

pub const RECORD_MAGIC_OFFSET: usize = 0;
pub const RECORD_MAGIC_BYTES: usize = 4;
pub const RECORD_LEN_OFFSET: usize = RECORD_MAGIC_OFFSET + RECORD_MAGIC_BYTES;
pub const RECORD_LEN_BYTES: usize = 4;
pub const RECORD_SEQ_OFFSET: usize = RECORD_LEN_OFFSET + RECORD_LEN_BYTES;
pub const RECORD_SEQ_BYTES: usize = 8;
pub const RECORD_KIND_OFFSET: usize = RECORD_SEQ_OFFSET + RECORD_SEQ_BYTES;
pub const RECORD_KIND_BYTES: usize = 2;
pub const RECORD_RESERVED_OFFSET: usize = RECORD_KIND_OFFSET + RECORD_KIND_BYTES;
pub const RECORD_RESERVED_BYTES: usize = 2;
pub const RECORD_CRC_OFFSET: usize = RECORD_RESERVED_OFFSET + RECORD_RESERVED_BYTES;
pub const RECORD_CRC_BYTES: usize = 4;
pub const RECORD_HEADER_BYTES: usize = RECORD_CRC_OFFSET + RECORD_CRC_BYTES;
/// A seal is a header alone.
pub const SEAL_RECORD_BYTES: usize = RECORD_HEADER_BYTES;

/// What a record is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub enum RecordKind {
    /// A queued record; payload = the caller's bytes (for the broker: 26-byte message header + body).
    Data = 1,
    /// "This segment ends here; continue in the next one." Written when the writer rolls, and by
    /// recovery at the end of every segment it scanned, so readers never scan a segment's tail.
    Seal = 2,
}

/// Bytes a record with a `payload_len`-byte payload occupies, padding included.
pub const fn record_bytes(payload_len: usize) -> usize {
    (RECORD_HEADER_BYTES + payload_len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// The header of a record; the CRC covers header bytes `0..RECORD_CRC_OFFSET` and the payload.
pub fn encode_record_header(kind: RecordKind, seq: u64, payload: &[u8]) -> [u8; RECORD_HEADER_BYTES] {
    let mut h = [0u8; RECORD_HEADER_BYTES];
    h[RECORD_MAGIC_OFFSET..][..RECORD_MAGIC_BYTES].copy_from_slice(&RECORD_MAGIC);
    h[RECORD_LEN_OFFSET..][..RECORD_LEN_BYTES].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[RECORD_SEQ_OFFSET..][..RECORD_SEQ_BYTES].copy_from_slice(&seq.to_le_bytes());
    h[RECORD_KIND_OFFSET..][..RECORD_KIND_BYTES].copy_from_slice(&(kind as u16).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..RECORD_CRC_OFFSET]), payload);
    h[RECORD_CRC_OFFSET..][..RECORD_CRC_BYTES].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A valid record found in a segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordRef {
    pub kind: RecordKind,
    pub seq: u64,
    /// Offset of the payload within the segment.
    pub payload_offset: usize,
    pub payload_len: usize,
    /// Offset of the next record (after padding), possibly past `end` by the padding only.
    pub next_offset: usize,
}

fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The header fields at `offset` when magic, kind and reserved bytes look right and the length
/// fits before `end`; the CRC is not checked yet. Used to jump over a record whose payload is
/// damaged but whose length field is plausible.
pub fn plausible_header_at(seg: &[u8], offset: usize, end: usize) -> Option<(RecordKind, u64, usize)> {
    let end = end.min(seg.len());
    if offset % RECORD_ALIGN != 0 || offset.checked_add(RECORD_HEADER_BYTES)? > end {
        return None;
    }
    let h = &seg[offset..offset + RECORD_HEADER_BYTES];
    if h[RECORD_MAGIC_OFFSET..][..RECORD_MAGIC_BYTES] != RECORD_MAGIC
        || le_u16(h, RECORD_RESERVED_OFFSET) != 0
    {
        return None;
    }
    let kind = match le_u16(h, RECORD_KIND_OFFSET) {
        1 => RecordKind::Data,
        2 => RecordKind::Seal,
        _ => return None,
    };
    let len = le_u32(h, RECORD_LEN_OFFSET) as usize;
    if (kind == RecordKind::Seal && len != 0) || len > end - offset - RECORD_HEADER_BYTES {
        return None;
    }
    Some((kind, le_u64(h, RECORD_SEQ_OFFSET), len))
}

/// The valid record at `offset` that ends at or before `end`, CRC checked; `None` for anything
/// else (zeros, garbage, a torn or damaged record).
pub fn record_at(seg: &[u8], offset: usize, end: usize) -> Option<RecordRef> {
    let (kind, seq, len) = plausible_header_at(seg, offset, end)?;
    let payload_offset = offset + RECORD_HEADER_BYTES;
    let payload = &seg[payload_offset..payload_offset + len];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&seg[offset..offset + RECORD_CRC_OFFSET]), payload);
    if crc != le_u32(seg, offset + RECORD_CRC_OFFSET) {
        return None;
    }
    Some(RecordRef {
        kind,
        seq,
        payload_offset,
        payload_len: len,
        next_offset: offset + record_bytes(len),
    })
}

/// The first valid record in `[from, end)` with a sequence number of at least `min_seq`
/// (`None` = any), trying `hint` (the end of a damaged record whose length looked plausible) first.
/// Probes aligned offsets only.
pub fn resync(
    seg: &[u8],
    from: usize,
    end: usize,
    min_seq: Option<u64>,
    hint: Option<usize>,
) -> Option<usize> {
    let ok = |off: usize| record_at(seg, off, end).is_some_and(|r| min_seq.is_none_or(|m| r.seq >= m));
    if let Some(h) = hint.filter(|&h| h >= from && ok(h)) {
        return Some(h);
    }
    let mut off = from.next_multiple_of(RECORD_ALIGN);
    let end = end.min(seg.len());
    while off + RECORD_HEADER_BYTES <= end {
        // Cheap first-byte filter before the full check.
        if seg[off] == RECORD_MAGIC[0] && ok(off) {
            return Some(off);
        }
        off += RECORD_ALIGN;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Metadata file: two 4096-byte slots; each holds one 120-byte state record.
// ---------------------------------------------------------------------------------------------

pub const META_MAGIC: [u8; 8] = *b"SQDQMETA";
pub const META_VERSION: u16 = 1;
/// One slot per page, so writing one slot never dirties (and a torn write-back never touches) the
/// page that holds the other.
pub const META_SLOT_STRIDE_BYTES: usize = 4096;
pub const META_SLOTS: usize = 2;
pub const META_FILE_BYTES: usize = META_SLOT_STRIDE_BYTES * META_SLOTS;

pub const META_MAGIC_OFFSET: usize = 0;
pub const META_MAGIC_BYTES: usize = 8;
pub const META_VERSION_OFFSET: usize = META_MAGIC_OFFSET + META_MAGIC_BYTES;
pub const META_VERSION_BYTES: usize = 2;
pub const META_RESERVED0_OFFSET: usize = META_VERSION_OFFSET + META_VERSION_BYTES;
pub const META_RESERVED0_BYTES: usize = 6;
pub const META_GENERATION_OFFSET: usize = META_RESERVED0_OFFSET + META_RESERVED0_BYTES;
pub const META_GENERATION_BYTES: usize = 8;
pub const META_READ_SEGMENT_OFFSET: usize = META_GENERATION_OFFSET + META_GENERATION_BYTES;
pub const META_READ_SEGMENT_BYTES: usize = 8;
pub const META_READ_OFFSET_OFFSET: usize = META_READ_SEGMENT_OFFSET + META_READ_SEGMENT_BYTES;
pub const META_READ_OFFSET_BYTES: usize = 8;
pub const META_READ_SEQ_OFFSET: usize = META_READ_OFFSET_OFFSET + META_READ_OFFSET_BYTES;
pub const META_READ_SEQ_BYTES: usize = 8;
pub const META_WRITE_SEGMENT_OFFSET: usize = META_READ_SEQ_OFFSET + META_READ_SEQ_BYTES;
pub const META_WRITE_SEGMENT_BYTES: usize = 8;
pub const META_WRITE_OFFSET_OFFSET: usize = META_WRITE_SEGMENT_OFFSET + META_WRITE_SEGMENT_BYTES;
pub const META_WRITE_OFFSET_BYTES: usize = 8;
pub const META_WRITE_SEQ_OFFSET: usize = META_WRITE_OFFSET_OFFSET + META_WRITE_OFFSET_BYTES;
pub const META_WRITE_SEQ_BYTES: usize = 8;
pub const META_DURABLE_SEGMENT_OFFSET: usize = META_WRITE_SEQ_OFFSET + META_WRITE_SEQ_BYTES;
pub const META_DURABLE_SEGMENT_BYTES: usize = 8;
pub const META_DURABLE_OFFSET_OFFSET: usize = META_DURABLE_SEGMENT_OFFSET + META_DURABLE_SEGMENT_BYTES;
pub const META_DURABLE_OFFSET_BYTES: usize = 8;
pub const META_DURABLE_SEQ_OFFSET: usize = META_DURABLE_OFFSET_OFFSET + META_DURABLE_OFFSET_BYTES;
pub const META_DURABLE_SEQ_BYTES: usize = 8;
pub const META_DEPTH_OFFSET: usize = META_DURABLE_SEQ_OFFSET + META_DURABLE_SEQ_BYTES;
pub const META_DEPTH_BYTES: usize = 8;
pub const META_CORRUPT_OFFSET: usize = META_DEPTH_OFFSET + META_DEPTH_BYTES;
pub const META_CORRUPT_BYTES: usize = 8;
pub const META_FLAGS_OFFSET: usize = META_CORRUPT_OFFSET + META_CORRUPT_BYTES;
pub const META_FLAGS_BYTES: usize = 4;
pub const META_CRC_OFFSET: usize = META_FLAGS_OFFSET + META_FLAGS_BYTES;
pub const META_CRC_BYTES: usize = 4;
pub const META_SLOT_BYTES: usize = META_CRC_OFFSET + META_CRC_BYTES;
/// Flag bit: written by a clean close, after which nothing was written; the bytes after the write
/// position are untouched zeros, so the next open may append in the same segment.
pub const META_FLAG_CLEAN: u32 = 1;

/// A place in the queue: segment number, byte offset in it, and the sequence number of the record
/// that starts there (or would be written there).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    pub seq: u64,
}

/// The state one metadata slot holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MetaState {
    /// Higher wins at recovery; slot = generation % 2.
    pub generation: u64,
    pub read: Position,
    /// Where the writer was when the slot was written (a hint: recovery trusts only `durable`).
    pub write: Position,
    /// The write position covered by the last completed sync round before this slot was written.
    pub durable: Position,
    pub depth: u64,
    pub corrupt_records_skipped: u64,
    /// See [`META_FLAG_CLEAN`].
    pub clean: bool,
}

fn put_pos(s: &mut [u8], seg_off: usize, p: Position) {
    s[seg_off..seg_off + 8].copy_from_slice(&p.segment.to_le_bytes());
    s[seg_off + 8..seg_off + 16].copy_from_slice(&p.offset.to_le_bytes());
    s[seg_off + 16..seg_off + 24].copy_from_slice(&p.seq.to_le_bytes());
}

fn get_pos(s: &[u8], seg_off: usize) -> Position {
    Position {
        segment: le_u64(s, seg_off),
        offset: le_u64(s, seg_off + 8),
        seq: le_u64(s, seg_off + 16),
    }
}

pub fn encode_meta(m: &MetaState) -> [u8; META_SLOT_BYTES] {
    let mut s = [0u8; META_SLOT_BYTES];
    s[META_MAGIC_OFFSET..][..META_MAGIC_BYTES].copy_from_slice(&META_MAGIC);
    s[META_VERSION_OFFSET..][..META_VERSION_BYTES].copy_from_slice(&META_VERSION.to_le_bytes());
    s[META_GENERATION_OFFSET..][..META_GENERATION_BYTES].copy_from_slice(&m.generation.to_le_bytes());
    put_pos(&mut s, META_READ_SEGMENT_OFFSET, m.read);
    put_pos(&mut s, META_WRITE_SEGMENT_OFFSET, m.write);
    put_pos(&mut s, META_DURABLE_SEGMENT_OFFSET, m.durable);
    s[META_DEPTH_OFFSET..][..META_DEPTH_BYTES].copy_from_slice(&m.depth.to_le_bytes());
    s[META_CORRUPT_OFFSET..][..META_CORRUPT_BYTES].copy_from_slice(&m.corrupt_records_skipped.to_le_bytes());
    let flags = if m.clean { META_FLAG_CLEAN } else { 0 };
    s[META_FLAGS_OFFSET..][..META_FLAGS_BYTES].copy_from_slice(&flags.to_le_bytes());
    let crc = crc32c::crc32c(&s[..META_CRC_OFFSET]);
    s[META_CRC_OFFSET..][..META_CRC_BYTES].copy_from_slice(&crc.to_le_bytes());
    s
}

/// The state in `slot` when magic, version and CRC check out.
pub fn decode_meta(slot: &[u8]) -> Option<MetaState> {
    if slot.len() < META_SLOT_BYTES
        || slot[META_MAGIC_OFFSET..][..META_MAGIC_BYTES] != META_MAGIC
        || le_u16(slot, META_VERSION_OFFSET) != META_VERSION
        || crc32c::crc32c(&slot[..META_CRC_OFFSET]) != le_u32(slot, META_CRC_OFFSET)
    {
        return None;
    }
    Some(MetaState {
        generation: le_u64(slot, META_GENERATION_OFFSET),
        read: get_pos(slot, META_READ_SEGMENT_OFFSET),
        write: get_pos(slot, META_WRITE_SEGMENT_OFFSET),
        durable: get_pos(slot, META_DURABLE_SEGMENT_OFFSET),
        depth: le_u64(slot, META_DEPTH_OFFSET),
        corrupt_records_skipped: le_u64(slot, META_CORRUPT_OFFSET),
        clean: le_u32(slot, META_FLAGS_OFFSET) & META_FLAG_CLEAN != 0,
    })
}

// The totals FORMAT.md draws.
const _: () = assert!(SEGMENT_HEADER_BYTES == 32);
const _: () = assert!(SEGMENT_HEADER_BYTES % RECORD_ALIGN == 0);
const _: () = assert!(RECORD_HEADER_BYTES == 24);
const _: () = assert!(RECORD_HEADER_BYTES % RECORD_ALIGN == 0);
const _: () = assert!(RECORD_SEQ_OFFSET % 8 == 0);
const _: () = assert!(META_SLOT_BYTES == 120);
const _: () = assert!(META_SLOT_BYTES <= META_SLOT_STRIDE_BYTES);
const _: () = assert!(META_READ_SEGMENT_BYTES + META_READ_OFFSET_BYTES + META_READ_SEQ_BYTES == 24);
const _: () = assert!(META_WRITE_SEGMENT_BYTES + META_WRITE_OFFSET_BYTES + META_WRITE_SEQ_BYTES == 24);
const _: () = assert!(META_DURABLE_SEGMENT_BYTES + META_DURABLE_OFFSET_BYTES + META_DURABLE_SEQ_BYTES == 24);
const _: () = assert!(record_bytes(0) == 24 && record_bytes(1) == 32 && record_bytes(8) == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_padding() {
        let payload = b"hello, squall";
        let mut seg = vec![0u8; 128];
        let h = encode_record_header(RecordKind::Data, 7, payload);
        seg[32..56].copy_from_slice(&h);
        seg[56..56 + payload.len()].copy_from_slice(payload);
        let r = record_at(&seg, 32, seg.len()).expect("valid");
        assert_eq!(r.kind, RecordKind::Data);
        assert_eq!(r.seq, 7);
        assert_eq!(&seg[r.payload_offset..r.payload_offset + r.payload_len], payload);
        assert_eq!(r.next_offset, 32 + 40);
        assert_eq!(r.next_offset % RECORD_ALIGN, 0);
        // The record must fit before `end`.
        assert!(record_at(&seg, 32, 60).is_none());
    }

    #[test]
    fn any_flipped_bit_invalidates_a_record() {
        let payload = [0x42u8; 30];
        let mut seg = vec![0u8; 64];
        seg[..24].copy_from_slice(&encode_record_header(RecordKind::Data, 1, &payload));
        seg[24..54].copy_from_slice(&payload);
        for byte in 0..54 {
            for bit in 0..8 {
                let mut s = seg.clone();
                s[byte] ^= 1 << bit;
                assert!(record_at(&s, 0, s.len()).is_none(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn zeros_are_never_a_record() {
        let seg = vec![0u8; 4096];
        assert!(record_at(&seg, 0, seg.len()).is_none());
        assert_eq!(resync(&seg, 0, seg.len(), None, None), None);
    }

    #[test]
    fn resync_finds_the_next_valid_record_and_honours_min_seq() {
        let mut seg = vec![0xEEu8; 256];
        seg[128..152].copy_from_slice(&encode_record_header(RecordKind::Data, 9, &[]));
        assert_eq!(resync(&seg, 0, seg.len(), None, None), Some(128));
        assert_eq!(resync(&seg, 0, seg.len(), Some(9), None), Some(128));
        assert_eq!(resync(&seg, 0, seg.len(), Some(10), None), None);
        assert_eq!(resync(&seg, 136, seg.len(), None, None), None);
    }

    #[test]
    fn seal_has_no_payload() {
        let mut seg = vec![0u8; 64];
        seg[8..32].copy_from_slice(&encode_record_header(RecordKind::Seal, 3, &[]));
        let r = record_at(&seg, 8, 64).expect("seal");
        assert_eq!((r.kind, r.seq, r.next_offset), (RecordKind::Seal, 3, 32));
    }

    #[test]
    fn segment_header_checks_number() {
        let h = encode_segment_header(12);
        assert!(segment_header_valid(&h, 12));
        assert!(!segment_header_valid(&h, 13));
        assert_eq!(&h[..8], b"SQDQSEG\0");
    }

    #[test]
    fn meta_round_trip_and_crc() {
        let m = MetaState {
            generation: 5,
            read: Position {
                segment: 1,
                offset: 32,
                seq: 10,
            },
            write: Position {
                segment: 3,
                offset: 4000,
                seq: 99,
            },
            durable: Position {
                segment: 2,
                offset: 64,
                seq: 50,
            },
            depth: 89,
            corrupt_records_skipped: 2,
            clean: true,
        };
        let mut s = encode_meta(&m);
        assert_eq!(decode_meta(&s), Some(m));
        s[40] ^= 1;
        assert_eq!(decode_meta(&s), None);
        assert_eq!(decode_meta(&[0u8; META_SLOT_BYTES]), None);
    }

    #[test]
    fn file_names() {
        assert_eq!(segment_file_name("t:c", 3), "t:c.squall.000003.dat");
        assert_eq!(segment_file_name("t", 1_234_567), "t.squall.1234567.dat");
        assert_eq!(parse_segment_file_name("t", "t.squall.000003.dat"), Some(3));
        assert_eq!(parse_segment_file_name("t", "t.squall.meta.dat"), None);
        assert_eq!(
            parse_segment_file_name("t", "t.squall.000001.squall.000002.dat"),
            None
        );
        assert_eq!(parse_segment_file_name("t", "tt.squall.000003.dat"), None);
    }
}
