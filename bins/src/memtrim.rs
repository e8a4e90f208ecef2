//! Gives freed heap memory back to the kernel. glibc keeps what a drained backlog freed (its
//! arenas shrink only from the top), so RSS would stay at the backlog's peak; one thread per
//! process asks it to return free pages every few seconds (`malloc_trim`, which walks each arena
//! under that arena's lock: a short pause for a shard allocating at that moment, never a
//! blocking call on a shard loop).

use std::sync::Once;
use std::time::Duration;

const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the trimming thread once per process; later calls do nothing.
pub fn start() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new().name("memtrim".into()).spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            // SAFETY: malloc_trim only walks glibc's own arenas; any thread may call it.
            unsafe {
                libc::malloc_trim(0);
            }
        });
        if let Err(e) = spawned {
            crate::log_warn!("cannot start the memory trimming thread: {e}");
        }
    });
}
