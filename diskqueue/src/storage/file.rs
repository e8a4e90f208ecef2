//! Real files: `mmap(MAP_SHARED)` over files whose space is reserved with `fallocate`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Mapping, Storage, StorageFile};

/// Files in one directory.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    /// Kept open for fsync of the directory (creations and removals).
    dir_file: File,
}

impl FileStorage {
    /// `dir` must exist.
    pub fn new(dir: &Path) -> io::Result<FileStorage> {
        let dir_file = File::open(dir)?;
        if !dir_file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(FileStorage {
            dir: dir.to_path_buf(),
            dir_file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// An open file and its shared mapping.
#[derive(Debug)]
pub struct FileStorageFile {
    file: File,
    mapping: Arc<Mapping>,
}

fn map(file: &File, len: u64) -> io::Result<Arc<Mapping>> {
    if len == 0 {
        return Ok(Arc::new(Mapping::empty()));
    }
    let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
    let raw = memmap2::MmapOptions::new().len(len).map_raw(file)?;
    Ok(Arc::new(Mapping::from_mmap(raw)))
}

/// Reserves `len` bytes of disk for `file` (and sets its size), falling back to a sparse
/// `ftruncate` where the filesystem cannot preallocate.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    let off_len = libc::off_t::try_from(len).map_err(|_| io::Error::other("file length overflows off_t"))?;
    // SAFETY: plain syscall on an fd we own.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, off_len) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len),
        _ => Err(err),
    }
}

impl Storage for FileStorage {
    type File = FileStorageFile;

    fn create(&self, name: &str, len: u64) -> io::Result<FileStorageFile> {
        let path = self.dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let made = allocate(&file, len).and_then(|()| map(&file, len));
        match made {
            Ok(mapping) => Ok(FileStorageFile { file, mapping }),
            Err(e) => {
                // Leave no half-made file behind (e.g. ENOSPC from fallocate).
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn open(&self, name: &str) -> io::Result<Option<FileStorageFile>> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let mapping = map(&file, len)?;
        Ok(Some(FileStorageFile { file, mapping }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.dir_file.sync_all()
    }

    fn dir_fd(&self) -> RawFd {
        self.dir_file.as_raw_fd()
    }
}

impl StorageFile for FileStorageFile {
    fn mapping(&self) -> &Arc<Mapping> {
        &self.mapping
    }

    fn sync(&self) -> io::Result<()> {
        // SAFETY: plain syscall on an fd we own. fsync (not fdatasync): the first sync after
        // creation must also make the file's size and extents durable.
        if unsafe { libc::fsync(self.file.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
