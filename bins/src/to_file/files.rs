//! Output files (spec C.1 "Filename computation", "Rotate", "Close"): naming, revisions,
//! rotation by name/size/interval, gzip members, fsync, and the work-dir → output-dir move.
//!
//! Durability: [`OutputFile::sync`] returns only once every record handed to
//! [`OutputFile::write_record`] is on stable storage (file fsync, plus one fsync of the
//! directory after a file was created or moved, so the name survives a crash too). Only then may
//! the logger FIN.
//!
//! gzip: each sync ends the current gzip member (trailer written) and the next record starts a new
//! one, so a file is a concatenation of complete members, as nsq_to_file writes it; a file that
//! got no record still holds one empty member, so it is always valid gzip.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::datetime::{strftime, LocalTime};
use super::log::Log;
use super::options::{ToFileOptions, REVISIONS_MAX, WRITE_BUFFER_BYTES_MAX};

/// The per-topic filename template (spec C.1 steps 1-5): `<TOPIC>`, `<HOST>` and `<PID>` are
/// filled, `<REV>` removed unless needed, `.gz` appended with gzip; `<DATETIME>` and `<REV>` are
/// filled later.
pub fn compute_filename_format(
    opts: &ToFileOptions,
    topic: &str,
    hostname: &str,
    pid: u32,
) -> Result<String, String> {
    let short_host = hostname.split('.').next().unwrap_or(hostname);
    let identifier = if opts.host_identifier.is_empty() {
        short_host.to_string()
    } else {
        opts.host_identifier
            .replace("<SHORT_HOST>", short_host)
            .replace("<HOSTNAME>", hostname)
    };
    let mut format = opts.filename_format.clone();
    let rev_needed = opts.gzip
        || opts.rotate_size_bytes > 0
        || !opts.rotate_interval.is_zero()
        || opts.work_dir != opts.output_dir;
    if rev_needed {
        if !format.contains("<REV>") {
            return Err("missing <REV> in --filename-format when gzip, rotation, or work dir enabled".into());
        }
    } else {
        format = format.replace("<REV>", "");
    }
    format = format
        .replace("<TOPIC>", topic)
        .replace("<HOST>", &identifier)
        .replace("<PID>", &pid.to_string());
    if opts.gzip && !format.ends_with(".gz") {
        format.push_str(".gz");
    }
    Ok(format)
}

fn fill_rev(name: &str, rev: u32) -> String {
    name.replace("<REV>", &format!("-{rev:06}"))
}

/// Joins like Go's `path.Join(dir, name)`: a name starting with `/` stays under `dir`.
fn join_under(dir: &Path, name: &str) -> PathBuf {
    dir.join(name.trim_start_matches('/'))
}

