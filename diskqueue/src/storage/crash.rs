//! An in-memory [`Storage`] that remembers what is durable and can crash.
//!
//! Each file has *live* bytes (what the queue's mapping shows, i.e. the page cache) and *durable*
//! bytes (what the disk held at the file's last fsync). A new file's size and contents are not
//! durable until its first fsync, and its directory entry (like a removal) is not durable until
//! the directory is fsync'd. [`CrashStorage::crash`] returns a fresh storage holding what a
//! machine would find after the crash that a [`CrashPlan`] describes.
//!
//! Descriptors are fake numbers; a test playing the broker's io_uring calls
//! [`CrashStorage::fsync`] for each descriptor in a `SyncBatch`.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Mapping, Storage, StorageFile};

/// Sector size for [`CrashPlan::Torn`]: the unit a disk writes atomically (or not at all).
const SECTOR_BYTES: usize = 512;
/// Fake descriptors start high so they cannot be mistaken for real ones in a test's output.
const FAKE_FD_BASE: RawFd = 1_000_000;

/// What survives a crash.
#[derive(Clone, Debug)]
pub enum CrashPlan {
    /// Power loss where nothing unsynced reached the disk.
    LoseUnsynced,
    /// The process died (`kill -9`) but the kernel did not: the page cache survives whole.
    KeepUnsynced,
    /// Power loss where each unsynced 512-byte sector independently did or did not reach the
    /// disk, and each unsynced creation, removal or size change did or did not; `seed` picks.
    Torn { seed: u64 },
    /// Like `LoseUnsynced`, except that `file`'s live bytes before `keep_live_until` reached the
    /// disk: a write torn at an arbitrary byte.
    TearFile { file: String, keep_live_until: usize },
}

struct FakeFile {
    fd: RawFd,
    live: Arc<Mapping>,
    durable: Vec<u8>,
    /// Whether the directory entry survives a crash.
    entry_durable: bool,
}

#[derive(Default)]
struct Inner {
    files: HashMap<String, FakeFile>,
    /// Removed since the last directory sync: durable contents that a crash brings back.
    removed: HashMap<String, Vec<u8>>,
    next_fd: RawFd,
    file_syncs: u64,
    dir_syncs: u64,
}

/// The crash-simulating fake. Clones share the same files, so a test keeps one clone to crash or
/// inspect while the queue owns another.
#[derive(Clone, Default)]
pub struct CrashStorage {
    inner: Arc<Mutex<Inner>>,
}

/// A file of a [`CrashStorage`].
pub struct CrashStorageFile {
    fd: RawFd,
    mapping: Arc<Mapping>,
    storage: CrashStorage,
}

/// Deterministic xorshift64*, enough to pick sectors.
struct Rng(u64);

impl Rng {
    fn coin(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 63) == 1
    }
}

fn live_bytes(f: &FakeFile) -> Vec<u8> {
    // SAFETY: the fake is used from the queue's own thread; nothing writes during the copy.
    unsafe { f.live.all() }.to_vec()
}

impl CrashStorage {
    pub fn new() -> CrashStorage {
        CrashStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock has failed already; keep the data readable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the queue's io_uring fsync of `fd` would do: the file's live bytes become durable.
    /// The directory's descriptor syncs the directory. Unknown descriptors (files since removed)
    /// are a successful no-op, as fsync on an unlinked file is.
    pub fn fsync(&self, fd: RawFd) {
        let mut inner = self.lock();
        if fd == FAKE_FD_BASE {
            inner.dir_syncs += 1;
            inner.removed.clear();
            for f in inner.files.values_mut() {
                f.entry_durable = true;
            }
            return;
        }
        inner.file_syncs += 1;
        if let Some(f) = inner.files.values_mut().find(|f| f.fd == fd) {
            f.durable = live_bytes(f);
        }
    }

    /// The machine after a crash: a new storage whose files hold what `plan` says reached the disk.
    pub fn crash(&self, plan: &CrashPlan) -> CrashStorage {
        let inner = self.lock();
        let mut rng = Rng(match plan {
            CrashPlan::Torn { seed } => seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            _ => 1,
        });
        let mut survivors: HashMap<String, Vec<u8>> = HashMap::new();
        for (name, durable) in &inner.removed {
            let removal_lost = match plan {
                CrashPlan::KeepUnsynced => false,
                CrashPlan::Torn { .. } => rng.coin(),
                _ => true,
            };
            if removal_lost {
                survivors.insert(name.clone(), durable.clone());
            }
        }
        let mut names: Vec<&String> = inner.files.keys().collect();
        names.sort(); // deterministic coin order
        for name in names {
            let f = &inner.files[name];
            let live = live_bytes(f);
            let entry_survives = f.entry_durable
                || match plan {
                    CrashPlan::KeepUnsynced => true,
                    CrashPlan::Torn { .. } => rng.coin(),
                    _ => false,
                };
            if !entry_survives {
                continue;
            }
            let bytes = match plan {
                CrashPlan::KeepUnsynced => live,
                CrashPlan::LoseUnsynced => f.durable.clone(),
                CrashPlan::TearFile {
                    file,
                    keep_live_until,
                } if file == name => {
                    let mut out = f.durable.clone();
                    out.resize(live.len(), 0);
                    let n = (*keep_live_until).min(live.len());
                    out[..n].copy_from_slice(&live[..n]);
                    out
                }
                CrashPlan::TearFile { .. } => f.durable.clone(),
                CrashPlan::Torn { .. } => {
                    let mut out = f.durable.clone();
                    if out.len() < live.len() && rng.coin() {
                        out.resize(live.len(), 0);
                    }
                    for start in (0..out.len()).step_by(SECTOR_BYTES) {
                        let end = (start + SECTOR_BYTES).min(out.len());
                        if out[start..end] != live[start..end] && rng.coin() {
                            out[start..end].copy_from_slice(&live[start..end]);
                        }
                    }
                    out
                }
            };
            survivors.insert(name.clone(), bytes);
        }
        let after = CrashStorage::new();
        {
            let mut a = after.lock();
            a.next_fd = FAKE_FD_BASE;
            for (name, bytes) in survivors {
                a.next_fd += 1;
                let fd = a.next_fd;
                a.files.insert(
                    name,
                    FakeFile {
                        fd,
                        live: Arc::new(Mapping::from_vec(bytes.clone())),
                        durable: bytes,
                        entry_durable: true,
                    },
                );
            }
        }
        after
    }

    /// Live bytes of `name` (what the page cache holds), if it exists.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(live_bytes)
    }

