//! The narrow storage trait the queue is written against, and the shared-memory [`Mapping`].
//!
//! Two implementations: [`FileStorage`] (real files, `mmap(MAP_SHARED)` through memmap2, fsync
//! through libc or the caller's io_uring) and [`CrashStorage`] (in memory, keeps a "durable" copy
//! of every file as of its last sync and can crash to it, or to a torn mix of old and new bytes).

mod crash;
mod file;

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use bytes::Bytes;

pub use crash::{CrashPlan, CrashStorage, CrashStorageFile};
pub use file::{FileStorage, FileStorageFile};

/// A directory of files, as the queue needs it. Every method may block: the queue calls them only
/// at open, when a segment rolls, in `finish_sync` (unlinking consumed segments) and in the rare
/// control operations (empty, delete, close, sync_now).
pub trait Storage {
    type File: StorageFile;

    /// Creates `name` with `len` zero bytes, its space reserved so that writes through the mapping
    /// cannot fail for lack of disk (a write fault on a sparse hole with a full disk is SIGBUS).
    /// Fails if `name` exists.
    fn create(&self, name: &str, len: u64) -> io::Result<Self::File>;
    /// Opens and maps an existing file over its current length; `Ok(None)` when it does not exist.
    fn open(&self, name: &str) -> io::Result<Option<Self::File>>;
    /// Removes `name`; a missing file is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Names of the files in the directory (used only when both metadata slots are unreadable).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Makes creations and removals durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// The descriptor a caller fsyncs for [`Storage::sync_dir`]'s effect.
    fn dir_fd(&self) -> RawFd;
}

/// One open, mapped file.
pub trait StorageFile {
    /// The whole file, mapped shared and writable. It outlives the file handle and the directory
    /// entry: records handed out as `Bytes` keep it alive.
    fn mapping(&self) -> &Arc<Mapping>;
    /// Blocking fsync (on Linux, fsync also writes back pages dirtied through a shared mapping).
    fn sync(&self) -> io::Result<()>;
    /// The descriptor a caller fsyncs for [`StorageFile::sync`]'s effect.
    fn fd(&self) -> RawFd;
}

/// Bytes shared between the writer (one thread, writing only past every handed-out range) and any
/// number of readers (holding `Bytes` of ranges the writer never touches again).
///
/// Invariant that makes the raw-pointer access sound: a byte range is either *unpublished* (only
/// the owning queue reads or writes it, from its own thread) or *published* (handed out as
/// `Bytes`, after which nobody writes it). The queue publishes only whole records below its write
/// position and writes only at or beyond it, or during open before anything is published.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    _owner: Owner,
}

enum Owner {
    Mmap(#[allow(dead_code)] memmap2::MmapRaw),
    Heap,
    Empty,
}

// SAFETY: see the invariant on `Mapping`: concurrent access is only to disjoint ranges or reads.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// A shared file mapping.
    pub fn from_mmap(map: memmap2::MmapRaw) -> Mapping {
        let len = map.len();
        match NonNull::new(map.as_mut_ptr()) {
            Some(ptr) if len > 0 => Mapping {
                ptr,
                len,
                _owner: Owner::Mmap(map),
            },
            _ => Mapping::empty(),
        }
    }

    /// Zeroed heap memory standing in for a file (the crash-simulating fake).
    pub fn zeroed(len: usize) -> Mapping {
        Mapping::from_vec(vec![0u8; len])
    }

    /// Heap memory holding `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> Mapping {
        if bytes.is_empty() {
            return Mapping::empty();
        }
        let len = bytes.len();
        let raw = Box::into_raw(bytes.into_boxed_slice()) as *mut u8;
        Mapping {
            // SAFETY: Box::into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw) },
            len,
            _owner: Owner::Heap,
        }
    }

    /// A zero-length file.
    pub fn empty() -> Mapping {
        Mapping {
            ptr: NonNull::dangling(),
            len: 0,
            _owner: Owner::Empty,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole mapping.
    ///
    /// # Safety
    /// No range of it may be written while the returned slice lives (see the type's invariant):
    /// call it only from the owning queue's thread, between its own writes.
    pub(crate) unsafe fn all(&self) -> &[u8] {
        // SAFETY: ptr/len describe live memory owned by `self`; the caller excludes writers.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Copies `data` to `offset`.
    ///
    /// # Safety
    /// `offset..offset + data.len()` must be unpublished and not borrowed by a live slice.
    pub(crate) unsafe fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset.checked_add(data.len()).is_some_and(|e| e <= self.len),
            "write past mapping"
        );
        // SAFETY: in bounds (asserted); exclusivity is the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len()) }
    }

    /// Publishes `offset..offset + len` as `Bytes` without copying; the mapping stays alive (and
    /// mapped, even after its file is unlinked) until the last such `Bytes` is dropped.
    pub(crate) fn publish(self: &Arc<Self>, offset: usize, len: usize) -> Bytes {
        assert!(
            offset.checked_add(len).is_some_and(|e| e <= self.len),
            "publish past mapping"
        );
        Bytes::from_owner(Published {
            map: Arc::clone(self),
            offset,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Owner::Heap = self._owner {
            // SAFETY: ptr/len came from Box::into_raw of a boxed slice of exactly this length.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len)) });
        }
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

/// The owner behind a published `Bytes`.
struct Published {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for Published {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: in bounds (checked in `publish`); published ranges are never written again.
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr().add(self.offset), self.len) }
    }
}
