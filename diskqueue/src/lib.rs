//! Squall's durable disk queue: the backend each non-ephemeral topic and channel overflows into.
//!
//! A queue is a FIFO of byte records (for the broker: the 26-byte NSQ message header + body) in
//! segment files mapped with `mmap(MAP_SHARED)`. [`DiskQueue::put`] is a CRC32C and a memcpy into
//! the mapping; [`DiskQueue::next`] checks a record's CRC and hands it out as a zero-copy
//! [`bytes::Bytes`] over the mapping. Durability is sans-IO: the queue says when a sync is due and
//! which descriptors to fsync; the broker submits the fsyncs through its io_uring and reports back,
//! so the shard loop never blocks on the disk except for rare control operations (open, a segment
//! roll, unlinking a consumed segment, empty, delete, close).
//!
//! The byte format is drawn in `FORMAT.md` and mirrored in [`format`].
//!
//! # Durability contract
//!
//! - `put` returns the record's sequence number `seq`. Once [`DiskQueue::durable_position`]
//!   `> seq`, the record survives `kill -9` and power loss (it was covered by a sync round whose
//!   every fsync completed: [`DiskQueue::finish_sync`], or [`DiskQueue::sync_now`] /
//!   [`DiskQueue::close`]). With `--sync-every=1` the broker sends a publish's `OK` only then.
//! - A crash can lose records put after the last completed round (all, some, or a torn part of
//!   one: the torn tail is cut off at open), and can replay records read after the last round's
//!   read position (at-least-once, as nsqd). It never loses a durable record that was not yet
//!   durably consumed, never reorders, never invents or duplicates a record within one run.
//! - Bit rot in a record is found by its CRC when it is read: that record is skipped and counted
//!   ([`DiskQueue::corrupt_records_skipped`]); its neighbours survive. Records lost in a crash
//!   after a torn record (past the last durable position) are counted the same way.
//! - A failed fsync poisons the queue ([`DiskQueue::fail_sync`]): Linux may have dropped the dirty
//!   pages, so retrying proves nothing. Puts fail until the queue is reopened; reads work.
//! - On Linux, fsync of a file also writes back pages dirtied through a shared mapping; that is
//!   what lets the ring's plain fsync stand in for `msync`. (Other systems would need `msync`.)
//!
//! # Layout
//!
//! - [`format`]: file names, segment header, record, metadata slot; encode/validate.
//! - `options`: [`Options`] (nsqd's names and defaults) and the limits they are clamped to.
//! - `queue`: [`DiskQueue`]: put, next, roll, depth, empty, delete.
//! - `sync`: sync policy and rounds ([`SyncBatch`], [`SyncToken`]), `sync_now`, `close`.
//! - `recovery`: `open`: slot choice, scan, seal, fsync.
//! - [`storage`]: the narrow [`Storage`] trait, [`FileStorage`] (mmap), [`CrashStorage`] (an
//!   in-memory fake that keeps what was fsync'd apart from what was merely written, and crashes).
//! - `error`: one error enum per operation.
//! - `fuzzing`: the checks the fuzz targets (`fuzz/`) and the corpus replay test run.
//!
//! # Invariants
//!
//! - A mapped byte is either unpublished (only the queue, on its own thread, reads or writes it)
//!   or published (handed out in a `Bytes`, never written again). The writer only writes at or
//!   past the write position; recovery writes before anything is published.
//! - A published `Bytes` keeps its segment mapped, even after the segment is consumed and
//!   unlinked. Only the queue may change its files: truncating one under a live mapping would turn
//!   reads into SIGBUS.
//! - Sequence numbers increase by one per record, across segments, restarts and `empty`;
//!   `depth = write seq - read seq`.
//! - A segment file is unlinked only after a durable metadata slot records the reader past it.
//! - At most one sync round is in flight; its descriptors stay open until it is reported.
//! - Nothing is ever written past a seal, and after an unclean stop nothing is ever appended to a
//!   segment that was being written when the stop came.
//!
//! # Costs
//!
//! `put` and `next` are memcpy + CRC, plus a minor page fault on the first touch of each 4 KiB
//! page (about 17 records of 200 bytes). A page evicted from the page cache makes `next` a major
//! fault that blocks the shard: the price of reading through a mapping. Every segment from the
//! read segment to the write segment stays mapped (address space only); descriptors are kept
//! only for segments still awaiting an fsync.
//!
//! # Not here
//!
//! Reading go-diskqueue's files (a different format) is not supported. Records are opaque: the
//! deferral time of a deferred message is not stored (as in nsqd).

pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod storage;

mod error;
mod options;
mod queue;
mod recovery;
mod sync;

pub use error::{DeleteError, EmptyError, OpenError, PutError, SyncError};
pub use format::Position;
pub use options::{
    Options, FIRST_SEGMENT_BYTES, MAX_BYTES_PER_FILE_DEFAULT, MAX_MSG_SIZE_DEFAULT, NSQ_MESSAGE_HEADER_BYTES,
    RECORD_PAYLOAD_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SYNC_EVERY_DEFAULT, SYNC_TIMEOUT_DEFAULT,
};
pub use queue::DiskQueue;
pub use storage::{CrashPlan, CrashStorage, FileStorage, Storage, StorageFile};
pub use sync::{SyncBatch, SyncToken};
