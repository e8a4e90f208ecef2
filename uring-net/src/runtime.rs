//! Starting and stopping the shards: binding listeners, spawning and pinning one thread per
//! shard, and the handle that shuts them down and joins them.

use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::StartError;
use crate::io::IoParts;
use crate::limits::{
    RECV_BUFFER_COUNT, RECV_BUFFER_GROUP_ID, RECV_BUFFER_SIZE_BYTES, RING_ENTRIES_MAX, RING_ENTRIES_MIN,
};
use crate::listener::{bind_all, Bound, ListenAddr, SocketFile};
use crate::mailbox::{Doorbells, Lanes};
use crate::ring::buffers::BufRing;
use crate::ring::{Ring, RingFlags};
use crate::shard::Shard;
use crate::ShardId;

/// How to run the shards.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Number of shards (threads), at least 1.
    pub shards: usize,
    /// Each shard listens on each address: its own SO_REUSEPORT socket for a TCP address (port
    /// 0 = pick one, the same port on every shard; `0.0.0.0` binds a dual-stack `[::]` where
    /// the host has IPv6, [`crate::listen_address`]), a `dup` of one shared socket for a Unix
    /// one. `RuntimeHandle::local_addrs` reports what was bound.
    pub listeners: Vec<ListenAddr>,
    /// Pin shard `i` to the `i % n`-th CPU this process may run on.
    pub pin_threads: bool,
    /// Stop reading a connection while its input buffer holds at least this many bytes.
    pub input_max_bytes: usize,
    /// Entries per (from, to) mailbox lane.
    pub mailbox_capacity: usize,
    /// After shutdown, how long shards wait for connections to close before closing them.
    pub drain_timeout: Duration,
    /// Submission queue entries per ring (the CQ gets four times as many).
    pub ring_entries: u32,
    /// Thread name prefix (`{name}-{shard}`).
    pub name: String,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            listeners: Vec::new(),
            pin_threads: true,
            input_max_bytes: 1024 * 1024,
            mailbox_capacity: 4096,
            drain_timeout: Duration::from_secs(5),
            ring_entries: 1024,
            name: "shard".to_string(),
        }
    }
}

impl RuntimeConfig {
    fn validate(&self) -> Result<(), StartError> {
        if self.shards == 0 {
            return Err(StartError::Config("shards must be at least 1"));
        }
        if self.input_max_bytes == 0 {
            return Err(StartError::Config("input_max_bytes must be at least 1"));
        }
        if self.mailbox_capacity == 0 {
            return Err(StartError::Config("mailbox_capacity must be at least 1"));
        }
        if !(RING_ENTRIES_MIN..=RING_ENTRIES_MAX).contains(&self.ring_entries) {
            return Err(StartError::Config("ring_entries must be within 8..=32768"));
        }
        if self.listeners.len() > u32::MAX as usize {
            return Err(StartError::Config("too many listeners"));
        }
        Ok(())
    }
}

/// Spawns shards.
pub struct Runtime;

impl Runtime {
    /// Binds the listeners, starts one thread per shard and returns once every shard has its
    /// ring. `factory(shard, shards)` builds each shard's engine on that shard's thread.
    pub fn start<E, F>(config: RuntimeConfig, factory: F) -> io::Result<RuntimeHandle>
    where
        E: Engine,
        F: Fn(ShardId, usize) -> E + Send + Sync + 'static,
    {
        Runtime::try_start(config, factory).map_err(io::Error::from)
    }

    /// `start` with the typed start-up error.
    pub fn try_start<E, F>(config: RuntimeConfig, factory: F) -> Result<RuntimeHandle, StartError>
    where
        E: Engine,
        F: Fn(ShardId, usize) -> E + Send + Sync + 'static,
    {
        config.validate()?;
        let shards = config.shards;
        let Bound {
            sockets: mut listeners,
            addrs: local_addrs,
            files: socket_files,
        } = bind_all(&config.listeners, shards)?;
        let bells = Arc::new(Doorbells::new(shards).map_err(StartError::Eventfd)?);
        let lanes = Arc::new(Lanes::<E::Msg>::new(shards, config.mailbox_capacity));
        let factory = Arc::new(factory);
        let cpus = if config.pin_threads {
            allowed_cpus()
        } else {
            Vec::new()
        };

        let (ready_tx, ready_rx) = mpsc::channel::<(ShardId, Result<RingFlags, StartError>)>();
        let mut threads = Vec::with_capacity(shards);
        let mut go_txs = Vec::with_capacity(shards);
        let mut handle = RuntimeHandle {
            local_addrs,
            bells: Arc::clone(&bells),
            threads: Vec::new(),
            ring_flags: Vec::new(),
            socket_files,
        };
        for shard in 0..shards {
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            let setup = ShardSetup {
                shard,
                shards,
                cpu: (!cpus.is_empty()).then(|| cpus[shard % cpus.len()]),
                ring_entries: config.ring_entries,
                input_max_bytes: config.input_max_bytes,
                drain_timeout: config.drain_timeout,
                listeners: std::mem::take(&mut listeners[shard]),
                lanes: Arc::clone(&lanes),
                bells: Arc::clone(&bells),
            };
            let factory = Arc::clone(&factory);
            let ready_tx = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{}", config.name, shard))
                .spawn(move || shard_main(setup, factory, ready_tx, go_rx));
            match spawned {
                Ok(thread) => {
                    threads.push((shard, thread));
                    go_txs.push(go_tx);
                }
                Err(err) => {
                    go_txs.clear(); // waiting shards see a closed channel and exit
                    handle.threads = threads;
                    handle.abort_start();
                    return Err(StartError::Spawn(err));
                }
            }
        }
        drop(ready_tx);
        handle.threads = threads;

        let mut flags = vec![RingFlags::Plain; shards];
        let mut failure = None;
        for _ in 0..shards {
            match ready_rx.recv() {
                Ok((shard, Ok(f))) => flags[shard] = f,
                Ok((_, Err(err))) => {
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure.get_or_insert(StartError::ShardLost(0));
                    break;
                }
            }
        }
        if let Some(err) = failure {
            for go in &go_txs {
                let _ = go.send(false);
            }
            handle.abort_start();
            return Err(err);
        }
        for go in &go_txs {
            let _ = go.send(true);
        }
        handle.ring_flags = flags;
        Ok(handle)
    }
}

