//! SIGINT and SIGTERM for the daemons: blocked before any shard starts (so every thread inherits
//! the mask) and taken only by `TerminationSignals::wait`, on a thread that is not a shard.

use anyhow::bail;

/// The blocked set of termination signals.
pub struct TerminationSignals(libc::sigset_t);

// SAFETY: a sigset_t is plain data; waiting on it from another thread is what it is for.
unsafe impl Send for TerminationSignals {}

impl TerminationSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread (and every thread it spawns later).
    pub fn block() -> anyhow::Result<TerminationSignals> {
        // SAFETY: plain libc calls on a local, zero-initialised sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                bail!("pthread_sigmask failed: {rc}");
            }
            Ok(TerminationSignals(set))
        }
    }

    /// Waits for one of them; returns its number.
    pub fn wait(&self) -> anyhow::Result<i32> {
        let mut sig: libc::c_int = 0;
        // SAFETY: the set was built by `block`; sigwait only writes `sig`.
        let rc = unsafe { libc::sigwait(&self.0, &mut sig) };
        if rc != 0 {
            bail!("sigwait failed: {rc}");
        }
        Ok(sig)
    }
}
