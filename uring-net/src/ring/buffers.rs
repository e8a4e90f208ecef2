//! The shard's provided-buffer ring: the buffers multishot recv writes into.
//!
//! The kernel picks a buffer per received chunk and names it in the CQE; the shard copies the
//! bytes into the connection's input and hands the buffer back at once, so the ring only needs
//! to cover one reap's worth of completions, whatever the number of connections.
//!
//! Invariant: the buffer memory is freed only after the ring is unregistered, and only when no
//! recv is left in the kernel; otherwise it is leaked (see `Drop`).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::Ring;

pub(crate) struct BufRing {
    /// Page-aligned array of `entries` ring slots shared with the kernel (mmap'd).
    slots: NonNull<BufRingEntry>,
    slots_len_bytes: usize,
    /// `entries * buf_size` bytes the kernel writes received data into.
    memory: NonNull<u8>,
    memory_len_bytes: usize,
    entries: u16,
    buf_size: usize,
    group: u16,
    /// Our producer index; published to the kernel through the shared tail field.
    tail: u16,
    registered: bool,
}

impl BufRing {
    pub fn new(ring: &Ring, entries: u16, buf_size: usize, group: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let slots_len_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let memory_len_bytes = usize::from(entries) * buf_size;
        let slots = mmap_anonymous(slots_len_bytes)?.cast::<BufRingEntry>();
        let memory = match mmap_anonymous(memory_len_bytes) {
            Ok(memory) => memory,
            Err(err) => {
                // SAFETY: just mapped with this length, not registered with the kernel.
                unsafe { libc::munmap(slots.as_ptr().cast(), slots_len_bytes) };
                return Err(err);
            }
        };
        let mut this = BufRing {
            slots,
            slots_len_bytes,
            memory,
            memory_len_bytes,
            entries,
            buf_size,
            group,
            tail: 0,
            registered: false,
        };
        // SAFETY: the slot array is page aligned, `entries` long, and lives until `Drop`, which
        // unregisters before unmapping (or leaks).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(this.slots.as_ptr() as u64, entries, group, 0)?;
        }
        this.registered = true;
        for bid in 0..entries {
            this.stage(bid);
        }
        this.publish();
        Ok(this)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    /// The first `len` bytes the kernel wrote into buffer `bid`.
    pub fn filled(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_size);
        // SAFETY: `bid` names a buffer inside the mapping; the kernel has finished writing it
        // (its CQE was reaped) and it is not in the ring until `recycle`.
        unsafe { std::slice::from_raw_parts(self.memory.as_ptr().add(usize::from(bid) * self.buf_size), len) }
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.entries);
        self.stage(bid);
        self.publish();
    }

    fn stage(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `index < entries`; the kernel does not read slots past the published tail.
        let slot = unsafe { &mut *self.slots.as_ptr().add(index) };
        // SAFETY: inside the mapping (bid < entries).
        let addr = unsafe { self.memory.as_ptr().add(usize::from(bid) * self.buf_size) };
        slot.set_addr(addr as u64);
        slot.set_len(self.buf_size as u32);
        slot.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field overlays the first slot's reserved field; the mapping is live.
        let tail = unsafe { BufRingEntry::tail(self.slots.as_ptr()) } as *const AtomicU16;
        // Release: the slot contents written by `stage` are visible to the kernel before it
        // sees the new tail.
        unsafe { &*tail }.store(self.tail, Ordering::Release);
    }

    /// Unregisters the ring from the kernel. Call only when no recv is in the kernel; after
    /// this, dropping frees the memory.
    pub fn unregister(&mut self, ring: &Ring) {
        if self.registered && ring.submitter().unregister_buf_ring(self.group).is_ok() {
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The kernel may still write into these buffers: never free them.
            return;
        }
        // SAFETY: unregistered, so the kernel holds no reference; both were mapped in `new`.
        unsafe {
            libc::munmap(self.slots.as_ptr().cast(), self.slots_len_bytes);
            libc::munmap(self.memory.as_ptr().cast(), self.memory_len_bytes);
        }
    }
}

fn mmap_anonymous(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: anonymous private mapping, no fd, no fixed address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}
