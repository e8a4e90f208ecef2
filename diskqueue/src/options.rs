//! Runtime options (nsqd's names and defaults) and the limits they are clamped against.

use std::time::Duration;

use crate::format::{RECORD_HEADER_BYTES, SEAL_RECORD_BYTES, SEGMENT_HEADER_BYTES};

/// nsqd's `--max-bytes-per-file` default (100 MiB).
pub const MAX_BYTES_PER_FILE_DEFAULT: u64 = 100 * 1024 * 1024;
/// nsqd's `--max-msg-size` default (1 MiB).
pub const MAX_MSG_SIZE_DEFAULT: u32 = 1024 * 1024;
/// nsqd's `--sync-every` default.
pub const SYNC_EVERY_DEFAULT: u64 = 2500;
/// nsqd's `--sync-timeout` default.
pub const SYNC_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);

/// The NSQ message header that precedes the body in every record the broker puts: timestamp (8) +
/// attempts (2) + ID (16), spec §1.4; `squall_core::message::MESSAGE_HEADER_BYTES`. Kept here, not
/// imported, so this crate builds and tests without core (nsqd's `maxMsgSize = --max-msg-size + 26`).
pub const NSQ_MESSAGE_HEADER_BYTES: u64 = 26;

/// Smallest segment: a header, one record header and a seal; below this every put would roll.
pub const SEGMENT_BYTES_MIN: u64 = (SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + SEAL_RECORD_BYTES) as u64;
/// Largest segment: a whole segment is mapped at once, so keep one mapping well inside the
/// address space and a `usize` on 64-bit targets.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 40;
/// Largest payload nsqd can hand us: the record length field is a u32, and a record must fit a
/// segment of at most [`SEGMENT_BYTES_MAX`].
pub const RECORD_PAYLOAD_BYTES_MAX: u64 = u32::MAX as u64 - RECORD_HEADER_BYTES as u64;

const _: () = assert!(SEGMENT_BYTES_MIN < MAX_BYTES_PER_FILE_DEFAULT);

/// The first segment file a queue writes after opening; each later one doubles, up to
/// `max_bytes_per_file`. Segments are preallocated (no SIGBUS on a full disk), so this keeps a
/// queue holding a few messages from reserving `max_bytes_per_file` of disk.
pub const FIRST_SEGMENT_BYTES: u64 = 1024 * 1024;
const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX < SEGMENT_BYTES_MAX);

/// How a queue sizes its files and when it asks to be synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Segment file size; a record too big for an empty segment gets a segment of its own size.
    pub max_bytes_per_file: u64,
    /// nsqd's `--max-msg-size`: the largest message *body*. A record (the 26-byte message header +
    /// body) may be up to `max_msg_size + 26` bytes.
    pub max_msg_size: u32,
    /// Ask for a sync after this many puts and reads (nsqd counts both); 0 is taken as 1.
    pub sync_every: u64,
    /// Ask for a sync when this long has passed since the last one and anything happened since.
    pub sync_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_bytes_per_file: MAX_BYTES_PER_FILE_DEFAULT,
            max_msg_size: MAX_MSG_SIZE_DEFAULT,
            sync_every: SYNC_EVERY_DEFAULT,
            sync_timeout: SYNC_TIMEOUT_DEFAULT,
        }
    }
}

impl Options {
    /// The options clamped into the limits above.
    pub fn clamped(self) -> Options {
        Options {
            max_bytes_per_file: self
                .max_bytes_per_file
                .clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
            max_msg_size: self.max_msg_size,
            sync_every: self.sync_every.max(1),
            sync_timeout: self.sync_timeout,
        }
    }

    /// Largest record payload `put` accepts.
    pub fn record_bytes_max(&self) -> u64 {
        (self.max_msg_size as u64 + NSQ_MESSAGE_HEADER_BYTES).min(RECORD_PAYLOAD_BYTES_MAX)
    }
}
