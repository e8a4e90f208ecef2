//! One error enum per operation. Every I/O error names what was being done and to which file.

use std::io;

/// Why [`DiskQueue::open`](crate::DiskQueue::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid disk queue name {0:?}: it must be non-empty and contain no '/' or NUL")]
    InvalidName(String),
    #[error("disk queue {queue}: cannot {op} {file}: {source}")]
    Io {
        queue: String,
        op: &'static str,
        file: String,
        source: io::Error,
    },
}

/// Why [`DiskQueue::put`](crate::DiskQueue::put) refused a record. The queue is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("record of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: usize, max: u64 },
    /// Rolling to a new segment failed (typically ENOSPC); a later put retries the roll.
    #[error("cannot create segment {file}: {source}")]
    Roll { file: String, source: io::Error },
    /// An fsync failed earlier ([`DiskQueue::fail_sync`](crate::DiskQueue::fail_sync)): after a
    /// failed fsync, Linux may have dropped the dirty pages, so nothing written since can be
    /// promised durable. The queue still reads; reopen it to write again.
    #[error("disk queue is poisoned by a failed fsync")]
    Poisoned,
}

/// Why [`DiskQueue::empty`](crate::DiskQueue::empty) failed; the queue is empty in memory either
/// way, and files it could not remove are retried by the next `empty` or `delete`.
#[derive(Debug, thiserror::Error)]
pub enum EmptyError {
    #[error("cannot {op} {file}: {source}")]
    Io {
        op: &'static str,
        file: String,
        source: io::Error,
    },
}

/// Why [`DiskQueue::delete`](crate::DiskQueue::delete) failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("cannot remove {file}: {source}")]
    Io { file: String, source: io::Error },
}

/// Why [`DiskQueue::close`](crate::DiskQueue::close) or
/// [`DiskQueue::sync_now`](crate::DiskQueue::sync_now) failed: something may not be durable.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot fsync {file}: {source}")]
    Io { file: String, source: io::Error },
    #[error("disk queue is poisoned by a failed fsync")]
    Poisoned,
}

impl From<SyncError> for io::Error {
    fn from(e: SyncError) -> io::Error {
        match e {
            SyncError::Io { source, .. } => source,
            SyncError::Poisoned => io::Error::other("disk queue is poisoned by a failed fsync"),
        }
    }
}
