//! Every fixed limit of the runtime, in one place, with the reason for its value.
//!
//! Runtime options (`RuntimeConfig`) are checked against these at start-up.

/// Largest iovec array one `sendmsg` accepts (Linux `UIO_MAXIOV`).
pub(crate) const IOV_MAX: usize = 1024;

/// Size of one provided receive buffer: big enough that a busy stream needs few CQEs per MiB,
/// small enough that idle connections pin nothing (buffers belong to the shard, not to sockets).
pub(crate) const RECV_BUFFER_SIZE_BYTES: usize = 16 * 1024;

/// Buffers in a shard's provided-buffer ring (power of two, kernel maximum 32768). Each buffer is
/// copied out and handed back during reaping, so this only has to cover one reap's worth of CQEs.
pub(crate) const RECV_BUFFER_COUNT: u16 = 256;

/// Buffer group id of the shard's provided-buffer ring (one group per ring).
pub(crate) const RECV_BUFFER_GROUP_ID: u16 = 0;

/// `write_bytes` segments up to this size are copied into the tail buffer instead of taking an
/// iovec of their own: a copy of a few hundred bytes is cheaper than a longer iovec array.
pub(crate) const SMALL_SEGMENT_COPY_BYTES_MAX: usize = 256;

/// Growth step of a connection's output tail buffer.
pub(crate) const OUTPUT_TAIL_CHUNK_BYTES: usize = 16 * 1024;

/// Messages taken from one inbound lane per turn, so one busy lane cannot starve sockets.
pub(crate) const MAILBOX_DRAIN_PER_LANE_MAX: usize = 1024;

/// Expired timers fired per turn; the rest fire next turn (which then does not block).
pub(crate) const TIMERS_PER_TURN_MAX: usize = 4096;

/// Backoff before re-arming an accept that failed for lack of resources (EMFILE, ENFILE, ENOMEM):
/// retrying at once would spin the shard while the process is out of descriptors.
pub(crate) const ACCEPT_RETRY_DELAY_MS: u64 = 10;

/// After the drain deadline, how long a shard waits for forced closes to finish before exiting.
pub(crate) const FORCED_CLOSE_GRACE_MS: u64 = 1000;

/// On exit, how long a shard waits for cancelled operations to report their last CQE. Whatever
/// is still in the kernel after that keeps its buffers forever (leaked, never freed).
pub(crate) const EXIT_CANCEL_WAIT_MS: u64 = 1000;

/// Listen backlog of every listening socket.
pub(crate) const LISTEN_BACKLOG: i32 = 1024;

/// Bytes of a Unix socket name (`sun_path` in Linux's `sockaddr_un`); a path also needs its
/// terminating NUL in there, an abstract name does not.
pub(crate) const UNIX_PATH_BYTES_MAX: usize = 108;

/// Smallest submission queue the runtime accepts: a turn may queue a recv, a send and a cancel
/// per connection; the ring submits early when the queue fills, so this is only a floor.
pub(crate) const RING_ENTRIES_MIN: u32 = 8;

/// Largest submission queue (kernel limit `IORING_MAX_ENTRIES`).
pub(crate) const RING_ENTRIES_MAX: u32 = 32768;

const _: () = assert!(RECV_BUFFER_COUNT.is_power_of_two());
const _: () = assert!(RECV_BUFFER_COUNT as u32 <= 32768);
const _: () = assert!(RECV_BUFFER_SIZE_BYTES <= u32::MAX as usize);
const _: () = assert!(SMALL_SEGMENT_COPY_BYTES_MAX < OUTPUT_TAIL_CHUNK_BYTES);
const _: () = assert!(RING_ENTRIES_MIN <= RING_ENTRIES_MAX);