fn make_parent_dirs(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => DirBuilder::new().recursive(true).mode(0o770).create(dir),
        _ => Ok(()),
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Where output goes: the file, and how records reach it.
enum Sink {
    Plain(File),
    /// gzip, between members: the next record starts one.
    GzipIdle(File),
    Gzip(GzEncoder<File>),
    /// Only while a state change is under way.
    Taken,
}

struct Open {
    path: PathBuf,
    sink: Sink,
    /// Plain output not yet written (whole records only).
    pending: Vec<u8>,
    gzip_members: u32,
    /// The directory holding a newly created file still needs an fsync.
    dir_sync_pending: bool,
}

/// The file one topic is writing.
pub struct OutputFile {
    tag: String,
    log: Log,
    format: String,
    output_dir: PathBuf,
    work_dir: PathBuf,
    moves: bool,
    gzip_level: Option<u32>,
    /// Exclusive create (gzip or rotate-interval), otherwise append.
    exclusive: bool,
    rotate_size_bytes: u64,
    rotate_interval: Duration,
    datetime_format: String,
    open: Option<Open>,
    /// The current name: `<DATETIME>` filled, `<REV>` still a token.
    filename: String,
    rev: u32,
    open_time: Instant,
    /// Bytes handed to the writer (uncompressed) plus the file's size at open.
    filesize: u64,
}

impl OutputFile {
    pub fn new(opts: &ToFileOptions, tag: &str, log: Log, format: String) -> OutputFile {
        OutputFile {
            tag: tag.to_string(),
            log,
            format,
            output_dir: PathBuf::from(&opts.output_dir),
            work_dir: PathBuf::from(&opts.work_dir),
            moves: opts.work_dir != opts.output_dir,
            gzip_level: opts.gzip.then_some(opts.gzip_level),
            exclusive: opts.gzip || !opts.rotate_interval.is_zero(),
            rotate_size_bytes: opts.rotate_size_bytes,
            rotate_interval: opts.rotate_interval,
            datetime_format: opts.datetime_format.clone(),
            open: None,
            filename: String::new(),
            rev: 0,
            open_time: Instant::now(),
            filesize: 0,
        }
    }

    fn current_filename(&self) -> String {
        let datetime = strftime(&self.datetime_format, &LocalTime::now());
        self.format.replace("<DATETIME>", &datetime)
    }

    fn output_path_for(&self, work_path: &Path) -> PathBuf {
        let rel = work_path.strip_prefix(&self.work_dir).unwrap_or(work_path);
        self.output_dir.join(rel)
    }

    pub fn needs_rotation(&self) -> bool {
        let Some(open) = &self.open else {
            return true;
        };
        let filename = self.current_filename();
        if filename != self.filename {
            self.log
                .info(&format!("{} new filename {filename}, rotating...", self.tag));
            return true;
        }
        if !self.rotate_interval.is_zero() && self.open_time.elapsed() > self.rotate_interval {
            self.log.info(&format!(
                "{} {:?} since last open, rotating...",
                self.tag,
                self.open_time.elapsed()
            ));
            return true;
        }
        if self.rotate_size_bytes > 0 && self.filesize > self.rotate_size_bytes {
            self.log.info(&format!(
                "{} {} currently {} bytes (> {}), rotating...",
                self.tag,
                open.path.display(),
                self.filesize,
                self.rotate_size_bytes
            ));
            return true;
        }
        false
    }

    /// nsq_to_file's `updateFile`: closes the current file, then opens the next revision that is
    /// free (in the work dir, and in the output dir when files are moved there).
    pub fn rotate(&mut self) -> Result<(), String> {
        self.close()?;
        let filename = self.current_filename();
        if filename != self.filename {
            self.rev = 0;
        } else {
            self.rev = self.rev.saturating_add(1);
        }
        self.filename = filename;
        self.open_time = Instant::now();
        let template = join_under(&self.work_dir, &self.filename);
        make_parent_dirs(&template)
            .map_err(|e| format!("unable to create dir for {}: {e}", template.display()))?;
        for _ in 0..REVISIONS_MAX {
            let path = join_under(&self.work_dir, &fill_rev(&self.filename, self.rev));
            if self.moves {
                let out = self.output_path_for(&path);
                make_parent_dirs(&out)
                    .map_err(|e| format!("unable to create dir for {}: {e}", out.display()))?;
                match fs::symlink_metadata(&out) {
                    Ok(_) => {
                        self.log.warn(&format!(
                            "{} output file already exists: {}",
                            self.tag,
                            out.display()
                        ));
                        self.rev += 1;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("unable to stat output file {}: {e}", out.display())),
                }
            }
            let mut options = OpenOptions::new();
            options.read(true).write(true).mode(0o666);
            if self.exclusive {
                options.create_new(true);
            } else {
                options.create(true).append(true);
            }
            let file = match options.open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.log.warn(&format!(
                        "{} working file already exists: {}",
                        self.tag,
                        path.display()
                    ));
                    self.rev += 1;
                    continue;
                }
                Err(e) => return Err(format!("unable to open {}: {e}", path.display())),
            };
            self.log.info(&format!("{} opening {}", self.tag, path.display()));
            let size = file
                .metadata()
                .map_err(|e| format!("unable to stat file {}: {e}", path.display()))?
                .len();
            if self.rotate_size_bytes > 0 && size > self.rotate_size_bytes {
                self.log.info(&format!(
                    "{} {} currently {size} bytes (> {}), rotating...",
                    self.tag,
                    path.display(),
                    self.rotate_size_bytes
                ));
                self.rev += 1;
                continue;
            }
            self.filesize = size;
            let mut pending = Vec::new();
            if size > 0 && self.gzip_level.is_none() {
                // An earlier run killed mid-write can leave a torn last record; end it so the
                // next record starts on its own line (the torn one was never FIN'd and comes
                // back whole).
                let mut last = [0u8; 1];
                if file.read_at(&mut last, size - 1).is_ok() && last[0] != b'\n' {
                    self.log.warn(&format!(
                        "{} {} does not end in a newline (torn write from an earlier run)",
                        self.tag,
                        path.display()
                    ));
                    pending.push(b'\n');
                }
            }
            let sink = if self.gzip_level.is_some() {
                Sink::GzipIdle(file)
            } else {
                Sink::Plain(file)
            };
            self.open = Some(Open {
                path,
                sink,
                pending,
                gzip_members: 0,
                dir_sync_pending: size == 0,
            });
            return Ok(());
        }
        Err(format!(
            "no free revision of {} after {REVISIONS_MAX} tries",
            self.filename
        ))
    }

    /// Hands `body` + `\n` to the file. Call [`OutputFile::rotate`] first if nothing is open.
    pub fn write_record(&mut self, body: &[u8]) -> io::Result<()> {
        let level = self.gzip_level;
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no file open"))?;
        self.filesize += body.len() as u64 + 1;
        if let Sink::GzipIdle(_) = open.sink {
            let Sink::GzipIdle(file) = std::mem::replace(&mut open.sink, Sink::Taken) else {
                unreachable!("matched just above")
            };
            open.sink = Sink::Gzip(GzEncoder::new(file, Compression::new(level.unwrap_or(6))));
        }
        match &mut open.sink {
            Sink::Plain(file) => {
                open.pending.extend_from_slice(body);
                open.pending.push(b'\n');
                if open.pending.len() >= WRITE_BUFFER_BYTES_MAX {
                    file.write_all(&open.pending)?;
                    open.pending.clear();
                }
                Ok(())
            }
            Sink::Gzip(gz) => {
                gz.write_all(body)?;
                gz.write_all(b"\n")
            }
            Sink::GzipIdle(_) | Sink::Taken => unreachable!("a gzip member was just started"),
        }
    }

    /// Hands batched plain records to the OS (no fsync). gzip output stays in the encoder.
    pub fn flush_writes(&mut self) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if let Sink::Plain(file) = &mut open.sink {
            if !open.pending.is_empty() {
                file.write_all(&open.pending)?;
                open.pending.clear();
            }
        }
        Ok(())
    }

    /// Everything written so far reaches stable storage (ending the gzip member).
    pub fn sync(&mut self) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let file = match std::mem::replace(&mut open.sink, Sink::Taken) {
            Sink::Plain(mut file) => {
                let written = file.write_all(&open.pending);
                open.pending.clear();
                written.map(|()| file)
            }
            Sink::GzipIdle(file) => Ok(file),
            Sink::Gzip(gz) => {
                open.gzip_members += 1;
                gz.finish()
            }
            Sink::Taken => Err(io::Error::other("file left unusable by an earlier error")),
        }?;
        file.sync_all()?;
        if open.dir_sync_pending {
            sync_dir(&open.path)?;
            open.dir_sync_pending = false;
        }
        open.sink = if self.gzip_level.is_some() {
            Sink::GzipIdle(file)
        } else {
            Sink::Plain(file)
        };
        Ok(())
    }

    /// Syncs and closes the file, then moves it to the output dir when a work dir is used.
    pub fn close(&mut self) -> Result<(), String> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.gzip_members == 0 {
            if let Sink::GzipIdle(_) = open.sink {
                // Never got a record: still a valid (empty) gzip file, as Go's writer makes it.
                self.write_empty_member()
                    .map_err(|e| format!("failed to close gzip writer: {e}"))?;
            }
        }
        self.sync()
            .map_err(|e| format!("failed to fsync output file: {e}"))?;
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let src = open.path;
        drop(open.sink);
        if !self.moves {
            return Ok(());
        }
        let dst = self.output_path_for(&src);
        self.log.info(&format!(
            "{} moving finished file {} to {}",
            self.tag,
            src.display(),
            dst.display()
        ));
        make_parent_dirs(&dst).map_err(|e| format!("unable to create dir: {e}"))?;
        let mut target = dst.clone();
        let mut rev = self.rev;
        for _ in 0..REVISIONS_MAX {
            match exclusive_rename(&src, &target) {
                Ok(()) => {
                    if target != dst {
                        self.log.info(&format!(
                            "{} renamed finished file {} to {} to avoid overwrite",
                            self.tag,
                            src.display(),
                            target.display()
                        ));
                    }
                    return sync_dir(&target)
                        .map_err(|e| format!("failed to fsync {}: {e}", target.display()));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.log.warn(&format!(
                        "{} destination file already exists: {}",
                        self.tag,
                        target.display()
                    ));
                    rev += 1;
                    let name = Path::new(&self.filename)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    target = dst.with_file_name(fill_rev(&name, rev));
                }
                Err(e) => {
                    return Err(format!(
                        "unable to move file from {} to {}: {e}",
                        src.display(),
                        target.display()
                    ))
                }
            }
        }
        Err(format!("no free name to move {} to", src.display()))
    }

    fn write_empty_member(&mut self) -> io::Result<()> {
        let level = self.gzip_level.unwrap_or(6);
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if let Sink::GzipIdle(file) = std::mem::replace(&mut open.sink, Sink::Taken) {
            open.sink = Sink::Gzip(GzEncoder::new(file, Compression::new(level)));
        }
        Ok(())
    }
}

