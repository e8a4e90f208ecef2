//! Start-up errors: the only failures the runtime reports as `Err`; everything a peer causes
//! is handled per connection.

use std::io;

use crate::listener::ListenAddr;

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid runtime config: {0}")]
    Config(&'static str),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: ListenAddr, source: io::Error },
    #[error("cannot create io_uring for shard {shard}: {source}")]
    Ring { shard: usize, source: io::Error },
    #[error("cannot register provided-buffer ring for shard {shard}: {source}")]
    BufRing { shard: usize, source: io::Error },
    #[error("cannot create eventfd: {0}")]
    Eventfd(io::Error),
    #[error("cannot pin shard {shard} to cpu {cpu}: {source}")]
    Pin {
        shard: usize,
        cpu: usize,
        source: io::Error,
    },
    #[error("cannot spawn shard thread: {0}")]
    Spawn(io::Error),
    #[error("shard {0} exited during start-up")]
    ShardLost(usize),
}

impl From<StartError> for io::Error {
    fn from(err: StartError) -> io::Error {
        let kind = match &err {
            StartError::Config(_) => io::ErrorKind::InvalidInput,
            StartError::Listen { source, .. }
            | StartError::Ring { source, .. }
            | StartError::BufRing { source, .. }
            | StartError::Pin { source, .. }
            | StartError::Spawn(source)
            | StartError::Eventfd(source) => source.kind(),
            StartError::ShardLost(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
