//! `nsqd.dat`: the topics and channels (and their paused flags) that survive a restart, in
//! nsqd's format, so a data directory moves between nsqd and squalld (spec §7.1).
//!
//! Shards report their part when it changes; a writer thread (not a shard: it may block on the
//! file system) merges the parts and replaces the file atomically (write, fsync, rename).

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use squall_core::broker::TopicMeta;
use squall_core::names::Name;

#[derive(Serialize, Deserialize)]
struct FileChannel {
    name: String,
    paused: bool,
}

#[derive(Serialize, Deserialize)]
struct FileTopic {
    name: String,
    paused: bool,
    channels: Option<Vec<FileChannel>>,
}

#[derive(Serialize, Deserialize)]
struct File {
    topics: Option<Vec<FileTopic>>,
    version: String,
}

/// Reads `<data>/nsqd.dat`; a missing file is a fresh start. Invalid names are skipped.
pub fn load(data_path: &Path) -> anyhow::Result<Vec<TopicMeta>> {
    let path = data_path.join("nsqd.dat");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let file: File = serde_json::from_slice(&bytes).context("failed to parse metadata")?;
    let mut topics = Vec::new();
    for t in file.topics.unwrap_or_default() {
        let Some(name) = Name::new(t.name.as_bytes()) else {
            crate::log_warn!("skipping creation of invalid topic {:?}", t.name);
            continue;
        };
        let channels = t
            .channels
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| match Name::new(c.name.as_bytes()) {
                Some(n) => Some((n, c.paused)),
                None => {
                    crate::log_warn!("skipping creation of invalid channel {:?}", c.name);
                    None
                }
            })
            .collect();
        topics.push(TopicMeta {
            name,
            paused: t.paused,
            channels,
        });
    }
    Ok(topics)
}

fn render(parts: &[Vec<TopicMeta>]) -> Vec<u8> {
    let topics: Vec<FileTopic> = parts
        .iter()
        .flatten()
        .map(|t| FileTopic {
            name: t.name.to_string(),
            paused: t.paused,
            channels: (!t.channels.is_empty()).then(|| {
                t.channels
                    .iter()
                    .map(|(n, p)| FileChannel {
                        name: n.to_string(),
                        paused: *p,
                    })
                    .collect()
            }),
        })
        .collect();
    let file = File {
        topics: (!topics.is_empty()).then_some(topics),
        version: squall_core::NSQD_VERSION.to_string(),
    };
    serde_json::to_vec(&file).unwrap_or_default()
}

/// Write, fsync, rename over `nsqd.dat`.
fn write_atomically(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("nsqd.dat.{}.tmp", std::process::id()));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join("nsqd.dat"))
}

#[derive(Default)]
struct State {
    parts: Vec<Vec<TopicMeta>>,
    dirty: bool,
    stop: bool,
}

/// Collects the shards' parts and writes the file from its own thread.
#[derive(Clone)]
pub struct MetadataWriter {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl MetadataWriter {
    pub fn start(dir: PathBuf, shards: usize) -> (MetadataWriter, JoinHandle<()>) {
        let shared = Arc::new((
            Mutex::new(State {
                parts: vec![Vec::new(); shards],
                dirty: false,
                stop: false,
            }),
            Condvar::new(),
        ));
        let writer = MetadataWriter {
            shared: shared.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("squalld-metadata".into())
            .spawn(move || loop {
                let (lock, cvar) = &*shared;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !state.dirty && !state.stop {
                    state = cvar.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                let stop = state.stop;
                let bytes = state.dirty.then(|| render(&state.parts));
                state.dirty = false;
                drop(state);
                if let Some(bytes) = bytes {
                    if let Err(e) = write_atomically(&dir, &bytes) {
                        crate::log_error!("failed to persist metadata - {e}");
                    }
                }
                if stop {
                    return;
                }
            })
            .expect("spawn the metadata writer");
        (writer, handle)
    }

    /// A shard's new part. Never blocks for long: the lock only guards a swap.
    pub fn update(&self, shard: usize, part: Vec<TopicMeta>) {
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = state.parts.get_mut(shard) {
            *slot = part;
        }
        state.dirty = true;
        cvar.notify_one();
    }

    /// Writes what is pending and ends the writer thread.
    pub fn stop(&self) {
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        state.stop = true;
        cvar.notify_one();
    }
}

/// nsqd's exclusive lock on the data directory, held for the life of the node.
pub struct DataDirLock(#[allow(dead_code)] fs::File);

pub fn lock_data_dir(dir: &Path) -> anyhow::Result<DataDirLock> {
    let f = fs::File::open(dir).with_context(|| format!("failed to open data-path {}", dir.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "failed to lock data-path: cannot flock directory {} - {} (possibly in use by another instance of nsqd)",
            dir.display(),
            err
        );
    }
    Ok(DataDirLock(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_nsqds_format() {
        let dir = std::env::temp_dir().join(format!("squall-meta-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let t = |n: &str| Name::new(n.as_bytes()).unwrap();
        let parts = vec![
            vec![TopicMeta {
                name: t("a"),
                paused: false,
                channels: vec![(t("c"), true)],
            }],
            vec![TopicMeta {
                name: t("b"),
                paused: true,
                channels: vec![],
            }],
        ];
        let bytes = render(&parts);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"topics":[{"name":"a","paused":false,"channels":[{"name":"c","paused":true}]},{"name":"b","paused":true,"channels":null}],"version":"1.3.0"}"#
        );
        write_atomically(&dir, &bytes).unwrap();
        let back = load(&dir).unwrap();
        assert_eq!(back, parts.concat());
        assert_eq!(render(&[]), br#"{"topics":null,"version":"1.3.0"}"#);
        let _lock = lock_data_dir(&dir).unwrap();
        assert!(lock_data_dir(&dir).is_err(), "a second instance is refused");
        fs::remove_dir_all(&dir).unwrap();
    }
}