struct ShardSetup<M> {
    shard: ShardId,
    shards: usize,
    cpu: Option<usize>,
    ring_entries: u32,
    input_max_bytes: usize,
    drain_timeout: Duration,
    listeners: Vec<std::os::fd::OwnedFd>,
    lanes: Arc<Lanes<M>>,
    bells: Arc<Doorbells>,
}

fn shard_main<E, F>(
    setup: ShardSetup<E::Msg>,
    factory: Arc<F>,
    ready: mpsc::Sender<(ShardId, Result<RingFlags, StartError>)>,
    go: mpsc::Receiver<bool>,
) -> io::Result<()>
where
    E: Engine,
    F: Fn(ShardId, usize) -> E,
{
    let shard = setup.shard;
    let drain_timeout = setup.drain_timeout;
    let io = match init_shard(setup) {
        Ok(io) => io,
        Err(err) => {
            let _ = ready.send((shard, Err(err)));
            return Ok(());
        }
    };
    let _ = ready.send((shard, Ok(io.ring.flags())));
    drop(ready);
    if go.recv() != Ok(true) {
        return Ok(());
    }
    let bells = Arc::clone(&io.bells);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let engine = factory(shard, io.shards);
        Shard::new(io, engine, drain_timeout).run()
    }));
    match outcome {
        Ok(Ok(())) => Ok(()),
        // One shard down takes the runtime down: the others drain and exit, so `join` returns.
        Ok(Err(err)) => {
            bells.request_shutdown();
            Err(err)
        }
        Err(panic) => {
            bells.request_shutdown();
            std::panic::resume_unwind(panic)
        }
    }
}

fn init_shard<M>(setup: ShardSetup<M>) -> Result<crate::io::Io<M>, StartError> {
    let shard = setup.shard;
    if let Some(cpu) = setup.cpu {
        pin_current_thread(cpu).map_err(|source| StartError::Pin { shard, cpu, source })?;
    }
    // Created on the shard thread: with SINGLE_ISSUER the creating thread is the only one
    // allowed to submit.
    let ring = Ring::new(setup.ring_entries).map_err(|source| StartError::Ring { shard, source })?;
    let bufs = BufRing::new(
        &ring,
        RECV_BUFFER_COUNT,
        RECV_BUFFER_SIZE_BYTES,
        RECV_BUFFER_GROUP_ID,
    )
    .map_err(|source| StartError::BufRing { shard, source })?;
    Ok(IoParts {
        shard,
        shards: setup.shards,
        input_max_bytes: setup.input_max_bytes,
        listeners: setup.listeners,
        lanes: setup.lanes,
        bells: setup.bells,
        ring,
        bufs,
    }
    .build())
}

/// CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; `cpu` comes from `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_setaffinity(0, size, &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Controls running shards. `Send + Sync`: shut down from any thread.
pub struct RuntimeHandle {
    local_addrs: Vec<ListenAddr>,
    bells: Arc<Doorbells>,
    threads: Vec<(ShardId, JoinHandle<io::Result<()>>)>,
    ring_flags: Vec<RingFlags>,
    /// Unix socket files this runtime made, removed once its shards are gone (or with the
    /// handle).
    socket_files: Vec<SocketFile>,
}

impl RuntimeHandle {
    /// The address each listener actually bound (index = `RuntimeConfig::listeners` index).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local_addrs
    }

    /// The ring set-up flags each shard got (index = shard).
    pub fn ring_flags(&self) -> &[RingFlags] {
        &self.ring_flags
    }

    /// Asks every shard to stop: close listeners, `on_shutdown`, drain, exit. Idempotent.
    pub fn shutdown(&self) {
        self.bells.request_shutdown();
    }

    /// `shutdown` as a function another thread can keep (e.g. a signal handler thread) while
    /// this handle waits in `join`.
    pub fn shutdown_trigger(&self) -> impl Fn() + Send + Sync + 'static {
        let bells = self.bells.clone();
        move || bells.request_shutdown()
    }

    /// Waits for every shard thread, then removes the Unix socket files; returns the first
    /// error (a shard's I/O error or panic).
    pub fn join(mut self) -> io::Result<()> {
        let mut first_error = None;
        for (shard, thread) in std::mem::take(&mut self.threads) {
            let result = match thread.join() {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(io::Error::other(format!("shard {shard} panicked: {what}")))
                }
            };
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        }
        self.socket_files.clear();
        first_error.map_or(Ok(()), Err)
    }

    fn abort_start(&mut self) {
        self.bells.request_shutdown();
        for (_, thread) in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}

impl Drop for RuntimeHandle {
    /// A handle dropped without `join` still stops its shards (they exit on their own).
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.bells.request_shutdown();
        }
    }
}