/// Hard link then unlink, so an existing destination is never overwritten.
fn exclusive_rename(src: &Path, dst: &Path) -> io::Result<()> {
    fs::hard_link(src, dst)?;
    fs::remove_file(src)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_file::options::parse_args;

    fn opts(args: &[&str]) -> ToFileOptions {
        let mut argv = vec!["squall-to-file", "--nsqd-tcp-address=127.0.0.1:4150", "--topic=t"];
        argv.extend_from_slice(args);
        parse_args(argv, "myhost.example.com").unwrap()
    }

    #[test]
    fn filename_formats_of_the_spec() {
        let f = |args: &[&str]| compute_filename_format(&opts(args), "test", "myhost.example.com", 42);
        assert_eq!(f(&[]).unwrap(), "test.myhost.<DATETIME>.log");
        assert_eq!(f(&["--gzip"]).unwrap(), "test.myhost<REV>.<DATETIME>.log.gz");
        assert_eq!(
            f(&[
                "--host-identifier=<SHORT_HOST>-<HOSTNAME>",
                "--filename-format=<PID>/<TOPIC>.<HOST>.gz",
                "--output-dir=/o"
            ])
            .unwrap(),
            "42/test.myhost-myhost.example.com.gz"
        );
        for args in [
            &["--gzip", "--filename-format=<TOPIC>.log"][..],
            &["--rotate-size=10", "--filename-format=<TOPIC>.log"],
            &["--rotate-interval=1m", "--filename-format=<TOPIC>.log"],
            &["--work-dir=/w", "--filename-format=<TOPIC>.log"],
        ] {
            assert_eq!(
                f(args).unwrap_err(),
                "missing <REV> in --filename-format when gzip, rotation, or work dir enabled"
            );
        }
        assert_eq!(fill_rev("a<REV>.log", 1), "a-000001.log");
        assert_eq!(join_under(Path::new("/w"), "/x/y"), PathBuf::from("/w/x/y"));
    }
}
