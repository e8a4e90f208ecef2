//! Squall's durable disk queue on mmap'd segment files.
mod error;
pub mod format;
mod options;
mod queue;
mod recovery;
pub mod storage;
mod sync;

pub use error::{DeleteError, EmptyError, OpenError, PutError, SyncError};
pub use format::Position;
pub use options::Options;
pub use queue::DiskQueue;
pub use storage::{CrashPlan, CrashStorage, FileStorage, Storage};
pub use sync::{SyncBatch, SyncToken};