    /// Overwrites bytes of `name` both live and on "disk": bit rot, or a test's hand-made damage.
    /// Do it only while no queue has the file open, or at offsets it will not write.
    pub fn corrupt(&self, name: &str, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        let f = inner
            .files
            .get_mut(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if offset + bytes.len() > f.live.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "corruption past end of file",
            ));
        }
        // SAFETY: the caller promises the queue is not using this range.
        unsafe { f.live.write(offset, bytes) };
        if f.durable.len() < offset + bytes.len() {
            f.durable.resize(offset + bytes.len(), 0);
        }
        f.durable[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Names of the files that exist now, sorted.
    pub fn file_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().files.keys().cloned().collect();
        v.sort();
        v
    }

    /// fsyncs of files and of the directory so far.
    pub fn sync_counts(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.file_syncs, inner.dir_syncs)
    }
}

impl Storage for CrashStorage {
    type File = CrashStorageFile;

    fn create(&self, name: &str, len: u64) -> io::Result<CrashStorageFile> {
        let mut inner = self.lock();
        if inner.files.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("too large"))?;
        inner.next_fd = inner.next_fd.max(FAKE_FD_BASE) + 1;
        let fd = inner.next_fd;
        let live = Arc::new(Mapping::zeroed(len));
        inner.removed.remove(name);
        inner.files.insert(
            name.to_string(),
            FakeFile {
                fd,
                live: Arc::clone(&live),
                durable: Vec::new(),
                entry_durable: false,
            },
        );
        Ok(CrashStorageFile {
            fd,
            mapping: live,
            storage: self.clone(),
        })
    }

    fn open(&self, name: &str) -> io::Result<Option<CrashStorageFile>> {
        let inner = self.lock();
        Ok(inner.files.get(name).map(|f| CrashStorageFile {
            fd: f.fd,
            mapping: Arc::clone(&f.live),
            storage: self.clone(),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut inner = self.lock();
        if let Some(f) = inner.files.remove(name) {
            if f.entry_durable {
                inner.removed.insert(name.to_string(), f.durable);
            }
        }
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.file_names())
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.fsync(FAKE_FD_BASE);
        Ok(())
    }

    fn dir_fd(&self) -> RawFd {
        FAKE_FD_BASE
    }
}

impl StorageFile for CrashStorageFile {
    fn mapping(&self) -> &Arc<Mapping> {
        &self.mapping
    }

    fn sync(&self) -> io::Result<()> {
        self.storage.fsync(self.fd);
        Ok(())
    }

    fn fd(&self) -> RawFd {
        self.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_bytes_and_entries_are_lost() {
        let s = CrashStorage::new();
        let f = s.create("a", 16).expect("create");
        // SAFETY: test owns the mapping.
        unsafe { f.mapping().write(0, b"abcd") };
        let after = s.crash(&CrashPlan::LoseUnsynced);
        assert!(after.read("a").is_none(), "entry never synced");

        s.sync_dir().expect("dir");
        f.sync().expect("sync");
        // SAFETY: as above.
        unsafe { f.mapping().write(4, b"efgh") };
        let after = s.crash(&CrashPlan::LoseUnsynced);
        assert_eq!(&after.read("a").expect("exists")[..8], b"abcd\0\0\0\0");
        let after = s.crash(&CrashPlan::KeepUnsynced);
        assert_eq!(&after.read("a").expect("exists")[..8], b"abcdefgh");
        let after = s.crash(&CrashPlan::TearFile {
            file: "a".into(),
            keep_live_until: 6,
        });
        assert_eq!(&after.read("a").expect("exists")[..8], b"abcdef\0\0");
    }

    #[test]
    fn unsynced_removal_comes_back() {
        let s = CrashStorage::new();
        let f = s.create("a", 4).expect("create");
        f.sync().expect("sync");
        s.sync_dir().expect("dir");
        s.remove("a").expect("remove");
        assert!(s.crash(&CrashPlan::LoseUnsynced).read("a").is_some());
        s.sync_dir().expect("dir");
        assert!(s.crash(&CrashPlan::LoseUnsynced).read("a").is_none());
    }
}
